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
 *   - a mirror whose holder died is kept in step by the primary, and the
 *     next daemon asked to hold it takes that object over with no byte
 *     copied (mirror_adopt); after mirror_keep_ms, or when that daemon
 *     cannot take it, a fresh copy is made; every write, malloc and free
 *     made meanwhile is in the copy that is finally promoted;
 *   - every bad request gets its error.
 */
#include <dirent.h>
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
#include <sys/stat.h>
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

/*
 * drop with DMCE_MSMP_DROP_KEEP, as the dispatcher tells a primary that its
 * mirror's holder died. *kept: whether the primary says it keeps the copy.
 */
static int32_t drop_dead_holder(int fd, uint32_t block, int *kept)
{
    uint8_t p[DMCE_MSMP_BLOCK_REQ_SIZE], resp[DMCE_MSMP_DROP_RESP_SIZE];
    int n = 0;
    dmce_msmp_drop_req_encode(block, DMCE_MSMP_DROP_KEEP, p);
    int32_t st = raw_call(fd, DMCE_MSMP_OP_DROP, p, sizeof(p), resp, sizeof(resp), &n);
    *kept = st == 0 && n == (int)sizeof(resp) && dmce_get_le32(resp) == DMCE_MSMP_DROP_KEPT;
    if (st == 0 && !*kept)
        assert_int_equal(n, 0); /* not kept: no payload */
    return st;
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

/* ---- kept copies: a mirror whose holder died, taken over by a new holder ---- */

/*
 * Daemons 1, 2 and 3 for each of these tests (a fresh runtime directory and
 * cluster each time): daemon 1 holds the block, daemon 2 its first mirror,
 * daemon 3 the next one. Extra flags for daemon 1 and daemon 3.
 */
#define KEPT_FLAGS "--block-size=4M", "--max-blocks=8", "--grace-ms=60000"
#define KEEP_LONG "--mirror-keep-ms=600000"

static char kept_shm_dir[128]; /* daemon 3's shm_dir in test_kept_copy_refused_by_peer */

static int setup_kept(const char *flag1, const char *flag3)
{
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start(1, KEPT_FLAGS, flag1, NULL), 0);
    assert_int_equal(harness_start(2, KEPT_FLAGS, NULL), 0);
    assert_int_equal(harness_start(3, KEPT_FLAGS, flag3, NULL), 0);
    return 0;
}

static int setup_kept_default(void **state)
{
    (void)state;
    return setup_kept(NULL, NULL);
}

/* Daemon 1 keeps a copy whose holder is gone for 10 minutes: no test is slow enough to lose it. */
static int setup_kept_long(void **state)
{
    (void)state;
    return setup_kept(KEEP_LONG, NULL);
}

/* Daemon 1 keeps a copy whose holder is gone for 200 ms only. */
static int setup_kept_short(void **state)
{
    (void)state;
    return setup_kept("--mirror-keep-ms=200", NULL);
}

/* Daemon 3 keeps its objects in a directory of its own: it cannot see daemon 1's names. */
static int setup_kept_other_dir(void **state)
{
    (void)state;
    static char flag[200];
    snprintf(kept_shm_dir, sizeof(kept_shm_dir), "/dev/shm/dmce-test-%d", (int)getpid());
    assert_int_equal(mkdir(kept_shm_dir, 0700), 0);
    snprintf(flag, sizeof(flag), "--shm-dir=%s", kept_shm_dir);
    return setup_kept(KEEP_LONG, flag);
}

static void kept_forget(void);

