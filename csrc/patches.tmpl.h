/* Declarations stamped once per REAL (see patches.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including patches.tmpl.h"
#endif

/* out: (stop - start, patch_size); reads x, writes every entry of out. */
int FS_FN(fs_gather_patches)(const fs_patch_geometry *g, const REAL *x, REAL *out,
                             ptrdiff_t start, ptrdiff_t stop, int n_threads);

/* out: (n_batch, shape...) accumulated in place: out += G^T P for patches [start, stop). */
int FS_FN(fs_scatter_add_patches)(const fs_patch_geometry *g, const REAL *patches, REAL *out,
                                  ptrdiff_t start, ptrdiff_t stop, int n_threads);
