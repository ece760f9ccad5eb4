/*
 * Integration: spare block objects (config spare_blocks, runtime/memd_spare.c).
 *
 * A daemon allocates up to spare_blocks unnamed objects of block_size ahead
 * of need, in free block slots only; a new block (a malloc's, or a mirror
 * copy a peer asks for) takes one and names it. Checked here: spares are
 * made and counted (stats), invisible in /dev/shm, used by a new block and
 * made again, never more than the free slots, off with spare_blocks=0,
 * used by mirror copies, and gone with the process (kill -9 included: a
 * private tmpfs shows its usage fall back to the named blocks).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MiB (1ull << 20)
#define ALLOC (768u << 10) /* one per 1 MiB block: each malloc makes a block */

/* Stats of daemon id over a fresh socket-only connection (0 or an error). */
static int stats_of(int id, dmce_stats_t *st)
{
    return harness_sock_stats(harness_sock(id), st);
}

struct want_spares {
    int id;
    uint64_t n;
};

static int has_spares(void *arg)
{
    const struct want_spares *w = arg;
    dmce_stats_t st;
    return stats_of(w->id, &st) == 0 && st.spares == w->n;
}

static void wait_spares(int id, uint64_t n)
{
    struct want_spares w = {id, n};
    if (!harness_wait(has_spares, &w, 10000)) {
        dmce_stats_t st = {0};
        stats_of(id, &st);
        fail_msg("daemon %d: %llu spares after 10 s, want %llu", id, (unsigned long long)st.spares,
                 (unsigned long long)n);
    }
}

static dmce_stats_t stats(int id)
{
    dmce_stats_t st;
    assert_int_equal(stats_of(id, &st), 0);
    assert_true(st.blocks + st.spares <= 8); /* every test's max_blocks is at most 8 */
    return st;
}

static dmce_client_t *client_of(int id)
{
    const char *paths[1] = {harness_sock(id)};
    dmce_connect_opts_t o = {.sockets = paths,
                             .nsockets = 1,
                             .io_timeout_ms = 5000,
                             .flags = harness_connect_flags() | DMCE_CONNECT_NO_DISPATCHER};
    dmce_client_t *c;
    assert_int_equal(dmce_connect(&o, &c), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    return c;
}

static void write_check(dmce_client_t *c, dmce_addr_t a, int seed)
{
    static uint8_t buf[ALLOC], back[ALLOC];
    memset(buf, seed, sizeof(buf));
    assert_int_equal(dmce_write(c, a, buf, sizeof(buf)), 0);
    assert_int_equal(dmce_read(c, a, back, sizeof(back)), 0);
    assert_memory_equal(buf, back, sizeof(buf));
}

static int teardown(void **state)
{
    (void)state;
    /* The dispatcher first: with it gone, a daemon's stop fails nothing over (or fences). */
    int st[3] = {0, 0, 0};
    for (int id = 0; id <= 2; id++)
        if (H.pid[id])
            st[id] = harness_stop(id);
    int left = harness_shm_count();
    harness_cleanup(); /* before any assert: the next test's harness_init forgets this cluster */
    for (int id = 0; id <= 2; id++)
        assert_int_equal(st[id], 0);
    assert_int_equal(left, 0); /* SIGTERM removes every object, spares included */
    return 0;
}

/* Made ahead, unnamed, taken by the block a malloc needs, made again. */
static void test_made_and_used(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(
        harness_start(1, "--block-size=1M", "--max-blocks=8", "--spare-blocks=2", NULL), 0);
    wait_spares(1, 2);
    dmce_stats_t st = stats(1);
    assert_int_equal(st.blocks, 1);
    assert_int_equal(st.spares_used, 0);
    assert_int_equal(harness_shm_count(), 1); /* spares have no name */

    dmce_client_t *c = client_of(1);
    dmce_addr_t a[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dmce_malloc(c, ALLOC, &a[i]), 0);
        write_check(c, a[i], i + 1);
    }
    st = stats(1);
    assert_int_equal(st.blocks, 3);
    assert_int_equal(st.spares_used, 2);      /* blocks 2 and 3 */
    assert_int_equal(harness_shm_count(), 3); /* named as blocks now */
    wait_spares(1, 2);                        /* made again */
    for (int i = 0; i < 3; i++) {             /* the data stays where it was written */
        static uint8_t back[ALLOC], want[ALLOC];
        memset(want, i + 1, sizeof(want));
        assert_int_equal(dmce_read(c, a[i], back, sizeof(back)), 0);
        assert_memory_equal(back, want, sizeof(back));
    }
    assert_int_equal(dmce_disconnect(c), 0);
}

