/*
 * bench.c - option parsing, the timed loop, multi-process clients and
 * result emission shared by every benchmark program (see bench.h).
 *
 * Multi-process runs share one anonymous MAP_SHARED mapping made before
 * fork: a control block (ready / go / stop / done counters, C11 atomics,
 * which are lock-free and so work across processes) and one slot per
 * client with its op count, start and end time and histogram. The parent
 * owns the mapping and the children: it kills and reaps every child on any
 * failure, so a failed run leaves no process behind.
 *
 * At the end, the helpers of bench.h's second half: two cases in turns
 * (dmce_bench_run_pair), results a program times itself, and waiting for
 * a dispatcher's cluster; first written for dmce-bench-mirror, shared by
 * every benchmark that needs them. Last, starting and ending a daemon a
 * benchmark owns (dmce-bench-backup's kill -9 and restart).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

#include "futex.h"
#include "hist.h"
#include "util.h"

/* ---- options -------------------------------------------------------------- */

enum {
    OPT_OPS = 1,
    OPT_DURATION,
    OPT_REPS,
    OPT_WARMUP,
    OPT_CLIENTS,
    OPT_BUSY,
    OPT_JSON,
    OPT_HELP,
    OPT_OWN = 100
};

static void usage(const dmce_bench_prog_t *p, FILE *f)
{
    fprintf(f, "usage: %s [options]\n%s\n\n", p->name, p->summary);
    for (size_t i = 0; i < p->nopts; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", p->opts[i].name, p->opts[i].arg ? " " : "",
                 p->opts[i].arg ? p->opts[i].arg : "");
        fprintf(f, "  %-22s %s\n", left, p->opts[i].help);
    }
    fprintf(f,
            "  --ops N                timed ops per repetition and client (default %llu)\n"
            "  --duration S           at most S seconds per repetition (default %g)\n"
            "  --reps R               timed repetitions, 1..%d (default %u)\n"
            "  --warmup N             untimed ops before the first repetition (default %llu)\n"
            "  --clients N            processes doing the op at once, 1..%d (default 1)\n"
            "  --busy N               N processes burning CPU beside them, 0..%d (default 0)\n"
            "  --json                 one JSON object per result on stdout; human lines on stderr\n"
            "  --help\n",
            (unsigned long long)p->ops, p->duration_s, DMCE_PERF_MAX_REPS, p->reps,
            (unsigned long long)p->warmup, DMCE_BENCH_MAX_CLIENTS, DMCE_BENCH_MAX_BUSY);
}

static int parse_count(const char *prog, const char *opt, const char *s, uint64_t min, uint64_t max,
                       uint64_t *out)
{
    uint64_t v;
    if (s[0] == '-' || dmce_parse_u64(s, &v) < 0 || v < min || v > max) {
        fprintf(stderr, "%s: --%s: expected an integer %llu..%llu, got '%s'\n", prog, opt,
                (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int dmce_bench_parse(const dmce_bench_prog_t *p, int argc, char **argv, dmce_bench_opts_t *o)
{
    *o = (dmce_bench_opts_t){.prog = p->name,
                             .ops = p->ops,
                             .duration_s = p->duration_s,
                             .reps = p->reps,
                             .warmup = p->warmup,
                             .clients = 1,
                             .human = stdout};
    static const struct option common[] = {
        {"ops", required_argument, NULL, OPT_OPS},
        {"duration", required_argument, NULL, OPT_DURATION},
        {"duration-s", required_argument, NULL, OPT_DURATION},
        {"reps", required_argument, NULL, OPT_REPS},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"clients", required_argument, NULL, OPT_CLIENTS},
        {"busy", required_argument, NULL, OPT_BUSY},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, OPT_HELP},
    };
    const size_t ncommon = sizeof(common) / sizeof(common[0]);
    struct option *longopts = calloc(ncommon + p->nopts + 1, sizeof(*longopts));
    if (!longopts) {
        fprintf(stderr, "%s: out of memory\n", p->name);
        return -1;
    }
    memcpy(longopts, common, sizeof(common));
    for (size_t i = 0; i < p->nopts; i++)
        longopts[ncommon + i] =
            (struct option){p->opts[i].name, p->opts[i].arg ? required_argument : no_argument, NULL,
                            OPT_OWN + (int)i};
    int rc = 0, c;
    uint64_t v = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_OPS:
            rc = parse_count(p->name, "ops", optarg, 1, UINT64_C(1) << 40, &o->ops);
            break;
        case OPT_DURATION: {
            char *end;
            errno = 0;
            double d = strtod(optarg, &end);
            if (errno || end == optarg || *end != '\0' || !(d > 0.0) || d > 86400.0) {
                fprintf(stderr, "%s: --duration: expected 0 < S <= 86400 seconds, got '%s'\n",
                        p->name, optarg);
                rc = -1;
            }
            o->duration_s = d;
            break;
        }
        case OPT_REPS:
            rc = parse_count(p->name, "reps", optarg, 1, DMCE_PERF_MAX_REPS, &v);
            o->reps = (unsigned)v;
            break;
        case OPT_WARMUP:
            rc = parse_count(p->name, "warmup", optarg, 0, UINT64_C(1) << 40, &o->warmup);
            break;
        case OPT_CLIENTS:
            rc = parse_count(p->name, "clients", optarg, 1, DMCE_BENCH_MAX_CLIENTS, &v);
            o->clients = (unsigned)v;
            break;
        case OPT_BUSY:
            rc = parse_count(p->name, "busy", optarg, 0, DMCE_BENCH_MAX_BUSY, &v);
            o->busy = (unsigned)v;
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_HELP:
            usage(p, stdout);
            rc = 1;
            break;
        default:
            if (c >= OPT_OWN && (size_t)(c - OPT_OWN) < p->nopts) {
                rc = p->opts[c - OPT_OWN].set(p->user, optarg) < 0 ? -1 : 0;
                break;
            }
            usage(p, stderr);
            rc = -1;
            break;
        }
    }
    free(longopts);
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", p->name, argv[optind]);
        rc = -1;
    }
    if (o->json)
        o->human = stderr;
    return rc;
}

