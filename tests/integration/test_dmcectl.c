/*
 * Integration: dmcectl, the real binary ($DMCE_CTL), against real clusters
 * in private runtime directories (docs/dmcectl.md).
 *
 *   - usage: --help of every command, help COMMAND, --version (exit 0,
 *     usage printed); unknown commands and options, bad numbers, missing
 *     arguments (exit 2 with a hint to --help); no cluster: an empty
 *     runtime directory and a missing one (exit 3, naming the socket);
 *   - views: a dispatcher and three daemons; the test allocates a block
 *     through libdmce and holds a session: status, blocks, clients, stats
 *     and jobs (--json, checked as JSON, and as tables) report the daemons
 *     with their pids, the block where the directory has it, the session
 *     with this process's pid and the bytes it uses;
 *   - migrate: the block moves (the directory and blocks --json say
 *     where, the bytes read back through libdmce), a second move in JSON;
 *     an unknown block, a block already there and a dead target exit 1
 *     with the reason;
 *   - drain: a daemon with primaries and mirror copies ends holding
 *     nothing; the data reads back; --cancel makes it normal again;
 *   - no dispatcher: daemons alone; status and blocks still report them,
 *     and say no dispatcher runs; moves exit 3;
 *   - watch: status --watch redraws until SIGTERM, then exits 0;
 *   - backups (the daemon's side: runtime/memd_backup.c): a block with
 *     known bytes backed up to a relative --dir, verified OK; one byte of
 *     its file flipped: verify exits 4 and names the file; a daemon killed
 *     and started again empty gets the block back with restore, and the
 *     bytes read back under the same address.
 *
 * dmcectl runs with posix_spawn, stdout and stderr captured, bounded in
 * time (killed after RUN_MAX_MS). Every wait is for a condition with a bound.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "util.h"

extern char **environ;

#define MIB (1ull << 20)
#define RUN_MAX_MS 60000u
#define OUT_MAX (4u << 20)

/* ---- running dmcectl ------------------------------------------------------------------------- */

struct run {
    int status; /* exit status; 128 + signal when killed */
    char *out;  /* stdout, NUL-terminated; owner: the run */
    char *err;  /* stderr */
    size_t nout, nerr;
};

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

static const char *ctl_bin(void)
{
    const char *p = getenv("DMCE_CTL");
    return p ? p : "./dmcectl";
}

/* Append what fd has to *buf; 0 at EOF, 1 when more may come. */
static int drain_fd(int fd, char **buf, size_t *n)
{
    char tmp[65536];
    ssize_t k = read(fd, tmp, sizeof(tmp));
    if (k <= 0)
        return k < 0 && errno == EINTR;
    if (*n + (size_t)k < OUT_MAX) {
        char *b = realloc(*buf, *n + (size_t)k + 1);
        assert_non_null(b);
        memcpy(b + *n, tmp, (size_t)k);
        *n += (size_t)k;
        b[*n] = 0;
        *buf = b;
    }
    return 1;
}

/*
 * Start dmcectl with argv (argv[0] ignored) in cwd (NULL: ours); *pid, and
 * the read ends of its stdout and stderr.
 */
static void ctl_spawn(char *const argv[], const char *cwd, pid_t *pid, int *out_fd, int *err_fd)
{
    int po[2], pe[2];
    assert_int_equal(pipe2(po, O_CLOEXEC), 0);
    assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, pe[1], STDERR_FILENO);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    char *v[64];
    int n = 0;
    v[n++] = (char *)ctl_bin();
    for (int i = 1; argv[i] && n < 63; i++)
        v[n++] = argv[i];
    v[n] = NULL;
    int r = posix_spawn(pid, v[0], &fa, NULL, v, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    assert_int_equal(r, 0);
    *out_fd = po[0];
    *err_fd = pe[0];
}

/*
 * Collect a spawned dmcectl's output until it exits (killed after
 * RUN_MAX_MS). until (may be NULL) is asked after each read; when it holds,
 * the process gets SIGTERM (status --watch).
 */
static void ctl_collect(struct run *r, pid_t pid, int out_fd, int err_fd,
                        int (*until)(const struct run *))
{
    uint64_t deadline = dmce_now_ms() + RUN_MAX_MS;
    int open_out = 1, open_err = 1, signalled = 0;
    while (open_out || open_err) {
        struct pollfd p[2] = {{.fd = open_out ? out_fd : -1, .events = POLLIN},
                              {.fd = open_err ? err_fd : -1, .events = POLLIN}};
        uint64_t now = dmce_now_ms();
        if (now >= deadline) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(p, 2, (int)DMCE_MIN(deadline - now, 1000)) < 0 && errno != EINTR)
            break;
        if (p[0].revents)
            open_out = drain_fd(out_fd, &r->out, &r->nout);
        if (p[1].revents)
            open_err = drain_fd(err_fd, &r->err, &r->nerr);
        if (until && !signalled && until(r)) {
            kill(pid, SIGTERM);
            signalled = 1;
        }
    }
    close(out_fd);
    close(err_fd);
    int st = 0;
    waitpid(pid, &st, 0);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (!r->out)
        r->out = calloc(1, 1);
    if (!r->err)
        r->err = calloc(1, 1);
    assert_non_null(r->out);
    assert_non_null(r->err);
}

/* dmcectl --runtime-dir DIR ARGS... in cwd; fills *r. */
static void ctl_in(struct run *r, const char *dir, const char *cwd, char *const args[])
{
    char *argv[64] = {NULL, "--runtime-dir", (char *)dir};
    int n = 3;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid;
    int o, e;
    memset(r, 0, sizeof(*r));
    ctl_spawn(argv, cwd, &pid, &o, &e);
    ctl_collect(r, pid, o, e, NULL);
    if (getenv("DMCE_TEST_VERBOSE"))
        print_message("dmcectl %s ... -> %d\n%s%s", args[0] ? args[0] : "", r->status, r->out,
                      r->err);
}

