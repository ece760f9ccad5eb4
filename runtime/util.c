/*
 * util.c - see util.h. Every function here is thread-safe and keeps no
 * state; the I/O helpers retry EINTR and wait with poll() so that a
 * deadline bounds every blocking call.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

uint64_t dmce_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t dmce_now_ms(void)
{
    return dmce_now_ns() / 1000000ull;
}

int dmce_fd_set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
    return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

static int wait_fd(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        int timeout = -1;
        if (deadline_ms) {
            uint64_t now = dmce_now_ms();
            if (now >= deadline_ms)
                return -ETIMEDOUT;
            timeout = (int)DMCE_MIN(deadline_ms - now, 60000u);
        }
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r > 0)
            return 0;
    }
}

int dmce_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return DMCE_ECLOSED;
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

int dmce_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return DMCE_ECLOSED;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(fd, POLLIN, deadline_ms);
            if (r < 0)
                return r;
            continue;
        }
        if (errno == ECONNRESET)
            return DMCE_ECLOSED;
        return -errno;
    }
    return 0;
}

static int fill_sockaddr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    strcpy(sa->sun_path, path);
    return 0;
}

int dmce_unix_connect(const char *path)
{
    struct sockaddr_un sa;
    int r = fill_sockaddr(path, &sa);
    if (r < 0)
        return r;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int dmce_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sa;
    int r = fill_sockaddr(path, &sa);
    if (r < 0)
        return r;
    int probe = dmce_unix_connect(path);
    if (probe >= 0) {
        close(probe);
        return -EADDRINUSE;
    }
    unlink(path); /* stale socket from a dead server, or nothing */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0177); /* the socket: 0600 (0077 left it 0700) */
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(fd, backlog) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int dmce_accept_shed(int listen_fd, int *spare, pid_t *pid)
{
    *pid = 0;
    if (*spare >= 0) {
        close(*spare);
        *spare = -1;
    }
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    int err = errno;
    if (fd >= 0) {
        dmce_peer_cred(fd, pid, NULL, NULL);
        close(fd);
    }
    *spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        return 1;
    if (err == EAGAIN || err == EINTR)
        return 0;
    struct timespec ts = {.tv_nsec = 1000000};
    nanosleep(&ts, NULL);
    return -err;
}

int dmce_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

int dmce_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
    struct ucred uc;
    socklen_t l = sizeof(uc);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &l) < 0)
        return -errno;
    if (pid)
        *pid = uc.pid;
    if (uid)
        *uid = uc.uid;
    if (gid)
        *gid = uc.gid;
    return 0;
}

int dmce_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int dmce_ct_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++)
        d |= (uint8_t)(x[i] ^ y[i]);
    return d == 0;
}

int dmce_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
        if (!*s)
            return -EINVAL;
    }
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && isxdigit((unsigned char)*s))
            d = (unsigned)(tolower((unsigned char)*s) - 'a' + 10);
        else
            return -EINVAL;
        if (v > (UINT64_MAX - d) / base)
            return -ERANGE;
        v = v * base + d;
    }
    *out = v;
    return 0;
}

int dmce_parse_i64(const char *s, int64_t *out)
{
    if (!s)
        return -EINVAL;
    int neg = (*s == '-');
    uint64_t v;
    int r = dmce_parse_u64(s + neg, &v);
    if (r < 0)
        return r;
    if (v > (uint64_t)INT64_MAX + (uint64_t)neg)
        return -ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int dmce_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return -EINVAL;
    char digits[32];
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < sizeof(digits) - 1) {
        digits[n] = s[n];
        n++;
    }
    if (n == 0)
        return -EINVAL;
    digits[n] = 0;
    uint64_t v;
    int r = dmce_parse_u64(digits, &v);
    if (r < 0)
        return r;
    const char *suf = s + n;
    unsigned shift = 0;
    switch (toupper((unsigned char)*suf)) {
    case 0: break;
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: return -EINVAL;
    }
    if (*suf) {
        suf++;
        if (!strcasecmp(suf, "") || !strcasecmp(suf, "B") || !strcasecmp(suf, "iB"))
            ;
        else
            return -EINVAL;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = v << shift;
    return 0;
}

const char *dmce_fmt_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < DMCE_ARRAY_LEN(units)) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.2f %s", v, units[u]);
    return buf;
}

int dmce_mkdir_private(const char *path)
{
    char tmp[4096];
    if (strlen(path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

uint64_t dmce_hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void dmce_msgf(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- process identity ------------------------------------------------------- */

/* Threads of pid from /proc/<pid>/status, 0 if unknown. */
static uint32_t proc_threads(uint32_t pid)
{
    char path[48], buf[2048];
    snprintf(path, sizeof path, "/proc/%u/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nThreads:");
    return p ? (uint32_t)strtoul(p + 9, NULL, 10) : 0;
}

/* util.h. (Moved from store_table.c: the turns board, turns.c, names processes the same way.) */
uint32_t dmce_proc_start(uint32_t pid, int *dead)
{
    char path[48], buf[640];
    *dead = 0;
    snprintf(path, sizeof path, "/proc/%u/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            *dead = 1;
        else if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
            *dead = 1;
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int rerr = errno;
    close(fd);
    if (n <= 0) {
        if (n < 0 && rerr == ESRCH)
            *dead = 1;
        return 0;
    }
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parens */
    if (!p || p[1] != ' ' || !p[2])
        return 0;
    p += 2; /* field 3: state */
    if (*p == 'X' || *p == 'x' || (*p == 'Z' && proc_threads(pid) <= 1)) {
        *dead = 1;
        return 0;
    }
    for (int f = 3; f < 22; f++) { /* to field 22: starttime */
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    uint32_t st = (uint32_t)strtoull(p, NULL, 10);
    return st ? st : 1;
}
