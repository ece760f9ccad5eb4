/*
 * msmp_dispatch.c - codec of the dispatcher's MSMP operations; see
 * msmp_dispatch.h. Decoders are written for hostile input, like msmp.c's.
 */
#include "msmp_dispatch.h"

#include <errno.h>
#include <string.h>

/* A path field: 1..max bytes, no NUL inside; copied NUL-terminated. */
static int path_in(const uint8_t *p, uint32_t n, uint32_t max, char *out)
{
    if (n == 0 || n > max || memchr(p, 0, n))
        return -EBADMSG;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

int dmce_disp_register_encode(const dmce_disp_register_t *m, uint8_t *out, size_t cap)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n > DMCE_MSMP_PATH_MAX || cap < DMCE_DISP_REGISTER_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, m->daemon_id);
    dmce_put_le32(out + 4, m->pid);
    dmce_put_le32(out + 8, (uint32_t)m->numa_node);
    dmce_put_le32(out + 12, m->flags);
    dmce_put_le64(out + 16, m->capacity);
    dmce_put_le64(out + 24, m->block_size);
    dmce_put_le32(out + 32, m->max_blocks);
    dmce_put_le32(out + 36, m->block_first);
    dmce_put_le32(out + 40, m->layout);
    dmce_put_le32(out + 44, (uint32_t)n);
    memcpy(out + DMCE_DISP_REGISTER_HDR, m->path, n);
    return (int)(DMCE_DISP_REGISTER_HDR + n);
}

int dmce_disp_register_decode(const uint8_t *in, size_t len, dmce_disp_register_t *m)
{
    if (len < DMCE_DISP_REGISTER_HDR)
        return -EBADMSG;
    m->daemon_id = dmce_get_le32(in);
    m->pid = dmce_get_le32(in + 4);
    m->numa_node = (int32_t)dmce_get_le32(in + 8);
    m->flags = dmce_get_le32(in + 12);
    m->capacity = dmce_get_le64(in + 16);
    m->block_size = dmce_get_le64(in + 24);
    m->max_blocks = dmce_get_le32(in + 32);
    m->block_first = dmce_get_le32(in + 36);
    m->layout = dmce_get_le32(in + 40);
    uint32_t n = dmce_get_le32(in + 44);
    if (m->daemon_id == 0 || m->daemon_id > 4095 || m->flags || m->layout > 1 ||
        m->max_blocks == 0 || m->block_size == 0 || m->numa_node < -1 ||
        (uint64_t)len != DMCE_DISP_REGISTER_HDR + (uint64_t)n)
        return -EBADMSG;
    return path_in(in + DMCE_DISP_REGISTER_HDR, n, DMCE_MSMP_PATH_MAX, m->path);
}

void dmce_disp_register_resp_encode(const dmce_disp_register_resp_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block_first);
    dmce_put_le32(out + 4, m->block_count);
    dmce_put_le32(out + 8, m->heartbeat_ms);
    dmce_put_le32(out + 12, m->flags);
    dmce_put_le64(out + 16, m->epoch);
}

int dmce_disp_register_resp_decode(const uint8_t *in, size_t len, dmce_disp_register_resp_t *m)
{
    if (len != DMCE_DISP_REGISTER_RESP_SIZE)
        return -EBADMSG;
    m->block_first = dmce_get_le32(in);
    m->block_count = dmce_get_le32(in + 4);
    m->heartbeat_ms = dmce_get_le32(in + 8);
    m->flags = dmce_get_le32(in + 12);
    m->epoch = dmce_get_le64(in + 16);
    if (m->block_first == 0 || m->block_count == 0 || m->heartbeat_ms == 0 ||
        (m->flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) ||
        (uint64_t)m->block_first + m->block_count > (1u << 16))
        return -EBADMSG;
    return 0;
}

void dmce_disp_pulse_encode(const dmce_disp_pulse_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->daemon_id);
    dmce_put_le32(out + 4, m->seq);
    dmce_put_le64(out + 8, m->used);
    dmce_put_le64(out + 16, m->free);
    dmce_put_le64(out + 24, m->ops);
}

int dmce_disp_pulse_decode(const uint8_t *in, size_t len, dmce_disp_pulse_t *m)
{
    if (len != DMCE_DISP_PULSE_SIZE)
        return -EBADMSG;
    m->daemon_id = dmce_get_le32(in);
    m->seq = dmce_get_le32(in + 4);
    m->used = dmce_get_le64(in + 8);
    m->free = dmce_get_le64(in + 16);
    m->ops = dmce_get_le64(in + 24);
    return m->daemon_id ? 0 : -EBADMSG;
}

void dmce_disp_monitor_encode(const dmce_disp_monitor_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->epoch);
    dmce_put_le64(out + 8, m->live);
    dmce_put_le32(out + 16, m->flags);
    dmce_put_le32(out + 20, 0);
}

