/*
 * map.c - libdmce's mapped access (dmce/map.h): the client's Block ID
 * Lookup Table, the Memory Cache backend for local blocks, dmce_map and the
 * DMCE Memory Mapping Table, the local fast path of dmce_read/dmce_write,
 * and the watcher that notices a daemon's death.
 *
 * Opening a block. The first access to a local block sends one MSMP `map`
 * request with DMCE_MSMP_MAP_WANT_FD: the daemon checks the address and
 * hands over the block's shm descriptor (SCM_RIGHTS). From then on the
 * block's windows are mmap()s of that descriptor, and every access is
 * checked against the block's own allocation map (dmce_alloc_check, the
 * same function the daemon runs) before the bytes are copied: no message.
 *
 * Lock order: a connection's lock, then map_lock, then the cache's lock.
 * The cache backend (block_map) only reads blocks[] (atomics), so the
 * cache never calls back into anything that takes map_lock.
 *
 * Daemon death. The watcher thread (started with the first opened block)
 * polls a pidfd per daemon and sets conn->dead when the process exits.
 * The fast path reads that flag (one relaxed load) and answers
 * DMCE_ECLOSED for the dead daemon's blocks; their memory stays mapped, so
 * a pointer the user holds never faults.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dmce/error.h>
#include <dmce/map.h>

#include "alloc.h"
#include "client_internal.h"
#include "util.h"

#define PAGE 4096u
#define WINDOW_32 (64ull << 20)
#define MAX_WINDOWS_64 4096u
#define MAX_WINDOWS_32 8u
#define POPULATE_MAX (1ull << 30)

/* ---- the cache backend for local blocks -------------------------------------------- */

static struct dmce_blk *blk_get(struct dmce_client *c, uint32_t id)
{
    if (id >= c->nblocks)
        return NULL;
    return atomic_load_explicit(&c->blocks[id], memory_order_acquire);
}

static int block_map(void *ctx, dmce_cache_key_t key, uint64_t off, uint64_t len, void **ptr,
                     int *shared)
{
    struct dmce_client *c = ctx;
    if (key.server != DMCE_SERVER_LOCAL)
        return DMCE_ENOSERVER; /* copies of remote memory: once hosts are linked */
    struct dmce_blk *b = blk_get(c, key.block);
    if (!b)
        return DMCE_ECLOSED;
    if (len > SIZE_MAX || off > (uint64_t)INT64_MAX)
        return -ENOMEM;
    /*
     * Lazily: a window mapped for a random read of a few KiB costs ~12 us
     * so, ~310 us with MAP_POPULATE (4 MiB, docs/perf.md, mapping); reads
     * fault 16 pages at a time (the kernel's fault-around). A window is
     * filled at its first write instead (window_prepare).
     */
    void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, (off_t)off);
    if (p == MAP_FAILED)
        return -errno;
    /* The block header and allocation map: read-only, safe from stray stores. */
    uint64_t meta_end = b->data_offset - b->data_offset % PAGE;
    if (off < meta_end) {
        uint64_t ro = DMCE_MIN(len, meta_end - off);
        if (mprotect(p, (size_t)ro, PROT_READ) < 0) {
            int r = -errno;
            munmap(p, (size_t)len);
            return r;
        }
    }
    *ptr = p;
    *shared = 1;
    return 0;
}

/*
 * A window's first write (or dmce_map): fill its page tables in one pass,
 * ~2.5x cheaper than a fault per 4 KiB page (stores get no fault-around).
 * MADV_POPULATE_READ: on a shared shmem mapping it maps the pages writable,
 * and it does not simulate write faults as MADV_POPULATE_WRITE does (2x
 * slower here). From the first data page on (the header and allocation map
 * are read-only and read rarely); not huge windows (whole blocks of more
 * than POPULATE_MAX), which fault on demand. Best effort: before Linux 5.14
 * the pages fault as touched.
 */
static void window_prepare(void *ctx, dmce_cache_key_t key, uint64_t off, void *ptr, uint64_t len)
{
#ifdef MADV_POPULATE_READ
    struct dmce_blk *b = blk_get(ctx, key.block);
    if (!b || len > POPULATE_MAX)
        return;
    uint64_t meta_end = b->data_offset - b->data_offset % PAGE, skip = 0;
    if (off < meta_end)
        skip = DMCE_MIN(len, meta_end - off);
    if (skip < len)
        (void)madvise((uint8_t *)ptr + skip, (size_t)(len - skip), MADV_POPULATE_READ);
#else
    (void)ctx, (void)key, (void)off, (void)ptr, (void)len;
#endif
}

