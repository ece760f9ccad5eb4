/*
 * dmce-prefork - a small prefork server sharing one session store
 * (include/dmce/store.h), the seed's second use case.
 *
 * The master forks N worker processes, then creates a store in a memory
 * daemon of the local cluster and hands its address to the workers. Each
 * worker connects its own client, opens the store and serves simulated
 * web requests: a new visitor gets a session (set, with a TTL, only if
 * absent); a returning one has it read (get), sometimes updated
 * (compare-and-set on the version just read, TTL renewed) or ended
 * (logout: delete). Sessions nobody comes back to expire; a full store
 * evicts the least recently read. Workers given --out-of-process do all
 * of this through MSMP messages (they never map the store); the others
 * work on the shared memory itself. Every second the master sweeps expired
 * sessions and prints one line of stats; after --seconds it stops the
 * workers, verifies the store, destroys it and prints a summary.
 *
 *   dmce-prefork [--runtime-dir DIR] [--workers N] [--out-of-process M]
 *                [--seconds S] [--store-size BYTES] [--ttl-ms MS]
 *                [--rate REQ_PER_S] [--sessions N] [--value-size BYTES] [--no-evict]
 *
 * Uses only the public API. Run it in a local cluster: daemons/run-prefork.sh.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dmce/dmce.h>

#define PROG "dmce-prefork"
#define MAX_WORKERS 64
#define HBUCKETS 512 /* latency histogram: 8 sub-buckets per power of two of ns */

typedef struct opts {
    const char *runtime_dir;
    unsigned workers, oop, seconds;
    uint64_t store_size, ttl_ms, rate, sessions, value_size;
    int evict;
} opts_t;

/* What a worker publishes; only it writes its own entry, the master reads. */
typedef struct wstats {
    _Atomic uint64_t requests, created, reads, misses, updates, conflicts, logouts, full, errors;
    _Atomic uint64_t hist[HBUCKETS]; /* get latency */
    _Atomic int ready;               /* 1 once the store is open; -1 if it failed */
    int in_process;
} wstats_t;

typedef struct shared {
    _Atomic int stop;
    _Atomic uint64_t next_session; /* session IDs are handed out in order */
    wstats_t w[MAX_WORKERS];
} shared_t;

static shared_t *sh;
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'K':
    case 'k':
        shift = 10;
        end++;
        break;
    case 'M':
    case 'm':
        shift = 20;
        end++;
        break;
    case 'G':
    case 'g':
        shift = 30;
        end++;
        break;
    }
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* ---- latency histogram ------------------------------------------------------ */

static unsigned hbucket(uint64_t ns)
{
    if (ns < 8)
        return (unsigned)ns;
    unsigned lg = 63u - (unsigned)__builtin_clzll(ns);
    unsigned b = lg * 8 + (unsigned)((ns >> (lg - 3)) & 7);
    return b < HBUCKETS ? b : HBUCKETS - 1;
}

static double hvalue(unsigned b) /* middle of bucket b, ns */
{
    if (b < 8)
        return b;
    unsigned lg = b / 8, sub = b % 8;
    double lo = (double)(1ull << lg) * (1.0 + sub / 8.0);
    return lo * (1.0 + 1.0 / 16.0);
}

/* The q-quantile of counts h (0 when empty). */
static double hquantile(const uint64_t *h, double q)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < HBUCKETS; b++)
        n += h[b];
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)n), seen = 0;
    for (unsigned b = 0; b < HBUCKETS; b++) {
        seen += h[b];
        if (seen > want)
            return hvalue(b);
    }
    return hvalue(HBUCKETS - 1);
}

