/*
 * memd_server.c - the memory daemon's engine (see memd_server.h).
 *
 * Threads. N worker threads each run an epoll loop; the listening socket is
 * in every worker's epoll with EPOLLEXCLUSIVE, so whichever worker wakes
 * accepts, and then owns that connection for its whole life: a connection
 * is touched by one thread only. Sockets are non-blocking, each connection
 * has its own input state and output buffer, and a worker handles at most
 * DMCE_MEMD_BATCH frames of one connection before looking at the others.
 * A client that does not read its replies stops being read once
 * DMCE_MEMD_OUT_HIGH bytes are pending (backpressure), so a slow, stuck or
 * dead client never stalls anyone else and cannot make the daemon buffer
 * without bound. The main
 * thread only runs the periodic tick (grace-period expiry) and signals.
 *
 * The Block ID Lookup Table (struct memd_table) is an array indexed by
 * block ID - block_first, published as rcu_assign_pointer does. The request
 * path reads it inside rcu_read_lock() and never takes a lock to find a
 * block; growth copies the table, publishes the copy and frees the old one
 * after a grace period. A block's memory stays mapped until shutdown, so a
 * reader can never touch unmapped memory. Each block's allocator state is
 * changed under that block's mutex (malloc, free); reads and writes check
 * the address against the in-block map without the mutex. A read racing a
 * free of the same allocation by another client may return bytes of the
 * freed memory; it can never reach outside the block.
 *
 * Sessions (the connection session table, seed 002 FIG. 13) live in one
 * list under sess_lock, with the reservation accounting: each session
 * commits max(reserved, used) bytes and the sum never exceeds capacity.
 * A connection that drops without disconnect leaves an orphaned session
 * whose reservation is released at once and whose allocations are kept
 * for grace_ms, so a restarted process can reattach with its token; after
 * that the tick frees them.
 *
 * Every allocation carries its session ID as owner tag inside the block,
 * so the state needed to clean up lives with the data.
 */
#include "memd_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include <dmce/addr.h>
#include <dmce/client.h>
#include <dmce/error.h>

#include "alloc.h"
#include "log.h"
#include "memd_internal.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"
#include "msmp.h"
#include "topology.h"
#include "transport_ring.h"
#include "util.h"

/* ---- config table -------------------------------------------------------------- */

