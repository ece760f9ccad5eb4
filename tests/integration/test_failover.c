/*
 * Integration: failover with the dispatcher (docs/dispatcher.md). Three
 * memory daemons register with a dmce-dispatcher; every block is mirrored.
 *
 *   - kill_under_load: several writer processes write, recording every
 *     acknowledged write; a daemon is killed with SIGKILL in the middle, at
 *     a different point each iteration (20 iterations, each bounded). The
 *     writers see no error, go on after the failover, and every
 *     acknowledged write reads back from the survivors. The killed daemon
 *     is started again, and the re-mirroring restores two copies of every
 *     block (checked through the dispatcher's stats);
 *   - restarted_daemon_used: a daemon that comes back (empty) takes new
 *     allocations again;
 *   - lost_block: with mirroring off, a block whose daemon dies is
 *     DMCE_ELOST, not a hang;
 *   - persist: stores through a dmce_map pointer survive the primary's
 *     death once dmce_persist returned;
 *   - store_survives: every acknowledged dmce_store_set, made through an
 *     in-process handle (mapped) and an out-of-process one, reads back
 *     after the daemon holding the store's primary is killed.
 *
 * Every wait is for a condition with a bound; every load loop is bounded
 * in operations and in time.
 */
#include <errno.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmce/store.h>

#include "harness.h"
#include "util.h"

#define WRITERS 3
#define ALLOCS 16
#define VALUE 1024
#define ITERATIONS 20
/*
 * Writers run until the test stops them: a budget of operations ended fast
 * writers while the test still waited for progress after a kill. The time
 * bound is a safety net past every wait of the test; reaching it is an
 * error (where = 6), not a quiet end.
 */
#define WRITER_SAFETY_MS 120000

/*
 * A restarted daemon is alive once it registered, which waits for the
 * dispatcher to have failed its previous process over. Under
 * ThreadSanitizer, with other suites running beside, that took over 10 s.
 */
#define RESTART_WAIT_MS 30000

static const char *const memd_flags[] = {"--block-size=4M", "--max-blocks=64", "--grace-ms=60000"};

static int start_memd(int id)
{
    return harness_start(id, memd_flags[0], memd_flags[1], memd_flags[2], NULL);
}

/* ---- cluster state, through a client that never sets up ---- */

static dmce_client_t *observer;

static int stats(dmce_cluster_stats_t *s)
{
    return dmce_cluster_stats(observer, s);
}

static int all_alive_3(void *arg)
{
    (void)arg;
    dmce_cluster_stats_t s;
    return stats(&s) == 0 && s.daemons_alive == 3;
}

/* Two copies of every block again: nothing single, nothing being copied. */
static int two_copies(void *arg)
{
    (void)arg;
    dmce_cluster_stats_t s;
    return stats(&s) == 0 && s.daemons_alive == 3 && s.blocks > 0 && s.blocks_single == 0 &&
           s.blocks_remirroring == 0 && s.blocks_mirrored == s.blocks;
}

/* Before each test of a group: any daemon a failed test left dead is started again. */
static int all_daemons_up(void **state)
{
    (void)state;
    for (int id = 1; id <= 3; id++)
        if (!H.pid[id] && start_memd(id) < 0)
            return -1;
    return harness_wait(all_alive_3, NULL, RESTART_WAIT_MS) ? 0 : -1;
}

static int setup_cluster(const char *mirroring)
{
    if (harness_init() < 0)
        return -1;
    if (harness_start_dispatcher(0, mirroring, NULL) < 0)
        return -1;
    for (int id = 1; id <= 3; id++)
        if (start_memd(id) < 0)
            return -1;
    if (dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &observer) < 0)
        return -1;
    return harness_wait(all_alive_3, NULL, RESTART_WAIT_MS) ? 0 : -1;
}

static int setup_mirrored(void **state)
{
    (void)state;
    if (setup_cluster("--mirroring=on") < 0)
        return -1;
    /* a daemon that started first made its block before it had a peer: wait for its mirror */
    return harness_wait(two_copies, NULL, 20000) ? 0 : -1;
}

