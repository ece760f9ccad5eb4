/*
 * test_error.c - unit tests for runtime/error.c (dmce_strerror, dmce_err_name).
 *
 * The expected names, values and messages are generated from the same
 * DMCE_ERRNO_MAP X-macro the implementation uses, so adding a code to the
 * table automatically adds it to these tests.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <dmce/error.h>

struct code {
    int code;         /* DMCE_E* as returned (negative) */
    int value;        /* table value (positive) */
    const char *name; /* "DMCE_EBADADDR" */
    const char *msg;  /* table message */
};

static const struct code CODES[] = {
#define X_(n, v, m) {DMCE_E##n, (v), "DMCE_E" #n, (m)},
    DMCE_ERRNO_MAP(X_)
#undef X_
};
#define NCODES (sizeof(CODES) / sizeof(CODES[0]))

static void test_table_shape(void **state)
{
    (void)state;
    assert_true(NCODES >= 15);
    for (size_t i = 0; i < NCODES; i++) {
        assert_int_equal(CODES[i].code, -CODES[i].value);
        assert_true(CODES[i].code < 0);
        /* above the errno range, so never a collision with -errno */
        assert_true(CODES[i].value > 4000);
        assert_true(-CODES[i].code >= 4000);
        assert_true(CODES[i].msg[0] != '\0');
        for (size_t j = i + 1; j < NCODES; j++) {
            assert_int_not_equal(CODES[i].code, CODES[j].code);
            assert_string_not_equal(CODES[i].name, CODES[j].name);
        }
    }
    /* a few well-known constants, spelled out */
    assert_int_equal(DMCE_EBADADDR, -4001);
    assert_int_equal(DMCE_ENOBLOCK, -4002);
    assert_int_equal(DMCE_ENULLADDR, -4005);
    assert_int_equal(DMCE_ECLOSED, -4015);
}

static void test_codes_not_errno(void **state)
{
    (void)state;
    /* Every dmce code is outside [-3999, -1], the range error.c treats as errno. */
    for (size_t i = 0; i < NCODES; i++) {
        assert_false(CODES[i].code > -4000 && CODES[i].code < 0);
        /* and does not equal any errno the platform defines */
        const int e = -CODES[i].code;
        assert_true(e > 4000);
    }
    /* Common errno values stay well below 4000. */
    const int errs[] = {EPERM,  ENOENT, EINTR,     EIO,      EAGAIN,       ENOMEM,
                        EINVAL, ERANGE, ENOSPC,    EPROTO,   ECONNRESET,   ETIMEDOUT,
                        EBADF,  EPIPE,  EOVERFLOW, EMSGSIZE, ECONNREFUSED, EEXIST,
                        ENOSYS, EBUSY,  EFAULT,    ENOTCONN, EADDRINUSE,   ECANCELED};
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        assert_true(errs[i] > 0 && errs[i] < 4000);
        for (size_t j = 0; j < NCODES; j++)
            assert_int_not_equal(-errs[i], CODES[j].code);
    }
}

static void test_dmce_strerror(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *m = dmce_strerror(CODES[i].code);
        assert_non_null(m);
        assert_string_equal(m, CODES[i].msg);
        /* static: the same pointer each time */
        assert_ptr_equal(dmce_strerror(CODES[i].code), m);
        /* positive value is not the dmce code */
        assert_string_not_equal(dmce_strerror(CODES[i].value), CODES[i].msg);
    }
}

static void test_messages_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *mi = dmce_strerror(CODES[i].code);
        for (size_t j = i + 1; j < NCODES; j++)
            assert_string_not_equal(mi, dmce_strerror(CODES[j].code));
        /* and no dmce message is the generic fallback */
        assert_string_not_equal(mi, "unknown error");
        assert_string_not_equal(mi, "success");
        /* nor the message of a common errno */
        assert_string_not_equal(mi, strerror(ENOMEM));
        assert_string_not_equal(mi, strerror(EINVAL));
    }
}

