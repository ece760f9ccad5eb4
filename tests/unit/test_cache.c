/*
 * Unit tests for the Memory Cache (runtime/cache.c) against a fake backend.
 *
 * The fake backend keeps each block in a memfd (its "real" bytes, filled
 * with a pattern derived from (server, block, offset)) and hands out
 * windows in one of three ways:
 *   - FAKE_COPY:   malloc'd copies (shared = 0) that need store();
 *   - FAKE_BUF:    pointers into one mapping of the whole block
 *                  (shared = 1; windows over the same bytes have the
 *                  same addresses);
 *   - FAKE_MMAP:   a fresh mmap of the memfd per window (shared = 1;
 *                  windows over the same bytes alias at different
 *                  addresses, exactly like mmap of one shm object).
 * It records every map / unmap / store (key, off, len) so tests can assert
 * what the cache asked for, checks every unmap against a live mapping and
 * every store against a live copy, and fails map (-ENOMEM) or store (-EIO)
 * on demand.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "cache.h"

/* ---- fake backend ------------------------------------------------------ */

enum fake_mode { FAKE_COPY, FAKE_BUF, FAKE_MMAP };
enum op { OP_MAP, OP_UNMAP, OP_STORE };

#define MAX_CALLS 1024
#define MAX_BLOCKS 16
#define MAX_LIVE 512

typedef struct call {
    enum op op;
    dmce_cache_key_t key;
    uint64_t off, len;
    int result;
} call_t;

typedef struct fake_block {
    dmce_cache_key_t key;
    uint64_t size;
    int fd;
    uint8_t *data; /* MAP_SHARED mapping of the whole memfd */
} fake_block_t;

typedef struct live {
    dmce_cache_key_t key;
    uint64_t off, len;
    uint8_t *ptr;
    int shared;
    int is_mmap;
} live_t;

typedef struct fake {
    pthread_mutex_t mu;
    enum fake_mode mode;
    fake_block_t blk[MAX_BLOCKS];
    unsigned nblk;
    live_t live[MAX_LIVE];
    unsigned nlive;
    call_t calls[MAX_CALLS];
    size_t ncalls;                    /* calls logged (at most MAX_CALLS) */
    uint64_t n_map, n_unmap, n_store; /* successful calls, all of them */
    int fail_maps, fail_stores;       /* fail the next N calls (< 0: all) */
    int bad;                          /* protocol violations seen */
    char why[160];                    /* the first violation */
} fake_t;

static uint8_t pat(dmce_cache_key_t k, uint64_t off)
{
    uint64_t x = ((uint64_t)k.server << 48) ^ ((uint64_t)k.block << 32) ^ off;
    x *= 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    return (uint8_t)(x >> 24);
}

static int key_eq(dmce_cache_key_t a, dmce_cache_key_t b)
{
    return a.server == b.server && a.block == b.block;
}

static void fake_bad(fake_t *f, const char *what, dmce_cache_key_t k, uint64_t off, uint64_t len)
{
    if (!f->bad++)
        snprintf(f->why, sizeof(f->why), "%s (%u,%u) off %llu len %llu", what, k.server, k.block,
                 (unsigned long long)off, (unsigned long long)len);
}

static void fake_log(fake_t *f, enum op op, dmce_cache_key_t k, uint64_t off, uint64_t len, int r)
{
    if (f->ncalls < MAX_CALLS)
        f->calls[f->ncalls++] = (call_t){op, k, off, len, r};
}

/* Declare block k of `size` bytes, filled with its pattern. */
static void fake_add_block(fake_t *f, dmce_cache_key_t k, uint64_t size)
{
    assert_true(f->nblk < MAX_BLOCKS);
    fake_block_t *b = &f->blk[f->nblk++];
    b->key = k;
    b->size = size;
    b->fd = memfd_create("test_cache", MFD_CLOEXEC);
    assert_true(b->fd >= 0);
    assert_int_equal(ftruncate(b->fd, (off_t)size), 0);
    b->data = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
    assert_true(b->data != MAP_FAILED);
    for (uint64_t i = 0; i < size; i++)
        b->data[i] = pat(k, i);
}

static fake_block_t *fake_block(fake_t *f, dmce_cache_key_t k)
{
    for (unsigned i = 0; i < f->nblk; i++)
        if (key_eq(f->blk[i].key, k))
            return &f->blk[i];
    return NULL;
}

static int take_failure(int *n)
{
    if (*n == 0)
        return 0;
    if (*n > 0)
        (*n)--;
    return 1;
}

static int fake_map(void *ctx, dmce_cache_key_t k, uint64_t off, uint64_t len, void **ptr,
                    int *shared)
{
    fake_t *f = ctx;
    int r = 0;
    pthread_mutex_lock(&f->mu);
    fake_block_t *b = fake_block(f, k);
    if (!b || len == 0 || off > b->size || len > b->size - off) {
        fake_bad(f, "map outside the block", k, off, len);
        r = -EFAULT;
    } else if (take_failure(&f->fail_maps)) {
        r = -ENOMEM;
    } else if (f->nlive == MAX_LIVE) {
        fake_bad(f, "too many live windows", k, off, len);
        r = -ENOSPC;
    } else {
        live_t *l = &f->live[f->nlive++];
        *l = (live_t){.key = k, .off = off, .len = len};
        switch (f->mode) {
        case FAKE_COPY:
            l->ptr = malloc(len);
            assert_non_null(l->ptr);
            memcpy(l->ptr, b->data + off, len);
            l->shared = 0;
            break;
        case FAKE_BUF:
            l->ptr = b->data + off;
            l->shared = 1;
            break;
        case FAKE_MMAP:
            if (off % 4096)
                fake_bad(f, "mmap offset not page aligned", k, off, len);
            l->ptr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, (off_t)off);
            assert_true(l->ptr != MAP_FAILED);
            l->shared = 1;
            l->is_mmap = 1;
            break;
        }
        *ptr = l->ptr;
        *shared = l->shared;
        f->n_map++;
    }
    fake_log(f, OP_MAP, k, off, len, r);
    pthread_mutex_unlock(&f->mu);
    return r;
}

static void fake_unmap(void *ctx, dmce_cache_key_t k, uint64_t off, uint64_t len, void *ptr,
                       int shared)
{
    fake_t *f = ctx;
    pthread_mutex_lock(&f->mu);
    fake_log(f, OP_UNMAP, k, off, len, 0);
    /* FAKE_BUF windows over the same bytes share an address: match it all. */
    unsigned i = 0;
    while (i < f->nlive &&
           !(f->live[i].ptr == ptr && key_eq(f->live[i].key, k) && f->live[i].off == off &&
             f->live[i].len == len && f->live[i].shared == shared))
        i++;
    if (i == f->nlive) {
        fake_bad(f, "unmap matches no live window", k, off, len);
    } else {
        live_t *l = &f->live[i];
        if (l->is_mmap)
            munmap(l->ptr, l->len);
        else if (!l->shared)
            free(l->ptr);
        f->live[i] = f->live[--f->nlive];
        f->n_unmap++;
    }
    pthread_mutex_unlock(&f->mu);
}

static int fake_store(void *ctx, dmce_cache_key_t k, uint64_t off, const void *src, uint64_t len)
{
    fake_t *f = ctx;
    int r = 0;
    pthread_mutex_lock(&f->mu);
    fake_block_t *b = fake_block(f, k);
    /* src must be the copy of exactly these bytes in a live window. */
    int found = 0;
    for (unsigned i = 0; i < f->nlive && !found; i++) {
        const live_t *l = &f->live[i];
        found = !l->shared && key_eq(l->key, k) && off >= l->off && off + len <= l->off + l->len &&
                (const uint8_t *)src == l->ptr + (off - l->off);
    }
    if (!b || !found || len == 0) {
        fake_bad(f, "store not from a live copy", k, off, len);
        r = -EFAULT;
    } else if (take_failure(&f->fail_stores)) {
        r = -EIO;
    } else {
        memcpy(b->data + off, src, len);
        f->n_store++;
    }
    fake_log(f, OP_STORE, k, off, len, r);
    pthread_mutex_unlock(&f->mu);
    return r;
}

static fake_t *fake_new(enum fake_mode mode)
{
    fake_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    f->mode = mode;
    return f;
}

/* After the cache is gone: everything mapped was unmapped, no violation. */
static void fake_free(fake_t *f)
{
    if (f->bad)
        fail_msg("backend saw %d violation(s), first: %s", f->bad, f->why);
    assert_int_equal(f->nlive, 0);
    assert_int_equal(f->n_map, f->n_unmap);
    for (unsigned i = 0; i < f->nblk; i++) {
        munmap(f->blk[i].data, f->blk[i].size);
        close(f->blk[i].fd);
    }
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static dmce_cache_backend_t fake_backend(fake_t *f)
{
    return (dmce_cache_backend_t){
        .ctx = f, .map = fake_map, .unmap = fake_unmap, .store = fake_store};
}

/* ---- helpers ----------------------------------------------------------- */

#define KEY(s, b) ((dmce_cache_key_t){(s), (b)})
#define KiB 1024u
#define DMCE_TEST_MIN(a, b) ((a) < (b) ? (a) : (b))

static dmce_cache_t *cache_new(fake_t *f, uint64_t window_size, unsigned max_windows,
                               uint64_t max_bytes, dmce_cache_policy_t policy)
{
    dmce_cache_config_t cfg = {.window_size = window_size,
                               .max_windows = max_windows,
                               .max_bytes = max_bytes,
                               .policy = policy};
    dmce_cache_backend_t be = fake_backend(f);
    dmce_cache_t *c = NULL;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), 0);
    assert_non_null(c);
    return c;
}

