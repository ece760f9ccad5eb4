/*
 * Integration: the session store under many processes, against a real
 * dmce-memd. Writers and readers are forked processes, each with its own
 * client; in-process handles (mapping clients) and out-of-process handles
 * (clients that never map: rings, and the plain socket) work on the same
 * keys at once.
 *
 *  - 4 writers + 4 readers on 64 keys with self-checking values: no torn
 *    value, every value one that was written for its key, versions of a
 *    key never go back for any reader, a view's bytes never move while it
 *    is held.
 *  - a writer SIGKILLed in the middle of its writes, 60 times, while two
 *    writers and two readers go on: the others keep making progress, the
 *    locks the victims held are taken back, the store verifies and holds
 *    only whole values.
 *  - an in-process and an out-of-process process hand a counter back and
 *    forth through the store: each sees the other's write at once.
 *
 * Children report through their exit status and a shared page; they
 * leave with _exit so that the harness's atexit cleanup (which kills the
 * daemons) runs in the parent only. A watchdog alarm bounds the binary.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "util.h"

#define MiB (1ull << 20)
#define NKEYS 64u
#define MAXV 1600u

/* How a child reaches the store. */
enum mode { IN_PROC, OOP_RING, OOP_SOCKET };

static const char *mode_name(enum mode m)
{
    return m == IN_PROC    ? "in-process"
           : m == OOP_RING ? "out-of-process (rings)"
                           : "out-of-process (socket)";
}

/* One page shared with every child. */
struct shared {
    volatile int stop;
    volatile uint64_t ops[16];      /* per child slot: operations done */
    volatile uint64_t verified[16]; /* reads checked */
    volatile int started;           /* a victim has written at least once */
    char why[16][160];              /* a failing child's reason */
};

static struct shared *sh;

static int setup_daemon(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start(1, "--block-size=8M", "--max-blocks=4", NULL), 0);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    return 0;
}

static int teardown_daemon(void **state)
{
    (void)state;
    int s = harness_stop(1);
    int left = harness_shm_count();
    harness_cleanup();
    munmap(sh, sizeof *sh);
    assert_int_equal(s, 0);
    assert_int_equal(left, 0);
    return 0;
}

static dmce_client_t *connect_mode(enum mode m)
{
    unsigned flags = m == IN_PROC    ? 0
                     : m == OOP_RING ? DMCE_CONNECT_NO_MAP
                                     : DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = flags};
    dmce_client_t *c = NULL;
    if (harness_client_opts(&c, NULL, 0, &o) != 0 || dmce_setup(c, 0, 0, NULL, NULL) != 0)
        return NULL;
    return c;
}

/* ---- self-checking values ------------------------------------------------- */

typedef struct vhdr {
    uint32_t key_id, writer, len, csum;
    uint64_t seq;
} vhdr_t;

static uint32_t fnv(const uint8_t *p, size_t n, uint32_t h)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint32_t make_value(uint8_t *buf, uint32_t key_id, uint32_t writer, uint64_t seq,
                           uint32_t len)
{
    vhdr_t h = {key_id, writer, len, 0, seq};
    uint8_t *pl = buf + sizeof h;
    for (uint32_t i = 0; i < len; i++)
        pl[i] = (uint8_t)(seq * 31 + i * 7 + key_id + writer);
    h.csum = fnv(pl, len, fnv((const uint8_t *)&h, offsetof(vhdr_t, csum), 2166136261u));
    h.csum = fnv((const uint8_t *)&h.seq, 8, h.csum);
    memcpy(buf, &h, sizeof h);
    return (uint32_t)sizeof h + len;
}

/* 1 if buf[0, n) is a whole value written for key_id. */
static int value_ok(const uint8_t *buf, uint32_t n, uint32_t key_id)
{
    vhdr_t h;
    if (n < sizeof h)
        return 0;
    memcpy(&h, buf, sizeof h);
    if (h.key_id != key_id || n != sizeof h + h.len)
        return 0;
    uint32_t c =
        fnv(buf + sizeof h, h.len, fnv((const uint8_t *)&h, offsetof(vhdr_t, csum), 2166136261u));
    return fnv((const uint8_t *)&h.seq, 8, c) == h.csum;
}

static void key_name(char *k, uint32_t id)
{
    snprintf(k, 24, "session:%u", id);
}

