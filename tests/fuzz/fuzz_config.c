/*
 * fuzz_config.c - fuzz target for the config parser (runtime/config.h):
 * arbitrary bytes as a config file and as a command line.
 *
 * Input: FILE-TEXT [ \0 ARG1 \0 ARG2 ... ]. The bytes before the first NUL
 * are a config file (written to a memfd and loaded through
 * /proc/self/fd/N, the path dmce_config_load_file opens); the rest, split
 * on NUL bytes, is argv[1..] for dmce_config_parse_args. The value of any
 * --config flag is replaced by the memfd's path, so the input cannot make
 * the parser read a real file (or block on /dev/stdin).
 *
 * The config table has the shape of dmce_memd_config_defs (int, size,
 * string, bool and enum rows, with bounds), copied here so that this
 * target links the parser only.
 *
 * Checks:
 *   - nothing crashes; every error has a non-empty message; results are
 *     0 or a negative error (parse_args: also 1 for --help, 2 for
 *     --dump-config);
 *   - after every call, accepted or not, every setting is within its
 *     row's bounds (int and size ranges, string terminated, bool 0/1,
 *     enum index valid): a rejected value never lands;
 *   - the file is also parsed by a reference reader written from
 *     config.h's grammar (lines, '#' comments, "name = value", trimmed,
 *     lines of at most 4096 characters): both accept the same files, fail
 *     on the same line, and leave the same settings.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"

typedef struct fcfg {
    int64_t id;
    char runtime_dir[DMCE_CFG_STRMAX];
    uint64_t block_size;
    int64_t blocks;
    int64_t numa_node;
    uint64_t granule;
    uint64_t max_payload;
    int layout;
    int prefault;
    char socket[DMCE_CFG_STRMAX];
    int log_level;
    int64_t grace_ms;
    uint64_t cache_max;
} fcfg_t;

static const char *const layout_names[] = {"12-12-40", "16-16-32", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

#define OFF(f) offsetof(fcfg_t, f)
static const dmce_config_def_t defs[] = {
    {"id", DMCE_CFG_INT, OFF(id), "1", 1, 4095, NULL, "daemon ID"},
    {"runtime_dir", DMCE_CFG_STRING, OFF(runtime_dir), "", 0, 0, NULL, "runtime directory"},
    {"block_size", DMCE_CFG_SIZE, OFF(block_size), "64M", 1 << 20, 1ll << 40, NULL, "block"},
    {"blocks_initial", DMCE_CFG_INT, OFF(blocks), "1", 1, 4096, NULL, "blocks"},
    {"numa_node", DMCE_CFG_INT, OFF(numa_node), "-1", -1, 1023, NULL, "NUMA node"},
    {"granule", DMCE_CFG_SIZE, OFF(granule), "128", 64, 4096, NULL, "granule"},
    {"max_payload", DMCE_CFG_SIZE, OFF(max_payload), "1M", 4096, 16 << 20, NULL, "payload"},
    {"layout", DMCE_CFG_ENUM, OFF(layout), "12-12-40", 0, 0, layout_names, "layout"},
    {"prefault", DMCE_CFG_BOOL, OFF(prefault), "yes", 0, 0, NULL, "prefault"},
    {"socket", DMCE_CFG_STRING, OFF(socket), "", 0, 0, NULL, "socket path"},
    {"log_level", DMCE_CFG_ENUM, OFF(log_level), "info", 0, 0, level_names, "log level"},
    {"grace_ms", DMCE_CFG_INT, OFF(grace_ms), "30000", INT64_MIN, INT64_MAX, NULL, "full range"},
    {"cache_max", DMCE_CFG_SIZE, OFF(cache_max), "0", 0, 0, NULL, "size, no upper bound"},
};
#undef OFF
#define NDEFS (sizeof defs / sizeof defs[0])

/* Every setting within its row's bounds. */
static void check_bounds(const fcfg_t *c)
{
    for (size_t i = 0; i < NDEFS; i++) {
        const dmce_config_def_t *d = &defs[i];
        const char *f = (const char *)c + d->offset;
        int64_t iv;
        uint64_t uv;
        int b;
        switch (d->type) {
        case DMCE_CFG_INT:
            memcpy(&iv, f, sizeof iv);
            FZ_CHECK(iv >= d->min && iv <= d->max);
            break;
        case DMCE_CFG_SIZE:
            memcpy(&uv, f, sizeof uv);
            FZ_CHECK(uv >= (uint64_t)d->min && (d->max == 0 || uv <= (uint64_t)d->max));
            break;
        case DMCE_CFG_STRING: FZ_CHECK(memchr(f, 0, DMCE_CFG_STRMAX) != NULL); break;
        case DMCE_CFG_BOOL:
            memcpy(&b, f, sizeof b);
            FZ_CHECK(b == 0 || b == 1);
            break;
        case DMCE_CFG_ENUM: {
            memcpy(&b, f, sizeof b);
            int n = 0;
            while (d->enum_names[n])
                n++;
            FZ_CHECK(b >= 0 && b < n);
            break;
        }
        }
    }
}

static void fresh(fcfg_t *c)
{
    memset(c, 0, sizeof *c);
    FZ_CHECK_EQ(dmce_config_defaults(defs, NDEFS, c), 0);
    check_bounds(c);
}

/* ---- the file: one memfd, reused ----------------------------------------------------- */

static int memfd = -1;
static char memfd_path[64];

static void put_file(const uint8_t *p, size_t n)
{
    if (memfd < 0) {
        memfd = memfd_create("fuzz_config", MFD_CLOEXEC);
        FZ_CHECK(memfd >= 0);
        snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    }
    FZ_CHECK(ftruncate(memfd, 0) == 0);
    FZ_CHECK(pwrite(memfd, p, n, 0) == (ssize_t)n);
}

