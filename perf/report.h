/*
 * report.h - the perf harness's result model, its JSON form, and the
 * reports made from it (docs/perf.md).
 *
 * Every benchmark program prints one JSON object per result on a line of
 * its own (JSON lines). dmce-perf-report reads those lines, adds what it
 * knows about the machine and the run, and writes results.json; it renders
 * report.md (one table per area, each dmce figure beside its limit and its
 * peers with the ratio), the plot data for gnuplot, and the comparison of
 * two result files. All of that lives here so that the benchmarks, the
 * tool and the unit tests share one implementation.
 *
 * Pieces:
 *   - dmce_jw_*: a streaming JSON writer (escaping, commas, optional
 *     indentation down to a given depth, non-finite numbers as null);
 *   - dmce_json_*: a strict JSON reader (RFC 8259 grammar, UTF-8 escapes,
 *     duplicate keys and trailing bytes rejected, depth bounded). It is
 *     general, but it is only ever fed what dmce_jw_* wrote, results.json
 *     files, and hand-written test input;
 *   - dmce_perf_result_t / dmce_perf_run_t: the result model, fixed-size
 *     fields (no ownership questions), with its JSON form;
 *   - dmce_perf_stat_from: median and spread (min, max) over repetitions;
 *   - dmce_perf_render_*: Markdown; dmce_perf_compare: before/after;
 *   - dmce_perf_plot: gnuplot data files and script.
 *
 * Missing figures are "not present" (stat.present == 0), written as null
 * in JSON and "-" in Markdown: a table never shows a number that was not
 * measured in this run.
 *
 * Errors: functions return 0 or a negative errno (-EINVAL for bad input,
 * -ENOMEM, -EIO for a failed write) and, where they take err/errlen, put a
 * one-line message there. Nothing here is thread-safe or needs to be.
 */
#ifndef DMCE_PERF_REPORT_H
#define DMCE_PERF_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- JSON writer ------------------------------------------------------- */

#define DMCE_JSON_MAX_DEPTH 32

typedef struct dmce_jw {
    FILE *f;
    unsigned pretty_depth; /* newline + indent before items at depth <= this; 0 = one line */
    unsigned depth;
    unsigned char has_item[DMCE_JSON_MAX_DEPTH + 1]; /* an item was written at this depth */
    unsigned char is_obj[DMCE_JSON_MAX_DEPTH + 1];   /* the container at this depth is {} */
    int after_key;
    int err; /* first error: -EINVAL (misuse), -EIO (write failed) */
} dmce_jw_t;

void dmce_jw_init(dmce_jw_t *w, FILE *f, unsigned pretty_depth);
void dmce_jw_obj_begin(dmce_jw_t *w);
void dmce_jw_obj_end(dmce_jw_t *w);
void dmce_jw_arr_begin(dmce_jw_t *w);
void dmce_jw_arr_end(dmce_jw_t *w);
void dmce_jw_key(dmce_jw_t *w, const char *key);
void dmce_jw_str(dmce_jw_t *w, const char *s);
/* A number with up to 10 significant digits; NaN and infinities as null. */
void dmce_jw_num(dmce_jw_t *w, double v);
void dmce_jw_int(dmce_jw_t *w, int64_t v);
void dmce_jw_bool(dmce_jw_t *w, int v);
void dmce_jw_null(dmce_jw_t *w);
/* 0 when every container was closed and every write succeeded, else w->err. */
int dmce_jw_finish(dmce_jw_t *w);

/* ---- JSON reader ------------------------------------------------------- */

typedef enum {
    DMCE_JSON_NULL,
    DMCE_JSON_BOOL,
    DMCE_JSON_NUM,
    DMCE_JSON_STR,
    DMCE_JSON_ARR,
    DMCE_JSON_OBJ,
} dmce_json_type_t;

typedef struct dmce_json dmce_json_t;
struct dmce_json {
    dmce_json_type_t type;
    int b;              /* BOOL */
    double num;         /* NUM */
    char *str;          /* STR: NUL-terminated UTF-8 (\u0000 is rejected) */
    size_t n;           /* ARR, OBJ: number of items */
    dmce_json_t *items; /* ARR, OBJ: values */
    char **keys;        /* OBJ: keys, in input order */
};

/*
 * Parse exactly one JSON value from text[0..len) (surrounding white space
 * allowed, nothing else). On success *out owns heap memory: release it with
 * dmce_json_free. On failure *out is left as null and err says where.
 */
