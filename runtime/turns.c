/*
 * turns.c - the board on which workers take turns at serving ring clients
 * (turns.h; docs/ring.md, "CPU turns").
 *
 * Every change of a seat's state from WANT or HOLD is a compare-and-swap,
 * and whoever wins it accounts for the token: the giver that hands it on
 * (HOLD -> IDLE, then another seat WANT -> HOLD: the count stays), the
 * taker that finds one free (count + 1, then WANT -> HOLD), the tidier
 * that frees a dead or stalled holder (HOLD -> FREE or IDLE, count - 1).
 * A holder that was stalled and comes back finds its seat no longer HOLD
 * and gives nothing.
 */
#include "turns.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "futex.h"
#include "util.h"

#define TURNS_MAGIC 0x6e727554u /* "Turn" */

enum { SEAT_FREE = 0, SEAT_IDLE, SEAT_WANT, SEAT_HOLD };

struct seat {
    _Atomic uint32_t state;  /* SEAT_*; the futex its thread waits on */
    _Atomic uint32_t pid;    /* owner process; 0 when free */
    _Atomic uint32_t active; /* its ring clients that asked lately */
    uint32_t pad0;
    _Atomic uint64_t since_ns; /* CLOCK_MONOTONIC: when it began to hold */
    char pad[40];
};
_Static_assert(sizeof(struct seat) == 64, "a seat is one cache line");

struct board {
    uint32_t magic;   /* TURNS_MAGIC once initialised */
    uint32_t version; /* DMCE_TURNS_VERSION */
    uint32_t size;    /* sizeof(struct board) */
    uint32_t ntokens;
    _Atomic uint32_t holders;  /* seats in HOLD, and tokens in hand-off */
    _Atomic uint32_t nseats;   /* seats ever used: 1 + the highest index */
    _Atomic uint64_t handoffs; /* tokens handed from seat to seat */
    _Atomic uint64_t reclaimed;
    char pad[24];
    struct seat seat[DMCE_TURNS_SEATS];
};
_Static_assert(offsetof(struct board, seat) == 64, "seats start on their own line");

struct dmce_turns {
    struct board *b;
    uint32_t pid;
};

static int board_valid(const struct board *b)
{
    return b->magic == TURNS_MAGIC && b->version == DMCE_TURNS_VERSION &&
           b->size == sizeof(struct board) && b->ntokens >= 1 && b->ntokens <= DMCE_TURNS_SEATS;
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
out:
    flock(fd, LOCK_UN);
    close(fd); /* the mapping stays */
    if (rc < 0) {
        free(t);
        return rc;
    }
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

static int pid_gone(uint32_t pid)
{
    return pid == 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH);
}

/* A seat left HOLD (by whoever won the CAS): one token fewer in hand. */
static void token_back(struct board *b)
{
    atomic_fetch_sub(&b->holders, 1);
}

/*
 * Free seat i if its process is gone (freeing its token), or take the
 * token of a live holder stalled past the limit. 1 if something was freed.
 */
static int tidy_seat(struct board *b, unsigned i, uint64_t now)
{
    struct seat *s = &b->seat[i];
    uint32_t st = atomic_load(&s->state);
    if (st == SEAT_FREE)
        return 0;
    if (pid_gone(atomic_load(&s->pid))) {
        if (!atomic_compare_exchange_strong(&s->state, &st, SEAT_FREE))
            return 0; /* it moved: look again another time */
        if (st == SEAT_HOLD)
            token_back(b);
        atomic_store(&s->active, 0);
        atomic_store(&s->pid, 0);
        atomic_fetch_add(&b->reclaimed, 1);
        return 1;
    }
    if (st == SEAT_HOLD &&
        now - atomic_load(&s->since_ns) > (uint64_t)DMCE_TURNS_HOLD_MAX_MS * 1000000u &&
        atomic_compare_exchange_strong(&s->state, &st, SEAT_IDLE)) {
        token_back(b);
        atomic_fetch_add(&b->reclaimed, 1);
        return 1;
    }
    return 0;
}

int dmce_turns_tidy(dmce_turns_t *t)
{
    struct board *b = t->b;
    uint64_t now = dmce_now_ns();
    unsigned n = atomic_load(&b->nseats);
    int freed = 0;
    for (unsigned i = 0; i < n && i < DMCE_TURNS_SEATS; i++)
        freed += tidy_seat(b, i, now);
    return freed;
}

int dmce_turns_join(dmce_turns_t *t)
{
    struct board *b = t->b;
    uint64_t now = dmce_now_ns();
    for (unsigned i = 0; i < DMCE_TURNS_SEATS; i++) {
        struct seat *s = &b->seat[i];
        tidy_seat(b, i, now);
        uint32_t st = SEAT_FREE;
        if (!atomic_compare_exchange_strong(&s->state, &st, SEAT_IDLE))
            continue;
        atomic_store(&s->pid, t->pid);
        atomic_store(&s->active, 0);
        uint32_t n = atomic_load(&b->nseats);
        while (n < i + 1 && !atomic_compare_exchange_weak(&b->nseats, &n, i + 1))
            ;
        return (int)i;
    }
    return -ENOSPC;
}

