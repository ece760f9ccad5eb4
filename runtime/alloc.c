/*
 * alloc.c - the in-block allocator; the block format is in alloc.h.
 *
 * Map words. The top two bits of a granule's 32-bit map word are its kind,
 * the low 30 bits its value:
 *   K_FREE  (whole word 0)  interior granule of a free run
 *   K_EDGE  | run length    first and last granule of a free run (a run of
 *                           one granule has a single edge word)
 *   K_HEAD  | run length    first granule of an allocation
 *   K_BODY  | distance      other granules of an allocation: distance back
 *                           to the HEAD granule (1..length-1)
 * Run lengths must fit in 30 bits, so a block has at most 2^30 - 1
 * granules (a single free run of all of them must be encodable).
 *
 * Free runs. Two free runs are never adjacent (free coalesces at once).
 * Every free run is on exactly one of the segregated lists, bin =
 * floor(log2(run length)); hdr->bins[bin] holds the list head's granule
 * index + 1 (0 = empty). The links (next, prev: granule index + 1, 0 =
 * none) live in the first 8 data bytes of the run's first granule.
 *
 * Allocation. need = ceil((size + 16) / granule). First fit in need's own
 * bin, else the first run of the next non-empty higher bin (every run
 * there is large enough). The allocation takes the front of the run; the
 * remainder goes back on its list. The 16-byte dmce_alloc_hdr_t is at the
 * start of the first granule, the user bytes follow and are zeroed.
 *
 * Free. The neighbours are found through the map in O(1): map[head - 1]
 * is the last granule of the previous run, map[head + n] the first of the
 * next one; an EDGE word there names a free run to merge with.
 *
 * Robustness. Every offset from a caller is validated against the fixed
 * geometry (granule, data_offset, ngranules are written once by format).
 * Every value read from the map or an allocation header is range-checked
 * before it is used as an index, so garbage or a scribbled map yields
 * DMCE_EBADADDR / DMCE_ECORRUPT and never an access outside the block.
 * dmce_alloc_check and dmce_alloc_lookup read each map word once
 * (volatile), because the memory daemon runs them without the block lock.
 */
#include "alloc.h"

#include <errno.h>
#include <string.h>

#include <dmce/error.h>

#define K_MASK 0xc0000000u
#define V_MASK 0x3fffffffu
#define K_FREE 0x00000000u
#define K_EDGE 0x40000000u
#define K_HEAD 0x80000000u
#define K_BODY 0xc0000000u
#define MAX_GRANULES V_MASK
#define HDR_SIZE ((uint64_t)sizeof(dmce_block_hdr_t))
#define DMCE_ALLOC_MIN(a, b) ((a) < (b) ? (a) : (b))

typedef struct free_links {
    uint32_t next; /* granule index + 1 of the next run in the bin, 0 = none */
    uint32_t prev;
} free_links_t;

/* ---- geometry ---------------------------------------------------------- */

static const dmce_block_hdr_t *hdr_ro(const void *base)
{
    return (const dmce_block_hdr_t *)base;
}

static dmce_block_hdr_t *hdr_rw(void *base)
{
    return (dmce_block_hdr_t *)base;
}

static const uint32_t *map_ro(const void *base)
{
    return (const uint32_t *)((const uint8_t *)base + hdr_ro(base)->map_offset);
}

static uint32_t *map_rw(void *base)
{
    return (uint32_t *)((uint8_t *)base + hdr_ro(base)->map_offset);
}

static const uint8_t *gran_ro(const void *base, uint32_t i)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    return (const uint8_t *)base + h->data_offset + (uint64_t)i * h->granule;
}

static uint8_t *gran_rw(void *base, uint32_t i)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    return (uint8_t *)base + h->data_offset + (uint64_t)i * h->granule;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) & ~(a - 1);
}

static uint64_t data_offset_for(uint64_t n, uint32_t g)
{
    return align_up(HDR_SIZE + 4 * n, g);
}

