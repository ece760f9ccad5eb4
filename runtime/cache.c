/*
 * cache.c - the Memory Cache (see cache.h).
 *
 * Tables, all under c->lock:
 *   - a chained hash of standard windows keyed by (server, block, start);
 *   - a list of contiguous windows (few: one per user mapping that crosses
 *     a standard window boundary), searched by range;
 *   - an LRU list of the windows nobody pins, most recent at the head;
 *   - a list of stale windows (invalidated while pinned), released when
 *     their last pin goes.
 * A window is in exactly one of hash / contig list / stale list, and on
 * the LRU list exactly when pins == 0 and it is not stale.
 *
 * Dirty tracking for copies is one [lo, hi) range per window: writes far
 * apart in one window store the bytes between them too. That costs
 * bandwidth, and keeps release O(1); it is only correct while this cache
 * is the block's one writer of those bytes (copies of one block made here
 * are kept coherent with each other, see each_overlapping_copy).
 *
 * A window is born pinned by the acquire that made it (pins = 1, not on
 * the LRU list); pin() is for hits only.
 */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PAGE 4096u

struct dmce_cache_window {
    dmce_cache_key_t key;
    uint64_t off, len;
    uint8_t *ptr;
    int shared;
    int contig;
    int stale;
    int prepared; /* prepare_write has been called (or is being called) for it */
    unsigned pins;
    uint64_t dirty_lo, dirty_hi; /* block offsets; lo >= hi: clean */
    struct dmce_cache_window *lru_prev, *lru_next;
    struct dmce_cache_window *next; /* hash chain, contig list or stale list */
};

typedef struct dmce_cache_window win_t;

struct dmce_cache {
    pthread_mutex_t lock;
    dmce_cache_config_t cfg;
    dmce_cache_backend_t be;
    win_t **hash;
    size_t hcap, hcount;
    win_t *contig;
    win_t *stale;
    win_t *lru_head, *lru_tail;
    unsigned n_unpinned;
    uint64_t unpinned_bytes;
    dmce_cache_stats_t st;
};

static uint64_t align_down(uint64_t x, uint64_t a)
{
    return x - x % a;
}

static size_t hash_slot(const struct dmce_cache *c, dmce_cache_key_t k, uint64_t off)
{
    uint64_t h = ((uint64_t)k.server << 32 | k.block) * 0x9e3779b97f4a7c15ull;
    h ^= (off >> 12) * 0xc2b2ae3d27d4eb4full;
    h ^= h >> 29;
    return (size_t)(h & (c->hcap - 1));
}

static int key_eq(dmce_cache_key_t a, dmce_cache_key_t b)
{
    return a.server == b.server && a.block == b.block;
}

/* ---- lists -------------------------------------------------------------- */

static void lru_remove(struct dmce_cache *c, win_t *w)
{
    if (w->lru_prev)
        w->lru_prev->lru_next = w->lru_next;
    else
        c->lru_head = w->lru_next;
    if (w->lru_next)
        w->lru_next->lru_prev = w->lru_prev;
    else
        c->lru_tail = w->lru_prev;
    w->lru_prev = w->lru_next = NULL;
    c->n_unpinned--;
    c->unpinned_bytes -= w->len;
}

static void lru_push_front(struct dmce_cache *c, win_t *w)
{
    w->lru_prev = NULL;
    w->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = w;
    else
        c->lru_tail = w;
    c->lru_head = w;
    c->n_unpinned++;
    c->unpinned_bytes += w->len;
}

/* Unlink w from the singly linked list starting at *head. */
static void list_remove(win_t **head, win_t *w)
{
    for (win_t **pp = head; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            return;
        }
    }
}

/* The list a live (not stale) window sits on. */
static win_t **home_list(struct dmce_cache *c, win_t *w)
{
    return w->contig ? &c->contig : &c->hash[hash_slot(c, w->key, w->off)];
}

static int hash_grow(struct dmce_cache *c)
{
    size_t ncap = c->hcap ? c->hcap * 2 : 64;
    win_t **nh = calloc(ncap, sizeof(*nh));
    if (!nh)
        return -ENOMEM;
    win_t **old = c->hash;
    size_t ocap = c->hcap;
    c->hash = nh;
    c->hcap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        for (win_t *w = old[i], *n; w; w = n) {
            n = w->next;
            size_t s = hash_slot(c, w->key, w->off);
            w->next = nh[s];
            nh[s] = w;
        }
    }
    free(old);
    return 0;
}

