/*
 * Integration: hardening (issue 8) - permissions, load and abuse, crash and
 * restart. What each test proves is in docs/reliability.md.
 *
 * - Permissions: the runtime directory the daemon makes is 0700, its
 *   socket, lock file and every shm object of the cluster are 0600 and the
 *   cluster's user's; a client running as `nobody` can neither open them nor
 *   connect through the socket's mode, and when the socket is made
 *   reachable (0666) the daemon's SO_PEERCRED check closes the connection
 *   before any request: no reply, no block descriptor, a log warning.
 * - Load and abuse on one daemon: 1000 connections held, clients trickling
 *   one byte at a time and stalling mid-frame, a client that never reads its
 *   replies, a flood of setups asking for more than exists; meanwhile a
 *   well-behaved client's round trips all succeed (p99 printed) and stats
 *   answer. max_clients is enforced, and a shortage of file descriptors
 *   refuses connections cleanly instead of spinning.
 * - Crash and restart: kill -9 of a daemon at varying points under a
 *   client's load, 100 times: the client gets an error (not a hang, not a
 *   signal); the restarted daemon removes the dead one's objects and socket
 *   and never touches another cluster's.
 *
 * Daemons here are either the harness's (H.dir, H.cluster) or "own" ones
 * started below with their own runtime directory and their stderr in a log
 * file, so that a test can read their warnings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "msmp_dispatch.h"
#include "util.h"

/* ---- daemons of our own: own runtime dir, stderr to a log file ------------------ */

struct own {
    pid_t pid;
    char top[64];      /* mkdtemp: holds the log and the runtime dir */
    char dir[96];      /* the runtime dir: the daemon makes it */
    char sock[320];
    char lock[320];
    char log[96];
    char cluster[96];
    int id;
    int status; /* wait status, once it exited */
};

#define OWN_MAX 4
static struct own *owns[OWN_MAX]; /* for the exit handler */

static int shm_scan(const char *cluster, int id, int unlink_them, int *bad_mode, char *first,
                    size_t first_len);

static void own_cleanup(struct own *d)
{
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
    if (d->cluster[0])
        shm_scan(d->cluster, -1, 1, NULL, NULL, 0);
    if (d->top[0]) {
        unlink(d->sock);
        unlink(d->lock);
        rmdir(d->dir);
        unlink(d->log);
        rmdir(d->top);
        d->top[0] = 0;
    }
    for (int i = 0; i < OWN_MAX; i++)
        if (owns[i] == d)
            owns[i] = NULL;
}

static char tmpfs_dir[64]; /* test_shm_full's private tmpfs, mounted while set */

static void own_cleanup_all(void)
{
    for (int i = 0; i < OWN_MAX; i++)
        if (owns[i])
            own_cleanup(owns[i]);
    if (tmpfs_dir[0]) {
        umount2(tmpfs_dir, MNT_DETACH);
        rmdir(tmpfs_dir);
        tmpfs_dir[0] = 0;
    }
}

static int own_ready(void *arg)
{
    struct own *d = arg;
    if (waitpid(d->pid, &d->status, WNOHANG) == d->pid) {
        d->pid = -1; /* exited: d->status says how */
        return 1;
    }
    /* Answering stats is not enough: it answers while it makes its initial blocks. */
    dmce_stats_t st;
    return harness_sock_stats(d->sock, &st) == 0 && !st.starting;
}

/*
 * Start dmce-memd --id id --cluster cluster in a new private directory:
 * the runtime dir is d->top/run, which the daemon creates, or which exists
 * already with mode premade when that is not 0. Extra flags from ap. Waits
 * (10 s) until it answers. 0, or -ECHILD when it exited (d->status; its log
 * is printed unless quiet), or -errno.
 */
static int own_start_v(struct own *d, mode_t premade, int quiet, const char *cluster, int id,
                       va_list ap)
{
    memset(d, 0, sizeof(*d));
    snprintf(d->top, sizeof(d->top), "/tmp/dmce-h3.XXXXXX");
    if (!mkdtemp(d->top))
        return -errno;
    for (int i = 0; i < OWN_MAX; i++)
        if (!owns[i]) {
            owns[i] = d;
            break;
        }
    snprintf(d->dir, sizeof(d->dir), "%s/run", d->top);
    snprintf(d->sock, sizeof(d->sock), "%s/memd-%d.sock", d->dir, id);
    snprintf(d->lock, sizeof(d->lock), "%s/memd-%d.lock", d->dir, id);
    snprintf(d->log, sizeof(d->log), "%s/memd.log", d->top);
    snprintf(d->cluster, sizeof(d->cluster), "%s", cluster);
    d->id = id;
    if (premade && (mkdir(d->dir, 0700) < 0 || chmod(d->dir, premade) < 0))
        return -errno;

    const char *bin = getenv("DMCE_MEMD");
    if (!bin)
        bin = "./dmce-memd";
    char a_dir[128], a_cl[128], a_id[32];
    snprintf(a_dir, sizeof(a_dir), "--runtime-dir=%s", d->dir);
    snprintf(a_cl, sizeof(a_cl), "--cluster=%s", cluster);
    snprintf(a_id, sizeof(a_id), "--id=%d", id);
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = a_dir;
    argv[n++] = a_cl;
    argv[n++] = a_id;
    argv[n++] = "--log-level=warn";
    argv[n++] = "--dispatcher=none";
    const char *a;
    while ((a = va_arg(ap, const char *)) && n < 30)
        argv[n++] = (char *)a;
    argv[n] = NULL;
    pid_t pid = harness_fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        /* stdout too: a daemon left behind must not hold the test's output open */
        int lf = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
        }
        execv(bin, argv);
        _exit(127);
    }
    d->pid = pid;
    int r = !harness_wait(own_ready, d, 10000) ? -ETIMEDOUT : d->pid > 0 ? 0 : -ECHILD;
    if (r < 0 && !quiet) { /* say why */
        FILE *f = fopen(d->log, "r");
        char line[512];
        while (f && fgets(line, sizeof(line), f))
            print_error("memd[%d]: %s", id, line);
        if (f)
            fclose(f);
    }
    return r;
}

static int own_start(struct own *d, const char *cluster, int id, ...) __attribute__((sentinel));
static int own_start(struct own *d, const char *cluster, int id, ...)
{
    va_list ap;
    va_start(ap, id);
    int r = own_start_v(d, 0, 0, cluster, id, ap);
    va_end(ap);
    return r;
}

/* Same, in a runtime dir made beforehand with mode premade; failure is expected (quiet). */
static int own_start_in(struct own *d, mode_t premade, const char *cluster, int id, ...)
    __attribute__((sentinel));
static int own_start_in(struct own *d, mode_t premade, const char *cluster, int id, ...)
{
    va_list ap;
    va_start(ap, id);
    int r = own_start_v(d, premade, 1, cluster, id, ap);
    va_end(ap);
    return r;
}

/* SIGTERM and wait (10 s): the exit status, or -ETIMEDOUT. */
static int own_stop(struct own *d)
{
    if (d->pid <= 0)
        return -ESRCH;
    kill(d->pid, SIGTERM);
    uint64_t deadline = dmce_now_ms() + 10000;
    while (dmce_now_ms() < deadline) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            d->pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        usleep(2000);
    }
    return -ETIMEDOUT;
}

/* Lines of the daemon's log that contain needle. */
static int log_count(const struct own *d, const char *needle)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

struct log_probe {
    const struct own *d;
    const char *needle;
};

static int log_has(void *arg)
{
    struct log_probe *p = arg;
    return log_count(p->d, p->needle) > 0;
}

