/*
 * report.c - result model, JSON writer and reader, Markdown report,
 * comparison and plot data for the perf harness (see report.h).
 *
 * Design notes:
 *   - The writer never fails silently: the first error sticks in w->err
 *     and dmce_jw_finish returns it, so a caller checks once at the end.
 *   - The reader is a recursive-descent parser of the full JSON grammar,
 *     strict where leniency would hide a bug in our own writer: no trailing
 *     commas, no leading zeros, no raw control characters, valid UTF-8,
 *     no lone surrogates, no duplicate keys, no trailing garbage, depth at
 *     most DMCE_JSON_MAX_DEPTH. It allocates a tree; error paths free what
 *     they built so far.
 *   - The result model uses fixed-size fields: a result is a plain value
 *     that can be copied, compared and freed with the run.
 *   - Reports print "-" for anything not measured; ratios are only computed
 *     between two figures of the same run.
 */
#include "report.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h> /* isfinite, NAN: macros, no libm */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define DMCE_PERF_FORMAT "dmce-perf/1"
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * v is a whole number of magnitude below 2^53 (exact in a double). No libm:
 * the unit test links this file without it.
 */
static int is_whole(double v)
{
    return v > -9007199254740992.0 && v < 9007199254740992.0 && v == (double)(int64_t)v;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copy s into dst[len]; -ENOSPC (dst unchanged) if it does not fit. */
static int copy_str(char *dst, size_t len, const char *s)
{
    size_t n = strlen(s);
    if (n >= len)
        return -ENOSPC;
    memcpy(dst, s, n + 1);
    return 0;
}

/* ======================================================================
 * JSON writer
 * ====================================================================== */

void dmce_jw_init(dmce_jw_t *w, FILE *f, unsigned pretty_depth)
{
    memset(w, 0, sizeof(*w));
    w->f = f;
    w->pretty_depth = pretty_depth;
}

static void jw_fail(dmce_jw_t *w, int err)
{
    if (!w->err)
        w->err = err;
}

static void jw_out(dmce_jw_t *w, const char *s, size_t n)
{
    if (n && fwrite(s, 1, n, w->f) != n)
        jw_fail(w, -EIO);
}

static void jw_puts(dmce_jw_t *w, const char *s)
{
    jw_out(w, s, strlen(s));
}

static void jw_newline(dmce_jw_t *w, unsigned depth)
{
    jw_out(w, "\n", 1);
    for (unsigned i = 0; i < depth; i++)
        jw_out(w, "  ", 2);
}

/* Comma and indentation before an array item or an object key. */
static void jw_before_item(dmce_jw_t *w)
{
    if (w->depth == 0)
        return;
    if (w->has_item[w->depth])
        jw_out(w, ",", 1);
    w->has_item[w->depth] = 1;
    if (w->depth <= w->pretty_depth)
        jw_newline(w, w->depth);
}

static void jw_before_value(dmce_jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0 && w->is_obj[w->depth]) {
        jw_fail(w, -EINVAL); /* a value in an object needs a key first */
        return;
    }
    jw_before_item(w);
}

static void jw_begin(dmce_jw_t *w, char c, int obj)
{
    jw_before_value(w);
    if (w->depth >= DMCE_JSON_MAX_DEPTH) {
        jw_fail(w, -EINVAL);
        return;
    }
    jw_out(w, &c, 1);
    w->depth++;
    w->has_item[w->depth] = 0;
    w->is_obj[w->depth] = (unsigned char)obj;
}

static void jw_end(dmce_jw_t *w, char c, int obj)
{
    if (w->depth == 0 || w->after_key || w->is_obj[w->depth] != obj) {
        jw_fail(w, -EINVAL);
        return;
    }
    int indented = w->has_item[w->depth] && w->depth <= w->pretty_depth;
    w->depth--;
    if (indented)
        jw_newline(w, w->depth);
    jw_out(w, &c, 1);
}

void dmce_jw_obj_begin(dmce_jw_t *w)
{
    jw_begin(w, '{', 1);
}
void dmce_jw_obj_end(dmce_jw_t *w)
{
    jw_end(w, '}', 1);
}
void dmce_jw_arr_begin(dmce_jw_t *w)
{
    jw_begin(w, '[', 0);
}
void dmce_jw_arr_end(dmce_jw_t *w)
{
    jw_end(w, ']', 0);
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void jw_string(dmce_jw_t *w, const char *s)
{
    jw_out(w, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80)
            p++;
        jw_out(w, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        char esc[8];
        switch (*p) {
        case '"':
            jw_puts(w, "\\\"");
            p++;
            continue;
        case '\\':
            jw_puts(w, "\\\\");
            p++;
            continue;
        case '\b':
            jw_puts(w, "\\b");
            p++;
            continue;
        case '\f':
            jw_puts(w, "\\f");
            p++;
            continue;
        case '\n':
            jw_puts(w, "\\n");
            p++;
            continue;
        case '\r':
            jw_puts(w, "\\r");
            p++;
            continue;
        case '\t':
            jw_puts(w, "\\t");
            p++;
            continue;
        default: break;
        }
        if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            jw_puts(w, esc);
            p++;
            continue;
        }
        size_t n = utf8_len(p);
        if (n == 0) { /* not UTF-8: keep the output valid JSON */
            jw_puts(w, "\\ufffd");
            p++;
        } else {
            jw_out(w, (const char *)p, n);
            p += n;
        }
    }
    jw_out(w, "\"", 1);
}

void dmce_jw_key(dmce_jw_t *w, const char *key)
{
    if (w->depth == 0 || !w->is_obj[w->depth] || w->after_key) {
        jw_fail(w, -EINVAL);
        return;
    }
    jw_before_item(w);
    jw_string(w, key);
    jw_out(w, ":", 1);
    w->after_key = 1;
}

void dmce_jw_str(dmce_jw_t *w, const char *s)
{
    jw_before_value(w);
    jw_string(w, s);
}

void dmce_jw_num(dmce_jw_t *w, double v)
{
    jw_before_value(w);
    if (!isfinite(v)) {
        jw_puts(w, "null");
        return;
    }
    char buf[40];
    if (is_whole(v) && v > -1e15 && v < 1e15)
        snprintf(buf, sizeof(buf), "%.0f", v);
    else
        snprintf(buf, sizeof(buf), "%.10g", v);
    jw_puts(w, buf);
}

void dmce_jw_int(dmce_jw_t *w, int64_t v)
{
    jw_before_value(w);
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    jw_puts(w, buf);
}

void dmce_jw_bool(dmce_jw_t *w, int v)
{
    jw_before_value(w);
    jw_puts(w, v ? "true" : "false");
}

void dmce_jw_null(dmce_jw_t *w)
{
    jw_before_value(w);
    jw_puts(w, "null");
}

int dmce_jw_finish(dmce_jw_t *w)
{
    if (!w->err && (w->depth != 0 || w->after_key))
        w->err = -EINVAL;
    if (!w->err && fflush(w->f) != 0)
        w->err = -EIO;
    return w->err;
}

/* ======================================================================
 * JSON reader
 * ====================================================================== */

typedef struct jr {
    const char *start, *p, *end;
    char *err;
    size_t errlen;
} jr_t;

static int jr_fail(jr_t *r, const char *what)
{
    set_err(r->err, r->errlen, "JSON: %s at byte %zu", what, (size_t)(r->p - r->start));
    return -EINVAL;
}

static void jr_ws(jr_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int jr_value(jr_t *r, dmce_json_t *out, unsigned depth);

static int jr_literal(jr_t *r, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return jr_fail(r, "unexpected character");
    r->p += n;
    return 0;
}

static int jr_number(jr_t *r, dmce_json_t *out)
{
    const char *s = r->p;
    const char *p = s;
    if (p < r->end && *p == '-')
        p++;
    if (p >= r->end || !isdigit((unsigned char)*p))
        return jr_fail(r, "bad number");
    if (*p == '0') {
        p++;
        if (p < r->end && isdigit((unsigned char)*p))
            return jr_fail(r, "leading zero in number");
    } else {
        while (p < r->end && isdigit((unsigned char)*p))
            p++;
    }
    if (p < r->end && *p == '.') {
        p++;
        if (p >= r->end || !isdigit((unsigned char)*p))
            return jr_fail(r, "bad fraction");
        while (p < r->end && isdigit((unsigned char)*p))
            p++;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < r->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= r->end || !isdigit((unsigned char)*p))
            return jr_fail(r, "bad exponent");
        while (p < r->end && isdigit((unsigned char)*p))
            p++;
    }
    char buf[64];
    size_t n = (size_t)(p - s);
    if (n >= sizeof(buf))
        return jr_fail(r, "number too long");
    memcpy(buf, s, n);
    buf[n] = '\0';
    out->type = DMCE_JSON_NUM;
    out->num = strtod(buf, NULL);
    r->p = p;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *dst, unsigned cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xc0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xe0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        dst[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    dst[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* At the opening quote. *out: heap string (caller frees). */
static int jr_string(jr_t *r, char **out)
{
    r->p++; /* opening quote */
    /* The decoded string is never longer than the encoded one. */
    const char *q = r->p;
    while (q < r->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= r->end)
        return jr_fail(r, "unterminated string");
    char *buf = malloc((size_t)(q - r->p) + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = 0;
    while (*r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20) {
            free(buf);
            return jr_fail(r, "control character in string");
        }
        if (c == '\\') {
            r->p++;
            char e = *r->p;
            switch (e) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (r->end - r->p < 5 || hex4(r->p + 1, &cp) < 0) {
                    free(buf);
                    return jr_fail(r, "bad \\u escape");
                }
                r->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    free(buf);
                    return jr_fail(r, "lone low surrogate");
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (r->end - r->p < 7 || r->p[1] != '\\' || r->p[2] != 'u' ||
                        hex4(r->p + 3, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                        free(buf);
                        return jr_fail(r, "lone high surrogate");
                    }
                    r->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp == 0) {
                    free(buf);
                    return jr_fail(r, "\\u0000 in string");
                }
                n += utf8_put(buf + n, cp);
                break;
            }
            default: free(buf); return jr_fail(r, "bad escape");
            }
            r->p++;
            continue;
        }
        if (c >= 0x80) {
            /* Bytes up to the closing quote are there: a quote is never a continuation byte. */
            size_t len = utf8_len((const unsigned char *)r->p);
            if (len == 0 || r->p + len > q) {
                free(buf);
                return jr_fail(r, "invalid UTF-8 in string");
            }
            memcpy(buf + n, r->p, len);
            n += len;
            r->p += len;
            continue;
        }
        buf[n++] = (char)c;
        r->p++;
    }
    r->p++; /* closing quote */
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int jr_grow(dmce_json_t *v, size_t *cap, int with_keys)
{
    if (v->n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 4;
    dmce_json_t *items = realloc(v->items, nc * sizeof(*items));
    if (!items)
        return -ENOMEM;
    v->items = items;
    if (with_keys) {
        char **keys = realloc(v->keys, nc * sizeof(*keys));
        if (!keys)
            return -ENOMEM;
        v->keys = keys;
    }
    *cap = nc;
    return 0;
}

static int jr_container(jr_t *r, dmce_json_t *out, unsigned depth, int obj)
{
    char close = obj ? '}' : ']';
    size_t cap = 0;
    out->type = obj ? DMCE_JSON_OBJ : DMCE_JSON_ARR;
    r->p++;
    jr_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    for (;;) {
        int rc = jr_grow(out, &cap, obj);
        if (rc < 0)
            return rc;
        char *key = NULL;
        jr_ws(r);
        if (obj) {
            if (r->p >= r->end || *r->p != '"')
                return jr_fail(r, "expected a key");
            if ((rc = jr_string(r, &key)) < 0)
                return rc;
            for (size_t i = 0; i < out->n; i++) {
                if (strcmp(out->keys[i], key) == 0) {
                    free(key);
                    return jr_fail(r, "duplicate key");
                }
            }
            jr_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                free(key);
                return jr_fail(r, "expected ':'");
            }
            r->p++;
        }
        dmce_json_t *item = &out->items[out->n];
        memset(item, 0, sizeof(*item));
        rc = jr_value(r, item, depth + 1);
        if (rc < 0) {
            dmce_json_free(item);
            free(key);
            return rc;
        }
        if (obj)
            out->keys[out->n] = key;
        out->n++;
        jr_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return 0;
        }
        return jr_fail(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int jr_value(jr_t *r, dmce_json_t *out, unsigned depth)
{
    memset(out, 0, sizeof(*out));
    if (depth > DMCE_JSON_MAX_DEPTH)
        return jr_fail(r, "nested too deeply");
    jr_ws(r);
    if (r->p >= r->end)
        return jr_fail(r, "unexpected end");
    switch (*r->p) {
    case '{': return jr_container(r, out, depth, 1);
    case '[': return jr_container(r, out, depth, 0);
    case '"': out->type = DMCE_JSON_STR; return jr_string(r, &out->str);
    case 't':
        out->type = DMCE_JSON_BOOL;
        out->b = 1;
        return jr_literal(r, "true");
    case 'f': out->type = DMCE_JSON_BOOL; return jr_literal(r, "false");
    case 'n': return jr_literal(r, "null");
    default: return jr_number(r, out);
    }
}

int dmce_json_parse(const char *text, size_t len, dmce_json_t *out, char *err, size_t errlen)
{
    jr_t r = {.start = text, .p = text, .end = text + len, .err = err, .errlen = errlen};
    int rc = jr_value(&r, out, 0);
    if (rc == 0) {
        jr_ws(&r);
        if (r.p != r.end)
            rc = jr_fail(&r, "trailing characters");
    }
    if (rc < 0) {
        if (rc == -ENOMEM)
            set_err(err, errlen, "JSON: out of memory");
        dmce_json_free(out);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

void dmce_json_free(dmce_json_t *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        dmce_json_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof(*v));
}

const dmce_json_t *dmce_json_get(const dmce_json_t *v, const char *key)
{
    if (!v || v->type != DMCE_JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], key) == 0)
            return &v->items[i];
    return NULL;
}

/* ======================================================================
 * Result model
 * ====================================================================== */

static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= DMCE_PERF_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '+' && c != '-')
            return 0;
    }
    return 1;
}

