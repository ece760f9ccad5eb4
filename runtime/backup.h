/*
 * backup.h - block backups in files, and the Memory Backup & Recovery
 * Lookup Table on disk (seed 002 FIG. 19, [0092]-[0093]). Used by the
 * memory daemon (memd_backup.c: taking backups, recovery at start,
 * restore) and by dmcectl (verify). docs/backup.md has the promises.
 *
 * A backup set is one directory per daemon:
 *
 *   table                 the lookup table: cluster, daemon, layout, one
 *                         entry per block (its chain of files, its mirror,
 *                         page size and count) and the sessions that own
 *                         allocations in those blocks (ID, uid, token), so
 *                         that their clients can reattach after recovery
 *   b<ID>.<GEN>.full      every non-zero 4 KiB page of block ID, at
 *                         generation GEN
 *   b<ID>.<GEN>.delta     the pages that changed since generation GEN-1
 *                         of that block (a page that became zero is a
 *                         record without data)
 *
 * A block's chain is one full file and the deltas after it; recovery
 * applies them in order onto a zeroed object. Every file is written under
 * a temporary name, fsync()ed and renamed into place, then the table is
 * replaced the same way: the table is the commit point, and a file it
 * does not name is garbage (removed by the next backup). A crash at any
 * point leaves the previous table and every file it names intact.
 *
 * File format (little-endian): a 256-byte header (magic "DMCEBKF1",
 * version, kind, cluster, daemon, block, geometry, generation, base
 * generation, time; an XXH3-64 checksum of the header), then records of
 * { u32 page index, u32 flags (1 = zero page, no data), u64 XXH3-64 of the
 * page } each followed by the page's 4096 bytes unless it is a zero page,
 * in increasing page order within a pass (a pass marker, index 0xffffffff
 * and flags 2, starts a second pass whose records replace the first's:
 * the pages that changed while the first was read), then a 32-byte trailer (magic "DMCEBKT1",
 * record count, XXH3-64 over every record header, checksum of the
 * trailer). A truncated, reordered, flipped or foreign file fails one of
 * those checks, with a message that names the file and what failed.
 *
 * XXH3-64 (libxxhash) hashes a 4 KiB page at memory speed: a backup
 * compares each page's hash with the last backup's to find the pages that
 * changed, whoever changed them (MSMP writes or mapped pointers).
 *
 * Thread safety: none inside; callers serialize writers of one directory.
 */
#ifndef DMCE_RUNTIME_BACKUP_H
#define DMCE_RUNTIME_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#define DMCE_BK_PAGE 4096u
#define DMCE_BK_CHAIN_MAX 16u   /* files in one chain: the next backup after that is full */
#define DMCE_BK_CLUSTER_MAX 63u /* bytes of a cluster name kept in headers */
#define DMCE_BK_TOKEN_LEN 16u

enum dmce_bk_kind {
    DMCE_BK_FULL = 1,
    DMCE_BK_DELTA = 2,
};

/* 64-bit XXH3 of len bytes (dmce_xxh3, seed 0): page hashes and checksums. */
uint64_t dmce_bk_hash(const void *p, size_t len);

/* ---- the table ----------------------------------------------------------------------------- */

typedef struct dmce_bk_file {
    uint64_t generation;
    uint32_t kind; /* enum dmce_bk_kind */
    uint32_t records;
    uint64_t bytes; /* the file's size */
} dmce_bk_file_t;

typedef struct dmce_bk_block {
    uint32_t block;
    uint32_t mirror_daemon; /* memory-to-memory backup: its mirror's holder at the last backup */
    uint32_t page_size;     /* the block's page size */
    uint32_t pages;         /* DMCE_BK_PAGE pages: size / DMCE_BK_PAGE */
    uint64_t size;
    uint64_t time_ns; /* CLOCK_REALTIME of the last backup */
    uint64_t took_us; /* how long it took */
    uint32_t nfiles;  /* 1..DMCE_BK_CHAIN_MAX; files[0] is the full image */
    uint32_t reserved_;
    dmce_bk_file_t files[DMCE_BK_CHAIN_MAX];
} dmce_bk_block_t;

typedef struct dmce_bk_session {
    uint32_t id;
    uint32_t uid;
    uint64_t reserved; /* bytes its setup reserved on the daemon */
    uint8_t token[DMCE_BK_TOKEN_LEN];
} dmce_bk_session_t;

typedef struct dmce_bk_table {
    char cluster[DMCE_BK_CLUSTER_MAX + 1];
    uint32_t daemon;      /* the daemon ID whose set this is */
    uint32_t layout;      /* address layout (dmce_layout_t) */
    uint32_t block_first; /* the daemon's block ID range when it was written */
    uint32_t block_count;
    uint64_t generation; /* the table's own, +1 at every save */
    uint32_t nblocks, nsessions;
    dmce_bk_block_t *blocks;     /* owner: the table */
    dmce_bk_session_t *sessions; /* owner: the table */
} dmce_bk_table_t;

/*
 * Read dir/table. 0, -ENOENT (no table: an empty set), DMCE_EBADMAGIC,
 * DMCE_EVERSION, DMCE_ECORRUPT (bad checksum, impossible values, short
 * file), or -errno. why (may be NULL) gets a sentence for the user.
 * Free with dmce_bk_table_free.
 */
