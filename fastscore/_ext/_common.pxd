# What the bindings share at C level (implemented once, in _common.pyx): the mapping of a
# C kernel's status to a Python exception. Every binding does
#     from ._common cimport check_status
# and calls check_status(status, "fs_kernel_name") after its kernel returned.

cdef int check_status(int status, str kernel) except -1
