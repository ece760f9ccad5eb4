/*
 * store.c - libdmce's session store (include/dmce/store.h).
 *
 * A store is one DMCE allocation formatted as a runtime/store_table.c
 * table. This file is the thin layer that picks, per handle, how calls
 * reach that table:
 *
 *   in-process      dmce_map() of the whole allocation (one contiguous
 *                   window, pinned for the handle's life) and a table
 *                   handle on it: every call is a function call on shared
 *                   memory; views are leases on the record's own bytes.
 *   out-of-process  one MSMP store_* request per call to the daemon that
 *                   holds the block (runtime/msmp_store.h); the daemon
 *                   runs it on its own table handle (runtime/memd_store.c).
 *
 * Both report the same codes: the table's results go through
 * dmce_msmp_store_status here and in the daemon.
 *
 * Creation is the same in both modes: dmce_malloc, then store_format to
 * the daemon holding the allocation (it formats memory it owns; a client
 * that does not map could not). Destruction: wipe the magic with
 * dmce_write (handles cached by address then fail), then dmce_free.
 *
 * Ownership: a dmce_store_t owns its table handle, its mapping (released
 * with dmce_unmap at close) and its receive buffer; the client owns the
 * connection. The library never prints.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/map.h>
#include <dmce/store.h>

#include "client_internal.h"
#include "msmp.h"
#include "msmp_store.h"
#include "store_table.h"

struct dmce_store {
    dmce_client_t *c;
    dmce_addr_t addr;
    int in_process;
    dmce_store_info_t info;
    /* in-process */
    void *base;       /* dmce_map pointer to the table; owner: this handle (dmce_unmap) */
    dmce_stab_t *tab; /* owner: this handle */
    /* out-of-process */
    struct dmce_conn *conn; /* the daemon holding the store; owner: the client */
    uint8_t *rx;            /* response buffer: get header + max_value; owner: this handle */
    size_t rx_cap;
};

_Static_assert(DMCE_STORE_NX == DMCE_STAB_SET_NX && DMCE_STORE_XX == DMCE_STAB_SET_XX &&
                   DMCE_STORE_NX == DMCE_MSMP_STORE_SET_NX &&
                   DMCE_STORE_XX == DMCE_MSMP_STORE_SET_XX,
               "set flags are the same bits everywhere");
_Static_assert(DMCE_STORE_EVICT == DMCE_STAB_EVICT && DMCE_STORE_EVICT == DMCE_MSMP_STORE_EVICT,
               "table flags are the same bits everywhere");
_Static_assert(DMCE_STORE_TTL_DEFAULT == DMCE_STAB_TTL_DEFAULT &&
                   DMCE_STORE_TTL_NEVER == DMCE_STAB_TTL_NEVER,
               "TTL encodings");
_Static_assert(DMCE_STORE_SIZE_MIN == DMCE_STAB_MIN_SIZE &&
                   DMCE_STORE_SIZE_MAX == DMCE_STAB_MAX_SIZE &&
                   DMCE_STORE_KEY_LIMIT == DMCE_STAB_KEY_LIMIT &&
                   DMCE_STORE_VALUE_LIMIT == DMCE_STAB_VALUE_LIMIT &&
                   DMCE_STORE_HANDLES_LIMIT == DMCE_STAB_SLOTS_LIMIT,
               "limits are the table's");

static inline int st(unsigned op, int rc)
{
    return rc < 0 ? dmce_msmp_store_status(op, rc) : rc;
}

/* The connection of the daemon holding addr. */
/* ---- create and destroy ------------------------------------------------------------ */

