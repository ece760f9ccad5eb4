/*
 * msmp.c - MSMP frame and payload codec; see msmp.h and docs/msmp.md.
 *
 * Decoders are written for hostile input: each checks the exact payload
 * size for its op before reading a byte, and rejects non-zero reserved
 * fields so that they stay usable in later versions.
 */
#include "msmp.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <dmce/client.h>
#include <dmce/error.h>

const char *dmce_msmp_op_name(unsigned op)
{
    /* Every operation of the protocol, core, store (msmp_store.h) and
     * dispatcher (msmp_dispatch.h): one table so logs name them all. */
    static const char *const names[] = {
        [1] = "setup",        [2] = "malloc",       [3] = "read",           [4] = "write",
        [5] = "free",         [6] = "disconnect",   [7] = "stats",          [8] = "map",
        [9] = "ring_open",    [10] = "persist",     [11] = "mirror_create", [12] = "mirror_start",
        [13] = "promote",     [14] = "drop",        [15] = "blocks",        [16] = "store_format",
        [17] = "store_open",  [18] = "store_get",   [19] = "store_set",     [20] = "store_del",
        [21] = "store_touch", [22] = "store_stats", [23] = "store_sweep",   [24] = "store_verify",
        [25] = "sessions",    [26] = "handoff",     [27] = "adopt",         [28] = "release",
        [29] = "reparent",    [30] = "backup",      [31] = "backup_status", [32] = "register",
        [33] = "heartbeat",   [34] = "directory",   [35] = "pick",          [36] = "session",
        [37] = "block_event", [38] = "mirror_peer", [39] = "disp_stats",    [40] = "migrate",
        [41] = "drain",       [42] = "jobs",        [43] = "daemons",       [44] = "restore",
        [45] = "mirror_adopt"};
    if (op >= sizeof(names) / sizeof(names[0]) || names[op] == NULL)
        return "?";
    return names[op];
}

void dmce_msmp_hdr_encode(const dmce_msmp_hdr_t *h, uint8_t out[DMCE_MSMP_HDR_SIZE])
{
    dmce_put_le32(out, h->magic);
    out[4] = h->version;
    out[5] = h->flags;
    dmce_put_le16(out + 6, h->op);
    dmce_put_le64(out + 8, h->req_id);
    dmce_put_le32(out + 16, h->len);
    dmce_put_le32(out + 20, (uint32_t)h->status);
}

int dmce_msmp_hdr_decode(const uint8_t in[DMCE_MSMP_HDR_SIZE], uint32_t max_payload,
                         dmce_msmp_hdr_t *h)
{
    h->magic = dmce_get_le32(in);
    h->version = in[4];
    h->flags = in[5];
    h->op = dmce_get_le16(in + 6);
    h->req_id = dmce_get_le64(in + 8);
    h->len = dmce_get_le32(in + 16);
    h->status = (int32_t)dmce_get_le32(in + 20);
    if (h->magic != DMCE_MSMP_MAGIC)
        return DMCE_EBADMAGIC;
    if (h->version != DMCE_MSMP_VERSION)
        return DMCE_EVERSION;
    if (h->flags & ~DMCE_MSMP_FLAG_RESPONSE)
        return -EPROTO;
    if (h->len > max_payload || h->len > DMCE_MSMP_PAYLOAD_LIMIT)
        return -EMSGSIZE;
    return 0;
}

void dmce_msmp_setup_req_encode(const dmce_msmp_setup_req_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->amount);
    dmce_put_le32(out + 8, m->flags);
    dmce_put_le32(out + 12, m->layout);
    memcpy(out + 16, m->token, DMCE_MSMP_TOKEN_LEN);
    dmce_put_le32(out + 32, m->session_id);
    dmce_put_le32(out + 36, 0);
}

int dmce_msmp_setup_req_decode(const uint8_t *in, size_t len, dmce_msmp_setup_req_t *m)
{
    if (len != DMCE_MSMP_SETUP_REQ_SIZE)
        return -EBADMSG;
    m->amount = dmce_get_le64(in);
    m->flags = dmce_get_le32(in + 8);
    m->layout = dmce_get_le32(in + 12);
    memcpy(m->token, in + 16, DMCE_MSMP_TOKEN_LEN);
    m->session_id = dmce_get_le32(in + 32);
    m->reserved = dmce_get_le32(in + 36);
    if ((m->flags & ~3u) || m->reserved ||
        (m->session_id && !(m->session_id & DMCE_SESSION_GLOBAL)))
        return -EBADMSG;
    return 0;
}