static const char *const layout_names[] = {"12-12-40", "16-16-32", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(dmce_memd_config_t, f)
const dmce_config_def_t dmce_memd_config_defs[] = {
    {"id", DMCE_CFG_INT, OFF(id), "1", 1, 4095, NULL, "daemon ID on this host, unique per cluster"},
    {"runtime_dir", DMCE_CFG_STRING, OFF(runtime_dir), "", 0, 0, NULL,
     "private runtime directory (sockets, lock files); default $DMCE_RUNTIME_DIR or /run/dmce-UID"},
    {"socket", DMCE_CFG_STRING, OFF(socket), "", 0, 0, NULL,
     "socket path; default RUNTIME_DIR/memd-ID.sock"},
    {"cluster", DMCE_CFG_STRING, OFF(cluster), "", 0, 0, NULL,
     "cluster name used in shm object names; default a hash of the runtime dir"},
    {"block_size", DMCE_CFG_SIZE, OFF(block_size), "64M", 1 << 20, 1ll << 40, NULL,
     "bytes per shared-memory block"},
    {"blocks_initial", DMCE_CFG_INT, OFF(blocks_initial), "1", 1, 4096, NULL,
     "blocks the daemon has at start, counting those recovery brings back (at least 1; more "
     "are created on demand)"},
    {"max_blocks", DMCE_CFG_INT, OFF(max_blocks), "16", 1, 4096, NULL,
     "blocks this daemon may create (capacity = max_blocks x block_size)"},
    {"block_first", DMCE_CFG_INT, OFF(block_first), "0", 0, 65535, NULL,
     "first block ID of this daemon; 0 = (id-1) x max_blocks + 1"},
    {"granule", DMCE_CFG_SIZE, OFF(granule), "128", DMCE_GRANULE_MIN, DMCE_GRANULE_MAX, NULL,
     "allocation granule in bytes (power of two)"},
    {"page_size", DMCE_CFG_SIZE, OFF(page_size), "4K", 4096, 1 << 30, NULL,
     "page size of blocks: 4K, or 2M for transparent huge pages"},
    {"numa_node", DMCE_CFG_INT, OFF(numa_node), "-1", -1, 1023, NULL,
     "NUMA node for memory and threads; -1 = (id-1) mod nodes"},
    {"topology", DMCE_CFG_STRING, OFF(topology), "", 0, 0, NULL,
     "synthetic hwloc topology (tests); empty = this machine"},
    {"layout", DMCE_CFG_ENUM, OFF(layout), "12-12-40", 0, 0, layout_names,
     "DMCE address layout of the cluster"},
    {"max_payload", DMCE_CFG_SIZE, OFF(max_payload), "1M", 4096, DMCE_MSMP_PAYLOAD_LIMIT, NULL,
     "largest MSMP payload accepted"},
    {"grace_ms", DMCE_CFG_INT, OFF(grace_ms), "30000", 0, 86400000, NULL,
     "how long a dropped client's allocations are kept for reattach"},
    {"workers", DMCE_CFG_INT, OFF(workers), "2", 1, DMCE_MEMD_MAX_WORKERS, NULL,
     "worker threads serving clients"},
    {"max_clients", DMCE_CFG_INT, OFF(max_clients), "1024", 1, 1000000, NULL,
     "connections accepted at once"},
    {"max_session_bytes", DMCE_CFG_SIZE, OFF(max_session_bytes), "0", 0, 0, NULL,
     "most bytes one session (client) may reserve or allocate on this daemon; 0 = no limit "
     "but the daemon's capacity"},
    {"frame_timeout_ms", DMCE_CFG_INT, OFF(frame_timeout_ms), "10000", 0, 3600000, NULL,
     "a connection that leaves a request half sent this long is closed (a stalled or "
     "slow-drip client); 0 = never"},
    {"prefault", DMCE_CFG_BOOL, OFF(prefault), "yes", 0, 0, NULL,
     "fault in every page of a new block in a background thread, so that clients do not pay "
     "first-touch costs"},
    {"spare_blocks", DMCE_CFG_INT, OFF(spare_blocks), "2", 0, 16, NULL,
     "objects of block_size the daemon allocates ahead of need, in free block slots only, "
     "so that a new block or a mirror copy for a peer does not wait for its memory (0 = "
     "none)"},
    {"mirror_keep_ms", DMCE_CFG_INT, OFF(mirror_keep_ms), "10000", 0, 3600000, NULL,
     "when a mirror's holder dies, keep writing the copy it held this long, so that another "
     "daemon can take it over without copying a byte (0 = drop it at once; every re-mirror "
     "copies)"},
    {"shm_dir", DMCE_CFG_STRING, OFF(shm_dir), "", 0, 0, NULL,
     "directory on a tmpfs or hugetlbfs mount for the block files; empty = POSIX shm "
     "(/dev/shm). A tmpfs mounted with huge=within_size gives blocks 2 MiB pages"},
    {"rings", DMCE_CFG_BOOL, OFF(rings), "yes", 0, 0, NULL,
     "offer local clients the shared-memory ring transport (else sockets only)"},
    {"ring_capacity", DMCE_CFG_SIZE, OFF(ring_capacity), "256K", 4096, 16 << 20, NULL,
     "bytes per ring (a power of two) when the client asks for the default"},
    {"spin_us", DMCE_CFG_INT, OFF(spin_us), "50", 0, 10000, NULL,
     "how long a worker, and a client waiting on a ring, may poll before sleeping, when "
     "there are enough CPUs for every active spinner (0 = never spin)"},
    {"turn_us", DMCE_CFG_INT, OFF(turn_us), "1000", 0, 20000, NULL,
     "when ring clients and the workers serving them outnumber the CPUs, the daemons of the "
     "runtime dir serve them in turns of this long: one client and its worker poll, the "
     "others sleep until their turn (0 = never take turns)"},
    {"dispatcher", DMCE_CFG_STRING, OFF(dispatcher), "", 0, 0, NULL,
     "the dispatcher's socket; empty = RUNTIME_DIR/dispatcher.sock when it exists (else run "
     "alone, and register when one appears); none = never"},
    {"backup_dir", DMCE_CFG_STRING, OFF(backup_dir), "", 0, 0, NULL,
     "where block backups go: this daemon's set is backup_dir/memd-ID (docs/backup.md); empty "
     "= no backups but to a directory dmcectl names"},
    {"backup_interval_s", DMCE_CFG_INT, OFF(backup_interval_s), "0", 0, 86400 * 7, NULL,
     "back up every block this often (the pages changed since the last backup); 0 = only when "
     "asked (dmcectl backup)"},
    {"recover", DMCE_CFG_BOOL, OFF(recover), "no", 0, 0, NULL,
     "at start, bring the blocks of backup_dir/memd-ID back under their DMCE addresses; with "
     "no, a daemon whose set holds blocks refuses to start rather than ignore them"},
    {"recover_grace_ms", DMCE_CFG_INT, OFF(recover_grace_ms), "3600000", 0, 86400000 * 30ll, NULL,
     "how long allocations brought back by recovery or restore wait for their client to "
     "reattach (setup with its token) before they are freed"},
    {"log_level", DMCE_CFG_ENUM, OFF(log_level), "info", 0, 0, level_names,
     "error, warn, info or debug"},
};
#undef OFF
const size_t dmce_memd_config_ndefs = DMCE_ARRAY_LEN(dmce_memd_config_defs);

/* ---- blocks ----------------------------------------------------------------------- */

/*
 * The table pointer is published with a release store and read with an
 * acquire load (what rcu_assign_pointer / rcu_dereference promise, in C11
 * terms ThreadSanitizer sees: a table and the blocks in it are whole
 * before a reader finds them). liburcu still provides the grace periods.
 */
struct memd_table *memd_table_get(struct dmce_memd *m)
{
    return __atomic_load_n(&m->table, __ATOMIC_ACQUIRE);
}

const char *memd_obj_dir(const struct dmce_memd *m)
{
    return m->cfg.shm_dir[0] ? m->cfg.shm_dir : "/dev/shm";
}

int memd_obj_path(const struct dmce_memd *m, const char *name, char *buf, size_t len)
{
    /* A POSIX shm name is "/NAME" under /dev/shm; with shm_dir, the name is the path. */
    int n = snprintf(buf, len, "%s%s", m->cfg.shm_dir[0] ? "" : "/dev/shm", name);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int memd_daemon_prefix(const struct dmce_memd *m, uint32_t daemon, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/dmce.%u.%s.m%u.", m->cfg.shm_dir, (unsigned)geteuid(),
                     m->cfg.cluster, daemon);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void memd_block_name(const struct dmce_memd *m, uint32_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%sb%u", m->shm_prefix, id);
}

/* The block's object: a POSIX shm object, or a file in shm_dir. */
static int block_obj_open(struct dmce_memd *m, const char *name)
{
    if (m->cfg.shm_dir[0])
        return open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    return shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

int memd_obj_unlink(const struct dmce_memd *m, const char *name)
{
    return m->cfg.shm_dir[0] ? unlink(name) : shm_unlink(name);
}

/* Queue a new block for the prefault thread. */
static void prefault_enqueue(struct dmce_memd *m, struct memd_block *b)
{
    if (!m->cfg.prefault)
        return;
    pthread_mutex_lock(&m->pf_lock);
    b->prefault_next = NULL;
    struct memd_block **pp = &m->pf_queue;
    while (*pp)
        pp = &(*pp)->prefault_next;
    *pp = b;
    atomic_fetch_add(&m->pf_pending, b->size);
    pthread_cond_signal(&m->pf_cond);
    pthread_mutex_unlock(&m->pf_lock);
}

/*
 * Map b->fd (b->size bytes), place it on the daemon's node (move: pages
 * it already has move there, for a block taken over), init the locks.
 */
static int block_map(struct dmce_memd *m, struct memd_block *b, int move)
{
    b->base = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
    if (b->base == MAP_FAILED) {
        int r = -errno;
        LOG_ERROR("block %u: mmap failed: %s", b->id, strerror(errno));
        return r;
    }
    if (m->cfg.page_size >= (2u << 20))
        (void)madvise(b->base, b->size, MADV_HUGEPAGE); /* best effort: THP for shmem */
    int r = dmce_numa_bind_memory(b->base, b->size, m->numa_node, move);
    if (r < 0)
        LOG_WARN("block %u: binding to NUMA node %d failed: %s; memory left unbound", b->id,
                 m->numa_node, strerror(-r));
    pthread_mutex_init(&b->lock, NULL);
    for (unsigned i = 0; i < MEMD_STRIPES; i++)
        pthread_mutex_init(&b->stripes[i], NULL);
    return 0;
}

int memd_block_from_fd(struct dmce_memd *m, uint32_t id, int fd, uint64_t size,
                       struct memd_block **out)
{
    struct memd_block *b = calloc(1, sizeof(*b));
    struct stat st;
    int r = !b ? -ENOMEM : fstat(fd, &st) < 0 ? -errno : (uint64_t)st.st_size < size ? -EPROTO : 0;
    if (r == 0) {
        b->id = id;
        b->fd = fd;
        b->size = size;
        b->role = MEMD_PRIMARY;
        memd_block_name(m, id, b->name, sizeof(b->name));
        r = block_map(m, b, 1);
    }
    if (r < 0) {
        LOG_ERROR("block %u: cannot take over its object: %s", id, strerror(-r));
        close(fd);
        free(b);
        return r;
    }
    *out = b;
    return 0;
}

/*
 * Create, size, place and format one block. Caller holds grow_lock.
 * The object is fallocate()d: its memory exists from now on, so a client
 * touching a mapped page can never get SIGBUS from a full tmpfs. tmpfs
 * zeroes such pages at their first fault, which the prefault thread then
 * takes in the background (or the first process to touch them).
 */
int memd_block_create(struct dmce_memd *m, uint32_t id, uint64_t size, int format,
                      struct memd_block **out)
{
    struct memd_block *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->id = id;
    b->size = size;
    b->role = format ? MEMD_PRIMARY : MEMD_MIRROR;
    memd_block_name(m, id, b->name, sizeof(b->name));
    int r;
    b->fd = memd_spare_take(m, size, b->name); /* allocated ahead of need, if there is one */
    if (b->fd < 0) {
        b->fd = block_obj_open(m, b->name);
        if (b->fd < 0) {
            r = -errno;
            LOG_ERROR("block %u: cannot create %s: %s", id, b->name, strerror(errno));
            memd_spare_unreserve(m);
            free(b);
            return r;
        }
        char what[64];
        snprintf(what, sizeof(what), "block %u", id);
        r = memd_obj_size(m, b->fd, b->size, what);
        if (r == -EOPNOTSUPP)
            LOG_WARN("block %u: %s cannot be preallocated; a full tmpfs would fault clients", id,
                     b->name);
        else if (r < 0)
            goto fail_unlink;
    }
    r = block_map(m, b, 0);
    if (r < 0)
        goto fail_unlink;
    /* A fresh, fallocate()d object reads as zeroes: say so, and allocations skip clearing. */
    r = format ? dmce_block_format(b->base, b->size, (uint32_t)m->cfg.granule,
                                   (uint32_t)m->cfg.page_size, id, DMCE_BLOCK_ZEROED)
               : 0; /* a mirror: zero until its primary copies itself in */
    if (r < 0) {
        LOG_ERROR("block %u: format failed: %s", id, dmce_strerror(r));
        goto fail_unmap;
    }
    memd_spare_created(m, b); /* its slot is taken from now on */
    LOG_INFO("block %u created%s: %s, %llu bytes, NUMA node %d", id, format ? "" : " unformatted (a copy to fill)",
             b->name, (unsigned long long)b->size, m->numa_node);
    *out = b;
    return 0;
fail_unmap:
    munmap(b->base, b->size);
fail_unlink:
    memd_obj_unlink(m, b->name);
    close(b->fd);
    memd_spare_unreserve(m);
    free(b);
    return r;
}

void memd_block_destroy(struct dmce_memd *m, struct memd_block *b)
{
    memd_spare_forget(m, b);
    struct memd_mirror *mr = atomic_load(&b->mirror);
    memd_mirror_forget_kept(m, b); /* a kept copy (its holder gone): its handover name goes */
    if (mr) { /* our mapping of a peer's copy: the peer owns the object */
        munmap(mr->base, b->size);
        close(mr->fd);
        free(mr);
    }
    munmap(b->base, b->size);
    close(b->fd);
    if (!b->handed_off && memd_obj_unlink(m, b->name) < 0)
        LOG_WARN("block %u: cannot remove %s: %s", b->id, b->name, strerror(errno));
    pthread_mutex_destroy(&b->lock);
    for (unsigned i = 0; i < MEMD_STRIPES; i++)
        pthread_mutex_destroy(&b->stripes[i]);
    free(b);
}

/*
 * The prefault thread: fault in every page of each queued block, 256 KiB
 * at a time, so that the first-touch cost (page zeroing, ~0.4 GB/s on the
 * reference machine) is paid here, once, and not by a client's first
 * access. Blocks are never freed before the daemon stops, and stop joins
 * this thread first.
 *
 * Priority: nice 19, not SCHED_IDLE. MADV_POPULATE_WRITE holds the
 * process's mmap lock; a SCHED_IDLE thread on a busy machine can be left
 * without CPU while holding it, and then every mmap, munmap and page fault
 * of the daemon waits behind it: member pulses stop, the dispatcher
 * declares the daemon dead (seen in the failover test: 300 ms stalls, and
 * a SIGKILL that took 300 ms to land). A small step bounds how long one
 * call holds the lock.
 */
static void *prefault_main(void *arg)
{
    struct dmce_memd *m = arg; /* runs on the daemon's node: affinity inherited from start */
    /* The lowest normal priority: requests rarely wait behind page zeroing. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
        LOG_DEBUG("prefault thread: nice 19 refused; it runs at normal priority");
    pthread_mutex_lock(&m->pf_lock);
    for (;;) {
        while (!m->pf_queue && !atomic_load(&m->stop))
            pthread_cond_wait(&m->pf_cond, &m->pf_lock);
        if (atomic_load(&m->stop))
            break;
        struct memd_block *b = m->pf_queue;
        m->pf_queue = b->prefault_next;
        m->pf_current = b; /* a handoff waits for it (memd_migrate.c) */
        pthread_mutex_unlock(&m->pf_lock);
        uint64_t t0 = dmce_now_ns();
        const uint64_t step = 256u << 10;
        uint64_t done = 0;
        int warned = 0;
        for (uint64_t off = 0; off < b->size && !atomic_load(&m->stop); off += step) {
            uint64_t n = DMCE_MIN(step, b->size - off);
            if (madvise((uint8_t *)b->base + off, n, MADV_POPULATE_WRITE) < 0 && !warned) {
                LOG_WARN("block %u: prefault: %s; clients will take first-touch faults", b->id,
                         strerror(errno));
                warned = 1;
            }
            done += n;
            atomic_fetch_sub(&m->pf_pending, n);
            STAT_ADD(m, DMCE_STAT_PREFAULTED, n);
        }
        atomic_fetch_sub(&m->pf_pending, b->size - done);
        LOG_DEBUG("block %u prefaulted: %llu bytes in %.3f s", b->id, (unsigned long long)done,
                  (double)(dmce_now_ns() - t0) / 1e9);
        pthread_mutex_lock(&m->pf_lock);
        m->pf_current = NULL;
    }
    pthread_mutex_unlock(&m->pf_lock);
    return NULL;
}

uint32_t memd_nids(const struct dmce_memd *m)
{
    dmce_layout_info_t li;
    dmce_layout_info(m->layout, &li);
    return 1u << li.block_bits;
}

/* A table with room for every block ID and max_blocks list entries, copied from old (or empty). */
static struct memd_table *table_copy(struct dmce_memd *m, const struct memd_table *old)
{
    uint32_t nids = memd_nids(m);
    size_t sz = sizeof(struct memd_table) + (size_t)nids * sizeof(struct memd_block *) +
                (size_t)m->cfg.max_blocks * sizeof(struct memd_block *);
    struct memd_table *t = calloc(1, sz);
    if (!t)
        return NULL;
    t->nids = nids;
    t->list = &t->by_id[nids];
    if (old) {
        memcpy(t->by_id, old->by_id, (size_t)nids * sizeof(t->by_id[0]));
        memcpy(t->list, old->list, (size_t)old->count * sizeof(t->list[0]));
        t->count = old->count;
    }
    return t;
}

/* Publish nt and free the old table after a grace period. grow_lock held. */
static void table_publish_locked(struct dmce_memd *m, struct memd_table *nt,
                                 struct memd_block *added)
{
    struct memd_table *old = m->table;
    __atomic_store_n(&m->table, nt, __ATOMIC_RELEASE); /* rcu_assign_pointer (memd_table_get) */
    memd_spare_blocks_changed(m, nt->count, added);
    synchronize_rcu();
    free(old);
}

void memd_usage(struct dmce_memd *m, uint64_t *used, uint64_t *free_bytes)
{
    uint64_t u_sum = 0, f_sum = 0, primaries = 0, copies = 0;
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m); /* NULL for a pulse before the start made it */
    for (uint32_t i = 0; t && i < t->count; i++) {
        struct memd_block *b = t->list[i];
        if (b->role != MEMD_PRIMARY) {
            copies++;
            continue;
        }
        dmce_block_usage_t u;
        memd_block_usage_nowait(b, &u);
        primaries++;
        u_sum += u.used_bytes;
        f_sum += u.free_bytes;
    }
    rcu_read_unlock();
    uint64_t room = (uint64_t)m->cfg.max_blocks - DMCE_MIN((uint64_t)m->cfg.max_blocks,
                                                           primaries + copies);
    *used = u_sum;
    *free_bytes = f_sum + room * m->block_data_bytes;
}

void memd_block_usage_nowait(struct memd_block *b, dmce_block_usage_t *u)
{
    if (pthread_mutex_trylock(&b->lock) == 0) { /* usage walks the free lists: not under a malloc */
        dmce_block_usage(b->base, u);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    const volatile dmce_block_hdr_t *h = b->base;
    memset(u, 0, sizeof(*u));
    u->size = h->size;
    u->data_bytes = (uint64_t)h->ngranules * h->granule;
    u->free_bytes = (uint64_t)h->free_granules * h->granule;
    u->used_bytes = h->used_bytes;
    u->nallocs = h->nallocs;
}

int memd_table_add_locked(struct dmce_memd *m, struct memd_block *b)
{
    if (m->table->count >= (uint32_t)m->cfg.max_blocks || b->id >= m->table->nids ||
        m->table->by_id[b->id])
        return DMCE_ENOMEM;
    struct memd_table *nt = table_copy(m, m->table);
    if (!nt)
        return -ENOMEM;
    nt->by_id[b->id] = b;
    nt->list[nt->count++] = b;
    table_publish_locked(m, nt, b);
    return 0;
}

int memd_table_remove_locked(struct dmce_memd *m, struct memd_block *b)
{
    struct memd_table *nt = table_copy(m, m->table);
    if (!nt)
        return -ENOMEM;
    nt->by_id[b->id] = NULL;
    for (uint32_t i = 0; i < nt->count; i++) {
        if (nt->list[i] == b) {
            nt->list[i] = nt->list[--nt->count];
            break;
        }
    }
    table_publish_locked(m, nt, NULL);
    return 0;
}

/*
 * Create a new primary block if there is room: the lowest free ID of this
 * daemon's range. Must not be called inside an RCU read-side section.
 * Returns 0 when a block was added (or another thread added one meanwhile:
 * the count changed), DMCE_ENOMEM when the daemon holds max_blocks.
 */
static int table_grow(struct dmce_memd *m, uint32_t seen_count)
{
    pthread_mutex_lock(&m->grow_serial);
    /*
     * An ID of our range may name a block that lives on another daemon now
     * (moved there, or restored there): the directory says which. Asked
     * before grow_lock (a round trip); without a dispatcher nothing moves.
     */
    uint16_t *elsewhere = NULL;
    if (memd_disp_primaries(m, m->table->nids, &elsewhere) < 0)
        elsewhere = NULL;
    pthread_mutex_lock(&m->grow_lock);
    struct memd_table *t = m->table; /* stable: only changed under grow_lock */
    int r = 0;
    uint32_t id = 0;
    if (t->count != seen_count)
        goto out; /* someone grew it meanwhile: retry */
    r = DMCE_ENOMEM;
    if (t->count >= (uint32_t)m->cfg.max_blocks)
        goto out;
    /* Without the directory (no dispatcher answers), an ID we handed off stays taken. */
    for (uint32_t i = m->block_first; i <= m->block_last && !id; i++)
        if (!t->by_id[i] &&
            !(elsewhere ? elsewhere[i] && elsewhere[i] != (uint32_t)m->cfg.id
                        : m->moved_away && m->moved_away[i]))
            id = i;
    if (!id)
        goto out; /* every ID of the range names a block somewhere (mirrors, failovers) */
    struct memd_block *b;
    r = memd_block_create(m, id, m->cfg.block_size, 1, &b);
    if (r < 0)
        goto out;
    /*
     * Mirrored before any allocation in it is handed out (if the cluster
     * mirrors), without grow_lock: see grow_serial.
     */
    pthread_mutex_unlock(&m->grow_lock);
    int peer = memd_disp_mirror_new_block(m, b);
    pthread_mutex_lock(&m->grow_lock);
    r = memd_table_add_locked(m, b);
    if (r < 0) { /* no memory for the new table: the block and its mirror go */
        LOG_WARN("new block %u not published: %s", id, dmce_strerror(r));
        pthread_mutex_unlock(&m->grow_lock); /* a round trip to the peer */
        memd_mirror_abandon(m, b);
        pthread_mutex_lock(&m->grow_lock);
        memd_block_destroy(m, b);
        /* The dispatcher may know it already (from mirror_peer): it forgets it. */
        memd_disp_event(m, id, DMCE_DISP_EV_GONE, 0, 0);
        goto out;
    }
    prefault_enqueue(m, b);
    memd_disp_event(m, b->id, DMCE_DISP_EV_CREATED, 0, 0);
    if (peer > 0)
        memd_disp_event(m, b->id, DMCE_DISP_EV_MIRRORED, (uint32_t)peer, 0);
out:
    pthread_mutex_unlock(&m->grow_lock);
    if (id)
        memd_disp_flush_events(m); /* the dispatcher knows it before it is used (or forgets it) */
    pthread_mutex_unlock(&m->grow_serial);
    free(elsewhere);
    return r;
}

/*
 * Resolve a DMCE address to a block and cell. Inside rcu_read_lock().
 */
int memd_resolve(struct dmce_memd *m, dmce_addr_t addr, struct memd_block **b, uint64_t *cell)
{
    if (addr == DMCE_ADDR_NULL)
        return DMCE_ENULLADDR;
    dmce_addr_parts_t p;
    dmce_addr_decode(m->layout, addr, &p);
    if (p.server != DMCE_SERVER_LOCAL)
        return DMCE_ENOSERVER;
    struct memd_table *t = memd_table_get(m);
    struct memd_block *blk = p.block < t->nids ? t->by_id[p.block] : NULL;
    if (!blk)
        return DMCE_ENOBLOCK;
    if (atomic_load_explicit(&blk->frozen, memory_order_acquire))
        return DMCE_EMOVING; /* handed off: the new owner serves it in a moment */
    if (p.cell >= blk->size)
        return DMCE_EBADADDR;
    *b = blk;
    *cell = p.cell;
    return 0;
}

int memd_resolve_primary(struct dmce_memd *m, dmce_addr_t addr, struct memd_block **b,
                         uint64_t *cell)
{
    int r = memd_resolve(m, addr, b, cell);
    if (r == 0 && (*b)->role != MEMD_PRIMARY)
        return DMCE_ENOBLOCK; /* a copy kept for another daemon: ask the primary */
    return r;
}

/* ---- sessions ------------------------------------------------------------------------ */

static uint64_t charge(const struct memd_session *s)
{
    return DMCE_MAX(s->reserved, s->used);
}

/* Change a session's reserved/used and keep `committed` exact. sess_lock held. */
void memd_sess_account_locked(struct dmce_memd *m, struct memd_session *s, uint64_t reserved,
                              uint64_t used)
{
    m->committed -= charge(s);
    s->reserved = reserved;
    s->used = used;
    m->committed += charge(s);
}

/*
 * A session for allocations whose client is not here (a promoted mirror's
 * owners): orphaned from the start, so it ends after grace_ms unless its
 * client sets up with this session ID. NULL when out of memory.
 */
struct memd_session *memd_sess_orphan_locked(struct dmce_memd *m, uint32_t id)
{
    struct memd_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->id = id;
    s->uid = geteuid();
    s->orphan_deadline = dmce_now_ms() + (uint64_t)m->cfg.grace_ms;
    s->next = m->sessions;
    m->sessions = s;
    m->nsessions++;
    m->norphans++;
    return s;
}

struct memd_session *memd_sess_by_id_locked(struct dmce_memd *m, uint32_t id)
{
    for (struct memd_session *s = m->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void sess_unlink_locked(struct dmce_memd *m, struct memd_session *s)
{
    for (struct memd_session **pp = &m->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    m->committed -= charge(s);
    m->nsessions--;
    if (!s->conn)
        m->norphans--;
}

/* Free every allocation of session `id` in every block. Not under sess_lock. */
static uint64_t free_owner_everywhere(struct dmce_memd *m, uint32_t id, int *count)
{
    uint64_t bytes = 0;
    int n = 0;
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    for (uint32_t i = 0; i < t->count; i++) {
        struct memd_block *b = t->list[i];
        if (b->role != MEMD_PRIMARY)
            continue; /* a copy: its primary frees there and here */
        pthread_mutex_lock(&b->lock);
        /* a block handed off: its allocations are the new owner's to free */
        int k = atomic_load(&b->frozen) ? 0 : dmce_alloc_free_owner(b->base, id, &bytes);
        if (k > 0)
            memd_mirror_after_free_owner(m, b, id, k);
        pthread_mutex_unlock(&b->lock);
        if (k > 0)
            n += k;
    }
    rcu_read_unlock();
    if (count)
        *count = n;
    return bytes;
}

/* End a session: free its allocations, drop it. */
static void sess_end(struct dmce_memd *m, struct memd_session *s, const char *why)
{
    pthread_mutex_lock(&m->sess_lock);
    sess_unlink_locked(m, s);
    pthread_mutex_unlock(&m->sess_lock);
    int n = 0;
    uint64_t bytes = free_owner_everywhere(m, s->id, &n);
    LOG_INFO("session %u ended (%s): freed %d allocations, %llu bytes", s->id, why, n,
             (unsigned long long)bytes);
    free(s);
}

/* ---- output -------------------------------------------------------------------------- */

/* Append a response header; the caller then appends `len` payload bytes. */
uint8_t *memd_reply_begin(struct memd_conn *c, const dmce_msmp_hdr_t *req, int status,
                          uint32_t len)
{
    uint8_t *p = dmce_outbuf_reply(&c->out, req, status, len);
    if (!p)
        c->closing = 1; /* out of memory: this connection goes */
    return p;
}

void memd_reply_error(struct dmce_memd *m, struct memd_conn *c, const dmce_msmp_hdr_t *req,
                        int err)
{
    STAT_ADD(m, DMCE_STAT_OPS_ERRORS, 1);
    LOG_DEBUG("client pid %d: %s request %llu failed: %s", (int)c->pid,
              dmce_msmp_op_name(req->op), (unsigned long long)req->req_id, dmce_strerror(err));
    memd_reply_begin(c, req, err, 0);
}

/* ---- operations ----------------------------------------------------------------------- */

static void op_setup(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_setup_req_t rq;
    int r = dmce_msmp_setup_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ESETUPDONE);
    if (rq.layout != UINT32_MAX && rq.layout != (uint32_t)m->layout)
        return memd_reply_error(m, c, &c->h, DMCE_ELAYOUT);
    static const uint8_t zero[DMCE_MSMP_TOKEN_LEN];
    if (dmce_ct_equal(rq.token, zero, sizeof(zero)))
        return memd_reply_error(m, c, &c->h, -EINVAL);

    pthread_mutex_lock(&m->sess_lock);
    struct memd_session *s = NULL;
    int take_over = 0;
    if (rq.session_id) {
        /*
         * A cluster-wide session: the same ID on every daemon. An orphaned one
         * is this client's (it dropped, or its allocations came here in a
         * promoted mirror with no token yet): take it over.
         */
        s = memd_sess_by_id_locked(m, rq.session_id);
        static const uint8_t none[DMCE_MSMP_TOKEN_LEN];
        int adopted = s && dmce_ct_equal(s->token, none, sizeof(none));
        if (s && (s->conn || (!adopted && !dmce_ct_equal(s->token, rq.token, sizeof(rq.token))))) {
            pthread_mutex_unlock(&m->sess_lock);
            return memd_reply_error(m, c, &c->h, -EEXIST);
        }
        if (s && adopted) {
            memcpy(s->token, rq.token, sizeof(s->token));
            s->uid = c->uid;
        }
        take_over = s != NULL;
    } else {
        for (struct memd_session *it = m->sessions; it; it = it->next)
            if (dmce_ct_equal(it->token, rq.token, sizeof(rq.token)) && it->uid == c->uid)
                s = it;
    }
    if (rq.flags & DMCE_SETUP_REATTACH) {
        if (!s || s->conn) {
            pthread_mutex_unlock(&m->sess_lock);
            return memd_reply_error(m, c, &c->h, DMCE_ETOKEN);
        }
    } else if (s && !take_over) {
        pthread_mutex_unlock(&m->sess_lock);
        return memd_reply_error(m, c, &c->h, -EEXIST);
    }
    uint64_t mine = s ? charge(s) : 0;
    uint64_t avail = m->capacity - DMCE_MIN(m->capacity, m->committed + m->mirror_bytes - mine);
    uint64_t used = s ? s->used : 0;
    uint64_t want = rq.amount, cap = m->cfg.max_session_bytes;
    if (cap && want > cap) {
        if (!(rq.flags & DMCE_SETUP_PARTIAL)) {
            pthread_mutex_unlock(&m->sess_lock);
            LOG_INFO("client pid %d: setup of %llu bytes refused: max_session_bytes is %llu",
                     (int)c->pid, (unsigned long long)want, (unsigned long long)cap);
            return memd_reply_error(m, c, &c->h, DMCE_EQUOTA);
        }
        want = cap;
    }
    if (want > avail) {
        if (!(rq.flags & DMCE_SETUP_PARTIAL) || avail == 0 || avail <= used) {
            pthread_mutex_unlock(&m->sess_lock);
            LOG_INFO("client pid %d: setup of %llu bytes refused (%llu available); disconnecting",
                     (int)c->pid, (unsigned long long)want, (unsigned long long)avail);
            memd_reply_error(m, c, &c->h, DMCE_ENOMEM);
            c->closing = 1; /* seed 002 FIG. 13: failure notice, then disconnect */
            return;
        }
        want = avail;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            pthread_mutex_unlock(&m->sess_lock);
            return memd_reply_error(m, c, &c->h, -ENOMEM);
        }
        if (rq.session_id) {
            s->id = rq.session_id;
        } else {
            do /* our own IDs stay below the cluster-wide ones */
                s->id = m->next_session_id++ & ~DMCE_SESSION_GLOBAL;
            while (s->id == 0 || memd_sess_by_id_locked(m, s->id));
        }
        memcpy(s->token, rq.token, sizeof(s->token));
        s->uid = c->uid;
        s->next = m->sessions;
        m->sessions = s;
        m->nsessions++;
    } else {
        m->norphans--;
        LOG_INFO("session %u reattached by pid %d", s->id, (int)c->pid);
    }
    s->conn = c;
    memd_sess_account_locked(m, s, want, s->used);
    c->sess = s;
    dmce_msmp_setup_resp_t rs = {.granted = want,
                                 .used = s->used,
                                 .session_id = s->id,
                                 .daemon_id = (uint32_t)m->cfg.id,
                                 .layout = (uint32_t)m->layout,
                                 .max_payload = (uint32_t)m->cfg.max_payload,
                                 .block_first = m->block_first,
                                 .block_last = m->block_last};
    pthread_mutex_unlock(&m->sess_lock);
    STAT_ADD(m, DMCE_STAT_OPS_SETUP, 1);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_SETUP_RESP_SIZE);
    if (out)
        dmce_msmp_setup_resp_encode(&rs, out);
}

/* Charge `size` to the session, or say why not. */
static int quota_take(struct dmce_memd *m, struct memd_session *s, uint64_t size)
{
    pthread_mutex_lock(&m->sess_lock);
    int r = 0;
    uint64_t used = s->used + size;
    /*
     * A cluster-wide session's reservation is spread over the daemons by
     * the client, not where the dispatcher's policy puts its allocations:
     * here it is a floor (room held for it), and more comes from free room.
     */
    if (s->reserved && used > s->reserved && !(s->id & DMCE_SESSION_GLOBAL))
        r = DMCE_EQUOTA;
    else if (m->cfg.max_session_bytes && used > m->cfg.max_session_bytes)
        r = DMCE_EQUOTA; /* the per-client limit, whatever the reservation */
    else if (m->committed + m->mirror_bytes - charge(s) + DMCE_MAX(s->reserved, used) >
             m->capacity)
        r = DMCE_ENOMEM; /* mirror copies held for others take their room too */
    else
        memd_sess_account_locked(m, s, s->reserved, used);
    pthread_mutex_unlock(&m->sess_lock);
    return r;
}

static void quota_give_back(struct dmce_memd *m, uint32_t owner, uint64_t size)
{
    pthread_mutex_lock(&m->sess_lock);
    struct memd_session *s = memd_sess_by_id_locked(m, owner);
    if (s)
        memd_sess_account_locked(m, s, s->reserved, s->used >= size ? s->used - size : 0);
    pthread_mutex_unlock(&m->sess_lock);
}

/* Try every created block; returns 0 and the address, or DMCE_ENOMEM. */
static int alloc_in_blocks(struct dmce_memd *m, uint64_t size, uint32_t owner, dmce_addr_t *addr,
                           uint32_t *nblocks)
{
    int r = DMCE_ENOMEM;
    uint32_t count = 0;
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    count = t->count;
    for (uint32_t i = 0; i < t->count && r != 0; i++) {
        struct memd_block *b = t->list[i];
        if (b->role != MEMD_PRIMARY)
            continue;
        uint64_t off;
        pthread_mutex_lock(&b->lock);
        int a = atomic_load(&b->frozen) ? DMCE_ENOMEM : dmce_alloc(b->base, size, owner, &off);
        if (a == 0)
            memd_mirror_after_alloc(m, b, size, owner, off);
        pthread_mutex_unlock(&b->lock);
        if (a == 0) {
            dmce_addr_encode(m->layout, DMCE_SERVER_LOCAL, b->id, off, addr);
            r = 0;
        }
    }
    rcu_read_unlock();
    *nblocks = count;
    return r;
}

static void op_malloc(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint64_t size;
    int r = dmce_msmp_u64_decode(p, len, &size);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    if (size == 0)
        return memd_reply_error(m, c, &c->h, -EINVAL);
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    uint64_t maxa = 0;
    for (uint32_t i = 0; i < t->count && !maxa; i++)
        if (t->list[i]->role == MEMD_PRIMARY)
            maxa = dmce_block_max_alloc(t->list[i]->base);
    if (!maxa) /* no primary yet (all copies): a new block's, as large as the first of ours */
        maxa = m->block_data_bytes - DMCE_ALLOC_HDR_SIZE;
    rcu_read_unlock();
    if (size > maxa)
        return memd_reply_error(m, c, &c->h, -EMSGSIZE);
    r = quota_take(m, c->sess, size);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    dmce_addr_t addr = 0;
    for (int tries = 0; tries < 4096; tries++) {
        uint32_t nblocks;
        r = alloc_in_blocks(m, size, c->sess->id, &addr, &nblocks);
        if (r == 0)
            break;
        r = table_grow(m, nblocks);
        if (r < 0)
            break;
    }
    if (r < 0) {
        quota_give_back(m, c->sess->id, size);
        return memd_reply_error(m, c, &c->h, r == -ENOMEM ? r : DMCE_ENOMEM);
    }
    STAT_ADD(m, DMCE_STAT_OPS_MALLOC, 1);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_U64_SIZE);
    if (out)
        dmce_msmp_u64_encode(addr, out);
}

static void op_read(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_rw_req_t rq;
    int r = dmce_msmp_read_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    if (rq.len > m->cfg.max_payload)
        return memd_reply_error(m, c, &c->h, -EMSGSIZE);
    rcu_read_lock();
    struct memd_block *b;
    uint64_t cell;
    r = memd_resolve_primary(m, rq.addr, &b, &cell);
    if (r == 0)
        r = dmce_alloc_check(b->base, cell, rq.len);
    if (r < 0) {
        rcu_read_unlock();
        return memd_reply_error(m, c, &c->h, r);
    }
    uint8_t *out = memd_reply_begin(c, &c->h, 0, rq.len);
    if (out)
        memcpy(out, (uint8_t *)b->base + cell, rq.len);
    rcu_read_unlock();
    STAT_ADD(m, DMCE_STAT_OPS_READ, 1);
    STAT_ADD(m, DMCE_STAT_BYTES_READ, rq.len);
}

static void op_write(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_rw_req_t rq;
    int r = dmce_msmp_write_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    rcu_read_lock();
    struct memd_block *b;
    uint64_t cell;
    r = memd_resolve_primary(m, rq.addr, &b, &cell);
    if (r == 0)
        r = dmce_alloc_check(b->base, cell, rq.len);
    if (r == 0) /* both copies, verified (seed 002 FIG. 16) */
        r = memd_block_write(b, cell, p + DMCE_MSMP_WRITE_HDR, rq.len);
    rcu_read_unlock();
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    STAT_ADD(m, DMCE_STAT_OPS_WRITE, 1);
    STAT_ADD(m, DMCE_STAT_BYTES_WRITTEN, rq.len);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_WRITE_RESP_SIZE);
    if (out) {
        dmce_put_le32(out, rq.len);
        dmce_put_le32(out + 4, 0);
    }
}

