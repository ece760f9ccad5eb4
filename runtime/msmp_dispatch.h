/*
 * msmp_dispatch.h - the MSMP operations of dmce-dispatcher (docs/dispatcher.md,
 * docs/msmp.md). Same conventions as msmp.h: fixed-width little-endian
 * fields, decoders that check exact sizes, zero reserved fields and every
 * length against the buffer, encoders that write exactly the *_SIZE bytes.
 *
 *   op  name          from          payload -> response
 *   32  register      memory daemon  who it is, where, how big -> its block ID
 *                                    range, heartbeat interval, cluster flags
 *   33  heartbeat     memory daemon  member pulse (usage) -> monitor pulse
 *                                    (directory epoch, live daemons)
 *   34  directory     anyone         -> daemons and blocks (the Server ID
 *                                    Lookup Table and the directory)
 *   35  pick          client         size, NUMA node -> the daemon to use
 *   36  session       client         -> a cluster-wide session ID
 *   37  block_event   memory daemon  a block created, mirrored, lost its mirror
 *   38  mirror_peer   memory daemon  -> where to mirror a new block
 */
#ifndef DMCE_RUNTIME_MSMP_DISPATCH_H
#define DMCE_RUNTIME_MSMP_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "msmp.h"

enum dmce_msmp_disp_op {
    DMCE_MSMP_OP_REGISTER = 32,
    DMCE_MSMP_OP_HEARTBEAT = 33,
    DMCE_MSMP_OP_DIRECTORY = 34,
    DMCE_MSMP_OP_PICK = 35,
    DMCE_MSMP_OP_SESSION = 36,
    DMCE_MSMP_OP_BLOCK_EVENT = 37,
    DMCE_MSMP_OP_MIRROR_PEER = 38,
    DMCE_MSMP_OP_DISP_STATS = 39,
};

/*
 * disp_stats response: u32 count, u32 reserved, count u64 values (a newer
 * dispatcher may send more; a reader takes the ones it knows), in this order.
 */
enum dmce_disp_stat {
    DMCE_DSTAT_UPTIME_MS,
    DMCE_DSTAT_EPOCH,
    DMCE_DSTAT_FLAGS,             /* DMCE_DISP_* */
    DMCE_DSTAT_WARN_ONE_COPY,     /* 1: mirroring wanted but one daemon alive */
    DMCE_DSTAT_DAEMONS_ALIVE,
    DMCE_DSTAT_DAEMONS_DEAD,
    DMCE_DSTAT_REGISTRATIONS,
    DMCE_DSTAT_DEATHS,            /* daemons found dead */
    DMCE_DSTAT_BLOCKS,
    DMCE_DSTAT_BLOCKS_MIRRORED,
    DMCE_DSTAT_BLOCKS_SINGLE,     /* one copy: waiting for a mirror, or none possible */
    DMCE_DSTAT_BLOCKS_REMIRRORING,
    DMCE_DSTAT_BLOCKS_LOST,       /* primary died with no mirror */
    DMCE_DSTAT_PROMOTIONS,
    DMCE_DSTAT_REMIRRORS_STARTED,
    DMCE_DSTAT_REMIRRORS_DONE,
    DMCE_DSTAT_REMIRROR_BYTES,    /* copied into new mirrors, as the primaries report */
    DMCE_DSTAT_LAST_FAILOVER_MS,  /* death seen -> every block promoted, last time */
    DMCE_DSTAT_PICKS,
    DMCE_DSTAT_SESSIONS,
    DMCE_DSTAT_FORWARDED,         /* transparent mode: requests forwarded */
    DMCE_DSTAT_MOVES,             /* blocks moved live to another daemon (dmcectl migrate/drain) */
    DMCE_DSTAT_MOVES_FAILED,
    DMCE_DSTAT_LAST_MOVE_US,      /* the last move, queued job started -> source released */
    DMCE_DSTAT_REMIRRORS_ADOPTED, /* re-mirrors that took over a kept copy: nothing copied */
    DMCE_DSTAT_REMIRROR_BYTES_ADOPTED, /* bytes in use of those blocks */
    DMCE_DSTAT_COUNT_
};

/* Cluster flags (register and heartbeat responses, directory). */
#define DMCE_DISP_MIRRORING 0x1u  /* new blocks get a mirror; clients write through MSMP */
#define DMCE_DISP_MIRROR_OFF 0x2u /* mirroring is off by config: clients may write locally */

