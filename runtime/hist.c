/*
 * hist.c - latency histogram with bounded relative error (see hist.h).
 *
 * Bucket math. Let S = DMCE_HIST_SUB_BITS = 7 and N = 2^S = 128.
 *
 *   v < 2N (= 256):  index(v) = v                       (width 1, exact)
 *   v >= 2N:         m = floor(log2 v)  (8 <= m <= 63)
 *                    shift = m - S
 *                    index(v) = (m - S) * N + (v >> shift)
 *
 * For v >= 2N, v >> shift lies in [N, 2N): it is the top S+1 bits of v,
 * whose leading bit is always 1, so it names one of N sub-buckets of the
 * octave [2^m, 2^(m+1)). Octave m occupies indices [(m-S+1)N, (m-S+2)N),
 * which continue the exact range: m = 8 starts at 2N = 256. (The same
 * formula with m = 7 gives index v, so the two cases meet without a gap.)
 * The last index, for v = 2^64-1, is (63-S)N + 2N-1, so there are
 * (63-S)N + 2N = 7424 buckets.
 *
 * Inverse: for i >= 2N, m = i/N + S - 1 and the sub-bucket is N + i%N; the
 * bucket holds [low, low + 2^shift - 1] with low = (N + i%N) << shift.
 *
 * Error bound. A bucket of octave m has width w = 2^(m-S) and its lowest
 * value is low >= 2^m, so w / low <= 2^-S = 1/128: any two values sharing a
 * bucket are within 1/128 of each other (relative to the smaller). A
 * percentile is reported as the bucket midpoint low + w/2; for any x in
 * the bucket |mid - x| <= w/2 <= low/256 <= x/256. Then it is clamped to
 * [min, max]; the exact order statistic lies in that interval, so clamping
 * only moves the answer towards it. Buckets of width 1 are exact.
 *
 * Everything is integer math plus one double multiplication for the rank,
 * so the file needs neither libm nor the heap.
 */
#include "hist.h"

#include <string.h>

#define SUB_BITS DMCE_HIST_SUB_BITS
#define SUB_COUNT DMCE_HIST_SUB_COUNT

unsigned dmce_hist_index(uint64_t v)
{
    if (v < DMCE_HIST_EXACT_LIMIT)
        return (unsigned)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = m - SUB_BITS;
    return shift * SUB_COUNT + (unsigned)(v >> shift);
}

/* Width exponent of bucket i: 0 for the exact range, else m - S. */
static unsigned bucket_shift(unsigned i)
{
    if (i < DMCE_HIST_EXACT_LIMIT)
        return 0;
    return i / SUB_COUNT - 1u; /* m - S = (i/N + S - 1) - S */
}

uint64_t dmce_hist_bucket_low(unsigned i)
{
    if (i >= DMCE_HIST_BUCKETS)
        i = DMCE_HIST_BUCKETS - 1;
    if (i < DMCE_HIST_EXACT_LIMIT)
        return i;
    return (uint64_t)(SUB_COUNT + i % SUB_COUNT) << bucket_shift(i);
}

uint64_t dmce_hist_bucket_high(unsigned i)
{
    if (i >= DMCE_HIST_BUCKETS)
        i = DMCE_HIST_BUCKETS - 1;
    /* low + (2^shift - 1): for the last bucket this is exactly UINT64_MAX. */
    return dmce_hist_bucket_low(i) + ((UINT64_C(1) << bucket_shift(i)) - 1u);
}

static uint64_t bucket_mid(unsigned i)
{
    return dmce_hist_bucket_low(i) + ((UINT64_C(1) << bucket_shift(i)) >> 1);
}

void dmce_hist_reset(dmce_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

int dmce_hist_init(dmce_hist_t *h)
{
    dmce_hist_reset(h);
    return 0;
}

void dmce_hist_destroy(dmce_hist_t *h)
{
    (void)h;
}

static void add_sum(dmce_hist_t *h, uint64_t lo, uint64_t hi)
{
    uint64_t s = h->sum_lo + lo;
    h->sum_hi += hi + (s < lo);
    h->sum_lo = s;
}

void dmce_hist_record(dmce_hist_t *h, uint64_t v)
{
    h->buckets[dmce_hist_index(v)]++;
    h->count++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    add_sum(h, v, 0);
}

uint64_t dmce_hist_count(const dmce_hist_t *h)
{
    return h->count;
}

uint64_t dmce_hist_min(const dmce_hist_t *h)
{
    return h->count ? h->min : 0;
}

uint64_t dmce_hist_max(const dmce_hist_t *h)
{
    return h->count ? h->max : 0;
}

double dmce_hist_mean(const dmce_hist_t *h)
{
    if (h->count == 0)
        return 0.0;
    double sum = (double)h->sum_hi * 18446744073709551616.0 + (double)h->sum_lo;
    return sum / (double)h->count;
}

uint64_t dmce_hist_percentile(const dmce_hist_t *h, double p)
{
    if (h->count == 0)
        return 0;
    if (!(p > 0.0)) /* also catches NaN */
        return h->min;
    if (p >= 100.0)
        return h->max;

    /* Nearest rank: k = ceil(p * n / 100), 1 <= k <= n, without libm. */
    double x = p * (double)h->count / 100.0;
    uint64_t k = (uint64_t)x;
    if ((double)k < x)
        k++;
    if (k < 1)
        k = 1;
    if (k > h->count)
        k = h->count;

    uint64_t seen = 0;
    for (unsigned i = 0; i < DMCE_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= k) {
            uint64_t v = bucket_mid(i);
            if (v < h->min)
                v = h->min;
            if (v > h->max)
                v = h->max;
            return v;
        }
    }
    return h->max; /* unreachable while count matches the buckets */
}

void dmce_hist_merge(dmce_hist_t *dst, const dmce_hist_t *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < DMCE_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    add_sum(dst, src->sum_lo, src->sum_hi);
}
