/*
 * bench_backup.c - dmce-bench-backup: block backups to files, incremental
 * backups, recovery at start, and writers during a backup (issue 9;
 * docs/backup.md), each beside what the machine does with the same bytes
 * in the same run, on the same filesystem.
 *
 * The program owns its memory daemon: it starts one dmce-memd (--memd)
 * with --id, --cluster, --block-size, --max-blocks=2, --prefault=no and
 * --backup-dir as a child (dmce_bench_spawn: it gets SIGTERM if this
 * program dies), kills it with SIGKILL and starts it again with --recover,
 * and stops it (SIGTERM) at the end; its stderr is appended to
 * LOG_DIR/memd-ID.log. Before measuring, one client (the owner, a default
 * connection) fills one block with incompressible bytes (xorshift) in
 * 1 MiB allocations, as many as the block's data bytes hold (its stats),
 * all in that block (checked by address). Backups are asked of the daemon
 * with its admin operations (msmp_admin.h: backup 30, backup_status 31)
 * through runtime/admin.h, for that block, and followed by polling
 * backup_status every POLL_US.
 *
 * The backup directory must be on a disk (the figures are about files):
 * its filesystem (statfs, /proc/self/mountinfo) is printed and put in the
 * notes; a tmpfs is named as such. The daemon's set, BACKUP_DIR/memd-ID,
 * must not exist or be empty at start (a set that is not ours is never
 * touched); the program removes it, and its own reference files, at the
 * end.
 *
 *   --bench backup   three parts on one daemon, each REPS repetitions:
 *     full          a backup with the full flag, from the request to the
 *                   task DONE (impl dmce; bytes: the file's), beside a
 *                   plain sequential write of as many bytes of the same
 *                   data to a file in the same directory: write() of
 *                   1 MiB chunks, fsync, rename over the previous one,
 *                   fsync of the directory (impl limit: what an atomic
 *                   backup file must do at least). Interleaved, one
 *                   untimed round of each first. One op is 1 MiB.
 *     incremental   --changed percent of the block's 4 KiB pages, drawn
 *                   at random and each written whole by the owner, then a
 *                   backup without the flag (a delta): its time, pages
 *                   written (checked against the pages changed), and the
 *                   block's bytes over the time, the scan rate (impl
 *                   dmce); beside memcpy of the block (impl limit) and
 *                   XXH3-64 of each of its pages in this process (impl
 *                   xxh3: the scan's hashing alone), and a plain write of
 *                   the delta's bytes alone (impl write-only: the block's
 *                   bytes over the time of that write, fsync, rename and
 *                   fsync of the directory, as if the scan were free).
 *     recover       kill -9 of the daemon, its stale block objects
 *                   removed (untimed: a restart after a reboot has none),
 *                   the page cache dropped (root: /proc/sys/vm/drop_caches;
 *                   else the note says warm), then the daemon started with
 *                   --recover: from the fork to its stats answering
 *                   starting == 0 (impl dmce; bytes: the set's chain, the
 *                   full image and the deltas); beside a plain sequential
 *                   read of as many bytes from a file written beforehand,
 *                   after dropping the cache again (impl limit), and
 *                   memcpy of a block into a fresh memfd mapping (impl
 *                   memcpy-fresh: recovery fills a new object, every page
 *                   a first touch). Interleaved. At the end a client
 *                   reattaches the owner's session (its token) and reads
 *                   every allocation back: the bytes of the last backup.
 *   --bench writers  --clients writer processes (NO_MAP connections: every
 *                   write a message on the rings, which the daemon copies
 *                   under the chunk's stripe lock, the lock a backup reads
 *                   the chunk under) do dmce_write of --size bytes at
 *                   random 4 KiB pages of the block, every op timed by the
 *                   frame. Impl dmce: full backups of the block back to
 *                   back (the frame's tick starts the next one when the
 *                   last is done); impl no-backup: none. Their repetitions
 *                   interleave (dmce_bench_run_pair); the tick polls
 *                   backup_status on both sides alike, and every writer
 *                   process waits in its setup until no backup runs.
 *                   With --writes-to other the writers write to 1 MiB
 *                   allocations in the daemon's other block instead, which
 *                   no backup reads (bench write-other): what a backup
 *                   costs writers besides its stripe locks (the CPU and
 *                   the disk it takes).
 *
 * Every wait is bounded (a start: START_MS, a task: TASK_MS); every loop is
 * bounded in count and time: no repetition of the full, incremental or
 * recover part starts after a third of --max-seconds in it (the results
 * give the repetitions done).
 *
 * Exit status: 0 every result was given, 1 a measurement failed, 2 bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>

#include "admin.h"
#include "backup.h"
#include "bench.h"
#include "util.h"

#define PROG "dmce-bench-backup"
#define CHUNK (UINT64_C(1) << 20) /* one allocation, and one write() of the plain file */
#define PAGE UINT64_C(4096)       /* a backup page (DMCE_BK_PAGE) */
#define MAX_ALLOCS 16384u         /* 16 GiB of allocations */
#define MAX_WRITERS 8u
#define START_MS 60000u    /* a daemon answering starting == 0 */
#define TASK_MS 120000u    /* one backup task */
#define STOP_MS 10000u     /* a daemon stopping after SIGTERM */
#define POLL_US 1000u      /* backup_status while timing a task */
#define READY_POLL_US 200u /* stats while timing a start */
#define TICK_POLL_US 2000u /* backup_status from the writers' tick, both sides */
#define PATH_LEN 4096
#define OTHER_ALLOCS 16u /* --writes-to other: 1 MiB allocations in the other block */

enum { BENCH_NONE = -1, BENCH_BACKUP, BENCH_WRITERS }; /* --bench's names, in order */

typedef struct bk_ctx {
    /* options */
    int bench; /* BENCH_* */
    const char *runtime_dir, *backup_dir, *memd, *cluster, *log_dir;
    uint64_t id, block_size, changed_pct, size, max_s;
    int other; /* writers: --writes-to other (a block no backup reads) */
    /* main's; owner: main, released at its end */
    pid_t memd_pid;            /* our daemon (0: none running) */
    dmce_admin_t *admin;       /* its admin connection (socket) */
    dmce_client_t *owner;      /* holds the allocations */
    dmce_token_t token;        /* the owner's session, for the reattach after recovery */
    unsigned char *data;       /* block_size random bytes: allocation i holds data + i * CHUNK */
    dmce_addr_t a[MAX_ALLOCS]; /* the block's allocations, then (writers, other) OTHER_ALLOCS */
    unsigned nalloc;
    uint32_t block;     /* the filled block */
    dmce_addr_t *pages; /* the page-aligned 4 KiB ranges inside allocations */
    uint64_t *page_off; /* ... and where their bytes are in data */
    uint64_t npages;
    uint64_t rng;
    char set_dir[PATH_LEN], plain[PATH_LEN], log_path[PATH_LEN];
    char fs[128];   /* "ext4 on /dev/vda" */
    int cold;       /* the page cache was dropped before every cold read */
    double start_s; /* the first start, with no set */
    /* the writers' tick (main) */
    uint64_t tick_start, next_poll;
    uint32_t task; /* the backup the tick started, not seen done yet (0: none) */
    uint64_t polls, busy_polls, backups;
    /* per writer process, setup .. teardown */
    dmce_client_t *client;
    unsigned char *buf;
    uint64_t wrng;
} bk_ctx_t;

