/*
 * msmp.h - the Memory Sharing Messaging Protocol codec (seed 002,
 * FIG. 13-18). docs/msmp.md is the wire reference; this file is its code.
 *
 * Every frame is a 24-byte header followed by `len` payload bytes. All
 * integers are little-endian and fixed-width, encoded byte by byte, so a
 * 32-bit and a 64-bit peer produce the same bytes:
 *
 *   off size field
 *     0    4 magic      0x504d534d ("MSMP" in memory)
 *     4    1 version    DMCE_MSMP_VERSION
 *     5    1 flags      bit 0: response
 *     6    2 op         DMCE_MSMP_OP_*
 *     8    8 request ID chosen by the client, echoed in the response
 *    16    4 len        payload bytes, <= the receiver's max payload
 *    20    4 status     0 in requests; 0 or a negative error in responses
 *
 * Requests are client-initiated; the server answers each request with one
 * response carrying the same op and request ID, in order. A client may
 * pipeline several requests. An error response has no payload.
 *
 * The codec only converts bytes and checks sizes: it never allocates and
 * never trusts a length it has not checked against the buffer.
 */
#ifndef DMCE_RUNTIME_MSMP_H
#define DMCE_RUNTIME_MSMP_H

#include <stddef.h>
#include <stdint.h>

#define DMCE_MSMP_MAGIC 0x504d534du
#define DMCE_MSMP_VERSION 1u
#define DMCE_MSMP_HDR_SIZE 24u
#define DMCE_MSMP_FLAG_RESPONSE 0x01u
/* Hard ceiling on any payload, whatever the configuration says. */
#define DMCE_MSMP_PAYLOAD_LIMIT (16u << 20)
/* Default max payload; a daemon announces its own in the setup reply. */
#define DMCE_MSMP_PAYLOAD_DEFAULT (1u << 20)
/* Fixed part of a write request before the data bytes. */
#define DMCE_MSMP_WRITE_HDR 16u

enum dmce_msmp_op {
    DMCE_MSMP_OP_SETUP = 1,
    DMCE_MSMP_OP_MALLOC = 2,
    DMCE_MSMP_OP_READ = 3,
    DMCE_MSMP_OP_WRITE = 4,
    DMCE_MSMP_OP_FREE = 5,
    DMCE_MSMP_OP_DISCONNECT = 6,
    DMCE_MSMP_OP_STATS = 7,
    DMCE_MSMP_OP_MAP = 8,
    DMCE_MSMP_OP_RING_OPEN = 9,
    /* Mirroring (docs/dispatcher.md). */
    DMCE_MSMP_OP_PERSIST = 10,       /* client: copy a range to the mirror */
    DMCE_MSMP_OP_MIRROR_CREATE = 11, /* primary daemon -> peer: make a copy object */
    DMCE_MSMP_OP_MIRROR_START = 12,  /* dispatcher -> primary: mirror a block on a peer */
    DMCE_MSMP_OP_PROMOTE = 13,       /* dispatcher -> mirror holder: become the primary */
    DMCE_MSMP_OP_DROP = 14,          /* dispatcher -> holder: forget a copy */
    DMCE_MSMP_OP_BLOCKS = 15,        /* anyone: the blocks this daemon holds */
    /* 16..44: store (msmp_store.h), admin (msmp_admin.h), dispatcher (msmp_dispatch.h) */
    DMCE_MSMP_OP_MIRROR_ADOPT = 45, /* primary daemon -> peer: take over a kept copy */
    DMCE_MSMP_OP_MAX_ = 15,
};

const char *dmce_msmp_op_name(unsigned op);

typedef struct dmce_msmp_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t flags;
    uint16_t op;
    uint64_t req_id;
    uint32_t len;
    int32_t status;
} dmce_msmp_hdr_t;

/* Write the 24 header bytes. */
void dmce_msmp_hdr_encode(const dmce_msmp_hdr_t *h, uint8_t out[DMCE_MSMP_HDR_SIZE]);

/*
 * Decode and check a header: DMCE_EBADMAGIC, DMCE_EVERSION, -EMSGSIZE when
 * len > max_payload, -EPROTO for unknown flag bits. On an error *h is still
 * filled in as far as it could be decoded (for the request ID of the error
 * reply). An unknown op is not an error here: the server answers it with
 * -EOPNOTSUPP and goes on.
 */
int dmce_msmp_hdr_decode(const uint8_t in[DMCE_MSMP_HDR_SIZE], uint32_t max_payload,
                         dmce_msmp_hdr_t *h);

