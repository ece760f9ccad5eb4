/*
 * msmp_admin.c - encoders and decoders of msmp_admin.h. Decoders trust
 * nothing: exact lengths, reserved fields zero, paths without NUL.
 */
#include "msmp_admin.h"

#include <errno.h>
#include <string.h>

#include "msmp_dispatch.h"

/* A counted string field: 1..max bytes (0 allowed when may_be_empty), no NUL inside. */
static int str_in(const uint8_t *p, uint32_t n, uint32_t max, int may_be_empty, char *out)
{
    if ((n == 0 && !may_be_empty) || n > max || (n && memchr(p, 0, n)))
        return -EBADMSG;
    memcpy(out, p, n);
    out[n] = 0;
    return 0;
}

/* A list response: u32 count, u32 reserved, count fixed-size entries. */
static int list_count(const uint8_t *in, size_t len, size_t hdr, size_t esz, uint32_t *count)
{
    if (len < hdr || dmce_get_le32(in + 4) != 0)
        return -EBADMSG;
    uint32_t n = dmce_get_le32(in);
    if ((uint64_t)len != hdr + (uint64_t)n * esz)
        return -EBADMSG;
    *count = n;
    return 0;
}

static const uint8_t *list_entry(const uint8_t *in, size_t len, size_t hdr, size_t esz, uint32_t i)
{
    uint32_t n;
    if (list_count(in, len, hdr, esz, &n) < 0 || i >= n)
        return NULL;
    return in + hdr + (size_t)i * esz;
}

static void list_hdr(uint32_t count, uint8_t *out)
{
    dmce_put_le32(out, count);
    dmce_put_le32(out + 4, 0);
}

/* ---- sessions ---------------------------------------------------------------------------- */

size_t dmce_adm_sessions_size(uint32_t count)
{
    return DMCE_ADM_SESSIONS_HDR + (size_t)count * DMCE_ADM_SESSION_SIZE;
}

void dmce_adm_sessions_hdr_encode(uint32_t count, uint8_t *out)
{
    list_hdr(count, out);
}

void dmce_adm_session_encode(const dmce_adm_session_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->id);
    dmce_put_le32(out + 4, m->pid);
    dmce_put_le32(out + 8, m->uid);
    dmce_put_le32(out + 12, m->flags);
    dmce_put_le64(out + 16, m->reserved);
    dmce_put_le64(out + 24, m->used);
    dmce_put_le64(out + 32, m->orphan_left_ms);
}

int dmce_adm_sessions_count(const uint8_t *in, size_t len, uint32_t *count)
{
    return list_count(in, len, DMCE_ADM_SESSIONS_HDR, DMCE_ADM_SESSION_SIZE, count);
}

int dmce_adm_session_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_session_t *m)
{
    const uint8_t *e = list_entry(in, len, DMCE_ADM_SESSIONS_HDR, DMCE_ADM_SESSION_SIZE, i);
    if (!e)
        return -EBADMSG;
    m->id = dmce_get_le32(e);
    m->pid = dmce_get_le32(e + 4);
    m->uid = dmce_get_le32(e + 8);
    m->flags = dmce_get_le32(e + 12);
    m->reserved = dmce_get_le64(e + 16);
    m->used = dmce_get_le64(e + 24);
    m->orphan_left_ms = dmce_get_le64(e + 32);
    if (m->flags & ~(DMCE_ADM_SESS_ORPHAN | DMCE_ADM_SESS_RING))
        return -EBADMSG;
    return 0;
}

/* ---- handoff ------------------------------------------------------------------------------ */

void dmce_adm_handoff_req_encode(uint32_t block, uint32_t to, uint8_t *out)
{
    dmce_adm_pair_encode(block, to, out);
}

int dmce_adm_handoff_req_decode(const uint8_t *in, size_t len, uint32_t *block, uint32_t *to)
{
    int r = dmce_adm_pair_decode(in, len, block, to);
    return r == 0 && (*block == 0 || *to == 0) ? -EBADMSG : r;
}