int dmce_disp_monitor_decode(const uint8_t *in, size_t len, dmce_disp_monitor_t *m)
{
    if (len != DMCE_DISP_MONITOR_SIZE)
        return -EBADMSG;
    m->epoch = dmce_get_le64(in);
    m->live = dmce_get_le64(in + 8);
    m->flags = dmce_get_le32(in + 16);
    m->reserved = dmce_get_le32(in + 20);
    return (m->flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) || m->reserved ? -EBADMSG : 0;
}

size_t dmce_disp_dir_size(uint32_t ndaemons, uint32_t nblocks)
{
    return DMCE_DISP_DIR_HDR + (size_t)ndaemons * DMCE_DISP_DAEMON_SIZE +
           (size_t)nblocks * DMCE_DISP_BLOCK_SIZE;
}

void dmce_disp_dir_hdr_encode(const dmce_disp_dir_hdr_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->epoch);
    dmce_put_le32(out + 8, m->ndaemons);
    dmce_put_le32(out + 12, m->nblocks);
    dmce_put_le32(out + 16, m->flags);
    dmce_put_le32(out + 20, 0);
}

int dmce_disp_daemon_encode(const dmce_disp_daemon_t *m, uint8_t *out)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n > DMCE_DISP_DAEMON_PATH)
        return -EINVAL;
    memset(out, 0, DMCE_DISP_DAEMON_SIZE);
    dmce_put_le32(out, m->id);
    dmce_put_le32(out + 4, m->state);
    dmce_put_le32(out + 8, (uint32_t)m->numa_node);
    dmce_put_le32(out + 12, m->pid);
    dmce_put_le64(out + 16, m->capacity);
    dmce_put_le64(out + 24, m->used);
    dmce_put_le64(out + 32, m->free);
    dmce_put_le64(out + 40, m->ops);
    dmce_put_le32(out + 48, (uint32_t)n);
    memcpy(out + 56, m->path, n);
    return 0;
}

void dmce_disp_block_encode(const dmce_disp_block_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->primary);
    dmce_put_le32(out + 8, m->mirror);
    dmce_put_le32(out + 12, m->state);
}

int dmce_disp_dir_hdr_decode(const uint8_t *in, size_t len, dmce_disp_dir_hdr_t *m)
{
    if (len < DMCE_DISP_DIR_HDR)
        return -EBADMSG;
    m->epoch = dmce_get_le64(in);
    m->ndaemons = dmce_get_le32(in + 8);
    m->nblocks = dmce_get_le32(in + 12);
    m->flags = dmce_get_le32(in + 16);
    m->reserved = dmce_get_le32(in + 20);
    if (m->reserved || (m->flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) || m->ndaemons > 4096 ||
        m->nblocks > (1u << 16) || len != dmce_disp_dir_size(m->ndaemons, m->nblocks))
        return -EBADMSG;
    return 0;
}

int dmce_disp_daemon_decode(const uint8_t *in, size_t len, uint32_t i, dmce_disp_daemon_t *m)
{
    dmce_disp_dir_hdr_t h;
    int r = dmce_disp_dir_hdr_decode(in, len, &h);
    if (r < 0)
        return r;
    if (i >= h.ndaemons)
        return -EINVAL;
    const uint8_t *e = in + DMCE_DISP_DIR_HDR + (size_t)i * DMCE_DISP_DAEMON_SIZE;
    m->id = dmce_get_le32(e);
    m->state = dmce_get_le32(e + 4);
    m->numa_node = (int32_t)dmce_get_le32(e + 8);
    m->pid = dmce_get_le32(e + 12);
    m->capacity = dmce_get_le64(e + 16);
    m->used = dmce_get_le64(e + 24);
    m->free = dmce_get_le64(e + 32);
    m->ops = dmce_get_le64(e + 40);
    uint32_t n = dmce_get_le32(e + 48);
    if (m->id == 0 || m->id > 4095 || m->state < DMCE_DISP_ALIVE || m->state > DMCE_DISP_DEAD ||
        dmce_get_le32(e + 52) != 0)
        return -EBADMSG;
    r = path_in(e + 56, n, DMCE_DISP_DAEMON_PATH, m->path);
    if (r < 0)
        return r;
    for (const uint8_t *z = e + 56 + n; z < e + DMCE_DISP_DAEMON_SIZE; z++)
        if (*z) /* the path field's padding is reserved: zero */
            return -EBADMSG;
    return 0;
}

