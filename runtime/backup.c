/*
 * backup.c - block backup files and the backup table on disk (backup.h).
 *
 * Invariants:
 *   - A file reaches its final name only complete and fsync()ed; the
 *     table reaches its name the same way, after the files it names. So
 *     the table on disk always names complete files.
 *   - Every byte read back is checked before it is trusted: the header
 *     and the trailer by their checksums, every page by its XXH3-64, the
 *     sequence of records by a hash over their headers (a record dropped,
 *     duplicated or reordered changes it), the file's length by the
 *     record count.
 *   - Readers stop at the first problem and say which file and what; the
 *     destination memory is then the caller's to discard.
 */
#include "backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include <dmce/error.h>

#include "alloc.h"
#include "hash.h"
#include "msmp.h"
#include "util.h"

#define FILE_MAGIC "DMCEBKF1"
#define TRAILER_MAGIC "DMCEBKT1"
#define TABLE_MAGIC "DMCEBKTB"
#define FORMAT_VERSION 1u
#define HDR_SIZE 256u
#define REC_SIZE 16u
#define TRAILER_SIZE 32u
#define TABLE_HDR_SIZE 128u
#define TABLE_FILE_SIZE 24u
#define TABLE_BLOCK_SIZE (48u + DMCE_BK_CHAIN_MAX * TABLE_FILE_SIZE)
#define TABLE_SESSION_SIZE 32u
#define REC_ZERO 0x1u
#define REC_PASS 0x2u
#define PASS_INDEX 0xffffffffu
#define IO_BUF (1u << 20)
/* More blocks or sessions than this in one table is not a table we wrote. */
#define TABLE_MAX_ENTRIES (1u << 20)

uint64_t dmce_bk_hash(const void *p, size_t len)
{
    return dmce_xxh3(p, len, 0); /* = XXH3_64bits: files of older builds still check */
}

static uint64_t zero_page_hash(void)
{
    static const uint8_t zero[DMCE_BK_PAGE];
    return dmce_bk_hash(zero, sizeof(zero));
}

/* fsync a directory: a rename in it is durable once this returns. */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Read exactly n bytes; -ENODATA when the file ends first. */
static int read_all(int fd, void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t k = read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -ENODATA;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Write buf to dir/name atomically: dir/.name.tmp, fsync, rename, fsync dir. */
static int write_atomic(const char *dir, const char *name, const void *buf, size_t len)
{
    char tmp[4096], final[4096];
    if (snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp) ||
        snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    int r = write_all(fd, buf, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, final) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_dir(dir);
}

static void put_str(uint8_t *out, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap - 1);
    memset(out, 0, cap);
    memcpy(out, s, n);
}

