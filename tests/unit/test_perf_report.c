/*
 * Unit tests for the perf harness's report code (perf/report.c): the JSON
 * writer (escaping, commas, indentation, misuse) and reader (round trip,
 * strictness), the result model's JSON form, median and spread, results.json
 * write/load, the ratio table (a missing peer or limit is "-", never a
 * number), the Markdown report, the before/after comparison, redis-benchmark
 * CSV import and the plot data.
 *
 * perf/report.c is compiled into this test directly (one translation unit):
 * tests/CMakeLists.txt links unit tests against dmce_server only, and the
 * perf tool's code lives under perf/. report.c depends on libc alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../perf/report.c"

/* ---- helpers ------------------------------------------------------------- */

/* Output of a writer/renderer as a heap string. */
typedef struct capture {
    FILE *f;
    char *buf;
    size_t len;
} capture_t;

static void cap_open(capture_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
}

/* Closes the stream; c->buf stays valid until free. */
static char *cap_close(capture_t *c)
{
    assert_int_equal(fclose(c->f), 0);
    return c->buf;
}

static dmce_json_t parse_ok(const char *text)
{
    dmce_json_t v;
    char err[200] = "";
    int rc = dmce_json_parse(text, strlen(text), &v, err, sizeof(err));
    if (rc != 0)
        fail_msg("parse of %s failed: %s", text, err);
    return v;
}

static void parse_fails(const char *text)
{
    dmce_json_t v;
    char err[200] = "";
    int rc = dmce_json_parse(text, strlen(text), &v, err, sizeof(err));
    if (rc != -EINVAL)
        fail_msg("parse of '%s' should fail, got %d", text, rc);
    assert_true(strncmp(err, "JSON: ", 6) == 0);
    assert_int_equal(v.type, DMCE_JSON_NULL); /* left empty */
}

static void stat_set(dmce_perf_stat_t *s, double med, double lo, double hi)
{
    s->present = 1;
    s->median = med;
    s->min = lo;
    s->max = hi;
}

/* A result with figures: ops/s and p50 as given (median = min = max). */
static dmce_perf_result_t mk(const char *area, const char *bench, const char *impl, double size,
                             double clients, double ops, double p50)
{
    dmce_perf_result_t r;
    assert_int_equal(dmce_perf_result_init(&r, area, bench, impl), 0);
    if (size > 0)
        assert_int_equal(dmce_perf_param_num(&r, "size", size), 0);
    if (clients > 0)
        assert_int_equal(dmce_perf_param_num(&r, "clients", clients), 0);
    r.reps = 3;
    r.samples[0] = r.samples[1] = r.samples[2] = 1000;
    if (ops > 0)
        stat_set(&r.ops_per_s, ops, ops * 0.9, ops * 1.1);
    if (p50 > 0)
        stat_set(&r.p50_us, p50, p50, p50);
    return r;
}

/* The Markdown table row that starts with "| label |", or fail. */
static const char *row_of(const char *md, const char *label)
{
    char needle[256];
    snprintf(needle, sizeof(needle), "\n| %s |", label);
    const char *p = strstr(md, needle);
    if (!p)
        fail_msg("no row '%s' in:\n%s", label, md);
    return p + 1;
}

/* Cell i (0 = label) of the row at p, into buf. */
static const char *cell(const char *row, unsigned i, char *buf, size_t len)
{
    const char *p = row;
    for (unsigned k = 0; k <= i; k++) {
        p = strchr(p, '|');
        assert_non_null(p);
        p++;
    }
    while (*p == ' ')
        p++;
    const char *end = strchr(p, '|');
    assert_non_null(end);
    while (end > p && end[-1] == ' ')
        end--;
    snprintf(buf, len, "%.*s", (int)(end - p), p);
    return buf;
}

/* ---- JSON writer ------------------------------------------------------------- */

static void test_writer_escaping_round_trip(void **state)
{
    (void)state;
    const char *nasty = "quote\" backslash\\ slash/ nl\n cr\r tab\t bs\b ff\f ctl\x01\x1f "
                        "utf8 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 end";
    capture_t c;
    cap_open(&c);
    dmce_jw_t w;
    dmce_jw_init(&w, c.f, 0);
    dmce_jw_obj_begin(&w);
    dmce_jw_key(&w, "k\"ey");
    dmce_jw_str(&w, nasty);
    dmce_jw_key(&w, "n");
    dmce_jw_num(&w, 1.5e-7);
    dmce_jw_key(&w, "i");
    dmce_jw_int(&w, -42);
    dmce_jw_key(&w, "big");
    dmce_jw_num(&w, 123456789012.0);
    dmce_jw_key(&w, "nan");
    dmce_jw_num(&w, NAN);
    dmce_jw_key(&w, "a");
    dmce_jw_arr_begin(&w);
    dmce_jw_bool(&w, 1);
    dmce_jw_bool(&w, 0);
    dmce_jw_null(&w);
    dmce_jw_arr_end(&w);
    dmce_jw_obj_end(&w);
    assert_int_equal(dmce_jw_finish(&w), 0);
    char *text = cap_close(&c);

    /* Control characters are escaped, UTF-8 passes through, no raw newline. */
    assert_null(strchr(text, '\n'));
    assert_non_null(strstr(text, "\\u0001\\u001f"));
    assert_non_null(strstr(text, "\\\"ey"));
    assert_non_null(strstr(text, "\"big\":123456789012"));
    assert_non_null(strstr(text, "\"nan\":null"));

    dmce_json_t v = parse_ok(text);
    assert_int_equal(v.type, DMCE_JSON_OBJ);
    const dmce_json_t *s = dmce_json_get(&v, "k\"ey");
    assert_non_null(s);
    assert_int_equal(s->type, DMCE_JSON_STR);
    assert_string_equal(s->str, nasty);
    assert_true(dmce_json_get(&v, "n")->num == 1.5e-7);
    assert_true(dmce_json_get(&v, "i")->num == -42);
    assert_int_equal(dmce_json_get(&v, "nan")->type, DMCE_JSON_NULL);
    const dmce_json_t *a = dmce_json_get(&v, "a");
    assert_int_equal(a->n, 3);
    assert_int_equal(a->items[0].b, 1);
    assert_int_equal(a->items[1].type, DMCE_JSON_BOOL);
    assert_int_equal(a->items[1].b, 0);
    assert_int_equal(a->items[2].type, DMCE_JSON_NULL);
    assert_null(dmce_json_get(&v, "missing"));
    dmce_json_free(&v);
    free(text);
}

