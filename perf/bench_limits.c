/*
 * bench_limits.c - dmce-bench-limits: what this machine can do at best,
 * measured by the same frame as every dmce benchmark so that each dmce
 * figure can stand beside its limit in one report (area "limits", impl
 * "limit").
 *
 *   --bench mem        memcpy, read-only pass and memset of --size bytes,
 *                      one thread (three results: memcpy, memread, memset;
 *                      one op = one pass over the buffer; GB/s = bytes per
 *                      op x ops/s). Buffers are touched before timing.
 *   --bench unix_rtt   --size bytes to an echo process over a Unix stream
 *                      socket pair and back: write, then read the echo.
 *   --bench shm_rtt    two processes ping-pong a counter through a shared
 *                      cache line, both spinning (no system call).
 *   --bench futex_rtt  the same, but each side sleeps in FUTEX_WAIT until
 *                      woken by the other's FUTEX_WAKE.
 *   --bench shm_touch  first write to each 4 KiB page of a fresh POSIX shm
 *                      object (one op = one page fault that allocates).
 *   --bench shm_map    mmap + munmap of a --window (2 MiB) window of a
 *                      populated shm object; --touch 1 also writes one
 *                      byte of the window (one fault on an existing page).
 *
 * --pin same|split puts both processes of the round trips on one CPU, or
 * on CPUs 0 and 1 (default: the scheduler decides). Results of a pinned
 * run carry the param pin; unpinned ones do not, since they are the
 * limits that dmce results name (e.g. unix_rtt[size=64]).
 *
 * Helper processes (echo, ping-pong) are children of this one: made in
 * setup, told to stop and reaped in teardown (SIGKILL after 2 s). shm
 * objects are unlinked right after they are sized, so nothing is left in
 * /dev/shm even if this process is killed.
 *
 * Exit status: 0 ok, 1 a measurement failed, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

#define PROG "dmce-bench-limits"
#define PAGE 4096u
/*
 * Spinning waits yield the CPU after this many pause instructions (tens of
 * us): a reply from another CPU comes far sooner, and when both sides share
 * one CPU (one vCPU, or a loaded machine) spinning longer only burns the
 * time slice the other side needs.
 */
#define SPIN_BEFORE_YIELD 1024u

typedef enum { PIN_NONE, PIN_SAME, PIN_SPLIT } pin_t;

typedef struct limits_opts {
    const char *bench;
    uint64_t size;
    int size_set;
    uint64_t window;
    int touch;
    pin_t pin;
} limits_opts_t;

/* ---- options ---------------------------------------------------------------- */

static int opt_bench(void *u, const char *v)
{
    ((limits_opts_t *)u)->bench = v;
    return 0;
}

static int opt_size(void *u, const char *v)
{
    limits_opts_t *o = u;
    if (dmce_bench_parse_size(v, 1, UINT64_C(64) << 30, &o->size) < 0) {
        fprintf(stderr, PROG ": --size: expected 1..64G bytes (K/M/G suffix), got '%s'\n", v);
        return -1;
    }
    o->size_set = 1;
    return 0;
}

