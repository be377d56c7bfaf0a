/* Packed-weight GEMM of the MLP kernels: each layer's weights kept packed for a register
 * micro-kernel of this project (AVX-512 and AVX2 + FMA variants, float and double), so
 * the layer chain of a row tile runs without BLAS and without repacking per call.
 *
 * Pack layout (one buffer per model version, filled by fs_mlp_pack_*, read by the
 * forward and backward kernels; NR = the micro-kernel's panel width, 2 SIMD vectors):
 *   fwd[l]  : W_l (w_l columns) in ceil(w_l / NR) panels of w_{l-1} x NR values, row p of
 *             a panel holding W_l[p, j0 .. j0 + NR), zero past column w_l;
 *   bias[l] : b_l zero-padded to ceil(w_l / NR) NR values;
 *   bwd[l]  : W_l^T (w_{l-1} columns) in ceil(w_{l-1} / NR) panels of w_l x NR values
 *             (for the input gradient dA = G W^T);
 *   zeros   : max_width zeros (the zero bias of the activation-only pass).
 * The layout depends on the SIMD level (fs_simd_level(), fixed per process): a pack is
 * made and read at the same level. Level FS_SIMD_BASELINE (and builds other than GCC /
 * Clang on x86-64) has no micro-kernel: pack size 0, and the kernels use BLAS.
 */
#ifndef FS_MLP_GEMM_H
#define FS_MLP_GEMM_H

#include "mlp.h"

/* The micro-kernels need GCC's target attributes and vector types on x86-64. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FS_MLP_GEMM_X86 1
#else
#define FS_MLP_GEMM_X86 0
#endif
/* Rows of the register block: MR x 2 vectors of accumulators (24 of the 32 zmm
 * registers with AVX-512, 12 of the 16 ymm with AVX2). */
#define FS_MLP_GEMM_MR_V4 12
#define FS_MLP_GEMM_MR_V3 6

typedef struct {
    int level;                                /* the fs_simd_level() of the pack */
    ptrdiff_t nr;                             /* panel width (values) */
    ptrdiff_t mr;                             /* micro-kernel rows */
    ptrdiff_t fwd[FS_MLP_MAX_LAYERS];
    ptrdiff_t bias[FS_MLP_MAX_LAYERS];
    ptrdiff_t bwd[FS_MLP_MAX_LAYERS];
    ptrdiff_t zeros;
    ptrdiff_t total;                          /* values; 0: no packed kernel (BLAS) */
} fs_mlp_pack_layout;

/* Layout of the pack for values of `real_size` bytes (4 or 8) at the current level. */
void fs_mlp_pack_layout_of(const fs_mlp_net *net, int real_size, fs_mlp_pack_layout *lay);
/* Values of the pack (0 when the kernels use BLAS at this level). */
ptrdiff_t fs_mlp_pack_size(const fs_mlp_net *net, int real_size);

#define FS_TEMPLATE "mlp_gemm.tmpl.h"
#include "fs_stamp.h"

#endif /* FS_MLP_GEMM_H */
