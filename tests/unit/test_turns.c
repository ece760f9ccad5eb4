/*
 * test_turns.c - the CPU turns board (runtime/turns.c): tokens, hand-over
 * in seat order, demand, and a board that never stays stuck (a holder
 * that died or stalled loses its token; a foreign file starts over).
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "turns.h"
#include "util.h"

static char dir[64], path[96];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/dmce-turns-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof(path), "%s/turns", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static dmce_turns_t *open_board(unsigned ncpus)
{
    dmce_turns_t *t = NULL;
    assert_int_equal(dmce_turns_open(path, ncpus, &t), 0);
    assert_non_null(t);
    return t;
}

static void test_open_tokens(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    assert_int_equal(dmce_turns_tokens(t), 1); /* 2 CPUs: one worker + one client */
    dmce_turns_close(t);
    /* The board is made by the first opener: a second keeps its tokens. */
    dmce_turns_t *a = open_board(2), *b = open_board(16);
    assert_int_equal(dmce_turns_tokens(b), 1);
    dmce_turns_close(a);
    dmce_turns_close(b);
    unlink(path);
    t = open_board(9);
    assert_int_equal(dmce_turns_tokens(t), 4);
    dmce_turns_close(t);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_bad(void **state)
{
    (void)state;
    dmce_turns_t *t = (dmce_turns_t *)1;
    assert_int_equal(dmce_turns_open(path, 0, &t), -EINVAL);
    assert_null(t);
    assert_int_equal(dmce_turns_open("", 2, &t), -EINVAL);
    assert_int_equal(dmce_turns_open("/nonexistent-dir/x/turns", 2, &t), -ENOENT);
    /* A directory, a symlink: refused, never followed. */
    assert_int_equal(mkdir(path, 0700), 0);
    assert_true(dmce_turns_open(path, 2, &t) < 0);
    rmdir(path);
    assert_int_equal(symlink("/tmp", path), 0);
    assert_int_equal(dmce_turns_open(path, 2, &t), -ELOOP);
    unlink(path);
}

/* A file that is not a board (garbage, or the wrong size) is made a board again. */
static void test_open_foreign(void **state)
{
    (void)state;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 0xa5, sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    close(fd);
    dmce_turns_t *t = open_board(4);
    assert_int_equal(dmce_turns_tokens(t), 2);
    int s = dmce_turns_join(t);
    assert_int_equal(s, 0); /* every seat free again */
    assert_int_equal(dmce_turns_take(t, s, 0), 1);
    dmce_turns_leave(t, s);
    dmce_turns_close(t);
}

static void test_take_give(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int a = dmce_turns_join(t), b = dmce_turns_join(t);
    assert_true(a >= 0 && b >= 0 && a != b);
    assert_int_equal(dmce_turns_take(t, a, 0), 1);
    assert_int_equal(dmce_turns_held(t, a), 1);
    assert_int_equal(dmce_turns_take(t, a, 0), 1); /* already held */
    assert_int_equal(dmce_turns_take(t, b, 0), 0); /* the one token is taken */
    uint64_t t0 = dmce_now_ns();
    assert_int_equal(dmce_turns_take(t, b, 3000), 0); /* waits its time, then gives up */
    assert_true(dmce_now_ns() - t0 >= 3000000u);
    assert_int_equal(dmce_turns_held(t, b), 0);
    dmce_turns_give(t, a);
    assert_int_equal(dmce_turns_held(t, a), 0);
    assert_int_equal(dmce_turns_take(t, b, 0), 1);
    dmce_turns_give(t, b);
    dmce_turns_give(t, b); /* twice: nothing to give */
    assert_int_equal(dmce_turns_take(t, a, 0), 1);
    dmce_turns_leave(t, a); /* leaving gives the token back */
    assert_int_equal(dmce_turns_take(t, b, 0), 1);
    dmce_turns_leave(t, b);
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    assert_int_equal(st.reclaimed, 0);
    dmce_turns_close(t);
}

