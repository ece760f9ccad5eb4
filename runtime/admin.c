/*
 * admin.c - the administration client; see admin.h.
 *
 * Every call is one request on a kept connection (the dispatcher's, or a
 * daemon's found by ID) whose response lands in one buffer of the largest
 * frame MSMP allows (16 MiB of address space, touched only as far as a
 * response reaches): a list never outgrows it, and decoding happens
 * before the next request reuses it. Lists are handed to the caller as
 * malloc'ed arrays of the codec's own structs.
 *
 * The wait_* calls poll: 5 ms after the first look, doubling to 100 ms,
 * so a move that takes a millisecond is seen at once and a long backup
 * costs ten requests a second.
 */
#include "admin.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

#include "backup.h"
#include "msmp_conn.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 5000u
#define POLL_FIRST_MS 5u
#define POLL_MAX_MS 100u

/* A daemon's connection, by ID. */
struct dconn {
    uint32_t id;
    dmce_mconn_t k; /* owner: the admin */
};

struct dmce_admin {
    char dir[PATH_MAX];
    char disp_path[PATH_MAX];
    unsigned timeout_ms;
    dmce_mconn_t disp; /* owner: this struct */
    int has_disp;
    int disp_err;
    uint8_t *buf;       /* responses; owner: this struct */
    struct dconn *conn; /* owner: this struct */
    unsigned nconn, capconn;
};

/* ---- opening, connections -------------------------------------------------------------------- */

int dmce_admin_default_dir(char *out, size_t cap)
{
    const char *env = getenv("DMCE_RUNTIME_DIR");
    int n = env && *env ? snprintf(out, cap, "%s", env)
                        : snprintf(out, cap, "/run/dmce-%u", (unsigned)geteuid());
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int sock_exists(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    return S_ISSOCK(st.st_mode) ? 0 : -ENOTSOCK;
}

int dmce_admin_open(const char *dir, unsigned timeout_ms, dmce_admin_t **out)
{
    *out = NULL;
    dmce_admin_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->disp.fd = -1;
    a->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    int r = 0;
    if (dir) {
        if (snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir))
            r = -ENAMETOOLONG;
    } else {
        r = dmce_admin_default_dir(a->dir, sizeof(a->dir));
    }
    struct stat st;
    if (r == 0 && stat(a->dir, &st) < 0)
        r = -errno;
    else if (r == 0 && !S_ISDIR(st.st_mode))
        r = -ENOTDIR;
    else if (r == 0 && access(a->dir, R_OK | X_OK) < 0)
        r = -errno;
    if (r == 0 && snprintf(a->disp_path, sizeof(a->disp_path), "%s/dispatcher.sock", a->dir) >=
                      (int)sizeof(a->disp_path))
        r = -ENAMETOOLONG;
    if (r == 0 && !(a->buf = malloc(DMCE_MSMP_PAYLOAD_LIMIT)))
        r = -ENOMEM;
    if (r < 0) {
        dmce_admin_close(a);
        return r;
    }
    /* Is a dispatcher there? Its stats answer says so. */
    int e = sock_exists(a->disp_path);
    if (e == 0)
        e = dmce_mconn_init(&a->disp, a->disp_path, a->timeout_ms, DMCE_MCONN_NO_RING);
    if (e == 0) {
        size_t n = 0;
        e = dmce_mconn_rpc(&a->disp, DMCE_MSMP_OP_DISP_STATS, NULL, 0, NULL, 0, a->buf,
                           DMCE_MSMP_PAYLOAD_LIMIT, &n, NULL);
        if (e > 0)
            e = 0;
    }
    a->has_disp = e == 0;
    a->disp_err = e;
    if (!a->has_disp)
        dmce_mconn_close(&a->disp);
    *out = a;
    return 0;
}

void dmce_admin_close(dmce_admin_t *a)
{
    if (!a)
        return;
    dmce_mconn_close(&a->disp);
    for (unsigned i = 0; i < a->nconn; i++)
        dmce_mconn_close(&a->conn[i].k);
    free(a->conn);
    free(a->buf);
    free(a);
}

const char *dmce_admin_dir(const dmce_admin_t *a)
{
    return a->dir;
}

const char *dmce_admin_disp_path(const dmce_admin_t *a)
{
    return a->disp_path;
}

int dmce_admin_has_dispatcher(const dmce_admin_t *a)
{
    return a->has_disp;
}

int dmce_admin_disp_error(const dmce_admin_t *a)
{
    return a->disp_err;
}

pid_t dmce_admin_disp_pid(const dmce_admin_t *a)
{
    return a->has_disp ? (pid_t)atomic_load(&a->disp.pid) : 0;
}