int dmce_json_parse(const char *text, size_t len, dmce_json_t *out, char *err, size_t errlen);
void dmce_json_free(dmce_json_t *v);
/* The value of key in an object, or NULL (also when v is not an object). */
const dmce_json_t *dmce_json_get(const dmce_json_t *v, const char *key);

/* ---- result model ------------------------------------------------------ */

#define DMCE_PERF_NAME_MAX 48
#define DMCE_PERF_TEXT_MAX 128
#define DMCE_PERF_MAX_PARAMS 8
#define DMCE_PERF_MAX_REPS 100
#define DMCE_PERF_MAX_CURVE 24

/* A figure over repetitions: median and spread. present 0: not measured. */
typedef struct dmce_perf_stat {
    int present;
    double median, min, max;
} dmce_perf_stat_t;

/* A benchmark parameter: a number or a string. */
typedef struct dmce_perf_param {
    char key[DMCE_PERF_NAME_MAX];
    int is_num;
    double num;
    char str[DMCE_PERF_NAME_MAX];
} dmce_perf_param_t;

/*
 * One benchmark result. (area, bench, params) name what was measured;
 * impl names who did it: "dmce", "limit" (the machine, measured by us), or
 * a peer ("redis", "memcached", "redis-benchmark"). Results with the same
 * area, bench and params are comparable and share a row in the report.
 * limit, when set, is the key (dmce_perf_result_key) of a result that
 * bounds this one: in area "limits" (e.g. "unix_rtt[size=64]"), else an
 * impl "limit" of this result's own area (e.g. "remap[pages=4k,window=4M]").
 * When unset, an impl "limit" of the same area, bench and params is the
 * limit.
 */
typedef struct dmce_perf_result {
    char area[DMCE_PERF_NAME_MAX];
    char bench[DMCE_PERF_NAME_MAX];
    char impl[DMCE_PERF_NAME_MAX];
    char limit[DMCE_PERF_TEXT_MAX];
    char note[DMCE_PERF_TEXT_MAX];
    dmce_perf_param_t params[DMCE_PERF_MAX_PARAMS];
    unsigned nparams;
    unsigned reps;                        /* timed repetitions */
    uint64_t warmup;                      /* untimed ops before them (per client) */
    uint64_t samples[DMCE_PERF_MAX_REPS]; /* latency samples per repetition */
    double bytes_per_op;                  /* 0: no GB/s figure */
    dmce_perf_stat_t ops_per_s, gb_per_s, p50_us, p99_us, p999_us;
    /*
     * Several client processes only (not present otherwise): per repetition,
     * the slowest and the fastest client's ops/s (its ops over its own timed
     * loop) and fair_min = the ops of the client that did fewest, divided by
     * a fair share (all ops / clients): 1 is perfectly fair, near 0 means a
     * client starved. Median and spread over the repetitions.
     */
    dmce_perf_stat_t client_min_ops_per_s, client_max_ops_per_s, fair_min;
    /* Latency distribution over all repetitions: percentile -> us. */
    unsigned ncurve;
    double curve_pct[DMCE_PERF_MAX_CURVE];
    double curve_us[DMCE_PERF_MAX_CURVE];
} dmce_perf_result_t;

/*
 * Zero r and set its names. area, bench and impl are 1..47 characters of
 * [A-Za-z0-9_.+-] (they become file names and table keys): -EINVAL if not.
 */
int dmce_perf_result_init(dmce_perf_result_t *r, const char *area, const char *bench,
                          const char *impl);

/* Median, min and max of the finite values among v[0..n); present = any. */
void dmce_perf_stat_from(dmce_perf_stat_t *s, const double *v, size_t n);

/* Set a parameter (replacing one of the same key). 0, -EINVAL, -ENOSPC. */
int dmce_perf_param_num(dmce_perf_result_t *r, const char *key, double v);
int dmce_perf_param_str(dmce_perf_result_t *r, const char *key, const char *v);
/* The parameter named key, or NULL. */
const dmce_perf_param_t *dmce_perf_param_get(const dmce_perf_result_t *r, const char *key);

/*
 * "bench[k=v,k=v]" with params sorted by key ("bench" when none): the
 * identity of what was measured, without area and impl. Returns the length
 * or -ENOSPC.
 */
int dmce_perf_result_key(const dmce_perf_result_t *r, char *buf, size_t len);

/* One result as one JSON object (no newline). */
void dmce_perf_result_write(const dmce_perf_result_t *r, dmce_jw_t *w);
/* Back from its JSON form; unknown keys are ignored, wrong types are errors. */
int dmce_perf_result_from_json(const dmce_json_t *v, dmce_perf_result_t *r, char *err,
                               size_t errlen);

