/* Instantiates the KDE kernels for float (f32); see kde.tmpl.c and kde_unit.h. */
#include "kde_unit.h"

#define REAL float
#define FS_SFX f32
#define FS_KDE_IS_FLOAT 1
#define FS_KDE_UINT uint32_t
#define FS_KDE_SINT int32_t
#define FS_KDE_MANT 23
#define FS_KDE_BIAS 127
#define FS_KDE_TMIN (-127.0f)
#define FS_KDE_POLY(f, f2) /* Estrin: shorter dependency chain than Horner */ \
    ((1.0000000716546416382f + (f) * 0.69314696706526492761f) + (f2) * ( \
     (0.24022119723969178047f + (f) * 0.055507132728753911780f) + (f2) * ( \
     0.0096755413310213911451f + (f) * 0.0013276472167819943329f)))
#include "kde.tmpl.c"
