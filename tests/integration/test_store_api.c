/*
 * Integration: the session store's public API (include/dmce/store.h)
 * against a real dmce-memd. ctest runs this suite three times: with
 * clients that map blocks (store handles are in-process), and as
 * store_api_msmp / store_api_socket with clients that never map (every
 * store call is an MSMP message, over the rings or the socket). The same
 * assertions hold in every run: the API behaves the same both ways. Tests
 * that need both kinds at once (a write through one seen by the other, a
 * byte flipped through a raw mapping) make the second client themselves.
 *
 * Every wait is for a condition with a bound (TTL expiry is polled);
 * a watchdog alarm ends the whole binary if anything hangs.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "msmp_store.h"
#include "util.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static int setup_daemon(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start(1, "--block-size=8M", "--max-blocks=8", NULL), 0);
    return 0;
}

static int teardown_daemon(void **state)
{
    (void)state;
    int s = harness_stop(1); /* the workers close their table handles on the way out */
    int left = harness_shm_count();
    harness_cleanup();
    assert_int_equal(s, 0);
    assert_int_equal(left, 0);
    return 0;
}

/* A client with this run's connect flags, set up. */
static dmce_client_t *client(void)
{
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

/* A client with explicit connect flags (0 = maps blocks). */
static dmce_client_t *client_flags(unsigned flags)
{
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = flags};
    dmce_client_t *c;
    assert_int_equal(harness_client_opts(&c, NULL, 0, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

static dmce_addr_t mkstore(dmce_client_t *c, uint64_t size, const dmce_store_params_t *p)
{
    dmce_addr_t a = 0;
    int r = dmce_store_create(c, size, p, &a);
    if (r != 0)
        fail_msg("dmce_store_create: %s", dmce_err_name(r));
    return a;
}

static dmce_store_t *sopen(dmce_client_t *c, dmce_addr_t a, unsigned flags)
{
    dmce_store_t *s = NULL;
    int r = dmce_store_open(c, a, flags, &s);
    if (r != 0)
        fail_msg("dmce_store_open: %s", dmce_err_name(r));
    return s;
}

static int sset(dmce_store_t *s, const char *k, const char *v)
{
    return dmce_store_set(s, k, (uint32_t)strlen(k), v, (uint32_t)strlen(v), DMCE_STORE_TTL_DEFAULT,
                          0, 0, NULL);
}

/* get as a C string ("" when absent); returns the get's result. */
static int sget(dmce_store_t *s, const char *k, char *buf, uint32_t cap)
{
    uint32_t n = 0;
    int r = dmce_store_get(s, k, (uint32_t)strlen(k), buf, cap - 1, &n, NULL);
    buf[r == 0 ? n : 0] = '\0';
    return r;
}

static dmce_store_stats_t sstats(dmce_store_t *s)
{
    dmce_store_stats_t st;
    assert_int_equal(dmce_store_stats(s, &st), 0);
    return st;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void expect(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s: got %s, want %s", what, dmce_err_name(got), dmce_err_name(want));
}

/* ---- create, open, info, close, destroy ------------------------------------ */

static void test_create_open_info_close_destroy(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_store_params_t p = {.max_key = 100,
                             .max_value = 4000,
                             .max_handles = 16,
                             .stripes = 4,
                             .flags = DMCE_STORE_EVICT,
                             .default_ttl_ms = 60000};
    dmce_addr_t a = mkstore(c, 1 * MiB, &p);
    dmce_store_t *s = sopen(c, a, 0);
    dmce_store_info_t in;
    assert_int_equal(dmce_store_info(s, &in), 0);
    assert_int_equal(in.size, 1 * MiB);
    assert_int_equal(in.max_key, 100);
    assert_int_equal(in.max_value, 4000);
    assert_int_equal(in.max_handles, 16);
    assert_int_equal(in.stripes, 4);
    assert_int_equal(in.flags, DMCE_STORE_EVICT);
    assert_int_equal(in.default_ttl_ms, 60000);
    assert_int_equal(in.in_process, harness_mapped());
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_stats_t st = sstats(s);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.stripes, 4);
    assert_true(st.handles >= 1);
    assert_true(st.mem_free > 0 && st.mem_free == st.mem_total);

    /* Forcing out-of-process always works; in-process only on a mapping client. */
    dmce_store_t *o = sopen(c, a, DMCE_STORE_OUT_OF_PROCESS);
    assert_int_equal(dmce_store_info(o, &in), 0);
    assert_int_equal(in.in_process, 0);
    assert_int_equal(in.max_value, 4000);
    dmce_store_t *x = NULL;
    if (harness_mapped()) {
        assert_int_equal(dmce_store_open(c, a, DMCE_STORE_IN_PROCESS, &x), 0);
        dmce_store_close(x);
    } else {
        expect(dmce_store_open(c, a, DMCE_STORE_IN_PROCESS, &x), -ENOTSUP, "in-process on NO_MAP");
        assert_null(x);
    }
    expect(dmce_store_open(c, a, DMCE_STORE_IN_PROCESS | DMCE_STORE_OUT_OF_PROCESS, &x), -ENOTSUP,
           "both mode flags");
    expect(dmce_store_open(c, a, 0x100, &x), -EINVAL, "unknown open flag");
    assert_int_equal(sset(s, "k", "v"), 0);
    char buf[16];
    assert_int_equal(sget(o, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "v");
    dmce_store_close(o);
    dmce_store_close(s);
    dmce_store_close(NULL);

    /* Destroyed: gone for new opens, its memory freed. */
    assert_int_equal(dmce_store_destroy(c, a), 0);
    expect(dmce_store_open(c, a, 0, &x), DMCE_EBADADDR, "open after destroy");
    expect(dmce_store_open(c, a, DMCE_STORE_OUT_OF_PROCESS, &x), DMCE_EBADADDR,
           "out-of-process open after destroy");
    expect(dmce_store_destroy(c, a), DMCE_EBADADDR, "destroy twice");
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_create_and_open_errors(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = 0;
    dmce_store_params_t p = {0};
    expect(dmce_store_create(c, DMCE_STORE_SIZE_MIN - 1, NULL, &a), -EINVAL, "too small");
    expect(dmce_store_create(NULL, 1 * MiB, NULL, &a), -EINVAL, "NULL client");
    expect(dmce_store_create(c, 1 * MiB, NULL, NULL), -EINVAL, "NULL out");
    p.reserved = 1;
    expect(dmce_store_create(c, 1 * MiB, &p, &a), -EINVAL, "reserved");
    p = (dmce_store_params_t){.stripes = 3};
    expect(dmce_store_create(c, 1 * MiB, &p, &a), -EINVAL, "stripes not a power of two");
    p = (dmce_store_params_t){.flags = 0x80};
    expect(dmce_store_create(c, 1 * MiB, &p, &a), -EINVAL, "unknown flag");
    p = (dmce_store_params_t){.max_key = DMCE_STORE_KEY_LIMIT + 1};
    expect(dmce_store_create(c, 1 * MiB, &p, &a), -EINVAL, "max_key");
    p = (dmce_store_params_t){.max_value = 2 * MiB}; /* above the daemon's 1 MiB frames */
    expect(dmce_store_create(c, 4 * MiB, &p, &a), -EINVAL, "max_value over max_payload");
    p = (dmce_store_params_t){.max_value = 60000}; /* 8 of them do not fit a 64 KiB store */
    expect(dmce_store_create(c, 64 * KiB, &p, &a), -EINVAL, "max_value does not fit");
    expect(dmce_store_create(c, 64 * MiB, NULL, &a), -EMSGSIZE, "larger than a block");
    dmce_stats_t ds;
    assert_int_equal(dmce_stats(c, &ds), 0);
    assert_int_equal(ds.allocations, 0); /* failed creates left nothing allocated */

    /* Defaults: a small store lowers max_value to fit. */
    a = mkstore(c, 64 * KiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    dmce_store_info_t in;
    assert_int_equal(dmce_store_info(s, &in), 0);
    assert_int_equal(in.max_key, DMCE_STORE_KEY_DEFAULT);
    assert_true(in.max_value > 0 && in.max_value < DMCE_STORE_VALUE_DEFAULT);
    assert_int_equal(in.max_handles, DMCE_STORE_HANDLES_DEFAULT);
    dmce_store_close(s);

    /* Addresses that are not stores. */
    dmce_store_t *x = NULL;
    dmce_addr_t plain, small, inner;
    assert_int_equal(dmce_malloc(c, 64 * KiB, &plain), 0);
    assert_int_equal(dmce_malloc(c, 100, &small), 0);
    assert_int_equal(dmce_addr_add(dmce_client_layout(c), a, 4096, &inner), 0);
    for (unsigned f = 0; f < 2; f++) {
        unsigned fl = f ? DMCE_STORE_OUT_OF_PROCESS : 0;
        expect(dmce_store_open(c, plain, fl, &x), DMCE_ENOTSTORE, "open a plain allocation");
        expect(dmce_store_open(c, small, fl, &x), DMCE_ENOTSTORE, "open a tiny allocation");
        expect(dmce_store_open(c, inner, fl, &x), DMCE_ENOTSTORE, "open inside a store");
        expect(dmce_store_open(c, DMCE_ADDR_NULL, fl, &x), DMCE_ENULLADDR, "open null");
        assert_null(x);
    }
    expect(dmce_store_open(NULL, a, 0, &x), -EINVAL, "NULL client");
    expect(dmce_store_open(c, a, 0, NULL), -EINVAL, "NULL out");
    expect(dmce_store_destroy(c, plain), DMCE_ENOTSTORE, "destroy a plain allocation");
    expect(dmce_store_destroy(c, small), DMCE_ENOTSTORE, "destroy a tiny allocation");
    uint8_t b = 0;
    assert_int_equal(dmce_read(c, plain, &b, 1), 0); /* still allocated */
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_free(c, plain), 0);
    assert_int_equal(dmce_free(c, small), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- operations ----------------------------------------------------------------- */

static void test_set_get_del_touch_versions(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    char buf[64];
    uint64_t v1 = 0, v2 = 0, v3 = 0, got = 0;
    expect(sget(s, "user:1", buf, sizeof buf), -ENOENT, "get before set");
    assert_int_equal(dmce_store_set(s, "user:1", 6, "alice", 5, DMCE_STORE_TTL_NEVER, 0, 0, &v1),
                     0);
    assert_true(v1 > 0);
    uint32_t n = 0;
    assert_int_equal(dmce_store_get(s, "user:1", 6, buf, sizeof buf, &n, &got), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "alice", 5);
    assert_true(got == v1);
    assert_int_equal(dmce_store_set(s, "user:1", 6, "bob", 3, DMCE_STORE_TTL_NEVER, 0, 0, &v2), 0);
    assert_true(v2 > v1);
    assert_int_equal(sget(s, "user:1", buf, sizeof buf), 0);
    assert_string_equal(buf, "bob");
    /* touch: same version and value */
    assert_int_equal(dmce_store_touch(s, "user:1", 6, 60000), 0);
    assert_int_equal(dmce_store_get(s, "user:1", 6, buf, sizeof buf, &n, &got), 0);
    assert_true(got == v2);
    expect(dmce_store_touch(s, "nobody", 6, 1000), -ENOENT, "touch absent");
    /* delete, then re-create: versions keep growing */
    assert_int_equal(dmce_store_del(s, "user:1", 6, 0), 0);
    expect(dmce_store_del(s, "user:1", 6, 0), -ENOENT, "del twice");
    expect(sget(s, "user:1", buf, sizeof buf), -ENOENT, "get after del");
    assert_int_equal(dmce_store_set(s, "user:1", 6, "carol", 5, 0, 0, 0, &v3), 0);
    assert_true(v3 > v2);
    /* binary keys and values */
    uint8_t key[8] = {0, 1, 2, 0, 255, 7, 0, 9}, val[300];
    for (unsigned i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)(i * 13);
    assert_int_equal(dmce_store_set(s, key, sizeof key, val, sizeof val, 0, 0, 0, NULL), 0);
    uint8_t back[300];
    assert_int_equal(dmce_store_get(s, key, sizeof key, back, sizeof back, &n, NULL), 0);
    assert_int_equal(n, sizeof val);
    assert_memory_equal(back, val, sizeof val);
    dmce_store_stats_t st = sstats(s);
    assert_int_equal(st.entries, 2);
    assert_true(st.sets >= 4 && st.dels >= 1 && st.touches >= 1 && st.hits >= 4 && st.misses >= 2);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_get_small_buffer_and_empty_value(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    assert_int_equal(sset(s, "k", "0123456789"), 0);
    char buf[32];
    uint32_t n = 0;
    memset(buf, 'x', sizeof buf);
    expect(dmce_store_get(s, "k", 1, buf, 4, &n, NULL), -ENOBUFS, "small buffer");
    assert_int_equal(n, 10);
    assert_int_equal(buf[0], 'x'); /* nothing copied */
    expect(dmce_store_get(s, "k", 1, NULL, 0, &n, NULL), -ENOBUFS, "no buffer");
    assert_int_equal(n, 10);
    assert_int_equal(dmce_store_get(s, "k", 1, buf, 10, &n, NULL), 0); /* exact fit */
    assert_int_equal(dmce_store_set(s, "empty", 5, NULL, 0, 0, 0, 0, NULL), 0);
    n = 99;
    assert_int_equal(dmce_store_get(s, "empty", 5, NULL, 0, &n, NULL), 0);
    assert_int_equal(n, 0);
    dmce_store_view_t v;
    assert_int_equal(dmce_store_view(s, "empty", 5, &v), 0);
    assert_int_equal(v.len, 0);
    dmce_store_view_release(s, &v);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_nx_xx_cas(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    char buf[32];
    uint64_t v1, v2, v3;
    expect(dmce_store_set(s, "k", 1, "a", 1, 0, 0, DMCE_STORE_XX, NULL), -ENOENT, "XX absent");
    assert_int_equal(dmce_store_set(s, "k", 1, "a", 1, 0, 0, DMCE_STORE_NX, &v1), 0);
    expect(dmce_store_set(s, "k", 1, "b", 1, 0, 0, DMCE_STORE_NX, NULL), -EEXIST, "NX present");
    assert_int_equal(dmce_store_set(s, "k", 1, "b", 1, 0, 0, DMCE_STORE_XX, &v2), 0);
    assert_true(v2 > v1);
    /* CAS: the right version wins, a stale one fails and changes nothing */
    expect(dmce_store_set(s, "k", 1, "c", 1, 0, v1, 0, NULL), DMCE_ECASFAIL, "CAS stale");
    assert_int_equal(sget(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "b");
    assert_int_equal(dmce_store_set(s, "k", 1, "c", 1, 0, v2, 0, &v3), 0);
    assert_true(v3 > v2);
    expect(dmce_store_del(s, "k", 1, v2), DMCE_ECASFAIL, "CAS del stale");
    assert_int_equal(sget(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "c");
    expect(dmce_store_set(s, "none", 4, "x", 1, 0, 5, 0, NULL), -ENOENT, "CAS absent");
    assert_int_equal(dmce_store_del(s, "k", 1, v3), 0);
    dmce_store_stats_t st = sstats(s);
    assert_true(st.cas_failures >= 4); /* XX, NX, and the two stale CAS */
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* A view is a stable snapshot: it survives delete and overwrites; check says it is stale. */
static void test_views_and_lease_past_delete(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    /* Room for the churn below: the held view keeps every record it
     * replaces from being reused, so a full stripe would wait for it. */
    dmce_store_params_t p = {.max_value = 2048, .stripes = 1};
    dmce_addr_t a = mkstore(c, 1 * MiB, &p);
    dmce_store_t *s = sopen(c, a, 0);
    char val[1000];
    for (unsigned i = 0; i < sizeof val; i++)
        val[i] = (char)('a' + i % 26);
    uint64_t ver;
    assert_int_equal(dmce_store_set(s, "sess", 4, val, sizeof val, 0, 0, 0, &ver), 0);
    dmce_store_view_t v, w;
    assert_int_equal(dmce_store_view(s, "sess", 4, &v), 0);
    assert_int_equal(v.len, sizeof val);
    assert_true(v.version == ver);
    assert_memory_equal(v.value, val, sizeof val);
    assert_int_equal(dmce_store_view_check(s, &v), 0);
    /* two views at once */
    assert_int_equal(dmce_store_view(s, "sess", 4, &w), 0);
    assert_true(w.value != NULL);
    dmce_store_view_release(s, &w);

    /* Held past a delete: the bytes stay, the check tells. */
    assert_int_equal(dmce_store_del(s, "sess", 4, 0), 0);
    expect(dmce_store_view_check(s, &v), DMCE_ESTALE, "view past delete");
    assert_memory_equal(v.value, val, sizeof val);
    /* ...and past overwrites that churn the whole store (in-process: the
     * lease keeps the record's memory from being reused). */
    char other[1000];
    memset(other, '#', sizeof other);
    for (unsigned i = 0; i < 300; i++) {
        char k[16];
        snprintf(k, sizeof k, "churn%u", i % 40);
        int r = dmce_store_set(s, k, (uint32_t)strlen(k), other, sizeof other, 0, 0, 0, NULL);
        assert_int_equal(r, 0);
    }
    assert_int_equal(dmce_store_set(s, "sess", 4, other, 10, 0, 0, 0, NULL), 0);
    expect(dmce_store_view_check(s, &v), DMCE_ESTALE, "view past overwrite");
    assert_memory_equal(v.value, val, sizeof val);
    dmce_store_view_release(s, &v);
    dmce_store_view_release(s, &v); /* twice: no-op */
    expect(dmce_store_view_check(s, &v), -EINVAL, "check after release");
    expect(dmce_store_view(s, "gone", 4, &v), -ENOENT, "view absent");
    assert_null(v.value);
    /* A fresh view is current; an overwrite makes it stale. */
    assert_int_equal(dmce_store_view(s, "sess", 4, &v), 0);
    assert_int_equal(dmce_store_view_check(s, &v), 0);
    assert_int_equal(sset(s, "sess", "new"), 0);
    expect(dmce_store_view_check(s, &v), DMCE_ESTALE, "view after set");
    dmce_store_view_release(s, &v);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* Every bad argument gets its error and changes nothing. */
static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_store_params_t p = {.max_key = 16, .max_value = 100};
    dmce_addr_t a = mkstore(c, 256 * KiB, &p);
    dmce_store_t *s = sopen(c, a, 0);
    assert_int_equal(sset(s, "k", "orig"), 0);
    dmce_store_stats_t before = sstats(s);
    char big[200], key17[17], buf[16];
    memset(big, 'v', sizeof big);
    memset(key17, 'k', sizeof key17);
    uint32_t n;
    expect(dmce_store_set(s, "", 0, "x", 1, 0, 0, 0, NULL), -EINVAL, "empty key");
    expect(dmce_store_set(s, NULL, 1, "x", 1, 0, 0, 0, NULL), -EINVAL, "NULL key");
    expect(dmce_store_set(s, key17, sizeof key17, "x", 1, 0, 0, 0, NULL), -E2BIG, "long key");
    expect(dmce_store_set(s, key17, 16, "x", 1, 0, 0, DMCE_STORE_XX, NULL), -ENOENT,
           "max key (XX)"); /* 16 is allowed */
    expect(dmce_store_set(s, "k", 1, big, 101, 0, 0, 0, NULL), -EMSGSIZE, "long value");
    expect(dmce_store_set(s, "k", 1, NULL, 5, 0, 0, 0, NULL), -EINVAL, "NULL value");
    expect(dmce_store_set(s, "k", 1, "x", 1, 0, 0, DMCE_STORE_NX | DMCE_STORE_XX, NULL), -EINVAL,
           "NX|XX");
    expect(dmce_store_set(s, "k", 1, "x", 1, 0, 7, DMCE_STORE_NX, NULL), -EINVAL, "NX with CAS");
    expect(dmce_store_set(s, "k", 1, "x", 1, 0, 0, 0x40, NULL), -EINVAL, "unknown set flag");
    expect(dmce_store_get(s, "", 0, buf, sizeof buf, &n, NULL), -EINVAL, "get empty key");
    expect(dmce_store_get(s, key17, sizeof key17, buf, sizeof buf, &n, NULL), -E2BIG,
           "get long key");
    expect(dmce_store_get(s, "k", 1, NULL, 4, &n, NULL), -EINVAL, "get NULL buffer");
    expect(dmce_store_get(s, "k", 1, buf, sizeof buf, NULL, NULL), -EINVAL, "get NULL vlen");
    expect(dmce_store_del(s, "", 0, 0), -EINVAL, "del empty key");
    expect(dmce_store_del(s, key17, sizeof key17, 0), -E2BIG, "del long key");
    expect(dmce_store_touch(s, NULL, 0, 5), -EINVAL, "touch NULL key");
    expect(dmce_store_touch(s, key17, sizeof key17, 5), -E2BIG, "touch long key");
    dmce_store_view_t v;
    expect(dmce_store_view(s, key17, sizeof key17, &v), -E2BIG, "view long key");
    expect(dmce_store_view(s, "k", 1, NULL), -EINVAL, "view NULL");
    expect(dmce_store_get(NULL, "k", 1, buf, sizeof buf, &n, NULL), -EINVAL, "NULL handle");
    expect(dmce_store_stats(s, NULL), -EINVAL, "stats NULL");
    expect(dmce_store_info(s, NULL), -EINVAL, "info NULL");
    assert_int_equal(sget(s, "k", buf, sizeof buf), 0);
    assert_string_equal(buf, "orig");
    dmce_store_stats_t after = sstats(s);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.bytes, before.bytes);
    assert_int_equal(after.sets, before.sets);
    assert_int_equal(after.mem_live, before.mem_live);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- full store ----------------------------------------------------------------------- */

static void test_full_without_eviction(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_store_params_t p = {.max_value = 1024, .stripes = 1, .max_handles = 8};
    dmce_addr_t a = mkstore(c, 64 * KiB, &p);
    dmce_store_t *s = sopen(c, a, 0);
    char val[900], k[16], buf[1024];
    unsigned stored = 0;
    int r = 0;
    for (unsigned i = 0; i < 200; i++) {
        memset(val, 'a' + (int)(i % 26), sizeof val);
        snprintf(k, sizeof k, "k%u", i);
        r = dmce_store_set(s, k, (uint32_t)strlen(k), val, sizeof val, 0, 0, 0, NULL);
        if (r != 0)
            break;
        stored++;
    }
    expect(r, DMCE_ESTOREFULL, "set into a full store");
    assert_true(stored >= 40);
    dmce_store_stats_t st = sstats(s);
    assert_int_equal(st.entries, stored);
    assert_int_equal(st.evictions, 0);
    /* The failed set changed nothing; every stored value is intact. */
    snprintf(k, sizeof k, "k%u", stored);
    expect(sget(s, k, buf, sizeof buf), -ENOENT, "the refused key");
    for (unsigned i = 0; i < stored; i++) {
        uint32_t n;
        snprintf(k, sizeof k, "k%u", i);
        assert_int_equal(dmce_store_get(s, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL), 0);
        assert_int_equal(n, sizeof val);
        assert_int_equal(buf[0], 'a' + (int)(i % 26));
    }
    /* Room again after a delete. */
    assert_int_equal(dmce_store_del(s, "k0", 2, 0), 0);
    snprintf(k, sizeof k, "k%u", stored);
    assert_int_equal(dmce_store_set(s, k, (uint32_t)strlen(k), val, sizeof val, 0, 0, 0, NULL), 0);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_full_with_eviction(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_store_params_t p = {
        .max_value = 1024, .stripes = 1, .max_handles = 8, .flags = DMCE_STORE_EVICT};
    dmce_addr_t a = mkstore(c, 64 * KiB, &p);
    dmce_store_t *s = sopen(c, a, 0);
    char val[900], k[16], buf[1024];
    for (unsigned i = 0; i < 400; i++) {
        memset(val, 'a' + (int)(i % 26), sizeof val);
        snprintf(k, sizeof k, "k%u", i);
        assert_int_equal(dmce_store_set(s, k, (uint32_t)strlen(k), val, sizeof val, 0, 0, 0, NULL),
                         0);
        if (i >= 10) { /* keep k0 hot: CLOCK spares what is read */
            uint32_t n;
            assert_int_equal(dmce_store_get(s, "k0", 2, buf, sizeof buf, &n, NULL), 0);
        }
    }
    dmce_store_stats_t st = sstats(s);
    assert_true(st.evictions >= 300);
    assert_true(st.entries > 0 && st.entries < 100);
    assert_int_equal(sget(s, "k399", buf, sizeof buf), 0); /* the newest is there */
    assert_int_equal(sget(s, "k0", buf, sizeof buf), 0);   /* and the hot one */
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- TTL --------------------------------------------------------------------------------- */

struct gone_arg {
    dmce_store_t *s;
    const char *key;
};

static int key_gone(void *arg)
{
    struct gone_arg *g = arg;
    char buf[64];
    return sget(g->s, g->key, buf, sizeof buf) == -ENOENT;
}

static void test_ttl_touch_default_and_sweep(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    char buf[64];
    uint64_t t0 = dmce_now_ms(), w0 = wall_ms();
    assert_int_equal(dmce_store_set(s, "short", 5, "v", 1, 150, 0, 0, NULL), 0);
    assert_int_equal(dmce_store_set(s, "saved", 5, "v", 1, 150, 0, 0, NULL), 0);
    assert_int_equal(dmce_store_set(s, "never", 5, "v", 1, DMCE_STORE_TTL_NEVER, 0, 0, NULL), 0);
    dmce_store_view_t v;
    assert_int_equal(dmce_store_view(s, "short", 5, &v), 0);
    assert_true(v.expire_ms >= w0 + 150 && v.expire_ms <= wall_ms() + 150); /* wall clock */
    assert_int_equal(dmce_store_touch(s, "saved", 5, DMCE_STORE_TTL_NEVER), 0);
    struct gone_arg g = {s, "short"};
    assert_true(harness_wait(key_gone, &g, 5000));
    expect(dmce_store_view_check(s, &v), DMCE_ESTALE, "view of an expired entry");
    dmce_store_view_release(s, &v);
    assert_true(dmce_now_ms() - t0 >= 140); /* not before its time (clock granularity) */
    assert_int_equal(sget(s, "saved", buf, sizeof buf), 0);
    assert_int_equal(sget(s, "never", buf, sizeof buf), 0);
    expect(dmce_store_touch(s, "short", 5, 1000), -ENOENT, "touch expired");
    int removed = dmce_store_sweep(s);
    assert_true(removed >= 0 && removed <= 1);
    assert_int_equal(dmce_store_sweep(s), 0);
    dmce_store_stats_t st = sstats(s);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.expirations, 1);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);

    /* A store-wide default TTL applies to sets with DMCE_STORE_TTL_DEFAULT. */
    dmce_store_params_t p = {.default_ttl_ms = 150};
    a = mkstore(c, 1 * MiB, &p);
    s = sopen(c, a, 0);
    assert_int_equal(sset(s, "dflt", "v"), 0);
    assert_int_equal(dmce_store_set(s, "kept", 4, "v", 1, DMCE_STORE_TTL_NEVER, 0, 0, NULL), 0);
    g = (struct gone_arg){s, "dflt"};
    assert_true(harness_wait(key_gone, &g, 5000));
    assert_int_equal(sget(s, "kept", buf, sizeof buf), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- corruption ------------------------------------------------------------------------ */

/* A byte flipped in one record (through a raw mapping of the store's
 * allocation): that key reports DMCE_EBADENTRY, the others work, verify
 * finds it, and a new set of the key heals it. */
static void test_corrupted_entry_only_that_key(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_client_t *raw = client_flags(0);
    dmce_addr_t a = mkstore(c, 256 * KiB, NULL);
    dmce_store_t *s = sopen(c, a, 0);
    const char *mark = "VALUE-TO-BE-DAMAGED-4711";
    assert_int_equal(sset(s, "victim", mark), 0);
    assert_int_equal(sset(s, "bystander", "fine"), 0);
    uint8_t *mem;
    assert_int_equal(dmce_map(raw, a, 256 * KiB, 0, (void **)&mem), 0);
    uint8_t *hit = memmem(mem, 256 * KiB, mark, strlen(mark));
    assert_non_null(hit);
    hit[3] ^= 0x20;
    char buf[64];
    expect(sget(s, "victim", buf, sizeof buf), DMCE_EBADENTRY, "get the damaged key");
    dmce_store_view_t v;
    expect(dmce_store_view(s, "victim", 6, &v), DMCE_EBADENTRY, "view the damaged key");
    assert_int_equal(sget(s, "bystander", buf, sizeof buf), 0);
    assert_string_equal(buf, "fine");
    expect(dmce_store_verify(s), DMCE_ECORRUPT, "verify");
    assert_true(sstats(s).corrupt >= 2);
    /* Overwriting the key replaces the damaged record. */
    assert_int_equal(sset(s, "victim", "healed"), 0);
    assert_int_equal(sget(s, "victim", buf, sizeof buf), 0);
    assert_string_equal(buf, "healed");
    assert_int_equal(dmce_store_verify(s), 0);
    assert_int_equal(dmce_unmap(raw, mem), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(raw), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- both kinds of handle on one store --------------------------------------------------- */

static void test_in_and_out_of_process_see_each_other(void **state)
{
    (void)state;
    dmce_client_t *mc = client_flags(0), *oc = client_flags(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a = mkstore(harness_mapped() ? mc : oc, 1 * MiB, NULL);
    dmce_store_t *in = sopen(mc, a, 0), *out = sopen(oc, a, 0);
    dmce_store_info_t ii, oi;
    assert_int_equal(dmce_store_info(in, &ii), 0);
    assert_int_equal(dmce_store_info(out, &oi), 0);
    assert_int_equal(ii.in_process, 1);
    assert_int_equal(oi.in_process, 0);
    char k[16], val[32], buf[32];
    for (unsigned i = 0; i < 200; i++) {
        dmce_store_t *w = i % 2 ? in : out, *r = i % 2 ? out : in;
        snprintf(k, sizeof k, "k%u", i % 7);
        snprintf(val, sizeof val, "value-%u", i);
        uint64_t ver = 0, got = 0;
        assert_int_equal(
            dmce_store_set(w, k, (uint32_t)strlen(k), val, (uint32_t)strlen(val), 0, 0, 0, &ver),
            0);
        uint32_t n;
        assert_int_equal(dmce_store_get(r, k, (uint32_t)strlen(k), buf, sizeof buf, &n, &got), 0);
        assert_int_equal(n, strlen(val));
        assert_memory_equal(buf, val, n);
        assert_true(got == ver);
        if (i % 10 == 9) { /* CAS across kinds */
            assert_int_equal(dmce_store_set(r, k, (uint32_t)strlen(k), "x", 1, 0, ver, 0, &ver), 0);
            expect(dmce_store_set(w, k, (uint32_t)strlen(k), "y", 1, 0, got, 0, NULL),
                   DMCE_ECASFAIL, "stale CAS from the other kind");
            assert_int_equal(dmce_store_del(w, k, (uint32_t)strlen(k), ver), 0);
            expect(sget(r, k, buf, sizeof buf), -ENOENT, "deleted by the other kind");
        }
    }
    /* Both count in one set of stats. */
    dmce_store_stats_t si = sstats(in), so = sstats(out);
    assert_int_equal(si.entries, so.entries);
    assert_true(si.sets >= 200 && si.sets == so.sets);
    assert_true(si.handles >= 2); /* this process's slot and the daemon worker's */
    dmce_store_close(in);
    dmce_store_close(out);
    assert_int_equal(dmce_store_destroy(harness_mapped() ? mc : oc, a), 0);
    assert_int_equal(dmce_disconnect(mc), 0);
    assert_int_equal(dmce_disconnect(oc), 0);
}

/* The daemon caches its table handles by address: a store destroyed and
 * created again at the same address must be the new one for it too. */
static void test_destroy_and_recreate_same_address(void **state)
{
    (void)state;
    dmce_client_t *c = client(), *oc = client_flags(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    dmce_store_t *s = sopen(oc, a, 0);
    assert_int_equal(sset(s, "old", "1"), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    dmce_addr_t b = mkstore(c, 1 * MiB, NULL);
    s = sopen(oc, b, 0);
    char buf[8];
    expect(sget(s, "old", buf, sizeof buf), -ENOENT, "a key of the old store");
    assert_int_equal(sset(s, "new", "2"), 0);
    assert_int_equal(sstats(s).entries, 1);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    if (b == a)
        print_message("      (recreated at the same address)\n");
    assert_int_equal(dmce_store_destroy(c, b), 0);
    assert_int_equal(dmce_disconnect(oc), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* A store lives in its creator's session: disconnecting frees it. */
static void test_store_ends_with_its_session(void **state)
{
    (void)state;
    dmce_client_t *owner = client(), *user = client();
    dmce_addr_t a = mkstore(owner, 1 * MiB, NULL);
    dmce_store_t *s = sopen(user, a, 0);
    assert_int_equal(sset(s, "k", "v"), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_disconnect(owner), 0);
    dmce_store_t *x = NULL;
    expect(dmce_store_open(user, a, 0, &x), DMCE_EBADADDR, "open after the owner left");
    assert_int_equal(dmce_disconnect(user), 0);
}

/* ---- raw frames: the daemon's decoders ----------------------------------------------------- */

static void raw_expect(int fd, uint16_t op, const void *p, uint32_t len, int32_t want)
{
    static uint64_t id = 1000;
    uint64_t my = ++id;
    assert_int_equal(raw_send(fd, op, my, p, len), 0);
    int32_t st = 1;
    uint16_t rop = 0;
    uint64_t rid = 0;
    uint8_t buf[4096];
    int n = raw_recv(fd, &st, &rop, &rid, buf, sizeof buf);
    assert_true(n >= 0);
    assert_int_equal(rop, op);
    assert_true(rid == my);
    if (st != want)
        fail_msg("op %u (%u bytes): got %s, want %s", op, len, dmce_err_name(st),
                 dmce_err_name(want));
}

static void test_raw_frames_bad_payloads(void **state)
{
    (void)state;
    dmce_client_t *c = client();
    dmce_addr_t a = mkstore(c, 1 * MiB, NULL);
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    uint8_t p[128];
    memset(p, 0, sizeof p);
    dmce_put_le64(p, a);
    /* before setup */
    raw_expect(fd, DMCE_MSMP_OP_STORE_OPEN, p, 8, DMCE_ENOSETUP);
    assert_int_equal(raw_setup(fd, 0), 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_OPEN, p, 8, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_OPEN, p, 7, -EBADMSG);
    raw_expect(fd, DMCE_MSMP_OP_STORE_OPEN, p, 9, -EBADMSG);
    raw_expect(fd, DMCE_MSMP_OP_STORE_STATS, p, 0, -EBADMSG);
    raw_expect(fd, DMCE_MSMP_OP_STORE_VERIFY, p, 8, 0);
    /* get: klen larger than the payload, smaller, zero */
    dmce_put_le32(p + 8, 5);
    dmce_put_le32(p + 12, 100);
    memcpy(p + 16, "abcde", 5);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 16 + 5, -ENOENT);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 16 + 4, -EBADMSG);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 16 + 6, -EBADMSG);
    dmce_put_le32(p + 8, 0xffffffffu);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 16 + 5, -EBADMSG);
    dmce_put_le32(p + 8, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 16, -EINVAL);
    raw_expect(fd, DMCE_MSMP_OP_STORE_GET, p, 15, -EBADMSG);
    /* set: reserved field, unknown flags, lengths */
    memset(p + 8, 0, 32);
    dmce_put_le32(p + 28, 1); /* klen */
    dmce_put_le32(p + 32, 2); /* vlen */
    memcpy(p + 40, "kvv", 3);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 43, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 44, -EBADMSG);
    dmce_put_le32(p + 36, 1);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 43, -EBADMSG);
    dmce_put_le32(p + 36, 0);
    dmce_put_le32(p + 24, 4);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 43, -EBADMSG);
    dmce_put_le32(p + 24, 3); /* NX|XX: the table refuses */
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 43, -EINVAL);
    dmce_put_le32(p + 24, 0);
    dmce_put_le32(p + 28, 0xfffffff0u); /* klen + vlen wrap a 32-bit sum */
    dmce_put_le32(p + 32, 0x20u);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SET, p, 43, -EBADMSG);
    /* del/touch: reserved, lengths */
    memset(p + 8, 0, 32);
    dmce_put_le32(p + 16, 1);
    p[24] = 'k';
    raw_expect(fd, DMCE_MSMP_OP_STORE_TOUCH, p, 25, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_DEL, p, 26, -EBADMSG);
    dmce_put_le32(p + 20, 9);
    raw_expect(fd, DMCE_MSMP_OP_STORE_DEL, p, 25, -EBADMSG);
    dmce_put_le32(p + 20, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_DEL, p, 25, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_DEL, p, 25, -ENOENT);
    /* format: an existing store, flags, not an allocation start */
    memset(p + 8, 0, 32);
    raw_expect(fd, DMCE_MSMP_OP_STORE_FORMAT, p, 40, -EEXIST);
    raw_expect(fd, DMCE_MSMP_OP_STORE_FORMAT, p, 39, -EBADMSG);
    dmce_put_le32(p + 28, 2);
    raw_expect(fd, DMCE_MSMP_OP_STORE_FORMAT, p, 40, -EBADMSG);
    dmce_put_le32(p + 28, 0);
    dmce_addr_t inner;
    assert_int_equal(dmce_addr_add(dmce_client_layout(c), a, 64, &inner), 0);
    dmce_put_le64(p, inner);
    raw_expect(fd, DMCE_MSMP_OP_STORE_FORMAT, p, 40, DMCE_EBADADDR);
    raw_expect(fd, DMCE_MSMP_OP_STORE_OPEN, p, 8, DMCE_ENOTSTORE);
    dmce_put_le64(p, 0);
    raw_expect(fd, DMCE_MSMP_OP_STORE_SWEEP, p, 8, DMCE_ENULLADDR);
    /* the reserved store ops are unknown */
    raw_expect(fd, 46, p, 8, -EOPNOTSUPP); /* unused op numbers */
    raw_expect(fd, 200, p, 8, -EOPNOTSUPP);
    close(fd);
    /* Nothing above broke the store. */
    dmce_store_t *s = sopen(c, a, 0);
    char buf[8];
    expect(sget(s, "k", buf, sizeof buf), -ENOENT, "the key the raw del removed");
    assert_int_equal(dmce_store_stats(s, &(dmce_store_stats_t){0}), 0);
    assert_int_equal(sstats(s).entries, 0);
    assert_int_equal(dmce_store_verify(s), 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "test_store_api: watchdog: 120 s passed, giving up\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    harness_cleanup();
    _exit(99);
}

int main(void)
{
    signal(SIGALRM, watchdog);
    alarm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_open_info_close_destroy),
        cmocka_unit_test(test_create_and_open_errors),
        cmocka_unit_test(test_set_get_del_touch_versions),
        cmocka_unit_test(test_get_small_buffer_and_empty_value),
        cmocka_unit_test(test_nx_xx_cas),
        cmocka_unit_test(test_views_and_lease_past_delete),
        cmocka_unit_test(test_bad_input_changes_nothing),
        cmocka_unit_test(test_full_without_eviction),
        cmocka_unit_test(test_full_with_eviction),
        cmocka_unit_test(test_ttl_touch_default_and_sweep),
        cmocka_unit_test(test_corrupted_entry_only_that_key),
        cmocka_unit_test(test_in_and_out_of_process_see_each_other),
        cmocka_unit_test(test_destroy_and_recreate_same_address),
        cmocka_unit_test(test_store_ends_with_its_session),
        cmocka_unit_test(test_raw_frames_bad_payloads),
    };
    return cmocka_run_group_tests(tests, setup_daemon, teardown_daemon);
}
