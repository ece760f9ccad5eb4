/*
 * Integration: MSMP over shared-memory rings (runtime/transport_ring.h)
 * against real dmce-memd processes: the transport is chosen and used, and
 * every fault of issue 7 is handled without affecting other clients: a
 * client that dies with half a frame in its ring, a corrupted header, a
 * corrupted ring, ring_open misuse, frames larger than the ring, a daemon
 * that dies while a client waits, a daemon that offers no rings, and
 * several clients at once with none starved.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "turns.h"
#include "util.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static int setup_daemons(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    /* Small rings: large frames wrap many times. */
    assert_int_equal(
        harness_start(1, "--block-size=8M", "--max-blocks=4", "--ring-capacity=4K", NULL), 0);
    assert_int_equal(harness_start(2, "--block-size=8M", "--max-blocks=4", "--rings=no", NULL), 0);
    return 0;
}

static int teardown_daemons(void **state)
{
    (void)state;
    int s1 = H.pid[1] ? harness_stop(1) : 0, s2 = H.pid[2] ? harness_stop(2) : 0;
    int left = harness_shm_count();
    harness_cleanup();
    assert_int_equal(s1, 0);
    assert_int_equal(s2, 0);
    assert_int_equal(left, 0);
    return 0;
}

static dmce_client_t *client(int id, unsigned flags)
{
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = flags};
    dmce_client_t *c;
    assert_int_equal(harness_client_opts(&c, &id, 1, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

/* A well-behaved client on daemon 1 still gets served. */
static void assert_serves(void)
{
    dmce_client_t *c = client(1, DMCE_CONNECT_NO_MAP);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    uint8_t in[100], out[100];
    memset(in, 0x3c, sizeof(in));
    assert_int_equal(dmce_write(c, a, in, sizeof(in)), 0);
    assert_int_equal(dmce_read(c, a, out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(dmce_disconnect(c), 0);
}

static uint64_t ring_clients(void)
{
    dmce_client_t *c;
    int one = 1;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_RING};
    assert_int_equal(harness_client_opts(&c, &one, 1, &o), 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    dmce_abandon(c);
    return st.ring_clients;
}

static int ring_clients_are_zero(void *arg)
{
    (void)arg;
    return ring_clients() == 0;
}

/* The default client uses the rings; NO_RING and a daemon without rings use the socket. */
static void test_transport_is_chosen_by_libdmce(void **state)
{
    (void)state;
    assert_int_equal(ring_clients(), 0);
    dmce_client_t *c = client(1, DMCE_CONNECT_NO_MAP);
    assert_int_equal(ring_clients(), 1);
    dmce_client_t *s = client(1, DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING);
    assert_int_equal(ring_clients(), 1);
    /* Frames larger than the 4 KiB rings, both ways. */
    const size_t n = 600 * KiB;
    uint8_t *in = malloc(n), *out = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(i * 13 + (i >> 11));
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, n, &a), 0);
    assert_int_equal(dmce_write(c, a, in, n), 0);
    assert_int_equal(dmce_read(s, a, out, n), 0);
    assert_memory_equal(in, out, n);
    memset(out, 0, n);
    assert_int_equal(dmce_read(c, a, out, n), 0);
    assert_memory_equal(in, out, n);
    assert_int_equal(dmce_read(c, a, out, n + 1), DMCE_ECROSSEND); /* errors travel the same */
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_free(c, a), DMCE_EBADADDR);
    free(in);
    free(out);
    assert_int_equal(dmce_disconnect(s), 0);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));

    /* A daemon that offers no rings: the client stays on the socket, silently. */
    c = client(2, DMCE_CONNECT_NO_MAP);
    assert_int_equal(dmce_malloc(c, 10, &a), 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_int_equal(st.ring_clients, 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ring_open misuse: each its own error; a second ring_open over the ring. */
static void test_ring_open_errors(void **state)
{
    (void)state;
    dmce_rt_t rt;
    int bell, fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_ring_open(fd, 5000, &rt, &bell), -EINVAL);     /* not a power of two */
    assert_int_equal(raw_ring_open(fd, 64 << 20, &rt, &bell), -EINVAL); /* too large */
    uint8_t bad[4] = {0};
    assert_int_equal(raw_send(fd, DMCE_MSMP_OP_RING_OPEN, 1, bad, sizeof(bad)), 0);
    int32_t st;
    uint8_t buf[64];
    assert_int_equal(raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EBADMSG);
    assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
    uint8_t p[DMCE_MSMP_RING_REQ_SIZE] = {0};
    assert_int_equal(raw_ring_request(&rt, bell, DMCE_MSMP_OP_RING_OPEN, 2, p, sizeof(p)), 0);
    assert_int_equal(raw_ring_recv(&rt, bell, &st, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EALREADY);
    /* Ops work over the raw ring: stats. */
    uint8_t sbuf[DMCE_MSMP_STATS_SIZE + 64];
    assert_true(raw_ring_request(&rt, bell, DMCE_MSMP_OP_STATS, 3, NULL, 0) == 0);
    assert_true(raw_ring_recv(&rt, bell, &st, sbuf, sizeof(sbuf)) > 0);
    assert_int_equal(st, 0);
    /* Bytes on the socket after the switch: the daemon drops the client. */
    assert_int_equal(raw_send_bytes(fd, "x", 1), 0);
    assert_true(raw_closed(fd));
    close(fd);
    close(bell);
    dmce_rt_unmap(&rt);
    assert_serves();
}

/* A client dies with half a frame in its ring: dropped, the others served. */
static void test_half_written_frame_then_death(void **state)
{
    (void)state;
    dmce_client_t *other = client(1, DMCE_CONNECT_NO_MAP);
    for (int round = 0; round < 20; round++) {
        dmce_rt_t rt;
        int bell, fd = raw_connect(1);
        assert_true(fd >= 0);
        assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
        uint8_t hb[DMCE_MSMP_HDR_SIZE];
        dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                             .version = DMCE_MSMP_VERSION,
                             .op = DMCE_MSMP_OP_WRITE,
                             .req_id = 9,
                             .len = 10000};
        dmce_msmp_hdr_encode(&h, hb);
        /* Half a header, or a header and part of its payload. */
        size_t part = round % 2 ? 10 : sizeof(hb);
        assert_int_equal(raw_ring_send(&rt, bell, hb, part), 0);
        if (part == sizeof(hb))
            assert_int_equal(raw_ring_send(&rt, bell, hb, sizeof(hb)), 0);
        /* Meanwhile the other client is unaffected. */
        dmce_addr_t a;
        assert_int_equal(dmce_malloc(other, 64, &a), 0);
        assert_int_equal(dmce_free(other, a), 0);
        /* Death: the socket closes and the memory goes away, without closing the rings. */
        munmap(rt.base, rt.size);
        close(bell);
        close(fd);
    }
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000) || ring_clients() == 1);
    assert_int_equal(dmce_disconnect(other), 0);
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
    assert_serves();
}

