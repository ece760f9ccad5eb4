/*
 * test_fault.c - the fault-injection sweep (docs/reliability.md).
 *
 * dmce-memd-faults is the memory daemon linked with tests/fault/fault.c:
 * DMCE_FAULT=POINT:N makes the Nth call of one point fail once (allocation,
 * shm_open, ftruncate/fallocate, mmap, send, recv, file writes). For each
 * point, a baseline run of the scenario below counts the calls; then the
 * sweep starts a fresh daemon per N (every N when there are few calls,
 * else the first ones and an even spread of the rest), runs the scenario,
 * (the calls before the scenario, at most a quarter of the runs, then the
 * calls made while it runs: the test opens and closes that window with
 * SIGUSR2, see fault.c, so that most faults hit the serving of its clients
 * rather than heartbeats or shutdown), and checks:
 *
 *   - a fault at start: the daemon exits with a status (not a signal) and
 *     leaves no shm object behind;
 *   - otherwise the daemon is still alive and serves a new client (connect,
 *     setup, malloc, write, read, free);
 *   - every acknowledged write and store set reads back, through a new
 *     client (a fault may cost the scenario's client its connection, never
 *     acknowledged data);
 *   - once the clients are gone, the daemon holds the same descriptors as
 *     in the baseline (sockets and others; shm descriptors follow the block
 *     count), no backup temporary file is left, and SIGTERM leaves no shm
 *     object.
 *
 * The scenario: connect (this run's transport, rotating map+rings, rings,
 * socket), setup, mallocs big enough to make new blocks, writes, reads
 * (and a mapping when mapped), a free, a session store (create, sets, a
 * get), a full backup and an incremental one, a last write.
 *
 * Three setups, each with its baseline and its sweeps:
 *   solo      one dmce-memd-faults, the target, with backups;
 *   mirrored  a dispatcher (mirroring on) and two daemons; the target is
 *             daemon 1, which holds primaries and mirrors; no backups;
 *   disp      the same cluster; the target is dmce-dispatcher-faults.
 * In a cluster the checks add: once the scenario is over, both daemons are
 * alive and every block has two copies again (within 20 s); the target's
 * descriptors are compared with its own baseline.
 *
 *   DMCE_FAULT_SWEEP_MAX  most N per point (default 64)
 *   DMCE_FAULT_POINTS     only these points (comma-separated)
 *   DMCE_FAULT_FROM       only N >= this (to go on past a failure)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmce/dmce.h>
#include <dmce/store.h>

#include "admin.h"
#include "harness.h"
#include "util.h"

#define NPOINTS 7
static const char *const POINT[NPOINTS] = {"alloc", "shm_open", "ftruncate", "mmap",
                                           "send",  "recv",     "file_write"};

#define NALLOC 6
static const uint32_t ALLOC_SIZE[NALLOC] = {4096, 700 << 10, 400 << 10, 64 << 10, 600 << 10, 8192};
#define BUFSZ (1u << 20)
#define NKEYS 4

static char bkdir[256], bkflag[300], counts_path[320];

#define SPARES_DEFAULT 2 /* dmce-memd's spare_blocks: at most this many spare objects held */

struct census {
    int sockets, memfds, other;
    int shm;       /* descriptors of block objects */
    int shm_bad;   /* ... of an object no longer linked, or a second one of the same object */
    int spares;    /* of spare block objects (unnamed, O_TMPFILE: "/dev/shm/#INODE (deleted)") */
    char bad[512]; /* the first of those */
};

/* What one run leaves to check. */
struct outcome {
    int started; /* the daemon came up */
    int fired;   /* the fault happened */
    uint64_t calls[NPOINTS];
    uint64_t win_start[NPOINTS], win_end[NPOINTS]; /* calls when the scenario began, ended */
    struct census idle;                            /* descriptors once the clients left */
    int client_errors;                             /* operations of the scenario that failed */
};

/* ---- helpers ----------------------------------------------------------------------------------
 */

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void fill(uint8_t *b, size_t n, uint32_t seed)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