/*
 * The shm objects of cluster (and daemon id, or -1 for all) in /dev/shm:
 * their number; optionally unlinks them, counts those that are not mode
 * 0600 or not owned by us, and copies the first name.
 */
static int shm_scan(const char *cluster, int id, int unlink_them, int *bad_mode, char *first,
                    size_t first_len)
{
    char prefix[160];
    if (id < 0)
        snprintf(prefix, sizeof(prefix), "dmce.%u.%s.", (unsigned)geteuid(), cluster);
    else
        snprintf(prefix, sizeof(prefix), "dmce.%u.%s.m%d.", (unsigned)geteuid(), cluster, id);
    DIR *dd = opendir("/dev/shm");
    if (!dd)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "/dev/shm/%s", e->d_name);
        n++;
        if (first && n == 1)
            snprintf(first, first_len, "%s", e->d_name);
        if (bad_mode) {
            struct stat st;
            if (stat(p, &st) < 0 || (st.st_mode & 07777) != 0600 || st.st_uid != geteuid())
                (*bad_mode)++;
        }
        if (unlink_them)
            unlink(p);
    }
    closedir(dd);
    return n;
}

/* Resident memory of a process in KiB (0 if unknown). */
static unsigned long rss_kib(pid_t pid)
{
    char p[64], line[256];
    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    unsigned long kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lu", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* CPU time (user + system) of a process in ms. */
static uint64_t cpu_ms(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *s = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (ut + st) * 1000ull / (uint64_t)sysconf(_SC_CLK_TCK);
}

static int count_fds(pid_t pid)
{
    char p[64];
    snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
    DIR *dd = opendir(p);
    if (!dd)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dd);
    return n;
}

/* Blocking connection with a receive timeout, or -errno. */
static int sock_connect(const char *path, unsigned timeout_ms)
{
    int fd = dmce_unix_connect(path);
    if (fd < 0)
        return fd;
    struct timeval tv = {.tv_sec = timeout_ms / 1000,
                         .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* A stats request on fd and its answer (into out if not NULL): 0, or an error. */
static int fd_stats(int fd, dmce_stats_t *out)
{
    int r = raw_send(fd, DMCE_MSMP_OP_STATS, 7, NULL, 0);
    if (r < 0)
        return r;
    uint8_t buf[4096];
    int32_t st = -1;
    r = raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf));
    if (r < 0 || st != 0)
        return r < 0 ? r : st;
    uint64_t v[DMCE_STAT_COUNT_];
    if (out && (r = dmce_msmp_stats_decode(buf, (size_t)r, v)) < 0)
        return r;
    if (out)
        dmce_msmp_stats_to_struct(v, out);
    return 0;
}

/* 1 when the daemon closed fd without answering (read gives EOF or a reset). */
static int closed_unanswered(int fd)
{
    char b[64];
    ssize_t n = recv(fd, b, sizeof(b), 0);
    return n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE));
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static int group_setup(void **state)
{
    (void)state;
    atexit(own_cleanup_all);
    return harness_init();
}

static int group_teardown(void **state)
{
    (void)state;
    own_cleanup_all();
    harness_cleanup();
    return 0;
}

/* 1 if the dispatcher of H.dir answers its stats request (as the cluster's user). */
static int sock_answers_disp(void)
{
    int fd = sock_connect(harness_disp_sock(), 5000);
    if (fd < 0)
        return 0;
    int r = raw_send(fd, DMCE_MSMP_OP_DISP_STATS, 1, NULL, 0);
    uint8_t buf[4096];
    int32_t st = -1;
    if (r == 0)
        r = raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf));
    close(fd);
    return r >= 0 && st == 0;
}

/* ---- 1. permissions ---------------------------------------------------------------- */

static void assert_mode(const char *path, mode_t type, mode_t mode)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    if ((st.st_mode & S_IFMT) != type || (st.st_mode & 07777) != mode || st.st_uid != geteuid())
        print_error("%s: mode %o uid %u, want %o uid %u\n", path, st.st_mode & 07777,
                    (unsigned)st.st_uid, mode, (unsigned)geteuid());
    assert_int_equal(st.st_mode & S_IFMT, type);
    assert_int_equal(st.st_mode & 07777, mode);
    assert_int_equal(st.st_uid, geteuid());
}