/* Most granules a `size`-byte block holds (may exceed MAX_GRANULES). */
static uint64_t fit_granules(uint64_t size, uint32_t g)
{
    if (size < HDR_SIZE)
        return 0;
    uint64_t n = (size - HDR_SIZE) / ((uint64_t)g + 4);
    if (n > (uint64_t)MAX_GRANULES + 2)
        return n; /* too many anyway; the padding costs at most one or two */
    while (n > 0 && data_offset_for(n, g) + n * g > size)
        n--;
    return n;
}

static int granule_ok(uint32_t g)
{
    return g >= DMCE_GRANULE_MIN && g <= DMCE_GRANULE_MAX && (g & (g - 1)) == 0;
}

/* Granules an allocation of `size` user bytes takes; 0 if it cannot fit. */
static uint32_t need_granules(const dmce_block_hdr_t *h, uint64_t size)
{
    uint64_t max = (uint64_t)h->ngranules * h->granule - DMCE_ALLOC_HDR_SIZE;
    if (size == 0 || size > max)
        return 0;
    return (uint32_t)((size + DMCE_ALLOC_HDR_SIZE + h->granule - 1) / h->granule);
}

static unsigned bin_of(uint32_t len)
{
    unsigned b = 0;
    while (len >>= 1)
        b++;
    return b;
}

static uint32_t kind(uint32_t w)
{
    return w & K_MASK;
}

static uint32_t val(uint32_t w)
{
    return w & V_MASK;
}

/* One read of a map word that another thread may be changing. */
static uint32_t map_load(const void *base, uint32_t i)
{
    const volatile uint32_t *m = map_ro(base);
    return m[i];
}

/* ---- allocation headers ------------------------------------------------ */

static void ahdr_read(const void *base, uint32_t head, dmce_alloc_hdr_t *out)
{
    const volatile uint8_t *p = gran_ro(base, head);
    uint8_t tmp[sizeof(*out)];
    for (size_t i = 0; i < sizeof(tmp); i++)
        tmp[i] = p[i];
    memcpy(out, tmp, sizeof(*out));
}

/* Does the header of a `len`-granule allocation agree with the map? */
static int ahdr_ok(const dmce_block_hdr_t *h, const dmce_alloc_hdr_t *a, uint32_t len)
{
    return a->magic == (DMCE_ALLOC_MAGIC ^ (uint32_t)a->size) && need_granules(h, a->size) == len;
}

static uint64_t user_offset(const dmce_block_hdr_t *h, uint32_t head)
{
    return h->data_offset + (uint64_t)head * h->granule + DMCE_ALLOC_HDR_SIZE;
}

/* ---- free runs and lists ----------------------------------------------- */

static free_links_t *links_rw(void *base, uint32_t i)
{
    return (free_links_t *)(void *)gran_rw(base, i);
}

static const free_links_t *links_ro(const void *base, uint32_t i)
{
    return (const free_links_t *)(const void *)gran_ro(base, i);
}

/* Is [start, start+len) a well-formed free run with in-range links? */
static int free_run_ok(const void *base, uint32_t start, uint32_t len)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    const uint32_t *map = map_ro(base);
    if (len == 0 || start >= h->ngranules || len > h->ngranules - start)
        return 0;
    if (map[start] != (K_EDGE | len) || map[start + len - 1] != (K_EDGE | len))
        return 0;
    const free_links_t *l = links_ro(base, start);
    return l->next <= h->ngranules && l->prev <= h->ngranules;
}

static void set_edges(void *base, uint32_t start, uint32_t len)
{
    uint32_t *map = map_rw(base);
    map[start] = K_EDGE | len;
    map[start + len - 1] = K_EDGE | len;
}

static void fl_insert(void *base, uint32_t start, uint32_t len)
{
    dmce_block_hdr_t *h = hdr_rw(base);
    unsigned b = bin_of(len);
    free_links_t *l = links_rw(base, start);
    l->prev = 0;
    l->next = h->bins[b];
    if (l->next)
        links_rw(base, l->next - 1)->prev = start + 1;
    h->bins[b] = start + 1;
}

