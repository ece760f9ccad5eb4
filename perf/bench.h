/*
 * bench.h - the frame every dmce benchmark program is built on.
 *
 * A benchmark program describes each thing it measures as a
 * dmce_bench_case_t (names and parameters in a dmce_perf_result_t, plus an
 * op callback) and hands it to dmce_bench_run, which does the rest the
 * same way for every benchmark, dmce's and the peers' alike:
 *
 *   setup (untimed) -> warm-up ops (untimed) -> reps x timed loop ->
 *   teardown; then median and spread over the repetitions, a human line
 *   per repetition (stderr with --json, else stdout) and, with --json, one
 *   JSON object on one line on stdout (report.h's result form).
 *
 * Timed loop: the clock (CLOCK_MONOTONIC) is read once per sample; a
 * sample's latency is the time since the previous reading, so it includes
 * the op, one clock read and recording the previous sample (about 25 ns
 * on a 2020s x86 with a TSC clock source). A sample is `batch` ops
 * (default 1), recorded as their mean. A repetition ends after --ops ops
 * or --duration seconds, whichever comes first; its ops/s is ops / wall
 * time. Latencies go into a dmce_hist_t (relative error <= 1/256).
 *
 * Clients: with --clients N > 1 the op runs in N forked processes at once
 * (each calls setup itself, so each has its own connections), started
 * together for every repetition; the first to finish its --ops stops the
 * others, and the repetition's ops/s is all their ops over the wall time
 * from the first start to the last end. Their histograms are merged.
 * Per repetition the frame also keeps the slowest and the fastest
 * client's ops/s (each over its own timed loop) and fair_min, the ops of
 * the client that did fewest over a fair share (all ops / clients): the
 * starvation check (report.h). With one client everything runs in the
 * calling process, unless the case has a tick: something the calling
 * process does while the clients run (dmce_bench_case_t.tick).
 *
 * Beyond the frame: dmce_bench_run_pair measures two cases in turns (a
 * path and its baseline, repetitions interleaved); benchmarks that time
 * events themselves (a failover, a move) make results with
 * dmce_bench_result_latency / _rates and print them with dmce_bench_emit;
 * the dmce_bench_*cluster helpers wait for a dispatcher's cluster;
 * dmce_bench_spawn and _stop_child start and end a daemon a benchmark
 * owns.
 *
 * Adding a benchmark: write setup/op/teardown for the thing measured,
 * fill a case, call dmce_bench_run; the harness (perf/run) runs the
 * program and collects the JSON lines. See docs/perf.md.
 */
#ifndef DMCE_PERF_BENCH_H
#define DMCE_PERF_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <dmce/client.h>

#include "hist.h"
#include "report.h"

#define DMCE_BENCH_MAX_CLIENTS 64
#define DMCE_BENCH_MAX_BUSY 16 /* --busy */
/* rep_begin's rep argument before the warm-up. */
#define DMCE_BENCH_WARMUP ((unsigned)-1)

/* The options every benchmark program takes. */
typedef struct dmce_bench_opts {
    const char *prog;  /* program name for messages */
    uint64_t ops;      /* --ops: timed ops per repetition (per client) */
    double duration_s; /* --duration: at most this many seconds per repetition */
    unsigned reps;     /* --reps: timed repetitions */
    uint64_t warmup;   /* --warmup: untimed ops before the first repetition (per client) */
    unsigned clients;  /* --clients: processes doing the op at once */
    unsigned busy;     /* --busy: CPU-bound processes running beside the clients */
    int json;          /* --json: JSON lines on stdout, human lines on stderr */
    FILE *human;       /* where human lines go */
} dmce_bench_opts_t;

/* One option of a program's own. set returns 0, or -1 after printing why. */
typedef struct dmce_bench_opt {
    const char *name; /* long name, without "--" */
    const char *arg;  /* argument name for --help; NULL: a flag (set gets NULL) */
    const char *help;
    int (*set)(void *user, const char *value);
} dmce_bench_opt_t;