#define DMCE_PERF_MAX_PEERS 8
#define DMCE_PERF_MAX_FAILURES 64

typedef struct dmce_perf_peer {
    char name[DMCE_PERF_NAME_MAX];
    int found;
    char version[DMCE_PERF_NAME_MAX];
} dmce_perf_peer_t;

/* One harness run: the machine, how it was run, and every result. */
typedef struct dmce_perf_run {
    char cpu_model[DMCE_PERF_TEXT_MAX];
    unsigned nproc;
    uint64_t memory_bytes;
    char kernel[DMCE_PERF_TEXT_MAX];
    unsigned numa_nodes;
    char commit[DMCE_PERF_NAME_MAX]; /* "unknown" when not in git */
    char date[DMCE_PERF_NAME_MAX];   /* UTC, ISO 8601 */
    char mode[DMCE_PERF_NAME_MAX];   /* quick, full, ... */
    double seconds;                  /* wall time of the whole run; 0 unknown */
    dmce_perf_peer_t peers[DMCE_PERF_MAX_PEERS];
    unsigned npeers;
    char failures[DMCE_PERF_MAX_FAILURES][DMCE_PERF_TEXT_MAX]; /* benchmarks that gave no result */
    unsigned nfailures;
    dmce_perf_result_t *results; /* owned; dmce_perf_run_free */
    size_t nresults, cap;
} dmce_perf_run_t;

void dmce_perf_run_init(dmce_perf_run_t *run);
void dmce_perf_run_free(dmce_perf_run_t *run);
int dmce_perf_run_add(dmce_perf_run_t *run, const dmce_perf_result_t *r);
/* Fill cpu_model, nproc, memory_bytes, kernel, numa_nodes from this host. */
void dmce_perf_machine_probe(dmce_perf_run_t *run);

/*
 * Read JSON lines (one result object per line; blank lines skipped) and
 * add every result to run. name is for messages. A line that is not a
 * valid result is an error (message names the line).
 */
int dmce_perf_read_lines(dmce_perf_run_t *run, FILE *f, const char *name, char *err, size_t errlen);
/* results.json: write, and load (the whole file). */
int dmce_perf_run_write(const dmce_perf_run_t *run, FILE *f);
int dmce_perf_run_load(dmce_perf_run_t *run, const char *path, char *err, size_t errlen);

/* ---- reports ----------------------------------------------------------- */

/*
 * Markdown: the ratio table of one area. One row per (bench, params) and
 * dmce variant (impl "dmce" or "dmce-*", e.g. "dmce-mapped"; the variant
 * is named in the row); columns: that dmce figure, its limit (the result
 * its limit field names, or the same row's impl "limit") and every other
 * impl seen in the area, each with "ops/s, p50" and the ratio dmce/X of
 * ops/s (>1: dmce does more per second). A missing figure is "-", never a
 * guess. No dmce result in the area: nothing printed. Returns the number
 * of rows.
 */
int dmce_perf_render_ratio_table(const dmce_perf_run_t *run, const char *area, FILE *f);
/*
 * Markdown: the bandwidth table of one area. One row per result moving at
 * least 1 MiB per op (dmce and the references, not the limits) whose limit
 * was measured with a GB/s figure: its GB/s (median, min..max), the
 * limit's, the ratio of the medians, and the result's note. No such
 * result: nothing printed. Returns the number of rows.
 */
int dmce_perf_render_bw_table(const dmce_perf_run_t *run, const char *area, FILE *f);
/* Markdown: every result of an area with samples, percentiles and spread. */
int dmce_perf_render_detail_table(const dmce_perf_run_t *run, const char *area, FILE *f);
/*
 * The whole report.md: per area the ratio table, the bandwidth table and
 * the detail table. plots (may be NULL) lists PNG names to link.
 */
int dmce_perf_render_md(const dmce_perf_run_t *run, const char *const *plots, size_t nplots,
                        FILE *f);

/*
 * Before/after of two runs, matched by (area, impl, key): ops/s and p50 of
 * both with the change in %. Results only in one run are listed. Returns
 * the number of matched results.
 */
int dmce_perf_compare(const dmce_perf_run_t *a, const dmce_perf_run_t *b, FILE *f);

/* ---- targets ----------------------------------------------------------- */

