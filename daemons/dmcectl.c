/*
 * dmcectl.c - the admin tool of a dmce cluster (docs/dmcectl.md).
 *
 *   dmcectl [--runtime-dir DIR] [--json] [--timeout MS] COMMAND [ARGS]
 *
 * Only the command line lives here: parsing, the calls of runtime/admin.h,
 * and printing (aligned tables, or one JSON document per command with
 * --json; progress bars on stderr). What a command asks the cluster, and
 * how it follows a move or a backup, is in runtime/admin.c, where other
 * programs can use it too.
 *
 * Exit codes: 0 success; 1 the operation failed (a daemon's or the
 * dispatcher's error, a job or task that failed); 2 usage; 3 the cluster
 * cannot be reached (no runtime directory, no daemon, no dispatcher when
 * one is needed); 4 verify found damage. Errors go to stderr as
 * "dmcectl: <what>: <why>".
 *
 * The only global mutable state is the flag the SIGINT/SIGTERM handler
 * sets (status --watch stops on it; a follow stops waiting on it).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

#include "admin.h"
#include "backup.h"
#include "util.h"

#ifndef DMCE_VERSION /* CMake passes the project's version */
#define DMCE_VERSION "unknown"
#endif

enum {
    EX_OK = 0,
    EX_FAIL = 1,        /* the operation failed */
    EX_USAGE = 2,       /* bad command line */
    EX_UNREACHABLE = 3, /* no cluster to talk to */
    EX_DAMAGE = 4,      /* verify found damage */
};

/* Default bounds of the follows (--timeout overrides them), and of one request. */
#define REQUEST_MS 5000u
#define REQUEST_MAX_MS 60000u
#define MIGRATE_WAIT_MS 120000u
#define DRAIN_WAIT_MS 600000u
#define MAX_BLOCK_ID 65535u
#define MAX_DAEMON_ID 4095u
#define MAX_NUMA_NODE 1023

static volatile sig_atomic_t stop_requested; /* set by the SIGINT/SIGTERM handler only */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Catch SIGINT and SIGTERM without SA_RESTART, so that a sleep ends at once. */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- the run's context ----------------------------------------------------------------------- */

struct cmd;

struct ctl {
    const char *dir;      /* --runtime-dir, or NULL: the default */
    int json;             /* --json */
    unsigned timeout_ms;  /* --timeout; 0 = not given */
    int tty_out, tty_err; /* stdout / stderr are terminals */
    const struct cmd *cmd;
    dmce_admin_t *a; /* owner: main */
};

