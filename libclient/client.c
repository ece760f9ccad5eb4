/*
 * client.c - libdmce, the Memory Client (seed 002 FIG. 7); see client.h.
 *
 * One struct dmce_conn per memory daemon: an MSMP connection
 * (runtime/msmp_conn.h: the Unix socket, or shared-memory rings when the
 * daemon offers them), a mutex that serializes requests on it, and what the
 * daemon said at setup (its block ID range, max payload, layout). Any I/O
 * or protocol error closes that connection (DMCE_ECLOSED from then on for
 * its session) and leaves the other daemons' connections alone.
 *
 * Routing: with a dispatcher (disp.c), the directory says which daemon
 * holds each block's primary; a failover moves it, and an operation that
 * fails because of one is sent again to the new primary. Without one, an
 * address's block ID falls in exactly one daemon's range. Large reads and
 * writes are split into frames of the daemon's max payload.
 *
 * The library never prints; every failure is a return code.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dmce/client.h>

#include "client_internal.h"
#include "msmp.h"
#include "util.h"

/* ---- one request ------------------------------------------------------------------- */

/*
 * One request on daemon k, k->lock held: connect if needed (a new daemon
 * process behind the socket drops what the client knew of the old one's
 * blocks), send, receive. A broken connection ends the session here (the
 * daemon keeps it for its grace period).
 */
static int rpc_locked(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1,
                      size_t l1, const void *p2, size_t l2, void *resp, size_t resp_cap,
                      size_t *resp_len, int *fd_out)
{
    if (fd_out)
        *fd_out = -1;
    pid_t before = atomic_load(&k->t.pid);
    int r = dmce_mconn_ensure(&k->t);
    if (r < 0)
        return r;
    if (r == 1 && before && atomic_load(&k->t.pid) != before)
        dmce__map_daemon_reset(c, (unsigned)(k - c->conn));
    r = dmce_mconn_rpc(&k->t, op, p1, l1, p2, l2, resp, resp_cap, resp_len, fd_out);
    if (k->t.fd < 0)
        k->set_up = 0;
    return r;
}

int dmce__rpc(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1, size_t l1,
              const void *p2, size_t l2, void *resp, size_t resp_cap, size_t *resp_len,
              int *fd_out)
{
    pthread_mutex_lock(&k->lock);
    int r = rpc_locked(c, k, op, p1, l1, p2, l2, resp, resp_cap, resp_len, fd_out);
    pthread_mutex_unlock(&k->lock);
    return r;
}

static int rpc(struct dmce_client *c, struct dmce_conn *k, uint16_t op, const void *p1, size_t l1,
               const void *p2, size_t l2, void *resp, size_t resp_cap, size_t *resp_len)
{
    return dmce__rpc(c, k, op, p1, l1, p2, l2, resp, resp_cap, resp_len, NULL);
}

int dmce__add_daemon(struct dmce_client *c, const char *path, uint32_t id)
{
    unsigned i = atomic_load(&c->n);
    if (i >= DMCE_MAX_DAEMONS)
        return -E2BIG;
    struct dmce_conn *k = &c->conn[i];
    int r = dmce_mconn_init(&k->t, path, c->io_timeout_ms,
                            (c->flags & DMCE_CONNECT_NO_RING) ? DMCE_MCONN_NO_RING : 0);
    if (r < 0)
        return r;
    pthread_mutex_init(&k->lock, NULL);
    atomic_store(&k->id, id);
    atomic_store(&k->alive, 1);
    atomic_store(&c->n, i + 1); /* published: readers see an initialized entry */
    pthread_mutex_lock(&k->lock);
    r = dmce_mconn_ensure(&k->t);
    pthread_mutex_unlock(&k->lock);
    return r < 0 ? r : (int)i;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_runtime_dir(struct dmce_client *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char *names[DMCE_MAX_DAEMONS];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < DMCE_MAX_DAEMONS) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "memd-", 5) == 0 && l > 10 && !strcmp(e->d_name + l - 5, ".sock"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_str);
    int r = n ? 0 : -ENOENT;
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (r == 0 && names[i])
            r = DMCE_MIN(dmce__add_daemon(c, path, 0), 0);
        free(names[i]);
    }
    return r;
}

