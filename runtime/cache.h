/*
 * cache.h - the Memory Cache and its Memory Cache Mapping Table (seed 002
 * FIG. 7, [0077]-[0080]).
 *
 * A client reaches the bytes of a block through windows: slices of the
 * block made accessible in its address space. A 64-bit client can afford a
 * window per whole block; a 32-bit one cannot (3 GiB of address space for
 * 6 GiB of data), so it keeps a bounded set of fixed-size windows and
 * replaces the least recently used one on a miss.
 *
 * The cache does not know how a window is made. A backend does:
 *   - local blocks (server 0): map() is mmap of the block's shm descriptor,
 *     the window *is* the block's memory (shared = 1): writes need no
 *     write-back, and every process sees them at once;
 *   - remote blocks (server != 0, once hosts are linked): map() allocates
 *     private memory and fetches the bytes (shared = 0): the window is a
 *     copy. Writes to a copy are stored back at once (write-through) or when
 *     the window is flushed or evicted (write-back), per the cache's policy.
 *
 * Windows:
 *   - standard windows are aligned on window_size (window_size 0: one
 *     window per whole block). An access that crosses a window boundary is
 *     served piece by piece (dmce_cache_acquire returns a shorter length);
 *   - contiguous windows (DMCE_CACHE_CONTIG) cover exactly the pages of a
 *     range that must be contiguous in memory (what dmce_map returns), and
 *     may overlap standard windows: both see the same shared bytes; for
 *     copies, a write is copied into the overlapping copies at release.
 *
 * A window is pinned while a reference to it is held (between acquire and
 * release, or for the life of a user mapping) and is never evicted while
 * pinned. Limits (max_windows, max_bytes) bound unpinned windows: pinned
 * windows may exceed them, since the user asked for them explicitly.
 *
 * Thread safety: every call may be made from several threads at once; one
 * mutex protects the tables, and the bytes of an acquired window are used
 * outside it (the pin keeps the window alive). Calls that miss call the
 * backend under that mutex, and so may block for as long as it does.
 */
#ifndef DMCE_RUNTIME_CACHE_H
#define DMCE_RUNTIME_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* Which block: server ID (0 = this host) and block ID. */
typedef struct dmce_cache_key {
    uint32_t server;
    uint32_t block;
} dmce_cache_key_t;

typedef struct dmce_cache_backend {
    void *ctx;
    /*
     * Make [off, off+len) of the block accessible at *ptr. *shared = 1 if
     * the bytes at *ptr are the block's own (mapped), 0 if they are a
     * private copy that needs storing back. 0 or a negative error.
     */
    int (*map)(void *ctx, dmce_cache_key_t key, uint64_t off, uint64_t len, void **ptr,
               int *shared);
    /* Release what map() returned. */
    void (*unmap)(void *ctx, dmce_cache_key_t key, uint64_t off, uint64_t len, void *ptr,
                  int shared);
    /* Store bytes of a copy back to the block. NULL when there are no copies. */
    int (*store)(void *ctx, dmce_cache_key_t key, uint64_t off, const void *src, uint64_t len);
    /*
     * Optional: get a shared window ready to be written, e.g. fill its page
     * tables at once. Called once per window ([off, off+len) of block key,
     * mapped at ptr), with all of it, by the first
     * dmce_cache_acquire with DMCE_CACHE_WRITE (outside the cache's lock,
     * the window pinned), before that acquire returns. Windows only read
     * never get it.
     */
    void (*prepare_write)(void *ctx, dmce_cache_key_t key, uint64_t off, void *ptr, uint64_t len);
} dmce_cache_backend_t;

typedef enum dmce_cache_policy {
    DMCE_CACHE_WRITE_THROUGH = 0, /* copies: every write is stored before release returns */
    DMCE_CACHE_WRITE_BACK = 1,    /* copies: stored on flush and eviction */
} dmce_cache_policy_t;