static void test_files_are_private(void **state)
{
    (void)state;
    static struct own d; /* static: the exit handler may see it after a failed assert */
    assert_int_equal(own_start(&d, H.cluster, 3, "--block-size=2M", "--blocks-initial=2",
                               "--max-blocks=4", NULL), 0);
    /* The runtime dir the daemon made, its socket and lock file. */
    assert_mode(d.dir, S_IFDIR, 0700);
    assert_mode(d.sock, S_IFSOCK, 0600);
    assert_mode(d.lock, S_IFREG, 0600);

    /* A client that maps blocks; a third block made on demand. */
    const char *paths[1] = {d.sock};
    dmce_connect_opts_t o = {.sockets = paths, .nsockets = 1, .io_timeout_ms = 5000,
                             .flags = DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    assert_int_equal(dmce_connect(&o, &c), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a[3];
    for (int i = 0; i < 3; i++) /* a 1.5 MiB allocation per 2 MiB block */
        assert_int_equal(dmce_malloc(c, 1536 * 1024, &a[i]), 0);
    uint8_t x[64] = {1};
    assert_int_equal(dmce_write(c, a[2], x, sizeof(x)), 0);
    assert_int_equal(dmce_read(c, a[2], x, sizeof(x)), 0);

    /* Every object of the cluster: 0600 and ours. */
    int bad = 0;
    char name[256] = "";
    int n = shm_scan(H.cluster, -1, 0, &bad, name, sizeof(name));
    assert_int_equal(n, 3);
    assert_int_equal(bad, 0);
    /*
     * The names are dmce.UID.CLUSTER.mID.bBLOCK: no random part. The cluster
     * defaults to a hash of the runtime dir, so another user can work a name
     * out (and can list /dev/shm anyway); what keeps them out is the mode
     * (test_other_user_is_refused opens them as nobody).
     */
    print_message("shm names carry no secret: e.g. /dev/shm/%s\n", name);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(own_stop(&d), 0);
    assert_int_equal(shm_scan(H.cluster, -1, 0, NULL, NULL, 0), 0);
    assert_int_equal(access(d.sock, F_OK), -1);
    own_cleanup(&d);

    /* A runtime dir others can write is refused; one they can only search is warned about. */
    static const mode_t lax[] = {0777, 0770, 01777};
    for (size_t i = 0; i < sizeof(lax) / sizeof(lax[0]); i++) {
        assert_int_equal(own_start_in(&d, lax[i], H.cluster, 3, "--block-size=2M", NULL),
                         -ECHILD);
        assert_true(WIFEXITED(d.status) && WEXITSTATUS(d.status) == 1);
        assert_int_equal(log_count(&d, "that nobody else can write"), 1);
        assert_int_equal(access(d.sock, F_OK), -1);
        assert_int_equal(shm_scan(H.cluster, -1, 0, NULL, NULL, 0), 0);
        own_cleanup(&d);
    }
    assert_int_equal(own_start_in(&d, 0711, H.cluster, 3, "--block-size=2M", NULL), 0);
    assert_int_equal(log_count(&d, "other users can see into it"), 1);
    assert_mode(d.sock, S_IFSOCK, 0600);
    assert_int_equal(own_stop(&d), 0);
    own_cleanup(&d);
}

/* What a client running as nobody could do. */
struct nobody_report {
    int uid;          /* getuid() after dropping privileges */
    int shm_seen;     /* cluster objects listed in /dev/shm */
    int shm_opened;   /* ... that it could open (read-only) */
    int shm_denied;   /* ... refused with EACCES */
    int lock_err;     /* errno of opening the lock file */
    int connect_err;  /* 0 or errno of connect() */
    int closed;       /* the daemon closed the connection */
    int got_bytes;    /* bytes of any reply */
    int got_fds;      /* descriptors received (SCM_RIGHTS) */
};

static void nobody_child(const struct passwd *pw, const struct own *d, dmce_addr_t addr, int out)
{
    struct nobody_report rep = {0};
    unsigned owner = (unsigned)geteuid(); /* the daemon's user, in the objects' names */
    if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        _exit(90);
    rep.uid = (int)getuid();
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "dmce.%u.%s.m%d.", owner, d->cluster, d->id);
    DIR *dd = opendir("/dev/shm");
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        rep.shm_seen++;
        char p[512];
        snprintf(p, sizeof(p), "/dev/shm/%s", e->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            rep.shm_opened++;
            close(fd);
        } else if (errno == EACCES) {
            rep.shm_denied++;
        }
    }
    if (dd)
        closedir(dd);
    int lf = open(d->lock, O_RDONLY | O_CLOEXEC);
    rep.lock_err = lf < 0 ? errno : 0;
    if (lf >= 0)
        close(lf);

    int fd = dmce_unix_connect(d->sock);
    if (fd < 0) {
        rep.connect_err = -fd;
    } else {
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        /* A session, then the block's descriptor: neither may come back. */
        dmce_msmp_setup_req_t sq = {.layout = UINT32_MAX};
        dmce_random_bytes(sq.token, sizeof(sq.token));
        uint8_t sp[DMCE_MSMP_SETUP_REQ_SIZE];
        dmce_msmp_setup_req_encode(&sq, sp);
        (void)raw_send(fd, DMCE_MSMP_OP_SETUP, 1, sp, sizeof(sp));
        dmce_msmp_map_req_t mq = {.addr = addr, .len = 64, .flags = DMCE_MSMP_MAP_WANT_FD};
        uint8_t mp[DMCE_MSMP_MAP_REQ_SIZE];
        dmce_msmp_map_req_encode(&mq, mp);
        (void)raw_send(fd, DMCE_MSMP_OP_MAP, 2, mp, sizeof(mp));
        for (;;) {
            uint8_t buf[4096];
            union {
                struct cmsghdr h;
                char b[CMSG_SPACE(8 * sizeof(int))];
            } ctl;
            struct iovec iov = {buf, sizeof(buf)};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                                 .msg_controllen = sizeof(ctl.b)};
            ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
            for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm;
                 cm = CMSG_NXTHDR(&msg, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
                    rep.got_fds += (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            if (n > 0) {
                rep.got_bytes += (int)n;
                continue;
            }
            rep.closed = n == 0 || errno == ECONNRESET;
            break;
        }
        close(fd);
    }
    if (write(out, &rep, sizeof(rep)) != sizeof(rep))
        _exit(91);
    _exit(0);
}

/* Run nobody_child; its report and pid. */
static void as_nobody(const struct passwd *pw, const struct own *d, dmce_addr_t addr,
                      struct nobody_report *rep, pid_t *pid_out)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        nobody_child(pw, d, addr, p[1]);
    }
    close(p[1]);
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    int ready = poll(&pf, 1, 15000);
    ssize_t n = ready == 1 ? read(p[0], rep, sizeof(*rep)) : -1;
    close(p[0]);
    if (n != (ssize_t)sizeof(*rep))
        kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(n, (ssize_t)sizeof(*rep));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(rep->uid, (int)pw->pw_uid);
    *pid_out = pid;
}

