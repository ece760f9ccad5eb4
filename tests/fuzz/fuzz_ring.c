/*
 * fuzz_ring.c - fuzz target for the shared-memory SPSC rings
 * (runtime/ring.h) on a segment given as hostile bytes: the peer is
 * another process and may write anything into the segment, at any time.
 *
 * Input: SCRIPT (64 bytes: 16 operations of 4 bytes) then the segment
 * image. The segment is as large as dmce_ring_segment_size(capacity of
 * the image's header) when that is valid and at most 36 KiB (capacity
 * <= 16 KiB), else the image length: the image is copied into an exactly
 * that large, 64-aligned heap buffer, zero-filled past the image.
 *
 * Both sides attach to the one segment (client and server handles in this
 * process), then the script drives writes, reads, write spans + commits,
 * read spans + consumes, levels, notify, close, wrong-role calls, and the
 * hostile peer: stores of arbitrary values into the positions, the sleeper
 * words and the close flags between calls.
 *
 * Checks:
 *   - attach: 0 or a documented error; a region one byte short of the
 *     header's size never attaches;
 *   - no access outside the segment (ASan); every span lies inside its
 *     ring's data area; counts never exceed what was asked or the
 *     capacity; errors are the documented ones;
 *   - while nobody scribbled on a ring's control words: the exact FIFO
 *     model: levels, short writes and reads are exact, and every byte
 *     written through the API is read back unchanged, in order (the bytes
 *     pending at attach time may be anything).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "fuzz_common.h"
#include "ring.h"

#define SCRIPT_LEN 64u
#define OP_LEN 4u
#define CAP_MAX (16u << 10)
#define SEG_MAX (64u << 10)

/* How deep the inputs got (plain runs print it). */
static unsigned long n_inputs, n_attached, n_scribbled;

typedef struct model {
    dmce_ring_t *prod, *cons;
    uint8_t *data;  /* this ring's data area, from our own arithmetic */
    uint64_t head0; /* head at attach: bytes before it are the image's */
    uint64_t head;  /* what we committed (the producer's truth) */
    uint64_t tail;  /* what we consumed (the consumer's truth) */
    int scribbled;  /* the hostile peer touched the control words */
    int closed;
} model_t;

static uint8_t pat(unsigned ring, uint64_t pos)
{
    return (uint8_t)((pos * 0x9E3779B97F4A7C15ull) >> 56) ^ (uint8_t)(ring * 0x5a);
}

static int is_ring_err(int r)
{
    return r == DMCE_ECORRUPT || r == DMCE_ECLOSED || r == -EBADF || r == -EINVAL;
}

static void check_span(const model_t *m, uint32_t cap, const void *p, size_t len)
{
    const uint8_t *q = p;
    FZ_CHECK(len <= cap);
    FZ_CHECK(q >= m->data && q <= m->data + cap && len <= (size_t)(m->data + cap - q));
}

/* Bytes read at stream positions [from, from+n): ours must be intact. */
static void check_read(const model_t *m, unsigned ring, uint64_t from, const uint8_t *buf, size_t n)
{
    if (m->scribbled)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t p = from + i;
        if (p - m->tail >= m->head0 - m->tail && p - m->head0 < m->head - m->head0)
            FZ_CHECK_EQ(buf[i], pat(ring, p));
    }
}

static void op_write(model_t *m, unsigned ring, uint32_t cap, size_t len, uint8_t *buf)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pat(ring, m->head + i);
    uint64_t fill = m->head - m->tail;
    int r = dmce_ring_write(m->prod, buf, len);
    FZ_CHECK(r >= 0 || is_ring_err(r));
    if (r > 0) {
        FZ_CHECK((size_t)r <= len && (uint32_t)r <= cap);
        m->head += (uint64_t)r;
    }
    if (!m->scribbled) {
        if (m->closed)
            FZ_CHECK(r == DMCE_ECLOSED);
        else
            FZ_CHECK_EQ(r, (int)(len < cap - fill ? len : cap - fill));
    }
}

static void op_read(model_t *m, unsigned ring, uint32_t cap, size_t len, uint8_t *buf)
{
    uint64_t fill = m->head - m->tail;
    int r = dmce_ring_read(m->cons, buf, len);
    FZ_CHECK(r >= 0 || is_ring_err(r));
    if (r > 0) {
        FZ_CHECK((size_t)r <= len && (uint32_t)r <= cap);
        check_read(m, ring, m->tail, buf, (size_t)r);
        m->tail += (uint64_t)r;
    }
    if (!m->scribbled) {
        size_t want = len < fill ? len : (size_t)fill;
        if (m->closed && fill == 0)
            FZ_CHECK(r == DMCE_ECLOSED || (len == 0 && r == 0));
        else
            FZ_CHECK_EQ(r, (int)want);
    }
}