void dmce_msmp_setup_resp_encode(const dmce_msmp_setup_resp_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->granted);
    dmce_put_le64(out + 8, m->used);
    dmce_put_le32(out + 16, m->session_id);
    dmce_put_le32(out + 20, m->daemon_id);
    dmce_put_le32(out + 24, m->layout);
    dmce_put_le32(out + 28, m->max_payload);
    dmce_put_le32(out + 32, m->block_first);
    dmce_put_le32(out + 36, m->block_last);
}

int dmce_msmp_setup_resp_decode(const uint8_t *in, size_t len, dmce_msmp_setup_resp_t *m)
{
    if (len != DMCE_MSMP_SETUP_RESP_SIZE)
        return -EBADMSG;
    m->granted = dmce_get_le64(in);
    m->used = dmce_get_le64(in + 8);
    m->session_id = dmce_get_le32(in + 16);
    m->daemon_id = dmce_get_le32(in + 20);
    m->layout = dmce_get_le32(in + 24);
    m->max_payload = dmce_get_le32(in + 28);
    m->block_first = dmce_get_le32(in + 32);
    m->block_last = dmce_get_le32(in + 36);
    if (m->max_payload < 4096 || m->max_payload > DMCE_MSMP_PAYLOAD_LIMIT ||
        m->block_first > m->block_last)
        return -EBADMSG;
    return 0;
}

void dmce_msmp_u64_encode(uint64_t v, uint8_t *out)
{
    dmce_put_le64(out, v);
}

int dmce_msmp_u64_decode(const uint8_t *in, size_t len, uint64_t *v)
{
    if (len != DMCE_MSMP_U64_SIZE)
        return -EBADMSG;
    *v = dmce_get_le64(in);
    return 0;
}

void dmce_msmp_rw_req_encode(const dmce_msmp_rw_req_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->addr);
    dmce_put_le32(out + 8, m->len);
    dmce_put_le32(out + 12, 0);
}

static int rw_decode(const uint8_t *in, size_t len, dmce_msmp_rw_req_t *m)
{
    if (len < DMCE_MSMP_RW_REQ_SIZE)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->len = dmce_get_le32(in + 8);
    m->reserved = dmce_get_le32(in + 12);
    return m->reserved ? -EBADMSG : 0;
}

int dmce_msmp_read_req_decode(const uint8_t *in, size_t len, dmce_msmp_rw_req_t *m)
{
    if (len != DMCE_MSMP_RW_REQ_SIZE)
        return -EBADMSG;
    return rw_decode(in, len, m);
}

int dmce_msmp_write_req_decode(const uint8_t *in, size_t len, dmce_msmp_rw_req_t *m)
{
    int r = rw_decode(in, len, m);
    if (r < 0)
        return r;
    if ((uint64_t)m->len != (uint64_t)len - DMCE_MSMP_WRITE_HDR)
        return -EBADMSG;
    return 0;
}

void dmce_msmp_map_req_encode(const dmce_msmp_map_req_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->addr);
    dmce_put_le64(out + 8, m->len);
    dmce_put_le32(out + 16, m->flags);
    dmce_put_le32(out + 20, 0);
}

int dmce_msmp_map_req_decode(const uint8_t *in, size_t len, dmce_msmp_map_req_t *m)
{
    if (len != DMCE_MSMP_MAP_REQ_SIZE)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->len = dmce_get_le64(in + 8);
    m->flags = dmce_get_le32(in + 16);
    m->reserved = dmce_get_le32(in + 20);
    if ((m->flags & ~DMCE_MSMP_MAP_WANT_FD) || m->reserved)
        return -EBADMSG;
    return 0;
}

void dmce_msmp_map_resp_encode(const dmce_msmp_map_resp_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->flags);
    dmce_put_le64(out + 8, m->block_size);
    dmce_put_le64(out + 16, m->data_offset);
    dmce_put_le32(out + 24, m->page_size);
    dmce_put_le32(out + 28, 0);
    dmce_put_le64(out + 32, m->alloc_cell);
    dmce_put_le64(out + 40, m->alloc_size);
}