/* With N tokens, N seats hold one at once; the next waits. */
static void test_tokens_count(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(6); /* 3 tokens */
    int s[4];
    for (int i = 0; i < 4; i++)
        s[i] = dmce_turns_join(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(dmce_turns_take(t, s[i], 0), 1);
    assert_int_equal(dmce_turns_take(t, s[3], 0), 0);
    dmce_turns_give(t, s[1]);
    assert_int_equal(dmce_turns_take(t, s[3], 0), 1);
    for (int i = 0; i < 4; i++)
        dmce_turns_leave(t, s[i]);
    dmce_turns_close(t);
}

static void test_seats_run_out(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int s[DMCE_TURNS_SEATS];
    for (int i = 0; i < DMCE_TURNS_SEATS; i++) {
        s[i] = dmce_turns_join(t);
        assert_int_equal(s[i], i);
    }
    assert_int_equal(dmce_turns_join(t), -ENOSPC);
    dmce_turns_leave(t, s[17]);
    assert_int_equal(dmce_turns_join(t), 17); /* a seat left is taken again */
    for (int i = 0; i < DMCE_TURNS_SEATS; i++)
        dmce_turns_leave(t, s[i]);
    dmce_turns_leave(t, -1); /* no seat: no-op */
    dmce_turns_leave(t, DMCE_TURNS_SEATS);
    dmce_turns_close(t);
}

static void test_crowded(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(4);
    int a = dmce_turns_join(t), b = dmce_turns_join(t);
    assert_int_equal(dmce_turns_crowded(t, 4), 0);
    dmce_turns_set_active(t, a, 1); /* worker + 1 client */
    assert_int_equal(dmce_turns_crowded(t, 4), 0);
    dmce_turns_set_active(t, b, 1); /* 2 + 2 = 4 CPUs */
    assert_int_equal(dmce_turns_crowded(t, 4), 0);
    dmce_turns_set_active(t, b, 2); /* 2 + 3 */
    assert_int_equal(dmce_turns_crowded(t, 4), 1);
    assert_int_equal(dmce_turns_crowded(t, 8), 0);
    dmce_turns_leave(t, b); /* a seat left counts no more */
    assert_int_equal(dmce_turns_crowded(t, 2), 0);
    dmce_turns_set_active(t, a, 0);
    dmce_turns_leave(t, a);
    dmce_turns_close(t);
}

/*
 * Hand-over in seat order: a token given back goes to the next seat after
 * the giver that waits (wrapping round), never to the pool while one
 * waits. Each step waits for a condition (bounded), never for time.
 */
struct taker {
    dmce_turns_t *t;
    int seat;
    _Atomic int got;     /* 1 once it holds the token */
    _Atomic int release; /* set by the test: give it back */
};

static void *taker_main(void *arg)
{
    struct taker *k = arg;
    if (dmce_turns_take(k->t, k->seat, 5000000) != 1)
        return NULL;
    atomic_store(&k->got, 1);
    while (!atomic_load(&k->release)) {
        dmce_turns_renew(k->t, k->seat); /* working: a slow test machine is no stall */
        usleep(100);
    }
    dmce_turns_give(k->t, k->seat);
    return NULL;
}

static unsigned waiting(dmce_turns_t *t)
{
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    return st.waiting;
}

/* Wait (at most 5 s) until *flag, or until the board has n waiting seats when flag is NULL. */
static int until(dmce_turns_t *t, _Atomic int *flag, unsigned n)
{
    for (int i = 0; i < 50000; i++) {
        if (flag ? atomic_load(flag) != 0 : waiting(t) == n)
            return 1;
        usleep(100);
    }
    return 0;
}

static void test_handover_order(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    struct taker h = {.t = t}, b = {.t = t}, c = {.t = t};
    h.seat = dmce_turns_join(t);
    b.seat = dmce_turns_join(t);
    c.seat = dmce_turns_join(t);
    assert_true(h.seat < b.seat && b.seat < c.seat);
    assert_int_equal(dmce_turns_take(t, h.seat, 0), 1);
    pthread_t tb, tc, th;
    assert_int_equal(pthread_create(&tc, NULL, taker_main, &c), 0);
    assert_true(until(t, NULL, 1)); /* c asks first, */
    assert_int_equal(pthread_create(&tb, NULL, taker_main, &b), 0);
    assert_true(until(t, NULL, 2)); /* b second */
    dmce_turns_give(t, h.seat);     /* goes to b: the next seat after h, not the first to ask */
    assert_true(until(t, &b.got, 0));
    assert_int_equal(atomic_load(&c.got), 0);
    assert_int_equal(dmce_turns_held(t, b.seat), 1);
    assert_int_equal(dmce_turns_take(t, h.seat, 0), 0); /* held: no barging in */
    h.got = 0;
    assert_int_equal(pthread_create(&th, NULL, taker_main, &h), 0);
    assert_true(until(t, NULL, 2)); /* h and c wait */
    atomic_store(&b.release, 1);    /* b gives: c is next after b, h after c */
    assert_true(until(t, &c.got, 0));
    assert_int_equal(atomic_load(&h.got), 0);
    atomic_store(&c.release, 1);
    assert_true(until(t, &h.got, 0)); /* wraps round to h */
    atomic_store(&h.release, 1);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    pthread_join(th, NULL);
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    assert_int_equal(st.handoffs, 3); /* h -> b -> c -> h, each straight to a waiter */
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.holding, 0); /* h gave it back to the pool: nobody waited */
    assert_int_equal(dmce_turns_take(t, b.seat, 0), 1);
    dmce_turns_leave(t, b.seat);
    dmce_turns_leave(t, c.seat);
    dmce_turns_leave(t, h.seat);
    dmce_turns_close(t);
}

