/*
 * msmp_store.c - codec of the session store's MSMP operations; see
 * msmp_store.h and docs/msmp.md.
 *
 * Written for hostile input like msmp.c: every decoder checks the payload
 * size before reading a byte, adds announced lengths in 64 bits (a 32-bit
 * peer's size_t cannot wrap them), and rejects unknown flag bits and
 * non-zero reserved fields so that they stay usable later.
 */
#include "msmp_store.h"

#include <errno.h>
#include <string.h>

#include <dmce/error.h>

#include "msmp.h"

void dmce_msmp_store_format_req_encode(const dmce_msmp_store_format_req_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->addr);
    dmce_put_le32(out + 8, m->max_key);
    dmce_put_le32(out + 12, m->max_value);
    dmce_put_le32(out + 16, m->max_handles);
    dmce_put_le32(out + 20, m->stripes);
    dmce_put_le32(out + 24, m->buckets);
    dmce_put_le32(out + 28, m->flags);
    dmce_put_le64(out + 32, m->default_ttl_ms);
}

int dmce_msmp_store_format_req_decode(const uint8_t *in, size_t len,
                                      dmce_msmp_store_format_req_t *m)
{
    if (len != DMCE_MSMP_STORE_FORMAT_REQ_SIZE)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->max_key = dmce_get_le32(in + 8);
    m->max_value = dmce_get_le32(in + 12);
    m->max_handles = dmce_get_le32(in + 16);
    m->stripes = dmce_get_le32(in + 20);
    m->buckets = dmce_get_le32(in + 24);
    m->flags = dmce_get_le32(in + 28);
    m->default_ttl_ms = dmce_get_le64(in + 32);
    return (m->flags & ~DMCE_MSMP_STORE_EVICT) ? -EBADMSG : 0;
}

void dmce_msmp_store_info_encode(const dmce_msmp_store_info_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->size);
    dmce_put_le64(out + 8, m->table_id);
    dmce_put_le32(out + 16, m->max_key);
    dmce_put_le32(out + 20, m->max_value);
    dmce_put_le32(out + 24, m->max_handles);
    dmce_put_le32(out + 28, m->stripes);
    dmce_put_le32(out + 32, m->flags);
    dmce_put_le32(out + 36, 0);
    dmce_put_le64(out + 40, m->default_ttl_ms);
}

int dmce_msmp_store_info_decode(const uint8_t *in, size_t len, dmce_msmp_store_info_t *m)
{
    if (len != DMCE_MSMP_STORE_INFO_SIZE)
        return -EBADMSG;
    m->size = dmce_get_le64(in);
    m->table_id = dmce_get_le64(in + 8);
    m->max_key = dmce_get_le32(in + 16);
    m->max_value = dmce_get_le32(in + 20);
    m->max_handles = dmce_get_le32(in + 24);
    m->stripes = dmce_get_le32(in + 28);
    m->flags = dmce_get_le32(in + 32);
    m->reserved = dmce_get_le32(in + 36);
    m->default_ttl_ms = dmce_get_le64(in + 40);
    if (m->reserved || (m->flags & ~DMCE_MSMP_STORE_EVICT) || m->max_key == 0 || m->size == 0)
        return -EBADMSG;
    return 0;
}

int dmce_msmp_store_addr_decode(const uint8_t *in, size_t len, uint64_t *addr)
{
    if (len != DMCE_MSMP_STORE_ADDR_SIZE)
        return -EBADMSG;
    *addr = dmce_get_le64(in);
    return 0;
}

void dmce_msmp_store_get_req_encode(const dmce_msmp_store_get_req_t *m, uint8_t *hdr)
{
    dmce_put_le64(hdr, m->addr);
    dmce_put_le32(hdr + 8, m->klen);
    dmce_put_le32(hdr + 12, m->cap);
}

int dmce_msmp_store_get_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_get_req_t *m)
{
    if (len < DMCE_MSMP_STORE_GET_REQ_HDR)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->klen = dmce_get_le32(in + 8);
    m->cap = dmce_get_le32(in + 12);
    if ((uint64_t)len != (uint64_t)DMCE_MSMP_STORE_GET_REQ_HDR + m->klen)
        return -EBADMSG;
    m->key = in + DMCE_MSMP_STORE_GET_REQ_HDR;
    return 0;
}

void dmce_msmp_store_get_resp_encode(const dmce_msmp_store_get_resp_t *m, uint8_t *hdr)
{
    dmce_put_le64(hdr, m->version);
    dmce_put_le64(hdr + 8, m->expire_ms);
    dmce_put_le32(hdr + 16, m->vlen);
    dmce_put_le32(hdr + 20, m->flags);
}