static void op_free(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint64_t addr;
    int r = dmce_msmp_u64_decode(p, len, &addr);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    uint32_t owner = 0;
    uint64_t size = 0;
    rcu_read_lock();
    struct memd_block *b;
    uint64_t cell;
    r = memd_resolve_primary(m, addr, &b, &cell);
    if (r == 0) {
        pthread_mutex_lock(&b->lock);
        r = atomic_load(&b->frozen) ? DMCE_EMOVING : dmce_alloc_free(b->base, cell, &owner, &size);
        if (r == 0)
            memd_mirror_after_free(m, b, cell);
        pthread_mutex_unlock(&b->lock);
    }
    rcu_read_unlock();
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    quota_give_back(m, owner, size);
    STAT_ADD(m, DMCE_STAT_OPS_FREE, 1);
    memd_reply_begin(c, &c->h, 0, 0);
}

static void op_disconnect(struct dmce_memd *m, struct memd_conn *c, uint32_t len)
{
    if (len != 0)
        return memd_reply_error(m, c, &c->h, -EBADMSG);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    struct memd_session *s = c->sess;
    c->sess = NULL;
    sess_end(m, s, "disconnect");
    STAT_ADD(m, DMCE_STAT_OPS_DISCONNECT, 1);
    memd_reply_begin(c, &c->h, 0, 0);
    c->closing = 1;
}