#define CTL(r, ...) ctl_in((r), H.dir, NULL, (char *const[]){__VA_ARGS__, NULL})
#define CTL_DIR(r, dir, ...) ctl_in((r), (dir), NULL, (char *const[]){__VA_ARGS__, NULL})

/* dmcectl ... that must exit 0 with one JSON document. */
#define CTL_JSON(r, ...)                                                                           \
    do {                                                                                           \
        CTL((r), __VA_ARGS__);                                                                     \
        expect_exit((r), 0);                                                                       \
        expect_json((r)->out);                                                                     \
    } while (0)

/* The run exited with want; else fail showing its output. */
static void expect_exit(const struct run *r, int want)
{
    if (r->status != want)
        fail_msg("dmcectl exited %d, expected %d\nstdout: %s\nstderr: %s", r->status, want, r->out,
                 r->err);
}

static void expect_in(const char *text, const char *what)
{
    if (!strstr(text, what))
        fail_msg("'%s' not in:\n%s", what, text);
}

/* ---- JSON: a validator and member lookup (enough for dmcectl's documents) -------------------- */

static const char *ws(const char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    return s;
}

static const char *jstr(const char *s)
{
    if (*s != '"')
        return NULL;
    for (s++; *s != '"'; s++) {
        if (!*s || (unsigned char)*s < 0x20)
            return NULL;
        if (*s != '\\')
            continue;
        s++;
        if (*s == 'u') {
            for (int i = 1; i <= 4; i++)
                if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
                    return NULL;
            s += 4;
        } else if (!*s || !strchr("\"\\/bfnrt", *s)) {
            return NULL;
        }
    }
    return s + 1;
}

/* The end of the JSON value at s, or NULL when it is malformed. */
static const char *jv(const char *s, int depth)
{
    s = ws(s);
    if (depth > 32)
        return NULL;
    if (*s == '{' || *s == '[') {
        char close = *s == '{' ? '}' : ']';
        s = ws(s + 1);
        if (*s == close)
            return s + 1;
        for (;;) {
            if (close == '}') {
                s = jstr(ws(s));
                if (!s || *(s = ws(s)) != ':')
                    return NULL;
                s++;
            }
            if (!(s = jv(s, depth + 1)))
                return NULL;
            s = ws(s);
            if (*s == ',')
                s++;
            else
                return *s == close ? s + 1 : NULL;
        }
    }
    if (*s == '"')
        return jstr(s);
    if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
        return s + 4;
    if (!strncmp(s, "false", 5))
        return s + 5;
    const char *b = s;
    if (*s == '-')
        s++;
    if (*s < '0' || *s > '9')
        return NULL;
    while (*s >= '0' && *s <= '9')
        s++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++)
            ;
    return s > b ? s : NULL;
}

/* One JSON document and a newline, nothing else. */
static void expect_json(const char *doc)
{
    const char *e = jv(doc, 0);
    if (!e || strcmp(e, "\n") != 0)
        fail_msg("not one JSON document:\n%s", doc);
}

/* The value of member key of the object at obj, or NULL. */
static const char *jget(const char *obj, const char *key)
{
    const char *s = ws(obj);
    if (*s != '{')
        return NULL;
    s = ws(s + 1);
    while (*s == '"') {
        const char *k = s + 1, *e = jstr(s);
        if (!e)
            return NULL;
        size_t kl = (size_t)(e - 1 - k);
        s = ws(ws(e) + 1);
        if (kl == strlen(key) && !strncmp(k, key, kl))
            return s;
        if (!(s = jv(s, 0)))
            return NULL;
        s = ws(s);
        if (*s != ',')
            break;
        s = ws(s + 1);
    }
    return NULL;
}

static int64_t jnum(const char *obj, const char *key)
{
    const char *v = jget(obj, key);
    if (!v || (*v != '-' && (*v < '0' || *v > '9')))
        fail_msg("no number '%s' in %.300s", key, obj);
    return strtoll(v, NULL, 10);
}

/* Member key's value is the JSON text lit ("true", "null", "\"alive\""). */
static int jis(const char *obj, const char *key, const char *lit)
{
    const char *v = jget(obj, key);
    return v && !strncmp(v, lit, strlen(lit));
}

/* Element i of the array member key of obj, or NULL. */
static const char *jelem(const char *obj, const char *key, unsigned i)
{
    const char *s = jget(obj, key);
    if (!s || *s != '[')
        return NULL;
    s = ws(s + 1);
    for (unsigned k = 0; *s && *s != ']'; k++) {
        if (k == i)
            return s;
        if (!(s = jv(s, 0)))
            return NULL;
        s = ws(s);
        if (*s == ',')
            s = ws(s + 1);
    }
    return NULL;
}

static unsigned jlen(const char *obj, const char *key)
{
    unsigned n = 0;
    while (jelem(obj, key, n))
        n++;
    return n;
}

/* The element of array key whose member field is the number v, or NULL. */
static const char *jfind(const char *obj, const char *key, const char *field, int64_t v)
{
    const char *e;
    for (unsigned i = 0; (e = jelem(obj, key, i)); i++)
        if (jget(e, field) && jnum(e, field) == v)
            return e;
    return NULL;
}

/* ---- clusters -------------------------------------------------------------------------------- */


static int teardown(void **state);

/*
 * A cluster: a dispatcher (mirroring on; a generous request timeout, so
 * that a loaded machine does not turn a slow daemon into a failover) and
 * ndaemons daemons. A setup that fails cleans up itself: cmocka runs no
 * teardown after it.
 */