/* blocks + spares <= max_blocks, at every look, down to a full daemon. */
static void test_free_slots_only(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(
        harness_start(1, "--block-size=1M", "--max-blocks=3", "--spare-blocks=2", NULL), 0);
    wait_spares(1, 2);
    dmce_client_t *c = client_of(1);
    dmce_addr_t a[4];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dmce_malloc(c, ALLOC, &a[i]), 0);
        dmce_stats_t st = stats(1);
        assert_int_equal(st.blocks, (uint64_t)i + 1);
        assert_true(st.blocks + st.spares <= 3);
    }
    assert_int_equal(dmce_malloc(c, ALLOC, &a[3]), DMCE_ENOMEM); /* full: no spare hides it */
    dmce_stats_t st = stats(1);
    assert_int_equal(st.spares, 0);
    assert_int_equal(st.spares_used, 2);
    /* Freed memory is used again; the slots stay the blocks'. */
    assert_int_equal(dmce_free(c, a[1]), 0);
    assert_int_equal(dmce_malloc(c, ALLOC, &a[1]), 0);
    write_check(c, a[1], 9);
    assert_int_equal(stats(1).spares, 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* spare_blocks=0: none made, blocks made as before. */
static void test_off(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(
        harness_start(1, "--block-size=1M", "--max-blocks=4", "--spare-blocks=0", NULL), 0);
    dmce_client_t *c = client_of(1);
    dmce_addr_t a[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(dmce_malloc(c, ALLOC, &a[i]), 0);
        write_check(c, a[i], i + 1);
    }
    dmce_stats_t st = stats(1);
    assert_int_equal(st.blocks, 2);
    assert_int_equal(st.spares, 0);
    assert_int_equal(st.spares_used, 0);
    assert_int_equal(dmce_disconnect(c), 0);
}

/* A mirror copy a peer asks for takes a spare too. */
static void test_mirror_copies(void **state)
{
    (void)state;
    assert_int_equal(harness_init(), 0);
    assert_int_equal(harness_start_dispatcher(0, "--mirroring=on", NULL), 0);
    for (int id = 1; id <= 2; id++)
        assert_int_equal(
            harness_start(id, "--block-size=1M", "--max-blocks=8", "--spare-blocks=2", NULL), 0);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 10000));
    wait_spares(1, 2);
    wait_spares(2, 2);
    uint64_t used0 = stats(1).spares_used + stats(2).spares_used;
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, NULL, NULL), 0);
    dmce_addr_t a;
    assert_int_equal(dmce_malloc(c, ALLOC, &a), 0); /* fills one daemon's first block */
    dmce_addr_t b;
    assert_int_equal(dmce_malloc(c, ALLOC, &b), 0);
    dmce_addr_t d;
    assert_int_equal(dmce_malloc(c, ALLOC, &d), 0); /* a new block on at least one daemon */
    write_check(c, d, 5);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 10000));
    uint64_t used = stats(1).spares_used + stats(2).spares_used - used0;
    dmce_cluster_stats_t cs;
    assert_int_equal(dmce_cluster_stats(harness_observer(), &cs), 0);
    print_message("%llu blocks, %llu mirrored; %llu spares used\n", (unsigned long long)cs.blocks,
                  (unsigned long long)cs.blocks_mirrored, (unsigned long long)used);
    /* Each new block: its own object and its copy's, both from spares. */
    assert_true(cs.blocks >= 3);
    assert_int_equal(used, 2 * (cs.blocks - 2));
    assert_int_equal(dmce_disconnect(c), 0);
}

static char tmpfs_dir[64];

static void tmpfs_cleanup(void)
{
    if (tmpfs_dir[0]) {
        umount2(tmpfs_dir, MNT_DETACH);
        rmdir(tmpfs_dir);
        tmpfs_dir[0] = 0;
    }
}

static uint64_t tmpfs_used(void)
{
    struct statvfs v;
    assert_int_equal(statvfs(tmpfs_dir, &v), 0);
    return (uint64_t)(v.f_blocks - v.f_bfree) * v.f_frsize;
}

static int files_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static int used_is(void *want)
{
    return tmpfs_used() == *(uint64_t *)want;
}

/* Spares fill the filesystem, unnamed; kill -9 leaves only the named blocks. */
static void test_gone_with_the_process(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        print_message("not root: cannot mount a tmpfs\n");
        skip();
    }
    assert_int_equal(harness_init(), 0);
    snprintf(tmpfs_dir, sizeof(tmpfs_dir), "/tmp/dmce-spare-tmpfs.XXXXXX");
    assert_non_null(mkdtemp(tmpfs_dir));
    atexit(tmpfs_cleanup);
    assert_int_equal(
        mount("dmce-spare", tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0700"), 0);
    char shm_dir[96];
    snprintf(shm_dir, sizeof(shm_dir), "--shm-dir=%s", tmpfs_dir);
    assert_int_equal(
        harness_start(1, "--block-size=1M", "--max-blocks=8", "--spare-blocks=2", shm_dir, NULL),
        0);
    wait_spares(1, 2);
    assert_int_equal(files_in(tmpfs_dir), 1);
    assert_int_equal(tmpfs_used(), 3 * MiB); /* one block, two spares: all allocated */
    harness_kill(1);
    uint64_t one = MiB;
    assert_true(harness_wait(used_is, &one, 5000)); /* the spares went with the process */
    assert_int_equal(files_in(tmpfs_dir), 1);       /* the block stays, for a restart */
    assert_int_equal(
        harness_start(1, "--block-size=1M", "--max-blocks=8", "--spare-blocks=2", shm_dir, NULL),
        0);
    wait_spares(1, 2);
    assert_int_equal(harness_stop(1), 0);
    assert_int_equal(files_in(tmpfs_dir), 0);
    assert_int_equal(tmpfs_used(), 0);
    harness_cleanup();
    assert_int_equal(umount2(tmpfs_dir, 0), 0);
    rmdir(tmpfs_dir);
    tmpfs_dir[0] = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_made_and_used, teardown),
        cmocka_unit_test_teardown(test_free_slots_only, teardown),
        cmocka_unit_test_teardown(test_off, teardown),
        cmocka_unit_test_teardown(test_mirror_copies, teardown),
        cmocka_unit_test_teardown(test_gone_with_the_process, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