int dmce_bench_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (dmce_parse_size(s, &v) < 0 || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int dmce_bench_opt_size(const char *prog, const char *name, const char *s, uint64_t min,
                        uint64_t max, uint64_t *out)
{
    if (dmce_bench_parse_size(s, min, max, out) == 0)
        return 0;
    fprintf(stderr, "%s: --%s: expected %llu..%llu (K/M/G suffixes), got '%s'\n", prog, name,
            (unsigned long long)min, (unsigned long long)max, s);
    return -1;
}

int dmce_bench_opt_choice(const char *prog, const char *name, const char *s,
                          const char *const *names, unsigned n, unsigned *out)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    fprintf(stderr, "%s: --%s: expected ", prog, name);
    for (unsigned i = 0; i < n; i++)
        fprintf(stderr, "%s%s", names[i], i + 2 < n ? ", " : i + 1 < n ? " or " : "");
    fprintf(stderr, ", got '%s'\n", s);
    return -1;
}

/* ---- cases -------------------------------------------------------------- */

int dmce_bench_case_init(dmce_bench_case_t *c, const char *area, const char *bench,
                         const char *impl)
{
    memset(c, 0, sizeof(*c));
    return dmce_perf_result_init(&c->res, area, bench, impl);
}

static const char *case_strerror(const dmce_bench_case_t *c, int err)
{
    return c->strerror ? c->strerror(err) : strerror(-err);
}

/* One repetition's figures. */
typedef struct rep_figs {
    uint64_t ops, samples;
    double seconds;
    /* several clients: slowest and fastest client's ops/s, fewest ops / fair share */
    double client_min, client_max, fair_min;
} rep_figs_t;

/*
 * The timed loop of one client: up to max_ops ops, at most limit_ns, until
 * *stop (may be NULL) is set. Records into h (not reset here).
 */
static int timed_loop(dmce_bench_case_t *c, uint64_t max_ops, uint64_t limit_ns, atomic_int *stop,
                      dmce_hist_t *h, rep_figs_t *f, uint64_t *t_start, uint64_t *t_end)
{
    const unsigned batch = c->batch ? c->batch : 1;
    uint64_t done = 0, samples = 0;
    uint64_t start = dmce_now_ns(), prev = start;
    int rc = 0;
    while (done < max_ops && prev - start < limit_ns) {
        if (stop && atomic_load_explicit(stop, memory_order_relaxed))
            break;
        unsigned k;
        for (k = 0; k < batch && done + k < max_ops; k++) {
            rc = c->op(c->ctx, done + k);
            if (rc < 0)
                break;
        }
        uint64_t now = dmce_now_ns();
        if (rc < 0)
            break;
        dmce_hist_record(h, (now - prev) / k);
        done += k;
        samples++;
        prev = now;
    }
    f->ops = done;
    f->samples = samples;
    f->seconds = (double)(prev - start) / 1e9;
    *t_start = start;
    *t_end = prev;
    return rc;
}

/* Untimed warm-up: up to n ops within limit_ns. */
static int warmup_loop(dmce_bench_case_t *c, uint64_t n, uint64_t limit_ns)
{
    uint64_t start = dmce_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        int rc = c->op(c->ctx, i);
        if (rc < 0)
            return rc;
        if ((i & 63) == 63 && dmce_now_ns() - start >= limit_ns)
            break;
    }
    return 0;
}

static const double curve_pcts[] = {0,  10,   25,   50,    75,    90,     95,
                                    99, 99.5, 99.9, 99.95, 99.99, 99.999, 100};

/* Per-repetition figures plus the merged histogram -> c->res. */
static void summarize(dmce_bench_case_t *c, const dmce_bench_opts_t *o, const rep_figs_t *figs,
                      const double *p50, const double *p99, const double *p999,
                      const dmce_hist_t *all)
{
    dmce_perf_result_t *r = &c->res;
    double ops_s[DMCE_PERF_MAX_REPS], gb_s[DMCE_PERF_MAX_REPS];
    r->reps = o->reps;
    r->warmup = o->warmup;
    for (unsigned i = 0; i < o->reps; i++) {
        r->samples[i] = figs[i].samples;
        ops_s[i] = figs[i].seconds > 0 ? (double)figs[i].ops / figs[i].seconds : NAN;
        gb_s[i] = ops_s[i] * r->bytes_per_op / 1e9;
    }
    dmce_perf_stat_from(&r->ops_per_s, ops_s, o->reps);
    if (r->bytes_per_op > 0)
        dmce_perf_stat_from(&r->gb_per_s, gb_s, o->reps);
    else
        memset(&r->gb_per_s, 0, sizeof(r->gb_per_s));
    dmce_perf_stat_from(&r->p50_us, p50, o->reps);
    dmce_perf_stat_from(&r->p99_us, p99, o->reps);
    dmce_perf_stat_from(&r->p999_us, p999, o->reps);
    memset(&r->client_min_ops_per_s, 0, sizeof(r->client_min_ops_per_s));
    memset(&r->client_max_ops_per_s, 0, sizeof(r->client_max_ops_per_s));
    memset(&r->fair_min, 0, sizeof(r->fair_min));
    if (o->clients > 1) {
        double cmin[DMCE_PERF_MAX_REPS], cmax[DMCE_PERF_MAX_REPS], fair[DMCE_PERF_MAX_REPS];
        for (unsigned i = 0; i < o->reps; i++) {
            cmin[i] = figs[i].client_min;
            cmax[i] = figs[i].client_max;
            fair[i] = figs[i].fair_min;
        }
        dmce_perf_stat_from(&r->client_min_ops_per_s, cmin, o->reps);
        dmce_perf_stat_from(&r->client_max_ops_per_s, cmax, o->reps);
        dmce_perf_stat_from(&r->fair_min, fair, o->reps);
    }
    r->ncurve = 0;
    if (dmce_hist_count(all) > 0) {
        for (size_t i = 0; i < sizeof(curve_pcts) / sizeof(curve_pcts[0]); i++) {
            r->curve_pct[r->ncurve] = curve_pcts[i];
            r->curve_us[r->ncurve] = (double)dmce_hist_percentile(all, curve_pcts[i]) / 1e3;
            r->ncurve++;
        }
    }
}

