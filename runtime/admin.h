/*
 * admin.h - the administration client: what dmcectl asks the cluster, as
 * calls another program can make too (a monitoring agent, a test, an
 * orchestration script in C). No printing here: every call returns data
 * or an error, and dmcectl turns them into tables, JSON and exit codes.
 *
 * A dmce_admin_t is one runtime directory: an MSMP connection to its
 * dispatcher (when one answers at RUNTIME_DIR/dispatcher.sock) and one
 * to each memory daemon it was asked about, on the Unix socket (never the
 * rings: an admin tool is not a hot path, and the socket carries the
 * peer's pid). Connections are opened on first use and kept until
 * dmce_admin_close; a broken one is opened again by the next call.
 *
 * Where the daemons are: with a dispatcher, its `daemons` list (op 43)
 * names them and their sockets; without one, every memd-*.sock of the
 * runtime directory is a daemon, as libdmce finds them.
 *
 * Errors: negative errno or DMCE_E* codes (dmce_strerror). Transport
 * errors of a connection: -ECONNREFUSED (no socket, or nobody listens),
 * DMCE_ECLOSED, -ETIMEDOUT, -EPROTO. A call that needs the dispatcher
 * returns -ENOTSUP when none answers. Decoding errors: -EBADMSG.
 *
 * Thread safety: none; one thread uses a dmce_admin_t at a time. Every
 * call except the accessors may block, each request bounded by the
 * timeout given to dmce_admin_open; the wait_* calls block until their
 * condition, their own timeout, or their callback says stop.
 *
 * Wire format of every operation used: docs/msmp.md; the tool:
 * docs/dmcectl.md.
 */
#ifndef DMCE_RUNTIME_ADMIN_H
#define DMCE_RUNTIME_ADMIN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dmce/client.h>

#include "msmp.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"

typedef struct dmce_admin dmce_admin_t;

/* The runtime directory the daemons use by default: $DMCE_RUNTIME_DIR, else /run/dmce-UID. */
int dmce_admin_default_dir(char *out, size_t cap);

/*
 * Open the cluster of runtime directory dir (NULL: the default above).
 * timeout_ms bounds each request's round trip (0: 5000). Checks that dir
 * is a directory (-ENOENT, -ENOTDIR, -EACCES) and asks the dispatcher
 * for its stats once to learn whether one runs; finding nothing running
 * is not an error (see dmce_admin_has_dispatcher, dmce_admin_daemons).
 * On success *out is owned by the caller: dmce_admin_close.
 */
int dmce_admin_open(const char *dir, unsigned timeout_ms, dmce_admin_t **out);
void dmce_admin_close(dmce_admin_t *a);

const char *dmce_admin_dir(const dmce_admin_t *a);
/* RUNTIME_DIR/dispatcher.sock: where the dispatcher was looked for. */
const char *dmce_admin_disp_path(const dmce_admin_t *a);
/* 1 when a dispatcher answered at open, else 0. */
int dmce_admin_has_dispatcher(const dmce_admin_t *a);
/* Without a dispatcher: why (-ECONNREFUSED: no socket or nobody listens, ...). */
int dmce_admin_disp_error(const dmce_admin_t *a);
/* The dispatcher's pid (SO_PEERCRED), 0 when unknown. */
pid_t dmce_admin_disp_pid(const dmce_admin_t *a);

/*
 * One request: op with payload (req, len) to daemon `daemon`, or to the
 * dispatcher when daemon is 0 (-ENOTSUP when none answered at open).
 * The response payload stays in the admin's buffer: *resp (may be NULL)
 * points at it until the next call on a. A daemon's socket: the one the
 * dispatcher's list names, else RUNTIME_DIR/memd-ID.sock (-ENODEV when a
 * dispatcher runs and does not know the ID). Returns the response's status
 * or a transport error; the other calls are built on this one.
 */
int dmce_admin_rpc(dmce_admin_t *a, uint32_t daemon, uint16_t op, const void *req, size_t len,
                   const uint8_t **resp, size_t *resp_len);

/* ---- what is there --------------------------------------------------------------------------- */

/*
 * The daemons, in ID order, into *out (malloc'ed, the caller frees; NULL
 * when *n is 0). With a dispatcher: its list (op 43), dead ones included.
 * Without: every memd-*.sock of the directory, asked for its stats: one
 * that answers is alive (pid, NUMA node, capacity, used, free, ops,
 * primaries = its blocks, mirrors = its mirror copies; pulse_age_ms 0,
 * block_size 0), one that does not is listed dead with the ID from its
 * name. Also remembers each daemon's socket for the calls below.
 */
int dmce_admin_daemons(dmce_admin_t *a, dmce_adm_daemon_t **out, unsigned *n);