/* A process that dies holding a token: the next taker gets it within its wait. */
static void test_dead_holder(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dmce_turns_t *c = NULL;
        char ok = 0;
        if (dmce_turns_open(path, 2, &c) == 0) {
            int s = dmce_turns_join(c);
            ok = s >= 0 && dmce_turns_take(c, s, 0) == 1;
            if (ok)
                dmce_turns_set_active(c, s, 7);
        }
        if (write(pipefd[1], &ok, 1) != 1)
            _exit(2);
        pause(); /* killed holding it */
        _exit(0);
    }
    char ok = 0;
    assert_int_equal(read(pipefd[0], &ok, 1), 1);
    assert_int_equal(ok, 1);
    int s = dmce_turns_join(t);
    assert_int_equal(dmce_turns_take(t, s, 0), 0);
    assert_int_equal(dmce_turns_crowded(t, 2), 1); /* its 7 clients still count */
    kill(pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    /* Waits of 1 ms, as a daemon's worker makes them, tidy the dead seat (not the stall rule). */
    uint64_t t0 = dmce_now_ns();
    int got = 0;
    for (int i = 0; i < 40 && !got; i++)
        got = dmce_turns_take(t, s, 1000);
    assert_int_equal(got, 1);
    assert_true(dmce_now_ns() - t0 < 50000000u);
    assert_int_equal(dmce_turns_crowded(t, 2), 0);
    dmce_turns_stats_t sts;
    dmce_turns_stats(t, &sts);
    assert_int_equal(sts.reclaimed, 1);
    assert_int_equal(dmce_turns_tidy(t, 1), 0);
    dmce_turns_leave(t, s);
    dmce_turns_close(t);
    close(pipefd[0]);
    close(pipefd[1]);
}

/* A live holder that keeps its token past the limit (a stopped process) loses it. */
static void test_stalled_holder(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int a = dmce_turns_join(t), b = dmce_turns_join(t);
    assert_int_equal(dmce_turns_take(t, a, 0), 1);
    assert_int_equal(dmce_turns_tidy(t, 1), 0); /* not stalled yet */
    uint64_t t0 = dmce_now_ns();
    assert_int_equal(dmce_turns_take(t, b, 5 * DMCE_TURNS_HOLD_MAX_MS * 1000u), 1);
    uint64_t waited = dmce_now_ns() - t0;
    assert_true(waited >= (uint64_t)(DMCE_TURNS_HOLD_MAX_MS - 5) * 1000000u);
    assert_int_equal(dmce_turns_held(t, a), 0);
    dmce_turns_give(t, a); /* the stalled one comes back: gives nothing */
    assert_int_equal(dmce_turns_held(t, b), 1);
    assert_int_equal(dmce_turns_take(t, a, 0), 0); /* still b's */
    dmce_turns_leave(t, b);
    assert_int_equal(dmce_turns_take(t, a, 0), 1);
    dmce_turns_leave(t, a);
    dmce_turns_close(t);
}

/*
 * Processes that take and give in a loop, killed at random instants (in
 * the middle of a take, a hand-over, a give): no token is ever lost, and
 * never more seats hold one than there are tokens.
 */
static void churn(dmce_turns_t *t, int seat)
{
    for (;;) {
        if (dmce_turns_take(t, seat, 2000) == 1)
            dmce_turns_give(t, seat);
    }
}