static void block_unmap(void *ctx, dmce_cache_key_t key, uint64_t off, uint64_t len, void *ptr,
                        int shared)
{
    (void)ctx, (void)key, (void)off, (void)shared;
    munmap(ptr, (size_t)len);
}

/* ---- setup and teardown ---------------------------------------------------------------- */

int dmce__map_init(struct dmce_client *c, const dmce_connect_opts_t *opts)
{
    int is64 = sizeof(void *) == 8;
    pthread_mutex_init(&c->map_lock, NULL);
    c->watch_evfd = -1;
    c->flags = opts ? opts->flags : 0;
    if (c->flags & DMCE_CONNECT_TRANSPARENT) /* everything goes through the dispatcher */
        c->flags |= DMCE_CONNECT_NO_MAP | DMCE_CONNECT_NO_RING;
    c->window_size = opts && opts->window_size ? opts->window_size : (is64 ? 0 : WINDOW_32);
    c->max_windows = opts && opts->max_windows ? opts->max_windows
                                               : (is64 ? MAX_WINDOWS_64 : MAX_WINDOWS_32);
    if (c->window_size % PAGE || (!is64 && c->window_size == 0)) {
        pthread_mutex_destroy(&c->map_lock);
        return -EINVAL; /* a 32-bit process cannot map whole blocks of any size */
    }
    dmce_cache_config_t cc = {
        .window_size = c->window_size,
        .max_windows = c->max_windows,
        .policy = (c->flags & DMCE_CONNECT_WRITE_BACK) ? DMCE_CACHE_WRITE_BACK
                                                       : DMCE_CACHE_WRITE_THROUGH,
    };
    /*
     * The Block ID Lookup Table: room for the widest block field (16 bits)
     * from the start, so that readers never race its creation. calloc of
     * 512 KiB is untouched zero pages until blocks are opened.
     */
    c->nblocks = 1u << 16;
    c->blocks = calloc(c->nblocks, sizeof(c->blocks[0]));
    if (!c->blocks)
        return -ENOMEM;
    dmce_cache_backend_t be = {
        .ctx = c, .map = block_map, .unmap = block_unmap, .prepare_write = window_prepare};
    int r = dmce_cache_create(&cc, &be, &c->cache);
    if (r < 0) {
        free((void *)c->blocks);
        c->blocks = NULL;
        pthread_mutex_destroy(&c->map_lock);
    }
    return r;
}

static void watcher_stop(struct dmce_client *c);

void dmce__map_fini(struct dmce_client *c)
{
    watcher_stop(c);
    for (size_t i = 0; i < c->nmaps; i++)
        dmce_cache_release(c->cache, &c->maps[i].ref, 0, 0);
    free(c->maps);
    dmce_cache_destroy(c->cache);
    for (uint32_t i = 0; c->blocks && i < c->nblocks; i++) {
        struct dmce_blk *b = atomic_load(&c->blocks[i]);
        if (b) {
            close(b->fd);
            free(b);
        }
    }
    for (struct dmce_blk *b = c->retired, *n; b; b = n) {
        n = b->retired_next;
        close(b->fd);
        free(b);
    }
    free((void *)c->blocks);
    pthread_mutex_destroy(&c->map_lock);
}

/* ---- the watcher ----------------------------------------------------------------------- */

/*
 * Poll a pidfd per daemon; mark a daemon dead when its process exits.
 * Rebuilds its set when woken through watch_evfd (a daemon was
 * reconnected) and ends when the value written is >= 2^32.
 */