static int teardown_cluster(void **state)
{
    (void)state;
    dmce_disconnect(observer);
    observer = NULL;
    if (H.pid[0]) /* the dispatcher first: the daemons' stops are no failures then */
        harness_stop(0);
    for (int id = 1; id <= 3; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    return 0;
}

/* ---- writer processes ---- */

struct wlog {
    atomic_uint_fast64_t ops;      /* acknowledged writes, all writers */
    atomic_int stop;
    atomic_int ready;              /* writers set up and allocated */
    struct {
        uint32_t acked[ALLOCS];    /* last acknowledged sequence number per allocation */
        int error;                 /* first error, 0 = none */
        int where;                 /* 1 write, 2 verify read, 3 mismatch, 4 setup, 5 after,
                                      6 ran out of time before it was stopped */
        uint64_t max_gap_us;       /* longest time between two acknowledgements */
    } w[WRITERS];
};

static struct wlog *wl;

static void fill(uint8_t *buf, int writer, int idx, uint32_t seq)
{
    uint64_t *q = (uint64_t *)buf;
    for (size_t i = 0; i < VALUE / 8; i++)
        q[i] = ((uint64_t)seq << 32 | (uint64_t)writer << 16 | (uint64_t)idx) ^ (i * 0x9e3779b97f4a7c15ull);
}

static int writer_main(int me)
{
    dmce_client_t *c;
    dmce_addr_t a[ALLOCS];
    uint8_t buf[VALUE], back[VALUE];
    int r = harness_client_dir(&c, 0);
    if (r == 0)
        r = dmce_setup(c, 1 << 20, DMCE_SETUP_PARTIAL, NULL, NULL);
    for (int i = 0; r == 0 && i < ALLOCS; i++)
        r = dmce_malloc(c, VALUE, &a[i]);
    if (r < 0) {
        wl->w[me].error = r;
        wl->w[me].where = 4;
        return 1;
    }
    atomic_fetch_add(&wl->ready, 1);
    uint32_t seq[ALLOCS] = {0};
    uint64_t t0 = dmce_now_ms(), last = dmce_now_ns();
    for (unsigned op = 0; !atomic_load(&wl->stop); op++) {
        if (dmce_now_ms() - t0 >= WRITER_SAFETY_MS) {
            wl->w[me].error = -ETIMEDOUT;
            wl->w[me].where = 6;
            r = -ETIMEDOUT;
            break;
        }
        int i = (int)(op % ALLOCS);
        fill(buf, me, i, ++seq[i]);
        r = dmce_write(c, a[i], buf, VALUE);
        if (r < 0) {
            wl->w[me].error = r;
            wl->w[me].where = 1;
            break;
        }
        wl->w[me].acked[i] = seq[i];
        uint64_t now = dmce_now_ns();
        if ((now - last) / 1000 > wl->w[me].max_gap_us)
            wl->w[me].max_gap_us = (now - last) / 1000;
        last = now;
        atomic_fetch_add(&wl->ops, 1);
    }
    /* Every acknowledged write reads back. */
    for (int i = 0; r == 0 && i < ALLOCS; i++) {
        if (wl->w[me].acked[i] == 0)
            continue; /* never written (the writer stopped early): nothing to check */
        r = dmce_read(c, a[i], back, VALUE);
        if (r < 0) {
            wl->w[me].error = r;
            wl->w[me].where = 2;
            break;
        }
        fill(buf, me, i, wl->w[me].acked[i]);
        if (memcmp(buf, back, VALUE) != 0) {
            uint64_t w0;
            memcpy(&w0, back, 8);
            dmce_client_stats_t cs;
            dmce_client_stats(c, &cs);
            fprintf(stderr,
                    "writer %d: allocation %d (0x%llx, daemon %d): acknowledged write %u, "
                    "read back write %u; %llu local reads, %llu failovers\n",
                    me, i, (unsigned long long)a[i], dmce_daemon_of(c, a[i]), wl->w[me].acked[i],
                    (unsigned)(w0 >> 32), (unsigned long long)cs.local_reads,
                    (unsigned long long)cs.failovers);
            wl->w[me].error = -EILSEQ;
            wl->w[me].where = 3;
            r = -EILSEQ;
        }
    }
    /* And the cluster takes new allocations after the failover. */
    dmce_addr_t x;
    if (r == 0 && ((r = dmce_malloc(c, VALUE, &x)) < 0 || (r = dmce_write(c, x, buf, VALUE)) < 0 ||
                   (r = dmce_free(c, x)) < 0)) {
        wl->w[me].error = r;
        wl->w[me].where = 5;
    }
    dmce_disconnect(c);
    return r < 0;
}

static pid_t start_writer(int me)
{
    pid_t pid = harness_fork();
    if (pid == 0)
        _exit(writer_main(me));
    return pid;
}

struct ops_at_least {
    uint64_t n;
};

static int ops_reached(void *arg)
{
    return atomic_load(&wl->ops) >= ((struct ops_at_least *)arg)->n;
}

static int writers_ready(void *arg)
{
    (void)arg;
    return atomic_load(&wl->ready) == WRITERS;
}

/* Wait for a child, bounded; its exit status or -1. */
static int reap(pid_t pid, unsigned ms)
{
    uint64_t deadline = dmce_now_ms() + ms;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (dmce_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -1;
        }
        usleep(2000);
    }
}