int dmce_msmp_map_resp_decode(const uint8_t *in, size_t len, dmce_msmp_map_resp_t *m)
{
    if (len != DMCE_MSMP_MAP_RESP_SIZE)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->flags = dmce_get_le32(in + 4);
    m->block_size = dmce_get_le64(in + 8);
    m->data_offset = dmce_get_le64(in + 16);
    m->page_size = dmce_get_le32(in + 24);
    m->reserved = dmce_get_le32(in + 28);
    m->alloc_cell = dmce_get_le64(in + 32);
    m->alloc_size = dmce_get_le64(in + 40);
    if ((m->flags & ~DMCE_MSMP_MAP_FD) || m->reserved || m->block_size == 0 ||
        m->data_offset >= m->block_size || m->alloc_cell < m->data_offset ||
        m->alloc_cell > m->block_size || m->alloc_size > m->block_size - m->alloc_cell ||
        m->page_size < 4096 || (m->page_size & (m->page_size - 1)))
        return -EBADMSG;
    return 0;
}

void dmce_msmp_ring_req_encode(const dmce_msmp_ring_req_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->capacity);
    dmce_put_le32(out + 4, m->flags);
}

int dmce_msmp_ring_req_decode(const uint8_t *in, size_t len, dmce_msmp_ring_req_t *m)
{
    if (len != DMCE_MSMP_RING_REQ_SIZE)
        return -EBADMSG;
    m->capacity = dmce_get_le32(in);
    m->flags = dmce_get_le32(in + 4);
    return m->flags ? -EBADMSG : 0;
}

void dmce_msmp_ring_resp_encode(const dmce_msmp_ring_resp_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->capacity);
    dmce_put_le32(out + 4, m->flags);
    dmce_put_le64(out + 8, m->seg_size);
}

int dmce_msmp_ring_resp_decode(const uint8_t *in, size_t len, dmce_msmp_ring_resp_t *m)
{
    if (len != DMCE_MSMP_RING_RESP_SIZE)
        return -EBADMSG;
    m->capacity = dmce_get_le32(in);
    m->flags = dmce_get_le32(in + 4);
    m->seg_size = dmce_get_le64(in + 8);
    if (m->flags || m->capacity < 4096 || m->capacity > (1u << 30) ||
        (m->capacity & (m->capacity - 1)) || m->seg_size <= 2ull * m->capacity)
        return -EBADMSG;
    return 0;
}

void dmce_msmp_range_encode(const dmce_msmp_range_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->addr);
    dmce_put_le64(out + 8, m->len);
}

int dmce_msmp_range_decode(const uint8_t *in, size_t len, dmce_msmp_range_t *m)
{
    if (len != DMCE_MSMP_RANGE_SIZE)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->len = dmce_get_le64(in + 8);
    return 0;
}

int dmce_msmp_ranges_decode(const uint8_t *in, size_t len, dmce_msmp_range_t *out, unsigned max,
                            unsigned *n)
{
    if (len == 0 || len % DMCE_MSMP_RANGE_SIZE || len / DMCE_MSMP_RANGE_SIZE > max)
        return -EBADMSG;
    *n = (unsigned)(len / DMCE_MSMP_RANGE_SIZE);
    for (unsigned i = 0; i < *n; i++)
        dmce_msmp_range_decode(in + (size_t)i * DMCE_MSMP_RANGE_SIZE, DMCE_MSMP_RANGE_SIZE,
                               &out[i]);
    return 0;
}

void dmce_msmp_mirror_create_encode(const dmce_msmp_mirror_create_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->primary);
    dmce_put_le64(out + 8, m->size);
}

int dmce_msmp_mirror_create_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_create_t *m)
{
    if (len != DMCE_MSMP_MIRROR_CREATE_SIZE)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->primary = dmce_get_le32(in + 4);
    m->size = dmce_get_le64(in + 8);
    if (m->block == 0 || m->size == 0 || m->size % 4096)
        return -EBADMSG;
    return 0;
}

int dmce_msmp_mirror_start_encode(const dmce_msmp_mirror_start_t *m, uint8_t *out, size_t cap)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n > DMCE_MSMP_PATH_MAX || cap < DMCE_MSMP_MIRROR_START_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->peer);
    dmce_put_le32(out + 8, m->flags);
    dmce_put_le32(out + 12, (uint32_t)n);
    memcpy(out + DMCE_MSMP_MIRROR_START_HDR, m->path, n);
    return (int)(DMCE_MSMP_MIRROR_START_HDR + n);
}

