/*
 * ring.c - shared-memory SPSC byte rings; the format and the API are in
 * ring.h, the design and the proof of the wake-up protocol in docs/ring.md.
 *
 * Memory ordering. The producer copies bytes into the data area, then
 * stores head with release; the consumer loads head with acquire before
 * reading those bytes. The consumer stores tail with release after it has
 * read the bytes; the producer loads tail with acquire before it reuses
 * that space. Nothing else orders data.
 *
 * Sleeping (eventcount). Each ring has two 32-bit sleeper words in the
 * control block: data_futex (the consumer waits for data) and space_futex
 * (the producer waits for space). Bit 0 says "a waiter is asleep or about
 * to be", bits 1-31 are a sequence number bumped by every wake. A waiter
 *   sets bit 0 (fetch_or, keeping the value w), full fence, re-checks its
 *   condition, and only if still unmet calls futex_wait(word, w).
 * The other side, after publishing (head or tail store, or close),
 *   full fence, loads the word; only if bit 0 is set does it CAS w -> w + 1
 *   (clears bit 0, bumps the sequence) and call futex_wake.
 * The two fences make it impossible for the waiter to miss the new
 * position and the waker to miss bit 0 at the same time; the CAS changes
 * the word, so a futex_wait that has not yet started returns at once.
 * Without a sleeper the publish path costs one fence and one load of a
 * line nobody writes: no syscall, no cache-line transfer.
 *
 * Robustness. capacity and mask are validated once at attach and kept in
 * the process-local handle; each side keeps its own position locally (the
 * shared copy is only published, never trusted back) and checks each peer
 * position it loads: the peer may only move forward, and never past the
 * other side (head - tail <= capacity, in modular 64-bit arithmetic). A
 * violation is DMCE_ECORRUPT; every index is pos & mask and every copy is
 * bounded by capacity - index, so no peer value can cause an access
 * outside the region.
 */
#include "ring.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>

#include <dmce/error.h>

#include "futex.h"
#include "util.h"

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release
#define SEQ_CST memory_order_seq_cst

static int capacity_ok(uint32_t c)
{
    return c >= DMCE_RING_CAPACITY_MIN && c <= DMCE_RING_CAPACITY_MAX && (c & (c - 1)) == 0;
}

static uint64_t ctl_offset(unsigned i)
{
    return sizeof(dmce_ring_seg_hdr_t) + (uint64_t)i * sizeof(dmce_ring_ctl_t);
}

static uint64_t data_offset(uint32_t capacity, unsigned i)
{
    return DMCE_RING_DATA_OFFSET + (uint64_t)i * capacity;
}

_Static_assert(DMCE_RING_DATA_OFFSET + 2ull * DMCE_RING_CAPACITY_MAX <= UINT32_MAX,
               "a segment size fits a 32-bit size_t");

/* Single-writer statistics counter: no RMW needed. */
static void stat_inc(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, RELAXED) + 1, RELAXED);
}

/* ---- segment ---------------------------------------------------------------- */

size_t dmce_ring_segment_size(uint32_t capacity)
{
    if (!capacity_ok(capacity))
        return 0;
    return (size_t)DMCE_RING_DATA_OFFSET + 2 * (size_t)capacity;
}

int dmce_ring_segment_init(void *base, size_t size, uint32_t capacity)
{
    size_t need = dmce_ring_segment_size(capacity);
    if (!base || ((uintptr_t)base & (DMCE_RING_ALIGN - 1)) || need == 0 || size < need)
        return -EINVAL;
    dmce_ring_seg_hdr_t *h = base;
    memset(base, 0, DMCE_RING_DATA_OFFSET);
    h->version = DMCE_RING_VERSION;
    h->layout = DMCE_RING_LAYOUT_WORD;
    h->capacity = capacity;
    h->nrings = 2;
    h->seg_size = need;
    for (unsigned i = 0; i < 2; i++) {
        h->ctl_offset[i] = ctl_offset(i);
        h->data_offset[i] = data_offset(capacity, i);
        dmce_ring_ctl_t *c = (dmce_ring_ctl_t *)((uint8_t *)base + ctl_offset(i));
        atomic_init(&c->head, 0);
        atomic_init(&c->tail, 0);
        atomic_init(&c->prod_sleeps, 0);
        atomic_init(&c->prod_wakes, 0);
        atomic_init(&c->cons_sleeps, 0);
        atomic_init(&c->cons_wakes, 0);
        atomic_init(&c->data_futex, 0);
        atomic_init(&c->space_futex, 0);
        atomic_init(&c->closed, 0);
    }
    /* The magic last: a header with the magic is complete. */
    atomic_thread_fence(RELEASE);
    h->magic = DMCE_RING_MAGIC;
    return 0;
}