static void print_header(const dmce_bench_case_t *c, const dmce_bench_opts_t *o)
{
    char key[256];
    if (dmce_perf_result_key(&c->res, key, sizeof(key)) < 0)
        snprintf(key, sizeof(key), "%s", c->res.bench);
    fprintf(o->human, "%s %s %s: %llu ops x %u reps (max %g s each), warmup %llu, %u client%s\n",
            c->res.area, c->res.impl, key, (unsigned long long)o->ops, o->reps, o->duration_s,
            (unsigned long long)o->warmup, o->clients, o->clients == 1 ? "" : "s");
    fprintf(o->human, "%4s %10s %12s %10s %10s %10s\n", "rep", "ops", "ops/s", "p50 us", "p99 us",
            "p99.9 us");
}

static void print_rep(const dmce_bench_opts_t *o, unsigned rep, const rep_figs_t *f, double p50,
                      double p99, double p999)
{
    fprintf(o->human, "%4u %10llu %12.0f %10.3f %10.3f %10.3f\n", rep + 1,
            (unsigned long long)f->ops, f->seconds > 0 ? (double)f->ops / f->seconds : 0.0, p50,
            p99, p999);
}

static void print_summary(const dmce_bench_case_t *c, const dmce_bench_opts_t *o)
{
    const dmce_perf_result_t *r = &c->res;
    fprintf(o->human, "%4s %10s %12.0f %10.3f %10.3f %10.3f   (ops/s %.0f..%.0f", "med", "",
            r->ops_per_s.median, r->p50_us.median, r->p99_us.median, r->p999_us.median,
            r->ops_per_s.min, r->ops_per_s.max);
    if (r->gb_per_s.present)
        fprintf(o->human, "; %.3f GB/s", r->gb_per_s.median);
    fprintf(o->human, ")\n");
    if (r->fair_min.present)
        fprintf(o->human,
                "     per client: slowest %.0f ops/s, fastest %.0f ops/s; slowest / fair share "
                "%.2f (%.2f..%.2f)\n",
                r->client_min_ops_per_s.median, r->client_max_ops_per_s.median, r->fair_min.median,
                r->fair_min.min, r->fair_min.max);
    const char *probe = strstr(r->note, "CPU line ");
    if (probe)
        fprintf(o->human, "     %.*s round trip before / after (line probe)\n",
                (int)strcspn(probe, ";"), probe);
}