static int read_counts(struct outcome *o)
{
    FILE *f = fopen(counts_path, "r");
    if (!f)
        return -errno;
    char name[32];
    unsigned long long n, ws, we;
    int fired, got = 0;
    while (fscanf(f, "%31s %llu %d %llu %llu", name, &n, &fired, &ws, &we) == 5)
        for (int p = 0; p < NPOINTS; p++)
            if (!strcmp(name, POINT[p])) {
                o->calls[p] = n;
                o->win_start[p] = ws;
                o->win_end[p] = we;
                o->fired |= fired;
                got++;
            }
    fclose(f);
    return got == NPOINTS ? 0 : -EBADMSG;
}

static int census_of(pid_t pid, struct census *c)
{
    char dir[64], path[320], link[512];
    static char seen[256][512];
    int nseen = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    memset(c, 0, sizeof *c);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
            continue;
        link[n] = 0;
        if (!strncmp(link, "socket:", 7)) {
            c->sockets++;
        } else if (!strncmp(link, "/memfd:", 7)) {
            c->memfds++;
        } else if (!strncmp(link, "/dev/shm/#", 10)) {
            c->spares++; /* allocated ahead of need: never named, so never "unlinked" */
        } else if (!strncmp(link, "/dev/shm/", 9)) {
            c->shm++;
            int dup = 0;
            for (int i = 0; i < nseen; i++)
                dup |= !strcmp(seen[i], link);
            if ((dup || strstr(link, "(deleted)")) && !c->shm_bad++)
                snprintf(c->bad, sizeof(c->bad), "fd %.16s: %.400s", e->d_name, link);
            else if (nseen < 256)
                snprintf(seen[nseen++], sizeof(seen[0]), "%s", link);
        } else {
            c->other++;
        }
    }
    closedir(d);
    return 0;
}

static int backup_temp_files(void)
{
    char d[400];
    snprintf(d, sizeof(d), "%s/memd-1", bkdir);
    DIR *dp = opendir(d);
    if (!dp)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp"))
            n++;
    closedir(dp);
    return n;
}

enum { SOLO, MIRRORED, DISP, NSETUPS };
static const char *const SETUP_NAME[NSETUPS] = {"solo", "mirrored", "disp"};
static int setup_kind; /* of the run in progress */

/* The process the fault is aimed at: its harness slot. */
static int target_slot(void)
{
    return setup_kind == DISP ? 0 : 1;
}

/* Arm the fault (and the call counts) for the next process started, or disarm. */
static void arm(const char *fault, int on)
{
    if (on && fault)
        setenv("DMCE_FAULT", fault, 1);
    else
        unsetenv("DMCE_FAULT");
    if (on)
        setenv("DMCE_FAULT_COUNTS", counts_path, 1);
    else
        unsetenv("DMCE_FAULT_COUNTS");
}

/*
 * Start the run's processes, the fault armed in the target only. Returns 0,
 * or the target's start error (-ECHILD: it exited, status in H.status).
 * Another process that does not start fails the test.
 */
static int start_setup(const char *fault)
{
    unlink(counts_path);
    /* A fresh backup set: the last run's would make the daemon refuse to start without --recover.
     */
    char set[400];
    snprintf(set, sizeof(set), "%s/memd-1", bkdir);
    nftw(set, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    int r;
    if (setup_kind == SOLO) {
        arm(fault, 1);
        /* 1 MiB blocks: the scenario's mallocs make new ones (shm_open, ftruncate, mmap). */
        r = harness_start(1, "--block-size=1M", "--max-blocks=64", "--workers=2", bkflag, NULL);
        arm(NULL, 0);
        return r;
    }
    arm(fault, setup_kind == DISP);
    r = harness_start_dispatcher(0, "--mirroring=on", NULL);
    arm(NULL, 0);
    if (r < 0)
        return r;
    for (int id = 1; id <= 2; id++) {
        arm(fault, setup_kind == MIRRORED && id == 1);
        r = harness_start(id, "--block-size=1M", "--max-blocks=64", "--workers=2", NULL);
        arm(NULL, 0);
        if (r < 0 && id == 1)
            return r;
        if (r < 0)
            fail_msg("%s: daemon 2 (no fault) did not start: %s", fault ? fault : "baseline",
                     strerror(-r));
    }
    return 0;
}

/*
 * The dispatcher's cluster stats through a new client (each run has a new
 * dispatcher: a kept client would speak to a dead one). 1 when they came.
 */
static int cluster_stats_now(dmce_cluster_stats_t *st)
{
    dmce_client_t *c;
    memset(st, 0, sizeof *st);
    if (dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir}, &c) < 0)
        return 0;
    int ok = dmce_cluster_stats(c, st) == 0;
    dmce_disconnect(c);
    return ok;
}

