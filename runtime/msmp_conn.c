/*
 * msmp_conn.c - one MSMP client connection; see msmp_conn.h.
 *
 * On the socket, a request is one sendmsg (header and payload gathered, no
 * copy) and its response one recvmsg straight into the caller's buffer.
 * On rings (transport_ring.h), the same bytes go through the request ring,
 * the doorbell is rung only for a parked worker, and the wait for the
 * response spins or yields as the daemon grants, then sleeps on the ring's
 * futex in slices that check the daemon is alive.
 */
#include "msmp_conn.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <dmce/error.h>

#include "msmp.h"
#include "util.h"

void dmce_mconn_close(dmce_mconn_t *k)
{
    if (k->ring) {
        dmce_rt_unmap(&k->rt);
        close(k->bell);
        k->bell = -1;
        k->ring = 0;
    }
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
}

/* Keep up to `max` descriptors in fds[] (count in *n), close every other one. */
static void take_fds(struct msghdr *msg, int *fds, unsigned max, unsigned *n)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        size_t cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < cnt; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
            if (fds && *n < max)
                fds[(*n)++] = fd;
            else
                close(fd);
        }
    }
}

/*
 * Receive one response on the socket: header and payload land directly in
 * hb and resp (one recvmsg in the common case, no copy). Only one request
 * is ever outstanding on a connection, so nothing past this response can
 * arrive. Descriptors passed with it go to fds[0..max) (*nfds of them);
 * others are closed. Checks the header against the request. Returns the
 * response's status, or a transport/protocol error with *broken set.
 */
static int recv_reply(dmce_mconn_t *k, uint16_t op, uint64_t id, void *resp, size_t resp_cap,
                      size_t *resp_len, uint64_t deadline, int *broken, int *fds, unsigned max,
                      unsigned *nfds)
{
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t rh = {0};
    size_t got = 0, want = DMCE_MSMP_HDR_SIZE;
    *broken = 1;
    while (got < want) {
        struct iovec iov[2];
        int n_iov = 0;
        if (got < DMCE_MSMP_HDR_SIZE)
            iov[n_iov++] = (struct iovec){hb + got, DMCE_MSMP_HDR_SIZE - got};
        size_t poff = got > DMCE_MSMP_HDR_SIZE ? got - DMCE_MSMP_HDR_SIZE : 0;
        size_t plimit = got < DMCE_MSMP_HDR_SIZE ? resp_cap : want - DMCE_MSMP_HDR_SIZE;
        if (plimit > poff)
            iov[n_iov++] = (struct iovec){(uint8_t *)resp + poff, plimit - poff};
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n_iov,
                             .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
        ssize_t n = recvmsg(k->fd, &msg, MSG_CMSG_CLOEXEC);
        if (n > 0 && msg.msg_controllen > 0)
            take_fds(&msg, fds, max, nfds);
        if (n == 0)
            return DMCE_ECLOSED;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (dmce_now_ms() >= deadline)
                    return -ETIMEDOUT;
                continue;
            }
            return errno == ECONNRESET ? DMCE_ECLOSED : -errno;
        }
        if (msg.msg_flags & MSG_CTRUNC)
            return -EPROTO;
        int had_hdr = got >= DMCE_MSMP_HDR_SIZE;
        got += (size_t)n;
        if (!had_hdr && got >= DMCE_MSMP_HDR_SIZE) {
            int r = dmce_msmp_hdr_decode(hb, DMCE_MSMP_PAYLOAD_LIMIT, &rh);
            if (r < 0)
                return r;
            if (!(rh.flags & DMCE_MSMP_FLAG_RESPONSE) || rh.req_id != id || rh.op != op ||
                rh.len > resp_cap || (rh.status < 0 && rh.len != 0))
                return -EPROTO;
            want = DMCE_MSMP_HDR_SIZE + rh.len;
            if (got > want)
                return -EPROTO; /* bytes beyond the one response we asked for */
        }
    }
    *broken = 0;
    if (resp_len)
        *resp_len = rh.len;
    return rh.status;
}

