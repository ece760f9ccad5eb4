/*
 * turns.c - the board on which workers take turns at serving ring clients
 * (turns.h; docs/ring.md, "CPU turns").
 *
 * Ownership is in single words, changed only by compare-and-swap, so that
 * a process killed between any two instructions leaves nothing to undo:
 *
 * - a token is its owner word: 0 = free, else 1 + the seat that holds it.
 *   Taking a free one, handing one to a waiting seat, giving one back,
 *   and taking one from a dead or stalled seat are each one CAS of that
 *   word. There is no count beside it that could drift.
 * - a seat is its pid word: 0 = free, else the process that joined it
 *   (with that process's start time, so that a reused pid is not taken
 *   for the old process). A seat whose process is gone is freed by
 *   whoever sees it: its tokens first, then the pid word (CAS).
 *
 * The seat's state word (IDLE, WANT, GRANTED) only says who waits; it is
 * also the futex the waiter sleeps on. A giver that hands a token to a
 * seat sets GRANTED and wakes it; the waiter trusts only the owner words.
 */
#include "turns.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "futex.h"
#include "util.h"

#define TURNS_MAGIC 0x6e727554u /* "Turn" */

enum { SEAT_IDLE = 0, SEAT_WANT = 1, SEAT_GRANTED = 2 };

struct seat {
    _Atomic uint32_t pid;    /* owner process; 0 = a free seat */
    _Atomic uint32_t state;  /* SEAT_*; the futex its thread waits on */
    _Atomic uint32_t active; /* its ring clients that asked lately */
    uint32_t pad0;
    _Atomic uint64_t start;   /* its process's start time (/proc/PID/stat); 0 = not known yet */
    _Atomic uint64_t beat_ns; /* CLOCK_MONOTONIC: its process last said it runs (join, beat) */
    char pad[32];
};
_Static_assert(sizeof(struct seat) == 64, "a seat is one cache line");

struct token {
    _Atomic uint32_t owner; /* 0 = free, else 1 + the seat that holds it */
    uint32_t pad0;
    _Atomic uint64_t since_ns; /* CLOCK_MONOTONIC: written before each change of owner */
};

struct board {
    uint32_t magic;   /* TURNS_MAGIC once initialised */
    uint32_t version; /* DMCE_TURNS_VERSION */
    uint32_t size;    /* sizeof(struct board) */
    uint32_t ntokens;
    _Atomic uint32_t nseats; /* seats ever used: 1 + the highest index */
    uint32_t pad0;
    _Atomic uint64_t handoffs; /* tokens handed from seat to seat */
    _Atomic uint64_t reclaimed;
    char pad[24];
    struct token token[DMCE_TURNS_SEATS]; /* ntokens of them are used */
    struct seat seat[DMCE_TURNS_SEATS];
};
_Static_assert(offsetof(struct board, token) == 64, "tokens start on their own line");

struct dmce_turns {
    struct board *b;
    uint32_t pid;
    uint64_t start;
    _Atomic uint64_t next_tidy_ns; /* waits of every thread tidy at most once a ms */
};

/* A seat whose process has not beaten for this long counts for nothing (crowded, hand-over). */
#define BEAT_STALE_NS (2000ull * 1000 * 1000)

static int seat_stale(const struct seat *s, uint64_t now)
{
    return (int64_t)(now - atomic_load(&s->beat_ns)) > (int64_t)BEAT_STALE_NS;
}

static int tidy(dmce_turns_t *t, int thorough);

static int board_valid(const struct board *b)
{
    return b->magic == TURNS_MAGIC && b->version == DMCE_TURNS_VERSION &&
           b->size == sizeof(struct board) && b->ntokens >= 1 && b->ntokens <= DMCE_TURNS_SEATS;
}

/* Start time of process pid (dmce_proc_start): with the pid, it names one process. 0 = unknown. */
static uint64_t proc_start(uint32_t pid)
{
    int dead;
    return dmce_proc_start(pid, &dead);
}