/* One side of the writers' pair: the same writers, backups running or not. */
typedef struct side {
    bk_ctx_t *x;
    int backing;
} side_t;

/* ---- options ------------------------------------------------------------------------------- */

DMCE_BENCH_OPT_CHOICE(set_bench, PROG, "bench", bk_ctx_t, bench, "backup", "writers")
DMCE_BENCH_OPT_STR(set_runtime_dir, bk_ctx_t, runtime_dir)
DMCE_BENCH_OPT_STR(set_backup_dir, bk_ctx_t, backup_dir)
DMCE_BENCH_OPT_STR(set_memd, bk_ctx_t, memd)
DMCE_BENCH_OPT_STR(set_cluster, bk_ctx_t, cluster)
DMCE_BENCH_OPT_STR(set_log_dir, bk_ctx_t, log_dir)
DMCE_BENCH_OPT_SIZE(set_id, PROG, "id", bk_ctx_t, id, 1, 4095)
DMCE_BENCH_OPT_SIZE(set_block_size, PROG, "block-size", bk_ctx_t, block_size, 16 * CHUNK,
                    CHUNK *MAX_ALLOCS)
DMCE_BENCH_OPT_SIZE(set_changed, PROG, "changed", bk_ctx_t, changed_pct, 1, 100)
DMCE_BENCH_OPT_SIZE(set_size, PROG, "size", bk_ctx_t, size, 8, PAGE)
DMCE_BENCH_OPT_SIZE(set_max_s, PROG, "max-seconds", bk_ctx_t, max_s, 3, 86400)
DMCE_BENCH_OPT_CHOICE(set_writes_to, PROG, "writes-to", bk_ctx_t, other, "same", "other")

static const char *bk_strerror(int err)
{
    return dmce_strerror(err);
}

/* ---- the filesystem, files, the page cache --------------------------------------------------- */

/* "FSTYPE on SOURCE" of the mount holding dir (/proc/self/mountinfo), and whether it is memory. */
static int fs_describe(const char *dir, char *out, size_t len, int *in_memory)
{
    struct statfs sf;
    struct stat st;
    if (statfs(dir, &sf) < 0 || stat(dir, &st) < 0)
        return -errno;
    *in_memory = sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
    snprintf(out, len, "fs type 0x%lx", (unsigned long)sf.f_type);
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096], want[32];
    snprintf(want, sizeof(want), "%u:%u", major(st.st_dev), minor(st.st_dev));
    while (f && fgets(line, sizeof(line), f)) {
        /* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE ... */
        char devno[32], type[32], source[64];
        const char *sep = strstr(line, " - ");
        if (sscanf(line, "%*s %*s %31s", devno) == 1 && strcmp(devno, want) == 0 && sep &&
            sscanf(sep + 3, "%31s %63s", type, source) == 2) {
            snprintf(out, len, "%s on %s", type, source);
            break;
        }
    }
    if (f)
        fclose(f);
    return 0;
}

/* Drop the page cache (root). 1 done, 0 not (the next read is warm). */
static int drop_caches(void)
{
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int ok = write(fd, "1", 1) == 1;
    close(fd);
    return ok;
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/*
 * The plain write: bytes of x->data (from its start, again and again) to
 * PLAIN.tmp in 1 MiB write()s, fsync, rename over PLAIN, fsync of the
 * directory, as a backup file is committed. *secs: all of it.
 */
static int plain_write(bk_ctx_t *x, uint64_t bytes, double *secs)
{
    char tmp[PATH_LEN + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", x->plain);
    uint64_t t0 = dmce_now_ns();
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), r = 0;
    if (fd < 0)
        return -errno;
    for (uint64_t off = 0; off < bytes && r == 0;) {
        uint64_t at = off % x->block_size,
                 n = DMCE_MIN(CHUNK, DMCE_MIN(bytes - off, x->block_size - at));
        ssize_t k = write(fd, x->data + at, n);
        if (k > 0)
            off += (uint64_t)k;
        else if (k < 0 && errno != EINTR)
            r = -errno;
        else if (k == 0)
            r = -EIO;
    }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, x->plain) < 0)
        r = -errno;
    if (r == 0)
        r = fsync_path(x->backup_dir, O_RDONLY | O_DIRECTORY);
    *secs = (double)(dmce_now_ns() - t0) / 1e9;
    if (r < 0)
        unlink(tmp);
    return r;
}

