/*
 * test_hash.c - dmce_xxh3 (runtime/hash.h): the one hash of store keys,
 * record checksums and backup pages. Its result must not depend on the
 * path taken (inline SSE2/scalar XXH3, or the AVX2 build used for long
 * inputs when the CPU has AVX2): stores and backup files written on one
 * machine are read on another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

/* The reference: libxxhash itself, the shared library backup.c links. */
#include <xxhash.h>

static uint8_t g_data[8192 + 64];

static void fill(void)
{
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < sizeof g_data; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        g_data[i] = (uint8_t)x;
    }
}

/* Published XXH3-64 values (xxhash's own sanity checks): empty input. */
static void test_known_answers(void **state)
{
    (void)state;
    assert_true(dmce_xxh3("", 0, 0) == 0x2D06800538D394C2ull);
    assert_true(dmce_xxh3(NULL, 0, 0) == 0x2D06800538D394C2ull);
}

/* Every length through the short, mid and long paths, several seeds and
 * misalignments, equals libxxhash's XXH3_64bits_withSeed. */
static void test_same_as_libxxhash(void **state)
{
    (void)state;
    static const uint64_t seeds[] = {0, 1, 0x47454f4dull, 0xffffffffffffffffull};
    for (size_t len = 0; len <= 4200; len += len < 300 ? 1 : 37)
        for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++)
            for (size_t off = 0; off < 3; off++) {
                const uint8_t *p = g_data + off * 7;
                if (dmce_xxh3(p, len, seeds[s]) != XXH3_64bits_withSeed(p, len, seeds[s]))
                    fail_msg("len %zu seed %zu offset %zu differs", len, s, off * 7);
            }
    /* A backup page hash: seed 0 is XXH3_64bits, what older builds wrote. */
    assert_true(dmce_xxh3(g_data, 4096, 0) == XXH3_64bits(g_data, 4096));
}

#ifdef DMCE_TEST_HASH_AVX2
uint64_t dmce_xxh3_avx2(const void *p, size_t len, uint64_t seed); /* runtime/hash_avx2.c */
#endif

/* The AVX2 build itself, called directly (dmce_xxh3 takes it only for long
 * inputs on a CPU with AVX2): same results at every length. */
static void test_avx2_build_same_results(void **state)
{
    (void)state;
#ifdef DMCE_TEST_HASH_AVX2
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2")) {
        print_message("no AVX2 on this CPU: its build is not run here\n");
        skip();
    }
    for (size_t len = 0; len <= 8192; len += len < 300 ? 1 : 61)
        if (dmce_xxh3_avx2(g_data + 3, len, 77) != XXH3_64bits_withSeed(g_data + 3, len, 77))
            fail_msg("AVX2 build: len %zu differs", len);
#else
    print_message("no AVX2 build of XXH3 here (not x86, or no -mavx2)\n");
    skip();
#endif
}

/* One flipped bit anywhere in a long input changes the hash. */
static void test_bit_flip_changes_long_hash(void **state)
{
    (void)state;
    uint8_t buf[4096];
    memcpy(buf, g_data, sizeof buf);
    uint64_t h = dmce_xxh3(buf, sizeof buf, 5);
    for (size_t i = 0; i < sizeof buf; i += 61) {
        buf[i] ^= 0x20;
        assert_true(dmce_xxh3(buf, sizeof buf, 5) != h);
        buf[i] ^= 0x20;
    }
    assert_true(dmce_xxh3(buf, sizeof buf, 5) == h);
    assert_true(dmce_xxh3(buf, sizeof buf, 6) != h);
}

int main(void)
{
    fill();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_same_as_libxxhash),
        cmocka_unit_test(test_avx2_build_same_results),
        cmocka_unit_test(test_bit_flip_changes_long_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
