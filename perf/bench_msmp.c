/*
 * bench_msmp.c - dmce-bench-msmp: latency and throughput of one client
 * doing dmce_read or dmce_write on one allocation, over MSMP.
 *
 * Uses only the public client API (dmce/client.h) plus the runtime's
 * histogram (hist.h). One process, one thread, one connection: the same
 * shape as `redis-benchmark -c 1`, which perf/run-msmp-bench.sh runs beside
 * it.
 *
 *   connect -> dmce_setup(16 MiB) -> dmce_malloc(--size) -> write a pattern
 *   and read it back (sanity check) -> --warmup untimed ops -> --reps
 *   repetitions of the timed loop -> free -> disconnect.
 *
 * Timed loop: each op is bracketed by two CLOCK_MONOTONIC reads and its
 * latency recorded in a dmce_hist_t (relative error <= 1/256). A
 * repetition stops after --ops ops or --duration-s seconds, whichever
 * comes first; its ops/s is ops done / wall time of the loop (the clock
 * reads are included, about 20-40 ns per op).
 *
 * Report: per repetition ops/s, p50, p99, p99.9 (us); then the median of
 * each over the repetitions and the spread of ops/s (min..max). Medians
 * over repetitions rather than one merged histogram, so that one noisy
 * repetition cannot move the summary. With --json, stdout gets exactly
 * one JSON object (one line) and the human-readable lines go to stderr.
 *
 * Exit status: 0 on success, 1 on any dmce failure (message from
 * dmce_strerror), 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dmce/client.h>
#include <dmce/error.h>

#include "hist.h"

#define PROG "dmce-bench-msmp"
#define SETUP_BYTES (UINT64_C(16) << 20)
#define MAX_REPS 1000

typedef enum { OP_READ, OP_WRITE } op_kind_t;

typedef struct options {
    const char *runtime_dir;
    const char *socket;
    uint64_t size;
    uint64_t ops;
    double duration_s;
    uint64_t warmup;
    unsigned reps;
    op_kind_t op;
    int json;
} options_t;

typedef struct rep_result {
    uint64_t ops;
    double seconds;
    double ops_per_s;
    double p50_us, p99_us, p999_us;
} rep_result_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options]\n"
            "  --runtime-dir DIR  connect to every memd-*.sock in DIR (default $DMCE_RUNTIME_DIR)\n"
            "  --socket PATH      or to this one daemon socket\n"
            "  --size BYTES       bytes per op, size of the allocation (default 64)\n"
            "  --ops N            ops per repetition (default 10000)\n"
            "  --duration-s S     at most S seconds per repetition (default 10)\n"
            "  --warmup N         untimed ops before the first repetition (default 1000)\n"
            "  --reps R           repetitions (default 5)\n"
            "  --op read|write    operation (default read)\n"
            "  --json             one JSON object on stdout; human output on stderr\n"
            "  --help\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] == '-' || s[0] == '\0')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        {"runtime-dir", required_argument, NULL, 'r'},
        {"socket", required_argument, NULL, 's'},
        {"size", required_argument, NULL, 'z'},
        {"ops", required_argument, NULL, 'n'},
        {"duration-s", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'w'},
        {"reps", required_argument, NULL, 'R'},
        {"op", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (options_t){
        .size = 64, .ops = 10000, .duration_s = 10.0, .warmup = 1000, .reps = 5, .op = OP_READ};
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': o->runtime_dir = optarg; break;
        case 's': o->socket = optarg; break;
        case 'z':
            if (parse_u64(optarg, 1, SETUP_BYTES, &o->size) < 0) {
                fprintf(stderr, PROG ": --size: expected 1..%llu, got '%s'\n",
                        (unsigned long long)SETUP_BYTES, optarg);
                return -1;
            }
            break;
        case 'n':
            if (parse_u64(optarg, 1, UINT64_C(1) << 40, &o->ops) < 0) {
                fprintf(stderr, PROG ": --ops: expected a positive integer, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'd': {
            char *end;
            errno = 0;
            double d = strtod(optarg, &end);
            if (errno || *end != '\0' || !(d > 0.0) || d > 86400.0) {
                fprintf(stderr, PROG ": --duration-s: expected 0 < S <= 86400, got '%s'\n",
                        optarg);
                return -1;
            }
            o->duration_s = d;
            break;
        }
        case 'w':
            if (parse_u64(optarg, 0, UINT64_C(1) << 40, &o->warmup) < 0) {
                fprintf(stderr, PROG ": --warmup: expected an integer >= 0, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'R':
            if (parse_u64(optarg, 1, MAX_REPS, &v) < 0) {
                fprintf(stderr, PROG ": --reps: expected 1..%d, got '%s'\n", MAX_REPS, optarg);
                return -1;
            }
            o->reps = (unsigned)v;
            break;
        case 'o':
            if (strcmp(optarg, "read") == 0) {
                o->op = OP_READ;
            } else if (strcmp(optarg, "write") == 0) {
                o->op = OP_WRITE;
            } else {
                fprintf(stderr, PROG ": --op: expected read or write, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->runtime_dir && o->socket) {
        fprintf(stderr, PROG ": give --runtime-dir or --socket, not both\n");
        return -1;
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int do_op(dmce_client_t *c, op_kind_t op, dmce_addr_t addr, unsigned char *buf,
                 size_t len)
{
    return op == OP_READ ? dmce_read(c, addr, buf, len) : dmce_write(c, addr, buf, len);
}

static void fail(const char *what, int err)
{
    fprintf(stderr, PROG ": %s: %s (%s)\n", what, dmce_strerror(err), dmce_err_name(err));
}

/* One timed repetition. Returns 0, or the failing op's error. */
static int run_rep(dmce_client_t *c, const options_t *o, dmce_addr_t addr, unsigned char *buf,
                   dmce_hist_t *h, rep_result_t *r)
{
    const uint64_t limit_ns = (uint64_t)(o->duration_s * 1e9);
    dmce_hist_reset(h);
    uint64_t start = now_ns(), t1 = start, done = 0;
    while (done < o->ops && t1 - start < limit_ns) {
        if (o->op == OP_WRITE)
            buf[0] = (unsigned char)done; /* not the same bytes every time */
        uint64_t t0 = now_ns();
        int rc = do_op(c, o->op, addr, buf, (size_t)o->size);
        t1 = now_ns();
        if (rc < 0)
            return rc;
        dmce_hist_record(h, t1 - t0);
        done++;
    }
    r->ops = done;
    r->seconds = (double)(t1 - start) / 1e9;
    r->ops_per_s = r->seconds > 0 ? (double)done / r->seconds : 0.0;
    r->p50_us = (double)dmce_hist_percentile(h, 50.0) / 1e3;
    r->p99_us = (double)dmce_hist_percentile(h, 99.0) / 1e3;
    r->p999_us = (double)dmce_hist_percentile(h, 99.9) / 1e3;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts a copy; n <= MAX_REPS). */
