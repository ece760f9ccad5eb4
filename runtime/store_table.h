/*
 * store_table.h - the shared-memory key/value table under the session store.
 *
 * Many processes (prefork web workers, 32-bit and 64-bit alike) map one
 * region and call these functions on it at the same time. Everything the
 * table knows lives inside the region: offsets, never pointers, fixed-width
 * little-endian fields, so the region can be a POSIX shm object mapped at
 * different addresses, copied to a mirror or saved to a file.
 * docs/store.md gives the full design; in brief:
 *
 *   [ hdr | reader slots | stripes | buckets | arena 0 | arena 1 | ... ]
 *
 * - A key hashes (XXH3, low 32 bits, per-table seed) to one stripe and one bucket of
 *   that stripe. A stripe owns its buckets, its arena (the bytes its
 *   records live in), a free-space allocator, a limbo list and a CLOCK
 *   hand, and is guarded by one writer lock word. A writer touches one
 *   stripe only; writers of different stripes never meet.
 * - Records are immutable once published: a set writes a new record out
 *   of place and publishes it with one atomic store into its bucket chain;
 *   a delete unlinks with one atomic store. Readers take no lock: they
 *   walk the chain with acquire loads and bound-check every offset.
 * - Unlinked records go to the stripe's limbo list and are reused only
 *   after every reader that might hold them has left (epoch-based
 *   reclamation, one epoch word per reader slot, LMDB style). So a
 *   zero-copy view (a lease) stays valid until it is released, even if
 *   the key is deleted or overwritten meanwhile.
 * - Writer locks record their owner (pid and process start time); a
 *   waiter that finds the owner dead steals the lock and repairs the
 *   stripe from what is always consistent (the chains and the limbo
 *   list), quarantining everything else until a grace period has passed.
 *   Reader slots of dead processes are reaped the same way.
 *
 * Handles: a dmce_stab_t is process-local and owns one reader slot. It
 * is not thread-safe: give each thread its own handle. A handle does not
 * survive fork(): the child gets -ECHILD from every call and must open
 * its own (closing the inherited one in the child is allowed and does
 * not touch the parent's slot).
 *
 * Errors are negative errno values or DMCE_E* codes (dmce/error.h); each
 * function lists its own. Nothing here ever prints.
 */
#ifndef DMCE_RUNTIME_STORE_TABLE_H
#define DMCE_RUNTIME_STORE_TABLE_H

#include <stddef.h>
#include <stdint.h>

/* ---- frozen format ------------------------------------------------------ */

#define DMCE_STAB_MAGIC 0x4241545345434d44ull /* "DMCESTAB" */
#define DMCE_STAB_VERSION 2u                  /* 2: XXH3 hashes, checksums (1: XXH32) */

#define DMCE_STAB_UNIT 16u        /* arena offsets and chunk sizes count 16-byte units */
#define DMCE_STAB_BINS 32u        /* free-list bins per stripe: floor(log2(units)) */
#define DMCE_STAB_MIN_SIZE 16384u /* smallest region */
#define DMCE_STAB_MAX_SIZE ((1ull << 36) - 4096) /* < 64 GiB: unit offsets are 32-bit */

/* Limits (bounds of dmce_stab_params_t). */
#define DMCE_STAB_KEY_DEFAULT 250u
#define DMCE_STAB_KEY_LIMIT 4096u
#define DMCE_STAB_VALUE_DEFAULT 65536u
#define DMCE_STAB_VALUE_LIMIT (64u << 20)
#define DMCE_STAB_SLOTS_DEFAULT 128u
#define DMCE_STAB_SLOTS_LIMIT 4096u
#define DMCE_STAB_STRIPES_LIMIT 4096u

/* Table flags (dmce_stab_params_t.flags). */
#define DMCE_STAB_EVICT 0x1u /* full stripe: evict (CLOCK) instead of -ENOSPC */

/* Set flags. */
#define DMCE_STAB_SET_NX 0x1u /* only if the key is absent ("add"): else -EEXIST */
#define DMCE_STAB_SET_XX 0x2u /* only if the key is present ("replace"): else -ENOENT */

/* TTL arguments of set and touch. */
#define DMCE_STAB_TTL_DEFAULT 0ull     /* the table's default TTL */
#define DMCE_STAB_TTL_NEVER UINT64_MAX /* never expires */