/* Send buf[0, len) with descriptors fds[0..n) attached to its first byte. */
static ssize_t send_with_fds(int sock, const uint8_t *buf, size_t len, const int *fds, unsigned n)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {(void *)buf, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(n * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(n * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Queue dups of fds[0..n) to go with the response that starts at output offset off. */
static int conn_queue_fds(struct memd_conn *c, size_t off, const int *fds, unsigned n)
{
    if (n == 0 || n > 2)
        return -EINVAL;
    if (c->nfds == c->fds_cap) {
        unsigned cap = c->fds_cap ? 2 * c->fds_cap : 4;
        struct out_fd *p = realloc(c->fds, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        c->fds = p;
        c->fds_cap = cap;
    }
    struct out_fd e = {.off = off};
    for (unsigned i = 0; i < n; i++) {
        e.fd[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
        if (e.fd[i] < 0) {
            int r = -errno;
            while (i-- > 0)
                close(e.fd[i]);
            return r;
        }
        e.n++;
    }
    c->fds[c->nfds++] = e;
    return 0;
}

int memd_reply_fds(struct dmce_memd *m, struct memd_conn *c, const int *fds, unsigned n)
{
    if (n == 0 || n > 2)
        return -EINVAL;
    if (c->ring) {
        /*
         * The response goes through the ring; a descriptor cannot. It goes
         * first, on the socket (idle since ring_open), with one byte 'F' that
         * the client reads when the response says a descriptor is attached.
         */
        static const uint8_t tag = 'F';
        if (send_with_fds(c->fd, &tag, 1, fds, n) != 1)
            return errno ? -errno : -EIO;
    } else {
        int r = conn_queue_fds(c, c->out.len, fds, n);
        if (r < 0)
            return r;
    }
    STAT_ADD(m, DMCE_STAT_FDS_SENT, n);
    return 0;
}

int memd_reply_fd(struct dmce_memd *m, struct memd_conn *c, int fd)
{
    return memd_reply_fds(m, c, &fd, 1);
}

/*
 * map: check the range like a read would, describe the block, and (when
 * asked) hand over the block's descriptor. The peer's uid was checked at
 * accept (SO_PEERCRED): only the cluster's user (or root) gets here.
 */
static void op_map(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_map_req_t rq;
    int r = dmce_msmp_map_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    dmce_msmp_map_resp_t rs = {0};
    rcu_read_lock();
    struct memd_block *b;
    uint64_t cell;
    dmce_alloc_info_t ai;
    r = memd_resolve_primary(m, rq.addr, &b, &cell);
    if (r == 0)
        r = dmce_alloc_check(b->base, cell, rq.len);
    if (r == 0)
        r = dmce_alloc_lookup(b->base, cell, &ai);
    int fd = -1;
    if (r == 0) {
        const dmce_block_hdr_t *bh = b->base;
        rs.block = b->id;
        rs.block_size = b->size;
        rs.data_offset = bh->data_offset;
        rs.page_size = bh->page_size;
        rs.alloc_cell = ai.offset;
        rs.alloc_size = ai.size;
        fd = b->fd; /* the block stays until shutdown, and so does its fd */
    }
    rcu_read_unlock();
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (rq.flags & DMCE_MSMP_MAP_WANT_FD) {
        r = memd_reply_fd(m, c, fd);
        if (r < 0) {
            LOG_WARN("client pid %d: cannot pass block %u's descriptor: %s", (int)c->pid, rs.block,
                     strerror(-r));
            return memd_reply_error(m, c, &c->h, r);
        }
        rs.flags = DMCE_MSMP_MAP_FD;
    }
    STAT_ADD(m, DMCE_STAT_OPS_MAP, 1);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_MAP_RESP_SIZE);
    if (out)
        dmce_msmp_map_resp_encode(&rs, out);
}

static int conn_flush(struct memd_conn *c);
static void conn_close(struct memd_conn *c);

/* Spin budget for clients of this daemon, and whether a worker may poll. */
static int may_spin(struct dmce_memd *m, unsigned extra_spinners)
{
    if (m->cfg.spin_us == 0 || m->ncpus < 2)
        return 0;
    unsigned active = 0;
    for (int i = 0; i < m->nworkers; i++)
        active += atomic_load_explicit(&m->workers[i].active, memory_order_relaxed);
    return active + atomic_load(&m->spinning) + extra_spinners <= m->ncpus;
}

/*
 * Tell a ring client how to wait for its responses. counted: the client is
 * already among its worker's active clients (w->active, as the worker's
 * last ring pass counted them: c->counted), so it is no extra spinner.
 */
static void grant_spin(struct dmce_memd *m, struct memd_conn *c, int counted)
{
    uint32_t mode, ns = (uint32_t)m->cfg.spin_us * 1000u;
    if (m->cfg.spin_us == 0 || m->ncpus < 2)
        mode = DMCE_RT_SPIN_NONE;
    else if (may_spin(m, counted ? 0 : 1))
        mode = DMCE_RT_SPIN_PAUSE;
    else
        mode = DMCE_RT_SPIN_YIELD; /* more spinners than CPUs: take turns, do not burn them */
    atomic_store_explicit(&c->rt.ctl->spin_mode, mode, memory_order_relaxed);
    atomic_store_explicit(&c->rt.ctl->client_spin_ns, mode ? ns : 0, memory_order_relaxed);
}

/*
 * ring_open: move this connection's requests and responses to a pair of
 * shared-memory rings. The response (on the socket) carries the segment's
 * memfd and the worker's doorbell eventfd; it is sent before this returns,
 * and every later response goes to the ring.
 */
static void op_ring_open(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_ring_req_t rq;
    int r = dmce_msmp_ring_req_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    uint32_t cap = rq.capacity;
    if (!m->cfg.rings)
        return memd_reply_error(m, c, &c->h, -EOPNOTSUPP);
    if (c->ring)
        return memd_reply_error(m, c, &c->h, -EALREADY);
    if (cap == 0)
        cap = (uint32_t)m->cfg.ring_capacity;
    if (dmce_rt_segment_size(cap) == 0 || cap > (16u << 20))
        return memd_reply_error(m, c, &c->h, -EINVAL);
    if (dmce_inbuf_pending(&c->in) != DMCE_MSMP_HDR_SIZE + len || dmce_outbuf_pending(&c->out))
        return memd_reply_error(m, c, &c->h, -EPROTO); /* nothing may be in flight around the switch */
    int segfd = -1;
    r = dmce_rt_create(cap, &segfd, &c->rt);
    if (r < 0) {
        LOG_WARN("client pid %d: no ring segment (%s); it stays on the socket", (int)c->pid,
                 strerror(-r));
        return memd_reply_error(m, c, &c->h, r);
    }
    int fds[2] = {segfd, c->w->bell};
    r = conn_queue_fds(c, c->out.len, fds, 2);
    close(segfd); /* the queue holds a dup until it is sent */
    uint8_t *out = r == 0 ? memd_reply_begin(c, &c->h, 0, DMCE_MSMP_RING_RESP_SIZE) : NULL;
    if (out) {
        dmce_msmp_ring_resp_t rs = {.capacity = cap, .seg_size = c->rt.size};
        dmce_msmp_ring_resp_encode(&rs, out);
    }
    /* The response must leave on the socket now: from here on output goes to the ring. */
    if (!out || conn_flush(c) < 0 || dmce_outbuf_pending(&c->out)) {
        LOG_WARN("client pid %d: ring_open response not sent; disconnecting it", (int)c->pid);
        dmce_rt_unmap(&c->rt);
        c->closing = 1;
        return;
    }
    c->ring = 1;
    c->last_req_ns = dmce_now_ns();
    c->w->nrings++;
    if (c->w->crowded) { /* in CPU turns: it waits for its turn like the others */
        atomic_store_explicit(&c->rt.ctl->spin_mode, DMCE_RT_SPIN_NONE, memory_order_relaxed);
        atomic_store_explicit(&c->rt.ctl->in_turns, 1, memory_order_relaxed);
    } else
        grant_spin(m, c, 0);
    /* The socket now only tells liveness (and carries map descriptors out). */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = 0;
    STAT_ADD(m, DMCE_STAT_RING_CLIENTS, 1);
    LOG_DEBUG("client pid %d: ring transport, %u bytes per ring", (int)c->pid, cap);
}

static void collect_stats(struct dmce_memd *m, uint64_t *v)
{
    for (unsigned i = 0; i < DMCE_STAT_COUNT_; i++)
        v[i] = atomic_load_explicit(&m->stat[i], memory_order_relaxed);
    v[DMCE_STAT_DAEMON_ID] = (uint64_t)m->cfg.id;
    v[DMCE_STAT_NUMA_NODE] = (uint64_t)(int64_t)m->numa_node;
    v[DMCE_STAT_PID] = (uint64_t)getpid();
    v[DMCE_STAT_BLOCK_FIRST] = m->block_first;
    v[DMCE_STAT_BLOCK_LAST] = m->block_last;
    uint64_t blocks = 0, free_bytes = 0, used = 0, nallocs = 0;
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    uint64_t mirrors = 0, copies = 0, kept = 0;
    for (uint32_t i = 0; i < t->count; i++) {
        struct memd_block *b = t->list[i];
        if (b->role != MEMD_PRIMARY) {
            copies++;
            continue;
        }
        mirrors += memd_live_mirror(b) != NULL;
        kept += atomic_load(&b->mirror_gone) != 0;
        dmce_block_usage_t u;
        memd_block_usage_nowait(b, &u);
        blocks++;
        free_bytes += u.free_bytes;
        used += u.used_bytes;
        nallocs += u.nallocs;
    }
    uint64_t nslots = (uint64_t)m->cfg.max_blocks - copies;
    rcu_read_unlock();
    v[DMCE_STAT_MIRRORS] = mirrors;
    v[DMCE_STAT_MIRRORS_KEPT] = kept;
    v[DMCE_STAT_MIRROR_COPIES] = copies;
    v[DMCE_STAT_BLOCKS] = blocks;
    v[DMCE_STAT_BYTES_TOTAL] = m->capacity;
    v[DMCE_STAT_BYTES_USED] = used;
    v[DMCE_STAT_BYTES_FREE] = free_bytes + (nslots - blocks) * m->block_data_bytes;
    v[DMCE_STAT_ALLOCATIONS] = nallocs;
    v[DMCE_STAT_CLIENTS] = atomic_load(&m->clients);
    pthread_mutex_lock(&m->sess_lock);
    uint64_t reserved = 0;
    for (struct memd_session *s = m->sessions; s; s = s->next)
        reserved += s->reserved;
    v[DMCE_STAT_BYTES_RESERVED] = reserved;
    v[DMCE_STAT_SESSIONS] = m->nsessions;
    v[DMCE_STAT_SESSIONS_ORPHANED] = m->norphans;
    pthread_mutex_unlock(&m->sess_lock);
    v[DMCE_STAT_UPTIME_MS] = dmce_now_ms() - m->start_ms;
    v[DMCE_STAT_PREFAULT_PENDING] = atomic_load(&m->pf_pending);
    v[DMCE_STAT_STARTING] = (uint64_t)atomic_load(&m->starting);
}

static void op_stats(struct dmce_memd *m, struct memd_conn *c, uint32_t len)
{
    if (len != 0)
        return memd_reply_error(m, c, &c->h, -EBADMSG);
    STAT_ADD(m, DMCE_STAT_OPS_STATS, 1);
    uint64_t v[DMCE_STAT_COUNT_];
    collect_stats(m, v);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_STATS_SIZE);
    if (out)
        dmce_msmp_stats_encode(v, out);
}

static void dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p)
{
    uint32_t len = c->h.len;
    if (c->h.flags & DMCE_MSMP_FLAG_RESPONSE)
        return memd_reply_error(m, c, &c->h, -EPROTO);
    switch (c->h.op) {
    case DMCE_MSMP_OP_SETUP: return op_setup(m, c, p, len);
    case DMCE_MSMP_OP_MALLOC:
        DMCE_TSAN_ACQUIRE(&m->reuse_order); /* memory reused after a free: memd_internal.h */
        op_malloc(m, c, p, len);
        DMCE_TSAN_RELEASE(&m->reuse_order);
        return;
    case DMCE_MSMP_OP_READ: return op_read(m, c, p, len);
    case DMCE_MSMP_OP_WRITE: return op_write(m, c, p, len);
    case DMCE_MSMP_OP_FREE: return op_free(m, c, p, len);
    case DMCE_MSMP_OP_DISCONNECT: return op_disconnect(m, c, len);
    case DMCE_MSMP_OP_STATS: return op_stats(m, c, len);
    case DMCE_MSMP_OP_MAP: return op_map(m, c, p, len);
    case DMCE_MSMP_OP_RING_OPEN: return op_ring_open(m, c, p, len);
    default:
        if (memd_mirror_dispatch(m, c, p, len) || memd_store_dispatch(m, c, p, len) ||
            memd_migrate_dispatch(m, c, p, len) || memd_backup_dispatch(m, c, p, len))
            return;
        return memd_reply_error(m, c, &c->h, -EOPNOTSUPP);
    }
}

/* ---- connections --------------------------------------------------------------------- */

static void rings_idle(struct memd_worker *w);
static void token_give(struct memd_worker *w);

static void conn_close(struct memd_conn *c)
{
    struct memd_worker *w = c->w;
    struct dmce_memd *m = w->m;
    if (w->turn == c)
        w->turn = NULL;
    if (w->turn_last == c)
        w->turn_last = c->prev; /* the turns go on from its successor */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->sess) {
        pthread_mutex_lock(&m->sess_lock);
        struct memd_session *s = c->sess;
        s->conn = NULL;
        s->orphan_deadline = dmce_now_ms() + (uint64_t)m->cfg.grace_ms;
        m->norphans++;
        memd_sess_account_locked(m, s, 0, s->used); /* reservation released at once */
        pthread_mutex_unlock(&m->sess_lock);
        LOG_INFO("client pid %d dropped without disconnect: session %u keeps %llu bytes for "
                 "%lld ms (grace_ms)",
                 (int)c->pid, s->id, (unsigned long long)s->used, (long long)m->cfg.grace_ms);
    } else {
        LOG_DEBUG("client pid %d closed", (int)c->pid);
    }
    atomic_fetch_sub(&m->clients, 1);
    for (unsigned i = 0; i < c->nfds; i++)
        for (unsigned k = 0; k < c->fds[i].n; k++)
            close(c->fds[i].fd[k]);
    free(c->fds);
    if (c->ring) {
        dmce_rt_unmap(&c->rt); /* closes both rings: the client's waits end */
        w->nrings--;
        if (w->nrings == 0) { /* no ring pass will count them again, nor give the token */
            token_give(w);
            rings_idle(w);
        }
        STAT_ADD(m, DMCE_STAT_RING_CLIENTS, (uint64_t)-1);
    }
    dmce_inbuf_free(&c->in);
    dmce_outbuf_free(&c->out);
    free(c);
}

/* What the worker waits for on c: room for output, or requests (not while one is held). */
static void conn_events(struct memd_conn *c)
{
    struct epoll_event ev = {.events = c->want_out ? EPOLLOUT : c->held ? EPOLLRDHUP : EPOLLIN,
                             .data.ptr = c};
    epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_arm(struct memd_conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    c->want_out = want_out;
    conn_events(c);
}

/* Ring connections: put pending output into the response ring, as much as fits. */
static int conn_flush_ring(struct memd_conn *c)
{
    for (;;) {
        size_t len;
        const uint8_t *p = dmce_outbuf_data(&c->out, &len);
        if (!len)
            break;
        int n = dmce_ring_write(&c->rt.rp.tx, p, len);
        if (n < 0)
            return -1; /* closed by the client, or a corrupt ring: drop the connection */
        if (n == 0)
            return 0; /* full: the worker comes back when the client has read */
        dmce_outbuf_sent(&c->out, (size_t)n);
    }
    dmce_outbuf_reset(&c->out, 1u << 21);
    return c->closing ? -1 : 0;
}

/* Send what is pending. Returns -1 if the connection must be closed now. */
static int conn_flush(struct memd_conn *c)
{
    if (c->ring)
        return conn_flush_ring(c);
    unsigned fi = 0; /* next descriptor to send; all before it are sent */
    dmce_outbuf_t *o = &c->out;
    while (o->off < o->len) {
        ssize_t n;
        if (fi < c->nfds && c->fds[fi].off == o->off) {
            /* This response carries descriptors: send them with its first byte. */
            size_t end = fi + 1 < c->nfds ? c->fds[fi + 1].off : o->len;
            n = send_with_fds(c->fd, o->buf + o->off, end - o->off, c->fds[fi].fd, c->fds[fi].n);
            if (n > 0) {
                for (unsigned k = 0; k < c->fds[fi].n; k++)
                    close(c->fds[fi].fd[k]);
                fi++;
            }
        } else {
            size_t end = fi < c->nfds ? c->fds[fi].off : o->len;
            n = send(c->fd, o->buf + o->off, end - o->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        if (n > 0) {
            dmce_outbuf_sent(o, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (fi) { /* forget the descriptors already sent */
            memmove(c->fds, c->fds + fi, (c->nfds - fi) * sizeof(c->fds[0]));
            c->nfds -= fi;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_arm(c, 1);
            return 0;
        }
        return -1;
    }
    /* Descriptors queued for a response that was never made (no memory for it): drop them. */
    for (; fi < c->nfds; fi++)
        for (unsigned k = 0; k < c->fds[fi].n; k++)
            close(c->fds[fi].fd[k]);
    c->nfds = 0;
    dmce_outbuf_reset(o, 1u << 21); /* do not keep a big buffer for an idle client */
    if (c->closing)
        return -1;
    conn_arm(c, 0);
    return 0;
}

/*
 * Read up to len request bytes from the connection's transport: like
 * recv(MSG_DONTWAIT): > 0 bytes, 0 at end of stream, -1 with errno
 * (EAGAIN: nothing now; EPROTO: a corrupt ring).
 */
static ssize_t conn_recv(struct memd_conn *c, void *buf, size_t len)
{
    if (!c->ring)
        return recv(c->fd, buf, len, MSG_DONTWAIT);
    int n = dmce_ring_read(&c->rt.rp.rx, buf, len);
    if (n > 0) {
        c->last_req_ns = dmce_now_ns();
        return n;
    }
    if (n == 0) {
        errno = EAGAIN;
        return -1;
    }
    if (n == DMCE_ECLOSED)
        return 0;
    LOG_WARN("client pid %d: request ring: %s; disconnecting it", (int)c->pid, dmce_strerror(n));
    errno = EPROTO;
    return -1;
}

static int conn_has_frame(const struct memd_conn *c);

/*
 * Whether request op waits while the daemon starts (client requests: they
 * would see blocks and sessions that recovery has not brought back yet),
 * or is answered at once (the dispatcher's, peers' and admin requests).
 */
static int held_while_starting(uint16_t op)
{
    switch (op) {
    case DMCE_MSMP_OP_STATS:
    case DMCE_MSMP_OP_BLOCKS:
    case DMCE_MSMP_OP_MIRROR_CREATE:
    case DMCE_MSMP_OP_MIRROR_START:
    case DMCE_MSMP_OP_PROMOTE:
    case DMCE_MSMP_OP_DROP:
    case DMCE_MSMP_OP_SESSIONS:
    case DMCE_MSMP_OP_HANDOFF:
    case DMCE_MSMP_OP_ADOPT:
    case DMCE_MSMP_OP_RELEASE:
    case DMCE_MSMP_OP_REPARENT:
    case DMCE_MSMP_OP_BACKUP:
    case DMCE_MSMP_OP_BACKUP_STATUS:
    case DMCE_MSMP_OP_RESTORE: return 0;
    default: return 1;
    }
}

/*
 * Handle every complete frame already received, then read more. One recv
 * per wake-up in the common case: a read shorter than the room offered
 * means the socket is drained, and level-triggered epoll reports the next
 * bytes. A frame larger than one read keeps reading, at most
 * DMCE_MEMD_BATCH reads per wake-up so that one big writer cannot starve
 * the others. Returns -1 when the connection is to be closed (after its
 * output was flushed, if possible).
 */
static int conn_input(struct dmce_memd *m, struct memd_conn *c)
{
    int reads = 0, drained = 0;
    while (!c->closing && dmce_outbuf_pending(&c->out) < DMCE_MEMD_OUT_HIGH) {
        const uint8_t *payload;
        size_t need;
        int r = dmce_inbuf_frame(&c->in, (uint32_t)m->cfg.max_payload, &c->h, &payload, &need);
        if (r < 0) {
            /* The stream cannot be trusted past a bad header: answer and drop. */
            LOG_WARN("client pid %d sent a malformed frame (%s); disconnecting it", (int)c->pid,
                     dmce_strerror(r));
            if (r == DMCE_EBADMAGIC || r == DMCE_EVERSION)
                c->h.req_id = 0; /* nothing in it can be trusted */
            memd_reply_error(m, c, &c->h, r);
            c->closing = 1;
            return 0;
        }
        if (r == 1) {
            if (atomic_load_explicit(&m->starting, memory_order_acquire) &&
                held_while_starting(c->h.op)) {
                c->held = 1; /* stays buffered: the worker's evfd wakes it (start_done) */
                conn_events(c);
                break;
            }
            dispatch(m, c, payload);
            dmce_inbuf_consume(&c->in, DMCE_MSMP_HDR_SIZE + (size_t)c->h.len);
            continue;
        }
        if (drained || reads == DMCE_MEMD_BATCH)
            break; /* epoll reports the next bytes */
        if (dmce_inbuf_reserve(&c->in, DMCE_MAX(need, (size_t)DMCE_MEMD_IN_CHUNK),
                               DMCE_MEMD_IN_CHUNK) < 0)
            return -1;
        size_t room;
        uint8_t *at = dmce_inbuf_room(&c->in, &room);
        ssize_t n = conn_recv(c, at, room);
        reads++;
        if (n == 0)
            return -1;
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                return -1;
            break;
        }
        dmce_inbuf_filled(&c->in, (size_t)n);
        drained = (size_t)n < room;
    }
    dmce_inbuf_trim(&c->in, 2 * DMCE_MEMD_IN_CHUNK); /* do not keep a big frame's buffer */
    /* Part of a frame and no more bytes: the frame timeout runs from now (frame_check). */
    if (dmce_inbuf_pending(&c->in) && !conn_has_frame(c)) {
        if (!c->partial_ms)
            c->partial_ms = dmce_now_ms();
    } else {
        c->partial_ms = 0;
    }
    return 0;
}

/*
 * 1 if a whole frame is buffered but not handled yet (held back by
 * backpressure), or a header that must be answered as malformed. A frame
 * still arriving does not count: nothing can be done with it until more
 * bytes come, and a worker must not spin on it.
 */
static int conn_has_frame(const struct memd_conn *c)
{
    dmce_msmp_hdr_t h;
    const uint8_t *p;
    size_t need;
    return dmce_inbuf_frame(&c->in, (uint32_t)c->w->m->cfg.max_payload, &h, &p, &need) != 0;
}

/* A refused connection: at most one warning a second per worker (dmce_log_limited). */
#define refuse_log(w, ...) dmce_log_limited(&(w)->refuse_rl, DMCE_LOG_WARN, __VA_ARGS__)

/* accept() failed with EMFILE or ENFILE: shed the connection (dmce_accept_shed). */
static void accept_without_fds(struct memd_worker *w, int err)
{
    struct dmce_memd *m = w->m;
    pid_t pid = 0;
    int r = dmce_accept_shed(m->listen_fd, &m->spare_fd, &pid);
    if (r > 0)
        refuse_log(w, "refused connection from pid %d: out of file descriptors (%s) with %llu "
                   "clients", (int)pid, strerror(err),
                   (unsigned long long)atomic_load(&m->clients));
    else if (r < 0)
        refuse_log(w, "accept: %s with %llu clients; retrying in 1 ms", strerror(-r),
                   (unsigned long long)atomic_load(&m->clients));
}

static void conn_accept_locked(struct memd_worker *w);

static void conn_accept(struct memd_worker *w)
{
    struct dmce_memd *m = w->m;
    /* Another worker accepting drains the backlog: this one goes back to its clients (the
     * listening socket is level-triggered: what is left wakes a worker again). */
    if (pthread_mutex_trylock(&m->accept_lock) != 0)
        return;
    if (m->spare_fd < 0) /* lost to a shortage of descriptors: take it back */
        m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    conn_accept_locked(w);
    pthread_mutex_unlock(&m->accept_lock);
}

static void conn_accept_locked(struct memd_worker *w)
{
    struct dmce_memd *m = w->m;
    for (;;) {
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                accept_without_fds(w, errno);
            else if (errno != EAGAIN && errno != EINTR)
                refuse_log(w, "accept: %s", strerror(errno));
            return;
        }
        pid_t pid = 0;
        uid_t uid = (uid_t)-1;
        if (dmce_peer_cred(fd, &pid, &uid, NULL) < 0 || (uid != geteuid() && uid != 0)) {
            refuse_log(w, "refused connection from pid %d uid %d: not the cluster's user",
                       (int)pid, (int)uid);
            close(fd);
            continue;
        }
        if (atomic_load(&m->clients) >= (uint64_t)m->cfg.max_clients) {
            refuse_log(w, "refused connection from pid %d: max_clients (%lld) reached", (int)pid,
                       (long long)m->cfg.max_clients);
            close(fd);
            continue;
        }
        struct memd_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->serial = atomic_fetch_add(&m->conn_serial, 1) + 1;
        c->fd = fd;
        c->pid = pid;
        c->uid = uid;
        c->w = w;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        atomic_fetch_add(&m->clients, 1);
        LOG_DEBUG("worker %d: client pid %d connected", w->idx, (int)pid);
    }
}

/* A ring client counts as active (for spin accounting) this long after a request. */
#define ACTIVE_NS (5ull * 1000 * 1000)

/*
 * c asked within ACTIVE_NS of now. Signed: a request served in this pass
 * has a last_req_ns later than the pass's now (it once wrapped round to
 * "long ago", and busy clients were counted as idle).
 */
static int asked_lately(const struct memd_conn *c, uint64_t now)
{
    return (int64_t)(now - c->last_req_ns) < (int64_t)ACTIVE_NS;
}
/* While spinning, look at the sockets (epoll) at least this often. */
#define POLL_SLICE_NS (50ull * 1000)

/* A request of this ring connection waits to be served. */
static int conn_waiting(struct memd_conn *c)
{
    return dmce_ring_readable(&c->rt.rp.rx) != 0 || conn_has_frame(c);
}

/*
 * Serve ring connection c once: handle its whole frames, put the
 * responses into its ring (with grant: then tell it how to wait for the
 * next). 1 if it had requests, 0 if not, -1 if it was closed.
 */
static int ring_serve(struct dmce_memd *m, struct memd_conn *c, int grant)
{
    int bad = 0, did = 0;
    if (conn_waiting(c)) {
        uint64_t before = c->last_req_ns;
        bad = conn_input(m, c) < 0;
        if (c->last_req_ns != before) {
            did = 1;
            if (grant)
                grant_spin(m, c, c->counted);
        }
    }
    if (!bad && (dmce_outbuf_pending(&c->out) || c->closing))
        bad = conn_flush(c) < 0;
    if (bad) {
        conn_close(c);
        return -1;
    }
    return did;
}

/* Publish w's demand on the turns board: its ring clients that asked lately or wait. */
static void rings_demand(struct memd_worker *w, unsigned active)
{
    w->nactive = active;
    if (w->seat >= 0)
        dmce_turns_set_active(w->m->turns, w->seat, active);
}

/*
 * w goes to sleep, or has no ring client left: none of its clients keeps a
 * CPU busy now, for the spin grants of the daemon's other workers
 * (w->active, which only a ring pass recounts: a count left from clients
 * that left made a lone client on another worker YIELD) and for the board.
 */
static void rings_idle(struct memd_worker *w)
{
    for (struct memd_conn *c = w->conns; c; c = c->next)
        c->counted = 0;
    atomic_store_explicit(&w->active, 0, memory_order_relaxed);
    rings_demand(w, 0);
}

/*
 * Serve every ring connection of w once: read and handle whole frames, put
 * responses into the rings. In CPU turns only the client whose turn it is
 * (the others' pending output still goes out; their demand is counted by
 * crowd_check, not on every pass). Returns the number of connections that
 * had requests. Updates w->active.
 */
static unsigned rings_service(struct memd_worker *w, uint64_t now)
{
    struct dmce_memd *m = w->m;
    unsigned work = 0, active = 0;
    if (w->crowded) {
        for (struct memd_conn *c = w->conns, *next; c; c = next) {
            next = c->next;
            c->counted = c == w->turn; /* as w->active below */
            if (c->ring && c != w->turn && (dmce_outbuf_pending(&c->out) || c->closing) &&
                conn_flush(c) < 0)
                conn_close(c);
        }
        if (w->turn)
            work = ring_serve(m, w->turn, 0) > 0;
        /* this worker spins for one client at most: the one whose turn it is */
        atomic_store_explicit(&w->active, w->turn != NULL, memory_order_relaxed);
        return work;
    }
    for (struct memd_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->ring)
            continue;
        int r = ring_serve(m, c, 1);
        if (r < 0)
            continue;
        work += (unsigned)r;
        c->counted = asked_lately(c, now);
        active += (unsigned)c->counted;
    }
    atomic_store_explicit(&w->active, active, memory_order_relaxed);
    rings_demand(w, active);
    return work;
}

/* ---- CPU turns (turns.h; docs/ring.md, "CPU turns") ------------------------------------ */

/* The client whose turn it is may pause this long between requests before the turn goes on, */
#define TURN_IDLE_NS (50ull * 1000)
/* but not in the first part of its turn: it may still be waking up. */
#define TURN_GRACE_NS (200ull * 1000)
/* A token serves at most this many turns of its worker's clients, then goes on. */
#define TURNS_PER_TOKEN 8u
/* A worker waits this long for a token at most before it looks at its sockets again. */
#define TOKEN_WAIT_US 1000u
/* How often a worker looks whether the CPUs are crowded. */
#define CROWD_CHECK_NS (100ull * 1000)

static void set_spin_mode(struct memd_conn *c, uint32_t mode, uint32_t ns)
{
    atomic_store_explicit(&c->rt.ctl->client_spin_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&c->rt.ctl->spin_mode, mode, memory_order_release);
}

/* The next ring connection of w after `after` (wrapping round, itself last) with a request. */
static struct memd_conn *turn_next(struct memd_worker *w, struct memd_conn *after)
{
    struct memd_conn *start = after && after->next ? after->next : w->conns, *c = start;
    if (!c)
        return NULL;
    do {
        if (c->ring && !c->closing && conn_waiting(c))
            return c;
        c = c->next ? c->next : w->conns;
    } while (c != start);
    return NULL;
}

/* A worker that holds a token yields the CPU this often (as its turn's client does). */
#define TURN_YIELD_NS (50ull * 1000)
/* A gap this long between two requests of a turn: the worker looks where its client runs. */
#define TURN_GAP_NS (5ull * 1000)
/* The turn of w's client ends: it may poll no more (ring_wait's spin gate). */
static void turn_over(struct memd_worker *w)
{
    if (w->turn)
        set_spin_mode(w->turn, DMCE_RT_SPIN_NONE, 0);
    w->turn = NULL;
}

static void token_give(struct memd_worker *w)
{
    turn_over(w);
    if (w->seat >= 0) /* also one handed over just as its wait gave up: never kept unknowingly */
        dmce_turns_give(w->m->turns, w->seat);
    w->token = 0;
    if (w->moved) { /* back on every CPU of the daemon */
        pthread_setaffinity_np(pthread_self(), sizeof(w->cpus), &w->cpus);
        w->moved = 0;
    }
}

/*
 * The worker and the client whose turn it is must poll on two CPUs. The
 * scheduler may put them on one (a client woken by the worker often wakes
 * on the worker's CPU), and as each sleeps while the other runs it sees
 * no reason to part them: every request then costs the client's whole
 * spin. The client says where it polls; the worker moves off that CPU
 * until its token goes.
 */
static void turn_place(struct memd_worker *w)
{
    uint32_t cc = atomic_load_explicit(&w->turn->rt.ctl->client_cpu, memory_order_relaxed);
    int mine = sched_getcpu();
    if (cc == 0 || mine < 0 || cc != (uint32_t)mine + 1)
        return;
    cpu_set_t set = w->cpus;
    CPU_CLR(mine, &set);
    if (CPU_COUNT(&set) == 0 || pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        return;
    w->moved = 1;
}

/*
 * With a token: keep the turn while its client is busy and its time
 * lasts, else give it to the next client of w with a request. 0 = the
 * token must go on (its turns are used up, or no client of w asks).
 */
static int turn_advance(struct memd_worker *w, uint64_t now)
{
    struct dmce_memd *m = w->m;
    struct memd_conn *t = w->turn;
    if (t && now < w->turn_end_ns &&
        (now - w->turn_start_ns < TURN_GRACE_NS || now - t->last_req_ns < TURN_IDLE_NS ||
         conn_waiting(t)))
        return 1;
    struct memd_conn *next = now < w->token_end_ns ? turn_next(w, w->turn_last) : NULL;
    if (!next || !dmce_turns_held(m->turns, w->seat)) {
        if (next) /* taken from us: stalled past the limit (the board's rule), nothing to give */
            w->token = 0;
        turn_over(w);
        return 0;
    }
    dmce_turns_renew(m->turns, w->seat); /* working: not stalled */
    if (next != t) {
        /*
         * The next client is woken (by its response) while the last one
         * still runs: its CPU goes from one to the other without going
         * idle. Waiting for the last one to sleep first was slower, and
         * collapsed now and then (2 runs of 11 at 0.6M reads/s against
         * 1.4-1.6M; perf.md).
         */
        turn_over(w);
        w->turn = w->turn_last = next;
        set_spin_mode(next, DMCE_RT_SPIN_TURN, (uint32_t)m->cfg.spin_us * 1000u);
    }
    w->turn_start_ns = now;
    w->turn_end_ns = now + (uint64_t)m->cfg.turn_us * 1000u;
    STAT_ADD(m, DMCE_STAT_RING_TURNS, 1);
    return 1;
}

/*
 * Tell every ring client of w whether it is served in CPU turns now
 * (in_turns in its control page), where it is not so already.
 */
static void rings_told_turns(struct memd_worker *w, uint32_t in_turns)
{
    for (struct memd_conn *c = w->conns; c; c = c->next)
        if (c->ring && atomic_load_explicit(&c->rt.ctl->in_turns, memory_order_relaxed) != in_turns)
            atomic_store_explicit(&c->rt.ctl->in_turns, in_turns, memory_order_relaxed);
}

/*
 * Whether w serves in turns from now: the spinners of every daemon of the
 * runtime dir (workers with ring clients, and those clients) outnumber
 * the CPUs. Going into turns, no client of w may poll until its turn;
 * coming out, each gets its grant back with its next request.
 */
static void crowd_check(struct memd_worker *w, uint64_t now)
{
    if (w->seat < 0 || now < w->next_crowd_ns)
        return;
    w->next_crowd_ns = now + CROWD_CHECK_NS;
    if (w->crowded) { /* rings_service does not count them in turns */
        unsigned active = 0;
        for (struct memd_conn *c = w->conns; c; c = c->next)
            active += c->ring && (asked_lately(c, now) || conn_waiting(c));
        rings_demand(w, active);
    }
    int crowded = dmce_turns_crowded(w->m->turns, w->m->ncpus);
    /* its waits for a turn look at our life less often (rings_told_turns: cleared at a park) */
    rings_told_turns(w, (uint32_t)crowded);
    if (crowded == w->crowded)
        return;
    if (crowded) {
        for (struct memd_conn *c = w->conns; c; c = c->next)
            if (c->ring)
                set_spin_mode(c, DMCE_RT_SPIN_NONE, 0);
    } else {
        token_give(w);
        for (struct memd_conn *c = w->conns; c; c = c->next)
            if (c->ring)
                grant_spin(w->m, c, 0);
    }
    w->crowded = crowded;
}

/*
 * In turns, with requests waiting and no token: wait for one (a while at
 * most, then the sockets). 1 = w holds a token now.
 */
static int token_take(struct memd_worker *w, uint64_t now)
{
    struct dmce_memd *m = w->m;
    int got = dmce_turns_take(m->turns, w->seat, TOKEN_WAIT_US);
    uint64_t after = dmce_now_ns();
    STAT_ADD(m, DMCE_STAT_TURN_WAIT_US, (after - now) / 1000u);
    if (!got)
        return 0;
    /* A turn for each of its active clients (who asked in the last ACTIVE_NS, or waits): */
    /* the tokens go round the workers, and each client gets one turn a round. */
    /* (never near the board's stall limit, whatever turn_us) */
    unsigned turns = DMCE_MIN(DMCE_MAX(w->nactive, 1u), TURNS_PER_TOKEN);
    uint64_t hold = DMCE_MIN((uint64_t)turns * (uint64_t)m->cfg.turn_us * 1000u,
                             (uint64_t)DMCE_TURNS_HOLD_MAX_MS * 1000000u / 2);
    w->token = 1;
    w->turn = NULL;
    w->token_end_ns = after + hold;
    return 1;
}

/* 1 if some ring connection of w has something to do now. */
static int rings_pending(struct memd_worker *w)
{
    for (struct memd_conn *c = w->conns; c; c = c->next) {
        if (!c->ring)
            continue;
        if (dmce_ring_readable(&c->rt.rp.rx) != 0 || conn_has_frame(c) ||
            (dmce_outbuf_pending(&c->out) && dmce_ring_writable(&c->rt.rp.tx) != 0))
            return 1;
    }
    return 0;
}

/* A response of w is still in its ring, untaken: its client has not run since. */
static int rings_unread(struct memd_worker *w)
{
    for (struct memd_conn *c = w->conns; c; c = c->next) {
        if (!c->ring)
            continue;
        int room = dmce_ring_writable(&c->rt.rp.tx);
        if (room >= 0 && (uint32_t)room < c->rt.rp.tx.capacity)
            return 1;
    }
    return 0;
}

/* Tell every ring client of w whether this worker sleeps (doorbell needed). */
static void rings_park(struct memd_worker *w, uint32_t parked)
{
    for (struct memd_conn *c = w->conns; c; c = c->next)
        if (c->ring)
            atomic_store_explicit(&c->rt.ctl->server_parked, parked, memory_order_relaxed);
}

/*
 * The socket of a ring connection: only end of stream (the client went
 * away) is expected. Returns -1 when the connection must close.
 */
static int ring_socket_event(struct memd_conn *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n > 0)
        LOG_WARN("client pid %d sent bytes on its socket after ring_open; disconnecting it",
                 (int)c->pid);
    return -1;
}

/*
 * Close the connections that left a frame half sent for frame_timeout_ms
 * (a client that stalled or drips bytes): their buffers and slots go to
 * clients that talk. Once a second at most.
 */
static void frame_check(struct memd_worker *w)
{
    struct dmce_memd *m = w->m;
    uint64_t now = dmce_now_ms();
    if (!m->cfg.frame_timeout_ms || now < w->next_frame_check_ms)
        return;
    w->next_frame_check_ms = now + 1000;
    for (struct memd_conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->partial_ms && now - c->partial_ms >= (uint64_t)m->cfg.frame_timeout_ms) {
            dmce_log_limited(&w->refuse_rl, DMCE_LOG_WARN,
                             "client pid %d left a request half sent for %llu ms; disconnecting it",
                             (int)c->pid, (unsigned long long)(now - c->partial_ms));
            STAT_ADD(m, DMCE_STAT_OPS_ERRORS, 1);
            conn_close(c);
        }
    }
}

static void *worker_main(void *arg)
{
    struct memd_worker *w = arg;
    struct dmce_memd *m = w->m;
    rcu_register_thread(); /* on the daemon's node: affinity inherited from start */
    if (pthread_getaffinity_np(pthread_self(), sizeof(w->cpus), &w->cpus) != 0)
        CPU_ZERO(&w->cpus); /* turn_place then never moves it */
    struct epoll_event evs[64];
    const uint64_t spin_ns = (uint64_t)m->cfg.spin_us * 1000u;
    const uint32_t spin_max = (uint32_t)DMCE_MIN(spin_ns, UINT32_MAX); /* for w->spin */
    uint64_t last_work = 0;
    int spinning = 0; /* counted in m->spinning */
    int polled = 0;   /* polled its rings without work since the last request */
    while (!atomic_load(&m->stop)) {
        int timeout = -1, parked = 0;
        if (!w->nrings && spinning) {
            /* its last ring client left while it polled: no spinner now (the
             * count was once left up, and a lone client elsewhere told to YIELD) */
            atomic_fetch_sub(&m->spinning, 1);
            spinning = 0;
        }
        if (w->nrings) {
            /*
             * Ring connections: poll them for up to POLL_SLICE_NS while there
             * is work or recent work and the CPUs allow a spinner (with a
             * CPU pause; yielding when clients outnumber the CPUs), then
             * look at the sockets. Idle: park and sleep in epoll. How long
             * to poll after the last request adapts to what polling
             * achieved (dmce_spin_adapt_t): with the CPUs taken by other
             * work, a poll for a client that cannot run only delays it.
             */
            uint64_t now = dmce_now_ns(), slice_end = now + POLL_SLICE_NS;
            uint32_t budget = dmce_spin_budget(&w->spin, spin_max);
            crowd_check(w, now);
            if (w->crowded && !w->token && rings_pending(w) && !token_take(w, now)) {
                if (spinning) { /* it slept in token_take: no spinner */
                    atomic_fetch_sub(&m->spinning, 1);
                    spinning = 0;
                }
                timeout = 0; /* no token yet: look at the sockets, then wait again */
                goto events;
            }
            for (;;) {
                if (w->token && !turn_advance(w, now)) {
                    token_give(w); /* to another worker that waits, if one does */
                    break;
                }
                if (rings_service(w, now)) {
                    /* a request after a gap: its client may be polling on our CPU */
                    if (w->token && w->turn && now - last_work > TURN_GAP_NS)
                        turn_place(w);
                    if (polled) /* the poll caught a request: it paid off */
                        dmce_spin_update(&w->spin, spin_max, budget, 1);
                    polled = 0;
                    last_work = now;
                }
                now = dmce_now_ns();
                int want = budget && now - last_work < budget && m->ncpus > 1;
                if (w->token)
                    want = 1; /* the client whose turn it is polls: so does its worker */
                if (want && !spinning) {
                    atomic_fetch_add(&m->spinning, 1);
                    spinning = 1;
                }
                if (!want || now >= slice_end)
                    break;
                polled = 1;
                if (w->token && now - w->yield_ns > TURN_YIELD_NS) {
                    w->yield_ns = now; /* a task woken on this CPU runs now, not in a slice */
                    sched_yield();
                } else if (w->token || may_spin(m, 0))
                    dmce_cpu_relax();
                else
                    sched_yield();
            }
            if (w->token || (spinning && now - last_work < budget)) {
                timeout = 0; /* (a token is given back by turn_advance, never parked with) */
            } else {
                /*
                 * The poll ran out (or there was none). It says the CPUs
                 * are taken only if a response still waits for its client:
                 * a client that took it and has not asked again is
                 * thinking, or sleeping, which no poll should learn from.
                 */
                if (!polled || !budget)
                    dmce_spin_update(&w->spin, spin_max, 0, 0);
                else if (rings_unread(w))
                    dmce_spin_update(&w->spin, spin_max, budget, 0);
                polled = 0;
                if (spinning) {
                    atomic_fetch_sub(&m->spinning, 1);
                    spinning = 0;
                }
                token_give(w);      /* never sleep with a token */
                rings_idle(w); /* asleep, it keeps no CPU busy: grants and the board must know */
                rings_told_turns(w, 0); /* nobody waits for a turn of a sleeper (crowd_check
                                           says so again once it runs and the CPUs still are) */
                rings_park(w, 1);
                atomic_thread_fence(memory_order_seq_cst);
                if (rings_pending(w)) { /* a request slipped in before the flags were seen */
                    rings_park(w, 0);
                    continue;
                }
                parked = 1;
            }
        }
    events:
        if (m->cfg.frame_timeout_ms && w->conns && (timeout < 0 || timeout > 1000))
            timeout = 1000; /* look at half-sent frames once a second (frame_check) */
        int n = epoll_wait(w->epfd, evs, 64, timeout);
        if (parked)
            rings_park(w, 0);
        frame_check(w);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LOG_ERROR("worker %d: epoll_wait: %s", w->idx, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;
            if (tag == &m->listen_fd) {
                conn_accept(w);
                continue;
            }
            if (tag == &w->evfd) {
                uint64_t v;
                if (read(w->evfd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: drained by an earlier wake-up */
                }
                /* The start ended (or the daemon stops): requests held back go on. */
                for (struct memd_conn *c = w->conns, *next; c; c = next) {
                    next = c->next;
                    if (!c->held || atomic_load(&m->starting))
                        continue;
                    c->held = 0;
                    conn_events(c);
                    if (conn_input(m, c) < 0 ||
                        (dmce_outbuf_pending(&c->out) && conn_flush(c) < 0))
                        conn_close(c);
                }
                continue;
            }
            if (tag == &w->bell) {
                uint64_t v;
                if (read(w->bell, &v, sizeof(v)) < 0) {
                    /* EAGAIN: another wake-up drained it; the rings are served next */
                }
                last_work = dmce_now_ns();
                continue;
            }
            struct memd_conn *c = tag;
            int bad = 0;
            if (c->held) { /* a request waits for the start to end: only output, or its end */
                if (evs[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                    bad = 1;
                else if (evs[i].events & EPOLLOUT)
                    bad = conn_flush(c) < 0;
            } else if (c->ring) {
                bad = ring_socket_event(c) < 0;
            } else if (evs[i].events & EPOLLOUT) {
                bad = conn_flush(c) < 0;
                /* Backpressure over: handle the frames it held back. */
                if (!bad && !c->want_out && conn_has_frame(c))
                    bad = conn_input(m, c) < 0 ||
                          ((dmce_outbuf_pending(&c->out) || c->closing) && conn_flush(c) < 0);
            } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                bad = conn_input(m, c) < 0;
                /* Also with nothing to send when closing (a reply that could not be
                 * made): conn_input reads no more from it, so only this closes it. */
                if (!bad && (dmce_outbuf_pending(&c->out) || c->closing))
                    bad = conn_flush(c) < 0;
            }
            if (bad)
                conn_close(c);
        }
    }
    if (spinning)
        atomic_fetch_sub(&m->spinning, 1);
    token_give(w);
    if (w->seat >= 0)
        dmce_turns_leave(m->turns, w->seat);
    w->seat = -1;
    while (w->conns)
        conn_close(w->conns);
    memd_store_worker_fini(w);
    rcu_unregister_thread();
    return NULL;
}

/* ---- life ------------------------------------------------------------------------------ */

const char *dmce_memd_shm_prefix(const dmce_memd_t *m)
{
    return m->shm_prefix;
}

/* Remove objects a crashed daemon with our cluster and ID left. We hold the lock. */
static void remove_stale_shm(struct dmce_memd *m)
{
    const char *dir = memd_obj_dir(m);
    DIR *d = opendir(dir);
    if (!d)
        return;
    /* The prefix's last component: "dmce.UID.CLUSTER.mID." */
    const char *prefix = strrchr(m->shm_prefix, '/') + 1;
    size_t plen = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen) != 0)
            continue;
        char name[DMCE_CFG_STRMAX + 264]; /* dir + "/" + d_name */
        if (m->cfg.shm_dir[0])
            snprintf(name, sizeof(name), "%s/%s", m->cfg.shm_dir, e->d_name);
        else
            snprintf(name, sizeof(name), "/%s", e->d_name);
        if (memd_obj_unlink(m, name) == 0)
            LOG_WARN("removed stale block object %s left by a previous daemon %lld", name,
                     (long long)m->cfg.id);
    }
    closedir(d);
}

static int resolve_config(struct dmce_memd *m)
{
    dmce_memd_config_t *cfg = &m->cfg;
    if (!cfg->runtime_dir[0]) {
        const char *env = getenv("DMCE_RUNTIME_DIR");
        if (env && *env)
            snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "%s", env);
        else
            snprintf(cfg->runtime_dir, sizeof(cfg->runtime_dir), "/run/dmce-%u",
                     (unsigned)geteuid());
    }
    int r = dmce_mkdir_private(cfg->runtime_dir);
    if (r < 0) {
        LOG_ERROR("cannot create runtime dir %s: %s", cfg->runtime_dir, strerror(-r));
        return r;
    }
    /*
     * It holds the socket and the lock file: it must be ours and writable by
     * nobody else, or another user could swap them (or point the lock file,
     * which is truncated, at a file of ours). One made elsewhere may let
     * others search it; the socket still refuses them (0600, SO_PEERCRED).
     */
    struct stat ds;
    if (stat(cfg->runtime_dir, &ds) < 0) {
        r = -errno;
        LOG_ERROR("runtime dir %s: %s", cfg->runtime_dir, strerror(errno));
        return r;
    }
    if (!S_ISDIR(ds.st_mode) || ds.st_uid != geteuid() || (ds.st_mode & (S_IWGRP | S_IWOTH))) {
        LOG_ERROR("runtime dir %s is mode %03o, owner uid %u: it must be a directory of uid %u "
                  "that nobody else can write (chmod 700 it)",
                  cfg->runtime_dir, (unsigned)(ds.st_mode & 07777), (unsigned)ds.st_uid,
                  (unsigned)geteuid());
        return -EPERM;
    }
    if (ds.st_mode & 077)
        LOG_WARN("runtime dir %s is mode %03o: other users can see into it (0700 is safer)",
                 cfg->runtime_dir, (unsigned)(ds.st_mode & 07777));
    char real[4096];
    if (!realpath(cfg->runtime_dir, real))
        return -errno;
    if (!cfg->cluster[0])
        snprintf(cfg->cluster, sizeof(cfg->cluster), "%08x",
                 (unsigned)(dmce_hash_str(real) & 0xffffffffu));
    for (const char *p = cfg->cluster; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_') || strlen(cfg->cluster) > 64) {
            LOG_ERROR("cluster name '%s' must be 1-64 of [A-Za-z0-9_-]", cfg->cluster);
            return -EINVAL;
        }
    }
    if (!cfg->socket[0])
        snprintf(m->sock_path, sizeof(m->sock_path), "%s/memd-%lld.sock", cfg->runtime_dir,
                 (long long)cfg->id);
    else
        snprintf(m->sock_path, sizeof(m->sock_path), "%s", cfg->socket);
    snprintf(m->lock_path, sizeof(m->lock_path), "%s/memd-%lld.lock", cfg->runtime_dir,
             (long long)cfg->id);
    if (cfg->shm_dir[0]) {
        /* Block files there: only on memory (tmpfs, hugetlbfs), never on a disk. */
        struct statfs sf;
        if (statfs(cfg->shm_dir, &sf) < 0) {
            LOG_ERROR("shm_dir %s: %s", cfg->shm_dir, strerror(errno));
            return -errno;
        }
        if (sf.f_type != TMPFS_MAGIC && sf.f_type != HUGETLBFS_MAGIC) {
            LOG_ERROR("shm_dir %s is not on tmpfs or hugetlbfs; blocks must live in memory",
                      cfg->shm_dir);
            return -EINVAL;
        }
        if (strlen(cfg->shm_dir) > DMCE_CFG_STRMAX - 64) {
            LOG_ERROR("shm_dir %s: path too long", cfg->shm_dir);
            return -ENAMETOOLONG;
        }
    }
    memd_daemon_prefix(m, (uint32_t)cfg->id, m->shm_prefix, sizeof(m->shm_prefix));

    if (cfg->granule & (cfg->granule - 1)) {
        LOG_ERROR("granule %llu is not a power of two", (unsigned long long)cfg->granule);
        return -EINVAL;
    }
    if (cfg->page_size != 4096 && cfg->page_size != (2u << 20)) {
        LOG_ERROR("page_size must be 4K or 2M, not %llu", (unsigned long long)cfg->page_size);
        return -EINVAL;
    }
    if (cfg->block_size % cfg->page_size) {
        LOG_ERROR("block_size must be a multiple of page_size");
        return -EINVAL;
    }
    m->layout = (dmce_layout_t)cfg->layout;
    dmce_layout_info_t li;
    dmce_layout_info(m->layout, &li);
    if (cfg->block_size > (1ull << li.cell_bits)) {
        LOG_ERROR("block_size %llu does not fit the %u-bit cell of layout %s",
                  (unsigned long long)cfg->block_size, li.cell_bits, dmce_layout_name(m->layout));
        return -EINVAL;
    }
    uint64_t first = cfg->block_first ? (uint64_t)cfg->block_first
                                      : (uint64_t)(cfg->id - 1) * (uint64_t)cfg->max_blocks + 1;
    uint64_t last = first + (uint64_t)cfg->max_blocks - 1;
    if (last >= (1ull << li.block_bits)) {
        LOG_ERROR("block IDs %llu..%llu do not fit the %u-bit block field of layout %s; "
                  "lower max_blocks or set block_first",
                  (unsigned long long)first, (unsigned long long)last, li.block_bits,
                  dmce_layout_name(m->layout));
        return -ERANGE;
    }
    if (cfg->blocks_initial > cfg->max_blocks) {
        LOG_ERROR("blocks_initial (%lld) exceeds max_blocks (%lld)",
                  (long long)cfg->blocks_initial, (long long)cfg->max_blocks);
        return -EINVAL;
    }
    m->block_first = (uint32_t)first;
    m->block_last = (uint32_t)last;
    return 0;
}