/* The caller checked the run with free_run_ok. */
static void fl_remove(void *base, uint32_t start, uint32_t len)
{
    dmce_block_hdr_t *h = hdr_rw(base);
    const free_links_t *l = links_rw(base, start);
    if (l->prev)
        links_rw(base, l->prev - 1)->next = l->next;
    else
        h->bins[bin_of(len)] = l->next;
    if (l->next)
        links_rw(base, l->next - 1)->prev = l->prev;
}

/* ---- format and attach ------------------------------------------------- */

int dmce_block_format(void *base, uint64_t size, uint32_t granule, uint32_t page_size,
                      uint32_t block_id, unsigned flags)
{
    if (!base || ((uintptr_t)base & 15) || !granule_ok(granule) || (flags & ~DMCE_BLOCK_ZEROED))
        return -EINVAL;
    uint64_t n = fit_granules(size, granule);
    if (n == 0 || n > MAX_GRANULES)
        return -EINVAL;
    dmce_block_hdr_t *h = hdr_rw(base);
    memset(h, 0, sizeof(*h));
    h->magic = DMCE_BLOCK_MAGIC;
    h->version = DMCE_BLOCK_VERSION;
    h->layout = DMCE_BLOCK_LAYOUT_WORD;
    h->size = size;
    h->granule = granule;
    h->page_size = page_size;
    h->block_id = block_id;
    h->map_offset = (uint32_t)HDR_SIZE;
    h->data_offset = data_offset_for(n, granule);
    h->ngranules = (uint32_t)n;
    h->free_granules = (uint32_t)n;
    h->hwm = (flags & DMCE_BLOCK_ZEROED) ? 0 : (uint32_t)n; /* not known zero: all dirty */
    /* Zero already when vouched for: its pages (4 bytes a granule, 2 MiB of a 64 MiB
     * block) are then left untouched here, so no first touch of each. */
    if (!(flags & DMCE_BLOCK_ZEROED))
        memset(map_rw(base), 0, (size_t)n * sizeof(uint32_t));
    set_edges(base, 0, (uint32_t)n);
    fl_insert(base, 0, (uint32_t)n);
    return 0;
}

/* Geometry and counters of the header are self-consistent for `size`. */
static int geometry_ok(const dmce_block_hdr_t *h, uint64_t size)
{
    if (h->size != size || !granule_ok(h->granule) || h->map_offset != HDR_SIZE)
        return 0;
    uint64_t n = h->ngranules;
    if (n == 0 || n > MAX_GRANULES || n > fit_granules(size, h->granule))
        return 0;
    if (h->data_offset != data_offset_for(n, h->granule))
        return 0;
    if (h->free_granules > n || h->nallocs > n || h->used_bytes > n * h->granule || h->hwm > n)
        return 0;
    for (unsigned b = 0; b < DMCE_ALLOC_BINS; b++)
        if (h->bins[b] > n)
            return 0;
    return 1;
}

int dmce_block_attach(const void *base, uint64_t size)
{
    if (!base || size < HDR_SIZE || ((uintptr_t)base & 15))
        return -EINVAL;
    const dmce_block_hdr_t *h = hdr_ro(base);
    if (h->magic != DMCE_BLOCK_MAGIC)
        return DMCE_EBADMAGIC;
    if (h->version != DMCE_BLOCK_VERSION)
        return DMCE_EVERSION;
    if (h->layout != DMCE_BLOCK_LAYOUT_WORD)
        return DMCE_ELAYOUT;
    return geometry_ok(h, size) ? 0 : DMCE_ECORRUPT;
}

uint64_t dmce_block_data_bytes(uint64_t size, uint32_t granule)
{
    if (!granule_ok(granule))
        return 0;
    uint64_t n = fit_granules(size, granule);
    return n == 0 || n > MAX_GRANULES ? 0 : n * granule;
}