/* Some 64-bit fields are used atomically by 32-bit processes too: force
 * 8-byte alignment so i386 keeps them lock-free (the offsets below are
 * 8-aligned anyway, and _Static_asserts pin them). */
typedef uint64_t dmce_stab_u64a __attribute__((aligned(8)));

/*
 * Region header, offset 0, 256 bytes. Bytes [0, 128) are written once by
 * dmce_stab_format and covered by geom_csum; the epoch line is the only
 * shared mutable word readers touch.
 */
typedef struct dmce_stab_hdr {
    uint64_t magic;          /* DMCE_STAB_MAGIC, written last by format */
    uint32_t version;        /* DMCE_STAB_VERSION */
    uint32_t layout;         /* DMCE_STAB_LAYOUT_WORD */
    uint64_t size;           /* bytes in the region */
    uint64_t default_ttl_ms; /* 0 = entries never expire unless set with a TTL */
    uint32_t flags;          /* DMCE_STAB_EVICT */
    uint32_t seed;           /* hash seed, random per table */
    uint32_t max_key;        /* bytes */
    uint32_t max_value;      /* bytes */
    uint32_t nslots;         /* reader slots (open handles) */
    uint32_t nstripes;       /* power of two */
    uint32_t nbuckets;       /* buckets per stripe, power of two */
    uint32_t slots_off;      /* byte offsets of the sections */
    uint32_t stripes_off;
    uint32_t buckets_off;
    uint64_t arena_off;   /* byte offset of arena 0 (16-aligned) */
    uint32_t arena_units; /* units per stripe arena */
    uint32_t max_chain;   /* a chain longer than this is corrupt */
    uint64_t table_id;    /* random, never 0: tells this table from a later one formatted
                             over the same bytes (handles cached by address check it) */
    uint8_t reserved0[124 - 96];
    uint32_t geom_csum;     /* low 32 bits of XXH3 of bytes [8, 124) */
    dmce_stab_u64a epoch;   /* global reclamation epoch, starts at 1 */
    dmce_stab_u64a reaped;  /* reader slots reclaimed from dead processes */
    dmce_stab_u64a reap_ms; /* monotonic ms of the last lazy reap scan */
    uint32_t slot_hwm;      /* slots [0, hwm) have ever been used */
    uint8_t reserved1[256 - 156];
} dmce_stab_hdr_t;

/*
 * Reader slot: one per open handle, 128 bytes (two cache lines, so the
 * adjacent-line prefetcher does not pair two processes' slots). Written
 * only by its owner, except reaping. `owner` is pid | start << 32 where
 * start is the process start time (/proc/<pid>/stat field 22, low 32
 * bits, never 0); 0 = free; a reaper marks DMCE_STAB_REAPING | its pid.
 * Counters survive reaping: the next owner adds to them, stats sums all.
 */
typedef struct dmce_stab_slot {
    dmce_stab_u64a owner;
    dmce_stab_u64a epoch; /* epoch entered, 0 = not reading */
    dmce_stab_u64a hits, misses, sets, dels, touches;
    dmce_stab_u64a evictions, expirations, cas_failures, corrupt;
    uint8_t reserved[128 - 88];
} dmce_stab_slot_t;

#define DMCE_STAB_REAPING 0x80000000u

/*
 * Stripe: 256 bytes, written only under its lock. `lock` is the owner's
 * identity (same encoding as a slot's owner), 0 = free.
 */
typedef struct dmce_stab_stripe {
    dmce_stab_u64a lock;
    uint64_t vclock;              /* last version issued in this stripe */
    dmce_stab_u64a entries;       /* live records reachable from the buckets */
    dmce_stab_u64a bytes;         /* their key + value bytes */
    dmce_stab_u64a rebuild_epoch; /* != 0: allocator quarantined until readers pass it */
    dmce_stab_u64a recoveries;    /* times a dead owner's lock was stolen */
    uint32_t limbo_head;          /* unit offsets, 0 = none */
    uint32_t limbo_tail;
    uint32_t limbo_count;
    uint32_t hand; /* CLOCK hand: unit offset of a chunk in the arena */
    uint32_t free_units;
    uint32_t limbo_units;
    uint32_t live_units;
    uint32_t binmap;               /* bit b set = bins[b] not empty */
    uint32_t bins[DMCE_STAB_BINS]; /* heads of the free lists (unit offsets) */
    uint32_t lock_seq; /* bumped by every acquirer: waiters tell a busy lock from a stuck one */
    uint8_t reserved[256 - 212];
} dmce_stab_stripe_t;