static char healed_seen[200]; /* what the last look saw, for the failure message */

/* Both daemons alive and every block with two copies (a cluster setup). */
static int healed(void *unused)
{
    (void)unused;
    dmce_cluster_stats_t st;
    int ok = cluster_stats_now(&st);
    snprintf(healed_seen, sizeof(healed_seen),
             "%u daemons alive, %llu blocks, %llu single, %llu re-mirroring, %llu mirrored",
             (unsigned)st.daemons_alive, (unsigned long long)st.blocks,
             (unsigned long long)st.blocks_single, (unsigned long long)st.blocks_remirroring,
             (unsigned long long)st.blocks_mirrored);
    return ok && st.daemons_alive == 2 && st.blocks > 0 && st.blocks_single == 0 &&
           st.blocks_remirroring == 0 && st.blocks_mirrored == st.blocks;
}

/* shm objects of the target: daemon 1's in a cluster (none for the dispatcher). */
static int target_objects(void)
{
    if (setup_kind == DISP)
        return 0;
    if (setup_kind == SOLO)
        return harness_shm_count();
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "dmce.%u.%s.m1.", (unsigned)geteuid(), H.cluster);
    DIR *d = opendir("/dev/shm");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

/*
 * A cluster at rest holds exactly two objects per block (the primary and its
 * copy: a copy left over after a failed attach, or a live mirror replaced,
 * would show), and no process of it holds a descriptor of an unlinked or
 * doubled block object.
 */
static char copies_seen[600]; /* what the last look saw, for the failure message */

static int copies_exact(void *unused)
{
    (void)unused;
    dmce_cluster_stats_t st;
    int ok = cluster_stats_now(&st);
    int objects = harness_shm_count();
    snprintf(copies_seen, sizeof(copies_seen), "%llu blocks, %llu mirrored, %d objects",
             (unsigned long long)st.blocks, (unsigned long long)st.blocks_mirrored, objects);
    ok = ok && st.blocks_mirrored == st.blocks && objects == (int)(2 * st.blocks);
    for (int id = 0; id <= 2; id++) {
        struct census k;
        if (!H.pid[id] || census_of(H.pid[id], &k) < 0 || k.shm_bad) {
            size_t n = strlen(copies_seen);
            snprintf(copies_seen + n, sizeof(copies_seen) - n, "; %s %d: %s",
                     id ? "daemon" : "dispatcher", id, H.pid[id] ? k.bad : "not running");
            ok = 0;
        }
    }
    return ok;
}

/* Stop every process of the run (the dispatcher first); the target's status. */
static int stop_setup(void)
{
    int st = 0;
    if (H.pid[0]) {
        int r = harness_stop(0);
        if (target_slot() == 0)
            st = r;
    }
    for (int id = 1; id <= 2; id++)
        if (H.pid[id]) {
            int r = harness_stop(id);
            if (id == target_slot())
                st = r;
            else if (r != 0)
                st = st ? st : 1000 + r; /* another daemon's failure: reported too */
        }
    return st;
}

/* ---- the scenario ------------------------------------------------------------------------------
 */