static double median(const double *v, unsigned n)
{
    double tmp[MAX_REPS];
    memcpy(tmp, v, n * sizeof(*v));
    qsort(tmp, n, sizeof(*tmp), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2.0;
}

/* Write a pattern, read it back, compare: the benchmark measures working ops. */
static int sanity_check(dmce_client_t *c, dmce_addr_t addr, unsigned char *buf,
                        unsigned char *back, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 131u + 7u);
    int rc = dmce_write(c, addr, buf, len);
    if (rc < 0) {
        fail("dmce_write (sanity check)", rc);
        return -1;
    }
    memset(back, 0, len);
    rc = dmce_read(c, addr, back, len);
    if (rc < 0) {
        fail("dmce_read (sanity check)", rc);
        return -1;
    }
    if (memcmp(buf, back, len) != 0) {
        fprintf(stderr, PROG ": sanity check: read back differs from what was written\n");
        return -1;
    }
    return 0;
}

static int bench(dmce_client_t *c, const options_t *o)
{
    FILE *human = o->json ? stderr : stdout;
    const char *opname = o->op == OP_READ ? "read" : "write";
    dmce_addr_t addr;
    int rc = dmce_malloc(c, o->size, &addr);
    if (rc < 0) {
        fail("dmce_malloc", rc);
        return -1;
    }
    int ret = -1;
    unsigned char *buf = malloc((size_t)o->size), *back = malloc((size_t)o->size);
    dmce_hist_t *h = malloc(sizeof(*h));
    rep_result_t *res = calloc(o->reps, sizeof(*res));
    double *col = calloc(o->reps, sizeof(*col));
    if (!buf || !back || !h || !res || !col) {
        fail("out of memory", -ENOMEM);
        goto out;
    }
    dmce_hist_init(h);
    if (sanity_check(c, addr, buf, back, (size_t)o->size) < 0)
        goto out;

    for (uint64_t i = 0; i < o->warmup; i++) {
        rc = do_op(c, o->op, addr, buf, (size_t)o->size);
        if (rc < 0) {
            fail(o->op == OP_READ ? "dmce_read (warmup)" : "dmce_write (warmup)", rc);
            goto out;
        }
    }

    fprintf(human, "msmp %s, %llu bytes, %llu ops x %u reps (max %.1f s each), warmup %llu\n",
            opname, (unsigned long long)o->size, (unsigned long long)o->ops, o->reps,
            o->duration_s, (unsigned long long)o->warmup);
    fprintf(human, "%4s %10s %12s %10s %10s %10s\n", "rep", "ops", "ops/s", "p50 us", "p99 us",
            "p99.9 us");
    for (unsigned r = 0; r < o->reps; r++) {
        rc = run_rep(c, o, addr, buf, h, &res[r]);
        if (rc < 0) {
            fail(o->op == OP_READ ? "dmce_read" : "dmce_write", rc);
            goto out;
        }
        fprintf(human, "%4u %10llu %12.0f %10.2f %10.2f %10.2f\n", r + 1,
                (unsigned long long)res[r].ops, res[r].ops_per_s, res[r].p50_us, res[r].p99_us,
                res[r].p999_us);
    }

    double lo = res[0].ops_per_s, hi = res[0].ops_per_s;
    for (unsigned r = 0; r < o->reps; r++) {
        col[r] = res[r].ops_per_s;
        lo = col[r] < lo ? col[r] : lo;
        hi = col[r] > hi ? col[r] : hi;
    }
    double med_ops = median(col, o->reps);
    for (unsigned r = 0; r < o->reps; r++)
        col[r] = res[r].p50_us;
    double med_p50 = median(col, o->reps);
    for (unsigned r = 0; r < o->reps; r++)
        col[r] = res[r].p99_us;
    double med_p99 = median(col, o->reps);
    for (unsigned r = 0; r < o->reps; r++)
        col[r] = res[r].p999_us;
    double med_p999 = median(col, o->reps);

    fprintf(human, "%4s %10s %12.0f %10.2f %10.2f %10.2f   (spread ops/s %.0f..%.0f)\n", "med",
            "", med_ops, med_p50, med_p99, med_p999, lo, hi);

    if (o->json) {
        printf("{\"bench\":\"msmp\",\"op\":\"%s\",\"size\":%llu,\"ops_per_s\":%.1f,"
               "\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"ops_per_s_min\":%.1f,"
               "\"ops_per_s_max\":%.1f,\"ops\":%llu,\"warmup\":%llu,\"reps\":[",
               opname, (unsigned long long)o->size, med_ops, med_p50, med_p99, med_p999, lo, hi,
               (unsigned long long)o->ops, (unsigned long long)o->warmup);
        for (unsigned r = 0; r < o->reps; r++)
            printf("%s%.1f", r ? "," : "", res[r].ops_per_s);
        printf("]}\n");
        fflush(stdout);
    }
    ret = 0;

out:
    rc = dmce_free(c, addr);
    if (rc < 0 && ret == 0) {
        fail("dmce_free", rc);
        ret = -1;
    }
    free(col);
    free(res);
    if (h)
        dmce_hist_destroy(h);
    free(h);
    free(back);
    free(buf);
    return ret;
}

