/*
 * memd_server.h - the memory daemon (Memory Server, seed 002 FIG. 6).
 *
 * A dmce_memd_t owns a set of POSIX shared-memory blocks, serves MSMP on a
 * Unix socket and keeps the sessions of its clients. daemons/memd.c is a
 * thin main() around it: parse config, dmce_memd_start, wait for SIGTERM
 * while calling dmce_memd_tick, dmce_memd_stop.
 *
 * Config (one table, memd_config_defs[]): see docs/config.md.
 */
#ifndef DMCE_RUNTIME_MEMD_SERVER_H
#define DMCE_RUNTIME_MEMD_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct dmce_memd_config {
    int64_t id;
    char runtime_dir[DMCE_CFG_STRMAX];
    char socket[DMCE_CFG_STRMAX];
    char cluster[DMCE_CFG_STRMAX];
    uint64_t block_size;
    int64_t blocks_initial;
    int64_t max_blocks;
    int64_t block_first;
    uint64_t granule;
    uint64_t page_size;
    int64_t numa_node;
    char topology[DMCE_CFG_STRMAX];
    int layout;
    uint64_t max_payload;
    int64_t grace_ms;
    int64_t workers;
    int64_t max_clients;
    uint64_t max_session_bytes;
    int64_t frame_timeout_ms;
    int prefault;
    int64_t spare_blocks;
    int64_t mirror_keep_ms;
    int rings;
    uint64_t ring_capacity;
    int64_t spin_us;
    int64_t turn_us;
    char shm_dir[DMCE_CFG_STRMAX];
    char dispatcher[DMCE_CFG_STRMAX];
    char backup_dir[DMCE_CFG_STRMAX];
    int64_t backup_interval_s;
    int recover;
    int64_t recover_grace_ms;
    int log_level;
} dmce_memd_config_t;

extern const dmce_config_def_t dmce_memd_config_defs[];
extern const size_t dmce_memd_config_ndefs;

typedef struct dmce_memd dmce_memd_t;

/*
 * Validate cfg, take the daemon's lock in the runtime dir (so two daemons
 * never share an ID), remove shm objects a dead predecessor with the same
 * cluster and ID left behind, create the initial blocks, bind to the NUMA
 * node, listen, start the worker threads. 0 or -errno with a log line.
 */
int dmce_memd_start(const dmce_memd_config_t *cfg, dmce_memd_t **out);

/* Periodic work (grace-period expiry). Call every ~100 ms. */
void dmce_memd_tick(dmce_memd_t *m);

/* Stop workers, close clients, unlink every shm object and the socket. */
void dmce_memd_stop(dmce_memd_t *m);

/* The shm object name prefix of this daemon ("/dmce.UID.CLUSTER.mID."). */
const char *dmce_memd_shm_prefix(const dmce_memd_t *m);

#endif /* DMCE_RUNTIME_MEMD_SERVER_H */