int dmce_perf_result_init(dmce_perf_result_t *r, const char *area, const char *bench,
                          const char *impl)
{
    memset(r, 0, sizeof(*r));
    if (!valid_name(area) || !valid_name(bench) || !valid_name(impl))
        return -EINVAL;
    strcpy(r->area, area);
    strcpy(r->bench, bench);
    strcpy(r->impl, impl);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void dmce_perf_stat_from(dmce_perf_stat_t *s, const double *v, size_t n)
{
    memset(s, 0, sizeof(*s));
    double *tmp = n ? malloc(n * sizeof(*tmp)) : NULL;
    if (!tmp)
        return;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            tmp[m++] = v[i];
    if (m) {
        qsort(tmp, m, sizeof(*tmp), cmp_double);
        s->present = 1;
        s->min = tmp[0];
        s->max = tmp[m - 1];
        s->median = m % 2 ? tmp[m / 2] : (tmp[m / 2 - 1] + tmp[m / 2]) / 2.0;
    }
    free(tmp);
}

static dmce_perf_param_t *param_slot(dmce_perf_result_t *r, const char *key)
{
    if (!valid_name(key))
        return NULL;
    for (unsigned i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].key, key) == 0)
            return &r->params[i];
    if (r->nparams >= DMCE_PERF_MAX_PARAMS)
        return NULL;
    dmce_perf_param_t *p = &r->params[r->nparams++];
    memset(p, 0, sizeof(*p));
    strcpy(p->key, key);
    return p;
}

int dmce_perf_param_num(dmce_perf_result_t *r, const char *key, double v)
{
    if (!isfinite(v))
        return -EINVAL;
    if (!valid_name(key))
        return -EINVAL;
    dmce_perf_param_t *p = param_slot(r, key);
    if (!p)
        return -ENOSPC;
    p->is_num = 1;
    p->num = v;
    p->str[0] = '\0';
    return 0;
}

int dmce_perf_param_str(dmce_perf_result_t *r, const char *key, const char *v)
{
    if (!valid_name(key) || strlen(v) >= DMCE_PERF_NAME_MAX)
        return -EINVAL;
    dmce_perf_param_t *p = param_slot(r, key);
    if (!p)
        return -ENOSPC;
    p->is_num = 0;
    p->num = 0;
    strcpy(p->str, v);
    return 0;
}

const dmce_perf_param_t *dmce_perf_param_get(const dmce_perf_result_t *r, const char *key)
{
    for (unsigned i = 0; i < r->nparams; i++)
        if (strcmp(r->params[i].key, key) == 0)
            return &r->params[i];
    return NULL;
}

static void param_value(const dmce_perf_param_t *p, char *buf, size_t len)
{
    if (p->is_num)
        snprintf(buf, len, "%.10g", p->num);
    else
        snprintf(buf, len, "%s", p->str);
}

