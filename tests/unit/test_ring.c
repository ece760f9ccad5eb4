/*
 * Unit tests for the shared-memory SPSC ring (runtime/ring.c): segment
 * init and each attach error, empty and full rings, spans across the wrap
 * point, MSMP frames larger than the ring through a second thread, hostile
 * or corrupted positions (DMCE_ECORRUPT and no access outside the segment:
 * ASan checks), close semantics, bounded waits (timeout, alive callback,
 * close and data wake a sleeper), the no-syscall fast path, and a stress
 * run between two processes (fork, MAP_SHARED anonymous memory) that
 * verifies every byte through 4 KiB and 64 KiB rings, spinning and
 * futex-only.
 *
 * Nothing here waits on timing luck: every wait is for a condition, with a
 * bound (wait timeouts, a deadline on polling loops, alarm() in children
 * and as a last resort for the whole binary).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmce/error.h>

#include "msmp.h"
#include "ring.h"
#include "util.h"

#define CAP 4096u
#define WAIT_BOUND_MS 10000u /* no correct test waits this long for a condition */

/* ---- helpers ---------------------------------------------------------------- */

typedef struct seg {
    void *base;
    size_t size;
    dmce_ring_pair_t client, server;
} seg_t;

/* Heap segment of exactly dmce_ring_segment_size bytes (ASan redzones after it). */
static seg_t seg_new(uint32_t cap)
{
    seg_t s;
    s.size = dmce_ring_segment_size(cap);
    assert_true(s.size > 0);
    s.base = aligned_alloc(4096, s.size);
    assert_non_null(s.base);
    memset(s.base, 0xa5, s.size); /* init must not rely on zeroed memory */
    assert_int_equal(dmce_ring_segment_init(s.base, s.size, cap), 0);
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &s.client), 0);
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_SERVER, &s.server), 0);
    return s;
}

static void seg_free(seg_t *s)
{
    free(s->base);
}

static dmce_ring_seg_hdr_t *hdr(void *base)
{
    return (dmce_ring_seg_hdr_t *)base;
}

static dmce_ring_ctl_t *ctl(void *base, unsigned i)
{
    return (dmce_ring_ctl_t *)((uint8_t *)base + sizeof(dmce_ring_seg_hdr_t) +
                               i * sizeof(dmce_ring_ctl_t));
}

/* Byte i of the test stream: not periodic, so a lost or doubled byte shows. */
static uint8_t pat(uint64_t i)
{
    uint64_t x = ((i >> 3) + 1) * 0x9e3779b97f4a7c15ull;
    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return (uint8_t)(x >> (8 * (i & 7)));
}

static void fill_pat(uint8_t *p, uint64_t pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(pos + i);
}

/* Index of the first byte that differs from the pattern, or n. */
static size_t check_pat(const uint8_t *p, uint64_t pos, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(pos + i))
            return i;
    return n;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static dmce_ring_wait_t wait_policy(uint32_t spin_ns, uint32_t timeout_ms)
{
    dmce_ring_wait_t w = {.spin_ns = spin_ns, .slice_ms = 20, .timeout_ms = timeout_ms};
    return w;
}

/* Write all of buf, waiting for room. 0 or error. */
static int write_all(dmce_ring_t *r, const void *buf, size_t len, const dmce_ring_wait_t *w)
{
    const uint8_t *p = buf;
    while (len > 0) {
        int n = dmce_ring_write(r, p, len);
        if (n < 0)
            return n;
        if (n == 0) {
            int k = dmce_ring_wait_writable(r, 1, w);
            if (k < 0)
                return k;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read exactly len bytes, waiting for data. 0 or error. */
static int read_all(dmce_ring_t *r, void *buf, size_t len, const dmce_ring_wait_t *w)
{
    uint8_t *p = buf;
    while (len > 0) {
        int n = dmce_ring_read(r, p, len);
        if (n < 0)
            return n;
        if (n == 0) {
            int k = dmce_ring_wait_readable(r, 1, w);
            if (k < 0)
                return k;
            continue;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Poll cond(arg) until true or bound_ms passes; returns the last value. */
static int poll_until(int (*cond)(const dmce_ring_t *), const dmce_ring_t *r, uint32_t bound_ms)
{
    uint64_t end = dmce_now_ms() + bound_ms;
    while (!cond(r) && dmce_now_ms() < end)
        sched_yield();
    return cond(r);
}

/* ---- segment init and attach -------------------------------------------------- */

static void test_segment_size_rejects_bad_capacity(void **state)
{
    (void)state;
    assert_int_equal(dmce_ring_segment_size(4096), DMCE_RING_DATA_OFFSET + 2 * 4096);
    assert_int_equal(dmce_ring_segment_size(1u << 30), DMCE_RING_DATA_OFFSET + (2ull << 30));
    assert_int_equal(dmce_ring_segment_size(0), 0);
    assert_int_equal(dmce_ring_segment_size(2048), 0);      /* below the minimum */
    assert_int_equal(dmce_ring_segment_size(4096 + 64), 0); /* not a power of two */
    assert_int_equal(dmce_ring_segment_size(1u << 31), 0);  /* above the maximum */
    assert_int_equal(dmce_ring_segment_size(UINT32_MAX), 0);
}

static void test_segment_init_geometry_and_sides(void **state)
{
    (void)state;
    seg_t s = seg_new(8192);
    const dmce_ring_seg_hdr_t *h = hdr(s.base);
    assert_int_equal(h->magic, DMCE_RING_MAGIC);
    assert_int_equal(h->version, DMCE_RING_VERSION);
    assert_int_equal(h->layout, DMCE_RING_LAYOUT_WORD);
    assert_int_equal(h->capacity, 8192);
    assert_int_equal(h->seg_size, s.size);
    assert_int_equal(h->data_offset[0], 4096);
    assert_int_equal(h->data_offset[1], 4096 + 8192);
    /* The client's tx is the server's rx (ring 0), and the other way round. */
    assert_ptr_equal(s.client.tx.ctl, ctl(s.base, DMCE_RING_C2S));
    assert_ptr_equal(s.server.rx.ctl, ctl(s.base, DMCE_RING_C2S));
    assert_ptr_equal(s.server.tx.ctl, ctl(s.base, DMCE_RING_S2C));
    assert_ptr_equal(s.client.rx.ctl, ctl(s.base, DMCE_RING_S2C));
    assert_ptr_equal(s.client.tx.data, (uint8_t *)s.base + 4096);
    assert_ptr_equal(s.client.rx.data, (uint8_t *)s.base + 4096 + 8192);
    /* Both directions carry their own bytes. */
    assert_int_equal(dmce_ring_write(&s.client.tx, "ping", 4), 4);
    assert_int_equal(dmce_ring_write(&s.server.tx, "pong!", 5), 5);
    char b[8];
    assert_int_equal(dmce_ring_read(&s.server.rx, b, sizeof(b)), 4);
    assert_memory_equal(b, "ping", 4);
    assert_int_equal(dmce_ring_read(&s.client.rx, b, sizeof(b)), 5);
    assert_memory_equal(b, "pong!", 5);
    seg_free(&s);
}

static void test_segment_init_rejects_bad_args(void **state)
{
    (void)state;
    size_t size = dmce_ring_segment_size(CAP);
    uint8_t *b = aligned_alloc(4096, size + 4096);
    assert_non_null(b);
    assert_int_equal(dmce_ring_segment_init(NULL, size, CAP), -EINVAL);
    assert_int_equal(dmce_ring_segment_init(b + 8, size, CAP), -EINVAL); /* misaligned */
    assert_int_equal(dmce_ring_segment_init(b, size - 1, CAP), -EINVAL);
    assert_int_equal(dmce_ring_segment_init(b, size, CAP + 1), -EINVAL);
    assert_int_equal(dmce_ring_segment_init(b, size + 4096, CAP), 0); /* larger region is fine */
    dmce_ring_pair_t p;
    assert_int_equal(dmce_ring_segment_attach(b, size + 4096, DMCE_RING_SIDE_CLIENT, &p), 0);
    assert_int_equal(dmce_ring_segment_attach(NULL, size, DMCE_RING_SIDE_CLIENT, &p), -EINVAL);
    assert_int_equal(dmce_ring_segment_attach(b, size, DMCE_RING_SIDE_CLIENT, NULL), -EINVAL);
    assert_int_equal(dmce_ring_segment_attach(b, size, (dmce_ring_side_t)7, &p), -EINVAL);
    assert_int_equal(dmce_ring_segment_attach(b + 64, size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_EBADMAGIC);
    assert_int_equal(dmce_ring_segment_attach(b + 8, size, DMCE_RING_SIDE_CLIENT, &p), -EINVAL);
    assert_int_equal(dmce_ring_segment_attach(b, 100, DMCE_RING_SIDE_CLIENT, &p), -EINVAL);
    free(b);
}

static void test_attach_bad_magic(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_pair_t p;
    hdr(s.base)->magic ^= 1;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_EBADMAGIC);
    memset(s.base, 0, s.size); /* a fresh, never formatted shm object */
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_SERVER, &p),
                     DMCE_EBADMAGIC);
    seg_free(&s);
}

static void test_attach_bad_version(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_pair_t p;
    hdr(s.base)->version = DMCE_RING_VERSION + 1;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_EVERSION);
    seg_free(&s);
}

static void test_attach_bad_layout(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_pair_t p;
    /* e.g. a build whose control block is one line longer */
    hdr(s.base)->layout = DMCE_RING_LAYOUT_WORD + (DMCE_RING_LINE << 8);
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ELAYOUT);
    seg_free(&s);
}

static void test_attach_bad_geometry_is_corrupt(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_pair_t p;
    dmce_ring_seg_hdr_t *h = hdr(s.base);
    const dmce_ring_seg_hdr_t good = *h;
    const uint32_t bad_caps[] = {0, 1, 2048, CAP + 1, 3 * CAP, 1u << 31, UINT32_MAX};
    for (size_t i = 0; i < DMCE_ARRAY_LEN(bad_caps); i++) {
        *h = good;
        h->capacity = bad_caps[i];
        assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                         DMCE_ECORRUPT);
    }
    /* A valid capacity larger than the region: would run past its end. */
    *h = good;
    h->capacity = 2 * CAP;
    h->seg_size = dmce_ring_segment_size(2 * CAP);
    h->data_offset[1] = DMCE_RING_DATA_OFFSET + 2 * CAP;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good;
    h->seg_size += 4096;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good;
    h->nrings = 3;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good;
    h->data_offset[1] = 1u << 30;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good;
    h->ctl_offset[0] = 0;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good; /* a region shorter than the header says */
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size - 1, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    *h = good;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p), 0);
    seg_free(&s);
}