/* ---- reference reader ---------------------------------------------------------------- */

#define REF_LINE_MAX 4096

static int ref_space(char c)
{
    return isspace((unsigned char)c);
}

/*
 * config.h's file grammar, read without a line buffer: returns 0 when the
 * file is accepted (settings applied to c), else the 1-based number of the
 * line that fails (settings of the lines before it applied).
 */
static int ref_load(fcfg_t *c, const char *text, size_t n)
{
    char *line = malloc(n + 1), err[256];
    FZ_CHECK(line != NULL);
    int lineno = 0, bad = 0;
    for (size_t pos = 0; pos < n && !bad;) {
        const char *nl = memchr(text + pos, '\n', n - pos);
        size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
        memcpy(line, text + pos, len);
        line[len] = 0;
        pos += len + (nl ? 1 : 0);
        lineno++;
        if (len > REF_LINE_MAX) { /* config.c refuses longer lines rather than split them */
            bad = lineno;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *s = line, *e = line + strlen(line);
        while (*s && ref_space(*s))
            s++;
        while (e > s && ref_space(e[-1]))
            *--e = 0;
        if (!*s)
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            bad = lineno;
            break;
        }
        *eq = 0;
        char *name = s, *ne = eq, *v = eq + 1;
        while (ne > name && ref_space(ne[-1]))
            *--ne = 0;
        while (*v && ref_space(*v))
            v++;
        if (dmce_config_set(defs, NDEFS, c, name, v, err, sizeof err) < 0)
            bad = lineno;
    }
    free(line);
    return bad;
}

static void fuzz_file(const uint8_t *p, size_t n)
{
    put_file(p, n);
    fcfg_t c, ref;
    fresh(&c);
    fresh(&ref);
    char err[512] = "";
    int r = dmce_config_load_file(defs, NDEFS, &c, memfd_path, err, sizeof err);
    check_bounds(&c);
    int bad = ref_load(&ref, (const char *)p, n);
    check_bounds(&ref);
    if (r < 0) {
        FZ_CHECK(r == -EINVAL || r == -ERANGE || r == -ENOENT);
        FZ_CHECK(err[0] != 0);
        /* "PATH:LINE: ...": the same line as the reference. */
        size_t pl = strlen(memfd_path);
        FZ_CHECK(strncmp(err, memfd_path, pl) == 0 && err[pl] == ':');
        int line = atoi(err + pl + 1);
        if (line != bad)
            fprintf(stderr, "config parser: error on line %d, reference: %d (%s)\n", line, bad,
                    err);
        FZ_CHECK_EQ(line, bad);
    } else {
        FZ_CHECK_EQ(r, 0);
        if (bad)
            fprintf(stderr, "config parser accepted a file whose line %d is bad\n", bad);
        FZ_CHECK_EQ(bad, 0);
    }
    /* Same settings applied, in the same order. */
    FZ_CHECK(memcmp(&c, &ref, sizeof c) == 0);
}

/* ---- the command line ---------------------------------------------------------------- */

#define MAX_ARGS 64

static void fuzz_args(const uint8_t *p, size_t n)
{
    /* Split on NUL; every piece is one argument (a copy each, exact size). */
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = strdup("fuzz_config");
    for (size_t pos = 0; pos <= n && argc < MAX_ARGS + 1;) {
        const uint8_t *z = pos < n ? memchr(p + pos, 0, n - pos) : NULL;
        size_t len = z ? (size_t)(z - (p + pos)) : n - pos;
        argv[argc] = malloc(len + 1);
        FZ_CHECK(argv[argc] != NULL);
        memcpy(argv[argc], p + pos, len);
        argv[argc][len] = 0;
        argc++;
        if (!z)
            break;
        pos += len + 1;
    }
    /* --config FILE / --config=FILE name the memfd only. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            free(argv[i + 1]);
            argv[++i] = strdup(memfd_path);
        } else if (!strncmp(argv[i], "--config=", 9)) {
            free(argv[i]);
            argv[i] = malloc(10 + strlen(memfd_path));
            FZ_CHECK(argv[i] != NULL);
            sprintf(argv[i], "--config=%s", memfd_path);
        }
    }
    argv[argc] = NULL;
    fcfg_t c;
    fresh(&c);
    char err[512] = "";
    int r = dmce_config_parse_args(defs, NDEFS, &c, argc, argv, err, sizeof err);
    check_bounds(&c);
    FZ_CHECK(r <= 2);
    if (r < 0) {
        FZ_CHECK(r == -EINVAL || r == -ERANGE || r == -ENOENT);
        FZ_CHECK(err[0] != 0);
    }
    /* Without a message buffer too. */
    fresh(&c);
    int r2 = dmce_config_parse_args(defs, NDEFS, &c, argc, argv, NULL, 0);
    FZ_CHECK_EQ(r2, r);
    check_bounds(&c);
    /* The effective config prints (enum and string values come from the struct). */
    static FILE *null_out;
    if (!null_out)
        null_out = fopen("/dev/null", "w");
    if (null_out)
        dmce_config_dump(defs, NDEFS, &c, null_out);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *z = memchr(data, 0, size);
    size_t flen = z ? (size_t)(z - data) : size;
    fuzz_file(data, flen);
    if (z)
        fuzz_args(z + 1, size - flen - 1);
    return 0;
}

#ifndef DMCE_LIBFUZZER
#define FZ_NAME "config"
#define FZ_MAX_LEN 2048
#include "fuzz_driver.h"
#endif
