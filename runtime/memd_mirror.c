/*
 * memd_mirror.c - mirrored blocks in the memory daemon (docs/dispatcher.md).
 *
 * A primary block may have one mirror: a copy of it, under the same block
 * ID, in a shm object that another daemon (the peer) created and owns. The
 * primary maps the peer's object and keeps it identical to the block:
 *
 *   - writes (MSMP write, persist) go to both copies, chunk by chunk, under
 *     the chunk's stripe lock, and are acknowledged after both;
 *   - allocator changes (malloc, free, a session's frees) run on the block
 *     under its lock and are then replayed on the mirror, which is
 *     identical, so the results must be identical: any difference drops the
 *     mirror rather than keep a copy that is not one;
 *   - a new mirror is filled by a mirroring thread: it publishes the
 *     mirror (so writes from then on reach it), then copies the block chunk
 *     by chunk under each chunk's stripe lock, holding the block's allocator
 *     lock throughout. A write and the copy of its chunk are ordered by the
 *     stripe, so the later one carries the newest bytes; the allocator's
 *     state is copied as one snapshot (mallocs and frees wait for the copy),
 *     and replayed on both copies after it.
 *
 * The peer's side: mirror_create makes a fresh, zero object for the block
 * (a MEMD_MIRROR block in its table, which clients cannot use) and hands
 * its descriptor to the primary. promote turns it into a primary when the
 * primary's daemon is gone: its allocations are adopted by their owners'
 * session IDs (orphaned sessions until the clients come back).
 *
 * Locks: grow_lock (table changes) > b->lock (allocator, copy) >
 * b->stripes[i] (chunk writes) > sess_lock; peer_lock alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu.h>

#include <dmce/error.h>

#include "alloc.h"
#include "log.h"
#include "memd_internal.h"
#include "msmp_dispatch.h"
#include "util.h"

/* A connection to a peer daemon, by socket path. */
struct memd_peer {
    struct memd_peer *next;
    pthread_mutex_t lock; /* one request at a time */
    dmce_mconn_t conn;
};


/* ---- writes to both copies ------------------------------------------------------------ */

static pthread_mutex_t *stripe_of(struct memd_block *b, uint64_t off)
{
    return &b->stripes[(off / MEMD_CHUNK) % MEMD_STRIPES];
}

int memd_block_write(struct memd_block *b, uint64_t cell, const void *src, uint64_t len)
{
    const uint8_t *s = src;
    uint8_t *p = b->base;
    int r = 0;
    for (uint64_t off = cell; off < cell + len;) {
        uint64_t end = DMCE_MIN((off / MEMD_CHUNK + 1) * MEMD_CHUNK, cell + len), n = end - off;
        pthread_mutex_t *st = stripe_of(b, off);
        pthread_mutex_lock(st);
        memcpy(p + off, s + (off - cell), n);
        /* Verify (seed 002 FIG. 16): catches a concurrent writer or a bad page. */
        if (memcmp(p + off, s + (off - cell), n) != 0)
            r = -EIO;
        struct memd_mirror *mr = atomic_load_explicit(&b->mirror, memory_order_acquire);
        if (mr) {
            memcpy((uint8_t *)mr->base + off, s + (off - cell), n);
            if (memcmp((uint8_t *)mr->base + off, s + (off - cell), n) != 0)
                r = -EIO;
        }
        pthread_mutex_unlock(st);
        off = end;
    }
    return r;
}

void memd_block_persist(struct memd_block *b, uint64_t cell, uint64_t len)
{
    for (uint64_t off = cell; off < cell + len;) {
        uint64_t end = DMCE_MIN((off / MEMD_CHUNK + 1) * MEMD_CHUNK, cell + len);
        pthread_mutex_t *st = stripe_of(b, off);
        pthread_mutex_lock(st);
        struct memd_mirror *mr = atomic_load_explicit(&b->mirror, memory_order_acquire);
        if (mr)
            memcpy((uint8_t *)mr->base + off, (const uint8_t *)b->base + off, end - off);
        pthread_mutex_unlock(st);
        off = end;
    }
}

/*
 * Stop keeping b's mirror (b->lock held): no writer can be using it once
 * every stripe has been taken. The peer keeps its object until told to
 * drop it.
 */
static void stripes_lock(struct memd_block *b)
{
    for (unsigned i = 0; i < MEMD_STRIPES; i++)
        pthread_mutex_lock(&b->stripes[i]);
}

static void stripes_unlock(struct memd_block *b)
{
    for (unsigned i = MEMD_STRIPES; i-- > 0;)
        pthread_mutex_unlock(&b->stripes[i]);
}

/*
 * The name under which a daemon of this cluster hands over its kept copy
 * of block id (which = 'h') or holds its copy of it (which = 'b').
 */