static dmce_cache_stats_t stats(dmce_cache_t *c)
{
    dmce_cache_stats_t s;
    dmce_cache_stats(c, &s);
    return s;
}

/* The cache's counters agree with what the backend saw. */
static void check_consistent(dmce_cache_t *c, fake_t *f)
{
    dmce_cache_stats_t s = stats(c);
    pthread_mutex_lock(&f->mu);
    uint64_t live_bytes = 0;
    for (unsigned i = 0; i < f->nlive; i++)
        live_bytes += f->live[i].len;
    unsigned nlive = f->nlive;
    uint64_t n_map = f->n_map, n_unmap = f->n_unmap, n_store = f->n_store;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(s.windows, nlive);
    assert_int_equal(s.maps, n_map);
    assert_int_equal(s.unmaps, n_unmap);
    assert_int_equal(s.maps - s.unmaps, s.windows);
    assert_int_equal(s.bytes_mapped, live_bytes);
    assert_int_equal(s.stores, n_store);
    assert_true(s.pinned <= s.windows);
}

static void done(dmce_cache_t *c, fake_t *f)
{
    check_consistent(c, f);
    assert_int_equal(dmce_cache_destroy(c), 0);
    fake_free(f);
}

static void acq(dmce_cache_t *c, dmce_cache_key_t k, uint64_t bs, uint64_t off, uint64_t len,
                unsigned flags, dmce_cache_ref_t *ref)
{
    assert_int_equal(dmce_cache_acquire(c, k, bs, off, len, flags, ref), 0);
    assert_non_null(ref->w);
    assert_non_null(ref->ptr);
    assert_true(ref->len >= 1 && ref->len <= len);
}

static void rel(dmce_cache_t *c, dmce_cache_ref_t *ref)
{
    assert_int_equal(dmce_cache_release(c, ref, 0, 0), 0);
}

/* Acquire and release at once (touch a window). */
static void touch(dmce_cache_t *c, dmce_cache_key_t k, uint64_t bs, uint64_t off)
{
    dmce_cache_ref_t r;
    acq(c, k, bs, off, 1, 0, &r);
    rel(c, &r);
}

static void check_pattern(const uint8_t *p, dmce_cache_key_t k, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++)
        if (p[i] != pat(k, off + i))
            fail_msg("block (%u,%u) byte %llu: 0x%02x, expected 0x%02x", k.server, k.block,
                     (unsigned long long)(off + i), p[i], pat(k, off + i));
}

static void check_call(const fake_t *f, size_t i, enum op op, dmce_cache_key_t k, uint64_t off,
                       uint64_t len)
{
    static const char *names[] = {"map", "unmap", "store"};
    if (i >= f->ncalls)
        fail_msg("call %zu (%s (%u,%u) %llu+%llu) never made: only %zu calls", i, names[op],
                 k.server, k.block, (unsigned long long)off, (unsigned long long)len, f->ncalls);
    const call_t *c = &f->calls[i];
    if (c->op != op || !key_eq(c->key, k) || c->off != off || c->len != len)
        fail_msg("call %zu: %s (%u,%u) %llu+%llu, expected %s (%u,%u) %llu+%llu", i, names[c->op],
                 c->key.server, c->key.block, (unsigned long long)c->off,
                 (unsigned long long)c->len, names[op], k.server, k.block, (unsigned long long)off,
                 (unsigned long long)len);
}

/* Number of logged calls of kind op (for key k, or any key when k is NULL). */
static size_t count_calls(const fake_t *f, enum op op, const dmce_cache_key_t *k)
{
    size_t n = 0;
    for (size_t i = 0; i < f->ncalls; i++)
        n += f->calls[i].op == op && (!k || key_eq(f->calls[i].key, *k));
    return n;
}

static const dmce_cache_key_t A = {0, 1}, B = {0, 2}, C = {0, 3}, D = {0, 4}, E = {0, 5};
static const dmce_cache_key_t R = {3, 7}; /* a block on another server */

/* ---- configuration and arguments -------------------------------------- */

static void test_create_rejects_bad_config(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    dmce_cache_backend_t be = fake_backend(f);
    dmce_cache_t *c = (dmce_cache_t *)(uintptr_t)1;
    dmce_cache_config_t ok = {.window_size = 16 * KiB, .max_windows = 4};

    dmce_cache_config_t cfg = ok;
    cfg.window_size = 4095;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), -EINVAL);
    cfg.window_size = 4096 + 512;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), -EINVAL);
    cfg = ok;
    cfg.max_windows = 0;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), -EINVAL);
    cfg = ok;
    cfg.policy = (dmce_cache_policy_t)7;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), -EINVAL);
    assert_int_equal(dmce_cache_create(NULL, &be, &c), -EINVAL);
    assert_int_equal(dmce_cache_create(&ok, NULL, &c), -EINVAL);
    assert_int_equal(dmce_cache_create(&ok, &be, NULL), -EINVAL);
    dmce_cache_backend_t nomap = be;
    nomap.map = NULL;
    assert_int_equal(dmce_cache_create(&ok, &nomap, &c), -EINVAL);
    dmce_cache_backend_t nounmap = be;
    nounmap.unmap = NULL;
    assert_int_equal(dmce_cache_create(&ok, &nounmap, &c), -EINVAL);
    assert_ptr_equal(c, (dmce_cache_t *)(uintptr_t)1); /* untouched on error */

    /* Good: a multiple of 4096 that is not a power of two; 0 = whole blocks. */
    cfg = ok;
    cfg.window_size = 3 * 4096;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), 0);
    assert_int_equal(dmce_cache_destroy(c), 0);
    cfg.window_size = 0;
    cfg.policy = DMCE_CACHE_WRITE_BACK;
    assert_int_equal(dmce_cache_create(&cfg, &be, &c), 0);
    assert_int_equal(dmce_cache_destroy(c), 0);
    assert_int_equal(dmce_cache_destroy(NULL), 0);
    assert_int_equal(f->ncalls, 0);
    fake_free(f);
}

static void test_acquire_argument_errors(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    fake_add_block(f, A, 64 * KiB);
    dmce_cache_t *c = cache_new(f, 16 * KiB, 4, 0, DMCE_CACHE_WRITE_BACK);
    const uint64_t bs = 64 * KiB;
    dmce_cache_ref_t ref = {0};

    assert_int_equal(dmce_cache_acquire(c, A, bs, 0, 0, 0, &ref), -EINVAL);
    assert_int_equal(dmce_cache_acquire(c, A, bs, 0, 0, DMCE_CACHE_CONTIG, &ref), -EINVAL);
    assert_int_equal(dmce_cache_acquire(c, A, bs, 0, 1, 1u << 5, &ref), -EINVAL);
    assert_int_equal(dmce_cache_acquire(c, A, bs, bs, 1, 0, &ref), -ERANGE);
    assert_int_equal(dmce_cache_acquire(c, A, bs, bs - 10, 11, 0, &ref), -ERANGE);
    assert_int_equal(dmce_cache_acquire(c, A, bs, bs - 10, 11, DMCE_CACHE_CONTIG, &ref), -ERANGE);
    assert_int_equal(dmce_cache_acquire(c, A, bs, UINT64_MAX, 1, 0, &ref), -ERANGE);
    assert_int_equal(dmce_cache_acquire(c, A, bs, 1, UINT64_MAX, 0, &ref), -ERANGE);
    assert_int_equal(dmce_cache_acquire(c, A, 0, 0, 1, 0, &ref), -ERANGE);
    assert_null(ref.w);

    /* The last byte is fine. */
    acq(c, A, bs, bs - 1, 1, 0, &ref);
    check_pattern(ref.ptr, A, bs - 1, 1);
    rel(c, &ref);

    /* Releasing a ref twice (ref->w cleared) or an empty ref: -EINVAL. */
    assert_null(ref.w);
    assert_int_equal(dmce_cache_release(c, &ref, 0, 0), -EINVAL);

    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.hits, 0);
    assert_int_equal(f->ncalls, 1);
    done(c, f);
}

/* ---- standard windows -------------------------------------------------- */

