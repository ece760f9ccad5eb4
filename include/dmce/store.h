/*
 * store.h - the session store: a key/value store in DMCE memory, shared by
 * the processes of a server (prefork web servers, worker pools), reachable
 * in-process and out-of-process at the same time (seed 000).
 *
 * Where it lives. A store is one DMCE allocation (one block) of a local
 * memory daemon, formatted as a shared-memory table (docs/store.md): all
 * its state is inside those bytes. Its DMCE address names it; pass the
 * address to the other processes (a pipe, a file, an environment variable)
 * and each opens it with its own client.
 *
 * Two ways to use one store, chosen per handle (dmce_store_open):
 *   - in-process: the handle maps the allocation (dmce_map) and works on
 *     the table directly. A get is a hash, a chain walk and a copy; a view
 *     is a pointer into the shared memory (zero copy). Readers never wait
 *     for anyone; a writer locks only its key's stripe. No message, no
 *     system call.
 *   - out-of-process: every call is one MSMP message to the daemon that
 *     holds the block, which runs it on its own handle of the same table;
 *     keys and values travel serialized. Chosen automatically when the
 *     client was connected with DMCE_CONNECT_NO_MAP, or asked for with
 *     DMCE_STORE_OUT_OF_PROCESS.
 * Both kinds of handle work on the same memory: a set returns after the
 * record is published, and every other handle, of either kind, sees it
 * from then on.
 *
 * Lifetime. The store is an allocation of the session that created it: it
 * lives until dmce_store_destroy, or until that session ends (dmce_disconnect
 * frees it; a creator that dies leaves it for the daemon's grace_ms, so a
 * restarted creator can reattach with its token). Keep the creating client
 * connected as long as the store is used. Destroying a store while other
 * handles still use it is a bug of the caller, as free() is: their next
 * calls may fail or act on memory that is no longer the store (never
 * outside the daemon's block, never a crash of the daemon).
 *
 * Crash safety. A process killed at any instruction, inside a set
 * included, leaves the store usable and consistent for the others: stripe
 * locks record their owner, and the next writer steals a dead owner's lock
 * and repairs the stripe (docs/store.md section 7). Out-of-process calls
 * run in the daemon: a client killed during one changes nothing or
 * completes it.
 *
 * Threads and fork. A dmce_store_t belongs to one thread at a time (it
 * owns one reader slot of the table): give each thread its own handle.
 * Handles of one client may be used from different threads at once. A
 * handle, like the client, must not be used in a child after fork(): the
 * child connects its own client and opens the store again (calls on an
 * inherited in-process handle return -ECHILD).
 *
 * Errors: 0 (or a count) on success, a negative errno or DMCE_E* code
 * otherwise (dmce_strerror). The store's own codes:
 *   DMCE_ECASFAIL       set/del with a CAS version the entry no longer has
 *   DMCE_ESTOREFULL     set: the key's stripe is full and eviction is off,
 *                       or nothing can be evicted (memory held by views)
 *   DMCE_ESTALE         view_check: the viewed value is no longer current
 *   DMCE_EBADENTRY      the key's record (or its bucket's chain) failed its
 *                       checksum or bounds checks: that key only; a set or
 *                       a del of the key heals it when the chain is intact
 *   DMCE_ENOTSTORE      the address does not hold a store
 *   DMCE_ESTOREVERSION  a store made by an incompatible dmce build
 *   DMCE_ECORRUPT       the store's header or structure is damaged (verify)
 * and the errno values:
 *   -EINVAL    NULL or empty key, NULL buffer with a non-zero length,
 *              contradictory flags, bad parameters
 *   -E2BIG     key longer than the store's max_key
 *   -EMSGSIZE  value longer than the store's max_value
 *   -ENOENT    key absent or expired (and set with DMCE_STORE_XX or a CAS
 *              version on an absent key)
 *   -EEXIST    set with DMCE_STORE_NX on a present key
 *   -ENOBUFS   get: the buffer is too small (*vlen says how large)
 *   -EBUSY     a live process held the key's stripe lock past the lock
 *              timeout (10 s in-process, 1 s in the daemon)
 *   -EUSERS    open: every reader slot (max_handles) belongs to a live handle
 *   -ECHILD    an in-process handle used after fork()
 * plus the client's transport errors (DMCE_ECLOSED, -ETIMEDOUT) for
 * out-of-process handles. A call that fails for its arguments changes
 * nothing; a set that fails changes nothing visible.
 */