uint64_t dmce_block_max_alloc(const void *base)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    return (uint64_t)h->ngranules * h->granule - DMCE_ALLOC_HDR_SIZE;
}

uint64_t dmce_alloc_footprint(const void *base, uint64_t size)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    uint64_t g = h->granule;
    uint64_t need = size / g + (size % g + DMCE_ALLOC_HDR_SIZE + g - 1) / g;
    if (size == 0)
        return 0;
    if (need > UINT64_MAX / g)
        return UINT64_MAX;
    return need * g;
}

/* ---- allocate ---------------------------------------------------------- */

static void mark_alloc(void *base, uint32_t head, uint32_t len)
{
    uint32_t *map = map_rw(base);
    map[head] = K_HEAD | len;
    for (uint32_t i = 1; i < len; i++)
        map[head + i] = K_BODY | i;
}

/* First run in bin b of at least `need` granules: its start, or -1. */
static int64_t bin_first_fit(const void *base, unsigned b, uint32_t need)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    uint32_t cur = h->bins[b];
    for (uint32_t steps = 0; cur && steps < h->ngranules; steps++) {
        uint32_t i = cur - 1;
        if (i >= h->ngranules || kind(map_ro(base)[i]) != K_EDGE)
            return DMCE_ECORRUPT;
        uint32_t len = val(map_ro(base)[i]);
        if (!free_run_ok(base, i, len) || bin_of(len) != b)
            return DMCE_ECORRUPT;
        if (len >= need)
            return i;
        cur = links_ro(base, i)->next;
    }
    return cur ? DMCE_ECORRUPT : -1;
}

/* A free run for `need` granules: start index, -1 if none, or an error. */
static int64_t find_run(const void *base, uint32_t need)
{
    unsigned b = bin_of(need);
    int64_t r = bin_first_fit(base, b, need);
    for (b++; r == -1 && b < DMCE_ALLOC_BINS; b++)
        r = bin_first_fit(base, b, 1);
    return r;
}

/* Carve `need` granules from the front of the free run at `start`. */
static void take_run(void *base, uint32_t start, uint32_t need)
{
    dmce_block_hdr_t *h = hdr_rw(base);
    uint32_t len = val(map_ro(base)[start]);
    fl_remove(base, start, len);
    if (len > need) {
        set_edges(base, start + need, len - need);
        fl_insert(base, start + need, len - need);
    }
    mark_alloc(base, start, need);
    h->free_granules -= need;
}

int dmce_alloc(void *base, uint64_t size, uint32_t owner, uint64_t *offset)
{
    if (!base || !offset || size == 0)
        return -EINVAL;
    dmce_block_hdr_t *h = hdr_rw(base);
    uint32_t need = need_granules(h, size);
    if (need == 0)
        return DMCE_ENOMEM;
    int64_t r = find_run(base, need);
    if (r < -1)
        return (int)r;
    if (r == -1)
        return DMCE_ENOMEM;
    uint32_t head = (uint32_t)r;
    take_run(base, head, need);
    dmce_alloc_hdr_t a = {size, owner, DMCE_ALLOC_MAGIC ^ (uint32_t)size};
    uint8_t *p = gran_rw(base, head);
    memcpy(p, &a, sizeof(a));
    /*
     * Zero the user bytes that held data before: only those below the
     * high-water mark. Above it the bytes were never handed out (free-list
     * links live in a run's first granule, which the header just covered).
     */
    if (head < h->hwm) {
        uint64_t dirty = ((uint64_t)(h->hwm - head)) * h->granule - sizeof(a);
        memset(p + sizeof(a), 0, (size_t)DMCE_ALLOC_MIN(size, dirty));
    }
    if (head + need > h->hwm)
        h->hwm = head + need;
    h->used_bytes += size;
    h->nallocs++;
    *offset = user_offset(h, head);
    return 0;
}

