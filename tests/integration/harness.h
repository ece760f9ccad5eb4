/*
 * harness.h - integration-test harness: real dmce-memd processes in a
 * private temporary runtime directory.
 *
 * harness_init() makes the directory and a unique cluster name and
 * registers harness_cleanup() with atexit(), so daemons are killed and
 * their shm objects unlinked even when a test fails half way. Every wait
 * is for a condition, with a bound; nothing sleeps and hopes.
 */
#ifndef DMCE_TEST_HARNESS_H
#define DMCE_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmce/dmce.h>

#include "transport_ring.h"

#define H_MAX_DAEMONS 8

typedef struct harness {
    char dir[256];
    char cluster[64];
    pid_t pid[H_MAX_DAEMONS + 1]; /* by daemon id, 0 = not running */
    int status[H_MAX_DAEMONS + 1]; /* wait status of one that exited while starting (-ECHILD) */
} harness_t;

extern harness_t H;

/* Make the runtime dir and cluster name. Returns 0 or -errno. */
int harness_init(void);

/*
 * Start dmce-memd with --id id and extra NULL-terminated flags
 * (e.g. "--block-size=1M", NULL). Waits (bounded, 10 s) until its socket
 * answers. Returns 0 or a negative error (the daemon exited, timeout).
 */
int harness_start(int id, ...) __attribute__((sentinel));

/*
 * Start dmce-dispatcher (kept in slot 0 of pid[]) in the runtime dir with
 * extra NULL-terminated flags after the ignored first argument:
 * harness_start_dispatcher(0, "--policy=round-robin", NULL). Start it
 * before the daemons: they register when its socket exists. Waits until
 * its socket answers. Stop or kill it as id 0.
 */
int harness_start_dispatcher(int unused, ...) __attribute__((sentinel));
const char *harness_disp_sock(void);

/* Start, but expect failure: returns the exit status (>= 0) or -ETIMEDOUT. */
int harness_start_expect_exit(int id, ...) __attribute__((sentinel));

/* SIGTERM and wait (bounded); returns the exit status, or -ETIMEDOUT. */
int harness_stop(int id);

/* SIGKILL and reap. */
void harness_kill(int id);

/* Socket path of daemon id. */
const char *harness_sock(int id);

/* Number of shm objects in /dev/shm belonging to this test's cluster. */
int harness_shm_count(void);

/* Kill every daemon, unlink the cluster's shm objects, remove the dir. */
void harness_cleanup(void);

/*
 * Connect a client to daemons ids[0..n-1] (all running ones if n == 0),
 * with the connect flags of this run: $DMCE_TEST_CONNECT_FLAGS (ctest runs
 * each integration suite mapped, and again with DMCE_CONNECT_NO_MAP so that
 * every operation is an MSMP message).
 */
int harness_client(dmce_client_t **out, const int *ids, size_t n);
unsigned harness_connect_flags(void);
/* Same, with the caller's options (its sockets fields are ignored). */
int harness_client_opts(dmce_client_t **out, const int *ids, size_t n,
                        const dmce_connect_opts_t *opts);
/*
 * Stats of the daemon at sock over a fresh socket-only connection (no map,
 * no rings, no dispatcher); st may be NULL (only whether it answers). 0 or
 * an error.
 */
int harness_sock_stats(const char *sock, dmce_stats_t *st);
/* Connect through the runtime directory (the dispatcher's, if one runs), with this run's flags | extra. */
int harness_client_dir(dmce_client_t **out, unsigned extra_flags);
/* 1 when this run's clients map blocks (local reads and writes). */
int harness_mapped(void);

/*
 * fork() for a test's helper processes (and the daemons it starts): the
 * child is killed when the test process dies (PR_SET_PDEATHSIG), so that
 * a test killed by its timeout leaves no process behind. Same returns as
 * fork().
 */
pid_t harness_fork(void);

/*
 * The dispatcher's view, for tests with a dispatcher: a client of the
 * runtime directory (direct mode), made on first use and closed by
 * harness_cleanup; NULL when none can be made.
 */
dmce_client_t *harness_observer(void);
/* harness_wait conditions on dmce_cluster_stats through harness_observer(): */
int harness_cluster_alive(void *n);  /* (void *)(uintptr_t)N: exactly N daemons alive */
int harness_cluster_mirrored(void *unused); /* some blocks, each with two copies, none being made */

/* Poll cond(arg) every 5 ms until true or timeout_ms; returns 1 if it held. */
int harness_wait(int (*cond)(void *), void *arg, unsigned timeout_ms);

/* ---- raw MSMP, for malformed-frame tests ---- */

/* Connected blocking socket with a 5 s receive timeout, or -errno. */
int raw_connect(int id);

/* Send a well-formed request (header + payload). */
int raw_send(int fd, uint16_t op, uint64_t req_id, const void *payload, uint32_t len);

/* Send arbitrary bytes. */
int raw_send_bytes(int fd, const void *bytes, size_t len);

/*
 * Read one response: status, op and req_id from the header, payload into
 * buf (up to cap). Returns payload length >= 0, or -ECONNRESET when the
 * daemon closed the connection, or another negative error.
 */
int raw_recv(int fd, int32_t *status, uint16_t *op, uint64_t *req_id, void *buf, size_t cap);

/* 1 if the daemon has closed fd (read returns 0 within 5 s). */
int raw_closed(int fd);

/* setup over a raw socket with a random token; returns status. */
int raw_setup(int fd, uint64_t amount);

/* ---- raw ring transport, for fault tests ---- */

/*
 * ring_open on a raw socket: map the segment into *rt and keep the
 * doorbell in *bell. capacity 0 = the daemon's default. 0 or an error
 * (the daemon's status, or -EPROTO).
 */
int raw_ring_open(int fd, uint32_t capacity, dmce_rt_t *rt, int *bell);
/* Put bytes into the request ring (any bytes: tests send garbage too) and ring the bell. */
int raw_ring_send(dmce_rt_t *rt, int bell, const void *bytes, size_t len);
/* A well-formed request through the ring. */
int raw_ring_request(dmce_rt_t *rt, int bell, uint16_t op, uint64_t req_id, const void *payload,
                     uint32_t len);
/* One response from the ring (5 s bound): payload length, or an error. */
int raw_ring_recv(dmce_rt_t *rt, int bell, int32_t *status, void *buf, size_t cap);

#endif
