/*
 * Integration: live migration by owner change and drain (docs/migration.md).
 * A dispatcher and three memory daemons; every block mirrored.
 *
 *   - under_load: a 1 GiB block moves four times while two writers (one
 *     through MSMP messages, one through a dmce_map pointer + dmce_persist)
 *     and two verifying readers (MSMP, mapped pointer) run. Every slot
 *     carries its sequence number and a pattern derived from it: a reader
 *     never sees a torn slot (beyond a write in flight, re-read), nor a
 *     sequence older than one already acknowledged; at the end every slot
 *     holds exactly its last acknowledged write, read through MSMP from a
 *     new client. Writers never get an error;
 *   - drain: a daemon with many blocks (primaries and mirror copies) is
 *     drained; it ends holding nothing, then stops, and every byte reads
 *     back with two copies of every block;
 *   - unsettled: a target takes the handoff and vanishes, and no dispatcher
 *     settles the move: after a while the source asks the directory, which
 *     still names it, and serves the block again;
 *   - abort: the target is killed while it holds the handed-off block
 *     (DMCE_TEST_ADOPT_PAUSE_MS keeps it there): the move fails and the
 *     source serves the block again, data intact;
 *   - bad_requests: unknown block, same daemon, dead daemon, a drain with
 *     nowhere to go, malformed frames: each a clear error.
 *
 * Every wait is for a condition with a bound; every loop is bounded in
 * operations and in time.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp_admin.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "util.h"

#define MIB (1ull << 20)
#define SLOT 4096u
#define REGION (64 * MIB)
#define NSLOTS (REGION / SLOT)
#define MOVES 4
#define RUN_MAX_MS 60000
#define OPS_MAX 2000000

static dmce_client_t *observer;

/* ---- the dispatcher's admin operations ---------------------------------------------------- */

static int disp_call(uint16_t op, const void *p, size_t l, void *resp, size_t cap, size_t *n)
{
    dmce_mconn_t k;
    int r = dmce_mconn_init(&k, harness_disp_sock(), 5000, DMCE_MCONN_NO_RING);
    if (r == 0)
        r = dmce_mconn_rpc(&k, op, p, l, NULL, 0, resp, cap, n, NULL);
    dmce_mconn_close(&k);
    return r;
}

static int migrate(uint32_t block, uint32_t to, uint32_t *job)
{
    uint8_t rq[DMCE_ADM_MIGRATE_SIZE], resp[DMCE_DISP_U32_RESP_SIZE];
    dmce_adm_migrate_encode(&(dmce_adm_migrate_t){.block = block, .to = to, .node = -1}, rq);
    size_t n = 0;
    int r = disp_call(DMCE_MSMP_OP_MIGRATE, rq, sizeof(rq), resp, sizeof(resp), &n);
    return r < 0 ? r : dmce_disp_u32_decode(resp, n, job);
}

static int drain(uint32_t daemon, uint32_t flags, uint32_t *queued)
{
    uint8_t rq[DMCE_ADM_PAIR_SIZE], resp[DMCE_DISP_U32_RESP_SIZE];
    dmce_adm_pair_encode(daemon, flags, rq);
    size_t n = 0;
    int r = disp_call(DMCE_MSMP_OP_DRAIN, rq, sizeof(rq), resp, sizeof(resp), &n);
    return r < 0 ? r : dmce_disp_u32_decode(resp, n, queued);
}

static int job_get(uint32_t id, dmce_adm_job_t *out)
{
    static uint8_t buf[DMCE_ADM_JOBS_HDR + 4096 * DMCE_ADM_JOB_SIZE];
    size_t n = 0;
    uint32_t count;
    int r = disp_call(DMCE_MSMP_OP_JOBS, NULL, 0, buf, sizeof(buf), &n);
    if (r == 0)
        r = dmce_adm_jobs_count(buf, n, &count);
    for (uint32_t i = 0; r == 0 && i < count; i++)
        if (dmce_adm_job_decode(buf, n, i, out) == 0 && out->id == id)
            return 0;
    return r < 0 ? r : -ENOENT;
}

