/*
 * Integration: block backups to files, recovery at start, restore into a
 * running daemon (docs/backup.md). Real daemons in a private runtime dir,
 * backups in a private directory removed at the end.
 *
 *   - kill_recover: allocations written, backed up (a full image), some
 *     changed, freed and added, backed up again (a delta: only the changed
 *     pages), one more write; kill -9; the daemon restarted with recover
 *     brings the blocks back under the same addresses: a new client
 *     reattaches with the session's token and reads every allocation as
 *     the last backup had it (the write after it is gone, as documented);
 *   - refusals: a set that recover = no would ignore, a flipped byte, a
 *     truncated file, another cluster's set: each refused at start with
 *     the daemon not serving; the intact set then recovers;
 *   - kill_mid_backup: kill -9 while a full backup is being written: the
 *     set still holds the previous backup, which recovers;
 *   - consistent_under_mallocs: backups while other clients malloc, write
 *     and free in the same block: each backup recovers to a consistent
 *     block (recovery checks the allocator state), with at least one
 *     backup that needed its second pass;
 *   - restore_other_daemon: a backup to a named directory, restored into
 *     another daemon after the first is gone: same addresses, same bytes;
 *     a second restore is refused (the block is held);
 *   - periodic: backup_interval_s makes backups by itself, incremental;
 *   - with_dispatcher: a block whose daemon died was promoted from its
 *     mirror; the daemon restarted with recover does not bring back its
 *     older backup of it (dropped), and the write made after the backup
 *     reads back from the promoted copy; a block moved away by a migration
 *     leaves the source's set;
 *   - bad_requests: malformed frames, relative directory, no backup
 *     directory, unknown block, a directory without a set.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin.h"
#include "backup.h"
#include "harness.h"
#include "msmp_admin.h"
#include "msmp_conn.h"
#include "msmp_dispatch.h"
#include "util.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define NALLOC 24

static char bkdir[256];  /* the backup_dir of the daemons */
static char bkflag[300]; /* --backup-dir=... */
static const dmce_token_t TOKEN = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};

/* ---- helpers ------------------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup_dirs(void **state)
{
    (void)state;
    if (harness_init() < 0)
        return -1;
    snprintf(bkdir, sizeof(bkdir), "/tmp/dmce-bk-XXXXXX");
    if (!mkdtemp(bkdir))
        return -1;
    snprintf(bkflag, sizeof(bkflag), "--backup-dir=%s", bkdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int id = 0; id <= 3; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    if (bkdir[0])
        nftw(bkdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    bkdir[0] = 0;
    return 0;
}

static int memd_call(int id, uint16_t op, const void *p, size_t l, void *resp, size_t cap,
                     size_t *n)
{
    dmce_mconn_t k;
    int r = dmce_mconn_init(&k, harness_sock(id), 5000, DMCE_MCONN_NO_RING);
    size_t got = 0;
    if (r == 0)
        r = dmce_mconn_rpc(&k, op, p, l, NULL, 0, resp, cap, n ? n : &got, NULL);
    dmce_mconn_close(&k);
    return r;
}

/* Ask for a backup (op 30) or restore (op 44); the task's ID in *task. */
static int task_start(int id, uint16_t op, uint32_t block, uint32_t flags, const char *dir,
                      uint32_t *task)
{
    dmce_adm_backup_t rq = {.block = block, .flags = flags};
    snprintf(rq.dir, sizeof(rq.dir), "%s", dir ? dir : "");
    uint8_t buf[DMCE_ADM_BACKUP_HDR + DMCE_ADM_DIR_MAX], resp[DMCE_ADM_PAIR_SIZE];
    int n = dmce_adm_backup_encode(&rq, buf, sizeof(buf));
    size_t rl = 0;
    int r = n < 0 ? n : memd_call(id, op, buf, (size_t)n, resp, sizeof(resp), &rl);
    uint32_t b;
    if (r == 0)
        r = dmce_adm_pair_decode(resp, rl, task, &b);
    return r;
}

static uint8_t stbuf[1 << 20];

static int status_get(int id, dmce_adm_bk_status_t *st)
{
    size_t n = 0;
    int r = memd_call(id, DMCE_MSMP_OP_BACKUP_STATUS, NULL, 0, stbuf, sizeof(stbuf), &n);
    return r < 0 ? r : dmce_adm_bk_status_decode(stbuf, n, st);
}

static int entry_of(const dmce_adm_bk_status_t *st, uint32_t block, dmce_adm_bk_entry_t *e)
{
    for (uint32_t i = 0; i < st->count; i++)
        if (dmce_adm_bk_entry_decode(st, i, e) == 0 && e->block == block)
            return 0;
    return -ENOENT;
}

struct task_wait {
    int id;
    uint32_t task;
    dmce_adm_task_t out;
};

