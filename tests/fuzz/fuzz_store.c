/*
 * fuzz_store.c - fuzz target for the shared-memory key/value table
 * (runtime/store_table.h) on a region given as hostile bytes: every
 * process that maps the table can write anything into it.
 *
 * Input: SCRIPT (128 bytes: 32 operations of 4 bytes) then the region
 * image. The region is as large as its header's size field says (16 KiB
 * .. 256 KiB; else the image length), copied into an exactly that large,
 * 16-aligned heap buffer, zero-filled past the image. When bit 0 of the
 * script's first byte is set, the harness forges the header's geometry
 * checksum over the fuzzed geometry first: the checksum detects torn or
 * stray writes, not a hostile writer, who can always compute it, so the
 * geometry checks behind it must hold on their own.
 *
 * Steps and checks (one process, one thread: no fork-safe handle needed;
 * each input gets its own handle, closed before the next):
 *   1. dmce_stab_attach / dmce_stab_open: 0 or a documented error.
 *   2. Readers on whatever attached (get, view + view_check + release,
 *      stats): documented results only, a view's bytes inside the region,
 *      no access outside it (ASan). Readers promise to bound-check every
 *      offset they read from the region.
 *   3. dmce_stab_verify: 0, DMCE_ECORRUPT or -EBUSY, never a crash: it
 *      must report corruption.
 *   4. Only if verify passed (the region is a consistent table): the whole
 *      script with writers too (set with TTLs, CAS and NX/XX, del, touch,
 *      sweep, recover, a second handle), with a fixed clock the script
 *      advances, against a model of the script's keys: each get, view and
 *      CAS agrees with the model (entries may vanish only by expiry or, on
 *      an evicting table, eviction), versions only grow, and
 *      dmce_stab_verify still passes at the end.
 * DMCE_FUZZ_STORE_HOSTILE=1 in the environment also runs the writers on
 * regions that attach but fail verify (no model, no final verify).
 *
 * Known, reported, left out: a region whose global epoch or a stripe's
 * version clock is near UINT64_MAX passes verify, and writers then wrap
 * it: a set returns version 0 ("no version" to CAS), a slot's epoch ends
 * up above the global one, and the next verify calls the region corrupt.
 * Such regions do not get step 4 (see clock_near_wrap).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "fuzz_common.h"
#include "store_table.h"

#define SCRIPT_LEN 128u
#define OP_LEN 4u
#define REGION_MAX (256u << 10)
#define NKEYS 8u
#define VAL_MAX (64u << 10)

/* How deep the inputs got (plain runs print it). */
static unsigned long n_inputs, n_attached, n_opened, n_verified;

typedef struct mkey {
    int present;
    uint64_t version;
    uint64_t expire_ms; /* 0 = never */
    uint32_t vlen;
    uint8_t *val;
} mkey_t;

typedef struct fstate {
    uint8_t *b;
    uint64_t size;
    dmce_stab_t *t;
    uint64_t now;
    int model_on;     /* the region verified: the model is exact */
    int writers;      /* run writer operations */
    int evict;        /* entries may vanish by eviction */
    uint64_t def_ttl; /* the table's default TTL */
    uint32_t max_key, max_value;
    mkey_t m[NKEYS];
    uint64_t maxver[NKEYS]; /* highest version seen per key */
    dmce_stab_view_t views[4];
    uint8_t *vbuf; /* VAL_MAX */
} fstate_t;

static uint64_t clock_ms(void *arg)
{
    return ((fstate_t *)arg)->now;
}

static int is_common_err(int r)
{
    return r == -EINVAL || r == -E2BIG || r == -EMSGSIZE;
}

/* Key bytes: "key-N" for the model's keys, or a long key of a given length. */
static uint32_t make_key(uint8_t sel, uint16_t a, char *buf, size_t cap, int *idx)
{
    if (sel & 0x80) {
        uint32_t n = 1 + a % (DMCE_STAB_KEY_LIMIT + 8);
        if (n > cap)
            n = (uint32_t)cap;
        memset(buf, 'x', n);
        buf[0] = (char)('A' + sel % 26);
        *idx = -1;
        return n;
    }
    *idx = (int)(sel % NKEYS);
    return (uint32_t)snprintf(buf, cap, "key-%d", *idx);
}

static void fill_value(uint8_t *v, uint32_t n, uint64_t salt)
{
    for (uint32_t i = 0; i < n; i++)
        v[i] = (uint8_t)((salt + i) * 0x9Du >> 3);
}

static int model_live(const fstate_t *s, int k)
{
    const mkey_t *m = &s->m[k];
    return m->present && (m->expire_ms == 0 || m->expire_ms > s->now);
}