int dmce_connect(const dmce_connect_opts_t *opts, dmce_client_t **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct dmce_client *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->io_timeout_ms = opts && opts->io_timeout_ms ? opts->io_timeout_ms : 10000;
    if (opts && (opts->flags & ~(unsigned)(DMCE_CONNECT_NO_MAP | DMCE_CONNECT_WRITE_BACK |
                                          DMCE_CONNECT_NO_RING | DMCE_CONNECT_NO_DISPATCHER |
                                          DMCE_CONNECT_TRANSPARENT))) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return -EINVAL;
    }
    c->layout = DMCE_LAYOUT_12_12_40;
    int r = dmce__map_init(c, opts);
    if (r < 0) {
        pthread_mutex_destroy(&c->lock);
        free(c);
        return r;
    }
    const char *dir = opts && opts->runtime_dir ? opts->runtime_dir : getenv("DMCE_RUNTIME_DIR");
    if (opts && opts->sockets) {
        if (opts->nsockets == 0 || opts->nsockets > DMCE_MAX_DAEMONS ||
            (c->flags & DMCE_CONNECT_TRANSPARENT))
            r = -EINVAL;
        for (size_t i = 0; r == 0 && i < opts->nsockets; i++)
            r = opts->sockets[i] ? DMCE_MIN(dmce__add_daemon(c, opts->sockets[i], 0), 0)
                                 : -EINVAL;
    } else if (!dir) {
        r = -EINVAL;
    } else if (c->flags & DMCE_CONNECT_TRANSPARENT) {
        /* FIG. 3: the dispatcher is the only peer and forwards every request */
        char path[512];
        if (snprintf(path, sizeof(path), "%s/dispatcher.sock", dir) >= (int)sizeof(path))
            r = -ENAMETOOLONG;
        else
            r = DMCE_MIN(dmce__add_daemon(c, path, 0), 0);
    } else {
        r = (c->flags & DMCE_CONNECT_NO_DISPATCHER) ? 1 : dmce__disp_connect(c, dir, opts);
        if (r == 1)
            r = add_runtime_dir(c, dir);
    }
    if (r < 0) {
        dmce_abandon(c);
        return r;
    }
    *out = c;
    return 0;
}

unsigned dmce_daemon_count(const dmce_client_t *c)
{
    return c ? atomic_load(&((struct dmce_client *)c)->n) : 0;
}

dmce_layout_t dmce_client_layout(const dmce_client_t *c)
{
    return c->layout;
}

/* ---- setup ----------------------------------------------------------------------- */

static int setup_one(struct dmce_client *c, struct dmce_conn *k, uint64_t amount, unsigned flags,
                     uint32_t layout, uint64_t *granted)
{
    dmce_msmp_setup_req_t rq = {
        .amount = amount, .flags = flags, .layout = layout, .session_id = c->session_id};
    memcpy(rq.token, c->token.bytes, sizeof(rq.token));
    uint8_t p[DMCE_MSMP_SETUP_REQ_SIZE], resp[DMCE_MSMP_SETUP_RESP_SIZE];
    dmce_msmp_setup_req_encode(&rq, p);
    size_t rlen = 0;
    pthread_mutex_lock(&k->lock);
    int r = rpc_locked(c, k, DMCE_MSMP_OP_SETUP, p, sizeof(p), NULL, 0, resp, sizeof(resp), &rlen,
                       NULL);
    if (r == 0)
        r = dmce_msmp_setup_resp_decode(resp, rlen, &k->info);
    if (r == 0) {
        k->set_up = 1;
        k->t.max_payload = k->info.max_payload;
        atomic_store(&k->id, k->info.daemon_id);
        *granted = k->info.granted;
    } else if (r == DMCE_ENOMEM) {
        dmce_mconn_close(&k->t); /* the daemon disconnects after a refused setup */
    }
    pthread_mutex_unlock(&k->lock);
    return r;
}

