/*
 * memd_backup.c - the memory daemon's block backups, recovery and restore
 * (seed 002 FIG. 19; docs/backup.md; file format in backup.h).
 *
 * One backup thread runs tasks one at a time: a backup asked by dmcectl,
 * a periodic one (backup_interval_s), a restore. The Memory Backup &
 * Recovery Lookup Table of the daemon's own set (backup_dir/memd-ID) is
 * kept in RAM (with the hash of every page at its last backup) and on
 * disk (backup.h's table file).
 *
 * A backup of block b reads it in 64 KiB chunks, each under the chunk's
 * stripe lock (an MSMP write is never half in it), hashes every 4 KiB page
 * and writes the pages whose hash changed since the last backup (a delta;
 * a full image the first time, after DMCE_BK_CHAIN_MAX files, or when the
 * deltas outgrow the full image). Mallocs and frees go on meanwhile; if
 * one happened during the pass (b->alloc_gen moved), a second pass under
 * b->lock rewrites the pages that changed since the first, so the file
 * holds one allocator state. Writes through mapped pointers are caught by
 * the hashes, as they were at the moment their chunk was read.
 *
 * What a backup holds: every write acknowledged before it started; a
 * write concurrent with it may be in it in part (per 64 KiB chunk).
 *
 * Recovery (recover = yes, at start) and restore (dmcectl restore) build
 * the block in a new object from its chain, check it is a consistent
 * block, and publish it under its ID: every DMCE address in it is valid
 * again. Its allocations go back to their sessions, orphaned (with their
 * tokens, so that their clients can reattach) for recover_grace_ms. A
 * block the dispatcher's directory says lives on another daemon is not
 * brought back: that copy (a promoted mirror) is newer than the backup.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <urcu.h>

#include <dmce/error.h>

#include "alloc.h"
#include "backup.h"
#include "log.h"
#include "memd_internal.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"
#include "util.h"

#define MAX_TASKS 8u
#define PROGRESS_STEP (4u << 20) /* bytes between progress updates */

struct bk_task {
    struct bk_task *next;
    uint32_t id, kind, block, flags;
    char dir[DMCE_ADM_DIR_MAX + 1]; /* as asked ("" = backup_dir) */
};

struct bk_forget {
    struct bk_forget *next;
    uint32_t block;
};

struct memd_backup {
    pthread_t thread;
    int on;
    pthread_mutex_t lock; /* queue, status, busy, forgets, stop */
    pthread_cond_t cond;
    int stop;
    struct bk_task *queue;
    unsigned queued;
    uint32_t next_id;
    dmce_adm_task_t cur; /* the current or last task */
    uint64_t cur_start_ns;
    int running;
    uint32_t busy_block; /* the block a backup reads now (0: none) */
    atomic_int yield;    /* a handoff wants busy_block: give it up */
    struct bk_forget *forgets;
    uint64_t next_periodic_ms;
    char set_dir[DMCE_CFG_STRMAX + 32]; /* backup_dir/memd-ID, "" = none */
    /* The daemon's own set: table (under table_lock) and page hashes (backup thread only). */
    pthread_mutex_t table_lock;
    dmce_bk_table_t table;
    uint32_t nids;
    uint64_t **hashes;  /* [nids]: each page's hash at the block's last backup */
    uint8_t *recovered; /* [nids]: brought back at start */
};

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void table_init(struct dmce_memd *m, dmce_bk_table_t *t)
{
    memset(t, 0, sizeof(*t));
    dmce_msgf(t->cluster, sizeof(t->cluster), "%s", m->cfg.cluster); /* its first 63 bytes */
    t->daemon = (uint32_t)m->cfg.id;
    t->layout = (uint32_t)m->layout;
    t->block_first = m->block_first;
    t->block_count = (uint32_t)m->cfg.max_blocks;
}

/* The set a request names: "" = our own set; else DIR/memd-ID when it holds a table (restore) or
 * always (backup). */
static int task_dir(struct dmce_memd *m, const struct bk_task *tk, char *out, size_t cap)
{
    struct memd_backup *bk = m->bk;
    if (!tk->dir[0]) {
        if (!bk->set_dir[0])
            return DMCE_ENOBACKUPDIR;
        snprintf(out, cap, "%s", bk->set_dir);
        return 0;
    }
    if (snprintf(out, cap, "%s/memd-%lld", tk->dir, (long long)m->cfg.id) >= (int)cap)
        return -ENAMETOOLONG;
    if (tk->kind == DMCE_ADM_TASK_RESTORE) {
        char probe[4200];
        snprintf(probe, sizeof(probe), "%s/table", out);
        if (access(probe, F_OK) != 0) /* a set's own directory (another daemon's, say) */
            snprintf(out, cap, "%s", tk->dir);
    }
    return 0;
}

static int own_set(const struct memd_backup *bk, const char *dir)
{
    return bk->set_dir[0] && strcmp(dir, bk->set_dir) == 0;
}

/* Check a table belongs to this cluster and layout. */
static int table_fits(struct dmce_memd *m, const dmce_bk_table_t *t, const char *dir, char *why,
                      size_t len)
{
    if (strncmp(t->cluster, m->cfg.cluster, DMCE_BK_CLUSTER_MAX) != 0) {
        dmce_msgf(why, len, "%s holds backups of cluster \"%s\", not \"%s\"", dir, t->cluster,
                  m->cfg.cluster);
        return -EXDEV;
    }
    if (t->layout != (uint32_t)m->layout) {
        dmce_msgf(why, len, "%s holds backups made with address layout %s; this cluster uses %s",
                  dir, dmce_layout_name((dmce_layout_t)t->layout), dmce_layout_name(m->layout));
        return DMCE_ELAYOUT;
    }
    return 0;
}

/* Progress of the running task (backup thread). */
static void task_progress(struct memd_backup *bk, uint64_t bytes, uint64_t written, uint64_t pages)
{
    pthread_mutex_lock(&bk->lock);
    bk->cur.bytes_done += bytes;
    bk->cur.bytes_written += written;
    bk->cur.pages_written += pages;
    pthread_mutex_unlock(&bk->lock);
}

static void task_fail(struct memd_backup *bk, int err, const char *detail)
{
    pthread_mutex_lock(&bk->lock);
    if (!bk->cur.err) { /* the first failure is the one reported */
        bk->cur.err = err;
        dmce_msgf(bk->cur.detail, sizeof(bk->cur.detail), "%s", detail);
    }
    pthread_mutex_unlock(&bk->lock);
}