static void handle_init(dmce_ring_t *r, uint8_t *base, uint32_t capacity, unsigned i, uint32_t role)
{
    r->ctl = (dmce_ring_ctl_t *)(base + ctl_offset(i));
    r->data = base + data_offset(capacity, i);
    r->capacity = capacity;
    r->mask = capacity - 1;
    r->role = role;
    r->span = 0;
    uint64_t head = atomic_load_explicit(&r->ctl->head, ACQUIRE);
    uint64_t tail = atomic_load_explicit(&r->ctl->tail, ACQUIRE);
    r->pos = role == DMCE_RING_PRODUCER ? head : tail;
    r->peer = role == DMCE_RING_PRODUCER ? tail : head;
}

int dmce_ring_segment_attach(void *base, size_t size, dmce_ring_side_t side, dmce_ring_pair_t *out)
{
    if (!base || !out || ((uintptr_t)base & (DMCE_RING_ALIGN - 1)) ||
        size < DMCE_RING_DATA_OFFSET ||
        (side != DMCE_RING_SIDE_CLIENT && side != DMCE_RING_SIDE_SERVER))
        return -EINVAL;
    const volatile dmce_ring_seg_hdr_t *h = base;
    if (h->magic != DMCE_RING_MAGIC)
        return DMCE_EBADMAGIC;
    atomic_thread_fence(ACQUIRE);
    if (h->version != DMCE_RING_VERSION)
        return DMCE_EVERSION;
    if (h->layout != DMCE_RING_LAYOUT_WORD)
        return DMCE_ELAYOUT;
    uint32_t capacity = h->capacity; /* read once; used from here on */
    size_t need = dmce_ring_segment_size(capacity);
    if (need == 0 || h->nrings != 2 || h->seg_size != need || size < need)
        return DMCE_ECORRUPT;
    for (unsigned i = 0; i < 2; i++)
        if (h->ctl_offset[i] != ctl_offset(i) || h->data_offset[i] != data_offset(capacity, i))
            return DMCE_ECORRUPT;
    for (unsigned i = 0; i < 2; i++) {
        dmce_ring_ctl_t *c = (dmce_ring_ctl_t *)((uint8_t *)base + ctl_offset(i));
        uint64_t tail = atomic_load_explicit(&c->tail, ACQUIRE);
        uint64_t head = atomic_load_explicit(&c->head, ACQUIRE);
        if (head - tail > capacity)
            return DMCE_ECORRUPT;
    }
    unsigned tx = side == DMCE_RING_SIDE_CLIENT ? DMCE_RING_C2S : DMCE_RING_S2C;
    handle_init(&out->tx, base, capacity, tx, DMCE_RING_PRODUCER);
    handle_init(&out->rx, base, capacity, tx ^ 1u, DMCE_RING_CONSUMER);
    return 0;
}

/* ---- wake side ---------------------------------------------------------------- */

/*
 * Called after a publish and a seq_cst fence: if a waiter registered on
 * `word`, clear its bit, bump the sequence and wake it. 1 if a syscall was
 * made.
 */
static int wake_sleeper(_Atomic uint32_t *word, _Atomic uint64_t *wakes)
{
    uint32_t w = atomic_load_explicit(word, RELAXED);
    while (w & DMCE_RING_SLEEPER) {
        if (atomic_compare_exchange_weak_explicit(word, &w, w + 1u, SEQ_CST, RELAXED)) {
            (void)dmce_futex_wake(word, INT_MAX);
            stat_inc(wakes);
            return 1;
        }
    }
    return 0;
}

/* Producer published head: wake a consumer sleeping for data. */
static void publish_head(dmce_ring_t *r)
{
    atomic_store_explicit(&r->ctl->head, r->pos, RELEASE);
    atomic_thread_fence(SEQ_CST);
    wake_sleeper(&r->ctl->data_futex, &r->ctl->prod_wakes);
}