static int cluster_obj_name(const struct dmce_memd *m, uint32_t daemon, char which, uint32_t id,
                            char *buf, size_t len)
{
    char prefix[sizeof(m->shm_prefix)];
    int r = memd_daemon_prefix(m, daemon, prefix, sizeof(prefix));
    int n = r < 0 ? -1 : snprintf(buf, len, "%s%c%u", prefix, which, id);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The path of the handover name of b's kept copy (cluster_obj_name 'h'); -ENAMETOOLONG. */
static int kept_path(const struct dmce_memd *m, uint32_t id, char *name, size_t nlen, char *path,
                     size_t plen)
{
    int r = cluster_obj_name(m, (uint32_t)m->cfg.id, 'h', id, name, nlen);
    return r == 0 ? memd_obj_path(m, name, path, plen) : r;
}

/* The handover name of b's kept copy goes (the copy is dropped, or the block). */
static void kept_unlink(const struct dmce_memd *m, const struct memd_block *b)
{
    char name[DMCE_MSMP_NAME_MAX + 1], path[DMCE_MSMP_NAME_MAX + 16];
    if (kept_path(m, b->id, name, sizeof(name), path, sizeof(path)) == 0 && unlink(path) < 0 &&
        errno != ENOENT)
        LOG_WARN("block %u: cannot remove %s: %s", b->id, path, strerror(errno));
}

void memd_mirror_forget_kept(struct dmce_memd *m, struct memd_block *b)
{
    if (atomic_exchange(&b->mirror_gone, 0))
        kept_unlink(m, b);
}

/* Unpublish b's mirror and free our side of it (b->lock held). */
static void mirror_free_locked(struct dmce_memd *m, struct memd_block *b, struct memd_mirror *mr)
{
    stripes_lock(b);
    atomic_store_explicit(&b->mirror, NULL, memory_order_release);
    memd_mirror_forget_kept(m, b);
    stripes_unlock(b);
    munmap(mr->base, b->size);
    close(mr->fd);
    free(mr);
}

static void mirror_detach_locked(struct dmce_memd *m, struct memd_block *b, const char *why)
{
    struct memd_mirror *mr = atomic_load(&b->mirror);
    if (!mr)
        return;
    int gone = atomic_load(&b->mirror_gone);
    LOG_WARN("block %u: mirror on memd[%u] dropped%s: %s", b->id, mr->daemon_id,
             gone ? " (its holder was gone already)" : "", why);
    mirror_free_locked(m, b, mr);
    if (gone)
        return; /* counted and reported as lost when its holder went (mirror_keep_locked) */
    STAT_ADD(m, DMCE_STAT_MIRROR_BROKEN, 1);
    memd_disp_event(m, b->id, DMCE_DISP_EV_MIRROR_LOST, 0, 0);
}

/*
 * b's mirror lost its holder (b->lock held; the mirror is synced): go on
 * keeping the copy in step, for a new holder to take over (mirror_adopt),
 * for mirror_keep_ms at most. For the dispatcher and the stats the block
 * has no mirror from now on. Only on the dispatcher's word (op_drop).
 */
static int mirror_keep_locked(struct dmce_memd *m, struct memd_block *b, struct memd_mirror *mr)
{
    /*
     * A name of ours for the object now, while the dead holder's name
     * still keeps it linked: a restart of the holder removes that name,
     * and a file with no name left cannot be linked again. The new holder
     * renames ours to its own (op_mirror_adopt).
     */
    char name[DMCE_MSMP_NAME_MAX + 1], path[DMCE_MSMP_NAME_MAX + 16], proc[64];
    int r = kept_path(m, b->id, name, sizeof(name), path, sizeof(path));
    if (r == 0) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", mr->fd);
        (void)unlink(path); /* left by a process of ours that died */
        if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
            r = -errno;
    }
    if (r < 0) {
        LOG_INFO("block %u: the copy memd[%u] held cannot be kept for a new holder (%s: %s)", b->id,
                 mr->daemon_id, path, strerror(-r));
        return r;
    }
    stripes_lock(b);
    atomic_store(&b->mirror_gone_ms, dmce_now_ms());
    atomic_store(&b->mirror_gone, 1);
    stripes_unlock(b);
    LOG_WARN("block %u: its mirror's holder memd[%u] is gone; the copy is kept in step for up "
             "to %lld ms, for another daemon to take over",
             b->id, mr->daemon_id, (long long)m->cfg.mirror_keep_ms);
    /* No event: the dispatcher, which said the holder is gone, counts the block single. */
    STAT_ADD(m, DMCE_STAT_MIRROR_BROKEN, 1);
    return 0;
}

void memd_mirror_drop_kept_locked(struct dmce_memd *m, struct memd_block *b)
{
    if (atomic_load(&b->mirror_gone))
        mirror_detach_locked(m, b, "the block moves to another daemon");
}

void memd_mirror_tick(struct dmce_memd *m)
{
    uint64_t now = dmce_now_ms();
    uint32_t due[64];
    unsigned n = 0;
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    for (uint32_t i = 0; i < t->count && n < 64; i++) {
        struct memd_block *b = t->list[i];
        if (b->role == MEMD_PRIMARY && atomic_load(&b->mirror_gone) &&
            now - atomic_load(&b->mirror_gone_ms) >= (uint64_t)m->cfg.mirror_keep_ms)
            due[n++] = b->id;
    }
    rcu_read_unlock();
    /* Under grow_lock: the block stays in the table (a drop or a move takes that lock). */
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_lock(&m->grow_lock);
        struct memd_block *b = due[i] < m->table->nids ? m->table->by_id[due[i]] : NULL;
        if (b && b->role == MEMD_PRIMARY) {
            pthread_mutex_lock(&b->lock);
            /* Not while an attach may be taking it over (memd_mirror_attach). */
            if (atomic_load(&b->mirror_gone) && !atomic_load(&b->attaching))
                mirror_detach_locked(m, b, "no daemon took it over in time (mirror_keep_ms)");
            pthread_mutex_unlock(&b->lock);
        }
        pthread_mutex_unlock(&m->grow_lock);
    }
}

static struct memd_mirror *synced_mirror(struct memd_block *b)
{
    struct memd_mirror *mr = atomic_load_explicit(&b->mirror, memory_order_acquire);
    return mr && atomic_load(&mr->state) == MEMD_MIRROR_SYNCED ? mr : NULL;
}

void memd_mirror_after_alloc(struct dmce_memd *m, struct memd_block *b, uint64_t size,
                             uint32_t owner, uint64_t offset)
{
    atomic_fetch_add_explicit(&b->alloc_gen, 1, memory_order_release);
    struct memd_mirror *mr = synced_mirror(b);
    if (!mr)
        return;
    uint64_t off = 0;
    int r = dmce_alloc(mr->base, size, owner, &off);
    if (r != 0 || off != offset)
        mirror_detach_locked(m, b, "its allocator disagreed on a malloc");
}

void memd_mirror_after_free(struct dmce_memd *m, struct memd_block *b, uint64_t offset)
{
    atomic_fetch_add_explicit(&b->alloc_gen, 1, memory_order_release);
    struct memd_mirror *mr = synced_mirror(b);
    if (mr && dmce_alloc_free(mr->base, offset, NULL, NULL) != 0)
        mirror_detach_locked(m, b, "its allocator disagreed on a free");
}

void memd_mirror_after_free_owner(struct dmce_memd *m, struct memd_block *b, uint32_t owner,
                                  int freed)
{
    atomic_fetch_add_explicit(&b->alloc_gen, 1, memory_order_release);
    struct memd_mirror *mr = synced_mirror(b);
    if (mr && dmce_alloc_free_owner(mr->base, owner, NULL) != freed)
        mirror_detach_locked(m, b, "its allocator disagreed on a session's frees");
}

/* ---- peers ---------------------------------------------------------------------------- */

static struct memd_peer *peer_get(struct dmce_memd *m, const char *path)
{
    pthread_mutex_lock(&m->peer_lock);
    struct memd_peer *p = m->peers;
    while (p && strcmp(p->conn.path, path) != 0)
        p = p->next;
    if (!p && (p = calloc(1, sizeof(*p)))) {
        if (dmce_mconn_init(&p->conn, path, 10000, DMCE_MCONN_NO_RING) < 0) {
            free(p);
            p = NULL;
        } else {
            pthread_mutex_init(&p->lock, NULL);
            p->next = m->peers;
            m->peers = p;
        }
    }
    pthread_mutex_unlock(&m->peer_lock);
    return p;
}