struct job_wait {
    uint32_t id;
    dmce_adm_job_t j;
};

static int job_finished(void *arg)
{
    struct job_wait *w = arg;
    return job_get(w->id, &w->j) == 0 &&
           (w->j.state == DMCE_ADM_JOB_DONE || w->j.state == DMCE_ADM_JOB_FAILED);
}

static int daemon_get(uint32_t id, dmce_adm_daemon_t *out)
{
    uint8_t buf[DMCE_ADM_DAEMONS_HDR + 16 * DMCE_ADM_DAEMON_SIZE];
    size_t n = 0;
    uint32_t count;
    int r = disp_call(DMCE_MSMP_OP_DAEMONS, NULL, 0, buf, sizeof(buf), &n);
    if (r == 0)
        r = dmce_adm_daemons_count(buf, n, &count);
    for (uint32_t i = 0; r == 0 && i < count; i++)
        if (dmce_adm_daemon_decode(buf, n, i, out) == 0 && out->id == id)
            return 0;
    return r < 0 ? r : -ENOENT;
}

/* The daemon ID holding the primary of addr's block, from the dispatcher's directory. */
static uint32_t primary_of(dmce_addr_t addr)
{
    dmce_addr_parts_t p;
    if (dmce_addr_decode(dmce_client_layout(observer), addr, &p) < 0)
        return 0;
    static uint8_t buf[DMCE_DISP_DIR_HDR + 64 * DMCE_DISP_DAEMON_SIZE + 4096 * DMCE_DISP_BLOCK_SIZE];
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t n = 0;
    dmce_disp_dir_hdr_t h;
    if (disp_call(DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), buf, sizeof(buf), &n) < 0 ||
        dmce_disp_dir_hdr_decode(buf, n, &h) < 0)
        return 0;
    for (uint32_t i = 0; i < h.nblocks; i++) {
        dmce_disp_block_t e;
        if (dmce_disp_block_decode(buf, n, i, &e) == 0 && e.block == p.block)
            return e.primary;
    }
    return 0;
}

/* ---- cluster -------------------------------------------------------------------------------- */

static int all_alive(void *arg)
{
    unsigned want = (unsigned)(uintptr_t)arg;
    dmce_cluster_stats_t s;
    return dmce_cluster_stats(observer, &s) == 0 && s.daemons_alive == want;
}

static int two_copies(void *arg)
{
    (void)arg;
    dmce_cluster_stats_t s;
    return dmce_cluster_stats(observer, &s) == 0 && s.blocks > 0 && s.blocks_single == 0 &&
           s.blocks_remirroring == 0 && s.blocks_mirrored == s.blocks;
}

static int start_cluster(const char *block_size, const char *max_blocks)
{
    if (harness_init() < 0)
        return -1;
    if (harness_start_dispatcher(0, "--mirroring=on", "--request-timeout-ms=1000", NULL) < 0)
        return -1;
    for (int id = 1; id <= 3; id++)
        if (harness_start(id, block_size, max_blocks, "--grace-ms=60000", NULL) < 0)
            return -1;
    if (dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0)
        return -1;
    return harness_wait(all_alive, (void *)(uintptr_t)3, 10000) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dmce_disconnect(observer);
    observer = NULL;
    if (H.pid[0])
        harness_stop(0);
    for (int id = 1; id <= 3; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    return 0;
}

static dmce_client_t *client(unsigned flags)
{
    dmce_client_t *c = NULL;
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir, .flags = flags},
                                  &c),
                     0);
    assert_int_equal(dmce_setup(c, 1 * MIB, DMCE_SETUP_PARTIAL, NULL, NULL), 0);
    return c;
}

/* ---- slots: seq, index, a pattern derived from both ---------------------------------------- */

static void slot_fill(uint8_t *p, uint64_t slot, uint64_t seq)
{
    memcpy(p, &seq, 8);
    memcpy(p + 8, &slot, 8);
    for (unsigned i = 16; i < SLOT; i++)
        p[i] = (uint8_t)(seq * 31 + slot * 7 + i);
}