static int task_finished(void *arg)
{
    struct task_wait *w = arg;
    dmce_adm_bk_status_t st;
    if (status_get(w->id, &st) < 0 || st.task.id != w->task)
        return 0;
    w->out = st.task;
    return st.task.state == DMCE_ADM_JOB_DONE || st.task.state == DMCE_ADM_JOB_FAILED;
}

/* Run a backup/restore task to its end; returns the task as it ended. */
static dmce_adm_task_t run_task(int id, uint16_t op, uint32_t block, uint32_t flags,
                                const char *dir)
{
    struct task_wait w = {.id = id};
    assert_int_equal(task_start(id, op, block, flags, dir, &w.task), 0);
    assert_true(harness_wait(task_finished, &w, 60000));
    if (w.out.state == DMCE_ADM_JOB_FAILED)
        print_message("task %u failed: %s (%s)\n", w.task, dmce_strerror(w.out.err), w.out.detail);
    return w.out;
}

/* A backup of every primary of daemon id, done; it holds some (some_blocks) or may hold none. */
static void backup_all(int id, uint32_t flags, const char *dir, int some_blocks)
{
    dmce_adm_task_t t = run_task(id, DMCE_MSMP_OP_BACKUP, 0, flags, dir);
    assert_int_equal(t.state, DMCE_ADM_JOB_DONE);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.blocks_done, t.blocks_total);
    if (some_blocks)
        assert_true(t.blocks_total > 0);
}

static void backup_ok(int id, uint32_t flags, const char *dir)
{
    backup_all(id, flags, dir, 1);
}

static void fill(uint8_t *p, size_t n, unsigned i, unsigned version)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (i + 1) + version * 0xbf58476d1ce4e5b9ull;
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[k] = (uint8_t)x;
    }
}

static size_t alloc_size(unsigned i)
{
    static const size_t sizes[] = {64, 1000, 4096, 5000, 64 * KIB, 100 * KIB, 256 * KIB, 17};
    return sizes[i % 8];
}

struct allocs {
    dmce_addr_t a[NALLOC];
    unsigned version[NALLOC]; /* 0: freed */
};

static void write_one(dmce_client_t *c, struct allocs *s, unsigned i, unsigned version)
{
    size_t n = alloc_size(i);
    uint8_t *buf = malloc(n);
    fill(buf, n, i, version);
    assert_int_equal(dmce_write(c, s->a[i], buf, n), 0);
    free(buf);
    s->version[i] = version;
}

/* Every allocation reads back as its version says; a freed one is not an allocation. */
static void check_all(dmce_client_t *c, const struct allocs *s)
{
    for (unsigned i = 0; i < NALLOC; i++) {
        size_t n = alloc_size(i);
        uint8_t *want = malloc(n), *got = malloc(n);
        if (s->version[i]) {
            fill(want, n, i, s->version[i]);
            assert_int_equal(dmce_read(c, s->a[i], got, n), 0);
            if (memcmp(want, got, n) != 0)
                fail_msg("allocation %u (version %u) differs after recovery", i, s->version[i]);
        } else {
            assert_int_equal(dmce_read(c, s->a[i], got, 1), DMCE_EBADADDR);
        }
        free(want);
        free(got);
    }
}

static dmce_client_t *client_with_token(int id, unsigned flags)
{
    dmce_client_t *c = NULL;
    const int ids[] = {id};
    assert_int_equal(harness_client(&c, ids, 1), 0);
    assert_int_equal(dmce_setup(c, 0, flags, &TOKEN, NULL), 0);
    return c;
}

static void make_allocs(dmce_client_t *c, struct allocs *s)
{
    for (unsigned i = 0; i < NALLOC; i++) {
        assert_int_equal(dmce_malloc(c, alloc_size(i), &s->a[i]), 0);
        write_one(c, s, i, 1);
    }
}

static uint32_t block_of(dmce_client_t *c, dmce_addr_t a)
{
    dmce_addr_parts_t p;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &p), 0);
    return p.block;
}

static void set_file(char *out, size_t cap, int daemon, uint32_t block, uint64_t gen,
                     const char *kind)
{
    snprintf(out, cap, "%s/memd-%d/b%u.%llu.%s", bkdir, daemon, block, (unsigned long long)gen,
             kind);
}

/* ---- kill -9 and recovery ----------------------------------------------------------------- */