static void model_drop(fstate_t *s, int k)
{
    free(s->m[k].val);
    s->m[k].val = NULL;
    s->m[k].present = 0;
}

static void model_set(fstate_t *s, int k, const uint8_t *v, uint32_t n, uint64_t ver, uint64_t exp)
{
    model_drop(s, k);
    s->m[k].val = malloc(n ? n : 1);
    FZ_CHECK(s->m[k].val != NULL);
    if (n)
        memcpy(s->m[k].val, v, n);
    s->m[k].vlen = n;
    s->m[k].version = ver;
    s->m[k].expire_ms = exp;
    s->m[k].present = 1;
}

static uint64_t expire_for(const fstate_t *s, uint64_t ttl)
{
    if (ttl == DMCE_STAB_TTL_NEVER)
        return 0;
    if (ttl == DMCE_STAB_TTL_DEFAULT)
        ttl = s->def_ttl;
    if (ttl == 0)
        return 0;
    return s->now > UINT64_MAX - ttl ? UINT64_MAX : s->now + ttl;
}

/* A read result of model key k: value bytes and version agree. */
static void model_read(fstate_t *s, int k, int r, const uint8_t *v, uint32_t n, uint64_t ver)
{
    if (k < 0)
        return;
    if (ver > s->maxver[k])
        s->maxver[k] = ver;
    if (!s->model_on)
        return;
    mkey_t *m = &s->m[k];
    if (r == -ENOENT) {
        if (model_live(s, k) && !s->evict)
            fprintf(stderr, "store: key-%d vanished (version %llu)\n", k,
                    (unsigned long long)m->version);
        FZ_CHECK(!model_live(s, k) || s->evict);
        model_drop(s, k);
        return;
    }
    FZ_CHECK(r == 0);
    FZ_CHECK(model_live(s, k));
    FZ_CHECK_EQ(ver, m->version);
    FZ_CHECK_EQ(n, m->vlen);
    if (v)
        FZ_CHECK(memcmp(v, m->val, n) == 0);
}

static void op_get(fstate_t *s, const char *key, uint32_t klen, int k, uint16_t a)
{
    uint32_t cap = (a & 1) ? a % 64 : VAL_MAX, vlen = 0;
    uint64_t ver = 0;
    int r = dmce_stab_get(s->t, key, klen, s->vbuf, cap, &vlen, &ver);
    FZ_CHECK(r == 0 || r == -ENOENT || r == -ENOBUFS || r == DMCE_ECORRUPT || is_common_err(r));
    if (r == 0 || r == -ENOBUFS)
        FZ_CHECK(vlen <= s->max_value);
    if (r == -ENOBUFS)
        FZ_CHECK(vlen > cap);
    if (r == 0 || r == -ENOENT)
        model_read(s, k, r, s->vbuf, vlen, ver);
    else if (r == -ENOBUFS)
        model_read(s, k, 0, NULL, vlen, ver);
    else if (s->model_on)
        FZ_CHECK(is_common_err(r)); /* a consistent table is never corrupt */
}

static void op_view(fstate_t *s, const char *key, uint32_t klen, int k, uint16_t a)
{
    dmce_stab_view_t v;
    int r = dmce_stab_view(s->t, key, klen, &v);
    FZ_CHECK(r == 0 || r == -ENOENT || r == DMCE_ECORRUPT || is_common_err(r));
    if (r != 0) {
        if (r == -ENOENT)
            model_read(s, k, r, NULL, 0, 0);
        else if (s->model_on)
            FZ_CHECK(is_common_err(r));
        return;
    }
    const uint8_t *p = v.value;
    FZ_CHECK(p >= s->b && p <= s->b + s->size && v.len <= (uint64_t)(s->b + s->size - p));
    FZ_CHECK(v.len <= s->max_value && v.rec != 0);
    model_read(s, k, 0, p, v.len, v.version);
    int c = dmce_stab_view_check(s->t, &v);
    FZ_CHECK(c == 0 || c == -ESTALE);
    if (s->model_on)
        FZ_CHECK_EQ(c, 0);
    unsigned slot = a % 4;
    if ((a & 4) && s->views[slot].rec == 0) {
        s->views[slot] = v; /* hold the lease across later writes */
    } else {
        dmce_stab_view_release(s->t, &v);
        FZ_CHECK(v.rec == 0);
        dmce_stab_view_release(s->t, &v); /* twice: a no-op */
        FZ_CHECK_EQ(dmce_stab_view_check(s->t, &v), -EINVAL);
    }
}

