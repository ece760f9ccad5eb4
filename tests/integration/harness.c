/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "msmp.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "util.h"

harness_t H;

static void cleanup_at_exit(void)
{
    harness_cleanup();
}

int harness_init(void)
{
    static int registered;
    memset(&H, 0, sizeof(H));
    snprintf(H.dir, sizeof(H.dir), "/tmp/dmce-test.XXXXXX");
    if (!mkdtemp(H.dir))
        return -errno;
    snprintf(H.cluster, sizeof(H.cluster), "t%d-%lx", (int)getpid(), (long)dmce_now_ns() & 0xffff);
    if (!registered) {
        atexit(cleanup_at_exit);
        registered = 1;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

const char *harness_sock(int id)
{
    static _Thread_local char path[H_MAX_DAEMONS + 1][300]; /* tests call it from threads */
    snprintf(path[id], sizeof(path[id]), "%s/memd-%d.sock", H.dir, id);
    return path[id];
}

pid_t harness_fork(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* it died before the line above */
            _exit(127);
    }
    return pid;
}

/* id > 0: dmce-memd --id id; id 0: dmce-dispatcher (first extra flag already in ap). */
static pid_t spawn(int id, va_list ap)
{
    const char *bin = getenv(id ? "DMCE_MEMD" : "DMCE_DISPATCHER");
    if (!bin)
        bin = id ? "./dmce-memd" : "./dmce-dispatcher";
    char *argv[64];
    int n = 0;
    static char a_dir[300], a_cl[100], a_id[32];
    snprintf(a_dir, sizeof(a_dir), "--runtime-dir=%s", H.dir);
    snprintf(a_cl, sizeof(a_cl), "--cluster=%s", H.cluster);
    snprintf(a_id, sizeof(a_id), "--id=%d", id);
    argv[n++] = (char *)bin;
    argv[n++] = a_dir;
    if (id) {
        argv[n++] = a_cl;
        argv[n++] = a_id;
    }
    argv[n++] = getenv("DMCE_TEST_VERBOSE") ? "--log-level=debug" : "--log-level=warn";
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 62)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    pid_t pid = harness_fork();
    if (pid == 0) {
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

const char *harness_disp_sock(void)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/dispatcher.sock", H.dir);
    return path;
}

/*
 * Ready means answering, not just listening: a daemon listens before it has
 * registered with the dispatcher, recovered its blocks and made its initial
 * ones (it answers stats meanwhile, with `starting` set, and holds client
 * requests). The dispatcher (id 0) gets a dispatcher stats request, any
 * status; memd a stats request that must say it is no longer starting.
 */
static int sock_answers(int id, const char *sock)
{
    dmce_mconn_t k;
    if (dmce_mconn_init(&k, sock, 1000, DMCE_MCONN_NO_RING) < 0)
        return 0;
    uint8_t resp[4096];
    size_t rlen = 0;
    int r = dmce_mconn_rpc(&k, id == 0 ? DMCE_MSMP_OP_DISP_STATS : DMCE_MSMP_OP_STATS, NULL, 0,
                           NULL, 0, resp, sizeof(resp), &rlen, NULL);
    dmce_mconn_close(&k);
    uint64_t v[DMCE_STAT_COUNT_];
    if (id != 0 && r == 0 && dmce_msmp_stats_decode(resp, rlen, v) == 0)
        return v[DMCE_STAT_STARTING] == 0;
    return !(r == DMCE_ECLOSED || r == -ETIMEDOUT || r == -EPROTO || r == -ECONNREFUSED ||
             r == -ENOENT || r == -EMSGSIZE);
}

static int wait_started(int id, pid_t pid, const char *sock);

int harness_start(int id, ...)
{
    va_list ap;
    va_start(ap, id);
    pid_t pid = spawn(id, ap);
    va_end(ap);
    if (pid < 0)
        return -errno;
    return wait_started(id, pid, harness_sock(id));
}

int harness_start_dispatcher(int unused, ...)
{
    va_list ap;
    va_start(ap, unused);
    pid_t pid = spawn(0, ap);
    va_end(ap);
    if (pid < 0)
        return -errno;
    return wait_started(0, pid, harness_disp_sock());
}

static int wait_started(int id, pid_t pid, const char *sock)
{
    H.pid[id] = pid;
    uint64_t deadline = dmce_now_ms() + 10000;
    while (dmce_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            H.pid[id] = 0;
            H.status[id] = st;
            return -ECHILD;
        }
        if (sock_answers(id, sock))
            return 0;
        usleep(5000);
    }
    return -ETIMEDOUT;
}

