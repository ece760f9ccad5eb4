/*
 * Integration: bad input against a running dmce-memd. Each case gets its
 * own error reply, changes nothing, and the daemon keeps serving; a client
 * that breaks the framing is disconnected, the daemon is not.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "util.h"

static int setup_one(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start(1, "--block-size=2M", "--max-blocks=2", NULL), 0);
    return 0;
}

static int teardown_one(void **state)
{
    (void)state;
    int s = harness_stop(1);
    int left = harness_shm_count();
    harness_cleanup();
    assert_int_equal(s, 0);
    assert_int_equal(left, 0);
    return 0;
}

/* Send op with payload on fd, expect a reply with this status. */
static void expect_status(int fd, uint16_t op, const void *p, uint32_t len, int32_t want)
{
    static uint64_t id = 100;
    uint64_t my = ++id;
    assert_int_equal(raw_send(fd, op, my, p, len), 0);
    int32_t st = 1;
    uint16_t rop = 0;
    uint64_t rid = 0;
    uint8_t buf[4096];
    int n = raw_recv(fd, &st, &rop, &rid, buf, sizeof(buf));
    assert_true(n >= 0);
    assert_int_equal(rop, op);
    assert_int_equal(rid, my);
    if (st != want)
        print_error("op %u: got %s, want %s\n", op, dmce_err_name(st), dmce_err_name(want));
    assert_int_equal(st, want);
}

