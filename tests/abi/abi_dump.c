/*
 * dmce-abi-dump - everything a 32-bit and a 64-bit process must agree on,
 * printed as text: the MSMP frames each side encodes (fixed inputs, hex),
 * the shared-memory layouts (sizes, offsets, layout words) of blocks and
 * rings, the bytes of a block after a fixed sequence of allocations, and
 * the address codec. ctest (-R abi) runs the 64-bit and the -m32 build of
 * this program and requires the two outputs to be identical.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/addr.h>
#include <dmce/error.h>

#include "alloc.h"
#include "msmp.h"
#include "ring.h"

static void hex(const char *what, const uint8_t *p, size_t n)
{
    printf("%s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        printf("%s%02x", i % 32 ? "" : "\n  ", p[i]);
    printf("\n");
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#define FIELD(T, f) printf("  %s.%s @%zu size %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))

int main(void)
{
    uint8_t b[512];

    printf("== MSMP frames\n");
    dmce_msmp_hdr_t h = {DMCE_MSMP_MAGIC, DMCE_MSMP_VERSION, DMCE_MSMP_FLAG_RESPONSE,
                         DMCE_MSMP_OP_MAP, 0x0102030405060708ull, 48, DMCE_EBADADDR};
    dmce_msmp_hdr_encode(&h, b);
    hex("header", b, DMCE_MSMP_HDR_SIZE);
    dmce_msmp_setup_req_t sq = {.amount = 6ull << 30, .flags = 1, .layout = 0};
    for (int i = 0; i < DMCE_MSMP_TOKEN_LEN; i++)
        sq.token[i] = (uint8_t)(0xa0 + i);
    dmce_msmp_setup_req_encode(&sq, b);
    hex("setup request", b, DMCE_MSMP_SETUP_REQ_SIZE);
    dmce_msmp_setup_resp_t sr = {3ull << 30, 12345, 7, 2, 1, 1u << 20, 17, 32};
    dmce_msmp_setup_resp_encode(&sr, b);
    hex("setup response", b, DMCE_MSMP_SETUP_RESP_SIZE);
    dmce_msmp_rw_req_t rw = {0x0000100200003000ull, 4096, 0};
    dmce_msmp_rw_req_encode(&rw, b);
    hex("read/write request", b, DMCE_MSMP_RW_REQ_SIZE);
    dmce_msmp_u64_encode(0xfedcba9876543210ull, b);
    hex("u64", b, DMCE_MSMP_U64_SIZE);
    dmce_msmp_map_req_t mq = {0x0000100200003000ull, 1ull << 32, DMCE_MSMP_MAP_WANT_FD, 0};
    dmce_msmp_map_req_encode(&mq, b);
    hex("map request", b, DMCE_MSMP_MAP_REQ_SIZE);
    dmce_msmp_map_resp_t mr = {17, DMCE_MSMP_MAP_FD, 3ull << 30, 4096 * 3, 4096, 0, 1ull << 31, 5ull << 28};
    dmce_msmp_map_resp_encode(&mr, b);
    hex("map response", b, DMCE_MSMP_MAP_RESP_SIZE);
    dmce_msmp_range_t rg[2] = {{0x0000100200003000ull, 4096}, {0x0000100200005000ull, 1ull << 33}};
    for (unsigned i = 0; i < 2; i++)
        dmce_msmp_range_encode(&rg[i], b + i * DMCE_MSMP_RANGE_SIZE);
    hex("persist request, 2 ranges", b, 2 * DMCE_MSMP_RANGE_SIZE);
    uint64_t st[DMCE_STAT_COUNT_];
    for (unsigned i = 0; i < DMCE_STAT_COUNT_; i++)
        st[i] = 0x1111111111111111ull * (i % 15 + 1);
    dmce_msmp_stats_encode(st, b);
    hex("stats", b, DMCE_MSMP_STATS_SIZE);

    printf("== block layout\n");
    printf("  sizeof(dmce_block_hdr_t) %zu layout word %08x\n", sizeof(dmce_block_hdr_t),
           (unsigned)DMCE_BLOCK_LAYOUT_WORD);
    FIELD(dmce_block_hdr_t, size);
    FIELD(dmce_block_hdr_t, granule);
    FIELD(dmce_block_hdr_t, data_offset);
    FIELD(dmce_block_hdr_t, ngranules);
    FIELD(dmce_block_hdr_t, used_bytes);
    FIELD(dmce_block_hdr_t, nallocs);
    FIELD(dmce_block_hdr_t, bins);
    printf("  sizeof(dmce_alloc_hdr_t) %zu\n", sizeof(dmce_alloc_hdr_t));
    FIELD(dmce_alloc_hdr_t, owner);
    FIELD(dmce_alloc_hdr_t, magic);

    /* A block after a fixed history: identical bytes in both ABIs. */
    const size_t bsz = 1u << 20;
    uint8_t *blk = aligned_alloc(4096, bsz);
    memset(blk, 0, bsz);
    if (dmce_block_format(blk, bsz, 128, 4096, 5, DMCE_BLOCK_ZEROED) != 0)
        return 1;
    uint64_t off[64];
    for (int i = 0; i < 64; i++)
        if (dmce_alloc(blk, 100u + (uint64_t)i * 97u, (uint32_t)i + 1, &off[i]) != 0)
            return 1;
    for (int i = 0; i < 64; i += 3)
        dmce_alloc_free(blk, off[i], NULL, NULL);
    for (int i = 0; i < 16; i++)
        if (dmce_alloc(blk, 5000u + (uint64_t)i * 31u, 99, &off[i]) != 0)
            return 1;
    printf("  block after the fixed history: fnv %016llx, first offsets %llu %llu %llu\n",
           (unsigned long long)fnv(blk, bsz), (unsigned long long)off[0],
           (unsigned long long)off[1], (unsigned long long)off[15]);
    free(blk);

    printf("== ring layout\n");
    printf("  sizeof(dmce_ring_seg_hdr_t) %zu sizeof(dmce_ring_ctl_t) %zu layout word %08x\n",
           sizeof(dmce_ring_seg_hdr_t), sizeof(dmce_ring_ctl_t), (unsigned)DMCE_RING_LAYOUT_WORD);
    printf("  segment size for 64 KiB rings %llu\n",
           (unsigned long long)dmce_ring_segment_size(64u << 10));

    printf("== addresses\n");
    for (int l = 0; l < 2; l++) {
        dmce_addr_t a;
        char txt[DMCE_ADDR_STRLEN];
        dmce_addr_encode((dmce_layout_t)l, 1, 17, 0x12345678ull, &a);
        dmce_addr_format((dmce_layout_t)l, a, txt, sizeof(txt));
        printf("  %s: %016llx %s\n", dmce_layout_name((dmce_layout_t)l), (unsigned long long)a,
               txt);
    }
    return 0;
}
