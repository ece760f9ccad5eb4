/*
 * dispatcher.c - dmce-dispatcher's engine; see dispatcher.h and
 * docs/dispatcher.md.
 *
 * Tables (all under d->lock):
 *   - daemons[id]: the Server ID Lookup Table and the Memory Usage History
 *     (state, pid, socket, NUMA node, capacity, bytes used and free, ops,
 *     the block ID range it was given, its last member pulse);
 *   - blocks[id]: the directory, which is also the Backup Server ID
 *     Remapping Table (a block's primary and mirror hold it under one ID)
 *     and the Multicasting Mapping Table (a block's writes go to its
 *     primary, which applies them to the mirror);
 *   - the directory epoch, bumped on every change of either table; clients
 *     and daemons see it in every monitor pulse and directory.
 *
 * A daemon is dead when its process exits (pidfd, at once), when it misses
 * miss_limit member pulses, or when it stalls or answers garbage to one of
 * the orchestrator's requests. A daemon declared dead while its process
 * still runs is killed first (SIGKILL): two primaries for one block must
 * never exist. Then every block it held as primary is promoted on its
 * mirror, every block it mirrored loses that mirror, and the orchestrator
 * re-mirrors every single-copy block onto a surviving daemon.
 */
#include "dispatcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dmce/addr.h>
#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>

#include "log.h"
#include "msmp.h"
#include "msmp_admin.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "msmp_io.h"
#include "util.h"

#define MAX_DAEMONS 4096
#define MAX_SPAWN 64
#define IN_CHUNK (64u << 10)

/* ---- config table ----------------------------------------------------------------------- */

static const char *const layout_names[] = {"12-12-40", "16-16-32", NULL};
static const char *const policy_names[] = {"round-robin", "least-used", "numa-local", NULL};
static const char *const mirroring_names[] = {"auto", "on", "off", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(dmce_disp_config_t, f)
const dmce_config_def_t dmce_disp_config_defs[] = {
    {"runtime_dir", DMCE_CFG_STRING, OFF(runtime_dir), "", 0, 0, NULL,
     "the cluster's runtime directory; default $DMCE_RUNTIME_DIR or /run/dmce-UID"},
    {"socket", DMCE_CFG_STRING, OFF(socket), "", 0, 0, NULL,
     "socket path; default RUNTIME_DIR/dispatcher.sock (where daemons and clients look)"},
    {"layout", DMCE_CFG_ENUM, OFF(layout), "12-12-40", 0, 0, layout_names,
     "DMCE address layout of the cluster (daemons of another layout are refused)"},
    {"heartbeat_ms", DMCE_CFG_INT, OFF(heartbeat_ms), "100", 10, 60000, NULL,
     "member pulse interval the daemons are told"},
    {"miss_limit", DMCE_CFG_INT, OFF(miss_limit), "3", 2, 100, NULL,
     "missed member pulses after which a daemon is dead"},
    {"policy", DMCE_CFG_ENUM, OFF(policy), "least-used", 0, 0, policy_names,
     "where setups and mallocs go: round-robin, least-used, numa-local"},
    {"mirroring", DMCE_CFG_ENUM, OFF(mirroring), "auto", 0, 0, mirroring_names,
     "auto: mirror every block when two or more daemons are alive; on; off"},
    {"request_timeout_ms", DMCE_CFG_INT, OFF(request_timeout_ms), "2000", 50, 600000, NULL,
     "a daemon that does not answer the dispatcher within this is dead"},
    {"remirror_parallel", DMCE_CFG_INT, OFF(remirror_parallel), "2", 1, 64, NULL,
     "blocks being copied to new mirrors at once"},
    {"spawn", DMCE_CFG_INT, OFF(spawn), "0", 0, MAX_SPAWN, NULL,
     "memory daemons to start (ids 1..spawn) and stop with the dispatcher"},
    {"memd", DMCE_CFG_STRING, OFF(memd), "", 0, 0, NULL,
     "dmce-memd to spawn; default the one next to this program"},
    {"memd_args", DMCE_CFG_STRING, OFF(memd_args), "", 0, 0, NULL,
     "extra flags for spawned daemons, space separated (e.g. --block-size=256M)"},
    {"respawn", DMCE_CFG_BOOL, OFF(respawn), "yes", 0, 0, NULL,
     "start a spawned daemon again when it dies (it rejoins empty)"},
    {"max_clients", DMCE_CFG_INT, OFF(max_clients), "1024", 1, 1000000, NULL,
     "connections accepted at once"},
    {"log_level", DMCE_CFG_ENUM, OFF(log_level), "info", 0, 0, level_names,
     "error, warn, info or debug"},
};
#undef OFF
const size_t dmce_disp_config_ndefs = DMCE_ARRAY_LEN(dmce_disp_config_defs);

/* ---- types ------------------------------------------------------------------------------ */

struct ddaemon {
    int state;            /* 0 never seen, DMCE_DISP_ALIVE, DMCE_DISP_DEAD */
    pid_t pid;
    int pidfd;            /* -1 when not watched; owner: this entry (in the control epoll) */
    int32_t numa;
    uint64_t capacity, used, free, ops, block_size;
    uint32_t max_blocks, first, count;
    char path[DMCE_DISP_DAEMON_PATH + 1]; /* a Unix socket path: sun_path bounds it */
    uint64_t last_pulse_ms, died_ms;
    int need_blocks;      /* read its blocks (it just registered) */
    int blocks_read;      /* its blocks were read since it registered: the directory has them */
    int failover;         /* promote the mirrors of its blocks */
    dmce_mconn_t cmd;     /* the orchestrator's connection to it; orchestrator only */
    int cmd_ready;
    int draining;         /* dmcectl drain: no new blocks or mirrors; its blocks move away */
};

struct dblock {
    uint16_t primary, mirror; /* daemon IDs; 0 = none */
    uint8_t state;            /* enum dmce_disp_block_state */
    uint8_t live;
    uint16_t tries;           /* failed re-mirrors in a row */
    uint64_t since_ms;        /* re-mirroring started / next try after */
    uint64_t copied;          /* bytes copied so far, as the primary reports */
    /* Not live yet, but a daemon holds a copy of it (a new dispatcher learns
     * mirrors before their primaries): kept until the primary reports the
     * block, or promoted if the primary is dead or does not come back. */
    uint16_t orphan, orphan_primary;
    uint64_t orphan_ms;       /* first seen */
    uint64_t orphan_retry_ms; /* a failed promotion: not before this */
    uint16_t peer_pending;    /* REMIRRORING: the daemon the new copy is made on */
    uint8_t drop_mirror;      /* tell the primary to stop keeping its mirror (a dead peer) */
    /*
     * The primary was told its mirror's holder is dead and may keep that
     * copy in step (mirror_keep_ms): the re-mirror most likely takes the
     * copy over, no copy made, so it does not wait for remirror_parallel.
     */
    uint8_t kept;
    /*
     * A new block whose mirror is being made (mirror_peer) and whose events
     * have not come yet: its copy is complete before any allocation in it
     * is handed out, so if its primary dies now the copy may be promoted.
     */
    uint8_t fresh;
};

/* A live move of one block (dmcectl migrate / drain), run by the orchestrator. */
struct djob {
    uint32_t id, block, from, to; /* to: 0 until chosen */
    int32_t node;                 /* -1, or the NUMA node asked for */
    uint32_t state;               /* enum dmce_adm_job_state */
    int32_t err;
    uint64_t bytes, queued_ms, not_before_ms, took_us, frozen_us;
    unsigned tries;               /* -EBUSY answers (a mirror copy under way): tried again */
    int auto_to;                  /* the target is chosen when the job runs */
};
#define MAX_JOBS 4096u

struct dconn {
    int fd;
    pid_t pid;
    uid_t uid;
    dmce_inbuf_t in;
    dmce_outbuf_t out;
    dmce_msmp_hdr_t h;
    int closing;
    int want_out;
    uint32_t daemon;      /* a registered daemon's connection: its ID */
    struct dconn *prev, *next;
};

/* A transparent-mode client (FIG. 3): a thread and a libdmce client of its own. */
struct fwd {
    struct dmce_disp *d;
    int fd;                 /* owner: the thread (closed when it ends) */
    pid_t pid;
    dmce_inbuf_t in;        /* taken over from the control loop, with any pipelined frames */
    dmce_outbuf_t out;
    pthread_t thread;
    atomic_int done;
    struct fwd *next;
};

struct spawned {
    pid_t pid;
    uint64_t next_start_ms; /* respawn backoff */
    uint64_t started_ms;    /* when the current process was started */
    unsigned quick_exits;   /* exits within 10 s of starting, in a row */
};

struct dmce_disp {
    dmce_disp_config_t cfg;
    char sock_path[DMCE_CFG_STRMAX + 32];
    char lock_path[DMCE_CFG_STRMAX + 32];
    int lock_fd, listen_fd, epfd, evfd;
    int locked;                 /* lock_fd holds the runtime dir's lock: ours to unlink */
    pthread_t loop_thread, orch_thread;
    int loop_on, orch_on;
    atomic_int stop;
    pthread_mutex_t lock;
    pthread_cond_t orch_cond;   /* wakes the orchestrator early (a death) */
    int orch_wake;              /* under lock: work arrived while it was busy */
    struct ddaemon daemons[MAX_DAEMONS + 1];
    struct dblock *blocks;      /* [nids] */
    uint32_t nids;
    uint64_t epoch;
    unsigned rr;
    struct dconn *conns;
    unsigned nconns;
    uint64_t start_ms, last_progress_ms;
    uint32_t next_session; /* session IDs: from a random start, one after the other */
    int spare_fd;               /* /dev/null, given up to shed a connection when out of fds */
    dmce_ratelimit_t refuse_rl; /* "refused" warnings: one a second (control loop only) */
    uint64_t st[DMCE_DSTAT_COUNT_];
    struct spawned spawn[MAX_SPAWN + 1];
    struct fwd *fwds;           /* under lock */
    unsigned nfwds;
    atomic_uint_fast64_t forwarded;
    char memd_path[DMCE_CFG_STRMAX + 64];
    /* Moves (under lock): jobs[] oldest first; finished ones go when room is needed. */
    struct djob jobs[MAX_JOBS];
    unsigned njobs;
    uint32_t next_job;
};

/* ---- tables (d->lock held) ----------------------------------------------------------------- */

static unsigned alive_count_locked(struct dmce_disp *d)
{
    unsigned n = 0;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++)
        n += d->daemons[i].state == DMCE_DISP_ALIVE;
    return n;
}

static uint32_t cluster_flags_locked(struct dmce_disp *d)
{
    if (d->cfg.mirroring == DMCE_MIRRORING_OFF)
        return DMCE_DISP_MIRROR_OFF;
    if (d->cfg.mirroring == DMCE_MIRRORING_ON || alive_count_locked(d) >= 2)
        return DMCE_DISP_MIRRORING;
    return 0;
}

static void bump_locked(struct dmce_disp *d)
{
    d->epoch++;
}

/* Have the orchestrator run now (a death, a registration, a block event), not at its next tick. */
static void wake_orch_locked(struct dmce_disp *d)
{
    d->orch_wake = 1;
    pthread_cond_signal(&d->orch_cond);
}

/* Is [first, first+count) free for daemon `id`: no other live range, no other daemon's block? */
static int range_free_locked(struct dmce_disp *d, uint32_t first, uint32_t count, uint32_t id)
{
    if (first == 0 || (uint64_t)first + count > d->nids)
        return 0;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        const struct ddaemon *o = &d->daemons[i];
        if (i == id || o->state != DMCE_DISP_ALIVE || !o->count)
            continue;
        if (first < o->first + o->count && o->first < first + count)
            return 0;
    }
    for (uint32_t b = first; b < first + count; b++) {
        const struct dblock *k = &d->blocks[b];
        if (k->live && k->primary != id && k->mirror != id)
            return 0;
    }
    return 1;
}

/* A mirror holder for a block of daemon `of`: another NUMA node first, then the most free. */
static uint32_t choose_peer_locked(struct dmce_disp *d, uint32_t of, uint64_t need)
{
    uint32_t best = 0;
    int best_other_node = 0;
    uint64_t best_free = 0;
    int32_t node = d->daemons[of].numa;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        const struct ddaemon *o = &d->daemons[i];
        if (i == of || o->state != DMCE_DISP_ALIVE || o->free < need || o->draining)
            continue;
        int other = o->numa != node;
        if (!best || other > best_other_node || (other == best_other_node && o->free > best_free)) {
            best = i;
            best_other_node = other;
            best_free = o->free;
        }
    }
    return best;
}

/* The daemon a setup or malloc of `size` bytes goes to, by the policy. 0 = none. */
static uint32_t choose_daemon_locked(struct dmce_disp *d, uint64_t size, int32_t node,
                                     uint32_t exclude)
{
    uint32_t cand[MAX_DAEMONS];
    unsigned n = 0;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        const struct ddaemon *o = &d->daemons[i];
        if (o->state == DMCE_DISP_ALIVE && i != exclude && o->free >= size && !o->draining)
            cand[n++] = i;
    }
    if (n == 0)
        return 0;
    if (d->cfg.policy == DMCE_POLICY_ROUND_ROBIN)
        return cand[d->rr++ % n];
    uint32_t best = 0;
    int best_local = 0;
    for (unsigned k = 0; k < n; k++) {
        const struct ddaemon *o = &d->daemons[cand[k]];
        int local = d->cfg.policy == DMCE_POLICY_NUMA_LOCAL && node >= 0 && o->numa == node;
        if (!best || local > best_local ||
            (local == best_local && o->free > d->daemons[best].free)) {
            best = cand[k];
            best_local = local;
        }
    }
    return best;
}