/* Consumer published tail: wake a producer sleeping for space. */
static void publish_tail(dmce_ring_t *r)
{
    atomic_store_explicit(&r->ctl->tail, r->pos, RELEASE);
    atomic_thread_fence(SEQ_CST);
    wake_sleeper(&r->ctl->space_futex, &r->ctl->cons_wakes);
}

static _Atomic uint64_t *own_wakes(const dmce_ring_t *r)
{
    return r->role == DMCE_RING_PRODUCER ? &r->ctl->prod_wakes : &r->ctl->cons_wakes;
}

/* ---- levels --------------------------------------------------------------------- */

/*
 * Producer: free bytes. `fresh` reloads the consumer's tail even when the
 * cached one shows room (the cached value is always safe, only stale).
 */
static int64_t prod_free(dmce_ring_t *r, int fresh)
{
    uint64_t used = r->pos - r->peer;
    if (!fresh && used < r->capacity)
        return (int64_t)(r->capacity - used);
    uint64_t tail = atomic_load_explicit(&r->ctl->tail, ACQUIRE);
    used = r->pos - tail;
    /* tail may only move forward, and not past head. */
    if (tail - r->peer > r->pos - r->peer || used > r->capacity)
        return DMCE_ECORRUPT;
    r->peer = tail;
    return (int64_t)(r->capacity - used);
}

/* Consumer: readable bytes, always from a fresh head. */
static int64_t cons_avail(dmce_ring_t *r)
{
    uint64_t head = atomic_load_explicit(&r->ctl->head, ACQUIRE);
    uint64_t avail = head - r->pos;
    /* head may only move forward, and at most capacity ahead of tail. */
    if (avail > r->capacity || avail < r->peer - r->pos)
        return DMCE_ECORRUPT;
    r->peer = head;
    return (int64_t)avail;
}

/* Consumer, ring empty: reload after seeing `closed`, so that every byte
 * committed before the close is delivered first. */
static int64_t cons_avail_or_closed(dmce_ring_t *r)
{
    int64_t a = cons_avail(r);
    if (a != 0)
        return a;
    if (atomic_load_explicit(&r->ctl->closed, ACQUIRE) == 0)
        return 0;
    a = cons_avail(r);
    return a != 0 ? a : DMCE_ECLOSED;
}

int dmce_ring_readable(dmce_ring_t *r)
{
    if (r->role != DMCE_RING_CONSUMER)
        return -EBADF;
    return (int)cons_avail(r);
}

int dmce_ring_writable(dmce_ring_t *r)
{
    if (r->role != DMCE_RING_PRODUCER)
        return -EBADF;
    return (int)prod_free(r, 1);
}

/* ---- copy and span operations --------------------------------------------------- */

int dmce_ring_write_span(dmce_ring_t *r, void **ptr, size_t *len)
{
    if (r->role != DMCE_RING_PRODUCER)
        return -EBADF;
    if (atomic_load_explicit(&r->ctl->closed, RELAXED))
        return DMCE_ECLOSED;
    int64_t room = prod_free(r, 0);
    if (room < 0)
        return (int)room;
    uint32_t idx = (uint32_t)r->pos & r->mask;
    uint32_t n = (uint32_t)DMCE_MIN((uint64_t)room, (uint64_t)(r->capacity - idx));
    if ((uint64_t)room < r->capacity - idx) {
        /* The cached tail may be stale: look again before offering less. */
        room = prod_free(r, 1);
        if (room < 0)
            return (int)room;
        n = (uint32_t)DMCE_MIN((uint64_t)room, (uint64_t)(r->capacity - idx));
    }
    r->span = n;
    *ptr = r->data + idx;
    *len = n;
    return 0;
}

int dmce_ring_commit(dmce_ring_t *r, size_t n)
{
    if (r->role != DMCE_RING_PRODUCER)
        return -EBADF;
    if (n > r->span)
        return -EINVAL;
    if (n == 0)
        return 0;
    r->span -= (uint32_t)n;
    r->pos += n;
    publish_head(r);
    return 0;
}