static int choose_numa_node(struct dmce_memd *m)
{
    unsigned nodes = 1;
    int r = dmce_topology_numa_nodes(m->cfg.topology, &nodes);
    if (r < 0) {
        LOG_ERROR("cannot read the topology%s%s: %s", m->cfg.topology[0] ? " " : "",
                  m->cfg.topology, strerror(-r));
        return r;
    }
    if (m->cfg.numa_node >= 0) {
        if ((unsigned)m->cfg.numa_node >= nodes) {
            LOG_ERROR("numa_node %lld: the topology has %u node(s)", (long long)m->cfg.numa_node,
                      nodes);
            return -EINVAL;
        }
        m->numa_node = (int)m->cfg.numa_node;
    } else {
        m->numa_node = (int)((unsigned)(m->cfg.id - 1) % nodes);
    }
    LOG_INFO("topology has %u NUMA node(s); using node %d", nodes, m->numa_node);
    return 0;
}

/*
 * Descriptors: one per client connection, about two per block (its object,
 * its mirror's) and some for the rest. Raise the soft limit (up to the hard
 * one) so that max_clients can be reached; warn when it cannot: connections
 * beyond the limit are then refused (accept_without_fds).
 */
static void raise_fd_limit(struct dmce_memd *m)
{
    rlim_t need = (rlim_t)m->cfg.max_clients + 2 * (rlim_t)m->cfg.max_blocks + 128;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    struct rlimit want = rl;
    want.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (want.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &want) == 0)
        rl = want;
    if (rl.rlim_cur < need)
        LOG_WARN("file descriptor limit %llu is below the %llu that max_clients (%lld) needs: "
                 "connections beyond it will be refused; raise ulimit -n or lower max_clients",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)need,
                 (long long)m->cfg.max_clients);
}

