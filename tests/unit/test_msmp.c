/*
 * Unit tests for the MSMP codec: header and payload round trips, the exact
 * wire bytes (little-endian, same on 32- and 64-bit), and every malformed
 * case the decoders must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmce/error.h>

#include "msmp.h"

static void test_header_wire_bytes(void **state)
{
    (void)state;
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = 1, .flags = 1, .op = 0x0203,
                         .req_id = 0x0807060504030201ull, .len = 0x0c0b0a09, .status = -2};
    uint8_t b[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_encode(&h, b);
    const uint8_t want[DMCE_MSMP_HDR_SIZE] = {'M', 'S', 'M', 'P', 1, 1, 3, 2, 1, 2, 3, 4,
                                              5,   6,   7,   8,   9, 10, 11, 12, 0xfe, 0xff, 0xff, 0xff};
    assert_memory_equal(b, want, sizeof(want));
}

static void test_header_roundtrip(void **state)
{
    (void)state;
    for (uint16_t op = 0; op < 10; op++) {
        dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                             .flags = (uint8_t)(op & 1), .op = op, .req_id = UINT64_MAX - op,
                             .len = op * 1000u, .status = -(int32_t)op};
        uint8_t b[DMCE_MSMP_HDR_SIZE];
        dmce_msmp_hdr_encode(&h, b);
        dmce_msmp_hdr_t g;
        assert_int_equal(dmce_msmp_hdr_decode(b, 1u << 20, &g), 0);
        assert_int_equal(g.op, op);
        assert_int_equal(g.req_id, h.req_id);
        assert_int_equal(g.len, h.len);
        assert_int_equal(g.status, h.status);
        assert_int_equal(g.flags, h.flags);
    }
}

static void test_header_malformed(void **state)
{
    (void)state;
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION, .op = 1,
                         .req_id = 77, .len = 10};
    uint8_t b[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t g;

    h.magic = 0x12345678;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), DMCE_EBADMAGIC);
    h.magic = DMCE_MSMP_MAGIC;

    h.version = 2;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), DMCE_EVERSION);
    h.version = 0;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), DMCE_EVERSION);
    h.version = DMCE_MSMP_VERSION;

    h.flags = 0x02;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), -EPROTO);
    h.flags = 0;

    h.len = 4097;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), -EMSGSIZE);
    assert_int_equal(g.req_id, 77); /* still decoded for the error reply */
    h.len = DMCE_MSMP_PAYLOAD_LIMIT + 1;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, UINT32_MAX, &g), -EMSGSIZE); /* hard ceiling */
    h.len = 4096;
    dmce_msmp_hdr_encode(&h, b);
    assert_int_equal(dmce_msmp_hdr_decode(b, 4096, &g), 0); /* exactly the max is fine */

    /* Every single-bit flip of the magic is caught. */
    h.len = 0;
    dmce_msmp_hdr_encode(&h, b);
    for (int bit = 0; bit < 32; bit++) {
        uint8_t c[DMCE_MSMP_HDR_SIZE];
        memcpy(c, b, sizeof(c));
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(dmce_msmp_hdr_decode(c, 4096, &g), DMCE_EBADMAGIC);
    }
}