/* numa: each daemon on its own node of a synthetic topology (node id-1). */
static int start_cluster_on(int with_dispatcher, int ndaemons, int numa)
{
    int ok = harness_init() == 0;
    if (ok && with_dispatcher)
        ok = harness_start_dispatcher(0, "--mirroring=on", "--request-timeout-ms=10000", NULL) == 0;
    for (int id = 1; ok && id <= ndaemons; id++) {
        char node[32];
        snprintf(node, sizeof(node), "--numa-node=%d", id - 1);
        if (numa)
            ok = harness_start(id, "--block-size=4M", "--max-blocks=64", "--grace-ms=60000",
                               "--topology=pack:3 numa:1 core:1 pu:1", node, NULL) == 0;
        else
            ok = harness_start(id, "--block-size=4M", "--max-blocks=64", "--grace-ms=60000",
                               NULL) == 0;
    }
    if (ok && with_dispatcher)
        ok = harness_observer() != NULL &&
             harness_wait(harness_cluster_alive, (void *)(uintptr_t)(unsigned)ndaemons, 10000);
    if (!ok)
        teardown(NULL);
    return ok ? 0 : -1;
}

static int start_cluster(int with_dispatcher, int ndaemons)
{
    return start_cluster_on(with_dispatcher, ndaemons, 0);
}

static int setup_three_nodes(void **state)
{
    (void)state;
    return start_cluster_on(1, 3, 1);
}

static int setup_three(void **state)
{
    (void)state;
    return start_cluster(1, 3);
}

static int setup_alone(void **state)
{
    (void)state;
    return start_cluster(0, 2);
}

static int setup_none(void **state)
{
    (void)state;
    return harness_init();
}

static int teardown(void **state)
{
    (void)state;
    for (int id = 0; id <= H_MAX_DAEMONS; id++)
        if (H.pid[id])
            harness_stop(id);
    harness_cleanup();
    return 0;
}

/* A client of the runtime directory, set up with a reservation of amount bytes. */
static dmce_client_t *client_of(unsigned flags, uint64_t amount)
{
    dmce_client_t *c = NULL;
    assert_int_equal(dmce_connect(&(dmce_connect_opts_t){.runtime_dir = H.dir, .flags = flags}, &c),
                     0);
    assert_int_equal(dmce_setup(c, amount, DMCE_SETUP_PARTIAL, NULL, NULL), 0);
    return c;
}

static dmce_client_t *client(unsigned flags)
{
    return client_of(flags, 1 * MIB);
}

/* An allocation filled with a pattern of seed; *block gets its block ID. */
static dmce_addr_t alloc_pattern(dmce_client_t *c, size_t size, unsigned seed, uint32_t *block)
{
    dmce_addr_t a;
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
    assert_int_equal(dmce_malloc(c, size, &a), 0);
    assert_int_equal(dmce_write(c, a, buf, size), 0);
    free(buf);
    dmce_addr_parts_t p;
    assert_int_equal(dmce_addr_decode(dmce_client_layout(c), a, &p), 0);
    if (block)
        *block = p.block;
    return a;
}

static void expect_pattern(dmce_client_t *c, dmce_addr_t a, size_t size, unsigned seed)
{
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    assert_int_equal(dmce_read(c, a, buf, size), 0);
    for (size_t i = 0; i < size; i++)
        if (buf[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 12)))
            fail_msg("byte %zu of the allocation differs", i);
    free(buf);
}

/* Without a dispatcher each daemon creates blocks in its own range: --max-blocks=64 from 1. */
static uint32_t range_owner(uint32_t block)
{
    return (block - 1) / 64 + 1;
}

/* The daemon holding block's primary, from blocks --json (0: none). */
static uint32_t primary_from_blocks(uint32_t block)
{
    struct run r;
    CTL_JSON(&r, "blocks", "--json");
    uint32_t who = 0;
    const char *e;
    for (unsigned i = 0; (e = jelem(r.out, "blocks", i)); i++)
        if (jnum(e, "block") == block && jis(e, "role", "\"primary\""))
            who = (uint32_t)jnum(e, "daemon");
    run_free(&r);
    return who;
}

/* ---- usage and no cluster -------------------------------------------------------------------- */

static const char *const commands[] = {"status",  "blocks", "clients", "stats",   "jobs",
                                       "migrate", "drain",  "backup",  "restore", "verify"};

static void usage_and_help(void **state)
{
    (void)state;
    struct run r;
    for (size_t i = 0; i < DMCE_ARRAY_LEN(commands); i++) {
        char *cmd = (char *)commands[i];
        char want[64];
        snprintf(want, sizeof(want), "Usage: dmcectl [GLOBAL OPTIONS] %s", cmd);
        CTL(&r, cmd, "--help");
        expect_exit(&r, 0);
        expect_in(r.out, want);
        run_free(&r);
        CTL(&r, "help", cmd);
        expect_exit(&r, 0);
        expect_in(r.out, want);
        run_free(&r);
        CTL(&r, cmd, "-h", "--json"); /* help wins, wherever it stands */
        expect_exit(&r, 0);
        expect_in(r.out, want);
        run_free(&r);
    }
    CTL(&r, "backup", "status", "--help");
    expect_exit(&r, 0);
    expect_in(r.out, "Usage: dmcectl [GLOBAL OPTIONS] backup status [--daemon ID]");
    run_free(&r);
    CTL(&r, "--help");
    expect_exit(&r, 0);
    for (size_t i = 0; i < DMCE_ARRAY_LEN(commands); i++)
        expect_in(r.out, commands[i]);
    expect_in(r.out, "Exit status");
    run_free(&r);
    CTL(&r, "--version");
    expect_exit(&r, 0);
    expect_in(r.out, "dmcectl ");
    run_free(&r);

    /* Usage errors: exit 2, one line, then the hint. */
    static const struct {
        const char *args[7];
        const char *says;
    } bad[] = {
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"status", "--frob"}, "unknown option '--frob'"},
        {{"migrate"}, "missing argument"},
        {{"migrate", "seven"}, "bad block ID 'seven'"},
        {{"migrate", "7", "--to", "x"}, "bad daemon ID 'x'"},
        {{"migrate", "7", "--to", "1", "--to-node", "0"}, "exclude each other"},
        {{"drain", "0"}, "bad daemon ID '0'"},
        {{"blocks", "--daemon"}, "needs a value"},
        {{"status", "--timeout", "soon"}, "--timeout: bad value 'soon'"},
        {{"status", "--watch", "0"}, "bad --watch interval"},
        {{"backup"}, "give a BLOCK or --all"},
        {{"backup", "3", "--all"}, "not both"},
        {{"restore", "--all"}, "--to DAEMON or --dir DIR"},
        {{"jobs", "extra"}, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < DMCE_ARRAY_LEN(bad); i++) {
        char *args[8] = {NULL};
        for (int k = 0; k < 7 && bad[i].args[k]; k++)
            args[k] = (char *)bad[i].args[k];
        ctl_in(&r, H.dir, NULL, args);
        expect_exit(&r, 2);
        expect_in(r.err, bad[i].says);
        expect_in(r.err, "--help'.");
        assert_int_equal(r.nout, 0);
        run_free(&r);
    }
}