static void test_writer_invalid_utf8_stays_json(void **state)
{
    (void)state;
    capture_t c;
    cap_open(&c);
    dmce_jw_t w;
    dmce_jw_init(&w, c.f, 0);
    dmce_jw_str(&w, "a\xff"
                    "b\xc3"); /* a stray byte and a truncated sequence */
    assert_int_equal(dmce_jw_finish(&w), 0);
    char *text = cap_close(&c);
    assert_string_equal(text, "\"a\\ufffdb\\ufffd\"");
    dmce_json_t v = parse_ok(text);
    assert_string_equal(v.str, "a\xef\xbf\xbd"
                               "b\xef\xbf\xbd");
    dmce_json_free(&v);
    free(text);
}

static void test_writer_pretty_depth(void **state)
{
    (void)state;
    capture_t c;
    cap_open(&c);
    dmce_jw_t w;
    dmce_jw_init(&w, c.f, 1);
    dmce_jw_obj_begin(&w);
    dmce_jw_key(&w, "a");
    dmce_jw_int(&w, 1);
    dmce_jw_key(&w, "b");
    dmce_jw_arr_begin(&w);
    dmce_jw_int(&w, 2);
    dmce_jw_int(&w, 3);
    dmce_jw_arr_end(&w);
    dmce_jw_key(&w, "e");
    dmce_jw_obj_begin(&w);
    dmce_jw_obj_end(&w);
    dmce_jw_obj_end(&w);
    assert_int_equal(dmce_jw_finish(&w), 0);
    char *text = cap_close(&c);
    assert_string_equal(text, "{\n  \"a\":1,\n  \"b\":[2,3],\n  \"e\":{}\n}");
    free(text);
}

static void test_writer_misuse(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/null", "w");
    assert_non_null(f);
    dmce_jw_t w;

    dmce_jw_init(&w, f, 0); /* a value in an object without a key */
    dmce_jw_obj_begin(&w);
    dmce_jw_int(&w, 1);
    dmce_jw_obj_end(&w);
    assert_int_equal(dmce_jw_finish(&w), -EINVAL);

    dmce_jw_init(&w, f, 0); /* a key in an array */
    dmce_jw_arr_begin(&w);
    dmce_jw_key(&w, "k");
    assert_int_equal(dmce_jw_finish(&w), -EINVAL);

    dmce_jw_init(&w, f, 0); /* mismatched end */
    dmce_jw_arr_begin(&w);
    dmce_jw_obj_end(&w);
    assert_int_equal(dmce_jw_finish(&w), -EINVAL);

    dmce_jw_init(&w, f, 0); /* left open */
    dmce_jw_obj_begin(&w);
    assert_int_equal(dmce_jw_finish(&w), -EINVAL);

    dmce_jw_init(&w, f, 0); /* a key with no value */
    dmce_jw_obj_begin(&w);
    dmce_jw_key(&w, "k");
    dmce_jw_obj_end(&w);
    assert_int_equal(dmce_jw_finish(&w), -EINVAL);
    fclose(f);
}

static void test_writer_reports_write_failure(void **state)
{
    (void)state;
    FILE *f = fopen("/dev/full", "w");
    if (!f)
        skip();
    setvbuf(f, NULL, _IONBF, 0);
    dmce_jw_t w;
    dmce_jw_init(&w, f, 0);
    dmce_jw_str(&w, "does not fit");
    assert_int_equal(dmce_jw_finish(&w), -EIO);
    fclose(f);
}

/* ---- JSON reader ------------------------------------------------------------- */

static void test_reader_accepts(void **state)
{
    (void)state;
    dmce_json_t v = parse_ok(" {\"a\" : [ -0.5e+2, 0, 1E3, true , null ], \"b\":{}, "
                             "\"s\":\"\\ud83d\\ude00\\u00e9\\/\"} \n");
    const dmce_json_t *a = dmce_json_get(&v, "a");
    assert_int_equal(a->n, 5);
    assert_true(a->items[0].num == -50.0);
    assert_true(a->items[1].num == 0.0);
    assert_true(a->items[2].num == 1000.0);
    assert_int_equal(dmce_json_get(&v, "b")->type, DMCE_JSON_OBJ);
    assert_int_equal(dmce_json_get(&v, "b")->n, 0);
    assert_string_equal(dmce_json_get(&v, "s")->str, "\xf0\x9f\x98\x80\xc3\xa9/");
    dmce_json_free(&v);

    /* As deep as allowed. */
    char deep[2 * DMCE_JSON_MAX_DEPTH + 3];
    memset(deep, '[', DMCE_JSON_MAX_DEPTH + 1);
    memset(deep + DMCE_JSON_MAX_DEPTH + 1, ']', DMCE_JSON_MAX_DEPTH + 1);
    deep[2 * DMCE_JSON_MAX_DEPTH + 2] = '\0';
    v = parse_ok(deep);
    dmce_json_free(&v);
}

