/*
 * Unit and multi-process tests for the shared-memory key/value table
 * (runtime/store_table.c): format and attach errors, insert / update /
 * delete / miss, CAS, TTL with an injected clock, touch, CLOCK eviction
 * order, a full table without eviction, forced collisions, bad input,
 * checksum-detected corruption, zero-copy views across deletes, handle
 * slots and fork, stolen locks, a sweep over every fault-injection point,
 * 4 writers + 4 readers verifying every value they see, 200 writers
 * SIGKILLed at random moments, and the mirroring hook: a copy that gets
 * exactly the reported ranges stays the same table, also across a crash.
 * Regions are MAP_SHARED anonymous memory so forked children share them;
 * children report through their exit code.
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmce/error.h>

#include "store_table.h"

/* ---- helpers ----------------------------------------------------------- */

static uint64_t clock_ms = 1000000; /* the injected clock (per process) */

static uint64_t test_now(void *arg)
{
    (void)arg;
    return clock_ms;
}

static void *region(uint64_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0x5a, size); /* format must not rely on zeroed memory */
    return p;
}

static void unregion(void *p, uint64_t size)
{
    munmap(p, size);
}

static dmce_stab_t *open_h(void *base, uint64_t size)
{
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.now_ms = test_now;
    dmce_stab_t *t = NULL;
    assert_int_equal(dmce_stab_open(base, size, &o, &t), 0);
    return t;
}

static void *new_table(uint64_t size, const dmce_stab_params_t *p, dmce_stab_t **t)
{
    void *b = region(size);
    assert_int_equal(dmce_stab_format(b, size, p), 0);
    assert_int_equal(dmce_stab_attach(b, size), 0);
    *t = open_h(b, size);
    assert_int_equal(dmce_stab_verify(*t), 0);
    return b;
}

static dmce_stab_params_t params(uint32_t max_value, uint32_t nstripes, uint32_t nbuckets,
                                 uint32_t flags)
{
    dmce_stab_params_t p;
    memset(&p, 0, sizeof p);
    p.max_key = 64;
    p.max_value = max_value;
    p.nstripes = nstripes;
    p.nbuckets = nbuckets;
    p.flags = flags;
    return p;
}

static int sets(dmce_stab_t *t, const char *k, const char *v)
{
    return dmce_stab_set(t, k, (uint32_t)strlen(k), v, (uint32_t)strlen(v), 0, 0, 0, NULL);
}

/* get as a C string ("" when absent); returns the get's result. */
static int gets(dmce_stab_t *t, const char *k, char *buf, uint32_t cap)
{
    uint32_t n = 0;
    int rc = dmce_stab_get(t, k, (uint32_t)strlen(k), buf, cap - 1, &n, NULL);
    buf[rc == 0 ? n : 0] = '\0';
    return rc;
}

static dmce_stab_stats_t stats(dmce_stab_t *t)
{
    dmce_stab_stats_t s;
    assert_int_equal(dmce_stab_stats(t, &s), 0);
    return s;
}

static uint64_t xs = 88172645463325252ull;

static uint64_t rnd(void)
{
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return xs;
}

/*
 * Self-checking values: header + payload; a reader can tell a whole value
 * written for key k from anything else.
 */
typedef struct vhdr {
    uint32_t key_id, writer, len, csum;
    uint64_t seq;
} vhdr_t;

static uint32_t fnv(const uint8_t *p, size_t n, uint32_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint32_t make_value(uint8_t *buf, uint32_t key_id, uint32_t writer, uint64_t seq,
                           uint32_t len)
{
    vhdr_t h = {key_id, writer, len, 0, seq};
    uint8_t *pl = buf + sizeof h;
    for (uint32_t i = 0; i < len; i++)
        pl[i] = (uint8_t)(seq * 31 + i * 7 + key_id);
    h.csum = fnv(pl, len, fnv((const uint8_t *)&h, offsetof(vhdr_t, csum), 2166136261u));
    h.csum = fnv((const uint8_t *)&h.seq, 8, h.csum);
    memcpy(buf, &h, sizeof h);
    return (uint32_t)sizeof h + len;
}

/* 1 if buf holds a whole value written for key_id. */
static int value_ok(const uint8_t *buf, uint32_t n, uint32_t key_id, uint64_t *seq)
{
    vhdr_t h;
    if (n < sizeof h)
        return 0;
    memcpy(&h, buf, sizeof h);
    if (h.key_id != key_id || n != sizeof h + h.len)
        return 0;
    uint32_t c =
        fnv(buf + sizeof h, h.len, fnv((const uint8_t *)&h, offsetof(vhdr_t, csum), 2166136261u));
    c = fnv((const uint8_t *)&h.seq, 8, c);
    if (c != h.csum)
        return 0;
    if (seq)
        *seq = h.seq;
    return 1;
}

static void key_name(char *k, uint32_t id)
{
    snprintf(k, 32, "key:%u", id);
}

static int child_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

/* Identity word of a process that has exited (pid not reused yet). */
static uint64_t dead_identity(void)
{
    uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        *shared = dmce_stab_self_id();
        _exit(0);
    }
    child_status(pid);
    uint64_t id = *shared;
    munmap(shared, 4096);
    assert_int_equal((uint32_t)id, (uint32_t)pid);
    return id;
}

static dmce_stab_stripe_t *stripe0(void *base)
{
    const dmce_stab_hdr_t *h = base;
    return (dmce_stab_stripe_t *)((uint8_t *)base + h->stripes_off);
}

/* ---- format and attach ------------------------------------------------- */

static void test_format_attach_open(void **state)
{
    (void)state;
    const uint64_t size = 4 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    dmce_stab_params_t p;
    dmce_stab_params_get(b, &p);
    assert_int_equal(p.max_key, DMCE_STAB_KEY_DEFAULT);
    assert_int_equal(p.max_value, DMCE_STAB_VALUE_DEFAULT);
    assert_int_equal(p.nslots, DMCE_STAB_SLOTS_DEFAULT);
    assert_int_equal(p.nstripes, 2); /* 4 MiB / max(1 MiB, 16 max records) -> 2 (pow2 floor) */
    dmce_stab_stats_t s = stats(t);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.mem_free, s.mem_total);
    assert_true(s.mem_total > size * 9 / 10);
    assert_int_equal(s.handles, 1);
    assert_int_equal(s.locks_held, 0);
    dmce_stab_close(t);
    assert_int_equal(stats(t = open_h(b, size)).handles, 1); /* the slot came back */
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_attach_errors(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    dmce_stab_close(t);
    dmce_stab_hdr_t *h = b;
    dmce_stab_hdr_t saved = *h;

    assert_int_equal(dmce_stab_attach(NULL, size), -EINVAL);
    assert_int_equal(dmce_stab_attach((uint8_t *)b + 8, size - 8), -EINVAL);
    h->magic ^= 1;
    assert_int_equal(dmce_stab_attach(b, size), DMCE_EBADMAGIC);
    assert_int_equal(dmce_stab_open(b, size, NULL, &t), DMCE_EBADMAGIC);
    *h = saved;
    h->version = DMCE_STAB_VERSION + 1;
    assert_int_equal(dmce_stab_attach(b, size), DMCE_EVERSION);
    h->version = 1; /* format 1 hashed with XXH32: refused, never misread */
    assert_int_equal(dmce_stab_attach(b, size), DMCE_EVERSION);
    *h = saved;
    h->layout ^= 0x100;
    assert_int_equal(dmce_stab_attach(b, size), DMCE_ELAYOUT);
    *h = saved;
    assert_int_equal(dmce_stab_attach(b, size - 4096), DMCE_ECORRUPT); /* size differs */
    h->max_key = 65;                                                   /* checksum breaks */
    assert_int_equal(dmce_stab_attach(b, size), DMCE_ECORRUPT);
    *h = saved;
    h->nstripes = 3; /* impossible geometry */
    assert_int_equal(dmce_stab_attach(b, size), DMCE_ECORRUPT);
    *h = saved;
    assert_int_equal(dmce_stab_attach(b, size), 0);
    unregion(b, size);
}