/*
 * Daemon `id` is dead. With fence, its process may still run (it stalled,
 * or answered garbage): kill it, since no block may have two primaries.
 * The failover is the orchestrator's.
 */
static void mark_dead_locked(struct dmce_disp *d, uint32_t id, const char *why, int fence)
{
    struct ddaemon *x = &d->daemons[id];
    if (x->state != DMCE_DISP_ALIVE)
        return;
    x->state = DMCE_DISP_DEAD;
    x->died_ms = dmce_now_ms();
    x->failover = 1;
    if (x->pidfd >= 0) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, x->pidfd, NULL);
        if (fence && syscall(SYS_pidfd_send_signal, x->pidfd, SIGKILL, NULL, 0) == 0)
            LOG_WARN("memd[%u] (pid %d) killed, so that its blocks fail over", id, (int)x->pid);
        close(x->pidfd);
        x->pidfd = -1;
    }
    d->st[DMCE_DSTAT_DEATHS]++;
    bump_locked(d);
    LOG_WARN("memd[%u] is dead (%s); failing its blocks over to their mirrors", id, why);
    wake_orch_locked(d);
}

/* ---- the control loop: connections ------------------------------------------------------ */

static void conn_close(struct dmce_disp *d, struct dconn *c)
{
    if (c->fd >= 0) { /* -1: its socket went to a forwarding thread */
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->daemon)
        LOG_INFO("memd[%u]'s connection closed; its member pulses decide", c->daemon);
    d->nconns--;
    dmce_inbuf_free(&c->in);
    dmce_outbuf_free(&c->out);
    free(c);
}

static void conn_arm(struct dmce_disp *d, struct dconn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(d->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

static int conn_flush(struct dmce_disp *d, struct dconn *c)
{
    for (;;) {
        size_t n;
        const uint8_t *p = dmce_outbuf_data(&c->out, &n);
        if (!n)
            break;
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            dmce_outbuf_sent(&c->out, (size_t)k);
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_arm(d, c, 1);
            return 0;
        }
        return -1;
    }
    dmce_outbuf_reset(&c->out, 1u << 21);
    conn_arm(d, c, 0);
    return c->closing ? -1 : 0;
}

static void reply_error(struct dconn *c, int err)
{
    LOG_DEBUG("pid %d: %s failed: %s", (int)c->pid, dmce_msmp_op_name(c->h.op),
              dmce_strerror(err));
    if (!dmce_outbuf_reply(&c->out, &c->h, err, 0))
        c->closing = 1;
}

static uint8_t *reply(struct dconn *c, uint32_t len)
{
    uint8_t *p = dmce_outbuf_reply(&c->out, &c->h, 0, len);
    if (!p)
        c->closing = 1;
    return p;
}

/* ---- operations (control loop; take d->lock) --------------------------------------------- */

static void op_register(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    dmce_disp_register_t rq;
    int r = dmce_disp_register_decode(p, len, &rq);
    if (r < 0)
        return reply_error(c, r);
    if (rq.pid != (uint32_t)c->pid)
        return reply_error(c, -EINVAL); /* it speaks for itself only */
    if ((int)rq.layout != d->cfg.layout) {
        LOG_WARN("memd[%u] uses another address layout; refused", rq.daemon_id);
        return reply_error(c, DMCE_ELAYOUT);
    }
    if (rq.max_blocks > d->nids / 2)
        return reply_error(c, -ERANGE);
    if (strnlen(rq.path, sizeof(rq.path)) > DMCE_DISP_DAEMON_PATH)
        return reply_error(c, -ENAMETOOLONG); /* not a path a Unix socket can have */
    pthread_mutex_lock(&d->lock);
    struct ddaemon *x = &d->daemons[rq.daemon_id];
    if (x->state == DMCE_DISP_ALIVE && x->pid != (pid_t)rq.pid && kill(x->pid, 0) == 0) {
        pthread_mutex_unlock(&d->lock);
        LOG_WARN("a second memd[%u] (pid %u) tried to register while pid %d runs", rq.daemon_id,
                 rq.pid, (int)x->pid);
        return reply_error(c, -EADDRINUSE);
    }
    if (x->state == DMCE_DISP_ALIVE && x->pid != (pid_t)rq.pid)
        mark_dead_locked(d, rq.daemon_id, "a new process registered with its ID", 0);
    if (x->failover) {
        pthread_mutex_unlock(&d->lock); /* its old blocks are still failing over: a moment */
        return reply_error(c, -EAGAIN);
    }
    /* Its block ID range: the one it has if nobody else's, else a free one. */
    uint32_t first = rq.block_first;
    if (!range_free_locked(d, first, rq.max_blocks, rq.daemon_id)) {
        first = 0;
        for (uint32_t f = 1; f + rq.max_blocks <= d->nids && !first; f += rq.max_blocks)
            if (range_free_locked(d, f, rq.max_blocks, rq.daemon_id))
                first = f;
    }
    if (!first) {
        pthread_mutex_unlock(&d->lock);
        LOG_ERROR("no free block ID range of %u for memd[%u]", rq.max_blocks, rq.daemon_id);
        return reply_error(c, DMCE_ENOMEM);
    }
    int same_process = x->state == DMCE_DISP_ALIVE && x->pid == (pid_t)rq.pid;
    if (!same_process && x->pidfd >= 0) {
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, x->pidfd, NULL);
        close(x->pidfd);
        x->pidfd = -1;
    }
    x->state = DMCE_DISP_ALIVE;
    x->pid = (pid_t)rq.pid;
    x->numa = rq.numa_node;
    x->capacity = rq.capacity;
    x->free = rq.capacity;
    x->block_size = rq.block_size;
    x->max_blocks = rq.max_blocks;
    x->first = first;
    x->count = rq.max_blocks;
    memcpy(x->path, rq.path, sizeof(x->path) - 1);
    x->path[sizeof(x->path) - 1] = '\0';
    x->last_pulse_ms = dmce_now_ms();
    x->need_blocks = 1;
    x->blocks_read = 0;
    if (x->pidfd < 0) {
        x->pidfd = dmce_pidfd_open(x->pid);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)rq.daemon_id};
        if (x->pidfd >= 0 && epoll_ctl(d->epfd, EPOLL_CTL_ADD, x->pidfd, &ev) < 0) {
            close(x->pidfd);
            x->pidfd = -1;
        }
    }
    c->daemon = rq.daemon_id;
    d->st[DMCE_DSTAT_REGISTRATIONS]++;
    bump_locked(d);
    dmce_disp_register_resp_t rs = {.block_first = first,
                                    .block_count = rq.max_blocks,
                                    .heartbeat_ms = (uint32_t)d->cfg.heartbeat_ms,
                                    .flags = cluster_flags_locked(d),
                                    .epoch = d->epoch};
    unsigned alive = alive_count_locked(d);
    wake_orch_locked(d); /* read its blocks now */
    pthread_mutex_unlock(&d->lock);
    LOG_INFO("memd[%u] (pid %u, NUMA node %d, %s) registered: blocks %u..%u; %u daemon(s) alive",
             rq.daemon_id, rq.pid, rq.numa_node, rq.path, first, first + rq.max_blocks - 1, alive);
    if (d->cfg.mirroring == DMCE_MIRRORING_ON && alive < 2)
        LOG_WARN("mirroring is on but only one daemon is alive: blocks have one copy");
    uint8_t *out = reply(c, DMCE_DISP_REGISTER_RESP_SIZE);
    if (out)
        dmce_disp_register_resp_encode(&rs, out);
}

static void op_heartbeat(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    dmce_disp_pulse_t pl;
    int r = dmce_disp_pulse_decode(p, len, &pl);
    if (r < 0)
        return reply_error(c, r);
    pthread_mutex_lock(&d->lock);
    struct ddaemon *x = pl.daemon_id <= MAX_DAEMONS ? &d->daemons[pl.daemon_id] : NULL;
    if (!x || c->daemon != pl.daemon_id || x->state != DMCE_DISP_ALIVE) {
        pthread_mutex_unlock(&d->lock);
        return reply_error(c, -ENOENT); /* not registered here (we restarted?): register */
    }
    x->last_pulse_ms = dmce_now_ms();
    x->used = pl.used;
    x->free = pl.free;
    x->ops = pl.ops;
    dmce_disp_monitor_t mon = {.epoch = d->epoch, .flags = cluster_flags_locked(d)};
    for (uint32_t i = 1; i <= 64; i++)
        if (d->daemons[i].state == DMCE_DISP_ALIVE)
            mon.live |= 1ull << (i - 1);
    pthread_mutex_unlock(&d->lock);
    uint8_t *out = reply(c, DMCE_DISP_MONITOR_SIZE);
    if (out)
        dmce_disp_monitor_encode(&mon, out);
}

static void op_directory(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    if (len != DMCE_DISP_DIR_REQ_SIZE || dmce_get_le32(p + 4) || (dmce_get_le32(p) & ~1u))
        return reply_error(c, -EBADMSG);
    int want_blocks = dmce_get_le32(p) & DMCE_DISP_WANT_BLOCKS;
    pthread_mutex_lock(&d->lock);
    dmce_disp_dir_hdr_t h = {.epoch = d->epoch, .flags = cluster_flags_locked(d)};
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++)
        h.ndaemons += d->daemons[i].state != 0;
    for (uint32_t b = 0; want_blocks && b < d->nids; b++)
        h.nblocks += d->blocks[b].live;
    size_t sz = dmce_disp_dir_size(h.ndaemons, h.nblocks);
    uint8_t *out = sz <= DMCE_MSMP_PAYLOAD_LIMIT ? reply(c, (uint32_t)sz) : NULL;
    if (out) {
        dmce_disp_dir_hdr_encode(&h, out);
        uint8_t *e = out + DMCE_DISP_DIR_HDR;
        for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
            const struct ddaemon *x = &d->daemons[i];
            if (!x->state)
                continue;
            dmce_disp_daemon_t de = {.id = i, .state = (uint32_t)x->state, .numa_node = x->numa,
                                     .pid = (uint32_t)x->pid, .capacity = x->capacity,
                                     .used = x->used, .free = x->free, .ops = x->ops};
            memcpy(de.path, x->path, sizeof(de.path)); /* same size, NUL-terminated */
            dmce_disp_daemon_encode(&de, e);
            e += DMCE_DISP_DAEMON_SIZE;
        }
        for (uint32_t b = 0; want_blocks && b < d->nids; b++) {
            const struct dblock *k = &d->blocks[b];
            if (!k->live)
                continue;
            dmce_disp_block_t be = {.block = b, .primary = k->primary, .mirror = k->mirror,
                                    .state = k->state};
            dmce_disp_block_encode(&be, e);
            e += DMCE_DISP_BLOCK_SIZE;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (!out && sz > DMCE_MSMP_PAYLOAD_LIMIT)
        reply_error(c, -EMSGSIZE);
}

static void op_pick(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    dmce_disp_pick_t rq;
    int r = dmce_disp_pick_decode(p, len, &rq);
    if (r < 0)
        return reply_error(c, r);
    pthread_mutex_lock(&d->lock);
    uint32_t id = choose_daemon_locked(d, rq.size, rq.numa_node, rq.exclude);
    if (!id && rq.exclude) /* only the excluded one could: say so rather than nothing */
        id = choose_daemon_locked(d, rq.size, rq.numa_node, 0);
    if (id) { /* count it now: a burst of picks must not all see the last pulse's figures */
        struct ddaemon *x = &d->daemons[id];
        x->free -= DMCE_MIN(x->free, rq.size);
        x->used += rq.size;
        LOG_DEBUG("pick %llu bytes (node %d, exclude %u): memd[%u], %llu bytes free after",
                  (unsigned long long)rq.size, rq.numa_node, rq.exclude, id,
                  (unsigned long long)x->free);
    }
    d->st[DMCE_DSTAT_PICKS]++;
    pthread_mutex_unlock(&d->lock);
    if (!id)
        return reply_error(c, DMCE_ENOMEM);
    uint8_t *out = reply(c, DMCE_DISP_U32_RESP_SIZE);
    if (out)
        dmce_disp_u32_encode(id, out);
}

static void op_session(struct dmce_disp *d, struct dconn *c, uint32_t len)
{
    if (len != 0)
        return reply_error(c, -EBADMSG);
    /*
     * One after the other from a random start: no two sessions of this
     * dispatcher share an ID (until 2^31 of them), and a new dispatcher
     * starts elsewhere than the old one, so the IDs of sessions that outlive
     * it are very unlikely to come again (random IDs would collide after
     * ~50k sessions).
     */
    pthread_mutex_lock(&d->lock);
    if (!d->next_session && dmce_random_bytes(&d->next_session, sizeof(d->next_session)) < 0) {
        pthread_mutex_unlock(&d->lock);
        return reply_error(c, -EIO);
    }
    uint32_t id;
    do
        id = d->next_session++ | DMCE_SESSION_GLOBAL;
    while (!(id & ~DMCE_SESSION_GLOBAL));
    if (!d->next_session)
        d->next_session = 1;
    d->st[DMCE_DSTAT_SESSIONS]++;
    pthread_mutex_unlock(&d->lock);
    uint8_t *out = reply(c, DMCE_DISP_U32_RESP_SIZE);
    if (out)
        dmce_disp_u32_encode(id, out);
}

