/*
 * msmp_admin.h - MSMP messages for administration (issue 9): the clients
 * of a daemon, moving a block live from one daemon to another, draining a
 * daemon, and the dispatcher's view for dmcectl. Wire format in
 * docs/msmp.md; the mechanism in docs/migration.md.
 *
 * All integers little-endian; every message has a fixed size or a fixed
 * header followed by counted bytes, and every decoder checks the exact
 * length, reserved fields (must be 0) and ranges: -EBADMSG otherwise.
 *
 * Daemon operations (numbers after the store's 16-24):
 *   sessions  anyone of the cluster's uid -> memd: its clients
 *   handoff   target memd -> source memd: freeze a block, pass its objects
 *   adopt     dispatcher -> target memd: take a block over from its owner
 *   release   dispatcher -> source memd: the move committed (forget it) or
 *             aborted (serve it again)
 *   reparent  dispatcher -> mirror holder: the block's primary moved
 *   backup    dmcectl -> memd: back up blocks to files (a task)
 *   backup_status  dmcectl -> memd: the current or last task, and the
 *             Memory Backup & Recovery Lookup Table
 *   restore   dmcectl -> memd: bring blocks back from backup files (a task)
 * Dispatcher operations (after 32-39):
 *   migrate   dmcectl -> dispatcher: queue a move of one block
 *   drain     dmcectl -> dispatcher: move everything off a daemon
 *   jobs      dmcectl -> dispatcher: moves queued, running and finished
 *   daemons   dmcectl -> dispatcher: the daemons, with health and blocks
 */
#ifndef DMCE_RUNTIME_MSMP_ADMIN_H
#define DMCE_RUNTIME_MSMP_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "msmp.h"

enum {
    DMCE_MSMP_OP_SESSIONS = 25,
    DMCE_MSMP_OP_HANDOFF = 26,
    DMCE_MSMP_OP_ADOPT = 27,
    DMCE_MSMP_OP_RELEASE = 28,
    DMCE_MSMP_OP_REPARENT = 29,
    DMCE_MSMP_OP_BACKUP = 30,
    DMCE_MSMP_OP_BACKUP_STATUS = 31,
    DMCE_MSMP_OP_RESTORE = 44,
    DMCE_MSMP_OP_MIGRATE = 40,
    DMCE_MSMP_OP_DRAIN = 41,
    DMCE_MSMP_OP_JOBS = 42,
    DMCE_MSMP_OP_DAEMONS = 43,
};

/* ---- sessions (memd) -------------------------------------------------------------------- */

#define DMCE_ADM_SESS_ORPHAN 0x1u /* its client is gone; ends at the orphan deadline */
#define DMCE_ADM_SESS_RING 0x2u   /* its connection uses the shared-memory rings */

/* Request: empty. Response: u32 count, u32 reserved, count entries. */
#define DMCE_ADM_SESSIONS_HDR 8u
#define DMCE_ADM_SESSION_SIZE 40u
typedef struct dmce_adm_session {
    uint32_t id;
    uint32_t pid; /* 0 when orphaned */
    uint32_t uid;
    uint32_t flags;          /* DMCE_ADM_SESS_* */
    uint64_t reserved;       /* bytes reserved at setup */
    uint64_t used;           /* bytes in live allocations */
    uint64_t orphan_left_ms; /* orphaned: time until it ends; else 0 */
} dmce_adm_session_t;

size_t dmce_adm_sessions_size(uint32_t count);
void dmce_adm_sessions_hdr_encode(uint32_t count, uint8_t *out);
void dmce_adm_session_encode(const dmce_adm_session_t *m, uint8_t *out);
/* Checks the whole length; then entry i (0 <= i < count). */
int dmce_adm_sessions_count(const uint8_t *in, size_t len, uint32_t *count);
int dmce_adm_session_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_session_t *m);

/* ---- handoff (memd -> memd) ------------------------------------------------------------- */

/* Request: u32 block, u32 to (the daemon taking it over). */
#define DMCE_ADM_HANDOFF_REQ_SIZE 8u
void dmce_adm_handoff_req_encode(uint32_t block, uint32_t to, uint8_t *out);
int dmce_adm_handoff_req_decode(const uint8_t *in, size_t len, uint32_t *block, uint32_t *to);

