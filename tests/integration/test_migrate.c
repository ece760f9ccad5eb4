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
 *   - load_outlasts_budget (regression): the load of under_load runs until
 *     the test stops it. It used to stop after 2,000,000 operations per
 *     thread, which the mapped reader reaches in seconds: under_load then
 *     waited 20 s for it after a move, which looked like a hang;
 *   - enoblock_after_move_back (regression): a client whose request was
 *     refused by the block's old owner, and that sees the block back on
 *     that daemon when it looks at the directory, sends it again (it used
 *     to give up with DMCE_ENOBLOCK);
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
 * time. The load (under_load) is the one loop the test ends itself
 * (load_stop); it has a time bound past ctest's only as a safety net, and
 * no budget of operations (see struct load).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
#define LOAD_WORKERS 4
#define LOAD_SAFETY_MS 300000     /* ctest's TIMEOUT: the test is over by then */
#define TORN_MAX_MS 10000         /* a slot torn this long is not a write in flight */
#define OLD_OPS_BUDGET 2000000ull /* what each load thread used to stop at */

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

/* addr's block in the dispatcher's directory: 0, or -1 when it is not there. */
static int dir_entry(dmce_addr_t addr, dmce_disp_block_t *out)
{
    dmce_addr_parts_t p;
    if (dmce_addr_decode(dmce_client_layout(observer), addr, &p) < 0)
        return -1;
    static uint8_t buf[DMCE_DISP_DIR_HDR + 64 * DMCE_DISP_DAEMON_SIZE + 4096 * DMCE_DISP_BLOCK_SIZE];
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t n = 0;
    dmce_disp_dir_hdr_t h;
    if (disp_call(DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), buf, sizeof(buf), &n) < 0 ||
        dmce_disp_dir_hdr_decode(buf, n, &h) < 0)
        return -1;
    for (uint32_t i = 0; i < h.nblocks; i++)
        if (dmce_disp_block_decode(buf, n, i, out) == 0 && out->block == p.block)
            return 0;
    return -1;
}