static void end_sessions(struct dmce_client *c)
{
    unsigned n = atomic_load(&c->n);
    for (unsigned i = 0; i < n; i++) {
        struct dmce_conn *k = &c->conn[i];
        if (!k->set_up)
            continue;
        rpc(c, k, DMCE_MSMP_OP_DISCONNECT, NULL, 0, NULL, 0, NULL, 0, NULL);
        pthread_mutex_lock(&k->lock);
        k->set_up = 0;
        dmce_mconn_close(&k->t); /* the daemon closes after disconnect */
        pthread_mutex_unlock(&k->lock);
    }
}

/* Free capacity a daemon says it has (an upper bound of what it may grant). */
static uint64_t daemon_room(struct dmce_client *c, unsigned i)
{
    dmce_stats_t st;
    if (!atomic_load(&c->conn[i].alive) || dmce_daemon_stats(c, i, &st) < 0)
        return 0;
    return st.bytes_total > st.bytes_reserved ? st.bytes_total - st.bytes_reserved : 0;
}

int dmce_setup(dmce_client_t *c, uint64_t amount, unsigned flags, const dmce_token_t *token,
               uint64_t *granted)
{
    if (!c || (flags & ~(unsigned)(DMCE_SETUP_PARTIAL | DMCE_SETUP_REATTACH)))
        return -EINVAL;
    if ((flags & DMCE_SETUP_REATTACH) && !token)
        return -EINVAL;
    pthread_mutex_lock(&c->lock);
    int r = 0;
    if (c->set_up) {
        r = DMCE_ESETUPDONE;
        goto out;
    }
    if (token)
        c->token = *token;
    else if ((r = dmce_random_bytes(c->token.bytes, sizeof(c->token.bytes))) < 0)
        goto out;
    /* Daemons the directory names later get a session when first used (dmce__ensure_session). */
    unsigned n = atomic_load(&c->n);
    c->session_id = 0; /* a reattach finds its session by token, then names its ID */

    uint64_t total = 0;
    uint32_t layout = UINT32_MAX; /* the first daemon's layout binds the rest */
    int attached[DMCE_MAX_DAEMONS] = {0};
    if (flags & DMCE_SETUP_REATTACH) {
        unsigned n_ok = 0;
        for (unsigned i = 0; i < n; i++) {
            uint64_t g = 0;
            if (!atomic_load(&c->conn[i].alive))
                continue;
            int e = setup_one(c, &c->conn[i], 0, DMCE_SETUP_REATTACH | DMCE_SETUP_PARTIAL, layout,
                              &g);
            if (e == 0) {
                attached[i] = 1;
                n_ok++;
                layout = c->conn[i].info.layout;
                if (c->conn[i].info.session_id & DMCE_SESSION_GLOBAL)
                    c->session_id = c->conn[i].info.session_id;
            } else if (e != DMCE_ETOKEN) {
                r = e;
                end_sessions(c);
                goto out;
            }
        }
        if (n_ok == 0) {
            r = DMCE_ETOKEN;
            goto out;
        }
    }
    if (c->disp && !c->session_id && (r = dmce__disp_session(c, &c->session_id)) < 0) {
        end_sessions(c);
        goto out;
    }

    /* Plan: an even share each, capped by what each daemon has room for. */
    uint64_t room[DMCE_MAX_DAEMONS], plan[DMCE_MAX_DAEMONS] = {0};
    uint64_t left = amount;
    unsigned open = 0;
    for (unsigned i = 0; i < n; i++) {
        room[i] = amount ? daemon_room(c, i) : 0;
        open++;
    }
    while (left > 0 && open > 0) {
        uint64_t share = (left + open - 1) / open;
        unsigned still = 0;
        for (unsigned i = 0; i < n && left > 0; i++) {
            uint64_t can = room[i] - plan[i];
            uint64_t give = DMCE_MIN(DMCE_MIN(share, can), left);
            plan[i] += give;
            left -= give;
            if (room[i] > plan[i])
                still++;
        }
        if (still == open && left > 0 && share == 0)
            break;
        open = still;
    }
    /* Anything the plan could not place goes to the first daemons; they may grant part. */
    for (unsigned i = 0; i < n && left > 0; i++) {
        if (!atomic_load(&c->conn[i].alive))
            continue;
        plan[i] += left;
        left = 0;
    }

    uint64_t carry = 0;
    for (unsigned i = 0; i < n; i++) {
        if (attached[i] || !atomic_load(&c->conn[i].alive))
            continue; /* reattached sessions keep what they had; no new reservation */
        uint64_t want = plan[i] + carry, g = 0;
        int e = setup_one(c, &c->conn[i], want, DMCE_SETUP_PARTIAL, layout, &g);
        if (e == DMCE_ENOMEM || (c->disp && (e == DMCE_ECLOSED || e == -ECONNREFUSED))) {
            /* nothing left there, or (with a dispatcher) a daemon on its way out:
             * move its share on */
            carry = want;
            continue;
        }
        if (e < 0) {
            r = e;
            end_sessions(c);
            goto out;
        }
        layout = c->conn[i].info.layout;
        total += g;
        carry = want > g ? want - g : 0;
    }
    if (layout == UINT32_MAX) {
        r = DMCE_ENOMEM; /* no daemon would take a session at all */
        goto out;
    }
    if (total < amount && !(flags & DMCE_SETUP_PARTIAL)) {
        end_sessions(c);
        r = DMCE_ENOMEM;
        goto out;
    }
    c->layout = (dmce_layout_t)layout;
    c->set_up = 1;
    if (granted)
        *granted = total;
out:
    pthread_mutex_unlock(&c->lock);
    return r;
}