/* ---- backup of one block ------------------------------------------------------------------ */

/* Whether the deltas of entry e have grown past its full image (then the next one is full). */
static int chain_full(const dmce_bk_block_t *e)
{
    uint64_t deltas = 0;
    for (uint32_t k = 1; k < e->nfiles; k++)
        deltas += e->files[k].bytes;
    return e->nfiles >= DMCE_BK_CHAIN_MAX || deltas > e->files[0].bytes;
}

static int page_is_zero(const uint8_t *p)
{
    static const uint8_t zero[DMCE_BK_PAGE];
    return memcmp(p, zero, DMCE_BK_PAGE) == 0;
}

struct pass {
    struct memd_backup *bk;
    struct memd_block *b;
    dmce_bk_writer_t *w;
    const uint64_t *base_hashes; /* what the file's base holds (NULL: nothing, a full image) */
    uint64_t *hashes;            /* out: each page as this file leaves it */
    uint8_t *chunk;
    uint64_t written, pages_written, unreported;
};

/*
 * Read every chunk of b under its stripe, hash its pages, append those
 * that differ from `base_hashes` (or, for a full image's first pass, that
 * are not zero). -EAGAIN when a handoff wants the block.
 */
static int backup_pass(struct pass *ps, int report)
{
    struct memd_block *b = ps->b;
    const uint64_t zh = dmce_bk_hash(ps->chunk + MEMD_CHUNK, DMCE_BK_PAGE); /* a zero page */
    for (uint64_t off = 0; off < b->size; off += MEMD_CHUNK) {
        if (atomic_load(&ps->bk->yield))
            return -EAGAIN;
        uint64_t n = DMCE_MIN((uint64_t)MEMD_CHUNK, b->size - off);
        pthread_mutex_t *st = &b->stripes[(off / MEMD_CHUNK) % MEMD_STRIPES];
        pthread_mutex_lock(st);
        memcpy(ps->chunk, (const uint8_t *)b->base + off, n);
        pthread_mutex_unlock(st);
        for (uint64_t p = 0; p < n; p += DMCE_BK_PAGE) {
            uint32_t idx = (uint32_t)((off + p) / DMCE_BK_PAGE);
            const uint8_t *pg = ps->chunk + p;
            uint64_t h = dmce_bk_hash(pg, DMCE_BK_PAGE);
            uint64_t was = ps->base_hashes ? ps->base_hashes[idx] : zh;
            ps->hashes[idx] = h;
            if (h == was)
                continue;
            int zero = h == zh && page_is_zero(pg);
            int r = dmce_bk_writer_page(ps->w, idx, zero ? NULL : pg, h);
            if (r < 0)
                return r;
            ps->written += 16 + (zero ? 0 : DMCE_BK_PAGE);
            ps->pages_written++;
        }
        ps->unreported += n;
        if (report && ps->unreported >= PROGRESS_STEP) {
            task_progress(ps->bk, ps->unreported, 0, 0);
            ps->unreported = 0;
        }
    }
    if (report)
        task_progress(ps->bk, ps->unreported, 0, 0);
    ps->unreported = 0;
    return 0;
}

/*
 * Back up block id into the set at dir with table t (the daemon's own set:
 * incremental where a chain can grow). The table is saved; the RAM hashes
 * follow the committed state. 0 or an error with `why`.
 */
