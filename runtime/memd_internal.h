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

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "memd_server.h"
#include "msmp.h"
#include "msmp_admin.h"
#include "msmp_conn.h"
#include "util.h"
#include "msmp_io.h"
#include "transport_ring.h"
#include "turns.h"

#define DMCE_MEMD_BATCH 16
/* Bytes asked of one recv(); the input buffer grows beyond it only for a large frame. */
#define DMCE_MEMD_IN_CHUNK (64u << 10)
/* Stop reading a client's requests while this much of its output is unsent. */
#define DMCE_MEMD_OUT_HIGH (256u << 10)
#define DMCE_MEMD_MAX_WORKERS 64

/* A block's role on this daemon. */
enum memd_role {
    MEMD_PRIMARY = 0, /* the block: clients use it here */
    MEMD_MIRROR = 1,  /* a copy kept for the daemon that holds the primary */
};

/* Chunks of a block that a write and the copy to a new mirror serialize on. */
#define MEMD_CHUNK (64u << 10)
#define MEMD_STRIPES 64u
#define MEMD_MIRROR_THREADS 2u /* mirroring threads: see struct dmce_memd */
#define MEMD_SPARES_MAX 16     /* most spare_blocks */

/* The mirror of one of this daemon's primary blocks, as the primary sees it. */
enum memd_mirror_state {
    MEMD_MIRROR_COPYING = 1, /* the block is being copied into it; writes go to both */
    MEMD_MIRROR_SYNCED = 2,  /* a full copy; every change goes to both */
};

struct memd_mirror {
    uint32_t daemon_id;            /* who holds the copy */
    char peer[DMCE_CFG_STRMAX];    /* its socket */
    int fd;                        /* its object; owner: this struct */
    void *base;                    /* our mapping of it, as large as the block */
    atomic_int state;              /* enum memd_mirror_state */
    atomic_uint_fast64_t copied;   /* bytes copied so far (progress) */
    uint64_t to_copy;              /* bytes the copy covers (up to the high-water mark) */
};

/* A block to copy to a new mirror (the mirroring thread's queue, under mr_lock). */
struct memd_mirror_job {
    struct memd_mirror_job *next;
    uint32_t block;
    uint32_t peer;
    char path[DMCE_MSMP_PATH_MAX + 1];
};

struct memd_block {
    uint32_t id;
    int fd;          /* owner: this struct; closed at shutdown */
    void *base;      /* mapping of the whole block */
    uint64_t size;
    pthread_mutex_t lock; /* serializes allocator changes (and a copy to a new mirror) */
    char name[2 * DMCE_CFG_STRMAX + 96]; /* shm_prefix + "b" + block ID */
    struct memd_block *prefault_next; /* queue of blocks waiting for the prefault thread */
    struct memd_block *retired_next;  /* m->retired: out of the table, to destroy */
    atomic_int role;           /* enum memd_role; changed by promote under grow_lock */
    uint32_t primary_daemon;   /* MEMD_MIRROR: the daemon that holds the primary */
    pid_t primary_pid;         /* MEMD_MIRROR: the process that asked for it (0: unknown) */
    uint64_t primary_conn;     /* MEMD_MIRROR: serial of the connection it asked on */
    /*
     * MEMD_PRIMARY: the mirror this daemon keeps in step, or NULL. Set and
     * cleared under `lock`; read by writers under their chunk's stripe.
     * Owner: this block.
     */
    struct memd_mirror *_Atomic mirror;
    /*
     * 1 while memd_mirror_attach asks a peer for a copy and fills it: one
     * attach at a time per block (a new block's own attach and a
     * dispatcher's re-mirror job may come together; the peer replaces a
     * copy its primary asks for again, so a second attach would pull the
     * first one's copy from under it).
     */
    atomic_int attaching;
    /*
     * 1: the mirror's holder is gone (the dispatcher said so: it died, or
     * it drains). The copy is still kept in step, as when it had a holder,
     * so that a new holder can take the object over as it is (mirror_adopt)
     * instead of a copy being made; for mirror_keep_ms at most
     * (memd_mirror_tick, from mirror_gone_ms). Set and cleared under `lock`
     * and every stripe. Nothing counts such a copy as a mirror: not the
     * stats, not the blocks report, not a move.
     */
    atomic_int mirror_gone;
    atomic_uint_fast64_t mirror_gone_ms;
    pthread_mutex_t stripes[MEMD_STRIPES]; /* chunk i: stripes[i % MEMD_STRIPES] */
    /*
     * Live migration (memd_migrate.c). frozen: handed off to another
     * daemon; requests get DMCE_EMOVING, the allocator is not touched
     * (set under b->lock, every stripe, mr_lock and pf_lock). handed_off:
     * memd_block_destroy must not unlink the object (the move committed and
     * it is the new owner's, or its name was removed already). frozen_ns:
     * when it froze.
     */
    atomic_int frozen;
    int handed_off;
    int unpublished; /* made by memd_block_create, not yet in the table (memd_spare.c counts it) */
    uint64_t frozen_ns;
    /*
     * Bumped after every allocator change (b->lock held, in the
     * memd_mirror_after_* hooks): a backup pass that saw it unchanged saw
     * one allocator state (memd_backup.c).
     */
    atomic_uint_fast64_t alloc_gen;
};