static void test_attach_corrupt_positions(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_pair_t p;
    dmce_ring_ctl_t *c = ctl(s.base, DMCE_RING_S2C);
    atomic_store(&c->head, 10); /* head behind tail */
    atomic_store(&c->tail, 20);
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    atomic_store(&c->head, 20 + CAP + 1); /* more than a ring full */
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    atomic_store(&c->head, 20 + CAP); /* exactly full: fine */
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p), 0);
    /* Huge positions near the 64-bit wrap are fine as long as they agree. */
    atomic_store(&c->tail, UINT64_MAX - 5);
    atomic_store(&c->head, 100);
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p), 0);
    assert_int_equal(dmce_ring_readable(&p.rx), 106);
    seg_free(&s);
}

/* ---- empty, full, wrap -------------------------------------------------------------- */

static void test_empty_ring(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    uint8_t b[16];
    const void *rp;
    size_t len = 99;
    assert_int_equal(dmce_ring_readable(rx), 0);
    assert_int_equal(dmce_ring_writable(tx), CAP);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), 0);
    assert_int_equal(dmce_ring_read_span(rx, &rp, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(dmce_ring_consume(rx, 1), -EINVAL);
    assert_int_equal(dmce_ring_consume(rx, 0), 0);
    assert_int_equal(dmce_ring_write(tx, b, 0), 0);
    assert_int_equal(dmce_ring_readable(rx), 0);
    assert_false(dmce_ring_peer_asleep(tx));
    assert_false(dmce_ring_peer_asleep(rx));
    assert_int_equal(dmce_ring_closed(tx), 0);
    /* Each handle does only its own side. */
    assert_int_equal(dmce_ring_read(tx, b, sizeof(b)), -EBADF);
    assert_int_equal(dmce_ring_write(rx, b, sizeof(b)), -EBADF);
    assert_int_equal(dmce_ring_readable(tx), -EBADF);
    assert_int_equal(dmce_ring_writable(rx), -EBADF);
    assert_int_equal(dmce_ring_commit(rx, 0), -EBADF);
    assert_int_equal(dmce_ring_consume(tx, 0), -EBADF);
    assert_int_equal(dmce_ring_wait_readable(tx, 1, NULL), -EBADF);
    assert_int_equal(dmce_ring_wait_writable(rx, 1, NULL), -EBADF);
    /* A wait that could never be satisfied. */
    assert_int_equal(dmce_ring_wait_readable(rx, CAP + 1, NULL), -EINVAL);
    assert_int_equal(dmce_ring_wait_writable(tx, CAP + 1, NULL), -EINVAL);
    /* Ready at once: returns the level without sleeping. */
    assert_int_equal(dmce_ring_wait_writable(tx, CAP, NULL), CAP);
    seg_free(&s);
}

static void test_full_write_is_short_exactly_at_capacity(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    static uint8_t in[3 * CAP], out[3 * CAP];
    fill_pat(in, 0, sizeof(in));
    assert_int_equal(dmce_ring_write(tx, in, CAP - 10), CAP - 10);
    assert_int_equal(dmce_ring_writable(tx), 10);
    assert_int_equal(dmce_ring_write(tx, in + CAP - 10, 100), 10); /* short */
    assert_int_equal(dmce_ring_writable(tx), 0);
    assert_int_equal(dmce_ring_readable(rx), CAP);
    assert_int_equal(dmce_ring_write(tx, in + CAP, 1), 0); /* full */
    void *wp;
    size_t len = 99;
    assert_int_equal(dmce_ring_write_span(tx, &wp, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(dmce_ring_commit(tx, 1), -EINVAL);
    dmce_ring_wait_t w = wait_policy(0, 1);
    assert_int_equal(dmce_ring_wait_writable(tx, 1, &w), -ETIMEDOUT);
    /* One byte out, one byte of room. */
    assert_int_equal(dmce_ring_read(rx, out, 1), 1);
    assert_int_equal(dmce_ring_writable(tx), 1);
    assert_int_equal(dmce_ring_write(tx, in + CAP, 5), 1);
    assert_int_equal(dmce_ring_read(rx, out + 1, sizeof(out)), CAP);
    assert_int_equal(check_pat(out, 0, CAP + 1), CAP + 1);
    /* A write larger than the ring fills it exactly. */
    assert_int_equal(dmce_ring_write(tx, in, sizeof(in)), CAP);
    assert_int_equal(dmce_ring_read(rx, out, sizeof(out)), CAP);
    assert_int_equal(check_pat(out, 0, CAP), CAP);
    dmce_ring_stats_t st;
    dmce_ring_stats(tx, &st);
    assert_int_equal(st.head, 2 * CAP + 1);
    assert_int_equal(st.tail, 2 * CAP + 1);
    assert_int_equal(st.capacity, CAP);
    seg_free(&s);
}

static void test_spans_stop_at_wrap_and_continue(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    static uint8_t buf[CAP];
    /* Move both positions to 100 bytes before the wrap point. */
    fill_pat(buf, 0, CAP - 100);
    assert_int_equal(dmce_ring_write(tx, buf, CAP - 100), CAP - 100);
    assert_int_equal(dmce_ring_read(rx, buf, CAP), CAP - 100);

    void *wp;
    size_t wl;
    assert_int_equal(dmce_ring_write_span(tx, &wp, &wl), 0);
    assert_int_equal(wl, 100); /* stops at the wrap though CAP bytes are free */
    assert_ptr_equal(wp, tx->data + CAP - 100);
    fill_pat(wp, 1000, 100);
    assert_int_equal(dmce_ring_commit(tx, 101), -EINVAL);
    assert_int_equal(dmce_ring_commit(tx, 60), 0); /* a span may be committed in pieces */
    assert_int_equal(dmce_ring_commit(tx, 40), 0);
    assert_int_equal(dmce_ring_commit(tx, 1), -EINVAL);
    assert_int_equal(dmce_ring_write_span(tx, &wp, &wl), 0);
    assert_int_equal(wl, CAP - 100); /* continues at index 0 */
    assert_ptr_equal(wp, tx->data);
    fill_pat(wp, 1100, 300);
    assert_int_equal(dmce_ring_commit(tx, 300), 0);
    assert_int_equal(dmce_ring_writable(tx), CAP - 400);

    const void *rp;
    size_t rl;
    assert_int_equal(dmce_ring_read_span(rx, &rp, &rl), 0);
    assert_int_equal(rl, 100); /* stops at the wrap though 400 are readable */
    assert_ptr_equal(rp, rx->data + CAP - 100);
    assert_int_equal(check_pat(rp, 1000, 100), 100);
    assert_int_equal(dmce_ring_consume(rx, 101), -EINVAL);
    assert_int_equal(dmce_ring_consume(rx, 100), 0);
    assert_int_equal(dmce_ring_read_span(rx, &rp, &rl), 0);
    assert_int_equal(rl, 300);
    assert_ptr_equal(rp, rx->data);
    assert_int_equal(check_pat(rp, 1100, 300), 300);
    assert_int_equal(dmce_ring_consume(rx, 300), 0);
    assert_int_equal(dmce_ring_readable(rx), 0);

    /* Copy ops split at the wrap too: 200 bytes from index CAP - 100. */
    assert_int_equal(dmce_ring_write(tx, buf, CAP - 400 - 100), CAP - 500);
    assert_int_equal(dmce_ring_read(rx, buf, CAP), CAP - 500);
    fill_pat(buf, 5000, 200);
    assert_int_equal(dmce_ring_write(tx, buf, 200), 200);
    memset(buf, 0, sizeof(buf));
    assert_int_equal(dmce_ring_read(rx, buf, 200), 200);
    assert_int_equal(check_pat(buf, 5000, 200), 200);
    seg_free(&s);
}

/* Random interleaving in one thread against the obvious model. */
static void test_copy_and_span_model_check(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    static uint8_t buf[2 * CAP];
    uint64_t seed = 42, wpos = 0, rpos = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = xorshift(&seed);
        size_t want = (size_t)(x >> 8) % (x & 1 ? 64 : 2 * CAP);
        if (x & 2) {
            if (x & 4) {
                fill_pat(buf, wpos, want);
                int n = dmce_ring_write(tx, buf, want);
                assert_true(n >= 0);
                assert_int_equal((uint64_t)n, DMCE_MIN(want, CAP - (wpos - rpos)));
                wpos += (uint64_t)n;
            } else {
                void *p;
                size_t l;
                assert_int_equal(dmce_ring_write_span(tx, &p, &l), 0);
                size_t n = DMCE_MIN(l, want);
                fill_pat(p, wpos, n);
                assert_int_equal(dmce_ring_commit(tx, n), 0);
                wpos += n;
            }
        } else {
            if (x & 4) {
                int n = dmce_ring_read(rx, buf, want);
                assert_true(n >= 0);
                assert_int_equal((uint64_t)n, DMCE_MIN(want, wpos - rpos));
                assert_int_equal(check_pat(buf, rpos, (size_t)n), (size_t)n);
                rpos += (uint64_t)n;
            } else {
                const void *p;
                size_t l;
                assert_int_equal(dmce_ring_read_span(rx, &p, &l), 0);
                size_t n = DMCE_MIN(l, want);
                assert_int_equal(check_pat(p, rpos, n), n);
                assert_int_equal(dmce_ring_consume(rx, n), 0);
                rpos += n;
            }
        }
        assert_int_equal(dmce_ring_readable(rx), wpos - rpos);
        assert_int_equal(dmce_ring_writable(tx), CAP - (wpos - rpos));
    }
    assert_true(wpos > 50 * CAP); /* wrapped many times */
    dmce_ring_stats_t st;
    dmce_ring_stats(tx, &st);
    assert_int_equal(st.prod_wakes + st.cons_wakes + st.prod_sleeps + st.cons_sleeps, 0);
    seg_free(&s);
}

/* ---- MSMP frames larger than the ring, through a second thread ------------------------ */

#define FRAMES 24
#define FRAME_MAX (300u * 1024)

typedef struct frame_job {
    dmce_ring_t *tx;
    dmce_ring_wait_t wait;
    int result;
} frame_job_t;

static uint32_t frame_len(unsigned i)
{
    return i == 0 ? 0 : (uint32_t)((i * 2654435761u) % FRAME_MAX) + (i % 3 ? CAP : 0);
}

/* Writes FRAMES MSMP frames; payload bytes go straight into write spans. */
static void *frame_writer(void *arg)
{
    frame_job_t *job = arg;
    for (unsigned i = 0; i < FRAMES; i++) {
        dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                             .version = DMCE_MSMP_VERSION,
                             .op = DMCE_MSMP_OP_WRITE,
                             .req_id = i,
                             .len = frame_len(i)};
        uint8_t hb[DMCE_MSMP_HDR_SIZE];
        dmce_msmp_hdr_encode(&h, hb);
        int r = write_all(job->tx, hb, sizeof(hb), &job->wait);
        for (uint64_t off = 0; r == 0 && off < h.len;) {
            void *p;
            size_t l;
            r = dmce_ring_write_span(job->tx, &p, &l);
            if (r != 0)
                break;
            if (l == 0) {
                r = dmce_ring_wait_writable(job->tx, 1, &job->wait);
                r = r > 0 ? 0 : r;
                continue;
            }
            l = DMCE_MIN(l, h.len - off);
            fill_pat(p, ((uint64_t)i << 32) + off, l);
            r = dmce_ring_commit(job->tx, l);
            off += l;
        }
        if (r != 0) {
            job->result = r;
            return NULL;
        }
    }
    dmce_ring_close(job->tx);
    job->result = 0;
    return NULL;
}

static void frames_through_thread(uint32_t spin_ns)
{
    seg_t s = seg_new(CAP);
    frame_job_t job = {.tx = &s.client.tx, .wait = wait_policy(spin_ns, WAIT_BOUND_MS)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, frame_writer, &job), 0);
    dmce_ring_t *rx = &s.server.rx;
    dmce_ring_wait_t w = wait_policy(spin_ns, WAIT_BOUND_MS);
    for (unsigned i = 0; i < FRAMES; i++) {
        uint8_t hb[DMCE_MSMP_HDR_SIZE];
        assert_int_equal(read_all(rx, hb, sizeof(hb), &w), 0);
        dmce_msmp_hdr_t h;
        assert_int_equal(dmce_msmp_hdr_decode(hb, DMCE_MSMP_PAYLOAD_LIMIT, &h), 0);
        assert_int_equal(h.req_id, i);
        assert_int_equal(h.len, frame_len(i));
        for (uint64_t off = 0; off < h.len;) {
            int n = dmce_ring_wait_readable(rx, 1, &w);
            assert_true(n > 0);
            const void *p;
            size_t l;
            assert_int_equal(dmce_ring_read_span(rx, &p, &l), 0);
            l = DMCE_MIN(l, h.len - off);
            assert_int_equal(check_pat(p, ((uint64_t)i << 32) + off, l), l);
            assert_int_equal(dmce_ring_consume(rx, l), 0);
            off += l;
        }
    }
    assert_int_equal(dmce_ring_wait_readable(rx, 1, &w), DMCE_ECLOSED);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(job.result, 0);
    seg_free(&s);
}

