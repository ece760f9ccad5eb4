/*
 * Unit tests for block backups (runtime/backup.c, contract in backup.h):
 * the writer and the reader of block files (full images, deltas, second
 * passes, zero pages), chains applied onto zeroed memory, the writer's
 * refusals and abort, every refusal of the reader (truncation at each
 * part of a file, a flipped bit in each part, appended bytes, bad magic,
 * another version or block format, another cluster, another block or
 * daemon, a missing file, a delta on the wrong base, a bad table entry),
 * each with its error and a message naming the file, and the rest of the
 * set still applying after it; the table (round trip, every byte flipped,
 * truncation, version, atomic save); removal of unnamed files; verify of
 * a real allocator block; and a seeded property test of 200 rounds of
 * random changes backed up as chains.
 *
 * Each test works in its own mkdtemp directory under /tmp, removed by the
 * teardown (also when the test fails); memory a test allocates is owned
 * by the fixture and freed there too.
 *
 * The file format is re-encoded here from backup.h (offsets of the header
 * fields, the 16-byte records, the 32-byte trailer, the table's checksum)
 * on purpose: a test that borrowed the module's own encoder would not
 * notice the format drifting from its documentation.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmce/error.h>

#include "alloc.h"
#include "backup.h"

/* ---- the format, as backup.h documents it -------------------------------------------------- */

#define NPAGES 256u /* pages of the test blocks: 1 MiB */
#define BSIZE ((uint64_t)NPAGES * DMCE_BK_PAGE)
#define HDR 256u                    /* file header */
#define HDR_SUM (HDR - 8u)          /* offset of the header checksum */
#define REC 16u                     /* record header */
#define RECLEN (REC + DMCE_BK_PAGE) /* a record with its page */
#define TRAILER 32u
#define TABLE_HDR 128u
#define TABLE_BLOCK (48u + DMCE_BK_CHAIN_MAX * 24u)
#define TABLE_SESSION 32u

#define CLUSTER "alpha"
#define DAEMON 3u
#define LAYOUT 0x00050a0bu
#define WHY 1024u

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- fixture: a private directory, and everything a test allocates ------------------------- */

#define KEEP_MAX 64u

struct fx {
    char dir[64];
    void *keep[KEEP_MAX]; /* owner: the fixture (teardown frees them) */
    unsigned nkeep;
    dmce_bk_table_t t[4]; /* owner: the fixture (teardown frees them) */
};

static int rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (unlink(p) < 0)
            rmdir(p);
    }
    closedir(d);
    return rmdir(dir);
}

static int dir_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/dmce-test-backup-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int dir_teardown(void **state)
{
    struct fx *fx = *state;
    for (unsigned i = 0; i < fx->nkeep; i++)
        free(fx->keep[i]);
    for (unsigned i = 0; i < 4; i++)
        dmce_bk_table_free(&fx->t[i]);
    int r = rm_tree(fx->dir);
    if (r < 0)
        print_error("cannot remove %s: %s\n", fx->dir, strerror(errno));
    free(fx);
    return r;
}

/* n zeroed bytes, page-aligned, owned by the fixture. */
static void *zalloc(struct fx *fx, size_t n)
{
    assert_true(fx->nkeep < KEEP_MAX);
    void *p = aligned_alloc(4096, (n + 4095) & ~(size_t)4095);
    assert_non_null(p);
    memset(p, 0, n);
    fx->keep[fx->nkeep++] = p;
    return p;
}

/* ---- small helpers ------------------------------------------------------------------------- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A page of bytes that depends on seed; never all zero. */
static void fill_page(uint8_t *p, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    if (!x)
        x = 1;
    for (uint32_t i = 0; i < DMCE_BK_PAGE; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

static uint8_t *page_of(uint8_t *buf, uint32_t i)
{
    return buf + (size_t)i * DMCE_BK_PAGE;
}

static int page_zero(const uint8_t *p)
{
    static const uint8_t zero[DMCE_BK_PAGE];
    return memcmp(p, zero, DMCE_BK_PAGE) == 0;
}

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        const char *hay_ = (hay), *needle_ = (needle);                                             \
        if (!strstr(hay_, needle_))                                                                \
            fail_msg("\"%s\" does not contain \"%s\"", hay_, needle_);                             \
    } while (0)

/* The first differing page, or a pass. */
static void assert_same_bytes(const uint8_t *got, const uint8_t *want, uint64_t len,
                              const char *what)
{
    if (memcmp(got, want, len) == 0)
        return;
    uint64_t i = 0;
    while (got[i] == want[i])
        i++;
    fail_msg("%s: byte %llu (page %llu) is 0x%02x, expected 0x%02x", what, (unsigned long long)i,
             (unsigned long long)(i / DMCE_BK_PAGE), got[i], want[i]);
}

static void path_of(const struct fx *fx, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fx->dir, name);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int exists(const struct fx *fx, const char *name)
{
    char p[256];
    path_of(fx, name, p, sizeof(p));
    return access(p, F_OK) == 0;
}

static void touch(const struct fx *fx, const char *name)
{
    char p[256];
    path_of(fx, name, p, sizeof(p));
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* The whole file at path, owned by the fixture. */
static uint8_t *slurp(struct fx *fx, const char *path, size_t *len)
{
    *len = (size_t)file_size(path);
    uint8_t *b = zalloc(fx, *len + 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, b, *len), (ssize_t)*len);
    close(fd);
    return b;
}

/* Replace the file at path by len bytes of p (no fsync: a test's own damage). */
static void spit(const char *path, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

/* Overwrite n bytes at off in place. */
static void poke(const char *path, uint64_t off, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    close(fd);
}

/* ---- writing files and tables -------------------------------------------------------------- */

static dmce_bk_file_hdr_t file_hdr(uint32_t kind, uint32_t block, uint32_t pages, uint64_t gen,
                                   uint64_t base_gen)
{
    dmce_bk_file_hdr_t h;
    memset(&h, 0, sizeof(h));
    h.kind = kind;
    snprintf(h.cluster, sizeof(h.cluster), "%s", CLUSTER);
    h.daemon = DAEMON;
    h.block = block;
    h.layout = LAYOUT;
    h.page_size = DMCE_BK_PAGE;
    h.pages = pages;
    h.size = (uint64_t)pages * DMCE_BK_PAGE;
    h.generation = gen;
    h.base_generation = base_gen;
    h.time_ns = 1700000000000000000ull + gen;
    return h;
}

static void put_page(dmce_bk_writer_t *w, uint32_t i, const uint8_t *p)
{
    int zero = page_zero(p);
    assert_int_equal(dmce_bk_writer_page(w, i, zero ? NULL : p, dmce_bk_hash(p, DMCE_BK_PAGE)), 0);
}

/* Every non-zero page of buf as a FULL file written with header h; its description in f. */
static uint32_t write_full_h(const struct fx *fx, const dmce_bk_file_hdr_t *h, const uint8_t *buf,
                             dmce_bk_file_t *f)
{
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, h), 0);
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->pages; i++) {
        const uint8_t *p = buf + (size_t)i * DMCE_BK_PAGE;
        if (page_zero(p))
            continue;
        assert_int_equal(dmce_bk_writer_page(&w, i, p, dmce_bk_hash(p, DMCE_BK_PAGE)), 0);
        n++;
    }
    assert_int_equal(dmce_bk_writer_commit(&w, f), 0);
    assert_int_equal(f->records, n);
    return n;
}

static uint32_t write_full(const struct fx *fx, uint32_t block, uint32_t pages, uint64_t gen,
                           const uint8_t *buf, dmce_bk_file_t *f)
{
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_FULL, block, pages, gen, 0);
    return write_full_h(fx, &h, buf, f);
}

/* The pages of cur that differ from prev (a zero page as a record without data). */
static uint32_t write_delta_h(const struct fx *fx, const dmce_bk_file_hdr_t *h, const uint8_t *prev,
                              const uint8_t *cur, dmce_bk_file_t *f)
{
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, h), 0);
    uint32_t n = 0;
    for (uint32_t i = 0; i < h->pages; i++) {
        size_t off = (size_t)i * DMCE_BK_PAGE;
        if (memcmp(prev + off, cur + off, DMCE_BK_PAGE) == 0)
            continue;
        put_page(&w, i, cur + off);
        n++;
    }
    assert_int_equal(dmce_bk_writer_commit(&w, f), 0);
    assert_int_equal(f->records, n);
    return n;
}

static uint32_t write_delta(const struct fx *fx, uint32_t block, uint32_t pages, uint64_t gen,
                            const uint8_t *prev, const uint8_t *cur, dmce_bk_file_t *f)
{
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, block, pages, gen, gen - 1);
    return write_delta_h(fx, &h, prev, cur, f);
}

static void table_init(dmce_bk_table_t *t)
{
    dmce_bk_table_free(t);
    memset(t, 0, sizeof(*t));
    snprintf(t->cluster, sizeof(t->cluster), "%s", CLUSTER);
    t->daemon = DAEMON;
    t->layout = LAYOUT;
    t->block_first = 1;
    t->block_count = 64;
}

/* A new entry for block id (pages DMCE_BK_PAGE pages); no files yet. Owner: the table. */
static dmce_bk_block_t *table_add(dmce_bk_table_t *t, uint32_t id, uint32_t pages)
{
    dmce_bk_block_t *nb = realloc(t->blocks, (t->nblocks + 1) * sizeof(*nb));
    assert_non_null(nb);
    t->blocks = nb;
    dmce_bk_block_t *b = &nb[t->nblocks++];
    memset(b, 0, sizeof(*b));
    b->block = id;
    b->mirror_daemon = 0;
    b->page_size = DMCE_BK_PAGE;
    b->pages = pages;
    b->size = (uint64_t)pages * DMCE_BK_PAGE;
    b->time_ns = 1700000000123456789ull + id;
    b->took_us = 1000u + id;
    return b;
}

