/* Patch gather (G x) and its exact adjoint scatter-add (G^T P) for batched 1/2/3-D images.
 *
 * Geometry (all axes in the order depth, height, width; a 2-D image has depth 1):
 *   x        : (n_batch, shape[0], shape[1], shape[2]) source image(s), C order
 *   padded   : the image after padding, padded[a] = shape[a] + pad_before[a] + pad_after[a]
 *   map[a]   : length padded[a]; padded coordinate -> source coordinate, or -1 (zero pad)
 *   inv_ptr[a], inv_idx[a] : the inverse of map[a] in CSR form: the padded coordinates
 *              that read source coordinate s are inv_idx[a][inv_ptr[a][s] .. inv_ptr[a][s+1]]
 *   patch[a], stride[a], grid[a] : patch size, step, and number of patch positions,
 *              grid[a] = (padded[a] - patch[a]) / stride[a] + 1
 *   Patches are numbered q = ((b*grid0 + k)*grid1 + i)*grid2 + j and a patch row of
 *   P holds its entries (c, r, t) at offset (c*patch1 + r)*patch2 + t, c < patch0 ...
 *
 *   gather : P[q - start, (c,r,t)] = x_pad[b, k*s0 + c, i*s1 + r, j*s2 + t],  start <= q < stop
 *   scatter: x[b, map0(u), map1(v), map2(w)] += P[q - start, (c,r,t)] for the same index
 *            relation: the exact adjoint of gather, padding folded back onto its source.
 */
#ifndef FS_PATCHES_H
#define FS_PATCHES_H

#include "fs_common.h"

typedef struct {
    ptrdiff_t n_batch;
    ptrdiff_t shape[3];
    ptrdiff_t padded[3];
    ptrdiff_t pad_before[3];
    ptrdiff_t patch[3];
    ptrdiff_t stride[3];
    ptrdiff_t grid[3];
    const ptrdiff_t *map[3];
    const ptrdiff_t *inv_ptr[3];
    const ptrdiff_t *inv_idx[3];
} fs_patch_geometry;

#define FS_TEMPLATE "patches.tmpl.h"
#include "fs_stamp.h"

#endif /* FS_PATCHES_H */
