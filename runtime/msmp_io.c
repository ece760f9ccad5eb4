/*
 * msmp_io.c - MSMP server connection buffers; see msmp_io.h.
 */
#include "msmp_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int dmce_inbuf_reserve(dmce_inbuf_t *ib, size_t need, size_t chunk)
{
    if (ib->off && ib->off == ib->len)
        ib->off = ib->len = 0;
    if (ib->off + need <= ib->cap)
        return 0;
    if (ib->off) {
        memmove(ib->buf, ib->buf + ib->off, ib->len - ib->off);
        ib->len -= ib->off;
        ib->off = 0;
        if (need <= ib->cap)
            return 0;
    }
    size_t cap = DMCE_MAX(need, chunk);
    uint8_t *p = realloc(ib->buf, cap);
    if (!p)
        return -ENOMEM;
    ib->buf = p;
    ib->cap = cap;
    return 0;
}

int dmce_inbuf_frame(const dmce_inbuf_t *ib, uint32_t max_payload, dmce_msmp_hdr_t *h,
                     const uint8_t **payload, size_t *need)
{
    size_t avail = ib->len - ib->off;
    *need = DMCE_MSMP_HDR_SIZE;
    if (avail < DMCE_MSMP_HDR_SIZE)
        return 0;
    const uint8_t *f = ib->buf + ib->off;
    int r = dmce_msmp_hdr_decode(f, max_payload, h);
    if (r < 0)
        return r;
    *need = DMCE_MSMP_HDR_SIZE + (size_t)h->len;
    if (avail < *need)
        return 0;
    *payload = f + DMCE_MSMP_HDR_SIZE;
    return 1;
}

void dmce_inbuf_consume(dmce_inbuf_t *ib, size_t n)
{
    ib->off += n;
    if (ib->off == ib->len)
        ib->off = ib->len = 0;
}

void dmce_inbuf_trim(dmce_inbuf_t *ib, size_t keep)
{
    if (ib->off == ib->len && ib->cap > keep) {
        free(ib->buf);
        ib->buf = NULL;
        ib->cap = ib->len = ib->off = 0;
    }
}

void dmce_inbuf_free(dmce_inbuf_t *ib)
{
    free(ib->buf);
    memset(ib, 0, sizeof(*ib));
}

uint8_t *dmce_outbuf_reply(dmce_outbuf_t *ob, const dmce_msmp_hdr_t *req, int status,
                           uint32_t len)
{
    size_t more = DMCE_MSMP_HDR_SIZE + (size_t)len;
    if (ob->len + more > ob->cap) {
        size_t cap = DMCE_MAX(DMCE_MAX(ob->cap * 2, ob->len + more), (size_t)4096);
        uint8_t *p = realloc(ob->buf, cap);
        if (!p)
            return NULL;
        ob->buf = p;
        ob->cap = cap;
    }
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                         .version = DMCE_MSMP_VERSION,
                         .flags = DMCE_MSMP_FLAG_RESPONSE,
                         .op = req->op,
                         .req_id = req->req_id,
                         .len = len,
                         .status = status};
    dmce_msmp_hdr_encode(&h, ob->buf + ob->len);
    uint8_t *p = ob->buf + ob->len + DMCE_MSMP_HDR_SIZE;
    ob->len += more;
    return p;
}

void dmce_outbuf_reset(dmce_outbuf_t *ob, size_t keep)
{
    ob->off = ob->len = 0;
    if (ob->cap > keep) {
        free(ob->buf);
        ob->buf = NULL;
        ob->cap = 0;
    }
}

void dmce_outbuf_free(dmce_outbuf_t *ob)
{
    free(ob->buf);
    memset(ob, 0, sizeof(*ob));
}