static void no_cluster(void **state)
{
    (void)state;
    struct run r;
    char disp[400];
    snprintf(disp, sizeof(disp), "%s/dispatcher.sock", H.dir);
    static const char *const need_cluster[] = {"status", "blocks", "clients", "stats", "jobs"};
    for (size_t i = 0; i < DMCE_ARRAY_LEN(need_cluster); i++) {
        CTL(&r, (char *)need_cluster[i]);
        expect_exit(&r, 3);
        expect_in(r.err, disp); /* says which socket it tried */
        run_free(&r);
    }
    CTL(&r, "migrate", "1", "--to", "2");
    expect_exit(&r, 3);
    expect_in(r.err, "no dispatcher answers");
    run_free(&r);
    CTL_DIR(&r, "/nonexistent/dmce-dir", "status", "--json");
    expect_exit(&r, 3);
    expect_in(r.err, "/nonexistent/dmce-dir");
    assert_int_equal(r.nout, 0);
    run_free(&r);
}

/* ---- the views of a cluster ------------------------------------------------------------------ */

static void cluster_views(void **state)
{
    (void)state;
    dmce_client_t *c = client(0);
    uint32_t block;
    dmce_addr_t a = alloc_pattern(c, 256 * 1024, 1, &block);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 30000));
    struct run r;

    /* status --json: the dispatcher, the three daemons, the block, the clients. */
    CTL_JSON(&r, "status", "--json");
    const char *d = jget(r.out, "dispatcher");
    assert_non_null(d);
    assert_int_equal(jnum(d, "pid"), H.pid[0]);
    assert_int_equal(jnum(d, "daemons_alive"), 3);
    assert_true(jis(d, "mirroring", "true"));
    assert_int_equal(jlen(r.out, "daemons"), 3);
    for (int id = 1; id <= 3; id++) {
        const char *e = jfind(r.out, "daemons", "id", id);
        assert_non_null(e);
        assert_int_equal(jnum(e, "pid"), H.pid[id]);
        assert_true(jis(e, "health", "\"alive\""));
        assert_true(jis(e, "draining", "false"));
        assert_true(jnum(e, "heartbeat_age_ms") < 5000);
        assert_true(jnum(e, "capacity") > 0);
    }
    const char *b = jfind(r.out, "blocks", "id", block);
    assert_non_null(b);
    uint32_t prim = (uint32_t)jnum(b, "primary"), mirr = (uint32_t)jnum(b, "mirror");
    assert_true(prim >= 1 && prim <= 3 && mirr >= 1 && mirr <= 3 && prim != mirr);
    assert_true(jis(b, "state", "\"mirrored\""));
    assert_true(jnum(b, "used") >= 256 * 1024);
    assert_true(jnum(b, "allocations") >= 1);
    const char *cl = jfind(r.out, "clients", "daemon", prim);
    assert_non_null(cl);
    assert_true(jnum(cl, "sessions") >= 1);
    assert_int_equal(jlen(r.out, "warnings"), 0);
    run_free(&r);

    /* blocks --json: the primary on prim, its mirror copy on mirr. */
    assert_int_equal(primary_from_blocks(block), prim);
    CTL_JSON(&r, "blocks", "--json", "--daemon", mirr == 1 ? "1" : mirr == 2 ? "2" : "3");
    const char *e;
    int seen = 0;
    for (unsigned i = 0; (e = jelem(r.out, "blocks", i)); i++) {
        assert_int_equal(jnum(e, "daemon"), mirr); /* the filter holds */
        if (jnum(e, "block") == block) {
            assert_true(jis(e, "role", "\"mirror\""));
            assert_int_equal(jnum(e, "peer"), prim);
            seen = 1;
        }
    }
    assert_true(seen);
    run_free(&r);

    /* clients --json: this process's session on prim, with what it uses. */
    CTL_JSON(&r, "clients", "--json");
    seen = 0;
    for (unsigned i = 0; (e = jelem(r.out, "clients", i)); i++)
        if (jnum(e, "pid") == getpid() && jnum(e, "daemon") == prim) {
            assert_true(jnum(e, "used") >= 256 * 1024);
            assert_true(jnum(e, "session") & 0x80000000); /* the cluster-wide ID */
            assert_int_equal(jnum(e, "uid"), (int64_t)getuid());
            assert_true(jis(e, "orphaned", "false"));
            assert_true(jis(e, "transport", "\"ring\"") || jis(e, "transport", "\"socket\""));
            seen = 1;
        }
    assert_true(seen);
    run_free(&r);

    /* stats --json: every daemon's counters, the dispatcher's. */
    CTL_JSON(&r, "stats", "--json");
    assert_int_equal(jlen(r.out, "daemons"), 3);
    int64_t allocs = 0;
    for (int id = 1; id <= 3; id++) {
        const char *s = jfind(r.out, "daemons", "daemon_id", id);
        assert_non_null(s);
        assert_int_equal(jnum(s, "pid"), H.pid[id]);
        assert_true(jnum(s, "bytes_total") > 0);
        assert_non_null(jget(s, "moved_in"));
        allocs += jnum(s, "allocations");
    }
    assert_true(allocs >= 1);
    d = jget(r.out, "dispatcher");
    assert_non_null(d);
    assert_int_equal(jnum(d, "daemons_alive"), 3);
    assert_true(jnum(d, "blocks") >= 1);
    assert_true(jnum(d, "sessions") >= 1);
    run_free(&r);

    /* jobs --json: none yet. */
    CTL_JSON(&r, "jobs", "--json");
    assert_int_equal(jlen(r.out, "jobs"), 0);
    run_free(&r);

    /* The tables for people. */
    CTL(&r, "status");
    expect_exit(&r, 0);
    expect_in(r.out, "DAEMONS (3)");
    expect_in(r.out, "HEARTBEAT");
    expect_in(r.out, "mirrored");
    run_free(&r);
    CTL(&r, "stats", "--daemon", "2");
    expect_exit(&r, 0);
    expect_in(r.out, "memd[2]");
    expect_in(r.out, "bytes_total");
    assert_null(strstr(r.out, "memd[1]"));
    run_free(&r);
    CTL(&r, "clients");
    expect_exit(&r, 0);
    char pid[32];
    snprintf(pid, sizeof(pid), " %d ", (int)getpid());
    expect_in(r.out, pid);
    run_free(&r);
    CTL(&r, "stats", "--daemon", "9");
    expect_exit(&r, 1);
    expect_in(r.err, "memd[9]");
    run_free(&r);

    expect_pattern(c, a, 256 * 1024, 1);
    dmce_disconnect(c);
}

