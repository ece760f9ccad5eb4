/*
 * Unit tests for the latency histogram (runtime/hist.c): the bucket map
 * (contiguous, covering 0 .. UINT64_MAX, width <= low/128), the empty
 * histogram, a single value, exact small values, percentiles of a uniform
 * 1..1e6 sequence and of a random log-spread sample against the exact
 * order statistics (error <= 1/256), huge values and the 128-bit sum,
 * merge == recording everything in one, and reset.
 *
 * Histograms are ~58 KiB, so they live on the heap here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hist.h"

/* ---- helpers ----------------------------------------------------------- */

static dmce_hist_t *new_hist(void)
{
    dmce_hist_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    memset(h, 0x5a, sizeof(*h)); /* init must not rely on zeroed memory */
    assert_int_equal(dmce_hist_init(h), 0);
    return h;
}

static void free_hist(dmce_hist_t *h)
{
    dmce_hist_destroy(h);
    free(h);
}

static uint64_t xs_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 7;
    xs_state ^= xs_state << 17;
    return xs_state;
}

/* A value spread over all magnitudes: random bit length, random bits. */
static uint64_t rnd_log(unsigned max_bits)
{
    unsigned bits = (unsigned)(rnd() % (max_bits + 1u));
    if (bits == 0)
        return 0;
    uint64_t v = rnd();
    if (bits < 64)
        v &= (UINT64_C(1) << bits) - 1u;
    return v | (UINT64_C(1) << (bits - 1u));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank order statistic of a sorted array (the histogram's definition). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
    if (p <= 0.0)
        return sorted[0];
    double x = p * (double)n / 100.0;
    size_t k = (size_t)x;
    if ((double)k < x)
        k++;
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return sorted[k - 1];
}

/* |got - want| <= want / 256 (the documented bound; 1/128 is the promise). */
static void assert_within_bound(uint64_t got, uint64_t want)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (diff > want / 256) {
        fail_msg("percentile %llu vs exact %llu: error %llu > %llu", (unsigned long long)got,
                 (unsigned long long)want, (unsigned long long)diff,
                 (unsigned long long)(want / 256));
    }
}

static const double pcts[] = {0.0, 0.001, 0.1, 1, 5, 10, 25, 33.3, 50, 66.6, 75,
                              90, 95, 99, 99.5, 99.9, 99.99, 99.999, 100};

/* ---- tests ------------------------------------------------------------- */

static void test_bucket_map(void **state)
{
    (void)state;
    assert_int_equal(DMCE_HIST_BUCKETS, 7424);
    assert_int_equal(dmce_hist_bucket_low(0), 0);
    for (unsigned i = 0; i + 1 < DMCE_HIST_BUCKETS; i++) {
        uint64_t lo = dmce_hist_bucket_low(i), hi = dmce_hist_bucket_high(i);
        assert_true(lo <= hi);
        assert_true(hi - lo <= lo / 128); /* width - 1 < low / 128 */
        assert_int_equal(dmce_hist_bucket_low(i + 1), hi + 1);
        assert_int_equal(dmce_hist_index(lo), i);
        assert_int_equal(dmce_hist_index(hi), i);
    }
    assert_true(dmce_hist_bucket_high(DMCE_HIST_BUCKETS - 1) == UINT64_MAX);
    assert_int_equal(dmce_hist_index(UINT64_MAX), DMCE_HIST_BUCKETS - 1);
    for (uint64_t v = 0; v < 256; v++) {
        assert_int_equal(dmce_hist_index(v), v);
        assert_int_equal(dmce_hist_bucket_low((unsigned)v), v);
        assert_int_equal(dmce_hist_bucket_high((unsigned)v), v);
    }
    for (int n = 0; n < 100000; n++) {
        uint64_t v = rnd_log(64);
        unsigned i = dmce_hist_index(v);
        assert_true(i < DMCE_HIST_BUCKETS);
        assert_true(dmce_hist_bucket_low(i) <= v && v <= dmce_hist_bucket_high(i));
    }
}

static void test_empty(void **state)
{
    (void)state;
    dmce_hist_t *h = new_hist();
    assert_int_equal(dmce_hist_count(h), 0);
    assert_int_equal(dmce_hist_min(h), 0);
    assert_int_equal(dmce_hist_max(h), 0);
    assert_true(dmce_hist_mean(h) == 0.0);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_int_equal(dmce_hist_percentile(h, pcts[i]), 0);

    /* Merging empty into empty stays empty. */
    dmce_hist_t *g = new_hist();
    dmce_hist_merge(h, g);
    assert_int_equal(dmce_hist_count(h), 0);
    assert_memory_equal(h, g, sizeof(*h));
    free_hist(g);
    free_hist(h);
}

