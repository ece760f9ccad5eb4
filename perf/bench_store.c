/*
 * bench_store.c - dmce-bench-store: the session store (include/dmce/store.h)
 * beside a naive shared-memory table, get / set / 90-10 mix, one or more
 * client processes. Issue 5's benchmark; the peers (Redis, memcached) are
 * measured in the same run by dmce-bench-peers --area store.
 *
 * What one run does (main, before any client starts):
 *   - builds nkeys keys "session:N" once (no formatting in the timed loop);
 *   - --impl inproc|ring|socket: connects a creator client (maps blocks),
 *     creates one store of --store-size bytes (max_value = the value size,
 *     max_key 32) with dmce_store_create, opens it in-process and sets every
 *     key to a value of --size bytes, closes that handle and stays
 *     connected (the store belongs to its session) until the end, then
 *     destroys the store;
 *   - --impl naive: builds the naive table instead (below), same keys,
 *     same values.
 * Then one result per --op (get, set, mix), each through the common frame
 * (bench.h): every client process connects its own client, opens the
 * store its way, checks a value reads back, and runs the op on keys
 * drawn at random (xorshift, seeded by the client index, the same
 * sequence for every impl). mix = every tenth op a set.
 *
 *   dmce-inproc      default connection (maps blocks), DMCE_STORE_IN_PROCESS:
 *                    a function call on the mapped table, no message
 *   dmce-oop-ring    DMCE_CONNECT_NO_MAP: one MSMP message per op, over the
 *                    shared-memory rings (setup checks the daemon counts a
 *                    ring client)
 *   dmce-oop-socket  DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING: one MSMP
 *                    message per op, over the Unix socket
 *   naive-rwlock     the naive table below, no dmce at all
 *
 * The naive table is what one would write in an afternoon: one
 * MAP_SHARED region made before fork, one pthread rwlock
 * (PTHREAD_PROCESS_SHARED) around everything, open addressing with linear
 * probing (FNV-1a, at most half full), fixed slots of key + value. A get
 * takes the read lock, probes, copies the value out; a set takes the write
 * lock, probes, copies the value in. No checksum, no versions, no crash
 * safety, no eviction: the floor a real store has to justify its cost
 * against.
 *
 * Latency: the in-process and naive ops take tens of nanoseconds, close to
 * the ~25 ns of a clock read, so their samples are batches of 32 ops (the
 * latency of a sample is the batch's mean); out-of-process ops are timed
 * one by one.
 *
 * Result: area "store", bench get / set / mix, impl as above, params size
 * and clients (the same rows as the peers' results).
 *
 * Exit status: 0 every op gave a result, 1 a call failed (message from
 * dmce_strerror), 2 bad usage.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/store.h>

#include "bench.h"

#define PROG "dmce-bench-store"
#define KEY_MAX 24 /* "session:" + up to 10 digits, NUL */
#define MAX_KEYS (1u << 20)
#define MAX_VALUE (1u << 20)
#define MAX_OPS 8
#define FAST_BATCH 32 /* ops per latency sample of the in-process and naive paths */

typedef enum { IMPL_INPROC, IMPL_RING, IMPL_SOCKET, IMPL_NAIVE } impl_t;
typedef enum { OP_GET, OP_SET, OP_MIX } op_t;

static const char *const impl_names[] = {[IMPL_INPROC] = "dmce-inproc",
                                         [IMPL_RING] = "dmce-oop-ring",
                                         [IMPL_SOCKET] = "dmce-oop-socket",
                                         [IMPL_NAIVE] = "naive-rwlock"};
static const char *const op_names[] = {[OP_GET] = "get", [OP_SET] = "set", [OP_MIX] = "mix"};

/* ---- the naive table --------------------------------------------------------- */

typedef struct naive_slot {
    uint32_t klen; /* 0: empty */
    uint32_t vlen;
    char key[KEY_MAX];
    unsigned char val[]; /* stride - 32 bytes */
} naive_slot_t;

