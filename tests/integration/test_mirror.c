/*
 * Integration: mirrored blocks in the memory daemon (runtime/memd_mirror.c),
 * driven the way the dispatcher drives them (mirror_start, promote, drop,
 * blocks), with real daemons and no dispatcher:
 *   - a block gets a mirror while a client keeps writing to it; every write
 *     acknowledged before, during and after the copy, every malloc and free
 *     after it, is in the mirror: the primary is killed with SIGKILL, the
 *     copy promoted, and everything read back from it;
 *   - the allocations are adopted by their owners' sessions;
 *   - a mirror whose allocator disagrees (scribbled on) is dropped, never
 *     kept as a copy that is not one;
 *   - every bad request gets its error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "msmp.h"
#include "util.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static int setup_daemons(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    for (int id = 1; id <= 2; id++)
        assert_int_equal(
            harness_start(id, "--block-size=4M", "--max-blocks=8", "--grace-ms=60000", NULL), 0);
    return 0;
}

static int teardown_daemons(void **state)
{
    (void)state;
    for (int id = 1; id <= 2; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    return 0;
}

/* One raw request on fd: status, payload into resp. */
static int32_t raw_call(int fd, uint16_t op, const void *p, uint32_t len, void *resp, size_t cap,
                        int *rlen)
{
    static uint64_t id = 1000;
    assert_int_equal(raw_send(fd, op, ++id, p, len), 0);
    int32_t st = 1;
    int n = raw_recv(fd, &st, NULL, NULL, resp, cap);
    assert_true(n >= 0);
    if (rlen)
        *rlen = n;
    return st;
}

static int32_t mirror_start(int fd, uint32_t block, int peer)
{
    dmce_msmp_mirror_start_t ms = {.block = block, .peer = (uint32_t)peer};
    snprintf(ms.path, sizeof(ms.path), "%s", harness_sock(peer));
    uint8_t buf[300];
    int n = dmce_msmp_mirror_start_encode(&ms, buf, sizeof(buf));
    assert_true(n > 0);
    return raw_call(fd, DMCE_MSMP_OP_MIRROR_START, buf, (uint32_t)n, NULL, 0, NULL);
}

static int32_t block_op(int fd, uint16_t op, uint32_t block, void *resp, size_t cap)
{
    uint8_t p[DMCE_MSMP_BLOCK_REQ_SIZE];
    dmce_msmp_block_req_encode(block, p);
    return raw_call(fd, op, p, sizeof(p), resp, cap, NULL);
}

/* The entry for `block` in daemon fd's blocks list; 0 if found. */
static int find_block(int fd, uint32_t block, dmce_msmp_block_info_t *out)
{
    static uint8_t buf[8 + 64 * DMCE_MSMP_BLOCK_INFO_SIZE];
    int n = 0;
    assert_int_equal(raw_call(fd, DMCE_MSMP_OP_BLOCKS, NULL, 0, buf, sizeof(buf), &n), 0);
    uint32_t count;
    assert_int_equal(dmce_msmp_blocks_count(buf, (size_t)n, &count), 0);
    for (uint32_t i = 0; i < count; i++) {
        assert_int_equal(dmce_msmp_block_info_decode(buf, (size_t)n, i, out), 0);
        if (out->block == block)
            return 0;
    }
    return -1;
}

struct synced_arg {
    int fd;
    uint32_t block;
};

static int is_synced(void *arg)
{
    struct synced_arg *a = arg;
    dmce_msmp_block_info_t e;
    return find_block(a->fd, a->block, &e) == 0 && e.mirror_state == 2;
}

static uint32_t block_of(dmce_client_t *c, dmce_addr_t a)
{
    dmce_addr_parts_t p;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &p), 0);
    return p.block;
}

/* A writer that keeps writing and remembers what was acknowledged. */
#define SLOTS 64
#define SLOT 512
struct writer {
    dmce_client_t *c;
    dmce_addr_t a; /* SLOTS x SLOT bytes */
    atomic_int stop;
    uint32_t acked[SLOTS]; /* last acknowledged sequence per slot */
    unsigned writes;
};

