/*
 * test_bench.c - the benchmark frame (perf/bench.c): the --busy option
 * (the CPU-bound processes run while the case runs, the result says so,
 * and none is left behind, also when the case fails); the line probe in
 * each result's note; several client processes, waited for on futexes,
 * through every repetition, and a failing one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "bench.h"

/* Children of this process that have not exited: waitpid(WNOHANG) tells
 * "some, none exited" (0) from "none at all" (ECHILD). */
static int have_children(void)
{
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    return p == 0 ? 1 : (p < 0 && errno == ECHILD) ? 0 : -1;
}

typedef struct busy_ctx {
    int seen;    /* ops that saw the busy processes running */
    int fail_at; /* op index that fails (-1: none) */
} busy_ctx_t;

static int busy_op(void *p, uint64_t i)
{
    busy_ctx_t *x = p;
    if (have_children() == 1)
        x->seen++;
    return (int64_t)i == x->fail_at ? -EIO : 0;
}

static int parse(dmce_bench_opts_t *o, int argc, char **argv)
{
    dmce_bench_prog_t prog = {
        .name = "test-bench", .summary = "t", .ops = 10, .warmup = 0, .reps = 1, .duration_s = 1.0};
    return dmce_bench_parse(&prog, argc, argv, o);
}

static void test_busy_option_parses(void **state)
{
    (void)state;
    dmce_bench_opts_t o;
    char *a0[] = {"t", NULL};
    assert_int_equal(parse(&o, 1, a0), 0);
    assert_int_equal(o.busy, 0);
    char *a1[] = {"t", "--busy", "3", NULL};
    assert_int_equal(parse(&o, 3, a1), 0);
    assert_int_equal(o.busy, 3);
    char *a2[] = {"t", "--busy", "17", NULL}; /* over DMCE_BENCH_MAX_BUSY */
    assert_int_equal(parse(&o, 3, a2), -1);
    char *a3[] = {"t", "--busy", "-1", NULL};
    assert_int_equal(parse(&o, 3, a3), -1);
}

/* Options from argv, human output to /dev/null (the caller closes o->human). */
static void quiet_opts(dmce_bench_opts_t *o, int argc, char **argv)
{
    assert_int_equal(parse(o, argc, argv), 0);
    o->human = fopen("/dev/null", "w");
    assert_non_null(o->human);
}

static void run_busy(unsigned busy, int fail_at, int want_rc)
{
    dmce_bench_opts_t o;
    char *a[] = {"t", "--ops", "200", "--reps", "2", "--warmup", "0", NULL};
    quiet_opts(&o, 7, a);
    o.busy = busy;
    busy_ctx_t x = {.fail_at = fail_at};
    dmce_bench_case_t c;
    assert_int_equal(dmce_bench_case_init(&c, "test", "busy", "frame"), 0);
    c.ctx = &x;
    c.op = busy_op;
    assert_int_equal(have_children(), 0);
    int rc = dmce_bench_run(&c, &o);
    assert_int_equal(rc, want_rc);
    assert_int_equal(have_children(), 0); /* every busy process killed and reaped */
    const dmce_perf_param_t *p = dmce_perf_param_get(&c.res, "busy");
    if (busy) {
        assert_true(x.seen > 0);
        if (rc == 0) {
            assert_non_null(p);
            assert_true(p->is_num && p->num == busy);
            assert_non_null(strstr(c.res.note, "busy process"));
        }
    } else {
        assert_int_equal(x.seen, 0);
        assert_null(p); /* results without --busy keep their keys */
    }
    fclose(o.human);
}

static void test_busy_processes_run_and_go(void **state)
{
    (void)state;
    run_busy(0, -1, 0);
    run_busy(2, -1, 0);
    run_busy(2, 5, -EIO); /* a failing case stops them too */
}

static int noop_op(void *p, uint64_t i)
{
    (void)p;
    (void)i;
    return 0;
}

static int fail_op(void *p, uint64_t i)
{
    (void)p;
    return i == 50 ? -EIO : 0;
}

/*
 * With two CPUs or more, a result's note gives the line probe's round trip
 * before and after the case, two positive figures in microseconds; with
 * one, it gives none. The probe leaves this thread's CPU affinity as it was.
 */
static void test_line_probe_in_the_note(void **state)
{
    (void)state;
    cpu_set_t before, after;
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(before), &before), 0);
    dmce_bench_opts_t o;
    char *a[] = {"t", "--ops", "100", "--reps", "1", "--warmup", "0", NULL};
    quiet_opts(&o, 7, a);
    dmce_bench_case_t c;
    assert_int_equal(dmce_bench_case_init(&c, "test", "probe", "frame"), 0);
    c.op = noop_op;
    snprintf(c.res.note, sizeof(c.res.note), "a note of its own");
    assert_int_equal(dmce_bench_run(&c, &o), 0);
    assert_int_equal(pthread_getaffinity_np(pthread_self(), sizeof(after), &after), 0);
    assert_true(CPU_EQUAL(&before, &after));
    const char *p = strstr(c.res.note, "; CPU line ");
    if (CPU_COUNT(&before) < 2) {
        assert_null(p);
    } else {
        assert_non_null(p);
        assert_int_equal(strncmp(c.res.note, "a note of its own", 17), 0);
        double b = 0, f = 0;
        assert_int_equal(sscanf(p, "; CPU line %lf/%lf us", &b, &f), 2);
        assert_true(b > 0 && b < 1000 && f > 0 && f < 1000);
    }
    fclose(o.human);
}

/*
 * Four client processes through three repetitions: the parent, asleep on
 * the done counter, sees each repetition end with the clients' figures,
 * and a client that fails ends the run with an error, not a hang (bounded
 * by the test's own timeout); no process is left.
 */
static void test_clients_are_waited_for(void **state)
{
    (void)state;
    dmce_bench_opts_t o;
    char *a[] = {"t", "--ops", "2000", "--reps", "3", "--warmup", "10", "--clients", "4", NULL};
    quiet_opts(&o, 9, a);
    dmce_bench_case_t c;
    assert_int_equal(dmce_bench_case_init(&c, "test", "clients", "frame"), 0);
    c.op = noop_op;
    assert_int_equal(dmce_bench_run(&c, &o), 0);
    assert_int_equal(c.res.reps, 3);
    assert_true(c.res.fair_min.present); /* (a late client may do no op of a no-op loop) */
    assert_true(c.res.ops_per_s.median > 0);
    assert_int_equal(have_children(), 0);
    dmce_bench_case_t d;
    assert_int_equal(dmce_bench_case_init(&d, "test", "clients", "failing"), 0);
    d.op = fail_op;
    assert_true(dmce_bench_run(&d, &o) < 0);
    assert_int_equal(have_children(), 0);
    fclose(o.human);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_option_parses),
        cmocka_unit_test(test_busy_processes_run_and_go),
        cmocka_unit_test(test_line_probe_in_the_note),
        cmocka_unit_test(test_clients_are_waited_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
