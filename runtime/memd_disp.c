/*
 * memd_disp.c - a memory daemon's link to the dispatcher (docs/dispatcher.md).
 *
 * Registration comes first, before the daemon creates any block: the
 * dispatcher hands it a range of block IDs no live block uses, and says
 * whether the cluster mirrors. With no dispatcher the daemon runs alone on
 * its configured range.
 *
 * The member-pulse thread then sends a heartbeat every hb_ms (the
 * dispatcher's answer is the monitor pulse), and the queued block events.
 * When the dispatcher does not answer (it died, or never ran), the thread
 * tries to register again every hb_ms: a new dispatcher rebuilds its
 * tables from the daemons that register (it reads their blocks itself).
 *
 * Nothing here blocks a request path on the dispatcher but the mirroring
 * of a new block (one mirror_peer request, then the peer), which happens
 * once per block, before any allocation in it is handed out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <urcu.h>

#include <dmce/error.h>

#include "log.h"
#include "memd_internal.h"
#include "msmp_dispatch.h"
#include "util.h"

/* A block event waiting for the pulse thread. */
struct disp_event {
    struct disp_event *next;
    dmce_disp_event_msg_t ev;
};

static struct disp_event *ev_queue; /* under hb_lock; one daemon per process */

/* One request to the dispatcher. disp_lock held. */
static int disp_rpc(struct dmce_memd *m, uint16_t op, const void *p, size_t l, void *resp,
                    size_t cap, size_t *rlen)
{
    return dmce_mconn_rpc(&m->disp, op, p, l, NULL, 0, resp, cap, rlen, NULL);
}

/* Register (or register again). disp_lock held. 0, or an error (no dispatcher). */
static int do_register(struct dmce_memd *m)
{
    dmce_disp_register_t rq = {.daemon_id = (uint32_t)m->cfg.id,
                               .pid = (uint32_t)getpid(),
                               .numa_node = m->numa_node,
                               .capacity = m->capacity,
                               .block_size = m->cfg.block_size,
                               .max_blocks = (uint32_t)m->cfg.max_blocks,
                               /*
                                * The range we want: ours (block_first, or the one our ID
                                * gives), which the dispatcher keeps when nobody else has
                                * it. Asked even before any block exists: a daemon that ran
                                * alone made its blocks there, and a daemon that registers
                                * first must not be given the range another, not yet
                                * registered, uses already (two blocks with one ID).
                                */
                               .block_first = m->block_first,
                               .layout = (uint32_t)m->layout};
    size_t plen = strlen(m->sock_path);
    if (plen > DMCE_MSMP_PATH_MAX)
        return -ENAMETOOLONG; /* longer than any Unix socket path anyway */
    memcpy(rq.path, m->sock_path, plen + 1);
    uint8_t buf[DMCE_DISP_REGISTER_HDR + DMCE_MSMP_PATH_MAX], resp[DMCE_DISP_REGISTER_RESP_SIZE];
    int n = dmce_disp_register_encode(&rq, buf, sizeof(buf));
    if (n < 0)
        return n;
    size_t rlen = 0;
    int r = disp_rpc(m, DMCE_MSMP_OP_REGISTER, buf, (size_t)n, resp, sizeof(resp), &rlen);
    dmce_disp_register_resp_t rs;
    if (r == 0)
        r = dmce_disp_register_resp_decode(resp, rlen, &rs);
    if (r < 0)
        return r;
    if (rs.block_count < (uint32_t)m->cfg.max_blocks) {
        LOG_ERROR("the dispatcher gave %u block IDs; max_blocks is %lld", rs.block_count,
                  (long long)m->cfg.max_blocks);
        return -ERANGE;
    }
    if (!memd_table_get(m)) { /* first registration, before any block: take the range */
        m->block_first = rs.block_first;
        m->block_last = rs.block_first + (uint32_t)m->cfg.max_blocks - 1;
    } else if (rs.block_first != m->block_first) {
        /* Our blocks keep their IDs; new ones come from the range we were given. */
        LOG_WARN("the dispatcher moved this daemon's block IDs from %u.. to %u..", m->block_first,
                 rs.block_first);
        m->block_first = rs.block_first;
        m->block_last = rs.block_first + (uint32_t)m->cfg.max_blocks - 1;
    }
    atomic_store(&m->hb_ms, rs.heartbeat_ms);
    atomic_store(&m->mirroring, (rs.flags & DMCE_DISP_MIRRORING) != 0);
    atomic_store(&m->registered, 1);
    LOG_INFO("registered with the dispatcher (%s): blocks %u..%u, heartbeat every %u ms, "
             "mirroring %s",
             m->disp_path, m->block_first, m->block_last, rs.heartbeat_ms,
             (rs.flags & DMCE_DISP_MIRRORING) ? "on" : "off");
    return 0;
}

