/* Declarations stamped once per REAL (see mlp_gemm.h). */
#ifndef REAL
#error "define REAL and FS_SFX before including mlp_gemm.tmpl.h"
#endif

/* packed[0 .. fs_mlp_pack_size()) <- the pack of params (see mlp_gemm.h); the parts
 * (each layer's W panels, bias, W^T panels) are shared among n_threads >= 1 threads. */
int FS_FN(fs_mlp_pack)(const fs_mlp_net *net, const REAL *params, REAL *packed,
                       int n_threads);
