/*
 * fuzz_msmp.c - fuzz target for every MSMP decoder (runtime/msmp.h).
 *
 * Built two ways:
 *   - with clang -fsanitize=fuzzer (cmake -DDMCE_FUZZ=ON, target
 *     dmce-fuzz-msmp): libFuzzer drives LLVMFuzzerTestOneInput;
 *   - as a plain program (ctest "msmp_fuzz"): replays the corpus and the
 *     regression inputs, then a bounded, seeded random and mutation run
 *     over the same function (fuzz_driver.h), so every test run exercises
 *     the decoders on hostile input under the sanitizers.
 *
 * The input is used twice:
 *   1. as a frame: header, then the payload decoded by the request or the
 *      response decoder of the header's op (the way a daemon or a client
 *      reads it), whatever the payload length;
 *   2. as a bare payload, given to every payload decoder.
 * Checks: no decoder reads outside its input (ASan); every accepted header
 * respects the limits; every decoder that accepts its input gives back
 * the same bytes through its encoder; accepted values satisfy what the
 * decoder promises (ranges, reserved fields zero).
 *
 * Coverage: setup (req, resp), malloc / free (u64), read (req), write
 * (req), stats (resp), map (req, resp). ring_open (op 9) has only its
 * payload sizes in msmp.h so far, no decoder: its frames go through the
 * header decoder and the size rules below; add its decoders here when
 * msmp.h gets them. Responses of read (raw bytes), write (8 bytes) and
 * free / disconnect (empty) have no decoder either.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "fuzz_common.h"
#include "msmp.h"

/* Each payload decoder on (p, n); on success, its re-encoding equals the input. */
static void setup_req(const uint8_t *p, size_t n)
{
    dmce_msmp_setup_req_t m;
    int r = dmce_msmp_setup_req_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_SETUP_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK((m.flags & ~3u) == 0);
        dmce_msmp_setup_req_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void setup_resp(const uint8_t *p, size_t n)
{
    dmce_msmp_setup_resp_t m;
    int r = dmce_msmp_setup_resp_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_SETUP_RESP_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK(m.block_first <= m.block_last);
        FZ_CHECK(m.max_payload >= 4096 && m.max_payload <= DMCE_MSMP_PAYLOAD_LIMIT);
        dmce_msmp_setup_resp_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void u64(const uint8_t *p, size_t n)
{
    uint64_t v;
    int r = dmce_msmp_u64_decode(p, n, &v);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_U64_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        dmce_msmp_u64_encode(v, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void read_req(const uint8_t *p, size_t n)
{
    dmce_msmp_rw_req_t m;
    int r = dmce_msmp_read_req_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_RW_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK_EQ(m.reserved, 0);
        dmce_msmp_rw_req_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void write_req(const uint8_t *p, size_t n)
{
    dmce_msmp_rw_req_t m;
    int r = dmce_msmp_write_req_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_RW_REQ_SIZE];
        FZ_CHECK_EQ((uint64_t)m.len + DMCE_MSMP_WRITE_HDR, n);
        FZ_CHECK_EQ(m.reserved, 0);
        dmce_msmp_rw_req_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void map_req(const uint8_t *p, size_t n)
{
    dmce_msmp_map_req_t m;
    int r = dmce_msmp_map_req_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_MAP_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK((m.flags & ~DMCE_MSMP_MAP_WANT_FD) == 0 && m.reserved == 0);
        dmce_msmp_map_req_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void map_resp(const uint8_t *p, size_t n)
{
    dmce_msmp_map_resp_t m;
    int r = dmce_msmp_map_resp_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_MAP_RESP_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        /* What a client relies on before it maps anything. */
        FZ_CHECK((m.flags & ~DMCE_MSMP_MAP_FD) == 0 && m.reserved == 0);
        FZ_CHECK(m.data_offset < m.block_size);
        FZ_CHECK(m.alloc_cell >= m.data_offset && m.alloc_cell <= m.block_size);
        FZ_CHECK(m.alloc_size <= m.block_size - m.alloc_cell);
        FZ_CHECK(m.page_size >= 4096 && (m.page_size & (m.page_size - 1)) == 0);
        dmce_msmp_map_resp_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void ring_req(const uint8_t *p, size_t n)
{
    dmce_msmp_ring_req_t m;
    int r = dmce_msmp_ring_req_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_RING_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK_EQ(m.flags, 0);
        dmce_msmp_ring_req_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void ring_resp(const uint8_t *p, size_t n)
{
    dmce_msmp_ring_resp_t m;
    int r = dmce_msmp_ring_resp_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_RING_RESP_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        /* What a client relies on before it maps the segment. */
        FZ_CHECK(m.flags == 0 && m.capacity >= 4096 && m.capacity <= (1u << 30));
        FZ_CHECK((m.capacity & (m.capacity - 1)) == 0 && m.seg_size > 2ull * m.capacity);
        dmce_msmp_ring_resp_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void stats(const uint8_t *p, size_t n)
{
    uint64_t v[DMCE_STAT_COUNT_];
    int r = dmce_msmp_stats_decode(p, n, v);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        /* A newer peer may send more values: ours are the first ones. */
        FZ_CHECK(n >= DMCE_MSMP_STATS_SIZE && (n - 8) % 8 == 0);
        FZ_CHECK_EQ(dmce_get_le32(p), (n - 8) / 8);
        uint8_t b[DMCE_MSMP_STATS_SIZE];
        dmce_msmp_stats_encode(v, b);
        FZ_CHECK(memcmp(b + 8, p + 8, sizeof b - 8) == 0);
        FZ_CHECK_EQ(dmce_get_le32(p + 4), 0); /* reserved, as for every decoder (msmp.h) */
    }
}

/* The payload of a decoded frame, as the receiver of that op reads it. */
static void frame_payload(const dmce_msmp_hdr_t *h, const uint8_t *p, size_t n)
{
    int resp = h->flags & DMCE_MSMP_FLAG_RESPONSE;
    switch (h->op) {
    case DMCE_MSMP_OP_SETUP: resp ? setup_resp(p, n) : setup_req(p, n); break;
    case DMCE_MSMP_OP_MALLOC: u64(p, n); break;
    case DMCE_MSMP_OP_READ:
        if (!resp)
            read_req(p, n);
        break;
    case DMCE_MSMP_OP_WRITE:
        if (!resp)
            write_req(p, n);
        break;
    case DMCE_MSMP_OP_FREE:
        if (!resp)
            u64(p, n);
        break;
    case DMCE_MSMP_OP_STATS:
        if (resp)
            stats(p, n);
        break;
    case DMCE_MSMP_OP_MAP: resp ? map_resp(p, n) : map_req(p, n); break;
    case DMCE_MSMP_OP_RING_OPEN: resp ? ring_resp(p, n) : ring_req(p, n); break;
    default: /* unknown ops are answered with -EOPNOTSUPP; the name lookup must cope */
        FZ_CHECK(dmce_msmp_op_name(h->op) != NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. A frame, against the default and against the largest max payload. */
    if (size >= DMCE_MSMP_HDR_SIZE) {
        static const uint32_t maxes[] = {DMCE_MSMP_PAYLOAD_DEFAULT, UINT32_MAX};
        for (unsigned i = 0; i < 2; i++) {
            dmce_msmp_hdr_t h;
            int r = dmce_msmp_hdr_decode(data, maxes[i], &h);
            FZ_CHECK(r == 0 || r == DMCE_EBADMAGIC || r == DMCE_EVERSION || r == -EPROTO ||
                     r == -EMSGSIZE);
            /* The request ID is decoded even on an error (for the error reply). */
            FZ_CHECK_EQ(h.req_id, dmce_get_le64(data + 8));
            if (r != 0)
                continue;
            FZ_CHECK(h.len <= maxes[i] && h.len <= DMCE_MSMP_PAYLOAD_LIMIT);
            FZ_CHECK((h.flags & ~DMCE_MSMP_FLAG_RESPONSE) == 0);
            FZ_CHECK(dmce_msmp_op_name(h.op) != NULL);
            uint8_t back[DMCE_MSMP_HDR_SIZE];
            dmce_msmp_hdr_encode(&h, back);
            FZ_CHECK(memcmp(back, data, DMCE_MSMP_HDR_SIZE) == 0);
            if (i == 0) {
                /* The payload the header announces, or what there is of it. */
                size_t avail = size - DMCE_MSMP_HDR_SIZE;
                size_t n = h.len < avail ? h.len : avail;
                frame_payload(&h, data + DMCE_MSMP_HDR_SIZE, n);
            }
        }
    }
    /* 2. Every payload decoder sees the whole input as a payload. */
    setup_req(data, size);
    setup_resp(data, size);
    u64(data, size);
    read_req(data, size);
    write_req(data, size);
    map_req(data, size);
    map_resp(data, size);
    ring_req(data, size);
    ring_resp(data, size);
    stats(data, size);
    return 0;
}

#ifndef DMCE_LIBFUZZER
#define FZ_NAME "msmp"
#define FZ_MAX_LEN 512
#include "fuzz_driver.h"
#endif