/* Chunk states. */
#define DMCE_STAB_FREE 0x46u    /* 'F' on a free list */
#define DMCE_STAB_LIVE 0x4cu    /* 'L' written record (reachable unless mid-write) */
#define DMCE_STAB_RETIRED 0x52u /* 'R' unlinked, on the limbo list */

/*
 * Chunk header, 64 bytes, at the start of every chunk of an arena. A
 * record's key follows it, then its value at the next 8-byte boundary.
 * Immutable once published: units, klen, vlen, hash, version, csum, key,
 * value. Atomic in place: next, expire_ms, state, ref. Allocator only
 * (never read by readers): prev_units, link, retire_epoch, fprev.
 */
typedef struct dmce_stab_rec {
    uint32_t units;      /* chunk size in units, header included */
    uint32_t prev_units; /* size of the chunk just before, 0 for the first */
    uint8_t state;       /* DMCE_STAB_FREE / LIVE / RETIRED */
    uint8_t ref;         /* CLOCK reference bit, set by readers */
    uint16_t klen;
    uint32_t vlen;
    uint32_t next; /* bucket chain: unit offset of the next record, 0 = end */
    uint32_t hash; /* low 32 bits of XXH3(key, seed) */
    uint64_t version;
    dmce_stab_u64a expire_ms; /* wall-clock ms, 0 = never */
    uint32_t csum;            /* low 32 bits of XXH3 over key, pad, value, seeded with the fields */
    uint32_t link; /* limbo list / free list: next chunk */
    uint64_t retire_epoch;
    uint32_t fprev; /* free list: previous chunk */
    uint32_t reserved;
} dmce_stab_rec_t;

_Static_assert(sizeof(dmce_stab_hdr_t) == 256, "header is 256 bytes");
_Static_assert(offsetof(dmce_stab_hdr_t, table_id) == 88, "table_id at 88");
_Static_assert(offsetof(dmce_stab_hdr_t, geom_csum) == 124, "geometry checksum at 124");
_Static_assert(offsetof(dmce_stab_hdr_t, epoch) == 128, "epoch on its own line");
_Static_assert(offsetof(dmce_stab_hdr_t, slot_hwm) == 152, "slot_hwm at 152");
_Static_assert(sizeof(dmce_stab_slot_t) == 128, "slot is 128 bytes");
_Static_assert(offsetof(dmce_stab_slot_t, hits) == 16, "slot counters at 16");
_Static_assert(sizeof(dmce_stab_stripe_t) == 256, "stripe is 256 bytes");
_Static_assert(offsetof(dmce_stab_stripe_t, limbo_head) == 48, "stripe words at 48");
_Static_assert(offsetof(dmce_stab_stripe_t, bins) == 80, "stripe bins at 80");
_Static_assert(sizeof(dmce_stab_rec_t) == 64, "chunk header is 64 bytes");
_Static_assert(offsetof(dmce_stab_rec_t, version) == 24, "version at 24");
_Static_assert(offsetof(dmce_stab_rec_t, retire_epoch) == 48, "retire_epoch at 48");

#define DMCE_STAB_LAYOUT_WORD                                                                      \
    ((uint32_t)((sizeof(dmce_stab_hdr_t) / 8) << 24 | (sizeof(dmce_stab_slot_t) / 8) << 16 |       \
                (sizeof(dmce_stab_stripe_t) / 8) << 8 | sizeof(dmce_stab_rec_t)))

/* ---- formatting and attaching -------------------------------------------- */

/* Format parameters; 0 in any field means "default / derive from size". */
typedef struct dmce_stab_params {
    uint32_t max_key;        /* 1..DMCE_STAB_KEY_LIMIT, default 250 */
    uint32_t max_value;      /* 0..DMCE_STAB_VALUE_LIMIT; default 64 KiB, less if the
                                arenas are too small (an arena holds >= 8 max records) */
    uint32_t nslots;         /* 1..DMCE_STAB_SLOTS_LIMIT, default 128 */
    uint32_t nstripes;       /* power of two <= DMCE_STAB_STRIPES_LIMIT; default
                                size / max(1 MiB, 16 max records), at most 1024 */
    uint32_t nbuckets;       /* per stripe, power of two; default ~ arena bytes / 128 */
    uint32_t flags;          /* DMCE_STAB_EVICT */
    uint64_t default_ttl_ms; /* 0 = no default TTL */
} dmce_stab_params_t;

