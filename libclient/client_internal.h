/*
 * client_internal.h - libdmce's own types, shared by client.c (connections,
 * MSMP requests, sessions) and map.c (block table, Memory Cache, mapped
 * access, daemon watcher). Not installed.
 */
#ifndef DMCE_CLIENT_INTERNAL_H
#define DMCE_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmce/client.h>
#include <dmce/map.h>

#include "cache.h"
#include "msmp.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"

/* One memory daemon: its MSMP connection and what setup said. */
struct dmce_conn {
    pthread_mutex_t lock;  /* serializes requests on t */
    dmce_mconn_t t;        /* the transport (socket or rings); owner: this struct */
    int set_up;            /* a session exists on this daemon */
    dmce_msmp_setup_resp_t info;
    atomic_uint id;        /* the daemon's ID (directory or setup); 0 = not known yet */
    atomic_int alive;      /* the directory says it is alive (always 1 without a dispatcher) */
};

/* State of one operation retried across a failover (dmce__disp_retry). Zero it. */
struct dmce_retry {
    uint64_t deadline_ms;
    uint32_t failed;       /* the daemon ID that failed last */
    unsigned same;         /* retries on that same daemon */
    unsigned sleep_ms;     /* the last pause between two looks at the directory */
    unsigned sleep_us;     /* the same while a block is moving (DMCE_EMOVING) */
};

/*
 * A local block this client has opened (the client's Block ID Lookup
 * Table). Published in blocks[] and read without a lock; never freed
 * before the client, only retired (gone = 1) when its daemon goes.
 */
struct dmce_blk {
    atomic_int gone;
    struct dmce_blk *retired_next;
    uint32_t id;
    unsigned daemon;       /* index into conn[] */
    int fd;                /* the block's shm descriptor; owner: this entry */
    uint64_t size, data_offset;
    uint32_t page_size;
};

/* A pointer handed out by dmce_map (the DMCE Memory Mapping Table). */
struct dmce_mapping {
    uint8_t *ptr;
    uint64_t len;
    dmce_addr_t addr;
    dmce_cache_ref_t ref;  /* pins the window for the mapping's life */
};

struct dmce_client {
    pthread_mutex_t lock;  /* setup state */
    atomic_uint n;         /* conn[0..n) in use; grows when the directory names a new daemon */
    unsigned io_timeout_ms;
    unsigned flags;        /* DMCE_CONNECT_* */
    int set_up;
    dmce_token_t token;
    dmce_layout_t layout;
    atomic_uint rr;
    struct dmce_conn conn[DMCE_MAX_DAEMONS];

    /* ---- mapped access (map.c) ---- */
    pthread_mutex_t map_lock;        /* blocks[] growth, mappings[], watcher start */
    _Atomic(struct dmce_blk *) *blocks; /* indexed by block ID; NULL = not opened */
    uint32_t nblocks;                /* 1 << 16: the widest block field of any layout */
    dmce_cache_t *cache;             /* owner: the client */
    uint64_t window_size;            /* 0 = whole blocks */
    unsigned max_windows;
    struct dmce_blk *retired;        /* blocks no longer published */
    struct dmce_mapping *maps;
    size_t nmaps, maps_cap;
    pthread_t watcher;
    int watcher_on;
    int watch_evfd;                  /* wakes the watcher: rescan or stop */
    atomic_uint_fast64_t st_local_reads, st_local_writes, st_local_bytes_read,
        st_local_bytes_written, st_msmp_reads, st_msmp_writes, st_blocks_opened;

    /* ---- the dispatcher (disp.c); all zero without one ---- */
    int disp;                        /* 1: direct mode, a dispatcher serves the cluster */
    int disp_lock_init;
    pthread_mutex_t disp_lock;       /* dconn, directory refreshes, adding daemons */
    dmce_mconn_t dconn;              /* to RUNTIME_DIR/dispatcher.sock */
    uint32_t session_id;             /* cluster-wide (DMCE_SESSION_GLOBAL), once set up */
    unsigned failover_wait_ms;
    atomic_uint dflags;              /* DMCE_DISP_* of the last directory */
    atomic_uint_fast64_t epoch;
    _Atomic uint16_t *owner;         /* [nblocks]: block ID -> its primary's daemon ID, 0 unknown */
    atomic_uint_fast64_t st_failovers;
};

/* ---- client.c, for map.c ---- */

/*
 * One MSMP request on daemon k: payload (p1,l1)+(p2,l2) out, response
 * payload into resp. If fd_out is not NULL, a descriptor passed with the
 * response is stored there (else -1); any other received descriptor is
 * closed. Returns the response status or a transport error.
 */
