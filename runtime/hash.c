/*
 * hash.c - dmce_xxh3 (hash.h): XXH3 inlined here, the AVX2 build of it in
 * hash_avx2.c, picked once per process from the CPU's features.
 */
#include "hash.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifdef DMCE_HASH_AVX2
uint64_t dmce_xxh3_avx2(const void *p, size_t len, uint64_t seed); /* hash_avx2.c */

/* 0 = not looked at yet, 1 = no AVX2, 2 = AVX2. A race stores the same value. */
static int g_wide;

static int wide(void)
{
    int w = __atomic_load_n(&g_wide, __ATOMIC_RELAXED);
    if (w == 0) {
        __builtin_cpu_init();
        w = __builtin_cpu_supports("avx2") ? 2 : 1;
        __atomic_store_n(&g_wide, w, __ATOMIC_RELAXED);
    }
    return w == 2;
}
#endif

uint64_t dmce_xxh3(const void *p, size_t len, uint64_t seed)
{
#ifdef DMCE_HASH_AVX2
    if (len > XXH3_MIDSIZE_MAX && wide())
        return dmce_xxh3_avx2(p, len, seed);
#endif
    return XXH3_64bits_withSeed(p, len, seed);
}