static void test_hit_miss_counting(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, 16 * KiB, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r1, r2;

    acq(c, A, bs, 100, 10, 0, &r1); /* miss */
    check_pattern(r1.ptr, A, 100, 10);
    acq(c, A, bs, 5000, 10, 0, &r2); /* same window, still pinned: hit */
    assert_ptr_equal(r2.w, r1.w);
    assert_ptr_equal(r2.ptr, r1.ptr + 4900);
    assert_int_equal(stats(c).pinned, 1);
    rel(c, &r1);
    rel(c, &r2);
    touch(c, A, bs, 16 * KiB - 1); /* same window, unpinned: hit */
    touch(c, A, bs, 16 * KiB);     /* next window: miss */
    touch(c, R, bs, 100);          /* same offset, another block and server: miss */
    touch(c, R, bs, 200);          /* hit */

    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.maps, 3);
    assert_int_equal(s.windows, 3);
    assert_int_equal(s.pinned, 0);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(s.bytes_mapped, 3 * 16 * KiB);
    assert_int_equal(f->ncalls, 3);
    check_call(f, 0, OP_MAP, A, 0, 16 * KiB);
    check_call(f, 1, OP_MAP, A, 16 * KiB, 16 * KiB);
    check_call(f, 2, OP_MAP, R, 0, 16 * KiB);
    done(c, f);
}

static void test_standard_windows_aligned(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 256 * KiB, ws = 12 * KiB; /* not a power of two */
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 16, 0, DMCE_CACHE_WRITE_BACK);
    const uint64_t offs[] = {0, 1, ws - 1, ws, 2 * ws + 77, 100000, bs - ws - 1};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        uint64_t off = offs[i], start = off / ws * ws;
        size_t before = f->ncalls;
        dmce_cache_ref_t r;
        acq(c, A, bs, off, 1, 0, &r);
        check_pattern(r.ptr, A, off, 1);
        /* The whole window is there, starting at its aligned offset. */
        check_pattern(r.ptr - (off - start), A, start, ws);
        dmce_cache_key_t k;
        uint64_t o;
        assert_int_equal(dmce_cache_addr_of(c, r.ptr, &k, &o), 0);
        assert_true(key_eq(k, A));
        assert_int_equal(o, off);
        rel(c, &r);
        if (f->ncalls > before)
            check_call(f, f->ncalls - 1, OP_MAP, A, start, ws);
    }
    assert_int_equal(stats(c).misses, 5); /* 0, 1 and ws - 1 share a window */
    done(c, f);
}

static void test_window_clamped_at_block_end(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 40000, ws = 16 * KiB; /* last window: 32768..40000 */
    fake_add_block(f, A, bs);
    fake_add_block(f, B, 1000); /* smaller than one window */
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    acq(c, A, bs, bs - 1, 1, 0, &r);
    check_call(f, 0, OP_MAP, A, 32768, bs - 32768);
    rel(c, &r);
    acq(c, A, bs, 32768, bs - 32768, 0, &r);
    assert_int_equal(r.len, bs - 32768);
    check_pattern(r.ptr, A, 32768, r.len);
    rel(c, &r);

    acq(c, B, 1000, 0, 1000, 0, &r);
    check_call(f, 1, OP_MAP, B, 0, 1000);
    assert_int_equal(r.len, 1000);
    check_pattern(r.ptr, B, 0, 1000);
    rel(c, &r);

    assert_int_equal(stats(c).bytes_mapped, (bs - 32768) + 1000);
    assert_int_equal(f->ncalls, 2);
    done(c, f);
}

static void test_window_size_zero_whole_block(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    fake_add_block(f, A, 100000); /* not a page multiple */
    fake_add_block(f, B, 8 * KiB);
    dmce_cache_t *c = cache_new(f, 0, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    acq(c, A, 100000, 99990, 10, 0, &r);
    check_call(f, 0, OP_MAP, A, 0, 100000);
    check_pattern(r.ptr, A, 99990, 10);
    rel(c, &r);
    /* Any range of the block, across any 4 KiB or 16 KiB boundary: one window. */
    acq(c, A, 100000, 0, 100000, 0, &r);
    assert_int_equal(r.len, 100000);
    check_pattern(r.ptr, A, 0, 100000);
    rel(c, &r);
    acq(c, A, 100000, 4000, 70000, DMCE_CACHE_CONTIG, &r);
    assert_int_equal(r.len, 70000);
    rel(c, &r);

    acq(c, B, 8 * KiB, 5000, 100, 0, &r);
    check_call(f, 1, OP_MAP, B, 0, 8 * KiB);
    rel(c, &r);

    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.windows, 2);
    assert_int_equal(f->ncalls, 2);
    done(c, f);
}

/* ---- replacement ------------------------------------------------------- */

static void test_lru_evicts_least_recent(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    fake_add_block(f, C, bs);
    dmce_cache_t *c = cache_new(f, 0, 2, 0, DMCE_CACHE_WRITE_BACK);

    touch(c, A, bs, 0);
    touch(c, B, bs, 0);
    assert_int_equal(stats(c).windows, 2);
    touch(c, C, bs, 0);
    /* A was the least recently used: unmapped before C was mapped. */
    assert_int_equal(f->ncalls, 4);
    check_call(f, 2, OP_UNMAP, A, 0, bs);
    check_call(f, 3, OP_MAP, C, 0, bs);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.evictions, 1);
    assert_int_equal(s.windows, 2);
    /* B and C are still there, A is not. */
    touch(c, B, bs, 1);
    touch(c, C, bs, 1);
    assert_int_equal(stats(c).hits, 2);
    touch(c, A, bs, 1);
    assert_int_equal(stats(c).misses, 4);
    check_call(f, 4, OP_UNMAP, B, 0, bs);
    check_call(f, 5, OP_MAP, A, 0, bs);
    done(c, f);
}

static void test_lru_touch_changes_victim(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    fake_add_block(f, C, bs);
    dmce_cache_t *c = cache_new(f, 0, 2, 0, DMCE_CACHE_WRITE_BACK);

    touch(c, A, bs, 0);
    touch(c, B, bs, 0);
    touch(c, A, bs, 0); /* A is now the most recent */
    touch(c, C, bs, 0);
    assert_int_equal(f->ncalls, 4);
    check_call(f, 2, OP_UNMAP, B, 0, bs);
    check_call(f, 3, OP_MAP, C, 0, bs);
    touch(c, A, bs, 0);
    assert_int_equal(stats(c).hits, 2);
    done(c, f);
}

/*
 * Regression: a window made by a miss was pinned with pin(), which took it
 * off an LRU list it was never on: that emptied the LRU list (every older
 * unpinned window became unevictable) and underflowed the unpinned count.
 */
static void test_regression_miss_keeps_lru_list(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_BUF);
    const uint64_t bs = 256 * KiB, ws = 4 * KiB;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 3, 0, DMCE_CACHE_WRITE_BACK);
    for (uint64_t i = 0; i < 64; i++) {
        touch(c, A, bs, i * ws);
        dmce_cache_stats_t s = stats(c);
        assert_true(s.windows <= 3);
        assert_int_equal(s.windows, i + 1 < 3 ? i + 1 : 3);
        assert_int_equal(s.evictions, i + 1 > 3 ? i + 1 - 3 : 0);
    }
    /* The three most recent windows are the ones kept. */
    touch(c, A, bs, 61 * ws);
    touch(c, A, bs, 62 * ws);
    touch(c, A, bs, 63 * ws);
    assert_int_equal(stats(c).hits, 3);
    done(c, f);
}

static void test_max_bytes_limit(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    fake_add_block(f, C, bs);
    fake_add_block(f, D, 64 * KiB);
    dmce_cache_t *c = cache_new(f, 0, 100, 40 * KiB, DMCE_CACHE_WRITE_BACK);

    touch(c, A, bs, 0);
    touch(c, B, bs, 0);
    assert_int_equal(stats(c).bytes_mapped, 32 * KiB);
    touch(c, C, bs, 0); /* 48 KiB would not fit in 40: A goes first */
    check_call(f, 2, OP_UNMAP, A, 0, bs);
    check_call(f, 3, OP_MAP, C, 0, bs);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.windows, 2);
    assert_int_equal(s.bytes_mapped, 32 * KiB);
    assert_int_equal(s.evictions, 1);

    /* A window bigger than the limit: may be used while pinned, is not kept. */
    dmce_cache_ref_t r;
    acq(c, D, 64 * KiB, 0, 64 * KiB, 0, &r);
    check_pattern(r.ptr, D, 0, 64 * KiB);
    s = stats(c);
    assert_int_equal(s.windows, 1); /* B and C made way */
    assert_int_equal(s.bytes_mapped, 64 * KiB);
    rel(c, &r);
    s = stats(c);
    assert_int_equal(s.windows, 0);
    assert_int_equal(s.evictions, 4);
    done(c, f);
}

/* ---- pinning ----------------------------------------------------------- */

