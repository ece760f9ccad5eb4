/*
 * ring.h - shared-memory SPSC byte rings between a client and a memory
 * daemon on the same host. docs/ring.md is the design; this is the API.
 *
 * A ring is a pipe in shared memory: one producer process writes bytes,
 * one consumer process reads them, in order, in pieces of any size, so an
 * MSMP frame larger than the ring flows through in several pieces. A
 * segment holds two rings, one per direction, behind one header:
 *
 *   offset         size         what
 *   0              128          dmce_ring_seg_hdr_t (magic, version, layout)
 *   128            384          dmce_ring_ctl_t of ring 0: client -> server
 *   512            384          dmce_ring_ctl_t of ring 1: server -> client
 *   896            3200         zero (reserved)
 *   4096           capacity     data of ring 0
 *   4096+capacity  capacity     data of ring 1
 *
 * The daemon creates the segment (a POSIX shm object, one per connection),
 * formats it with dmce_ring_segment_init and passes the fd over the Unix
 * socket, which stays the control channel and the liveness signal. This
 * module never creates or maps memory: it works on the caller's region.
 *
 * Frozen format: fixed-width fields only (a 32-bit and a 64-bit process
 * share one segment), sizes and offsets pinned by _Static_assert, and the
 * header carries a magic, a version and a layout word derived from the
 * struct sizes; attach checks all three.
 *
 * Positions are 64-bit byte counts that only grow (head: bytes ever
 * committed, tail: bytes ever consumed); the data index is pos & (capacity
 * - 1). head - tail is the fill level and is never more than capacity.
 * Each position sits on its own 128-byte line (two 64-byte lines: the x86
 * adjacent-line prefetcher fetches pairs), the sleeper words and the close
 * flags on a third line that is written only on the slow path.
 *
 * Trust: the peer is another process and may be buggy or hostile. Every
 * value read from the segment is checked before use; indexes are masked
 * with the capacity validated at attach time and kept in the process-local
 * handle (never re-read from the segment); a position that moved
 * impossibly gives DMCE_ECORRUPT, never an access outside the region. The
 * data bytes themselves can change under a reader that holds a span: copy
 * a frame header out before validating it.
 *
 * Threads: a handle belongs to one side of one ring. All calls on one
 * handle must come from one thread at a time; the producer and the
 * consumer handles of a ring may be used concurrently (that is the point),
 * from two processes or two threads. Exactly one producer handle and one
 * consumer handle per ring. dmce_ring_close, dmce_ring_notify,
 * dmce_ring_peer_asleep, dmce_ring_closed and dmce_ring_stats may be
 * called from any thread of the handle's process.
 */
#ifndef DMCE_RUNTIME_RING_H
#define DMCE_RUNTIME_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DMCE_RING_MAGIC 0x474e495245434d44ull /* "DMCERING" in memory */
#define DMCE_RING_VERSION 1u
#define DMCE_RING_LINE 128u          /* separation of hot words */
#define DMCE_RING_ALIGN 64u          /* required alignment of a segment */
#define DMCE_RING_DATA_OFFSET 4096u  /* data of ring 0; metadata before */
#define DMCE_RING_CAPACITY_MIN 4096u /* bytes per ring */
#define DMCE_RING_CAPACITY_MAX (1u << 30)
#define DMCE_RING_SLICE_MS_DEFAULT 50u   /* futex sleep slice */
#define DMCE_RING_SPIN_NS_DEFAULT 20000u /* see dmce_ring_default_spin_ns */

/* Ring indexes in a segment. */
#define DMCE_RING_C2S 0u /* client -> server: requests */
#define DMCE_RING_S2C 1u /* server -> client: responses */

/* dmce_ring_ctl_t.closed bits: who closed the ring. */
#define DMCE_RING_CLOSED_PRODUCER 0x1u
#define DMCE_RING_CLOSED_CONSUMER 0x2u

