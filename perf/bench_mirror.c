/*
 * bench_mirror.c - dmce-bench-mirror: what mirroring costs and how fast a
 * cluster heals (issue 4; docs/dispatcher.md). It runs against a
 * dmce-dispatcher and its memory daemons in a runtime dir of their own,
 * which perf/run starts; it uses the public client API only, plus
 * SIGKILL and a restart of one daemon for the failover.
 *
 *   --bench write     area mirroring, bench write: dmce_write of --size
 *                     bytes to one allocation per client process, through
 *                     the common frame (bench.h). --access msmp connects
 *                     with DMCE_CONNECT_NO_MAP (every write a message on
 *                     the rings, mirrored or not); --access mapped as an
 *                     application does by default: unmirrored, a write is
 *                     a copy through the mapped block; mirrored, it goes
 *                     to the primary as a message all the same, so that
 *                     it is acknowledged once both copies have it.
 *   --bench store     area mirroring, bench store-set: dmce_store_set of
 *                     --size-byte values on random keys of a store filled
 *                     beforehand. --handle inproc: the mapped table; in a
 *                     mirrored cluster every changed range then goes to
 *                     the primary as one MSMP persist round trip (how many
 *                     per set is measured first and put in the note).
 *                     --handle oop: one message per set; the daemon
 *                     copies the ranges to the mirror itself.
 *   --bench failover  area failover, two parts on one cluster:
 *     bench failover  a writer thread writes --size bytes in a loop to one
 *                     allocation; --iterations times: kill -9 the daemon
 *                     holding its primary (pidfd, so the right process),
 *                     wait for the process to be gone, and take the end of
 *                     the first write that started after that: the time
 *                     from the kill to it is the failover as the client
 *                     sees it (impl dmce); the dispatcher's own figure,
 *                     death seen -> every block promoted, is impl
 *                     dispatcher. Then the daemon is started again (it
 *                     rejoins empty, with the same ID) and the next
 *                     iteration waits until every block has two copies.
 *     bench remirror  --fill bytes in 1 MiB allocations on one daemon,
 *                     written through dmce_write (so mirrored); --reps
 *                     times each, interleaved: kill -9 the daemon holding
 *                     most mirror copies (impl dmce: the primaries keep
 *                     their copies in step and another daemon takes them
 *                     over), then the one holding most primaries (impl
 *                     dmce-primary-lost: the copies are promoted and
 *                     copied to new mirrors), and time from the process's
 *                     death (seen through its pidfd; the kernel's teardown
 *                     after the kill comes first and is shown apart) until
 *                     the dispatcher counts no block with one copy and
 *                     none being copied; the bytes are the dispatcher's
 *                     remirror_bytes + remirror_bytes_adopted over that
 *                     time. One op is 1 MiB (ops/s = MiB/s),
 *                     beside memcpy of the same bytes measured here
 *                     (impl limit: both buffers touched before; impl
 *                     memcpy-fresh: into a fresh memfd mapping, paying
 *                     first touch like a new mirror object does).
 *
 * Results are named after what the dispatcher reports (dmce_cluster_stats):
 * impl "dmce" when it mirrors new blocks, "unmirrored" when it runs with
 * --mirroring=off; before measuring, the program waits (bounded) for
 * --daemons alive daemons and, when mirroring, two copies of every block,
 * and each client checks that its writes take the path the row claims.
 * With --baseline-dir (write, store) the same case also runs on that
 * unmirrored cluster, the repetitions of the two interleaved (dmce_bench_run_pair).
 *
 * Daemons this program starts again (--memd and its --memd-arg flags, plus
 * --id) are children of this process, each stderr appended to
 * LOG_DIR/memd-ID.log; their pids are appended to --pid-file, one per
 * line, and they are left running at exit: perf/run stops them with the
 * cluster (dispatcher first). A daemon killed here and not started again
 * (a failure half way) is started again on the way out, so that it removes
 * the block objects its death left. The program only kills a process
 * whose command line names --runtime-dir and dmce-memd. Every wait is
 * bounded in time.
 *
 * Exit status: 0 every result was given, 1 a measurement failed, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>
#include <dmce/store.h>

#include "bench.h"
#include "hist.h"
#include "util.h"

#define PROG "dmce-bench-mirror"
#define MAX_MEMD_ARGS 32
#define MAX_IDS 4096
#define MAX_OWN 256          /* daemons started here, over the whole run */
#define MAX_VALUE (1u << 20) /* --size of write and store */
#define KEY_MAX 24           /* "session:" + up to 10 digits, NUL */
#define FAST_BATCH 32        /* in-process store sets per latency sample */
#define FILL_CHUNK (UINT64_C(1) << 20)
#define READY_MS 30000u    /* cluster healthy again */
#define DEATH_MS 5000u     /* a killed process gone */
#define FIRST_OP_MS 15000u /* first write after a kill (libdmce waits 5 s at most) */
#define REMIRROR_MS 30000u /* every block two copies after the kill */
#define POLL_US 200u       /* dispatcher stats while timing a re-mirror */

typedef enum { BENCH_WRITE, BENCH_STORE, BENCH_FAILOVER } bench_t;

/* The failover benchmark's writer thread (owner: run_failover). */
typedef struct writer {
    dmce_client_t *c;
    dmce_addr_t addr;
    unsigned char *buf; /* the last acknowledged write's bytes */
    size_t size;
    pthread_t thread;
    atomic_int stop;
    atomic_int hot;              /* 1: back to back; 0: one write per ms */
    atomic_uint_fast64_t arm_ns; /* != 0: report the first write started after it */
    atomic_uint_fast64_t hit_ns; /* its end */
    atomic_uint_fast64_t ops;
    atomic_int err;
} writer_t;

typedef struct mir_ctx {
    /* options */
    bench_t bench;
    int bench_set;
    const char *runtime_dir;
    uint64_t size;
    int size_set;
    int mapped; /* write: --access mapped */
    int inproc; /* store: --handle inproc */
    uint32_t nkeys;
    uint64_t store_size;
    unsigned daemons;
    unsigned iterations;
    uint64_t fill;
    const char *memd;
    const char *memd_args[MAX_MEMD_ARGS];
    unsigned nmemd_args;
    const char *pid_file;
    const char *log_dir;
    const char *baseline_dir;
    /* made by main */
    dmce_client_t *observer; /* owner: main; never set up: the dispatcher's stats */
    int mirrored;            /* the dispatcher mirrors new blocks */
    char (*keys)[KEY_MAX];   /* store: owner main */
    uint32_t *klens;
    dmce_client_t *creator; /* store: owner main; holds the store's allocation */
    dmce_addr_t store_addr;
    /* per client process (write, store); owner: setup, released by teardown */
    dmce_client_t *client;
    dmce_addr_t addr;
    int allocated;
    dmce_store_t *store;
    unsigned char *buf, *back;
    uint64_t rng;
    /* daemons started here, and killed ones not started again */
    struct {
        pid_t pid;
        uint32_t id;
    } own[MAX_OWN];
    unsigned nown;
    unsigned char down[MAX_IDS];
} mir_ctx_t;

/* ---- options ------------------------------------------------------------------ */

static int set_bench(void *u, const char *v)
{
    static const char *const names[] = {"write", "store", "failover"}; /* bench_t's order */
    mir_ctx_t *x = u;
    unsigned k;
    if (dmce_bench_opt_choice(PROG, "bench", v, names, 3, &k) < 0)
        return -1;
    x->bench = (bench_t)k;
    x->bench_set = 1;
    return 0;
}