static void slot_bytes(uint8_t *b, unsigned slot, uint32_t seq)
{
    for (unsigned i = 0; i < SLOT; i++)
        b[i] = (uint8_t)(seq * 7u + slot * 13u + i);
    memcpy(b, &seq, sizeof(seq));
}

static void *writer_main(void *p)
{
    struct writer *w = p;
    uint8_t b[SLOT];
    for (uint32_t seq = 1; !atomic_load(&w->stop); seq++) {
        unsigned slot = (seq * 2654435761u) % SLOTS;
        slot_bytes(b, slot, seq);
        dmce_addr_t a;
        dmce_addr_add(dmce_client_layout(w->c), w->a, (uint64_t)slot * SLOT, &a);
        if (dmce_write(w->c, a, b, SLOT) == 0) {
            w->acked[slot] = seq;
            w->writes++;
        }
    }
    return NULL;
}

static void test_mirror_copy_under_writes_then_failover(void **state)
{
    (void)state;
    int one = 1;
    dmce_client_t *c;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    assert_int_equal(harness_client_opts(&c, &one, 1, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    /* Some allocations with known content, a big one to make the copy take a while. */
    dmce_addr_t big, small[16];
    assert_int_equal(dmce_malloc(c, 3 * MiB, &big), 0);
    uint8_t *pat = malloc(3 * MiB);
    for (size_t i = 0; i < 3 * MiB; i++)
        pat[i] = (uint8_t)(i * 31 + (i >> 12));
    assert_int_equal(dmce_write(c, big, pat, 3 * MiB), 0);
    for (int i = 0; i < 16; i++)
        assert_int_equal(dmce_malloc(c, 200 + (uint64_t)i, &small[i]), 0);
    uint32_t block = block_of(c, big);
    assert_int_equal(block_of(c, small[15]), block);

    struct writer w = {.c = c};
    assert_int_equal(dmce_malloc(c, SLOTS * SLOT, &w.a), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);

    /* The dispatcher's move: mirror the block on daemon 2, while the writer writes. */
    int f1 = raw_connect(1), f2 = raw_connect(2);
    assert_true(f1 >= 0 && f2 >= 0);
    assert_int_equal(mirror_start(f1, block, 2), 0);
    struct synced_arg sa = {f1, block};
    assert_true(harness_wait(is_synced, &sa, 20000));
    dmce_msmp_block_info_t e;
    assert_int_equal(find_block(f1, block, &e), 0);
    assert_int_equal(e.role, 0);
    assert_int_equal(e.peer, 2);
    assert_true(e.copied > 3 * MiB);
    assert_int_equal(find_block(f2, block, &e), 0);
    assert_int_equal(e.role, 1); /* daemon 2 holds a copy for daemon 1 */
    assert_int_equal(e.peer, 1);

    /* After the copy: the allocator's changes reach the mirror too. */
    for (int i = 0; i < 16; i += 2)
        assert_int_equal(dmce_free(c, small[i]), 0);
    dmce_addr_t late;
    assert_int_equal(dmce_malloc(c, 1000, &late), 0);
    assert_int_equal(block_of(c, late), block);
    uint8_t lb[1000];
    memset(lb, 0x6b, sizeof(lb));
    assert_int_equal(dmce_write(c, late, lb, sizeof(lb)), 0);

    atomic_store(&w.stop, 1);
    pthread_join(t, NULL);
    assert_true(w.writes > 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_int_equal(st.mirror_broken, 0);
    assert_int_equal(st.mirrors, 1);

    /* Daemon 1 dies. Its copy on daemon 2 becomes the block. */
    harness_kill(1);
    uint8_t pr[DMCE_MSMP_PROMOTE_RESP_SIZE];
    assert_int_equal(block_op(f2, DMCE_MSMP_OP_PROMOTE, block, pr, sizeof(pr)), 0);
    assert_int_equal(dmce_get_le64(pr), 1 + 8 + 1 + 1); /* big, 8 small, late, the slots */
    assert_int_equal(find_block(f2, block, &e), 0);
    assert_int_equal(e.role, 0);

    /* Read everything back from daemon 2, as the client would after failover. */
    assert_int_equal(raw_setup(f2, 0), 0);
    uint8_t *got = malloc(DMCE_MSMP_PAYLOAD_DEFAULT);
    for (uint64_t off = 0; off < 3 * MiB; off += 512 * KiB) {
        dmce_msmp_rw_req_t rq = {.addr = big + off, .len = 512 * KiB};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        int n = 0;
        assert_int_equal(raw_call(f2, DMCE_MSMP_OP_READ, p, sizeof(p), got, 512 * KiB, &n), 0);
        assert_memory_equal(got, pat + off, 512 * KiB);
    }
    for (unsigned slot = 0; slot < SLOTS; slot++) {
        if (!w.acked[slot])
            continue;
        dmce_msmp_rw_req_t rq = {.addr = w.a + (uint64_t)slot * SLOT, .len = SLOT};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE], want[SLOT];
        dmce_msmp_rw_req_encode(&rq, p);
        assert_int_equal(raw_call(f2, DMCE_MSMP_OP_READ, p, sizeof(p), got, SLOT, NULL), 0);
        slot_bytes(want, slot, w.acked[slot]); /* the last acknowledged write of the slot */
        assert_memory_equal(got, want, SLOT);
    }
    {
        dmce_msmp_rw_req_t rq = {.addr = late, .len = sizeof(lb)};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE];
        dmce_msmp_rw_req_encode(&rq, p);
        assert_int_equal(raw_call(f2, DMCE_MSMP_OP_READ, p, sizeof(p), got, sizeof(lb), NULL), 0);
        assert_memory_equal(got, lb, sizeof(lb));
        /* A freed one is freed there too. */
        rq.addr = small[0];
        rq.len = 1;
        dmce_msmp_rw_req_encode(&rq, p);
        assert_int_equal(raw_call(f2, DMCE_MSMP_OP_READ, p, sizeof(p), got, 1, NULL),
                         DMCE_EBADADDR);
    }
    /* The allocations were adopted by their owner's session, orphaned for now. */
    uint8_t sb[DMCE_MSMP_STATS_SIZE + 256];
    int n = 0;
    assert_int_equal(raw_call(f2, DMCE_MSMP_OP_STATS, NULL, 0, sb, sizeof(sb), &n), 0);
    uint64_t v[DMCE_STAT_COUNT_];
    assert_int_equal(dmce_msmp_stats_decode(sb, (size_t)n, v), 0);
    assert_true(v[DMCE_STAT_SESSIONS_ORPHANED] >= 1);
    assert_int_equal(v[DMCE_STAT_PROMOTED], 1);
    assert_true(v[DMCE_STAT_BYTES_USED] >= 3 * MiB);

    free(got);
    free(pat);
    close(f1);
    close(f2);
    dmce_abandon(c);
    assert_int_equal(
        harness_start(1, "--block-size=4M", "--max-blocks=8", "--grace-ms=60000", NULL), 0);
}

/* A mirror that stops being a copy (scribbled on) is dropped at the next change. */
static void test_diverged_mirror_is_dropped(void **state)
{
    (void)state;
    int two = 2;
    dmce_client_t *c;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    assert_int_equal(harness_client_opts(&c, &two, 1, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    uint32_t block = block_of(c, a);
    int f2 = raw_connect(2);
    assert_int_equal(mirror_start(f2, block, 1), 0);
    struct synced_arg sa = {f2, block};
    assert_true(harness_wait(is_synced, &sa, 20000));
    /* Scribble on the mirror's allocation map through its shm object. */
    char name[300];
    snprintf(name, sizeof(name), "/dmce.%u.%s.m1.b%u", (unsigned)geteuid(), H.cluster, block);
    int fd = shm_open(name, O_RDWR, 0);
    assert_true(fd >= 0);
    uint8_t *mb = mmap(NULL, 4 * MiB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(mb != MAP_FAILED);
    memset(mb + 256, 0xff, 4096); /* the granule map starts after the 256-byte header */
    munmap(mb, 4 * MiB);
    close(fd);
    dmce_addr_t b2;
    assert_int_equal(dmce_malloc(c, 100, &b2), 0); /* still works: the primary is fine */
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_int_equal(st.mirror_broken, 1);
    assert_int_equal(st.mirrors, 0);
    dmce_msmp_block_info_t e;
    assert_int_equal(find_block(f2, block, &e), 0);
    assert_int_equal(e.mirror_state, 0);
    /* The stale copy on daemon 1 is dropped when asked. */
    int f1 = raw_connect(1);
    assert_int_equal(block_op(f1, DMCE_MSMP_OP_DROP, block, NULL, 0), 0);
    assert_int_equal(find_block(f1, block, &e), -1);
    close(f1);
    close(f2);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* Every malformed or impossible mirroring request gets its own error. */
/*
 * mirror_create for a copy that exists: replaced only when the process that
 * asked for it asks again on the same or a newer connection (it lost the
 * answer, or could not map the copy). The same request on an older
 * connection is the one the primary gave up on, served late by the peer's
 * other worker: EEXIST, never a pull of the copy the primary uses (found by
 * the fault sweep under ASan: the primary was left mirroring into an
 * unlinked object).
 */
static void test_mirror_create_again(void **state)
{
    (void)state;
    static uint8_t r[4096]; /* answers: stats, the 16 bytes of mirror_create */
    dmce_msmp_mirror_create_t mc = {.block = 4001, .primary = 1, .size = 4 * MiB};
    uint8_t p[DMCE_MSMP_MIRROR_CREATE_SIZE];
    dmce_msmp_mirror_create_encode(&mc, p);
    int older = raw_connect(2);
    assert_true(older >= 0);
    /* accepted before the next one: it has answered */
    assert_int_equal(raw_call(older, DMCE_MSMP_OP_STATS, NULL, 0, r, sizeof(r), NULL), 0);
    int newer = raw_connect(2);
    assert_true(newer >= 0);
    assert_int_equal(raw_call(newer, DMCE_MSMP_OP_STATS, NULL, 0, r, sizeof(r), NULL), 0);
    assert_int_equal(raw_call(newer, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), r, sizeof(r), NULL),
                     0);
    assert_int_equal(raw_call(older, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), r, sizeof(r), NULL),
                     -EEXIST);
    assert_int_equal(raw_call(newer, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), r, sizeof(r), NULL),
                     0);
    int newest = raw_connect(2);
    assert_true(newest >= 0);
    assert_int_equal(raw_call(newest, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), r, sizeof(r), NULL),
                     0);
    /* another primary's ID: never its copy to replace */
    mc.primary = 3;
    dmce_msmp_mirror_create_encode(&mc, p);
    assert_int_equal(raw_call(newest, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), r, sizeof(r), NULL),
                     -EEXIST);
    assert_int_equal(block_op(newest, DMCE_MSMP_OP_DROP, 4001, NULL, 0), 0);
    assert_int_equal(block_op(newest, DMCE_MSMP_OP_DROP, 4001, NULL, 0), DMCE_ENOBLOCK);
    close(older);
    close(newer);
    close(newest);
}