/* A corrupted frame header in the ring: error response, client dropped. */
static void test_corrupt_header_in_ring(void **state)
{
    (void)state;
    dmce_rt_t rt;
    int bell, fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
    uint8_t junk[DMCE_MSMP_HDR_SIZE];
    memset(junk, 0xee, sizeof(junk));
    assert_int_equal(raw_ring_send(&rt, bell, junk, sizeof(junk)), 0);
    int32_t st = 0;
    uint8_t buf[64];
    assert_int_equal(raw_ring_recv(&rt, bell, &st, buf, sizeof(buf)), 0);
    assert_int_equal(st, DMCE_EBADMAGIC);
    assert_true(raw_closed(fd)); /* the stream cannot be trusted: dropped */
    close(fd);
    close(bell);
    dmce_rt_unmap(&rt);
    assert_serves();
}

/* A client that scribbles on the ring's positions: DMCE_ECORRUPT, dropped. */
static void test_corrupt_ring_positions(void **state)
{
    (void)state;
    dmce_rt_t rt;
    int bell, fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
    /* The request ring's head (bytes committed) jumps far past its capacity. */
    dmce_ring_ctl_t *ctl = (dmce_ring_ctl_t *)((uint8_t *)rt.base + sizeof(dmce_ring_seg_hdr_t));
    atomic_store(&ctl->head, (uint64_t)1 << 40);
    atomic_store(&rt.ctl->server_parked, 1);
    dmce_rt_kick(&rt, bell);
    assert_true(raw_closed(fd));
    close(fd);
    close(bell);
    dmce_rt_unmap(&rt);
    assert_serves();
}

struct waiter {
    dmce_client_t *c;
    int result;
    uint64_t ms;
};