static void *watcher_main(void *arg)
{
    struct dmce_client *c = arg;
    int pfd[DMCE_MAX_DAEMONS];
    pid_t ppid[DMCE_MAX_DAEMONS];
    for (unsigned i = 0; i < DMCE_MAX_DAEMONS; i++) {
        pfd[i] = -1;
        ppid[i] = 0;
    }
    for (;;) {
        struct pollfd p[DMCE_MAX_DAEMONS + 1];
        unsigned idx[DMCE_MAX_DAEMONS + 1];
        nfds_t np = 0;
        p[np++] = (struct pollfd){.fd = c->watch_evfd, .events = POLLIN};
        for (unsigned i = 0; i < atomic_load(&c->n); i++) {
            pid_t pid = atomic_load(&c->conn[i].t.pid);
            if (pid != ppid[i]) {
                if (pfd[i] >= 0)
                    close(pfd[i]);
                ppid[i] = pid;
                pfd[i] = pid > 0 ? dmce_pidfd_open(pid) : -1;
                if (pid > 0 && pfd[i] < 0 && errno == ESRCH)
                    atomic_store(&c->conn[i].t.dead, 1);
            }
            if (pfd[i] >= 0) {
                idx[np] = i;
                p[np++] = (struct pollfd){.fd = pfd[i], .events = POLLIN};
            }
        }
        if (poll(p, np, -1) < 0 && errno != EINTR)
            break;
        for (nfds_t k = 1; k < np; k++) {
            if (!p[k].revents)
                continue;
            unsigned i = idx[k];
            atomic_store(&c->conn[i].t.dead, 1);
            close(pfd[i]);
            pfd[i] = -1; /* stays closed until another process answers on that socket */
        }
        if (p[0].revents) {
            uint64_t v = 0;
            if (read(c->watch_evfd, &v, sizeof(v)) == sizeof(v) && v >= (1ull << 32))
                break;
        }
    }
    for (unsigned i = 0; i < DMCE_MAX_DAEMONS; i++)
        if (pfd[i] >= 0)
            close(pfd[i]);
    return NULL;
}

/* Start the watcher if it is not running. map_lock held. */
static int watcher_start_locked(struct dmce_client *c)
{
    if (c->watcher_on)
        return 0;
    c->watch_evfd = eventfd(0, EFD_CLOEXEC);
    if (c->watch_evfd < 0)
        return -errno;
    int r = pthread_create(&c->watcher, NULL, watcher_main, c);
    if (r) {
        close(c->watch_evfd);
        c->watch_evfd = -1;
        return -r;
    }
    c->watcher_on = 1;
    return 0;
}

static void watcher_poke(struct dmce_client *c, uint64_t v)
{
    if (c->watch_evfd >= 0 && write(c->watch_evfd, &v, sizeof(v)) < 0) {
        /* the counter is saturated only if the watcher is gone: nothing to wake */
    }
}

static void watcher_stop(struct dmce_client *c)
{
    if (!c->watcher_on)
        return;
    watcher_poke(c, 1ull << 32);
    pthread_join(c->watcher, NULL);
    close(c->watch_evfd);
    c->watch_evfd = -1;
    c->watcher_on = 0;
}

/* Unpublish block entry `id` and retire it, map_lock held. */
static void blk_retire_locked(struct dmce_client *c, uint32_t id, struct dmce_blk *b)
{
    atomic_store(&c->blocks[id], NULL);
    atomic_store(&b->gone, 1);
    dmce_cache_invalidate(c->cache, (dmce_cache_key_t){DMCE_SERVER_LOCAL, id});
    b->retired_next = c->retired;
    c->retired = b;
}

/* Opened on a daemon that is not the block's primary any more (owner: its ID, 0 unknown). */
static int blk_moved(const struct dmce_client *c, const struct dmce_blk *b, uint32_t owner)
{
    return owner && atomic_load_explicit(&c->conn[b->daemon].id, memory_order_relaxed) != owner;
}

void dmce__map_check_block(struct dmce_client *c, uint32_t id, uint32_t owner)
{
    if (!c->blocks || id >= c->nblocks || !blk_get(c, id))
        return;
    pthread_mutex_lock(&c->map_lock);
    struct dmce_blk *b = atomic_load(&c->blocks[id]);
    if (b && blk_moved(c, b, owner))
        blk_retire_locked(c, id, b);
    pthread_mutex_unlock(&c->map_lock);
}

void dmce__map_daemon_reset(struct dmce_client *c, unsigned i)
{
    pthread_mutex_lock(&c->map_lock);
    for (uint32_t id = 0; c->blocks && id < c->nblocks; id++) {
        struct dmce_blk *b = atomic_load(&c->blocks[id]);
        if (!b || b->daemon != i)
            continue;
        blk_retire_locked(c, id, b);
    }
    pthread_mutex_unlock(&c->map_lock);
    watcher_poke(c, 1);
}