static void test_reader_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "   ",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "-",
        "1.",
        "1e",
        ".5",
        "+1",
        "\"abc",
        "\"a\tb\"",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00x\"",
        "\"\\u0000\"",
        "{\"a\":1,\"a\":2}",
        "[1] 2",
        "tru",
        "nul",
        "{1:2}",
        "{\"a\" 1}",
        "\"\xff\"",
        "\"\xc3\"",
        "[\"\xe2\x82\"]",
        "NaN",
        "[1 2]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_fails(bad[i]);

    char deep[2 * DMCE_JSON_MAX_DEPTH + 5];
    memset(deep, '[', DMCE_JSON_MAX_DEPTH + 2);
    memset(deep + DMCE_JSON_MAX_DEPTH + 2, ']', DMCE_JSON_MAX_DEPTH + 2);
    deep[2 * DMCE_JSON_MAX_DEPTH + 4] = '\0';
    parse_fails(deep);

    /* The message says where. */
    dmce_json_t v;
    char err[200];
    assert_int_equal(dmce_json_parse("[1,,2]", 6, &v, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at byte 3"));
}

/* ---- result model ------------------------------------------------------------- */

static void test_result_round_trip(void **state)
{
    (void)state;
    dmce_perf_result_t r;
    assert_int_equal(dmce_perf_result_init(&r, "msmp", "get", "dmce-mapped"), 0);
    assert_int_equal(dmce_perf_param_num(&r, "size", 4096), 0);
    assert_int_equal(dmce_perf_param_str(&r, "pin", "split \"x\""), 0);
    assert_int_equal(dmce_perf_param_num(&r, "clients", 8), 0);
    assert_int_equal(dmce_perf_param_num(&r, "size", 64), 0); /* replaces */
    assert_int_equal(r.nparams, 3);
    snprintf(r.limit, sizeof(r.limit), "unix_rtt[size=64]");
    snprintf(r.note, sizeof(r.note), "a \"note\"\nwith a newline");
    r.reps = 4;
    r.warmup = 200;
    for (unsigned i = 0; i < 4; i++)
        r.samples[i] = 1000 + i;
    r.bytes_per_op = 64;
    stat_set(&r.ops_per_s, 123456.5, 100000.25, 130000);
    stat_set(&r.gb_per_s, 0.0079, 0.0064, 0.0083);
    stat_set(&r.p50_us, 8.25, 8.0, 9.5);
    stat_set(&r.p99_us, 13.5, 12.0, 14.0);
    /* p999 not measured */
    r.ncurve = 3;
    r.curve_pct[0] = 0, r.curve_us[0] = 7.5;
    r.curve_pct[1] = 99.9, r.curve_us[1] = 80.125;
    r.curve_pct[2] = 100, r.curve_us[2] = 1234.5;

    capture_t c;
    cap_open(&c);
    dmce_jw_t w;
    dmce_jw_init(&w, c.f, 0);
    dmce_perf_result_write(&r, &w);
    assert_int_equal(dmce_jw_finish(&w), 0);
    char *text = cap_close(&c);
    assert_non_null(strstr(text, "\"p999_us\":null"));

    dmce_json_t v = parse_ok(text);
    dmce_perf_result_t b;
    char err[200] = "";
    assert_int_equal(dmce_perf_result_from_json(&v, &b, err, sizeof(err)), 0);
    dmce_json_free(&v);
    free(text);

    assert_string_equal(b.area, "msmp");
    assert_string_equal(b.bench, "get");
    assert_string_equal(b.impl, "dmce-mapped");
    assert_string_equal(b.limit, r.limit);
    assert_string_equal(b.note, r.note);
    assert_int_equal(b.nparams, 3);
    assert_true(dmce_perf_param_get(&b, "size")->num == 64);
    assert_string_equal(dmce_perf_param_get(&b, "pin")->str, "split \"x\"");
    assert_int_equal(b.reps, 4);
    assert_int_equal(b.warmup, 200);
    assert_int_equal(b.samples[3], 1003);
    assert_true(b.bytes_per_op == 64);
    assert_true(b.ops_per_s.present && b.ops_per_s.median == 123456.5);
    assert_true(b.ops_per_s.min == 100000.25 && b.ops_per_s.max == 130000);
    assert_true(b.gb_per_s.median == 0.0079);
    assert_true(b.p99_us.max == 14.0);
    assert_false(b.p999_us.present);
    assert_int_equal(b.ncurve, 3);
    assert_true(b.curve_pct[1] == 99.9 && b.curve_us[1] == 80.125);

    char key[128];
    assert_true(dmce_perf_result_key(&b, key, sizeof(key)) > 0);
    assert_string_equal(key, "get[clients=8,pin=split \"x\",size=64]");
    dmce_perf_result_t plain;
    dmce_perf_result_init(&plain, "limits", "shm_rtt", "limit");
    dmce_perf_result_key(&plain, key, sizeof(key));
    assert_string_equal(key, "shm_rtt");
    assert_int_equal(dmce_perf_result_key(&b, key, 8), -ENOSPC);
}

static void test_result_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *json, *says;
    } bad[] = {
        {"[]", "not a JSON object"},
        {"{\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[1]}", "\"area\""},
        {"{\"area\":\"a b\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[1]}",
         "\"area\""},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":2,\"samples\":[1]}", "samples"},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1.5,\"samples\":[1]}", "reps"},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[-1]}", "samples"},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[1],"
         "\"ops_per_s\":{\"median\":1,\"min\":1}}",
         "ops_per_s"},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[1],"
         "\"params\":{\"size\":[1]}}",
         "size"},
        {"{\"area\":\"a\",\"bench\":\"b\",\"impl\":\"i\",\"reps\":1,\"samples\":[1],"
         "\"curve\":[[1]]}",
         "curve"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dmce_json_t v = parse_ok(bad[i].json);
        dmce_perf_result_t r;
        char err[200] = "";
        assert_int_equal(dmce_perf_result_from_json(&v, &r, err, sizeof(err)), -EINVAL);
        if (!strstr(err, bad[i].says))
            fail_msg("case %zu: message '%s' does not mention %s", i, err, bad[i].says);
        dmce_json_free(&v);
    }
    dmce_perf_result_t r;
    assert_int_equal(dmce_perf_result_init(&r, "", "b", "i"), -EINVAL);
    assert_int_equal(dmce_perf_result_init(&r, "a", "b/c", "i"), -EINVAL);
    assert_int_equal(dmce_perf_result_init(&r, "a", "b", "i"), 0);
    assert_int_equal(dmce_perf_param_num(&r, "bad key", 1), -EINVAL);
    assert_int_equal(dmce_perf_param_num(&r, "k", NAN), -EINVAL);
    for (int i = 0; i < DMCE_PERF_MAX_PARAMS; i++) {
        char k[8];
        snprintf(k, sizeof(k), "p%d", i);
        assert_int_equal(dmce_perf_param_num(&r, k, i), 0);
    }
    assert_int_equal(dmce_perf_param_num(&r, "one_more", 1), -ENOSPC);
}