static win_t *find_standard(struct dmce_cache *c, dmce_cache_key_t key, uint64_t start)
{
    if (!c->hcap)
        return NULL;
    for (win_t *w = c->hash[hash_slot(c, key, start)]; w; w = w->next)
        if (w->off == start && key_eq(w->key, key))
            return w;
    return NULL;
}

static win_t *find_contig(struct dmce_cache *c, dmce_cache_key_t key, uint64_t off, uint64_t len)
{
    for (win_t *w = c->contig; w; w = w->next)
        if (key_eq(w->key, key) && off >= w->off && off + len <= w->off + w->len)
            return w;
    return NULL;
}

/* ---- windows ------------------------------------------------------------ */

/*
 * Copies of the same bytes must agree: a contiguous window may overlap
 * standard windows of its block, and for copies (shared = 0) each has its
 * own memory. Every write released into one copy is copied into the other
 * live copies (publish), and a new copy takes the not yet stored bytes of
 * the copies it overlaps (adopt). Stale windows take no part.
 */
typedef void (*overlap_fn)(win_t *w, win_t *o, uint64_t lo, uint64_t hi);

/* Call fn(w, o, lo, hi) for each other live copy o of w's block overlapping [lo, hi). */
static void each_overlapping_copy(struct dmce_cache *c, win_t *w, uint64_t lo, uint64_t hi,
                                  overlap_fn fn)
{
    for (win_t *o = c->contig; o; o = o->next)
        if (o != w && !o->shared && key_eq(o->key, w->key) && o->off < hi && lo < o->off + o->len)
            fn(w, o, DMCE_MAX(lo, o->off), DMCE_MIN(hi, o->off + o->len));
    uint64_t ws = c->cfg.window_size;
    for (uint64_t s = ws ? align_down(lo, ws) : 0; s < hi; s += ws) {
        win_t *o = find_standard(c, w->key, s);
        if (o && o != w && !o->shared && o->off < hi && lo < o->off + o->len)
            fn(w, o, DMCE_MAX(lo, o->off), DMCE_MIN(hi, o->off + o->len));
        if (!ws)
            break;
    }
}

static void publish_one(win_t *w, win_t *o, uint64_t lo, uint64_t hi)
{
    memcpy(o->ptr + (lo - o->off), w->ptr + (lo - w->off), hi - lo);
}

static void adopt_one(win_t *w, win_t *o, uint64_t lo, uint64_t hi)
{
    lo = DMCE_MAX(lo, o->dirty_lo);
    hi = DMCE_MIN(hi, o->dirty_hi);
    if (lo < hi)
        memcpy(w->ptr + (lo - w->off), o->ptr + (lo - o->off), hi - lo);
}

static int store_dirty(struct dmce_cache *c, win_t *w)
{
    if (w->shared || w->dirty_lo >= w->dirty_hi)
        return 0;
    uint64_t lo = w->dirty_lo, n = w->dirty_hi - w->dirty_lo;
    int r = c->be.store ? c->be.store(c->be.ctx, w->key, lo, w->ptr + (lo - w->off), n) : -ENOSYS;
    if (r < 0)
        return r;
    c->st.stores++;
    c->st.bytes_stored += n;
    w->dirty_lo = w->dirty_hi = 0;
    return 0;
}

/* Release a window that is on no list any more. */
static void win_free(struct dmce_cache *c, win_t *w)
{
    c->be.unmap(c->be.ctx, w->key, w->off, w->len, w->ptr, w->shared);
    c->st.unmaps++;
    c->st.windows--;
    c->st.bytes_mapped -= w->len;
    free(w);
}

/*
 * Evict least recently used windows until fewer than `keep` unpinned ones
 * remain and, with a byte limit, `extra` more bytes fit. A dirty copy that
 * cannot be stored is kept (moved to the head) and eviction goes on.
 */
static void make_room(struct dmce_cache *c, unsigned keep, uint64_t extra)
{
    unsigned tries = c->n_unpinned;
    while (c->lru_tail && tries-- > 0 &&
           (c->n_unpinned >= keep ||
            (c->cfg.max_bytes && c->unpinned_bytes + extra > c->cfg.max_bytes))) {
        win_t *w = c->lru_tail;
        lru_remove(c, w);
        if (store_dirty(c, w) < 0) {
            lru_push_front(c, w);
            continue;
        }
        list_remove(home_list(c, w), w);
        if (!w->contig)
            c->hcount--;
        c->st.evictions++;
        win_free(c, w);
    }
}