int memd_peer_rpc(struct dmce_memd *m, const char *path, uint16_t op, const void *p, size_t l,
                  void *resp, size_t cap, size_t *rlen, int *fds, unsigned maxfds,
                  unsigned *nfds)
{
    struct memd_peer *peer = peer_get(m, path);
    *nfds = 0;
    if (!peer)
        return -ENOMEM;
    pthread_mutex_lock(&peer->lock);
    int r = dmce_mconn_rpc_fds(&peer->conn, op, p, l, resp, cap, rlen, fds, maxfds, nfds);
    if (r == DMCE_ECLOSED) /* a connection to the peer's previous process (it restarted): again */
        r = dmce_mconn_rpc_fds(&peer->conn, op, p, l, resp, cap, rlen, fds, maxfds, nfds);
    pthread_mutex_unlock(&peer->lock);
    return r;
}

/* ---- copying a block to a new mirror ---------------------------------------------------- */

/* Bytes of b that can differ from zero: metadata and data up to the high-water mark. */
static uint64_t used_extent(const struct memd_block *b)
{
    const dmce_block_hdr_t *h = b->base;
    uint64_t end = h->data_offset + (uint64_t)h->hwm * h->granule;
    end = (end + MEMD_CHUNK - 1) / MEMD_CHUNK * MEMD_CHUNK;
    return DMCE_MIN(end, b->size);
}

static int mirror_attach_once(struct dmce_memd *m, struct memd_block *b, uint32_t peer_id,
                              const char *path, uint64_t *copied);

/* Ask the peer at path to drop its copy of block id (best effort: logged, not returned). */
static void peer_drop(struct dmce_memd *m, const char *path, uint32_t id)
{
    uint8_t rq[DMCE_MSMP_BLOCK_REQ_SIZE], resp[8];
    size_t rl = 0;
    unsigned nf = 0;
    dmce_msmp_block_req_encode(id, rq);
    int r = memd_peer_rpc(m, path, DMCE_MSMP_OP_DROP, rq, sizeof(rq), resp, sizeof(resp), &rl,
                          NULL, 0, &nf);
    if (r < 0)
        LOG_WARN("block %u: the copy on %s could not be dropped: %s", id, path, dmce_strerror(r));
}

void memd_mirror_abandon(struct dmce_memd *m, struct memd_block *b)
{
    struct memd_mirror *mr = atomic_exchange(&b->mirror, NULL);
    if (!mr)
        return;
    if (atomic_load(&b->mirror_gone))
        memd_mirror_forget_kept(m, b);
    else
        peer_drop(m, mr->peer, b->id);
    munmap(mr->base, b->size);
    close(mr->fd);
    free(mr);
}

/*
 * Have the daemon at path take over b's kept copy (its holder is gone) as
 * it is: the copy gets a name the peer renames to its own, and no byte is
 * copied. 0 (the copy is b's mirror again, on peer_id), or an error with b
 * as it was (the caller drops the copy and makes a new one).
 */
static int mirror_adopt(struct dmce_memd *m, struct memd_block *b, uint32_t peer_id,
                        const char *path, uint64_t *copied)
{
    dmce_msmp_mirror_adopt_t rq = {.block = b->id, .primary = (uint32_t)m->cfg.id, .size = b->size};
    char fspath[sizeof(rq.name) + 16];
    int r = kept_path(m, b->id, rq.name, sizeof(rq.name), fspath, sizeof(fspath));
    pthread_mutex_lock(&b->lock);
    struct memd_mirror *mr = atomic_load(&b->mirror);
    struct stat st;
    if (r < 0)
        ;
    else if (!mr || !atomic_load(&b->mirror_gone))
        r = -ENOENT; /* dropped meanwhile (or given a holder): nothing to hand over */
    else if (fstat(mr->fd, &st) < 0)
        r = -errno;
    if (r == 0) {
        rq.holder = mr->daemon_id;
        rq.ino = (uint64_t)st.st_ino;
    }
    pthread_mutex_unlock(&b->lock);
    if (r < 0) {
        LOG_WARN("block %u: its kept copy cannot be handed over (%s): a new copy is made", b->id,
                 strerror(-r));
        return r;
    }
    uint8_t pl[DMCE_MSMP_MIRROR_ADOPT_HDR + DMCE_MSMP_NAME_MAX];
    int n = dmce_msmp_mirror_adopt_encode(&rq, pl, sizeof(pl));
    unsigned nfd = 0;
    uint64_t t0 = dmce_now_ns();
    r = n < 0 ? n
              : memd_peer_rpc(m, path, DMCE_MSMP_OP_MIRROR_ADOPT, pl, (size_t)n, NULL, 0, NULL,
                              NULL, 0, &nfd);
    if (r < 0) { /* the kept copy and its name go (memd_mirror_attach) */
        LOG_WARN("block %u: memd[%u] (%s) did not take over its kept copy: %s; a new copy is made",
                 b->id, peer_id, path, dmce_strerror(r));
        return r;
    }
    pthread_mutex_lock(&b->lock);
    if (atomic_load(&b->mirror) != mr) {
        /* Dropped while the peer took it (an allocator mismatch): its copy is not one. */
        pthread_mutex_unlock(&b->lock);
        LOG_WARN("block %u: its kept copy was dropped while memd[%u] took it over", b->id, peer_id);
        peer_drop(m, path, b->id);
        return -ESTALE;
    }
    stripes_lock(b);
    mr->daemon_id = peer_id;
    snprintf(mr->peer, sizeof(mr->peer), "%s", path);
    uint64_t in_use = mr->to_copy = used_extent(b); /* mr is not ours once b->lock goes */
    atomic_store(&mr->copied, in_use);
    atomic_store(&b->mirror_gone, 0); /* its handover name is the peer's own name now */
    stripes_unlock(b);
    pthread_mutex_unlock(&b->lock);
    LOG_INFO("block %u mirrored on memd[%u] again: it took over the copy memd[%u] held, %llu "
             "bytes in use, in %llu us, nothing copied",
             b->id, peer_id, rq.holder, (unsigned long long)in_use,
             (unsigned long long)((dmce_now_ns() - t0) / 1000));
    if (copied)
        *copied = in_use;
    return 0;
}