static void kill_recover(void **state)
{
    (void)state;
    assert_int_equal(
        harness_start(1, "--block-size=4M", "--max-blocks=4", "--grace-ms=60000", bkflag, NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    uint32_t blk = block_of(c, s.a[0]);

    backup_ok(1, 0, NULL);
    dmce_adm_bk_status_t st;
    dmce_adm_bk_entry_t e;
    assert_int_equal(status_get(1, &st), 0);
    assert_int_equal(entry_of(&st, blk, &e), 0);
    assert_int_equal(e.generation, 1);
    assert_int_equal(e.files, 1);
    assert_int_equal(e.size, 4 * MIB);
    assert_int_equal(e.pages, 1024);
    assert_int_equal(e.flags, 0);
    assert_true(st.task.pages_written > 0 && st.task.pages_written < 1024); /* zero pages skipped */
    char path[512];
    set_file(path, sizeof(path), 1, blk, 1, "full");
    assert_int_equal(access(path, F_OK), 0);

    /* Change some, free one, add one: the next backup is a delta of the changed pages. */
    for (unsigned i = 0; i < NALLOC; i += 3)
        write_one(c, &s, i, 2);
    dmce_addr_t extra; /* before the free: not in the freed room */
    assert_int_equal(dmce_malloc(c, 3000, &extra), 0);
    assert_int_equal(dmce_free(c, s.a[4]), 0);
    s.version[4] = 0;
    uint8_t xb[3000];
    fill(xb, sizeof(xb), 99, 1);
    assert_int_equal(dmce_write(c, extra, xb, sizeof(xb)), 0);
    backup_ok(1, 0, NULL);
    assert_int_equal(status_get(1, &st), 0);
    assert_int_equal(entry_of(&st, blk, &e), 0);
    assert_int_equal(e.generation, 2);
    assert_int_equal(e.files, 2);
    assert_true(st.task.pages_written > 0 && st.task.pages_written < 200); /* not the block */
    set_file(path, sizeof(path), 1, blk, 2, "delta");
    assert_int_equal(access(path, F_OK), 0);
    dmce_stats_t ds;
    assert_int_equal(dmce_daemon_stats(c, 0, &ds), 0);
    assert_true(ds.backups >= 2 && ds.backup_bytes > 0);

    /* After the last backup: acknowledged, but not in any backup. */
    write_one(c, &s, 1, 3);
    s.version[1] = 1; /* what the backup holds */

    harness_kill(1);
    dmce_disconnect(c);
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", "--grace-ms=60000",
                                   bkflag, "--recover", NULL),
                     0);
    assert_int_equal(status_get(1, &st), 0);
    assert_int_equal(st.task.kind, DMCE_ADM_TASK_RECOVER);
    assert_int_equal(st.task.state, DMCE_ADM_JOB_DONE);
    assert_int_equal(entry_of(&st, blk, &e), 0);
    assert_int_equal(e.flags, DMCE_ADM_BK_RECOVERED);

    /* The session comes back with its token; the same addresses hold the same bytes. */
    c = client_with_token(1, DMCE_SETUP_REATTACH);
    check_all(c, &s);
    uint8_t xr[3000];
    assert_int_equal(dmce_read(c, extra, xr, sizeof(xr)), 0);
    assert_memory_equal(xr, xb, sizeof(xb));
    assert_int_equal(dmce_daemon_stats(c, 0, &ds), 0);
    assert_int_equal(ds.restored, 1);
    assert_int_equal(ds.allocations, NALLOC); /* NALLOC - 1 freed + 1 added */
    /* The allocations are the session's again: it frees them. */
    assert_int_equal(dmce_free(c, extra), 0);
    /* The next backup continues the chain from the recovered state. */
    backup_ok(1, 0, NULL);
    assert_int_equal(status_get(1, &st), 0);
    assert_int_equal(entry_of(&st, blk, &e), 0);
    assert_int_equal(e.generation, 3);
    assert_true(st.task.pages_written < 16);
    dmce_disconnect(c);
}

/* Regression: a daemon whose recovered blocks fill max_blocks starts (no extra initial block). */
static void recover_full_daemon(void **state)
{
    (void)state;
    const char *f[] = {"--block-size=4M", "--max-blocks=1", "--grace-ms=60000", bkflag};
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    backup_ok(1, 0, NULL);
    harness_kill(1);
    dmce_disconnect(c);
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], "--recover", NULL), 0);
    c = client_with_token(1, DMCE_SETUP_REATTACH);
    check_all(c, &s);
    dmce_stats_t ds;
    assert_int_equal(dmce_daemon_stats(c, 0, &ds), 0);
    assert_int_equal(ds.blocks, 1); /* the recovered one; none made on top of it */
    dmce_disconnect(c);
}

/* ---- refusals at start ---------------------------------------------------------------------- */

static int flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -errno;
    uint8_t b;
    int r = pread(fd, &b, 1, at) == 1 ? 0 : -EIO;
    b ^= 0x40;
    if (r == 0 && pwrite(fd, &b, 1, at) != 1)
        r = -EIO;
    close(fd);
    return r;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

/* What dmcectl verify says of the set: the error of its first bad block and why. */
static int verify_set(int daemon, char *why, size_t cap)
{
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/memd-%d", bkdir, daemon);
    dmce_bk_table_t t;
    int r = dmce_bk_table_load(dir, &t, why, cap);
    for (uint32_t i = 0; r == 0 && i < t.nblocks; i++)
        r = dmce_bk_verify_block(dir, &t, &t.blocks[i], why, cap);
    if (r != -ENOENT)
        dmce_bk_table_free(&t);
    return r;
}