/* 1: consistent, its seq in *seq; 0: torn (a write in flight) or wrong. */
static int slot_check(const uint8_t *p, uint64_t slot, uint64_t *seq)
{
    uint64_t s, idx;
    memcpy(&s, p, 8);
    memcpy(&idx, p + 8, 8);
    if (s == 0 && idx == 0) {
        for (unsigned i = 16; i < SLOT; i++)
            if (p[i])
                return 0;
        *seq = 0;
        return 1; /* never written */
    }
    if (idx != slot)
        return 0;
    for (unsigned i = 16; i < SLOT; i++)
        if (p[i] != (uint8_t)(s * 31 + slot * 7 + i))
            return 0;
    *seq = s;
    return 1;
}

struct load {
    dmce_addr_t base;
    _Atomic uint64_t acked[NSLOTS];
    atomic_int stop;
    atomic_int errors;
    atomic_ullong ops[4];
    char why[256];
};

static struct load *L;

static void fail_once(const char *fmt, ...)
{
    if (atomic_fetch_add(&L->errors, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(L->why, sizeof(L->why), fmt, ap);
        va_end(ap);
    }
}

struct worker {
    int idx;    /* 0: MSMP writer, 1: mapped writer, 2: MSMP reader, 3: mapped reader */
    dmce_client_t *c;
    uint8_t *map;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[SLOT];
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(w->idx + 1), end = dmce_now_ms() + RUN_MAX_MS;
    for (uint64_t op = 0; op < OPS_MAX && !atomic_load(&L->stop) && dmce_now_ms() < end; op++) {
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t slot = (rnd >> 20) % NSLOTS;
        dmce_addr_t a = L->base + slot * SLOT;
        if (w->idx < 2) { /* writers: slot parity is the writer's */
            slot = (slot & ~1ull) | (uint64_t)w->idx;
            a = L->base + slot * SLOT;
            uint64_t seq = atomic_load(&L->acked[slot]) + 1;
            slot_fill(buf, slot, seq);
            int r;
            if (w->idx == 0) {
                r = dmce_write(w->c, a, buf, SLOT);
            } else {
                memcpy(w->map + slot * SLOT, buf, SLOT);
                r = dmce_persist(w->c, a, SLOT);
            }
            if (r < 0) {
                fail_once("writer %d: slot %llu: %s", w->idx, (unsigned long long)slot,
                          dmce_strerror(r));
                break;
            }
            atomic_store(&L->acked[slot], seq);
        } else {
            uint64_t before = atomic_load(&L->acked[slot]), seq = 0;
            int ok = 0;
            for (int t = 0; t < 1000 && !ok; t++) { /* a slot being written: read again */
                int r = 0;
                if (w->idx == 2)
                    r = dmce_read(w->c, a, buf, SLOT);
                else
                    memcpy(buf, w->map + slot * SLOT, SLOT);
                if (r < 0) {
                    fail_once("reader %d: slot %llu: %s", w->idx, (unsigned long long)slot,
                              dmce_strerror(r));
                    return NULL;
                }
                ok = slot_check(buf, slot, &seq);
            }
            if (!ok)
                fail_once("reader %d: slot %llu stays torn", w->idx, (unsigned long long)slot);
            else if (seq < before)
                fail_once("reader %d: slot %llu: seq %llu after %llu was acknowledged", w->idx,
                          (unsigned long long)slot, (unsigned long long)seq,
                          (unsigned long long)before);
            if (!ok || seq < before)
                break;
        }
        atomic_fetch_add(&L->ops[w->idx], 1);
    }
    return NULL;
}

static int ops_grew(void *arg)
{
    const uint64_t *since = arg;
    for (int i = 0; i < 4; i++)
        if (atomic_load(&L->ops[i]) < since[i] + 200)
            return atomic_load(&L->errors) > 0; /* stop waiting on an error */
    return 1;
}

static void under_load(void **state)
{
    (void)state;
    L = calloc(1, sizeof(*L));
    assert_non_null(L);
    dmce_client_t *owner = client(0);
    assert_int_equal(dmce_malloc(owner, REGION, &L->base), 0);
    uint8_t zero[SLOT] = {0};
    for (uint64_t s = 0; s < NSLOTS; s += 1)
        assert_int_equal(dmce_write(owner, L->base + s * SLOT, zero, SLOT), 0);
    assert_true(harness_wait(two_copies, NULL, 60000));

    struct worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.idx = i};
        w[i].c = client(i == 0 || i == 2 ? DMCE_CONNECT_NO_MAP : 0);
        if (i == 1 || i == 3)
            assert_int_equal(dmce_map(w[i].c, L->base, REGION, 0, (void **)&w[i].map), 0);
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    uint64_t since[4] = {0};
    assert_true(harness_wait(ops_grew, since, 20000));

    dmce_addr_parts_t parts;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(owner), L->base, &parts), 0);
    for (int m = 0; m < MOVES && atomic_load(&L->errors) == 0; m++) {
        uint32_t from = primary_of(L->base), job = 0;
        assert_true(from >= 1 && from <= 3);
        assert_int_equal(migrate(parts.block, 0, &job), 0); /* the dispatcher chooses */
        struct job_wait jw = {.id = job};
        assert_true(harness_wait(job_finished, &jw, 30000));
        if (jw.j.state != DMCE_ADM_JOB_DONE)
            fail_msg("move %d of block %u failed: %s", m, parts.block, dmce_strerror(jw.j.err));
        assert_int_equal(jw.j.from, from);
        assert_int_not_equal(jw.j.to, from);
        assert_int_equal(primary_of(L->base), jw.j.to);
        print_message("move %d: block %u memd[%u] -> memd[%u] in %llu us\n", m, parts.block,
                      jw.j.from, jw.j.to, (unsigned long long)jw.j.took_us);
        for (int i = 0; i < 4; i++)
            since[i] = atomic_load(&L->ops[i]);
        assert_true(harness_wait(ops_grew, since, 20000)); /* everyone goes on after it */
        assert_true(harness_wait(two_copies, NULL, 60000));
    }
    atomic_store(&L->stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    if (atomic_load(&L->errors))
        fail_msg("%d error(s); first: %s", atomic_load(&L->errors), L->why);
    print_message("ops: msmp writer %llu, mapped writer %llu, msmp reader %llu, mapped reader "
                  "%llu\n",
                  (unsigned long long)L->ops[0], (unsigned long long)L->ops[1],
                  (unsigned long long)L->ops[2], (unsigned long long)L->ops[3]);

    /* Every slot holds its last acknowledged write, read by a new MSMP client. */
    dmce_client_t *v = client(DMCE_CONNECT_NO_MAP);
    uint8_t buf[SLOT];
    for (uint64_t s = 0; s < NSLOTS; s++) {
        uint64_t seq = 0;
        assert_int_equal(dmce_read(v, L->base + s * SLOT, buf, SLOT), 0);
        if (!slot_check(buf, s, &seq) || seq != atomic_load(&L->acked[s]))
            fail_msg("slot %llu: seq %llu, acknowledged %llu", (unsigned long long)s,
                     (unsigned long long)seq, (unsigned long long)atomic_load(&L->acked[s]));
    }
    dmce_cluster_stats_t cs;
    assert_int_equal(dmce_cluster_stats(observer, &cs), 0);
    assert_true(cs.moves >= MOVES);
    dmce_disconnect(v);
    for (int i = 0; i < 4; i++)
        dmce_disconnect(w[i].c);
    dmce_disconnect(owner);
    free(L);
}