/* ---- locate ------------------------------------------------------------ */

/* A live allocation as found through the map. */
typedef struct found {
    uint32_t head;
    uint32_t len;
    dmce_alloc_hdr_t ah;
} found_t;

/*
 * Where the read-only lookups get the block's bytes: the block mapped
 * whole (base), or a reader that copies pieces of it (a client that maps
 * only windows of the block). One implementation of "which allocation
 * holds this offset" serves both.
 */
typedef struct bsrc {
    const void *base;               /* the whole block, or NULL */
    const dmce_block_reader_t *rd;  /* when base is NULL */
    const dmce_block_hdr_t *h;      /* the header, in the block or in hcopy */
    int err;                        /* first reader failure */
    dmce_block_hdr_t hcopy;
} bsrc_t;

static uint32_t src_map_load(bsrc_t *s, uint32_t i)
{
    if (s->base)
        return map_load(s->base, i);
    uint32_t w = 0;
    int r = s->rd->read(s->rd->ctx, s->h->map_offset + 4ull * i, &w, sizeof(w));
    if (r < 0 && !s->err)
        s->err = r;
    return r < 0 ? K_FREE : w;
}

static void src_ahdr_read(bsrc_t *s, uint32_t head, dmce_alloc_hdr_t *out)
{
    if (s->base)
        return ahdr_read(s->base, head, out);
    uint64_t off = s->h->data_offset + (uint64_t)head * s->h->granule;
    int r = s->rd->read(s->rd->ctx, off, out, sizeof(*out));
    if (r < 0) {
        if (!s->err)
            s->err = r;
        memset(out, 0, sizeof(*out));
    }
}

/* Head granule of the allocation holding granule idx (map word w). */
static int find_head(bsrc_t *s, uint32_t idx, uint32_t w, found_t *f)
{
    const dmce_block_hdr_t *h = s->h;
    uint32_t hw = w;
    f->head = idx;
    if (kind(w) == K_FREE || kind(w) == K_EDGE)
        return DMCE_EBADADDR;
    if (kind(w) == K_BODY) {
        uint32_t d = val(w);
        if (d == 0 || d > idx)
            return DMCE_ECORRUPT;
        f->head = idx - d;
        hw = src_map_load(s, f->head);
        if (kind(hw) != K_HEAD || val(hw) <= d)
            return DMCE_ECORRUPT;
    }
    f->len = val(hw);
    if (f->len == 0 || f->len > h->ngranules - f->head)
        return DMCE_ECORRUPT;
    src_ahdr_read(s, f->head, &f->ah);
    return ahdr_ok(h, &f->ah, f->len) ? 0 : DMCE_ECORRUPT;
}

/* The live allocation whose granules contain byte `offset` of the block. */
static int locate_src(bsrc_t *s, uint64_t offset, found_t *f)
{
    const dmce_block_hdr_t *h = s->h;
    if (offset < h->data_offset)
        return DMCE_EBADADDR;
    uint64_t idx = (offset - h->data_offset) / h->granule;
    if (idx >= h->ngranules)
        return DMCE_EBADADDR;
    int r = find_head(s, (uint32_t)idx, src_map_load(s, (uint32_t)idx), f);
    return s->err ? s->err : r;
}

static int locate(const void *base, uint64_t offset, found_t *f)
{
    bsrc_t s = {.base = base, .h = hdr_ro(base)};
    return locate_src(&s, offset, f);
}

/* Like locate, and `offset` must be inside the user bytes. */
static int locate_user(bsrc_t *s, uint64_t offset, found_t *f, uint64_t *avail)
{
    int r = locate_src(s, offset, f);
    if (r < 0)
        return r;
    uint64_t start = user_offset(s->h, f->head);
    if (offset < start || offset - start >= f->ah.size)
        return DMCE_EBADADDR;
    *avail = f->ah.size - (offset - start);
    return 0;
}