/* Sleeper words: bit 0 = a waiter is (about to be) asleep, bits 1-31 = sequence. */
#define DMCE_RING_SLEEPER 0x1u

/*
 * Lock-free 64-bit and 32-bit atomics are required: a lock-based atomic
 * would keep its lock in process-local memory and not exclude the peer.
 * On i386 this holds from i586 (cmpxchg8b, fild/fistp) on, gcc's and
 * clang's default, for an 8-aligned object; _Atomic uint64_t is 8-aligned
 * there too (gcc >= 11, clang), unlike a plain uint64_t. Clang reports
 * ATOMIC_LLONG_LOCK_FREE as 1 ("sometimes") on i386 for that reason, so the
 * check asks about an aligned 8-byte object directly.
 */
#if defined(__GNUC__) || defined(__clang__)
_Static_assert(__atomic_always_lock_free(8, 0), "64-bit atomics must be lock-free");
_Static_assert(__atomic_always_lock_free(4, 0), "32-bit atomics must be lock-free");
#else
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
#endif
_Static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8,
               "shared 64-bit positions are 8 bytes, 8-aligned (also on i386)");
_Static_assert(sizeof(_Atomic uint32_t) == 4, "shared 32-bit words are 4 bytes");

/* Segment header, offset 0. Written once by dmce_ring_segment_init. 128 bytes. */
typedef struct dmce_ring_seg_hdr {
    uint64_t magic;          /* DMCE_RING_MAGIC */
    uint32_t version;        /* DMCE_RING_VERSION */
    uint32_t layout;         /* DMCE_RING_LAYOUT_WORD */
    uint32_t capacity;       /* data bytes per ring: power of two */
    uint32_t nrings;         /* 2 */
    uint64_t seg_size;       /* dmce_ring_segment_size(capacity) */
    uint64_t ctl_offset[2];  /* byte offset of each ring's dmce_ring_ctl_t */
    uint64_t data_offset[2]; /* byte offset of each ring's data */
    uint8_t reserved[64];
} dmce_ring_seg_hdr_t;

/*
 * Control block of one ring: three 128-byte lines. Line 0 is written only
 * by the producer, line 1 only by the consumer, line 2 by either side but
 * only when someone sleeps or closes. Counters are statistics (single
 * writer each, relaxed); head and tail are the protocol.
 */
typedef struct dmce_ring_ctl {
    /* line 0: producer */
    _Atomic uint64_t head;        /* bytes ever committed */
    _Atomic uint64_t prod_sleeps; /* futex sleeps of the producer (ring full) */
    _Atomic uint64_t prod_wakes;  /* futex wake syscalls made by the producer side */
    uint8_t pad0[DMCE_RING_LINE - 24];
    /* line 1: consumer */
    _Atomic uint64_t tail;        /* bytes ever consumed */
    _Atomic uint64_t cons_sleeps; /* futex sleeps of the consumer (ring empty) */
    _Atomic uint64_t cons_wakes;  /* futex wake syscalls made by the consumer side */
    uint8_t pad1[DMCE_RING_LINE - 24];
    /* line 2: slow path */
    _Atomic uint32_t data_futex;  /* the consumer sleeps here for data */
    _Atomic uint32_t space_futex; /* the producer sleeps here for space */
    _Atomic uint32_t closed;      /* DMCE_RING_CLOSED_* bits, only ever set */
    uint32_t reserved;
    uint8_t pad2[DMCE_RING_LINE - 16];
} dmce_ring_ctl_t;