int dmce_turns_open(const char *path, unsigned ncpus, dmce_turns_t **out)
{
    *out = NULL;
    if (!path || !*path || ncpus == 0)
        return -EINVAL;
    dmce_turns_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = -errno;
        free(t);
        return e;
    }
    int rc = 0;
    struct stat st;
    if (flock(fd, LOCK_EX) < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        rc = -EPERM; /* not ours to share */
        goto out;
    }
    int fresh = st.st_size != (off_t)sizeof(struct board);
    if (fresh && (ftruncate(fd, 0) < 0 || ftruncate(fd, sizeof(struct board)) < 0)) {
        rc = -errno;
        goto out;
    }
    void *p = mmap(NULL, sizeof(struct board), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        rc = -errno;
        goto out;
    }
    t->b = p;
    if (fresh || !board_valid(t->b)) {
        /* Under the lock no other opener looks; a foreign or old board starts over. */
        memset(t->b, 0, sizeof(struct board));
        t->b->version = DMCE_TURNS_VERSION;
        t->b->size = sizeof(struct board);
        t->b->ntokens = DMCE_MAX(1u, DMCE_MIN(ncpus / 2, (unsigned)DMCE_TURNS_SEATS));
        atomic_thread_fence(memory_order_seq_cst);
        t->b->magic = TURNS_MAGIC;
    }
    t->pid = (uint32_t)getpid();
    t->start = proc_start(t->pid);
out:
    flock(fd, LOCK_UN);
    close(fd); /* the mapping stays */
    if (rc < 0) {
        if (t->b)
            munmap(t->b, sizeof(struct board));
        free(t);
        return rc;
    }
    atomic_store(&t->next_tidy_ns, dmce_now_ns() + 1000000u);
    tidy(t, 1); /* seats and tokens of daemons that died since the board was last used */
    *out = t;
    return 0;
}

void dmce_turns_close(dmce_turns_t *t)
{
    if (!t)
        return;
    munmap(t->b, sizeof(struct board));
    free(t);
}

unsigned dmce_turns_tokens(const dmce_turns_t *t)
{
    return t->b->ntokens;
}

static unsigned nseats(const struct board *b)
{
    return DMCE_MIN(atomic_load(&b->nseats), (uint32_t)DMCE_TURNS_SEATS);
}

/*
 * Wake every seat that waits: a token came free. The word changes first
 * (WANT -> GRANTED), or a waiter between its look and its futex wait
 * would sleep a whole slice; it looks again and sets WANT.
 */
static void wake_waiters(struct board *b)
{
    unsigned n = nseats(b);
    for (unsigned i = 0; i < n; i++) {
        uint32_t want = SEAT_WANT;
        if (atomic_compare_exchange_strong(&b->seat[i].state, &want, SEAT_GRANTED))
            dmce_futex_wake(&b->seat[i].state, 1);
    }
}

/* Token k goes back to the pool if its owner word still reads `owner`. 1 if it did. */
static int token_free(struct board *b, unsigned k, uint32_t owner)
{
    if (!atomic_compare_exchange_strong(&b->token[k].owner, &owner, 0))
        return 0;
    wake_waiters(b);
    return 1;
}

/*
 * Whether the process of seat i is gone: no such pid, or (thorough) a
 * pid that now names another process (its start time differs).
 */
