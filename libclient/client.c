/*
 * client.c - libdmce, the Memory Client (seed 002 FIG. 7); see client.h.
 *
 * One struct dmce_conn per memory daemon: a blocking Unix socket, a mutex
 * that serializes requests on it, and what the daemon said at setup (its
 * block ID range, max payload, layout). A request is one frame out, one
 * frame in, checked against the request's ID and op; any I/O or protocol
 * error closes that connection (DMCE_ECLOSED from then on for its session)
 * and leaves the other daemons' connections alone.
 *
 * Routing: an address's block ID falls in exactly one daemon's range, so
 * read/write/free go straight to the daemon that holds the block. Large
 * reads and writes are split into frames of the daemon's max payload.
 *
 * The library never prints; every failure is a return code.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <dmce/client.h>

#include "client_internal.h"
#include "msmp.h"
#include "transport_ring.h"
#include "util.h"

/* ---- one request ------------------------------------------------------------------- */

static void conn_drop(struct dmce_conn *k)
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
static int recv_reply(struct dmce_conn *k, uint16_t op, uint64_t id, void *resp, size_t resp_cap,
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
static int send_request(struct dmce_conn *k, const uint8_t *hb, const void *p1, size_t l1,
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

/*
 * Liveness while waiting on a ring: the daemon is gone when the watcher
 * saw its process exit or its socket reports hang-up. 0 = alive.
 */
static int ring_alive(void *arg)
{
    struct dmce_conn *k = arg;
    if (atomic_load_explicit(&k->dead, memory_order_relaxed))
        return 1;
    struct pollfd p = {.fd = k->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return 1;
    return 0;
}

/*
 * Wait for min bytes in the response ring (or room for min bytes in the
 * request ring, when tx), the way the daemon allows: poll with a CPU pause
 * or yield the CPU for the granted time, then sleep on the ring's futex in
 * short slices that check the daemon is alive. Returns > 0 or an error.
 */
static int ring_wait(struct dmce_conn *k, int tx, size_t min, uint64_t deadline)
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
    uint64_t now = dmce_now_ms();
    if (now >= deadline)
        return -ETIMEDOUT;
    dmce_ring_wait_t pol = {.spin_ns = mode == DMCE_RT_SPIN_PAUSE ? DMCE_MIN(spin, 1000000u) : 0,
                            .slice_ms = 20,
                            .timeout_ms = (uint32_t)DMCE_MIN(deadline - now, (uint64_t)UINT32_MAX),
                            .alive = ring_alive,
                            .alive_arg = k};
    return tx ? dmce_ring_wait_writable(r, min, &pol) : dmce_ring_wait_readable(r, min, &pol);
}

/* Put len bytes into the request ring, waiting for room as needed. */
static int ring_put(struct dmce_conn *k, const void *buf, size_t len, uint64_t deadline)
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
static int ring_get(struct dmce_conn *k, void *buf, size_t len, uint64_t deadline)
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
static int ring_take_fd(struct dmce_conn *k, int *fd_out, uint64_t deadline)
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
static int ring_rpc(struct dmce_conn *k, const uint8_t *hb, uint16_t op, uint64_t id,
                    const void *p1, size_t l1, const void *p2, size_t l2, void *resp,
                    size_t resp_cap, size_t *resp_len, int *fd_out, uint64_t deadline, int *broken)
{
    *broken = 1;
    int r = ring_put(k, hb, DMCE_MSMP_HDR_SIZE, deadline);
    if (r == 0 && l1)
        r = ring_put(k, p1, l1, deadline);
    if (r == 0 && l2)
        r = ring_put(k, p2, l2, deadline);
    if (r < 0)
        return r;
    dmce_rt_kick(&k->rt, k->bell);
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
static void ring_open(struct dmce_client *c, struct dmce_conn *k)
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
    uint64_t deadline = dmce_now_ms() + c->io_timeout_ms;
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
        conn_drop(k);
}

static int conn_ensure(struct dmce_client *c, struct dmce_conn *k)
{
    if (k->fd >= 0)
        return 0;
    int fd = dmce_unix_connect(k->path);
    if (fd < 0)
        return fd;
    /* Blocking receives wake up at least this often to check the deadline. */
    struct timeval tv = {.tv_sec = c->io_timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(c->io_timeout_ms % 1000) * 1000};
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
    pid_t old = atomic_load(&k->pid);
    if (old != pid) {
        if (old) /* a new daemon process behind the same socket */
            dmce__map_daemon_reset(c, (unsigned)(k - c->conn));
        atomic_store(&k->dead, 0);
        atomic_store(&k->pid, pid);
    }
    if (!(c->flags & DMCE_CONNECT_NO_RING))
        ring_open(c, k);
    return k->fd >= 0 ? 0 : DMCE_ECLOSED;
}

/*
 * Send op with payload (p1,l1)+(p2,l2); receive the response payload into
 * resp (capacity resp_cap, actual length in *resp_len) and, when fd_out is
 * not NULL, a descriptor passed with it. Returns the response status (0 or
 * negative) or a transport error. k->lock held.
 */
static int rpc_locked(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1,
                      size_t l1, const void *p2, size_t l2, void *resp, size_t resp_cap,
                      size_t *resp_len, int *fd_out)
{
    if (fd_out)
        *fd_out = -1;
    int r = conn_ensure(c, k);
    if (r < 0)
        return r;
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
    uint64_t deadline = dmce_now_ms() + c->io_timeout_ms;
    int broken;
    if (k->ring) {
        r = ring_rpc(k, hb, op, id, p1, l1, p2, l2, resp, resp_cap, resp_len, fd_out, deadline,
                     &broken);
    } else {
        r = send_request(k, hb, p1, l1, p2, l2, deadline);
        broken = r < 0;
        if (r == 0) {
            unsigned n = 0;
            r = recv_reply(k, op, id, resp, resp_cap, resp_len, deadline, &broken, fd_out,
                           fd_out ? 1 : 0, &n);
        }
    }
    if (!broken)
        return r;
    if (fd_out && *fd_out >= 0) {
        close(*fd_out);
        *fd_out = -1;
    }
    conn_drop(k);
    if (k->set_up)
        k->set_up = 0; /* the daemon keeps the session for its grace period */
    return r == -ETIMEDOUT || r == -EPROTO || r == -EMSGSIZE ? r : DMCE_ECLOSED;
}

int dmce__rpc(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1, size_t l1,
              const void *p2, size_t l2, void *resp, size_t resp_cap, size_t *resp_len,
              int *fd_out)
{
    pthread_mutex_lock(&k->lock);
    int r = rpc_locked(c, k, op, p1, l1, p2, l2, resp, resp_cap, resp_len, fd_out);
    pthread_mutex_unlock(&k->lock);
    return r;
}

static int rpc(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1, size_t l1,
               const void *p2, size_t l2, void *resp, size_t resp_cap, size_t *resp_len)
{
    return dmce__rpc(c, k, op, p1, l1, p2, l2, resp, resp_cap, resp_len, NULL);
}

/* ---- connect --------------------------------------------------------------------- */

static int add_daemon(struct dmce_client *c, const char *path)
{
    if (c->n >= DMCE_MAX_DAEMONS)
        return -E2BIG;
    struct dmce_conn *k = &c->conn[c->n];
    if (strlen(path) >= sizeof(k->path))
        return -ENAMETOOLONG;
    snprintf(k->path, sizeof(k->path), "%s", path);
    pthread_mutex_init(&k->lock, NULL);
    k->fd = -1;
    k->bell = -1;
    c->n++;
    return conn_ensure(c, k);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_runtime_dir(struct dmce_client *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char *names[DMCE_MAX_DAEMONS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < DMCE_MAX_DAEMONS) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "memd-", 5) == 0 && l > 10 && !strcmp(e->d_name + l - 5, ".sock"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    int r = n ? 0 : -ENOENT;
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (r == 0 && names[i])
            r = add_daemon(c, path);
        free(names[i]);
    }
    return r;
}

int dmce_connect(const dmce_connect_opts_t *opts, dmce_client_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct dmce_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->io_timeout_ms = opts && opts->io_timeout_ms ? opts->io_timeout_ms : 10000;
    c->layout = DMCE_LAYOUT_12_12_40;
    int r = dmce__map_init(c, opts);
    if (r < 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return r;
    }
    if (opts && opts->sockets) {
        if (opts->nsockets == 0 || opts->nsockets > DMCE_MAX_DAEMONS)
            r = -EINVAL;
        for (size_t i = 0; r == 0 && i < opts->nsockets; i++)
            r = opts->sockets[i] ? add_daemon(c, opts->sockets[i]) : -EINVAL;
    } else {
        const char *dir = opts && opts->runtime_dir ? opts->runtime_dir : getenv("DMCE_RUNTIME_DIR");
        r = dir ? add_runtime_dir(c, dir) : -EINVAL;
    }
    if (r < 0) {
        dmce_abandon(c);
        return r;
    }
    *out = c;
    return 0;
}

unsigned dmce_daemon_count(const dmce_client_t *c)
{
    return c ? c->n : 0;
}

dmce_layout_t dmce_client_layout(const dmce_client_t *c)
{
    return c->layout;
}

/* ---- setup ----------------------------------------------------------------------- */

static int setup_one(struct dmce_client *c, struct dmce_conn *k, uint64_t amount, unsigned flags,
                     uint32_t layout, uint64_t *granted)
{
    dmce_msmp_setup_req_t rq = {.amount = amount, .flags = flags, .layout = layout};
    memcpy(rq.token, c->token.bytes, sizeof(rq.token));
    uint8_t p[DMCE_MSMP_SETUP_REQ_SIZE], resp[DMCE_MSMP_SETUP_RESP_SIZE];
    dmce_msmp_setup_req_encode(&rq, p);
    size_t rlen = 0;
    pthread_mutex_lock(&k->lock);
    int r = rpc_locked(c, k, DMCE_MSMP_OP_SETUP, p, sizeof(p), NULL, 0, resp, sizeof(resp), &rlen,
                       NULL);
    if (r == 0)
        r = dmce_msmp_setup_resp_decode(resp, rlen, &k->info);
    if (r == 0) {
        k->set_up = 1;
        k->max_payload = k->info.max_payload;
        *granted = k->info.granted;
    } else if (r == DMCE_ENOMEM) {
        conn_drop(k); /* the daemon disconnects after a refused setup */
    }
    pthread_mutex_unlock(&k->lock);
    return r;
}

static void end_sessions(struct dmce_client *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct dmce_conn *k = &c->conn[i];
        if (!k->set_up)
            continue;
        rpc(c, k, DMCE_MSMP_OP_DISCONNECT, NULL, 0, NULL, 0, NULL, 0, NULL);
        pthread_mutex_lock(&k->lock);
        k->set_up = 0;
        conn_drop(k); /* the daemon closes after disconnect */
        pthread_mutex_unlock(&k->lock);
    }
}

/* Free capacity a daemon says it has (an upper bound of what it may grant). */
static uint64_t daemon_room(struct dmce_client *c, unsigned i)
{
    dmce_stats_t st;
    if (dmce_daemon_stats(c, i, &st) < 0)
        return 0;
    return st.bytes_total > st.bytes_reserved ? st.bytes_total - st.bytes_reserved : 0;
}

int dmce_setup(dmce_client_t *c, uint64_t amount, unsigned flags, const dmce_token_t *token,
               uint64_t *granted)
{
    if (!c || (flags & ~(unsigned)(DMCE_SETUP_PARTIAL | DMCE_SETUP_REATTACH)))
        return -EINVAL;
    if ((flags & DMCE_SETUP_REATTACH) && !token)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    int r = 0;
    if (c->set_up) {
        r = DMCE_ESETUPDONE;
        goto out;
    }
    if (token)
        c->token = *token;
    else if ((r = dmce_random_bytes(c->token.bytes, sizeof(c->token.bytes))) < 0)
        goto out;

    uint64_t total = 0;
    uint32_t layout = UINT32_MAX; /* the first daemon's layout binds the rest */
    int attached[DMCE_MAX_DAEMONS] = {0};
    if (flags & DMCE_SETUP_REATTACH) {
        unsigned n_ok = 0;
        for (unsigned i = 0; i < c->n; i++) {
            uint64_t g = 0;
            int e = setup_one(c, &c->conn[i], 0, DMCE_SETUP_REATTACH | DMCE_SETUP_PARTIAL, layout,
                              &g);
            if (e == 0) {
                attached[i] = 1;
                n_ok++;
                layout = c->conn[i].info.layout;
            } else if (e != DMCE_ETOKEN) {
                r = e;
                end_sessions(c);
                goto out;
            }
        }
        if (n_ok == 0) {
            r = DMCE_ETOKEN;
            goto out;
        }
    }

    /* Plan: an even share each, capped by what each daemon has room for. */
    uint64_t room[DMCE_MAX_DAEMONS], plan[DMCE_MAX_DAEMONS] = {0};
    uint64_t left = amount;
    unsigned open = 0;
    for (unsigned i = 0; i < c->n; i++) {
        room[i] = amount ? daemon_room(c, i) : 0;
        open++;
    }
    while (left > 0 && open > 0) {
        uint64_t share = (left + open - 1) / open;
        unsigned still = 0;
        for (unsigned i = 0; i < c->n && left > 0; i++) {
            uint64_t can = room[i] - plan[i];
            uint64_t give = DMCE_MIN(DMCE_MIN(share, can), left);
            plan[i] += give;
            left -= give;
            if (room[i] > plan[i])
                still++;
        }
        if (still == open && left > 0 && share == 0)
            break;
        open = still;
    }
    /* Anything the plan could not place goes to the first daemons; they may grant part. */
    for (unsigned i = 0; i < c->n && left > 0; i++) {
        plan[i] += left;
        left = 0;
    }

    uint64_t carry = 0;
    for (unsigned i = 0; i < c->n; i++) {
        if (attached[i])
            continue; /* reattached sessions keep what they had; no new reservation */
        uint64_t want = plan[i] + carry, g = 0;
        int e = setup_one(c, &c->conn[i], want, DMCE_SETUP_PARTIAL, layout, &g);
        if (e == DMCE_ENOMEM) { /* nothing left there: move its share on */
            carry = want;
            continue;
        }
        if (e < 0) {
            r = e;
            end_sessions(c);
            goto out;
        }
        layout = c->conn[i].info.layout;
        total += g;
        carry = want > g ? want - g : 0;
    }
    if (layout == UINT32_MAX) {
        r = DMCE_ENOMEM; /* no daemon would take a session at all */
        goto out;
    }
    if (total < amount && !(flags & DMCE_SETUP_PARTIAL)) {
        end_sessions(c);
        r = DMCE_ENOMEM;
        goto out;
    }
    c->layout = (dmce_layout_t)layout;
    c->set_up = 1;
    if (granted)
        *granted = total;
out:
    pthread_mutex_unlock(&c->lock);
    return r;
}

int dmce_session_token(const dmce_client_t *c, dmce_token_t *out)
{
    if (!c || !out)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    *out = c->token;
    return 0;
}

int dmce_token_format(const dmce_token_t *t, char *buf, size_t len)
{
    if (!t || !buf || len < DMCE_TOKEN_STRLEN)
        return -EINVAL;
    for (int i = 0; i < 16; i++)
        snprintf(buf + 2 * i, 3, "%02x", t->bytes[i]);
    return 0;
}

int dmce_token_parse(const char *text, dmce_token_t *out)
{
    if (!text || !out || strlen(text) != 32)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = text[2 * i + j];
            unsigned d;
            if (ch >= '0' && ch <= '9')
                d = (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                d = (unsigned)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F')
                d = (unsigned)(ch - 'A' + 10);
            else
                return -EINVAL;
            v = v << 4 | d;
        }
        out->bytes[i] = (uint8_t)v;
    }
    return 0;
}