static void refusals(void **state)
{
    (void)state;
    const char *flags[] = {"--block-size=4M", "--max-blocks=4", "--grace-ms=60000", bkflag};
    assert_int_equal(harness_start(1, flags[0], flags[1], flags[2], flags[3], NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    uint32_t blk = block_of(c, s.a[0]);
    backup_ok(1, 0, NULL);
    harness_kill(1);
    dmce_disconnect(c);

    /* recover = no with a set that holds blocks: not started (the set would be ignored). */
    int ex = harness_start_expect_exit(1, flags[0], flags[1], flags[2], flags[3], NULL);
    assert_true(ex > 0);

    char full[512], keep[600], why[1024];
    set_file(full, sizeof(full), 1, blk, 1, "full");
    snprintf(keep, sizeof(keep), "%s.keep", full);
    copy_file(full, keep);
    struct stat sb;
    assert_int_equal(stat(full, &sb), 0);

    /* A flipped byte in a page: refused; verify names the file and the page. */
    assert_int_equal(flip_byte(full, sb.st_size / 2), 0);
    assert_int_equal(verify_set(1, why, sizeof(why)), DMCE_ECORRUPT);
    assert_non_null(strstr(why, full));
    ex = harness_start_expect_exit(1, flags[0], flags[1], flags[2], flags[3], "--recover", NULL);
    assert_true(ex > 0);
    assert_int_equal(harness_shm_count(), 0); /* nothing left of the refused start */

    /* Truncated: refused. */
    copy_file(keep, full);
    assert_int_equal(truncate(full, sb.st_size - 100), 0);
    assert_int_equal(verify_set(1, why, sizeof(why)), DMCE_ECORRUPT);
    assert_non_null(strstr(why, "truncated"));
    ex = harness_start_expect_exit(1, flags[0], flags[1], flags[2], flags[3], "--recover", NULL);
    assert_true(ex > 0);

    /* A damaged table: refused. */
    copy_file(keep, full);
    char table[512], tkeep[600];
    snprintf(table, sizeof(table), "%s/memd-1/table", bkdir);
    snprintf(tkeep, sizeof(tkeep), "%s.keep", table);
    copy_file(table, tkeep);
    assert_int_equal(flip_byte(table, 130), 0);
    assert_int_equal(verify_set(1, why, sizeof(why)), DMCE_ECORRUPT);
    ex = harness_start_expect_exit(1, flags[0], flags[1], flags[2], flags[3], "--recover", NULL);
    assert_true(ex > 0);
    copy_file(tkeep, table);
    unlink(tkeep);

    /* Another cluster's daemon pointed at this set: refused. */
    ex = harness_start_expect_exit(1, flags[0], flags[1], flags[2], flags[3], "--recover",
                                   "--cluster=someone-else", NULL);
    assert_true(ex > 0);

    /* Nothing else changed: the intact set recovers, every byte. */
    unlink(keep);
    assert_int_equal(verify_set(1, why, sizeof(why)), 0);
    assert_int_equal(harness_start(1, flags[0], flags[1], flags[2], flags[3], "--recover", NULL),
                     0);
    c = client_with_token(1, DMCE_SETUP_REATTACH);
    check_all(c, &s);
    dmce_disconnect(c);
}

/* ---- kill -9 in the middle of a backup ---------------------------------------------------- */

static int task_running_half(void *arg)
{
    int id = *(int *)arg;
    dmce_adm_bk_status_t st;
    return status_get(id, &st) == 0 && st.task.state == DMCE_ADM_JOB_RUNNING &&
           st.task.kind == DMCE_ADM_TASK_BACKUP && st.task.bytes_done > 0;
}

static void kill_mid_backup(void **state)
{
    (void)state;
    /* Big blocks full of data, so that a full backup takes a while. */
    const char *f[] = {"--block-size=64M", "--max-blocks=4", "--grace-ms=60000", bkflag,
                       "--prefault=no"};
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], f[4], NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    dmce_addr_t big[3];
    uint8_t *buf = malloc(60 * MIB);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dmce_malloc(c, 60 * MIB, &big[i]), 0);
        fill(buf, 60 * MIB, (unsigned)i, 1);
        assert_int_equal(dmce_write(c, big[i], buf, 60 * MIB), 0);
    }
    backup_ok(1, 0, NULL);
    /* Version 2 of the first: in memory only when the daemon dies mid-backup. */
    fill(buf, 60 * MIB, 0, 2);
    assert_int_equal(dmce_write(c, big[0], buf, 60 * MIB), 0);
    uint32_t task;
    assert_int_equal(task_start(1, DMCE_MSMP_OP_BACKUP, 0, DMCE_ADM_BACKUP_FULL, NULL, &task), 0);
    int id = 1;
    assert_true(harness_wait(task_running_half, &id, 30000));
    harness_kill(1);
    dmce_disconnect(c);
    char why[1024];
    assert_int_equal(verify_set(1, why, sizeof(why)), 0); /* the set is the previous one, whole */
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], f[4], "--recover", NULL), 0);
    c = client_with_token(1, DMCE_SETUP_REATTACH);
    uint8_t *got = malloc(60 * MIB);
    for (int i = 0; i < 3; i++) {
        fill(buf, 60 * MIB, (unsigned)i, 1);
        assert_int_equal(dmce_read(c, big[i], got, 60 * MIB), 0);
        assert_memory_equal(got, buf, 60 * MIB);
    }
    /* No temporary file survives the next backup. */
    backup_ok(1, 0, NULL);
    char tmpname[512];
    snprintf(tmpname, sizeof(tmpname), "%s/memd-1/.table.tmp", bkdir);
    assert_int_not_equal(access(tmpname, F_OK), 0);
    free(got);
    free(buf);
    dmce_disconnect(c);
}