static void test_median_and_spread(void **state)
{
    (void)state;
    dmce_perf_stat_t s;
    const double odd[] = {5, 1, 4, 2, 3};
    dmce_perf_stat_from(&s, odd, 5);
    assert_true(s.present);
    assert_true(s.median == 3 && s.min == 1 && s.max == 5);

    const double even[] = {10, 40, 20, 30};
    dmce_perf_stat_from(&s, even, 4);
    assert_true(s.median == 25 && s.min == 10 && s.max == 40);

    const double one[] = {7.5};
    dmce_perf_stat_from(&s, one, 1);
    assert_true(s.median == 7.5 && s.min == 7.5 && s.max == 7.5);

    const double with_nan[] = {NAN, 2, INFINITY, 4, 9};
    dmce_perf_stat_from(&s, with_nan, 5); /* non-finite values are skipped */
    assert_true(s.median == 4 && s.min == 2 && s.max == 9);

    const double none[] = {NAN, NAN};
    dmce_perf_stat_from(&s, none, 2);
    assert_false(s.present);
    dmce_perf_stat_from(&s, NULL, 0);
    assert_false(s.present);

    /* Repetitions spread widely: the median stays with the middle one. */
    const double outlier[] = {100, 101, 1e9};
    dmce_perf_stat_from(&s, outlier, 3);
    assert_true(s.median == 101 && s.max == 1e9);
}

/* ---- runs ------------------------------------------------------------------------ */

static void fill_machine(dmce_perf_run_t *run)
{
    snprintf(run->cpu_model, sizeof(run->cpu_model), "Test CPU \"X\"");
    run->nproc = 2;
    run->memory_bytes = UINT64_C(24) << 30;
    snprintf(run->kernel, sizeof(run->kernel), "Linux 6.1 x86_64");
    run->numa_nodes = 1;
    snprintf(run->date, sizeof(run->date), "2026-11-25T00:00:00Z");
    snprintf(run->mode, sizeof(run->mode), "quick");
}

static void test_run_write_load(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    dmce_perf_run_init(&run);
    assert_string_equal(run.commit, "unknown");
    fill_machine(&run);
    run.seconds = 42;
    snprintf(run.peers[0].name, DMCE_PERF_NAME_MAX, "redis");
    snprintf(run.peers[0].version, DMCE_PERF_NAME_MAX, "7.0.15");
    run.peers[0].found = 1;
    snprintf(run.peers[1].name, DMCE_PERF_NAME_MAX, "memcached");
    run.npeers = 2;
    snprintf(run.failures[0], DMCE_PERF_TEXT_MAX, "msmp/dmce-get-64-c8");
    run.nfailures = 1;
    for (int i = 0; i < 40; i++) { /* more than the initial capacity */
        dmce_perf_result_t r =
            mk("msmp", "get", i % 2 ? "redis" : "dmce", 64 << (i / 2), 1, 1000 + i, 10);
        assert_int_equal(dmce_perf_run_add(&run, &r), 0);
    }

    char path[] = "/tmp/test_perf_report.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_int_equal(dmce_perf_run_write(&run, f), 0);
    assert_int_equal(fclose(f), 0);

    /* One result per line: diffable. */
    f = fopen(path, "r");
    char line[4096];
    int result_lines = 0;
    while (fgets(line, sizeof(line), f))
        result_lines += strncmp(line, "    {\"area\":", 12) == 0;
    fclose(f);
    assert_int_equal(result_lines, 40);

    dmce_perf_run_t back;
    char err[300] = "";
    int rc = dmce_perf_run_load(&back, path, err, sizeof(err));
    if (rc != 0)
        fail_msg("load: %s", err);
    assert_string_equal(back.cpu_model, run.cpu_model);
    assert_int_equal(back.nproc, 2);
    assert_true(back.memory_bytes == run.memory_bytes);
    assert_string_equal(back.kernel, run.kernel);
    assert_string_equal(back.mode, "quick");
    assert_string_equal(back.date, run.date);
    assert_true(back.seconds == 42);
    assert_int_equal(back.npeers, 2);
    assert_int_equal(back.peers[0].found, 1);
    assert_string_equal(back.peers[0].version, "7.0.15");
    assert_int_equal(back.peers[1].found, 0);
    assert_int_equal(back.nfailures, 1);
    assert_string_equal(back.failures[0], run.failures[0]);
    assert_int_equal(back.nresults, 40);
    assert_true(back.results[39].ops_per_s.median == 1039);
    assert_string_equal(back.results[39].impl, "redis");
    dmce_perf_run_free(&back);
    dmce_perf_run_free(&run);

    /* Not ours, and missing. */
    f = fopen(path, "w");
    fputs("{\"format\":\"something-else\"}", f);
    fclose(f);
    assert_int_equal(dmce_perf_run_load(&back, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "not a dmce perf result file"));
    unlink(path);
    assert_int_equal(dmce_perf_run_load(&back, path, err, sizeof(err)), -ENOENT);
}

