/*
 * client.h - libdmce, the Memory Client (seed 002, FIG. 7, FIG. 13-18).
 *
 * A dmce_client_t holds one MSMP connection per memory daemon it uses. The
 * daemons of a host are found in a runtime directory or named one by one.
 * When a dmce-dispatcher serves the runtime directory (its socket
 * dispatcher.sock is there), libdmce uses it (docs/dispatcher.md): its
 * policy picks the daemon of every malloc, its directory says which daemon
 * holds each block, and when a daemon dies the library waits for the
 * failover and sends the operation again to the block's mirror, now its
 * primary: the caller sees no error. Without a dispatcher, every
 * memd-*.sock in the directory is used, and an address's block ID falls in
 * one daemon's range. Server ID 0 means this host.
 *
 * Life of a client: dmce_connect -> dmce_setup (reserve memory) ->
 * dmce_malloc / dmce_write / dmce_read / dmce_free ... -> dmce_disconnect.
 * dmce_disconnect ends the sessions (every allocation of the session is
 * freed by the daemons) and frees the handle. A client whose process dies
 * without disconnecting loses its reservation at once; its allocations are
 * kept for the daemon's grace period (config `grace_ms`) so that a
 * restarted process can take them back with dmce_setup(DMCE_SETUP_REATTACH)
 * and the session token.
 *
 * Errors: every call returns 0 (or a count) on success and a negative
 * value on failure: a negative errno or a DMCE_E* code (dmce/error.h);
 * dmce_strerror() gives the message. A call that fails with an error about
 * its arguments (DMCE_EBADADDR, DMCE_ECROSSEND, ...) changed nothing.
 * DMCE_ECLOSED means the daemon's connection was lost; the session may be
 * re-established with DMCE_SETUP_REATTACH.
 *
 * Thread safety: a dmce_client_t may be used from several threads at once;
 * calls to the same daemon are serialized on that daemon's connection,
 * calls to different daemons run in parallel. Every call except
 * dmce_strerror may block on the socket (bounded by the client's
 * io_timeout_ms).
 */
#ifndef DMCE_CLIENT_H
#define DMCE_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <dmce/addr.h>
#include <dmce/error.h>
#include <dmce/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmce_client dmce_client_t;

/* A session token: a 128-bit secret that names a session for reattach. */
typedef struct dmce_token {
    uint8_t bytes[16];
} dmce_token_t;

#define DMCE_TOKEN_STRLEN 33 /* 32 hex digits + NUL */

#define DMCE_MAX_DAEMONS 64

/* Options for dmce_connect. Zero-initialize, then set what you need. */
typedef struct dmce_connect_opts {
    /*
     * Runtime directory of the local cluster: every "memd-*.sock" in it is
     * connected. Used when sockets is NULL. NULL means $DMCE_RUNTIME_DIR.
     */
    const char *runtime_dir;
    /* Or explicit socket paths (nsockets of them, at most DMCE_MAX_DAEMONS). */
    const char *const *sockets;
    size_t nsockets;
    /* Timeout for one request's round trip; 0 means 10000 ms. */
    unsigned io_timeout_ms;
    /* DMCE_CONNECT_* flags. */
    unsigned flags;
    /*
     * Memory Cache (dmce/map.h): bytes per window, a multiple of 4096; 0
     * means whole blocks on a 64-bit build, 64 MiB on a 32-bit one.
     */
    uint64_t window_size;
    /* Windows kept besides those held by dmce_map; 0 means 4096 (64-bit) or 8 (32-bit). */
    unsigned max_windows;
    /*
     * With a dispatcher: how long an operation whose daemon died waits for
     * the failover before it fails (with the daemon's error). 0 means 5000 ms.
     */
    unsigned failover_wait_ms;
} dmce_connect_opts_t;

