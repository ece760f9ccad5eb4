/*
 * memd_migrate.c - live migration of a block by owner change, and the
 * list of a daemon's clients (docs/migration.md, wire format in
 * msmp_admin.h).
 *
 * On one host a block moves without copying a byte: its object is handed
 * to the new owner. The dispatcher asks the target T to adopt block X
 * from its owner S:
 *
 *   1. T -> S handoff: S freezes X (under grow_lock, X's allocator lock,
 *      every stripe, mr_lock and pf_lock, so no allocator change, write
 *      half-done, mirror copy, prefault or backup is under way), and passes X's
 *      object and its mirror's object. From now on S answers every
 *      request on X with DMCE_EMOVING (clients look up the directory again
 *      and retry, for microseconds); the bytes stay where they are.
 *   2. T maps both objects, checks the block header, takes the object's
 *      name (rename: S's restart cleanup will not remove it), adopts the
 *      allocations into their owners' sessions (orphaned until the clients
 *      come back, as after a failover), publishes X as a primary keeping
 *      the same mirror, and answers the dispatcher.
 *   3. The dispatcher switches the directory entry, then tells S to
 *      release X (commit: forget it without unlinking; the memory stays,
 *      mapped by T and by clients) and the mirror's holder to note the
 *      new primary (reparent).
 *
 * Clients that map X keep their pointers: the pages are the same pages.
 * Writes that S accepted before the freeze are in those pages and in the
 * mirror (S applied them to both before answering). If T fails after the
 * freeze, T itself (or the dispatcher, if T died) releases X back to S
 * with commit = 0: S serves it again.
 *
 * If T held X's mirror, the two copies would end on one daemon: T keeps
 * the primary and drops its mirror copy; the dispatcher re-mirrors X onto
 * another daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include <dmce/error.h>

#include "alloc.h"
#include "log.h"
#include "memd_internal.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"
#include "util.h"

/* ---- sessions ------------------------------------------------------------------------------ */

static void op_sessions(struct dmce_memd *m, struct memd_conn *c, uint32_t len)
{
    if (len != 0)
        return memd_reply_error(m, c, &c->h, -EBADMSG);
    uint64_t now = dmce_now_ms();
    pthread_mutex_lock(&m->sess_lock);
    uint32_t n = 0;
    for (struct memd_session *s = m->sessions; s; s = s->next)
        n++;
    uint8_t *out = memd_reply_begin(c, &c->h, 0, (uint32_t)dmce_adm_sessions_size(n));
    if (out) {
        dmce_adm_sessions_hdr_encode(n, out);
        uint32_t i = 0;
        for (struct memd_session *s = m->sessions; s; s = s->next, i++) {
            dmce_adm_session_t e = {
                .id = s->id, .uid = (uint32_t)s->uid, .reserved = s->reserved, .used = s->used};
            if (s->conn) {
                e.pid = (uint32_t)s->conn->pid;
                e.flags = s->conn->ring ? DMCE_ADM_SESS_RING : 0;
            } else {
                e.flags = DMCE_ADM_SESS_ORPHAN;
                e.orphan_left_ms = s->orphan_deadline > now ? s->orphan_deadline - now : 0;
            }
            dmce_adm_session_encode(&e, out + DMCE_ADM_SESSIONS_HDR +
                                            (size_t)i * DMCE_ADM_SESSION_SIZE);
        }
    }
    pthread_mutex_unlock(&m->sess_lock);
}

/* ---- the source: handoff, release ------------------------------------------------------------ */

/*
 * Freeze block `id` for a move to daemon `to`: 0 with b, or an error:
 * DMCE_ENOBLOCK (not a primary here), DMCE_EMOVING (frozen already),
 * -EBUSY (a mirror copy or a prefault of it is under way: ask again).
 */