int dmce_ring_read_span(dmce_ring_t *r, const void **ptr, size_t *len)
{
    if (r->role != DMCE_RING_CONSUMER)
        return -EBADF;
    int64_t avail = cons_avail_or_closed(r);
    if (avail < 0)
        return (int)avail;
    uint32_t idx = (uint32_t)r->pos & r->mask;
    uint32_t n = (uint32_t)DMCE_MIN((uint64_t)avail, (uint64_t)(r->capacity - idx));
    r->span = n;
    *ptr = r->data + idx;
    *len = n;
    return 0;
}

int dmce_ring_consume(dmce_ring_t *r, size_t n)
{
    if (r->role != DMCE_RING_CONSUMER)
        return -EBADF;
    if (n > r->span)
        return -EINVAL;
    if (n == 0)
        return 0;
    r->span -= (uint32_t)n;
    r->pos += n;
    publish_tail(r);
    return 0;
}

int dmce_ring_write(dmce_ring_t *r, const void *buf, size_t len)
{
    if (r->role != DMCE_RING_PRODUCER)
        return -EBADF;
    if (atomic_load_explicit(&r->ctl->closed, RELAXED))
        return DMCE_ECLOSED;
    if (len == 0)
        return 0;
    int64_t room = prod_free(r, 0);
    if (room >= 0 && (uint64_t)room < len)
        room = prod_free(r, 1);
    if (room <= 0)
        return (int)room;
    uint32_t n = (uint32_t)DMCE_MIN((uint64_t)room, (uint64_t)len);
    uint32_t idx = (uint32_t)r->pos & r->mask;
    uint32_t first = DMCE_MIN(n, r->capacity - idx);
    memcpy(r->data + idx, buf, first);
    memcpy(r->data, (const uint8_t *)buf + first, n - first);
    r->span = 0;
    r->pos += n;
    publish_head(r);
    return (int)n;
}

int dmce_ring_read(dmce_ring_t *r, void *buf, size_t len)
{
    if (r->role != DMCE_RING_CONSUMER)
        return -EBADF;
    int64_t avail = cons_avail_or_closed(r);
    if (avail <= 0 || len == 0)
        return (int)DMCE_MIN(avail, 0);
    uint32_t n = (uint32_t)DMCE_MIN((uint64_t)avail, (uint64_t)len);
    uint32_t idx = (uint32_t)r->pos & r->mask;
    uint32_t first = DMCE_MIN(n, r->capacity - idx);
    memcpy(buf, r->data + idx, first);
    memcpy((uint8_t *)buf + first, r->data, n - first);
    r->span = 0;
    r->pos += n;
    publish_tail(r);
    return (int)n;
}

/* ---- blocking waits --------------------------------------------------------------- */

/* >= min: ready (the level); 0: not yet; < 0: error (DMCE_ECLOSED, ...). */
static int64_t ready(dmce_ring_t *r, uint64_t min)
{
    if (r->role == DMCE_RING_CONSUMER) {
        int64_t a = cons_avail_or_closed(r);
        if (a < 0 || (uint64_t)a >= min)
            return a;
        /* Some bytes, not enough: closed means no more will come. */
        if (atomic_load_explicit(&r->ctl->closed, ACQUIRE)) {
            a = cons_avail(r);
            return a < 0 || (uint64_t)a >= min ? a : DMCE_ECLOSED;
        }
        return 0;
    }
    if (atomic_load_explicit(&r->ctl->closed, ACQUIRE))
        return DMCE_ECLOSED;
    int64_t f = prod_free(r, 1);
    return f < 0 || (uint64_t)f >= min ? f : 0;
}

/* Waiter no longer sleeps: drop its registration so the peer makes no syscall. */
static void unregister(_Atomic uint32_t *word)
{
    uint32_t w = atomic_load_explicit(word, RELAXED);
    while ((w & DMCE_RING_SLEEPER) && !atomic_compare_exchange_weak_explicit(
                                          word, &w, w & ~DMCE_RING_SLEEPER, RELAXED, RELAXED))
        ;
}