/* The daemon ID holding the primary of addr's block, from the dispatcher's directory. */
static uint32_t primary_of(dmce_addr_t addr)
{
    dmce_disp_block_t e;
    return dir_entry(addr, &e) == 0 ? e.primary : 0;
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

/*
 * A dispatcher and three daemons. Member pulses every 300 ms (dead after
 * 0.9 s without one, as in the dispatcher's own tests): at the default
 * 100 ms a loaded 2-CPU host stalls a daemon's pulse thread long enough to
 * have it killed while it makes a 1 GiB block. request_timeout: how long
 * the dispatcher waits for a daemon's answer before it kills it; abort_move
 * counts on a short one for its stalled target, and a 1 GiB block's
 * adopt or mirror on a loaded host needs a long one.
 */
static int start_cluster(const char *block_size, const char *max_blocks,
                         const char *request_timeout)
{
    if (harness_init() < 0)
        return -1;
    if (harness_start_dispatcher(0, "--mirroring=on", "--heartbeat-ms=300", request_timeout, NULL) <
        0)
        return -1;
    for (int id = 1; id <= 3; id++)
        if (harness_start(id, block_size, max_blocks, "--grace-ms=60000", NULL) < 0)
            return -1;
    if (dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0)
        return -1;
    return harness_wait(all_alive, (void *)(uintptr_t)3, 10000) ? 0 : -1;
}

static void load_free(void);
static void gate_free(void);

static int teardown(void **state)
{
    (void)state;
    load_free(); /* a test that failed with its load running */
    gate_free(); /* or with its gate (enoblock_after_move_back) */
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

/*
 * The load: four threads, each with its own client, over slots [0, nslots)
 * of the region at base. It runs until the test stops it (load_stop):
 * what a test waits for after a move (ops_grew) is the load going on, so
 * the load must not end by itself while the test still waits. A budget of
 * operations per thread (2,000,000) did: the mapped reader, a memcpy and
 * a check, does about a million a second per CPU and used it up before
 * the last move; ops_grew then waited 20 s on a thread that had ended,
 * while the others were fine (their stacks, caught in ring_wait with a
 * fresh deadline, looked like a hang of the ring transport). Now a thread
 * ends only when told, or with an error (fail_once) that ends every wait
 * on the load at once and names the cause.
 */
struct worker {
    int idx; /* 0: MSMP writer, 1: mapped writer, 2: MSMP reader, 3: mapped reader */
    dmce_client_t *c;
    uint8_t *map;
};

struct load {
    dmce_addr_t base;
    uint64_t nslots;
    _Atomic uint64_t acked[NSLOTS];
    atomic_int stop;
    atomic_int errors;
    atomic_ullong ops[LOAD_WORKERS];
    atomic_ullong max_gap_us[LOAD_WORKERS]; /* longest time between two operations */
    char why[256];
    struct worker w[LOAD_WORKERS];
    pthread_t th[LOAD_WORKERS];
    int running; /* threads started and not joined */
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

static const char *const worker_names[LOAD_WORKERS] = {"MSMP writer", "mapped writer",
                                                       "MSMP reader", "mapped reader"};

/*
 * Read slot `slot` until it is consistent: a write in flight tears it, and
 * its writer (a daemon's worker, or the mapped writer) may be descheduled
 * in the middle of it on a loaded machine, so the bound is in time. 1 with
 * its seq in *seq; 0 (after fail_once) if it stays torn or a read fails.
 */
static int read_slot(struct worker *w, uint64_t slot, uint8_t *buf, uint64_t *seq)
{
    dmce_addr_t a = L->base + slot * SLOT;
    uint64_t until = 0;
    for (;;) {
        if (w->idx == 2) {
            int r = dmce_read(w->c, a, buf, SLOT);
            if (r < 0) {
                fail_once("%s: slot %llu: %s", worker_names[w->idx], (unsigned long long)slot,
                          dmce_strerror(r));
                return 0;
            }
        } else {
            memcpy(buf, w->map + slot * SLOT, SLOT);
        }
        if (slot_check(buf, slot, seq))
            return 1;
        uint64_t now = dmce_now_ms();
        if (!until) {
            until = now + TORN_MAX_MS;
        } else if (now >= until) {
            fail_once("%s: slot %llu stays torn for %d ms", worker_names[w->idx],
                      (unsigned long long)slot, TORN_MAX_MS);
            return 0;
        }
        sched_yield(); /* let the writer finish */
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t buf[SLOT];
    uint64_t rnd = 0x9e3779b97f4a7c15ull * (uint64_t)(w->idx + 1);
    uint64_t end = dmce_now_ms() + LOAD_SAFETY_MS, last = dmce_now_ns();
    while (!atomic_load(&L->stop)) {
        if (dmce_now_ms() >= end) {
            fail_once("%s: still running after %d ms: the test never stopped it",
                      worker_names[w->idx], LOAD_SAFETY_MS);
            break;
        }
        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t slot = (rnd >> 20) % L->nslots;
        if (w->idx < 2) { /* writers: slot parity is the writer's */
            slot = (slot & ~1ull) | (uint64_t)w->idx;
            dmce_addr_t a = L->base + slot * SLOT;
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
                fail_once("%s: slot %llu: %s", worker_names[w->idx], (unsigned long long)slot,
                          dmce_strerror(r));
                break;
            }
            atomic_store(&L->acked[slot], seq);
        } else {
            uint64_t before = atomic_load(&L->acked[slot]), seq = 0;
            if (!read_slot(w, slot, buf, &seq))
                break;
            if (seq < before) {
                fail_once("%s: slot %llu: seq %llu after %llu was acknowledged",
                          worker_names[w->idx], (unsigned long long)slot, (unsigned long long)seq,
                          (unsigned long long)before);
                break;
            }
        }
        uint64_t now = dmce_now_ns();
        if ((now - last) / 1000 > atomic_load(&L->max_gap_us[w->idx]))
            atomic_store(&L->max_gap_us[w->idx], (now - last) / 1000);
        last = now;
        atomic_fetch_add(&L->ops[w->idx], 1);
    }
    /* Every wait on the load ends at an error: one that ends by itself must say so. */
    if (!atomic_load(&L->stop))
        fail_once("%s: ended after %llu operations without being told to", worker_names[w->idx],
                  (unsigned long long)atomic_load(&L->ops[w->idx]));
    return NULL;
}

/* Prepare the load over nslots slots at base, each zeroed through owner. L lives until load_free.
 */
static void load_init(dmce_client_t *owner, dmce_addr_t base, uint64_t nslots)
{
    assert_true(nslots >= 2 && nslots <= NSLOTS);
    L = calloc(1, sizeof(*L));
    assert_non_null(L);
    L->base = base;
    L->nslots = nslots;
    uint8_t zero[SLOT] = {0};
    for (uint64_t s = 0; s < nslots; s++)
        assert_int_equal(dmce_write(owner, base + s * SLOT, zero, SLOT), 0);
}

/* Start the load's threads, each with a client of its own. */
static void load_start(void)
{
    uint64_t len = L->nslots * SLOT;
    for (int i = 0; i < LOAD_WORKERS; i++) {
        struct worker *w = &L->w[i];
        w->idx = i;
        w->c = client(i == 0 || i == 2 ? DMCE_CONNECT_NO_MAP : 0);
        if (i == 1 || i == 3)
            assert_int_equal(dmce_map(w->c, L->base, len, 0, (void **)&w->map), 0);
    }
    for (int i = 0; i < LOAD_WORKERS; i++) {
        assert_int_equal(pthread_create(&L->th[i], NULL, worker_main, &L->w[i]), 0);
        L->running++;
    }
}

/* Tell the load to stop and wait for its threads. Idempotent. */
static void load_stop(void)
{
    if (!L)
        return;
    atomic_store(&L->stop, 1);
    for (; L->running > 0; L->running--)
        pthread_join(L->th[L->running - 1], NULL);
}

/* load_stop, then release the load's clients and L (teardown: also after a failure). */
static void load_free(void)
{
    if (!L)
        return;
    load_stop();
    for (int i = 0; i < LOAD_WORKERS; i++)
        if (L->w[i].c)
            dmce_disconnect(L->w[i].c);
    free(L);
    L = NULL;
}

/* What each thread of the load did, and its longest pause. */
static void load_report(void)
{
    for (int i = 0; i < LOAD_WORKERS; i++)
        print_message("%s: %llu operations, longest pause %.1f ms\n", worker_names[i],
                      (unsigned long long)atomic_load(&L->ops[i]),
                      (double)atomic_load(&L->max_gap_us[i]) / 1000.0);
}

/* Fail the test if the load saw an error (or ended by itself, which records one). */
static void load_check(void)
{
    if (atomic_load(&L->errors))
        fail_msg("%d error(s) in the load; first: %s", atomic_load(&L->errors), L->why);
}

/* Every load thread did 200 operations more than since[]; or an error (stop waiting). */
static int ops_grew(void *arg)
{
    const uint64_t *since = arg;
    for (int i = 0; i < LOAD_WORKERS; i++)
        if (atomic_load(&L->ops[i]) < since[i] + 200)
            return atomic_load(&L->errors) > 0;
    return 1;
}

static void under_load(void **state)
{
    (void)state;
    dmce_client_t *owner = client(0);
    dmce_addr_t base;
    assert_int_equal(dmce_malloc(owner, REGION, &base), 0);
    load_init(owner, base, NSLOTS);
    assert_true(harness_wait(two_copies, NULL, 60000));
    load_start();
    uint64_t since[LOAD_WORKERS] = {0};
    assert_true(harness_wait(ops_grew, since, 20000));
    load_check();

    dmce_addr_parts_t parts;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(owner), base, &parts), 0);
    for (int m = 0; m < MOVES; m++) {
        uint32_t from = primary_of(base), job = 0;
        assert_true(from >= 1 && from <= 3);
        assert_int_equal(migrate(parts.block, 0, &job), 0); /* the dispatcher chooses */
        struct job_wait jw = {.id = job};
        assert_true(harness_wait(job_finished, &jw, 30000));
        if (jw.j.state != DMCE_ADM_JOB_DONE)
            fail_msg("move %d of block %u failed: %s", m, parts.block, dmce_strerror(jw.j.err));
        assert_int_equal(jw.j.from, from);
        assert_int_not_equal(jw.j.to, from);
        assert_int_equal(primary_of(base), jw.j.to);
        print_message("move %d: block %u memd[%u] -> memd[%u] in %llu us\n", m, parts.block,
                      jw.j.from, jw.j.to, (unsigned long long)jw.j.took_us);
        for (int i = 0; i < LOAD_WORKERS; i++)
            since[i] = atomic_load(&L->ops[i]);
        assert_true(harness_wait(ops_grew, since, 20000)); /* everyone goes on after it */
        load_check();
        assert_true(harness_wait(two_copies, NULL, 60000));
    }
    load_stop();
    load_check();
    load_report();

    /* Every slot holds its last acknowledged write, read by a new MSMP client. */
    dmce_client_t *v = client(DMCE_CONNECT_NO_MAP);
    uint8_t buf[SLOT];
    for (uint64_t s = 0; s < NSLOTS; s++) {
        uint64_t seq = 0;
        assert_int_equal(dmce_read(v, base + s * SLOT, buf, SLOT), 0);
        if (!slot_check(buf, s, &seq) || seq != atomic_load(&L->acked[s]))
            fail_msg("slot %llu: seq %llu, acknowledged %llu", (unsigned long long)s,
                     (unsigned long long)seq, (unsigned long long)atomic_load(&L->acked[s]));
    }
    dmce_cluster_stats_t cs;
    assert_int_equal(dmce_cluster_stats(observer, &cs), 0);
    assert_true(cs.moves >= MOVES);
    dmce_disconnect(v);
    load_free();
    dmce_disconnect(owner);
}

/* ---- regression: the load runs until it is stopped ------------------------------------------ */

struct past {
    int idx;
    uint64_t n;
};

static int ops_past(void *arg)
{
    const struct past *p = arg;
    return atomic_load(&L->ops[p->idx]) > p->n || atomic_load(&L->errors) > 0;
}

/*
 * The load of under_load keeps going however many operations it does. Each
 * of its threads used to stop after OLD_OPS_BUDGET operations; the mapped
 * reader got there in a few seconds of CPU, mid-test, and under_load's
 * next ops_grew failed after 20 s with no error anywhere (ctest migrate,
 * test_migrate.c "harness_wait(ops_grew, since, 20000)" after a move).
 * Deterministic: with a budget, the first wait below can never be met;
 * without one, it is met after about OLD_OPS_BUDGET memcpys of 4 KiB.
 */
static void load_outlasts_budget(void **state)
{
    (void)state;
    enum { N = 256 }; /* 1 MiB of slots in one 4 MiB block */
    dmce_client_t *owner = client(0);
    dmce_addr_t base;
    assert_int_equal(dmce_malloc(owner, N * SLOT, &base), 0);
    load_init(owner, base, N);
    load_start();
    struct past p = {.idx = 3, .n = OLD_OPS_BUDGET + 1000};
    assert_true(harness_wait(ops_past, &p, 240000));
    load_check();
    uint64_t since[LOAD_WORKERS];
    for (int i = 0; i < LOAD_WORKERS; i++)
        since[i] = atomic_load(&L->ops[i]);
    assert_true(harness_wait(ops_grew, since, 20000)); /* and all four go on */
    load_stop();
    load_check();
    load_report();
    load_free();
    dmce_disconnect(owner);
}

static int setup_big(void **state)
{
    (void)state;
    return start_cluster("--block-size=1G", "--max-blocks=3", "--request-timeout-ms=10000");
}

static int setup_small(void **state)
{
    (void)state;
    return start_cluster("--block-size=4M", "--max-blocks=64", "--request-timeout-ms=1000");
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

/* ---- to the mirror's holder ------------------------------------------------------------------ */

static int shm_count_is(void *n)
{
    return harness_shm_count() == (int)(intptr_t)n;
}

/*
 * A block moved to the daemon that holds its mirror: that daemon keeps the
 * primary and drops its copy (two copies on one daemon protect nothing);
 * re-mirroring makes a second copy elsewhere; every byte reads back, and
 * the dropped copy's object goes.
 */
static void to_mirror_holder(void **state)
{
    (void)state;
    dmce_client_t *c = client(0);
    enum { SZ = 1 * MIB };
    dmce_addr_t a;
    uint8_t *buf = malloc(SZ), *back = malloc(SZ);
    assert_non_null(buf);
    assert_non_null(back);
    assert_int_equal(dmce_malloc(c, SZ, &a), 0);
    memset(buf, 0x5a, SZ);
    assert_int_equal(dmce_write(c, a, buf, SZ), 0);
    assert_true(harness_wait(two_copies, NULL, 60000));
    dmce_disp_block_t e;
    assert_int_equal(dir_entry(a, &e), 0);
    assert_true(e.mirror != 0 && e.mirror != e.primary);
    uint32_t from = e.primary, holder = e.mirror;
    int objects = harness_shm_count();
    struct job_wait w;
    assert_int_equal(migrate(e.block, holder, &w.id), 0);
    assert_true(harness_wait(job_finished, &w, 30000));
    assert_int_equal(w.j.state, DMCE_ADM_JOB_DONE);
    assert_int_equal(w.j.from, from);
    assert_int_equal(w.j.to, holder);
    assert_int_equal(primary_of(a), holder);
    assert_int_equal(dmce_read(c, a, back, SZ), 0);
    assert_memory_equal(buf, back, SZ);
    /* Re-mirrored: a second copy again, on another daemon than the new owner. */
    assert_true(harness_wait(two_copies, NULL, 60000));
    assert_int_equal(dir_entry(a, &e), 0);
    assert_int_equal(e.primary, holder);
    assert_true(e.mirror != 0 && e.mirror != holder);
    /* The holder's old copy is gone (the tick destroys it): the objects are as many as before. */
    assert_true(harness_wait(shm_count_is, (void *)(intptr_t)objects, 10000));
    memset(buf, 0xa5, SZ);
    assert_int_equal(dmce_write(c, a, buf, SZ), 0);
    assert_int_equal(dmce_read(c, a, back, SZ), 0);
    assert_memory_equal(buf, back, SZ);
    free(buf);
    free(back);
    dmce_disconnect(c);
}

/* ---- sessions follow the block --------------------------------------------------------------- */

/* Sum of `used` over memd[id]'s sessions, or -1. */
static int64_t sessions_used(uint32_t id)
{
    dmce_mconn_t k;
    static uint8_t buf[DMCE_ADM_SESSIONS_HDR + 256 * DMCE_ADM_SESSION_SIZE];
    size_t n = 0;
    uint32_t count = 0;
    int r = dmce_mconn_init(&k, harness_sock((int)id), 5000, DMCE_MCONN_NO_RING);
    if (r == 0)
        r = dmce_mconn_rpc(&k, DMCE_MSMP_OP_SESSIONS, NULL, 0, NULL, 0, buf, sizeof(buf), &n, NULL);
    dmce_mconn_close(&k);
    if (r < 0 || dmce_adm_sessions_count(buf, n, &count) < 0)
        return -1;
    int64_t sum = 0;
    for (uint32_t i = 0; i < count; i++) {
        dmce_adm_session_t e;
        if (dmce_adm_session_decode(buf, n, i, &e) < 0)
            return -1;
        sum += (int64_t)e.used;
    }
    return sum;
}

struct used_is {
    uint32_t id;
    int64_t want;
};

static int used_is(void *arg)
{
    struct used_is *u = arg;
    return sessions_used(u->id) == u->want;
}

/*
 * The allocations of a moved block are accounted to their owners' sessions
 * on the new owner (the source counts them by owner and hands the count
 * over with the block) and leave them on the old one: two clients' bytes in
 * the block, before and after, on both daemons.
 */
static void sessions_follow_the_block(void **state)
{
    (void)state;
    dmce_client_t *c[2] = {client(0), client(0)};
    static const uint32_t sizes[2][3] = {{100000, 200000, 300}, {50000, 7000, 1}};
    dmce_addr_t a[2][3];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++)
            assert_int_equal(dmce_malloc(c[k], sizes[k][i], &a[k][i]), 0);
    assert_true(harness_wait(two_copies, NULL, 60000));
    dmce_disp_block_t e;
    assert_int_equal(dir_entry(a[0][0], &e), 0);
    uint32_t from = e.primary, to = 0;
    for (uint32_t id = 1; id <= 3 && !to; id++)
        if (id != from && id != e.mirror)
            to = id;
    assert_true(to != 0);
    int64_t moved = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) {
            dmce_disp_block_t x;
            assert_int_equal(dir_entry(a[k][i], &x), 0);
            moved += x.block == e.block ? sizes[k][i] : 0;
        }
    int64_t used_from = sessions_used(from), used_to = sessions_used(to);
    assert_true(used_from >= moved && used_to >= 0);
    struct job_wait w;
    assert_int_equal(migrate(e.block, to, &w.id), 0);
    assert_true(harness_wait(job_finished, &w, 30000));
    assert_int_equal(w.j.state, DMCE_ADM_JOB_DONE);
    assert_int_equal(primary_of(a[0][0]), to);
    struct used_is at_to = {to, used_to + moved}, at_from = {from, used_from - moved};
    assert_true(harness_wait(used_is, &at_to, 10000));
    assert_true(harness_wait(used_is, &at_from, 10000)); /* once the source forgets it */
    /* And a free there takes the bytes away again. */
    assert_int_equal(dmce_free(c[0], a[0][0]), 0);
    at_to.want -= sizes[0][0];
    assert_true(harness_wait(used_is, &at_to, 10000));
    for (int k = 0; k < 2; k++)
        dmce_disconnect(c[k]);
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
    /* -EBUSY while the new block is prefaulted or mirrored: ask again, as the dispatcher does. */
    int r;
    uint64_t end = dmce_now_ms() + 10000;
    while ((r = dmce_mconn_rpc_fds(&k, DMCE_MSMP_OP_HANDOFF, rq, sizeof(rq), resp, sizeof(resp), &n,
                                   fds, 2, &nfd)) == -EBUSY &&
           dmce_now_ms() < end)
        usleep(10000);
    assert_int_equal(r, 0);
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

/* ---- regression: refused by a daemon the block came back to ---------------------------------- */

/*
 * A dispatcher socket in front of the real one, for one client: it
 * forwards every request and, while `closed` is set, holds directory
 * requests back, so that the test can move a block between a daemon's
 * refusal and the client's next look at the directory.
 */
struct gate {
    char dir[64], path[96];
    int lfd;
    pthread_t th;
    atomic_int closed; /* hold directory requests */
    atomic_int held;   /* directory requests waiting at the gate now */
    atomic_int stop;
    int running; /* th started */
};

/* Serve one connection until it closes or the gate stops. */
static void gate_serve(struct gate *g, int fd, dmce_mconn_t *up, uint8_t *resp, size_t cap)
{
    static uint8_t payload[64 << 10];
    while (!atomic_load(&g->stop)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        uint8_t hb[DMCE_MSMP_HDR_SIZE];
        dmce_msmp_hdr_t h;
        if (dmce_read_full(fd, hb, sizeof(hb), dmce_now_ms() + 5000) < 0 ||
            dmce_msmp_hdr_decode(hb, sizeof(payload), &h) < 0 ||
            dmce_read_full(fd, payload, h.len, dmce_now_ms() + 5000) < 0)
            return;
        if (h.op == DMCE_MSMP_OP_DIRECTORY && atomic_load(&g->closed)) {
            atomic_fetch_add(&g->held, 1);
            while (atomic_load(&g->closed) && !atomic_load(&g->stop))
                usleep(1000);
            atomic_fetch_sub(&g->held, 1);
        }
        size_t n = 0;
        int r = dmce_mconn_rpc(up, h.op, payload, h.len, NULL, 0, resp, cap, &n, NULL);
        dmce_msmp_hdr_t rh = {.magic = DMCE_MSMP_MAGIC,
                              .version = DMCE_MSMP_VERSION,
                              .flags = DMCE_MSMP_FLAG_RESPONSE,
                              .op = h.op,
                              .req_id = h.req_id,
                              .len = r < 0 ? 0 : (uint32_t)n,
                              .status = r};
        dmce_msmp_hdr_encode(&rh, hb);
        if (dmce_write_full(fd, hb, sizeof(hb), dmce_now_ms() + 5000) < 0 ||
            dmce_write_full(fd, resp, rh.len, dmce_now_ms() + 5000) < 0)
            return;
    }
}

static void *gate_main(void *arg)
{
    struct gate *g = arg;
    dmce_mconn_t up;
    size_t cap = 4u << 20;
    uint8_t *resp = malloc(cap);
    if (!resp || dmce_mconn_init(&up, harness_disp_sock(), 30000, DMCE_MCONN_NO_RING) < 0) {
        free(resp);
        return NULL;
    }
    while (!atomic_load(&g->stop)) {
        struct pollfd pf = {.fd = g->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        gate_serve(g, fd, &up, resp, cap);
        close(fd);
    }
    dmce_mconn_close(&up);
    free(resp);
    return NULL;
}

static struct gate *G; /* the gate of the running test; owner: gate_open, gate_free */

/* A gate in a new directory of its own (a client's runtime_dir), with its thread running. */
static struct gate *gate_open(void)
{
    struct gate *g = G = calloc(1, sizeof(*g));
    assert_non_null(g);
    g->lfd = -1;
    snprintf(g->dir, sizeof(g->dir), "/tmp/dmce-gate.XXXXXX");
    assert_non_null(mkdtemp(g->dir));
    snprintf(g->path, sizeof(g->path), "%s/dispatcher.sock", g->dir);
    g->lfd = dmce_unix_listen(g->path, 8);
    assert_true(g->lfd >= 0);
    assert_int_equal(pthread_create(&g->th, NULL, gate_main, g), 0);
    g->running = 1;
    return g;
}

/* Open the gate for good, stop its thread, remove its directory. Idempotent. */
static void gate_free(void)
{
    struct gate *g = G;
    if (!g)
        return;
    atomic_store(&g->closed, 0);
    atomic_store(&g->stop, 1);
    if (g->running)
        pthread_join(g->th, NULL);
    if (g->lfd >= 0)
        close(g->lfd);
    unlink(g->path);
    rmdir(g->dir);
    free(g);
    G = NULL;
}

static int gate_holds(void *arg)
{
    return atomic_load(&((struct gate *)arg)->held) > 0;
}

struct raw_read {
    dmce_client_t *c;
    dmce_addr_t a;
    int want;
};

/* A direct client (no dispatcher) of one daemon gets `want` reading the address. */
static int raw_reads(void *arg)
{
    struct raw_read *rr = arg;
    uint8_t b[64];
    return dmce_read(rr->c, rr->a, b, sizeof(b)) == rr->want;
}

struct gated_write {
    dmce_client_t *c;
    dmce_addr_t a;
    const uint8_t *buf;
    int r;
};

static void *gated_write_main(void *arg)
{
    struct gated_write *gw = arg;
    gw->r = dmce_write(gw->c, gw->a, gw->buf, 4096);
    return NULL;
}

static int move_to(dmce_addr_t a, uint32_t to)
{
    dmce_addr_parts_t parts;
    uint32_t job;
    struct job_wait jw;
    if (dmce_addr_decode(dmce_client_layout(observer), a, &parts) < 0 ||
        migrate(parts.block, to, &job) < 0)
        return -1;
    jw.id = job;
    if (!harness_wait(job_finished, &jw, 30000))
        return -1;
    return jw.j.state == DMCE_ADM_JOB_DONE ? 0 : -1;
}

/*
 * A client's request reaches the block's old owner S after a move S -> T
 * (DMCE_ENOBLOCK); before the client looks at the directory, the block
 * moves back T -> S. The directory then names S, the daemon that refused:
 * libdmce gave up with DMCE_ENOBLOCK (reported from a benchmark moving a
 * block back and forth under writers: "a descheduled writer refreshes the
 * directory, finds the block back on the daemon that refused it, and
 * gives up"). It must send the write again. The gate holds the client's
 * directory request while the block moves back: no timing involved.
 */
static void enoblock_after_move_back(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_MAP);
    dmce_addr_t a;
    uint8_t one[4096], two[4096], back[4096];
    memset(one, 0x11, sizeof(one));
    memset(two, 0x22, sizeof(two));
    assert_int_equal(dmce_malloc(c, sizeof(one), &a), 0);
    assert_int_equal(dmce_write(c, a, one, sizeof(one)), 0);
    assert_true(harness_wait(two_copies, NULL, 30000));
    dmce_disp_block_t e;
    assert_int_equal(dir_entry(a, &e), 0);
    uint32_t s = e.primary, t = 0; /* t: neither the primary nor the mirror */
    for (uint32_t i = 1; i <= 3 && !t; i++)
        if (i != e.primary && i != e.mirror)
            t = i;
    assert_true(s >= 1 && t >= 1);

    /* The client under test talks to the dispatcher through the gate. */
    struct gate *g = gate_open();
    dmce_client_t *x;
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.runtime_dir = g->dir,
                                                         .flags = DMCE_CONNECT_NO_MAP,
                                                         .io_timeout_ms = 60000},
                                  &x),
                     0);
    assert_int_equal(dmce_setup(x, 1 * MIB, DMCE_SETUP_PARTIAL, NULL, NULL), 0);
    assert_int_equal(dmce_write(x, a, one, sizeof(one)), 0); /* x knows the block on s */

    /* A direct client of s watches what s answers. */
    dmce_client_t *raw;
    const char *sp = harness_sock((int)s);
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.sockets = &sp,
                                                         .nsockets = 1,
                                                         .flags = DMCE_CONNECT_NO_MAP |
                                                                  DMCE_CONNECT_NO_DISPATCHER},
                                  &raw),
                     0);
    assert_int_equal(dmce_setup(raw, 4096, DMCE_SETUP_PARTIAL, NULL, NULL), 0);

    assert_int_equal(move_to(a, t), 0);
    struct raw_read gone = {raw, a, DMCE_ENOBLOCK}; /* released: not frozen any more */
    assert_true(harness_wait(raw_reads, &gone, 10000));

    /* x's write is refused by s; x's look at the directory waits at the gate. */
    atomic_store(&g->closed, 1);
    struct gated_write gw = {x, a, two, 1};
    pthread_t th;
    int started = pthread_create(&th, NULL, gated_write_main, &gw) == 0;
    int held = started && harness_wait(gate_holds, g, 10000);
    int moved_back = held && move_to(a, s) == 0;
    struct raw_read home = {raw, a, 0};
    int served = moved_back && harness_wait(raw_reads, &home, 10000);
    atomic_store(&g->closed, 0);
    if (started)
        pthread_join(th, NULL);
    dmce_disconnect(raw);
    dmce_disconnect(x);
    gate_free();
    assert_true(started);
    assert_true(held);
    assert_true(moved_back);
    assert_true(served);

    /* The directory names s again, the daemon that refused: the write goes there. */
    assert_int_equal(gw.r, 0);
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(two, back, sizeof(back));
    assert_int_equal(primary_of(a), s);
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
        cmocka_unit_test_setup_teardown(to_mirror_holder, setup_small, teardown),
        cmocka_unit_test_setup_teardown(sessions_follow_the_block, setup_small, teardown),
        cmocka_unit_test_setup_teardown(enoblock_after_move_back, setup_small, teardown),
        cmocka_unit_test_setup_teardown(load_outlasts_budget, setup_small, teardown),
        cmocka_unit_test_setup_teardown(under_load, setup_big, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
