/*
 * memd_store.c - the session store's MSMP operations in the memory daemon:
 * the out-of-process mode of include/dmce/store.h (wire format in
 * msmp_store.h and docs/msmp.md).
 *
 * A store is one allocation of one of this daemon's blocks, formatted as
 * a runtime/store_table.c table. The daemon serves an out-of-process
 * client by running the call on a table handle of its own, exactly as an
 * in-process client would on its mapping: both see the same memory, so
 * each sees the other's writes at once.
 *
 * Handles. A table handle is per thread (it owns one reader slot), so each
 * worker keeps its own small cache of handles, keyed by the store's
 * address, in w->store (owner: this file; freed by memd_store_worker_fini).
 * A worker never shares its handles, and a connection always runs on one
 * worker, so no lock is needed here.
 *
 * Trust nothing about the address. Every request resolves the address
 * again (memd_resolve, then the block's own allocation map): it must be
 * the first byte of a live allocation, and a cached handle is used only
 * if that allocation is still mapped where it was and still has the
 * size, the magic and the random table_id the handle was opened on. Each
 * operation runs inside rcu_read_lock(), so the block it works on stays
 * mapped until it is done. Anything else (the store destroyed,
 * its allocation freed and reused, reformatted) drops the handle without
 * writing a byte to memory that may belong to someone else now
 * (dmce_stab_abandon). The table checks every offset it reads from the
 * region against the geometry it copied at open, so a hostile client that
 * scribbles over a store it maps can make requests on that store fail,
 * never make the daemon touch memory outside that allocation.
 *
 * Waiting. The table's writers spin briefly on a stripe lock another
 * process holds; a dead holder's lock is stolen at once. A live holder
 * that is stopped (SIGSTOP, a debugger) could keep a worker waiting, so
 * the daemon's handles give up after LOCK_TIMEOUT_MS (-EBUSY) and wait at
 * most GRACE_WAIT_MS for readers when a stripe is full, instead of the
 * table's defaults (10 s, 200 ms): one stuck client never stalls a worker
 * for long.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urcu.h>

#include <dmce/error.h>

#include "alloc.h"
#include "log.h"
#include "memd_internal.h"
#include "msmp.h"
#include "util.h"
#include "msmp_store.h"
#include "store_table.h"

#define STORE_CACHE 32        /* table handles a worker keeps */
#define LOCK_TIMEOUT_MS 1000u /* a live stripe lock holder: -EBUSY after this */
#define GRACE_WAIT_MS 50u     /* a full stripe waits this long for readers */

struct store_ent {
    uint64_t addr; /* the store's DMCE address (first byte of its allocation) */
    uint32_t block;
    uint64_t cell;
    uint8_t *base;     /* where the table was mapped when the handle was opened */
    uint64_t size;     /* of the allocation = of the table */
    uint64_t table_id; /* of the table the handle was opened on */
    uint64_t used;     /* worker's op counter at last use (LRU) */
    dmce_stab_t *t;    /* owner: this entry */
    struct persist_ctx *pc; /* owner: this entry */
};

struct store_state {
    struct store_ent e[STORE_CACHE];
    unsigned n;
    uint64_t clock;
};

/* A store's memory: the allocation at addr, which must start there. */
struct region {
    uint8_t *base;
    uint64_t size;
    uint32_t block;
    uint64_t cell;
    struct memd_block *b;
};

/* The table's persist hook: the block and where the table starts in it. */
struct persist_ctx {
    struct memd_block *b; /* a primary: blocks live until the daemon stops */
    uint64_t cell;
};

/* Copy the changed ranges of the table to the block's mirror, if it has one. */
static int persist_range(void *ctx, const dmce_stab_range_t *r, uint32_t n)
{
    struct persist_ctx *pc = ctx;
    for (uint32_t i = 0; i < n; i++)
        memd_block_persist(pc->b, pc->cell + r[i].off, r[i].len);
    return 0;
}