/* ---- opening blocks ---------------------------------------------------------------------- */

/*
 * Ask daemon `d` for the block holding [addr, addr+len) and its
 * descriptor; publish the block. The daemon's check of the range is the
 * answer for this first access (*ai). Must not hold map_lock.
 */
static int block_open(struct dmce_client *c, unsigned d, dmce_addr_t addr, uint64_t len,
                      uint32_t id, struct dmce_blk **out)
{
    dmce_msmp_map_req_t rq = {.addr = addr, .len = len, .flags = DMCE_MSMP_MAP_WANT_FD};
    uint8_t p[DMCE_MSMP_MAP_REQ_SIZE], resp[DMCE_MSMP_MAP_RESP_SIZE];
    dmce_msmp_map_req_encode(&rq, p);
    size_t rlen = 0;
    int fd = -1;
    int r = dmce__rpc(c, &c->conn[d], DMCE_MSMP_OP_MAP, p, sizeof(p), NULL, 0, resp, sizeof(resp),
                      &rlen, &fd);
    dmce_msmp_map_resp_t rs;
    if (r == 0)
        r = dmce_msmp_map_resp_decode(resp, rlen, &rs);
    if (r == 0 && (rs.block != id || !(rs.flags & DMCE_MSMP_MAP_FD) || fd < 0))
        r = -EPROTO;
    struct stat sb;
    if (r == 0 && (fstat(fd, &sb) < 0 || (uint64_t)sb.st_size < rs.block_size))
        r = -EPROTO; /* the object must be as large as the daemon says */
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return r;
    }
    struct dmce_blk *b = calloc(1, sizeof(*b));
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    b->id = id;
    b->daemon = d;
    b->fd = fd;
    b->size = rs.block_size;
    b->data_offset = rs.data_offset;
    b->page_size = rs.page_size;

    pthread_mutex_lock(&c->map_lock);
    struct dmce_blk *have = atomic_load(&c->blocks[id]);
    if (r == 0 && !have)
        r = watcher_start_locked(c);
    if (r == 0 && !have) {
        atomic_store_explicit(&c->blocks[id], b, memory_order_release);
        atomic_fetch_add(&c->st_blocks_opened, 1);
    }
    pthread_mutex_unlock(&c->map_lock);
    if (r < 0 || have) { /* lost a race with another thread: use its entry */
        close(fd);
        free(b);
        b = have;
    }
    if (r < 0)
        return r;
    *out = b;
    return 0;
}

/*
 * The opened block holding addr, opening it if need be. Returns 1 when
 * addr is not a local address (the caller decides what that means).
 */
static int blk_for(struct dmce_client *c, dmce_addr_t addr, uint64_t len, struct dmce_blk **out,
                   uint64_t *cell)
{
    if (addr == DMCE_ADDR_NULL)
        return DMCE_ENULLADDR;
    dmce_addr_parts_t p;
    if (dmce_addr_decode(c->layout, addr, &p) < 0)
        return -EINVAL;
    if (p.server != DMCE_SERVER_LOCAL)
        return 1;
    if (p.block == 0)
        return DMCE_ENOBLOCK;
    struct dmce_blk *b = blk_get(c, p.block);
    if (b && c->owner && blk_moved(c, b, atomic_load_explicit(&c->owner[p.block],
                                                              memory_order_relaxed))) {
        dmce__map_check_block(c, p.block, atomic_load(&c->owner[p.block]));
        b = NULL; /* failed over: open it where it lives now */
    }
    if (!b) {
        int d = dmce__daemon_of_block(c, p.block);
        if (d < 0)
            return d;
        /* A daemon with no session of ours yet (it joined, or came back, since setup):
         * the map request needs one. */
        int r = dmce__ensure_session(c, &c->conn[d]);
        if (r == 0)
            r = block_open(c, (unsigned)d, addr, len, p.block, &b);
        if (r < 0)
            return r;
    }
    if (atomic_load_explicit(&c->conn[b->daemon].t.dead, memory_order_relaxed))
        return DMCE_ECLOSED;
    *out = b;
    *cell = p.cell;
    return 0;
}

/* ---- checking and copying through windows ------------------------------------------------ */

struct reader_ctx {
    struct dmce_client *c;
    struct dmce_blk *b;
};