static int send_pulse(struct dmce_memd *m)
{
    dmce_disp_pulse_t pl = {.daemon_id = (uint32_t)m->cfg.id, .seq = ++m->hb_seq};
    pl.ops = atomic_load(&m->stat[DMCE_STAT_OPS_MALLOC]) +
             atomic_load(&m->stat[DMCE_STAT_OPS_READ]) +
             atomic_load(&m->stat[DMCE_STAT_OPS_WRITE]) + atomic_load(&m->stat[DMCE_STAT_OPS_FREE]);
    memd_usage(m, &pl.used, &pl.free); /* what the dispatcher's policies weigh */
    uint8_t buf[DMCE_DISP_PULSE_SIZE], resp[DMCE_DISP_MONITOR_SIZE];
    dmce_disp_pulse_encode(&pl, buf);
    size_t rlen = 0;
    int r = disp_rpc(m, DMCE_MSMP_OP_HEARTBEAT, buf, sizeof(buf), resp, sizeof(resp), &rlen);
    dmce_disp_monitor_t mon;
    if (r == 0)
        r = dmce_disp_monitor_decode(resp, rlen, &mon);
    if (r == 0)
        atomic_store(&m->mirroring, (mon.flags & DMCE_DISP_MIRRORING) != 0);
    return r;
}

/* Send the queued events. disp_lock held; returns 0 or the first error (events kept). */
static int send_events(struct dmce_memd *m)
{
    for (;;) {
        pthread_mutex_lock(&m->hb_lock);
        struct disp_event *e = ev_queue;
        if (e)
            ev_queue = e->next;
        pthread_mutex_unlock(&m->hb_lock);
        if (!e)
            return 0;
        uint8_t buf[DMCE_DISP_EVENT_SIZE];
        dmce_disp_event_encode(&e->ev, buf);
        int r = disp_rpc(m, DMCE_MSMP_OP_BLOCK_EVENT, buf, sizeof(buf), NULL, 0, NULL);
        /* -EPERM: a new connection (the old one broke) that has not registered yet. */
        if (r == DMCE_ECLOSED || r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ENOENT ||
            r == -EPERM) {
            pthread_mutex_lock(&m->hb_lock); /* put it back: sent after re-registration */
            e->next = ev_queue;
            ev_queue = e;
            pthread_mutex_unlock(&m->hb_lock);
            return r;
        }
        if (r < 0)
            LOG_WARN("the dispatcher refused block %u's event %u: %s", e->ev.block, e->ev.event,
                     dmce_strerror(r));
        free(e);
    }
}

