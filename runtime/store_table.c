/*
 * store_table.c - the shared-memory key/value table (design in
 * store_table.h and docs/store.md).
 *
 * Invariants this file keeps (verify checks them all):
 *  I1  Every chunk of a stripe's arena is FREE (on exactly one free list of
 *      the right bin, never next to another FREE chunk), LIVE (reachable
 *      from exactly one bucket chain of its stripe) or RETIRED (on the
 *      stripe's limbo list, in retire-epoch order) - except while that
 *      stripe's lock is held, and except that a quarantined stripe
 *      (rebuild_epoch != 0) has empty free lists and unaccounted gaps.
 *  I2  A published record never changes except `next` (one atomic store
 *      per unlink), `expire_ms` (touch), `ref` and `state`.
 *  I3  A chunk unlinked at epoch E is rewritten only after every reader
 *      slot is idle or has entered at an epoch > E.
 *  I4  Stores that make a chunk reachable (bucket/next/limbo links) are
 *      release stores issued after the chunk is complete; stores that
 *      unlink a chunk from the limbo list precede any rewrite of it
 *      (CRASH_ORDER). So a process that dies at any instruction leaves
 *      the chains and the limbo list consistent; everything else of its
 *      stripe is rebuilt from those two by the next lock owner.
 *
 * Readers never write to the region except their own slot and the CLOCK
 * reference bit. Writers of one stripe serialize on its lock word.
 *
 * One piece of global state: g_forkgen, bumped in the child by a
 * pthread_atfork handler so that a handle copied by fork() (and with it
 * the parent's reader slot) is refused instead of silently shared.
 */
#include "store_table.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

#include "hash.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the store table format is little-endian"
#endif

typedef dmce_stab_rec_t rec_t;
typedef dmce_stab_stripe_t stripe_t;
typedef dmce_stab_slot_t slot_t;
typedef dmce_stab_hdr_t hdr_t;