/* ---- backups while the allocator changes --------------------------------------------------- */

struct churn {
    atomic_int stop;
    atomic_ulong ops;
    int fail;
};

static void *churn_main(void *arg)
{
    struct churn *ch = arg;
    dmce_client_t *c = NULL;
    const int ids[] = {1};
    /* A session of its own (a fresh token); no cmocka asserts off the main thread. */
    if (harness_client(&c, ids, 1) < 0 || dmce_setup(c, 0, 0, NULL, NULL) < 0) {
        ch->fail = 1;
        dmce_disconnect(c);
        return NULL;
    }
    dmce_addr_t live[64] = {0};
    uint64_t x = 88172645463325252ull;
    uint8_t buf[8192];
    uint64_t t_end = dmce_now_ms() + 60000;
    for (unsigned n = 0; n < 2000000 && !atomic_load(&ch->stop) && dmce_now_ms() < t_end; n++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned k = (unsigned)(x % 64);
        if (live[k]) {
            if (dmce_free(c, live[k]) < 0)
                ch->fail = 1;
            live[k] = 0;
        } else {
            size_t sz = 16 + (size_t)(x >> 20) % 8000;
            if (dmce_malloc(c, sz, &live[k]) == 0) {
                memset(buf, (int)(x & 0xff), sz);
                if (dmce_write(c, live[k], buf, sz) < 0)
                    ch->fail = 1;
            } else {
                live[k] = 0;
            }
        }
        atomic_fetch_add(&ch->ops, 1);
    }
    dmce_disconnect(c);
    return NULL;
}

static void consistent_under_mallocs(void **state)
{
    (void)state;
    const char *f[] = {"--block-size=32M", "--max-blocks=2", "--grace-ms=60000", bkflag};
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    /* Fill most of the block so that every pass reads much data. */
    dmce_addr_t filler;
    assert_int_equal(dmce_malloc(c, 24 * MIB, &filler), 0);
    uint8_t *buf = malloc(24 * MIB);
    fill(buf, 24 * MIB, 7, 7);
    assert_int_equal(dmce_write(c, filler, buf, 24 * MIB), 0);
    free(buf);

    struct churn ch = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_main, &ch), 0);
    dmce_stats_t ds = {0};
    for (int i = 0; i < 40; i++) {
        backup_ok(1, (i % 4 == 0) ? DMCE_ADM_BACKUP_FULL : 0, NULL);
        assert_int_equal(dmce_daemon_stats(c, 0, &ds), 0);
        if (ds.backup_repasses >= 2 && i >= 4)
            break;
    }
    atomic_store(&ch.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(ch.fail, 0);
    assert_true(atomic_load(&ch.ops) > 100);
    assert_true(ds.backup_repasses >= 1); /* a second pass under the allocator lock ran */
    char why[1024];
    assert_int_equal(verify_set(1, why, sizeof(why)), 0);
    harness_kill(1);
    dmce_disconnect(c);
    assert_int_equal(harness_start(1, f[0], f[1], f[2], f[3], "--recover", NULL), 0);
    c = client_with_token(1, DMCE_SETUP_REATTACH);
    check_all(c, &s);
    dmce_disconnect(c);
}

/* ---- restore into another daemon ------------------------------------------------------------ */