static void *wait_malloc(void *p)
{
    struct waiter *w = p;
    uint64_t t0 = dmce_now_ms();
    dmce_addr_t a;
    w->result = dmce_malloc(w->c, 64, &a);
    w->ms = dmce_now_ms() - t0;
    return NULL;
}

/* The daemon dies while a client waits for its response: an error, no hang. */
static void test_daemon_dies_while_client_waits(void **state)
{
    (void)state;
    dmce_client_t *c = client(1, DMCE_CONNECT_NO_MAP);
    assert_int_equal(ring_clients() >= 1, 1);
    /*
     * Stop the daemon, and wait until it is stopped (kill returns before
     * every thread has stopped; a worker polling its rings would still
     * answer), so that the request sits in the ring.
     */
    kill(H.pid[1], SIGSTOP);
    int st;
    assert_int_equal(waitpid(H.pid[1], &st, WUNTRACED), H.pid[1]);
    assert_true(WIFSTOPPED(st));
    struct waiter w = {.c = c, .result = 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_malloc, &w), 0);
    usleep(100 * 1000); /* either way the result must be DMCE_ECLOSED; this lets it wait first */
    harness_kill(1);
    pthread_join(t, NULL);
    assert_int_equal(w.result, DMCE_ECLOSED);
    assert_true(w.ms < 3000); /* bounded by the liveness slices (20 ms), not by io_timeout */
    dmce_abandon(c);
    assert_int_equal(
        harness_start(1, "--block-size=8M", "--max-blocks=4", "--ring-capacity=4K", NULL), 0);
    assert_serves();
}

/*
 * One stats request on a raw ring connection, and its response (polled for
 * up to 1 s). 0, or -1 (the caller fails: it may have children to stop first).
 */
static int raw_stats(dmce_rt_t *rt, int bell)
{
    static uint8_t buf[64 * 1024];
    int32_t st = -1;
    if (raw_ring_request(rt, bell, DMCE_MSMP_OP_STATS, 5, NULL, 0) != 0)
        return -1;
    /* as a granted client: its worker, still polling, is a spinner too */
    for (uint64_t end = dmce_now_ns() + 1000000000ull;
         dmce_ring_readable(&rt->rp.rx) == 0 && dmce_now_ns() < end;)
        dmce_cpu_relax();
    return raw_ring_recv(rt, bell, &st, buf, sizeof(buf)) > 0 && st == 0 ? 0 : -1;
}

/*
 * One client and the worker that serves it fit two CPUs: the client is
 * granted a spin with a CPU pause, never told to yield. (The daemon once
 * counted a client that asks again twice, as an active client and as a
 * new spinner, and told a lone client on a 2-CPU machine to yield the CPU
 * between looks: half its throughput.)
 */
static void test_one_client_spins_with_a_pause(void **state)
{
    (void)state;
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        skip(); /* one CPU: nobody spins */
    /* the earlier tests' clients are gone (the daemon closed them: they count no more) */
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
    dmce_rt_t rt;
    int bell, fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
    /*
     * For 20 ms first: other clients' recent requests (they count as
     * active for 5 ms) are forgotten, and the worker, whose poll now pays
     * off, polls for us (its budget may have shrunk in an earlier test).
     */
    for (uint64_t end = dmce_now_ns() + 20000000ull; dmce_now_ns() < end;)
        assert_int_equal(raw_stats(&rt, bell), 0);
    int yield = 0, pause = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(raw_stats(&rt, bell), 0);
        uint32_t m = atomic_load(&rt.ctl->spin_mode);
        yield += m == DMCE_RT_SPIN_YIELD;
        pause += m == DMCE_RT_SPIN_PAUSE;
    }
    assert_int_equal(yield, 0);
    assert_true(pause > 0);
    close(fd);
    close(bell);
    dmce_rt_unmap(&rt);
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
}

