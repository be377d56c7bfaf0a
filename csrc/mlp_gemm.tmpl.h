/* Declarations stamped once per REAL (see mlp_gemm.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including mlp_gemm.tmpl.h"
#endif

/* packed[0 .. fs_mlp_pack_size()) <- the pack of params (see mlp_gemm.h); the layers
 * are shared among n_threads >= 1 threads. Each layer's W^T panels are made from its W
 * panels, so a pack is always the pack of the values its W panels and biases hold. */
int FS_FN(fs_mlp_pack)(const fs_mlp_net *net, const REAL *params, REAL *packed,
                       int n_threads);

/* 1 when `packed` (made by fs_mlp_pack at this level) is the pack of params, bit for
 * bit, else 0 (also 0 at a level without a pack): the staleness check of a pack, one
 * read of params and of the W panels and biases, without a copy of params. */
int FS_FN(fs_mlp_pack_matches)(const fs_mlp_net *net, const REAL *params,
                               const REAL *packed);