/*
 * The Block ID Lookup Table. by_id is indexed by block ID over the whole
 * ID space of the layout (a daemon holds mirrors and promoted copies of
 * other daemons' IDs); list holds the same blocks compactly, for scans.
 * Immutable once published: a change copies it under grow_lock, publishes
 * the copy (rcu_assign_pointer) and frees the old one after a grace period.
 */
struct memd_table {
    uint32_t nids;               /* 1 << block bits of the layout */
    uint32_t count;              /* blocks held (primaries and mirrors) */
    struct memd_block **list;    /* [count], storage after by_id */
    struct memd_block *by_id[];  /* [nids] */
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
    uint64_t serial;            /* order of acceptance: 1, 2, ... (m->conn_serial) */
    pid_t pid;
    uid_t uid;
    struct memd_worker *w;
    struct memd_session *sess;  /* under sess_lock for the pointer's target */
    dmce_msmp_hdr_t h;          /* header of the request being handled */
    dmce_inbuf_t in;            /* received bytes, not yet handled */
    dmce_outbuf_t out;          /* responses, not yet sent */
    int closing;                /* close once out is flushed */
    int held;                   /* a client request waits for the daemon's start to end */
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
    int counted;                /* among its worker's w->active at the last ring pass */
    uint64_t partial_ms;        /* since when part of a frame waits for the rest (0: none) */
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
    dmce_ratelimit_t refuse_rl; /* "refused connection" warnings: one a second */
    uint64_t next_frame_check_ms; /* half-sent frames: next look (frame_check) */
    dmce_spin_adapt_t spin;       /* how long this worker polls its rings now (ring.h) */
    /* CPU turns (turns.h): while ring clients and workers outnumber the CPUs */
    int seat;                    /* this worker's seat on m->turns; -1 = none */
    int crowded;                 /* serve ring clients in turns now */
    unsigned nactive;            /* its ring clients that asked lately or wait (rings_service) */
    int token;                   /* holds a turn token */
    struct memd_conn *turn;      /* the ring client whose turn it is (crowded, token) */
    struct memd_conn *turn_last; /* the last one that had a turn: the next goes on from it */
    uint64_t turn_start_ns, turn_end_ns, token_end_ns, next_crowd_ns;
    cpu_set_t cpus;    /* the worker's own CPUs (its daemon's node) */
    int moved;         /* runs off its turn client's CPU (turn_place) */
    uint64_t yield_ns; /* holding a token: when it last yielded the CPU */
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
    /*
     * Serializes table_grow as a whole, including the request to the
     * mirror peer, which is made without grow_lock: two daemons growing at
     * once each ask the other for a mirror (mirror_create takes the
     * peer's grow_lock), so holding grow_lock across it would deadlock them.
     */
    pthread_mutex_t grow_serial;
    pthread_mutex_t sess_lock;
    struct memd_session *sessions;
    uint32_t next_session_id;
    uint64_t committed;         /* sum of max(reserved, used), under sess_lock */
    uint64_t nsessions, norphans;
    /*
     * ThreadSanitizer only (util.h DMCE_TSAN_*): memory a client freed may
     * come back from malloc or be formatted as a store while another
     * worker last touched it for an earlier store operation. The client
     * finished with it (got the replies) before freeing it, an order that
     * passes through the client process: malloc, and every store
     * operation, acquire this before and release it after.
     */
    char reuse_order;
    /*
     * By block ID, 1: this daemon handed that block off (a move). Without a
     * directory answer table_grow does not take such an ID again: the block
     * lives on elsewhere. Under grow_lock; NULL until the first move.
     */
    uint8_t *moved_away;
    /*
     * Accepting, one worker at a time: a connection that comes when the
     * daemon is out of descriptors is accepted on the spare (an fd on
     * /dev/null given up for the moment) and closed at once. Under the
     * lock, so that another worker's accept cannot take the spare's number
     * meanwhile and leave no spare for the next one (connections would then
     * wait in the backlog until descriptors come back).
     */
    pthread_mutex_t accept_lock;
    int spare_fd; /* under accept_lock; -1: lost, taken back at the next accept */
    atomic_uint_fast64_t clients;
    atomic_uint_fast64_t conn_serial; /* the last memd_conn.serial given */
    atomic_uint_fast64_t stat[DMCE_STAT_COUNT_];
    atomic_int stop;
    /*
     * Set while the daemon starts with its workers already serving: the
     * dispatcher, peers and admin tools are answered (a long recovery must
     * not look like a stall), client requests wait (held) until the blocks
     * are back and the initial ones made.
     */
    atomic_int starting;
    uint64_t start_ms;
    unsigned ncpus;             /* CPUs this daemon may run on */
    dmce_turns_t *turns;        /* the runtime dir's CPU turns board; NULL = no turns */
    atomic_uint spinning;       /* workers polling their rings right now */
    /* The prefault thread and its queue of new blocks (under pf_lock). */
    pthread_t pf_thread;
    int pf_on;
    pthread_mutex_t pf_lock;
    pthread_cond_t pf_cond;
    struct memd_block *pf_queue;
    struct memd_block *pf_current; /* the block being prefaulted (under pf_lock) */
    /* Blocks out of the table, to destroy on the main thread (memd_retired_destroy; pf_lock). */
    struct memd_block *retired;
    atomic_uint_fast64_t pf_pending; /* bytes not yet prefaulted */
    /*
     * Mirroring (memd_mirror.c): jobs that copy a block to a new mirror run
     * on MEMD_MIRROR_THREADS threads, one job each at a time (one asks the
     * peer for its copy, which allocates it, while the other copies);
     * connections to peer daemons are cached by socket path (under
     * peer_lock).
     */
    struct memd_mirror_thread {
        struct dmce_memd *m;
        pthread_t thread;
        uint32_t current; /* the block it copies now, 0 for none (under mr_lock) */
    } mr_threads[MEMD_MIRROR_THREADS];
    unsigned mr_on; /* threads started */
    pthread_mutex_t mr_lock;
    pthread_cond_t mr_cond;
    struct memd_mirror_job *mr_jobs;
    pthread_mutex_t peer_lock;
    struct memd_peer *peers;
    uint64_t mirror_bytes;       /* data bytes held as mirrors (under sess_lock) */
    /*
     * The dispatcher (memd_disp.c): a connection (under disp_lock, one
     * request at a time), the member-pulse thread, what registration said.
     */
    pthread_mutex_t disp_lock;
    dmce_mconn_t disp;
    char disp_path[DMCE_CFG_STRMAX + 32];
    int disp_mode;              /* 0 none, 1 auto (if it exists), 2 named */
    pthread_t hb_thread;
    int hb_on;
    pthread_mutex_t hb_lock;
    pthread_cond_t hb_cond;
    atomic_int registered;      /* the dispatcher knows us now */
    atomic_int mirroring;       /* the cluster mirrors new blocks */
    atomic_uint hb_ms;          /* member pulse interval */
    uint32_t hb_seq;
    uint64_t settle_next_ms;    /* memd_migrate_tick: next look at frozen blocks (main thread) */
    /*
     * Spare block objects (memd_spare.c, config spare_blocks): unnamed,
     * allocated objects of block_size that memd_block_create names instead
     * of allocating one. Under spare_lock (after grow_lock); nblocks is the
     * table's count, kept by memd_spare_blocks_changed.
     */
    pthread_t spare_thread;
    atomic_int spare_on; /* the thread runs: memd_spare_take may find spares */
    pthread_mutex_t spare_lock;
    pthread_cond_t spare_cond;
    int spares[MEMD_SPARES_MAX];
    unsigned nspares;
    int spare_making; /* the thread makes one now */
    int spare_refill; /* a block was made since the pool was last full: make spares */
    /*
     * Given up (a block's slot, spares turned off): the thread closes them.
     * At most every spare, the one being made and the one a block maker
     * holds (makers hold grow_lock: one at a time).
     */
    int spare_drop[MEMD_SPARES_MAX + 2];
    unsigned ndrop;
    int spare_off; /* the directory cannot have spares */
    int spare_max; /* spare_blocks, at most MEMD_SPARES_MAX */
    atomic_uint nblocks;
    unsigned unpublished; /* blocks made and not yet in the table: their slots are taken */
    /* Backups (memd_backup.c); owner: that file. recovering: keep the backed-up ID range. */
    struct memd_backup *bk;
    int recovering;
    int nworkers;
    struct memd_worker workers[DMCE_MEMD_MAX_WORKERS];
};