int memd_mirror_attach(struct dmce_memd *m, struct memd_block *b, uint32_t peer_id, const char *path,
                       uint64_t *copied)
{
    if (atomic_exchange(&b->attaching, 1))
        return -EALREADY; /* another attach of this block is under way */
    int r = -EALREADY;
    if (atomic_load(&b->mirror_gone)) {
        r = mirror_adopt(m, b, peer_id, path, copied) == 0 ? 1 : -ENOENT;
        if (r < 0) { /* a new copy, then: the kept one goes */
            pthread_mutex_lock(&b->lock);
            if (atomic_load(&b->mirror_gone))
                mirror_detach_locked(m, b, "a new copy is made instead");
            pthread_mutex_unlock(&b->lock);
        }
    }
    if (r < 0)
        r = mirror_attach_once(m, b, peer_id, path, copied);
    atomic_store(&b->attaching, 0);
    return r;
}

/*
 * Copy n bytes at off of b into its new mirror (object fd, mapped at
 * base), the chunk's stripe held. Into the object through its descriptor,
 * not through our mapping of it: the kernel copies into the pages the peer
 * fallocate()d, and this process builds no page table for them (on this
 * kind of machine mapping a page costs as much as copying four:
 * docs/perf.md, re-mirror). The mapping and the object are the same pages,
 * so a writer storing through the mapping in another chunk meanwhile, or in
 * this one later, is coherent with it. Whatever pwrite does not take (an
 * error, a short write) is copied through the mapping.
 *
 * Writers that do not take the stripe may change these bytes meanwhile: a
 * session store's operations (here or in a client that maps the block)
 * write its memory directly, then persist the table's ranges they changed
 * under the stripe, so a range read here half-changed is copied again;
 * lock words and reader slots a copy need not share (docs/store.md
 * section 12). Nothing read here is used by this process
 * (tests/fuzz/tsan.supp).
 */
static __attribute__((noinline)) void copy_chunk_to_mirror(struct memd_block *b, int fd, void *base,
                                                           uint64_t off, uint64_t n)
{
    uint64_t done = 0;
    while (done < n) {
        ssize_t w =
            pwrite(fd, (const uint8_t *)b->base + off + done, n - done, (off_t)(off + done));
        if (w <= 0)
            break;
        done += (uint64_t)w;
    }
    if (done < n)
        memcpy((uint8_t *)base + off + done, (const uint8_t *)b->base + off + done, n - done);
}

static int mirror_attach_once(struct dmce_memd *m, struct memd_block *b, uint32_t peer_id,
                              const char *path, uint64_t *copied)
{
    if (atomic_load(&b->mirror))
        return -EALREADY;
    dmce_msmp_mirror_create_t rq = {.block = b->id, .primary = (uint32_t)m->cfg.id,
                                    .size = b->size};
    uint8_t pl[DMCE_MSMP_MIRROR_CREATE_SIZE], resp[DMCE_MSMP_MIRROR_CREATE_SIZE];
    dmce_msmp_mirror_create_encode(&rq, pl);
    size_t rlen = 0;
    int fd = -1;
    unsigned nfd = 0;
    int r = memd_peer_rpc(m, path, DMCE_MSMP_OP_MIRROR_CREATE, pl, sizeof(pl), resp, sizeof(resp),
                          &rlen, &fd, 1, &nfd);
    if (r == 0 && fd < 0)
        r = -EPROTO;
    if (r < 0) {
        LOG_WARN("block %u: memd[%u] (%s) cannot hold a mirror: %s; the block stays single", b->id,
                 peer_id, path, dmce_strerror(r));
        STAT_ADD(m, DMCE_STAT_MIRROR_BROKEN, 1);
        return r;
    }
    struct memd_mirror *mr = calloc(1, sizeof(*mr));
    struct stat fst;
    void *base = MAP_FAILED;
    if (mr && fstat(fd, &fst) == 0 && (uint64_t)fst.st_size >= b->size) /* never past its end */
        base = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        r = mr ? -errno : -ENOMEM;
        LOG_ERROR("block %u: cannot map the mirror from memd[%u]: %s", b->id, peer_id,
                  strerror(-r));
        free(mr);
        close(fd);
        peer_drop(m, path, b->id); /* the copy it made goes: nobody will use it */
        return r ? r : -EPROTO;
    }
    mr->daemon_id = peer_id;
    snprintf(mr->peer, sizeof(mr->peer), "%s", path);
    mr->fd = fd;
    mr->base = base;
    atomic_store(&mr->state, MEMD_MIRROR_COPYING);

    uint64_t t0 = dmce_now_ns();
    pthread_mutex_lock(&b->lock); /* mallocs and frees wait: the allocator's state is one snapshot */
    mr->to_copy = used_extent(b);
    atomic_store_explicit(&b->mirror, mr, memory_order_release); /* writes now reach it too */
    for (uint64_t off = 0; off < mr->to_copy && !atomic_load(&m->stop); off += MEMD_CHUNK) {
        uint64_t n = DMCE_MIN((uint64_t)MEMD_CHUNK, mr->to_copy - off);
        pthread_mutex_t *st = stripe_of(b, off);
        pthread_mutex_lock(st);
        copy_chunk_to_mirror(b, fd, base, off, n);
        pthread_mutex_unlock(st);
        atomic_fetch_add(&mr->copied, n);
        STAT_ADD(m, DMCE_STAT_MIRROR_BYTES_COPIED, n);
    }
    if (atomic_load(&m->stop)) {
        mirror_detach_locked(m, b, "the daemon is stopping");
        pthread_mutex_unlock(&b->lock);
        return -ECANCELED;
    }
    atomic_store(&mr->state, MEMD_MIRROR_SYNCED);
    uint64_t done = mr->to_copy; /* mr is not ours once b->lock goes (a mismatch frees it) */
    pthread_mutex_unlock(&b->lock);
    double s = (double)(dmce_now_ns() - t0) / 1e9;
    LOG_INFO("block %u mirrored on memd[%u]: %llu bytes copied in %.3f s (%.2f GB/s)", b->id,
             peer_id, (unsigned long long)done, s, s > 0 ? (double)done / 1e9 / s : 0.0);
    if (copied)
        *copied = done;
    return 0;
}