static void op_write_span(model_t *m, unsigned ring, uint32_t cap, uint16_t a)
{
    void *p = NULL;
    size_t len = 0;
    uint64_t fill = m->head - m->tail;
    int r = dmce_ring_write_span(m->prod, &p, &len);
    FZ_CHECK(r == 0 || is_ring_err(r));
    if (r != 0) {
        if (!m->scribbled)
            FZ_CHECK(m->closed && r == DMCE_ECLOSED);
        return;
    }
    check_span(m, cap, p, len);
    if (!m->scribbled) {
        uint32_t idx = (uint32_t)m->head & (cap - 1);
        uint64_t room = cap - fill;
        FZ_CHECK_EQ(len, room < cap - idx ? room : cap - idx);
    }
    size_t n = a % (len + 2); /* sometimes one more than the span: -EINVAL */
    uint8_t *q = p;
    for (size_t i = 0; i < n && i < len; i++)
        q[i] = pat(ring, m->head + i);
    size_t first = (a & 0x8000) ? n / 2 : n; /* commit in one or two pieces */
    int c1 = dmce_ring_commit(m->prod, first);
    if (first > len) {
        FZ_CHECK_EQ(c1, -EINVAL);
        return;
    }
    FZ_CHECK_EQ(c1, 0);
    int c2 = dmce_ring_commit(m->prod, n - first);
    if (n > len) {
        FZ_CHECK_EQ(c2, -EINVAL);
        n = first;
    } else {
        FZ_CHECK_EQ(c2, 0);
    }
    m->head += n;
}

static void op_read_span(model_t *m, unsigned ring, uint32_t cap, uint16_t a)
{
    const void *p = NULL;
    size_t len = 0;
    uint64_t fill = m->head - m->tail;
    int r = dmce_ring_read_span(m->cons, &p, &len);
    FZ_CHECK(r == 0 || is_ring_err(r));
    if (r != 0) {
        if (!m->scribbled)
            FZ_CHECK(m->closed && fill == 0 && r == DMCE_ECLOSED);
        return;
    }
    check_span(m, cap, p, len);
    if (!m->scribbled) {
        uint32_t idx = (uint32_t)m->tail & (cap - 1);
        FZ_CHECK_EQ(len, fill < cap - idx ? fill : cap - idx);
    }
    size_t n = a % (len + 2);
    check_read(m, ring, m->tail, p, n < len ? n : len);
    int c = dmce_ring_consume(m->cons, n);
    if (n > len) {
        FZ_CHECK_EQ(c, -EINVAL);
        return;
    }
    FZ_CHECK_EQ(c, 0);
    m->tail += n;
}

static void op_levels(model_t *m, uint32_t cap)
{
    int rd = dmce_ring_readable(m->cons), wr = dmce_ring_writable(m->prod);
    FZ_CHECK(rd >= 0 || rd == DMCE_ECORRUPT);
    FZ_CHECK(wr >= 0 || wr == DMCE_ECORRUPT);
    FZ_CHECK(rd <= (int)cap && wr <= (int)cap);
    if (!m->scribbled) {
        FZ_CHECK_EQ(rd, (int)(m->head - m->tail));
        FZ_CHECK_EQ(wr, (int)(cap - (m->head - m->tail)));
    }
    /* Wrong roles. */
    FZ_CHECK_EQ(dmce_ring_readable(m->prod), -EBADF);
    FZ_CHECK_EQ(dmce_ring_writable(m->cons), -EBADF);
    FZ_CHECK_EQ(dmce_ring_read(m->prod, NULL, 0), -EBADF);
    FZ_CHECK_EQ(dmce_ring_write(m->cons, NULL, 0), -EBADF);
    dmce_ring_stats_t st;
    dmce_ring_stats(m->prod, &st);
    FZ_CHECK_EQ(st.capacity, cap);
    (void)dmce_ring_peer_asleep(m->prod);
    (void)dmce_ring_peer_asleep(m->cons);
    (void)dmce_ring_closed(m->cons);
}

