/*
 * dispatcher.h - dmce-dispatcher's engine: the Memory Dispatcher of seed 002
 * (FIG. 3, 4, 20) with seed 003's heartbeats and reduplexing. Design and
 * promises: docs/dispatcher.md. daemons/dispatcher.c is a thin main() around
 * it.
 *
 * Threads:
 *   - the control loop: one epoll over the listening socket, every
 *     connection and the daemons' pidfds. Every operation is answered from
 *     the tables in memory, never by waiting on a daemon, so a stalled
 *     daemon cannot delay anyone's heartbeat;
 *   - the orchestrator, every heartbeat_ms / 2: missed member pulses, deaths,
 *     failover (promote), re-mirroring, progress, rebuilding a daemon's
 *     blocks after it registers. Its requests to daemons carry deadlines
 *     (request_timeout_ms); a daemon that answers garbage or stalls is marked
 *     dead, not waited on;
 *   - one forwarding thread per client in transparent mode (FIG. 3).
 */
#ifndef DMCE_RUNTIME_DISPATCHER_H
#define DMCE_RUNTIME_DISPATCHER_H

#include <stdint.h>

#include "config.h"

enum dmce_disp_policy {
    DMCE_POLICY_ROUND_ROBIN = 0,
    DMCE_POLICY_LEAST_USED = 1,
    DMCE_POLICY_NUMA_LOCAL = 2,
};

enum dmce_disp_mirroring {
    DMCE_MIRRORING_AUTO = 0, /* on when two or more daemons are alive */
    DMCE_MIRRORING_ON = 1,   /* on; a lone daemon is a warning in stats and logs */
    DMCE_MIRRORING_OFF = 2,
};

typedef struct dmce_disp_config {
    char runtime_dir[DMCE_CFG_STRMAX];
    char socket[DMCE_CFG_STRMAX];
    int layout;
    int64_t heartbeat_ms;
    int64_t miss_limit;
    int policy;
    int mirroring;
    int64_t request_timeout_ms;
    int64_t remirror_parallel;
    int64_t spawn;
    char memd[DMCE_CFG_STRMAX];
    char memd_args[DMCE_CFG_STRMAX];
    int respawn;
    int64_t max_clients;
    int log_level;
} dmce_disp_config_t;

extern const dmce_config_def_t dmce_disp_config_defs[];
extern const size_t dmce_disp_config_ndefs;

typedef struct dmce_disp dmce_disp_t;

/*
 * Validate cfg, listen on the socket (one dispatcher per runtime
 * directory: a lock file), start the control loop and the orchestrator,
 * start `spawn` memory daemons. 0 or -errno with a log line.
 */
int dmce_disp_start(const dmce_disp_config_t *cfg, dmce_disp_t **out);

/* A child exited (SIGCHLD): reap it, restart spawned daemons if respawn. */
void dmce_disp_reap(dmce_disp_t *d);

/* Stop everything (spawned daemons get SIGTERM and are waited for, bounded). */
void dmce_disp_stop(dmce_disp_t *d);

#endif /* DMCE_RUNTIME_DISPATCHER_H */