static int set_runtime_dir(void *u, const char *v)
{
    ((mir_ctx_t *)u)->runtime_dir = v;
    return 0;
}

static int set_size(void *u, const char *v)
{
    mir_ctx_t *x = u;
    if (dmce_bench_parse_size(v, 1, MAX_VALUE, &x->size) < 0) {
        fprintf(stderr, PROG ": --size: expected 1..1M bytes (K/M suffix), got '%s'\n", v);
        return -1;
    }
    x->size_set = 1;
    return 0;
}

static int set_access(void *u, const char *v)
{
    static const char *const names[] = {"msmp", "mapped"};
    unsigned k;
    if (dmce_bench_opt_choice(PROG, "access", v, names, 2, &k) < 0)
        return -1;
    ((mir_ctx_t *)u)->mapped = k == 1;
    return 0;
}

static int set_handle(void *u, const char *v)
{
    static const char *const names[] = {"inproc", "oop"};
    unsigned k;
    if (dmce_bench_opt_choice(PROG, "handle", v, names, 2, &k) < 0)
        return -1;
    ((mir_ctx_t *)u)->inproc = k == 0;
    return 0;
}

static int set_keys(void *u, const char *v)
{
    uint64_t n;
    if (dmce_bench_parse_size(v, 1, 1u << 20, &n) < 0) {
        fprintf(stderr, PROG ": --keys: expected 1..1M, got '%s'\n", v);
        return -1;
    }
    ((mir_ctx_t *)u)->nkeys = (uint32_t)n;
    return 0;
}

static int set_store_size(void *u, const char *v)
{
    if (dmce_bench_parse_size(v, DMCE_STORE_SIZE_MIN, UINT64_C(1) << 30,
                              &((mir_ctx_t *)u)->store_size) < 0) {
        fprintf(stderr, PROG ": --store-size: expected 16K..1G bytes, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_daemons(void *u, const char *v)
{
    uint64_t n;
    if (dmce_bench_parse_size(v, 2, 64, &n) < 0) {
        fprintf(stderr, PROG ": --daemons: expected 2..64, got '%s'\n", v);
        return -1;
    }
    ((mir_ctx_t *)u)->daemons = (unsigned)n;
    return 0;
}

static int set_iterations(void *u, const char *v)
{
    uint64_t n;
    if (dmce_bench_parse_size(v, 1, 1000, &n) < 0) {
        fprintf(stderr, PROG ": --iterations: expected 1..1000, got '%s'\n", v);
        return -1;
    }
    ((mir_ctx_t *)u)->iterations = (unsigned)n;
    return 0;
}

static int set_fill(void *u, const char *v)
{
    if (dmce_bench_parse_size(v, FILL_CHUNK, UINT64_C(16) << 30, &((mir_ctx_t *)u)->fill) < 0) {
        fprintf(stderr, PROG ": --fill: expected 1M..16G bytes, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_memd(void *u, const char *v)
{
    ((mir_ctx_t *)u)->memd = v;
    return 0;
}

static int set_memd_arg(void *u, const char *v)
{
    mir_ctx_t *x = u;
    if (x->nmemd_args == MAX_MEMD_ARGS) {
        fprintf(stderr, PROG ": more than %d --memd-arg\n", MAX_MEMD_ARGS);
        return -1;
    }
    x->memd_args[x->nmemd_args++] = v;
    return 0;
}

static int set_pid_file(void *u, const char *v)
{
    ((mir_ctx_t *)u)->pid_file = v;
    return 0;
}

static int set_log_dir(void *u, const char *v)
{
    ((mir_ctx_t *)u)->log_dir = v;
    return 0;
}

static int set_baseline_dir(void *u, const char *v)
{
    ((mir_ctx_t *)u)->baseline_dir = v;
    return 0;
}

static const char *mir_strerror(int err)
{
    return dmce_strerror(err);
}

/* ---- the cluster, as the dispatcher sees it ---------------------------------------- */

/* Every daemon alive and, when mirroring, two copies of every block (and at least min_blocks). */
static int healthy(const mir_ctx_t *x, const dmce_cluster_stats_t *s, uint64_t min_blocks)
{
    return dmce_bench_cluster_healthy(s, x->daemons, min_blocks);
}

/* Wait until healthy (bounded by ms); the last stats in *out (may be NULL). */
static int wait_healthy(mir_ctx_t *x, uint64_t min_blocks, unsigned ms, dmce_cluster_stats_t *out)
{
    return dmce_bench_wait_cluster(x->observer, PROG, x->runtime_dir, x->daemons, min_blocks, ms,
                                   out);
}

/* ---- daemons: kill one, start one again ----------------------------------------------- */

/* pid is a dmce-memd whose command line names our runtime dir. */
static int pid_is_ours(const mir_ctx_t *x, pid_t pid)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    buf[n] = '\0';
    return strstr(buf, "dmce-memd") && strstr(buf, x->runtime_dir);
}

static int own_index(const mir_ctx_t *x, pid_t pid)
{
    for (unsigned i = 0; i < x->nown; i++)
        if (x->own[i].pid == pid)
            return (int)i;
    return -1;
}

/*
 * SIGKILL daemon `id` (process pid) and wait until the process is gone.
 * *t_kill: just before the signal; *t_dead: when it was seen gone (ns).
 */
static int kill_memd(mir_ctx_t *x, uint32_t id, pid_t pid, uint64_t *t_kill, uint64_t *t_dead)
{
    if (id == 0 || id >= MAX_IDS || !pid_is_ours(x, pid)) {
        fprintf(stderr, PROG ": pid %d (memd[%u]) is not a dmce-memd of %s: not killing it\n",
                (int)pid, id, x->runtime_dir);
        return -ESRCH;
    }
    int r = 0, gone = 0;
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_send_signal)
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        *t_kill = dmce_now_ns();
        if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) < 0) {
            r = -errno;
            close(pfd);
            return r;
        }
        x->down[id] = 1;
        struct pollfd pf = {.fd = pfd, .events = POLLIN};
        int n = poll(&pf, 1, (int)DEATH_MS);
        *t_dead = dmce_now_ns();
        close(pfd);
        gone = n > 0;
    } else
#endif
    {
        /* No pidfd: signal by pid, then look until it is gone (reaped by its parent). */
        *t_kill = dmce_now_ns();
        if (kill(pid, SIGKILL) < 0)
            return -errno;
        x->down[id] = 1;
        uint64_t deadline = dmce_now_ms() + DEATH_MS;
        int k = own_index(x, pid);
        while (!gone && dmce_now_ms() < deadline) {
            gone = k >= 0 ? waitpid(pid, NULL, WNOHANG) == pid : kill(pid, 0) < 0 && errno == ESRCH;
            if (!gone)
                dmce_bench_sleep_us(100);
        }
        *t_dead = dmce_now_ns();
        if (gone && k >= 0)
            x->own[k].pid = 0;
    }
    if (!gone) {
        fprintf(stderr, PROG ": memd[%u] (pid %d) still there %u ms after SIGKILL\n", id, (int)pid,
                DEATH_MS);
        return -ETIMEDOUT;
    }
    int k = own_index(x, pid);
    if (k >= 0) { /* ours: reap it */
        waitpid(pid, NULL, 0);
        x->own[k].pid = 0;
    }
    return 0;
}

/* Start daemon `id` again as a child (left running at exit: see the file comment). */
static int start_memd(mir_ctx_t *x, uint32_t id)
{
    if (x->nown == MAX_OWN) {
        fprintf(stderr, PROG ": started %d daemons already\n", MAX_OWN);
        return -ENOSPC;
    }
    char idarg[32], logp[4096];
    snprintf(idarg, sizeof(idarg), "--id=%u", id);
    snprintf(logp, sizeof(logp), "%s/memd-%u.log", x->log_dir, id);
    char *argv[MAX_MEMD_ARGS + 3];
    unsigned n = 0;
    argv[n++] = (char *)x->memd;
    for (unsigned i = 0; i < x->nmemd_args; i++)
        argv[n++] = (char *)x->memd_args[i];
    argv[n++] = idarg;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        if (logfd >= 0)
            dup2(logfd, 2);
        execv(x->memd, argv);
        _exit(127);
    }
    x->own[x->nown].pid = pid;
    x->own[x->nown].id = id;
    x->nown++;
    x->down[id] = 0;
    if (x->pid_file) {
        FILE *f = fopen(x->pid_file, "a");
        if (!f || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0) {
            fprintf(stderr, PROG ": cannot record pid %d in %s\n", (int)pid, x->pid_file);
            return -EIO;
        }
    }
    return 0;
}

