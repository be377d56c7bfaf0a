/* Instantiates the KDE kernels for double (f64) only: the two types are two units, so
 * their long compiles run in parallel. See kde.tmpl.c (the body and its per-type
 * constants) and kde_unit.h. */
#include "kde_unit.h"

#define FS_STAMP_ONLY 64
#define FS_TEMPLATE "kde.tmpl.c"
#include "fs_stamp.h"
