/*
 * bench_migrate.c - dmce-bench-migrate: live migration by owner change
 * (issue 9; docs/migration.md), measured on a dmce-dispatcher and three
 * memory daemons that perf/run starts in a runtime dir of their own, with
 * mirroring on (the default with two or more daemons).
 *
 * Every run first makes the block that moves: 1 MiB allocations of one
 * client (the owner, kept connected to the end) on one daemon, all in one
 * block, --fill bytes of it (default half the block), each written
 * through dmce_write; then it waits (bounded) until the cluster has every
 * block mirrored and no prefault left, so that no move waits for a copy.
 * The block moves between its primary and the daemon that holds neither
 * it nor its mirror, so that it keeps its two copies: an owner change
 * (docs/migration.md), no byte copied. Moves are asked of the dispatcher
 * with its admin operations (msmp_admin.h: migrate 40, jobs 42, daemons
 * 43; msmp_dispatch.h: directory 34) on one socket connection of this
 * process (DMCE_MCONN_NO_RING, as tests/integration/test_migrate.c).
 *
 *   --bench move    --moves N moves back and forth, one at a time, nothing
 *                   else running. Per move: impl dmce, the time from the
 *                   migrate request to the end of the first 4 KiB
 *                   dmce_write of the owner that the new owner served
 *                   (the owner writes back to back from the request on;
 *                   dmce_daemon_of says which daemon it went to); impl
 *                   dispatcher, the job's took_us (adopt sent -> directory
 *                   switched); impl rpc, a bare round trip to the
 *                   dispatcher on the same connection (the jobs op, 5
 *                   after each move): what of the first two is RPC cost.
 *                   Then bench copy: memcpy of the block's size (impl
 *                   limit: both buffers touched; memcpy-fresh: into a new
 *                   memfd mapping), the reference for a copying move,
 *                   which dmce does not have on one host.
 *   --bench write   --clients writer processes (default connections) do
 *                   --size dmce_write in a loop on allocations of the
 *                   block (writer w on allocations w, w + clients, ...),
 *                   each op timed by the frame; impl no-moves: the block
 *                   stays; impl dmce: a move starts every --interval-ms.
 *                   Their repetitions interleave (dmce_bench_run_pair),
 *                   each --duration seconds; the moves are the frame's
 *                   tick. Bench stall: per interval (one move each, or
 *                   none), the longest write of any writer started in it.
 *                   Bench move[writers=N]: the moves' took_us under load.
 *   --bench mapped  the same with writers that store --size bytes through
 *                   a dmce_map pointer (a memcpy, no call): ops/s while
 *                   the block moves against while it stays. The owner
 *                   then reads each writer's first slot back through
 *                   dmce_read: the pointer wrote the pages the new owner
 *                   serves.
 *
 * At the end the block is moved back to the daemon it was made on (when
 * it is elsewhere), and the allocations are freed: the next run finds the
 * cluster as this one found it.
 *
 * Every wait is bounded (a move: 10 s; the cluster: 30 s); every loop is
 * bounded in count and time. Nothing here kills or starts a process: a
 * failed move leaves the block where the dispatcher says it is.
 *
 * A write refused with a move's error (DMCE_ENOBLOCK, DMCE_EMOVING: libdmce
 * is to hide a move from its caller) is counted and sent again, at most
 * WRITE_TRIES times; the results are given all the same, and the program
 * then says how many there were and exits 1, so that perf/run records a
 * failure.
 *
 * Exit status: 0 every result was given, 1 a measurement failed or a write
 * was refused, 2 bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>

#include "bench.h"
#include "hist.h"
#include "msmp_admin.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "util.h"

#define PROG "dmce-bench-migrate"
#define CHUNK (UINT64_C(1) << 20) /* one allocation of the block */
#define MAX_ALLOCS 4096u          /* 4 GiB of allocations */
#define MAX_WRITERS 8u
#define MAX_INTERVALS 4096u
#define NO_INTERVAL UINT32_MAX
#define READY_MS 30000u   /* the cluster mirrored, prefault done */
#define MOVE_MS 10000u    /* one move: its job done, the first write on the new owner */
#define ADMIN_MS 5000u    /* one admin request */
#define RPC_SAMPLES 5u    /* bare round trips to the dispatcher after each move */
#define JOB_POLL_US 1000u /* polls of a running job: few, not to slow it down */
#define MAPPED_BATCH 16u  /* stores through the pointer per latency sample */
#define WRITE_TRIES 100u  /* a write refused with a move's error: sent again, at most */
#define RESP_MAX (DMCE_ADM_JOBS_HDR + 4096u * DMCE_ADM_JOB_SIZE) /* the largest answer */

typedef enum { BENCH_MOVE, BENCH_WRITE, BENCH_MAPPED } bench_t;

/* Shared with the writer processes: made before they fork (owner: main). */
typedef struct shared {
    _Atomic uint32_t interval; /* writes started now belong to it; NO_INTERVAL: to none */
    atomic_uint refused[2];    /* writes refused (a move's error reached the caller); [1]: moving */
    atomic_int first_refusal;  /* the first such error */
    uint64_t stall[MAX_WRITERS][MAX_INTERVALS]; /* each writer's longest write per interval, ns */
} shared_t;