void dmce_turns_leave(dmce_turns_t *t, int seat)
{
    if (seat < 0 || seat >= DMCE_TURNS_SEATS)
        return;
    dmce_turns_give(t, seat);
    struct seat *s = &t->b->seat[seat];
    atomic_store(&s->active, 0);
    uint32_t st = atomic_load(&s->state);
    while (st != SEAT_FREE && !atomic_compare_exchange_weak(&s->state, &st, SEAT_FREE))
        ;
    if (st == SEAT_HOLD) /* handed to us between the give and here */
        token_back(t->b);
    atomic_store(&s->pid, 0);
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
    unsigned n = atomic_load_explicit(&b->nseats, memory_order_relaxed), want = 0;
    for (unsigned i = 0; i < n && i < DMCE_TURNS_SEATS; i++) {
        uint32_t a = atomic_load_explicit(&b->seat[i].active, memory_order_relaxed);
        if (a)
            want += 1 + a;
    }
    return want > ncpus;
}

int dmce_turns_held(const dmce_turns_t *t, int seat)
{
    return atomic_load(&t->b->seat[seat].state) == SEAT_HOLD;
}

/* Our WANT became HOLD: note when. */
static int holding(struct seat *s)
{
    atomic_store(&s->since_ns, dmce_now_ns());
    return 1;
}

int dmce_turns_take(dmce_turns_t *t, int seat, uint32_t wait_us)
{
    struct board *b = t->b;
    struct seat *s = &b->seat[seat];
    uint32_t st = atomic_load(&s->state);
    if (st == SEAT_HOLD)
        return 1;
    if (st != SEAT_WANT)
        atomic_store(&s->state, SEAT_WANT); /* from here a giver may hand over */
    uint64_t start = dmce_now_ns(), end = start + (uint64_t)wait_us * 1000u;
    uint64_t next_tidy = start + 1000000u;
    for (;;) {
        uint32_t h = atomic_load(&b->holders);
        if (h < b->ntokens && atomic_compare_exchange_strong(&b->holders, &h, h + 1)) {
            uint32_t w = SEAT_WANT;
            if (atomic_compare_exchange_strong(&s->state, &w, SEAT_HOLD))
                return holding(s);
            token_back(b); /* handed over meanwhile: the count is already ours */
            return holding(s);
        }
        if (atomic_load(&s->state) == SEAT_HOLD)
            return holding(s);
        uint64_t now = dmce_now_ns();
        if (now >= end) {
            uint32_t w = SEAT_WANT;
            if (atomic_compare_exchange_strong(&s->state, &w, SEAT_IDLE))
                return 0;
            return holding(s); /* handed over at the last moment */
        }
        if (now >= next_tidy) { /* a long wait: is a holder dead or stopped? */
            dmce_turns_tidy(t);
            next_tidy = now + 1000000u;
        }
        uint64_t left_ms = (end - now + 999999u) / 1000000u;
        dmce_futex_wait(&s->state, SEAT_WANT, (uint32_t)DMCE_MIN(left_ms, 1u));
    }
}

void dmce_turns_give(dmce_turns_t *t, int seat)
{
    struct board *b = t->b;
    struct seat *s = &b->seat[seat];
    uint32_t st = atomic_load(&s->state);
    if (st == SEAT_WANT) { /* gave up waiting: no token to give */
        if (atomic_compare_exchange_strong(&s->state, &st, SEAT_IDLE))
            return;
    }
    if (st != SEAT_HOLD || !atomic_compare_exchange_strong(&s->state, &st, SEAT_IDLE))
        return; /* not ours any more (taken from a stalled holder) */
    unsigned n = atomic_load(&b->nseats);
    for (unsigned k = 1; k < n; k++) {
        unsigned i = ((unsigned)seat + k) % n;
        struct seat *o = &b->seat[i];
        uint32_t w = SEAT_WANT;
        if (atomic_load(&o->state) != SEAT_WANT || pid_gone(atomic_load(&o->pid)))
            continue;
        if (atomic_compare_exchange_strong(&o->state, &w, SEAT_HOLD)) {
            atomic_store(&o->since_ns, dmce_now_ns());
            atomic_fetch_add(&b->handoffs, 1);
            dmce_futex_wake(&o->state, 1);
            return;
        }
    }
    token_back(b);
    /* A seat that began to wait after the scan sleeps a slice: wake it to take this one. */
    for (unsigned i = 0; i < n; i++)
        if (i != (unsigned)seat && atomic_load(&b->seat[i].state) == SEAT_WANT)
            dmce_futex_wake(&b->seat[i].state, 1);
}

void dmce_turns_stats(const dmce_turns_t *t, dmce_turns_stats_t *out)
{
    const struct board *b = t->b;
    out->handoffs = atomic_load(&b->handoffs);
    out->reclaimed = atomic_load(&b->reclaimed);
    out->waiting = out->holding = 0;
    unsigned n = atomic_load(&b->nseats);
    for (unsigned i = 0; i < n && i < DMCE_TURNS_SEATS; i++) {
        uint32_t st = atomic_load(&b->seat[i].state);
        out->waiting += st == SEAT_WANT;
        out->holding += st == SEAT_HOLD;
    }
}