/* Indices of r's params sorted by key. */
static void params_sorted(const dmce_perf_result_t *r, unsigned *idx)
{
    for (unsigned i = 0; i < r->nparams; i++)
        idx[i] = i;
    for (unsigned i = 1; i < r->nparams; i++) {
        unsigned v = idx[i], j = i;
        while (j > 0 && strcmp(r->params[idx[j - 1]].key, r->params[v].key) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = v;
    }
}

int dmce_perf_result_key(const dmce_perf_result_t *r, char *buf, size_t len)
{
    unsigned idx[DMCE_PERF_MAX_PARAMS];
    params_sorted(r, idx);
    size_t n = (size_t)snprintf(buf, len, "%s", r->bench);
    for (unsigned i = 0; i < r->nparams && n < len; i++) {
        char v[64];
        param_value(&r->params[idx[i]], v, sizeof(v));
        n += (size_t)snprintf(buf + n, len - n, "%c%s=%s", i ? ',' : '[', r->params[idx[i]].key, v);
    }
    if (r->nparams && n < len)
        n += (size_t)snprintf(buf + n, len - n, "]");
    if (n >= len)
        return -ENOSPC;
    return (int)n;
}

static void write_stat(dmce_jw_t *w, const char *key, const dmce_perf_stat_t *s)
{
    dmce_jw_key(w, key);
    if (!s->present) {
        dmce_jw_null(w);
        return;
    }
    dmce_jw_obj_begin(w);
    dmce_jw_key(w, "median");
    dmce_jw_num(w, s->median);
    dmce_jw_key(w, "min");
    dmce_jw_num(w, s->min);
    dmce_jw_key(w, "max");
    dmce_jw_num(w, s->max);
    dmce_jw_obj_end(w);
}

void dmce_perf_result_write(const dmce_perf_result_t *r, dmce_jw_t *w)
{
    dmce_jw_obj_begin(w);
    dmce_jw_key(w, "area");
    dmce_jw_str(w, r->area);
    dmce_jw_key(w, "bench");
    dmce_jw_str(w, r->bench);
    dmce_jw_key(w, "impl");
    dmce_jw_str(w, r->impl);
    dmce_jw_key(w, "params");
    dmce_jw_obj_begin(w);
    for (unsigned i = 0; i < r->nparams; i++) {
        dmce_jw_key(w, r->params[i].key);
        if (r->params[i].is_num)
            dmce_jw_num(w, r->params[i].num);
        else
            dmce_jw_str(w, r->params[i].str);
    }
    dmce_jw_obj_end(w);
    if (r->limit[0]) {
        dmce_jw_key(w, "limit");
        dmce_jw_str(w, r->limit);
    }
    if (r->note[0]) {
        dmce_jw_key(w, "note");
        dmce_jw_str(w, r->note);
    }
    dmce_jw_key(w, "reps");
    dmce_jw_int(w, r->reps);
    dmce_jw_key(w, "warmup");
    dmce_jw_int(w, (int64_t)r->warmup);
    dmce_jw_key(w, "samples");
    dmce_jw_arr_begin(w);
    for (unsigned i = 0; i < r->reps && i < DMCE_PERF_MAX_REPS; i++)
        dmce_jw_int(w, (int64_t)r->samples[i]);
    dmce_jw_arr_end(w);
    if (r->bytes_per_op > 0) {
        dmce_jw_key(w, "bytes_per_op");
        dmce_jw_num(w, r->bytes_per_op);
    }
    write_stat(w, "ops_per_s", &r->ops_per_s);
    write_stat(w, "gb_per_s", &r->gb_per_s);
    write_stat(w, "p50_us", &r->p50_us);
    write_stat(w, "p99_us", &r->p99_us);
    write_stat(w, "p999_us", &r->p999_us);
    /* Per-client figures: only results of several clients have them. */
    if (r->client_min_ops_per_s.present)
        write_stat(w, "client_min_ops_per_s", &r->client_min_ops_per_s);
    if (r->client_max_ops_per_s.present)
        write_stat(w, "client_max_ops_per_s", &r->client_max_ops_per_s);
    if (r->fair_min.present)
        write_stat(w, "fair_min", &r->fair_min);
    dmce_jw_key(w, "curve");
    dmce_jw_arr_begin(w);
    for (unsigned i = 0; i < r->ncurve; i++) {
        dmce_jw_arr_begin(w);
        dmce_jw_num(w, r->curve_pct[i]);
        dmce_jw_num(w, r->curve_us[i]);
        dmce_jw_arr_end(w);
    }
    dmce_jw_arr_end(w);
    dmce_jw_obj_end(w);
}

static int get_name(const dmce_json_t *v, const char *key, char *dst, char *err, size_t errlen)
{
    const dmce_json_t *s = dmce_json_get(v, key);
    if (!s || s->type != DMCE_JSON_STR || !valid_name(s->str)) {
        set_err(err, errlen, "result: \"%s\" must be a name of 1..%d characters [A-Za-z0-9_.+-]",
                key, DMCE_PERF_NAME_MAX - 1);
        return -EINVAL;
    }
    strcpy(dst, s->str);
    return 0;
}

static int get_opt_text(const dmce_json_t *v, const char *key, char *dst, size_t len, char *err,
                        size_t errlen)
{
    const dmce_json_t *s = dmce_json_get(v, key);
    if (!s || s->type == DMCE_JSON_NULL)
        return 0;
    if (s->type != DMCE_JSON_STR || copy_str(dst, len, s->str) < 0) {
        set_err(err, errlen, "result: \"%s\" must be a string shorter than %zu bytes", key, len);
        return -EINVAL;
    }
    return 0;
}

static int get_count(const dmce_json_t *v, const char *key, double max, uint64_t *out, char *err,
                     size_t errlen)
{
    const dmce_json_t *n = dmce_json_get(v, key);
    if (!n || n->type != DMCE_JSON_NUM || n->num < 0 || n->num > max || !is_whole(n->num)) {
        set_err(err, errlen, "result: \"%s\" must be an integer 0..%.0f", key, max);
        return -EINVAL;
    }
    *out = (uint64_t)n->num;
    return 0;
}

static int get_stat(const dmce_json_t *v, const char *key, dmce_perf_stat_t *s, char *err,
                    size_t errlen)
{
    memset(s, 0, sizeof(*s));
    const dmce_json_t *o = dmce_json_get(v, key);
    if (!o || o->type == DMCE_JSON_NULL)
        return 0;
    const dmce_json_t *md = dmce_json_get(o, "median"), *mn = dmce_json_get(o, "min"),
                      *mx = dmce_json_get(o, "max");
    if (o->type != DMCE_JSON_OBJ || !md || !mn || !mx || md->type != DMCE_JSON_NUM ||
        mn->type != DMCE_JSON_NUM || mx->type != DMCE_JSON_NUM) {
        set_err(err, errlen, "result: \"%s\" must be null or {median, min, max} numbers", key);
        return -EINVAL;
    }
    s->present = 1;
    s->median = md->num;
    s->min = mn->num;
    s->max = mx->num;
    return 0;
}

int dmce_perf_result_from_json(const dmce_json_t *v, dmce_perf_result_t *r, char *err,
                               size_t errlen)
{
    memset(r, 0, sizeof(*r));
    if (!v || v->type != DMCE_JSON_OBJ) {
        set_err(err, errlen, "result: not a JSON object");
        return -EINVAL;
    }
    int rc;
    if ((rc = get_name(v, "area", r->area, err, errlen)) < 0 ||
        (rc = get_name(v, "bench", r->bench, err, errlen)) < 0 ||
        (rc = get_name(v, "impl", r->impl, err, errlen)) < 0 ||
        (rc = get_opt_text(v, "limit", r->limit, sizeof(r->limit), err, errlen)) < 0 ||
        (rc = get_opt_text(v, "note", r->note, sizeof(r->note), err, errlen)) < 0)
        return rc;

    const dmce_json_t *params = dmce_json_get(v, "params");
    if (params && params->type != DMCE_JSON_NULL) {
        if (params->type != DMCE_JSON_OBJ || params->n > DMCE_PERF_MAX_PARAMS) {
            set_err(err, errlen, "result: \"params\" must be an object of at most %d entries",
                    DMCE_PERF_MAX_PARAMS);
            return -EINVAL;
        }
        for (size_t i = 0; i < params->n; i++) {
            const dmce_json_t *p = &params->items[i];
            if (p->type == DMCE_JSON_NUM)
                rc = dmce_perf_param_num(r, params->keys[i], p->num);
            else if (p->type == DMCE_JSON_STR)
                rc = dmce_perf_param_str(r, params->keys[i], p->str);
            else
                rc = -EINVAL;
            if (rc < 0) {
                set_err(err, errlen, "result: param \"%s\": a name and a number or short string",
                        params->keys[i]);
                return -EINVAL;
            }
        }
    }

    uint64_t reps, warmup = 0;
    if ((rc = get_count(v, "reps", DMCE_PERF_MAX_REPS, &reps, err, errlen)) < 0)
        return rc;
    r->reps = (unsigned)reps;
    if (dmce_json_get(v, "warmup") && (rc = get_count(v, "warmup", 9e15, &warmup, err, errlen)) < 0)
        return rc;
    r->warmup = warmup;
    const dmce_json_t *samples = dmce_json_get(v, "samples");
    if (!samples || samples->type != DMCE_JSON_ARR || samples->n != r->reps) {
        set_err(err, errlen, "result: \"samples\" must be an array of \"reps\" (%u) counts",
                r->reps);
        return -EINVAL;
    }
    for (size_t i = 0; i < samples->n; i++) {
        const dmce_json_t *s = &samples->items[i];
        if (s->type != DMCE_JSON_NUM || s->num < 0 || !is_whole(s->num) || s->num > 9e15) {
            set_err(err, errlen, "result: \"samples\"[%zu] is not a count", i);
            return -EINVAL;
        }
        r->samples[i] = (uint64_t)s->num;
    }
    const dmce_json_t *bpo = dmce_json_get(v, "bytes_per_op");
    if (bpo && bpo->type != DMCE_JSON_NULL) {
        if (bpo->type != DMCE_JSON_NUM || !(bpo->num >= 0)) {
            set_err(err, errlen, "result: \"bytes_per_op\" must be a number >= 0");
            return -EINVAL;
        }
        r->bytes_per_op = bpo->num;
    }
    if ((rc = get_stat(v, "ops_per_s", &r->ops_per_s, err, errlen)) < 0 ||
        (rc = get_stat(v, "gb_per_s", &r->gb_per_s, err, errlen)) < 0 ||
        (rc = get_stat(v, "p50_us", &r->p50_us, err, errlen)) < 0 ||
        (rc = get_stat(v, "p99_us", &r->p99_us, err, errlen)) < 0 ||
        (rc = get_stat(v, "p999_us", &r->p999_us, err, errlen)) < 0 ||
        (rc = get_stat(v, "client_min_ops_per_s", &r->client_min_ops_per_s, err, errlen)) < 0 ||
        (rc = get_stat(v, "client_max_ops_per_s", &r->client_max_ops_per_s, err, errlen)) < 0 ||
        (rc = get_stat(v, "fair_min", &r->fair_min, err, errlen)) < 0)
        return rc;

    const dmce_json_t *curve = dmce_json_get(v, "curve");
    if (curve && curve->type != DMCE_JSON_NULL) {
        if (curve->type != DMCE_JSON_ARR || curve->n > DMCE_PERF_MAX_CURVE) {
            set_err(err, errlen, "result: \"curve\" must be an array of at most %d points",
                    DMCE_PERF_MAX_CURVE);
            return -EINVAL;
        }
        for (size_t i = 0; i < curve->n; i++) {
            const dmce_json_t *pt = &curve->items[i];
            if (pt->type != DMCE_JSON_ARR || pt->n != 2 || pt->items[0].type != DMCE_JSON_NUM ||
                pt->items[1].type != DMCE_JSON_NUM) {
                set_err(err, errlen, "result: \"curve\"[%zu] must be [percentile, us]", i);
                return -EINVAL;
            }
            r->curve_pct[i] = pt->items[0].num;
            r->curve_us[i] = pt->items[1].num;
        }
        r->ncurve = (unsigned)curve->n;
    }
    return 0;
}

/* ======================================================================
 * Runs: results.json
 * ====================================================================== */

void dmce_perf_run_init(dmce_perf_run_t *run)
{
    memset(run, 0, sizeof(*run));
    strcpy(run->commit, "unknown");
    strcpy(run->mode, "unknown");
}

void dmce_perf_run_free(dmce_perf_run_t *run)
{
    free(run->results);
    run->results = NULL;
    run->nresults = run->cap = 0;
}

int dmce_perf_run_add(dmce_perf_run_t *run, const dmce_perf_result_t *r)
{
    if (run->nresults == run->cap) {
        size_t nc = run->cap ? run->cap * 2 : 16;
        dmce_perf_result_t *p = realloc(run->results, nc * sizeof(*p));
        if (!p)
            return -ENOMEM;
        run->results = p;
        run->cap = nc;
    }
    run->results[run->nresults++] = *r;
    return 0;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i]))
        i++;
    memmove(s, s + i, n - i + 1);
}

void dmce_perf_machine_probe(dmce_perf_run_t *run)
{
    strcpy(run->cpu_model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof(line), f)) {
            /* x86: "model name"; arm64 and others may only have "Hardware" or none. */
            if (strncmp(line, "model name", 10) == 0 || strncmp(line, "Hardware", 8) == 0) {
                char *colon = strchr(line, ':');
                if (colon) {
                    snprintf(run->cpu_model, sizeof(run->cpu_model), "%s", colon + 1);
                    trim(run->cpu_model);
                    break;
                }
            }
        }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    run->nproc = n > 0 ? (unsigned)n : 0;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    run->memory_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(run->kernel, sizeof(run->kernel), "%.20s %.80s %.20s", u.sysname, u.release,
                 u.machine);
    else
        strcpy(run->kernel, "unknown");
    unsigned nodes = 0;
    DIR *d = opendir("/sys/devices/system/node");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strncmp(e->d_name, "node", 4) == 0 && isdigit((unsigned char)e->d_name[4]))
                nodes++;
        closedir(d);
    }
    run->numa_nodes = nodes ? nodes : 1;
}

int dmce_perf_read_lines(dmce_perf_run_t *run, FILE *f, const char *name, char *err, size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\n' || *p == '\0')
            continue;
        dmce_json_t v;
        char jerr[160];
        rc = dmce_json_parse(line, (size_t)len, &v, jerr, sizeof(jerr));
        if (rc < 0) {
            set_err(err, errlen, "%s:%u: %s", name, lineno, jerr);
            break;
        }
        dmce_perf_result_t r;
        rc = dmce_perf_result_from_json(&v, &r, jerr, sizeof(jerr));
        dmce_json_free(&v);
        if (rc < 0) {
            set_err(err, errlen, "%s:%u: %s", name, lineno, jerr);
            break;
        }
        if ((rc = dmce_perf_run_add(run, &r)) < 0) {
            set_err(err, errlen, "%s:%u: out of memory", name, lineno);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s: read error", name);
        rc = -EIO;
    }
    free(line);
    return rc;
}

int dmce_perf_run_write(const dmce_perf_run_t *run, FILE *f)
{
    dmce_jw_t w;
    dmce_jw_init(&w, f, 2);
    dmce_jw_obj_begin(&w);
    dmce_jw_key(&w, "format");
    dmce_jw_str(&w, DMCE_PERF_FORMAT);
    dmce_jw_key(&w, "machine");
    dmce_jw_obj_begin(&w);
    dmce_jw_key(&w, "cpu_model");
    dmce_jw_str(&w, run->cpu_model);
    dmce_jw_key(&w, "nproc");
    dmce_jw_int(&w, run->nproc);
    dmce_jw_key(&w, "memory_bytes");
    dmce_jw_int(&w, (int64_t)run->memory_bytes);
    dmce_jw_key(&w, "kernel");
    dmce_jw_str(&w, run->kernel);
    dmce_jw_key(&w, "numa_nodes");
    dmce_jw_int(&w, run->numa_nodes);
    dmce_jw_obj_end(&w);
    dmce_jw_key(&w, "commit");
    dmce_jw_str(&w, run->commit);
    dmce_jw_key(&w, "date");
    dmce_jw_str(&w, run->date);
    dmce_jw_key(&w, "mode");
    dmce_jw_str(&w, run->mode);
    dmce_jw_key(&w, "seconds");
    dmce_jw_num(&w, run->seconds);
    dmce_jw_key(&w, "peers");
    dmce_jw_arr_begin(&w);
    for (unsigned i = 0; i < run->npeers; i++) {
        dmce_jw_obj_begin(&w);
        dmce_jw_key(&w, "name");
        dmce_jw_str(&w, run->peers[i].name);
        dmce_jw_key(&w, "found");
        dmce_jw_bool(&w, run->peers[i].found);
        dmce_jw_key(&w, "version");
        dmce_jw_str(&w, run->peers[i].version);
        dmce_jw_obj_end(&w);
    }
    dmce_jw_arr_end(&w);
    dmce_jw_key(&w, "failures");
    dmce_jw_arr_begin(&w);
    for (unsigned i = 0; i < run->nfailures; i++)
        dmce_jw_str(&w, run->failures[i]);
    dmce_jw_arr_end(&w);
    dmce_jw_key(&w, "results");
    dmce_jw_arr_begin(&w);
    /* pretty_depth 2: each result starts a line, its insides stay on it. */
    for (size_t i = 0; i < run->nresults; i++)
        dmce_perf_result_write(&run->results[i], &w);
    dmce_jw_arr_end(&w);
    dmce_jw_obj_end(&w);
    jw_out(&w, "\n", 1);
    return dmce_jw_finish(&w);
}

static int load_text(const dmce_json_t *o, const char *key, char *dst, size_t len)
{
    const dmce_json_t *s = dmce_json_get(o, key);
    if (!s || s->type != DMCE_JSON_STR)
        return -EINVAL;
    return copy_str(dst, len, s->str);
}