static int setup_big(void **state)
{
    (void)state;
    return start_cluster("--block-size=1G", "--max-blocks=3");
}

static int setup_small(void **state)
{
    (void)state;
    return start_cluster("--block-size=4M", "--max-blocks=64");
}

/* ---- drain ----------------------------------------------------------------------------------- */

static int holds_nothing(void *arg)
{
    dmce_adm_daemon_t x;
    return daemon_get((uint32_t)(uintptr_t)arg, &x) == 0 && x.primaries == 0 && x.mirrors == 0;
}

static void drain_daemon(void **state)
{
    (void)state;
    enum { N = 24, SZ = 3 * MIB };
    dmce_client_t *c = client(0);
    dmce_addr_t a[N];
    uint8_t *buf = malloc(SZ), *back = malloc(SZ);
    assert_non_null(buf);
    assert_non_null(back);
    for (int i = 0; i < N; i++) {
        assert_int_equal(dmce_malloc(c, SZ, &a[i]), 0);
        memset(buf, 0x40 + i, SZ);
        assert_int_equal(dmce_write(c, a[i], buf, SZ), 0);
    }
    assert_true(harness_wait(two_copies, NULL, 60000));
    dmce_adm_daemon_t x;
    assert_int_equal(daemon_get(2, &x), 0);
    assert_true(x.primaries > 0 && x.mirrors > 0);
    uint32_t queued = 0;
    assert_int_equal(drain(2, 0, &queued), 0);
    assert_int_equal(queued, x.primaries);
    assert_int_equal(daemon_get(2, &x), 0);
    assert_true(x.flags & DMCE_ADM_DAEMON_DRAINING);
    assert_true(harness_wait(holds_nothing, (void *)(uintptr_t)2, 60000));
    /* Nothing new goes to it: a new allocation lands elsewhere. */
    dmce_addr_t extra;
    assert_int_equal(dmce_malloc(c, SZ, &extra), 0);
    assert_int_equal(harness_stop(2), 0);
    assert_true(harness_wait(all_alive, (void *)(uintptr_t)2, 10000));
    assert_true(harness_wait(two_copies, NULL, 60000));
    for (int i = 0; i < N; i++) {
        memset(buf, 0x40 + i, SZ);
        assert_int_equal(dmce_read(c, a[i], back, SZ), 0);
        assert_memory_equal(buf, back, SZ);
    }
    dmce_cluster_stats_t cs;
    assert_int_equal(dmce_cluster_stats(observer, &cs), 0);
    assert_int_equal(cs.blocks_lost, 0);
    free(buf);
    free(back);
    dmce_disconnect(c);
}