/*
 * Response, with the block's object (first descriptor) and, when
 * mirror_daemon != 0, its mirror's object (second descriptor):
 *   u32 block, u32 mirror_daemon, u64 size, u32 name_len, u32 peer_len,
 *   name (the object's name at the source), peer (the mirror holder's socket),
 * then, optionally, the block's allocations by owner (the source counts
 * them while the block is frozen, so the target need not walk a mapping
 * it has just made, a page fault per allocation):
 *   u32 count (1..DMCE_ADM_OWNERS_MAX), u32 reserved (0),
 *   count x { u32 owner (session ID, not 0), u32 reserved (0), u64 bytes, u64 allocations }.
 * Without that section the target counts them itself.
 */
#define DMCE_ADM_HANDOFF_RESP_HDR 24u
#define DMCE_ADM_NAME_MAX 1024u
#define DMCE_ADM_OWNERS_HDR 8u
#define DMCE_ADM_OWNER_SIZE 24u
#define DMCE_ADM_OWNERS_MAX 4096u
typedef struct dmce_adm_owner {
    uint32_t owner;
    uint64_t bytes, allocs;
} dmce_adm_owner_t;
typedef struct dmce_adm_handoff {
    uint32_t block;
    uint32_t mirror_daemon;
    uint64_t size;
    char name[DMCE_ADM_NAME_MAX + 1];
    char peer[DMCE_MSMP_PATH_MAX + 1]; /* "" when no mirror */
    /* Encode: owners[0..nowners) when has_owners. Decode: has_owners, nowners, and
     * owners_raw pointing into the decoded bytes (dmce_adm_handoff_owner reads one). */
    int has_owners;
    uint32_t nowners;
    const dmce_adm_owner_t *owners;
    const uint8_t *owners_raw;
} dmce_adm_handoff_t;
/* Largest response: with DMCE_ADM_OWNERS_MAX owners. */
#define DMCE_ADM_HANDOFF_RESP_MAX                                                                  \
    (DMCE_ADM_HANDOFF_RESP_HDR + DMCE_ADM_NAME_MAX + DMCE_MSMP_PATH_MAX + DMCE_ADM_OWNERS_HDR +    \
     DMCE_ADM_OWNERS_MAX * DMCE_ADM_OWNER_SIZE)
/* Returns the encoded length or -EINVAL. */
int dmce_adm_handoff_encode(const dmce_adm_handoff_t *m, uint8_t *out, size_t cap);
int dmce_adm_handoff_decode(const uint8_t *in, size_t len, dmce_adm_handoff_t *m);
/* Owner i (< m->nowners) of a decoded response. */
void dmce_adm_handoff_owner(const dmce_adm_handoff_t *m, uint32_t i, dmce_adm_owner_t *out);

/* ---- adopt (dispatcher -> target memd) ------------------------------------------------- */

/* Request: u32 block, u32 from, u32 path_len, u32 reserved, path (from's socket). */
#define DMCE_ADM_ADOPT_HDR 16u
typedef struct dmce_adm_adopt {
    uint32_t block;
    uint32_t from;
    char path[DMCE_MSMP_PATH_MAX + 1];
} dmce_adm_adopt_t;
int dmce_adm_adopt_encode(const dmce_adm_adopt_t *m, uint8_t *out, size_t cap);
int dmce_adm_adopt_decode(const uint8_t *in, size_t len, dmce_adm_adopt_t *m);

/* Response: u64 allocations, u64 bytes adopted, u64 microseconds the block was frozen. */
#define DMCE_ADM_ADOPT_RESP_SIZE 24u
typedef struct dmce_adm_adopted {
    uint64_t allocs, bytes, frozen_us;
} dmce_adm_adopted_t;
void dmce_adm_adopted_encode(const dmce_adm_adopted_t *m, uint8_t *out);
int dmce_adm_adopted_decode(const uint8_t *in, size_t len, dmce_adm_adopted_t *m);

/* ---- release, reparent ------------------------------------------------------------------- */

/* release: u32 block, u32 commit (1: the target has it, forget it; 0: serve it again). */
/* reparent: u32 block, u32 new primary. Both: response empty. */
#define DMCE_ADM_PAIR_SIZE 8u
void dmce_adm_pair_encode(uint32_t a, uint32_t b, uint8_t *out);
int dmce_adm_pair_decode(const uint8_t *in, size_t len, uint32_t *a, uint32_t *b);

/* ---- migrate, drain (dmcectl -> dispatcher) --------------------------------------------- */

/* migrate request: u32 block, u32 to (0: the dispatcher chooses), i32 node (-1: any), u32 flags
 * (0). */