int harness_start_expect_exit(int id, ...)
{
    va_list ap;
    va_start(ap, id);
    pid_t pid = spawn(id, ap);
    va_end(ap);
    uint64_t deadline = dmce_now_ms() + 10000;
    while (dmce_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(5000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -ETIMEDOUT;
}

int harness_stop(int id)
{
    pid_t pid = H.pid[id];
    if (!pid)
        return -ESRCH;
    kill(pid, SIGTERM);
    uint64_t deadline = dmce_now_ms() + 10000;
    while (dmce_now_ms() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            H.pid[id] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(2000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    H.pid[id] = 0;
    return -ETIMEDOUT;
}

void harness_kill(int id)
{
    if (!H.pid[id])
        return;
    kill(H.pid[id], SIGKILL);
    waitpid(H.pid[id], NULL, 0);
    H.pid[id] = 0;
}

static int for_each_shm(int do_unlink)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "dmce.%u.%s.", (unsigned)geteuid(), H.cluster);
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        n++;
        if (do_unlink) {
            char p[512];
            snprintf(p, sizeof(p), "/dev/shm/%s", e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    return n;
}

int harness_shm_count(void)
{
    return for_each_shm(0);
}

static dmce_client_t *observer;

dmce_client_t *harness_observer(void)
{
    if (!observer && H.dir[0] &&
        dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0)
        observer = NULL;
    return observer;
}

int harness_cluster_alive(void *n)
{
    dmce_cluster_stats_t s;
    dmce_client_t *c = harness_observer();
    return c && dmce_cluster_stats(c, &s) == 0 && s.daemons_alive == (unsigned)(uintptr_t)n;
}

int harness_cluster_mirrored(void *unused)
{
    (void)unused;
    dmce_cluster_stats_t s;
    dmce_client_t *c = harness_observer();
    return c && dmce_cluster_stats(c, &s) == 0 && s.blocks > 0 && s.blocks_single == 0 &&
           s.blocks_remirroring == 0 && s.blocks_mirrored == s.blocks;
}

void harness_cleanup(void)
{
    if (observer) {
        dmce_disconnect(observer);
        observer = NULL;
    }
    for (int i = 0; i <= H_MAX_DAEMONS; i++)
        harness_kill(i);
    if (H.cluster[0])
        for_each_shm(1);
    if (H.dir[0]) {
        DIR *d = opendir(H.dir);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                char p[600];
                snprintf(p, sizeof(p), "%s/%s", H.dir, e->d_name);
                if (e->d_name[0] != '.')
                    unlink(p);
            }
            closedir(d);
        }
        rmdir(H.dir);
        H.dir[0] = 0;
    }
}

int harness_client_opts(dmce_client_t **out, const int *ids, size_t n,
                        const dmce_connect_opts_t *base)
{
    const char *paths[H_MAX_DAEMONS];
    size_t k = 0;
    if (n == 0) {
        for (int i = 1; i <= H_MAX_DAEMONS; i++)
            if (H.pid[i])
                paths[k++] = harness_sock(i);
    } else {
        for (size_t i = 0; i < n; i++)
            paths[k++] = harness_sock(ids[i]);
    }
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = harness_connect_flags()};
    if (base)
        o = *base;
    o.sockets = paths;
    o.nsockets = k;
    return dmce_connect(&o, out);
}

int harness_client(dmce_client_t **out, const int *ids, size_t n)
{
    return harness_client_opts(out, ids, n, NULL);
}

int harness_sock_stats(const char *sock, dmce_stats_t *st)
{
    const char *paths[1] = {sock};
    dmce_connect_opts_t o = {.sockets = paths,
                             .nsockets = 1,
                             .io_timeout_ms = 2000,
                             .flags = DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING |
                                      DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    int r = dmce_connect(&o, &c);
    if (r < 0)
        return r;
    dmce_stats_t tmp;
    r = dmce_daemon_stats(c, 0, st ? st : &tmp);
    dmce_disconnect(c);
    return r;
}

int harness_client_dir(dmce_client_t **out, unsigned extra_flags)
{
    dmce_connect_opts_t o = {.runtime_dir = H.dir,
                             .io_timeout_ms = 10000,
                             .flags = harness_connect_flags() | extra_flags};
    return dmce_connect(&o, out);
}

unsigned harness_connect_flags(void)
{
    const char *e = getenv("DMCE_TEST_CONNECT_FLAGS");
    return e ? (unsigned)strtoul(e, NULL, 0) : 0;
}

int harness_mapped(void)
{
    return !(harness_connect_flags() & DMCE_CONNECT_NO_MAP);
}

int harness_wait(int (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t deadline = dmce_now_ms() + timeout_ms;
    do {
        if (cond(arg))
            return 1;
        usleep(5000);
    } while (dmce_now_ms() < deadline);
    return cond(arg);
}

int raw_connect(int id)
{
    int fd = dmce_unix_connect(harness_sock(id));
    if (fd < 0)
        return fd;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

int raw_send_bytes(int fd, const void *bytes, size_t len)
{
    return dmce_write_full(fd, bytes, len, dmce_now_ms() + 5000);
}

int raw_send(int fd, uint16_t op, uint64_t req_id, const void *payload, uint32_t len)
{
    uint8_t *buf = malloc(DMCE_MSMP_HDR_SIZE + len);
    if (!buf)
        return -ENOMEM;
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                         .version = DMCE_MSMP_VERSION,
                         .op = op,
                         .req_id = req_id,
                         .len = len};
    dmce_msmp_hdr_encode(&h, buf);
    if (len)
        memcpy(buf + DMCE_MSMP_HDR_SIZE, payload, len);
    int r = raw_send_bytes(fd, buf, DMCE_MSMP_HDR_SIZE + len);
    free(buf);
    return r;
}

static int read_exact(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = read(fd, p, len);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ECONNRESET ? -ECONNRESET : -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int raw_recv(int fd, int32_t *status, uint16_t *op, uint64_t *req_id, void *buf, size_t cap)
{
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    int r = read_exact(fd, hb, sizeof(hb));
    if (r < 0)
        return r;
    dmce_msmp_hdr_t h;
    r = dmce_msmp_hdr_decode(hb, DMCE_MSMP_PAYLOAD_LIMIT, &h);
    if (r < 0 || !(h.flags & DMCE_MSMP_FLAG_RESPONSE))
        return -EPROTO;
    if (status)
        *status = h.status;
    if (op)
        *op = h.op;
    if (req_id)
        *req_id = h.req_id;
    if (h.len > cap)
        return -EMSGSIZE;
    r = h.len ? read_exact(fd, buf, h.len) : 0;
    return r < 0 ? r : (int)h.len;
}

int raw_closed(int fd)
{
    /* The daemon may send an error reply before it closes: drain it. */
    uint64_t deadline = dmce_now_ms() + 5000;
    for (;;) {
        uint64_t now = dmce_now_ms();
        if (now >= deadline)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            return 0;
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return 1;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return 0;
    }
}

int raw_setup(int fd, uint64_t amount)
{
    dmce_msmp_setup_req_t rq = {.amount = amount, .layout = UINT32_MAX};
    dmce_random_bytes(rq.token, sizeof(rq.token));
    uint8_t p[DMCE_MSMP_SETUP_REQ_SIZE], resp[64];
    dmce_msmp_setup_req_encode(&rq, p);
    int r = raw_send(fd, DMCE_MSMP_OP_SETUP, 1, p, sizeof(p));
    if (r < 0)
        return r;
    int32_t st;
    r = raw_recv(fd, &st, NULL, NULL, resp, sizeof(resp));
    return r < 0 ? r : st;
}

int raw_ring_open(int fd, uint32_t capacity, dmce_rt_t *rt, int *bell)
{
    uint8_t p[DMCE_MSMP_RING_REQ_SIZE];
    dmce_msmp_ring_req_t rq = {.capacity = capacity};
    dmce_msmp_ring_req_encode(&rq, p);
    int r = raw_send(fd, DMCE_MSMP_OP_RING_OPEN, 77, p, sizeof(p));
    if (r < 0)
        return r;
    uint8_t resp[64];
    struct iovec iov = {resp, DMCE_MSMP_HDR_SIZE + DMCE_MSMP_RING_RESP_SIZE};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = sizeof(ctl.buf)};
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n < (ssize_t)DMCE_MSMP_HDR_SIZE)
        return -EPROTO;
    dmce_msmp_hdr_t h;
    if (dmce_msmp_hdr_decode(resp, DMCE_MSMP_PAYLOAD_LIMIT, &h) < 0)
        return -EPROTO;
    if (h.status < 0)
        return h.status;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (n != (ssize_t)iov.iov_len || !cm || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(2 * sizeof(int)))
        return -EPROTO;
    int fds[2];
    memcpy(fds, CMSG_DATA(cm), sizeof(fds));
    dmce_msmp_ring_resp_t rs;
    r = dmce_msmp_ring_resp_decode(resp + DMCE_MSMP_HDR_SIZE, DMCE_MSMP_RING_RESP_SIZE, &rs);
    if (r == 0)
        r = dmce_rt_map(fds[0], (size_t)rs.seg_size, rs.capacity, rt);
    close(fds[0]);
    if (r < 0) {
        close(fds[1]);
        return r;
    }
    *bell = fds[1];
    return 0;
}

int raw_ring_send(dmce_rt_t *rt, int bell, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    uint64_t deadline = dmce_now_ms() + 5000;
    while (len) {
        int n = dmce_ring_write(&rt->rp.tx, p, len);
        if (n < 0)
            return n;
        p += n;
        len -= (size_t)n;
        dmce_rt_kick(rt, bell);
        if (n == 0 && dmce_now_ms() > deadline)
            return -ETIMEDOUT;
    }
    return 0;
}

int raw_ring_request(dmce_rt_t *rt, int bell, uint16_t op, uint64_t req_id, const void *payload,
                     uint32_t len)
{
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION, .op = op,
                         .req_id = req_id, .len = len};
    dmce_msmp_hdr_encode(&h, hb);
    int r = raw_ring_send(rt, bell, hb, sizeof(hb));
    return r == 0 && len ? raw_ring_send(rt, bell, payload, len) : r;
}

int raw_ring_recv(dmce_rt_t *rt, int bell, int32_t *status, void *buf, size_t cap)
{
    dmce_ring_wait_t pol = {.slice_ms = 20, .timeout_ms = 5000};
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    size_t got = 0;
    while (got < sizeof(hb)) {
        int w = dmce_ring_wait_readable(&rt->rp.rx, 1, &pol);
        if (w < 0)
            return w;
        int n = dmce_ring_read(&rt->rp.rx, hb + got, sizeof(hb) - got);
        if (n < 0)
            return n;
        got += (size_t)n;
    }
    dmce_msmp_hdr_t h;
    if (dmce_msmp_hdr_decode(hb, DMCE_MSMP_PAYLOAD_LIMIT, &h) < 0 || h.len > cap)
        return -EPROTO;
    if (status)
        *status = h.status;
    for (got = 0; got < h.len;) {
        int w = dmce_ring_wait_readable(&rt->rp.rx, 1, &pol);
        if (w < 0)
            return w;
        int n = dmce_ring_read(&rt->rp.rx, (uint8_t *)buf + got, h.len - got);
        if (n < 0)
            return n;
        got += (size_t)n;
    }
    dmce_rt_kick(rt, bell);
    return (int)h.len;
}