/* The connection of daemon id, made (not connected) with path when new; a new path replaces the
 * old. */
static int conn_set(dmce_admin_t *a, uint32_t id, const char *path, dmce_mconn_t **out)
{
    for (unsigned i = 0; i < a->nconn; i++) {
        if (a->conn[i].id != id)
            continue;
        if (strcmp(a->conn[i].k.path, path) != 0) {
            dmce_mconn_close(&a->conn[i].k);
            int r = dmce_mconn_init(&a->conn[i].k, path, a->timeout_ms, DMCE_MCONN_NO_RING);
            if (r < 0)
                return r;
        }
        *out = &a->conn[i].k;
        return 0;
    }
    if (a->nconn == a->capconn) {
        unsigned cap = a->capconn ? 2 * a->capconn : 8;
        struct dconn *c = realloc(a->conn, cap * sizeof(*c));
        if (!c)
            return -ENOMEM;
        a->conn = c;
        a->capconn = cap;
    }
    struct dconn *c = &a->conn[a->nconn];
    int r = dmce_mconn_init(&c->k, path, a->timeout_ms, DMCE_MCONN_NO_RING);
    if (r < 0)
        return r;
    c->id = id;
    a->nconn++;
    *out = &c->k;
    return 0;
}

static dmce_mconn_t *conn_find(dmce_admin_t *a, uint32_t id)
{
    for (unsigned i = 0; i < a->nconn; i++)
        if (a->conn[i].id == id)
            return &a->conn[i].k;
    return NULL;
}

static int rpc_on(dmce_admin_t *a, dmce_mconn_t *k, uint16_t op, const void *req, size_t len,
                  size_t *n)
{
    *n = 0;
    int r = dmce_mconn_rpc(k, op, req, len, NULL, 0, a->buf, DMCE_MSMP_PAYLOAD_LIMIT, n, NULL);
    return r > 0 ? 0 : r;
}

static int disp_rpc(dmce_admin_t *a, uint16_t op, const void *req, size_t len, size_t *n)
{
    if (!a->has_disp)
        return -ENOTSUP;
    return rpc_on(a, &a->disp, op, req, len, n);
}

/* Learn the daemons' sockets from the dispatcher's list (op 43). */
static int learn_paths(dmce_admin_t *a)
{
    dmce_adm_daemon_t *v;
    unsigned n;
    int r = dmce_admin_daemons(a, &v, &n);
    free(v);
    return r;
}

static int daemon_conn(dmce_admin_t *a, uint32_t id, dmce_mconn_t **out)
{
    if ((*out = conn_find(a, id)))
        return 0;
    if (a->has_disp) {
        int r = learn_paths(a);
        if (r < 0)
            return r;
        return (*out = conn_find(a, id)) ? 0 : -ENODEV;
    }
    char path[sizeof(a->dir) + 32];
    if (snprintf(path, sizeof(path), "%s/memd-%u.sock", a->dir, id) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    return conn_set(a, id, path, out);
}

int dmce_admin_rpc(dmce_admin_t *a, uint32_t daemon, uint16_t op, const void *req, size_t len,
                   const uint8_t **resp, size_t *resp_len)
{
    size_t n = 0;
    int r;
    if (daemon == 0) {
        r = disp_rpc(a, op, req, len, &n);
    } else {
        dmce_mconn_t *k;
        r = daemon_conn(a, daemon, &k);
        if (r == 0)
            r = rpc_on(a, k, op, req, len, &n);
    }
    if (resp)
        *resp = a->buf;
    if (resp_len)
        *resp_len = n;
    return r;
}

/* ---- lists ----------------------------------------------------------------------------------- */

/*
 * A list response in a->buf (n bytes) into a malloc'ed array: count() checks
 * the whole length, dec() decodes entry i into slot i of the array.
 */
typedef int (*count_fn)(const uint8_t *, size_t, uint32_t *);
typedef int (*entry_fn)(const uint8_t *, size_t, uint32_t, void *);

static int list_take(const dmce_admin_t *a, size_t n, count_fn count, entry_fn dec, size_t esz,
                     void **out, unsigned *cnt)
{
    *out = NULL;
    *cnt = 0;
    uint32_t c;
    int r = count(a->buf, n, &c);
    if (r < 0 || c == 0)
        return r;
    uint8_t *v = calloc(c, esz);
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < c && r == 0; i++)
        r = dec(a->buf, n, i, v + i * esz);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *cnt = c;
    return 0;
}

