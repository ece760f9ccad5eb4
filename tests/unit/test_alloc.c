/*
 * Unit tests for the in-block allocator (runtime/alloc.c): format and
 * attach, filling and fragmentation, coalescing, the exact-size semantics
 * of dmce_alloc_check, bad frees, owner tags, walks, both granule extremes,
 * a randomized stress against a shadow model, and corruption detection.
 * Blocks are plain aligned_alloc memory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmce/error.h>

#include "alloc.h"

/* ---- helpers ----------------------------------------------------------- */

static void *new_block(uint64_t size, uint32_t granule)
{
    size_t rounded = (size_t)((size + 4095) & ~(uint64_t)4095);
    void *b = aligned_alloc(4096, rounded);
    assert_non_null(b);
    memset(b, 0xa5, rounded); /* format must not rely on zeroed memory */
    assert_int_equal(dmce_block_format(b, size, granule, 4096, 7, 0), 0);
    assert_int_equal(dmce_block_attach(b, size), 0);
    assert_int_equal(dmce_block_verify(b), 0);
    return b;
}

static const dmce_block_hdr_t *hdr(const void *b)
{
    return (const dmce_block_hdr_t *)b;
}

static dmce_block_usage_t usage(const void *b)
{
    dmce_block_usage_t u;
    dmce_block_usage(b, &u);
    return u;
}

static uint64_t xs_state;

static uint64_t rnd(void)
{
    xs_state ^= xs_state << 13;
    xs_state ^= xs_state >> 7;
    xs_state ^= xs_state << 17;
    return xs_state;
}

static uint8_t pattern(uint64_t off, uint64_t i)
{
    return (uint8_t)((off * 2654435761u) ^ (i * 31) ^ (i >> 8));
}

/* Empty block: one free run of all granules, counters at zero. */
static void assert_empty(const void *b)
{
    dmce_block_usage_t u = usage(b);
    assert_int_equal(u.nallocs, 0);
    assert_int_equal(u.used_bytes, 0);
    assert_int_equal(u.free_bytes, u.data_bytes);
    assert_int_equal(u.largest_free, u.data_bytes);
    assert_int_equal(dmce_block_verify(b), 0);
}

/* ---- format and attach ------------------------------------------------- */

static void test_format_geometry(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    void *b = new_block(size, 128);
    const dmce_block_hdr_t *h = hdr(b);
    uint64_t n = h->ngranules;
    assert_int_equal(h->magic, DMCE_BLOCK_MAGIC);
    assert_int_equal(h->granule, 128);
    assert_int_equal(h->page_size, 4096);
    assert_int_equal(h->block_id, 7);
    assert_int_equal(h->map_offset, sizeof(dmce_block_hdr_t));
    assert_int_equal(h->data_offset % 128, 0);
    assert_true(h->data_offset >= h->map_offset + 4 * n);
    assert_true(h->data_offset + n * 128 <= size);
    /* maximal: one more granule would not fit */
    uint64_t more = ((256 + 4 * (n + 1) + 127) & ~127ull) + (n + 1) * 128;
    assert_true(more > size);
    dmce_block_usage_t u = usage(b);
    assert_int_equal(u.size, size);
    assert_int_equal(u.data_bytes, n * 128);
    assert_empty(b);
    free(b);
}