typedef struct mig_ctx {
    /* options */
    bench_t bench;
    int bench_set;
    const char *runtime_dir;
    uint64_t moves;
    uint64_t interval_ms;
    uint64_t fill; /* 0: half the block */
    uint64_t size;
    /* main's: owner: main, released at its end */
    dmce_client_t *owner; /* holds the allocations; the move bench's writes */
    dmce_mconn_t admin;   /* to the dispatcher (once admin_open) */
    int admin_open;
    uint8_t *resp; /* RESP_MAX bytes: admin answers */
    uint64_t block_size;
    uint32_t block;                   /* the block that moves */
    uint32_t ends[2];                 /* the daemons it moves between */
    uint32_t mirror;                  /* its mirror's holder (stays) */
    uint32_t at;                      /* its primary now */
    uint32_t id_of[DMCE_MAX_DAEMONS]; /* owner's daemon index -> daemon ID */
    unsigned nconn;
    dmce_addr_t a[MAX_ALLOCS];
    unsigned nalloc;
    unsigned writers; /* --clients of the write and mapped benches */
    shared_t *sh;
    /* the tick (main) */
    uint64_t run_start, next_ns;
    uint32_t nintervals;
    unsigned char moved[MAX_INTERVALS]; /* interval i: a move started it */
    dmce_hist_t *took_load;             /* took_us of the moves under load, ns */
    int refused;                        /* a writer saw a move's error: exit 1 at the end */
    /* per writer process, setup .. teardown */
    dmce_client_t *client;
    unsigned me;
    int timing; /* in a timed repetition (not the warm-up) */
    unsigned char *buf, *back, *map;
} mig_ctx_t;

/* One side of a pair: the same writers, the block moving or not (in the writers too). */
typedef struct side {
    mig_ctx_t *x;
    int moving;
} side_t;

/* ---- options ------------------------------------------------------------------------ */

static int set_bench(void *u, const char *v)
{
    static const char *const names[] = {"move", "write", "mapped"}; /* bench_t's order */
    mig_ctx_t *x = u;
    unsigned k;
    if (dmce_bench_opt_choice(PROG, "bench", v, names, 3, &k) < 0)
        return -1;
    x->bench = (bench_t)k;
    x->bench_set = 1;
    return 0;
}

static int set_runtime_dir(void *u, const char *v)
{
    ((mig_ctx_t *)u)->runtime_dir = v;
    return 0;
}

static int set_moves(void *u, const char *v)
{
    return dmce_bench_opt_size(PROG, "moves", v, 1, 1000, &((mig_ctx_t *)u)->moves);
}

static int set_interval(void *u, const char *v)
{
    return dmce_bench_opt_size(PROG, "interval-ms", v, 1, 60000, &((mig_ctx_t *)u)->interval_ms);
}

static int set_fill(void *u, const char *v)
{
    return dmce_bench_opt_size(PROG, "fill", v, CHUNK, CHUNK * MAX_ALLOCS, &((mig_ctx_t *)u)->fill);
}

static int set_size(void *u, const char *v)
{
    return dmce_bench_opt_size(PROG, "size", v, 8, CHUNK, &((mig_ctx_t *)u)->size);
}

static const char *mig_strerror(int err)
{
    return dmce_strerror(err);
}

/* ---- the dispatcher's admin operations ----------------------------------------------- */

/* One request on the admin connection; the answer in x->resp[0..*n). */
static int admin_call(mig_ctx_t *x, uint16_t op, const void *p, size_t l, size_t *n)
{
    *n = 0;
    return dmce_mconn_rpc(&x->admin, op, p, l, NULL, 0, x->resp, RESP_MAX, n, NULL);
}

/* Queue a move of the block to daemon `to`: the job's ID in *job. */
static int migrate(mig_ctx_t *x, uint32_t to, uint32_t *job)
{
    uint8_t rq[DMCE_ADM_MIGRATE_SIZE];
    dmce_adm_migrate_encode(&(dmce_adm_migrate_t){.block = x->block, .to = to, .node = -1}, rq);
    size_t n;
    int r = admin_call(x, DMCE_MSMP_OP_MIGRATE, rq, sizeof(rq), &n);
    return r < 0 ? r : dmce_disp_u32_decode(x->resp, n, job);
}

/* Job `id` in *j (-ENOENT: not listed); *njobs: how many the dispatcher listed. */
static int job_get(mig_ctx_t *x, uint32_t id, dmce_adm_job_t *j, uint32_t *njobs)
{
    size_t n;
    uint32_t count = 0;
    int r = admin_call(x, DMCE_MSMP_OP_JOBS, NULL, 0, &n);
    if (r == 0)
        r = dmce_adm_jobs_count(x->resp, n, &count);
    if (njobs)
        *njobs = count;
    for (uint32_t i = 0; r == 0 && i < count; i++)
        if (dmce_adm_job_decode(x->resp, n, i, j) == 0 && j->id == id)
            return 0;
    return r < 0 ? r : -ENOENT;
}

/* Until job `id` is done (0) or failed (its error), at most MOVE_MS. */
static int job_wait(mig_ctx_t *x, uint32_t id, dmce_adm_job_t *j)
{
    uint64_t deadline = dmce_now_ms() + MOVE_MS;
    for (;;) {
        int r = job_get(x, id, j, NULL);
        if (r < 0)
            return r;
        if (j->state == DMCE_ADM_JOB_DONE)
            return 0;
        if (j->state == DMCE_ADM_JOB_FAILED)
            return j->err < 0 ? j->err : -EIO;
        if (dmce_now_ms() >= deadline)
            return -ETIMEDOUT;
        dmce_bench_sleep_us(JOB_POLL_US);
    }
}