/* The plain read: PLAIN from start to end in 1 MiB read()s into buf. *bytes: its size. */
static int plain_read(bk_ctx_t *x, unsigned char *buf, uint64_t *bytes, double *secs)
{
    uint64_t t0 = dmce_now_ns(), got = 0;
    int fd = open(x->plain, O_RDONLY | O_CLOEXEC), r = 0;
    if (fd < 0)
        return -errno;
    for (;;) {
        ssize_t k = read(fd, buf, CHUNK);
        if (k > 0)
            got += (uint64_t)k;
        else if (k == 0)
            break;
        else if (errno != EINTR) {
            r = -errno;
            break;
        }
    }
    close(fd);
    *secs = (double)(dmce_now_ns() - t0) / 1e9;
    *bytes = got;
    return r;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

/* Start our dmce-memd (with --recover or not); t0: just before the fork. */
static int memd_start(bk_ctx_t *x, int recover, uint64_t *t0)
{
    char a[5][PATH_LEN + 32];
    snprintf(a[0], sizeof(a[0]), "--runtime-dir=%s", x->runtime_dir);
    snprintf(a[1], sizeof(a[1]), "--cluster=%s", x->cluster);
    snprintf(a[2], sizeof(a[2]), "--id=%llu", (unsigned long long)x->id);
    snprintf(a[3], sizeof(a[3]), "--block-size=%llu", (unsigned long long)x->block_size);
    snprintf(a[4], sizeof(a[4]), "--backup-dir=%s", x->backup_dir);
    /*
     * --max-blocks=2: room for a recovered block and the new one every start
     * makes (with 1, a recovered daemon refuses to start: docs/perf.md);
     * --prefault=no: no prefault thread running beside what is measured.
     */
    char *argv[12] = {(char *)x->memd, a[0], a[1], a[2], a[3], a[4]};
    argv[6] = "--max-blocks=2";
    argv[7] = "--prefault=no";
    argv[8] = "--log-level=info";
    argv[9] = recover ? "--recover" : NULL;
    *t0 = dmce_now_ns();
    int r = dmce_bench_spawn(argv, x->log_path, &x->memd_pid);
    if (r < 0)
        fprintf(stderr, PROG ": starting %s: %s\n", x->memd, strerror(-r));
    return r;
}

/* Poll the daemon's stats until it answers with starting == 0; *secs since t0. */
static int memd_ready(bk_ctx_t *x, uint64_t t0, double *secs)
{
    uint64_t deadline = dmce_now_ms() + START_MS;
    for (;;) {
        int st;
        if (waitpid(x->memd_pid, &st, WNOHANG) == x->memd_pid) {
            x->memd_pid = 0;
            fprintf(stderr, PROG ": memd[%llu] exited at start (wait status %d); see %s\n",
                    (unsigned long long)x->id, st, x->log_path);
            return -ECHILD;
        }
        dmce_stats_t s;
        int r = dmce_admin_stats(x->admin, (uint32_t)x->id, &s);
        uint64_t now = dmce_now_ns();
        if (r == 0 && s.starting == 0) {
            *secs = (double)(now - t0) / 1e9;
            return 0;
        }
        if (dmce_now_ms() >= deadline) {
            fprintf(stderr, PROG ": memd[%llu] not serving %u ms after its start (%s)\n",
                    (unsigned long long)x->id, START_MS,
                    r < 0 ? dmce_strerror(r) : "still starting");
            return -ETIMEDOUT;
        }
        dmce_bench_sleep_us(READY_POLL_US);
    }
}

/* kill -9 of the daemon, reaped. */
static void memd_kill(bk_ctx_t *x)
{
    if (x->memd_pid > 0)
        dmce_bench_stop_child(x->memd_pid, SIGKILL, STOP_MS, NULL);
    x->memd_pid = 0;
}

/* The block objects a killed daemon left (the restarted one would remove them itself). */
static void shm_remove_stale(bk_ctx_t *x)
{
    char prefix[256];
    int n = snprintf(prefix, sizeof(prefix), "dmce.%u.%s.m%llu.", (unsigned)geteuid(), x->cluster,
                     (unsigned long long)x->id);
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, prefix, (size_t)n) == 0 && unlinkat(dirfd(d), e->d_name, 0) < 0)
            fprintf(stderr, PROG ": cannot remove /dev/shm/%s: %s\n", e->d_name, strerror(errno));
    if (d)
        closedir(d);
}

/* Every file of our daemon's set, then the set's directory, and the plain files. */
static void remove_files(bk_ctx_t *x)
{
    DIR *d = opendir(x->set_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) < 0)
            fprintf(stderr, PROG ": cannot remove %s/%s: %s\n", x->set_dir, e->d_name,
                    strerror(errno));
    if (d) {
        closedir(d);
        if (rmdir(x->set_dir) < 0)
            fprintf(stderr, PROG ": cannot remove %s: %s\n", x->set_dir, strerror(errno));
    }
    char tmp[PATH_LEN + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", x->plain);
    unlink(tmp);
    unlink(x->plain);
}

/* ---- backups --------------------------------------------------------------------------------- */

/* One look at the daemon's backup status: the task in *t, our block's entry in *e (may be NULL). */
static int bk_status(bk_ctx_t *x, dmce_adm_task_t *t, dmce_adm_bk_entry_t *e)
{
    dmce_admin_bk_t bk;
    int r = dmce_admin_backup_status(x->admin, (uint32_t)x->id, &bk);
    if (r == 0 && t)
        *t = bk.task;
    if (r == 0 && e) {
        r = DMCE_ENOBLOCK;
        for (uint32_t i = 0; i < bk.count; i++)
            if (bk.entries[i].block == x->block) {
                *e = bk.entries[i];
                r = 0;
            }
    }
    dmce_admin_bk_free(&bk);
    return r;
}

/*
 * Back up the block (flags: DMCE_ADM_BACKUP_FULL or 0) and poll until the
 * task is done: *secs from the request to the look that saw it DONE.
 */
static int backup_once(bk_ctx_t *x, uint32_t flags, double *secs, dmce_adm_task_t *t)
{
    uint32_t id, queued;
    uint64_t t0 = dmce_now_ns(), deadline = dmce_now_ms() + TASK_MS;
    int r = dmce_admin_backup(x->admin, (uint32_t)x->id, x->block, flags, NULL, &id, &queued);
    while (r == 0) {
        r = bk_status(x, t, NULL);
        uint64_t now = dmce_now_ns();
        if (r == 0 && t->id == id && t->state == DMCE_ADM_JOB_FAILED) {
            fprintf(stderr, PROG ": backup task %u failed: %s (%s)\n", id, dmce_strerror(t->err),
                    t->detail);
            return t->err < 0 ? t->err : -EIO;
        }
        if (r == 0 && t->id == id && t->state == DMCE_ADM_JOB_DONE) {
            *secs = (double)(now - t0) / 1e9;
            return 0;
        }
        if (r == 0 && dmce_now_ms() >= deadline)
            r = -ETIMEDOUT;
        dmce_bench_sleep_us(POLL_US);
    }
    fprintf(stderr, PROG ": backup of block %u: %s\n", x->block, dmce_strerror(r));
    return r;
}

/* ---- the block: filled, its pages changed ---------------------------------------------------- */

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s * UINT64_C(0x2545F4914F6CDD1D);
}

static void fill_random(unsigned char *p, uint64_t n, uint64_t *s)
{
    for (uint64_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = next_rand(s);
        memcpy(p + i, &v, 8);
    }
}

static int decode(const bk_ctx_t *x, dmce_addr_t a, dmce_addr_parts_t *p)
{
    return dmce_addr_decode(dmce_client_layout(x->owner), a, p);
}

/*
 * The owner and the block: 1 MiB allocations, all in the block the first
 * one lands in, each written with its bytes of x->data; then the list of
 * page-aligned 4 KiB ranges inside them.
 */