int dmce_session_token(const dmce_client_t *c, dmce_token_t *out)
{
    if (!c || !out)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    *out = c->token;
    return 0;
}

int dmce_token_format(const dmce_token_t *t, char *buf, size_t len)
{
    if (!t || !buf || len < DMCE_TOKEN_STRLEN)
        return -EINVAL;
    for (int i = 0; i < 16; i++)
        snprintf(buf + 2 * i, 3, "%02x", t->bytes[i]);
    return 0;
}

int dmce_token_parse(const char *text, dmce_token_t *out)
{
    if (!text || !out || strlen(text) != 32)
        return -EINVAL;
    for (int i = 0; i < 16; i++) {
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = text[2 * i + j];
            unsigned d;
            if (ch >= '0' && ch <= '9')
                d = (unsigned)(ch - '0');
            else if (ch >= 'a' && ch <= 'f')
                d = (unsigned)(ch - 'a' + 10);
            else if (ch >= 'A' && ch <= 'F')
                d = (unsigned)(ch - 'A' + 10);
            else
                return -EINVAL;
            v = v << 4 | d;
        }
        out->bytes[i] = (uint8_t)v;
    }
    return 0;
}

/* ---- memory operations ------------------------------------------------------------ */

int dmce__daemon_of_block(const struct dmce_client *c, uint32_t block)
{
    if (c->owner && block < c->nblocks) { /* the directory first */
        uint16_t id = atomic_load_explicit(&c->owner[block], memory_order_acquire);
        int i = id ? dmce__conn_of_id(c, id) : -1;
        if (i >= 0)
            return i;
    }
    unsigned n = atomic_load(&((struct dmce_client *)c)->n);
    for (unsigned i = 0; i < n; i++) {
        const struct dmce_conn *k = &c->conn[i];
        if (k->info.block_last && block >= k->info.block_first && block <= k->info.block_last)
            return (int)i;
    }
    return DMCE_ENOBLOCK;
}

int dmce_daemon_of(const dmce_client_t *c, dmce_addr_t addr)
{
    if (!c)
        return -EINVAL;
    if (addr == DMCE_ADDR_NULL)
        return DMCE_ENULLADDR;
    dmce_addr_parts_t p;
    if (dmce_addr_decode(c->layout, addr, &p) < 0)
        return -EINVAL;
    if (p.server != DMCE_SERVER_LOCAL)
        return DMCE_ENOSERVER;
    return dmce__daemon_of_block(c, p.block);
}

/* No reservation of its own: the session's room is what setup reserved elsewhere. */
int dmce__ensure_session(struct dmce_client *c, struct dmce_conn *k)
{
    if (!c->disp || !c->set_up || k->set_up)
        return 0;
    uint64_t g;
    int r = setup_one(c, k, 0, DMCE_SETUP_PARTIAL, (uint32_t)c->layout, &g);
    return r == DMCE_ESETUPDONE ? 0 : r;
}