/*
 * Format `size` bytes at `base` (16-byte aligned) as an empty table.
 * p may be NULL (all defaults). The caller must ensure nobody else uses
 * the region meanwhile; the magic is written last, so a half-formatted
 * region never attaches. 0, -EINVAL (bad argument or parameters that do
 * not fit the size), or -errno from getrandom.
 */
int dmce_stab_format(void *base, uint64_t size, const dmce_stab_params_t *p);

/*
 * Check that `base` holds a table this build can use: DMCE_EBADMAGIC,
 * DMCE_EVERSION, DMCE_ELAYOUT for the three format words, DMCE_ECORRUPT
 * for a header whose geometry checksum or sizes do not hold (also when
 * `size` differs from the formatted size), -EINVAL for NULL or a
 * misaligned base. Read-only, never blocks.
 */
int dmce_stab_attach(const void *base, uint64_t size);

/*
 * The header's geometry checksum as format writes it and attach checks it
 * (low 32 bits of XXH3 over header bytes [8, 124)). For tools and tests
 * that build or forge headers; pure, reads only *h.
 */
uint32_t dmce_stab_geom_csum(const dmce_stab_hdr_t *h);

/* Read the format parameters of an attached table back. */
void dmce_stab_params_get(const void *base, dmce_stab_params_t *out);

/* ---- handles -------------------------------------------------------------- */

typedef struct dmce_stab dmce_stab_t;

/* Fault-injection points for tests (dmce_stab_opts_t.fault). */
enum {
    DMCE_STAB_FP_LOCKED = 1, /* stripe lock just taken */
    DMCE_STAB_FP_SPLIT,      /* allocator: remainder header written, chunk not shrunk */
    DMCE_STAB_FP_ALLOCATED,  /* chunk off the free list, record not written */
    DMCE_STAB_FP_WRITTEN,    /* record written, not published */
    DMCE_STAB_FP_PUBLISHED,  /* new record published, old one not retired */
    DMCE_STAB_FP_UNLINKED,   /* del / expiry / eviction: unlinked, not retired */
    DMCE_STAB_FP_LIMBO_PUSH, /* retire: linked after the tail, tail not moved */
    DMCE_STAB_FP_RECLAIM,    /* limbo head popped, chunk not freed */
    DMCE_STAB_FP_COALESCE,   /* free: neighbours taken off their lists, header not written */
    DMCE_STAB_FP_EVICT,      /* eviction walk, hand moved */
    DMCE_STAB_FP_REPAIR,     /* stolen lock: repair half done */
    DMCE_STAB_FP_REBUILD,    /* allocator rebuild half done */
    DMCE_STAB_FP_COUNT
};

/* A byte range of a table's region, reported to the persist hook. */
typedef struct dmce_stab_range {
    uint64_t off, len;
} dmce_stab_range_t;
#define DMCE_STAB_PERSIST_MAX 64u /* ranges per call of the persist hook */