static int fill_block(bk_ctx_t *x)
{
    const char *what;
    int rc = dmce_bench_client(x->runtime_dir, 0, &x->owner, &what);
    if (rc < 0)
        goto fail;
    what = "dmce_session_token";
    if ((rc = dmce_session_token(x->owner, &x->token)) < 0)
        goto fail;
    /*
     * As many allocations as one block's data bytes hold (capacity / 2:
     * --max-blocks=2), each with a granule or so of header: no malloc
     * spills into a second block, whose creation would fault in a block's
     * worth of memory (fallocate) for nothing.
     */
    dmce_stats_t st;
    what = "dmce_daemon_stats";
    if ((rc = dmce_daemon_stats(x->owner, 0, &st)) < 0)
        goto fail;
    const uint64_t fit = DMCE_MIN(st.bytes_total / 2 / (CHUNK + PAGE), (uint64_t)MAX_ALLOCS);
    while (x->nalloc < fit) {
        dmce_addr_t a;
        dmce_addr_parts_t p;
        what = "dmce_malloc";
        if ((rc = dmce_malloc(x->owner, CHUNK, &a)) < 0 || (rc = decode(x, a, &p)) < 0)
            goto fail;
        if (x->nalloc == 0)
            x->block = p.block;
        if (p.block != x->block) {
            dmce_free(x->owner, a); /* the block is full: what we have is the fill */
            break;
        }
        x->a[x->nalloc++] = a;
    }
    /* --writes-to other: the writers' allocations in the daemon's other block. */
    unsigned first = 0, n = x->nalloc;
    for (uint32_t other = 0; x->other && n - x->nalloc < OTHER_ALLOCS && n < MAX_ALLOCS;) {
        dmce_addr_t a;
        dmce_addr_parts_t p;
        what = "dmce_malloc (the other block)";
        if ((rc = dmce_malloc(x->owner, CHUNK, &a)) < 0 || (rc = decode(x, a, &p)) < 0)
            goto fail;
        if (p.block == x->block && n == x->nalloc) { /* the fill's block had room left */
            x->a[x->nalloc++] = a;
            n++;
            continue;
        }
        other = other ? other : p.block;
        if (p.block != other || p.block == x->block) {
            dmce_free(x->owner, a);
            rc = -ENOSPC;
            goto fail;
        }
        x->a[n++] = a;
    }
    if (x->other)
        first = x->nalloc;
    what = "dmce_write (the fill)";
    for (unsigned i = 0; i < n; i++)
        if ((rc = dmce_write(x->owner, x->a[i], x->data + (i % x->nalloc) * CHUNK, CHUNK)) < 0)
            goto fail;
    if (x->nalloc < 16) {
        fprintf(stderr, PROG ": only %u allocation(s) fit in block %u\n", x->nalloc, x->block);
        return -ENOSPC;
    }
    x->pages = malloc((n - first) * (CHUNK / PAGE) * sizeof(*x->pages));
    x->page_off = malloc((n - first) * (CHUNK / PAGE) * sizeof(*x->page_off));
    if (!x->pages || !x->page_off)
        return -ENOMEM;
    for (unsigned i = first; i < n; i++) {
        dmce_addr_parts_t p;
        decode(x, x->a[i], &p);
        for (uint64_t c = (p.cell + PAGE - 1) / PAGE * PAGE; c + PAGE <= p.cell + CHUNK;
             c += PAGE) {
            x->pages[x->npages] = x->a[i] + (c - p.cell);
            x->page_off[x->npages++] = i * CHUNK + (c - p.cell);
        }
    }
    return 0;
fail:
    fprintf(stderr, PROG ": the fill: %s: %s\n", what, dmce_strerror(rc));
    return rc;
}

/* n distinct pages, drawn at random, each written whole with new random bytes (and in data). */
static int change_pages(bk_ctx_t *x, uint64_t n, uint32_t *idx)
{
    for (uint64_t i = 0; i < x->npages; i++)
        idx[i] = (uint32_t)i;
    for (uint64_t i = 0; i < n; i++) { /* the first n of a Fisher-Yates shuffle */
        uint64_t j = i + next_rand(&x->rng) % (x->npages - i);
        uint32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        unsigned char *p = x->data + x->page_off[idx[i]];
        fill_random(p, PAGE, &x->rng);
        int r = dmce_write(x->owner, x->pages[idx[i]], p, PAGE);
        if (r < 0) {
            fprintf(stderr, PROG ": changing a page: dmce_write: %s\n", dmce_strerror(r));
            return r;
        }
    }
    return 0;
}

/* Reattach the owner's session after recovery and read every allocation back. */
static int check_recovered(bk_ctx_t *x)
{
    dmce_connect_opts_t co;
    memset(&co, 0, sizeof(co));
    co.runtime_dir = x->runtime_dir;
    dmce_client_t *c = NULL;
    unsigned char *back = malloc(CHUNK);
    int r = back ? dmce_connect(&co, &c) : -ENOMEM;
    if (r == 0)
        r = dmce_setup(c, 0, DMCE_SETUP_REATTACH, &x->token, NULL);
    for (unsigned i = 0; r == 0 && i < x->nalloc; i++) {
        if ((r = dmce_read(c, x->a[i], back, CHUNK)) == 0 &&
            memcmp(back, x->data + i * CHUNK, CHUNK) != 0) {
            fprintf(stderr, PROG ": allocation %u differs from the last backup after recovery\n",
                    i);
            r = -EIO;
        }
    }
    if (r < 0 && r != -EIO)
        fprintf(stderr, PROG ": reading the recovered block back: %s\n", dmce_strerror(r));
    if (c)
        dmce_disconnect(c); /* frees the allocations: the session was ours */
    free(back);
    return r;
}

/* ---- results --------------------------------------------------------------------------------- */

/* A rate result (op = 1 MiB: ops/s = MiB/s) of area backup, with one numeric param. */
static int emit_rates(const dmce_bench_opts_t *o, const char *bench, const char *impl,
                      const char *pkey, double pval, const double *bytes, const double *secs,
                      const char *note)
{
    dmce_bench_case_t c;
    if (dmce_bench_case_init(&c, "backup", bench, impl) < 0 ||
        dmce_perf_param_num(&c.res, pkey, pval) < 0)
        return -EINVAL;
    dmce_bench_result_rates(&c.res, bytes, secs, o->reps, (double)CHUNK);
    snprintf(c.res.note, sizeof(c.res.note), "%s", note);
    fprintf(o->human, "  %-10s %-12s %9.1f MB/s (%.1f..%.1f)  %s\n", bench, impl,
            c.res.gb_per_s.median * 1e3, c.res.gb_per_s.min * 1e3, c.res.gb_per_s.max * 1e3, note);
    return dmce_bench_emit(o, &c.res);
}

static double median_of(const double *v, unsigned n)
{
    dmce_perf_stat_t s;
    dmce_perf_stat_from(&s, v, n);
    return s.median;
}

/* ---- --bench backup: full, incremental, recover ---------------------------------------------- */

/*
 * Whether a part started at t_part runs repetition rep: at most --reps,
 * and none started after a third of --max-seconds (at least one).
 */