static int opt_window(void *u, const char *v)
{
    limits_opts_t *o = u;
    if (dmce_bench_parse_size(v, PAGE, UINT64_C(1) << 30, &o->window) < 0 || o->window % PAGE) {
        fprintf(stderr, PROG ": --window: expected a multiple of 4K up to 1G, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int opt_touch(void *u, const char *v)
{
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
        fprintf(stderr, PROG ": --touch: expected 0 or 1, got '%s'\n", v);
        return -1;
    }
    ((limits_opts_t *)u)->touch = v[0] == '1';
    return 0;
}

static int opt_pin(void *u, const char *v)
{
    limits_opts_t *o = u;
    if (strcmp(v, "none") == 0) {
        o->pin = PIN_NONE;
    } else if (strcmp(v, "same") == 0) {
        o->pin = PIN_SAME;
    } else if (strcmp(v, "split") == 0) {
        o->pin = PIN_SPLIT;
    } else {
        fprintf(stderr, PROG ": --pin: expected none, same or split, got '%s'\n", v);
        return -1;
    }
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static const char *pin_name(pin_t p)
{
    return p == PIN_SAME ? "same" : p == PIN_SPLIT ? "split" : "none";
}

/* Pin the calling process: role 0 is the measuring side, 1 the helper. */
static int pin_self(pin_t pin, int role)
{
    if (pin == PIN_NONE)
        return 0;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pin == PIN_SPLIT ? role : 0, &set);
    return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/*
 * In a freshly forked helper: die with the measuring process (if that one
 * is killed by the harness's timeout, no spinner is left behind).
 */
static void helper_init(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* it died before prctl */
        _exit(1);
}

/* Reap a helper: it should exit by itself; SIGKILL after 2 s. */
static void reap(pid_t pid)
{
    if (pid <= 0)
        return;
    for (int i = 0; i < 2000; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, PROG ": helper %ld did not stop within 2 s; killing it\n", (long)pid);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void *map_anon(size_t len, int shared)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* A fresh, already unlinked shm object of len bytes: fd or -errno. */
static int shm_fresh(size_t len)
{
    static unsigned seq;
    char name[64];
    snprintf(name, sizeof(name), "/dmce-perf-limits.%u.%ld.%u", (unsigned)getuid(), (long)getpid(),
             seq++);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    shm_unlink(name); /* the fd and mappings keep it alive; nothing left behind */
    if (ftruncate(fd, (off_t)len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* ---- mem: memcpy / memread / memset ------------------------------------------- */

typedef struct mem_ctx {
    unsigned char *src, *dst; /* owner: run_mem */
    size_t size;
    volatile uint64_t sink;
} mem_ctx_t;

static int op_memcpy(void *p, uint64_t i)
{
    mem_ctx_t *x = p;
    memcpy(x->dst, x->src, x->size);
    (void)i;
    return 0;
}

static int op_memread(void *p, uint64_t i)
{
    mem_ctx_t *x = p;
    const uint64_t *s = (const uint64_t *)x->src;
    size_t n = x->size / sizeof(uint64_t);
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (size_t k = 0; k + 4 <= n; k += 4) {
        a0 += s[k];
        a1 += s[k + 1];
        a2 += s[k + 2];
        a3 += s[k + 3];
    }
    x->sink += a0 + a1 + a2 + a3 + i;
    return 0;
}

static int op_memset(void *p, uint64_t i)
{
    mem_ctx_t *x = p;
    memset(x->dst, (int)(i & 0xff), x->size);
    return 0;
}

static int run_mem(const limits_opts_t *lo, const dmce_bench_opts_t *o)
{
    mem_ctx_t x = {.size = lo->size};
    if (x.size % 64) {
        fprintf(stderr, PROG ": --bench mem: --size must be a multiple of 64\n");
        return 2;
    }
    x.src = map_anon(x.size, 0);
    x.dst = map_anon(x.size, 0);
    if (!x.src || !x.dst) {
        fprintf(stderr, PROG ": cannot map 2 x %llu bytes\n", (unsigned long long)x.size);
        if (x.src)
            munmap(x.src, x.size);
        if (x.dst)
            munmap(x.dst, x.size);
        return 1;
    }
    /* Touch every page now so that no op pays for first faults. */
    memset(x.src, 0x5a, x.size);
    memset(x.dst, 0xa5, x.size);
    static const struct {
        const char *bench;
        int (*op)(void *, uint64_t);
        const char *note;
    } kinds[] = {
        {"memcpy", op_memcpy, "memcpy of the whole buffer, one thread"},
        {"memread", op_memread, "read every 64-bit word (sum), one thread"},
        {"memset", op_memset, "memset of the whole buffer, one thread"},
    };
    int ret = 0;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        dmce_bench_case_t c;
        if (dmce_bench_case_init(&c, "limits", kinds[k].bench, "limit") < 0 ||
            dmce_perf_param_num(&c.res, "size", (double)x.size) < 0) {
            ret = 2;
            break;
        }
        c.res.bytes_per_op = (double)x.size;
        snprintf(c.res.note, sizeof(c.res.note), "%s", kinds[k].note);
        c.ctx = &x;
        c.op = kinds[k].op;
        if (dmce_bench_run(&c, o) < 0)
            ret = 1;
    }
    munmap(x.src, x.size);
    munmap(x.dst, x.size);
    return ret;
}

/* ---- unix_rtt ---------------------------------------------------------------------- */

typedef struct rtt_ctx {
    pin_t pin;
    size_t size;
    int fd;      /* our end of the socket pair; owner: setup/teardown */
    pid_t child; /* the echo process */
    unsigned char *buf;
    /* shm_rtt / futex_rtt */
    struct pingpong *pp; /* shared mapping; owner: setup/teardown */
    uint32_t seq;
} rtt_ctx_t;

static int io_full(int fd, void *buf, size_t len, int writing)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -ECONNRESET;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void echo_main(int fd, size_t size, pin_t pin)
{
    unsigned char *buf = malloc(size);
    if (!buf || pin_self(pin, 1) < 0)
        _exit(1);
    while (io_full(fd, buf, size, 0) == 0)
        if (io_full(fd, buf, size, 1) < 0)
            break;
    _exit(0); /* EOF: the measuring side closed its end */
}

static int unix_setup(void *p, unsigned client)
{
    rtt_ctx_t *x = p;
    int sv[2];
    (void)client;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    x->buf = malloc(x->size);
    if (!x->buf) {
        close(sv[0]);
        close(sv[1]);
        return -ENOMEM;
    }
    memset(x->buf, 0x42, x->size);
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        free(x->buf);
        x->buf = NULL;
        return -e;
    }
    if (pid == 0) {
        helper_init(parent);
        close(sv[0]);
        echo_main(sv[1], x->size, x->pin);
    }
    close(sv[1]);
    x->fd = sv[0];
    x->child = pid;
    return pin_self(x->pin, 0);
}

static int unix_op(void *p, uint64_t i)
{
    rtt_ctx_t *x = p;
    (void)i;
    int rc = io_full(x->fd, x->buf, x->size, 1);
    return rc < 0 ? rc : io_full(x->fd, x->buf, x->size, 0);
}

static void unix_teardown(void *p, unsigned client)
{
    rtt_ctx_t *x = p;
    (void)client;
    if (x->fd >= 0)
        close(x->fd); /* the echo process reads EOF and exits */
    x->fd = -1;
    reap(x->child);
    x->child = 0;
    free(x->buf);
    x->buf = NULL;
}

/* ---- shm_rtt and futex_rtt -------------------------------------------------------------- */

struct pingpong {
    _Alignas(64) atomic_uint ping; /* written by the measuring side */
    _Alignas(64) atomic_uint pong; /* written by the helper */
    _Alignas(64) atomic_int quit;
};

static long futex(atomic_uint *addr, int op, unsigned val)
{
    /* Not FUTEX_PRIVATE: the word is in a mapping shared by two processes. */
    struct timespec ts = {1, 0}; /* bounded sleep: re-check, never hang */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, op == FUTEX_WAIT ? &ts : NULL, NULL, 0);
}

static void spin_helper(struct pingpong *pp)
{
    unsigned last = 0;
    for (;;) {
        unsigned v;
        unsigned n = 0;
        while ((v = atomic_load_explicit(&pp->ping, memory_order_acquire)) == last) {
            if (atomic_load_explicit(&pp->quit, memory_order_relaxed))
                _exit(0);
            cpu_relax();
            if (++n >= SPIN_BEFORE_YIELD) { /* sharing a CPU: let the other side run */
                sched_yield();
                n = 0;
            }
        }
        last = v;
        atomic_store_explicit(&pp->pong, v, memory_order_release);
    }
}

static void futex_helper(struct pingpong *pp)
{
    unsigned last = 0;
    for (;;) {
        unsigned v;
        while ((v = atomic_load(&pp->ping)) == last) {
            if (atomic_load(&pp->quit))
                _exit(0);
            futex(&pp->ping, FUTEX_WAIT, last);
        }
        last = v;
        atomic_store(&pp->pong, v);
        futex(&pp->pong, FUTEX_WAKE, 1);
    }
}

static int pp_setup(rtt_ctx_t *x, void (*helper)(struct pingpong *))
{
    x->pp = map_anon(sizeof(struct pingpong), 1);
    if (!x->pp)
        return -ENOMEM;
    fflush(NULL);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        int e = errno;
        munmap(x->pp, sizeof(struct pingpong));
        x->pp = NULL;
        return -e;
    }
    if (pid == 0) {
        helper_init(parent);
        if (pin_self(x->pin, 1) < 0)
            _exit(1);
        helper(x->pp);
    }
    x->child = pid;
    return pin_self(x->pin, 0);
}

static int shm_setup(void *p, unsigned client)
{
    (void)client;
    return pp_setup(p, spin_helper);
}

static int futex_setup(void *p, unsigned client)
{
    (void)client;
    return pp_setup(p, futex_helper);
}

static int shm_op(void *p, uint64_t i)
{
    rtt_ctx_t *x = p;
    unsigned seq = ++x->seq, n = 0;
    (void)i;
    atomic_store_explicit(&x->pp->ping, seq, memory_order_release);
    while (atomic_load_explicit(&x->pp->pong, memory_order_acquire) != seq) {
        cpu_relax();
        if (++n >= SPIN_BEFORE_YIELD) {
            sched_yield();
            n = 0;
        }
    }
    return 0;
}

static int futex_op(void *p, uint64_t i)
{
    rtt_ctx_t *x = p;
    unsigned seq = ++x->seq, v;
    (void)i;
    atomic_store(&x->pp->ping, seq);
    futex(&x->pp->ping, FUTEX_WAKE, 1);
    while ((v = atomic_load(&x->pp->pong)) != seq)
        futex(&x->pp->pong, FUTEX_WAIT, v);
    return 0;
}

static void pp_teardown(void *p, unsigned client)
{
    rtt_ctx_t *x = p;
    (void)client;
    if (!x->pp)
        return;
    atomic_store(&x->pp->quit, 1);
    atomic_store(&x->pp->ping, ++x->seq); /* wake a sleeping helper */
    futex(&x->pp->ping, FUTEX_WAKE, 1);
    reap(x->child);
    x->child = 0;
    munmap(x->pp, sizeof(struct pingpong));
    x->pp = NULL;
}

static int run_rtt(const limits_opts_t *lo, const dmce_bench_opts_t *o)
{
    rtt_ctx_t x = {.pin = lo->pin, .size = lo->size_set ? lo->size : 64, .fd = -1};
    dmce_bench_case_t c;
    const char *b = lo->bench;
    if (dmce_bench_case_init(&c, "limits", b, "limit") < 0)
        return 2;
    if (lo->pin == PIN_SPLIT && sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        fprintf(stderr, PROG ": --pin split needs 2 CPUs\n");
        return 2;
    }
    if (strcmp(b, "unix_rtt") == 0) {
        dmce_perf_param_num(&c.res, "size", (double)x.size);
        c.setup = unix_setup;
        c.op = unix_op;
        c.teardown = unix_teardown;
        snprintf(c.res.note, sizeof(c.res.note), "write + read back through an echo process");
    } else if (strcmp(b, "shm_rtt") == 0) {
        c.setup = shm_setup;
        c.op = shm_op;
        c.teardown = pp_teardown;
        snprintf(c.res.note, sizeof(c.res.note), "ping-pong on a shared cache line, spinning");
    } else {
        c.setup = futex_setup;
        c.op = futex_op;
        c.teardown = pp_teardown;
        snprintf(c.res.note, sizeof(c.res.note), "ping-pong with FUTEX_WAIT / FUTEX_WAKE");
    }
    if (lo->pin != PIN_NONE)
        dmce_perf_param_str(&c.res, "pin", pin_name(lo->pin));
    c.ctx = &x;
    return dmce_bench_run(&c, o) < 0 ? 1 : 0;
}

/* ---- shm_touch ------------------------------------------------------------------------------ */

typedef struct touch_ctx {
    unsigned char *base; /* mapping of the current fresh object; owner: rep_begin/teardown */
    size_t len;
} touch_ctx_t;

#define TOUCH_MAX_BYTES (UINT64_C(4) << 30)

static void touch_release(touch_ctx_t *x)
{
    if (x->base)
        munmap(x->base, x->len);
    x->base = NULL;
    x->len = 0;
}

static int touch_rep_begin(void *p, unsigned rep, uint64_t max_ops)
{
    touch_ctx_t *x = p;
    (void)rep;
    touch_release(x);
    uint64_t len = (max_ops ? max_ops : 1) * PAGE;
    if (len > TOUCH_MAX_BYTES)
        return -E2BIG;
    int fd = shm_fresh((size_t)len);
    if (fd < 0)
        return fd;
    void *m = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED)
        return -e;
    x->base = m;
    x->len = (size_t)len;
    return 0;
}

static int touch_op(void *p, uint64_t i)
{
    touch_ctx_t *x = p;
    if ((i + 1) * PAGE > x->len)
        return -ERANGE;
    ((volatile unsigned char *)x->base)[i * PAGE] = 1;
    return 0;
}

static void touch_teardown(void *p, unsigned client)
{
    (void)client;
    touch_release(p);
}

static int run_touch(const dmce_bench_opts_t *o)
{
    touch_ctx_t x = {0};
    dmce_bench_case_t c;
    if (dmce_bench_case_init(&c, "limits", "shm_touch", "limit") < 0 ||
        dmce_perf_param_num(&c.res, "page", PAGE) < 0)
        return 2;
    if (o->ops * PAGE > TOUCH_MAX_BYTES || o->warmup * PAGE > TOUCH_MAX_BYTES) {
        fprintf(stderr, PROG ": shm_touch: --ops and --warmup at most %llu (4 GiB of pages)\n",
                (unsigned long long)(TOUCH_MAX_BYTES / PAGE));
        return 2;
    }
    snprintf(c.res.note, sizeof(c.res.note), "first write to a page of a fresh shm object");
    c.ctx = &x;
    c.rep_begin = touch_rep_begin;
    c.op = touch_op;
    c.teardown = touch_teardown;
    return dmce_bench_run(&c, o) < 0 ? 1 : 0;
}

/* ---- shm_map ----------------------------------------------------------------------------------
 */

typedef struct map_ctx {
    int fd; /* populated shm object; owner: setup/teardown */
    size_t size, window;
    int touch;
} map_ctx_t;

static int map_setup(void *p, unsigned client)
{
    map_ctx_t *x = p;
    (void)client;
    int fd = shm_fresh(x->size);
    if (fd < 0)
        return fd;
    /* Populate every page once: the op measures mapping, not allocation. */
    void *m = mmap(NULL, x->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    memset(m, 0x33, x->size);
    munmap(m, x->size);
    x->fd = fd;
    return 0;
}

static int map_op(void *p, uint64_t i)
{
    map_ctx_t *x = p;
    size_t nwin = x->size / x->window;
    off_t off = (off_t)((i % nwin) * x->window);
    void *m = mmap(NULL, x->window, PROT_READ | PROT_WRITE, MAP_SHARED, x->fd, off);
    if (m == MAP_FAILED)
        return -errno;
    if (x->touch)
        ((volatile unsigned char *)m)[PAGE + (i % 7)] = (unsigned char)i;
    return munmap(m, x->window) < 0 ? -errno : 0;
}

static void map_teardown(void *p, unsigned client)
{
    map_ctx_t *x = p;
    (void)client;
    if (x->fd >= 0)
        close(x->fd);
    x->fd = -1;
}

static int run_map(const limits_opts_t *lo, const dmce_bench_opts_t *o)
{
    map_ctx_t x = {.fd = -1,
                   .size = lo->size_set ? lo->size : (size_t)64 << 20,
                   .window = lo->window,
                   .touch = lo->touch};
    if (x.size < x.window || x.size % x.window) {
        fprintf(stderr, PROG ": shm_map: --size must be a multiple of --window\n");
        return 2;
    }
    dmce_bench_case_t c;
    if (dmce_bench_case_init(&c, "limits", "shm_map", "limit") < 0 ||
        dmce_perf_param_num(&c.res, "window", (double)x.window) < 0 ||
        dmce_perf_param_num(&c.res, "touch", x.touch) < 0)
        return 2;
    snprintf(c.res.note, sizeof(c.res.note), "mmap + munmap of a window of a populated shm object");
    c.ctx = &x;
    c.setup = map_setup;
    c.op = map_op;
    c.teardown = map_teardown;
    return dmce_bench_run(&c, o) < 0 ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    limits_opts_t lo = {.window = UINT64_C(2) << 20};
    static const dmce_bench_opt_t own[] = {
        {"bench", "NAME", "mem, unix_rtt, shm_rtt, futex_rtt, shm_touch or shm_map (required)",
         opt_bench},
        {"size", "BYTES", "buffer (mem), message (unix_rtt, 64) or object size (shm_map, 64M)",
         opt_size},
        {"window", "BYTES", "shm_map window (default 2M)", opt_window},
        {"touch", "0|1", "shm_map: write one byte of each window (default 0)", opt_touch},
        {"pin", "none|same|split", "round trips: both on CPU 0, or on CPUs 0 and 1", opt_pin},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "The machine's limits: memory bandwidth, Unix socket, shared-memory and futex "
                   "round trips, shm page faults and window mapping.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &lo,
        .ops = 10000,
        .warmup = 1000,
        .reps = 5,
        .duration_s = 10.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!lo.bench) {
        fprintf(stderr, PROG ": --bench is required (see --help)\n");
        return 2;
    }
    if (o.clients != 1) {
        fprintf(stderr, PROG ": limits are measured with one client\n");
        return 2;
    }
    if (strcmp(lo.bench, "mem") == 0) {
        if (!lo.size_set)
            lo.size = UINT64_C(1) << 30;
        return run_mem(&lo, &o);
    }
    if (strcmp(lo.bench, "unix_rtt") == 0 || strcmp(lo.bench, "shm_rtt") == 0 ||
        strcmp(lo.bench, "futex_rtt") == 0)
        return run_rtt(&lo, &o);
    if (strcmp(lo.bench, "shm_touch") == 0)
        return run_touch(&o);
    if (strcmp(lo.bench, "shm_map") == 0)
        return run_map(&lo, &o);
    fprintf(stderr, PROG ": --bench: unknown '%s' (see --help)\n", lo.bench);
    return 2;
}