int dmce_malloc_on(dmce_client_t *c, unsigned daemon, uint64_t size, dmce_addr_t *out)
{
    if (!c || !out || daemon >= atomic_load(&c->n))
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    int r = dmce__ensure_session(c, &c->conn[daemon]);
    if (r < 0)
        return r;
    uint8_t p[8], resp[8];
    dmce_msmp_u64_encode(size, p);
    size_t rlen = 0;
    r = rpc(c, &c->conn[daemon], DMCE_MSMP_OP_MALLOC, p, 8, NULL, 0, resp, 8, &rlen);
    if (r < 0)
        return r;
    return dmce_msmp_u64_decode(resp, rlen, out);
}

/* Tally of the refusals of one dmce_malloc, for its final error. */
struct malloc_tally {
    int quota, nomem, err;
};

/* 1: done (r is the answer); 0: try another daemon. */
static int malloc_judge(struct malloc_tally *t, int r, int *ret)
{
    if (r == 0 || r == -EMSGSIZE || r == -EINVAL || r == DMCE_ENOSETUP) {
        *ret = r;
        return 1;
    }
    if (r == DMCE_EQUOTA)
        t->quota++;
    else if (r == DMCE_ENOMEM)
        t->nomem++;
    else
        t->err = r;
    return 0;
}

int dmce_malloc(dmce_client_t *c, uint64_t size, dmce_addr_t *out)
{
    unsigned n = c ? atomic_load(&c->n) : 0;
    if (!c || !out || n == 0)
        return -EINVAL;
    if (size == 0)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    struct malloc_tally t = {0, 0, DMCE_ENOMEM};
    uint64_t tried = 0; /* bit i: conn[i] refused */
    int ret;
    /* With a dispatcher its policy picks; a daemon that refuses is excluded next time. */
    for (uint32_t exclude = 0, k = 0; c->disp && k < DMCE_MAX_DAEMONS; k++) {
        int i = dmce__disp_pick(c, size, exclude);
        if (i < 0 || (tried >> i & 1))
            break; /* none, or only those that refused: the sweep below settles it */
        int r = dmce_malloc_on(c, (unsigned)i, size, out);
        if (malloc_judge(&t, r, &ret))
            return ret;
        tried |= 1ull << i;
        exclude = atomic_load(&c->conn[i].id);
        if (r != DMCE_EQUOTA && r != DMCE_ENOMEM)
            dmce__disp_refresh(c); /* a daemon on its way out: let the directory say so */
    }
    /* Without one (or when its picks ran out): round robin over the daemons. */
    n = atomic_load(&c->n);
    unsigned start = atomic_fetch_add(&c->rr, 1) % n;
    for (unsigned s = 0; s < n; s++) {
        unsigned i = (start + s) % n;
        if ((tried >> i & 1) || !atomic_load(&c->conn[i].alive) ||
            (!c->conn[i].set_up && !c->disp))
            continue;
        int r = dmce_malloc_on(c, i, size, out);
        if (malloc_judge(&t, r, &ret))
            return ret;
    }
    if (c->disp && atomic_load(&c->n) > 0) {
        unsigned alive = 0;
        for (unsigned i = 0; i < atomic_load(&c->n); i++)
            alive += atomic_load(&c->conn[i].alive);
        if (!alive)
            return DMCE_ENODAEMON;
    }
    if (t.quota && !t.nomem)
        return DMCE_EQUOTA;
    return t.nomem ? DMCE_ENOMEM : t.err;
}

int dmce__route(dmce_client_t *c, dmce_addr_t addr, struct dmce_conn **k)
{
    if (!c)
        return -EINVAL;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    int i = dmce_daemon_of(c, addr);
    if (i < 0)
        return i;
    *k = &c->conn[i];
    return dmce__ensure_session(c, *k);
}

static int free_once(dmce_client_t *c, dmce_addr_t addr)
{
    struct dmce_conn *k;
    int r = dmce__route(c, addr, &k);
    if (r < 0)
        return r;
    uint8_t p[8];
    dmce_msmp_u64_encode(addr, p);
    return rpc(c, k, DMCE_MSMP_OP_FREE, p, 8, NULL, 0, NULL, 0, NULL);
}