/* Stats of daemon `daemon` (op 7). */
int dmce_admin_stats(dmce_admin_t *a, uint32_t daemon, dmce_stats_t *out);
/* Every block the daemon holds (op 15), primaries and mirror copies. *out: malloc'ed. */
int dmce_admin_blocks(dmce_admin_t *a, uint32_t daemon, dmce_msmp_block_info_t **out, unsigned *n);
/* The daemon's sessions (op 25). *out: malloc'ed. */
int dmce_admin_sessions(dmce_admin_t *a, uint32_t daemon, dmce_adm_session_t **out, unsigned *n);

/* The dispatcher's directory of blocks (op 34), in block ID order. *out: malloc'ed. -ENOTSUP. */
int dmce_admin_directory(dmce_admin_t *a, dmce_disp_dir_hdr_t *hdr, dmce_disp_block_t **out,
                         unsigned *n);
/* The dispatcher's stats (op 39). -ENOTSUP. */
int dmce_admin_cluster_stats(dmce_admin_t *a, dmce_cluster_stats_t *out);
/* The dispatcher's moves (op 42), oldest first. *out: malloc'ed. -ENOTSUP. */
int dmce_admin_jobs(dmce_admin_t *a, dmce_adm_job_t **out, unsigned *n);
/* One move by ID; -ENOENT when the dispatcher no longer lists it. */
int dmce_admin_job(dmce_admin_t *a, uint32_t id, dmce_adm_job_t *out);

/*
 * The daemon serving block `block` as its primary: the directory's with a
 * dispatcher, else the daemon whose blocks list has it as a primary.
 * DMCE_ENOBLOCK when nobody holds it.
 */
int dmce_admin_block_primary(dmce_admin_t *a, uint32_t block, uint32_t *daemon);

/* ---- moves ----------------------------------------------------------------------------------- */

/*
 * Queue a move of `block` (op 40) to daemon `to` (0: the dispatcher
 * chooses), on NUMA node `node` (-1: any). *job gets the job's ID. The
 * dispatcher's refusals: DMCE_ENOBLOCK, -EALREADY, -ENODEV, -EBUSY,
 * DMCE_ENOMEM, -EAGAIN. -ENOTSUP without a dispatcher.
 */
int dmce_admin_migrate(dmce_admin_t *a, uint32_t block, uint32_t to, int32_t node, uint32_t *job);

/*
 * Drain `daemon` (op 41): it takes no new blocks and every block leaves it;
 * cancel = 1 stops that and drops its queued moves. *count: moves queued
 * (cancel: dropped). -ENODEV (no such live daemon, or nowhere to go).
 */
int dmce_admin_drain(dmce_admin_t *a, uint32_t daemon, int cancel, uint32_t *count);

/*
 * Follow job `id` until it is done or failed, asking every 5..100 ms.
 * progress (may be NULL) sees the job after every look; a non-zero return
 * stops the wait with -EINTR. timeout_ms 0: no bound. Returns 0 when the
 * job is done, the job's error when it failed (negative errno or
 * DMCE_E*), -ETIMEDOUT, -ENOENT (it vanished from the list), or a
 * transport error. *out (may be NULL) gets the last state seen.
 */
int dmce_admin_wait_job(dmce_admin_t *a, uint32_t id, unsigned timeout_ms,
                        int (*progress)(const dmce_adm_job_t *, void *), void *arg,
                        dmce_adm_job_t *out);

/* How a drain is going (dmce_admin_wait_drained). */
typedef struct dmce_admin_drain_progress {
    uint32_t daemon;
    uint32_t total;     /* primaries + mirrors at the start (or the most seen since) */
    uint32_t primaries; /* it holds now */
    uint32_t mirrors;
    uint32_t moves_done; /* jobs of this drain (IDs after `after_job`) done */
    uint32_t moves_failed;
    uint64_t elapsed_ms;
    dmce_adm_job_t failed; /* the first failed job (valid when moves_failed > 0) */
} dmce_admin_drain_progress_t;

/*
 * Follow a drain of `daemon` until the dispatcher's list shows it holds no
 * primary and no mirror copy. after_job: the highest job ID before the
 * drain was asked (the drain's moves have higher IDs; 0: all count).
 * Returns 0 when it holds nothing, the error of the first of its moves
 * that failed (-ECANCELED when the drain was cancelled), -ENODEV when the
 * daemon died or left the list, -ETIMEDOUT, -EINTR (progress returned
 * non-zero), or a transport error. *p is filled in either way.
 */
int dmce_admin_wait_drained(dmce_admin_t *a, uint32_t daemon, uint32_t after_job,
                            unsigned timeout_ms,
                            int (*progress)(const dmce_admin_drain_progress_t *, void *), void *arg,
                            dmce_admin_drain_progress_t *p);