static void chain_start(dmce_bk_block_t *b, const dmce_bk_file_t *f)
{
    b->nfiles = 1;
    b->files[0] = *f;
}

static void chain_push(dmce_bk_block_t *b, const dmce_bk_file_t *f)
{
    assert_true(b->nfiles < DMCE_BK_CHAIN_MAX);
    b->files[b->nfiles++] = *f;
}

/* Apply b's chain into out (zeroed first); the result, why filled. */
static int apply(const struct fx *fx, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                 uint8_t *out, uint64_t *hashes, char *why)
{
    memset(out, 0, b->size);
    why[0] = 0;
    return dmce_bk_chain_apply(fx->dir, t, b, out, hashes, NULL, NULL, why, WHY);
}

/* b's chain restores exactly want, and the hashes it reports are those of want's pages. */
static void assert_applies(const struct fx *fx, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                           const uint8_t *want, uint8_t *out, uint64_t *hashes)
{
    char why[WHY];
    int r = apply(fx, t, b, out, hashes, why);
    if (r != 0)
        fail_msg("block %u: %s (%d): %s", b->block, dmce_err_name(r), r, why);
    char what[64];
    snprintf(what, sizeof(what), "block %u restored", b->block);
    assert_same_bytes(out, want, b->size, what);
    for (uint32_t i = 0; hashes && i < b->pages; i++)
        if (hashes[i] != dmce_bk_hash(want + (size_t)i * DMCE_BK_PAGE, DMCE_BK_PAGE))
            fail_msg("block %u: hash of page %u is not the page's", b->block, i);
    /* The same chain through a descriptor (how a daemon restores into a block's object). */
    int fd = memfd_create("dmce-test-apply", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)b->size), 0);
    r = dmce_bk_chain_apply_fd(fx->dir, t, b, fd, NULL, NULL, NULL, why, WHY);
    if (r != 0)
        fail_msg("block %u through a descriptor: %s (%d): %s", b->block, dmce_err_name(r), r, why);
    void *m = mmap(NULL, b->size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    snprintf(what, sizeof(what), "block %u restored through a descriptor", b->block);
    assert_same_bytes(m, want, b->size, what);
    munmap(m, b->size);
    close(fd);
}

static void fill_pattern(uint8_t *buf, uint32_t pages, uint64_t seed, uint32_t zero_every)
{
    for (uint32_t i = 0; i < pages; i++)
        if (zero_every && i % zero_every == 0)
            memset(page_of(buf, i), 0, DMCE_BK_PAGE);
        else
            fill_page(page_of(buf, i), seed * 100003u + i);
}

/* ---- the writer and the reader: round trip, chains, passes --------------------------------- */

static void test_full_round_trip(void **state)
{
    struct fx *fx = *state;
    uint8_t *buf = zalloc(fx, BSIZE), *out = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    fill_pattern(buf, NPAGES, 1, 4); /* pages 0, 4, 8... stay zero: not in a full image */
    uint32_t nonzero = NPAGES - NPAGES / 4;

    dmce_bk_file_t f;
    assert_int_equal(write_full(fx, 7, NPAGES, 1, buf, &f), nonzero);
    assert_int_equal(f.generation, 1);
    assert_int_equal(f.kind, DMCE_BK_FULL);
    assert_int_equal(f.records, nonzero);
    char p[256];
    path_of(fx, "b7.1.full", p, sizeof(p));
    assert_int_equal(f.bytes, file_size(p));
    assert_int_equal(f.bytes, HDR + (uint64_t)nonzero * RECLEN + TRAILER);
    assert_int_equal(count_entries(fx->dir), 1); /* no temporary left */

    dmce_bk_table_t *t = &fx->t[0], *u = &fx->t[1];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 7, NPAGES);
    b->mirror_daemon = 4;
    chain_start(b, &f);
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    assert_int_equal(t->generation, 1);

    char why[WHY] = "";
    assert_int_equal(dmce_bk_table_load(fx->dir, u, why, sizeof(why)), 0);
    assert_string_equal(u->cluster, CLUSTER);
    assert_int_equal(u->daemon, DAEMON);
    assert_int_equal(u->layout, LAYOUT);
    assert_int_equal(u->block_first, 1);
    assert_int_equal(u->block_count, 64);
    assert_int_equal(u->generation, 1);
    assert_int_equal(u->nblocks, 1);
    assert_int_equal(u->nsessions, 0);
    assert_null(u->sessions);
    const dmce_bk_block_t *lb = &u->blocks[0];
    assert_int_equal(lb->block, 7);
    assert_int_equal(lb->mirror_daemon, 4);
    assert_int_equal(lb->page_size, DMCE_BK_PAGE);
    assert_int_equal(lb->pages, NPAGES);
    assert_int_equal(lb->size, BSIZE);
    assert_int_equal(lb->time_ns, b->time_ns);
    assert_int_equal(lb->took_us, b->took_us);
    assert_int_equal(lb->nfiles, 1);
    assert_int_equal(lb->files[0].generation, 1);
    assert_int_equal(lb->files[0].kind, DMCE_BK_FULL);
    assert_int_equal(lb->files[0].records, nonzero);
    assert_int_equal(lb->files[0].bytes, f.bytes);
    assert_ptr_equal(dmce_bk_table_find(u, 7), lb);
    assert_null(dmce_bk_table_find(u, 8));

    /* Through the loaded table, onto memory the caller zeroed. */
    assert_applies(fx, u, lb, buf, out, hashes);
    /* Skipped (zero) pages report the zero page's hash. */
    static const uint8_t zero[DMCE_BK_PAGE];
    assert_int_equal(hashes[0], dmce_bk_hash(zero, sizeof(zero)));
    assert_int_not_equal(hashes[1], hashes[0]);

    /* hashes may be NULL. */
    memset(out, 0, BSIZE);
    assert_int_equal(dmce_bk_chain_apply(fx->dir, u, lb, out, NULL, NULL, NULL, why, sizeof(why)),
                     0);
    assert_same_bytes(out, buf, BSIZE, "without hashes");
}

/* Through a descriptor that cannot be written: the error, said; none at all: -EBADF. */
static void test_apply_fd_write_error(void **state)
{
    struct fx *fx = *state;
    uint8_t *buf = zalloc(fx, BSIZE);
    fill_pattern(buf, NPAGES, 3, 5);
    dmce_bk_file_t f;
    write_full(fx, 9, NPAGES, 1, buf, &f);
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 9, NPAGES);
    chain_start(b, &f);
    int fd = memfd_create("dmce-test-apply", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)b->size), 0);
    char proc[64], why[WHY];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    int ro = open(proc, O_RDONLY | O_CLOEXEC);
    assert_true(ro >= 0);
    assert_int_equal(dmce_bk_chain_apply_fd(fx->dir, t, b, ro, NULL, NULL, NULL, why, WHY), -EBADF);
    assert_non_null(strstr(why, "writing the restored pages"));
    assert_int_equal(dmce_bk_chain_apply_fd(fx->dir, t, b, -1, NULL, NULL, NULL, why, WHY), -EBADF);
    close(ro);
    close(fd);
}

static void test_file_names(void **state)
{
    struct fx *fx = *state;
    char out[256];
    dmce_bk_file_t f = {.generation = 3, .kind = DMCE_BK_FULL};
    dmce_bk_file_name("/x/y", 7, &f, out, sizeof(out));
    assert_string_equal(out, "/x/y/b7.3.full");
    f.generation = 18446744073709551615ull;
    f.kind = DMCE_BK_DELTA;
    dmce_bk_file_name("/x/y", 4294967295u, &f, out, sizeof(out));
    assert_string_equal(out, "/x/y/b4294967295.18446744073709551615.delta");

    /* The writer names its file the same way. */
    uint8_t *buf = zalloc(fx, BSIZE);
    dmce_bk_file_t g;
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, 12, NPAGES, 42, 41);
    write_delta_h(fx, &h, buf, buf, &g); /* no changes: a delta of no records */
    assert_int_equal(g.records, 0);
    assert_true(exists(fx, "b12.42.delta"));
    assert_int_equal(g.bytes, HDR + TRAILER);
}

/*
 * A FULL image and three DELTAs: changed pages, pages that became zero,
 * a delta with a second pass (a page written twice: the second wins),
 * an empty delta. After each, the chain so far gives that state.
 */
