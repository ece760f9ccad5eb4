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
 * (req), stats (resp), map (req, resp), ring_open (req, resp); the
 * mirroring ops between daemons and the dispatcher (msmp.h): persist
 * (range), mirror_create, mirror_start, mirror_adopt, promote (block req), drop, blocks
 * (count and every entry); and every dispatcher op (msmp_dispatch.h):
 * register (req, resp), heartbeat (member and monitor pulse), directory
 * (header, every daemon and block entry), pick, session (u32 resp),
 * block_event, mirror_peer (req, resp), disp_stats (values). Dispatcher
 * decoders are also checked the other way: decode, encode, decode gives
 * the same struct. Responses of read (raw bytes), write (8 bytes) and
 * free / disconnect (empty), and the directory request (8 bytes, read in
 * place by the dispatcher), have no decoder.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "fuzz_common.h"
#include "msmp.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"

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

/* ---- mirroring ops (msmp.h): dispatcher <-> daemons, daemon <-> daemon ---------------------- */

static void range(const uint8_t *p, size_t n)
{
    dmce_msmp_range_t m;
    int r = dmce_msmp_range_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_RANGE_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        dmce_msmp_range_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

/* A persist request: 1..DMCE_MSMP_PERSIST_MAX ranges, each encodes back to its bytes. */
static void ranges(const uint8_t *p, size_t n)
{
    dmce_msmp_range_t m[DMCE_MSMP_PERSIST_MAX];
    unsigned k = 0;
    int r = dmce_msmp_ranges_decode(p, n, m, DMCE_MSMP_PERSIST_MAX, &k);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        FZ_CHECK(k >= 1 && k <= DMCE_MSMP_PERSIST_MAX);
        FZ_CHECK_EQ(n, (size_t)k * DMCE_MSMP_RANGE_SIZE);
        for (unsigned i = 0; i < k; i++) {
            uint8_t b[DMCE_MSMP_RANGE_SIZE];
            dmce_msmp_range_encode(&m[i], b);
            FZ_CHECK(memcmp(b, p + (size_t)i * DMCE_MSMP_RANGE_SIZE, sizeof b) == 0);
        }
    }
    range(p, n); /* the one-range decoder takes exactly one */
}

static void mirror_create(const uint8_t *p, size_t n)
{
    dmce_msmp_mirror_create_t m;
    int r = dmce_msmp_mirror_create_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_MIRROR_CREATE_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK(m.block != 0 && m.size != 0 && m.size % 4096 == 0);
        dmce_msmp_mirror_create_encode(&m, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void mirror_adopt(const uint8_t *p, size_t n)
{
    dmce_msmp_mirror_adopt_t m;
    int r = dmce_msmp_mirror_adopt_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        /* a name the daemon can hand to open(): NUL-terminated, no NUL inside */
        size_t len = strnlen(m.name, sizeof m.name);
        FZ_CHECK(len >= 1 && len <= DMCE_MSMP_NAME_MAX);
        FZ_CHECK_EQ(n, DMCE_MSMP_MIRROR_ADOPT_HDR + len);
        FZ_CHECK(m.block != 0 && m.primary != 0 && m.size != 0 && m.size % 4096 == 0);
        uint8_t b[DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX];
        int k = dmce_msmp_mirror_adopt_encode(&m, b, sizeof b);
        FZ_CHECK_EQ(k, n);
        FZ_CHECK(memcmp(b, p, n) == 0);
    }
}

static void mirror_start(const uint8_t *p, size_t n)
{
    dmce_msmp_mirror_start_t m;
    int r = dmce_msmp_mirror_start_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        /* a path the daemon can hand to connect(): NUL-terminated, no NUL inside */
        size_t len = strnlen(m.path, sizeof m.path);
        FZ_CHECK(len >= 1 && len <= DMCE_MSMP_PATH_MAX);
        FZ_CHECK_EQ(n, DMCE_MSMP_MIRROR_START_HDR + len);
        FZ_CHECK(m.block != 0 && m.flags == 0);
        uint8_t b[DMCE_MSMP_MIRROR_START_HDR + DMCE_MSMP_PATH_MAX];
        int k = dmce_msmp_mirror_start_encode(&m, b, sizeof b);
        FZ_CHECK_EQ(k, n);
        FZ_CHECK(memcmp(b, p, n) == 0);
    }
}