/* The daemon still answers a fresh client. */
static void assert_daemon_serves(void)
{
    int one = 1;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_true(st.pid > 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_requests_before_setup(void **state)
{
    (void)state;
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    uint8_t p8[8] = {64};
    expect_status(fd, DMCE_MSMP_OP_MALLOC, p8, 8, DMCE_ENOSETUP);
    expect_status(fd, DMCE_MSMP_OP_FREE, p8, 8, DMCE_ENOSETUP);
    uint8_t rw[16] = {0};
    expect_status(fd, DMCE_MSMP_OP_READ, rw, 16, DMCE_ENOSETUP);
    expect_status(fd, DMCE_MSMP_OP_WRITE, rw, 16, DMCE_ENOSETUP);
    expect_status(fd, DMCE_MSMP_OP_DISCONNECT, NULL, 0, DMCE_ENOSETUP);
    expect_status(fd, DMCE_MSMP_OP_STATS, NULL, 0, 0); /* stats needs no session */
    /* Second setup on the same connection. */
    assert_int_equal(raw_setup(fd, 0), 0);
    assert_int_equal(raw_setup(fd, 0), DMCE_ESETUPDONE);
    close(fd);
}

static void test_bad_payloads_keep_connection(void **state)
{
    (void)state;
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_setup(fd, 0), 0);
    expect_status(fd, 99, NULL, 0, -EOPNOTSUPP);          /* unknown op */
    expect_status(fd, 0, NULL, 0, -EOPNOTSUPP);           /* op 0 */
    uint8_t junk[5] = {1, 2, 3, 4, 5};
    expect_status(fd, DMCE_MSMP_OP_MALLOC, junk, 5, -EBADMSG); /* short payload */
    expect_status(fd, DMCE_MSMP_OP_STATS, junk, 5, -EBADMSG);  /* stats takes none */
    uint8_t rw[16] = {0};
    rw[12] = 1; /* reserved field not zero */
    expect_status(fd, DMCE_MSMP_OP_READ, rw, 16, -EBADMSG);
    uint8_t w[20] = {0};
    dmce_put_le32(w + 8, 10); /* claims 10 data bytes, carries 4 */
    expect_status(fd, DMCE_MSMP_OP_WRITE, w, 20, -EBADMSG);
    uint8_t zero8[8] = {0};
    expect_status(fd, DMCE_MSMP_OP_MALLOC, zero8, 8, -EINVAL); /* malloc(0) */
    uint8_t huge[8];
    dmce_put_le64(huge, 1ull << 40);
    expect_status(fd, DMCE_MSMP_OP_MALLOC, huge, 8, -EMSGSIZE); /* larger than a block */
    /* Still usable: a real malloc works on the same connection. */
    uint8_t p8[8];
    dmce_put_le64(p8, 64);
    expect_status(fd, DMCE_MSMP_OP_MALLOC, p8, 8, 0);
    close(fd);
}

static void test_bad_addresses(void **state)
{
    (void)state;
    int one = 1;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_layout_t L = dmce_client_layout(c);
    dmce_addr_t a, b;
    assert_int_equal(dmce_malloc(c, 256, &a), 0);
    uint8_t data[256];
    memset(data, 0xab, sizeof(data));
    assert_int_equal(dmce_write(c, a, data, sizeof(data)), 0);
    dmce_addr_parts_t p;
    dmce_addr_decode(L, a, &p);

    uint8_t buf[512];
    /* Range crossing the end of the allocation. */
    dmce_addr_t mid;
    dmce_addr_add(L, a, 200, &mid);
    assert_int_equal(dmce_read(c, mid, buf, 57), DMCE_ECROSSEND);
    assert_int_equal(dmce_write(c, mid, buf, 57), DMCE_ECROSSEND);
    /* Outside any allocation: far into the block's free space. */
    dmce_addr_encode(L, 0, p.block, p.cell + 100000, &b);
    assert_int_equal(dmce_read(c, b, buf, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_write(c, b, buf, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_free(c, b), DMCE_EBADADDR);
    /* Block metadata (cell 0) is never user memory. */
    dmce_addr_encode(L, 0, p.block, 0, &b);
    assert_int_equal(dmce_read(c, b, buf, 1), DMCE_EBADADDR);
    /* Interior address is not freeable. */
    assert_int_equal(dmce_free(c, mid), DMCE_EBADADDR);
    /* Beyond the end of the block. */
    dmce_addr_encode(L, 0, p.block, (1ull << 30), &b);
    assert_int_equal(dmce_read(c, b, buf, 1), DMCE_EBADADDR);
    /* The null address and other servers are refused by the library. */
    assert_int_equal(dmce_read(c, DMCE_ADDR_NULL, buf, 1), DMCE_ENULLADDR);
    dmce_addr_encode(L, 5, p.block, p.cell, &b);
    assert_int_equal(dmce_read(c, b, buf, 1), DMCE_ENOSERVER);

    /* Nothing changed: the data is intact. */
    assert_int_equal(dmce_read(c, a, buf, 256), 0);
    assert_memory_equal(buf, data, 256);
    assert_int_equal(dmce_disconnect(c), 0);

    /* The same checks in the daemon, bypassing the library's routing. */
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_setup(fd, 0), 0);
    uint8_t rq[16];
    dmce_msmp_rw_req_t r = {.addr = DMCE_ADDR_NULL, .len = 1};
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, DMCE_ENULLADDR);
    dmce_addr_encode(L, 3, p.block, p.cell, &r.addr);
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, DMCE_ENOSERVER);
    dmce_addr_encode(L, 0, 4000, 64, &r.addr); /* a block this daemon does not own */
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, DMCE_ENOBLOCK);
    dmce_addr_encode(L, 0, p.block + 1, 64, &r.addr); /* owned but not created yet */
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, DMCE_ENOBLOCK);
    r.addr = a;
    r.len = 2u << 20; /* more than max payload */
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, -EMSGSIZE);
    /* Write whose range overflows: cell near 2^40 with a length. */
    dmce_addr_encode(L, 0, p.block, (1ull << 40) - 2, &r.addr);
    r.len = 16;
    dmce_msmp_rw_req_encode(&r, rq);
    expect_status(fd, DMCE_MSMP_OP_READ, rq, 16, DMCE_EBADADDR);
    close(fd);
    assert_daemon_serves();
}