_Static_assert(sizeof(dmce_ring_seg_hdr_t) == 128, "ring segment header is 128 bytes");
_Static_assert(offsetof(dmce_ring_seg_hdr_t, capacity) == 16, "frozen header offsets");
_Static_assert(offsetof(dmce_ring_seg_hdr_t, seg_size) == 24, "frozen header offsets");
_Static_assert(offsetof(dmce_ring_seg_hdr_t, ctl_offset) == 32, "frozen header offsets");
_Static_assert(offsetof(dmce_ring_seg_hdr_t, data_offset) == 48, "frozen header offsets");
_Static_assert(sizeof(dmce_ring_ctl_t) == 3 * DMCE_RING_LINE, "ring control is three lines");
_Static_assert(offsetof(dmce_ring_ctl_t, head) == 0, "head starts line 0");
_Static_assert(offsetof(dmce_ring_ctl_t, tail) == DMCE_RING_LINE, "tail starts line 1");
_Static_assert(offsetof(dmce_ring_ctl_t, data_futex) == 2 * DMCE_RING_LINE,
               "sleeper words start line 2");
_Static_assert(offsetof(dmce_ring_ctl_t, space_futex) == 2 * DMCE_RING_LINE + 4,
               "frozen control offsets");
_Static_assert(offsetof(dmce_ring_ctl_t, closed) == 2 * DMCE_RING_LINE + 8,
               "frozen control offsets");
_Static_assert(sizeof(dmce_ring_seg_hdr_t) + 2 * sizeof(dmce_ring_ctl_t) <= DMCE_RING_DATA_OFFSET,
               "metadata fits before the data");

#define DMCE_RING_LAYOUT_WORD                                                                      \
    ((uint32_t)(sizeof(dmce_ring_seg_hdr_t) << 20 | sizeof(dmce_ring_ctl_t) << 8 |                 \
                DMCE_RING_DATA_OFFSET >> 12))

/* Which end of the connection a process is. */
typedef enum dmce_ring_side {
    DMCE_RING_SIDE_CLIENT = 0, /* produces on ring 0, consumes ring 1 */
    DMCE_RING_SIDE_SERVER = 1, /* produces on ring 1, consumes ring 0 */
} dmce_ring_side_t;

enum dmce_ring_role { DMCE_RING_PRODUCER = 1, DMCE_RING_CONSUMER = 2 };

/*
 * Process-local handle to one side of one ring. Filled by
 * dmce_ring_segment_attach; plain memory owned by the caller; no
 * resources to release (the caller owns the mapping, which must outlive
 * the handle). Fields are private.
 */
typedef struct dmce_ring {
    dmce_ring_ctl_t *ctl;
    uint8_t *data;
    uint32_t capacity; /* validated at attach; never re-read from the segment */
    uint32_t mask;
    uint32_t role; /* enum dmce_ring_role */
    uint32_t span; /* bytes of the last span not yet committed/consumed */
    uint64_t pos;  /* own position (producer: head, consumer: tail): the truth */
    uint64_t peer; /* last seen peer position (producer: tail, consumer: head) */
} dmce_ring_t;

/* Both rings of a segment as seen by one side: tx it writes, rx it reads. */
typedef struct dmce_ring_pair {
    dmce_ring_t tx;
    dmce_ring_t rx;
} dmce_ring_pair_t;

/*
 * How a blocking wait waits. All zero (or a NULL policy) means: no
 * spinning, DMCE_RING_SLICE_MS_DEFAULT slices, no timeout, no liveness
 * check.
 *   spin_ns     busy-poll (with a CPU pause) this long before sleeping;
 *               0 = sleep at once. The caller decides: spin only when the
 *               peer runs on another free CPU (dmce_ring_default_spin_ns).
 *   slice_ms    sleep on the futex in slices of at most this long (0 =
 *               default), so that `alive` runs at least this often. With
 *               `alive`, the first check comes 1 ms into the wait and
 *               the gap doubles after each check up to slice_ms: a peer
 *               that dies just after the request is noticed within 1-2
 *               ms, one that dies later within the gap of the moment
 *               (at most slice_ms), and a long wait still costs one
 *               check per slice_ms. Without it, slices are slice_ms.
 *   first_check_ms  with `alive`: the first check comes this long into
 *               the wait instead of 1 ms (0 = 1 ms; at most slice_ms), for a waiter that
 *               expects to wait long and has better use for the CPU than
 *               checks (a ring client waiting for its CPU turn).
 *   timeout_ms  give up after this long with -ETIMEDOUT (0 = never).
 *   alive       optional; called about once per slice while sleeping. 0 =
 *               the peer is alive, keep waiting; negative = the wait
 *               returns that error; positive = the wait returns
 *               DMCE_ECLOSED. E.g. poll the control socket for POLLHUP.
 *   how         optional out: how the wait ended (DMCE_RING_WAITED_*), so
 *               that a caller can tune its next spin_ns to what spinning
 *               achieved (dmce_spin_adapt_t).
 *   spin_over   optional; called once with alive_arg when a spin ran out
 *               and the waiter is about to sleep: the moment to look at
 *               what the peer did meanwhile.
 *   spin_gate   optional; the spin also ends (how: DMCE_RING_WAITED_CUT)
 *               as soon as *spin_gate reads 0, looked at with the clock:
 *               a peer that grants the spin can take the grant back.
 */