static void fmt_ns(char *buf, size_t len, double ns)
{
    if (ns == 0)
        snprintf(buf, len, "-");
    else if (ns < 1000)
        snprintf(buf, len, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(buf, len, "%.1fus", ns / 1e3);
    else
        snprintf(buf, len, "%.1fms", ns / 1e6);
}

static void fmt_rate(char *buf, size_t len, double r)
{
    if (r >= 1e6)
        snprintf(buf, len, "%.2fM", r / 1e6);
    else if (r >= 1e3)
        snprintf(buf, len, "%.1fk", r / 1e3);
    else
        snprintf(buf, len, "%.0f", r);
}

/* ---- a worker ----------------------------------------------------------------- */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* A session value: a small text header (user, visits) padded to size. */
static uint32_t make_session(char *buf, uint32_t size, uint64_t id, unsigned visits)
{
    int n =
        snprintf(buf, size, "{\"user\":%" PRIu64 ",\"visits\":%u,\"cart\":\"", id % 100000, visits);
    uint32_t len = (uint32_t)n < size ? size : (uint32_t)n + 1;
    for (uint32_t i = (uint32_t)n; i + 2 < len; i++)
        buf[i] = (char)('a' + (id + i) % 26);
    if (len >= 2) {
        buf[len - 2] = '"';
        buf[len - 1] = '}';
    }
    return len;
}

static unsigned parse_visits(const char *v, uint32_t len)
{
    const char *p = memmem(v, len, "\"visits\":", 9);
    return p ? (unsigned)strtoul(p + 9, NULL, 10) : 0;
}

static int worker_main(const opts_t *o, unsigned idx, int rfd)
{
    wstats_t *ws = &sh->w[idx];
    dmce_addr_t addr;
    ssize_t got = read(rfd, &addr, sizeof addr);
    close(rfd);
    if (got != sizeof addr)
        return 0; /* the master gave up before creating the store */
    int oop = idx >= o->workers - o->oop;
    dmce_connect_opts_t co = {.runtime_dir = o->runtime_dir,
                              .flags = oop ? DMCE_CONNECT_NO_MAP : 0};
    dmce_client_t *c;
    dmce_store_t *s = NULL;
    int r = dmce_connect(&co, &c);
    if (r == 0)
        r = dmce_setup(c, 0, 0, NULL, NULL);
    if (r == 0)
        r = dmce_store_open(c, addr, 0, &s);
    if (r < 0) {
        fprintf(stderr, "%s: worker %u: %s\n", PROG, idx, dmce_strerror(r));
        atomic_store(&ws->ready, -1);
        return 1;
    }
    dmce_store_info_t info;
    dmce_store_info(s, &info);
    ws->in_process = info.in_process;
    atomic_store(&ws->ready, 1);

    rnd_state = 0x9E3779B97F4A7C15ull ^ ((uint64_t)getpid() << 20) ^ idx;
    uint32_t vsize = (uint32_t)o->value_size;
    char *val = malloc(vsize + 64), *buf = malloc(info.max_value ? info.max_value : 1);
    if (!val || !buf)
        return 1;
    char key[40];
    uint64_t t0 = now_ns(), n = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        uint64_t next = atomic_load_explicit(&sh->next_session, memory_order_relaxed);
        uint64_t dice = rnd() % 100;
        if (next == 0 || dice < 10) { /* a new visitor */
            uint64_t id = atomic_fetch_add(&sh->next_session, 1);
            int kl = snprintf(key, sizeof key, "session:%016" PRIx64, id);
            uint32_t vl = make_session(val, vsize, id, 1);
            r = dmce_store_set(s, key, (uint32_t)kl, val, vl, o->ttl_ms, 0, DMCE_STORE_NX, NULL);
            if (r == 0)
                atomic_fetch_add_explicit(&ws->created, 1, memory_order_relaxed);
            else if (r == DMCE_ESTOREFULL)
                atomic_fetch_add_explicit(&ws->full, 1, memory_order_relaxed);
            else
                atomic_fetch_add_explicit(&ws->errors, 1, memory_order_relaxed);
        } else { /* a returning visitor: one of the recent sessions */
            uint64_t span = next < o->sessions ? next : o->sessions;
            uint64_t id = next - 1 - rnd() % span;
            int kl = snprintf(key, sizeof key, "session:%016" PRIx64, id);
            uint32_t vl = 0;
            uint64_t ver = 0, a = now_ns();
            r = dmce_store_get(s, key, (uint32_t)kl, buf, info.max_value, &vl, &ver);
            uint64_t lat = now_ns() - a;
            atomic_fetch_add_explicit(&ws->hist[hbucket(lat)], 1, memory_order_relaxed);
            if (r == -ENOENT) {
                atomic_fetch_add_explicit(&ws->misses, 1, memory_order_relaxed); /* expired */
            } else if (r < 0) {
                atomic_fetch_add_explicit(&ws->errors, 1, memory_order_relaxed);
            } else {
                atomic_fetch_add_explicit(&ws->reads, 1, memory_order_relaxed);
                if (dice < 13) { /* logout */
                    if (dmce_store_del(s, key, (uint32_t)kl, ver) == 0)
                        atomic_fetch_add_explicit(&ws->logouts, 1, memory_order_relaxed);
                } else if (dice < 40) { /* the request changed the session: CAS on what we read */
                    uint32_t nl = make_session(val, vsize, id, parse_visits(buf, vl) + 1);
                    r = dmce_store_set(s, key, (uint32_t)kl, val, nl, o->ttl_ms, ver, 0, NULL);
                    if (r == 0)
                        atomic_fetch_add_explicit(&ws->updates, 1, memory_order_relaxed);
                    else if (r == DMCE_ECASFAIL || r == -ENOENT)
                        atomic_fetch_add_explicit(&ws->conflicts, 1, memory_order_relaxed);
                    else if (r == DMCE_ESTOREFULL)
                        atomic_fetch_add_explicit(&ws->full, 1, memory_order_relaxed);
                    else
                        atomic_fetch_add_explicit(&ws->errors, 1, memory_order_relaxed);
                }
            }
        }
        atomic_fetch_add_explicit(&ws->requests, 1, memory_order_relaxed);
        if (o->rate && (++n & 63) == 0) { /* hold the request rate */
            uint64_t due = t0 + n * 1000000000ull / o->rate, now = now_ns();
            if (due > now) {
                struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                                      (long)((due - now) % 1000000000ull)};
                nanosleep(&ts, NULL);
            }
        }
    }
    free(val);
    free(buf);
    dmce_store_close(s);
    dmce_disconnect(c);
    return 0;
}