int dmce_bench_emit_json(const dmce_perf_result_t *r)
{
    dmce_jw_t w;
    dmce_jw_init(&w, stdout, 0);
    dmce_perf_result_write(r, &w);
    /* One whole line per write: a program killed later leaves complete lines. */
    if (fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
        return -EIO;
    return dmce_jw_finish(&w);
}

static void rep_percentiles(const dmce_hist_t *h, double *p50, double *p99, double *p999)
{
    *p50 = (double)dmce_hist_percentile(h, 50.0) / 1e3;
    *p99 = (double)dmce_hist_percentile(h, 99.0) / 1e3;
    *p999 = (double)dmce_hist_percentile(h, 99.9) / 1e3;
}

/* ---- one client, in this process -------------------------------------------- */

static int run_inline(dmce_bench_case_t *c, const dmce_bench_opts_t *o, dmce_hist_t *h,
                      dmce_hist_t *all, rep_figs_t *figs, double *p50, double *p99, double *p999)
{
    const uint64_t limit_ns = (uint64_t)(o->duration_s * 1e9);
    int rc = c->setup ? c->setup(c->ctx, 0) : 0;
    if (rc < 0) {
        fprintf(stderr, "%s: setup: %s\n", o->prog, case_strerror(c, rc));
        return rc;
    }
    const char *what = "warm-up";
    if (c->rep_begin && (rc = c->rep_begin(c->ctx, DMCE_BENCH_WARMUP, o->warmup)) < 0)
        goto fail;
    if ((rc = warmup_loop(c, o->warmup, limit_ns)) < 0)
        goto fail;
    print_header(c, o);
    for (unsigned rep = 0; rep < o->reps; rep++) {
        what = "repetition";
        if (c->rep_begin && (rc = c->rep_begin(c->ctx, rep, o->ops)) < 0)
            goto fail;
        dmce_hist_reset(h);
        uint64_t t0, t1;
        if ((rc = timed_loop(c, o->ops, limit_ns, NULL, h, &figs[rep], &t0, &t1)) < 0)
            goto fail;
        dmce_hist_merge(all, h);
        rep_percentiles(h, &p50[rep], &p99[rep], &p999[rep]);
        print_rep(o, rep, &figs[rep], p50[rep], p99[rep], p999[rep]);
    }
    if (c->teardown)
        c->teardown(c->ctx, 0);
    return 0;
fail:
    fprintf(stderr, "%s: %s: %s\n", o->prog, what, case_strerror(c, rc));
    if (c->teardown)
        c->teardown(c->ctx, 0);
    return rc;
}

/* ---- several clients, one process each ------------------------------------------ */

typedef struct client_slot {
    uint64_t ops, samples, t_start, t_end;
    int err;
    int failed_in; /* 0 none, 1 setup, 2 warm-up, 3 repetition */
    dmce_hist_t hist;
} client_slot_t;

typedef struct shared_ctl {
    atomic_uint ready; /* clients through setup and warm-up */
    atomic_uint done;  /* clients through the current repetition */
    atomic_uint go;    /* repetition r may start when go > r (a futex word) */
    atomic_int stop;   /* the first client to finish sets it */
    atomic_int abort;  /* the parent gives up: clients exit */
    client_slot_t slot[];
} shared_ctl_t;

static void pause_briefly(void)
{
    struct timespec ts = {0, 50 * 1000}; /* 50 us: waiting, not measuring */
    nanosleep(&ts, NULL);
}

/*
 * The counters and go are futex words: whoever waits for one sleeps until
 * it changes (or 10 ms pass, to look at the clients' lives), instead of
 * waking every 50 us. A process that wakes 10,000 times a second takes a
 * CPU from a measured client or its daemon each time: on this 2-vCPU
 * machine that alone cost ring clients (which poll while a worker polls
 * for them) up to a tenth of their throughput.
 */
#define WAIT_SLICE_MS 10u

static void count_up(atomic_uint *counter)
{
    atomic_fetch_add(counter, 1);
    dmce_futex_wake(counter, INT_MAX);
}

static void client_main(dmce_bench_case_t *c, const dmce_bench_opts_t *o, shared_ctl_t *sh,
                        unsigned id)
{
    const uint64_t limit_ns = (uint64_t)(o->duration_s * 1e9);
    client_slot_t *s = &sh->slot[id];
    int rc = c->setup ? c->setup(c->ctx, id) : 0;
    if (rc < 0) {
        s->err = rc;
        s->failed_in = 1;
        count_up(&sh->ready);
        _exit(1);
    }
    if ((c->rep_begin && (rc = c->rep_begin(c->ctx, DMCE_BENCH_WARMUP, o->warmup)) < 0) ||
        (rc = warmup_loop(c, o->warmup, limit_ns)) < 0) {
        s->err = rc;
        s->failed_in = 2;
        count_up(&sh->ready);
        if (c->teardown)
            c->teardown(c->ctx, id);
        _exit(1);
    }
    count_up(&sh->ready);
    for (unsigned rep = 0; rep < o->reps; rep++) {
        for (unsigned g; (g = atomic_load(&sh->go)) <= rep && !atomic_load(&sh->abort);)
            dmce_futex_wait(&sh->go, g, WAIT_SLICE_MS);
        if (atomic_load(&sh->abort))
            break;
        rep_figs_t f;
        dmce_hist_reset(&s->hist);
        if ((c->rep_begin && (rc = c->rep_begin(c->ctx, rep, o->ops)) < 0) ||
            (rc = timed_loop(c, o->ops, limit_ns, &sh->stop, &s->hist, &f, &s->t_start,
                             &s->t_end)) < 0) {
            s->err = rc;
            s->failed_in = 3;
            atomic_store(&sh->stop, 1);
            count_up(&sh->done);
            break;
        }
        s->ops = f.ops;
        s->samples = f.samples;
        atomic_store(&sh->stop, 1);
        count_up(&sh->done);
    }
    if (c->teardown)
        c->teardown(c->ctx, id);
    _exit(s->err ? 1 : 0);
}

/*
 * Wait until *counter reaches n. A client that exits 0 has finished its last
 * repetition (it counted itself first) and is reaped here; one that fails or
 * is killed first makes this return -ECHILD. With tick (rep, start_ns), the
 * case's tick runs between looks; its error is returned.
 */
static int wait_count(atomic_uint *counter, unsigned n, pid_t *pids, unsigned nclients,
                      dmce_bench_case_t *tick, unsigned rep, uint64_t start_ns)
{
    unsigned spins = 0;
    for (unsigned v; (v = atomic_load(counter)) < n;) {
        if (tick) {
            int r = tick->tick(tick->ctx, rep, start_ns);
            if (r < 0)
                return r;
        }
        /* with a tick: a look every 256 ticks; else one every wake-up (<= 10 ms) */
        if (!tick || (++spins & 255) == 0) {
            for (unsigned i = 0; i < nclients; i++) {
                int st;
                if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                    pids[i] = 0;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return -ECHILD;
                }
            }
        }
        if (tick)
            pause_briefly(); /* the tick's contract: about every 50 us */
        else
            dmce_futex_wait(counter, v, WAIT_SLICE_MS);
    }
    return 0;
}

static void report_client_failure(const dmce_bench_case_t *c, const dmce_bench_opts_t *o,
                                  const shared_ctl_t *sh)
{
    static const char *const phase[] = {"", "setup", "warm-up", "repetition"};
    for (unsigned i = 0; i < o->clients; i++) {
        const client_slot_t *s = &sh->slot[i];
        if (s->err < 0)
            fprintf(stderr, "%s: client %u: %s: %s\n", o->prog, i, phase[s->failed_in & 3],
                    case_strerror(c, s->err));
    }
}

