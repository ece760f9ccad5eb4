/*
 * bench_map.c - dmce-bench-map: mapped access and the Memory Cache against
 * the machine (area "mapping"), on a running cluster.
 *
 * Every dmce figure is measured beside its limit in the same process, by
 * the same frame (bench.h), and the limit carries the same bench and
 * params (impl "limit"), so that report.md puts them in one row with the
 * ratio. Three programs in one, chosen with --bench:
 *
 *   seq    Sequential passes over --size bytes of allocations of --chunk
 *          bytes (one pass = one op; GB/s = size x passes/s):
 *            limit        memcpy between two private buffers of --size
 *            dmce-map     dmce_map of each whole allocation, memcpy, unmap
 *                         (64-bit client: whole-block windows)
 *            dmce-rw      dmce_read / dmce_write in --piece pieces (the
 *                         local path: check the block's map, copy; no message)
 *            dmce-win-map dmce_map of --piece pieces with --window windows,
 *                         at most --windows (default 64 MiB x 8)
 *            dmce-win-rw  dmce_read / dmce_write through those windows
 *            mmap-populate, mmap-lazy (seq_read only; no dmce) the same
 *                         windows of a shm object in the same kind of memory
 *                         (--ref-dir), each mmap()ed with MAP_POPULATE (as
 *                         libdmce does) or without (faults on touch), copied,
 *                         munmap()ed: the bound of any design that remaps
 *                         --window windows, and its lazy alternative
 *          bench seq_read (mapped -> private) and seq_write (private ->
 *          mapped). The windowed client is this 64-bit process with
 *          window_size and max_windows set in dmce_connect_opts_t: the same
 *          code (libclient/map.c, runtime/cache.c) a -m32 client runs with
 *          its defaults. Its note counts the window maps and evictions per
 *          pass (dmce_client_stats).
 *   rand   4 KiB reads at random 4 KiB steps of a --wset working set:
 *            rand_read limit     memcpy from a private buffer of --wset
 *            rand_read dmce-map  dmce_read, whole-block windows (no remap)
 *            rand_read dmce-win  dmce_read, --window x --windows cache
 *                                (default 4 MiB x 8: wset = 4x the cache)
 *            rand_read_remap dmce-win  derived from the run above: window
 *                                misses per second, and p50 = time/misses
 *                                (one value per repetition, reads included)
 *            remap limit         mmap(MAP_POPULATE) of a --window window of
 *                                a populated shm object, read 4 KiB, munmap
 *                                (what a Memory Cache miss must at least do)
 *            remap mmap-bare     mmap + munmap of the same window, no touch
 *            remap mmap-lazy     mmap without MAP_POPULATE, read 4 KiB (one
 *                                fault), munmap: a lazily mapping cache
 *            remap dmce-win      dmce_read of 4 KiB from the next window in
 *                                a cycle over the working set: ~every op
 *                                evicts one window and maps another
 *   touch  First touch, one op per --chunk of fresh memory:
 *            prefault dmce       dmce_malloc that creates a fresh block on
 *                                the --socket daemons (prefault on), then
 *                                poll dmce_stats until prefault_pending is 0
 *                                (bytes = --block-size, what they fault in)
 *            prefault limit      fresh shm object of --block-size:
 *                                fallocate, MADV_POPULATE_WRITE 2 MiB at a
 *                                time (what the daemon's thread does)
 *            first_touch dmce    --cold-socket daemons (--prefault=no): the
 *                                client's dmce_map of a fresh allocation
 *                                (the window's MAP_POPULATE faults it in),
 *                                memset, dmce_unmap: the client pays
 *            first_touch dmce-prefaulted  the same on the allocations the
 *                                prefault op made (faulted in by the daemon)
 *            first_touch limit   fresh fallocate()d shm object of --chunk:
 *                                mmap(MAP_POPULATE), memset, munmap
 *
 * Every case gets the same options (--ops, --reps, --warmup, --duration);
 * touch runs no warm-up (each op consumes fresh memory). Before measuring,
 * seq and rand wait until the daemons' prefault threads are idle (bounded)
 * so that no page zeroing competes for memory bandwidth; touch waits too,
 * and checks that each op really made a fresh block. Before each touch
 * repetition (--prewarm yes), as much private memory as it will consume is
 * touched and freed: on a VM whose balloon driver reports free pages to
 * the host, a page freed seconds ago costs the host a fault again at its
 * next first touch (~4x the guest's own cost here), and which pages an
 * allocation gets would otherwise decide the figure. The limits keep their
 * objects until the case ends, as the daemons keep their blocks.
 *
 * --pages 4k|2m labels the rows with the page size of the daemons' blocks
 * (2m: blocks on a tmpfs mounted huge=within_size, dmce-memd --shm-dir);
 * the program checks it against /proc/self/smaps_rollup (ShmemPmdMapped)
 * after mapping and says so in the note when they disagree.
 *
 * shm objects made here are unlinked as soon as they are created, so a
 * killed run leaves none behind. Exit status: 0 every case gave a result,
 * 1 a measurement failed (the others still ran), 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>

#include "bench.h"
#include "util.h"

#define PROG "dmce-bench-map"
#define PAGE 4096u
#define MiB (UINT64_C(1) << 20)
#define MAX_SOCKETS 8
#define PREFAULT_WAIT_S 60.0 /* at most this long for the daemons' prefault, per wait */
#define RAND_READ 4096u

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct map_opts {
    const char *bench;
    const char *runtime_dir;
    const char *sockets[MAX_SOCKETS];
    size_t nsockets;
    const char *cold[MAX_SOCKETS];
    size_t ncold;
    uint64_t size, chunk, piece, window, wset, block_size;
    unsigned windows;
    int window_set;
    int prewarm;
    const char *pages;
    const char *ref_dir; /* where the references' shm objects live; NULL: POSIX shm */
} map_opts_t;

/* ---- options ------------------------------------------------------------------ */

static int opt_bench(void *u, const char *v)
{
    ((map_opts_t *)u)->bench = v;
    return 0;
}

static int opt_runtime_dir(void *u, const char *v)
{
    ((map_opts_t *)u)->runtime_dir = v;
    return 0;
}

static int add_socket(const char **list, size_t *n, const char *v, const char *opt)
{
    if (*n >= MAX_SOCKETS) {
        fprintf(stderr, PROG ": --%s: at most %d sockets\n", opt, MAX_SOCKETS);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
}

static int opt_socket(void *u, const char *v)
{
    map_opts_t *o = u;
    return add_socket(o->sockets, &o->nsockets, v, "socket");
}

static int opt_cold(void *u, const char *v)
{
    map_opts_t *o = u;
    return add_socket(o->cold, &o->ncold, v, "cold-socket");
}

static int size_opt(const char *name, const char *v, uint64_t min, uint64_t max, int pages,
                    uint64_t *out)
{
    if (dmce_bench_parse_size(v, min, max, out) < 0 || (pages && *out % PAGE)) {
        fprintf(stderr, PROG ": --%s: expected %s%llu..%llu bytes (K/M/G suffix), got '%s'\n", name,
                pages ? "a multiple of 4K, " : "", (unsigned long long)min, (unsigned long long)max,
                v);
        return -1;
    }
    return 0;
}

static int opt_size(void *u, const char *v)
{
    return size_opt("size", v, MiB, UINT64_C(64) << 30, 1, &((map_opts_t *)u)->size);
}

static int opt_chunk(void *u, const char *v)
{
    return size_opt("chunk", v, MiB, UINT64_C(64) << 30, 1, &((map_opts_t *)u)->chunk);
}

static int opt_piece(void *u, const char *v)
{
    return size_opt("piece", v, PAGE, UINT64_C(1) << 30, 1, &((map_opts_t *)u)->piece);
}

static int opt_window(void *u, const char *v)
{
    map_opts_t *o = u;
    o->window_set = 1;
    return size_opt("window", v, PAGE, UINT64_C(1) << 30, 1, &o->window);
}

static int opt_wset(void *u, const char *v)
{
    return size_opt("wset", v, MiB, UINT64_C(16) << 30, 1, &((map_opts_t *)u)->wset);
}

static int opt_block_size(void *u, const char *v)
{
    return size_opt("block-size", v, MiB, UINT64_C(1) << 40, 1, &((map_opts_t *)u)->block_size);
}

static int opt_windows(void *u, const char *v)
{
    map_opts_t *o = u;
    uint64_t n;
    if (dmce_parse_u64(v, &n) < 0 || n < 1 || n > 4096) {
        fprintf(stderr, PROG ": --windows: expected 1..4096, got '%s'\n", v);
        return -1;
    }
    o->windows = (unsigned)n;
    return 0;
}

static int opt_prewarm(void *u, const char *v)
{
    if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0) {
        fprintf(stderr, PROG ": --prewarm: expected yes or no, got '%s'\n", v);
        return -1;
    }
    ((map_opts_t *)u)->prewarm = v[0] == 'y';
    return 0;
}