/* ---- migrate --------------------------------------------------------------------------------- */

static void migrate_block(void **state)
{
    (void)state;
    dmce_client_t *c = client(0);
    uint32_t block;
    dmce_addr_t a = alloc_pattern(c, 512 * 1024, 2, &block);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 30000));
    uint32_t from = primary_from_blocks(block), to = from % 3 + 1;
    assert_true(from >= 1);
    char sb[16], sto[16], sfrom[16], want[96];
    snprintf(sb, sizeof(sb), "%u", block);
    snprintf(sto, sizeof(sto), "%u", to);
    snprintf(sfrom, sizeof(sfrom), "%u", from);

    struct run r;
    CTL(&r, "migrate", sb, "--to", sto);
    expect_exit(&r, 0);
    snprintf(want, sizeof(want), "block %u moved from memd[%u] to memd[%u]", block, from, to);
    expect_in(r.out, want);
    run_free(&r);
    assert_int_equal(primary_from_blocks(block), to);
    expect_pattern(c, a, 512 * 1024, 2); /* the bytes are where they were, under the same address */

    /* Back, in JSON. */
    CTL_JSON(&r, "migrate", sb, "--to", sfrom, "--json");
    const char *j = jget(r.out, "job");
    assert_non_null(j);
    assert_true(jis(r.out, "result", "\"done\""));
    assert_int_equal(jnum(j, "block"), block);
    assert_int_equal(jnum(j, "from"), to);
    assert_int_equal(jnum(j, "to"), from);
    assert_true(jis(j, "state", "\"done\""));
    assert_int_equal(jnum(j, "error"), 0);
    run_free(&r);
    assert_int_equal(primary_from_blocks(block), from);
    expect_pattern(c, a, 512 * 1024, 2);

    /* Both moves in the dispatcher's list, done. */
    CTL_JSON(&r, "jobs", "--json");
    assert_int_equal(jlen(r.out, "jobs"), 2);
    for (unsigned i = 0; i < 2; i++) {
        const char *e = jelem(r.out, "jobs", i);
        assert_int_equal(jnum(e, "block"), block);
        assert_true(jis(e, "state", "\"done\""));
        assert_true(jnum(e, "took_us") > 0);
    }
    run_free(&r);
    CTL(&r, "jobs");
    expect_exit(&r, 0);
    expect_in(r.out, "done");
    run_free(&r);

    /* --no-wait queues and says the job. */
    CTL(&r, "migrate", sb, "--to", sto, "--no-wait");
    expect_exit(&r, 0);
    expect_in(r.out, "queued as job 3");
    run_free(&r);

    /* Refusals: exit 1 with the reason. */
    CTL(&r, "migrate", "4000");
    expect_exit(&r, 1);
    expect_in(r.err, "migrate block 4000: no such block");
    run_free(&r);
    uint32_t now;
    uint64_t end = dmce_now_ms() + 10000;
    while ((now = primary_from_blocks(block)) != to && dmce_now_ms() < end)
        usleep(5000);
    assert_int_equal(now, to);
    CTL(&r, "migrate", sb, "--to", sto);
    expect_exit(&r, 1);
    expect_in(r.err, "there already");
    run_free(&r);
    CTL(&r, "migrate", sb, "--to", "99");
    expect_exit(&r, 1);
    expect_in(r.err, "no such live daemon");
    run_free(&r);
    dmce_disconnect(c);
}

/*
 * --to-node on a synthetic three-node topology (daemon N on node N-1): the
 * block goes to the daemon of that node; its own node, or a node without
 * a daemon, is refused with the reason.
 */