static void test_read_lines(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    dmce_perf_run_init(&run);
    const char *good = "{\"area\":\"limits\",\"bench\":\"memcpy\",\"impl\":\"limit\",\"reps\":1,"
                       "\"samples\":[3]}\n"
                       "\n   \n"
                       "{\"area\":\"msmp\",\"bench\":\"get\",\"impl\":\"dmce\",\"reps\":1,"
                       "\"samples\":[3],\"unknown_key\":[1,2]}";
    FILE *f = fmemopen((void *)good, strlen(good), "r");
    char err[300] = "";
    assert_int_equal(dmce_perf_read_lines(&run, f, "good.jsonl", err, sizeof(err)), 0);
    fclose(f);
    assert_int_equal(run.nresults, 2);

    const char *bad = "{\"area\":\"msmp\",\"bench\":\"get\",\"impl\":\"dmce\",\"reps\":1,"
                      "\"samples\":[3]}\nmsmp get 64: 12 us\n";
    f = fmemopen((void *)bad, strlen(bad), "r");
    assert_int_equal(dmce_perf_read_lines(&run, f, "bad.jsonl", err, sizeof(err)), -EINVAL);
    fclose(f);
    assert_non_null(strstr(err, "bad.jsonl:2:"));
    dmce_perf_run_free(&run);
}

/* ---- targets ---------------------------------------------------------------------- */

/* A parameter value "*" in a target's key matches any value, and nothing else is loosened. */
static void test_targets_wildcard(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    dmce_perf_run_init(&run);
    static const struct {
        const char *impl, *pages;
        double ops;
    } rs[] = {{"limit", "2m", 16},
              {"dmce-win-map", "2m", 13},
              {"limit", "4k", 12},
              {"dmce-win-map", "4k", 6}};
    for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
        dmce_perf_result_t r = mk("mapping", "seq_read", rs[i].impl, 754974720, 0, rs[i].ops, 0);
        assert_int_equal(dmce_perf_param_str(&r, "pages", rs[i].pages), 0);
        assert_int_equal(dmce_perf_run_add(&run, &r), 0);
    }
    const char *text =
        "mapping ops:dmce-win-map:seq_read[pages=2m,size=*] / "
        "ops:limit:seq_read[pages=2m,size=*] >= 0.75 windows, 2 MiB pages\n"
        "mapping ops:dmce-win-map:seq_read[pages=4k,size=*] / "
        "ops:limit:seq_read[pages=4k,size=*] >= 0.75 windows, 4 KiB pages\n"
        "mapping ops:dmce-win-map:seq_read[pages=*,size=754974720] >= 6 any pages, this size\n"
        "mapping ops:dmce-win-map:seq_read[pages=1g,size=*] >= 1 no such pages\n"
        "mapping ops:dmce-win-map:seq_read[pages=2m] >= 1 a key without its size\n"
        "mapping ops:dmce-win-map:seq_read[pages=2*,size=*] >= 1 not a whole value\n";
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    dmce_perf_targets_t t;
    char err[200] = "";
    assert_int_equal(dmce_perf_targets_read(&t, f, "t", err, sizeof(err)), 0);
    fclose(f);
    assert_int_equal(t.n, 6);
    double v = 0;
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[0], &v), DMCE_PERF_TARGET_MET);
    assert_true(fabs(v - 13.0 / 16.0) < 1e-9);
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[1], &v), DMCE_PERF_TARGET_NOT_MET);
    assert_true(fabs(v - 0.5) < 1e-9);
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[2], &v), DMCE_PERF_TARGET_MET);
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[3], NULL), DMCE_PERF_TARGET_NOT_MEASURED);
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[4], NULL), DMCE_PERF_TARGET_NOT_MEASURED);
    assert_int_equal(dmce_perf_target_eval(&run, &t.t[5], NULL), DMCE_PERF_TARGET_NOT_MEASURED);
    dmce_perf_run_free(&run);
}