/* ---- abort: the target dies holding the block ------------------------------------------------ */

static void abort_move(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a;
    uint8_t buf[4096], back[4096];
    memset(buf, 0x5a, sizeof(buf));
    assert_int_equal(dmce_malloc(c, sizeof(buf), &a), 0);
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    assert_true(harness_wait(two_copies, NULL, 30000));
    uint32_t from = primary_of(a);
    assert_true(from >= 1);
    /* A target that stalls after the handoff (test hook), then is killed. */
    uint32_t to = 0;
    for (uint32_t i = 1; i <= 3 && !to; i++)
        if (i != from)
            to = i;
    dmce_adm_daemon_t x;
    assert_int_equal(daemon_get(to, &x), 0);
    harness_kill((int)to);
    setenv("DMCE_TEST_ADOPT_PAUSE_MS", "3000", 1);
    int r = harness_start((int)to, "--block-size=4M", "--max-blocks=64", "--grace-ms=60000", NULL);
    unsetenv("DMCE_TEST_ADOPT_PAUSE_MS");
    assert_int_equal(r, 0);
    assert_true(harness_wait(all_alive, (void *)(uintptr_t)3, 10000));
    assert_true(harness_wait(two_copies, NULL, 30000));
    dmce_addr_parts_t parts;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &parts), 0);
    uint32_t job;
    assert_int_equal(migrate(parts.block, to, &job), 0);
    /* The source freezes it: a request answers once the move settles one way or the other. */
    dmce_client_t *raw;
    const char *s = harness_sock((int)from);
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.sockets = &s, .nsockets = 1,
                                                         .flags = DMCE_CONNECT_NO_MAP |
                                                                  DMCE_CONNECT_NO_DISPATCHER},
                                  &raw),
                     0);
    assert_int_equal(dmce_setup(raw, 4096, DMCE_SETUP_PARTIAL, NULL, NULL), 0);
    int frozen = 0;
    uint64_t end = dmce_now_ms() + 5000;
    while (!frozen && dmce_now_ms() < end) {
        frozen = dmce_read(raw, a, back, sizeof(back)) == DMCE_EMOVING;
        if (!frozen)
            usleep(1000);
    }
    assert_true(frozen);
    harness_kill((int)to); /* mid-move: it holds the block's objects */
    struct job_wait jw = {.id = job};
    assert_true(harness_wait(job_finished, &jw, 15000));
    assert_int_equal(jw.j.state, DMCE_ADM_JOB_FAILED);
    /* The source serves it again, with its bytes. */
    end = dmce_now_ms() + 5000;
    while ((r = dmce_read(raw, a, back, sizeof(back))) == DMCE_EMOVING && dmce_now_ms() < end)
        usleep(1000);
    assert_int_equal(r, 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_int_equal(primary_of(a), from);
    dmce_disconnect(raw);
    dmce_disconnect(c);
}