/* The block's directory entry. */
static int block_entry(mig_ctx_t *x, dmce_disp_block_t *e)
{
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t n;
    dmce_disp_dir_hdr_t h;
    int r = admin_call(x, DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), &n);
    if (r == 0)
        r = dmce_disp_dir_hdr_decode(x->resp, n, &h);
    for (uint32_t i = 0; r == 0 && i < h.nblocks; i++)
        if (dmce_disp_block_decode(x->resp, n, i, e) == 0 && e->block == x->block)
            return 0;
    return r < 0 ? r : DMCE_ENOBLOCK;
}

/* The daemons' block size (the same for all: one --block-size). */
static int daemons_block_size(mig_ctx_t *x)
{
    size_t n;
    uint32_t count = 0;
    int r = admin_call(x, DMCE_MSMP_OP_DAEMONS, NULL, 0, &n);
    if (r == 0)
        r = dmce_adm_daemons_count(x->resp, n, &count);
    for (uint32_t i = 0; r == 0 && i < count; i++) {
        dmce_adm_daemon_t d;
        if ((r = dmce_adm_daemon_decode(x->resp, n, i, &d)) < 0)
            break;
        if (x->block_size && d.block_size != x->block_size) {
            fprintf(stderr, PROG ": memd[%u] has %llu-byte blocks, another %llu\n", d.id,
                    (unsigned long long)d.block_size, (unsigned long long)x->block_size);
            return -EINVAL;
        }
        x->block_size = d.block_size;
    }
    return r < 0 ? r : x->block_size ? 0 : -ENODEV;
}

/* ---- the block: made, moved ------------------------------------------------------------ */

static void fill_pattern(unsigned char *p, uint64_t n, uint64_t seed)
{
    for (uint64_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 131u + seed * 7u + 1u);
}

static uint32_t block_of(const mig_ctx_t *x, dmce_addr_t a)
{
    dmce_addr_parts_t p;
    return dmce_addr_decode(dmce_client_layout(x->owner), a, &p) == 0 ? p.block : 0;
}

/* The daemon ID serving a as the owner knows it (0: unknown). */
static uint32_t owner_daemon_of(const mig_ctx_t *x, dmce_addr_t a)
{
    int k = dmce_daemon_of(x->owner, a);
    return k >= 0 && (unsigned)k < x->nconn ? x->id_of[k] : 0;
}

/*
 * The block: --fill bytes in 1 MiB allocations of the owner, all in one
 * block of one daemon, written; then its ends and its mirror. An
 * allocation that lands in another block is freed and ends the fill.
 */
static int make_block(mig_ctx_t *x)
{
    uint64_t want = x->fill ? x->fill : x->block_size / 2;
    unsigned char *v = malloc(CHUNK);
    int rc = -ENOMEM, k = -1;
    const char *what = "out of memory";
    if (!v)
        goto fail;
    if (want > x->block_size - CHUNK) {
        fprintf(stderr, PROG ": --fill %llu is more than a %llu-byte block holds\n",
                (unsigned long long)want, (unsigned long long)x->block_size);
        free(v);
        return -EINVAL;
    }
    while ((uint64_t)x->nalloc * CHUNK < want && x->nalloc < MAX_ALLOCS) {
        dmce_addr_t a;
        what = "dmce_malloc";
        rc = k < 0 ? dmce_malloc(x->owner, CHUNK, &a)
                   : dmce_malloc_on(x->owner, (unsigned)k, CHUNK, &a);
        if (rc < 0)
            goto fail;
        if (k < 0) {
            x->block = block_of(x, a);
            k = dmce_daemon_of(x->owner, a);
            what = "dmce_daemon_of";
            if ((rc = k) < 0) {
                dmce_free(x->owner, a);
                goto fail;
            }
        } else if (block_of(x, a) != x->block) {
            dmce_free(x->owner, a); /* the block is full: what we have is the fill */
            break;
        }
        x->a[x->nalloc++] = a;
        fill_pattern(v, CHUNK, x->nalloc);
        what = "dmce_write (the fill)";
        if ((rc = dmce_write(x->owner, a, v, CHUNK)) < 0)
            goto fail;
    }
    free(v);
    v = NULL;
    if (x->nalloc < 2) {
        fprintf(stderr, PROG ": only %u allocation(s) fit in block %u\n", x->nalloc, x->block);
        return -ENOSPC;
    }
    dmce_disp_block_t e;
    what = "the block's directory entry";
    if ((rc = block_entry(x, &e)) < 0)
        goto fail;
    if (!e.mirror) {
        fprintf(stderr, PROG ": block %u has no mirror: the cluster must mirror\n", x->block);
        return -EINVAL;
    }
    x->mirror = e.mirror;
    x->ends[0] = x->at = e.primary;
    for (unsigned i = 0; i < x->nconn && !x->ends[1]; i++)
        if (x->id_of[i] != e.primary && x->id_of[i] != e.mirror)
            x->ends[1] = x->id_of[i];
    if (!x->ends[1]) {
        fprintf(stderr, PROG ": no third daemon to move block %u to\n", x->block);
        return -ENODEV;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": making the block: %s: %s\n", what, dmce_strerror(rc));
    free(v);
    return rc;
}