static void test_pinned_never_evicted(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    const dmce_cache_key_t keys[] = {B, C, D, E};
    fake_add_block(f, A, bs);
    for (int i = 0; i < 4; i++)
        fake_add_block(f, keys[i], bs);
    dmce_cache_t *c = cache_new(f, 0, 1, 20 * KiB, DMCE_CACHE_WRITE_BACK);

    dmce_cache_ref_t ra;
    acq(c, A, bs, 100, 50, 0, &ra);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 4; i++)
            touch(c, keys[i], bs, (uint64_t)round);
    assert_int_equal(count_calls(f, OP_UNMAP, &A), 0);
    assert_int_equal(count_calls(f, OP_MAP, &A), 1);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.pinned, 1);
    assert_int_equal(s.windows, 2); /* A (pinned) + one unpinned */
    assert_int_equal(s.evictions, 11);
    check_pattern(ra.ptr, A, 100, 50);
    dmce_cache_key_t k;
    uint64_t o;
    assert_int_equal(dmce_cache_addr_of(c, ra.ptr + 10, &k, &o), 0);
    assert_true(key_eq(k, A));
    assert_int_equal(o, 110);
    rel(c, &ra);
    /* A is now the most recently used: the other window goes. */
    assert_int_equal(stats(c).windows, 1);
    touch(c, A, bs, 0);
    assert_int_equal(count_calls(f, OP_MAP, &A), 1);
    done(c, f);
}

static void test_pinned_may_exceed_max_windows(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 8 * KiB;
    const dmce_cache_key_t keys[] = {A, B, C, D, E};
    for (int i = 0; i < 5; i++)
        fake_add_block(f, keys[i], bs);
    dmce_cache_t *c = cache_new(f, 0, 2, 0, DMCE_CACHE_WRITE_BACK);

    dmce_cache_ref_t r[5];
    for (int i = 0; i < 5; i++)
        acq(c, keys[i], bs, 0, bs, 0, &r[i]);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.windows, 5);
    assert_int_equal(s.pinned, 5);
    assert_int_equal(s.evictions, 0);
    assert_int_equal(count_calls(f, OP_UNMAP, NULL), 0);
    for (int i = 0; i < 5; i++)
        check_pattern(r[i].ptr, keys[i], 0, bs);

    /* Released in order: the first released are the least recently used. */
    for (int i = 0; i < 5; i++)
        rel(c, &r[i]);
    s = stats(c);
    assert_int_equal(s.windows, 2);
    assert_int_equal(s.pinned, 0);
    assert_int_equal(s.evictions, 3);
    check_call(f, 5, OP_UNMAP, A, 0, bs);
    check_call(f, 6, OP_UNMAP, B, 0, bs);
    check_call(f, 7, OP_UNMAP, C, 0, bs);
    assert_int_equal(f->ncalls, 8);
    done(c, f);
}

static void test_many_windows_grow_tables(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_BUF);
    const uint64_t bs = 1024 * 4 * KiB, ws = 4 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    dmce_cache_t *c = cache_new(f, ws, 8, 0, DMCE_CACHE_WRITE_BACK);
    enum { N = 200 };
    dmce_cache_ref_t *r = calloc(2 * N, sizeof(*r));
    assert_non_null(r);
    for (uint64_t i = 0; i < N; i++) {
        acq(c, A, bs, i * ws + i, 1, 0, &r[2 * i]);
        acq(c, B, bs, i * ws + i, 1, 0, &r[2 * i + 1]);
    }
    assert_int_equal(stats(c).windows, 2 * N);
    for (uint64_t i = 0; i < N; i++) {
        dmce_cache_key_t k;
        uint64_t o;
        check_pattern(r[2 * i].ptr, A, i * ws + i, 1);
        assert_int_equal(dmce_cache_addr_of(c, r[2 * i + 1].ptr, &k, &o), 0);
        assert_true(key_eq(k, B));
        assert_int_equal(o, i * ws + i);
    }
    /* Every window is found again after the hash grew. */
    for (uint64_t i = 0; i < N; i++)
        touch(c, (i & 1) ? B : A, bs, i * ws);
    assert_int_equal(stats(c).hits, N);
    for (size_t i = 0; i < 2 * N; i++)
        rel(c, &r[i]);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.windows, 8);
    assert_int_equal(s.evictions, 2 * N - 8);
    free(r);
    done(c, f);
}

/* ---- ranges across windows -------------------------------------------- */

static void test_span_without_contig_is_split(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB, off = ws - 100;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r1, r2;

    acq(c, A, bs, off, 300, 0, &r1);
    assert_int_equal(r1.len, 100);
    check_pattern(r1.ptr, A, off, 100);
    acq(c, A, bs, off + r1.len, 300 - r1.len, 0, &r2);
    assert_int_equal(r2.len, 200);
    assert_true(r2.w != r1.w);
    check_pattern(r2.ptr, A, ws, 200);
    dmce_cache_key_t k;
    uint64_t o;
    assert_int_equal(dmce_cache_addr_of(c, r2.ptr, &k, &o), 0);
    assert_int_equal(o, ws);
    rel(c, &r1);
    rel(c, &r2);
    assert_int_equal(f->ncalls, 2);
    check_call(f, 0, OP_MAP, A, 0, ws);
    check_call(f, 1, OP_MAP, A, ws, ws);
    done(c, f);
}

static void test_span_with_contig_window(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 40000, ws = 16 * KiB, off = ws - 100;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r, r2;

    acq(c, A, bs, off, 300, DMCE_CACHE_CONTIG, &r);
    assert_int_equal(r.len, 300);
    check_pattern(r.ptr, A, off, 300);
    /* Exactly the pages of the range: [12288, 20480). */
    check_call(f, 0, OP_MAP, A, 12 * KiB, 8 * KiB);

    /* A range inside it that also crosses the boundary: a hit, same window. */
    acq(c, A, bs, ws - 8, 16, DMCE_CACHE_CONTIG, &r2);
    assert_ptr_equal(r2.w, r.w);
    assert_ptr_equal(r2.ptr, r.ptr + 92);
    assert_int_equal(r2.len, 16);
    rel(c, &r2);
    rel(c, &r);
    assert_int_equal(stats(c).hits, 1);

    /* A range inside one standard window, even with CONTIG: a standard window. */
    acq(c, A, bs, 100, 200, DMCE_CACHE_CONTIG, &r);
    check_call(f, 1, OP_MAP, A, 0, ws);
    rel(c, &r);

    /* At the block end, the contiguous window is clamped to the block. */
    acq(c, A, bs, 30000, bs - 30000, DMCE_CACHE_CONTIG, &r);
    assert_int_equal(r.len, bs - 30000);
    check_pattern(r.ptr, A, 30000, r.len);
    check_call(f, 2, OP_MAP, A, 28 * KiB, bs - 28 * KiB);
    rel(c, &r);

    /* A crossing range not inside the existing one: another window. */
    acq(c, A, bs, 1000, 2 * ws, DMCE_CACHE_CONTIG, &r);
    assert_int_equal(r.len, 2 * ws);
    check_pattern(r.ptr, A, 1000, r.len);
    check_call(f, 3, OP_MAP, A, 0, 36 * KiB);
    rel(c, &r);
    assert_int_equal(stats(c).misses, 4);
    done(c, f);
}

static void test_contig_overlaps_standard_shared(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_MMAP); /* same bytes, different addresses */
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t s0, s1, cw;

    acq(c, A, bs, 0, ws, 0, &s0);                       /* [0, 16K) */
    acq(c, A, bs, ws, ws, 0, &s1);                      /* [16K, 32K) */
    acq(c, A, bs, 16000, 1000, DMCE_CACHE_CONTIG, &cw); /* [12K, 20K) */
    check_call(f, 2, OP_MAP, A, 12 * KiB, 8 * KiB);
    assert_int_equal(cw.len, 1000);
    assert_true(cw.ptr != s0.ptr + 16000);

    /* Writes through one are seen through the other, both ways. */
    cw.ptr[0] = 0x11;   /* byte 16000, in s0 */
    cw.ptr[500] = 0x22; /* byte 16500, in s1 */
    assert_int_equal(s0.ptr[16000], 0x11);
    assert_int_equal(s1.ptr[16500 - ws], 0x22);
    s0.ptr[16001] = 0x33;
    s1.ptr[16999 - ws] = 0x44;
    assert_int_equal(cw.ptr[1], 0x33);
    assert_int_equal(cw.ptr[999], 0x44);

    /* addr_of answers for pointers inside either window. */
    dmce_cache_key_t k;
    uint64_t o;
    assert_int_equal(dmce_cache_addr_of(c, cw.ptr + 10, &k, &o), 0);
    assert_true(key_eq(k, A));
    assert_int_equal(o, 16010);
    assert_int_equal(dmce_cache_addr_of(c, cw.ptr - 3712, &k, &o), 0); /* first byte */
    assert_int_equal(o, 12 * KiB);
    assert_int_equal(dmce_cache_addr_of(c, s0.ptr + 16010, &k, &o), 0);
    assert_int_equal(o, 16010);
    assert_int_equal(dmce_cache_addr_of(c, s1.ptr + 10, &k, &o), 0);
    assert_int_equal(o, ws + 10);

    /* Shared windows are never stored, whatever was written. */
    assert_int_equal(dmce_cache_release(c, &cw, 0, 1000), 0);
    assert_int_equal(dmce_cache_release(c, &s0, 16000, 2), 0);
    assert_int_equal(dmce_cache_release(c, &s1, 0, ws), 0);
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0);
    assert_int_equal(fake_block(f, A)->data[16000], 0x11);
    done(c, f);
}