/* ---- a move nobody settles: the source asks the directory ---------------------------------- */

struct read_ok {
    dmce_client_t *c;
    dmce_addr_t a;
};

static int reads_again(void *arg)
{
    struct read_ok *ro = arg;
    uint8_t b[64];
    return dmce_read(ro->c, ro->a, b, sizeof(b)) == 0;
}

static void unsettled_move(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a;
    uint8_t buf[4096], back[4096];
    memset(buf, 0x33, sizeof(buf));
    assert_int_equal(dmce_malloc(c, sizeof(buf), &a), 0);
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    uint32_t from = primary_of(a);
    assert_true(from >= 1);
    dmce_addr_parts_t parts;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &parts), 0);
    /* Play a target that takes the handoff and then vanishes: nobody releases the block. */
    uint32_t to = from == 1 ? 2 : 1;
    dmce_mconn_t k;
    assert_int_equal(dmce_mconn_init(&k, harness_sock((int)from), 5000, DMCE_MCONN_NO_RING), 0);
    uint8_t rq[DMCE_ADM_HANDOFF_REQ_SIZE], resp[2048];
    dmce_adm_handoff_req_encode(parts.block, to, rq);
    int fds[2] = {-1, -1};
    unsigned nfd = 0;
    size_t n = 0;
    assert_int_equal(dmce_mconn_rpc_fds(&k, DMCE_MSMP_OP_HANDOFF, rq, sizeof(rq), resp,
                                        sizeof(resp), &n, fds, 2, &nfd),
                     0);
    dmce_adm_handoff_t h;
    assert_int_equal(dmce_adm_handoff_decode(resp, n, &h), 0);
    assert_int_equal(h.block, parts.block);
    assert_true(nfd >= 1);
    for (unsigned i = 0; i < nfd; i++)
        close(fds[i]);
    /* A second handoff of a frozen block is refused. */
    assert_int_equal(dmce_mconn_rpc(&k, DMCE_MSMP_OP_HANDOFF, rq, sizeof(rq), NULL, 0, resp,
                                    sizeof(resp), &n, NULL),
                     DMCE_EMOVING);
    dmce_mconn_close(&k);
    /* A direct client sees it frozen; then the source settles it (the directory still names
     * it) and serves it again, bytes intact. */
    dmce_client_t *raw;
    const char *s = harness_sock((int)from);
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.sockets = &s, .nsockets = 1,
                                                         .flags = DMCE_CONNECT_NO_MAP |
                                                                  DMCE_CONNECT_NO_DISPATCHER},
                                  &raw),
                     0);
    assert_int_equal(dmce_setup(raw, 4096, DMCE_SETUP_PARTIAL, NULL, NULL), 0);
    assert_int_equal(dmce_read(raw, a, back, sizeof(back)), DMCE_EMOVING);
    struct read_ok ro = {raw, a};
    assert_true(harness_wait(reads_again, &ro, 30000));
    assert_int_equal(dmce_read(raw, a, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_int_equal(primary_of(a), from);
    dmce_disconnect(raw);
    dmce_disconnect(c);
}

/* ---- bad requests ---------------------------------------------------------------------------- */

static void bad_requests(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    assert_true(harness_wait(two_copies, NULL, 30000));
    dmce_addr_parts_t parts;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &parts), 0);
    uint32_t job, from = primary_of(a);
    assert_int_equal(migrate(4000, 0, &job), DMCE_ENOBLOCK);        /* no such block */
    assert_int_equal(migrate(parts.block, from, &job), -EALREADY);  /* already there */
    assert_int_equal(migrate(parts.block, 99, &job), -ENODEV);      /* no such daemon */
    uint8_t bad[DMCE_ADM_MIGRATE_SIZE];
    dmce_adm_migrate_encode(&(dmce_adm_migrate_t){.block = parts.block, .node = -1, .flags = 7},
                            bad);
    assert_int_equal(disp_call(DMCE_MSMP_OP_MIGRATE, bad, sizeof(bad), NULL, 0, NULL), -EBADMSG);
    assert_int_equal(disp_call(DMCE_MSMP_OP_MIGRATE, bad, 3, NULL, 0, NULL), -EBADMSG);
    assert_int_equal(disp_call(DMCE_MSMP_OP_JOBS, bad, 4, NULL, 0, NULL), -EBADMSG);
    uint32_t q;
    assert_int_equal(drain(99, 0, &q), -ENODEV);
    assert_int_equal(drain(1, 0x80, &q), -EBADMSG);
    /* A daemon's own move operations refuse malformed or nonsensical requests. */
    dmce_mconn_t k;
    assert_int_equal(dmce_mconn_init(&k, harness_sock(1), 5000, DMCE_MCONN_NO_RING), 0);
    uint8_t pair[DMCE_ADM_PAIR_SIZE];
    dmce_adm_pair_encode(parts.block, 5, pair); /* release with commit = 5 */
    assert_int_equal(dmce_mconn_rpc(&k, DMCE_MSMP_OP_RELEASE, pair, sizeof(pair), NULL, 0, NULL,
                                    0, NULL, NULL),
                     -EBADMSG);
    dmce_adm_pair_encode(4000, 1, pair); /* release of a block it does not hold */
    assert_int_equal(dmce_mconn_rpc(&k, DMCE_MSMP_OP_RELEASE, pair, sizeof(pair), NULL, 0, NULL,
                                    0, NULL, NULL),
                     DMCE_ENOBLOCK);
    dmce_adm_pair_encode(parts.block, 0, pair); /* handoff to block 0's... to nobody */
    assert_int_equal(dmce_mconn_rpc(&k, DMCE_MSMP_OP_HANDOFF, pair, sizeof(pair), NULL, 0, NULL,
                                    0, NULL, NULL),
                     -EBADMSG);
    dmce_mconn_close(&k);
    /* Drain until one daemon is left: the last one has nowhere to go. */
    assert_int_equal(drain(1, 0, &q), 0);
    assert_int_equal(drain(2, 0, &q), 0);
    assert_int_equal(drain(3, 0, &q), -ENODEV);
    assert_int_equal(drain(1, DMCE_ADM_DRAIN_CANCEL, &q), 0);
    assert_int_equal(drain(2, DMCE_ADM_DRAIN_CANCEL, &q), 0);
    dmce_disconnect(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bad_requests, setup_small, teardown),
        cmocka_unit_test_setup_teardown(abort_move, setup_small, teardown),
        cmocka_unit_test_setup_teardown(unsettled_move, setup_small, teardown),
        cmocka_unit_test_setup_teardown(drain_daemon, setup_small, teardown),
        cmocka_unit_test_setup_teardown(under_load, setup_big, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
