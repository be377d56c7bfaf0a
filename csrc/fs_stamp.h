/* Stamp one template body for float and double.
 *
 * Usage (no include guard on purpose: included once per template):
 *     #define FS_TEMPLATE "patches.tmpl.c"
 *     #include "fs_stamp.h"
 * includes FS_TEMPLATE with REAL = float, FS_SFX = f32 (names fs_x_f32) and again with
 * REAL = double, FS_SFX = f64, then undefines FS_TEMPLATE. */
#ifndef FS_TEMPLATE
#error "define FS_TEMPLATE (the template file name) before including fs_stamp.h"
#endif

#define REAL float
#define FS_SFX f32
#include FS_TEMPLATE
#undef REAL
#undef FS_SFX

#define REAL double
#define FS_SFX f64
#include FS_TEMPLATE
#undef REAL
#undef FS_SFX

#undef FS_TEMPLATE