static void test_killed_anywhere(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(4); /* 2 tokens */
    /* Our seats first: their joins must not be what tidies the dead ones at the end. */
    int a = dmce_turns_join(t), b = dmce_turns_join(t);
    assert_true(a >= 0 && b >= 0);
    enum { PROCS = 3, KILLS = 60 };
    pid_t pid[PROCS];
    for (int i = 0; i < PROCS; i++)
        pid[i] = -1;
    unsigned seed = (unsigned)getpid();
    for (int k = 0; k < KILLS; k++) {
        for (int i = 0; i < PROCS; i++) {
            if (pid[i] > 0)
                continue;
            pid[i] = fork();
            assert_true(pid[i] >= 0);
            if (pid[i] == 0) {
                dmce_turns_t *c = NULL;
                if (dmce_turns_open(path, 4, &c) < 0)
                    _exit(2);
                int s = dmce_turns_join(c);
                if (s < 0)
                    _exit(3);
                churn(c, s);
            }
        }
        struct timespec ts = {0, (long)(rand_r(&seed) % 3000 + 200) * 1000};
        nanosleep(&ts, NULL);
        dmce_turns_stats_t st;
        dmce_turns_stats(t, &st);
        assert_true(st.holding <= dmce_turns_tokens(t));
        int victim = (int)(rand_r(&seed) % PROCS);
        kill(pid[victim], SIGKILL);
        assert_int_equal(waitpid(pid[victim], NULL, 0), pid[victim]);
        pid[victim] = -1;
    }
    for (int i = 0; i < PROCS; i++)
        if (pid[i] > 0) {
            kill(pid[i], SIGKILL);
            waitpid(pid[i], NULL, 0);
        }
    /*
     * Everyone is dead: both tokens can be had at once, by waits of 1 ms as
     * a daemon's worker makes them (they tidy: the 100 ms stall rule is not
     * what frees a dead holder's token).
     */
    uint64_t t0 = dmce_now_ns();
    int got = 0;
    for (int i = 0; i < 40 && got < 2; i++)
        got = dmce_turns_take(t, a, 1000) + dmce_turns_take(t, b, 1000);
    assert_int_equal(got, 2);
    assert_true(dmce_now_ns() - t0 < (uint64_t)DMCE_TURNS_HOLD_MAX_MS * 1000000u / 2);
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    assert_int_equal(st.holding, 2);
    dmce_turns_leave(t, a);
    dmce_turns_leave(t, b);
    dmce_turns_tidy(t, 1);                      /* the dead seats no join went past */
    assert_int_equal(dmce_turns_tidy(t, 1), 0); /* and nothing else */
    dmce_turns_stats(t, &st);
    assert_int_equal(st.holding, 0);
    dmce_turns_close(t);
}

/*
 * Takers with short holds and a tidier running flat out beside them: no
 * live holder loses its token (no false stall), and the one token is
 * never held by two at once.
 */
struct racer {
    dmce_turns_t *t;
    int seat;
    _Atomic int *inside;
    _Atomic int *stop;
    int over; /* times more than one held the token */
    unsigned turns;
    uint64_t longest_ns; /* its longest hold: a thread descheduled past the stall limit */
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->stop)) {
        if (dmce_turns_take(r->t, r->seat, 10000) != 1)
            continue;
        uint64_t t0 = dmce_now_ns();
        if (atomic_fetch_add(r->inside, 1) != 0)
            r->over++;
        r->turns++;
        for (volatile int i = 0; i < 2000; i++)
            ;
        atomic_fetch_sub(r->inside, 1);
        uint64_t held = dmce_now_ns() - t0;
        r->longest_ns = held > r->longest_ns ? held : r->longest_ns;
        dmce_turns_give(r->t, r->seat);
    }
    return NULL;
}

static void *tidier_main(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->stop))
        dmce_turns_tidy(r->t, 1);
    return NULL;
}