/* dmce_block_reader_t over the cache: copy bytes of a block through windows. */
static int window_read(void *ctx, uint64_t off, void *dst, uint32_t len)
{
    struct reader_ctx *rc = ctx;
    dmce_cache_key_t key = {DMCE_SERVER_LOCAL, rc->b->id};
    uint8_t *d = dst;
    for (uint64_t done = 0; done < len;) {
        dmce_cache_ref_t ref;
        int r = dmce_cache_acquire(rc->c->cache, key, rc->b->size, off + done, len - done, 0, &ref);
        if (r < 0)
            return r == -ERANGE ? DMCE_ECORRUPT : r;
        memcpy(d + done, ref.ptr, (size_t)ref.len);
        done += ref.len;
        dmce_cache_release(rc->c->cache, &ref, 0, 0);
    }
    return 0;
}

/*
 * Check that [cell, cell+len) lies inside one live allocation of b, as the
 * daemon would. Whole-block windows check in place; smaller windows read
 * the few metadata bytes through the cache.
 */
static int range_check(struct dmce_client *c, struct dmce_blk *b, uint64_t cell, uint64_t len)
{
    if (c->window_size == 0) {
        dmce_cache_ref_t ref;
        int r = dmce_cache_acquire(c->cache, (dmce_cache_key_t){DMCE_SERVER_LOCAL, b->id}, b->size,
                                   0, b->size, 0, &ref);
        if (r < 0)
            return r;
        r = dmce_alloc_check(ref.ptr, cell, len);
        dmce_cache_release(c->cache, &ref, 0, 0);
        return r;
    }
    struct reader_ctx rc = {c, b};
    dmce_block_reader_t rd = {window_read, &rc};
    return dmce_alloc_check_via(&rd, b->size, cell, len, NULL);
}

/* Copy between buf and [cell, cell+len) of b, window by window. */
static int copy_through(struct dmce_client *c, struct dmce_blk *b, uint64_t cell, void *buf,
                        size_t len, int write)
{
    dmce_cache_key_t key = {DMCE_SERVER_LOCAL, b->id};
    uint8_t *u = buf;
    for (size_t done = 0; done < len;) {
        dmce_cache_ref_t ref;
        int r = dmce_cache_acquire(c->cache, key, b->size, cell + done, len - done,
                                   write ? DMCE_CACHE_WRITE : 0, &ref);
        if (r < 0)
            return r;
        if (write)
            memcpy(ref.ptr, u + done, (size_t)ref.len);
        else
            memcpy(u + done, ref.ptr, (size_t)ref.len);
        r = dmce_cache_release(c->cache, &ref, 0, write ? ref.len : 0);
        if (r < 0)
            return r;
        done += (size_t)ref.len;
    }
    return 0;
}