/* Inside rcu_read_lock(): the block stays mapped until the caller leaves it. */
static int region_of(struct dmce_memd *m, uint64_t addr, struct region *out)
{
    struct memd_block *b;
    uint64_t cell;
    dmce_alloc_info_t ai;
    int r = memd_resolve_primary(m, addr, &b, &cell);
    if (r == 0)
        r = dmce_alloc_lookup(b->base, cell, &ai);
    if (r < 0)
        return r;
    if (ai.offset != cell)
        return DMCE_ENOTSTORE; /* inside an allocation, not its first byte: no store starts here */
    out->base = (uint8_t *)b->base + cell;
    out->size = ai.size;
    out->block = b->id;
    out->cell = cell;
    out->b = b;
    return 0;
}

/* The cached handle still names the table that lives at rg, in the same mapping. */
static int ent_valid(const struct store_ent *e, const struct region *rg)
{
    const dmce_stab_hdr_t *h = (const dmce_stab_hdr_t *)rg->base;
    return e->base == rg->base && e->size == rg->size && rg->size >= sizeof *h &&
           __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == DMCE_STAB_MAGIC &&
           h->table_id == e->table_id;
}

/* Drop entry i: close the handle if its table is still there, else forget it. */
static void ent_drop(struct dmce_memd *m, struct store_state *ss, unsigned i)
{
    struct store_ent *e = &ss->e[i];
    struct region rg;
    rcu_read_lock();
    if (region_of(m, e->addr, &rg) == 0 && rg.block == e->block && rg.cell == e->cell &&
        ent_valid(e, &rg))
        dmce_stab_close(e->t);
    else
        dmce_stab_abandon(e->t); /* that memory is not this table any more (or not mapped) */
    rcu_read_unlock();
    free(e->pc);
    ss->e[i] = ss->e[--ss->n];
}

static struct store_state *state_of(struct memd_worker *w)
{
    if (!w->store)
        w->store = calloc(1, sizeof(struct store_state)); /* owner: this file */
    return w->store;
}

/*
 * The worker's handle on the store at addr, opened if need be. Call inside
 * rcu_read_lock(), and use the handle before leaving it: the block's
 * memory is only guaranteed mapped until then. Errors:
 * the address's (DMCE_ENULLADDR, DMCE_ENOBLOCK, DMCE_EBADADDR, ...), the
 * table's attach errors as store statuses, -EUSERS, -ENOMEM.
 */
static int store_get_handle(struct dmce_memd *m, struct memd_conn *c, uint64_t addr,
                            dmce_stab_t **out, struct region *rgo)
{
    struct store_state *ss = state_of(c->w);
    if (!ss)
        return -ENOMEM;
    struct region rg;
    int r = region_of(m, addr, &rg);
    if (r < 0)
        return r;
    if (rgo)
        *rgo = rg;
    ss->clock++;
    for (unsigned i = 0; i < ss->n; i++) {
        struct store_ent *e = &ss->e[i];
        if (e->block != rg.block || e->cell != rg.cell)
            continue;
        if (ent_valid(e, &rg)) {
            e->used = ss->clock;
            *out = e->t;
            return 0;
        }
        LOG_DEBUG("store %#llx: the table changed under the cached handle; reopening",
                  (unsigned long long)addr);
        dmce_stab_abandon(e->t);
        free(e->pc);
        ss->e[i] = ss->e[--ss->n];
        break;
    }
    if (rg.size < sizeof(dmce_stab_hdr_t))
        return DMCE_ENOTSTORE; /* too small to be one */
    r = dmce_stab_attach(rg.base, rg.size);
    if (r < 0)
        return dmce_msmp_store_status(DMCE_MSMP_OP_STORE_OPEN, r);
    if (ss->n == STORE_CACHE) { /* make room: the least recently used goes */
        unsigned lru = 0;
        for (unsigned i = 1; i < ss->n; i++)
            if (ss->e[i].used < ss->e[lru].used)
                lru = i;
        ent_drop(m, ss, lru);
    }
    struct persist_ctx *pc = malloc(sizeof(*pc));
    if (!pc)
        return -ENOMEM;
    *pc = (struct persist_ctx){rg.b, rg.cell};
    /* Every change also reaches the block's mirror before the answer (memd_block_persist). */
    dmce_stab_opts_t o = {.lock_timeout_ms = LOCK_TIMEOUT_MS,
                          .grace_wait_ms = GRACE_WAIT_MS,
                          .persist = persist_range,
                          .persist_ctx = pc};
    dmce_stab_t *t;
    r = dmce_stab_open(rg.base, rg.size, &o, &t);
    if (r < 0) {
        free(pc);
        return dmce_msmp_store_status(DMCE_MSMP_OP_STORE_OPEN, r);
    }
    ss->e[ss->n++] = (struct store_ent){.addr = addr,
                                        .block = rg.block,
                                        .cell = rg.cell,
                                        .base = rg.base,
                                        .size = rg.size,
                                        .table_id = dmce_stab_table_id(rg.base),
                                        .used = ss->clock,
                                        .t = t,
                                        .pc = pc};
    *out = t;
    return 0;
}

