/*
 * config.c - see config.h. Settings are applied in order: defaults, then
 * the --config file, then flags, so a flag always wins over the file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include "util.h"

static void errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t len, const char *fmt, ...)
{
    if (!err || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

static int name_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; i < blen && a[i]; i++) {
        char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];
        if (x != y)
            return 0;
    }
    return i == blen && a[i] == 0;
}

static const dmce_config_def_t *find(const dmce_config_def_t *defs, size_t n, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (name_eq(defs[i].name, name, len))
            return &defs[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(v, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int set_def(const dmce_config_def_t *d, void *cfg, const char *v, char *err, size_t errlen)
{
    char *field = (char *)cfg + d->offset;
    int r;
    switch (d->type) {
    case DMCE_CFG_INT: {
        int64_t x;
        r = dmce_parse_i64(v, &x);
        if (r < 0 || x < d->min || x > d->max) {
            errf(err, errlen, "%s: '%s' is not an integer in [%lld, %lld]", d->name, v,
                 (long long)d->min, (long long)d->max);
            return r < 0 ? r : -ERANGE;
        }
        memcpy(field, &x, sizeof(x));
        return 0;
    }
    case DMCE_CFG_SIZE: {
        uint64_t x;
        r = dmce_parse_size(v, &x);
        if (r < 0 || x < (uint64_t)d->min || (d->max && x > (uint64_t)d->max)) {
            char lo[32], hi[32];
            errf(err, errlen, "%s: '%s' is not a size in [%s, %s] (suffix K, M, G, T)", d->name,
                 v, dmce_fmt_size((uint64_t)d->min, lo, sizeof(lo)),
                 d->max ? dmce_fmt_size((uint64_t)d->max, hi, sizeof(hi)) : "any");
            return r < 0 ? r : -ERANGE;
        }
        memcpy(field, &x, sizeof(x));
        return 0;
    }
    case DMCE_CFG_STRING:
        if (strlen(v) >= DMCE_CFG_STRMAX) {
            errf(err, errlen, "%s: value longer than %d characters", d->name, DMCE_CFG_STRMAX - 1);
            return -ERANGE;
        }
        strcpy(field, v);
        return 0;
    case DMCE_CFG_BOOL: {
        int b;
        if (parse_bool(v, &b) < 0) {
            errf(err, errlen, "%s: '%s' is not yes/no", d->name, v);
            return -EINVAL;
        }
        memcpy(field, &b, sizeof(b));
        return 0;
    }
    case DMCE_CFG_ENUM:
        for (int i = 0; d->enum_names[i]; i++) {
            if (!strcasecmp(v, d->enum_names[i])) {
                memcpy(field, &i, sizeof(i));
                return 0;
            }
        }
        errf(err, errlen, "%s: '%s' is not one of the allowed values", d->name, v);
        return -EINVAL;
    }
    return -EINVAL;
}

int dmce_config_defaults(const dmce_config_def_t *defs, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        int r = set_def(&defs[i], cfg, defs[i].def, NULL, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

int dmce_config_set(const dmce_config_def_t *defs, size_t n, void *cfg, const char *name,
                    const char *value, char *err, size_t errlen)
{
    const dmce_config_def_t *d = find(defs, n, name, strlen(name));
    if (!d) {
        errf(err, errlen, "unknown setting '%s'", name);
        return -ENOENT;
    }
    return set_def(d, cfg, value, err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

#define CONFIG_LINE_MAX 4096 /* characters in a config file line */

/*
 * One whole line (without its '\n') into buf: 1, or 0 at the end of the
 * file, -E2BIG for a line longer than cap - 1 characters, -EINVAL for a
 * NUL byte. A line is never split: fgets into a fixed buffer would parse
 * the tail of a long line (say, of a comment) as a line of its own.
 */
static int read_line(FILE *f, char *buf, size_t cap)
{
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (c == 0)
            return -EINVAL;
        if (n + 1 >= cap)
            return -E2BIG;
        buf[n++] = (char)c;
    }
    buf[n] = 0;
    return c == EOF && n == 0 ? 0 : 1;
}