int dmce_free(dmce_client_t *c, dmce_addr_t addr)
{
    struct dmce_retry st = {0};
    int r, again = 0;
    while ((r = free_once(c, addr)) < 0 && c && dmce__disp_retry(c, addr, &r, &st))
        again = 1;
    /*
     * Sent again after a failover: if the first free reached both copies
     * before the daemon died, the new primary no longer has the allocation.
     */
    return again && r == DMCE_EBADADDR ? 0 : r;
}

static int read_once(dmce_client_t *c, dmce_addr_t addr, void *buf, size_t len)
{
    int r = dmce__local_read(c, addr, buf, len);
    if (r <= 0)
        return r;
    struct dmce_conn *k;
    r = dmce__route(c, addr, &k);
    if (r < 0)
        return r;
    if (!buf && len)
        return -EINVAL;
    size_t done = 0;
    do {
        size_t chunk = DMCE_MIN(len - done, (size_t)k->t.max_payload);
        dmce_addr_t a;
        r = dmce_addr_add(c->layout, addr, done, &a);
        if (r < 0)
            return DMCE_ECROSSEND;
        dmce_msmp_rw_req_t rq = {.addr = a, .len = (uint32_t)chunk};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        size_t rlen = 0;
        r = rpc(c, k, DMCE_MSMP_OP_READ, p, sizeof(p), NULL, 0, (uint8_t *)buf + done, chunk,
                &rlen);
        if (r < 0)
            return r;
        if (rlen != chunk)
            return -EPROTO;
        done += chunk;
    } while (done < len);
    atomic_fetch_add_explicit(&c->st_msmp_reads, 1, memory_order_relaxed);
    return 0;
}

int dmce_read(dmce_client_t *c, dmce_addr_t addr, void *buf, size_t len)
{
    if (!c)
        return -EINVAL;
    struct dmce_retry st = {0};
    int r;
    while ((r = read_once(c, addr, buf, len)) < 0 && dmce__disp_retry(c, addr, &r, &st))
        ;
    return r;
}

static int write_once(dmce_client_t *c, dmce_addr_t addr, const void *buf, size_t len)
{
    int r = dmce__writes_via_daemon(c) ? 1 : dmce__local_write(c, addr, buf, len);
    if (r <= 0)
        return r;
    struct dmce_conn *k;
    r = dmce__route(c, addr, &k);
    if (r < 0)
        return r;
    if (!buf && len)
        return -EINVAL;
    size_t done = 0;
    do {
        size_t chunk = DMCE_MIN(len - done, (size_t)k->t.max_payload - DMCE_MSMP_WRITE_HDR);
        dmce_addr_t a;
        r = dmce_addr_add(c->layout, addr, done, &a);
        if (r < 0)
            return DMCE_ECROSSEND;
        dmce_msmp_rw_req_t rq = {.addr = a, .len = (uint32_t)chunk};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE], resp[DMCE_MSMP_WRITE_RESP_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        size_t rlen = 0;
        r = rpc(c, k, DMCE_MSMP_OP_WRITE, p, sizeof(p), (const uint8_t *)buf + done, chunk, resp,
                sizeof(resp), &rlen);
        if (r < 0)
            return r;
        if (rlen != DMCE_MSMP_WRITE_RESP_SIZE || dmce_get_le32(resp) != chunk)
            return -EPROTO;
        done += chunk;
    } while (done < len);
    atomic_fetch_add_explicit(&c->st_msmp_writes, 1, memory_order_relaxed);
    return 0;
}

int dmce_write(dmce_client_t *c, dmce_addr_t addr, const void *buf, size_t len)
{
    if (!c)
        return -EINVAL;
    struct dmce_retry st = {0};
    int r;
    /* A write is idempotent: sending it again after a failover is safe. */
    while ((r = write_once(c, addr, buf, len)) < 0 && dmce__disp_retry(c, addr, &r, &st))
        ;
    return r;
}

/* Block of addr, or 0 when it does not decode (the daemon says why). */
static uint64_t block_key(const dmce_client_t *c, dmce_addr_t addr)
{
    dmce_addr_parts_t p;
    if (dmce_addr_decode(c->layout, addr, &p) < 0)
        return 0;
    return ((uint64_t)p.server << 32) | p.block;
}