#define UNIT DMCE_STAB_UNIT
#define HDR_UNITS ((uint32_t)(sizeof(rec_t) / UNIT)) /* 4: smallest chunk (a bare header) */
#define MIN_REC_UNITS 5u                             /* 64-byte header + 1..8 key bytes */
#define MIN_ARENA_UNITS 64u                          /* 1 KiB */
#define LIMBO_BATCH 32u                              /* reclaim once this many records wait */
#define GRACE_WAIT_MS 200u    /* default: a set waits this long for readers before -ENOSPC */
#define REAP_INTERVAL_MS 100u /* lazy liveness checks of reader slots, table-wide */
#define LOCK_TIMEOUT_MS 10000u
#define WAIT_SPINS 128u /* waits: pause this often, then yield, then sleep */
#define WAIT_YIELDS 32u
#define ALLOC_FIT_SCAN 16u /* first-fit steps in the exact bin */

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define LDA(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define LDS(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define STR(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
/* Stores before reach memory before stores after, for whoever repairs
 * after this process dies (compiler and CPU store order). */
#define CRASH_ORDER() __atomic_thread_fence(__ATOMIC_RELEASE)
#define BUMP(t, f) ST(&(t)->slot->f, (t)->slot->f + 1)

struct dmce_stab {
    uint8_t *base;
    hdr_t *hdr;
    slot_t *slots;
    slot_t *slot; /* ours */
    stripe_t *stripes;
    uint32_t *buckets;
    uint64_t size;
    uint64_t me; /* identity: pid | start << 32 */
    uint32_t pid;
    uint32_t slot_idx;
    uint32_t nest; /* open read sections: views held + the call in progress */
    uint32_t forkgen;
    /* Geometry, copied from the (checksummed, immutable) header at open. */
    uint32_t nslots, nstripes, sbits, nbuckets, arena_unit, arena_units;
    uint32_t max_key, max_value, max_chain, flags, seed;
    uint64_t default_ttl;
    uint64_t (*now_ms)(void *);
    void *now_arg;
    uint32_t lock_timeout_ms;
    uint32_t grace_wait_ms;
    void (*fault)(void *, int);
    void *fault_arg;
    /* Mirroring hook: byte ranges changed under the current stripe lock,
     * reported (and emptied) at unlock or when the array fills. */
    int (*persist)(void *, const dmce_stab_range_t *, uint32_t);
    void *persist_ctx;
    int persist_err; /* first error the hook returned since the last unlock */
    stripe_t snap;   /* the locked stripe as it was when the lock was taken */
    uint32_t ndirty;
    dmce_stab_range_t dirty[DMCE_STAB_PERSIST_MAX];
};

#define FAULT(t, pt)                                                                               \
    do {                                                                                           \
        if ((t)->fault)                                                                            \
            (t)->fault((t)->fault_arg, (pt));                                                      \
    } while (0)

/* ---- the persist hook: ranges a mutation changed ------------------------- */

/* Report every range collected so far and forget them. */
static void dirty_flush(dmce_stab_t *t)
{
    if (t->ndirty == 0)
        return;
    int rc = t->persist(t->persist_ctx, t->dirty, t->ndirty);
    if (rc < 0 && t->persist_err == 0)
        t->persist_err = rc;
    t->ndirty = 0;
}

static void dirty_add(dmce_stab_t *t, const void *p, uint64_t len)
{
    uint64_t off = (uint64_t)((const uint8_t *)p - t->base), end = off + len;
    /* Merge with a recent range that overlaps or touches this one. */
    for (uint32_t i = t->ndirty, k = 0; i-- > 0 && k < 8; k++) {
        dmce_stab_range_t *d = &t->dirty[i];
        if (off <= d->off + d->len && end >= d->off) {
            uint64_t lo = DMCE_MIN(off, d->off), hi = DMCE_MAX(end, d->off + d->len);
            d->off = lo;
            d->len = hi - lo;
            return;
        }
    }
    if (t->ndirty == DMCE_STAB_PERSIST_MAX)
        dirty_flush(t); /* still under the lock: the copy just gets these earlier */
    t->dirty[t->ndirty++] = (dmce_stab_range_t){off, len};
}

/* Bytes [p, p+len) of the region changed (under a stripe lock). */
static inline void dirty(dmce_stab_t *t, const void *p, uint64_t len)
{
    if (t->persist)
        dirty_add(t, p, len);
}

/* ---- fork detection ------------------------------------------------------ */

static uint32_t g_forkgen;
static pthread_once_t g_forkgen_once = PTHREAD_ONCE_INIT;

static void forkgen_child(void)
{
    __atomic_fetch_add(&g_forkgen, 1, __ATOMIC_RELAXED);
}

static void forkgen_init(void)
{
    pthread_atfork(NULL, NULL, forkgen_child);
}

static inline int handle_ok(const dmce_stab_t *t)
{
    if (!t)
        return -EINVAL;
    return t->forkgen == LD(&g_forkgen) ? 0 : -ECHILD;
}

/* ---- hashing: XXH3 (hash.h) ------------------------------------------------ */

/* The low 32 bits of XXH3-64: the table stores 32-bit hashes and checksums. */
static inline uint32_t hash32(const void *data, size_t len, uint64_t seed)
{
    return (uint32_t)dmce_xxh3(data, len, seed);
}

static inline uint32_t pad8(uint32_t n)
{
    return (n + 7u) & ~7u;
}

/*
 * Record checksum: one XXH3 pass over key, zero padding and value (they
 * are contiguous), seeded with the immutable header fields: (table seed,
 * hash) and (klen, vlen) packed into 64-bit words, each multiplied by an
 * odd constant (a bijection), XORed with the version. A change in any one
 * field changes the seed. (Checking a get's copy instead, in the caller's
 * cache, was measured no faster than this pass over the record: hashing
 * streams the value in at memory speed, and the copy then reads it from
 * the cache.)
 */
static uint32_t rec_csum(uint32_t seed, uint32_t klen, uint32_t vlen, uint32_t hash,
                         uint64_t version, const uint8_t *kv)
{
    uint64_t s = ((uint64_t)seed << 32 | hash) * 0x9E3779B97F4A7C15ull;
    s ^= ((uint64_t)klen << 32 | vlen) * 0xC2B2AE3D27D4EB4Full;
    s ^= version;
    return hash32(kv, pad8(klen) + vlen, s);
}

uint32_t dmce_stab_geom_csum(const dmce_stab_hdr_t *h)
{
    return hash32((const uint8_t *)h + 8, offsetof(hdr_t, geom_csum) - 8, 0x47454f4du);
}

/* ---- geometry helpers ----------------------------------------------------- */

static inline uint64_t rec_bytes(uint32_t klen, uint32_t vlen)
{
    return sizeof(rec_t) + pad8(klen) + (uint64_t)vlen;
}

static inline uint32_t rec_units(uint32_t klen, uint32_t vlen)
{
    return (uint32_t)((rec_bytes(klen, vlen) + UNIT - 1) / UNIT);
}

static inline rec_t *rec_at(const dmce_stab_t *t, uint32_t u)
{
    return (rec_t *)(t->base + (uint64_t)u * UNIT);
}

/* A chunk header changed. */
static inline void dirty_rec(dmce_stab_t *t, uint32_t u)
{
    dirty(t, rec_at(t, u), sizeof(rec_t));
}

static inline uint8_t *rec_key(rec_t *r)
{
    return (uint8_t *)(r + 1);
}

static inline uint8_t *rec_val(rec_t *r, uint32_t klen)
{
    return (uint8_t *)(r + 1) + pad8(klen);
}

static inline uint32_t arena_lo(const dmce_stab_t *t, uint32_t si)
{
    return t->arena_unit + si * t->arena_units;
}

static inline uint32_t arena_hi(const dmce_stab_t *t, uint32_t si)
{
    return arena_lo(t, si) + t->arena_units;
}

/* An offset read from shared memory: a chunk header of stripe si fits there. */
static inline int unit_ok(const dmce_stab_t *t, uint32_t si, uint32_t u)
{
    uint32_t lo = arena_lo(t, si);
    return u >= lo && u - lo <= t->arena_units - HDR_UNITS;
}

/* A record's sizes hold: key and value inside its chunk, chunk inside the arena. */
static inline int shape_ok(const dmce_stab_t *t, uint32_t si, uint32_t u, uint32_t units,
                           uint32_t klen, uint32_t vlen)
{
    return units >= MIN_REC_UNITS && units <= arena_hi(t, si) - u && klen >= 1 &&
           klen <= t->max_key && vlen <= t->max_value &&
           rec_bytes(klen, vlen) <= (uint64_t)units * UNIT;
}

static inline int csum_ok(const dmce_stab_t *t, rec_t *r, uint32_t klen, uint32_t vlen)
{
    return rec_csum(t->seed, klen, vlen, r->hash, r->version, rec_key(r)) == r->csum;
}

static inline uint32_t key_hash(const dmce_stab_t *t, const void *key, uint32_t klen)
{
    return hash32(key, klen, t->seed);
}

static inline uint32_t stripe_of(const dmce_stab_t *t, uint32_t h)
{
    return h & (t->nstripes - 1);
}

/* Global bucket index (stripe-major). */
static inline uint32_t bucket_of(const dmce_stab_t *t, uint32_t h)
{
    uint32_t hi = t->sbits < 32 ? h >> t->sbits : 0;
    return stripe_of(t, h) * t->nbuckets + (hi & (t->nbuckets - 1));
}

static inline uint32_t bin_of(uint32_t units)
{
    return 31u - (uint32_t)__builtin_clz(units);
}

/*
 * Step i of a wait for another process (a lock holder, a reader inside a
 * read section): spin, then yield, then sleep 10 us doubling to 1 ms.
 * Sleeping matters: with more processes than CPUs, waiters that only
 * yield keep a preempted holder off the CPU they are waiting for.
 */
static void wait_step(uint32_t i)
{
    if (i < WAIT_SPINS) {
        dmce_cpu_relax();
    } else if (i < WAIT_SPINS + WAIT_YIELDS) {
        sched_yield();
    } else {
        uint32_t k = (i - WAIT_SPINS - WAIT_YIELDS) / 4;
        struct timespec ts = {0, (long)(k >= 7 ? 1000000 : 10000 << k)};
        nanosleep(&ts, NULL);
    }
}

static uint64_t realtime_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t expire_at(const dmce_stab_t *t, uint64_t ttl, uint64_t now)
{
    if (ttl == DMCE_STAB_TTL_NEVER)
        return 0;
    if (ttl == DMCE_STAB_TTL_DEFAULT)
        ttl = t->default_ttl;
    if (ttl == 0)
        return 0;
    return now > UINT64_MAX - ttl ? UINT64_MAX : now + ttl;
}

static inline int expired(const rec_t *r, uint64_t now)
{
    uint64_t e = LD(&r->expire_ms);
    return e != 0 && e <= now;
}

/* ---- process identity and liveness ----------------------------------------- */

/* 1 if the process named by an identity word (lock or slot owner, or a
 * reaper's mark) is dead or its pid now belongs to another process. */
static int owner_dead(uint64_t id)
{
    uint32_t pid = (uint32_t)id & ~DMCE_STAB_REAPING, start = (uint32_t)(id >> 32);
    if (pid == 0)
        return 0;
    int dead;
    uint32_t st = dmce_proc_start(pid, &dead);
    if (dead)
        return 1;
    return st != 0 && start != 0 && st != start;
}

uint64_t dmce_stab_self_id(void)
{
    uint32_t pid = (uint32_t)getpid();
    int dead;
    uint32_t st = dmce_proc_start(pid, &dead);
    return (uint64_t)st << 32 | pid;
}

/* ---- epochs: read sections, grace periods, reaping ------------------------- */

static inline void rd_enter(dmce_stab_t *t)
{
    if (t->nest++ == 0) {
        uint64_t e = LDS(&t->hdr->epoch);
        STR(&t->slot->epoch, e); /* release: orders this reader's earlier reads for the
                                    reclaimer's acquire load (free on x86) */
        FENCE(); /* the slot store is visible before any chain load (pairs with retire) */
    }
}

static inline void rd_exit(dmce_stab_t *t)
{
    if (--t->nest == 0)
        STR(&t->slot->epoch, 0);
}

/* Smallest epoch a reader is inside, UINT64_MAX if none. Call after FENCE(). */
static uint64_t min_active(const dmce_stab_t *t)
{
    uint32_t hwm = LD(&t->hdr->slot_hwm);
    if (hwm > t->nslots)
        hwm = t->nslots;
    uint64_t m = UINT64_MAX;
    for (uint32_t i = 0; i < hwm; i++) {
        /* acquire: pairs with rd_exit's release, so a reader's last loads of a
         * record happen before the record's memory is reused (free on x86) */
        uint64_t e = LDA(&t->slots[i].epoch);
        if (e && e < m)
            m = e;
    }
    return m;
}

/* Reap slot i if its owner is dead. 1 if reaped. */
static int reap_slot(dmce_stab_t *t, uint32_t i)
{
    slot_t *sl = &t->slots[i];
    uint64_t o = LD(&sl->owner);
    if (o == 0 || o == t->me || !owner_dead(o))
        return 0;
    /* Mark it ours so that no two reapers (and no new owner) interleave;
     * a reaper that dies here is itself reaped through its mark. */
    uint64_t mark = (t->me & 0xffffffff00000000ull) | DMCE_STAB_REAPING | t->pid;
    if (!__atomic_compare_exchange_n(&sl->owner, &o, mark, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        return 0;
    STR(&sl->epoch, 0);
    STR(&sl->owner, 0);
    __atomic_fetch_add(&t->hdr->reaped, 1, __ATOMIC_RELAXED);
    return 1;
}

/* Check every slot whose owner is set (below_epoch != 0: only those
 * inside a read section older than it). Returns slots reaped. */
static int reap_slots(dmce_stab_t *t, uint64_t below_epoch)
{
    uint32_t hwm = LD(&t->hdr->slot_hwm);
    int n = 0;
    if (hwm > t->nslots)
        hwm = t->nslots;
    for (uint32_t i = 0; i < hwm; i++) {
        if (below_epoch) {
            uint64_t e = LD(&t->slots[i].epoch);
            if (e == 0 || e >= below_epoch)
                continue;
        }
        n += reap_slot(t, i);
    }
    return n;
}

/* Reclamation is held back by a reader behind epoch g: if we have not
 * looked lately (table-wide rate limit), check whether it is dead. */
static void maybe_reap(dmce_stab_t *t, uint64_t g)
{
    uint64_t now = dmce_now_ms(), last = LD(&t->hdr->reap_ms);
    if (now >= last && now - last < REAP_INTERVAL_MS)
        return;
    if (!__atomic_compare_exchange_n(&t->hdr->reap_ms, &last, now, 0, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED))
        return;
    reap_slots(t, g);
}

/* Move the global epoch from g to g + 1 (if nobody did). Under a stripe lock. */
static void epoch_advance(dmce_stab_t *t, uint64_t g)
{
    if (__atomic_compare_exchange_n(&t->hdr->epoch, &g, g + 1, 0, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
        dirty(t, &t->hdr->epoch, sizeof t->hdr->epoch);
}

/*
 * 1 if no reader can still hold a chunk unlinked at or before epoch e:
 * every slot is idle or entered after e. Otherwise moves the global epoch
 * on when every reader has caught up with it, and returns 0.
 */
static int grace_passed(dmce_stab_t *t, uint64_t e)
{
    FENCE();
    uint64_t g = LDS(&t->hdr->epoch);
    uint64_t m = min_active(t);
    if (m > e)
        return 1;
    if (m >= g)
        epoch_advance(t, g);
    else
        maybe_reap(t, g);
    return 0;
}

/* ---- stripe locks ---------------------------------------------------------- */

static void stripe_repair(dmce_stab_t *t, uint32_t si);

/* Lock just taken: remember the stripe, to report it at unlock if it changed. */
/* Bytes of a stripe after its lock word: the lock is CASed by waiters, so
 * it is never copied or compared as plain bytes. */
#define STRIPE_BODY(s) ((const uint8_t *)(s) + sizeof((s)->lock))
#define STRIPE_BODY_LEN (sizeof(stripe_t) - sizeof(((stripe_t *)0)->lock))

static inline void persist_begin(dmce_stab_t *t, const stripe_t *s)
{
    if (t->persist)
        memcpy((uint8_t *)&t->snap + sizeof t->snap.lock, STRIPE_BODY(s), STRIPE_BODY_LEN);
}

static void locked(dmce_stab_t *t, stripe_t *s)
{
    ST(&s->lock_seq, s->lock_seq + 1);
    persist_begin(t, s);
    FAULT(t, DMCE_STAB_FP_LOCKED);
}

/*
 * Take stripe si's lock: 0, or 1 when it was stolen from a dead owner
 * (the stripe has been repaired), or -EBUSY when a live owner kept it
 * for lock_timeout_ms without any other acquisition in between.
 */
static int stripe_lock(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    uint64_t w = 0;
    if (__atomic_compare_exchange_n(&s->lock, &w, t->me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        locked(t, s);
        return 0;
    }
    uint32_t seq = LD(&s->lock_seq);
    uint64_t since = 0;
    for (uint32_t i = 1;; i++) {
        w = LD(&s->lock);
        if (w == 0) {
            if (__atomic_compare_exchange_n(&s->lock, &w, t->me, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                locked(t, s);
                return 0;
            }
            continue;
        }
        wait_step(i);
        if (i < WAIT_SPINS || i % 16 != 0)
            continue;
        if (owner_dead(w)) {
            if (__atomic_compare_exchange_n(&s->lock, &w, t->me, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                ST(&s->lock_seq, s->lock_seq + 1);
                persist_begin(t, s);
                stripe_repair(t, si);
                FAULT(t, DMCE_STAB_FP_LOCKED);
                return 1;
            }
            continue;
        }
        uint64_t now = dmce_now_ms();
        uint32_t sq = LD(&s->lock_seq);
        if (since == 0 || sq != seq) {
            since = now;
            seq = sq;
        } else if (now - since >= t->lock_timeout_ms) {
            return -EBUSY;
        }
    }
}

/*
 * Report what this lock owner changed (with the stripe's metadata after
 * its lock word, if any of it changed besides lock_seq), then release.
 * Returns the persist hook's first error since the lock was taken, or 0.
 */
static int stripe_unlock(dmce_stab_t *t, stripe_t *s)
{
    int rc = 0;
    if (t->persist) {
        t->snap.lock_seq = s->lock_seq;
        if (t->ndirty ||
            memcmp((const uint8_t *)&t->snap + sizeof t->snap.lock, STRIPE_BODY(s),
                   STRIPE_BODY_LEN) != 0)
            dirty(t, (uint8_t *)s + sizeof s->lock, sizeof *s - sizeof s->lock);
        dirty_flush(t);
        rc = t->persist_err;
        t->persist_err = 0;
    }
    STR(&s->lock, 0);
    return rc;
}

/* ---- the allocator (per stripe, under its lock) ----------------------------- */

static void bin_insert(dmce_stab_t *t, stripe_t *s, uint32_t u)
{
    rec_t *r = rec_at(t, u);
    uint32_t b = bin_of(r->units), head = s->bins[b];
    r->state = DMCE_STAB_FREE;
    r->ref = 0;
    r->link = head;
    r->fprev = 0;
    dirty_rec(t, u);
    if (head) {
        rec_at(t, head)->fprev = u;
        dirty_rec(t, head);
    }
    s->bins[b] = u;
    s->binmap |= 1u << b;
}

static void bin_remove(dmce_stab_t *t, stripe_t *s, uint32_t u)
{
    rec_t *r = rec_at(t, u);
    uint32_t b = bin_of(r->units);
    if (r->fprev) {
        rec_at(t, r->fprev)->link = r->link;
        dirty_rec(t, r->fprev);
    } else {
        s->bins[b] = r->link;
    }
    if (r->link) {
        rec_at(t, r->link)->fprev = r->fprev;
        dirty_rec(t, r->link);
    }
    if (!s->bins[b])
        s->binmap &= ~(1u << b);
}

/*
 * Forget the stripe's free space: free lists emptied, every chunk that is
 * neither reachable nor on the limbo list becomes a gap that
 * try_rebuild turns into free chunks once readers have moved past the
 * current epoch (a gap may hold a record a reader still uses).
 */
static void quarantine(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    memset(s->bins, 0, sizeof s->bins);
    s->binmap = 0;
    s->free_units = 0;
    s->hand = arena_lo(t, si);
    FENCE();
    uint64_t e = LDS(&t->hdr->epoch);
    ST(&s->rebuild_epoch, e);
}

static void mark_range(uint64_t *bm, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++)
        bm[i / 64] |= 1ull << (i % 64);
}

static int range_clear(const uint64_t *bm, uint32_t from, uint32_t n)
{
    for (uint32_t i = from; i < from + n; i++)
        if (bm[i / 64] >> (i % 64) & 1)
            return 0;
    return 1;
}

/*
 * Rebuild the free lists of a quarantined stripe from what is always
 * consistent: chunks reachable from its chains and chunks on its limbo
 * list are kept, everything between them becomes free. Waits for no one:
 * 0 when done (or nothing pending), -EAGAIN while a reader may still hold
 * a gap, -ENOMEM, DMCE_ECORRUPT (kept chunks overlap: real corruption).
 */
static int try_rebuild(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    uint64_t re = LD(&s->rebuild_epoch);
    if (!re)
        return 0;
    if (!grace_passed(t, re))
        return -EAGAIN;
    uint32_t lo = arena_lo(t, si), hi = arena_hi(t, si), n = t->arena_units;
    uint64_t *bm = calloc((n + 63) / 64, 8);
    if (!bm)
        return -ENOMEM;
    int rc = DMCE_ECORRUPT;
    for (uint32_t b = si * t->nbuckets; b < (si + 1) * t->nbuckets; b++) {
        uint32_t k = 0;
        for (uint32_t u = LD(&t->buckets[b]); u; u = LD(&rec_at(t, u)->next)) {
            rec_t *r = rec_at(t, u);
            if (!unit_ok(t, si, u) || ++k > t->max_chain ||
                !shape_ok(t, si, u, r->units, r->klen, r->vlen) ||
                !range_clear(bm, u - lo, r->units))
                goto out;
            mark_range(bm, u - lo, r->units);
        }
    }
    uint32_t k = 0;
    for (uint32_t u = s->limbo_head; u; u = rec_at(t, u)->link) {
        rec_t *r = rec_at(t, u);
        if (!unit_ok(t, si, u) || ++k > t->max_chain + 1 || r->units < MIN_REC_UNITS ||
            r->units > hi - u || !range_clear(bm, u - lo, r->units))
            goto out;
        mark_range(bm, u - lo, r->units);
    }
    /* The free lists are rebuilt from nothing: what they hold now is not
     * trusted (bin_insert would link to a scribbled head). */
    memset(s->bins, 0, sizeof s->bins);
    s->binmap = 0;
    uint32_t prev = 0, free_units = 0, gaps = 0;
    for (uint32_t u = lo; u < hi;) {
        rec_t *r = rec_at(t, u);
        if (bm[(u - lo) / 64] >> ((u - lo) % 64) & 1) {
            if (r->prev_units != prev) {
                r->prev_units = prev;
                dirty_rec(t, u);
            }
            prev = r->units;
            u += r->units;
            continue;
        }
        uint32_t g = u;
        while (u < hi && !(bm[(u - lo) / 64] >> ((u - lo) % 64) & 1))
            u++;
        if (u - g < HDR_UNITS)
            goto out; /* kept chunks closer than a header: not a crash leftover */
        memset(r, 0, sizeof *r);
        r->units = u - g;
        r->prev_units = prev;
        prev = r->units;
        free_units += r->units;
        bin_insert(t, s, g);
        if (++gaps == 2)
            FAULT(t, DMCE_STAB_FP_REBUILD);
    }
    s->free_units = free_units;
    s->hand = lo;
    ST(&s->rebuild_epoch, 0);
    rc = 0;
out:
    free(bm);
    return rc;
}

/* Take a chunk of at least `need` units off the free lists (state 0,
 * not yet a record). 0 if none is large enough. */
static uint32_t chunk_alloc(dmce_stab_t *t, uint32_t si, uint32_t need)
{
    stripe_t *s = &t->stripes[si];
    if (LD(&s->rebuild_epoch) && try_rebuild(t, si) != 0)
        return 0;
    uint32_t b = bin_of(need), u = 0, steps = 0;
    for (uint32_t c = s->bins[b]; c && steps < ALLOC_FIT_SCAN; steps++) {
        if (!unit_ok(t, si, c) || rec_at(t, c)->state != DMCE_STAB_FREE)
            goto broken;
        if (rec_at(t, c)->units >= need) {
            u = c;
            break;
        }
        c = rec_at(t, c)->link;
    }
    if (!u) {
        uint32_t m = b + 1 < DMCE_STAB_BINS ? s->binmap & (~0u << (b + 1)) : 0;
        if (!m)
            return 0;
        u = s->bins[__builtin_ctz(m)];
        if (!unit_ok(t, si, u) || rec_at(t, u)->state != DMCE_STAB_FREE)
            goto broken;
    }
    rec_t *r = rec_at(t, u);
    uint32_t have = r->units, hi = arena_hi(t, si);
    if (have < need || have > hi - u)
        goto broken;
    bin_remove(t, s, u);
    if (have - need >= HDR_UNITS) {
        rec_t *rr = rec_at(t, u + need);
        memset(rr, 0, sizeof *rr);
        rr->units = have - need;
        rr->prev_units = need;
        FAULT(t, DMCE_STAB_FP_SPLIT);
        r->units = need;
        if (u + have < hi) {
            rec_at(t, u + have)->prev_units = have - need;
            dirty_rec(t, u + have);
        }
        bin_insert(t, s, u + need);
    }
    s->free_units -= r->units;
    r->state = 0;
    dirty_rec(t, u);
    FAULT(t, DMCE_STAB_FP_ALLOCATED);
    return u;
broken: /* free-list metadata is damaged: rebuild it from the chains */
    quarantine(t, si);
    return 0;
}

/* Return a chunk that left the limbo list to the free lists, merging it
 * with free neighbours. */
static void chunk_free(dmce_stab_t *t, uint32_t si, uint32_t u)
{
    stripe_t *s = &t->stripes[si];
    uint32_t lo = arena_lo(t, si), hi = arena_hi(t, si);
    rec_t *r = rec_at(t, u);
    uint32_t units = r->units, own = r->units, prev_units = r->prev_units, start = u;
    uint32_t nx = u + units;
    if (nx < hi && rec_at(t, nx)->state == DMCE_STAB_FREE) {
        bin_remove(t, s, nx);
        units += rec_at(t, nx)->units;
        if (s->hand == nx)
            s->hand = u;
    }
    if (prev_units && prev_units <= u - lo) {
        uint32_t pv = u - prev_units;
        rec_t *p = rec_at(t, pv);
        if (p->state == DMCE_STAB_FREE && p->units == prev_units) {
            bin_remove(t, s, pv);
            units += prev_units;
            prev_units = p->prev_units;
            start = pv;
            if (s->hand == u)
                s->hand = pv;
        }
    }
    FAULT(t, DMCE_STAB_FP_COALESCE);
    rec_t *f = rec_at(t, start);
    memset(f, 0, sizeof *f);
    f->units = units;
    f->prev_units = prev_units;
    if (start + units < hi) {
        rec_at(t, start + units)->prev_units = units;
        dirty_rec(t, start + units);
    }
    s->free_units += own; /* the neighbours were counted free already */
    bin_insert(t, s, start);
}

/* ---- retire and reclaim ----------------------------------------------------- */

/* r (at u) has just been unlinked from its chain: put it on the limbo list. */
static void retire(dmce_stab_t *t, uint32_t si, uint32_t u, rec_t *r)
{
    stripe_t *s = &t->stripes[si];
    FENCE(); /* the unlink is visible before we read the epoch (pairs with rd_enter) */
    uint64_t e = LDS(&t->hdr->epoch);
    ST(&r->state, DMCE_STAB_RETIRED);
    r->retire_epoch = e;
    r->link = 0;
    ST(&t->stripes[si].entries, s->entries - 1);
    ST(&s->bytes, s->bytes - r->klen - r->vlen);
    s->live_units -= r->units;
    dirty_rec(t, u);
    if (s->limbo_tail) {
        STR(&rec_at(t, s->limbo_tail)->link, u);
        dirty_rec(t, s->limbo_tail);
        FAULT(t, DMCE_STAB_FP_LIMBO_PUSH);
    } else {
        STR(&s->limbo_head, u);
    }
    s->limbo_tail = u;
    s->limbo_count++;
    s->limbo_units += r->units;
}

/* Free limbo records no reader can hold any more (oldest first). */
static void reclaim(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    if (!s->limbo_head)
        return;
    /* A quarantined stripe's free lists are not trusted: keep limbo whole
     * (try_rebuild keeps it too) until the rebuild is done. */
    if (LD(&s->rebuild_epoch) && try_rebuild(t, si) != 0)
        return;
    FENCE();
    uint64_t g = LDS(&t->hdr->epoch);
    uint64_t m = min_active(t);
    uint32_t u;
    while ((u = s->limbo_head) != 0) {
        rec_t *r = rec_at(t, u);
        if (r->retire_epoch >= m)
            break;
        STR(&s->limbo_head, r->link);
        CRASH_ORDER(); /* off the list before it is rewritten */
        if (!s->limbo_head)
            s->limbo_tail = 0;
        s->limbo_count--;
        s->limbo_units -= r->units;
        FAULT(t, DMCE_STAB_FP_RECLAIM);
        chunk_free(t, si, u);
    }
    if (s->limbo_head) {
        if (m >= g)
            epoch_advance(t, g);
        else
            maybe_reap(t, g);
    }
}

/* Enough waits in limbo to be worth a reclaim pass (a slot scan). */
static inline int limbo_full(const dmce_stab_t *t, const stripe_t *s)
{
    return s->limbo_count >= LIMBO_BATCH || s->limbo_units >= t->arena_units / 32;
}

/* ---- chains (writer side, under the stripe lock) ----------------------------- */

/* Unlink the record at u, known to be behind *link, and retire it. */
static void unlink_at(dmce_stab_t *t, uint32_t si, uint32_t *link, uint32_t u)
{
    rec_t *r = rec_at(t, u);
    STR(link, LD(&r->next));
    dirty(t, link, sizeof *link);
    FAULT(t, DMCE_STAB_FP_UNLINKED);
    retire(t, si, u, r);
}

/*
 * Walk chain bi of stripe si. Expired records met on the way are removed
 * (when now != 0). If key is not NULL and present (not expired),
 * *linkp is the link pointing at it and *xu its offset; else *xu = 0 and
 * *linkp the bucket head. 0 or DMCE_ECORRUPT (a link out of bounds).
 */
static int chain_find(dmce_stab_t *t, uint32_t si, uint32_t bi, const void *key, uint32_t klen,
                      uint32_t h, uint64_t now, uint32_t **linkp, uint32_t *xu, int *removed)
{
    uint32_t *link = &t->buckets[bi], u, n = 0;
    *xu = 0;
    while ((u = LD(link)) != 0) {
        if (!unit_ok(t, si, u) || ++n > t->max_chain)
            return DMCE_ECORRUPT;
        rec_t *r = rec_at(t, u);
        if (now && expired(r, now)) {
            unlink_at(t, si, link, u);
            BUMP(t, expirations);
            if (removed)
                (*removed)++;
            continue;
        }
        if (key && r->hash == h && r->klen == klen && shape_ok(t, si, u, r->units, klen, r->vlen) &&
            memcmp(rec_key(r), key, klen) == 0) {
            *linkp = link;
            *xu = u;
            return 0;
        }
        link = &r->next;
    }
    *linkp = &t->buckets[bi];
    return 0;
}

/* Find the link that points at u in chain bi. NULL if u is not there. */
static uint32_t *chain_pred(dmce_stab_t *t, uint32_t si, uint32_t bi, uint32_t u)
{
    uint32_t *link = &t->buckets[bi], c, n = 0;
    while ((c = LD(link)) != 0 && unit_ok(t, si, c) && ++n <= t->max_chain) {
        if (c == u)
            return link;
        link = &rec_at(t, c)->next;
    }
    return NULL;
}

/* ---- eviction: CLOCK over the arena, in address order ------------------------- */

/* Move the hand until `want` units went to limbo or two turns are done.
 * Expired records go first; referenced ones lose their bit and survive
 * this turn. Returns units retired. */
static uint32_t evict(dmce_stab_t *t, uint32_t si, uint32_t want, uint32_t pinned, uint64_t now)
{
    stripe_t *s = &t->stripes[si];
    uint32_t lo = arena_lo(t, si), hi = arena_hi(t, si), got = 0;
    uint64_t walked = 0;
    if (LD(&s->rebuild_epoch))
        return 0;
    while (got < want && walked < 2ull * t->arena_units + 1) {
        uint32_t u = s->hand;
        if (u < lo || u >= hi)
            u = lo;
        rec_t *r = rec_at(t, u);
        uint32_t n = r->units;
        if (n < HDR_UNITS || n > hi - u) {
            quarantine(t, si);
            return got;
        }
        s->hand = u + n >= hi ? lo : u + n;
        walked += n;
        FAULT(t, DMCE_STAB_FP_EVICT);
        if (r->state != DMCE_STAB_LIVE || u == pinned)
            continue;
        int exp = expired(r, now);
        if (!exp && LD(&r->ref)) {
            ST(&r->ref, 0);
            dirty_rec(t, u);
            continue;
        }
        uint32_t *link =
            stripe_of(t, r->hash) == si ? chain_pred(t, si, bucket_of(t, r->hash), u) : NULL;
        if (!link)
            continue; /* not reachable: only a quarantined stripe has such chunks */
        unlink_at(t, si, link, u);
        if (exp)
            BUMP(t, expirations);
        else
            BUMP(t, evictions);
        got += n;
    }
    return got;
}

/*
 * Get a chunk for a `need`-unit record: free lists, then reclaim, then
 * eviction (only while free + limbo space is short of need + slack, so a
 * slow reader does not make us evict the whole stripe), then a bounded
 * wait for readers to move on. -ENOSPC when nothing is left to evict and
 * nothing waits for readers, or after grace_wait_ms.
 */
static int alloc_record(dmce_stab_t *t, uint32_t si, uint32_t need, uint32_t pinned, uint64_t now,
                        uint32_t *out)
{
    stripe_t *s = &t->stripes[si];
    int evict_on = (t->flags & DMCE_STAB_EVICT) != 0;
    uint32_t slack = DMCE_MAX(need, t->arena_units / 64);
    uint64_t deadline = 0;
    if ((*out = chunk_alloc(t, si, need)) != 0)
        return 0;
    for (uint32_t i = 0;; i++) {
        uint32_t got = 0;
        reclaim(t, si);
        if ((*out = chunk_alloc(t, si, need)) != 0)
            return 0;
        int pending = LD(&s->rebuild_epoch) != 0;
        uint64_t room = (uint64_t)s->free_units + s->limbo_units;
        if (evict_on && !pending && (room < (uint64_t)need + slack || !s->limbo_head)) {
            got = evict(t, si, need + slack, pinned, now);
            reclaim(t, si);
            if ((*out = chunk_alloc(t, si, need)) != 0)
                return 0;
        }
        if (!got && !s->limbo_head && !pending)
            return -ENOSPC; /* nothing to evict, nothing waiting for readers: full */
        if (!evict_on && !pending && room < need)
            return -ENOSPC;
        uint64_t ms = dmce_now_ms();
        if (!deadline) {
            deadline = ms + t->grace_wait_ms;
            reap_slots(t, LDS(&t->hdr->epoch)); /* a dead reader must not make us wait */
        } else if (ms > deadline) {
            return -ENOSPC;
        }
        wait_step(i);
    }
}

/* ---- repair after a dead lock owner ---------------------------------------- */

/*
 * We stole the lock of stripe si from a dead process, which may have died
 * anywhere inside its critical section. By I4 the chains and the limbo
 * list are consistent; recount from them and quarantine the allocator
 * (everything else is rebuilt after a grace period). Idempotent: if we
 * die here too, the next owner starts over.
 */
static void stripe_repair(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    uint32_t hi = arena_hi(t, si);
    ST(&s->recoveries, s->recoveries + 1);
    /* The dead owner's last changes were never reported: report the whole
     * stripe (buckets, arena) and the epoch, so a copy is whole again. */
    dirty(t, &t->buckets[si * t->nbuckets], (uint64_t)t->nbuckets * sizeof t->buckets[0]);
    dirty(t, rec_at(t, arena_lo(t, si)), (uint64_t)t->arena_units * UNIT);
    dirty(t, &t->hdr->epoch, sizeof t->hdr->epoch);
    uint64_t entries = 0, bytes = 0, maxver = 0;
    uint32_t live = 0;
    for (uint32_t b = si * t->nbuckets; b < (si + 1) * t->nbuckets; b++) {
        uint32_t *link = &t->buckets[b], u, n = 0;
        while ((u = LD(link)) != 0) {
            rec_t *r = rec_at(t, u);
            if (!unit_ok(t, si, u) || ++n > t->max_chain || r->state != DMCE_STAB_LIVE ||
                !shape_ok(t, si, u, r->units, r->klen, r->vlen) || bucket_of(t, r->hash) != b) {
                STR(link, 0); /* damaged beyond a crash: cut the chain here */
                dirty(t, link, sizeof *link);
                BUMP(t, corrupt);
                break;
            }
            entries++;
            bytes += r->klen + r->vlen;
            live += r->units;
            if (r->version > maxver)
                maxver = r->version;
            link = &r->next;
        }
    }
    if (maxver > s->vclock)
        s->vclock = maxver;
    ST(&s->entries, entries);
    ST(&s->bytes, bytes);
    s->live_units = live;
    FAULT(t, DMCE_STAB_FP_REPAIR);
    uint32_t *lp = &s->limbo_head, u, tail = 0, cnt = 0, lu = 0;
    while ((u = *lp) != 0) {
        rec_t *r = rec_at(t, u);
        if (!unit_ok(t, si, u) || cnt > t->max_chain || r->state != DMCE_STAB_RETIRED ||
            r->units < MIN_REC_UNITS || r->units > hi - u) {
            STR(lp, 0);
            dirty(t, lp, sizeof *lp);
            break;
        }
        cnt++;
        lu += r->units;
        tail = u;
        lp = &r->link;
    }
    s->limbo_tail = tail;
    s->limbo_count = cnt;
    s->limbo_units = lu;
    quarantine(t, si);
    try_rebuild(t, si);
}

/* ---- format and attach ------------------------------------------------------ */

static uint32_t pow2_floor(uint64_t x)
{
    uint32_t p = 1;
    while ((uint64_t)p * 2 <= x && p < (1u << 31))
        p *= 2;
    return p;
}

static uint32_t pow2_ceil(uint64_t x)
{
    uint32_t p = 1;
    while (p < x && p < (1u << 31))
        p *= 2;
    return p;
}

static inline uint64_t align64(uint64_t x)
{
    return (x + 63) & ~63ull;
}

static inline int is_pow2(uint32_t x)
{
    return x && !(x & (x - 1));
}

static uint32_t log2u(uint32_t x)
{
    return 31u - (uint32_t)__builtin_clz(x);
}

/* Section offsets from the counts (the one formula format and attach share). */
static void layout(uint32_t nslots, uint32_t nstripes, uint32_t nbuckets, uint64_t *stripes_off,
                   uint64_t *buckets_off, uint64_t *arena_off)
{
    *stripes_off = align64(sizeof(hdr_t) + (uint64_t)nslots * sizeof(slot_t));
    *buckets_off = align64(*stripes_off + (uint64_t)nstripes * sizeof(stripe_t));
    *arena_off = align64(*buckets_off + (uint64_t)nstripes * nbuckets * 4);
}

static int geometry_ok(const hdr_t *h, uint64_t size)
{
    uint64_t so, bo, ao;
    if (h->size != size || size < DMCE_STAB_MIN_SIZE || size > DMCE_STAB_MAX_SIZE)
        return 0;
    if (h->geom_csum != dmce_stab_geom_csum(h))
        return 0;
    if (!h->nslots || h->nslots > DMCE_STAB_SLOTS_LIMIT || !is_pow2(h->nstripes) ||
        h->nstripes > DMCE_STAB_STRIPES_LIMIT || !is_pow2(h->nbuckets) ||
        (uint64_t)h->nbuckets << log2u(h->nstripes) > (1ull << 32))
        return 0;
    if (!h->max_key || h->max_key > DMCE_STAB_KEY_LIMIT || h->max_value > DMCE_STAB_VALUE_LIMIT)
        return 0;
    layout(h->nslots, h->nstripes, h->nbuckets, &so, &bo, &ao);
    if (h->slots_off != sizeof(hdr_t) || h->stripes_off != so || h->buckets_off != bo ||
        h->arena_off != ao)
        return 0;
    if (h->arena_units < MIN_ARENA_UNITS || h->arena_units % 4 ||
        ao + (uint64_t)h->nstripes * h->arena_units * UNIT > size)
        return 0;
    if (rec_bytes(h->max_key, h->max_value) * 8 > (uint64_t)h->arena_units * UNIT)
        return 0;
    return h->max_chain == h->arena_units / MIN_REC_UNITS + 1;
}

int dmce_stab_attach(const void *base, uint64_t size)
{
    if (!base || ((uintptr_t)base & 15))
        return -EINVAL;
    if (size < sizeof(hdr_t))
        return DMCE_ECORRUPT;
    const hdr_t *h = base;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != DMCE_STAB_MAGIC)
        return DMCE_EBADMAGIC;
    if (h->version != DMCE_STAB_VERSION)
        return DMCE_EVERSION;
    if (h->layout != DMCE_STAB_LAYOUT_WORD)
        return DMCE_ELAYOUT;
    return geometry_ok(h, size) ? 0 : DMCE_ECORRUPT;
}

void dmce_stab_params_get(const void *base, dmce_stab_params_t *out)
{
    const hdr_t *h = base;
    memset(out, 0, sizeof *out);
    out->max_key = h->max_key;
    out->max_value = h->max_value;
    out->nslots = h->nslots;
    out->nstripes = h->nstripes;
    out->nbuckets = h->nbuckets;
    out->flags = h->flags;
    out->default_ttl_ms = h->default_ttl_ms;
}

int dmce_stab_format(void *base, uint64_t size, const dmce_stab_params_t *p)
{
    dmce_stab_params_t q;
    if (p)
        q = *p;
    else
        memset(&q, 0, sizeof q);
    if (!base || ((uintptr_t)base & 15) || size < DMCE_STAB_MIN_SIZE || size > DMCE_STAB_MAX_SIZE ||
        (q.flags & ~DMCE_STAB_EVICT))
        return -EINVAL;
    uint32_t max_key = q.max_key ? q.max_key : DMCE_STAB_KEY_DEFAULT;
    uint32_t nslots = q.nslots ? q.nslots : DMCE_STAB_SLOTS_DEFAULT;
    uint32_t want_val = q.max_value ? q.max_value : DMCE_STAB_VALUE_DEFAULT;
    if (max_key > DMCE_STAB_KEY_LIMIT || nslots > DMCE_STAB_SLOTS_LIMIT ||
        want_val > DMCE_STAB_VALUE_LIMIT)
        return -EINVAL;
    if (q.nstripes && (!is_pow2(q.nstripes) || q.nstripes > DMCE_STAB_STRIPES_LIMIT))
        return -EINVAL;
    if (q.nbuckets && !is_pow2(q.nbuckets))
        return -EINVAL;
    uint64_t fixed = align64(sizeof(hdr_t) + (uint64_t)nslots * sizeof(slot_t));
    if (fixed >= size)
        return -EINVAL;
    uint64_t avail = size - fixed;
    uint32_t nstripes = q.nstripes;
    if (!nstripes) {
        uint64_t target = DMCE_MAX(1ull << 20, 16 * rec_bytes(max_key, want_val));
        nstripes = pow2_floor(avail / target);
        if (nstripes > 1024)
            nstripes = 1024;
    }
    uint32_t sbits = log2u(nstripes);
    uint32_t nbuckets = q.nbuckets;
    if (!nbuckets)
        nbuckets = pow2_ceil(DMCE_MAX(1, avail / nstripes / 128));
    if ((uint64_t)nbuckets << sbits > (1ull << 32)) {
        if (q.nbuckets)
            return -EINVAL;
        nbuckets = (uint32_t)((1ull << 32) >> sbits);
    }
    uint64_t so, bo, ao;
    layout(nslots, nstripes, nbuckets, &so, &bo, &ao);
    if (ao >= size)
        return -EINVAL;
    uint64_t au = (size - ao) / nstripes / UNIT & ~3ull;
    if (au < MIN_ARENA_UNITS || au > UINT32_MAX)
        return -EINVAL;
    uint64_t rec_max = au * UNIT / 8; /* an arena holds at least 8 largest records */
    uint32_t max_value = want_val;
    if (rec_bytes(max_key, max_value) > rec_max) {
        if (q.max_value || rec_max < rec_bytes(max_key, 0))
            return -EINVAL;
        max_value = (uint32_t)((rec_max - rec_bytes(max_key, 0)) & ~15ull);
    }

    hdr_t *h = base;
    __atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE); /* no attach while we work */
    memset((uint8_t *)base + 8, 0, ao - 8);
    h->version = DMCE_STAB_VERSION;
    h->layout = DMCE_STAB_LAYOUT_WORD;
    h->size = size;
    h->default_ttl_ms = q.default_ttl_ms;
    h->flags = q.flags;
    int rc = dmce_random_bytes(&h->seed, sizeof h->seed);
    if (rc == 0)
        rc = dmce_random_bytes(&h->table_id, sizeof h->table_id);
    if (rc < 0)
        return rc;
    if (h->table_id == 0)
        h->table_id = 1;
    h->max_key = max_key;
    h->max_value = max_value;
    h->nslots = nslots;
    h->nstripes = nstripes;
    h->nbuckets = nbuckets;
    h->slots_off = sizeof(hdr_t);
    h->stripes_off = (uint32_t)so;
    h->buckets_off = (uint32_t)bo;
    h->arena_off = ao;
    h->arena_units = (uint32_t)au;
    h->max_chain = (uint32_t)au / MIN_REC_UNITS + 1;
    h->geom_csum = dmce_stab_geom_csum(h);
    h->epoch = 1;

    /* One free chunk per arena. A throwaway handle gives the helpers their geometry. */
    dmce_stab_t tt;
    memset(&tt, 0, sizeof tt);
    tt.base = base;
    tt.arena_unit = (uint32_t)(ao / UNIT);
    tt.arena_units = (uint32_t)au;
    stripe_t *stripes = (stripe_t *)((uint8_t *)base + so);
    for (uint32_t si = 0; si < nstripes; si++) {
        uint32_t lo = arena_lo(&tt, si);
        rec_t *r = rec_at(&tt, lo);
        memset(r, 0, sizeof *r);
        r->units = (uint32_t)au;
        bin_insert(&tt, &stripes[si], lo);
        stripes[si].free_units = (uint32_t)au;
        stripes[si].hand = lo;
    }
    __atomic_store_n(&h->magic, DMCE_STAB_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

/* ---- handles ---------------------------------------------------------------- */

int dmce_stab_open(void *base, uint64_t size, const dmce_stab_opts_t *opts, dmce_stab_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = dmce_stab_attach(base, size);
    if (rc < 0)
        return rc;
    pthread_once(&g_forkgen_once, forkgen_init);
    dmce_stab_t *t = calloc(1, sizeof *t); /* owned by the caller until dmce_stab_close */
    if (!t)
        return -ENOMEM;
    hdr_t *h = base;
    t->base = base;
    t->hdr = h;
    t->size = size;
    t->slots = (slot_t *)(t->base + h->slots_off);
    t->stripes = (stripe_t *)(t->base + h->stripes_off);
    t->buckets = (uint32_t *)(t->base + h->buckets_off);
    t->nslots = h->nslots;
    t->nstripes = h->nstripes;
    t->sbits = log2u(h->nstripes);
    t->nbuckets = h->nbuckets;
    t->arena_unit = (uint32_t)(h->arena_off / UNIT);
    t->arena_units = h->arena_units;
    t->max_key = h->max_key;
    t->max_value = h->max_value;
    t->max_chain = h->max_chain;
    t->flags = h->flags;
    t->seed = h->seed;
    t->default_ttl = h->default_ttl_ms;
    t->now_ms = opts && opts->now_ms ? opts->now_ms : realtime_ms;
    t->now_arg = opts ? opts->now_arg : NULL;
    t->lock_timeout_ms = opts && opts->lock_timeout_ms ? opts->lock_timeout_ms : LOCK_TIMEOUT_MS;
    t->grace_wait_ms = opts && opts->grace_wait_ms ? opts->grace_wait_ms : GRACE_WAIT_MS;
    t->fault = opts ? opts->fault : NULL;
    t->fault_arg = opts ? opts->fault_arg : NULL;
    t->persist = opts ? opts->persist : NULL;
    t->persist_ctx = opts ? opts->persist_ctx : NULL;
    t->forkgen = LD(&g_forkgen);
    t->me = dmce_stab_self_id();
    t->pid = (uint32_t)t->me;

    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < t->nslots; i++) {
            uint64_t o = 0;
            if (LD(&t->slots[i].owner) != 0 ||
                !__atomic_compare_exchange_n(&t->slots[i].owner, &o, t->me, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_RELAXED))
                continue;
            t->slot_idx = i;
            t->slot = &t->slots[i];
            ST(&t->slot->epoch, 0);
            uint32_t hwm = LD(&h->slot_hwm);
            while (hwm < i + 1 && !__atomic_compare_exchange_n(&h->slot_hwm, &hwm, i + 1, 0,
                                                               __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
                ;
            *out = t;
            return 0;
        }
        if (pass == 0 && reap_slots(t, 0) == 0)
            break;
    }
    free(t);
    return -EUSERS;
}

void dmce_stab_close(dmce_stab_t *t)
{
    if (!t)
        return;
    if (handle_ok(t) == 0) {
        STR(&t->slot->epoch, 0);
        STR(&t->slot->owner, 0);
    }
    free(t);
}

void dmce_stab_abandon(dmce_stab_t *t)
{
    free(t);
}

uint64_t dmce_stab_table_id(const void *base)
{
    return base ? ((const hdr_t *)base)->table_id : 0;
}

/* ---- argument checks ---------------------------------------------------------- */

static int key_ok(const dmce_stab_t *t, const void *key, uint32_t klen)
{
    int rc = handle_ok(t);
    if (rc < 0)
        return rc;
    if (!key || klen == 0)
        return -EINVAL;
    return klen > t->max_key ? -E2BIG : 0;
}

/* ---- writers ------------------------------------------------------------------ */

int dmce_stab_set(dmce_stab_t *t, const void *key, uint32_t klen, const void *val, uint32_t vlen,
                  uint64_t ttl_ms, uint64_t cas_version, uint32_t flags, uint64_t *version_out)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    if (vlen > t->max_value)
        return -EMSGSIZE;
    if ((vlen && !val) || (flags & ~(DMCE_STAB_SET_NX | DMCE_STAB_SET_XX)) ||
        flags == (DMCE_STAB_SET_NX | DMCE_STAB_SET_XX) ||
        ((flags & DMCE_STAB_SET_NX) && cas_version))
        return -EINVAL;
    uint32_t h = key_hash(t, key, klen), si = stripe_of(t, h), bi = bucket_of(t, h);
    stripe_t *s = &t->stripes[si];
    uint64_t now = t->now_ms(t->now_arg);
    uint64_t expire = expire_at(t, ttl_ms, now);
    rc = stripe_lock(t, si);
    if (rc < 0)
        return rc;
    uint32_t *link, xu, nu;
    int prc;
    rc = chain_find(t, si, bi, key, klen, h, now, &link, &xu, NULL);
    if (rc < 0)
        goto out;
    if (cas_version && !xu)
        rc = -ENOENT;
    else if (cas_version && rec_at(t, xu)->version != cas_version)
        rc = -ESTALE;
    else if ((flags & DMCE_STAB_SET_NX) && xu)
        rc = -EEXIST;
    else if ((flags & DMCE_STAB_SET_XX) && !xu)
        rc = -ENOENT;
    if (rc < 0) {
        BUMP(t, cas_failures);
        goto out;
    }
    rc = alloc_record(t, si, rec_units(klen, vlen), xu, now, &nu);
    if (rc < 0)
        goto out;
    if (xu && !(link = chain_pred(t, si, bi, xu))) { /* eviction may have changed the chain */
        chunk_free(t, si, nu);                       /* never published: no reader has seen it */
        rc = DMCE_ECORRUPT;
        goto out;
    }

    uint64_t ver = s->vclock + 1;
    s->vclock = ver;
    rec_t *n = rec_at(t, nu);
    n->ref = 0;
    n->klen = (uint16_t)klen;
    n->vlen = vlen;
    n->hash = h;
    n->version = ver;
    ST(&n->expire_ms, expire);
    n->link = 0;
    n->retire_epoch = 0;
    n->fprev = 0;
    memcpy(rec_key(n), key, klen);
    memset(rec_key(n) + klen, 0, pad8(klen) - klen); /* the checksum covers the padding */
    if (vlen)
        memcpy(rec_val(n, klen), val, vlen);
    n->csum = rec_csum(t->seed, klen, vlen, h, ver, rec_key(n));
    ST(&n->state, DMCE_STAB_LIVE);
    FAULT(t, DMCE_STAB_FP_WRITTEN);

    ST(&s->entries, s->entries + 1);
    ST(&s->bytes, s->bytes + klen + vlen);
    s->live_units += n->units;
    dirty(t, n, rec_bytes(klen, vlen));
    if (xu) {
        rec_t *x = rec_at(t, xu);
        ST(&n->next, LD(&x->next));
        STR(link, nu); /* publish: the old record leaves the chain in the same store */
        dirty(t, link, sizeof *link);
        FAULT(t, DMCE_STAB_FP_PUBLISHED);
        retire(t, si, xu, x);
    } else {
        ST(&n->next, LD(&t->buckets[bi]));
        STR(&t->buckets[bi], nu);
        dirty(t, &t->buckets[bi], sizeof t->buckets[bi]);
        FAULT(t, DMCE_STAB_FP_PUBLISHED);
    }
    if (limbo_full(t, s))
        reclaim(t, si);
    BUMP(t, sets);
    if (version_out)
        *version_out = ver;
out:
    prc = stripe_unlock(t, s);
    return rc < 0 ? rc : prc;
}

int dmce_stab_del(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t cas_version)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    uint32_t h = key_hash(t, key, klen), si = stripe_of(t, h), bi = bucket_of(t, h);
    stripe_t *s = &t->stripes[si];
    uint64_t now = t->now_ms(t->now_arg);
    rc = stripe_lock(t, si);
    if (rc < 0)
        return rc;
    uint32_t *link, xu;
    int prc;
    rc = chain_find(t, si, bi, key, klen, h, now, &link, &xu, NULL);
    if (rc < 0)
        goto out;
    if (!xu) {
        rc = -ENOENT;
    } else if (cas_version && rec_at(t, xu)->version != cas_version) {
        rc = -ESTALE;
        BUMP(t, cas_failures);
    } else {
        unlink_at(t, si, link, xu);
        if (limbo_full(t, s))
            reclaim(t, si);
        BUMP(t, dels);
    }
out:
    prc = stripe_unlock(t, s);
    return rc < 0 ? rc : prc;
}

int dmce_stab_touch(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t ttl_ms)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    uint32_t h = key_hash(t, key, klen), si = stripe_of(t, h), bi = bucket_of(t, h);
    uint64_t now = t->now_ms(t->now_arg);
    rc = stripe_lock(t, si);
    if (rc < 0)
        return rc;
    uint32_t *link, xu;
    rc = chain_find(t, si, bi, key, klen, h, now, &link, &xu, NULL);
    if (rc == 0 && !xu)
        rc = -ENOENT;
    if (rc == 0) {
        STR(&rec_at(t, xu)->expire_ms, expire_at(t, ttl_ms, now));
        dirty_rec(t, xu);
        BUMP(t, touches);
    }
    int prc = stripe_unlock(t, &t->stripes[si]);
    return rc < 0 ? rc : prc;
}

int dmce_stab_sweep(dmce_stab_t *t)
{
    int rc = handle_ok(t), removed = 0;
    if (rc < 0)
        return rc;
    uint64_t now = t->now_ms(t->now_arg);
    reap_slots(t, 0);
    for (uint32_t si = 0; si < t->nstripes; si++) {
        rc = stripe_lock(t, si);
        if (rc < 0)
            return rc;
        uint32_t *link, xu;
        for (uint32_t b = si * t->nbuckets; b < (si + 1) * t->nbuckets; b++)
            chain_find(t, si, b, NULL, 0, 0, now, &link, &xu, &removed);
        reclaim(t, si);
        try_rebuild(t, si);
        int prc = stripe_unlock(t, &t->stripes[si]);
        if (prc < 0)
            return prc;
    }
    return removed;
}

/* ---- readers ------------------------------------------------------------------- */

/*
 * Find key's current record; the caller is inside a read section. 0 with
 * *up, *vlenp set; -ENOENT (absent or expired); DMCE_ECORRUPT (a link out
 * of bounds, or the record, or a same-hash record, fails its checksum).
 * Every offset and size read from the region is checked before use.
 */
static int lookup(dmce_stab_t *t, const void *key, uint32_t klen, uint32_t *up, uint32_t *vlenp)
{
    uint32_t h = key_hash(t, key, klen), si = stripe_of(t, h);
    uint32_t u = LDA(&t->buckets[bucket_of(t, h)]), n = 0;
    int bad = 0;
    while (u) {
        if (!unit_ok(t, si, u) || ++n > t->max_chain)
            return DMCE_ECORRUPT;
        rec_t *r = rec_at(t, u);
        if (r->hash == h && r->klen == klen) {
            uint32_t vlen = r->vlen;
            if (!shape_ok(t, si, u, r->units, klen, vlen)) {
                bad = 1;
            } else if (memcmp(rec_key(r), key, klen) == 0) {
                uint64_t e = LD(&r->expire_ms);
                if (e && e <= t->now_ms(t->now_arg))
                    return -ENOENT;
                if (!csum_ok(t, r, klen, vlen))
                    return DMCE_ECORRUPT;
                if (!LD(&r->ref))
                    ST(&r->ref, 1);
                *up = u;
                *vlenp = vlen;
                return 0;
            } else if (!csum_ok(t, r, klen, vlen)) {
                bad = 1; /* its key bytes may be ours, damaged */
            }
        }
        u = LDA(&r->next);
    }
    return bad ? DMCE_ECORRUPT : -ENOENT;
}

static void count_lookup(dmce_stab_t *t, int rc)
{
    if (rc == 0 || rc == -ENOBUFS)
        BUMP(t, hits);
    else if (rc == -ENOENT)
        BUMP(t, misses);
    else if (rc == DMCE_ECORRUPT)
        BUMP(t, corrupt);
}

int dmce_stab_get(dmce_stab_t *t, const void *key, uint32_t klen, void *buf, uint32_t cap,
                  uint32_t *vlen, uint64_t *version)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    if (!vlen || (cap && !buf))
        return -EINVAL;
    uint32_t u, len;
    rd_enter(t);
    rc = lookup(t, key, klen, &u, &len);
    if (rc == 0) {
        rec_t *r = rec_at(t, u);
        *vlen = len;
        if (version)
            *version = r->version;
        if (len > cap)
            rc = -ENOBUFS;
        else if (len)
            memcpy(buf, rec_val(r, klen), len);
    }
    rd_exit(t);
    count_lookup(t, rc);
    return rc;
}

int dmce_stab_view(dmce_stab_t *t, const void *key, uint32_t klen, dmce_stab_view_t *v)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    if (!v)
        return -EINVAL;
    memset(v, 0, sizeof *v);
    uint32_t u, len;
    rd_enter(t);
    rc = lookup(t, key, klen, &u, &len);
    if (rc == 0) {
        rec_t *r = rec_at(t, u);
        v->value = rec_val(r, klen);
        v->len = len;
        v->rec = u;
        v->version = r->version;
        v->expire_ms = LD(&r->expire_ms);
    } else {
        rd_exit(t);
    }
    count_lookup(t, rc);
    return rc; /* on success the read section stays open: that is the lease */
}

int dmce_stab_view_check(dmce_stab_t *t, const dmce_stab_view_t *v)
{
    int rc = handle_ok(t);
    if (rc < 0)
        return rc;
    if (!v || !v->rec)
        return -EINVAL;
    rec_t *r = rec_at(t, v->rec); /* the lease keeps it from being reused */
    if (LD(&r->state) != DMCE_STAB_LIVE)
        return -ESTALE;
    uint64_t e = LD(&r->expire_ms);
    if (e && e <= t->now_ms(t->now_arg))
        return -ESTALE;
    return 0;
}

void dmce_stab_view_release(dmce_stab_t *t, dmce_stab_view_t *v)
{
    if (!t || !v || !v->rec || handle_ok(t) < 0)
        return;
    v->rec = 0;
    v->value = NULL;
    rd_exit(t);
}

int dmce_stab_debug_locate(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t *rec_off,
                           uint64_t *value_off)
{
    int rc = key_ok(t, key, klen);
    if (rc < 0)
        return rc;
    uint32_t h = key_hash(t, key, klen), si = stripe_of(t, h), n = 0;
    rd_enter(t);
    rc = -ENOENT;
    for (uint32_t u = LDA(&t->buckets[bucket_of(t, h)]);
         u && unit_ok(t, si, u) && ++n <= t->max_chain; u = LDA(&rec_at(t, u)->next)) {
        rec_t *r = rec_at(t, u);
        if (r->klen == klen && memcmp(rec_key(r), key, klen) == 0) {
            *rec_off = (uint64_t)u * UNIT;
            *value_off = *rec_off + sizeof(rec_t) + pad8(klen);
            rc = 0;
            break;
        }
    }
    rd_exit(t);
    return rc;
}

/* ---- stats, recovery, verification --------------------------------------------- */

int dmce_stab_stats(dmce_stab_t *t, dmce_stab_stats_t *out)
{
    int rc = handle_ok(t);
    if (rc < 0)
        return rc;
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    for (uint32_t si = 0; si < t->nstripes; si++) {
        stripe_t *s = &t->stripes[si];
        out->entries += LD(&s->entries);
        out->bytes += LD(&s->bytes);
        out->mem_live += (uint64_t)LD(&s->live_units) * UNIT;
        out->mem_free += (uint64_t)LD(&s->free_units) * UNIT;
        out->mem_limbo += (uint64_t)LD(&s->limbo_units) * UNIT;
        out->recoveries += LD(&s->recoveries);
        out->locks_held += LD(&s->lock) != 0;
        out->rebuilds_pending += LD(&s->rebuild_epoch) != 0;
    }
    uint32_t hwm = DMCE_MIN(LD(&t->hdr->slot_hwm), t->nslots);
    for (uint32_t i = 0; i < hwm; i++) {
        slot_t *sl = &t->slots[i];
        out->hits += LD(&sl->hits);
        out->misses += LD(&sl->misses);
        out->sets += LD(&sl->sets);
        out->dels += LD(&sl->dels);
        out->touches += LD(&sl->touches);
        out->evictions += LD(&sl->evictions);
        out->expirations += LD(&sl->expirations);
        out->cas_failures += LD(&sl->cas_failures);
        out->corrupt += LD(&sl->corrupt);
        out->handles += LD(&sl->owner) != 0;
    }
    out->mem_total = (uint64_t)t->nstripes * t->arena_units * UNIT;
    out->reaped = LD(&t->hdr->reaped);
    out->epoch = LD(&t->hdr->epoch);
    out->stripes = t->nstripes;
    return 0;
}

int dmce_stab_recover(dmce_stab_t *t)
{
    int rc = handle_ok(t);
    if (rc < 0)
        return rc;
    int n = reap_slots(t, 0);
    for (uint32_t si = 0; si < t->nstripes; si++) {
        stripe_t *s = &t->stripes[si];
        uint64_t w = LD(&s->lock);
        if (w && w != t->me && owner_dead(w) &&
            __atomic_compare_exchange_n(&s->lock, &w, t->me, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            ST(&s->lock_seq, s->lock_seq + 1);
            persist_begin(t, s);
            stripe_repair(t, si);
            if ((rc = stripe_unlock(t, s)) < 0)
                return rc;
            n++;
        }
        if (LD(&s->rebuild_epoch)) {
            rc = stripe_lock(t, si);
            if (rc < 0)
                return rc;
            try_rebuild(t, si);
            if ((rc = stripe_unlock(t, s)) < 0)
                return rc;
        }
    }
    return n;
}

/* Check one stripe; its lock is held. */
static int verify_stripe(dmce_stab_t *t, uint32_t si)
{
    stripe_t *s = &t->stripes[si];
    uint32_t lo = arena_lo(t, si), hi = arena_hi(t, si);
    int quarantined = LD(&s->rebuild_epoch) && try_rebuild(t, si) != 0;
    uint64_t nlive = 0, live_units = 0, nret = 0, ret_units = 0, nfree = 0, free_units = 0;
    if (!quarantined) { /* I1: the arena is an exact sequence of chunks */
        uint32_t prev = 0, last_state = 0;
        for (uint32_t u = lo; u < hi;) {
            rec_t *r = rec_at(t, u);
            uint32_t n = r->units;
            if (n < HDR_UNITS || n > hi - u || r->prev_units != prev)
                return DMCE_ECORRUPT;
            if (r->state == DMCE_STAB_FREE) {
                if (last_state == DMCE_STAB_FREE)
                    return DMCE_ECORRUPT; /* not coalesced */
                nfree++;
                free_units += n;
            } else if (r->state == DMCE_STAB_LIVE) {
                nlive++;
                live_units += n;
            } else if (r->state == DMCE_STAB_RETIRED) {
                nret++;
                ret_units += n;
            } else {
                return DMCE_ECORRUPT;
            }
            last_state = r->state;
            prev = n;
            u += n;
        }
        uint64_t listed = 0, listed_units = 0;
        for (uint32_t b = 0; b < DMCE_STAB_BINS; b++) {
            if (!!(s->binmap >> b & 1) != !!s->bins[b])
                return DMCE_ECORRUPT;
            uint32_t pv = 0;
            for (uint32_t c = s->bins[b]; c; c = rec_at(t, c)->link) {
                rec_t *r = rec_at(t, c);
                if (!unit_ok(t, si, c) || r->state != DMCE_STAB_FREE || bin_of(r->units) != b ||
                    r->fprev != pv || ++listed > nfree)
                    return DMCE_ECORRUPT;
                listed_units += r->units;
                pv = c;
            }
        }
        if (listed != nfree || listed_units != free_units || free_units != s->free_units)
            return DMCE_ECORRUPT;
    }
    /* Limbo: retired records in epoch order. */
    uint64_t cnt = 0, lu = 0, last_epoch = 0, g = LD(&t->hdr->epoch);
    uint32_t tail = 0;
    for (uint32_t u = s->limbo_head; u; u = rec_at(t, u)->link) {
        rec_t *r = rec_at(t, u);
        if (!unit_ok(t, si, u) || r->state != DMCE_STAB_RETIRED || r->retire_epoch < last_epoch ||
            r->retire_epoch > g || ++cnt > t->max_chain)
            return DMCE_ECORRUPT;
        last_epoch = r->retire_epoch;
        lu += r->units;
        tail = u;
    }
    if (cnt != s->limbo_count || lu != s->limbo_units || tail != s->limbo_tail)
        return DMCE_ECORRUPT;
    if (!quarantined && (cnt != nret || lu != ret_units))
        return DMCE_ECORRUPT;
    /* Chains: live, in the right bucket, intact, counted, keys distinct. */
    uint64_t entries = 0, bytes = 0, units = 0;
    for (uint32_t b = si * t->nbuckets; b < (si + 1) * t->nbuckets; b++) {
        uint32_t n = 0;
        for (uint32_t u = LD(&t->buckets[b]); u; u = LD(&rec_at(t, u)->next)) {
            rec_t *r = rec_at(t, u);
            if (!unit_ok(t, si, u) || ++n > t->max_chain || r->state != DMCE_STAB_LIVE ||
                !shape_ok(t, si, u, r->units, r->klen, r->vlen) || bucket_of(t, r->hash) != b ||
                r->version == 0 || r->version > s->vclock || !csum_ok(t, r, r->klen, r->vlen) ||
                key_hash(t, rec_key(r), r->klen) != r->hash)
                return DMCE_ECORRUPT;
            for (uint32_t o = LD(&r->next), k = 0; o && unit_ok(t, si, o) && k < n + t->max_chain;
                 o = LD(&rec_at(t, o)->next), k++) {
                rec_t *q = rec_at(t, o);
                if (q->klen == r->klen && memcmp(rec_key(q), rec_key(r), r->klen) == 0)
                    return DMCE_ECORRUPT;
            }
            entries++;
            bytes += r->klen + r->vlen;
            units += r->units;
        }
    }
    if (entries != s->entries || bytes != s->bytes || units != s->live_units)
        return DMCE_ECORRUPT;
    if (!quarantined && (entries != nlive || units != live_units))
        return DMCE_ECORRUPT;
    return 0;
}

int dmce_stab_verify(dmce_stab_t *t)
{
    int rc = handle_ok(t);
    if (rc < 0)
        return rc;
    if (dmce_stab_attach(t->base, t->size) != 0)
        return DMCE_ECORRUPT;
    uint64_t g = LD(&t->hdr->epoch);
    uint32_t hwm = LD(&t->hdr->slot_hwm);
    if (hwm > t->nslots)
        return DMCE_ECORRUPT;
    for (uint32_t i = 0; i < t->nslots; i++) {
        uint64_t e = LD(&t->slots[i].epoch);
        if (e > g || (i >= hwm && LD(&t->slots[i].owner)))
            return DMCE_ECORRUPT;
    }
    for (uint32_t si = 0; si < t->nstripes; si++) {
        rc = stripe_lock(t, si);
        if (rc < 0)
            return rc;
        rc = verify_stripe(t, si);
        int prc = stripe_unlock(t, &t->stripes[si]); /* verify may finish a rebuild */
        if (rc < 0)
            return rc;
        if (prc < 0)
            return prc;
    }
    return 0;
}