static int opt_ref_dir(void *u, const char *v)
{
    ((map_opts_t *)u)->ref_dir = v;
    return 0;
}

static int opt_pages(void *u, const char *v)
{
    if (strcmp(v, "4k") != 0 && strcmp(v, "2m") != 0) {
        fprintf(stderr, PROG ": --pages: expected 4k or 2m, got '%s'\n", v);
        return -1;
    }
    ((map_opts_t *)u)->pages = v;
    return 0;
}

/* ---- helpers -------------------------------------------------------------------- */

/* "64M", "1G", "4096": a size as a short parameter value. */
static const char *size_str(uint64_t v, char *buf, size_t len)
{
    if (v && v % (UINT64_C(1) << 30) == 0)
        snprintf(buf, len, "%lluG", (unsigned long long)(v >> 30));
    else if (v && v % MiB == 0)
        snprintf(buf, len, "%lluM", (unsigned long long)(v >> 20));
    else if (v && v % 1024 == 0)
        snprintf(buf, len, "%lluK", (unsigned long long)(v >> 10));
    else
        snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* The note of a result: what was measured, and what the callbacks counted (may be cut short). */
static void set_note(dmce_perf_result_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_note(dmce_perf_result_t *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->note, sizeof(r->note), fmt, ap);
    va_end(ap);
}

static const char *map_strerror(int err)
{
    return dmce_strerror(err);
}

static void *map_anon(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * A fresh shared-memory object of len bytes, already unlinked,
 * fallocate()d as the daemon does its blocks: a POSIX shm object, or a
 * file in dir (a tmpfs, e.g. the daemons' --shm-dir). fd or -errno.
 */
static int shm_fresh(const char *dir, uint64_t len)
{
    static unsigned seq;
    char name[4200];
    int fd;
    if (dir) {
        snprintf(name, sizeof(name), "%s/dmce-perf-map.%ld.%u", dir, (long)getpid(), seq++);
        fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return -errno;
        unlink(name);
    } else {
        snprintf(name, sizeof(name), "/dmce-perf-map.%u.%ld.%u", (unsigned)getuid(), (long)getpid(),
                 seq++);
        fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        shm_unlink(name);
    }
    if (ftruncate(fd, (off_t)len) < 0 || fallocate(fd, 0, 0, (off_t)len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Bytes of shared memory this process maps with 2 MiB page-table entries. */
static uint64_t pmd_mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (sscanf(line, "ShmemPmdMapped: %llu kB", &v) == 1 ||
            sscanf(line, "FilePmdMapped: %llu kB", &v) == 1)
            kb += v;
    }
    fclose(f);
    return kb << 10;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Connect to the daemons named by socks (or, with none, every one of the
 * runtime dir) with this Memory Cache (window 0: whole blocks), and set up
 * a session that reserves nothing.
 */
static int connect_client(const map_opts_t *mo, const char *const *socks, size_t nsocks,
                          uint64_t window, unsigned windows, const char *what, dmce_client_t **out)
{
    dmce_connect_opts_t co;
    memset(&co, 0, sizeof(co));
    if (nsocks) {
        co.sockets = socks;
        co.nsockets = nsocks;
    } else {
        co.runtime_dir = mo->runtime_dir;
    }
    co.window_size = window;
    co.max_windows = windows;
    *out = NULL;
    int rc = dmce_connect(&co, out);
    if (rc < 0) {
        const char *dir = mo->runtime_dir ? mo->runtime_dir : getenv("DMCE_RUNTIME_DIR");
        fprintf(stderr, PROG ": dmce_connect (%s) to %s: %s\n", what,
                nsocks ? socks[0]
                : dir  ? dir
                       : "$DMCE_RUNTIME_DIR (unset)",
                dmce_strerror(rc));
        *out = NULL;
        return rc;
    }
    rc = dmce_setup(*out, 0, 0, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, PROG ": dmce_setup (%s): %s\n", what, dmce_strerror(rc));
        dmce_disconnect(*out);
        *out = NULL;
    }
    return rc;
}

/* Allocations of up to `chunk` bytes adding up to `total`. */
typedef struct chunks {
    dmce_addr_t *addr; /* owner: chunks_free (the bytes: the session, freed at disconnect) */
    uint64_t *len;
    size_t n;
    uint64_t total;
} chunks_t;

static void chunks_free(chunks_t *ch)
{
    free(ch->addr);
    free(ch->len);
    memset(ch, 0, sizeof(*ch));
}

static int chunks_alloc(dmce_client_t *c, uint64_t total, uint64_t chunk, chunks_t *ch)
{
    memset(ch, 0, sizeof(*ch));
    size_t n = (size_t)((total + chunk - 1) / chunk);
    ch->addr = calloc(n, sizeof(*ch->addr));
    ch->len = calloc(n, sizeof(*ch->len));
    if (!ch->addr || !ch->len) {
        chunks_free(ch);
        return -ENOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t len = DMCE_MIN(chunk, total - (uint64_t)k * chunk);
        int rc = dmce_malloc(c, len, &ch->addr[k]);
        if (rc < 0) {
            fprintf(stderr, PROG ": dmce_malloc of allocation %zu (%.0f MiB): %s%s\n", k,
                    (double)len / (double)MiB, dmce_strerror(rc),
                    rc == -EMSGSIZE ? " (--chunk must fit in one block)" : "");
            chunks_free(ch);
            return rc;
        }
        ch->len[k] = len;
        ch->n = k + 1;
        ch->total += len;
    }
    return 0;
}

/* The address of byte `off` of the set (off < total). */
static dmce_addr_t chunks_at(const chunks_t *ch, uint64_t chunk, uint64_t off)
{
    return ch->addr[off / chunk] + off % chunk;
}

/*
 * Run one case with the JSON line held back, so that the note can carry
 * what the callbacks counted (filled by finish from c->ctx, may be NULL);
 * then emit.
 */
static int run_case(dmce_bench_case_t *c, const dmce_bench_opts_t *o,
                    void (*finish)(dmce_bench_case_t *c))
{
    dmce_bench_opts_t quiet = *o;
    quiet.json = 0; /* human lines still go to o->human */
    int rc = dmce_bench_run(c, &quiet);
    if (rc < 0)
        return rc;
    if (finish)
        finish(c);
    if (c->res.note[0])
        fprintf(o->human, "  note: %s\n", c->res.note);
    if (o->json && dmce_bench_emit_json(&c->res) < 0) {
        fprintf(stderr, PROG ": writing JSON to stdout failed\n");
        return -EIO;
    }
    return 0;
}

static int case_init(dmce_bench_case_t *c, const char *bench, const char *impl)
{
    if (dmce_bench_case_init(c, "mapping", bench, impl) < 0)
        return -EINVAL;
    c->strerror = map_strerror;
    return 0;
}

/* The last parameter of every row: the page size of the daemons' blocks. */
static int param_pages(dmce_bench_case_t *c, const map_opts_t *mo)
{
    return dmce_perf_param_str(&c->res, "pages", mo->pages);
}

/* Window maps and evictions per unit, for notes. */
typedef struct win_count {
    dmce_client_stats_t st0;
    uint64_t units; /* passes or reads done since st0 */
} win_count_t;

static void win_count_start(win_count_t *w, dmce_client_t *c)
{
    dmce_client_stats(c, &w->st0);
    w->units = 0;
}

static void win_count_end(const win_count_t *w, dmce_client_t *c, double *maps, double *evicts,
                          double *hits)
{
    dmce_client_stats_t s;
    dmce_client_stats(c, &s);
    double u = w->units ? (double)w->units : 1.0;
    *maps = (double)(s.window_misses - w->st0.window_misses) / u;
    *evicts = (double)(s.window_evictions - w->st0.window_evictions) / u;
    *hits = (double)(s.window_hits - w->st0.window_hits) / u;
}

/* ---- seq: sequential bandwidth ------------------------------------------------------ */

enum seq_kind { SEQ_LIMIT, SEQ_MAP, SEQ_RW, SEQ_WIN_MAP, SEQ_WIN_RW, SEQ_MMAP_POP, SEQ_MMAP_LAZY };

typedef struct seq_ctx {
    const map_opts_t *mo;
    dmce_client_t *full, *win; /* owner: run_seq */
    chunks_t ch;
    uint8_t *src, *dst; /* private buffers of mo->size; owner: run_seq */
    int ref_fd;         /* shm object of the same size, same bytes (references); owner: run_seq */
    int write;
    enum seq_kind kind;
    win_count_t wc;
    uint64_t pmd_bytes; /* after the first mapping */
    FILE *human;
} seq_ctx_t;

/* Copy piece by piece of x->mo->piece between the private buffer and the set. */
static int seq_pieces(seq_ctx_t *x, dmce_client_t *c, int map)
{
    const uint64_t piece = x->mo->piece;
    uint64_t boff = 0;
    for (size_t k = 0; k < x->ch.n; k++) {
        for (uint64_t o = 0; o < x->ch.len[k]; o += piece) {
            size_t n = (size_t)DMCE_MIN(piece, x->ch.len[k] - o);
            dmce_addr_t a = x->ch.addr[k] + o;
            int rc;
            if (map) {
                void *p;
                if ((rc = dmce_map(c, a, n, 0, &p)) < 0)
                    return rc;
                if (x->write)
                    memcpy(p, x->src + boff, n);
                else
                    memcpy(x->dst + boff, p, n);
                rc = dmce_unmap(c, p);
            } else {
                rc = x->write ? dmce_write(c, a, x->src + boff, n)
                              : dmce_read(c, a, x->dst + boff, n);
            }
            if (rc < 0)
                return rc;
            boff += n;
        }
    }
    return 0;
}

static int seq_op(void *p, uint64_t i)
{
    seq_ctx_t *x = p;
    int rc = 0;
    (void)i;
    switch (x->kind) {
    case SEQ_LIMIT: memcpy(x->dst, x->src, (size_t)x->ch.total); break;
    case SEQ_MAP: {
        uint64_t boff = 0;
        for (size_t k = 0; k < x->ch.n && rc == 0; k++) {
            void *m;
            size_t n = (size_t)x->ch.len[k];
            if ((rc = dmce_map(x->full, x->ch.addr[k], n, 0, &m)) < 0)
                break;
            if (x->write)
                memcpy(m, x->src + boff, n);
            else
                memcpy(x->dst + boff, m, n);
            rc = dmce_unmap(x->full, m);
            boff += n;
        }
        break;
    }
    case SEQ_RW: rc = seq_pieces(x, x->full, 0); break;
    case SEQ_WIN_MAP: rc = seq_pieces(x, x->win, 1); break;
    case SEQ_WIN_RW: rc = seq_pieces(x, x->win, 0); break;
    case SEQ_MMAP_POP:
    case SEQ_MMAP_LAZY: {
        /* Raw windows of a shm object, each mapped, copied from and unmapped: no dmce. */
        const uint64_t w = x->mo->window;
        int flags = MAP_SHARED | (x->kind == SEQ_MMAP_POP ? MAP_POPULATE : 0);
        for (uint64_t off = 0; off < x->ch.total; off += w) {
            size_t n = (size_t)DMCE_MIN(w, x->ch.total - off);
            void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, flags, x->ref_fd, (off_t)off);
            if (m == MAP_FAILED)
                return -errno;
            if (x->write)
                memcpy(m, x->src + off, n);
            else
                memcpy(x->dst + off, m, n);
            munmap(m, n);
        }
        break;
    }
    }
    x->wc.units++;
    return rc;
}

static dmce_client_t *seq_client(seq_ctx_t *x)
{
    return x->kind == SEQ_WIN_MAP || x->kind == SEQ_WIN_RW ? x->win : x->full;
}

static int seq_rep_begin(void *p, unsigned rep, uint64_t max_ops)
{
    seq_ctx_t *x = p;
    (void)max_ops;
    if (rep == 0 && x->kind < SEQ_MMAP_POP && x->kind != SEQ_LIMIT)
        win_count_start(&x->wc, seq_client(x));
    return 0;
}

static void seq_finish(dmce_bench_case_t *c)
{
    seq_ctx_t *x = c->ctx;
    const map_opts_t *mo = x->mo;
    char w[24], pc[24];
    size_str(mo->window, w, sizeof(w));
    size_str(mo->piece, pc, sizeof(pc));
    const char *op = x->write ? "write" : "read";
    const char *pages_note = "";
    if (strcmp(mo->pages, "2m") == 0 && x->pmd_bytes == 0)
        pages_note = "; NO 2 MiB mappings seen";
    else if (strcmp(mo->pages, "4k") == 0 && x->pmd_bytes > 0)
        pages_note = "; 2 MiB mappings seen";
    double maps = 0, ev = 0, hits = 0;
    if (x->kind != SEQ_LIMIT && x->kind < SEQ_MMAP_POP)
        win_count_end(&x->wc, seq_client(x), &maps, &ev, &hits);
    switch (x->kind) {
    case SEQ_LIMIT:
        set_note(&c->res, "memcpy between two private buffers of the same size, one thread");
        break;
    case SEQ_MAP:
        set_note(&c->res,
                 "dmce_map of each allocation, memcpy, unmap; whole-block windows%s; target 0.90",
                 pages_note);
        break;
    case SEQ_RW:
        set_note(&c->res,
                 "dmce_%s of %s pieces, local path (no message), whole-block windows%s; target "
                 "0.90",
                 op, pc, pages_note);
        break;
    case SEQ_WIN_MAP:
    case SEQ_WIN_RW:
        set_note(&c->res,
                 "%s %s pieces, %s windows x %u (32-bit path): %.1f maps, %.1f evictions per "
                 "pass; target 0.75%s",
                 x->kind == SEQ_WIN_MAP ? "dmce_map of" : (x->write ? "dmce_write" : "dmce_read"),
                 pc, w, mo->windows, maps, ev, pages_note);
        break;
    case SEQ_MMAP_POP:
    case SEQ_MMAP_LAZY:
        set_note(&c->res,
                 "no dmce: %s windows of a shm object%s, each mmap()ed%s, copied, munmap()ed", w,
                 mo->ref_dir ? " in --ref-dir" : "",
                 x->kind == SEQ_MMAP_POP ? " with MAP_POPULATE" : " (faults on touch)");
        break;
    }
    if (x->kind == SEQ_WIN_MAP || x->kind == SEQ_WIN_RW)
        fprintf(x->human, "  windows: %.1f maps (misses), %.1f evictions, %.1f hits per pass\n",
                maps, ev, hits);
}

static int run_seq(map_opts_t *mo, const dmce_bench_opts_t *o)
{
    seq_ctx_t x = {.mo = mo, .ref_fd = -1, .human = o->human};
    int ret = 0, rc;
    if ((rc = connect_client(mo, mo->sockets, mo->nsockets, 0, 0, "whole blocks", &x.full)) < 0 ||
        (rc = connect_client(mo, mo->sockets, mo->nsockets, mo->window, mo->windows, "windows",
                             &x.win)) < 0) {
        ret = 1;
        goto out;
    }
    if ((rc = chunks_alloc(x.full, mo->size, mo->chunk, &x.ch)) < 0) {
        ret = 1;
        goto out;
    }
    double waited = 0;
    if ((rc = dmce_bench_wait_prefault(x.full, PROG, PREFAULT_WAIT_S, &waited)) < 0) {
        fprintf(stderr, PROG ": waiting for the prefault: %s\n", dmce_strerror(rc));
        ret = 1;
        goto out;
    }
    fprintf(o->human, "seq: %zu allocations, %.0f MiB; waited %.2f s for the daemons' prefault\n",
            x.ch.n, (double)x.ch.total / (double)MiB, waited);
    x.src = map_anon((size_t)x.ch.total);
    x.dst = map_anon((size_t)x.ch.total);
    if (!x.src || !x.dst) {
        fprintf(stderr, PROG ": cannot map 2 x %.0f MiB of private memory\n",
                (double)x.ch.total / (double)MiB);
        ret = 1;
        goto out;
    }
    /* Touch every private page now; the pattern changes every 4 KiB. */
    for (uint64_t i = 0; i < x.ch.total; i += 8) {
        uint64_t v = splitmix64(i / PAGE) ^ i;
        memcpy(x.src + i, &v, 8);
    }
    memset(x.dst, 0, (size_t)x.ch.total);
    /* Sanity check: written through whole blocks, read back through the windows. */
    x.write = 1;
    x.kind = SEQ_RW;
    if ((rc = seq_op(&x, 0)) < 0) {
        fprintf(stderr, PROG ": sanity write: %s\n", dmce_strerror(rc));
        ret = 1;
        goto out;
    }
    x.pmd_bytes = pmd_mapped_bytes();
    x.write = 0;
    x.kind = SEQ_WIN_RW;
    if ((rc = seq_op(&x, 0)) < 0 || memcmp(x.src, x.dst, (size_t)x.ch.total) != 0) {
        fprintf(stderr, PROG ": sanity check: %s\n",
                rc < 0 ? dmce_strerror(rc) : "read back through windows differs");
        ret = 1;
        goto out;
    }
    /* The references' object: the same bytes, in the same kind of memory. */
    x.ref_fd = shm_fresh(mo->ref_dir, x.ch.total);
    if (x.ref_fd < 0) {
        fprintf(stderr, PROG ": reference object in %s: %s\n",
                mo->ref_dir ? mo->ref_dir : "/dev/shm", strerror(-x.ref_fd));
        ret = 1;
        goto out;
    }
    {
        void *m = mmap(NULL, (size_t)x.ch.total, PROT_READ | PROT_WRITE, MAP_SHARED, x.ref_fd, 0);
        if (m == MAP_FAILED) {
            ret = 1;
            goto out;
        }
        memcpy(m, x.src, (size_t)x.ch.total);
        munmap(m, (size_t)x.ch.total);
    }
    fprintf(o->human,
            "seq: pages %s: %.0f MiB of this process's shared memory mapped with 2 MiB entries\n"
            "seq: windowed cases: window_size %.0f MiB, max_windows %u, set in "
            "dmce_connect_opts_t on this 64-bit build: the code path (libclient/map.c, "
            "runtime/cache.c) a -m32 client runs with its defaults\n",
            mo->pages, (double)x.pmd_bytes / (double)MiB, (double)mo->window / (double)MiB,
            mo->windows);

    static const struct {
        enum seq_kind kind;
        const char *impl;
    } kinds[] = {
        {SEQ_LIMIT, "limit"},          {SEQ_MAP, "dmce-map"},       {SEQ_RW, "dmce-rw"},
        {SEQ_WIN_MAP, "dmce-win-map"}, {SEQ_WIN_RW, "dmce-win-rw"}, {SEQ_MMAP_POP, "mmap-populate"},
        {SEQ_MMAP_LAZY, "mmap-lazy"},
    };
    for (int wr = 0; wr < 2; wr++) {
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
            dmce_bench_case_t c;
            if (wr && kinds[k].kind >= SEQ_MMAP_POP)
                continue; /* the references read: enough to place the windowed reads */
            if (case_init(&c, wr ? "seq_write" : "seq_read", kinds[k].impl) < 0 ||
                dmce_perf_param_num(&c.res, "size", (double)x.ch.total) < 0 ||
                param_pages(&c, mo) < 0) {
                ret = 2;
                goto out;
            }
            c.res.bytes_per_op = (double)x.ch.total;
            x.write = wr;
            x.kind = kinds[k].kind;
            c.ctx = &x;
            c.rep_begin = seq_rep_begin;
            c.op = seq_op;
            if (run_case(&c, o, seq_finish) < 0)
                ret = 1;
        }
    }
out:
    if (x.ref_fd >= 0)
        close(x.ref_fd);
    if (x.src)
        munmap(x.src, (size_t)x.ch.total);
    if (x.dst)
        munmap(x.dst, (size_t)x.ch.total);
    chunks_free(&x.ch);
    dmce_disconnect(x.win);
    dmce_disconnect(x.full); /* ends the session: its allocations are freed */
    return ret;
}

/* ---- rand: random 4 KiB reads through the cache, and remaps ---------------------------- */

enum rand_kind { RAND_LIMIT, RAND_MAP, RAND_WIN, REMAP_LIMIT, REMAP_BARE, REMAP_LAZY, REMAP_WIN };

#define RAND_MAX_REPS DMCE_PERF_MAX_REPS

typedef struct rand_ctx {
    const map_opts_t *mo;
    dmce_client_t *full, *win; /* owner: run_rand */
    chunks_t ch;
    uint8_t *priv;   /* private copy of the working set; owner: run_rand */
    int fd;          /* populated shm object of wset bytes (remap limits); owner: run_rand */
    uint64_t npages; /* 4 KiB steps in the working set */
    uint64_t nwin;   /* windows in the working set */
    uint64_t salt;
    enum rand_kind kind;
    uint8_t out[RAND_READ];
    uint64_t sink;
    /* rand_read dmce-win: window misses and time per repetition */
    dmce_client_stats_t rep_st;
    uint64_t rep_t0;
    unsigned nreps;
    uint64_t rep_ops[RAND_MAX_REPS], rep_misses[RAND_MAX_REPS], rep_ns[RAND_MAX_REPS];
    uint64_t ops_in_rep;
    win_count_t wc;
    FILE *human;
} rand_ctx_t;

static int rand_op(void *p, uint64_t i)
{
    rand_ctx_t *x = p;
    const uint64_t w = x->mo->window;
    int rc = 0;
    x->ops_in_rep++;
    x->wc.units++;
    switch (x->kind) {
    case RAND_LIMIT:
    case RAND_MAP:
    case RAND_WIN: {
        uint64_t off = (splitmix64(x->salt + i) % x->npages) * PAGE;
        if (x->kind == RAND_LIMIT) {
            memcpy(x->out, x->priv + off, RAND_READ);
            break;
        }
        rc = dmce_read(x->kind == RAND_MAP ? x->full : x->win, chunks_at(&x->ch, x->mo->chunk, off),
                       x->out, RAND_READ);
        break;
    }
    case REMAP_LIMIT:
    case REMAP_BARE:
    case REMAP_LAZY: {
        int flags = MAP_SHARED | (x->kind == REMAP_LIMIT ? MAP_POPULATE : 0);
        void *m =
            mmap(NULL, (size_t)w, PROT_READ | PROT_WRITE, flags, x->fd, (off_t)((i % x->nwin) * w));
        if (m == MAP_FAILED)
            return -errno;
        if (x->kind != REMAP_BARE)
            memcpy(x->out, (uint8_t *)m + ((i / x->nwin) * PAGE) % w, RAND_READ);
        if (munmap(m, (size_t)w) < 0)
            return -errno;
        break;
    }
    case REMAP_WIN: {
        /* The next window of the cycle; within it, a different page each time round. */
        uint64_t off = (i % x->nwin) * w + ((i / x->nwin) * PAGE) % (w - PAGE);
        rc = dmce_read(x->win, chunks_at(&x->ch, x->mo->chunk, off), x->out, RAND_READ);
        break;
    }
    }
    x->sink += x->out[i % RAND_READ];
    return rc;
}

/* Close the books of the repetition that just ended (rand_read dmce-win). */
static void rand_rep_close(rand_ctx_t *x)
{
    if (x->nreps == 0 || x->nreps > RAND_MAX_REPS)
        return;
    dmce_client_stats_t s;
    dmce_client_stats(x->win, &s);
    unsigned r = x->nreps - 1;
    x->rep_ops[r] = x->ops_in_rep;
    x->rep_misses[r] = s.window_misses - x->rep_st.window_misses;
    x->rep_ns[r] = dmce_now_ns() - x->rep_t0;
}

static int rand_rep_begin(void *p, unsigned rep, uint64_t max_ops)
{
    rand_ctx_t *x = p;
    (void)max_ops;
    x->salt = splitmix64(rep == DMCE_BENCH_WARMUP ? 12345 : rep + 1);
    if (rep == 0 && (x->kind == RAND_MAP || x->kind == RAND_WIN || x->kind == REMAP_WIN))
        win_count_start(&x->wc, x->kind == RAND_MAP ? x->full : x->win);
    if (x->kind == RAND_WIN && rep != DMCE_BENCH_WARMUP) {
        rand_rep_close(x);
        x->nreps = rep + 1;
        dmce_client_stats(x->win, &x->rep_st);
        x->ops_in_rep = 0;
        x->rep_t0 = dmce_now_ns();
    }
    return 0;
}

static void rand_teardown(void *p, unsigned client)
{
    rand_ctx_t *x = p;
    (void)client;
    if (x->kind == RAND_WIN)
        rand_rep_close(x);
}

static void rand_finish(dmce_bench_case_t *c)
{
    rand_ctx_t *x = c->ctx;
    char w[24];
    size_str(x->mo->window, w, sizeof(w));
    double maps = 0, ev = 0, hits = 0;
    switch (x->kind) {
    case RAND_LIMIT:
        set_note(&c->res,
                 "memcpy of 4 KiB from a random 4 KiB step of a private buffer of the working set");
        break;
    case RAND_MAP:
        set_note(&c->res, "dmce_read of 4 KiB at random, whole-block windows (no remap)");
        break;
    case RAND_WIN:
    case REMAP_WIN:
        win_count_end(&x->wc, x->win, &maps, &ev, &hits);
        set_note(&c->res,
                 "dmce_read of 4 KiB, %s windows x %u: %.3f window maps, %.3f evictions per read",
                 w, x->mo->windows, maps, ev);
        fprintf(x->human, "  windows: %.3f maps (misses), %.3f evictions, %.3f hits per read\n",
                maps, ev, hits);
        break;
    case REMAP_LIMIT:
        set_note(&c->res,
                 "mmap(MAP_POPULATE) of a %s window of a populated shm object, read 4 KiB, munmap",
                 w);
        break;
    case REMAP_BARE:
        set_note(&c->res, "mmap + munmap of a %s window of a populated shm object, no touch", w);
        break;
    case REMAP_LAZY:
        set_note(&c->res,
                 "mmap (no MAP_POPULATE) of a %s window of a populated shm object, read 4 KiB "
                 "(faults), munmap",
                 w);
        break;
    }
}

/* rand_read_remap: the window misses of the rand_read dmce-win run, per second and per miss. */
static int emit_remap_rate(rand_ctx_t *x, const dmce_bench_case_t *rd, const char *limit_key,
                           const dmce_bench_opts_t *o)
{
    dmce_perf_result_t r = rd->res; /* same params */
    if (dmce_perf_result_init(&r, "mapping", "rand_read_remap", "dmce-win") < 0)
        return -EINVAL;
    memcpy(r.params, rd->res.params, sizeof(r.params));
    r.nparams = rd->res.nparams;
    snprintf(r.limit, sizeof(r.limit), "%s", limit_key);
    double per_s[RAND_MAX_REPS], us[RAND_MAX_REPS];
    unsigned n = x->nreps < rd->res.reps ? x->nreps : rd->res.reps;
    double misses = 0, ops = 0;
    for (unsigned i = 0; i < n; i++) {
        double sec = (double)x->rep_ns[i] / 1e9;
        per_s[i] = sec > 0 ? (double)x->rep_misses[i] / sec : 0;
        us[i] = x->rep_misses[i] ? sec * 1e6 / (double)x->rep_misses[i] : 0;
        r.samples[i] = 1;
        misses += (double)x->rep_misses[i];
        ops += (double)x->rep_ops[i];
    }
    r.reps = n;
    r.warmup = rd->res.warmup;
    r.bytes_per_op = 0;
    dmce_perf_stat_from(&r.ops_per_s, per_s, n);
    dmce_perf_stat_from(&r.p50_us, us, n);
    memset(&r.gb_per_s, 0, sizeof(r.gb_per_s));
    memset(&r.p99_us, 0, sizeof(r.p99_us));
    memset(&r.p999_us, 0, sizeof(r.p999_us));
    r.ncurve = 0;
    set_note(&r,
             "ops = window misses of rand_read dmce-win (%.3f per read); p50 = time/misses per rep",
             ops > 0 ? misses / ops : 0);
    fprintf(o->human,
            "mapping dmce-win rand_read_remap: %.3f misses per read, %.0f remaps/s, %.1f us per "
            "remap (time / misses, the reads included; median of %u reps)\n",
            ops > 0 ? misses / ops : 0, r.ops_per_s.median, r.p50_us.median, n);
    if (o->json && dmce_bench_emit_json(&r) < 0)
        return -EIO;
    return 0;
}

static int run_rand(map_opts_t *mo, const dmce_bench_opts_t *o)
{
    rand_ctx_t x = {.mo = mo, .fd = -1, .human = o->human};
    int ret = 0, rc;
    if (mo->wset % mo->window || mo->wset / mo->window < 2 || mo->window < 2 * PAGE) {
        fprintf(stderr, PROG ": rand: --wset must be a multiple of --window (>= 2 windows)\n");
        return 2;
    }
    if (o->reps > RAND_MAX_REPS)
        return 2;
    x.npages = mo->wset / PAGE - 1; /* reads start at 4 KiB steps and stay inside */
    x.nwin = mo->wset / mo->window;
    if ((rc = connect_client(mo, mo->sockets, mo->nsockets, 0, 0, "whole blocks", &x.full)) < 0 ||
        (rc = connect_client(mo, mo->sockets, mo->nsockets, mo->window, mo->windows, "windows",
                             &x.win)) < 0 ||
        (rc = chunks_alloc(x.full, mo->wset, mo->chunk, &x.ch)) < 0) {
        ret = 1;
        goto out;
    }
    double waited = 0;
    if ((rc = dmce_bench_wait_prefault(x.full, PROG, PREFAULT_WAIT_S, &waited)) < 0) {
        ret = 1;
        goto out;
    }
    x.priv = map_anon((size_t)mo->wset);
    if (!x.priv) {
        ret = 1;
        goto out;
    }
    for (uint64_t i = 0; i < mo->wset; i += 8) {
        uint64_t v = splitmix64(i);
        memcpy(x.priv + i, &v, 8);
    }
    for (size_t k = 0, off = 0; k < x.ch.n; off += (size_t)x.ch.len[k], k++) {
        if ((rc = dmce_write(x.full, x.ch.addr[k], x.priv + off, (size_t)x.ch.len[k])) < 0) {
            fprintf(stderr, PROG ": writing the working set: %s\n", dmce_strerror(rc));
            ret = 1;
            goto out;
        }
    }
    /* Sanity check: a few random pages through the windows equal the private copy. */
    for (uint64_t i = 0; i < 64; i++) {
        uint64_t off = (splitmix64(i) % x.npages) * PAGE;
        if ((rc = dmce_read(x.win, chunks_at(&x.ch, mo->chunk, off), x.out, RAND_READ)) < 0 ||
            memcmp(x.out, x.priv + off, RAND_READ) != 0) {
            fprintf(stderr, PROG ": sanity check at offset %llu: %s\n", (unsigned long long)off,
                    rc < 0 ? dmce_strerror(rc) : "read back through windows differs");
            ret = 1;
            goto out;
        }
    }
    /* The remap limits' object: populated, so that mmap measures mapping, not allocation. */
    x.fd = shm_fresh(mo->ref_dir, mo->wset);
    if (x.fd < 0) {
        fprintf(stderr, PROG ": shm object: %s\n", strerror(-x.fd));
        ret = 1;
        goto out;
    }
    {
        void *m = mmap(NULL, (size_t)mo->wset, PROT_READ | PROT_WRITE, MAP_SHARED, x.fd, 0);
        if (m == MAP_FAILED) {
            ret = 1;
            goto out;
        }
        memcpy(m, x.priv, (size_t)mo->wset);
        munmap(m, (size_t)mo->wset);
    }
    char w[24], ws[24];
    size_str(mo->window, w, sizeof(w));
    size_str(mo->wset, ws, sizeof(ws));
    fprintf(o->human,
            "rand: working set %s (%.1fx the cache of %u windows of %s); waited %.2f s for the "
            "daemons' prefault; windows set in dmce_connect_opts_t on this 64-bit build (the "
            "32-bit code path)\n",
            ws, (double)mo->wset / ((double)mo->window * mo->windows), mo->windows, w, waited);

    /* remap: limit, bare, dmce-win (the limit's key is what rand_read_remap names). */
    char limit_key[DMCE_PERF_TEXT_MAX] = "";
    static const struct {
        enum rand_kind kind;
        const char *bench, *impl;
    } kinds[] = {
        {REMAP_LIMIT, "remap", "limit"},     {REMAP_BARE, "remap", "mmap-bare"},
        {REMAP_LAZY, "remap", "mmap-lazy"},  {REMAP_WIN, "remap", "dmce-win"},
        {RAND_LIMIT, "rand_read", "limit"},  {RAND_MAP, "rand_read", "dmce-map"},
        {RAND_WIN, "rand_read", "dmce-win"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        dmce_bench_case_t c;
        int is_rand = strcmp(kinds[k].bench, "rand_read") == 0;
        if (case_init(&c, kinds[k].bench, kinds[k].impl) < 0 ||
            (is_rand && (dmce_perf_param_num(&c.res, "size", RAND_READ) < 0 ||
                         dmce_perf_param_str(&c.res, "wset", ws) < 0)) ||
            dmce_perf_param_str(&c.res, "window", w) < 0 ||
            (is_rand && dmce_perf_param_num(&c.res, "windows", mo->windows) < 0) ||
            param_pages(&c, mo) < 0) {
            ret = 2;
            goto out;
        }
        if (kinds[k].kind == REMAP_LIMIT &&
            dmce_perf_result_key(&c.res, limit_key, sizeof(limit_key)) < 0) {
            ret = 2;
            goto out;
        }
        c.res.bytes_per_op = is_rand ? RAND_READ : 0;
        x.kind = kinds[k].kind;
        x.nreps = 0;
        c.ctx = &x;
        c.rep_begin = rand_rep_begin;
        c.op = rand_op;
        c.teardown = rand_teardown;
        if (run_case(&c, o, rand_finish) < 0) {
            ret = 1;
            continue;
        }
        if (x.kind == RAND_WIN && emit_remap_rate(&x, &c, limit_key, o) < 0)
            ret = 1;
    }
out:
    if (x.fd >= 0)
        close(x.fd);
    if (x.priv)
        munmap(x.priv, (size_t)mo->wset);
    chunks_free(&x.ch);
    dmce_disconnect(x.win);
    dmce_disconnect(x.full);
    return ret;
}

/* ---- touch: first touch, paid by the daemons or by the client ----------------------------- */

enum touch_kind { PF_DMCE, PF_LIMIT, FT_COLD, FT_PREFAULTED, FT_LIMIT };

typedef struct touch_ctx {
    const map_opts_t *mo;
    dmce_client_t *hot, *cold; /* owner: run_touch */
    enum touch_kind kind;
    int prewarm;
    /* allocations made by the prefault op (faulted in by the daemons), used by FT_PREFAULTED */
    dmce_addr_t *hot_addr;
    size_t nhot, hot_cap, hot_next;
    /* allocations for the current repetition of FT_COLD */
    dmce_addr_t *rep_addr;
    size_t nrep;
    /*
     * The limits' shm objects, kept open until the case ends: the daemons
     * keep their blocks, so the limits must not recycle pages they freed
     * either (on a VM a page the guest has never used costs several times
     * more at first touch). Owner: touch_teardown.
     */
    int *keep_fd;
    size_t nkeep, keep_cap, rep_base;
} touch_ctx_t;

static int keep_fd(touch_ctx_t *x, int fd)
{
    if (x->nkeep == x->keep_cap) {
        size_t cap = x->keep_cap ? 2 * x->keep_cap : 16;
        int *n = realloc(x->keep_fd, cap * sizeof(*n));
        if (!n) {
            close(fd);
            return -ENOMEM;
        }
        x->keep_fd = n;
        x->keep_cap = cap;
    }
    x->keep_fd[x->nkeep++] = fd;
    return 0;
}

/* Free bytes in blocks daemon d has already created (a new allocation fits there or not). */
static int free_in_created(dmce_client_t *c, unsigned d, uint64_t *out, uint64_t *blocks)
{
    dmce_stats_t s;
    int rc = dmce_daemon_stats(c, d, &s);
    if (rc < 0)
        return rc;
    uint64_t slots = (uint64_t)s.block_last - s.block_first + 1;
    uint64_t per_block = slots ? s.bytes_total / slots : 0;
    uint64_t uncreated = (slots - s.blocks) * per_block;
    *out = s.bytes_free > uncreated ? s.bytes_free - uncreated : 0;
    *blocks = s.blocks;
    return 0;
}

/*
 * Fill the blocks the daemons already have, so that every later chunk
 * needs a fresh block (whose prefault the op then times).
 */
static int fill_existing(touch_ctx_t *x)
{
    unsigned nd = dmce_daemon_count(x->hot);
    for (unsigned d = 0; d < nd; d++) {
        for (unsigned guard = 0; guard < 4096; guard++) {
            uint64_t room, b0, b1, dummy;
            int rc = free_in_created(x->hot, d, &room, &b0);
            if (rc < 0)
                return rc;
            if (room < x->mo->chunk + PAGE)
                break;
            dmce_addr_t a;
            if ((rc = dmce_malloc_on(x->hot, d, x->mo->chunk, &a)) < 0)
                return rc;
            if ((rc = free_in_created(x->hot, d, &dummy, &b1)) < 0)
                return rc;
            if (b1 > b0)
                break; /* it needed a new block after all (fragmentation) */
        }
    }
    return dmce_bench_wait_prefault(x->hot, PROG, PREFAULT_WAIT_S, NULL);
}

/*
 * Touch and free `bytes` of private memory. On a VM whose balloon driver
 * reports free pages to the host (virtio free page reporting), a page the
 * guest freed more than a few seconds ago must be faulted in again by the
 * host at its next first touch: several times the guest's own cost. Freshly
 * freed pages sit at the head of the free lists (reported ones at the
 * tail), so the allocation that follows gets host-backed pages: dmce and
 * its limit then pay the same kind of first touch.
 */
static int prewarm(uint64_t bytes)
{
    if (bytes == 0)
        return 0;
    void *m = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (m == MAP_FAILED)
        return -errno;
    munmap(m, (size_t)bytes);
    return 0;
}

static int touch_rep_begin(void *p, unsigned rep, uint64_t max_ops)
{
    touch_ctx_t *x = p;
    (void)rep;
    if (x->prewarm && x->kind != FT_PREFAULTED) {
        int pf = x->kind == PF_DMCE || x->kind == PF_LIMIT;
        int rc = prewarm(max_ops * (pf ? x->mo->block_size : x->mo->chunk));
        if (rc < 0)
            return rc;
    }
    if (x->kind == FT_COLD) {
        free(x->rep_addr);
        x->nrep = 0;
        x->rep_addr = calloc(max_ops ? max_ops : 1, sizeof(*x->rep_addr));
        if (!x->rep_addr)
            return -ENOMEM;
        for (uint64_t i = 0; i < max_ops; i++) {
            int rc = dmce_malloc(x->cold, x->mo->chunk, &x->rep_addr[i]);
            if (rc < 0)
                return rc;
            x->nrep++;
        }
    } else if (x->kind == FT_LIMIT) {
        x->rep_base = x->nkeep;
        x->nrep = 0;
        for (uint64_t i = 0; i < max_ops; i++) {
            int fd = shm_fresh(x->mo->ref_dir, x->mo->chunk);
            if (fd < 0)
                return fd;
            int rc = keep_fd(x, fd);
            if (rc < 0)
                return rc;
            x->nrep++;
        }
    }
    return 0;
}

/* dmce_map + memset + dmce_unmap of one chunk: the client's view of fresh memory. */
static int touch_chunk(dmce_client_t *c, dmce_addr_t a, uint64_t len, int v)
{
    void *m;
    int rc = dmce_map(c, a, (size_t)len, 0, &m);
    if (rc < 0)
        return rc;
    memset(m, v, (size_t)len);
    return dmce_unmap(c, m);
}

static int touch_op(void *p, uint64_t i)
{
    touch_ctx_t *x = p;
    const uint64_t chunk = x->mo->chunk, bs = x->mo->block_size;
    int rc;
    switch (x->kind) {
    case PF_DMCE: {
        dmce_stats_t s0, s1;
        if ((rc = dmce_stats(x->hot, &s0)) < 0)
            return rc;
        if (x->nhot == x->hot_cap) {
            size_t cap = x->hot_cap ? 2 * x->hot_cap : 16;
            dmce_addr_t *n = realloc(x->hot_addr, cap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            x->hot_addr = n;
            x->hot_cap = cap;
        }
        if ((rc = dmce_malloc(x->hot, chunk, &x->hot_addr[x->nhot])) < 0)
            return rc;
        x->nhot++;
        uint64_t t0 = dmce_now_ns();
        for (;;) {
            if ((rc = dmce_stats(x->hot, &s1)) < 0)
                return rc;
            if (s1.prefault_pending == 0)
                break;
            if (dmce_now_ns() - t0 > (uint64_t)(PREFAULT_WAIT_S * 1e9)) {
                fprintf(stderr, PROG ": prefault of a fresh block not done after %.0f s\n",
                        PREFAULT_WAIT_S);
                return -ETIMEDOUT;
            }
            sleep_ms(1);
        }
        if (s1.blocks != s0.blocks + 1 || s1.prefaulted - s0.prefaulted != bs) {
            fprintf(stderr,
                    PROG ": the prefault op did not make exactly one fresh block of --block-size "
                         "(%llu -> %llu blocks, %llu bytes prefaulted; --block-size %llu)\n",
                    (unsigned long long)s0.blocks, (unsigned long long)s1.blocks,
                    (unsigned long long)(s1.prefaulted - s0.prefaulted), (unsigned long long)bs);
            return -EPROTO;
        }
        return 0;
    }
    case PF_LIMIT: {
        int fd = shm_fresh(x->mo->ref_dir, bs);
        if (fd < 0)
            return fd;
        uint8_t *m = mmap(NULL, (size_t)bs, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        rc = m == MAP_FAILED ? -errno : keep_fd(x, fd);
        if (rc < 0)
            return rc;
        for (uint64_t off = 0; off < bs && rc == 0; off += 2 * MiB)
            if (madvise(m + off, (size_t)DMCE_MIN(2 * MiB, bs - off), MADV_POPULATE_WRITE) < 0)
                rc = -errno;
        munmap(m, (size_t)bs);
        return rc;
    }
    case FT_COLD:
        if (i >= x->nrep)
            return -ERANGE;
        return touch_chunk(x->cold, x->rep_addr[i], chunk, (int)(i & 0xff));
    case FT_PREFAULTED:
        if (x->hot_next >= x->nhot)
            return -ERANGE; /* one prefaulted chunk per op: as many ops as the prefault case */
        return touch_chunk(x->hot, x->hot_addr[x->hot_next++], chunk, (int)(i & 0xff));
    case FT_LIMIT: {
        if (i >= x->nrep)
            return -ERANGE;
        void *m = mmap(NULL, (size_t)chunk, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                       x->keep_fd[x->rep_base + i], 0);
        if (m == MAP_FAILED)
            return -errno;
        memset(m, (int)(i & 0xff), (size_t)chunk);
        munmap(m, (size_t)chunk);
        return 0;
    }
    }
    return -EINVAL;
}

static void touch_teardown(void *p, unsigned client)
{
    touch_ctx_t *x = p;
    (void)client;
    for (size_t i = 0; i < x->nkeep; i++)
        close(x->keep_fd[i]);
    free(x->keep_fd);
    x->keep_fd = NULL;
    x->nkeep = x->keep_cap = x->rep_base = 0;
    free(x->rep_addr);
    x->rep_addr = NULL;
    x->nrep = 0;
}

static void touch_finish(dmce_bench_case_t *c)
{
    touch_ctx_t *x = c->ctx;
    char bs[24];
    size_str(x->mo->block_size, bs, sizeof(bs));
    const char *n = "";
    switch (x->kind) {
    case PF_DMCE:
        set_note(&c->res,
                 "dmce_malloc that creates a %s block, until the daemons' prefault_pending is 0",
                 bs);
        return;
    case PF_LIMIT: n = "fresh fallocate()d shm object, MADV_POPULATE_WRITE 2 MiB at a time"; break;
    case FT_COLD:
        n = "prefault=no daemons: dmce_map of a fresh allocation (MAP_POPULATE of its block), "
            "memset, unmap";
        break;
    case FT_PREFAULTED:
        n = "the same on memory the daemons prefaulted: dmce_map, memset, unmap";
        break;
    case FT_LIMIT: n = "fresh fallocate()d shm object: mmap(MAP_POPULATE), memset, munmap"; break;
    }
    set_note(&c->res, "%s", n);
}

static int run_touch(map_opts_t *mo, const dmce_bench_opts_t *o)
{
    touch_ctx_t x = {.mo = mo, .prewarm = mo->prewarm};
    int ret = 0, rc;
    dmce_bench_opts_t to = *o;
    to.warmup = 0; /* every op consumes fresh memory: nothing to warm up */
    if ((rc = connect_client(mo, mo->sockets, mo->nsockets, 0, 0, "prefault daemons", &x.hot)) <
        0) {
        ret = 1;
        goto out;
    }
    if ((rc = fill_existing(&x)) < 0) {
        fprintf(stderr, PROG ": filling the daemons' existing blocks: %s\n", dmce_strerror(rc));
        ret = 1;
        goto out;
    }
    if (mo->ncold) {
        dmce_stats_t s;
        if ((rc = connect_client(mo, mo->cold, mo->ncold, 0, 0, "prefault=no daemons", &x.cold)) <
                0 ||
            (rc = dmce_stats(x.cold, &s)) < 0) {
            ret = 1;
            goto out;
        }
        if (s.prefaulted || s.prefault_pending) {
            fprintf(stderr,
                    PROG ": the --cold-socket daemons prefault (%llu bytes so far): start "
                         "them with --prefault=no\n",
                    (unsigned long long)(s.prefaulted + s.prefault_pending));
            ret = 1;
            goto out;
        }
    } else {
        fprintf(stderr, PROG ": no --cold-socket: first_touch dmce (client pays) not measured\n");
        ret = 1;
    }
    static const struct {
        enum touch_kind kind;
        const char *bench, *impl;
    } kinds[] = {
        {PF_DMCE, "prefault", "dmce"},      {PF_LIMIT, "prefault", "limit"},
        {FT_COLD, "first_touch", "dmce"},   {FT_PREFAULTED, "first_touch", "dmce-prefaulted"},
        {FT_LIMIT, "first_touch", "limit"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        if (kinds[k].kind == FT_COLD && !x.cold)
            continue;
        if (kinds[k].kind == FT_PREFAULTED && x.nhot < (size_t)(o->ops * o->reps)) {
            fprintf(stderr,
                    PROG ": first_touch dmce-prefaulted needs the prefault case's %llu "
                         "allocations (it made %zu)\n",
                    (unsigned long long)(o->ops * o->reps), x.nhot);
            ret = 1;
            continue;
        }
        dmce_bench_case_t c;
        int pf = strcmp(kinds[k].bench, "prefault") == 0;
        uint64_t bytes = pf ? mo->block_size : mo->chunk;
        if (case_init(&c, kinds[k].bench, kinds[k].impl) < 0 ||
            dmce_perf_param_num(&c.res, "size", (double)bytes) < 0 || param_pages(&c, mo) < 0) {
            ret = 2;
            goto out;
        }
        c.res.bytes_per_op = (double)bytes;
        x.kind = kinds[k].kind;
        c.ctx = &x;
        c.rep_begin = touch_rep_begin;
        c.op = touch_op;
        c.teardown = touch_teardown;
        if (run_case(&c, &to, touch_finish) < 0)
            ret = 1;
    }
out:
    touch_teardown(&x, 0);
    free(x.hot_addr);
    dmce_disconnect(x.cold);
    dmce_disconnect(x.hot);
    return ret;
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    map_opts_t mo = {
        .size = UINT64_C(1) << 30,
        .chunk = UINT64_C(240) << 20,
        .piece = UINT64_C(16) << 20,
        .window = UINT64_C(64) << 20,
        .windows = 8,
        .wset = UINT64_C(128) << 20,
        .block_size = UINT64_C(256) << 20,
        .pages = "4k",
        .prewarm = 1,
    };
    static const dmce_bench_opt_t own[] = {
        {"bench", "NAME", "seq, rand or touch (required)", opt_bench},
        {"runtime-dir", "DIR", "every memd-*.sock in DIR (default $DMCE_RUNTIME_DIR)",
         opt_runtime_dir},
        {"socket", "PATH", "or these daemons (repeat; prefault on)", opt_socket},
        {"cold-socket", "PATH", "touch: daemons started with --prefault=no (repeat)", opt_cold},
        {"size", "BYTES", "seq: bytes per pass (default 1G)", opt_size},
        {"chunk", "BYTES", "bytes per allocation; fits in one block (default 240M)", opt_chunk},
        {"piece", "BYTES", "seq: bytes per dmce_read/write or windowed dmce_map (16M)", opt_piece},
        {"window", "BYTES", "window_size of the windowed client (seq 64M, rand 4M)", opt_window},
        {"windows", "N", "max_windows of the windowed client (default 8)", opt_windows},
        {"wset", "BYTES", "rand: working set, a multiple of --window (default 128M)", opt_wset},
        {"block-size", "BYTES", "touch: the daemons' block_size (default 256M)", opt_block_size},
        {"pages", "4k|2m", "page size of the daemons' blocks, for the rows (default 4k)",
         opt_pages},
        {"ref-dir", "DIR",
         "tmpfs dir for the references' objects (default POSIX shm); with "
         "--pages 2m, the daemons' --shm-dir",
         opt_ref_dir},
        {"prewarm", "yes|no",
         "touch: touch and free the op's amount of memory before each "
         "repetition, so that fresh pages are host-backed on a VM (default yes)",
         opt_prewarm},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "Mapped access and the Memory Cache: sequential bandwidth (whole blocks and "
                   "32-bit windows), random 4 KiB reads and remaps, first touch; each beside the "
                   "machine's limit measured in the same run.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &mo,
        .ops = 3,
        .warmup = 1,
        .reps = 3,
        .duration_s = 10.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!mo.bench) {
        fprintf(stderr, PROG ": --bench is required (see --help)\n");
        return 2;
    }
    if (o.clients != 1) {
        fprintf(stderr, PROG ": one client process (the windows belong to one client)\n");
        return 2;
    }
    if (mo.nsockets == 0 && !mo.runtime_dir && !getenv("DMCE_RUNTIME_DIR")) {
        fprintf(stderr, PROG ": give --socket or --runtime-dir (or set DMCE_RUNTIME_DIR)\n");
        return 2;
    }
    if (mo.chunk > mo.block_size) {
        fprintf(stderr, PROG ": --chunk must fit in one block (--block-size)\n");
        return 2;
    }
    if (strcmp(mo.bench, "seq") == 0)
        return run_seq(&mo, &o);
    if (strcmp(mo.bench, "rand") == 0) {
        if (!mo.window_set)
            mo.window = UINT64_C(4) << 20;
        return run_rand(&mo, &o);
    }
    if (strcmp(mo.bench, "touch") == 0)
        return run_touch(&mo, &o);
    fprintf(stderr, PROG ": --bench: unknown '%s' (see --help)\n", mo.bench);
    return 2;
}