static int session_dec(const uint8_t *in, size_t len, uint32_t i, void *e)
{
    return dmce_adm_session_decode(in, len, i, e);
}
static int job_dec(const uint8_t *in, size_t len, uint32_t i, void *e)
{
    return dmce_adm_job_decode(in, len, i, e);
}
static int daemon_dec(const uint8_t *in, size_t len, uint32_t i, void *e)
{
    return dmce_adm_daemon_decode(in, len, i, e);
}
static int block_dec(const uint8_t *in, size_t len, uint32_t i, void *e)
{
    return dmce_msmp_block_info_decode(in, len, i, e);
}

/* A list op with an empty request to daemon (0: the dispatcher). */
static int list_call(dmce_admin_t *a, uint32_t daemon, uint16_t op, count_fn count, entry_fn dec,
                     size_t esz, void **out, unsigned *n)
{
    *out = NULL;
    *n = 0;
    size_t len;
    int r = dmce_admin_rpc(a, daemon, op, NULL, 0, NULL, &len);
    return r < 0 ? r : list_take(a, len, count, dec, esz, out, n);
}

static int cmp_daemon(const void *x, const void *y)
{
    uint32_t a = ((const dmce_adm_daemon_t *)x)->id, b = ((const dmce_adm_daemon_t *)y)->id;
    return (a > b) - (a < b);
}

/* The heartbeat's ops: malloc, read, write and free served. */
static uint64_t served_ops(const dmce_stats_t *s)
{
    return s->ops_malloc + s->ops_read + s->ops_write + s->ops_free;
}

/* Without a dispatcher: every memd-*.sock, as libdmce finds them, asked for its stats. */
static int scan_daemons(dmce_admin_t *a, dmce_adm_daemon_t **out, unsigned *cnt)
{
    DIR *d = opendir(a->dir);
    if (!d)
        return -errno;
    dmce_adm_daemon_t *v = NULL;
    unsigned n = 0, cap = 0;
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "memd-", 5) != 0 || l <= 10 || strcmp(e->d_name + l - 5, ".sock"))
            continue;
        char *end;
        unsigned long id = strtoul(e->d_name + 5, &end, 10);
        if (end != e->d_name + l - 5 || id == 0 || id > UINT32_MAX)
            continue; /* not one of ours: memd-ID.sock */
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            dmce_adm_daemon_t *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        dmce_adm_daemon_t *x = &v[n];
        memset(x, 0, sizeof(*x));
        x->id = (uint32_t)id;
        x->numa_node = -1;
        if (snprintf(x->path, sizeof(x->path), "%s/%s", a->dir, e->d_name) < (int)sizeof(x->path))
            n++;
    }
    closedir(d);
    for (unsigned i = 0; r == 0 && i < n; i++) {
        dmce_adm_daemon_t *x = &v[i];
        dmce_mconn_t *k;
        r = conn_set(a, x->id, x->path, &k);
        dmce_stats_t s;
        int q = r == 0 ? dmce_admin_stats(a, x->id, &s) : r;
        if (q == -ENOMEM)
            r = q;
        if (r < 0)
            break;
        x->state = q == 0 ? DMCE_DISP_ALIVE : DMCE_DISP_DEAD;
        if (q < 0)
            continue;
        x->numa_node = s.numa_node;
        x->pid = s.pid;
        x->primaries = (uint32_t)s.blocks;
        x->mirrors = (uint32_t)s.mirror_copies;
        x->capacity = s.bytes_total;
        x->used = s.bytes_used;
        x->free = s.bytes_free;
        x->ops = served_ops(&s);
    }
    if (r < 0) {
        free(v);
        return r;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_daemon);
    *out = v;
    *cnt = n;
    return 0;
}

int dmce_admin_daemons(dmce_admin_t *a, dmce_adm_daemon_t **out, unsigned *n)
{
    *out = NULL;
    *n = 0;
    if (!a->has_disp)
        return scan_daemons(a, out, n);
    void *v;
    int r = list_call(a, 0, DMCE_MSMP_OP_DAEMONS, dmce_adm_daemons_count, daemon_dec,
                      sizeof(dmce_adm_daemon_t), &v, n);
    if (r < 0)
        return r;
    dmce_adm_daemon_t *d = v;
    for (unsigned i = 0; i < *n; i++) {
        dmce_mconn_t *k;
        if (d[i].path[0] && (r = conn_set(a, d[i].id, d[i].path, &k)) < 0) {
            free(d);
            *n = 0;
            return r;
        }
    }
    if (*n)
        qsort(d, *n, sizeof(*d), cmp_daemon);
    *out = d;
    return 0;
}