/* ---- payloads ---------------------------------------------------------------- */

#define DMCE_MSMP_TOKEN_LEN 16

/*
 * setup request: 40 bytes. session_id 0: the daemon names the session; else
 * the cluster-wide ID a dispatcher assigned (DMCE_SESSION_GLOBAL set), the
 * same on every daemon, so that allocations in a promoted mirror still name
 * their client.
 */
typedef struct dmce_msmp_setup_req {
    uint64_t amount;
    uint32_t flags; /* DMCE_SETUP_PARTIAL | DMCE_SETUP_REATTACH */
    uint32_t layout; /* the client's expected layout, or UINT32_MAX for "any" */
    uint8_t token[DMCE_MSMP_TOKEN_LEN];
    uint32_t session_id;
    uint32_t reserved; /* 0 */
} dmce_msmp_setup_req_t;
#define DMCE_MSMP_SETUP_REQ_SIZE 40u
/* Session IDs a dispatcher assigns; a daemon's own are below. */
#define DMCE_SESSION_GLOBAL 0x80000000u

/* setup response: 40 bytes */
typedef struct dmce_msmp_setup_resp {
    uint64_t granted;     /* bytes reserved */
    uint64_t used;        /* bytes already allocated (non-zero after reattach) */
    uint32_t session_id;
    uint32_t daemon_id;
    uint32_t layout;
    uint32_t max_payload;
    uint32_t block_first, block_last;
} dmce_msmp_setup_resp_t;
#define DMCE_MSMP_SETUP_RESP_SIZE 40u

/* u64 payloads: malloc request (size), malloc response (addr), free request (addr). */
#define DMCE_MSMP_U64_SIZE 8u

/* read request: 16 bytes */
typedef struct dmce_msmp_rw_req {
    uint64_t addr;
    uint32_t len;
    uint32_t reserved; /* must be 0 */
} dmce_msmp_rw_req_t;
#define DMCE_MSMP_RW_REQ_SIZE 16u

/* write response: 8 bytes: bytes written and verified, reserved */
#define DMCE_MSMP_WRITE_RESP_SIZE 8u

/*
 * map request: 24 bytes. Checks that [addr, addr+len) lies inside one live
 * allocation (len 0: addr only) and describes the block holding it; with
 * DMCE_MSMP_MAP_WANT_FD the block's shm file descriptor rides along with
 * the response (SCM_RIGHTS on the first byte of the response frame).
 */
typedef struct dmce_msmp_map_req {
    uint64_t addr;
    uint64_t len;
    uint32_t flags;    /* DMCE_MSMP_MAP_WANT_FD */
    uint32_t reserved; /* must be 0 */
} dmce_msmp_map_req_t;
#define DMCE_MSMP_MAP_REQ_SIZE 24u
#define DMCE_MSMP_MAP_WANT_FD 0x1u

/* map response: 48 bytes */
typedef struct dmce_msmp_map_resp {
    uint32_t block;        /* block ID */
    uint32_t flags;        /* DMCE_MSMP_MAP_FD: a descriptor is attached */
    uint64_t block_size;   /* bytes of the shm object */
    uint64_t data_offset;  /* first byte after the block's metadata */
    uint32_t page_size;    /* page size the block was created with */
    uint32_t reserved;
    uint64_t alloc_cell;   /* cell of the allocation's first user byte */
    uint64_t alloc_size;   /* its exact size */
} dmce_msmp_map_resp_t;
#define DMCE_MSMP_MAP_RESP_SIZE 48u
#define DMCE_MSMP_MAP_FD 0x1u

/*
 * ring_open request: 8 bytes: u32 capacity (bytes per ring, a power of two;
 * 0 = the daemon's default), u32 flags (0). Response: 16 bytes: u32
 * capacity, u32 flags (0), u64 segment size; two descriptors ride along
 * (SCM_RIGHTS): the segment's memfd, then the worker's doorbell eventfd.
 * From the next frame on, both directions use the rings.
 */
typedef struct dmce_msmp_ring_req {
    uint32_t capacity; /* 0 = the daemon's default */
    uint32_t flags;    /* must be 0 */
} dmce_msmp_ring_req_t;
#define DMCE_MSMP_RING_REQ_SIZE 8u

typedef struct dmce_msmp_ring_resp {
    uint32_t capacity; /* bytes per ring: a power of two */
    uint32_t flags;    /* 0 */
    uint64_t seg_size; /* bytes of the segment (rings and control page) */
} dmce_msmp_ring_resp_t;
#define DMCE_MSMP_RING_RESP_SIZE 16u

