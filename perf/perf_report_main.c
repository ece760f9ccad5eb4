/*
 * perf_report_main.c - dmce-perf-report: results.json, report.md, plots
 * and comparisons from the JSON lines the benchmarks print. All the work
 * is in report.c; this file is argument handling.
 *
 *   dmce-perf-report merge --out results.json [--mode M] [--commit C]
 *       [--seconds S] [--peer NAME=VERSION]... [--peer-missing NAME]...
 *       [--failure TEXT]... FILE.jsonl...
 *   dmce-perf-report render results.json [--png NAME]... [--targets FILE]
 *                                                          (Markdown on stdout)
 *   dmce-perf-report targets results.json FILE             (targets table on stdout)
 *   dmce-perf-report plot results.json DIR                 (PNG names on stdout)
 *   dmce-perf-report compare BEFORE.json AFTER.json
 *   dmce-perf-report check results.json                    (exit 1: failures, peers missing)
 *   dmce-perf-report redis-csv --test GET --bench get --size N --clients C --ops N
 *       [--pipeline P] FILE.csv...                         (one JSON line on stdout)
 *
 * Exit status: 0 ok, 1 failure (message on stderr), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report.h"

#define PROG "dmce-perf-report"

static void usage(FILE *f)
{
    fprintf(f, "usage:\n"
               "  " PROG " merge --out FILE [--mode M] [--commit C] [--seconds S]\n"
               "        [--peer NAME=VERSION]... [--peer-missing NAME]... [--failure TEXT]... "
               "JSONL...\n"
               "  " PROG " render RESULTS.json [--png NAME]... [--targets FILE]\n"
               "  " PROG " targets RESULTS.json FILE\n"
               "  " PROG " plot RESULTS.json DIR\n"
               "  " PROG " compare BEFORE.json AFTER.json\n"
               "  " PROG " check RESULTS.json\n"
               "  " PROG " redis-csv --test GET|SET --bench NAME --size N --clients N --ops N\n"
               "        [--pipeline P] CSV...\n");
}

static int load(const char *path, dmce_perf_run_t *run)
{
    char err[512];
    if (dmce_perf_run_load(run, path, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        return -1;
    }
    return 0;
}

static int add_peer(dmce_perf_run_t *run, const char *name, int found, const char *version)
{
    if (run->npeers == DMCE_PERF_MAX_PEERS || strlen(name) >= DMCE_PERF_NAME_MAX ||
        strlen(version) >= DMCE_PERF_NAME_MAX) {
        fprintf(stderr, PROG ": too many peers, or a name or version too long: %s\n", name);
        return -1;
    }
    dmce_perf_peer_t *p = &run->peers[run->npeers++];
    strcpy(p->name, name);
    strcpy(p->version, version);
    p->found = found;
    return 0;
}

static int cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},     {"mode", required_argument, NULL, 'm'},
        {"commit", required_argument, NULL, 'c'},  {"seconds", required_argument, NULL, 's'},
        {"peer", required_argument, NULL, 'p'},    {"peer-missing", required_argument, NULL, 'P'},
        {"failure", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0},
    };
    dmce_perf_run_t run;
    dmce_perf_run_init(&run);
    dmce_perf_machine_probe(&run);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(run.date, sizeof(run.date), "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *out = NULL;
    int c, ret = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'm': snprintf(run.mode, sizeof(run.mode), "%s", optarg); break;
        case 'c': snprintf(run.commit, sizeof(run.commit), "%s", optarg); break;
        case 's': run.seconds = strtod(optarg, NULL); break;
        case 'p': {
            char name[DMCE_PERF_NAME_MAX];
            const char *eq = strchr(optarg, '=');
            size_t n = eq ? (size_t)(eq - optarg) : strlen(optarg);
            if (n == 0 || n >= sizeof(name)) {
                fprintf(stderr, PROG ": --peer: expected NAME=VERSION, got '%s'\n", optarg);
                goto out;
            }
            memcpy(name, optarg, n);
            name[n] = '\0';
            if (add_peer(&run, name, 1, eq ? eq + 1 : "") < 0)
                goto out;
            break;
        }
        case 'P':
            if (add_peer(&run, optarg, 0, "") < 0)
                goto out;
            break;
        case 'f':
            if (run.nfailures < DMCE_PERF_MAX_FAILURES)
                snprintf(run.failures[run.nfailures++], DMCE_PERF_TEXT_MAX, "%s", optarg);
            break;
        default:
            usage(stderr);
            ret = 2;
            goto out;
        }
    }
    if (!out) {
        fprintf(stderr, PROG " merge: --out is required\n");
        ret = 2;
        goto out;
    }
    for (int i = optind; i < argc; i++) {
        FILE *f = fopen(argv[i], "r");
        if (!f) {
            fprintf(stderr, PROG ": %s: %s\n", argv[i], strerror(errno));
            goto out;
        }
        char err[512];
        int rc = dmce_perf_read_lines(&run, f, argv[i], err, sizeof(err));
        fclose(f);
        if (rc < 0) {
            fprintf(stderr, PROG ": %s\n", err);
            goto out;
        }
    }
    /* Write to a temporary file and rename: a reader never sees half a file. */
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", tmp, strerror(errno));
        goto out;
    }
    int rc = dmce_perf_run_write(&run, f);
    if (fclose(f) != 0 && rc == 0)
        rc = -EIO;
    if (rc < 0 || rename(tmp, out) < 0) {
        fprintf(stderr, PROG ": writing %s failed\n", out);
        remove(tmp);
        goto out;
    }
    fprintf(stderr, PROG ": %zu results -> %s\n", run.nresults, out);
    ret = 0;