static int freeze(struct dmce_memd *m, uint32_t id, struct memd_block **out)
{
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    int r = 0;
    if (!b || b->role != MEMD_PRIMARY)
        r = DMCE_ENOBLOCK;
    else if (atomic_load(&b->frozen))
        r = DMCE_EMOVING;
    if (r == 0) {
        pthread_mutex_lock(&b->lock);
        struct memd_mirror *mr = atomic_load(&b->mirror);
        if (mr && atomic_load(&mr->state) != MEMD_MIRROR_SYNCED)
            r = -EBUSY; /* a copy being made */
        pthread_mutex_lock(&m->mr_lock);
        if (r == 0 && memd_mirror_busy_locked(m, id))
            r = -EBUSY;
        if (r == 0)
            r = memd_backup_busy(m, id); /* a backup copying it gives it up: ask again */
        if (r == 0) /* a copy whose holder is gone does not move with it: re-mirrored after */
            memd_mirror_drop_kept_locked(m, b);
        pthread_mutex_lock(&m->pf_lock);
        if (m->pf_current == b)
            r = -EBUSY;
        if (r == 0) {
            for (struct memd_block **pp = &m->pf_queue; *pp; pp = &(*pp)->prefault_next) {
                if (*pp == b) { /* not prefaulted here: its new owner's clients fault it in */
                    *pp = b->prefault_next;
                    atomic_fetch_sub(&m->pf_pending, b->size);
                    break;
                }
            }
            for (unsigned i = 0; i < MEMD_STRIPES; i++)
                pthread_mutex_lock(&b->stripes[i]);
            b->frozen_ns = dmce_now_ns();
            atomic_store_explicit(&b->frozen, 1, memory_order_release);
            for (unsigned i = MEMD_STRIPES; i-- > 0;)
                pthread_mutex_unlock(&b->stripes[i]);
        }
        pthread_mutex_unlock(&m->pf_lock);
        pthread_mutex_unlock(&m->mr_lock);
        pthread_mutex_unlock(&b->lock);
    }
    pthread_mutex_unlock(&m->grow_lock);
    *out = b;
    return r;
}

/* Whether b's object still has this daemon's name for it. */
static int obj_exists(const struct dmce_memd *m, const struct memd_block *b)
{
    struct stat st;
    if (m->cfg.shm_dir[0])
        return lstat(b->name, &st) == 0;
    int fd = shm_open(b->name, O_RDONLY | O_CLOEXEC, 0);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

static void thaw(struct dmce_memd *m, struct memd_block *b)
{
    /* The target may have taken the object's name (and died): give it back. */
    if (!obj_exists(m, b)) {
        char proc[64], path[sizeof(b->name) + 16];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", b->fd);
        memd_obj_path(m, b->name, path, sizeof(path));
        if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
            LOG_WARN("block %u: its object has no name now (%s); its memory is intact", b->id,
                     strerror(errno));
    }
    atomic_store_explicit(&b->frozen, 0, memory_order_release);
}

static void op_handoff(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id, to;
    int r = dmce_adm_handoff_req_decode(p, len, &id, &to);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (to == (uint32_t)m->cfg.id)
        return memd_reply_error(m, c, &c->h, -EINVAL);
    struct memd_block *b;
    r = freeze(m, id, &b);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    static _Thread_local dmce_adm_handoff_t h; /* 1.3 KiB: not on a worker's stack */
    memset(&h, 0, sizeof(h));
    h.block = id;
    h.size = b->size;
    snprintf(h.name, sizeof(h.name), "%s", b->name);
    /*
     * The allocations by owner, counted here where the block is mapped and
     * frozen (no malloc or free runs): the target then need not walk its
     * fresh mapping, a page fault per allocation (~0.5 ms of a move of a
     * 256 MiB block with 128 allocations: docs/perf.md). Best effort: with
     * none (too many owners, no memory, a corrupt map) it counts them itself.
     */
    struct memd_tally t = {0};
    int owners_ok = memd_block_tally(b, &t) == 0 && t.n >= 1 && t.n <= DMCE_ADM_OWNERS_MAX;
    for (size_t i = 0; owners_ok && i < t.n; i++)
        owners_ok = t.o[i].owner != 0; /* "no owner" has no session: let the target count */
    if (owners_ok) {
        h.has_owners = 1;
        h.nowners = (uint32_t)t.n;
        h.owners = t.o;
    }
    size_t cap = DMCE_ADM_HANDOFF_RESP_HDR + DMCE_ADM_NAME_MAX + DMCE_MSMP_PATH_MAX +
                 (h.has_owners ? DMCE_ADM_OWNERS_HDR + t.n * DMCE_ADM_OWNER_SIZE : 0);
    uint8_t *buf = malloc(cap);
    /* Frozen: nothing detaches the mirror but a drop, which takes grow_lock (held by no one here).
     */
    pthread_mutex_lock(&m->grow_lock);
    struct memd_mirror *mr = memd_live_mirror(b); /* freeze dropped a kept copy */
    int fds[2] = {b->fd, -1};
    if (mr) {
        h.mirror_daemon = mr->daemon_id;
        snprintf(h.peer, sizeof(h.peer), "%s", mr->peer);
        fds[1] = mr->fd;
    }
    int n = !buf ? -ENOMEM : dmce_adm_handoff_encode(&h, buf, cap);
    r = n < 0 ? n : memd_reply_fds(m, c, fds, mr ? 2 : 1);
    pthread_mutex_unlock(&m->grow_lock);
    free(t.o);
    if (r < 0) {
        free(buf);
        thaw(m, b);
        return memd_reply_error(m, c, &c->h, r);
    }
    LOG_INFO("block %u handed to memd[%u]: frozen here until the move settles", id, to);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, (uint32_t)n);
    if (out)
        memcpy(out, buf, (size_t)n);
    free(buf);
}