int dmce_admin_stats(dmce_admin_t *a, uint32_t daemon, dmce_stats_t *out)
{
    size_t n;
    const uint8_t *p;
    if (daemon == 0)
        return -EINVAL;
    int r = dmce_admin_rpc(a, daemon, DMCE_MSMP_OP_STATS, NULL, 0, &p, &n);
    uint64_t v[DMCE_STAT_COUNT_];
    if (r == 0)
        r = dmce_msmp_stats_decode(p, n, v);
    if (r == 0)
        dmce_msmp_stats_to_struct(v, out);
    return r;
}

int dmce_admin_blocks(dmce_admin_t *a, uint32_t daemon, dmce_msmp_block_info_t **out, unsigned *n)
{
    void *v;
    int r = daemon ? list_call(a, daemon, DMCE_MSMP_OP_BLOCKS, dmce_msmp_blocks_count, block_dec,
                               sizeof(dmce_msmp_block_info_t), &v, n)
                   : -EINVAL;
    *out = r == 0 ? v : NULL;
    return r;
}

int dmce_admin_sessions(dmce_admin_t *a, uint32_t daemon, dmce_adm_session_t **out, unsigned *n)
{
    void *v;
    int r = daemon ? list_call(a, daemon, DMCE_MSMP_OP_SESSIONS, dmce_adm_sessions_count,
                               session_dec, sizeof(dmce_adm_session_t), &v, n)
                   : -EINVAL;
    *out = r == 0 ? v : NULL;
    return r;
}

int dmce_admin_jobs(dmce_admin_t *a, dmce_adm_job_t **out, unsigned *n)
{
    void *v;
    int r = a->has_disp ? list_call(a, 0, DMCE_MSMP_OP_JOBS, dmce_adm_jobs_count, job_dec,
                                    sizeof(dmce_adm_job_t), &v, n)
                        : -ENOTSUP;
    *out = r == 0 ? v : NULL;
    return r;
}

int dmce_admin_job(dmce_admin_t *a, uint32_t id, dmce_adm_job_t *out)
{
    dmce_adm_job_t *v;
    unsigned n;
    int r = dmce_admin_jobs(a, &v, &n);
    if (r < 0)
        return r;
    r = -ENOENT;
    for (unsigned i = 0; i < n && r; i++)
        if (v[i].id == id) {
            *out = v[i];
            r = 0;
        }
    free(v);
    return r;
}

int dmce_admin_directory(dmce_admin_t *a, dmce_disp_dir_hdr_t *hdr, dmce_disp_block_t **out,
                         unsigned *n)
{
    *out = NULL;
    *n = 0;
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t len;
    int r = disp_rpc(a, DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), &len);
    if (r == 0)
        r = dmce_disp_dir_hdr_decode(a->buf, len, hdr);
    if (r < 0 || hdr->nblocks == 0)
        return r;
    dmce_disp_block_t *v = calloc(hdr->nblocks, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (uint32_t i = 0; i < hdr->nblocks && r == 0; i++)
        r = dmce_disp_block_decode(a->buf, len, i, &v[i]);
    if (r < 0) {
        free(v);
        return r;
    }
    *out = v;
    *n = hdr->nblocks;
    return 0;
}

/*
 * dmce_cluster_stats_t holds the disp_stats values from daemons_alive to
 * last_move_us as consecutive u64 fields in the wire's order (libdmce's
 * dmce_cluster_stats names them one by one); the asserts pin that.
 */
#define CS_FIRST offsetof(dmce_cluster_stats_t, daemons_alive)
#define CS_SPAN (DMCE_DSTAT_LAST_MOVE_US - DMCE_DSTAT_DAEMONS_ALIVE + 1)
_Static_assert(offsetof(dmce_cluster_stats_t, last_move_us) - CS_FIRST == 8 * (CS_SPAN - 1),
               "dmce_cluster_stats_t follows enum dmce_disp_stat from daemons_alive on");
_Static_assert(offsetof(dmce_cluster_stats_t, picks) - CS_FIRST ==
                   8 * (DMCE_DSTAT_PICKS - DMCE_DSTAT_DAEMONS_ALIVE),
               "dmce_cluster_stats_t follows enum dmce_disp_stat from daemons_alive on");