static void test_mirror_bad_requests(void **state)
{
    (void)state;
    int one = 1;
    dmce_client_t *c;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    assert_int_equal(harness_client_opts(&c, &one, 1, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    uint32_t block = block_of(c, a);
    int f1 = raw_connect(1);
    assert_int_equal(mirror_start(f1, 4000, 2), DMCE_ENOBLOCK); /* no such block */
    assert_int_equal(mirror_start(f1, block, 1), -EINVAL);      /* onto itself */
    assert_int_equal(block_op(f1, DMCE_MSMP_OP_PROMOTE, block, NULL, 0), -EALREADY);
    assert_int_equal(block_op(f1, DMCE_MSMP_OP_PROMOTE, 4000, NULL, 0), DMCE_ENOBLOCK);
    assert_int_equal(block_op(f1, DMCE_MSMP_OP_DROP, 4000, NULL, 0), DMCE_ENOBLOCK);
    assert_int_equal(block_op(f1, DMCE_MSMP_OP_DROP, block, NULL, 0), -ENOENT); /* no mirror */
    uint8_t bad[8] = {1, 0, 0, 0, 9, 0, 0, 0}; /* reserved word not 0 */
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PROMOTE, bad, sizeof(bad), NULL, 0, NULL), -EBADMSG);
    /* mirror_create: the block is its own daemon's, or exists, or is malformed. */
    dmce_msmp_mirror_create_t mc = {.block = block, .primary = 1, .size = 4 * MiB};
    uint8_t p[DMCE_MSMP_MIRROR_CREATE_SIZE];
    dmce_msmp_mirror_create_encode(&mc, p);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), NULL, 0, NULL),
                     -EINVAL);
    mc.primary = 2;
    dmce_msmp_mirror_create_encode(&mc, p);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), NULL, 0, NULL),
                     -EEXIST);
    mc.size = 1000; /* not whole pages */
    dmce_msmp_mirror_create_encode(&mc, p);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), NULL, 0, NULL),
                     -EBADMSG);
    /* persist: needs a session, a live allocation; succeeds with no mirror. */
    dmce_msmp_range_t rg = {.addr = a, .len = 100};
    uint8_t rp[DMCE_MSMP_RANGE_SIZE];
    dmce_msmp_range_encode(&rg, rp);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rp, sizeof(rp), NULL, 0, NULL),
                     DMCE_ENOSETUP);
    assert_int_equal(raw_setup(f1, 0), 0);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rp, sizeof(rp), NULL, 0, NULL), 0);
    rg.len = 101;
    dmce_msmp_range_encode(&rg, rp);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rp, sizeof(rp), NULL, 0, NULL),
                     DMCE_ECROSSEND);
    /* Several ranges: 1..64 of 16 bytes; one bad range fails the request. */
    uint8_t rv[(DMCE_MSMP_PERSIST_MAX + 1) * DMCE_MSMP_RANGE_SIZE];
    for (unsigned i = 0; i <= DMCE_MSMP_PERSIST_MAX; i++) {
        rg = (dmce_msmp_range_t){.addr = a + i, .len = 100 - i % 64};
        dmce_msmp_range_encode(&rg, rv + i * DMCE_MSMP_RANGE_SIZE);
    }
    const uint32_t one_rg = DMCE_MSMP_RANGE_SIZE, all = DMCE_MSMP_PERSIST_MAX * one_rg;
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, 2 * one_rg, NULL, 0, NULL), 0);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, all, NULL, 0, NULL), 0);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, all + one_rg, NULL, 0, NULL),
                     -EBADMSG); /* 65 ranges */
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, one_rg + 1, NULL, 0, NULL), -EBADMSG);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, 0, NULL, 0, NULL), -EBADMSG);
    rg = (dmce_msmp_range_t){.addr = a + 50, .len = 51}; /* ends at 101 */
    dmce_msmp_range_encode(&rg, rv + 3 * one_rg);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, 4 * one_rg, NULL, 0, NULL),
                     DMCE_ECROSSEND);
    rg = (dmce_msmp_range_t){.addr = a, .len = 1}; /* then a range in no block */
    assert_int_equal(dmce_addr_encode(dmce_client_layout(c), 0, 4000, 128, &rg.addr), 0);
    dmce_msmp_range_encode(&rg, rv + 3 * one_rg);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_PERSIST, rv, 4 * one_rg, NULL, 0, NULL),
                     DMCE_ENOBLOCK);
    close(f1);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* ---- a copy asked for while a daemon starts ---- */