static void test_chain_full_and_deltas(void **state)
{
    struct fx *fx = *state;
    uint8_t *s[5];
    for (int k = 0; k < 5; k++)
        s[k] = zalloc(fx, BSIZE);
    uint8_t *out = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 5, NPAGES);
    dmce_bk_file_t f;

    /* gen 1: full; pages 200.. zero */
    fill_pattern(s[0], 200, 11, 0);
    assert_int_equal(write_full(fx, 5, NPAGES, 1, s[0], &f), 200);
    chain_start(b, &f);
    assert_applies(fx, t, b, s[0], out, hashes);

    /* gen 2: pages 3 and 10 change, 5 and 199 become zero, 220 becomes non-zero */
    memcpy(s[1], s[0], BSIZE);
    fill_page(page_of(s[1], 3), 1003);
    page_of(s[1], 10)[4095] ^= 0x80;
    memset(page_of(s[1], 5), 0, DMCE_BK_PAGE);
    memset(page_of(s[1], 199), 0, DMCE_BK_PAGE);
    fill_page(page_of(s[1], 220), 1220);
    assert_int_equal(write_delta(fx, 5, NPAGES, 2, s[0], s[1], &f), 5);
    assert_int_equal(f.kind, DMCE_BK_DELTA);
    assert_int_equal(f.generation, 2);
    /* 3 records with data, 2 without */
    assert_int_equal(f.bytes, HDR + 3 * RECLEN + 2 * REC + TRAILER);
    chain_push(b, &f);
    assert_applies(fx, t, b, s[1], out, hashes);

    /*
     * gen 3, in two passes: the first pass writes pages 4 (value A) and 20;
     * then page 4 changes again (value C), page 7 becomes zero and page 5
     * (zero) gets data; the second pass writes 4, 5, 7: its records win.
     */
    memcpy(s[2], s[1], BSIZE);
    dmce_bk_writer_t w;
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, 5, NPAGES, 3, 2);
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    fill_page(page_of(s[2], 4), 2004);
    fill_page(page_of(s[2], 20), 2020);
    put_page(&w, 4, page_of(s[2], 4));
    put_page(&w, 20, page_of(s[2], 20));
    assert_int_equal(dmce_bk_writer_pass(&w), 0);
    fill_page(page_of(s[2], 4), 3004);
    fill_page(page_of(s[2], 5), 3005);
    memset(page_of(s[2], 7), 0, DMCE_BK_PAGE);
    put_page(&w, 4, page_of(s[2], 4)); /* lower than the last index: a new pass allows it */
    put_page(&w, 5, page_of(s[2], 5));
    put_page(&w, 7, page_of(s[2], 7));
    assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
    assert_int_equal(f.records, 6); /* 2 + the pass marker + 3 */
    chain_push(b, &f);
    assert_applies(fx, t, b, s[2], out, hashes);
    assert_int_equal(hashes[4], dmce_bk_hash(page_of(s[2], 4), DMCE_BK_PAGE));

    /* gen 4: nothing changed (a delta of no records) */
    memcpy(s[3], s[2], BSIZE);
    assert_int_equal(write_delta(fx, 5, NPAGES, 4, s[2], s[3], &f), 0);
    chain_push(b, &f);
    assert_applies(fx, t, b, s[3], out, hashes);

    /* gen 5: almost every page changes (a third become zero) */
    fill_pattern(s[4], NPAGES, 55, 3);
    uint32_t differ = 0;
    for (uint32_t i = 0; i < NPAGES; i++)
        differ += memcmp(page_of(s[3], i), page_of(s[4], i), DMCE_BK_PAGE) != 0;
    assert_true(differ > 200);
    assert_int_equal(write_delta(fx, 5, NPAGES, 5, s[3], s[4], &f), differ);
    chain_push(b, &f);
    assert_applies(fx, t, b, s[4], out, hashes);

    /* A prefix of the chain is the state at that generation. */
    dmce_bk_block_t prefix = *b;
    for (uint32_t n = 1; n <= 5; n++) {
        prefix.nfiles = n;
        assert_applies(fx, t, &prefix, s[n - 1], out, hashes);
    }

    /* And through a saved and loaded table. */
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    char why[WHY];
    assert_int_equal(dmce_bk_table_load(fx->dir, &fx->t[1], why, sizeof(why)), 0);
    assert_int_equal(fx->t[1].blocks[0].nfiles, 5);
    assert_memory_equal(fx->t[1].blocks[0].files, b->files, 5 * sizeof(dmce_bk_file_t));
    assert_applies(fx, &fx->t[1], &fx->t[1].blocks[0], s[4], out, hashes);
}

/* progress gets increasing byte counts while a long chain is read. */
struct progress_seen {
    unsigned calls;
    uint64_t last;
    int decreased;
};

static void on_progress(uint64_t bytes, void *arg)
{
    struct progress_seen *p = arg;
    p->decreased |= bytes < p->last;
    p->last = bytes;
    p->calls++;
}

static void test_progress_on_a_long_file(void **state)
{
    struct fx *fx = *state;
    const uint32_t pages = 2560; /* 10 MiB: more than one reader buffer, > 2048 records */
    uint64_t size = (uint64_t)pages * DMCE_BK_PAGE;
    uint8_t *buf = zalloc(fx, size), *out = zalloc(fx, size);
    fill_pattern(buf, pages, 9, 0);
    dmce_bk_file_t f;
    write_full(fx, 2, pages, 1, buf, &f);
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 2, pages);
    chain_start(b, &f);
    struct progress_seen seen = {0};
    char why[WHY];
    int r = dmce_bk_chain_apply(fx->dir, t, b, out, NULL, on_progress, &seen, why, sizeof(why));
    if (r)
        fail_msg("%s", why);
    assert_same_bytes(out, buf, size, "10 MiB block");
    assert_true(seen.calls >= 2);
    assert_false(seen.decreased);
    assert_true(seen.last > 0 && seen.last <= size);
}

/* ---- the writer's refusals and abort ------------------------------------------------------- */

static void test_writer_refusals(void **state)
{
    struct fx *fx = *state;
    uint8_t *buf = zalloc(fx, BSIZE), *out = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    fill_pattern(buf, NPAGES, 3, 0);
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_FULL, 4, NPAGES, 1, 0);
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    const uint8_t *p5 = page_of(buf, 5), *p6 = page_of(buf, 6), *p2 = page_of(buf, 2);
    uint64_t h5 = dmce_bk_hash(p5, DMCE_BK_PAGE);
    /* out of range */
    assert_int_equal(dmce_bk_writer_page(&w, NPAGES, p5, h5), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, 0xffffffffu, NULL, 0), -EINVAL);
    /* increasing within a pass */
    assert_int_equal(dmce_bk_writer_page(&w, 5, p5, h5), 0);
    assert_int_equal(dmce_bk_writer_page(&w, 5, p5, h5), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, 3, p5, h5), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, 0, NULL, 0), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, 6, p6, dmce_bk_hash(p6, DMCE_BK_PAGE)), 0);
    /* a new pass may go back, then increases again */
    assert_int_equal(dmce_bk_writer_pass(&w), 0);
    assert_int_equal(dmce_bk_writer_page(&w, 2, p2, dmce_bk_hash(p2, DMCE_BK_PAGE)), 0);
    assert_int_equal(dmce_bk_writer_page(&w, 2, p2, dmce_bk_hash(p2, DMCE_BK_PAGE)), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, 1, p2, dmce_bk_hash(p2, DMCE_BK_PAGE)), -EINVAL);
    assert_int_equal(dmce_bk_writer_page(&w, NPAGES, p2, dmce_bk_hash(p2, DMCE_BK_PAGE)), -EINVAL);
    /* the refused calls wrote nothing: the file holds 5, 6, the pass, 2 */
    dmce_bk_file_t f;
    assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
    assert_int_equal(f.records, 4);
    assert_int_equal(f.bytes, HDR + 3 * RECLEN + REC + TRAILER);
    char p[256];
    path_of(fx, "b4.1.full", p, sizeof(p));
    assert_int_equal(file_size(p), f.bytes);
    dmce_bk_writer_abort(&w); /* safe after commit: the file stays */
    assert_true(exists(fx, "b4.1.full"));
    assert_int_equal(count_entries(fx->dir), 1);

    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 4, NPAGES);
    chain_start(b, &f);
    uint8_t *want = zalloc(fx, BSIZE);
    memcpy(page_of(want, 2), p2, DMCE_BK_PAGE);
    memcpy(page_of(want, 5), p5, DMCE_BK_PAGE);
    memcpy(page_of(want, 6), p6, DMCE_BK_PAGE);
    assert_applies(fx, t, b, want, out, hashes);
}

static void test_writer_abort_removes_temporary(void **state)
{
    struct fx *fx = *state;
    uint8_t *buf = zalloc(fx, BSIZE);
    fill_pattern(buf, NPAGES, 4, 0);
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_FULL, 4, NPAGES, 2, 0);
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    for (uint32_t i = 0; i < NPAGES; i++) /* more than the writer's buffer: some reached the file */
        put_page(&w, i, page_of(buf, i));
    assert_true(exists(fx, ".b4.2.full.tmp"));
    assert_false(exists(fx, "b4.2.full"));
    dmce_bk_writer_abort(&w);
    assert_int_equal(count_entries(fx->dir), 0);
    dmce_bk_writer_abort(&w); /* twice is safe */
    assert_int_equal(count_entries(fx->dir), 0);

    /* begin fails in a directory that is not there; abort after it is safe */
    char missing[256];
    path_of(fx, "no-such-dir", missing, sizeof(missing));
    assert_int_equal(dmce_bk_writer_begin(&w, missing, &h), -ENOENT);
    dmce_bk_writer_abort(&w);
    assert_int_equal(count_entries(fx->dir), 0);

    /* a stale temporary of an earlier crash is replaced, not appended to */
    touch(fx, ".b4.2.full.tmp");
    dmce_bk_file_t f;
    write_full(fx, 4, NPAGES, 2, buf, &f);
    assert_int_equal(count_entries(fx->dir), 1);
    char p[256];
    path_of(fx, "b4.2.full", p, sizeof(p));
    assert_int_equal(file_size(p), HDR + (uint64_t)NPAGES * RECLEN + TRAILER);
}

/* ---- every refusal of the reader ----------------------------------------------------------- */

/*
 * A set of three blocks: block 1 (full gen 1, delta gen 2: pages 1, 2, 7
 * changed, 3 zeroed), block 2 (full gen 4, delta gen 5), block 3 (full
 * gen 1). The tests damage block 1's files and check that blocks 2 and 3
 * still apply.
 */
struct set {
    dmce_bk_table_t *t;
    uint8_t *state[3]; /* what each block's chain restores */
    uint8_t *out;      /* BSIZE + 2 pages */
    uint64_t *hashes;
    char full[256], delta[256]; /* block 1's files */
};

static const uint32_t set_id[3] = {1, 2, 3};

