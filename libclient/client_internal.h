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

/* One memory daemon: its MSMP connection and what setup said. */
struct dmce_conn {
    pthread_mutex_t lock;  /* serializes requests on t */
    dmce_mconn_t t;        /* the transport (socket or rings); owner: this struct */
    int set_up;            /* a session exists on this daemon */
    dmce_msmp_setup_resp_t info;
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
    unsigned n;
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

/* Index of the daemon whose block range holds block ID `block`, or DMCE_ENOBLOCK. */
int dmce__daemon_of_block(const struct dmce_client *c, uint32_t block);

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