int dmce_disp_block_decode(const uint8_t *in, size_t len, uint32_t i, dmce_disp_block_t *m)
{
    dmce_disp_dir_hdr_t h;
    int r = dmce_disp_dir_hdr_decode(in, len, &h);
    if (r < 0)
        return r;
    if (i >= h.nblocks)
        return -EINVAL;
    const uint8_t *e = in + DMCE_DISP_DIR_HDR + (size_t)h.ndaemons * DMCE_DISP_DAEMON_SIZE +
                       (size_t)i * DMCE_DISP_BLOCK_SIZE;
    m->block = dmce_get_le32(e);
    m->primary = dmce_get_le32(e + 4);
    m->mirror = dmce_get_le32(e + 8);
    m->state = dmce_get_le32(e + 12);
    if (m->block == 0 || m->primary == 0 || m->state > DMCE_DISP_REMIRRORING ||
        m->mirror == m->primary)
        return -EBADMSG;
    return 0;
}

void dmce_disp_pick_encode(const dmce_disp_pick_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->size);
    dmce_put_le32(out + 8, (uint32_t)m->numa_node);
    dmce_put_le32(out + 12, m->exclude);
}

int dmce_disp_pick_decode(const uint8_t *in, size_t len, dmce_disp_pick_t *m)
{
    if (len != DMCE_DISP_PICK_SIZE)
        return -EBADMSG;
    m->size = dmce_get_le64(in);
    m->numa_node = (int32_t)dmce_get_le32(in + 8);
    m->exclude = dmce_get_le32(in + 12);
    return m->numa_node < -1 ? -EBADMSG : 0;
}

void dmce_disp_u32_encode(uint32_t v, uint8_t *out)
{
    dmce_put_le32(out, v);
    dmce_put_le32(out + 4, 0);
}

int dmce_disp_u32_decode(const uint8_t *in, size_t len, uint32_t *v)
{
    if (len != DMCE_DISP_U32_RESP_SIZE || dmce_get_le32(in + 4))
        return -EBADMSG;
    *v = dmce_get_le32(in);
    return 0;
}

void dmce_disp_event_encode(const dmce_disp_event_msg_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->daemon_id);
    dmce_put_le32(out + 4, m->block);
    dmce_put_le32(out + 8, m->event);
    dmce_put_le32(out + 12, m->peer);
    dmce_put_le64(out + 16, m->bytes);
}

int dmce_disp_event_decode(const uint8_t *in, size_t len, dmce_disp_event_msg_t *m)
{
    if (len != DMCE_DISP_EVENT_SIZE)
        return -EBADMSG;
    m->daemon_id = dmce_get_le32(in);
    m->block = dmce_get_le32(in + 4);
    m->event = dmce_get_le32(in + 8);
    m->peer = dmce_get_le32(in + 12);
    m->bytes = dmce_get_le64(in + 16);
    if (m->daemon_id == 0 || m->block == 0 || m->event < DMCE_DISP_EV_CREATED ||
        m->event > DMCE_DISP_EV_MIRROR_ADOPTED ||
        ((m->event == DMCE_DISP_EV_MIRRORED || m->event == DMCE_DISP_EV_MIRROR_ADOPTED) &&
         !m->peer))
        return -EBADMSG;
    return 0;
}

void dmce_disp_peer_req_encode(uint32_t daemon, uint32_t block, uint8_t *out)
{
    dmce_put_le32(out, daemon);
    dmce_put_le32(out + 4, block);
}

int dmce_disp_peer_req_decode(const uint8_t *in, size_t len, uint32_t *daemon, uint32_t *block)
{
    if (len != DMCE_DISP_PEER_REQ_SIZE)
        return -EBADMSG;
    *daemon = dmce_get_le32(in);
    *block = dmce_get_le32(in + 4);
    return *daemon && *block ? 0 : -EBADMSG;
}

int dmce_disp_peer_resp_encode(uint32_t peer, const char *path, uint8_t *out, size_t cap)
{
    size_t n = strlen(path);
    if (n == 0 || n > DMCE_MSMP_PATH_MAX || cap < DMCE_DISP_PEER_RESP_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, peer);
    dmce_put_le32(out + 4, (uint32_t)n);
    memcpy(out + DMCE_DISP_PEER_RESP_HDR, path, n);
    return (int)(DMCE_DISP_PEER_RESP_HDR + n);
}

int dmce_disp_peer_resp_decode(const uint8_t *in, size_t len, uint32_t *peer,
                               char path[DMCE_MSMP_PATH_MAX + 1])
{
    if (len < DMCE_DISP_PEER_RESP_HDR)
        return -EBADMSG;
    *peer = dmce_get_le32(in);
    uint32_t n = dmce_get_le32(in + 4);
    if (*peer == 0 || (uint64_t)len != DMCE_DISP_PEER_RESP_HDR + (uint64_t)n)
        return -EBADMSG;
    return path_in(in + DMCE_DISP_PEER_RESP_HDR, n, DMCE_MSMP_PATH_MAX, path);
}