static void op_block_event(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    dmce_disp_event_msg_t ev;
    int r = dmce_disp_event_decode(p, len, &ev);
    if (r < 0)
        return reply_error(c, r);
    if (ev.daemon_id != c->daemon)
        return reply_error(c, -EPERM); /* a daemon speaks for its own blocks only */
    if (ev.block >= d->nids || ev.peer > MAX_DAEMONS)
        return reply_error(c, -EINVAL);
    LOG_DEBUG("memd[%u]: block %u event %u (peer %u)", ev.daemon_id, ev.block, ev.event, ev.peer);
    pthread_mutex_lock(&d->lock);
    struct dblock *k = &d->blocks[ev.block];
    switch (ev.event) {
    case DMCE_DISP_EV_CREATED:
        *k = (struct dblock){.primary = (uint16_t)ev.daemon_id, .live = 1};
        break;
    case DMCE_DISP_EV_MIRRORED:
    case DMCE_DISP_EV_MIRROR_ADOPTED:
        if (k->live && k->primary == ev.daemon_id &&
            (ev.peer > MAX_DAEMONS || d->daemons[ev.peer].state != DMCE_DISP_ALIVE)) {
            /* the peer died while the copy was made: not a copy to count on */
            k->mirror = 0;
            k->state = DMCE_DISP_SINGLE;
            k->since_ms = 0;
            k->drop_mirror = 1;
        } else if (k->live && k->primary == ev.daemon_id) {
            if (k->state == DMCE_DISP_REMIRRORING) {
                d->st[DMCE_DSTAT_REMIRRORS_DONE]++;
                if (ev.event == DMCE_DISP_EV_MIRROR_ADOPTED) {
                    d->st[DMCE_DSTAT_REMIRRORS_ADOPTED]++;
                    d->st[DMCE_DSTAT_REMIRROR_BYTES_ADOPTED] += ev.bytes;
                } else {
                    d->st[DMCE_DSTAT_REMIRROR_BYTES] += ev.bytes;
                }
            }
            k->mirror = (uint16_t)ev.peer;
            k->state = DMCE_DISP_MIRRORED;
            k->kept = 0;
            k->tries = 0;
            k->drop_mirror = 0; /* this mirror is good: keep it */
        }
        break;
    case DMCE_DISP_EV_MIRROR_LOST:
        if (k->live && k->primary == ev.daemon_id) {
            k->mirror = 0;
            k->kept = 0; /* re-mirror failed: the next try is a copy */
            k->state = DMCE_DISP_SINGLE;
            /* at once the first time, then backing off: 200, 400 .. 51200 ms */
            k->since_ms = k->tries ? dmce_now_ms() + 100ull * (1u << DMCE_MIN(k->tries, 9)) : 0;
            k->tries++;
        }
        break;
    case DMCE_DISP_EV_GONE:
        if (k->primary == ev.daemon_id)
            memset(k, 0, sizeof(*k));
        break;
    }
    bump_locked(d);
    wake_orch_locked(d);
    pthread_mutex_unlock(&d->lock);
    reply(c, 0);
}

static void op_mirror_peer(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    uint32_t of, block;
    int r = dmce_disp_peer_req_decode(p, len, &of, &block);
    if (r < 0)
        return reply_error(c, r);
    if (of != c->daemon || of > MAX_DAEMONS)
        return reply_error(c, -EPERM);
    pthread_mutex_lock(&d->lock);
    uint32_t peer = cluster_flags_locked(d) & DMCE_DISP_MIRRORING
                        ? choose_peer_locked(d, of, d->daemons[of].block_size)
                        : 0;
    char path[DMCE_MSMP_PATH_MAX + 1];
    if (peer)
        memcpy(path, d->daemons[peer].path, sizeof(d->daemons[peer].path));
    if (peer && block < d->nids && !d->blocks[block].live) {
        /*
         * Known from now on, not from its created event: if its daemon dies
         * before the events come, the copy on `peer` is promoted or dropped
         * by the failover, never left behind unknown (its ID would be
         * handed out again while the copy holds it).
         */
        d->blocks[block] = (struct dblock){.primary = (uint16_t)of, .live = 1,
                                           .state = DMCE_DISP_REMIRRORING,
                                           .peer_pending = (uint16_t)peer, .fresh = 1,
                                           .since_ms = dmce_now_ms()};
        bump_locked(d);
    }
    pthread_mutex_unlock(&d->lock);
    if (!peer)
        return reply_error(c, DMCE_ENOMEM);
    uint8_t buf[DMCE_DISP_PEER_RESP_HDR + DMCE_MSMP_PATH_MAX];
    int n = dmce_disp_peer_resp_encode(peer, path, buf, sizeof(buf));
    uint8_t *out = n > 0 ? reply(c, (uint32_t)n) : NULL;
    if (out)
        memcpy(out, buf, (size_t)n);
}

static void op_disp_stats(struct dmce_disp *d, struct dconn *c, uint32_t len)
{
    if (len != 0)
        return reply_error(c, -EBADMSG);
    uint64_t v[DMCE_DSTAT_COUNT_];
    pthread_mutex_lock(&d->lock);
    memcpy(v, d->st, sizeof(v));
    v[DMCE_DSTAT_UPTIME_MS] = dmce_now_ms() - d->start_ms;
    v[DMCE_DSTAT_EPOCH] = d->epoch;
    v[DMCE_DSTAT_FLAGS] = cluster_flags_locked(d);
    uint64_t alive = 0, dead = 0, blocks = 0, mir = 0, single = 0, remir = 0, copied = 0;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        alive += d->daemons[i].state == DMCE_DISP_ALIVE;
        dead += d->daemons[i].state == DMCE_DISP_DEAD;
    }
    for (uint32_t b = 0; b < d->nids; b++) {
        const struct dblock *k = &d->blocks[b];
        if (!k->live)
            continue;
        blocks++;
        mir += k->state == DMCE_DISP_MIRRORED;
        single += k->state == DMCE_DISP_SINGLE;
        remir += k->state == DMCE_DISP_REMIRRORING;
        copied += k->state == DMCE_DISP_REMIRRORING ? k->copied : 0;
    }
    v[DMCE_DSTAT_DAEMONS_ALIVE] = alive;
    v[DMCE_DSTAT_DAEMONS_DEAD] = dead;
    v[DMCE_DSTAT_BLOCKS] = blocks;
    v[DMCE_DSTAT_BLOCKS_MIRRORED] = mir;
    v[DMCE_DSTAT_BLOCKS_SINGLE] = single;
    v[DMCE_DSTAT_BLOCKS_REMIRRORING] = remir;
    v[DMCE_DSTAT_FORWARDED] = atomic_load(&d->forwarded);
    v[DMCE_DSTAT_REMIRROR_BYTES] += copied;
    /* mirroring on (or auto) but no second daemon to hold a mirror (the MIRRORING flag is
     * set regardless with mirroring = on, so it cannot tell) */
    v[DMCE_DSTAT_WARN_ONE_COPY] = d->cfg.mirroring != DMCE_MIRRORING_OFF && single > 0 && alive < 2;
    pthread_mutex_unlock(&d->lock);
    uint8_t *out = reply(c, 8 + 8 * DMCE_DSTAT_COUNT_);
    if (out)
        dmce_msmp_values_encode(v, DMCE_DSTAT_COUNT_, out);
}

/* ---- moves: migrate, drain, jobs, daemons (dmcectl) ------------------------------------------ */

/* A slot for a new job: the oldest finished one goes when the table is full. NULL: all busy. */
static struct djob *job_new_locked(struct dmce_disp *d)
{
    if (d->njobs == MAX_JOBS) {
        unsigned k = 0;
        while (k < d->njobs && d->jobs[k].state != DMCE_ADM_JOB_DONE &&
               d->jobs[k].state != DMCE_ADM_JOB_FAILED)
            k++;
        if (k == d->njobs)
            return NULL;
        memmove(&d->jobs[k], &d->jobs[k + 1], (d->njobs - k - 1) * sizeof(d->jobs[0]));
        d->njobs--;
    }
    struct djob *j = &d->jobs[d->njobs++];
    memset(j, 0, sizeof(*j));
    j->id = ++d->next_job;
    j->queued_ms = dmce_now_ms();
    j->state = DMCE_ADM_JOB_QUEUED;
    return j;
}

/* The queued or running job of block b, or NULL. */
static struct djob *job_of_block_locked(struct dmce_disp *d, uint32_t b)
{
    for (unsigned k = 0; k < d->njobs; k++)
        if (d->jobs[k].block == b && (d->jobs[k].state == DMCE_ADM_JOB_QUEUED ||
                                      d->jobs[k].state == DMCE_ADM_JOB_RUNNING))
            return &d->jobs[k];
    return NULL;
}

/*
 * Where block b of daemon `from` can go: `to` if given and fit, else a live
 * daemon that is not draining, on `node` if asked, not its mirror's holder
 * if another fits (two copies on one daemon protect nothing), the most
 * free. 0 = none; *why says why for an explicit target.
 */
static uint32_t move_target_locked(struct dmce_disp *d, const struct dblock *k, uint32_t to,
                                   int32_t node, uint64_t need, int *why)
{
    *why = -ENODEV;
    if (to) {
        const struct ddaemon *t = to <= MAX_DAEMONS ? &d->daemons[to] : NULL;
        if (!t || t->state != DMCE_DISP_ALIVE)
            return 0;
        if (to == k->primary) {
            *why = -EALREADY;
            return 0;
        }
        if (t->draining) {
            *why = -EBUSY;
            return 0;
        }
        if (t->free < need) {
            *why = DMCE_ENOMEM;
            return 0;
        }
        return to;
    }
    uint32_t best = 0;
    int best_score = -1;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        const struct ddaemon *o = &d->daemons[i];
        if (i == k->primary || o->state != DMCE_DISP_ALIVE || o->draining ||
            (node >= 0 && o->numa != node))
            continue;
        if (o->free < need) {
            *why = DMCE_ENOMEM;
            continue;
        }
        int score = i != k->mirror;
        if (score > best_score || (score == best_score && o->free > d->daemons[best].free)) {
            best = i;
            best_score = score;
        }
    }
    if (!best && node >= 0 && k->primary <= MAX_DAEMONS && d->daemons[k->primary].numa == node)
        *why = -EALREADY;
    return best;
}

