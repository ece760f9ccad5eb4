/*
 * alloc.h - the in-block allocator (self-describing blocks).
 *
 * A DMCE block is one contiguous region (a POSIX shm object in the memory
 * daemon, plain memory in unit tests). All allocation state lives inside
 * the region itself, so copying the bytes of a block to a mirror, a backup
 * file or another daemon carries its allocations with it ("memory-address
 * neutral", seed 002 [0093]). Nothing here points outside the block:
 * every link is a granule index relative to the block start.
 *
 * Layout of a block of `size` bytes:
 *
 *   [ dmce_block_hdr_t | granule map (uint32_t per granule) | pad | data ]
 *
 * The data area is split into granules of `granule` bytes (power of two,
 * 64..4096). Each granule has one 32-bit map word:
 *   FREE interior                  0
 *   FREE_EDGE | run length         first and last granule of a free run
 *   HEAD | run length              first granule of an allocation
 *   BODY | distance to HEAD        other granules of an allocation
 * so the allocation that holds any offset is found in O(1), and a freed or
 * never-allocated offset is recognized at once.
 *
 * Each allocation starts with a 16-byte dmce_alloc_hdr_t (exact byte size,
 * owner tag, magic); the user's bytes follow it, 16-byte aligned. Free runs
 * are kept in segregated lists (bin = floor(log2(run length))); the links
 * (next, prev granule index) are stored in the first granule of the run.
 * Freeing coalesces with both neighbours through the map.
 *
 * Offsets used by this API ("cell" in dmce addresses) are byte offsets
 * from the block start, so a cell of 0 is never a user allocation.
 *
 * Thread safety: none. The caller serializes all calls that change a
 * block (the memory daemon holds the block's mutex). dmce_alloc_check and
 * dmce_alloc_lookup only read and may run concurrently with each other.
 */
#ifndef DMCE_RUNTIME_ALLOC_H
#define DMCE_RUNTIME_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define DMCE_BLOCK_MAGIC 0x4b4c4244434d4400ull /* "\0DMCDBLK" */
#define DMCE_BLOCK_VERSION 2u
#define DMCE_ALLOC_MAGIC 0x41434d44u /* "DMCA" */
#define DMCE_ALLOC_HDR_SIZE 16u
#define DMCE_ALLOC_BINS 32u
#define DMCE_GRANULE_MIN 64u
#define DMCE_GRANULE_MAX 4096u

/*
 * Block header, at offset 0 of the block. Frozen format: fields are
 * fixed-width; `layout` is derived from the struct sizes so that a build
 * with a different layout refuses to attach. 256 bytes.
 */
typedef struct dmce_block_hdr {
    uint64_t magic;        /* DMCE_BLOCK_MAGIC */
    uint32_t version;      /* DMCE_BLOCK_VERSION */
    uint32_t layout;       /* DMCE_BLOCK_LAYOUT_WORD */
    uint64_t size;         /* bytes in the whole block */
    uint32_t granule;      /* bytes per granule */
    uint32_t page_size;    /* page size the block was created with */
    uint32_t block_id;     /* block ID it was created as (informational) */
    uint32_t map_offset;   /* byte offset of the granule map */
    uint64_t data_offset;  /* byte offset of granule 0 */
    uint32_t ngranules;    /* granules in the data area */
    uint32_t free_granules;
    uint64_t used_bytes;   /* sum of exact user sizes of live allocations */
    uint64_t nallocs;      /* live allocations */
    uint32_t bins[DMCE_ALLOC_BINS]; /* head granule index + 1 of each free list, 0 = empty */
    /*
     * High-water mark: granules [hwm, ngranules) have never been allocated,
     * so their bytes are still the zeroes of a fresh object and need no
     * memset on allocation (which would be a first touch of every page).
     */
    uint32_t hwm;
    uint8_t reserved[256 - 72 - 4 * DMCE_ALLOC_BINS - 4];
} dmce_block_hdr_t;

_Static_assert(sizeof(dmce_block_hdr_t) == 256, "block header is 256 bytes");

#define DMCE_BLOCK_LAYOUT_WORD                                                                    \
    ((uint32_t)(sizeof(dmce_block_hdr_t) << 16 | DMCE_ALLOC_HDR_SIZE << 8 | DMCE_ALLOC_BINS))

/* Header in front of every allocation's user bytes. */
typedef struct dmce_alloc_hdr {
    uint64_t size;  /* exact user size in bytes */
    uint32_t owner; /* caller's tag (session id); 0 = none */
    uint32_t magic; /* DMCE_ALLOC_MAGIC ^ (uint32_t)size: detects scribbles */
} dmce_alloc_hdr_t;

_Static_assert(sizeof(dmce_alloc_hdr_t) == DMCE_ALLOC_HDR_SIZE, "alloc header is 16 bytes");

/* A live allocation, as dmce_alloc_lookup reports it. */
typedef struct dmce_alloc_info {
    uint64_t offset; /* byte offset of the first user byte */
    uint64_t size;   /* exact user size */
    uint32_t owner;
} dmce_alloc_info_t;