/* ---- the master ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [options]\n"
            "  --runtime-dir DIR     the local cluster (default $DMCE_RUNTIME_DIR)\n"
            "  --workers N           worker processes (default 4, at most %d)\n"
            "  --out-of-process M    of which the last M never map the store (MSMP; default 0)\n"
            "  --seconds S           how long to run (default 10)\n"
            "  --store-size BYTES    store size, e.g. 64M (default 64M; at most a daemon block)\n"
            "  --ttl-ms MS           session TTL (default 3000)\n"
            "  --rate N              requests per second per worker, 0 = flat out (default 20000)\n"
            "  --sessions N          returning visitors pick among the N newest sessions "
            "(default 50000)\n"
            "  --value-size BYTES    session size (default 512)\n"
            "  --no-evict            a full store refuses new sessions instead of evicting\n",
            PROG, MAX_WORKERS);
}

struct totals {
    uint64_t requests, created, reads, misses, updates, conflicts, logouts, full, errors;
};

static struct totals sum_worker(const wstats_t *w)
{
    struct totals t = {
        atomic_load(&w->requests), atomic_load(&w->created), atomic_load(&w->reads),
        atomic_load(&w->misses),   atomic_load(&w->updates), atomic_load(&w->conflicts),
        atomic_load(&w->logouts),  atomic_load(&w->full),    atomic_load(&w->errors)};
    return t;
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", PROG, what, dmce_strerror(err), dmce_err_name(err));
    return 1;
}

int main(int argc, char **argv)
{
    opts_t o = {.runtime_dir = getenv("DMCE_RUNTIME_DIR"),
                .workers = 4,
                .seconds = 10,
                .store_size = 64ull << 20,
                .ttl_ms = 3000,
                .rate = 20000,
                .sessions = 50000,
                .value_size = 512,
                .evict = 1};
    static const struct option lo[] = {{"runtime-dir", required_argument, 0, 'd'},
                                       {"workers", required_argument, 0, 'w'},
                                       {"out-of-process", required_argument, 0, 'o'},
                                       {"seconds", required_argument, 0, 's'},
                                       {"store-size", required_argument, 0, 'z'},
                                       {"ttl-ms", required_argument, 0, 't'},
                                       {"rate", required_argument, 0, 'r'},
                                       {"sessions", required_argument, 0, 'n'},
                                       {"value-size", required_argument, 0, 'v'},
                                       {"no-evict", no_argument, 0, 'E'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o.runtime_dir = optarg; break;
        case 'w':
            if (parse_size(optarg, &v) || v < 1 || v > MAX_WORKERS)
                goto bad;
            o.workers = (unsigned)v;
            break;
        case 'o':
            if (parse_size(optarg, &v) || v > MAX_WORKERS)
                goto bad;
            o.oop = (unsigned)v;
            break;
        case 's':
            if (parse_size(optarg, &v) || v < 1 || v > 86400)
                goto bad;
            o.seconds = (unsigned)v;
            break;
        case 'z':
            if (parse_size(optarg, &o.store_size))
                goto bad;
            break;
        case 't':
            if (parse_size(optarg, &o.ttl_ms) || o.ttl_ms == 0)
                goto bad;
            break;
        case 'r':
            if (parse_size(optarg, &o.rate))
                goto bad;
            break;
        case 'n':
            if (parse_size(optarg, &o.sessions) || o.sessions == 0)
                goto bad;
            break;
        case 'v':
            if (parse_size(optarg, &o.value_size) || o.value_size < 64 || o.value_size > (1u << 20))
                goto bad;
            break;
        case 'E': o.evict = 0; break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || !o.runtime_dir || o.oop > o.workers)
        goto bad;

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return fail("mmap", -errno);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    /* Fork first: the workers never inherit the master's client. */
    pid_t pids[MAX_WORKERS];
    int pipes[MAX_WORKERS];
    for (unsigned i = 0; i < o.workers; i++) {
        int p[2];
        if (pipe(p) < 0)
            return fail("pipe", -errno);
        pids[i] = fork();
        if (pids[i] < 0)
            return fail("fork", -errno);
        if (pids[i] == 0) {
            signal(SIGINT, SIG_IGN); /* the master stops us */
            close(p[1]);
            for (unsigned j = 0; j < i; j++)
                close(pipes[j]);
            _exit(worker_main(&o, i, p[0]));
        }
        close(p[0]);
        pipes[i] = p[1];
    }

    int rc = 0;
    dmce_connect_opts_t co = {.runtime_dir = o.runtime_dir};
    dmce_client_t *c = NULL;
    dmce_store_t *s = NULL;
    dmce_addr_t addr = 0;
    int r = dmce_connect(&co, &c);
    if (r == 0)
        r = dmce_setup(c, 0, 0, NULL, NULL);
    dmce_store_params_t sp = {.max_value = (uint32_t)o.value_size + 64,
                              .flags = o.evict ? DMCE_STORE_EVICT : 0};
    if (r == 0)
        r = dmce_store_create(c, o.store_size, &sp, &addr);
    if (r == 0)
        r = dmce_store_open(c, addr, 0, &s);
    if (r < 0) {
        rc = fail("creating the store", r);
        for (unsigned i = 0; i < o.workers; i++)
            close(pipes[i]); /* the workers read nothing and leave */
        goto out;
    }
    char text[32];
    snprintf(text, sizeof text, "%#" PRIx64, (uint64_t)addr);
    dmce_store_info_t info;
    dmce_store_info(s, &info);
    printf("%s: store at %s: %" PRIu64 " MiB, %u stripes, sessions of %" PRIu64
           " bytes, TTL %" PRIu64 " ms, %s; %u workers (%u out-of-process), %" PRIu64
           " req/s each%s\n",
           PROG, text, info.size >> 20, info.stripes, o.value_size, o.ttl_ms,
           o.evict ? "evicts when full" : "no eviction", o.workers, o.oop, o.rate,
           o.rate ? "" : " (flat out)");
    for (unsigned i = 0; i < o.workers; i++) {
        if (write(pipes[i], &addr, sizeof addr) != sizeof addr)
            fprintf(stderr, "%s: worker %u did not take the address\n", PROG, i);
        close(pipes[i]);
    }
    for (unsigned i = 0; i < o.workers; i++) /* bounded: workers fail or get ready */
        for (int k = 0; k < 1000 && atomic_load(&sh->w[i].ready) == 0; k++)
            usleep(10000);

    struct totals prev[MAX_WORKERS] = {{0}};
    static uint64_t hprev[2][HBUCKETS];
    dmce_store_stats_t st0 = {0};
    dmce_store_stats(s, &st0);
    uint64_t expired0 = st0.expirations, evicted0 = st0.evictions;
    uint64_t t_start = now_ns(), t_prev = t_start;
    for (unsigned sec = 1; sec <= o.seconds && !interrupted; sec++) {
        uint64_t due = t_start + sec * 1000000000ull;
        while (!interrupted && now_ns() < due) {
            uint64_t left = due - now_ns();
            struct timespec ts = {0, (long)(left > 100000000 ? 100000000 : left)};
            nanosleep(&ts, NULL);
        }
        int swept = dmce_store_sweep(s); /* remove expired sessions (and count them) */
        dmce_store_stats_t st;
        if (swept < 0 || dmce_store_stats(s, &st) < 0) {
            rc = fail("store stats", swept < 0 ? swept : -EIO);
            break;
        }
        uint64_t t = now_ns();
        double dt = (double)(t - t_prev) / 1e9;
        t_prev = t;
        struct totals d = {0};
        char per[MAX_WORKERS * 16] = "", rb[16];
        uint64_t h[2][HBUCKETS];
        memset(h, 0, sizeof h);
        for (unsigned i = 0; i < o.workers; i++) {
            struct totals cur = sum_worker(&sh->w[i]);
            d.requests += cur.requests - prev[i].requests;
            d.created += cur.created - prev[i].created;
            d.reads += cur.reads - prev[i].reads;
            d.misses += cur.misses - prev[i].misses;
            d.updates += cur.updates - prev[i].updates;
            d.logouts += cur.logouts - prev[i].logouts;
            d.full += cur.full - prev[i].full;
            d.errors += cur.errors - prev[i].errors;
            fmt_rate(rb, sizeof rb, (double)(cur.requests - prev[i].requests) / dt);
            size_t pl = strlen(per);
            snprintf(per + pl, sizeof per - pl, " %s%s", rb, sh->w[i].in_process ? "" : "*");
            prev[i] = cur;
            int k = sh->w[i].in_process ? 0 : 1;
            for (unsigned b = 0; b < HBUCKETS; b++)
                h[k][b] += atomic_load_explicit(&sh->w[i].hist[b], memory_order_relaxed);
        }
        char p_in[16], p_out[16];
        for (int k = 0; k < 2; k++) {
            uint64_t dh[HBUCKETS];
            for (unsigned b = 0; b < HBUCKETS; b++) {
                dh[b] = h[k][b] - hprev[k][b];
                hprev[k][b] = h[k][b];
            }
            fmt_ns(k ? p_out : p_in, 16, hquantile(dh, 0.99));
        }
        char tail[40] = "";
        if (o.oop)
            snprintf(tail, sizeof tail, ", out-of-process* %s", p_out);
        printf("%3us live %7" PRIu64 " | new %6" PRIu64 " read %7" PRIu64 " updated %6" PRIu64
               " logout %5" PRIu64 " missed %6" PRIu64 " | expired %7" PRIu64 " evicted %6" PRIu64
               "%s%s | req/s per worker%s | get p99 %s%s\n",
               sec, st.entries, d.created, d.reads, d.updates, d.logouts, d.misses,
               st.expirations - expired0, st.evictions - evicted0, d.full ? " FULL" : "",
               d.errors ? " ERRORS" : "", per, p_in, tail);
        fflush(stdout);
    }

    atomic_store(&sh->stop, 1);