/*
 * Forget frozen block b (grow_lock held): its allocations leave their
 * sessions here, it leaves the table (after a grace period). Its object is
 * not unlinked when the new owner has it (handed off); with maybe_ours,
 * it is if it still has this daemon's name (nobody took it over). The
 * caller destroys b after unlocking.
 */
static int forget_locked(struct dmce_memd *m, struct memd_block *b, int maybe_ours)
{
    uint64_t allocs = 0, bytes = 0;
    size_t owners = 0;
    memd_sessions_take(m, b, -1, &allocs, &bytes, &owners);
    b->handed_off = !maybe_ours || !obj_exists(m, b);
    int r = memd_table_remove_locked(m, b);
    if (r < 0) {
        b->handed_off = 0;
        return r;
    }
    STAT_ADD(m, DMCE_STAT_MOVED_OUT, 1);
    if (!m->moved_away)
        m->moved_away = calloc(m->table->nids, 1);
    if (m->moved_away)
        m->moved_away[b->id] = 1;
    else
        LOG_WARN("block %u moved away: no memory to remember it (its ID may be reused while "
                 "no dispatcher answers)",
                 b->id);
    memd_backup_forget(m, b->id); /* its new owner backs it up from now on */
    LOG_INFO("block %u left this daemon: %llu allocation(s), %llu bytes of %zu session(s)", b->id,
             (unsigned long long)allocs, (unsigned long long)bytes, owners);
    return 0;
}

/* release: commit (forget a block handed off) or abort (serve it again). */
static void op_release(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id, commit;
    int r = dmce_adm_pair_decode(p, len, &id, &commit);
    if (r == 0 && (id == 0 || commit > 1))
        r = -EBADMSG;
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    if (!b || b->role != MEMD_PRIMARY)
        r = DMCE_ENOBLOCK;
    else if (!atomic_load(&b->frozen))
        r = -EINVAL; /* not handed off: nothing to settle */
    uint64_t frozen_us = 0;
    if (r == 0 && commit)
        r = forget_locked(m, b, 0);
    else if (r == 0)
        thaw(m, b);
    if (r == 0)
        frozen_us = (dmce_now_ns() - b->frozen_ns) / 1000;
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (commit) {
        LOG_INFO("block %u moved away; frozen here for %llu us", id, (unsigned long long)frozen_us);
        memd_block_destroy(m, b); /* unmaps; the object lives on with its new owner */
    } else {
        LOG_WARN("block %u: the move was abandoned; served here again after %llu us", id,
                 (unsigned long long)frozen_us);
    }
    memd_reply_begin(c, &c->h, 0, 0);
}

#define SETTLE_AFTER_NS (10ull * 1000000000ull) /* frozen this long: ask the directory */
#define SETTLE_EVERY_MS 5000u