static void kill_under_load(void **state)
{
    (void)state;
    wl = mmap(NULL, sizeof(*wl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_ptr_not_equal(wl, MAP_FAILED);
    uint64_t worst_gap = 0;
    for (int it = 0; it < ITERATIONS; it++) {
        memset(wl, 0, sizeof(*wl));
        pid_t w[WRITERS];
        for (int i = 0; i < WRITERS; i++)
            assert_true((w[i] = start_writer(i)) > 0);
        assert_true(harness_wait(writers_ready, NULL, 10000));
        /* A different point each time: after 0 .. ~1500 acknowledged writes. */
        struct ops_at_least before = {(uint64_t)(it * 397) % 1500};
        assert_true(harness_wait(ops_reached, &before, 10000));
        int victim = 1 + it % 3;
        harness_kill(victim);
        uint64_t at_kill = atomic_load(&wl->ops);
        /* The writers go on after the failover. */
        struct ops_at_least after = {at_kill + 300};
        int progressed = harness_wait(ops_reached, &after, 10000);
        atomic_store(&wl->stop, 1);
        int bad = 0;
        for (int i = 0; i < WRITERS; i++) {
            int st = reap(w[i], 30000);
            if (st != 0 || wl->w[i].error) {
                print_error("iteration %d: writer %d: exit %d, error %s at step %d\n", it, i, st,
                            dmce_strerror(wl->w[i].error), wl->w[i].where);
                bad = 1;
            }
            worst_gap = DMCE_MAX(worst_gap, wl->w[i].max_gap_us);
        }
        assert_false(bad);
        assert_true(progressed);
        /* The killed daemon comes back; re-mirroring restores two copies of everything. */
        assert_int_equal(start_memd(victim), 0);
        if (!harness_wait(two_copies, NULL, 20000)) {
            dmce_cluster_stats_t s;
            stats(&s);
            print_error("iteration %d: alive %llu, blocks %llu, mirrored %llu, single %llu, "
                        "remirroring %llu\n",
                        it, (unsigned long long)s.daemons_alive, (unsigned long long)s.blocks,
                        (unsigned long long)s.blocks_mirrored, (unsigned long long)s.blocks_single,
                        (unsigned long long)s.blocks_remirroring);
            fail();
        }
    }
    dmce_cluster_stats_t s;
    assert_int_equal(stats(&s), 0);
    assert_int_equal(s.blocks_lost, 0);
    assert_true(s.promotions > 0);
    assert_true(s.remirrors_done > 0);
    /* Each kill took mirror copies too: their primaries kept them, and another daemon took
     * them over with the writers going on (the writers verify every acknowledged write). */
    assert_true(s.remirrors_adopted > 0);
    assert_true(s.remirrors_adopted <= s.remirrors_done);
    assert_int_equal(s.deaths, ITERATIONS);
    print_message("%d kills: %llu promotions, %llu re-mirrors (%.1f MiB copied; %llu took over "
                  "a kept copy, %.1f MiB), longest pause of a writer %.1f ms, last failover %llu "
                  "ms\n",
                  ITERATIONS, (unsigned long long)s.promotions,
                  (unsigned long long)s.remirrors_done, (double)s.remirror_bytes / (1 << 20),
                  (unsigned long long)s.remirrors_adopted,
                  (double)s.remirror_bytes_adopted / (1 << 20), (double)worst_gap / 1000,
                  (unsigned long long)s.last_failover_ms);
    munmap(wl, sizeof(*wl));
}

/* ---- a restarted daemon is used again ---- */

static void restarted_daemon_used(void **state)
{
    (void)state;
    harness_kill(2);
    assert_int_equal(start_memd(2), 0);
    assert_true(harness_wait(all_alive_3, NULL, RESTART_WAIT_MS));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    /* least-used: the empty daemon takes the next allocations */
    int on2 = 0;
    dmce_addr_t a[8];
    for (int i = 0; i < 8; i++) {
        assert_int_equal(dmce_malloc(c, 64 << 10, &a[i]), 0);
        int d = dmce_daemon_of(c, a[i]);
        assert_true(d >= 0);
        dmce_stats_t st;
        assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st), 0);
        on2 += st.daemon_id == 2;
    }
    assert_true(on2 > 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- persist ---- */

struct promoted_since {
    uint64_t n;
};

static int promoted(void *arg)
{
    dmce_cluster_stats_t s;
    return stats(&s) == 0 && s.promotions > ((struct promoted_since *)arg)->n;
}

static void persist_survives(void **state)
{
    (void)state;
    if (!harness_mapped())
        skip(); /* dmce_map needs a mapping client */
    assert_true(harness_wait(two_copies, NULL, 20000));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 8192, &a), 0);
    uint8_t *p;
    assert_int_equal(dmce_map(c, a, 8192, 0, (void **)&p), 0);
    memset(p, 0xab, 4096);            /* persisted */
    assert_int_equal(dmce_persist(c, a, 4096), 0);
    int d = dmce_daemon_of(c, a);
    dmce_stats_t st, st2;
    assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st), 0);
    /* persistv: three ranges in one request; all or nothing. */
    memset(p + 4096, 0xcd, 100);
    memset(p + 6000, 0xef, 16);
    memset(p + 8000, 0x5a, 192);
    dmce_range_t v[3] = {{a + 4096, 100}, {a + 6000, 16}, {a + 8000, 192}};
    assert_int_equal(dmce_persistv(c, v, 3), 0);
    assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st2), 0);
    assert_int_equal(st2.ops_persist, st.ops_persist + 1);
    memset(p, 0x11, 1024); /* not persisted: the second range crosses the end */
    dmce_range_t bad[2] = {{a, 1024}, {a + 8000, 193}};
    assert_int_equal(dmce_persistv(c, bad, 2), DMCE_ECROSSEND);
    bad[1].len = 0;
    assert_int_equal(dmce_persistv(c, bad, 2), -EINVAL);
    assert_int_equal(dmce_persistv(c, bad, 0), -EINVAL);
    assert_int_equal(dmce_persistv(c, NULL, 1), -EINVAL);
    assert_int_equal(dmce_unmap(c, p), 0);
    dmce_cluster_stats_t before;
    assert_int_equal(stats(&before), 0);
    harness_kill((int)st.daemon_id);
    struct promoted_since ps = {before.promotions};
    assert_true(harness_wait(promoted, &ps, 10000));
    /* A client that never saw the dead copy reads the promoted one. */
    dmce_client_t *c2;
    assert_int_equal(harness_client_dir(&c2, 0), 0);
    assert_int_equal(dmce_setup(c2, 0, 0, NULL, NULL), 0);
    uint8_t back[8192], want[8192];
    memset(want, 0xab, 4096);
    memset(want + 4096, 0, 4096);
    memset(want + 4096, 0xcd, 100);
    memset(want + 6000, 0xef, 16);
    memset(want + 8000, 0x5a, 192);
    assert_int_equal(dmce_read(c2, a, back, sizeof(back)), 0);
    assert_memory_equal(back, want, sizeof(back));
    assert_int_equal(dmce_disconnect(c2), 0);
    /* And the first client, which had it mapped, reaches it too. */
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(back, want, sizeof(back));
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(start_memd((int)st.daemon_id), 0);
    assert_true(harness_wait(all_alive_3, NULL, RESTART_WAIT_MS));
}