int dmce_admin_cluster_stats(dmce_admin_t *a, dmce_cluster_stats_t *out)
{
    size_t n;
    uint64_t v[DMCE_DSTAT_COUNT_];
    int r = disp_rpc(a, DMCE_MSMP_OP_DISP_STATS, NULL, 0, &n);
    if (r == 0)
        r = dmce_msmp_values_decode(a->buf, n, v, DMCE_DSTAT_COUNT_);
    if (r < 0)
        return r;
    memset(out, 0, sizeof(*out));
    out->uptime_ms = v[DMCE_DSTAT_UPTIME_MS];
    out->epoch = v[DMCE_DSTAT_EPOCH];
    out->mirroring = (v[DMCE_DSTAT_FLAGS] & DMCE_DISP_MIRRORING) != 0;
    out->warn_one_copy = v[DMCE_DSTAT_WARN_ONE_COPY] != 0;
    memcpy((char *)out + CS_FIRST, &v[DMCE_DSTAT_DAEMONS_ALIVE], 8 * CS_SPAN);
    return 0;
}

int dmce_admin_block_primary(dmce_admin_t *a, uint32_t block, uint32_t *daemon)
{
    if (a->has_disp) {
        dmce_disp_dir_hdr_t h;
        dmce_disp_block_t *v;
        unsigned n;
        int r = dmce_admin_directory(a, &h, &v, &n);
        if (r < 0)
            return r;
        r = DMCE_ENOBLOCK;
        for (unsigned i = 0; i < n && r; i++)
            if (v[i].block == block) {
                *daemon = v[i].primary;
                r = 0;
            }
        free(v);
        return r;
    }
    dmce_adm_daemon_t *d;
    unsigned nd;
    int r = dmce_admin_daemons(a, &d, &nd);
    if (r < 0)
        return r;
    r = DMCE_ENOBLOCK;
    for (unsigned i = 0; i < nd && r == DMCE_ENOBLOCK; i++) {
        dmce_msmp_block_info_t *b;
        unsigned nb;
        if (d[i].state != DMCE_DISP_ALIVE || dmce_admin_blocks(a, d[i].id, &b, &nb) < 0)
            continue;
        for (unsigned j = 0; j < nb; j++)
            if (b[j].block == block && b[j].role == 0) {
                *daemon = d[i].id;
                r = 0;
            }
        free(b);
    }
    free(d);
    return r;
}

/* ---- moves ----------------------------------------------------------------------------------- */

/* A request whose answer is u32 value, u32 0 (migrate, drain). */
static int u32_call(dmce_admin_t *a, uint16_t op, const uint8_t *rq, size_t len, uint32_t *v)
{
    size_t n;
    int r = disp_rpc(a, op, rq, len, &n);
    return r < 0 ? r : dmce_disp_u32_decode(a->buf, n, v);
}

int dmce_admin_migrate(dmce_admin_t *a, uint32_t block, uint32_t to, int32_t node, uint32_t *job)
{
    uint8_t rq[DMCE_ADM_MIGRATE_SIZE];
    dmce_adm_migrate_encode(&(dmce_adm_migrate_t){.block = block, .to = to, .node = node}, rq);
    return u32_call(a, DMCE_MSMP_OP_MIGRATE, rq, sizeof(rq), job);
}

int dmce_admin_drain(dmce_admin_t *a, uint32_t daemon, int cancel, uint32_t *count)
{
    uint8_t rq[DMCE_ADM_PAIR_SIZE];
    dmce_adm_pair_encode(daemon, cancel ? DMCE_ADM_DRAIN_CANCEL : 0, rq);
    return u32_call(a, DMCE_MSMP_OP_DRAIN, rq, sizeof(rq), count);
}