/* Check [offset, offset+len) and describe the allocation holding it. */
static int check_src(bsrc_t *s, uint64_t offset, uint64_t len, dmce_alloc_info_t *out)
{
    found_t f;
    uint64_t avail;
    int r = locate_user(s, offset, &f, &avail);
    if (r < 0)
        return r;
    if (len > avail)
        return DMCE_ECROSSEND;
    if (out) {
        out->offset = user_offset(s->h, f.head);
        out->size = f.ah.size;
        out->owner = f.ah.owner;
    }
    return 0;
}

int dmce_alloc_check_via(const dmce_block_reader_t *rd, uint64_t size, uint64_t offset,
                         uint64_t len, dmce_alloc_info_t *out)
{
    if (!rd || !rd->read)
        return -EINVAL;
    bsrc_t s = {.rd = rd};
    int r = rd->read(rd->ctx, 0, &s.hcopy, sizeof(s.hcopy));
    if (r < 0)
        return r;
    const dmce_block_hdr_t *h = &s.hcopy;
    if (h->magic != DMCE_BLOCK_MAGIC)
        return DMCE_EBADMAGIC;
    if (h->version != DMCE_BLOCK_VERSION)
        return DMCE_EVERSION;
    if (h->layout != DMCE_BLOCK_LAYOUT_WORD)
        return DMCE_ELAYOUT;
    if (!geometry_ok(h, size))
        return DMCE_ECORRUPT;
    s.h = h;
    return check_src(&s, offset, len, out);
}

int dmce_alloc_check(const void *base, uint64_t offset, uint64_t len)
{
    bsrc_t s = {.base = base, .h = hdr_ro(base)};
    return check_src(&s, offset, len, NULL);
}

int dmce_alloc_lookup(const void *base, uint64_t offset, dmce_alloc_info_t *out)
{
    bsrc_t s = {.base = base, .h = hdr_ro(base)};
    return check_src(&s, offset, 0, out);
}

/* ---- free -------------------------------------------------------------- */

/* Length of the free run ending at granule i (0 if none); -1 if corrupt. */
static int64_t free_run_before(const void *base, uint32_t i)
{
    if (i == 0)
        return 0;
    uint32_t w = map_ro(base)[i - 1];
    if (kind(w) != K_EDGE)
        return 0;
    uint32_t len = val(w);
    if (len == 0 || len > i || !free_run_ok(base, i - len, len))
        return -1;
    return len;
}

/* Length of the free run starting at granule i (0 if none); -1 if corrupt. */
static int64_t free_run_at(const void *base, uint32_t i)
{
    if (i >= hdr_ro(base)->ngranules)
        return 0;
    uint32_t w = map_ro(base)[i];
    if (kind(w) != K_EDGE)
        return 0;
    return free_run_ok(base, i, val(w)) ? (int64_t)val(w) : -1;
}

/*
 * Release the allocation [head, head+len) (header already checked),
 * coalescing with free neighbours. *end gets the end of the merged run.
 */
static int release(void *base, uint32_t head, uint32_t len, uint64_t size, uint32_t *end)
{
    dmce_block_hdr_t *h = hdr_rw(base);
    uint32_t *map = map_rw(base);
    int64_t plen = free_run_before(base, head);
    int64_t nlen = free_run_at(base, head + len);
    if (plen < 0 || nlen < 0)
        return DMCE_ECORRUPT;
    uint32_t start = head - (uint32_t)plen;
    uint32_t stop = head + len + (uint32_t)nlen;
    if (plen)
        fl_remove(base, start, (uint32_t)plen);
    if (nlen)
        fl_remove(base, head + len, (uint32_t)nlen);
    for (uint32_t i = (plen ? head - 1 : head); i < (nlen ? head + len + 1 : head + len); i++)
        map[i] = 0;
    set_edges(base, start, stop - start);
    fl_insert(base, start, stop - start);
    h->free_granules += len;
    h->used_bytes -= size;
    h->nallocs--;
    *end = stop;
    return 0;
}