static void op_set(fstate_t *s, const char *key, uint32_t klen, int k, uint8_t sel, uint16_t a)
{
    uint32_t vlen = a % (s->max_value + 2u);
    if (vlen > VAL_MAX)
        vlen = VAL_MAX;
    uint8_t *val = malloc(vlen ? vlen : 1);
    FZ_CHECK(val != NULL);
    fill_value(val, vlen, (uint64_t)a << 8 | sel);
    static const uint64_t ttls[] = {DMCE_STAB_TTL_DEFAULT, DMCE_STAB_TTL_NEVER, 1, 50, 5000};
    uint64_t ttl = ttls[(sel >> 3) % 5];
    uint64_t cas = 0;
    uint32_t flags = 0;
    switch ((sel >> 5) % 4) {
    case 1:
        cas = k >= 0 && s->m[k].present ? s->m[k].version : 1; /* right (if known) */
        break;
    case 2: cas = k >= 0 ? s->maxver[k] + 1 + (a & 3) : 7; break; /* never issued yet */
    case 3: flags = (a & 0x100) ? DMCE_STAB_SET_XX : DMCE_STAB_SET_NX; break;
    }
    uint64_t ver = 0;
    int live = k >= 0 && model_live(s, k);
    int r = dmce_stab_set(s->t, key, klen, val, vlen, ttl, cas, flags, &ver);
    FZ_CHECK(r == 0 || r == -ESTALE || r == -ENOENT || r == -EEXIST || r == -ENOSPC ||
             r == -EBUSY || r == DMCE_ECORRUPT || is_common_err(r));
    if (r == 0 && k >= 0) {
        FZ_CHECK(ver > s->maxver[k]);
        s->maxver[k] = ver;
    }
    if (s->model_on) {
        FZ_CHECK(r != DMCE_ECORRUPT && r != -EBUSY);
        if (k >= 0 && !s->evict) {
            /* What the model predicts, eviction aside (checks in set's order). */
            if (vlen > s->max_value)
                FZ_CHECK_EQ(r, -EMSGSIZE);
            else if (cas && !live)
                FZ_CHECK_EQ(r, -ENOENT);
            else if (cas && s->m[k].version != cas)
                FZ_CHECK_EQ(r, -ESTALE);
            else if ((flags & DMCE_STAB_SET_NX) && live)
                FZ_CHECK_EQ(r, -EEXIST);
            else if ((flags & DMCE_STAB_SET_XX) && !live)
                FZ_CHECK_EQ(r, -ENOENT);
            else
                FZ_CHECK(r == 0 || r == -ENOSPC);
        }
        if (k >= 0 && r == 0)
            model_set(s, k, val, vlen, ver, expire_for(s, ttl));
        else if (k >= 0 && r == -ENOENT && s->evict)
            model_drop(s, k);
    }
    free(val);
}

static void op_del(fstate_t *s, const char *key, uint32_t klen, int k, uint8_t sel)
{
    uint64_t cas = 0;
    if (sel & 0x20)
        cas = k >= 0 && s->m[k].present ? s->m[k].version : 3;
    int live = k >= 0 && model_live(s, k);
    int r = dmce_stab_del(s->t, key, klen, cas);
    FZ_CHECK(r == 0 || r == -ENOENT || r == -ESTALE || r == -EBUSY || r == DMCE_ECORRUPT ||
             is_common_err(r));
    if (s->model_on && k >= 0) {
        FZ_CHECK(r != DMCE_ECORRUPT && r != -EBUSY);
        if (!live)
            FZ_CHECK_EQ(r, -ENOENT);
        else if (!s->evict)
            FZ_CHECK_EQ(r, cas && cas != s->m[k].version ? -ESTALE : 0);
        if (r == 0 || r == -ENOENT)
            model_drop(s, k);
    }
}

static void op_touch(fstate_t *s, const char *key, uint32_t klen, int k, uint8_t sel)
{
    static const uint64_t ttls[] = {DMCE_STAB_TTL_DEFAULT, DMCE_STAB_TTL_NEVER, 1, 100};
    uint64_t ttl = ttls[(sel >> 3) % 4];
    int live = k >= 0 && model_live(s, k);
    int r = dmce_stab_touch(s->t, key, klen, ttl);
    FZ_CHECK(r == 0 || r == -ENOENT || r == -EBUSY || r == DMCE_ECORRUPT || is_common_err(r));
    if (s->model_on && k >= 0) {
        FZ_CHECK(r != DMCE_ECORRUPT && r != -EBUSY);
        if (!live)
            FZ_CHECK_EQ(r, -ENOENT);
        else if (!s->evict)
            FZ_CHECK_EQ(r, 0);
        if (r == 0)
            s->m[k].expire_ms = expire_for(s, ttl);
        else
            model_drop(s, k);
    }
}