/* A fixed string field: NUL-terminated inside cap, zero after. */
static int get_str(const uint8_t *in, size_t cap, char *out)
{
    const uint8_t *z = memchr(in, 0, cap);
    if (!z)
        return -1;
    for (const uint8_t *p = z; p < in + cap; p++)
        if (*p)
            return -1;
    memcpy(out, in, (size_t)(z - in) + 1);
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------ */

void dmce_bk_table_free(dmce_bk_table_t *t)
{
    free(t->blocks);
    free(t->sessions);
    t->blocks = NULL;
    t->sessions = NULL;
    t->nblocks = t->nsessions = 0;
}

dmce_bk_block_t *dmce_bk_table_find(const dmce_bk_table_t *t, uint32_t id)
{
    for (uint32_t i = 0; i < t->nblocks; i++)
        if (t->blocks[i].block == id)
            return &t->blocks[i];
    return NULL;
}

static size_t table_bytes(const dmce_bk_table_t *t)
{
    return TABLE_HDR_SIZE + (size_t)t->nblocks * TABLE_BLOCK_SIZE +
           (size_t)t->nsessions * TABLE_SESSION_SIZE + 8;
}

int dmce_bk_table_save(const char *dir, dmce_bk_table_t *t)
{
    size_t len = table_bytes(t);
    uint8_t *buf = calloc(1, len);
    if (!buf)
        return -ENOMEM;
    t->generation++;
    memcpy(buf, TABLE_MAGIC, 8);
    dmce_put_le32(buf + 8, FORMAT_VERSION);
    put_str(buf + 16, t->cluster, DMCE_BK_CLUSTER_MAX + 1);
    dmce_put_le32(buf + 80, t->daemon);
    dmce_put_le32(buf + 84, t->layout);
    dmce_put_le32(buf + 88, t->block_first);
    dmce_put_le32(buf + 92, t->block_count);
    dmce_put_le64(buf + 96, t->generation);
    dmce_put_le32(buf + 104, t->nblocks);
    dmce_put_le32(buf + 108, t->nsessions);
    uint8_t *p = buf + TABLE_HDR_SIZE;
    for (uint32_t i = 0; i < t->nblocks; i++, p += TABLE_BLOCK_SIZE) {
        const dmce_bk_block_t *b = &t->blocks[i];
        dmce_put_le32(p, b->block);
        dmce_put_le32(p + 4, b->mirror_daemon);
        dmce_put_le32(p + 8, b->page_size);
        dmce_put_le32(p + 12, b->pages);
        dmce_put_le64(p + 16, b->size);
        dmce_put_le64(p + 24, b->time_ns);
        dmce_put_le64(p + 32, b->took_us);
        dmce_put_le32(p + 40, b->nfiles);
        for (uint32_t k = 0; k < b->nfiles && k < DMCE_BK_CHAIN_MAX; k++) {
            uint8_t *f = p + 48 + k * TABLE_FILE_SIZE;
            dmce_put_le64(f, b->files[k].generation);
            dmce_put_le32(f + 8, b->files[k].kind);
            dmce_put_le32(f + 12, b->files[k].records);
            dmce_put_le64(f + 16, b->files[k].bytes);
        }
    }
    for (uint32_t i = 0; i < t->nsessions; i++, p += TABLE_SESSION_SIZE) {
        const dmce_bk_session_t *s = &t->sessions[i];
        dmce_put_le32(p, s->id);
        dmce_put_le32(p + 4, s->uid);
        dmce_put_le64(p + 8, s->reserved);
        memcpy(p + 16, s->token, DMCE_BK_TOKEN_LEN);
    }
    dmce_put_le64(p, dmce_bk_hash(buf, len - 8));
    int r = write_atomic(dir, "table", buf, len);
    free(buf);
    return r;
}

/* The checks a table entry must pass; a message in why otherwise. */
static int block_entry_ok(const dmce_bk_block_t *b, char *why, size_t whylen)
{
    if (b->block == 0 || b->size == 0 || b->size % DMCE_BK_PAGE ||
        b->pages != b->size / DMCE_BK_PAGE || b->nfiles == 0 || b->nfiles > DMCE_BK_CHAIN_MAX) {
        dmce_msgf(why, whylen, "table entry of block %u has impossible values", b->block);
        return DMCE_ECORRUPT;
    }
    for (uint32_t k = 0; k < b->nfiles; k++) {
        const dmce_bk_file_t *f = &b->files[k];
        uint32_t want = k == 0 ? DMCE_BK_FULL : DMCE_BK_DELTA;
        if (f->kind != want || f->generation == 0 ||
            (k > 0 && f->generation != b->files[k - 1].generation + 1) ||
            (uint64_t)f->records * REC_SIZE > f->bytes ||
            f->bytes < HDR_SIZE + TRAILER_SIZE + (uint64_t)f->records * REC_SIZE) {
            dmce_msgf(why, whylen, "table entry of block %u: its chain of files is not valid",
                      b->block);
            return DMCE_ECORRUPT;
        }
    }
    return 0;
}

int dmce_bk_table_load(const char *dir, dmce_bk_table_t *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof(*t));
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/table", dir) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int r = -errno;
        if (r != -ENOENT)
            dmce_msgf(why, whylen, "%s: %s", path, strerror(-r));
        return r;
    }
    struct stat st;
    uint8_t *buf = NULL;
    int r = fstat(fd, &st) < 0 ? -errno : 0;
    if (r == 0 && (st.st_size < (off_t)(TABLE_HDR_SIZE + 8) ||
                   st.st_size > (off_t)(TABLE_HDR_SIZE + 8 +
                                        (uint64_t)TABLE_MAX_ENTRIES *
                                            (TABLE_BLOCK_SIZE + TABLE_SESSION_SIZE)))) {
        dmce_msgf(why, whylen, "%s: %lld bytes is not the size of a backup table", path,
                  (long long)st.st_size);
        r = DMCE_ECORRUPT;
    }
    if (r == 0 && !(buf = malloc((size_t)st.st_size)))
        r = -ENOMEM;
    if (r == 0 && (r = read_all(fd, buf, (size_t)st.st_size)) < 0)
        dmce_msgf(why, whylen, "%s: cannot read it: %s", path, strerror(r == -ENODATA ? EIO : -r));
    close(fd);
    if (r < 0) {
        free(buf);
        return r == -ENODATA ? DMCE_ECORRUPT : r;
    }
    size_t len = (size_t)st.st_size;
    if (memcmp(buf, TABLE_MAGIC, 8) != 0) {
        dmce_msgf(why, whylen, "%s: not a dmce backup table (bad magic)", path);
        r = DMCE_EBADMAGIC;
    } else if (dmce_get_le32(buf + 8) != FORMAT_VERSION) {
        dmce_msgf(why, whylen, "%s: backup table version %u; this build reads version %u", path,
                  dmce_get_le32(buf + 8), FORMAT_VERSION);
        r = DMCE_EVERSION;
    } else if (dmce_get_le64(buf + len - 8) != dmce_bk_hash(buf, len - 8)) {
        dmce_msgf(why, whylen, "%s: checksum mismatch: the table is damaged", path);
        r = DMCE_ECORRUPT;
    }
    if (r == 0) {
        t->daemon = dmce_get_le32(buf + 80);
        t->layout = dmce_get_le32(buf + 84);
        t->block_first = dmce_get_le32(buf + 88);
        t->block_count = dmce_get_le32(buf + 92);
        t->generation = dmce_get_le64(buf + 96);
        t->nblocks = dmce_get_le32(buf + 104);
        t->nsessions = dmce_get_le32(buf + 108);
        if (get_str(buf + 16, DMCE_BK_CLUSTER_MAX + 1, t->cluster) < 0 ||
            t->nblocks > TABLE_MAX_ENTRIES || t->nsessions > TABLE_MAX_ENTRIES ||
            len != table_bytes(t)) {
            dmce_msgf(why, whylen, "%s: inconsistent header", path);
            r = DMCE_ECORRUPT;
            t->nblocks = t->nsessions = 0;
        }
    }
    if (r == 0 && ((t->nblocks && !(t->blocks = calloc(t->nblocks, sizeof(*t->blocks)))) ||
                   (t->nsessions && !(t->sessions = calloc(t->nsessions, sizeof(*t->sessions))))))
        r = -ENOMEM;
    const uint8_t *p = buf + TABLE_HDR_SIZE;
    for (uint32_t i = 0; r == 0 && i < t->nblocks; i++, p += TABLE_BLOCK_SIZE) {
        dmce_bk_block_t *b = &t->blocks[i];
        b->block = dmce_get_le32(p);
        b->mirror_daemon = dmce_get_le32(p + 4);
        b->page_size = dmce_get_le32(p + 8);
        b->pages = dmce_get_le32(p + 12);
        b->size = dmce_get_le64(p + 16);
        b->time_ns = dmce_get_le64(p + 24);
        b->took_us = dmce_get_le64(p + 32);
        b->nfiles = dmce_get_le32(p + 40);
        for (uint32_t k = 0; k < b->nfiles && k < DMCE_BK_CHAIN_MAX; k++) {
            const uint8_t *f = p + 48 + k * TABLE_FILE_SIZE;
            b->files[k].generation = dmce_get_le64(f);
            b->files[k].kind = dmce_get_le32(f + 8);
            b->files[k].records = dmce_get_le32(f + 12);
            b->files[k].bytes = dmce_get_le64(f + 16);
        }
        r = block_entry_ok(b, why, whylen);
        if (r < 0 && why && whylen) { /* name the table too */
            char w[512];
            dmce_msgf(w, sizeof(w), "%s", why);
            dmce_msgf(why, whylen, "%s: %s", path, w);
        }
        for (uint32_t k = 0; r == 0 && k < i; k++)
            if (t->blocks[k].block == b->block) {
                dmce_msgf(why, whylen, "%s: block %u appears twice", path, b->block);
                r = DMCE_ECORRUPT;
            }
    }
    for (uint32_t i = 0; r == 0 && i < t->nsessions; i++, p += TABLE_SESSION_SIZE) {
        dmce_bk_session_t *s = &t->sessions[i];
        s->id = dmce_get_le32(p);
        s->uid = dmce_get_le32(p + 4);
        s->reserved = dmce_get_le64(p + 8);
        memcpy(s->token, p + 16, DMCE_BK_TOKEN_LEN);
    }
    free(buf);
    if (r < 0)
        dmce_bk_table_free(t);
    return r;
}