static void test_frames_larger_than_ring_thread_spin(void **state)
{
    (void)state;
    frames_through_thread(DMCE_RING_SPIN_NS_DEFAULT);
}

static void test_frames_larger_than_ring_thread_futex_only(void **state)
{
    (void)state;
    frames_through_thread(0);
}

/* ---- hostile or corrupted positions ------------------------------------------------- */

static void test_corrupt_tail_ahead_of_head_fails_writer(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx;
    dmce_ring_ctl_t *c = tx->ctl;
    static uint8_t b[CAP];
    assert_int_equal(dmce_ring_write(tx, b, 10), 10);
    atomic_store(&c->tail, 11); /* tail past head */
    assert_int_equal(dmce_ring_writable(tx), DMCE_ECORRUPT);
    /* (A write that fits the room the producer last saw may still go
     * through: a stale tail is always safe. One that needs more looks.) */
    assert_int_equal(dmce_ring_write(tx, b, CAP), DMCE_ECORRUPT);
    dmce_ring_wait_t w = wait_policy(1000, 100);
    assert_int_equal(dmce_ring_wait_writable(tx, CAP, &w), DMCE_ECORRUPT);
    atomic_store(&c->tail, UINT64_MAX); /* far behind: more than a ring used */
    assert_int_equal(dmce_ring_writable(tx), DMCE_ECORRUPT);
    atomic_store(&c->tail, 5); /* a valid forward move is fine */
    assert_int_equal(dmce_ring_writable(tx), CAP - 5);
    atomic_store(&c->tail, 4); /* but tail never moves back */
    assert_int_equal(dmce_ring_writable(tx), DMCE_ECORRUPT);
    seg_free(&s);
}