static int load_uint(const dmce_json_t *o, const char *key, uint64_t *out)
{
    const dmce_json_t *n = dmce_json_get(o, key);
    if (!n || n->type != DMCE_JSON_NUM || n->num < 0 || !is_whole(n->num))
        return -EINVAL;
    *out = (uint64_t)n->num;
    return 0;
}

int dmce_perf_run_load(dmce_perf_run_t *run, const char *path, char *err, size_t errlen)
{
    dmce_perf_run_init(run);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 65536 > cap) {
            size_t nc = cap ? cap * 2 : 262144;
            char *t = realloc(text, nc);
            if (!t) {
                rc = -ENOMEM;
                break;
            }
            text = t;
            cap = nc;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc < 0) {
        free(text);
        set_err(err, errlen, "%s: %s", path, strerror(-rc));
        return rc;
    }

    dmce_json_t v;
    char jerr[160];
    rc = dmce_json_parse(text, len, &v, jerr, sizeof(jerr));
    free(text);
    if (rc < 0) {
        set_err(err, errlen, "%s: %s", path, jerr);
        return rc;
    }
    const dmce_json_t *fmt = dmce_json_get(&v, "format");
    const dmce_json_t *machine = dmce_json_get(&v, "machine");
    const dmce_json_t *results = dmce_json_get(&v, "results");
    uint64_t u;
    rc = -EINVAL;
    if (!fmt || fmt->type != DMCE_JSON_STR || strcmp(fmt->str, DMCE_PERF_FORMAT) != 0) {
        set_err(err, errlen, "%s: not a dmce perf result file (\"format\" is not \"%s\")", path,
                DMCE_PERF_FORMAT);
        goto out;
    }
    if (!machine || machine->type != DMCE_JSON_OBJ ||
        load_text(machine, "cpu_model", run->cpu_model, sizeof(run->cpu_model)) < 0 ||
        load_text(machine, "kernel", run->kernel, sizeof(run->kernel)) < 0) {
        set_err(err, errlen, "%s: \"machine\" lacks cpu_model or kernel", path);
        goto out;
    }
    if (load_uint(machine, "nproc", &u) == 0)
        run->nproc = (unsigned)u;
    if (load_uint(machine, "memory_bytes", &u) == 0)
        run->memory_bytes = u;
    if (load_uint(machine, "numa_nodes", &u) == 0)
        run->numa_nodes = (unsigned)u;
    if (load_text(&v, "commit", run->commit, sizeof(run->commit)) < 0 ||
        load_text(&v, "date", run->date, sizeof(run->date)) < 0 ||
        load_text(&v, "mode", run->mode, sizeof(run->mode)) < 0) {
        set_err(err, errlen, "%s: commit, date and mode must be short strings", path);
        goto out;
    }
    const dmce_json_t *secs = dmce_json_get(&v, "seconds");
    if (secs && secs->type == DMCE_JSON_NUM)
        run->seconds = secs->num;
    const dmce_json_t *peers = dmce_json_get(&v, "peers");
    for (size_t i = 0; peers && peers->type == DMCE_JSON_ARR && i < peers->n; i++) {
        if (run->npeers == DMCE_PERF_MAX_PEERS)
            break;
        dmce_perf_peer_t *p = &run->peers[run->npeers];
        const dmce_json_t *found = dmce_json_get(&peers->items[i], "found");
        if (load_text(&peers->items[i], "name", p->name, sizeof(p->name)) < 0 || !found ||
            found->type != DMCE_JSON_BOOL) {
            set_err(err, errlen, "%s: peers[%zu] needs name and found", path, i);
            goto out;
        }
        p->found = found->b;
        if (load_text(&peers->items[i], "version", p->version, sizeof(p->version)) < 0)
            p->version[0] = '\0';
        run->npeers++;
    }
    const dmce_json_t *failures = dmce_json_get(&v, "failures");
    for (size_t i = 0; failures && failures->type == DMCE_JSON_ARR && i < failures->n; i++) {
        const dmce_json_t *s = &failures->items[i];
        if (run->nfailures == DMCE_PERF_MAX_FAILURES || s->type != DMCE_JSON_STR)
            break;
        snprintf(run->failures[run->nfailures++], DMCE_PERF_TEXT_MAX, "%s", s->str);
    }
    if (!results || results->type != DMCE_JSON_ARR) {
        set_err(err, errlen, "%s: \"results\" must be an array", path);
        goto out;
    }
    for (size_t i = 0; i < results->n; i++) {
        dmce_perf_result_t r;
        if (dmce_perf_result_from_json(&results->items[i], &r, jerr, sizeof(jerr)) < 0) {
            set_err(err, errlen, "%s: results[%zu]: %s", path, i, jerr);
            goto out;
        }
        if (dmce_perf_run_add(run, &r) < 0) {
            rc = -ENOMEM;
            set_err(err, errlen, "%s: out of memory", path);
            goto out;
        }
    }
    rc = 0;
out:
    dmce_json_free(&v);
    if (rc < 0)
        dmce_perf_run_free(run);
    return rc;
}

/* ======================================================================
 * Markdown
 * ====================================================================== */

/* 3 significant digits with k/M/G: 523, 14.7k, 1.16M. */
static const char *fmt_rate(const dmce_perf_stat_t *s, char *buf, size_t len)
{
    if (!s->present)
        return "-";
    double v = s->median;
    const char *suffix = "";
    if (v >= 1e9) {
        v /= 1e9;
        suffix = "G";
    } else if (v >= 1e6) {
        v /= 1e6;
        suffix = "M";
    } else if (v >= 1e4) {
        v /= 1e3;
        suffix = "k";
    }
    if (v >= 100 || *suffix == '\0')
        snprintf(buf, len, "%.0f%s", v, suffix);
    else if (v >= 10)
        snprintf(buf, len, "%.1f%s", v, suffix);
    else
        snprintf(buf, len, "%.2f%s", v, suffix);
    return buf;
}

/* Latency in us, 3 significant digits, no exponent. */
static const char *fmt_us_v(double v, char *buf, size_t len)
{
    if (v >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (v >= 10)
        snprintf(buf, len, "%.1f", v);
    else if (v >= 1)
        snprintf(buf, len, "%.2f", v);
    else
        snprintf(buf, len, "%.3f", v);
    return buf;
}

static const char *fmt_us(const dmce_perf_stat_t *s, char *buf, size_t len)
{
    return s->present ? fmt_us_v(s->median, buf, len) : "-";
}

static const char *fmt_gbs(const dmce_perf_stat_t *s, char *buf, size_t len)
{
    if (!s->present)
        return "-";
    snprintf(buf, len, s->median >= 10 ? "%.1f" : s->median >= 1 ? "%.2f" : "%.3f", s->median);
    return buf;
}

static const char *fmt_bytes(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (v >= 1024 && u + 1 < ARRAY_LEN(units) && is_whole(v / 1024)) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, "%.10g %s", v, units[u]);
    return buf;
}

/* "get 64 B, 1 client" style label of (bench, params). */
static void row_label(const dmce_perf_result_t *r, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s", r->bench);
    for (unsigned i = 0; i < r->nparams && n < len; i++) {
        const dmce_perf_param_t *p = &r->params[i];
        char v[2 * DMCE_PERF_NAME_MAX + 16];
        if (p->is_num && (strcmp(p->key, "size") == 0 || strstr(p->key, "bytes")))
            fmt_bytes(p->num, v, sizeof(v));
        else if (p->is_num && strcmp(p->key, "clients") == 0)
            snprintf(v, sizeof(v), "%.0f client%s", p->num, p->num == 1 ? "" : "s");
        else {
            char pv[64];
            param_value(p, pv, sizeof(pv));
            snprintf(v, sizeof(v), "%s=%s", p->key, pv);
        }
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : " ", v);
    }
}

/* Fixed display order of areas; unknown areas follow in first-seen order. */
static const char *const area_order[] = {"limits", "msmp",      "mapping",  "rings",
                                         "store",  "mirroring", "failover", "migration"};

static int area_rank(const char *area)
{
    for (size_t i = 0; i < ARRAY_LEN(area_order); i++)
        if (strcmp(area_order[i], area) == 0)
            return (int)i;
    return (int)ARRAY_LEN(area_order);
}

/* Rows of one area: results of the same key, ordered by bench (first seen) then params. */
typedef struct row {
    char key[DMCE_PERF_TEXT_MAX * 2];
    const dmce_perf_result_t *first;
    unsigned bench_rank;
} row_t;

static int cmp_params(const dmce_perf_result_t *a, const dmce_perf_result_t *b)
{
    unsigned ia[DMCE_PERF_MAX_PARAMS], ib[DMCE_PERF_MAX_PARAMS];
    params_sorted(a, ia);
    params_sorted(b, ib);
    for (unsigned i = 0; i < a->nparams && i < b->nparams; i++) {
        const dmce_perf_param_t *pa = &a->params[ia[i]], *pb = &b->params[ib[i]];
        int c = strcmp(pa->key, pb->key);
        if (c)
            return c;
        if (pa->is_num && pb->is_num) {
            if (pa->num != pb->num)
                return pa->num < pb->num ? -1 : 1;
        } else if ((c = strcmp(pa->str, pb->str)) != 0) {
            return c;
        }
    }
    return (a->nparams > b->nparams) - (a->nparams < b->nparams);
}

static int cmp_row(const void *x, const void *y)
{
    const row_t *a = x, *b = y;
    if (a->bench_rank != b->bench_rank)
        return a->bench_rank < b->bench_rank ? -1 : 1;
    int c = cmp_params(a->first, b->first);
    return c ? c : strcmp(a->key, b->key);
}

/* Collects the rows of an area; returns the count (rows: heap, caller frees). */
static size_t collect_rows(const dmce_perf_run_t *run, const char *area, row_t **out)
{
    row_t *rows = calloc(run->nresults ? run->nresults : 1, sizeof(*rows));
    const char **benches = calloc(run->nresults ? run->nresults : 1, sizeof(*benches));
    size_t nrows = 0, nb = 0;
    if (!rows || !benches) {
        free(rows);
        free(benches);
        *out = NULL;
        return 0;
    }
    for (size_t i = 0; i < run->nresults; i++) {
        const dmce_perf_result_t *r = &run->results[i];
        if (strcmp(r->area, area) != 0)
            continue;
        char key[sizeof(rows[0].key)];
        if (dmce_perf_result_key(r, key, sizeof(key)) < 0)
            continue;
        size_t j;
        for (j = 0; j < nrows; j++)
            if (strcmp(rows[j].key, key) == 0)
                break;
        if (j < nrows)
            continue;
        size_t b;
        for (b = 0; b < nb; b++)
            if (strcmp(benches[b], r->bench) == 0)
                break;
        if (b == nb)
            benches[nb++] = r->bench;
        strcpy(rows[nrows].key, key);
        rows[nrows].first = r;
        rows[nrows].bench_rank = (unsigned)b;
        nrows++;
    }
    free(benches);
    qsort(rows, nrows, sizeof(*rows), cmp_row);
    *out = rows;
    return nrows;
}

/*
 * A result's key against a wanted one, in which a parameter value "*" (as
 * in "seq_read[pages=2m,size=*]": a target that holds for quick and full
 * runs, whose sizes differ) matches any value. 1 when they match.
 */
static int key_matches(const char *want, const char *key)
{
    const char *w = want;
    while (*w && *key) {
        if (w > want && w[-1] == '=' && w[0] == '*' && (w[1] == ',' || w[1] == ']')) {
            while (*key && *key != ',' && *key != ']')
                key++;
            w++;
            continue;
        }
        if (*w++ != *key++)
            return 0;
    }
    return *w == *key;
}