static void fill_info(const struct region *rg, dmce_msmp_store_info_t *in)
{
    dmce_stab_params_t p;
    dmce_stab_params_get(rg->base, &p);
    memset(in, 0, sizeof *in);
    in->size = rg->size;
    in->table_id = dmce_stab_table_id(rg->base);
    in->max_key = p.max_key;
    in->max_value = p.max_value;
    in->max_handles = p.nslots;
    in->stripes = p.nstripes;
    in->flags = p.flags;
    in->default_ttl_ms = p.default_ttl_ms;
}

static void reply_info(struct memd_conn *c, const struct region *rg)
{
    dmce_msmp_store_info_t in;
    fill_info(rg, &in);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_STORE_INFO_SIZE);
    if (out)
        dmce_msmp_store_info_encode(&in, out);
}

static void reply_err(struct dmce_memd *m, struct memd_conn *c, int r)
{
    memd_reply_error(m, c, &c->h, dmce_msmp_store_status(c->h.op, r));
}

/* ---- operations -------------------------------------------------------------------- */

/*
 * store_format: make a fresh allocation a store. Refuses an allocation that
 * already holds one (-EEXIST): reformatting a store in use would pull it
 * from under its users. max_value is bounded so that any value fits one
 * frame both ways (set request, get response).
 */
static void op_format(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_store_format_req_t rq;
    int r = dmce_msmp_store_format_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    struct region rg;
    r = region_of(m, rq.addr, &rg);
    if (r < 0) /* format wants the first byte of an allocation, as free does */
        return memd_reply_error(m, c, &c->h, r == DMCE_ENOTSTORE ? DMCE_EBADADDR : r);
    if (((uintptr_t)rg.base & 15) || rg.size < DMCE_STAB_MIN_SIZE || rg.size > DMCE_STAB_MAX_SIZE)
        return memd_reply_error(m, c, &c->h, -EINVAL);
    if (__atomic_load_n(&((const dmce_stab_hdr_t *)rg.base)->magic, __ATOMIC_ACQUIRE) ==
        DMCE_STAB_MAGIC)
        return memd_reply_error(m, c, &c->h, -EEXIST);
    uint32_t max_key = rq.max_key ? rq.max_key : DMCE_STAB_KEY_DEFAULT;
    uint64_t frame = m->cfg.max_payload, over = DMCE_MSMP_STORE_SET_REQ_HDR + 24ull + max_key;
    uint64_t vmax = frame > over ? frame - over : 0;
    if (rq.max_key > DMCE_STAB_KEY_LIMIT || rq.max_value > vmax)
        return memd_reply_error(m, c, &c->h, -EINVAL);
    dmce_stab_params_t sp = {.max_key = rq.max_key,
                             .max_value = rq.max_value,
                             .nslots = rq.max_handles,
                             .nstripes = rq.stripes,
                             .nbuckets = rq.buckets,
                             .flags = rq.flags,
                             .default_ttl_ms = rq.default_ttl_ms};
    r = dmce_stab_format(rg.base, rg.size, &sp);
    if (r == 0 && !rq.max_value) {
        dmce_stab_params_t got;
        dmce_stab_params_get(rg.base, &got);
        if (got.max_value > vmax) { /* the default does not fit this daemon's frames */
            sp.max_value = (uint32_t)vmax;
            r = dmce_stab_format(rg.base, rg.size, &sp);
        }
    }
    if (r < 0) {
        memset(rg.base, 0, sizeof(uint64_t)); /* no half-made store stays behind */
        memd_block_persist(rg.b, rg.cell, sizeof(uint64_t));
        return memd_reply_error(m, c, &c->h, r);
    }
    memd_block_persist(rg.b, rg.cell, rg.size); /* the mirror gets the whole new table */
    LOG_DEBUG("client pid %d: store formatted at %#llx (%llu bytes)", (int)c->pid,
              (unsigned long long)rq.addr, (unsigned long long)rg.size);
    reply_info(c, &rg);
}