static void make_set(struct fx *fx, struct set *s)
{
    s->t = &fx->t[0];
    table_init(s->t);
    for (int k = 0; k < 3; k++)
        s->state[k] = zalloc(fx, BSIZE);
    s->out = zalloc(fx, BSIZE + 2 * DMCE_BK_PAGE); /* room for the entries of impossible sizes */
    s->hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    uint8_t *prev = zalloc(fx, BSIZE);
    dmce_bk_file_t f;

    fill_pattern(s->state[0], NPAGES, 100, 5); /* pages 0, 5, 10... zero */
    write_full(fx, 1, NPAGES, 1, s->state[0], &f);
    chain_start(table_add(s->t, 1, NPAGES), &f);
    memcpy(prev, s->state[0], BSIZE);
    fill_page(page_of(s->state[0], 1), 10001);
    fill_page(page_of(s->state[0], 2), 10002);
    fill_page(page_of(s->state[0], 7), 10007);
    memset(page_of(s->state[0], 3), 0, DMCE_BK_PAGE);
    assert_int_equal(write_delta(fx, 1, NPAGES, 2, prev, s->state[0], &f), 4);
    chain_push(dmce_bk_table_find(s->t, 1), &f);

    fill_pattern(s->state[1], NPAGES, 200, 3);
    write_full(fx, 2, NPAGES, 4, s->state[1], &f);
    chain_start(table_add(s->t, 2, NPAGES), &f);
    memcpy(prev, s->state[1], BSIZE);
    fill_page(page_of(s->state[1], 0), 20000);
    memset(page_of(s->state[1], 100), 0, DMCE_BK_PAGE);
    assert_int_equal(write_delta(fx, 2, NPAGES, 5, prev, s->state[1], &f), 2);
    chain_push(dmce_bk_table_find(s->t, 2), &f);

    fill_pattern(s->state[2], 64, 300, 0);
    assert_int_equal(write_full(fx, 3, NPAGES, 1, s->state[2], &f), 64);
    chain_start(table_add(s->t, 3, NPAGES), &f);

    path_of(fx, "b1.1.full", s->full, sizeof(s->full));
    path_of(fx, "b1.2.delta", s->delta, sizeof(s->delta));
    for (int k = 0; k < 3; k++)
        assert_applies(fx, s->t, dmce_bk_table_find(s->t, set_id[k]), s->state[k], s->out,
                       s->hashes);
}

static void set_block_ok(const struct fx *fx, const struct set *s, int k)
{
    assert_applies(fx, s->t, dmce_bk_table_find(s->t, set_id[k]), s->state[k], s->out, s->hashes);
}

/*
 * Block 1 (entry b, the table's own when NULL) is refused with `want`;
 * why names `path` and contains `what` (when not NULL). Then blocks 2
 * and 3 still apply: nothing else changed.
 */
static void expect_refused_b(const struct fx *fx, const struct set *s, const dmce_bk_block_t *b,
                             int want, const char *path, const char *what, const char *label)
{
    char why[WHY];
    if (!b)
        b = dmce_bk_table_find(s->t, 1);
    int r = apply(fx, s->t, b, s->out, NULL, why);
    if (r != want)
        fail_msg("%s: got %s (%d), expected %s (%d); why: \"%s\"", label, dmce_err_name(r), r,
                 dmce_err_name(want), want, why);
    if (path && !strstr(why, path))
        fail_msg("%s: why \"%s\" does not name %s", label, why, path);
    if (what && !strstr(why, what))
        fail_msg("%s: why \"%s\" does not say \"%s\"", label, why, what);
    set_block_ok(fx, s, 1);
    set_block_ok(fx, s, 2);
}

static void expect_refused(const struct fx *fx, const struct set *s, int want, const char *path,
                           const char *what, const char *label)
{
    expect_refused_b(fx, s, NULL, want, path, what, label);
}

/* Offset of the record of page p in a FULL file of buf. */
static uint64_t full_record_at(const uint8_t *buf, uint32_t p)
{
    uint64_t off = HDR;
    for (uint32_t i = 0; i < p; i++)
        off += page_zero(buf + (size_t)i * DMCE_BK_PAGE) ? 0 : RECLEN;
    return off;
}

static void test_reader_refuses_truncated(void **state)
{
    struct fx *fx = *state;
    struct set s;
    make_set(fx, &s);
    /* block 1's full image, as gen 1 wrote it (page 1 is its first record: page 0 is zero) */
    uint8_t *gen1 = zalloc(fx, BSIZE);
    fill_pattern(gen1, NPAGES, 100, 5);
    size_t len, dlen;
    uint8_t *full = slurp(fx, s.full, &len);
    uint8_t *delta = slurp(fx, s.delta, &dlen);
    assert_int_equal(full_record_at(gen1, 1), HDR);
    uint64_t last = full_record_at(gen1, 254); /* page 255 is zero */
    assert_int_equal(last + RECLEN + TRAILER, len);

    const struct {
        uint64_t at;
        const char *label;
        const char *what;
    } cuts[] = {
        {0, "empty file", "truncated"},
        {100, "inside the header", "truncated"},
        {HDR - 1, "one byte short of the header", "truncated"},
        {HDR, "just the header", "truncated"},
        {HDR + 8, "inside the first record header", "truncated"},
        {HDR + REC, "after a record header, before its page", "truncated"},
        {HDR + REC + 2000, "inside a page", "truncated"},
        {HDR + RECLEN, "between two records", "truncated"},
        {last + REC + 4095, "inside the last page", "truncated"},
        {len - TRAILER, "before the trailer", "trailer"},
        {len - TRAILER + 8, "inside the trailer", "trailer"},
        {len - 1, "one byte short of the trailer", "trailer"},
    };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(truncate(s.full, (off_t)cuts[i].at), 0);
        expect_refused(fx, &s, DMCE_ECORRUPT, s.full, cuts[i].what, cuts[i].label);
        spit(s.full, full, len);
    }

    /* The delta: records 1, 2 (data), 3 (zero: no data), 7 (data). */
    const uint64_t zrec = HDR + 2 * RECLEN;
    const uint64_t dcuts[] = {
        HDR + 3, zrec + 5, zrec + REC, zrec + REC + REC + 1, dlen - TRAILER, dlen - 3,
    };
    for (size_t i = 0; i < sizeof(dcuts) / sizeof(dcuts[0]); i++) {
        assert_int_equal(truncate(s.delta, (off_t)dcuts[i]), 0);
        char label[64];
        snprintf(label, sizeof(label), "delta cut at %llu", (unsigned long long)dcuts[i]);
        expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, NULL, label);
        spit(s.delta, delta, dlen);
    }
    set_block_ok(fx, &s, 0);
}

static void flip_bit(const char *path, uint64_t off, const uint8_t *orig, int bit)
{
    uint8_t v = (uint8_t)(orig[off] ^ (1u << bit));
    poke(path, off, &v, 1);
}

static void test_reader_refuses_flipped_bits(void **state)
{
    struct fx *fx = *state;
    struct set s;
    make_set(fx, &s);
    uint8_t *gen1 = zalloc(fx, BSIZE);
    fill_pattern(gen1, NPAGES, 100, 5);
    size_t len, dlen;
    uint8_t *full = slurp(fx, s.full, &len);
    uint8_t *delta = slurp(fx, s.delta, &dlen);
    char label[96];

    /* Each byte of the header: the magic, the version, else its checksum. */
    for (uint64_t i = 0; i < HDR; i++) {
        flip_bit(s.full, i, full, (int)(i % 8));
        snprintf(label, sizeof(label), "header byte %llu", (unsigned long long)i);
        if (i < 8)
            expect_refused(fx, &s, DMCE_EBADMAGIC, s.full, "bad magic", label);
        else if (i < 12)
            expect_refused(fx, &s, DMCE_EVERSION, s.full, "version", label);
        else
            expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "header checksum", label);
        poke(s.full, i, full + i, 1);
    }

    /* A page's data: the message names the page. */
    const uint32_t pages[] = {1, 2, 128, 253, 254};
    for (size_t k = 0; k < sizeof(pages) / sizeof(pages[0]); k++) {
        uint64_t at = full_record_at(gen1, pages[k]) + REC;
        const uint64_t offs[] = {0, 1234, DMCE_BK_PAGE - 1};
        for (size_t j = 0; j < 3; j++) {
            flip_bit(s.full, at + offs[j], full, (int)(j + k) % 8);
            char what[32];
            snprintf(what, sizeof(what), "page %u fails", pages[k]);
            snprintf(label, sizeof(label), "data of page %u, byte %llu", pages[k],
                     (unsigned long long)offs[j]);
            expect_refused(fx, &s, DMCE_ECORRUPT, s.full, what, label);
            poke(s.full, at + offs[j], full + at + offs[j], 1);
        }
    }

    /* Each byte of each record header (index, flags, hash) of the delta. */
    const uint64_t recs[] = {HDR, HDR + RECLEN, HDR + 2 * RECLEN, HDR + 2 * RECLEN + REC};
    for (size_t k = 0; k < 4; k++)
        for (uint64_t i = 0; i < REC; i++) {
            uint64_t at = recs[k] + i;
            for (int bit = 0; bit < 8; bit += 7) {
                flip_bit(s.delta, at, delta, bit);
                snprintf(label, sizeof(label), "record %zu byte %llu bit %d", k,
                         (unsigned long long)i, bit);
                expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, NULL, label);
                poke(s.delta, at, delta + at, 1);
            }
        }
    /* ...and of the full image's first and last records */
    const uint64_t frecs[] = {HDR, full_record_at(gen1, 254)};
    for (size_t k = 0; k < 2; k++)
        for (uint64_t i = 0; i < REC; i++) {
            uint64_t at = frecs[k] + i;
            flip_bit(s.full, at, full, (int)(i % 8));
            snprintf(label, sizeof(label), "full record %zu byte %llu", k, (unsigned long long)i);
            expect_refused(fx, &s, DMCE_ECORRUPT, s.full, NULL, label);
            poke(s.full, at, full + at, 1);
        }

    /* Each byte of the trailer: magic, record count, record hash, checksum. */
    for (uint64_t i = 0; i < TRAILER; i++) {
        uint64_t at = len - TRAILER + i;
        flip_bit(s.full, at, full, (int)(i % 8));
        snprintf(label, sizeof(label), "trailer byte %llu", (unsigned long long)i);
        expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "trailer", label);
        poke(s.full, at, full + at, 1);
        at = dlen - TRAILER + i;
        flip_bit(s.delta, at, delta, (int)(i % 8));
        expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, "trailer", label);
        poke(s.delta, at, delta + at, 1);
    }

    /*
     * The trailer's record count and record hash, changed with its own
     * checksum fixed: the records no longer match it.
     */
    uint8_t *tr = zalloc(fx, len);
    memcpy(tr, full, len);
    uint8_t *t0 = tr + len - TRAILER;
    t0[16] ^= 1;
    put_le64(t0 + 24, dmce_bk_hash(t0, 24));
    spit(s.full, tr, len);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "do not match its trailer", "record hash");
    spit(s.full, full, len);

    /* The trailer's record count changed, its checksum fixed. */
    memcpy(tr, full, len);
    put_le64(t0 + 8, (uint64_t)get_le32(t0 + 8) + 1);
    put_le64(t0 + 24, dmce_bk_hash(t0, 24));
    spit(s.full, tr, len);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "do not match its trailer", "record count");
    spit(s.full, full, len);

    /*
     * A zero record whose hash is not the zero page's, in a file otherwise
     * whole (the writer takes the hash it is given): malformed.
     */
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, 1, NPAGES, 2, 1);
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    assert_int_equal(dmce_bk_writer_page(&w, 3, NULL, 0x1234), 0);
    dmce_bk_file_t f;
    assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
    dmce_bk_block_t e = *dmce_bk_table_find(s.t, 1);
    e.files[1] = f;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, s.delta, "malformed", "zero record, wrong hash");
    spit(s.delta, delta, dlen);

    /* Two records swapped (each whole, so every page passes its own hash). */
    memcpy(tr, full, len);
    memcpy(tr + HDR, full + HDR + RECLEN, RECLEN);
    memcpy(tr + HDR + RECLEN, full + HDR, RECLEN);
    spit(s.full, tr, len);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "out of order", "records swapped");
    spit(s.full, full, len);

    set_block_ok(fx, &s, 0);
}