/*
 * Start daemon `id` again and wait until the cluster is healthy with more
 * than `blocks` blocks (the restarted daemon made its first one).
 */
static int restart_memd(mir_ctx_t *x, uint32_t id, uint64_t blocks, dmce_cluster_stats_t *s)
{
    int r = start_memd(x, id);
    if (r < 0) {
        fprintf(stderr, PROG ": starting memd[%u] again: %s\n", id, strerror(-r));
        return r;
    }
    pid_t pid = x->own[x->nown - 1].pid;
    uint64_t deadline = dmce_now_ms() + READY_MS;
    dmce_cluster_stats_t st;
    memset(&st, 0, sizeof(st));
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            x->own[x->nown - 1].pid = 0;
            x->down[id] = 1;
            fprintf(stderr, PROG ": memd[%u] exited at start (status %d); see %s/memd-%u.log\n", id,
                    status, x->log_dir, id);
            return -ECHILD;
        }
        r = dmce_cluster_stats(x->observer, &st);
        if (r == 0 && healthy(x, &st, blocks + 1))
            break;
        if (dmce_now_ms() >= deadline) {
            if (r < 0)
                fprintf(stderr, PROG ": dmce_cluster_stats: %s\n", dmce_strerror(r));
            else
                dmce_bench_print_cluster(
                    PROG, "a daemon started again, but the cluster did not heal in time", &st);
            return -ETIMEDOUT;
        }
        dmce_bench_sleep_us(1000);
    }
    if (s)
        *s = st;
    return 0;
}

/* On the way out: every daemon killed here and not started again is (its objects go). */
static void start_again_the_dead(mir_ctx_t *x)
{
    for (uint32_t id = 1; id < MAX_IDS; id++)
        if (x->down[id] && x->memd && start_memd(x, id) == 0)
            fprintf(stderr, PROG ": memd[%u] started again on the way out\n", id);
}

/* ---- write ----------------------------------------------------------------------- */

static void write_teardown(void *p, unsigned client)
{
    mir_ctx_t *x = p;
    if (x->allocated) {
        int rc = dmce_free(x->client, x->addr);
        if (rc < 0)
            fprintf(stderr, PROG ": client %u: dmce_free: %s\n", client, dmce_strerror(rc));
        x->allocated = 0;
    }
    dmce_bench_disconnect(PROG, (int)client, &x->client);
    free(x->buf);
    free(x->back);
    x->buf = x->back = NULL;
}