int dmce_msmp_store_get_resp_decode(const uint8_t *in, size_t len, dmce_msmp_store_get_resp_t *m)
{
    if (len < DMCE_MSMP_STORE_GET_RESP_HDR)
        return -EBADMSG;
    m->version = dmce_get_le64(in);
    m->expire_ms = dmce_get_le64(in + 8);
    m->vlen = dmce_get_le32(in + 16);
    m->flags = dmce_get_le32(in + 20);
    if (m->flags & ~DMCE_MSMP_STORE_GET_VALUE)
        return -EBADMSG;
    uint64_t want = DMCE_MSMP_STORE_GET_RESP_HDR;
    if (m->flags & DMCE_MSMP_STORE_GET_VALUE)
        want += m->vlen;
    if ((uint64_t)len != want)
        return -EBADMSG;
    m->value = (m->flags & DMCE_MSMP_STORE_GET_VALUE) ? in + DMCE_MSMP_STORE_GET_RESP_HDR : NULL;
    return 0;
}

void dmce_msmp_store_set_req_encode(const dmce_msmp_store_set_req_t *m, uint8_t *hdr)
{
    dmce_put_le64(hdr, m->addr);
    dmce_put_le64(hdr + 8, m->ttl_ms);
    dmce_put_le64(hdr + 16, m->cas_version);
    dmce_put_le32(hdr + 24, m->flags);
    dmce_put_le32(hdr + 28, m->klen);
    dmce_put_le32(hdr + 32, m->vlen);
    dmce_put_le32(hdr + 36, 0);
}

int dmce_msmp_store_set_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_set_req_t *m)
{
    if (len < DMCE_MSMP_STORE_SET_REQ_HDR)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->ttl_ms = dmce_get_le64(in + 8);
    m->cas_version = dmce_get_le64(in + 16);
    m->flags = dmce_get_le32(in + 24);
    m->klen = dmce_get_le32(in + 28);
    m->vlen = dmce_get_le32(in + 32);
    m->reserved = dmce_get_le32(in + 36);
    if (m->reserved || (m->flags & ~(DMCE_MSMP_STORE_SET_NX | DMCE_MSMP_STORE_SET_XX)))
        return -EBADMSG;
    if ((uint64_t)len != (uint64_t)DMCE_MSMP_STORE_SET_REQ_HDR + m->klen + m->vlen)
        return -EBADMSG;
    m->key = in + DMCE_MSMP_STORE_SET_REQ_HDR;
    m->value = m->key + m->klen;
    return 0;
}

void dmce_msmp_store_key_req_encode(const dmce_msmp_store_key_req_t *m, uint8_t *hdr)
{
    dmce_put_le64(hdr, m->addr);
    dmce_put_le64(hdr + 8, m->arg);
    dmce_put_le32(hdr + 16, m->klen);
    dmce_put_le32(hdr + 20, 0);
}

int dmce_msmp_store_key_req_decode(const uint8_t *in, size_t len, dmce_msmp_store_key_req_t *m)
{
    if (len < DMCE_MSMP_STORE_KEY_REQ_HDR)
        return -EBADMSG;
    m->addr = dmce_get_le64(in);
    m->arg = dmce_get_le64(in + 8);
    m->klen = dmce_get_le32(in + 16);
    m->reserved = dmce_get_le32(in + 20);
    if (m->reserved || (uint64_t)len != (uint64_t)DMCE_MSMP_STORE_KEY_REQ_HDR + m->klen)
        return -EBADMSG;
    m->key = in + DMCE_MSMP_STORE_KEY_REQ_HDR;
    return 0;
}

void dmce_msmp_store_stats_encode(const uint64_t *values, uint8_t *out)
{
    dmce_put_le32(out, DMCE_STORE_STAT_COUNT_);
    dmce_put_le32(out + 4, 0);
    for (unsigned i = 0; i < DMCE_STORE_STAT_COUNT_; i++)
        dmce_put_le64(out + 8 + 8 * i, values[i]);
}

int dmce_msmp_store_stats_decode(const uint8_t *in, size_t len, uint64_t *values)
{
    if (len < 8)
        return -EBADMSG;
    uint32_t count = dmce_get_le32(in);
    if (count < DMCE_STORE_STAT_COUNT_ || (uint64_t)len != 8u + 8ull * count ||
        dmce_get_le32(in + 4) != 0)
        return -EBADMSG;
    for (unsigned i = 0; i < DMCE_STORE_STAT_COUNT_; i++)
        values[i] = dmce_get_le64(in + 8 + 8 * i);
    return 0;
}

int dmce_msmp_store_status(unsigned op, int rc)
{
    int keyed = op == DMCE_MSMP_OP_STORE_GET || op == DMCE_MSMP_OP_STORE_SET ||
                op == DMCE_MSMP_OP_STORE_DEL || op == DMCE_MSMP_OP_STORE_TOUCH;
    switch (rc) {
    case DMCE_EBADMAGIC: return DMCE_ENOTSTORE; /* the table's attach: no table there */
    case DMCE_EVERSION:
    case DMCE_ELAYOUT: return DMCE_ESTOREVERSION;
    case DMCE_ECORRUPT:
        return keyed ? DMCE_EBADENTRY : rc; /* one key's record or chain; else the table */
    case -ENOSPC: return op == DMCE_MSMP_OP_STORE_SET ? DMCE_ESTOREFULL : rc;
    case -ESTALE:
        return (op == DMCE_MSMP_OP_STORE_SET || op == DMCE_MSMP_OP_STORE_DEL) ? DMCE_ECASFAIL : rc;
    default: return rc;
    }
}