static void op_stats(fstate_t *s)
{
    dmce_stab_stats_t st;
    FZ_CHECK_EQ(dmce_stab_stats(s->t, &st), 0);
    FZ_CHECK(st.handles >= 1 || !s->model_on);
    if (s->model_on) {
        if (st.rebuilds_pending == 0) /* a quarantined stripe's free count is not kept */
            FZ_CHECK(st.mem_live + st.mem_free + st.mem_limbo <= st.mem_total);
        FZ_CHECK_EQ(st.locks_held, 0);
    }
}

/*
 * A 64-bit counter of the region so large that the script may wrap it:
 * the global epoch or a stripe's version clock. Real tables never get
 * near 2^63; a hostile one may start there (see the file comment).
 */
static int clock_near_wrap(const fstate_t *s)
{
    const dmce_stab_hdr_t *h = (const dmce_stab_hdr_t *)s->b;
    const dmce_stab_stripe_t *st = (const dmce_stab_stripe_t *)(s->b + h->stripes_off);
    if (h->epoch >= 1ull << 63)
        return 1;
    for (uint32_t i = 0; i < h->nstripes; i++)
        if (st[i].vclock >= 1ull << 63)
            return 1;
    return 0;
}

static void release_views(fstate_t *s)
{
    for (unsigned i = 0; i < 4; i++)
        if (s->views[i].rec) {
            if (s->model_on) {
                int c = dmce_stab_view_check(s->t, &s->views[i]);
                FZ_CHECK(c == 0 || c == -ESTALE);
            }
            dmce_stab_view_release(s->t, &s->views[i]);
        }
}