static const dmce_perf_result_t *find_result(const dmce_perf_run_t *run, const char *area,
                                             const char *impl, const char *key)
{
    for (size_t i = 0; i < run->nresults; i++) {
        const dmce_perf_result_t *r = &run->results[i];
        char k[DMCE_PERF_TEXT_MAX * 2];
        if (strcmp(r->area, area) == 0 && (!impl || strcmp(r->impl, impl) == 0) &&
            dmce_perf_result_key(r, k, sizeof(k)) >= 0 && key_matches(key, k))
            return r;
    }
    return NULL;
}

/* "14.7k/s, p50 62.1 us"; what is missing is left out; nothing: "-". */
static const char *fmt_cell(const dmce_perf_result_t *r, char *buf, size_t len)
{
    if (!r || (!r->ops_per_s.present && !r->p50_us.present))
        return "-";
    char a[32], b[32];
    if (!r->p50_us.present)
        snprintf(buf, len, "%s/s", fmt_rate(&r->ops_per_s, a, sizeof(a)));
    else if (!r->ops_per_s.present)
        snprintf(buf, len, "p50 %s us", fmt_us(&r->p50_us, b, sizeof(b)));
    else
        snprintf(buf, len, "%s/s, p50 %s us", fmt_rate(&r->ops_per_s, a, sizeof(a)),
                 fmt_us(&r->p50_us, b, sizeof(b)));
    return buf;
}

static const char *fmt_ratio(const dmce_perf_result_t *num, const dmce_perf_result_t *den,
                             char *buf, size_t len)
{
    if (!num || !den || !num->ops_per_s.present || !den->ops_per_s.present ||
        !(den->ops_per_s.median > 0))
        return "-";
    double q = num->ops_per_s.median / den->ops_per_s.median;
    snprintf(buf, len, q >= 100 ? "%.0f" : q >= 10 ? "%.1f" : q >= 0.1 ? "%.2f" : "%.3f", q);
    return buf;
}

/* dmce itself, or a variant of it ("dmce-mapped"): the subject of a ratio row. */
static int is_subject(const char *impl)
{
    return strcmp(impl, "dmce") == 0 || strncmp(impl, "dmce-", 5) == 0;
}

/* Adds s to list (if new, and if there is room). */
static void add_unique(const char **list, size_t *n, size_t max, const char *s)
{
    for (size_t j = 0; j < *n; j++)
        if (strcmp(list[j], s) == 0)
            return;
    if (*n < max)
        list[(*n)++] = s;
}

/*
 * The limit of result d in row `key` of `area`: the result d->limit names
 * (in area "limits", else an impl "limit" of d's own area), or, when d
 * names none, the impl "limit" of the same row. NULL when not measured.
 */
static const dmce_perf_result_t *limit_for(const dmce_perf_run_t *run, const char *area,
                                           const char *key, const dmce_perf_result_t *d)
{
    if (!d)
        return NULL;
    if (d->limit[0]) {
        const dmce_perf_result_t *l = find_result(run, "limits", NULL, d->limit);
        return l ? l : find_result(run, area, "limit", d->limit);
    }
    return find_result(run, area, "limit", key);
}

static void ratio_row(const dmce_perf_run_t *run, const char *area, const char *key,
                      const dmce_perf_result_t *first, const dmce_perf_result_t *d, int has_limit,
                      const char *const *refs, size_t nrefs, FILE *f)
{
    char label[320], cell[160], ratio[32];
    row_label(first, label, sizeof(label));
    if (d && strcmp(d->impl, "dmce") != 0) {
        size_t n = strlen(label);
        snprintf(label + n, sizeof(label) - n, " [%s]", d->impl);
    }
    fprintf(f, "| %s | %s |", label, fmt_cell(d, cell, sizeof(cell)));
    if (has_limit) {
        const dmce_perf_result_t *l = limit_for(run, area, key, d);
        if (l) {
            char c[128];
            snprintf(cell, sizeof(cell), "%s: %s", l->bench, fmt_cell(l, c, sizeof(c)));
        }
        fprintf(f, " %s | %s |", l ? cell : "-", fmt_ratio(d, l, ratio, sizeof(ratio)));
    }
    for (size_t j = 0; j < nrefs; j++) {
        const dmce_perf_result_t *p = find_result(run, area, refs[j], key);
        fprintf(f, " %s | %s |", fmt_cell(p, cell, sizeof(cell)),
                fmt_ratio(d, p, ratio, sizeof(ratio)));
    }
    fprintf(f, "\n");
}

int dmce_perf_render_ratio_table(const dmce_perf_run_t *run, const char *area, FILE *f)
{
    /*
     * Subjects: dmce and its variants, one row each per (bench, params).
     * References: the limit a subject names, and every other impl, each a
     * column with the ratio subject/reference.
     */
    const char *subjects[16], *refs[16];
    size_t nsub = 0, nrefs = 0;
    int has_limit = 0;
    for (size_t i = 0; i < run->nresults; i++) {
        const dmce_perf_result_t *r = &run->results[i];
        if (strcmp(r->area, area) != 0)
            continue;
        if (is_subject(r->impl)) {
            add_unique(subjects, &nsub, ARRAY_LEN(subjects), r->impl);
            has_limit |= r->limit[0] != '\0';
        } else if (strcmp(r->impl, "limit") == 0) {
            has_limit = 1;
        } else {
            add_unique(refs, &nrefs, ARRAY_LEN(refs), r->impl);
        }
    }
    if (nsub == 0)
        return 0;
    row_t *rows;
    size_t nrows = collect_rows(run, area, &rows);
    fprintf(f, "| benchmark | dmce |");
    if (has_limit)
        fprintf(f, " limit | dmce/limit |");
    for (size_t j = 0; j < nrefs; j++)
        fprintf(f, " %s | dmce/%s |", refs[j], refs[j]);
    fprintf(f, "\n|---|---:|");
    if (has_limit)
        fprintf(f, "---:|---:|");
    for (size_t j = 0; j < nrefs; j++)
        fprintf(f, "---:|---:|");
    fprintf(f, "\n");
    int n = 0;
    for (size_t i = 0; i < nrows; i++) {
        int printed = 0;
        for (size_t s = 0; s < nsub; s++) {
            const dmce_perf_result_t *d = find_result(run, area, subjects[s], rows[i].key);
            if (!d)
                continue;
            ratio_row(run, area, rows[i].key, rows[i].first, d, has_limit, refs, nrefs, f);
            printed++;
        }
        if (!printed) /* references only: dmce was not measured here */
            ratio_row(run, area, rows[i].key, rows[i].first, NULL, has_limit, refs, nrefs, f);
        n += printed ? printed : 1;
    }
    free(rows);
    return n;
}

/* s with '|' and line breaks replaced, so that it stays in one table cell. */
static const char *cell_text(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = s[i] == '|' ? '/' : (s[i] == '\n' || s[i] == '\r') ? ' ' : s[i];
    buf[i] = '\0';
    return buf;
}

#define BW_MIN_BYTES (1024.0 * 1024.0)

int dmce_perf_render_bw_table(const dmce_perf_run_t *run, const char *area, FILE *f)
{
    row_t *rows;
    size_t nrows = collect_rows(run, area, &rows);
    int n = 0;
    for (size_t i = 0; i < nrows; i++) {
        for (size_t k = 0; k < run->nresults; k++) {
            const dmce_perf_result_t *r = &run->results[k];
            char key[DMCE_PERF_TEXT_MAX * 2];
            if (strcmp(r->area, area) != 0 || strcmp(r->impl, "limit") == 0 ||
                r->bytes_per_op < BW_MIN_BYTES || !r->gb_per_s.present ||
                dmce_perf_result_key(r, key, sizeof(key)) < 0 || strcmp(key, rows[i].key) != 0)
                continue;
            const dmce_perf_result_t *l = limit_for(run, area, key, r);
            if (!l || !l->gb_per_s.present || !(l->gb_per_s.median > 0))
                continue;
            if (n == 0)
                fprintf(f, "| benchmark | GB/s (min..max) | limit GB/s | ratio to limit | what "
                           "|\n|---|---:|---:|---:|---|\n");
            char label[320], a[32], b[32], c[32], d[32], note[DMCE_PERF_TEXT_MAX];
            row_label(r, label, sizeof(label));
            if (strcmp(r->impl, "dmce") != 0) {
                size_t len = strlen(label);
                snprintf(label + len, sizeof(label) - len, " [%s]", r->impl);
            }
            dmce_perf_stat_t lo = {1, r->gb_per_s.min, 0, 0}, hi = {1, r->gb_per_s.max, 0, 0};
            double q = r->gb_per_s.median / l->gb_per_s.median;
            fprintf(f, "| %s | %s (%s..%s) | %s: %s | %.2f | %s |\n", label,
                    fmt_gbs(&r->gb_per_s, a, sizeof(a)), fmt_gbs(&lo, b, sizeof(b)),
                    fmt_gbs(&hi, c, sizeof(c)), l->bench, fmt_gbs(&l->gb_per_s, d, sizeof(d)), q,
                    cell_text(r->note, note, sizeof(note)));
            n++;
        }
    }
    free(rows);
    return n;
}

static uint64_t median_samples(const dmce_perf_result_t *r)
{
    double v[DMCE_PERF_MAX_REPS];
    for (unsigned i = 0; i < r->reps; i++)
        v[i] = (double)r->samples[i];
    dmce_perf_stat_t s;
    dmce_perf_stat_from(&s, v, r->reps);
    return s.present ? (uint64_t)s.median : 0;
}