/* ---- memory operations ------------------------------------------------------------ */

int dmce__daemon_of_block(const struct dmce_client *c, uint32_t block)
{
    for (unsigned i = 0; i < c->n; i++) {
        const struct dmce_conn *k = &c->conn[i];
        if (k->info.block_last && block >= k->info.block_first && block <= k->info.block_last)
            return (int)i;
    }
    return DMCE_ENOBLOCK;
}

int dmce_daemon_of(const dmce_client_t *c, dmce_addr_t addr)
{
    if (!c)
        return -EINVAL;
    if (addr == DMCE_ADDR_NULL)
        return DMCE_ENULLADDR;
    dmce_addr_parts_t p;
    if (dmce_addr_decode(c->layout, addr, &p) < 0)
        return -EINVAL;
    if (p.server != DMCE_SERVER_LOCAL)
        return DMCE_ENOSERVER;
    return dmce__daemon_of_block(c, p.block);
}

int dmce_malloc_on(dmce_client_t *c, unsigned daemon, uint64_t size, dmce_addr_t *out)
{
    if (!c || !out || daemon >= c->n)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    uint8_t p[8], resp[8];
    dmce_msmp_u64_encode(size, p);
    size_t rlen = 0;
    int r = rpc(c, &c->conn[daemon], DMCE_MSMP_OP_MALLOC, p, 8, NULL, 0, resp, 8, &rlen);
    if (r < 0)
        return r;
    return dmce_msmp_u64_decode(resp, rlen, out);
}