static uint64_t rnd_state;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* ---- children ---------------------------------------------------------------- */

#define FAIL(slot, ...)                                                                            \
    do {                                                                                           \
        snprintf(sh->why[slot], sizeof sh->why[slot], __VA_ARGS__);                                \
        _exit(10);                                                                                 \
    } while (0)

/*
 * Writer: sets (some with CAS on what it just read), some deletes. Runs
 * until sh->stop, or forever for a victim (it is killed). `victim`
 * raises sh->started after its first set.
 */
static void writer_main(int slot, uint32_t writer, enum mode m, dmce_addr_t addr, int victim)
{
    rnd_state = 0x9E3779B97F4A7C15ull * (uint64_t)(writer + 1) ^ (uint64_t)getpid();
    dmce_client_t *c = connect_mode(m);
    if (!c)
        FAIL(slot, "writer %u: cannot connect", writer);
    dmce_store_t *s;
    int r = dmce_store_open(c, addr, 0, &s);
    if (r < 0)
        FAIL(slot, "writer %u: open: %s", writer, dmce_err_name(r));
    uint8_t val[sizeof(vhdr_t) + MAXV], buf[sizeof(vhdr_t) + MAXV];
    char k[24];
    for (uint64_t seq = 1; victim || !sh->stop; seq++) {
        uint32_t id = (uint32_t)(rnd() % NKEYS), op = (uint32_t)(rnd() % 100);
        key_name(k, id);
        uint32_t kl = (uint32_t)strlen(k);
        if (op < 10) {
            r = dmce_store_del(s, k, kl, 0);
            if (r != 0 && r != -ENOENT)
                FAIL(slot, "writer %u: del: %s", writer, dmce_err_name(r));
        } else if (op < 25) { /* read-modify-write with CAS */
            uint32_t n;
            uint64_t ver;
            r = dmce_store_get(s, k, kl, buf, sizeof buf, &n, &ver);
            if (r == 0 && !value_ok(buf, n, id))
                FAIL(slot, "writer %u: torn value for key %u", writer, id);
            if (r == 0) {
                n = make_value(val, id, writer, seq, (uint32_t)(rnd() % MAXV));
                r = dmce_store_set(s, k, kl, val, n, 0, ver, 0, NULL);
                if (r != 0 && r != DMCE_ECASFAIL && r != -ENOENT)
                    FAIL(slot, "writer %u: CAS set: %s", writer, dmce_err_name(r));
            } else if (r != -ENOENT) {
                FAIL(slot, "writer %u: get: %s", writer, dmce_err_name(r));
            }
        } else {
            uint32_t n = make_value(val, id, writer, seq, (uint32_t)(rnd() % MAXV));
            r = dmce_store_set(s, k, kl, val, n, 0, 0, 0, NULL);
            if (r != 0)
                FAIL(slot, "writer %u: set: %s", writer, dmce_err_name(r));
            if (victim && !sh->started)
                sh->started = 1;
        }
        sh->ops[slot]++;
    }
    dmce_store_close(s);
    dmce_disconnect(c);
    _exit(0);
}

/* Reader: gets and views; every value whole and for its key, versions of
 * each key never going back, a held view's bytes never moving. */