static int more_reps(const bk_ctx_t *x, const dmce_bench_opts_t *o, unsigned rep, uint64_t t_part)
{
    return rep < o->reps &&
           (rep == 0 || dmce_now_ns() - t_part < x->max_s * UINT64_C(1000000000) / 3);
}

static int run_full(bk_ctx_t *x, const dmce_bench_opts_t *o)
{
    dmce_bench_opts_t po = *o; /* reps: those done */
    const uint64_t t_part = dmce_now_ns();
    double bsecs[DMCE_PERF_MAX_REPS], psecs[DMCE_PERF_MAX_REPS], bytes[DMCE_PERF_MAX_REPS];
    double took[DMCE_PERF_MAX_REPS];
    dmce_adm_task_t t;
    dmce_adm_bk_entry_t e;
    double s;
    /* One untimed round of each: the file's size, and every path warm. */
    int r = backup_once(x, DMCE_ADM_BACKUP_FULL, &s, &t);
    if (r == 0 && (r = bk_status(x, NULL, &e)) < 0)
        fprintf(stderr, PROG ": our block's entry in the backup table: %s\n", dmce_strerror(r));
    if (r == 0 && (r = plain_write(x, e.disk_bytes, &s)) < 0)
        fprintf(stderr, PROG ": the plain write to %s: %s\n", x->plain, strerror(-r));
    if (r < 0)
        return r;
    fprintf(o->human, "full: block %u, %llu MiB (%u allocations), file %llu bytes, on %s\n",
            x->block, (unsigned long long)(x->block_size >> 20), x->nalloc,
            (unsigned long long)e.disk_bytes, x->fs);
    fprintf(o->human, "%4s %12s %12s %12s\n", "rep", "backup ms", "daemon ms", "plain ms");
    unsigned rep;
    for (rep = 0; more_reps(x, o, rep, t_part); rep++) {
        for (unsigned k = 0; k < 2 && r == 0; k++) {
            if ((rep + k) & 1) {
                if ((r = plain_write(x, e.disk_bytes, &psecs[rep])) < 0)
                    fprintf(stderr, PROG ": the plain write: %s\n", strerror(-r));
            } else if ((r = backup_once(x, DMCE_ADM_BACKUP_FULL, &bsecs[rep], &t)) == 0 &&
                       (r = bk_status(x, NULL, &e)) == 0) {
                took[rep] = (double)t.elapsed_us / 1e6;
            }
        }
        if (r < 0)
            return r;
        bytes[rep] = (double)e.disk_bytes;
        fprintf(o->human, "%4u %12.1f %12.1f %12.1f\n", rep + 1, bsecs[rep] * 1e3, took[rep] * 1e3,
                psecs[rep] * 1e3);
    }
    po.reps = rep;
    char note[DMCE_PERF_TEXT_MAX];
    snprintf(note, sizeof(note),
             "full flag, request -> DONE; %.0f MiB file, %.40s; the daemon's %.0f ms",
             bytes[0] / (1 << 20), x->fs, median_of(took, po.reps) * 1e3);
    if ((r = emit_rates(&po, "full", "dmce", "blocks", 1, bytes, bsecs, note)) < 0)
        return r;
    snprintf(note, sizeof(note),
             "write() 1 MiB x %.0f, fsync, rename, fsync dir; same data, dir, fs",
             bytes[0] / (1 << 20));
    return emit_rates(&po, "full", "limit", "blocks", 1, bytes, psecs, note);
}

/* The hashes' XOR: the compiler must compute them. */
static volatile uint64_t hash_sink;

/* XXH3-64 of every 4 KiB page of p[0..n), as the scan hashes them, reps times. */
static void hash_pages(const unsigned char *p, uint64_t n, unsigned reps, double *secs)
{
    for (unsigned i = 0; i < reps; i++) {
        uint64_t t0 = dmce_now_ns(), acc = 0;
        for (uint64_t off = 0; off < n; off += PAGE)
            acc ^= dmce_bk_hash(p + off, PAGE);
        secs[i] = (double)(dmce_now_ns() - t0) / 1e9;
        hash_sink ^= acc;
    }
}

static int run_incremental(bk_ctx_t *x, const dmce_bench_opts_t *o)
{
    dmce_bench_opts_t po = *o; /* reps: those done */
    const uint64_t t_part = dmce_now_ns();
    const uint64_t want = DMCE_MAX(UINT64_C(1), x->block_size / PAGE * x->changed_pct / 100);
    double secs[DMCE_PERF_MAX_REPS], bytes[DMCE_PERF_MAX_REPS], pages[DMCE_PERF_MAX_REPS];
    double msecs[DMCE_PERF_MAX_REPS], hsecs[DMCE_PERF_MAX_REPS], wsecs[DMCE_PERF_MAX_REPS];
    uint32_t *idx = malloc(x->npages * sizeof(*idx));
    unsigned char *dst = malloc(x->block_size);
    dmce_adm_bk_entry_t e;
    int r = idx && dst ? bk_status(x, NULL, &e) : -ENOMEM, mismatch = 0;
    uint64_t before = e.disk_bytes; /* the set's bytes before this delta: the delta's size */
    if (r == 0 && want > x->npages) {
        fprintf(stderr, PROG ": %llu pages to change, %llu in the allocations\n",
                (unsigned long long)want, (unsigned long long)x->npages);
        r = -EINVAL;
    }
    if (r == 0)
        fprintf(o->human,
                "incremental: %llu random pages changed (%llu%% of the block) per rep\n"
                "%4s %12s %12s %12s %10s %12s\n",
                (unsigned long long)want, (unsigned long long)x->changed_pct, "rep", "backup ms",
                "daemon ms", "pages", "files", "plain ms");
    unsigned rep;
    for (rep = 0; r == 0 && more_reps(x, o, rep, t_part); rep++) {
        dmce_adm_task_t t;
        if ((r = change_pages(x, want, idx)) < 0 || (r = backup_once(x, 0, &secs[rep], &t)) < 0 ||
            (r = bk_status(x, NULL, &e)) < 0)
            break;
        /* The delta's bytes alone, written and committed as a plain file. */
        if ((r = plain_write(x, e.disk_bytes - before, &wsecs[rep])) < 0) {
            fprintf(stderr, PROG ": the plain write: %s\n", strerror(-r));
            break;
        }
        before = e.disk_bytes;
        bytes[rep] = (double)x->block_size;
        pages[rep] = (double)t.pages_written;
        mismatch |= t.pages_written != want;
        fprintf(o->human, "%4u %12.1f %12.1f %12llu %10u %12.1f\n", rep + 1, secs[rep] * 1e3,
                (double)t.elapsed_us / 1e3, (unsigned long long)t.pages_written, e.files,
                wsecs[rep] * 1e3);
        if (e.files < 2 && x->changed_pct * (rep + 1) < 100) { /* deltas under a full image */
            fprintf(stderr, PROG ": the backup of a changed block was not a delta (%u file)\n",
                    e.files);
            r = -EPROTO;
        }
    }
    po.reps = rep;
    if (r == 0 && mismatch)
        fprintf(stderr,
                PROG ": warning: a delta wrote a number of pages other than the %llu changed\n",
                (unsigned long long)want);
    if (r == 0 && (r = dmce_bench_memcpy(x->data, dst, x->block_size, 0, po.reps, msecs)) < 0)
        fprintf(stderr, PROG ": memcpy: %s\n", strerror(-r));
    if (r == 0)
        hash_pages(x->data, x->block_size, po.reps, hsecs);
    free(idx);
    free(dst);
    if (r < 0)
        return r;
    char note[DMCE_PERF_TEXT_MAX];
    const double pct = (double)x->changed_pct;
    snprintf(note, sizeof(note),
             "delta of %llu changed pages: %.0f pages written (median); block bytes / time",
             (unsigned long long)want, median_of(pages, po.reps));
    if ((r = emit_rates(&po, "incremental", "dmce", "changed_pct", pct, bytes, secs, note)) < 0)
        return r;
    snprintf(note, sizeof(note), "memcpy of the block's bytes, both buffers touched before");
    if ((r = emit_rates(&po, "incremental", "limit", "changed_pct", pct, bytes, msecs, note)) < 0)
        return r;
    snprintf(note, sizeof(note), "XXH3-64 of every 4 KiB page of the block's bytes, one thread");
    if ((r = emit_rates(&po, "incremental", "xxh3", "changed_pct", pct, bytes, hsecs, note)) < 0)
        return r;
    snprintf(note, sizeof(note),
             "the delta's bytes alone: plain write+fsync+rename+fsync dir; block bytes / time");
    return emit_rates(&po, "incremental", "write-only", "changed_pct", pct, bytes, wsecs, note);
}