static void test_format_errors(void **state)
{
    (void)state;
    void *b = aligned_alloc(4096, 65536);
    assert_non_null(b);
    assert_int_equal(dmce_block_format(NULL, 65536, 128, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format(b, 65536, 32, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format(b, 65536, 100, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format(b, 65536, 8192, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format(b, 65536, 0, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format((char *)b + 8, 4096, 64, 4096, 1, 0), -EINVAL);
    /* smallest block: header, one map word padded to 64, one granule */
    assert_int_equal(dmce_block_format(b, 256 + 64 + 64 - 1, 64, 4096, 1, 0), -EINVAL);
    assert_int_equal(dmce_block_format(b, 256 + 64 + 64, 64, 4096, 1, 0), 0);
    assert_int_equal(hdr(b)->ngranules, 1);
    assert_int_equal(hdr(b)->data_offset, 320);
    assert_int_equal(dmce_block_max_alloc(b), 48);
    uint64_t off;
    assert_int_equal(dmce_alloc(b, 48, 1, &off), 0);
    assert_int_equal(off, 336);
    assert_int_equal(dmce_alloc(b, 1, 1, &off), DMCE_ENOMEM);
    assert_int_equal(dmce_block_verify(b), 0);
    /* too many granules for 30-bit run lengths */
    assert_int_equal(dmce_block_format(b, (1ull << 30) * 68 + 4096, 64, 4096, 1, 0), -EINVAL);
    free(b);
}

static void test_attach_errors(void **state)
{
    (void)state;
    const uint64_t size = 65536;
    void *b = new_block(size, 256);
    dmce_block_hdr_t *h = b;
    assert_int_equal(dmce_block_attach(b, size), 0);
    assert_int_equal(dmce_block_attach(b, size - 1), DMCE_ECORRUPT);
    assert_int_equal(dmce_block_attach(b, size * 2), DMCE_ECORRUPT);
    assert_int_equal(dmce_block_attach(NULL, size), -EINVAL);
    assert_int_equal(dmce_block_attach(b, 100), -EINVAL);

    h->magic ^= 1;
    assert_int_equal(dmce_block_attach(b, size), DMCE_EBADMAGIC);
    h->magic ^= 1;
    h->version = DMCE_BLOCK_VERSION + 1;
    assert_int_equal(dmce_block_attach(b, size), DMCE_EVERSION);
    h->version = DMCE_BLOCK_VERSION;
    h->layout ^= 0x100;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ELAYOUT);
    h->layout = DMCE_BLOCK_LAYOUT_WORD;
    assert_int_equal(dmce_block_attach(b, size), 0);

    uint32_t n = h->ngranules;
    h->ngranules = n + 1; /* does not fit */
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    h->ngranules = 0;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    h->ngranules = n;
    h->granule = 96;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    h->granule = 256;
    h->data_offset += 256;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    h->data_offset -= 256;
    h->bins[3] = n + 1;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    h->bins[3] = 0;
    assert_int_equal(dmce_block_attach(b, size), 0);
    assert_int_equal(dmce_block_verify(b), 0);
    free(b);
}

/* ---- fill, fragmentation, coalescing ----------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Fill with `size`-byte allocations until DMCE_ENOMEM; returns the count. */
static size_t fill(void *b, uint64_t size, uint64_t *offs, size_t cap)
{
    size_t n = 0;
    uint64_t off;
    int r;
    while ((r = dmce_alloc(b, size, (uint32_t)n, &off)) == 0) {
        assert_true(n < cap);
        assert_int_equal(off % 16, 0);
        assert_true(off > 0);
        offs[n++] = off;
    }
    assert_int_equal(r, DMCE_ENOMEM);
    return n;
}

static void test_fill_until_enomem(void **state)
{
    (void)state;
    void *b = new_block(64 * 1024, 64);
    uint32_t ng = hdr(b)->ngranules;
    uint64_t *offs = calloc(ng + 1, sizeof(*offs));
    size_t n = fill(b, 1, offs, ng + 1);
    assert_int_equal(n, ng); /* 1 + 16 bytes fit one granule */
    dmce_block_usage_t u = usage(b);
    assert_int_equal(u.nallocs, n);
    assert_int_equal(u.used_bytes, n);
    assert_int_equal(u.free_bytes, 0);
    assert_int_equal(u.largest_free, 0);
    for (size_t i = 1; i < n; i++)
        assert_int_equal(offs[i] - offs[i - 1], 64); /* address order */
    assert_int_equal(dmce_block_verify(b), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    assert_empty(b);
    free(offs);
    free(b);
}

static void test_fragmentation(void **state)
{
    (void)state;
    void *b = new_block(128 * 1024, 64);
    uint32_t ng = hdr(b)->ngranules;
    uint64_t *offs = calloc(ng, sizeof(*offs));
    uint64_t *holes = calloc(ng, sizeof(*offs));
    size_t n = fill(b, 48, offs, ng);
    assert_int_equal(n, ng);
    size_t nh = 0;
    for (size_t i = 0; i < n; i += 2) {
        uint64_t sz = 0;
        uint32_t owner = 99;
        assert_int_equal(dmce_alloc_free(b, offs[i], &owner, &sz), 0);
        assert_int_equal(sz, 48);
        assert_int_equal(owner, i);
        holes[nh++] = offs[i];
    }
    assert_int_equal(dmce_block_verify(b), 0);
    dmce_block_usage_t u = usage(b);
    assert_int_equal(u.free_bytes, nh * 64);
    assert_int_equal(u.largest_free, 64);
    assert_int_equal(u.nallocs, n - nh);
    uint64_t off;
    /* plenty of free memory, but no two adjacent granules */
    assert_int_equal(dmce_alloc(b, 49, 1, &off), DMCE_ENOMEM);
    /* small allocations reuse exactly the holes */
    uint64_t *got = calloc(ng, sizeof(*got));
    size_t ng2 = fill(b, 20, got, ng);
    assert_int_equal(ng2, nh);
    qsort(got, ng2, sizeof(*got), cmp_u64);
    assert_memory_equal(got, holes, nh * sizeof(*got));
    assert_int_equal(dmce_block_verify(b), 0);
    /* free everything in a scattered order: must coalesce to one run */
    for (size_t i = 1; i < n; i += 2)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    assert_int_equal(dmce_alloc_free(b, offs[0], NULL, NULL), 0); /* now holds got[0] */
    assert_int_equal(dmce_alloc_free(b, got[0], NULL, NULL), DMCE_EBADADDR);
    for (size_t i = ng2; i-- > 1;)
        assert_int_equal(dmce_alloc_free(b, got[i], NULL, NULL), 0);
    assert_empty(b);
    unsigned nonempty = 0;
    for (unsigned i = 0; i < DMCE_ALLOC_BINS; i++)
        nonempty += hdr(b)->bins[i] != 0;
    assert_int_equal(nonempty, 1);
    free(got);
    free(holes);
    free(offs);
    free(b);
}

static void test_coalesce_neighbours(void **state)
{
    (void)state;
    void *b = new_block(64 * 1024, 128);
    uint64_t a, c, d, e;
    assert_int_equal(dmce_alloc(b, 300, 1, &a), 0); /* 3 granules */
    assert_int_equal(dmce_alloc(b, 100, 1, &c), 0); /* 1 */
    assert_int_equal(dmce_alloc(b, 500, 1, &d), 0); /* 4 */
    assert_int_equal(dmce_alloc(b, 100, 1, &e), 0); /* guard */
    assert_int_equal(c - a, 3 * 128);
    assert_int_equal(d - c, 128);
    assert_int_equal(dmce_alloc_free(b, a, NULL, NULL), 0); /* free: [a] */
    assert_int_equal(dmce_alloc_free(b, d, NULL, NULL), 0); /* free: [a] [d] */
    assert_int_equal(dmce_block_verify(b), 0);
    assert_int_equal(usage(b).nallocs, 2);
    assert_int_equal(dmce_alloc_free(b, c, NULL, NULL), 0); /* merges both sides */
    assert_int_equal(dmce_block_verify(b), 0);
    uint64_t x;
    /* the merged 8-granule run at a is found again (first fit in bin 3) */
    assert_int_equal(dmce_alloc(b, 8 * 128 - 16, 2, &x), 0);
    assert_int_equal(x, a);
    assert_int_equal(dmce_alloc_free(b, x, NULL, NULL), 0);
    assert_int_equal(dmce_alloc_free(b, e, NULL, NULL), 0);
    assert_empty(b);
    free(b);
}

/* ---- check, lookup, bad frees ------------------------------------------ */

static void test_check_exact_size(void **state)
{
    (void)state;
    const uint64_t size = 256 * 1024;
    void *b = new_block(size, 128);
    const dmce_block_hdr_t *h = hdr(b);
    uint64_t off, big;
    assert_int_equal(dmce_alloc(b, 100, 5, &off), 0);
    assert_int_equal(dmce_alloc(b, 1000, 6, &big), 0);
    const uint8_t *p = (const uint8_t *)b + off;
    for (int i = 0; i < 100; i++)
        assert_int_equal(p[i], 0); /* zeroed despite the 0xa5 fill */

    assert_int_equal(dmce_alloc_check(b, off, 0), 0);
    assert_int_equal(dmce_alloc_check(b, off, 100), 0);
    assert_int_equal(dmce_alloc_check(b, off + 99, 1), 0);
    assert_int_equal(dmce_alloc_check(b, off + 99, 2), DMCE_ECROSSEND);
    assert_int_equal(dmce_alloc_check(b, off, 101), DMCE_ECROSSEND);
    assert_int_equal(dmce_alloc_check(b, off + 100, 0), DMCE_EBADADDR); /* slack */
    assert_int_equal(dmce_alloc_check(b, off + 111, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, off - 1, 1), DMCE_EBADADDR); /* alloc header */
    assert_int_equal(dmce_alloc_check(b, off - 16, 0), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, 0, 0), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, 64, 8), DMCE_EBADADDR); /* block header */
    assert_int_equal(dmce_alloc_check(b, h->map_offset + 4, 4), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, h->data_offset - 1, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, size - 1, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, size, 0), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, size + 4096, 0), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, UINT64_MAX, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, UINT64_MAX - 15, 16), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, off, UINT64_MAX), DMCE_ECROSSEND);
    assert_int_equal(dmce_alloc_check(b, off + 50, UINT64_MAX - off - 49), DMCE_ECROSSEND);
    assert_int_equal(dmce_alloc_check(b, off + 50, UINT64_MAX - off - 50 + 1), DMCE_ECROSSEND);

    /* multi-granule: every body granule maps back to the head */
    assert_int_equal(dmce_alloc_check(b, big + 999, 1), 0);
    assert_int_equal(dmce_alloc_check(b, big + 500, 500), 0);
    assert_int_equal(dmce_alloc_check(b, big + 500, 501), DMCE_ECROSSEND);
    dmce_alloc_info_t info;
    assert_int_equal(dmce_alloc_lookup(b, big + 900, &info), 0);
    assert_int_equal(info.offset, big);
    assert_int_equal(info.size, 1000);
    assert_int_equal(info.owner, 6);
    assert_int_equal(dmce_alloc_lookup(b, off + 3, &info), 0);
    assert_int_equal(info.offset, off);
    assert_int_equal(info.owner, 5);
    assert_int_equal(dmce_alloc_lookup(b, big - 8, &info), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_lookup(b, big + 1000, &info), DMCE_EBADADDR);
    /* never allocated */
    assert_int_equal(dmce_alloc_check(b, big + 2048, 1), DMCE_EBADADDR);

    /* freed */
    assert_int_equal(dmce_alloc_free(b, off, NULL, NULL), 0);
    assert_int_equal(dmce_alloc_check(b, off, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_check(b, off, 0), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_lookup(b, off, &info), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_free(b, big, NULL, NULL), 0);
    assert_int_equal(dmce_alloc_check(b, big + 500, 1), DMCE_EBADADDR);
    assert_empty(b);
    free(b);
}