/* Map a new window, pinned once by the caller's acquire (pins = 1, not on the LRU). */
static int win_new(struct dmce_cache *c, dmce_cache_key_t key, uint64_t off, uint64_t len,
                   int contig, win_t **out)
{
    if (!contig && c->hcount + 1 > c->hcap / 2) {
        int r = hash_grow(c);
        if (r < 0)
            return r;
    }
    make_room(c, c->cfg.max_windows, len);
    win_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    void *p = NULL;
    int shared = 1;
    int r = c->be.map(c->be.ctx, key, off, len, &p, &shared);
    if (r < 0) {
        free(w);
        return r;
    }
    c->st.maps++;
    c->st.windows++;
    c->st.bytes_mapped += len;
    w->key = key;
    w->off = off;
    w->len = len;
    w->ptr = p;
    w->shared = shared;
    w->contig = contig;
    w->pins = 1; /* born pinned, so never on the LRU list yet */
    if (!shared)
        each_overlapping_copy(c, w, off, off + len, adopt_one);
    win_t **head = home_list(c, w);
    w->next = *head;
    *head = w;
    if (!contig)
        c->hcount++;
    *out = w;
    return 0;
}

/* Pin a window that is already in the tables (a hit). */
static void pin(struct dmce_cache *c, win_t *w)
{
    if (w->pins++ == 0)
        lru_remove(c, w);
}

/* ---- API ---------------------------------------------------------------- */

int dmce_cache_create(const dmce_cache_config_t *cfg, const dmce_cache_backend_t *be,
                      dmce_cache_t **out)
{
    if (!cfg || !be || !be->map || !be->unmap || !out || cfg->max_windows == 0 ||
        cfg->window_size % PAGE ||
        (cfg->policy != DMCE_CACHE_WRITE_THROUGH && cfg->policy != DMCE_CACHE_WRITE_BACK))
        return -EINVAL;
    struct dmce_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    c->cfg = *cfg;
    c->be = *be;
    *out = c;
    return 0;
}

int dmce_cache_destroy(dmce_cache_t *c)
{
    if (!c)
        return 0;
    int first = dmce_cache_flush(c, NULL);
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->hcap; i++) {
        for (win_t *w = c->hash[i], *n; w; w = n) {
            n = w->next;
            win_free(c, w);
        }
    }
    for (win_t *w = c->contig, *n; w; w = n) {
        n = w->next;
        win_free(c, w);
    }
    for (win_t *w = c->stale, *n; w; w = n) {
        n = w->next;
        win_free(c, w);
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_destroy(&c->lock);
    free(c->hash);
    free(c);
    return first;
}

int dmce_cache_acquire(dmce_cache_t *c, dmce_cache_key_t key, uint64_t block_size, uint64_t off,
                       uint64_t len, unsigned flags, dmce_cache_ref_t *ref)
{
    if (len == 0 || (flags & ~(unsigned)(DMCE_CACHE_CONTIG | DMCE_CACHE_WRITE)))
        return -EINVAL;
    if (off >= block_size || len > block_size - off)
        return -ERANGE;
    uint64_t ws = c->cfg.window_size ? c->cfg.window_size : block_size;
    uint64_t start = c->cfg.window_size ? align_down(off, ws) : 0;
    uint64_t wlen = DMCE_MIN(ws, block_size - start);
    int contig = (flags & DMCE_CACHE_CONTIG) && off + len > start + wlen;

    pthread_mutex_lock(&c->lock);
    win_t *w = contig ? find_contig(c, key, off, len) : find_standard(c, key, start);
    int r = 0;
    if (w) {
        c->st.hits++;
        pin(c, w);
    } else {
        c->st.misses++;
        if (contig) {
            start = align_down(off, PAGE);
            uint64_t end = DMCE_MIN(align_down(off + len + PAGE - 1, PAGE), block_size);
            wlen = end - start;
        }
        r = win_new(c, key, start, wlen, contig, &w);
    }
    int prepare = 0;
    if (r == 0) {
        c->st.pinned += w->pins == 1;
        ref->w = w;
        ref->ptr = w->ptr + (off - w->off);
        ref->len = DMCE_MIN(len, w->off + w->len - off);
        prepare = (flags & DMCE_CACHE_WRITE) && w->shared && !w->prepared && c->be.prepare_write;
        if (prepare)
            w->prepared = 1; /* another writer meanwhile goes on unprepared: slower, not wrong */
    }
    pthread_mutex_unlock(&c->lock);
    if (prepare) /* pinned: the window stays */
        c->be.prepare_write(c->be.ctx, w->key, w->off, w->ptr, w->len);
    return r;
}

