# Bindings of csrc/patches.c: memoryviews in, GIL released, status to exception.
# Geometry arrays come from fastscore.patches, already validated.

from cython cimport floating

from ._common cimport check_status
from ._csrc cimport (fs_gather_patches_f32, fs_gather_patches_f64, fs_patch_geometry,
                     fs_scatter_add_patches_f32, fs_scatter_add_patches_f64)

include "_simd.pxi"


cdef class Geometry:
    """C view of a patch geometry; holds references to its index arrays."""
    cdef fs_patch_geometry g
    cdef object _keep

    def __init__(self, Py_ssize_t n_batch, shape, padded, pad_before, patch, stride, grid,
                 maps, inv_ptrs, inv_idxs):
        cdef const Py_ssize_t[::1] view
        cdef int a
        self._keep = (maps, inv_ptrs, inv_idxs)
        self.g.n_batch = n_batch
        for a in range(3):
            self.g.shape[a] = shape[a]
            self.g.padded[a] = padded[a]
            self.g.pad_before[a] = pad_before[a]
            self.g.patch[a] = patch[a]
            self.g.stride[a] = stride[a]
            self.g.grid[a] = grid[a]
            view = maps[a]
            self.g.map[a] = &view[0]
            view = inv_ptrs[a]
            self.g.inv_ptr[a] = &view[0]
            view = inv_idxs[a]
            self.g.inv_idx[a] = &view[0]


def gather(Geometry geometry, const floating[::1] x, floating[:, ::1] out,
           Py_ssize_t start, Py_ssize_t stop, int n_threads):
    cdef int status
    with nogil:
        if floating is float:
            status = fs_gather_patches_f32(&geometry.g, &x[0], &out[0, 0], start, stop,
                                           n_threads)
        else:
            status = fs_gather_patches_f64(&geometry.g, &x[0], &out[0, 0], start, stop,
                                           n_threads)
    check_status(status, "fs_gather_patches")


def scatter_add(Geometry geometry, const floating[:, ::1] patches, floating[::1] out,
                Py_ssize_t start, Py_ssize_t stop, int n_threads):
    cdef int status
    with nogil:
        if floating is float:
            status = fs_scatter_add_patches_f32(&geometry.g, &patches[0, 0], &out[0], start,
                                                stop, n_threads)
        else:
            status = fs_scatter_add_patches_f64(&geometry.g, &patches[0, 0], &out[0], start,
                                                stop, n_threads)
    check_status(status, "fs_scatter_add_patches")