/* Sleep for the next poll; *ms doubles up to POLL_MAX_MS. */
static void poll_pause(unsigned *ms)
{
    struct timespec ts = {.tv_sec = *ms / 1000, .tv_nsec = (long)(*ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* a signal cuts it short: the caller's progress() decides */
    *ms = DMCE_MIN(*ms * 2, POLL_MAX_MS);
}

static int timed_out(uint64_t start, unsigned timeout_ms)
{
    return timeout_ms && dmce_now_ms() - start >= timeout_ms;
}

static int job_over(const dmce_adm_job_t *j)
{
    return j->state == DMCE_ADM_JOB_DONE || j->state == DMCE_ADM_JOB_FAILED;
}

/* A failed job's error; never 0 (a dispatcher that says failed without a reason). */
static int failed_err(int32_t err)
{
    return err < 0 ? err : -EIO;
}

int dmce_admin_wait_job(dmce_admin_t *a, uint32_t id, unsigned timeout_ms,
                        int (*progress)(const dmce_adm_job_t *, void *), void *arg,
                        dmce_adm_job_t *out)
{
    uint64_t start = dmce_now_ms();
    unsigned pause = POLL_FIRST_MS;
    dmce_adm_job_t j = {.id = id};
    for (;;) {
        int r = dmce_admin_job(a, id, &j);
        if (out)
            *out = j;
        if (r < 0)
            return r;
        if (progress && progress(&j, arg))
            return -EINTR;
        if (job_over(&j))
            return j.state == DMCE_ADM_JOB_DONE ? 0 : failed_err(j.err);
        if (timed_out(start, timeout_ms))
            return -ETIMEDOUT;
        poll_pause(&pause);
    }
}

/* One look at a drain: the daemon's counts and its moves since after_job. */
static int drain_look(dmce_admin_t *a, uint32_t daemon, uint32_t after_job,
                      dmce_admin_drain_progress_t *p, int *gone)
{
    dmce_adm_daemon_t *d;
    unsigned nd;
    int r = dmce_admin_daemons(a, &d, &nd);
    if (r < 0)
        return r;
    *gone = 1;
    for (unsigned i = 0; i < nd; i++)
        if (d[i].id == daemon && d[i].state == DMCE_DISP_ALIVE) {
            *gone = 0;
            p->primaries = d[i].primaries;
            p->mirrors = d[i].mirrors;
            p->total = DMCE_MAX(p->total, p->primaries + p->mirrors);
        }
    free(d);
    dmce_adm_job_t *j;
    unsigned nj;
    if ((r = dmce_admin_jobs(a, &j, &nj)) < 0)
        return r;
    p->moves_done = p->moves_failed = 0;
    for (unsigned i = 0; i < nj; i++) {
        if (j[i].id <= after_job || j[i].from != daemon)
            continue;
        if (j[i].state == DMCE_ADM_JOB_DONE)
            p->moves_done++;
        else if (j[i].state == DMCE_ADM_JOB_FAILED && p->moves_failed++ == 0)
            p->failed = j[i];
    }
    free(j);
    return 0;
}

int dmce_admin_wait_drained(dmce_admin_t *a, uint32_t daemon, uint32_t after_job,
                            unsigned timeout_ms,
                            int (*progress)(const dmce_admin_drain_progress_t *, void *), void *arg,
                            dmce_admin_drain_progress_t *p)
{
    uint64_t start = dmce_now_ms();
    unsigned pause = POLL_FIRST_MS;
    memset(p, 0, sizeof(*p));
    p->daemon = daemon;
    for (;;) {
        int gone = 0;
        int r = drain_look(a, daemon, after_job, p, &gone);
        p->elapsed_ms = dmce_now_ms() - start;
        if (r < 0)
            return r;
        if (progress && progress(p, arg))
            return -EINTR;
        if (gone)
            return -ENODEV;
        if (p->moves_failed)
            return failed_err(p->failed.err);
        if (p->primaries == 0 && p->mirrors == 0)
            return 0;
        if (timed_out(start, timeout_ms))
            return -ETIMEDOUT;
        poll_pause(&pause);
    }
}

/* ---- backups --------------------------------------------------------------------------------- */

static int task_call(dmce_admin_t *a, uint16_t op, uint32_t daemon, uint32_t block, uint32_t flags,
                     const char *dir, uint32_t *task, uint32_t *queued)
{
    dmce_adm_backup_t m = {.block = block, .flags = flags};
    if (dir && snprintf(m.dir, sizeof(m.dir), "%s", dir) >= (int)sizeof(m.dir))
        return -ENAMETOOLONG;
    uint8_t rq[DMCE_ADM_BACKUP_HDR + DMCE_ADM_DIR_MAX];
    int len = dmce_adm_backup_encode(&m, rq, sizeof(rq));
    if (len < 0)
        return len;
    const uint8_t *p;
    size_t n;
    int r = daemon ? dmce_admin_rpc(a, daemon, op, rq, (size_t)len, &p, &n) : -EINVAL;
    return r < 0 ? r : dmce_adm_pair_decode(p, n, task, queued);
}

int dmce_admin_backup(dmce_admin_t *a, uint32_t daemon, uint32_t block, uint32_t flags,
                      const char *dir, uint32_t *task, uint32_t *queued)
{
    return task_call(a, DMCE_MSMP_OP_BACKUP, daemon, block, flags, dir, task, queued);
}

int dmce_admin_restore(dmce_admin_t *a, uint32_t daemon, uint32_t block, const char *dir,
                       uint32_t *task, uint32_t *queued)
{
    return task_call(a, DMCE_MSMP_OP_RESTORE, daemon, block, 0, dir, task, queued);
}

void dmce_admin_bk_free(dmce_admin_bk_t *bk)
{
    free(bk->entries);
    bk->entries = NULL;
    bk->count = 0;
}

int dmce_admin_backup_status(dmce_admin_t *a, uint32_t daemon, dmce_admin_bk_t *out)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *p;
    size_t n;
    dmce_adm_bk_status_t st;
    int r =
        daemon ? dmce_admin_rpc(a, daemon, DMCE_MSMP_OP_BACKUP_STATUS, NULL, 0, &p, &n) : -EINVAL;
    if (r == 0)
        r = dmce_adm_bk_status_decode(p, n, &st);
    if (r < 0)
        return r;
    out->task = st.task;
    out->interval_s = st.interval_s;
    memcpy(out->dir, st.dir, sizeof(out->dir));
    if (st.count == 0)
        return 0;
    if (!(out->entries = calloc(st.count, sizeof(*out->entries))))
        return -ENOMEM;
    out->count = st.count;
    for (uint32_t i = 0; i < st.count && r == 0; i++)
        r = dmce_adm_bk_entry_decode(&st, i, &out->entries[i]);
    if (r < 0)
        dmce_admin_bk_free(out);
    return r;
}

/* One look at task id on daemon: into *t. 0, or the daemon's error. */
static int task_look(dmce_admin_t *a, uint32_t daemon, uint32_t id, dmce_adm_task_t *t)
{
    dmce_admin_bk_t bk;
    int r = dmce_admin_backup_status(a, daemon, &bk);
    dmce_admin_bk_free(&bk);
    if (r < 0)
        return r;
    if (bk.task.id == id) {
        *t = bk.task;
    } else if (bk.task.state && bk.task.id > id) {
        t->state = DMCE_ADM_JOB_DONE; /* a later task runs: ours is over, its figures unknown */
    } else {
        memset(t, 0, sizeof(*t)); /* not started yet: another task goes first */
        t->state = DMCE_ADM_JOB_QUEUED;
    }
    t->id = id;
    return 0;
}

int dmce_admin_wait_tasks(dmce_admin_t *a, unsigned n, const uint32_t *daemons, const uint32_t *ids,
                          unsigned timeout_ms,
                          int (*progress)(const dmce_adm_task_t *, unsigned, void *), void *arg,
                          dmce_adm_task_t *tasks, unsigned *which)
{
    uint64_t start = dmce_now_ms();
    unsigned pause = POLL_FIRST_MS;
    for (unsigned i = 0; i < n; i++)
        tasks[i] = (dmce_adm_task_t){.id = ids[i], .state = DMCE_ADM_JOB_QUEUED};
    for (;;) {
        unsigned open = 0;
        for (unsigned i = 0; i < n; i++) {
            if (tasks[i].state == DMCE_ADM_JOB_DONE || tasks[i].state == DMCE_ADM_JOB_FAILED)
                continue;
            dmce_adm_task_t t = tasks[i];
            int r = task_look(a, daemons[i], ids[i], &t);
            if (r < 0) {
                if (which)
                    *which = i;
                return r;
            }
            tasks[i] = t;
            open += t.state != DMCE_ADM_JOB_DONE && t.state != DMCE_ADM_JOB_FAILED;
        }
        if (progress && progress(tasks, n, arg))
            return -EINTR;
        if (open == 0)
            break;
        if (timed_out(start, timeout_ms))
            return -ETIMEDOUT;
        poll_pause(&pause);
    }
    for (unsigned i = 0; i < n; i++)
        if (tasks[i].state == DMCE_ADM_JOB_FAILED) {
            if (which)
                *which = i;
            return failed_err(tasks[i].err);
        }
    return 0;
}

/* ---- offline: backup sets -------------------------------------------------------------------- */

void dmce_admin_sets_free(char **sets, unsigned n)
{
    for (unsigned i = 0; sets && i < n; i++)
        free(sets[i]);
    free(sets);
}

static int has_table(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    if (snprintf(p, sizeof(p), "%s/table", dir) >= (int)sizeof(p))
        return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

struct set_name {
    unsigned long id;
    char *path;
};

static int cmp_set(const void *x, const void *y)
{
    unsigned long a = ((const struct set_name *)x)->id, b = ((const struct set_name *)y)->id;
    return (a > b) - (a < b);
}

int dmce_admin_backup_sets(const char *dir, char ***out, unsigned *cnt)
{
    *out = NULL;
    *cnt = 0;
    if (has_table(dir)) {
        char **v = malloc(sizeof(*v));
        if (!v || !(v[0] = strdup(dir))) {
            free(v);
            return -ENOMEM;
        }
        *out = v;
        *cnt = 1;
        return 0;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct set_name *v = NULL;
    unsigned n = 0, cap = 0;
    int r = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        unsigned long id = strncmp(e->d_name, "memd-", 5) ? 0 : strtoul(e->d_name + 5, &end, 10);
        char p[PATH_MAX];
        if (id == 0 || *end || snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p) ||
            !has_table(p))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            struct set_name *nv = realloc(v, cap * sizeof(*v));
            if (!nv) {
                r = -ENOMEM;
                break;
            }
            v = nv;
        }
        if (!(v[n].path = strdup(p))) {
            r = -ENOMEM;
            break;
        }
        v[n++].id = id;
    }
    closedir(d);
    char **paths = r == 0 && n ? malloc(n * sizeof(*paths)) : NULL;
    if (r == 0 && n && !paths)
        r = -ENOMEM;
    if (r == 0 && n == 0)
        r = -ENOENT;
    if (r == 0) {
        qsort(v, n, sizeof(*v), cmp_set);
        for (unsigned i = 0; i < n; i++)
            paths[i] = v[i].path;
        *out = paths;
        *cnt = n;
    } else {
        for (unsigned i = 0; i < n; i++)
            free(v[i].path);
    }
    free(v);
    return r;
}