int main(int argc, char **argv)
{
    options_t o;
    if (parse_args(argc, argv, &o) < 0)
        return 2;

    dmce_connect_opts_t copts;
    memset(&copts, 0, sizeof(copts));
    const char *socks[1];
    if (o.socket) {
        socks[0] = o.socket;
        copts.sockets = socks;
        copts.nsockets = 1;
    } else {
        copts.runtime_dir = o.runtime_dir;
    }

    dmce_client_t *c = NULL;
    int rc = dmce_connect(&copts, &c);
    if (rc < 0) {
        const char *where = o.socket        ? o.socket
                            : o.runtime_dir ? o.runtime_dir
                            : getenv("DMCE_RUNTIME_DIR") ? getenv("DMCE_RUNTIME_DIR")
                                                         : "$DMCE_RUNTIME_DIR (unset)";
        fprintf(stderr, PROG ": dmce_connect %s: %s (%s)\n", where, dmce_strerror(rc),
                dmce_err_name(rc));
        return 1;
    }
    rc = dmce_setup(c, SETUP_BYTES, 0, NULL, NULL);
    if (rc < 0) {
        fail("dmce_setup (16 MiB)", rc);
        dmce_disconnect(c);
        return 1;
    }
    int ret = bench(c, &o) < 0 ? 1 : 0;
    rc = dmce_disconnect(c);
    if (rc < 0 && ret == 0) {
        fail("dmce_disconnect", rc);
        ret = 1;
    }
    return ret;
}
