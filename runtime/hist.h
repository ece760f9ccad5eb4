/*
 * hist.h - latency histogram with bounded relative error.
 *
 * A log-linear (HdrHistogram-style) histogram of uint64 values, meant for
 * nanosecond latencies. It covers the whole uint64 range (0 .. 2^64-1 ns,
 * about 584 years) with no clamping, so "up to an hour" is far inside it.
 *
 * Buckets: 2^7 = 128 equal-width sub-buckets per power of two. Values
 * below 256 each have their own bucket (exact). A value v >= 256 with most
 * significant bit m (2^m <= v < 2^(m+1)) falls into a bucket of width
 * 2^(m-7), so a bucket's width is at most 1/128 of its lowest value: every
 * value in a bucket is within 1/128 of every other. Percentiles report a
 * bucket's midpoint, which is within 1/256 of any value in the bucket
 * (see hist.c for the index math and the proof).
 *
 * Storage: a fixed-size struct, no heap. DMCE_HIST_BUCKETS (7424) uint64
 * counters, about 58 KiB: fine as a global, a heap object or a member, but
 * think twice before putting several on a small thread stack.
 * dmce_hist_init / dmce_hist_destroy exist so callers need not know that
 * (init only clears; destroy does nothing).
 *
 * Exact: count, min, max and the sum behind the mean (128-bit). Bounded:
 * percentiles (relative error <= 1/256 against the exact order statistic,
 * and always inside [min, max], so p0 and p100 are exact).
 *
 * Not thread-safe: keep one histogram per thread and merge them after.
 * No call blocks or allocates.
 */
#ifndef DMCE_HIST_H
#define DMCE_HIST_H

#include <stdint.h>

#define DMCE_HIST_SUB_BITS 7                            /* log2 sub-buckets per power of two */
#define DMCE_HIST_SUB_COUNT (1u << DMCE_HIST_SUB_BITS) /* 128 */
/* Values below this are exact: 256. */
#define DMCE_HIST_EXACT_LIMIT (2u * DMCE_HIST_SUB_COUNT)
/* Index of UINT64_MAX + 1: (63 - 7) * 128 + 256. */
#define DMCE_HIST_BUCKETS ((64u - DMCE_HIST_SUB_BITS - 1u) * DMCE_HIST_SUB_COUNT + \
                           DMCE_HIST_EXACT_LIMIT)

typedef struct dmce_hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX when empty */
    uint64_t max; /* 0 when empty */
    uint64_t sum_lo, sum_hi; /* exact 128-bit sum of recorded values */
    uint64_t buckets[DMCE_HIST_BUCKETS];
} dmce_hist_t;

/* Make h empty. Always returns 0 (no allocation). */
int dmce_hist_init(dmce_hist_t *h);

/* Nothing to release; present for symmetry. h may be NULL. */
void dmce_hist_destroy(dmce_hist_t *h);

/* Record one value. */
void dmce_hist_record(dmce_hist_t *h, uint64_t v);

/* Number of recorded values. */
uint64_t dmce_hist_count(const dmce_hist_t *h);

/* Smallest / largest recorded value, exact; 0 when empty. */
uint64_t dmce_hist_min(const dmce_hist_t *h);
uint64_t dmce_hist_max(const dmce_hist_t *h);

/* Exact arithmetic mean (as a double); 0.0 when empty. */
double dmce_hist_mean(const dmce_hist_t *h);

/*
 * Value at percentile p (clamped to [0, 100]): the nearest-rank order
 * statistic x_k with k = max(1, ceil(p/100 * count)), reported as the
 * midpoint of x_k's bucket clamped to [min, max]. |result - x_k| <=
 * x_k / 256. 0 when empty.
 */
uint64_t dmce_hist_percentile(const dmce_hist_t *h, double p);

/* dst += src: afterwards dst is as if it had recorded both. */
void dmce_hist_merge(dmce_hist_t *dst, const dmce_hist_t *src);

/* Make h empty again. */
void dmce_hist_reset(dmce_hist_t *h);

/* Bucket index of v, and the lowest / highest value of bucket i (tests, tools). */
unsigned dmce_hist_index(uint64_t v);
uint64_t dmce_hist_bucket_low(unsigned i);
uint64_t dmce_hist_bucket_high(unsigned i);

#endif /* DMCE_HIST_H */