int dmce_config_load_file(const dmce_config_def_t *defs, size_t n, void *cfg, const char *path,
                          char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int r = -errno;
        errf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return r;
    }
    char line[CONFIG_LINE_MAX + 1];
    int lineno = 0, r = 0, got;
    while ((got = read_line(f, line, sizeof(line))) != 0) {
        lineno++;
        if (got == -E2BIG)
            errf(err, errlen, "%s:%d: line longer than %d characters", path, lineno,
                 CONFIG_LINE_MAX);
        else if (got < 0)
            errf(err, errlen, "%s:%d: NUL byte in a text file", path, lineno);
        if (got < 0) {
            r = -EINVAL;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = trim(line);
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            errf(err, errlen, "%s:%d: expected 'name = value'", path, lineno);
            r = -EINVAL;
            break;
        }
        *eq = 0;
        char *name = trim(s), *value = trim(eq + 1);
        char sub[256];
        r = dmce_config_set(defs, n, cfg, name, value, sub, sizeof(sub));
        if (r < 0) {
            errf(err, errlen, "%s:%d: %s", path, lineno, sub);
            break;
        }
    }
    fclose(f);
    return r;
}

int dmce_config_parse_args(const dmce_config_def_t *defs, size_t n, void *cfg, int argc,
                           char **argv, char *err, size_t errlen)
{
    int ret = 0;
    /* First pass: --help, --dump-config and the config file. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (!strcmp(argv[i], "--dump-config"))
            ret = 2;
        const char *file = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            file = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            file = argv[i] + 9;
        if (file) {
            int r = dmce_config_load_file(defs, n, cfg, file, err, errlen);
            if (r < 0)
                return r;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dump-config"))
            continue;
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) != 0) {
            errf(err, errlen, "unexpected argument '%s' (settings are --name=value)", a);
            return -EINVAL;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const dmce_config_def_t *d = find(defs, n, a, nlen);
        if (!d) {
            errf(err, errlen, "unknown flag '--%.*s' (see --help)", (int)nlen, a);
            return -ENOENT;
        }
        const char *v;
        if (eq)
            v = eq + 1;
        else if (d->type == DMCE_CFG_BOOL)
            v = "yes";
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            errf(err, errlen, "flag '--%s' needs a value", d->name);
            return -EINVAL;
        }
        int r = set_def(d, cfg, v, err, errlen);
        if (r < 0)
            return r;
    }
    return ret;
}

static void value_text(const dmce_config_def_t *d, const void *cfg, char *buf, size_t len)
{
    const char *field = (const char *)cfg + d->offset;
    int64_t i;
    uint64_t u;
    int b;
    switch (d->type) {
    case DMCE_CFG_INT:
        memcpy(&i, field, sizeof(i));
        snprintf(buf, len, "%lld", (long long)i);
        break;
    case DMCE_CFG_SIZE:
        memcpy(&u, field, sizeof(u));
        snprintf(buf, len, "%llu", (unsigned long long)u);
        break;
    case DMCE_CFG_STRING:
        snprintf(buf, len, "%s", field);
        break;
    case DMCE_CFG_BOOL:
        memcpy(&b, field, sizeof(b));
        snprintf(buf, len, "%s", b ? "yes" : "no");
        break;
    case DMCE_CFG_ENUM:
        memcpy(&b, field, sizeof(b));
        snprintf(buf, len, "%s", d->enum_names[b]);
        break;
    }
}

void dmce_config_dump(const dmce_config_def_t *defs, size_t n, const void *cfg, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        char v[DMCE_CFG_STRMAX + 32];
        value_text(&defs[i], cfg, v, sizeof(v));
        fprintf(out, "%s = %s\n", defs[i].name, v);
    }
}

void dmce_config_usage(const dmce_config_def_t *defs, size_t n, const char *prog,
                       const char *summary, FILE *out)
{
    fprintf(out, "usage: %s [--config FILE] [--dump-config] [--name=value ...]\n\n%s\n\n", prog,
            summary);
    for (size_t i = 0; i < n; i++) {
        const dmce_config_def_t *d = &defs[i];
        fprintf(out, "  --%-18s %s (default: %s", d->name, d->help, *d->def ? d->def : "\"\"");
        if (d->type == DMCE_CFG_INT)
            fprintf(out, "; %lld..%lld", (long long)d->min, (long long)d->max);
        if (d->type == DMCE_CFG_ENUM) {
            fprintf(out, "; one of");
            for (int k = 0; d->enum_names[k]; k++)
                fprintf(out, " %s", d->enum_names[k]);
        }
        fprintf(out, ")\n");
    }
}
