/*
 * Integration: every MSMP operation through libdmce against two real
 * dmce-memd processes: setup (full, partial, refused), malloc on both
 * daemons, block growth, read/write round trips (small and chunked), free,
 * stats, disconnect, concurrency, and no shm object after shutdown.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

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
    int s1 = harness_stop(1), s2 = harness_stop(2);
    int left = harness_shm_count();
    harness_cleanup();
    assert_int_equal(s1, 0);
    assert_int_equal(s2, 0);
    assert_int_equal(left, 0); /* SIGTERM removes every shm object */
    return 0;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 8));
}

static void test_roundtrip_both_daemons(void **state)
{
    (void)state;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_daemon_count(c), 2);
    uint64_t granted = 0;
    assert_int_equal(dmce_setup(c, 8 * MiB, 0, NULL, &granted), 0);
    assert_int_equal(granted, 8 * MiB);

    dmce_addr_t a[4];
    int seen[2] = {0, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(dmce_malloc(c, 1000 + (uint64_t)i, &a[i]), 0);
        assert_int_equal(dmce_addr_validate(dmce_client_layout(c), a[i]), 0);
        int d = dmce_daemon_of(c, a[i]);
        assert_true(d == 0 || d == 1);
        seen[d]++;
    }
    assert_true(seen[0] > 0 && seen[1] > 0); /* spread over both daemons */

    for (int i = 0; i < 4; i++) {
        uint8_t in[1003], out[1003];
        fill(in, sizeof(in), (unsigned)i);
        size_t n = 1000 + (size_t)i;
        assert_int_equal(dmce_write(c, a[i], in, n), 0);
        memset(out, 0, sizeof(out));
        assert_int_equal(dmce_read(c, a[i], out, n), 0);
        assert_memory_equal(in, out, n);
    }
    /* An interior range: offset 100, 50 bytes. */
    dmce_addr_t mid;
    assert_int_equal(dmce_addr_add(dmce_client_layout(c), a[0], 100, &mid), 0);
    uint8_t part[50], full[1000];
    assert_int_equal(dmce_read(c, mid, part, 50), 0);
    assert_int_equal(dmce_read(c, a[0], full, 1000), 0);
    assert_memory_equal(part, full + 100, 50);

    dmce_stats_t st;
    assert_int_equal(dmce_stats(c, &st), 0);
    assert_int_equal(st.allocations, 4);
    assert_int_equal(st.bytes_used, 1000 + 1001 + 1002 + 1003);
    assert_int_equal(st.bytes_reserved, 8 * MiB);
    assert_int_equal(st.sessions, 2);
    dmce_client_stats_t cs;
    assert_int_equal(dmce_client_stats(c, &cs), 0);
    if (harness_mapped()) { /* local: through the blocks, no message */
        assert_true(cs.local_writes >= 4 && cs.local_reads >= 6);
        assert_int_equal(cs.msmp_reads + cs.msmp_writes, 0);
        assert_int_equal(st.ops_write + st.ops_read, 0);
        assert_int_equal(cs.blocks_opened, 2);
        assert_int_equal(st.fds_sent, 2);
    } else {
        assert_true(st.ops_write >= 4 && st.ops_read >= 6);
        assert_true(cs.msmp_writes >= 4 && cs.msmp_reads >= 6);
        assert_int_equal(cs.local_reads + cs.local_writes + cs.blocks_opened, 0);
    }

    for (int i = 0; i < 4; i++)
        assert_int_equal(dmce_free(c, a[i]), 0);
    uint8_t b;
    assert_int_equal(dmce_read(c, a[0], &b, 1), DMCE_EBADADDR); /* freed */
    assert_int_equal(dmce_free(c, a[0]), DMCE_EBADADDR);        /* double free */
    assert_int_equal(dmce_stats(c, &st), 0);
    assert_int_equal(st.allocations, 0);
    assert_int_equal(st.bytes_used, 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_large_chunked_io(void **state)
{
    (void)state;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    size_t n = 3 * MiB + 12345; /* > max payload: several frames */
    uint8_t *in = malloc(n), *out = malloc(n);
    assert_non_null(in);
    assert_non_null(out);
    fill(in, n, 99);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, n, &a), 0);
    assert_int_equal(dmce_write(c, a, in, n), 0);
    memset(out, 0, n);
    assert_int_equal(dmce_read(c, a, out, n), 0);
    assert_memory_equal(in, out, n);
    /* One byte past the end of the allocation. */
    assert_int_equal(dmce_read(c, a, out, n + 1), DMCE_ECROSSEND);
    assert_int_equal(dmce_free(c, a), 0);
    free(in);
    free(out);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_setup_reservations(void **state)
{
    (void)state;
    dmce_client_t *c;
    dmce_stats_t st;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_stats(c, &st), 0);
    uint64_t cap = st.bytes_total;
    assert_true(cap > 0);
    /* More than the whole cluster, no partial: refused, nothing reserved. */
    uint64_t granted = 12345;
    assert_int_equal(dmce_setup(c, cap + MiB, 0, NULL, &granted), DMCE_ENOMEM);
    assert_int_equal(granted, 12345); /* untouched on failure */
    assert_int_equal(dmce_stats(c, &st), 0);
    assert_int_equal(st.bytes_reserved, 0);
    assert_int_equal(st.sessions, 0);
    /* Partial accepted: gets what there is. */
    assert_int_equal(dmce_setup(c, cap + MiB, DMCE_SETUP_PARTIAL, NULL, &granted), 0);
    assert_true(granted > 0 && granted <= cap);
    assert_int_equal(dmce_setup(c, 1, 0, NULL, NULL), DMCE_ESETUPDONE);

    /* A second client finds nothing left to reserve. */
    dmce_client_t *c2;
    assert_int_equal(harness_client(&c2, NULL, 0), 0);
    assert_int_equal(dmce_setup(c2, MiB, 0, NULL, NULL), DMCE_ENOMEM);
    assert_int_equal(dmce_disconnect(c), 0);
    /* Once the first is gone, the second gets its reservation. */
    assert_int_equal(dmce_setup(c2, MiB, 0, NULL, &granted), 0);
    assert_int_equal(granted, MiB);
    assert_int_equal(dmce_disconnect(c2), 0);
}