/* A target's figures say which state the machine was in: the line probe of their notes. */
static void test_targets_show_the_line_probe(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    dmce_perf_run_init(&run);
    dmce_perf_result_t r = mk("msmp", "get", "dmce", 64, 8, 1500000, 0.5);
    snprintf(r.note, sizeof(r.note), "dmce_read of one allocation; CPU line 0.331/0.064 us");
    assert_int_equal(dmce_perf_run_add(&run, &r), 0);
    r = mk("msmp", "get", "dmce", 64, 1, 2000000, 0.4);
    snprintf(r.note, sizeof(r.note), "dmce_read of one allocation");
    assert_int_equal(dmce_perf_run_add(&run, &r), 0);
    const char *text = "msmp ops:dmce:get[clients=8,size=64] / ops:dmce:get[clients=1,size=64] "
                       ">= 1 eight against one\n";
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    dmce_perf_targets_t t;
    char err[200] = "";
    assert_int_equal(dmce_perf_targets_read(&t, f, "t", err, sizeof(err)), 0);
    fclose(f);
    char *out = NULL;
    size_t outlen = 0;
    FILE *m = open_memstream(&out, &outlen);
    unsigned met = 0, not_met = 0;
    assert_true(dmce_perf_render_targets(&run, &t, "msmp", m, &met, &not_met) > 0);
    fclose(m);
    assert_int_equal(not_met, 1);
    /* the 8-client figure names its probe; the one-client figure has none to name */
    assert_non_null(strstr(out, "[dmce]: 1.50M/s (CPU line 0.331/0.064 us)"));
    assert_null(strstr(out, "2.00M/s (CPU"));
    free(out);
    dmce_perf_run_free(&run);
}

/* ---- reports ---------------------------------------------------------------------- */

/* limits + msmp: dmce, dmce-mapped, redis; memcached only for one row. */
static void build_run(dmce_perf_run_t *run)
{
    dmce_perf_run_init(run);
    fill_machine(run);
    dmce_perf_result_t r;
    r = mk("limits", "unix_rtt", "limit", 64, 0, 100000, 8);
    dmce_perf_run_add(run, &r);
    r = mk("limits", "memcpy", "limit", 1 << 30, 0, 10, 0);
    stat_set(&r.gb_per_s, 11.6, 11, 12);
    dmce_perf_run_add(run, &r);

    r = mk("msmp", "get", "dmce", 64, 1, 50000, 16);
    snprintf(r.limit, sizeof(r.limit), "unix_rtt[size=64]");
    dmce_perf_run_add(run, &r);
    r = mk("msmp", "get", "dmce-mapped", 64, 1, 8000000, 0.11);
    dmce_perf_run_add(run, &r);
    r = mk("msmp", "get", "redis", 64, 1, 25000, 30);
    dmce_perf_run_add(run, &r);
    r = mk("msmp", "get", "memcached", 64, 1, 100000, 9);
    dmce_perf_run_add(run, &r);

    r = mk("msmp", "get", "dmce", 4096, 1, 40000, 20);
    snprintf(r.limit, sizeof(r.limit), "unix_rtt[size=4096]"); /* not measured */
    dmce_perf_run_add(run, &r);
    r = mk("msmp", "get", "redis", 4096, 1, 20000, 40);
    dmce_perf_run_add(run, &r);
    /* no memcached at 4096: its cells must be "-" */

    r = mk("msmp", "get", "redis-benchmark", 64, 50, 100000, 300);
    dmce_perf_run_add(run, &r); /* a reference-only row */
}

static void test_ratio_table(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    build_run(&run);
    capture_t c;
    cap_open(&c);
    int rows = dmce_perf_render_ratio_table(&run, "msmp", c.f);
    char *md = cap_close(&c);
    assert_int_equal(rows, 4);

    /* Header: dmce, limit, then the references in order of appearance. */
    assert_non_null(strstr(md, "| benchmark | dmce | limit | dmce/limit | redis | dmce/redis | "
                               "memcached | dmce/memcached | redis-benchmark | "
                               "dmce/redis-benchmark |"));
    char buf[128];
    const char *row = row_of(md, "get 64 B, 1 client");
    assert_string_equal(cell(row, 1, buf, sizeof(buf)), "50.0k/s, p50 16.0 us");
    assert_string_equal(cell(row, 2, buf, sizeof(buf)), "unix_rtt: 100k/s, p50 8.00 us");
    assert_string_equal(cell(row, 3, buf, sizeof(buf)), "0.50");
    assert_string_equal(cell(row, 4, buf, sizeof(buf)), "25.0k/s, p50 30.0 us");
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "2.00");
    assert_string_equal(cell(row, 7, buf, sizeof(buf)), "0.50");
    assert_string_equal(cell(row, 8, buf, sizeof(buf)), "-"); /* no redis-benchmark here */
    assert_string_equal(cell(row, 9, buf, sizeof(buf)), "-");

    /* The mapped variant: its own row, no limit, ratios against the same peers. */
    row = row_of(md, "get 64 B, 1 client [dmce-mapped]");
    assert_string_equal(cell(row, 1, buf, sizeof(buf)), "8.00M/s, p50 0.110 us");
    assert_string_equal(cell(row, 2, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 3, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "320");

    /* A missing peer and a limit that was not measured: "-", not a number. */
    row = row_of(md, "get 4 KiB, 1 client");
    assert_string_equal(cell(row, 2, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 3, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "2.00");
    assert_string_equal(cell(row, 6, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 7, buf, sizeof(buf)), "-");

    /* A row with references only: dmce "-", no ratio. */
    row = row_of(md, "get 64 B, 50 clients");
    assert_string_equal(cell(row, 1, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 8, buf, sizeof(buf)), "100k/s, p50 300 us");
    assert_string_equal(cell(row, 9, buf, sizeof(buf)), "-");
    free(md);

    /* An area without dmce results has no ratio table. */
    cap_open(&c);
    assert_int_equal(dmce_perf_render_ratio_table(&run, "limits", c.f), 0);
    md = cap_close(&c);
    assert_string_equal(md, "");
    free(md);

    /* A dmce result whose figure is missing: ratios "-". */
    run.results[2].ops_per_s.present = 0;
    cap_open(&c);
    dmce_perf_render_ratio_table(&run, "msmp", c.f);
    md = cap_close(&c);
    row = row_of(md, "get 64 B, 1 client");
    assert_string_equal(cell(row, 1, buf, sizeof(buf)), "p50 16.0 us");
    assert_string_equal(cell(row, 3, buf, sizeof(buf)), "-");
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "-");
    free(md);
    dmce_perf_run_free(&run);
}

