/*
 * Integration: mapped access (dmce/map.h) against real dmce-memd processes.
 * Mapped and message access see the same bytes; two processes map one
 * allocation and see each other's stores; small windows (the 32-bit way)
 * serve reads, writes and mappings that cross window boundaries and evict
 * as they should; every bad input gets its error and never a fault; the
 * allocator's pages are read-only to clients; a daemon killed under a held
 * mapping leaves the pointer usable and the next call reports it.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "util.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)

static int setup_two(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", NULL), 0);
    assert_int_equal(harness_start(2, "--block-size=4M", "--max-blocks=4", NULL), 0);
    return 0;
}

static int teardown_two(void **state)
{
    (void)state;
    int s1 = H.pid[1] ? harness_stop(1) : 0, s2 = H.pid[2] ? harness_stop(2) : 0;
    harness_cleanup();
    assert_int_equal(s1, 0);
    assert_int_equal(s2, 0);
    return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

static dmce_client_t *mapped_client(uint64_t window_size, unsigned max_windows)
{
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .window_size = window_size,
                             .max_windows = max_windows};
    dmce_client_t *c;
    assert_int_equal(harness_client_opts(&c, NULL, 0, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

static dmce_client_t *msmp_client(void)
{
    dmce_connect_opts_t o = {.io_timeout_ms = 10000, .flags = DMCE_CONNECT_NO_MAP};
    dmce_client_t *c;
    assert_int_equal(harness_client_opts(&c, NULL, 0, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

/* A pointer from dmce_map and dmce_write/dmce_read (local and MSMP) see the same bytes. */
static void test_mapped_and_message_access_agree(void **state)
{
    (void)state;
    dmce_client_t *m = mapped_client(0, 0), *s = msmp_client();
    const size_t n = 300 * KiB;
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(m, n, &a), 0);
    uint8_t *p;
    assert_int_equal(dmce_map(m, a, n, 0, (void **)&p), 0);
    uint8_t *in = malloc(n), *out = malloc(n);
    fill(in, n, 1);
    memcpy(p, in, n); /* plain stores */
    memset(out, 0, n);
    assert_int_equal(dmce_read(s, a, out, n), 0); /* through the daemon */
    assert_memory_equal(in, out, n);
    memset(out, 0, n);
    assert_int_equal(dmce_read(m, a, out, n), 0); /* through the cache */
    assert_memory_equal(in, out, n);

    fill(in, n, 2);
    assert_int_equal(dmce_write(s, a, in, n), 0); /* the other way round */
    assert_memory_equal(p, in, n);
    fill(in, 1000, 3);
    dmce_addr_t mid;
    assert_int_equal(dmce_addr_add(dmce_client_layout(m), a, 5000, &mid), 0);
    assert_int_equal(dmce_write(m, mid, in, 1000), 0);
    assert_memory_equal(p + 5000, in, 1000);

    /* addr_of: every byte of the mapping, and nothing else. */
    dmce_addr_t back;
    assert_int_equal(dmce_addr_of(m, p, &back), 0);
    assert_true(back == a);
    assert_int_equal(dmce_addr_of(m, p + 5000, &back), 0);
    assert_true(back == mid);
    assert_int_equal(dmce_addr_of(m, p + n, &back), DMCE_ENOTMAPPED);
    int on_stack;
    assert_int_equal(dmce_addr_of(m, &on_stack, &back), DMCE_ENOTMAPPED);
    assert_int_equal(dmce_addr_of(m, NULL, &back), DMCE_ENOTMAPPED);

    dmce_client_stats_t cs;
    assert_int_equal(dmce_client_stats(m, &cs), 0);
    assert_int_equal(cs.maps_active, 1);
    assert_int_equal(cs.msmp_reads + cs.msmp_writes, 0);
    assert_true(cs.local_reads >= 1 && cs.local_writes >= 1);
    assert_int_equal(dmce_unmap(m, p), 0);
    assert_int_equal(dmce_addr_of(m, p, &back), DMCE_ENOTMAPPED);
    assert_int_equal(dmce_unmap(m, p), DMCE_ENOTMAPPED);
    assert_int_equal(dmce_unmap(m, &on_stack), DMCE_ENOTMAPPED);
    assert_int_equal(dmce_free(m, a), 0);
    free(in);
    free(out);
    assert_int_equal(dmce_disconnect(m), 0);
    assert_int_equal(dmce_disconnect(s), 0);
}

/*
 * Two processes map one allocation: each sees the other's stores. The
 * child is forked before this process starts any thread (a client starts
 * its watcher with its first block), so that nothing in the child can
 * inherit a lock held by a thread that does not exist there.
 */
