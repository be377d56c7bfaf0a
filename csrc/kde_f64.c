/* Instantiates the KDE kernels for double (f64); see kde.tmpl.c and kde_unit.h. */
#include "kde_unit.h"

#define REAL double
#define FS_SFX f64
#define FS_KDE_IS_FLOAT 0
#define FS_KDE_UINT uint64_t
#define FS_KDE_SINT int64_t
#define FS_KDE_MANT 52
#define FS_KDE_BIAS 1023
#define FS_KDE_TMIN (-1023.0)
#define FS_KDE_POLY(f, f2) /* Estrin in f^2 */ \
    (((1.0000000000000000661 + (f) * 0.69314718055994977510) + (f2) * ( \
      0.24022650695908767770 + (f) * 0.055504108664458831363)) + ((f2) * (f2)) * ( \
     ((0.0096181291080345970060 + (f) * 0.0013333558228561765893) + (f2) * ( \
       0.00015403529961127075703 + (f) * 0.000015252658116409854484)) + ((f2) * (f2)) * ( \
      (1.3215662835959239446e-6 + (f) * 1.0208537929657404371e-7) + (f2) * \
       7.0372788467269008787e-9)))
#include "kde.tmpl.c"