int dmce_store_create(dmce_client_t *c, uint64_t size, const dmce_store_params_t *p,
                      dmce_addr_t *out)
{
    dmce_store_params_t q;
    if (p)
        q = *p;
    else
        memset(&q, 0, sizeof q);
    if (!c || !out || size < DMCE_STORE_SIZE_MIN || size > DMCE_STORE_SIZE_MAX || q.reserved ||
        (q.flags & ~(uint32_t)DMCE_STORE_EVICT) || q.max_key > DMCE_STORE_KEY_LIMIT ||
        q.max_value > DMCE_STORE_VALUE_LIMIT || q.max_handles > DMCE_STORE_HANDLES_LIMIT ||
        (q.stripes & (q.stripes - 1)) || q.stripes > DMCE_STAB_STRIPES_LIMIT)
        return -EINVAL;
    dmce_addr_t a;
    int r = dmce_malloc(c, size, &a);
    if (r < 0)
        return r;
    struct dmce_conn *k;
    r = dmce__route(c, a, &k);
    if (r == 0) {
        dmce_msmp_store_format_req_t rq = {.addr = a,
                                           .max_key = q.max_key,
                                           .max_value = q.max_value,
                                           .max_handles = q.max_handles,
                                           .stripes = q.stripes,
                                           .flags = q.flags,
                                           .default_ttl_ms = q.default_ttl_ms};
        uint8_t req[DMCE_MSMP_STORE_FORMAT_REQ_SIZE], resp[DMCE_MSMP_STORE_INFO_SIZE];
        dmce_msmp_store_format_req_encode(&rq, req);
        size_t rlen = 0;
        r = dmce__rpc(c, k, DMCE_MSMP_OP_STORE_FORMAT, req, sizeof req, NULL, 0, resp, sizeof resp,
                      &rlen, NULL);
        dmce_msmp_store_info_t info;
        if (r == 0)
            r = dmce_msmp_store_info_decode(resp, rlen, &info);
    }
    if (r < 0) {
        dmce_free(c, a);
        return r;
    }
    *out = a;
    return 0;
}

int dmce_store_destroy(dmce_client_t *c, dmce_addr_t addr)
{
    if (!c)
        return -EINVAL;
    uint64_t magic = 0;
    int r = dmce_read(c, addr, &magic, sizeof magic);
    if (r == DMCE_ECROSSEND)
        return DMCE_ENOTSTORE; /* an allocation too small to be one */
    if (r < 0)
        return r;
    if (magic != DMCE_STAB_MAGIC) /* little-endian hosts only (store_table.c checks) */
        return DMCE_ENOTSTORE;
    magic = 0;
    r = dmce_write(c, addr, &magic, sizeof magic);
    if (r < 0)
        return r;
    return dmce_free(c, addr);
}

/* ---- open and close ---------------------------------------------------------------- */

static void info_from_params(dmce_store_info_t *out, uint64_t size, const dmce_stab_params_t *p)
{
    memset(out, 0, sizeof *out);
    out->size = size;
    out->default_ttl_ms = p->default_ttl_ms;
    out->max_key = p->max_key;
    out->max_value = p->max_value;
    out->max_handles = p->nslots;
    out->stripes = p->nstripes;
    out->flags = p->flags;
}

/*
 * The table's persist hook (mirrored clusters): copy the ranges one
 * mutation changed to the mirror, in one round trip (the store is one
 * allocation, so one block).
 */
static int persist_range(void *ctx, const dmce_stab_range_t *rg, uint32_t n)
{
    struct dmce_store *s = ctx;
    dmce_range_t v[DMCE_STAB_PERSIST_MAX];
    if (n > DMCE_STAB_PERSIST_MAX)
        return -EINVAL; /* the table never reports more */
    for (uint32_t i = 0; i < n; i++) {
        if (dmce_addr_add(dmce_client_layout(s->c), s->addr, rg[i].off, &v[i].addr) < 0)
            return DMCE_ECORRUPT;
        v[i].len = (size_t)rg[i].len;
    }
    return dmce_persistv(s->c, v, n);
}

/*
 * One request about this store, to the daemon holding it now: after a
 * failover, the block's new primary (the request is sent again there; a
 * set or del whose answer was lost may then see its own effect: EEXIST
 * for NX, DMCE_ECASFAIL for a CAS).
 */