/*
 * A target is a condition on figures of one run, read from a text file
 * (perf/targets): one target per line, '#' starts a comment,
 *
 *   AREA  FIG:IMPL:KEY  [/ FIG:IMPL:KEY]  OP  VALUE  TEXT...
 *
 * FIG is ops (ops/s), p50, p99, p999 (us) or fair (fair_min); KEY is a
 * result key (dmce_perf_result_key, e.g. get[clients=1,size=64]) of AREA;
 * with "/ ..." the figure is the ratio of the two; OP is >=, >, <= or <.
 * Every figure is the median over the repetitions. TEXT says what the
 * target is and where it comes from (e.g. "issue 5: ...").
 */
#define DMCE_PERF_MAX_TARGETS 64

typedef enum {
    DMCE_PERF_FIG_OPS,
    DMCE_PERF_FIG_P50,
    DMCE_PERF_FIG_P99,
    DMCE_PERF_FIG_P999,
    DMCE_PERF_FIG_FAIR,
} dmce_perf_fig_t;

typedef struct dmce_perf_figref {
    dmce_perf_fig_t fig;
    char impl[DMCE_PERF_NAME_MAX];
    char key[DMCE_PERF_TEXT_MAX];
} dmce_perf_figref_t;

typedef struct dmce_perf_target {
    char area[DMCE_PERF_NAME_MAX];
    dmce_perf_figref_t num, den; /* den used when has_den */
    int has_den;
    char op[3]; /* ">=", ">", "<=", "<" */
    double value;
    char text[DMCE_PERF_TEXT_MAX];
} dmce_perf_target_t;

typedef struct dmce_perf_targets {
    dmce_perf_target_t t[DMCE_PERF_MAX_TARGETS];
    unsigned n;
} dmce_perf_targets_t;

/* Read a targets file; name is for messages ("FILE:LINE: ..."). 0, -EINVAL, -ENOSPC. */
int dmce_perf_targets_read(dmce_perf_targets_t *t, FILE *f, const char *name, char *err,
                           size_t errlen);

/* What a target gave in a run. */
typedef enum {
    DMCE_PERF_TARGET_MET,
    DMCE_PERF_TARGET_NOT_MET,
    DMCE_PERF_TARGET_NOT_MEASURED, /* a figure it needs is missing */
} dmce_perf_verdict_t;

/* Evaluate one target; *value (may be NULL) gets the figure or the ratio. */
dmce_perf_verdict_t dmce_perf_target_eval(const dmce_perf_run_t *run, const dmce_perf_target_t *t,
                                          double *value);

/*
 * Markdown: the targets of one area (area NULL: all; targets of areas with
 * no result in the run are left out), one row each: what,
 * the measured figure (a ratio with both of its figures), what is needed,
 * and met / NOT met / not measured. Nothing printed when there is none.
 * Returns the number of rows; *met and *not_met (may be NULL) get counts.
 */
int dmce_perf_render_targets(const dmce_perf_run_t *run, const dmce_perf_targets_t *t,
                             const char *area, FILE *f, unsigned *met, unsigned *not_met);

/*
 * Markdown: the client table of one area: every result with the per-client
 * figures (several client processes): total ops/s, slowest and fastest
 * client's ops/s, fair_min, p50 and p99. Nothing printed when there is
 * none. Returns the number of rows.
 */
int dmce_perf_render_clients_table(const dmce_perf_run_t *run, const char *area, FILE *f);

/* dmce_perf_render_md with the targets (may be NULL) at the head of each area. */
int dmce_perf_render_md_targets(const dmce_perf_run_t *run, const char *const *plots, size_t nplots,
                                const dmce_perf_targets_t *targets, FILE *f);

/*
 * Gnuplot input in dir: one data file per plot and plots.gp, which draws
 * every PNG when run in dir. Latency: one percentile curve per result
 * (one-client results when there are others), one plot per (area, bench),
 * or per (area, bench, size) in areas with dmce results so that each plot
 * compares dmce with its peers at one size. Scaling: ops/s against
 * clients, GB/s (or ops/s) against size, one line per series (same impl
 * and other params), when a series has >= 3 points.
 * The PNG names go to names[0..max) (heap strings; the caller frees);
 * returns how many, or a negative errno.
 */
int dmce_perf_plot(const dmce_perf_run_t *run, const char *dir, char **names, size_t max);

/*
 * redis-benchmark --csv output (one file per repetition) for one test
 * ("GET", "SET") into a result: ops/s and p50/p99 from each file, median
 * and spread over the files. p99.9 is not given by redis-benchmark: not
 * present. samples[i] = ops (from the caller, redis-benchmark -n).
 */
int dmce_perf_import_redis_csv(FILE *const *files, size_t nfiles, const char *test, uint64_t ops,
                               dmce_perf_result_t *r, char *err, size_t errlen);

#endif /* DMCE_PERF_REPORT_H */