static int local_io(struct dmce_client *c, dmce_addr_t addr, void *buf, size_t len, int write)
{
    if (c->flags & DMCE_CONNECT_NO_MAP)
        return 1;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    if (!buf && len)
        return -EINVAL;
    struct dmce_blk *b;
    uint64_t cell;
    int r = blk_for(c, addr, len, &b, &cell);
    if (r != 0)
        return r;
    r = range_check(c, b, cell, len);
    if (r == 0 && len)
        r = copy_through(c, b, cell, buf, len, write);
    if (r == 0) {
        atomic_fetch_add_explicit(write ? &c->st_local_writes : &c->st_local_reads, 1,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(write ? &c->st_local_bytes_written : &c->st_local_bytes_read,
                                  len, memory_order_relaxed);
    }
    return r;
}

int dmce__local_read(struct dmce_client *c, dmce_addr_t addr, void *buf, size_t len)
{
    return local_io(c, addr, buf, len, 0);
}

int dmce__local_write(struct dmce_client *c, dmce_addr_t addr, const void *buf, size_t len)
{
    return local_io(c, addr, (void *)buf, len, 1);
}

/* ---- dmce_map and the DMCE Memory Mapping Table -------------------------------------------- */

int dmce_map(dmce_client_t *c, dmce_addr_t addr, size_t len, unsigned flags, void **out)
{
    if (!c || !out || len == 0 || flags)
        return -EINVAL;
    *out = NULL;
    if (c->flags & DMCE_CONNECT_NO_MAP)
        return -ENOTSUP;
    if (!c->set_up)
        return DMCE_ENOSETUP;
    struct dmce_blk *b = NULL;
    uint64_t cell = 0;
    struct dmce_retry st = {0};
    int r;
    do { /* a dead primary: wait for its failover and map the promoted copy */
        r = blk_for(c, addr, len, &b, &cell);
        if (r == 1)
            return DMCE_ENOSERVER; /* only local memory can be mapped */
        if (r == 0)
            r = range_check(c, b, cell, len);
    } while (r < 0 && dmce__disp_retry(c, addr, &r, &st));
    if (r < 0)
        return r;
    struct dmce_mapping m = {.len = len, .addr = addr};
    r = dmce_cache_acquire(c->cache, (dmce_cache_key_t){DMCE_SERVER_LOCAL, b->id}, b->size, cell,
                           len, DMCE_CACHE_CONTIG | DMCE_CACHE_WRITE, &m.ref);
    if (r < 0)
        return r;
    m.ptr = m.ref.ptr;
    pthread_mutex_lock(&c->map_lock);
    if (c->nmaps == c->maps_cap) {
        size_t cap = c->maps_cap ? 2 * c->maps_cap : 16;
        struct dmce_mapping *p = realloc(c->maps, cap * sizeof(*p));
        if (!p)
            r = -ENOMEM;
        else {
            c->maps = p;
            c->maps_cap = cap;
        }
    }
    if (r == 0)
        c->maps[c->nmaps++] = m;
    pthread_mutex_unlock(&c->map_lock);
    if (r < 0) {
        dmce_cache_release(c->cache, &m.ref, 0, 0);
        return r;
    }
    *out = m.ptr;
    return 0;
}

int dmce_unmap(dmce_client_t *c, void *ptr)
{
    if (!c || !ptr)
        return -EINVAL;
    struct dmce_mapping m = {0};
    int found = 0;
    pthread_mutex_lock(&c->map_lock);
    for (size_t i = 0; i < c->nmaps; i++) {
        if (c->maps[i].ptr == ptr) {
            m = c->maps[i];
            c->maps[i] = c->maps[--c->nmaps];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&c->map_lock);
    if (!found)
        return DMCE_ENOTMAPPED;
    dmce_cache_release(c->cache, &m.ref, 0, 0);
    return 0;
}

int dmce_addr_of(dmce_client_t *c, const void *ptr, dmce_addr_t *out)
{
    if (!c || !out)
        return -EINVAL;
    const uint8_t *p = ptr;
    int r = DMCE_ENOTMAPPED;
    pthread_mutex_lock(&c->map_lock);
    for (size_t i = 0; i < c->nmaps; i++) {
        const struct dmce_mapping *m = &c->maps[i];
        if (p >= m->ptr && p < m->ptr + m->len) {
            r = dmce_addr_add(c->layout, m->addr, (uint64_t)(p - m->ptr), out);
            break;
        }
    }
    pthread_mutex_unlock(&c->map_lock);
    return r;
}

int dmce_flush(dmce_client_t *c)
{
    if (!c)
        return -EINVAL;
    return dmce_cache_flush(c->cache, NULL);
}

int dmce_client_stats(dmce_client_t *c, dmce_client_stats_t *out)
{
    if (!c || !out)
        return -EINVAL;
    dmce_cache_stats_t cs;
    dmce_cache_stats(c->cache, &cs);
    memset(out, 0, sizeof(*out));
    out->local_reads = atomic_load(&c->st_local_reads);
    out->local_writes = atomic_load(&c->st_local_writes);
    out->local_bytes_read = atomic_load(&c->st_local_bytes_read);
    out->local_bytes_written = atomic_load(&c->st_local_bytes_written);
    out->msmp_reads = atomic_load(&c->st_msmp_reads);
    out->msmp_writes = atomic_load(&c->st_msmp_writes);
    out->blocks_opened = atomic_load(&c->st_blocks_opened);
    pthread_mutex_lock(&c->map_lock);
    out->maps_active = c->nmaps;
    pthread_mutex_unlock(&c->map_lock);
    out->window_hits = cs.hits;
    out->window_misses = cs.misses;
    out->window_evictions = cs.evictions;
    out->windows = cs.windows;
    out->bytes_mapped = cs.bytes_mapped;
    out->window_size = c->window_size;
    out->max_windows = c->max_windows;
    out->failovers = atomic_load(&c->st_failovers);
    return 0;
}
