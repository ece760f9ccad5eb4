/*
 * msmp_store.h - the session store's MSMP operations (ops 16..31 are the
 * store's; 16..24 are defined). docs/msmp.md is the wire reference.
 *
 * Out-of-process clients (include/dmce/store.h) send these to the memory
 * daemon that holds the store's allocation; the daemon runs them on its
 * own table handle (runtime/memd_store.c). Same conventions as msmp.h:
 * every integer little-endian and fixed-width, encoded byte by byte;
 * decoders check the exact payload size for the op before reading a byte,
 * reject non-zero reserved fields and unknown flag bits, and check every
 * length field against the buffer. A decoded key or value points into
 * the input buffer; nothing here allocates. What a key or a value may be
 * (empty, too long) is the table's business, not the codec's: the codec
 * only guarantees that the bytes are there.
 *
 *   op name          request                                  response
 *   16 store_format  40: addr, params                          48: info
 *   17 store_open    8: addr                                   48: info
 *   18 store_get     16 + klen: addr, klen, cap, key           24 [+ vlen]: version, expire,
 *                                                                vlen, flags, [value]
 *   19 store_set     40 + klen + vlen: addr, ttl, cas, flags,  8: version
 *                    klen, vlen, reserved, key, value
 *   20 store_del     24 + klen: addr, cas, klen, reserved, key  none
 *   21 store_touch   24 + klen: addr, ttl, klen, reserved, key  none
 *   22 store_stats   8: addr                                   8 + 8n: count, reserved, values
 *   23 store_sweep   8: addr                                   8: entries removed
 *   24 store_verify  8: addr                                   none
 */
#ifndef DMCE_RUNTIME_MSMP_STORE_H
#define DMCE_RUNTIME_MSMP_STORE_H

#include <stddef.h>
#include <stdint.h>

enum dmce_msmp_store_op {
    DMCE_MSMP_OP_STORE_FIRST_ = 16,
    DMCE_MSMP_OP_STORE_FORMAT = 16,
    DMCE_MSMP_OP_STORE_OPEN = 17,
    DMCE_MSMP_OP_STORE_GET = 18,
    DMCE_MSMP_OP_STORE_SET = 19,
    DMCE_MSMP_OP_STORE_DEL = 20,
    DMCE_MSMP_OP_STORE_TOUCH = 21,
    DMCE_MSMP_OP_STORE_STATS = 22,
    DMCE_MSMP_OP_STORE_SWEEP = 23,
    DMCE_MSMP_OP_STORE_VERIFY = 24,
    DMCE_MSMP_OP_STORE_MAX_ = 24,
    DMCE_MSMP_OP_STORE_LAST_RESERVED_ = 31,
};

/* Op names for logs: dmce_msmp_op_name() (msmp.h) covers these too. */

/* Set flags (the same bits as DMCE_STORE_NX / DMCE_STORE_XX). */
#define DMCE_MSMP_STORE_SET_NX 0x1u
#define DMCE_MSMP_STORE_SET_XX 0x2u
/* Table flags (format): DMCE_STORE_EVICT. */
#define DMCE_MSMP_STORE_EVICT 0x1u
/* get response flags: the value follows. */
#define DMCE_MSMP_STORE_GET_VALUE 0x1u

/* store_format request: 40 bytes. 0 in a parameter = the default. */
typedef struct dmce_msmp_store_format_req {
    uint64_t addr; /* first byte of a fresh (zeroed) allocation */
    uint32_t max_key;
    uint32_t max_value;
    uint32_t max_handles; /* reader slots */
    uint32_t stripes;
    uint32_t buckets; /* per stripe */
    uint32_t flags;   /* DMCE_MSMP_STORE_EVICT */
    uint64_t default_ttl_ms;
} dmce_msmp_store_format_req_t;
#define DMCE_MSMP_STORE_FORMAT_REQ_SIZE 40u

/* store_format and store_open response: 48 bytes. */
typedef struct dmce_msmp_store_info {
    uint64_t size;     /* bytes of the table (= of the allocation) */
    uint64_t table_id; /* random per format */
    uint32_t max_key;
    uint32_t max_value;
    uint32_t max_handles;
    uint32_t stripes;
    uint32_t flags;
    uint32_t reserved; /* 0 */
    uint64_t default_ttl_ms;
} dmce_msmp_store_info_t;
#define DMCE_MSMP_STORE_INFO_SIZE 48u

/* Ops whose request is the address alone (open, stats, sweep, verify): 8 bytes. */
#define DMCE_MSMP_STORE_ADDR_SIZE 8u

/* store_get request: 16 bytes + key. */
typedef struct dmce_msmp_store_get_req {
    uint64_t addr;
    uint32_t klen;
    uint32_t cap;       /* send the value only if it is at most this long */
    const uint8_t *key; /* decoded: points into the input */
} dmce_msmp_store_get_req_t;
#define DMCE_MSMP_STORE_GET_REQ_HDR 16u

/* store_get response: 24 bytes, then vlen value bytes when flags has GET_VALUE. */
typedef struct dmce_msmp_store_get_resp {
    uint64_t version;
    uint64_t expire_ms; /* wall clock ms, 0 = never */
    uint32_t vlen;
    uint32_t flags;       /* DMCE_MSMP_STORE_GET_VALUE */
    const uint8_t *value; /* decoded: points into the input (NULL without the flag) */
} dmce_msmp_store_get_resp_t;
#define DMCE_MSMP_STORE_GET_RESP_HDR 24u