typedef struct dmce_ring_wait {
    uint32_t spin_ns;
    uint32_t slice_ms;
    uint32_t first_check_ms;
    uint32_t timeout_ms;
    int (*alive)(void *arg);
    void *alive_arg;
    uint32_t *how;
    void (*spin_over)(void *arg);
    const _Atomic uint32_t *spin_gate;
} dmce_ring_wait_t;

#define DMCE_RING_WAITED_NOT 0u   /* ready at once (or an error before any wait) */
#define DMCE_RING_WAITED_SPUN 1u  /* ready during the spin */
#define DMCE_RING_WAITED_SLEPT 2u /* the spin (if any) ran out: slept on the futex */
#define DMCE_RING_WAITED_CUT 3u   /* the spin_gate closed during the spin: slept */

typedef struct dmce_ring_stats {
    uint64_t head; /* bytes ever committed */
    uint64_t tail; /* bytes ever consumed */
    uint64_t prod_sleeps, prod_wakes;
    uint64_t cons_sleeps, cons_wakes;
    uint32_t capacity;
    uint32_t closed; /* DMCE_RING_CLOSED_* */
} dmce_ring_stats_t;

/* ---- segment ---------------------------------------------------------------- */

/*
 * Bytes of a segment with two rings of `capacity` bytes each:
 * DMCE_RING_DATA_OFFSET + 2 * capacity. 0 when capacity is not a power of
 * two in [DMCE_RING_CAPACITY_MIN, DMCE_RING_CAPACITY_MAX]. Pure.
 */
size_t dmce_ring_segment_size(uint32_t capacity);

/*
 * Format the region [base, base+size) as an empty segment: header and both
 * control blocks are written, the data areas are not touched. base must be
 * DMCE_RING_ALIGN-aligned (an mmap is), size >= dmce_ring_segment_size.
 * Not safe while anyone is attached. Returns 0 or -EINVAL. Never blocks.
 */
int dmce_ring_segment_init(void *base, size_t size, uint32_t capacity);

/*
 * Validate the segment at [base, base+size) and fill *out with this side's
 * handles: out->tx is the ring this side produces on, out->rx the one it
 * consumes. Errors, distinct for each cause: -EINVAL (NULL, misaligned,
 * size smaller than the header, bad side), DMCE_EBADMAGIC, DMCE_EVERSION,
 * DMCE_ELAYOUT, DMCE_ECORRUPT (capacity not a valid power of two, size or
 * offsets inconsistent, region smaller than the header says, or a ring
 * with head - tail > capacity). *out is untouched on error. Reads only;
 * safe while the peer runs. Never blocks.
 */
int dmce_ring_segment_attach(void *base, size_t size, dmce_ring_side_t side, dmce_ring_pair_t *out);

/* ---- copy operations (non-blocking) ----------------------------------------- */

/*
 * Copy up to len bytes from buf into the ring and publish them; wakes the
 * consumer if it sleeps (no syscall otherwise). Returns the bytes written:
 * short when the ring has less room, 0 when full or len == 0. -EBADF on a
 * consumer handle, DMCE_ECLOSED once either side closed the ring,
 * DMCE_ECORRUPT if the consumer's tail moved impossibly. Never blocks.
 */