static void block_req(const uint8_t *p, size_t n)
{
    uint32_t block;
    int r = dmce_msmp_block_req_decode(p, n, &block);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_BLOCK_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK(block != 0);
        dmce_msmp_block_req_encode(block, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void drop_req(const uint8_t *p, size_t n)
{
    uint32_t block, flags;
    int r = dmce_msmp_drop_req_decode(p, n, &block, &flags);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_MSMP_BLOCK_REQ_SIZE];
        FZ_CHECK_EQ(n, sizeof b);
        FZ_CHECK(block != 0 && (flags & ~DMCE_MSMP_DROP_KEEP) == 0);
        dmce_msmp_drop_req_encode(block, flags, b);
        FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    }
}

static void blocks_resp(const uint8_t *p, size_t n)
{
    uint32_t count;
    int r = dmce_msmp_blocks_count(p, n, &count);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK_EQ(n, 8 + (uint64_t)count * DMCE_MSMP_BLOCK_INFO_SIZE);
    for (uint32_t i = 0; i <= count; i++) {
        dmce_msmp_block_info_t m;
        r = dmce_msmp_block_info_decode(p, n, i, &m);
        if (i == count) { /* one past the end: refused, never read */
            FZ_CHECK_EQ(r, -EINVAL);
            break;
        }
        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r != 0)
            continue;
        FZ_CHECK(m.block != 0 && m.role <= 1 && m.mirror_state <= 2);
        uint8_t b[DMCE_MSMP_BLOCK_INFO_SIZE];
        dmce_msmp_block_info_encode(&m, b);
        FZ_CHECK(memcmp(b, p + 8 + (size_t)i * DMCE_MSMP_BLOCK_INFO_SIZE, sizeof b) == 0);
    }
}

/* ---- the dispatcher's ops (msmp_dispatch.h) ---------------------------------------------- */

static void disp_register(const uint8_t *p, size_t n)
{
    dmce_disp_register_t m;
    int r = dmce_disp_register_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    size_t len = strnlen(m.path, sizeof m.path);
    FZ_CHECK(len >= 1 && len <= DMCE_MSMP_PATH_MAX);
    FZ_CHECK_EQ(n, DMCE_DISP_REGISTER_HDR + len);
    FZ_CHECK(m.daemon_id >= 1 && m.daemon_id <= 4095 && m.flags == 0 && m.layout <= 1);
    FZ_CHECK(m.max_blocks >= 1 && m.block_size >= 1 && m.numa_node >= -1);
    uint8_t b[DMCE_DISP_REGISTER_HDR + DMCE_MSMP_PATH_MAX];
    int k = dmce_disp_register_encode(&m, b, sizeof b);
    FZ_CHECK_EQ(k, n);
    FZ_CHECK(memcmp(b, p, n) == 0);
    dmce_disp_register_t m2;
    FZ_CHECK_EQ(dmce_disp_register_decode(b, (size_t)k, &m2), 0);
    FZ_CHECK(m2.daemon_id == m.daemon_id && m2.pid == m.pid && m2.numa_node == m.numa_node &&
             m2.flags == m.flags && m2.capacity == m.capacity && m2.block_size == m.block_size &&
             m2.max_blocks == m.max_blocks && m2.block_first == m.block_first &&
             m2.layout == m.layout && strcmp(m2.path, m.path) == 0);
}