static int run_recover(bk_ctx_t *x, const dmce_bench_opts_t *o)
{
    dmce_bench_opts_t po = *o; /* reps: those done */
    double secs[DMCE_PERF_MAX_REPS], psecs[DMCE_PERF_MAX_REPS], fsecs[DMCE_PERF_MAX_REPS];
    double bytes[DMCE_PERF_MAX_REPS], fbytes[DMCE_PERF_MAX_REPS];
    dmce_adm_bk_entry_t e;
    double s;
    unsigned char *buf = malloc(CHUNK);
    int r = buf ? bk_status(x, NULL, &e) : -ENOMEM;
    /* The reference file: as many bytes as the chain, on disk before the first read. */
    if (r == 0 && (r = plain_write(x, e.disk_bytes, &s)) < 0)
        fprintf(stderr, PROG ": the plain write to %s: %s\n", x->plain, strerror(-r));
    if (r < 0) {
        free(buf);
        return r;
    }
    fprintf(o->human,
            "recover: kill -9, then --recover of a chain of %u file(s), %llu bytes; "
            "page cache dropped: %s\n%4s %12s %12s\n",
            e.files, (unsigned long long)e.disk_bytes, x->cold ? "yes" : "no (not root)", "rep",
            "recover ms", "read ms");
    dmce_abandon(x->owner); /* as if it died with the daemon: its session stays */
    x->owner = NULL;
    const uint64_t t_part = dmce_now_ns();
    unsigned rep;
    for (rep = 0; r == 0 && more_reps(x, o, rep, t_part); rep++) {
        memd_kill(x);
        shm_remove_stale(x);
        for (unsigned k = 0; k < 2 && r == 0; k++) {
            x->cold &= drop_caches();
            if ((rep + k) & 1) {
                uint64_t got = 0;
                if ((r = plain_read(x, buf, &got, &psecs[rep])) < 0)
                    fprintf(stderr, PROG ": the plain read: %s\n", strerror(-r));
                else if (got != e.disk_bytes)
                    r = -EIO;
            } else {
                uint64_t t0;
                if ((r = memd_start(x, 1, &t0)) == 0)
                    r = memd_ready(x, t0, &secs[rep]);
            }
        }
        dmce_stats_t st;
        if (r == 0 && (r = dmce_admin_stats(x->admin, (uint32_t)x->id, &st)) == 0 &&
            st.restored != 1) {
            fprintf(stderr, PROG ": the restarted daemon restored %llu blocks, not 1\n",
                    (unsigned long long)st.restored);
            r = -EPROTO;
        }
        bytes[rep] = (double)e.disk_bytes;
        fbytes[rep] = (double)x->block_size;
        if (r == 0)
            fprintf(o->human, "%4u %12.1f %12.1f\n", rep + 1, secs[rep] * 1e3, psecs[rep] * 1e3);
    }
    free(buf);
    po.reps = rep;
    if (r == 0)
        r = check_recovered(x);
    if (r == 0)
        r = dmce_bench_memcpy(x->data, NULL, x->block_size, 1, po.reps, fsecs);
    if (r < 0)
        return r;
    char note[DMCE_PERF_TEXT_MAX];
    const char *cache = x->cold ? "cache dropped" : "cache warm (not root)";
    snprintf(note, sizeof(note),
             "fork -> stats starting 0; %u file(s), %.0f MiB; %s; a start with no set %.0f ms",
             e.files, bytes[0] / (1 << 20), cache, x->start_s * 1e3);
    if ((r = emit_rates(&po, "recover", "dmce", "blocks", 1, bytes, secs, note)) < 0)
        return r;
    snprintf(note, sizeof(note), "read() 1 MiB x %.0f of a file in the same dir; %s",
             bytes[0] / (1 << 20), cache);
    if ((r = emit_rates(&po, "recover", "limit", "blocks", 1, bytes, psecs, note)) < 0)
        return r;
    snprintf(note, sizeof(note), "memcpy of the block into a fresh memfd mapping (first touch)");
    return emit_rates(&po, "recover", "memcpy-fresh", "blocks", 1, fbytes, fsecs, note);
}

/* ---- --bench writers: dmce_write while full backups run, and while none does ----------------- */

/* Wait (bounded) until the daemon runs no backup: from a process of its own (a writer's setup). */
static int wait_no_backup(bk_ctx_t *x)
{
    dmce_admin_t *a = NULL;
    int r = dmce_admin_open(x->runtime_dir, 0, &a);
    uint64_t deadline = dmce_now_ms() + TASK_MS;
    while (r == 0) {
        dmce_admin_bk_t bk;
        r = dmce_admin_backup_status(a, (uint32_t)x->id, &bk);
        dmce_admin_bk_free(&bk);
        if (r == 0 && bk.task.state != DMCE_ADM_JOB_RUNNING && bk.task.state != DMCE_ADM_JOB_QUEUED)
            break;
        if (r == 0 && dmce_now_ms() >= deadline)
            r = -ETIMEDOUT;
        dmce_bench_sleep_us(5000);
    }
    dmce_admin_close(a); /* NULL: no-op */
    return r;
}