static int wait_level(dmce_ring_t *r, size_t min_bytes, const dmce_ring_wait_t *p, uint32_t role)
{
    static const dmce_ring_wait_t defaults = {0};
    if (r->role != role)
        return -EBADF;
    if (!p)
        p = &defaults;
    uint64_t min = min_bytes ? min_bytes : 1;
    if (min > r->capacity)
        return -EINVAL;

    if (p->how)
        *p->how = DMCE_RING_WAITED_NOT;
    int64_t n = ready(r, min);
    if (n != 0)
        return (int)n;

    uint64_t start = dmce_now_ns();
    int cut = 0;
    /* Phase 1: spin on the peer's position, no stores to shared lines. */
    if (p->spin_ns) {
        for (unsigned i = 1;; i++) {
            dmce_cpu_relax();
            n = ready(r, min);
            if (n != 0) {
                if (p->how)
                    *p->how = DMCE_RING_WAITED_SPUN;
                return (int)n;
            }
            if ((i & 63) == 0) {
                if (p->spin_gate && atomic_load_explicit(p->spin_gate, RELAXED) == 0) {
                    cut = 1;
                    break;
                }
                if (dmce_now_ns() - start >= p->spin_ns)
                    break;
            }
        }
        if (p->spin_over && !cut)
            p->spin_over(p->alive_arg);
    }
    if (p->how)
        *p->how = cut ? DMCE_RING_WAITED_CUT : DMCE_RING_WAITED_SLEPT;

    /* Phase 2: sleep on the futex in slices (eventcount, docs/ring.md). */
    _Atomic uint32_t *word =
        role == DMCE_RING_CONSUMER ? &r->ctl->data_futex : &r->ctl->space_futex;
    _Atomic uint64_t *sleeps =
        role == DMCE_RING_CONSUMER ? &r->ctl->cons_sleeps : &r->ctl->prod_sleeps;
    uint64_t max_slice_ns =
        (uint64_t)(p->slice_ms ? p->slice_ms : DMCE_RING_SLICE_MS_DEFAULT) * 1000000u;
    /* With a liveness check: 1 ms (or first_check_ms), doubling per check up to the maximum. */
    uint64_t first_ns = (uint64_t)(p->first_check_ms ? p->first_check_ms : 1u) * 1000000u;
    uint64_t slice_ns = p->alive ? DMCE_MIN(max_slice_ns, first_ns) : max_slice_ns;
    uint64_t deadline = p->timeout_ms ? start + (uint64_t)p->timeout_ms * 1000000u : 0;
    uint64_t last_alive = start;
    for (;;) {
        uint32_t w = atomic_fetch_or_explicit(word, DMCE_RING_SLEEPER, SEQ_CST) | DMCE_RING_SLEEPER;
        atomic_thread_fence(SEQ_CST);
        n = ready(r, min);
        if (n != 0)
            break;
        uint64_t now = dmce_now_ns();
        uint64_t sleep_ns = slice_ns;
        if (deadline) {
            if (now >= deadline) {
                n = -ETIMEDOUT;
                break;
            }
            sleep_ns = DMCE_MIN(sleep_ns, deadline - now);
        }
        stat_inc(sleeps);
        int fr = dmce_futex_wait(word, w, (uint32_t)((sleep_ns + 999999u) / 1000000u));
        if (fr < 0 && fr != -EAGAIN && fr != -EINTR && fr != -ETIMEDOUT) {
            n = fr; /* -EFAULT, -ENOSYS: the word is unusable */
            break;
        }
        n = ready(r, min);
        if (n != 0)
            break;
        now = dmce_now_ns();
        if (p->alive && now - last_alive >= slice_ns) {
            last_alive = now;
            slice_ns = DMCE_MIN(slice_ns * 2, max_slice_ns);
            int a = p->alive(p->alive_arg);
            if (a != 0) {
                n = a < 0 ? a : DMCE_ECLOSED;
                break;
            }
        }
        if (deadline && now >= deadline) {
            n = -ETIMEDOUT;
            break;
        }
    }
    unregister(word);
    return (int)n;
}

int dmce_ring_wait_readable(dmce_ring_t *r, size_t min_bytes, const dmce_ring_wait_t *policy)
{
    return wait_level(r, min_bytes, policy, DMCE_RING_CONSUMER);
}

int dmce_ring_wait_writable(dmce_ring_t *r, size_t min_bytes, const dmce_ring_wait_t *policy)
{
    return wait_level(r, min_bytes, policy, DMCE_RING_PRODUCER);
}

uint32_t dmce_ring_default_spin_ns(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) <= 1)
        return 0;
    return DMCE_RING_SPIN_NS_DEFAULT;
}