static void restore_other_daemon(void **state)
{
    (void)state;
    /* Blocks 3..6: the block is not daemon 2's first block (1) later. */
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", "--grace-ms=60000",
                                   "--dispatcher=none", "--block-first=3", NULL),
                     0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    uint32_t blk = block_of(c, s.a[0]);
    /* No backup_dir: only to a named directory. */
    uint32_t task;
    assert_int_equal(task_start(1, DMCE_MSMP_OP_BACKUP, 0, 0, NULL, &task), DMCE_ENOBACKUPDIR);
    char named[300];
    snprintf(named, sizeof(named), "%s/snap", bkdir);
    backup_ok(1, 0, named);
    harness_kill(1);
    dmce_disconnect(c);

    /* Without a dispatcher clients find a block by its daemon's ID range: not daemon 2's. */
    assert_int_equal(harness_start(2, "--block-size=4M", "--max-blocks=4", "--grace-ms=60000",
                                   "--dispatcher=none", NULL),
                     0);
    char set[400];
    snprintf(set, sizeof(set), "%s/memd-1", named);
    dmce_adm_task_t t = run_task(2, DMCE_MSMP_OP_RESTORE, 0, 0, set);
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_int_equal(t.err, -ERANGE);
    assert_non_null(strstr(t.detail, "block_first"));
    /* A client of daemon 2 holds session 1 there: the set's session 1 is another client's. */
    dmce_client_t *other;
    const int two[] = {2};
    assert_int_equal(harness_stop(2), 0);
    assert_int_equal(harness_start(2, "--block-size=4M", "--max-blocks=4", "--grace-ms=60000",
                                   "--dispatcher=none", "--block-first=1", NULL),
                     0);
    assert_int_equal(harness_client(&other, two, 1), 0);
    assert_int_equal(dmce_setup(other, 0, 0, NULL, NULL), 0);
    int objects = harness_shm_count();
    t = run_task(2, DMCE_MSMP_OP_RESTORE, 0, 0, set);
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_int_equal(t.err, -EEXIST);
    assert_non_null(strstr(t.detail, "another client's"));
    assert_int_equal(harness_shm_count(), objects); /* the failed restore left no object */
    dmce_disconnect(other);
    t = run_task(2, DMCE_MSMP_OP_RESTORE, 0, 0, set);
    assert_int_equal(t.state, DMCE_ADM_JOB_DONE);
    assert_int_equal(t.blocks_done, 1);
    c = client_with_token(2, DMCE_SETUP_REATTACH);
    check_all(c, &s);
    /* Again: the block is held now. */
    t = run_task(2, DMCE_MSMP_OP_RESTORE, blk, 0, set);
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_int_equal(t.err, -EEXIST);
    assert_non_null(strstr(t.detail, "already held"));
    /* A block the set does not have. */
    t = run_task(2, DMCE_MSMP_OP_RESTORE, blk + 1, 0, set);
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_int_equal(t.err, DMCE_ENOBLOCK);
    check_all(c, &s); /* nothing changed */
    dmce_disconnect(c);
}

/* ---- periodic backups ------------------------------------------------------------------------ */

struct gen_at_least {
    uint32_t block;
    uint64_t gen;
};

static int gen_reached(void *arg)
{
    struct gen_at_least *g = arg;
    dmce_adm_bk_status_t st;
    dmce_adm_bk_entry_t e;
    return status_get(1, &st) == 0 && entry_of(&st, g->block, &e) == 0 && e.generation >= g->gen;
}

static void periodic(void **state)
{
    (void)state;
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", bkflag,
                                   "--backup-interval-s=1", NULL),
                     0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    struct gen_at_least g = {.block = block_of(c, s.a[0]), .gen = 1};
    assert_true(harness_wait(gen_reached, &g, 10000));
    write_one(c, &s, 2, 5);
    g.gen = 3; /* at least one more after the write */
    assert_true(harness_wait(gen_reached, &g, 10000));
    dmce_adm_bk_status_t st;
    assert_int_equal(status_get(1, &st), 0);
    assert_int_equal(st.interval_s, 1);
    assert_int_equal(st.task.kind, DMCE_ADM_TASK_PERIODIC);
    dmce_disconnect(c);
}

/* ---- with a dispatcher: promoted mirrors win; moved blocks leave ---------------------------- */

/* Block b[1] is neither in daemon b[0]'s table nor in its set's files. */
static int block_not_in_set(void *arg)
{
    uint32_t *b = arg;
    dmce_adm_bk_status_t st;
    dmce_adm_bk_entry_t e;
    if (status_get((int)b[0], &st) < 0 || entry_of(&st, b[1], &e) != -ENOENT)
        return 0;
    char dir[300], prefix[32];
    snprintf(dir, sizeof(dir), "%s/memd-%u", bkdir, b[0]);
    snprintf(prefix, sizeof(prefix), "b%u.", b[1]);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *x; d && (x = readdir(d));)
        files += strncmp(x->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return files == 0;
}