/*
 * The runtime dir's CPU turns board, one per NUMA node (its daemons share
 * the node's CPUs): only with rings, turn_us and at least 2 CPUs. A board
 * that cannot be had leaves turns off, with a warning.
 */
static void open_turns(struct dmce_memd *m)
{
    if (!m->cfg.rings || m->cfg.turn_us == 0 || m->ncpus < 2)
        return;
    char path[DMCE_CFG_STRMAX + 32];
    if (m->numa_node >= 0)
        snprintf(path, sizeof(path), "%s/turns.node%d", m->cfg.runtime_dir, m->numa_node);
    else
        snprintf(path, sizeof(path), "%s/turns", m->cfg.runtime_dir);
    int r = dmce_turns_open(path, m->ncpus, &m->turns);
    if (r < 0)
        LOG_WARN("no CPU turns board at %s (%s): ring clients that outnumber the CPUs will not "
                 "take turns",
                 path, strerror(-r));
    else
        LOG_DEBUG("CPU turns board %s: %u token(s) for %u CPUs", path, dmce_turns_tokens(m->turns),
                  m->ncpus);
}

static int start_workers(struct dmce_memd *m)
{
    m->nworkers = (int)m->cfg.workers;
    open_turns(m);
    for (int i = 0; i < m->nworkers; i++) {
        struct memd_worker *w = &m->workers[i];
        w->m = m;
        w->idx = i;
        w->seat = m->turns ? dmce_turns_join(m->turns) : -1;
        if (m->turns && w->seat < 0)
            LOG_WARN("worker %d: no seat on the CPU turns board (%d workers use it): it serves "
                     "its ring clients without turns",
                     i, DMCE_TURNS_SEATS);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->epfd < 0 || w->evfd < 0 || w->bell < 0)
            return -errno;
        struct epoll_event evb = {.events = EPOLLIN, .data.ptr = &w->bell};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->bell, &evb) < 0)
            return -errno;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &m->listen_fd};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, m->listen_fd, &ev) < 0)
            return -errno;
        struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = &w->evfd};
        if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev2) < 0)
            return -errno;
        int r = pthread_create(&w->thread, NULL, worker_main, w);
        if (r) {
            m->nworkers = i;
            return -r;
        }
    }
    return 0;
}