static void op_migrate(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    dmce_adm_migrate_t rq;
    int r = dmce_adm_migrate_decode(p, len, &rq);
    if (r < 0)
        return reply_error(c, r);
    pthread_mutex_lock(&d->lock);
    const struct dblock *k = rq.block < d->nids ? &d->blocks[rq.block] : NULL;
    uint32_t id = 0;
    if (!k || !k->live)
        r = DMCE_ENOBLOCK;
    else if (d->daemons[k->primary].state != DMCE_DISP_ALIVE)
        r = -EAGAIN; /* its failover is under way */
    else if (job_of_block_locked(d, rq.block))
        r = -EBUSY;
    else {
        int why;
        uint64_t need = d->daemons[k->primary].block_size;
        if (!move_target_locked(d, k, rq.to, rq.node, need, &why))
            r = why;
    }
    if (r == 0) {
        struct djob *j = job_new_locked(d);
        if (!j) {
            r = -EAGAIN;
        } else {
            j->block = rq.block;
            j->from = k->primary;
            j->to = rq.to;
            j->auto_to = rq.to == 0;
            j->node = rq.node;
            j->bytes = d->daemons[k->primary].block_size;
            id = j->id;
            wake_orch_locked(d);
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        return reply_error(c, r);
    uint8_t *out = reply(c, DMCE_DISP_U32_RESP_SIZE);
    if (out)
        dmce_disp_u32_encode(id, out);
}

/* Queue a move of every primary of a draining daemon that has none yet. Returns how many. */
static unsigned drain_queue_locked(struct dmce_disp *d, uint32_t id)
{
    unsigned n = 0;
    for (uint32_t b = 1; b < d->nids; b++) {
        const struct dblock *k = &d->blocks[b];
        if (!k->live || k->primary != id || job_of_block_locked(d, b))
            continue;
        struct djob *j = job_new_locked(d);
        if (!j)
            break;
        j->block = b;
        j->from = id;
        j->node = -1;
        j->auto_to = 1;
        j->bytes = d->daemons[id].block_size;
        n++;
    }
    return n;
}

static void op_drain(struct dmce_disp *d, struct dconn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id, flags;
    int r = dmce_adm_pair_decode(p, len, &id, &flags);
    if (r == 0 && (id == 0 || id > MAX_DAEMONS || (flags & ~DMCE_ADM_DRAIN_CANCEL)))
        r = -EBADMSG;
    if (r < 0)
        return reply_error(c, r);
    unsigned n = 0;
    pthread_mutex_lock(&d->lock);
    struct ddaemon *x = &d->daemons[id];
    if (x->state != DMCE_DISP_ALIVE) {
        r = -ENODEV;
    } else if (flags & DMCE_ADM_DRAIN_CANCEL) {
        x->draining = 0;
        for (unsigned k = 0; k < d->njobs; k++) {
            struct djob *j = &d->jobs[k];
            if (j->from == id && j->state == DMCE_ADM_JOB_QUEUED) {
                j->state = DMCE_ADM_JOB_FAILED;
                j->err = -ECANCELED;
                n++;
            }
        }
        LOG_INFO("memd[%u]: drain cancelled; %u queued move(s) dropped", id, n);
    } else {
        unsigned others = 0;
        for (uint32_t i = 1; i <= MAX_DAEMONS; i++)
            others += i != id && d->daemons[i].state == DMCE_DISP_ALIVE && !d->daemons[i].draining;
        if (!others) {
            r = -ENODEV; /* nowhere to move its blocks */
        } else {
            x->draining = 1;
            n = drain_queue_locked(d, id);
            bump_locked(d);
            wake_orch_locked(d);
            LOG_INFO("memd[%u]: draining; %u block(s) to move, then its mirror copies", id, n);
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        return reply_error(c, r);
    uint8_t *out = reply(c, DMCE_DISP_U32_RESP_SIZE);
    if (out)
        dmce_disp_u32_encode(n, out);
}

static void op_jobs(struct dmce_disp *d, struct dconn *c, uint32_t len)
{
    if (len != 0)
        return reply_error(c, -EBADMSG);
    pthread_mutex_lock(&d->lock);
    uint64_t now = dmce_now_ms();
    uint8_t *out = reply(c, (uint32_t)dmce_adm_jobs_size(d->njobs));
    if (out) {
        dmce_adm_jobs_hdr_encode(d->njobs, out);
        for (unsigned k = 0; k < d->njobs; k++) {
            const struct djob *j = &d->jobs[k];
            dmce_adm_job_t e = {.id = j->id, .block = j->block, .from = j->from, .to = j->to,
                                .state = j->state, .err = j->err, .bytes = j->bytes,
                                .age_ms = now - j->queued_ms, .took_us = j->took_us,
                                .frozen_us = j->frozen_us};
            dmce_adm_job_encode(&e, out + DMCE_ADM_JOBS_HDR + (size_t)k * DMCE_ADM_JOB_SIZE);
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static void op_daemons(struct dmce_disp *d, struct dconn *c, uint32_t len)
{
    if (len != 0)
        return reply_error(c, -EBADMSG);
    pthread_mutex_lock(&d->lock);
    uint32_t n = 0;
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++)
        n += d->daemons[i].state != 0;
    uint64_t now = dmce_now_ms();
    uint8_t *out = reply(c, (uint32_t)dmce_adm_daemons_size(n));
    if (out) {
        dmce_adm_daemons_hdr_encode(n, out);
        uint8_t *e = out + DMCE_ADM_DAEMONS_HDR;
        for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
            const struct ddaemon *x = &d->daemons[i];
            if (!x->state)
                continue;
            dmce_adm_daemon_t de = {.id = i, .state = (uint32_t)x->state, .numa_node = x->numa,
                                    .pid = (uint32_t)x->pid, .capacity = x->capacity,
                                    .used = x->used, .free = x->free, .ops = x->ops,
                                    .block_size = x->block_size,
                                    .pulse_age_ms = now > x->last_pulse_ms ? now - x->last_pulse_ms : 0};
            de.flags = (x->draining ? DMCE_ADM_DAEMON_DRAINING : 0) |
                       (i <= MAX_SPAWN && d->spawn[i].pid > 0 ? DMCE_ADM_DAEMON_SPAWNED : 0);
            for (uint32_t b = 1; b < d->nids; b++) {
                de.primaries += d->blocks[b].live && d->blocks[b].primary == i;
                de.mirrors += d->blocks[b].live && d->blocks[b].mirror == i;
            }
            snprintf(de.path, sizeof(de.path), "%s", x->path);
            if (dmce_adm_daemon_encode(&de, e) < 0)
                memset(e, 0, DMCE_ADM_DAEMON_SIZE); /* a path too long for the entry: cannot be */
            e += DMCE_ADM_DAEMON_SIZE;
        }
    }
    pthread_mutex_unlock(&d->lock);
}

static int fwd_start(struct dmce_disp *d, struct dconn *c);
static int forwarded_op(unsigned op);

/* Handle one whole frame. 1: the connection was handed to a forwarding thread. */
static int dispatch(struct dmce_disp *d, struct dconn *c, const uint8_t *p)
{
    uint32_t len = c->h.len;
    if (c->h.flags & DMCE_MSMP_FLAG_RESPONSE) {
        reply_error(c, -EPROTO);
        return 0;
    }
    switch (c->h.op) {
    case DMCE_MSMP_OP_REGISTER: op_register(d, c, p, len); break;
    case DMCE_MSMP_OP_HEARTBEAT: op_heartbeat(d, c, p, len); break;
    case DMCE_MSMP_OP_DIRECTORY: op_directory(d, c, p, len); break;
    case DMCE_MSMP_OP_PICK: op_pick(d, c, p, len); break;
    case DMCE_MSMP_OP_SESSION: op_session(d, c, len); break;
    case DMCE_MSMP_OP_BLOCK_EVENT: op_block_event(d, c, p, len); break;
    case DMCE_MSMP_OP_MIRROR_PEER: op_mirror_peer(d, c, p, len); break;
    case DMCE_MSMP_OP_DISP_STATS: op_disp_stats(d, c, len); break;
    case DMCE_MSMP_OP_MIGRATE: op_migrate(d, c, p, len); break;
    case DMCE_MSMP_OP_DRAIN: op_drain(d, c, p, len); break;
    case DMCE_MSMP_OP_JOBS: op_jobs(d, c, len); break;
    case DMCE_MSMP_OP_DAEMONS: op_daemons(d, c, len); break;
    default:
        if (forwarded_op(c->h.op) && !c->daemon) {
            int r = fwd_start(d, c); /* this frame stays in the buffer: the thread answers it */
            if (r == 0)
                return 1;
            reply_error(c, r);
            break;
        }
        reply_error(c, -EOPNOTSUPP);
    }
    return 0;
}

/* Read and handle frames. -1: close the connection; 1: handed to a forwarding thread. */
static int conn_input(struct dmce_disp *d, struct dconn *c)
{
    for (int reads = 0; !c->closing && reads < 16;) {
        const uint8_t *payload;
        size_t need;
        int r = dmce_inbuf_frame(&c->in, DMCE_MSMP_PAYLOAD_DEFAULT, &c->h, &payload, &need);
        if (r < 0) {
            LOG_WARN("pid %d sent a malformed frame (%s); disconnecting it", (int)c->pid,
                     dmce_strerror(r));
            if (r == DMCE_EBADMAGIC || r == DMCE_EVERSION)
                c->h.req_id = 0;
            reply_error(c, r);
            c->closing = 1;
            return 0;
        }
        if (r == 1) {
            if (dispatch(d, c, payload))
                return 1;
            dmce_inbuf_consume(&c->in, DMCE_MSMP_HDR_SIZE + (size_t)c->h.len);
            continue;
        }
        if (dmce_inbuf_reserve(&c->in, DMCE_MAX(need, (size_t)IN_CHUNK), IN_CHUNK) < 0)
            return -1;
        size_t room;
        uint8_t *at = dmce_inbuf_room(&c->in, &room);
        ssize_t n = recv(c->fd, at, room, MSG_DONTWAIT);
        reads++;
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        dmce_inbuf_filled(&c->in, (size_t)n);
    }
    dmce_inbuf_trim(&c->in, 2 * IN_CHUNK);
    return 0;
}

/* A refused connection: at most one warning a second (dmce_log_limited). */
#define refuse_log(d, ...) dmce_log_limited(&(d)->refuse_rl, DMCE_LOG_WARN, __VA_ARGS__)

static void conn_accept(struct dmce_disp *d)
{
    if (d->spare_fd < 0) /* lost to a shortage of descriptors: take it back */
        d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (;;) {
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            pid_t pid = 0;
            if (err == EMFILE || err == ENFILE) { /* else the backlog wakes us forever */
                int r = dmce_accept_shed(d->listen_fd, &d->spare_fd, &pid);
                if (r > 0)
                    refuse_log(d, "refused pid %d: out of file descriptors (%s)", (int)pid,
                               strerror(err));
                else if (r < 0)
                    refuse_log(d, "accept: %s; retrying in 1 ms", strerror(-r));
            } else if (err != EAGAIN && err != EINTR) {
                refuse_log(d, "accept: %s", strerror(err));
            }
            return;
        }
        pid_t pid = 0;
        uid_t uid = (uid_t)-1;
        if (dmce_peer_cred(fd, &pid, &uid, NULL) < 0 || (uid != geteuid() && uid != 0)) {
            refuse_log(d, "refused a connection from pid %d uid %d: not the cluster's user",
                       (int)pid, (int)uid);
            close(fd);
            continue;
        }
        pthread_mutex_lock(&d->lock);
        unsigned nf = d->nfwds;
        pthread_mutex_unlock(&d->lock);
        if (d->nconns + nf >= (unsigned)d->cfg.max_clients) {
            refuse_log(d, "refused pid %d: max_clients (%lld) reached", (int)pid,
                       (long long)d->cfg.max_clients);
            close(fd);
            continue;
        }
        struct dconn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pid = pid;
        c->uid = uid;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = d->conns;
        if (d->conns)
            d->conns->prev = c;
        d->conns = c;
        d->nconns++;
    }
}

/*
 * epoll tags: the listening socket and the eventfd by address; a pidfd by
 * its daemon ID (a small integer, never a valid heap address); a
 * connection by its pointer.
 */
static void *loop_main(void *arg)
{
    struct dmce_disp *d = arg;
    struct epoll_event evs[64];
    while (!atomic_load(&d->stop)) {
        int n = epoll_wait(d->epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LOG_ERROR("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &d->listen_fd) {
                conn_accept(d);
                continue;
            }
            if (evs[i].data.ptr == &d->evfd)
                continue;
            if (evs[i].data.u64 <= MAX_DAEMONS) { /* a daemon's pidfd: its process exited */
                uint32_t id = (uint32_t)evs[i].data.u64;
                pthread_mutex_lock(&d->lock);
                mark_dead_locked(d, id, "its process exited", 0);
                pthread_mutex_unlock(&d->lock);
                continue;
            }
            struct dconn *c = evs[i].data.ptr;
            int bad = 0;
            if (evs[i].events & EPOLLOUT) {
                bad = conn_flush(d, c) < 0;
            } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                int r = conn_input(d, c);
                /* Closing with nothing to send (a reply that could not be made):
                 * conn_input reads no more from it, so only this closes it. */
                bad = r != 0 ||
                      ((dmce_outbuf_pending(&c->out) || c->closing) && conn_flush(d, c) < 0);
            }
            if (bad)
                conn_close(d, c);
        }
    }
    while (d->conns)
        conn_close(d, d->conns);
    return NULL;
}

/* ---- transparent mode: forwarding threads ------------------------------------------------ */

/* Operations a transparent client sends: the memory ops, answered by forwarding. */
static int forwarded_op(unsigned op)
{
    return op == DMCE_MSMP_OP_SETUP || op == DMCE_MSMP_OP_MALLOC || op == DMCE_MSMP_OP_READ ||
           op == DMCE_MSMP_OP_WRITE || op == DMCE_MSMP_OP_FREE || op == DMCE_MSMP_OP_DISCONNECT ||
           op == DMCE_MSMP_OP_STATS || op == DMCE_MSMP_OP_PERSIST;
}

static int fwd_flush(struct fwd *f)
{
    size_t n;
    const uint8_t *p = dmce_outbuf_data(&f->out, &n);
    int r = n ? dmce_write_full(f->fd, p, n, dmce_now_ms() + 10000) : 0;
    dmce_outbuf_reset(&f->out, 1u << 21);
    return r;
}

/*
 * One request of a transparent client, answered through the thread's own
 * libdmce client (*c, connected on first use): the same routing, failover
 * and errors as a direct client. Returns 1 after disconnect.
 */
static int fwd_handle(struct fwd *f, dmce_client_t **c, const dmce_msmp_hdr_t *h,
                      const uint8_t *p, uint8_t *scratch)
{
    struct dmce_disp *d = f->d;
    int r = 0;
    uint32_t rlen = 0;
    uint8_t small[DMCE_MSMP_STATS_SIZE];
    const uint8_t *rp = small;
    if (!*c) {
        dmce_connect_opts_t o = {.runtime_dir = d->cfg.runtime_dir,
                                 .flags = DMCE_CONNECT_NO_MAP,
                                 .io_timeout_ms = (unsigned)d->cfg.request_timeout_ms * 2};
        r = dmce_connect(&o, c);
        if (r < 0) {
            *c = NULL;
            goto reply;
        }
    }
    switch (h->op) {
    case DMCE_MSMP_OP_SETUP: {
        dmce_msmp_setup_req_t rq;
        uint64_t granted = 0;
        if ((r = dmce_msmp_setup_req_decode(p, h->len, &rq)) < 0)
            break;
        if (rq.layout != UINT32_MAX && rq.layout != (uint32_t)d->cfg.layout) {
            r = DMCE_ELAYOUT;
            break;
        }
        dmce_token_t tok;
        memcpy(tok.bytes, rq.token, sizeof(tok.bytes));
        if ((r = dmce_setup(*c, rq.amount, rq.flags, &tok, &granted)) < 0)
            break;
        dmce_msmp_setup_resp_t rs = {.granted = granted,
                                     .session_id = DMCE_SESSION_GLOBAL,
                                     .daemon_id = 0, /* the dispatcher */
                                     .layout = (uint32_t)d->cfg.layout,
                                     .max_payload = DMCE_MSMP_PAYLOAD_DEFAULT,
                                     .block_first = 1,
                                     .block_last = d->nids - 1};
        dmce_msmp_setup_resp_encode(&rs, small);
        rlen = DMCE_MSMP_SETUP_RESP_SIZE;
        break;
    }
    case DMCE_MSMP_OP_MALLOC: {
        uint64_t size;
        dmce_addr_t a;
        if ((r = dmce_msmp_u64_decode(p, h->len, &size)) == 0 && (r = dmce_malloc(*c, size, &a)) == 0) {
            dmce_msmp_u64_encode(a, small);
            rlen = 8;
        }
        break;
    }
    case DMCE_MSMP_OP_FREE: {
        uint64_t a;
        if ((r = dmce_msmp_u64_decode(p, h->len, &a)) == 0)
            r = dmce_free(*c, a);
        break;
    }
    case DMCE_MSMP_OP_READ: {
        dmce_msmp_rw_req_t rq;
        if ((r = dmce_msmp_read_req_decode(p, h->len, &rq)) == 0 && rq.len > DMCE_MSMP_PAYLOAD_DEFAULT)
            r = -EMSGSIZE;
        if (r == 0 && (r = dmce_read(*c, rq.addr, scratch, rq.len)) == 0) {
            rp = scratch;
            rlen = rq.len;
        }
        break;
    }
    case DMCE_MSMP_OP_WRITE: {
        dmce_msmp_rw_req_t rq;
        if ((r = dmce_msmp_write_req_decode(p, h->len, &rq)) == 0 &&
            (r = dmce_write(*c, rq.addr, p + DMCE_MSMP_WRITE_HDR, rq.len)) == 0) {
            dmce_put_le32(small, rq.len);
            dmce_put_le32(small + 4, 0);
            rlen = DMCE_MSMP_WRITE_RESP_SIZE;
        }
        break;
    }
    case DMCE_MSMP_OP_PERSIST: {
        dmce_msmp_range_t rq[DMCE_MSMP_PERSIST_MAX];
        dmce_range_t v[DMCE_MSMP_PERSIST_MAX];
        unsigned n = 0;
        if ((r = dmce_msmp_ranges_decode(p, h->len, rq, DMCE_MSMP_PERSIST_MAX, &n)) == 0) {
            for (unsigned i = 0; i < n; i++)
                v[i] = (dmce_range_t){.addr = rq[i].addr, .len = (size_t)rq[i].len};
            r = dmce_persistv(*c, v, n);
        }
        break;
    }
    case DMCE_MSMP_OP_STATS: {
        dmce_stats_t st;
        uint64_t v[DMCE_STAT_COUNT_];
        if (h->len)
            r = -EBADMSG;
        else if ((r = dmce_stats(*c, &st)) == 0) {
            st.daemon_id = 0;
            st.pid = (uint32_t)getpid();
            st.block_first = 1;
            st.block_last = d->nids - 1;
            dmce_msmp_stats_from_struct(&st, v);
            dmce_msmp_stats_encode(v, small);
            rlen = DMCE_MSMP_STATS_SIZE;
        }
        break;
    }
    case DMCE_MSMP_OP_DISCONNECT:
        r = h->len ? -EBADMSG : dmce_disconnect(*c);
        if (!h->len)
            *c = NULL;
        break;
    default:
        r = -EOPNOTSUPP; /* mapping, rings and the store are direct-mode only */
    }
reply:
    atomic_fetch_add_explicit(&d->forwarded, 1, memory_order_relaxed);
    uint8_t *out = dmce_outbuf_reply(&f->out, h, r, r == 0 ? rlen : 0);
    if (out && r == 0 && rlen)
        memcpy(out, rp, rlen);
    return h->op == DMCE_MSMP_OP_DISCONNECT && h->len == 0;
}

static void *fwd_main(void *arg)
{
    struct fwd *f = arg;
    dmce_client_t *c = NULL;
    uint8_t *scratch = malloc(DMCE_MSMP_PAYLOAD_DEFAULT);
    dmce_fd_set_nonblock(f->fd, 0);
    int stop = !scratch || fwd_flush(f) < 0;
    while (!stop) {
        dmce_msmp_hdr_t h;
        const uint8_t *payload;
        size_t need;
        int r = dmce_inbuf_frame(&f->in, DMCE_MSMP_PAYLOAD_DEFAULT, &h, &payload, &need);
        if (r < 0) { /* malformed: answer and hang up, as a daemon does */
            if (r == DMCE_EBADMAGIC || r == DMCE_EVERSION)
                h.req_id = 0;
            dmce_outbuf_reply(&f->out, &h, r, 0);
            fwd_flush(f);
            break;
        }
        if (r == 1) {
            if (h.flags & DMCE_MSMP_FLAG_RESPONSE)
                stop = !dmce_outbuf_reply(&f->out, &h, -EPROTO, 0);
            else
                stop = fwd_handle(f, &c, &h, payload, scratch);
            dmce_inbuf_consume(&f->in, DMCE_MSMP_HDR_SIZE + (size_t)h.len);
            if (dmce_inbuf_pending(&f->in) < DMCE_MSMP_HDR_SIZE && fwd_flush(f) < 0)
                break; /* answers go out when no further request is already here */
            continue;
        }
        if (fwd_flush(f) < 0 ||
            dmce_inbuf_reserve(&f->in, DMCE_MAX(need, (size_t)IN_CHUNK), IN_CHUNK) < 0)
            break;
        size_t room;
        uint8_t *at = dmce_inbuf_room(&f->in, &room);
        ssize_t n = recv(f->fd, at, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* the client left (or the dispatcher stops: shutdown) */
        dmce_inbuf_filled(&f->in, (size_t)n);
    }
    fwd_flush(f);
    if (c) /* gone without disconnect: its sessions stay for the daemons' grace period */
        dmce_abandon(c);
    free(scratch);
    close(f->fd);
    dmce_inbuf_free(&f->in);
    dmce_outbuf_free(&f->out);
    atomic_store(&f->done, 1);
    return NULL;
}

/* Join forwarding threads that ended. d->lock held. */
static void fwd_reap_locked(struct dmce_disp *d)
{
    for (struct fwd **pp = &d->fwds; *pp;) {
        struct fwd *f = *pp;
        if (!atomic_load(&f->done)) {
            pp = &f->next;
            continue;
        }
        pthread_join(f->thread, NULL);
        *pp = f->next;
        d->nfwds--;
        free(f);
    }
}

/*
 * The connection's first memory operation: a transparent client. Its
 * socket, and every byte already received, go to a thread of its own.
 * 0: handed over (the control loop forgets the connection); <0: refused.
 */
static int fwd_start(struct dmce_disp *d, struct dconn *c)
{
    struct fwd *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->d = d;
    f->fd = c->fd;
    f->pid = c->pid;
    f->in = c->in;
    f->out = c->out;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, c->fd, NULL); /* before the thread may close it */
    pthread_mutex_lock(&d->lock);
    fwd_reap_locked(d);
    int r = -pthread_create(&f->thread, NULL, fwd_main, f);
    if (r == 0) {
        f->next = d->fwds;
        d->fwds = f;
        d->nfwds++;
    }
    pthread_mutex_unlock(&d->lock);
    if (r < 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, c->fd, &ev);
        c->want_out = 0;
        free(f);
        return r;
    }
    memset(&c->in, 0, sizeof(c->in));
    memset(&c->out, 0, sizeof(c->out));
    c->fd = -1;
    LOG_DEBUG("pid %d: transparent client, forwarded by its own thread", (int)c->pid);
    return 0;
}

static void fwd_stop_all(struct dmce_disp *d)
{
    pthread_mutex_lock(&d->lock);
    for (struct fwd *f = d->fwds; f; f = f->next)
        if (!atomic_load(&f->done))
            shutdown(f->fd, SHUT_RDWR);
    pthread_mutex_unlock(&d->lock);
    for (;;) {
        pthread_mutex_lock(&d->lock);
        struct fwd *f = d->fwds;
        if (f)
            d->fwds = f->next;
        pthread_mutex_unlock(&d->lock);
        if (!f)
            break;
        pthread_join(f->thread, NULL);
        free(f);
    }
}

/* ---- the orchestrator ---------------------------------------------------------------------- */

/* 1 if the daemon at path answers a stats request on a new connection. */
static int daemon_answers(struct dmce_disp *d, const char *path)
{
    dmce_mconn_t k;
    if (dmce_mconn_init(&k, path, (unsigned)d->cfg.request_timeout_ms, DMCE_MCONN_NO_RING) < 0)
        return 0;
    uint8_t resp[DMCE_MSMP_STATS_SIZE];
    size_t rlen = 0;
    int r = dmce_mconn_rpc(&k, DMCE_MSMP_OP_STATS, NULL, 0, NULL, 0, resp, sizeof(resp), &rlen, NULL);
    dmce_mconn_close(&k);
    return r == 0;
}

/*
 * One request to daemon `id` on the orchestrator's connection. A daemon
 * that stalls, answers garbage or cannot be reached is dead (fenced and
 * failed over); so is one whose connection broke during a request that
 * changes its blocks, unless the request is harmless to lose (below).
 */
static int daemon_rpc(struct dmce_disp *d, uint32_t id, uint16_t op, const void *p, size_t l,
                      void *resp, size_t cap, size_t *rlen)
{
    struct ddaemon *x = &d->daemons[id];
    pthread_mutex_lock(&d->lock);
    char path[sizeof(x->path)];
    memcpy(path, x->path, sizeof(path));
    pthread_mutex_unlock(&d->lock);
    if (!x->cmd_ready || strcmp(x->cmd.path, path) != 0) {
        if (x->cmd_ready)
            dmce_mconn_close(&x->cmd);
        if (dmce_mconn_init(&x->cmd, path, (unsigned)d->cfg.request_timeout_ms,
                            DMCE_MCONN_NO_RING) < 0)
            return -ENAMETOOLONG;
        x->cmd_ready = 1;
    }
    int r = dmce_mconn_rpc(&x->cmd, op, p, l, NULL, 0, resp, cap, rlen, NULL);
    /*
     * The connection broke: the daemon died, or only the connection did (it
     * dropped ours after a fault of its own, or our send failed). For a
     * request that changes nothing (blocks) or that is harmless whether or
     * not it was carried out (mirror_start: the daemon reports the mirror
     * itself, a second start answers EALREADY), a daemon that answers on a
     * new connection is not dead: blocks is asked again, mirror_start
     * fails. Any other request (promote, adopt, release, drop, reparent)
     * may have been carried out without our knowing: the daemon is fenced
     * as before, rather than leave two owners of a block.
     */
    if (r == DMCE_ECLOSED && (op == DMCE_MSMP_OP_BLOCKS || op == DMCE_MSMP_OP_MIRROR_START) &&
        daemon_answers(d, path)) {
        LOG_WARN("memd[%u]: %s: the connection broke, but the daemon answers; not failed over",
                 id, dmce_msmp_op_name(op));
        dmce_mconn_close(&x->cmd);
        x->cmd_ready = 0;
        if (op != DMCE_MSMP_OP_BLOCKS)
            return r;
        if (dmce_mconn_init(&x->cmd, path, (unsigned)d->cfg.request_timeout_ms,
                            DMCE_MCONN_NO_RING) < 0)
            return -ENAMETOOLONG;
        x->cmd_ready = 1;
        r = dmce_mconn_rpc(&x->cmd, op, p, l, NULL, 0, resp, cap, rlen, NULL);
    }
    if (r == -ETIMEDOUT || r == -EPROTO || r == DMCE_ECLOSED || r == -ECONNREFUSED) {
        pthread_mutex_lock(&d->lock);
        mark_dead_locked(d, id,
                         r == -ETIMEDOUT ? "it stalled (request_timeout_ms)"
                         : r == -EPROTO  ? "it answered garbage"
                                         : "its socket is gone",
                         1);
        pthread_mutex_unlock(&d->lock);
    }
    return r;
}

/*
 * Tell the primary of block b that its mirror's holder died (drop with
 * DMCE_MSMP_DROP_KEEP). When it keeps the copy for a new holder, and the
 * block still waits for a mirror, note it (kept): its re-mirror is a
 * takeover. Not under d->lock. Returns the drop's status.
 */
static int drop_dead_holder_copy(struct dmce_disp *d, uint32_t b, uint32_t primary)
{
    uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE], resp[DMCE_MSMP_DROP_RESP_SIZE];
    size_t rlen = 0;
    dmce_msmp_drop_req_encode(b, DMCE_MSMP_DROP_KEEP, rq);
    int r = daemon_rpc(d, primary, DMCE_MSMP_OP_DROP, rq, sizeof(rq), resp, sizeof(resp), &rlen);
    int kept = r == 0 && rlen == sizeof(resp) && (dmce_get_le32(resp) & DMCE_MSMP_DROP_KEPT);
    pthread_mutex_lock(&d->lock);
    struct dblock *k = &d->blocks[b];
    if (kept && k->live && k->primary == primary && k->state == DMCE_DISP_SINGLE)
        k->kept = 1;
    pthread_mutex_unlock(&d->lock);
    return r;
}

/* Promote the mirrors of dead daemon `id`'s blocks; drop the mirrors it held. */
static void failover(struct dmce_disp *d, uint32_t id)
{
    uint64_t t0 = dmce_now_ms();
    unsigned promoted = 0, lost = 0;
    for (uint32_t b = 1; b < d->nids; b++) {
        pthread_mutex_lock(&d->lock);
        struct dblock k = d->blocks[b];
        pthread_mutex_unlock(&d->lock);
        if (!k.live)
            continue;
        if (k.primary == id) {
            int r = -ENODEV;
            /* A new block that died before its events: its copy, if made, is whole. */
            uint32_t holder = k.state == DMCE_DISP_MIRRORED ? k.mirror
                              : k.fresh && k.state == DMCE_DISP_REMIRRORING ? k.peer_pending
                                                                             : 0;
            pthread_mutex_lock(&d->lock);
            int holder_alive = holder && d->daemons[holder].state == DMCE_DISP_ALIVE;
            pthread_mutex_unlock(&d->lock);
            if (holder_alive) {
                uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE], resp[DMCE_MSMP_PROMOTE_RESP_SIZE];
                dmce_msmp_block_req_encode(b, rq);
                r = daemon_rpc(d, holder, DMCE_MSMP_OP_PROMOTE, rq, sizeof(rq), resp,
                               sizeof(resp), NULL);
            }
            pthread_mutex_lock(&d->lock);
            struct dblock *kk = &d->blocks[b];
            if (r == 0 || r == -EALREADY) {
                kk->mirror = (uint16_t)holder;
                kk->fresh = 0;
                kk->primary = kk->mirror;
                kk->mirror = 0;
                kk->state = DMCE_DISP_SINGLE;
                kk->since_ms = 0;
                d->st[DMCE_DSTAT_PROMOTIONS]++;
                promoted++;
            } else {
                memset(kk, 0, sizeof(*kk));
                d->st[DMCE_DSTAT_BLOCKS_LOST]++;
                lost++;
                LOG_ERROR("block %u is lost: memd[%u] died and %s", b, id,
                          k.mirror ? "its mirror could not be promoted" : "it had no mirror");
            }
            bump_locked(d);
            pthread_mutex_unlock(&d->lock);
        } else if (k.state == DMCE_DISP_REMIRRORING && k.peer_pending == id) {
            pthread_mutex_lock(&d->lock); /* a copy being made onto the dead daemon */
            if (d->blocks[b].state == DMCE_DISP_REMIRRORING) {
                d->blocks[b].state = DMCE_DISP_SINGLE;
                d->blocks[b].since_ms = 0;
                d->blocks[b].drop_mirror = 1;
                bump_locked(d);
            }
            pthread_mutex_unlock(&d->lock);
        } else if (k.mirror == id) {
            pthread_mutex_lock(&d->lock);
            d->blocks[b].mirror = 0;
            d->blocks[b].state = DMCE_DISP_SINGLE;
            d->blocks[b].since_ms = 0;
            bump_locked(d);
            int primary_alive = d->daemons[k.primary].state == DMCE_DISP_ALIVE;
            pthread_mutex_unlock(&d->lock);
            if (primary_alive) /* its copy has no holder: kept for a new one, or dropped */
                drop_dead_holder_copy(d, b, k.primary);
        }
    }
    pthread_mutex_lock(&d->lock);
    struct ddaemon *x = &d->daemons[id];
    x->failover = 0;
    x->count = 0; /* its range is free again (except IDs its blocks keep elsewhere) */
    uint64_t took = dmce_now_ms() - x->died_ms;
    d->st[DMCE_DSTAT_LAST_FAILOVER_MS] = took;
    pthread_mutex_unlock(&d->lock);
    if (x->cmd_ready) {
        dmce_mconn_close(&x->cmd);
        x->cmd_ready = 0;
    }
    LOG_WARN("memd[%u] failed over in %llu ms (%llu ms after it died): %u block(s) promoted, "
             "%u lost",
             id, (unsigned long long)(dmce_now_ms() - t0), (unsigned long long)took, promoted,
             lost);
}