static void test_other_user_is_refused(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("not root: cannot run a client as another user\n");
        skip();
    }
    struct passwd *pw = getpwnam("nobody");
    if (!pw || pw->pw_uid == 0) {
        print_message("no user nobody\n");
        skip();
    }
    struct passwd nobody = *pw;
    static struct own d; /* static: the exit handler may see it after a failed assert */
    assert_int_equal(own_start(&d, H.cluster, 4, "--block-size=2M", NULL), 0);

    /* The cluster's user maps a block: it gets the block's descriptor. */
    const char *paths[1] = {d.sock};
    dmce_connect_opts_t o = {.sockets = paths, .nsockets = 1, .io_timeout_ms = 5000,
                             .flags = DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    assert_int_equal(dmce_connect(&o, &c), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    uint8_t x[64];
    memset(x, 0x5a, sizeof(x));
    assert_int_equal(dmce_write(c, a, x, sizeof(x)), 0);
    void *ptr = NULL;
    assert_int_equal(dmce_map(c, a, sizeof(x), 0, &ptr), 0);
    assert_memory_equal(ptr, x, sizeof(x));
    assert_int_equal(dmce_unmap(c, ptr), 0);
    dmce_stats_t st0;
    assert_int_equal(harness_sock_stats(d.sock, &st0), 0);
    assert_true(st0.fds_sent >= 1);

    /* Let nobody reach the socket's directory (the socket itself stays 0600). */
    assert_int_equal(chmod(d.top, 0711), 0);
    assert_int_equal(chmod(d.dir, 0711), 0);
    struct nobody_report rep;
    pid_t child;
    as_nobody(&nobody, &d, a, &rep, &child);
    print_message("as nobody: %d shm objects listed, %d opened, %d denied; lock file: %s; "
                  "connect to the 0600 socket: %s\n",
                  rep.shm_seen, rep.shm_opened, rep.shm_denied, strerror(rep.lock_err),
                  strerror(rep.connect_err));
    assert_int_equal(rep.shm_seen, 1);
    assert_int_equal(rep.shm_opened, 0);
    assert_int_equal(rep.shm_denied, 1);
    assert_int_equal(rep.lock_err, EACCES);
    assert_int_equal(rep.connect_err, EACCES);

    /* The socket made reachable: the daemon's own check (SO_PEERCRED) refuses. */
    assert_int_equal(chmod(d.sock, 0666), 0);
    as_nobody(&nobody, &d, a, &rep, &child);
    print_message("as nobody through a 0666 socket: connect %s, closed %d, %d reply bytes, "
                  "%d descriptors\n",
                  rep.connect_err ? strerror(rep.connect_err) : "ok", rep.closed, rep.got_bytes,
                  rep.got_fds);
    assert_int_equal(rep.connect_err, 0);
    assert_int_equal(rep.closed, 1);
    assert_int_equal(rep.got_bytes, 0);
    assert_int_equal(rep.got_fds, 0);
    char needle[128];
    snprintf(needle, sizeof(needle), "refused connection from pid %d uid %u: not the cluster's user",
             (int)child, (unsigned)nobody.pw_uid);
    struct log_probe lp = {&d, needle};
    assert_true(harness_wait(log_has, &lp, 5000));

    /* Nothing was handed out, and the cluster's user is still served. */
    dmce_stats_t st1;
    assert_int_equal(harness_sock_stats(d.sock, &st1), 0);
    assert_int_equal(st1.fds_sent, st0.fds_sent);
    assert_int_equal(st1.ops_map, st0.ops_map);
    assert_int_equal(st1.ops_setup, st0.ops_setup);
    dmce_addr_t b;
    assert_int_equal(dmce_malloc(c, 4096, &b), 0);
    assert_int_equal(dmce_write(c, b, x, sizeof(x)), 0);
    uint8_t back[64];
    assert_int_equal(dmce_read(c, b, back, sizeof(back)), 0);
    assert_memory_equal(back, x, sizeof(x));
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(own_stop(&d), 0);
    assert_int_equal(shm_scan(H.cluster, -1, 0, NULL, NULL, 0), 0);
    own_cleanup(&d);

    /* The dispatcher's socket: the same two walls. */
    assert_int_equal(harness_start_dispatcher(0, "--log-level=error", NULL), 0);
    static struct own disp; /* only its paths, for nobody_child */
    memset(&disp, 0, sizeof(disp));
    snprintf(disp.sock, sizeof(disp.sock), "%s", harness_disp_sock());
    snprintf(disp.lock, sizeof(disp.lock), "%s/dispatcher.lock", H.dir);
    snprintf(disp.cluster, sizeof(disp.cluster), "no-such-cluster");
    assert_mode(disp.sock, S_IFSOCK, 0600);
    assert_int_equal(chmod(H.dir, 0711), 0);
    as_nobody(&nobody, &disp, a, &rep, &child);
    assert_int_equal(rep.lock_err, EACCES);
    assert_int_equal(rep.connect_err, EACCES);
    assert_int_equal(chmod(disp.sock, 0666), 0);
    as_nobody(&nobody, &disp, a, &rep, &child);
    int disp_alive = sock_answers_disp();
    assert_int_equal(chmod(H.dir, 0700), 0);
    print_message("as nobody, the dispatcher's socket: connect %s, closed %d, %d reply bytes, "
                  "%d descriptors\n",
                  rep.connect_err ? strerror(rep.connect_err) : "ok", rep.closed, rep.got_bytes,
                  rep.got_fds);
    assert_int_equal(rep.connect_err, 0);
    assert_int_equal(rep.closed, 1);
    assert_int_equal(rep.got_bytes, 0);
    assert_int_equal(rep.got_fds, 0);
    assert_true(disp_alive);
    assert_int_equal(harness_stop(0), 0);
}

/* ---- 2. load and abuse ------------------------------------------------------------- */

#define HELD 1000
#define MAX_CLIENTS 1100
#define TRICKLERS 10 /* whole requests, one byte at a time */
#define STALLERS 10  /* a large frame's header and a few bytes, then nothing */
#define FLOODERS 2

struct abuse {
    const char *sock;
    atomic_int stop;
    atomic_int error;                   /* first unexpected result */
    atomic_uint_fast64_t trickle_bytes, trickle_answers, stall_bytes;
    atomic_uint_fast64_t nonreader_frames, nonreader_blocked;
    atomic_uint_fast64_t flood_refused, flood_other;
};

static void abuse_fail(struct abuse *ab, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&ab->error, &zero, err ? err : -EIO);
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Tricklers send whole stats requests one byte at a time; stallers stop mid-frame. */
static void *trickle_main(void *arg)
{
    struct abuse *ab = arg;
    int tf[TRICKLERS], sf[STALLERS];
    size_t tpos[TRICKLERS] = {0}, spos[STALLERS] = {0};
    uint8_t req[DMCE_MSMP_HDR_SIZE], big[DMCE_MSMP_HDR_SIZE + 100];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_STATS, .req_id = 9};
    dmce_msmp_hdr_encode(&h, req);
    h.op = DMCE_MSMP_OP_WRITE;
    h.len = 512u << 10; /* announced, never sent */
    dmce_msmp_hdr_encode(&h, big);
    memset(big + DMCE_MSMP_HDR_SIZE, 0x33, 100);
    for (int i = 0; i < TRICKLERS; i++)
        tf[i] = sock_connect(ab->sock, 5000);
    for (int i = 0; i < STALLERS; i++)
        sf[i] = sock_connect(ab->sock, 5000);
    for (int i = 0; i < TRICKLERS; i++)
        if (tf[i] < 0)
            abuse_fail(ab, tf[i]);
    for (int i = 0; i < STALLERS; i++)
        if (sf[i] < 0)
            abuse_fail(ab, sf[i]);
    while (!atomic_load(&ab->stop) && !atomic_load(&ab->error)) {
        for (int i = 0; i < TRICKLERS; i++) {
            if (send(tf[i], req + tpos[i], 1, MSG_NOSIGNAL) != 1) {
                abuse_fail(ab, -errno);
                break;
            }
            atomic_fetch_add(&ab->trickle_bytes, 1);
            if (++tpos[i] < sizeof(req))
                continue;
            tpos[i] = 0;
            uint8_t buf[4096];
            int32_t st = -1;
            int r = raw_recv(tf[i], &st, NULL, NULL, buf, sizeof(buf));
            if (r < 0 || st != 0)
                abuse_fail(ab, r < 0 ? r : st);
            else
                atomic_fetch_add(&ab->trickle_answers, 1);
        }
        for (int i = 0; i < STALLERS; i++) {
            if (spos[i] == sizeof(big))
                continue; /* stalled for good */
            if (send(sf[i], big + spos[i], 1, MSG_NOSIGNAL) != 1) {
                abuse_fail(ab, -errno);
                break;
            }
            spos[i]++;
            atomic_fetch_add(&ab->stall_bytes, 1);
        }
        pause_ms(1); /* pacing: a byte per connection per millisecond */
    }
    /* The stallers were never answered nor dropped: the frame is still arriving. */
    for (int i = 0; i < STALLERS; i++) {
        char b;
        if (sf[i] >= 0 && recv(sf[i], &b, 1, MSG_DONTWAIT) != -1)
            abuse_fail(ab, -EPROTO);
    }
    for (int i = 0; i < TRICKLERS; i++)
        if (tf[i] >= 0)
            close(tf[i]);
    for (int i = 0; i < STALLERS; i++)
        if (sf[i] >= 0)
            close(sf[i]);
    return NULL;
}

/* A client that sends 64 KiB reads and never reads a reply. */
static void *nonreader_main(void *arg)
{
    struct abuse *ab = arg;
    int fd = sock_connect(ab->sock, 5000);
    if (fd < 0) {
        abuse_fail(ab, fd);
        return NULL;
    }
    int r = raw_setup(fd, 0);
    uint8_t p8[8], resp[64];
    dmce_put_le64(p8, 64 << 10);
    int32_t st = -1;
    if (r == 0)
        r = raw_send(fd, DMCE_MSMP_OP_MALLOC, 2, p8, sizeof(p8));
    if (r == 0)
        r = raw_recv(fd, &st, NULL, NULL, resp, sizeof(resp));
    if (r < 0 || st != 0) {
        abuse_fail(ab, r < 0 ? r : st);
        close(fd);
        return NULL;
    }
    uint8_t frame[DMCE_MSMP_HDR_SIZE + DMCE_MSMP_RW_REQ_SIZE];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_READ, .req_id = 3, .len = DMCE_MSMP_RW_REQ_SIZE};
    dmce_msmp_hdr_encode(&h, frame);
    dmce_msmp_rw_req_t rq = {.addr = dmce_get_le64(resp), .len = 64 << 10};
    dmce_msmp_rw_req_encode(&rq, frame + DMCE_MSMP_HDR_SIZE);
    size_t off = 0;
    while (!atomic_load(&ab->stop)) {
        ssize_t n = send(fd, frame + off, sizeof(frame) - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            atomic_store(&ab->nonreader_blocked, 1); /* the daemon stopped reading us */
            pause_ms(5);
            continue;
        }
        if (n < 0) {
            abuse_fail(ab, -errno);
            break;
        }
        off += (size_t)n;
        if (off == sizeof(frame)) {
            off = 0;
            atomic_fetch_add(&ab->nonreader_frames, 1);
        }
    }
    close(fd);
    return NULL;
}