/* ---- backups --------------------------------------------------------------------------------- */

/*
 * Ask `daemon` to back up `block` (0: every primary it holds) into dir
 * (NULL or "": its backup_dir; an absolute path, the daemon has another
 * cwd), flags DMCE_ADM_BACKUP_FULL or 0 (op 30). *task: the task's ID,
 * *queued: blocks queued. The daemon's refusals come back as they are
 * (-EOPNOTSUPP from a daemon without backups).
 */
int dmce_admin_backup(dmce_admin_t *a, uint32_t daemon, uint32_t block, uint32_t flags,
                      const char *dir, uint32_t *task, uint32_t *queued);

/* The same for a restore (op 44): block 0 = every block of the set. */
int dmce_admin_restore(dmce_admin_t *a, uint32_t daemon, uint32_t block, const char *dir,
                       uint32_t *task, uint32_t *queued);

/* A daemon's backup status (op 31), decoded. */
typedef struct dmce_admin_bk {
    dmce_adm_task_t task;           /* the current or last task (state 0: none yet) */
    uint32_t interval_s;            /* periodic backups (0: none) */
    char dir[DMCE_ADM_DIR_MAX + 1]; /* its backup_dir ("" = none) */
    uint32_t count;
    dmce_adm_bk_entry_t *entries; /* the lookup table; owner: this struct */
} dmce_admin_bk_t;

/* Fill *out (free with dmce_admin_bk_free, also after an error). */
int dmce_admin_backup_status(dmce_admin_t *a, uint32_t daemon, dmce_admin_bk_t *out);
void dmce_admin_bk_free(dmce_admin_bk_t *bk);

/*
 * Follow n backup or restore tasks, task ids[i] on daemon daemons[i],
 * until each is done or failed (backup_status every 5..100 ms). tasks[i]
 * gets the last state of each (a task the daemon has not started yet is
 * reported queued; one that a later task replaced as "the last one" is
 * reported done). progress as for dmce_admin_wait_job. Returns 0 when all
 * are done, else the first error met: a failed task's error, a transport
 * error of its daemon (the task's state is then left as last seen),
 * -ETIMEDOUT (timeout_ms, 0: none) or -EINTR; *which (may be NULL) gets
 * the index concerned.
 */
int dmce_admin_wait_tasks(dmce_admin_t *a, unsigned n, const uint32_t *daemons, const uint32_t *ids,
                          unsigned timeout_ms,
                          int (*progress)(const dmce_adm_task_t *, unsigned, void *), void *arg,
                          dmce_adm_task_t *tasks, unsigned *which);

/* ---- offline: backup sets on disk ------------------------------------------------------------ */

/*
 * The backup sets under dir: dir itself when it holds a `table`, else
 * every dir/memd-N/ that holds one, in N order. *out: malloc'ed array of
 * *n malloc'ed paths (free with dmce_admin_sets_free). -ENOENT when there
 * is none, or dir's own error.
 */
int dmce_admin_backup_sets(const char *dir, char ***out, unsigned *n);
void dmce_admin_sets_free(char **sets, unsigned n);

/* One step of dmce_admin_verify. */
typedef struct dmce_admin_verified {
    const char *set; /* the set's directory */
    uint32_t daemon; /* whose set (from its table; 0 when the table failed) */
    uint32_t block;  /* 0: the set's table itself */
    uint32_t index;  /* this block's place among those checked in this set, from 0 */
    uint32_t count;  /* blocks checked in this set */
    uint64_t size;   /* the block's bytes */
    int done;        /* 0: about to check it (for progress); 1: checked */
    int err;         /* done: 0 OK, or why (DMCE_ECORRUPT, -ENOENT, ...) */
    char why[1024];  /* done and err: a sentence naming the file and the fault */
} dmce_admin_verified_t;

/*
 * Verify every block of every set under dir (dmce_admin_backup_sets), or
 * only blocks[0..nblocks): load each set's table (dmce_bk_table_load),
 * then check each block's chain (dmce_bk_verify_block). step (may be NULL)
 * is called before and after each block and once for a table that fails
 * to load; a non-zero return stops with -EINTR. A block asked for that is
 * in no set is reported with err -ENOENT. *damaged: tables and blocks that
 * failed. Returns 0 when every check could run (damage or not), or
 * dmce_admin_backup_sets' error.
 */
int dmce_admin_verify(const char *dir, const uint32_t *blocks, unsigned nblocks,
                      int (*step)(const dmce_admin_verified_t *, void *), void *arg,
                      unsigned *damaged);

#endif /* DMCE_RUNTIME_ADMIN_H */