static void test_corrupt_head_fails_reader(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    dmce_ring_ctl_t *c = rx->ctl;
    uint8_t b[CAP];
    const void *p;
    size_t l;
    memset(b, 1, sizeof(b));
    assert_int_equal(dmce_ring_write(tx, b, 200), 200);
    assert_int_equal(dmce_ring_read(rx, b, 100), 100); /* tail 100, seen head 200 */

    atomic_store(&c->head, CAP + 101); /* more than a ring ahead of tail */
    assert_int_equal(dmce_ring_readable(rx), DMCE_ECORRUPT);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECORRUPT);
    assert_int_equal(dmce_ring_read_span(rx, &p, &l), DMCE_ECORRUPT);
    dmce_ring_wait_t w = wait_policy(0, 100);
    assert_int_equal(dmce_ring_wait_readable(rx, 1, &w), DMCE_ECORRUPT);
    atomic_store(&c->head, UINT64_MAX); /* huge */
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECORRUPT);
    atomic_store(&c->head, 50); /* behind tail */
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECORRUPT);
    atomic_store(&c->head, 150); /* moved back below what was already seen */
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECORRUPT);
    atomic_store(&c->head, CAP + 100); /* forward to exactly full: legal */
    assert_int_equal(dmce_ring_readable(rx), CAP);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), CAP);
    seg_free(&s);
}

/* Capacity rewritten after attach: the handle keeps using the one it validated. */
static void test_capacity_changed_after_attach_is_ignored(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    hdr(s.base)->capacity = 1u << 30;
    hdr(s.base)->seg_size = UINT64_MAX;
    static uint8_t b[4 * CAP];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(dmce_ring_write(&s.client.tx, b, sizeof(b)), CAP);
        assert_int_equal(dmce_ring_read(&s.server.rx, b, sizeof(b)), CAP);
    }
    dmce_ring_pair_t p;
    assert_int_equal(dmce_ring_segment_attach(s.base, s.size, DMCE_RING_SIDE_CLIENT, &p),
                     DMCE_ECORRUPT);
    seg_free(&s);
}

/* Random scribbles on both positions while both sides keep going: only
 * legal results, and ASan sees no access outside the segment. */
static void test_random_scribbles_never_escape(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    static uint8_t b[2 * CAP];
    uint64_t seed = 7;
    int corrupt = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = xorshift(&seed);
        uint64_t v = xorshift(&seed);
        switch (x % 8) {
        case 0: atomic_store(&tx->ctl->head, v); break;
        case 1: atomic_store(&tx->ctl->tail, v); break;
        case 2: atomic_store(&tx->ctl->tail, tx->pos - v % (2 * CAP)); break;
        case 3: atomic_store(&tx->ctl->head, rx->pos + v % (2 * CAP)); break;
        default: break;
        }
        size_t len = (size_t)(v % sizeof(b));
        int r1 = dmce_ring_write(tx, b, len);
        int r2 = dmce_ring_read(rx, b, len);
        void *wp;
        const void *rp;
        size_t wl = 0, rl = 0;
        int r3 = dmce_ring_write_span(tx, &wp, &wl);
        if (r3 == 0 && wl) {
            memset(wp, 0x5a, wl); /* would trip ASan if the span left the segment */
            assert_int_equal(dmce_ring_commit(tx, wl), 0);
        }
        int r4 = dmce_ring_read_span(rx, &rp, &rl);
        if (r4 == 0 && rl) {
            volatile uint8_t sum = 0;
            for (size_t k = 0; k < rl; k++)
                sum += ((const uint8_t *)rp)[k];
            (void)sum;
            assert_int_equal(dmce_ring_consume(rx, rl), 0);
        }
        int rs[] = {r1, r2, r3, r4, dmce_ring_readable(rx), dmce_ring_writable(tx)};
        for (size_t k = 0; k < DMCE_ARRAY_LEN(rs); k++) {
            assert_true(rs[k] == DMCE_ECORRUPT || (rs[k] >= 0 && rs[k] <= (int)CAP));
            corrupt += rs[k] == DMCE_ECORRUPT;
        }
    }
    assert_true(corrupt > 0);
    seg_free(&s);
}

/* ---- close ------------------------------------------------------------------------------ */

static void test_close_by_producer_drains_then_eclosed(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    uint8_t b[300];
    fill_pat(b, 0, sizeof(b));
    assert_int_equal(dmce_ring_write(tx, b, 300), 300);
    dmce_ring_close(tx);
    dmce_ring_close(tx); /* idempotent */
    assert_int_equal(dmce_ring_closed(rx), DMCE_RING_CLOSED_PRODUCER);
    assert_int_equal(dmce_ring_write(tx, b, 1), DMCE_ECLOSED);
    void *wp;
    size_t wl;
    assert_int_equal(dmce_ring_write_span(tx, &wp, &wl), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_wait_writable(tx, 1, NULL), DMCE_ECLOSED);
    /* Everything committed before the close is delivered first. */
    assert_int_equal(dmce_ring_wait_readable(rx, 300, NULL), 300);
    assert_int_equal(dmce_ring_wait_readable(rx, 301, NULL), DMCE_ECLOSED); /* never coming */
    memset(b, 0, sizeof(b));
    assert_int_equal(dmce_ring_read(rx, b, 100), 100);
    const void *p;
    size_t l;
    assert_int_equal(dmce_ring_read_span(rx, &p, &l), 0);
    assert_int_equal(l, 200);
    assert_int_equal(dmce_ring_consume(rx, 200), 0);
    assert_int_equal(check_pat(b, 0, 100), 100);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_read_span(rx, &p, &l), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_wait_readable(rx, 1, NULL), DMCE_ECLOSED);
    /* The other direction is still open until the pair is closed. */
    assert_int_equal(dmce_ring_write(&s.server.tx, b, 10), 10);
    dmce_ring_pair_close(&s.server);
    assert_int_equal(dmce_ring_read(&s.client.rx, b, sizeof(b)), 10);
    assert_int_equal(dmce_ring_read(&s.client.rx, b, sizeof(b)), DMCE_ECLOSED);
    seg_free(&s);
}