/*
 * Format `size` bytes at `base` as an empty block. `granule` must be a power
 * of two in [DMCE_GRANULE_MIN, DMCE_GRANULE_MAX]; the block must hold the
 * header, the map and at least one granule, and at most 2^30 granules.
 * With DMCE_BLOCK_ZEROED the caller vouches that the whole `size` bytes
 * are zero (a fresh shm object or file is): the format leaves the
 * allocation map as it is (zero is empty), and allocations of never-used
 * memory skip clearing it, which spares a first touch of every page.
 * Without it, the format clears the map and every allocation clears its
 * bytes. Returns 0, or -EINVAL for bad arguments.
 */
#define DMCE_BLOCK_ZEROED 0x1u
int dmce_block_format(void *base, uint64_t size, uint32_t granule, uint32_t page_size,
                      uint32_t block_id, unsigned flags);

/*
 * Check that `base` holds a block this build understands: distinct errors
 * for a wrong magic (DMCE_EBADMAGIC), version (DMCE_EVERSION), layout word
 * (DMCE_ELAYOUT) or inconsistent sizes (DMCE_ECORRUPT, also when `size`
 * differs from the header's). 0 when it can be used.
 */
int dmce_block_attach(const void *base, uint64_t size);

/*
 * Data bytes (granules x granule) a block of `size` bytes formatted with
 * `granule` has: what dmce_block_format would make. 0 when it cannot be
 * formatted.
 */
uint64_t dmce_block_data_bytes(uint64_t size, uint32_t granule);

/* Largest user size a single allocation can have in this block. */
uint64_t dmce_block_max_alloc(const void *base);

/* Bytes a `size`-byte allocation consumes, metadata and rounding included. */
uint64_t dmce_alloc_footprint(const void *base, uint64_t size);

/*
 * Allocate `size` bytes (size >= 1) tagged with `owner`. On success stores
 * the offset of the first user byte in *offset (16-byte aligned, never 0)
 * and returns 0. The user bytes are zeroed. -EINVAL for size 0,
 * DMCE_ENOMEM when no free run is large enough.
 */
int dmce_alloc(void *base, uint64_t size, uint32_t owner, uint64_t *offset);

/*
 * (Named dmce_alloc_free: dmce_free is the client API.)
 * Free the allocation whose first user byte is at `offset`. DMCE_EBADADDR
 * if offset is not the start of a live allocation (interior offsets,
 * freed or never-allocated memory). If owner_out is not NULL it receives
 * the owner tag and *size_out the user size. Coalesces free neighbours.
 */
int dmce_alloc_free(void *base, uint64_t offset, uint32_t *owner_out, uint64_t *size_out);

/*
 * Check that [offset, offset+len) lies inside one live allocation's user
 * bytes. len 0 is allowed (checks offset only). Returns 0, DMCE_EBADADDR
 * when offset is not inside a live allocation's user bytes (including the
 * allocation header and the block's metadata), DMCE_ECROSSEND when the
 * range runs past the allocation's end, DMCE_ECORRUPT when the map and
 * the allocation header disagree. Read-only.
 */
int dmce_alloc_check(const void *base, uint64_t offset, uint64_t len);

/* The live allocation holding `offset` (any byte of its user data). */
int dmce_alloc_lookup(const void *base, uint64_t offset, dmce_alloc_info_t *out);

/*
 * The same check as dmce_alloc_check, for a block that is not mapped
 * whole: rd->read copies `len` bytes at block offset `off` (header, one
 * granule map word, one allocation header are all it asks for). The
 * header is validated first (magic, version, layout, geometry against
 * `size`: distinct errors as dmce_block_attach). out (may be NULL) gets
 * the allocation holding offset. A reader error is returned as is.
 */
typedef struct dmce_block_reader {
    int (*read)(void *ctx, uint64_t off, void *dst, uint32_t len);
    void *ctx;
} dmce_block_reader_t;
int dmce_alloc_check_via(const dmce_block_reader_t *rd, uint64_t size, uint64_t offset,
                         uint64_t len, dmce_alloc_info_t *out);

/*
 * Visit every live allocation in address order. The callback may not
 * change the block; return nonzero to stop (that value is returned).
 */
typedef int (*dmce_alloc_visit_fn)(const dmce_alloc_info_t *info, void *arg);
int dmce_alloc_foreach(const void *base, dmce_alloc_visit_fn fn, void *arg);

/*
 * Free every allocation tagged `owner`. Returns the number freed (>= 0);
 * the user bytes released are added to *bytes_out when not NULL.
 */
int dmce_alloc_free_owner(void *base, uint32_t owner, uint64_t *bytes_out);

/* Usage counters, read from the header. */
typedef struct dmce_block_usage {
    uint64_t size;          /* whole block */
    uint64_t data_bytes;    /* granules * granule */
    uint64_t free_bytes;    /* free granules * granule */
    uint64_t used_bytes;    /* exact user bytes in live allocations */
    uint64_t nallocs;
    uint64_t largest_free;  /* largest free run in bytes (walks the bins) */
} dmce_block_usage_t;

void dmce_block_usage(const void *base, dmce_block_usage_t *out);

/*
 * Full consistency check (for tests and `verify`): walks the map, checks
 * every run, every free list link, every allocation header and the
 * counters. 0 or DMCE_ECORRUPT. O(granules).
 */
int dmce_block_verify(const void *base);

#endif /* DMCE_RUNTIME_ALLOC_H */