static int run_clients(dmce_bench_case_t *c, const dmce_bench_opts_t *o, dmce_hist_t *h,
                       dmce_hist_t *all, rep_figs_t *figs, double *p50, double *p99, double *p999)
{
    const size_t maplen = sizeof(shared_ctl_t) + o->clients * sizeof(client_slot_t);
    /* Owner: this function; unmapped on every path. */
    shared_ctl_t *sh =
        mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        int e = errno;
        fprintf(stderr, "%s: mmap of the client area: %s\n", o->prog, strerror(e));
        return -e;
    }
    pid_t pids[DMCE_BENCH_MAX_CLIENTS] = {0};
    int rc = 0;
    fflush(NULL); /* children must not flush our buffered output again */
    const pid_t parent = getpid();
    for (unsigned i = 0; i < o->clients; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            rc = -errno;
            fprintf(stderr, "%s: fork: %s\n", o->prog, strerror(-rc));
            goto stop;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a killed parent */
            if (getppid() != parent)
                _exit(1);
            client_main(c, o, sh, i); /* does not return */
        }
        pids[i] = pid;
    }
    if ((rc = wait_count(&sh->ready, o->clients, pids, o->clients, NULL, 0, 0)) < 0)
        goto stop;
    for (unsigned i = 0; i < o->clients; i++)
        if (sh->slot[i].err < 0)
            rc = sh->slot[i].err;
    if (rc < 0)
        goto stop;
    print_header(c, o);
    for (unsigned rep = 0; rep < o->reps; rep++) {
        atomic_store(&sh->done, 0);
        atomic_store(&sh->stop, 0);
        uint64_t start_ns = dmce_now_ns();
        atomic_store(&sh->go, rep + 1);
        dmce_futex_wake(&sh->go, INT_MAX);
        if ((rc = wait_count(&sh->done, o->clients, pids, o->clients, c->tick ? c : NULL, rep,
                             start_ns)) < 0) {
            if (rc != -ECHILD && c->tick) {
                fprintf(stderr, "%s: repetition %u: stopped by the tick: %s\n", o->prog, rep + 1,
                        case_strerror(c, rc));
                atomic_store(&sh->stop, 1); /* the clients end their timed loops now */
            }
            goto stop;
        }
        dmce_hist_reset(h);
        uint64_t first = UINT64_MAX, last = 0, ops = 0, samples = 0, fewest = UINT64_MAX;
        double cmin = INFINITY, cmax = 0;
        for (unsigned i = 0; i < o->clients; i++) {
            const client_slot_t *s = &sh->slot[i];
            if (s->err < 0) {
                rc = s->err;
                goto stop;
            }
            dmce_hist_merge(h, &s->hist);
            first = s->t_start < first ? s->t_start : first;
            last = s->t_end > last ? s->t_end : last;
            ops += s->ops;
            samples += s->samples;
            /* Each client's own rate: its ops over its own timed loop. */
            double rate =
                s->t_end > s->t_start ? (double)s->ops * 1e9 / (double)(s->t_end - s->t_start) : 0;
            cmin = rate < cmin ? rate : cmin;
            cmax = rate > cmax ? rate : cmax;
            fewest = s->ops < fewest ? s->ops : fewest;
        }
        figs[rep] = (rep_figs_t){.ops = ops,
                                 .samples = samples,
                                 .seconds = last > first ? (double)(last - first) / 1e9 : 0,
                                 .client_min = cmin,
                                 .client_max = cmax,
                                 .fair_min = ops ? (double)fewest * o->clients / (double)ops : 0};
        dmce_hist_merge(all, h);
        rep_percentiles(h, &p50[rep], &p99[rep], &p999[rep]);
        print_rep(o, rep, &figs[rep], p50[rep], p99[rep], p999[rep]);
    }
stop:
    if (rc < 0) {
        atomic_store(&sh->abort, 1);
        atomic_fetch_add(&sh->go, 1); /* a client about to sleep on go sees it change */
        dmce_futex_wake(&sh->go, INT_MAX);
    }
    /* Clients exit by themselves after the last repetition or on abort; bound the wait. */
    for (unsigned tries = 0;; tries++) {
        int left = 0;
        for (unsigned i = 0; i < o->clients; i++) {
            if (pids[i] <= 0)
                continue;
            int st;
            pid_t w = waitpid(pids[i], &st, WNOHANG);
            if (w == pids[i] || (w < 0 && errno == ECHILD)) {
                if (w == pids[i] && (!WIFEXITED(st) || WEXITSTATUS(st) != 0) && rc == 0)
                    rc = -ECHILD;
                pids[i] = 0;
            } else {
                left++;
            }
        }
        if (!left)
            break;
        /* ~5 s of 50 us pauses: SIGTERM; 5 s more: SIGKILL. */
        if (tries == 100000 || tries == 200000)
            for (unsigned i = 0; i < o->clients; i++)
                if (pids[i] > 0)
                    kill(pids[i], tries == 100000 ? SIGTERM : SIGKILL);
        pause_briefly();
    }
    if (rc < 0) {
        report_client_failure(c, o, sh);
        if (rc == -ECHILD)
            fprintf(stderr, "%s: a client process died\n", o->prog);
    }
    munmap(sh, maplen);
    return rc;
}