/* ---- register (memory daemon -> dispatcher) ----------------------------- */

typedef struct dmce_disp_register {
    uint32_t daemon_id;
    uint32_t pid;
    int32_t numa_node;
    uint32_t flags;        /* 0 */
    uint64_t capacity;     /* data bytes it may hold */
    uint64_t block_size;
    uint32_t max_blocks;
    uint32_t block_first;  /* its current range (a re-registration), 0 = none yet */
    uint32_t layout;       /* dmce_layout_t: the same in the whole cluster */
    char path[DMCE_MSMP_PATH_MAX + 1]; /* its MSMP socket */
} dmce_disp_register_t;
#define DMCE_DISP_REGISTER_HDR 48u

typedef struct dmce_disp_register_resp {
    uint32_t block_first;  /* its block ID range: [first, first + count) */
    uint32_t block_count;
    uint32_t heartbeat_ms;
    uint32_t flags;        /* DMCE_DISP_* */
    uint64_t epoch;        /* directory epoch */
} dmce_disp_register_resp_t;
#define DMCE_DISP_REGISTER_RESP_SIZE 24u

int dmce_disp_register_encode(const dmce_disp_register_t *m, uint8_t *out, size_t cap);
int dmce_disp_register_decode(const uint8_t *in, size_t len, dmce_disp_register_t *m);
void dmce_disp_register_resp_encode(const dmce_disp_register_resp_t *m, uint8_t *out);
int dmce_disp_register_resp_decode(const uint8_t *in, size_t len, dmce_disp_register_resp_t *m);

/* ---- heartbeat: member pulse, monitor pulse ------------------------------ */

typedef struct dmce_disp_pulse {
    uint32_t daemon_id;
    uint32_t seq;
    uint64_t used;  /* user bytes in live allocations */
    uint64_t free;  /* free data bytes, created blocks and uncreated room */
    uint64_t ops;   /* requests served, ever */
} dmce_disp_pulse_t;
#define DMCE_DISP_PULSE_SIZE 32u

typedef struct dmce_disp_monitor {
    uint64_t epoch;    /* directory epoch: changed means fetch the directory */
    uint64_t live;     /* bit i: daemon i+1 is alive (daemons 1..64) */
    uint32_t flags;    /* DMCE_DISP_* */
    uint32_t reserved;
} dmce_disp_monitor_t;
#define DMCE_DISP_MONITOR_SIZE 24u

void dmce_disp_pulse_encode(const dmce_disp_pulse_t *m, uint8_t *out);
int dmce_disp_pulse_decode(const uint8_t *in, size_t len, dmce_disp_pulse_t *m);
void dmce_disp_monitor_encode(const dmce_disp_monitor_t *m, uint8_t *out);
int dmce_disp_monitor_decode(const uint8_t *in, size_t len, dmce_disp_monitor_t *m);

/* ---- directory -------------------------------------------------------------- */

/* Daemon states. */
enum dmce_disp_state {
    DMCE_DISP_ALIVE = 1,
    DMCE_DISP_DEAD = 2,  /* missed its heartbeats, or its process or connection is gone */
};

/* Block states. */
enum dmce_disp_block_state {
    DMCE_DISP_SINGLE = 0,      /* one copy */
    DMCE_DISP_MIRRORED = 1,    /* two copies */
    DMCE_DISP_REMIRRORING = 2, /* a new mirror is being filled */
};

#define DMCE_DISP_WANT_BLOCKS 0x1u /* directory request flag: also the blocks */
#define DMCE_DISP_DIR_HDR 24u
#define DMCE_DISP_DAEMON_SIZE 160u
#define DMCE_DISP_BLOCK_SIZE 16u
#define DMCE_DISP_DAEMON_PATH 104u /* path bytes in a daemon entry (sun_path is 108) */

typedef struct dmce_disp_daemon {
    uint32_t id;
    uint32_t state;     /* enum dmce_disp_state */
    int32_t numa_node;
    uint32_t pid;
    uint64_t capacity, used, free, ops;
    char path[DMCE_DISP_DAEMON_PATH + 1];
} dmce_disp_daemon_t;

typedef struct dmce_disp_block {
    uint32_t block;
    uint32_t primary;   /* daemon ID */
    uint32_t mirror;    /* daemon ID, 0 = none */
    uint32_t state;     /* enum dmce_disp_block_state */
} dmce_disp_block_t;

