/* Stamp one template body for float and double.
 *
 * Usage (no include guard on purpose: included once per template):
 *     #define FS_TEMPLATE "patches.tmpl.c"
 *     #include "fs_stamp.h"
 * includes FS_TEMPLATE with REAL = float, FS_SFX = f32 (names fs_x_f32),
 * FS_REAL_IS_FLOAT = 1, and again with REAL = double, FS_SFX = f64, FS_REAL_IS_FLOAT = 0;
 * then undefines FS_TEMPLATE. A template picks its per-type constants and functions with
 * `#if FS_REAL_IS_FLOAT` (and undefines them at its end).
 *
 * A kernel whose compile is long may split into one unit per type, compiled in parallel
 * (the KDE: kde_f32.c, kde_f64.c): such a unit defines FS_STAMP_ONLY to 32 or 64 before
 * including this file and gets that type only. */
#ifndef FS_TEMPLATE
#error "define FS_TEMPLATE (the template file name) before including fs_stamp.h"
#endif
#if defined(FS_STAMP_ONLY) && FS_STAMP_ONLY != 32 && FS_STAMP_ONLY != 64
#error "FS_STAMP_ONLY must be 32 (float) or 64 (double)"
#endif

#if !defined(FS_STAMP_ONLY) || FS_STAMP_ONLY == 32
#define REAL float
#define FS_SFX f32
#define FS_REAL_IS_FLOAT 1
#include FS_TEMPLATE
#undef REAL
#undef FS_SFX
#undef FS_REAL_IS_FLOAT
#endif

#if !defined(FS_STAMP_ONLY) || FS_STAMP_ONLY == 64
#define REAL double
#define FS_SFX f64
#define FS_REAL_IS_FLOAT 0
#include FS_TEMPLATE
#undef REAL
#undef FS_SFX
#undef FS_REAL_IS_FLOAT
#endif

#undef FS_TEMPLATE
#undef FS_STAMP_ONLY