int dmce__rpc(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1, size_t l1,
              const void *p2, size_t l2, void *resp, size_t resp_cap, size_t *resp_len,
              int *fd_out);

/*
 * The connection for addr's block (directory, then ranges), with a session
 * on it (made on first use with a dispatcher). DMCE_ENOSETUP before setup.
 */
int dmce__route(dmce_client_t *c, dmce_addr_t addr, struct dmce_conn **k);
/*
 * With a dispatcher, give daemon k a session under the cluster-wide ID if
 * it has none of ours (it joined, or came back, after dmce_setup). 0 or
 * the setup's error. Must not hold k->lock.
 */
int dmce__ensure_session(struct dmce_client *c, struct dmce_conn *k);

/* Index of the daemon whose block range holds block ID `block`, or DMCE_ENOBLOCK. */
int dmce__daemon_of_block(const struct dmce_client *c, uint32_t block);

/*
 * Add a daemon's connection (connecting at once) and return its index;
 * `id` 0 when not known yet. Callers serialize (connect, or disp_lock).
 */
int dmce__add_daemon(struct dmce_client *c, const char *path, uint32_t id);

/* ---- disp.c, for client.c and map.c ---- */

/*
 * Use RUNTIME_DIR/dispatcher.sock if a dispatcher answers there: fetch the
 * directory and connect to every live daemon in it. 0 (direct mode), 1 (no
 * dispatcher: scan the directory for daemons), DMCE_ENODAEMON (a
 * dispatcher, but no daemon alive), or another error.
 */
int dmce__disp_connect(struct dmce_client *c, const char *dir, const dmce_connect_opts_t *opts);
void dmce__disp_fini(struct dmce_client *c);
/* Fetch the directory again. */
int dmce__disp_refresh(struct dmce_client *c);
/* The cluster-wide session ID for a new session. */
int dmce__disp_session(struct dmce_client *c, uint32_t *id);
/* Index of the daemon the dispatcher picks for a malloc of `size`, or an error. */
int dmce__disp_pick(struct dmce_client *c, uint64_t size, uint32_t exclude);
/* Index of the connection to daemon ID `id`, or DMCE_ENODAEMON. */
int dmce__conn_of_id(const struct dmce_client *c, uint32_t id);
/*
 * An operation on addr failed with *err. In direct mode, when a failover
 * explains the error, wait (bounded by failover_wait_ms) until the
 * directory names a live primary for the block and return 1: send the
 * operation again. Else 0, with *err possibly made clearer (DMCE_ELOST).
 */
int dmce__disp_retry(struct dmce_client *c, dmce_addr_t addr, int *err, struct dmce_retry *st);
/* The dispatcher's stats values (enum dmce_disp_stat), n of them. */
int dmce__disp_stats(struct dmce_client *c, uint64_t *v, uint32_t n);

/* 1 when local writes must go through the daemon (so that the mirror gets them). */
static inline int dmce__writes_via_daemon(const struct dmce_client *c)
{
    return c->disp && !(atomic_load_explicit(&c->dflags, memory_order_relaxed) & DMCE_DISP_MIRROR_OFF);
}

/* ---- map.c, for client.c ---- */

/*
 * Set up the mapping state at connect (opts may be NULL). 0 or -errno;
 * on failure nothing is left to release.
 */
int dmce__map_init(struct dmce_client *c, const dmce_connect_opts_t *opts);

/*
 * Daemon `i` is a new process (it restarted): forget the blocks opened on
 * the old one. Called with conn[i].lock held.
 */
void dmce__map_daemon_reset(struct dmce_client *c, unsigned i);

/*
 * Block `id`'s primary is daemon ID `owner` (0: not in the directory). If
 * the client opened it on another daemon, forget that: the next access
 * opens it again where it lives now. Cheap when nothing changed.
 */
void dmce__map_check_block(struct dmce_client *c, uint32_t id, uint32_t owner);

/* Release every mapping, window and block descriptor; stop the watcher. */
void dmce__map_fini(struct dmce_client *c);

/*
 * dmce_read / dmce_write of a local address through the Memory Cache.
 * Returns 1 if the caller must use MSMP instead (mapping off, or not a
 * local block), else 0 or an error.
 */
int dmce__local_read(struct dmce_client *c, dmce_addr_t addr, void *buf, size_t len);
int dmce__local_write(struct dmce_client *c, dmce_addr_t addr, const void *buf, size_t len);

#endif /* DMCE_CLIENT_INTERNAL_H */