static void op_open(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint64_t addr;
    int r = dmce_msmp_store_addr_decode(p, len, &addr);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_stab_t *t;
    struct region rg;
    r = store_get_handle(m, c, addr, &t, &rg);
    if (r < 0)
        return reply_err(m, c, r);
    reply_info(c, &rg);
}

/* get: the value goes straight from the record into the response (a lease
 * keeps it from being reused meanwhile). */
static void op_get(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_store_get_req_t rq;
    int r = dmce_msmp_store_get_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_stab_t *t;
    r = store_get_handle(m, c, rq.addr, &t, NULL);
    if (r < 0)
        return reply_err(m, c, r);
    dmce_stab_view_t v;
    r = dmce_stab_view(t, rq.key, rq.klen, &v);
    if (r < 0)
        return reply_err(m, c, r);
    int with = v.len <= rq.cap;
    dmce_msmp_store_get_resp_t rs = {.version = v.version,
                                     .expire_ms = v.expire_ms,
                                     .vlen = v.len,
                                     .flags = with ? DMCE_MSMP_STORE_GET_VALUE : 0};
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_STORE_GET_RESP_HDR + (with ? v.len : 0));
    if (out) {
        dmce_msmp_store_get_resp_encode(&rs, out);
        if (with && v.len)
            memcpy(out + DMCE_MSMP_STORE_GET_RESP_HDR, v.value, v.len);
    }
    dmce_stab_view_release(t, &v);
}

static void op_set(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_store_set_req_t rq;
    int r = dmce_msmp_store_set_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_stab_t *t;
    r = store_get_handle(m, c, rq.addr, &t, NULL);
    if (r < 0)
        return reply_err(m, c, r);
    uint64_t ver = 0;
    r = dmce_stab_set(t, rq.key, rq.klen, rq.vlen ? rq.value : NULL, rq.vlen, rq.ttl_ms,
                      rq.cas_version, rq.flags, &ver);
    if (r < 0)
        return reply_err(m, c, r);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, 8);
    if (out)
        dmce_put_le64(out, ver);
}

/* del and touch. */
static void op_key(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_store_key_req_t rq;
    int r = dmce_msmp_store_key_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_stab_t *t;
    r = store_get_handle(m, c, rq.addr, &t, NULL);
    if (r < 0)
        return reply_err(m, c, r);
    if (c->h.op == DMCE_MSMP_OP_STORE_DEL)
        r = dmce_stab_del(t, rq.key, rq.klen, rq.arg);
    else
        r = dmce_stab_touch(t, rq.key, rq.klen, rq.arg);
    if (r < 0)
        return reply_err(m, c, r);
    memd_reply_begin(c, &c->h, 0, 0);
}