#ifndef DMCE_STORE_H
#define DMCE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <dmce/addr.h>
#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmce_store dmce_store_t;

/* ---- limits --------------------------------------------------------------- */

#define DMCE_STORE_SIZE_MIN 16384ull              /* bytes of the smallest store */
#define DMCE_STORE_SIZE_MAX ((1ull << 36) - 4096) /* and of the largest (also <= a block) */
#define DMCE_STORE_KEY_DEFAULT 250u
#define DMCE_STORE_KEY_LIMIT 4096u
#define DMCE_STORE_VALUE_DEFAULT 65536u
#define DMCE_STORE_VALUE_LIMIT (64u << 20)
#define DMCE_STORE_HANDLES_DEFAULT 128u
#define DMCE_STORE_HANDLES_LIMIT 4096u

/* TTL arguments of set and touch. */
#define DMCE_STORE_TTL_DEFAULT 0ull     /* the store's default_ttl_ms */
#define DMCE_STORE_TTL_NEVER UINT64_MAX /* never expires */

/* dmce_store_params_t.flags */
enum dmce_store_flags {
    /* A full stripe evicts (CLOCK: least recently read first, expired
     * entries before anything) instead of failing with DMCE_ESTOREFULL. */
    DMCE_STORE_EVICT = 1u << 0,
};

/*
 * Parameters of dmce_store_create. Zero-initialize, then set what you
 * need; 0 in a field means its default.
 */
typedef struct dmce_store_params {
    /* Longest key, 1..DMCE_STORE_KEY_LIMIT bytes; default 250. */
    uint32_t max_key;
    /*
     * Longest value in bytes: at most DMCE_STORE_VALUE_LIMIT, and at most
     * the daemon's max_payload (default 1 MiB) less max_key less 64, so
     * that an out-of-process client can move any value in one message.
     * Default 64 KiB, lowered to fit a small store (every stripe must hold
     * 8 values of the largest size). Empty values are always allowed.
     */
    uint32_t max_value;
    /*
     * Reader slots, 1..DMCE_STORE_HANDLES_LIMIT; default 128. Every open
     * in-process handle takes one, and so does each daemon worker thread
     * that serves out-of-process handles (2 by default). Slots of dead
     * processes are reclaimed.
     */
    uint32_t max_handles;
    /*
     * Stripes: writers of different stripes never meet; capacity and
     * eviction are per stripe. A power of two up to 4096; default one per
     * MiB (or per 16 largest values), at most 1024.
     */
    uint32_t stripes;
    uint32_t flags;          /* DMCE_STORE_EVICT */
    uint32_t reserved;       /* must be 0 */
    uint64_t default_ttl_ms; /* TTL of sets with DMCE_STORE_TTL_DEFAULT; 0 = never expire */
} dmce_store_params_t;

/*
 * Create a store of `size` bytes (DMCE_STORE_SIZE_MIN.., and at most one
 * block of the daemon: its block_size less the block's metadata) in an
 * allocation of c's session, on the daemon dmce_malloc picks, and format
 * it; *out gets its address. p may be NULL (all defaults). The allocation
 * is charged to the session like any dmce_malloc. Works the same in-process
 * and out-of-process: the daemon formats the allocation (MSMP store_format).
 * Errors: -EINVAL (bad arguments or parameters, parameters that do not fit
 * `size`, max_value above the daemon's limit), DMCE_ENOSETUP, DMCE_ENOMEM,
 * DMCE_EQUOTA, -EMSGSIZE (larger than a block), transport errors. On
 * error nothing stays allocated. Blocks on the daemon. Thread-safe.
 */
DMCE_API int dmce_store_create(dmce_client_t *c, uint64_t size, const dmce_store_params_t *p,
                               dmce_addr_t *out);

/*
 * Destroy the store at addr: its header is wiped (later opens get
 * DMCE_ENOTSTORE; the daemon drops its handles) and the allocation freed.
 * Any client may destroy a store. Handles still open on it must not be
 * used any more (see "Lifetime"); close them. Errors: DMCE_ENOTSTORE (no
 * store there: nothing is freed), the errors of dmce_read, dmce_write and
 * dmce_free. Blocks on the daemon. Thread-safe.
 */