static int backup_block(struct dmce_memd *m, uint32_t id, const char *dir, dmce_bk_table_t *t,
                        int own, int force_full, char *why, size_t whylen)
{
    struct memd_backup *bk = m->bk;
    /* Claim the block: a handoff after this point waits (memd_backup_busy). */
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = id < m->table->nids ? m->table->by_id[id] : NULL;
    int ok = b && b->role == MEMD_PRIMARY && !atomic_load(&b->frozen);
    if (ok) {
        pthread_mutex_lock(&bk->lock);
        bk->busy_block = id;
        atomic_store(&bk->yield, 0);
        pthread_mutex_unlock(&bk->lock);
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (!ok) {
        dmce_msgf(why, whylen, "block %u is not held here (moved or promoted elsewhere)", id);
        return DMCE_ENOBLOCK;
    }
    uint64_t t0 = dmce_now_ns();
    uint32_t pages = (uint32_t)(b->size / DMCE_BK_PAGE);
    dmce_bk_block_t *e = dmce_bk_table_find(t, id);
    uint64_t *old = own && bk->hashes[id] ? bk->hashes[id] : NULL;
    int delta = !force_full && e && old && e->pages == pages && !chain_full(e);
    uint64_t gen = e ? e->files[e->nfiles - 1].generation + 1 : 1;
    const dmce_block_hdr_t *bh = b->base;
    dmce_bk_file_hdr_t h = {.kind = delta ? DMCE_BK_DELTA : DMCE_BK_FULL,
                            .daemon = t->daemon,
                            .block = id,
                            .layout = t->layout,
                            .page_size = bh->page_size,
                            .pages = pages,
                            .size = b->size,
                            .generation = gen,
                            .base_generation = delta ? gen - 1 : 0,
                            .time_ns = realtime_ns()};
    snprintf(h.cluster, sizeof(h.cluster), "%s", t->cluster);
    dmce_bk_writer_t w;
    struct pass ps = {.bk = bk, .b = b, .w = &w, .base_hashes = delta ? old : NULL};
    ps.hashes = malloc((size_t)pages * sizeof(uint64_t));
    ps.chunk = calloc(1, MEMD_CHUNK + DMCE_BK_PAGE); /* + one zero page */
    int r = ps.hashes && ps.chunk ? dmce_bk_writer_begin(&w, dir, &h) : -ENOMEM;
    if (r == 0) {
        uint64_t gen0 = atomic_load_explicit(&b->alloc_gen, memory_order_acquire);
        r = backup_pass(&ps, 1);
        if (r == 0 && atomic_load_explicit(&b->alloc_gen, memory_order_acquire) != gen0) {
            /*
             * The allocator changed during the pass: its state in the file may
             * mix two moments. Once more under b->lock (mallocs and frees of
             * this block wait one read of it): the pages that changed since.
             */
            STAT_ADD(m, DMCE_STAT_BACKUP_REPASSES, 1);
            uint64_t *first = malloc((size_t)pages * sizeof(uint64_t));
            r = first ? dmce_bk_writer_pass(&w) : -ENOMEM;
            if (r == 0) {
                memcpy(first, ps.hashes, (size_t)pages * sizeof(uint64_t));
                ps.base_hashes = first;
                pthread_mutex_lock(&b->lock);
                r = backup_pass(&ps, 0);
                pthread_mutex_unlock(&b->lock);
            }
            free(first);
        }
        dmce_bk_file_t f;
        if (r == 0)
            r = dmce_bk_writer_commit(&w, &f);
        else
            dmce_bk_writer_abort(&w);
        if (r == -EAGAIN)
            dmce_msgf(why, whylen, "block %u moved to another daemon during its backup", id);
        else if (r < 0)
            dmce_msgf(why, whylen, "block %u: cannot write its backup in %s: %s", id, dir,
                      strerror(-r));
        if (r == 0) {
            /* The table names the new file: the commit point. */
            pthread_mutex_lock(&bk->table_lock);
            dmce_bk_block_t save = {0}, *x = dmce_bk_table_find(t, id);
            int added = 0;
            if (x) {
                save = *x;
            } else {
                dmce_bk_block_t *nb = realloc(t->blocks, (t->nblocks + 1) * sizeof(*nb));
                if (!nb) {
                    r = -ENOMEM;
                } else {
                    t->blocks = nb;
                    x = &nb[t->nblocks++];
                    memset(x, 0, sizeof(*x));
                    added = 1;
                }
            }
            if (r == 0) {
                struct memd_mirror *mr = memd_live_mirror(b);
                x->block = id;
                x->mirror_daemon = mr ? mr->daemon_id : 0;
                x->page_size = bh->page_size;
                x->pages = pages;
                x->size = b->size;
                x->time_ns = h.time_ns;
                x->took_us = (dmce_now_ns() - t0) / 1000;
                if (delta) {
                    x->files[x->nfiles++] = f;
                } else {
                    x->nfiles = 1;
                    x->files[0] = f;
                }
                r = dmce_bk_table_save(dir, t);
                if (r < 0) {
                    dmce_msgf(why, whylen, "cannot write the backup table in %s: %s", dir,
                              strerror(-r));
                    if (added)
                        t->nblocks--;
                    else
                        *x = save;
                }
            }
            pthread_mutex_unlock(&bk->table_lock);
            if (r == 0) {
                dmce_bk_remove_unnamed(dir, t); /* the chain a full image replaced */
                task_progress(bk, 0, ps.written, ps.pages_written);
                STAT_ADD(m, DMCE_STAT_BACKUPS, 1);
                STAT_ADD(m, DMCE_STAT_BACKUP_BYTES, f.bytes);
                if (own) {
                    free(bk->hashes[id]);
                    bk->hashes[id] = ps.hashes;
                    ps.hashes = NULL;
                }
                LOG_INFO("block %u backed up to %s: %s generation %llu, %llu page(s) written "
                         "(%.1f MiB) in %.1f ms",
                         id, dir, delta ? "delta" : "full image", (unsigned long long)gen,
                         (unsigned long long)ps.pages_written, (double)ps.written / (1 << 20),
                         (double)(dmce_now_ns() - t0) / 1e6);
            }
        }
    } else {
        dmce_msgf(why, whylen, "block %u: cannot start its backup in %s: %s", id, dir,
                  strerror(-r));
    }
    pthread_mutex_lock(&bk->lock);
    bk->busy_block = 0;
    atomic_store(&bk->yield, 0);
    pthread_mutex_unlock(&bk->lock);
    free(ps.hashes);
    free(ps.chunk);
    return r;
}

/* Record the sessions (with their tokens) in t: recovery gives them back their allocations. */
static void table_take_sessions(struct dmce_memd *m, dmce_bk_table_t *t)
{
    pthread_mutex_lock(&m->sess_lock);
    uint32_t n = 0;
    for (struct memd_session *s = m->sessions; s; s = s->next)
        n++;
    dmce_bk_session_t *v = n ? calloc(n, sizeof(*v)) : NULL;
    uint32_t k = 0;
    for (struct memd_session *s = m->sessions; s && v; s = s->next, k++) {
        v[k].id = s->id;
        v[k].uid = (uint32_t)s->uid;
        v[k].reserved = s->reserved;
        memcpy(v[k].token, s->token, DMCE_BK_TOKEN_LEN);
    }
    pthread_mutex_unlock(&m->sess_lock);
    if (n && !v)
        return; /* keep the sessions the table had */
    pthread_mutex_lock(&m->bk->table_lock);
    free(t->sessions);
    t->sessions = v;
    t->nsessions = n;
    pthread_mutex_unlock(&m->bk->table_lock);
}

/* ---- restore of one block ------------------------------------------------------------------- */

struct restore_progress {
    struct memd_backup *bk;
    uint64_t reported;
};

static void restore_progress(uint64_t done, void *arg)
{
    struct restore_progress *p = arg;
    if (done > p->reported) {
        task_progress(p->bk, done - p->reported, 0, 0);
        p->reported = done;
    }
}

/* Give the sessions of t their tokens back (orphans with none), for recover_grace_ms. */
static void sessions_restore(struct dmce_memd *m, const dmce_bk_table_t *t)
{
    static const uint8_t none[DMCE_BK_TOKEN_LEN];
    uint64_t deadline = dmce_now_ms() + (uint64_t)m->cfg.recover_grace_ms;
    pthread_mutex_lock(&m->sess_lock);
    for (uint32_t i = 0; i < t->nsessions; i++) {
        struct memd_session *s = memd_sess_by_id_locked(m, t->sessions[i].id);
        if (!s || s->conn || !dmce_ct_equal(s->token, none, sizeof(none)))
            continue;
        memcpy(s->token, t->sessions[i].token, DMCE_BK_TOKEN_LEN);
        s->uid = (uid_t)t->sessions[i].uid;
        if (s->orphan_deadline < deadline)
            s->orphan_deadline = deadline;
    }
    pthread_mutex_unlock(&m->sess_lock);
}

/* An allocation whose owner is a session here that the set does not know by the same token. */
struct owner_check {
    struct dmce_memd *m;
    const dmce_bk_table_t *t;
    uint32_t owner;
};

static int owner_conflict(const dmce_alloc_info_t *ai, void *arg)
{
    struct owner_check *oc = arg;
    static const uint8_t none[DMCE_BK_TOKEN_LEN];
    pthread_mutex_lock(&oc->m->sess_lock);
    struct memd_session *s = memd_sess_by_id_locked(oc->m, ai->owner);
    int clash = 0;
    if (s && !dmce_ct_equal(s->token, none, sizeof(none))) {
        clash = 1;
        for (uint32_t i = 0; i < oc->t->nsessions; i++)
            if (oc->t->sessions[i].id == ai->owner &&
                dmce_ct_equal(oc->t->sessions[i].token, s->token, DMCE_BK_TOKEN_LEN))
                clash = 0; /* the same client's session (it reattached already) */
    }
    pthread_mutex_unlock(&oc->m->sess_lock);
    if (clash)
        oc->owner = ai->owner;
    return clash;
}

/*
 * Bring block e of the set (dir, t) back as a primary of this daemon.
 * elsewhere: the directory's primaries (NULL without a dispatcher).
 */
static int restore_block(struct dmce_memd *m, const char *dir, const dmce_bk_table_t *t,
                         const dmce_bk_block_t *e, const uint16_t *elsewhere, int recovering,
                         char *why, size_t whylen)
{
    struct memd_backup *bk = m->bk;
    uint32_t id = e->block;
    if (id >= m->table->nids) {
        dmce_msgf(why, whylen, "block %u is outside this cluster's block IDs", id);
        return -ERANGE;
    }
    if (e->size != m->cfg.block_size) {
        dmce_msgf(why, whylen, "block %u is %llu bytes; this daemon's block_size is %llu", id,
                  (unsigned long long)e->size, (unsigned long long)m->cfg.block_size);
        return -EINVAL;
    }
    if (!recovering && !atomic_load(&m->registered) &&
        (id < m->block_first || id > m->block_last)) {
        dmce_msgf(why, whylen,
                  "block %u is outside this daemon's block IDs (%u..%u): without a dispatcher, "
                  "clients find a block by its daemon's range; restore it into a daemon whose "
                  "range holds it (block_first), or run a dispatcher",
                  id, m->block_first, m->block_last);
        return -ERANGE;
    }
    if (elsewhere && elsewhere[id] && elsewhere[id] != (uint32_t)m->cfg.id) {
        dmce_msgf(why, whylen, "block %u lives on memd[%u]: that copy is newer than a backup", id,
                  elsewhere[id]);
        return -EEXIST;
    }
    pthread_mutex_lock(&m->grow_lock);
    struct memd_block *b = NULL;
    int r = 0;
    if (m->table->by_id[id]) {
        dmce_msgf(why, whylen, "block %u is already held by this daemon", id);
        r = -EEXIST;
    } else if (m->table->count >= (uint32_t)m->cfg.max_blocks) {
        dmce_msgf(why, whylen, "block %u: this daemon holds max_blocks blocks already", id);
        r = DMCE_ENOMEM;
    } else if ((r = memd_block_create(m, id, e->size, 0, &b)) < 0) {
        dmce_msgf(why, whylen, "block %u: cannot create its object: %s", id, dmce_strerror(r));
    }
    pthread_mutex_unlock(&m->grow_lock);
    if (r < 0)
        return r;
    /* Not published yet: nobody else sees b while its bytes come back. */
    uint64_t t0 = dmce_now_ns();
    uint64_t *hashes = own_set(bk, dir) ? malloc((size_t)e->pages * sizeof(uint64_t)) : NULL;
    struct restore_progress rp = {.bk = bk};
    /*
     * Through the descriptor: the object's pages are allocated and untouched
     * (docs/perf.md). hugetlbfs files take no write(): through the mapping.
     */
    struct statfs sfs;
    if (fstatfs(b->fd, &sfs) == 0 && sfs.f_type == HUGETLBFS_MAGIC)
        r = dmce_bk_chain_apply(dir, t, e, b->base, hashes, restore_progress, &rp, why, whylen);
    else
        r = dmce_bk_chain_apply_fd(dir, t, e, b->fd, hashes, restore_progress, &rp, why, whylen);
    restore_progress(e->size, &rp);
    if (r == 0 && (r = dmce_block_attach(b->base, b->size)) < 0)
        dmce_msgf(why, whylen, "block %u: the backed-up bytes are not a block: %s", id,
                  dmce_strerror(r));
    else if (r == 0 && (r = dmce_block_verify(b->base)) < 0)
        dmce_msgf(why, whylen, "block %u: the backed-up allocator state is inconsistent", id);
    uint64_t allocs = 0, bytes = 0;
    size_t owners = 0;
    struct owner_check oc = {.m = m, .t = t};
    if (r == 0 && (r = dmce_alloc_foreach(b->base, owner_conflict, &oc)) != 0) {
        dmce_msgf(why, whylen,
                  "block %u: its allocations belong to session %u, which is another client's "
                  "on this daemon (session IDs are per daemon without a dispatcher); restore it "
                  "into a daemon without that session",
                  id, oc.owner);
        r = -EEXIST;
    }
    if (r == 0) {
        pthread_mutex_lock(&m->grow_lock);
        if (m->table->by_id[id]) { /* someone took the ID meanwhile */
            dmce_msgf(why, whylen, "block %u appeared here meanwhile", id);
            r = -EEXIST;
        }
        b->role = MEMD_PRIMARY;
        if (r == 0)
            r = memd_sessions_take(m, b, 1, &allocs, &bytes, &owners);
        if (r == 0)
            r = memd_table_add_locked(m, b);
        else if (allocs)
            memd_sessions_take(m, b, -1, &allocs, &bytes, &owners);
        pthread_mutex_unlock(&m->grow_lock);
    }
    if (r < 0) {
        memd_block_destroy(m, b);
        free(hashes);
        return r;
    }
    sessions_restore(m, t);
    if (hashes) {
        free(bk->hashes[id]);
        bk->hashes[id] = hashes;
    }
    bk->recovered[id] = (uint8_t)recovering;
    STAT_ADD(m, DMCE_STAT_RESTORED, 1);
    memd_disp_event(m, id, DMCE_DISP_EV_CREATED, 0, 0); /* the dispatcher re-mirrors it */
    memd_disp_flush_events(m);
    LOG_WARN("block %u %s from %s (generation %llu, %u file(s)) in %.1f ms: %llu allocation(s), "
             "%llu bytes of %zu session(s), waiting %lld ms for their clients",
             id, recovering ? "recovered" : "restored", dir,
             (unsigned long long)e->files[e->nfiles - 1].generation, e->nfiles,
             (double)(dmce_now_ns() - t0) / 1e6, (unsigned long long)allocs,
             (unsigned long long)bytes, owners, (long long)m->cfg.recover_grace_ms);
    return 0;
}

/* ---- tasks ----------------------------------------------------------------------------------- */

/* The primaries of this daemon (or just `block`), in ID order. */
static uint32_t list_primaries(struct dmce_memd *m, uint32_t block, uint32_t **out)
{
    rcu_read_lock();
    struct memd_table *t = memd_table_get(m);
    uint32_t *v = malloc((t->count + 1) * sizeof(*v)), n = 0;
    for (uint32_t i = 1; v && i < t->nids && n < t->count; i++) {
        struct memd_block *b = t->by_id[i];
        if (b && b->role == MEMD_PRIMARY && !atomic_load(&b->frozen) && (!block || i == block))
            v[n++] = i;
    }
    rcu_read_unlock();
    *out = v;
    return n;
}

static void run_backup(struct dmce_memd *m, const struct bk_task *tk)
{
    struct memd_backup *bk = m->bk;
    char dir[DMCE_ADM_DIR_MAX + 64], why[DMCE_ADM_NAME_MAX + 1] = "";
    int r = task_dir(m, tk, dir, sizeof(dir));
    if (r == 0 && (r = dmce_mkdir_private(dir)) < 0)
        dmce_msgf(why, sizeof(why), "cannot make %s: %s", dir, strerror(-r));
    else if (r < 0)
        dmce_msgf(why, sizeof(why), "%s", dmce_strerror(r));
    int own = r == 0 && own_set(bk, dir);
    dmce_bk_table_t other = {0}, *t = own ? &bk->table : &other;
    if (r == 0 && !own) { /* another directory: add to what is there, in full images */
        r = dmce_bk_table_load(dir, &other, why, sizeof(why));
        if (r == -ENOENT)
            table_init(m, &other), r = 0;
        else if (r == 0 && other.daemon != (uint32_t)m->cfg.id)
            dmce_msgf(why, sizeof(why), "%s holds memd[%u]'s backups", dir, other.daemon),
                r = -EEXIST;
        else if (r == 0)
            r = table_fits(m, &other, dir, why, sizeof(why));
    }
    uint32_t *ids = NULL, n = r == 0 ? list_primaries(m, tk->block, &ids) : 0;
    if (r == 0 && tk->block && n == 0) {
        dmce_msgf(why, sizeof(why), "block %u is not a block this daemon holds", tk->block);
        r = DMCE_ENOBLOCK;
    }
    if (r < 0) {
        task_fail(bk, r, why);
    } else {
        pthread_mutex_lock(&bk->lock);
        bk->cur.blocks_total = n;
        bk->cur.bytes_total = (uint64_t)n * m->cfg.block_size;
        pthread_mutex_unlock(&bk->lock);
        table_take_sessions(m, t);
        for (uint32_t i = 0; i < n && !bk->stop; i++) {
            why[0] = 0;
            int e = backup_block(m, ids[i], dir, t, own, !own || (tk->flags & DMCE_ADM_BACKUP_FULL),
                                 why, sizeof(why));
            if (e < 0 && !(e == DMCE_ENOBLOCK && !tk->block)) { /* one that left meanwhile: fine */
                LOG_WARN("backup: %s", why);
                task_fail(bk, e, why);
            }
            pthread_mutex_lock(&bk->lock);
            bk->cur.blocks_done++;
            pthread_mutex_unlock(&bk->lock);
        }
    }
    free(ids);
    if (t == &other)
        dmce_bk_table_free(&other);
}

/* Remove block id from the own set: its entry, then its files. Backup thread. */
static void forget_block(struct dmce_memd *m, uint32_t id)
{
    struct memd_backup *bk = m->bk;
    pthread_mutex_lock(&bk->table_lock);
    dmce_bk_block_t *e = dmce_bk_table_find(&bk->table, id);
    int r = 0;
    if (e) {
        *e = bk->table.blocks[--bk->table.nblocks];
        r = dmce_bk_table_save(bk->set_dir, &bk->table);
    }
    pthread_mutex_unlock(&bk->table_lock);
    if (e && r == 0)
        dmce_bk_remove_unnamed(bk->set_dir, &bk->table);
    if (e)
        LOG_INFO("block %u left this daemon: its backups in %s %s", id, bk->set_dir,
                 r == 0 ? "removed" : "could not be removed (the table cannot be written)");
    if (id < bk->nids) {
        free(bk->hashes[id]);
        bk->hashes[id] = NULL;
        bk->recovered[id] = 0;
    }
}

/*
 * Restore the blocks of a set (all, or `block`). Returns 0, or the first
 * error with `why`. skipped counts blocks that live elsewhere (recovery).
 */
static int restore_set(struct dmce_memd *m, const char *dir, const dmce_bk_table_t *t,
                       uint32_t block, int recovering, char *why, size_t whylen, unsigned *skipped)
{
    struct memd_backup *bk = m->bk;
    uint16_t *elsewhere = NULL;
    if (memd_disp_primaries(m, m->table->nids, &elsewhere) < 0)
        elsewhere = NULL; /* no dispatcher: nothing can live elsewhere */
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < t->nblocks; i++)
        if (!block || t->blocks[i].block == block)
            n++, bytes += t->blocks[i].size;
    pthread_mutex_lock(&bk->lock);
    bk->cur.blocks_total = n;
    bk->cur.bytes_total = bytes;
    pthread_mutex_unlock(&bk->lock);
    int first = 0;
    if (block && n == 0) {
        dmce_msgf(why, whylen, "block %u has no backup in %s", block, dir);
        first = DMCE_ENOBLOCK;
    }
    for (uint32_t i = 0; i < t->nblocks; i++) {
        const dmce_bk_block_t *e = &t->blocks[i];
        if (block && e->block != block)
            continue;
        char w[DMCE_ADM_NAME_MAX + 1] = "";
        int r = restore_block(m, dir, t, e, elsewhere, recovering, w, sizeof(w));
        if (r == -EEXIST && recovering && elsewhere && elsewhere[e->block]) {
            LOG_WARN("recovery: %s; its backup is dropped", w);
            (*skipped)++;
            memd_backup_forget(m, e->block);
        } else if (r < 0) {
            LOG_ERROR("%s: %s", recovering ? "recovery" : "restore", w);
            if (!first) {
                first = r;
                dmce_msgf(why, whylen, "%s", w);
            }
        }
        pthread_mutex_lock(&bk->lock);
        bk->cur.blocks_done++;
        pthread_mutex_unlock(&bk->lock);
    }
    free(elsewhere);
    return first;
}

