/*
 * Integration: client and daemon lifecycles. A client killed mid-session
 * loses its reservation at once and keeps its allocations for the grace
 * period (reattach with the token brings them back), after which they are
 * freed. A daemon stopped with SIGTERM leaves no shm object; one killed
 * with SIGKILL leaves them and its successor removes them; two daemons
 * never share an ID.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "util.h"

#define MiB (1ull << 20)

static int group_setup(void **state)
{
    (void)state;
    return harness_init();
}

static int group_teardown(void **state)
{
    (void)state;
    harness_cleanup();
    return 0;
}

struct child_report {
    dmce_token_t token;
    dmce_addr_t addr;
    int ok;
};

/*
 * In a child process: connect to daemon `id`, setup `reserve` bytes,
 * allocate 4096 bytes, write a pattern, report token and address through
 * the pipe, then die by SIGKILL without disconnecting.
 */
static pid_t spawn_dying_client(int id, uint64_t reserve, struct child_report *rep)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = harness_fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct child_report r = {0};
        dmce_client_t *c;
        uint8_t data[4096];
        for (int i = 0; i < 4096; i++)
            data[i] = (uint8_t)(i * 13 + 5);
        if (harness_client(&c, &id, 1) == 0 && dmce_setup(c, reserve, 0, NULL, NULL) == 0 &&
            dmce_malloc(c, sizeof(data), &r.addr) == 0 &&
            dmce_write(c, r.addr, data, sizeof(data)) == 0 && dmce_session_token(c, &r.token) == 0)
            r.ok = 1;
        if (write(p[1], &r, sizeof(r)) != sizeof(r))
            _exit(2);
        raise(SIGKILL); /* no disconnect */
        _exit(3);
    }
    close(p[1]);
    ssize_t n = read(p[0], rep, sizeof(*rep));
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(n, (ssize_t)sizeof(*rep));
    assert_true(rep->ok);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    return pid;
}

struct probe {
    int id;
    dmce_stats_t st;
};

static int fetch(struct probe *p)
{
    dmce_client_t *c;
    if (harness_client(&c, &p->id, 1) < 0)
        return -1;
    int r = dmce_daemon_stats(c, 0, &p->st);
    dmce_disconnect(c);
    return r;
}

static int orphaned(void *arg)
{
    struct probe *p = arg;
    return fetch(p) == 0 && p->st.sessions_orphaned == 1;
}

static int all_freed(void *arg)
{
    struct probe *p = arg;
    return fetch(p) == 0 && p->st.sessions == 0 && p->st.bytes_used == 0 &&
           p->st.allocations == 0;
}

static void test_killed_client_reattaches_within_grace(void **state)
{
    (void)state;
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=2", "--grace-ms=60000",
                                   NULL), 0);
    struct child_report rep;
    spawn_dying_client(1, 6 * MiB, &rep);
    struct probe pr = {.id = 1};
    assert_true(harness_wait(orphaned, &pr, 5000));
    /* Reservation released at once; the allocation is kept. */
    assert_int_equal(pr.st.bytes_reserved, 0);
    assert_int_equal(pr.st.bytes_used, 4096);
    assert_int_equal(pr.st.allocations, 1);
    /* So another client can reserve most of the daemon right away. */
    int one = 1;
    dmce_client_t *other;
    assert_int_equal(harness_client(&other, &one, 1), 0);
    assert_int_equal(dmce_setup(other, 6 * MiB, 0, NULL, NULL), 0);
    assert_int_equal(dmce_disconnect(other), 0);

    /* Wrong token: refused. */
    dmce_client_t *c;
    dmce_token_t bad = rep.token;
    bad.bytes[0] ^= 1;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, 0, DMCE_SETUP_REATTACH, &bad, NULL), DMCE_ETOKEN);
    /* Right token: the session and its data come back. */
    assert_int_equal(dmce_setup(c, 0, DMCE_SETUP_REATTACH, &rep.token, NULL), 0);
    uint8_t back[4096];
    assert_int_equal(dmce_read(c, rep.addr, back, sizeof(back)), 0);
    for (int i = 0; i < 4096; i++)
        assert_int_equal(back[i], (uint8_t)(i * 13 + 5));
    assert_true(fetch(&pr) == 0);
    assert_int_equal(pr.st.sessions_orphaned, 0);
    /* A clean disconnect ends the session and frees its memory. */
    assert_int_equal(dmce_disconnect(c), 0);
    assert_true(harness_wait(all_freed, &pr, 5000));
    assert_int_equal(harness_stop(1), 0);
    assert_int_equal(harness_shm_count(), 0);
}