static int store_rpc(dmce_store_t *s, uint16_t op, const void *p1, size_t l1, const void *p2,
                     size_t l2, void *resp, size_t cap, size_t *rlen)
{
    struct dmce_retry st = {0};
    int r;
    do {
        r = dmce__route(s->c, s->addr, &s->conn);
        if (r == 0)
            r = dmce__rpc(s->c, s->conn, op, p1, l1, p2, l2, resp, cap, rlen, NULL);
    } while (r < 0 && dmce__disp_retry(s->c, s->addr, &r, &st));
    return r;
}

static int open_in_process(struct dmce_store *s)
{
    dmce_stab_hdr_t h;
    int r = dmce_read(s->c, s->addr, &h, sizeof h);
    if (r == DMCE_ECROSSEND)
        return DMCE_ENOTSTORE;
    if (r < 0)
        return r;
    if (h.magic != DMCE_STAB_MAGIC)
        return DMCE_ENOTSTORE;
    if (h.size < DMCE_STAB_MIN_SIZE || h.size > DMCE_STAB_MAX_SIZE || h.size > SIZE_MAX)
        return st(DMCE_MSMP_OP_STORE_OPEN, DMCE_ECORRUPT);
    r = dmce_map(s->c, s->addr, (size_t)h.size, 0, &s->base);
    if (r == DMCE_ECROSSEND)
        return DMCE_ECORRUPT; /* the header claims more than the allocation holds */
    if (r < 0)
        return r;
    /*
     * In a cluster that mirrors, every change reaches the mirror before the
     * operation returns: the ranges the table reports go to the primary
     * as one MSMP persist (one round trip per mutation).
     */
    dmce_stab_opts_t o = {0};
    if (dmce__writes_via_daemon(s->c)) {
        o.persist = persist_range;
        o.persist_ctx = s;
    }
    r = dmce_stab_open(s->base, h.size, &o, &s->tab);
    if (r < 0) {
        dmce_unmap(s->c, s->base);
        s->base = NULL;
        return st(DMCE_MSMP_OP_STORE_OPEN, r);
    }
    dmce_stab_params_t p;
    dmce_stab_params_get(s->base, &p);
    info_from_params(&s->info, h.size, &p);
    s->info.in_process = 1;
    s->in_process = 1;
    return 0;
}

static int open_out_of_process(struct dmce_store *s)
{
    int r;
    uint8_t req[8], resp[DMCE_MSMP_STORE_INFO_SIZE];
    dmce_put_le64(req, s->addr);
    size_t rlen = 0;
    r = store_rpc(s, DMCE_MSMP_OP_STORE_OPEN, req, sizeof req, NULL, 0, resp,
                  sizeof resp, &rlen);
    dmce_msmp_store_info_t in;
    if (r == 0)
        r = dmce_msmp_store_info_decode(resp, rlen, &in);
    if (r < 0)
        return r;
    memset(&s->info, 0, sizeof s->info);
    s->info.size = in.size;
    s->info.default_ttl_ms = in.default_ttl_ms;
    s->info.max_key = in.max_key;
    s->info.max_value = in.max_value;
    s->info.max_handles = in.max_handles;
    s->info.stripes = in.stripes;
    s->info.flags = in.flags;
    if (in.max_key > DMCE_STORE_KEY_LIMIT || in.max_value > DMCE_STORE_VALUE_LIMIT)
        return -EPROTO;
    s->rx_cap = DMCE_MSMP_STORE_GET_RESP_HDR + (size_t)in.max_value;
    s->rx = malloc(s->rx_cap);
    if (!s->rx)
        return -ENOMEM;
    s->in_process = 0;
    return 0;
}