static void migrate_to_node(void **state)
{
    (void)state;
    dmce_client_t *c = client(0);
    uint32_t block;
    dmce_addr_t a = alloc_pattern(c, 256 * 1024, 5, &block);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 30000));
    uint32_t from = primary_from_blocks(block);
    assert_true(from >= 1 && from <= 3);
    uint32_t node = from % 3; /* the next daemon's node: daemon from % 3 + 1 */
    char sb[16], sn[16], sown[16], want[96];
    snprintf(sb, sizeof(sb), "%u", block);
    snprintf(sn, sizeof(sn), "%u", node);
    snprintf(sown, sizeof(sown), "%u", from - 1);
    struct run r;
    CTL(&r, "migrate", sb, "--to-node", sn);
    expect_exit(&r, 0);
    snprintf(want, sizeof(want), "block %u moved from memd[%u] to memd[%u]", block, from,
             node + 1);
    expect_in(r.out, want);
    run_free(&r);
    assert_int_equal(primary_from_blocks(block), node + 1);
    expect_pattern(c, a, 256 * 1024, 5);
    /* Where it is already: refused, nothing moves. */
    snprintf(sown, sizeof(sown), "%u", node);
    CTL(&r, "migrate", sb, "--to-node", sown);
    expect_exit(&r, 1);
    expect_in(r.err, "there already");
    run_free(&r);
    /* A node no daemon is on. */
    CTL(&r, "migrate", sb, "--to-node", "7");
    expect_exit(&r, 1);
    expect_in(r.err, "migrate block");
    run_free(&r);
    assert_int_equal(primary_from_blocks(block), node + 1);
    expect_pattern(c, a, 256 * 1024, 5);
    dmce_disconnect(c);
}

/* ---- drain ----------------------------------------------------------------------------------- */

static void drain_daemon(void **state)
{
    (void)state;
    enum { N = 8, SZ = 3 * MIB };
    dmce_client_t *c = client(0);
    dmce_addr_t a[N];
    for (unsigned i = 0; i < N; i++)
        a[i] = alloc_pattern(c, SZ, 10 + i, NULL);
    assert_true(harness_wait(harness_cluster_mirrored, NULL, 60000));
    struct run r;
    CTL(&r, "status", "--json");
    expect_json(r.out);
    const char *d2 = jfind(r.out, "daemons", "id", 2);
    assert_non_null(d2);
    int64_t had = jnum(d2, "primaries") + jnum(d2, "mirrors");
    assert_true(had > 0);
    run_free(&r);

    CTL(&r, "drain", "2");
    expect_exit(&r, 0);
    expect_in(r.out, "memd[2] holds nothing now");
    run_free(&r);
    CTL_JSON(&r, "status", "--json");
    d2 = jfind(r.out, "daemons", "id", 2);
    assert_int_equal(jnum(d2, "primaries"), 0);
    assert_int_equal(jnum(d2, "mirrors"), 0);
    assert_true(jis(d2, "draining", "true"));
    const char *w = jelem(r.out, "warnings", 0);
    assert_non_null(w);
    run_free(&r);
    CTL(&r, "blocks", "--json", "--daemon", "2");
    expect_exit(&r, 0);
    assert_int_equal(jlen(r.out, "blocks"), 0);
    run_free(&r);
    for (unsigned i = 0; i < N; i++)
        expect_pattern(c, a[i], SZ, 10 + i);

    /* Done already: a second drain finds nothing to move. */
    CTL_JSON(&r, "drain", "2", "--json");
    assert_true(jis(r.out, "result", "\"drained\""));
    assert_int_equal(jnum(r.out, "primaries"), 0);
    run_free(&r);
    CTL(&r, "drain", "2", "--cancel");
    expect_exit(&r, 0);
    expect_in(r.out, "drain cancelled");
    run_free(&r);
    CTL(&r, "status", "--json");
    assert_true(jis(jfind(r.out, "daemons", "id", 2), "draining", "false"));
    run_free(&r);
    CTL(&r, "drain", "7");
    expect_exit(&r, 1);
    expect_in(r.err, "drain memd[7]");
    run_free(&r);
    dmce_disconnect(c);
}

/* ---- no dispatcher --------------------------------------------------------------------------- */

static void without_dispatcher(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_DISPATCHER);
    uint32_t b1, b2;
    dmce_addr_t a1 = alloc_pattern(c, 64 * 1024, 3, &b1);
    dmce_addr_t a2 = alloc_pattern(c, 64 * 1024, 4, &b2);
    struct run r;
    CTL_JSON(&r, "status", "--json");
    assert_true(jis(r.out, "dispatcher", "null"));
    const char *w = jelem(r.out, "warnings", 0);
    assert_non_null(w);
    assert_non_null(strstr(w, "no dispatcher runs"));
    assert_int_equal(jlen(r.out, "daemons"), 2);
    for (int id = 1; id <= 2; id++) {
        const char *e = jfind(r.out, "daemons", "id", id);
        assert_non_null(e);
        assert_int_equal(jnum(e, "pid"), H.pid[id]);
        assert_true(jis(e, "health", "\"alive\""));
        assert_true(jis(e, "heartbeat_age_ms", "null"));
    }
    uint32_t h1 = range_owner(b1), h2 = range_owner(b2);
    const char *e1 = jfind(r.out, "blocks", "id", b1), *e2 = jfind(r.out, "blocks", "id", b2);
    assert_non_null(e1);
    assert_non_null(e2);
    assert_int_equal(jnum(e1, "primary"), h1);
    assert_int_equal(jnum(e2, "primary"), h2);
    assert_true(jis(e1, "state", "\"single\""));
    assert_true(jnum(e1, "used") >= 64 * 1024);
    run_free(&r);
    assert_int_equal(primary_from_blocks(b1), h1);
    CTL(&r, "clients", "--json");
    expect_exit(&r, 0);
    const char *e;
    unsigned mine = 0;
    for (unsigned i = 0; (e = jelem(r.out, "clients", i)); i++)
        mine += jnum(e, "pid") == getpid();
    assert_int_equal(mine, 2); /* a session on each daemon */
    run_free(&r);
    expect_pattern(c, a1, 64 * 1024, 3);
    expect_pattern(c, a2, 64 * 1024, 4);
    CTL(&r, "status");
    expect_exit(&r, 0);
    expect_in(r.out, "dispatcher: none");
    expect_in(r.out, "DAEMONS (2)");
    run_free(&r);
    CTL(&r, "jobs");
    expect_exit(&r, 3);
    expect_in(r.err, "dispatcher.sock");
    run_free(&r);

    /* Strings are escaped: a runtime dir named with a quote, a backslash, a newline, a
     * valid UTF-8 letter and a byte that is not UTF-8 (through a symbolic link). */
    char odd[400];
    snprintf(odd, sizeof(odd), "%s.q\"b\\n\n\xc3\xa9\xff", H.dir);
    assert_int_equal(symlink(H.dir, odd), 0);
    CTL_DIR(&r, odd, "status", "--json");
    unlink(odd);
    expect_exit(&r, 0);
    expect_json(r.out);
    expect_in(r.out, ".q\\\"b\\\\n\\n\xc3\xa9\\ufffd\",");
    assert_int_equal(jlen(r.out, "daemons"), 2);
    run_free(&r);
    dmce_disconnect(c);
}