static void test_reader_refuses_appended_magic_version_layout(void **state)
{
    struct fx *fx = *state;
    struct set s;
    make_set(fx, &s);
    size_t len, dlen;
    uint8_t *full = slurp(fx, s.full, &len);
    uint8_t *delta = slurp(fx, s.delta, &dlen);
    uint8_t *b = zalloc(fx, len + DMCE_BK_PAGE);

    /* Bytes after the trailer: one zero byte, a second trailer, a page. */
    const size_t extra[] = {1, TRAILER, DMCE_BK_PAGE};
    for (size_t i = 0; i < 3; i++) {
        memcpy(b, full, len);
        for (size_t k = 0; k < extra[i]; k++)
            b[len + k] = i == 1 ? full[len - TRAILER + k] : 0;
        spit(s.full, b, len + extra[i]);
        expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "after its trailer", "appended");
        spit(s.full, full, len);
    }
    memcpy(b, delta, dlen);
    b[dlen] = 0x55;
    spit(s.delta, b, dlen + 1);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, "after its trailer", "appended to delta");
    spit(s.delta, delta, dlen);

    /* Bad magic: another file under the name; an empty-looking header. */
    memcpy(b, full, len);
    memcpy(b, "DMCEBKF2", 8);
    spit(s.full, b, len);
    expect_refused(fx, &s, DMCE_EBADMAGIC, s.full, "bad magic", "magic DMCEBKF2");
    memset(b, 0, HDR);
    spit(s.full, b, len);
    expect_refused(fx, &s, DMCE_EBADMAGIC, s.full, "bad magic", "zero header");
    spit(s.full, full, len);

    /* Another version, with a valid checksum. */
    memcpy(b, full, len);
    put_le32(b + 8, 2);
    put_le64(b + HDR_SUM, dmce_bk_hash(b, HDR_SUM));
    spit(s.full, b, len);
    expect_refused(fx, &s, DMCE_EVERSION, s.full, "version 2", "version 2");
    spit(s.full, full, len);

    /* Another block format (the layout word, or the page size field), valid checksum. */
    memcpy(b, full, len);
    assert_int_equal(get_le32(b + 136), DMCE_BLOCK_LAYOUT_WORD);
    put_le32(b + 136, DMCE_BLOCK_LAYOUT_WORD + 1);
    put_le64(b + HDR_SUM, dmce_bk_hash(b, HDR_SUM));
    spit(s.full, b, len);
    expect_refused(fx, &s, DMCE_ELAYOUT, s.full, "block format", "layout word");
    memcpy(b, full, len);
    assert_int_equal(get_le32(b + 100), DMCE_BK_PAGE);
    put_le32(b + 100, 8192);
    put_le64(b + HDR_SUM, dmce_bk_hash(b, HDR_SUM));
    spit(s.full, b, len);
    expect_refused(fx, &s, DMCE_ELAYOUT, s.full, "block format", "page field");
    spit(s.full, full, len);

    /* The reader does not need why. */
    memcpy(b, full, len);
    b[HDR + REC + 5] ^= 1;
    spit(s.full, b, len);
    dmce_bk_block_t *e = dmce_bk_table_find(s.t, 1);
    assert_int_equal(dmce_bk_chain_apply(fx->dir, s.t, e, s.out, NULL, NULL, NULL, NULL, 0),
                     DMCE_ECORRUPT);
    spit(s.full, full, len);
    set_block_ok(fx, &s, 0);
}

static void test_reader_refuses_foreign_and_missing_files(void **state)
{
    struct fx *fx = *state;
    struct set s;
    make_set(fx, &s);
    size_t len, dlen;
    uint8_t *full = slurp(fx, s.full, &len);
    uint8_t *delta = slurp(fx, s.delta, &dlen);
    uint8_t *gen1 = zalloc(fx, BSIZE), *gen2 = zalloc(fx, BSIZE);
    fill_pattern(gen1, NPAGES, 100, 5);
    memcpy(gen2, s.state[0], BSIZE);
    dmce_bk_file_t f;

    /* A file of another cluster: -EXDEV, and why says both names. */
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_FULL, 1, NPAGES, 1, 0);
    snprintf(h.cluster, sizeof(h.cluster), "beta");
    write_full_h(fx, &h, gen1, &f);
    expect_refused(fx, &s, -EXDEV, s.full, "\"beta\"", "cluster beta");
    spit(s.full, full, len);
    /* the table's cluster differs from every file's */
    dmce_bk_table_t other = *s.t;
    snprintf(other.cluster, sizeof(other.cluster), "gamma");
    char why[WHY];
    assert_int_equal(apply(fx, &other, dmce_bk_table_find(s.t, 3), s.out, NULL, why), -EXDEV);
    assert_contains(why, "b3.1.full");
    assert_contains(why, "gamma");

    /* A file of another daemon, and one of a layout the table does not have. */
    h = file_hdr(DMCE_BK_FULL, 1, NPAGES, 1, 0);
    h.daemon = DAEMON + 1;
    write_full_h(fx, &h, gen1, &f);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match the backup table", "daemon 4");
    h = file_hdr(DMCE_BK_FULL, 1, NPAGES, 1, 0);
    h.layout = LAYOUT + 1;
    write_full_h(fx, &h, gen1, &f);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match the backup table", "layout");
    spit(s.full, full, len);

    /* Another block's file under block 1's name (b3.1.full copied to b1.1.full). */
    char p3[256];
    path_of(fx, "b3.1.full", p3, sizeof(p3));
    size_t len3;
    uint8_t *b3 = slurp(fx, p3, &len3);
    spit(s.full, b3, len3);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match the backup table", "block 3");
    spit(s.full, full, len);

    /* The full image under the delta's name, the delta under the full's (kinds swapped). */
    spit(s.delta, full, len);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, "does not match", "full as delta");
    spit(s.delta, delta, dlen);
    spit(s.full, delta, dlen);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match", "delta as full");
    spit(s.full, full, len);

    /* A file of another size of block. */
    h = file_hdr(DMCE_BK_FULL, 1, NPAGES / 2, 1, 0);
    write_full_h(fx, &h, gen1, &f);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match", "half size");
    spit(s.full, full, len);

    /* A missing file: -ENOENT naming it. */
    assert_int_equal(unlink(s.delta), 0);
    expect_refused(fx, &s, -ENOENT, s.delta, NULL, "delta missing");
    spit(s.delta, delta, dlen);
    assert_int_equal(unlink(s.full), 0);
    expect_refused(fx, &s, -ENOENT, s.full, NULL, "full missing");
    spit(s.full, full, len);

    /* A delta whose base generation does not follow (0, itself, 3), or of another generation. */
    const uint64_t bases[] = {0, 2, 3, 7};
    for (size_t i = 0; i < 4; i++) {
        h = file_hdr(DMCE_BK_DELTA, 1, NPAGES, 2, bases[i]);
        write_delta_h(fx, &h, gen1, gen2, &f);
        char label[64];
        snprintf(label, sizeof(label), "delta on base %llu", (unsigned long long)bases[i]);
        expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, "does not match the backup table", label);
    }
    h = file_hdr(DMCE_BK_DELTA, 1, NPAGES, 3, 2); /* gen 3 renamed to gen 2's name */
    write_delta_h(fx, &h, gen1, gen2, &f);
    char p13[256];
    path_of(fx, "b1.3.delta", p13, sizeof(p13));
    assert_int_equal(rename(p13, s.delta), 0);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.delta, "gen 3", "gen 3 as gen 2");
    spit(s.delta, delta, dlen);
    /* A full image that says it has a base. */
    h = file_hdr(DMCE_BK_FULL, 1, NPAGES, 1, 5);
    write_full_h(fx, &h, gen1, &f);
    expect_refused(fx, &s, DMCE_ECORRUPT, s.full, "does not match", "full with a base");
    spit(s.full, full, len);

    set_block_ok(fx, &s, 0);
}