struct during_start {
    int32_t status;   /* mirror_create's answer */
    int was_starting; /* the daemon still said so after answering */
};

/* raw_call without cmocka's asserts (they must not run on another thread): status or 1. */
static int32_t quiet_call(int fd, uint16_t op, const void *p, uint32_t len, void *resp, size_t cap,
                          int *rlen)
{
    int32_t st = 1;
    if (raw_send(fd, op, 7, p, len) < 0)
        return 1;
    int n = raw_recv(fd, &st, NULL, NULL, resp, cap);
    if (n < 0)
        return 1;
    if (rlen)
        *rlen = n;
    return st;
}

static int starting_of(int fd)
{
    uint8_t buf[DMCE_MSMP_STATS_SIZE + 512];
    int n = 0;
    if (quiet_call(fd, DMCE_MSMP_OP_STATS, NULL, 0, buf, sizeof(buf), &n) != 0)
        return -1;
    uint64_t v[DMCE_STAT_COUNT_];
    return dmce_msmp_stats_decode(buf, (size_t)n, v) == 0 ? (int)v[DMCE_STAT_STARTING] : -1;
}

/* Daemon 3 as soon as it answers, while it starts: a mirror_create for block 4000 of memd[1]. */
static void *create_during_start(void *arg)
{
    struct during_start *d = arg;
    uint64_t deadline = dmce_now_ms() + 10000;
    int fd = -1;
    while (fd < 0 && dmce_now_ms() < deadline)
        if ((fd = raw_connect(3)) < 0)
            usleep(2000);
    if (fd < 0)
        return NULL;
    dmce_msmp_mirror_create_t mc = {.block = 4000, .primary = 1, .size = 4 * MiB};
    uint8_t p[DMCE_MSMP_MIRROR_CREATE_SIZE];
    dmce_msmp_mirror_create_encode(&mc, p);
    uint8_t resp[DMCE_MSMP_MIRROR_CREATE_SIZE]; /* (the descriptor is dropped by read()) */
    d->status = quiet_call(fd, DMCE_MSMP_OP_MIRROR_CREATE, p, sizeof(p), resp, sizeof(resp), NULL);
    d->was_starting = starting_of(fd) == 1;
    close(fd);
    return NULL;
}