enum dmce_connect_flags {
    /*
     * Never map blocks: every read and write is a message to the daemon
     * (out-of-process mode), and dmce_map fails with -ENOTSUP.
     */
    DMCE_CONNECT_NO_MAP = 1u << 0,
    /* Copies of remote memory are written back on dmce_flush, not at once. */
    DMCE_CONNECT_WRITE_BACK = 1u << 1,
    /*
     * Keep MSMP on the Unix socket. By default a local daemon's frames travel
     * through a pair of shared-memory rings (same frames, same errors; the
     * socket stays as the liveness signal), which spares the two scheduler
     * wake-ups of every socket round trip.
     */
    DMCE_CONNECT_NO_RING = 1u << 2,
    /* Ignore a dispatcher in the runtime directory: use every memd-*.sock in it. */
    DMCE_CONNECT_NO_DISPATCHER = 1u << 3,
    /*
     * Transparent mode (seed 002 FIG. 3): talk to the dispatcher only, which
     * forwards every request to the daemons (and fails over for the
     * client). Implies DMCE_CONNECT_NO_MAP and DMCE_CONNECT_NO_RING; the
     * session store's operations are not forwarded (-EOPNOTSUPP). One
     * more hop per request than direct mode.
     */
    DMCE_CONNECT_TRANSPARENT = 1u << 4,
};

/*
 * Connect to the daemons named by opts. On success *out owns the sockets
 * and must be released with dmce_disconnect. Errors: -EINVAL (bad opts,
 * unknown flags), -ENOENT (no daemon socket found), DMCE_ENODAEMON (a
 * dispatcher runs but no daemon is alive), -ECONNREFUSED and other
 * connect errors, -ENOMEM. Blocks while connecting.
 */
DMCE_API int dmce_connect(const dmce_connect_opts_t *opts, dmce_client_t **out);

/* Number of daemons this client is connected to. */
DMCE_API unsigned dmce_daemon_count(const dmce_client_t *c);

enum dmce_setup_flags {
    /* Accept less than the amount asked for (seed 002 FIG. 13). */
    DMCE_SETUP_PARTIAL = 1u << 0,
    /* Take back an orphaned session: token must be the old session's. */
    DMCE_SETUP_REATTACH = 1u << 1,
};

/*
 * Register with every daemon and reserve `amount` bytes in all, spread over
 * the daemons (each one's share limited by its free capacity). amount 0
 * reserves nothing: allocations then take unreserved memory as long as
 * there is any. Without DMCE_SETUP_PARTIAL, getting less than `amount` is
 * a failure (DMCE_ENOMEM) and nothing stays reserved; with it, *granted
 * (may be NULL) says how much was reserved. token may be NULL: a fresh
 * random token is made; with DMCE_SETUP_REATTACH it must be the token of
 * the session to take back (DMCE_ETOKEN if no daemon holds one).
 * DMCE_ESETUPDONE if already set up. With a dispatcher: the amount is a
 * floor (allocations may go beyond it while the cluster has room), and
 * DMCE_ENODAEMON when no daemon is alive.
 */
DMCE_API int dmce_setup(dmce_client_t *c, uint64_t amount, unsigned flags,
                        const dmce_token_t *token, uint64_t *granted);

/* The session token (after a successful dmce_setup). 0 or DMCE_ENOSETUP. */
DMCE_API int dmce_session_token(const dmce_client_t *c, dmce_token_t *out);

/* Token as 32 lowercase hex digits, and back (-EINVAL on bad text). */
DMCE_API int dmce_token_format(const dmce_token_t *t, char *buf, size_t len);
DMCE_API int dmce_token_parse(const char *text, dmce_token_t *out);

/*
 * Allocate `size` bytes (>= 1). The daemon is the one the dispatcher's
 * policy picks (one round trip to it), or without a dispatcher round robin
 * over the daemons; a daemon that is full or whose reservation for this
 * session is used up is skipped (automatic scalability). With mirroring,
 * the allocation exists in both copies when this returns. The bytes are
 * zeroed. *out gets the DMCE address of the first byte. Errors: -EINVAL
 * (size 0), DMCE_ENOSETUP, DMCE_ENOMEM (no daemon can hold it),
 * DMCE_EQUOTA (over the session's reservation on every daemon),
 * -EMSGSIZE (larger than any block), DMCE_ENODAEMON (none alive).
 */
DMCE_API int dmce_malloc(dmce_client_t *c, uint64_t size, dmce_addr_t *out);

