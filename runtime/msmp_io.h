/*
 * msmp_io.h - the input and output buffers of an MSMP server connection:
 * frames arrive in pieces of any size and leave as responses appended one
 * after the other. Used by dmce-memd's workers and dmce-dispatcher.
 *
 * An inbuf holds received bytes [off, len) of buf; the frame at off is
 * handled in place (no copy) once it is whole. An outbuf holds responses
 * not yet sent, [off, len) of buf. Neither does any I/O: the server reads
 * into dmce_inbuf_room() and writes from dmce_outbuf_data(), over a socket
 * or a ring. Not thread-safe: a connection belongs to one thread.
 */
#ifndef DMCE_RUNTIME_MSMP_IO_H
#define DMCE_RUNTIME_MSMP_IO_H

#include <stddef.h>
#include <stdint.h>

#include "msmp.h"

typedef struct dmce_inbuf {
    uint8_t *buf;
    size_t cap, len, off;
} dmce_inbuf_t;

typedef struct dmce_outbuf {
    uint8_t *buf;
    size_t cap, len, off;
} dmce_outbuf_t;

/*
 * Room for `need` bytes from off on (at least `chunk` when it grows):
 * compacts, then grows. 0 or -ENOMEM.
 */
int dmce_inbuf_reserve(dmce_inbuf_t *ib, size_t need, size_t chunk);

/* Where the next bytes go, and how many fit. */
static inline uint8_t *dmce_inbuf_room(dmce_inbuf_t *ib, size_t *n)
{
    *n = ib->cap - ib->len;
    return ib->buf + ib->len;
}

/* n bytes were received into the room. */
static inline void dmce_inbuf_filled(dmce_inbuf_t *ib, size_t n)
{
    ib->len += n;
}

/*
 * The frame at the head of the buffer: 1 when it is whole (*h decoded,
 * *payload points at its h->len payload bytes, valid until the buffer
 * changes), 0 when more bytes are needed (*need: the whole frame's size
 * from off, or the header's), or the header's error (*h decoded as far as
 * it goes: its request ID answers the error).
 */
int dmce_inbuf_frame(const dmce_inbuf_t *ib, uint32_t max_payload, dmce_msmp_hdr_t *h,
                     const uint8_t **payload, size_t *need);

/* The frame at the head (n bytes) is handled. */
void dmce_inbuf_consume(dmce_inbuf_t *ib, size_t n);

/* Bytes held but not handled. */
static inline size_t dmce_inbuf_pending(const dmce_inbuf_t *ib)
{
    return ib->len - ib->off;
}

/* When nothing is held: release a buffer larger than keep bytes. */
void dmce_inbuf_trim(dmce_inbuf_t *ib, size_t keep);
void dmce_inbuf_free(dmce_inbuf_t *ib);

/*
 * Append a response to request `req` with `status` and `len` payload
 * bytes: returns where the payload goes (write exactly len bytes), or NULL
 * when out of memory.
 */
uint8_t *dmce_outbuf_reply(dmce_outbuf_t *ob, const dmce_msmp_hdr_t *req, int status,
                           uint32_t len);

/* The bytes to send next, and that n of them were sent. */
static inline const uint8_t *dmce_outbuf_data(const dmce_outbuf_t *ob, size_t *n)
{
    *n = ob->len - ob->off;
    return ob->buf + ob->off;
}

static inline void dmce_outbuf_sent(dmce_outbuf_t *ob, size_t n)
{
    ob->off += n;
}

/* Bytes appended but not sent. */
static inline size_t dmce_outbuf_pending(const dmce_outbuf_t *ob)
{
    return ob->len - ob->off;
}

/* Everything was sent: start over at 0, release a buffer larger than keep. */
void dmce_outbuf_reset(dmce_outbuf_t *ob, size_t keep);
void dmce_outbuf_free(dmce_outbuf_t *ob);

#endif /* DMCE_RUNTIME_MSMP_IO_H */