static int teardown_kept(void **state)
{
    (void)state;
    kept_forget(); /* after a failure: its writer stops before its daemon does */
    for (int id = 1; id <= 3; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    if (kept_shm_dir[0]) { /* what daemon 3 left there (a promoted block of a killed test) */
        DIR *d = opendir(kept_shm_dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char p[400];
            snprintf(p, sizeof(p), "%s/%s", kept_shm_dir, e->d_name);
            if (e->d_name[0] != '.')
                unlink(p);
        }
        if (d)
            closedir(d);
        rmdir(kept_shm_dir);
        kept_shm_dir[0] = 0;
    }
    return 0;
}

static void stats_of(int id, dmce_stats_t *st)
{
    assert_int_equal(harness_sock_stats(harness_sock(id), st), 0);
}

/*
 * The path of a cluster object in /dev/shm: daemon's copy or block `id`
 * (which = 'b') or the name under which daemon hands over its kept copy of
 * block `id` (which = 'h').
 */
static const char *obj_path(int daemon, char which, uint32_t id)
{
    static char p[8][300]; /* a few at a time */
    static unsigned k;
    char *s = p[k++ % 8];
    snprintf(s, sizeof(p[0]), "/dev/shm/dmce.%u.%s.m%d.%c%u", (unsigned)geteuid(), H.cluster,
             daemon, which, id);
    return s;
}

static int obj_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

struct mirrored_arg {
    int fd; /* to the primary */
    uint32_t block;
    int peer;
};

/* The primary's blocks report says the block is mirrored, in step, on peer. */
static int is_mirrored_on(void *arg)
{
    struct mirrored_arg *a = arg;
    dmce_msmp_block_info_t e;
    return find_block(a->fd, a->block, &e) == 0 && e.peer == (uint32_t)a->peer &&
           e.mirror_state == 2;
}

static int no_kept_copy(void *arg)
{
    dmce_stats_t st;
    return harness_sock_stats(harness_sock(*(int *)arg), &st) == 0 && st.mirrors_kept == 0;
}

/* An allocation and what it must hold: every write goes to both. */
struct obj {
    dmce_addr_t a;
    uint64_t len;
    uint8_t *shadow;
    int freed;
};

static void obj_write(dmce_client_t *c, struct obj *o, uint64_t off, uint64_t len, unsigned seed)
{
    assert_true(off + len <= o->len);
    for (uint64_t i = 0; i < len; i++)
        o->shadow[off + i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
    dmce_addr_t a;
    assert_int_equal(dmce_addr_add(dmce_client_layout(c), o->a, off, &a), 0);
    assert_int_equal(dmce_write(c, a, o->shadow + off, len), 0);
}

/* malloc len bytes and write all of them. */
static void obj_new(dmce_client_t *c, struct obj *o, uint64_t len, unsigned seed)
{
    *o = (struct obj){.len = len, .shadow = malloc(len)};
    assert_non_null(o->shadow);
    assert_int_equal(dmce_malloc(c, len, &o->a), 0);
    obj_write(c, o, 0, len, seed);
}

static void obj_free(dmce_client_t *c, struct obj *o)
{
    assert_int_equal(dmce_free(c, o->a), 0);
    o->freed = 1;
}

/*
 * Read o back over raw socket fd (with a session): its last writes, or no
 * allocation if freed (and not reused by a later one: reused is set).
 */
static void obj_check(int fd, const struct obj *o, int reused)
{
    static uint8_t got[256 * KiB];
    uint8_t p[DMCE_MSMP_RW_REQ_SIZE];
    if (o->freed) {
        if (reused)
            return; /* the later allocation is checked */
        dmce_msmp_rw_req_t rq = {.addr = o->a, .len = 1};
        dmce_msmp_rw_req_encode(&rq, p);
        assert_int_equal(raw_call(fd, DMCE_MSMP_OP_READ, p, sizeof(p), got, 1, NULL),
                         DMCE_EBADADDR);
        return;
    }
    for (uint64_t off = 0; off < o->len; off += sizeof(got)) {
        uint64_t n = DMCE_MIN(o->len - off, (uint64_t)sizeof(got));
        dmce_msmp_rw_req_t rq = {.addr = o->a + off, .len = n};
        dmce_msmp_rw_req_encode(&rq, p);
        int rl = 0;
        assert_int_equal(raw_call(fd, DMCE_MSMP_OP_READ, p, sizeof(p), got, n, &rl), 0);
        assert_int_equal(rl, (int)n);
        assert_memory_equal(got, o->shadow + off, n);
    }
}

#define KEPT_OBJS 8
struct kept {
    dmce_client_t *c;   /* daemon 1's client, MSMP only: every write goes through the daemon */
    int f1;             /* raw connection to daemon 1 */
    uint32_t block;     /* daemon 1's block, everything below is in it */
    struct obj o[KEPT_OBJS]; /* 0: 1 MiB; 1..3: small ones; 4..7: made later */
    dmce_stats_t d1;    /* daemon 1's stats just after the drop */
    struct writer w;    /* writes all along, from before the holder dies to the failover */
    pthread_t wt;
    int writing;
};

static void kept_stop_writer(struct kept *k)
{
    if (!k->writing)
        return;
    atomic_store(&k->w.stop, 1);
    pthread_join(k->wt, NULL);
    k->writing = 0;
    assert_true(k->w.writes > 0);
}

/* The running test's (file scope: its writer outlives a failed test until the teardown). */
static struct kept kept_now;

static void kept_forget(void)
{
    if (kept_now.writing) {
        atomic_store(&kept_now.w.stop, 1);
        pthread_join(kept_now.wt, NULL);
    }
    for (int i = 0; i < KEPT_OBJS; i++)
        free(kept_now.o[i].shadow);
    memset(&kept_now, 0, sizeof(kept_now));
}

/*
 * Steps 1 and 2: allocations with known content on daemon 1, its block
 * mirrored on daemon 2 (in step); daemon 2 killed and the mirror dropped as
 * the dispatcher would: daemon 1 keeps the copy. Then more writes, a free
 * and a malloc, made on the block and on the copy nobody holds. A writer
 * thread writes all along, from before the mirror is made to the failover.
 */
static void kept_begin(struct kept *k)
{
    int one = 1;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    assert_int_equal(harness_client_opts(&k->c, &one, 1, &o), 0);
    assert_int_equal(dmce_setup(k->c, 0, 0, NULL, NULL), 0);
    obj_new(k->c, &k->o[0], 1 * MiB, 1);
    for (int i = 1; i <= 3; i++)
        obj_new(k->c, &k->o[i], 300 + 100 * (uint64_t)i, 1 + (unsigned)i);
    k->block = block_of(k->c, k->o[0].a);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(block_of(k->c, k->o[i].a), k->block);
    k->w.c = k->c;
    assert_int_equal(dmce_malloc(k->c, SLOTS * SLOT, &k->w.a), 0);
    assert_int_equal(block_of(k->c, k->w.a), k->block);
    assert_int_equal(pthread_create(&k->wt, NULL, writer_main, &k->w), 0);
    k->writing = 1;

    k->f1 = raw_connect(1);
    assert_true(k->f1 >= 0);
    assert_int_equal(mirror_start(k->f1, k->block, 2), 0);
    struct mirrored_arg ma = {k->f1, k->block, 2};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    assert_true(obj_exists(obj_path(2, 'b', k->block)));

    /* The holder dies; the dispatcher tells the primary, which keeps the copy in step. */
    harness_kill(2);
    uint64_t t0 = dmce_now_ms();
    int kept = 0;
    assert_int_equal(drop_dead_holder(k->f1, k->block, &kept), 0);
    assert_true(kept); /* it says so */
    stats_of(1, &k->d1);
    /* Kept for mirror_keep_ms: only a daemon with a short one may have let it go already. */
    if (k->d1.mirrors_kept != 1)
        assert_true(k->d1.mirrors_kept == 0 && dmce_now_ms() - t0 >= 200);
    assert_int_equal(k->d1.mirrors, 0);      /* not a mirror: nobody holds it */
    assert_int_equal(k->d1.mirror_broken, 1); /* counted as lost, once */
    dmce_msmp_block_info_t e;
    assert_int_equal(find_block(k->f1, k->block, &e), 0);
    assert_int_equal(e.role, 0);
    assert_int_equal(e.peer, 0);
    assert_int_equal(e.mirror_state, 0);
    assert_int_equal(drop_dead_holder(k->f1, k->block, &kept), -ENOENT); /* once */

    /* Writes, a free and a malloc while nobody holds the copy. */
    obj_write(k->c, &k->o[0], 4096, 64 * KiB, 10);
    obj_write(k->c, &k->o[1], 0, k->o[1].len, 11);
    obj_free(k->c, &k->o[2]);
    obj_new(k->c, &k->o[4], 5000, 12);
    assert_int_equal(block_of(k->c, k->o[4].a), k->block);
}

/* More changes once the new holder holds the mirror (it is in step there). */
static void kept_more(struct kept *k)
{
    obj_write(k->c, &k->o[0], 512 * KiB, 100 * KiB + 3, 20);
    obj_write(k->c, &k->o[3], 10, 200, 21);
    obj_free(k->c, &k->o[1]);
    obj_new(k->c, &k->o[5], 2000, 22);
    obj_write(k->c, &k->o[4], 100, 100, 23);
    assert_int_equal(block_of(k->c, k->o[5].a), k->block);
}

/*
 * Daemon 1 dies: the copy on holder is promoted and must hold every write,
 * malloc and free, before the first holder died, while the copy was kept
 * (or after it was let go) and after holder took it.
 */
static void kept_failover(struct kept *k, int holder)
{
    kept_stop_writer(k);
    harness_kill(1);
    int fd = raw_connect(holder);
    assert_true(fd >= 0);
    uint8_t pr[DMCE_MSMP_PROMOTE_RESP_SIZE];
    assert_int_equal(block_op(fd, DMCE_MSMP_OP_PROMOTE, k->block, pr, sizeof(pr)), 0);
    uint64_t live = 1; /* the writer's slots */
    for (int i = 0; i < KEPT_OBJS; i++)
        live += k->o[i].shadow && !k->o[i].freed;
    assert_int_equal(dmce_get_le64(pr), live);
    assert_int_equal(raw_setup(fd, 0), 0);
    for (int i = 0; i < KEPT_OBJS; i++) {
        const struct obj *o = &k->o[i];
        int reused = 0; /* its room taken by a later malloc (same block: addresses compare) */
        for (int j = 0; j < KEPT_OBJS; j++)
            reused |= o->freed && k->o[j].shadow && !k->o[j].freed && k->o[j].a < o->a + o->len &&
                      o->a < k->o[j].a + k->o[j].len;
        if (o->shadow)
            obj_check(fd, o, reused);
    }
    for (unsigned slot = 0; slot < SLOTS; slot++) { /* each slot's last acknowledged write */
        if (!k->w.acked[slot])
            continue;
        dmce_msmp_rw_req_t rq = {.addr = k->w.a + (uint64_t)slot * SLOT, .len = SLOT};
        uint8_t p[DMCE_MSMP_RW_REQ_SIZE], want[SLOT], got[SLOT];
        dmce_msmp_rw_req_encode(&rq, p);
        assert_int_equal(raw_call(fd, DMCE_MSMP_OP_READ, p, sizeof(p), got, SLOT, NULL), 0);
        slot_bytes(want, slot, k->w.acked[slot]);
        assert_memory_equal(got, want, SLOT);
    }
    close(fd);
    dmce_stats_t st;
    stats_of(holder, &st);
    assert_int_equal(st.promoted, 1);
}

static void kept_end(struct kept *k)
{
    close(k->f1);
    dmce_abandon(k->c); /* its daemon is dead */
}

/*
 * mirror_start of the kept copy's block to daemon `peer`, which must take
 * the copy over: nothing copied since d1 (daemon 1's stats before), the
 * peer holding one copy, taken over, under its own name; the handover name
 * gone. `broken`: daemon 1's mirror_broken by then. Returns daemon 1's stats.
 */
static dmce_stats_t expect_taken_over(struct kept *k, int peer, const dmce_stats_t *d1,
                                      uint64_t broken)
{
    assert_int_equal(mirror_start(k->f1, k->block, peer), 0);
    struct mirrored_arg ma = {k->f1, k->block, peer};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    dmce_stats_t a1, ap;
    stats_of(1, &a1);
    stats_of(peer, &ap);
    assert_int_equal(ap.mirror_adopted, 1);
    assert_int_equal(ap.mirror_copies, 1);
    assert_int_equal(a1.mirrors, 1);
    assert_int_equal(a1.mirrors_kept, 0);
    assert_int_equal(a1.mirror_bytes_copied, d1->mirror_bytes_copied); /* not a byte copied */
    assert_int_equal(a1.mirror_broken, broken);
    assert_true(obj_exists(obj_path(peer, 'b', k->block)));
    assert_false(obj_exists(obj_path(1, 'h', k->block)));
    return a1;
}

/*
 * The copy kept after its holder died is taken over by the next daemon
 * asked to mirror the block, as it is: nothing copied, every change made
 * meanwhile in it; the handover name and the dead holder's name are gone.
 */
static void test_kept_copy_is_taken_over(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    assert_int_equal(k->d1.mirrors_kept, 1);
    dmce_stats_t d1, d3;
    stats_of(1, &d1);
    stats_of(3, &d3);
    assert_int_equal(d1.mirrors_kept, 1);
    assert_int_equal(d3.mirror_copies, 0);
    assert_int_equal(d3.mirror_adopted, 0);
    assert_true(obj_exists(obj_path(2, 'b', k->block))); /* the kept copy: daemon 2's object */

    dmce_stats_t a1 = expect_taken_over(k, 3, &d1, 1);
    dmce_msmp_block_info_t e;
    assert_int_equal(find_block(k->f1, k->block, &e), 0);
    assert_int_equal(e.role, 0);
    assert_int_equal(e.peer, 3);
    int f3 = raw_connect(3);
    assert_true(f3 >= 0);
    assert_int_equal(find_block(f3, k->block, &e), 0);
    assert_int_equal(e.role, 1); /* daemon 3 holds a copy for daemon 1 */
    assert_int_equal(e.peer, 1);
    close(f3);
    /* One object, renamed: daemon 3's name; daemon 2's name is gone too. */
    assert_false(obj_exists(obj_path(2, 'b', k->block)));

    kept_more(k);
    stats_of(1, &a1);
    assert_int_equal(a1.mirror_broken, 1); /* the taken copy agreed with every change */
    assert_int_equal(a1.mirrors, 1);
    kept_failover(k, 3);
    assert_false(obj_exists(obj_path(1, 'h', k->block)));
    kept_end(k);
}

/*
 * Taken over twice: daemon 3, which took the copy over, dies in turn; the
 * copy is kept again and taken over by daemon 2, restarted meanwhile
 * (daemon 3 removed daemon 2's old name for it when it took it over).
 */
static void test_kept_copy_taken_over_twice(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    dmce_stats_t d1;
    stats_of(1, &d1);
    assert_int_equal(mirror_start(k->f1, k->block, 3), 0);
    struct mirrored_arg ma = {k->f1, k->block, 3};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    kept_more(k);

    harness_kill(3);
    int kept = 0;
    assert_int_equal(drop_dead_holder(k->f1, k->block, &kept), 0);
    assert_true(kept);
    dmce_stats_t a1;
    stats_of(1, &a1);
    assert_int_equal(a1.mirrors_kept, 1);
    assert_int_equal(a1.mirrors, 0);
    assert_int_equal(a1.mirror_broken, 2);
    obj_write(k->c, &k->o[0], 0, 1000, 40);
    obj_free(k->c, &k->o[3]);
    obj_new(k->c, &k->o[6], 3000, 41);

    assert_int_equal(harness_start(2, KEPT_FLAGS, NULL), 0);
    assert_true(obj_exists(obj_path(3, 'b', k->block))); /* the kept copy, named by daemon 3 */
    assert_false(obj_exists(obj_path(2, 'b', k->block)));
    expect_taken_over(k, 2, &d1, 2); /* never copied again */
    assert_false(obj_exists(obj_path(3, 'b', k->block)));

    obj_write(k->c, &k->o[4], 0, k->o[4].len, 42);
    obj_new(k->c, &k->o[7], 100, 43);
    kept_failover(k, 2);
    kept_end(k);
}

/*
 * The dead holder comes back before the block is mirrored again, and is the
 * new holder. At its start it removes the objects its previous process left,
 * the name the kept copy had among them: the copy is still taken over (it
 * has a name of the primary's too), nothing copied and nothing lost.
 */
static void test_kept_copy_holder_restarted(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    dmce_stats_t d1;
    stats_of(1, &d1);
    assert_int_equal(d1.mirrors_kept, 1);
    assert_int_equal(harness_start(2, KEPT_FLAGS, NULL), 0);
    assert_false(obj_exists(obj_path(2, 'b', k->block))); /* removed at its start */
    obj_write(k->c, &k->o[0], 700 * KiB, 9000, 50); /* after the restart: the kept copy too */

    expect_taken_over(k, 2, &d1, 1);

    kept_more(k);
    kept_failover(k, 2);
    kept_end(k);
}

/* A daemon that stops while it keeps a copy leaves no name of its own for it. */
static void test_kept_copy_gone_with_its_daemon(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    assert_int_equal(k->d1.mirrors_kept, 1);
    kept_stop_writer(k);
    close(k->f1);
    k->f1 = -1;
    dmce_abandon(k->c);
    k->c = NULL;
    assert_int_equal(harness_stop(1), 0);
    assert_false(obj_exists(obj_path(1, 'h', k->block)));
    assert_false(obj_exists(obj_path(1, 'b', k->block)));
}

/*
 * A drop without DMCE_MSMP_DROP_KEEP (the dispatcher's drain: the holder
 * lives and drops its own copy) never keeps the copy: two daemons must
 * never hold one object. Nothing kept, no handover name, no payload.
 */
static void test_drop_without_keep_detaches(void **state)
{
    (void)state;
    dmce_client_t *c;
    const int one[] = {1};
    assert_int_equal(harness_client(&c, one, 1), 0);
    assert_int_equal(dmce_setup(c, 1 * MiB, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 64 * KiB, &a), 0);
    uint32_t block = block_of(c, a);
    int f1 = raw_connect(1);
    assert_true(f1 >= 0);
    assert_int_equal(mirror_start(f1, block, 2), 0);
    struct mirrored_arg ma = {f1, block, 2};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    uint8_t resp[DMCE_MSMP_DROP_RESP_SIZE];
    int n = -1;
    uint8_t p[DMCE_MSMP_BLOCK_REQ_SIZE];
    dmce_msmp_block_req_encode(block, p);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_DROP, p, sizeof(p), resp, sizeof(resp), &n), 0);
    assert_int_equal(n, 0);
    dmce_stats_t d1;
    stats_of(1, &d1);
    assert_int_equal(d1.mirrors_kept, 0);
    assert_int_equal(d1.mirrors, 0);
    assert_false(obj_exists(obj_path(1, 'h', block)));
    /* Unknown flags are refused. */
    dmce_msmp_drop_req_encode(block, 2, p);
    assert_int_equal(raw_call(f1, DMCE_MSMP_OP_DROP, p, sizeof(p), resp, sizeof(resp), &n),
                     -EBADMSG);
    close(f1);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/*
 * A copy nobody takes within mirror_keep_ms is let go; the next mirror is a
 * fresh copy, as before kept copies existed.
 */
static void test_kept_copy_expires(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    int one = 1;
    assert_true(harness_wait(no_kept_copy, &one, 5000)); /* 200 ms, and the tick (100 ms) */
    assert_false(obj_exists(obj_path(1, 'h', k->block))); /* no name of daemon 1's left for it */
    dmce_stats_t d1, d3;
    stats_of(1, &d1);
    assert_int_equal(d1.mirrors, 0);
    assert_int_equal(d1.mirror_broken, 1); /* lost once: when its holder went */
    /* Changes with no copy at all. */
    obj_write(k->c, &k->o[0], 300 * KiB, 7000, 30);
    obj_new(k->c, &k->o[6], 700, 31);

    assert_int_equal(mirror_start(k->f1, k->block, 3), 0);
    struct mirrored_arg ma = {k->f1, k->block, 3};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    dmce_stats_t a1;
    stats_of(1, &a1);
    stats_of(3, &d3);
    assert_int_equal(d3.mirror_adopted, 0);
    assert_int_equal(d3.mirror_copies, 1);
    assert_int_equal(a1.mirrors, 1);
    assert_int_equal(a1.mirrors_kept, 0);
    assert_true(a1.mirror_bytes_copied >= d1.mirror_bytes_copied + k->o[0].len); /* copied */
    assert_true(obj_exists(obj_path(3, 'b', k->block)));
    assert_false(obj_exists(obj_path(1, 'h', k->block))); /* no handover tried */

    kept_more(k);
    kept_failover(k, 3);
    kept_end(k);
}

/*
 * A peer that cannot take the kept copy over (its objects live in another
 * directory: the handover name is not one of its own) refuses; the primary
 * lets the kept copy go and makes a fresh one on the same peer.
 */
static void test_kept_copy_refused_by_peer(void **state)
{
    (void)state;
    struct kept *k = &kept_now;
    kept_begin(k);
    assert_int_equal(k->d1.mirrors_kept, 1);
    dmce_stats_t d1;
    stats_of(1, &d1);

    assert_int_equal(mirror_start(k->f1, k->block, 3), 0);
    struct mirrored_arg ma = {k->f1, k->block, 3};
    assert_true(harness_wait(is_mirrored_on, &ma, 20000));
    dmce_stats_t a1, a3;
    stats_of(1, &a1);
    stats_of(3, &a3);
    assert_int_equal(a3.mirror_adopted, 0);
    assert_int_equal(a3.mirror_copies, 1);
    assert_int_equal(a1.mirrors, 1);
    assert_int_equal(a1.mirrors_kept, 0);
    assert_int_equal(a1.mirror_broken, 1); /* the kept copy's end is not counted again */
    assert_true(a1.mirror_bytes_copied >= d1.mirror_bytes_copied + k->o[0].len);
    assert_false(obj_exists(obj_path(1, 'h', k->block))); /* the handover name went anyway */
    char mine[400];
    snprintf(mine, sizeof(mine), "%s/dmce.%u.%s.m3.b%u", kept_shm_dir, (unsigned)geteuid(),
             H.cluster, k->block);
    assert_true(obj_exists(mine));

    kept_more(k);
    kept_failover(k, 3);
    kept_end(k);
}

/* A mirror_adopt request to daemon 3 (from no primary: the test plays one). */
static int32_t adopt_call(int fd, const dmce_msmp_mirror_adopt_t *rq)
{
    uint8_t p[DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX];
    int n = dmce_msmp_mirror_adopt_encode(rq, p, sizeof(p));
    assert_true(n > 0);
    return raw_call(fd, DMCE_MSMP_OP_MIRROR_ADOPT, p, (uint32_t)n, NULL, 0, NULL);
}

/* Every malformed or impossible mirror_adopt gets its error, and nothing is taken. */
static void test_mirror_adopt_bad_requests(void **state)
{
    (void)state;
    int f3 = raw_connect(3);
    assert_true(f3 >= 0);
    const uint32_t block = 4000; /* no daemon's */
    dmce_msmp_mirror_adopt_t rq = {.block = block, .primary = 1, .size = 4 * MiB, .ino = 1,
                                   .holder = 2};
    char h[200]; /* the handover name of (daemon 1, block): a shm name */
    snprintf(h, sizeof(h), "%s", obj_path(1, 'h', block) + strlen("/dev/shm"));
    snprintf(rq.name, sizeof(rq.name), "%s", h);

    /* Malformed. */
    uint8_t p[DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX];
    int n = dmce_msmp_mirror_adopt_encode(&rq, p, sizeof(p));
    assert_true(n > (int)DMCE_MSMP_MIRROR_ADOPT_HDR);
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_ADOPT, p, 0, NULL, 0, NULL), -EBADMSG);
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_ADOPT, p, DMCE_MSMP_MIRROR_ADOPT_HDR - 1,
                              NULL, 0, NULL),
                     -EBADMSG);
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_ADOPT, p, (uint32_t)n - 1, NULL, 0, NULL),
                     -EBADMSG); /* shorter than its name length says */
    uint8_t q[sizeof(p) + 1];
    memcpy(q, p, (size_t)n);
    q[n] = 'x';
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_ADOPT, q, (uint32_t)n + 1, NULL, 0, NULL),
                     -EBADMSG); /* longer */
    memcpy(q, p, (size_t)n);
    q[DMCE_MSMP_MIRROR_ADOPT_HDR + 3] = 0; /* a NUL in the name */
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_ADOPT, q, (uint32_t)n, NULL, 0, NULL),
                     -EBADMSG);
    dmce_msmp_mirror_adopt_t bad = rq;
    bad.size = 4 * MiB + 100; /* not whole pages */
    assert_int_equal(adopt_call(f3, &bad), -EBADMSG);
    bad = rq;
    bad.block = 0;
    assert_int_equal(adopt_call(f3, &bad), -EBADMSG);
    bad = rq;
    bad.primary = 0;
    assert_int_equal(adopt_call(f3, &bad), -EBADMSG);
    /* Impossible: its own block; a size no block has. */
    bad = rq;
    bad.primary = 3;
    snprintf(bad.name, sizeof(bad.name), "%s", obj_path(3, 'h', block) + strlen("/dev/shm"));
    assert_int_equal(adopt_call(f3, &bad), -EINVAL);
    bad = rq;
    bad.size = 1ull << 41;
    assert_int_equal(adopt_call(f3, &bad), -EMSGSIZE);
    /* Not the handover name of (primary 1, block) here: never opened. */
    const char *others[] = {
        obj_path(1, 'b', block) + strlen("/dev/shm"),    /* daemon 1's own block name */
        obj_path(2, 'b', block) + strlen("/dev/shm"),    /* a holder's copy */
        obj_path(2, 'h', block) + strlen("/dev/shm"),    /* another primary's handover */
        obj_path(1, 'h', block + 1) + strlen("/dev/shm"), /* another block's */
        obj_path(1, 'h', block),                          /* a path, not the shm name */
        h + 1,                                            /* no leading slash */
    };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        bad = rq;
        snprintf(bad.name, sizeof(bad.name), "%s", others[i]);
        assert_int_equal(adopt_call(f3, &bad), -EXDEV);
    }
    char cl[200]; /* another cluster's */
    snprintf(cl, sizeof(cl), "/dmce.%u.%sx.m1.h%u", (unsigned)geteuid(), H.cluster, block);
    bad = rq;
    snprintf(bad.name, sizeof(bad.name), "%s", cl);
    assert_int_equal(adopt_call(f3, &bad), -EXDEV);

    /* The right name: no such object; then an object that is not the one named (inode). */
    assert_int_equal(adopt_call(f3, &rq), -ENOENT);
    int fd = shm_open(h, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(4 * MiB)), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    close(fd);
    rq.ino = (uint64_t)st.st_ino + 1;
    assert_int_equal(adopt_call(f3, &rq), -ESTALE);
    rq.ino = (uint64_t)st.st_ino;
    /* The right object, but smaller than the block. */
    bad = rq;
    bad.size = 8 * MiB;
    assert_int_equal(adopt_call(f3, &bad), -EPROTO);
    /* The right object for a block ID daemon 3 holds already (its own). */
    static uint8_t blk[8 + 64 * DMCE_MSMP_BLOCK_INFO_SIZE];
    int bl = 0;
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_BLOCKS, NULL, 0, blk, sizeof(blk), &bl), 0);
    dmce_msmp_block_info_t own;
    assert_int_equal(dmce_msmp_block_info_decode(blk, (size_t)bl, 0, &own), 0);
    assert_int_equal(own.role, 0);
    bad = rq;
    bad.block = own.block;
    snprintf(bad.name, sizeof(bad.name), "%s", obj_path(1, 'h', own.block) + strlen("/dev/shm"));
    assert_int_equal(rename(obj_path(1, 'h', block), obj_path(1, 'h', own.block)), 0);
    assert_int_equal(adopt_call(f3, &bad), -EEXIST);
    assert_int_equal(rename(obj_path(1, 'h', own.block), obj_path(1, 'h', block)), 0);
    /* Everything checks out, but the object is not a block (zeroes): not taken. */
    assert_int_equal(adopt_call(f3, &rq), DMCE_EBADMAGIC);
    assert_true(obj_exists(obj_path(1, 'h', block))); /* left for its maker */
    assert_false(obj_exists(obj_path(3, 'b', block)));
    dmce_msmp_block_info_t e;
    assert_int_equal(find_block(f3, block, &e), -1);
    assert_int_equal(shm_unlink(h), 0);

    /* Still serving, nothing taken, no room lost: a real copy can still be made. */
    dmce_stats_t d3;
    stats_of(3, &d3);
    assert_int_equal(d3.mirror_adopted, 0);
    assert_int_equal(d3.mirror_copies, 0);
    dmce_msmp_mirror_create_t mc = {.block = block, .primary = 1, .size = 4 * MiB};
    uint8_t cp[DMCE_MSMP_MIRROR_CREATE_SIZE], cr[DMCE_MSMP_MIRROR_CREATE_SIZE];
    dmce_msmp_mirror_create_encode(&mc, cp);
    assert_int_equal(raw_call(f3, DMCE_MSMP_OP_MIRROR_CREATE, cp, sizeof(cp), cr, sizeof(cr), NULL),
                     0);
    assert_int_equal(block_op(f3, DMCE_MSMP_OP_DROP, block, NULL, 0), 0);
    close(f3);
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
    /* Each with daemons 1, 2 and 3 of its own (one started with its flags). */
    const struct CMUnitTest kept[] = {
        cmocka_unit_test_setup_teardown(test_kept_copy_is_taken_over, setup_kept_long,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_kept_copy_taken_over_twice, setup_kept_long,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_kept_copy_holder_restarted, setup_kept_long,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_kept_copy_gone_with_its_daemon, setup_kept_long,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_kept_copy_expires, setup_kept_short, teardown_kept),
        cmocka_unit_test_setup_teardown(test_drop_without_keep_detaches, setup_kept_long,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_kept_copy_refused_by_peer, setup_kept_other_dir,
                                        teardown_kept),
        cmocka_unit_test_setup_teardown(test_mirror_adopt_bad_requests, setup_kept_default,
                                        teardown_kept),
    };
    int r = cmocka_run_group_tests_name("mirror", tests, setup_daemons, teardown_daemons);
    return r + cmocka_run_group_tests_name("kept copies", kept, NULL, NULL);
}