void dmce_bk_file_name(const char *dir, uint32_t block, const dmce_bk_file_t *f, char *out,
                       size_t cap)
{
    snprintf(out, cap, "%s/b%u.%llu.%s", dir, block, (unsigned long long)f->generation,
             f->kind == DMCE_BK_FULL ? "full" : "delta");
}

/* Decimal digits with no leading zero, up to max, then `end`; advances *s. */
static int parse_num(const char **s, uint64_t max, char end, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '1' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (max - (uint64_t)(*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (*p != end)
        return -1;
    *s = p + 1;
    *out = v;
    return 0;
}

/* A name this module writes, exactly: b<ID>.<GEN>.full|delta, or that with "." before and ".tmp"
 * after. */
static int block_file_name_parse(const char *name, uint32_t *block, dmce_bk_file_t *f, int *tmp)
{
    uint64_t blk, gen;
    *tmp = name[0] == '.';
    const char *p = name + *tmp;
    if (*p++ != 'b' || parse_num(&p, UINT32_MAX, '.', &blk) < 0 ||
        parse_num(&p, UINT64_MAX, '.', &gen) < 0)
        return -1;
    size_t n = strncmp(p, "full", 4) == 0 ? 4 : strncmp(p, "delta", 5) == 0 ? 5 : 0;
    if (!n || strcmp(p + n, *tmp ? ".tmp" : "") != 0)
        return -1;
    f->kind = n == 4 ? DMCE_BK_FULL : DMCE_BK_DELTA;
    *block = (uint32_t)blk;
    f->generation = gen;
    return 0;
}

int dmce_bk_remove_unnamed(const char *dir, const dmce_bk_table_t *t)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint32_t block;
        dmce_bk_file_t f;
        int tmp, named = 0;
        if (block_file_name_parse(e->d_name, &block, &f, &tmp) < 0)
            continue;
        const dmce_bk_block_t *b = tmp ? NULL : dmce_bk_table_find(t, block);
        for (uint32_t k = 0; b && k < b->nfiles; k++)
            named |= b->files[k].generation == f.generation && b->files[k].kind == f.kind;
        if (named)
            continue;
        char path[4096];
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path) &&
            unlink(path) == 0)
            removed++;
    }
    closedir(d);
    return removed;
}