int dmce_perf_render_detail_table(const dmce_perf_run_t *run, const char *area, FILE *f)
{
    row_t *rows;
    size_t nrows = collect_rows(run, area, &rows);
    if (nrows == 0) {
        free(rows);
        return 0;
    }
    fprintf(f, "| benchmark | impl | reps x samples | p50 us | p99 us | p99.9 us | ops/s | GB/s "
               "| ops/s min..max |\n|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    int n = 0;
    for (size_t i = 0; i < nrows; i++) {
        for (size_t k = 0; k < run->nresults; k++) {
            const dmce_perf_result_t *r = &run->results[k];
            char key[DMCE_PERF_TEXT_MAX * 2];
            if (strcmp(r->area, area) != 0 || dmce_perf_result_key(r, key, sizeof(key)) < 0 ||
                strcmp(key, rows[i].key) != 0)
                continue;
            char label[256], a[32], b[32], c[32], d[32], e[32], lo[32], hi[32];
            row_label(r, label, sizeof(label));
            dmce_perf_stat_t smin = {r->ops_per_s.present, r->ops_per_s.min, 0, 0};
            dmce_perf_stat_t smax = {r->ops_per_s.present, r->ops_per_s.max, 0, 0};
            fprintf(f, "| %s | %s | %u x %llu | %s | %s | %s | %s | %s | ", label, r->impl, r->reps,
                    (unsigned long long)median_samples(r), fmt_us(&r->p50_us, a, sizeof(a)),
                    fmt_us(&r->p99_us, b, sizeof(b)), fmt_us(&r->p999_us, c, sizeof(c)),
                    fmt_rate(&r->ops_per_s, d, sizeof(d)), fmt_gbs(&r->gb_per_s, e, sizeof(e)));
            if (r->ops_per_s.present)
                fprintf(f, "%s..%s |\n", fmt_rate(&smin, lo, sizeof(lo)),
                        fmt_rate(&smax, hi, sizeof(hi)));
            else
                fprintf(f, "- |\n");
            n++;
        }
    }
    free(rows);
    return n;
}

int dmce_perf_render_clients_table(const dmce_perf_run_t *run, const char *area, FILE *f)
{
    row_t *rows;
    size_t nrows = collect_rows(run, area, &rows);
    int n = 0;
    for (size_t i = 0; i < nrows; i++) {
        for (size_t k = 0; k < run->nresults; k++) {
            const dmce_perf_result_t *r = &run->results[k];
            char key[DMCE_PERF_TEXT_MAX * 2];
            if (strcmp(r->area, area) != 0 || !r->fair_min.present ||
                dmce_perf_result_key(r, key, sizeof(key)) < 0 || strcmp(key, rows[i].key) != 0)
                continue;
            if (n == 0)
                fprintf(f, "| benchmark | impl | total ops/s | slowest client ops/s | fastest "
                           "client ops/s | slowest client / fair share | p50 us | p99 us "
                           "|\n|---|---|---:|---:|---:|---:|---:|---:|\n");
            char label[256], a[32], b[32], c[32], d[32], e[32];
            row_label(r, label, sizeof(label));
            fprintf(f, "| %s | %s | %s | %s | %s | %.2f (%.2f..%.2f) | %s | %s |\n", label, r->impl,
                    fmt_rate(&r->ops_per_s, a, sizeof(a)),
                    fmt_rate(&r->client_min_ops_per_s, b, sizeof(b)),
                    fmt_rate(&r->client_max_ops_per_s, c, sizeof(c)), r->fair_min.median,
                    r->fair_min.min, r->fair_min.max, fmt_us(&r->p50_us, d, sizeof(d)),
                    fmt_us(&r->p99_us, e, sizeof(e)));
            n++;
        }
    }
    free(rows);
    return n;
}

/* ---- targets ------------------------------------------------------------ */

static const char *const fig_names[] = {
    [DMCE_PERF_FIG_OPS] = "ops",   [DMCE_PERF_FIG_P50] = "p50",   [DMCE_PERF_FIG_P99] = "p99",
    [DMCE_PERF_FIG_P999] = "p999", [DMCE_PERF_FIG_FAIR] = "fair",
};

/* "FIG:IMPL:KEY" -> ref. 0 or -EINVAL. */
static int parse_figref(const char *s, dmce_perf_figref_t *ref)
{
    const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2 || c2[1] == '\0' || strlen(c2 + 1) >= sizeof(ref->key))
        return -EINVAL;
    size_t fl = (size_t)(c1 - s), il = (size_t)(c2 - c1 - 1);
    size_t i;
    for (i = 0; i < ARRAY_LEN(fig_names); i++)
        if (strlen(fig_names[i]) == fl && strncmp(s, fig_names[i], fl) == 0)
            break;
    if (i == ARRAY_LEN(fig_names) || il == 0 || il >= sizeof(ref->impl))
        return -EINVAL;
    ref->fig = (dmce_perf_fig_t)i;
    memcpy(ref->impl, c1 + 1, il);
    ref->impl[il] = '\0';
    strcpy(ref->key, c2 + 1);
    return valid_name(ref->impl) ? 0 : -EINVAL;
}

/* Next blank-separated word of *p (NUL-terminated in place), or NULL. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return NULL;
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

int dmce_perf_targets_read(dmce_perf_targets_t *t, FILE *f, const char *name, char *err,
                           size_t errlen)
{
    char *line = NULL;
    size_t cap = 0;
    unsigned lineno = 0;
    int rc = 0;
    t->n = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        trim(line);
        char *p = line, *w;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        if (t->n == DMCE_PERF_MAX_TARGETS) {
            set_err(err, errlen, "%s:%u: more than %d targets", name, lineno,
                    DMCE_PERF_MAX_TARGETS);
            rc = -ENOSPC;
            break;
        }
        dmce_perf_target_t *x = &t->t[t->n];
        memset(x, 0, sizeof(*x));
        const char *area = next_word(&p), *num = next_word(&p);
        w = next_word(&p);
        if (w && strcmp(w, "/") == 0) {
            const char *den = next_word(&p);
            if (!den || parse_figref(den, &x->den) < 0) {
                set_err(err, errlen, "%s:%u: expected FIG:IMPL:KEY after '/'", name, lineno);
                rc = -EINVAL;
                break;
            }
            x->has_den = 1;
            w = next_word(&p);
        }
        const char *op = w, *val = next_word(&p);
        while (*p == ' ' || *p == '\t')
            p++;
        char *end = NULL;
        if (val) {
            errno = 0;
            x->value = strtod(val, &end);
        }
        if (!area || !valid_name(area) || !num || parse_figref(num, &x->num) < 0 || !op ||
            (strcmp(op, ">=") != 0 && strcmp(op, ">") != 0 && strcmp(op, "<=") != 0 &&
             strcmp(op, "<") != 0) ||
            !val || errno || end == val || *end != '\0' || *p == '\0' ||
            copy_str(x->text, sizeof(x->text), p) < 0) {
            set_err(err, errlen,
                    "%s:%u: expected AREA FIG:IMPL:KEY [/ FIG:IMPL:KEY] >=|>|<=|< VALUE TEXT "
                    "(FIG: ops, p50, p99, p999, fair; TEXT under %d bytes)",
                    name, lineno, DMCE_PERF_TEXT_MAX);
            rc = -EINVAL;
            break;
        }
        strcpy(x->area, area);
        strcpy(x->op, op);
        t->n++;
    }
    free(line);
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s: read error", name);
        rc = -EIO;
    }
    return rc;
}

static const dmce_perf_stat_t *fig_stat(const dmce_perf_result_t *r, dmce_perf_fig_t fig)
{
    switch (fig) {
    case DMCE_PERF_FIG_OPS: return &r->ops_per_s;
    case DMCE_PERF_FIG_P50: return &r->p50_us;
    case DMCE_PERF_FIG_P99: return &r->p99_us;
    case DMCE_PERF_FIG_P999: return &r->p999_us;
    case DMCE_PERF_FIG_FAIR: return &r->fair_min;
    }
    return &r->ops_per_s;
}

/* The figure a ref names in area: 1 and *v, or 0 when not measured. */
static int figref_value(const dmce_perf_run_t *run, const char *area, const dmce_perf_figref_t *ref,
                        double *v)
{
    const dmce_perf_result_t *r = find_result(run, area, ref->impl, ref->key);
    if (!r)
        return 0;
    const dmce_perf_stat_t *s = fig_stat(r, ref->fig);
    if (!s->present || !isfinite(s->median))
        return 0;
    *v = s->median;
    return 1;
}

dmce_perf_verdict_t dmce_perf_target_eval(const dmce_perf_run_t *run, const dmce_perf_target_t *t,
                                          double *value)
{
    double v, d;
    if (!figref_value(run, t->area, &t->num, &v))
        return DMCE_PERF_TARGET_NOT_MEASURED;
    if (t->has_den) {
        if (!figref_value(run, t->area, &t->den, &d) || !(d > 0))
            return DMCE_PERF_TARGET_NOT_MEASURED;
        v /= d;
    }
    if (value)
        *value = v;
    int ok = strcmp(t->op, ">=") == 0   ? v >= t->value
             : strcmp(t->op, ">") == 0  ? v > t->value
             : strcmp(t->op, "<=") == 0 ? v <= t->value
                                        : v < t->value;
    return ok ? DMCE_PERF_TARGET_MET : DMCE_PERF_TARGET_NOT_MET;
}

/* "dmce-ring get 64 B, 1 client: 1.60M/s" (or p99 3.2 us, or 0.93 of a fair share). */
static const char *figref_text(const dmce_perf_run_t *run, const char *area,
                               const dmce_perf_figref_t *ref, char *buf, size_t len)
{
    const dmce_perf_result_t *r = find_result(run, area, ref->impl, ref->key);
    char label[256], v[48];
    if (!r) {
        snprintf(buf, len, "%s %s: not measured", ref->impl, ref->key);
        return buf;
    }
    row_label(r, label, sizeof(label));
    const dmce_perf_stat_t *s = fig_stat(r, ref->fig);
    if (!s->present)
        snprintf(v, sizeof(v), "%s not measured", fig_names[ref->fig]);
    else if (ref->fig == DMCE_PERF_FIG_OPS) {
        char rate[32];
        snprintf(v, sizeof(v), "%s/s", fmt_rate(s, rate, sizeof(rate)));
    } else if (ref->fig == DMCE_PERF_FIG_FAIR)
        snprintf(v, sizeof(v), "slowest client %.2f of a fair share", s->median);
    else {
        char u[32];
        snprintf(v, sizeof(v), "%s %s us", fig_names[ref->fig], fmt_us_v(s->median, u, sizeof(u)));
    }
    /* The line probe (perf/bench.c) the result was taken at: which state the machine was in. */
    const char *probe = strstr(r->note, "CPU line ");
    if (probe)
        snprintf(buf, len, "%s [%s]: %s (%.*s)", label, ref->impl, v, (int)strcspn(probe, ";|"),
                 probe);
    else
        snprintf(buf, len, "%s [%s]: %s", label, ref->impl, v);
    return buf;
}

static const char *num_text(double v, char *buf, size_t len)
{
    snprintf(buf, len, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : v >= 0.1 ? "%.2f" : "%.3f", v);
    return buf;
}

/* Some result of the run is in area (targets of areas not run are left out). */
static int run_has_area(const dmce_perf_run_t *run, const char *area)
{
    for (size_t i = 0; i < run->nresults; i++)
        if (strcmp(run->results[i].area, area) == 0)
            return 1;
    return 0;
}

int dmce_perf_render_targets(const dmce_perf_run_t *run, const dmce_perf_targets_t *t,
                             const char *area, FILE *f, unsigned *met, unsigned *not_met)
{
    int n = 0;
    unsigned ok = 0, bad = 0;
    for (unsigned i = 0; t && i < t->n; i++) {
        const dmce_perf_target_t *x = &t->t[i];
        if ((area && strcmp(x->area, area) != 0) || !run_has_area(run, x->area))
            continue;
        if (n == 0)
            fprintf(f, "| target | measured | needed | result |\n|---|---|---|---|\n");
        double v = 0;
        dmce_perf_verdict_t verdict = dmce_perf_target_eval(run, x, &v);
        char a[400], b[400], q[32], need[32], text[DMCE_PERF_TEXT_MAX];
        const char *unit = x->has_den                         ? "x"
                           : x->num.fig == DMCE_PERF_FIG_OPS  ? "/s"
                           : x->num.fig == DMCE_PERF_FIG_FAIR ? ""
                                                              : " us";
        fprintf(f, "| %s | ", cell_text(x->text, text, sizeof(text)));
        if (verdict == DMCE_PERF_TARGET_NOT_MEASURED)
            fprintf(f, "-");
        else
            fprintf(f, "**%s%s**", num_text(v, q, sizeof(q)), unit);
        fprintf(f, " = %s", figref_text(run, x->area, &x->num, a, sizeof(a)));
        if (x->has_den)
            fprintf(f, " / %s", figref_text(run, x->area, &x->den, b, sizeof(b)));
        fprintf(f, " | %s %s%s | %s |\n", x->op, num_text(x->value, need, sizeof(need)), unit,
                verdict == DMCE_PERF_TARGET_MET       ? "met"
                : verdict == DMCE_PERF_TARGET_NOT_MET ? "**NOT met**"
                                                      : "not measured");
        ok += verdict == DMCE_PERF_TARGET_MET;
        bad += verdict != DMCE_PERF_TARGET_MET;
        n++;
    }
    if (met)
        *met = ok;
    if (not_met)
        *not_met = bad;
    return n;
}