/* Setups asking for more memory than the daemon has, each on a new connection. */
static void *flood_main(void *arg)
{
    struct abuse *ab = arg;
    while (!atomic_load(&ab->stop)) {
        int fd = sock_connect(ab->sock, 5000);
        if (fd < 0) {
            abuse_fail(ab, fd);
            break;
        }
        int st = raw_setup(fd, 1ull << 40);
        if (st == DMCE_ENOMEM && closed_unanswered(fd)) /* failure notice, then disconnect */
            atomic_fetch_add(&ab->flood_refused, 1);
        else
            atomic_fetch_add(&ab->flood_other, 1);
        close(fd);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct good_result {
    int errors;
    uint64_t elapsed_ms;
    double p50_us, p99_us, max_us;
};

#define GOOD_OPS 2000

/* GOOD_OPS write+read round trips of 64 bytes, every one an MSMP message. */
static void good_client(const char *sock, unsigned flags, struct good_result *res)
{
    memset(res, 0, sizeof(*res));
    static uint64_t lat[GOOD_OPS];
    const char *paths[1] = {sock};
    dmce_connect_opts_t o = {.sockets = paths, .nsockets = 1, .io_timeout_ms = 10000,
                             .flags = flags | DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    dmce_addr_t a;
    uint64_t t_start = dmce_now_ms();
    if (dmce_connect(&o, &c) < 0) {
        res->errors = GOOD_OPS;
        return;
    }
    if (dmce_setup(c, 64 << 10, 0, NULL, NULL) < 0 || dmce_malloc(c, 64, &a) < 0) {
        res->errors = GOOD_OPS;
        dmce_disconnect(c);
        return;
    }
    for (int i = 0; i < GOOD_OPS; i++) {
        uint8_t buf[64], back[64];
        memset(buf, (uint8_t)i, sizeof(buf));
        uint64_t t0 = dmce_now_ns();
        int r = dmce_write(c, a, buf, sizeof(buf));
        if (r == 0)
            r = dmce_read(c, a, back, sizeof(back));
        lat[i] = dmce_now_ns() - t0;
        if (r < 0 || memcmp(buf, back, sizeof(buf)) != 0)
            res->errors++;
    }
    if (dmce_free(c, a) < 0 || dmce_disconnect(c) < 0)
        res->errors++;
    res->elapsed_ms = dmce_now_ms() - t_start;
    qsort(lat, GOOD_OPS, sizeof(lat[0]), cmp_u64);
    res->p50_us = (double)lat[GOOD_OPS / 2] / 1e3;
    res->p99_us = (double)lat[GOOD_OPS * 99 / 100] / 1e3;
    res->max_us = (double)lat[GOOD_OPS - 1] / 1e3;
}

static int abuse_running(void *arg)
{
    struct abuse *ab = arg;
    return atomic_load(&ab->error) || (atomic_load(&ab->flood_refused) >= 10 &&
                                       atomic_load(&ab->trickle_answers) >= TRICKLERS &&
                                       atomic_load(&ab->stall_bytes) >= STALLERS * 50 &&
                                       atomic_load(&ab->nonreader_blocked));
}

/* Asked on a connection already counted (fd), or on a new one (fd < 0, counted too). */
struct clients_probe {
    int fd;
    const char *sock;
    uint64_t want;
    dmce_stats_t st;
};

static int clients_are(void *arg)
{
    struct clients_probe *p = arg;
    int r = p->fd >= 0 ? fd_stats(p->fd, &p->st) : harness_sock_stats(p->sock, &p->st);
    return r == 0 && p->st.clients == p->want;
}

static int serves(void *arg)
{
    return harness_sock_stats(arg, NULL) == 0;
}

static void test_load_and_abuse(void **state)
{
    (void)state;
    raise_nofile(4096); /* ours; the daemon raises its own to fit max_clients */
    static struct own d; /* static: the exit handler may see it after a failed assert */
    char maxc[32];
    snprintf(maxc, sizeof(maxc), "--max-clients=%d", MAX_CLIENTS);
    assert_int_equal(own_start(&d, H.cluster, 5, "--block-size=2M", "--max-blocks=4", maxc,
                               NULL), 0);
    unsigned long rss0 = rss_kib(d.pid);

    /* 1000 connections, each served once, then held. */
    static int held[HELD];
    uint64_t t0 = dmce_now_ms();
    for (int i = 0; i < HELD; i++) {
        held[i] = sock_connect(d.sock, 5000);
        assert_true(held[i] >= 0);
        assert_int_equal(raw_send(held[i], DMCE_MSMP_OP_STATS, 1, NULL, 0), 0);
    }
    for (int i = 0; i < HELD; i++) {
        uint8_t buf[4096];
        int32_t st = -1;
        assert_true(raw_recv(held[i], &st, NULL, NULL, buf, sizeof(buf)) >= 0);
        assert_int_equal(st, 0);
    }
    print_message("%d connections opened and served in %llu ms\n", HELD,
                  (unsigned long long)(dmce_now_ms() - t0));
    /* Counted: the daemon has seen every probe of the start close by now. */
    struct clients_probe cp = {.fd = held[0], .sock = d.sock, .want = HELD};
    assert_true(harness_wait(clients_are, &cp, 5000));

    /* The abuse starts, and is under way before the measurement. */
    struct abuse ab = {.sock = d.sock};
    pthread_t tt, tn, tf[FLOODERS];
    assert_int_equal(pthread_create(&tt, NULL, trickle_main, &ab), 0);
    assert_int_equal(pthread_create(&tn, NULL, nonreader_main, &ab), 0);
    for (int i = 0; i < FLOODERS; i++)
        assert_int_equal(pthread_create(&tf[i], NULL, flood_main, &ab), 0);
    int running = harness_wait(abuse_running, &ab, 10000);

    /* A well-behaved client: over the rings, then over the socket. */
    struct good_result ring, sock;
    good_client(d.sock, 0, &ring);
    good_client(d.sock, DMCE_CONNECT_NO_RING, &sock);
    dmce_stats_t during;
    int stats_during = harness_sock_stats(d.sock, &during);
    unsigned long rss1 = rss_kib(d.pid);

    atomic_store(&ab.stop, 1);
    pthread_join(tt, NULL);
    pthread_join(tn, NULL);
    for (int i = 0; i < FLOODERS; i++)
        pthread_join(tf[i], NULL);

    print_message("under abuse, %d write+read round trips of 64 bytes each:\n", GOOD_OPS);
    print_message("  rings:  p50 %.1f us, p99 %.1f us, max %.1f us, %d errors, %llu ms in all\n",
                  ring.p50_us, ring.p99_us, ring.max_us, ring.errors,
                  (unsigned long long)ring.elapsed_ms);
    print_message("  socket: p50 %.1f us, p99 %.1f us, max %.1f us, %d errors, %llu ms in all\n",
                  sock.p50_us, sock.p99_us, sock.max_us, sock.errors,
                  (unsigned long long)sock.elapsed_ms);
    print_message("abuse meanwhile: %llu oversized setups refused, %llu requests trickled "
                  "byte by byte (%llu bytes), %d connections stalled mid-frame, %llu unread "
                  "64 KiB reads queued; daemon RSS %lu -> %lu KiB\n",
                  (unsigned long long)ab.flood_refused, (unsigned long long)ab.trickle_answers,
                  (unsigned long long)ab.trickle_bytes, STALLERS,
                  (unsigned long long)ab.nonreader_frames, rss0, rss1);
    if (ab.error)
        print_error("abuse thread: unexpected %s\n", dmce_err_name(ab.error));
    assert_true(running);
    assert_int_equal(ab.error, 0);
    assert_int_equal(ab.flood_other, 0);
    assert_true(ab.flood_refused >= 10);
    assert_int_equal(ring.errors, 0);
    assert_int_equal(sock.errors, 0);
    assert_true(ring.elapsed_ms < 20000);
    assert_true(sock.elapsed_ms < 20000);
    assert_int_equal(stats_during, 0);
    assert_true(during.clients >= HELD + TRICKLERS + STALLERS + 1);

    /* Afterwards: no reservation left behind by the refused setups. */
    assert_true(harness_wait(clients_are, &cp, 5000));
    assert_int_equal(cp.st.bytes_reserved, 0);

    /* max_clients: up to it, connections are served; beyond it, closed unanswered. */
    static int extra[MAX_CLIENTS - HELD];
    for (int i = 0; i < MAX_CLIENTS - HELD; i++) {
        extra[i] = sock_connect(d.sock, 5000);
        assert_true(extra[i] >= 0);
        assert_int_equal(fd_stats(extra[i], NULL), 0);
    }
    for (int i = 0; i < 3; i++) {
        int fd = sock_connect(d.sock, 5000);
        assert_true(fd >= 0); /* the kernel accepts; the daemon closes it */
        (void)raw_send(fd, DMCE_MSMP_OP_STATS, 1, NULL, 0);
        assert_true(closed_unanswered(fd));
        close(fd);
    }
    assert_true(harness_sock_stats(d.sock, NULL) <
                0); /* a well-behaved client too: the limit is for all */
    char needle[64];
    snprintf(needle, sizeof(needle), "max_clients (%d) reached", MAX_CLIENTS);
    struct log_probe lp = {&d, needle};
    assert_true(harness_wait(log_has, &lp, 5000));
    close(held[0]);
    assert_true(harness_wait(serves, d.sock, 5000)); /* a slot is free again */
    for (int i = 0; i < MAX_CLIENTS - HELD; i++)
        close(extra[i]);
    for (int i = 1; i < HELD; i++)
        close(held[i]);
    cp.fd = -1;
    cp.want = 1; /* the probe's own */
    assert_true(harness_wait(clients_are, &cp, 5000));
    print_message("max_clients %d enforced: %d log lines about refusals\n", MAX_CLIENTS,
                  log_count(&d, "refused connection"));
    assert_int_equal(own_stop(&d), 0);
    assert_int_equal(shm_scan(H.cluster, -1, 0, NULL, NULL, 0), 0);
    own_cleanup(&d);
}

/*
 * Out of file descriptors (a limit below max_clients): connections beyond
 * what the daemon can hold are closed at once, the daemon does not spin on
 * its listening socket, the log says so once a second at most, and when
 * descriptors are back it serves again.
 */
static void test_out_of_descriptors(void **state)
{
    (void)state;
    static struct own d; /* static: the exit handler may see it after a failed assert */
    /* Started with a soft limit below max_clients (1024), it raises its own. */
    struct rlimit mine, low_start;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &mine), 0);
    low_start = mine;
    low_start.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low_start), 0);
    int started = own_start(&d, H.cluster, 6, "--block-size=2M", NULL);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &mine), 0);
    assert_int_equal(started, 0);
    struct rlimit got;
    assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, NULL, &got), 0);
    if (mine.rlim_max == RLIM_INFINITY || mine.rlim_max >= 1024 + 2 * 16 + 128)
        assert_true(got.rlim_cur >= 1024 + 2 * 16 + 128);
    else
        assert_true(log_count(&d, "below the") == 1); /* it could not: it says so */
    int nfd = count_fds(d.pid);
    assert_true(nfd > 0);
    struct rlimit low, old;
    assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, NULL, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)nfd + 16;
    assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, &low, NULL), 0);

    enum { N = 60 };
    int fds[N], answered = 0, closed = 0, other = 0;
    uint64_t cpu0 = cpu_ms(d.pid), t0 = dmce_now_ms();
    for (int i = 0; i < N; i++) {
        fds[i] = sock_connect(d.sock, 3000);
        assert_true(fds[i] >= 0);
        (void)raw_send(fds[i], DMCE_MSMP_OP_STATS, 1, NULL, 0);
    }
    for (int i = 0; i < N; i++) {
        uint8_t buf[4096];
        int32_t st = -1;
        int r = raw_recv(fds[i], &st, NULL, NULL, buf, sizeof(buf));
        if (r >= 0 && st == 0)
            answered++;
        else if (r == -ECONNRESET)
            closed++;
        else
            other++; /* a timeout: left in the backlog */
    }
    uint64_t wall = dmce_now_ms() - t0, cpu = cpu_ms(d.pid) - cpu0;
    int logged = log_count(&d, "out of file descriptors");
    print_message("fd limit %llu: %d connections served, %d closed at once, %d left hanging; "
                  "daemon CPU %llu ms in %llu ms; %d log lines\n",
                  (unsigned long long)low.rlim_cur, answered, closed, other,
                  (unsigned long long)cpu, (unsigned long long)wall, logged);
    assert_true(answered >= 5);
    assert_true(closed >= N / 2);
    assert_int_equal(other, 0);
    assert_true(logged >= 1 && logged <= 5);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    /* Descriptors back: served again. */
    assert_int_equal(prlimit(d.pid, RLIMIT_NOFILE, &old, NULL), 0);
    assert_true(harness_wait(serves, d.sock, 5000));
    int more[N];
    for (int i = 0; i < N; i++) {
        more[i] = sock_connect(d.sock, 3000);
        assert_true(more[i] >= 0);
        assert_int_equal(fd_stats(more[i], NULL), 0);
    }
    for (int i = 0; i < N; i++)
        close(more[i]);
    assert_int_equal(own_stop(&d), 0);
    own_cleanup(&d);
}