/* A program: its name, summary, own options and the common defaults. */
typedef struct dmce_bench_prog {
    const char *name;
    const char *summary;
    const dmce_bench_opt_t *opts;
    size_t nopts;
    void *user; /* passed to every opts[i].set */
    uint64_t ops, warmup;
    unsigned reps;
    double duration_s;
} dmce_bench_prog_t;

/*
 * Parse argv: the common options (--ops N, --duration S (or --duration-s),
 * --reps R, --warmup N, --clients N, --busy N, --json, --help) and the
 * program's. --busy N runs N processes that only burn CPU beside the case
 * (from before its warm-up to its end; they die with the program): how
 * the path behaves on a machine whose CPUs are taken by other work. A
 * result measured so gets the param busy = N.
 * Returns 0, 1 when --help was printed (exit 0), -1 on bad usage after
 * printing the reason (exit 2).
 */
int dmce_bench_parse(const dmce_bench_prog_t *p, int argc, char **argv, dmce_bench_opts_t *o);

typedef struct dmce_bench_case {
    /*
     * What is measured: area, bench, impl, params, limit, bytes_per_op
     * (set with dmce_bench_case_init and dmce_perf_param_*); the run fills
     * in reps, warmup, samples and every figure.
     */
    dmce_perf_result_t res;
    unsigned batch; /* ops per latency sample; 0 means 1 */
    void *ctx;      /* passed to the callbacks */
    /* In the process that runs the ops, before the warm-up. May be NULL. */
    int (*setup)(void *ctx, unsigned client);
    /* Untimed, before the warm-up (rep == DMCE_BENCH_WARMUP) and before each
     * repetition, with the most ops it may run. May be NULL. */
    int (*rep_begin)(void *ctx, unsigned rep, uint64_t max_ops);
    /* One op; i counts from 0 in each repetition. Negative: error, stop. */
    int (*op)(void *ctx, uint64_t i);
    /* After the last repetition (also after a failure). May be NULL. */
    void (*teardown)(void *ctx, unsigned client);
    /* Message for a negative return of setup/rep_begin/op; NULL: strerror(-err). */
    const char *(*strerror)(int err);
    /*
     * In the calling process, while the clients run a timed repetition:
     * called again and again until every client is done with it (about
     * every 50 us, or at once when a call took longer). start_ns
     * (dmce_now_ns) is when the repetition was started, the same for every
     * call of one repetition. A case with a tick runs its clients in
     * processes even with --clients 1, so that the tick runs beside them:
     * what happens to the clients while something else is done (a block
     * moved, a daemon killed). Negative: error, the repetition stops (the
     * tick reports it). May be NULL.
     */
    int (*tick)(void *ctx, unsigned rep, uint64_t start_ns);
} dmce_bench_case_t;

/* Zero c and name it (see dmce_perf_result_init). 0 or -EINVAL. */
int dmce_bench_case_init(dmce_bench_case_t *c, const char *area, const char *bench,
                         const char *impl);

/*
 * Run c as o says, fill c->res, print. Returns 0, or the negative error of
 * the first failing callback (already reported on stderr), or -ECHILD when
 * a client process died.
 */
int dmce_bench_run(dmce_bench_case_t *c, const dmce_bench_opts_t *o);

/* Print c->res as one JSON line on stdout. 0 or -EIO. */
int dmce_bench_emit_json(const dmce_perf_result_t *r);

/* Parse a size with an optional K/M/G suffix (powers of 1024) in [min, max]. */
int dmce_bench_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * An option's set callback in one line: s as dmce_bench_parse_size does
 * it, into *out; else "PROG: --NAME: expected MIN..MAX, got 's'" on
 * stderr and -1.
 */
int dmce_bench_opt_size(const char *prog, const char *name, const char *s, uint64_t min,
                        uint64_t max, uint64_t *out);

