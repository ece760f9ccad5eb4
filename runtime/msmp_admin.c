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

static const uint8_t *list_entry(const uint8_t *in, size_t len, size_t hdr, size_t esz,
                                 uint32_t i)
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
    if (nn == 0 || nn > DMCE_ADM_NAME_MAX || np > DMCE_MSMP_PATH_MAX ||
        (np == 0) != (m->mirror_daemon == 0) || cap < DMCE_ADM_HANDOFF_RESP_HDR + nn + np)
        return -EINVAL;
    dmce_put_le32(out, m->block);
    dmce_put_le32(out + 4, m->mirror_daemon);
    dmce_put_le64(out + 8, m->size);
    dmce_put_le32(out + 16, (uint32_t)nn);
    dmce_put_le32(out + 20, (uint32_t)np);
    memcpy(out + DMCE_ADM_HANDOFF_RESP_HDR, m->name, nn);
    memcpy(out + DMCE_ADM_HANDOFF_RESP_HDR + nn, m->peer, np);
    return (int)(DMCE_ADM_HANDOFF_RESP_HDR + nn + np);
}

int dmce_adm_handoff_decode(const uint8_t *in, size_t len, dmce_adm_handoff_t *m)
{
    if (len < DMCE_ADM_HANDOFF_RESP_HDR)
        return -EBADMSG;
    m->block = dmce_get_le32(in);
    m->mirror_daemon = dmce_get_le32(in + 4);
    m->size = dmce_get_le64(in + 8);
    uint32_t nn = dmce_get_le32(in + 16), np = dmce_get_le32(in + 20);
    if (m->block == 0 || m->size == 0 || nn > DMCE_ADM_NAME_MAX || np > DMCE_MSMP_PATH_MAX ||
        (uint64_t)len != DMCE_ADM_HANDOFF_RESP_HDR + (uint64_t)nn + np ||
        (np == 0) != (m->mirror_daemon == 0))
        return -EBADMSG;
    int r = str_in(in + DMCE_ADM_HANDOFF_RESP_HDR, nn, DMCE_ADM_NAME_MAX, 0, m->name);
    if (r == 0)
        r = str_in(in + DMCE_ADM_HANDOFF_RESP_HDR + nn, np, DMCE_MSMP_PATH_MAX, 1, m->peer);
    return r;
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
