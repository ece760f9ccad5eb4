/*
 * Integration: dmce-dispatcher on its own (docs/dispatcher.md). Real
 * dmce-memd processes register with a real dmce-dispatcher in a private
 * runtime directory; each group starts the cluster it needs.
 *
 *   policy_round_robin   mallocs spread evenly over three daemons; a setup
 *                        reserves an even share on each;
 *   policy_least_used    a daemon filled first gets no new allocations
 *                        while the others have more room;
 *   policy_numa_local    three daemons on three synthetic NUMA nodes: a
 *                        client on node k allocates on the daemon of node k;
 *   scalability          a full daemon picked by the policy refuses and the
 *                        next one takes the allocation; a malloc larger
 *                        than any block is -EMSGSIZE, one no daemon has
 *                        room for is DMCE_ENOMEM, and neither leaks;
 *   no_daemon            a dispatcher with no live daemon: connect, setup
 *                        and malloc fail with DMCE_ENODAEMON, at once;
 *   one_daemon_mirroring mirroring on with one daemon: the cluster stats
 *                        and the dispatcher's log warn, allocations work;
 *                        a second daemon clears the warning;
 *   fake_daemon          a process that registers like a daemon, then
 *                        answers garbage, stalls, or goes silent: it is
 *                        marked dead (and killed) within its deadline while
 *                        the real daemons keep serving a client;
 *   dispatcher_restart   kill -9 of the dispatcher: clients go on; a new
 *                        dispatcher rebuilds the directory from the daemons;
 *   spawn                the dispatcher starts its daemons, starts a killed
 *                        one again, and stops them all with itself;
 *   transparent          a client that talks to the dispatcher only, across
 *                        the death of its block's primary;
 *   bad_frames           malformed and unexpected frames on the
 *                        dispatcher's socket; a second dispatcher on the
 *                        same runtime directory exits non-zero.
 *
 * Every wait is for a condition with a bound (harness_wait); every loop is
 * bounded in count and time. The harness kills the daemons and unlinks the
 * shm objects at exit, also when a test fails half way.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "util.h"

#define KIB 1024ull
#define MIB (1024ull * 1024)

/* ---- the dispatcher, spoken to directly (no libdmce client needed) ------------------------ */

static int disp_rpc(uint16_t op, const void *p, size_t l, void *resp, size_t cap, size_t *rlen)
{
    dmce_mconn_t k;
    int r = dmce_mconn_init(&k, harness_disp_sock(), 2000, DMCE_MCONN_NO_RING);
    if (r == 0)
        r = dmce_mconn_rpc(&k, op, p, l, NULL, 0, resp, cap, rlen, NULL);
    dmce_mconn_close(&k);
    return r;
}

/* The dispatcher's stats, indexed by enum dmce_disp_stat. */
static int dstats(uint64_t v[DMCE_DSTAT_COUNT_])
{
    uint8_t resp[8 + 8 * 64];
    size_t n = 0;
    int r = disp_rpc(DMCE_MSMP_OP_DISP_STATS, NULL, 0, resp, sizeof(resp), &n);
    return r < 0 ? r : dmce_msmp_values_decode(resp, n, v, DMCE_DSTAT_COUNT_);
}

static uint64_t dstat(int idx)
{
    uint64_t v[DMCE_DSTAT_COUNT_];
    return dstats(v) == 0 ? v[idx] : UINT64_MAX;
}

#define DIR_DAEMONS 16
#define DIR_BLOCKS 512

struct dir {
    dmce_disp_dir_hdr_t h;
    dmce_disp_daemon_t d[DIR_DAEMONS];
    unsigned nd;
    dmce_disp_block_t b[DIR_BLOCKS];
    unsigned nb;
};