/* The member-pulse thread. */
static void *pulse_main(void *arg)
{
    struct dmce_memd *m = arg;
    rcu_register_thread(); /* memd_usage reads the block table */
    uint64_t missed_since = 0;
    pthread_mutex_lock(&m->hb_lock);
    while (!atomic_load(&m->stop)) {
        uint32_t ms = atomic_load(&m->hb_ms);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)ms * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        /* Events queued before we waited go now, not a pulse later; unregistered, they wait. */
        if (!ev_queue || !atomic_load(&m->registered))
            pthread_cond_timedwait(&m->hb_cond, &m->hb_lock, &ts);
        if (atomic_load(&m->stop))
            break;
        pthread_mutex_unlock(&m->hb_lock);
        uint64_t t_lock = dmce_now_ms();
        pthread_mutex_lock(&m->disp_lock);
        uint64_t t_in = dmce_now_ms();
        if (t_in - t_lock > ms)
            LOG_WARN("member pulse waited %llu ms for the dispatcher connection",
                     (unsigned long long)(t_in - t_lock));
        int r;
        if (!atomic_load(&m->registered)) {
            if (m->disp_mode == 1 && access(m->disp_path, F_OK) != 0)
                r = -ENOENT; /* none yet: keep running alone */
            else if ((r = do_register(m)) == 0)
                missed_since = 0;
        } else {
            r = send_pulse(m);
            if (r == 0)
                r = send_events(m);
            if (r < 0) {
                if (!missed_since)
                    missed_since = dmce_now_ms();
                LOG_WARN("no monitor pulse from the dispatcher (%s); registering again",
                         dmce_strerror(r));
                atomic_store(&m->registered, 0);
            }
        }
        if (dmce_now_ms() - t_in > ms)
            LOG_WARN("member pulse took %llu ms", (unsigned long long)(dmce_now_ms() - t_in));
        pthread_mutex_unlock(&m->disp_lock);
        pthread_mutex_lock(&m->hb_lock);
    }
    pthread_mutex_unlock(&m->hb_lock);
    rcu_unregister_thread();
    return NULL;
}

int memd_disp_start(struct dmce_memd *m)
{
    pthread_mutex_init(&m->disp_lock, NULL);
    pthread_mutex_init(&m->hb_lock, NULL);
    pthread_cond_init(&m->hb_cond, NULL);
    atomic_store(&m->hb_ms, 100);
    const char *d = m->cfg.dispatcher;
    if (strcmp(d, "none") == 0) {
        m->disp_mode = 0;
        return 0;
    }
    m->disp_mode = d[0] ? 2 : 1;
    if (d[0])
        snprintf(m->disp_path, sizeof(m->disp_path), "%s", d);
    else
        snprintf(m->disp_path, sizeof(m->disp_path), "%s/dispatcher.sock", m->cfg.runtime_dir);
    int r = dmce_mconn_init(&m->disp, m->disp_path, 2000, DMCE_MCONN_NO_RING);
    if (r < 0)
        return r;
    if (m->disp_mode == 2 || access(m->disp_path, F_OK) == 0) {
        /*
         * -EAGAIN: the dispatcher is still failing over this daemon's previous
         * process. Wait for it (bounded) rather than create blocks on our own:
         * their IDs could be ones that now live elsewhere.
         */
        uint64_t deadline = dmce_now_ms() + 10000;
        pthread_mutex_lock(&m->disp_lock);
        while ((r = do_register(m)) == -EAGAIN && dmce_now_ms() < deadline &&
               !atomic_load(&m->stop))
            usleep(10000);
        pthread_mutex_unlock(&m->disp_lock);
        if (r < 0 && m->disp_mode == 2)
            LOG_WARN("the dispatcher at %s does not answer (%s); running alone until it does",
                     m->disp_path, dmce_strerror(r));
        else if (r < 0)
            LOG_INFO("no dispatcher at %s answers; running alone until one does", m->disp_path);
    }
    r = pthread_create(&m->hb_thread, NULL, pulse_main, m);
    if (r)
        return -r;
    m->hb_on = 1;
    return 0;
}

void memd_disp_stop(struct dmce_memd *m)
{
    if (m->hb_on) {
        pthread_mutex_lock(&m->hb_lock);
        pthread_cond_broadcast(&m->hb_cond);
        pthread_mutex_unlock(&m->hb_lock);
        pthread_join(m->hb_thread, NULL);
        m->hb_on = 0;
    }
    if (m->disp_mode) {
        dmce_mconn_close(&m->disp);
        while (ev_queue) {
            struct disp_event *e = ev_queue;
            ev_queue = e->next;
            free(e);
        }
        pthread_mutex_destroy(&m->disp_lock);
        pthread_mutex_destroy(&m->hb_lock);
        pthread_cond_destroy(&m->hb_cond);
    }
}