#define STAT_ADD(m, k, v) atomic_fetch_add_explicit(&(m)->stat[k], (v), memory_order_relaxed)
#define STAT_SET(m, k, v) atomic_store_explicit(&(m)->stat[k], (v), memory_order_relaxed)

/* ---- shared helpers (memd_server.c) ---- */

/* The Block ID Lookup Table; call inside rcu_read_lock(). */
struct memd_table *memd_table_get(struct dmce_memd *m);
/* The directory the block objects live in: shm_dir, or /dev/shm (POSIX shm). */
const char *memd_obj_dir(const struct dmce_memd *m);
/* The filesystem path of object `name` (a block's name, b->name). 0 or -ENAMETOOLONG. */
int memd_obj_path(const struct dmce_memd *m, const char *name, char *buf, size_t len);
/*
 * The prefix of every object name of daemon `daemon` of this cluster
 * ("DIR/dmce.UID.CLUSTER.mID."; m->shm_prefix for our own). 0 or
 * -ENAMETOOLONG.
 */
int memd_daemon_prefix(const struct dmce_memd *m, uint32_t daemon, char *buf, size_t len);
/* Block IDs of the layout: every table's nids. */
uint32_t memd_nids(const struct dmce_memd *m);

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

/*
 * Send descriptor fd (a dup of it) with the response that is about to be
 * begun with memd_reply_begin: on the socket with that frame, or for a ring
 * connection ahead of it on the socket. 0 or -errno.
 */