int dmce_adm_handoff_encode(const dmce_adm_handoff_t *m, uint8_t *out, size_t cap)
{
    size_t nn = strnlen(m->name, sizeof(m->name)), np = strnlen(m->peer, sizeof(m->peer));
    size_t len = DMCE_ADM_HANDOFF_RESP_HDR + nn + np;
    if (m->has_owners)
        len += DMCE_ADM_OWNERS_HDR + (size_t)m->nowners * DMCE_ADM_OWNER_SIZE;
    if (nn == 0 || nn > DMCE_ADM_NAME_MAX || np > DMCE_MSMP_PATH_MAX ||
        (np == 0) != (m->mirror_daemon == 0) || cap < len ||
        (m->has_owners && (m->nowners == 0 || m->nowners > DMCE_ADM_OWNERS_MAX || !m->owners)))
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->mirror_daemon);
    dmce_put_le64(out + 8, m->size);
    dmce_put_le32(out + 16, (uint32_t)nn);
    dmce_put_le32(out + 20, (uint32_t)np);
    memcpy(out + DMCE_ADM_HANDOFF_RESP_HDR, m->name, nn);
    memcpy(out + DMCE_ADM_HANDOFF_RESP_HDR + nn, m->peer, np);
    if (m->has_owners) {
        uint8_t *o = out + DMCE_ADM_HANDOFF_RESP_HDR + nn + np;
        dmce_put_le32(o, m->nowners);
        dmce_put_le32(o + 4, 0);
        o += DMCE_ADM_OWNERS_HDR;
        for (uint32_t i = 0; i < m->nowners; i++, o += DMCE_ADM_OWNER_SIZE) {
            if (m->owners[i].owner == 0)
                return -EINVAL;
            dmce_put_le32(o, m->owners[i].owner);
            dmce_put_le32(o + 4, 0);
            dmce_put_le64(o + 8, m->owners[i].bytes);
            dmce_put_le64(o + 16, m->owners[i].allocs);
        }
    }
    return (int)len;
}

int dmce_adm_handoff_decode(const uint8_t *in, size_t len, dmce_adm_handoff_t *m)
{
    if (len < DMCE_ADM_HANDOFF_RESP_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->mirror_daemon = dmce_get_le32(in + 4);
    m->size = dmce_get_le64(in + 8);
    uint32_t nn = dmce_get_le32(in + 16), np = dmce_get_le32(in + 20);
    uint64_t base = DMCE_ADM_HANDOFF_RESP_HDR + (uint64_t)nn + np;
    if (m->block == 0 || m->size == 0 || nn > DMCE_ADM_NAME_MAX || np > DMCE_MSMP_PATH_MAX ||
        (uint64_t)len < base || (np == 0) != (m->mirror_daemon == 0))
        return -EBADMSG;
    m->has_owners = 0;
    m->nowners = 0;
    m->owners = NULL;
    m->owners_raw = NULL;
    if ((uint64_t)len > base) {
        const uint8_t *o = in + base;
        if ((uint64_t)len < base + DMCE_ADM_OWNERS_HDR)
            return -EBADMSG;
        uint32_t count = dmce_get_le32(o);
        if (count == 0 || count > DMCE_ADM_OWNERS_MAX || dmce_get_le32(o + 4) != 0 ||
            (uint64_t)len != base + DMCE_ADM_OWNERS_HDR + (uint64_t)count * DMCE_ADM_OWNER_SIZE)
            return -EBADMSG;
        o += DMCE_ADM_OWNERS_HDR;
        for (uint32_t i = 0; i < count; i++)
            if (dmce_get_le32(o + (size_t)i * DMCE_ADM_OWNER_SIZE) == 0 ||
                dmce_get_le32(o + (size_t)i * DMCE_ADM_OWNER_SIZE + 4) != 0)
                return -EBADMSG;
        m->has_owners = 1;
        m->nowners = count;
        m->owners_raw = o;
    }
    int r = str_in(in + DMCE_ADM_HANDOFF_RESP_HDR, nn, DMCE_ADM_NAME_MAX, 0, m->name);
    if (r == 0)
        r = str_in(in + DMCE_ADM_HANDOFF_RESP_HDR + nn, np, DMCE_MSMP_PATH_MAX, 1, m->peer);
    return r;
}

void dmce_adm_handoff_owner(const dmce_adm_handoff_t *m, uint32_t i, dmce_adm_owner_t *out)
{
    const uint8_t *o = m->owners_raw + (size_t)i * DMCE_ADM_OWNER_SIZE;
    out->owner = dmce_get_le32(o);
    out->bytes = dmce_get_le64(o + 8);
    out->allocs = dmce_get_le64(o + 16);
}

/* ---- adopt ------------------------------------------------------------------------------- */

int dmce_adm_adopt_encode(const dmce_adm_adopt_t *m, uint8_t *out, size_t cap)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n > DMCE_MSMP_PATH_MAX || cap < DMCE_ADM_ADOPT_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->from);
    dmce_put_le32(out + 8, (uint32_t)n);
    dmce_put_le32(out + 12, 0);
    memcpy(out + DMCE_ADM_ADOPT_HDR, m->path, n);
    return (int)(DMCE_ADM_ADOPT_HDR + n);
}

