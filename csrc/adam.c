/* Instantiates the optimiser kernels for float (f32) and double (f64).
 *
 * setup.py compiles this extension with -ffp-contract=off (no a*b + c -> fma), so a step
 * is the same IEEE arithmetic in the vector body, the scalar tail and a plain NumPy
 * reference, whatever the SIMD target the runtime dispatch picks. The kernels are
 * memory-bound; fma would not make them faster. */

#include <math.h>
#include <stdlib.h>

#include "adam.h"

/* Blocks of the norm reduction: a fixed number of entries, whatever the thread count. */
#define FS_NORM_BLOCK 4096

/* [lo, hi): this thread's contiguous share of n entries (static split, starts aligned to
 * 16 entries); the whole range outside a parallel region. */
static inline void fs_thread_range(ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
#ifdef _OPENMP
    const ptrdiff_t t = omp_get_thread_num(), n_team = omp_get_num_threads();
#else
    const ptrdiff_t t = 0, n_team = 1;
#endif
    ptrdiff_t per = (n + n_team - 1) / n_team;
    per = (per + 15) & ~(ptrdiff_t)15;
    *lo = t * per < n ? t * per : n;
    *hi = *lo + per < n ? *lo + per : n;
}

#define REAL float
#define FS_SFX f32
#define FS_SQRT sqrtf
#include "adam.tmpl.c"
#undef REAL
#undef FS_SFX
#undef FS_SQRT

#define REAL double
#define FS_SFX f64
#define FS_SQRT sqrt
#include "adam.tmpl.c"
#undef REAL
#undef FS_SFX
#undef FS_SQRT