static void test_close_by_consumer_fails_producer(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    dmce_ring_t *tx = &s.client.tx, *rx = &s.server.rx;
    uint8_t b[16] = {0};
    assert_int_equal(dmce_ring_write(tx, b, 16), 16);
    dmce_ring_close(rx);
    assert_int_equal(dmce_ring_closed(tx), DMCE_RING_CLOSED_CONSUMER);
    assert_int_equal(dmce_ring_write(tx, b, 1), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_wait_writable(tx, 1, NULL), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), 16);
    assert_int_equal(dmce_ring_read(rx, b, sizeof(b)), DMCE_ECLOSED);
    seg_free(&s);
}

/* ---- waiting ------------------------------------------------------------------------------ */

static void test_wait_timeout_is_bounded(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    const uint32_t spins[] = {0, 200000}; /* futex only; 0.2 ms of spinning first */
    for (size_t i = 0; i < DMCE_ARRAY_LEN(spins); i++) {
        dmce_ring_wait_t w = wait_policy(spins[i], 30);
        uint64_t t0 = dmce_now_ms();
        assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
        uint64_t dt = dmce_now_ms() - t0;
        assert_true(dt >= 30);
        assert_true(dt < 2000); /* bound, not a speed claim */
    }
    /* The writer times out on a full ring the same way; a timed-out waiter
     * leaves no sleeper registered behind. */
    static uint8_t b[CAP];
    assert_int_equal(dmce_ring_write(&s.client.tx, b, CAP), CAP);
    dmce_ring_wait_t w = wait_policy(0, 10);
    assert_int_equal(dmce_ring_wait_writable(&s.client.tx, 1, &w), -ETIMEDOUT);
    assert_false(dmce_ring_peer_asleep(&s.server.rx));
    assert_false(dmce_ring_peer_asleep(&s.client.tx));
    assert_int_equal(dmce_ring_notify(&s.server.rx), 0);
    seg_free(&s);
}

/*
 * spin_gate: a spin granted for 1 s ends as soon as the gate reads 0 (the
 * daemon took the grant back: CPU turns), and says so; an open gate spins
 * its whole budget.
 */
static void test_spin_gate_cuts_the_spin(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    _Atomic uint32_t gate = 0;
    uint32_t how = 99;
    dmce_ring_wait_t w = wait_policy(1000000000u, 20);
    w.spin_gate = &gate;
    w.how = &how;
    uint64_t t0 = dmce_now_ms();
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_int_equal(how, DMCE_RING_WAITED_CUT);
    assert_true(dmce_now_ms() - t0 < 500); /* slept, not spun for 1 s */
    atomic_store(&gate, 1);
    w = wait_policy(2000000u, 20); /* 2 ms of spin, then sleep */
    w.spin_gate = &gate;
    w.how = &how;
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_int_equal(how, DMCE_RING_WAITED_SLEPT);
    seg_free(&s);
}

typedef struct alive_state {
    int calls;
    int fail_after;
    int err;
} alive_state_t;

static int alive_cb(void *arg)
{
    alive_state_t *a = arg;
    return ++a->calls >= a->fail_after ? a->err : 0;
}

static void test_alive_failure_ends_wait(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    alive_state_t a = {.fail_after = 3, .err = DMCE_ECLOSED};
    dmce_ring_wait_t w = {
        .slice_ms = 2, .alive = alive_cb, .alive_arg = &a, .timeout_ms = WAIT_BOUND_MS};
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), DMCE_ECLOSED);
    assert_int_equal(a.calls, 3);
    assert_false(dmce_ring_peer_asleep(&s.client.tx));
    /* Any negative error is passed through; a positive value means closed. */
    a = (alive_state_t){.fail_after = 1, .err = -EPIPE};
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -EPIPE);
    a = (alive_state_t){.fail_after = 2, .err = 1};
    static uint8_t b[CAP];
    assert_int_equal(dmce_ring_write(&s.client.tx, b, CAP), CAP);
    assert_int_equal(dmce_ring_wait_writable(&s.client.tx, 1, &w), DMCE_ECLOSED);
    assert_int_equal(a.calls, 2);
    dmce_ring_stats_t st;
    dmce_ring_stats(&s.client.tx, &st);
    assert_true(st.cons_sleeps >= 4 && st.prod_sleeps >= 2);
    seg_free(&s);
}

/*
 * The first slice of a wait is 1 ms whatever slice_ms says: a peer that
 * dies just after the request is noticed at once, not a whole slice later
 * (the alive check runs once 1 ms has passed, here before the 50 ms
 * timeout, with slices of a second).
 */
static void test_first_alive_check_after_one_ms(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    alive_state_t a = {.fail_after = 1000000, .err = DMCE_ECLOSED};
    dmce_ring_wait_t w = {.slice_ms = 1000, .alive = alive_cb, .alive_arg = &a, .timeout_ms = 50};
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_true(a.calls >= 1);
    a = (alive_state_t){.fail_after = 1, .err = DMCE_ECLOSED};
    w.timeout_ms = WAIT_BOUND_MS;
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), DMCE_ECLOSED);
    seg_free(&s);
}

/*
 * first_check_ms moves the first check (a ring client waiting for its CPU
 * turn): none in a 40 ms wait with it at 5 s, where the 1 ms default
 * makes one at 1 ms (and more at 3, 7, 15, 31 ms); with it at 20 ms the
 * check comes, and ends the wait, no sooner than that.
 */
static void test_first_alive_check_can_come_later(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    alive_state_t a = {.fail_after = 1000000, .err = DMCE_ECLOSED};
    dmce_ring_wait_t w = {.slice_ms = 10000, /* (first_check_ms is capped at slice_ms) */
                          .first_check_ms = 5000,
                          .alive = alive_cb,
                          .alive_arg = &a,
                          .timeout_ms = 40};
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_int_equal(a.calls, 0);
    w.first_check_ms = 0;
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_true(a.calls >= 1);
    a = (alive_state_t){.fail_after = 1, .err = DMCE_ECLOSED};
    w.first_check_ms = 20;
    w.timeout_ms = WAIT_BOUND_MS;
    uint64_t t0 = dmce_now_ns();
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), DMCE_ECLOSED);
    assert_true(dmce_now_ns() - t0 >= 20ull * 1000 * 1000);
    assert_int_equal(a.calls, 1);
    seg_free(&s);
}

typedef struct waiter_job {
    dmce_ring_t *r;
    size_t min;
    int readable; /* 1: wait_readable, 0: wait_writable */
    dmce_ring_wait_t wait;
    int result;
} waiter_job_t;

static void *waiter(void *arg)
{
    waiter_job_t *j = arg;
    j->result = j->readable ? dmce_ring_wait_readable(j->r, j->min, &j->wait)
                            : dmce_ring_wait_writable(j->r, j->min, &j->wait);
    return NULL;
}

/* The reader sleeps (spin 0); each write while it sleeps wakes it with one
 * syscall; too few bytes send it back to sleep. */