/* Areas of a run in display order (pointers into run->results). */
static size_t run_areas(const dmce_perf_run_t *run, const char **areas, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < run->nresults; i++) {
        size_t j;
        for (j = 0; j < n; j++)
            if (strcmp(areas[j], run->results[i].area) == 0)
                break;
        if (j == n && n < max)
            areas[n++] = run->results[i].area;
    }
    /* Stable insertion sort by rank. */
    for (size_t i = 1; i < n; i++) {
        const char *v = areas[i];
        size_t j = i;
        while (j > 0 && area_rank(areas[j - 1]) > area_rank(v)) {
            areas[j] = areas[j - 1];
            j--;
        }
        areas[j] = v;
    }
    return n;
}

int dmce_perf_render_md(const dmce_perf_run_t *run, const char *const *plots, size_t nplots,
                        FILE *f)
{
    return dmce_perf_render_md_targets(run, plots, nplots, NULL, f);
}

int dmce_perf_render_md_targets(const dmce_perf_run_t *run, const char *const *plots, size_t nplots,
                                const dmce_perf_targets_t *targets, FILE *f)
{
    char mem[32];
    fprintf(f, "# dmce perf report\n\n");
    fprintf(f, "Mode **%s**, commit `%s`, %s. Machine: %s, %u CPUs, %s, %s, %u NUMA node%s.",
            run->mode, run->commit, run->date, run->cpu_model, run->nproc,
            fmt_bytes((double)(run->memory_bytes >> 20 << 20), mem, sizeof(mem)), run->kernel,
            run->numa_nodes, run->numa_nodes == 1 ? "" : "s");
    if (run->seconds > 0)
        fprintf(f, " The run took %.0f s.", run->seconds);
    fprintf(f, "\n\n");
    if (run->npeers) {
        fprintf(f, "Peers:");
        for (unsigned i = 0; i < run->npeers; i++)
            fprintf(f, "%s %s %s", i ? "," : "", run->peers[i].name,
                    run->peers[i].found ? run->peers[i].version : "NOT FOUND");
        fprintf(f, ".\n\n");
    }
    if (run->nfailures) {
        fprintf(f, "**Benchmarks that gave no result:**");
        for (unsigned i = 0; i < run->nfailures; i++)
            fprintf(f, "%s `%s`", i ? "," : "", run->failures[i]);
        fprintf(f, "\n\n");
    }
    fprintf(f, "Figures are medians over the repetitions (spread in the detail tables). A cell "
               "reads \"ops/s, p50 latency\"; **dmce/X** is dmce's ops/s divided by X's, "
               "measured in this run (above 1: dmce does more per second). \"-\": not "
               "measured. Compare ratios, not absolute figures, across machines.\n");

    const char *areas[64];
    size_t nareas = run_areas(run, areas, ARRAY_LEN(areas));
    if (targets && targets->n) {
        unsigned count[3] = {0, 0, 0};
        for (unsigned i = 0; i < targets->n; i++)
            if (run_has_area(run, targets->t[i].area))
                count[dmce_perf_target_eval(run, &targets->t[i], NULL)]++;
        if (count[0] + count[1] + count[2])
            fprintf(f,
                    "\n**Targets: %u met, %u not met, %u not measured** (the table at the head "
                    "of each area says which; they are reported here, not checked by the exit "
                    "status).\n",
                    count[DMCE_PERF_TARGET_MET], count[DMCE_PERF_TARGET_NOT_MET],
                    count[DMCE_PERF_TARGET_NOT_MEASURED]);
    }
    for (size_t a = 0; a < nareas; a++) {
        fprintf(f, "\n## %s\n\n", areas[a]);
        if (dmce_perf_render_targets(run, targets, areas[a], f, NULL, NULL) > 0)
            fprintf(f, "\n");
        if (dmce_perf_render_ratio_table(run, areas[a], f) > 0)
            fprintf(f, "\n");
        if (dmce_perf_render_bw_table(run, areas[a], f) > 0)
            fprintf(f, "\n");
        if (dmce_perf_render_clients_table(run, areas[a], f) > 0)
            fprintf(f, "\n");
        dmce_perf_render_detail_table(run, areas[a], f);
    }
    if (nplots) {
        fprintf(f, "\n## plots\n\n");
        for (size_t i = 0; i < nplots; i++)
            fprintf(f, "![%s](%s)\n", plots[i], plots[i]);
    }
    return ferror(f) ? -EIO : 0;
}

/* ======================================================================
 * Compare
 * ====================================================================== */

static const char *fmt_change(const dmce_perf_stat_t *a, const dmce_perf_stat_t *b, char *buf,
                              size_t len)
{
    if (!a->present || !b->present || !(a->median > 0))
        return "-";
    snprintf(buf, len, "%+.1f%%", (b->median - a->median) / a->median * 100.0);
    return buf;
}

static const dmce_perf_result_t *find_same(const dmce_perf_run_t *run, const dmce_perf_result_t *r)
{
    char key[DMCE_PERF_TEXT_MAX * 2];
    if (dmce_perf_result_key(r, key, sizeof(key)) < 0)
        return NULL;
    return find_result(run, r->area, r->impl, key);
}

int dmce_perf_compare(const dmce_perf_run_t *a, const dmce_perf_run_t *b, FILE *f)
{
    fprintf(f, "before: %s, commit %s, %s, %s, %u CPUs\n", a->date, a->commit, a->mode,
            a->cpu_model, a->nproc);
    fprintf(f, "after:  %s, commit %s, %s, %s, %u CPUs\n", b->date, b->commit, b->mode,
            b->cpu_model, b->nproc);
    if (strcmp(a->cpu_model, b->cpu_model) != 0 || a->nproc != b->nproc)
        fprintf(f, "WARNING: different machines; the changes below mean little\n");
    fprintf(f, "\nops/s: + is faster; p50: + is slower.\n\n");
    fprintf(f, "| area | benchmark | impl | ops/s before | ops/s after | change | p50 us before "
               "| p50 us after | change |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    int matched = 0;
    for (size_t i = 0; i < a->nresults; i++) {
        const dmce_perf_result_t *ra = &a->results[i], *rb = find_same(b, ra);
        if (!rb)
            continue;
        char label[256], x[32], y[32], z[32], u[32], v[32], w[32];
        row_label(ra, label, sizeof(label));
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", ra->area, label, ra->impl,
                fmt_rate(&ra->ops_per_s, x, sizeof(x)), fmt_rate(&rb->ops_per_s, y, sizeof(y)),
                fmt_change(&ra->ops_per_s, &rb->ops_per_s, z, sizeof(z)),
                fmt_us(&ra->p50_us, u, sizeof(u)), fmt_us(&rb->p50_us, v, sizeof(v)),
                fmt_change(&ra->p50_us, &rb->p50_us, w, sizeof(w)));
        matched++;
    }
    for (int pass = 0; pass < 2; pass++) {
        const dmce_perf_run_t *from = pass ? b : a, *other = pass ? a : b;
        int header = 0;
        for (size_t i = 0; i < from->nresults; i++) {
            const dmce_perf_result_t *r = &from->results[i];
            if (find_same(other, r))
                continue;
            if (!header) {
                fprintf(f, "\nonly %s:\n", pass ? "after" : "before");
                header = 1;
            }
            char label[256];
            row_label(r, label, sizeof(label));
            fprintf(f, "- %s: %s (%s)\n", r->area, label, r->impl);
        }
    }
    return matched;
}

/* ======================================================================
 * Plots
 * ====================================================================== */

/* Name part for a file: [A-Za-z0-9_-], others become '_'. */
static void file_part(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (; *s && n + 1 < len; s++)
        buf[n++] = (isalnum((unsigned char)*s) || *s == '-' || *s == '_') ? *s : '_';
    buf[n] = '\0';
}

/* A title gnuplot takes inside single quotes. */
static void gp_title(const dmce_perf_result_t *r, const char *skip, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "%s", r->impl);
    for (unsigned i = 0; i < r->nparams && n < len; i++) {
        if (skip && strcmp(r->params[i].key, skip) == 0)
            continue;
        char v[64];
        param_value(&r->params[i], v, sizeof(v));
        n += (size_t)snprintf(buf + n, len - n, " %s=%s", r->params[i].key, v);
    }
    for (char *p = buf; *p; p++)
        if (*p == '\'' || *p == '\\')
            *p = '"';
}

