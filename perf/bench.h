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
 * calling process.
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

#include "report.h"

#define DMCE_BENCH_MAX_CLIENTS 64
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
 * --reps R, --warmup N, --clients N, --json, --help) and the program's.
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

#endif /* DMCE_PERF_BENCH_H */