/* The hostile peer stores into a control word. */
static void op_scribble(model_t *m, dmce_ring_ctl_t *c, uint8_t sel, uint16_t a)
{
    uint64_t v;
    switch ((sel >> 2) % 4) {
    case 0: v = (uint64_t)(int64_t)(int16_t)a; break;            /* near zero */
    case 1: v = (uint64_t)a << 48 | a; break;                    /* far away */
    case 2: v = m->head + (uint64_t)(int64_t)(int16_t)a; break;  /* near head */
    default: v = m->tail + (uint64_t)(int64_t)(int16_t)a; break; /* near tail */
    }
    switch ((sel >> 4) % 4) {
    case 0: atomic_store(&c->head, v); break;
    case 1: atomic_store(&c->tail, v); break;
    case 2:
        atomic_store(&c->data_futex, (uint32_t)v);
        atomic_store(&c->space_futex, (uint32_t)(v >> 8));
        return; /* sleeper words: only wake-ups change */
    default:
        atomic_store(&c->closed, (uint32_t)v & 3u);
        m->closed = ((uint32_t)v & 3u) != 0;
        break;
    }
    m->scribbled = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < SCRIPT_LEN)
        return 0;
    const uint8_t *script = data, *img = data + SCRIPT_LEN;
    size_t ilen = size - SCRIPT_LEN;
    size_t ssize = ilen > SEG_MAX ? SEG_MAX : ilen;
    if (ilen >= 20) {
        uint32_t cap = fz_rd32(img + 16);
        size_t need = dmce_ring_segment_size(cap);
        if (need && cap <= CAP_MAX)
            ssize = need;
    }
    uint8_t *seg = fz_image(img, ilen, ssize, DMCE_RING_ALIGN);
    dmce_ring_pair_t cl, sv;
    n_inputs++;
    int r = dmce_ring_segment_attach(seg, ssize, DMCE_RING_SIDE_CLIENT, &cl);
    FZ_CHECK(r == 0 || r == -EINVAL || r == DMCE_EBADMAGIC || r == DMCE_EVERSION ||
             r == DMCE_ELAYOUT || r == DMCE_ECORRUPT);
    if (r != 0)
        goto out;
    FZ_CHECK_EQ(dmce_ring_segment_attach(seg, ssize, DMCE_RING_SIDE_SERVER, &sv), 0);
    n_attached++;
    const dmce_ring_seg_hdr_t *h = (const dmce_ring_seg_hdr_t *)seg;
    uint32_t cap = h->capacity;
    FZ_CHECK(dmce_ring_segment_size(cap) != 0 && dmce_ring_segment_size(cap) <= ssize);
    FZ_CHECK(dmce_ring_segment_attach(seg, dmce_ring_segment_size(cap) - 1, DMCE_RING_SIDE_CLIENT,
                                      &cl) != 0);
    FZ_CHECK(dmce_ring_segment_attach(seg, ssize, (dmce_ring_side_t)2, &cl) == -EINVAL);

    dmce_ring_ctl_t *ctl[2];
    model_t m[2];
    for (unsigned i = 0; i < 2; i++) {
        ctl[i] =
            (dmce_ring_ctl_t *)(seg + sizeof(dmce_ring_seg_hdr_t) + i * sizeof(dmce_ring_ctl_t));
        m[i].prod = i == DMCE_RING_C2S ? &cl.tx : &sv.tx;
        m[i].cons = i == DMCE_RING_C2S ? &sv.rx : &cl.rx;
        m[i].data = seg + DMCE_RING_DATA_OFFSET + (size_t)i * cap;
        m[i].head0 = m[i].head = atomic_load(&ctl[i]->head);
        m[i].tail = atomic_load(&ctl[i]->tail);
        m[i].scribbled = 0;
        m[i].closed = atomic_load(&ctl[i]->closed) != 0;
        FZ_CHECK(m[i].head - m[i].tail <= cap);
    }
    size_t blen = 2 * (size_t)cap + 8;
    uint8_t *buf = malloc(blen);
    FZ_CHECK(buf != NULL);

    fz_in_t in = {script, SCRIPT_LEN, 0};
    for (unsigned k = 0; k < SCRIPT_LEN / OP_LEN; k++) {
        uint8_t op = fz_u8(&in), sel = fz_u8(&in);
        uint16_t a = fz_u16(&in);
        unsigned ring = sel & 1;
        model_t *mr = &m[ring];
        size_t len = (sel & 2) ? a % (blen + 1) : a % 64u;
        switch (op % 16) {
        case 0:
        case 1:
        case 2: op_write(mr, ring, cap, len, buf); break;
        case 3:
        case 4:
        case 5: op_read(mr, ring, cap, len, buf); break;
        case 6:
        case 7: op_write_span(mr, ring, cap, a); break;
        case 8:
        case 9: op_read_span(mr, ring, cap, a); break;
        case 10: op_levels(mr, cap); break;
        case 11:
        case 12: op_scribble(mr, ctl[ring], sel, a); break;
        case 13: /* the header changes under us: handles keep their own capacity */
            seg[16 + (a % 48)] ^= (uint8_t)(sel | 1);
            break;
        case 14: FZ_CHECK(dmce_ring_notify((sel & 2) ? mr->prod : mr->cons) <= 2); break;
        default:
            dmce_ring_close((sel & 2) ? mr->prod : mr->cons);
            mr->closed = 1;
            break;
        }
    }
    n_scribbled += (unsigned long)(m[0].scribbled | m[1].scribbled);
    /* Drain what is left: ours must come out intact. */
    for (unsigned i = 0; i < 2; i++)
        op_read(&m[i], i, cap, blen, buf);
    free(buf);
out:
    free(seg);
    return 0;
}

#ifndef DMCE_LIBFUZZER
static void report(void)
{
    printf("fuzz_ring: %lu inputs, %lu attached, %lu with a hostile peer\n", n_inputs, n_attached,
           n_scribbled);
}
#define FZ_REPORT report
#define FZ_NAME "ring"
#define FZ_MAX_LEN 1024
#include "fuzz_driver.h"
#endif