static void test_addr_of_foreign_pointer(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, 0, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_key_t k = {99, 99};
    uint64_t o = 12345;
    uint8_t local = 0;
    uint8_t *heap = malloc(64);
    assert_non_null(heap);

    assert_int_equal(dmce_cache_addr_of(c, &local, &k, &o), -ENOENT); /* empty cache */
    dmce_cache_ref_t r;
    acq(c, A, bs, 0, bs, 0, &r);
    assert_int_equal(dmce_cache_addr_of(c, &local, &k, &o), -ENOENT);
    assert_int_equal(dmce_cache_addr_of(c, heap, &k, &o), -ENOENT);
    assert_int_equal(dmce_cache_addr_of(c, NULL, &k, &o), -ENOENT);
    /* One past the end and one before the start are outside. */
    assert_int_equal(dmce_cache_addr_of(c, (void *)((uintptr_t)r.ptr + bs), &k, &o), -ENOENT);
    assert_int_equal(dmce_cache_addr_of(c, (void *)((uintptr_t)r.ptr - 1), &k, &o), -ENOENT);
    assert_int_equal(k.server, 99);
    assert_int_equal(o, 12345); /* outputs untouched on -ENOENT */
    assert_int_equal(dmce_cache_addr_of(c, r.ptr + bs - 1, &k, &o), 0);
    assert_int_equal(o, bs - 1);
    rel(c, &r);
    free(heap);
    done(c, f);
}

/* ---- copies: write-through -------------------------------------------- */

static void test_write_through_stores_each_release(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_THROUGH);
    const uint8_t *blk = fake_block(f, R)->data;
    dmce_cache_ref_t r;

    acq(c, R, bs, 20000, 100, 0, &r);
    memset(r.ptr + 10, 0xee, 10);
    assert_int_equal(dmce_cache_release(c, &r, 10, 10), 0);
    assert_int_equal(f->ncalls, 2);
    check_call(f, 1, OP_STORE, R, 20010, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(blk[20010 + i], 0xee);
    assert_int_equal(blk[20009], pat(R, 20009));
    assert_int_equal(blk[20020], pat(R, 20020));

    /* The next write stores exactly its own range, not the earlier one again. */
    acq(c, R, bs, 20000, 100, 0, &r);
    memset(r.ptr + 50, 0xdd, 5);
    assert_int_equal(dmce_cache_release(c, &r, 50, 5), 0);
    check_call(f, 2, OP_STORE, R, 20050, 5); /* a hit: no map between */
    assert_int_equal(blk[20052], 0xdd);

    /* Nothing written: nothing stored. */
    acq(c, R, bs, 20000, 100, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 0, 0), 0);
    /* Two refs, each stores its own range when released. */
    dmce_cache_ref_t r2;
    acq(c, R, bs, 100, 10, 0, &r);
    acq(c, R, bs, 8000, 10, 0, &r2);
    r.ptr[0] = 1;
    r2.ptr[9] = 2;
    assert_int_equal(dmce_cache_release(c, &r2, 9, 1), 0);
    check_call(f, 3, OP_MAP, R, 0, 16 * KiB);
    check_call(f, 4, OP_STORE, R, 8009, 1);
    assert_int_equal(dmce_cache_release(c, &r, 0, 1), 0);
    check_call(f, 5, OP_STORE, R, 100, 1);
    assert_int_equal(blk[100], 1);
    assert_int_equal(blk[8009], 2);

    /* Nothing left dirty: flush stores nothing. */
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(f->ncalls, 6);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.stores, 4);
    assert_int_equal(s.bytes_stored, 17);
    done(c, f);
}

static void test_write_through_store_failure(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB;
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, 16 * KiB, 4, 0, DMCE_CACHE_WRITE_THROUGH);
    dmce_cache_ref_t r;

    acq(c, R, bs, 300, 10, 0, &r);
    memset(r.ptr, 0x5a, 10);
    f->fail_stores = 1;
    assert_int_equal(dmce_cache_release(c, &r, 0, 10), -EIO);
    assert_null(r.w); /* the pin is gone all the same */
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.pinned, 0);
    assert_int_equal(s.stores, 0);
    assert_int_equal(fake_block(f, R)->data[300], pat(R, 300));
    /* The bytes were kept: a flush stores them. */
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    check_call(f, 2, OP_STORE, R, 300, 10);
    assert_int_equal(fake_block(f, R)->data[300], 0x5a);
    assert_int_equal(stats(c).stores, 1);
    done(c, f);
}

static void test_release_write_range_outside_ref(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB;
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, 16 * KiB, 4, 0, DMCE_CACHE_WRITE_THROUGH);
    const uint64_t bad[][2] = {{0, 11}, {10, 1}, {11, 0 + 1}, {5, UINT64_MAX}, {UINT64_MAX, 1}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dmce_cache_ref_t r;
        acq(c, R, bs, 100, 10, 0, &r);
        assert_int_equal(dmce_cache_release(c, &r, bad[i][0], bad[i][1]), -ERANGE);
        assert_null(r.w); /* unpinned all the same */
        assert_int_equal(stats(c).pinned, 0);
    }
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0); /* nothing recorded */
    /* The exact edge is fine; wr_len 0 ignores wr_off. */
    dmce_cache_ref_t r;
    acq(c, R, bs, 100, 10, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 0, 10), 0);
    check_call(f, 1, OP_STORE, R, 100, 10);
    acq(c, R, bs, 100, 10, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 9, 1), 0);
    check_call(f, 2, OP_STORE, R, 109, 1);
    acq(c, R, bs, 100, 10, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 1000, 0), 0);
    assert_int_equal(f->ncalls, 3);
    done(c, f);
}

/*
 * A contiguous copy over standard copies of the same bytes: a write
 * released through either is seen through the other, and a new copy takes
 * the bytes not stored yet (write-back) from the copies it overlaps.
 */
static void test_contig_overlaps_standard_copies(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, ws, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t s0, s1, cw;

    /* Dirty byte in a standard copy, not stored yet. */
    acq(c, R, bs, 0, ws, 0, &s0);
    s0.ptr[13000] = 0x01;
    assert_int_equal(dmce_cache_release(c, &s0, 13000, 1), 0);
    acq(c, R, bs, 0, ws, 0, &s0);
    acq(c, R, bs, ws, ws, 0, &s1);
    /* The new contiguous copy [12K, 20K) sees it. */
    acq(c, R, bs, 16000, 1000, DMCE_CACHE_CONTIG, &cw);
    assert_int_equal(cw.ptr[13000 - 16000], 0x01);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0);

    /* Released writes reach the other copies, both ways, only their bytes. */
    cw.ptr[0] = 0x11;   /* byte 16000, in s0 */
    cw.ptr[500] = 0x22; /* byte 16500, in s1 */
    cw.ptr[501] = 0x23; /* written but not declared: stays private */
    assert_int_equal(dmce_cache_release(c, &cw, 0, 1), 0);
    acq(c, R, bs, 16000, 1000, DMCE_CACHE_CONTIG, &cw);
    assert_int_equal(dmce_cache_release(c, &cw, 500, 1), 0);
    assert_int_equal(s0.ptr[16000], 0x11);
    assert_int_equal(s1.ptr[16500 - ws], 0x22);
    assert_int_equal(s1.ptr[16501 - ws], pat(R, 16501));
    s0.ptr[16001] = 0x33;
    assert_int_equal(dmce_cache_release(c, &s0, 16001, 1), 0);
    s1.ptr[16999 - ws] = 0x44;
    assert_int_equal(dmce_cache_release(c, &s1, 16999 - ws, 1), 0);
    acq(c, R, bs, 16000, 1000, DMCE_CACHE_CONTIG, &cw);
    assert_int_equal(cw.ptr[1], 0x33);
    assert_int_equal(cw.ptr[999], 0x44);
    assert_int_equal(cw.ptr[-3000], 0x01);
    rel(c, &cw);

    /* Flushed, the block holds every declared write. */
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    const uint8_t *blk = fake_block(f, R)->data;
    assert_int_equal(blk[13000], 0x01);
    assert_int_equal(blk[16000], 0x11);
    assert_int_equal(blk[16001], 0x33);
    assert_int_equal(blk[16500], 0x22);
    assert_int_equal(blk[16999], 0x44);
    done(c, f);
}

/* ---- copies: write-back ----------------------------------------------- */