int memd_reply_fd(struct dmce_memd *m, struct memd_conn *c, int fd);
/* The same with n (1 or 2) descriptors. */
int memd_reply_fds(struct dmce_memd *m, struct memd_conn *c, const int *fds, unsigned n);

/* An error response (no payload), counted in the stats. */
void memd_reply_error(struct dmce_memd *m, struct memd_conn *c, const dmce_msmp_hdr_t *req,
                      int err);

/*
 * Resolve a DMCE address to a block this daemon serves (a primary), inside
 * rcu_read_lock(): memd_resolve and, for a mirror copy, DMCE_ENOBLOCK.
 * memd_resolve itself also finds mirror copies (peer operations).
 */
int memd_resolve_primary(struct dmce_memd *m, dmce_addr_t addr, struct memd_block **b,
                         uint64_t *cell);

/*
 * Create a block object with ID `id` and `size` bytes (fallocated,
 * mapped, on the daemon's NUMA node). format: 1 to format it as an empty
 * block, 0 to leave it zero (a mirror, to be filled by its primary).
 * Caller holds grow_lock; the block is not published.
 */
int memd_block_create(struct dmce_memd *m, uint32_t id, uint64_t size, int format,
                      struct memd_block **out);

/*
 * A block made of an existing object (a live migration hands it over):
 * map fd (owner: the block from now on, even on failure), check it is at
 * least `size` bytes, bind it to the daemon's NUMA node (moving pages that
 * can be moved). Caller holds grow_lock; the block is not published.
 */