static void busy_stop(unsigned n, const pid_t *pids)
{
    for (unsigned i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (unsigned i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
}

/*
 * --busy: n processes that burn a CPU each until killed, or until the
 * program dies (PDEATHSIG; a parent gone before that was set is seen by
 * getppid). 0 or -errno (the ones started are stopped again).
 */
static int busy_start(unsigned n, pid_t *pids)
{
    pid_t parent = getpid();
    for (unsigned i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            int e = -errno;
            busy_stop(i, pids);
            return e;
        }
        if (pid == 0) {
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(1);
            for (volatile uint64_t spin = 0;; spin++)
                ;
        }
        pids[i] = pid;
    }
    return 0;
}

static int run_case(dmce_bench_case_t *c, const dmce_bench_opts_t *o);

/* Append tail to the result's note, once (run_pair runs the same case once per repetition). */
static void note_append(dmce_bench_case_t *c, const char *tail)
{
    size_t nl = strlen(c->res.note), tl = strlen(tail);
    if (!strstr(c->res.note, tail) && nl + tl < sizeof(c->res.note))
        memcpy(c->res.note + nl, tail, tl + 1);
}

/*
 * The line probe: a cache line bounced between two threads pinned to the
 * first two CPUs this process may use, both spinning. On this project's
 * 2-vCPU VM that round trip is 50-70 ns for minutes, then 320-350 ns for
 * minutes (the host places the vCPUs near or far from each other), and
 * every figure that needs two CPUs to talk (a ring round trip, two store
 * processes writing shared lines) moves with it: 2-3x. Each result of
 * dmce_bench_run says what the probe read just before and just after it,
 * so that a figure can be read against the state it was taken in.
 */
#define PROBE_TRIPS 2000u
#define PROBE_BATCHES 5
#define PROBE_GIVE_UP_NS (100ull * 1000 * 1000)

typedef struct probe {
    _Atomic uint32_t line __attribute__((aligned(64)));
    _Atomic int quit;
    int cpu;
} probe_t;

static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* The far side: answer odd values with the next even one until told to quit. */
static void *probe_echo(void *arg)
{
    probe_t *p = arg;
    if (pin_to(p->cpu) != 0) {
        atomic_store(&p->quit, 1);
        return NULL;
    }
    uint32_t seen = 0;
    while (!atomic_load_explicit(&p->quit, memory_order_relaxed)) {
        uint32_t v = atomic_load_explicit(&p->line, memory_order_acquire);
        if (v != seen && (v & 1u)) {
            seen = v + 1;
            atomic_store_explicit(&p->line, seen, memory_order_release);
        } else {
            dmce_cpu_relax();
        }
    }
    return NULL;
}

/* Median round trip in us over PROBE_BATCHES batches; NAN with fewer than 2 CPUs or a failure. */
static double line_probe_us(void)
{
    cpu_set_t mine;
    if (pthread_getaffinity_np(pthread_self(), sizeof(mine), &mine) != 0 || CPU_COUNT(&mine) < 2)
        return NAN;
    int a = -1, b = -1;
    for (int i = 0; i < CPU_SETSIZE && b < 0; i++) {
        if (!CPU_ISSET(i, &mine))
            continue;
        if (a < 0)
            a = i;
        else
            b = i;
    }
    probe_t *p = aligned_alloc(64, sizeof(*p)); /* owner: this function */
    if (!p)
        return NAN;
    memset(p, 0, sizeof(*p));
    p->cpu = b;
    double batch[PROBE_BATCHES], us = NAN;
    pthread_t t;
    if (pin_to(a) != 0 || pthread_create(&t, NULL, probe_echo, p) != 0) {
        pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
        free(p);
        return NAN;
    }
    int ok = 1;
    uint32_t v = 0;
    for (int k = 0; k < PROBE_BATCHES && ok; k++) {
        uint64_t t0 = dmce_now_ns();
        for (uint32_t i = 0; i < PROBE_TRIPS && ok; i++) {
            atomic_store_explicit(&p->line, v + 1, memory_order_release);
            for (unsigned s = 1; atomic_load_explicit(&p->line, memory_order_acquire) != v + 2;
                 s++) {
                dmce_cpu_relax();
                if ((s & 1023) == 0 &&
                    (atomic_load(&p->quit) || dmce_now_ns() - t0 > PROBE_GIVE_UP_NS))
                    ok = 0; /* the far side cannot run there (or could not pin): no figure */
                if (!ok)
                    break;
            }
            v += 2;
        }
        batch[k] = (double)(dmce_now_ns() - t0) / 1000.0 / PROBE_TRIPS;
    }
    atomic_store(&p->quit, 1);
    pthread_join(t, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof(mine), &mine);
    free(p);
    if (ok) {
        dmce_perf_stat_t st;
        dmce_perf_stat_from(&st, batch, PROBE_BATCHES);
        us = st.median;
    }
    return us;
}

/* What the line probe read before the case of dmce_bench_run (NAN: none). */
static double probe_before_us = NAN;

int dmce_bench_run(dmce_bench_case_t *c, const dmce_bench_opts_t *o)
{
    pid_t busy[DMCE_BENCH_MAX_BUSY];
    if (o->busy) {
        int e = dmce_perf_param_num(&c->res, "busy", o->busy);
        char tail[48];
        snprintf(tail, sizeof(tail), "; beside %u busy process%s", o->busy,
                 o->busy == 1 ? "" : "es");
        note_append(c, tail);
        if (e == 0)
            e = busy_start(o->busy, busy);
        if (e < 0) {
            fprintf(stderr, "%s: --busy %u: %s\n", o->prog, o->busy, strerror(-e));
            return e;
        }
    }
    probe_before_us = line_probe_us();
    int rc = run_case(c, o);
    probe_before_us = NAN;
    busy_stop(o->busy, busy);
    return rc;
}

static int run_case(dmce_bench_case_t *c, const dmce_bench_opts_t *o)
{
    /* Owner: this function (two 58 KiB histograms do not belong on the stack). */
    dmce_hist_t *h = malloc(sizeof(*h)), *all = malloc(sizeof(*all));
    rep_figs_t figs[DMCE_PERF_MAX_REPS];
    double p50[DMCE_PERF_MAX_REPS], p99[DMCE_PERF_MAX_REPS], p999[DMCE_PERF_MAX_REPS];
    int rc;
    if (!h || !all) {
        free(h);
        free(all);
        fprintf(stderr, "%s: out of memory\n", o->prog);
        return -ENOMEM;
    }
    dmce_hist_init(h);
    dmce_hist_init(all);
    if (o->clients > 1 || c->tick)
        rc = run_clients(c, o, h, all, figs, p50, p99, p999);
    else
        rc = run_inline(c, o, h, all, figs, p50, p99, p999);
    if (rc == 0 && !isnan(probe_before_us)) { /* (a case of dmce_bench_run, not of run_pair) */
        double after = line_probe_us();
        char tail[96];
        snprintf(tail, sizeof(tail), "; CPU line %.3f/%.3f us", probe_before_us, after);
        char *old = strstr(c->res.note, "; CPU line ");
        if (old) /* run_pair's repetitions: the last one's probe stands */
            *old = '\0';
        note_append(c, tail);
    }
    if (rc == 0) {
        summarize(c, o, figs, p50, p99, p999, all);
        print_summary(c, o);
        if (o->json && dmce_bench_emit_json(&c->res) < 0) {
            fprintf(stderr, "%s: writing JSON to stdout failed\n", o->prog);
            rc = -EIO;
        }
    }
    dmce_hist_destroy(h);
    dmce_hist_destroy(all);
    free(h);
    free(all);
    return rc;
}

/* ---- two cases in turns ------------------------------------------------------------- */

typedef struct pair_figs {
    double ops[DMCE_PERF_MAX_REPS], gbs[DMCE_PERF_MAX_REPS], p50[DMCE_PERF_MAX_REPS],
        p99[DMCE_PERF_MAX_REPS], p999[DMCE_PERF_MAX_REPS], cmin[DMCE_PERF_MAX_REPS],
        cmax[DMCE_PERF_MAX_REPS], fair[DMCE_PERF_MAX_REPS];
    uint64_t samples[DMCE_PERF_MAX_REPS];
    double curve[DMCE_PERF_MAX_CURVE][DMCE_PERF_MAX_REPS];
    double curve_pct[DMCE_PERF_MAX_CURVE];
    unsigned ncurve;
} pair_figs_t;

static void pair_record(pair_figs_t *f, unsigned rep, const dmce_perf_result_t *r)
{
    f->ops[rep] = r->ops_per_s.median;
    f->gbs[rep] = r->gb_per_s.present ? r->gb_per_s.median : NAN;
    f->p50[rep] = r->p50_us.median;
    f->p99[rep] = r->p99_us.median;
    f->p999[rep] = r->p999_us.median;
    f->cmin[rep] = r->client_min_ops_per_s.present ? r->client_min_ops_per_s.median : NAN;
    f->cmax[rep] = r->client_max_ops_per_s.present ? r->client_max_ops_per_s.median : NAN;
    f->fair[rep] = r->fair_min.present ? r->fair_min.median : NAN;
    f->samples[rep] = r->samples[0];
    f->ncurve = r->ncurve;
    for (unsigned j = 0; j < r->ncurve; j++) {
        f->curve_pct[j] = r->curve_pct[j];
        f->curve[j][rep] = r->curve_us[j];
    }
}

static void pair_summary(const pair_figs_t *f, const dmce_bench_opts_t *o, dmce_perf_result_t *r)
{
    r->reps = o->reps;
    r->warmup = o->warmup;
    for (unsigned i = 0; i < o->reps; i++)
        r->samples[i] = f->samples[i];
    dmce_perf_stat_from(&r->ops_per_s, f->ops, o->reps);
    dmce_perf_stat_from(&r->gb_per_s, f->gbs, o->reps);
    dmce_perf_stat_from(&r->p50_us, f->p50, o->reps);
    dmce_perf_stat_from(&r->p99_us, f->p99, o->reps);
    dmce_perf_stat_from(&r->p999_us, f->p999, o->reps);
    dmce_perf_stat_from(&r->client_min_ops_per_s, f->cmin, o->reps);
    dmce_perf_stat_from(&r->client_max_ops_per_s, f->cmax, o->reps);
    dmce_perf_stat_from(&r->fair_min, f->fair, o->reps);
    r->ncurve = f->ncurve;
    for (unsigned j = 0; j < f->ncurve; j++) {
        dmce_perf_stat_t m;
        dmce_perf_stat_from(&m, f->curve[j], o->reps);
        r->curve_pct[j] = f->curve_pct[j];
        r->curve_us[j] = m.median;
    }
    fprintf(o->human,
            "%s: %u interleaved repetitions: ops/s %.0f (%.0f..%.0f), p50 %.3f us, p99 %.3f us\n",
            r->impl, o->reps, r->ops_per_s.median, r->ops_per_s.min, r->ops_per_s.max,
            r->p50_us.median, r->p99_us.median);
}

int dmce_bench_run_pair(dmce_bench_case_t *a, dmce_bench_case_t *b, const dmce_bench_opts_t *o)
{
    dmce_bench_case_t *side[2] = {a, b};
    dmce_bench_opts_t one = *o;
    one.reps = 1;
    one.json = 0;
    pair_figs_t *f = calloc(2, sizeof(*f)); /* owner: this function */
    if (!f)
        return -ENOMEM;
    int rc = 0;
    for (unsigned rep = 0; rep < o->reps && rc == 0; rep++) {
        for (unsigned i = 0; i < 2 && rc == 0; i++) {
            unsigned k = (rep + i) & 1;
            fprintf(o->human, "-- repetition %u of %u: %s\n", rep + 1, o->reps, side[k]->res.impl);
            if ((rc = dmce_bench_run(side[k], &one)) == 0)
                pair_record(&f[k], rep, &side[k]->res);
        }
    }
    for (unsigned k = 0; k < 2 && rc == 0; k++) {
        pair_summary(&f[k], o, &side[k]->res);
        rc = dmce_bench_emit(o, &side[k]->res);
    }
    free(f);
    return rc;
}

/* ---- results a program times itself ------------------------------------------------- */

void dmce_bench_sleep_us(unsigned us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};
    nanosleep(&ts, NULL);
}