/*
 * Move the block to its other end: migrate, then (with probe) the owner
 * writes probe (4 KiB) back to back to allocation `slot` until a write is
 * served by the new owner (*client_ns: request -> that write's end), then
 * the job's took_us in *took_us. Checks that the directory names the new
 * owner and the same mirror.
 */
static int move_block(mig_ctx_t *x, const unsigned char *probe, unsigned slot, uint64_t *client_ns,
                      uint64_t *took_us)
{
    const uint32_t from = x->at, to = from == x->ends[0] ? x->ends[1] : x->ends[0];
    dmce_adm_job_t j;
    dmce_disp_block_t e;
    uint32_t job = 0;
    const char *what = "migrate";
    uint64_t t0 = dmce_now_ns();
    int r = migrate(x, to, &job);
    if (r < 0)
        goto fail;
    if (probe) {
        dmce_addr_t a = x->a[slot % x->nalloc];
        uint64_t deadline = t0 + (uint64_t)MOVE_MS * 1000000u, t1;
        what = "dmce_write (the probe)";
        for (;;) {
            r = dmce_write(x->owner, a, probe, x->size);
            if (r == DMCE_ENOBLOCK || r == DMCE_EMOVING) { /* counted, sent again (write_op) */
                atomic_fetch_add(&x->sh->refused[1], 1);
                int none = 0;
                atomic_compare_exchange_strong(&x->sh->first_refusal, &none, r);
            } else if (r < 0) {
                goto fail;
            }
            t1 = dmce_now_ns();
            if (r == 0 && owner_daemon_of(x, a) == to)
                break;
            if (t1 >= deadline) {
                r = -ETIMEDOUT;
                goto fail;
            }
        }
        *client_ns = t1 - t0;
    }
    what = "the job";
    if ((r = job_wait(x, job, &j)) < 0)
        goto fail;
    x->at = to;
    *took_us = j.took_us;
    what = "the directory";
    if ((r = block_entry(x, &e)) < 0)
        goto fail;
    if (j.from != from || j.to != to || e.primary != to || e.mirror != x->mirror) {
        fprintf(stderr,
                PROG ": block %u: job %u moved it memd[%u] -> memd[%u]; the directory names "
                     "memd[%u], mirror memd[%u]; expected memd[%u] -> memd[%u], mirror memd[%u]\n",
                x->block, job, j.from, j.to, e.primary, e.mirror, from, to, x->mirror);
        return -EPROTO;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": move of block %u, memd[%u] -> memd[%u] (job %u): %s: %s\n", x->block,
            from, to, job, what, dmce_strerror(r));
    /* Where the block is now, as far as the dispatcher knows (its job ended or not). */
    if (job && job_wait(x, job, &j) != -ETIMEDOUT && block_entry(x, &e) == 0)
        x->at = e.primary;
    return r;
}

/* ---- bench move -------------------------------------------------------------------- */

/* A latency result of this area: params daemons and writers (move), or size and clients. */
static int latency_case(const mig_ctx_t *x, dmce_bench_case_t *c, const char *bench,
                        const char *impl, int move_writers)
{
    if (dmce_bench_case_init(c, "migration", bench, impl) < 0)
        return -EINVAL;
    if (move_writers >= 0)
        return dmce_perf_param_num(&c->res, "daemons", 3) < 0 ||
                       dmce_perf_param_num(&c->res, "writers", move_writers) < 0
                   ? -EINVAL
                   : 0;
    return dmce_perf_param_num(&c->res, "size", (double)x->size) < 0 ||
                   dmce_perf_param_num(&c->res, "clients", x->writers) < 0
               ? -EINVAL
               : 0;
}

/* h's samples (ns) as c's figures, the maximum in the note; printed. */
static int emit_latency(const dmce_bench_opts_t *o, dmce_bench_case_t *c, const dmce_hist_t *h,
                        const char *note)
{
    dmce_bench_result_latency(&c->res, h);
    snprintf(c->res.note, sizeof(c->res.note), "%s; max %.1f us", note,
             (double)dmce_hist_max(h) / 1e3);
    fprintf(o->human, "%s %s: %llu samples, p50 %.1f us, p99 %.1f us, max %.1f us\n", c->res.bench,
            c->res.impl, (unsigned long long)dmce_hist_count(h), c->res.p50_us.median,
            c->res.p99_us.median, (double)dmce_hist_max(h) / 1e3);
    return dmce_bench_emit(o, &c->res);
}