struct acked {
    dmce_addr_t addr[NALLOC + 1];
    uint32_t len[NALLOC + 1], seed[NALLOC + 1];
    int n;
    dmce_addr_t store;
    int keys[NKEYS]; /* 1: the set was acknowledged */
};

static unsigned run_flags(unsigned run)
{
    static const unsigned f[3] = {0, DMCE_CONNECT_NO_MAP,
                                  DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING};
    return f[run % 3];
}

static int connect_one(unsigned flags, dmce_client_t **c)
{
    const int ids[1] = {1};
    dmce_connect_opts_t o = {.flags = flags | DMCE_CONNECT_NO_DISPATCHER};
    int r = setup_kind == SOLO ? harness_client_opts(c, ids, 1, &o) : harness_client_dir(c, flags);
    if (r == 0 && (r = dmce_setup(*c, 4 << 20, 0, NULL, NULL)) < 0) {
        dmce_disconnect(*c);
        *c = NULL;
    }
    return r;
}

/* Every call counted: a failure is allowed (the fault), a wrong byte is not. */
#define TRY(expr) ((expr) == 0 ? 1 : (errs++, 0))

/*
 * The scenario, on a new client left connected in *cp (NULL when connecting
 * failed): the session must still hold its allocations while they are
 * verified. Returns how many operations failed.
 */
static int scenario(unsigned run, struct acked *a, dmce_client_t **cp)
{
    int errs = 0;
    dmce_client_t *c = NULL;
    memset(a, 0, sizeof *a);
    *cp = NULL;
    if (!TRY(connect_one(run_flags(run), &c)))
        return errs;
    *cp = c;
    uint8_t *buf = malloc(BUFSZ), *got = malloc(BUFSZ);
    assert_non_null(buf);
    assert_non_null(got);
    for (int i = 0; i < NALLOC; i++) {
        dmce_addr_t addr;
        if (!TRY(dmce_malloc(c, ALLOC_SIZE[i], &addr)))
            continue;
        fill(buf, ALLOC_SIZE[i], run * 100 + i);
        if (TRY(dmce_write(c, addr, buf, ALLOC_SIZE[i]))) {
            a->addr[a->n] = addr;
            a->len[a->n] = ALLOC_SIZE[i];
            a->seed[a->n++] = run * 100 + i;
        }
    }
    for (int k = 0; k < a->n; k++) {
        if (!TRY(dmce_read(c, a->addr[k], got, a->len[k])))
            continue;
        fill(buf, a->len[k], a->seed[k]);
        assert_memory_equal(got, buf, a->len[k]);
    }
    if (!(run_flags(run) & DMCE_CONNECT_NO_MAP) && a->n > 0) {
        void *p;
        if (TRY(dmce_map(c, a->addr[0], a->len[0], 0, &p))) {
            fill(buf, a->len[0], a->seed[0]);
            assert_memory_equal(p, buf, a->len[0]);
            TRY(dmce_unmap(c, p));
        }
    }
    /* Free the second acknowledged one: it leaves the list whatever the answer. */
    if (a->n > 1) {
        TRY(dmce_free(c, a->addr[1]));
        memmove(&a->addr[1], &a->addr[2], (size_t)(a->n - 2) * sizeof a->addr[0]);
        memmove(&a->len[1], &a->len[2], (size_t)(a->n - 2) * sizeof a->len[0]);
        memmove(&a->seed[1], &a->seed[2], (size_t)(a->n - 2) * sizeof a->seed[0]);
        a->n--;
    }
    dmce_store_t *s = NULL;
    if (TRY(dmce_store_create(c, 128 << 10, NULL, &a->store)) &&
        TRY(dmce_store_open(c, a->store, 0, &s))) {
        for (int k = 0; k < NKEYS; k++) {
            char key[16], val[64];
            snprintf(key, sizeof(key), "key%d", k);
            snprintf(val, sizeof(val), "value %d of run %u", k, run);
            a->keys[k] = TRY(dmce_store_set(s, key, (uint32_t)strlen(key), val,
                                            (uint32_t)strlen(val), 0, 0, 0, NULL));
        }
        char v[64];
        uint32_t vl;
        TRY(dmce_store_get(s, "key0", 4, v, sizeof(v), &vl, NULL));
        dmce_store_close(s);
    }
    dmce_admin_t *adm = NULL;
    if (setup_kind == SOLO && TRY(dmce_admin_open(H.dir, 5000, &adm))) {
        for (int pass = 0; pass < 2; pass++) {
            uint32_t task, queued, d = 1;
            dmce_adm_task_t st;
            if (TRY(dmce_admin_backup(adm, 1, 0, pass == 0 ? DMCE_ADM_BACKUP_FULL : 0, NULL, &task,
                                      &queued)))
                TRY(dmce_admin_wait_tasks(adm, 1, &d, &task, 20000, NULL, NULL, &st, NULL));
        }
        dmce_admin_close(adm);
    }
    /* One more write after the backups. */
    dmce_addr_t last;
    if (TRY(dmce_malloc(c, 4096, &last))) {
        fill(buf, 4096, run * 100 + 99);
        if (TRY(dmce_write(c, last, buf, 4096))) {
            a->addr[a->n] = last;
            a->len[a->n] = 4096;
            a->seed[a->n++] = run * 100 + 99;
        }
    }
    free(buf);
    free(got);
    return errs;
}