/*
 * persist request: 1 to DMCE_MSMP_PERSIST_MAX ranges of 16 bytes each: u64
 * address, u64 length (each range must lie in one live allocation of the
 * daemon, as for a write). Response: none.
 */
typedef struct dmce_msmp_range {
    uint64_t addr;
    uint64_t len;
} dmce_msmp_range_t;
#define DMCE_MSMP_RANGE_SIZE 16u
#define DMCE_MSMP_PERSIST_MAX 64u

/*
 * mirror_create request: 16 bytes: u32 block, u32 primary daemon ID, u64
 * block size. Response: the same 16 bytes, with the new (zero) object's
 * descriptor (SCM_RIGHTS).
 */
typedef struct dmce_msmp_mirror_create {
    uint32_t block;
    uint32_t primary;
    uint64_t size;
} dmce_msmp_mirror_create_t;
#define DMCE_MSMP_MIRROR_CREATE_SIZE 16u

/*
 * mirror_start request: 16 bytes + path: u32 block, u32 peer daemon ID, u32
 * flags (0), u32 path length (1..255), then the peer's socket path (no
 * NUL). Response: none (the copy runs in the background; see blocks).
 */
#define DMCE_MSMP_PATH_MAX 255u
typedef struct dmce_msmp_mirror_start {
    uint32_t block;
    uint32_t peer;
    uint32_t flags;
    char path[DMCE_MSMP_PATH_MAX + 1]; /* NUL-terminated once decoded */
} dmce_msmp_mirror_start_t;
#define DMCE_MSMP_MIRROR_START_HDR 16u

/*
 * mirror_adopt request (primary daemon -> peer): 32 bytes + name: u32
 * block, u32 primary daemon ID, u64 block size, u64 the object's inode
 * number, u32 the daemon that held the copy (0: unknown), u32 name length
 * (1..255), then the name (no NUL) under which the primary has linked a
 * copy whose holder is gone (a shm name, or a path in shm_dir). The peer
 * takes that object over as its copy of the block, renaming it to its own
 * name: no byte is copied. Response: empty.
 */
#define DMCE_MSMP_NAME_MAX 255u
typedef struct dmce_msmp_mirror_adopt {
    uint32_t block;
    uint32_t primary;
    uint64_t size;
    uint64_t ino;
    uint32_t holder;
    char name[DMCE_MSMP_NAME_MAX + 1]; /* NUL-terminated once decoded */
} dmce_msmp_mirror_adopt_t;
#define DMCE_MSMP_MIRROR_ADOPT_HDR 32u

/* promote and drop requests: 8 bytes: u32 block, u32 reserved (0). */
#define DMCE_MSMP_BLOCK_REQ_SIZE 8u
/* promote response: 16 bytes: u64 allocations adopted, u64 bytes adopted. */
#define DMCE_MSMP_PROMOTE_RESP_SIZE 16u

/*
 * blocks response: u32 count, u32 reserved, then count entries of 48
 * bytes: u32 block, u32 role (0 primary, 1 mirror), u32 peer (the mirror's
 * daemon for a primary, the primary's for a mirror; 0 none), u32 mirror
 * state (0 none, 1 copying, 2 synced), u64 size, u64 used bytes, u64
 * allocations, u64 bytes copied to the mirror so far.
 */
typedef struct dmce_msmp_block_info {
    uint32_t block;
    uint32_t role;
    uint32_t peer;
    uint32_t mirror_state;
    uint64_t size;
    uint64_t used;
    uint64_t nallocs;
    uint64_t copied;
} dmce_msmp_block_info_t;
#define DMCE_MSMP_BLOCK_INFO_SIZE 48u