/* The reference for a copying move: memcpy of the block's size, touched and fresh. */
static int copy_reference(mig_ctx_t *x, const dmce_bench_opts_t *o)
{
    const uint64_t n = x->block_size;
    unsigned char *src = malloc(n), *dst = malloc(n);
    double bytes[DMCE_PERF_MAX_REPS], secs[DMCE_PERF_MAX_REPS];
    int rc = -ENOMEM;
    if (!src || !dst)
        goto out;
    fill_pattern(src, n, 1);
    for (unsigned i = 0; i < o->reps; i++)
        bytes[i] = (double)n;
    static const char *const impl[2] = {"limit", "memcpy-fresh"};
    static const char *const note[2] = {
        "memcpy of a block's bytes, both buffers touched: no copying move on one host "
        "(owner change)",
        "memcpy of a block's bytes into a fresh memfd mapping (first touch), as into a new object"};
    for (int fresh = 0; fresh < 2; fresh++) {
        dmce_bench_case_t c;
        if ((rc = dmce_bench_memcpy(src, dst, n, fresh, o->reps, secs)) < 0) {
            fprintf(stderr, PROG ": memcpy: %s\n", strerror(-rc));
            goto out;
        }
        rc = -EINVAL;
        if (dmce_bench_case_init(&c, "migration", "copy", impl[fresh]) < 0 ||
            dmce_perf_param_num(&c.res, "size", (double)n) < 0)
            goto out;
        dmce_bench_result_rates(&c.res, bytes, secs, o->reps, (double)n);
        snprintf(c.res.note, sizeof(c.res.note), "%s", note[fresh]);
        fprintf(o->human, "copy %s: %.0f MiB, %.3f GB/s (%.3f..%.3f)\n", impl[fresh],
                (double)n / (1 << 20), c.res.gb_per_s.median, c.res.gb_per_s.min,
                c.res.gb_per_s.max);
        if ((rc = dmce_bench_emit(o, &c.res)) < 0)
            goto out;
    }
out:
    free(src);
    free(dst);
    return rc;
}

static int run_moves(mig_ctx_t *x, const dmce_bench_opts_t *o)
{
    dmce_hist_t *h = calloc(3, sizeof(*h)); /* owner: this function; client, dispatcher, rpc */
    unsigned char *probe = malloc(x->size);
    int rc = -ENOMEM;
    uint32_t njobs = 0;
    if (!h || !probe)
        goto out;
    for (int i = 0; i < 3; i++)
        dmce_hist_init(&h[i]);
    fill_pattern(probe, x->size, 0);
    fprintf(o->human,
            "move: block %u (%llu MiB, %u MiB in %u allocations) %u times between memd[%u] and "
            "memd[%u]; its mirror stays on memd[%u]\n",
            x->block, (unsigned long long)(x->block_size >> 20), x->nalloc, x->nalloc,
            (unsigned)x->moves, x->ends[0], x->ends[1], x->mirror);
    fprintf(o->human, "%5s %6s %6s %12s %12s %10s\n", "move", "from", "to", "client us", "took us",
            "rpc us");
    for (unsigned m = 0; m < x->moves; m++) {
        uint32_t from = x->at;
        uint64_t client_ns = 0, took_us = 0, rpc_min = UINT64_MAX;
        probe[0] = (unsigned char)m;
        if ((rc = move_block(x, probe, m, &client_ns, &took_us)) < 0)
            goto out;
        dmce_hist_record(&h[0], client_ns);
        dmce_hist_record(&h[1], took_us * 1000u);
        for (unsigned i = 0; i < RPC_SAMPLES; i++) {
            dmce_adm_job_t j;
            uint64_t t0 = dmce_now_ns();
            if ((rc = job_get(x, 0, &j, &njobs)) < 0 && rc != -ENOENT) {
                fprintf(stderr, PROG ": the jobs op: %s\n", dmce_strerror(rc));
                goto out;
            }
            uint64_t t = dmce_now_ns() - t0;
            dmce_hist_record(&h[2], t);
            rpc_min = DMCE_MIN(rpc_min, t);
        }
        fprintf(o->human, "%5u %6u %6u %12.1f %12llu %10.1f\n", m + 1, from, x->at,
                (double)client_ns / 1e3, (unsigned long long)took_us, (double)rpc_min / 1e3);
    }
    static const char *const impl[3] = {"dmce", "dispatcher", "rpc"};
    char note[3][DMCE_PERF_TEXT_MAX];
    snprintf(note[0], sizeof(note[0]),
             "migrate request -> first %llu-byte dmce_write served by the new owner; %llu MiB "
             "block",
             (unsigned long long)x->size, (unsigned long long)(x->block_size >> 20));
    snprintf(note[1], sizeof(note[1]), "the job's took_us: adopt sent -> directory switched");
    snprintf(note[2], sizeof(note[2]),
             "bare round trip to the dispatcher: the jobs op (%u jobs), %u after each move", njobs,
             RPC_SAMPLES);
    for (int k = 0; k < 3; k++) {
        dmce_bench_case_t c;
        if ((rc = latency_case(x, &c, "move", impl[k], 0)) < 0 ||
            (rc = emit_latency(o, &c, &h[k], note[k])) < 0)
            goto out;
    }
    rc = copy_reference(x, o);
    if (atomic_load(&x->sh->refused[1])) {
        fprintf(stderr,
                PROG ": %u probe write(s) were refused (first: %s) and sent again: libdmce is "
                     "to hide a move from the caller\n",
                atomic_load(&x->sh->refused[1]), dmce_strerror(atomic_load(&x->sh->first_refusal)));
        x->refused = 1;
    }
out:
    free(h);
    free(probe);
    return rc;
}

/* ---- bench write, mapped: writer processes, the block moving or not ----------------------- */

static void writer_teardown(void *p, unsigned client)
{
    mig_ctx_t *x = ((side_t *)p)->x;
    if (x->map) {
        dmce_unmap(x->client, x->map);
        x->map = NULL;
    }
    dmce_bench_disconnect(PROG, (int)client, &x->client);
    free(x->buf);
    free(x->back);
    x->buf = x->back = NULL;
}

/* Writer w's i-th slot: allocations w, w + writers, ..., each slot by slot. */
static dmce_addr_t slot_addr(const mig_ctx_t *x, uint64_t i, uint64_t *off)
{
    const uint64_t per = CHUNK / x->size;
    *off = (i % per) * x->size;
    return x->a[(x->me + x->writers * (i / per)) % x->nalloc] + *off;
}