static void test_write_back_flush_once(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB;
    fake_add_block(f, R, bs);
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, 16 * KiB, 4, 0, DMCE_CACHE_WRITE_BACK);
    const uint8_t *blk = fake_block(f, R)->data;
    dmce_cache_ref_t r;

    acq(c, R, bs, 20000, 100, 0, &r);
    memset(r.ptr + 10, 0xee, 10);
    assert_int_equal(dmce_cache_release(c, &r, 10, 10), 0);
    acq(c, R, bs, 20000, 100, 0, &r);
    memset(r.ptr + 90, 0xdd, 10);
    assert_int_equal(dmce_cache_release(c, &r, 90, 10), 0);
    acq(c, A, bs, 0, 100, 0, &r);
    r.ptr[5] = 0x77;
    assert_int_equal(dmce_cache_release(c, &r, 5, 1), 0);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0);
    assert_int_equal(blk[20010], pat(R, 20010));

    /* Flushing one block stores only its dirty range, in one store. */
    size_t n = f->ncalls;
    assert_int_equal(dmce_cache_flush(c, &R), 0);
    assert_int_equal(f->ncalls, n + 1);
    check_call(f, n, OP_STORE, R, 20010, 90);
    assert_int_equal(blk[20010], 0xee);
    assert_int_equal(blk[20099], 0xdd);
    assert_int_equal(blk[20050], pat(R, 20050)); /* stored as it was */
    /* Clean now: flushing again stores nothing. */
    assert_int_equal(dmce_cache_flush(c, &R), 0);
    assert_int_equal(f->ncalls, n + 1);
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(f->ncalls, n + 2);
    check_call(f, n + 1, OP_STORE, A, 5, 1);
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(f->ncalls, n + 2);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.stores, 2);
    assert_int_equal(s.bytes_stored, 91);
    done(c, f);
}

static void test_write_back_eviction_stores_first(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    dmce_cache_t *c = cache_new(f, 0, 1, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    acq(c, A, bs, 1000, 8, 0, &r);
    memcpy(r.ptr, "evicted!", 8);
    assert_int_equal(dmce_cache_release(c, &r, 0, 8), 0);
    touch(c, B, bs, 0);
    assert_int_equal(f->ncalls, 4);
    check_call(f, 0, OP_MAP, A, 0, bs);
    check_call(f, 1, OP_STORE, A, 1000, 8);
    check_call(f, 2, OP_UNMAP, A, 0, bs);
    check_call(f, 3, OP_MAP, B, 0, bs);
    /* Mapped again, A shows what was written. */
    acq(c, A, bs, 1000, 8, 0, &r);
    assert_memory_equal(r.ptr, "evicted!", 8);
    rel(c, &r);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 1); /* B was clean */
    assert_int_equal(stats(c).evictions, 2);
    done(c, f);
}

static void test_write_back_failed_store_keeps_window(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    fake_add_block(f, C, bs);
    dmce_cache_t *c = cache_new(f, 0, 1, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    acq(c, A, bs, 200, 4, 0, &r);
    memcpy(r.ptr, "keep", 4);
    assert_int_equal(dmce_cache_release(c, &r, 0, 4), 0);
    f->fail_stores = -1;
    touch(c, B, bs, 0); /* A cannot be stored: kept, B evicted instead */
    touch(c, C, bs, 0);
    assert_int_equal(count_calls(f, OP_UNMAP, &A), 0);
    assert_true(count_calls(f, OP_STORE, &A) >= 1);
    assert_int_equal(f->n_store, 0);
    assert_int_equal(fake_block(f, A)->data[200], pat(A, 200));

    /* A is still cached with its data: a hit. */
    uint64_t hits = stats(c).hits;
    acq(c, A, bs, 200, 4, 0, &r);
    assert_int_equal(stats(c).hits, hits + 1);
    assert_memory_equal(r.ptr, "keep", 4);
    rel(c, &r);
    assert_int_equal(dmce_cache_flush(c, NULL), -EIO);

    /* The next flush retries, stores exactly the dirty range, once. */
    f->fail_stores = 0;
    size_t n = f->ncalls;
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(f->ncalls, n + 1);
    check_call(f, n, OP_STORE, A, 200, 4);
    assert_memory_equal(fake_block(f, A)->data + 200, "keep", 4);
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(f->ncalls, n + 1);
    /* Clean, it can be evicted like any other window. */
    touch(c, B, bs, 0);
    touch(c, C, bs, 0);
    assert_int_equal(count_calls(f, OP_UNMAP, &A), 1);
    assert_int_equal(stats(c).windows, 1);
    done(c, f);
}

/* ---- invalidate -------------------------------------------------------- */

static void test_invalidate_unpinned_unmapped_now(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    dmce_cache_t *c = cache_new(f, ws, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    touch(c, A, bs, 0);
    touch(c, A, bs, ws);
    acq(c, A, bs, ws - 10, 20, DMCE_CACHE_CONTIG, &r);
    rel(c, &r);
    touch(c, B, bs, 0);
    assert_int_equal(stats(c).windows, 4);
    dmce_cache_invalidate(c, A);
    assert_int_equal(count_calls(f, OP_UNMAP, &A), 3);
    assert_int_equal(count_calls(f, OP_UNMAP, &B), 0);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.windows, 1);
    assert_int_equal(s.evictions, 0);
    check_consistent(c, f);
    /* B untouched; A maps afresh. */
    touch(c, B, bs, 0);
    assert_int_equal(stats(c).hits, 1);
    touch(c, A, bs, 0);
    assert_int_equal(count_calls(f, OP_MAP, &A), 4);
    /* Invalidating a block with no window is harmless. */
    dmce_cache_invalidate(c, C);
    assert_int_equal(stats(c).windows, 2);
    done(c, f);
}

static void test_invalidate_pinned_unmapped_at_last_release(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r1, r2, rc, fresh;

    acq(c, A, bs, 100, 10, 0, &r1);
    acq(c, A, bs, 200, 10, 0, &r2); /* same window, 2 pins */
    acq(c, A, bs, ws - 5, 10, DMCE_CACHE_CONTIG, &rc);
    dmce_cache_invalidate(c, A);
    assert_int_equal(count_calls(f, OP_UNMAP, NULL), 0);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.windows, 2);
    assert_int_equal(s.pinned, 2);
    check_pattern(r1.ptr, A, 100, 10); /* still usable */
    dmce_cache_key_t k;
    uint64_t o;
    assert_int_equal(dmce_cache_addr_of(c, r1.ptr + 1, &k, &o), 0); /* still a window */
    assert_true(key_eq(k, A));
    assert_int_equal(o, 101);

    /* No acquire finds the invalidated windows: a new one is mapped. */
    acq(c, A, bs, 100, 10, 0, &fresh);
    assert_true(fresh.w != r1.w);
    assert_true(fresh.ptr != r1.ptr);
    check_call(f, 2, OP_MAP, A, 0, ws);
    s = stats(c);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.windows, 3);
    assert_int_equal(s.pinned, 3);

    rel(c, &r1);
    assert_int_equal(count_calls(f, OP_UNMAP, NULL), 0);
    rel(c, &r2);
    assert_int_equal(count_calls(f, OP_UNMAP, NULL), 1);
    check_call(f, 3, OP_UNMAP, A, 0, ws);
    rel(c, &rc);
    check_call(f, 4, OP_UNMAP, A, 12 * KiB, 8 * KiB);
    s = stats(c);
    assert_int_equal(s.windows, 1);
    assert_int_equal(s.pinned, 1);
    assert_int_equal(s.evictions, 0);
    check_pattern(fresh.ptr, A, 100, 10);
    rel(c, &fresh);
    touch(c, A, bs, 0);                 /* the fresh window is the cached one */
    assert_int_equal(stats(c).hits, 2); /* r2 and this */
    done(c, f);
}

static void test_invalidate_drops_dirty_data(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    dmce_cache_t *c = cache_new(f, 0, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;

    /* Dirty and unpinned. */
    acq(c, A, bs, 0, 10, 0, &r);
    memset(r.ptr, 0, 10);
    assert_int_equal(dmce_cache_release(c, &r, 0, 10), 0);
    dmce_cache_invalidate(c, A);
    /* Dirty and pinned, written after the invalidate too. */
    acq(c, B, bs, 0, 10, 0, &r);
    dmce_cache_ref_t r2;
    acq(c, B, bs, 0, 10, 0, &r2);
    memset(r.ptr, 0, 10);
    assert_int_equal(dmce_cache_release(c, &r, 0, 10), 0); /* dirty, still pinned */
    dmce_cache_invalidate(c, B);
    r2.ptr[0] = 1;
    assert_int_equal(dmce_cache_release(c, &r2, 0, 1), -ESTALE); /* never stored: said so */
    assert_int_equal(dmce_cache_flush(c, NULL), 0);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0);
    check_pattern(fake_block(f, A)->data, A, 0, bs);
    check_pattern(fake_block(f, B)->data, B, 0, bs);
    assert_int_equal(stats(c).windows, 0);
    done(c, f);
    /* (done() destroyed the cache: no store there either, checked by n_store.) */
}

static void test_invalidate_write_through_release_not_stored(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, R, bs);
    dmce_cache_t *c = cache_new(f, 0, 4, 0, DMCE_CACHE_WRITE_THROUGH);
    dmce_cache_ref_t r;

    acq(c, R, bs, 0, 10, 0, &r);
    dmce_cache_invalidate(c, R);
    memset(r.ptr, 0, 10);
    /* The write is lost, and release says so: never a silent 0. */
    assert_int_equal(dmce_cache_release(c, &r, 0, 10), -ESTALE);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 0);
    check_pattern(fake_block(f, R)->data, R, 0, bs);
    assert_int_equal(count_calls(f, OP_UNMAP, NULL), 1);
    done(c, f);
}