static void test_reader_refuses_bad_table_entries(void **state)
{
    struct fx *fx = *state;
    struct set s;
    make_set(fx, &s);
    const dmce_bk_block_t *b1 = dmce_bk_table_find(s.t, 1);
    dmce_bk_block_t e;

    /* Files out of order: the delta first. */
    e = *b1;
    e.files[0] = b1->files[1];
    e.files[1] = b1->files[0];
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "delta first");
    /* Two deltas in decreasing generations (b1.2.delta exists, as does a gen 3) */
    uint8_t *gen2 = s.state[0], *gen3 = zalloc(fx, BSIZE);
    memcpy(gen3, gen2, BSIZE);
    fill_page(page_of(gen3, 9), 9);
    dmce_bk_file_t f3;
    write_delta(fx, 1, NPAGES, 3, gen2, gen3, &f3);
    e = *b1;
    e.nfiles = 3;
    e.files[1] = f3;
    e.files[2] = b1->files[1];
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "gen 3 before gen 2");
    /* A gap in the chain (gen 1 then gen 3) */
    e = *b1;
    e.files[1] = f3;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "gap");
    /* The right order applies */
    e = *b1;
    e.nfiles = 3;
    e.files[2] = f3;
    assert_applies(fx, s.t, &e, gen3, s.out, s.hashes);

    /* Two full images, a chain of nothing, too long a chain, generation 0. */
    e = *b1;
    e.files[1].kind = DMCE_BK_FULL;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "two fulls");
    e = *b1;
    e.nfiles = 0;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "no files");
    e = *b1;
    e.nfiles = DMCE_BK_CHAIN_MAX + 1;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "too many files");
    e = *b1;
    e.files[0].generation = 0;
    e.files[1].generation = 1;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "generation 0");

    /* Impossible geometry. */
    e = *b1;
    e.pages = NPAGES + 1;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "pages");
    e = *b1;
    e.size = BSIZE + 1;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, NULL, "block 1", "size");

    /* The record count the table has differs from the file's. */
    e = *b1;
    e.files[1].records = 3;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, s.delta, NULL, "fewer records");
    e = *b1;
    e.files[1].records = 5;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, s.delta, NULL, "more records");
    e = *b1;
    e.files[0].records = 0;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, s.full, NULL, "no records");

    /* The page size the table has differs from the files'. */
    e = *b1;
    e.page_size = 2u << 20;
    expect_refused_b(fx, &s, &e, DMCE_ECORRUPT, s.full, "does not match", "page size");

    set_block_ok(fx, &s, 0);
}

/* ---- second passes the writer accepts and the reader must apply ---------------------------- */

/*
 * A delta whose first pass found no changed page and whose second pass
 * did (memd_backup.c: the allocator changed during the first pass, on
 * pages already read). The writer accepts and commits it; the reader
 * must apply it. (Fails while apply_file accepts a pass marker only
 * after a record of the same pass: "record 0 (page 4294967295) is out of
 * order or malformed", and the block's backup cannot be restored.)
 */
static void test_pass_after_empty_first_pass_applies(void **state)
{
    struct fx *fx = *state;
    uint8_t *s0 = zalloc(fx, BSIZE), *s1 = zalloc(fx, BSIZE), *out = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    fill_pattern(s0, NPAGES, 21, 2);
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_file_t f;
    write_full(fx, 6, NPAGES, 1, s0, &f);
    chain_start(table_add(t, 6, NPAGES), &f);

    memcpy(s1, s0, BSIZE);
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, 6, NPAGES, 2, 1);
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    /* first pass: nothing differed */
    assert_int_equal(dmce_bk_writer_pass(&w), 0);
    fill_page(page_of(s1, 0), 600);
    memset(page_of(s1, 1), 0, DMCE_BK_PAGE);
    put_page(&w, 0, page_of(s1, 0));
    put_page(&w, 1, page_of(s1, 1));
    assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
    assert_int_equal(f.records, 3);
    chain_push(dmce_bk_table_find(t, 6), &f);
    assert_applies(fx, t, dmce_bk_table_find(t, 6), s1, out, hashes);
}

/*
 * A full image of a block whose every page is non-zero, with a second
 * pass (memd_backup.c does one whenever the allocator changed during the
 * first): the file holds pages + 1 + (second-pass pages) records, more
 * than the block has pages. The writer commits it; the table that names
 * it must save, load and apply. (Fails while block_entry_ok bounds a
 * file's records by the block's pages: chain_apply refuses the block and
 * table_load refuses the whole table.)
 */
static void test_second_pass_may_exceed_page_count(void **state)
{
    struct fx *fx = *state;
    uint8_t *buf = zalloc(fx, BSIZE), *out = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    fill_pattern(buf, NPAGES, 31, 0);
    dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_FULL, 8, NPAGES, 1, 0);
    dmce_bk_writer_t w;
    assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
    for (uint32_t i = 0; i < NPAGES; i++)
        put_page(&w, i, page_of(buf, i));
    assert_int_equal(dmce_bk_writer_pass(&w), 0);
    fill_page(page_of(buf, 9), 809);
    fill_page(page_of(buf, 200), 8200);
    put_page(&w, 9, page_of(buf, 9));
    put_page(&w, 200, page_of(buf, 200));
    dmce_bk_file_t f;
    assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
    assert_int_equal(f.records, NPAGES + 3);

    dmce_bk_table_t *t = &fx->t[0], *u = &fx->t[1];
    table_init(t);
    chain_start(table_add(t, 8, NPAGES), &f);
    assert_applies(fx, t, dmce_bk_table_find(t, 8), buf, out, hashes);
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    char why[WHY] = "";
    int r = dmce_bk_table_load(fx->dir, u, why, sizeof(why));
    if (r)
        fail_msg("table load: %s (%d): %s", dmce_err_name(r), r, why);
    assert_int_equal(u->blocks[0].files[0].records, NPAGES + 3);
    assert_applies(fx, u, &u->blocks[0], buf, out, hashes);
}

/* ---- the table ----------------------------------------------------------------------------- */

/* A table of 3 blocks (chains of 1, 2, 3 files) and 2 sessions; the files need not exist. */
static void make_table(dmce_bk_table_t *t)
{
    table_init(t);
    t->block_first = 100;
    t->block_count = 50;
    for (uint32_t k = 0; k < 3; k++) {
        dmce_bk_block_t *b = table_add(t, 100 + 7 * k, NPAGES * (k + 1));
        b->mirror_daemon = k;
        b->page_size = k == 2 ? 2u << 20 : DMCE_BK_PAGE;
        for (uint32_t n = 0; n <= k; n++) {
            dmce_bk_file_t f = {.generation = 10 * k + n + 1,
                                .kind = n ? DMCE_BK_DELTA : DMCE_BK_FULL,
                                .records = 5 * n + k,
                                .bytes = 100000u * k + 1000u * n + 288u};
            n ? chain_push(b, &f) : chain_start(b, &f);
        }
    }
    t->nsessions = 2;
    t->sessions = calloc(2, sizeof(*t->sessions));
    assert_non_null(t->sessions);
    for (uint32_t i = 0; i < 2; i++) {
        t->sessions[i].id = 17 + i;
        t->sessions[i].uid = 1000 + i;
        t->sessions[i].reserved = (64ull << 20) * (i + 1);
        for (uint32_t j = 0; j < DMCE_BK_TOKEN_LEN; j++)
            t->sessions[i].token[j] = (uint8_t)(0xa0 + 16 * i + j);
    }
}

static void assert_tables_equal(const dmce_bk_table_t *a, const dmce_bk_table_t *b)
{
    assert_string_equal(a->cluster, b->cluster);
    assert_int_equal(a->daemon, b->daemon);
    assert_int_equal(a->layout, b->layout);
    assert_int_equal(a->block_first, b->block_first);
    assert_int_equal(a->block_count, b->block_count);
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->nblocks, b->nblocks);
    assert_int_equal(a->nsessions, b->nsessions);
    for (uint32_t i = 0; i < a->nblocks; i++) {
        const dmce_bk_block_t *x = &a->blocks[i], *y = &b->blocks[i];
        assert_int_equal(x->block, y->block);
        assert_int_equal(x->mirror_daemon, y->mirror_daemon);
        assert_int_equal(x->page_size, y->page_size);
        assert_int_equal(x->pages, y->pages);
        assert_int_equal(x->size, y->size);
        assert_int_equal(x->time_ns, y->time_ns);
        assert_int_equal(x->took_us, y->took_us);
        assert_int_equal(x->nfiles, y->nfiles);
        for (uint32_t k = 0; k < x->nfiles; k++) {
            assert_int_equal(x->files[k].generation, y->files[k].generation);
            assert_int_equal(x->files[k].kind, y->files[k].kind);
            assert_int_equal(x->files[k].records, y->files[k].records);
            assert_int_equal(x->files[k].bytes, y->files[k].bytes);
        }
    }
    for (uint32_t i = 0; i < a->nsessions; i++) {
        assert_int_equal(a->sessions[i].id, b->sessions[i].id);
        assert_int_equal(a->sessions[i].uid, b->sessions[i].uid);
        assert_int_equal(a->sessions[i].reserved, b->sessions[i].reserved);
        assert_memory_equal(a->sessions[i].token, b->sessions[i].token, DMCE_BK_TOKEN_LEN);
    }
}