/* ---- writing a file ------------------------------------------------------------------------ */

static void hdr_encode(const dmce_bk_file_hdr_t *h, uint8_t *out)
{
    memset(out, 0, HDR_SIZE);
    memcpy(out, FILE_MAGIC, 8);
    dmce_put_le32(out + 8, FORMAT_VERSION);
    dmce_put_le32(out + 12, h->kind);
    put_str(out + 16, h->cluster, DMCE_BK_CLUSTER_MAX + 1);
    dmce_put_le32(out + 80, h->daemon);
    dmce_put_le32(out + 84, h->block);
    dmce_put_le32(out + 88, h->layout);
    dmce_put_le32(out + 92, h->page_size);
    dmce_put_le32(out + 96, h->pages);
    dmce_put_le32(out + 100, DMCE_BK_PAGE);
    dmce_put_le64(out + 104, h->size);
    dmce_put_le64(out + 112, h->generation);
    dmce_put_le64(out + 120, h->base_generation);
    dmce_put_le64(out + 128, h->time_ns);
    dmce_put_le32(out + 136, DMCE_BLOCK_LAYOUT_WORD);
    dmce_put_le64(out + HDR_SIZE - 8, dmce_bk_hash(out, HDR_SIZE - 8));
}

/* Decode and check a header: magic, version, checksum, sane geometry. */
static int hdr_decode(const uint8_t *in, dmce_bk_file_hdr_t *h, const char *path, char *why,
                      size_t whylen)
{
    if (memcmp(in, FILE_MAGIC, 8) != 0) {
        dmce_msgf(why, whylen, "%s: not a dmce backup file (bad magic)", path);
        return DMCE_EBADMAGIC;
    }
    if (dmce_get_le32(in + 8) != FORMAT_VERSION) {
        dmce_msgf(why, whylen, "%s: backup file version %u; this build reads version %u", path,
                  dmce_get_le32(in + 8), FORMAT_VERSION);
        return DMCE_EVERSION;
    }
    if (dmce_get_le64(in + HDR_SIZE - 8) != dmce_bk_hash(in, HDR_SIZE - 8)) {
        dmce_msgf(why, whylen, "%s: header checksum mismatch: the file is damaged", path);
        return DMCE_ECORRUPT;
    }
    h->kind = dmce_get_le32(in + 12);
    h->daemon = dmce_get_le32(in + 80);
    h->block = dmce_get_le32(in + 84);
    h->layout = dmce_get_le32(in + 88);
    h->page_size = dmce_get_le32(in + 92);
    h->pages = dmce_get_le32(in + 96);
    h->size = dmce_get_le64(in + 104);
    h->generation = dmce_get_le64(in + 112);
    h->base_generation = dmce_get_le64(in + 120);
    h->time_ns = dmce_get_le64(in + 128);
    if (get_str(in + 16, DMCE_BK_CLUSTER_MAX + 1, h->cluster) < 0 ||
        dmce_get_le32(in + 100) != DMCE_BK_PAGE ||
        dmce_get_le32(in + 136) != DMCE_BLOCK_LAYOUT_WORD) {
        dmce_msgf(why, whylen, "%s: written by a build with another block format", path);
        return DMCE_ELAYOUT;
    }
    return 0;
}