static int add_name(char **names, size_t max, size_t *n, const char *name)
{
    if (*n >= max)
        return -ENOSPC;
    names[*n] = strdup(name);
    if (!names[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

#define PLOT_MAX_LINES 12

/* The area has dmce results (then its latency plots compare impls size by size). */
static int area_has_subject(const dmce_perf_run_t *run, const char *area)
{
    for (size_t i = 0; i < run->nresults; i++)
        if (strcmp(run->results[i].area, area) == 0 && is_subject(run->results[i].impl))
            return 1;
    return 0;
}

/* Same latency plot: same area and bench, and the same size when split by size. */
static int same_lat_plot(const dmce_perf_result_t *a, const dmce_perf_result_t *b, int by_size)
{
    if (strcmp(a->area, b->area) || strcmp(a->bench, b->bench))
        return 0;
    if (!by_size)
        return 1;
    const dmce_perf_param_t *sa = dmce_perf_param_get(a, "size");
    const dmce_perf_param_t *sb = dmce_perf_param_get(b, "size");
    if (!sa || !sb)
        return !sa && !sb;
    return sa->is_num && sb->is_num && sa->num == sb->num;
}

static int plot_latency(const dmce_perf_run_t *run, const char *dir, FILE *gp, char **names,
                        size_t max, size_t *nnames)
{
    /*
     * One plot per (area, bench); in areas with dmce results one per (area,
     * bench, size), so that each compares dmce with its peers at one size.
     * Lines: results with a curve, one client (or no clients param) first.
     */
    for (size_t i = 0; i < run->nresults; i++) {
        const dmce_perf_result_t *r0 = &run->results[i];
        const int by_size = area_has_subject(run, r0->area);
        size_t j;
        for (j = 0; j < i; j++)
            if (same_lat_plot(&run->results[j], r0, by_size))
                break;
        if (j < i)
            continue; /* done with the first of its plot */
        const dmce_perf_result_t *m[PLOT_MAX_LINES];
        size_t nm = 0;
        for (int pass = 0; pass < 2 && nm == 0; pass++) {
            for (size_t k = i; k < run->nresults && nm < PLOT_MAX_LINES; k++) {
                const dmce_perf_result_t *r = &run->results[k];
                if (!same_lat_plot(r, r0, by_size) || r->ncurve < 2)
                    continue;
                const dmce_perf_param_t *c = dmce_perf_param_get(r, "clients");
                if (pass == 0 && c && c->is_num && c->num != 1)
                    continue;
                m[nm++] = r;
            }
        }
        if (nm == 0)
            continue;
        char a[DMCE_PERF_NAME_MAX], b[DMCE_PERF_NAME_MAX], base[200], path[4096], sz[40] = "";
        file_part(r0->area, a, sizeof(a));
        file_part(r0->bench, b, sizeof(b));
        const dmce_perf_param_t *size = dmce_perf_param_get(r0, "size");
        if (by_size && size && size->is_num)
            snprintf(sz, sizeof(sz), "-%.0f", size->num);
        snprintf(base, sizeof(base), "lat-%s-%s%s", a, b, sz);
        snprintf(path, sizeof(path), "%s/%s.dat", dir, base);
        FILE *d = fopen(path, "w");
        if (!d)
            return -errno;
        for (size_t k = 0; k < nm; k++) {
            char t[256];
            gp_title(m[k], by_size ? "size" : NULL, t, sizeof(t));
            fprintf(d, "# %s\n", t);
            for (unsigned p = 0; p < m[k]->ncurve; p++) {
                double pct = m[k]->curve_pct[p];
                if (pct >= 100.0)
                    continue; /* 1/(1-p) is infinite */
                fprintf(d, "%.6g %.10g %.6g\n", pct, 100.0 / (100.0 - pct), m[k]->curve_us[p]);
            }
            fprintf(d, "\n\n");
        }
        if (fclose(d) != 0)
            return -EIO;
        char title_size[64] = "";
        if (sz[0]) {
            char hb[40];
            snprintf(title_size, sizeof(title_size), " %s", fmt_bytes(size->num, hb, sizeof(hb)));
        }
        fprintf(gp,
                "\nset output '%s.png'\nset title '%s %s%s: latency by percentile'\n"
                "unset logscale\nset logscale xy\nset xlabel 'percentile'\n"
                "set ylabel 'latency (us)'\n"
                "set xtics ('0' 1, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000, "
                "'99.999' 100000)\nset format y '%%g'\nplot",
                base, r0->area, r0->bench, title_size);
        for (size_t k = 0; k < nm; k++) {
            char t[256];
            gp_title(m[k], by_size ? "size" : NULL, t, sizeof(t));
            fprintf(gp, "%s '%s.dat' index %zu using 2:3 with linespoints title '%s'",
                    k ? ", \\\n    " : " ", base, k, t);
        }
        fprintf(gp, "\nset xtics auto\n");
        char png[220];
        snprintf(png, sizeof(png), "%s.png", base);
        int rc = add_name(names, max, nnames, png);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Series key: area, bench, impl and every param but xparam. */
static int same_series(const dmce_perf_result_t *a, const dmce_perf_result_t *b, const char *xparam)
{
    if (strcmp(a->area, b->area) || strcmp(a->bench, b->bench) || strcmp(a->impl, b->impl))
        return 0;
    for (int pass = 0; pass < 2; pass++) {
        const dmce_perf_result_t *x = pass ? b : a, *y = pass ? a : b;
        for (unsigned i = 0; i < x->nparams; i++) {
            if (strcmp(x->params[i].key, xparam) == 0)
                continue;
            const dmce_perf_param_t *q = dmce_perf_param_get(y, x->params[i].key);
            if (!q || q->is_num != x->params[i].is_num ||
                (q->is_num ? q->num != x->params[i].num : strcmp(q->str, x->params[i].str) != 0))
                return 0;
        }
    }
    return 1;
}

/* Sort points by their xparam value (insertion sort: a handful of points). */
static void sort_by_x(const dmce_perf_result_t **pts, size_t n, const char *xparam)
{
    for (size_t i = 1; i < n; i++) {
        const dmce_perf_result_t *v = pts[i];
        double x = dmce_perf_param_get(v, xparam)->num;
        size_t j = i;
        while (j > 0 && dmce_perf_param_get(pts[j - 1], xparam)->num > x) {
            pts[j] = pts[j - 1];
            j--;
        }
        pts[j] = v;
    }
}

static int plot_scaling(const dmce_perf_run_t *run, const char *dir, FILE *gp, const char *xparam,
                        char **names, size_t max, size_t *nnames)
{
    size_t n = run->nresults;
    const dmce_perf_result_t **pts = calloc(n ? n : 1, sizeof(*pts));
    unsigned char *used = calloc(n ? n : 1, 1); /* already in a series */
    int rc = 0;
    if (!pts || !used) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const dmce_perf_result_t *r0 = &run->results[i];
        const dmce_perf_param_t *x0 = dmce_perf_param_get(r0, xparam);
        if (used[i] || !x0 || !x0->is_num)
            continue;
        /* r0 is the first unused result of its (area, bench): one plot for the group. */
        size_t j;
        for (j = 0; j < i; j++)
            if (strcmp(run->results[j].area, r0->area) == 0 &&
                strcmp(run->results[j].bench, r0->bench) == 0 &&
                dmce_perf_param_get(&run->results[j], xparam))
                break;
        if (j < i)
            continue;
        char a[DMCE_PERF_NAME_MAX], b[DMCE_PERF_NAME_MAX], x[DMCE_PERF_NAME_MAX], base[200],
            path[4096];
        file_part(r0->area, a, sizeof(a));
        file_part(r0->bench, b, sizeof(b));
        file_part(xparam, x, sizeof(x));
        snprintf(base, sizeof(base), "scale-%s-%s-%s", a, b, x);
        FILE *d = NULL;
        unsigned nseries = 0;
        int use_gb = 1;
        char titles[PLOT_MAX_LINES][256];
        /* Every series of the group: same impl and params but xparam, >= 3 points. */
        for (size_t k = i; k < n; k++) {
            const dmce_perf_result_t *s = &run->results[k];
            const dmce_perf_param_t *xs = dmce_perf_param_get(s, xparam);
            if (used[k] || !xs || !xs->is_num || strcmp(s->area, r0->area) ||
                strcmp(s->bench, r0->bench))
                continue;
            size_t np = 0;
            for (size_t q = k; q < n; q++) {
                const dmce_perf_param_t *xq = dmce_perf_param_get(&run->results[q], xparam);
                if (!used[q] && xq && xq->is_num && same_series(s, &run->results[q], xparam) &&
                    run->results[q].ops_per_s.present) {
                    used[q] = 1;
                    pts[np++] = &run->results[q];
                }
            }
            if (np < 3 || nseries >= PLOT_MAX_LINES)
                continue;
            sort_by_x(pts, np, xparam);
            if (!d) {
                snprintf(path, sizeof(path), "%s/%s.dat", dir, base);
                if (!(d = fopen(path, "w"))) {
                    rc = -errno;
                    goto out;
                }
            }
            gp_title(s, xparam, titles[nseries], sizeof(titles[0]));
            fprintf(d, "# %s\n", titles[nseries]);
            for (size_t q = 0; q < np; q++) {
                use_gb &= pts[q]->gb_per_s.present;
                fprintf(d, "%.10g %.10g %.10g\n", dmce_perf_param_get(pts[q], xparam)->num,
                        pts[q]->ops_per_s.median,
                        pts[q]->gb_per_s.present ? pts[q]->gb_per_s.median : 0.0);
            }
            fprintf(d, "\n\n");
            nseries++;
        }
        if (!d)
            continue;
        if (fclose(d) != 0) {
            rc = -EIO;
            goto out;
        }
        /* Size sweeps: bandwidth when every point has it; client sweeps: ops/s. */
        int is_size = strcmp(xparam, "size") == 0;
        int gb = use_gb && is_size;
        fprintf(gp,
                "\nset output '%s.png'\nset title '%s %s: %s by %s'\n"
                "unset logscale\nset logscale x 2\nset logscale y\n"
                "set xlabel '%s'\nset ylabel '%s'\nset format y '%%g'\nset format x '%s'\n"
                "plot",
                base, r0->area, r0->bench, gb ? "GB/s" : "ops/s", xparam,
                is_size ? "bytes" : xparam, gb ? "GB/s" : "ops/s", is_size ? "%.0b%BB" : "%g");
        for (unsigned s = 0; s < nseries; s++)
            fprintf(gp, "%s '%s.dat' index %u using 1:%d with linespoints title '%s'",
                    s ? ", \\\n    " : " ", base, s, gb ? 3 : 2, titles[s]);
        fprintf(gp, "\nset format x '%%g'\n");
        char png[220];
        snprintf(png, sizeof(png), "%s.png", base);
        if ((rc = add_name(names, max, nnames, png)) < 0)
            goto out;
    }
out:
    free(pts);
    free(used);
    return rc;
}

int dmce_perf_plot(const dmce_perf_run_t *run, const char *dir, char **names, size_t max)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/plots.gp", dir);
    FILE *gp = fopen(path, "w");
    if (!gp)
        return -errno;
    fprintf(gp, "# written by dmce-perf-report; run in this directory: gnuplot plots.gp\n"
                "set terminal pngcairo size 1000,600 noenhanced\nset key outside right\n"
                "set grid\n");
    size_t n = 0;
    int rc = plot_latency(run, dir, gp, names, max, &n);
    if (rc == 0)
        rc = plot_scaling(run, dir, gp, "clients", names, max, &n);
    if (rc == 0)
        rc = plot_scaling(run, dir, gp, "size", names, max, &n);
    if (fclose(gp) != 0 && rc == 0)
        rc = -EIO;
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        return rc;
    }
    return (int)n;
}

/* ======================================================================
 * redis-benchmark CSV
 * ====================================================================== */

/* Split one CSV line (fields optionally in double quotes) in place. */
static size_t csv_split(char *line, char **fields, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            start = out = p;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++; /* "" -> " */
                *out++ = *p++;
            }
            if (*p == '"')
                p++;
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r')
                *out++ = *p++;
        }
        char *next = p;
        while (*next && *next != ',' && *next != '\n')
            next++;
        int more = *next == ',';
        *out = '\0';
        fields[n++] = start;
        if (!more)
            break;
        p = next + 1;
    }
    return n;
}

int dmce_perf_import_redis_csv(FILE *const *files, size_t nfiles, const char *test, uint64_t ops,
                               dmce_perf_result_t *r, char *err, size_t errlen)
{
    if (nfiles == 0 || nfiles > DMCE_PERF_MAX_REPS) {
        set_err(err, errlen, "redis-benchmark: 1..%d files expected", DMCE_PERF_MAX_REPS);
        return -EINVAL;
    }
    double rps[DMCE_PERF_MAX_REPS], p50[DMCE_PERF_MAX_REPS], p99[DMCE_PERF_MAX_REPS];
    for (size_t i = 0; i < nfiles; i++) {
        char hbuf[1024], line[1024];
        char *header[16], *fields[16];
        size_t nh = 0;
        int found = 0;
        rps[i] = p50[i] = p99[i] = NAN;
        while (!found && fgets(line, sizeof(line), files[i])) {
            char copy[sizeof(line)];
            memcpy(copy, line, sizeof(copy));
            size_t nf = csv_split(line, fields, ARRAY_LEN(fields));
            if (strcmp(fields[0], "test") == 0) { /* the header names the columns */
                memcpy(hbuf, copy, sizeof(hbuf));
                nh = csv_split(hbuf, header, ARRAY_LEN(header));
                continue;
            }
            if (nh == 0 || strcmp(fields[0], test) != 0)
                continue;
            for (size_t k = 1; k < nh && k < nf; k++) {
                char *end;
                double v = strtod(fields[k], &end);
                if (end == fields[k])
                    continue;
                if (strcmp(header[k], "rps") == 0)
                    rps[i] = v;
                else if (strcmp(header[k], "p50_latency_ms") == 0)
                    p50[i] = v * 1000.0;
                else if (strcmp(header[k], "p99_latency_ms") == 0)
                    p99[i] = v * 1000.0;
            }
            found = 1;
        }
        if (!found || !isfinite(rps[i])) {
            set_err(err, errlen, "redis-benchmark file %zu: no \"%s\" row with an rps column",
                    i + 1, test);
            return -EINVAL;
        }
        r->samples[i] = ops;
    }
    r->reps = (unsigned)nfiles;
    dmce_perf_stat_from(&r->ops_per_s, rps, nfiles);
    dmce_perf_stat_from(&r->p50_us, p50, nfiles);
    dmce_perf_stat_from(&r->p99_us, p99, nfiles);
    memset(&r->p999_us, 0, sizeof(r->p999_us));
    memset(&r->gb_per_s, 0, sizeof(r->gb_per_s));
    if (r->bytes_per_op > 0) {
        double gb[DMCE_PERF_MAX_REPS];
        for (size_t i = 0; i < nfiles; i++)
            gb[i] = rps[i] * r->bytes_per_op / 1e9;
        dmce_perf_stat_from(&r->gb_per_s, gb, nfiles);
    }
    return 0;
}