static void test_grace_period_expiry_frees(void **state)
{
    (void)state;
    assert_int_equal(harness_start(1, "--block-size=4M", "--grace-ms=300", NULL), 0);
    struct child_report rep;
    spawn_dying_client(1, 0, &rep);
    struct probe pr = {.id = 1};
    assert_true(harness_wait(all_freed, &pr, 10000));
    assert_int_equal(pr.st.sessions_orphaned, 0);
    /* Too late to reattach. */
    int one = 1;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, 0, DMCE_SETUP_REATTACH, &rep.token, NULL), DMCE_ETOKEN);
    dmce_disconnect(c);
    assert_int_equal(harness_stop(1), 0);
    assert_int_equal(harness_shm_count(), 0);
}

static void test_daemon_killed_leaves_stale_shm_that_restart_removes(void **state)
{
    (void)state;
    assert_int_equal(harness_start(2, "--block-size=2M", "--blocks-initial=3", "--max-blocks=4",
                                   NULL), 0);
    assert_int_equal(harness_shm_count(), 3);
    harness_kill(2);
    assert_int_equal(harness_shm_count(), 3); /* SIGKILL cannot clean up */
    assert_int_equal(harness_start(2, "--block-size=2M", "--blocks-initial=1", NULL), 0);
    assert_int_equal(harness_shm_count(), 1); /* stale ones removed, one new */
    /* A second daemon with the same ID is refused while the first runs. */
    int st = harness_start_expect_exit(2, "--block-size=2M", NULL);
    assert_true(st > 0);
    assert_int_equal(harness_shm_count(), 1);
    assert_int_equal(harness_stop(2), 0);
    assert_int_equal(harness_shm_count(), 0);
}

static void test_bad_config_is_refused(void **state)
{
    (void)state;
    assert_int_equal(harness_start_expect_exit(3, "--block-size=banana", NULL), 64);
    assert_int_equal(harness_start_expect_exit(3, "--no-such-flag=1", NULL), 64);
    assert_int_equal(harness_start_expect_exit(3, "--granule=100", NULL), 1);
    /* 12-bit block IDs cannot hold daemon 3's range with 4096 blocks each. */
    assert_int_equal(harness_start_expect_exit(3, "--max-blocks=4096", NULL), 1);
    assert_int_equal(harness_shm_count(), 0);
}

/* CPU time (user + system, clock ticks) process pid has used, or -1. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces: fields after it */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/*
 * Regression: an idle daemon sleeps. With no dispatcher to send its block
 * events to, its member-pulse thread looped without waiting (a whole CPU
 * per daemon; the 6 GiB borrow demo went from 8 s to 7 minutes). One
 * second of idleness must cost it well under a tenth of a CPU.
 */
static void test_idle_daemon_sleeps(void **state)
{
    (void)state;
    assert_int_equal(harness_start(4, "--block-size=2M", "--blocks-initial=3", "--max-blocks=4",
                                   NULL), 0);
    long hz = sysconf(_SC_CLK_TCK), t0 = cpu_ticks(H.pid[4]);
    assert_true(t0 >= 0 && hz > 0);
    uint64_t end = dmce_now_ms() + 1000;
    while (dmce_now_ms() < end)
        usleep(50000); /* the measured interval: nothing is waited for */
    long used = cpu_ticks(H.pid[4]) - t0;
    if (used * 10 >= hz)
        fail_msg("an idle daemon used %ld of %ld ticks in one second", used, hz);
    assert_int_equal(harness_stop(4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_killed_client_reattaches_within_grace),
        cmocka_unit_test(test_grace_period_expiry_frees),
        cmocka_unit_test(test_daemon_killed_leaves_stale_shm_that_restart_removes),
        cmocka_unit_test(test_bad_config_is_refused),
        cmocka_unit_test(test_idle_daemon_sleeps),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