int dmce_adm_adopt_decode(const uint8_t *in, size_t len, dmce_adm_adopt_t *m)
{
    if (len < DMCE_ADM_ADOPT_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->from = dmce_get_le32(in + 4);
    uint32_t n = dmce_get_le32(in + 8);
    if (m->block == 0 || m->from == 0 || dmce_get_le32(in + 12) != 0 ||
        (uint64_t)len != DMCE_ADM_ADOPT_HDR + (uint64_t)n)
        return -EBADMSG;
    return str_in(in + DMCE_ADM_ADOPT_HDR, n, DMCE_MSMP_PATH_MAX, 0, m->path);
}

void dmce_adm_adopted_encode(const dmce_adm_adopted_t *m, uint8_t *out)
{
    dmce_put_le64(out, m->allocs);
    dmce_put_le64(out + 8, m->bytes);
    dmce_put_le64(out + 16, m->frozen_us);
}

int dmce_adm_adopted_decode(const uint8_t *in, size_t len, dmce_adm_adopted_t *m)
{
    if (len != DMCE_ADM_ADOPT_RESP_SIZE)
        return -EBADMSG;
    m->allocs = dmce_get_le64(in);
    m->bytes = dmce_get_le64(in + 8);
    m->frozen_us = dmce_get_le64(in + 16);
    return 0;
}

/* ---- pairs: release, reparent, drain ------------------------------------------------------ */

void dmce_adm_pair_encode(uint32_t a, uint32_t b, uint8_t *out)
{
    dmce_put_le32(out, a);
    dmce_put_le32(out + 4, b);
}

int dmce_adm_pair_decode(const uint8_t *in, size_t len, uint32_t *a, uint32_t *b)
{
    if (len != DMCE_ADM_PAIR_SIZE)
        return -EBADMSG;
    *a = dmce_get_le32(in);
    *b = dmce_get_le32(in + 4);
    return 0;
}

/* ---- migrate ----------------------------------------------------------------------------- */

void dmce_adm_migrate_encode(const dmce_adm_migrate_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->to);
    dmce_put_le32(out + 8, (uint32_t)m->node);
    dmce_put_le32(out + 12, m->flags);
}

int dmce_adm_migrate_decode(const uint8_t *in, size_t len, dmce_adm_migrate_t *m)
{
    if (len != DMCE_ADM_MIGRATE_SIZE)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->to = dmce_get_le32(in + 4);
    m->node = (int32_t)dmce_get_le32(in + 8);
    m->flags = dmce_get_le32(in + 12);
    if (m->block == 0 || m->node < -1 || m->flags != 0)
        return -EBADMSG;
    return 0;
}

/* ---- jobs -------------------------------------------------------------------------------- */

size_t dmce_adm_jobs_size(uint32_t count)
{
    return DMCE_ADM_JOBS_HDR + (size_t)count * DMCE_ADM_JOB_SIZE;
}

void dmce_adm_jobs_hdr_encode(uint32_t count, uint8_t *out)
{
    list_hdr(count, out);
}

void dmce_adm_job_encode(const dmce_adm_job_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->id);
    dmce_put_le32(out + 4, m->block);
    dmce_put_le32(out + 8, m->from);
    dmce_put_le32(out + 12, m->to);
    dmce_put_le32(out + 16, m->state);
    dmce_put_le32(out + 20, (uint32_t)m->err);
    dmce_put_le64(out + 24, m->bytes);
    dmce_put_le64(out + 32, m->age_ms);
    dmce_put_le64(out + 40, m->took_us);
    dmce_put_le64(out + 48, m->frozen_us);
}