int dmce_msmp_mirror_start_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_start_t *m)
{
    if (len < DMCE_MSMP_MIRROR_START_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->peer = dmce_get_le32(in + 4);
    m->flags = dmce_get_le32(in + 8);
    uint32_t n = dmce_get_le32(in + 12);
    if (m->block == 0 || m->flags || n == 0 || n > DMCE_MSMP_PATH_MAX ||
        (uint64_t)len != DMCE_MSMP_MIRROR_START_HDR + (uint64_t)n)
        return -EBADMSG;
    memcpy(m->path, in + DMCE_MSMP_MIRROR_START_HDR, n);
    m->path[n] = 0;
    if (memchr(m->path, 0, n)) /* an embedded NUL would name another path */
        return -EBADMSG;
    return 0;
}

int dmce_msmp_mirror_adopt_encode(const dmce_msmp_mirror_adopt_t *m, uint8_t *out, size_t cap)
{
    size_t n = strnlen(m->name, sizeof(m->name));
    if (n == 0 || n > DMCE_MSMP_NAME_MAX || cap < DMCE_MSMP_MIRROR_ADOPT_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->primary);
    dmce_put_le64(out + 8, m->size);
    dmce_put_le64(out + 16, m->ino);
    dmce_put_le32(out + 24, m->holder);
    dmce_put_le32(out + 28, (uint32_t)n);
    memcpy(out + DMCE_MSMP_MIRROR_ADOPT_HDR, m->name, n);
    return (int)(DMCE_MSMP_MIRROR_ADOPT_HDR + n);
}

int dmce_msmp_mirror_adopt_decode(const uint8_t *in, size_t len, dmce_msmp_mirror_adopt_t *m)
{
    if (len < DMCE_MSMP_MIRROR_ADOPT_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->primary = dmce_get_le32(in + 4);
    m->size = dmce_get_le64(in + 8);
    m->ino = dmce_get_le64(in + 16);
    m->holder = dmce_get_le32(in + 24);
    uint32_t n = dmce_get_le32(in + 28);
    if (m->block == 0 || m->primary == 0 || m->size == 0 || m->size % 4096 || n == 0 ||
        n > DMCE_MSMP_NAME_MAX || (uint64_t)len != DMCE_MSMP_MIRROR_ADOPT_HDR + (uint64_t)n)
        return -EBADMSG;
    memcpy(m->name, in + DMCE_MSMP_MIRROR_ADOPT_HDR, n);
    m->name[n] = 0;
    if (memchr(m->name, 0, n)) /* an embedded NUL would name another object */
        return -EBADMSG;
    return 0;
}

void dmce_msmp_block_req_encode(uint32_t block, uint8_t *out)
{
    dmce_put_le32(out, block);
    dmce_put_le32(out + 4, 0);
}

int dmce_msmp_block_req_decode(const uint8_t *in, size_t len, uint32_t *block)
{
    if (len != DMCE_MSMP_BLOCK_REQ_SIZE || dmce_get_le32(in + 4) != 0)
        return -EBADMSG;
    *block = dmce_get_le32(in);
    return *block ? 0 : -EBADMSG;
}

void dmce_msmp_drop_req_encode(uint32_t block, uint32_t flags, uint8_t *out)
{
    dmce_put_le32(out, block);
    dmce_put_le32(out + 4, flags);
}

int dmce_msmp_drop_req_decode(const uint8_t *in, size_t len, uint32_t *block, uint32_t *flags)
{
    if (len != DMCE_MSMP_BLOCK_REQ_SIZE)
        return -EBADMSG;
    *block = dmce_get_le32(in);
    *flags = dmce_get_le32(in + 4);
    return *block && !(*flags & ~DMCE_MSMP_DROP_KEEP) ? 0 : -EBADMSG;
}

void dmce_msmp_block_info_encode(const dmce_msmp_block_info_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->role);
    dmce_put_le32(out + 8, m->peer);
    dmce_put_le32(out + 12, m->mirror_state);
    dmce_put_le64(out + 16, m->size);
    dmce_put_le64(out + 24, m->used);
    dmce_put_le64(out + 32, m->nallocs);
    dmce_put_le64(out + 40, m->copied);
}

int dmce_msmp_blocks_count(const uint8_t *in, size_t len, uint32_t *count)
{
    if (len < 8 || dmce_get_le32(in + 4) != 0)
        return -EBADMSG;
    uint32_t n = dmce_get_le32(in);
    if ((uint64_t)len != 8u + (uint64_t)n * DMCE_MSMP_BLOCK_INFO_SIZE)
        return -EBADMSG;
    *count = n;
    return 0;
}

int dmce_msmp_block_info_decode(const uint8_t *in, size_t len, uint32_t i,
                                dmce_msmp_block_info_t *m)
{
    uint32_t n;
    int r = dmce_msmp_blocks_count(in, len, &n);
    if (r < 0)
        return r;
    if (i >= n)
        return -EINVAL;
    const uint8_t *e = in + 8 + (size_t)i * DMCE_MSMP_BLOCK_INFO_SIZE;
    m->block = dmce_get_le32(e);
    m->role = dmce_get_le32(e + 4);
    m->peer = dmce_get_le32(e + 8);
    m->mirror_state = dmce_get_le32(e + 12);
    m->size = dmce_get_le64(e + 16);
    m->used = dmce_get_le64(e + 24);
    m->nallocs = dmce_get_le64(e + 32);
    m->copied = dmce_get_le64(e + 40);
    if (m->block == 0 || m->role > 1 || m->mirror_state > 2)
        return -EBADMSG;
    return 0;
}

void dmce_msmp_values_encode(const uint64_t *values, uint32_t n, uint8_t *out)
{
    dmce_put_le32(out, n);
    dmce_put_le32(out + 4, 0);
    for (uint32_t i = 0; i < n; i++)
        dmce_put_le64(out + 8 + 8 * (size_t)i, values[i]);
}

int dmce_msmp_values_decode(const uint8_t *in, size_t len, uint64_t *values, uint32_t known)
{
    if (len < 8)
        return -EBADMSG;
    uint32_t count = dmce_get_le32(in);
    if (count < known || (uint64_t)len != 8u + 8ull * count || dmce_get_le32(in + 4) != 0)
        return -EBADMSG;
    for (uint32_t i = 0; i < known; i++)
        values[i] = dmce_get_le64(in + 8 + 8 * (size_t)i);
    return 0;
}

void dmce_msmp_stats_encode(const uint64_t *values, uint8_t *out)
{
    dmce_msmp_values_encode(values, DMCE_STAT_COUNT_, out);
}

int dmce_msmp_stats_decode(const uint8_t *in, size_t len, uint64_t *values)
{
    return dmce_msmp_values_decode(in, len, values, DMCE_STAT_COUNT_);
}

/* Where each stats value lives in dmce_stats_t (the one mapping, both ways). */
static const struct {
    unsigned idx;
    size_t off;
    int narrow; /* a 32-bit field (NUMA_NODE: signed, sent as int64) */
} stat_fields[] = {
    {DMCE_STAT_DAEMON_ID, offsetof(dmce_stats_t, daemon_id), 1},
    {DMCE_STAT_NUMA_NODE, offsetof(dmce_stats_t, numa_node), 1},
    {DMCE_STAT_PID, offsetof(dmce_stats_t, pid), 1},
    {DMCE_STAT_BLOCK_FIRST, offsetof(dmce_stats_t, block_first), 1},
    {DMCE_STAT_BLOCK_LAST, offsetof(dmce_stats_t, block_last), 1},
    {DMCE_STAT_BLOCKS, offsetof(dmce_stats_t, blocks), 0},
    {DMCE_STAT_BYTES_TOTAL, offsetof(dmce_stats_t, bytes_total), 0},
    {DMCE_STAT_BYTES_RESERVED, offsetof(dmce_stats_t, bytes_reserved), 0},
    {DMCE_STAT_BYTES_USED, offsetof(dmce_stats_t, bytes_used), 0},
    {DMCE_STAT_BYTES_FREE, offsetof(dmce_stats_t, bytes_free), 0},
    {DMCE_STAT_ALLOCATIONS, offsetof(dmce_stats_t, allocations), 0},
    {DMCE_STAT_CLIENTS, offsetof(dmce_stats_t, clients), 0},
    {DMCE_STAT_SESSIONS, offsetof(dmce_stats_t, sessions), 0},
    {DMCE_STAT_SESSIONS_ORPHANED, offsetof(dmce_stats_t, sessions_orphaned), 0},
    {DMCE_STAT_OPS_SETUP, offsetof(dmce_stats_t, ops_setup), 0},
    {DMCE_STAT_OPS_MALLOC, offsetof(dmce_stats_t, ops_malloc), 0},
    {DMCE_STAT_OPS_READ, offsetof(dmce_stats_t, ops_read), 0},
    {DMCE_STAT_OPS_WRITE, offsetof(dmce_stats_t, ops_write), 0},
    {DMCE_STAT_OPS_FREE, offsetof(dmce_stats_t, ops_free), 0},
    {DMCE_STAT_OPS_DISCONNECT, offsetof(dmce_stats_t, ops_disconnect), 0},
    {DMCE_STAT_OPS_STATS, offsetof(dmce_stats_t, ops_stats), 0},
    {DMCE_STAT_OPS_ERRORS, offsetof(dmce_stats_t, ops_errors), 0},
    {DMCE_STAT_BYTES_READ, offsetof(dmce_stats_t, bytes_read), 0},
    {DMCE_STAT_BYTES_WRITTEN, offsetof(dmce_stats_t, bytes_written), 0},
    {DMCE_STAT_UPTIME_MS, offsetof(dmce_stats_t, uptime_ms), 0},
    {DMCE_STAT_OPS_MAP, offsetof(dmce_stats_t, ops_map), 0},
    {DMCE_STAT_FDS_SENT, offsetof(dmce_stats_t, fds_sent), 0},
    {DMCE_STAT_PREFAULTED, offsetof(dmce_stats_t, prefaulted), 0},
    {DMCE_STAT_PREFAULT_PENDING, offsetof(dmce_stats_t, prefault_pending), 0},
    {DMCE_STAT_RING_CLIENTS, offsetof(dmce_stats_t, ring_clients), 0},
    {DMCE_STAT_MIRRORS, offsetof(dmce_stats_t, mirrors), 0},
    {DMCE_STAT_MIRROR_COPIES, offsetof(dmce_stats_t, mirror_copies), 0},
    {DMCE_STAT_MIRROR_BYTES_COPIED, offsetof(dmce_stats_t, mirror_bytes_copied), 0},
    {DMCE_STAT_MIRROR_BROKEN, offsetof(dmce_stats_t, mirror_broken), 0},
    {DMCE_STAT_OPS_PERSIST, offsetof(dmce_stats_t, ops_persist), 0},
    {DMCE_STAT_PROMOTED, offsetof(dmce_stats_t, promoted), 0},
    {DMCE_STAT_MOVED_IN, offsetof(dmce_stats_t, moved_in), 0},
    {DMCE_STAT_MOVED_OUT, offsetof(dmce_stats_t, moved_out), 0},
    {DMCE_STAT_BACKUPS, offsetof(dmce_stats_t, backups), 0},
    {DMCE_STAT_BACKUP_BYTES, offsetof(dmce_stats_t, backup_bytes), 0},
    {DMCE_STAT_BACKUP_REPASSES, offsetof(dmce_stats_t, backup_repasses), 0},
    {DMCE_STAT_RESTORED, offsetof(dmce_stats_t, restored), 0},
    {DMCE_STAT_STARTING, offsetof(dmce_stats_t, starting), 0},
    {DMCE_STAT_SPARES, offsetof(dmce_stats_t, spares), 0},
    {DMCE_STAT_SPARES_USED, offsetof(dmce_stats_t, spares_used), 0},
    {DMCE_STAT_RING_TURNS, offsetof(dmce_stats_t, ring_turns), 0},
    {DMCE_STAT_TURN_WAIT_US, offsetof(dmce_stats_t, turn_wait_us), 0},
    {DMCE_STAT_MIRRORS_KEPT, offsetof(dmce_stats_t, mirrors_kept), 0},
    {DMCE_STAT_MIRROR_ADOPTED, offsetof(dmce_stats_t, mirror_adopted), 0},
};
_Static_assert(sizeof(stat_fields) / sizeof(stat_fields[0]) == DMCE_STAT_COUNT_, "every stat");

void dmce_msmp_stats_to_struct(const uint64_t *v, dmce_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
        uint8_t *f = (uint8_t *)s + stat_fields[i].off;
        uint64_t x = v[stat_fields[i].idx];
        if (stat_fields[i].narrow) {
            uint32_t n = (uint32_t)x; /* int32 NUMA node: the low half of the int64 */
            memcpy(f, &n, 4);
        } else {
            memcpy(f, &x, 8);
        }
    }
}

void dmce_msmp_stats_from_struct(const dmce_stats_t *s, uint64_t *v)
{
    for (size_t i = 0; i < sizeof(stat_fields) / sizeof(stat_fields[0]); i++) {
        const uint8_t *f = (const uint8_t *)s + stat_fields[i].off;
        uint64_t x = 0;
        if (stat_fields[i].idx == DMCE_STAT_NUMA_NODE) {
            int32_t n;
            memcpy(&n, f, 4);
            x = (uint64_t)(int64_t)n;
        } else if (stat_fields[i].narrow) {
            uint32_t n;
            memcpy(&n, f, 4);
            x = n;
        } else {
            memcpy(&x, f, 8);
        }
        v[stat_fields[i].idx] = x;
    }
}