/*
 * A peer's mirror_create is served while a daemon starts (the dispatcher
 * asks for copies as soon as it registers), and the copy is not one of the
 * daemon's initial blocks: it still makes its own (found by the failover
 * benchmark: a restarted daemon that got a copy before its first block
 * served with no block of its own, and the cluster never looked healed).
 */
static void test_mirror_copy_during_start(void **state)
{
    (void)state;
    struct during_start d = {.status = 1};
    pthread_t t;
    setenv("DMCE_TEST_START_PAUSE_MS", "2000", 1);
    assert_int_equal(pthread_create(&t, NULL, create_during_start, &d), 0);
    int r = harness_start(3, "--block-size=4M", "--max-blocks=8", NULL);
    unsetenv("DMCE_TEST_START_PAUSE_MS");
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(r, 0);
    assert_int_equal(d.status, 0);
    if (!d.was_starting)
        fail_msg("the copy was made after the start (the 2 s pause was over): nothing proved");
    int fd = raw_connect(3);
    assert_true(fd >= 0);
    uint8_t buf[DMCE_MSMP_STATS_SIZE + 512];
    int n = 0;
    assert_int_equal(raw_call(fd, DMCE_MSMP_OP_STATS, NULL, 0, buf, sizeof(buf), &n), 0);
    uint64_t v[DMCE_STAT_COUNT_];
    assert_int_equal(dmce_msmp_stats_decode(buf, (size_t)n, v), 0);
    assert_int_equal(v[DMCE_STAT_BLOCKS], 1);        /* its own */
    assert_int_equal(v[DMCE_STAT_MIRROR_COPIES], 1); /* and the copy */
    close(fd);
    assert_int_equal(harness_stop(3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mirror_copy_under_writes_then_failover),
        cmocka_unit_test(test_diverged_mirror_is_dropped),
        cmocka_unit_test(test_mirror_bad_requests),
        cmocka_unit_test(test_mirror_create_again),
        cmocka_unit_test(test_mirror_copy_during_start),
    };
    return cmocka_run_group_tests(tests, setup_daemons, teardown_daemons);
}