typedef struct naive_table {
    pthread_rwlock_t lock; /* PTHREAD_PROCESS_SHARED: guards everything below */
    uint32_t nslots;       /* a power of two, at least 2 x keys */
    uint32_t stride;       /* bytes per slot: header + max value, rounded to 64 */
    uint32_t vmax;
    _Alignas(64) unsigned char slots[]; /* nslots x stride; the mapping is page-aligned */
} naive_table_t;

_Static_assert(offsetof(naive_table_t, slots) % 64 == 0, "slots start on a cache line");

static uint32_t fnv1a(const char *k, uint32_t n)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)k[i]) * 16777619u;
    return h;
}

static naive_slot_t *naive_slot(naive_table_t *t, uint32_t i)
{
    return (naive_slot_t *)(t->slots + (size_t)i * t->stride);
}

/* The key's slot, or the empty slot where it would go, or NULL if full. Lock held. */
static naive_slot_t *naive_find_locked(naive_table_t *t, const char *k, uint32_t n)
{
    uint32_t mask = t->nslots - 1, i = fnv1a(k, n) & mask;
    for (uint32_t probes = 0; probes < t->nslots; probes++, i = (i + 1) & mask) {
        naive_slot_t *s = naive_slot(t, i);
        if (s->klen == 0 || (s->klen == n && memcmp(s->key, k, n) == 0))
            return s;
    }
    return NULL;
}