/* ---- status --watch -------------------------------------------------------------------------- */

static int two_frames(const struct run *r)
{
    const char *p = r->out ? strstr(r->out, "\n---- ") : NULL;
    return p && strstr(p + 1, "DAEMONS (");
}

static void watch_until_sigterm(void **state)
{
    (void)state;
    char *argv[] = {NULL, "--runtime-dir", H.dir, "status", "--watch", "0.1", NULL};
    pid_t pid;
    int o, e;
    struct run r = {0};
    ctl_spawn(argv, NULL, &pid, &o, &e);
    ctl_collect(&r, pid, o, e, two_frames);
    expect_exit(&r, 0);
    assert_true(two_frames(&r));
    run_free(&r);
}

/* ---- backups --------------------------------------------------------------------------------- */

/* The backup dir of this test, made under the runtime dir's parent (cleaned at the end). */
static char bk_parent[300];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path) < 0 ? -1 : 0;
}

/* Remove the test's backup tree (files the daemons wrote in it). */
static void rm_tree(const char *dir)
{
    if (dir[0] && nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        print_message("could not remove %s: %s\n", dir, strerror(errno));
}

static int setup_backup_n(int ndaemons)
{
    snprintf(bk_parent, sizeof(bk_parent), "/tmp/dmce-bk.XXXXXX");
    if (!mkdtemp(bk_parent))
        return -1;
    if (start_cluster(0, ndaemons) == 0)
        return 0;
    rm_tree(bk_parent);
    return -1;
}

static int setup_backup(void **state)
{
    (void)state;
    return setup_backup_n(2);
}

/* One daemon: its first block is made again at every start, so the test uses its second. */
static int setup_backup_one(void **state)
{
    (void)state;
    return setup_backup_n(1);
}

static int teardown_backup(void **state)
{
    rm_tree(bk_parent);
    return teardown(state);
}

/*
 * A block with known bytes, backed up with a relative --dir from the
 * backup parent (dmcectl makes it absolute for the daemon). Returns the
 * allocation; *block, *holder: where it is.
 */
static dmce_addr_t backed_up(dmce_client_t *c, size_t size, uint32_t *block, uint32_t *holder)
{
    dmce_addr_t a = alloc_pattern(c, size, 5, block);
    *holder = range_owner(*block);
    char sb[16];
    snprintf(sb, sizeof(sb), "%u", *block);
    struct run r;
    ctl_in(&r, H.dir, bk_parent, (char *const[]){"backup", sb, "--dir", "bk", "--json", NULL});
    expect_exit(&r, 0);
    expect_json(r.out);
    assert_true(jis(r.out, "result", "\"done\""));
    const char *t = jelem(r.out, "tasks", 0);
    assert_non_null(t);
    assert_int_equal(jnum(t, "daemon"), *holder);
    const char *task = jget(t, "task");
    assert_true(jis(task, "state", "\"done\""));
    assert_int_equal(jnum(task, "blocks_done"), 1);
    assert_true(jnum(r.out, "bytes_written") >= (int64_t)size);
    assert_true(jnum(r.out, "pages_written") >= (int64_t)(size / 4096));
    run_free(&r);
    return a;
}

static void bk_dir(char *out, size_t cap)
{
    snprintf(out, cap, "%s/bk", bk_parent);
}

static void backup_then_verify(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_DISPATCHER);
    uint32_t block, holder;
    backed_up(c, 300 * 1024, &block, &holder);
    char dir[400], set[460], sb[16], want[64];
    bk_dir(dir, sizeof(dir));
    snprintf(set, sizeof(set), "%s/memd-%u/table", dir, holder);
    struct stat st;
    assert_int_equal(stat(set, &st), 0); /* the daemon wrote its set under DIR/memd-ID */
    snprintf(sb, sizeof(sb), "%u", block);

    struct run r;
    CTL(&r, "verify", "--dir", dir);
    expect_exit(&r, 0);
    snprintf(want, sizeof(want), "OK       memd-%u  block %u", holder, block);
    expect_in(r.out, want);
    expect_in(r.out, "all OK");
    run_free(&r);
    CTL_JSON(&r, "verify", "--dir", dir, sb, "--json");
    assert_int_equal(jlen(r.out, "blocks"), 1);
    assert_true(jis(jelem(r.out, "blocks", 0), "ok", "true"));
    assert_int_equal(jnum(r.out, "damaged"), 0);
    run_free(&r);
    /* A block that is in no set is missing. */
    CTL(&r, "verify", "--dir", dir, "4000");
    expect_exit(&r, 4);
    expect_in(r.out, "block 4000 is in no backup set");
    run_free(&r);
    /* The human summary of a whole backup. */
    CTL(&r, "backup", "--all", "--dir", dir, "--full");
    expect_exit(&r, 0);
    expect_in(r.out, "backup done");
    run_free(&r);
    CTL_JSON(&r, "backup", "status", "--json");
    assert_int_equal(jlen(r.out, "daemons"), 2);
    run_free(&r);
    dmce_disconnect(c);
}

