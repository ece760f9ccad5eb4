/*
 * fuzz_block.c - fuzz target for the in-block allocator (runtime/alloc.h)
 * on a DMCE block given as hostile bytes: a block is shared memory that
 * clients map, so its header, granule map and allocation headers may hold
 * anything.
 *
 * Input: SCRIPT (64 bytes: 8 operations of 8 bytes) then the block image.
 * The block is as large as its header's size field says (256 B .. 256 KiB;
 * else the image length): the image is copied into an exactly that large,
 * 16-aligned heap buffer, zero-filled past the image (a fresh shm object
 * is zero), so ASan sees any access outside the block.
 *
 * Steps and checks:
 *   - dmce_block_attach: 0 or one of its documented errors; the header
 *     check of dmce_alloc_check_via (through a reader over the same bytes)
 *     gives the same error;
 *   - only if attach accepts it: dmce_block_verify, dmce_block_usage,
 *     dmce_alloc_foreach (offsets increasing, each one found again by
 *     dmce_alloc_lookup), and the script's dmce_alloc_check /
 *     dmce_alloc_lookup at offsets derived from the input (raw, inside the
 *     data area, near live allocations, huge), each compared with
 *     dmce_alloc_check_via: same result, same allocation, and the reader
 *     is never asked for a byte outside the block; a reader that fails
 *     has its error returned;
 *   - only if verify passes: the script's dmce_alloc, dmce_alloc_free and
 *     dmce_alloc_free_owner, each followed by dmce_block_verify (must still
 *     pass) and checks of what it returned (alignment, lookup, zeroed
 *     bytes below the high-water mark, owner and size given back by free).
 * ASan and UBSan must never fire.
 *
 * DMCE_FUZZ_BLOCK_HOSTILE=1 in the environment also runs allocations and
 * frees on attached blocks that fail verify (alloc.c promises that a
 * scribbled map gives errors, never an access outside the block).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/error.h>

#include "alloc.h"
#include "fuzz_common.h"

#define SCRIPT_LEN 64u
#define OP_LEN 8u
#define BLOCK_MAX (256u << 10)
#define KNOWN_MAX 64u

/* How deep the inputs got: attached, verified (plain runs print it). */
static unsigned long n_inputs, n_attached, n_verified;

typedef struct rd_ctx {
    const uint8_t *base;
    uint64_t size;
    unsigned reads;
    unsigned fail_at; /* 1-based read that fails with -EIO; 0 = none */
    int outside;      /* a read outside the block was asked for */
} rd_ctx_t;

static int rd_read(void *arg, uint64_t off, void *dst, uint32_t len)
{
    rd_ctx_t *c = arg;
    if (off > c->size || len > c->size - off) {
        c->outside = 1;
        return -EFAULT;
    }
    if (++c->reads == c->fail_at)
        return -EIO;
    memcpy(dst, c->base + off, len);
    return 0;
}

static int is_attach_err(int r)
{
    return r == -EINVAL || r == DMCE_EBADMAGIC || r == DMCE_EVERSION || r == DMCE_ELAYOUT ||
           r == DMCE_ECORRUPT;
}

static int is_check_err(int r)
{
    return r == DMCE_EBADADDR || r == DMCE_ECROSSEND || r == DMCE_ECORRUPT;
}

typedef struct state {
    uint8_t *b;
    uint64_t size;
    int verified;  /* dmce_block_verify passed (and must keep passing) */
    int scribbled; /* allocator calls ran on a block that failed verify */
    uint64_t known[KNOWN_MAX];
    unsigned nknown;
} state_t;

static void remember(state_t *s, uint64_t off)
{
    if (s->nknown < KNOWN_MAX)
        s->known[s->nknown++] = off;
    else
        s->known[off % KNOWN_MAX] = off;
}

/* check, check_via and lookup agree on [off, off+len). */
static void check_agree(state_t *s, uint64_t off, uint64_t len, unsigned fail_at)
{
    int r1 = dmce_alloc_check(s->b, off, len);
    FZ_CHECK(r1 == 0 || is_check_err(r1));
    rd_ctx_t c = {s->b, s->size, 0, fail_at, 0};
    dmce_block_reader_t rd = {rd_read, &c};
    dmce_alloc_info_t via;
    memset(&via, 0, sizeof via);
    int r2 = dmce_alloc_check_via(&rd, s->size, off, len, &via);
    FZ_CHECK(!c.outside);
    if (fail_at && c.reads >= fail_at) {
        FZ_CHECK_EQ(r2, -EIO); /* a reader error is returned as is */
        return;
    }
    if (s->scribbled) /* check_via re-validates header counters our calls may have broken */
        return;
    FZ_CHECK_EQ(r2, r1);
    dmce_alloc_info_t li;
    int r3 = dmce_alloc_lookup(s->b, off, &li);
    FZ_CHECK(r3 == 0 || is_check_err(r3));
    if (r1 == 0) {
        FZ_CHECK_EQ(r3, 0);
        FZ_CHECK(via.offset == li.offset && via.size == li.size && via.owner == li.owner);
        FZ_CHECK(off >= li.offset && off - li.offset < li.size);
        FZ_CHECK(len <= li.size - (off - li.offset));
        FZ_CHECK(li.offset % 16 == 0 && li.offset + li.size <= s->size);
    }
    if (r3 == 0) {
        FZ_CHECK(r1 == 0 || r1 == DMCE_ECROSSEND);
        FZ_CHECK(li.offset <= off && off - li.offset < li.size);
        FZ_CHECK_EQ(dmce_alloc_check(s->b, li.offset, li.size), 0);
    }
}