int dmce_bk_table_load(const char *dir, dmce_bk_table_t *t, char *why, size_t whylen);

/* Write dir/table atomically (temp, fsync, rename, fsync dir); t->generation += 1 first. */
int dmce_bk_table_save(const char *dir, dmce_bk_table_t *t);
void dmce_bk_table_free(dmce_bk_table_t *t);

/* The entry of block id, or NULL. */
dmce_bk_block_t *dmce_bk_table_find(const dmce_bk_table_t *t, uint32_t id);

/* Name of one file of a chain: "<dir>/b<block>.<gen>.full|delta". */
void dmce_bk_file_name(const char *dir, uint32_t block, const dmce_bk_file_t *f, char *out,
                       size_t cap);

/* Remove the files in dir that look like block files and that t does not name. Returns how many. */
int dmce_bk_remove_unnamed(const char *dir, const dmce_bk_table_t *t);

/* ---- writing a file -------------------------------------------------------------------------- */

typedef struct dmce_bk_file_hdr {
    uint32_t kind; /* enum dmce_bk_kind */
    char cluster[DMCE_BK_CLUSTER_MAX + 1];
    uint32_t daemon, block, layout, page_size, pages;
    uint64_t size;
    uint64_t generation;
    uint64_t base_generation; /* DELTA: the generation it applies on; FULL: 0 */
    uint64_t time_ns;         /* CLOCK_REALTIME */
} dmce_bk_file_hdr_t;

typedef struct dmce_bk_writer {
    int fd; /* the temporary file; owner: the writer */
    char tmp[4096], final[4096], dir[4096];
    dmce_bk_file_hdr_t h;
    uint32_t records;
    uint32_t in_pass;    /* pages in this pass so far */
    uint32_t last_index; /* records go in increasing page order within a pass */
    uint64_t bytes;
    void *rec_hash; /* XXH3 state over the record headers; owner: the writer */
    uint8_t *buf;   /* output buffer; owner: the writer */
    size_t buf_len;
} dmce_bk_writer_t;

/* Start dir/b<block>.<gen>.<kind> under a temporary name. 0 or -errno. */
int dmce_bk_writer_begin(dmce_bk_writer_t *w, const char *dir, const dmce_bk_file_hdr_t *h);
/*
 * Append page `index` (greater than the last one appended) with its hash;
 * page NULL: a zero page (no data). 0 or -errno (ENOSPC...).
 */
int dmce_bk_writer_page(dmce_bk_writer_t *w, uint32_t index, const void *page, uint64_t hash);
/* Start a new pass: the records after it replace those before (a page may appear again). */
int dmce_bk_writer_pass(dmce_bk_writer_t *w);
/* Trailer, fsync, rename into place, fsync dir; f (may be NULL) describes the file. 0 or -errno. */
int dmce_bk_writer_commit(dmce_bk_writer_t *w, dmce_bk_file_t *f);
/* Remove the temporary file. Safe after commit, or on a writer that never began. */
void dmce_bk_writer_abort(dmce_bk_writer_t *w);

/* ---- reading ------------------------------------------------------------------------------------
 */

/*
 * Apply block b's chain from dir onto base (b->size bytes, zeroed by the
 * caller), checking every file: header checksum and fields (cluster,
 * block, geometry, generation and base generation, kind), every record's
 * order and page hash, the trailer. hashes (may be NULL; b->pages words)
 * gets every page's hash afterwards (the state the next incremental backup
 * compares with). progress (may be NULL) gets bytes read so far.
 * 0, DMCE_ECORRUPT (why says which file and what), DMCE_EBADMAGIC,
 * DMCE_EVERSION, -EXDEV (another cluster's file), -ENOENT (a file
 * missing), or -errno.
 */
int dmce_bk_chain_apply(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                        void *base, uint64_t *hashes, void (*progress)(uint64_t, void *), void *arg,
                        char *why, size_t whylen);
/*
 * The same into the object behind fd (b->size bytes or more, e.g. a block's
 * shm object) through pwrite, in runs of consecutive pages, instead of
 * through a mapping: into allocated, untouched pages a whole-page write
 * costs the copy only, not a fault, a cleared page and a page-table entry
 * each. The pages no record names are left as they are (zero in a fresh
 * object). -EBADF for fd < 0; a write error is returned with why.
 */
int dmce_bk_chain_apply_fd(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                           int fd, uint64_t *hashes, void (*progress)(uint64_t, void *), void *arg,
                           char *why, size_t whylen);

/*
 * Verify block b of the set in dir: apply its chain into scratch memory
 * (every check of dmce_bk_chain_apply), then check the result is a block
 * (dmce_block_attach) whose allocator state is consistent
 * (dmce_block_verify). 0 or an error as dmce_bk_chain_apply, with why.
 */
int dmce_bk_verify_block(const char *dir, const dmce_bk_table_t *t, const dmce_bk_block_t *b,
                         char *why, size_t whylen);

#endif /* DMCE_RUNTIME_BACKUP_H */