void dmce_bench_result_latency(dmce_perf_result_t *r, const dmce_hist_t *h)
{
    double p50, p99, p999;
    rep_percentiles(h, &p50, &p99, &p999);
    r->reps = 1;
    r->warmup = 0;
    r->samples[0] = dmce_hist_count(h);
    dmce_perf_stat_from(&r->p50_us, &p50, 1);
    dmce_perf_stat_from(&r->p99_us, &p99, 1);
    dmce_perf_stat_from(&r->p999_us, &p999, 1);
    r->ncurve = 0;
    for (size_t i = 0; i < sizeof(curve_pcts) / sizeof(curve_pcts[0]); i++) {
        r->curve_pct[r->ncurve] = curve_pcts[i];
        r->curve_us[r->ncurve] = (double)dmce_hist_percentile(h, curve_pcts[i]) / 1e3;
        r->ncurve++;
    }
}

void dmce_bench_result_rates(dmce_perf_result_t *r, const double *bytes, const double *secs,
                             unsigned reps, double op_bytes)
{
    double ops[DMCE_PERF_MAX_REPS], gbs[DMCE_PERF_MAX_REPS];
    r->reps = reps;
    r->warmup = 0;
    r->bytes_per_op = op_bytes;
    for (unsigned i = 0; i < reps; i++) {
        r->samples[i] = 1;
        ops[i] = secs[i] > 0 ? bytes[i] / op_bytes / secs[i] : 0;
        gbs[i] = secs[i] > 0 ? bytes[i] / secs[i] / 1e9 : 0;
    }
    dmce_perf_stat_from(&r->ops_per_s, ops, reps);
    dmce_perf_stat_from(&r->gb_per_s, gbs, reps);
}

int dmce_bench_emit(const dmce_bench_opts_t *o, const dmce_perf_result_t *r)
{
    if (o->json && dmce_bench_emit_json(r) < 0) {
        fprintf(stderr, "%s: writing JSON to stdout failed\n", o->prog);
        return -EIO;
    }
    return 0;
}