int dmce_alloc_free(void *base, uint64_t offset, uint32_t *owner_out, uint64_t *size_out)
{
    if (!base)
        return -EINVAL;
    const dmce_block_hdr_t *h = hdr_ro(base);
    found_t f;
    int r = locate(base, offset, &f);
    if (r < 0)
        return r;
    if (offset != user_offset(h, f.head))
        return DMCE_EBADADDR;
    uint32_t end;
    r = release(base, f.head, f.len, f.ah.size, &end);
    if (r < 0)
        return r;
    if (owner_out)
        *owner_out = f.ah.owner;
    if (size_out)
        *size_out = f.ah.size;
    return 0;
}

/* ---- walks ------------------------------------------------------------- */

/* Length of the run starting at granule i; 0 if its word is malformed. */
static uint32_t run_len(const void *base, uint32_t i)
{
    uint32_t w = map_ro(base)[i];
    uint32_t len = val(w);
    uint32_t k = kind(w);
    if ((k != K_EDGE && k != K_HEAD) || len == 0 || len > hdr_ro(base)->ngranules - i)
        return 0;
    return len;
}

int dmce_alloc_foreach(const void *base, dmce_alloc_visit_fn fn, void *arg)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    for (uint32_t i = 0; i < h->ngranules;) {
        uint32_t len = run_len(base, i);
        if (len == 0)
            return DMCE_ECORRUPT;
        if (kind(map_ro(base)[i]) == K_HEAD) {
            dmce_alloc_hdr_t a;
            ahdr_read(base, i, &a);
            if (!ahdr_ok(h, &a, len))
                return DMCE_ECORRUPT;
            dmce_alloc_info_t info = {user_offset(h, i), a.size, a.owner};
            int r = fn(&info, arg);
            if (r)
                return r;
        }
        i += len;
    }
    return 0;
}

/*
 * Frees every allocation of `owner`. A malformed map word stops the walk
 * and an allocation with a bad header is skipped (its owner is unknown);
 * either way the result is DMCE_ECORRUPT after freeing what could be.
 */
int dmce_alloc_free_owner(void *base, uint32_t owner, uint64_t *bytes_out)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    int n = 0, bad = 0;
    for (uint32_t i = 0; i < h->ngranules;) {
        uint32_t len = run_len(base, i);
        if (len == 0)
            return DMCE_ECORRUPT;
        uint32_t next = i + len;
        if (kind(map_ro(base)[i]) == K_HEAD) {
            dmce_alloc_hdr_t a;
            ahdr_read(base, i, &a);
            if (!ahdr_ok(h, &a, len)) {
                bad = 1;
            } else if (a.owner == owner) {
                if (release(base, i, len, a.size, &next) < 0)
                    return DMCE_ECORRUPT;
                n++;
                if (bytes_out)
                    *bytes_out += a.size;
            }
        }
        i = next;
    }
    return bad ? DMCE_ECORRUPT : n;
}

/* Largest run on bin b's list, in granules (bounded walk). */
static uint32_t bin_largest(const void *base, unsigned b)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    uint32_t best = 0, cur = h->bins[b];
    for (uint32_t steps = 0; cur && cur <= h->ngranules && steps < h->ngranules; steps++) {
        uint32_t w = map_ro(base)[cur - 1];
        if (kind(w) == K_EDGE && val(w) > best)
            best = val(w);
        cur = links_ro(base, cur - 1)->next;
    }
    return best;
}

void dmce_block_usage(const void *base, dmce_block_usage_t *out)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    memset(out, 0, sizeof(*out));
    out->size = h->size;
    out->data_bytes = (uint64_t)h->ngranules * h->granule;
    out->free_bytes = (uint64_t)h->free_granules * h->granule;
    out->used_bytes = h->used_bytes;
    out->nallocs = h->nallocs;
    for (unsigned b = DMCE_ALLOC_BINS; b-- > 0 && out->largest_free == 0;)
        out->largest_free = (uint64_t)bin_largest(base, b) * h->granule;
}