static void test_setup_payloads(void **state)
{
    (void)state;
    dmce_msmp_setup_req_t rq = {.amount = 6ull << 30, .flags = 3, .layout = UINT32_MAX};
    for (int i = 0; i < 16; i++)
        rq.token[i] = (uint8_t)(i + 1);
    uint8_t b[DMCE_MSMP_SETUP_REQ_SIZE];
    dmce_msmp_setup_req_encode(&rq, b);
    dmce_msmp_setup_req_t g;
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b), &g), 0);
    assert_int_equal(g.amount, rq.amount);
    assert_int_equal(g.flags, 3);
    assert_int_equal(g.layout, UINT32_MAX);
    assert_memory_equal(g.token, rq.token, 16);
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b) - 1, &g), -EBADMSG);
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b) + 1, &g), -EBADMSG);
    rq.flags = 4; /* unknown flag */
    dmce_msmp_setup_req_encode(&rq, b);
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b), &g), -EBADMSG);
    /* A cluster-wide session ID round trips; a daemon-range one is refused. */
    rq.flags = 1;
    rq.session_id = DMCE_SESSION_GLOBAL | 77;
    dmce_msmp_setup_req_encode(&rq, b);
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b), &g), 0);
    assert_int_equal(g.session_id, DMCE_SESSION_GLOBAL | 77);
    rq.session_id = 77;
    dmce_msmp_setup_req_encode(&rq, b);
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b), &g), -EBADMSG);
    rq.session_id = 0;
    dmce_msmp_setup_req_encode(&rq, b);
    dmce_put_le32(b + 36, 1); /* reserved */
    assert_int_equal(dmce_msmp_setup_req_decode(b, sizeof(b), &g), -EBADMSG);

    dmce_msmp_setup_resp_t rs = {.granted = 1ull << 33, .used = 5, .session_id = 9,
                                 .daemon_id = 2, .layout = 1, .max_payload = 1u << 20,
                                 .block_first = 17, .block_last = 32};
    uint8_t r[DMCE_MSMP_SETUP_RESP_SIZE];
    dmce_msmp_setup_resp_encode(&rs, r);
    dmce_msmp_setup_resp_t gr;
    assert_int_equal(dmce_msmp_setup_resp_decode(r, sizeof(r), &gr), 0);
    assert_memory_equal(&gr, &rs, sizeof(rs));
    assert_int_equal(dmce_msmp_setup_resp_decode(r, sizeof(r) - 8, &gr), -EBADMSG);
    rs.max_payload = 10; /* nonsense from a peer */
    dmce_msmp_setup_resp_encode(&rs, r);
    assert_int_equal(dmce_msmp_setup_resp_decode(r, sizeof(r), &gr), -EBADMSG);
    rs.max_payload = 4096;
    rs.block_first = 40; /* first > last */
    dmce_msmp_setup_resp_encode(&rs, r);
    assert_int_equal(dmce_msmp_setup_resp_decode(r, sizeof(r), &gr), -EBADMSG);
}

static void test_rw_payloads(void **state)
{
    (void)state;
    uint8_t b[DMCE_MSMP_RW_REQ_SIZE + 5];
    dmce_msmp_rw_req_t rq = {.addr = 0x0000100100000040ull, .len = 5};
    dmce_msmp_rw_req_encode(&rq, b);
    memcpy(b + 16, "hello", 5);
    dmce_msmp_rw_req_t g;
    assert_int_equal(dmce_msmp_read_req_decode(b, 16, &g), 0);
    assert_int_equal(g.addr, rq.addr);
    assert_int_equal(g.len, 5);
    assert_int_equal(dmce_msmp_read_req_decode(b, 15, &g), -EBADMSG);
    assert_int_equal(dmce_msmp_read_req_decode(b, 17, &g), -EBADMSG);
    assert_int_equal(dmce_msmp_write_req_decode(b, 21, &g), 0);
    assert_int_equal(dmce_msmp_write_req_decode(b, 20, &g), -EBADMSG); /* short data */
    assert_int_equal(dmce_msmp_write_req_decode(b, 12, &g), -EBADMSG); /* short header */
    b[12] = 1; /* reserved */
    assert_int_equal(dmce_msmp_read_req_decode(b, 16, &g), -EBADMSG);
    /* A length that would wrap when added to the header size. */
    dmce_msmp_rw_req_t big = {.addr = 1, .len = UINT32_MAX};
    dmce_msmp_rw_req_encode(&big, b);
    assert_int_equal(dmce_msmp_write_req_decode(b, 16, &g), -EBADMSG);

    uint8_t u[8];
    uint64_t v;
    dmce_msmp_u64_encode(0x1122334455667788ull, u);
    assert_int_equal(u[0], 0x88);
    assert_int_equal(dmce_msmp_u64_decode(u, 8, &v), 0);
    assert_int_equal(v, 0x1122334455667788ull);
    assert_int_equal(dmce_msmp_u64_decode(u, 7, &v), -EBADMSG);
    assert_int_equal(dmce_msmp_u64_decode(u, 9, &v), -EBADMSG);
}