/*
 * Whether daemon `id` may still register: this dispatcher has never heard
 * of it and started less than the orphan wait ago (a restarted dispatcher
 * hears from the daemons one by one). A copy it holds is not yet a copy on
 * a dead daemon.
 */
static int peer_may_register_locked(const struct dmce_disp *d, uint32_t id)
{
    uint64_t wait = DMCE_MAX(2000ull, 20ull * (uint64_t)d->cfg.heartbeat_ms);
    return d->daemons[id].state == 0 && dmce_now_ms() - d->start_ms < wait;
}

/* Learn daemon `id`'s blocks (it registered: new, restarted, or a new dispatcher). */
static void read_blocks(struct dmce_disp *d, uint32_t id)
{
    size_t cap = 8 + (size_t)(d->daemons[id].max_blocks + 8) * DMCE_MSMP_BLOCK_INFO_SIZE;
    uint8_t *buf = malloc(cap);
    size_t n = 0;
    if (!buf)
        return;
    int r = daemon_rpc(d, id, DMCE_MSMP_OP_BLOCKS, NULL, 0, buf, cap, &n);
    uint32_t count = 0;
    if (r == 0)
        r = dmce_msmp_blocks_count(buf, n, &count);
    for (uint32_t i = 0; r == 0 && i < count; i++) {
        dmce_msmp_block_info_t e;
        if (dmce_msmp_block_info_decode(buf, n, i, &e) < 0 || e.block >= d->nids ||
            e.peer > MAX_DAEMONS)
            continue;
        int drop = 0;
        pthread_mutex_lock(&d->lock);
        struct dblock *k = &d->blocks[e.block];
        if (e.role == 0) { /* a primary */
            if (k->live && k->primary != id) {
                LOG_ERROR("memd[%u] and memd[%u] both hold block %u as primary; keeping memd[%u]'s",
                          id, k->primary, e.block, k->primary);
            } else {
                k->live = 1;
                k->orphan = 0;
                k->primary = (uint16_t)id;
                if (e.mirror_state == 2 && e.peer &&
                    d->daemons[e.peer].state == DMCE_DISP_ALIVE) {
                    k->mirror = (uint16_t)e.peer;
                    k->state = DMCE_DISP_MIRRORED;
                    k->kept = 0;
                } else if (e.mirror_state == 2 && e.peer && peer_may_register_locked(d, e.peer)) {
                    /* Mirrored on a daemon that has not registered again yet: progress() decides. */
                    k->mirror = 0;
                    k->state = DMCE_DISP_REMIRRORING;
                    k->peer_pending = (uint16_t)e.peer;
                    k->since_ms = dmce_now_ms();
                } else if (k->state != DMCE_DISP_REMIRRORING) {
                    k->mirror = 0;
                    k->state = DMCE_DISP_SINGLE;
                }
            }
        } else if (k->live && k->primary == e.peer && k->mirror == id) {
            /* the copy the directory expects */
        } else if (k->live && k->primary == e.peer && k->mirror && k->state == DMCE_DISP_MIRRORED) {
            /*
             * Another daemon holds its mirror: copied or taken over while this
             * one was counted dead (a stall not fenced, or a drop it never
             * got). This copy is kept in step by nobody: it goes.
             */
            drop = 1;
        } else if (k->live && k->primary == e.peer && !k->mirror) {
            /* its primary has not said yet: it will (its own blocks) */
        } else if (!k->live) {
            /*
             * A copy of a block nobody has reported as primary yet. Its
             * primary may register after this daemon (a new dispatcher), or be
             * dead: then this copy is the only one. Never drop it here:
             * adopt_orphans() waits for the primary or promotes it.
             */
            if (!k->orphan) {
                k->orphan = (uint16_t)id;
                k->orphan_primary = (uint16_t)e.peer;
                k->orphan_ms = dmce_now_ms();
                k->orphan_retry_ms = 0;
            }
        } else if (k->primary != e.peer) {
            drop = 1; /* the block lives elsewhere now: this copy is stale */
        }
        bump_locked(d);
        pthread_mutex_unlock(&d->lock);
        if (drop) { /* a copy of a block that is gone or lives elsewhere: free its memory */
            uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE];
            dmce_msmp_block_req_encode(e.block, rq);
            if (daemon_rpc(d, id, DMCE_MSMP_OP_DROP, rq, sizeof(rq), NULL, 0, NULL) == 0)
                LOG_INFO("memd[%u]: dropped its stale copy of block %u", id, e.block);
        }
    }
    free(buf);
    pthread_mutex_lock(&d->lock);
    if (r == 0)
        d->daemons[id].blocks_read = 1; /* an orphan it did not report is not its any more */
    else if (d->daemons[id].state == DMCE_DISP_ALIVE)
        d->daemons[id].need_blocks = 1; /* try again next round */
    pthread_mutex_unlock(&d->lock);
    if (r < 0)
        LOG_WARN("cannot read memd[%u]'s blocks: %s", id, dmce_strerror(r));
}