/* ---- verify ------------------------------------------------------------ */

typedef struct tally {
    uint64_t free_granules;
    uint64_t free_runs;
    uint64_t used_bytes;
    uint64_t nallocs;
} tally_t;

/* A free run at i: both edges, zero interior, not next to another free run. */
static int verify_free_run(const void *base, uint32_t i, uint32_t len, tally_t *t)
{
    const uint32_t *map = map_ro(base);
    if (map[i + len - 1] != (K_EDGE | len))
        return 0;
    for (uint32_t j = 1; j + 1 < len; j++)
        if (map[i + j] != 0)
            return 0;
    if (i > 0 && kind(map[i - 1]) == K_EDGE)
        return 0; /* two adjacent free runs: missed coalescing */
    t->free_granules += len;
    t->free_runs++;
    return 1;
}

static int verify_alloc_run(const void *base, uint32_t i, uint32_t len, tally_t *t)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    const uint32_t *map = map_ro(base);
    if ((uint64_t)i + len > h->hwm)
        return 0; /* allocated memory is always below the high-water mark */
    for (uint32_t j = 1; j < len; j++)
        if (map[i + j] != (K_BODY | j))
            return 0;
    dmce_alloc_hdr_t a;
    ahdr_read(base, i, &a);
    if (!ahdr_ok(h, &a, len))
        return 0;
    t->used_bytes += a.size;
    t->nallocs++;
    return 1;
}

static int verify_map(const void *base, tally_t *t)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    for (uint32_t i = 0; i < h->ngranules;) {
        uint32_t len = run_len(base, i);
        if (len == 0)
            return 0;
        int ok = kind(map_ro(base)[i]) == K_EDGE ? verify_free_run(base, i, len, t)
                                                 : verify_alloc_run(base, i, len, t);
        if (!ok)
            return 0;
        i += len;
    }
    return 1;
}

/* Is i the first granule of a free run (and in bin b)? Needs verify_map. */
static int is_run_start(const void *base, uint32_t i, unsigned b)
{
    const uint32_t *map = map_ro(base);
    if (kind(map[i]) != K_EDGE || bin_of(val(map[i])) != b)
        return 0;
    /* a run's predecessor is allocated (runs never touch); a tail's is free */
    return i == 0 || kind(map[i - 1]) == K_HEAD || kind(map[i - 1]) == K_BODY;
}

/* Walk bin b's list: every node a run start of the bin, prev links right. */
static int verify_bin(const void *base, unsigned b, uint64_t *nodes)
{
    const dmce_block_hdr_t *h = hdr_ro(base);
    uint32_t prev = 0, cur = h->bins[b];
    while (cur) {
        if (cur > h->ngranules || *nodes >= h->ngranules)
            return 0;
        const free_links_t *l = links_ro(base, cur - 1);
        if (!is_run_start(base, cur - 1, b) || l->prev != prev)
            return 0;
        (*nodes)++;
        prev = cur;
        cur = l->next;
    }
    return 1;
}

int dmce_block_verify(const void *base)
{
    if (!base)
        return -EINVAL;
    const dmce_block_hdr_t *h = hdr_ro(base);
    int r = dmce_block_attach(base, h->size);
    if (r < 0)
        return DMCE_ECORRUPT;
    tally_t t = {0, 0, 0, 0};
    if (!verify_map(base, &t))
        return DMCE_ECORRUPT;
    uint64_t nodes = 0;
    for (unsigned b = 0; b < DMCE_ALLOC_BINS; b++)
        if (!verify_bin(base, b, &nodes))
            return DMCE_ECORRUPT;
    if (nodes != t.free_runs || t.free_granules != h->free_granules ||
        t.used_bytes != h->used_bytes || t.nallocs != h->nallocs)
        return DMCE_ECORRUPT;
    return 0;
}
