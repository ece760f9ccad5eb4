/*
 * disp.c - libdmce's side of the dispatcher (docs/dispatcher.md): finding
 * it, the directory (which daemon holds each block's primary), picks for
 * malloc, the cluster-wide session ID, and waiting out a failover.
 *
 * Direct mode (FIG. 2): the client asks the dispatcher where to allocate
 * and where a block lives, then talks to the daemons itself. With no
 * dispatcher in the runtime directory everything here is skipped and
 * libdmce routes by the daemons' block ranges as before.
 *
 * The directory is cached in c->owner[] (block ID -> daemon ID of its
 * primary). It is fetched at connect and again whenever a daemon fails a
 * request in a way a failover explains (dmce__disp_retry): the connection
 * is gone, or the daemon no longer holds the block. Then the client waits,
 * bounded by failover_wait_ms, until the directory names a live primary
 * other than the one that failed, and the request is sent again there.
 *
 * Lock order: disp_lock, then a connection's lock (setup on a new daemon),
 * then map_lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"
#include "msmp_dispatch.h"
#include "util.h"

#define FAILOVER_WAIT_DEFAULT_MS 5000u

/* One request to the dispatcher, disp_lock held. */
static int disp_rpc_locked(struct dmce_client *c, uint16_t op, const void *p, size_t l,
                           void *resp, size_t cap, size_t *rlen)
{
    int r = dmce_mconn_rpc(&c->dconn, op, p, l, NULL, 0, resp, cap, rlen, NULL);
    /*
     * A connection that broke (the dispatcher restarted since our last
     * request) is made again once: the ops asked here (directory, pick,
     * session, stats) may be repeated without harm.
     */
    if (r == DMCE_ECLOSED)
        r = dmce_mconn_rpc(&c->dconn, op, p, l, NULL, 0, resp, cap, rlen, NULL);
    return r;
}

int dmce__conn_of_id(const struct dmce_client *c, uint32_t id)
{
    unsigned n = atomic_load(&c->n);
    for (unsigned i = 0; id && i < n; i++)
        if (atomic_load_explicit(&c->conn[i].id, memory_order_relaxed) == id)
            return (int)i;
    return DMCE_ENODAEMON;
}

/*
 * Fetch the directory, disp_lock held: learn new daemons (connecting to
 * them), mark dead ones, update the block owners, and forget opened blocks
 * whose primary moved. 0, or the dispatcher's error.
 */
static int refresh_locked(struct dmce_client *c)
{
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    /* every daemon the dispatcher ever saw (IDs up to 4095) and every block */
    size_t cap = dmce_disp_dir_size(4096, c->nblocks);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    int r = disp_rpc_locked(c, DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), buf, cap, &n);
    dmce_disp_dir_hdr_t h;
    if (r == 0)
        r = dmce_disp_dir_hdr_decode(buf, n, &h);
    if (r < 0) {
        free(buf);
        return r;
    }
    for (uint32_t i = 0; i < h.ndaemons; i++) {
        dmce_disp_daemon_t e;
        if (dmce_disp_daemon_decode(buf, n, i, &e) < 0)
            continue;
        int k = dmce__conn_of_id(c, e.id);
        if (k < 0) { /* the same socket under a new ID (a restart), or a new daemon */
            unsigned cn = atomic_load(&c->n);
            for (unsigned j = 0; j < cn && k < 0; j++)
                if (strcmp(c->conn[j].t.path, e.path) == 0)
                    k = (int)j;
            if (k >= 0)
                atomic_store(&c->conn[k].id, e.id);
        }
        if (k < 0 && e.state == DMCE_DISP_ALIVE) {
            k = dmce__add_daemon(c, e.path, e.id);
            if (k < 0)
                continue; /* full, or a bad path: the others still work */
        }
        if (k < 0)
            continue;
        if (e.state == DMCE_DISP_DEAD)
            atomic_store(&c->conn[k].t.dead, 1);
        atomic_store(&c->conn[k].alive, e.state == DMCE_DISP_ALIVE);
    }
    uint16_t *seen = calloc(c->nblocks, sizeof(*seen));
    if (!seen) {
        free(buf);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < h.nblocks; i++) {
        dmce_disp_block_t e;
        if (dmce_disp_block_decode(buf, n, i, &e) == 0 && e.block < c->nblocks)
            seen[e.block] = (uint16_t)e.primary;
    }
    for (uint32_t b = 0; b < c->nblocks; b++) {
        if (atomic_load_explicit(&c->owner[b], memory_order_relaxed) != seen[b])
            atomic_store_explicit(&c->owner[b], seen[b], memory_order_release);
        dmce__map_check_block(c, b, seen[b]); /* opened on an old primary: open it again */
    }
    free(seen);
    atomic_store(&c->dflags, h.flags);
    atomic_store(&c->epoch, h.epoch);
    free(buf);
    return 0;
}