/*
 * ---- a client's session on a daemon that restarted while it looked away ----
 *
 * The client has sessions on every daemon. Each daemon other than the one
 * holding its allocation is killed and started again while the client
 * does not talk to it, so the client's connection to it is stale. Then the
 * allocation's daemon dies, and its copy is promoted on one of those: the
 * client reads it (mapped or over MSMP), the new process taking its
 * session and the allocations it adopted from the promotion.
 */
static void session_on_restarted_daemon(void **state)
{
    (void)state;
    assert_true(harness_wait(two_copies, NULL, 20000));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a, x;
    assert_int_equal(dmce_malloc(c, 64 << 10, &a), 0);
    uint8_t want[64 << 10], back[64 << 10];
    for (size_t i = 0; i < sizeof(want); i++)
        want[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(dmce_write(c, a, want, sizeof(want)), 0);
    int p = dmce_daemon_of(c, a);
    assert_true(p >= 0);
    dmce_stats_t pst;
    assert_int_equal(dmce_daemon_stats(c, (unsigned)p, &pst), 0);
    /* A session on every daemon: a malloc on each (then freed). */
    for (unsigned i = 0; i < dmce_daemon_count(c); i++) {
        assert_int_equal(dmce_malloc_on(c, i, 4096, &x), 0);
        assert_int_equal(dmce_free(c, x), 0);
    }
    for (int id = 1; id <= 3; id++) {
        if (id == (int)pst.daemon_id)
            continue;
        harness_kill(id);
        assert_int_equal(start_memd(id), 0);
        assert_true(harness_wait(all_alive_3, NULL, RESTART_WAIT_MS));
        assert_true(harness_wait(two_copies, NULL, 20000));
    }
    dmce_cluster_stats_t before;
    assert_int_equal(stats(&before), 0);
    harness_kill((int)pst.daemon_id);
    struct promoted_since ps = {before.promotions};
    assert_true(harness_wait(promoted, &ps, 10000));
    memset(back, 0, sizeof(back));
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(back, want, sizeof(back));
    /* And written again there (the session owns the allocation on the new daemon). */
    want[0] ^= 0xff;
    assert_int_equal(dmce_write(c, a, want, 1), 0);
    assert_int_equal(dmce_read(c, a, back, 1), 0);
    assert_int_equal(back[0], want[0]);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(start_memd((int)pst.daemon_id), 0);
    assert_true(harness_wait(all_alive_3, NULL, RESTART_WAIT_MS));
}

/*
 * ---- a mirror holder's death: its copies are taken over, not made again ----
 *
 * Through the dispatcher: kill the daemon holding most mirror copies; the
 * primaries keep those copies in step and the third daemon takes each one
 * over (mirror_adopt). Every one of them is counted as taken over (none
 * copied, none miscounted), and the data reads back.
 */
static void holder_death_copies_taken_over(void **state)
{
    (void)state;
    assert_true(harness_wait(two_copies, NULL, 20000));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    enum { N = 12, SZ = 96 << 10 };
    dmce_addr_t a[N];
    static uint8_t want[N][SZ], back[SZ];
    for (int i = 0; i < N; i++) {
        for (size_t j = 0; j < SZ; j++)
            want[i][j] = (uint8_t)(i * 31 + j * 7);
        assert_int_equal(dmce_malloc(c, SZ, &a[i]), 0);
        assert_int_equal(dmce_write(c, a[i], want[i], SZ), 0);
    }
    assert_true(harness_wait(two_copies, NULL, 20000));
    /* The victim: the daemon holding most copies. */
    dmce_stats_t st, victim;
    memset(&victim, 0, sizeof(victim));
    for (unsigned i = 0; i < dmce_daemon_count(c); i++)
        if (dmce_daemon_stats(c, i, &st) == 0 && st.mirror_copies > victim.mirror_copies)
            victim = st;
    assert_true(victim.mirror_copies > 0);
    dmce_cluster_stats_t before, s;
    assert_int_equal(stats(&before), 0);
    harness_kill((int)victim.daemon_id);
    /* Healed on the two left: the death seen and failed over (re-mirrors started after it),
     * nothing single or being copied. */
    uint64_t deadline = dmce_now_ms() + 20000;
    for (;;) {
        assert_int_equal(stats(&s), 0);
        if (s.deaths > before.deaths && s.remirrors_started > before.remirrors_started &&
            s.daemons_alive == 2 && s.blocks_single == 0 && s.blocks_remirroring == 0 &&
            s.blocks_mirrored == s.blocks)
            break;
        assert_true(dmce_now_ms() < deadline);
        usleep(1000);
    }
    print_message("memd[%u] held %llu copies: %llu taken over (%.1f MiB in use), %llu re-mirrors "
                  "in all, %.1f MiB copied\n",
                  victim.daemon_id, (unsigned long long)victim.mirror_copies,
                  (unsigned long long)(s.remirrors_adopted - before.remirrors_adopted),
                  (double)(s.remirror_bytes_adopted - before.remirror_bytes_adopted) / (1 << 20),
                  (unsigned long long)(s.remirrors_done - before.remirrors_done),
                  (double)(s.remirror_bytes - before.remirror_bytes) / (1 << 20));
    /* Every copy it held had a live primary and a daemon to take it over. */
    assert_int_equal(s.remirrors_adopted - before.remirrors_adopted, victim.mirror_copies);
    assert_true(s.remirror_bytes_adopted > before.remirror_bytes_adopted);
    assert_int_equal(s.blocks_lost, before.blocks_lost);
    for (unsigned i = 0; i < dmce_daemon_count(c); i++)
        if (dmce_daemon_stats(c, i, &st) == 0) /* the dead one does not answer */
            assert_int_equal(st.mirrors_kept, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(dmce_read(c, a[i], back, SZ), 0);
        assert_memory_equal(back, want[i], SZ);
        assert_int_equal(dmce_free(c, a[i]), 0);
    }
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(start_memd((int)victim.daemon_id), 0);
    assert_true(harness_wait(two_copies, NULL, 20000));
}

/* ---- the session store: acknowledged sets survive the primary ---- */

#define STORE_KEYS 200

static void store_key(char *k, size_t cap, int i)
{
    snprintf(k, cap, "session:%04d", i);
}

static void store_value(char *v, size_t cap, int i, int round)
{
    snprintf(v, cap, "value %d of key %d, %s", round, i, "padding to make it longer than a word");
}

static void store_survives(void **state)
{
    (void)state;
    assert_true(harness_wait(two_copies, NULL, 20000));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t sa;
    assert_int_equal(dmce_store_create(c, 1 << 20, NULL, &sa), 0);
    /* In-process when this client maps (harness_mapped), else it falls back. */
    dmce_store_t *in, *out;
    assert_int_equal(dmce_store_open(c, sa, 0, &in), 0);
    assert_int_equal(dmce_store_open(c, sa, DMCE_STORE_OUT_OF_PROCESS, &out), 0);
    char k[32], v[128];
    uint64_t ver[STORE_KEYS];
    for (int i = 0; i < STORE_KEYS; i++) {
        store_key(k, sizeof(k), i);
        store_value(v, sizeof(v), i, 0);
        assert_int_equal(dmce_store_set(i % 2 ? out : in, k, (uint32_t)strlen(k), v,
                                        (uint32_t)strlen(v), DMCE_STORE_TTL_NEVER, 0, 0, &ver[i]),
                         0);
    }
    /* Second round on half the keys, and some deletes: the latest state must survive. */
    for (int i = 0; i < STORE_KEYS; i += 2) {
        store_key(k, sizeof(k), i);
        if (i % 10 == 0) {
            assert_int_equal(dmce_store_del(i % 4 ? out : in, k, (uint32_t)strlen(k), 0), 0);
            ver[i] = 0;
            continue;
        }
        store_value(v, sizeof(v), i, 1);
        assert_int_equal(dmce_store_set(i % 4 ? out : in, k, (uint32_t)strlen(k), v,
                                        (uint32_t)strlen(v), DMCE_STORE_TTL_NEVER, 0, 0, &ver[i]),
                         0);
    }
    int d = dmce_daemon_of(c, sa);
    assert_true(d >= 0); /* an index: 0 is a daemon */
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st), 0);
    dmce_store_close(in);
    dmce_store_close(out);
    dmce_cluster_stats_t before;
    assert_int_equal(stats(&before), 0);
    harness_kill((int)st.daemon_id);
    struct promoted_since ps = {before.promotions};
    assert_true(harness_wait(promoted, &ps, 10000));

    /* A new client, out-of-process, then in-process: every key as last acknowledged. */
    dmce_client_t *c2;
    assert_int_equal(harness_client_dir(&c2, 0), 0);
    assert_int_equal(dmce_setup(c2, 0, 0, NULL, NULL), 0);
    for (int pass = 0; pass < 2; pass++) {
        dmce_store_t *s;
        assert_int_equal(dmce_store_open(c2, sa, pass ? 0 : DMCE_STORE_OUT_OF_PROCESS, &s), 0);
        for (int i = 0; i < STORE_KEYS; i++) {
            store_key(k, sizeof(k), i);
            char back[128];
            uint32_t len = 0;
            uint64_t version = 0;
            int r = dmce_store_get(s, k, (uint32_t)strlen(k), back, sizeof(back), &len, &version);
            if (ver[i] == 0) {
                assert_int_equal(r, -ENOENT);
                continue;
            }
            if (r != 0)
                print_error("pass %d key %s: %s\n", pass, k, dmce_strerror(r));
            assert_int_equal(r, 0);
            store_value(v, sizeof(v), i, i % 2 == 0 ? 1 : 0);
            assert_int_equal(len, strlen(v));
            assert_memory_equal(back, v, len);
            assert_true(version == ver[i]);
        }
        assert_int_equal(dmce_store_verify(s), 0);
        dmce_store_close(s);
    }
    assert_int_equal(dmce_store_destroy(c2, sa), 0);
    assert_int_equal(dmce_disconnect(c2), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(start_memd((int)st.daemon_id), 0);
    assert_true(harness_wait(all_alive_3, NULL, RESTART_WAIT_MS));
}