static void mirror_job(struct dmce_memd *m, const struct memd_mirror_job *j)
{
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    struct memd_block *b = j->block < t->nids ? t->by_id[j->block] : NULL;
    /*
     * A primary stays until the daemon stops (this thread stops first) or
     * it is handed off, which never happens to a block a mirroring
     * thread copies (memd_mirror_busy_locked).
     */
    rcu_read_unlock();
    if (b && atomic_load(&b->frozen)) {
        LOG_INFO("mirror block %u on memd[%u]: it moved to another daemon meanwhile", j->block,
                 j->peer);
        return;
    }
    if (!b || b->role != MEMD_PRIMARY) {
        LOG_WARN("mirror block %u on memd[%u]: no such primary here", j->block, j->peer);
        return;
    }
    uint64_t copied = 0;
    int r = memd_mirror_attach(m, b, j->peer, j->path, &copied);
    if (r >= 0)
        memd_disp_event(m, b->id, r ? DMCE_DISP_EV_MIRROR_ADOPTED : DMCE_DISP_EV_MIRRORED, j->peer,
                        copied);
    else if (r != -EALREADY)
        memd_disp_event(m, b->id, DMCE_DISP_EV_MIRROR_LOST, 0, 0);
}

static void *mirror_main(void *arg)
{
    struct memd_mirror_thread *me = arg;
    struct dmce_memd *m = me->m;
    rcu_register_thread(); /* it reads the block table (mirror_job) */
    pthread_mutex_lock(&m->mr_lock);
    for (;;) {
        while (!m->mr_jobs && !atomic_load(&m->stop))
            pthread_cond_wait(&m->mr_cond, &m->mr_lock);
        if (atomic_load(&m->stop))
            break;
        struct memd_mirror_job *j = m->mr_jobs;
        m->mr_jobs = j->next;
        me->current = j->block; /* not handed off while we copy it (memd_migrate.c) */
        pthread_mutex_unlock(&m->mr_lock);
        mirror_job(m, j);
        free(j);
        pthread_mutex_lock(&m->mr_lock);
        me->current = 0;
    }
    pthread_mutex_unlock(&m->mr_lock);
    rcu_unregister_thread();
    return NULL;
}

int memd_mirror_busy_locked(const struct dmce_memd *m, uint32_t block)
{
    for (const struct memd_mirror_job *j = m->mr_jobs; j; j = j->next)
        if (j->block == block)
            return 1;
    for (unsigned i = 0; i < m->mr_on; i++)
        if (m->mr_threads[i].current == block)
            return 1;
    return 0;
}

int memd_mirror_start(struct dmce_memd *m)
{
    pthread_mutex_init(&m->mr_lock, NULL);
    pthread_cond_init(&m->mr_cond, NULL);
    pthread_mutex_init(&m->peer_lock, NULL);
    for (unsigned i = 0; i < MEMD_MIRROR_THREADS; i++) {
        m->mr_threads[i].m = m;
        int r = pthread_create(&m->mr_threads[i].thread, NULL, mirror_main, &m->mr_threads[i]);
        if (r)
            return -r; /* memd_mirror_stop joins those started */
        m->mr_on = i + 1;
    }
    return 0;
}

void memd_mirror_stop(struct dmce_memd *m)
{
    if (m->mr_on) {
        pthread_mutex_lock(&m->mr_lock);
        pthread_cond_broadcast(&m->mr_cond);
        pthread_mutex_unlock(&m->mr_lock);
        for (unsigned i = 0; i < m->mr_on; i++)
            pthread_join(m->mr_threads[i].thread, NULL);
        m->mr_on = 0;
        while (m->mr_jobs) {
            struct memd_mirror_job *j = m->mr_jobs;
            m->mr_jobs = j->next;
            free(j);
        }
        pthread_mutex_destroy(&m->mr_lock);
        pthread_cond_destroy(&m->mr_cond);
    }
    while (m->peers) {
        struct memd_peer *p = m->peers;
        m->peers = p->next;
        dmce_mconn_close(&p->conn);
        pthread_mutex_destroy(&p->lock);
        free(p);
    }
}

/* ---- operations ------------------------------------------------------------------------- */

static struct memd_block *block_by_id(struct dmce_memd *m, uint32_t id)
{
    struct memd_table *t = memd_table_get(m);
    return id < t->nids ? t->by_id[id] : NULL;
}

/* persist: copy a range of a live allocation to the mirror. */
static void op_persist(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_msmp_range_t rq[DMCE_MSMP_PERSIST_MAX];
    unsigned n = 0;
    int r = dmce_msmp_ranges_decode(p, len, rq, DMCE_MSMP_PERSIST_MAX, &n);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (!c->sess)
        return memd_reply_error(m, c, &c->h, DMCE_ENOSETUP);
    /* All or nothing: every range is checked before any is copied. */
    struct memd_block *b[DMCE_MSMP_PERSIST_MAX];
    uint64_t cell[DMCE_MSMP_PERSIST_MAX];
    rcu_read_lock();
    for (unsigned i = 0; i < n && r == 0; i++) {
        r = memd_resolve_primary(m, rq[i].addr, &b[i], &cell[i]);
        if (r == 0)
            r = dmce_alloc_check(b[i]->base, cell[i], rq[i].len);
    }
    for (unsigned i = 0; i < n && r == 0; i++)
        memd_block_persist(b[i], cell[i], rq[i].len);
    rcu_read_unlock();
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    STAT_ADD(m, DMCE_STAT_OPS_PERSIST, 1);
    memd_reply_begin(c, &c->h, 0, 0);
}