static void test_bad_frees(void **state)
{
    (void)state;
    const uint64_t size = 64 * 1024;
    void *b = new_block(size, 64);
    const dmce_block_hdr_t *h = hdr(b);
    uint64_t off, other;
    assert_int_equal(dmce_alloc(b, 200, 42, &off), 0);
    assert_int_equal(dmce_alloc(b, 10, 43, &other), 0);
    dmce_block_usage_t before = usage(b);

    const uint64_t bad[] = {
        0,         1,       64,        h->map_offset, h->data_offset, off - 16,
        off - 1,   off + 1, off + 16,  off + 64,      off + 128,      other + 64,
        size - 16, size,    size + 16, UINT64_MAX,    UINT64_MAX - 15};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dmce_alloc_free(b, bad[i], NULL, NULL), DMCE_EBADADDR);
    dmce_block_usage_t after = usage(b);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(dmce_block_verify(b), 0);

    uint32_t owner = 0;
    uint64_t sz = 0;
    assert_int_equal(dmce_alloc_free(b, off, &owner, &sz), 0);
    assert_int_equal(owner, 42);
    assert_int_equal(sz, 200);
    assert_int_equal(dmce_alloc_free(b, off, &owner, &sz), DMCE_EBADADDR); /* double */
    assert_int_equal(dmce_alloc_free(b, other, NULL, NULL), 0);
    assert_int_equal(dmce_alloc_free(b, other, NULL, NULL), DMCE_EBADADDR);
    assert_empty(b);
    uint64_t o2;
    assert_int_equal(dmce_alloc(b, 0, 1, &o2), -EINVAL);
    assert_int_equal(dmce_alloc(b, 1, 1, NULL), -EINVAL);
    free(b);
}

/* ---- owners, walks, limits --------------------------------------------- */

typedef struct visit {
    uint64_t offs[64];
    uint32_t owners[64];
    size_t n;
    size_t stop_at;
} visit_t;

static int collect(const dmce_alloc_info_t *info, void *arg)
{
    visit_t *v = arg;
    v->offs[v->n] = info->offset;
    v->owners[v->n] = info->owner;
    v->n++;
    return v->n == v->stop_at ? 77 : 0;
}