typedef struct walk {
    state_t *s;
    uint64_t last;
    uint64_t count, bytes;
} walk_t;

static int visit(const dmce_alloc_info_t *info, void *arg)
{
    walk_t *w = arg;
    FZ_CHECK(info->offset > w->last || (w->count == 0 && info->offset > 0));
    FZ_CHECK(info->size > 0 && info->offset + info->size <= w->s->size);
    dmce_alloc_info_t li;
    FZ_CHECK_EQ(dmce_alloc_lookup(w->s->b, info->offset, &li), 0);
    FZ_CHECK(li.offset == info->offset && li.size == info->size && li.owner == info->owner);
    w->last = info->offset;
    w->count++;
    w->bytes += info->size;
    remember(w->s, info->offset);
    return 0;
}

static void survey(state_t *s)
{
    walk_t w = {s, 0, 0, 0};
    int r = dmce_alloc_foreach(s->b, visit, &w);
    FZ_CHECK(r == 0 || r == DMCE_ECORRUPT);
    dmce_block_usage_t u;
    dmce_block_usage(s->b, &u);
    FZ_CHECK_EQ(u.size, s->size);
    if (!s->scribbled) /* header counters: attach bounds them */
        FZ_CHECK(u.free_bytes <= u.data_bytes);
    if (s->verified) {
        /* largest_free walks the free lists: bounded only in a consistent block */
        FZ_CHECK(u.largest_free <= u.data_bytes);
        FZ_CHECK_EQ(r, 0);
        FZ_CHECK_EQ(w.count, u.nallocs);
        FZ_CHECK_EQ(w.bytes, u.used_bytes);
        FZ_CHECK(u.largest_free <= u.free_bytes);
    }
}

static void reverify(state_t *s)
{
    if (s->verified)
        FZ_CHECK_EQ(dmce_block_verify(s->b), 0);
}

static void op_alloc(state_t *s, uint64_t size, uint32_t owner)
{
    const dmce_block_hdr_t *h = (const dmce_block_hdr_t *)s->b;
    uint32_t hwm = h->hwm;
    uint64_t off = 0;
    int r = dmce_alloc(s->b, size, owner, &off);
    FZ_CHECK(r == 0 || r == DMCE_ENOMEM || r == DMCE_ECORRUPT || (size == 0 && r == -EINVAL));
    if (r == 0) {
        FZ_CHECK(off % 16 == 0 && off >= h->data_offset && off + size <= s->size);
        dmce_alloc_info_t li;
        FZ_CHECK_EQ(dmce_alloc_lookup(s->b, off, &li), 0);
        FZ_CHECK(li.offset == off && li.size == size && li.owner == owner);
        FZ_CHECK_EQ(dmce_alloc_check(s->b, off, size), 0);
        FZ_CHECK_EQ(dmce_alloc_check(s->b, off, size + 1), DMCE_ECROSSEND);
        /* User bytes below the old high-water mark held data before: zeroed. */
        uint64_t dirty_end = h->data_offset + (uint64_t)hwm * h->granule;
        for (uint64_t i = off; i < off + size && i < dirty_end; i++)
            FZ_CHECK_EQ(s->b[i], 0);
        /* Scribble on the user bytes: the allocator must not depend on them. */
        memset(s->b + off, 0xa5, (size_t)size);
        remember(s, off);
    } else if (s->verified && r == DMCE_ENOMEM) {
        /* Refused only when no free run is large enough. */
        dmce_block_usage_t u;
        dmce_block_usage(s->b, &u);
        FZ_CHECK(dmce_alloc_footprint(s->b, size) > u.largest_free);
    }
    if (s->verified)
        FZ_CHECK(r != DMCE_ECORRUPT);
    reverify(s);
}

static void op_free(state_t *s, uint64_t off)
{
    dmce_alloc_info_t li;
    int lr = dmce_alloc_lookup(s->b, off, &li);
    uint32_t owner = 0;
    uint64_t size = 0;
    int r = dmce_alloc_free(s->b, off, &owner, &size);
    FZ_CHECK(r == 0 || r == DMCE_EBADADDR || r == DMCE_ECORRUPT || r == DMCE_ECROSSEND);
    if (r == 0) {
        FZ_CHECK(lr == 0 && li.offset == off && li.owner == owner && li.size == size);
        FZ_CHECK(dmce_alloc_check(s->b, off, 0) != 0);
    } else if (s->verified) {
        FZ_CHECK(r != DMCE_ECORRUPT);
        FZ_CHECK(lr != 0 || li.offset != off); /* a live allocation's start always frees */
    }
    reverify(s);
}