int dmce_malloc(dmce_client_t *c, uint64_t size, dmce_addr_t *out)
{
    if (!c || !out || c->n == 0)
        return -EINVAL;
    if (size == 0)
        return -EINVAL;
    unsigned start = atomic_fetch_add(&c->rr, 1) % c->n;
    int err = DMCE_ENOMEM, quota = 0, nomem = 0;
    for (unsigned t = 0; t < c->n; t++) {
        unsigned i = (start + t) % c->n;
        if (!c->conn[i].set_up)
            continue;
        int r = dmce_malloc_on(c, i, size, out);
        if (r == 0)
            return 0;
        if (r == DMCE_EQUOTA)
            quota++;
        else if (r == DMCE_ENOMEM)
            nomem++;
        else if (r == -EMSGSIZE || r == -EINVAL || r == DMCE_ENOSETUP)
            return r;
        else
            err = r;
    }
    if (quota && !nomem)
        return DMCE_EQUOTA;
    return nomem ? DMCE_ENOMEM : err;
}

static int route(dmce_client_t *c, dmce_addr_t addr, struct dmce_conn **k)
{
    if (!c)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    int i = dmce_daemon_of(c, addr);
    if (i < 0)
        return i;
    *k = &c->conn[i];
    return 0;
}

int dmce_free(dmce_client_t *c, dmce_addr_t addr)
{
    struct dmce_conn *k;
    int r = route(c, addr, &k);
    if (r < 0)
        return r;
    uint8_t p[8];
    dmce_msmp_u64_encode(addr, p);
    return rpc(c, k, DMCE_MSMP_OP_FREE, p, 8, NULL, 0, NULL, 0, NULL);
}