out:
    dmce_perf_run_free(&run);
    return ret;
}

/* Read a targets file into *t (heap: the caller frees). */
static dmce_perf_targets_t *load_targets(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
        return NULL;
    }
    dmce_perf_targets_t *t = malloc(sizeof(*t));
    char err[512];
    if (!t) {
        fprintf(stderr, PROG ": out of memory\n");
    } else if (dmce_perf_targets_read(t, f, path, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        free(t);
        t = NULL;
    }
    fclose(f);
    return t;
}

static int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {{"png", required_argument, NULL, 'p'},
                                         {"targets", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *pngs[256], *targets_path = NULL;
    size_t npng = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 't') {
            targets_path = optarg;
            continue;
        }
        if (c != 'p' || npng == sizeof(pngs) / sizeof(pngs[0])) {
            usage(stderr);
            return 2;
        }
        pngs[npng++] = optarg;
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return 2;
    }
    dmce_perf_targets_t *targets = NULL;
    if (targets_path && !(targets = load_targets(targets_path)))
        return 1;
    dmce_perf_run_t run;
    if (load(argv[optind], &run) < 0) {
        free(targets);
        return 1;
    }
    int rc = dmce_perf_render_md_targets(&run, pngs, npng, targets, stdout);
    dmce_perf_run_free(&run);
    free(targets);
    return rc < 0 || fflush(stdout) != 0 ? 1 : 0;
}

/* Every target with its verdict; the exit status does not depend on them. */
static int cmd_targets(int argc, char **argv)
{
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    dmce_perf_targets_t *targets = load_targets(argv[optind + 1]);
    if (!targets)
        return 1;
    dmce_perf_run_t run;
    if (load(argv[optind], &run) < 0) {
        free(targets);
        return 1;
    }
    unsigned met = 0, not_met = 0;
    dmce_perf_render_targets(&run, targets, NULL, stdout, &met, &not_met);
    printf("%u of %u targets met\n", met, met + not_met);
    dmce_perf_run_free(&run);
    free(targets);
    return fflush(stdout) != 0 ? 1 : 0;
}

static int cmd_plot(int argc, char **argv)
{
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    dmce_perf_run_t run;
    if (load(argv[optind], &run) < 0)
        return 1;
    char *names[256];
    int n = dmce_perf_plot(&run, argv[optind + 1], names, sizeof(names) / sizeof(names[0]));
    dmce_perf_run_free(&run);
    if (n < 0) {
        fprintf(stderr, PROG ": plot data in %s: %s\n", argv[optind + 1], strerror(-n));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        printf("%s\n", names[i]);
        free(names[i]);
    }
    return 0;
}

static int cmd_compare(int argc, char **argv)
{
    if (argc - optind != 2) {
        usage(stderr);
        return 2;
    }
    dmce_perf_run_t a, b;
    if (load(argv[optind], &a) < 0)
        return 1;
    if (load(argv[optind + 1], &b) < 0) {
        dmce_perf_run_free(&a);
        return 1;
    }
    int n = dmce_perf_compare(&a, &b, stdout);
    dmce_perf_run_free(&a);
    dmce_perf_run_free(&b);
    if (n == 0)
        fprintf(stderr, PROG ": the two files have no benchmark in common\n");
    return n > 0 ? 0 : 1;
}