static void verify_finds_corruption(void **state)
{
    (void)state;
    dmce_client_t *c = client(DMCE_CONNECT_NO_DISPATCHER);
    uint32_t block, holder;
    backed_up(c, 300 * 1024, &block, &holder);
    char dir[400], file[1024] = "", prefix[32];
    bk_dir(dir, sizeof(dir));
    /* The block's full image: b<ID>.<GEN>.full in the holder's set. */
    snprintf(prefix, sizeof(prefix), "b%u.", block);
    char set[460];
    snprintf(set, sizeof(set), "%s/memd-%u", dir, holder);
    DIR *d = opendir(set);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strstr(e->d_name, ".full"))
            snprintf(file, sizeof(file), "%s/%s", set, e->d_name);
    closedir(d);
    assert_true(file[0]);
    /* Flip one byte in the middle of the file (a page's data). */
    int fd = open(file, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    off_t at = st.st_size / 2;
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, at), 1);
    byte ^= 0x5a;
    assert_int_equal(pwrite(fd, &byte, 1, at), 1);
    close(fd);

    struct run r;
    CTL(&r, "verify", "--dir", dir);
    expect_exit(&r, 4);
    expect_in(r.out, "DAMAGED");
    expect_in(r.out, file); /* names the file */
    run_free(&r);
    CTL(&r, "verify", "--dir", set, "--json"); /* the set itself as DIR */
    expect_exit(&r, 4);
    expect_json(r.out);
    const char *b = jfind(r.out, "blocks", "block", block);
    assert_non_null(b);
    assert_true(jis(b, "ok", "false"));
    const char *why = jget(b, "why");
    assert_true(why && *why == '"');
    assert_non_null(strstr(why, strrchr(file, '/') + 1)); /* the reason names the file */
    assert_true(jnum(r.out, "damaged") >= 1);
    run_free(&r);
    dmce_disconnect(c);
}

static void restore_into_daemon(void **state)
{
    (void)state;
    dmce_client_t *c = client_of(DMCE_CONNECT_NO_DISPATCHER, 8 * MIB);
    uint32_t block, holder;
    dmce_addr_t filler;
    assert_int_equal(dmce_malloc(c, 3 * MIB + MIB / 2, &filler), 0); /* the first block */
    dmce_addr_t a = backed_up(c, MIB, &block, &holder);
    assert_int_not_equal(block, 1); /* a block the daemon does not make again at start */
    dmce_abandon(c); /* as if the client died: the daemon would keep its allocations */
    /* The holder dies and comes back empty. */
    harness_kill((int)holder);
    assert_int_equal(
        harness_start((int)holder, "--block-size=4M", "--max-blocks=64", "--grace-ms=60000", NULL),
        0);
    char dir[400], sb[16], want[96];
    bk_dir(dir, sizeof(dir));
    snprintf(sb, sizeof(sb), "%u", block);
    struct run r;
    CTL(&r, "blocks", "--json");
    expect_json(r.out);
    for (unsigned i = 0; jelem(r.out, "blocks", i); i++)
        assert_int_not_equal(jnum(jelem(r.out, "blocks", i), "block"), block); /* gone */
    run_free(&r);

    /* restore BLOCK --dir: the set memd-<holder> says which daemon. */
    CTL(&r, "restore", sb, "--dir", dir);
    expect_exit(&r, 0);
    expect_in(r.out, "restore done: 1 block(s)");
    snprintf(want, sizeof(want), "memd[%u]", holder);
    expect_in(r.out, want);
    run_free(&r);
    assert_int_equal(primary_from_blocks(block), holder);
    /* The bytes, under the same address, for a new client. */
    dmce_client_t *v = client(DMCE_CONNECT_NO_DISPATCHER);
    expect_pattern(v, a, MIB, 5);

    /* A second restore of a block it holds is refused, with the daemon's reason. */
    CTL(&r, "restore", sb, "--dir", dir, "--to", "1");
    expect_exit(&r, 1);
    expect_in(r.err, "restore on memd[");
    expect_in(r.err, "failed");
    run_free(&r);
    dmce_disconnect(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(usage_and_help, setup_none, teardown),
        cmocka_unit_test_setup_teardown(no_cluster, setup_none, teardown),
        cmocka_unit_test_setup_teardown(cluster_views, setup_three, teardown),
        cmocka_unit_test_setup_teardown(migrate_block, setup_three, teardown),
        cmocka_unit_test_setup_teardown(migrate_to_node, setup_three_nodes, teardown),
        cmocka_unit_test_setup_teardown(drain_daemon, setup_three, teardown),
        cmocka_unit_test_setup_teardown(watch_until_sigterm, setup_three, teardown),
        cmocka_unit_test_setup_teardown(without_dispatcher, setup_alone, teardown),
        cmocka_unit_test_setup_teardown(backup_then_verify, setup_backup, teardown_backup),
        cmocka_unit_test_setup_teardown(verify_finds_corruption, setup_backup, teardown_backup),
        cmocka_unit_test_setup_teardown(restore_into_daemon, setup_backup_one, teardown_backup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