int memd_block_from_fd(struct dmce_memd *m, uint32_t id, int fd, uint64_t size,
                       struct memd_block **out);

/* The object name of block `id` of this daemon. */
void memd_block_name(const struct dmce_memd *m, uint32_t id, char *out, size_t cap);

/* Remove an object by name (a file in shm_dir, or a POSIX shm name). */
int memd_obj_unlink(const struct dmce_memd *m, const char *name);

/* ---- spare block objects (memd_spare.c) ---- */

/*
 * Size fd to size bytes and allocate them all (ftruncate, fallocate): 0,
 * DMCE_ENOMEM (the filesystem is full), -EOPNOTSUPP (no fallocate there;
 * never logged), or another negative errno. what names the object in the
 * log; NULL: nothing logged (spares, made quietly).
 */
int memd_obj_size(const struct dmce_memd *m, int fd, uint64_t size, const char *what);
/* Init and destroy the lock and condition (before start, after stop). */
void memd_spare_init(struct dmce_memd *m);
void memd_spare_fini(struct dmce_memd *m);
/* Start the spare thread (if spare_blocks > 0); stop it and free the spares. */
int memd_spare_start(struct dmce_memd *m);
void memd_spare_stop(struct dmce_memd *m);
/*
 * Called first by every block maker: takes the new block's slot (then
 * memd_spare_created when the block is made, or memd_spare_unreserve when
 * it is not), and a spare for an object of size bytes named name (a block
 * name): its descriptor, sized and allocated, or -1: none (make the object
 * anew). May wait for the spare being made. Caller holds grow_lock.
 */
int memd_spare_take(struct dmce_memd *m, uint64_t size, const char *name);
void memd_spare_unreserve(struct dmce_memd *m);
/*
 * The table now holds nblocks blocks, added (or NULL) among them (grow_lock
 * held): spares give up the slots they took.
 */
void memd_spare_blocks_changed(struct dmce_memd *m, uint32_t nblocks, struct memd_block *added);
/*
 * A block memd_block_create made keeps the slot memd_spare_take took until
 * it is published (memd_spare_blocks_changed) or destroyed
 * (memd_spare_forget), so that no spare is made for it meanwhile
 * (b->unpublished says it is counted); made, it asks for the next spare.
 */
void memd_spare_created(struct dmce_memd *m, struct memd_block *b);
void memd_spare_forget(struct dmce_memd *m, struct memd_block *b);

/* Unmap, close, unlink (unless handed off) and free a block that is no longer published. */
void memd_block_destroy(struct dmce_memd *m, struct memd_block *b);

