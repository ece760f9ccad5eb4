/*
 * transport_ring.h - MSMP over shared-memory rings, between a client and a
 * memory daemon on the same host (the fast local path).
 *
 * The byte stream is exactly the socket's: the same MSMP frames, in order,
 * through a pair of SPSC rings (runtime/ring.h). What this file adds is the
 * per-connection segment around them and the wake-up protocol for a daemon
 * whose worker threads sleep in epoll, not on a ring's futex:
 *
 *   [ ring segment: two rings of `capacity` bytes ][ control page, 4 KiB ]
 *
 * The daemon creates the segment (memfd: nothing to clean up after a
 * crash), and passes it with its worker's doorbell eventfd over the Unix
 * socket (MSMP op ring_open, SCM_RIGHTS). The socket stays open: it is the
 * liveness signal both ways (POLLRDHUP), and nothing else travels on it.
 *
 * Wake-ups:
 *   - client -> daemon: before a worker sleeps in epoll it sets
 *     server_parked in the control page of each of its ring connections,
 *     issues a full fence and looks at the rings once more. A client, after
 *     committing a request or consuming a response, issues a full fence and
 *     writes the doorbell eventfd if server_parked is set (and clears it).
 *     Either the worker sees the bytes before sleeping or the client sees
 *     the flag: no lost wake-up (the ring's own eventcount argument).
 *   - daemon -> client: the client waits on the response ring with
 *     dmce_ring_wait_readable (bounded spin, then the ring's futex), and the
 *     daemon's commit wakes it.
 *   - spinning is granted, not assumed: the daemon writes client_spin_ns
 *     into each control page (0 when the clients that are active plus its
 *     spinning workers outnumber the CPUs), and spins itself under the same
 *     rule. A client never spins longer than it is told; with more clients
 *     than CPUs it yields the CPU instead (spin_mode YIELD), so that the
 *     daemon and the other clients run.
 *
 * Trust: the control page is written by both sides; each side reads only
 * hints from it (a flag, a spin budget) and validates the ring segment
 * itself with dmce_ring_segment_attach.
 */
#ifndef DMCE_RUNTIME_TRANSPORT_RING_H
#define DMCE_RUNTIME_TRANSPORT_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ring.h"

#define DMCE_RT_MAGIC 0x4c52544345434d44ull /* "DMCECTRL" */
#define DMCE_RT_VERSION 1u
#define DMCE_RT_CTL_SIZE 4096u
#define DMCE_RT_CAPACITY_DEFAULT (256u << 10)

/* How a waiting client may use the CPU (dmce_rt_ctl_t.spin_mode). */
enum dmce_rt_spin_mode {
    DMCE_RT_SPIN_NONE = 0,  /* sleep at once */
    DMCE_RT_SPIN_PAUSE = 1, /* busy-poll with a CPU pause for client_spin_ns */
    DMCE_RT_SPIN_YIELD = 2, /* poll, yielding the CPU between looks, for client_spin_ns */
    DMCE_RT_SPIN_TURN = 3,  /* CPU turns: the client's turn; poll with a pause for
                               client_spin_ns whatever spinning achieved before (yielding
                               every 5 us once a response is 5 us late), until the daemon
                               sets another mode */
};

/* The control page, after the ring segment. 4096 bytes. */
typedef struct dmce_rt_ctl {
    uint64_t magic;   /* DMCE_RT_MAGIC */
    uint32_t version; /* DMCE_RT_VERSION */
    uint32_t layout;  /* DMCE_RT_LAYOUT_WORD */
    uint8_t pad0[DMCE_RING_LINE - 16];
    _Atomic uint32_t server_parked; /* the daemon's worker sleeps: ring the doorbell */
    uint8_t pad1[DMCE_RING_LINE - 4];
    _Atomic uint32_t client_spin_ns; /* spin budget granted to the client */
    _Atomic uint32_t spin_mode;      /* enum dmce_rt_spin_mode */
    _Atomic uint32_t client_cpu;     /* in its turn: 1 + the CPU the client waits on; 0 = unknown */
    _Atomic uint32_t in_turns;       /* 1: the daemon serves in CPU turns (a wait may be long) */
    uint8_t pad2[DMCE_RT_CTL_SIZE - 2 * DMCE_RING_LINE - 16];
} dmce_rt_ctl_t;

_Static_assert(sizeof(dmce_rt_ctl_t) == DMCE_RT_CTL_SIZE, "control page");
_Static_assert(offsetof(dmce_rt_ctl_t, server_parked) == DMCE_RING_LINE, "own line");
_Static_assert(offsetof(dmce_rt_ctl_t, client_spin_ns) == 2 * DMCE_RING_LINE, "own line");

#define DMCE_RT_LAYOUT_WORD ((uint32_t)(sizeof(dmce_rt_ctl_t) << 8 | DMCE_RING_LINE))

/* A mapped segment as one side sees it. */
typedef struct dmce_rt {
    void *base;          /* the mapping; owner: whoever called dmce_rt_map */
    size_t size;
    dmce_ring_pair_t rp; /* tx: this side writes, rx: this side reads */
    dmce_rt_ctl_t *ctl;
} dmce_rt_t;

/* Bytes of a segment with rings of `capacity` bytes; 0 for a bad capacity. */
size_t dmce_rt_segment_size(uint32_t capacity);

/*
 * Daemon: create a memfd segment for rings of `capacity` bytes, map it,
 * format it, attach as the server. *fd_out is the memfd (for the client);
 * rt->base the daemon's mapping. 0 or -errno / -EINVAL.
 */
int dmce_rt_create(uint32_t capacity, int *fd_out, dmce_rt_t *rt);

/*
 * Client: map the segment behind fd (size bytes), validate it (ring
 * header, control page magic/version/layout: distinct errors), attach as
 * the client. 0 or an error; nothing stays mapped on error.
 */
int dmce_rt_map(int fd, size_t size, uint32_t capacity, dmce_rt_t *rt);

/* Close both rings (the peer's waits end) and unmap. */
void dmce_rt_unmap(dmce_rt_t *rt);

/*
 * Client, after a commit or a consume: ring the doorbell if the daemon's
 * worker is parked. Returns 1 if it wrote the eventfd.
 */
int dmce_rt_kick(dmce_rt_t *rt, int doorbell_fd);

#endif /* DMCE_RUNTIME_TRANSPORT_RING_H */