int dmce_bench_memcpy(const unsigned char *src, unsigned char *dst, uint64_t n, int fresh,
                      unsigned reps, double *secs)
{
    if (!fresh)
        memcpy(dst, src, n); /* warm */
    for (unsigned i = 0; i < reps; i++) {
        unsigned char *to = dst;
        int fd = -1;
        if (fresh) {
            fd = memfd_create("dmce-bench-fresh", MFD_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)n) < 0) {
                int e = -errno;
                if (fd >= 0)
                    close(fd);
                return e;
            }
            to = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (to == MAP_FAILED) {
                int e = -errno;
                close(fd);
                return e;
            }
        }
        uint64_t t0 = dmce_now_ns();
        memcpy(to, src, n);
        secs[i] = (double)(dmce_now_ns() - t0) / 1e9;
        if (fresh) {
            munmap(to, n);
            close(fd);
        }
    }
    return 0;
}

/* ---- dmce clients and clusters ---------------------------------------------------------- */

int dmce_bench_client(const char *runtime_dir, unsigned flags, dmce_client_t **out,
                      const char **what)
{
    dmce_connect_opts_t copts;
    memset(&copts, 0, sizeof(copts));
    copts.runtime_dir = runtime_dir;
    copts.flags = flags;
    *what = "dmce_connect";
    int rc = dmce_connect(&copts, out);
    if (rc < 0) {
        *out = NULL;
        return rc;
    }
    *what = "dmce_setup";
    if ((rc = dmce_setup(*out, 0, 0, NULL, NULL)) < 0) {
        dmce_disconnect(*out);
        *out = NULL;
    }
    return rc;
}

int dmce_bench_disconnect(const char *prog, int client, dmce_client_t **c)
{
    if (!*c)
        return 0;
    int rc = dmce_disconnect(*c);
    *c = NULL;
    if (rc < 0 && client >= 0)
        fprintf(stderr, "%s: client %d: dmce_disconnect: %s\n", prog, client, dmce_strerror(rc));
    else if (rc < 0)
        fprintf(stderr, "%s: dmce_disconnect: %s\n", prog, dmce_strerror(rc));
    return rc;
}

int dmce_bench_wait_prefault(dmce_client_t *c, const char *prog, double max_s, double *waited)
{
    uint64_t t0 = dmce_now_ns();
    for (;;) {
        dmce_stats_t s;
        int rc = dmce_stats(c, &s);
        if (rc < 0)
            return rc;
        double el = (double)(dmce_now_ns() - t0) / 1e9;
        if (s.prefault_pending == 0) {
            if (waited)
                *waited = el;
            return 0;
        }
        if (el > max_s) {
            fprintf(stderr,
                    "%s: the daemons' prefault is not done after %.0f s (%.1f MiB left; a busy "
                    "machine starves its low-priority thread)\n",
                    prog, max_s, (double)s.prefault_pending / (1 << 20));
            return -ETIMEDOUT;
        }
        dmce_bench_sleep_us(1000);
    }
}

int dmce_bench_cluster_healthy(const dmce_cluster_stats_t *s, unsigned daemons, uint64_t min_blocks)
{
    if (s->daemons_alive != daemons || s->blocks < min_blocks)
        return 0;
    return !s->mirroring || (s->blocks > 0 && s->blocks_single == 0 && s->blocks_remirroring == 0 &&
                             s->blocks_mirrored == s->blocks);
}

void dmce_bench_print_cluster(const char *prog, const char *what, const dmce_cluster_stats_t *s)
{
    fprintf(stderr,
            "%s: %s: %llu daemons alive, %llu dead; %llu blocks: %llu mirrored, %llu single, "
            "%llu being copied, %llu lost\n",
            prog, what, (unsigned long long)s->daemons_alive, (unsigned long long)s->daemons_dead,
            (unsigned long long)s->blocks, (unsigned long long)s->blocks_mirrored,
            (unsigned long long)s->blocks_single, (unsigned long long)s->blocks_remirroring,
            (unsigned long long)s->blocks_lost);
}

int dmce_bench_wait_cluster(dmce_client_t *observer, const char *prog, const char *runtime_dir,
                            unsigned daemons, uint64_t min_blocks, unsigned ms,
                            dmce_cluster_stats_t *out)
{
    dmce_cluster_stats_t s;
    memset(&s, 0, sizeof(s));
    uint64_t deadline = dmce_now_ms() + ms;
    int r;
    for (;;) {
        r = dmce_cluster_stats(observer, &s);
        if (r == -ENOTSUP) {
            fprintf(stderr, "%s: no dmce-dispatcher serves %s: this benchmark needs one\n", prog,
                    runtime_dir);
            return r;
        }
        if (r == 0 && dmce_bench_cluster_healthy(&s, daemons, min_blocks))
            break;
        if (dmce_now_ms() >= deadline) {
            if (r < 0)
                fprintf(stderr, "%s: dmce_cluster_stats: %s\n", prog, dmce_strerror(r));
            else
                dmce_bench_print_cluster(prog, "the cluster did not become healthy in time", &s);
            return -ETIMEDOUT;
        }
        dmce_bench_sleep_us(2000);
    }
    if (out)
        *out = s;
    return 0;
}

/* ---- processes a benchmark starts (daemons) -------------------------------------------- */

int dmce_bench_spawn(char *const *argv, const char *log, pid_t *pid)
{
    fflush(NULL); /* the child must not flush our buffered output again */
    const pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0)
        return -errno;
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* it stops (cleanly) with its owner */
        if (getppid() != parent)
            _exit(1);
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        int err = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : nul;
        if (nul < 0 || err < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    *pid = p;
    return 0;
}

int dmce_bench_stop_child(pid_t pid, int sig, unsigned ms, int *status)
{
    int st = 0, rc = 0;
    uint64_t deadline = dmce_now_ms() + ms;
    kill(pid, sig);
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0 && dmce_now_ms() < deadline)
        dmce_bench_sleep_us(1000);
    if (w == 0) {
        kill(pid, SIGKILL);
        w = waitpid(pid, &st, 0);
        rc = -ETIMEDOUT;
    }
    if (w < 0)
        rc = -errno;
    if (status)
        *status = st;
    return rc;
}
