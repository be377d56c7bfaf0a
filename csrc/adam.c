/* Instantiates the optimiser kernels for float (f32) and double (f64).
 *
 * setup.py compiles this file with -ffp-contract=off (a per-file flag: no a*b + c -> fma),
 * so a step is the same IEEE arithmetic in the vector body, the scalar tail and a plain
 * NumPy reference, whatever the SIMD target the runtime dispatch picks. The kernels are
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
    const ptrdiff_t t = FS_THREAD_ID(), n_team = FS_TEAM_SIZE();
    ptrdiff_t per = (n + n_team - 1) / n_team;
    per = (per + 15) & ~(ptrdiff_t)15;
    *lo = t * per < n ? t * per : n;
    *hi = *lo + per < n ? *lo + per : n;
}

#define FS_TEMPLATE "adam.tmpl.c"
#include "fs_stamp.h"
