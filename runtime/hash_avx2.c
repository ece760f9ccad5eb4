/*
 * hash_avx2.c - XXH3 built with -mavx2 (CMake sets it for this file only,
 * on x86). Called by dmce_xxh3 (hash.c) only after the CPU said it has
 * AVX2: nothing else may live in this file, since the compiler may use
 * AVX2 anywhere in it.
 */
#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifndef __AVX2__
#error "hash_avx2.c is built with -mavx2"
#endif

uint64_t dmce_xxh3_avx2(const void *p, size_t len, uint64_t seed);

uint64_t dmce_xxh3_avx2(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}