static void test_format_rejects_bad_params(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    void *b = region(size);
    dmce_stab_params_t p = params(0, 0, 0, 0);
    assert_int_equal(dmce_stab_format(NULL, size, NULL), -EINVAL);
    assert_int_equal(dmce_stab_format((uint8_t *)b + 8, size - 8, NULL), -EINVAL);
    assert_int_equal(dmce_stab_format(b, DMCE_STAB_MIN_SIZE - 1, NULL), -EINVAL);
    p.max_key = DMCE_STAB_KEY_LIMIT + 1;
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    p = params(512 << 10, 1, 0, 0); /* 8 such records do not fit 1 MiB */
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    p = params(0, 3, 0, 0);
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    p = params(0, 1, 6, 0);
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    p = params(0, 0, 0, 0x80);
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    p = params(0, 1024, 0, 0); /* arenas under 1 KiB */
    assert_int_equal(dmce_stab_format(b, size, &p), -EINVAL);
    /* Defaults on a small region shrink max_value to fit, and say so. */
    assert_int_equal(dmce_stab_format(b, 64 << 10, NULL), 0);
    dmce_stab_params_get(b, &p);
    assert_true(p.max_value < DMCE_STAB_VALUE_DEFAULT && p.max_value > 4000);
    unregion(b, size);
}

/* ---- basic operations -------------------------------------------------- */