/* ---- 2b. memory full -------------------------------------------------------------- */

static int files_in(const char *dir)
{
    DIR *dd = opendir(dir);
    if (!dd)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dd)))
        if (e->d_name[0] != '.')
            n++;
    closedir(dd);
    return n;
}

/*
 * The shm filesystem fills up (a private 3 MiB tmpfs as shm_dir, 1 MiB
 * blocks, max_blocks 8): the block that does not fit is not made, the
 * malloc that needed it gets DMCE_ENOMEM, nothing already written is lost,
 * the daemon logs it and keeps serving, and memory freed is used again.
 */
static void test_shm_full(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("not root: cannot mount a tmpfs\n");
        skip();
    }
    snprintf(tmpfs_dir, sizeof(tmpfs_dir), "/tmp/dmce-h3-tmpfs.XXXXXX");
    assert_non_null(mkdtemp(tmpfs_dir));
    if (mount("dmce-h3", tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=3m,mode=0700") < 0) {
        print_message("cannot mount a tmpfs: %s\n", strerror(errno));
        rmdir(tmpfs_dir);
        tmpfs_dir[0] = 0;
        skip();
    }
    static struct own d; /* static: the exit handler may see it after a failed assert */
    char shm_dir[96];
    snprintf(shm_dir, sizeof(shm_dir), "--shm-dir=%s", tmpfs_dir);
    assert_int_equal(own_start(&d, H.cluster, 7, "--block-size=1M", "--max-blocks=8", shm_dir,
                               NULL), 0);
    const char *paths[1] = {d.sock};
    dmce_connect_opts_t o = {.sockets = paths, .nsockets = 1, .io_timeout_ms = 5000,
                             .flags = DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    assert_int_equal(dmce_connect(&o, &c), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    enum { MAXA = 16, SZ = 768 << 10 }; /* one per 1 MiB block */
    dmce_addr_t a[MAXA];
    static uint8_t buf[SZ], back[SZ];
    int n = 0, r = 0;
    while (n < MAXA) {
        r = dmce_malloc(c, SZ, &a[n]);
        if (r < 0)
            break;
        memset(buf, n + 1, SZ);
        assert_int_equal(dmce_write(c, a[n], buf, SZ), 0); /* no SIGBUS: blocks are fallocated */
        n++;
    }
    print_message("3 MiB tmpfs: %d blocks made, then malloc: %s; %d files in it\n", n,
                  dmce_err_name(r), files_in(tmpfs_dir));
    assert_int_equal(r, DMCE_ENOMEM);
    assert_true(n >= 1 && n < 8);
    struct log_probe lp = {&d, "tmpfs full?"};
    assert_true(harness_wait(log_has, &lp, 5000));
    for (int i = 0; i < n; i++) {
        memset(buf, i + 1, SZ);
        assert_int_equal(dmce_read(c, a[i], back, SZ), 0);
        assert_memory_equal(back, buf, SZ);
    }
    dmce_stats_t st;
    assert_int_equal(harness_sock_stats(d.sock, &st), 0);
    assert_int_equal(st.blocks, (uint64_t)n);
    /* Freed memory is used again; the full filesystem is still refused. */
    assert_int_equal(dmce_free(c, a[0]), 0);
    assert_int_equal(dmce_malloc(c, SZ, &a[0]), 0);
    assert_int_equal(dmce_malloc(c, SZ, &a[n]), DMCE_ENOMEM);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(own_stop(&d), 0);
    assert_int_equal(files_in(tmpfs_dir), 0); /* stop removes its block files */
    own_cleanup(&d);
    assert_int_equal(umount2(tmpfs_dir, 0), 0);
    rmdir(tmpfs_dir);
    tmpfs_dir[0] = 0;
}

/* ---- 3. crash and restart ---------------------------------------------------------- */

#define CRASH_ITERS 100

/* Shared with the client child (MAP_SHARED). */
struct crash_shared {
    atomic_int ready;          /* connected and set up */
    atomic_uint_fast64_t ops;  /* malloc+write+read+free cycles done */
    atomic_int err;            /* the error that ended the loop */
    atomic_int stage;          /* 1 connect, 2 setup, 3 an operation */
    atomic_uint_fast64_t err_ms;
    atomic_uint_fast64_t slowest_ms; /* the longest single call */
    atomic_uint_fast64_t disconnect_ms;
};

static int daemon_gone(int r)
{
    return r == DMCE_ECLOSED || r == DMCE_ENODAEMON || r == -ECONNREFUSED || r == -ECONNRESET ||
           r == -EPIPE || r == -ENOENT;
}

#define CALL(expr)                                                                            \
    do {                                                                                      \
        uint64_t c0_ = dmce_now_ms();                                                         \
        r = (expr);                                                                           \
        uint64_t d_ = dmce_now_ms() - c0_;                                                    \
        if (d_ > atomic_load(&sh->slowest_ms))                                                \
            atomic_store(&sh->slowest_ms, d_);                                                \
    } while (0)

/*
 * The client: connect, set up, then malloc, write, read, free until a call
 * fails. Exit 0: the failure says the daemon is gone; 3: another error;
 * 4: no failure within 10 s; 5: data read back differs. A real application
 * need not ignore SIGPIPE: neither does this one.
 */
static void crash_child(struct crash_shared *sh, unsigned flags)
{
    signal(SIGPIPE, SIG_DFL);
    int one = 1, r;
    dmce_connect_opts_t o = {.io_timeout_ms = 3000, .flags = flags | DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c = NULL;
    atomic_store(&sh->stage, 1);
    CALL(harness_client_opts(&c, &one, 1, &o));
    if (r == 0) {
        atomic_store(&sh->stage, 2);
        CALL(dmce_setup(c, 64 << 10, 0, NULL, NULL));
    }
    if (r == 0) {
        atomic_store(&sh->ready, 1);
        atomic_store(&sh->stage, 3);
    }
    uint64_t deadline = dmce_now_ms() + 10000;
    uint8_t buf[256], back[256];
    for (uint64_t i = 0; r == 0; i++) {
        dmce_addr_t a;
        memset(buf, (uint8_t)(i * 7 + 1), sizeof(buf));
        CALL(dmce_malloc(c, sizeof(buf), &a));
        if (r == 0)
            CALL(dmce_write(c, a, buf, sizeof(buf)));
        if (r == 0)
            CALL(dmce_read(c, a, back, sizeof(back)));
        if (r == 0 && memcmp(buf, back, sizeof(buf)) != 0)
            _exit(5);
        if (r == 0)
            CALL(dmce_free(c, a));
        if (r == 0)
            atomic_store(&sh->ops, i + 1);
        if (dmce_now_ms() > deadline)
            _exit(4);
    }
    atomic_store(&sh->err_ms, dmce_now_ms());
    atomic_store(&sh->err, r);
    if (c) {
        uint64_t t = dmce_now_ms();
        dmce_disconnect(c); /* must return too */
        atomic_store(&sh->disconnect_ms, dmce_now_ms() - t);
    }
    _exit(daemon_gone(r) ? 0 : 3);
}

struct child_probe {
    pid_t pid;
    int status;
    struct crash_shared *sh;
    uint64_t want_ops;
};

static int child_exited(void *arg)
{
    struct child_probe *p = arg;
    if (p->pid <= 0)
        return 1;
    if (waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
        p->pid = 0;
        return 1;
    }
    return 0;
}

static int child_reached(void *arg)
{
    struct child_probe *p = arg;
    return (atomic_load(&p->sh->ready) && atomic_load(&p->sh->ops) >= p->want_ops) ||
           atomic_load(&p->sh->err) || child_exited(p);
}

static void test_crash_restart_loop(void **state)
{
    (void)state;
    /* Another cluster (same user, same daemon ID, another runtime dir) must not be touched. */
    static struct own other; /* static: see own_cleanup_all */
    char other_cluster[96];
    snprintf(other_cluster, sizeof(other_cluster), "%sx", H.cluster);
    assert_int_equal(own_start(&other, other_cluster, 1, "--block-size=1M", "--blocks-initial=2",
                               "--max-blocks=4", NULL), 0);
    assert_int_equal(shm_scan(other_cluster, -1, 0, NULL, NULL, 0), 2);

    struct crash_shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    static const unsigned modes[3] = {0, DMCE_CONNECT_NO_MAP,
                                      DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING};
    static const char *const mode_names[3] = {"mapped", "rings", "socket"};
    int by_err[8] = {0}; /* 0 ECLOSED, 1 ENODAEMON, 2 ECONNREFUSED, 3 ENOENT, 4 other */
    int by_stage[4] = {0};
    uint64_t slowest = 0, worst_notice = 0, worst_disc = 0, ops_total = 0;
    uint64_t t_start = dmce_now_ms();
    for (int i = 0; i < CRASH_ITERS; i++) {
        assert_int_equal(harness_start(1, "--block-size=1M", "--blocks-initial=2",
                                       "--max-blocks=4", "--dispatcher=none",
                                       "--log-level=error", NULL), 0);
        /* The dead predecessor's objects are gone: only the new daemon's two. */
        assert_int_equal(harness_shm_count(), 2);

        memset(sh, 0, sizeof(*sh));
        unsigned mode = (unsigned)i % 3;
        /* Kill after 0..40 cycles; every 10th time before the client is even set up. */
        struct child_probe cp = {.sh = sh, .want_ops = (uint64_t)(i * 7) % 41};
        cp.pid = harness_fork();
        assert_true(cp.pid >= 0);
        if (cp.pid == 0)
            crash_child(sh, modes[mode]);
        if (i % 10 != 9)
            assert_true(harness_wait(child_reached, &cp, 5000));
        harness_kill(1); /* SIGKILL, reaped */
        uint64_t kill_ms = dmce_now_ms();
        int exited = harness_wait(child_exited, &cp, 10000);
        if (!exited) {
            kill(cp.pid, SIGKILL);
            waitpid(cp.pid, NULL, 0);
        }
        int err = atomic_load(&sh->err);
        if (!exited || !WIFEXITED(cp.status) || WEXITSTATUS(cp.status) != 0)
            print_error("iteration %d (%s, after %llu cycles): client %s %d, error %s at stage %d\n",
                        i, mode_names[mode], (unsigned long long)atomic_load(&sh->ops),
                        !exited ? "hung" : WIFSIGNALED(cp.status) ? "killed by signal" : "exit",
                        !exited ? 0 : WIFSIGNALED(cp.status) ? WTERMSIG(cp.status)
                                                             : WEXITSTATUS(cp.status),
                        dmce_err_name(err), atomic_load(&sh->stage));
        assert_true(exited);
        assert_true(WIFEXITED(cp.status));
        assert_int_equal(WEXITSTATUS(cp.status), 0);
        by_err[err == DMCE_ECLOSED ? 0 : err == DMCE_ENODAEMON ? 1 : err == -ECONNREFUSED ? 2
               : err == -ENOENT ? 3 : 4]++;
        by_stage[atomic_load(&sh->stage)]++;
        ops_total += atomic_load(&sh->ops);
        uint64_t e = atomic_load(&sh->err_ms);
        if (e > kill_ms && e - kill_ms > worst_notice)
            worst_notice = e - kill_ms;
        slowest = DMCE_MAX(slowest, (uint64_t)atomic_load(&sh->slowest_ms));
        worst_disc = DMCE_MAX(worst_disc, (uint64_t)atomic_load(&sh->disconnect_ms));

        /* SIGKILL leaves the objects and the socket behind... */
        assert_int_equal(harness_shm_count(), 2);
        assert_int_equal(access(harness_sock(1), F_OK), 0);
        /* ...and the other cluster is untouched. */
        assert_int_equal(shm_scan(other_cluster, -1, 0, NULL, NULL, 0), 2);
        assert_int_equal(waitpid(other.pid, NULL, WNOHANG), 0);
    }
    /* The last restart cleans up too; a stop leaves nothing. */
    assert_int_equal(harness_start(1, "--block-size=1M", "--blocks-initial=2", "--max-blocks=4",
                                   "--dispatcher=none", NULL), 0);
    assert_int_equal(harness_shm_count(), 2);
    assert_int_equal(harness_stop(1), 0);
    assert_int_equal(harness_shm_count(), 0);
    uint64_t elapsed = dmce_now_ms() - t_start;
    print_message("crash loop: %d kill -9 in %llu ms, %llu client cycles in all; the client saw "
                  "ECLOSED %d, ENODAEMON %d, ECONNREFUSED %d, ENOENT %d, other %d (at connect %d, "
                  "setup %d, an operation %d); slowest call %llu ms, error at most %llu ms "
                  "after the kill, disconnect at most %llu ms\n",
                  CRASH_ITERS, (unsigned long long)elapsed, (unsigned long long)ops_total,
                  by_err[0], by_err[1], by_err[2], by_err[3], by_err[4], by_stage[1], by_stage[2],
                  by_stage[3], (unsigned long long)slowest, (unsigned long long)worst_notice,
                  (unsigned long long)worst_disc);
    assert_true(slowest < 5000);
    assert_true(elapsed < 40000);

    /* The other cluster's daemon still serves, and cleans up after itself. */
    assert_int_equal(harness_sock_stats(other.sock, NULL), 0);
    assert_int_equal(own_stop(&other), 0);
    assert_int_equal(shm_scan(other_cluster, -1, 0, NULL, NULL, 0), 0);
    own_cleanup(&other);
    munmap(sh, sizeof(*sh));
}

/* ---- limits: half-sent frames, bytes per session ------------------------------------------ */

struct fd_closed {
    int fd;
};

static int closed_now(void *arg)
{
    struct fd_closed *f = arg;
    char b;
    ssize_t n = recv(f->fd, &b, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/*
 * A client that leaves a request half sent is disconnected after
 * frame_timeout_ms; a client that is idle between whole requests is not.
 */
static void test_frame_timeout(void **state)
{
    (void)state;
    assert_int_equal(harness_start(7, "--block-size=2M", "--frame-timeout-ms=300", NULL), 0);
    int idle = raw_connect(7), stall = raw_connect(7);
    assert_true(idle >= 0 && stall >= 0);
    assert_int_equal(raw_setup(idle, 0), 0);
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_STATS, .req_id = 1};
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_encode(&h, hb);
    uint64_t t0 = dmce_now_ms();
    assert_int_equal(raw_send_bytes(stall, hb, 5), 0); /* 5 of 24 header bytes, then nothing */
    struct fd_closed fc = {stall};
    assert_true(harness_wait(closed_now, &fc, 5000));
    assert_true(dmce_now_ms() - t0 >= 250); /* not before its timeout */
    /* The idle one went through the same checks and still answers. */
    assert_int_equal(raw_send(idle, DMCE_MSMP_OP_STATS, 2, NULL, 0), 0);
    int32_t st = 1;
    uint16_t op = 0;
    uint64_t id = 0;
    uint8_t buf[1024];
    assert_true(raw_recv(idle, &st, &op, &id, buf, sizeof buf) > 0);
    assert_int_equal(st, 0);
    close(idle);
    close(stall);
    assert_int_equal(harness_stop(7), 0);
}

/* max_session_bytes: no session reserves or allocates more, whatever it asks. */
static void test_session_limit(void **state)
{
    (void)state;
    assert_int_equal(harness_start(8, "--block-size=4M", "--max-session-bytes=1M", NULL), 0);
    const int ids[] = {8};
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, ids, 1), 0);
    /* Asked whole, over the daemon's socket: refused for the limit; through libdmce (which
     * takes what each daemon grants): not enough memory. */
    int fd = raw_connect(8);
    assert_true(fd >= 0);
    assert_int_equal(raw_setup(fd, 2u << 20), DMCE_EQUOTA);
    close(fd);
    uint64_t granted = 0;
    assert_int_equal(dmce_setup(c, 2u << 20, 0, NULL, &granted), DMCE_ENOMEM);
    assert_int_equal(dmce_setup(c, 2u << 20, DMCE_SETUP_PARTIAL, NULL, &granted), 0);
    assert_int_equal(granted, 1u << 20);
    dmce_addr_t a, b;
    assert_int_equal(dmce_malloc(c, 768u << 10, &a), 0);
    assert_int_equal(dmce_malloc(c, 512u << 10, &b), DMCE_EQUOTA);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_malloc(c, 512u << 10, &b), 0); /* room again once freed */
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(harness_stop(8), 0);
}

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "test_hardening: watchdog: 120 s passed, giving up\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    own_cleanup_all();  /* our daemons, their objects and directories */
    harness_cleanup();  /* the harness's */
    kill(0, SIGKILL);   /* our process group: the children, and us */
    _exit(99);
}

int main(void)
{
    /* Own process group, so that the watchdog can take every child with it. */
    setpgid(0, 0);
    signal(SIGALRM, watchdog);
    alarm(120);
    const char *only = getenv("DMCE_TEST_FILTER"); /* e.g. test_crash_* */
    if (only)
        cmocka_set_test_filter(only);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_are_private),
        cmocka_unit_test(test_other_user_is_refused),
        cmocka_unit_test(test_load_and_abuse),
        cmocka_unit_test(test_out_of_descriptors),
        cmocka_unit_test(test_shm_full),
        cmocka_unit_test(test_crash_restart_loop),
        cmocka_unit_test(test_frame_timeout),
        cmocka_unit_test(test_session_limit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