int dmce_store_open(dmce_client_t *c, dmce_addr_t addr, unsigned flags, dmce_store_t **out)
{
    if (!c || !out || (flags & ~(unsigned)(DMCE_STORE_OUT_OF_PROCESS | DMCE_STORE_IN_PROCESS)))
        return -EINVAL;
    *out = NULL;
    if ((flags & DMCE_STORE_OUT_OF_PROCESS) && (flags & DMCE_STORE_IN_PROCESS))
        return -ENOTSUP;
    int maps = !(c->flags & DMCE_CONNECT_NO_MAP);
    if ((flags & DMCE_STORE_IN_PROCESS) && !maps)
        return -ENOTSUP;
    struct dmce_store *s = calloc(1, sizeof *s); /* owned by the caller until close */
    if (!s)
        return -ENOMEM;
    s->c = c;
    s->addr = addr;
    int r;
    if (maps && !(flags & DMCE_STORE_OUT_OF_PROCESS)) {
        r = open_in_process(s);
        if (r == -ENOMEM && !(flags & DMCE_STORE_IN_PROCESS))
            r = open_out_of_process(s); /* no address space for it: go through the daemon */
    } else {
        r = open_out_of_process(s);
    }
    if (r < 0) {
        free(s->rx);
        free(s);
        return r;
    }
    *out = s;
    return 0;
}

void dmce_store_close(dmce_store_t *s)
{
    if (!s)
        return;
    if (s->tab)
        dmce_stab_close(s->tab);
    if (s->base)
        dmce_unmap(s->c, s->base);
    free(s->rx);
    free(s);
}

int dmce_store_info(const dmce_store_t *s, dmce_store_info_t *out)
{
    if (!s || !out)
        return -EINVAL;
    *out = s->info;
    return 0;
}

/* ---- out-of-process requests -------------------------------------------------------- */

/* Arguments the daemon would refuse anyway, refused without a message. */
static int key_args(const dmce_store_t *s, const void *key, uint32_t klen)
{
    if (!key || klen == 0)
        return -EINVAL;
    return klen > s->info.max_key ? -E2BIG : 0;
}

/* store_get into s->rx; cap = how many value bytes we can take. */
static int oop_get(dmce_store_t *s, const void *key, uint32_t klen, uint32_t cap,
                   dmce_msmp_store_get_resp_t *g)
{
    int r = key_args(s, key, klen);
    if (r < 0)
        return r;
    if (cap > s->info.max_value)
        cap = s->info.max_value;
    dmce_msmp_store_get_req_t rq = {.addr = s->addr, .klen = klen, .cap = cap};
    uint8_t hdr[DMCE_MSMP_STORE_GET_REQ_HDR];
    dmce_msmp_store_get_req_encode(&rq, hdr);
    size_t rlen = 0;
    r = store_rpc(s, DMCE_MSMP_OP_STORE_GET, hdr, sizeof hdr, key, klen, s->rx,
                  DMCE_MSMP_STORE_GET_RESP_HDR + (size_t)cap, &rlen);
    if (r < 0)
        return r;
    r = dmce_msmp_store_get_resp_decode(s->rx, rlen, g);
    if (r < 0)
        return -EPROTO;
    if ((g->flags & DMCE_MSMP_STORE_GET_VALUE) ? g->vlen > cap : g->vlen <= cap)
        return -EPROTO; /* the daemon sends the value exactly when it fits */
    return 0;
}

/* A request whose response is empty or one u64 (*u64 may be NULL). */
static int oop_simple(dmce_store_t *s, uint16_t op, const void *p1, size_t l1, const void *p2,
                      size_t l2, uint64_t *u64)
{
    uint8_t resp[8];
    size_t rlen = 0;
    int r = store_rpc(s, op, p1, l1, p2, l2, resp, sizeof resp, &rlen);
    if (r < 0)
        return r;
    if (rlen != (u64 ? 8u : 0u))
        return -EPROTO;
    if (u64)
        *u64 = dmce_get_le64(resp);
    return 0;
}

/* ---- reads ------------------------------------------------------------------------- */

int dmce_store_get(dmce_store_t *s, const void *key, uint32_t klen, void *buf, uint32_t cap,
                   uint32_t *vlen, uint64_t *version)
{
    if (!s || !vlen || (cap && !buf))
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_GET,
                  dmce_stab_get(s->tab, key, klen, buf, cap, vlen, version));
    dmce_msmp_store_get_resp_t g;
    int r = oop_get(s, key, klen, cap, &g);
    if (r < 0)
        return r;
    *vlen = g.vlen;
    if (version)
        *version = g.version;
    if (!(g.flags & DMCE_MSMP_STORE_GET_VALUE))
        return -ENOBUFS;
    if (g.vlen)
        memcpy(buf, g.value, g.vlen);
    return 0;
}

