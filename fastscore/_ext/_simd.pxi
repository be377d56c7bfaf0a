# Included by every kernel binding: the SIMD body its runtime dispatch runs
# (csrc/fs_common.h). fs_simd_body and FS_BODY_* come from this extension's own build, with
# its clone set (setup.py, _PER_EXTENSION), so each extension reports for itself.

from ._common import LEVEL_NAMES as _LEVEL_NAMES
from ._csrc cimport FS_BODY_V3, FS_BODY_V4, fs_simd_body


def simd_clone():
    """The SIMD body this extension's kernels run now: "x86-64-v4", "x86-64-v3" or
    "baseline" (the CPU's level capped by FASTSCORE_SIMD, then by the bodies built)."""
    return _LEVEL_NAMES[fs_simd_body()]


def simd_clones():
    """The SIMD bodies compiled in this extension, widest first."""
    return tuple(name for built, name in ((FS_BODY_V4, "x86-64-v4"), (FS_BODY_V3, "x86-64-v3"),
                                          (True, "baseline")) if built)