/*
 * Usage of block b without waiting: its allocator lock may be held for a
 * long time (a copy to a new mirror); then the header's counters are read
 * as they are and largest_free is 0.
 */
void memd_block_usage_nowait(struct memd_block *b, dmce_block_usage_t *u);

/* User bytes in live allocations, and free data bytes (blocks and room for more). */
void memd_usage(struct dmce_memd *m, uint64_t *used, uint64_t *free_bytes);

/* Publish a table with b added / removed. grow_lock held; waits a grace period. */
int memd_table_add_locked(struct dmce_memd *m, struct memd_block *b);
int memd_table_remove_locked(struct dmce_memd *m, struct memd_block *b);

/* Sessions (under sess_lock): find by ID; change reserved/used keeping the totals exact. */
struct memd_session *memd_sess_by_id_locked(struct dmce_memd *m, uint32_t id);
void memd_sess_account_locked(struct dmce_memd *m, struct memd_session *s, uint64_t reserved,
                              uint64_t used);
/* A session with no connection (its client is away): kept for grace_ms. sess_lock held. */
struct memd_session *memd_sess_orphan_locked(struct dmce_memd *m, uint32_t id);

/*
 * Test hook: when the environment variable `env` holds a number of ms
 * (1..60000), log `what` and sleep that long. Tests use it to hit a
 * moment (a move under way, a recovery under way) with a kill or a client.
 */
void memd_test_pause(const char *env, const char *what);

/* ---- mirroring (memd_mirror.c) ---- */

/*
 * Write src to [cell, cell+len) of primary block b, and of its mirror if it
 * has one, chunk by chunk under the stripe locks; verify (seed 002
 * FIG. 16). 0 or -EIO (what was read back differs: a concurrent writer or a
 * bad page). Inside rcu_read_lock().
 */
int memd_block_write(struct memd_block *b, uint64_t cell, const void *src, uint64_t len);

/* Copy [cell, cell+len) of b to its mirror (persist). Inside rcu_read_lock(). */
void memd_block_persist(struct memd_block *b, uint64_t cell, uint64_t len);

/*
 * After an allocator change on primary b (b->lock held), do the same on
 * its mirror: the copies are identical, so the results must be too; a
 * difference drops the mirror (logged; the dispatcher re-mirrors). Every
 * allocator change on a primary comes here: it also bumps b->alloc_gen.
 */
void memd_mirror_after_alloc(struct dmce_memd *m, struct memd_block *b, uint64_t size,
                             uint32_t owner, uint64_t offset);
void memd_mirror_after_free(struct dmce_memd *m, struct memd_block *b, uint64_t offset);
void memd_mirror_after_free_owner(struct dmce_memd *m, struct memd_block *b, uint32_t owner,
                                  int freed);

/*
 * Mirroring operations (persist, mirror_create, mirror_start, promote,
 * drop, blocks): answer c->h and return 1, or 0 for any other op.
 */
int memd_mirror_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len);

/*
 * One request to another daemon at `path` over a cached connection (made
 * again once if the peer restarted), with up to maxfds descriptors in the
 * response (fds may be NULL when maxfds is 0).
 */
int memd_peer_rpc(struct dmce_memd *m, const char *path, uint16_t op, const void *p, size_t l,
                  void *resp, size_t cap, size_t *rlen, int *fds, unsigned maxfds,
                  unsigned *nfds);

/* A block's allocations by owner (o[0..n), free() it), and their totals. */
struct memd_tally {
    dmce_adm_owner_t *o;
    size_t n, cap;
    uint64_t allocs, bytes;
};
/* Add allocs allocations of `bytes` in all for owner: 0 or -ENOMEM. */
int memd_tally_add(struct memd_tally *t, uint32_t owner, uint64_t bytes, uint64_t allocs);
/* Count b's allocations into t (takes b->lock): 0 or DMCE_ECORRUPT, -ENOMEM. */
int memd_block_tally(struct memd_block *b, struct memd_tally *t);
/* Add (sign > 0) or take away (sign < 0) t to its owners' sessions, as memd_sessions_take. */
int memd_sessions_apply(struct dmce_memd *m, const struct memd_tally *t, int sign);