/* ---- mirroring off: a dead daemon's block is lost, and says so ---- */

static int setup_unmirrored(void **state)
{
    (void)state;
    return setup_cluster("--mirroring=off");
}

static int block_lost(void *arg)
{
    (void)arg;
    dmce_cluster_stats_t s;
    return stats(&s) == 0 && s.blocks_lost >= 1;
}

static void lost_block(void **state)
{
    (void)state;
    dmce_client_t *c;
    dmce_connect_opts_t o = {.runtime_dir = H.dir, .flags = harness_connect_flags(),
                             .failover_wait_ms = 3000};
    assert_int_equal(dmce_connect(&o, &c), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    uint8_t buf[64] = {1};
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0); /* local when mapped: no mirror */
    int d = dmce_daemon_of(c, a);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, (unsigned)d, &st), 0);
    harness_kill((int)st.daemon_id);
    assert_true(harness_wait(block_lost, NULL, 10000)); /* the dispatcher saw it */
    /*
     * A mapping client writes locally (mirroring is off) until its watcher
     * sees the daemon's process exit: wait for that, bounded; then the
     * answer is DMCE_ELOST, at once.
     */
    int r = 0;
    uint64_t t0 = dmce_now_ms();
    while (r == 0 && dmce_now_ms() - t0 < 5000)
        r = dmce_write(c, a, buf, sizeof(buf));
    if (r != DMCE_ELOST)
        print_error("write to a lost block: %s\n", dmce_strerror(r));
    assert_int_equal(r, DMCE_ELOST);
    r = dmce_read(c, a, buf, sizeof(buf));
    assert_int_equal(r, DMCE_ELOST);
    dmce_cluster_stats_t s;
    assert_int_equal(stats(&s), 0);
    assert_true(s.blocks_lost >= 1);
    assert_false(s.mirroring);
    /* the others still serve */
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    dmce_disconnect(c);
}

int main(void)
{
    const struct CMUnitTest mirrored[] = {
        cmocka_unit_test_setup(kill_under_load, all_daemons_up),
        cmocka_unit_test_setup(restarted_daemon_used, all_daemons_up),
        cmocka_unit_test_setup(persist_survives, all_daemons_up),
        cmocka_unit_test_setup(session_on_restarted_daemon, all_daemons_up),
        cmocka_unit_test_setup(holder_death_copies_taken_over, all_daemons_up),
        cmocka_unit_test_setup(store_survives, all_daemons_up),
    };
    const struct CMUnitTest unmirrored[] = {
        cmocka_unit_test(lost_block),
    };
    int r = cmocka_run_group_tests_name("failover_mirrored", mirrored, setup_mirrored,
                                        teardown_cluster);
    r += cmocka_run_group_tests_name("failover_unmirrored", unmirrored, setup_unmirrored,
                                     teardown_cluster);
    return r;
}
