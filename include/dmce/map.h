/*
 * map.h - mapped access to local memory and the Memory Cache (seed 002
 * FIG. 2 and FIG. 7, [0055]-[0058], [0077]-[0080]).
 *
 * In-process mode. The blocks of the memory daemons on this host are POSIX
 * shared-memory objects. A client may map them: the daemon hands the
 * block's file descriptor over the Unix socket (SCM_RIGHTS) to a peer of
 * the cluster's own user (checked with SO_PEERCRED), and libdmce maps it.
 * Then:
 *   - dmce_map gives a pointer to the bytes of an allocation: loads and
 *     stores through it are plain memory accesses, no copy, no message;
 *   - dmce_read / dmce_write on local addresses copy through the mapping
 *     instead of a socket round trip, after checking the address against
 *     the block's own allocation map (blocks describe themselves), exactly
 *     as the daemon would;
 *   - another process mapping the same allocation sees the same bytes.
 *
 * The Memory Cache. A 64-bit client maps whole blocks (one window per
 * block). A client with little address space, a 32-bit one above all,
 * maps windows of window_size bytes, at most max_windows of them besides
 * those the user holds with dmce_map, and replaces the least recently used
 * on a miss (dmce_connect_opts_t: window_size, max_windows). Windows over
 * memory of another host (server ID not 0, once hosts are linked) hold
 * copies, written back per the cache policy: at once (write-through,
 * default) or at dmce_flush and eviction (write-back).
 *
 * Safety. The allocation map and header pages of a block are mapped
 * read-only, so a stray store cannot corrupt the allocator. Blocks never
 * shrink while mapped. A daemon that dies leaves the mapped memory in
 * place: pointers stay valid (no SIGBUS, no SIGSEGV); the next call on an
 * address of that daemon returns DMCE_ECLOSED (or, with mirroring, goes to
 * the mirror). A pointer stays valid until dmce_unmap, even if the
 * allocation is freed meanwhile (the bytes may then be reused by another
 * allocation: freeing mapped memory is the caller's bug, as with free()).
 *
 * A dmce_client_t with mappings must not be used in a child after fork().
 */
#ifndef DMCE_MAP_H
#define DMCE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include <dmce/addr.h>
#include <dmce/client.h>
#include <dmce/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Map [addr, addr+len) of a local allocation (len >= 1) and store a pointer
 * to its first byte in *out. The whole range is contiguous in memory. flags
 * must be 0 (reserved). Errors: -EINVAL (bad arguments), DMCE_ENOSETUP,
 * DMCE_ENOSERVER (not a local address), DMCE_ENOBLOCK, DMCE_EBADADDR (not
 * inside a live allocation, or freed), DMCE_ECROSSEND (the range runs past
 * the allocation's end), DMCE_ECLOSED (the daemon is gone), -ENOMEM (no
 * address space left: unmap something), -ENOTSUP (the client was connected
 * with DMCE_CONNECT_NO_MAP). May block on the daemon (the first time a block
 * is used) and on mmap. Thread-safe.
 */
DMCE_API int dmce_map(dmce_client_t *c, dmce_addr_t addr, size_t len, unsigned flags, void **out);

/*
 * Release a pointer returned by dmce_map (exactly that pointer). 0, or
 * DMCE_ENOTMAPPED if ptr is not one. The bytes stay in the allocation.
 */
DMCE_API int dmce_unmap(dmce_client_t *c, void *ptr);

/*
 * The DMCE address of a byte inside a mapping returned by dmce_map (the
 * DMCE Memory Mapping Table, read backwards). 0, or DMCE_ENOTMAPPED for a
 * pointer that is not inside one. Never dereferences ptr.
 */
DMCE_API int dmce_addr_of(dmce_client_t *c, const void *ptr, dmce_addr_t *out);

/*
 * Copy [addr, addr+len) of a mirrored block to its mirror and return once
 * the mirror has it: the way stores through a dmce_map pointer survive the
 * primary daemon's death (dmce_write does this by itself). The range must
 * lie inside one live allocation. On a block with no mirror it does
 * nothing and returns 0. Not retried after a failover: DMCE_ECLOSED (or
 * another connection error) means the daemon died and the stores since the
 * last persist of the range are lost; dmce_map the address again to reach
 * the promoted copy. Blocks for one round trip and the copy. Thread-safe.
 * Errors: -EINVAL, DMCE_ENOSETUP, DMCE_EBADADDR, DMCE_ECROSSEND,
 * DMCE_ENOBLOCK, DMCE_ECLOSED.
 */
DMCE_API int dmce_persist(dmce_client_t *c, dmce_addr_t addr, size_t len);

/* A byte range of DMCE memory (dmce_persistv). */
typedef struct dmce_range {
    dmce_addr_t addr;
    size_t len;
} dmce_range_t;

/*
 * dmce_persist of n ranges, in one round trip per run of consecutive ranges
 * in one block (at most 64 ranges a request): the way to persist the several
 * places one update changed. Each range as for dmce_persist (len > 0, inside
 * one live allocation). A request is all or nothing on the daemon: every
 * range of it is checked before any is copied. Runs are sent in order and
 * the first error stops the call: earlier runs have reached the mirror,
 * later ones were not sent. 0, or the errors of dmce_persist.
 */
DMCE_API int dmce_persistv(dmce_client_t *c, const dmce_range_t *ranges, size_t n);

/*
 * Write back every dirty cached copy of remote memory (write-back policy).
 * Local memory needs no flush: its windows are the memory itself. 0 or the
 * first error; copies that could not be stored stay dirty.
 */
DMCE_API int dmce_flush(dmce_client_t *c);

/* What the client's side of the Memory Cache did. */
typedef struct dmce_client_stats {
    uint64_t local_reads, local_writes;      /* dmce_read/dmce_write through windows */
    uint64_t local_bytes_read, local_bytes_written;
    uint64_t msmp_reads, msmp_writes;        /* through the daemon */
    uint64_t maps_active;                    /* dmce_map pointers held */
    uint64_t blocks_opened;                  /* block descriptors received */
    uint64_t window_hits, window_misses, window_evictions;
    uint64_t windows, bytes_mapped;          /* now */
    uint64_t window_size;                    /* 0: whole blocks */
    uint64_t max_windows;
    uint64_t failovers;                      /* operations sent again to a promoted mirror */
} dmce_client_stats_t;

/* Fill *out. 0 or -EINVAL. Thread-safe, never blocks on a daemon. */
DMCE_API int dmce_client_stats(dmce_client_t *c, dmce_client_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif /* DMCE_MAP_H */