static void test_owner_free(void **state)
{
    (void)state;
    void *b = new_block(256 * 1024, 128);
    uint64_t offs[30];
    uint64_t bytes2 = 0;
    for (uint32_t i = 0; i < 30; i++) {
        uint64_t sz = 1 + i * 37;
        assert_int_equal(dmce_alloc(b, sz, 1 + i % 3, &offs[i]), 0);
        if (1 + i % 3 == 2)
            bytes2 += sz;
    }
    uint64_t bytes = 5;
    assert_int_equal(dmce_alloc_free_owner(b, 2, &bytes), 10);
    assert_int_equal(bytes, 5 + bytes2); /* added, not stored */
    assert_int_equal(dmce_block_verify(b), 0);
    assert_int_equal(dmce_alloc_free_owner(b, 2, NULL), 0);
    assert_int_equal(dmce_alloc_free_owner(b, 99, NULL), 0);
    visit_t v = {.stop_at = 0};
    assert_int_equal(dmce_alloc_foreach(b, collect, &v), 0);
    assert_int_equal(v.n, 20);
    for (size_t i = 0; i < v.n; i++)
        assert_int_not_equal(v.owners[i], 2);
    for (uint32_t i = 0; i < 30; i++)
        assert_int_equal(dmce_alloc_check(b, offs[i], 0), 1 + i % 3 == 2 ? DMCE_EBADADDR : 0);
    assert_int_equal(dmce_alloc_free_owner(b, 1, NULL), 10);
    assert_int_equal(dmce_alloc_free_owner(b, 3, NULL), 10);
    assert_empty(b);
    free(b);
}

static void test_foreach_order(void **state)
{
    (void)state;
    void *b = new_block(256 * 1024, 64);
    uint64_t offs[40];
    for (uint32_t i = 0; i < 40; i++)
        assert_int_equal(dmce_alloc(b, 1 + (i * 97) % 300, i, &offs[i]), 0);
    /* punch holes, then refill some with allocations of new sizes */
    for (uint32_t i = 0; i < 40; i += 3)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    for (uint32_t i = 0; i < 40; i += 6)
        assert_int_equal(dmce_alloc(b, 20, 100 + i, &offs[i]), 0);
    visit_t v = {.stop_at = 0};
    assert_int_equal(dmce_alloc_foreach(b, collect, &v), 0);
    assert_int_equal(v.n, usage(b).nallocs);
    for (size_t i = 1; i < v.n; i++)
        assert_true(v.offs[i] > v.offs[i - 1]);
    for (size_t i = 0; i < v.n; i++) {
        dmce_alloc_info_t info;
        assert_int_equal(dmce_alloc_lookup(b, v.offs[i], &info), 0);
        assert_int_equal(info.owner, v.owners[i]);
    }
    visit_t s = {.stop_at = 5};
    assert_int_equal(dmce_alloc_foreach(b, collect, &s), 77);
    assert_int_equal(s.n, 5);
    assert_memory_equal(s.offs, v.offs, 5 * sizeof(uint64_t));
    free(b);
}

static void test_max_alloc_footprint(void **state)
{
    (void)state;
    void *b = new_block(100000, 128);
    dmce_block_usage_t u = usage(b);
    uint64_t max = dmce_block_max_alloc(b);
    assert_int_equal(max, u.data_bytes - 16);
    assert_int_equal(dmce_alloc_footprint(b, 1), 128);
    assert_int_equal(dmce_alloc_footprint(b, 112), 128);
    assert_int_equal(dmce_alloc_footprint(b, 113), 256);
    assert_int_equal(dmce_alloc_footprint(b, max), u.data_bytes);
    assert_int_equal(dmce_alloc_footprint(b, UINT64_MAX), UINT64_MAX);
    uint64_t off, o2;
    assert_int_equal(dmce_alloc(b, max + 1, 1, &off), DMCE_ENOMEM);
    assert_int_equal(dmce_alloc(b, UINT64_MAX, 1, &off), DMCE_ENOMEM);
    assert_int_equal(dmce_alloc(b, max, 1, &off), 0);
    assert_int_equal(off, hdr(b)->data_offset + 16);
    assert_int_equal(dmce_alloc_check(b, off, max), 0);
    assert_int_equal(dmce_alloc_check(b, off + max - 1, 1), 0);
    assert_int_equal(dmce_alloc_check(b, off + max - 1, 2), DMCE_ECROSSEND);
    assert_int_equal(dmce_alloc(b, 1, 1, &o2), DMCE_ENOMEM);
    u = usage(b);
    assert_int_equal(u.free_bytes, 0);
    assert_int_equal(u.used_bytes, max);
    assert_int_equal(dmce_block_verify(b), 0);
    assert_int_equal(dmce_alloc_free(b, off, NULL, NULL), 0);
    /* footprints add up: allocations of footprint f use exactly f bytes */
    uint64_t sum = 0;
    for (uint64_t sz = 1; sz < 3000; sz += 211) {
        assert_int_equal(dmce_alloc(b, sz, 1, &off), 0);
        sum += dmce_alloc_footprint(b, sz);
        assert_int_equal(usage(b).data_bytes - usage(b).free_bytes, sum);
    }
    free(b);
}