/*
 * Same, but on daemon `daemon` (0 .. dmce_daemon_count()-1).
 */
DMCE_API int dmce_malloc_on(dmce_client_t *c, unsigned daemon, uint64_t size,
                            dmce_addr_t *out);

/*
 * Free the allocation that starts at addr. DMCE_EBADADDR if none does.
 * With a dispatcher, a free interrupted by its daemon's death is sent
 * again to the new primary (and is then 0 if the first one had landed).
 */
DMCE_API int dmce_free(dmce_client_t *c, dmce_addr_t addr);

/*
 * Copy len bytes starting at addr into buf. The range must lie inside one
 * live allocation (DMCE_EBADADDR, DMCE_ECROSSEND otherwise). Large reads
 * are split into frames by the library.
 */
DMCE_API int dmce_read(dmce_client_t *c, dmce_addr_t addr, void *buf, size_t len);

/*
 * Copy len bytes from buf to addr. Acknowledged only after the daemon has
 * copied and verified them, and with mirroring only once the mirror has
 * them too (writes then always travel to the daemon, even for mapped
 * blocks). Same address rules as dmce_read. A large write that fails part
 * way may have written a prefix.
 *
 * Failover (with a dispatcher): dmce_read, dmce_write and dmce_free whose
 * daemon dies are sent again to the block's new primary once the
 * dispatcher has promoted the mirror (within opts.failover_wait_ms);
 * DMCE_ELOST when the block had no mirror.
 */
DMCE_API int dmce_write(dmce_client_t *c, dmce_addr_t addr, const void *buf, size_t len);

/* What a daemon reports (MSMP stats). */
typedef struct dmce_stats {
    uint32_t daemon_id;
    int32_t numa_node;
    uint32_t pid;
    uint32_t block_first, block_last; /* block IDs the daemon may use */
    uint64_t blocks;          /* blocks created */
    uint64_t bytes_total;     /* capacity: data bytes of all blocks it may create */
    uint64_t bytes_reserved;  /* reserved by sessions */
    uint64_t bytes_used;      /* user bytes in live allocations */
    uint64_t bytes_free;      /* free data bytes in created blocks + uncreated capacity */
    uint64_t allocations;
    uint64_t clients;         /* connected */
    uint64_t sessions;        /* live sessions, including orphaned */
    uint64_t sessions_orphaned;
    uint64_t ops_setup, ops_malloc, ops_read, ops_write, ops_free, ops_disconnect, ops_stats;
    uint64_t ops_errors;
    uint64_t bytes_read, bytes_written;
    uint64_t ops_map;         /* map requests answered */
    uint64_t fds_sent;        /* block descriptors handed to clients */
    uint64_t prefaulted;      /* bytes of new blocks faulted in ahead of clients */
    uint64_t prefault_pending; /* bytes still to fault in */
    uint64_t ring_clients;    /* connections on the shared-memory ring transport */
    uint64_t mirrors;         /* blocks of this daemon with a mirror on another */
    uint64_t mirror_copies;   /* copies held here for other daemons' blocks */
    uint64_t mirror_bytes_copied; /* bytes copied into new mirrors, ever */
    uint64_t mirror_broken;   /* mirrors dropped (holder gone, or a copy that disagreed) */
    uint64_t ops_persist;
    uint64_t promoted;        /* copies promoted to primary after a daemon's death */
    uint64_t moved_in;        /* blocks taken over from another daemon (live migration) */
    uint64_t moved_out;       /* blocks handed to another daemon (live migration) */
    uint64_t backups;         /* block backups written to files (full images and deltas) */
    uint64_t backup_bytes;    /* bytes written to backup files */
    uint64_t backup_repasses; /* backups that read their block twice (mallocs during the first) */
    uint64_t restored;        /* blocks brought back from backup files (recovery, restore) */
    uint64_t starting;        /* 1 while the daemon starts (recovery, initial blocks): client requests wait */
    uint64_t spares;      /* spare block objects allocated ahead of need (config spare_blocks) */
    uint64_t spares_used; /* blocks and mirror copies made from a spare, ever */
    uint64_t ring_turns;  /* turns given to ring clients while they outnumbered the CPUs */
    uint64_t turn_wait_us;    /* time this daemon's workers waited for a turn token (us) */
    uint64_t
        mirrors_kept; /* blocks keeping the copy of a gone holder for a new one (mirror_keep_ms) */
    uint64_t mirror_adopted;  /* copies taken over from a gone holder, nothing copied, ever */
    uint64_t uptime_ms;       /* keep last: dmce_stats sums the fields before it */
} dmce_stats_t;