int dmce_adm_jobs_count(const uint8_t *in, size_t len, uint32_t *count)
{
    return list_count(in, len, DMCE_ADM_JOBS_HDR, DMCE_ADM_JOB_SIZE, count);
}

int dmce_adm_job_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_job_t *m)
{
    const uint8_t *e = list_entry(in, len, DMCE_ADM_JOBS_HDR, DMCE_ADM_JOB_SIZE, i);
    if (!e)
        return -EBADMSG;
    m->id = dmce_get_le32(e);
    m->block = dmce_get_le32(e + 4);
    m->from = dmce_get_le32(e + 8);
    m->to = dmce_get_le32(e + 12);
    m->state = dmce_get_le32(e + 16);
    m->err = (int32_t)dmce_get_le32(e + 20);
    m->bytes = dmce_get_le64(e + 24);
    m->age_ms = dmce_get_le64(e + 32);
    m->took_us = dmce_get_le64(e + 40);
    m->frozen_us = dmce_get_le64(e + 48);
    if (m->state < DMCE_ADM_JOB_QUEUED || m->state > DMCE_ADM_JOB_FAILED || m->err > 0)
        return -EBADMSG;
    return 0;
}

/* ---- daemons ----------------------------------------------------------------------------- */

size_t dmce_adm_daemons_size(uint32_t count)
{
    return DMCE_ADM_DAEMONS_HDR + (size_t)count * DMCE_ADM_DAEMON_SIZE;
}

void dmce_adm_daemons_hdr_encode(uint32_t count, uint8_t *out)
{
    list_hdr(count, out);
}

int dmce_adm_daemon_encode(const dmce_adm_daemon_t *m, uint8_t *out)
{
    size_t n = strnlen(m->path, sizeof(m->path));
    if (n == 0 || n > DMCE_ADM_DAEMON_PATH)
        return -EINVAL;
    memset(out, 0, DMCE_ADM_DAEMON_SIZE);
    dmce_put_le32(out, m->id);
    dmce_put_le32(out + 4, m->state);
    dmce_put_le32(out + 8, (uint32_t)m->numa_node);
    dmce_put_le32(out + 12, m->pid);
    dmce_put_le32(out + 16, m->flags);
    dmce_put_le32(out + 20, m->primaries);
    dmce_put_le32(out + 24, m->mirrors);
    dmce_put_le64(out + 32, m->pulse_age_ms);
    dmce_put_le64(out + 40, m->capacity);
    dmce_put_le64(out + 48, m->used);
    dmce_put_le64(out + 56, m->free);
    dmce_put_le64(out + 64, m->ops);
    dmce_put_le64(out + 72, m->block_size);
    dmce_put_le32(out + 80, (uint32_t)n);
    memcpy(out + 88, m->path, n);
    return 0;
}

int dmce_adm_daemons_count(const uint8_t *in, size_t len, uint32_t *count)
{
    return list_count(in, len, DMCE_ADM_DAEMONS_HDR, DMCE_ADM_DAEMON_SIZE, count);
}

int dmce_adm_daemon_decode(const uint8_t *in, size_t len, uint32_t i, dmce_adm_daemon_t *m)
{
    const uint8_t *e = list_entry(in, len, DMCE_ADM_DAEMONS_HDR, DMCE_ADM_DAEMON_SIZE, i);
    if (!e)
        return -EBADMSG;
    m->id = dmce_get_le32(e);
    m->state = dmce_get_le32(e + 4);
    m->numa_node = (int32_t)dmce_get_le32(e + 8);
    m->pid = dmce_get_le32(e + 12);
    m->flags = dmce_get_le32(e + 16);
    m->primaries = dmce_get_le32(e + 20);
    m->mirrors = dmce_get_le32(e + 24);
    m->reserved_ = 0;
    m->pulse_age_ms = dmce_get_le64(e + 32);
    m->capacity = dmce_get_le64(e + 40);
    m->used = dmce_get_le64(e + 48);
    m->free = dmce_get_le64(e + 56);
    m->ops = dmce_get_le64(e + 64);
    m->block_size = dmce_get_le64(e + 72);
    uint32_t n = dmce_get_le32(e + 80);
    if (m->id == 0 || m->state < DMCE_DISP_ALIVE || m->state > DMCE_DISP_DEAD ||
        dmce_get_le32(e + 28) != 0 || dmce_get_le32(e + 84) != 0 ||
        (m->flags & ~(DMCE_ADM_DAEMON_DRAINING | DMCE_ADM_DAEMON_SPAWNED)))
        return -EBADMSG;
    for (uint32_t k = 88 + n; k < DMCE_ADM_DAEMON_SIZE && n <= DMCE_ADM_DAEMON_PATH; k++)
        if (e[k])
            return -EBADMSG; /* padding is zero */
    return str_in(e + 88, n, DMCE_ADM_DAEMON_PATH, 0, m->path);
}