/* mirror_create (peer side): a fresh, zero object for another daemon's block. */
static void op_mirror_create(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p,
                             uint32_t len)
{
    dmce_msmp_mirror_create_t rq;
    int r = dmce_msmp_mirror_create_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (rq.primary == (uint32_t)m->cfg.id)
        return memd_reply_error(m, c, &c->h, -EINVAL); /* a block is never its own mirror */
    if (rq.size > (1ull << 40))
        return memd_reply_error(m, c, &c->h, -EMSGSIZE);
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = NULL, *stale;
    if (rq.block < m->table->nids && (stale = m->table->by_id[rq.block]) &&
        atomic_load(&stale->role) == MEMD_MIRROR && stale->primary_daemon == rq.primary &&
        stale->primary_pid != 0 && stale->primary_pid == c->pid &&
        c->serial >= stale->primary_conn) {
        /*
         * The process that asked for this copy asks again, so it does not
         * use it: its attach failed after we made it (it could not map it,
         * or the answer was lost), and it attaches one block at a time. A
         * new, zero copy replaces it; refusing (EEXIST) would leave the
         * block single for good. Asked by another process (a restarted
         * primary, or after the block moved: reparent forgets the pid), the
         * copy may be someone's live mirror or newer data: EEXIST as before.
         * Asked on an older connection than the copy was: that is the
         * request the primary gave up on (its connection broke and it asked
         * again on a new one, which our other worker served first), and the
         * copy is the one it uses: EEXIST, to a connection nobody reads.
         */
        if ((r = memd_table_remove_locked(m, stale)) == 0) {
            pthread_mutex_lock(&m->sess_lock);
            m->mirror_bytes -= DMCE_MIN(m->mirror_bytes, m->block_data_bytes);
            pthread_mutex_unlock(&m->sess_lock);
            LOG_WARN("memd[%u] asks again for a mirror of its block %u: the copy held here is "
                     "replaced", rq.primary, rq.block);
            /* Unpublished and past a grace period: nobody uses it. Its name goes
             * before the new one takes it; the tick frees its pages. */
            memd_block_retire(m, stale);
        }
    }
    if (r < 0)
        ;
    else if (rq.block >= m->table->nids)
        r = -EINVAL;
    else if (m->table->by_id[rq.block])
        r = -EEXIST;
    else if (m->table->count >= (uint32_t)m->cfg.max_blocks)
        r = DMCE_ENOMEM;
    if (r == 0) {
        /* A copy takes a block of room: reservations already promised keep theirs. */
        pthread_mutex_lock(&m->sess_lock);
        if (m->committed + m->mirror_bytes + m->block_data_bytes > m->capacity)
            r = DMCE_ENOMEM;
        else
            m->mirror_bytes += m->block_data_bytes;
        pthread_mutex_unlock(&m->sess_lock);
    }
    if (r == 0) {
        r = memd_block_create(m, rq.block, rq.size, 0, &b);
        if (r == 0) {
            b->primary_daemon = rq.primary;
            b->primary_pid = c->pid;
            b->primary_conn = c->serial;
            r = memd_table_add_locked(m, b);
            if (r < 0)
                memd_block_destroy(m, b);
        }
        if (r < 0) {
            pthread_mutex_lock(&m->sess_lock);
            m->mirror_bytes -= m->block_data_bytes;
            pthread_mutex_unlock(&m->sess_lock);
        }
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0) {
        LOG_WARN("cannot hold a mirror of memd[%u]'s block %u: %s", rq.primary, rq.block,
                 dmce_strerror(r));
        return memd_reply_error(m, c, &c->h, r);
    }
    r = memd_reply_fd(m, c, b->fd);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    LOG_INFO("holding a mirror of memd[%u]'s block %u", rq.primary, rq.block);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_MIRROR_CREATE_SIZE);
    if (out)
        dmce_msmp_mirror_create_encode(&rq, out);
}

/*
 * mirror_adopt (peer side): take over as our copy of another daemon's
 * block the object its primary kept in step after the copy's holder went
 * (mirror_adopt above). The object must be the handover name of that
 * primary in our directory, with the inode the primary names: a name
 * elsewhere, or another object under it, is refused.
 */
static void op_mirror_adopt(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p,
                            uint32_t len)
{
    dmce_msmp_mirror_adopt_t rq;
    int r = dmce_msmp_mirror_adopt_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (rq.primary == (uint32_t)m->cfg.id || rq.holder == rq.primary)
        return memd_reply_error(m, c, &c->h, -EINVAL); /* a block is never its own mirror */
    if (rq.size > (1ull << 40))
        return memd_reply_error(m, c, &c->h, -EMSGSIZE);
    char want[sizeof(rq.name)], from[sizeof(rq.name) + 16];
    if (cluster_obj_name(m, rq.primary, 'h', rq.block, want, sizeof(want)) < 0 ||
        strcmp(rq.name, want) != 0) {
        LOG_WARN("mirror_adopt of block %u from memd[%u]: %s is not its handover name here (%s)",
                 rq.block, rq.primary, rq.name, want);
        return memd_reply_error(m, c, &c->h, -EXDEV);
    }
    memd_obj_path(m, rq.name, from, sizeof(from)); /* fits: want did */
    int fd = m->cfg.shm_dir[0] ? open(rq.name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
                               : shm_open(rq.name, O_RDWR | O_CLOEXEC, 0);
    struct stat st, dir;
    if (fd < 0 || fstat(fd, &st) < 0 || stat(memd_obj_dir(m), &dir) < 0)
        r = -errno;
    else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_ino != rq.ino || st.st_dev != dir.st_dev ||
             st.st_uid != geteuid())
        r = -ESTALE; /* not the object the primary linked */
    else if ((uint64_t)st.st_size < rq.size)
        r = -EPROTO;
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        LOG_WARN("mirror_adopt of block %u from memd[%u]: %s: %s", rq.block, rq.primary, rq.name,
                 strerror(-r));
        return memd_reply_error(m, c, &c->h, r);
    }
    uint64_t t0 = dmce_now_ns();
    struct memd_block *b = NULL;
    int counted = 0;
    pthread_mutex_lock(&m->grow_lock);
    if (rq.block >= m->table->nids)
        r = -EINVAL;
    else if (m->table->by_id[rq.block])
        r = -EEXIST;
    else if (m->table->count >= (uint32_t)m->cfg.max_blocks)
        r = DMCE_ENOMEM;
    if (r == 0) { /* a copy takes a block of room, as a new one would */
        pthread_mutex_lock(&m->sess_lock);
        if (m->committed + m->mirror_bytes + m->block_data_bytes > m->capacity)
            r = DMCE_ENOMEM;
        else
            m->mirror_bytes += m->block_data_bytes;
        counted = r == 0;
        pthread_mutex_unlock(&m->sess_lock);
    }
    if (r == 0)
        r = memd_block_from_fd(m, rq.block, fd, rq.size, &b); /* owns fd from here */
    else
        close(fd);
    if (r == 0) {
        const dmce_block_hdr_t *h = b->base;
        b->role = MEMD_MIRROR;
        b->primary_daemon = rq.primary;
        b->primary_pid = c->pid;
        b->primary_conn = c->serial;
        b->handed_off = 1; /* no name of ours yet: the destroy must not unlink one */
        if ((r = dmce_block_attach(b->base, b->size)) < 0 || h->block_id != rq.block ||
            h->size != rq.size) {
            LOG_ERROR("block %u: the copy memd[%u] handed over is not that block (%s)", rq.block,
                      rq.primary, r < 0 ? "its header is not a block's" : "another ID or size");
            r = r < 0 ? r : DMCE_ECORRUPT;
        }
    }
    if (r == 0) {
        char to[sizeof(b->name) + 16];
        memd_obj_path(m, b->name, to, sizeof(to));
        struct stat now;
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0) {
            r = -errno; /* EEXIST: a stale object of ours under that name: not replaced */
            LOG_ERROR("block %u: cannot rename %s to %s: %s", rq.block, from, to, strerror(errno));
        } else if (stat(to, &now) < 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
            /* Another object came under the name between our open and the rename: not ours. */
            r = -ESTALE;
            (void)rename(to, from);
            LOG_ERROR("block %u: %s changed under us; not taken over", rq.block, from);
        } else {
            b->handed_off = 0;
        }
    }
    if (r == 0)
        r = memd_table_add_locked(m, b);
    if (r < 0 && counted) {
        pthread_mutex_lock(&m->sess_lock);
        m->mirror_bytes -= DMCE_MIN(m->mirror_bytes, m->block_data_bytes);
        pthread_mutex_unlock(&m->sess_lock);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0) {
        if (b) /* our name, if it got one, goes; the primary keeps the object open */
            memd_block_destroy(m, b);
        LOG_WARN("cannot take over the copy of memd[%u]'s block %u: %s", rq.primary, rq.block,
                 dmce_strerror(r));
        return memd_reply_error(m, c, &c->h, r);
    }
    /* The name the copy had on its old holder: ours now, so its restart need not remove it. */
    char old[sizeof(rq.name)], oldpath[sizeof(rq.name) + 16];
    struct stat ost;
    if (rq.holder && rq.holder != (uint32_t)m->cfg.id &&
        cluster_obj_name(m, rq.holder, 'b', rq.block, old, sizeof(old)) == 0) {
        if (memd_obj_path(m, old, oldpath, sizeof(oldpath)) == 0 && stat(oldpath, &ost) == 0 &&
            ost.st_ino == st.st_ino && ost.st_dev == st.st_dev && unlink(oldpath) == 0)
            LOG_INFO("block %u: removed %s, the name the copy had on memd[%u]", rq.block, old,
                     rq.holder);
    }
    STAT_ADD(m, DMCE_STAT_MIRROR_ADOPTED, 1);
    LOG_INFO("holding a mirror of memd[%u]'s block %u again: took over the copy memd[%u] held, "
             "in %llu us",
             rq.primary, rq.block, rq.holder, (unsigned long long)((dmce_now_ns() - t0) / 1000));
    memd_reply_begin(c, &c->h, 0, 0);
}