static void test_tidy_beside_takers(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2); /* 1 token */
    enum { NR = 3 };
    _Atomic int inside = 0, stop = 0;
    struct racer r[NR + 1];
    pthread_t th[NR + 1];
    for (int i = 0; i <= NR; i++) {
        r[i] = (struct racer){.t = t, .inside = &inside, .stop = &stop};
        r[i].seat = i < NR ? dmce_turns_join(t) : -1;
    }
    for (int i = 0; i < NR; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    assert_int_equal(pthread_create(&th[NR], NULL, tidier_main, &r[NR]), 0);
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL); /* a bounded run: 0.3 s of churn */
    atomic_store(&stop, 1);
    unsigned turns = 0;
    uint64_t longest = 0;
    for (int i = 0; i <= NR; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NR; i++) {
        turns += r[i].turns;
        longest = r[i].longest_ns > longest ? r[i].longest_ns : longest;
    }
    assert_true(turns > 100);
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    /* Unless a racer was descheduled past the limit while holding (a loaded machine): */
    if (longest < (uint64_t)DMCE_TURNS_HOLD_MAX_MS * 1000000u / 2) {
        assert_int_equal(st.reclaimed, 0); /* nobody was alive and stalled */
        for (int i = 0; i < NR; i++)
            assert_int_equal(r[i].over, 0);
    } else {
        print_message("a hold of %llu ms: reclaims are the rule, not checked\n",
                      (unsigned long long)(longest / 1000000u));
    }
    for (int i = 0; i < NR; i++)
        dmce_turns_leave(t, r[i].seat);
    dmce_turns_close(t);
}

/*
 * A seat whose process has not said it runs for 2 s (a stopped daemon, a
 * pid kill() cannot tell from a live one) counts for nothing, and gets no
 * token; beating again brings it back.
 */
static void test_stale_beat(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int a = dmce_turns_join(t), b = dmce_turns_join(t);
    dmce_turns_set_active(t, b, 5);
    assert_int_equal(dmce_turns_crowded(t, 2), 1);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    /* seat b's beat: after the 64-byte header and 64 16-byte token slots, at 24 in the seat */
    uint64_t old = 1;
    assert_int_equal(pwrite(fd, &old, sizeof(old), 64 + 64 * 16 + (off_t)b * 64 + 24),
                     (ssize_t)sizeof(old));
    assert_int_equal(dmce_turns_crowded(t, 2), 0);
    /* b waits (in a thread) while a gives: the token is not handed to b, it goes to the pool */
    assert_int_equal(dmce_turns_take(t, a, 0), 1);
    struct taker k = {.t = t, .seat = b};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, taker_main, &k), 0);
    assert_true(until(t, NULL, 1));
    dmce_turns_give(t, a);
    assert_true(until(t, &k.got, 0)); /* it took it from the pool itself */
    dmce_turns_stats_t st;
    dmce_turns_stats(t, &st);
    assert_int_equal(st.handoffs, 0);
    atomic_store(&k.release, 1);
    pthread_join(th, NULL);
    dmce_turns_beat(t); /* its process says it runs: it counts again */
    assert_int_equal(dmce_turns_crowded(t, 2), 1);
    close(fd);
    dmce_turns_leave(t, a);
    dmce_turns_leave(t, b);
    dmce_turns_close(t);
}

/* A pid that now names another process: its seat is freed by a thorough tidy. */
static void test_reused_pid(void **state)
{
    (void)state;
    dmce_turns_t *t = open_board(2);
    int s = dmce_turns_join(t);
    assert_int_equal(dmce_turns_take(t, s, 0), 1);
    assert_int_equal(dmce_turns_pid_holds(t, (uint32_t)getpid()), 1);
    assert_int_equal(dmce_turns_tidy(t, 1), 0); /* alive, and the same process */
    /* Forge the seat's start time, as if our pid had been reused by this process. */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    /* seat s: after the 64-byte header and 64 16-byte token slots; start at offset 16 */
    off_t at = 64 + 64 * 16 + (off_t)s * 64 + 16;
    uint64_t forged = 1;
    assert_int_equal(pwrite(fd, &forged, sizeof(forged), at), (ssize_t)sizeof(forged));
    close(fd);
    assert_int_equal(dmce_turns_tidy(t, 0), 0); /* a cheap tidy only asks kill() */
    assert_int_equal(dmce_turns_tidy(t, 1), 1);
    assert_int_equal(dmce_turns_pid_holds(t, (uint32_t)getpid()), 0);
    assert_int_equal(dmce_turns_held(t, s), 0);
    dmce_turns_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_foreign, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_give, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seats_run_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crowded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handover_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_holder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_anywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tidy_beside_takers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reused_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_beat, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