int dmce_ring_write(dmce_ring_t *r, const void *buf, size_t len);

/*
 * Copy up to len bytes out of the ring into buf and release their space;
 * wakes the producer if it sleeps. Returns the bytes read, 0 when the ring
 * is empty (or len == 0), DMCE_ECLOSED when it is empty and closed (bytes
 * committed before the close are always delivered first), -EBADF on a
 * producer handle, DMCE_ECORRUPT. Never blocks.
 */
int dmce_ring_read(dmce_ring_t *r, void *buf, size_t len);

/* ---- zero-copy spans (non-blocking) ----------------------------------------- */

/*
 * The contiguous free space at the producer's position, up to the wrap
 * point: *ptr and *len (0 when full). Write into it, then commit. A new
 * span replaces the previous one. Returns 0, -EBADF, DMCE_ECLOSED,
 * DMCE_ECORRUPT. The memory belongs to the segment; do not keep *ptr past
 * the commit.
 */
int dmce_ring_write_span(dmce_ring_t *r, void **ptr, size_t *len);

/*
 * Publish the first n bytes of the current write span (n <= its remaining
 * length, else -EINVAL) and wake the consumer if it sleeps. May be called
 * several times per span. 0 or -EBADF / -EINVAL. Never blocks.
 */
int dmce_ring_commit(dmce_ring_t *r, size_t n);

/*
 * The contiguous readable bytes at the consumer's position, up to the wrap
 * point: *ptr and *len (0 when empty). The bytes stay in the ring until
 * consumed; the peer can scribble on them, so copy what you validate.
 * Returns 0, DMCE_ECLOSED (empty and closed), -EBADF, DMCE_ECORRUPT.
 */
int dmce_ring_read_span(dmce_ring_t *r, const void **ptr, size_t *len);

/*
 * Release the first n bytes of the current read span (n <= its remaining
 * length, else -EINVAL) and wake the producer if it sleeps. 0 or error.
 */
int dmce_ring_consume(dmce_ring_t *r, size_t n);

/* ---- levels ------------------------------------------------------------------ */

/* Bytes the consumer can read now; -EBADF on a producer handle, DMCE_ECORRUPT. */
int dmce_ring_readable(dmce_ring_t *r);

/* Bytes the producer can write now; -EBADF on a consumer handle, DMCE_ECORRUPT. */
int dmce_ring_writable(dmce_ring_t *r);

/* ---- blocking waits ---------------------------------------------------------- */

/*
 * Wait until at least min_bytes (0 counts as 1) can be read, spinning then
 * sleeping as `policy` says (NULL = defaults, see dmce_ring_wait_t).
 * Returns the readable byte count (>= min_bytes); DMCE_ECLOSED when the
 * ring is closed and fewer than min_bytes remain (they can still be read
 * with dmce_ring_read); -ETIMEDOUT; the alive callback's error; -EINVAL
 * when min_bytes > capacity; -EBADF; DMCE_ECORRUPT. Blocks. Signals do
 * not end the wait.
 */
int dmce_ring_wait_readable(dmce_ring_t *r, size_t min_bytes, const dmce_ring_wait_t *policy);

/*
 * Wait until at least min_bytes (0 counts as 1) can be written. Returns the
 * writable byte count; DMCE_ECLOSED as soon as either side closed the ring;
 * otherwise as dmce_ring_wait_readable. Blocks.
 */
int dmce_ring_wait_writable(dmce_ring_t *r, size_t min_bytes, const dmce_ring_wait_t *policy);

/*
 * A spin budget for dmce_ring_wait_t.spin_ns: 0 when this process may run
 * on only one CPU (spinning would only delay the peer),
 * DMCE_RING_SPIN_NS_DEFAULT otherwise. Callers that know better (more
 * spinners than free cores) pass 0 themselves. One syscall; call once and
 * keep the result. Thread-safe.
 */