static void test_insert_update_delete_miss(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    char buf[256];
    uint64_t v1 = 0, v2 = 0, vg = 0;
    uint32_t n = 0;

    assert_int_equal(gets(t, "alpha", buf, sizeof buf), -ENOENT);
    assert_int_equal(dmce_stab_set(t, "alpha", 5, "one", 3, 0, 0, 0, &v1), 0);
    assert_true(v1 > 0);
    assert_int_equal(dmce_stab_get(t, "alpha", 5, buf, sizeof buf, &n, &vg), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "one", 3);
    assert_int_equal(vg, v1);
    assert_int_equal(dmce_stab_set(t, "alpha", 5, "second", 6, 0, 0, 0, &v2), 0);
    assert_true(v2 > v1);
    assert_int_equal(gets(t, "alpha", buf, sizeof buf), 0);
    assert_string_equal(buf, "second");
    assert_int_equal(sets(t, "beta", "b"), 0);
    dmce_stab_stats_t s = stats(t);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.bytes, 5 + 6 + 4 + 1);
    assert_int_equal(dmce_stab_del(t, "alpha", 5, 0), 0);
    assert_int_equal(gets(t, "alpha", buf, sizeof buf), -ENOENT);
    assert_int_equal(dmce_stab_del(t, "alpha", 5, 0), -ENOENT);
    assert_int_equal(gets(t, "beta", buf, sizeof buf), 0);
    assert_string_equal(buf, "b");
    s = stats(t);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.sets, 3);
    assert_int_equal(s.dels, 1);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.misses, 2);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_get_small_buffer_and_empty_value(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    char buf[8] = "xxxxxxx";
    uint32_t n = 0;
    assert_int_equal(sets(t, "k", "0123456789"), 0);
    assert_int_equal(dmce_stab_get(t, "k", 1, buf, 4, &n, NULL), -ENOBUFS);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "xxxx", 4); /* nothing copied */
    assert_int_equal(dmce_stab_set(t, "empty", 5, NULL, 0, 0, 0, 0, NULL), 0);
    assert_int_equal(dmce_stab_get(t, "empty", 5, NULL, 0, &n, NULL), 0);
    assert_int_equal(n, 0);
    dmce_stab_view_t v;
    assert_int_equal(dmce_stab_view(t, "empty", 5, &v), 0);
    assert_int_equal(v.len, 0);
    dmce_stab_view_release(t, &v);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_cas_success_and_failure(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    char buf[64];
    uint64_t v1, v2, v3;
    assert_int_equal(dmce_stab_set(t, "s", 1, "a", 1, 0, 0, 0, &v1), 0);
    assert_int_equal(dmce_stab_set(t, "s", 1, "b", 1, 0, v1, 0, &v2), 0);
    assert_true(v2 > v1);
    assert_int_equal(dmce_stab_set(t, "s", 1, "c", 1, 0, v1, 0, &v3), -ESTALE);
    assert_int_equal(gets(t, "s", buf, sizeof buf), 0);
    assert_string_equal(buf, "b");
    assert_int_equal(dmce_stab_set(t, "nokey", 5, "c", 1, 0, 7, 0, NULL), -ENOENT);
    assert_int_equal(gets(t, "nokey", buf, sizeof buf), -ENOENT);
    /* NX ("add") and XX ("replace") */
    assert_int_equal(dmce_stab_set(t, "s", 1, "d", 1, 0, 0, DMCE_STAB_SET_NX, NULL), -EEXIST);
    assert_int_equal(dmce_stab_set(t, "n", 1, "d", 1, 0, 0, DMCE_STAB_SET_NX, NULL), 0);
    assert_int_equal(dmce_stab_set(t, "x", 1, "e", 1, 0, 0, DMCE_STAB_SET_XX, NULL), -ENOENT);
    assert_int_equal(gets(t, "x", buf, sizeof buf), -ENOENT);
    assert_int_equal(dmce_stab_set(t, "n", 1, "e", 1, 0, 0, DMCE_STAB_SET_XX, NULL), 0);
    /* conditional delete */
    assert_int_equal(dmce_stab_del(t, "s", 1, v1), -ESTALE);
    assert_int_equal(dmce_stab_del(t, "s", 1, v2), 0);
    assert_int_equal(stats(t).cas_failures, 5);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_version_not_reused_after_delete(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    uint64_t last = 0, v;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(dmce_stab_set(t, "k", 1, "v", 1, 0, 0, 0, &v), 0);
        assert_true(v > last);
        last = v;
        if (i % 3 == 0)
            assert_int_equal(dmce_stab_del(t, "k", 1, 0), 0);
    }
    /* A version from before a delete never matches the re-created key. */
    assert_int_equal(dmce_stab_del(t, "k", 1, 0), 0);
    assert_int_equal(dmce_stab_set(t, "k", 1, "w", 1, 0, 0, 0, &v), 0);
    assert_int_equal(dmce_stab_set(t, "k", 1, "z", 1, 0, last, 0, NULL), -ESTALE);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- TTL --------------------------------------------------------------- */

static void test_ttl_expiry_with_injected_clock(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_params_t p = params(0, 0, 0, 0);
    p.default_ttl_ms = 1000;
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    char buf[64];
    clock_ms = 1000000;
    assert_int_equal(dmce_stab_set(t, "short", 5, "x", 1, 100, 0, 0, NULL), 0);
    assert_int_equal(dmce_stab_set(t, "dflt", 4, "y", 1, DMCE_STAB_TTL_DEFAULT, 0, 0, NULL), 0);
    assert_int_equal(dmce_stab_set(t, "never", 5, "z", 1, DMCE_STAB_TTL_NEVER, 0, 0, NULL), 0);
    clock_ms += 99;
    assert_int_equal(gets(t, "short", buf, sizeof buf), 0);
    clock_ms += 1;
    assert_int_equal(gets(t, "short", buf, sizeof buf), -ENOENT); /* invisible at once */
    assert_int_equal(dmce_stab_del(t, "short", 5, 0), -ENOENT);
    assert_int_equal(gets(t, "dflt", buf, sizeof buf), 0);
    clock_ms += 900;
    assert_int_equal(gets(t, "dflt", buf, sizeof buf), -ENOENT);
    clock_ms += 1000000;
    assert_int_equal(gets(t, "never", buf, sizeof buf), 0);
    /* Expired entries are reclaimed lazily; sweep takes them all now. */
    assert_int_equal(dmce_stab_sweep(t), 1); /* "short" went with the del above */
    dmce_stab_stats_t s = stats(t);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.expirations, 2);
    assert_int_equal(dmce_stab_sweep(t), 0);
    /* An expired key can be set again, NX included. */
    assert_int_equal(dmce_stab_set(t, "dflt", 4, "y2", 2, 0, 0, DMCE_STAB_SET_NX, NULL), 0);
    assert_int_equal(gets(t, "dflt", buf, sizeof buf), 0);
    assert_string_equal(buf, "y2");
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_touch_extends_ttl(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    char buf[64];
    uint64_t v1, v2;
    uint32_t n;
    clock_ms = 5000000;
    assert_int_equal(dmce_stab_set(t, "sess", 4, "data", 4, 100, 0, 0, &v1), 0);
    clock_ms += 50;
    assert_int_equal(dmce_stab_touch(t, "sess", 4, 100), 0);
    clock_ms += 90; /* 140 after the set: alive only thanks to touch */
    assert_int_equal(dmce_stab_get(t, "sess", 4, buf, sizeof buf, &n, &v2), 0);
    assert_int_equal(v2, v1); /* touch keeps version and value */
    assert_int_equal(dmce_stab_touch(t, "sess", 4, DMCE_STAB_TTL_NEVER), 0);
    clock_ms += 1000000;
    assert_int_equal(gets(t, "sess", buf, sizeof buf), 0);
    assert_int_equal(dmce_stab_touch(t, "nope", 4, 100), -ENOENT);
    assert_int_equal(dmce_stab_touch(t, "sess", 4, 10), 0);
    clock_ms += 10;
    assert_int_equal(dmce_stab_touch(t, "sess", 4, 100), -ENOENT); /* expired: gone */
    assert_int_equal(stats(t).touches, 3);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- full table -------------------------------------------------------- */

static void test_eviction_keeps_recently_read(void **state)
{
    (void)state;
    const uint64_t size = 128 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, DMCE_STAB_EVICT);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    uint8_t val[300], buf[400];
    char k[32];
    memset(val, 'v', sizeof val);
    /* Fill without evicting. Keys land in address order in a fresh arena. */
    uint32_t m = 0;
    while (stats(t).mem_free > 4 * 400) {
        key_name(k, m);
        assert_int_equal(dmce_stab_set(t, k, (uint32_t)strlen(k), val, sizeof val, 0, 0, 0, NULL),
                         0);
        m++;
    }
    assert_int_equal(stats(t).evictions, 0);
    assert_true(m > 100);
    /* Read the first half: their reference bits are set. */
    for (uint32_t i = 0; i < m / 2; i++) {
        uint32_t n;
        key_name(k, i);
        assert_int_equal(dmce_stab_get(t, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL), 0);
    }
    /* A quarter more: room comes from the unread half. */
    for (uint32_t i = m; i < m + m / 4; i++) {
        key_name(k, i);
        assert_int_equal(dmce_stab_set(t, k, (uint32_t)strlen(k), val, sizeof val, 0, 0, 0, NULL),
                         0);
    }
    dmce_stab_stats_t s = stats(t);
    assert_true(s.evictions >= m / 4 - 4);
    assert_true(s.evictions < m / 2);
    for (uint32_t i = 0; i < m + m / 4; i++) {
        uint32_t n;
        key_name(k, i);
        int rc = dmce_stab_get(t, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL);
        if (i < m / 2 || i >= m)
            assert_int_equal(rc, 0); /* read recently, or just written */
        else
            assert_true(rc == 0 || rc == -ENOENT);
    }
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_eviction_off_full_enospc_changes_nothing(void **state)
{
    (void)state;
    const uint64_t size = 64 << 10;
    dmce_stab_params_t p = params(4096, 1, 0, 0);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    uint8_t val[4096], buf[4096];
    char k[32];
    uint32_t m = 0;
    int rc;
    for (;;) {
        key_name(k, m);
        make_value(val, m, 0, m, 200);
        rc = dmce_stab_set(t, k, (uint32_t)strlen(k), val, sizeof(vhdr_t) + 200, 0, 0, 0, NULL);
        if (rc != 0)
            break;
        m++;
    }
    assert_int_equal(rc, -ENOSPC);
    assert_true(m > 50);
    dmce_stab_stats_t before = stats(t);
    /* A new key, and a bigger value for an existing key: both refused. */
    assert_int_equal(dmce_stab_set(t, "fresh", 5, val, sizeof(vhdr_t) + 200, 0, 0, 0, NULL),
                     -ENOSPC);
    key_name(k, 3);
    assert_int_equal(dmce_stab_set(t, k, (uint32_t)strlen(k), val, 4000, 0, 0, 0, NULL), -ENOSPC);
    dmce_stab_stats_t after = stats(t);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.bytes, before.bytes);
    assert_int_equal(after.evictions, 0);
    for (uint32_t i = 0; i < m; i++) {
        uint32_t n;
        key_name(k, i);
        assert_int_equal(dmce_stab_get(t, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL), 0);
        assert_true(value_ok(buf, n, i, NULL));
    }
    assert_int_equal(dmce_stab_verify(t), 0);
    /* Room again after a delete (the freed chunk is reclaimed on demand). */
    key_name(k, 0);
    assert_int_equal(dmce_stab_del(t, k, (uint32_t)strlen(k), 0), 0);
    assert_int_equal(dmce_stab_set(t, "fresh", 5, val, sizeof(vhdr_t) + 200, 0, 0, 0, NULL), 0);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_collisions_in_one_bucket(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(256, 1, 1, 0); /* one stripe, one bucket: one chain */
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    char k[32], v[32], buf[64];
    const uint32_t n = 300;
    for (uint32_t i = 0; i < n; i++) {
        key_name(k, i);
        snprintf(v, sizeof v, "v%u", i);
        assert_int_equal(sets(t, k, v), 0);
    }
    /* Head (last inserted), tail (first inserted) and middle of the chain. */
    uint32_t gone[] = {n - 1, 0, n / 2, n / 2 + 1};
    for (size_t j = 0; j < sizeof gone / sizeof gone[0]; j++) {
        key_name(k, gone[j]);
        assert_int_equal(dmce_stab_del(t, k, (uint32_t)strlen(k), 0), 0);
    }
    key_name(k, 7);
    assert_int_equal(sets(t, k, "updated"), 0);
    for (uint32_t i = 0; i < n; i++) {
        key_name(k, i);
        int rc = gets(t, k, buf, sizeof buf);
        if (i == n - 1 || i == 0 || i == n / 2 || i == n / 2 + 1) {
            assert_int_equal(rc, -ENOENT);
        } else {
            assert_int_equal(rc, 0);
            snprintf(v, sizeof v, "v%u", i);
            assert_string_equal(buf, i == 7 ? "updated" : v);
        }
    }
    assert_int_equal(stats(t).entries, n - 4);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- bad input --------------------------------------------------------- */

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_params_t p = params(100, 0, 0, 0);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    char big[200], buf[200];
    uint32_t n;
    memset(big, 'k', sizeof big);
    assert_int_equal(sets(t, "keep", "safe"), 0);
    dmce_stab_stats_t before = stats(t);
    assert_int_equal(dmce_stab_set(t, "", 0, "v", 1, 0, 0, 0, NULL), -EINVAL);
    assert_int_equal(dmce_stab_set(t, NULL, 3, "v", 1, 0, 0, 0, NULL), -EINVAL);
    assert_int_equal(dmce_stab_set(t, big, 65, "v", 1, 0, 0, 0, NULL), -E2BIG);
    assert_int_equal(dmce_stab_set(t, big, 64, "v", 1, 0, 0, 0, NULL), 0); /* at the limit */
    assert_int_equal(dmce_stab_del(t, big, 64, 0), 0);
    assert_int_equal(dmce_stab_set(t, "keep", 4, big, 101, 0, 0, 0, NULL), -EMSGSIZE);
    assert_int_equal(dmce_stab_set(t, "keep", 4, NULL, 5, 0, 0, 0, NULL), -EINVAL);
    assert_int_equal(dmce_stab_set(t, "keep", 4, "v", 1, 0, 0, 0x40, NULL), -EINVAL);
    assert_int_equal(
        dmce_stab_set(t, "keep", 4, "v", 1, 0, 0, DMCE_STAB_SET_NX | DMCE_STAB_SET_XX, NULL),
        -EINVAL);
    assert_int_equal(dmce_stab_set(t, "keep", 4, "v", 1, 0, 3, DMCE_STAB_SET_NX, NULL), -EINVAL);
    assert_int_equal(dmce_stab_get(t, "", 0, buf, sizeof buf, &n, NULL), -EINVAL);
    assert_int_equal(dmce_stab_get(t, big, 65, buf, sizeof buf, &n, NULL), -E2BIG);
    assert_int_equal(dmce_stab_get(t, "keep", 4, buf, sizeof buf, NULL, NULL), -EINVAL);
    assert_int_equal(dmce_stab_del(t, "", 0, 0), -EINVAL);
    assert_int_equal(dmce_stab_touch(t, big, 65, 0), -E2BIG);
    assert_int_equal(dmce_stab_view(t, "keep", 4, NULL), -EINVAL);
    assert_int_equal(dmce_stab_view_check(t, NULL), -EINVAL);
    dmce_stab_stats_t after = stats(t);
    assert_int_equal(after.entries, before.entries);
    assert_int_equal(after.bytes, before.bytes);
    assert_int_equal(after.sets, before.sets + 1);
    assert_int_equal(after.hits + after.misses, before.hits + before.misses);
    assert_int_equal(gets(t, "keep", buf, sizeof buf), 0);
    assert_string_equal(buf, "safe");
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- corruption -------------------------------------------------------- */

static void test_corrupted_entry_detected_by_checksum(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    char buf[64];
    uint64_t rec_off, val_off;
    assert_int_equal(sets(t, "victim", "precious-data"), 0);
    assert_int_equal(sets(t, "bystander", "fine"), 0);
    assert_int_equal(dmce_stab_debug_locate(t, "victim", 6, &rec_off, &val_off), 0);
    ((uint8_t *)b)[val_off + 3] ^= 0x10;
    assert_int_equal(gets(t, "victim", buf, sizeof buf), DMCE_ECORRUPT);
    dmce_stab_view_t v;
    assert_int_equal(dmce_stab_view(t, "victim", 6, &v), DMCE_ECORRUPT);
    assert_int_equal(gets(t, "bystander", buf, sizeof buf), 0);
    assert_string_equal(buf, "fine");
    assert_int_equal(stats(t).corrupt, 2);
    assert_int_equal(stats(t).entries, 2);
    assert_int_equal(dmce_stab_verify(t), DMCE_ECORRUPT);
    /* A damaged key byte is reported too, not silently missed. */
    ((uint8_t *)b)[val_off + 3] ^= 0x10;
    assert_int_equal(gets(t, "victim", buf, sizeof buf), 0);
    ((uint8_t *)b)[rec_off + sizeof(dmce_stab_rec_t) + 1] ^= 0x01;
    assert_int_equal(gets(t, "victim", buf, sizeof buf), DMCE_ECORRUPT);
    ((uint8_t *)b)[rec_off + sizeof(dmce_stab_rec_t) + 1] ^= 0x01;
    /* Overwriting a damaged entry heals it. */
    ((uint8_t *)b)[val_off] ^= 0xff;
    assert_int_equal(sets(t, "victim", "new"), 0);
    assert_int_equal(gets(t, "victim", buf, sizeof buf), 0);
    assert_string_equal(buf, "new");
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

/*
 * Values longer than 240 bytes take XXH3's long path (and its AVX2 build
 * where the CPU has one): a flipped bit anywhere in them, first byte, a
 * middle stripe, the last byte, is caught.
 */
static void test_corrupted_long_value_detected(void **state)
{
    (void)state;
    const uint64_t size = 1 << 20;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    static const uint32_t lens[] = {241, 1024, 4096};
    static uint8_t val[4096], buf[4096];
    for (uint32_t i = 0; i < sizeof val; i++)
        val[i] = (uint8_t)(i * 31 + 7);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        uint32_t len = lens[k], got;
        uint64_t rec_off, val_off;
        assert_int_equal(dmce_stab_set(t, "long", 4, val, len, 0, 0, 0, NULL), 0);
        assert_int_equal(dmce_stab_debug_locate(t, "long", 4, &rec_off, &val_off), 0);
        const uint32_t at[] = {0, len / 2, len - 1};
        for (size_t j = 0; j < 3; j++) {
            ((uint8_t *)b)[val_off + at[j]] ^= 0x04;
            assert_int_equal(dmce_stab_get(t, "long", 4, buf, sizeof buf, &got, NULL),
                             DMCE_ECORRUPT);
            ((uint8_t *)b)[val_off + at[j]] ^= 0x04;
            assert_int_equal(dmce_stab_get(t, "long", 4, buf, sizeof buf, &got, NULL), 0);
            assert_int_equal(got, len);
            assert_memory_equal(buf, val, len);
        }
    }
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_corrupted_chain_link_bounded(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(256, 1, 1, 0);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    char buf[64];
    uint64_t rec_off, val_off;
    assert_int_equal(sets(t, "first", "1"), 0);
    assert_int_equal(sets(t, "second", "2"), 0); /* chain: second -> first */
    assert_int_equal(dmce_stab_debug_locate(t, "second", 6, &rec_off, &val_off), 0);
    dmce_stab_rec_t *r = (dmce_stab_rec_t *)((uint8_t *)b + rec_off);
    uint32_t saved = r->next;
    r->next = 0xfffffff0u; /* far outside the region */
    assert_int_equal(gets(t, "second", buf, sizeof buf), 0);
    assert_int_equal(gets(t, "first", buf, sizeof buf), DMCE_ECORRUPT);
    assert_int_equal(dmce_stab_set(t, "third", 5, "3", 1, 0, 0, 0, NULL), DMCE_ECORRUPT);
    assert_int_equal(dmce_stab_verify(t), DMCE_ECORRUPT);
    r->next = (uint32_t)(rec_off / DMCE_STAB_UNIT); /* a cycle */
    assert_int_equal(gets(t, "first", buf, sizeof buf), DMCE_ECORRUPT);
    r->next = saved;
    assert_int_equal(gets(t, "first", buf, sizeof buf), 0);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- zero-copy views --------------------------------------------------- */

static void test_view_valid_across_delete_and_churn(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, DMCE_STAB_EVICT);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    dmce_stab_t *w = open_h(b, size); /* a second handle: another reader slot */
    uint8_t val[512], copy[512];
    char k[32];
    make_value(val, 1, 0, 1, 400);
    uint32_t vn = sizeof(vhdr_t) + 400;
    assert_int_equal(dmce_stab_set(w, "sess", 4, val, vn, 0, 0, 0, NULL), 0);

    dmce_stab_view_t v;
    assert_int_equal(dmce_stab_view(t, "sess", 4, &v), 0);
    assert_int_equal(v.len, vn);
    assert_memory_equal(v.value, val, vn);
    memcpy(copy, v.value, vn);
    assert_int_equal(dmce_stab_view_check(t, &v), 0);

    assert_int_equal(dmce_stab_del(w, "sess", 4, 0), 0);
    assert_int_equal(dmce_stab_view_check(t, &v), -ESTALE);
    /* Churn: overwrites would reuse the deleted record's memory at once
     * if the lease did not hold it. */
    for (uint32_t i = 0; i < 300; i++) {
        key_name(k, i % 8);
        make_value(val, i % 8, 1, i, 300 + i % 100);
        assert_int_equal(dmce_stab_set(w, k, (uint32_t)strlen(k), val,
                                       sizeof(vhdr_t) + 300 + i % 100, 0, 0, 0, NULL),
                         0);
    }
    assert_memory_equal(v.value, copy, vn);
    assert_true(value_ok(v.value, v.len, 1, NULL));
    assert_true(stats(t).mem_limbo > 0);
    dmce_stab_view_release(t, &v);
    dmce_stab_view_release(t, &v); /* twice: no-op */
    assert_int_equal(dmce_stab_view_check(t, &v), -EINVAL);
    assert_int_equal(dmce_stab_sweep(w), 0);
    assert_int_equal(stats(t).mem_limbo, 0); /* all of it came back */

    /* Overwrite and expiry make a held view stale too; nested views. */
    clock_ms = 9000000;
    assert_int_equal(dmce_stab_set(w, "a", 1, "x", 1, 50, 0, 0, NULL), 0);
    dmce_stab_view_t v1, v2;
    assert_int_equal(dmce_stab_view(t, "a", 1, &v1), 0);
    assert_int_equal(dmce_stab_set(w, "a", 1, "y", 1, 50, 0, 0, NULL), 0);
    assert_int_equal(dmce_stab_view(t, "a", 1, &v2), 0);
    assert_int_equal(dmce_stab_view_check(t, &v1), -ESTALE);
    assert_int_equal(dmce_stab_view_check(t, &v2), 0);
    assert_memory_equal(v1.value, "x", 1);
    assert_memory_equal(v2.value, "y", 1);
    assert_true(v2.version > v1.version);
    clock_ms += 50;
    assert_int_equal(dmce_stab_view_check(t, &v2), -ESTALE);
    dmce_stab_view_release(t, &v1);
    dmce_stab_view_release(t, &v2);
    assert_int_equal(dmce_stab_verify(w), 0);
    dmce_stab_close(w);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- handles, fork, dead owners ---------------------------------------- */

static void test_slots_exhausted_then_dead_reaped(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, 0);
    p.nslots = 2;
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    dmce_stab_t *t2 = open_h(b, size), *t3 = NULL;
    assert_int_equal(dmce_stab_open(b, size, NULL, &t3), -EUSERS);
    dmce_stab_close(t2);
    /* A child opens a handle, takes a lease, and is killed holding it. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dmce_stab_t *c = NULL;
        dmce_stab_view_t v;
        if (dmce_stab_open(b, size, NULL, &c) != 0 ||
            dmce_stab_set(c, "k", 1, "v", 1, 0, 0, 0, NULL) || dmce_stab_view(c, "k", 1, &v) != 0)
            _exit(1);
        if (write(pfd[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char ch;
    assert_int_equal(read(pfd[0], &ch, 1), 1);
    assert_int_equal(stats(t).handles, 2);
    assert_int_equal(dmce_stab_del(t, "k", 1, 0), 0);
    assert_int_equal(dmce_stab_recover(t), 0); /* alive: nothing to do */
    kill(pid, SIGKILL);
    child_status(pid);
    close(pfd[0]);
    close(pfd[1]);
    /* Its slot pins the deleted record until reaped; open reaps it. */
    assert_int_equal(dmce_stab_open(b, size, NULL, &t3), 0);
    assert_int_equal(stats(t).reaped, 1);
    assert_int_equal(dmce_stab_sweep(t), 0);
    assert_int_equal(stats(t).mem_limbo, 0);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t3);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_inherited_handle_refused_after_fork(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_t *t;
    void *b = new_table(size, NULL, &t);
    assert_int_equal(sets(t, "k", "v"), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[8];
        uint32_t n;
        int ok = dmce_stab_get(t, "k", 1, buf, sizeof buf, &n, NULL) == -ECHILD &&
                 dmce_stab_set(t, "k", 1, "w", 1, 0, 0, 0, NULL) == -ECHILD;
        dmce_stab_close(t); /* frees the copy, leaves the parent's slot alone */
        dmce_stab_t *c = NULL;
        ok = ok && dmce_stab_open(b, size, NULL, &c) == 0 &&
             dmce_stab_get(c, "k", 1, buf, sizeof buf, &n, NULL) == 0;
        dmce_stab_close(c);
        _exit(ok ? 0 : 1);
    }
    int st = child_status(pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char buf[8];
    assert_int_equal(gets(t, "k", buf, sizeof buf), 0);
    assert_int_equal(stats(t).handles, 1);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_lock_of_dead_owner_is_stolen(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, 0);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    char buf[16];
    assert_int_equal(sets(t, "before", "1"), 0);
    stripe0(b)->lock = dead_identity(); /* died holding the lock */
    assert_int_equal(stats(t).locks_held, 1);
    assert_int_equal(gets(t, "before", buf, sizeof buf), 0); /* readers never wait */
    assert_int_equal(sets(t, "after", "2"), 0);
    dmce_stab_stats_t s = stats(t);
    assert_int_equal(s.recoveries, 1);
    assert_int_equal(s.locks_held, 0);
    assert_int_equal(s.rebuilds_pending, 0);
    assert_int_equal(gets(t, "after", buf, sizeof buf), 0);
    assert_int_equal(dmce_stab_verify(t), 0);
    /* recover() does the same without waiting. */
    stripe0(b)->lock = dead_identity();
    assert_int_equal(dmce_stab_recover(t), 1);
    assert_int_equal(stats(t).locks_held, 0);
    assert_int_equal(dmce_stab_verify(t), 0);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_lock_of_live_stuck_owner_times_out(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, 0);
    dmce_stab_t *t0;
    void *b = new_table(size, &p, &t0);
    dmce_stab_close(t0);
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.lock_timeout_ms = 50;
    dmce_stab_t *t = NULL;
    assert_int_equal(dmce_stab_open(b, size, &o, &t), 0);
    uint64_t *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    *shared = 0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* "holds" the lock and hangs (like SIGSTOP in a debugger) */
        __atomic_store_n(shared, dmce_stab_self_id(), __ATOMIC_RELEASE);
        for (;;)
            pause();
    }
    while (!__atomic_load_n(shared, __ATOMIC_ACQUIRE))
        usleep(100);
    stripe0(b)->lock = *shared;
    assert_int_equal(sets(t, "k", "v"), -EBUSY);
    kill(pid, SIGKILL);
    child_status(pid);
    assert_int_equal(sets(t, "k", "v"), 0);
    assert_int_equal(stats(t).recoveries, 1);
    assert_int_equal(dmce_stab_verify(t), 0);
    munmap(shared, 4096);
    dmce_stab_close(t);
    unregion(b, size);
}

/* ---- crash at every fault point ------------------------------------------ */

typedef struct fault_cfg {
    int point, hit_at, hits;
} fault_cfg_t;

static void die_at(void *arg, int point)
{
    fault_cfg_t *c = arg;
    if (point == c->point && ++c->hits == c->hit_at)
        raise(SIGKILL);
}

#define CP_KEYS 160u

/* Every key present holds a whole value written for it. */
static void check_values(dmce_stab_t *t, uint32_t nkeys)
{
    uint8_t buf[2048];
    char k[32];
    for (uint32_t i = 0; i < nkeys; i++) {
        uint32_t n;
        key_name(k, i);
        int rc = dmce_stab_get(t, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL);
        if (rc == -ENOENT)
            continue;
        assert_int_equal(rc, 0);
        assert_true(value_ok(buf, n, i, NULL));
    }
}

static void crash_workload(dmce_stab_t *t, uint32_t seed)
{
    uint8_t val[1024];
    char k[32];
    for (uint32_t i = 0; i < 4000; i++) {
        uint32_t id = (i * 7 + seed) % CP_KEYS;
        key_name(k, id);
        if (i % 5 == 4) {
            dmce_stab_del(t, k, (uint32_t)strlen(k), 0);
        } else {
            uint32_t n = make_value(val, id, 9, i, 32 + (i * 37 + seed) % 700);
            dmce_stab_set(t, k, (uint32_t)strlen(k), val, n, 0, 0, 0, NULL);
        }
    }
}

static void test_crash_at_every_fault_point(void **state)
{
    (void)state;
    const uint64_t size = 64 << 10;
    dmce_stab_params_t p = params(1024, 1, 0, DMCE_STAB_EVICT);
    static const int hit_ats[] = {1, 3, 17};
    uint8_t val[1024];
    char k[32];
    for (int point = 1; point < DMCE_STAB_FP_COUNT; point++) {
        int steal = point == DMCE_STAB_FP_REPAIR || point == DMCE_STAB_FP_REBUILD;
        for (size_t h = 0; h < (steal ? 1 : sizeof hit_ats / sizeof hit_ats[0]); h++) {
            dmce_stab_t *t;
            void *b = new_table(size, &p, &t);
            /* Live keys with holes between them (deleted, reclaimed). */
            for (uint32_t i = 0; i < 40; i++) {
                key_name(k, i);
                uint32_t n = make_value(val, i, 0, i, 100 + i * 5);
                assert_int_equal(dmce_stab_set(t, k, (uint32_t)strlen(k), val, n, 0, 0, 0, NULL),
                                 0);
            }
            for (uint32_t i = 0; i < 40; i += 4) {
                key_name(k, i);
                assert_int_equal(dmce_stab_del(t, k, (uint32_t)strlen(k), 0), 0);
            }
            assert_int_equal(dmce_stab_sweep(t), 0);
            if (steal)
                stripe0(b)->lock = dead_identity();
            fault_cfg_t cfg = {point, hit_ats[h], 0};
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0) {
                dmce_stab_opts_t o;
                memset(&o, 0, sizeof o);
                o.fault = die_at;
                o.fault_arg = &cfg;
                dmce_stab_t *c = NULL;
                if (dmce_stab_open(b, size, &o, &c) != 0)
                    _exit(2);
                crash_workload(c, (uint32_t)point);
                _exit(3); /* the point was never reached */
            }
            int st = child_status(pid);
            if (!WIFSIGNALED(st))
                fail_msg("fault point %d (hit %d) not reached: status %#x", point, hit_ats[h], st);
            assert_int_equal(WTERMSIG(st), SIGKILL);
            /* The survivor: recovers, verifies, finds whole values, goes on. */
            assert_true(dmce_stab_recover(t) >= 1);
            dmce_stab_stats_t s = stats(t);
            assert_int_equal(s.locks_held, 0);
            assert_int_equal(s.rebuilds_pending, 0);
            if (dmce_stab_verify(t) != 0)
                fail_msg("verify after a crash at point %d (hit %d)", point, hit_ats[h]);
            check_values(t, CP_KEYS);
            crash_workload(t, 1000u + (uint32_t)point);
            check_values(t, CP_KEYS);
            assert_int_equal(dmce_stab_verify(t), 0);
            /* Nothing leaked: with every key gone all memory is free again. */
            for (uint32_t i = 0; i < CP_KEYS; i++) {
                key_name(k, i);
                dmce_stab_del(t, k, (uint32_t)strlen(k), 0);
            }
            assert_int_equal(dmce_stab_sweep(t), 0);
            s = stats(t);
            assert_int_equal(s.entries, 0);
            assert_int_equal(s.mem_free, s.mem_total);
            dmce_stab_close(t);
            unregion(b, size);
        }
    }
}

/* ---- the persist hook (mirroring) ------------------------------------------ */

/* A "mirror": region b started as a byte copy of region a; the hook copies
 * exactly the ranges it is told about from a to b. */
typedef struct mirror {
    const uint8_t *a;
    uint8_t *b;
    uint64_t size;
    uint64_t calls, ranges, bytes; /* hook calls, ranges in them, their bytes */
    int bad;
} mirror_t;

static int mirror_copy(void *ctx, const dmce_stab_range_t *r, uint32_t n)
{
    mirror_t *m = ctx;
    if (n == 0 || n > DMCE_STAB_PERSIST_MAX) {
        m->bad = 1;
        return -EINVAL;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = r[i].off, len = r[i].len;
        if (len == 0 || off > m->size || len > m->size - off) {
            m->bad = 1;
            return -EINVAL;
        }
        memcpy(m->b + off, m->a + off, len);
        m->bytes += len;
    }
    m->calls++;
    m->ranges += n;
    return 0;
}

static dmce_stab_t *open_mirrored(void *a, uint64_t size, mirror_t *m, fault_cfg_t *fc)
{
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.now_ms = test_now;
    o.persist = mirror_copy;
    o.persist_ctx = m;
    if (fc) {
        o.fault = die_at;
        o.fault_arg = fc;
    }
    dmce_stab_t *t = NULL;
    if (dmce_stab_open(a, size, &o, &t) != 0)
        return NULL;
    return t;
}

#define PM_KEYS 300u

/* Sets (some with short TTLs), gets, views, deletes, touches, sweeps. */
static void persist_workload(dmce_stab_t *t, uint32_t n, uint32_t seed)
{
    uint8_t val[700], buf[700];
    char k[32];
    xs = 0x9E3779B97F4A7C15ull ^ seed;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = (uint32_t)(rnd() % PM_KEYS), op = (uint32_t)(rnd() % 100);
        key_name(k, id);
        uint32_t kl = (uint32_t)strlen(k);
        if (op < 45) {
            uint64_t ttl = rnd() % 5 == 0 ? 1 + rnd() % 40 : DMCE_STAB_TTL_DEFAULT;
            uint32_t len = make_value(val, id, 1, i, (uint32_t)(rnd() % 500));
            int rc = dmce_stab_set(t, k, kl, val, len, ttl, 0, 0, NULL);
            assert_true(rc == 0 || rc == -ENOSPC);
        } else if (op < 70) {
            uint32_t len;
            int rc = dmce_stab_get(t, k, kl, buf, sizeof buf, &len, NULL);
            assert_true(rc == 0 || rc == -ENOENT);
        } else if (op < 78) {
            dmce_stab_view_t v;
            if (dmce_stab_view(t, k, kl, &v) == 0)
                dmce_stab_view_release(t, &v);
        } else if (op < 88) {
            int rc = dmce_stab_del(t, k, kl, 0);
            assert_true(rc == 0 || rc == -ENOENT);
        } else if (op < 94) {
            int rc = dmce_stab_touch(t, k, kl, rnd() % 2 ? DMCE_STAB_TTL_NEVER : 1 + rnd() % 30);
            assert_true(rc == 0 || rc == -ENOENT);
        } else {
            clock_ms += rnd() % 8;
        }
        if (i % 1500 == 1499)
            assert_true(dmce_stab_sweep(t) >= 0);
    }
}

/*
 * a and b must hold the same table: every byte equal except those the
 * hook does not report (reader slots, the header's reaping words, the
 * readers' CLOCK bits); b verifies; every key reads the same from both.
 */
static void assert_same_table(void *a, void *b, uint64_t size)
{
    const dmce_stab_hdr_t *h = a;
    uint8_t *mask = calloc(size, 1);
    assert_non_null(mask);
    memset(mask + offsetof(dmce_stab_hdr_t, reaped), 1, 256 - offsetof(dmce_stab_hdr_t, reaped));
    memset(mask + h->slots_off, 1, h->stripes_off - h->slots_off);
    for (uint32_t si = 0; si < h->nstripes; si++) /* waiters' hint, reported only with changes */
        memset(mask + h->stripes_off + si * sizeof(dmce_stab_stripe_t) +
                   offsetof(dmce_stab_stripe_t, lock_seq),
               1, sizeof(uint32_t));
    for (uint32_t si = 0; si < h->nstripes; si++) {
        uint64_t lo = h->arena_off + (uint64_t)si * h->arena_units * DMCE_STAB_UNIT;
        uint64_t hi = lo + (uint64_t)h->arena_units * DMCE_STAB_UNIT;
        for (uint64_t off = lo; off < hi;) {
            const dmce_stab_rec_t *r = (const dmce_stab_rec_t *)((const uint8_t *)a + off);
            assert_true(r->units >= 4 && off + (uint64_t)r->units * DMCE_STAB_UNIT <= hi);
            mask[off + offsetof(dmce_stab_rec_t, ref)] = 1;
            off += (uint64_t)r->units * DMCE_STAB_UNIT;
        }
    }
    const uint8_t *pa = a, *pb = b;
    for (uint64_t i = 0; i < size; i++)
        if (!mask[i] && pa[i] != pb[i])
            fail_msg("mirror differs at byte %llu: %#x vs %#x", (unsigned long long)i, pa[i],
                     pb[i]);
    free(mask);

    dmce_stab_t *ta = open_h(a, size), *tb = open_h(b, size);
    assert_int_equal(dmce_stab_verify(tb), 0);
    uint8_t va[1024], vb[1024];
    char k[32];
    for (uint32_t i = 0; i < PM_KEYS; i++) {
        uint32_t la = 0, lb = 0;
        uint64_t xa = 0, xb = 0;
        key_name(k, i);
        int ra = dmce_stab_get(ta, k, (uint32_t)strlen(k), va, sizeof va, &la, &xa);
        int rb = dmce_stab_get(tb, k, (uint32_t)strlen(k), vb, sizeof vb, &lb, &xb);
        assert_int_equal(ra, rb);
        if (ra == 0) {
            assert_int_equal(la, lb);
            assert_true(xa == xb);
            assert_memory_equal(va, vb, la);
        }
    }
    dmce_stab_stats_t sa = stats(ta), sb = stats(tb);
    assert_int_equal(sa.entries, sb.entries);
    assert_int_equal(sa.bytes, sb.bytes);
    assert_int_equal(sa.mem_free, sb.mem_free);
    assert_int_equal(sa.mem_limbo, sb.mem_limbo);
    dmce_stab_close(ta);
    dmce_stab_close(tb);
}

/*
 * A copy that gets exactly the reported ranges stays the same table:
 * sets, updates, deletes, touches, expiry, CLOCK eviction, reclaim,
 * coalescing, sweeps.
 */
static void test_persist_ranges_keep_a_copy_whole(void **state)
{
    (void)state;
    const uint64_t size = 96 << 10;
    dmce_stab_params_t p = params(600, 2, 0, DMCE_STAB_EVICT);
    void *a = region(size), *b = region(size);
    assert_int_equal(dmce_stab_format(a, size, &p), 0);
    memcpy(b, a, size);
    mirror_t m = {.a = a, .b = b, .size = size};
    dmce_stab_t *t = open_mirrored(a, size, &m, NULL);
    assert_non_null(t);
    /* A plain set reports all it changed in one call (one round trip for a client). */
    assert_int_equal(sets(t, "one-call", "v"), 0);
    assert_int_equal(m.calls, 1);
    assert_true(m.ranges >= 2);
    assert_int_equal(sets(t, "one-call", "an update"), 0);
    assert_int_equal(m.calls, 2);
    persist_workload(t, 20000, 1);
    dmce_stab_stats_t s = stats(t);
    assert_true(s.evictions > 0 && s.expirations > 0 && s.dels > 0 && s.touches > 0);
    assert_int_equal(m.bad, 0);
    assert_true(m.calls > 0);
    assert_same_table(a, b, size);
    dmce_stab_close(t);
    unregion(a, size);
    unregion(b, size);
}

static int persist_fail(void *ctx, const dmce_stab_range_t *r, uint32_t n)
{
    (void)ctx, (void)r, (void)n;
    return -EIO;
}

/* The hook's error is the operation's result; the table changed anyway. */
static void test_persist_error_is_returned(void **state)
{
    (void)state;
    const uint64_t size = 64 << 10;
    void *a = region(size);
    assert_int_equal(dmce_stab_format(a, size, NULL), 0);
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.persist = persist_fail;
    dmce_stab_t *t = NULL;
    assert_int_equal(dmce_stab_open(a, size, &o, &t), 0);
    assert_int_equal(sets(t, "k", "v"), -EIO);
    char buf[8];
    assert_int_equal(gets(t, "k", buf, sizeof buf), 0); /* reads never call it */
    assert_string_equal(buf, "v");
    assert_int_equal(dmce_stab_del(t, "k", 1, 0), -EIO);
    assert_int_equal(gets(t, "k", buf, sizeof buf), -ENOENT);
    assert_int_equal(dmce_stab_verify(t), 0); /* changes nothing: no hook call */
    dmce_stab_close(t);
    unregion(a, size);
}

/*
 * A writer SIGKILLed inside its critical section never reported its last
 * changes; the thief's repair reports the whole stripe, so the copy is
 * whole again after recover.
 */
static void test_persist_after_crash_repair(void **state)
{
    (void)state;
    const uint64_t size = 96 << 10;
    dmce_stab_params_t p = params(600, 2, 0, DMCE_STAB_EVICT);
    static const int points[] = {
        DMCE_STAB_FP_SPLIT,     DMCE_STAB_FP_ALLOCATED, DMCE_STAB_FP_WRITTEN,
        DMCE_STAB_FP_PUBLISHED, DMCE_STAB_FP_UNLINKED,  DMCE_STAB_FP_LIMBO_PUSH,
        DMCE_STAB_FP_RECLAIM,   DMCE_STAB_FP_COALESCE,  DMCE_STAB_FP_EVICT};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        void *a = region(size), *b = region(size);
        assert_int_equal(dmce_stab_format(a, size, &p), 0);
        memcpy(b, a, size);
        mirror_t m = {.a = a, .b = b, .size = size};
        dmce_stab_t *t = open_mirrored(a, size, &m, NULL);
        persist_workload(t, 3000, 7);
        fault_cfg_t cfg = {points[i], 9, 0};
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dmce_stab_t *c = open_mirrored(a, size, &m, &cfg);
            if (!c)
                _exit(2);
            persist_workload(c, 50000, 100 + (uint32_t)i);
            _exit(3);
        }
        int st = child_status(pid);
        if (!WIFSIGNALED(st))
            fail_msg("fault point %d not reached: status %#x", points[i], st);
        assert_true(dmce_stab_recover(t) >= 1);
        assert_int_equal(dmce_stab_verify(t), 0);
        persist_workload(t, 3000, 200 + (uint32_t)i);
        assert_int_equal(m.bad, 0);
        assert_same_table(a, b, size);
        dmce_stab_close(t);
        unregion(a, size);
        unregion(b, size);
    }
}

