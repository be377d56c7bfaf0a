# Map a C kernel status to a Python exception naming the kernel (included by each binding).

cdef extern from "fs_common.h":
    int FS_OK
    int FS_E_NOMEM
    int FS_E_ARG
    int FS_E_NONFINITE


cdef inline int check_status(int status, str kernel) except -1:
    if status == FS_OK:
        return 0
    if status == FS_E_NOMEM:
        raise MemoryError(f"{kernel}: could not allocate scratch memory")
    if status == FS_E_NONFINITE:
        raise FloatingPointError(f"{kernel}: a non-finite value appeared")
    if status == FS_E_ARG:
        raise RuntimeError(f"{kernel}: inconsistent sizes reached the C kernel (a bug in "
                           "fastscore's validation; please report it)")
    raise RuntimeError(f"{kernel}: failed with status {status}")