static void run_restore(struct dmce_memd *m, const struct bk_task *tk)
{
    struct memd_backup *bk = m->bk;
    char dir[DMCE_ADM_DIR_MAX + 64], why[DMCE_ADM_NAME_MAX + 1] = "";
    int r = task_dir(m, tk, dir, sizeof(dir));
    if (r < 0)
        dmce_msgf(why, sizeof(why), "%s", dmce_strerror(r));
    int own = r == 0 && own_set(bk, dir);
    dmce_bk_table_t other = {0};
    if (r == 0 && !own) {
        r = dmce_bk_table_load(dir, &other, why, sizeof(why));
        if (r == -ENOENT)
            dmce_msgf(why, sizeof(why), "%s holds no backup table", dir);
        else if (r == 0)
            r = table_fits(m, &other, dir, why, sizeof(why));
    }
    if (r == 0) {
        unsigned skipped = 0;
        if (own) { /* a copy: restore_set may drop entries of the own table */
            pthread_mutex_lock(&bk->table_lock);
            other = bk->table;
            other.blocks = malloc((other.nblocks + 1) * sizeof(*other.blocks));
            other.sessions = malloc((other.nsessions + 1) * sizeof(*other.sessions));
            if (other.blocks && other.sessions) {
                memcpy(other.blocks, bk->table.blocks, other.nblocks * sizeof(*other.blocks));
                memcpy(other.sessions, bk->table.sessions,
                       other.nsessions * sizeof(*other.sessions));
            } else {
                r = -ENOMEM;
            }
            pthread_mutex_unlock(&bk->table_lock);
        }
        if (r == 0)
            r = restore_set(m, dir, &other, tk->block, 0, why, sizeof(why), &skipped);
    }
    dmce_bk_table_free(&other);
    if (r < 0)
        task_fail(bk, r, why);
}