/*
 * Send one request on the socket: header, p1, p2 gathered by sendmsg (no
 * copy of the payload). Blocking, bounded by SO_SNDTIMEO slices and the
 * deadline.
 */
static int send_request(dmce_mconn_t *k, const uint8_t *hb, const void *p1, size_t l1,
                        const void *p2, size_t l2, uint64_t deadline)
{
    struct iovec iov[3] = {{(void *)hb, DMCE_MSMP_HDR_SIZE}, {(void *)p1, l1}, {(void *)p2, l2}};
    struct iovec *v = iov;
    size_t nv = 3;
    while (nv > 0) {
        if (v->iov_len == 0) {
            v++;
            nv--;
            continue;
        }
        struct msghdr msg = {.msg_iov = v, .msg_iovlen = nv};
        ssize_t n = sendmsg(k->fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (dmce_now_ms() >= deadline)
                    return -ETIMEDOUT;
                continue;
            }
            return (errno == EPIPE || errno == ECONNRESET) ? DMCE_ECLOSED : -errno;
        }
        for (size_t done = (size_t)n; done > 0;) {
            size_t step = DMCE_MIN(done, v->iov_len);
            v->iov_base = (uint8_t *)v->iov_base + step;
            v->iov_len -= step;
            done -= step;
            if (v->iov_len == 0) {
                v++;
                nv--;
            }
        }
    }
    return 0;
}

/* ---- the ring transport --------------------------------------------------------------- */

/* In a CPU turn, a client yields the CPU this often (ring_wait). */
#define TURN_YIELD_NS (50ull * 1000)
/* Waiting for a turn, the first look at the daemon's life comes this late (ring_wait). */
#define TURN_FIRST_CHECK_MS 5u
/* In a turn, a response this late means the worker is not running: yield this often. */
#define TURN_STALL_NS (5ull * 1000)

/*
 * Liveness while waiting on a ring: the daemon is gone when the watcher
 * saw its process exit or its socket reports hang-up. 0 = alive.
 */
static int ring_alive(void *arg)
{
    dmce_mconn_t *k = arg;
    if (atomic_load_explicit(&k->dead, memory_order_relaxed))
        return 1;
    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return 1;
    return 0;
}

/* spin_over of a response wait: how much of our request the worker has taken. */
static void note_request_room(void *arg)
{
    dmce_mconn_t *k = arg;
    k->spin_end_free = dmce_ring_writable(&k->rt.rp.tx);
}

/*
 * Our CPU turn's spin for min bytes (as ring_wait): poll with a CPU pause
 * for up to budget ns, or until the daemon ends the turn (spin_mode no
 * longer TURN). A worker answers in well under a microsecond; one that has
 * not after TURN_STALL_NS is not running, most often because the scheduler
 * woke us on its CPU for our turn and we now poll in its place: from then
 * on yield the CPU every TURN_STALL_NS, so that it runs at once (and moves
 * off our CPU, turn_place in the daemon) rather than when we give up.
 * Returns > 0 (ready), an error, or 0 (spun out: sleep).
 */
static int turn_spin(dmce_mconn_t *k, int tx, size_t min, uint32_t budget)
{
    dmce_ring_t *r = tx ? &k->rt.rp.tx : &k->rt.rp.rx;
    uint64_t start = dmce_now_ns(), last = start;
    for (unsigned i = 1;; i++) {
        int n = tx ? dmce_ring_writable(r) : dmce_ring_readable(r);
        if (n < 0 || (size_t)n >= min)
            return n;
        dmce_cpu_relax();
        if ((i & 31) != 0)
            continue;
        if (atomic_load_explicit(&k->rt.ctl->spin_mode, memory_order_relaxed) != DMCE_RT_SPIN_TURN)
            return 0;
        uint64_t t = dmce_now_ns();
        if (t - start >= budget)
            return 0;
        if (t - last >= TURN_STALL_NS) {
            last = t;
            sched_yield();
        }
    }
}