/*
 * The same for one of n names: *out gets the index of s in names; else
 * "PROG: --NAME: expected a, b or c, got 's'" on stderr and -1.
 */
int dmce_bench_opt_choice(const char *prog, const char *name, const char *s,
                          const char *const *names, unsigned n, unsigned *out);

/*
 * An option's set callback defined in one line, for the common kinds:
 *
 *   DMCE_BENCH_OPT_STR(set_dir, ctx_t, dir)          ctx->dir = the argument
 *   DMCE_BENCH_OPT_SIZE(set_n, "PROG", "n", ctx_t, n, 1, 100)
 *                                                    dmce_bench_opt_size into ctx->n
 *   DMCE_BENCH_OPT_CHOICE(set_op, "PROG", "op", ctx_t, op, "get", "set")
 *                                                    ctx->op (an int) = the index of
 *                                                    the argument among the names
 *
 * Each defines `static int FN(void *user, const char *value)`, user being
 * a CTX_T *, for a dmce_bench_opt_t's set.
 */
#define DMCE_BENCH_OPT_STR(fn, ctx_t, field)                                                       \
    static int fn(void *user, const char *value)                                                   \
    {                                                                                              \
        ((ctx_t *)user)->field = value;                                                            \
        return 0;                                                                                  \
    }
#define DMCE_BENCH_OPT_SIZE(fn, prog, name, ctx_t, field, min, max)                                \
    static int fn(void *user, const char *value)                                                   \
    {                                                                                              \
        return dmce_bench_opt_size(prog, name, value, min, max, &((ctx_t *)user)->field);          \
    }
#define DMCE_BENCH_OPT_CHOICE(fn, prog, name, ctx_t, field, ...)                                   \
    static int fn(void *user, const char *value)                                                   \
    {                                                                                              \
        static const char *const names_[] = {__VA_ARGS__};                                         \
        unsigned k_;                                                                               \
        if (dmce_bench_opt_choice(prog, name, value, names_, sizeof(names_) / sizeof(names_[0]),   \
                                  &k_) < 0)                                                        \
            return -1;                                                                             \
        ((ctx_t *)user)->field = (int)k_;                                                          \
        return 0;                                                                                  \
    }

/*
 * Two cases measured in turns: a's and b's repetitions interleaved (a b,
 * b a, a b, ...), each one run of the frame (dmce_bench_run with --reps 1:
 * its clients, setup and warm-up, untimed), so that whatever else the
 * machine does at a moment falls on both; on a shared 2-vCPU machine a
 * path's latency changes by 50x from one second to the next, and two
 * results measured one after the other would compare two moments. Both
 * results get the median and spread over the repetitions of every
 * figure, and as their curve the median of the repetitions' curves, point
 * by point; with --json both are printed. 0 or the first error.
 */
int dmce_bench_run_pair(dmce_bench_case_t *a, dmce_bench_case_t *b, const dmce_bench_opts_t *o);

/* ---- results a program times itself ------------------------------------------------- */

/* Sleep us microseconds (waiting, not measuring). */
void dmce_bench_sleep_us(unsigned us);

/*
 * h's samples (ns) as one repetition of r: samples, p50, p99, p99.9 and
 * the curve (whose last point, percentile 100, is the exact maximum).
 */
void dmce_bench_result_latency(dmce_perf_result_t *r, const dmce_hist_t *h);

/*
 * Per repetition i, bytes[i] moved in secs[i] seconds, one op being
 * op_bytes: r gets ops/s and GB/s (median and spread), bytes_per_op, one
 * sample per repetition.
 */
void dmce_bench_result_rates(dmce_perf_result_t *r, const double *bytes, const double *secs,
                             unsigned reps, double op_bytes);

/* With --json, r as one JSON line on stdout. 0, or -EIO (reported on stderr). */
int dmce_bench_emit(const dmce_bench_opts_t *o, const dmce_perf_result_t *r);