typedef struct dmce_disp_dir_hdr {
    uint64_t epoch;
    uint32_t ndaemons;
    uint32_t nblocks;
    uint32_t flags;     /* DMCE_DISP_* */
    uint32_t reserved;
} dmce_disp_dir_hdr_t;

/* Request: u32 flags (DMCE_DISP_WANT_BLOCKS), u32 reserved. */
#define DMCE_DISP_DIR_REQ_SIZE 8u

/* Bytes of a directory response with n daemons and k blocks. */
size_t dmce_disp_dir_size(uint32_t ndaemons, uint32_t nblocks);
void dmce_disp_dir_hdr_encode(const dmce_disp_dir_hdr_t *m, uint8_t *out);
int dmce_disp_daemon_encode(const dmce_disp_daemon_t *m, uint8_t *out);
void dmce_disp_block_encode(const dmce_disp_block_t *m, uint8_t *out);
/* Decode the header and check the whole length; then entries one by one. */
int dmce_disp_dir_hdr_decode(const uint8_t *in, size_t len, dmce_disp_dir_hdr_t *m);
int dmce_disp_daemon_decode(const uint8_t *in, size_t len, uint32_t i, dmce_disp_daemon_t *m);
int dmce_disp_block_decode(const uint8_t *in, size_t len, uint32_t i, dmce_disp_block_t *m);

/* ---- pick, session, block events, mirror peer -------------------------- */

typedef struct dmce_disp_pick {
    uint64_t size;
    int32_t numa_node;  /* the client's node, -1 = unknown */
    uint32_t exclude;   /* a daemon ID that just said it is full (0 = none) */
} dmce_disp_pick_t;
#define DMCE_DISP_PICK_SIZE 16u
/* Response (pick, session): u32 value (daemon ID / session ID), u32 reserved. */
#define DMCE_DISP_U32_RESP_SIZE 8u

void dmce_disp_pick_encode(const dmce_disp_pick_t *m, uint8_t *out);
int dmce_disp_pick_decode(const uint8_t *in, size_t len, dmce_disp_pick_t *m);
void dmce_disp_u32_encode(uint32_t v, uint8_t *out);
int dmce_disp_u32_decode(const uint8_t *in, size_t len, uint32_t *v);

enum dmce_disp_event {
    DMCE_DISP_EV_CREATED = 1,     /* a new primary block */
    DMCE_DISP_EV_MIRRORED = 2,    /* its mirror on `peer` is a full copy */
    DMCE_DISP_EV_MIRROR_LOST = 3, /* it lost its mirror (dropped, or the copy failed) */
    DMCE_DISP_EV_GONE = 4,        /* the daemon no longer holds it */
    DMCE_DISP_EV_MIRROR_ADOPTED = 5, /* its mirror on `peer` is a gone holder's copy, taken over */
};

typedef struct dmce_disp_event_msg {
    uint32_t daemon_id;
    uint32_t block;
    uint32_t event;   /* enum dmce_disp_event */
    uint32_t peer;    /* MIRRORED: the mirror's daemon */
    uint64_t bytes;   /* MIRRORED: bytes copied into it (0 for a new block's mirror) */
} dmce_disp_event_msg_t;
#define DMCE_DISP_EVENT_SIZE 24u

void dmce_disp_event_encode(const dmce_disp_event_msg_t *m, uint8_t *out);
int dmce_disp_event_decode(const uint8_t *in, size_t len, dmce_disp_event_msg_t *m);

/* mirror_peer request: u32 daemon, u32 block. Response: u32 peer ID, u32 path length, path. */
#define DMCE_DISP_PEER_REQ_SIZE 8u
#define DMCE_DISP_PEER_RESP_HDR 8u
void dmce_disp_peer_req_encode(uint32_t daemon, uint32_t block, uint8_t *out);
int dmce_disp_peer_req_decode(const uint8_t *in, size_t len, uint32_t *daemon, uint32_t *block);
/* Returns the encoded length, or -EINVAL. */
int dmce_disp_peer_resp_encode(uint32_t peer, const char *path, uint8_t *out, size_t cap);
int dmce_disp_peer_resp_decode(const uint8_t *in, size_t len, uint32_t *peer,
                               char path[DMCE_MSMP_PATH_MAX + 1]);

#endif /* DMCE_RUNTIME_MSMP_DISPATCH_H */
