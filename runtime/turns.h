/*
 * turns.h - CPU turns for the ring transport: a board, shared by every
 * daemon of a runtime directory, on which their workers take turns at
 * serving ring clients when the spinners outnumber the CPUs.
 *
 * A ring request is fastest when its client and the worker that serves it
 * both poll (0.4-0.7 us a round trip); that takes two CPUs. When more
 * ring clients are active than the CPUs can hold beside their workers, no
 * pair can poll, and every request costs a sleep and a wake-up on each
 * side (~10 us with 8 clients on 2 CPUs: less, in total, than one client
 * alone). Then the workers take turns: a worker holds one of ntokens
 * tokens (CPUs / 2, at least 1) while it serves one of its clients, which
 * may poll; the other clients sleep until their turn comes (docs/ring.md,
 * "CPU turns").
 *
 * The board is a small file mapped by every daemon: a seat per worker
 * (owned by its process's pid and start time; a futex word saying whether
 * it waits; its active clients) and the tokens, each one word naming the
 * seat that holds it. Every change of owner is one compare-and-swap, so
 * a process killed at any instruction leaves no count to repair. A token
 * given back goes straight to the next seat that waits, in seat order, so
 * no worker takes turns twice while another waits. A seat whose process
 * died, or that held a token past DMCE_TURNS_HOLD_MAX_MS without renewing
 * it (a stopped process), loses it to the next taker: the board never
 * stays stuck. Daemons sharing a runtime dir must share a pid namespace.
 *
 * Threads: every function may be called from any thread; a seat belongs
 * to the thread that joined it (take, give and held are its calls only).
 */
#ifndef DMCE_RUNTIME_TURNS_H
#define DMCE_RUNTIME_TURNS_H

#include <stdint.h>

#define DMCE_TURNS_SEATS 64        /* workers of one runtime directory */
#define DMCE_TURNS_HOLD_MAX_MS 100 /* a token held longer may be taken away */
#define DMCE_TURNS_VERSION 1

typedef struct dmce_turns dmce_turns_t;

/*
 * Map the board at path (created, 0600, if missing or not a board of this
 * version) for a machine with ncpus CPUs (>= 1). One handle per process.
 * 0 or -errno; *out is NULL on error.
 */
int dmce_turns_open(const char *path, unsigned ncpus, dmce_turns_t **out);

/* Unmap the board (seats must have been left). NULL is a no-op. */
void dmce_turns_close(dmce_turns_t *t);

/* Tokens on this board: ncpus / 2 of its creator, at least 1. */
unsigned dmce_turns_tokens(const dmce_turns_t *t);

/* A seat for the calling thread: index >= 0, or -ENOSPC when all are taken. */
int dmce_turns_join(dmce_turns_t *t);

/* Give the seat up (with its token, if it holds one). */
void dmce_turns_leave(dmce_turns_t *t, int seat);

/*
 * Say that this process runs: stamps every seat of it. A daemon calls it
 * about every 100 ms; a seat not stamped for 2 s (a stopped daemon, or a
 * pid that kill() cannot tell from a live one: reused, another user's)
 * counts for nothing in dmce_turns_crowded and is never handed a token.
 */
void dmce_turns_beat(dmce_turns_t *t);

/* Publish how many ring clients of this seat asked something lately. */
void dmce_turns_set_active(dmce_turns_t *t, int seat, unsigned clients);

/*
 * 1 when the spinners of the board would outnumber ncpus: the sum over
 * seats with active clients of (1 worker + its clients) > ncpus.
 */
int dmce_turns_crowded(const dmce_turns_t *t, unsigned ncpus);

/*
 * Take a token, waiting for at most wait_us (0 = only if one is free now).
 * 1 = this seat holds one (also when it already did), 0 = not in time.
 */
int dmce_turns_take(dmce_turns_t *t, int seat, uint32_t wait_us);

/* Give the token back: to the next waiting seat, else to the pool. */
void dmce_turns_give(dmce_turns_t *t, int seat);

/* 1 if the seat holds a token (it may have lost it by holding too long). */
int dmce_turns_held(const dmce_turns_t *t, int seat);

/*
 * The seat still works with its token: the stall clock of what it holds
 * starts again (a holder is taken for stopped after DMCE_TURNS_HOLD_MAX_MS
 * without one). Call at least that often while holding.
 */
void dmce_turns_renew(dmce_turns_t *t, int seat);

/* 1 if a seat of process pid holds a token now (tests, diagnostics). */
int dmce_turns_pid_holds(const dmce_turns_t *t, uint32_t pid);

/*
 * Free the seats of processes that are gone (their tokens too), and take
 * back tokens held past the stall limit. Returns how many. Joins and
 * long waits do it themselves; a daemon calls it now and then so that a
 * dead daemon's clients stop counting at once. thorough: also seats whose
 * pid now names another process (a start time that differs), which opens
 * /proc/PID/stat for each seat: the board does it when it is opened and
 * at each join; a daemon's periodic call should not (it must never take a
 * descriptor a shortage of them needs: the accept path keeps a spare).
 */
int dmce_turns_tidy(dmce_turns_t *t, int thorough);

/* Tokens handed from seat to seat, taken from a dead or stalled seat; seats waiting, tokens held.
 */
typedef struct dmce_turns_stats {
    uint64_t handoffs;
    uint64_t reclaimed;
    unsigned waiting;
    unsigned holding;
} dmce_turns_stats_t;
void dmce_turns_stats(const dmce_turns_t *t, dmce_turns_stats_t *out);

#endif /* DMCE_RUNTIME_TURNS_H */