static void test_two_processes_share_a_mapping(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t child = harness_fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pfd[1]);
        dmce_addr_t a;
        if (read(pfd[0], &a, sizeof(a)) != (ssize_t)sizeof(a))
            _exit(4);
        dmce_connect_opts_t o = {.io_timeout_ms = 10000};
        dmce_client_t *k;
        volatile uint32_t *q;
        if (harness_client_opts(&k, NULL, 0, &o) || dmce_setup(k, 0, 0, NULL, NULL) ||
            dmce_map(k, a, 4096, 0, (void **)&q))
            _exit(2);
        for (uint32_t i = 1; i <= 1000; i++) {
            q[1] = i * 3; /* data first, then the flag the parent waits on */
            __atomic_store_n(&q[0], i, __ATOMIC_RELEASE);
            uint64_t until = dmce_now_ms() + 5000;
            while (__atomic_load_n(&q[2], __ATOMIC_ACQUIRE) != i) /* parent's answer */
                if (dmce_now_ms() > until)
                    _exit(3);
        }
        dmce_abandon(k);
        _exit(0);
    }
    close(pfd[0]);
    dmce_client_t *c = mapped_client(0, 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 4096, &a), 0);
    volatile uint32_t *p;
    assert_int_equal(dmce_map(c, a, 4096, 0, (void **)&p), 0);
    assert_int_equal(write(pfd[1], &a, sizeof(a)), (ssize_t)sizeof(a));
    close(pfd[1]);
    for (uint32_t i = 1; i <= 1000; i++) {
        uint64_t until = dmce_now_ms() + 5000;
        while (__atomic_load_n(&p[0], __ATOMIC_ACQUIRE) != i) {
            if (dmce_now_ms() >= until) {
                kill(child, SIGKILL); /* never leave it behind */
                waitpid(child, NULL, 0);
                fail_msg("child stopped answering at round %u", i);
            }
        }
        assert_int_equal(p[1], i * 3);
        __atomic_store_n(&p[2], i, __ATOMIC_RELEASE);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(dmce_unmap(c, (void *)p), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* Bad input: each case its own error, no fault. */
static void test_map_bad_input(void **state)
{
    (void)state;
    dmce_client_t *c = mapped_client(0, 0);
    dmce_layout_t L = dmce_client_layout(c);
    dmce_addr_t a, x;
    void *p;
    assert_int_equal(dmce_malloc(c, 1000, &a), 0);
    assert_int_equal(dmce_map(c, a, 1001, 0, &p), DMCE_ECROSSEND);
    assert_int_equal(dmce_map(c, a, 0, 0, &p), -EINVAL);
    assert_int_equal(dmce_map(c, a, 10, 7, &p), -EINVAL);
    assert_int_equal(dmce_map(c, DMCE_ADDR_NULL, 10, 0, &p), DMCE_ENULLADDR);
    assert_int_equal(dmce_addr_encode(L, 3, 1, 4096, &x), 0);
    assert_int_equal(dmce_map(c, x, 10, 0, &p), DMCE_ENOSERVER); /* another host */
    dmce_addr_parts_t pa;
    assert_int_equal(dmce_addr_decode(L, a, &pa), 0);
    assert_int_equal(dmce_addr_encode(L, 0, pa.block, 8, &x), 0);
    assert_int_equal(dmce_map(c, x, 1, 0, &p), DMCE_EBADADDR); /* the block header */
    assert_int_equal(dmce_addr_encode(L, 0, 4000, 4096, &x), 0);
    assert_int_equal(dmce_map(c, x, 1, 0, &p), DMCE_ENOBLOCK); /* nobody's block */
    /* In a block the client has opened, but free memory. */
    assert_int_equal(dmce_addr_add(L, a, 64 * KiB, &x), 0);
    assert_int_equal(dmce_map(c, x, 1, 0, &p), DMCE_EBADADDR);
    /* Freed. */
    assert_int_equal(dmce_map(c, a, 1000, 0, &p), 0);
    assert_int_equal(dmce_unmap(c, p), 0);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_map(c, a, 1, 0, &p), DMCE_EBADADDR);
    uint8_t b;
    assert_int_equal(dmce_read(c, a, &b, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_write(c, a, &b, 1), DMCE_EBADADDR);
    assert_int_equal(dmce_disconnect(c), 0);

    /* A client that does not map: -ENOTSUP, and it works over messages. */
    c = msmp_client();
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    assert_int_equal(dmce_map(c, a, 100, 0, &p), -ENOTSUP);
    assert_int_equal(dmce_disconnect(c), 0);

    /* Before setup. */
    dmce_connect_opts_t o = {.io_timeout_ms = 10000};
    assert_int_equal(harness_client_opts(&c, NULL, 0, &o), 0);
    assert_int_equal(dmce_map(c, a, 1, 0, &p), DMCE_ENOSETUP);
    dmce_abandon(c);

    /* A window size that is not a multiple of a page. */
    o.window_size = 5000;
    assert_int_equal(harness_client_opts(&c, NULL, 0, &o), -EINVAL);
}

/* The allocator's pages (block header, granule map) are read-only to clients. */
static void test_block_metadata_is_read_only(void **state)
{
    (void)state;
    dmce_client_t *c = mapped_client(0, 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    dmce_addr_parts_t pa;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &pa), 0);
    uint8_t *p;
    assert_int_equal(dmce_map(c, a, 100, 0, (void **)&p), 0);
    uint8_t *block = p - pa.cell; /* whole-block window: the block's first byte */
    assert_int_equal(block[0], 0x00); /* readable: the header's magic starts with 0 */
    pid_t child = harness_fork();
    assert_true(child >= 0);
    if (child == 0) {
        signal(SIGSEGV, SIG_DFL); /* cmocka's handler would catch it and go on */
        ((volatile uint8_t *)block)[0] = 0xff; /* must fault */
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    /* And the block is intact: the allocation is still there. */
    uint8_t buf[100];
    assert_int_equal(dmce_read(c, a, buf, 100), 0);
    assert_int_equal(dmce_unmap(c, p), 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/*
 * Small windows, as a 32-bit client uses them: accesses and mappings that
 * cross window boundaries, LRU eviction, and the same bytes as the daemon.
 */
static void test_small_windows(void **state)
{
    (void)state;
    const uint64_t W = 64 * KiB;
    dmce_client_t *c = mapped_client(W, 3), *s = msmp_client();
    const size_t n = 1 * MiB; /* 16 windows' worth */
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, n, &a), 0);
    uint8_t *in = malloc(n), *out = malloc(n);
    fill(in, n, 9);
    assert_int_equal(dmce_write(c, a, in, n), 0);
    assert_int_equal(dmce_read(s, a, out, n), 0);
    assert_memory_equal(in, out, n);
    memset(out, 0, n);
    assert_int_equal(dmce_read(c, a, out, n), 0);
    assert_memory_equal(in, out, n);

    dmce_client_stats_t cs;
    assert_int_equal(dmce_client_stats(c, &cs), 0);
    assert_int_equal(cs.window_size, W);
    assert_true(cs.window_evictions > 0);
    assert_true(cs.windows <= 3 + 1);
    assert_true(cs.bytes_mapped <= 4 * W);

    /* A mapping across three windows is one contiguous range. */
    dmce_addr_t mid;
    assert_int_equal(dmce_addr_add(dmce_client_layout(c), a, W - 100, &mid), 0);
    uint8_t *p;
    assert_int_equal(dmce_map(c, mid, 2 * W + 200, 0, (void **)&p), 0);
    assert_memory_equal(p, in + W - 100, 2 * W + 200);
    memset(p, 0x5a, 2 * W + 200);
    memset(in + W - 100, 0x5a, 2 * W + 200);
    /* Churn the cache: the mapping stays pinned and valid. */
    assert_int_equal(dmce_read(c, a, out, n), 0);
    assert_memory_equal(in, out, n);
    assert_memory_equal(p, in + W - 100, 2 * W + 200);
    assert_int_equal(dmce_read(s, a, out, n), 0);
    assert_memory_equal(in, out, n);
    dmce_addr_t back;
    assert_int_equal(dmce_addr_of(c, p + W, &back), 0);
    assert_true(back == mid + W);
    assert_int_equal(dmce_unmap(c, p), 0);

    /* Bad ranges are caught through small windows too. */
    assert_int_equal(dmce_read(c, a, out, n + 1), DMCE_ECROSSEND);
    assert_int_equal(dmce_free(c, a), 0);
    assert_int_equal(dmce_read(c, a, out, 1), DMCE_EBADADDR);
    free(in);
    free(out);
    assert_int_equal(dmce_disconnect(c), 0);
    assert_int_equal(dmce_disconnect(s), 0);
}

static dmce_client_t *g_c;
static dmce_addr_t g_a;

static int read_reports_closed(void *arg)
{
    (void)arg;
    uint8_t b;
    return dmce_read(g_c, g_a, &b, 1) == DMCE_ECLOSED;
}

/* kill -9 of the daemon under a held mapping: no fault, the next call says so. */
static void test_daemon_killed_under_mapping(void **state)
{
    (void)state;
    int one = 1;
    dmce_connect_opts_t o = {.io_timeout_ms = 10000};
    dmce_client_t *c;
    assert_int_equal(harness_client_opts(&c, &one, 1, &o), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 8192, &a), 0);
    uint8_t *p;
    assert_int_equal(dmce_map(c, a, 8192, 0, (void **)&p), 0);
    memset(p, 0x77, 8192);
    harness_kill(1);
    /* The memory is still there: loads and stores do not fault. */
    assert_int_equal(p[4000], 0x77);
    p[4001] = 0x11;
    g_c = c;
    g_a = a;
    assert_true(harness_wait(read_reports_closed, NULL, 5000));
    uint8_t b = 0;
    assert_int_equal(dmce_write(c, a, &b, 1), DMCE_ECLOSED);
    void *q;
    assert_int_equal(dmce_map(c, a, 1, 0, &q), DMCE_ECLOSED);
    assert_int_equal(dmce_unmap(c, p), 0);
    dmce_abandon(c);
    /* A restart with the same ID finds the dead one's objects and removes them. */
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mapped_and_message_access_agree),
        cmocka_unit_test(test_two_processes_share_a_mapping),
        cmocka_unit_test(test_map_bad_input),
        cmocka_unit_test(test_block_metadata_is_read_only),
        cmocka_unit_test(test_small_windows),
        cmocka_unit_test(test_daemon_killed_under_mapping),
    };
    return cmocka_run_group_tests(tests, setup_two, teardown_two);
}