int dmce_read(dmce_client_t *c, dmce_addr_t addr, void *buf, size_t len)
{
    if (!c)
        return -EINVAL;
    int r = dmce__local_read(c, addr, buf, len);
    if (r <= 0)
        return r;
    struct dmce_conn *k;
    r = route(c, addr, &k);
    if (r < 0)
        return r;
    if (!buf && len)
        return -EINVAL;
    size_t done = 0;
    do {
        size_t chunk = DMCE_MIN(len - done, (size_t)k->max_payload);
        dmce_addr_t a;
        r = dmce_addr_add(c->layout, addr, done, &a);
        if (r < 0)
            return DMCE_ECROSSEND;
        dmce_msmp_rw_req_t rq = {.addr = a, .len = (uint32_t)chunk};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        size_t rlen = 0;
        r = rpc(c, k, DMCE_MSMP_OP_READ, p, sizeof(p), NULL, 0, (uint8_t *)buf + done, chunk,
                &rlen);
        if (r < 0)
            return r;
        if (rlen != chunk)
            return -EPROTO;
        done += chunk;
    } while (done < len);
    atomic_fetch_add_explicit(&c->st_msmp_reads, 1, memory_order_relaxed);
    return 0;
}

int dmce_write(dmce_client_t *c, dmce_addr_t addr, const void *buf, size_t len)
{
    if (!c)
        return -EINVAL;
    int r = dmce__local_write(c, addr, buf, len);
    if (r <= 0)
        return r;
    struct dmce_conn *k;
    r = route(c, addr, &k);
    if (r < 0)
        return r;
    if (!buf && len)
        return -EINVAL;
    size_t done = 0;
    do {
        size_t chunk = DMCE_MIN(len - done, (size_t)k->max_payload - DMCE_MSMP_WRITE_HDR);
        dmce_addr_t a;
        r = dmce_addr_add(c->layout, addr, done, &a);
        if (r < 0)
            return DMCE_ECROSSEND;
        dmce_msmp_rw_req_t rq = {.addr = a, .len = (uint32_t)chunk};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE], resp[DMCE_MSMP_WRITE_RESP_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        size_t rlen = 0;
        r = rpc(c, k, DMCE_MSMP_OP_WRITE, p, sizeof(p), (const uint8_t *)buf + done, chunk, resp,
                sizeof(resp), &rlen);
        if (r < 0)
            return r;
        if (rlen != DMCE_MSMP_WRITE_RESP_SIZE || dmce_get_le32(resp) != chunk)
            return -EPROTO;
        done += chunk;
    } while (done < len);
    atomic_fetch_add_explicit(&c->st_msmp_writes, 1, memory_order_relaxed);
    return 0;
}