int dmce_store_view(dmce_store_t *s, const void *key, uint32_t klen, dmce_store_view_t *v)
{
    if (!s || !v)
        return -EINVAL;
    memset(v, 0, sizeof *v);
    if (s->in_process) {
        dmce_stab_view_t tv;
        int r = dmce_stab_view(s->tab, key, klen, &tv);
        if (r < 0)
            return st(DMCE_MSMP_OP_STORE_GET, r);
        v->value = tv.value;
        v->len = tv.len;
        v->priv_rec_ = tv.rec;
        v->version = tv.version;
        v->expire_ms = tv.expire_ms;
        return 0;
    }
    dmce_msmp_store_get_resp_t g;
    int r = oop_get(s, key, klen, s->info.max_value, &g);
    if (r < 0)
        return r;
    if (!(g.flags & DMCE_MSMP_STORE_GET_VALUE))
        return -EPROTO; /* we took any length */
    /* The copy holds the value, then the key (for view_check). Owner: the view. */
    uint8_t *copy = malloc((size_t)g.vlen + klen);
    if (!copy)
        return -ENOMEM;
    if (g.vlen)
        memcpy(copy, g.value, g.vlen);
    memcpy(copy + g.vlen, key, klen);
    v->value = copy;
    v->len = g.vlen;
    v->priv_rec_ = klen; /* >= 1: the view is held */
    v->version = g.version;
    v->expire_ms = g.expire_ms;
    v->priv_copy_ = copy;
    return 0;
}

int dmce_store_view_check(dmce_store_t *s, const dmce_store_view_t *v)
{
    if (!s || !v || !v->priv_rec_)
        return -EINVAL;
    if (s->in_process) {
        dmce_stab_view_t tv = {.value = v->value,
                               .len = v->len,
                               .rec = v->priv_rec_,
                               .version = v->version,
                               .expire_ms = v->expire_ms};
        int r = dmce_stab_view_check(s->tab, &tv);
        return r == -ESTALE ? DMCE_ESTALE : r;
    }
    /* Ask for the metadata only: is the key still there, with this version? */
    dmce_msmp_store_get_resp_t g;
    const uint8_t *key = (const uint8_t *)v->priv_copy_ + v->len;
    int r = oop_get(s, key, v->priv_rec_, 0, &g);
    if (r == -ENOENT)
        return DMCE_ESTALE;
    if (r < 0)
        return r;
    return g.version == v->version ? 0 : DMCE_ESTALE;
}

void dmce_store_view_release(dmce_store_t *s, dmce_store_view_t *v)
{
    if (!s || !v || !v->priv_rec_)
        return;
    if (s->in_process) {
        dmce_stab_view_t tv = {.value = v->value,
                               .len = v->len,
                               .rec = v->priv_rec_,
                               .version = v->version,
                               .expire_ms = v->expire_ms};
        dmce_stab_view_release(s->tab, &tv);
    } else {
        free(v->priv_copy_);
    }
    v->priv_rec_ = 0;
    v->priv_copy_ = NULL;
    v->value = NULL;
}

/* ---- writes ------------------------------------------------------------------------- */