static void disp_register_resp(const uint8_t *p, size_t n)
{
    dmce_disp_register_resp_t m;
    int r = dmce_disp_register_resp_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    /* what a daemon relies on before it takes the range */
    FZ_CHECK(m.block_first >= 1 && m.block_count >= 1 && m.heartbeat_ms >= 1);
    FZ_CHECK((uint64_t)m.block_first + m.block_count <= (1u << 16));
    FZ_CHECK((m.flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) == 0);
    uint8_t b[DMCE_DISP_REGISTER_RESP_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_register_resp_encode(&m, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    dmce_disp_register_resp_t m2;
    FZ_CHECK_EQ(dmce_disp_register_resp_decode(b, sizeof b, &m2), 0);
    FZ_CHECK(memcmp(&m2, &m, sizeof m) == 0); /* all fields, no padding in this struct */
}

static void disp_pulse(const uint8_t *p, size_t n)
{
    dmce_disp_pulse_t m;
    int r = dmce_disp_pulse_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK(m.daemon_id != 0);
    uint8_t b[DMCE_DISP_PULSE_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_pulse_encode(&m, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    dmce_disp_pulse_t m2;
    FZ_CHECK_EQ(dmce_disp_pulse_decode(b, sizeof b, &m2), 0);
    FZ_CHECK(m2.daemon_id == m.daemon_id && m2.seq == m.seq && m2.used == m.used &&
             m2.free == m.free && m2.ops == m.ops);
}

static void disp_monitor(const uint8_t *p, size_t n)
{
    dmce_disp_monitor_t m;
    int r = dmce_disp_monitor_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK((m.flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) == 0 && m.reserved == 0);
    uint8_t b[DMCE_DISP_MONITOR_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_monitor_encode(&m, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    dmce_disp_monitor_t m2;
    FZ_CHECK_EQ(dmce_disp_monitor_decode(b, sizeof b, &m2), 0);
    FZ_CHECK(memcmp(&m2, &m, sizeof m) == 0);
}

/* A directory response: the header, then every entry (and one past the end of each table). */
static void disp_directory(const uint8_t *p, size_t n)
{
    dmce_disp_dir_hdr_t h;
    int r = dmce_disp_dir_hdr_decode(p, n, &h);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0) {
        /* the entry decoders check the header first: the same verdict */
        dmce_disp_daemon_t d;
        dmce_disp_block_t k;
        FZ_CHECK_EQ(dmce_disp_daemon_decode(p, n, 0, &d), r);
        FZ_CHECK_EQ(dmce_disp_block_decode(p, n, 0, &k), r);
        return;
    }
    FZ_CHECK(h.reserved == 0 && (h.flags & ~(DMCE_DISP_MIRRORING | DMCE_DISP_MIRROR_OFF)) == 0);
    FZ_CHECK(h.ndaemons <= 4096 && h.nblocks <= (1u << 16));
    FZ_CHECK_EQ(n, dmce_disp_dir_size(h.ndaemons, h.nblocks));
    uint8_t hb[DMCE_DISP_DIR_HDR];
    dmce_disp_dir_hdr_encode(&h, hb);
    FZ_CHECK(memcmp(hb, p, sizeof hb) == 0);
    for (uint32_t i = 0; i <= h.ndaemons; i++) {
        dmce_disp_daemon_t d;
        r = dmce_disp_daemon_decode(p, n, i, &d);
        if (i == h.ndaemons) {
            FZ_CHECK_EQ(r, -EINVAL);
            break;
        }
        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r != 0)
            continue;
        size_t len = strnlen(d.path, sizeof d.path);
        FZ_CHECK(len >= 1 && len <= DMCE_DISP_DAEMON_PATH);
        FZ_CHECK(d.id >= 1 && d.id <= 4095);
        FZ_CHECK(d.state == DMCE_DISP_ALIVE || d.state == DMCE_DISP_DEAD);
        /* the entry again, alone in a directory of one: the same bytes, the same struct */
        uint8_t one[DMCE_DISP_DIR_HDR + DMCE_DISP_DAEMON_SIZE];
        dmce_disp_dir_hdr_t h1 = {.epoch = h.epoch, .ndaemons = 1, .flags = h.flags};
        dmce_disp_dir_hdr_encode(&h1, one);
        FZ_CHECK_EQ(dmce_disp_daemon_encode(&d, one + DMCE_DISP_DIR_HDR), 0);
        FZ_CHECK(memcmp(one + DMCE_DISP_DIR_HDR,
                        p + DMCE_DISP_DIR_HDR + (size_t)i * DMCE_DISP_DAEMON_SIZE,
                        DMCE_DISP_DAEMON_SIZE) == 0);
        dmce_disp_daemon_t d2;
        FZ_CHECK_EQ(dmce_disp_daemon_decode(one, sizeof one, 0, &d2), 0);
        FZ_CHECK(d2.id == d.id && d2.state == d.state && d2.numa_node == d.numa_node &&
                 d2.pid == d.pid && d2.capacity == d.capacity && d2.used == d.used &&
                 d2.free == d.free && d2.ops == d.ops && strcmp(d2.path, d.path) == 0);
    }
    for (uint32_t i = 0; i <= h.nblocks; i++) {
        dmce_disp_block_t k;
        r = dmce_disp_block_decode(p, n, i, &k);
        if (i == h.nblocks) {
            FZ_CHECK_EQ(r, -EINVAL);
            break;
        }
        FZ_CHECK(r == 0 || r == -EBADMSG);
        if (r != 0)
            continue;
        FZ_CHECK(k.block != 0 && k.primary != 0 && k.mirror != k.primary);
        FZ_CHECK(k.state <= DMCE_DISP_REMIRRORING);
        uint8_t b[DMCE_DISP_BLOCK_SIZE];
        dmce_disp_block_encode(&k, b);
        FZ_CHECK(memcmp(b,
                        p + DMCE_DISP_DIR_HDR + (size_t)h.ndaemons * DMCE_DISP_DAEMON_SIZE +
                            (size_t)i * DMCE_DISP_BLOCK_SIZE,
                        sizeof b) == 0);
    }
}

static void disp_pick(const uint8_t *p, size_t n)
{
    dmce_disp_pick_t m;
    int r = dmce_disp_pick_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK(m.numa_node >= -1);
    uint8_t b[DMCE_DISP_PICK_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_pick_encode(&m, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    dmce_disp_pick_t m2;
    FZ_CHECK_EQ(dmce_disp_pick_decode(b, sizeof b, &m2), 0);
    FZ_CHECK(m2.size == m.size && m2.numa_node == m.numa_node && m2.exclude == m.exclude);
}

static void disp_u32(const uint8_t *p, size_t n)
{
    uint32_t v;
    int r = dmce_disp_u32_decode(p, n, &v);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    uint8_t b[DMCE_DISP_U32_RESP_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_u32_encode(v, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
}

static void disp_event(const uint8_t *p, size_t n)
{
    dmce_disp_event_msg_t m;
    int r = dmce_disp_event_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK(m.daemon_id != 0 && m.block != 0);
    FZ_CHECK(m.event >= DMCE_DISP_EV_CREATED && m.event <= DMCE_DISP_EV_MIRROR_ADOPTED);
    FZ_CHECK((m.event != DMCE_DISP_EV_MIRRORED && m.event != DMCE_DISP_EV_MIRROR_ADOPTED) ||
             m.peer != 0);
    uint8_t b[DMCE_DISP_EVENT_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_event_encode(&m, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
    dmce_disp_event_msg_t m2;
    FZ_CHECK_EQ(dmce_disp_event_decode(b, sizeof b, &m2), 0);
    FZ_CHECK(memcmp(&m2, &m, sizeof m) == 0);
}

static void disp_peer_req(const uint8_t *p, size_t n)
{
    uint32_t daemon, block;
    int r = dmce_disp_peer_req_decode(p, n, &daemon, &block);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    FZ_CHECK(daemon != 0 && block != 0);
    uint8_t b[DMCE_DISP_PEER_REQ_SIZE];
    FZ_CHECK_EQ(n, sizeof b);
    dmce_disp_peer_req_encode(daemon, block, b);
    FZ_CHECK(memcmp(b, p, sizeof b) == 0);
}

static void disp_peer_resp(const uint8_t *p, size_t n)
{
    uint32_t peer;
    char path[DMCE_MSMP_PATH_MAX + 1];
    int r = dmce_disp_peer_resp_decode(p, n, &peer, path);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    size_t len = strnlen(path, sizeof path);
    FZ_CHECK(peer != 0 && len >= 1 && len <= DMCE_MSMP_PATH_MAX);
    FZ_CHECK_EQ(n, DMCE_DISP_PEER_RESP_HDR + len);
    uint8_t b[DMCE_DISP_PEER_RESP_HDR + DMCE_MSMP_PATH_MAX];
    int k = dmce_disp_peer_resp_encode(peer, path, b, sizeof b);
    FZ_CHECK_EQ(k, n);
    FZ_CHECK(memcmp(b, p, n) == 0);
    uint32_t peer2;
    char path2[DMCE_MSMP_PATH_MAX + 1];
    FZ_CHECK_EQ(dmce_disp_peer_resp_decode(b, (size_t)k, &peer2, path2), 0);
    FZ_CHECK(peer2 == peer && strcmp(path2, path) == 0);
}

/* ---- administration (msmp_admin.h): decode, re-encode, same bytes ---- */

static void adm_handoff(const uint8_t *p, size_t n)
{
    static dmce_adm_handoff_t h;
    int r = dmce_adm_handoff_decode(p, n, &h);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    static dmce_adm_owner_t o[DMCE_ADM_OWNERS_MAX];
    FZ_CHECK(h.has_owners ? h.nowners >= 1 && h.nowners <= DMCE_ADM_OWNERS_MAX : h.nowners == 0);
    for (uint32_t i = 0; i < h.nowners; i++) {
        dmce_adm_handoff_owner(&h, i, &o[i]);
        FZ_CHECK(o[i].owner != 0);
    }
    h.owners = o;
    static uint8_t b[DMCE_ADM_HANDOFF_RESP_MAX];
    int k = dmce_adm_handoff_encode(&h, b, sizeof b);
    FZ_CHECK_EQ(k, n);
    FZ_CHECK(memcmp(b, p, n) == 0);
}

static void adm_adopt(const uint8_t *p, size_t n)
{
    dmce_adm_adopt_t a;
    int r = dmce_adm_adopt_decode(p, n, &a);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    uint8_t b[DMCE_ADM_ADOPT_HDR + DMCE_MSMP_PATH_MAX];
    int k = dmce_adm_adopt_encode(&a, b, sizeof b);
    FZ_CHECK_EQ(k, n);
    FZ_CHECK(memcmp(b, p, n) == 0);
}

static void adm_pair(const uint8_t *p, size_t n)
{
    uint32_t a, c;
    int r = dmce_adm_pair_decode(p, n, &a, &c);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r == 0) {
        uint8_t b[DMCE_ADM_PAIR_SIZE];
        dmce_adm_pair_encode(a, c, b);
        FZ_CHECK(memcmp(b, p, n) == 0);
    }
    r = dmce_adm_handoff_req_decode(p, n, &a, &c);
    FZ_CHECK(r == 0 || r == -EBADMSG);
}

static void adm_migrate(const uint8_t *p, size_t n)
{
    dmce_adm_migrate_t m;
    int r = dmce_adm_migrate_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    uint8_t b[DMCE_ADM_MIGRATE_SIZE];
    dmce_adm_migrate_encode(&m, b);
    FZ_CHECK(memcmp(b, p, n) == 0);
}

/* backup / restore request: decode, re-encode, same bytes. */
static void adm_backup(const uint8_t *p, size_t n)
{
    static dmce_adm_backup_t m;
    int r = dmce_adm_backup_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    static uint8_t b[DMCE_ADM_BACKUP_HDR + DMCE_ADM_DIR_MAX];
    int k = dmce_adm_backup_encode(&m, b, sizeof b);
    FZ_CHECK_EQ(k, n);
    FZ_CHECK(memcmp(b, p, n) == 0);
}

/* backup_status response: header, detail, dir and every entry; re-encoded, same bytes. */
static void adm_bk_status(const uint8_t *p, size_t n)
{
    static dmce_adm_bk_status_t m;
    int r = dmce_adm_bk_status_decode(p, n, &m);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    static uint8_t b[DMCE_ADM_BK_STATUS_HDR + DMCE_ADM_NAME_MAX + DMCE_ADM_DIR_MAX];
    int k = dmce_adm_bk_status_encode(&m, 0, b, sizeof b);
    FZ_CHECK(k > 0 && (size_t)k <= n);
    /* the count differs (0 here): compare around it */
    FZ_CHECK(memcmp(b, p, 76) == 0 && memcmp(b + 80, p + 80, (size_t)k - 80) == 0);
    for (uint32_t i = 0; i < m.count && i < 64; i++) {
        dmce_adm_bk_entry_t e;
        int x = dmce_adm_bk_entry_decode(&m, i, &e);
        FZ_CHECK(x == 0 || x == -EBADMSG);
        if (x == 0) {
            uint8_t eb[DMCE_ADM_BK_ENTRY_SIZE];
            dmce_adm_bk_entry_encode(&e, eb);
            FZ_CHECK(memcmp(eb, m.entries + (size_t)i * DMCE_ADM_BK_ENTRY_SIZE, sizeof eb) == 0);
        }
    }
}

/* List responses: every entry of a list whose length checks decodes or is refused cleanly. */
static void adm_lists(const uint8_t *p, size_t n, uint16_t op)
{
    uint32_t count = 0;
    int r = op == DMCE_MSMP_OP_SESSIONS ? dmce_adm_sessions_count(p, n, &count)
            : op == DMCE_MSMP_OP_JOBS   ? dmce_adm_jobs_count(p, n, &count)
                                        : dmce_adm_daemons_count(p, n, &count);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    for (uint32_t i = 0; r == 0 && i < count && i < 64; i++) {
        int e;
        if (op == DMCE_MSMP_OP_SESSIONS) {
            dmce_adm_session_t x;
            e = dmce_adm_session_decode(p, n, i, &x);
        } else if (op == DMCE_MSMP_OP_JOBS) {
            dmce_adm_job_t x;
            e = dmce_adm_job_decode(p, n, i, &x);
        } else {
            dmce_adm_daemon_t x;
            e = dmce_adm_daemon_decode(p, n, i, &x);
            if (e == 0) {
                uint8_t b[DMCE_ADM_DAEMON_SIZE];
                FZ_CHECK_EQ(dmce_adm_daemon_encode(&x, b), 0);
                FZ_CHECK(memcmp(b, p + DMCE_ADM_DAEMONS_HDR + (size_t)i * DMCE_ADM_DAEMON_SIZE,
                                DMCE_ADM_DAEMON_SIZE) == 0);
            }
        }
        FZ_CHECK(e == 0 || e == -EBADMSG);
    }
}

/* disp_stats response: a vector of values (dmce_msmp_values_decode). */
static void disp_values(const uint8_t *p, size_t n)
{
    uint64_t v[DMCE_DSTAT_COUNT_];
    int r = dmce_msmp_values_decode(p, n, v, DMCE_DSTAT_COUNT_);
    FZ_CHECK(r == 0 || r == -EBADMSG);
    if (r != 0)
        return;
    /* a newer dispatcher may send more values: ours are the first ones */
    FZ_CHECK(n >= 8 + 8 * DMCE_DSTAT_COUNT_ && (n - 8) % 8 == 0);
    FZ_CHECK_EQ(dmce_get_le32(p), (n - 8) / 8);
    FZ_CHECK_EQ(dmce_get_le32(p + 4), 0);
    uint8_t b[8 + 8 * DMCE_DSTAT_COUNT_];
    dmce_msmp_values_encode(v, DMCE_DSTAT_COUNT_, b);
    FZ_CHECK(memcmp(b + 8, p + 8, sizeof b - 8) == 0);
    uint64_t v2[DMCE_DSTAT_COUNT_];
    FZ_CHECK_EQ(dmce_msmp_values_decode(b, sizeof b, v2, DMCE_DSTAT_COUNT_), 0);
    FZ_CHECK(memcmp(v2, v, sizeof v) == 0);
    /* and fewer than the reader knows is refused */
    FZ_CHECK_EQ(dmce_msmp_values_decode(b, sizeof b - 8, v2, DMCE_DSTAT_COUNT_), -EBADMSG);
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
    case DMCE_MSMP_OP_PERSIST:
        if (!resp)
            ranges(p, n);
        break;
    case DMCE_MSMP_OP_MIRROR_CREATE: mirror_create(p, n); break; /* the response repeats it */
    case DMCE_MSMP_OP_MIRROR_START:
        if (!resp)
            mirror_start(p, n);
        break;
    case DMCE_MSMP_OP_MIRROR_ADOPT:
        if (!resp)
            mirror_adopt(p, n);
        break;
    case DMCE_MSMP_OP_PROMOTE:
        if (!resp)
            block_req(p, n);
        break;
    case DMCE_MSMP_OP_DROP:
        if (!resp)
            drop_req(p, n);
        break;
    case DMCE_MSMP_OP_BLOCKS:
        if (resp)
            blocks_resp(p, n);
        break;
    case DMCE_MSMP_OP_REGISTER: resp ? disp_register_resp(p, n) : disp_register(p, n); break;
    case DMCE_MSMP_OP_HEARTBEAT: resp ? disp_monitor(p, n) : disp_pulse(p, n); break;
    case DMCE_MSMP_OP_DIRECTORY:
        if (resp)
            disp_directory(p, n);
        break;
    case DMCE_MSMP_OP_PICK: resp ? disp_u32(p, n) : disp_pick(p, n); break;
    case DMCE_MSMP_OP_SESSION:
        if (resp)
            disp_u32(p, n);
        break;
    case DMCE_MSMP_OP_BLOCK_EVENT:
        if (!resp)
            disp_event(p, n);
        break;
    case DMCE_MSMP_OP_MIRROR_PEER: resp ? disp_peer_resp(p, n) : disp_peer_req(p, n); break;
    case DMCE_MSMP_OP_DISP_STATS:
        if (resp)
            disp_values(p, n);
        break;
    case DMCE_MSMP_OP_HANDOFF: resp ? adm_handoff(p, n) : adm_pair(p, n); break;
    case DMCE_MSMP_OP_ADOPT:
        if (!resp)
            adm_adopt(p, n);
        break;
    case DMCE_MSMP_OP_RELEASE:
    case DMCE_MSMP_OP_REPARENT:
    case DMCE_MSMP_OP_DRAIN:
        if (!resp)
            adm_pair(p, n);
        break;
    case DMCE_MSMP_OP_MIGRATE: resp ? disp_u32(p, n) : adm_migrate(p, n); break;
    case DMCE_MSMP_OP_BACKUP:
    case DMCE_MSMP_OP_RESTORE: resp ? adm_pair(p, n) : adm_backup(p, n); break;
    case DMCE_MSMP_OP_BACKUP_STATUS:
        if (resp)
            adm_bk_status(p, n);
        break;
    case DMCE_MSMP_OP_SESSIONS:
    case DMCE_MSMP_OP_JOBS:
    case DMCE_MSMP_OP_DAEMONS:
        if (resp)
            adm_lists(p, n, h->op);
        break;
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
    range(data, size);
    mirror_create(data, size);
    mirror_start(data, size);
    mirror_adopt(data, size);
    block_req(data, size);
    drop_req(data, size);
    blocks_resp(data, size);
    disp_register(data, size);
    disp_register_resp(data, size);
    disp_pulse(data, size);
    disp_monitor(data, size);
    disp_directory(data, size);
    disp_pick(data, size);
    disp_u32(data, size);
    disp_event(data, size);
    disp_peer_req(data, size);
    disp_peer_resp(data, size);
    disp_values(data, size);
    return 0;
}

#ifndef DMCE_LIBFUZZER
#define FZ_NAME "msmp"
#define FZ_MAX_LEN 512
#include "fuzz_driver.h"
#endif