/* Several ring clients at once (separate processes): every one finishes its share. */
static void test_many_clients_none_starves(void **state)
{
    (void)state;
    enum { N = 6, OPS = 3000 };
    pid_t pid[N];
    for (int i = 0; i < N; i++) {
        pid[i] = harness_fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
            int one = 1;
            dmce_client_t *c;
            if (harness_client_opts(&c, &one, 1, &o) || dmce_setup(c, 0, 0, NULL, NULL))
                _exit(2);
            dmce_addr_t a;
            if (dmce_malloc(c, 64, &a))
                _exit(3);
            uint8_t b[64];
            memset(b, i, sizeof(b));
            for (int k = 0; k < OPS; k++) {
                if (dmce_write(c, a, b, sizeof(b)) || dmce_read(c, a, b, sizeof(b)) ||
                    b[0] != (uint8_t)i)
                    _exit(4);
            }
            _exit(dmce_disconnect(c) ? 5 : 0);
        }
    }
    uint64_t deadline = dmce_now_ms() + 60000;
    for (int i = 0; i < N; i++) {
        int st = -1;
        while (waitpid(pid[i], &st, WNOHANG) == 0) {
            if (dmce_now_ms() > deadline) {
                for (int k = 0; k < N; k++)
                    kill(pid[k], SIGKILL);
                fail_msg("client %d did not finish %d ops in 60 s: starved", i, OPS);
            }
            usleep(2000);
        }
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
    /* Six clients and two workers outnumber the CPUs of a small machine: they took turns. */
    long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    dmce_stats_t st;
    assert_int_equal(harness_sock_stats(harness_sock(1), &st), 0);
    if (ncpus >= 2 && N + 2 > ncpus)
        assert_true(st.ring_turns > 0);
}

/* ---- CPU turns across daemons (runtime/turns.h, docs/ring.md "CPU turns") ---- */

/*
 * The daemons' turns board, opened the way they do (turns, or turns.nodeN),
 * when this machine is small enough for 6 clients to crowd it; else NULL.
 */
static dmce_turns_t *open_board_of_dir(void)
{
    long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpus < 2 || ncpus > 6)
        return NULL;
    char path[512];
    for (int node = -1; node < 8; node++) {
        if (node < 0)
            snprintf(path, sizeof(path), "%s/turns", H.dir);
        else
            snprintf(path, sizeof(path), "%s/turns.node%d", H.dir, node);
        dmce_turns_t *t;
        if (access(path, F_OK) == 0 && dmce_turns_open(path, (unsigned)ncpus, &t) == 0)
            return t;
    }
    fail_msg("no turns board in %s", H.dir);
    return NULL;
}

/* Shared with the load processes: their op counts, and when to stop. */
struct load {
    _Atomic int stop;
    _Atomic uint64_t ops[8];
};

/* A client process of daemon id: write and read back its own pattern until told to stop. */
static pid_t load_client(struct load *ld, int slot, int id)
{
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid)
        return pid;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    dmce_client_t *c;
    if (harness_client_opts(&c, &id, 1, &o) || dmce_setup(c, 0, 0, NULL, NULL))
        _exit(2);
    dmce_addr_t a;
    int me = dmce_malloc(c, 256, &a);
    if (me) {
        fprintf(stderr, "load client %d of daemon %d: malloc: %s\n", slot, id, dmce_strerror(me));
        _exit(3);
    }
    uint8_t b[256], r[256];
    uint64_t deadline = dmce_now_ms() + 30000;
    for (uint64_t k = 0; !atomic_load(&ld->stop) && dmce_now_ms() < deadline; k++) {
        memset(b, (int)(slot * 31 + k), sizeof(b));
        int e = dmce_write(c, a, b, sizeof(b));
        if (!e)
            e = dmce_read(c, a, r, sizeof(r));
        if (e == DMCE_ECLOSED || e == DMCE_ENODAEMON)
            _exit(10); /* its daemon was killed */
        if (e || memcmp(b, r, sizeof(b)))
            _exit(4);
        atomic_fetch_add(&ld->ops[slot], 1);
    }
    _exit(dmce_disconnect(c) ? 5 : 0);
}

/* n load clients of daemon id (slots 0..n-1) in pid[], sharing the returned struct. */
static struct load *load_start(pid_t *pid, int n, int id)
{
    struct load *ld =
        mmap(NULL, sizeof(*ld), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ld != MAP_FAILED);
    memset(ld, 0, sizeof(*ld));
    for (int i = 0; i < n; i++)
        pid[i] = load_client(ld, i, id);
    return ld;
}