int dmce_bk_writer_begin(dmce_bk_writer_t *w, const char *dir, const dmce_bk_file_hdr_t *h)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    dmce_bk_file_t f = {.generation = h->generation, .kind = h->kind};
    char name[4096];
    dmce_bk_file_name(dir, h->block, &f, w->final, sizeof(w->final));
    const char *base = strrchr(w->final, '/');
    snprintf(name, sizeof(name), "%s", base ? base + 1 : w->final);
    if (snprintf(w->tmp, sizeof(w->tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(w->tmp) ||
        snprintf(w->dir, sizeof(w->dir), "%s", dir) >= (int)sizeof(w->dir))
        return -ENAMETOOLONG;
    w->h = *h;
    w->buf = malloc(IO_BUF);
    w->rec_hash = XXH3_createState();
    if (!w->buf || !w->rec_hash) {
        dmce_bk_writer_abort(w);
        return -ENOMEM;
    }
    XXH3_64bits_reset(w->rec_hash);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (w->fd < 0) {
        int r = -errno;
        dmce_bk_writer_abort(w);
        return r;
    }
    hdr_encode(h, w->buf);
    w->buf_len = HDR_SIZE;
    return 0;
}

static int writer_flush(dmce_bk_writer_t *w)
{
    int r = write_all(w->fd, w->buf, w->buf_len);
    w->bytes += w->buf_len;
    w->buf_len = 0;
    return r;
}

static int writer_put(dmce_bk_writer_t *w, const void *p, size_t n)
{
    if (w->buf_len + n > IO_BUF) {
        int r = writer_flush(w);
        if (r < 0)
            return r;
    }
    memcpy(w->buf + w->buf_len, p, n);
    w->buf_len += n;
    return 0;
}

int dmce_bk_writer_page(dmce_bk_writer_t *w, uint32_t index, const void *page, uint64_t hash)
{
    if (index >= w->h.pages || (w->in_pass && index <= w->last_index))
        return -EINVAL;
    uint8_t rec[REC_SIZE];
    dmce_put_le32(rec, index);
    dmce_put_le32(rec + 4, page ? 0 : REC_ZERO);
    dmce_put_le64(rec + 8, hash);
    XXH3_64bits_update(w->rec_hash, rec, sizeof(rec));
    int r = writer_put(w, rec, sizeof(rec));
    if (r == 0 && page)
        r = writer_put(w, page, DMCE_BK_PAGE);
    if (r == 0) {
        w->records++;
        w->in_pass++;
        w->last_index = index;
    }
    return r;
}

int dmce_bk_writer_pass(dmce_bk_writer_t *w)
{
    uint8_t rec[REC_SIZE];
    dmce_put_le32(rec, PASS_INDEX);
    dmce_put_le32(rec + 4, REC_PASS);
    dmce_put_le64(rec + 8, 0);
    XXH3_64bits_update(w->rec_hash, rec, sizeof(rec));
    int r = writer_put(w, rec, sizeof(rec));
    if (r == 0) {
        w->records++;
        w->in_pass = 0;
    }
    return r;
}

int dmce_bk_writer_commit(dmce_bk_writer_t *w, dmce_bk_file_t *f)
{
    uint8_t tr[TRAILER_SIZE];
    memcpy(tr, TRAILER_MAGIC, 8);
    dmce_put_le64(tr + 8, w->records);
    dmce_put_le64(tr + 16, XXH3_64bits_digest(w->rec_hash));
    dmce_put_le64(tr + 24, dmce_bk_hash(tr, 24));
    int r = writer_put(w, tr, sizeof(tr));
    if (r == 0)
        r = writer_flush(w);
    if (r == 0 && fsync(w->fd) < 0)
        r = -errno;
    if (close(w->fd) < 0 && r == 0)
        r = -errno;
    w->fd = -1;
    if (r == 0 && rename(w->tmp, w->final) < 0)
        r = -errno;
    if (r == 0)
        r = fsync_dir(w->dir);
    if (r < 0) {
        dmce_bk_writer_abort(w);
        return r;
    }
    w->tmp[0] = 0; /* renamed: nothing to remove */
    if (f) {
        f->generation = w->h.generation;
        f->kind = w->h.kind;
        f->records = w->records;
        f->bytes = w->bytes;
    }
    dmce_bk_writer_abort(w);
    return 0;
}

void dmce_bk_writer_abort(dmce_bk_writer_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->tmp[0])
        unlink(w->tmp);
    w->tmp[0] = 0;
    free(w->buf);
    w->buf = NULL;
    if (w->rec_hash)
        XXH3_freeState(w->rec_hash);
    w->rec_hash = NULL;
}