/* Primaries told to stop keeping a mirror on a daemon that died (drop_mirror). */
static void drop_dead_mirrors(struct dmce_disp *d)
{
    uint32_t due[64], prim[64];
    unsigned n = 0;
    pthread_mutex_lock(&d->lock);
    for (uint32_t b = 1; b < d->nids && n < 64; b++) {
        struct dblock *k = &d->blocks[b];
        if (!k->drop_mirror)
            continue;
        k->drop_mirror = 0;
        if (k->live && d->daemons[k->primary].state == DMCE_DISP_ALIVE) {
            due[n] = b;
            prim[n++] = k->primary;
        }
    }
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < n; i++) {
        int r = drop_dead_holder_copy(d, due[i], prim[i]);
        LOG_INFO("block %u: memd[%u] told to drop its mirror on a dead daemon%s%s", due[i],
                 prim[i], r < 0 && r != -ENOENT ? ": " : "",
                 r < 0 && r != -ENOENT ? dmce_strerror(r) : "");
    }
}

/*
 * Copies whose primary never reported the block: promote them when the
 * primary is dead, or has not registered within ORPHAN_WAIT of the copy
 * being seen (a live daemon re-registers every heartbeat_ms). Until then,
 * and while the primary lives, wait: it reports the block itself.
 */
/* Whether the copy of orphan block k must be promoted now (d->lock held). */
static int orphan_due_locked(const struct dmce_disp *d, const struct dblock *k, uint64_t now,
                             uint64_t wait)
{
    const struct ddaemon *p = &d->daemons[k->orphan_primary];
    if (now < k->orphan_retry_ms)
        return 0;
    if (p->state == DMCE_DISP_DEAD)
        return 1; /* it died without reporting the block */
    if (p->state == DMCE_DISP_ALIVE) /* its blocks were read and this one was not among them, */
        return p->blocks_read &&     /* nor did its "created" event come since (in flight?) */
               now - k->orphan_ms >= 5ull * (uint64_t)d->cfg.heartbeat_ms;
    return now - k->orphan_ms >= wait; /* never registered with us */
}

static void adopt_orphans(struct dmce_disp *d)
{
    uint64_t now = dmce_now_ms();
    uint64_t wait = DMCE_MAX(2000ull, 20ull * (uint64_t)d->cfg.heartbeat_ms);
    uint32_t due[64];
    unsigned n = 0;
    pthread_mutex_lock(&d->lock);
    for (uint32_t b = 1; b < d->nids && n < 64; b++) {
        struct dblock *k = &d->blocks[b];
        if (!k->orphan)
            continue;
        if (k->live || d->daemons[k->orphan].state != DMCE_DISP_ALIVE) {
            k->orphan = 0; /* reported after all, or its holder is gone too */
            continue;
        }
        if (orphan_due_locked(d, k, now, wait))
            due[n++] = b;
    }
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < n; i++) {
        uint32_t b = due[i];
        pthread_mutex_lock(&d->lock);
        struct dblock *k = &d->blocks[b];
        uint32_t holder = k->orphan, primary = k->orphan_primary;
        /* again, just before: its primary may have registered meanwhile */
        int go = holder && !k->live && orphan_due_locked(d, k, dmce_now_ms(), wait);
        int dead = d->daemons[primary].state == DMCE_DISP_DEAD;
        pthread_mutex_unlock(&d->lock);
        if (!go)
            continue;
        uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE], resp[DMCE_MSMP_PROMOTE_RESP_SIZE];
        dmce_msmp_block_req_encode(b, rq);
        int r = daemon_rpc(d, holder, DMCE_MSMP_OP_PROMOTE, rq, sizeof(rq), resp, sizeof(resp),
                           NULL);
        pthread_mutex_lock(&d->lock);
        k = &d->blocks[b];
        if ((r == 0 || r == -EALREADY) && !k->live) {
            k->live = 1;
            k->primary = (uint16_t)holder;
            k->mirror = 0;
            k->state = DMCE_DISP_SINGLE;
            k->since_ms = 0;
            k->drop_mirror = 0;
            d->st[DMCE_DSTAT_PROMOTIONS]++;
            bump_locked(d);
        }
        if (r == 0 || r == -EALREADY || d->daemons[holder].state != DMCE_DISP_ALIVE)
            k->orphan = 0;
        else
            k->orphan_retry_ms = dmce_now_ms() + 1000; /* the holder lives: try again */
        pthread_mutex_unlock(&d->lock);
        if (r == 0 || r == -EALREADY)
            LOG_WARN("block %u: its primary memd[%u] %s; promoted the copy on memd[%u]", b, primary,
                     dead ? "is dead" : "does not have it (or did not register)", holder);
        else
            LOG_ERROR("block %u: cannot promote the copy on memd[%u] (its primary memd[%u] does "
                      "not have it): %s",
                      b, holder, primary, dmce_strerror(r));
    }
}