/*
 * Stats of daemon `daemon` (0 .. count-1). Works before setup.
 */
DMCE_API int dmce_daemon_stats(dmce_client_t *c, unsigned daemon, dmce_stats_t *out);

/*
 * Stats summed over all daemons (daemon_id, numa_node, pid, block range of
 * the first daemon).
 */
DMCE_API int dmce_stats(dmce_client_t *c, dmce_stats_t *out);

/* What the dispatcher reports (dmce_cluster_stats). */
typedef struct dmce_cluster_stats {
    uint64_t uptime_ms;
    uint64_t epoch;              /* directory epoch: bumped on every change */
    int mirroring;               /* 1: new blocks get a mirror */
    int warn_one_copy;           /* 1: mirroring wanted, but blocks have one copy (one daemon) */
    uint64_t daemons_alive, daemons_dead;
    uint64_t registrations;      /* daemons registered, ever (restarts included) */
    uint64_t deaths;             /* daemons found dead, ever */
    uint64_t blocks;             /* in the directory */
    uint64_t blocks_mirrored;    /* with two copies */
    uint64_t blocks_single;      /* with one copy (waiting for a mirror, or none possible) */
    uint64_t blocks_remirroring; /* a new mirror being filled */
    uint64_t blocks_lost;        /* primary died with no mirror, ever */
    uint64_t promotions;         /* mirrors promoted to primary, ever */
    uint64_t remirrors_started, remirrors_done;
    uint64_t remirror_bytes;     /* copied into new mirrors, ever (running copies included) */
                                 /* (remirrors_done includes remirrors_adopted, below) */
    uint64_t last_failover_ms;   /* death seen -> every block promoted, last time */
    uint64_t picks;              /* malloc placements answered */
    uint64_t sessions;           /* cluster-wide session IDs handed out */
    uint64_t forwarded;          /* requests forwarded in transparent mode */
    uint64_t moves;              /* blocks moved live to another daemon, ever */
    uint64_t moves_failed;       /* moves that failed (the block stayed where it was) */
    uint64_t last_move_us;       /* how long the last move took (writers paused less) */
    uint64_t remirrors_adopted;  /* re-mirrors that took over the copy a gone holder had, ever */
    uint64_t remirror_bytes_adopted; /* bytes in use of those blocks (none copied), ever */
} dmce_cluster_stats_t;

/*
 * The dispatcher's stats. -ENOTSUP when no dispatcher serves this client
 * (direct mode only), or its error.
 */
DMCE_API int dmce_cluster_stats(dmce_client_t *c, dmce_cluster_stats_t *out);

/* Index of the daemon holding addr, or DMCE_ENOBLOCK / DMCE_ENOSERVER. */
DMCE_API int dmce_daemon_of(const dmce_client_t *c, dmce_addr_t addr);

/* Address layout of the cluster (known after connect). */
DMCE_API dmce_layout_t dmce_client_layout(const dmce_client_t *c);

/*
 * End every session (the daemons free its allocations and reservation),
 * close the sockets and free c. c may be NULL. Returns 0 or the first
 * error a daemon reported; c is freed either way. A daemon found dead
 * (its connection closed) is no error: its sessions ended with it.
 */
DMCE_API int dmce_disconnect(dmce_client_t *c);

/*
 * Close the sockets without ending the sessions (as if the process died):
 * the daemons keep the allocations for their grace period. Frees c.
 */
DMCE_API void dmce_abandon(dmce_client_t *c);

#ifdef __cplusplus
}
#endif

#endif /* DMCE_CLIENT_H */