/*
 * A new client reads back everything acknowledged. A transport error may be
 * the fault itself (it fires once): the whole check is tried again, at most
 * three times; a wrong byte or a missing value fails at once.
 */
static void verify(unsigned run, const struct acked *a)
{
    uint8_t *buf = malloc(BUFSZ), *got = malloc(BUFSZ);
    assert_non_null(buf);
    assert_non_null(got);
    int r = -1;
    for (int attempt = 0; attempt < 3 && r != 0; attempt++) {
        dmce_client_t *c;
        r = connect_one(DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING, &c);
        if (r < 0)
            continue;
        for (int k = 0; r == 0 && k < a->n; k++) {
            r = dmce_read(c, a->addr[k], got, a->len[k]);
            if (r == 0) {
                fill(buf, a->len[k], a->seed[k]);
                if (memcmp(got, buf, a->len[k]))
                    fail_msg("run %u: acknowledged write %d (%u bytes at %#llx) reads back "
                             "different",
                             run, k, a->len[k], (unsigned long long)a->addr[k]);
            }
        }
        int any = 0;
        for (int k = 0; k < NKEYS; k++)
            any |= a->keys[k];
        dmce_store_t *s = NULL;
        if (r == 0 && any)
            r = dmce_store_open(c, a->store, DMCE_STORE_OUT_OF_PROCESS, &s);
        for (int k = 0; r == 0 && any && k < NKEYS; k++) {
            if (!a->keys[k])
                continue;
            char key[16], want[64], v[64];
            uint32_t vl = 0;
            snprintf(key, sizeof(key), "key%d", k);
            snprintf(want, sizeof(want), "value %d of run %u", k, run);
            r = dmce_store_get(s, key, (uint32_t)strlen(key), v, sizeof(v), &vl, NULL);
            if (r == -ENOENT)
                fail_msg("run %u: acknowledged set of %s is gone", run, key);
            if (r == 0 && (vl != strlen(want) || memcmp(v, want, vl)))
                fail_msg("run %u: %s reads back different", run, key);
        }
        dmce_store_close(s);
        /* And the daemon still serves: a whole round of a well-behaved client. */
        dmce_addr_t x;
        if (r == 0 && (r = dmce_malloc(c, 8192, &x)) == 0) {
            fill(buf, 8192, 7);
            if ((r = dmce_write(c, x, buf, 8192)) == 0 && (r = dmce_read(c, x, got, 8192)) == 0)
                assert_memory_equal(got, buf, 8192);
            if (r == 0)
                r = dmce_free(c, x);
        }
        dmce_disconnect(c);
    }
    if (r != 0)
        fail_msg("run %u: the daemon does not serve a new client: %s", run, dmce_strerror(r));
    free(buf);
    free(got);
}