/* "dmcectl: <what>: <why>" on stderr; returns code. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("dmcectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static const char *cmd_name(const struct ctl *c);

/* A usage error: the message, then a one-line hint to the command's --help. */
static int usage_err(const struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_err(const struct ctl *c, const char *fmt, ...)
{
    va_list ap;
    fputs("dmcectl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (c && c->cmd)
        fprintf(stderr, "\nTry 'dmcectl %s --help'.\n", cmd_name(c));
    else
        fputs("\nTry 'dmcectl --help'.\n", stderr);
    return EX_USAGE;
}

/* ---- JSON: a tiny emitter (one document per command, compact, on one line) ------------------- */

#define JSON_DEPTH 16

struct json {
    FILE *f;
    unsigned depth;
    uint8_t more[JSON_DEPTH]; /* the container at this depth has a member already */
};

static void j_string_body(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') {
            fputc('\\', f);
            fputc(ch, f);
            p++;
        } else if (ch < 0x20 || ch == 0x7f) {
            static const char esc[] = {
                ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
            if (ch < sizeof(esc) && esc[ch])
                fprintf(f, "\\%c", esc[ch]);
            else
                fprintf(f, "\\u%04x", ch);
            p++;
        } else if (ch < 0x80) {
            fputc(ch, f);
            p++;
        } else {
            /* A valid UTF-8 sequence passes; any other byte becomes U+FFFD. */
            unsigned n = ch >= 0xf0 && ch <= 0xf4  ? 4
                         : ch >= 0xe0 && ch < 0xf0 ? 3
                         : ch >= 0xc2 && ch < 0xe0 ? 2
                                                   : 0;
            unsigned k = 1;
            while (n && k < n && (p[k] & 0xc0) == 0x80)
                k++;
            uint32_t cp = n == 2   ? (uint32_t)(ch & 0x1f)
                          : n == 3 ? (uint32_t)(ch & 0x0f)
                                   : (uint32_t)(ch & 0x07);
            for (unsigned i = 1; n && k == n && i < n; i++)
                cp = cp << 6 | (p[i] & 0x3f);
            int ok = n && k == n && !(n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) &&
                     !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
            if (ok) {
                fwrite(p, 1, n, f);
                p += n;
            } else {
                fputs("\\ufffd", f);
                p++;
            }
        }
    }
    fputc('"', f);
}

/* The separator and the key of the next member (key NULL: an array element). */
static void j_key(struct json *j, const char *key)
{
    unsigned d = DMCE_MIN(j->depth, (unsigned)JSON_DEPTH); /* dmcectl nests 4 deep at most */
    if (d && j->more[d - 1])
        fputc(',', j->f);
    if (d)
        j->more[d - 1] = 1;
    if (key) {
        j_string_body(j->f, key);
        fputc(':', j->f);
    }
}

static void j_open(struct json *j, const char *key, char brace)
{
    j_key(j, key);
    fputc(brace, j->f);
    if (j->depth < JSON_DEPTH)
        j->more[j->depth] = 0;
    j->depth++;
}

static void j_close(struct json *j, char brace)
{
    fputc(brace, j->f);
    j->depth--;
    if (j->depth == 0)
        fputc('\n', j->f);
}

static void j_u64(struct json *j, const char *key, uint64_t v)
{
    j_key(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

static void j_i64(struct json *j, const char *key, int64_t v)
{
    j_key(j, key);
    fprintf(j->f, "%" PRId64, v);
}

static void j_bool(struct json *j, const char *key, int v)
{
    j_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

static void j_null(struct json *j, const char *key)
{
    j_key(j, key);
    fputs("null", j->f);
}

/* A string, or null for NULL. */
static void j_str(struct json *j, const char *key, const char *s)
{
    if (!s)
        return j_null(j, key);
    j_key(j, key);
    j_string_body(j->f, s);
}

/* A document {"key": [ ... ]}: open it, then close it with j_list_doc_end. */
static void j_list_doc(struct json *j, const char *key)
{
    j_open(j, NULL, '{');
    j_open(j, key, '[');
}

static void j_list_doc_end(struct json *j)
{
    j_close(j, ']');
    j_close(j, '}');
}

/* An error: its code, symbol and message (three members), or nulls for 0. */
static void j_error(struct json *j, int err)
{
    j_i64(j, "error", err);
    j_str(j, "error_name", err ? dmce_err_name(err) : NULL);
    j_str(j, "error_text", err ? dmce_strerror(err) : NULL);
}

/* ---- tables: aligned columns with a header --------------------------------------------------- */

#define TAB_COLS 16

struct table {
    unsigned ncol;
    const char *hdr[TAB_COLS];
    char left[TAB_COLS]; /* 1: left-aligned (text); else right-aligned (numbers) */
    char **cell;         /* rows x ncol; owner: the table */
    size_t n, cap;
    int oom;
};

/* "ID:r PID:r HEALTH:l ..." header names with their alignment. */
static void tab_init(struct table *t, const char *const *cols, unsigned n)
{
    memset(t, 0, sizeof(*t));
    t->ncol = DMCE_MIN(n, (unsigned)TAB_COLS);
    for (unsigned i = 0; i < t->ncol; i++) {
        t->left[i] = cols[i][0] == '<';
        t->hdr[i] = cols[i] + (cols[i][0] == '<');
    }
}

static void tab_cell(struct table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tab_cell(struct table *t, const char *fmt, ...)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        char **c = realloc(t->cell, cap * sizeof(*c));
        if (!c) {
            t->oom = 1;
            return;
        }
        t->cell = c;
        t->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    if (!s)
        t->oom = 1;
    t->cell[t->n++] = s;
}

static void tab_print(const struct table *t, FILE *f)
{
    size_t w[TAB_COLS] = {0};
    size_t rows = t->n / t->ncol;
    for (unsigned c = 0; c < t->ncol; c++) {
        w[c] = strlen(t->hdr[c]);
        for (size_t r = 0; r < rows; r++)
            if (t->cell[r * t->ncol + c])
                w[c] = DMCE_MAX(w[c], strlen(t->cell[r * t->ncol + c]));
    }
    for (size_t r = 0; r <= rows; r++) {
        for (unsigned c = 0; c < t->ncol; c++) {
            const char *s = r == 0 ? t->hdr[c] : t->cell[(r - 1) * t->ncol + c];
            if (!s)
                s = "?";
            int last = c + 1 == t->ncol;
            if (t->left[c])
                fprintf(f, "%-*s", last ? 0 : (int)w[c], s);
            else
                fprintf(f, "%*s", (int)w[c], s);
            fputs(last ? "\n" : "  ", f);
        }
    }
    if (t->oom)
        fputs("(out of memory: rows missing)\n", f);
}

static void tab_free(struct table *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->cell[i]);
    free(t->cell);
    t->cell = NULL;
    t->n = t->cap = 0;
}

/* ---- numbers for people ---------------------------------------------------------------------- */

struct txt {
    char s[48];
};

static struct txt size_txt(uint64_t bytes)
{
    struct txt t;
    dmce_fmt_size(bytes, t.s, sizeof(t.s));
    return t;
}

/* A duration: "350 us", "1.25 ms", "120 ms", "3.2 s", "4.5 min", "2.0 h", "3.1 d". */
static struct txt dur_txt(uint64_t us)
{
    struct txt t;
    double s = (double)us / 1e6;
    if (us < 1000)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 " us", us);
    else if (us < 10000)
        snprintf(t.s, sizeof(t.s), "%.2f ms", (double)us / 1000);
    else if (us < 1000000)
        snprintf(t.s, sizeof(t.s), "%" PRIu64 " ms", us / 1000);
    else if (s < 60)
        snprintf(t.s, sizeof(t.s), "%.1f s", s);
    else if (s < 3600)
        snprintf(t.s, sizeof(t.s), "%.1f min", s / 60);
    else if (s < 86400)
        snprintf(t.s, sizeof(t.s), "%.1f h", s / 3600);
    else
        snprintf(t.s, sizeof(t.s), "%.1f d", s / 86400);
    return t;
}

/* A duration in whole milliseconds: "0 ms", "120 ms", "3.2 s"... */
static struct txt ms_txt(uint64_t ms)
{
    struct txt t;
    if (ms >= 1000)
        return dur_txt(ms > UINT64_MAX / 1000 ? UINT64_MAX : ms * 1000);
    snprintf(t.s, sizeof(t.s), "%" PRIu64 " ms", ms);
    return t;
}

/* "memd[3]", or "-" for 0. */
static struct txt daemon_txt(uint32_t id)
{
    struct txt t;
    if (id)
        snprintf(t.s, sizeof(t.s), "memd[%u]", id);
    else
        snprintf(t.s, sizeof(t.s), "-");
    return t;
}

/* ---- progress on stderr ---------------------------------------------------------------------- */

/*
 * A progress line: redrawn in place when stderr is a terminal, else one
 * line a second at most; nothing with --json.
 */
struct bar {
    int on, tty;
    uint64_t t0, last;
    int drawn; /* a line is on the terminal, not ended */
};

static void bar_init(struct bar *b, const struct ctl *c)
{
    memset(b, 0, sizeof(*b));
    b->on = !c->json;
    b->tty = c->tty_err;
    b->t0 = dmce_now_ms();
    b->last = b->t0; /* not a terminal: the first line after a second, none for a short wait */
}

static void bar_text(struct bar *b, const char *text)
{
    if (!b->on)
        return;
    uint64_t now = dmce_now_ms();
    if (b->tty) {
        fprintf(stderr, "\r%s\033[K", text);
        b->drawn = 1;
    } else if (now - b->last >= 1000) {
        fprintf(stderr, "%s\n", text);
        b->last = now;
    } else {
        return;
    }
    fflush(stderr);
}

/*
 * done of total: bytes (sizes, MB/s) or counted in unit; rate and ETA from
 * the start of the bar; tail (may be NULL) follows.
 */
static void bar_show(struct bar *b, uint64_t done, uint64_t total, const char *unit,
                     const char *tail)
{
    if (!b->on)
        return;
    double secs = (double)(dmce_now_ms() - b->t0) / 1000.0;
    double rate = secs > 0 ? (double)done / secs : 0;
    double frac = total ? (double)DMCE_MIN(done, total) / (double)total : 0;
    char line[320], bar[24], amount[112], speed[64], eta[64];
    unsigned fill = (unsigned)(frac * 20 + 0.5);
    for (unsigned i = 0; i < 20; i++)
        bar[i] = i < fill ? '#' : '-';
    bar[20] = 0;
    if (unit) {
        snprintf(amount, sizeof(amount), "%" PRIu64 "/%" PRIu64 " %s", done, total, unit);
        snprintf(speed, sizeof(speed), "%.1f/s", rate);
    } else {
        snprintf(amount, sizeof(amount), "%s/%s", size_txt(done).s, size_txt(total).s);
        snprintf(speed, sizeof(speed), "%.1f MB/s", rate / 1e6);
    }
    if (rate > 0 && total > done)
        snprintf(eta, sizeof(eta), "ETA %s",
                 dur_txt((uint64_t)((double)(total - done) / rate * 1e6)).s);
    else
        snprintf(eta, sizeof(eta), "ETA -");
    snprintf(line, sizeof(line), "[%s] %3.0f%%  %s  %s  %s%s%s", bar, frac * 100, amount, speed,
             eta, tail ? "  " : "", tail ? tail : "");
    bar_text(b, line);
}

static void bar_end(struct bar *b)
{
    if (b->drawn) {
        fputc('\n', stderr);
        fflush(stderr);
    }
    b->drawn = 0;
}

/* ---- the command line ------------------------------------------------------------------------ */

enum optkind {
    A_FLAG,   /* --name */
    A_VALUE,  /* --name VALUE, --name=VALUE */
    A_OPTNUM, /* --name [NUMBER]: takes the next word only when it is a number */
};

struct optdef {
    const char *name; /* without the dashes */
    enum optkind kind;
};

#define MAX_OPTS 8
#define MAX_POS 256

struct args {
    const char
        *val[MAX_OPTS]; /* by the option's index: its value, "" when given bare; NULL: not given */
    char *pos[MAX_POS]; /* positional words (argv's) */
    unsigned npos;
};

struct cmd {
    const char *name;
    int (*run)(struct ctl *, struct args *);
    struct optdef opts[MAX_OPTS];
    unsigned min_pos, max_pos;
    const char *synopsis;
    const char *help;
};

static const char *cmd_name(const struct ctl *c)
{
    return c->cmd ? c->cmd->name : "";
}

/* The value of option name (NULL when not given). */
static const char *opt(const struct ctl *c, const struct args *a, const char *name)
{
    for (unsigned i = 0; i < MAX_OPTS && c->cmd->opts[i].name; i++)
        if (!strcmp(c->cmd->opts[i].name, name))
            return a->val[i];
    return NULL;
}

static int has_opt(const struct ctl *c, const struct args *a, const char *name)
{
    return opt(c, a, name) != NULL;
}

/* An ID in 1..max (a block, a daemon); EX_USAGE with the message otherwise. */
static int parse_id(const struct ctl *c, const char *what, const char *s, uint64_t max,
                    uint32_t *out)
{
    uint64_t v;
    if (!s || dmce_parse_u64(s, &v) < 0 || v == 0 || v > max)
        return usage_err(c, "%s: bad %s '%s': a number from 1 to %" PRIu64 " expected", cmd_name(c),
                         what, s ? s : "", max);
    *out = (uint32_t)v;
    return 0;
}

/* The optional daemon filter (--daemon ID): 0 when not given. */
static int parse_daemon_opt(const struct ctl *c, const struct args *a, uint32_t *id)
{
    *id = 0;
    const char *s = opt(c, a, "daemon");
    return s ? parse_id(c, "daemon ID", s, MAX_DAEMON_ID, id) : 0;
}

/* ---- talking to the cluster ------------------------------------------------------------------ */

enum need {
    NEED_CLUSTER,    /* a dispatcher, or at least one daemon that answers */
    NEED_DISPATCHER, /* moves: the dispatcher */
};

/* Transport errors: the peer is not there (exit 3 when met at the start). */
static int unreachable(int r)
{
    return r == -ECONNREFUSED || r == -ENOENT || r == DMCE_ECLOSED || r == -ETIMEDOUT ||
           r == -EPROTO || r == -ENOTSUP || r == -ENOTSOCK || r == -EACCES || r == -EPERM;
}

/* Why no dispatcher answered, for messages: "No such file or directory". */
static struct txt no_disp_why(const struct ctl *c)
{
    struct txt t;
    snprintf(t.s, sizeof(t.s), "%s", dmce_strerror(dmce_admin_disp_error(c->a)));
    return t;
}

/* Open the runtime directory and check that what the command needs answers. */
static int ctl_open(struct ctl *c, enum need need)
{
    unsigned req = c->timeout_ms ? DMCE_MIN(c->timeout_ms, REQUEST_MAX_MS) : REQUEST_MS;
    int r = dmce_admin_open(c->dir, req, &c->a);
    if (r < 0) {
        char dir[PATH_MAX] = "";
        if (!c->dir)
            dmce_admin_default_dir(dir, sizeof(dir));
        return fail(EX_UNREACHABLE, "cannot reach the cluster: runtime directory %s: %s",
                    c->dir ? c->dir : dir, dmce_strerror(r));
    }
    if (dmce_admin_has_dispatcher(c->a))
        return 0;
    if (need == NEED_DISPATCHER)
        return fail(EX_UNREACHABLE, "%s: no dispatcher answers at %s (%s); moves need one",
                    cmd_name(c), dmce_admin_disp_path(c->a), no_disp_why(c).s);
    dmce_adm_daemon_t *d;
    unsigned n, alive = 0;
    r = dmce_admin_daemons(c->a, &d, &n);
    for (unsigned i = 0; r == 0 && i < n; i++)
        alive += d[i].state == DMCE_DISP_ALIVE;
    if (r == 0 && alive == 0 && n > 0)
        fprintf(stderr, "dmcectl: %s: tried %u daemon socket(s), e.g. %s: none answers\n",
                cmd_name(c), n, d[0].path);
    free(d);
    if (r < 0 || alive == 0)
        return fail(EX_UNREACHABLE,
                    "cannot reach the cluster: no dispatcher at %s (%s) and no memory daemon "
                    "answers in %s%s%s",
                    dmce_admin_disp_path(c->a), no_disp_why(c).s, dmce_admin_dir(c->a),
                    r < 0 ? ": " : "", r < 0 ? dmce_strerror(r) : "");
    return 0;
}

/* The --daemon filter (0: all), then the cluster opened. */
static int open_for_daemon(struct ctl *c, const struct args *a, uint32_t *only)
{
    int rc = parse_daemon_opt(c, a, only);
    return rc ? rc : ctl_open(c, NEED_CLUSTER);
}

/* --daemon named a daemon the cluster does not have. */
static int no_daemon(const struct ctl *c, uint32_t id)
{
    return fail(EX_FAIL, "%s: no daemon memd[%u] in %s", cmd_name(c), id, dmce_admin_dir(c->a));
}

/* An error met after the start: 3 when the peer went away, else 1. */
static int op_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int op_fail(int r, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return fail(unreachable(r) ? EX_UNREACHABLE : EX_FAIL, "%s: %s", what, dmce_strerror(r));
}

/*
 * What the cluster looks like now: the daemons, each one's stats and
 * blocks, the dispatcher's stats and directory. Each part may have failed
 * on its own (its *_err); the view is shown as far as it goes.
 */
struct dview {
    dmce_adm_daemon_t d;
    int stats_err, blocks_err;
    dmce_stats_t s;
    dmce_msmp_block_info_t *b; /* owner: the view */
    unsigned nb;
};

struct view {
    int has_disp;
    pid_t disp_pid;
    int cs_err, dir_err, daemons_err;
    dmce_cluster_stats_t cs;
    dmce_disp_dir_hdr_t dh;
    dmce_disp_block_t *dir; /* owner: the view */
    unsigned ndir;
    struct dview *dm; /* owner: the view */
    unsigned nd;
};

enum { V_STATS = 1, V_BLOCKS = 2, V_DISP = 4 };

static void view_free(struct view *v)
{
    for (unsigned i = 0; i < v->nd; i++)
        free(v->dm[i].b);
    free(v->dm);
    free(v->dir);
    memset(v, 0, sizeof(*v));
}

/* Load what `what` asks; only == 0 or the daemon to keep. Returns an error only for ENOMEM. */
static int view_load(struct ctl *c, struct view *v, unsigned what, uint32_t only)
{
    memset(v, 0, sizeof(*v));
    v->has_disp = dmce_admin_has_dispatcher(c->a);
    v->disp_pid = dmce_admin_disp_pid(c->a);
    v->cs_err = v->dir_err = -ENOTSUP;
    if (v->has_disp && (what & V_DISP)) {
        v->cs_err = dmce_admin_cluster_stats(c->a, &v->cs);
        v->dir_err = dmce_admin_directory(c->a, &v->dh, &v->dir, &v->ndir);
    }
    dmce_adm_daemon_t *d;
    unsigned n;
    v->daemons_err = dmce_admin_daemons(c->a, &d, &n);
    if (v->daemons_err < 0)
        return v->daemons_err == -ENOMEM ? -ENOMEM : 0;
    v->dm = calloc(n ? n : 1, sizeof(*v->dm));
    if (!v->dm) {
        free(d);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        if (only && d[i].id != only)
            continue;
        struct dview *x = &v->dm[v->nd++];
        x->d = d[i];
        x->stats_err = x->blocks_err = -ENOTCONN;
        if (d[i].state != DMCE_DISP_ALIVE)
            continue;
        if (what & V_STATS)
            x->stats_err = dmce_admin_stats(c->a, d[i].id, &x->s);
        if (what & V_BLOCKS)
            x->blocks_err = dmce_admin_blocks(c->a, d[i].id, &x->b, &x->nb);
        if (x->stats_err == -ENOMEM || x->blocks_err == -ENOMEM) {
            free(d);
            return -ENOMEM;
        }
    }
    free(d);
    return 0;
}

static const struct dview *view_daemon(const struct view *v, uint32_t id)
{
    for (unsigned i = 0; i < v->nd; i++)
        if (v->dm[i].d.id == id)
            return &v->dm[i];
    return NULL;
}

/* Block `block` as daemon `id` holds it in role (0 primary, 1 copy), or NULL. */
static const dmce_msmp_block_info_t *view_block(const struct view *v, uint32_t id, uint32_t block,
                                                uint32_t role)
{
    const struct dview *x = view_daemon(v, id);
    for (unsigned i = 0; x && i < x->nb; i++)
        if (x->b[i].block == block && x->b[i].role == role)
            return &x->b[i];
    return NULL;
}

static const char *health_name(const struct dview *x)
{
    if (x->d.state != DMCE_DISP_ALIVE)
        return "dead";
    return x->stats_err == 0 || x->stats_err == -ENOTCONN ? "alive" : "unreachable";
}

/* A directory block's state: the dispatcher's, or lost / failing-over when its primary is dead. */
static const char *dir_state_name(const struct view *v, const dmce_disp_block_t *e)
{
    const struct dview *p = view_daemon(v, e->primary);
    if (p && p->d.state != DMCE_DISP_ALIVE)
        return e->mirror ? "failing-over" : "lost";
    switch (e->state) {
    case DMCE_DISP_MIRRORED: return "mirrored";
    case DMCE_DISP_REMIRRORING: return "remirroring";
    default: return "single";
    }
}

/* A daemon's own view of its primary's mirror (no dispatcher). */
static const char *mirror_state_name(uint32_t role, uint32_t st)
{
    if (role != 0)
        return "copy";
    return st == 2 ? "synced" : st == 1 ? "copying" : "none";
}

static const char *own_state_name(const dmce_msmp_block_info_t *b)
{
    return b->mirror_state == 2 ? "mirrored" : b->mirror_state == 1 ? "remirroring" : "single";
}

/* ---- counters: one table per struct drives the JSON and the text ----------------------------- */

enum fkind { F_U32, F_I32, F_INT, F_U64, F_BYTES, F_MS, F_US };

struct field {
    const char *name;
    size_t off;
    enum fkind kind;
};

#define SF(f, k)                                                                                   \
    {                                                                                              \
#f, offsetof(dmce_stats_t, f), k                                                           \
    }
static const struct field stats_fields[] = {
    SF(daemon_id, F_U32),
    SF(numa_node, F_I32),
    SF(pid, F_U32),
    SF(block_first, F_U32),
    SF(block_last, F_U32),
    SF(blocks, F_U64),
    SF(bytes_total, F_BYTES),
    SF(bytes_reserved, F_BYTES),
    SF(bytes_used, F_BYTES),
    SF(bytes_free, F_BYTES),
    SF(allocations, F_U64),
    SF(clients, F_U64),
    SF(sessions, F_U64),
    SF(sessions_orphaned, F_U64),
    SF(ops_setup, F_U64),
    SF(ops_malloc, F_U64),
    SF(ops_read, F_U64),
    SF(ops_write, F_U64),
    SF(ops_free, F_U64),
    SF(ops_disconnect, F_U64),
    SF(ops_stats, F_U64),
    SF(ops_errors, F_U64),
    SF(bytes_read, F_BYTES),
    SF(bytes_written, F_BYTES),
    SF(ops_map, F_U64),
    SF(fds_sent, F_U64),
    SF(prefaulted, F_BYTES),
    SF(prefault_pending, F_BYTES),
    SF(ring_clients, F_U64),
    SF(mirrors, F_U64),
    SF(mirror_copies, F_U64),
    SF(mirror_bytes_copied, F_BYTES),
    SF(mirror_broken, F_U64),
    SF(ops_persist, F_U64),
    SF(promoted, F_U64),
    SF(moved_in, F_U64),
    SF(moved_out, F_U64),
    SF(backups, F_U64),
    SF(backup_bytes, F_BYTES),
    SF(backup_repasses, F_U64),
    SF(restored, F_U64),
    SF(starting, F_U64),
    SF(spares, F_U64),
    SF(spares_used, F_U64),
    SF(ring_turns, F_U64),
    SF(turn_wait_us, F_U64),
    SF(mirrors_kept, F_U64),
    SF(mirror_adopted, F_U64),
    SF(uptime_ms, F_MS),
};
#undef SF
_Static_assert(DMCE_ARRAY_LEN(stats_fields) == DMCE_STAT_COUNT_, "every daemon stat is shown");

#define CF(f, k)                                                                                   \
    {                                                                                              \
#f, offsetof(dmce_cluster_stats_t, f), k                                                   \
    }
static const struct field cluster_fields[] = {
    CF(uptime_ms, F_MS),
    CF(epoch, F_U64),
    CF(mirroring, F_INT),
    CF(warn_one_copy, F_INT),
    CF(daemons_alive, F_U64),
    CF(daemons_dead, F_U64),
    CF(registrations, F_U64),
    CF(deaths, F_U64),
    CF(blocks, F_U64),
    CF(blocks_mirrored, F_U64),
    CF(blocks_single, F_U64),
    CF(blocks_remirroring, F_U64),
    CF(blocks_lost, F_U64),
    CF(promotions, F_U64),
    CF(remirrors_started, F_U64),
    CF(remirrors_done, F_U64),
    CF(remirror_bytes, F_BYTES),
    CF(last_failover_ms, F_MS),
    CF(picks, F_U64),
    CF(sessions, F_U64),
    CF(forwarded, F_U64),
    CF(moves, F_U64),
    CF(moves_failed, F_U64),
    CF(last_move_us, F_US),
    CF(remirrors_adopted, F_U64),
    CF(remirror_bytes_adopted, F_BYTES),
};
#undef CF
_Static_assert(DMCE_ARRAY_LEN(cluster_fields) == DMCE_DSTAT_COUNT_,
               "every dispatcher stat is shown");

static int64_t field_get(const void *base, const struct field *f)
{
    const char *p = (const char *)base + f->off;
    switch (f->kind) {
    case F_U32: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    case F_I32: {
        int32_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    case F_INT: {
        int v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return (int64_t)v;
    }
    }
}

static void fields_json(struct json *j, const void *base, const struct field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int64_t v = field_get(base, &f[i]);
        if (f[i].kind == F_I32)
            j_i64(j, f[i].name, v);
        else if (f[i].kind == F_INT)
            j_bool(j, f[i].name, v != 0);
        else
            j_u64(j, f[i].name, (uint64_t)v);
    }
}

static struct txt field_txt(const void *base, const struct field *f)
{
    int64_t v = field_get(base, f);
    struct txt t;
    switch (f->kind) {
    case F_I32: snprintf(t.s, sizeof(t.s), "%" PRId64, v); break;
    case F_INT: snprintf(t.s, sizeof(t.s), "%s", v ? "yes" : "no"); break;
    case F_BYTES: return size_txt((uint64_t)v);
    case F_MS: return ms_txt((uint64_t)v);
    case F_US: return dur_txt((uint64_t)v);
    default: snprintf(t.s, sizeof(t.s), "%" PRIu64, (uint64_t)v); break;
    }
    return t;
}

/* ---- status ---------------------------------------------------------------------------------- */

/* One line of the blocks part of status. */
struct brow {
    uint32_t block, primary, mirror;
    const char *state;
    const dmce_msmp_block_info_t *info; /* the primary's report (NULL: not reported) */
};

/* The blocks: the directory's, or (no dispatcher) every daemon's primaries. *rows: malloc'ed. */
static int status_blocks(const struct view *v, struct brow **rows, unsigned *n)
{
    unsigned cap = v->ndir;
    if (!v->has_disp)
        for (unsigned i = 0; i < v->nd; i++)
            cap += v->dm[i].nb;
    *n = 0;
    *rows = calloc(cap ? cap : 1, sizeof(**rows));
    if (!*rows)
        return -ENOMEM;
    if (v->has_disp) {
        for (unsigned i = 0; i < v->ndir; i++) {
            const dmce_disp_block_t *e = &v->dir[i];
            (*rows)[(*n)++] = (struct brow){e->block, e->primary, e->mirror, dir_state_name(v, e),
                                            view_block(v, e->primary, e->block, 0)};
        }
        return 0;
    }
    for (unsigned i = 0; i < v->nd; i++)
        for (unsigned k = 0; k < v->dm[i].nb; k++) {
            const dmce_msmp_block_info_t *b = &v->dm[i].b[k];
            if (b->role == 0)
                (*rows)[(*n)++] =
                    (struct brow){b->block, v->dm[i].d.id, b->peer, own_state_name(b), b};
        }
    return 0;
}

#define MAX_WARN 64

struct warnings {
    char text[MAX_WARN][200];
    unsigned n;
};

static void warn_add(struct warnings *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warn_add(struct warnings *w, const char *fmt, ...)
{
    if (w->n == MAX_WARN)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text[w->n++], sizeof(w->text[0]), fmt, ap);
    va_end(ap);
}

static void status_warnings(const struct ctl *c, const struct view *v, struct warnings *w)
{
    memset(w, 0, sizeof(*w));
    if (!v->has_disp)
        warn_add(w, "no dispatcher runs (%s: %s): no failover, no re-mirroring, no moves",
                 dmce_admin_disp_path(c->a), no_disp_why(c).s);
    if (v->has_disp && v->cs_err < 0)
        warn_add(w, "dispatcher stats: %s", dmce_strerror(v->cs_err));
    if (v->has_disp && v->dir_err < 0)
        warn_add(w, "dispatcher directory: %s", dmce_strerror(v->dir_err));
    if (v->daemons_err < 0)
        warn_add(w, "the daemons: %s", dmce_strerror(v->daemons_err));
    if (v->cs_err == 0) {
        if (v->cs.warn_one_copy)
            warn_add(w,
                     "mirroring is wanted but fewer than two daemons are alive: %" PRIu64
                     " block(s) have one copy",
                     v->cs.blocks_single);
        else if (v->cs.mirroring && v->cs.blocks_single)
            warn_add(w, "%" PRIu64 " block(s) have one copy until re-mirroring makes another",
                     v->cs.blocks_single);
        if (v->cs.blocks_lost)
            warn_add(w,
                     "%" PRIu64 " block(s) were lost since the dispatcher started (a daemon "
                     "died and they had no mirror)",
                     v->cs.blocks_lost);
    }
    for (unsigned i = 0; i < v->nd; i++) {
        const struct dview *x = &v->dm[i];
        if (x->d.state != DMCE_DISP_ALIVE)
            warn_add(w, "memd[%u] is dead", x->d.id);
        else if (x->stats_err < 0 && x->stats_err != -ENOTCONN)
            warn_add(w, "memd[%u] does not answer: %s", x->d.id, dmce_strerror(x->stats_err));
        if (x->d.flags & DMCE_ADM_DAEMON_DRAINING)
            warn_add(w, "memd[%u] is draining: %u primary block(s), %u mirror copies left", x->d.id,
                     x->d.primaries, x->d.mirrors);
    }
}

static const char *mirroring_name(const struct view *v)
{
    return v->cs_err < 0 ? "unknown" : v->cs.mirroring ? "on" : "off for now";
}

static void status_json(const struct ctl *c, const struct view *v, const struct warnings *w,
                        const struct brow *rows, unsigned nrows)
{
    struct json j = {.f = stdout};
    j_open(&j, NULL, '{');
    j_str(&j, "runtime_dir", dmce_admin_dir(c->a));
    if (v->has_disp) {
        j_open(&j, "dispatcher", '{');
        j_str(&j, "socket", dmce_admin_disp_path(c->a));
        if (v->disp_pid)
            j_u64(&j, "pid", (uint64_t)v->disp_pid);
        else
            j_null(&j, "pid");
        if (v->cs_err == 0)
            fields_json(&j, &v->cs, cluster_fields, DMCE_ARRAY_LEN(cluster_fields));
        j_close(&j, '}');
    } else {
        j_null(&j, "dispatcher");
    }
    j_open(&j, "warnings", '[');
    for (unsigned i = 0; i < w->n; i++)
        j_str(&j, NULL, w->text[i]);
    j_close(&j, ']');
    j_open(&j, "daemons", '[');
    for (unsigned i = 0; i < v->nd; i++) {
        const struct dview *x = &v->dm[i];
        j_open(&j, NULL, '{');
        j_u64(&j, "id", x->d.id);
        j_u64(&j, "pid", x->d.pid);
        j_i64(&j, "numa_node", x->d.numa_node);
        j_str(&j, "health", health_name(x));
        if (v->has_disp)
            j_u64(&j, "heartbeat_age_ms", x->d.pulse_age_ms);
        else
            j_null(&j, "heartbeat_age_ms");
        j_bool(&j, "draining", (x->d.flags & DMCE_ADM_DAEMON_DRAINING) != 0);
        j_bool(&j, "spawned", (x->d.flags & DMCE_ADM_DAEMON_SPAWNED) != 0);
        j_u64(&j, "capacity", x->d.capacity);
        j_u64(&j, "used", x->d.used);
        j_u64(&j, "free", x->d.free);
        j_u64(&j, "primaries", x->d.primaries);
        j_u64(&j, "mirrors", x->d.mirrors);
        j_u64(&j, "ops", x->d.ops);
        j_str(&j, "socket", x->d.path);
        j_close(&j, '}');
    }
    j_close(&j, ']');
    j_open(&j, "blocks", '[');
    for (unsigned i = 0; i < nrows; i++) {
        const struct brow *b = &rows[i];
        j_open(&j, NULL, '{');
        j_u64(&j, "id", b->block);
        j_u64(&j, "primary", b->primary);
        j_u64(&j, "mirror", b->mirror);
        j_str(&j, "state", b->state);
        if (b->info) {
            j_u64(&j, "size", b->info->size);
            j_u64(&j, "used", b->info->used);
            j_u64(&j, "allocations", b->info->nallocs);
        } else {
            j_null(&j, "size");
            j_null(&j, "used");
            j_null(&j, "allocations");
        }
        j_close(&j, '}');
    }
    j_close(&j, ']');
    j_open(&j, "clients", '[');
    for (unsigned i = 0; i < v->nd; i++) {
        const struct dview *x = &v->dm[i];
        if (x->stats_err < 0)
            continue;
        j_open(&j, NULL, '{');
        j_u64(&j, "daemon", x->d.id);
        j_u64(&j, "connections", x->s.clients);
        j_u64(&j, "sessions", x->s.sessions);
        j_u64(&j, "orphaned", x->s.sessions_orphaned);
        j_u64(&j, "ring", x->s.ring_clients);
        j_close(&j, '}');
    }
    j_close(&j, ']');
    j_close(&j, '}');
}

static void status_text(const struct ctl *c, const struct view *v, const struct warnings *w,
                        const struct brow *rows, unsigned nrows)
{
    printf("cluster %s\n", dmce_admin_dir(c->a));
    if (!v->has_disp) {
        printf("dispatcher: none; talking to the daemons directly\n");
    } else if (v->cs_err < 0) {
        printf("dispatcher: pid %d, %s\n", (int)v->disp_pid, dmce_strerror(v->cs_err));
    } else {
        const dmce_cluster_stats_t *s = &v->cs;
        printf("dispatcher: pid %d, up %s, mirroring %s, epoch %" PRIu64 "\n", (int)v->disp_pid,
               ms_txt(s->uptime_ms).s, mirroring_name(v), s->epoch);
        printf("  daemons %" PRIu64 " alive, %" PRIu64 " dead; blocks %" PRIu64 ": %" PRIu64
               " mirrored, %" PRIu64 " single, %" PRIu64 " re-mirroring, %" PRIu64 " lost ever\n",
               s->daemons_alive, s->daemons_dead, s->blocks, s->blocks_mirrored, s->blocks_single,
               s->blocks_remirroring, s->blocks_lost);
        printf("  moves %" PRIu64 " (%" PRIu64 " failed, last %s), promotions %" PRIu64
               " (last failover %s), re-mirrors %" PRIu64 "/%" PRIu64 " (%s copied; %" PRIu64
               " took over a kept copy, %s)\n",
               s->moves, s->moves_failed, s->moves ? dur_txt(s->last_move_us).s : "-",
               s->promotions, s->deaths ? ms_txt(s->last_failover_ms).s : "-", s->remirrors_done,
               s->remirrors_started, size_txt(s->remirror_bytes).s, s->remirrors_adopted,
               size_txt(s->remirror_bytes_adopted).s);
    }
    for (unsigned i = 0; i < w->n; i++)
        printf("warning: %s\n", w->text[i]);

    static const char *const dcols[] = {"ID",        "PID",       "NODE",     "<HEALTH",
                                        "HEARTBEAT", "<FLAGS",    "CAPACITY", "USED",
                                        "FREE",      "PRIMARIES", "MIRRORS",  "OPS"};
    struct table t;
    tab_init(&t, dcols, DMCE_ARRAY_LEN(dcols));
    for (unsigned i = 0; i < v->nd; i++) {
        const struct dview *x = &v->dm[i];
        tab_cell(&t, "%u", x->d.id);
        tab_cell(&t, "%u", x->d.pid);
        tab_cell(&t, "%d", x->d.numa_node);
        tab_cell(&t, "%s", health_name(x));
        tab_cell(&t, "%s", v->has_disp ? ms_txt(x->d.pulse_age_ms).s : "-");
        uint32_t fl = x->d.flags & (DMCE_ADM_DAEMON_DRAINING | DMCE_ADM_DAEMON_SPAWNED);
        tab_cell(&t, "%s",
                 fl == 0                          ? "-"
                 : fl == DMCE_ADM_DAEMON_DRAINING ? "draining"
                 : fl == DMCE_ADM_DAEMON_SPAWNED  ? "spawned"
                                                  : "draining,spawned");
        tab_cell(&t, "%s", size_txt(x->d.capacity).s);
        tab_cell(&t, "%s", size_txt(x->d.used).s);
        tab_cell(&t, "%s", size_txt(x->d.free).s);
        tab_cell(&t, "%u", x->d.primaries);
        tab_cell(&t, "%u", x->d.mirrors);
        tab_cell(&t, "%" PRIu64, x->d.ops);
    }
    printf("\nDAEMONS (%u)\n", v->nd);
    tab_print(&t, stdout);
    tab_free(&t);

    static const char *const bcols[] = {"BLOCK", "<PRIMARY", "<MIRROR", "<STATE",
                                        "SIZE",  "USED",     "ALLOCS"};
    tab_init(&t, bcols, DMCE_ARRAY_LEN(bcols));
    for (unsigned i = 0; i < nrows; i++) {
        const struct brow *b = &rows[i];
        tab_cell(&t, "%u", b->block);
        tab_cell(&t, "%s", daemon_txt(b->primary).s);
        tab_cell(&t, "%s", daemon_txt(b->mirror).s);
        tab_cell(&t, "%s", b->state);
        tab_cell(&t, "%s", b->info ? size_txt(b->info->size).s : "-");
        tab_cell(&t, "%s", b->info ? size_txt(b->info->used).s : "-");
        if (b->info)
            tab_cell(&t, "%" PRIu64, b->info->nallocs);
        else
            tab_cell(&t, "-");
    }
    printf("\nBLOCKS (%u)\n", nrows);
    tab_print(&t, stdout);
    tab_free(&t);

    static const char *const ccols[] = {"<DAEMON", "CONNECTIONS", "SESSIONS", "ORPHANED", "RING"};
    tab_init(&t, ccols, DMCE_ARRAY_LEN(ccols));
    for (unsigned i = 0; i < v->nd; i++) {
        const struct dview *x = &v->dm[i];
        if (x->stats_err < 0)
            continue;
        tab_cell(&t, "%s", daemon_txt(x->d.id).s);
        tab_cell(&t, "%" PRIu64, x->s.clients);
        tab_cell(&t, "%" PRIu64, x->s.sessions);
        tab_cell(&t, "%" PRIu64, x->s.sessions_orphaned);
        tab_cell(&t, "%" PRIu64, x->s.ring_clients);
    }
    printf("\nCLIENTS\n");
    tab_print(&t, stdout);
    tab_free(&t);
}

static int status_once(struct ctl *c)
{
    struct view v;
    if (view_load(c, &v, V_STATS | V_BLOCKS | V_DISP, 0) < 0) {
        view_free(&v);
        return fail(EX_FAIL, "status: %s", dmce_strerror(-ENOMEM));
    }
    struct brow *rows;
    unsigned nrows;
    struct warnings *w = malloc(sizeof(*w));
    if (!w || status_blocks(&v, &rows, &nrows) < 0) {
        free(w);
        view_free(&v);
        return fail(EX_FAIL, "status: %s", dmce_strerror(-ENOMEM));
    }
    status_warnings(c, &v, w);
    if (c->json)
        status_json(c, &v, w, rows, nrows);
    else
        status_text(c, &v, w, rows, nrows);
    int rc = v.daemons_err < 0 ? EX_UNREACHABLE : EX_OK;
    free(rows);
    free(w);
    view_free(&v);
    return rc;
}

/* Sleep secs, in slices, until a signal asks to stop. */
static void sleep_unless_stopped(double secs)
{
    uint64_t end = dmce_now_ms() + (uint64_t)(secs * 1000);
    while (!stop_requested) {
        uint64_t now = dmce_now_ms();
        if (now >= end)
            return;
        uint64_t ms = DMCE_MIN(end - now, 100);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int cmd_status(struct ctl *c, struct args *a)
{
    const char *watch = opt(c, a, "watch");
    double every = 1;
    if (watch && *watch) {
        char *end;
        every = strtod(watch, &end);
        if (*end || !(every >= 0.1 && every <= 86400))
            return usage_err(c,
                             "status: bad --watch interval '%s': seconds from 0.1 to 86400 "
                             "expected",
                             watch);
    }
    int rc = ctl_open(c, NEED_CLUSTER);
    if (rc || !watch)
        return rc ? rc : status_once(c);
    catch_signals();
    for (unsigned frame = 0; !stop_requested; frame++) {
        if (!c->json && c->tty_out) {
            fputs("\033[H\033[2J", stdout);
        } else if (!c->json && frame) {
            time_t now = time(NULL);
            struct tm tm;
            char when[64];
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
            printf("\n---- %s ----\n", when);
        }
        status_once(c);
        fflush(stdout);
        sleep_unless_stopped(every);
    }
    return EX_OK;
}

/* ---- blocks ---------------------------------------------------------------------------------- */

/* One block as one daemon holds it, or a directory entry no daemon reported (info NULL). */
struct blrow {
    uint32_t daemon;
    const dmce_msmp_block_info_t *info;
    const dmce_disp_block_t *dir; /* its directory entry (NULL: none, or no dispatcher) */
    uint32_t block, role;
};

static int cmp_blrow(const void *x, const void *y)
{
    const struct blrow *a = x, *b = y;
    if (a->block != b->block)
        return (a->block > b->block) - (a->block < b->block);
    return (a->role > b->role) - (a->role < b->role);
}

static const dmce_disp_block_t *dir_entry(const struct view *v, uint32_t block)
{
    for (unsigned i = 0; i < v->ndir; i++)
        if (v->dir[i].block == block)
            return &v->dir[i];
    return NULL;
}

static int cmd_blocks(struct ctl *c, struct args *a)
{
    uint32_t only;
    int rc = open_for_daemon(c, a, &only);
    if (rc)
        return rc;
    struct view v;
    struct blrow *rows = NULL;
    unsigned n = 0, cap = 0;
    if (view_load(c, &v, V_BLOCKS | V_DISP, only) == 0) {
        cap = v.ndir;
        for (unsigned i = 0; i < v.nd; i++)
            cap += v.dm[i].nb;
        rows = calloc(cap ? cap : 1, sizeof(*rows));
    }
    if (!rows) {
        view_free(&v);
        return fail(EX_FAIL, "blocks: %s", dmce_strerror(-ENOMEM));
    }
    if (only && !view_daemon(&v, only)) {
        view_free(&v);
        free(rows);
        return no_daemon(c, only);
    }
    for (unsigned i = 0; i < v.nd; i++)
        for (unsigned k = 0; k < v.dm[i].nb; k++) {
            const dmce_msmp_block_info_t *b = &v.dm[i].b[k];
            rows[n++] = (struct blrow){v.dm[i].d.id, b, dir_entry(&v, b->block), b->block, b->role};
        }
    for (unsigned i = 0; i < v.ndir; i++) { /* the directory's primaries nobody reported */
        const dmce_disp_block_t *e = &v.dir[i];
        if ((!only || e->primary == only) && !view_block(&v, e->primary, e->block, 0))
            rows[n++] = (struct blrow){e->primary, NULL, e, e->block, 0};
    }
    qsort(rows, n, sizeof(*rows), cmp_blrow);
    if (c->json) {
        struct json j = {.f = stdout};
        j_list_doc(&j, "blocks");
        for (unsigned i = 0; i < n; i++) {
            const struct blrow *r = &rows[i];
            j_open(&j, NULL, '{');
            j_u64(&j, "block", r->block);
            j_u64(&j, "daemon", r->daemon);
            j_str(&j, "role", r->role ? "mirror" : "primary");
            j_bool(&j, "reported", r->info != NULL);
            if (r->info) {
                j_u64(&j, "size", r->info->size);
                j_u64(&j, "used", r->info->used);
                j_u64(&j, "allocations", r->info->nallocs);
                j_u64(&j, "peer", r->info->peer);
                j_str(&j, "mirror_state", mirror_state_name(r->role, r->info->mirror_state));
                j_u64(&j, "mirror_copied", r->info->copied);
            } else {
                j_null(&j, "size");
                j_null(&j, "used");
                j_null(&j, "allocations");
                j_u64(&j, "peer", r->dir ? r->dir->mirror : 0);
                j_null(&j, "mirror_state");
                j_null(&j, "mirror_copied");
            }
            j_str(&j, "state",
                  r->dir                   ? dir_state_name(&v, r->dir)
                  : r->info && !v.has_disp ? own_state_name(r->info)
                                           : NULL);
            j_close(&j, '}');
        }
        j_list_doc_end(&j);
    } else {
        static const char *const cols[] = {"BLOCK",  "<DAEMON", "<ROLE",   "SIZE",   "USED",
                                           "ALLOCS", "<PEER",   "<MIRROR", "COPIED", "<STATE"};
        struct table t;
        tab_init(&t, cols, DMCE_ARRAY_LEN(cols));
        for (unsigned i = 0; i < n; i++) {
            const struct blrow *r = &rows[i];
            const dmce_msmp_block_info_t *b = r->info;
            tab_cell(&t, "%u", r->block);
            tab_cell(&t, "%s", daemon_txt(r->daemon).s);
            tab_cell(&t, "%s", r->role ? "mirror" : "primary");
            tab_cell(&t, "%s", b ? size_txt(b->size).s : "-");
            tab_cell(&t, "%s", b && !r->role ? size_txt(b->used).s : "-");
            if (b && !r->role)
                tab_cell(&t, "%" PRIu64, b->nallocs);
            else
                tab_cell(&t, "-");
            tab_cell(&t, "%s%s", r->role ? "of " : "",
                     daemon_txt(b        ? b->peer
                                : r->dir ? r->dir->mirror
                                         : 0)
                         .s);
            tab_cell(&t, "%s", b ? mirror_state_name(r->role, b->mirror_state) : "-");
            tab_cell(&t, "%s", b && b->copied ? size_txt(b->copied).s : "-");
            tab_cell(&t, "%s",
                     r->dir                         ? dir_state_name(&v, r->dir)
                     : b && !v.has_disp && !r->role ? own_state_name(b)
                                                    : "-");
        }
        tab_print(&t, stdout);
        tab_free(&t);
        if (!v.has_disp)
            printf("(no dispatcher: each daemon's own view)\n");
    }
    for (unsigned i = 0; i < v.nd; i++)
        if (v.dm[i].d.state == DMCE_DISP_ALIVE && v.dm[i].blocks_err < 0)
            fprintf(stderr, "dmcectl: blocks: memd[%u]: %s\n", v.dm[i].d.id,
                    dmce_strerror(v.dm[i].blocks_err));
    free(rows);
    view_free(&v);
    return EX_OK;
}

/* ---- clients --------------------------------------------------------------------------------- */

static int cmd_clients(struct ctl *c, struct args *a)
{
    uint32_t only;
    int rc = open_for_daemon(c, a, &only);
    if (rc)
        return rc;
    dmce_adm_daemon_t *d;
    unsigned nd;
    int r = dmce_admin_daemons(c->a, &d, &nd);
    if (r < 0)
        return op_fail(r, "clients: the daemons");
    static const char *const cols[] = {"<DAEMON",  "SESSION", "PID",        "UID",
                                       "RESERVED", "USED",    "<TRANSPORT", "<ORPHANED"};
    struct table t;
    struct json j = {.f = stdout};
    tab_init(&t, cols, DMCE_ARRAY_LEN(cols));
    if (c->json) {
        j_list_doc(&j, "clients");
    }
    unsigned seen = 0;
    for (unsigned i = 0; i < nd; i++) {
        if ((only && d[i].id != only) || d[i].state != DMCE_DISP_ALIVE) {
            seen += only && d[i].id == only;
            continue;
        }
        seen++;
        dmce_adm_session_t *s;
        unsigned ns;
        r = dmce_admin_sessions(c->a, d[i].id, &s, &ns);
        if (r < 0) {
            fprintf(stderr, "dmcectl: clients: memd[%u]: %s\n", d[i].id, dmce_strerror(r));
            rc = EX_FAIL;
            continue;
        }
        for (unsigned k = 0; k < ns; k++) {
            const dmce_adm_session_t *e = &s[k];
            int orphan = (e->flags & DMCE_ADM_SESS_ORPHAN) != 0;
            const char *tr = orphan ? NULL : e->flags & DMCE_ADM_SESS_RING ? "ring" : "socket";
            if (c->json) {
                j_open(&j, NULL, '{');
                j_u64(&j, "daemon", d[i].id);
                j_u64(&j, "session", e->id);
                j_u64(&j, "pid", e->pid);
                j_u64(&j, "uid", e->uid);
                j_u64(&j, "reserved", e->reserved);
                j_u64(&j, "used", e->used);
                j_str(&j, "transport", tr);
                j_bool(&j, "orphaned", orphan);
                j_u64(&j, "orphan_left_ms", e->orphan_left_ms);
                j_close(&j, '}');
                continue;
            }
            tab_cell(&t, "%s", daemon_txt(d[i].id).s);
            tab_cell(&t, "0x%08x", e->id);
            tab_cell(&t, "%u", e->pid);
            tab_cell(&t, "%u", e->uid);
            tab_cell(&t, "%s", size_txt(e->reserved).s);
            tab_cell(&t, "%s", size_txt(e->used).s);
            tab_cell(&t, "%s", tr ? tr : "-");
            if (orphan)
                tab_cell(&t, "yes, ends in %s", ms_txt(e->orphan_left_ms).s);
            else
                tab_cell(&t, "no");
        }
        free(s);
    }
    if (c->json)
        j_list_doc_end(&j);
    else if (t.n)
        tab_print(&t, stdout);
    else
        printf("no sessions\n");
    tab_free(&t);
    free(d);
    if (only && !seen)
        return no_daemon(c, only);
    return rc;
}

/* ---- stats ----------------------------------------------------------------------------------- */

static int cmd_stats(struct ctl *c, struct args *a)
{
    uint32_t only;
    int rc = open_for_daemon(c, a, &only);
    if (rc)
        return rc;
    struct view v;
    if (view_load(c, &v, V_STATS | V_DISP, only) < 0) {
        view_free(&v);
        return fail(EX_FAIL, "stats: %s", dmce_strerror(-ENOMEM));
    }
    if (only && !view_daemon(&v, only)) {
        view_free(&v);
        return no_daemon(c, only);
    }
    for (unsigned i = 0; i < v.nd; i++)
        if (v.dm[i].stats_err < 0 && v.dm[i].d.state == DMCE_DISP_ALIVE) {
            fprintf(stderr, "dmcectl: stats: memd[%u]: %s\n", v.dm[i].d.id,
                    dmce_strerror(v.dm[i].stats_err));
            rc = EX_FAIL; /* a dead daemon has no counters: it is left out, no error */
        }
    if (c->json) {
        struct json j = {.f = stdout};
        j_list_doc(&j, "daemons");
        for (unsigned i = 0; i < v.nd; i++) {
            if (v.dm[i].stats_err < 0)
                continue;
            j_open(&j, NULL, '{');
            fields_json(&j, &v.dm[i].s, stats_fields, DMCE_ARRAY_LEN(stats_fields));
            j_close(&j, '}');
        }
        j_close(&j, ']');
        if (v.cs_err == 0 && !only) {
            j_open(&j, "dispatcher", '{');
            fields_json(&j, &v.cs, cluster_fields, DMCE_ARRAY_LEN(cluster_fields));
            j_close(&j, '}');
        } else {
            j_null(&j, "dispatcher");
        }
        j_close(&j, '}');
    } else {
        /* One row per counter, one column per daemon. */
        const char *cols[TAB_COLS] = {"<COUNTER"};
        char names[TAB_COLS][16];
        unsigned nc = 1, with_stats = 0;
        const struct dview *shown[TAB_COLS];
        for (unsigned i = 0; i < v.nd; i++) {
            if (v.dm[i].stats_err < 0 || with_stats++ >= TAB_COLS - 1)
                continue;
            snprintf(names[nc], sizeof(names[nc]), "memd[%u]", v.dm[i].d.id);
            shown[nc] = &v.dm[i];
            cols[nc] = names[nc];
            nc++;
        }
        struct table t;
        if (nc > 1) {
            tab_init(&t, cols, nc);
            for (size_t f = 0; f < DMCE_ARRAY_LEN(stats_fields); f++) {
                tab_cell(&t, "%s", stats_fields[f].name);
                for (unsigned k = 1; k < nc; k++)
                    tab_cell(&t, "%s", field_txt(&shown[k]->s, &stats_fields[f]).s);
            }
            tab_print(&t, stdout);
            tab_free(&t);
            if (nc - 1 < with_stats)
                printf("(%u more daemon(s): --daemon ID or --json)\n", with_stats - (nc - 1));
        }
        if (v.cs_err == 0 && !only) {
            static const char *const dcols[] = {"<DISPATCHER", "VALUE"};
            tab_init(&t, dcols, 2);
            for (size_t f = 0; f < DMCE_ARRAY_LEN(cluster_fields); f++) {
                tab_cell(&t, "%s", cluster_fields[f].name);
                tab_cell(&t, "%s", field_txt(&v.cs, &cluster_fields[f]).s);
            }
            printf("%s", nc > 1 ? "\n" : "");
            tab_print(&t, stdout);
            tab_free(&t);
        } else if (!v.has_disp && !only) {
            printf("\nno dispatcher runs (%s: %s)\n", dmce_admin_disp_path(c->a), no_disp_why(c).s);
        }
    }
    view_free(&v);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static const char *job_state_name(uint32_t st)
{
    switch (st) {
    case DMCE_ADM_JOB_QUEUED: return "queued";
    case DMCE_ADM_JOB_RUNNING: return "running";
    case DMCE_ADM_JOB_DONE: return "done";
    case DMCE_ADM_JOB_FAILED: return "failed";
    default: return "none";
    }
}

static void job_json(struct json *j, const char *key, const dmce_adm_job_t *e)
{
    j_open(j, key, '{');
    j_u64(j, "id", e->id);
    j_u64(j, "block", e->block);
    j_u64(j, "from", e->from);
    j_u64(j, "to", e->to);
    j_str(j, "state", job_state_name(e->state));
    j_error(j, e->err);
    j_u64(j, "bytes", e->bytes);
    j_u64(j, "age_ms", e->age_ms);
    j_u64(j, "took_us", e->took_us);
    j_u64(j, "frozen_us", e->frozen_us);
    j_close(j, '}');
}

static int cmd_jobs(struct ctl *c, struct args *a)
{
    (void)a;
    int rc = ctl_open(c, NEED_DISPATCHER);
    if (rc)
        return rc;
    dmce_adm_job_t *v;
    unsigned n;
    int r = dmce_admin_jobs(c->a, &v, &n);
    if (r < 0)
        return op_fail(r, "jobs");
    if (c->json) {
        struct json j = {.f = stdout};
        j_list_doc(&j, "jobs");
        for (unsigned i = 0; i < n; i++)
            job_json(&j, NULL, &v[i]);
        j_list_doc_end(&j);
    } else {
        static const char *const cols[] = {"JOB", "BLOCK",    "<FROM", "<TO",  "<STATE",
                                           "AGE", "DURATION", "PAUSE", "SIZE", "<ERROR"};
        struct table t;
        tab_init(&t, cols, DMCE_ARRAY_LEN(cols));
        for (unsigned i = 0; i < n; i++) {
            const dmce_adm_job_t *e = &v[i];
            int over = e->state == DMCE_ADM_JOB_DONE || e->state == DMCE_ADM_JOB_FAILED;
            tab_cell(&t, "%u", e->id);
            tab_cell(&t, "%u", e->block);
            tab_cell(&t, "%s", daemon_txt(e->from).s);
            tab_cell(&t, "%s", daemon_txt(e->to).s);
            tab_cell(&t, "%s", job_state_name(e->state));
            tab_cell(&t, "%s", ms_txt(e->age_ms).s);
            tab_cell(&t, "%s", over && e->took_us ? dur_txt(e->took_us).s : "-");
            tab_cell(&t, "%s", over && e->frozen_us ? dur_txt(e->frozen_us).s : "-");
            tab_cell(&t, "%s", size_txt(e->bytes).s);
            tab_cell(&t, "%s", e->err ? dmce_strerror(e->err) : "");
        }
        if (n)
            tab_print(&t, stdout);
        else
            printf("no moves since the dispatcher started\n");
        tab_free(&t);
    }
    free(v);
    return EX_OK;
}

/* ---- migrate --------------------------------------------------------------------------------- */

/* What a refusal of migrate or drain means, in the dispatcher's words (docs/msmp.md). */
static const char *move_refusal(int r)
{
    switch (r) {
    case DMCE_ENOBLOCK: return "no such block in the directory";
    case -EALREADY: return "it is there already";
    case -ENODEV: return "no such live daemon, or no other daemon can take it";
    case -EBUSY: return "a move of it is queued or running already, or the target is draining";
    case DMCE_ENOMEM: return "the target has no room for it";
    case -EAGAIN:
        return "its daemon is failing over, or the dispatcher's job table is full: "
               "try again";
    default: return NULL;
    }
}

static int refused(int r, const char *what)
{
    const char *why = move_refusal(r);
    if (unreachable(r) || !why)
        return op_fail(r, "%s", what);
    return fail(EX_FAIL, "%s: %s (%s)", what, why, dmce_strerror(r));
}

struct follow {
    struct bar bar;
    const char *what;
};

static int job_progress(const dmce_adm_job_t *j, void *arg)
{
    struct follow *f = arg;
    char line[160];
    snprintf(line, sizeof(line), "%s: job %u %s, %s", f->what, j->id, job_state_name(j->state),
             ms_txt(j->age_ms).s);
    bar_text(&f->bar, line);
    return stop_requested;
}

/* The outcome of a follow that did not end in success, as the exit and the message say it. */
static int follow_fail(int r, const char *what, const char *item)
{
    if (r == -ETIMEDOUT)
        return fail(EX_FAIL,
                    "%s: %s still not finished at the time limit; it goes on (raise "
                    "--timeout to wait longer)",
                    what, item);
    if (r == -EINTR)
        return fail(EX_FAIL, "%s: stopped following %s; it goes on", what, item);
    return fail(EX_FAIL, "%s: following %s: %s", what, item, dmce_strerror(r));
}

static int cmd_migrate(struct ctl *c, struct args *a)
{
    uint32_t block = 0, to = 0;
    int32_t node = -1;
    int rc = parse_id(c, "block ID", a->pos[0], MAX_BLOCK_ID, &block);
    const char *sto = opt(c, a, "to"), *snode = opt(c, a, "to-node");
    if (!rc && sto && snode)
        return usage_err(c, "migrate: --to and --to-node exclude each other");
    if (!rc && sto)
        rc = parse_id(c, "daemon ID", sto, MAX_DAEMON_ID, &to);
    if (!rc && snode) {
        int64_t v;
        if (dmce_parse_i64(snode, &v) < 0 || v < 0 || v > MAX_NUMA_NODE)
            return usage_err(c, "migrate: bad NUMA node '%s': a number from 0 to %d expected",
                             snode, MAX_NUMA_NODE);
        node = (int32_t)v;
    }
    if (rc || (rc = ctl_open(c, NEED_DISPATCHER)))
        return rc;
    char what[64];
    snprintf(what, sizeof(what), "migrate block %u", block);
    uint32_t id = 0;
    int r = dmce_admin_migrate(c->a, block, to, node, &id);
    if (r < 0)
        return refused(r, what);
    dmce_adm_job_t j = {.id = id, .block = block, .to = to, .state = DMCE_ADM_JOB_QUEUED};
    if (has_opt(c, a, "no-wait")) {
        dmce_admin_job(c->a, id, &j);
        if (c->json) {
            struct json js = {.f = stdout};
            j_open(&js, NULL, '{');
            job_json(&js, "job", &j);
            j_str(&js, "result", job_state_name(j.state));
            j_close(&js, '}');
        } else {
            printf("block %u: move queued as job %u (dmcectl jobs)\n", block, id);
        }
        return EX_OK;
    }
    struct follow f = {.what = what};
    bar_init(&f.bar, c);
    catch_signals();
    r = dmce_admin_wait_job(c->a, id, c->timeout_ms ? c->timeout_ms : MIGRATE_WAIT_MS, job_progress,
                            &f, &j);
    bar_end(&f.bar);
    if (c->json) {
        struct json js = {.f = stdout};
        j_open(&js, NULL, '{');
        job_json(&js, "job", &j);
        j_str(&js, "result",
              r == 0                           ? "done"
              : j.state == DMCE_ADM_JOB_FAILED ? "failed"
                                               : "unknown");
        j_close(&js, '}');
    }
    char item[32];
    snprintf(item, sizeof(item), "job %u", id);
    if (r < 0 && j.state != DMCE_ADM_JOB_FAILED)
        return follow_fail(r, what, item);
    if (r < 0)
        return fail(EX_FAIL, "%s: the move from %s to %s failed: %s; the block stays where it was",
                    what, daemon_txt(j.from).s, daemon_txt(j.to).s, dmce_strerror(r));
    if (!c->json) {
        if (j.took_us == 0 && j.from == j.to)
            printf("block %u is on %s already\n", block, daemon_txt(j.to).s);
        else
            printf("block %u moved from %s to %s in %s (a %s block; no byte copied; requests "
                   "on it waited %s)\n",
                   block, daemon_txt(j.from).s, daemon_txt(j.to).s, dur_txt(j.took_us).s,
                   size_txt(j.bytes).s, dur_txt(j.frozen_us).s);
    }
    return EX_OK;
}

/* ---- drain ----------------------------------------------------------------------------------- */

static int drain_progress(const dmce_admin_drain_progress_t *p, void *arg)
{
    struct follow *f = arg;
    char tail[96];
    snprintf(tail, sizeof(tail), "%u primaries, %u mirror copies left", p->primaries, p->mirrors);
    bar_show(&f->bar, p->total - DMCE_MIN(p->total, p->primaries + p->mirrors), p->total, "blocks",
             tail);
    return stop_requested;
}

static int cmd_drain(struct ctl *c, struct args *a)
{
    uint32_t id = 0;
    int rc = parse_id(c, "daemon ID", a->pos[0], MAX_DAEMON_ID, &id);
    if (rc || (rc = ctl_open(c, NEED_DISPATCHER)))
        return rc;
    int cancel = has_opt(c, a, "cancel");
    char what[64];
    snprintf(what, sizeof(what), "drain memd[%u]", id);
    dmce_adm_job_t *jobs;
    unsigned nj;
    uint32_t after = 0, count = 0;
    int r = dmce_admin_jobs(c->a, &jobs, &nj);
    if (r < 0)
        return op_fail(r, "%s: the jobs", what);
    for (unsigned i = 0; i < nj; i++)
        after = DMCE_MAX(after, jobs[i].id);
    free(jobs);
    r = dmce_admin_drain(c->a, id, cancel, &count);
    if (r < 0)
        return refused(r, what);
    struct json j = {.f = stdout};
    if (c->json) {
        j_open(&j, NULL, '{');
        j_u64(&j, "daemon", id);
        j_bool(&j, "cancelled", cancel);
        j_u64(&j, cancel ? "dropped" : "queued", count);
    }
    if (cancel || has_opt(c, a, "no-wait")) {
        if (c->json)
            j_close(&j, '}');
        else if (cancel)
            printf("memd[%u]: drain cancelled; %u queued move(s) dropped\n", id, count);
        else
            printf("memd[%u] is draining: %u move(s) queued, its mirror copies follow\n", id,
                   count);
        return EX_OK;
    }
    struct follow f = {.what = what};
    bar_init(&f.bar, c);
    catch_signals();
    dmce_admin_drain_progress_t p;
    r = dmce_admin_wait_drained(c->a, id, after, c->timeout_ms ? c->timeout_ms : DRAIN_WAIT_MS,
                                drain_progress, &f, &p);
    bar_end(&f.bar);
    if (c->json) {
        j_str(&j, "result", r == 0 ? "drained" : p.moves_failed ? "failed" : "unknown");
        j_u64(&j, "total", p.total);
        j_u64(&j, "primaries", p.primaries);
        j_u64(&j, "mirrors", p.mirrors);
        j_u64(&j, "moves_done", p.moves_done);
        j_u64(&j, "moves_failed", p.moves_failed);
        j_u64(&j, "elapsed_ms", p.elapsed_ms);
        if (p.moves_failed)
            job_json(&j, "failed_job", &p.failed);
        else
            j_null(&j, "failed_job");
        j_close(&j, '}');
    }
    if (r == 0) {
        if (!c->json)
            printf("memd[%u] holds nothing now: %u move(s) done, %u block(s) left it in %s; it can "
                   "be stopped\n",
                   id, p.moves_done, p.total, ms_txt(p.elapsed_ms).s);
        return EX_OK;
    }
    if (p.moves_failed)
        return fail(EX_FAIL,
                    "%s: the move of block %u (job %u) failed: %s; the daemon stays "
                    "draining (the dispatcher tries again; 'dmcectl drain %u --cancel' "
                    "stops it)",
                    what, p.failed.block, p.failed.id, dmce_strerror(p.failed.err), id);
    if (r == -ENODEV)
        return fail(EX_FAIL, "%s: the daemon died or left the cluster while draining", what);
    return follow_fail(r, what, "the drain");
}

/* ---- backup, restore ------------------------------------------------------------------------- */

/* dir made absolute (the daemon has another cwd); no check that it exists. */
static int abs_dir(const struct ctl *c, const char *in, char *out, size_t cap)
{
    char cwd[PATH_MAX];
    int n;
    if (in[0] == '/')
        n = snprintf(out, cap, "%s", in);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(out, cap, "%s/%s", cwd, in);
    else
        return fail(EX_FAIL, "%s: the current directory: %s", cmd_name(c), strerror(errno));
    if (n < 0 || (size_t)n >= cap || (size_t)n > DMCE_ADM_DIR_MAX)
        return usage_err(c, "%s: --dir '%s' is too long (at most %u bytes once absolute)",
                         cmd_name(c), in, DMCE_ADM_DIR_MAX);
    return 0;
}

static const char *task_kind_name(uint32_t k)
{
    switch (k) {
    case DMCE_ADM_TASK_BACKUP: return "backup";
    case DMCE_ADM_TASK_RESTORE: return "restore";
    case DMCE_ADM_TASK_PERIODIC: return "periodic";
    case DMCE_ADM_TASK_RECOVER: return "recover";
    default: return "none";
    }
}

static void task_json(struct json *j, const char *key, const dmce_adm_task_t *t)
{
    j_open(j, key, '{');
    j_u64(j, "id", t->id);
    j_str(j, "kind", task_kind_name(t->kind));
    j_str(j, "state", job_state_name(t->state));
    j_error(j, t->err);
    j_str(j, "detail", t->detail[0] ? t->detail : NULL);
    j_u64(j, "blocks_total", t->blocks_total);
    j_u64(j, "blocks_done", t->blocks_done);
    j_u64(j, "bytes_total", t->bytes_total);
    j_u64(j, "bytes_done", t->bytes_done);
    j_u64(j, "bytes_written", t->bytes_written);
    j_u64(j, "pages_written", t->pages_written);
    j_u64(j, "elapsed_us", t->elapsed_us);
    j_close(j, '}');
}

/* The daemon's error, said for people: a daemon without backups says so. */
static const char *task_refusal(int r)
{
    return r == -EOPNOTSUPP ? "this daemon does not take backups (no backup support in it)"
                            : dmce_strerror(r);
}

enum task_op { T_BACKUP, T_RESTORE };

/* One daemon asked for a backup or a restore, and its task. */
struct target {
    uint32_t daemon;
    uint32_t block; /* 0: all */
    uint32_t task, queued;
    int err; /* the request's refusal, or the follow's error */
    dmce_adm_task_t t;
};

struct task_follow {
    struct bar bar;
    enum task_op op;
};

static int tasks_progress(const dmce_adm_task_t *t, unsigned n, void *arg)
{
    struct task_follow *f = arg;
    uint64_t done = 0, total = 0, pages = 0;
    uint32_t bd = 0, bt = 0;
    for (unsigned i = 0; i < n; i++) {
        done += t[i].bytes_done;
        total += t[i].bytes_total;
        pages += t[i].pages_written;
        bd += t[i].blocks_done;
        bt += t[i].blocks_total;
    }
    char tail[96];
    if (f->op == T_BACKUP)
        snprintf(tail, sizeof(tail), "blocks %u/%u  pages written %" PRIu64, bd, bt, pages);
    else
        snprintf(tail, sizeof(tail), "blocks %u/%u", bd, bt);
    bar_show(&f->bar, done, total, NULL, tail);
    return stop_requested;
}

static void tasks_report(const struct ctl *c, enum task_op op, const char *dir,
                         const struct target *t, unsigned n, int followed, int r)
{
    const char *name = op == T_BACKUP ? "backup" : "restore";
    uint64_t scanned = 0, written = 0, pages = 0, us = 0;
    uint32_t blocks = 0;
    for (unsigned i = 0; i < n; i++) {
        if (t[i].err && !t[i].task)
            continue;
        scanned += t[i].t.bytes_done;
        written += t[i].t.bytes_written;
        pages += t[i].t.pages_written;
        blocks += t[i].t.blocks_done;
        us = DMCE_MAX(us, t[i].t.elapsed_us);
    }
    if (c->json) {
        struct json j = {.f = stdout};
        j_open(&j, NULL, '{');
        j_str(&j, "operation", name);
        j_str(&j, "dir", dir && *dir ? dir : NULL);
        j_open(&j, "tasks", '[');
        for (unsigned i = 0; i < n; i++) {
            j_open(&j, NULL, '{');
            j_u64(&j, "daemon", t[i].daemon);
            j_u64(&j, "block", t[i].block);
            j_u64(&j, "queued", t[i].queued);
            if (t[i].err && !t[i].task) {
                j_error(&j, t[i].err);
                j_null(&j, "task");
            } else {
                j_error(&j, 0);
                task_json(&j, "task", &t[i].t);
            }
            j_close(&j, '}');
        }
        j_close(&j, ']');
        j_str(&j, "result", !followed ? "queued" : r == 0 ? "done" : "failed");
        j_u64(&j, "blocks", blocks);
        j_u64(&j, "bytes_scanned", scanned);
        j_u64(&j, "bytes_written", written);
        j_u64(&j, "pages_written", pages);
        j_u64(&j, "elapsed_us", us);
        j_close(&j, '}');
        return;
    }
    static const char *const cols[] = {"<DAEMON", "TASK",    "<STATE",  "BLOCKS",
                                       "TIME",    "SCANNED", "WRITTEN", "PAGES"};
    static const char *const rcols[] = {"<DAEMON", "TASK", "<STATE", "BLOCKS", "TIME", "LOADED"};
    struct table tb;
    if (op == T_BACKUP)
        tab_init(&tb, cols, DMCE_ARRAY_LEN(cols));
    else
        tab_init(&tb, rcols, DMCE_ARRAY_LEN(rcols));
    for (unsigned i = 0; i < n; i++) {
        if (t[i].err && !t[i].task)
            continue;
        const dmce_adm_task_t *k = &t[i].t;
        tab_cell(&tb, "%s", daemon_txt(t[i].daemon).s);
        tab_cell(&tb, "%u", t[i].task);
        tab_cell(&tb, "%s", job_state_name(k->state));
        tab_cell(&tb, "%u/%u", k->blocks_done, k->blocks_total);
        tab_cell(&tb, "%s", dur_txt(k->elapsed_us).s);
        tab_cell(&tb, "%s", size_txt(k->bytes_done).s);
        if (op == T_BACKUP) {
            tab_cell(&tb, "%s", size_txt(k->bytes_written).s);
            tab_cell(&tb, "%" PRIu64, k->pages_written);
        }
    }
    if (tb.n)
        tab_print(&tb, stdout);
    tab_free(&tb);
    if (!followed)
        printf("%s queued; follow it with 'dmcectl backup status'\n", name);
    else if (op == T_BACKUP)
        printf("backup %s: %u block(s), %s scanned, %s written (%" PRIu64 " pages) in %s%s%s\n",
               r == 0 ? "done" : "failed", blocks, size_txt(scanned).s, size_txt(written).s, pages,
               dur_txt(us).s, dir && *dir ? " to " : "", dir && *dir ? dir : "");
    else
        printf("restore %s: %u block(s), %s loaded in %s\n", r == 0 ? "done" : "failed", blocks,
               size_txt(scanned).s, dur_txt(us).s);
}

/* Ask every target, follow the tasks that started, report. */
static int tasks_run(struct ctl *c, enum task_op op, struct target *t, unsigned n, uint32_t flags,
                     const char *dir, int no_wait)
{
    const char *name = op == T_BACKUP ? "backup" : "restore";
    int rc = EX_OK;
    uint32_t *daemons = calloc(n ? n : 1, sizeof(*daemons)), *ids = calloc(n ? n : 1, sizeof(*ids));
    dmce_adm_task_t *tasks = calloc(n ? n : 1, sizeof(*tasks));
    unsigned *where = calloc(n ? n : 1, sizeof(*where)), started = 0;
    if (!daemons || !ids || !tasks || !where) {
        rc = fail(EX_FAIL, "%s: %s", name, dmce_strerror(-ENOMEM));
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        t[i].err = op == T_BACKUP ? dmce_admin_backup(c->a, t[i].daemon, t[i].block, flags, dir,
                                                      &t[i].task, &t[i].queued)
                                  : dmce_admin_restore(c->a, t[i].daemon, t[i].block, dir,
                                                       &t[i].task, &t[i].queued);
        if (t[i].err < 0) {
            t[i].task = 0;
            rc = fail(EX_FAIL, "%s on memd[%u]: %s", name, t[i].daemon, task_refusal(t[i].err));
            continue;
        }
        t[i].t = (dmce_adm_task_t){.id = t[i].task, .state = DMCE_ADM_JOB_QUEUED};
        daemons[started] = t[i].daemon;
        ids[started] = t[i].task;
        where[started++] = i;
    }
    int r = rc == EX_OK ? 0 : -EIO;
    if (!no_wait && started) {
        struct task_follow f = {.op = op};
        bar_init(&f.bar, c);
        catch_signals();
        unsigned which = 0;
        int w = dmce_admin_wait_tasks(c->a, started, daemons, ids, c->timeout_ms, tasks_progress,
                                      &f, tasks, &which);
        bar_end(&f.bar);
        for (unsigned k = 0; k < started; k++)
            t[where[k]].t = tasks[k];
        if (w < 0) {
            r = w;
            rc = EX_FAIL;
            struct target *x = &t[where[which]];
            if (x->t.state == DMCE_ADM_JOB_FAILED)
                for (unsigned k = 0; k < started; k++) {
                    const dmce_adm_task_t *tk = &tasks[k];
                    if (tk->state == DMCE_ADM_JOB_FAILED)
                        fail(EX_FAIL, "%s on memd[%u] failed: %s%s%s", name, daemons[k],
                             dmce_strerror(tk->err < 0 ? tk->err : -EIO), tk->detail[0] ? ": " : "",
                             tk->detail);
                }
            else if (w == -ETIMEDOUT || w == -EINTR)
                follow_fail(w, name, "the task(s)");
            else
                fail(EX_FAIL, "%s: memd[%u] stopped answering while its task ran: %s", name,
                     x->daemon, dmce_strerror(w));
        }
    }
    if (started || c->json)
        tasks_report(c, op, dir, t, n, !no_wait, r);
out:
    free(daemons);
    free(ids);
    free(tasks);
    free(where);
    return rc;
}

/* The alive daemons (or only the one asked) as targets of block `block`. *t: malloc'ed. */
static int all_targets(struct ctl *c, uint32_t only, uint32_t block, struct target **t, unsigned *n)
{
    dmce_adm_daemon_t *d;
    unsigned nd;
    *t = NULL;
    *n = 0;
    int r = dmce_admin_daemons(c->a, &d, &nd);
    if (r < 0)
        return op_fail(r, "%s: the daemons", cmd_name(c));
    *t = calloc(nd ? nd : 1, sizeof(**t));
    if (!*t) {
        free(d);
        return fail(EX_FAIL, "%s: %s", cmd_name(c), dmce_strerror(-ENOMEM));
    }
    for (unsigned i = 0; i < nd; i++)
        if (d[i].state == DMCE_DISP_ALIVE && (!only || d[i].id == only))
            (*t)[(*n)++] = (struct target){.daemon = d[i].id, .block = block};
    free(d);
    if (*n == 0 && only)
        return fail(EX_FAIL, "%s: memd[%u] is not a live daemon of %s", cmd_name(c), only,
                    dmce_admin_dir(c->a));
    return 0;
}

/* BLOCK or --all (--daemon alone means all of that daemon's): the block, 0 for all. */
static int block_or_all(const struct ctl *c, const struct args *a, int daemon_means_all,
                        uint32_t *block)
{
    *block = 0;
    int all = has_opt(c, a, "all");
    if (a->npos && all)
        return usage_err(c, "%s: a BLOCK or --all, not both", cmd_name(c));
    if (a->npos)
        return parse_id(c, "block ID", a->pos[0], MAX_BLOCK_ID, block);
    if (!all && !(daemon_means_all && has_opt(c, a, "daemon")))
        return usage_err(c, "%s: which blocks? give a BLOCK or --all", cmd_name(c));
    return 0;
}

static int cmd_backup(struct ctl *c, struct args *a)
{
    uint32_t block, only;
    char dir[PATH_MAX] = "";
    int rc = block_or_all(c, a, 1, &block);
    if (!rc)
        rc = parse_daemon_opt(c, a, &only);
    if (!rc && opt(c, a, "dir"))
        rc = abs_dir(c, opt(c, a, "dir"), dir, sizeof(dir));
    if (rc || (rc = ctl_open(c, NEED_CLUSTER)))
        return rc;
    struct target *t = NULL;
    unsigned n = 0;
    if (block && !only) {
        uint32_t holder;
        int r = dmce_admin_block_primary(c->a, block, &holder);
        if (r == DMCE_ENOBLOCK)
            return fail(EX_FAIL, "backup: block %u: no daemon holds it", block);
        if (r < 0)
            return op_fail(r, "backup: where block %u is", block);
        only = holder;
    }
    if ((rc = all_targets(c, only, block, &t, &n)) == 0)
        rc = tasks_run(c, T_BACKUP, t, n, has_opt(c, a, "full") ? DMCE_ADM_BACKUP_FULL : 0, dir,
                       has_opt(c, a, "no-wait"));
    free(t);
    return rc;
}

/* Which daemon's backup table lists block (no --dir, no --to). */
static int restore_holder(struct ctl *c, uint32_t block, uint32_t *daemon)
{
    struct target *t;
    unsigned n;
    int rc = all_targets(c, 0, 0, &t, &n), last = 0;
    for (unsigned i = 0; rc == 0 && i < n && !*daemon; i++) {
        dmce_admin_bk_t bk;
        int r = dmce_admin_backup_status(c->a, t[i].daemon, &bk);
        for (uint32_t k = 0; r == 0 && k < bk.count; k++)
            if (bk.entries[k].block == block)
                *daemon = t[i].daemon;
        if (r < 0)
            last = r;
        dmce_admin_bk_free(&bk);
    }
    free(t);
    if (rc)
        return rc;
    if (!*daemon && last)
        return fail(EX_FAIL,
                    "restore: block %u: no daemon lists it in its backups (%s); give "
                    "--to DAEMON and --dir DIR",
                    block, task_refusal(last));
    if (!*daemon)
        return fail(EX_FAIL,
                    "restore: block %u: no daemon lists it in its backups; give --to "
                    "DAEMON and --dir DIR",
                    block);
    return 0;
}

/* With --dir and no --to: the sets under dir say whose they are. */
static int restore_from_sets(struct ctl *c, const char *dir, uint32_t block, struct target **out,
                             unsigned *n)
{
    char **sets;
    unsigned ns;
    *out = NULL;
    *n = 0;
    int r = dmce_admin_backup_sets(dir, &sets, &ns);
    if (r < 0)
        return fail(EX_FAIL, "restore: %s: %s", dir,
                    r == -ENOENT ? "no backup set here (no table, no memd-N/table)"
                                 : dmce_strerror(r));
    dmce_adm_daemon_t *d = NULL;
    unsigned nd = 0;
    struct target *t = calloc(ns, sizeof(*t));
    int rc = t ? EX_OK : fail(EX_FAIL, "restore: %s", dmce_strerror(-ENOMEM));
    if (rc == EX_OK && (r = dmce_admin_daemons(c->a, &d, &nd)) < 0)
        rc = op_fail(r, "restore: the daemons");
    for (unsigned i = 0; rc == EX_OK && i < ns; i++) {
        dmce_bk_table_t tb;
        char why[512] = "";
        memset(&tb, 0, sizeof(tb));
        if ((r = dmce_bk_table_load(sets[i], &tb, why, sizeof(why))) < 0) {
            rc = fail(EX_FAIL, "restore: %s", why[0] ? why : dmce_strerror(r));
            break;
        }
        if (!block || dmce_bk_table_find(&tb, block)) {
            int alive = 0;
            for (unsigned k = 0; k < nd; k++)
                alive |= d[k].id == tb.daemon && d[k].state == DMCE_DISP_ALIVE;
            if (!alive)
                rc = fail(EX_FAIL,
                          "restore: the set %s is memd[%u]'s, which does not run; give "
                          "--to DAEMON",
                          sets[i], tb.daemon);
            else
                t[(*n)++] = (struct target){.daemon = tb.daemon, .block = block};
        }
        dmce_bk_table_free(&tb);
        if (block && *n)
            break;
    }
    if (rc == EX_OK && *n == 0)
        rc = fail(EX_FAIL, "restore: block %u is in no backup set under %s", block, dir);
    free(d);
    dmce_admin_sets_free(sets, ns);
    if (rc != EX_OK) {
        free(t);
        *n = 0;
        return rc;
    }
    *out = t;
    return EX_OK;
}

static int cmd_restore(struct ctl *c, struct args *a)
{
    uint32_t block, to = 0;
    char dir[PATH_MAX] = "";
    int rc = block_or_all(c, a, 0, &block);
    if (!rc && opt(c, a, "to"))
        rc = parse_id(c, "daemon ID", opt(c, a, "to"), MAX_DAEMON_ID, &to);
    if (!rc && opt(c, a, "dir"))
        rc = abs_dir(c, opt(c, a, "dir"), dir, sizeof(dir));
    if (!rc && !block && !to && !dir[0])
        return usage_err(c, "restore --all: give --to DAEMON or --dir DIR");
    if (rc || (rc = ctl_open(c, NEED_CLUSTER)))
        return rc;
    struct target *t = NULL;
    unsigned n = 0;
    if (!to && dir[0]) {
        rc = restore_from_sets(c, dir, block, &t, &n);
    } else {
        if (!to)
            rc = restore_holder(c, block, &to);
        if (!rc && !(t = calloc(1, sizeof(*t))))
            rc = fail(EX_FAIL, "restore: %s", dmce_strerror(-ENOMEM));
        if (!rc)
            t[n++] = (struct target){.daemon = to, .block = block};
    }
    if (!rc)
        rc = tasks_run(c, T_RESTORE, t, n, 0, dir, has_opt(c, a, "no-wait"));
    free(t);
    return rc;
}

/* ---- backup status --------------------------------------------------------------------------- */

static void bk_text(uint32_t id, const dmce_admin_bk_t *bk)
{
    printf("memd[%u]: backup dir %s; %s", id, bk->dir[0] ? bk->dir : "(none)",
           bk->interval_s ? "periodic backup every " : "no periodic backup\n");
    if (bk->interval_s)
        printf("%s\n", ms_txt((uint64_t)bk->interval_s * 1000).s);
    const dmce_adm_task_t *t = &bk->task;
    if (t->state)
        printf("  task %u (%s): %s, %u/%u block(s), %s of %s, %s written (%" PRIu64
               " pages), %s%s%s%s%s\n",
               t->id, task_kind_name(t->kind), job_state_name(t->state), t->blocks_done,
               t->blocks_total, size_txt(t->bytes_done).s, size_txt(t->bytes_total).s,
               size_txt(t->bytes_written).s, t->pages_written, dur_txt(t->elapsed_us).s,
               t->err ? ": " : "", t->err ? dmce_strerror(t->err) : "", t->detail[0] ? ": " : "",
               t->detail);
    else
        printf("  no task yet\n");
    if (!bk->count) {
        printf("  no block backed up\n");
        return;
    }
    static const char *const cols[] = {"BLOCK", "GENERATION", "FILES", "ON DISK",   "AGE",
                                       "TOOK",  "<MIRROR",    "SIZE",  "<RECOVERED"};
    struct table tb;
    tab_init(&tb, cols, DMCE_ARRAY_LEN(cols));
    for (uint32_t i = 0; i < bk->count; i++) {
        const dmce_adm_bk_entry_t *e = &bk->entries[i];
        tab_cell(&tb, "%u", e->block);
        tab_cell(&tb, "%" PRIu64, e->generation);
        tab_cell(&tb, "%u", e->files);
        tab_cell(&tb, "%s", size_txt(e->disk_bytes).s);
        tab_cell(&tb, "%s", ms_txt(e->age_ms).s);
        tab_cell(&tb, "%s", dur_txt(e->took_us).s);
        tab_cell(&tb, "%s", daemon_txt(e->mirror_daemon).s);
        tab_cell(&tb, "%s", size_txt(e->size).s);
        tab_cell(&tb, "%s", e->flags & DMCE_ADM_BK_RECOVERED ? "yes" : "no");
    }
    tab_print(&tb, stdout);
    tab_free(&tb);
}

static void bk_json(struct json *j, uint32_t id, const dmce_admin_bk_t *bk)
{
    j_open(j, NULL, '{');
    j_u64(j, "daemon", id);
    j_str(j, "dir", bk->dir[0] ? bk->dir : NULL);
    j_u64(j, "interval_s", bk->interval_s);
    if (bk->task.state)
        task_json(j, "task", &bk->task);
    else
        j_null(j, "task");
    j_open(j, "table", '[');
    for (uint32_t i = 0; i < bk->count; i++) {
        const dmce_adm_bk_entry_t *e = &bk->entries[i];
        j_open(j, NULL, '{');
        j_u64(j, "block", e->block);
        j_u64(j, "generation", e->generation);
        j_u64(j, "files", e->files);
        j_u64(j, "disk_bytes", e->disk_bytes);
        j_u64(j, "age_ms", e->age_ms);
        j_u64(j, "took_us", e->took_us);
        j_u64(j, "mirror_daemon", e->mirror_daemon);
        j_u64(j, "size", e->size);
        j_u64(j, "pages", e->pages);
        j_u64(j, "page_size", e->page_size);
        j_bool(j, "recovered", (e->flags & DMCE_ADM_BK_RECOVERED) != 0);
        j_close(j, '}');
    }
    j_close(j, ']');
    j_close(j, '}');
}

static int cmd_backup_status(struct ctl *c, struct args *a)
{
    uint32_t only;
    int rc = open_for_daemon(c, a, &only);
    if (rc)
        return rc;
    struct target *t;
    unsigned n;
    if ((rc = all_targets(c, only, 0, &t, &n)))
        return rc;
    struct json j = {.f = stdout};
    if (c->json) {
        j_list_doc(&j, "daemons");
    }
    for (unsigned i = 0; i < n; i++) {
        dmce_admin_bk_t bk;
        int r = dmce_admin_backup_status(c->a, t[i].daemon, &bk);
        if (r < 0)
            rc = fail(EX_FAIL, "backup status: memd[%u]: %s", t[i].daemon, task_refusal(r));
        else if (c->json)
            bk_json(&j, t[i].daemon, &bk);
        else
            bk_text(t[i].daemon, &bk);
        dmce_admin_bk_free(&bk);
    }
    if (c->json) {
        j_list_doc_end(&j);
    }
    free(t);
    return rc;
}

/* ---- verify (offline) ------------------------------------------------------------------------ */

struct vstate {
    const struct ctl *c;
    struct bar bar;
    struct json *j;
    unsigned checked, damaged;
};

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

static int verify_step(const dmce_admin_verified_t *v, void *arg)
{
    struct vstate *s = arg;
    if (!v->done) {
        char line[200];
        snprintf(line, sizeof(line), "verifying %s: block %u (%u of %u, %s)", base_name(v->set),
                 v->block, v->index + 1, v->count, size_txt(v->size).s);
        bar_text(&s->bar, line);
        return stop_requested;
    }
    if (s->bar.drawn) {
        fputs("\r\033[K", stderr); /* the result line replaces the progress line */
        s->bar.drawn = 0;
    }
    s->checked += v->block != 0;
    s->damaged += v->err != 0;
    if (s->j) {
        j_open(s->j, NULL, '{');
        j_str(s->j, "set", v->set);
        j_u64(s->j, "daemon", v->daemon);
        j_u64(s->j, "block", v->block);
        j_u64(s->j, "size", v->size);
        j_bool(s->j, "ok", v->err == 0);
        j_error(s->j, v->err);
        j_str(s->j, "why", v->err ? v->why : NULL);
        j_close(s->j, '}');
    } else if (v->block == 0) {
        printf("DAMAGED  %s: its table: %s\n", v->set, v->why);
    } else if (v->err) {
        printf("DAMAGED  %s  block %u: %s\n", base_name(v->set), v->block, v->why);
    } else {
        printf("OK       %s  block %u  %s\n", base_name(v->set), v->block, size_txt(v->size).s);
    }
    fflush(stdout);
    return stop_requested;
}

/* The backup dirs the running daemons use (op 31's dir), distinct. *dirs: malloc'ed strings. */
static int daemon_backup_dirs(struct ctl *c, char ***dirs, unsigned *n)
{
    *dirs = NULL;
    *n = 0;
    int rc = ctl_open(c, NEED_CLUSTER);
    struct target *t = NULL;
    unsigned nt = 0;
    if (rc || (rc = all_targets(c, 0, 0, &t, &nt)))
        return rc;
    char **v = calloc(nt ? nt : 1, sizeof(*v));
    if (!v) {
        free(t);
        return fail(EX_FAIL, "verify: %s", dmce_strerror(-ENOMEM));
    }
    for (unsigned i = 0; i < nt; i++) {
        dmce_admin_bk_t bk;
        int r = dmce_admin_backup_status(c->a, t[i].daemon, &bk), dup = 0;
        dmce_admin_bk_free(&bk);
        if (r < 0) {
            fprintf(stderr, "dmcectl: verify: memd[%u]'s backup dir: %s\n", t[i].daemon,
                    task_refusal(r));
            continue;
        }
        for (unsigned k = 0; k < *n; k++)
            dup |= !strcmp(v[k], bk.dir);
        if (bk.dir[0] && !dup && (v[*n] = strdup(bk.dir)))
            (*n)++;
    }
    free(t);
    if (*n == 0) {
        free(v);
        return fail(EX_FAIL, "verify: no running daemon has a backup dir; give --dir DIR");
    }
    *dirs = v;
    return 0;
}

static int cmd_verify(struct ctl *c, struct args *a)
{
    uint32_t blocks[MAX_POS];
    for (unsigned i = 0; i < a->npos; i++) {
        int rc = parse_id(c, "block ID", a->pos[i], MAX_BLOCK_ID, &blocks[i]);
        if (rc)
            return rc;
    }
    char **dirs = NULL;
    unsigned nd = 0;
    int rc = EX_OK;
    if (opt(c, a, "dir")) {
        dirs = calloc(1, sizeof(*dirs));
        if (!dirs || !(dirs[0] = strdup(opt(c, a, "dir")))) {
            free(dirs);
            return fail(EX_FAIL, "verify: %s", dmce_strerror(-ENOMEM));
        }
        nd = 1;
    } else if ((rc = daemon_backup_dirs(c, &dirs, &nd))) {
        return rc;
    }
    struct json j = {.f = stdout};
    struct vstate s = {.c = c, .j = c->json ? &j : NULL};
    bar_init(&s.bar, c);
    catch_signals();
    if (c->json) {
        j_list_doc(&j, "blocks");
    }
    unsigned missing = 0;
    for (unsigned i = 0; i < nd && rc == EX_OK; i++) {
        unsigned damaged;
        int r = dmce_admin_verify(dirs[i], blocks, a->npos, verify_step, &s, &damaged);
        if (r == -ENOENT) {
            missing++;
            fprintf(stderr, "dmcectl: verify: %s: no backup set here (no table, no memd-N/table)\n",
                    dirs[i]);
        } else if (r == -EINTR) {
            rc = fail(EX_FAIL, "verify: interrupted");
        } else if (r < 0) {
            rc = fail(EX_FAIL, "verify: %s: %s", dirs[i], dmce_strerror(r));
        }
    }
    bar_end(&s.bar);
    if (c->json) {
        j_close(&j, ']');
        j_u64(&j, "checked", s.checked);
        j_u64(&j, "damaged", s.damaged + missing);
        j_close(&j, '}');
    } else if (rc == EX_OK && s.checked == 0 && missing) {
        printf("nothing checked: no backup set found\n");
    } else if (rc == EX_OK) {
        printf("%u block(s) checked: %s\n", s.checked,
               s.damaged + missing ? "DAMAGE FOUND" : "all OK");
    }
    for (unsigned i = 0; i < nd; i++)
        free(dirs[i]);
    free(dirs);
    if (rc == EX_OK && s.damaged + missing)
        rc = EX_DAMAGE;
    return rc;
}

/* ---- the commands ---------------------------------------------------------------------------- */

static const struct cmd cmds[] = {
    {"status",
     cmd_status,
     {{"watch", A_OPTNUM}},
     0,
     0,
     "status [--watch [SECONDS]]",
     "The cluster at a glance: the dispatcher (pid, uptime, mirroring, moves, failovers),\n"
     "warnings (one copy of blocks, lost blocks, dead or draining daemons, no dispatcher),\n"
     "the daemons (ID, pid, NUMA node, health, heartbeat age, draining, capacity, used,\n"
     "free, primary blocks, mirror copies, ops), the blocks (primary, mirror, state\n"
     "mirrored/single/remirroring/lost, size, used) and the clients of each daemon.\n"
     "Without a dispatcher it asks every memd-*.sock of the runtime directory itself.\n"
     "\n"
     "  --watch [SECONDS]  draw it again every SECONDS (default 1) until SIGINT or SIGTERM\n"
     "                     (exit 0); the screen is cleared when stdout is a terminal,\n"
     "                     else each frame follows a separator line (--json: one document\n"
     "                     per frame)\n"},
    {"blocks",
     cmd_blocks,
     {{"daemon", A_VALUE}},
     0,
     0,
     "blocks [--daemon ID]",
     "Every block every daemon holds, primaries and mirror copies: size, used bytes,\n"
     "allocations, role, its mirror (or whose copy it is) and the mirror's state (none,\n"
     "copying, synced, with the bytes copied so far), and the directory's state of the block\n"
     "when a dispatcher runs.\n"
     "\n"
     "  --daemon ID  only the blocks daemon ID holds\n"},
    {"clients",
     cmd_clients,
     {{"daemon", A_VALUE}},
     0,
     0,
     "clients [--daemon ID]",
     "The sessions of each daemon: session ID, client pid and uid, bytes reserved and used,\n"
     "transport (ring or socket), and for an orphaned session (its client went away\n"
     "without disconnecting) the time left before its allocations are freed.\n"
     "\n"
     "  --daemon ID  only daemon ID's sessions\n"},
    {"stats",
     cmd_stats,
     {{"daemon", A_VALUE}},
     0,
     0,
     "stats [--daemon ID]",
     "Every counter of every daemon (dmce_stats_t: one column per daemon) and the\n"
     "dispatcher's (dmce_cluster_stats_t).\n"
     "\n"
     "  --daemon ID  only daemon ID (and not the dispatcher)\n"},
    {"jobs",
     cmd_jobs,
     {{NULL, A_FLAG}},
     0,
     0,
     "jobs",
     "The dispatcher's moves, oldest first: job, block, from, to, state (queued, running,\n"
     "done, failed), age, how long the move took, the block's size, and why it failed.\n"},
    {"migrate",
     cmd_migrate,
     {{"to", A_VALUE}, {"to-node", A_VALUE}, {"no-wait", A_FLAG}},
     1,
     1,
     "migrate BLOCK [--to DAEMON | --to-node NODE] [--no-wait]",
     "Move block BLOCK live to another daemon (docs/migration.md): clients keep its\n"
     "addresses and their mapped pointers; no byte is copied on one host. Then follow the\n"
     "move until it is done (exit 0) or failed (exit 1, with the reason).\n"
     "\n"
     "  --to DAEMON     to daemon ID DAEMON\n"
     "  --to-node NODE  to a daemon on NUMA node NODE\n"
     "                  (neither: the dispatcher chooses, not the mirror's holder if it can)\n"
     "  --no-wait       queue the move and print its job ID, do not follow it\n"},
    {"drain",
     cmd_drain,
     {{"cancel", A_FLAG}, {"no-wait", A_FLAG}},
     1,
     1,
     "drain DAEMON [--cancel] [--no-wait]",
     "Move everything off daemon DAEMON: it takes no new block and no new mirror copy, each\n"
     "of its blocks moves to another daemon and its mirror copies are made again elsewhere.\n"
     "Follows with a progress bar until it holds nothing (then it can be stopped), or a move\n"
     "fails (exit 1).\n"
     "\n"
     "  --cancel   make it a normal daemon again; its queued moves are dropped\n"
     "  --no-wait  start the drain and return\n"},
    {"backup",
     cmd_backup,
     {{"all", A_FLAG},
      {"dir", A_VALUE},
      {"full", A_FLAG},
      {"daemon", A_VALUE},
      {"no-wait", A_FLAG}},
     0,
     1,
     "backup [BLOCK | --all] [--dir DIR] [--full] [--daemon ID] [--no-wait]",
     "Back blocks up to files: block BLOCK on the daemon that holds it, or every primary\n"
     "block of every daemon (--all) or of one (--daemon ID). Each daemon writes its set\n"
     "under DIR (DIR/memd-ID/; the daemon decides) and the command follows the tasks with a\n"
     "progress bar (bytes, MB/s, ETA, pages written), then prints a summary.\n"
     "\n"
     "  --all        every block\n"
     "  --dir DIR    where (made absolute here); default: each daemon's backup_dir\n"
     "  --full       full images, even where an incremental backup could follow the last one\n"
     "  --daemon ID  only daemon ID (with BLOCK: ask daemon ID, wherever the block is)\n"
     "  --no-wait    start the tasks and return\n"
     "\n"
     "dmcectl backup status [--daemon ID]: see 'dmcectl help backup status'.\n"},
    {"backup status",
     cmd_backup_status,
     {{"daemon", A_VALUE}},
     0,
     0,
     "backup status [--daemon ID]",
     "Each daemon's Memory Backup & Recovery Lookup Table (block, generation, files in its\n"
     "chain, bytes on disk, age, how long the last backup took, its mirror, whether it was\n"
     "recovered at start), its backup dir and periodic interval, and its current or last\n"
     "task.\n"
     "\n"
     "  --daemon ID  only daemon ID\n"},
    {"restore",
     cmd_restore,
     {{"all", A_FLAG}, {"dir", A_VALUE}, {"to", A_VALUE}, {"no-wait", A_FLAG}},
     0,
     1,
     "restore [BLOCK | --all] [--dir DIR] [--to DAEMON] [--no-wait]",
     "Bring blocks back from backup files into a daemon and follow the task with a progress\n"
     "bar. Which daemon: --to DAEMON; else, with --dir, the daemon whose set (DIR/memd-N/)\n"
     "holds the block (each set's daemon for --all), if it runs; else the daemon whose\n"
     "backup table lists BLOCK. A failure is shown with the daemon's error and its detail.\n"
     "\n"
     "  --all        every block of the set(s)\n"
     "  --dir DIR    the backup dir (made absolute here); default: the daemon's backup_dir\n"
     "  --to DAEMON  the daemon that restores\n"
     "  --no-wait    start the task and return\n"},
    {"verify",
     cmd_verify,
     {{"dir", A_VALUE}},
     0,
     MAX_POS,
     "verify [--dir DIR] [BLOCK...]",
     "Check backup files offline, no daemon needed: each set's table, then each block's\n"
     "chain of files (headers, page hashes, order, trailers) and the allocator state of the\n"
     "block it rebuilds. Prints OK or the reason for each block (the file and what failed).\n"
     "Exit 0 when all are OK, 4 when anything is corrupt or missing.\n"
     "\n"
     "  --dir DIR  a set (DIR/table) or a dir of sets (DIR/memd-*/table); default: the\n"
     "             backup dir of each running daemon\n"
     "  BLOCK...   only these blocks (one that is in no set counts as missing)\n"},
};

static const struct cmd *find_cmd(const char *name, const char *next)
{
    if (!strcmp(name, "backup") && next && !strcmp(next, "status"))
        name = "backup status";
    for (size_t i = 0; i < DMCE_ARRAY_LEN(cmds); i++)
        if (!strcmp(cmds[i].name, name))
            return &cmds[i];
    return NULL;
}

static void usage(FILE *f)
{
    fputs("Usage: dmcectl [--runtime-dir DIR] [--json] [--timeout MS] COMMAND [ARGS]\n"
          "\n"
          "The admin tool of a dmce cluster: what runs, where the blocks are, and moving,\n"
          "draining, backing up, restoring and verifying them.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < DMCE_ARRAY_LEN(cmds); i++)
        fprintf(f, "  %s\n", cmds[i].synopsis);
    fputs("  help COMMAND\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --runtime-dir DIR  the cluster's runtime directory (default $DMCE_RUNTIME_DIR,\n"
          "                     else /run/dmce-UID, as the daemons)\n"
          "  --json             machine output: one JSON document per command on stdout\n"
          "  --timeout MS       bound each request (at most 60 s; default 5 s) and each\n"
          "                     wait for a move, a drain or a backup (defaults: 120 s,\n"
          "                     600 s, none)\n"
          "  -h, --help         this help; 'dmcectl COMMAND --help' for a command's\n"
          "  --version          the version\n"
          "\n"
          "Exit status: 0 success; 1 the operation failed; 2 usage error; 3 the cluster\n"
          "cannot be reached; 4 verify found damage. Manual: docs/dmcectl.md.\n",
          f);
}

static void cmd_help(FILE *f, const struct cmd *cmd)
{
    fprintf(f, "Usage: dmcectl [GLOBAL OPTIONS] %s\n\n%s", cmd->synopsis, cmd->help);
    fputs("\nGlobal options: --runtime-dir DIR, --json, --timeout MS (see 'dmcectl --help').\n", f);
}

/* "--name=value" or "--name": the name's length and the inline value (NULL when none). */
static size_t opt_split(const char *arg, const char **inline_val)
{
    const char *eq = strchr(arg, '=');
    *inline_val = eq ? eq + 1 : NULL;
    return eq ? (size_t)(eq - arg) : strlen(arg);
}

static int opt_is(const char *arg, size_t len, const char *name)
{
    return strlen(name) == len && !strncmp(arg, name, len);
}

/* The value of an option that takes one: inline, or the next word. */
static int opt_value(const struct ctl *c, int argc, char **argv, int *i, const char *inl,
                     const char **out)
{
    if (inl) {
        *out = inl;
        return 0;
    }
    if (*i + 1 >= argc)
        return usage_err(c, "option '%s' needs a value", argv[*i]);
    *out = argv[++*i];
    return 0;
}

struct flags {
    int help, version;
};

/*
 * argv[*i] as a global option: 1 taken (with its value), 0 not a global
 * option, or -EX_USAGE after the message.
 */
static int global_opt(struct ctl *c, int argc, char **argv, int *i, struct flags *fl)
{
    const char *arg = argv[*i], *inl = NULL, *v = NULL;
    if (!strcmp(arg, "-h")) {
        fl->help = 1;
        return 1;
    }
    if (strncmp(arg, "--", 2) != 0)
        return 0;
    size_t len = opt_split(arg + 2, &inl);
    const char *name = arg + 2;
    if (opt_is(name, len, "help") || opt_is(name, len, "version") || opt_is(name, len, "json")) {
        if (inl)
            return -usage_err(c, "option '--%.*s' takes no value", (int)len, name);
        fl->help |= name[0] == 'h';
        fl->version |= name[0] == 'v';
        c->json |= name[0] == 'j';
        return 1;
    }
    if (opt_is(name, len, "runtime-dir")) {
        if (opt_value(c, argc, argv, i, inl, &v))
            return -EX_USAGE;
        if (!*v)
            return -usage_err(c, "--runtime-dir: an empty path");
        c->dir = v;
        return 1;
    }
    if (opt_is(name, len, "timeout")) {
        uint64_t ms;
        if (opt_value(c, argc, argv, i, inl, &v))
            return -EX_USAGE;
        if (dmce_parse_u64(v, &ms) < 0 || ms == 0 || ms > 86400000)
            return -usage_err(c,
                              "--timeout: bad value '%s': milliseconds from 1 to 86400000 "
                              "expected",
                              v);
        c->timeout_ms = (unsigned)ms;
        return 1;
    }
    return 0;
}

static int looks_numeric(const char *s)
{
    return s && (isdigit((unsigned char)s[0]) || (s[0] == '.' && isdigit((unsigned char)s[1])));
}

/* The command's words from argv[i] on: its options, the global ones, positional words. */
static int parse_args(struct ctl *c, int argc, char **argv, int i, struct args *a, struct flags *fl)
{
    memset(a, 0, sizeof(*a));
    int only_pos = 0;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && !strcmp(arg, "--")) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && arg[0] == '-' && arg[1]) {
            int g = global_opt(c, argc, argv, &i, fl);
            if (g < 0)
                return -g;
            if (g)
                continue;
            const char *inl = NULL;
            size_t len = arg[1] == '-' ? opt_split(arg + 2, &inl) : 0;
            unsigned k = 0;
            while (k < MAX_OPTS && c->cmd->opts[k].name &&
                   !(len && opt_is(arg + 2, len, c->cmd->opts[k].name)))
                k++;
            if (k == MAX_OPTS || !c->cmd->opts[k].name)
                return usage_err(c, "%s: unknown option '%s'", cmd_name(c), arg);
            switch (c->cmd->opts[k].kind) {
            case A_FLAG:
                if (inl)
                    return usage_err(c, "%s: option '--%s' takes no value", cmd_name(c),
                                     c->cmd->opts[k].name);
                a->val[k] = "";
                break;
            case A_VALUE:
                if (opt_value(c, argc, argv, &i, inl, &a->val[k]))
                    return EX_USAGE;
                break;
            case A_OPTNUM:
                a->val[k] = inl                                                ? inl
                            : looks_numeric(i + 1 < argc ? argv[i + 1] : NULL) ? argv[++i]
                                                                               : "";
                break;
            }
            continue;
        }
        if (a->npos == MAX_POS || a->npos >= c->cmd->max_pos)
            return usage_err(c, "%s: unexpected argument '%s'", cmd_name(c), arg);
        a->pos[a->npos++] = argv[i];
    }
    if (a->npos < c->cmd->min_pos && !fl->help && !fl->version)
        return usage_err(c, "%s: missing argument (usage: dmcectl %s)", cmd_name(c),
                         c->cmd->synopsis);
    return 0;
}

int main(int argc, char **argv)
{
    struct ctl c = {.tty_out = isatty(STDOUT_FILENO), .tty_err = isatty(STDERR_FILENO)};
    struct flags fl = {0};
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        int g = global_opt(&c, argc, argv, &i, &fl);
        if (g < 0)
            return -g;
        if (g == 0)
            return usage_err(NULL, "unknown option '%s'", argv[i]);
    }
    if (fl.version) {
        printf("dmcectl %s (dmce; MSMP version %u)\n", DMCE_VERSION, DMCE_MSMP_VERSION);
        return EX_OK;
    }
    if (i == argc) {
        if (fl.help) {
            usage(stdout);
            return EX_OK;
        }
        return usage_err(NULL, "a COMMAND is expected");
    }
    const char *name = argv[i++];
    if (!strcmp(name, "help")) {
        const struct cmd *cmd =
            i < argc ? find_cmd(argv[i], i + 1 < argc ? argv[i + 1] : NULL) : NULL;
        if (i < argc && !cmd)
            return usage_err(NULL, "help: unknown command '%s'", argv[i]);
        if (cmd)
            cmd_help(stdout, cmd);
        else
            usage(stdout);
        return EX_OK;
    }
    c.cmd = find_cmd(name, i < argc ? argv[i] : NULL);
    if (!c.cmd)
        return usage_err(NULL, "unknown command '%s'", name);
    i += strchr(c.cmd->name, ' ') != NULL; /* "backup status" */
    struct args *a = calloc(1, sizeof(*a));
    if (!a)
        return fail(EX_FAIL, "%s", dmce_strerror(-ENOMEM));
    int rc = parse_args(&c, argc, argv, i, a, &fl);
    if (rc == 0 && fl.help)
        cmd_help(stdout, c.cmd);
    else if (rc == 0 && fl.version)
        printf("dmcectl %s (dmce; MSMP version %u)\n", DMCE_VERSION, DMCE_MSMP_VERSION);
    else if (rc == 0)
        rc = c.cmd->run(&c, a);
    free(a);
    dmce_admin_close(c.a);
    if (fflush(stdout) != 0 && rc == EX_OK)
        rc = fail(EX_FAIL, "writing the output: %s", strerror(errno));
    return rc;
}