/* ---- multi-process ------------------------------------------------------- */

#define MP_KEYS 256u
#define MP_WRITERS 4
#define MP_READERS 4
#define MP_WRITER_OPS 15000u
#define MP_VMAX 900u

typedef struct mp_shared {
    uint32_t writers_done;
    uint32_t stop;
    uint64_t ops;         /* victim's completed ops (crash test) */
    uint64_t reads;       /* values verified by readers */
    uint64_t enospc;      /* sets refused: a full stripe whose readers stalled past grace_wait_ms */
    uint64_t max_read_ns; /* longest get/view call seen by a reader */
    char why[256];        /* first failure, for the parent's message */
} mp_shared_t;

static void mp_fail(mp_shared_t *sh, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char m[200];
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (!sh->why[0])
        snprintf(sh->why, sizeof sh->why, "pid %d: %s", (int)getpid(), m);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE); /* the others stop too */
    _exit(1);
}

static dmce_stab_t *mp_open(void *b, uint64_t size, mp_shared_t *sh)
{
    dmce_stab_t *t = NULL;
    int rc = dmce_stab_open(b, size, NULL, &t);
    if (rc != 0)
        mp_fail(sh, "open: %d", rc);
    return t;
}

static void mp_writer(void *b, uint64_t size, mp_shared_t *sh, uint32_t id, uint32_t nops,
                      int count_ops)
{
    dmce_stab_t *t = mp_open(b, size, sh);
    uint8_t val[MP_VMAX + 64], buf[MP_VMAX + 64];
    char k[32];
    xs ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; nops == 0 || i < nops; i++) {
        if (__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE))
            break;
        uint32_t key = (uint32_t)(rnd() % MP_KEYS), r = (uint32_t)(rnd() % 100);
        key_name(k, key);
        uint32_t klen = (uint32_t)strlen(k);
        uint32_t n =
            make_value(val, key, id, ((uint64_t)id << 40) | i, (uint32_t)(rnd() % (MP_VMAX - 24)));
        int rc;
        if (r < 10) {
            rc = dmce_stab_del(t, k, klen, 0);
            if (rc != 0 && rc != -ENOENT)
                mp_fail(sh, "del: %d", rc);
        } else if (r < 20) { /* read-modify-write with CAS */
            uint32_t gn;
            uint64_t ver;
            rc = dmce_stab_get(t, k, klen, buf, sizeof buf, &gn, &ver);
            if (rc == 0) {
                if (!value_ok(buf, gn, key, NULL))
                    mp_fail(sh, "writer read a bad value for key %u", key);
                rc = dmce_stab_set(t, k, klen, val, n, 0, ver, 0, NULL);
                if (rc == -ENOSPC)
                    __atomic_fetch_add(&sh->enospc, 1, __ATOMIC_RELAXED);
                else if (rc != 0 && rc != -ESTALE && rc != -ENOENT)
                    mp_fail(sh, "cas set: %d", rc);
            } else if (rc != -ENOENT) {
                mp_fail(sh, "writer get: %d", rc);
            }
        } else {
            rc = dmce_stab_set(t, k, klen, val, n, 0, 0, 0, NULL);
            if (rc == -ENOSPC) /* tiny table, oversubscribed CPUs: allowed, counted */
                __atomic_fetch_add(&sh->enospc, 1, __ATOMIC_RELAXED);
            else if (rc != 0)
                mp_fail(sh, "set: %d", rc);
        }
        if (count_ops)
            __atomic_fetch_add(&sh->ops, 1, __ATOMIC_RELEASE);
    }
    dmce_stab_close(t);
}