static void writer_teardown(void *p, unsigned client)
{
    bk_ctx_t *x = ((side_t *)p)->x;
    dmce_bench_disconnect(PROG, (int)client, &x->client);
    free(x->buf);
    x->buf = NULL;
}

static int writer_setup(void *p, unsigned client)
{
    bk_ctx_t *x = ((side_t *)p)->x;
    x->wrng = UINT64_C(0x9E3779B97F4A7C15) * (client + 1);
    const char *what = "waiting for the last backup to end";
    int rc = wait_no_backup(x);
    if (rc == 0)
        rc = dmce_bench_client(x->runtime_dir, DMCE_CONNECT_NO_MAP, &x->client, &what);
    if (rc < 0)
        goto fail;
    what = "out of memory";
    unsigned char *back = malloc(x->size);
    if (!(x->buf = malloc(x->size)) || !back) {
        free(back);
        rc = -ENOMEM;
        goto fail;
    }
    fill_random(x->buf, x->size, &x->wrng);
    dmce_addr_t a = x->pages[client % x->npages];
    what = "dmce_write (sanity check)";
    if ((rc = dmce_write(x->client, a, x->buf, x->size)) == 0) {
        what = "dmce_read (sanity check)";
        rc = dmce_read(x->client, a, back, x->size);
    }
    int same = rc == 0 && memcmp(back, x->buf, x->size) == 0;
    free(back);
    if (rc < 0)
        goto fail;
    /* The row's claim: every write a message on the rings (the stripe-locked copy). */
    dmce_client_stats_t cs;
    dmce_stats_t st;
    what = "dmce_client_stats";
    if ((rc = dmce_client_stats(x->client, &cs)) < 0 ||
        (rc = dmce_daemon_stats(x->client, 0, &st)) < 0)
        goto fail;
    if (!same || cs.msmp_writes == 0 || st.ring_clients == 0) {
        fprintf(stderr, PROG ": writer %u: %s\n", client,
                !same ? "sanity check: read back differs"
                      : "the write was not a message on the rings");
        rc = -EPROTO;
        goto fail_quiet;
    }
    return 0;
fail:
    fprintf(stderr, PROG ": writer %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    writer_teardown(p, client);
    return rc;
}

static int write_op(void *p, uint64_t i)
{
    bk_ctx_t *x = ((side_t *)p)->x;
    x->buf[0] = (unsigned char)i; /* not the same bytes every time */
    return dmce_write(x->client, x->pages[next_rand(&x->wrng) % x->npages], x->buf, x->size);
}

/*
 * In the parent while the writers run: backup_status every TICK_POLL_US on
 * both sides; on the backing side, a full backup of the block whenever
 * none runs.
 */
static int backup_tick(void *p, unsigned rep, uint64_t start_ns)
{
    side_t *s = p;
    bk_ctx_t *x = s->x;
    (void)rep;
    uint64_t now = dmce_now_ns();
    if (start_ns != x->tick_start) {
        x->tick_start = start_ns;
        x->next_poll = now;
    }
    if (now < x->next_poll)
        return 0;
    x->next_poll = now + TICK_POLL_US * 1000u;
    dmce_adm_task_t t;
    int r = bk_status(x, &t, NULL);
    if (r < 0)
        return r;
    int busy = t.state == DMCE_ADM_JOB_RUNNING || t.state == DMCE_ADM_JOB_QUEUED;
    if (x->task && t.id == x->task && !busy) {
        if (t.state == DMCE_ADM_JOB_FAILED) {
            fprintf(stderr, PROG ": backup task %u failed: %s (%s)\n", t.id, dmce_strerror(t.err),
                    t.detail);
            return t.err < 0 ? t.err : -EIO;
        }
        x->backups++;
        x->task = 0;
    }
    if (!s->backing)
        return 0;
    x->polls++;
    x->busy_polls += (uint64_t)busy;
    if (busy || x->task)
        return 0;
    uint32_t queued;
    return dmce_admin_backup(x->admin, (uint32_t)x->id, x->block, DMCE_ADM_BACKUP_FULL, NULL,
                             &x->task, &queued);
}

static int run_writers(bk_ctx_t *x, const dmce_bench_opts_t *o)
{
    side_t sides[2] = {{x, 1}, {x, 0}};
    dmce_bench_case_t c[2];
    for (int k = 0; k < 2; k++) {
        if (dmce_bench_case_init(&c[k], "backup", x->other ? "write-other" : "write",
                                 k ? "no-backup" : "dmce") < 0 ||
            dmce_perf_param_num(&c[k].res, "size", (double)x->size) < 0 ||
            dmce_perf_param_num(&c[k].res, "clients", o->clients) < 0)
            return -EINVAL;
        c[k].res.bytes_per_op = (double)x->size;
        c[k].ctx = &sides[k];
        c[k].setup = writer_setup;
        c[k].op = write_op;
        c[k].teardown = writer_teardown;
        c[k].tick = backup_tick;
        c[k].strerror = bk_strerror;
    }
    fprintf(o->human,
            "write: %u writer process(es), %llu-byte dmce_write (NO_MAP, rings) at random pages of "
            "%sblock %u (%llu MiB); full backups back to back on the dmce side\n",
            o->clients, (unsigned long long)x->size, x->other ? "a block other than " : "",
            x->block, (unsigned long long)(x->block_size >> 20));
    dmce_bench_opts_t quiet = *o;
    quiet.json = 0; /* the notes need the backups' count: emitted below */
    int rc = dmce_bench_run_pair(&c[0], &c[1], &quiet);
    int r = wait_no_backup(x);
    rc = rc < 0 ? rc : r;
    if (rc < 0)
        return rc;
    double cover = x->polls ? (double)x->busy_polls / (double)x->polls : 0;
    snprintf(c[0].res.note, sizeof(c[0].res.note),
             "full backups of %s block back to back: %llu done, one running at %.0f%% of polls",
             x->other ? "another" : "the", (unsigned long long)x->backups, cover * 100);
    snprintf(c[1].res.note, sizeof(c[1].res.note), "the same writers, no backup running");
    fprintf(o->human,
            "write: %llu full backups during the timed repetitions, running at %.0f%% "
            "of the tick's looks; p99.9 with / without: %.2f\n",
            (unsigned long long)x->backups, cover * 100,
            c[1].res.p999_us.median > 0 ? c[0].res.p999_us.median / c[1].res.p999_us.median : 0);
    if (x->backups == 0 || cover < 0.5) {
        fprintf(stderr,
                PROG ": backups ran in %.0f%% of the writers' time: the dmce row is not "
                     "\"during a backup\"\n",
                cover * 100);
        return -EPROTO;
    }
    for (int k = 0; k < 2 && rc == 0; k++)
        rc = dmce_bench_emit(o, &c[k].res);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Paths, the filesystem, the data, the daemon, the admin connection, the block filled. */
static int prepare(bk_ctx_t *x)
{
    int in_memory = 0, r;
    if ((r = fs_describe(x->backup_dir, x->fs, sizeof(x->fs), &in_memory)) < 0) {
        fprintf(stderr, PROG ": --backup-dir %s: %s\n", x->backup_dir, strerror(-r));
        return r;
    }
    if (in_memory)
        fprintf(stderr,
                PROG ": warning: %s is on %s, memory, not a disk: the figures say "
                     "little about backups to files\n",
                x->backup_dir, x->fs);
    snprintf(x->set_dir, sizeof(x->set_dir), "%s/memd-%llu", x->backup_dir,
             (unsigned long long)x->id);
    snprintf(x->plain, sizeof(x->plain), "%s/plain-%llu.dat", x->backup_dir,
             (unsigned long long)x->id);
    snprintf(x->log_path, sizeof(x->log_path), "%s/memd-%llu.log", x->log_dir,
             (unsigned long long)x->id);
    DIR *d = opendir(x->set_dir);
    if (d) {
        struct dirent *e;
        int files = 0;
        while ((e = readdir(d)))
            files += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
        closedir(d);
        if (files) {
            fprintf(stderr,
                    PROG ": %s holds files already: not this run's; give an empty "
                         "--backup-dir\n",
                    x->set_dir);
            x->set_dir[0] = 0; /* never removed */
            return -EEXIST;
        }
    }
    x->data = malloc(x->block_size);
    if (!x->data)
        return -ENOMEM;
    x->rng = UINT64_C(0x9E3779B97F4A7C15) ^ x->id;
    fill_random(x->data, x->block_size, &x->rng);
    x->cold = drop_caches();
    uint64_t t0;
    if ((r = dmce_admin_open(x->runtime_dir, 0, &x->admin)) < 0) {
        fprintf(stderr, PROG ": --runtime-dir %s: %s\n", x->runtime_dir, dmce_strerror(r));
        return r;
    }
    if ((r = memd_start(x, 0, &t0)) < 0 || (r = memd_ready(x, t0, &x->start_s)) < 0)
        return r;
    fprintf(stderr, PROG ": memd[%llu] serving %.1f ms after its start; backups to %s (%s)\n",
            (unsigned long long)x->id, x->start_s * 1e3, x->set_dir, x->fs);
    return fill_block(x);
}

int main(int argc, char **argv)
{
    static bk_ctx_t x = {.bench = BENCH_NONE,
                         .id = 41,
                         .cluster = "dmce-bench-backup",
                         .block_size = UINT64_C(256) << 20,
                         .changed_pct = 1,
                         .max_s = 120,
                         .size = 4096};
    static const dmce_bench_opt_t own[] = {
        {"bench", "backup|writers", "what to measure (required; see the source's head)", set_bench},
        {"runtime-dir", "DIR", "the daemon's runtime dir, private to it (required)",
         set_runtime_dir},
        {"backup-dir", "DIR", "its backup_dir, on the disk to measure (required)", set_backup_dir},
        {"memd", "PATH", "dmce-memd, started and stopped here (required)", set_memd},
        {"cluster", "NAME", "its cluster name (default dmce-bench-backup)", set_cluster},
        {"id", "N", "its daemon ID (default 41)", set_id},
        {"block-size", "BYTES", "its block size, a multiple of 1M (default 256M)", set_block_size},
        {"changed", "PCT", "backup: percent of the pages changed per delta (default 1)",
         set_changed},
        {"size", "BYTES", "writers: bytes per dmce_write, 8..4096 (default 4096)", set_size},
        {"max-seconds", "S",
         "backup: no repetition of a part starts after S/3 seconds in it (default 120)", set_max_s},
        {"writes-to", "same|other", "writers: the block backed up (default) or another one",
         set_writes_to},
        {"log-dir", "DIR", "the daemon's stderr goes to DIR/memd-ID.log (default: the runtime dir)",
         set_log_dir},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "Block backups: full backup throughput beside a plain write+fsync+rename, "
                   "incremental scan beside memcpy, recovery beside a plain read, and writers' "
                   "latency during full backups against without.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &x,
        .ops = 100000000,
        .warmup = 500,
        .reps = 3,
        .duration_s = 1.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (x.bench == BENCH_NONE || !x.runtime_dir || !x.backup_dir || !x.memd) {
        fprintf(stderr, PROG ": --bench, --runtime-dir, --backup-dir and --memd are required\n");
        return 2;
    }
    if (x.block_size % CHUNK || o.clients > MAX_WRITERS || x.backup_dir[0] != '/') {
        fprintf(stderr,
                PROG ": --block-size must be a multiple of 1M, --clients at most %u, and "
                     "--backup-dir an absolute path (the daemon has another cwd)\n",
                MAX_WRITERS);
        return 2;
    }
    if (x.other && x.bench != BENCH_WRITERS) {
        fprintf(stderr, PROG ": --writes-to is for --bench writers\n");
        return 2;
    }
    if (!x.log_dir)
        x.log_dir = x.runtime_dir;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = prepare(&x)) == 0) {
        switch (x.bench) {
        case BENCH_BACKUP:
            if ((rc = run_full(&x, &o)) == 0 && (rc = run_incremental(&x, &o)) == 0)
                rc = run_recover(&x, &o);
            break;
        case BENCH_WRITERS: rc = run_writers(&x, &o); break;
        }
    }
    if (x.owner)
        dmce_disconnect(x.owner);
    if (x.memd_pid > 0 && dmce_bench_stop_child(x.memd_pid, SIGTERM, STOP_MS, NULL) == -ETIMEDOUT) {
        fprintf(stderr, PROG ": memd[%llu] did not stop within %u ms of SIGTERM; killed\n",
                (unsigned long long)x.id, STOP_MS);
        shm_remove_stale(&x);
        rc = rc < 0 ? rc : -ETIMEDOUT;
    }
    if (x.set_dir[0])
        remove_files(&x);
    dmce_admin_close(x.admin);
    free(x.data);
    free(x.pages);
    free(x.page_off);
    return rc < 0 ? 1 : 0;
}