int dmce__disp_refresh(struct dmce_client *c)
{
    pthread_mutex_lock(&c->disp_lock);
    int r = refresh_locked(c);
    pthread_mutex_unlock(&c->disp_lock);
    return r;
}

/* Daemons the directory last said were alive. */
static unsigned alive_count(struct dmce_client *c)
{
    unsigned alive = 0, n = atomic_load(&c->n);
    for (unsigned i = 0; i < n; i++)
        alive += atomic_load(&c->conn[i].alive);
    return alive;
}

int dmce__disp_connect(struct dmce_client *c, const char *dir, const dmce_connect_opts_t *opts)
{
    c->failover_wait_ms =
        opts && opts->failover_wait_ms ? opts->failover_wait_ms : FAILOVER_WAIT_DEFAULT_MS;
    pthread_mutex_init(&c->disp_lock, NULL);
    c->disp_lock_init = 1;
    char path[512];
    if (snprintf(path, sizeof(path), "%s/dispatcher.sock", dir) >= (int)sizeof(path))
        return 1;
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return 1;
    if (dmce_mconn_init(&c->dconn, path, c->io_timeout_ms, DMCE_MCONN_NO_RING) < 0)
        return 1;
    c->owner = calloc(c->nblocks, sizeof(c->owner[0]));
    if (!c->owner)
        return -ENOMEM;
    int r = dmce__disp_refresh(c);
    if (r == -ECONNREFUSED || r == DMCE_ECLOSED) {
        /* a socket left by a dispatcher that is gone: the daemons alone, as before */
        dmce_mconn_close(&c->dconn);
        free((void *)c->owner);
        c->owner = NULL;
        return 1;
    }
    if (r < 0)
        return r;
    c->disp = 1;
    return alive_count(c) ? 0 : DMCE_ENODAEMON;
}

void dmce__disp_fini(struct dmce_client *c)
{
    if (c->disp)
        dmce_mconn_close(&c->dconn);
    free((void *)c->owner);
    c->owner = NULL;
    if (c->disp_lock_init)
        pthread_mutex_destroy(&c->disp_lock);
}

int dmce__disp_session(struct dmce_client *c, uint32_t *id)
{
    uint8_t resp[DMCE_DISP_U32_RESP_SIZE];
    size_t n = 0;
    pthread_mutex_lock(&c->disp_lock);
    int r = disp_rpc_locked(c, DMCE_MSMP_OP_SESSION, NULL, 0, resp, sizeof(resp), &n);
    if (r == 0)
        r = dmce_disp_u32_decode(resp, n, id);
    if (r == 0 && !(*id & DMCE_SESSION_GLOBAL))
        r = -EPROTO;
    /* the daemons as they are now: setup goes to the live ones, and says so when none is */
    if (r == 0 && refresh_locked(c) == 0 && alive_count(c) == 0)
        r = DMCE_ENODAEMON;
    pthread_mutex_unlock(&c->disp_lock);
    return r;
}

/* The NUMA node this thread runs on (numa-local policy); -1 when unknown. */
static int32_t my_numa_node(void)
{
    const char *e = getenv("DMCE_CLIENT_NUMA_NODE"); /* tests with synthetic topologies */
    int64_t v;
    if (e && *e && dmce_parse_i64(e, &v) == 0 && v >= -1 && v < 1024)
        return (int32_t)v;
#ifdef SYS_getcpu
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) == 0)
        return (int32_t)node;
#endif
    return -1;
}

int dmce__disp_pick(struct dmce_client *c, uint64_t size, uint32_t exclude)
{
    dmce_disp_pick_t rq = {.size = size, .numa_node = my_numa_node(), .exclude = exclude};
    uint8_t p[DMCE_DISP_PICK_SIZE], resp[DMCE_DISP_U32_RESP_SIZE];
    dmce_disp_pick_encode(&rq, p);
    size_t n = 0;
    uint32_t id = 0;
    pthread_mutex_lock(&c->disp_lock);
    int r = disp_rpc_locked(c, DMCE_MSMP_OP_PICK, p, sizeof(p), resp, sizeof(resp), &n);
    if (r == 0)
        r = dmce_disp_u32_decode(resp, n, &id);
    int k = r == 0 ? dmce__conn_of_id(c, id) : r;
    if (r == 0 && k < 0 && refresh_locked(c) == 0) /* a daemon we have not met yet */
        k = dmce__conn_of_id(c, id);
    if (r == DMCE_ENOMEM) /* none could: learn which are alive (dmce_malloc: DMCE_ENODAEMON) */
        refresh_locked(c);
    pthread_mutex_unlock(&c->disp_lock);
    return k;
}