/*
 * memcpy of n bytes from src, reps times, each timed into secs[i]: into
 * dst (fresh 0; one untimed copy first, so both buffers are touched), or
 * (fresh 1) into a new memfd mapping each time, paying every page's first
 * touch as a new shm object does. 0 or a negative errno.
 */
int dmce_bench_memcpy(const unsigned char *src, unsigned char *dst, uint64_t n, int fresh,
                      unsigned reps, double *secs);

/* ---- dmce clients and clusters ---------------------------------------------------------- */

/*
 * A client of the daemons in runtime_dir (dmce_connect with flags) set up
 * with no reservation (dmce_setup with amount 0), as most benchmarks use
 * one. 0, or the failing call's error with *what naming it
 * ("dmce_connect", "dmce_setup"; nothing printed) and *out NULL: nothing
 * is left to release. Blocks.
 */
int dmce_bench_client(const char *runtime_dir, unsigned flags, dmce_client_t **out,
                      const char **what);

/*
 * dmce_disconnect(*c) when *c is not NULL, then *c = NULL; an error is
 * printed ("PROG: client N: dmce_disconnect: ...", without "client N: "
 * when client < 0) and returned.
 */
int dmce_bench_disconnect(const char *prog, int client, dmce_client_t **c);

/*
 * Poll the daemons' stats (every millisecond, at most max_s seconds) until
 * their prefault threads have nothing left to fault in; *waited (may be
 * NULL) gets the seconds waited. -ETIMEDOUT (printed, with what is left),
 * or dmce_stats' error. Blocks.
 */
int dmce_bench_wait_prefault(dmce_client_t *c, const char *prog, double max_s, double *waited);

/*
 * s shows `daemons` live daemons, at least min_blocks blocks and, when the
 * dispatcher mirrors, two copies of every block and none being copied.
 */
int dmce_bench_cluster_healthy(const dmce_cluster_stats_t *s, unsigned daemons,
                               uint64_t min_blocks);

/* One stderr line "PROG: WHAT: N daemons alive, ...; N blocks: ..." */
void dmce_bench_print_cluster(const char *prog, const char *what, const dmce_cluster_stats_t *s);

/*
 * Poll the dispatcher of observer (every 2 ms, at most ms) until the
 * cluster is healthy as above; the last stats in *out (may be NULL).
 * -ENOTSUP when no dispatcher serves runtime_dir (named in the message),
 * -ETIMEDOUT (the cluster's state is printed). Blocks.
 */
int dmce_bench_wait_cluster(dmce_client_t *observer, const char *prog, const char *runtime_dir,
                            unsigned daemons, uint64_t min_blocks, unsigned ms,
                            dmce_cluster_stats_t *out);

/* ---- processes a benchmark starts (daemons) -------------------------------------------- */

/*
 * Start argv[0] (a path) with argv (NULL-terminated) as a child of the
 * calling thread: stdin and stdout on /dev/null, stderr appended to log
 * (NULL: /dev/null), and SIGTERM when the thread that called this dies
 * (PR_SET_PDEATHSIG), so that a benchmark killed by perf/run's timeout
 * takes the daemons it started with it. Output buffered in stdio is
 * flushed first. *pid: the child, which the caller owns and reaps
 * (dmce_bench_stop_child). 0, or a negative errno (fork's). Does not wait
 * for the program to start: an exec failure is exit status 127.
 */
int dmce_bench_spawn(char *const *argv, const char *log, pid_t *pid);

/*
 * End child pid: send sig (SIGTERM to let it clean up, SIGKILL to kill
 * it), wait up to ms for it to exit, then SIGKILL and wait for it. Reaps
 * it; *status (may be NULL) gets its wait status. 0, -ETIMEDOUT when it
 * had to be killed after ms, or waitpid's error. Blocks.
 */
int dmce_bench_stop_child(pid_t pid, int sig, unsigned ms, int *status);

#endif /* DMCE_PERF_BENCH_H */