static int writer_setup(void *p, unsigned client)
{
    mig_ctx_t *x = ((side_t *)p)->x;
    const int mapped = x->bench == BENCH_MAPPED;
    x->me = client;
    x->timing = 0;
    atomic_store(&x->sh->interval, NO_INTERVAL); /* until the parent's first tick */
    const char *what;
    int rc = dmce_bench_client(x->runtime_dir, 0, &x->client, &what);
    if (rc < 0)
        goto fail;
    what = "out of memory";
    x->buf = malloc(x->size);
    x->back = malloc(x->size);
    if (!x->buf || !x->back) {
        rc = -ENOMEM;
        goto fail;
    }
    fill_pattern(x->buf, x->size, 1000u + client);
    uint64_t off;
    dmce_addr_t a = slot_addr(x, 0, &off);
    if (mapped) {
        what = "dmce_map";
        if ((rc = dmce_map(x->client, a - off, CHUNK, 0, (void **)&x->map)) < 0) {
            x->map = NULL;
            goto fail;
        }
        memcpy(x->map + off, x->buf, x->size);
    } else {
        what = "dmce_write (sanity check)";
        if ((rc = dmce_write(x->client, a, x->buf, x->size)) < 0)
            goto fail;
    }
    what = "dmce_read (sanity check)";
    if ((rc = dmce_read(x->client, a, x->back, x->size)) < 0)
        goto fail;
    if (memcmp(x->buf, x->back, x->size) != 0) {
        fprintf(stderr, PROG ": writer %u: sanity check: read back differs\n", client);
        rc = -EIO;
        goto fail_quiet;
    }
    /* The row's claim: a write is a message to the block's primary (the cluster mirrors). */
    dmce_client_stats_t cs;
    what = "dmce_client_stats";
    if ((rc = dmce_client_stats(x->client, &cs)) < 0)
        goto fail;
    if (!mapped && cs.msmp_writes == 0) {
        fprintf(stderr, PROG ": writer %u: the write went through the mapping, not to the daemon\n",
                client);
        rc = -EPROTO;
        goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": writer %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    writer_teardown(p, client);
    return rc;
}

static int writer_rep_begin(void *p, unsigned rep, uint64_t max_ops)
{
    (void)max_ops;
    ((side_t *)p)->x->timing = rep != DMCE_BENCH_WARMUP;
    return 0;
}

/*
 * One write; refused with a move's error (which libdmce is to hide: see
 * docs/migration.md), it is counted and sent again: the op's latency is
 * the time until the write is done.
 */
static int write_op(void *p, uint64_t i)
{
    const side_t *s = p;
    mig_ctx_t *x = s->x;
    uint64_t off;
    dmce_addr_t a = slot_addr(x, i, &off);
    uint32_t iv = atomic_load_explicit(&x->sh->interval, memory_order_relaxed);
    x->buf[0] = (unsigned char)i; /* not the same bytes every time */
    uint64_t t0 = dmce_now_ns();
    int rc;
    for (unsigned t = 0; t < WRITE_TRIES; t++) {
        rc = dmce_write(x->client, a, x->buf, x->size);
        if (rc != DMCE_ENOBLOCK && rc != DMCE_EMOVING)
            break;
        atomic_fetch_add(&x->sh->refused[s->moving ? 1 : 0], 1);
        int none = 0;
        atomic_compare_exchange_strong(&x->sh->first_refusal, &none, rc);
    }
    uint64_t t = dmce_now_ns() - t0;
    if (x->timing && iv < MAX_INTERVALS && t > x->sh->stall[x->me][iv])
        x->sh->stall[x->me][iv] = t; /* one writer per slot: no race */
    return rc;
}

static int mapped_op(void *p, uint64_t i)
{
    mig_ctx_t *x = ((side_t *)p)->x;
    uint64_t off = (i % (CHUNK / x->size)) * x->size;
    x->buf[0] = (unsigned char)i;
    memcpy(x->map + off, x->buf, x->size);
    return 0;
}

/*
 * In the parent while the writers run: a new interval every --interval-ms
 * from the repetition's start, and on the moving side a move at its start.
 */
static int move_tick(void *p, unsigned rep, uint64_t start_ns)
{
    side_t *s = p;
    mig_ctx_t *x = s->x;
    (void)rep;
    uint64_t now = dmce_now_ns();
    if (start_ns != x->run_start) {
        x->run_start = start_ns;
        x->next_ns = now;
    }
    if (now < x->next_ns)
        return 0;
    x->next_ns = now + (uint64_t)x->interval_ms * 1000000u;
    uint32_t iv = x->nintervals < MAX_INTERVALS ? x->nintervals++ : NO_INTERVAL;
    if (iv != NO_INTERVAL)
        x->moved[iv] = (unsigned char)s->moving;
    atomic_store(&x->sh->interval, iv);
    if (!s->moving)
        return 0;
    uint64_t took_us = 0;
    int r = move_block(x, NULL, 0, NULL, &took_us);
    if (r == 0)
        dmce_hist_record(x->took_load, took_us * 1000u);
    return r;
}

/* The stall results: per interval, the longest write of any writer, moving and not. */
static int emit_stalls(mig_ctx_t *x, const dmce_bench_opts_t *o)
{
    dmce_hist_t *h = calloc(2, sizeof(*h)); /* owner: this function; [1]: moving */
    if (!h)
        return -ENOMEM;
    dmce_hist_init(&h[0]);
    dmce_hist_init(&h[1]);
    for (uint32_t iv = 0; iv < x->nintervals; iv++) {
        uint64_t worst = 0;
        for (unsigned w = 0; w < x->writers; w++)
            worst = DMCE_MAX(worst, x->sh->stall[w][iv]);
        if (worst)
            dmce_hist_record(&h[x->moved[iv] ? 1 : 0], worst);
    }
    char note[DMCE_PERF_TEXT_MAX];
    int rc = 0;
    for (int k = 1; k >= 0 && rc == 0; k--) {
        dmce_bench_case_t c;
        snprintf(note, sizeof(note),
                 "per %u ms interval (%s), the longest %llu-byte dmce_write of %u writers",
                 (unsigned)x->interval_ms, k ? "a move at its start" : "no move",
                 (unsigned long long)x->size, x->writers);
        if ((rc = latency_case(x, &c, "stall", k ? "dmce" : "no-moves", -1)) == 0)
            rc = emit_latency(o, &c, &h[k], note);
    }
    free(h);
    return rc;
}

/* The writers' slot 0 reads back, through the owner, as the pointer stored it. */
static int check_mapped(mig_ctx_t *x)
{
    unsigned char *want = malloc(x->size), *got = malloc(x->size);
    int rc = want && got ? 0 : -ENOMEM;
    for (unsigned w = 0; w < x->writers && rc == 0; w++) {
        x->me = w;
        uint64_t off;
        dmce_addr_t a = slot_addr(x, 0, &off);
        fill_pattern(want, x->size, 1000u + w);
        if ((rc = dmce_read(x->owner, a, got, x->size)) < 0)
            fprintf(stderr, PROG ": reading writer %u's slot back: %s\n", w, dmce_strerror(rc));
        else if (memcmp(want + 1, got + 1, x->size - 1) != 0) {
            fprintf(stderr, PROG ": writer %u's stores through dmce_map do not read back\n", w);
            rc = -EIO;
        }
    }
    free(want);
    free(got);
    return rc;
}

static int run_writers(mig_ctx_t *x, const dmce_bench_opts_t *o)
{
    const int mapped = x->bench == BENCH_MAPPED;
    side_t sides[2] = {{x, 1}, {x, 0}};
    dmce_bench_case_t c[2];
    x->took_load = malloc(sizeof(*x->took_load)); /* owner: this function */
    if (!x->took_load)
        return -ENOMEM;
    dmce_hist_init(x->took_load);
    for (int k = 0; k < 2; k++) {
        if (latency_case(x, &c[k], mapped ? "mapped-write" : "write", k == 0 ? "dmce" : "no-moves",
                         -1) < 0) {
            free(x->took_load);
            return -EINVAL;
        }
        c[k].res.bytes_per_op = (double)x->size;
        c[k].batch = mapped ? MAPPED_BATCH : 1;
        char when[48] = "the block stays";
        if (k == 0)
            snprintf(when, sizeof(when), "a move every %u ms", (unsigned)x->interval_ms);
        if (mapped)
            snprintf(c[k].res.note, sizeof(c[k].res.note),
                     "stores through a dmce_map pointer (latency: mean of %u); %s", MAPPED_BATCH,
                     when);
        else
            snprintf(c[k].res.note, sizeof(c[k].res.note),
                     "dmce_write, a message to the primary (mirrored); %s", when);
        c[k].ctx = &sides[k];
        c[k].setup = writer_setup;
        c[k].rep_begin = writer_rep_begin;
        c[k].op = mapped ? mapped_op : write_op;
        c[k].teardown = writer_teardown;
        c[k].tick = move_tick;
        c[k].strerror = mig_strerror;
    }
    fprintf(o->human,
            "%s: %u writer process(es), %llu-byte ops on block %u (%llu MiB); a move between "
            "memd[%u] and memd[%u] every %u ms on the dmce side\n",
            mapped ? "mapped-write" : "write", o->clients, (unsigned long long)x->size, x->block,
            (unsigned long long)(x->block_size >> 20), x->ends[0], x->ends[1],
            (unsigned)x->interval_ms);
    int rc = dmce_bench_run_pair(&c[0], &c[1], o);
    unsigned refused[2] = {atomic_load(&x->sh->refused[0]), atomic_load(&x->sh->refused[1])};
    if (refused[0] || refused[1]) {
        fprintf(stderr,
                PROG ": %u write(s) while the block moved and %u while it stayed were refused "
                     "(first: %s) and sent again: libdmce is to hide a move from the caller\n",
                refused[1], refused[0], dmce_strerror(atomic_load(&x->sh->first_refusal)));
        x->refused = 1;
    }
    if (rc == 0 && mapped)
        rc = check_mapped(x);
    if (rc == 0 && !mapped)
        rc = emit_stalls(x, o);
    if (rc == 0) {
        char note[DMCE_PERF_TEXT_MAX];
        dmce_bench_case_t m;
        snprintf(note, sizeof(note), "the job's took_us, %u %s writer(s) running", o->clients,
                 mapped ? "mapped" : "dmce_write");
        if ((rc = latency_case(x, &m, mapped ? "move-mapped" : "move", "dispatcher",
                               (int)o->clients)) == 0)
            rc = emit_latency(o, &m, x->took_load, note);
    }
    free(x->took_load);
    x->took_load = NULL;
    return rc;
}

/* ---- main ------------------------------------------------------------------------------ */

/* The owner, the admin connection, the cluster ready, the block made. */
static int prepare(mig_ctx_t *x)
{
    const char *what;
    int rc = dmce_bench_client(x->runtime_dir, 0, &x->owner, &what);
    if (rc < 0) {
        fprintf(stderr, PROG ": %s %s: %s\n", what, x->runtime_dir, dmce_strerror(rc));
        return rc;
    }
    dmce_cluster_stats_t s;
    if ((rc = dmce_bench_wait_cluster(x->owner, PROG, x->runtime_dir, 3, 0, READY_MS, &s)) < 0)
        return rc;
    if (!s.mirroring) {
        fprintf(stderr, PROG ": the dispatcher does not mirror: run it with --mirroring=on\n");
        return -EINVAL;
    }
    x->nconn = DMCE_MIN(dmce_daemon_count(x->owner), DMCE_MAX_DAEMONS);
    for (unsigned i = 0; i < x->nconn; i++) {
        dmce_stats_t st;
        if ((rc = dmce_daemon_stats(x->owner, i, &st)) < 0) {
            fprintf(stderr, PROG ": dmce_daemon_stats: %s\n", dmce_strerror(rc));
            return rc;
        }
        x->id_of[i] = st.daemon_id;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/dispatcher.sock", x->runtime_dir);
    if ((rc = dmce_mconn_init(&x->admin, path, ADMIN_MS, DMCE_MCONN_NO_RING)) == 0)
        x->admin_open = 1;
    if (rc < 0 || (rc = daemons_block_size(x)) < 0) {
        fprintf(stderr, PROG ": the dispatcher's daemons (%s): %s\n", path, dmce_strerror(rc));
        return rc;
    }
    if ((rc = make_block(x)) < 0)
        return rc;
    if ((rc = dmce_bench_wait_prefault(x->owner, PROG, READY_MS / 1e3, NULL)) < 0 ||
        (rc = dmce_bench_wait_cluster(x->owner, PROG, x->runtime_dir, 3, 0, READY_MS, NULL)) < 0)
        return rc;
    return 0;
}

int main(int argc, char **argv)
{
    static mig_ctx_t x = {.moves = 20, .interval_ms = 50, .size = 4096};
    static const dmce_bench_opt_t own[] = {
        {"bench", "move|write|mapped", "what to measure (required; see the source's head)",
         set_bench},
        {"runtime-dir", "DIR", "the cluster: a dmce-dispatcher and 3 daemons (required)",
         set_runtime_dir},
        {"moves", "N", "move: moves back and forth, 1..1000 (default 20)", set_moves},
        {"interval-ms", "MS", "write, mapped: a move every MS ms (default 50)", set_interval},
        {"fill", "BYTES", "bytes of 1 MiB allocations in the block (default half of it)", set_fill},
        {"size", "BYTES", "bytes per write, a divisor of 1M (default 4096)", set_size},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "Live migration by owner change: move time (client's view, the dispatcher's, "
                   "a bare RPC), writers' latency while the block moves against while it stays, "
                   "and memcpy of a block as the reference for a copying move.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &x,
        .ops = 100000000,
        .warmup = 500,
        .reps = 3,
        .duration_s = 1.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!x.bench_set || !x.runtime_dir) {
        fprintf(stderr, PROG ": --bench and --runtime-dir are required\n");
        return 2;
    }
    if (o.clients > MAX_WRITERS || CHUNK % x.size) {
        fprintf(stderr, PROG ": at most %u --clients, and --size must divide 1 MiB\n", MAX_WRITERS);
        return 2;
    }
    x.writers = o.clients;
    signal(SIGPIPE, SIG_IGN);
    /* Owner: main. Before any writer forks: they share it. */
    x.sh = mmap(NULL, sizeof(*x.sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    x.resp = malloc(RESP_MAX);
    if (x.sh == MAP_FAILED || !x.resp) {
        fprintf(stderr, PROG ": out of memory\n");
        return 1;
    }
    if ((rc = prepare(&x)) == 0) {
        switch (x.bench) {
        case BENCH_MOVE: rc = run_moves(&x, &o); break;
        case BENCH_WRITE:
        case BENCH_MAPPED: rc = run_writers(&x, &o); break;
        }
        /*
         * The block back where it was made: a daemon whose only block moved
         * away makes its next block with the same ID (a collision: see
         * docs/perf.md), and the next step's malloc may go to it.
         */
        uint64_t took_us;
        int r = x.at != x.ends[0] ? move_block(&x, NULL, 0, NULL, &took_us) : 0;
        rc = rc < 0 ? rc : r;
    }
    for (unsigned i = 0; i < x.nalloc; i++) {
        int r = dmce_free(x.owner, x.a[i]);
        if (r < 0 && rc == 0) {
            fprintf(stderr, PROG ": dmce_free: %s\n", dmce_strerror(r));
            rc = r;
        }
    }
    dmce_bench_disconnect(PROG, -1, &x.owner);
    if (x.admin_open)
        dmce_mconn_close(&x.admin);
    free(x.resp);
    munmap(x.sh, sizeof(*x.sh));
    return rc < 0 || x.refused ? 1 : 0;
}
