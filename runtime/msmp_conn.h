/*
 * msmp_conn.h - one MSMP client connection: a Unix socket to a daemon,
 * moved to shared-memory rings when the daemon offers them, and request /
 * response with deadlines. libdmce keeps one per memory daemon; a memory
 * daemon keeps one to the dispatcher and one to each peer it mirrors to;
 * the dispatcher keeps one to each daemon; dmcectl uses one.
 *
 * Not thread-safe: the owner serializes calls on a connection (libdmce
 * holds a mutex per daemon). Only one request is ever outstanding.
 *
 * Errors: a transport or protocol failure closes the connection (fd -1)
 * and is returned as DMCE_ECLOSED, -ETIMEDOUT or -EPROTO; the next call
 * reconnects. A response's own status (0 or a negative error) is returned
 * as is, and leaves the connection open.
 */
#ifndef DMCE_RUNTIME_MSMP_CONN_H
#define DMCE_RUNTIME_MSMP_CONN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "transport_ring.h"

/* dmce_mconn_t.flags */
#define DMCE_MCONN_NO_RING 0x1u /* stay on the socket */

typedef struct dmce_mconn {
    char path[256];         /* the daemon's socket */
    unsigned timeout_ms;    /* one request's round trip */
    unsigned flags;         /* DMCE_MCONN_* */
    int fd;                 /* -1 when not connected; owner: this struct */
    uint64_t next_req;
    uint32_t max_payload;   /* the peer's, once known (setup); default until then */
    atomic_int pid;         /* the peer's pid, from SO_PEERCRED */
    atomic_int dead;        /* set (by a watcher) when that process exited */
    int ring;               /* 1 after ring_open */
    dmce_rt_t rt;           /* owner: this struct */
    int bell;               /* the peer worker's doorbell; owner: this struct */
    dmce_spin_adapt_t spin; /* how long ring waits spin now (ring.h) */
    int kicked;             /* the last request rang a parked worker's doorbell */
    int spin_end_free;      /* room in the request ring when the last spin ran out */
    uint64_t turn_yield_ns; /* in a CPU turn: when this client last let others run */
} dmce_mconn_t;

/*
 * Prepare k for the daemon at path (does not connect). timeout_ms 0 =
 * 10 s. -ENAMETOOLONG for a path that does not fit.
 */
int dmce_mconn_init(dmce_mconn_t *k, const char *path, unsigned timeout_ms, unsigned flags);

/*
 * Connect if not connected: socket, peer check (the peer must run as our
 * user or root: it hands us descriptors), then ring_open unless
 * DMCE_MCONN_NO_RING (a refusal leaves the socket in use). Sets k->pid.
 * Returns 1 when a new connection was made, 0 when one existed, or an
 * error (-ECONNREFUSED, also when the socket file does not exist; -EPERM,
 * ...). Blocks.
 */
int dmce_mconn_ensure(dmce_mconn_t *k);

/*
 * One request: payload (p1,l1)+(p2,l2) out, the response payload into resp
 * (capacity resp_cap; its length in *resp_len). If fd_out is not NULL, one
 * descriptor passed with the response lands there (else -1); others are
 * closed. Connects first if needed. Returns the response's status, or a
 * transport error (the connection is then closed). Blocks up to
 * timeout_ms.
 */
int dmce_mconn_rpc(dmce_mconn_t *k, uint16_t op, const void *p1, size_t l1, const void *p2,
                   size_t l2, void *resp, size_t resp_cap, size_t *resp_len, int *fd_out);

/*
 * The same with up to max (at most 4) descriptors passed with the
 * response, in fds[0..*nfds). -ENOTSUP on a ring connection when max > 1
 * (use DMCE_MCONN_NO_RING).
 */
int dmce_mconn_rpc_fds(dmce_mconn_t *k, uint16_t op, const void *p, size_t l, void *resp,
                       size_t resp_cap, size_t *resp_len, int *fds, unsigned max, unsigned *nfds);

/* Close the connection (k can be connected again). */
void dmce_mconn_close(dmce_mconn_t *k);

/* 1 when the connection is on shared-memory rings. */
static inline int dmce_mconn_on_ring(const dmce_mconn_t *k)
{
    return k->ring;
}

#endif /* DMCE_RUNTIME_MSMP_CONN_H */