/*
 * Wait for min bytes in the response ring (or room for min bytes in the
 * request ring, when tx), the way the daemon allows: poll with a CPU pause
 * or yield the CPU for the granted time, then sleep on the ring's futex in
 * short slices that check the daemon is alive. Returns > 0 or an error.
 */
static int ring_wait(dmce_mconn_t *k, int tx, size_t min, uint64_t deadline)
{
    dmce_ring_t *r = tx ? &k->rt.rp.tx : &k->rt.rp.rx;
    uint32_t mode = atomic_load_explicit(&k->rt.ctl->spin_mode, memory_order_relaxed);
    uint32_t spin = atomic_load_explicit(&k->rt.ctl->client_spin_ns, memory_order_relaxed);
    if (mode == DMCE_RT_SPIN_YIELD && spin) {
        uint64_t until = dmce_now_ns() + spin;
        do {
            int n = tx ? dmce_ring_writable(r) : dmce_ring_readable(r);
            if (n < 0 || (size_t)n >= min)
                return n;
            sched_yield();
        } while (dmce_now_ns() < until);
    }
    if (mode == DMCE_RT_SPIN_TURN && spin) {
        int n = turn_spin(k, tx, min, DMCE_MIN(spin, 1000000u));
        if (n != 0)
            return n;
        /* spun out, or the turn ended: sleep (below, no second spin) */
    }
    uint64_t now = dmce_now_ms();
    if (now >= deadline)
        return -ETIMEDOUT;
    /* The daemon grants the spin; what it achieved lately decides how much of it to use. */
    uint32_t max = mode == DMCE_RT_SPIN_PAUSE ? DMCE_MIN(spin, 1000000u) : 0;
    uint32_t budget = dmce_spin_budget(&k->spin, max);
    uint32_t how = DMCE_RING_WAITED_NOT;
    /*
     * In CPU turns the wait for our next turn is a round of the others'
     * turns (milliseconds). Each look at the daemon's life wakes us and
     * takes the CPU from the client whose turn it is: look first after
     * TURN_FIRST_CHECK_MS (a daemon that dies then is noticed that late).
     */
    int in_turns = atomic_load_explicit(&k->rt.ctl->in_turns, memory_order_relaxed) != 0;
    dmce_ring_wait_t pol = {.spin_ns = budget,
                            .slice_ms = 20,
                            .first_check_ms = in_turns ? TURN_FIRST_CHECK_MS : 0,
                            .timeout_ms = (uint32_t)DMCE_MIN(deadline - now, (uint64_t)UINT32_MAX),
                            .alive = ring_alive,
                            .alive_arg = k,
                            .how = &how,
                            /* the daemon takes a PAUSE grant back when it goes into turns */
                            .spin_gate = &k->rt.ctl->spin_mode};
    int before = tx ? 0 : dmce_ring_writable(&k->rt.rp.tx);
    k->spin_end_free = -1;
    if (!tx)
        pol.spin_over = note_request_room;
    int n = tx ? dmce_ring_wait_writable(r, min, &pol) : dmce_ring_wait_readable(r, min, &pol);
    if (mode == DMCE_RT_SPIN_TURN) {
        /* nothing learnt: the turn's spin is the daemon's to grant */
    } else if (how == DMCE_RING_WAITED_SPUN) {
        dmce_spin_update(&k->spin, max, budget, 1);
    } else if (how == DMCE_RING_WAITED_SLEPT) { /* (CUT: turns began, which tells nothing) */
        /*
         * A spin for a response that ran out says the CPUs are taken only
         * if the worker was awake (no doorbell) and had taken no more of
         * our request by the end of the spin than at its start: a worker
         * woken by the bell, or one busy with a long request, tells
         * nothing.
         */
        int stuck = tx || (!k->kicked && k->spin_end_free >= 0 && k->spin_end_free == before &&
                           before < (int)k->rt.rp.tx.capacity);
        if (!budget || stuck)
            dmce_spin_update(&k->spin, max, budget, 0);
    }
    return n;
}