static void *backup_main(void *arg)
{
    struct dmce_memd *m = arg;
    struct memd_backup *bk = m->bk;
    rcu_register_thread();
    /* Below the workers: a backup's reads and hashing must not take their CPU. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0)
        LOG_DEBUG("backup thread: nice 10 refused; it runs at normal priority");
    pthread_mutex_lock(&bk->lock);
    while (!bk->stop) {
        while (bk->forgets) {
            struct bk_forget *f = bk->forgets;
            bk->forgets = f->next;
            pthread_mutex_unlock(&bk->lock);
            forget_block(m, f->block);
            free(f);
            pthread_mutex_lock(&bk->lock);
        }
        uint64_t now = dmce_now_ms();
        if (!bk->queue && m->cfg.backup_interval_s > 0 && bk->set_dir[0] &&
            now >= bk->next_periodic_ms) {
            bk->next_periodic_ms = now + (uint64_t)m->cfg.backup_interval_s * 1000;
            struct bk_task *p = calloc(1, sizeof(*p));
            if (p) {
                p->id = ++bk->next_id;
                p->kind = DMCE_ADM_TASK_PERIODIC;
                bk->queue = p;
                bk->queued++;
            }
        }
        struct bk_task *tk = bk->queue;
        if (!tk) {
            if (m->cfg.backup_interval_s > 0 && bk->set_dir[0]) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                uint64_t wait = bk->next_periodic_ms > now ? bk->next_periodic_ms - now : 0;
                ts.tv_sec += (time_t)(wait / 1000);
                ts.tv_nsec += (long)(wait % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L)
                    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&bk->cond, &bk->lock, &ts);
            } else {
                pthread_cond_wait(&bk->cond, &bk->lock);
            }
            continue;
        }
        bk->queue = tk->next;
        bk->queued--;
        memset(&bk->cur, 0, sizeof(bk->cur));
        bk->cur.id = tk->id;
        bk->cur.kind = tk->kind;
        bk->cur.state = DMCE_ADM_JOB_RUNNING;
        bk->cur_start_ns = dmce_now_ns();
        bk->running = 1;
        pthread_mutex_unlock(&bk->lock);
        if (tk->kind == DMCE_ADM_TASK_RESTORE)
            run_restore(m, tk);
        else
            run_backup(m, tk);
        pthread_mutex_lock(&bk->lock);
        bk->running = 0;
        bk->cur.elapsed_us = (dmce_now_ns() - bk->cur_start_ns) / 1000;
        bk->cur.state = bk->cur.err ? DMCE_ADM_JOB_FAILED : DMCE_ADM_JOB_DONE;
        LOG_INFO(
            "%s task %u %s: %u of %u block(s), %.1f MiB scanned, %.1f MiB written, %.1f ms%s%s",
            tk->kind == DMCE_ADM_TASK_RESTORE ? "restore" : "backup", tk->id,
            bk->cur.err ? "failed" : "done", bk->cur.blocks_done, bk->cur.blocks_total,
            (double)bk->cur.bytes_done / (1 << 20), (double)bk->cur.bytes_written / (1 << 20),
            (double)bk->cur.elapsed_us / 1000, bk->cur.err ? ": " : "", bk->cur.detail);
        pthread_cond_broadcast(&bk->cond);
        free(tk);
    }
    pthread_mutex_unlock(&bk->lock);
    rcu_unregister_thread();
    return NULL;
}

/* ---- life -------------------------------------------------------------------------------------
 */

int memd_backup_load(struct dmce_memd *m)
{
    struct memd_backup *bk = calloc(1, sizeof(*bk));
    if (!bk)
        return -ENOMEM;
    m->bk = bk;
    pthread_mutex_init(&bk->lock, NULL);
    pthread_mutex_init(&bk->table_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&bk->cond, &ca);
    pthread_condattr_destroy(&ca);
    table_init(m, &bk->table);
    if (!m->cfg.backup_dir[0]) {
        if (m->cfg.recover)
            LOG_WARN("recover = yes but backup_dir is not set: nothing to recover");
        return 0;
    }
    if (snprintf(bk->set_dir, sizeof(bk->set_dir), "%s/memd-%lld", m->cfg.backup_dir,
                 (long long)m->cfg.id) >= (int)sizeof(bk->set_dir)) {
        LOG_ERROR("backup_dir %s is too long", m->cfg.backup_dir);
        return -ENAMETOOLONG;
    }
    int r = dmce_mkdir_private(bk->set_dir);
    if (r < 0) {
        LOG_ERROR("cannot make the backup directory %s: %s", bk->set_dir, strerror(-r));
        return r;
    }
    char why[512] = "";
    dmce_bk_table_t t;
    r = dmce_bk_table_load(bk->set_dir, &t, why, sizeof(why));
    if (r == -ENOENT)
        return 0; /* an empty set */
    if (r < 0) {
        LOG_ERROR("backup set %s cannot be read: %s; not starting (move it away to start "
                  "without it)",
                  bk->set_dir, why);
        return r;
    }
    if (t.daemon != (uint32_t)m->cfg.id) {
        dmce_msgf(why, sizeof(why), "%s holds memd[%u]'s backups", bk->set_dir, t.daemon);
        r = -EEXIST;
    } else {
        r = table_fits(m, &t, bk->set_dir, why, sizeof(why));
    }
    if (r == 0 && t.nblocks && !m->cfg.recover) {
        dmce_msgf(why, sizeof(why),
                  "%s holds the backups of %u block(s); start with recover = yes (--recover) to "
                  "bring them back under their addresses, or move the set away to start empty",
                  bk->set_dir, t.nblocks);
        r = -EEXIST;
    }
    if (r < 0) {
        LOG_ERROR("not starting: %s", why);
        dmce_bk_table_free(&t);
        return r;
    }
    dmce_bk_table_free(&bk->table);
    bk->table = t;
    if (t.nblocks && t.block_count == (uint32_t)m->cfg.max_blocks && t.block_first) {
        m->recovering = 1; /* ask the dispatcher for the same block IDs */
        m->block_first = t.block_first;
        m->block_last = t.block_first + t.block_count - 1;
    }
    return 0;
}

int memd_backup_start(struct dmce_memd *m)
{
    struct memd_backup *bk = m->bk;
    bk->nids = memd_nids(m); /* workers publish tables already: not through m->table */
    bk->hashes = calloc(bk->nids, sizeof(*bk->hashes));
    bk->recovered = calloc(bk->nids, 1);
    if (!bk->hashes || !bk->recovered)
        return -ENOMEM;
    /* The table's range, for the next save. */
    bk->table.block_first = m->block_first;
    bk->table.block_count = (uint32_t)m->cfg.max_blocks;
    if (bk->table.nblocks) { /* recover = yes (memd_backup_load refused otherwise) */
        uint64_t t0 = dmce_now_ns(), bytes = 0;
        for (uint32_t i = 0; i < bk->table.nblocks; i++)
            bytes += bk->table.blocks[i].size;
        LOG_INFO("recovering %u block(s), %.1f MiB, from %s", bk->table.nblocks,
                 (double)bytes / (1 << 20), bk->set_dir);
        memd_test_pause("DMCE_TEST_RECOVER_PAUSE_MS", "a slow recovery");
        bk->cur.id = ++bk->next_id;
        bk->cur.kind = DMCE_ADM_TASK_RECOVER;
        bk->cur.state = DMCE_ADM_JOB_RUNNING;
        char why[DMCE_ADM_NAME_MAX + 1] = "";
        unsigned skipped = 0;
        /* restore_set may drop entries (blocks that live elsewhere): it reads a copy. */
        dmce_bk_table_t copy = bk->table;
        copy.blocks = malloc(copy.nblocks * sizeof(*copy.blocks));
        if (!copy.blocks)
            return -ENOMEM;
        memcpy(copy.blocks, bk->table.blocks, copy.nblocks * sizeof(*copy.blocks));
        copy.sessions = bk->table.sessions;
        int r = restore_set(m, bk->set_dir, &copy, 0, 1, why, sizeof(why), &skipped);
        free(copy.blocks);
        bk->cur.elapsed_us = (dmce_now_ns() - t0) / 1000;
        bk->cur.state = r < 0 ? DMCE_ADM_JOB_FAILED : DMCE_ADM_JOB_DONE;
        bk->cur.err = r;
        dmce_msgf(bk->cur.detail, sizeof(bk->cur.detail), "%s", why);
        /* The drops restore_set queued: done here, before the thread starts. */
        while (bk->forgets) {
            struct bk_forget *f = bk->forgets;
            bk->forgets = f->next;
            forget_block(m, f->block);
            free(f);
        }
        if (r < 0) {
            LOG_ERROR("not starting: recovery failed: %s (dmcectl verify --dir %s tells more; "
                      "move the set away to start without it)",
                      why, m->cfg.backup_dir);
            return r;
        }
        LOG_WARN("recovery done in %.1f ms: %u block(s) back, %u newer elsewhere (dropped)",
                 (double)bk->cur.elapsed_us / 1000, bk->cur.blocks_done - skipped, skipped);
    }
    bk->next_periodic_ms = dmce_now_ms() + (uint64_t)m->cfg.backup_interval_s * 1000;
    int r = pthread_create(&bk->thread, NULL, backup_main, m);
    if (r)
        return -r;
    bk->on = 1;
    return 0;
}

void memd_backup_stop(struct dmce_memd *m)
{
    struct memd_backup *bk = m->bk;
    if (!bk)
        return;
    if (bk->on) {
        pthread_mutex_lock(&bk->lock);
        bk->stop = 1;
        atomic_store(&bk->yield, 1);
        pthread_cond_broadcast(&bk->cond);
        pthread_mutex_unlock(&bk->lock);
        pthread_join(bk->thread, NULL);
    }
    while (bk->queue) {
        struct bk_task *t = bk->queue;
        bk->queue = t->next;
        free(t);
    }
    while (bk->forgets) {
        struct bk_forget *f = bk->forgets;
        bk->forgets = f->next;
        free(f);
    }
    for (uint32_t i = 0; bk->hashes && i < bk->nids; i++)
        free(bk->hashes[i]);
    free(bk->hashes);
    free(bk->recovered);
    dmce_bk_table_free(&bk->table);
    pthread_mutex_destroy(&bk->lock);
    pthread_mutex_destroy(&bk->table_lock);
    pthread_cond_destroy(&bk->cond);
    free(bk);
    m->bk = NULL;
}

int memd_backup_busy(struct dmce_memd *m, uint32_t id)
{
    struct memd_backup *bk = m->bk;
    if (!bk)
        return 0;
    pthread_mutex_lock(&bk->lock);
    int busy = bk->busy_block == id;
    if (busy)
        atomic_store(&bk->yield, 1);
    pthread_mutex_unlock(&bk->lock);
    return busy ? -EBUSY : 0;
}

void memd_backup_forget(struct dmce_memd *m, uint32_t id)
{
    struct memd_backup *bk = m->bk;
    if (!bk || !bk->set_dir[0])
        return;
    struct bk_forget *f = calloc(1, sizeof(*f));
    if (!f) {
        LOG_WARN("block %u left: its backups in %s stay until the next backup", id, bk->set_dir);
        return;
    }
    f->block = id;
    pthread_mutex_lock(&bk->lock);
    f->next = bk->forgets;
    bk->forgets = f;
    pthread_cond_broadcast(&bk->cond);
    pthread_mutex_unlock(&bk->lock);
}

/* ---- operations --------------------------------------------------------------------------------
 */

static void op_backup(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len,
                      uint32_t kind)
{
    struct memd_backup *bk = m->bk;
    dmce_adm_backup_t rq;
    int r = dmce_adm_backup_decode(p, len, &rq);
    if (r == 0 && rq.dir[0] && rq.dir[0] != '/')
        r = -EINVAL; /* relative to what? this daemon's cwd is not the caller's */
    if (r == 0 && !rq.dir[0] && !bk->set_dir[0])
        r = DMCE_ENOBACKUPDIR;
    if (r == 0 && kind == DMCE_ADM_TASK_RESTORE && (rq.flags & DMCE_ADM_BACKUP_FULL))
        r = -EBADMSG;
    if (r == 0 && rq.block >= m->table->nids)
        r = DMCE_ENOBLOCK;
    if (r < 0)
        return memd_reply_error(m, c, &c->h, r);
    struct bk_task *tk = calloc(1, sizeof(*tk));
    if (!tk)
        return memd_reply_error(m, c, &c->h, -ENOMEM);
    tk->kind = kind;
    tk->block = rq.block;
    tk->flags = rq.flags;
    memcpy(tk->dir, rq.dir, sizeof(tk->dir));
    pthread_mutex_lock(&bk->lock);
    if (bk->queued >= MAX_TASKS) {
        r = -EBUSY;
    } else {
        tk->id = ++bk->next_id;
        struct bk_task **pp = &bk->queue;
        while (*pp)
            pp = &(*pp)->next;
        *pp = tk;
        bk->queued++;
        pthread_cond_broadcast(&bk->cond);
    }
    uint32_t id = tk->id;
    pthread_mutex_unlock(&bk->lock);
    if (r < 0) {
        free(tk);
        return memd_reply_error(m, c, &c->h, r);
    }
    uint8_t *out = memd_reply_begin(c, &c->h, 0, DMCE_ADM_PAIR_SIZE);
    if (out)
        dmce_adm_pair_encode(id, rq.block, out);
}

static void op_backup_status(struct dmce_memd *m, struct memd_conn *c, uint32_t len)
{
    struct memd_backup *bk = m->bk;
    if (len != 0)
        return memd_reply_error(m, c, &c->h, -EBADMSG);
    dmce_adm_bk_status_t st = {.interval_s = (uint32_t)m->cfg.backup_interval_s};
    snprintf(st.dir, sizeof(st.dir), "%s", bk->set_dir);
    pthread_mutex_lock(&bk->lock);
    st.task = bk->cur;
    if (bk->running)
        st.task.elapsed_us = (dmce_now_ns() - bk->cur_start_ns) / 1000;
    if (!st.task.state && bk->queue) { /* nothing ran yet: the first queued */
        st.task.id = bk->queue->id;
        st.task.kind = bk->queue->kind;
        st.task.state = DMCE_ADM_JOB_QUEUED;
    }
    pthread_mutex_unlock(&bk->lock);
    pthread_mutex_lock(&bk->table_lock);
    uint32_t n = bk->table.nblocks;
    size_t size = dmce_adm_bk_status_size(&st, n);
    uint8_t *out = memd_reply_begin(c, &c->h, 0, (uint32_t)size);
    int h = out ? dmce_adm_bk_status_encode(&st, n, out, size) : -ENOMEM;
    uint64_t now = realtime_ns();
    for (uint32_t i = 0; h > 0 && i < n; i++) {
        const dmce_bk_block_t *b = &bk->table.blocks[i];
        uint64_t disk = 0;
        for (uint32_t k = 0; k < b->nfiles; k++)
            disk += b->files[k].bytes;
        dmce_adm_bk_entry_t e = {.block = b->block,
                                 .mirror_daemon = b->mirror_daemon,
                                 .page_size = b->page_size,
                                 .pages = b->pages,
                                 .size = b->size,
                                 .generation = b->files[b->nfiles - 1].generation,
                                 .files = b->nfiles,
                                 .disk_bytes = disk,
                                 .age_ms = now > b->time_ns ? (now - b->time_ns) / 1000000 : 0,
                                 .took_us = b->took_us};
        if (b->block < bk->nids && bk->recovered && bk->recovered[b->block])
            e.flags = DMCE_ADM_BK_RECOVERED;
        dmce_adm_bk_entry_encode(&e, out + h + (size_t)i * DMCE_ADM_BK_ENTRY_SIZE);
    }
    pthread_mutex_unlock(&bk->table_lock);
}

int memd_backup_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    switch (c->h.op) {
    case DMCE_MSMP_OP_BACKUP: op_backup(m, c, p, len, DMCE_ADM_TASK_BACKUP); return 1;
    case DMCE_MSMP_OP_RESTORE: op_backup(m, c, p, len, DMCE_ADM_TASK_RESTORE); return 1;
    case DMCE_MSMP_OP_BACKUP_STATUS: op_backup_status(m, c, len); return 1;
    default: return 0;
    }
}