static int cmd_check(int argc, char **argv)
{
    if (argc - optind != 1) {
        usage(stderr);
        return 2;
    }
    dmce_perf_run_t run;
    if (load(argv[optind], &run) < 0)
        return 1;
    int bad = 0;
    if (run.nresults == 0) {
        fprintf(stderr, PROG ": check: no results at all\n");
        bad = 1;
    }
    for (unsigned i = 0; i < run.nfailures; i++) {
        fprintf(stderr, PROG ": check: no result from %s\n", run.failures[i]);
        bad = 1;
    }
    for (unsigned i = 0; i < run.npeers; i++) {
        if (!run.peers[i].found) {
            fprintf(stderr, PROG ": check: peer %s was not found\n", run.peers[i].name);
            bad = 1;
        }
    }
    if (!bad)
        fprintf(stderr, PROG ": check: %zu results, %u peers found, no failure\n", run.nresults,
                run.npeers);
    dmce_perf_run_free(&run);
    return bad;
}

static int cmd_redis_csv(int argc, char **argv)
{
    static const struct option opts[] = {
        {"test", required_argument, NULL, 't'},
        {"bench", required_argument, NULL, 'b'},
        {"size", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},
        {"ops", required_argument, NULL, 'n'},
        {"pipeline", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    const char *test = NULL, *bench = NULL;
    double size = 0, clients = 1, ops = 0, pipeline = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': test = optarg; break;
        case 'b': bench = optarg; break;
        case 's': size = strtod(optarg, NULL); break;
        case 'c': clients = strtod(optarg, NULL); break;
        case 'n': ops = strtod(optarg, NULL); break;
        case 'P': pipeline = strtod(optarg, NULL); break;
        default: usage(stderr); return 2;
        }
    }
    if (!test || !bench || !(size > 0) || !(clients >= 1) || !(ops >= 1) || !(pipeline >= 1) ||
        optind >= argc) {
        fprintf(stderr, PROG " redis-csv: --test, --bench, --size, --clients, --ops and at least "
                             "one CSV file are required\n");
        return 2;
    }
    dmce_perf_result_t r;
    if (dmce_perf_result_init(&r, "msmp", bench, "redis-benchmark") < 0) {
        fprintf(stderr, PROG " redis-csv: bad --bench name '%s'\n", bench);
        return 2;
    }
    dmce_perf_param_num(&r, "size", size);
    dmce_perf_param_num(&r, "clients", clients);
    if (pipeline > 1)
        dmce_perf_param_num(&r, "pipeline", pipeline);
    r.bytes_per_op = size;
    snprintf(r.note, sizeof(r.note), "redis-benchmark -t %s over the Unix socket", test);
    size_t nfiles = (size_t)(argc - optind);
    FILE *files[DMCE_PERF_MAX_REPS];
    if (nfiles > DMCE_PERF_MAX_REPS) {
        fprintf(stderr, PROG " redis-csv: at most %d files\n", DMCE_PERF_MAX_REPS);
        return 2;
    }
    int ret = 1;
    size_t opened = 0;
    for (; opened < nfiles; opened++) {
        files[opened] = fopen(argv[optind + (int)opened], "r");
        if (!files[opened]) {
            fprintf(stderr, PROG ": %s: %s\n", argv[optind + (int)opened], strerror(errno));
            goto out;
        }
    }
    char err[256];
    if (dmce_perf_import_redis_csv(files, nfiles, test, (uint64_t)ops, &r, err, sizeof(err)) < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        goto out;
    }
    dmce_jw_t w;
    dmce_jw_init(&w, stdout, 0);
    dmce_perf_result_write(&r, &w);
    putchar('\n');
    ret = dmce_jw_finish(&w) < 0 ? 1 : 0;
out:
    for (size_t i = 0; i < opened; i++)
        fclose(files[i]);
    return ret;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* getopt_long on the subcommand's arguments: argv[1] plays argv[0]. */
    argc--;
    argv++;
    optind = 1;
    if (strcmp(cmd, "merge") == 0)
        return cmd_merge(argc, argv);
    if (strcmp(cmd, "render") == 0)
        return cmd_render(argc, argv);
    if (strcmp(cmd, "targets") == 0)
        return cmd_targets(argc, argv);
    if (strcmp(cmd, "plot") == 0)
        return cmd_plot(argc, argv);
    if (strcmp(cmd, "compare") == 0 || strcmp(cmd, "--compare") == 0)
        return cmd_compare(argc, argv);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc, argv);
    if (strcmp(cmd, "redis-csv") == 0)
        return cmd_redis_csv(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, PROG ": unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
