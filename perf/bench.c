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
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "util.h"

/* ---- options -------------------------------------------------------------- */

enum {
    OPT_OPS = 1,
    OPT_DURATION,
    OPT_REPS,
    OPT_WARMUP,
    OPT_CLIENTS,
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
            "  --json                 one JSON object per result on stdout; human lines on stderr\n"
            "  --help\n",
            (unsigned long long)p->ops, p->duration_s, DMCE_PERF_MAX_REPS, p->reps,
            (unsigned long long)p->warmup, DMCE_BENCH_MAX_CLIENTS);
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
    atomic_int go;     /* repetition r may start when go > r */
    atomic_int stop;   /* the first client to finish sets it */
    atomic_int abort;  /* the parent gives up: clients exit */
    client_slot_t slot[];
} shared_ctl_t;

static void pause_briefly(void)
{
    struct timespec ts = {0, 50 * 1000}; /* 50 us: waiting, not measuring */
    nanosleep(&ts, NULL);
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
        atomic_fetch_add(&sh->ready, 1);
        _exit(1);
    }
    if ((c->rep_begin && (rc = c->rep_begin(c->ctx, DMCE_BENCH_WARMUP, o->warmup)) < 0) ||
        (rc = warmup_loop(c, o->warmup, limit_ns)) < 0) {
        s->err = rc;
        s->failed_in = 2;
        atomic_fetch_add(&sh->ready, 1);
        if (c->teardown)
            c->teardown(c->ctx, id);
        _exit(1);
    }
    atomic_fetch_add(&sh->ready, 1);
    for (unsigned rep = 0; rep < o->reps; rep++) {
        while (atomic_load(&sh->go) <= (int)rep && !atomic_load(&sh->abort))
            pause_briefly();
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
            atomic_fetch_add(&sh->done, 1);
            break;
        }
        s->ops = f.ops;
        s->samples = f.samples;
        atomic_store(&sh->stop, 1);
        atomic_fetch_add(&sh->done, 1);
    }
    if (c->teardown)
        c->teardown(c->ctx, id);
    _exit(s->err ? 1 : 0);
}

/*
 * Wait until *counter reaches n. A client that exits 0 has finished its last
 * repetition (it counted itself first) and is reaped here; one that fails or
 * is killed first makes this return -ECHILD.
 */
static int wait_count(atomic_uint *counter, unsigned n, pid_t *pids, unsigned nclients)
{
    unsigned spins = 0;
    while (atomic_load(counter) < n) {
        if ((++spins & 255) == 0) {
            for (unsigned i = 0; i < nclients; i++) {
                int st;
                if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                    pids[i] = 0;
                    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return -ECHILD;
                }
            }
        }
        pause_briefly();
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
    if ((rc = wait_count(&sh->ready, o->clients, pids, o->clients)) < 0)
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
        atomic_store(&sh->go, (int)rep + 1);
        if ((rc = wait_count(&sh->done, o->clients, pids, o->clients)) < 0)
            goto stop;
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
    if (rc < 0)
        atomic_store(&sh->abort, 1);
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

int dmce_bench_run(dmce_bench_case_t *c, const dmce_bench_opts_t *o)
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
    if (o->clients > 1)
        rc = run_clients(c, o, h, all, figs, p50, p99, p999);
    else
        rc = run_inline(c, o, h, all, figs, p50, p99, p999);
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