/* The directory: daemons and blocks. 0 or an error. */
static int disp_dir(struct dir *out)
{
    uint8_t rq[DMCE_DISP_DIR_REQ_SIZE];
    dmce_put_le32(rq, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(rq + 4, 0);
    size_t cap = dmce_disp_dir_size(64, 4096), n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    int r = disp_rpc(DMCE_MSMP_OP_DIRECTORY, rq, sizeof(rq), buf, cap, &n);
    if (r == 0)
        r = dmce_disp_dir_hdr_decode(buf, n, &out->h);
    out->nd = out->nb = 0;
    for (uint32_t i = 0; r == 0 && i < out->h.ndaemons && i < DIR_DAEMONS; i++)
        if ((r = dmce_disp_daemon_decode(buf, n, i, &out->d[i])) == 0)
            out->nd++;
    for (uint32_t i = 0; r == 0 && i < out->h.nblocks && i < DIR_BLOCKS; i++)
        if ((r = dmce_disp_block_decode(buf, n, i, &out->b[i])) == 0)
            out->nb++;
    free(buf);
    return r;
}

static const dmce_disp_daemon_t *dir_daemon(const struct dir *d, uint32_t id)
{
    for (unsigned i = 0; i < d->nd; i++)
        if (d->d[i].id == id)
            return &d->d[i];
    return NULL;
}

/* The primary of the block holding addr, per the dispatcher's directory; 0 if none. */
static uint32_t primary_of(dmce_addr_t addr)
{
    dmce_addr_parts_t p;
    static struct dir d;
    if (dmce_addr_decode(DMCE_LAYOUT_12_12_40, addr, &p) < 0 || disp_dir(&d) < 0)
        return 0;
    for (unsigned i = 0; i < d.nb; i++)
        if (d.b[i].block == p.block)
            return d.b[i].primary;
    return 0;
}

/* ---- conditions for harness_wait ------------------------------------------------------------ */

struct dcond {
    int idx; /* enum dmce_disp_stat */
    uint64_t val;
};

static int dstat_eq(void *arg)
{
    const struct dcond *c = arg;
    return dstat(c->idx) == c->val;
}

static int dstat_ge(void *arg)
{
    const struct dcond *c = arg;
    uint64_t v = dstat(c->idx);
    return v != UINT64_MAX && v >= c->val;
}

static int wait_alive(uint64_t n, unsigned ms)
{
    struct dcond c = {DMCE_DSTAT_DAEMONS_ALIVE, n};
    return harness_wait(dstat_eq, &c, ms);
}

/* Two copies of every block: none single, none being copied. */
static int all_mirrored(void *arg)
{
    uint64_t alive = *(const uint64_t *)arg, v[DMCE_DSTAT_COUNT_];
    return dstats(v) == 0 && v[DMCE_DSTAT_DAEMONS_ALIVE] == alive && v[DMCE_DSTAT_BLOCKS] > 0 &&
           v[DMCE_DSTAT_BLOCKS_SINGLE] == 0 && v[DMCE_DSTAT_BLOCKS_REMIRRORING] == 0 &&
           v[DMCE_DSTAT_BLOCKS_MIRRORED] == v[DMCE_DSTAT_BLOCKS];
}

/* ---- clusters ----------------------------------------------------------------------------------
 */

static dmce_client_t *observer; /* a client that never sets up: cluster stats */

/* harness_start with a NULL-terminated flag list of up to 6. */
static int start_memd_v(int id, const char *const *flags)
{
    const char *f[6] = {NULL};
    for (int i = 0; i < 6 && flags && flags[i]; i++)
        f[i] = flags[i];
    return harness_start(id, f[0], f[1], f[2], f[3], f[4], f[5], NULL);
}

static const char *const small_memd[] = {"--block-size=1M", "--max-blocks=8", "--grace-ms=60000",
                                         NULL};

/*
 * harness_init, the dispatcher with flags (NULL-terminated, up to 6), n
 * daemons with memd flags, and the observer once all are registered.
 */
static int cluster(const char *const *disp_flags, int n, const char *const *memd_flags)
{
    if (harness_init() < 0)
        return -1;
    const char *f[6] = {NULL};
    for (int i = 0; i < 6 && disp_flags && disp_flags[i]; i++)
        f[i] = disp_flags[i];
    if (harness_start_dispatcher(0, f[0], f[1], f[2], f[3], f[4], f[5], NULL) < 0)
        return -1;
    for (int id = 1; id <= n; id++)
        if (start_memd_v(id, memd_flags) < 0)
            return -1;
    if (n > 0 && !wait_alive((uint64_t)n, 10000))
        return -1;
    if (n > 0 && dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0)
        return -1;
    return 0;
}

static int teardown_cluster(void **state)
{
    (void)state;
    dmce_disconnect(observer);
    observer = NULL;
    if (H.pid[0]) /* the dispatcher first: the daemons' stops are no failures then */
        harness_stop(0);
    for (int id = 1; id <= H_MAX_DAEMONS; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    return 0;
}

/* dmce-memd's ID of the daemon holding addr (through the client's routing), or < 0. */
static int daemon_id_of(dmce_client_t *c, dmce_addr_t a)
{
    int i = dmce_daemon_of(c, a);
    if (i < 0)
        return i;
    dmce_stats_t st;
    int r = dmce_daemon_stats(c, (unsigned)i, &st);
    return r < 0 ? r : (int)st.daemon_id;
}

/* Index (for dmce_malloc_on, dmce_daemon_stats) of daemon ID id in c, or -1. */
static int index_of_id(dmce_client_t *c, uint32_t id)
{
    for (unsigned i = 0; i < dmce_daemon_count(c); i++) {
        dmce_stats_t st;
        if (dmce_daemon_stats(c, i, &st) == 0 && st.daemon_id == id)
            return (int)i;
    }
    return -1;
}

static dmce_client_t *client_set_up(uint64_t amount)
{
    dmce_client_t *c = NULL;
    int r = harness_client_dir(&c, 0);
    if (r == 0)
        r = dmce_setup(c, amount, DMCE_SETUP_PARTIAL, NULL, NULL);
    if (r < 0) {
        print_error("client: %s\n", dmce_strerror(r));
        dmce_disconnect(c);
        return NULL;
    }
    return c;
}

static void pattern(uint8_t *buf, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

/* malloc, write, read back, free: one round trip of everything. 0 or the first error. */
static int exercise(dmce_client_t *c, uint32_t seed)
{
    uint8_t buf[512], back[512];
    dmce_addr_t a;
    pattern(buf, sizeof(buf), seed);
    int r = dmce_malloc(c, sizeof(buf), &a);
    if (r == 0)
        r = dmce_write(c, a, buf, sizeof(buf));
    if (r == 0)
        r = dmce_read(c, a, back, sizeof(back));
    if (r == 0 && memcmp(buf, back, sizeof(buf)) != 0)
        r = -EILSEQ;
    int f = dmce_free(c, a);
    return r ? r : f;
}

/* ---- 1. policies
 * --------------------------------------------------------------------------------- */

#define RR_ALLOCS 30

static int setup_round_robin(void **state)
{
    (void)state;
    static const char *const f[] = {"--policy=round-robin", "--mirroring=off", NULL};
    return cluster(f, 3, small_memd);
}

static void round_robin_spreads_evenly(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(3 * MIB);
    assert_non_null(c);
    /* setup: the reservation is shared evenly by the three daemons */
    for (unsigned i = 0; i < dmce_daemon_count(c); i++) {
        dmce_stats_t st;
        assert_int_equal(dmce_daemon_stats(c, i, &st), 0);
        assert_int_equal(st.bytes_reserved, MIB);
    }
    uint64_t picks0 = dstat(DMCE_DSTAT_PICKS);
    int on[4] = {0};
    dmce_addr_t a[RR_ALLOCS];
    for (int i = 0; i < RR_ALLOCS; i++) {
        assert_int_equal(dmce_malloc(c, 4096, &a[i]), 0);
        int id = daemon_id_of(c, a[i]);
        assert_in_range(id, 1, 3);
        on[id]++;
    }
    print_message("round-robin: %d / %d / %d allocations on memd 1 / 2 / 3\n", on[1], on[2], on[3]);
    for (int id = 1; id <= 3; id++)
        assert_int_equal(on[id], RR_ALLOCS / 3);
    assert_int_equal(dstat(DMCE_DSTAT_PICKS) - picks0, RR_ALLOCS); /* one pick each */
    for (int i = 0; i < RR_ALLOCS; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static int setup_least_used(void **state)
{
    (void)state;
    static const char *const f[] = {"--policy=least-used", "--mirroring=off", NULL};
    return cluster(f, 3, small_memd);
}

struct free_below {
    uint32_t id;    /* this daemon's free bytes, as the dispatcher sees them, */
    uint64_t limit; /* are below this */
};

static int dispatcher_sees_free_below(void *arg)
{
    const struct free_below *w = arg;
    static struct dir d;
    const dmce_disp_daemon_t *e;
    return disp_dir(&d) == 0 && (e = dir_daemon(&d, w->id)) && e->free < w->limit;
}

/* Fill daemon id with `n` allocations of `size` (direct, not through the policy). */
static void fill_daemon(dmce_client_t *c, uint32_t id, int n, uint64_t size, dmce_addr_t *out)
{
    int k = index_of_id(c, id);
    assert_true(k >= 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(dmce_malloc_on(c, (unsigned)k, size, &out[i]), 0);
}

static void least_used_avoids_fullest(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    /* memd 1: 3 x 768 KiB of its 8 MiB; once its member pulse says so, it is the fullest */
    dmce_addr_t big[6];
    fill_daemon(c, 1, 3, 768 * KIB, big);
    struct free_below w1 = {1, 6 * MIB};
    assert_true(harness_wait(dispatcher_sees_free_below, &w1, 5000));
    int on[4] = {0};
    dmce_addr_t a[12];
    for (int i = 0; i < 12; i++) {
        assert_int_equal(dmce_malloc(c, 16 * KIB, &a[i]), 0);
        int id = daemon_id_of(c, a[i]);
        assert_in_range(id, 1, 3);
        on[id]++;
    }
    print_message("least-used: %d / %d / %d allocations on memd 1 / 2 / 3 (memd 1 full)\n", on[1],
                  on[2], on[3]);
    assert_int_equal(on[1], 0);
    assert_true(on[2] > 0 && on[3] > 0); /* each pick lowers the chosen one's room */
    /* memd 2 filled too: memd 3, now the emptiest, takes the next allocation */
    fill_daemon(c, 2, 3, 768 * KIB, big + 3);
    struct free_below w2 = {2, 6 * MIB};
    assert_true(harness_wait(dispatcher_sees_free_below, &w2, 5000));
    dmce_addr_t x;
    assert_int_equal(dmce_malloc(c, 16 * KIB, &x), 0);
    assert_int_equal(daemon_id_of(c, x), 3);
    assert_int_equal(dmce_free(c, x), 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(dmce_free(c, big[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static int setup_numa_local(void **state)
{
    (void)state;
    if (harness_init() < 0)
        return -1;
    if (harness_start_dispatcher(0, "--policy=numa-local", "--mirroring=off", NULL) < 0)
        return -1;
    /* three synthetic NUMA nodes; memd k+1 on node k */
    static const char *const node[] = {"--numa-node=0", "--numa-node=1", "--numa-node=2"};
    for (int id = 1; id <= 3; id++)
        if (harness_start(id, "--block-size=1M", "--max-blocks=8",
                          "--topology=pack:3 numa:1 core:1 pu:1", node[id - 1], NULL) < 0)
            return -1;
    if (!wait_alive(3, 10000))
        return -1;
    return dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0 ? -1 : 0;
}

static void numa_local_follows_client_node(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", k);
        /* read at every pick (libclient/disp.c my_numa_node) */
        assert_int_equal(setenv("DMCE_CLIENT_NUMA_NODE", v, 1), 0);
        dmce_client_t *c = client_set_up(0);
        assert_non_null(c);
        dmce_addr_t a[6];
        for (int i = 0; i < 6; i++) {
            assert_int_equal(dmce_malloc(c, 8 * KIB, &a[i]), 0);
            int d = dmce_daemon_of(c, a[i]);
            assert_true(d >= 0);
            dmce_stats_t st;
            assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st), 0);
            if (st.numa_node != k)
                print_error("client on node %d: allocation %d on memd %u (node %d)\n", k, i,
                            st.daemon_id, st.numa_node);
            assert_int_equal(st.numa_node, k);
            assert_int_equal(st.daemon_id, k + 1);
        }
        for (int i = 0; i < 6; i++)
            assert_int_equal(dmce_free(c, a[i]), 0);
        assert_int_equal(dmce_disconnect(c), 0);
        print_message("numa-local: a client on node %d allocated 6 times on memd %d\n", k, k + 1);
    }
    unsetenv("DMCE_CLIENT_NUMA_NODE");
}

/* ---- 2. automatic scalability
 * -------------------------------------------------------------------- */

static int setup_scalability(void **state)
{
    (void)state;
    /*
     * Round robin, and member pulses 10 s apart: the dispatcher's idea of a
     * daemon's room stays stale, so it does pick a daemon that is full.
     */
    static const char *const f[] = {"--policy=round-robin", "--mirroring=off",
                                    "--heartbeat_ms=10000", NULL};
    static const char *const m[] = {"--block-size=1M", "--max-blocks=1", NULL};
    return cluster(f, 3, m);
}

/* Allocate `size` on daemon id until it refuses; returns how many, addresses in out. */
static int fill_until_full(dmce_client_t *c, uint32_t id, uint64_t size, dmce_addr_t *out, int max)
{
    int k = index_of_id(c, id), n = 0, r = 0;
    assert_true(k >= 0);
    while (n < max && (r = dmce_malloc_on(c, (unsigned)k, size, &out[n])) == 0)
        n++;
    assert_int_equal(r, DMCE_ENOMEM);
    return n;
}

static void full_daemon_next_takes_it(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    dmce_addr_t fill[32];
    int nfill = fill_until_full(c, 1, 64 * KIB, fill, 32);
    assert_true(nfill > 4);
    uint64_t picks0 = dstat(DMCE_DSTAT_PICKS);
    dmce_addr_t a[8];
    int on[4] = {0};
    for (int i = 0; i < 8; i++) {
        int r = dmce_malloc(c, 64 * KIB, &a[i]);
        if (r != 0)
            print_error("malloc %d with memd 1 full: %s\n", i, dmce_strerror(r));
        assert_int_equal(r, 0);
        int id = daemon_id_of(c, a[i]);
        assert_in_range(id, 1, 3);
        on[id]++;
    }
    uint64_t picks = dstat(DMCE_DSTAT_PICKS) - picks0;
    print_message("memd 1 full: %d / %d / %d allocations on memd 1 / 2 / 3, %llu picks\n", on[1],
                  on[2], on[3], (unsigned long long)picks);
    assert_int_equal(on[1], 0);
    if (picks == 8) {
        /* no pick went to memd 1: only possible if its member pulse came in between */
        struct free_below w = {1, 64 * KIB};
        assert_true(dispatcher_sees_free_below(&w));
    } else {
        assert_true(picks > 8); /* memd 1 was picked, refused, and was excluded */
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    for (int i = 0; i < nfill; i++)
        assert_int_equal(dmce_free(c, fill[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void too_big_is_clear_and_leaks_nothing(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    dmce_stats_t before, after;
    assert_int_equal(dmce_stats(c, &before), 0);
    dmce_addr_t a = 0;
    /* larger than any block of any daemon */
    assert_int_equal(dmce_malloc(c, 4 * MIB, &a), -EMSGSIZE);
    assert_int_equal(dmce_stats(c, &after), 0);
    assert_int_equal(after.bytes_used, before.bytes_used);
    assert_int_equal(after.allocations, before.allocations);
    /* every daemon full: a size any block could hold, but no daemon has room for */
    dmce_addr_t fill[3][32];
    int nfill[4] = {0};
    for (uint32_t id = 1; id <= 3; id++)
        nfill[id] = fill_until_full(c, id, 64 * KIB, fill[id - 1], 32);
    assert_int_equal(dmce_stats(c, &before), 0);
    uint64_t t0 = dmce_now_ms();
    assert_int_equal(dmce_malloc(c, 64 * KIB, &a), DMCE_ENOMEM);
    assert_true(dmce_now_ms() - t0 < 5000);
    assert_int_equal(dmce_stats(c, &after), 0);
    assert_int_equal(after.bytes_used, before.bytes_used);
    assert_int_equal(after.allocations, before.allocations);
    for (uint32_t id = 1; id <= 3; id++)
        for (int i = 0; i < nfill[id]; i++)
            assert_int_equal(dmce_free(c, fill[id - 1][i]), 0);
    /* and room again once freed */
    assert_int_equal(exercise(c, 1), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- 3. no daemon alive -------------------------------------------------------------------------
 */

static int setup_no_daemon(void **state)
{
    (void)state;
    if (harness_init() < 0)
        return -1;
    return harness_start_dispatcher(0, "--heartbeat_ms=50", NULL) < 0 ? -1 : 0;
}

static void no_daemon_fails_fast(void **state)
{
    (void)state;
    /* a dispatcher alone: connect says so */
    dmce_client_t *c = NULL;
    uint64_t t0 = dmce_now_ms();
    assert_int_equal(harness_client_dir(&c, 0), DMCE_ENODAEMON);
    assert_null(c);
    /* a transparent client connects (to the dispatcher), and its setup says so */
    assert_int_equal(harness_client_dir(&c, DMCE_CONNECT_TRANSPARENT), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), DMCE_ENODAEMON);
    dmce_disconnect(c);
    assert_true(dmce_now_ms() - t0 < 5000);

    /* a client connected while a daemon lived, after that daemon died */
    assert_int_equal(harness_start(1, "--block-size=1M", "--max-blocks=4", NULL), 0);
    assert_true(wait_alive(1, 5000));
    dmce_client_t *set = NULL, *unset = NULL;
    assert_int_equal(harness_client_dir(&set, 0), 0);
    assert_int_equal(harness_client_dir(&unset, 0), 0);
    assert_int_equal(dmce_setup(set, 0, 0, NULL, NULL), 0);
    assert_int_equal(exercise(set, 2), 0);
    harness_kill(1);
    struct dcond dead = {DMCE_DSTAT_DEATHS, 1};
    assert_true(harness_wait(dstat_ge, &dead, 5000));
    assert_true(wait_alive(0, 5000));
    dmce_addr_t a;
    t0 = dmce_now_ms();
    int r = dmce_malloc(set, 4096, &a);
    uint64_t ms = dmce_now_ms() - t0;
    print_message("no daemon: malloc %s in %llu ms\n", dmce_strerror(r), (unsigned long long)ms);
    assert_int_equal(r, DMCE_ENODAEMON);
    assert_true(ms < 5000);
    t0 = dmce_now_ms();
    r = dmce_setup(unset, 1 * MIB, 0, NULL, NULL);
    ms = dmce_now_ms() - t0;
    print_message("no daemon: setup %s in %llu ms\n", dmce_strerror(r), (unsigned long long)ms);
    assert_int_equal(r, DMCE_ENODAEMON);
    assert_true(ms < 5000);
    dmce_disconnect(unset);
    dmce_disconnect(set);
}

/* ---- 4. mirroring on, one daemon ----------------------------------------------------------------
 */

static char disp_log[400];

/* Start the dispatcher (up to 3 flags, NULL-terminated) with its log going to disp_log. */
static int start_dispatcher_logged(const char *f0, const char *f1, const char *f2)
{
    snprintf(disp_log, sizeof(disp_log), "%s/dispatcher.log", H.dir);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(disp_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (saved < 0 || fd < 0) {
        if (saved >= 0)
            close(saved);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    dup2(fd, STDERR_FILENO); /* the dispatcher inherits it as its stderr */
    close(fd);
    int r = harness_start_dispatcher(0, f0, f1, f2, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    return r;
}

/* 1 if the dispatcher's log has a line containing s. */
static int log_has(const char *s)
{
    FILE *f = fopen(disp_log, "r");
    if (!f)
        return 0;
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, s) != NULL;
    fclose(f);
    return found;
}

static int log_has_cond(void *s)
{
    return log_has(s);
}

static int setup_one_daemon_mirroring(void **state)
{
    (void)state;
    if (harness_init() < 0 || start_dispatcher_logged("--mirroring=on", NULL, NULL) < 0)
        return -1;
    if (start_memd_v(1, small_memd) < 0 || !wait_alive(1, 10000))
        return -1;
    return dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0 ? -1 : 0;
}

static int one_copy_warned(void *arg)
{
    int want = *(int *)arg;
    dmce_cluster_stats_t s;
    return dmce_cluster_stats(observer, &s) == 0 && s.blocks > 0 && s.warn_one_copy == want;
}

static void one_daemon_warns_and_works(void **state)
{
    (void)state;
    int yes = 1, no = 0;
    if (!harness_wait(one_copy_warned, &yes, 5000)) {
        dmce_cluster_stats_t s;
        assert_int_equal(dmce_cluster_stats(observer, &s), 0);
        print_error("mirroring on, one daemon: mirroring %d, warn_one_copy %d, blocks %llu, "
                    "single %llu\n",
                    s.mirroring, s.warn_one_copy, (unsigned long long)s.blocks,
                    (unsigned long long)s.blocks_single);
        fail();
    }
    dmce_cluster_stats_t s;
    assert_int_equal(dmce_cluster_stats(observer, &s), 0);
    assert_true(s.mirroring);
    assert_int_equal(s.blocks_mirrored, 0);
    assert_true(s.blocks_single > 0);
    assert_true(harness_wait(log_has_cond, "only one daemon is alive", 2000));
    /* the one copy works */
    dmce_client_t *c = client_set_up(1 * MIB);
    assert_non_null(c);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(exercise(c, 100 + i), 0);
    /* a second daemon: every block gets its mirror, and the warning goes */
    assert_int_equal(start_memd_v(2, small_memd), 0);
    uint64_t two = 2;
    assert_true(harness_wait(all_mirrored, &two, 10000));
    assert_true(harness_wait(one_copy_warned, &no, 5000));
    assert_int_equal(exercise(c, 200), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/*
 * Each daemon keeps the block IDs its ID gives it ((id - 1) x max_blocks + 1
 * on), also when it registers before the daemons below it: a daemon that
 * ran alone for a while (no dispatcher answered at its start) made its
 * blocks there, and giving that range to another would make two blocks
 * with one ID. The dispatcher used to hand the first registrant 1...
 */
static int setup_ranges(void **state)
{
    (void)state;
    if (harness_init() < 0 || harness_start_dispatcher(0, "--mirroring=on", NULL) < 0)
        return -1;
    if (start_memd_v(2, small_memd) < 0 || !wait_alive(1, 10000)) /* 2 first */
        return -1;
    if (start_memd_v(1, small_memd) < 0 || !wait_alive(2, 10000))
        return -1;
    return dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0 ? -1 : 0;
}

static void daemons_keep_their_own_ranges(void **state)
{
    (void)state;
    unsigned seen = 0;
    for (unsigned i = 0; i < dmce_daemon_count(observer); i++) {
        dmce_stats_t st;
        assert_int_equal(dmce_daemon_stats(observer, i, &st), 0);
        assert_true(st.daemon_id == 1 || st.daemon_id == 2);
        assert_int_equal(st.block_first, (st.daemon_id - 1) * 8 + 1);
        assert_int_equal(st.block_last, st.daemon_id * 8);
        seen |= 1u << st.daemon_id;
    }
    assert_int_equal(seen, 6);
    uint64_t two = 2; /* and the blocks of both are mirrored on the other */
    assert_true(harness_wait(all_mirrored, &two, 10000));
}

/* ---- 5. a fake daemon: garbage, stalls, silence -------------------------------------------------
 */

enum fake_mode {
    FAKE_GARBAGE, /* member pulses, and a malformed answer to every request */
    FAKE_STALL,   /* member pulses, and requests read but never answered */
    FAKE_SILENT,  /* no pulse, requests never even accepted */
};

#define FAKE_LIFE_MS 20000 /* the fake exits on its own after this, whatever happens */
#define FAKE_HB_MS 100
#define FAKE_TIMEOUT_MS 500
#define FAKE_MISS 3

static int setup_fake_daemon(void **state)
{
    (void)state;
    if (harness_init() < 0)
        return -1;
    char hb[32], to[40], miss[32];
    snprintf(hb, sizeof(hb), "--heartbeat_ms=%d", FAKE_HB_MS);
    snprintf(to, sizeof(to), "--request_timeout_ms=%d", FAKE_TIMEOUT_MS);
    snprintf(miss, sizeof(miss), "--miss_limit=%d", FAKE_MISS);
    if (start_dispatcher_logged(hb, to, miss) < 0)
        return -1;
    for (int id = 1; id <= 2; id++)
        if (start_memd_v(id, small_memd) < 0)
            return -1;
    if (!wait_alive(2, 10000))
        return -1;
    return dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0 ? -1 : 0;
}

/* The fake, in its own process: its pid is its connection's peer, as the dispatcher checks. */
static void fake_main(enum fake_mode mode, uint32_t id, const char *sock, int ready)
{
    uint64_t end = dmce_now_ms() + FAKE_LIFE_MS;
    int lfd = dmce_unix_listen(sock, 16);
    dmce_mconn_t k;
    int r = lfd < 0 ? lfd : dmce_mconn_init(&k, harness_disp_sock(), 2000, DMCE_MCONN_NO_RING);
    /* what a memd sends (runtime/memd_disp.c do_register); no room: never picked, never a peer */
    dmce_disp_register_t rq = {.daemon_id = id,
                               .pid = (uint32_t)getpid(),
                               .numa_node = -1,
                               .capacity = 0,
                               .block_size = 1 * MIB,
                               .max_blocks = 1,
                               .layout = DMCE_LAYOUT_12_12_40};
    size_t sl = strlen(sock);
    if (sl >= sizeof(rq.path))
        _exit(2); /* the harness's paths are short */
    memcpy(rq.path, sock, sl + 1);
    uint8_t buf[DMCE_DISP_REGISTER_HDR + DMCE_MSMP_PATH_MAX], resp[64];
    size_t rl = 0;
    int n = dmce_disp_register_encode(&rq, buf, sizeof(buf));
    if (r == 0)
        r = n < 0 ? n
                  : dmce_mconn_rpc(&k, DMCE_MSMP_OP_REGISTER, buf, (size_t)n, NULL, 0, resp,
                                   sizeof(resp), &rl, NULL);
    dmce_disp_register_resp_t rs;
    if (r == 0)
        r = dmce_disp_register_resp_decode(resp, rl, &rs);
    if (write(ready, &r, sizeof(r)) != (ssize_t)sizeof(r) || r < 0)
        _exit(1);
    int conns[8], nconns = 0;
    uint32_t seq = 0;
    uint64_t next_pulse = dmce_now_ms();
    while (dmce_now_ms() < end) {
        if (mode != FAKE_SILENT && dmce_now_ms() >= next_pulse) {
            dmce_disp_pulse_t pl = {.daemon_id = id, .seq = ++seq};
            uint8_t p[DMCE_DISP_PULSE_SIZE];
            dmce_disp_pulse_encode(&pl, p);
            dmce_mconn_rpc(&k, DMCE_MSMP_OP_HEARTBEAT, p, sizeof(p), NULL, 0, resp, sizeof(resp),
                           &rl, NULL);
            next_pulse = dmce_now_ms() + FAKE_HB_MS / 2;
        }
        struct pollfd pf[9];
        int np = 0;
        if (mode != FAKE_SILENT)
            pf[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < nconns; i++)
            pf[np++] = (struct pollfd){.fd = conns[i], .events = POLLIN};
        if (poll(pf, (nfds_t)np, 10) <= 0)
            continue;
        for (int i = 0; i < np; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (pf[i].fd == lfd) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0 && nconns < 8)
                    conns[nconns++] = c;
                else if (c >= 0)
                    close(c);
                continue;
            }
            uint8_t in[4096];
            ssize_t got = read(pf[i].fd, in, sizeof(in));
            if (got <= 0)
                continue; /* closed: left in the set, harmless for a short-lived fake */
            if (mode == FAKE_GARBAGE) {
                /* a response frame, but for a request nobody sent, and junk after it */
                uint8_t g[DMCE_MSMP_HDR_SIZE + 40];
                dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                                     .version = DMCE_MSMP_VERSION,
                                     .flags = DMCE_MSMP_FLAG_RESPONSE,
                                     .op = 0x7777,
                                     .req_id = 0xdeadbeefull,
                                     .len = 40};
                dmce_msmp_hdr_encode(&h, g);
                memset(g + DMCE_MSMP_HDR_SIZE, 0xa5, 40);
                if (write(pf[i].fd, g, sizeof(g)) < 0)
                    continue;
            }
        }
    }
    _exit(0);
}

struct fake {
    pid_t pid;
    uint32_t id;
};

static pid_t fake_running; /* a fake not reaped yet (a failed test): teardown_fake kills it */

static int teardown_fake(void **state)
{
    if (fake_running > 0) {
        kill(fake_running, SIGKILL);
        waitpid(fake_running, NULL, 0);
        fake_running = 0;
    }
    return teardown_cluster(state);
}

static int start_fake(enum fake_mode mode, uint32_t id, struct fake *f)
{
    char sock[300];
    snprintf(sock, sizeof(sock), "%s/fake-%u.sock", H.dir, id);
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    fflush(NULL);
    pid_t pid = harness_fork();
    if (pid == 0) {
        close(p[0]);
        fake_main(mode, id, sock, p[1]);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -errno;
    }
    f->pid = pid;
    f->id = id;
    fake_running = pid;
    int r = -ETIMEDOUT;
    struct pollfd pf = {.fd = p[0], .events = POLLIN};
    if (poll(&pf, 1, 5000) == 1 && read(p[0], &r, sizeof(r)) != (ssize_t)sizeof(r))
        r = -EPIPE;
    close(p[0]);
    return r;
}

/* The fake's end: its exit status (128 + signal), or -1 if it had to be killed here. */
static int reap_fake(struct fake *f, unsigned ms)
{
    uint64_t deadline = dmce_now_ms() + ms;
    for (;;) {
        int st;
        if (waitpid(f->pid, &st, WNOHANG) == f->pid) {
            fake_running = 0;
            return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
        }
        if (dmce_now_ms() > deadline) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, NULL, 0);
            fake_running = 0;
            return -1;
        }
        usleep(2000);
    }
}

static int fake_dead(void *arg)
{
    const struct fake *f = arg;
    static struct dir d;
    const dmce_disp_daemon_t *e;
    return disp_dir(&d) == 0 && (e = dir_daemon(&d, f->id)) && e->state == DMCE_DISP_DEAD;
}

/*
 * Register a fake in `mode`; while the dispatcher finds it out, a client
 * keeps using the real daemons. Returns the ms from registration to death.
 */
static uint64_t fake_round(enum fake_mode mode, uint32_t id)
{
    dmce_client_t *c = client_set_up(0); /* before the fake: it never routes to it */
    assert_non_null(c);
    uint64_t deaths0 = dstat(DMCE_DSTAT_DEATHS);
    struct fake f;
    uint64_t t0 = dmce_now_ms();
    int r = start_fake(mode, id, &f);
    if (r != 0)
        print_error("fake memd[%u]: register: %s\n", id, dmce_strerror(r));
    assert_int_equal(r, 0);
    /* the real daemons serve meanwhile, never slowed down past a pulse or two */
    uint64_t worst = 0, died = 0;
    int ops = 0;
    while (ops < 100000 && dmce_now_ms() - t0 < 10000) {
        uint64_t s = dmce_now_ms();
        assert_int_equal(exercise(c, (uint32_t)ops), 0);
        worst = DMCE_MAX(worst, dmce_now_ms() - s);
        ops++;
        if (fake_dead(&f)) {
            died = dmce_now_ms();
            break;
        }
    }
    if (!died) {
        assert_true(harness_wait(fake_dead, &f, 5000));
        died = dmce_now_ms();
    }
    int st = reap_fake(&f, 5000);
    print_message("fake memd[%u] (mode %d): dead after %llu ms (status %d); %d client rounds "
                  "meanwhile, slowest %llu ms\n",
                  id, (int)mode, (unsigned long long)(died - t0), st, ops,
                  (unsigned long long)worst);
    assert_int_equal(st, 128 + SIGKILL); /* fenced: a daemon declared dead must not go on */
    /* "not waited on forever": a bound far above the normal (a few ms), so that a
     * loaded machine does not fail it, and far below the 10 s loop */
    assert_true(worst < 5000);
    assert_int_equal(dstat(DMCE_DSTAT_DEATHS), deaths0 + 1);
    assert_int_equal(dstat(DMCE_DSTAT_DAEMONS_ALIVE), 2);
    assert_int_equal(exercise(c, 9999), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    /* a client that connects now does not trip over the dead fake either */
    c = client_set_up(0);
    assert_non_null(c);
    assert_int_equal(exercise(c, 7), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    return died - t0;
}

static void fake_garbage_marked_dead(void **state)
{
    (void)state;
    uint64_t ms = fake_round(FAKE_GARBAGE, 9);
    assert_true(ms < FAKE_TIMEOUT_MS + 8000);
    assert_true(log_has("memd[9] is dead (it answered garbage)"));
}

static void fake_stall_marked_dead(void **state)
{
    (void)state;
    uint64_t ms = fake_round(FAKE_STALL, 10);
    assert_true(ms < FAKE_TIMEOUT_MS + 8000);
    assert_true(log_has("memd[10] is dead (it stalled (request_timeout_ms))"));
}

static void fake_silent_marked_dead(void **state)
{
    (void)state;
    uint64_t ms = fake_round(FAKE_SILENT, 11);
    /* whichever comes first: the missed pulses, or the unanswered request */
    assert_true(ms < DMCE_MAX(FAKE_TIMEOUT_MS, FAKE_HB_MS * FAKE_MISS) + 2000);
    assert_true(log_has("memd[11] is dead"));
}

/* ---- 6. dispatcher restart
 * ------------------------------------------------------------------------ */

static int setup_restart(void **state)
{
    (void)state;
    static const char *const f[] = {"--mirroring=on", NULL};
    if (cluster(f, 3, small_memd) < 0)
        return -1;
    uint64_t three = 3;
    return harness_wait(all_mirrored, &three, 20000) ? 0 : -1;
}

#define RS_ALLOCS 8
#define RS_LEN 2048

static int check_data(dmce_client_t *c, const dmce_addr_t *a, uint32_t round)
{
    uint8_t want[RS_LEN], back[RS_LEN];
    for (int i = 0; i < RS_ALLOCS; i++) {
        int r = dmce_read(c, a[i], back, RS_LEN);
        if (r < 0)
            return r;
        pattern(want, RS_LEN, round * 100 + (uint32_t)i);
        if (memcmp(want, back, RS_LEN) != 0)
            return -EILSEQ;
    }
    return 0;
}

static int write_data(dmce_client_t *c, const dmce_addr_t *a, uint32_t round)
{
    uint8_t buf[RS_LEN];
    for (int i = 0; i < RS_ALLOCS; i++) {
        pattern(buf, RS_LEN, round * 100 + (uint32_t)i);
        int r = dmce_write(c, a[i], buf, RS_LEN);
        if (r < 0)
            return r;
    }
    return 0;
}

struct tables {
    uint64_t alive, blocks, mirrored;
};

static int tables_back(void *arg)
{
    const struct tables *t = arg;
    uint64_t v[DMCE_DSTAT_COUNT_];
    return dstats(v) == 0 && v[DMCE_DSTAT_DAEMONS_ALIVE] == t->alive &&
           v[DMCE_DSTAT_BLOCKS] == t->blocks && v[DMCE_DSTAT_BLOCKS_MIRRORED] == t->mirrored &&
           v[DMCE_DSTAT_BLOCKS_REMIRRORING] == 0;
}

static void restart_rebuilds_directory(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    dmce_addr_t a[RS_ALLOCS];
    for (int i = 0; i < RS_ALLOCS; i++)
        assert_int_equal(dmce_malloc(c, RS_LEN, &a[i]), 0);
    assert_int_equal(write_data(c, a, 1), 0);
    uint64_t three = 3;
    assert_true(harness_wait(all_mirrored, &three, 10000));
    uint64_t v[DMCE_DSTAT_COUNT_];
    assert_int_equal(dstats(v), 0);
    struct tables before = {3, v[DMCE_DSTAT_BLOCKS], v[DMCE_DSTAT_BLOCKS_MIRRORED]};

    harness_kill(0);
    /* the daemons and the client go on without it */
    assert_int_equal(check_data(c, a, 1), 0);
    assert_int_equal(write_data(c, a, 2), 0);
    assert_int_equal(check_data(c, a, 2), 0);
    dmce_addr_t x;
    int r = dmce_malloc(c, 4096, &x); /* no dispatcher to pick: round robin over the daemons */
    if (r != 0)
        print_error("malloc without a dispatcher: %s\n", dmce_strerror(r));
    assert_int_equal(r, 0);
    assert_int_equal(dmce_free(c, x), 0);

    static const char *const f[] = {"--mirroring=on", NULL};
    assert_int_equal(harness_start_dispatcher(0, f[0], NULL), 0);
    /* every daemon registers again and reports its blocks and mirrors */
    if (!harness_wait(tables_back, &before, 10000)) {
        assert_int_equal(dstats(v), 0);
        print_error("after the restart: alive %llu, blocks %llu (%llu before), mirrored %llu "
                    "(%llu before)\n",
                    (unsigned long long)v[DMCE_DSTAT_DAEMONS_ALIVE],
                    (unsigned long long)v[DMCE_DSTAT_BLOCKS], (unsigned long long)before.blocks,
                    (unsigned long long)v[DMCE_DSTAT_BLOCKS_MIRRORED],
                    (unsigned long long)before.mirrored);
        fail();
    }
    assert_int_equal(dstats(v), 0);
    assert_true(v[DMCE_DSTAT_REGISTRATIONS] >= 3); /* a new dispatcher counts from zero */
    assert_int_equal(v[DMCE_DSTAT_DEATHS], 0);     /* and saw nobody die */
    /* every block's primary is the one the old client routes to */
    for (int i = 0; i < RS_ALLOCS; i++)
        assert_int_equal(primary_of(a[i]), (uint32_t)daemon_id_of(c, a[i]));
    assert_int_equal(check_data(c, a, 2), 0);
    assert_int_equal(write_data(c, a, 3), 0);
    /* a new client reads the old data and allocates */
    dmce_client_t *c2 = client_set_up(0);
    assert_non_null(c2);
    assert_int_equal(check_data(c2, a, 3), 0);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(exercise(c2, 300 + i), 0);
    dmce_cluster_stats_t s;
    assert_int_equal(dmce_cluster_stats(c2, &s), 0);
    assert_true(s.picks >= 6);
    assert_int_equal(dmce_disconnect(c2), 0);
    for (int i = 0; i < RS_ALLOCS; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- kill -9 of the dispatcher, again and again, under load -------------------------------- */

#define CL_WRITERS 2
#define CL_ALLOCS 8
#define CL_LEN 1024

/* Shared with the writer processes (MAP_SHARED). */
struct cl_shared {
    atomic_int stop;
    struct {
        atomic_int ready, code;           /* code: why it stopped early (0: it did not) */
        atomic_uint_fast64_t ops;         /* acknowledged writes */
        atomic_uint_fast64_t malloc_errs; /* mallocs (and their frees) that failed */
        atomic_uint_fast64_t slowest_ms;  /* the longest single call */
        atomic_int last_err;
    } w[CL_WRITERS];
};

/*
 * A writer: CL_ALLOCS allocations, each rewritten in turn with a new
 * pattern and read back (the last acknowledged one, always); every 16th
 * round a malloc and free of its own (the dispatcher picks the daemon, or
 * round robin while there is none). Exit 0 when told to stop and every
 * allocation reads back its last acknowledged pattern; 3: a write or read
 * failed; 4: still running after 120 s; 5: a read gave other bytes.
 */
static void cl_writer(struct cl_shared *sh, int k)
{
    dmce_client_t *c = client_set_up(1 * MIB);
    if (!c)
        _exit(2);
    dmce_addr_t a[CL_ALLOCS];
    uint32_t acked[CL_ALLOCS];
    for (int i = 0; i < CL_ALLOCS; i++) {
        acked[i] = (uint32_t)(k * 1000000 + i);
        uint8_t buf[CL_LEN];
        pattern(buf, CL_LEN, acked[i]);
        if (dmce_malloc(c, CL_LEN, &a[i]) < 0 || dmce_write(c, a[i], buf, CL_LEN) < 0)
            _exit(2);
    }
    atomic_store(&sh->w[k].ready, 1);
    uint64_t deadline = dmce_now_ms() + 120000;
    uint8_t buf[CL_LEN], back[CL_LEN];
    int r = 0;
    for (uint32_t n = 1; !atomic_load(&sh->stop); n++) {
        if (dmce_now_ms() > deadline)
            _exit(4);
        int i = (int)(n % CL_ALLOCS);
        uint32_t seed = (uint32_t)(k * 1000000) + CL_ALLOCS + n;
        pattern(buf, CL_LEN, seed);
        uint64_t t0 = dmce_now_ms();
        r = dmce_write(c, a[i], buf, CL_LEN);
        if (r == 0) {
            acked[i] = seed;
            atomic_fetch_add(&sh->w[k].ops, 1);
            r = dmce_read(c, a[i], back, CL_LEN);
            if (r == 0 && memcmp(back, buf, CL_LEN) != 0)
                _exit(5);
        }
        if (r < 0) {
            atomic_store(&sh->w[k].last_err, r);
            _exit(3);
        }
        if (n % 16 == 0) {
            dmce_addr_t x;
            int m = dmce_malloc(c, 512, &x);
            if (m == 0)
                m = dmce_free(c, x);
            if (m < 0) {
                atomic_fetch_add(&sh->w[k].malloc_errs, 1);
                atomic_store(&sh->w[k].last_err, m);
            }
        }
        uint64_t d = dmce_now_ms() - t0;
        if (d > atomic_load(&sh->w[k].slowest_ms))
            atomic_store(&sh->w[k].slowest_ms, d);
    }
    for (int i = 0; i < CL_ALLOCS; i++) {
        pattern(buf, CL_LEN, acked[i]);
        if (dmce_read(c, a[i], back, CL_LEN) < 0)
            _exit(3);
        if (memcmp(back, buf, CL_LEN) != 0)
            _exit(5);
        if (dmce_free(c, a[i]) < 0)
            _exit(3);
    }
    _exit(dmce_disconnect(c) == 0 ? 0 : 3);
}

struct cl_progress {
    struct cl_shared *sh;
    uint64_t after[CL_WRITERS];
};

/* Every writer acknowledged a write since `after`. */
static int cl_progressed(void *arg)
{
    struct cl_progress *p = arg;
    for (int k = 0; k < CL_WRITERS; k++)
        if (atomic_load(&p->sh->w[k].ops) <= p->after[k])
            return 0;
    return 1;
}

static int cl_ready(void *arg)
{
    struct cl_shared *sh = arg;
    for (int k = 0; k < CL_WRITERS; k++)
        if (!atomic_load(&sh->w[k].ready))
            return 0;
    return 1;
}

/*
 * kill -9 of the dispatcher at random points while writers run, then a new
 * one, CL_ITERS times (DMCE_CRASH_ITERS overrides). The writers never stop:
 * reads and writes go to the daemons, which do not need the dispatcher, and
 * mallocs pick a daemon themselves while there is none. Each new dispatcher
 * starts at once (the dead one's socket and lock file are no obstacle) and
 * gets every daemon back; nobody is declared dead; at the end every block
 * has two copies, and every writer reads back its last acknowledged data.
 */
static void kill9_loop_under_load(void **state)
{
    (void)state;
    const char *e = getenv("DMCE_CRASH_ITERS");
    int iters = e && atoi(e) > 0 ? atoi(e) : 50;
    unsigned seed = (unsigned)dmce_now_ns();
    print_message("dispatcher crash loop: %d iterations, seed %u\n", iters, seed);
    srand(seed);
    struct cl_shared *sh =
        mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof(*sh));
    pid_t pids[CL_WRITERS];
    for (int k = 0; k < CL_WRITERS; k++) {
        pids[k] = harness_fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0)
            cl_writer(sh, k);
    }
    assert_true(harness_wait(cl_ready, sh, 20000));
    uint64_t t0 = dmce_now_ms(), worst_back = 0;
    for (int it = 0; it < iters; it++) {
        usleep((useconds_t)(rand() % 40000)); /* anywhere in its work */
        harness_kill(0);
        struct cl_progress p = {.sh = sh};
        for (int k = 0; k < CL_WRITERS; k++)
            p.after[k] = atomic_load(&sh->w[k].ops);
        /* without it, the writers go on */
        if (!harness_wait(cl_progressed, &p, 5000))
            fail_msg("iteration %d: a writer made no progress without a dispatcher", it);
        usleep((useconds_t)(rand() % 20000));
        uint64_t t1 = dmce_now_ms();
        if (harness_start_dispatcher(0, "--mirroring=on", NULL) != 0)
            fail_msg("iteration %d: the new dispatcher did not start", it);
        if (!wait_alive(3, 10000))
            fail_msg("iteration %d: the daemons did not all register again", it);
        uint64_t back = dmce_now_ms() - t1;
        worst_back = back > worst_back ? back : worst_back;
        if (dstat(DMCE_DSTAT_DEATHS) != 0)
            fail_msg("iteration %d: the new dispatcher declared a daemon dead", it);
        for (int k = 0; k < CL_WRITERS; k++) {
            p.after[k] = atomic_load(&sh->w[k].ops);
            if (atomic_load(&sh->w[k].code))
                fail_msg("writer %d stopped: %d", k, atomic_load(&sh->w[k].code));
        }
        if (!harness_wait(cl_progressed, &p, 5000))
            fail_msg("iteration %d: a writer made no progress with the new dispatcher", it);
    }
    uint64_t three = 3;
    assert_true(harness_wait(all_mirrored, &three, 20000));
    atomic_store(&sh->stop, 1);
    uint64_t ops = 0, merr = 0, slowest = 0;
    for (int k = 0; k < CL_WRITERS; k++) {
        int st;
        assert_int_equal(waitpid(pids[k], &st, 0), pids[k]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("writer %d: %s %d (last error %s)", k, WIFEXITED(st) ? "exit" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                     dmce_strerror(atomic_load(&sh->w[k].last_err)));
        ops += atomic_load(&sh->w[k].ops);
        merr += atomic_load(&sh->w[k].malloc_errs);
        slowest = DMCE_MAX(slowest, atomic_load(&sh->w[k].slowest_ms));
    }
    print_message("dispatcher crash loop: %d kill -9 in %llu ms; %llu writes acknowledged and "
                  "read back, %llu malloc+free failed (last: %s); slowest call %llu ms; a new "
                  "dispatcher had every daemon back within %llu ms\n",
                  iters, (unsigned long long)(dmce_now_ms() - t0), (unsigned long long)ops,
                  (unsigned long long)merr,
                  merr ? dmce_strerror(atomic_load(&sh->w[0].last_err)
                                           ? atomic_load(&sh->w[0].last_err)
                                           : atomic_load(&sh->w[1].last_err))
                       : "none",
                  (unsigned long long)slowest, (unsigned long long)worst_back);
    /* A malloc may only fail while no daemon is known (a new dispatcher's first moments). */
    assert_true(merr <= (uint64_t)iters);
    assert_true(slowest < 5000); /* no call waited on the dead dispatcher */
    munmap(sh, sizeof(*sh));
}

/* The allocations of `victim` have moved to a live primary in the directory. */
struct moved_off {
    const dmce_addr_t *a;
    uint32_t victim;
};

static int all_moved_off(void *arg)
{
    const struct moved_off *m = arg;
    for (int i = 0; i < RS_ALLOCS; i++) { /* those on other daemons stay where they are */
        uint32_t p = primary_of(m->a[i]);
        if (p == 0 || p == m->victim)
            return 0;
    }
    return 1;
}

/*
 * A daemon dies while no dispatcher runs: the next dispatcher learns its
 * blocks only from their mirrors. It must promote them (the dead primary
 * never registers), not drop them as stale: the data reads back.
 */
static void death_while_no_dispatcher(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    dmce_addr_t a[RS_ALLOCS];
    for (int i = 0; i < RS_ALLOCS; i++)
        assert_int_equal(dmce_malloc(c, RS_LEN, &a[i]), 0);
    assert_int_equal(write_data(c, a, 7), 0);
    uint64_t three = 3;
    assert_true(harness_wait(all_mirrored, &three, 10000));
    uint32_t victim = (uint32_t)daemon_id_of(c, a[0]);
    assert_true(victim >= 1 && victim <= 3);
    /* c stays connected: its sessions keep the allocations */

    harness_kill(0);
    harness_kill((int)victim);
    static const char *const f[] = {"--mirroring=on", NULL};
    assert_int_equal(harness_start_dispatcher(0, f[0], NULL), 0);
    struct moved_off m = {a, victim};
    assert_true(harness_wait(all_moved_off, &m, 15000));
    dmce_cluster_stats_t s;
    dmce_client_t *c2 = client_set_up(0);
    assert_non_null(c2);
    assert_int_equal(check_data(c2, a, 7), 0);
    assert_int_equal(dmce_cluster_stats(c2, &s), 0);
    assert_true(s.promotions >= 1);
    assert_int_equal(s.blocks_lost, 0);
    assert_int_equal(dmce_disconnect(c2), 0);
    for (int i = 0; i < RS_ALLOCS; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    /* the victim comes back (empty) for the teardown, and the copies heal */
    assert_int_equal(start_memd_v((int)victim, small_memd), 0);
    assert_true(harness_wait(all_mirrored, &three, 20000));
}

/* ---- 7. spawn mode
 * -------------------------------------------------------------------------------- */

static pid_t spawned_pids[16];
static int nspawned;

static void remember_spawned(pid_t pid)
{
    for (int i = 0; i < nspawned; i++)
        if (spawned_pids[i] == pid)
            return;
    if (nspawned < 16)
        spawned_pids[nspawned++] = pid;
}

/* 1 if pid is a dmce-memd of this test's runtime directory (not a reused pid). */
static int is_memd(pid_t pid)
{
    char p[64], cmd[2048] = {0};
    snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    for (size_t i = 0; i < n; i++) /* arguments are NUL-separated */
        if (cmd[i] == 0)
            cmd[i] = ' ';
    cmd[n] = 0;
    return H.dir[0] && strstr(cmd, "dmce-memd") != NULL && strstr(cmd, H.dir) != NULL;
}

static int setup_spawn(void **state)
{
    (void)state;
    nspawned = 0;
    if (harness_init() < 0)
        return -1;
    const char *memd = getenv("DMCE_MEMD");
    static char a_memd[600], a_args[400];
    snprintf(a_memd, sizeof(a_memd), "--memd=%s", memd ? memd : "./dmce-memd");
    /* our cluster name: harness_shm_count sees their shm objects, harness_cleanup unlinks them */
    snprintf(a_args, sizeof(a_args),
             "--memd_args=--cluster=%s --block-size=1M --max-blocks=8 --log-level=warn", H.cluster);
    if (harness_start_dispatcher(0, "--spawn=2", "--respawn=yes", a_memd, a_args, NULL) < 0)
        return -1;
    return wait_alive(2, 10000) ? 0 : -1;
}

static int teardown_spawn(void **state)
{
    /* the harness knows the dispatcher only: learn its daemons, so none outlives the test */
    static struct dir d;
    if (H.pid[0] && disp_dir(&d) == 0)
        for (unsigned i = 0; i < d.nd; i++)
            if (d.d[i].state == DMCE_DISP_ALIVE)
                remember_spawned((pid_t)d.d[i].pid);
    if (H.pid[0])
        harness_stop(0); /* SIGTERM: it stops its daemons */
    for (int i = 0; i < nspawned; i++)
        if (is_memd(spawned_pids[i])) /* still there (a failed test): ours, by its command line */
            kill(spawned_pids[i], SIGKILL);
    return teardown_cluster(state);
}

struct respawned {
    uint32_t id;
    pid_t old;
};

static int respawned(void *arg)
{
    const struct respawned *w = arg;
    static struct dir d;
    const dmce_disp_daemon_t *e;
    if (disp_dir(&d) < 0 || !(e = dir_daemon(&d, w->id)))
        return 0;
    return e->state == DMCE_DISP_ALIVE && e->pid != (uint32_t)w->old &&
           dstat(DMCE_DSTAT_DAEMONS_ALIVE) == 2;
}

static int no_shm_left(void *arg)
{
    (void)arg;
    return harness_shm_count() == 0;
}

static int pids_gone(void *arg)
{
    (void)arg;
    for (int i = 0; i < nspawned; i++)
        if (kill(spawned_pids[i], 0) == 0 && is_memd(spawned_pids[i]))
            return 0;
    return 1;
}

static void spawn_respawn_and_stop(void **state)
{
    (void)state;
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    assert_int_equal(dmce_daemon_count(c), 2);
    for (unsigned i = 0; i < 2; i++) {
        dmce_stats_t st;
        assert_int_equal(dmce_daemon_stats(c, i, &st), 0);
        remember_spawned((pid_t)st.pid);
    }
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(exercise(c, 400 + i), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    int k = dmce_daemon_of(c, a);
    assert_true(k >= 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, (unsigned)k, &st), 0);
    assert_true(st.pid > 0 && is_memd((pid_t)st.pid));
    assert_true(harness_shm_count() > 0);
    uint64_t regs0 = dstat(DMCE_DSTAT_REGISTRATIONS);

    /* kill -9 one of them: the dispatcher sees it die and starts it again */
    assert_int_equal(kill((pid_t)st.pid, SIGKILL), 0);
    struct dcond dead = {DMCE_DSTAT_DEATHS, 1};
    assert_true(harness_wait(dstat_ge, &dead, 5000));
    struct respawned w = {st.daemon_id, (pid_t)st.pid};
    assert_true(harness_wait(respawned, &w, 10000));
    assert_true(dstat(DMCE_DSTAT_REGISTRATIONS) > regs0);
    static struct dir d;
    assert_int_equal(disp_dir(&d), 0);
    for (unsigned i = 0; i < d.nd; i++)
        if (d.d[i].state == DMCE_DISP_ALIVE)
            remember_spawned((pid_t)d.d[i].pid);
    assert_int_equal(dmce_disconnect(c), 0);
    /* the cluster serves a new client with both daemons */
    c = client_set_up(0);
    assert_non_null(c);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(exercise(c, 500 + i), 0);
    assert_int_equal(dmce_disconnect(c), 0);

    /* SIGTERM to the dispatcher stops its daemons: no process, no shm object left */
    assert_int_equal(harness_stop(0), 0);
    assert_true(harness_wait(pids_gone, NULL, 10000));
    if (!harness_wait(no_shm_left, NULL, 10000))
        print_error("%d shm objects left after the dispatcher stopped\n", harness_shm_count());
    assert_int_equal(harness_shm_count(), 0);
}

/* ---- 8. transparent mode
 * ------------------------------------------------------------------------- */

static int setup_transparent(void **state)
{
    (void)state;
    static const char *const f[] = {"--mirroring=on", NULL};
    if (cluster(f, 3, small_memd) < 0)
        return -1;
    uint64_t three = 3;
    return harness_wait(all_mirrored, &three, 20000) ? 0 : -1;
}

static void transparent_ops_and_failover(void **state)
{
    (void)state;
    dmce_client_t *c = NULL;
    assert_int_equal(harness_client_dir(&c, DMCE_CONNECT_TRANSPARENT), 0);
    assert_int_equal(dmce_daemon_count(c), 1); /* the dispatcher is its only peer */
    assert_int_equal(dmce_cluster_stats(c, &(dmce_cluster_stats_t){0}), -ENOTSUP);
    uint64_t fwd0 = dstat(DMCE_DSTAT_FORWARDED);
    assert_int_equal(dmce_setup(c, 1 * MIB, 0, NULL, NULL), 0);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(exercise(c, 600 + i), 0);
    dmce_stats_t st;
    assert_int_equal(dmce_stats(c, &st), 0); /* the cluster's, summed by the dispatcher */
    assert_true(st.ops_malloc >= 8);
    assert_true(dstat(DMCE_DSTAT_FORWARDED) >= fwd0 + 1 + 8 * 4);

    /* its data across the death of its block's primary */
    dmce_addr_t a;
    uint8_t buf[4096], back[4096];
    pattern(buf, sizeof(buf), 77);
    assert_int_equal(dmce_malloc(c, sizeof(buf), &a), 0);
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    uint64_t three = 3;
    assert_true(harness_wait(all_mirrored, &three, 10000)); /* its block has its mirror */
    uint32_t primary = primary_of(a);
    assert_in_range(primary, 1, 3);
    uint64_t promotions0 = dstat(DMCE_DSTAT_PROMOTIONS);
    harness_kill((int)primary);
    memset(back, 0, sizeof(back));
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_true(dstat(DMCE_DSTAT_PROMOTIONS) > promotions0);
    uint32_t now_primary = primary_of(a);
    assert_true(now_primary != 0 && now_primary != primary);
    /* writes and allocations go on */
    pattern(buf, sizeof(buf), 78);
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
    assert_int_equal(exercise(c, 700), 0);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    /* the killed daemon comes back: the cluster is whole again */
    assert_int_equal(start_memd_v((int)primary, small_memd), 0);
    assert_true(harness_wait(all_mirrored, &three, 20000));
}

/* ---- 9. bad frames, a second dispatcher
 * ----------------------------------------------------------- */

static int setup_bad_frames(void **state)
{
    (void)state;
    return cluster(NULL, 1, small_memd);
}

static int disp_connect_raw(void)
{
    int fd = dmce_unix_connect(harness_disp_sock());
    if (fd < 0)
        return fd;
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* The dispatcher still answers, and a client still allocates. */
static void still_serving(void)
{
    dmce_cluster_stats_t s;
    assert_int_equal(dmce_cluster_stats(observer, &s), 0);
    assert_int_equal(s.daemons_alive, 1);
    dmce_client_t *c = client_set_up(0);
    assert_non_null(c);
    assert_int_equal(exercise(c, 800), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void bad_header_frames_dropped(void **state)
{
    (void)state;
    uint8_t h[DMCE_MSMP_HDR_SIZE];
    int32_t st;
    uint8_t buf[256];
    /* bad magic: an error answer (request ID 0), then the connection is closed */
    int fd = disp_connect_raw();
    assert_true(fd >= 0);
    memset(h, 0x41, sizeof(h));
    assert_int_equal(raw_send_bytes(fd, h, sizeof(h)), 0);
    uint64_t id = 1;
    assert_int_equal(raw_recv(fd, &st, NULL, &id, buf, sizeof(buf)), 0);
    assert_int_equal(st, DMCE_EBADMAGIC);
    assert_int_equal(id, 0);
    assert_true(raw_closed(fd));
    close(fd);
    still_serving();

    /* bad version */
    fd = disp_connect_raw();
    assert_true(fd >= 0);
    dmce_msmp_hdr_t hd = {.magic = DMCE_MSMP_MAGIC,
                          .version = DMCE_MSMP_VERSION + 7,
                          .op = DMCE_MSMP_OP_DISP_STATS,
                          .req_id = 5};
    dmce_msmp_hdr_encode(&hd, h);
    assert_int_equal(raw_send_bytes(fd, h, sizeof(h)), 0);
    assert_int_equal(raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf)), 0);
    assert_int_equal(st, DMCE_EVERSION);
    assert_true(raw_closed(fd));
    close(fd);

    /* a huge length: refused before anything is read or allocated */
    fd = disp_connect_raw();
    assert_true(fd >= 0);
    hd = (dmce_msmp_hdr_t){.magic = DMCE_MSMP_MAGIC,
                           .version = DMCE_MSMP_VERSION,
                           .op = DMCE_MSMP_OP_REGISTER,
                           .req_id = 6,
                           .len = UINT32_MAX};
    dmce_msmp_hdr_encode(&hd, h);
    assert_int_equal(raw_send_bytes(fd, h, sizeof(h)), 0);
    assert_int_equal(raw_recv(fd, &st, NULL, &id, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EMSGSIZE);
    assert_int_equal(id, 6);
    assert_true(raw_closed(fd));
    close(fd);
    still_serving();

    /* a frame with the response flag: an error answer, the connection stays */
    fd = disp_connect_raw();
    assert_true(fd >= 0);
    hd = (dmce_msmp_hdr_t){.magic = DMCE_MSMP_MAGIC,
                           .version = DMCE_MSMP_VERSION,
                           .flags = DMCE_MSMP_FLAG_RESPONSE,
                           .op = DMCE_MSMP_OP_DISP_STATS,
                           .req_id = 7};
    dmce_msmp_hdr_encode(&hd, h);
    assert_int_equal(raw_send_bytes(fd, h, sizeof(h)), 0);
    assert_int_equal(raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EPROTO);
    close(fd);
}

static void truncated_frames_dropped(void **state)
{
    (void)state;
    /* half a header, then the writer's end closes */
    int fd = disp_connect_raw();
    assert_true(fd >= 0);
    uint8_t h[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t hd = {.magic = DMCE_MSMP_MAGIC,
                          .version = DMCE_MSMP_VERSION,
                          .op = DMCE_MSMP_OP_PICK,
                          .req_id = 8,
                          .len = DMCE_DISP_PICK_SIZE};
    dmce_msmp_hdr_encode(&hd, h);
    assert_int_equal(raw_send_bytes(fd, h, 10), 0);
    shutdown(fd, SHUT_WR);
    assert_true(raw_closed(fd));
    close(fd);
    /* a whole header, half its payload */
    fd = disp_connect_raw();
    assert_true(fd >= 0);
    assert_int_equal(raw_send_bytes(fd, h, sizeof(h)), 0);
    assert_int_equal(raw_send_bytes(fd, "\1\2\3\4", 4), 0);
    shutdown(fd, SHUT_WR);
    assert_true(raw_closed(fd));
    close(fd);
    /* and a connection that sends half a frame and just stays does not block anyone */
    fd = disp_connect_raw();
    assert_true(fd >= 0);
    assert_int_equal(raw_send_bytes(fd, h, 10), 0);
    still_serving();
    close(fd);
    still_serving();
}

static void unexpected_ops_answered(void **state)
{
    (void)state;
    int fd = disp_connect_raw();
    assert_true(fd >= 0);
    int32_t st;
    uint16_t op;
    uint8_t buf[512];
    uint64_t id;
    /* one connection for all of them: each is answered with an error, none closes it */
    struct {
        uint16_t op;
        uint32_t len;
        int32_t want;
    } cases[] = {
        {0x7777, 0, -EOPNOTSUPP},                                /* unknown op */
        {DMCE_MSMP_OP_MAP, 0, -EOPNOTSUPP},                      /* a daemon's op, not forwarded */
        {DMCE_MSMP_OP_REGISTER, 3, -EBADMSG},                    /* too short */
        {DMCE_MSMP_OP_HEARTBEAT, DMCE_DISP_PULSE_SIZE, -ENOENT}, /* not a registered daemon */
        {DMCE_MSMP_OP_DIRECTORY, 3, -EBADMSG},
        {DMCE_MSMP_OP_PICK, DMCE_DISP_PICK_SIZE + 1, -EBADMSG},
        {DMCE_MSMP_OP_SESSION, 4, -EBADMSG},
        {DMCE_MSMP_OP_BLOCK_EVENT, DMCE_DISP_EVENT_SIZE, -EPERM}, /* a client's "event" */
        {DMCE_MSMP_OP_MIRROR_PEER, DMCE_DISP_PEER_REQ_SIZE, -EPERM},
        {DMCE_MSMP_OP_DISP_STATS, 8, -EBADMSG},
    };
    uint8_t p[64];
    for (unsigned i = 0; i < DMCE_ARRAY_LEN(cases); i++) {
        memset(p, 0, sizeof(p));
        if (cases[i].op == DMCE_MSMP_OP_HEARTBEAT) {
            dmce_disp_pulse_t pl = {.daemon_id = 1, .seq = 1};
            dmce_disp_pulse_encode(&pl, p);
        } else if (cases[i].op == DMCE_MSMP_OP_BLOCK_EVENT) {
            dmce_disp_event_msg_t ev = {.daemon_id = 1, .block = 1, .event = DMCE_DISP_EV_GONE};
            dmce_disp_event_encode(&ev, p);
        } else if (cases[i].op == DMCE_MSMP_OP_MIRROR_PEER) {
            dmce_disp_peer_req_encode(1, 1, p);
        }
        assert_int_equal(raw_send(fd, cases[i].op, 100 + i, p, cases[i].len), 0);
        int n = raw_recv(fd, &st, &op, &id, buf, sizeof(buf));
        if (n != 0 || st != cases[i].want)
            print_error("op %u (%s), %u bytes: %d, status %s\n", cases[i].op,
                        dmce_msmp_op_name(cases[i].op), cases[i].len, n, dmce_strerror(st));
        assert_int_equal(n, 0);
        assert_int_equal(st, cases[i].want);
        assert_int_equal(op, cases[i].op);
        assert_int_equal(id, 100 + i);
    }
    /* a register for another process: refused (a daemon speaks for itself only) */
    dmce_disp_register_t rq = {.daemon_id = 5,
                               .pid = (uint32_t)getpid() + 1,
                               .numa_node = -1,
                               .capacity = MIB,
                               .block_size = MIB,
                               .max_blocks = 1};
    snprintf(rq.path, sizeof(rq.path), "%.200s/nobody.sock", H.dir);
    uint8_t rb[DMCE_DISP_REGISTER_HDR + DMCE_MSMP_PATH_MAX];
    int n = dmce_disp_register_encode(&rq, rb, sizeof(rb));
    assert_true(n > 0);
    assert_int_equal(raw_send(fd, DMCE_MSMP_OP_REGISTER, 200, rb, (uint32_t)n), 0);
    assert_int_equal(raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EINVAL);
    /* the same connection still gets answers */
    assert_int_equal(raw_send(fd, DMCE_MSMP_OP_DISP_STATS, 201, NULL, 0), 0);
    n = raw_recv(fd, &st, NULL, &id, buf, sizeof(buf));
    assert_int_equal(st, 0);
    assert_int_equal(id, 201);
    uint64_t v[DMCE_DSTAT_COUNT_];
    assert_int_equal(dmce_msmp_values_decode(buf, (size_t)n, v, DMCE_DSTAT_COUNT_), 0);
    assert_int_equal(v[DMCE_DSTAT_DAEMONS_ALIVE], 1);
    assert_int_equal(v[DMCE_DSTAT_REGISTRATIONS], 1); /* nothing above registered */
    close(fd);
    still_serving();
}

static void second_dispatcher_refused(void **state)
{
    (void)state;
    char lock[400];
    snprintf(lock, sizeof(lock), "%s/dispatcher.lock", H.dir);
    struct stat st0, st1;
    assert_int_equal(stat(lock, &st0), 0);
    /* same runtime directory: refused, exit status non-zero */
    int r = harness_start_expect_exit(0, NULL);
    assert_true(r > 0);
    /* the refused one leaves the running one's lock alone: a third is refused too, even on
     * a socket of its own (the lock is then the only guard) */
    assert_int_equal(stat(lock, &st1), 0);
    assert_int_equal(st1.st_ino, st0.st_ino);
    char sock[400];
    snprintf(sock, sizeof(sock), "--socket=%s/other.sock", H.dir);
    assert_true(harness_start_expect_exit(0, sock, NULL) > 0);
    assert_true(harness_start_expect_exit(0, sock, NULL) > 0);
    assert_int_equal(stat(lock, &st1), 0);
    assert_int_equal(st1.st_ino, st0.st_ino);
    still_serving();
}

int main(void)
{
    const struct CMUnitTest rr[] = {cmocka_unit_test(round_robin_spreads_evenly)};
    const struct CMUnitTest lu[] = {cmocka_unit_test(least_used_avoids_fullest)};
    const struct CMUnitTest numa[] = {cmocka_unit_test(numa_local_follows_client_node)};
    const struct CMUnitTest scal[] = {cmocka_unit_test(full_daemon_next_takes_it),
                                      cmocka_unit_test(too_big_is_clear_and_leaks_nothing)};
    const struct CMUnitTest none[] = {cmocka_unit_test(no_daemon_fails_fast)};
    const struct CMUnitTest one[] = {cmocka_unit_test(one_daemon_warns_and_works)};
    const struct CMUnitTest ranges[] = {cmocka_unit_test(daemons_keep_their_own_ranges)};
    const struct CMUnitTest crash[] = {cmocka_unit_test(kill9_loop_under_load)};
    const struct CMUnitTest fake[] = {cmocka_unit_test(fake_garbage_marked_dead),
                                      cmocka_unit_test(fake_stall_marked_dead),
                                      cmocka_unit_test(fake_silent_marked_dead)};
    const struct CMUnitTest restart[] = {cmocka_unit_test(restart_rebuilds_directory),
                                         cmocka_unit_test(death_while_no_dispatcher)};
    const struct CMUnitTest spawn[] = {cmocka_unit_test(spawn_respawn_and_stop)};
    const struct CMUnitTest transp[] = {cmocka_unit_test(transparent_ops_and_failover)};
    const struct CMUnitTest bad[] = {
        cmocka_unit_test(bad_header_frames_dropped), cmocka_unit_test(truncated_frames_dropped),
        cmocka_unit_test(unexpected_ops_answered), cmocka_unit_test(second_dispatcher_refused)};
    int r = 0;
    r += cmocka_run_group_tests_name("policy_round_robin", rr, setup_round_robin, teardown_cluster);
    r += cmocka_run_group_tests_name("policy_least_used", lu, setup_least_used, teardown_cluster);
    r += cmocka_run_group_tests_name("policy_numa_local", numa, setup_numa_local, teardown_cluster);
    r += cmocka_run_group_tests_name("scalability", scal, setup_scalability, teardown_cluster);
    r += cmocka_run_group_tests_name("no_daemon", none, setup_no_daemon, teardown_cluster);
    r += cmocka_run_group_tests_name("one_daemon_mirroring", one, setup_one_daemon_mirroring,
                                     teardown_cluster);
    r += cmocka_run_group_tests_name("own_ranges", ranges, setup_ranges, teardown_cluster);
    r += cmocka_run_group_tests_name("fake_daemon", fake, setup_fake_daemon, teardown_fake);
    r +=
        cmocka_run_group_tests_name("dispatcher_restart", restart, setup_restart, teardown_cluster);
    r += cmocka_run_group_tests_name("dispatcher_crash_loop", crash, setup_restart,
                                     teardown_cluster);
    r += cmocka_run_group_tests_name("spawn", spawn, setup_spawn, teardown_spawn);
    r += cmocka_run_group_tests_name("transparent", transp, setup_transparent, teardown_cluster);
    r += cmocka_run_group_tests_name("bad_frames", bad, setup_bad_frames, teardown_cluster);
    return r;
}