static int owned_by(const dmce_alloc_info_t *info, void *arg)
{
    return info->owner == *(const uint32_t *)arg;
}

static void op_free_owner(state_t *s, uint32_t owner)
{
    uint64_t bytes = 0;
    int r = dmce_alloc_free_owner(s->b, owner, &bytes);
    FZ_CHECK(r >= 0 || r == DMCE_ECORRUPT);
    if (s->verified) {
        FZ_CHECK(r >= 0);
        FZ_CHECK_EQ(dmce_alloc_foreach(s->b, owned_by, &owner), 0); /* none left */
    }
    reverify(s);
}

/* An offset derived from the input: raw, in the data area, near a known allocation, huge. */
static uint64_t pick_off(state_t *s, uint8_t sel, uint16_t a, uint32_t b)
{
    const dmce_block_hdr_t *h = (const dmce_block_hdr_t *)s->b;
    uint64_t data = (uint64_t)h->ngranules * h->granule;
    switch (sel & 3) {
    case 0: return b;
    case 1: return h->data_offset + (data ? b % data : 0);
    case 2:
        if (s->nknown)
            return s->known[b % s->nknown] + (uint64_t)(int64_t)(int8_t)a;
        return b;
    default: return (uint64_t)b << 32 | a;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < SCRIPT_LEN)
        return 0;
    const uint8_t *script = data, *img = data + SCRIPT_LEN;
    size_t ilen = size - SCRIPT_LEN;
    uint64_t bsize = ilen;
    if (ilen >= 24) {
        uint64_t hs = fz_le64(img + 16);
        if (hs >= sizeof(dmce_block_hdr_t) && hs <= BLOCK_MAX)
            bsize = hs;
    }
    if (bsize > BLOCK_MAX)
        bsize = BLOCK_MAX;
    state_t s;
    memset(&s, 0, sizeof s);
    s.size = bsize;
    s.b = fz_image(img, ilen, (size_t)bsize, 16);

    n_inputs++;
    int r = dmce_block_attach(s.b, bsize);
    FZ_CHECK(r == 0 || is_attach_err(r));
    if (bsize >= sizeof(dmce_block_hdr_t)) {
        /* check_via validates the header the same way (as a copy). */
        rd_ctx_t c = {s.b, bsize, 0, 0, 0};
        dmce_block_reader_t rd = {rd_read, &c};
        int rv = dmce_alloc_check_via(&rd, bsize, 0, 0, NULL);
        FZ_CHECK(!c.outside);
        if (r != 0)
            FZ_CHECK_EQ(rv, r);
        else
            FZ_CHECK(rv == DMCE_EBADADDR); /* offset 0 is the header */
    }
    if (r != 0)
        goto out;

    s.verified = dmce_block_verify(s.b) == 0;
    n_attached++;
    n_verified += (unsigned long)s.verified;
    int hostile = !s.verified && getenv("DMCE_FUZZ_BLOCK_HOSTILE") != NULL;
    FZ_CHECK(dmce_block_max_alloc(s.b) < bsize);
    survey(&s);
    s.scribbled = hostile; /* from here on, its counters are whatever our calls made them */

    fz_in_t in = {script, SCRIPT_LEN, 0};
    for (unsigned k = 0; k < SCRIPT_LEN / OP_LEN; k++) {
        uint8_t op = fz_u8(&in), sel = fz_u8(&in);
        uint16_t a = fz_u16(&in);
        uint32_t b = fz_u32(&in);
        switch (op % 8) {
        case 0:
        case 1: { /* check / lookup / check_via; len small, to the end, or huge */
            uint64_t off = pick_off(&s, sel, a, b);
            uint64_t len = (sel >> 2) % 4 == 3 ? UINT64_MAX - (sel >> 4) : (uint64_t)(a >> 4);
            check_agree(&s, off, len, (sel >> 4) % 4 == 1 ? 1u + (a & 3) : 0);
            break;
        }
        case 2:
        case 3: /* allocate */
            if (s.verified || hostile)
                op_alloc(&s, (sel & 0x80) ? b % (bsize + 64) : (uint64_t)a + (sel & 1 ? 0 : 1),
                         sel & 3);
            break;
        case 4:
        case 5: /* free */
            if (s.verified || hostile)
                op_free(&s, pick_off(&s, (uint8_t)(sel | 2), a, b));
            break;
        case 6:
            if (s.verified || hostile)
                op_free_owner(&s, sel & 3);
            break;
        default: {
            uint64_t sz = (uint64_t)b << (sel % 40);
            uint64_t fp = dmce_alloc_footprint(s.b, sz);
            FZ_CHECK(sz == 0 ? fp == 0 : fp >= sz);
            survey(&s);
            break;
        }
        }
    }
    survey(&s);
out:
    free(s.b);
    return 0;
}

#ifndef DMCE_LIBFUZZER
static void report(void)
{
    printf("fuzz_block: %lu inputs, %lu attached, %lu verified\n", n_inputs, n_attached,
           n_verified);
}
#define FZ_REPORT report
#define FZ_NAME "block"
#define FZ_MAX_LEN 2048
#include "fuzz_driver.h"
#endif