static int write_setup(void *p, unsigned client)
{
    mir_ctx_t *x = p;
    const char *what;
    int rc =
        dmce_bench_client(x->runtime_dir, x->mapped ? 0 : DMCE_CONNECT_NO_MAP, &x->client, &what);
    if (rc < 0)
        goto fail;
    what = "dmce_malloc";
    if ((rc = dmce_malloc(x->client, x->size, &x->addr)) < 0)
        goto fail;
    x->allocated = 1;
    x->buf = malloc(x->size);
    x->back = malloc(x->size);
    what = "out of memory";
    if (!x->buf || !x->back) {
        rc = -ENOMEM;
        goto fail;
    }
    for (uint64_t i = 0; i < x->size; i++)
        x->buf[i] = (unsigned char)(i * 131u + 7u + client);
    what = "dmce_write (sanity check)";
    if ((rc = dmce_write(x->client, x->addr, x->buf, x->size)) < 0)
        goto fail;
    memset(x->back, 0, x->size);
    what = "dmce_read (sanity check)";
    if ((rc = dmce_read(x->client, x->addr, x->back, x->size)) < 0)
        goto fail;
    if (memcmp(x->buf, x->back, x->size) != 0) {
        fprintf(stderr, PROG ": client %u: sanity check: read back differs\n", client);
        rc = -EIO;
        goto fail_quiet;
    }
    /* The row's claims: the write's path, and a mirror (or none) behind it. */
    dmce_client_stats_t cs;
    dmce_stats_t st;
    what = "dmce_daemon_stats";
    if ((rc = dmce_daemon_of(x->client, x->addr)) < 0 ||
        (rc = dmce_daemon_stats(x->client, (unsigned)rc, &st)) < 0)
        goto fail;
    what = "dmce_client_stats";
    if ((rc = dmce_client_stats(x->client, &cs)) < 0)
        goto fail;
    int via_daemon = x->mirrored || !x->mapped;
    if (via_daemon ? cs.msmp_writes == 0 : cs.local_writes == 0) {
        fprintf(stderr, PROG ": client %u: the write went %s, not %s\n", client,
                via_daemon ? "through the mapping" : "to the daemon",
                via_daemon ? "to the daemon" : "through the mapping");
        rc = -EPROTO;
        goto fail_quiet;
    }
    if (!x->mapped && st.ring_clients == 0) {
        fprintf(stderr, PROG ": client %u: the daemon has no ring client: not on the rings\n",
                client);
        rc = -EPROTO;
        goto fail_quiet;
    }
    if (x->mirrored != (st.mirrors > 0)) {
        fprintf(stderr, PROG ": client %u: memd[%u] has %llu mirrored blocks in a cluster %s\n",
                client, st.daemon_id, (unsigned long long)st.mirrors,
                x->mirrored ? "that mirrors" : "that does not mirror");
        rc = -EPROTO;
        goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": client %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    write_teardown(x, client);
    return rc;
}

static int write_op(void *p, uint64_t i)
{
    mir_ctx_t *x = p;
    x->buf[0] = (unsigned char)i; /* not the same bytes every time */
    return dmce_write(x->client, x->addr, x->buf, x->size);
}

/* The write case of cluster x. */
static int write_case(mir_ctx_t *x, const dmce_bench_opts_t *o, dmce_bench_case_t *c)
{
    if (dmce_bench_case_init(c, "mirroring", "write", x->mirrored ? "dmce" : "unmirrored") < 0 ||
        dmce_perf_param_num(&c->res, "size", (double)x->size) < 0 ||
        dmce_perf_param_num(&c->res, "clients", o->clients) < 0 ||
        dmce_perf_param_str(&c->res, "access", x->mapped ? "mapped" : "msmp") < 0)
        return -EINVAL;
    c->res.bytes_per_op = (double)x->size;
    snprintf(c->res.note, sizeof(c->res.note), "dmce_write, %s; %s",
             x->mapped ? "mapping client" : "NO_MAP client, rings",
             x->mirrored ? "primary copies to its mirror, then answers"
             : x->mapped ? "a copy through the mapped block, no message"
                         : "mirroring off (dispatcher --mirroring=off)");
    c->ctx = x;
    c->setup = write_setup;
    c->op = write_op;
    c->teardown = write_teardown;
    c->strerror = mir_strerror;
    return 0;
}

static int run_write(mir_ctx_t *x, mir_ctx_t *xb, const dmce_bench_opts_t *o)
{
    dmce_bench_case_t c, cb;
    if (write_case(x, o, &c) < 0 || (xb && write_case(xb, o, &cb) < 0))
        return -EINVAL;
    return xb ? dmce_bench_run_pair(&c, &cb, o) : dmce_bench_run(&c, o);
}

/* ---- store ----------------------------------------------------------------------- */

static void fill_value(unsigned char *v, uint64_t size, uint32_t id)
{
    for (uint64_t i = 0; i < size; i++)
        v[i] = (unsigned char)(id * 7u + i * 131u + 3u);
}

static uint32_t next_key(mir_ctx_t *x)
{
    x->rng ^= x->rng << 13;
    x->rng ^= x->rng >> 7;
    x->rng ^= x->rng << 17;
    return (uint32_t)((x->rng >> 16) % x->nkeys);
}

static int store_set(mir_ctx_t *x, dmce_store_t *s, uint32_t id, const unsigned char *v)
{
    return dmce_store_set(s, x->keys[id], x->klens[id], v, (uint32_t)x->size, DMCE_STORE_TTL_NEVER,
                          0, 0, NULL);
}

static void store_teardown(void *p, unsigned client)
{
    mir_ctx_t *x = p;
    dmce_store_close(x->store); /* NULL: no-op */
    x->store = NULL;
    dmce_bench_disconnect(PROG, (int)client, &x->client);
    free(x->buf);
    free(x->back);
    x->buf = x->back = NULL;
}

static int store_setup(void *p, unsigned client)
{
    mir_ctx_t *x = p;
    const char *what = "out of memory";
    int rc = -ENOMEM;
    x->rng = UINT64_C(0x9E3779B97F4A7C15) * (client + 1u);
    x->buf = malloc(x->size);
    x->back = malloc(x->size);
    if (!x->buf || !x->back)
        goto fail;
    if ((rc = dmce_bench_client(x->runtime_dir, x->inproc ? 0 : DMCE_CONNECT_NO_MAP, &x->client,
                                &what)) < 0)
        goto fail;
    what = "dmce_store_open";
    rc = dmce_store_open(x->client, x->store_addr,
                         x->inproc ? DMCE_STORE_IN_PROCESS : DMCE_STORE_OUT_OF_PROCESS, &x->store);
    if (rc < 0) {
        x->store = NULL;
        goto fail;
    }
    dmce_store_info_t info;
    what = "dmce_store_info";
    if ((rc = dmce_store_info(x->store, &info)) < 0)
        goto fail;
    if (info.in_process != x->inproc) {
        fprintf(stderr, PROG ": client %u: the handle is %s, not what the row claims\n", client,
                info.in_process ? "in-process" : "out-of-process");
        rc = -EPROTO;
        goto fail_quiet;
    }
    fill_value(x->buf, x->size, 0);
    what = "set (sanity check)";
    if ((rc = store_set(x, x->store, 0, x->buf)) < 0)
        goto fail;
    uint32_t vlen = 0;
    what = "get (sanity check)";
    if ((rc = dmce_store_get(x->store, x->keys[0], x->klens[0], x->back, (uint32_t)x->size, &vlen,
                             NULL)) < 0)
        goto fail;
    if (vlen != x->size || memcmp(x->buf, x->back, x->size) != 0) {
        fprintf(stderr, PROG ": client %u: sanity check: read back differs from what was set\n",
                client);
        rc = -EIO;
        goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": client %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    store_teardown(x, client);
    return rc;
}

static int store_op(void *p, uint64_t i)
{
    mir_ctx_t *x = p;
    x->buf[0] = (unsigned char)i;
    return store_set(x, x->store, next_key(x), x->buf);
}

/*
 * The store, every key set (through an in-process handle of the creator),
 * and *persists: MSMP persist round trips per in-process set, counted by
 * the daemons over 256 sets (0 when not mirroring).
 */
static int store_prepare(mir_ctx_t *x, double *persists)
{
    x->keys = calloc(x->nkeys, sizeof(*x->keys));
    x->klens = calloc(x->nkeys, sizeof(*x->klens));
    unsigned char *v = malloc(x->size);
    dmce_store_t *s = NULL;
    int rc = -ENOMEM;
    const char *what = "out of memory";
    if (!x->keys || !x->klens || !v)
        goto fail;
    for (uint32_t i = 0; i < x->nkeys; i++)
        x->klens[i] = (uint32_t)snprintf(x->keys[i], KEY_MAX, "session:%u", i);
    if ((rc = dmce_bench_client(x->runtime_dir, 0, &x->creator, &what)) < 0)
        goto fail;
    dmce_store_params_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.max_key = 32;
    sp.max_value = (uint32_t)x->size;
    what = "dmce_store_create";
    if ((rc = dmce_store_create(x->creator, x->store_size, &sp, &x->store_addr)) < 0)
        goto fail;
    what = "dmce_store_open (creator)";
    if ((rc = dmce_store_open(x->creator, x->store_addr, DMCE_STORE_IN_PROCESS, &s)) < 0)
        goto fail;
    what = "dmce_store_set (filling the store)";
    for (uint32_t i = 0; i < x->nkeys && rc == 0; i++) {
        fill_value(v, x->size, i);
        rc = store_set(x, s, i, v);
    }
    if (rc < 0)
        goto fail;
    dmce_stats_t a, b;
    what = "dmce_stats";
    if ((rc = dmce_stats(x->creator, &a)) < 0)
        goto fail;
    what = "dmce_store_set (counting persists)";
    for (uint32_t i = 0; i < 256 && rc == 0; i++) {
        fill_value(v, x->size, i % x->nkeys);
        rc = store_set(x, s, i % x->nkeys, v);
    }
    if (rc < 0)
        goto fail;
    what = "dmce_stats";
    if ((rc = dmce_stats(x->creator, &b)) < 0)
        goto fail;
    *persists = (double)(b.ops_persist - a.ops_persist) / 256.0;
    dmce_store_close(s);
    free(v);
    return 0;
fail:
    fprintf(stderr, PROG ": %s: %s\n", what, dmce_strerror(rc));
    dmce_store_close(s);
    free(v);
    return rc;
}

static void store_finish(mir_ctx_t *x)
{
    if (x->creator) {
        if (x->store_addr) {
            int rc = dmce_store_destroy(x->creator, x->store_addr);
            if (rc < 0)
                fprintf(stderr, PROG ": dmce_store_destroy: %s\n", dmce_strerror(rc));
        }
        dmce_bench_disconnect(PROG, -1, &x->creator);
    }
    free(x->keys);
    free(x->klens);
    x->keys = NULL;
    x->klens = NULL;
}

/* The store, filled, and the set case of cluster x (store_finish releases it). */
static int store_case(mir_ctx_t *x, const dmce_bench_opts_t *o, dmce_bench_case_t *c)
{
    /* Every key's record (64-byte header, key, value) twice over (bench_store.c). */
    uint64_t need = (uint64_t)x->nkeys * (64 + 32 + ((x->size + 15) & ~UINT64_C(15))) * 2;
    if (need > x->store_size) {
        fprintf(stderr, PROG ": %u keys of %llu bytes need a store of %llu bytes (--store-size)\n",
                x->nkeys, (unsigned long long)x->size, (unsigned long long)need);
        return -EINVAL;
    }
    double persists = 0;
    int rc = store_prepare(x, &persists);
    if (rc < 0)
        return rc;
    if (dmce_bench_case_init(c, "mirroring", "store-set", x->mirrored ? "dmce" : "unmirrored") <
            0 ||
        dmce_perf_param_num(&c->res, "size", (double)x->size) < 0 ||
        dmce_perf_param_num(&c->res, "clients", o->clients) < 0 ||
        dmce_perf_param_str(&c->res, "handle", x->inproc ? "inproc" : "oop") < 0)
        return -EINVAL;
    c->res.bytes_per_op = (double)x->size;
    c->batch = x->inproc ? FAST_BATCH : 1;
    if (x->inproc)
        snprintf(c->res.note, sizeof(c->res.note),
                 "set of random keys of %u, mapped table; %.2f persist round trips per set; "
                 "latency: mean of %d",
                 x->nkeys, persists, FAST_BATCH);
    else
        snprintf(c->res.note, sizeof(c->res.note),
                 "set of random keys of %u, one MSMP message each (rings)%s", x->nkeys,
                 x->mirrored ? "; the daemon copies to the mirror" : "");
    c->ctx = x;
    c->setup = store_setup;
    c->op = store_op;
    c->teardown = store_teardown;
    c->strerror = mir_strerror;
    return 0;
}

static int run_store(mir_ctx_t *x, mir_ctx_t *xb, const dmce_bench_opts_t *o)
{
    dmce_bench_case_t c, cb;
    int rc = store_case(x, o, &c);
    if (rc == 0 && xb)
        rc = store_case(xb, o, &cb);
    if (rc == 0)
        rc = xb ? dmce_bench_run_pair(&c, &cb, o) : dmce_bench_run(&c, o);
    store_finish(x);
    if (xb)
        store_finish(xb);
    return rc;
}

/* ---- failover ---------------------------------------------------------------------- */

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    uint32_t seq = 0;
    while (!atomic_load(&w->stop)) {
        uint32_t next = seq + 1;
        memcpy(w->buf, &next, sizeof(next));
        uint64_t t0 = dmce_now_ns();
        int r = dmce_write(w->c, w->addr, w->buf, w->size);
        uint64_t t1 = dmce_now_ns();
        if (r < 0) {
            memcpy(w->buf, &seq, sizeof(seq)); /* the last acknowledged bytes again */
            atomic_store(&w->err, r);
            break;
        }
        seq = next;
        atomic_fetch_add(&w->ops, 1);
        uint64_t arm = atomic_load(&w->arm_ns);
        if (arm && t0 > arm && atomic_load(&w->hit_ns) == 0)
            atomic_store(&w->hit_ns, t1);
        if (!atomic_load(&w->hot))
            dmce_bench_sleep_us(1000);
    }
    return NULL;
}

/* Daemon index, id and pid holding addr's primary, as c knows it. */
static int primary_of(dmce_client_t *c, dmce_addr_t addr, dmce_stats_t *st)
{
    int k = dmce_daemon_of(c, addr);
    if (k < 0)
        return k;
    int r = dmce_daemon_stats(c, (unsigned)k, st);
    return r < 0 ? r : k;
}

static double ms_of(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* The failover iterations: results failover/dmce and failover/dispatcher. */
static int failover_iterations(mir_ctx_t *x, const dmce_bench_opts_t *o, writer_t *w)
{
    dmce_hist_t *client = malloc(sizeof(*client)), *disp = malloc(sizeof(*disp));
    int rc = -ENOMEM;
    uint64_t worst_heal = 0;
    if (!client || !disp)
        goto out;
    dmce_hist_init(client);
    dmce_hist_init(disp);
    fprintf(o->human,
            "failover: %u x kill -9 of the writer's primary (%llu-byte writes), %u daemons\n",
            x->iterations, (unsigned long long)x->size, x->daemons);
    fprintf(o->human, "%4s %8s %8s %12s %14s %12s\n", "it", "memd", "pid", "client ms",
            "dispatcher ms", "healed ms");
    for (unsigned it = 0; it < x->iterations; it++) {
        dmce_cluster_stats_t before, after;
        if ((rc = wait_healthy(x, 0, READY_MS, &before)) < 0)
            goto out;
        dmce_stats_t st;
        int k = primary_of(w->c, w->addr, &st);
        if (k < 0) {
            rc = k;
            fprintf(stderr, PROG ": iteration %u: the writer's primary: %s\n", it,
                    dmce_strerror(rc));
            goto out;
        }
        /* Writes back to back from a little before the kill, at a different point each time. */
        atomic_store(&w->hot, 1);
        dmce_bench_sleep_us(1000u + (it * 7919u) % 4000u);
        uint64_t t_kill = 0, t_dead = 0;
        if ((rc = kill_memd(x, st.daemon_id, (pid_t)st.pid, &t_kill, &t_dead)) < 0)
            goto out;
        atomic_store(&w->hit_ns, 0);
        atomic_store(&w->arm_ns, t_dead);
        uint64_t deadline = dmce_now_ms() + FIRST_OP_MS, hit = 0;
        while ((hit = atomic_load(&w->hit_ns)) == 0 && !atomic_load(&w->err) &&
               dmce_now_ms() < deadline)
            dmce_bench_sleep_us(50);
        atomic_store(&w->arm_ns, 0);
        atomic_store(&w->hot, 0);
        if (!hit) {
            int e = atomic_load(&w->err);
            fprintf(stderr,
                    PROG ": iteration %u: no write succeeded after memd[%u] was killed%s%s\n", it,
                    st.daemon_id, e ? ": " : " within the wait", e ? dmce_strerror(e) : "");
            rc = e ? e : -ETIMEDOUT;
            goto out;
        }
        dmce_hist_record(client, hit - t_kill);
        /* The killed daemon comes back empty; the next iteration needs two copies again. */
        dmce_cluster_stats_t mid;
        if ((rc = dmce_cluster_stats(x->observer, &mid)) < 0)
            goto out;
        if ((rc = restart_memd(x, st.daemon_id, mid.blocks, &after)) < 0)
            goto out;
        uint64_t healed = dmce_now_ns() - t_kill;
        worst_heal = DMCE_MAX(worst_heal, healed);
        if (after.deaths != before.deaths + 1 || after.blocks_lost != before.blocks_lost ||
            after.promotions <= before.promotions) {
            fprintf(stderr,
                    PROG ": iteration %u: the dispatcher counts %llu death(s), %llu lost "
                         "block(s), %llu promotion(s) for this kill\n",
                    it, (unsigned long long)(after.deaths - before.deaths),
                    (unsigned long long)(after.blocks_lost - before.blocks_lost),
                    (unsigned long long)(after.promotions - before.promotions));
            rc = -EPROTO;
            goto out;
        }
        dmce_hist_record(disp, after.last_failover_ms * 1000000u);
        fprintf(o->human, "%4u %8u %8u %12.3f %14llu %12.1f\n", it + 1, st.daemon_id, st.pid,
                ms_of(hit - t_kill), (unsigned long long)after.last_failover_ms, ms_of(healed));
    }
    dmce_bench_case_t c;
    rc = -EINVAL;
    if (dmce_bench_case_init(&c, "failover", "failover", "dmce") < 0 ||
        dmce_perf_param_num(&c.res, "daemons", x->daemons) < 0)
        goto out;
    dmce_bench_result_latency(&c.res, client);
    snprintf(c.res.note, sizeof(c.res.note),
             "kill -9 of the primary -> first write done on the promoted mirror, client's view; "
             "max %.1f ms",
             ms_of(dmce_hist_max(client)));
    fprintf(o->human, "failover, client's view: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
            c.res.p50_us.median / 1e3, c.res.p99_us.median / 1e3, ms_of(dmce_hist_max(client)));
    if ((rc = dmce_bench_emit(o, &c.res)) < 0)
        goto out;
    if (dmce_bench_case_init(&c, "failover", "failover", "dispatcher") < 0 ||
        dmce_perf_param_num(&c.res, "daemons", x->daemons) < 0) {
        rc = -EINVAL;
        goto out;
    }
    dmce_bench_result_latency(&c.res, disp);
    snprintf(c.res.note, sizeof(c.res.note),
             "the dispatcher's last_failover_ms: death seen -> every block promoted (1 ms steps)");
    fprintf(o->human,
            "failover, dispatcher's figure: p50 %.0f ms, max %.0f ms; healed (two copies again, "
            "restart included) within %.1f ms\n",
            c.res.p50_us.median / 1e3, ms_of(dmce_hist_max(disp)), ms_of(worst_heal));
    rc = dmce_bench_emit(o, &c.res);
out:
    free(client);
    free(disp);
    return rc;
}

/* The share of `part` in `whole` over n repetitions (0 when nothing was re-mirrored). */
static double share(const double *part, const double *whole, unsigned n)
{
    double p = 0, w = 0;
    for (unsigned i = 0; i < n; i++) {
        p += part[i];
        w += whole[i];
    }
    return w > 0 ? p / w : 0;
}

/*
 * The re-mirror: results remirror/dmce (a mirror holder killed: its copies
 * are taken over), remirror/dmce-primary-lost (a primary holder killed:
 * promoted copies are copied to new mirrors), remirror/limit,
 * remirror/memcpy-fresh.
 */
static int remirror_reps(mir_ctx_t *x, const dmce_bench_opts_t *o, dmce_client_t *c)
{
    const uint64_t nchunks = x->fill / FILL_CHUNK;
    dmce_addr_t *a = calloc(nchunks, sizeof(*a));
    unsigned char *src = malloc(x->fill), *dst = malloc(x->fill), *back = malloc(FILL_CHUNK);
    double bytes[DMCE_PERF_MAX_REPS], secs[DMCE_PERF_MAX_REPS], hadopted[DMCE_PERF_MAX_REPS];
    double pbytes[DMCE_PERF_MAX_REPS], psecs[DMCE_PERF_MAX_REPS], padopted[DMCE_PERF_MAX_REPS];
    double mbytes[DMCE_PERF_MAX_REPS], msecs[DMCE_PERF_MAX_REPS], fsecs[DMCE_PERF_MAX_REPS];
    uint64_t nalloc = 0;
    int rc = -ENOMEM;
    dmce_stats_t pst;
    if (!a || !src || !dst || !back)
        goto out;
    for (uint64_t i = 0; i < x->fill; i += 8) {
        uint64_t v = i * UINT64_C(0x9E3779B97F4A7C15) + 1;
        memcpy(src + i, &v, 8);
    }
    memset(dst, 0, x->fill);
    /* Every chunk on one daemon (the one holding the writer's block), so that its mirrors
     * sit on the others. */
    int p = dmce_daemon_of(c, x->addr);
    if (p < 0 || (rc = dmce_daemon_stats(c, (unsigned)p, &pst)) < 0) {
        rc = p < 0 ? p : rc;
        fprintf(stderr, PROG ": remirror: the daemon to fill: %s\n", dmce_strerror(rc));
        goto out;
    }
    for (nalloc = 0; nalloc < nchunks; nalloc++) {
        if ((rc = dmce_malloc_on(c, (unsigned)p, FILL_CHUNK, &a[nalloc])) < 0 ||
            (rc = dmce_write(c, a[nalloc], src + nalloc * FILL_CHUNK, FILL_CHUNK)) < 0) {
            fprintf(stderr, PROG ": remirror: filling chunk %llu on memd[%u]: %s\n",
                    (unsigned long long)nalloc, pst.daemon_id, dmce_strerror(rc));
            if (a[nalloc])
                nalloc++; /* allocated, not written: freed below */
            goto out;
        }
    }
    if ((rc = wait_healthy(x, 0, REMIRROR_MS, NULL)) < 0)
        goto out;
    fprintf(o->human,
            "remirror: %llu MiB in 1 MiB allocations on memd[%u]; %u x (kill -9 of the daemon "
            "holding most mirror copies, then of the one holding most primaries)\n",
            (unsigned long long)(x->fill >> 20), pst.daemon_id, o->reps);
    fprintf(o->human, "%4s %-8s %6s %10s %10s %10s %10s %10s\n", "rep", "killed", "memd", "MiB",
            "adopted", "exit ms", "ms", "GB/s");
    for (unsigned rep = 0; rep < o->reps; rep++) {
        for (int kind = 0; kind < 2; kind++) { /* 0: a mirror holder; 1: a primary holder */
            dmce_cluster_stats_t before, s;
            if ((rc = wait_healthy(x, 0, READY_MS, &before)) < 0)
                goto out;
            /* The daemon holding most primary blocks (the filled one, until it dies), and
             * of the others the one holding most mirror copies. */
            unsigned n = dmce_daemon_count(c);
            dmce_stats_t prim, hold, st;
            memset(&prim, 0, sizeof(prim));
            memset(&hold, 0, sizeof(hold));
            for (unsigned i = 0; i < n; i++)
                if (dmce_daemon_stats(c, i, &st) == 0 && st.blocks > prim.blocks)
                    prim = st;
            for (unsigned i = 0; i < n; i++)
                if (dmce_daemon_stats(c, i, &st) == 0 && st.daemon_id != prim.daemon_id &&
                    st.mirror_copies > hold.mirror_copies)
                    hold = st;
            const dmce_stats_t *v = kind ? &prim : &hold;
            if (v->daemon_id == 0 || (kind == 0 && hold.mirror_copies == 0)) {
                fprintf(stderr, PROG ": remirror: no daemon %s\n",
                        kind ? "holds a primary" : "other than the primaries' holds a mirror");
                rc = -EPROTO;
                goto out;
            }
            uint64_t t_kill = 0, t_dead = 0;
            if ((rc = kill_memd(x, v->daemon_id, (pid_t)v->pid, &t_kill, &t_dead)) < 0)
                goto out;
            /* Done: the failover ran (a re-mirror started after it) and nothing is single
             * or being copied. */
            uint64_t deadline = dmce_now_ms() + REMIRROR_MS, t_done = 0;
            for (;;) {
                rc = dmce_cluster_stats(x->observer, &s);
                t_done = dmce_now_ns();
                if (rc == 0 && s.deaths > before.deaths &&
                    s.remirrors_started > before.remirrors_started && s.blocks_single == 0 &&
                    s.blocks_remirroring == 0)
                    break;
                if (dmce_now_ms() >= deadline) {
                    if (rc < 0)
                        fprintf(stderr, PROG ": dmce_cluster_stats: %s\n", dmce_strerror(rc));
                    else
                        dmce_bench_print_cluster(PROG, "remirror: not done in time", &s);
                    rc = -ETIMEDOUT;
                    goto out;
                }
                dmce_bench_sleep_us(POLL_US);
            }
            /* Bytes back in two copies: copied, or in use in a kept copy taken over. */
            double adopted = (double)(s.remirror_bytes_adopted - before.remirror_bytes_adopted);
            double *b = kind ? pbytes : bytes, *t = kind ? psecs : secs;
            b[rep] = (double)(s.remirror_bytes - before.remirror_bytes) + adopted;
            /* From the death: the kernel's teardown of the killed process (exit ms) comes
             * before anyone can know of it, and is no part of re-mirroring. */
            t[rep] = (double)(t_done - t_dead) / 1e9;
            (kind ? padopted : hadopted)[rep] = adopted;
            /* exit ms: kill -> the process seen gone (the kernel tearing it down); ms: from
             * then to two copies of every block */
            fprintf(o->human, "%4u %-8s %6u %10.1f %10.1f %10.2f %10.2f %10.3f\n", rep + 1,
                    kind ? "primary" : "mirror", v->daemon_id, b[rep] / (1 << 20),
                    adopted / (1 << 20), (double)(t_dead - t_kill) / 1e6, t[rep] * 1e3,
                    b[rep] / t[rep] / 1e9);
            if (s.blocks_lost != before.blocks_lost) {
                fprintf(stderr, PROG ": remirror: %llu block(s) lost\n",
                        (unsigned long long)(s.blocks_lost - before.blocks_lost));
                rc = -EPROTO;
                goto out;
            }
            if ((rc = restart_memd(x, v->daemon_id, s.blocks, NULL)) < 0)
                goto out;
        }
    }
    /* The data is still what was written. */
    for (uint64_t i = 0; i < nchunks; i++) {
        if ((rc = dmce_read(c, a[i], back, FILL_CHUNK)) < 0) {
            fprintf(stderr, PROG ": remirror: reading chunk %llu back: %s\n", (unsigned long long)i,
                    dmce_strerror(rc));
            goto out;
        }
        if (memcmp(back, src + i * FILL_CHUNK, FILL_CHUNK) != 0) {
            fprintf(stderr, PROG ": remirror: chunk %llu reads back different\n",
                    (unsigned long long)i);
            rc = -EIO;
            goto out;
        }
    }
    /* memcpy of the median bytes re-mirrored, in the same run. */
    double sorted[DMCE_PERF_MAX_REPS];
    memcpy(sorted, bytes, o->reps * sizeof(double));
    for (unsigned i = 1; i < o->reps; i++)
        for (unsigned j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    uint64_t mb = (uint64_t)sorted[o->reps / 2];
    mb = mb > x->fill ? x->fill : mb < FILL_CHUNK ? FILL_CHUNK : mb & ~UINT64_C(63);
    if ((rc = dmce_bench_memcpy(src, dst, mb, 0, o->reps, msecs)) < 0 ||
        (rc = dmce_bench_memcpy(src, dst, mb, 1, o->reps, fsecs)) < 0) {
        fprintf(stderr, PROG ": memcpy: %s\n", strerror(-rc));
        goto out;
    }
    for (unsigned i = 0; i < o->reps; i++)
        mbytes[i] = (double)mb;
    dmce_bench_case_t cs;
    rc = -EINVAL;
    if (dmce_bench_case_init(&cs, "failover", "remirror", "dmce") < 0 ||
        dmce_perf_param_num(&cs.res, "daemons", x->daemons) < 0)
        goto out;
    dmce_bench_result_rates(&cs.res, bytes, secs, o->reps, (double)FILL_CHUNK);
    snprintf(cs.res.note, sizeof(cs.res.note),
             "mirror holder's death -> two copies; %.0f MiB (median), %.0f%% taken over "
             "uncopied; op 1 MiB",
             (double)mb / (1 << 20), 100.0 * share(hadopted, bytes, o->reps));
    if ((rc = dmce_bench_emit(o, &cs.res)) < 0)
        goto out;
    double gbs = cs.res.gb_per_s.median;
    if (dmce_bench_case_init(&cs, "failover", "remirror", "dmce-primary-lost") < 0 ||
        dmce_perf_param_num(&cs.res, "daemons", x->daemons) < 0) {
        rc = -EINVAL;
        goto out;
    }
    dmce_bench_result_rates(&cs.res, pbytes, psecs, o->reps, (double)FILL_CHUNK);
    snprintf(cs.res.note, sizeof(cs.res.note),
             "primary holder's death -> promoted, copied to new mirrors; %.0f%% taken "
             "over uncopied; op 1 MiB",
             100.0 * share(padopted, pbytes, o->reps));
    if ((rc = dmce_bench_emit(o, &cs.res)) < 0)
        goto out;
    double pgbs = cs.res.gb_per_s.median;
    if (dmce_bench_case_init(&cs, "failover", "remirror", "limit") < 0 ||
        dmce_perf_param_num(&cs.res, "daemons", x->daemons) < 0) {
        rc = -EINVAL;
        goto out;
    }
    dmce_bench_result_rates(&cs.res, mbytes, msecs, o->reps, (double)FILL_CHUNK);
    snprintf(cs.res.note, sizeof(cs.res.note),
             "memcpy of the same bytes, both buffers touched before; op = 1 MiB");
    if ((rc = dmce_bench_emit(o, &cs.res)) < 0)
        goto out;
    double lim = cs.res.gb_per_s.median;
    if (dmce_bench_case_init(&cs, "failover", "remirror", "memcpy-fresh") < 0 ||
        dmce_perf_param_num(&cs.res, "daemons", x->daemons) < 0) {
        rc = -EINVAL;
        goto out;
    }
    dmce_bench_result_rates(&cs.res, mbytes, fsecs, o->reps, (double)FILL_CHUNK);
    snprintf(cs.res.note, sizeof(cs.res.note),
             "memcpy of the same bytes into a fresh memfd mapping (first touch); op = 1 MiB");
    if ((rc = dmce_bench_emit(o, &cs.res)) < 0)
        goto out;
    fprintf(o->human,
            "remirror: mirror holder lost %.3f GB/s, primary holder lost %.3f GB/s (medians); "
            "memcpy %.3f GB/s, into fresh memory %.3f GB/s; re-mirror / memcpy %.2f and %.2f\n",
            gbs, pgbs, lim, cs.res.gb_per_s.median, lim > 0 ? gbs / lim : 0,
            lim > 0 ? pgbs / lim : 0);
out:
    for (uint64_t i = 0; i < nalloc; i++) {
        int r = dmce_free(c, a[i]);
        if (r < 0 && rc == 0) {
            fprintf(stderr, PROG ": remirror: dmce_free: %s\n", dmce_strerror(r));
            rc = r;
        }
    }
    free(a);
    free(src);
    free(dst);
    free(back);
    return rc;
}

static int run_failover(mir_ctx_t *x, const dmce_bench_opts_t *o)
{
    writer_t w;
    memset(&w, 0, sizeof(w));
    w.size = x->size;
    int rc, started = 0, failed = 0;
    const char *what;
    if ((rc = dmce_bench_client(x->runtime_dir, 0, &w.c, &what)) < 0)
        goto fail;
    what = "dmce_malloc";
    if ((rc = dmce_malloc(w.c, x->size, &w.addr)) < 0)
        goto fail;
    x->addr = w.addr;
    x->allocated = 1;
    what = "out of memory";
    w.buf = calloc(1, x->size < 8 ? 8 : x->size);
    if (!w.buf) {
        rc = -ENOMEM;
        goto fail;
    }
    what = "pthread_create";
    if ((rc = -pthread_create(&w.thread, NULL, writer_main, &w)) < 0)
        goto fail;
    started = 1;
    if (failover_iterations(x, o, &w) < 0)
        failed = 1; /* the re-mirror may still work: go on */
    atomic_store(&w.stop, 1);
    pthread_join(w.thread, NULL);
    started = 0;
    int e = atomic_load(&w.err);
    if (e) {
        fprintf(stderr, PROG ": the writer: dmce_write: %s\n", dmce_strerror(e));
        failed = 1;
    } else {
        /* The last acknowledged write reads back. */
        unsigned char *back = malloc(x->size);
        rc = back ? dmce_read(w.c, w.addr, back, x->size) : -ENOMEM;
        if (rc < 0 || memcmp(back, w.buf, x->size) != 0) {
            fprintf(stderr, PROG ": the writer's last acknowledged write does not read back%s%s\n",
                    rc < 0 ? ": " : "", rc < 0 ? dmce_strerror(rc) : "");
            failed = 1;
        }
        free(back);
    }
    if (remirror_reps(x, o, w.c) < 0)
        failed = 1;
    rc = failed ? -EIO : 0;
    goto out;
fail:
    fprintf(stderr, PROG ": failover: %s: %s\n", what, dmce_strerror(rc));
out:
    if (started) {
        atomic_store(&w.stop, 1);
        pthread_join(w.thread, NULL);
    }
    if (x->allocated) {
        int r = dmce_free(w.c, w.addr);
        if (r < 0)
            fprintf(stderr, PROG ": dmce_free: %s\n", dmce_strerror(r));
        x->allocated = 0;
    }
    dmce_bench_disconnect(PROG, -1, &w.c);
    free(w.buf);
    return rc;
}

int main(int argc, char **argv)
{
    mir_ctx_t x = {.size = 4096,
                   .nkeys = 4096,
                   .store_size = UINT64_C(12) << 20,
                   .daemons = 3,
                   .iterations = 10,
                   .fill = UINT64_C(64) << 20};
    static const dmce_bench_opt_t own[] = {
        {"bench", "write|store|failover", "what to measure (required; see the source's head)",
         set_bench},
        {"runtime-dir", "DIR", "the cluster: a dmce-dispatcher and its daemons (required)",
         set_runtime_dir},
        {"baseline-dir", "DIR",
         "write, store: and this unmirrored cluster, repetitions interleaved", set_baseline_dir},
        {"size", "BYTES", "bytes per write or per store value (default 4096)", set_size},
        {"access", "msmp|mapped", "write: NO_MAP client (default) or a mapping one", set_access},
        {"handle", "inproc|oop", "store: in-process (default) or out-of-process handle",
         set_handle},
        {"keys", "N", "store: keys, all set before the first op (default 4096)", set_keys},
        {"store-size", "BYTES", "store: bytes of the store (default 12M)", set_store_size},
        {"daemons", "N", "daemons the cluster has when healthy (default 3)", set_daemons},
        {"iterations", "K", "failover: kills of the writer's primary (default 10)", set_iterations},
        {"fill", "BYTES", "failover: bytes to re-mirror, in 1 MiB allocations (default 64M)",
         set_fill},
        {"memd", "PATH", "failover: dmce-memd, to start a killed daemon again", set_memd},
        {"memd-arg", "ARG", "failover: one of its flags (repeat; --id=N is added)", set_memd_arg},
        {"pid-file", "FILE", "failover: append the pid of every daemon started here", set_pid_file},
        {"log-dir", "DIR", "failover: restarted daemons append to DIR/memd-ID.log", set_log_dir},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "Mirroring's cost (write, store set, mirrored vs not) and failover: time from "
                   "kill -9 to the first write on the mirror, re-mirror throughput beside memcpy.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &x,
        .ops = 10000,
        .warmup = 1000,
        .reps = 3,
        .duration_s = 5.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!x.bench_set || !x.runtime_dir) {
        fprintf(stderr, PROG ": --bench and --runtime-dir are required\n");
        return 2;
    }
    if (x.bench == BENCH_STORE && !x.size_set)
        x.size = 64;
    if (x.bench == BENCH_FAILOVER && (!x.memd || !x.log_dir || o.clients != 1)) {
        fprintf(stderr, PROG ": --bench failover needs --memd and --log-dir, and one client\n");
        return 2;
    }
    if (x.bench == BENCH_FAILOVER && x.fill % FILL_CHUNK) {
        fprintf(stderr, PROG ": --fill must be a multiple of 1M\n");
        return 2;
    }
    if (x.baseline_dir && x.bench == BENCH_FAILOVER) {
        fprintf(stderr, PROG ": --baseline-dir is for write and store\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Owner: main, both observers (xb's only with --baseline-dir). */
    static mir_ctx_t xb;
    mir_ctx_t *base = NULL;
    if (x.baseline_dir) {
        xb = x;
        xb.runtime_dir = x.baseline_dir;
        base = &xb;
    }
    for (mir_ctx_t *y = &x; y; y = y == &x ? base : NULL) {
        dmce_connect_opts_t copts;
        memset(&copts, 0, sizeof(copts));
        copts.runtime_dir = y->runtime_dir;
        if ((rc = dmce_connect(&copts, &y->observer)) < 0) {
            fprintf(stderr, PROG ": dmce_connect %s: %s\n", y->runtime_dir, dmce_strerror(rc));
            y->observer = NULL;
            goto done;
        }
        dmce_cluster_stats_t s;
        if ((rc = wait_healthy(y, 0, READY_MS, &s)) < 0)
            goto done;
        y->mirrored = s.mirroring;
    }
    if (base && (!x.mirrored || xb.mirrored)) {
        fprintf(stderr, PROG ": %s must mirror and %s must not (dispatcher --mirroring)\n",
                x.runtime_dir, xb.runtime_dir);
        rc = -EINVAL;
        goto done;
    }
    switch (x.bench) {
    case BENCH_WRITE: rc = run_write(&x, base, &o); break;
    case BENCH_STORE: rc = run_store(&x, base, &o); break;
    case BENCH_FAILOVER:
        if (!x.mirrored) {
            fprintf(stderr, PROG ": --bench failover needs a cluster that mirrors\n");
            rc = -EINVAL;
            break;
        }
        rc = run_failover(&x, &o);
        break;
    }
done:
    start_again_the_dead(&x);
    dmce_disconnect(x.observer); /* NULL: no-op */
    if (base)
        dmce_disconnect(xb.observer);
    return rc < 0 ? 1 : 0;
}
