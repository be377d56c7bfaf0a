/* Instantiates the KDE kernels for float (f32) only: the two types are two units, so
 * their long compiles run in parallel. See kde.tmpl.c (the body and its per-type
 * constants) and kde_unit.h. */
#include "kde_unit.h"

#define FS_STAMP_ONLY 32
#define FS_TEMPLATE "kde.tmpl.c"
#include "fs_stamp.h"