static int naive_get(naive_table_t *t, const char *k, uint32_t n, void *buf, uint32_t cap,
                     uint32_t *vlen)
{
    int rc = pthread_rwlock_rdlock(&t->lock);
    if (rc)
        return -rc;
    naive_slot_t *s = naive_find_locked(t, k, n);
    if (!s || s->klen == 0) {
        rc = -ENOENT;
    } else if (s->vlen > cap) {
        rc = -ENOBUFS;
    } else {
        memcpy(buf, s->val, s->vlen);
        *vlen = s->vlen;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

static int naive_set(naive_table_t *t, const char *k, uint32_t n, const void *val, uint32_t vlen)
{
    if (n == 0 || n >= KEY_MAX || vlen > t->vmax)
        return -EINVAL;
    int rc = pthread_rwlock_wrlock(&t->lock);
    if (rc)
        return -rc;
    naive_slot_t *s = naive_find_locked(t, k, n);
    if (!s) {
        rc = -ENOSPC;
    } else {
        if (s->klen == 0) {
            memcpy(s->key, k, n);
            s->klen = n;
        }
        memcpy(s->val, val, vlen);
        s->vlen = vlen;
    }
    pthread_rwlock_unlock(&t->lock);
    return rc;
}

/* A table for nkeys values of up to vmax bytes in fresh MAP_SHARED memory. */
static int naive_create(uint32_t nkeys, uint32_t vmax, naive_table_t **out, size_t *len_out)
{
    uint32_t nslots = 16;
    while (nslots < 2 * nkeys)
        nslots *= 2;
    size_t stride = (sizeof(naive_slot_t) + vmax + 63) & ~(size_t)63;
    size_t len = sizeof(naive_table_t) + (size_t)nslots * stride;
    /* Owner: main (naive_destroy); inherited by the client processes. */
    naive_table_t *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return -errno;
    t->nslots = nslots;
    t->stride = (uint32_t)stride;
    t->vmax = vmax;
    pthread_rwlockattr_t a;
    int rc = pthread_rwlockattr_init(&a);
    if (rc == 0) {
        rc = pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        if (rc == 0)
            rc = pthread_rwlock_init(&t->lock, &a);
        pthread_rwlockattr_destroy(&a);
    }
    if (rc) {
        munmap(t, len);
        return -rc;
    }
    *out = t;
    *len_out = len;
    return 0;
}

static void naive_destroy(naive_table_t *t, size_t len)
{
    if (!t)
        return;
    pthread_rwlock_destroy(&t->lock);
    munmap(t, len);
}

/* ---- the benchmark ------------------------------------------------------------ */

typedef struct store_ctx {
    /* options */
    const char *runtime_dir;
    impl_t impl;
    int impl_set;
    uint32_t size, nkeys;
    uint64_t store_size;
    op_t ops[MAX_OPS];
    unsigned nops;
    /* made by main before any client; inherited by client processes */
    op_t op;                /* the case being run */
    char (*keys)[KEY_MAX];  /* owner: main */
    uint32_t *klens;        /* owner: main */
    dmce_client_t *creator; /* owner: main; holds the store's allocation */
    dmce_addr_t addr;       /* the store */
    naive_table_t *naive;   /* owner: main */
    size_t naive_len;
    /* per client process; owner: setup, released by teardown */
    dmce_client_t *client;
    dmce_store_t *store;
    unsigned char *val, *buf;
    uint64_t rng;
} store_ctx_t;

static int set_runtime_dir(void *u, const char *v)
{
    ((store_ctx_t *)u)->runtime_dir = v;
    return 0;
}

static int set_impl(void *u, const char *v)
{
    store_ctx_t *x = u;
    static const struct {
        const char *name;
        impl_t impl;
    } m[] = {{"inproc", IMPL_INPROC},
             {"ring", IMPL_RING},
             {"socket", IMPL_SOCKET},
             {"naive", IMPL_NAIVE}};
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        if (strcmp(v, m[i].name) == 0) {
            x->impl = m[i].impl;
            x->impl_set = 1;
            return 0;
        }
    }
    fprintf(stderr, PROG ": --impl: expected inproc, ring, socket or naive, got '%s'\n", v);
    return -1;
}

static int set_size(void *u, const char *v)
{
    uint64_t n;
    if (dmce_bench_parse_size(v, 1, MAX_VALUE, &n) < 0) {
        fprintf(stderr, PROG ": --size: expected 1..1M bytes (K/M suffix), got '%s'\n", v);
        return -1;
    }
    ((store_ctx_t *)u)->size = (uint32_t)n;
    return 0;
}

static int set_keys(void *u, const char *v)
{
    uint64_t n;
    if (dmce_bench_parse_size(v, 1, MAX_KEYS, &n) < 0) {
        fprintf(stderr, PROG ": --keys: expected 1..%u, got '%s'\n", MAX_KEYS, v);
        return -1;
    }
    ((store_ctx_t *)u)->nkeys = (uint32_t)n;
    return 0;
}

static int set_store_size(void *u, const char *v)
{
    if (dmce_bench_parse_size(v, DMCE_STORE_SIZE_MIN, DMCE_STORE_SIZE_MAX,
                              &((store_ctx_t *)u)->store_size) < 0) {
        fprintf(stderr, PROG ": --store-size: expected 16K..64G bytes, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_op(void *u, const char *v)
{
    store_ctx_t *x = u;
    x->nops = 0;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        unsigned k;
        for (k = 0; k < 3; k++)
            if (strlen(op_names[k]) == n && strncmp(p, op_names[k], n) == 0)
                break;
        if (k == 3 || x->nops == MAX_OPS) {
            fprintf(stderr, PROG ": --op: expected a list of get, set, mix; got '%s'\n", v);
            return -1;
        }
        x->ops[x->nops++] = (op_t)k;
        p += n;
        if (*p == ',')
            p++;
    }
    if (x->nops == 0) {
        fprintf(stderr, PROG ": --op: empty list\n");
        return -1;
    }
    return 0;
}

static const char *store_strerror(int err)
{
    return dmce_strerror(err);
}

/* The value a key starts with: its id, then a pattern. */
static void fill_value(unsigned char *v, uint32_t size, uint32_t id)
{
    for (uint32_t i = 0; i < size; i++)
        v[i] = (unsigned char)(id * 7u + i * 131u + 3u);
}

static uint32_t next_key(store_ctx_t *x)
{
    x->rng ^= x->rng << 13;
    x->rng ^= x->rng >> 7;
    x->rng ^= x->rng << 17;
    return (uint32_t)((x->rng >> 16) % x->nkeys);
}

static int do_get(store_ctx_t *x, uint32_t id)
{
    uint32_t vlen = 0;
    int rc =
        x->impl == IMPL_NAIVE
            ? naive_get(x->naive, x->keys[id], x->klens[id], x->buf, x->size, &vlen)
            : dmce_store_get(x->store, x->keys[id], x->klens[id], x->buf, x->size, &vlen, NULL);
    if (rc == 0 && vlen != x->size)
        rc = -EIO; /* a value of the wrong length: the store is not what we set */
    return rc;
}

static int do_set(store_ctx_t *x, uint32_t id, const unsigned char *val)
{
    return x->impl == IMPL_NAIVE ? naive_set(x->naive, x->keys[id], x->klens[id], val, x->size)
                                 : dmce_store_set(x->store, x->keys[id], x->klens[id], val, x->size,
                                                  DMCE_STORE_TTL_NEVER, 0, 0, NULL);
}

static void store_teardown(void *p, unsigned client)
{
    store_ctx_t *x = p;
    dmce_store_close(x->store); /* NULL: no-op */
    x->store = NULL;
    if (x->client) {
        int rc = dmce_disconnect(x->client);
        if (rc < 0)
            fprintf(stderr, PROG ": client %u: dmce_disconnect: %s\n", client, dmce_strerror(rc));
        x->client = NULL;
    }
    free(x->val);
    free(x->buf);
    x->val = x->buf = NULL;
}

static int store_setup(void *p, unsigned client)
{
    store_ctx_t *x = p;
    const char *what = "out of memory";
    int rc = -ENOMEM;
    x->rng = UINT64_C(0x9E3779B97F4A7C15) * (client + 1u);
    x->val = malloc(x->size);
    x->buf = malloc(x->size);
    if (!x->val || !x->buf)
        goto fail;
    if (x->impl != IMPL_NAIVE) {
        dmce_connect_opts_t copts;
        memset(&copts, 0, sizeof(copts));
        copts.runtime_dir = x->runtime_dir;
        copts.flags = x->impl == IMPL_INPROC ? 0
                      : x->impl == IMPL_RING ? DMCE_CONNECT_NO_MAP
                                             : DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING;
        what = "dmce_connect";
        if ((rc = dmce_connect(&copts, &x->client)) < 0) {
            x->client = NULL;
            goto fail;
        }
        what = "dmce_setup";
        if ((rc = dmce_setup(x->client, 0, 0, NULL, NULL)) < 0)
            goto fail;
        what = "dmce_store_open";
        rc = dmce_store_open(
            x->client, x->addr,
            x->impl == IMPL_INPROC ? DMCE_STORE_IN_PROCESS : DMCE_STORE_OUT_OF_PROCESS, &x->store);
        if (rc < 0) {
            x->store = NULL;
            goto fail;
        }
        dmce_store_info_t info;
        what = "dmce_store_info";
        if ((rc = dmce_store_info(x->store, &info)) < 0)
            goto fail;
        if (info.in_process != (x->impl == IMPL_INPROC)) {
            fprintf(stderr, PROG ": client %u: the handle is %s, not what %s measures\n", client,
                    info.in_process ? "in-process" : "out-of-process", impl_names[x->impl]);
            rc = -EPROTO;
            goto fail_quiet;
        }
        if (x->impl == IMPL_RING) {
            /* The row claims the rings: check the daemon put this client on them. */
            dmce_stats_t st;
            what = "dmce_daemon_stats";
            if ((rc = dmce_daemon_of(x->client, x->addr)) < 0 ||
                (rc = dmce_daemon_stats(x->client, (unsigned)rc, &st)) < 0)
                goto fail;
            if (st.ring_clients == 0) {
                fprintf(stderr, PROG ": client %u: the daemon has no ring client\n", client);
                rc = -EPROTO;
                goto fail_quiet;
            }
        }
    }
    /* Sanity check: the benchmark measures ops that work. On this client's
     * own key (prepare): the others may already be setting the shared ones. */
    uint32_t own = x->nkeys + client;
    fill_value(x->val, x->size, own);
    what = "set (sanity check)";
    if ((rc = do_set(x, own, x->val)) < 0)
        goto fail;
    memset(x->buf, 0, x->size);
    what = "get (sanity check)";
    if ((rc = do_get(x, own)) < 0)
        goto fail;
    if (memcmp(x->buf, x->val, x->size) != 0) {
        fprintf(stderr, PROG ": client %u: sanity check: read back differs from what was set\n",
                client);
        rc = -EIO;
        goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": client %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    store_teardown(x, client);
    return rc;
}

static int store_op(void *p, uint64_t i)
{
    store_ctx_t *x = p;
    uint32_t id = next_key(x);
    if (x->op == OP_SET || (x->op == OP_MIX && i % 10 == 9)) {
        x->val[0] = (unsigned char)i; /* not the same bytes every time */
        return do_set(x, id, x->val);
    }
    return do_get(x, id);
}

/*
 * The keys, and the table or store with every key set. After the nkeys
 * keys the ops draw from, one more per possible client: its sanity check's
 * key, which no other client writes (a client checks while others may
 * already be setting the shared keys).
 */
static int prepare(store_ctx_t *x)
{
    uint32_t nall = x->nkeys + DMCE_BENCH_MAX_CLIENTS;
    x->keys = calloc(nall, sizeof(*x->keys));
    x->klens = calloc(nall, sizeof(*x->klens));
    unsigned char *v = malloc(x->size);
    int rc = -ENOMEM;
    if (!x->keys || !x->klens || !v) {
        fprintf(stderr, PROG ": out of memory\n");
        goto out;
    }
    for (uint32_t i = 0; i < nall; i++)
        x->klens[i] = (uint32_t)snprintf(x->keys[i], KEY_MAX, "session:%u", i);
    if (x->impl == IMPL_NAIVE) {
        if ((rc = naive_create(nall, x->size, &x->naive, &x->naive_len)) < 0) {
            fprintf(stderr, PROG ": naive table: %s\n", strerror(-rc));
            goto out;
        }
        for (uint32_t i = 0; i < x->nkeys; i++) {
            fill_value(v, x->size, i);
            if ((rc = naive_set(x->naive, x->keys[i], x->klens[i], v, x->size)) < 0) {
                fprintf(stderr, PROG ": naive table: set: %s\n", strerror(-rc));
                goto out;
            }
        }
        rc = 0;
        goto out;
    }
    dmce_connect_opts_t copts;
    memset(&copts, 0, sizeof(copts));
    copts.runtime_dir = x->runtime_dir;
    const char *what = "dmce_connect";
    if ((rc = dmce_connect(&copts, &x->creator)) < 0) {
        x->creator = NULL;
        goto fail;
    }
    what = "dmce_setup";
    if ((rc = dmce_setup(x->creator, 0, 0, NULL, NULL)) < 0)
        goto fail;
    dmce_store_params_t sp;
    memset(&sp, 0, sizeof(sp));
    sp.max_key = 32;
    sp.max_value = x->size;
    what = "dmce_store_create";
    if ((rc = dmce_store_create(x->creator, x->store_size, &sp, &x->addr)) < 0)
        goto fail;
    dmce_store_t *s = NULL;
    what = "dmce_store_open (creator)";
    if ((rc = dmce_store_open(x->creator, x->addr, 0, &s)) < 0)
        goto fail;
    what = "dmce_store_set (filling the store)";
    for (uint32_t i = 0; i < x->nkeys && rc == 0; i++) {
        fill_value(v, x->size, i);
        rc = dmce_store_set(s, x->keys[i], x->klens[i], v, x->size, DMCE_STORE_TTL_NEVER, 0, 0,
                            NULL);
    }
    dmce_store_close(s);
    if (rc < 0)
        goto fail;
    goto out;
fail:
    fprintf(stderr, PROG ": %s: %s\n", what, dmce_strerror(rc));
out:
    free(v);
    return rc;
}

static void finish(store_ctx_t *x)
{
    if (x->creator) {
        if (x->addr) {
            int rc = dmce_store_destroy(x->creator, x->addr);
            if (rc < 0)
                fprintf(stderr, PROG ": dmce_store_destroy: %s\n", dmce_strerror(rc));
        }
        int rc = dmce_disconnect(x->creator);
        if (rc < 0)
            fprintf(stderr, PROG ": dmce_disconnect: %s\n", dmce_strerror(rc));
        x->creator = NULL;
    }
    naive_destroy(x->naive, x->naive_len);
    x->naive = NULL;
    free(x->keys);
    free(x->klens);
    x->keys = NULL;
    x->klens = NULL;
}

int main(int argc, char **argv)
{
    store_ctx_t x = {
        .size = 64, .nkeys = 8192, .store_size = UINT64_C(48) << 20, .ops = {OP_GET}, .nops = 1};
    static const dmce_bench_opt_t own[] = {
        {"impl", "inproc|ring|socket|naive",
         "the store in-process, out-of-process over the rings or the socket, or the naive table "
         "(required)",
         set_impl},
        {"runtime-dir", "DIR", "the cluster (default $DMCE_RUNTIME_DIR)", set_runtime_dir},
        {"size", "BYTES", "value size (default 64)", set_size},
        {"keys", "N", "keys, all set before the first op (default 8192)", set_keys},
        {"store-size", "BYTES", "bytes of the store (default 48M; at most one block)",
         set_store_size},
        {"op", "get|set|mix[,...]", "operations, one result each (default get)", set_op},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "The session store (in-process, out-of-process over rings or socket) and a "
                   "naive rwlock table: get, set, 90/10 mix.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &x,
        .ops = 1000000,
        .warmup = 10000,
        .reps = 5,
        .duration_s = 1.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!x.impl_set) {
        fprintf(stderr, PROG ": --impl is required\n");
        return 2;
    }
    /* Every key's record (64-byte header, key, value) twice over: room for
     * the records a set retires while readers may still hold them. */
    uint64_t need = (uint64_t)x.nkeys * (64 + 32 + ((x.size + 15) & ~15u)) * 2;
    if (x.impl != IMPL_NAIVE && need > x.store_size) {
        fprintf(stderr,
                PROG ": %u keys of %u bytes need a store of %llu bytes or more (--store-size)\n",
                x.nkeys, x.size, (unsigned long long)need);
        return 2;
    }
    if (prepare(&x) < 0) {
        finish(&x);
        return 1;
    }
    int failed = 0;
    for (unsigned k = 0; k < x.nops; k++) {
        dmce_bench_case_t c;
        x.op = x.ops[k];
        if (dmce_bench_case_init(&c, "store", op_names[x.op], impl_names[x.impl]) < 0 ||
            dmce_perf_param_num(&c.res, "size", x.size) < 0 ||
            dmce_perf_param_num(&c.res, "clients", o.clients) < 0) {
            failed = 1;
            break;
        }
        c.res.bytes_per_op = x.size;
        int fast = x.impl == IMPL_INPROC || x.impl == IMPL_NAIVE;
        c.batch = fast ? FAST_BATCH : 1;
        snprintf(c.res.note, sizeof(c.res.note), "%s of random keys of %u%s%s",
                 x.op == OP_GET   ? "get"
                 : x.op == OP_SET ? "set"
                                  : "get, every tenth op a set,",
                 x.nkeys,
                 x.impl == IMPL_NAIVE    ? " in a naive table under one process-shared rwlock"
                 : x.impl == IMPL_INPROC ? " in a mapped store"
                 : x.impl == IMPL_RING   ? ", one MSMP message each, rings"
                                         : ", one MSMP message each, socket",
                 fast ? "; latency: mean of 32 ops" : "");
        c.ctx = &x;
        c.setup = store_setup;
        c.op = store_op;
        c.teardown = store_teardown;
        c.strerror = store_strerror;
        if (dmce_bench_run(&c, &o) < 0)
            failed = 1; /* the next op may still work: go on */
    }
    finish(&x);
    return failed;
}