int dmce_cache_release(dmce_cache_t *c, dmce_cache_ref_t *ref, uint64_t wr_off, uint64_t wr_len)
{
    win_t *w = ref->w;
    if (!w)
        return -EINVAL;
    int r = 0;
    if (wr_len && (wr_off > ref->len || wr_len > ref->len - wr_off)) {
        r = -ERANGE; /* not inside what acquire gave: record nothing */
        wr_len = 0;
    }
    pthread_mutex_lock(&c->lock);
    if (wr_len && !w->shared && !w->stale) {
        uint64_t lo = w->off + (uint64_t)(ref->ptr - w->ptr) + wr_off, hi = lo + wr_len;
        if (w->dirty_lo >= w->dirty_hi) {
            w->dirty_lo = lo;
            w->dirty_hi = hi;
        } else {
            w->dirty_lo = DMCE_MIN(w->dirty_lo, lo);
            w->dirty_hi = DMCE_MAX(w->dirty_hi, hi);
        }
        each_overlapping_copy(c, w, lo, hi, publish_one);
        if (c->cfg.policy == DMCE_CACHE_WRITE_THROUGH)
            r = store_dirty(c, w);
    } else if (wr_len && !w->shared && w->stale) {
        r = -ESTALE; /* the block moved or its server went: these bytes were not stored */
    }
    if (--w->pins == 0) {
        c->st.pinned--;
        if (w->stale) {
            list_remove(&c->stale, w);
            win_free(c, w);
        } else {
            lru_push_front(c, w);
            make_room(c, c->cfg.max_windows + 1, 0);
        }
    }
    pthread_mutex_unlock(&c->lock);
    ref->w = NULL;
    return r;
}

static int contains(const win_t *w, const uint8_t *p)
{
    return p >= w->ptr && p < w->ptr + w->len;
}

int dmce_cache_addr_of(dmce_cache_t *c, const void *ptr, dmce_cache_key_t *key, uint64_t *off)
{
    const uint8_t *p = ptr;
    const win_t *hit = NULL;
    pthread_mutex_lock(&c->lock);
    for (const win_t *w = c->contig; w && !hit; w = w->next)
        if (contains(w, p))
            hit = w;
    for (size_t i = 0; i < c->hcap && !hit; i++)
        for (const win_t *w = c->hash[i]; w && !hit; w = w->next)
            if (contains(w, p))
                hit = w;
    /* Invalidated but still pinned: still a window of that block and offset. */
    for (const win_t *w = c->stale; w && !hit; w = w->next)
        if (contains(w, p))
            hit = w;
    if (hit) {
        *key = hit->key;
        *off = hit->off + (uint64_t)(p - hit->ptr);
    }
    pthread_mutex_unlock(&c->lock);
    return hit ? 0 : -ENOENT;
}

int dmce_cache_flush(dmce_cache_t *c, const dmce_cache_key_t *key)
{
    int first = 0;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->hcap; i++) {
        for (win_t *w = c->hash[i]; w; w = w->next) {
            if (key && !key_eq(*key, w->key))
                continue;
            int r = store_dirty(c, w);
            if (r < 0 && !first)
                first = r;
        }
    }
    for (win_t *w = c->contig; w; w = w->next) {
        if (key && !key_eq(*key, w->key))
            continue;
        int r = store_dirty(c, w);
        if (r < 0 && !first)
            first = r;
    }
    pthread_mutex_unlock(&c->lock);
    return first;
}

static void invalidate_list(struct dmce_cache *c, win_t **head, dmce_cache_key_t key)
{
    for (win_t **pp = head; *pp;) {
        win_t *w = *pp;
        if (!key_eq(w->key, key)) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = NULL;
        if (!w->contig)
            c->hcount--;
        w->stale = 1;
        w->dirty_lo = w->dirty_hi = 0;
        if (w->pins == 0) {
            lru_remove(c, w);
            win_free(c, w);
        } else {
            w->next = c->stale;
            c->stale = w;
        }
    }
}

void dmce_cache_invalidate(dmce_cache_t *c, dmce_cache_key_t key)
{
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->hcap; i++)
        invalidate_list(c, &c->hash[i], key);
    invalidate_list(c, &c->contig, key);
    pthread_mutex_unlock(&c->lock);
}

void dmce_cache_stats(dmce_cache_t *c, dmce_cache_stats_t *out)
{
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    pthread_mutex_unlock(&c->lock);
}