static void test_single_value(void **state)
{
    (void)state;
    static const uint64_t vals[] = {0, 1, 255, 256, 12345, 1000001, UINT64_C(3600000000000),
                                    UINT64_MAX};
    for (size_t j = 0; j < sizeof(vals) / sizeof(vals[0]); j++) {
        dmce_hist_t *h = new_hist();
        dmce_hist_record(h, vals[j]);
        assert_int_equal(dmce_hist_count(h), 1);
        assert_true(dmce_hist_min(h) == vals[j]);
        assert_true(dmce_hist_max(h) == vals[j]);
        assert_true(dmce_hist_mean(h) == (double)vals[j]);
        /* Clamping to [min, max] makes every percentile exact. */
        for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
            assert_true(dmce_hist_percentile(h, pcts[i]) == vals[j]);
        free_hist(h);
    }
}

static void test_exact_small_values(void **state)
{
    (void)state;
    dmce_hist_t *h = new_hist();
    /* 1..255, value v recorded v times: every percentile is exact. */
    uint64_t n = 0;
    for (uint64_t v = 1; v < 256; v++) {
        for (uint64_t r = 0; r < v; r++)
            dmce_hist_record(h, v);
        n += v;
    }
    assert_int_equal(dmce_hist_count(h), n);
    assert_int_equal(dmce_hist_min(h), 1);
    assert_int_equal(dmce_hist_max(h), 255);

    uint64_t *all = malloc(n * sizeof(*all));
    assert_non_null(all);
    size_t k = 0;
    uint64_t sum = 0;
    for (uint64_t v = 1; v < 256; v++)
        for (uint64_t r = 0; r < v; r++) {
            all[k++] = v;
            sum += v;
        }
    assert_true(dmce_hist_mean(h) == (double)sum / (double)n);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_int_equal(dmce_hist_percentile(h, pcts[i]), exact_percentile(all, n, pcts[i]));
    for (int p = 0; p <= 100; p++)
        assert_int_equal(dmce_hist_percentile(h, p), exact_percentile(all, n, p));
    /* Out-of-range p is clamped. */
    assert_int_equal(dmce_hist_percentile(h, -5.0), 1);
    assert_int_equal(dmce_hist_percentile(h, 250.0), 255);
    free(all);
    free_hist(h);
}

static void test_uniform_million(void **state)
{
    (void)state;
    const uint64_t n = 1000000;
    dmce_hist_t *h = new_hist();
    for (uint64_t v = 1; v <= n; v++)
        dmce_hist_record(h, v);
    assert_int_equal(dmce_hist_count(h), n);
    assert_int_equal(dmce_hist_min(h), 1);
    assert_int_equal(dmce_hist_max(h), n);
    assert_true(dmce_hist_mean(h) == 500000.5);

    /* The k-th smallest of 1..n is k. */
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        double p = pcts[i];
        double x = p * (double)n / 100.0;
        uint64_t k = (uint64_t)x;
        if ((double)k < x)
            k++;
        if (k < 1)
            k = 1;
        assert_within_bound(dmce_hist_percentile(h, p), k);
    }
    for (int p = 1; p <= 1000; p++) {
        uint64_t k = (uint64_t)p * n / 1000; /* exact: p/10 percent */
        assert_within_bound(dmce_hist_percentile(h, p / 10.0), k);
    }
    /* x_500000 lies in bucket [499712, 501759]: reported as its midpoint. */
    assert_int_equal(dmce_hist_percentile(h, 50), 500736);
    free_hist(h);
}

static void test_random_spread(void **state)
{
    (void)state;
    const size_t n = 200000;
    uint64_t *all = malloc(n * sizeof(*all));
    assert_non_null(all);
    dmce_hist_t *h = new_hist();
    for (size_t i = 0; i < n; i++) {
        all[i] = rnd_log(43); /* up to ~2.4 hours in ns */
        dmce_hist_record(h, all[i]);
    }
    qsort(all, n, sizeof(*all), cmp_u64);
    assert_true(dmce_hist_min(h) == all[0]);
    assert_true(dmce_hist_max(h) == all[n - 1]);
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_within_bound(dmce_hist_percentile(h, pcts[i]), exact_percentile(all, n, pcts[i]));
    for (int p = 0; p <= 1000; p++)
        assert_within_bound(dmce_hist_percentile(h, p / 10.0), exact_percentile(all, n, p / 10.0));
    free(all);
    free_hist(h);
}