/* ---- backend failures and teardown ------------------------------------ */

static void test_map_failure_leaves_state(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, A, bs);
    dmce_cache_t *c = cache_new(f, ws, 4, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t held;

    touch(c, A, bs, 0);
    acq(c, A, bs, ws, 10, 0, &held);
    dmce_cache_stats_t before = stats(c);

    const unsigned flags[] = {0, DMCE_CACHE_CONTIG};
    const uint64_t offs[] = {2 * ws + 5, 3 * ws - 5};
    for (int i = 0; i < 2; i++) {
        dmce_cache_ref_t r = {.w = NULL, .ptr = (uint8_t *)&r, .len = 77};
        f->fail_maps = 1;
        assert_int_equal(dmce_cache_acquire(c, A, bs, offs[i], 10, flags[i], &r), -ENOMEM);
        assert_int_equal(f->fail_maps, 0); /* the backend was asked */
        assert_null(r.w);                  /* ref untouched */
        assert_int_equal(r.len, 77);
        dmce_cache_stats_t s = stats(c);
        /* A failed miss counts as a miss; nothing else moved. */
        assert_int_equal(s.misses, before.misses + 1);
        assert_int_equal(s.hits, before.hits);
        assert_int_equal(s.maps, before.maps);
        assert_int_equal(s.unmaps, before.unmaps);
        assert_int_equal(s.evictions, before.evictions);
        assert_int_equal(s.windows, before.windows);
        assert_int_equal(s.pinned, before.pinned);
        assert_int_equal(s.bytes_mapped, before.bytes_mapped);
        check_consistent(c, f);
        before = s;
    }
    /* The windows that were there are still there. */
    touch(c, A, bs, 0);
    assert_int_equal(stats(c).hits, before.hits + 1);
    /* And the failed ranges map fine now. */
    dmce_cache_ref_t r;
    acq(c, A, bs, offs[0], 10, 0, &r);
    check_pattern(r.ptr, A, offs[0], 10);
    rel(c, &r);
    acq(c, A, bs, offs[1], 10, DMCE_CACHE_CONTIG, &r);
    assert_int_equal(r.len, 10);
    check_pattern(r.ptr, A, offs[1], 10);
    rel(c, &r);
    rel(c, &held);
    done(c, f);
}

static void test_destroy_flushes_and_unmaps_everything(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 64 * KiB, ws = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    fake_add_block(f, C, bs);
    dmce_cache_t *c = cache_new(f, ws, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r, pinned, contig, stale;

    acq(c, A, bs, 10, 5, 0, &r); /* dirty, unpinned */
    memset(r.ptr, 1, 5);
    assert_int_equal(dmce_cache_release(c, &r, 0, 5), 0);
    acq(c, B, bs, 100, 5, 0, &pinned); /* dirty, still pinned */
    acq(c, B, bs, 100, 5, 0, &r);
    memset(r.ptr, 2, 5);
    assert_int_equal(dmce_cache_release(c, &r, 0, 5), 0);
    acq(c, A, bs, ws - 2, 4, DMCE_CACHE_CONTIG, &contig); /* dirty contiguous */
    memset(contig.ptr, 3, 4);
    assert_int_equal(dmce_cache_release(c, &contig, 0, 4), 0);
    acq(c, C, bs, 0, 5, 0, &stale); /* dirty, then invalidated while pinned */
    acq(c, C, bs, 0, 5, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 0, 5), 0);
    dmce_cache_invalidate(c, C);
    touch(c, A, bs, ws + 1); /* a clean one */
    check_consistent(c, f);

    size_t n = f->ncalls;
    assert_int_equal(dmce_cache_destroy(c), 0);
    assert_int_equal(count_calls(f, OP_STORE, NULL), 3);
    assert_int_equal(count_calls(f, OP_STORE, &C), 0);
    assert_int_equal(f->n_store, 3);
    assert_int_equal(fake_block(f, A)->data[10], 1);
    assert_int_equal(fake_block(f, B)->data[100], 2);
    assert_int_equal(fake_block(f, A)->data[ws - 2], 3);
    /* Stores first, then unmaps: every window, pinned and stale ones too. */
    for (size_t i = n; i < n + 3; i++)
        assert_int_equal(f->calls[i].op, OP_STORE);
    assert_int_equal(f->ncalls, n + 3 + 5);
    assert_int_equal(f->n_map, 5);
    assert_int_equal(f->n_unmap, 5);
    fake_free(f); /* nothing live, every unmap matched its map */
}

static void test_destroy_returns_store_error(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    const uint64_t bs = 16 * KiB;
    fake_add_block(f, A, bs);
    fake_add_block(f, B, bs);
    dmce_cache_t *c = cache_new(f, 0, 8, 0, DMCE_CACHE_WRITE_BACK);
    dmce_cache_ref_t r;
    acq(c, A, bs, 0, 5, 0, &r);
    assert_int_equal(dmce_cache_release(c, &r, 0, 5), 0);
    touch(c, B, bs, 0);
    f->fail_stores = -1;
    assert_int_equal(dmce_cache_destroy(c), -EIO);
    assert_int_equal(f->n_unmap, 2); /* unmapped all the same */
    fake_free(f);
}

/* ---- threads ----------------------------------------------------------- */

enum { NTHREADS = 4, MT_BLOCKS = 4, MT_ITERS = 3000 };
#define MT_BS (64 * KiB + 1000)

typedef struct mt_arg {
    dmce_cache_t *c;
    unsigned id;
    uint64_t seed;
    int errors;
    char why[160];
} mt_arg_t;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void mt_err(mt_arg_t *a, const char *what, uint64_t x, uint64_t y)
{
    if (!a->errors++)
        snprintf(a->why, sizeof(a->why), "thread %u: %s (%llu, %llu)", a->id, what,
                 (unsigned long long)x, (unsigned long long)y);
}

/* Readers over shared windows: every byte must match its block's pattern. */
static void *mt_reader(void *p)
{
    mt_arg_t *a = p;
    for (int it = 0; it < MT_ITERS && a->errors == 0; it++) {
        dmce_cache_key_t k = {0, 1 + (uint32_t)(xorshift(&a->seed) % MT_BLOCKS)};
        uint64_t off = xorshift(&a->seed) % MT_BS;
        uint64_t len = 1 + xorshift(&a->seed) % DMCE_TEST_MIN(MT_BS - off, 20000);
        unsigned flags = xorshift(&a->seed) % 4 == 0 ? DMCE_CACHE_CONTIG : 0;
        /* Hold up to 2 refs at once to pin windows while others evict. */
        dmce_cache_ref_t refs[2];
        int nrefs = 0;
        uint64_t o = off, left = len;
        while (left) {
            dmce_cache_ref_t r;
            int rc = dmce_cache_acquire(a->c, k, MT_BS, o, left, flags, &r);
            if (rc != 0) {
                mt_err(a, "acquire failed", o, (uint64_t)-rc);
                break;
            }
            if (r.len == 0 || r.len > left || (flags && r.len != left))
                mt_err(a, "bad ref length", r.len, left);
            for (uint64_t i = 0; i < r.len; i++)
                if (r.ptr[i] != pat(k, o + i)) {
                    mt_err(a, "wrong byte", o + i, r.ptr[i]);
                    break;
                }
            dmce_cache_key_t kk;
            uint64_t oo;
            if (dmce_cache_addr_of(a->c, r.ptr, &kk, &oo) != 0 || !key_eq(kk, k) || oo != o)
                mt_err(a, "addr_of", o, oo);
            o += r.len;
            left -= r.len;
            if (nrefs == 2) {
                dmce_cache_release(a->c, &refs[0], 0, 0);
                refs[0] = refs[1];
                nrefs = 1;
            }
            refs[nrefs++] = r;
        }
        while (nrefs)
            if (dmce_cache_release(a->c, &refs[--nrefs], 0, 0) != 0)
                mt_err(a, "release failed", 0, 0);
        uint64_t x = xorshift(&a->seed) % 256;
        if (x == 0)
            dmce_cache_invalidate(a->c, k);
        else if (x == 1)
            dmce_cache_flush(a->c, NULL);
        else if (x == 2) {
            dmce_cache_stats_t s;
            dmce_cache_stats(a->c, &s);
            if (s.pinned > s.windows)
                mt_err(a, "pinned > windows", s.pinned, s.windows);
        }
    }
    return NULL;
}