/*
 * Before a request in our CPU turn (docs/ring.md): this client and its
 * worker keep two CPUs busy, so now and then let the scheduler run
 * another task here (a client that woke up to ask for its turn waits no
 * time slice); and say where we run, before the request can reach the
 * worker, so that it never polls on the same CPU.
 */
static void turn_note(dmce_mconn_t *k)
{
    if (atomic_load_explicit(&k->rt.ctl->spin_mode, memory_order_relaxed) != DMCE_RT_SPIN_TURN)
        return;
    uint64_t t = dmce_now_ns();
    if (t - k->turn_yield_ns > TURN_YIELD_NS) {
        k->turn_yield_ns = t;
        sched_yield();
    }
    int cpu = sched_getcpu();
    uint32_t v = cpu >= 0 ? (uint32_t)cpu + 1 : 0;
    if (atomic_load_explicit(&k->rt.ctl->client_cpu, memory_order_relaxed) != v)
        atomic_store_explicit(&k->rt.ctl->client_cpu, v, memory_order_relaxed);
}

/* Put len bytes into the request ring, waiting for room as needed. */
static int ring_put(dmce_mconn_t *k, const void *buf, size_t len, uint64_t deadline)
{
    const uint8_t *p = buf;
    size_t cap = k->rt.rp.tx.capacity;
    while (len > 0) {
        int n = dmce_ring_write(&k->rt.rp.tx, p, len);
        if (n < 0)
            return n;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        dmce_rt_kick(&k->rt, k->bell); /* full: the daemon must be awake to drain it */
        int w = ring_wait(k, 1, DMCE_MIN(len, cap / 2), deadline);
        if (w < 0)
            return w;
    }
    return 0;
}

/* Take len bytes out of the response ring, waiting for them as needed. */
static int ring_get(dmce_mconn_t *k, void *buf, size_t len, uint64_t deadline)
{
    uint8_t *p = buf;
    size_t cap = k->rt.rp.rx.capacity;
    while (len > 0) {
        int n = dmce_ring_read(&k->rt.rp.rx, p, len);
        if (n < 0)
            return n;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            if (len) /* a response larger than the ring: let the daemon refill it */
                dmce_rt_kick(&k->rt, k->bell);
            continue;
        }
        int w = ring_wait(k, 0, DMCE_MIN(len, cap / 2), deadline);
        if (w < 0)
            return w;
    }
    return 0;
}

/* After a map response over the ring: its descriptor came first, on the socket. */
static int ring_take_fd(dmce_mconn_t *k, int *fd_out, uint64_t deadline)
{
    for (;;) {
        char tag;
        struct iovec iov = {&tag, 1};
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } ctl;
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                             .msg_controllen = sizeof(ctl.buf)};
        unsigned n = 0;
        ssize_t got = recvmsg(k->fd, &msg, MSG_CMSG_CLOEXEC);
        if (got > 0 && msg.msg_controllen > 0)
            take_fds(&msg, fd_out, 1, &n);
        if (got == 1 && tag == 'F' && n == 1)
            return 0;
        if (n == 1) {
            close(*fd_out);
            *fd_out = -1;
        }
        if (got < 0 && (errno == EINTR || ((errno == EAGAIN || errno == EWOULDBLOCK) &&
                                           dmce_now_ms() < deadline)))
            continue;
        return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT : -EPROTO;
    }
}

/*
 * One request over the rings: same frames as on the socket, same checks
 * of the response. A descriptor (map) arrives on the socket.
 */
