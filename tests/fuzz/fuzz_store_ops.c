/*
 * fuzz_store_ops.c - fuzz target for the session store's MSMP operations
 * (runtime/msmp_store.h), the bytes a memory daemon takes from any
 * out-of-process client.
 *
 * The input is used twice:
 *   1. as a bare payload, given to every store decoder. Checks: no decoder
 *      reads outside its input (ASan; the driver runs an exact-size heap
 *      copy); an accepted payload has exactly the length its fields
 *      announce, its key and value point inside it, reserved fields are 0,
 *      and re-encoding the fixed part gives back the input's bytes.
 *   2. as a request: byte 0 picks the op (16..24), the rest is its
 *      payload, run the way runtime/memd_store.c runs it, on a real table
 *      in plain memory. Checks: every result is one of the codes the op
 *      may return, and the table still verifies afterwards (no hostile
 *      request corrupts the store or reaches outside it).
 *
 * Built as a plain program (ctest "store_ops_fuzz", label unit, also under
 * the sanitizers): a bounded, seeded loop of mutations of well-formed
 * requests (DMCE_FUZZ_SEED overrides the seed, argv[1] the iteration
 * count). Its main() is its own: it needs no corpus files. With
 * -DDMCE_LIBFUZZER it is a libFuzzer entry point like the other targets.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "msmp.h"
#include "msmp_store.h"
#include "store_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- 1. the decoders on a bare payload ------------------------------------------------ */

static void decoders(const uint8_t *p, size_t n)
{
    uint8_t b[64];
    dmce_msmp_store_format_req_t f;
    int r = dmce_msmp_store_format_req_decode(p, n, &f);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        CHECK(n == DMCE_MSMP_STORE_FORMAT_REQ_SIZE && !(f.flags & ~DMCE_MSMP_STORE_EVICT));
        dmce_msmp_store_format_req_encode(&f, b);
        CHECK(memcmp(b, p, n) == 0);
    }
    dmce_msmp_store_info_t in;
    r = dmce_msmp_store_info_decode(p, n, &in);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        CHECK(n == DMCE_MSMP_STORE_INFO_SIZE && in.reserved == 0 && in.max_key && in.size);
        dmce_msmp_store_info_encode(&in, b);
        CHECK(memcmp(b, p, n) == 0);
    }
    uint64_t a;
    r = dmce_msmp_store_addr_decode(p, n, &a);
    CHECK(r == 0 ? n == 8 && a == dmce_get_le64(p) : r == -EBADMSG);

    dmce_msmp_store_get_req_t g;
    r = dmce_msmp_store_get_req_decode(p, n, &g);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        CHECK((uint64_t)n == DMCE_MSMP_STORE_GET_REQ_HDR + (uint64_t)g.klen);
        CHECK(g.key == p + DMCE_MSMP_STORE_GET_REQ_HDR);
        dmce_msmp_store_get_req_encode(&g, b);
        CHECK(memcmp(b, p, DMCE_MSMP_STORE_GET_REQ_HDR) == 0);
    }
    dmce_msmp_store_get_resp_t gr;
    r = dmce_msmp_store_get_resp_decode(p, n, &gr);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        int with = (gr.flags & DMCE_MSMP_STORE_GET_VALUE) != 0;
        CHECK(!(gr.flags & ~DMCE_MSMP_STORE_GET_VALUE));
        CHECK((uint64_t)n == DMCE_MSMP_STORE_GET_RESP_HDR + (with ? (uint64_t)gr.vlen : 0));
        CHECK(with ? gr.value == p + DMCE_MSMP_STORE_GET_RESP_HDR : gr.value == NULL);
        dmce_msmp_store_get_resp_encode(&gr, b);
        CHECK(memcmp(b, p, DMCE_MSMP_STORE_GET_RESP_HDR) == 0);
    }
    dmce_msmp_store_set_req_t s;
    r = dmce_msmp_store_set_req_decode(p, n, &s);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        CHECK((uint64_t)n == DMCE_MSMP_STORE_SET_REQ_HDR + (uint64_t)s.klen + s.vlen);
        CHECK(s.reserved == 0 && !(s.flags & ~3u));
        CHECK(s.key == p + DMCE_MSMP_STORE_SET_REQ_HDR && s.value == s.key + s.klen);
        dmce_msmp_store_set_req_encode(&s, b);
        CHECK(memcmp(b, p, DMCE_MSMP_STORE_SET_REQ_HDR) == 0);
    }
    dmce_msmp_store_key_req_t k;
    r = dmce_msmp_store_key_req_decode(p, n, &k);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        CHECK((uint64_t)n == DMCE_MSMP_STORE_KEY_REQ_HDR + (uint64_t)k.klen && k.reserved == 0);
        dmce_msmp_store_key_req_encode(&k, b);
        CHECK(memcmp(b, p, DMCE_MSMP_STORE_KEY_REQ_HDR) == 0);
    }
    uint64_t v[DMCE_STORE_STAT_COUNT_];
    r = dmce_msmp_store_stats_decode(p, n, v);
    CHECK(r == 0 || r == -EBADMSG);
    if (r == 0)
        CHECK(n >= DMCE_MSMP_STORE_STATS_SIZE && (n - 8) % 8 == 0);
}