void memd_block_retire(struct dmce_memd *m, struct memd_block *b)
{
    if (memd_obj_unlink(m, b->name) < 0)
        LOG_WARN("block %u: cannot remove the object %s: %s", b->id, b->name, strerror(errno));
    b->handed_off = 1; /* unlinked already: the destroy only unmaps and closes */
    pthread_mutex_lock(&m->pf_lock);
    b->retired_next = m->retired;
    m->retired = b;
    pthread_mutex_unlock(&m->pf_lock);
}

void memd_retired_destroy(struct dmce_memd *m)
{
    pthread_mutex_lock(&m->pf_lock);
    struct memd_block *b = m->retired;
    m->retired = NULL;
    pthread_mutex_unlock(&m->pf_lock);
    while (b) {
        struct memd_block *next = b->retired_next;
        memd_block_destroy(m, b);
        b = next;
    }
}

void memd_migrate_tick(struct dmce_memd *m)
{
    memd_retired_destroy(m);
    uint64_t now = dmce_now_ms();
    if (now < m->settle_next_ms)
        return;
    m->settle_next_ms = now + SETTLE_EVERY_MS;
    uint32_t id = 0;
    uint64_t ns = dmce_now_ns();
    pthread_mutex_lock(&m->grow_lock);
    for (uint32_t i = 0; m->table && i < m->table->count && !id; i++) {
        struct memd_block *b = m->table->list[i];
        if (atomic_load(&b->frozen) && ns - b->frozen_ns > SETTLE_AFTER_NS)
            id = b->id;
    }
    pthread_mutex_unlock(&m->grow_lock);
    uint32_t primary;
    if (!id || memd_disp_block_primary(m, id, &primary) < 0 || primary == 0)
        return; /* nothing frozen, no dispatcher to ask, or it does not know yet: later */
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = m->table->by_id[id];
    int r = -1;
    if (b && atomic_load(&b->frozen) && primary == (uint32_t)m->cfg.id) {
        LOG_WARN("block %u: a move left it frozen here for %llu s and the directory still names "
                 "this daemon: serving it again",
                 id, (unsigned long long)((ns - b->frozen_ns) / 1000000000ull));
        thaw(m, b);
    } else if (b && atomic_load(&b->frozen)) {
        /* Its target took it (and renamed the object), or its mirror was promoted: forget it. */
        LOG_WARN("block %u: a move left it frozen here; the directory names memd[%u]: forgetting "
                 "it",
                 id, primary);
        r = forget_locked(m, b, 1);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r == 0)
        memd_block_destroy(m, b);
}

/* ---- the target: adopt ------------------------------------------------------------------------
 */

/* Take the object's name: the source's prefix would be cleaned by its restart. */
static void take_name(struct dmce_memd *m, struct memd_block *b, const char *old)
{
    char from[DMCE_ADM_NAME_MAX + 16], to[sizeof(b->name) + 16];
    memd_obj_path(m, old, from, sizeof(from));
    memd_obj_path(m, b->name, to, sizeof(to));
    if (rename(from, to) < 0) {
        LOG_WARN("block %u: cannot rename %s to %s (%s); the object keeps its old name", b->id,
                 from, to, strerror(errno));
        size_t n = strlen(old); /* op_adopt checked it fits */
        memcpy(b->name, old, DMCE_MIN(n + 1, sizeof(b->name)));
        b->name[sizeof(b->name) - 1] = 0;
    }
}

static struct memd_mirror *mirror_of_fd(struct memd_block *b, const dmce_adm_handoff_t *h, int fd)
{
    struct memd_mirror *mr = calloc(1, sizeof(*mr));
    struct stat st;
    void *base = MAP_FAILED;
    if (mr && fstat(fd, &st) == 0 && (uint64_t)st.st_size >= b->size)
        base = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        LOG_ERROR("block %u: cannot map its mirror on memd[%u]: %s", b->id, h->mirror_daemon,
                  strerror(errno));
        free(mr);
        close(fd);
        return NULL;
    }
    mr->daemon_id = h->mirror_daemon;
    snprintf(mr->peer, sizeof(mr->peer), "%s", h->peer);
    mr->fd = fd;
    mr->base = base;
    mr->to_copy = b->size;
    atomic_store(&mr->copied, b->size);
    atomic_store(&mr->state, MEMD_MIRROR_SYNCED);
    return mr;
}