static int ring_rpc(dmce_mconn_t *k, const uint8_t *hb, uint16_t op, uint64_t id,
                    const void *p1, size_t l1, const void *p2, size_t l2, void *resp,
                    size_t resp_cap, size_t *resp_len, int *fd_out, uint64_t deadline, int *broken)
{
    *broken = 1;
    turn_note(k);
    int r = ring_put(k, hb, DMCE_MSMP_HDR_SIZE, deadline);
    if (r == 0 && l1)
        r = ring_put(k, p1, l1, deadline);
    if (r == 0 && l2)
        r = ring_put(k, p2, l2, deadline);
    if (r < 0)
        return r;
    k->kicked = dmce_rt_kick(&k->rt, k->bell) == 1;
    uint8_t rb[DMCE_MSMP_HDR_SIZE];
    r = ring_get(k, rb, sizeof(rb), deadline);
    if (r < 0)
        return r;
    dmce_msmp_hdr_t rh;
    r = dmce_msmp_hdr_decode(rb, DMCE_MSMP_PAYLOAD_LIMIT, &rh);
    if (r < 0)
        return r;
    if (!(rh.flags & DMCE_MSMP_FLAG_RESPONSE) || rh.req_id != id || rh.op != op ||
        rh.len > resp_cap || (rh.status < 0 && rh.len != 0))
        return -EPROTO;
    if (rh.len && (r = ring_get(k, resp, rh.len, deadline)) < 0)
        return r;
    dmce_rt_kick(&k->rt, k->bell); /* the daemon may wait for room to answer someone */
    if (op == DMCE_MSMP_OP_MAP && rh.status == 0 && rh.len >= 8 &&
        (dmce_get_le32((const uint8_t *)resp + 4) & DMCE_MSMP_MAP_FD)) {
        int fd = -1;
        r = ring_take_fd(k, &fd, deadline);
        if (r < 0)
            return r;
        if (fd_out)
            *fd_out = fd;
        else
            close(fd);
    }
    *broken = 0;
    if (resp_len)
        *resp_len = rh.len;
    return rh.status;
}

/*
 * Move a fresh connection to the ring transport (ring_open). Any failure
 * leaves it on the socket, which works the same, only slower; a daemon
 * that does not offer rings answers -EOPNOTSUPP.
 */
static void ring_open(dmce_mconn_t *k)
{
    uint8_t p[DMCE_MSMP_RING_REQ_SIZE], resp[DMCE_MSMP_RING_RESP_SIZE];
    dmce_msmp_ring_req_t rq = {0}; /* the daemon's default capacity */
    dmce_msmp_ring_req_encode(&rq, p);
    uint64_t id = ++k->next_req;
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                         .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_RING_OPEN,
                         .req_id = id,
                         .len = sizeof(p)};
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_encode(&h, hb);
    uint64_t deadline = dmce_now_ms() + k->timeout_ms;
    int fds[2] = {-1, -1}, broken = 0;
    unsigned nfds = 0;
    size_t rlen = 0;
    int r = send_request(k, hb, p, sizeof(p), NULL, 0, deadline);
    if (r == 0)
        r = recv_reply(k, DMCE_MSMP_OP_RING_OPEN, id, resp, sizeof(resp), &rlen, deadline,
                       &broken, fds, 2, &nfds);
    dmce_msmp_ring_resp_t rs;
    if (r == 0 && (dmce_msmp_ring_resp_decode(resp, rlen, &rs) < 0 || nfds != 2))
        r = -EPROTO;
    if (r == 0)
        r = dmce_rt_map(fds[0], (size_t)rs.seg_size, rs.capacity, &k->rt);
    if (nfds > 0)
        close(fds[0]); /* the mapping keeps the segment */
    if (r == 0) {
        k->ring = 1;
        k->bell = fds[1];
        return;
    }
    if (nfds > 1)
        close(fds[1]);
    if (broken || r == -EPROTO) /* the stream is no longer in step: start over */
        dmce_mconn_close(k);
}

