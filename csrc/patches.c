/* Instantiates the patch kernels for float (f32) and double (f64). */
#include <stdlib.h>
#include <string.h>

#include "patches.h"

#define REAL float
#define FS_SFX f32
#include "patches.tmpl.c"
#undef REAL
#undef FS_SFX

#define REAL double
#define FS_SFX f64
#include "patches.tmpl.c"
#undef REAL
#undef FS_SFX