/*
 * One persist request for v[0..n) (n <= DMCE_MSMP_PERSIST_MAX, one block).
 * Not sent again after a failover: the stores it was to copy were in the
 * dead primary's memory, so the new primary cannot persist them.
 */
static int persist_run(dmce_client_t *c, const dmce_range_t *v, size_t n)
{
    uint8_t p[DMCE_MSMP_PERSIST_MAX * DMCE_MSMP_RANGE_SIZE];
    for (size_t i = 0; i < n; i++)
        dmce_msmp_range_encode(&(dmce_msmp_range_t){.addr = v[i].addr, .len = v[i].len},
                               p + i * DMCE_MSMP_RANGE_SIZE);
    /*
     * A block being moved (DMCE_EMOVING), or moved already (a live daemon
     * that no longer holds it: DMCE_ENOBLOCK; a primary is never replaced
     * while its daemon lives), keeps its object: the bytes this persist
     * covers are in it, so send it again to the new owner. A dead primary
     * is another matter: its copy is gone, the error stands.
     */
    struct dmce_retry st = {0};
    int moving = 0, r;
    do {
        struct dmce_conn *k;
        r = dmce__route(c, v[0].addr, &k);
        if (r < 0)
            return r;
        r = rpc(c, k, DMCE_MSMP_OP_PERSIST, p, n * DMCE_MSMP_RANGE_SIZE, NULL, 0, NULL, 0, NULL);
        moving |= r == DMCE_EMOVING || r == DMCE_ENOBLOCK;
    } while (r < 0 && moving && dmce__disp_retry(c, v[0].addr, &r, &st));
    if (r < 0 && c->disp && (r == DMCE_ECLOSED || r == -ECONNREFUSED))
        dmce__disp_refresh(c); /* the block's next access goes to its new primary */
    return r;
}