static void test_stats_payload(void **state)
{
    (void)state;
    uint64_t v[DMCE_STAT_COUNT_], g[DMCE_STAT_COUNT_];
    for (unsigned i = 0; i < DMCE_STAT_COUNT_; i++)
        v[i] = 0x0101010101010101ull * i;
    uint8_t b[DMCE_MSMP_STATS_SIZE + 16];
    dmce_msmp_stats_encode(v, b);
    assert_int_equal(dmce_msmp_stats_decode(b, DMCE_MSMP_STATS_SIZE, g), 0);
    assert_memory_equal(v, g, sizeof(v));
    assert_int_equal(dmce_msmp_stats_decode(b, DMCE_MSMP_STATS_SIZE - 1, g), -EBADMSG);
    assert_int_equal(dmce_msmp_stats_decode(b, 4, g), -EBADMSG);
    /* A newer peer with two more counters is accepted. */
    dmce_put_le32(b, DMCE_STAT_COUNT_ + 2);
    memset(b + DMCE_MSMP_STATS_SIZE, 0, 16);
    assert_int_equal(dmce_msmp_stats_decode(b, DMCE_MSMP_STATS_SIZE + 16, g), 0);
    /* An older one with fewer is not. */
    dmce_put_le32(b, DMCE_STAT_COUNT_ - 1);
    assert_int_equal(dmce_msmp_stats_decode(b, DMCE_MSMP_STATS_SIZE - 8, g), -EBADMSG);
}

static void test_random_headers_never_crash(void **state)
{
    (void)state;
    srand(7);
    uint8_t b[DMCE_MSMP_HDR_SIZE];
    unsigned ok = 0;
    for (int i = 0; i < 100000; i++) {
        for (size_t k = 0; k < sizeof(b); k++)
            b[k] = (uint8_t)rand();
        if (i & 1) { /* half with a valid magic and version to reach the later checks */
            dmce_put_le32(b, DMCE_MSMP_MAGIC);
            b[4] = DMCE_MSMP_VERSION;
        }
        if ((i & 3) == 3) { /* a quarter also with plausible flags and length */
            b[5] &= 1;
            b[19] = 0;
            b[18] &= 0x1f;
        }
        dmce_msmp_hdr_t g;
        int r = dmce_msmp_hdr_decode(b, 1u << 20, &g);
        if (r == 0) {
            ok++;
            assert_true(g.len <= (1u << 20));
            assert_true((g.flags & ~1u) == 0);
        }
    }
    assert_true(ok > 0);
}

static void test_op_names(void **state)
{
    (void)state;
    assert_string_equal(dmce_msmp_op_name(DMCE_MSMP_OP_SETUP), "setup");
    assert_string_equal(dmce_msmp_op_name(DMCE_MSMP_OP_STATS), "stats");
    assert_string_equal(dmce_msmp_op_name(0), "?");
    assert_string_equal(dmce_msmp_op_name(18), "store_get");
    assert_string_equal(dmce_msmp_op_name(39), "disp_stats");
    assert_string_equal(dmce_msmp_op_name(25), "sessions");
    assert_string_equal(dmce_msmp_op_name(43), "daemons");
    assert_string_equal(dmce_msmp_op_name(30), "backup");
    assert_string_equal(dmce_msmp_op_name(44), "restore");
    assert_string_equal(dmce_msmp_op_name(45), "mirror_adopt");
    assert_string_equal(dmce_msmp_op_name(46), "?");
    assert_string_equal(dmce_msmp_op_name(1000), "?");
}