int dmce_store_set(dmce_store_t *s, const void *key, uint32_t klen, const void *val, uint32_t vlen,
                   uint64_t ttl_ms, uint64_t cas_version, unsigned flags, uint64_t *version_out)
{
    if (!s)
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_SET, dmce_stab_set(s->tab, key, klen, val, vlen, ttl_ms,
                                                        cas_version, flags, version_out));
    int r = key_args(s, key, klen);
    if (r < 0)
        return r;
    if (vlen > s->info.max_value)
        return -EMSGSIZE;
    if ((vlen && !val) || (flags & ~(unsigned)(DMCE_STORE_NX | DMCE_STORE_XX)) ||
        flags == (DMCE_STORE_NX | DMCE_STORE_XX) || ((flags & DMCE_STORE_NX) && cas_version))
        return -EINVAL;
    /* key and value go out in one gather: the header and key in one piece, the value in another */
    dmce_msmp_store_set_req_t rq = {.addr = s->addr,
                                    .ttl_ms = ttl_ms,
                                    .cas_version = cas_version,
                                    .flags = flags,
                                    .klen = klen,
                                    .vlen = vlen};
    uint8_t stackbuf[DMCE_MSMP_STORE_SET_REQ_HDR + 256];
    uint8_t *hk = stackbuf;
    if (klen > sizeof stackbuf - DMCE_MSMP_STORE_SET_REQ_HDR) {
        hk = malloc(DMCE_MSMP_STORE_SET_REQ_HDR + (size_t)klen);
        if (!hk)
            return -ENOMEM;
    }
    dmce_msmp_store_set_req_encode(&rq, hk);
    memcpy(hk + DMCE_MSMP_STORE_SET_REQ_HDR, key, klen);
    uint64_t ver = 0;
    r = oop_simple(s, DMCE_MSMP_OP_STORE_SET, hk, DMCE_MSMP_STORE_SET_REQ_HDR + (size_t)klen, val,
                   vlen, &ver);
    if (hk != stackbuf)
        free(hk);
    if (r == 0 && version_out)
        *version_out = ver;
    return r;
}

/* del and touch: header + key. */
static int oop_key_op(dmce_store_t *s, uint16_t op, const void *key, uint32_t klen, uint64_t arg)
{
    int r = key_args(s, key, klen);
    if (r < 0)
        return r;
    dmce_msmp_store_key_req_t rq = {.addr = s->addr, .arg = arg, .klen = klen};
    uint8_t hdr[DMCE_MSMP_STORE_KEY_REQ_HDR];
    dmce_msmp_store_key_req_encode(&rq, hdr);
    return oop_simple(s, op, hdr, sizeof hdr, key, klen, NULL);
}

int dmce_store_del(dmce_store_t *s, const void *key, uint32_t klen, uint64_t cas_version)
{
    if (!s)
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_DEL, dmce_stab_del(s->tab, key, klen, cas_version));
    return oop_key_op(s, DMCE_MSMP_OP_STORE_DEL, key, klen, cas_version);
}

int dmce_store_touch(dmce_store_t *s, const void *key, uint32_t klen, uint64_t ttl_ms)
{
    if (!s)
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_TOUCH, dmce_stab_touch(s->tab, key, klen, ttl_ms));
    return oop_key_op(s, DMCE_MSMP_OP_STORE_TOUCH, key, klen, ttl_ms);
}

/* ---- whole-store calls --------------------------------------------------------------- */