/* ---- stats ---------------------------------------------------------------------------- */

int dmce_daemon_stats(dmce_client_t *c, unsigned daemon, dmce_stats_t *out)
{
    if (!c || !out || daemon >= c->n)
        return -EINVAL;
    uint8_t resp[DMCE_MSMP_STATS_SIZE + 512];
    size_t rlen = 0;
    int r = rpc(c, &c->conn[daemon], DMCE_MSMP_OP_STATS, NULL, 0, NULL, 0, resp, sizeof(resp),
                &rlen);
    if (r < 0)
        return r;
    uint64_t v[DMCE_STAT_COUNT_];
    r = dmce_msmp_stats_decode(resp, rlen, v);
    if (r < 0)
        return r;
    memset(out, 0, sizeof(*out));
    out->daemon_id = (uint32_t)v[DMCE_STAT_DAEMON_ID];
    out->numa_node = (int32_t)(int64_t)v[DMCE_STAT_NUMA_NODE];
    out->pid = (uint32_t)v[DMCE_STAT_PID];
    out->block_first = (uint32_t)v[DMCE_STAT_BLOCK_FIRST];
    out->block_last = (uint32_t)v[DMCE_STAT_BLOCK_LAST];
    out->blocks = v[DMCE_STAT_BLOCKS];
    out->bytes_total = v[DMCE_STAT_BYTES_TOTAL];
    out->bytes_reserved = v[DMCE_STAT_BYTES_RESERVED];
    out->bytes_used = v[DMCE_STAT_BYTES_USED];
    out->bytes_free = v[DMCE_STAT_BYTES_FREE];
    out->allocations = v[DMCE_STAT_ALLOCATIONS];
    out->clients = v[DMCE_STAT_CLIENTS];
    out->sessions = v[DMCE_STAT_SESSIONS];
    out->sessions_orphaned = v[DMCE_STAT_SESSIONS_ORPHANED];
    out->ops_setup = v[DMCE_STAT_OPS_SETUP];
    out->ops_malloc = v[DMCE_STAT_OPS_MALLOC];
    out->ops_read = v[DMCE_STAT_OPS_READ];
    out->ops_write = v[DMCE_STAT_OPS_WRITE];
    out->ops_free = v[DMCE_STAT_OPS_FREE];
    out->ops_disconnect = v[DMCE_STAT_OPS_DISCONNECT];
    out->ops_stats = v[DMCE_STAT_OPS_STATS];
    out->ops_errors = v[DMCE_STAT_OPS_ERRORS];
    out->bytes_read = v[DMCE_STAT_BYTES_READ];
    out->bytes_written = v[DMCE_STAT_BYTES_WRITTEN];
    out->ops_map = v[DMCE_STAT_OPS_MAP];
    out->fds_sent = v[DMCE_STAT_FDS_SENT];
    out->prefaulted = v[DMCE_STAT_PREFAULTED];
    out->prefault_pending = v[DMCE_STAT_PREFAULT_PENDING];
    out->ring_clients = v[DMCE_STAT_RING_CLIENTS];
    out->uptime_ms = v[DMCE_STAT_UPTIME_MS];
    return 0;
}