/*
 * Account the allocations of b to their owners' sessions: sign > 0 adds
 * them (creating orphaned sessions for owners not here, as a promoted or
 * adopted block needs), sign < 0 takes them away (a block handed off).
 * Counts allocations, bytes and owners. Takes b->lock and sess_lock.
 */
int memd_sessions_take(struct dmce_memd *m, struct memd_block *b, int sign, uint64_t *allocs,
                       uint64_t *bytes, size_t *owners);

/* Start / stop the mirroring threads; release mirrors and peer connections. */
int memd_mirror_start(struct dmce_memd *m);
void memd_mirror_stop(struct dmce_memd *m);
/* Block `block` is queued or being copied to a new mirror (mr_lock held). */
int memd_mirror_busy_locked(const struct dmce_memd *m, uint32_t block);

/*
 * A new block that is not published after all (memd_table_add failed): its
 * mirror, if it got one, is dropped on the peer and forgotten here. No
 * event: the dispatcher never heard of the block. Nobody else uses b.
 */
void memd_mirror_abandon(struct dmce_memd *m, struct memd_block *b);
/*
 * Attach a mirror of primary block b on the daemon at path (id peer). If b
 * keeps a copy whose holder is gone (memd_block.mirror_gone), the peer takes
 * that object over as it is: 1, *copied = the bytes in use, none copied.
 * Else (or if the peer cannot take it) the peer creates a new object,
 * which is mapped, published and filled with b (writes go on meanwhile;
 * mallocs and frees wait): 0, *copied = the bytes copied. An error leaves
 * the block unmirrored (logged). Not under b->lock; may block on the peer.
 */
int memd_mirror_attach(struct dmce_memd *m, struct memd_block *b, uint32_t peer, const char *path,
                       uint64_t *copied);
/* Drop the kept copies (memd_block.mirror_gone) older than mirror_keep_ms. From the daemon's tick.
 */
void memd_mirror_tick(struct dmce_memd *m);
/* b's kept copy (if any) is no longer kept: its handover name goes. The caller frees the mirror. */
void memd_mirror_forget_kept(struct dmce_memd *m, struct memd_block *b);
/* Drop b's kept copy, if it has one (b->lock held): a block that moves leaves it. */
void memd_mirror_drop_kept_locked(struct dmce_memd *m, struct memd_block *b);

/* b's mirror, if it has a holder (a kept copy whose holder is gone is not one); else NULL. */
static inline struct memd_mirror *memd_live_mirror(struct memd_block *b)
{
    return atomic_load(&b->mirror_gone) ? NULL : atomic_load(&b->mirror);
}

/* ---- the dispatcher (memd_disp.c) ---- */

/*
 * Before the first block: find the dispatcher (dispatcher setting) and
 * register: it assigns this daemon's block ID range (m->block_first/last)
 * and says whether the cluster mirrors. With no dispatcher, the daemon
 * runs alone on its configured range and registers if one appears later.
 * Starts the member-pulse thread. 0 or an error (a named dispatcher that
 * refuses us).
 */
int memd_disp_start(struct dmce_memd *m);
void memd_disp_stop(struct dmce_memd *m);

/*
 * Tell the dispatcher about a block: queued, sent by the pulse thread at
 * once (best effort: the next registration reports all).
 */
void memd_disp_event(struct dmce_memd *m, uint32_t block, uint32_t event, uint32_t peer,
                     uint64_t bytes);
/*
 * Send the queued events now, from the caller's thread (not under
 * grow_lock: a round trip). A new block is known to the dispatcher before
 * any allocation in it is handed out; if the daemon dies after that, the
 * failover knows the block.
 */