static void granule_cycle(uint32_t g)
{
    void *b = new_block(4 << 20, g);
    assert_int_equal(hdr(b)->granule, g);
    uint64_t off, o2;
    assert_int_equal(dmce_alloc(b, g - 16, 1, &off), 0);
    assert_int_equal(dmce_alloc(b, g - 15, 1, &o2), 0);
    assert_int_equal(o2 - off, g); /* first took one granule */
    assert_int_equal(dmce_alloc_footprint(b, g - 15), 2 * g);
    assert_int_equal(dmce_alloc_check(b, o2 + g - 16, 1), 0); /* second granule */
    assert_int_equal(dmce_alloc_check(b, o2 + g - 15, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_alloc_free(b, off, NULL, NULL), 0);
    assert_int_equal(dmce_alloc_free(b, o2, NULL, NULL), 0);
    uint32_t ng = hdr(b)->ngranules;
    uint64_t *offs = calloc(ng, sizeof(*offs));
    size_t n = fill(b, g / 2, offs, ng);
    assert_int_equal(n, ng);
    assert_int_equal(dmce_block_verify(b), 0);
    for (size_t i = 0; i < n; i += 2)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    for (size_t i = 1; i < n; i += 2)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    assert_empty(b);
    free(offs);
    free(b);
}

static void test_granule_64(void **state)
{
    (void)state;
    granule_cycle(64);
}

static void test_granule_4096(void **state)
{
    (void)state;
    granule_cycle(4096);
}

/* ---- randomized stress against a shadow model -------------------------- */

typedef struct live {
    uint64_t off;
    uint64_t size;
    uint32_t owner;
} live_t;

static uint64_t rand_size(void)
{
    uint64_t r = rnd() % 100;
    if (r < 60)
        return 1 + rnd() % 64;
    if (r < 90)
        return 1 + rnd() % 1024;
    return 1 + rnd() % 16384;
}

static void stress_alloc(void *b, live_t *lv, size_t *n, uint64_t *used)
{
    uint64_t sz = rand_size(), off;
    uint32_t owner = 1 + (uint32_t)(rnd() % 4);
    int r = dmce_alloc(b, sz, owner, &off);
    if (r == DMCE_ENOMEM) {
        assert_true(usage(b).largest_free < dmce_alloc_footprint(b, sz));
        return;
    }
    assert_int_equal(r, 0);
    uint8_t *p = (uint8_t *)b + off;
    for (uint64_t i = 0; i < sz; i++) {
        assert_int_equal(p[i], 0);
        p[i] = pattern(off, i);
    }
    lv[(*n)++] = (live_t){off, sz, owner};
    *used += sz;
}

static void stress_free(void *b, live_t *lv, size_t *n, uint64_t *used)
{
    size_t k = rnd() % *n;
    live_t a = lv[k];
    const uint8_t *p = (const uint8_t *)b + a.off;
    for (uint64_t i = 0; i < a.size; i++)
        assert_int_equal(p[i], pattern(a.off, i));
    assert_int_equal(dmce_alloc_check(b, a.off + a.size - 1, 1), 0);
    assert_int_equal(dmce_alloc_check(b, a.off, a.size + 1), DMCE_ECROSSEND);
    uint32_t owner;
    uint64_t sz;
    assert_int_equal(dmce_alloc_free(b, a.off, &owner, &sz), 0);
    assert_int_equal(owner, a.owner);
    assert_int_equal(sz, a.size);
    assert_int_equal(dmce_alloc_free(b, a.off, NULL, NULL), DMCE_EBADADDR);
    lv[k] = lv[--*n];
    *used -= a.size;
}

static void test_stress(void **state)
{
    (void)state;
    xs_state = 0x9e3779b97f4a7c15ull;
    void *b = new_block(512 * 1024, 64); /* small enough to run full */
    size_t cap = hdr(b)->ngranules, n = 0;
    live_t *lv = calloc(cap, sizeof(*lv));
    uint64_t used = 0;
    for (int op = 0; op < 20000; op++) {
        /* bias toward allocation early, toward freeing when the block is full */
        int do_alloc = n == 0 || rnd() % 100 < (op % 4000 < 2000 ? 65u : 40u);
        if (do_alloc)
            stress_alloc(b, lv, &n, &used);
        else
            stress_free(b, lv, &n, &used);
        if (op % 500 == 0) {
            assert_int_equal(dmce_block_verify(b), 0);
            dmce_block_usage_t u = usage(b);
            assert_int_equal(u.nallocs, n);
            assert_int_equal(u.used_bytes, used);
        }
    }
    assert_int_equal(dmce_block_verify(b), 0);
    /* drop owners 1..3 by tag, the rest one by one */
    for (uint32_t o = 1; o <= 3; o++) {
        size_t cnt = 0;
        uint64_t bytes = 0, expect = 0;
        for (size_t i = 0; i < n; i++)
            if (lv[i].owner == o) {
                cnt++;
                expect += lv[i].size;
            }
        assert_int_equal(dmce_alloc_free_owner(b, o, &bytes), cnt);
        assert_int_equal(bytes, expect);
        assert_int_equal(dmce_block_verify(b), 0);
    }
    for (size_t i = 0; i < n; i++)
        if (lv[i].owner == 4)
            assert_int_equal(dmce_alloc_free(b, lv[i].off, NULL, NULL), 0);
    assert_empty(b);
    free(lv);
    free(b);
}

/* ---- corruption -------------------------------------------------------- */

static uint32_t *map_of(void *b)
{
    return (uint32_t *)((uint8_t *)b + hdr(b)->map_offset);
}

static uint32_t granule_of(void *b, uint64_t off)
{
    return (uint32_t)((off - hdr(b)->data_offset) / hdr(b)->granule);
}

static void test_corrupt_map(void **state)
{
    (void)state;
    void *b = new_block(64 * 1024, 64);
    uint32_t *map = map_of(b);
    uint64_t a, c;
    assert_int_equal(dmce_alloc(b, 500, 1, &a), 0); /* 9 granules */
    assert_int_equal(dmce_alloc(b, 100, 1, &c), 0);
    uint32_t ga = granule_of(b, a);

    /* BODY distance pointing at the wrong granule */
    uint32_t save = map[ga + 3];
    map[ga + 3] = 0xc0000000u | 2;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    assert_int_equal(dmce_alloc_check(b, a + 3 * 64, 1), DMCE_ECORRUPT);
    /* BODY distance reaching before granule 0 */
    map[ga + 3] = 0xc0000000u | (ga + 4);
    assert_int_equal(dmce_alloc_check(b, a + 3 * 64, 1), DMCE_ECORRUPT);
    map[ga + 3] = save;
    assert_int_equal(dmce_alloc_check(b, a + 3 * 64, 1), 0);
    assert_int_equal(dmce_block_verify(b), 0);

    /* HEAD length disagreeing with the alloc header */
    save = map[ga];
    map[ga] = 0x80000000u | 7;
    assert_int_equal(dmce_alloc_check(b, a, 1), DMCE_ECORRUPT);
    assert_int_equal(dmce_alloc_free(b, a, NULL, NULL), DMCE_ECORRUPT);
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    /* HEAD length running past the last granule */
    map[ga] = 0x80000000u | 0x3fffffffu;
    assert_int_equal(dmce_alloc_check(b, a, 1), DMCE_ECORRUPT);
    map[ga] = save;

    /* a free interior word that is not 0 */
    uint32_t gfree = granule_of(b, c) + 3;
    map[gfree] = 0x80000000u | 1;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    map[gfree] = 0;
    assert_int_equal(dmce_block_verify(b), 0);

    /* free-list link and counters */
    dmce_block_hdr_t *h = b;
    unsigned bin = 0;
    while (!h->bins[bin])
        bin++;
    h->bins[bin + 1] = h->bins[bin];
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    h->bins[bin + 1] = 0;
    h->nallocs++;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    h->nallocs--;
    h->free_granules--;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    h->free_granules++;
    h->used_bytes++;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    h->used_bytes--;
    assert_int_equal(dmce_block_verify(b), 0);
    free(b);
}

static void test_corrupt_alloc_header(void **state)
{
    (void)state;
    void *b = new_block(64 * 1024, 128);
    uint64_t a, c;
    assert_int_equal(dmce_alloc(b, 300, 9, &a), 0);
    assert_int_equal(dmce_alloc(b, 10, 9, &c), 0);
    dmce_alloc_hdr_t *ah = (dmce_alloc_hdr_t *)((uint8_t *)b + a - 16);
    assert_int_equal(ah->size, 300);
    assert_int_equal(ah->owner, 9);
    assert_int_equal(ah->magic, DMCE_ALLOC_MAGIC ^ 300u);

    ah->magic ^= 0x10;
    assert_int_equal(dmce_alloc_check(b, a + 200, 1), DMCE_ECORRUPT);
    dmce_alloc_info_t info;
    assert_int_equal(dmce_alloc_lookup(b, a, &info), DMCE_ECORRUPT);
    assert_int_equal(dmce_alloc_free(b, a, NULL, NULL), DMCE_ECORRUPT);
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    visit_t v = {.stop_at = 0};
    assert_int_equal(dmce_alloc_foreach(b, collect, &v), DMCE_ECORRUPT);
    ah->magic ^= 0x10;

    /* consistent magic, but a size that needs a different granule count */
    ah->size = 5000;
    ah->magic = DMCE_ALLOC_MAGIC ^ 5000u;
    assert_int_equal(dmce_alloc_check(b, a, 1), DMCE_ECORRUPT);
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    /* free_owner skips it, frees the rest and reports the damage */
    assert_int_equal(dmce_alloc_free_owner(b, 9, NULL), DMCE_ECORRUPT);
    assert_int_equal(dmce_alloc_check(b, c, 1), DMCE_EBADADDR);
    ah->size = 300;
    ah->magic = DMCE_ALLOC_MAGIC ^ 300u;
    assert_int_equal(dmce_block_verify(b), 0);
    assert_int_equal(dmce_alloc_free_owner(b, 9, NULL), 1);
    assert_empty(b);
    free(b);
}

/* Free-list links as alloc.h places them: first 8 bytes of a run's granule. */
static uint32_t *links_of(void *b, uint32_t g)
{
    return (uint32_t *)((uint8_t *)b + hdr(b)->data_offset + (uint64_t)g * hdr(b)->granule);
}

static void test_corrupt_free_lists(void **state)
{
    (void)state;
    void *b = new_block(64 * 1024, 64);
    dmce_block_hdr_t *h = b;
    uint32_t *map = map_of(b);
    uint64_t a[5];
    for (int i = 0; i < 5; i++)
        assert_int_equal(dmce_alloc(b, 1, 1, &a[i]), 0); /* granules 0..4 */
    assert_int_equal(dmce_alloc_free(b, a[0], NULL, NULL), 0);
    assert_int_equal(dmce_alloc_free(b, a[2], NULL, NULL), 0);
    /* bin 0 now lists granule 2 then granule 0 */
    assert_int_equal(h->bins[0], 3);
    uint32_t *l0 = links_of(b, 0), *l2 = links_of(b, 2);
    assert_int_equal(l2[0], 1); /* next */
    assert_int_equal(l2[1], 0); /* prev */
    assert_int_equal(l0[1], 3);
    assert_int_equal(dmce_block_verify(b), 0);

    l0[1] = 0; /* broken back link */
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    l0[1] = 3;
    l0[0] = 3; /* cycle 2 -> 0 -> 2 */
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    l0[0] = 0;
    h->bins[0] = 1; /* granule 2 dropped from its list */
    l0[1] = 0;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    h->bins[0] = 3;
    l0[1] = 3;
    assert_int_equal(dmce_block_verify(b), 0);

    /* a consistent map and lists, but two adjacent free runs: granule 1
     * turned into a free run of its own right after the run at 0 */
    map[1] = 0x40000000u | 1;
    uint32_t *l1 = links_of(b, 1);
    l0[1] = 2; /* list: 2 -> 1 -> 0 */
    l1[0] = 1;
    l1[1] = 3;
    l2[0] = 2;
    h->free_granules++;
    h->nallocs--;
    h->used_bytes--;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    free(b);
}

/* Garbage everywhere: every call must stay inside the block (ASan). */
static void test_garbage_block(void **state)
{
    (void)state;
    const uint64_t size = 32 * 1024;
    xs_state = 12345;
    for (int round = 0; round < 200; round++) {
        void *b = new_block(size, 64);
        const dmce_block_hdr_t *h = hdr(b);
        uint32_t *map = map_of(b);
        uint32_t ng = h->ngranules;
        uint64_t off;
        for (int i = 0; i < 20; i++)
            (void)dmce_alloc(b, 1 + rnd() % 700, 1, &off);
        /* scribble some map words, links and headers with small or random values */
        for (int i = 0; i < 1 + round % 8; i++) {
            uint32_t g = (uint32_t)(rnd() % ng);
            uint32_t kinds[] = {0, 0x40000000u, 0x80000000u, 0xc0000000u};
            uint32_t v = (rnd() & 1) ? (uint32_t)(rnd() % (ng + 3)) : (uint32_t)rnd();
            if (rnd() % 3)
                map[g] = kinds[rnd() % 4] | (v & 0x3fffffffu);
            else
                memset((uint8_t *)b + h->data_offset + (uint64_t)g * 64, (int)rnd(), 16);
        }
        for (int i = 0; i < 200; i++) {
            uint64_t o = rnd() % (size + 256);
            dmce_alloc_info_t info;
            int r = dmce_alloc_check(b, o, rnd() % 2048);
            assert_true(r == 0 || r == DMCE_EBADADDR || r == DMCE_ECROSSEND || r == DMCE_ECORRUPT);
            (void)dmce_alloc_lookup(b, o, &info);
            r = dmce_alloc_free(b, h->data_offset + (o % ng) * 64 + 16, NULL, NULL);
            assert_true(r == 0 || r == DMCE_EBADADDR || r == DMCE_ECORRUPT);
            r = dmce_alloc(b, 1 + rnd() % 300, 2, &off);
            assert_true(r == 0 || r == DMCE_ENOMEM || r == DMCE_ECORRUPT);
        }
        visit_t v = {.stop_at = 60};
        (void)dmce_alloc_foreach(b, collect, &v);
        (void)dmce_alloc_free_owner(b, 1, NULL);
        (void)usage(b);
        int r = dmce_block_verify(b);
        assert_true(r == 0 || r == DMCE_ECORRUPT);
        free(b);
    }
}

/* ---- high-water mark ---------------------------------------------------- */

/* ZEROED: never-used memory is handed out as is; reused memory is cleared. */
static void test_zeroed_block_skips_clearing_fresh_memory(void **state)
{
    (void)state;
    const uint64_t size = 256 * 1024;
    uint8_t *b = aligned_alloc(4096, size);
    assert_non_null(b);
    memset(b, 0, size);
    assert_int_equal(dmce_block_format(b, size, 128, 4096, 1, DMCE_BLOCK_ZEROED), 0);
    assert_int_equal(hdr(b)->hwm, 0);
    uint64_t a1, a2, a3;
    assert_int_equal(dmce_alloc(b, 1000, 1, &a1), 0);
    assert_int_equal(hdr(b)->hwm, 8); /* (1000 + 16) / 128 rounded up */
    memset(b + a1, 0x5a, 1000);
    /* Mark memory above the high-water mark: the allocator must not touch it. */
    uint64_t above = a1 + 4096;
    b[above] = 0x77;
    assert_int_equal(dmce_alloc(b, 8192, 1, &a2), 0);
    assert_true(a2 <= above && above < a2 + 8192);
    assert_int_equal(b[above], 0x77); /* vouched zero, so left alone */
    assert_int_equal(hdr(b)->hwm, 8 + 65);
    /* Freed and reused below the mark: cleared. */
    assert_int_equal(dmce_alloc_free(b, a1, NULL, NULL), 0);
    assert_int_equal(dmce_alloc(b, 900, 1, &a3), 0);
    assert_true(a3 == a1);
    for (int i = 0; i < 900; i++)
        assert_int_equal(b[a3 + (uint64_t)i], 0);
    assert_int_equal(dmce_block_verify(b), 0);
    /* An allocation above the mark is corruption. */
    ((dmce_block_hdr_t *)b)->hwm = 8;
    assert_int_equal(dmce_block_verify(b), DMCE_ECORRUPT);
    ((dmce_block_hdr_t *)b)->hwm = hdr(b)->ngranules + 1;
    assert_int_equal(dmce_block_attach(b, size), DMCE_ECORRUPT);
    free(b);
}

/*
 * ZEROED: the format writes the header and the map's two edge entries and
 * nothing else of the map (it is zero already: its pages stay untouched),
 * and the result is the same block as a format of dirty memory, but for
 * the high-water mark.
 */
static void test_zeroed_format_leaves_the_map_alone(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    uint8_t *z = aligned_alloc(4096, size), *d = aligned_alloc(4096, size);
    assert_non_null(z);
    assert_non_null(d);
    memset(z, 0, size);
    memset(d, 0xa5, size);
    /* A mark in the middle of the map, where an empty map holds 0: a sign of untouched memory. */
    uint64_t mid = sizeof(dmce_block_hdr_t) + 4 * ((size / 128) / 2);
    z[mid] = 0x42;
    assert_int_equal(dmce_block_format(z, size, 128, 4096, 7, DMCE_BLOCK_ZEROED), 0);
    assert_int_equal(z[mid], 0x42);
    z[mid] = 0; /* the caller's promise kept again */
    assert_int_equal(dmce_block_format(d, size, 128, 4096, 7, 0), 0);
    assert_int_equal(hdr(z)->hwm, 0);
    assert_int_equal(hdr(d)->hwm, hdr(d)->ngranules);
    ((dmce_block_hdr_t *)d)->hwm = 0;
    assert_memory_equal(z, d, sizeof(dmce_block_hdr_t) + 4 * (uint64_t)hdr(z)->ngranules);
    assert_int_equal(dmce_block_verify(z), 0);
    uint64_t a;
    assert_int_equal(dmce_alloc(z, 100000, 1, &a), 0);
    assert_int_equal(dmce_block_verify(z), 0);
    free(z);
    free(d);
}

/* Without ZEROED every allocation clears its bytes, whatever the memory held. */
static void test_unzeroed_block_clears_everything(void **state)
{
    (void)state;
    const uint64_t size = 64 * 1024;
    uint8_t *b = new_block(size, 128); /* filled with 0xa5 before format */
    assert_int_equal(hdr(b)->hwm, hdr(b)->ngranules);
    uint64_t a;
    assert_int_equal(dmce_alloc(b, 20000, 1, &a), 0);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(b[a + (uint64_t)i], 0);
    free(b);
}

/* ---- checking through a reader (clients with windows) -------------------- */

typedef struct rd_ctx {
    const uint8_t *base;
    uint64_t size;
    unsigned calls, fail_at; /* fail the fail_at-th read (1-based); 0 = never */
} rd_ctx_t;

static int rd_copy(void *ctx, uint64_t off, void *dst, uint32_t len)
{
    rd_ctx_t *r = ctx;
    if (r->fail_at && ++r->calls == r->fail_at)
        return -EIO;
    if (off > r->size || len > r->size - off)
        return -ERANGE;
    memcpy(dst, r->base + off, len);
    return 0;
}

/* dmce_alloc_check_via agrees with dmce_alloc_check on every offset and length. */
static void test_check_via_reader_agrees(void **state)
{
    (void)state;
    const uint64_t size = 128 * 1024;
    uint8_t *b = new_block(size, 64);
    uint64_t offs[40];
    unsigned seed = 12345;
    for (int i = 0; i < 40; i++) {
        seed = seed * 1103515245u + 12345u;
        assert_int_equal(dmce_alloc(b, 1 + seed % 3000, (uint32_t)i, &offs[i]), 0);
    }
    for (int i = 0; i < 40; i += 4)
        assert_int_equal(dmce_alloc_free(b, offs[i], NULL, NULL), 0);
    rd_ctx_t rc = {b, size, 0, 0};
    dmce_block_reader_t rd = {rd_copy, &rc};
    unsigned n_ok = 0, n_bad = 0, n_cross = 0;
    for (uint64_t off = 0; off < size; off += 37) {
        for (uint64_t len = 0; len < 5000; len += 1237) {
            int want = dmce_alloc_check(b, off, len);
            dmce_alloc_info_t ai;
            int got = dmce_alloc_check_via(&rd, size, off, len, &ai);
            assert_int_equal(got, want);
            if (want == 0) {
                dmce_alloc_info_t li;
                assert_int_equal(dmce_alloc_lookup(b, off, &li), 0);
                assert_true(ai.offset == li.offset && ai.size == li.size && ai.owner == li.owner);
                n_ok++;
            }
            n_bad += want == DMCE_EBADADDR;
            n_cross += want == DMCE_ECROSSEND;
        }
    }
    assert_true(n_ok > 100 && n_bad > 100 && n_cross > 10);
    free(b);
}

/* A reader failure comes back as is; a bad header gets the attach errors. */
static void test_check_via_reader_errors(void **state)
{
    (void)state;
    const uint64_t size = 64 * 1024;
    uint8_t *b = new_block(size, 128);
    uint64_t a;
    assert_int_equal(dmce_alloc(b, 5000, 1, &a), 0);
    dmce_block_reader_t rd;
    for (unsigned k = 1; k <= 4; k++) {
        rd_ctx_t rc = {b, size, 0, k};
        rd = (dmce_block_reader_t){rd_copy, &rc};
        int r = dmce_alloc_check_via(&rd, size, a + 4000, 10, NULL);
        assert_true(r == -EIO || (r == 0 && rc.calls < k)); /* fewer reads than k: no failure */
    }
    rd_ctx_t ok = {b, size, 0, 0};
    rd = (dmce_block_reader_t){rd_copy, &ok};
    assert_int_equal(dmce_alloc_check_via(&rd, size, a + 4000, 10, NULL), 0);
    assert_int_equal(dmce_alloc_check_via(&rd, size * 2, a, 1, NULL), DMCE_ECORRUPT);
    ((dmce_block_hdr_t *)b)->magic ^= 1;
    assert_int_equal(dmce_alloc_check_via(&rd, size, a, 1, NULL), DMCE_EBADMAGIC);
    ((dmce_block_hdr_t *)b)->magic ^= 1;
    ((dmce_block_hdr_t *)b)->version ^= 0x10;
    assert_int_equal(dmce_alloc_check_via(&rd, size, a, 1, NULL), DMCE_EVERSION);
    ((dmce_block_hdr_t *)b)->version ^= 0x10;
    ((dmce_block_hdr_t *)b)->layout ^= 1;
    assert_int_equal(dmce_alloc_check_via(&rd, size, a, 1, NULL), DMCE_ELAYOUT);
    ((dmce_block_hdr_t *)b)->layout ^= 1;
    assert_int_equal(dmce_alloc_check_via(NULL, size, a, 1, NULL), -EINVAL);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_geometry),
        cmocka_unit_test(test_format_errors),
        cmocka_unit_test(test_attach_errors),
        cmocka_unit_test(test_fill_until_enomem),
        cmocka_unit_test(test_fragmentation),
        cmocka_unit_test(test_coalesce_neighbours),
        cmocka_unit_test(test_check_exact_size),
        cmocka_unit_test(test_bad_frees),
        cmocka_unit_test(test_owner_free),
        cmocka_unit_test(test_foreach_order),
        cmocka_unit_test(test_max_alloc_footprint),
        cmocka_unit_test(test_granule_64),
        cmocka_unit_test(test_granule_4096),
        cmocka_unit_test(test_stress),
        cmocka_unit_test(test_corrupt_map),
        cmocka_unit_test(test_corrupt_alloc_header),
        cmocka_unit_test(test_corrupt_free_lists),
        cmocka_unit_test(test_garbage_block),
        cmocka_unit_test(test_zeroed_block_skips_clearing_fresh_memory),
        cmocka_unit_test(test_zeroed_format_leaves_the_map_alone),
        cmocka_unit_test(test_unzeroed_block_clears_everything),
        cmocka_unit_test(test_check_via_reader_agrees),
        cmocka_unit_test(test_check_via_reader_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