static int seat_gone(const struct seat *s, uint32_t pid, int thorough)
{
    if (kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return 1;
    if (!thorough)
        return 0;
    uint64_t start = atomic_load(&s->start);
    if (!start)
        return 0;
    int dead;
    uint64_t now = dmce_proc_start(pid, &dead);
    return dead || (now && now != start); /* a zombie, or a pid that names another process */
}

/*
 * Free seat i if its process is gone: its tokens first, then the seat.
 * 1 if it did.
 */
static int tidy_seat(struct board *b, unsigned i, int thorough)
{
    struct seat *s = &b->seat[i];
    uint32_t pid = atomic_load(&s->pid);
    if (pid == 0 || !seat_gone(s, pid, thorough))
        return 0;
    for (unsigned k = 0; k < b->ntokens; k++)
        token_free(b, k, i + 1);
    /* Its other words are the next joiner's to set: a free seat counts for nothing. */
    if (!atomic_compare_exchange_strong(&s->pid, &pid, 0))
        return 0; /* freed by another tidier meanwhile */
    atomic_fetch_add(&b->reclaimed, 1);
    return 1;
}

/*
 * Take back tokens whose owner seat is free (it left, or was freed, just
 * as the token was handed to it) or that were held past the limit (a
 * stopped process). The owner is read before its since: a hand-over
 * writes since first, so a fresh owner is never seen with a stale since.
 */
static int tidy_tokens(struct board *b)
{
    int freed = 0;
    for (unsigned k = 0; k < b->ntokens; k++) {
        struct token *tk = &b->token[k];
        uint32_t owner = atomic_load(&tk->owner);
        if (owner == 0 || owner > DMCE_TURNS_SEATS)
            continue;
        uint64_t since = atomic_load(&tk->since_ns);
        int64_t held = (int64_t)(dmce_now_ns() - since);
        if ((atomic_load(&b->seat[owner - 1].pid) == 0 ||
             held > (int64_t)DMCE_TURNS_HOLD_MAX_MS * 1000000) &&
            token_free(b, k, owner)) {
            atomic_fetch_add(&b->reclaimed, 1);
            freed++;
        }
    }
    return freed;
}

static int tidy(dmce_turns_t *t, int thorough)
{
    struct board *b = t->b;
    unsigned n = nseats(b);
    int freed = 0;
    for (unsigned i = 0; i < n; i++)
        freed += tidy_seat(b, i, thorough);
    return freed + tidy_tokens(b);
}

int dmce_turns_tidy(dmce_turns_t *t, int thorough)
{
    return tidy(t, thorough);
}

int dmce_turns_join(dmce_turns_t *t)
{
    struct board *b = t->b;
    for (unsigned i = 0; i < DMCE_TURNS_SEATS; i++) {
        struct seat *s = &b->seat[i];
        tidy_seat(b, i, 1);
        uint32_t pid = 0;
        if (!atomic_compare_exchange_strong(&s->pid, &pid, t->pid))
            continue;
        atomic_store(&s->start, t->start);
        atomic_store(&s->beat_ns, dmce_now_ns());
        atomic_store(&s->active, 0);
        atomic_store(&s->state, SEAT_IDLE);
        uint32_t n = atomic_load(&b->nseats);
        while (n < i + 1 && !atomic_compare_exchange_weak(&b->nseats, &n, i + 1))
            ;
        /*
         * A token handed to this seat's last owner as it left, if no tidy
         * freed it, is ours now: take finds it held, give passes it on.
         */
        return (int)i;
    }
    return -ENOSPC;
}

void dmce_turns_leave(dmce_turns_t *t, int seat)
{
    if (seat < 0 || seat >= DMCE_TURNS_SEATS)
        return;
    struct board *b = t->b;
    struct seat *s = &b->seat[seat];
    atomic_store(&s->state, SEAT_IDLE); /* no more hand-overs to it */
    dmce_turns_give(t, seat);
    atomic_store(&s->active, 0);
    uint32_t pid = t->pid;
    atomic_compare_exchange_strong(&s->pid, &pid, 0);
    tidy_tokens(b); /* one handed to it between the give and here */
}

void dmce_turns_set_active(dmce_turns_t *t, int seat, unsigned clients)
{
    struct seat *s = &t->b->seat[seat];
    if (atomic_load_explicit(&s->active, memory_order_relaxed) != clients)
        atomic_store_explicit(&s->active, clients, memory_order_relaxed);
}

int dmce_turns_crowded(const dmce_turns_t *t, unsigned ncpus)
{
    const struct board *b = t->b;
    unsigned n = nseats(b), want = 0;
    uint64_t now = dmce_now_ns();
    for (unsigned i = 0; i < n; i++) {
        const struct seat *s = &b->seat[i];
        uint32_t a = atomic_load_explicit(&s->active, memory_order_relaxed);
        if (a && atomic_load_explicit(&s->pid, memory_order_relaxed) && !seat_stale(s, now))
            want += 1 + a;
    }
    return want > ncpus;
}

void dmce_turns_beat(dmce_turns_t *t)
{
    struct board *b = t->b;
    unsigned n = nseats(b);
    uint64_t now = dmce_now_ns();
    for (unsigned i = 0; i < n; i++)
        if (atomic_load(&b->seat[i].pid) == t->pid)
            atomic_store(&b->seat[i].beat_ns, now);
}

int dmce_turns_held(const dmce_turns_t *t, int seat)
{
    const struct board *b = t->b;
    for (unsigned k = 0; k < b->ntokens; k++)
        if (atomic_load(&b->token[k].owner) == (uint32_t)seat + 1)
            return 1;
    return 0;
}

void dmce_turns_renew(dmce_turns_t *t, int seat)
{
    struct board *b = t->b;
    for (unsigned k = 0; k < b->ntokens; k++)
        if (atomic_load(&b->token[k].owner) == (uint32_t)seat + 1)
            atomic_store(&b->token[k].since_ns, dmce_now_ns());
}

/* Take a free token for seat: since first, then the owner word. 1 if it did. */
static int take_free(struct board *b, int seat)
{
    for (unsigned k = 0; k < b->ntokens; k++) {
        struct token *tk = &b->token[k];
        uint32_t owner = 0;
        if (atomic_load(&tk->owner) != 0)
            continue;
        atomic_store(&tk->since_ns, dmce_now_ns());
        if (atomic_compare_exchange_strong(&tk->owner, &owner, (uint32_t)seat + 1))
            return 1;
    }
    return 0;
}

int dmce_turns_take(dmce_turns_t *t, int seat, uint32_t wait_us)
{
    struct board *b = t->b;
    struct seat *s = &b->seat[seat];
    if (dmce_turns_held(t, seat))
        return 1;
    uint64_t start = dmce_now_ns(), end = start + (uint64_t)wait_us * 1000u;
    for (;;) {
        /*
         * WANT before the look: a giver that hands a token over after it
         * sets GRANTED, which ends the futex wait below at once.
         */
        atomic_store(&s->state, SEAT_WANT);
        if (dmce_turns_held(t, seat) || take_free(b, seat)) {
            atomic_store(&s->state, SEAT_IDLE);
            return 1;
        }
        uint64_t now = dmce_now_ns(), due = atomic_load(&t->next_tidy_ns);
        /*
         * Waiting: is a holder dead or stopped? Once a ms for all the
         * waits of this process together, however short each is (a
         * daemon's worker waits 1 ms at a time), and before giving up.
         */
        if (now >= due && atomic_compare_exchange_strong(&t->next_tidy_ns, &due, now + 1000000u) &&
            tidy(t, 0) > 0)
            continue;
        if (now >= end) {
            atomic_store(&s->state, SEAT_IDLE);
            return dmce_turns_held(t, seat); /* handed over at the last moment */
        }
        uint64_t left_ms = (end - now + 999999u) / 1000000u;
        dmce_futex_wait(&s->state, SEAT_WANT, (uint32_t)DMCE_MIN(left_ms, 1u));
    }
}

void dmce_turns_give(dmce_turns_t *t, int seat)
{
    struct board *b = t->b;
    unsigned n = nseats(b);
    for (unsigned k = 0; k < b->ntokens; k++) {
        struct token *tk = &b->token[k];
        uint32_t mine = (uint32_t)seat + 1;
        if (atomic_load(&tk->owner) != mine)
            continue;
        int handed = 0;
        for (unsigned step = 1; step < n && !handed; step++) {
            unsigned i = ((unsigned)seat + step) % n;
            struct seat *o = &b->seat[i];
            uint32_t pid = atomic_load(&o->pid);
            if (atomic_load(&o->state) != SEAT_WANT || pid == 0 || seat_stale(o, dmce_now_ns()) ||
                seat_gone(o, pid, 0))
                continue;
            atomic_store(&tk->since_ns, dmce_now_ns());
            uint32_t expect = mine;
            if (!atomic_compare_exchange_strong(&tk->owner, &expect, i + 1))
                break; /* not ours any more (taken from a stalled holder) */
            handed = 1;
            atomic_fetch_add(&b->handoffs, 1);
            atomic_store(&o->state, SEAT_GRANTED);
            dmce_futex_wake(&o->state, 1);
        }
        if (!handed)
            token_free(b, k, mine);
    }
}

int dmce_turns_pid_holds(const dmce_turns_t *t, uint32_t pid)
{
    const struct board *b = t->b;
    for (unsigned k = 0; k < b->ntokens; k++) {
        uint32_t owner = atomic_load(&b->token[k].owner);
        if (owner && owner <= DMCE_TURNS_SEATS && atomic_load(&b->seat[owner - 1].pid) == pid)
            return 1;
    }
    return 0;
}

void dmce_turns_stats(const dmce_turns_t *t, dmce_turns_stats_t *out)
{
    const struct board *b = t->b;
    out->handoffs = atomic_load(&b->handoffs);
    out->reclaimed = atomic_load(&b->reclaimed);
    out->waiting = out->holding = 0;
    unsigned n = nseats(b);
    for (unsigned i = 0; i < n; i++)
        out->waiting += atomic_load(&b->seat[i].pid) && atomic_load(&b->seat[i].state) == SEAT_WANT;
    for (unsigned k = 0; k < b->ntokens; k++)
        out->holding += atomic_load(&b->token[k].owner) != 0;
}