static void run_script(fstate_t *s, const uint8_t *script, int readers_only)
{
    char key[DMCE_STAB_KEY_LIMIT + 16];
    fz_in_t in = {script, SCRIPT_LEN, 0};
    for (unsigned n = 0; n < SCRIPT_LEN / OP_LEN; n++) {
        uint8_t op = fz_u8(&in), sel = fz_u8(&in);
        uint16_t a = fz_u16(&in);
        int k;
        uint32_t klen = make_key(sel, a, key, sizeof key, &k);
        unsigned what = op % 16;
        if (readers_only && what > 4 && what != 10 && what != 11)
            continue;
        if (k >= 0 && klen > s->max_key)
            k = -1; /* -E2BIG: not one of the model's keys on this table */
        switch (what) {
        case 0:
        case 1:
        case 2: op_get(s, key, klen, k, a); break;
        case 3:
        case 4: op_view(s, key, klen, k, a); break;
        case 5:
        case 6:
        case 7: op_set(s, key, klen, k, sel, a); break;
        case 8: op_del(s, key, klen, k, sel); break;
        case 9: op_touch(s, key, klen, k, sel); break;
        case 10: /* time passes */ s->now += (sel & 1) ? (uint64_t)a * 1000u : a % 128u; break;
        case 11: op_stats(s); break;
        case 12: {
            int r = dmce_stab_sweep(s->t);
            FZ_CHECK(r >= 0 || r == -EBUSY);
            if (s->model_on) {
                FZ_CHECK(r >= 0);
                for (unsigned i = 0; i < NKEYS; i++)
                    if (s->m[i].present && !model_live(s, (int)i))
                        model_drop(s, (int)i);
            }
            break;
        }
        case 13: {
            int r = dmce_stab_recover(s->t);
            FZ_CHECK(r >= 0 || r == -EBUSY);
            if (s->model_on)
                FZ_CHECK(r >= 0); /* slots of dead owners may be reaped */
            break;
        }
        case 14: {
            int r = dmce_stab_verify(s->t);
            FZ_CHECK(r == 0 || r == DMCE_ECORRUPT || r == -EBUSY);
            if (s->model_on)
                FZ_CHECK_EQ(r, 0);
            break;
        }
        default: { /* a second handle of this process: its own slot */
            dmce_stab_t *t2 = NULL;
            int r = dmce_stab_open(s->b, s->size, NULL, &t2);
            FZ_CHECK(r == 0 || r == -EUSERS || r == -ENOMEM);
            if (r == 0) {
                uint32_t vlen;
                int g = dmce_stab_get(t2, key, klen, NULL, 0, &vlen, NULL);
                FZ_CHECK(g == 0 || g == -ENOENT || g == -ENOBUFS || g == DMCE_ECORRUPT ||
                         is_common_err(g));
                dmce_stab_close(t2);
            }
            break;
        }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < SCRIPT_LEN)
        return 0;
    const uint8_t *script = data, *img = data + SCRIPT_LEN;
    size_t ilen = size - SCRIPT_LEN;
    uint64_t rsize = ilen > REGION_MAX ? REGION_MAX : ilen;
    if (ilen >= 24) {
        uint64_t hs = fz_le64(img + 16);
        if (hs >= DMCE_STAB_MIN_SIZE && hs <= REGION_MAX)
            rsize = hs;
    }
    fstate_t s;
    memset(&s, 0, sizeof s);
    s.size = rsize;
    s.b = fz_image(img, ilen, (size_t)rsize, 16);
    if ((script[0] & 1) && rsize >= sizeof(dmce_stab_hdr_t)) {
        uint32_t c = dmce_stab_geom_csum((const dmce_stab_hdr_t *)s.b);
        memcpy(s.b + offsetof(dmce_stab_hdr_t, geom_csum), &c, 4);
    }
    n_inputs++;
    int r = dmce_stab_attach(s.b, rsize);
    FZ_CHECK(r == 0 || r == DMCE_EBADMAGIC || r == DMCE_EVERSION || r == DMCE_ELAYOUT ||
             r == DMCE_ECORRUPT);
    if (r != 0)
        goto out;
    n_attached++;
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.now_ms = clock_ms;
    o.now_arg = &s;
    o.lock_timeout_ms = 1;
    o.grace_wait_ms = 1;
    s.now = 1700000000000ull + ((uint64_t)script[1] << 24);
    r = dmce_stab_open(s.b, rsize, &o, &s.t);
    FZ_CHECK(r == 0 || r == -EUSERS || r == -ENOMEM);
    if (r != 0)
        goto out;
    n_opened++;
    dmce_stab_params_t p;
    dmce_stab_params_get(s.b, &p);
    s.max_key = p.max_key;
    s.max_value = p.max_value;
    s.def_ttl = p.default_ttl_ms;
    s.evict = (p.flags & DMCE_STAB_EVICT) != 0;
    s.vbuf = malloc(VAL_MAX);
    FZ_CHECK(s.vbuf != NULL);

    /* 2. readers on whatever attached */
    run_script(&s, script, 1);
    release_views(&s);
    /* 3. verify reports, never crashes (and may wrap counters: look before and after) */
    int near_wrap = clock_near_wrap(&s);
    int v = dmce_stab_verify(s.t);
    near_wrap |= clock_near_wrap(&s);
    FZ_CHECK(v == 0 || v == DMCE_ECORRUPT || v == -EBUSY);
    /* 4. writers on a consistent table, against the model */
    s.model_on = v == 0 && !near_wrap;
    n_verified += (unsigned long)s.model_on;
    s.writers = s.model_on || getenv("DMCE_FUZZ_STORE_HOSTILE") != NULL;
    if (s.writers) {
        for (unsigned k = 0; k < NKEYS; k++) {
            char key[16];
            int n = snprintf(key, sizeof key, "key-%u", k);
            if ((uint32_t)n > s.max_key)
                continue; /* -E2BIG on this table: never one of the model's keys */
            uint32_t vlen = 0;
            uint64_t ver = 0;
            int g = dmce_stab_get(s.t, key, (uint32_t)n, s.vbuf, VAL_MAX, &vlen, &ver);
            if (s.model_on) {
                FZ_CHECK(g == 0 || g == -ENOENT);
                if (g == 0) {
                    dmce_stab_view_t vw;
                    FZ_CHECK_EQ(dmce_stab_view(s.t, key, (uint32_t)n, &vw), 0);
                    model_set(&s, (int)k, s.vbuf, vlen, ver, vw.expire_ms);
                    dmce_stab_view_release(s.t, &vw);
                    s.maxver[k] = ver;
                }
            }
        }
        run_script(&s, script, 0);
        release_views(&s);
        if (s.model_on)
            FZ_CHECK_EQ(dmce_stab_verify(s.t), 0);
    }
    release_views(&s);
    dmce_stab_close(s.t);
    for (unsigned k = 0; k < NKEYS; k++)
        model_drop(&s, (int)k);
    free(s.vbuf);
out:
    free(s.b);
    return 0;
}

#ifndef DMCE_LIBFUZZER
static void report(void)
{
    printf("fuzz_store: %lu inputs, %lu attached, %lu opened, %lu verified\n", n_inputs, n_attached,
           n_opened, n_verified);
}
#define FZ_REPORT report
#define FZ_NAME "store"
#define FZ_MAX_LEN 1024
#include "fuzz_driver.h"
#endif