#define DMCE_ADM_MIGRATE_SIZE 16u
typedef struct dmce_adm_migrate {
    uint32_t block;
    uint32_t to;
    int32_t node;
    uint32_t flags;
} dmce_adm_migrate_t;
void dmce_adm_migrate_encode(const dmce_adm_migrate_t *m, uint8_t *out);
int dmce_adm_migrate_decode(const uint8_t *in, size_t len, dmce_adm_migrate_t *m);
/* migrate response: the job's ID (dmce_disp_u32_encode layout: u32, u32 0). */

/* drain request: u32 daemon, u32 flags. Response: u32 jobs queued, u32 0. */
#define DMCE_ADM_DRAIN_CANCEL 0x1u /* stop draining: the daemon takes new blocks again */
/* (encoded with dmce_adm_pair_encode(daemon, flags)) */

/* ---- jobs (dmcectl -> dispatcher) -------------------------------------------------------- */

enum dmce_adm_job_state {
    DMCE_ADM_JOB_QUEUED = 1,
    DMCE_ADM_JOB_RUNNING = 2,
    DMCE_ADM_JOB_DONE = 3,
    DMCE_ADM_JOB_FAILED = 4,
};

/* Request: empty. Response: u32 count, u32 reserved, count entries (oldest first). */
#define DMCE_ADM_JOBS_HDR 8u
#define DMCE_ADM_JOB_SIZE 56u
typedef struct dmce_adm_job {
    uint32_t id;
    uint32_t block;
    uint32_t from, to;  /* daemon IDs (to: 0 until chosen) */
    uint32_t state;     /* enum dmce_adm_job_state */
    int32_t err;        /* FAILED: why (negative errno or DMCE_E*) */
    uint64_t bytes;     /* the block's size */
    uint64_t age_ms;    /* since it was queued */
    uint64_t took_us;   /* DONE/FAILED: how long the move took */
    uint64_t frozen_us; /* DONE: how long the block answered DMCE_EMOVING (the writers' pause) */
} dmce_adm_job_t;
size_t dmce_adm_jobs_size(uint32_t count);
void dmce_adm_jobs_hdr_encode(uint32_t count, uint8_t *out);
void dmce_adm_job_encode(const dmce_adm_job_t *m, uint8_t *out);
int dmce_adm_jobs_count(const uint8_t *in, size_t len, uint32_t *count);
int dmce_adm_job_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_job_t *m);

/* ---- daemons (dmcectl -> dispatcher) ------------------------------------------------------ */

#define DMCE_ADM_DAEMON_DRAINING 0x1u /* being drained: gets no new blocks, loses its own */
#define DMCE_ADM_DAEMON_SPAWNED 0x2u  /* started by the dispatcher */

/* Request: empty. Response: u32 count, u32 reserved, count entries. */
#define DMCE_ADM_DAEMONS_HDR 8u
#define DMCE_ADM_DAEMON_SIZE 200u
typedef struct dmce_adm_daemon {
    uint32_t id;
    uint32_t state; /* DMCE_DISP_ALIVE, DMCE_DISP_DEAD */
    int32_t numa_node;
    uint32_t pid;
    uint32_t flags;     /* DMCE_ADM_DAEMON_* */
    uint32_t primaries; /* blocks it holds as primary */
    uint32_t mirrors;   /* blocks it holds as mirror copies */
    uint32_t reserved_;
    uint64_t pulse_age_ms; /* since its last member pulse */
    uint64_t capacity, used, free, ops;
    uint64_t block_size;
    char path[DMCE_MSMP_PATH_MAX + 1]; /* on the wire: at most DMCE_ADM_DAEMON_PATH bytes */
} dmce_adm_daemon_t;
#define DMCE_ADM_DAEMON_PATH 112u /* sun_path is 108 */
size_t dmce_adm_daemons_size(uint32_t count);
void dmce_adm_daemons_hdr_encode(uint32_t count, uint8_t *out);
int dmce_adm_daemon_encode(const dmce_adm_daemon_t *m, uint8_t *out);
int dmce_adm_daemons_count(const uint8_t *in, size_t len, uint32_t *count);
int dmce_adm_daemon_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_daemon_t *m);

/* ---- backup, restore, backup_status (dmcectl -> memd) ------------------------------------- */

/*
 * backup / restore request: u32 block (0 = every primary / every block of
 * the backup set), u32 flags, u32 dir_len, u32 reserved, dir (empty = the
 * daemon's own set, backup_dir/memd-ID). Response: u32 task ID, u32 the
 * block asked for (dmce_adm_pair_encode). The task runs on the daemon's backup thread:
 * follow it with backup_status.
 */