int dmce_stats(dmce_client_t *c, dmce_stats_t *out)
{
    if (!c || !out || c->n == 0)
        return -EINVAL;
    dmce_stats_t sum;
    for (unsigned i = 0; i < c->n; i++) {
        dmce_stats_t s;
        int r = dmce_daemon_stats(c, i, &s);
        if (r < 0)
            return r;
        if (i == 0) {
            sum = s;
            continue;
        }
        uint64_t *dst = &sum.blocks, *src = &s.blocks;
        size_t nfields = (size_t)(&sum.uptime_ms - &sum.blocks); /* all u64 counters */
        for (size_t f = 0; f < nfields; f++)
            dst[f] += src[f];
        sum.uptime_ms = DMCE_MAX(sum.uptime_ms, s.uptime_ms);
    }
    *out = sum;
    return 0;
}

/* ---- teardown ------------------------------------------------------------------------- */

static void client_free(struct dmce_client *c)
{
    dmce__map_fini(c);
    for (unsigned i = 0; i < c->n; i++) {
        conn_drop(&c->conn[i]);
        pthread_mutex_destroy(&c->conn[i].lock);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int dmce_disconnect(dmce_client_t *c)
{
    if (!c)
        return 0;
    int first = 0;
    for (unsigned i = 0; i < c->n; i++) {
        struct dmce_conn *k = &c->conn[i];
        if (!k->set_up)
            continue;
        int r = rpc(c, k, DMCE_MSMP_OP_DISCONNECT, NULL, 0, NULL, 0, NULL, 0, NULL);
        if (r < 0 && !first)
            first = r;
    }
    client_free(c);
    return first;
}

void dmce_abandon(dmce_client_t *c)
{
    if (c)
        client_free(c);
}