/*
 * The descriptors match the baseline's once the clients' connections are
 * closed: no more sockets, the same ring segments and others, and one
 * descriptor per live block object (their number follows the blocks the
 * run made).
 */
struct idle_arg {
    pid_t pid;
    const struct census *want;
    struct census got;
};

static int idle_matches(void *p)
{
    struct idle_arg *ia = p;
    if (census_of(ia->pid, &ia->got) < 0)
        return 0;
    /* Fewer sockets is no leak: a connection between daemons broken by the fault is made
     * again when next needed. */
    return ia->got.sockets <= ia->want->sockets && ia->got.memfds == ia->want->memfds &&
           ia->got.other == ia->want->other && ia->got.shm_bad == 0 &&
           ia->got.spares <= SPARES_DEFAULT;
}

static int no_backup_temp(void *unused)
{
    (void)unused;
    return backup_temp_files() == 0;
}

/* ---- one run ------------------------------------------------------------------------------------
 */

static struct outcome base[NSETUPS];

/*
 * One run of the setup, one scenario. fault NULL: the baseline (everything
 * must succeed; the idle census is recorded). Else the checks in the header.
 */
static void one_run(unsigned run, const char *fault, struct outcome *o)
{
    const char *what = fault ? fault : "baseline";
    const struct outcome *b = &base[setup_kind];
    memset(o, 0, sizeof *o);
    int r = start_setup(fault);
    if (r < 0) {
        if (!fault)
            fail_msg("%s baseline: did not start: %s", SETUP_NAME[setup_kind], strerror(-r));
        if (r != -ECHILD)
            fail_msg("%s: the target neither started nor exited: %s", fault, strerror(-r));
        int st = H.status[target_slot()];
        if (setup_kind == MIRRORED && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {
            /*
             * It had registered, then failed: the dispatcher fenced it
             * (SIGKILL) before failing its blocks over, as for any daemon
             * that leaves. What it left, its restart removes: started
             * again without the fault, it must come up.
             */
            r = harness_start(1, "--block-size=1M", "--max-blocks=64", "--workers=2", NULL);
            if (r < 0)
                fail_msg("%s: fenced at start, then not restarted: %s", fault, strerror(-r));
        } else if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
            fail_msg("%s: the target failed at start with %s %d", fault,
                     WIFEXITED(st) ? "exit status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        if (!H.pid[1])
            assert_int_equal(target_objects(), 0);
        r = stop_setup();
        if (r != 0)
            fail_msg("%s: the other processes stopped with status %d", fault, r);
        assert_int_equal(harness_shm_count(), 0);
        if (WIFSIGNALED(st)) /* killed: no counts written */
            o->fired = 1;
        else
            assert_int_equal(read_counts(o), 0);
        assert_true(o->fired);
        return;
    }
    o->started = 1;
    if (setup_kind != SOLO && !harness_wait(healed, NULL, 20000))
        fail_msg("%s: the cluster did not come up whole (2 daemons, every block mirrored): %s",
                 what, healed_seen);
    pid_t pid = H.pid[target_slot()];
    struct acked a;
    dmce_client_t *c;
    kill(pid, SIGUSR2); /* the scenario's window opens (fault.c) */
    o->client_errors = scenario(run, &a, &c);
    if (!fault && o->client_errors)
        fail_msg("the baseline scenario had %d failed operations", o->client_errors);
    verify(run, &a);
    dmce_disconnect(c);
    kill(pid, SIGUSR2); /* ... and closes */
    if (setup_kind != SOLO && !harness_wait(healed, NULL, 20000))
        fail_msg("%s: after the scenario the cluster is not whole again within 20 s (2 daemons, "
                 "every block with two copies): %s",
                 what, healed_seen);
    if (setup_kind != SOLO && !harness_wait(copies_exact, NULL, 5000))
        fail_msg("%s: the cluster at rest does not hold exactly two objects per block, or a "
                 "process holds a descriptor of an unlinked object: %s",
                 what, copies_seen);

    struct idle_arg ia = {.pid = pid, .want = &b->idle};
    if (!fault) {
        /* Settled when it has not changed for half a second (closing connections is
         * asynchronous), within 10 s. */
        struct census prev = {-1, -1, -1, -1, -1, -1, ""};
        for (int i = 0, same = 0; i < 100 && same < 5; i++) {
            assert_int_equal(census_of(pid, &ia.got), 0);
            same = memcmp(&prev, &ia.got, sizeof prev) ? 0 : same + 1;
            prev = ia.got;
            usleep(100000);
        }
        if (ia.got.shm_bad)
            fail_msg("baseline: %d descriptors of unlinked or doubled block objects",
                     ia.got.shm_bad);
        if (ia.got.spares > SPARES_DEFAULT)
            fail_msg("baseline: %d spare block objects held, more than spare_blocks (%d)",
                     ia.got.spares, SPARES_DEFAULT);
        o->idle = ia.got;
    } else if (!harness_wait(idle_matches, &ia, 5000)) {
        fail_msg("%s: descriptors once idle: %d sockets, %d ring segments, %d other, %d of block "
                 "objects (%d unlinked or doubled: %s), %d spares; the baseline had %d, %d, %d",
                 fault, ia.got.sockets, ia.got.memfds, ia.got.other, ia.got.shm, ia.got.shm_bad,
                 ia.got.bad, ia.got.spares, b->idle.sockets, b->idle.memfds, b->idle.other);
    }
    /* A backup the scenario no longer waits for (its connection failed) may still run. */
    if (!harness_wait(no_backup_temp, NULL, 10000))
        fail_msg("%s: a backup temporary file stayed behind", what);
    r = stop_setup();
    if (r != 0)
        fail_msg("%s: SIGTERM: exit status %d%s", what, r % 1000,
                 r >= 1000 ? " (not the target)" : "");
    assert_int_equal(harness_shm_count(), 0);
    assert_int_equal(read_counts(o), 0);
}

/* ---- the sweep
 * ----------------------------------------------------------------------------------- */

static int point_wanted(int p)
{
    const char *only = getenv("DMCE_FAULT_POINTS");
    if (!only || !*only)
        return 1;
    size_t n = strlen(POINT[p]);
    for (const char *s = only; (s = strstr(s, POINT[p])); s += n)
        if ((s == only || s[-1] == ',') && (s[n] == 0 || s[n] == ','))
            return 1;
    return 0;
}

static unsigned runs;

struct sweep_arg {
    int kind, point; /* point -1: the baseline */
};

static void test_run(void **state)
{
    const struct sweep_arg *sa = *state;
    setup_kind = sa->kind;
    if (sa->point < 0) {
        one_run(0, NULL, &base[setup_kind]);
        for (int p = 0; p < NPOINTS; p++)
            print_message("%s baseline: %-10s %llu calls\n", SETUP_NAME[setup_kind], POINT[p],
                          (unsigned long long)base[setup_kind].calls[p]);
        return;
    }
    int p = sa->point;
    if (!point_wanted(p))
        skip();
    if (!base[setup_kind].started)
        fail_msg("no baseline: nothing to compare with");
    uint64_t total = base[setup_kind].calls[p];
    if (total == 0) {
        if (setup_kind == SOLO) /* the scenario is made to meet every point there */
            fail_msg("%s: the scenario makes no such call: nothing to sweep", POINT[p]);
        print_message("%s %s: no such call in the baseline\n", SETUP_NAME[setup_kind], POINT[p]);
        return;
    }
    const char *mx = getenv("DMCE_FAULT_SWEEP_MAX");
    uint64_t cap = mx && atoi(mx) > 0 ? (uint64_t)atoi(mx) : setup_kind == SOLO ? 64 : 16;
    /*
     * Two phases: the calls before the scenario (start-up, registration:
     * N counted from the start, at most a quarter of the runs) and the
     * scenario's window (K counted from its start: "POINT:@K"), where the
     * clients' requests are served. Each phase: every call while there are
     * few, else the first third and an even spread of the rest.
     */
    const struct outcome *b = &base[setup_kind];
    uint64_t before = b->win_start[p], inside = b->win_end[p] - b->win_start[p];
    uint64_t cap_before = DMCE_MIN(before, cap / 4), cap_inside = cap - cap_before;
    unsigned fired = 0, at_start = 0, n_runs = 0;
    uint64_t errors = 0;
    const char *from = getenv("DMCE_FAULT_FROM");
    for (int phase = 0; phase < 2; phase++) {
        uint64_t total1 = phase ? inside : before, cap1 = phase ? cap_inside : cap_before;
        uint64_t head = total1 <= cap1 ? total1 : cap1 / 3;
        uint64_t rest = total1 <= cap1 ? 0 : cap1 - head;
        for (uint64_t i = 0; i < head + rest; i++) {
            uint64_t n = i < head ? i + 1 : head + 1 + (i - head) * (total1 - head) / rest;
            if (from && n < strtoull(from, NULL, 10))
                continue;
            char spec[64];
            snprintf(spec, sizeof(spec), "%s:%s%llu", POINT[p], phase ? "@" : "",
                     (unsigned long long)n);
            struct outcome o;
            one_run(++runs, spec, &o);
            n_runs++;
            fired += (unsigned)o.fired;
            at_start += !o.started;
            errors += (uint64_t)o.client_errors;
        }
    }
    print_message("%s %-10s: %llu calls in the baseline (%llu before the scenario, %llu in it); "
                  "%u runs, the fault fired in %u, %u of them at start; %llu client operations "
                  "failed in all\n",
                  SETUP_NAME[setup_kind], POINT[p], (unsigned long long)total,
                  (unsigned long long)before, (unsigned long long)inside, n_runs, fired, at_start,
                  (unsigned long long)errors);
    /* The fault must really have been met, in most runs at least. */
    assert_true(fired * 2 >= n_runs);
}

static int setup_all(void **state)
{
    (void)state;
    const char *bin = getenv("DMCE_MEMD_FAULTS"), *dbin = getenv("DMCE_DISPATCHER_FAULTS");
    if (!bin || !dbin || harness_init() < 0)
        return -1;
    setenv("DMCE_MEMD", bin, 1);
    setenv("DMCE_DISPATCHER", dbin, 1);
    snprintf(bkdir, sizeof(bkdir), "/tmp/dmce-fault-XXXXXX");
    if (!mkdtemp(bkdir))
        return -1;
    snprintf(bkflag, sizeof(bkflag), "--backup-dir=%s", bkdir);
    snprintf(counts_path, sizeof(counts_path), "%s/counts", bkdir);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* After each test, failed or not: nothing left running for the next one. */
static int stop_left(void **state)
{
    (void)state;
    for (int id = 0; id <= 2; id++)
        if (H.pid[id] && harness_stop(id) != 0)
            harness_kill(id);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    stop_left(NULL);
    harness_cleanup();
    if (bkdir[0])
        nftw(bkdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

int main(void)
{
    static struct sweep_arg args[NSETUPS * (NPOINTS + 1)];
    static char names[NSETUPS * (NPOINTS + 1)][48];
    struct CMUnitTest tests[NSETUPS * (NPOINTS + 1)];
    unsigned n = 0;
    for (int k = 0; k < NSETUPS; k++)
        for (int p = -1; p < NPOINTS; p++, n++) {
            args[n] = (struct sweep_arg){k, p};
            snprintf(names[n], sizeof(names[n]), "%s_%s", SETUP_NAME[k],
                     p < 0 ? "baseline" : POINT[p]);
            tests[n] = (struct CMUnitTest){.name = names[n],
                                           .test_func = test_run,
                                           .teardown_func = stop_left,
                                           .initial_state = &args[n]};
        }
    return _cmocka_run_group_tests("fault", tests, n, setup_all, teardown_all);
}
