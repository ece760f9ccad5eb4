/*
 * memd_internal.h - the memory daemon's types and the helpers its parts
 * share (memd_server.c: blocks, sessions, connections, workers, life;
 * memd_store.c: the session store's MSMP operations). Not installed; not
 * for clients.
 *
 * Threads: a connection belongs to one worker thread for its whole life;
 * request handlers run on that thread with the block table read under
 * rcu_read_lock(). See memd_server.c's header for the rest.
 */
#ifndef DMCE_RUNTIME_MEMD_INTERNAL_H
#define DMCE_RUNTIME_MEMD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmce/addr.h>

#include "memd_server.h"
#include "msmp.h"
#include "transport_ring.h"

#define DMCE_MEMD_BATCH 16
/* Bytes asked of one recv(); the input buffer grows beyond it only for a large frame. */
#define DMCE_MEMD_IN_CHUNK (64u << 10)
/* Stop reading a client's requests while this much of its output is unsent. */
#define DMCE_MEMD_OUT_HIGH (256u << 10)
#define DMCE_MEMD_MAX_WORKERS 64

struct memd_block {
    uint32_t id;
    int fd;          /* owner: this struct; closed at shutdown */
    void *base;      /* mapping of the whole block */
    uint64_t size;
    pthread_mutex_t lock; /* serializes allocator changes */
    char name[2 * DMCE_CFG_STRMAX + 96]; /* shm_prefix + "b" + block ID */
    struct memd_block *prefault_next; /* queue of blocks waiting for the prefault thread */
};

struct memd_table {
    uint32_t n;                 /* = max_blocks */
    struct memd_block *b[];     /* index: block ID - block_first; NULL = not created */
};

struct memd_conn;

struct memd_session {
    uint32_t id;
    uint8_t token[DMCE_MSMP_TOKEN_LEN];
    uid_t uid;
    uint64_t reserved;
    uint64_t used;
    struct memd_conn *conn;    /* NULL when orphaned */
    uint64_t orphan_deadline;  /* ms, when orphaned */
    struct memd_session *next;
};

struct memd_worker;

struct memd_conn {
    int fd;
    pid_t pid;
    uid_t uid;
    struct memd_worker *w;
    struct memd_session *sess;  /* under sess_lock for the pointer's target */
    dmce_msmp_hdr_t h;          /* header of the request being handled */
    uint8_t *in;                /* received bytes [in_off, in_len), capacity in_cap */
    size_t in_cap, in_len, in_off;
    uint8_t *out;               /* pending output */
    size_t out_cap, out_len, out_off;
    int closing;                /* close once out is flushed */
    /*
     * Descriptors to pass (SCM_RIGHTS), each with the output offset of the
     * response frame it belongs to. Owner: this connection (dup()s, closed
     * once sent or when the connection closes).
     */
    struct out_fd { size_t off; int fd[2]; unsigned n; } *fds;
    unsigned nfds, fds_cap;
    int want_out;               /* EPOLLOUT armed */
    /*
     * Ring transport: after ring_open, requests and responses travel through
     * rt's rings and the socket only signals liveness. Owner of rt: this
     * connection.
     */
    int ring;
    dmce_rt_t rt;
    uint64_t last_req_ns;       /* when its last request arrived (spin accounting) */
    struct memd_conn *prev, *next;
};

struct memd_worker {
    struct dmce_memd *m;
    pthread_t thread;
    int epfd;
    int evfd;
    int bell;                   /* doorbell eventfd: ring clients wake a parked worker */
    int idx;
    unsigned nrings;            /* ring connections of this worker */
    atomic_uint active;         /* of those, with a request in the last ACTIVE_NS */
    struct memd_conn *conns;
    void *store;                /* memd_store.c's state for this worker; owner: memd_store.c */
};

struct dmce_memd {
    dmce_memd_config_t cfg;
    dmce_layout_t layout;
    uint32_t block_first, block_last;
    uint64_t block_data_bytes;  /* usable data bytes of one block */
    uint64_t capacity;          /* block_data_bytes * max_blocks */
    int numa_node;
    int listen_fd;
    int lock_fd;
    char sock_path[DMCE_CFG_STRMAX + 32];
    char lock_path[DMCE_CFG_STRMAX + 32];
    char shm_prefix[2 * DMCE_CFG_STRMAX + 64]; /* shm_dir "/dmce." uid "." cluster ".m" id "." */
    struct memd_table *table;   /* RCU-protected */
    pthread_mutex_t grow_lock;
    pthread_mutex_t sess_lock;
    struct memd_session *sessions;
    uint32_t next_session_id;
    uint64_t committed;         /* sum of max(reserved, used), under sess_lock */
    uint64_t nsessions, norphans;
    atomic_uint_fast64_t clients;
    atomic_uint_fast64_t stat[DMCE_STAT_COUNT_];
    atomic_int stop;
    uint64_t start_ms;
    unsigned ncpus;             /* CPUs this daemon may run on */
    atomic_uint spinning;       /* workers polling their rings right now */
    /* The prefault thread and its queue of new blocks (under pf_lock). */
    pthread_t pf_thread;
    int pf_on;
    pthread_mutex_t pf_lock;
    pthread_cond_t pf_cond;
    struct memd_block *pf_queue;
    atomic_uint_fast64_t pf_pending; /* bytes not yet prefaulted */
    int nworkers;
    struct memd_worker workers[DMCE_MEMD_MAX_WORKERS];
};

#define STAT_ADD(m, k, v) atomic_fetch_add_explicit(&(m)->stat[k], (v), memory_order_relaxed)

/* ---- shared helpers (memd_server.c) ---- */

/* The Block ID Lookup Table; call inside rcu_read_lock(). */
struct memd_table *memd_table_get(struct dmce_memd *m);

/*
 * Resolve a DMCE address to a block of this daemon and a cell, inside
 * rcu_read_lock(): DMCE_ENULLADDR, DMCE_ENOSERVER, DMCE_ENOBLOCK. The block
 * stays mapped until the daemon stops.
 */
int memd_resolve(struct dmce_memd *m, dmce_addr_t addr, struct memd_block **b, uint64_t *cell);

/*
 * Append a response header for request `req` with `status` and `len`
 * payload bytes to the connection's output; returns where the payload goes
 * (write exactly len bytes there), or NULL when out of memory (the
 * connection is then closed).
 */
uint8_t *memd_reply_begin(struct memd_conn *c, const dmce_msmp_hdr_t *req, int status,
                          uint32_t len);

/* An error response (no payload), counted in the stats. */
void memd_reply_error(struct dmce_memd *m, struct memd_conn *c, const dmce_msmp_hdr_t *req,
                      int err);

/* ---- the session store's operations (memd_store.c) ---- */

/*
 * Handle c->h if it is a store operation (payload p, len bytes): answer it
 * and return 1; return 0 for any other op. Runs on the connection's worker.
 */
int memd_store_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len);

/* Release what the store operations keep for worker w (its table handles). */
void memd_store_worker_fini(struct memd_worker *w);

#endif /* DMCE_RUNTIME_MEMD_INTERNAL_H */