/* store_set request: 40 bytes + key + value. */
typedef struct dmce_msmp_store_set_req {
    uint64_t addr;
    uint64_t ttl_ms;      /* 0 = the store's default, UINT64_MAX = never */
    uint64_t cas_version; /* 0 = none */
    uint32_t flags;       /* DMCE_MSMP_STORE_SET_NX / _XX */
    uint32_t klen;
    uint32_t vlen;
    uint32_t reserved;          /* 0 */
    const uint8_t *key, *value; /* decoded: point into the input */
} dmce_msmp_store_set_req_t;
#define DMCE_MSMP_STORE_SET_REQ_HDR 40u

/* store_del and store_touch requests: 24 bytes + key. `arg` is the CAS
 * version (del, 0 = any) or the TTL (touch). */
typedef struct dmce_msmp_store_key_req {
    uint64_t addr;
    uint64_t arg;
    uint32_t klen;
    uint32_t reserved; /* 0 */
    const uint8_t *key;
} dmce_msmp_store_key_req_t;
#define DMCE_MSMP_STORE_KEY_REQ_HDR 24u

/* store_stats values, in order. */
enum dmce_msmp_store_stat {
    DMCE_STORE_STAT_ENTRIES,
    DMCE_STORE_STAT_BYTES,
    DMCE_STORE_STAT_MEM_TOTAL,
    DMCE_STORE_STAT_MEM_LIVE,
    DMCE_STORE_STAT_MEM_FREE,
    DMCE_STORE_STAT_MEM_LIMBO,
    DMCE_STORE_STAT_HITS,
    DMCE_STORE_STAT_MISSES,
    DMCE_STORE_STAT_SETS,
    DMCE_STORE_STAT_DELS,
    DMCE_STORE_STAT_TOUCHES,
    DMCE_STORE_STAT_EVICTIONS,
    DMCE_STORE_STAT_EXPIRATIONS,
    DMCE_STORE_STAT_CAS_FAILURES,
    DMCE_STORE_STAT_CORRUPT,
    DMCE_STORE_STAT_RECOVERIES,
    DMCE_STORE_STAT_REAPED,
    DMCE_STORE_STAT_STRIPES,
    DMCE_STORE_STAT_HANDLES,
    DMCE_STORE_STAT_LOCKS_HELD,
    DMCE_STORE_STAT_REBUILDS_PENDING,
    DMCE_STORE_STAT_COUNT_
};
#define DMCE_MSMP_STORE_STATS_SIZE (8u + 8u * DMCE_STORE_STAT_COUNT_)

/*
 * Encoders write exactly the bytes of the payload (the *_SIZE, or the
 * fixed part plus key/value lengths for the variable ones; the sizes are
 * returned by the *_size helpers) into out, which must hold them.
 * Decoders return 0 or -EBADMSG.
 */
void dmce_msmp_store_format_req_encode(const dmce_msmp_store_format_req_t *m, uint8_t *out);
int dmce_msmp_store_format_req_decode(const uint8_t *in, size_t len,
                                      dmce_msmp_store_format_req_t *m);
void dmce_msmp_store_info_encode(const dmce_msmp_store_info_t *m, uint8_t *out);
int dmce_msmp_store_info_decode(const uint8_t *in, size_t len, dmce_msmp_store_info_t *m);
int dmce_msmp_store_addr_decode(const uint8_t *in, size_t len, uint64_t *addr);

/*
 * The variable-length requests: the fixed part is encoded into hdr (the
 * *_HDR bytes); the key (and value) follow it on the wire, so a sender can
 * gather them without a copy. Decoders check that the payload is exactly
 * the fixed part plus the lengths it announces.
 */
void dmce_msmp_store_get_req_encode(const dmce_msmp_store_get_req_t *m, uint8_t *hdr);
int dmce_msmp_store_get_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_get_req_t *m);
void dmce_msmp_store_get_resp_encode(const dmce_msmp_store_get_resp_t *m, uint8_t *hdr);
int dmce_msmp_store_get_resp_decode(const uint8_t *in, size_t len, dmce_msmp_store_get_resp_t *m);
void dmce_msmp_store_set_req_encode(const dmce_msmp_store_set_req_t *m, uint8_t *hdr);
int dmce_msmp_store_set_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_set_req_t *m);
void dmce_msmp_store_key_req_encode(const dmce_msmp_store_key_req_t *m, uint8_t *hdr);
int dmce_msmp_store_key_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_key_req_t *m);

/* Stats: values[DMCE_STORE_STAT_COUNT_]; the decoder accepts more values (newer peer). */
void dmce_msmp_store_stats_encode(const uint64_t *values, uint8_t *out);
int dmce_msmp_store_stats_decode(const uint8_t *in, size_t len, uint64_t *values);

/*
 * The status a store operation reports, from what the table returned:
 * the table's generic codes become the store's own (include/dmce/error.h)
 * where an errno would be ambiguous. `op` is the MSMP op (its meaning
 * decides, e.g. -ESTALE is a CAS failure for set/del). Shared by the
 * daemon and the in-process client, so both modes give the same codes.
 */
int dmce_msmp_store_status(unsigned op, int rc);

#endif /* DMCE_RUNTIME_MSMP_STORE_H */