int dmce_persistv(dmce_client_t *c, const dmce_range_t *v, size_t n)
{
    if (!c || !v || n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (v[i].len == 0)
            return -EINVAL;
    /* One request per run of ranges in one block: one round trip for a store's set. */
    for (size_t i = 0; i < n;) {
        uint64_t key = block_key(c, v[i].addr);
        size_t m = 1;
        while (i + m < n && m < DMCE_MSMP_PERSIST_MAX && key && block_key(c, v[i + m].addr) == key)
            m++;
        int r = persist_run(c, v + i, m);
        if (r < 0)
            return r;
        i += m;
    }
    return 0;
}

int dmce_persist(dmce_client_t *c, dmce_addr_t addr, size_t len)
{
    return dmce_persistv(c, &(dmce_range_t){.addr = addr, .len = len}, 1);
}

/* ---- stats ---------------------------------------------------------------------------- */

int dmce_daemon_stats(dmce_client_t *c, unsigned daemon, dmce_stats_t *out)
{
    if (!c || !out || daemon >= atomic_load(&c->n))
        return -EINVAL;
    uint8_t resp[DMCE_MSMP_STATS_SIZE + 512];
    size_t rlen = 0;
    int r = rpc(c, &c->conn[daemon], DMCE_MSMP_OP_STATS, NULL, 0, NULL, 0, resp, sizeof(resp),
                &rlen);
    if (r < 0)
        return r;
    uint64_t v[DMCE_STAT_COUNT_];
    r = dmce_msmp_stats_decode(resp, rlen, v);
    if (r < 0)
        return r;
    dmce_msmp_stats_to_struct(v, out);
    return 0;
}

int dmce_stats(dmce_client_t *c, dmce_stats_t *out)
{
    unsigned n = c ? atomic_load(&c->n) : 0;
    if (!c || !out || n == 0)
        return -EINVAL;
    dmce_stats_t sum;
    int have = 0;
    for (unsigned i = 0; i < n; i++) {
        dmce_stats_t s;
        if (!atomic_load(&c->conn[i].alive))
            continue; /* dead (the directory says so): nothing to count */
        int r = dmce_daemon_stats(c, i, &s);
        if (r < 0)
            return r;
        if (!have++) {
            sum = s;
            continue;
        }
        uint64_t *dst = &sum.blocks, *src = &s.blocks;
        size_t nfields = (size_t)(&sum.uptime_ms - &sum.blocks); /* all u64 counters */
        for (size_t f = 0; f < nfields; f++)
            dst[f] += src[f];
        sum.uptime_ms = DMCE_MAX(sum.uptime_ms, s.uptime_ms);
    }
    if (!have)
        return DMCE_ENODAEMON;
    *out = sum;
    return 0;
}

int dmce_cluster_stats(dmce_client_t *c, dmce_cluster_stats_t *out)
{
    if (!c || !out)
        return -EINVAL;
    if (!c->disp)
        return -ENOTSUP;
    uint64_t v[DMCE_DSTAT_COUNT_];
    int r = dmce__disp_stats(c, v, DMCE_DSTAT_COUNT_);
    if (r < 0)
        return r;
    *out = (dmce_cluster_stats_t){
        .uptime_ms = v[DMCE_DSTAT_UPTIME_MS],
        .epoch = v[DMCE_DSTAT_EPOCH],
        .mirroring = (v[DMCE_DSTAT_FLAGS] & DMCE_DISP_MIRRORING) != 0,
        .warn_one_copy = v[DMCE_DSTAT_WARN_ONE_COPY] != 0,
        .daemons_alive = v[DMCE_DSTAT_DAEMONS_ALIVE],
        .daemons_dead = v[DMCE_DSTAT_DAEMONS_DEAD],
        .registrations = v[DMCE_DSTAT_REGISTRATIONS],
        .deaths = v[DMCE_DSTAT_DEATHS],
        .blocks = v[DMCE_DSTAT_BLOCKS],
        .blocks_mirrored = v[DMCE_DSTAT_BLOCKS_MIRRORED],
        .blocks_single = v[DMCE_DSTAT_BLOCKS_SINGLE],
        .blocks_remirroring = v[DMCE_DSTAT_BLOCKS_REMIRRORING],
        .blocks_lost = v[DMCE_DSTAT_BLOCKS_LOST],
        .promotions = v[DMCE_DSTAT_PROMOTIONS],
        .remirrors_started = v[DMCE_DSTAT_REMIRRORS_STARTED],
        .remirrors_done = v[DMCE_DSTAT_REMIRRORS_DONE],
        .remirror_bytes = v[DMCE_DSTAT_REMIRROR_BYTES],
        .last_failover_ms = v[DMCE_DSTAT_LAST_FAILOVER_MS],
        .picks = v[DMCE_DSTAT_PICKS],
        .sessions = v[DMCE_DSTAT_SESSIONS],
        .forwarded = v[DMCE_DSTAT_FORWARDED],
        .moves = v[DMCE_DSTAT_MOVES],
        .moves_failed = v[DMCE_DSTAT_MOVES_FAILED],
        .last_move_us = v[DMCE_DSTAT_LAST_MOVE_US],
        .remirrors_adopted = v[DMCE_DSTAT_REMIRRORS_ADOPTED],
        .remirror_bytes_adopted = v[DMCE_DSTAT_REMIRROR_BYTES_ADOPTED],
    };
    return 0;
}

/* ---- teardown ------------------------------------------------------------------------- */

static void client_free(struct dmce_client *c)
{
    dmce__map_fini(c);
    dmce__disp_fini(c);
    for (unsigned i = 0; i < atomic_load(&c->n); i++) {
        dmce_mconn_close(&c->conn[i].t);
        pthread_mutex_destroy(&c->conn[i].lock);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int dmce_disconnect(dmce_client_t *c)
{
    if (!c)
        return 0;
    int first = 0;
    for (unsigned i = 0; i < atomic_load(&c->n); i++) {
        struct dmce_conn *k = &c->conn[i];
        if (!k->set_up || !atomic_load(&k->alive))
            continue; /* a dead daemon's session went with it */
        int r = rpc(c, k, DMCE_MSMP_OP_DISCONNECT, NULL, 0, NULL, 0, NULL, 0, NULL);
        if (r == DMCE_ECLOSED || r == -ECONNREFUSED)
            r = 0; /* it died before we noticed: its session went with it */
        if (r < 0 && !first)
            first = r;
    }
    client_free(c);
    return first;
}

void dmce_abandon(dmce_client_t *c)
{
    if (c)
        client_free(c);
}