/* stats, sweep, verify: the address alone. */
static void op_whole(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint64_t addr;
    int r = dmce_msmp_store_addr_decode(p, len, &addr);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_stab_t *t;
    r = store_get_handle(m, c, addr, &t, NULL);
    if (r < 0)
        return reply_err(m, c, r);
    if (c->h.op == DMCE_MSMP_OP_STORE_STATS) {
        dmce_stab_stats_t s;
        r = dmce_stab_stats(t, &s);
        if (r < 0)
            return reply_err(m, c, r);
        uint64_t v[DMCE_STORE_STAT_COUNT_] = {
            [DMCE_STORE_STAT_ENTRIES] = s.entries,
            [DMCE_STORE_STAT_BYTES] = s.bytes,
            [DMCE_STORE_STAT_MEM_TOTAL] = s.mem_total,
            [DMCE_STORE_STAT_MEM_LIVE] = s.mem_live,
            [DMCE_STORE_STAT_MEM_FREE] = s.mem_free,
            [DMCE_STORE_STAT_MEM_LIMBO] = s.mem_limbo,
            [DMCE_STORE_STAT_HITS] = s.hits,
            [DMCE_STORE_STAT_MISSES] = s.misses,
            [DMCE_STORE_STAT_SETS] = s.sets,
            [DMCE_STORE_STAT_DELS] = s.dels,
            [DMCE_STORE_STAT_TOUCHES] = s.touches,
            [DMCE_STORE_STAT_EVICTIONS] = s.evictions,
            [DMCE_STORE_STAT_EXPIRATIONS] = s.expirations,
            [DMCE_STORE_STAT_CAS_FAILURES] = s.cas_failures,
            [DMCE_STORE_STAT_CORRUPT] = s.corrupt,
            [DMCE_STORE_STAT_RECOVERIES] = s.recoveries,
            [DMCE_STORE_STAT_REAPED] = s.reaped,
            [DMCE_STORE_STAT_STRIPES] = s.stripes,
            [DMCE_STORE_STAT_HANDLES] = s.handles,
            [DMCE_STORE_STAT_LOCKS_HELD] = s.locks_held,
            [DMCE_STORE_STAT_REBUILDS_PENDING] = s.rebuilds_pending,
        };
        uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_STORE_STATS_SIZE);
        if (out)
            dmce_msmp_store_stats_encode(v, out);
        return;
    }
    if (c->h.op == DMCE_MSMP_OP_STORE_SWEEP) {
        r = dmce_stab_sweep(t);
        if (r < 0)
            return reply_err(m, c, r);
        uint8_t *out = memd_reply_begin(c, &c->h, 0, 8);
        if (out)
            dmce_put_le64(out, (uint64_t)r);
        return;
    }
    r = dmce_stab_verify(t);
    if (r < 0) {
        LOG_WARN("store %#llx: verify failed: %s", (unsigned long long)addr, dmce_strerror(r));
        return reply_err(m, c, r);
    }
    memd_reply_begin(c, &c->h, 0, 0);
}

int memd_store_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    void (*op)(struct dmce_memd *, struct memd_conn *, const uint8_t *, uint32_t);
    switch (c->h.op) {
    case DMCE_MSMP_OP_STORE_FORMAT: op = op_format; break;
    case DMCE_MSMP_OP_STORE_OPEN: op = op_open; break;
    case DMCE_MSMP_OP_STORE_GET: op = op_get; break;
    case DMCE_MSMP_OP_STORE_SET: op = op_set; break;
    case DMCE_MSMP_OP_STORE_DEL:
    case DMCE_MSMP_OP_STORE_TOUCH: op = op_key; break;
    case DMCE_MSMP_OP_STORE_STATS:
    case DMCE_MSMP_OP_STORE_SWEEP:
    case DMCE_MSMP_OP_STORE_VERIFY: op = op_whole; break;
    default: return 0; /* not ours (25..31 are reserved: -EOPNOTSUPP) */
    }
    /* The whole operation reads the block table's view of the block: its
     * memory stays mapped until we leave (a block the daemon drops is
     * unmapped only after a grace period). */
    DMCE_TSAN_ACQUIRE(&m->reuse_order); /* memory reused after a free: memd_internal.h */
    rcu_read_lock();
    op(m, c, p, len);
    rcu_read_unlock();
    DMCE_TSAN_RELEASE(&m->reuse_order);
    return 1;
}

void memd_store_worker_fini(struct memd_worker *w)
{
    struct store_state *ss = w->store;
    if (!ss)
        return;
    while (ss->n > 0)
        ent_drop(w->m, ss, ss->n - 1);
    free(ss);
    w->store = NULL;
}
