/*
 * Unit tests for the config table (runtime/config.c) and the size/number
 * parsers it uses (runtime/util.c): defaults, files, flags, precedence,
 * bounds, and every error message path.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "memd_server.h"
#include "util.h"

typedef struct {
    int64_t n;
    uint64_t sz;
    char s[DMCE_CFG_STRMAX];
    int b;
    int e;
} cfg_t;

static const char *const colors[] = {"red", "green", NULL};
static const dmce_config_def_t defs[] = {
    {"count", DMCE_CFG_INT, offsetof(cfg_t, n), "3", -5, 100, NULL, "a count"},
    {"block_size", DMCE_CFG_SIZE, offsetof(cfg_t, sz), "64M", 4096, 1ll << 40, NULL, "bytes"},
    {"name", DMCE_CFG_STRING, offsetof(cfg_t, s), "x", 0, 0, NULL, "a name"},
    {"flag", DMCE_CFG_BOOL, offsetof(cfg_t, b), "no", 0, 0, NULL, "a bool"},
    {"color", DMCE_CFG_ENUM, offsetof(cfg_t, e), "green", 0, 0, colors, "an enum"},
};
#define N (sizeof(defs) / sizeof(defs[0]))

static void test_defaults_and_set(void **state)
{
    (void)state;
    cfg_t c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(dmce_config_defaults(defs, N, &c), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.sz, 64ull << 20);
    assert_string_equal(c.s, "x");
    assert_int_equal(c.b, 0);
    assert_int_equal(c.e, 1);
    char err[256];
    assert_int_equal(dmce_config_set(defs, N, &c, "count", "-5", err, sizeof(err)), 0);
    assert_int_equal(c.n, -5);
    assert_int_equal(dmce_config_set(defs, N, &c, "count", "101", err, sizeof(err)), -ERANGE);
    assert_non_null(strstr(err, "count"));
    assert_int_equal(c.n, -5); /* unchanged */
    assert_int_equal(dmce_config_set(defs, N, &c, "count", "12abc", err, sizeof(err)), -EINVAL);
    assert_int_equal(dmce_config_set(defs, N, &c, "block_size", "1G", err, sizeof(err)), 0);
    assert_int_equal(c.sz, 1ull << 30);
    assert_int_equal(dmce_config_set(defs, N, &c, "block_size", "1K", err, sizeof(err)), -ERANGE);
    assert_int_equal(dmce_config_set(defs, N, &c, "flag", "on", err, sizeof(err)), 0);
    assert_int_equal(c.b, 1);
    assert_int_equal(dmce_config_set(defs, N, &c, "flag", "maybe", err, sizeof(err)), -EINVAL);
    assert_int_equal(dmce_config_set(defs, N, &c, "color", "RED", err, sizeof(err)), 0);
    assert_int_equal(c.e, 0);
    assert_int_equal(dmce_config_set(defs, N, &c, "color", "blue", err, sizeof(err)), -EINVAL);
    assert_int_equal(dmce_config_set(defs, N, &c, "nope", "1", err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "unknown setting 'nope'"));
    char longs[400];
    memset(longs, 'a', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = 0;
    assert_int_equal(dmce_config_set(defs, N, &c, "name", longs, err, sizeof(err)), -ERANGE);
}

static void test_file_and_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/dmce-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\n  count = 7  \n\nname = from-file # trailing\nflag=yes\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    cfg_t c;
    dmce_config_defaults(defs, N, &c);
    char err[256];
    char *argv[] = {"prog", "--count=9", "--config", path, "--block-size", "2M", "--flag", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 7, argv, err, sizeof(err)), 0);
    assert_int_equal(c.n, 9); /* the flag wins over the file */
    assert_string_equal(c.s, "from-file");
    assert_int_equal(c.sz, 2ull << 20);
    assert_int_equal(c.b, 1);

    char *bad[] = {"prog", "--colour=red", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 2, bad, err, sizeof(err)), -ENOENT);
    assert_non_null(strstr(err, "--colour"));
    char *noval[] = {"prog", "--count", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 2, noval, err, sizeof(err)), -EINVAL);
    char *positional[] = {"prog", "stray", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 2, positional, err, sizeof(err)),
                     -EINVAL);
    char *help[] = {"prog", "--help", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 2, help, err, sizeof(err)), 1);
    char *dump[] = {"prog", "--dump-config", NULL};
    assert_int_equal(dmce_config_parse_args(defs, N, &c, 2, dump, err, sizeof(err)), 2);

    /* Errors in the file name the file and the line. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    const char *badtext = "count = 1\nthis line has no equals\n";
    assert_int_equal(write(fd, badtext, strlen(badtext)), (ssize_t)strlen(badtext));
    close(fd);
    assert_int_equal(dmce_config_load_file(defs, N, &c, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
    assert_int_equal(dmce_config_load_file(defs, N, &c, path, err, sizeof(err)), -ENOENT);
}

static void test_dump_roundtrip(void **state)
{
    (void)state;
    cfg_t a, b;
    dmce_config_defaults(defs, N, &a);
    char err[256];
    dmce_config_set(defs, N, &a, "count", "42", err, sizeof(err));
    dmce_config_set(defs, N, &a, "color", "red", err, sizeof(err));
    char path[] = "/tmp/dmce-cfg-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    dmce_config_dump(defs, N, &a, f);
    fclose(f);
    dmce_config_defaults(defs, N, &b);
    assert_int_equal(dmce_config_load_file(defs, N, &b, path, err, sizeof(err)), 0);
    assert_int_equal(b.n, 42);
    assert_int_equal(b.e, 0);
    assert_int_equal(b.sz, a.sz);
    unlink(path);
}

static void test_memd_table_defaults_valid(void **state)
{
    (void)state;
    dmce_memd_config_t c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(dmce_config_defaults(dmce_memd_config_defs, dmce_memd_config_ndefs, &c), 0);
    assert_int_equal(c.id, 1);
    assert_int_equal(c.block_size, 64ull << 20);
    assert_int_equal(c.grace_ms, 30000);
}

static void test_size_parser(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(dmce_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(dmce_parse_size("4K", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(dmce_parse_size("3GiB", &v), 0);
    assert_int_equal(v, 3ull << 30);
    assert_int_equal(dmce_parse_size("2mb", &v), 0);
    assert_int_equal(v, 2ull << 20);
    assert_int_equal(dmce_parse_size("1T", &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(dmce_parse_size("", &v), -EINVAL);
    assert_int_equal(dmce_parse_size("K", &v), -EINVAL);
    assert_int_equal(dmce_parse_size("-1", &v), -EINVAL);
    assert_int_equal(dmce_parse_size("1X", &v), -EINVAL);
    assert_int_equal(dmce_parse_size("1KBB", &v), -EINVAL);
    assert_int_equal(dmce_parse_size("99999999999T", &v), -ERANGE);
    int64_t i;
    assert_int_equal(dmce_parse_i64("-9223372036854775808", &i), 0);
    assert_int_equal(i, INT64_MIN);
    assert_int_equal(dmce_parse_i64("9223372036854775808", &i), -ERANGE);
    assert_int_equal(dmce_parse_u64("0x", &v), -EINVAL);
    assert_int_equal(dmce_parse_u64("0xffffffffffffffff", &v), 0);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(dmce_parse_u64("18446744073709551616", &v), -ERANGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_set),
        cmocka_unit_test(test_file_and_flags),
        cmocka_unit_test(test_dump_roundtrip),
        cmocka_unit_test(test_memd_table_defaults_valid),
        cmocka_unit_test(test_size_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