static void test_malformed_frames_disconnect(void **state)
{
    (void)state;
    struct {
        const char *what;
        uint8_t hdr[DMCE_MSMP_HDR_SIZE];
        int32_t want;
    } cases[4];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_STATS, .req_id = 5};
    cases[0].what = "bad magic";
    h.magic = 0xdeadbeef;
    dmce_msmp_hdr_encode(&h, cases[0].hdr);
    cases[0].want = DMCE_EBADMAGIC;
    h.magic = DMCE_MSMP_MAGIC;
    cases[1].what = "bad version";
    h.version = 9;
    dmce_msmp_hdr_encode(&h, cases[1].hdr);
    cases[1].want = DMCE_EVERSION;
    h.version = DMCE_MSMP_VERSION;
    cases[2].what = "frame over the maximum";
    h.len = 64u << 20;
    dmce_msmp_hdr_encode(&h, cases[2].hdr);
    cases[2].want = -EMSGSIZE;
    h.len = 0;
    cases[3].what = "unknown flag bits";
    h.flags = 0x80;
    dmce_msmp_hdr_encode(&h, cases[3].hdr);
    cases[3].want = -EPROTO;
    for (size_t i = 0; i < 4; i++) {
        int fd = raw_connect(1);
        assert_true(fd >= 0);
        assert_int_equal(raw_send_bytes(fd, cases[i].hdr, DMCE_MSMP_HDR_SIZE), 0);
        int32_t st = 0;
        uint8_t buf[64];
        int n = raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf));
        if (n < 0 || st != cases[i].want)
            print_error("%s: n=%d status %s\n", cases[i].what, n, dmce_err_name(st));
        assert_int_equal(n, 0);
        assert_int_equal(st, cases[i].want);
        assert_true(raw_closed(fd)); /* the stream cannot be trusted: dropped */
        close(fd);
    }
    /* A request sent with the response flag is refused, connection kept. */
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    h.flags = DMCE_MSMP_FLAG_RESPONSE;
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_encode(&h, hb);
    assert_int_equal(raw_send_bytes(fd, hb, sizeof(hb)), 0);
    int32_t st = 0;
    uint8_t buf[512];
    assert_int_equal(raw_recv(fd, &st, NULL, NULL, buf, sizeof(buf)), 0);
    assert_int_equal(st, -EPROTO);
    close(fd);
    assert_daemon_serves();
}

static void test_garbage_and_truncation(void **state)
{
    (void)state;
    /* Random garbage: the daemon drops the client, keeps serving. */
    uint8_t junk[4096];
    srand(42);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)rand();
    int fd = raw_connect(1);
    assert_true(fd >= 0);
    raw_send_bytes(fd, junk, sizeof(junk)); /* may fail once the daemon closes */
    assert_true(raw_closed(fd));
    close(fd);
    /* A truncated frame, then the client goes away. */
    fd = raw_connect(1);
    assert_true(fd >= 0);
    assert_int_equal(raw_setup(fd, 4096), 0);
    uint8_t hb[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION,
                         .op = DMCE_MSMP_OP_WRITE, .req_id = 1, .len = 1000};
    dmce_msmp_hdr_encode(&h, hb);
    assert_int_equal(raw_send_bytes(fd, hb, sizeof(hb)), 0);
    assert_int_equal(raw_send_bytes(fd, junk, 100), 0); /* 900 bytes short */
    close(fd);
    assert_daemon_serves();
    /* Many bad clients in a row do not exhaust anything. */
    for (int i = 0; i < 50; i++) {
        fd = raw_connect(1);
        assert_true(fd >= 0);
        raw_send_bytes(fd, junk + i, 64);
        close(fd);
    }
    assert_daemon_serves();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_before_setup),
        cmocka_unit_test(test_bad_payloads_keep_connection),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_malformed_frames_disconnect),
        cmocka_unit_test(test_garbage_and_truncation),
    };
    return cmocka_run_group_tests(tests, setup_one, teardown_one);
}