static void test_table_round_trip_and_atomic_save(void **state)
{
    struct fx *fx = *state;
    dmce_bk_table_t *t = &fx->t[0], *u = &fx->t[1];
    char why[WHY] = "";

    /* No table yet: an empty set. */
    u->nblocks = 99; /* load clears it */
    assert_int_equal(dmce_bk_table_load(fx->dir, u, why, sizeof(why)), -ENOENT);
    assert_int_equal(u->nblocks, 0);
    assert_null(u->blocks);

    make_table(t);
    t->generation = 41;
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    assert_int_equal(t->generation, 42);
    assert_int_equal(count_entries(fx->dir), 1); /* "table", no temporary */
    assert_true(exists(fx, "table"));
    char p[256];
    path_of(fx, "table", p, sizeof(p));
    assert_int_equal(file_size(p), TABLE_HDR + 3 * TABLE_BLOCK + 2 * TABLE_SESSION + 8);

    assert_int_equal(dmce_bk_table_load(fx->dir, u, why, sizeof(why)), 0);
    assert_tables_equal(t, u);
    assert_ptr_equal(dmce_bk_table_find(u, 107), &u->blocks[1]);
    assert_null(dmce_bk_table_find(u, 108));

    /* Save again (a block more, a session less): the generation moves on, the new one wins. */
    dmce_bk_file_t f = {.generation = 1, .kind = DMCE_BK_FULL, .records = 1, .bytes = 4400};
    chain_start(table_add(t, 150, 16), &f);
    t->nsessions = 1;
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    assert_int_equal(t->generation, 43);
    assert_int_equal(count_entries(fx->dir), 1);
    dmce_bk_table_free(u);
    assert_int_equal(dmce_bk_table_load(fx->dir, u, why, sizeof(why)), 0);
    assert_int_equal(u->generation, 43);
    assert_int_equal(u->nblocks, 4);
    assert_int_equal(u->nsessions, 1);
    assert_tables_equal(t, u);

    /* A stale temporary of a crashed save is replaced; the saved table stands. */
    touch(fx, ".table.tmp");
    assert_int_equal(dmce_bk_table_save(fx->dir, u), 0);
    assert_int_equal(u->generation, 44);
    assert_int_equal(count_entries(fx->dir), 1);

    /* A table of nothing. */
    table_init(t);
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    dmce_bk_table_free(u);
    assert_int_equal(dmce_bk_table_load(fx->dir, u, why, sizeof(why)), 0);
    assert_int_equal(u->nblocks, 0);
    assert_int_equal(u->nsessions, 0);
    assert_int_equal(u->generation, 1);
    assert_string_equal(u->cluster, CLUSTER);

    /* A save into a directory that is not there fails and leaves nothing. */
    char missing[256];
    path_of(fx, "gone", missing, sizeof(missing));
    assert_int_equal(dmce_bk_table_save(missing, t), -ENOENT);
}

/* Load the table after replacing its bytes. After a refusal the loaded table is empty. */
static int load_bytes(struct fx *fx, const uint8_t *b, size_t len, char *why)
{
    char p[256];
    path_of(fx, "table", p, sizeof(p));
    spit(p, b, len);
    why[0] = 0;
    dmce_bk_table_t *u = &fx->t[1];
    dmce_bk_table_free(u);
    int r = dmce_bk_table_load(fx->dir, u, why, WHY);
    if (r < 0) {
        assert_int_equal(u->nblocks, 0);
        assert_int_equal(u->nsessions, 0);
        assert_null(u->blocks);
        assert_null(u->sessions);
    }
    return r;
}

static void expect_table_refused(struct fx *fx, const uint8_t *b, size_t len, int want,
                                 const char *what, const char *label)
{
    char why[WHY];
    int r = load_bytes(fx, b, len, why);
    if (r != want)
        fail_msg("%s: got %s (%d), expected %s; why \"%s\"", label, dmce_err_name(r), r,
                 dmce_err_name(want), why);
    if (what && !strstr(why, what))
        fail_msg("%s: why \"%s\" does not say \"%s\"", label, why, what);
    if (!strstr(why, "table"))
        fail_msg("%s: why \"%s\" does not name the table", label, why);
}

static void fix_table_sum(uint8_t *b, size_t len)
{
    put_le64(b + len - 8, dmce_bk_hash(b, len - 8));
}

static void test_table_refusals(void **state)
{
    struct fx *fx = *state;
    dmce_bk_table_t *t = &fx->t[0];
    make_table(t);
    assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
    char p[256], label[64];
    path_of(fx, "table", p, sizeof(p));
    size_t len;
    uint8_t *orig = slurp(fx, p, &len);
    uint8_t *b = zalloc(fx, len + 64);
    char why[WHY];

    /* Every byte flipped: the magic, the version, else the checksum. */
    for (size_t i = 0; i < len; i++) {
        memcpy(b, orig, len);
        b[i] ^= (uint8_t)(1u << (i % 8));
        snprintf(label, sizeof(label), "table byte %zu", i);
        if (i < 8)
            expect_table_refused(fx, b, len, DMCE_EBADMAGIC, "bad magic", label);
        else if (i < 12)
            expect_table_refused(fx, b, len, DMCE_EVERSION, "version", label);
        else
            expect_table_refused(fx, b, len, DMCE_ECORRUPT, "checksum", label);
    }

    /* Truncated anywhere, or grown. */
    const size_t cuts[] = {
        0, 7, 8, 100, TABLE_HDR, TABLE_HDR + 8, TABLE_HDR + TABLE_BLOCK, len - 8, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        snprintf(label, sizeof(label), "table cut at %zu", cuts[i]);
        expect_table_refused(fx, orig, cuts[i], DMCE_ECORRUPT, p, label);
    }
    memcpy(b, orig, len);
    memset(b + len, 0, 8);
    expect_table_refused(fx, b, len + 8, DMCE_ECORRUPT, p, "8 bytes appended");
    /* a session's bytes appended, checksum fixed at the new end: the size is not the counts' */
    memcpy(b, orig, len - 8);
    memset(b + len - 8, 0x11, TABLE_SESSION);
    fix_table_sum(b, len + TABLE_SESSION);
    expect_table_refused(fx, b, len + TABLE_SESSION, DMCE_ECORRUPT, "inconsistent",
                         "extra session");

    /* Bad magic. */
    memcpy(b, orig, len);
    memcpy(b, "DMCEBKF1", 8); /* a block file's magic is not a table's */
    expect_table_refused(fx, b, len, DMCE_EBADMAGIC, p, "file magic");

    /* Another version, checksum fixed. */
    memcpy(b, orig, len);
    put_le32(b + 8, 2);
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_EVERSION, "version 2", "version 2");

    /* Impossible contents under a valid checksum. */
    memcpy(b, orig, len);
    put_le32(b + 104, 4); /* nblocks */
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "inconsistent", "nblocks 4");
    memcpy(b, orig, len);
    memset(b + 16, 'x', DMCE_BK_CLUSTER_MAX + 1); /* a cluster name without its NUL */
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "inconsistent", "cluster");
    memcpy(b, orig, len);
    b[16 + 10] = 'z'; /* garbage after the name's NUL */
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "inconsistent", "cluster tail");
    memcpy(b, orig, len);
    put_le32(b + TABLE_HDR + TABLE_BLOCK, 100); /* block 107 renamed 100: twice */
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "twice", "duplicate block");
    memcpy(b, orig, len);
    put_le32(b + TABLE_HDR + 40, 0); /* block 100: nfiles 0 */
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "block 100", "nfiles 0");
    memcpy(b, orig, len);
    /* block 114 (3 files): the first two swapped, out of order */
    uint8_t *files = b + TABLE_HDR + 2 * TABLE_BLOCK + 48, tmp[24];
    memcpy(tmp, files, 24);
    memcpy(files, files + 24, 24);
    memcpy(files + 24, tmp, 24);
    fix_table_sum(b, len);
    expect_table_refused(fx, b, len, DMCE_ECORRUPT, "block 114", "files out of order");

    /* The table as it was still loads: refusals changed nothing. */
    assert_int_equal(load_bytes(fx, orig, len, why), 0);
    assert_tables_equal(t, &fx->t[1]);

    /* No table. */
    assert_int_equal(unlink(p), 0);
    dmce_bk_table_free(&fx->t[1]);
    assert_int_equal(dmce_bk_table_load(fx->dir, &fx->t[1], why, sizeof(why)), -ENOENT);
}

/* ---- removal of files the table does not name ---------------------------------------------- */

static void test_remove_unnamed(void **state)
{
    struct fx *fx = *state;
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 7, NPAGES);
    dmce_bk_file_t f3 = {.generation = 3, .kind = DMCE_BK_FULL, .records = 1, .bytes = 1};
    dmce_bk_file_t f4 = {.generation = 4, .kind = DMCE_BK_DELTA, .records = 1, .bytes = 1};
    chain_start(b, &f3);
    chain_push(b, &f4);
    b = table_add(t, 8, NPAGES);
    dmce_bk_file_t f1 = {.generation = 1, .kind = DMCE_BK_FULL, .records = 1, .bytes = 1};
    chain_start(b, &f1);

    const char *stay[] = {"b7.3.full", "b7.4.delta", "b8.1.full", "table", "notes.txt",
                          "b7.3.full.bak", "b7.3.tar", ".hidden", "b7", "c7.1.full",
                          "b7.3.full.tmp" /* not a temporary this module writes (no dot) */};
    const char *gone[] = {"b7.1.full",  "b7.2.full",      "b7.2.delta",      "b7.4.full",
                          "b7.5.delta", ".b7.3.full.tmp", ".b7.5.delta.tmp", "b9.1.full",
                          "b9.2.delta", "b8.2.delta",     ".b8.1.full.tmp",  ".b9.1.full.tmp"};
    const size_t nstay = sizeof(stay) / sizeof(stay[0]), ngone = sizeof(gone) / sizeof(gone[0]);
    for (size_t i = 0; i < nstay; i++)
        touch(fx, stay[i]);
    for (size_t i = 0; i < ngone; i++)
        touch(fx, gone[i]);
    assert_int_equal(dmce_bk_remove_unnamed(fx->dir, t), (int)ngone);
    for (size_t i = 0; i < nstay; i++)
        if (!exists(fx, stay[i]))
            fail_msg("%s was removed", stay[i]);
    for (size_t i = 0; i < ngone; i++)
        if (exists(fx, gone[i]))
            fail_msg("%s was kept", gone[i]);
    assert_int_equal(count_entries(fx->dir), (int)nstay);
    /* Nothing more to remove. */
    assert_int_equal(dmce_bk_remove_unnamed(fx->dir, t), 0);

    /* An empty table: every block file goes, the rest stays. */
    table_init(&fx->t[1]);
    assert_int_equal(dmce_bk_remove_unnamed(fx->dir, &fx->t[1]), 3);
    assert_false(exists(fx, "b7.3.full"));
    assert_true(exists(fx, "notes.txt"));
    assert_int_equal(count_entries(fx->dir), (int)nstay - 3);

    char missing[256];
    path_of(fx, "gone", missing, sizeof(missing));
    assert_int_equal(dmce_bk_remove_unnamed(missing, t), -ENOENT);
}