int dmce_mconn_ensure(dmce_mconn_t *k)
{
    if (k->fd >= 0)
        return 0;
    int fd = dmce_unix_connect(k->path);
    if (fd == -ENOENT)
        fd = -ECONNREFUSED; /* no socket file: nobody listens there either; -ENOENT stays
                               free for daemons' answers (a store's missing key) */
    if (fd < 0)
        return fd;
    /* Blocking receives wake up at least this often to check the deadline. */
    struct timeval tv = {.tv_sec = k->timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(k->timeout_ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
        int r = -errno;
        close(fd);
        return r;
    }
    /* Only a daemon of our own user (or root) may serve us: it hands us descriptors. */
    pid_t pid = 0;
    uid_t uid = (uid_t)-1;
    int r = dmce_peer_cred(fd, &pid, &uid, NULL);
    if (r == 0 && uid != geteuid() && uid != 0)
        r = -EPERM;
    if (r < 0) {
        close(fd);
        return r;
    }
    k->fd = fd;
    k->bell = -1;
    k->max_payload = DMCE_MSMP_PAYLOAD_DEFAULT;
    if (atomic_load(&k->pid) != pid) {
        atomic_store(&k->dead, 0);
        atomic_store(&k->pid, pid);
    }
    if (!(k->flags & DMCE_MCONN_NO_RING))
        ring_open(k);
    return k->fd >= 0 ? 1 : DMCE_ECLOSED;
}

int dmce_mconn_init(dmce_mconn_t *k, const char *path, unsigned timeout_ms, unsigned flags)
{
    memset(k, 0, sizeof(*k));
    if (strlen(path) >= sizeof(k->path))
        return -ENAMETOOLONG;
    snprintf(k->path, sizeof(k->path), "%s", path);
    k->timeout_ms = timeout_ms ? timeout_ms : 10000;
    k->flags = flags;
    k->fd = -1;
    k->bell = -1;
    k->max_payload = DMCE_MSMP_PAYLOAD_DEFAULT;
    return 0;
}

/*
 * One request; up to max descriptors passed with the response land in
 * fds[0..*nfds). On the rings at most one can (ring_take_fd).
 */
static int rpc(dmce_mconn_t *k, uint16_t op, const void *p1, size_t l1, const void *p2, size_t l2,
               void *resp, size_t resp_cap, size_t *resp_len, int *fds, unsigned max,
               unsigned *nfds)
{
    *nfds = 0;
    int r = dmce_mconn_ensure(k);
    if (r < 0)
        return r;
    if (k->ring && max > 1)
        return -ENOTSUP;
    size_t plen = l1 + l2;
    if (plen > k->max_payload)
        return -EMSGSIZE;
    uint64_t id = ++k->next_req;
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                         .version = DMCE_MSMP_VERSION,
                         .op = op,
                         .req_id = id,
                         .len = (uint32_t)plen};
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_encode(&h, hb);
    uint64_t deadline = dmce_now_ms() + k->timeout_ms;
    int broken;
    if (k->ring) {
        int fd = -1;
        r = ring_rpc(k, hb, op, id, p1, l1, p2, l2, resp, resp_cap, resp_len, max ? &fd : NULL,
                     deadline, &broken);
        if (fd >= 0)
            fds[(*nfds)++] = fd;
    } else {
        r = send_request(k, hb, p1, l1, p2, l2, deadline);
        broken = r < 0;
        if (r == 0)
            r = recv_reply(k, op, id, resp, resp_cap, resp_len, deadline, &broken, fds, max, nfds);
    }
    if (!broken)
        return r;
    for (unsigned i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
    dmce_mconn_close(k);
    return r == -ETIMEDOUT || r == -EPROTO || r == -EMSGSIZE ? r : DMCE_ECLOSED;
}

int dmce_mconn_rpc(dmce_mconn_t *k, uint16_t op, const void *p1, size_t l1, const void *p2,
                   size_t l2, void *resp, size_t resp_cap, size_t *resp_len, int *fd_out)
{
    unsigned n;
    int fd = -1;
    int r = rpc(k, op, p1, l1, p2, l2, resp, resp_cap, resp_len, &fd, fd_out ? 1 : 0, &n);
    if (fd_out)
        *fd_out = n ? fd : -1;
    return r;
}

int dmce_mconn_rpc_fds(dmce_mconn_t *k, uint16_t op, const void *p, size_t l, void *resp,
                       size_t resp_cap, size_t *resp_len, int *fds, unsigned max, unsigned *nfds)
{
    if (max > 4)
        max = 4; /* the control buffer holds four */
    return rpc(k, op, p, l, NULL, 0, resp, resp_cap, resp_len, fds, max, nfds);
}