/* Start copying single-copy blocks to new mirrors, remirror_parallel at a time. */
static void remirror(struct dmce_disp *d)
{
    uint64_t now = dmce_now_ms();
    for (;;) {
        pthread_mutex_lock(&d->lock);
        unsigned running = 0;
        uint32_t pick = 0, peer = 0;
        if (cluster_flags_locked(d) & DMCE_DISP_MIRRORING) {
            /* A takeover (kept) first: it copies nothing and does not count as a copy. */
            for (uint32_t b = 1; b < d->nids; b++) {
                struct dblock *k = &d->blocks[b];
                running += k->live && k->state == DMCE_DISP_REMIRRORING && !k->kept;
                if ((pick && (d->blocks[pick].kept || !k->kept)) || !k->live ||
                    k->state != DMCE_DISP_SINGLE || k->since_ms > now ||
                    k->drop_mirror || /* its dead mirror is dropped first (drop_dead_mirrors) */
                    d->daemons[k->primary].state != DMCE_DISP_ALIVE)
                    continue;
                uint32_t p = choose_peer_locked(d, k->primary, d->daemons[k->primary].block_size);
                if (p) {
                    pick = b;
                    peer = p;
                }
            }
        }
        if (!pick || (!d->blocks[pick].kept && running >= (unsigned)d->cfg.remirror_parallel)) {
            pthread_mutex_unlock(&d->lock);
            return;
        }
        struct dblock *k = &d->blocks[pick];
        uint32_t primary = k->primary;
        k->state = DMCE_DISP_REMIRRORING;
        k->since_ms = now;
        k->copied = 0;
        k->peer_pending = (uint16_t)peer;
        dmce_msmp_mirror_start_t ms = {.block = pick, .peer = peer};
        memcpy(ms.path, d->daemons[peer].path, sizeof(d->daemons[peer].path));
        d->st[DMCE_DSTAT_REMIRRORS_STARTED]++;
        bump_locked(d);
        pthread_mutex_unlock(&d->lock);
        uint8_t buf[DMCE_MSMP_MIRROR_START_HDR + DMCE_MSMP_PATH_MAX];
        int n = dmce_msmp_mirror_start_encode(&ms, buf, sizeof(buf));
        int r = n > 0 ? daemon_rpc(d, primary, DMCE_MSMP_OP_MIRROR_START, buf, (size_t)n, NULL, 0,
                                   NULL)
                      : n;
        if (r == -EALREADY) /* the primary is mirroring it already (a new block of its own) */
            LOG_DEBUG("block %u of memd[%u]: its mirror is already being made", pick, primary);
        else
            LOG_INFO("re-mirroring block %u of memd[%u] onto memd[%u]%s%s", pick, primary, peer,
                     r < 0 ? ": " : "", r < 0 ? dmce_strerror(r) : "");
        if (r < 0 && r != -EALREADY) {
            pthread_mutex_lock(&d->lock);
            k->kept = 0; /* gone, or a copy to make, as far as we know */
            k->state = DMCE_DISP_SINGLE;
            k->since_ms = now + 200ull * (1u << DMCE_MIN(k->tries, 8));
            k->tries++;
            pthread_mutex_unlock(&d->lock);
        }
    }
}

/*
 * Progress of the copies under way, from the primaries' block lists; a copy
 * whose event was lost is settled here (a synced mirror, or none).
 */
/* A synced mirror whose event is not here this long after the start: its event was lost. */
#define EVENT_GRACE_MS 1000u
static void progress(struct dmce_disp *d)
{
    uint8_t want[MAX_DAEMONS + 1] = {0};
    pthread_mutex_lock(&d->lock);
    unsigned under_way = 0;
    for (uint32_t b = 1; b < d->nids; b++) {
        const struct dblock *k = &d->blocks[b];
        if (k->live && k->state == DMCE_DISP_REMIRRORING) {
            want[k->primary] = 1;
            under_way++;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (!under_way)
        return;
    uint64_t copied = 0;
    for (uint32_t id = 1; id <= MAX_DAEMONS; id++) {
        if (!want[id])
            continue;
        size_t cap = 8 + (size_t)(d->daemons[id].max_blocks + 8) * DMCE_MSMP_BLOCK_INFO_SIZE, n = 0;
        uint8_t *buf = malloc(cap);
        uint32_t count = 0;
        if (!buf || daemon_rpc(d, id, DMCE_MSMP_OP_BLOCKS, NULL, 0, buf, cap, &n) < 0 ||
            dmce_msmp_blocks_count(buf, n, &count) < 0) {
            free(buf);
            continue;
        }
        for (uint32_t i = 0; i < count; i++) {
            dmce_msmp_block_info_t e;
            if (dmce_msmp_block_info_decode(buf, n, i, &e) < 0 || e.role != 0 ||
                e.block >= d->nids)
                continue;
            pthread_mutex_lock(&d->lock);
            struct dblock *k = &d->blocks[e.block];
            if (k->live && k->primary == id && k->state == DMCE_DISP_REMIRRORING) {
                k->copied = e.copied;
                copied += e.copied;
                if (e.mirror_state == 2 && e.peer && e.peer <= MAX_DAEMONS &&
                    peer_may_register_locked(d, e.peer)) {
                    /*
                     * A copy on a daemon this dispatcher has not heard from yet
                     * (it restarted; the daemon registers in a moment): wait for
                     * it rather than drop a good mirror.
                     */
                } else if (e.mirror_state == 2 && e.peer &&
                           (e.peer > MAX_DAEMONS || d->daemons[e.peer].state != DMCE_DISP_ALIVE)) {
                    k->state = DMCE_DISP_SINGLE; /* made on a daemon that died since */
                    k->since_ms = 0;
                    k->drop_mirror = 1;
                } else if (e.mirror_state == 2 && e.peer &&
                           dmce_now_ms() - k->since_ms < EVENT_GRACE_MS) {
                    /*
                     * Synced: its block_event is on its way (the pulse thread
                     * sends it at once) and says whether the copy was made or
                     * taken over; settled here only if that event is lost.
                     */
                } else if (e.mirror_state == 2 && e.peer) {
                    k->mirror = (uint16_t)e.peer;
                    k->state = DMCE_DISP_MIRRORED;
                    k->kept = 0;
                    d->st[DMCE_DSTAT_REMIRRORS_DONE]++;
                    /* copied or taken over: the lost event would have said */
                    d->st[DMCE_DSTAT_REMIRROR_BYTES] += e.copied;
                    bump_locked(d);
                } else if (e.mirror_state == 0 && dmce_now_ms() - k->since_ms > 2000) {
                    k->state = DMCE_DISP_SINGLE; /* the copy failed: try again */
                    k->since_ms = dmce_now_ms() + 500;
                }
            }
            pthread_mutex_unlock(&d->lock);
        }
        free(buf);
    }
    uint64_t now = dmce_now_ms();
    if (now - d->last_progress_ms >= 1000) {
        d->last_progress_ms = now;
        LOG_INFO("re-mirroring: %u block(s) being copied, %.1f MiB copied so far", under_way,
                 (double)copied / (1 << 20));
    }
}

/* ---- moves (orchestrator) ------------------------------------------------------------------- */

#define JOB_BUSY_TRIES 100  /* -EBUSY (a copy to a new mirror, a prefault): 100 ms apart */
#define JOBS_ROUND_MS 50    /* moves per round stop after this: pulses and deaths come first */

static void job_finish_locked(struct dmce_disp *d, struct djob *j, int err, uint64_t t0_ns)
{
    j->state = err ? DMCE_ADM_JOB_FAILED : DMCE_ADM_JOB_DONE;
    j->err = err;
    j->took_us = t0_ns ? (dmce_now_ns() - t0_ns) / 1000 : 0;
    d->st[err ? DMCE_DSTAT_MOVES_FAILED : DMCE_DSTAT_MOVES]++;
    if (!err)
        d->st[DMCE_DSTAT_LAST_MOVE_US] = j->took_us;
}

/*
 * Run one queued move: adopt on the target (which freezes the block on
 * its owner and takes its objects), switch the directory, release the
 * source (commit), tell the mirror's holder. On failure the source is
 * told to serve the block again (release, commit = 0: harmless if it
 * never froze). 0 when there was nothing to run.
 */
static int run_one_job(struct dmce_disp *d)
{
    uint64_t now = dmce_now_ms();
    pthread_mutex_lock(&d->lock);
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) /* blocks created on a draining daemon since */
        if (d->daemons[i].draining && d->daemons[i].state == DMCE_DISP_ALIVE)
            drain_queue_locked(d, i);
    struct djob *j = NULL;
    for (unsigned k = 0; k < d->njobs && !j; k++)
        if (d->jobs[k].state == DMCE_ADM_JOB_QUEUED && d->jobs[k].not_before_ms <= now)
            j = &d->jobs[k];
    if (!j) {
        pthread_mutex_unlock(&d->lock);
        return 0;
    }
    const struct dblock *k = &d->blocks[j->block];
    int why = 0;
    uint32_t to = 0;
    if (!k->live) {
        why = DMCE_ENOBLOCK; /* freed with its daemon, or lost */
    } else if (k->primary != j->from) {
        j->from = k->primary; /* it failed over or moved meanwhile: move it from where it is */
    }
    if (!why && d->daemons[k->primary].state != DMCE_DISP_ALIVE)
        why = -EAGAIN;
    if (!why && j->to == k->primary && !j->auto_to) {
        job_finish_locked(d, j, 0, 0); /* already there */
        pthread_mutex_unlock(&d->lock);
        return 1;
    }
    if (!why)
        to = move_target_locked(d, k, j->auto_to ? 0 : j->to, j->node, j->bytes, &why);
    if (!to) {
        if (why == -EALREADY)
            job_finish_locked(d, j, 0, 0);
        else
            job_finish_locked(d, j, why, 0);
        LOG_WARN("move of block %u: %s", j->block, why == -EALREADY ? "already there" : dmce_strerror(why));
        pthread_mutex_unlock(&d->lock);
        return 1;
    }
    j->to = to;
    j->state = DMCE_ADM_JOB_RUNNING;
    uint32_t id = j->id, block = j->block, from = j->from;
    dmce_adm_adopt_t rq = {.block = block, .from = from};
    memcpy(rq.path, d->daemons[from].path, sizeof(d->daemons[from].path));
    pthread_mutex_unlock(&d->lock);

    uint64_t t0 = dmce_now_ns();
    uint8_t buf[DMCE_ADM_ADOPT_HDR + DMCE_MSMP_PATH_MAX], resp[DMCE_ADM_ADOPT_RESP_SIZE];
    int n = dmce_adm_adopt_encode(&rq, buf, sizeof(buf));
    size_t rlen = 0;
    int r = n < 0 ? n : daemon_rpc(d, to, DMCE_MSMP_OP_ADOPT, buf, (size_t)n, resp, sizeof(resp), &rlen);
    dmce_adm_adopted_t a = {0};
    if (r == 0)
        r = dmce_adm_adopted_decode(resp, rlen, &a);

    pthread_mutex_lock(&d->lock);
    /* The job table may have moved entries: find the job again by its ID. */
    j = NULL;
    for (unsigned i = 0; i < d->njobs && !j; i++)
        if (d->jobs[i].id == id)
            j = &d->jobs[i];
    struct dblock *kk = &d->blocks[block];
    uint32_t mirror = 0;
    if (r == 0) {
        kk->primary = (uint16_t)to;
        if (kk->mirror == to) { /* it held the mirror: one copy until re-mirrored */
            kk->mirror = 0;
            kk->state = DMCE_DISP_SINGLE;
            kk->since_ms = 0;
        }
        mirror = kk->mirror;
        bump_locked(d);
        if (j) {
            job_finish_locked(d, j, 0, t0);
            j->frozen_us = a.frozen_us;
        }
    } else if (j && r == -EBUSY && j->tries < JOB_BUSY_TRIES) {
        j->tries++;
        j->state = DMCE_ADM_JOB_QUEUED;
        j->not_before_ms = dmce_now_ms() + 100;
        if (j->auto_to)
            j->to = 0;
    } else if (j) {
        job_finish_locked(d, j, r, t0);
    }
    uint64_t took = (dmce_now_ns() - t0) / 1000;
    pthread_mutex_unlock(&d->lock);

    uint8_t rel[DMCE_ADM_PAIR_SIZE];
    dmce_adm_pair_encode(block, r == 0, rel);
    int rr = daemon_rpc(d, from, DMCE_MSMP_OP_RELEASE, rel, sizeof(rel), NULL, 0, NULL);
    if (r == 0) {
        if (rr < 0)
            LOG_WARN("block %u: memd[%u] could not forget it after the move: %s", block, from,
                     dmce_strerror(rr));
        if (mirror) {
            dmce_adm_pair_encode(block, to, rel);
            daemon_rpc(d, mirror, DMCE_MSMP_OP_REPARENT, rel, sizeof(rel), NULL, 0, NULL);
        }
        LOG_INFO("block %u moved from memd[%u] to memd[%u] in %llu us (%llu allocation(s), "
                 "%.1f MiB in use; no byte copied)",
                 block, from, to, (unsigned long long)took, (unsigned long long)a.allocs,
                 (double)a.bytes / (1 << 20));
    } else if (r != -EBUSY) {
        LOG_WARN("move of block %u from memd[%u] to memd[%u] failed: %s; it stays on memd[%u]",
                 block, from, to, dmce_strerror(r), from);
    }
    return 1;
}

static void run_jobs(struct dmce_disp *d)
{
    uint64_t end = dmce_now_ms() + JOBS_ROUND_MS;
    while (dmce_now_ms() < end && !atomic_load(&d->stop) && run_one_job(d))
        ;
}

/*
 * A draining daemon's mirror copies: the primary stops keeping each one and
 * the copy is dropped, and re-mirroring makes a new one elsewhere (a
 * draining daemon never gets one). A few at a time (remirror_parallel), so
 * that few blocks are single at once. The directory says a copy is gone
 * only once both daemons have dropped it: a drain is over (the daemon may
 * be stopped) when nothing is left to tell it. Orchestrator only.
 */
static void drain_mirrors(struct dmce_disp *d)
{
    uint32_t due[64], prim[64], holder[64];
    unsigned n = 0;
    pthread_mutex_lock(&d->lock);
    unsigned running = 0;
    for (uint32_t b = 1; b < d->nids; b++)
        running += d->blocks[b].live && d->blocks[b].state != DMCE_DISP_MIRRORED;
    for (uint32_t b = 1; b < d->nids && n < 64 && running < (unsigned)d->cfg.remirror_parallel; b++) {
        struct dblock *k = &d->blocks[b];
        if (!k->live || !k->mirror || k->state != DMCE_DISP_MIRRORED ||
            !d->daemons[k->mirror].draining || d->daemons[k->primary].state != DMCE_DISP_ALIVE ||
            job_of_block_locked(d, b))
            continue;
        due[n] = b;
        prim[n] = k->primary;
        holder[n++] = k->mirror;
        running++;
    }
    pthread_mutex_unlock(&d->lock);
    for (unsigned i = 0; i < n; i++) {
        uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE];
        dmce_msmp_block_req_encode(due[i], rq);
        int r = daemon_rpc(d, prim[i], DMCE_MSMP_OP_DROP, rq, sizeof(rq), NULL, 0, NULL);
        int stopped = r == 0 || r == -ENOENT; /* the primary no longer keeps the copy */
        if (stopped)
            r = daemon_rpc(d, holder[i], DMCE_MSMP_OP_DROP, rq, sizeof(rq), NULL, 0, NULL);
        pthread_mutex_lock(&d->lock);
        struct dblock *k = &d->blocks[due[i]];
        /* Not stopped and the primary alive: the next round asks again. */
        if ((stopped || d->daemons[prim[i]].state != DMCE_DISP_ALIVE) && k->live &&
            k->mirror == holder[i] && k->primary == prim[i]) {
            k->mirror = 0; /* re-mirroring makes the next copy, not on a draining daemon */
            k->state = DMCE_DISP_SINGLE;
            k->since_ms = 0;
            bump_locked(d);
        }
        pthread_mutex_unlock(&d->lock);
        LOG_INFO("block %u: its mirror leaves draining memd[%u]%s%s", due[i], holder[i],
                 r < 0 ? ": " : "", r < 0 ? dmce_strerror(r) : "");
    }
}