/* Errors a failover explains: the daemon is gone, or no longer holds the block. */
static int failover_error(int r)
{
    return r == DMCE_ECLOSED || r == -ECONNREFUSED || r == -ECONNRESET ||
           r == -EPIPE || r == -ETIMEDOUT || r == DMCE_ENOBLOCK || r == DMCE_ENODAEMON ||
           r == DMCE_EMOVING;
}

/*
 * A block being moved (DMCE_EMOVING): its new owner is named within about
 * a millisecond, so look again after 20, 40 .. 500 us, not milliseconds.
 */
static void pause_moving(struct dmce_retry *st)
{
    st->sleep_us = st->sleep_us ? DMCE_MIN(st->sleep_us * 2, 500u) : 20;
    struct timespec ts = {0, (long)st->sleep_us * 1000L};
    nanosleep(&ts, NULL);
}

/* Sleep before the next look at the directory: 1, 2, 4 .. 50 ms, never past the deadline. */
static void backoff(struct dmce_retry *st)
{
    uint64_t now = dmce_now_ms();
    st->sleep_ms = st->sleep_ms ? DMCE_MIN(st->sleep_ms * 2, 50u) : 1;
    uint64_t ms = now < st->deadline_ms ? DMCE_MIN((uint64_t)st->sleep_ms, st->deadline_ms - now) : 0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int dmce__disp_retry(struct dmce_client *c, dmce_addr_t addr, int *err, struct dmce_retry *st)
{
    int r = *err;
    if (!c->disp || !failover_error(r))
        return 0;
    dmce_addr_parts_t p;
    if (dmce_addr_decode(c->layout, addr, &p) < 0 || p.server != DMCE_SERVER_LOCAL ||
        p.block == 0 || p.block >= c->nblocks)
        return 0;
    if (!st->deadline_ms) {
        st->deadline_ms = dmce_now_ms() + c->failover_wait_ms;
        st->failed = atomic_load(&c->owner[p.block]);
        if (!st->failed) { /* routed by range: the daemon that answered */
            int i = dmce__daemon_of_block(c, p.block);
            st->failed = i >= 0 ? atomic_load(&c->conn[i].id) : 0;
        }
    }
    for (;;) {
        if (dmce__disp_refresh(c) < 0)
            return 0; /* no dispatcher to ask: the first error stands */
        uint16_t owner = atomic_load(&c->owner[p.block]);
        int k = owner ? dmce__conn_of_id(c, owner) : -1;
        if (k >= 0 && atomic_load(&c->conn[k].alive)) {
            if (owner != st->failed) {
                st->failed = owner; /* promoted elsewhere: try there at once */
                atomic_fetch_add(&c->st_failovers, 1);
                return 1;
            }
            if (r == DMCE_EMOVING) { /* a live move: the directory names the new owner soon */
                if (dmce_now_ms() >= st->deadline_ms)
                    return 0;
                pause_moving(st);
                return 1;
            }
            /*
             * The same daemon, and the dispatcher still thinks it alive: the
             * connection broke while the daemon lives, or the daemon died and
             * the dispatcher has not seen it yet; or (DMCE_ENOBLOCK) it did
             * not hold the block when it answered and holds it again now:
             * the block moved away and back while this thread was not
             * looking (descheduled between the answer and this look, or
             * waiting for disp_lock). Try again (at once the first time,
             * then paced) until one of them settles it. A daemon that
             * really does not hold a block the directory gives it answers
             * the same until failover_wait_ms, and that error stands.
             */
            if (st->same++ == 0)
                return 1;
            if (dmce_now_ms() >= st->deadline_ms)
                return 0;
            backoff(st);
            return 1;
        }
        if (!owner) {
            if (r == DMCE_ENOBLOCK)
                return 0; /* no such block in the cluster */
            /* Not in the directory: a new block its live daemon has not reported
             * yet (try once more), or a block lost with its daemon. */
            int f = dmce__conn_of_id(c, st->failed);
            if (f >= 0 && atomic_load(&c->conn[f].alive))
                return st->same++ == 0;
            *err = DMCE_ELOST;
            return 0;
        }
        /* Its primary is dead and not failed over yet: wait for the promotion. */
        if (dmce_now_ms() >= st->deadline_ms)
            return 0;
        backoff(st);
    }
}

int dmce__disp_stats(struct dmce_client *c, uint64_t *v, uint32_t n)
{
    uint8_t resp[8 + 8 * 64];
    size_t len = 0;
    pthread_mutex_lock(&c->disp_lock);
    int r = disp_rpc_locked(c, DMCE_MSMP_OP_DISP_STATS, NULL, 0, resp, sizeof(resp), &len);
    pthread_mutex_unlock(&c->disp_lock);
    if (r == 0)
        r = dmce_msmp_values_decode(resp, len, v, n);
    return r;
}