/* stats response: u32 count, u32 reserved, then count u64 values */
enum dmce_msmp_stat {
    DMCE_STAT_DAEMON_ID,
    DMCE_STAT_NUMA_NODE, /* int64 as u64 */
    DMCE_STAT_PID,
    DMCE_STAT_BLOCK_FIRST,
    DMCE_STAT_BLOCK_LAST,
    DMCE_STAT_BLOCKS,
    DMCE_STAT_BYTES_TOTAL,
    DMCE_STAT_BYTES_RESERVED,
    DMCE_STAT_BYTES_USED,
    DMCE_STAT_BYTES_FREE,
    DMCE_STAT_ALLOCATIONS,
    DMCE_STAT_CLIENTS,
    DMCE_STAT_SESSIONS,
    DMCE_STAT_SESSIONS_ORPHANED,
    DMCE_STAT_OPS_SETUP,
    DMCE_STAT_OPS_MALLOC,
    DMCE_STAT_OPS_READ,
    DMCE_STAT_OPS_WRITE,
    DMCE_STAT_OPS_FREE,
    DMCE_STAT_OPS_DISCONNECT,
    DMCE_STAT_OPS_STATS,
    DMCE_STAT_OPS_ERRORS,
    DMCE_STAT_BYTES_READ,
    DMCE_STAT_BYTES_WRITTEN,
    DMCE_STAT_UPTIME_MS,
    DMCE_STAT_OPS_MAP,
    DMCE_STAT_FDS_SENT,
    DMCE_STAT_PREFAULTED,          /* bytes faulted in by the prefault thread */
    DMCE_STAT_PREFAULT_PENDING,    /* bytes of new blocks still to prefault */
    DMCE_STAT_RING_CLIENTS,        /* connections using the ring transport */
    DMCE_STAT_MIRRORS,             /* primaries with a mirror */
    DMCE_STAT_MIRROR_COPIES,       /* mirror copies held for other daemons */
    DMCE_STAT_MIRROR_BYTES_COPIED, /* bytes copied to new mirrors, ever */
    DMCE_STAT_MIRROR_BROKEN,       /* mirrors dropped after a failure or a mismatch */
    DMCE_STAT_OPS_PERSIST,
    DMCE_STAT_PROMOTED,  /* mirror copies promoted to primary */
    DMCE_STAT_MOVED_IN,  /* blocks taken over from another daemon (live migration) */
    DMCE_STAT_MOVED_OUT, /* blocks handed to another daemon */
    DMCE_STAT_BACKUPS,   /* block backups written (memd_backup.c) */
    DMCE_STAT_BACKUP_BYTES,
    DMCE_STAT_BACKUP_REPASSES,
    DMCE_STAT_RESTORED,
    DMCE_STAT_STARTING,       /* 1 while client requests wait for the start to end */
    DMCE_STAT_SPARES,         /* spare block objects ready (memd_spare.c) */
    DMCE_STAT_SPARES_USED,    /* blocks and copies made from a spare, ever */
    DMCE_STAT_RING_TURNS,     /* turns given to ring clients while the CPUs were crowded */
    DMCE_STAT_TURN_WAIT_US,   /* microseconds workers waited for a turn token (turns.h) */
    DMCE_STAT_MIRRORS_KEPT,   /* primaries keeping a copy whose holder is gone (mirror_keep_ms) */
    DMCE_STAT_MIRROR_ADOPTED, /* copies taken over from a gone holder, nothing copied, ever */
    DMCE_STAT_COUNT_
};
#define DMCE_MSMP_STATS_SIZE (8u + 8u * DMCE_STAT_COUNT_)

/*
 * Encoders write exactly the *_SIZE bytes into out (which must hold them).
 * Decoders check that len is exactly right (-EBADMSG otherwise) and that
 * reserved fields are 0 (-EBADMSG).
 */
void dmce_msmp_setup_req_encode(const dmce_msmp_setup_req_t *m, uint8_t *out);
int dmce_msmp_setup_req_decode(const uint8_t *in, size_t len, dmce_msmp_setup_req_t *m);
void dmce_msmp_setup_resp_encode(const dmce_msmp_setup_resp_t *m, uint8_t *out);
int dmce_msmp_setup_resp_decode(const uint8_t *in, size_t len, dmce_msmp_setup_resp_t *m);
void dmce_msmp_u64_encode(uint64_t v, uint8_t *out);
int dmce_msmp_u64_decode(const uint8_t *in, size_t len, uint64_t *v);
void dmce_msmp_rw_req_encode(const dmce_msmp_rw_req_t *m, uint8_t *out);
/* For writes, len is the whole payload: 16 bytes + m->len data bytes. */
int dmce_msmp_read_req_decode(const uint8_t *in, size_t len, dmce_msmp_rw_req_t *m);
int dmce_msmp_write_req_decode(const uint8_t *in, size_t len, dmce_msmp_rw_req_t *m);
void dmce_msmp_map_req_encode(const dmce_msmp_map_req_t *m, uint8_t *out);
int dmce_msmp_map_req_decode(const uint8_t *in, size_t len, dmce_msmp_map_req_t *m);
void dmce_msmp_map_resp_encode(const dmce_msmp_map_resp_t *m, uint8_t *out);
int dmce_msmp_map_resp_decode(const uint8_t *in, size_t len, dmce_msmp_map_resp_t *m);
/*
 * ring_open. The request decoder checks sizes and flags only (the daemon
 * judges the capacity); the response decoder also wants a capacity that is
 * a power of two in [4 KiB, 1 GiB] and a segment larger than both rings.
 */