/* ---- backup, restore, backup_status ----------------------------------------------------- */

int dmce_adm_backup_encode(const dmce_adm_backup_t *m, uint8_t *out, size_t cap)
{
    size_t n = strnlen(m->dir, sizeof(m->dir));
    if (n > DMCE_ADM_DIR_MAX || (m->flags & ~DMCE_ADM_BACKUP_FULL) || cap < DMCE_ADM_BACKUP_HDR + n)
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->flags);
    dmce_put_le32(out + 8, (uint32_t)n);
    dmce_put_le32(out + 12, 0);
    memcpy(out + DMCE_ADM_BACKUP_HDR, m->dir, n);
    return (int)(DMCE_ADM_BACKUP_HDR + n);
}

int dmce_adm_backup_decode(const uint8_t *in, size_t len, dmce_adm_backup_t *m)
{
    if (len < DMCE_ADM_BACKUP_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->flags = dmce_get_le32(in + 4);
    uint32_t n = dmce_get_le32(in + 8);
    if ((m->flags & ~DMCE_ADM_BACKUP_FULL) || dmce_get_le32(in + 12) != 0 ||
        (uint64_t)len != DMCE_ADM_BACKUP_HDR + (uint64_t)n)
        return -EBADMSG;
    return str_in(in + DMCE_ADM_BACKUP_HDR, n, DMCE_ADM_DIR_MAX, 1, m->dir);
}

size_t dmce_adm_bk_status_size(const dmce_adm_bk_status_t *m, uint32_t count)
{
    return DMCE_ADM_BK_STATUS_HDR + strnlen(m->task.detail, sizeof(m->task.detail)) +
           strnlen(m->dir, sizeof(m->dir)) + (size_t)count * DMCE_ADM_BK_ENTRY_SIZE;
}

int dmce_adm_bk_status_encode(const dmce_adm_bk_status_t *m, uint32_t count, uint8_t *out,
                              size_t cap)
{
    const dmce_adm_task_t *t = &m->task;
    size_t nd = strnlen(t->detail, sizeof(t->detail)), nr = strnlen(m->dir, sizeof(m->dir));
    if (nd > DMCE_ADM_NAME_MAX || nr > DMCE_ADM_DIR_MAX || cap < dmce_adm_bk_status_size(m, count))
        return -EINVAL;
    dmce_put_le32(out, t->id);
    dmce_put_le32(out + 4, t->kind);
    dmce_put_le32(out + 8, t->state);
    dmce_put_le32(out + 12, (uint32_t)t->err);
    dmce_put_le32(out + 16, t->blocks_total);
    dmce_put_le32(out + 20, t->blocks_done);
    dmce_put_le64(out + 24, t->bytes_total);
    dmce_put_le64(out + 32, t->bytes_done);
    dmce_put_le64(out + 40, t->bytes_written);
    dmce_put_le64(out + 48, t->pages_written);
    dmce_put_le64(out + 56, t->elapsed_us);
    dmce_put_le32(out + 64, m->interval_s);
    dmce_put_le32(out + 68, (uint32_t)nd);
    dmce_put_le32(out + 72, (uint32_t)nr);
    dmce_put_le32(out + 76, count);
    memcpy(out + DMCE_ADM_BK_STATUS_HDR, t->detail, nd);
    memcpy(out + DMCE_ADM_BK_STATUS_HDR + nd, m->dir, nr);
    return (int)(DMCE_ADM_BK_STATUS_HDR + nd + nr);
}

void dmce_adm_bk_entry_encode(const dmce_adm_bk_entry_t *m, uint8_t *out)
{
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->mirror_daemon);
    dmce_put_le32(out + 8, m->page_size);
    dmce_put_le32(out + 12, m->pages);
    dmce_put_le64(out + 16, m->size);
    dmce_put_le64(out + 24, m->generation);
    dmce_put_le32(out + 32, m->files);
    dmce_put_le32(out + 36, m->flags);
    dmce_put_le64(out + 40, m->disk_bytes);
    dmce_put_le64(out + 48, m->age_ms);
    dmce_put_le64(out + 56, m->took_us);
    dmce_put_le64(out + 64, 0);
}