static int wanted(const uint32_t *blocks, unsigned n, uint32_t block)
{
    if (n == 0)
        return 1;
    for (unsigned i = 0; i < n; i++)
        if (blocks[i] == block)
            return 1;
    return 0;
}

/* Verify one set; marks found[i] for each blocks[i] it holds. */
static int verify_set(const char *set, const uint32_t *blocks, unsigned nblocks, uint8_t *found,
                      int (*step)(const dmce_admin_verified_t *, void *), void *arg,
                      unsigned *damaged)
{
    dmce_admin_verified_t *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->set = set;
    dmce_bk_table_t t;
    memset(&t, 0, sizeof(t));
    int r = 0;
    v->err = dmce_bk_table_load(set, &t, v->why, sizeof(v->why));
    if (v->err < 0) {
        if (!v->why[0])
            snprintf(v->why, sizeof(v->why), "%s/table: %s", set, dmce_strerror(v->err));
        v->done = 1;
        (*damaged)++;
        r = step && step(v, arg) ? -EINTR : 0;
        free(v);
        return r;
    }
    v->daemon = t.daemon;
    for (uint32_t i = 0; i < t.nblocks; i++)
        v->count += wanted(blocks, nblocks, t.blocks[i].block);
    for (uint32_t i = 0; i < t.nblocks && r == 0; i++) {
        const dmce_bk_block_t *b = &t.blocks[i];
        if (!wanted(blocks, nblocks, b->block))
            continue;
        for (unsigned k = 0; k < nblocks; k++)
            found[k] |= blocks[k] == b->block;
        v->block = b->block;
        v->size = b->size;
        v->done = 0;
        v->err = 0;
        v->why[0] = 0;
        if (step && step(v, arg)) {
            r = -EINTR;
            break;
        }
        v->err = dmce_bk_verify_block(set, &t, b, v->why, sizeof(v->why));
        v->done = 1;
        if (v->err < 0 && !v->why[0])
            snprintf(v->why, sizeof(v->why), "block %u: %s", b->block, dmce_strerror(v->err));
        *damaged += v->err < 0;
        if (step && step(v, arg))
            r = -EINTR;
        v->index++;
    }
    dmce_bk_table_free(&t);
    free(v);
    return r;
}