void dmce_msmp_ring_req_encode(const dmce_msmp_ring_req_t *m, uint8_t *out);
int dmce_msmp_ring_req_decode(const uint8_t *in, size_t len, dmce_msmp_ring_req_t *m);
void dmce_msmp_ring_resp_encode(const dmce_msmp_ring_resp_t *m, uint8_t *out);
int dmce_msmp_ring_resp_decode(const uint8_t *in, size_t len, dmce_msmp_ring_resp_t *m);
void dmce_msmp_range_encode(const dmce_msmp_range_t *m, uint8_t *out);
int dmce_msmp_range_decode(const uint8_t *in, size_t len, dmce_msmp_range_t *m);
/* A persist request: 1..max ranges into out[], their count in *n; -EBADMSG otherwise. */
int dmce_msmp_ranges_decode(const uint8_t *in, size_t len, dmce_msmp_range_t *out, unsigned max,
                            unsigned *n);
void dmce_msmp_mirror_create_encode(const dmce_msmp_mirror_create_t *m, uint8_t *out);
int dmce_msmp_mirror_create_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_create_t *m);
/* Returns the encoded length (16 + path length), or -EINVAL for a bad path. */
int dmce_msmp_mirror_start_encode(const dmce_msmp_mirror_start_t *m, uint8_t *out, size_t cap);
int dmce_msmp_mirror_start_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_start_t *m);
/* Returns the encoded length, or -EINVAL (an empty or too long name). */
int dmce_msmp_mirror_adopt_encode(const dmce_msmp_mirror_adopt_t *m, uint8_t *out, size_t cap);
int dmce_msmp_mirror_adopt_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_adopt_t *m);
void dmce_msmp_block_req_encode(uint32_t block, uint8_t *out);
int dmce_msmp_block_req_decode(const uint8_t *in, size_t len, uint32_t *block);
/*
 * drop request: as a block request, the reserved word holding flags:
 * DMCE_MSMP_DROP_KEEP (to a primary whose mirror's holder died: keep the
 * copy in step for a new holder to take over, if it can). Response: none,
 * or 8 bytes when the primary keeps the copy: u32 DMCE_MSMP_DROP_KEPT,
 * u32 reserved (0).
 */
#define DMCE_MSMP_DROP_KEEP 0x1u
#define DMCE_MSMP_DROP_KEPT 0x1u
#define DMCE_MSMP_DROP_RESP_SIZE 8u
void dmce_msmp_drop_req_encode(uint32_t block, uint32_t flags, uint8_t *out);
int dmce_msmp_drop_req_decode(const uint8_t *in, size_t len, uint32_t *block, uint32_t *flags);
void dmce_msmp_block_info_encode(const dmce_msmp_block_info_t *m, uint8_t *out);
/* One entry of a blocks response: entry i of the payload in[0, len). */
int dmce_msmp_blocks_count(const uint8_t *in, size_t len, uint32_t *count);
int dmce_msmp_block_info_decode(const uint8_t *in, size_t len, uint32_t i,
                                dmce_msmp_block_info_t *m);
/*
 * A vector of u64 values (stats of either daemon): u32 count, u32 reserved,
 * count values. Encode writes 8 + 8n bytes; decode wants at least `known`
 * values (a newer peer may send more) and the exact length.
 */
void dmce_msmp_values_encode(const uint64_t *values, uint32_t n, uint8_t *out);
int dmce_msmp_values_decode(const uint8_t *in, size_t len, uint64_t *values, uint32_t known);
/* Stats values <-> the public dmce_stats_t (dmce/client.h), one table for both. */
struct dmce_stats;
void dmce_msmp_stats_to_struct(const uint64_t *values, struct dmce_stats *s);
void dmce_msmp_stats_from_struct(const struct dmce_stats *s, uint64_t *values);
/* Stats: values[DMCE_STAT_COUNT_]. Decoder accepts more values (newer peer). */
void dmce_msmp_stats_encode(const uint64_t *values, uint8_t *out);
int dmce_msmp_stats_decode(const uint8_t *in, size_t len, uint64_t *values);

/* Little-endian helpers, shared by every encoder in the tree. */
static inline void dmce_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void dmce_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void dmce_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t dmce_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t dmce_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static inline uint64_t dmce_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#endif /* DMCE_RUNTIME_MSMP_H */