#define DMCE_ADM_BACKUP_HDR 16u
#define DMCE_ADM_DIR_MAX 1024u
#define DMCE_ADM_BACKUP_FULL 0x1u /* backup: a full image even where a chain could grow */
typedef struct dmce_adm_backup {
    uint32_t block;
    uint32_t flags;
    char dir[DMCE_ADM_DIR_MAX + 1];
} dmce_adm_backup_t;
/* Returns the encoded length or -EINVAL. */
int dmce_adm_backup_encode(const dmce_adm_backup_t *m, uint8_t *out, size_t cap);
int dmce_adm_backup_decode(const uint8_t *in, size_t len, dmce_adm_backup_t *m);

enum dmce_adm_task_kind {
    DMCE_ADM_TASK_BACKUP = 1,   /* asked for (dmcectl backup) */
    DMCE_ADM_TASK_RESTORE = 2,  /* asked for (dmcectl restore) */
    DMCE_ADM_TASK_PERIODIC = 3, /* backup_interval_s */
    DMCE_ADM_TASK_RECOVER = 4,  /* recover = yes, at start */
};

/* A backup task; state is enum dmce_adm_job_state (0: no task yet). */
typedef struct dmce_adm_task {
    uint32_t id;
    uint32_t kind; /* enum dmce_adm_task_kind */
    uint32_t state;
    int32_t err; /* FAILED: why (negative errno or DMCE_E*) */
    uint32_t blocks_total, blocks_done;
    uint64_t bytes_total; /* bytes to scan (backup) or to load (restore) */
    uint64_t bytes_done;
    uint64_t bytes_written; /* to files (backup) */
    uint64_t pages_written; /* 4 KiB pages written (backup: changed pages only when incremental) */
    uint64_t elapsed_us;    /* since it started (running) or how long it took */
    char detail[DMCE_ADM_NAME_MAX + 1]; /* FAILED: what failed, e.g. a file and why */
} dmce_adm_task_t;

#define DMCE_ADM_BK_RECOVERED 0x1u /* brought back from its backup at the daemon's start */

/* One entry of the Memory Backup & Recovery Lookup Table (seed 002 [0092]). */
#define DMCE_ADM_BK_ENTRY_SIZE 72u
typedef struct dmce_adm_bk_entry {
    uint32_t block;
    uint32_t mirror_daemon; /* memory-to-memory backup: its mirror's holder (0: none) */
    uint32_t page_size;     /* the block's page size */
    uint32_t pages;         /* 4 KiB backup pages in the block */
    uint64_t size;          /* bytes in the block */
    uint64_t generation;    /* of its last backup */
    uint32_t files;         /* in its chain: one full image and the deltas on it */
    uint32_t flags;         /* DMCE_ADM_BK_* */
    uint64_t disk_bytes;    /* its files' bytes */
    uint64_t age_ms;        /* since its last backup */
    uint64_t took_us;       /* how long its last backup took */
} dmce_adm_bk_entry_t;

/*
 * backup_status response: the task (64 bytes: u32 id, kind, state, err,
 * blocks_total, blocks_done; u64 bytes_total, bytes_done, bytes_written,
 * pages_written, elapsed_us), u32 interval_s (0: no periodic backup),
 * u32 detail_len, u32 dir_len, u32 count, detail, dir (the daemon's own
 * set, backup_dir/memd-ID; "" = none), count table entries.
 */
#define DMCE_ADM_BK_STATUS_HDR 80u
typedef struct dmce_adm_bk_status {
    dmce_adm_task_t task;
    uint32_t interval_s;
    char dir[DMCE_ADM_DIR_MAX + 1];
    uint32_t count;
    const uint8_t *entries; /* decode: count entries, for dmce_adm_bk_entry_decode */
} dmce_adm_bk_status_t;
size_t dmce_adm_bk_status_size(const dmce_adm_bk_status_t *m, uint32_t count);
/* Header, detail and dir; the caller appends count entries. Returns the header's length or -EINVAL.
 */
int dmce_adm_bk_status_encode(const dmce_adm_bk_status_t *m, uint32_t count, uint8_t *out,
                              size_t cap);
void dmce_adm_bk_entry_encode(const dmce_adm_bk_entry_t *m, uint8_t *out);
/* Checks the whole length; entries then points at the table (m->count entries). */
int dmce_adm_bk_status_decode(const uint8_t *in, size_t len, dmce_adm_bk_status_t *m);
int dmce_adm_bk_entry_decode(const dmce_adm_bk_status_t *m, uint32_t i, dmce_adm_bk_entry_t *e);

#endif /* DMCE_RUNTIME_MSMP_ADMIN_H */