int dmce_admin_verify(const char *dir, const uint32_t *blocks, unsigned nblocks,
                      int (*step)(const dmce_admin_verified_t *, void *), void *arg,
                      unsigned *damaged)
{
    *damaged = 0;
    char **sets;
    unsigned nsets;
    int r = dmce_admin_backup_sets(dir, &sets, &nsets);
    if (r < 0)
        return r;
    uint8_t *found = calloc(nblocks ? nblocks : 1, 1);
    if (!found) {
        dmce_admin_sets_free(sets, nsets);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nsets && r == 0; i++)
        r = verify_set(sets[i], blocks, nblocks, found, step, arg, damaged);
    for (unsigned k = 0; k < nblocks && r == 0; k++) {
        if (found[k])
            continue;
        dmce_admin_verified_t *v = calloc(1, sizeof(*v));
        if (!v) {
            r = -ENOMEM;
            break;
        }
        *v = (dmce_admin_verified_t){.set = dir, .block = blocks[k], .done = 1, .err = -ENOENT};
        snprintf(v->why, sizeof(v->why), "block %u is in no backup set under %s", blocks[k], dir);
        (*damaged)++;
        if (step && step(v, arg))
            r = -EINTR;
        free(v);
    }
    free(found);
    dmce_admin_sets_free(sets, nsets);
    return r;
}