DMCE_API int dmce_store_destroy(dmce_client_t *c, dmce_addr_t addr);

/* dmce_store_open flags */
enum dmce_store_open_flags {
    /* Every call a message to the daemon, even if the client maps blocks. */
    DMCE_STORE_OUT_OF_PROCESS = 1u << 0,
    /* Fail (-ENOTSUP) rather than fall back to out-of-process. */
    DMCE_STORE_IN_PROCESS = 1u << 1,
};

/*
 * Open the store at addr. In-process unless the client was connected with
 * DMCE_CONNECT_NO_MAP or flags has DMCE_STORE_OUT_OF_PROCESS; an in-process
 * open that cannot map the store (-ENOMEM: no address space, as in a
 * 32-bit process) falls back to out-of-process unless flags has
 * DMCE_STORE_IN_PROCESS. On success *out is owned by the caller until
 * dmce_store_close; c must stay connected until then.
 * Errors: -EINVAL, -ENOTSUP (DMCE_STORE_IN_PROCESS on a client that does
 * not map, or both flags), DMCE_ENOTSTORE, DMCE_ESTOREVERSION,
 * DMCE_ECORRUPT (the header does not hold), -EUSERS (no reader slot free),
 * -ENOMEM, and the errors of dmce_map / dmce_read (DMCE_EBADADDR,
 * DMCE_ENOBLOCK, ...). Blocks on the daemon (one or two messages). The
 * handle is for one thread at a time.
 */
DMCE_API int dmce_store_open(dmce_client_t *c, dmce_addr_t addr, unsigned flags,
                             dmce_store_t **out);

/*
 * Close a handle: its reader slot is released (in-process views still held
 * end; release views first) and the mapping dropped. The store itself
 * stays. NULL is a no-op. Never blocks on the daemon.
 */
DMCE_API void dmce_store_close(dmce_store_t *s);

/* What a handle knows about its store. */
typedef struct dmce_store_info {
    uint64_t size;           /* bytes of the store */
    uint64_t default_ttl_ms; /* 0 = entries never expire unless set with a TTL */
    uint32_t max_key, max_value, max_handles, stripes;
    uint32_t flags; /* DMCE_STORE_EVICT */
    int in_process; /* 1: this handle maps the store; 0: out-of-process */
} dmce_store_info_t;

/* Fill *out from the handle (no message). 0 or -EINVAL. */
DMCE_API int dmce_store_info(const dmce_store_t *s, dmce_store_info_t *out);

/*
 * Copy the value of key (klen bytes) into buf (cap bytes). *vlen gets the
 * value's length, *version (may be NULL) its version. -ENOENT (absent or
 * expired), -ENOBUFS (cap < length: *vlen set, nothing copied),
 * DMCE_EBADENTRY, and the common errors. In-process: never blocks, never
 * waits for a writer; out-of-process: one message.
 */
DMCE_API int dmce_store_get(dmce_store_t *s, const void *key, uint32_t klen, void *buf,
                            uint32_t cap, uint32_t *vlen, uint64_t *version);

/*
 * A value held without copying it yourself. value/len/version/expire_ms
 * describe the entry when the view was taken; the rest is private.
 */
typedef struct dmce_store_view {
    const void *value;
    uint32_t len;
    uint32_t priv_rec_;
    uint64_t version;
    uint64_t expire_ms; /* wall-clock ms (CLOCK_REALTIME), 0 = never */
    void *priv_copy_;
} dmce_store_view_t;

/*
 * Take a view of key's value. In-process, v->value points into the shared
 * memory (zero copy) and the caller holds a lease: those bytes are not
 * reused until dmce_store_view_release, even if the key is overwritten,
 * deleted, evicted or expires meanwhile (dmce_store_view_check tells). A
 * held view delays the reuse of every record removed after it was taken,
 * store-wide: hold it for one request, not across sleeps. Out-of-process,
 * v->value points to a private copy the library made (freed at release).
 * Either way the bytes do not change while the view is held. Same errors
 * as dmce_store_get (no view is held after an error). A handle may hold
 * several views.
 */
DMCE_API int dmce_store_view(dmce_store_t *s, const void *key, uint32_t klen, dmce_store_view_t *v);