static void test_quota_and_growth(void **state)
{
    (void)state;
    int one = 1;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, MiB, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, 2 * MiB, &a), DMCE_EQUOTA);
    assert_int_equal(dmce_malloc(c, 0, &a), -EINVAL);
    assert_int_equal(dmce_disconnect(c), 0);

    /* Unreserved session: blocks are created on demand up to max_blocks. */
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    uint64_t blocks0 = st.blocks;
    assert_int_equal(dmce_malloc(c, 64 * MiB, &a), -EMSGSIZE); /* larger than a block */
    dmce_addr_t big[8];
    int n = 0;
    while (n < 8 && dmce_malloc(c, 3 * MiB, &big[n]) == 0)
        n++;
    assert_int_equal(n, 4); /* one 3 MiB allocation per 4 MiB block, 4 blocks */
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_true(st.blocks > blocks0);
    assert_int_equal(st.blocks, 4);
    assert_int_equal(dmce_malloc(c, 3 * MiB, &a), DMCE_ENOMEM);
    for (int i = 0; i < n; i++)
        assert_int_equal(dmce_free(c, big[i]), 0);
    assert_int_equal(dmce_malloc(c, 3 * MiB, &a), 0); /* space is reused */
    assert_int_equal(dmce_disconnect(c), 0);
}

struct worker_arg {
    dmce_client_t *c;
    unsigned seed;
    int errors;
};

static void *io_worker(void *p)
{
    struct worker_arg *w = p;
    dmce_addr_t a;
    uint8_t in[4096], out[4096];
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + (size_t)((w->seed * 7919u + (unsigned)i * 104729u) % sizeof(in));
        fill(in, n, w->seed + (unsigned)i);
        if (dmce_malloc(w->c, n, &a) < 0 || dmce_write(w->c, a, in, n) < 0 ||
            dmce_read(w->c, a, out, n) < 0 || memcmp(in, out, n) != 0 || dmce_free(w->c, a) < 0)
            w->errors++;
    }
    return NULL;
}

static void test_threads_share_a_client(void **state)
{
    (void)state;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_setup(c, 4 * MiB, 0, NULL, NULL), 0);
    pthread_t t[4];
    struct worker_arg w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker_arg){.c = c, .seed = (unsigned)i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, io_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
    dmce_stats_t st;
    assert_int_equal(dmce_stats(c, &st), 0);
    assert_int_equal(st.allocations, 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

static void test_stalled_client_does_not_block_others(void **state)
{
    (void)state;
    /* A client that sends half a header and then nothing. */
    int stuck = raw_connect(1);
    assert_true(stuck >= 0);
    uint8_t half[10] = {0x4d, 0x53, 0x4d, 0x50, 1, 0, 7, 0, 0, 0};
    assert_int_equal(raw_send_bytes(stuck, half, sizeof(half)), 0);
    /* A client that never reads its replies: pipeline many stats requests. */
    int deaf = raw_connect(1);
    assert_true(deaf >= 0);
    for (int i = 0; i < 2000; i++)
        if (raw_send(deaf, 7, (uint64_t)i, NULL, 0) < 0)
            break;
    int one = 1;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, &one, 1), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(dmce_malloc(c, 64, &a), 0);
        assert_int_equal(dmce_free(c, a), 0);
    }
    dmce_stats_t st;
    assert_int_equal(dmce_daemon_stats(c, 0, &st), 0);
    assert_true(st.clients >= 3);
    assert_int_equal(dmce_disconnect(c), 0);
    close(stuck);
    close(deaf);
}

static void test_header_roundtrip_addresses(void **state)
{
    (void)state;
    dmce_client_t *c;
    assert_int_equal(harness_client(&c, NULL, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a, back;
    assert_int_equal(dmce_malloc(c, 100, &a), 0);
    char txt[DMCE_ADDR_STRLEN];
    assert_true(dmce_addr_format(dmce_client_layout(c), a, txt, sizeof(txt)) > 0);
    assert_int_equal(dmce_addr_parse(dmce_client_layout(c), txt, &back), 0);
    assert_int_equal(a, back);
    dmce_addr_parts_t p;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &p), 0);
    assert_int_equal(p.server, 0); /* this host */
    assert_true(p.block >= 1);
    assert_int_equal(dmce_disconnect(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_both_daemons),
        cmocka_unit_test(test_large_chunked_io),
        cmocka_unit_test(test_setup_reservations),
        cmocka_unit_test(test_quota_and_growth),
        cmocka_unit_test(test_threads_share_a_client),
        cmocka_unit_test(test_stalled_client_does_not_block_others),
        cmocka_unit_test(test_header_roundtrip_addresses),
    };
    return cmocka_run_group_tests(tests, setup_two, teardown_two);
}