/* ---- reading -------------------------------------------------------------------------------- */

/* Buffered sequential reads of one file. */
struct reader {
    int fd;
    uint8_t *buf;
    size_t have, pos;
    uint64_t consumed;
};

static int rd_get(struct reader *rd, void *dst, size_t n)
{
    uint8_t *d = dst;
    while (n > 0) {
        if (rd->pos == rd->have) {
            if (n >= IO_BUF) { /* a large read goes straight to its destination */
                int r = read_all(rd->fd, d, n);
                if (r == 0)
                    rd->consumed += n;
                return r;
            }
            ssize_t k;
            do
                k = read(rd->fd, rd->buf, IO_BUF);
            while (k < 0 && errno == EINTR);
            if (k < 0)
                return -errno;
            if (k == 0)
                return -ENODATA;
            rd->have = (size_t)k;
            rd->pos = 0;
        }
        size_t take = DMCE_MIN(n, rd->have - rd->pos);
        memcpy(d, rd->buf + rd->pos, take);
        rd->pos += take;
        d += take;
        n -= take;
        rd->consumed += take;
    }
    return 0;
}

/* Whether the reader is at the end of its file. */
static int rd_at_end(struct reader *rd)
{
    uint8_t b;
    return rd_get(rd, &b, 1) == -ENODATA;
}

/*
 * Pages on their way to a block object through its descriptor: a run of
 * consecutive pages, written with one pwrite when it ends or fills the
 * buffer. Into an object whose pages are allocated (fallocate) but never
 * touched, a whole-page write costs the copy only: a store through a
 * mapping costs a fault, a cleared page and a page-table entry as well
 * (recovery into a fresh block: 1.3 GB/s through the mapping here).
 */
struct stage {
    int fd;         /* the object; -1: pages go straight to base */
    uint8_t *buf;   /* IO_BUF bytes */
    uint32_t first; /* the run's first page */
    uint32_t n;     /* pages in the run */
};