int dmce_adm_bk_status_decode(const uint8_t *in, size_t len, dmce_adm_bk_status_t *m)
{
    if (len < DMCE_ADM_BK_STATUS_HDR)
        return -EBADMSG;
    dmce_adm_task_t *t = &m->task;
    t->id = dmce_get_le32(in);
    t->kind = dmce_get_le32(in + 4);
    t->state = dmce_get_le32(in + 8);
    t->err = (int32_t)dmce_get_le32(in + 12);
    t->blocks_total = dmce_get_le32(in + 16);
    t->blocks_done = dmce_get_le32(in + 20);
    t->bytes_total = dmce_get_le64(in + 24);
    t->bytes_done = dmce_get_le64(in + 32);
    t->bytes_written = dmce_get_le64(in + 40);
    t->pages_written = dmce_get_le64(in + 48);
    t->elapsed_us = dmce_get_le64(in + 56);
    m->interval_s = dmce_get_le32(in + 64);
    uint32_t nd = dmce_get_le32(in + 68), nr = dmce_get_le32(in + 72);
    m->count = dmce_get_le32(in + 76);
    if (t->state > DMCE_ADM_JOB_FAILED ||
        (t->state && (t->kind < DMCE_ADM_TASK_BACKUP || t->kind > DMCE_ADM_TASK_RECOVER)) ||
        t->err > 0 || t->blocks_done > t->blocks_total || nd > DMCE_ADM_NAME_MAX ||
        nr > DMCE_ADM_DIR_MAX ||
        (uint64_t)len != DMCE_ADM_BK_STATUS_HDR + (uint64_t)nd + nr +
                             (uint64_t)m->count * DMCE_ADM_BK_ENTRY_SIZE)
        return -EBADMSG;
    int r = str_in(in + DMCE_ADM_BK_STATUS_HDR, nd, DMCE_ADM_NAME_MAX, 1, t->detail);
    if (r == 0)
        r = str_in(in + DMCE_ADM_BK_STATUS_HDR + nd, nr, DMCE_ADM_DIR_MAX, 1, m->dir);
    m->entries = in + DMCE_ADM_BK_STATUS_HDR + nd + nr;
    return r;
}

int dmce_adm_bk_entry_decode(const dmce_adm_bk_status_t *m, uint32_t i, dmce_adm_bk_entry_t *e)
{
    if (i >= m->count || !m->entries)
        return -EBADMSG;
    const uint8_t *p = m->entries + (size_t)i * DMCE_ADM_BK_ENTRY_SIZE;
    e->block = dmce_get_le32(p);
    e->mirror_daemon = dmce_get_le32(p + 4);
    e->page_size = dmce_get_le32(p + 8);
    e->pages = dmce_get_le32(p + 12);
    e->size = dmce_get_le64(p + 16);
    e->generation = dmce_get_le64(p + 24);
    e->files = dmce_get_le32(p + 32);
    e->flags = dmce_get_le32(p + 36);
    e->disk_bytes = dmce_get_le64(p + 40);
    e->age_ms = dmce_get_le64(p + 48);
    e->took_us = dmce_get_le64(p + 56);
    if (e->block == 0 || e->files == 0 || (e->flags & ~DMCE_ADM_BK_RECOVERED) ||
        dmce_get_le64(p + 64) != 0)
        return -EBADMSG;
    return 0;
}