/* mirror_adopt: the request a primary sends the daemon that takes over a kept copy. */
static void test_mirror_adopt_payload(void **state)
{
    (void)state;
    dmce_msmp_mirror_adopt_t a = {
        .block = 9, .primary = 2, .size = 16u << 20, .ino = 4242, .holder = 3};
    strcpy(a.name, "/dmce.0.c.m2.h9");
    uint8_t b[DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX + 8];
    int n = dmce_msmp_mirror_adopt_encode(&a, b, sizeof(b));
    assert_int_equal(n, DMCE_MSMP_MIRROR_ADOPT_HDR + strlen(a.name));
    dmce_msmp_mirror_adopt_t d;
    assert_int_equal(dmce_msmp_mirror_adopt_decode(b, (size_t)n, &d), 0);
    assert_int_equal(d.block, 9);
    assert_int_equal(d.primary, 2);
    assert_int_equal(d.size, 16u << 20);
    assert_int_equal(d.ino, 4242);
    assert_int_equal(d.holder, 3);
    assert_string_equal(d.name, a.name);
    /* Truncated, or one byte more than the name says. */
    assert_int_equal(dmce_msmp_mirror_adopt_decode(b, (size_t)n - 1, &d), -EBADMSG);
    assert_int_equal(dmce_msmp_mirror_adopt_decode(b, DMCE_MSMP_MIRROR_ADOPT_HDR - 1, &d),
                     -EBADMSG);
    b[n] = 'x';
    assert_int_equal(dmce_msmp_mirror_adopt_decode(b, (size_t)n + 1, &d), -EBADMSG);
    /* Each field that cannot be zero or odd. */
    static const struct {
        size_t off;
        uint8_t v;
    } bad[] = {{0, 0}, {4, 0}, {8, 1}, {28, 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t c[sizeof(b)];
        memcpy(c, b, (size_t)n);
        if (bad[i].off == 8) {
            c[8] = bad[i].v; /* size not a multiple of 4096 */
        } else {
            memset(c + bad[i].off, 0, 4); /* block, primary, name length 0 */
        }
        assert_int_equal(dmce_msmp_mirror_adopt_decode(c, (size_t)n, &d), -EBADMSG);
    }
    /* An embedded NUL would name another object. */
    b[DMCE_MSMP_MIRROR_ADOPT_HDR + 3] = 0;
    assert_int_equal(dmce_msmp_mirror_adopt_decode(b, (size_t)n, &d), -EBADMSG);
    /* Encoding: an empty name, a name over 255 bytes, too small a buffer. */
    a.name[0] = 0;
    assert_int_equal(dmce_msmp_mirror_adopt_encode(&a, b, sizeof(b)), -EINVAL);
    memset(a.name, 'a', DMCE_MSMP_NAME_MAX);
    a.name[DMCE_MSMP_NAME_MAX] = 0;
    assert_int_equal(dmce_msmp_mirror_adopt_encode(&a, b, sizeof(b)),
                     DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX);
    assert_int_equal(dmce_msmp_mirror_adopt_encode(&a, b, DMCE_MSMP_MIRROR_ADOPT_HDR + 10),
                     -EINVAL);
}

/* drop: a block request whose second word holds flags (KEEP only). */
static void test_drop_payload(void **state)
{
    (void)state;
    uint8_t b[DMCE_MSMP_BLOCK_REQ_SIZE];
    uint32_t block = 0, flags = 9;
    dmce_msmp_drop_req_encode(7, DMCE_MSMP_DROP_KEEP, b);
    assert_int_equal(dmce_msmp_drop_req_decode(b, sizeof(b), &block, &flags), 0);
    assert_int_equal(block, 7);
    assert_int_equal(flags, DMCE_MSMP_DROP_KEEP);
    /* The plain block request is a drop without flags; the block request refuses the flag. */
    dmce_msmp_block_req_encode(7, b);
    assert_int_equal(dmce_msmp_drop_req_decode(b, sizeof(b), &block, &flags), 0);
    assert_int_equal(flags, 0);
    dmce_msmp_drop_req_encode(7, DMCE_MSMP_DROP_KEEP, b);
    assert_int_equal(dmce_msmp_block_req_decode(b, sizeof(b), &block), -EBADMSG);
    /* Unknown flags, block 0, wrong sizes. */
    dmce_msmp_drop_req_encode(7, 2, b);
    assert_int_equal(dmce_msmp_drop_req_decode(b, sizeof(b), &block, &flags), -EBADMSG);
    dmce_msmp_drop_req_encode(0, 0, b);
    assert_int_equal(dmce_msmp_drop_req_decode(b, sizeof(b), &block, &flags), -EBADMSG);
    dmce_msmp_drop_req_encode(7, 0, b);
    assert_int_equal(dmce_msmp_drop_req_decode(b, sizeof(b) - 1, &block, &flags), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_wire_bytes),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_header_malformed),
        cmocka_unit_test(test_setup_payloads),
        cmocka_unit_test(test_rw_payloads),
        cmocka_unit_test(test_stats_payload),
        cmocka_unit_test(test_random_headers_never_crash),
        cmocka_unit_test(test_op_names),
        cmocka_unit_test(test_mirror_adopt_payload),
        cmocka_unit_test(test_drop_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