void memd_test_pause(const char *env, const char *what)
{
    const char *e = getenv(env);
    long ms = e ? strtol(e, NULL, 10) : 0;
    if (ms > 0 && ms <= 60000) {
        LOG_WARN("test hook %s: %s for %ld ms", env, what, ms);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The start is over: client requests held back go on (each worker re-reads its held ones). */
static void start_done(struct dmce_memd *m)
{
    atomic_store_explicit(&m->starting, 0, memory_order_release);
    const uint64_t one = 1;
    for (int i = 0; i < m->nworkers; i++)
        if (write(m->workers[i].evfd, &one, sizeof(one)) < 0)
            LOG_WARN("worker %d: cannot wake it: %s", i, strerror(errno));
}

int dmce_memd_start(const dmce_memd_config_t *cfg, dmce_memd_t **out)
{
    struct dmce_memd *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    /* The calling thread reads the block table too (dmce_memd_tick ends sessions). */
    rcu_register_thread();
    m->cfg = *cfg;
    m->listen_fd = m->lock_fd = -1;
    m->next_session_id = 1;
    m->start_ms = dmce_now_ms();
    cpu_set_t cpus;
    m->ncpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? (unsigned)CPU_COUNT(&cpus) : 1;
    pthread_mutex_init(&m->grow_lock, NULL);
    pthread_mutex_init(&m->grow_serial, NULL);
    pthread_mutex_init(&m->sess_lock, NULL);
    pthread_mutex_init(&m->accept_lock, NULL);
    m->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* -1: taken back later */
    pthread_mutex_init(&m->pf_lock, NULL);
    pthread_cond_init(&m->pf_cond, NULL);
    memd_spare_init(m);
    int r = resolve_config(m);
    if (r < 0)
        goto fail;

    /* One daemon per ID: the lock is held for the daemon's life. */
    m->lock_fd = open(m->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (m->lock_fd < 0) {
        r = -errno;
        LOG_ERROR("cannot open %s: %s", m->lock_path, strerror(errno));
        goto fail;
    }
    if (flock(m->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = -EADDRINUSE;
        LOG_ERROR("another dmce-memd with id %lld runs in %s (lock %s held)", (long long)cfg->id,
                  m->cfg.runtime_dir, m->lock_path);
        close(m->lock_fd);
        m->lock_fd = -1;
        goto fail;
    }
    char pidtxt[32];
    int pl = snprintf(pidtxt, sizeof(pidtxt), "%d\n", (int)getpid());
    if (ftruncate(m->lock_fd, 0) < 0 || pwrite(m->lock_fd, pidtxt, (size_t)pl, 0) != pl)
        LOG_WARN("cannot write pid to %s", m->lock_path);
    remove_stale_shm(m);

    r = choose_numa_node(m);
    if (r < 0)
        goto fail;
    /*
     * Bind this thread before any other starts: every thread of the daemon
     * inherits the affinity (and libnuma's node cache is filled once,
     * here, not concurrently by each thread).
     */
    r = dmce_numa_bind_thread(m->numa_node);
    if (r < 0)
        LOG_WARN("cannot run on NUMA node %d: %s; threads left unbound", m->numa_node,
                 strerror(-r));

    /* Capacity in user-visible data bytes: what formatting a block makes. */
    m->block_data_bytes = dmce_block_data_bytes(cfg->block_size, (uint32_t)cfg->granule);
    if (!m->block_data_bytes) {
        LOG_ERROR("block_size %llu cannot be formatted with granule %llu",
                  (unsigned long long)cfg->block_size, (unsigned long long)cfg->granule);
        r = -EINVAL;
        goto fail;
    }
    m->capacity = m->block_data_bytes * (uint64_t)cfg->max_blocks;

    raise_fd_limit(m);
    /*
     * Listen before registering: the dispatcher asks for our blocks as soon
     * as we register, and its connection waits in the backlog until the
     * workers start.
     */
    m->listen_fd = dmce_unix_listen(m->sock_path, 128);
    if (m->listen_fd < 0) {
        r = m->listen_fd;
        LOG_ERROR("cannot listen on %s: %s", m->sock_path, strerror(-r));
        goto fail;
    }
    /* A backup set to recover keeps its block IDs: read it before registering. */
    r = memd_backup_load(m);
    if (r < 0)
        goto fail;
    /* Register before the first block: the dispatcher hands out the block IDs. */
    r = memd_disp_start(m);
    if (r < 0) {
        LOG_ERROR("cannot register with the dispatcher: %s", dmce_strerror(r));
        goto fail;
    }
    r = memd_mirror_start(m);
    if (r < 0) {
        LOG_ERROR("cannot start the mirroring threads: %s", strerror(-r));
        goto fail;
    }
    if (m->cfg.prefault) {
        r = -pthread_create(&m->pf_thread, NULL, prefault_main, m);
        if (r < 0) {
            LOG_ERROR("cannot start the prefault thread: %s", strerror(-r));
            goto fail;
        }
        m->pf_on = 1;
    }

    /* The pulse thread runs already (memd_usage): publish it as every later table is. */
    struct memd_table *t0 = table_copy(m, NULL);
    if (!t0) {
        r = -ENOMEM;
        goto fail;
    }
    __atomic_store_n(&m->table, t0, __ATOMIC_RELEASE);
    /*
     * Serve from now on, but hold client requests (held_while_starting)
     * until the blocks are back and the initial ones made: the dispatcher
     * reads our blocks as soon as we register, and a recovery of many GiB
     * must not look like a stall to it.
     */
    atomic_store(&m->starting, 1);
    r = start_workers(m);
    if (r < 0) {
        LOG_ERROR("cannot start workers: %s", strerror(-r));
        goto fail;
    }
    /* Recovery (recover = yes) brings backed-up blocks back before any new one. */
    r = memd_backup_start(m);
    if (r < 0)
        goto fail;
    memd_test_pause("DMCE_TEST_START_PAUSE_MS", "before making the initial blocks");
    /*
     * blocks_initial counts the blocks recovery brought back: primaries,
     * not the mirror copies peers may have asked for meanwhile (mirror_create
     * is served while starting), which are not ours to use.
     */
    for (int64_t tries = 0;; tries++) {
        pthread_mutex_lock(&m->grow_lock);
        int64_t own = 0;
        uint32_t seen = m->table->count;
        for (uint32_t i = 0; i < seen; i++)
            own += m->table->list[i]->role == MEMD_PRIMARY;
        pthread_mutex_unlock(&m->grow_lock);
        if (own >= cfg->blocks_initial)
            break;
        /* Each copy made meanwhile changes the count, and table_grow then makes nothing. */
        if (tries > 2 * cfg->max_blocks + cfg->blocks_initial) {
            LOG_ERROR("cannot make the initial blocks: the block table keeps changing");
            r = -EAGAIN;
            goto fail;
        }
        r = table_grow(m, seen); /* the path every new block takes */
        if (r == DMCE_ENOMEM) {  /* copies held for peers took the room: serve them anyway */
            LOG_WARN("made %lld of %lld initial block(s): no room left (%u mirror copies held "
                     "for other daemons)",
                     (long long)own, (long long)cfg->blocks_initial, seen - (uint32_t)own);
            r = 0;
            break;
        }
        if (r < 0)
            goto fail;
    }
    start_done(m);
    /* After the initial blocks: their makers do not wait for spares made meanwhile. */
    r = memd_spare_start(m);
    if (r < 0)
        goto fail;
    char cap[32];
    LOG_INFO("serving on %s: blocks %u..%u of %s, capacity %s, layout %s, %d workers",
             m->sock_path, m->block_first, m->block_last,
             dmce_fmt_size(cfg->block_size, (char[32]){0}, 32),
             dmce_fmt_size(m->capacity, cap, sizeof(cap)), dmce_layout_name(m->layout),
             m->nworkers);
    *out = m;
    return 0;
fail:
    dmce_memd_stop(m);
    return r;
}

void dmce_memd_tick(dmce_memd_t *m)
{
    memd_migrate_tick(m);
    memd_mirror_tick(m);
    if (m->turns) {
        dmce_turns_beat(m->turns);
        dmce_turns_tidy(m->turns, 0); /* a dead daemon's clients stop counting; opens no file */
    }
    uint64_t now = dmce_now_ms();
    for (;;) {
        struct memd_session *expired = NULL;
        pthread_mutex_lock(&m->sess_lock);
        for (struct memd_session *s = m->sessions; s; s = s->next) {
            if (!s->conn && s->orphan_deadline <= now) {
                expired = s;
                break;
            }
        }
        pthread_mutex_unlock(&m->sess_lock);
        if (!expired)
            return;
        sess_end(m, expired, "grace period over");
    }
}

void dmce_memd_stop(dmce_memd_t *m)
{
    if (!m)
        return;
    atomic_store(&m->stop, 1);
    for (int i = 0; i < m->nworkers; i++) {
        uint64_t one = 1;
        if (write(m->workers[i].evfd, &one, sizeof(one)) < 0)
            LOG_WARN("cannot wake worker %d", i);
    }
    for (int i = 0; i < m->nworkers; i++)
        pthread_join(m->workers[i].thread, NULL);
    dmce_turns_close(m->turns); /* the workers left their seats */
    m->turns = NULL;
    if (m->pf_on) {
        pthread_mutex_lock(&m->pf_lock);
        pthread_cond_broadcast(&m->pf_cond);
        pthread_mutex_unlock(&m->pf_lock);
        pthread_join(m->pf_thread, NULL);
    }
    memd_backup_stop(m);
    memd_mirror_stop(m);
    memd_disp_stop(m);
    memd_spare_stop(m);
    for (int i = 0; i < DMCE_MEMD_MAX_WORKERS; i++) {
        if (m->workers[i].epfd > 0)
            close(m->workers[i].epfd);
        if (m->workers[i].evfd > 0)
            close(m->workers[i].evfd);
        if (m->workers[i].bell > 0)
            close(m->workers[i].bell);
    }
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        unlink(m->sock_path);
    }
    while (m->sessions) {
        struct memd_session *s = m->sessions;
        m->sessions = s->next;
        free(s);
    }
    memd_retired_destroy(m);
    if (m->table) {
        for (uint32_t i = 0; i < m->table->count; i++)
            memd_block_destroy(m, m->table->list[i]);
        free(m->table);
    }
    if (m->lock_fd >= 0) {
        unlink(m->lock_path);
        close(m->lock_fd);
    }
    pthread_mutex_destroy(&m->grow_lock);
    pthread_mutex_destroy(&m->grow_serial);
    pthread_mutex_destroy(&m->sess_lock);
    pthread_mutex_destroy(&m->accept_lock);
    free(m->moved_away);
    if (m->spare_fd >= 0)
        close(m->spare_fd);
    pthread_mutex_destroy(&m->pf_lock);
    pthread_cond_destroy(&m->pf_cond);
    memd_spare_fini(m);
    LOG_INFO("stopped; all shm objects removed");
    free(m);
    rcu_unregister_thread();
}