static void test_dmce_err_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        const char *n = dmce_err_name(CODES[i].code);
        assert_non_null(n);
        assert_string_equal(n, CODES[i].name);
        assert_int_equal(strncmp(n, "DMCE_E", 6), 0);
        for (size_t j = i + 1; j < NCODES; j++)
            assert_string_not_equal(n, dmce_err_name(CODES[j].code));
    }
    assert_string_equal(dmce_err_name(DMCE_EBADADDR), "DMCE_EBADADDR");
    assert_string_equal(dmce_err_name(DMCE_ENOBLOCK), "DMCE_ENOBLOCK");
    assert_string_equal(dmce_err_name(DMCE_ENULLADDR), "DMCE_ENULLADDR");
    assert_string_equal(dmce_err_name(DMCE_ECLOSED), "DMCE_ECLOSED");
}

static void test_errno_values(void **state)
{
    (void)state;
    const struct {
        int e;
        const char *name;
    } errs[] = {
        {ENOMEM, "ENOMEM"}, {EINVAL, "EINVAL"}, {ERANGE, "ERANGE"},
        {ENOSPC, "ENOSPC"}, {EPROTO, "EPROTO"}, {ENOENT, "ENOENT"},
        {EPERM, "EPERM"},   {EPIPE, "EPIPE"},   {ECONNRESET, "ECONNRESET"},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        const char *m = dmce_strerror(-errs[i].e);
        assert_non_null(m);
        assert_string_equal(m, strerror(errs[i].e));
        assert_string_equal(dmce_err_name(-errs[i].e), errs[i].name);
        /* not confused with any dmce message */
        for (size_t j = 0; j < NCODES; j++)
            assert_string_not_equal(m, CODES[j].msg);
    }
    /* A negative errno the platform does not name. */
    assert_string_equal(dmce_err_name(-3999), "EUNKNOWN");
    assert_non_null(dmce_strerror(-3999));
}

static void test_zero_and_positive(void **state)
{
    (void)state;
    assert_string_equal(dmce_strerror(0), "success");
    assert_string_equal(dmce_err_name(0), "OK");

    const int pos[] = {1, EINVAL, ENOMEM, 4001, 4002, 4015, 99999, INT_MAX};
    for (size_t i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
        const char *m = dmce_strerror(pos[i]);
        assert_non_null(m);
        assert_string_not_equal(m, "success");
        assert_non_null(strstr(m, "unknown error"));
        assert_string_equal(dmce_err_name(pos[i]), "EUNKNOWN");
    }
}

static void test_unknown_negative(void **state)
{
    (void)state;
    /* Negative values outside errno and outside the table. */
    const int neg[] = {-4000, -4016, -4100, -4999, -5000, -65536, -1000000, INT_MIN + 1};
    for (size_t i = 0; i < sizeof(neg) / sizeof(neg[0]); i++) {
        int known = 0;
        for (size_t j = 0; j < NCODES; j++)
            known |= neg[i] == CODES[j].code;
        if (known)
            continue; /* the table grew into this value; covered above */
        assert_string_equal(dmce_strerror(neg[i]), "unknown error");
        assert_string_equal(dmce_err_name(neg[i]), "EUNKNOWN");
    }
    /* One past the end of the table is unknown. */
    int maxv = 0;
    for (size_t j = 0; j < NCODES; j++)
        if (CODES[j].value > maxv)
            maxv = CODES[j].value;
    assert_string_equal(dmce_strerror(-(maxv + 1)), "unknown error");
    assert_string_equal(dmce_err_name(-(maxv + 1)), "EUNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),       cmocka_unit_test(test_codes_not_errno),
        cmocka_unit_test(test_dmce_strerror),     cmocka_unit_test(test_messages_unique),
        cmocka_unit_test(test_dmce_err_name),     cmocka_unit_test(test_errno_values),
        cmocka_unit_test(test_zero_and_positive), cmocka_unit_test(test_unknown_negative),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