void memd_disp_flush_events(struct dmce_memd *m);

/*
 * A new block, not published yet: if the cluster mirrors, ask the
 * dispatcher for a peer and attach a mirror there before any allocation
 * is handed out. 0 (mirrored, or no peer: a single copy, logged), or an
 * error. Returns the mirror's daemon ID, or 0 for a single copy.
 */
int memd_disp_mirror_new_block(struct dmce_memd *m, struct memd_block *b);

/* ---- the session store's operations (memd_store.c) ---- */

/*
 * Handle c->h if it is a store operation (payload p, len bytes): answer it
 * and return 1; return 0 for any other op. Runs on the connection's worker.
 */
int memd_store_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len);

/* ---- memd_migrate.c: live migration (docs/migration.md), the sessions list ---- */

/* Handle sessions, handoff, adopt, release, reparent; 0 if c->h.op is not one of them. */
int memd_migrate_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len);

/*
 * Periodic (dmce_memd_tick): a block handed off and left frozen for long
 * (the dispatcher and the target died mid-move) is settled by the
 * directory: served again if it still names this daemon, forgotten if it
 * names another.
 */
void memd_migrate_tick(struct dmce_memd *m);

/* Destroy the blocks queued in m->retired (the tick; and at stop). */
/*
 * b is out of the table and past a grace period: its object's name goes
 * now; its pages are freed when it is unmapped and closed, which takes long
 * for a big object (a GiB: ~0.3 s), so not under grow_lock and not before
 * an answer someone waits for: the main tick destroys it
 * (memd_retired_destroy).
 */
void memd_block_retire(struct dmce_memd *m, struct memd_block *b);
void memd_retired_destroy(struct dmce_memd *m);

/* The directory's primary of `block` (0: not in it). -ENOTCONN without a dispatcher. */
int memd_disp_block_primary(struct dmce_memd *m, uint32_t block, uint32_t *primary);

/* ---- memd_backup.c: block backups and recovery (docs/backup.md) ---- */

/*
 * Before registering with the dispatcher: read the backup table of this
 * daemon's set (backup_dir/memd-ID), refuse a set that is not ours (another
 * cluster, daemon, layout) or that recover = no would ignore, and keep
 * the block ID range it was written with. 0 or an error, logged.
 */
int memd_backup_load(struct dmce_memd *m);
/*
 * Once the (empty) block table exists, before the first new block and
 * before clients are served: with recover = yes, bring the backed-up
 * blocks back under their DMCE addresses (those the directory says live
 * elsewhere now are newer there: their backups are dropped); start the
 * backup thread (periodic backups every backup_interval_s). 0 or an error
 * with a log line (a corrupt or mismatched backup refuses to start).
 */
int memd_backup_start(struct dmce_memd *m);
/* Stop the backup thread (before blocks are destroyed). Safe if start never ran. */
void memd_backup_stop(struct dmce_memd *m);
/* Handle backup, backup_status, restore; 0 if c->h.op is not one of them. */
int memd_backup_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len);
/*
 * A handoff wants block id (grow_lock held): -EBUSY if a backup copies it
 * now (the backup gives it up at once; ask again), else 0.
 */
int memd_backup_busy(struct dmce_memd *m, uint32_t id);
/* Block id left this daemon (moved away): its backups here go (by the backup thread). */
void memd_backup_forget(struct dmce_memd *m, uint32_t id);

/*
 * The directory's primary daemon of every block ID (0: not live), from
 * the dispatcher: *out is a malloc()ed array of m->table->nids entries
 * (the layout's block IDs). -ENOTCONN without a dispatcher.
 */
int memd_disp_primaries(struct dmce_memd *m, uint32_t nids, uint16_t **out);

/* Release what the store operations keep for worker w (its table handles). */
void memd_store_worker_fini(struct memd_worker *w);

#endif /* DMCE_RUNTIME_MEMD_INTERNAL_H */