static void release_back(struct dmce_memd *m, const char *path, uint32_t id)
{
    uint8_t rq[DMCE_ADM_PAIR_SIZE];
    dmce_adm_pair_encode(id, 0, rq);
    unsigned nfd;
    int r =
        memd_peer_rpc(m, path, DMCE_MSMP_OP_RELEASE, rq, sizeof(rq), NULL, 0, NULL, NULL, 0, &nfd);
    if (r < 0)
        LOG_ERROR("block %u: cannot give it back to its owner (%s): %s", id, path,
                  dmce_strerror(r));
}

static void op_adopt(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    dmce_adm_adopt_t rq;
    int r = dmce_adm_adopt_decode(p, len, &rq);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    if (rq.from == (uint32_t)m->cfg.id || rq.block >= m->table->nids)
        return memd_reply_error(m, c, &c->h, -EINVAL);
    uint64_t t0 = dmce_now_ns();
    /* Room: a block's worth, unless it replaces our mirror copy of it. */
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *old = m->table->by_id[rq.block];
    if (old && old->role == MEMD_PRIMARY)
        r = -EEXIST;
    else if (!old && m->table->count >= (uint32_t)m->cfg.max_blocks)
        r = DMCE_ENOMEM;
    else if (!old) {
        pthread_mutex_lock(&m->sess_lock);
        if (m->committed + m->mirror_bytes + m->block_data_bytes > m->capacity)
            r = DMCE_ENOMEM;
        pthread_mutex_unlock(&m->sess_lock);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);

    uint8_t hq[DMCE_ADM_HANDOFF_REQ_SIZE];
    dmce_adm_handoff_req_encode(rq.block, (uint32_t)m->cfg.id, hq);
    uint8_t *resp = malloc(DMCE_ADM_HANDOFF_RESP_MAX); /* ~100 KiB: not on the stack */
    if (!resp)
        return memd_reply_error(m, c, &c->h, -ENOMEM);
    int fds[2] = {-1, -1};
    unsigned nfd = 0;
    size_t rlen = 0;
    r = memd_peer_rpc(m, rq.path, DMCE_MSMP_OP_HANDOFF, hq, sizeof(hq), resp,
                      DMCE_ADM_HANDOFF_RESP_MAX, &rlen, fds, 2, &nfd);
    if (r < 0) {
        free(resp);
        LOG_WARN("block %u: memd[%u] would not hand it over: %s", rq.block, rq.from,
                 dmce_strerror(r));
        return memd_reply_error(m, c, &c->h, r);
    }
    static _Thread_local dmce_adm_handoff_t h;
    struct memd_tally t = {0}; /* the source's count of the allocations, if it sent one */
    r = dmce_adm_handoff_decode(resp, rlen, &h);
    if (r == 0 && (h.block != rq.block || nfd != (h.mirror_daemon ? 2u : 1u) ||
                   strlen(h.name) >= sizeof(((struct memd_block *)0)->name)))
        r = -EPROTO;
    for (uint32_t i = 0; r == 0 && h.has_owners && i < h.nowners; i++) {
        dmce_adm_owner_t o;
        dmce_adm_handoff_owner(&h, i, &o);
        r = memd_tally_add(&t, o.owner, o.bytes, o.allocs);
    }
    free(resp); /* h.owners_raw pointed into it: not used from here on */
    h.owners_raw = NULL;
    if (r < 0) {
        free(t.o);
        for (unsigned i = 0; i < nfd; i++)
            close(fds[i]);
        release_back(m, rq.path, rq.block);
        return memd_reply_error(m, c, &c->h, r);
    }
    uint64_t frozen_ns = dmce_now_ns();
    /* Test hook: hold the handed-off block, so that a test can kill us mid-move (abort_move). */
    memd_test_pause("DMCE_TEST_ADOPT_PAUSE_MS", "holding the handed-off block");

    struct memd_block *b = NULL;
    uint64_t allocs = 0, bytes = 0;
    size_t owners = 0;
    int own_mirror = h.mirror_daemon == (uint32_t)m->cfg.id;
    pthread_mutex_lock(&m->grow_lock);
    r = memd_block_from_fd(m, rq.block, fds[0], h.size, &b); /* owns fds[0] from here */
    if (r == 0 && (r = dmce_block_attach(b->base, b->size)) < 0)
        LOG_ERROR("block %u: the object memd[%u] handed over is not a block: %s", rq.block, rq.from,
                  dmce_strerror(r));
    if (r == 0 && h.mirror_daemon && !own_mirror) {
        struct memd_mirror *mr = mirror_of_fd(b, &h, fds[1]);
        fds[1] = -1;
        if (!mr)
            r = -EIO;
        else
            atomic_store(&b->mirror, mr);
    }
    if (r == 0 && !h.has_owners) /* an older source: count them here */
        r = memd_block_tally(b, &t);
    if (r == 0 && (r = memd_sessions_apply(m, &t, 1)) == 0) {
        allocs = t.allocs;
        bytes = t.bytes;
        owners = t.n;
    }
    old = m->table->by_id[rq.block];
    if (r == 0 && old) { /* our mirror copy of it: two copies on one daemon protect nothing */
        r = memd_table_remove_locked(m, old);
        if (r == 0) {
            pthread_mutex_lock(&m->sess_lock);
            m->mirror_bytes -= DMCE_MIN(m->mirror_bytes, m->block_data_bytes);
            pthread_mutex_unlock(&m->sess_lock);
            /* Its name goes now: take_name gives the same name to the block taken over. */
            memd_block_retire(m, old);
        }
    }
    if (r == 0) {
        take_name(m, b, h.name);
        r = memd_table_add_locked(m, b);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (fds[1] >= 0)
        close(fds[1]);
    if (r < 0) {
        if (b) {
            if (allocs)
                memd_sessions_apply(m, &t, -1);
            b->handed_off = 1; /* the object is the source's again */
            memd_block_destroy(m, b);
        }
        free(t.o);
        LOG_ERROR("block %u: cannot take it over from memd[%u]: %s; handing it back", rq.block,
                  rq.from, dmce_strerror(r));
        release_back(m, rq.path, rq.block);
        return memd_reply_error(m, c, &c->h, r);
    }
    free(t.o);
    STAT_ADD(m, DMCE_STAT_MOVED_IN, 1);
    dmce_adm_adopted_t a = {
        .allocs = allocs, .bytes = bytes, .frozen_us = (dmce_now_ns() - frozen_ns) / 1000};
    LOG_INFO("block %u taken over from memd[%u] in %llu us: %llu allocation(s), %llu bytes of "
             "%zu session(s)%s",
             rq.block, rq.from, (unsigned long long)((dmce_now_ns() - t0) / 1000),
             (unsigned long long)allocs, (unsigned long long)bytes, owners,
             own_mirror ? "; it was mirrored here: single copy until re-mirrored" : "");
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_ADM_ADOPT_RESP_SIZE);
    if (out)
        dmce_adm_adopted_encode(&a, out);
}

/* reparent: the primary of a block we mirror moved to another daemon. */
static void op_reparent(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    uint32_t id, primary;
    int r = dmce_adm_pair_decode(p, len, &id, &primary);
    if (r == 0 && (id == 0 || primary == 0 || primary == (uint32_t)m->cfg.id))
        r = -EBADMSG;
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    if (!b || b->role != MEMD_MIRROR)
        r = DMCE_ENOBLOCK;
    else {
        b->primary_daemon = primary;
        b->primary_pid = 0; /* another process's now: it never asks for this copy again */
        b->primary_conn = 0;
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    memd_reply_begin(c, &c->h, 0, 0);
}

int memd_migrate_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    switch (c->h.op) {
    case DMCE_MSMP_OP_SESSIONS: op_sessions(m, c, len); return 1;
    case DMCE_MSMP_OP_HANDOFF: op_handoff(m, c, p, len); return 1;
    case DMCE_MSMP_OP_ADOPT: op_adopt(m, c, p, len); return 1;
    case DMCE_MSMP_OP_RELEASE: op_release(m, c, p, len); return 1;
    case DMCE_MSMP_OP_REPARENT: op_reparent(m, c, p, len); return 1;
    default: return 0;
    }
}