static void test_commit_wakes_sleeping_reader(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    waiter_job_t j = {
        .r = &s.server.rx, .min = 10, .readable = 1, .wait = wait_policy(0, WAIT_BOUND_MS)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &j), 0);
    assert_true(poll_until(dmce_ring_peer_asleep, &s.client.tx, WAIT_BOUND_MS));
    uint8_t b[10] = {0};
    assert_int_equal(dmce_ring_write(&s.client.tx, b, 4), 4); /* wakes it: not enough */
    assert_true(poll_until(dmce_ring_peer_asleep, &s.client.tx, WAIT_BOUND_MS)); /* re-armed */
    assert_int_equal(dmce_ring_write(&s.client.tx, b, 6), 6);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.result, 10);
    assert_false(dmce_ring_peer_asleep(&s.client.tx));
    dmce_ring_stats_t st;
    dmce_ring_stats(&s.client.tx, &st);
    assert_int_equal(st.prod_wakes, 2);
    assert_true(st.cons_sleeps >= 2);
    /* Without a sleeper, writes and reads make no wake syscall at all. */
    uint64_t wakes = st.prod_wakes;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(dmce_ring_write(&s.client.tx, b, 10), 10);
        assert_int_equal(dmce_ring_read(&s.server.rx, b, 10), 10);
    }
    dmce_ring_stats(&s.client.tx, &st);
    assert_int_equal(st.prod_wakes, wakes);
    assert_int_equal(st.cons_wakes, 0);
    seg_free(&s);
}

/* The writer sleeps on a full ring; a read of enough bytes wakes it. */
static void test_consume_wakes_sleeping_writer(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    static uint8_t b[CAP];
    assert_int_equal(dmce_ring_write(&s.client.tx, b, CAP), CAP);
    waiter_job_t j = {
        .r = &s.client.tx, .min = 100, .readable = 0, .wait = wait_policy(0, WAIT_BOUND_MS)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &j), 0);
    assert_true(poll_until(dmce_ring_peer_asleep, &s.server.rx, WAIT_BOUND_MS));
    assert_int_equal(dmce_ring_read(&s.server.rx, b, 100), 100);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.result, 100);
    dmce_ring_stats_t st;
    dmce_ring_stats(&s.client.tx, &st);
    assert_int_equal(st.cons_wakes, 1);
    seg_free(&s);
}

/* Close wakes a sleeping reader, which gets the data first and then ECLOSED. */
static void test_close_wakes_sleeping_reader(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    waiter_job_t j = {
        .r = &s.server.rx, .min = 100, .readable = 1, .wait = wait_policy(0, WAIT_BOUND_MS)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &j), 0);
    assert_true(poll_until(dmce_ring_peer_asleep, &s.client.tx, WAIT_BOUND_MS));
    uint8_t b[50] = {0};
    assert_int_equal(dmce_ring_write(&s.client.tx, b, 50), 50);
    dmce_ring_close(&s.client.tx);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.result, DMCE_ECLOSED); /* 100 will never come */
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, NULL), 50);
    assert_int_equal(dmce_ring_read(&s.server.rx, b, sizeof(b)), 50);
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, NULL), DMCE_ECLOSED);
    seg_free(&s);
}

/* notify wakes a registered sleeper and makes no syscall when there is none. */
static void test_notify_only_syscalls_for_a_sleeper(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    assert_int_equal(dmce_ring_notify(&s.client.tx), 0);
    /* No liveness callback: its checks would end slices early (1 ms, then doubling). */
    waiter_job_t j = {.r = &s.server.rx,
                      .min = 1,
                      .readable = 1,
                      .wait = {.slice_ms = WAIT_BOUND_MS, .timeout_ms = 2 * WAIT_BOUND_MS}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &j), 0);
    assert_true(poll_until(dmce_ring_peer_asleep, &s.client.tx, WAIT_BOUND_MS));
    /* Woken without data: the waiter re-checks and sleeps again. */
    assert_int_equal(dmce_ring_notify(&s.client.tx), 1);
    assert_true(poll_until(dmce_ring_peer_asleep, &s.client.tx, WAIT_BOUND_MS)); /* re-armed */
    dmce_ring_close(&s.client.tx);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(j.result, DMCE_ECLOSED);
    dmce_ring_stats_t st;
    dmce_ring_stats(&s.client.tx, &st);
    assert_true(st.cons_sleeps >= 2); /* slept again after a wake-up without data */
    seg_free(&s);
}

static void test_default_spin_is_zero_on_one_cpu(void **state)
{
    (void)state;
    cpu_set_t old, one;
    assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
    uint32_t spin = dmce_ring_default_spin_ns();
    assert_int_equal(spin, CPU_COUNT(&old) > 1 ? DMCE_RING_SPIN_NS_DEFAULT : 0);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &old))
        cpu++;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    assert_int_equal(dmce_ring_default_spin_ns(), 0);
    assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
}

/* ---- how a wait ended, and the adaptive spin budget ---------------------------------------- */

typedef struct late_writer {
    dmce_ring_t *tx;
    unsigned delay_us;
} late_writer_t;

static void *late_write(void *arg)
{
    late_writer_t *lw = arg;
    usleep(lw->delay_us);
    static const uint8_t one = 1;
    assert_int_equal(dmce_ring_write(lw->tx, &one, 1), 1);
    dmce_ring_notify(lw->tx);
    return NULL;
}

static void count_call(void *arg)
{
    ++*(int *)arg;
}

/* dmce_ring_wait_t.how says whether the data was there, came during the
 * spin, or came after the waiter had gone to sleep (or never). */