static void test_render_md(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    build_run(&run);
    snprintf(run.failures[0], DMCE_PERF_TEXT_MAX, "msmp/memcached-get-4096-c1");
    run.nfailures = 1;
    snprintf(run.peers[0].name, DMCE_PERF_NAME_MAX, "memcached");
    run.npeers = 1; /* not found */
    capture_t c;
    cap_open(&c);
    const char *plots[] = {"plots/lat-msmp-get.png"};
    assert_int_equal(dmce_perf_render_md(&run, plots, 1, c.f), 0);
    char *md = cap_close(&c);
    const char *limits = strstr(md, "\n## limits\n"), *msmp = strstr(md, "\n## msmp\n");
    assert_non_null(limits);
    assert_non_null(msmp);
    assert_true(limits < msmp);
    assert_null(strstr(md, "## mapping")); /* no benchmarks: no section */
    assert_null(strstr(md, "## store"));
    assert_non_null(strstr(md, "memcached NOT FOUND"));
    assert_non_null(strstr(md, "`msmp/memcached-get-4096-c1`"));
    assert_non_null(strstr(md, "2 CPUs, 24 GiB"));
    assert_non_null(strstr(md, "![plots/lat-msmp-get.png](plots/lat-msmp-get.png)"));
    /* Detail rows: spread and GB/s. */
    const char *row = row_of(md, "memcpy 1 GiB");
    char buf[64];
    assert_string_equal(cell(row, 7, buf, sizeof(buf)), "11.6");
    assert_string_equal(cell(row, 8, buf, sizeof(buf)), "9..11");
    free(md);
    dmce_perf_run_free(&run);
}

static void test_compare(void **state)
{
    (void)state;
    dmce_perf_run_t a, b;
    build_run(&a);
    build_run(&b);
    snprintf(b.commit, sizeof(b.commit), "abc1234");
    /* After: dmce get 64 B 50% faster (ops/s), p50 25% lower. */
    b.results[2].ops_per_s.median = 75000;
    b.results[2].p50_us.median = 12;
    /* Only in before: the redis-benchmark row; only in after: a new one. */
    b.nresults--;
    dmce_perf_result_t extra = mk("store", "get", "dmce", 64, 1, 1e6, 1);
    dmce_perf_run_add(&b, &extra);

    capture_t c;
    cap_open(&c);
    int n = dmce_perf_compare(&a, &b, c.f);
    char *out = cap_close(&c);
    assert_int_equal(n, 8);
    assert_null(strstr(out, "WARNING"));
    assert_non_null(strstr(out, "after:  2026-11-25T00:00:00Z, commit abc1234"));
    const char *row = strstr(out, "| msmp | get 64 B, 1 client | dmce |");
    assert_non_null(row);
    char buf[64];
    /* cells: area, benchmark, impl, ops/s before, after, change, p50 before, after, change */
    assert_string_equal(cell(row, 3, buf, sizeof(buf)), "50.0k");
    assert_string_equal(cell(row, 4, buf, sizeof(buf)), "75.0k");
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "+50.0%");
    assert_string_equal(cell(row, 6, buf, sizeof(buf)), "16.0");
    assert_string_equal(cell(row, 7, buf, sizeof(buf)), "12.0");
    assert_string_equal(cell(row, 8, buf, sizeof(buf)), "-25.0%");
    row = strstr(out, "| msmp | get 64 B, 1 client | redis |");
    assert_non_null(row);
    assert_string_equal(cell(row, 5, buf, sizeof(buf)), "+0.0%");
    const char *before =
        strstr(out, "only before:\n- msmp: get 64 B, 50 clients (redis-benchmark)");
    const char *after = strstr(out, "only after:\n- store: get 64 B, 1 client (dmce)");
    assert_non_null(before);
    assert_non_null(after);
    free(out);

    /* Another machine: said loudly. */
    b.nproc = 64;
    cap_open(&c);
    dmce_perf_compare(&a, &b, c.f);
    out = cap_close(&c);
    assert_non_null(strstr(out, "WARNING: different machines"));
    free(out);
    dmce_perf_run_free(&a);
    dmce_perf_run_free(&b);
}

/* ---- redis-benchmark CSV, plots ------------------------------------------------------- */

