/*
 * test_bench.c - the benchmark frame's --busy option (perf/bench.c): the
 * CPU-bound processes run while the case runs, the result says so, and
 * none is left behind, also when the case fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
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

static void run_busy(unsigned busy, int fail_at, int want_rc)
{
    dmce_bench_opts_t o;
    char *a[] = {"t", "--ops", "200", "--reps", "2", "--warmup", "0", NULL};
    assert_int_equal(parse(&o, 7, a), 0);
    o.busy = busy;
    o.human = fopen("/dev/null", "w");
    assert_non_null(o.human);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_option_parses),
        cmocka_unit_test(test_busy_processes_run_and_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