static void with_dispatcher(void **state)
{
    (void)state;
    /* 3 x 300 ms pulses: a sanitizer build stalls the host for longer than the default 3 x 100. */
    assert_int_equal(harness_start_dispatcher(0, "--mirroring=on", "--heartbeat-ms=300", NULL), 0);
    for (int id = 1; id <= 3; id++)
        assert_int_equal(harness_start(id, "--block-size=4M", "--max-blocks=6", "--grace-ms=60000",
                                       bkflag, NULL),
                         0);
    assert_true(harness_wait(harness_cluster_alive, (void *)(uintptr_t)3, 10000));
    dmce_client_t *c;
    assert_int_equal(harness_client_dir(&c, 0), 0);
    assert_int_equal(dmce_setup(c, 0, 0, &TOKEN, NULL), 0);
    struct allocs s;
    make_allocs(c, &s);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 10000));
    uint32_t blk = block_of(c, s.a[0]);
    dmce_stats_t ds;
    /* Which daemon holds it: the one whose backup lists it. */
    int holder = 0;
    for (int id = 1; id <= 3; id++) {
        backup_all(id, 0, NULL, 0); /* a daemon may hold mirror copies only */
        dmce_adm_bk_status_t st;
        dmce_adm_bk_entry_t e;
        assert_int_equal(status_get(id, &st), 0);
        if (entry_of(&st, blk, &e) == 0) {
            holder = id;
            assert_true(e.mirror_daemon > 0 && e.mirror_daemon != (uint32_t)id);
        }
    }
    assert_true(holder > 0);
    /* Acknowledged after the backup: on both copies, not in the backup. */
    write_one(c, &s, 0, 9);
    harness_kill(holder);
    assert_true(harness_wait(harness_cluster_alive, (void *)(uintptr_t)2, 10000));
    check_all(c, &s); /* from the promoted copy */
    assert_int_equal(harness_start(holder, "--block-size=4M", "--max-blocks=6", "--grace-ms=60000",
                                   bkflag, "--recover", NULL),
                     0);
    assert_true(harness_wait(harness_cluster_alive, (void *)(uintptr_t)3, 10000));
    /* Its backup of the block is older than the promoted copy: dropped, not recovered. */
    uint32_t arg[2] = {(uint32_t)holder, blk};
    assert_true(harness_wait(block_not_in_set, arg, 5000));
    check_all(c, &s); /* version 9 of allocation 0: the newer copy */
    const int hid[] = {holder};
    dmce_client_t *direct;
    assert_int_equal(harness_client(&direct, hid, 1), 0);
    assert_int_equal(dmce_daemon_stats(direct, 0, &ds), 0);
    assert_int_equal(ds.restored, 0);
    dmce_disconnect(direct);

    /* A block moved away leaves its old owner's set. */
    uint32_t now_on = 0;
    for (int id = 1; id <= 3 && !now_on; id++) {
        dmce_adm_bk_status_t st;
        dmce_adm_bk_entry_t e;
        if (id == holder)
            continue;
        backup_all(id, 0, NULL, 0); /* a daemon may hold mirror copies only */
        if (status_get(id, &st) == 0 && entry_of(&st, blk, &e) == 0)
            now_on = (uint32_t)id;
    }
    assert_true(now_on > 0);
    dmce_admin_t *adm;
    assert_int_equal(dmce_admin_open(H.dir, 5000, &adm), 0);
    uint32_t job;
    dmce_adm_job_t j;
    assert_int_equal(dmce_admin_migrate(adm, blk, (uint32_t)holder, -1, &job), 0);
    assert_int_equal(dmce_admin_wait_job(adm, job, 60000, NULL, NULL, &j), 0);
    assert_int_equal(j.state, DMCE_ADM_JOB_DONE);
    dmce_admin_close(adm);
    uint32_t gone[2] = {now_on, blk};
    assert_true(harness_wait(block_not_in_set, gone, 30000)); /* entry and files */
    check_all(c, &s);
    dmce_disconnect(c);
}

/* ---- a slow recovery: the dispatcher waits, clients wait --------------------------------- */

struct early {
    struct allocs *s;
    int err;
    uint64_t waited_ms;
};

static void *early_client(void *arg)
{
    struct early *e = arg;
    e->err = -ETIMEDOUT;
    dmce_client_t *c = NULL;
    const int ids[] = {1};
    uint64_t t0 = dmce_now_ms();
    /* Until the new daemon listens (the dead one's socket file is still there), bounded. */
    uint64_t end = dmce_now_ms() + 10000;
    while ((e->err = harness_client(&c, ids, 1)) < 0 && dmce_now_ms() < end)
        usleep(1000);
    if (e->err < 0)
        return NULL;
    e->err = dmce_setup(c, 0, DMCE_SETUP_REATTACH, &TOKEN, NULL); /* held until recovered */
    e->waited_ms = dmce_now_ms() - t0;
    for (unsigned i = 0; e->err == 0 && i < NALLOC; i++) {
        size_t n = alloc_size(i);
        uint8_t *want = malloc(n), *got = malloc(n);
        fill(want, n, i, e->s->version[i]);
        if ((e->err = dmce_read(c, e->s->a[i], got, n)) == 0 && memcmp(want, got, n) != 0)
            e->err = -EIO;
        free(want);
        free(got);
    }
    dmce_disconnect(c);
    return NULL;
}

/*
 * A recovery that takes longer than the dispatcher's request timeout: the
 * daemon answers the dispatcher meanwhile (not declared stalled, not
 * killed), and a client that comes early waits and then finds its data.
 */