/* ---- 2. requests run on a table, as the daemon runs them ------------------------------- */

#define REGION (64u << 10)
static uint8_t *region;
static dmce_stab_t *tab;

static void table_init(void)
{
    if (tab)
        return;
    region = aligned_alloc(4096, REGION);
    CHECK(region != NULL);
    dmce_stab_params_t p = {
        .max_key = 64, .max_value = 1024, .nstripes = 2, .flags = DMCE_STAB_EVICT};
    CHECK(dmce_stab_format(region, REGION, &p) == 0);
    dmce_stab_opts_t o = {.lock_timeout_ms = 100, .grace_wait_ms = 1};
    CHECK(dmce_stab_open(region, REGION, &o, &tab) == 0);
}

static int allowed(int r, const int *ok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r == ok[i])
            return 1;
    return 0;
}

#define ALLOWED(r, ...)                                                                            \
    do {                                                                                           \
        static const int ok_[] = {__VA_ARGS__};                                                    \
        if (!allowed((r), ok_, sizeof ok_ / sizeof ok_[0])) {                                      \
            fprintf(stderr, "fuzz: op %u returned %s\n", op, dmce_err_name(r));                    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void request(unsigned op, const uint8_t *p, size_t n)
{
    int r;
    switch (op) {
    case DMCE_MSMP_OP_STORE_GET: {
        dmce_msmp_store_get_req_t rq;
        if (dmce_msmp_store_get_req_decode(p, n, &rq) < 0)
            return;
        dmce_stab_view_t v;
        r = dmce_stab_view(tab, rq.key, rq.klen, &v);
        ALLOWED(dmce_msmp_store_status(op, r), 0, -ENOENT, -EINVAL, -E2BIG);
        if (r == 0) {
            CHECK((const uint8_t *)v.value >= region &&
                  (const uint8_t *)v.value + v.len <= region + REGION);
            dmce_stab_view_release(tab, &v);
        }
        break;
    }
    case DMCE_MSMP_OP_STORE_SET: {
        dmce_msmp_store_set_req_t rq;
        if (dmce_msmp_store_set_req_decode(p, n, &rq) < 0)
            return;
        r = dmce_stab_set(tab, rq.key, rq.klen, rq.vlen ? rq.value : NULL, rq.vlen, rq.ttl_ms,
                          rq.cas_version, rq.flags, NULL);
        ALLOWED(dmce_msmp_store_status(op, r), 0, -ENOENT, -EINVAL, -E2BIG, -EMSGSIZE, -EEXIST,
                DMCE_ECASFAIL, DMCE_ESTOREFULL);
        break;
    }
    case DMCE_MSMP_OP_STORE_DEL:
    case DMCE_MSMP_OP_STORE_TOUCH: {
        dmce_msmp_store_key_req_t rq;
        if (dmce_msmp_store_key_req_decode(p, n, &rq) < 0)
            return;
        r = op == DMCE_MSMP_OP_STORE_DEL ? dmce_stab_del(tab, rq.key, rq.klen, rq.arg)
                                         : dmce_stab_touch(tab, rq.key, rq.klen, rq.arg);
        ALLOWED(dmce_msmp_store_status(op, r), 0, -ENOENT, -EINVAL, -E2BIG, DMCE_ECASFAIL);
        break;
    }
    case DMCE_MSMP_OP_STORE_SWEEP: {
        uint64_t a;
        if (dmce_msmp_store_addr_decode(p, n, &a) < 0)
            return;
        CHECK(dmce_stab_sweep(tab) >= 0);
        break;
    }
    default: return;
    }
    r = dmce_stab_verify(tab);
    if (r != 0) {
        fprintf(stderr, "fuzz: the table no longer verifies after op %u: %s\n", op,
                dmce_err_name(r));
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decoders(data, size);
    if (size >= 1) {
        table_init();
        request(DMCE_MSMP_OP_STORE_FIRST_ + data[0] % 9u, data + 1, size - 1);
    }
    return 0;
}

#ifndef DMCE_LIBFUZZER

/* ---- plain driver: seeded mutations of well-formed requests ------------------------------ */

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t x = rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* A well-formed request for a random op: byte 0 the op, then its payload. */
static size_t seed_request(uint8_t *buf, size_t cap)
{
    unsigned k = (unsigned)(rnd() % 9);
    uint32_t klen, vlen = (uint32_t)(rnd() % 1000);
    uint8_t key[16];
    snprintf((char *)key, sizeof key, "k%u", (unsigned)(rnd() % 200));
    klen = (uint32_t)strlen((char *)key);
    uint8_t *p = buf + 1;
    size_t n = 0;
    buf[0] = (uint8_t)k;
    switch (DMCE_MSMP_OP_STORE_FIRST_ + k) {
    case DMCE_MSMP_OP_STORE_FORMAT: {
        dmce_msmp_store_format_req_t f = {.addr = rnd(), .max_key = 64};
        dmce_msmp_store_format_req_encode(&f, p);
        n = DMCE_MSMP_STORE_FORMAT_REQ_SIZE;
        break;
    }
    case DMCE_MSMP_OP_STORE_GET: {
        dmce_msmp_store_get_req_t g = {.addr = 1, .klen = klen, .cap = 1024};
        dmce_msmp_store_get_req_encode(&g, p);
        memcpy(p + DMCE_MSMP_STORE_GET_REQ_HDR, key, klen);
        n = DMCE_MSMP_STORE_GET_REQ_HDR + klen;
        break;
    }
    case DMCE_MSMP_OP_STORE_SET: {
        dmce_msmp_store_set_req_t s = {.addr = 1,
                                       .ttl_ms = rnd() % 4 ? 0 : 1 + rnd() % 5,
                                       .flags = (uint32_t)(rnd() % 3),
                                       .klen = klen,
                                       .vlen = vlen};
        if (DMCE_MSMP_STORE_SET_REQ_HDR + (size_t)klen + vlen + 1 > cap)
            s.vlen = vlen = 0;
        dmce_msmp_store_set_req_encode(&s, p);
        memcpy(p + DMCE_MSMP_STORE_SET_REQ_HDR, key, klen);
        memset(p + DMCE_MSMP_STORE_SET_REQ_HDR + klen, 'v', vlen);
        n = DMCE_MSMP_STORE_SET_REQ_HDR + klen + vlen;
        break;
    }
    case DMCE_MSMP_OP_STORE_DEL:
    case DMCE_MSMP_OP_STORE_TOUCH: {
        dmce_msmp_store_key_req_t d = {.addr = 1, .arg = rnd() % 3, .klen = klen};
        dmce_msmp_store_key_req_encode(&d, p);
        memcpy(p + DMCE_MSMP_STORE_KEY_REQ_HDR, key, klen);
        n = DMCE_MSMP_STORE_KEY_REQ_HDR + klen;
        break;
    }
    case DMCE_MSMP_OP_STORE_STATS: {
        uint64_t v[DMCE_STORE_STAT_COUNT_];
        for (unsigned i = 0; i < DMCE_STORE_STAT_COUNT_; i++)
            v[i] = rnd();
        dmce_msmp_store_stats_encode(v, p);
        n = DMCE_MSMP_STORE_STATS_SIZE;
        break;
    }
    default: { /* open, sweep, verify: an address; or an info response */
        if (rnd() % 2) {
            dmce_msmp_store_info_t in = {.size = 1 + rnd(), .max_key = 1, .table_id = rnd()};
            dmce_msmp_store_info_encode(&in, p);
            n = DMCE_MSMP_STORE_INFO_SIZE;
        } else {
            dmce_put_le64(p, rnd());
            n = 8;
        }
        break;
    }
    }
    return 1 + n;
}

static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
    static const uint32_t vals[] = {0,          1,           2,           15,         16,   24,
                                    40,         63,          64,          65,         1024, 1025,
                                    0x7fffffff, 0x80000000u, 0xfffffff0u, 0xffffffffu};
    int rounds = (int)(rnd() % 4);
    for (int i = 0; i < rounds && len > 1; i++) {
        switch (rnd() % 6) {
        case 0: /* bit flip */ buf[1 + rnd() % (len - 1)] ^= (uint8_t)(1u << rnd() % 8); break;
        case 1: /* an interesting 32-bit value in an aligned field of the fixed part */
            if (len >= 5) {
                size_t off = 1 + 4 * (rnd() % ((len - 1) / 4 < 10 ? (len - 1) / 4 : 10));
                if (off + 4 <= len)
                    dmce_put_le32(buf + off, vals[rnd() % (sizeof vals / sizeof vals[0])]);
            }
            break;
        case 2: /* truncate */ len = 1 + rnd() % len; break;
        case 3: /* extend */ {
            size_t more = rnd() % 16;
            if (len + more <= cap) {
                for (size_t j = 0; j < more; j++)
                    buf[len + j] = (uint8_t)rnd();
                len += more;
            }
            break;
        }
        case 4: /* another op for the same bytes */ buf[0] = (uint8_t)rnd(); break;
        default: /* a length field off by one */
            if (len >= 33)
                dmce_put_le32(buf + 29, dmce_get_le32(buf + 29) + (uint32_t)(rnd() % 3) - 1);
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    if (iters == 0)
        iters = 200000;
    const char *seed = getenv("DMCE_FUZZ_SEED");
    rng = seed ? strtoull(seed, NULL, 0) : 0x5EED5EED5EEDull;
    if (rng == 0)
        rng = 1;
    enum { CAP = 2048 };
    uint8_t *buf = malloc(CAP);
    CHECK(buf != NULL);
    for (unsigned long i = 0; i < iters; i++) {
        size_t len = seed_request(buf, CAP);
        if (rnd() % 8)
            len = mutate(buf, len, CAP);
        else if (rnd() % 2) { /* pure random bytes */
            len = rnd() % 128;
            for (size_t j = 0; j < len; j++)
                buf[j] = (uint8_t)rnd();
        }
        uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        CHECK(copy != NULL);
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
    }
    dmce_stab_stats_t st;
    CHECK(dmce_stab_stats(tab, &st) == 0);
    printf("store_ops fuzz: %lu inputs; table: %llu entries, %llu sets, %llu evictions, "
           "%llu expirations; the table verified after every request it ran\n",
           iters, (unsigned long long)st.entries, (unsigned long long)st.sets,
           (unsigned long long)st.evictions, (unsigned long long)st.expirations);
    dmce_stab_close(tab);
    free(region);
    free(buf);
    return 0;
}
#endif
