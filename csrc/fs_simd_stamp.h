/* Stamp one SIMD template once per body of this extension (fs_common.h, FS_CLONE_SET).
 *
 * Usage (no include guard on purpose: included once per SIMD template, inside a type
 * template, i.e. with REAL and FS_SFX defined):
 *     #define FS_SIMD_TEMPLATE "adam_simd.tmpl.c"
 *     #include "fs_simd_stamp.h"
 * includes FS_SIMD_TEMPLATE with, per body,
 *   FS_SIMD_SFX     v4 | v3 | base: the template names its functions FS_LFN(name)
 *                   (-> name_f32_v4 ...), which FS_PICK(name) selects at run time
 *   FS_SIMD_TARGET  the function attribute compiling it for its level: every function of
 *                   the template carries it (helpers it calls are FS_INLINE, so they are
 *                   compiled inside it, for the same level)
 *   FS_SIMD_VBYTES  bytes of that level's vector registers (64, 32; FS_SIMD_VBYTES_BASE =
 *                   16 for the baseline), for templates that use GCC vector types
 * and undefines them (and FS_SIMD_TEMPLATE) afterwards. */
#ifndef FS_SIMD_TEMPLATE
#error "define FS_SIMD_TEMPLATE (the SIMD template file name) before including fs_simd_stamp.h"
#endif
#ifndef FS_SIMD_VBYTES_BASE
#define FS_SIMD_VBYTES_BASE 16
#endif

#if FS_BODY_V4
#define FS_SIMD_SFX v4
#define FS_SIMD_TARGET __attribute__((target("arch=x86-64-v4")))
#define FS_SIMD_VBYTES 64
#include FS_SIMD_TEMPLATE
#undef FS_SIMD_SFX
#undef FS_SIMD_TARGET
#undef FS_SIMD_VBYTES
#endif

#if FS_BODY_V3
#define FS_SIMD_SFX v3
#define FS_SIMD_TARGET __attribute__((target("arch=x86-64-v3")))
#define FS_SIMD_VBYTES 32
#include FS_SIMD_TEMPLATE
#undef FS_SIMD_SFX
#undef FS_SIMD_TARGET
#undef FS_SIMD_VBYTES
#endif

#define FS_SIMD_SFX base
#define FS_SIMD_TARGET
#define FS_SIMD_VBYTES FS_SIMD_VBYTES_BASE
#include FS_SIMD_TEMPLATE
#undef FS_SIMD_SFX
#undef FS_SIMD_TARGET
#undef FS_SIMD_VBYTES

#undef FS_SIMD_TEMPLATE