static void mp_reader(void *b, uint64_t size, mp_shared_t *sh, int stop_on_writers)
{
    dmce_stab_t *t = mp_open(b, size, sh);
    static uint64_t last_ver[MP_KEYS];
    uint8_t buf[MP_VMAX + 64];
    char k[32];
    uint64_t reads = 0, max_ns = 0;
    xs ^= (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    memset(last_ver, 0, sizeof last_ver);
    for (uint64_t i = 0;; i++) {
        if (__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE) ||
            (stop_on_writers && __atomic_load_n(&sh->writers_done, __ATOMIC_ACQUIRE) == MP_WRITERS))
            break;
        uint32_t key = (uint32_t)(rnd() % MP_KEYS), n = 0;
        uint64_t ver = 0;
        key_name(k, key);
        int rc;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (i & 1) {
            rc = dmce_stab_get(t, k, (uint32_t)strlen(k), buf, sizeof buf, &n, &ver);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (rc == 0 && !value_ok(buf, n, key, NULL))
                mp_fail(sh, "torn or foreign value for key %u (copy)", key);
        } else {
            dmce_stab_view_t v;
            rc = dmce_stab_view(t, k, (uint32_t)strlen(k), &v);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (rc == 0) {
                ver = v.version;
                n = v.len;
                if (!value_ok(v.value, v.len, key, NULL))
                    mp_fail(sh, "torn or foreign value for key %u (view)", key);
                if (i % 256 == 0) { /* hold the lease a while; it must not move */
                    memcpy(buf, v.value, v.len);
                    sched_yield();
                    if (memcmp(buf, v.value, v.len) != 0)
                        mp_fail(sh, "leased bytes changed for key %u", key);
                    int c = dmce_stab_view_check(t, &v);
                    if (c != 0 && c != -ESTALE)
                        mp_fail(sh, "view_check: %d", c);
                }
                dmce_stab_view_release(t, &v);
            }
        }
        uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u + (uint64_t)t1.tv_nsec -
                      (uint64_t)t0.tv_nsec;
        if (ns > max_ns)
            max_ns = ns;
        if (rc == 0) {
            if (ver < last_ver[key])
                mp_fail(sh, "key %u went back from version %llu to %llu", key,
                        (unsigned long long)last_ver[key], (unsigned long long)ver);
            last_ver[key] = ver;
            reads++;
        } else if (rc != -ENOENT) {
            mp_fail(sh, "get: %d", rc);
        }
    }
    __atomic_fetch_add(&sh->reads, reads, __ATOMIC_RELAXED);
    uint64_t m = __atomic_load_n(&sh->max_read_ns, __ATOMIC_RELAXED);
    while (max_ns > m && !__atomic_compare_exchange_n(&sh->max_read_ns, &m, max_ns, 0,
                                                      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    dmce_stab_close(t);
}

static void test_multiprocess_4_writers_4_readers(void **state)
{
    (void)state;
    const uint64_t size = 192 << 10; /* small: eviction runs under the load */
    dmce_stab_params_t p = params(MP_VMAX + 64, 4, 0, DMCE_STAB_EVICT);
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    mp_shared_t *sh =
        mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    pid_t pids[MP_WRITERS + MP_READERS];
    for (int i = 0; i < MP_WRITERS + MP_READERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            alarm(60); /* watchdog: a hung child dies of SIGALRM and fails the test */
            if (i < MP_WRITERS) {
                mp_writer(b, size, sh, (uint32_t)i + 1, MP_WRITER_OPS, 0);
                __atomic_fetch_add(&sh->writers_done, 1, __ATOMIC_RELEASE);
            } else {
                mp_reader(b, size, sh, 1);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < MP_WRITERS + MP_READERS; i++) {
        int st = child_status(pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("child %d failed (status %#x): %s", i, st, sh->why);
    }
    dmce_stab_stats_t s = stats(t);
    assert_true(sh->reads > 1000);
    assert_true(s.sets > MP_WRITERS * MP_WRITER_OPS / 2);
    assert_true(sh->enospc * 100 < s.sets);
    assert_true(s.evictions > 0);
    assert_int_equal(s.locks_held, 0);
    assert_int_equal(s.handles, 1);
    assert_int_equal(dmce_stab_verify(t), 0);
    check_values(t, MP_KEYS);
    print_message("      %llu verified reads, %llu sets, %llu evictions, %llu ENOSPC, "
                  "longest read call %.3f ms\n",
                  (unsigned long long)sh->reads, (unsigned long long)s.sets,
                  (unsigned long long)s.evictions, (unsigned long long)sh->enospc,
                  (double)sh->max_read_ns / 1e6);
    munmap(sh, sizeof *sh);
    dmce_stab_close(t);
    unregion(b, size);
}

static void test_crash_sigkill_writer_200_times(void **state)
{
    (void)state;
    const uint64_t size = 256 << 10;
    dmce_stab_params_t p = params(MP_VMAX + 64, 2, 0, DMCE_STAB_EVICT);
    p.nslots = 16;
    dmce_stab_t *t;
    void *b = new_table(size, &p, &t);
    mp_shared_t *sh =
        mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    /* Survivors run through the whole loop: one writer, one reader. */
    pid_t surv[2];
    for (int i = 0; i < 2; i++) {
        surv[i] = fork();
        assert_true(surv[i] >= 0);
        if (surv[i] == 0) {
            alarm(60);
            if (i == 0)
                mp_writer(b, size, sh, 100, 0, 0);
            else
                mp_reader(b, size, sh, 0);
            _exit(0);
        }
    }
    for (int it = 0; it < 200; it++) {
        uint64_t target = __atomic_load_n(&sh->ops, __ATOMIC_ACQUIRE) + 1 + rnd() % 400;
        pid_t v = fork();
        assert_true(v >= 0);
        if (v == 0) {
            alarm(60);
            mp_writer(b, size, sh, 200 + (uint32_t)it, 0, 1);
            _exit(0);
        }
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (__atomic_load_n(&sh->ops, __ATOMIC_ACQUIRE) < target) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            if (t1.tv_sec - t0.tv_sec > 10)
                fail_msg("victim %d made no progress: %s", it, sh->why);
            sched_yield();
        }
        kill(v, SIGKILL);
        int st = child_status(v);
        if (!WIFSIGNALED(st))
            fail_msg("victim %d exited on its own (status %#x): %s", it, st, sh->why);
        int r = dmce_stab_recover(t);
        assert_true(r >= 0);
        if (it % 20 == 19 && dmce_stab_verify(t) != 0)
            fail_msg("verify failed after victim %d", it);
    }
    __atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) {
        int st = child_status(surv[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("survivor %d failed (status %#x): %s", i, st, sh->why);
    }
    assert_int_equal(dmce_stab_recover(t), 0);
    dmce_stab_stats_t s = stats(t);
    assert_int_equal(s.locks_held, 0);
    assert_int_equal(s.rebuilds_pending, 0);
    assert_int_equal(s.handles, 1); /* every victim's slot was reaped */
    assert_true(s.recoveries > 0);  /* some victims died holding a lock */
    assert_true(sh->enospc * 100 < s.sets);
    assert_int_equal(dmce_stab_verify(t), 0);
    check_values(t, MP_KEYS);
    print_message("      200 victims killed, %llu died holding a stripe lock, %llu slots reaped, "
                  "%llu verified reads, %llu ENOSPC, longest read call %.3f ms\n",
                  (unsigned long long)s.recoveries, (unsigned long long)s.reaped,
                  (unsigned long long)sh->reads, (unsigned long long)sh->enospc,
                  (double)sh->max_read_ns / 1e6);
    munmap(sh, sizeof *sh);
    dmce_stab_close(t);
    unregion(b, size);
}

/* Runs each test with its wall time when DMCE_TEST_TIMES is set. */
static int group_setup(void **state)
{
    (void)state;
    return 0;
}

static struct timespec test_t0;

static int time_setup(void **state)
{
    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &test_t0);
    return 0;
}

static int time_teardown(void **state)
{
    (void)state;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (getenv("DMCE_TEST_TIMES"))
        print_message("      %.3f s\n", (double)(t1.tv_sec - test_t0.tv_sec) +
                                            (double)(t1.tv_nsec - test_t0.tv_nsec) / 1e9);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_format_attach_open, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_attach_errors, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_format_rejects_bad_params, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_insert_update_delete_miss, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_get_small_buffer_and_empty_value, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_cas_success_and_failure, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_version_not_reused_after_delete, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry_with_injected_clock, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_touch_extends_ttl, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_eviction_keeps_recently_read, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_eviction_off_full_enospc_changes_nothing, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_collisions_in_one_bucket, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_entry_detected_by_checksum, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_long_value_detected, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_corrupted_chain_link_bounded, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_view_valid_across_delete_and_churn, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_slots_exhausted_then_dead_reaped, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_inherited_handle_refused_after_fork, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_lock_of_dead_owner_is_stolen, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_lock_of_live_stuck_owner_times_out, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_crash_at_every_fault_point, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_persist_ranges_keep_a_copy_whole, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_persist_error_is_returned, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_persist_after_crash_repair, time_setup, time_teardown),
        cmocka_unit_test_setup_teardown(test_multiprocess_4_writers_4_readers, time_setup,
                                        time_teardown),
        cmocka_unit_test_setup_teardown(test_crash_sigkill_writer_200_times, time_setup,
                                        time_teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