/* ---- verify: a real allocator block -------------------------------------------------------- */

static void test_verify_block(void **state)
{
    struct fx *fx = *state;
    uint8_t *good = zalloc(fx, BSIZE), *bad = zalloc(fx, BSIZE), *junk = zalloc(fx, BSIZE);

    /* Block 5: formatted, a few allocations of two owners, data written. */
    assert_int_equal(dmce_block_format(good, BSIZE, 64, DMCE_BK_PAGE, 5, 0), 0);
    uint64_t off[6];
    const uint64_t sizes[6] = {100, 5000, 64, 70000, 1, 300000};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(dmce_alloc(good, sizes[i], 1 + (uint32_t)(i % 2), &off[i]), 0);
        memset(good + off[i], 0x30 + i, sizes[i]);
    }
    assert_int_equal(dmce_alloc_free(good, off[2], NULL, NULL), 0);
    assert_int_equal(dmce_block_verify(good), 0);

    /* Block 6: the same, then one word of its granule map changed (a free granule marked HEAD). */
    memcpy(bad, good, BSIZE);
    const dmce_block_hdr_t *bh = (const dmce_block_hdr_t *)bad;
    uint32_t *map = (uint32_t *)(bad + bh->map_offset);
    uint32_t g = (uint32_t)((off[5] + sizes[5] - bh->data_offset) / bh->granule) + 50;
    assert_true(g < bh->ngranules);
    assert_int_equal(map[g], 0); /* free interior */
    map[g] = 0x80000000u | 1;
    assert_int_equal(dmce_block_verify(bad), DMCE_ECORRUPT);

    /* Block 9: bytes that are not a block at all. */
    fill_pattern(junk, NPAGES, 77, 2);

    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_file_t f;
    write_full(fx, 5, NPAGES, 1, good, &f);
    chain_start(table_add(t, 5, NPAGES), &f);
    write_full(fx, 6, NPAGES, 1, bad, &f);
    chain_start(table_add(t, 6, NPAGES), &f);
    write_full(fx, 9, NPAGES, 1, junk, &f);
    chain_start(table_add(t, 9, NPAGES), &f);

    char why[WHY] = "x";
    int r = dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 5), why, sizeof(why));
    if (r)
        fail_msg("block 5: %s (%d): %s", dmce_err_name(r), r, why);
    assert_string_equal(why, "");

    r = dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 6), why, sizeof(why));
    assert_int_equal(r, DMCE_ECORRUPT);
    assert_contains(why, "block 6");
    assert_contains(why, "allocator state is inconsistent");

    r = dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 9), why, sizeof(why));
    assert_int_equal(r, DMCE_EBADMAGIC);
    assert_contains(why, "block 9");
    assert_contains(why, "not a block");

    /* A delta on block 5 that allocates more: still a block. */
    uint8_t *next = zalloc(fx, BSIZE);
    memcpy(next, good, BSIZE);
    uint64_t o;
    assert_int_equal(dmce_alloc(next, 12345, 3, &o), 0);
    memset(next + o, 0x77, 12345);
    assert_int_equal(dmce_alloc_free(next, off[0], NULL, NULL), 0);
    write_delta(fx, 5, NPAGES, 2, good, next, &f);
    chain_push(dmce_bk_table_find(t, 5), &f);
    assert_int_equal(dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 5), why, sizeof(why)),
                     0);

    /* A damaged file: the chain's error and message. */
    char p[256];
    path_of(fx, "b5.2.delta", p, sizeof(p));
    size_t len;
    uint8_t *bytes = slurp(fx, p, &len);
    flip_bit(p, HDR + REC + 17, bytes, 3);
    r = dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 5), why, sizeof(why));
    assert_int_equal(r, DMCE_ECORRUPT);
    assert_contains(why, p);
    poke(p, HDR + REC + 17, bytes + HDR + REC + 17, 1);
    assert_int_equal(dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 5), why, sizeof(why)),
                     0);
    /* A missing file. */
    assert_int_equal(unlink(p), 0);
    assert_int_equal(dmce_bk_verify_block(fx->dir, t, dmce_bk_table_find(t, 5), why, sizeof(why)),
                     -ENOENT);
    assert_contains(why, p);
}

/* ---- property: random rounds of changes, backed up as chains ------------------------------- */

static void mutate(uint8_t *buf, unsigned changes)
{
    for (unsigned c = 0; c < changes; c++) {
        uint32_t i = (uint32_t)(rnd() % NPAGES);
        uint8_t *p = page_of(buf, i);
        switch (rnd() % 4) {
        case 0: fill_page(p, rnd()); break;
        case 1: memset(p, 0, DMCE_BK_PAGE); break;
        case 2: p[rnd() % DMCE_BK_PAGE] ^= (uint8_t)(1u << (rnd() % 8)); break;
        default: {
            uint64_t v = rnd();
            memcpy(p + (rnd() % (DMCE_BK_PAGE / 8)) * 8, &v, 8);
            break;
        }
        }
    }
}

static void test_property_random_rounds(void **state)
{
    struct fx *fx = *state;
    rng_state = 0x0123456789abcdefull;
    uint8_t *cur = zalloc(fx, BSIZE), *prev = zalloc(fx, BSIZE), *out = zalloc(fx, BSIZE);
    uint8_t *mid = zalloc(fx, BSIZE);
    uint64_t *hashes = zalloc(fx, NPAGES * sizeof(uint64_t));
    dmce_bk_table_t *t = &fx->t[0];
    table_init(t);
    dmce_bk_block_t *b = table_add(t, 3, NPAGES);
    fill_pattern(cur, NPAGES, 5, 2);
    uint64_t gen = 0;
    unsigned passes = 0, fulls = 0;

    for (unsigned round = 0; round < 200; round++) {
        mutate(cur, (unsigned)(rnd() % 9));
        dmce_bk_file_t f;
        gen++;
        if (round % 8 == 0) {
            write_full(fx, 3, NPAGES, gen, cur, &f);
            chain_start(b, &f);
            fulls++;
        } else if (rnd() % 4 == 0 && memcmp(prev, cur, BSIZE) != 0) {
            /* two passes: the pages changed since prev, then those changed during it */
            dmce_bk_file_hdr_t h = file_hdr(DMCE_BK_DELTA, 3, NPAGES, gen, gen - 1);
            dmce_bk_writer_t w;
            assert_int_equal(dmce_bk_writer_begin(&w, fx->dir, &h), 0);
            for (uint32_t i = 0; i < NPAGES; i++)
                if (memcmp(page_of(prev, i), page_of(cur, i), DMCE_BK_PAGE) != 0)
                    put_page(&w, i, page_of(cur, i));
            memcpy(mid, cur, BSIZE);
            mutate(cur, 1 + (unsigned)(rnd() % 3));
            assert_int_equal(dmce_bk_writer_pass(&w), 0);
            for (uint32_t i = 0; i < NPAGES; i++)
                if (memcmp(page_of(mid, i), page_of(cur, i), DMCE_BK_PAGE) != 0)
                    put_page(&w, i, page_of(cur, i));
            assert_int_equal(dmce_bk_writer_commit(&w, &f), 0);
            chain_push(b, &f);
            passes++;
        } else {
            write_delta(fx, 3, NPAGES, gen, prev, cur, &f);
            chain_push(b, &f);
        }
        memcpy(prev, cur, BSIZE);

        assert_applies(fx, t, b, cur, out, hashes);
        /* Only the chain's files stay. */
        dmce_bk_remove_unnamed(fx->dir, t);
        assert_int_equal(count_entries(fx->dir), (int)b->nfiles + (round >= 8));
        if (round % 8 == 7) {
            assert_int_equal(dmce_bk_table_save(fx->dir, t), 0);
            char why[WHY];
            dmce_bk_table_free(&fx->t[1]);
            assert_int_equal(dmce_bk_table_load(fx->dir, &fx->t[1], why, sizeof(why)), 0);
            assert_tables_equal(t, &fx->t[1]);
            assert_applies(fx, &fx->t[1], &fx->t[1].blocks[0], cur, out, hashes);
        }
    }
    assert_int_equal(fulls, 25);
    assert_true(passes >= 10);
    assert_int_equal(t->generation, 25);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_full_round_trip),
        T(test_apply_fd_write_error),
        T(test_file_names),
        T(test_chain_full_and_deltas),
        T(test_progress_on_a_long_file),
        T(test_writer_refusals),
        T(test_writer_abort_removes_temporary),
        T(test_reader_refuses_truncated),
        T(test_reader_refuses_flipped_bits),
        T(test_reader_refuses_appended_magic_version_layout),
        T(test_reader_refuses_foreign_and_missing_files),
        T(test_reader_refuses_bad_table_entries),
        T(test_pass_after_empty_first_pass_applies),
        T(test_second_pass_may_exceed_page_count),
        T(test_table_round_trip_and_atomic_save),
        T(test_table_refusals),
        T(test_remove_unnamed),
        T(test_verify_block),
        T(test_property_random_rounds),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