static void reader_main(int slot, uint32_t reader, enum mode m, dmce_addr_t addr)
{
    rnd_state = 0xD1B54A32D192ED03ull * (uint64_t)(reader + 1) ^ (uint64_t)getpid();
    dmce_client_t *c = connect_mode(m);
    if (!c)
        FAIL(slot, "reader %u: cannot connect", reader);
    dmce_store_t *s;
    int r = dmce_store_open(c, addr, 0, &s);
    if (r < 0)
        FAIL(slot, "reader %u: open: %s", reader, dmce_err_name(r));
    uint64_t last[NKEYS] = {0};
    uint8_t buf[sizeof(vhdr_t) + MAXV];
    char k[24];
    while (!sh->stop) {
        uint32_t id = (uint32_t)(rnd() % NKEYS);
        key_name(k, id);
        uint32_t kl = (uint32_t)strlen(k), n = 0;
        uint64_t ver = 0;
        if (rnd() % 8 == 0) {
            dmce_store_view_t v;
            r = dmce_store_view(s, k, kl, &v);
            if (r == 0) {
                if (!value_ok(v.value, v.len, id))
                    FAIL(slot, "reader %u: torn view of key %u", reader, id);
                uint32_t before = fnv(v.value, v.len, 1);
                for (int i = 0; i < 3; i++) { /* others write meanwhile */
                    uint32_t j = (uint32_t)(rnd() % NKEYS);
                    char k2[24];
                    key_name(k2, j);
                    dmce_store_get(s, k2, (uint32_t)strlen(k2), buf, sizeof buf, &n, NULL);
                }
                if (fnv(v.value, v.len, 1) != before)
                    FAIL(slot, "reader %u: a held view of key %u changed", reader, id);
                ver = v.version;
                dmce_store_view_release(s, &v);
            }
        } else {
            r = dmce_store_get(s, k, kl, buf, sizeof buf, &n, &ver);
            if (r == 0 && !value_ok(buf, n, id))
                FAIL(slot, "reader %u: torn value for key %u (%u bytes)", reader, id, n);
        }
        if (r == 0) {
            if (ver < last[id])
                FAIL(slot, "reader %u: key %u went back from version %llu to %llu", reader, id,
                     (unsigned long long)last[id], (unsigned long long)ver);
            last[id] = ver;
            sh->verified[slot]++;
        } else if (r != -ENOENT) {
            FAIL(slot, "reader %u: get: %s", reader, dmce_err_name(r));
        }
        sh->ops[slot]++;
    }
    dmce_store_close(s);
    dmce_disconnect(c);
    _exit(0);
}

static pid_t spawn_writer(int slot, uint32_t w, enum mode m, dmce_addr_t a, int victim)
{
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0)
        writer_main(slot, w, m, a, victim);
    return pid;
}

static pid_t spawn_reader(int slot, uint32_t rd, enum mode m, dmce_addr_t a)
{
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0)
        reader_main(slot, rd, m, a);
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static void reset_shared(void)
{
    memset((void *)sh, 0, sizeof *sh);
}

/* Wait (bounded) for the children to exit with status 0. */
static void join_all(const pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        int st = reap(pids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("child %d: status %#x: %s", i, st, sh->why[i][0] ? sh->why[i] : "?");
    }
}

/* The parent's check: the store verifies and every key holds a whole value. */
static void check_store(dmce_store_t *s)
{
    int r = dmce_store_verify(s);
    if (r != 0)
        fail_msg("verify: %s", dmce_err_name(r));
    uint8_t buf[sizeof(vhdr_t) + MAXV];
    char k[24];
    for (uint32_t id = 0; id < NKEYS; id++) {
        uint32_t n;
        key_name(k, id);
        r = dmce_store_get(s, k, (uint32_t)strlen(k), buf, sizeof buf, &n, NULL);
        if (r == -ENOENT)
            continue;
        assert_int_equal(r, 0);
        assert_true(value_ok(buf, n, id));
    }
}