/* Stop them; each must have ended well. */
static void load_stop(struct load *ld, pid_t *pid, int n)
{
    atomic_store(&ld->stop, 1);
    for (int i = 0; i < n; i++) {
        int st;
        assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    munmap(ld, sizeof(*ld));
}

static uint64_t ops_of(struct load *ld, int from, int to)
{
    uint64_t n = 0;
    for (int i = from; i < to; i++)
        n += atomic_load(&ld->ops[i]);
    return n;
}

struct progress {
    struct load *ld;
    uint64_t base;
    uint64_t want;
};

struct starting {
    struct load *ld;
    pid_t *pid;
    int exited; /* a load client ended before its first op */
};

/* Every one of the 6 load clients did an op (it is connected and has its memory), or one ended. */
static int all_started(void *p)
{
    struct starting *s = p;
    for (int i = 0; i < 6; i++) {
        if (atomic_load(&s->ld->ops[i]))
            continue;
        int st;
        if (waitpid(s->pid[i], &st, WNOHANG) == s->pid[i]) {
            s->pid[i] = 0;
            s->exited = 1;
            return 1;
        }
        return 0;
    }
    return 1;
}

/* Daemon 1's clients (slots 0-1) did `want` ops since `base`. */
static int progressed(void *p)
{
    struct progress *g = p;
    return ops_of(g->ld, 0, 2) - g->base >= g->want;
}

struct turns_flag {
    dmce_rt_t *rt;
    int bell;
    uint32_t want;
    int failed; /* a request failed: the wait ends, the test fails after reaping */
};

/* After one request: the daemon's in_turns word in our control page reads want. */
static int in_turns_is(void *p)
{
    struct turns_flag *f = p;
    if (raw_stats(f->rt, f->bell) != 0) {
        f->failed = 1;
        return 1;
    }
    return atomic_load(&f->rt->ctl->in_turns) == f->want;
}

/*
 * While ring clients crowd the CPUs, the daemon tells each of its ring
 * clients so (in_turns in the control page: a wait for a turn looks at
 * the daemon's life first after 5 ms, not 1 ms), and takes it back when
 * they no longer do.
 */
static void test_clients_are_told_of_turns(void **state)
{
    (void)state;
    long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpus < 2 || ncpus > 4)
        skip(); /* 4 clients and their worker do not crowd it: nothing to tell */
    dmce_rt_t rt;
    int bell, fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_ring_open(fd, 0, &rt, &bell), 0);
    struct turns_flag f = {&rt, bell, 0, 0};
    assert_true(in_turns_is(&f)); /* alone: no turns */
    pid_t pid[4];
    struct load *ld = load_start(pid, 4, 1);
    f.want = 1;
    int told = harness_wait(in_turns_is, &f, 10000);
    load_stop(ld, pid, 4);
    assert_false(f.failed);
    assert_true(told);
    f.want = 0;
    assert_true(harness_wait(in_turns_is, &f, 10000));
    assert_false(f.failed);
    close(fd);
    close(bell);
    dmce_rt_unmap(&rt);
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
}

/*
 * Two ring daemons share the turns board of the runtime dir. One of them
 * is stopped (SIGSTOP: it may hold a token and never give it back), then
 * killed: the other's clients keep being served all along, and the
 * stopped one's token is taken back, not waited for.
 */