/* mirror_start (from the dispatcher): copy a primary to a new mirror on a peer. */
static void op_mirror_start(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p,
                            uint32_t len)
{
    dmce_msmp_mirror_start_t rq;
    int r = dmce_msmp_mirror_start_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    rcu_read_lock();
    struct memd_block *b = block_by_id(m, rq.block);
    if (!b || b->role != MEMD_PRIMARY)
        r = DMCE_ENOBLOCK;
    else if (atomic_load(&b->frozen))
        r = DMCE_EMOVING;
    else if (memd_live_mirror(b))
        r = -EALREADY;
    rcu_read_unlock();
    if (r == 0 && rq.peer == (uint32_t)m->cfg.id)
        r = -EINVAL;
    struct memd_mirror_job *j = r == 0 ? calloc(1, sizeof(*j)) : NULL;
    if (r == 0 && !j)
        r = -ENOMEM;
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    j->block = rq.block;
    j->peer = rq.peer;
    memcpy(j->path, rq.path, sizeof(j->path));
    pthread_mutex_lock(&m->mr_lock);
    struct memd_mirror_job **pp = &m->mr_jobs;
    while (*pp)
        pp = &(*pp)->next;
    *pp = j;
    pthread_cond_signal(&m->mr_cond);
    pthread_mutex_unlock(&m->mr_lock);
    memd_reply_begin(c, &c->h, 0, 0);
}

static int tally_one(const dmce_alloc_info_t *ai, void *arg)
{
    return memd_tally_add(arg, ai->owner, ai->size, 1);
}