static dmce_addr_t make_store(dmce_client_t *c, uint32_t stripes)
{
    dmce_store_params_t p = {.max_value = 4096, .stripes = stripes};
    dmce_addr_t a;
    assert_int_equal(dmce_store_create(c, 4 * MiB, &p, &a), 0);
    return a;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_4_writers_4_readers_mixed_modes(void **state)
{
    (void)state;
    reset_shared();
    dmce_client_t *c = connect_mode(IN_PROC);
    assert_non_null(c);
    dmce_addr_t a = make_store(c, 8);
    static const enum mode wm[4] = {IN_PROC, OOP_RING, IN_PROC, OOP_SOCKET};
    static const enum mode rm[4] = {IN_PROC, OOP_RING, IN_PROC, OOP_SOCKET};
    pid_t pids[8];
    for (int i = 0; i < 4; i++)
        pids[i] = spawn_writer(i, (uint32_t)i, wm[i], a, 0);
    for (int i = 0; i < 4; i++)
        pids[4 + i] = spawn_reader(4 + i, (uint32_t)i, rm[i], a);
    struct timespec ts = {1, 500000000};
    nanosleep(&ts, NULL); /* let them work; correctness is checked as they go */
    sh->stop = 1;
    join_all(pids, 8);
    for (int i = 0; i < 8; i++) {
        if (sh->ops[i] == 0)
            fail_msg("child %d made no progress", i);
        print_message("      %s %d (%s): %llu ops, %llu verified reads\n",
                      i < 4 ? "writer" : "reader", i % 4, mode_name(i < 4 ? wm[i] : rm[i - 4]),
                      (unsigned long long)sh->ops[i], (unsigned long long)sh->verified[i]);
        if (i >= 4)
            assert_true(sh->verified[i] > 0);
    }
    dmce_store_t *s;
    assert_int_equal(dmce_store_open(c, a, 0, &s), 0);
    check_store(s);
    dmce_store_stats_t st;
    assert_int_equal(dmce_store_stats(s, &st), 0);
    assert_int_equal(st.locks_held, 0);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static int victim_started(void *arg)
{
    (void)arg;
    return sh->started;
}

struct progress {
    uint64_t from[4];
};

static int all_progressed(void *arg)
{
    struct progress *p = arg;
    for (int i = 0; i < 4; i++)
        if (sh->ops[i] <= p->from[i])
            return 0;
    return 1;
}

static void test_kill9_writers_while_others_go_on(void **state)
{
    (void)state;
    reset_shared();
    dmce_client_t *c = connect_mode(IN_PROC);
    assert_non_null(c);
    dmce_addr_t a = make_store(c, 4); /* few stripes: victims often die holding one */
    pid_t bg[4];
    bg[0] = spawn_writer(0, 0, IN_PROC, a, 0);
    bg[1] = spawn_writer(1, 1, OOP_RING, a, 0);
    bg[2] = spawn_reader(2, 0, IN_PROC, a);
    bg[3] = spawn_reader(3, 1, OOP_RING, a);
    const int iterations = 60;
    uint64_t t0 = dmce_now_ms();
    rnd_state = 0x1234567ull ^ (uint64_t)getpid();
    int in_proc_victims = 0;
    for (int it = 0; it < iterations; it++) {
        sh->started = 0;
        enum mode m = it % 3 == 2 ? OOP_RING : IN_PROC;
        in_proc_victims += m == IN_PROC;
        pid_t v = spawn_writer(8, 10u + (uint32_t)it, m, a, 1);
        if (!harness_wait(victim_started, NULL, 10000)) {
            kill(v, SIGKILL);
            reap(v);
            fail_msg("victim %d never wrote: %s", it, sh->why[8]);
        }
        struct timespec ts = {0, (long)(rnd() % 4000) * 1000}; /* 0..4 ms of writes */
        nanosleep(&ts, NULL);
        kill(v, SIGKILL);
        int st = reap(v);
        if (!WIFSIGNALED(st))
            fail_msg("victim %d: status %#x: %s", it, st, sh->why[8]);
        if (it % 10 == 9) { /* the others go on */
            struct progress p;
            for (int i = 0; i < 4; i++)
                p.from[i] = sh->ops[i];
            if (!harness_wait(all_progressed, &p, 10000))
                fail_msg("after %d kills a survivor stopped: ops %llu %llu %llu %llu", it + 1,
                         (unsigned long long)sh->ops[0], (unsigned long long)sh->ops[1],
                         (unsigned long long)sh->ops[2], (unsigned long long)sh->ops[3]);
        }
    }
    uint64_t t1 = dmce_now_ms();
    sh->stop = 1;
    join_all(bg, 4);
    dmce_store_t *s;
    assert_int_equal(dmce_store_open(c, a, 0, &s), 0);
    check_store(s);
    dmce_store_stats_t st;
    assert_int_equal(dmce_store_stats(s, &st), 0);
    assert_int_equal(st.locks_held, 0);
    assert_int_equal(st.rebuilds_pending, 0);
    print_message("      %d victims killed (%d in-process) in %.2f s; %llu stripe locks taken "
                  "back, %llu reader slots reaped; survivors: %llu + %llu writes, %llu + %llu "
                  "verified reads\n",
                  iterations, in_proc_victims, (double)(t1 - t0) / 1000.0,
                  (unsigned long long)st.recoveries, (unsigned long long)st.reaped,
                  (unsigned long long)sh->ops[0], (unsigned long long)sh->ops[1],
                  (unsigned long long)sh->verified[2], (unsigned long long)sh->verified[3]);
    /* Reader slots of the dead go back (in-process victims held one each). */
    int swept = dmce_store_sweep(s);
    assert_true(swept >= 0);
    assert_int_equal(dmce_store_stats(s, &st), 0);
    assert_true(st.handles <= 4); /* us and the daemon's workers */
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/*
 * Ping-pong: an in-process and an out-of-process process take turns on
 * one key. Each reads exactly the value the other has just set (no
 * delay, no retry): a set is visible to the other kind the moment it
 * returns.
 */
static void pingpong_main(int slot, enum mode m, dmce_addr_t a, int rfd, int wfd, int first)
{
    dmce_client_t *c = connect_mode(m);
    if (!c)
        FAIL(slot, "pingpong: cannot connect");
    dmce_store_t *s;
    int r = dmce_store_open(c, a, 0, &s);
    if (r < 0)
        FAIL(slot, "pingpong: open: %s", dmce_err_name(r));
    uint64_t expect_ver = 0;
    for (uint32_t n = first ? 0 : 1; n < 1000; n += 2) {
        if (n > 0) {
            uint64_t msg;
            if (read(rfd, &msg, sizeof msg) != sizeof msg)
                FAIL(slot, "pingpong: pipe closed at %u", n);
            expect_ver = msg;
            uint32_t got = 0, len = 0;
            uint64_t ver = 0;
            r = dmce_store_get(s, "pp", 2, &got, sizeof got, &len, &ver);
            if (r != 0 || len != 4 || got != n - 1 || ver != expect_ver)
                FAIL(slot, "pingpong: turn %u: %s, value %u, version %llu (want %u, %llu)", n,
                     dmce_err_name(r), got, (unsigned long long)ver, n - 1,
                     (unsigned long long)expect_ver);
        }
        uint64_t ver = 0;
        r = dmce_store_set(s, "pp", 2, &n, sizeof n, 0, expect_ver, n ? 0 : DMCE_STORE_NX, &ver);
        if (r != 0)
            FAIL(slot, "pingpong: set %u: %s", n, dmce_err_name(r));
        if (n + 1 < 1000 && write(wfd, &ver, sizeof ver) != sizeof ver)
            FAIL(slot, "pingpong: pipe");
        sh->ops[slot]++;
    }
    dmce_store_close(s);
    dmce_disconnect(c);
    _exit(0);
}

static void test_in_and_out_of_process_take_turns(void **state)
{
    (void)state;
    reset_shared();
    dmce_client_t *c = connect_mode(IN_PROC);
    assert_non_null(c);
    dmce_addr_t a = make_store(c, 1);
    int ab[2], ba[2];
    assert_int_equal(pipe(ab), 0);
    assert_int_equal(pipe(ba), 0);
    pid_t p[2];
    p[0] = harness_fork();
    assert_true(p[0] >= 0);
    if (p[0] == 0)
        pingpong_main(0, IN_PROC, a, ba[0], ab[1], 1);
    p[1] = harness_fork();
    assert_true(p[1] >= 0);
    if (p[1] == 0)
        pingpong_main(1, OOP_SOCKET, a, ab[0], ba[1], 0);
    close(ab[0]);
    close(ab[1]);
    close(ba[0]);
    close(ba[1]);
    join_all(p, 2);
    assert_int_equal(sh->ops[0], 500);
    assert_int_equal(sh->ops[1], 500);
    dmce_store_t *s;
    assert_int_equal(dmce_store_open(c, a, 0, &s), 0);
    uint32_t last = 0, len = 0;
    assert_int_equal(dmce_store_get(s, "pp", 2, &last, sizeof last, &len, NULL), 0);
    assert_int_equal(last, 999);
    dmce_store_close(s);
    assert_int_equal(dmce_store_destroy(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "test_store_procs: watchdog: 150 s passed, giving up\n";
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    harness_cleanup(); /* daemons and their shm objects */
    kill(0, SIGKILL);  /* our process group: the children, and us */
    _exit(99);
}

int main(void)
{
    /* Own process group, so the watchdog can take every child with it. */
    setpgid(0, 0);
    signal(SIGALRM, watchdog);
    alarm(150);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_4_writers_4_readers_mixed_modes),
        cmocka_unit_test(test_kill9_writers_while_others_go_on),
        cmocka_unit_test(test_in_and_out_of_process_take_turns),
    };
    return cmocka_run_group_tests(tests, setup_daemon, teardown_daemon);
}