static void slow_recovery(void **state)
{
    (void)state;
    assert_int_equal(harness_start_dispatcher(0, "--mirroring=off", "--request-timeout-ms=300",
                                              "--heartbeat-ms=300", NULL),
                     0);
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", bkflag, NULL), 0);
    assert_non_null(harness_observer()); /* while a daemon lives: it watches the deaths too */
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    backup_ok(1, 0, NULL);
    harness_kill(1);
    dmce_disconnect(c);
    assert_true(harness_wait(harness_cluster_alive, (void *)(uintptr_t)0, 10000));

    struct early e = {.s = &s};
    pthread_t th;
    setenv("DMCE_TEST_RECOVER_PAUSE_MS", "1500", 1);
    assert_int_equal(pthread_create(&th, NULL, early_client, &e), 0);
    int r = harness_start(1, "--block-size=4M", "--max-blocks=4", bkflag, "--recover", NULL);
    unsetenv("DMCE_TEST_RECOVER_PAUSE_MS");
    pthread_join(th, NULL);
    assert_int_equal(r, 0);
    assert_int_equal(e.err, 0);
    /* Connected while the daemon recovered, held (not refused), served after: its data. */
    assert_true(e.waited_ms >= 1000);
    assert_true(harness_wait(harness_cluster_alive, (void *)(uintptr_t)1, 5000));
    dmce_cluster_stats_t cs;
    assert_int_equal(dmce_cluster_stats(harness_observer(), &cs), 0);
    assert_int_equal(cs.deaths, 1); /* the kill; not the slow start */
}

/* ---- bad requests ---------------------------------------------------------------------------- */

static void bad_requests(void **state)
{
    (void)state;
    assert_int_equal(harness_start(1, "--block-size=4M", "--max-blocks=4", bkflag, NULL), 0);
    dmce_client_t *c = client_with_token(1, 0);
    struct allocs s;
    make_allocs(c, &s);
    uint32_t task;
    /* A relative directory: relative to what? */
    assert_int_equal(task_start(1, DMCE_MSMP_OP_BACKUP, 0, 0, "snap", &task), -EINVAL);
    /* A block this daemon does not hold: the task says so. */
    dmce_adm_task_t t = run_task(1, DMCE_MSMP_OP_BACKUP, 777, 0, NULL);
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_int_equal(t.err, DMCE_ENOBLOCK);
    assert_non_null(strstr(t.detail, "777"));
    /* A block ID beyond the layout. */
    assert_int_equal(task_start(1, DMCE_MSMP_OP_BACKUP, 1u << 20, 0, NULL, &task), DMCE_ENOBLOCK);
    /* A restore from a directory with no set in it. */
    t = run_task(1, DMCE_MSMP_OP_RESTORE, 0, 0, "/nonexistent-dmce-dir");
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_non_null(strstr(t.detail, "/nonexistent-dmce-dir"));
    /* A backup directory that cannot be made. */
    t = run_task(1, DMCE_MSMP_OP_BACKUP, 0, 0, "/proc/dmce-cannot-be-here");
    assert_int_equal(t.state, DMCE_ADM_JOB_FAILED);
    assert_non_null(strstr(t.detail, "/proc/dmce-cannot-be-here"));
    /* Malformed frames. */
    uint8_t junk[DMCE_ADM_BACKUP_HDR + 8] = {0};
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_BACKUP, junk, 7, NULL, 0, NULL), -EBADMSG);
    dmce_put_le32(junk + 4, 0x80); /* unknown flag */
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_BACKUP, junk, DMCE_ADM_BACKUP_HDR, NULL, 0, NULL),
                     -EBADMSG);
    memset(junk, 0, sizeof(junk));
    dmce_put_le32(junk + 12, 1); /* reserved */
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_BACKUP, junk, DMCE_ADM_BACKUP_HDR, NULL, 0, NULL),
                     -EBADMSG);
    memset(junk, 0, sizeof(junk));
    dmce_put_le32(junk + 8, 100); /* dir length past the frame */
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_RESTORE, junk, sizeof(junk), NULL, 0, NULL),
                     -EBADMSG);
    dmce_put_le32(junk + 8, 0);
    dmce_put_le32(junk + 4, DMCE_ADM_BACKUP_FULL); /* full: not a restore flag */
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_RESTORE, junk, DMCE_ADM_BACKUP_HDR, NULL, 0, NULL),
                     -EBADMSG);
    assert_int_equal(memd_call(1, DMCE_MSMP_OP_BACKUP_STATUS, junk, 4, NULL, 0, NULL), -EBADMSG);
    /* Still serving, data intact; a good backup still works. */
    check_all(c, &s);
    backup_ok(1, 0, NULL);
    dmce_disconnect(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kill_recover, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(refusals, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(recover_full_daemon, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(bad_requests, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(restore_other_daemon, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(periodic, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(kill_mid_backup, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(consistent_under_mallocs, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(with_dispatcher, setup_dirs, teardown),
        cmocka_unit_test_setup_teardown(slow_recovery, setup_dirs, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