int memd_tally_add(struct memd_tally *t, uint32_t owner, uint64_t bytes, uint64_t allocs)
{
    t->allocs += allocs;
    t->bytes += bytes;
    for (size_t i = 0; i < t->n; i++) {
        if (t->o[i].owner == owner) {
            t->o[i].bytes += bytes;
            t->o[i].allocs += allocs;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        dmce_adm_owner_t *p = realloc(t->o, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        t->o = p;
        t->cap = cap;
    }
    t->o[t->n++] = (dmce_adm_owner_t){owner, bytes, allocs};
    return 0;
}

int memd_block_tally(struct memd_block *b, struct memd_tally *t)
{
    pthread_mutex_lock(&b->lock);
    int r = dmce_alloc_foreach(b->base, tally_one, t);
    pthread_mutex_unlock(&b->lock);
    return r;
}

int memd_sessions_apply(struct dmce_memd *m, const struct memd_tally *t, int sign)
{
    int r = 0;
    size_t i;
    pthread_mutex_lock(&m->sess_lock);
    for (i = 0; i < t->n && r == 0; i++) {
        struct memd_session *s = memd_sess_by_id_locked(m, t->o[i].owner);
        if (sign > 0) { /* the owners' sessions, orphaned until their clients return */
            if (!s && !(s = memd_sess_orphan_locked(m, t->o[i].owner)))
                r = -ENOMEM;
            else
                memd_sess_account_locked(m, s, s->reserved, s->used + t->o[i].bytes);
        } else if (s) {
            memd_sess_account_locked(m, s, s->reserved, s->used - DMCE_MIN(s->used, t->o[i].bytes));
        }
    }
    /* All or nothing: owners added before a failure are taken away again. */
    for (size_t k = 0; r < 0 && k + 1 < i; k++) {
        struct memd_session *s = memd_sess_by_id_locked(m, t->o[k].owner);
        if (s)
            memd_sess_account_locked(m, s, s->reserved, s->used - DMCE_MIN(s->used, t->o[k].bytes));
    }
    pthread_mutex_unlock(&m->sess_lock);
    return r;
}

int memd_sessions_take(struct dmce_memd *m, struct memd_block *b, int sign, uint64_t *allocs,
                       uint64_t *bytes, size_t *owners)
{
    struct memd_tally t = {0};
    int r = memd_block_tally(b, &t);
    if (r == 0)
        r = memd_sessions_apply(m, &t, sign);
    *allocs = t.allocs;
    *bytes = t.bytes;
    *owners = t.n;
    free(t.o);
    return r;
}

/* promote (from the dispatcher): the primary's daemon is gone; this copy is the block now. */
static void op_promote(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id;
    int r = dmce_msmp_block_req_decode(p, len, &id);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    uint64_t allocs = 0, bytes = 0;
    size_t owners = 0;
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    if (!b)
        r = DMCE_ENOBLOCK;
    else if (b->role == MEMD_PRIMARY)
        r = -EALREADY;
    else if ((r = dmce_block_attach(b->base, b->size)) < 0)
        LOG_ERROR("block %u: the mirror copy is not a block (%s): not promoted", id,
                  dmce_strerror(r));
    if (r == 0)
        r = memd_sessions_take(m, b, 1, &allocs, &bytes, &owners);
    if (r == 0) {
        pthread_mutex_lock(&m->sess_lock);
        m->mirror_bytes -= DMCE_MIN(m->mirror_bytes, m->block_data_bytes);
        pthread_mutex_unlock(&m->sess_lock);
        b->role = MEMD_PRIMARY; /* readers see it on their next lookup */
        STAT_ADD(m, DMCE_STAT_PROMOTED, 1);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    LOG_WARN("block %u promoted: this daemon holds it now (was memd[%u]'s); %llu allocations, "
             "%llu bytes adopted by %zu session(s)",
             id, b->primary_daemon, (unsigned long long)allocs, (unsigned long long)bytes, owners);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_MSMP_PROMOTE_RESP_SIZE);
    if (out) {
        dmce_put_le64(out, allocs);
        dmce_put_le64(out + 8, bytes);
    }
}

/*
 * drop (from the dispatcher): a mirror copy is not needed any more (its
 * primary is gone for good, or moved): delete it; or a primary's mirror
 * holder is gone: stop keeping that mirror. With DMCE_MSMP_DROP_KEEP (the
 * holder died) the primary keeps a synced copy for a new holder instead,
 * and says so; not on a drain (the holder lives and drops its own copy:
 * two daemons must never hold one object) nor on a block being moved.
 */
static void op_drop(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id, flags;
    int r = dmce_msmp_drop_req_decode(p, len, &id, &flags);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    int kept = 0;
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    if (!b) {
        r = DMCE_ENOBLOCK;
    } else if (b->role == MEMD_PRIMARY) {
        pthread_mutex_lock(&b->lock);
        struct memd_mirror *mr = memd_live_mirror(b);
        if (!mr)
            r = -ENOENT;
        else if ((flags & DMCE_MSMP_DROP_KEEP) && m->cfg.mirror_keep_ms > 0 &&
                 atomic_load(&mr->state) == MEMD_MIRROR_SYNCED && !atomic_load(&b->frozen) &&
                 mirror_keep_locked(m, b, mr) == 0)
            kept = 1;
        else
            mirror_detach_locked(m, b, "its holder is gone");
        pthread_mutex_unlock(&b->lock);
        b = NULL;
    } else if ((r = memd_table_remove_locked(m, b)) == 0) {
        pthread_mutex_lock(&m->sess_lock);
        m->mirror_bytes -= DMCE_MIN(m->mirror_bytes, m->block_data_bytes);
        pthread_mutex_unlock(&m->sess_lock);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (b) { /* unpublished and past a grace period: nobody uses it */
        LOG_INFO("mirror copy of block %u (memd[%u]'s) dropped", id, b->primary_daemon);
        memd_block_destroy(m, b);
    }
    uint8_t *out = memd_reply_begin(c, &c->h, 0, kept ? DMCE_MSMP_DROP_RESP_SIZE : 0);
    if (out && kept) {
        dmce_put_le32(out, DMCE_MSMP_DROP_KEPT);
        dmce_put_le32(out + 4, 0);
    }
}

/* blocks: what this daemon holds, for the dispatcher (rebuilds) and dmcectl. */
static void op_blocks(struct dmce_memd *m, struct memd_conn *c, uint32_t len)
{
    if (len != 0)
        return memd_reply_error(m, c, &c->h, -EBADMSG);
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    uint32_t n = 0; /* a block handed off (a move under way) is not ours to report */
    for (uint32_t i = 0; i < t->count; i++)
        n += !atomic_load(&t->list[i]->frozen);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, 8 + n * DMCE_MSMP_BLOCK_INFO_SIZE);
    if (out) {
        dmce_put_le32(out, n);
        dmce_put_le32(out + 4, 0);
        for (uint32_t i = 0, k = 0; i < t->count && k < n; i++) {
            struct memd_block *b = t->list[i];
            if (atomic_load(&b->frozen))
                continue;
            dmce_msmp_block_info_t e = {.block = b->id, .role = (uint32_t)b->role, .size = b->size};
            if (b->role == MEMD_PRIMARY) {
                dmce_block_usage_t u;
                memd_block_usage_nowait(b, &u);
                /* The mirror is freed only with every stripe held: hold one to read it. */
                pthread_mutex_lock(&b->stripes[0]);
                struct memd_mirror *mr = memd_live_mirror(b);
                if (mr) {
                    e.peer = mr->daemon_id;
                    e.mirror_state = (uint32_t)atomic_load(&mr->state);
                    e.copied = atomic_load(&mr->copied);
                }
                pthread_mutex_unlock(&b->stripes[0]);
                e.used = u.used_bytes;
                e.nallocs = u.nallocs;
            } else {
                e.peer = b->primary_daemon;
            }
            dmce_msmp_block_info_encode(&e, out + 8 + (size_t)k++ * DMCE_MSMP_BLOCK_INFO_SIZE);
        }
    }
    rcu_read_unlock();
}

int memd_mirror_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    switch (c->h.op) {
    case DMCE_MSMP_OP_PERSIST: op_persist(m, c, p, len); return 1;
    case DMCE_MSMP_OP_MIRROR_CREATE: op_mirror_create(m, c, p, len); return 1;
    case DMCE_MSMP_OP_MIRROR_START: op_mirror_start(m, c, p, len); return 1;
    case DMCE_MSMP_OP_MIRROR_ADOPT: op_mirror_adopt(m, c, p, len); return 1;
    case DMCE_MSMP_OP_PROMOTE: op_promote(m, c, p, len); return 1;
    case DMCE_MSMP_OP_DROP: op_drop(m, c, p, len); return 1;
    case DMCE_MSMP_OP_BLOCKS: op_blocks(m, c, len); return 1;
    default: return 0;
    }
}