static int stage_flush(struct stage *st)
{
    size_t len = (size_t)st->n * DMCE_BK_PAGE, off = 0;
    while (off < len) {
        ssize_t w =
            pwrite(st->fd, st->buf + off, len - off, (off_t)st->first * DMCE_BK_PAGE + (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        off += (size_t)w;
    }
    st->n = 0;
    return 0;
}

/* Where page idx goes: the next slot of the run (flushing first if it cannot take it), or base. */
static int stage_slot(struct stage *st, uint8_t *base, uint32_t idx, uint8_t **dst)
{
    if (st->fd < 0) {
        *dst = base + (size_t)idx * DMCE_BK_PAGE;
        return 0;
    }
    if (st->n && (idx != st->first + st->n || st->n == IO_BUF / DMCE_BK_PAGE)) {
        int r = stage_flush(st);
        if (r < 0)
            return r;
    }
    if (!st->n)
        st->first = idx;
    *dst = st->buf + (size_t)st->n * DMCE_BK_PAGE;
    return 0;
}

/*
 * Apply one file of a chain. prev_gen: the generation before it (0 for
 * the full image). Pages go to base, or through st; hashes (if any) are
 * updated.
 */
static int apply_file(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                      const dmce_bk_file_t *f, uint64_t prev_gen, uint8_t *base, struct stage *st,
                      uint64_t *hashes, uint8_t *iobuf, void (*progress)(uint64_t, void *),
                      void *arg, uint64_t *done, char *why, size_t whylen)
{
    char path[4096];
    dmce_bk_file_name(dir, b->block, f, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int r = -errno;
        dmce_msgf(why, whylen, "%s: %s", path, strerror(errno));
        return r;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* read ahead: one pass, in order */
    struct reader rd = {.fd = fd, .buf = iobuf};
    uint8_t hb[HDR_SIZE];
    dmce_bk_file_hdr_t h;
    XXH3_state_t *rh = XXH3_createState();
    int r = rh ? 0 : -ENOMEM;
    if (r == 0 && (r = rd_get(&rd, hb, sizeof(hb))) == -ENODATA) {
        dmce_msgf(why, whylen, "%s: shorter than a header: truncated", path);
        r = DMCE_ECORRUPT;
    }
    if (r == 0)
        r = hdr_decode(hb, &h, path, why, whylen);
    if (r == 0 && strcmp(h.cluster, t->cluster) != 0) {
        dmce_msgf(why, whylen, "%s: a backup of cluster \"%s\", not \"%s\"", path, h.cluster,
                  t->cluster);
        r = -EXDEV;
    }
    if (r == 0 && (h.kind != f->kind || h.block != b->block || h.daemon != t->daemon ||
                   h.layout != t->layout || h.size != b->size || h.pages != b->pages ||
                   h.page_size != b->page_size || h.generation != f->generation ||
                   h.base_generation != prev_gen)) {
        dmce_msgf(why, whylen,
                  "%s: its header does not match the backup table (block %u gen %llu of memd[%u]; "
                  "the table expects block %u gen %llu of memd[%u])",
                  path, h.block, (unsigned long long)h.generation, h.daemon, b->block,
                  (unsigned long long)f->generation, t->daemon);
        r = DMCE_ECORRUPT;
    }
    if (r == 0)
        XXH3_64bits_reset(rh);
    uint32_t last = 0, in_pass = 0;
    const uint64_t zh = zero_page_hash();
    for (uint32_t i = 0; r == 0 && i < f->records; i++) {
        uint8_t rec[REC_SIZE];
        if ((r = rd_get(&rd, rec, sizeof(rec))) < 0)
            break;
        XXH3_64bits_update(rh, rec, sizeof(rec));
        uint32_t idx = dmce_get_le32(rec), flags = dmce_get_le32(rec + 4);
        uint64_t hash = dmce_get_le64(rec + 8);
        if (idx == PASS_INDEX && flags == REC_PASS && hash == 0) {
            in_pass = 0; /* the records after it replace those before */
            continue;
        }
        if (idx >= b->pages || (in_pass && idx <= last) || (flags & ~REC_ZERO) ||
            ((flags & REC_ZERO) && hash != zh)) {
            dmce_msgf(why, whylen, "%s: record %u (page %u) is out of order or malformed", path, i,
                      idx);
            r = DMCE_ECORRUPT;
            break;
        }
        uint8_t *dst;
        if ((r = stage_slot(st, base, idx, &dst)) < 0) {
            dmce_msgf(why, whylen, "writing the restored pages: %s", strerror(-r));
            break;
        }
        if (flags & REC_ZERO) {
            memset(dst, 0, DMCE_BK_PAGE);
        } else {
            if ((r = rd_get(&rd, dst, DMCE_BK_PAGE)) < 0)
                break;
            if (dmce_bk_hash(dst, DMCE_BK_PAGE) != hash) {
                dmce_msgf(why, whylen, "%s: page %u fails its checksum: the file is damaged", path,
                          idx);
                r = DMCE_ECORRUPT;
                break;
            }
        }
        if (st->fd >= 0)
            st->n++; /* staged: it goes with its run */
        if (hashes)
            hashes[idx] = hash;
        last = idx;
        in_pass++;
        *done += flags & REC_ZERO ? 0 : DMCE_BK_PAGE;
        if (progress && (i & 1023) == 1023)
            progress(*done, arg);
    }
    if (r == -ENODATA) {
        dmce_msgf(why, whylen, "%s: ends before its last record: truncated", path);
        r = DMCE_ECORRUPT;
    }
    if (r == 0 && st->fd >= 0 && st->n && (r = stage_flush(st)) < 0)
        dmce_msgf(why, whylen, "writing the restored pages: %s", strerror(-r));
    if (r == 0) {
        uint8_t tr[TRAILER_SIZE];
        r = rd_get(&rd, tr, sizeof(tr));
        if (r == -ENODATA || (r == 0 && (memcmp(tr, TRAILER_MAGIC, 8) != 0 ||
                                         dmce_get_le64(tr + 24) != dmce_bk_hash(tr, 24)))) {
            dmce_msgf(why, whylen, "%s: no valid trailer: truncated or damaged", path);
            r = DMCE_ECORRUPT;
        } else if (r == 0 && (dmce_get_le64(tr + 8) != f->records ||
                              dmce_get_le64(tr + 16) != XXH3_64bits_digest(rh))) {
            dmce_msgf(why, whylen, "%s: its records do not match its trailer: damaged", path);
            r = DMCE_ECORRUPT;
        } else if (r == 0 && !rd_at_end(&rd)) {
            dmce_msgf(why, whylen, "%s: bytes after its trailer", path);
            r = DMCE_ECORRUPT;
        }
    }
    if (r < 0 && why && !why[0])
        dmce_msgf(why, whylen, "%s: %s", path, r == -ENODATA ? "truncated" : dmce_strerror(r));
    if (rh)
        XXH3_freeState(rh);
    close(fd);
    return r;
}

static int chain_apply(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                       void *base, int fd, uint64_t *hashes, void (*progress)(uint64_t, void *),
                       void *arg, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    int r = block_entry_ok(b, why, whylen);
    if (r < 0)
        return r;
    struct stage st = {.fd = fd};
    uint8_t *iobuf = malloc(IO_BUF);
    if (!iobuf || (fd >= 0 && !(st.buf = malloc(IO_BUF)))) {
        free(iobuf);
        return -ENOMEM;
    }
    if (hashes) {
        uint64_t zh = zero_page_hash();
        for (uint32_t i = 0; i < b->pages; i++)
            hashes[i] = zh;
    }
    uint64_t done = 0;
    for (uint32_t k = 0; r == 0 && k < b->nfiles; k++)
        r = apply_file(dir, t, b, &b->files[k], k ? b->files[k - 1].generation : 0, base, &st,
                       hashes, iobuf, progress, arg, &done, why, whylen);
    free(st.buf);
    free(iobuf);
    return r;
}

int dmce_bk_chain_apply(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                        void *base, uint64_t *hashes, void (*progress)(uint64_t, void *), void *arg,
                        char *why, size_t whylen)
{
    return chain_apply(dir, t, b, base, -1, hashes, progress, arg, why, whylen);
}

int dmce_bk_chain_apply_fd(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                           int fd, uint64_t *hashes, void (*progress)(uint64_t, void *), void *arg,
                           char *why, size_t whylen)
{
    if (fd < 0)
        return -EBADF;
    return chain_apply(dir, t, b, NULL, fd, hashes, progress, arg, why, whylen);
}

int dmce_bk_verify_block(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                         char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = 0;
    int r = block_entry_ok(b, why, whylen);
    if (r < 0)
        return r;
    /* Anonymous memory reads as zero and costs only the pages the chain writes. */
    void *base = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    r = dmce_bk_chain_apply(dir, t, b, base, NULL, NULL, NULL, why, whylen);
    if (r == 0 && (r = dmce_block_attach(base, b->size)) < 0)
        dmce_msgf(why, whylen, "block %u: the restored bytes are not a block: %s", b->block,
                  dmce_strerror(r));
    if (r == 0 && (r = dmce_block_verify(base)) < 0)
        dmce_msgf(why, whylen, "block %u: the restored allocator state is inconsistent", b->block);
    munmap(base, b->size);
    return r;
}