static void test_turns_survive_a_stopped_or_dead_daemon(void **state)
{
    (void)state;
    assert_int_equal(harness_start(3, "--block-size=8M", "--max-blocks=4", NULL), 0);
    struct load *ld =
        mmap(NULL, sizeof(*ld), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ld != MAP_FAILED);
    memset(ld, 0, sizeof(*ld));
    pid_t pid[6];
    for (int i = 0; i < 6; i++) /* 2 clients of daemon 1, 4 of daemon 3 */
        pid[i] = load_client(ld, i, i < 2 ? 1 : 3);
    /* each connected and served before daemon 3 stops (a kill then ends them all alike) */
    struct starting sg = {ld, pid, 0};
    int started = harness_wait(all_started, &sg, 20000);
    if (!started || sg.exited) {
        atomic_store(&ld->stop, 1);
        for (int i = 0; i < 6; i++)
            if (pid[i] > 0)
                waitpid(pid[i], NULL, 0);
        fail_msg("the load clients did not all start (one exited: %d)", sg.exited);
    }
    struct progress g = {ld, 0, 200};
    assert_true(harness_wait(progressed, &g, 20000));
    dmce_turns_t *board = open_board_of_dir();
    int stopped_holding = 0;
    for (int round = 0; round < 40 && stopped_holding < 2; round++) {
        kill(H.pid[3], SIGSTOP);
        int st;
        assert_int_equal(waitpid(H.pid[3], &st, WUNTRACED), H.pid[3]);
        /* Only a stop while it holds a token tests the rule; the others just go on. */
        stopped_holding += board && dmce_turns_pid_holds(board, (uint32_t)H.pid[3]);
        g.base = ops_of(ld, 0, 2);
        assert_true(harness_wait(progressed, &g, 5000)); /* served while daemon 3 is stopped */
        kill(H.pid[3], SIGCONT);
        g.base = ops_of(ld, 2, 6); /* and daemon 3's clients go on when it runs again */
        uint64_t t0 = dmce_now_ms();
        while (ops_of(ld, 2, 6) - g.base < 100 && dmce_now_ms() - t0 < 5000)
            usleep(1000);
        assert_true(ops_of(ld, 2, 6) - g.base >= 100);
    }
    if (board) { /* crowded (a small machine): the rule was tested, twice */
        assert_int_equal(stopped_holding, 2);
        dmce_turns_close(board);
    }
    kill(H.pid[3], SIGSTOP); /* killed, perhaps holding a token */
    int st;
    assert_int_equal(waitpid(H.pid[3], &st, WUNTRACED), H.pid[3]);
    harness_kill(3);
    g.base = ops_of(ld, 0, 2);
    assert_true(harness_wait(progressed, &g, 5000));
    atomic_store(&ld->stop, 1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), i < 2 ? 0 : 10); /* daemon 3's clients saw it die */
    }
    munmap(ld, sizeof(*ld));
    assert_true(harness_wait(ring_clients_are_zero, NULL, 5000));
    dmce_stats_t s1;
    assert_int_equal(harness_sock_stats(harness_sock(1), &s1), 0);
    if (sysconf(_SC_NPROCESSORS_ONLN) < 8)
        assert_true(s1.ring_turns > 0); /* 6 clients and 4 workers took turns */
    /* Daemon 3 again: it takes its seats on the board its predecessor died on (and removes the
     * block that one left), serves, and stops cleanly. */
    assert_int_equal(harness_start(3, "--block-size=8M", "--max-blocks=4", NULL), 0);
    ld = mmap(NULL, sizeof(*ld), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(ld != MAP_FAILED);
    memset(ld, 0, sizeof(*ld));
    pid_t again = load_client(ld, 2, 3);
    while (ops_of(ld, 2, 3) < 500 && waitpid(again, &st, WNOHANG) == 0)
        usleep(1000);
    atomic_store(&ld->stop, 1);
    assert_int_equal(waitpid(again, &st, 0), again);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_true(ops_of(ld, 2, 3) >= 500);
    munmap(ld, sizeof(*ld));
    assert_int_equal(harness_stop(3), 0);
}

/* turn_us = 0: no turns, however many clients (on a machine they crowd). */
static void test_turns_off(void **state)
{
    (void)state;
    if (sysconf(_SC_NPROCESSORS_ONLN) > 4)
        skip(); /* 4 clients and 2 workers do not crowd it: nothing to tell */
    harness_stop(1);
    assert_int_equal(harness_start(1, "--block-size=8M", "--max-blocks=4", "--ring-capacity=4K",
                                   "--turn-us=0", NULL),
                     0);
    pid_t pid[4];
    struct load *ld = load_start(pid, 4, 1);
    struct progress g = {ld, 0, 2000};
    int went = harness_wait(progressed, &g, 20000);
    load_stop(ld, pid, 4);
    assert_true(went);
    dmce_stats_t s1;
    assert_int_equal(harness_sock_stats(harness_sock(1), &s1), 0);
    assert_int_equal(s1.ring_turns, 0);
    assert_int_equal(s1.turn_wait_us, 0);
    harness_stop(1);
    assert_int_equal(
        harness_start(1, "--block-size=8M", "--max-blocks=4", "--ring-capacity=4K", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_is_chosen_by_libdmce),
        cmocka_unit_test(test_ring_open_errors),
        cmocka_unit_test(test_half_written_frame_then_death),
        cmocka_unit_test(test_corrupt_header_in_ring),
        cmocka_unit_test(test_corrupt_ring_positions),
        cmocka_unit_test(test_daemon_dies_while_client_waits),
        cmocka_unit_test(test_one_client_spins_with_a_pause),
        cmocka_unit_test(test_many_clients_none_starves),
        cmocka_unit_test(test_clients_are_told_of_turns),
        cmocka_unit_test(test_turns_survive_a_stopped_or_dead_daemon),
        cmocka_unit_test(test_turns_off),
    };
    return cmocka_run_group_tests(tests, setup_daemons, teardown_daemons);
}