typedef struct dmce_stab_opts {
    /* Wall-clock ms for TTLs; NULL = CLOCK_REALTIME. Tests inject theirs. */
    uint64_t (*now_ms)(void *arg);
    void *now_arg;
    /* A set/del/touch whose stripe lock stays held by a live process this
     * long returns -EBUSY. 0 = 10000 ms. */
    uint32_t lock_timeout_ms;
    /* A set whose stripe is full waits this long for readers to leave
     * (records they may hold cannot be reused yet) before -ENOSPC.
     * 0 = 200 ms. */
    uint32_t grace_wait_ms;
    /* Tests only: called at each DMCE_STAB_FP_* point; NULL in production. */
    void (*fault)(void *arg, int point);
    void *fault_arg;
    /*
     * Mirroring hook (NULL = none). Called by this handle, with the
     * stripe lock still held, after each mutation (set, del, touch, the
     * removals, evictions, reclaims, repairs and rebuilds it does on the
     * way, sweep, recover), with the byte ranges of the region the
     * mutation changed, n (1..DMCE_STAB_PERSIST_MAX) at a time: usually
     * all of them in one call, more calls when a mutation changes more
     * places than that. The ranges cover records and chunk headers, bucket and chain
     * links, limbo links, the stripe's metadata (bytes [8, 256) of the
     * stripe: everything but its lock word), the global epoch. Copying
     * exactly those ranges from this region to a copy that was equal to
     * it before the mutation makes the copy hold the same table (chains,
     * records, allocator, counters). Not reported, because a copy does
     * not need them to be the same table: the lock words (0 in a copy
     * taken at rest), reader slots and their counters, the CLOCK `ref`
     * bits set by readers, the header's reaping words and slot_hwm, and
     * the bytes dmce_stab_format writes (a mirror starts as a byte copy
     * of the formatted region). Ranges come in no particular order and
     * may repeat; each lies inside the region. Before a range is
     * reported its bytes hold their final value for this mutation, so
     * the callback may copy them from the region at once.
     *
     * A negative return is passed on: the operation has taken effect in
     * this region (the table stays consistent) and returns that error, so
     * the caller knows the change may not have reached the copy. A write
     * that must survive the loss of this region is acknowledged only
     * when the operation returns 0.
     */
    int (*persist)(void *ctx, const dmce_stab_range_t *r, uint32_t n);
    void *persist_ctx;
} dmce_stab_opts_t;

/*
 * Attach (as dmce_stab_attach) and claim a reader slot. opts may be NULL.
 * On success *out owns the slot until dmce_stab_close. Slots of dead
 * processes are reaped when none is free. 0, the attach errors, -EUSERS
 * when every slot belongs to a live handle, -ENOMEM.
 */
int dmce_stab_open(void *base, uint64_t size, const dmce_stab_opts_t *opts, dmce_stab_t **out);

/* Release the slot (ends any views) and free the handle. NULL is a no-op. */
void dmce_stab_close(dmce_stab_t *t);

/*
 * Free the handle without touching the region: for a region that is no
 * longer this table (freed, reformatted: its table_id changed), whose
 * bytes may belong to someone else now. The slot is left as it was.
 * NULL is a no-op.
 */
void dmce_stab_abandon(dmce_stab_t *t);

/* The table_id of an attached region (0 if base is NULL). */
uint64_t dmce_stab_table_id(const void *base);

/* This process's identity word (pid | start << 32), as lock and slot
 * owners record it. For tests and diagnostics. */
uint64_t dmce_stab_self_id(void);

/* ---- operations ------------------------------------------------------------
 *
 * Common errors: -EINVAL (NULL or empty key, bad flags), -E2BIG (key
 * longer than max_key), -EMSGSIZE (value longer than max_value), -ECHILD
 * (handle inherited across fork). Each of these changes nothing.
 * Writers (set, del, touch, sweep) take their stripe's lock and may
 * spin/yield while another writer of the same stripe works; a lock held
 * by a dead process is stolen and its stripe repaired; one held by a live
 * process longer than lock_timeout_ms gives -EBUSY. Readers (get, view,
 * view_check, stats) never block and never wait for any writer.
 */

/*
 * Store key -> value. ttl_ms: DMCE_STAB_TTL_DEFAULT, DMCE_STAB_TTL_NEVER
 * or ms from now. cas_version != 0: only if the key is present, not
 * expired, and its version equals it. flags: DMCE_STAB_SET_NX / _XX (not
 * both; NX excludes cas). On success *version_out (may be NULL) gets the
 * new version: larger than any version this key had before, never reused.
 * Errors: -ESTALE (version differs), -ENOENT (cas or XX on an absent
 * key), -EEXIST (NX on a present key), -ENOSPC (the key's stripe is full:
 * eviction off, or nothing evictable, or its free space is pinned by
 * long-held views), plus the common ones. On error nothing visible
 * changed (expired entries met on the way may have been reclaimed).
 * Copies vlen bytes from val (NULL allowed if vlen is 0).
 */
int dmce_stab_set(dmce_stab_t *t, const void *key, uint32_t klen, const void *val, uint32_t vlen,
                  uint64_t ttl_ms, uint64_t cas_version, uint32_t flags, uint64_t *version_out);