/*
 * 0 if the view is still the key's current value, DMCE_ESTALE if the key
 * has been overwritten, deleted, evicted or has expired since (the view's
 * bytes stay readable until release), -EINVAL if released. In-process: no
 * message; out-of-process: one.
 */
DMCE_API int dmce_store_view_check(dmce_store_t *s, const dmce_store_view_t *v);

/* End a view. Releasing twice is a no-op. Never blocks. */
DMCE_API void dmce_store_view_release(dmce_store_t *s, dmce_store_view_t *v);

/* dmce_store_set flags */
enum dmce_store_set_flags {
    DMCE_STORE_NX = 1u << 0, /* only if the key is absent ("add"): else -EEXIST */
    DMCE_STORE_XX = 1u << 1, /* only if the key is present ("replace"): else -ENOENT */
};

/*
 * Store key -> value (vlen bytes; val may be NULL if vlen is 0). ttl_ms:
 * DMCE_STORE_TTL_DEFAULT, DMCE_STORE_TTL_NEVER or ms from now.
 * cas_version != 0: only if the key is present with exactly that version
 * (DMCE_ECASFAIL otherwise, -ENOENT if absent). flags: DMCE_STORE_NX or
 * DMCE_STORE_XX (not both; NX excludes a CAS version). *version_out (may
 * be NULL) gets the new version: larger than any this key had before,
 * never reused. Errors: DMCE_ECASFAIL, -ENOENT, -EEXIST, DMCE_ESTOREFULL,
 * -EMSGSIZE, -E2BIG, -EINVAL, -EBUSY, DMCE_EBADENTRY; nothing visible
 * changes on error. Blocks only while another writer holds the key's
 * stripe (microseconds), or, on a full stripe, up to 200 ms for readers
 * to leave memory they may hold; out-of-process: one message.
 */
DMCE_API int dmce_store_set(dmce_store_t *s, const void *key, uint32_t klen, const void *val,
                            uint32_t vlen, uint64_t ttl_ms, uint64_t cas_version, unsigned flags,
                            uint64_t *version_out);

/* Delete key (cas_version 0 = whatever version). 0, -ENOENT, DMCE_ECASFAIL,
 * common errors. Blocks like set. */
DMCE_API int dmce_store_del(dmce_store_t *s, const void *key, uint32_t klen, uint64_t cas_version);

/* New TTL (as in set) for a present key; version and value unchanged.
 * 0, -ENOENT, common errors. Blocks like set. */
DMCE_API int dmce_store_touch(dmce_store_t *s, const void *key, uint32_t klen, uint64_t ttl_ms);

/* The store's counters, summed over every handle that ever used it. */
typedef struct dmce_store_stats {
    uint64_t entries, bytes;                /* live entries, their key + value bytes */
    uint64_t mem_total;                     /* bytes for records */
    uint64_t mem_live, mem_free, mem_limbo; /* holding live / free / removed-not-yet-reusable */
    uint64_t hits, misses, sets, dels, touches;
    uint64_t evictions, expirations; /* expired entries removed (lazily or by sweep) */
    uint64_t cas_failures, corrupt;
    uint64_t recoveries; /* stripe locks taken back from dead processes */
    uint64_t reaped;     /* reader slots taken back from dead processes */
    uint32_t stripes, handles, locks_held, rebuilds_pending;
} dmce_store_stats_t;

/* Fill *out. Exact when no writer runs, approximate otherwise. In-process:
 * never blocks; out-of-process: one message. */
DMCE_API int dmce_store_stats(dmce_store_t *s, dmce_store_stats_t *out);

/*
 * Remove every expired entry now (expired entries are invisible at once,
 * and otherwise removed lazily by writers and eviction), free memory no
 * reader holds any more, reclaim reader slots of dead processes. Returns
 * the number of entries removed (>= 0) or an error. Locks each stripe in
 * turn; call it from one process now and then (the prefork demo's master
 * does, once a second).
 */
DMCE_API int dmce_store_sweep(dmce_store_t *s);

/*
 * Check the whole store (headers, every chunk, chains, checksums,
 * counters): 0 or DMCE_ECORRUPT, or -EBUSY. O(store size); locks each
 * stripe in turn. For tests and operators.
 */
DMCE_API int dmce_store_verify(dmce_store_t *s);

#ifdef __cplusplus
}
#endif

#endif /* DMCE_STORE_H */