static void test_wait_reports_how_it_ended(void **state)
{
    (void)state;
    seg_t s = seg_new(CAP);
    uint8_t b;
    uint32_t how = 99;
    /* Nothing there, no spin: it sleeps and times out. */
    dmce_ring_wait_t w = wait_policy(0, 10);
    w.how = &how;
    assert_int_equal(dmce_ring_wait_readable(&s.server.rx, 1, &w), -ETIMEDOUT);
    assert_int_equal(how, DMCE_RING_WAITED_SLEPT);
    /* Already there. */
    assert_int_equal(dmce_ring_write(&s.client.tx, "x", 1), 1);
    assert_true(dmce_ring_wait_readable(&s.server.rx, 1, &w) >= 1);
    assert_int_equal(how, DMCE_RING_WAITED_NOT);
    assert_int_equal(dmce_ring_read(&s.server.rx, &b, 1), 1);
    /* Written 1 ms into a spin of up to 2 s: caught by the spin (or there
     * before the wait began, if this thread was delayed: never slept). */
    late_writer_t lw = {.tx = &s.client.tx, .delay_us = 1000};
    pthread_t th;
    w = wait_policy(2000000000u, WAIT_BOUND_MS);
    w.how = &how;
    assert_int_equal(pthread_create(&th, NULL, late_write, &lw), 0);
    assert_true(dmce_ring_wait_readable(&s.server.rx, 1, &w) >= 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_not_equal(how, DMCE_RING_WAITED_SLEPT);
    assert_int_equal(dmce_ring_read(&s.server.rx, &b, 1), 1);
    /* Written 300 ms into a wait that spins 1 ms: it came while asleep, and
     * spin_over ran once, between the spin and the sleep. */
    lw.delay_us = 300000;
    w = wait_policy(1000000, WAIT_BOUND_MS);
    w.how = &how;
    int overs = 0;
    w.spin_over = count_call;
    w.alive_arg = &overs;
    assert_int_equal(pthread_create(&th, NULL, late_write, &lw), 0);
    assert_true(dmce_ring_wait_readable(&s.server.rx, 1, &w) >= 1);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(how, DMCE_RING_WAITED_SLEPT);
    assert_int_equal(overs, 1);
    seg_free(&s);
}

/* The budget: a quarter after each spin that ran out, nothing under 1 us,
 * a probe of the whole budget every 16 waits without a spin (32, 64, ...
 * after probes that fail; a failed probe goes straight back to no spin),
 * back up by doubling after spins that pay. */
static void test_spin_adapt_backs_off_probes_and_regrows(void **state)
{
    (void)state;
    const uint32_t max = 50000;
    dmce_spin_adapt_t a = {0};
    assert_int_equal(dmce_spin_budget(&a, max), max);
    dmce_spin_update(&a, max, max, 1); /* paid off: stays at max */
    assert_int_equal(dmce_spin_budget(&a, max), max);
    dmce_spin_update(&a, max, max, 0);
    assert_int_equal(dmce_spin_budget(&a, max), 12500);
    dmce_spin_update(&a, max, 12500, 0);
    assert_int_equal(dmce_spin_budget(&a, max), 3125);
    dmce_spin_update(&a, max, 3125, 0); /* 781 ns: under 1 us, no spin */
    assert_int_equal(dmce_spin_budget(&a, max), 0);
    /* No spin: the 16th wait probes with everything. */
    for (unsigned i = 1; i < 16; i++) {
        dmce_spin_update(&a, max, 0, 0);
        assert_int_equal(dmce_spin_budget(&a, max), 0);
    }
    dmce_spin_update(&a, max, 0, 0);
    assert_int_equal(dmce_spin_budget(&a, max), max);
    /* The probe fails: no spin at once, and the next probe waits twice as long. */
    dmce_spin_update(&a, max, max, 0);
    assert_int_equal(dmce_spin_budget(&a, max), 0);
    for (unsigned i = 1; i < 32; i++) {
        dmce_spin_update(&a, max, 0, 0);
        assert_int_equal(dmce_spin_budget(&a, max), 0);
    }
    dmce_spin_update(&a, max, 0, 0);
    assert_int_equal(dmce_spin_budget(&a, max), max);
    /* This probe pays off: the budget stays, and probes are every 16 again. */
    dmce_spin_update(&a, max, max, 1);
    assert_int_equal(dmce_spin_budget(&a, max), max);
    /* Regrowth from a small budget: at least 2 us, then doubling, capped. */
    dmce_spin_update(&a, max, max, 0);
    dmce_spin_update(&a, max, 12500, 0);
    dmce_spin_update(&a, max, 3125, 0);
    for (unsigned i = 0; i < 16; i++)
        dmce_spin_update(&a, max, 0, 0);
    assert_int_equal(dmce_spin_budget(&a, max), max); /* 16, not 64: reset by the success */
    dmce_spin_update(&a, max, 1500, 1);
    assert_int_equal(dmce_spin_budget(&a, max), 3000);
    dmce_spin_update(&a, max, 300, 1);
    assert_int_equal(dmce_spin_budget(&a, max), 2000);
    dmce_spin_update(&a, max, 30000, 1);
    assert_int_equal(dmce_spin_budget(&a, max), max);
    /* A smaller grant caps the budget; no grant, no spin and no probe, and
     * a grant that comes later starts whole. */
    assert_int_equal(dmce_spin_budget(&a, 20000), 20000);
    dmce_spin_adapt_t z = {0};
    for (unsigned i = 0; i < 2000; i++) {
        assert_int_equal(dmce_spin_budget(&z, 0), 0);
        dmce_spin_update(&z, 0, 0, 0);
    }
    assert_int_equal(dmce_spin_budget(&z, max), max);
    /* Waits without a spin while the budget is not 0 (nothing to learn) do
     * not count toward a probe. */
    dmce_spin_adapt_t q = {0};
    dmce_spin_update(&q, max, max, 0); /* 12500 */
    for (unsigned i = 0; i < 100; i++)
        dmce_spin_update(&q, max, 0, 0);
    assert_int_equal(dmce_spin_budget(&q, max), 12500);
    /* Probe intervals stop doubling at 1024. */
    dmce_spin_adapt_t p = {0};
    (void)dmce_spin_budget(&p, max);
    unsigned waits = 0;
    for (unsigned round = 0; round < 12; round++) {
        dmce_spin_update(&p, max, dmce_spin_budget(&p, max), 0); /* a failing spin or probe */
        while (dmce_spin_budget(&p, max) != 0)
            dmce_spin_update(&p, max, dmce_spin_budget(&p, max), 0);
        waits = 0;
        while (dmce_spin_budget(&p, max) == 0) {
            dmce_spin_update(&p, max, 0, 0);
            waits++;
        }
    }
    assert_int_equal(waits, 1024);
}

/* ---- two processes ------------------------------------------------------------------------ */

static void *shared_segment(uint32_t cap, size_t *size)
{
    *size = dmce_ring_segment_size(cap);
    void *base = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(base != MAP_FAILED);
    assert_int_equal(dmce_ring_segment_init(base, *size, cap), 0);
    return base;
}

/* Child: produce `total` pattern bytes in random pieces, by copy or span, then close. */
static int stress_producer(void *base, size_t size, uint64_t total, uint32_t spin_ns, uint64_t seed)
{
    dmce_ring_pair_t p;
    int r = dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_CLIENT, &p);
    if (r < 0)
        return 10;
    dmce_ring_wait_t w = wait_policy(spin_ns, WAIT_BOUND_MS);
    static uint8_t buf[1 << 17];
    uint64_t pos = 0;
    while (pos < total) {
        uint64_t x = xorshift(&seed);
        size_t want = (size_t)DMCE_MIN((x >> 16) % (x & 8 ? 512 : sizeof(buf)) + 1, total - pos);
        if (x & 1) {
            fill_pat(buf, pos, want);
            r = write_all(&p.tx, buf, want, &w);
            if (r < 0)
                return 11;
            pos += want;
        } else {
            /* Each side waits for at most half a ring: never both blocked. */
            r = dmce_ring_wait_writable(&p.tx, DMCE_MIN(want, p.tx.capacity / 2), &w);
            if (r < 0)
                return 12;
            void *sp;
            size_t sl;
            if (dmce_ring_write_span(&p.tx, &sp, &sl) != 0)
                return 13;
            sl = DMCE_MIN(sl, want);
            fill_pat(sp, pos, sl);
            if (dmce_ring_commit(&p.tx, sl) != 0)
                return 14;
            pos += sl;
        }
    }
    dmce_ring_close(&p.tx);
    return 0;
}

static void stress_two_processes(uint32_t cap, uint32_t spin_ns, uint64_t total)
{
    size_t size;
    void *base = shared_segment(cap, &size);
    uint64_t seed = 0x1234567 + cap + spin_ns;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60); /* a hung child dies; the parent's waits time out */
        _exit(stress_producer(base, size, total, spin_ns, seed));
    }
    dmce_ring_pair_t p;
    assert_int_equal(dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_SERVER, &p), 0);
    dmce_ring_wait_t w = wait_policy(spin_ns, WAIT_BOUND_MS);
    static uint8_t buf[1 << 17];
    uint64_t pos = 0, rseed = seed ^ 0xabcdef;
    int r;
    for (;;) {
        uint64_t x = xorshift(&rseed);
        size_t want = (size_t)((x >> 16) % (x & 8 ? 700 : sizeof(buf)) + 1);
        r = dmce_ring_wait_readable(&p.rx, DMCE_MIN(want, (x & 4) ? cap / 2 : 1), &w);
        if (r == DMCE_ECLOSED)
            r = dmce_ring_wait_readable(&p.rx, 1, &w); /* drain a short tail */
        if (r < 0)
            break;
        if (x & 1) {
            int n = dmce_ring_read(&p.rx, buf, want);
            assert_true(n > 0);
            size_t bad = check_pat(buf, pos, (size_t)n);
            if (bad != (size_t)n)
                fail_msg("byte %llu differs", (unsigned long long)(pos + bad));
            pos += (uint64_t)n;
        } else {
            const void *sp;
            size_t sl;
            assert_int_equal(dmce_ring_read_span(&p.rx, &sp, &sl), 0);
            assert_true(sl > 0);
            sl = DMCE_MIN(sl, want);
            size_t bad = check_pat(sp, pos, sl);
            if (bad != sl)
                fail_msg("byte %llu differs", (unsigned long long)(pos + bad));
            assert_int_equal(dmce_ring_consume(&p.rx, sl), 0);
            pos += sl;
        }
    }
    assert_int_equal(r, DMCE_ECLOSED);
    assert_int_equal(pos, total);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    dmce_ring_stats_t st;
    dmce_ring_stats(&p.rx, &st);
    print_message("ring %u B, spin %u ns: %llu MB; sleeps prod %llu cons %llu, "
                  "wakes prod %llu cons %llu\n",
                  cap, spin_ns, (unsigned long long)(total >> 20),
                  (unsigned long long)st.prod_sleeps, (unsigned long long)st.cons_sleeps,
                  (unsigned long long)st.prod_wakes, (unsigned long long)st.cons_wakes);
    munmap(base, size);
}