static void run_threads(void *(*fn)(void *), dmce_cache_t *c, mt_arg_t *args)
{
    pthread_t th[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        args[i] = (mt_arg_t){.c = c, .id = i, .seed = 0x9e3779b97f4a7c15ull * (i + 1)};
        assert_int_equal(pthread_create(&th[i], NULL, fn, &args[i]), 0);
    }
    for (unsigned i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (unsigned i = 0; i < NTHREADS; i++)
        if (args[i].errors)
            fail_msg("%s (%d errors)", args[i].why, args[i].errors);
}

static void test_threads_shared_read_pattern(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_BUF);
    for (uint32_t b = 1; b <= MT_BLOCKS; b++)
        fake_add_block(f, KEY(0, b), MT_BS);
    dmce_cache_t *c = cache_new(f, 8 * KiB, 3, 48 * KiB, DMCE_CACHE_WRITE_BACK);
    mt_arg_t args[NTHREADS];
    run_threads(mt_reader, c, args);
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.pinned, 0);
    assert_true(s.windows <= 3);
    assert_true(s.evictions > 0);
    assert_int_equal(s.misses, s.maps); /* every miss mapped */
    done(c, f);
}

/*
 * Writers over write-back copies: each thread owns one block and keeps a
 * shadow of it; windows are evicted (and stored) by the other threads'
 * misses. At the end, after a flush, every block equals its shadow.
 */
static void *mt_writer(void *p)
{
    mt_arg_t *a = p;
    dmce_cache_key_t k = {5, 100 + a->id};
    uint8_t *shadow = malloc(MT_BS);
    if (!shadow) {
        mt_err(a, "malloc", 0, 0);
        return NULL;
    }
    for (uint64_t i = 0; i < MT_BS; i++)
        shadow[i] = pat(k, i);
    for (int it = 0; it < MT_ITERS && a->errors == 0; it++) {
        uint64_t off = xorshift(&a->seed) % MT_BS;
        uint64_t len = 1 + xorshift(&a->seed) % DMCE_TEST_MIN(MT_BS - off, 3000);
        unsigned flags = xorshift(&a->seed) % 3 == 0 ? DMCE_CACHE_CONTIG : 0;
        int write = xorshift(&a->seed) % 2;
        uint8_t v = (uint8_t)xorshift(&a->seed);
        uint64_t o = off, left = len;
        while (left) {
            dmce_cache_ref_t r;
            int rc = dmce_cache_acquire(a->c, k, MT_BS, o, left, flags, &r);
            if (rc != 0) {
                mt_err(a, "acquire failed", o, (uint64_t)-rc);
                break;
            }
            if (memcmp(r.ptr, shadow + o, r.len) != 0)
                mt_err(a, "read differs from shadow", o, r.len);
            if (write) {
                memset(r.ptr, v, r.len);
                memset(shadow + o, v, r.len);
            }
            if (dmce_cache_release(a->c, &r, 0, write ? r.len : 0) != 0)
                mt_err(a, "release failed", o, r.len);
            o += r.len;
            left -= r.len;
        }
    }
    if (dmce_cache_flush(a->c, &k) != 0)
        mt_err(a, "flush failed", 0, 0);
    a->seed = (uint64_t)(uintptr_t)shadow; /* hand the shadow to the checker */
    return NULL;
}

static void test_threads_write_back_copies(void **state)
{
    (void)state;
    fake_t *f = fake_new(FAKE_COPY);
    for (uint32_t i = 0; i < NTHREADS; i++)
        fake_add_block(f, KEY(5, 100 + i), MT_BS);
    dmce_cache_t *c = cache_new(f, 8 * KiB, 2, 0, DMCE_CACHE_WRITE_BACK);
    mt_arg_t args[NTHREADS];
    run_threads(mt_writer, c, args);
    for (uint32_t i = 0; i < NTHREADS; i++) {
        uint8_t *shadow = (uint8_t *)(uintptr_t)args[i].seed;
        assert_memory_equal(fake_block(f, KEY(5, 100 + i))->data, shadow, MT_BS);
        free(shadow);
    }
    dmce_cache_stats_t s = stats(c);
    assert_int_equal(s.pinned, 0);
    assert_true(s.windows <= 2);
    assert_true(s.stores > 0);
    assert_true(s.evictions > 0);
    done(c, f);
}

/* ---- prepare_write: once per shared window, at its first write ---------- */

static struct {
    unsigned calls;
    dmce_cache_key_t key;
    uint64_t off, len;
    void *ptr;
} prep;

static void fake_prepare(void *ctx, dmce_cache_key_t key, uint64_t off, void *ptr, uint64_t len)
{
    (void)ctx;
    prep.calls++;
    prep.key = key;
    prep.off = off;
    prep.ptr = ptr;
    prep.len = len;
}

static void test_prepare_write_once_per_window(void **state)
{
    (void)state;
    memset(&prep, 0, sizeof(prep));
    const uint64_t bs = 64 * KiB;
    dmce_cache_config_t cfg = {.window_size = 16 * KiB, .max_windows = 1};
    for (int mode = 0; mode < 2; mode++) {
        fake_t *f = fake_new(mode ? FAKE_COPY : FAKE_MMAP);
        fake_add_block(f, A, bs);
        dmce_cache_backend_t be = fake_backend(f);
        be.prepare_write = fake_prepare;
        dmce_cache_t *c = NULL;
        assert_int_equal(dmce_cache_create(&cfg, &be, &c), 0);
        unsigned base = prep.calls;
        dmce_cache_ref_t r;
        assert_int_equal(dmce_cache_acquire(c, A, bs, 20 * KiB, 8, 0, &r), 0); /* a read */
        rel(c, &r);
        assert_int_equal(prep.calls, base);
        assert_int_equal(dmce_cache_acquire(c, A, bs, 20 * KiB, 8, DMCE_CACHE_WRITE, &r), 0);
        void *win = r.ptr - 4 * KiB;
        assert_int_equal(dmce_cache_release(c, &r, 0, 8), 0);
        if (mode) { /* copies are not the block: nothing to prepare */
            assert_int_equal(prep.calls, base);
        } else {
            assert_int_equal(prep.calls, base + 1); /* the whole window, once */
            assert_true(prep.key.server == A.server && prep.key.block == A.block);
            assert_int_equal(prep.off, 16 * KiB);
            assert_int_equal(prep.len, 16 * KiB);
            assert_ptr_equal(prep.ptr, win);
            assert_int_equal(dmce_cache_acquire(c, A, bs, 30 * KiB, 8, DMCE_CACHE_WRITE, &r), 0);
            rel(c, &r);
            assert_int_equal(prep.calls, base + 1); /* prepared already */
            /* Another window evicts it (max_windows 1); written again, it is a new one. */
            assert_int_equal(dmce_cache_acquire(c, A, bs, 40 * KiB, 8, 0, &r), 0);
            rel(c, &r);
            assert_int_equal(dmce_cache_acquire(c, A, bs, 20 * KiB, 8, DMCE_CACHE_WRITE, &r), 0);
            rel(c, &r);
            assert_int_equal(prep.calls, base + 2);
        }
        assert_int_equal(dmce_cache_acquire(c, A, bs, 0, 8, 1u << 5, &r),
                         -EINVAL); /* unknown flag */
        assert_int_equal(dmce_cache_destroy(c), 0);
        fake_free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_acquire_argument_errors),
        cmocka_unit_test(test_hit_miss_counting),
        cmocka_unit_test(test_prepare_write_once_per_window),
        cmocka_unit_test(test_standard_windows_aligned),
        cmocka_unit_test(test_window_clamped_at_block_end),
        cmocka_unit_test(test_window_size_zero_whole_block),
        cmocka_unit_test(test_lru_evicts_least_recent),
        cmocka_unit_test(test_lru_touch_changes_victim),
        cmocka_unit_test(test_regression_miss_keeps_lru_list),
        cmocka_unit_test(test_max_bytes_limit),
        cmocka_unit_test(test_pinned_never_evicted),
        cmocka_unit_test(test_pinned_may_exceed_max_windows),
        cmocka_unit_test(test_many_windows_grow_tables),
        cmocka_unit_test(test_span_without_contig_is_split),
        cmocka_unit_test(test_span_with_contig_window),
        cmocka_unit_test(test_contig_overlaps_standard_shared),
        cmocka_unit_test(test_addr_of_foreign_pointer),
        cmocka_unit_test(test_write_through_stores_each_release),
        cmocka_unit_test(test_write_through_store_failure),
        cmocka_unit_test(test_release_write_range_outside_ref),
        cmocka_unit_test(test_contig_overlaps_standard_copies),
        cmocka_unit_test(test_write_back_flush_once),
        cmocka_unit_test(test_write_back_eviction_stores_first),
        cmocka_unit_test(test_write_back_failed_store_keeps_window),
        cmocka_unit_test(test_invalidate_unpinned_unmapped_now),
        cmocka_unit_test(test_invalidate_pinned_unmapped_at_last_release),
        cmocka_unit_test(test_invalidate_drops_dirty_data),
        cmocka_unit_test(test_invalidate_write_through_release_not_stored),
        cmocka_unit_test(test_map_failure_leaves_state),
        cmocka_unit_test(test_destroy_flushes_and_unmaps_everything),
        cmocka_unit_test(test_destroy_returns_store_error),
        cmocka_unit_test(test_threads_shared_read_pattern),
        cmocka_unit_test(test_threads_write_back_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