static void test_huge_values(void **state)
{
    (void)state;
    dmce_hist_t *h = new_hist();
    const uint64_t hour = UINT64_C(3600) * 1000000000u;
    dmce_hist_record(h, hour);
    dmce_hist_record(h, UINT64_MAX);
    dmce_hist_record(h, UINT64_MAX);
    dmce_hist_record(h, UINT64_C(1) << 63);
    assert_int_equal(dmce_hist_count(h), 4);
    assert_true(dmce_hist_min(h) == hour);
    assert_true(dmce_hist_max(h) == UINT64_MAX);
    /* The sum overflows 64 bits: the mean must not. */
    double want = ((double)hour + 2.0 * (double)UINT64_MAX + 9223372036854775808.0) / 4.0;
    double got = dmce_hist_mean(h);
    assert_true(got > want * (1 - 1e-12) && got < want * (1 + 1e-12));

    assert_true(dmce_hist_percentile(h, 25) == dmce_hist_percentile(h, 0.1));
    assert_within_bound(dmce_hist_percentile(h, 25), hour);
    assert_within_bound(dmce_hist_percentile(h, 50), UINT64_C(1) << 63);
    assert_within_bound(dmce_hist_percentile(h, 75), UINT64_MAX);
    assert_true(dmce_hist_percentile(h, 100) == UINT64_MAX);
    assert_true(dmce_hist_percentile(h, 99.9) <= UINT64_MAX);

    /* One hour in its own histogram: bucket bound. */
    unsigned i = dmce_hist_index(hour);
    assert_true(dmce_hist_bucket_high(i) - dmce_hist_bucket_low(i) + 1 <=
                dmce_hist_bucket_low(i) / 128);
    free_hist(h);
}

static void test_merge(void **state)
{
    (void)state;
    dmce_hist_t *a = new_hist(), *b = new_hist(), *all = new_hist();
    for (int i = 0; i < 100000; i++) {
        uint64_t v = rnd_log(64);
        dmce_hist_record(all, v);
        dmce_hist_record((rnd() & 3) ? a : b, v);
    }
    dmce_hist_record(all, UINT64_MAX); /* sum carries in both */
    dmce_hist_record(a, UINT64_MAX);
    dmce_hist_record(all, UINT64_MAX);
    dmce_hist_record(b, UINT64_MAX);

    dmce_hist_merge(a, b);
    assert_memory_equal(a, all, sizeof(*a));
    assert_true(dmce_hist_mean(a) == dmce_hist_mean(all));
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        assert_true(dmce_hist_percentile(a, pcts[i]) == dmce_hist_percentile(all, pcts[i]));

    /* Into an empty one: a copy. From an empty one: no change. */
    dmce_hist_t *e = new_hist();
    dmce_hist_merge(e, all);
    assert_memory_equal(e, all, sizeof(*e));
    dmce_hist_reset(b);
    dmce_hist_merge(e, b);
    assert_memory_equal(e, all, sizeof(*e));

    free_hist(e);
    free_hist(a);
    free_hist(b);
    free_hist(all);
}

static void test_reset(void **state)
{
    (void)state;
    dmce_hist_t *h = new_hist(), *fresh = new_hist();
    for (uint64_t v = 0; v < 5000; v++)
        dmce_hist_record(h, v * 977);
    dmce_hist_record(h, UINT64_MAX);
    dmce_hist_reset(h);
    assert_memory_equal(h, fresh, sizeof(*h));
    assert_int_equal(dmce_hist_count(h), 0);
    assert_int_equal(dmce_hist_percentile(h, 50), 0);
    assert_int_equal(dmce_hist_max(h), 0);

    /* Usable again, with no trace of the old values. */
    dmce_hist_record(h, 42);
    assert_int_equal(dmce_hist_count(h), 1);
    assert_int_equal(dmce_hist_min(h), 42);
    assert_int_equal(dmce_hist_max(h), 42);
    assert_true(dmce_hist_mean(h) == 42.0);
    assert_int_equal(dmce_hist_percentile(h, 99.9), 42);
    free_hist(fresh);
    free_hist(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_map),     cmocka_unit_test(test_empty),
        cmocka_unit_test(test_single_value),   cmocka_unit_test(test_exact_small_values),
        cmocka_unit_test(test_uniform_million), cmocka_unit_test(test_random_spread),
        cmocka_unit_test(test_huge_values),    cmocka_unit_test(test_merge),
        cmocka_unit_test(test_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