static void test_import_redis_csv(void **state)
{
    (void)state;
    static const char header[] = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\","
                                 "\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\","
                                 "\"max_latency_ms\"\n";
    char csv[3][512];
    snprintf(csv[0], sizeof(csv[0]), "%s%s%s", header,
             "\"SET\",\"50000.00\",\"0.020\",\"0.008\",\"0.019\",\"0.030\",\"0.041\",\"0.500\"\n",
             "\"GET\",\"70000.00\",\"0.015\",\"0.008\",\"0.015\",\"0.025\",\"0.035\",\"0.400\"\n");
    snprintf(csv[1], sizeof(csv[1]), "%s%s", header,
             "\"GET\",\"72000.00\",\"0.015\",\"0.008\",\"0.013\",\"0.025\",\"0.031\",\"0.400\"\n");
    /* another column order: the header decides */
    snprintf(csv[2], sizeof(csv[2]), "%s",
             "\"test\",\"p99_latency_ms\",\"p50_latency_ms\",\"rps\"\n\"GET\",\"0.099\",\"0.017\","
             "\"60000.00\"\n");
    FILE *files[3];
    for (int i = 0; i < 3; i++)
        files[i] = fmemopen(csv[i], strlen(csv[i]), "r");
    dmce_perf_result_t r;
    dmce_perf_result_init(&r, "msmp", "get", "redis-benchmark");
    r.bytes_per_op = 64;
    char err[200] = "";
    assert_int_equal(dmce_perf_import_redis_csv(files, 3, "GET", 5000, &r, err, sizeof(err)), 0);
    assert_int_equal(r.reps, 3);
    assert_int_equal(r.samples[2], 5000);
    assert_true(r.ops_per_s.median == 70000 && r.ops_per_s.min == 60000 &&
                r.ops_per_s.max == 72000);
    assert_true(r.p50_us.median > 14.99 && r.p50_us.median < 15.01);
    assert_true(r.p99_us.median > 34.99 && r.p99_us.median < 35.01);
    assert_false(r.p999_us.present); /* redis-benchmark does not give it */
    assert_true(r.gb_per_s.present && r.gb_per_s.median > 0.00447 && r.gb_per_s.median < 0.00449);
    for (int i = 0; i < 3; i++)
        fclose(files[i]);

    files[0] = fmemopen(csv[1], strlen(csv[1]), "r");
    assert_int_equal(dmce_perf_import_redis_csv(files, 1, "SET", 5000, &r, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "no \"SET\" row"));
    fclose(files[0]);
}

static void test_plot_data(void **state)
{
    (void)state;
    dmce_perf_run_t run;
    build_run(&run);
    /* A client sweep of 3 points for dmce, 2 for redis (too few for a line). */
    for (int c = 2; c <= 4; c += 2) {
        dmce_perf_result_t r = mk("msmp", "get", "dmce", 64, c, 50000 * c, 16);
        dmce_perf_run_add(&run, &r);
    }
    dmce_perf_result_t r = mk("msmp", "get", "redis", 64, 2, 40000, 30);
    dmce_perf_run_add(&run, &r);
    for (size_t i = 0; i < run.nresults; i++) { /* curves for the latency plots */
        dmce_perf_result_t *x = &run.results[i];
        x->ncurve = 2;
        x->curve_pct[0] = 50, x->curve_us[0] = 1;
        x->curve_pct[1] = 100, x->curve_us[1] = 2;
    }
    char dir[] = "/tmp/test_perf_plot.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *names[16];
    int n = dmce_perf_plot(&run, dir, names, 16);
    assert_true(n >= 3);
    int lat = 0, clients = 0;
    for (int i = 0; i < n; i++) {
        /* msmp has dmce results: one latency plot per size; limits: per bench. */
        lat += strcmp(names[i], "lat-msmp-get-64.png") == 0 ||
               strcmp(names[i], "lat-msmp-get-4096.png") == 0 ||
               strcmp(names[i], "lat-limits-unix_rtt.png") == 0;
        clients += strcmp(names[i], "scale-msmp-get-clients.png") == 0;
        assert_null(strstr(names[i], "-size")); /* no series of 3 sizes */
        free(names[i]);
    }
    assert_int_equal(lat, 3);
    assert_int_equal(clients, 1);

    char path[512], line[256];
    /* The 64 B latency plot: the one-client results only (dmce, mapped, redis, memcached). */
    snprintf(path, sizeof(path), "%s/lat-msmp-get-64.dat", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0;
    while (fgets(line, sizeof(line), f))
        lines += line[0] == '#';
    fclose(f);
    assert_int_equal(lines, 4);
    snprintf(path, sizeof(path), "%s/scale-msmp-get-clients.dat", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    int points = 0, series = 0;
    while (fgets(line, sizeof(line), f)) {
        series += line[0] == '#';
        points += line[0] >= '0' && line[0] <= '9';
    }
    fclose(f);
    assert_int_equal(series, 1); /* dmce size=64; redis has 2 points only */
    assert_int_equal(points, 3);
    snprintf(path, sizeof(path), "%s/plots.gp", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    int outputs = 0;
    while (fgets(line, sizeof(line), f))
        outputs += strncmp(line, "set output ", 11) == 0;
    fclose(f);
    assert_int_equal(outputs, n);

    /* Clean up the temporary directory. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
    assert_int_equal(system(cmd), 0);
    dmce_perf_run_free(&run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_escaping_round_trip),
        cmocka_unit_test(test_writer_invalid_utf8_stays_json),
        cmocka_unit_test(test_writer_pretty_depth),
        cmocka_unit_test(test_writer_misuse),
        cmocka_unit_test(test_writer_reports_write_failure),
        cmocka_unit_test(test_reader_accepts),
        cmocka_unit_test(test_reader_rejects),
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_result_rejects),
        cmocka_unit_test(test_median_and_spread),
        cmocka_unit_test(test_run_write_load),
        cmocka_unit_test(test_read_lines),
        cmocka_unit_test(test_ratio_table),
        cmocka_unit_test(test_render_md),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_import_redis_csv),
        cmocka_unit_test(test_plot_data),
        cmocka_unit_test(test_targets_wildcard),
        cmocka_unit_test(test_targets_show_the_line_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