#define STRESS_BYTES (24ull << 20)

static void test_stress_two_processes_4k_spin(void **state)
{
    (void)state;
    stress_two_processes(4096, DMCE_RING_SPIN_NS_DEFAULT, STRESS_BYTES);
}

static void test_stress_two_processes_4k_futex_only(void **state)
{
    (void)state;
    stress_two_processes(4096, 0, STRESS_BYTES);
}

static void test_stress_two_processes_64k_spin(void **state)
{
    (void)state;
    stress_two_processes(65536, DMCE_RING_SPIN_NS_DEFAULT, STRESS_BYTES);
}

static void test_stress_two_processes_64k_futex_only(void **state)
{
    (void)state;
    stress_two_processes(65536, 0, STRESS_BYTES);
}

/* Request/response across two processes, both rings, every round trip a sleep. */
static void test_pingpong_two_processes_futex_only(void **state)
{
    (void)state;
    const int rounds = 2000;
    size_t size;
    void *base = shared_segment(CAP, &size);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        dmce_ring_pair_t p;
        if (dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_SERVER, &p) != 0)
            _exit(10);
        dmce_ring_wait_t w = wait_policy(0, WAIT_BOUND_MS);
        uint8_t m[CAP];
        for (;;) {
            uint32_t len;
            int r = read_all(&p.rx, &len, sizeof(len), &w);
            if (r == DMCE_ECLOSED)
                _exit(0);
            if (r < 0 || len > sizeof(m) || read_all(&p.rx, m, len, &w) != 0)
                _exit(11);
            for (uint32_t i = 0; i < len; i++)
                m[i] ^= 0xff;
            if (write_all(&p.tx, &len, sizeof(len), &w) != 0 || write_all(&p.tx, m, len, &w) != 0)
                _exit(12);
        }
    }
    dmce_ring_pair_t p;
    assert_int_equal(dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_CLIENT, &p), 0);
    dmce_ring_wait_t w = wait_policy(0, WAIT_BOUND_MS);
    uint8_t m[CAP], back[CAP];
    for (int i = 0; i < rounds; i++) {
        uint32_t len = (uint32_t)(i * 37) % 600 + 1, blen;
        fill_pat(m, (uint64_t)i * 1000, len);
        assert_int_equal(write_all(&p.tx, &len, sizeof(len), &w), 0);
        assert_int_equal(write_all(&p.tx, m, len, &w), 0);
        assert_int_equal(read_all(&p.rx, &blen, sizeof(blen), &w), 0);
        assert_int_equal(blen, len);
        assert_int_equal(read_all(&p.rx, back, blen, &w), 0);
        for (uint32_t k = 0; k < len; k++)
            assert_int_equal(back[k], m[k] ^ 0xff);
    }
    dmce_ring_close(&p.tx);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    dmce_ring_stats_t st;
    dmce_ring_stats(&p.rx, &st);
    assert_true(st.cons_sleeps > 0); /* futex-only: the client did sleep */
    munmap(base, size);
}

/* A waiter whose peer process died without closing: the alive callback ends the wait. */
typedef struct child_alive {
    pid_t pid;
} child_alive_t;

static int child_alive_cb(void *arg)
{
    child_alive_t *c = arg;
    int status;
    return waitpid(c->pid, &status, WNOHANG) == c->pid ? DMCE_ECLOSED : 0;
}

static void test_dead_peer_process_ends_wait(void **state)
{
    (void)state;
    size_t size;
    void *base = shared_segment(CAP, &size);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dmce_ring_pair_t p;
        if (dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_CLIENT, &p) != 0)
            _exit(10);
        /* Writes a little, then dies without closing (as a crash would). */
        _exit(dmce_ring_write(&p.tx, "abc", 3) == 3 ? 0 : 11);
    }
    dmce_ring_pair_t p;
    assert_int_equal(dmce_ring_segment_attach(base, size, DMCE_RING_SIDE_SERVER, &p), 0);
    child_alive_t c = {.pid = pid};
    dmce_ring_wait_t w = {
        .slice_ms = 5, .timeout_ms = WAIT_BOUND_MS, .alive = child_alive_cb, .alive_arg = &c};
    assert_int_equal(dmce_ring_wait_readable(&p.rx, 4, &w), DMCE_ECLOSED);
    assert_int_equal(dmce_ring_readable(&p.rx), 3);
    munmap(base, size);
}

int main(void)
{
    alarm(600); /* last-resort watchdog: a hang fails the binary, never blocks CI */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_size_rejects_bad_capacity),
        cmocka_unit_test(test_segment_init_geometry_and_sides),
        cmocka_unit_test(test_segment_init_rejects_bad_args),
        cmocka_unit_test(test_attach_bad_magic),
        cmocka_unit_test(test_attach_bad_version),
        cmocka_unit_test(test_attach_bad_layout),
        cmocka_unit_test(test_attach_bad_geometry_is_corrupt),
        cmocka_unit_test(test_attach_corrupt_positions),
        cmocka_unit_test(test_empty_ring),
        cmocka_unit_test(test_full_write_is_short_exactly_at_capacity),
        cmocka_unit_test(test_spans_stop_at_wrap_and_continue),
        cmocka_unit_test(test_copy_and_span_model_check),
        cmocka_unit_test(test_frames_larger_than_ring_thread_spin),
        cmocka_unit_test(test_frames_larger_than_ring_thread_futex_only),
        cmocka_unit_test(test_corrupt_tail_ahead_of_head_fails_writer),
        cmocka_unit_test(test_corrupt_head_fails_reader),
        cmocka_unit_test(test_capacity_changed_after_attach_is_ignored),
        cmocka_unit_test(test_random_scribbles_never_escape),
        cmocka_unit_test(test_close_by_producer_drains_then_eclosed),
        cmocka_unit_test(test_close_by_consumer_fails_producer),
        cmocka_unit_test(test_spin_gate_cuts_the_spin),
        cmocka_unit_test(test_wait_timeout_is_bounded),
        cmocka_unit_test(test_alive_failure_ends_wait),
        cmocka_unit_test(test_first_alive_check_after_one_ms),
        cmocka_unit_test(test_first_alive_check_can_come_later),
        cmocka_unit_test(test_commit_wakes_sleeping_reader),
        cmocka_unit_test(test_consume_wakes_sleeping_writer),
        cmocka_unit_test(test_close_wakes_sleeping_reader),
        cmocka_unit_test(test_notify_only_syscalls_for_a_sleeper),
        cmocka_unit_test(test_default_spin_is_zero_on_one_cpu),
        cmocka_unit_test(test_wait_reports_how_it_ended),
        cmocka_unit_test(test_spin_adapt_backs_off_probes_and_regrows),
        cmocka_unit_test(test_stress_two_processes_4k_spin),
        cmocka_unit_test(test_stress_two_processes_4k_futex_only),
        cmocka_unit_test(test_stress_two_processes_64k_spin),
        cmocka_unit_test(test_stress_two_processes_64k_futex_only),
        cmocka_unit_test(test_pingpong_two_processes_futex_only),
        cmocka_unit_test(test_dead_peer_process_ends_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