uint32_t dmce_ring_default_spin_ns(void);

/*
 * An adaptive spin budget, for a waiter that may spin up to `max` ns
 * before it sleeps (a ring client waiting for its response, a daemon
 * worker polling its rings for the next request). Spinning pays only
 * while the peer runs on another CPU at the same time; when other work
 * takes the CPUs (one busy process on a 2-CPU machine is enough), a spin
 * runs out its budget while the peer waits for the CPU it burns, and
 * every request costs the whole budget. So: a spin that ran out divides
 * the budget by 4 (under 1 us: no spin at all), one that paid off doubles
 * it (at least 2 us, at most max); with no spin, every `every`-th wait
 * (16, doubling after each probe that fails, up to 1024) spins the whole
 * max again to see whether the CPUs are free again (the whole of it: a
 * parked peer takes tens of microseconds to wake); a probe that fails
 * goes straight back to no spin. Zero-initialize; one per waiter (not
 * shared between threads).
 *
 * Only a spin that ran out *because the peer could not run* may be
 * reported as one (spun = 0 with a budget): the caller checks that the
 * peer made no progress (it did not take our request, or our response).
 * A spin that covered the peer's wake-up from sleep, its think time or a
 * long request tells nothing about the CPUs and is not reported; else an
 * idle pause or a slow wake-up would talk both sides out of spinning on a
 * free machine.
 */
typedef struct dmce_spin_adapt {
    uint32_t cur;   /* budget, ns (valid once init) */
    uint32_t skips; /* waits without a spin since the last probe */
    uint32_t every; /* probe once per this many waits without a spin */
    uint8_t init;
    uint8_t probing; /* cur was set by a probe */
} dmce_spin_adapt_t;

/* The budget for the next wait, at most max (0 = do not spin). */
uint32_t dmce_spin_budget(dmce_spin_adapt_t *a, uint32_t max);

/*
 * After a wait given `budget` by dmce_spin_budget(a, max): spun = 1 if
 * what it waited for came while it spun; 0 if it slept, after a spin that
 * ran out while the peer could not run (see above), or with budget 0.
 * Nothing happens while max is 0 (no grant).
 */
void dmce_spin_update(dmce_spin_adapt_t *a, uint32_t max, uint32_t budget, int spun);

/* ---- sleepers, close, stats ---------------------------------------------------- */

/*
 * 1 when this handle's peer is registered as sleeping on this ring (the
 * consumer waiting for data, for a producer handle; the producer waiting
 * for space, for a consumer handle), else 0. A hint: the peer may be just
 * going to sleep or just waking. Never blocks, no syscall.
 */
int dmce_ring_peer_asleep(const dmce_ring_t *r);

/*
 * Wake whoever sleeps on this ring (either side), making a futex syscall
 * only for a registered sleeper. Commit, consume, write, read and close
 * already do this; notify is for callers that changed what a waiter's
 * alive callback looks at. Returns the number of wake syscalls made (0, 1
 * or 2). Never blocks.
 */
int dmce_ring_notify(dmce_ring_t *r);

/*
 * Mark the ring closed from this side and wake both sides' sleepers. The
 * consumer still gets every byte committed before the close, then
 * DMCE_ECLOSED; the producer gets DMCE_ECLOSED at once. Idempotent,
 * irreversible (a new connection gets a new segment). Never blocks.
 */
void dmce_ring_close(dmce_ring_t *r);

/* Close both rings of a pair (at disconnect). */
void dmce_ring_pair_close(dmce_ring_pair_t *p);

/* DMCE_RING_CLOSED_* bits set so far (0 = open). */
uint32_t dmce_ring_closed(const dmce_ring_t *r);

/* Snapshot of the ring's positions and counters (not atomic as a whole). */
void dmce_ring_stats(const dmce_ring_t *r, dmce_ring_stats_t *out);

#endif /* DMCE_RUNTIME_RING_H */