#define SPIN_MIN_NS 1000u    /* a budget below this is no spin */
#define SPIN_REGROW_NS 2000u /* a spin that paid off grows the budget to at least this */
#define SPIN_PROBE_FIRST 16u /* waits without a spin between probes, at first */
#define SPIN_PROBE_MAX 1024u /* ... and at most */

uint32_t dmce_spin_budget(dmce_spin_adapt_t *a, uint32_t max)
{
    if (!a->init && max) { /* no grant yet: nothing learned, start at the grant when one comes */
        a->cur = max;
        a->every = SPIN_PROBE_FIRST;
        a->init = 1;
    }
    return DMCE_MIN(a->cur, max);
}

void dmce_spin_update(dmce_spin_adapt_t *a, uint32_t max, uint32_t budget, int spun)
{
    if (!max)
        return; /* no grant: no spin, nothing to learn */
    (void)dmce_spin_budget(a, max);
    if (spun) {
        uint64_t grown = DMCE_MAX((uint64_t)budget * 2, (uint64_t)SPIN_REGROW_NS);
        a->cur = (uint32_t)DMCE_MIN(grown, (uint64_t)max);
        a->every = SPIN_PROBE_FIRST;
        a->skips = 0;
        a->probing = 0;
    } else if (budget) {
        if (a->probing) { /* a failed probe: straight back to no spin, probe less often */
            a->cur = 0;
            a->every = DMCE_MIN(a->every * 2, SPIN_PROBE_MAX);
        } else {
            a->cur = budget / 4 < SPIN_MIN_NS ? 0 : budget / 4;
        }
        a->skips = 0;
        a->probing = 0;
    } else if (a->cur == 0 && ++a->skips >= a->every) {
        a->skips = 0;
        /*
         * The next wait probes with the whole budget: a short probe fails
         * when the peer is parked too and must be woken (tens of us from
         * an idle CPU), and two waiters that each probe briefly would
         * never learn that the CPUs are free again.
         */
        a->cur = max;
        a->probing = 1;
    }
}

/* ---- sleepers, close, stats --------------------------------------------------------- */

int dmce_ring_peer_asleep(const dmce_ring_t *r)
{
    _Atomic uint32_t *word =
        r->role == DMCE_RING_PRODUCER ? &r->ctl->data_futex : &r->ctl->space_futex;
    return (atomic_load_explicit(word, RELAXED) & DMCE_RING_SLEEPER) != 0;
}

int dmce_ring_notify(dmce_ring_t *r)
{
    atomic_thread_fence(SEQ_CST);
    _Atomic uint64_t *wakes = own_wakes(r);
    return wake_sleeper(&r->ctl->data_futex, wakes) + wake_sleeper(&r->ctl->space_futex, wakes);
}

void dmce_ring_close(dmce_ring_t *r)
{
    uint32_t bit =
        r->role == DMCE_RING_PRODUCER ? DMCE_RING_CLOSED_PRODUCER : DMCE_RING_CLOSED_CONSUMER;
    atomic_fetch_or_explicit(&r->ctl->closed, bit, SEQ_CST);
    (void)dmce_ring_notify(r);
}

void dmce_ring_pair_close(dmce_ring_pair_t *p)
{
    dmce_ring_close(&p->tx);
    dmce_ring_close(&p->rx);
}

uint32_t dmce_ring_closed(const dmce_ring_t *r)
{
    return atomic_load_explicit(&r->ctl->closed, ACQUIRE);
}

void dmce_ring_stats(const dmce_ring_t *r, dmce_ring_stats_t *out)
{
    const dmce_ring_ctl_t *c = r->ctl;
    out->head = atomic_load_explicit(&c->head, RELAXED);
    out->tail = atomic_load_explicit(&c->tail, RELAXED);
    out->prod_sleeps = atomic_load_explicit(&c->prod_sleeps, RELAXED);
    out->prod_wakes = atomic_load_explicit(&c->prod_wakes, RELAXED);
    out->cons_sleeps = atomic_load_explicit(&c->cons_sleeps, RELAXED);
    out->cons_wakes = atomic_load_explicit(&c->cons_wakes, RELAXED);
    out->capacity = r->capacity;
    out->closed = atomic_load_explicit(&c->closed, RELAXED);
}