void memd_disp_event(struct dmce_memd *m, uint32_t block, uint32_t event, uint32_t peer,
                     uint64_t bytes)
{
    if (!m->disp_mode)
        return;
    struct disp_event *e = calloc(1, sizeof(*e));
    if (!e) {
        /* Lost: register again at once, and the dispatcher reads every block of ours. */
        LOG_WARN("block %u: event %u not queued (out of memory); registering again so that the "
                 "dispatcher reads our blocks", block, event);
        pthread_mutex_lock(&m->hb_lock);
        atomic_store(&m->registered, 0);
        pthread_cond_signal(&m->hb_cond);
        pthread_mutex_unlock(&m->hb_lock);
        return;
    }
    e->ev = (dmce_disp_event_msg_t){(uint32_t)m->cfg.id, block, event, peer, bytes};
    pthread_mutex_lock(&m->hb_lock);
    struct disp_event **pp = &ev_queue;
    while (*pp)
        pp = &(*pp)->next;
    *pp = e;
    pthread_cond_signal(&m->hb_cond); /* send it now, not at the next pulse */
    pthread_mutex_unlock(&m->hb_lock);
}

void memd_disp_flush_events(struct dmce_memd *m)
{
    if (!m->disp_mode || !atomic_load(&m->registered))
        return;
    pthread_mutex_lock(&m->disp_lock);
    int r = atomic_load(&m->registered) ? send_events(m) : 0;
    pthread_mutex_unlock(&m->disp_lock);
    if (r < 0) /* the pulse thread registers again and sends them */
        LOG_DEBUG("block events not delivered yet: %s", dmce_strerror(r));
}

int memd_disp_mirror_new_block(struct dmce_memd *m, struct memd_block *b)
{
    if (!atomic_load(&m->mirroring) || !atomic_load(&m->registered))
        return 0;
    uint8_t rq[DMCE_DISP_PEER_REQ_SIZE], resp[DMCE_DISP_PEER_RESP_HDR + DMCE_MSMP_PATH_MAX];
    dmce_disp_peer_req_encode((uint32_t)m->cfg.id, b->id, rq);
    size_t rlen = 0;
    pthread_mutex_lock(&m->disp_lock);
    int r = disp_rpc(m, DMCE_MSMP_OP_MIRROR_PEER, rq, sizeof(rq), resp, sizeof(resp), &rlen);
    pthread_mutex_unlock(&m->disp_lock);
    uint32_t peer = 0;
    char path[DMCE_MSMP_PATH_MAX + 1];
    if (r == 0)
        r = dmce_disp_peer_resp_decode(resp, rlen, &peer, path);
    if (r < 0) {
        LOG_WARN("block %u: mirroring is on but no other daemon can hold a mirror (%s); one copy "
                 "until the dispatcher finds one",
                 b->id, dmce_strerror(r));
        return 0;
    }
    if (memd_mirror_attach(m, b, peer, path, NULL) < 0)
        return 0; /* logged; the dispatcher re-mirrors single blocks */
    return (int)peer;
}

int memd_disp_primaries(struct dmce_memd *m, uint32_t nids, uint16_t **out)
{
    *out = NULL;
    if (!atomic_load(&m->registered))
        return -ENOTCONN;
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t cap = dmce_disp_dir_size(4096, nids), n = 0;
    uint8_t *buf = malloc(cap);
    uint16_t *prim = calloc(nids, sizeof(*prim));
    if (!buf || !prim) {
        free(buf);
        free(prim);
        return -ENOMEM;
    }
    pthread_mutex_lock(&m->disp_lock);
    int r = disp_rpc(m, DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), buf, cap, &n);
    pthread_mutex_unlock(&m->disp_lock);
    dmce_disp_dir_hdr_t h;
    if (r == 0)
        r = dmce_disp_dir_hdr_decode(buf, n, &h);
    for (uint32_t i = 0; r == 0 && i < h.nblocks; i++) {
        dmce_disp_block_t e;
        if (dmce_disp_block_decode(buf, n, i, &e) == 0 && e.block < nids)
            prim[e.block] = (uint16_t)e.primary;
    }
    free(buf);
    if (r < 0) {
        free(prim);
        return r;
    }
    *out = prim;
    return 0;
}

int memd_disp_block_primary(struct dmce_memd *m, uint32_t block, uint32_t *primary)
{
    *primary = 0;
    uint32_t nids = memd_nids(m);
    uint16_t *prim;
    int r = block < nids ? memd_disp_primaries(m, nids, &prim) : -EINVAL;
    if (r == 0) {
        *primary = prim[block];
        free(prim);
    }
    return r;
}