out:
    for (unsigned i = 0; i < o.workers; i++) {
        int status = 0;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s: worker %u ended with status %#x\n", PROG, i, status);
            rc = 1;
        }
    }
    if (s) {
        struct totals t = {0};
        for (unsigned i = 0; i < o.workers; i++) {
            struct totals w = sum_worker(&sh->w[i]);
            t.requests += w.requests;
            t.created += w.created;
            t.reads += w.reads;
            t.updates += w.updates;
            t.conflicts += w.conflicts;
            t.errors += w.errors;
        }
        dmce_store_stats_t st;
        dmce_store_stats(s, &st);
        r = dmce_store_verify(s);
        printf("%s: %" PRIu64 " requests: %" PRIu64 " sessions created, %" PRIu64 " read, %" PRIu64
               " updated (%" PRIu64 " CAS conflicts), %" PRIu64 " expired, %" PRIu64
               " evicted, %" PRIu64 " errors; store %s\n",
               PROG, t.requests, t.created, t.reads, t.updates, t.conflicts, st.expirations,
               st.evictions, t.errors, r == 0 ? "verified" : dmce_strerror(r));
        if (r < 0 || t.errors)
            rc = 1;
        dmce_store_close(s);
        r = dmce_store_destroy(c, addr);
        if (r < 0)
            rc = fail("destroy", r);
    }
    if (c)
        dmce_disconnect(c);
    munmap(sh, sizeof *sh);
    return rc;
bad:
    usage(stderr);
    return 64;
}