/*
 * Copy the value of key into buf (cap bytes). *vlen gets the value length
 * and *version (may be NULL) its version. -ENOENT if absent or expired,
 * -ENOBUFS if cap < length (*vlen set, nothing copied), DMCE_ECORRUPT if
 * the record fails its checksum or a chain link is out of bounds. Never
 * blocks; never writes to the region except the CLOCK reference bit and
 * this handle's slot.
 */
int dmce_stab_get(dmce_stab_t *t, const void *key, uint32_t klen, void *buf, uint32_t cap,
                  uint32_t *vlen, uint64_t *version);

/*
 * Zero-copy read. On success v->value points into the region, v->len,
 * v->version and v->expire_ms describe the record, and the caller holds a
 * lease: those bytes are not reused (not freed, not rewritten) until
 * dmce_stab_view_release, even if the key is deleted or overwritten
 * meanwhile. A handle may hold several views. A held view delays the
 * reuse of every record unlinked after it was taken, table-wide: hold it
 * for one request, not for minutes. Same errors as dmce_stab_get (no
 * lease is held after an error).
 */
typedef struct dmce_stab_view {
    const void *value;
    uint32_t len;
    uint32_t rec; /* internal: unit offset of the record, 0 = released */
    uint64_t version;
    uint64_t expire_ms;
} dmce_stab_view_t;

int dmce_stab_view(dmce_stab_t *t, const void *key, uint32_t klen, dmce_stab_view_t *v);

/* 0 if the view is still the key's current value, -ESTALE if it has been
 * overwritten, deleted, evicted or has expired, -EINVAL if released. */
int dmce_stab_view_check(dmce_stab_t *t, const dmce_stab_view_t *v);

/* End the lease. Releasing twice is a no-op. */
void dmce_stab_view_release(dmce_stab_t *t, dmce_stab_view_t *v);

/* Delete key (cas_version 0 = whatever version). 0, -ENOENT (absent or
 * expired), -ESTALE (version differs), common errors. */
int dmce_stab_del(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t cas_version);

/* Set a new TTL (same meaning as in set) on a present key without
 * changing its version or value. 0, -ENOENT, common errors. */
int dmce_stab_touch(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t ttl_ms);

/*
 * Remove every expired entry, return memory whose readers are gone, reap
 * reader slots of dead processes. Locks each stripe in turn. Returns the
 * number of expired entries removed (>= 0) or -ECHILD / -EBUSY.
 */
int dmce_stab_sweep(dmce_stab_t *t);

typedef struct dmce_stab_stats {
    uint64_t entries, bytes;                /* live entries, their key + value bytes */
    uint64_t mem_total;                     /* arena bytes */
    uint64_t mem_live, mem_free, mem_limbo; /* chunks holding live / free / retired */
    uint64_t hits, misses, sets, dels, touches;
    uint64_t evictions, expirations, cas_failures, corrupt;
    uint64_t recoveries; /* stripe locks stolen from dead processes */
    uint64_t reaped;     /* reader slots reclaimed from dead processes */
    uint64_t epoch;
    uint32_t stripes, handles, locks_held, rebuilds_pending;
} dmce_stab_stats_t;

/* Counters summed over stripes and slots without locks: each is exact
 * when no writer runs, approximate otherwise. Never blocks. */
int dmce_stab_stats(dmce_stab_t *t, dmce_stab_stats_t *out);

/*
 * Recover now instead of lazily: reap reader slots of dead processes,
 * steal and repair every stripe whose lock a dead process holds, finish
 * quarantined allocator rebuilds whose grace period has passed. Returns
 * the number of slots reaped plus stripes repaired (>= 0), or -ECHILD.
 * Blocks like a writer on each stripe.
 */
int dmce_stab_recover(dmce_stab_t *t);

/*
 * Full consistency check (tests, dmcectl verify): header, every chunk of
 * every arena, free lists, limbo lists, chains, checksums, counters.
 * Locks each stripe in turn (stealing from dead owners). 0 or
 * DMCE_ECORRUPT; -EBUSY / -ECHILD as for writers. O(region).
 */
int dmce_stab_verify(dmce_stab_t *t);

/* Tests: region byte offset of key's current record (its 64-byte header;
 * the value follows the key). 0 or -ENOENT. */
int dmce_stab_debug_locate(dmce_stab_t *t, const void *key, uint32_t klen, uint64_t *rec_off,
                           uint64_t *value_off);

#endif /* DMCE_RUNTIME_STORE_TABLE_H */