typedef struct dmce_cache_config {
    uint64_t window_size; /* bytes, multiple of 4096; 0 = whole blocks */
    unsigned max_windows; /* unpinned windows kept (>= 1) */
    uint64_t max_bytes;   /* bytes of unpinned windows kept; 0 = no limit */
    dmce_cache_policy_t policy;
} dmce_cache_config_t;

typedef struct dmce_cache dmce_cache_t;
struct dmce_cache_window;

/* A pinned piece of a window, from dmce_cache_acquire. */
typedef struct dmce_cache_ref {
    struct dmce_cache_window *w;
    uint8_t *ptr; /* the byte at the requested offset */
    uint64_t len; /* bytes usable from ptr (<= the length asked for) */
} dmce_cache_ref_t;

typedef struct dmce_cache_stats {
    uint64_t hits, misses, evictions, maps, unmaps;
    uint64_t stores, bytes_stored; /* copies written back */
    uint64_t windows, pinned, bytes_mapped;
} dmce_cache_stats_t;

/* -EINVAL for a bad config (window_size not a multiple of 4096, max_windows 0). */
int dmce_cache_create(const dmce_cache_config_t *cfg, const dmce_cache_backend_t *be,
                      dmce_cache_t **out);

/*
 * Store every dirty copy, release every window (pinned ones too: callers
 * must be done with them), free c. Returns 0 or the first store error.
 */
int dmce_cache_destroy(dmce_cache_t *c);

enum dmce_cache_flags {
    /* The whole [off, off+len) in one window (a contiguous window if need be). */
    DMCE_CACHE_CONTIG = 1u << 0,
    /* The caller will write: the backend's prepare_write runs first (once a window). */
    DMCE_CACHE_WRITE = 1u << 1,
};

/*
 * Pin the window holding byte `off` of block `key` (block_size bytes) and
 * point ref at it. Without DMCE_CACHE_CONTIG, ref->len may be shorter than
 * len (the window ends first): call again for the rest. With it, ref->len
 * == len. -ERANGE when [off, off+len) is not inside the block, -EINVAL for
 * len 0, or the backend's error. Release with dmce_cache_release.
 */
int dmce_cache_acquire(dmce_cache_t *c, dmce_cache_key_t key, uint64_t block_size, uint64_t off,
                       uint64_t len, unsigned flags, dmce_cache_ref_t *ref);

/*
 * Unpin. If the caller wrote [ref->ptr + wr_off, + wr_len) (wr_len 0:
 * nothing written) and the window is a copy, the bytes are stored now
 * (write-through; the store's error is returned) or marked dirty
 * (write-back). Copies of the same bytes in other windows (a contiguous
 * window over standard ones) see the written bytes when this returns.
 * The pin is released in every case; -ERANGE (nothing recorded) when the
 * written range is not inside [ref->ptr, ref->ptr + ref->len), -ESTALE
 * when a copy was written after its block was invalidated (the bytes are
 * not stored anywhere), -EINVAL for a ref that holds no pin.
 */
int dmce_cache_release(dmce_cache_t *c, dmce_cache_ref_t *ref, uint64_t wr_off, uint64_t wr_len);

/*
 * The block and offset of a pointer inside any window (the Memory Cache
 * Mapping Table, read backwards), invalidated ones still pinned included.
 * 0, or -ENOENT when ptr is in none.
 */
int dmce_cache_addr_of(dmce_cache_t *c, const void *ptr, dmce_cache_key_t *key, uint64_t *off);

/* Store the dirty copies of one block (key != NULL) or of all. 0 or first error. */
int dmce_cache_flush(dmce_cache_t *c, const dmce_cache_key_t *key);

/*
 * Forget the block's windows (it moved, or its daemon died): unpinned
 * windows are released now, pinned ones when their last pin goes, and no
 * new acquire finds them. Dirty copies are dropped, not stored.
 */
void dmce_cache_invalidate(dmce_cache_t *c, dmce_cache_key_t key);

void dmce_cache_stats(dmce_cache_t *c, dmce_cache_stats_t *out);

#endif /* DMCE_RUNTIME_CACHE_H */