int dmce_store_stats(dmce_store_t *s, dmce_store_stats_t *out)
{
    if (!s || !out)
        return -EINVAL;
    uint64_t v[DMCE_STORE_STAT_COUNT_];
    if (s->in_process) {
        dmce_stab_stats_t t;
        int r = dmce_stab_stats(s->tab, &t);
        if (r < 0)
            return st(DMCE_MSMP_OP_STORE_STATS, r);
        v[DMCE_STORE_STAT_ENTRIES] = t.entries;
        v[DMCE_STORE_STAT_BYTES] = t.bytes;
        v[DMCE_STORE_STAT_MEM_TOTAL] = t.mem_total;
        v[DMCE_STORE_STAT_MEM_LIVE] = t.mem_live;
        v[DMCE_STORE_STAT_MEM_FREE] = t.mem_free;
        v[DMCE_STORE_STAT_MEM_LIMBO] = t.mem_limbo;
        v[DMCE_STORE_STAT_HITS] = t.hits;
        v[DMCE_STORE_STAT_MISSES] = t.misses;
        v[DMCE_STORE_STAT_SETS] = t.sets;
        v[DMCE_STORE_STAT_DELS] = t.dels;
        v[DMCE_STORE_STAT_TOUCHES] = t.touches;
        v[DMCE_STORE_STAT_EVICTIONS] = t.evictions;
        v[DMCE_STORE_STAT_EXPIRATIONS] = t.expirations;
        v[DMCE_STORE_STAT_CAS_FAILURES] = t.cas_failures;
        v[DMCE_STORE_STAT_CORRUPT] = t.corrupt;
        v[DMCE_STORE_STAT_RECOVERIES] = t.recoveries;
        v[DMCE_STORE_STAT_REAPED] = t.reaped;
        v[DMCE_STORE_STAT_STRIPES] = t.stripes;
        v[DMCE_STORE_STAT_HANDLES] = t.handles;
        v[DMCE_STORE_STAT_LOCKS_HELD] = t.locks_held;
        v[DMCE_STORE_STAT_REBUILDS_PENDING] = t.rebuilds_pending;
    } else {
        uint8_t req[8], resp[DMCE_MSMP_STORE_STATS_SIZE + 512];
        dmce_put_le64(req, s->addr);
        size_t rlen = 0;
        int r = store_rpc(s, DMCE_MSMP_OP_STORE_STATS, req, sizeof req, NULL, 0, resp,
                          sizeof resp, &rlen);
        if (r < 0)
            return r;
        if (dmce_msmp_store_stats_decode(resp, rlen, v) < 0)
            return -EPROTO;
    }
    memset(out, 0, sizeof *out);
    out->entries = v[DMCE_STORE_STAT_ENTRIES];
    out->bytes = v[DMCE_STORE_STAT_BYTES];
    out->mem_total = v[DMCE_STORE_STAT_MEM_TOTAL];
    out->mem_live = v[DMCE_STORE_STAT_MEM_LIVE];
    out->mem_free = v[DMCE_STORE_STAT_MEM_FREE];
    out->mem_limbo = v[DMCE_STORE_STAT_MEM_LIMBO];
    out->hits = v[DMCE_STORE_STAT_HITS];
    out->misses = v[DMCE_STORE_STAT_MISSES];
    out->sets = v[DMCE_STORE_STAT_SETS];
    out->dels = v[DMCE_STORE_STAT_DELS];
    out->touches = v[DMCE_STORE_STAT_TOUCHES];
    out->evictions = v[DMCE_STORE_STAT_EVICTIONS];
    out->expirations = v[DMCE_STORE_STAT_EXPIRATIONS];
    out->cas_failures = v[DMCE_STORE_STAT_CAS_FAILURES];
    out->corrupt = v[DMCE_STORE_STAT_CORRUPT];
    out->recoveries = v[DMCE_STORE_STAT_RECOVERIES];
    out->reaped = v[DMCE_STORE_STAT_REAPED];
    out->stripes = (uint32_t)v[DMCE_STORE_STAT_STRIPES];
    out->handles = (uint32_t)v[DMCE_STORE_STAT_HANDLES];
    out->locks_held = (uint32_t)v[DMCE_STORE_STAT_LOCKS_HELD];
    out->rebuilds_pending = (uint32_t)v[DMCE_STORE_STAT_REBUILDS_PENDING];
    return 0;
}

int dmce_store_sweep(dmce_store_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_SWEEP, dmce_stab_sweep(s->tab));
    uint8_t req[8];
    dmce_put_le64(req, s->addr);
    uint64_t n = 0;
    int r = oop_simple(s, DMCE_MSMP_OP_STORE_SWEEP, req, sizeof req, NULL, 0, &n);
    if (r < 0)
        return r;
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int dmce_store_verify(dmce_store_t *s)
{
    if (!s)
        return -EINVAL;
    if (s->in_process)
        return st(DMCE_MSMP_OP_STORE_VERIFY, dmce_stab_verify(s->tab));
    uint8_t req[8];
    dmce_put_le64(req, s->addr);
    return oop_simple(s, DMCE_MSMP_OP_STORE_VERIFY, req, sizeof req, NULL, 0, NULL);
}
