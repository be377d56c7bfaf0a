/* Instantiates the patch kernels for float (f32) and double (f64). */
#include <stdlib.h>
#include <string.h>

#include "patches.h"

#define FS_TEMPLATE "patches.tmpl.c"
#include "fs_stamp.h"