static void *orch_main(void *arg)
{
    struct dmce_disp *d = arg;
    uint64_t last_round = dmce_now_ms();
    pthread_mutex_lock(&d->lock);
    while (!atomic_load(&d->stop)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* orch_cond waits on CLOCK_MONOTONIC */
        long step = (long)d->cfg.heartbeat_ms * 1000000L / 2;
        ts.tv_nsec += step;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        if (!d->orch_wake)
            pthread_cond_timedwait(&d->orch_cond, &d->lock, &ts);
        d->orch_wake = 0;
        if (atomic_load(&d->stop))
            break;
        /* Deadlines: miss_limit member pulses. */
        uint64_t now = dmce_now_ms(), limit = (uint64_t)(d->cfg.miss_limit * d->cfg.heartbeat_ms);
        if (now - last_round > 2 * (uint64_t)d->cfg.heartbeat_ms) {
            /*
             * We did not run for a while: this process (or the machine)
             * stalled, or the last round waited on a daemon. Pulses sent
             * meanwhile may still sit unread in our sockets: give every
             * daemon a heartbeat's worth more before its deadline, rather
             * than declare the whole cluster dead at once (seen: 3 of 3
             * daemons "missed" their pulses in the same millisecond after a
             * 500 ms stall). A process that exits is still seen at once
             * through its pidfd.
             */
            LOG_WARN("the dispatcher did not run for %llu ms; deadlines start over",
                     (unsigned long long)(now - last_round));
            for (uint32_t i = 1; i <= MAX_DAEMONS; i++)
                if (d->daemons[i].state == DMCE_DISP_ALIVE &&
                    d->daemons[i].last_pulse_ms + limit < now + d->cfg.heartbeat_ms)
                    d->daemons[i].last_pulse_ms = now + d->cfg.heartbeat_ms - limit;
        }
        for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
            struct ddaemon *x = &d->daemons[i];
            if (x->state == DMCE_DISP_ALIVE && now - x->last_pulse_ms > limit) {
                char why[64];
                snprintf(why, sizeof(why), "it missed %lld member pulses: none for %llu ms",
                         (long long)d->cfg.miss_limit,
                         (unsigned long long)(now - x->last_pulse_ms));
                mark_dead_locked(d, i, why, 1);
            }
        }
        uint32_t to_fail[MAX_DAEMONS], to_read[MAX_DAEMONS];
        unsigned nf = 0, nr = 0;
        for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
            struct ddaemon *x = &d->daemons[i];
            if (x->failover)
                to_fail[nf++] = i;
            else if (x->state == DMCE_DISP_ALIVE && x->need_blocks) {
                x->need_blocks = 0;
                to_read[nr++] = i;
            }
        }
        pthread_mutex_unlock(&d->lock);
        for (unsigned k = 0; k < nf; k++)
            failover(d, to_fail[k]);
        for (unsigned k = 0; k < nr; k++)
            read_blocks(d, to_read[k]);
        adopt_orphans(d);
        drop_dead_mirrors(d);
        remirror(d);
        progress(d);
        run_jobs(d);
        drain_mirrors(d);
        last_round = dmce_now_ms();
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

/* ---- spawned memory daemons --------------------------------------------------------------- */

static pid_t spawn_memd(struct dmce_disp *d, unsigned id)
{
    char idbuf[16], args[DMCE_CFG_STRMAX];
    snprintf(idbuf, sizeof(idbuf), "%u", id);
    snprintf(args, sizeof(args), "%s", d->cfg.memd_args);
    char *argv[48];
    int n = 0;
    argv[n++] = d->memd_path;
    argv[n++] = "--id";
    argv[n++] = idbuf;
    argv[n++] = "--runtime-dir";
    argv[n++] = d->cfg.runtime_dir;
    argv[n++] = "--dispatcher";
    argv[n++] = d->sock_path;
    for (char *save = NULL, *t = strtok_r(args, " \t", &save); t && n < 46;
         t = strtok_r(NULL, " \t", &save))
        argv[n++] = t;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        execv(d->memd_path, argv);
        _exit(127);
    }
    if (pid < 0)
        LOG_ERROR("cannot start memd[%u]: %s", id, strerror(errno));
    else
        LOG_INFO("started memd[%u] (pid %d): %s", id, (int)pid, d->memd_path);
    return pid;
}

void dmce_disp_reap(dmce_disp_t *d)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (unsigned i = 1; i <= (unsigned)d->cfg.spawn; i++) {
            if (d->spawn[i].pid != pid)
                continue;
            d->spawn[i].pid = 0;
            LOG_WARN("memd[%u] (pid %d) exited (%s %d)%s", i, (int)pid,
                     WIFSIGNALED(st) ? "signal" : "status",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                     d->cfg.respawn && !atomic_load(&d->stop) ? "; starting it again" : "");
            /*
             * 500 ms lets the failover go first. A daemon that keeps exiting
             * soon after it starts (a bad flag, a lock another one holds)
             * is tried again less and less often: 1, 2, 4 .. 30 s.
             */
            uint64_t now = dmce_now_ms();
            struct spawned *sp = &d->spawn[i];
            sp->quick_exits = now - sp->started_ms < 10000 ? sp->quick_exits + 1 : 0;
            uint64_t wait = sp->quick_exits ? DMCE_MIN(30000ull, 500ull << DMCE_MIN(sp->quick_exits, 6u))
                                            : 500;
            sp->next_start_ms = now + wait;
            if (sp->quick_exits >= 3)
                LOG_ERROR("memd[%u] exited %u times in a row within 10 s of its start; next try "
                          "in %llu ms",
                          i, sp->quick_exits, (unsigned long long)wait);
        }
    }
    if (!d->cfg.respawn || atomic_load(&d->stop))
        return;
    for (unsigned i = 1; i <= (unsigned)d->cfg.spawn; i++)
        if (!d->spawn[i].pid && dmce_now_ms() >= d->spawn[i].next_start_ms) {
            d->spawn[i].started_ms = dmce_now_ms();
            d->spawn[i].pid = spawn_memd(d, i);
        }
}

/* ---- life --------------------------------------------------------------------------------- */

int dmce_disp_start(const dmce_disp_config_t *cfg, dmce_disp_t **out)
{
    struct dmce_disp *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->cfg = *cfg;
    d->lock_fd = d->listen_fd = d->epfd = d->evfd = -1;
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* -1: taken back later */
    d->start_ms = dmce_now_ms();
    pthread_mutex_init(&d->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* a clock step must not stall deadlines */
    pthread_cond_init(&d->orch_cond, &ca);
    pthread_condattr_destroy(&ca);
    for (uint32_t i = 0; i <= MAX_DAEMONS; i++)
        d->daemons[i].pidfd = -1;
    dmce_disp_config_t *c = &d->cfg;
    int r;
    if (!c->runtime_dir[0]) {
        const char *env = getenv("DMCE_RUNTIME_DIR");
        snprintf(c->runtime_dir, sizeof(c->runtime_dir), "%s",
                 env && *env ? env : "");
        if (!c->runtime_dir[0])
            snprintf(c->runtime_dir, sizeof(c->runtime_dir), "/run/dmce-%u", (unsigned)geteuid());
    }
    if ((r = dmce_mkdir_private(c->runtime_dir)) < 0) {
        LOG_ERROR("cannot create runtime dir %s: %s", c->runtime_dir, strerror(-r));
        goto fail;
    }
    snprintf(d->sock_path, sizeof(d->sock_path), "%s",
             c->socket[0] ? c->socket : c->runtime_dir);
    if (!c->socket[0])
        snprintf(d->sock_path, sizeof(d->sock_path), "%s/dispatcher.sock", c->runtime_dir);
    snprintf(d->lock_path, sizeof(d->lock_path), "%s/dispatcher.lock", c->runtime_dir);
    dmce_layout_info_t li;
    dmce_layout_info((dmce_layout_t)c->layout, &li);
    d->nids = 1u << li.block_bits;
    d->blocks = calloc(d->nids, sizeof(d->blocks[0]));
    if (!d->blocks) {
        r = -ENOMEM;
        goto fail;
    }
    d->lock_fd = open(d->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = d->lock_fd < 0 ? -errno : -EADDRINUSE;
        LOG_ERROR("another dmce-dispatcher runs in %s (lock %s)", c->runtime_dir, d->lock_path);
        goto fail;
    }
    d->locked = 1;
    if (c->spawn) {
        if (c->memd[0]) {
            snprintf(d->memd_path, sizeof(d->memd_path), "%s", c->memd);
        } else { /* next to this program */
            char self[DMCE_CFG_STRMAX];
            ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
            self[n > 0 ? n : 0] = 0;
            char *slash = strrchr(self, '/');
            if (slash)
                *slash = 0;
            snprintf(d->memd_path, sizeof(d->memd_path), "%s/dmce-memd", self);
        }
        if (access(d->memd_path, X_OK) < 0) {
            r = -errno;
            LOG_ERROR("cannot run %s (spawn = %lld): %s", d->memd_path, (long long)c->spawn,
                      strerror(errno));
            goto fail;
        }
    }
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->epfd < 0 || d->evfd < 0) {
        r = -errno;
        goto fail;
    }
    d->listen_fd = dmce_unix_listen(d->sock_path, 128);
    if (d->listen_fd < 0) {
        r = d->listen_fd;
        LOG_ERROR("cannot listen on %s: %s", d->sock_path, strerror(-r));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->listen_fd};
    struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &d->evfd};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0 ||
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->evfd, &ev2) < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = -pthread_create(&d->loop_thread, NULL, loop_main, d)) < 0)
        goto fail;
    d->loop_on = 1;
    if ((r = -pthread_create(&d->orch_thread, NULL, orch_main, d)) < 0)
        goto fail;
    d->orch_on = 1;
    LOG_INFO("serving on %s: policy %s, mirroring %s, heartbeat %lld ms x %lld, layout %s",
             d->sock_path, policy_names[c->policy], mirroring_names[c->mirroring],
             (long long)c->heartbeat_ms, (long long)c->miss_limit, layout_names[c->layout]);
    for (unsigned i = 1; i <= (unsigned)c->spawn; i++) {
        d->spawn[i].started_ms = dmce_now_ms();
        d->spawn[i].pid = spawn_memd(d, i);
    }
    *out = d;
    return 0;
fail:
    dmce_disp_stop(d);
    return r;
}

void dmce_disp_stop(dmce_disp_t *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    /* Spawned daemons first: SIGTERM, wait (bounded), then SIGKILL. */
    for (unsigned i = 1; i <= (unsigned)d->cfg.spawn; i++)
        if (d->spawn[i].pid > 0)
            kill(d->spawn[i].pid, SIGTERM);
    uint64_t deadline = dmce_now_ms() + 10000;
    for (unsigned i = 1; i <= (unsigned)d->cfg.spawn; i++) {
        while (d->spawn[i].pid > 0) {
            int st;
            pid_t p = waitpid(d->spawn[i].pid, &st, WNOHANG);
            if (p == d->spawn[i].pid || (p < 0 && errno == ECHILD)) {
                d->spawn[i].pid = 0;
                break;
            }
            if (dmce_now_ms() > deadline) {
                kill(d->spawn[i].pid, SIGKILL);
                waitpid(d->spawn[i].pid, &st, 0);
                d->spawn[i].pid = 0;
                break;
            }
            usleep(10000);
        }
    }
    fwd_stop_all(d);
    if (d->orch_on) {
        pthread_mutex_lock(&d->lock);
        pthread_cond_broadcast(&d->orch_cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->orch_thread, NULL);
    }
    if (d->loop_on) {
        uint64_t one = 1;
        if (write(d->evfd, &one, sizeof(one)) < 0)
            LOG_WARN("cannot wake the control loop");
        pthread_join(d->loop_thread, NULL);
    }
    for (uint32_t i = 1; i <= MAX_DAEMONS; i++) {
        if (d->daemons[i].pidfd >= 0)
            close(d->daemons[i].pidfd);
        if (d->daemons[i].cmd_ready)
            dmce_mconn_close(&d->daemons[i].cmd);
    }
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        unlink(d->sock_path);
    }
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->evfd >= 0)
        close(d->evfd);
    if (d->spare_fd >= 0)
        close(d->spare_fd);
    if (d->lock_fd >= 0) {
        if (d->locked) /* a refused second dispatcher leaves the running one's lock alone */
            unlink(d->lock_path);
        close(d->lock_fd);
    }
    free(d->blocks);
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->orch_cond);
    LOG_INFO("stopped");
    free(d);
}
