/*
 * bench_peers.c - dmce-bench-peers: Redis GET/SET and memcached get/set
 * over their Unix sockets, timed by the same frame as dmce (bench.h).
 *
 * A small client of our own so that the peers are measured exactly like
 * dmce: one request, wait for the whole reply, next request (no
 * pipelining), the same clock reads, the same histogram, the same client
 * processes. It speaks just enough of each protocol:
 *   Redis (RESP):  *2 GET key        -> $N value
 *                  *3 SET key value  -> +OK
 *   memcached (text protocol):
 *                  get key           -> VALUE key 0 N, value, END
 *                  set key 0 0 N     -> STORED
 * Requests are built once; a reply is read with blocking read() until it
 * has the exact expected length, and its header and trailer are compared
 * with the expected bytes after every read, so an error reply ("-ERR",
 * "SERVER_ERROR", a miss) stops the benchmark with the server's words
 * instead of hanging. Value bytes are compared once, in the sanity check.
 *
 * Each client process uses its own key (dmce-perf:PID:CLIENT), stored
 * with a pattern in setup; get then reads it back and compares.
 *
 * --op takes a comma-separated list (get,set,mix): one result per op, each
 * with its own setup. mix is 90% get, 10% set (every tenth op a set).
 *
 * Result: area "msmp" (or --area, e.g. "store"), bench "get", "set" or
 * "mix", impl "redis" or "memcached", params size and clients: the same
 * rows as dmce-bench-msmp and dmce-bench-store.
 *
 * Exit status: 0 ok, 1 the server failed or answered unexpectedly, 2 bad
 * usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench.h"
#include "util.h"

#define PROG "dmce-bench-peers"
#define MAX_SIZE (UINT64_C(64) << 20)
#define IO_TIMEOUT_S 10

typedef enum { PEER_REDIS, PEER_MEMCACHED } peer_t;
typedef enum { OP_GET, OP_SET, OP_MIX } peer_op_t;
#define MAX_OPS 8

typedef struct peer_ctx {
    /* options */
    peer_t peer;
    int peer_set;
    const char *socket;
    const char *area;
    uint64_t size;
    peer_op_t ops[MAX_OPS]; /* --op list */
    unsigned nops;
    peer_op_t op; /* the case being run */
    /* per client process; owner: setup, released by teardown */
    int fd;
    char key[64];
    char *set_req, *get_req; /* prebuilt requests */
    size_t set_len, get_len;
    size_t set_value_off;     /* where the value starts inside set_req */
    char *get_hdr, *get_tail; /* expected reply around the value */
    size_t get_hdr_len, get_tail_len;
    const char *set_reply;
    char *reply; /* receive buffer: a whole get reply */
    size_t reply_cap;
} peer_ctx_t;

static int set_target(void *u, const char *v)
{
    peer_ctx_t *x = u;
    if (strcmp(v, "redis") == 0) {
        x->peer = PEER_REDIS;
    } else if (strcmp(v, "memcached") == 0) {
        x->peer = PEER_MEMCACHED;
    } else {
        fprintf(stderr, PROG ": --target: expected redis or memcached, got '%s'\n", v);
        return -1;
    }
    x->peer_set = 1;
    return 0;
}

static int set_socket(void *u, const char *v)
{
    ((peer_ctx_t *)u)->socket = v;
    return 0;
}

static int set_size(void *u, const char *v)
{
    if (dmce_bench_parse_size(v, 1, MAX_SIZE, &((peer_ctx_t *)u)->size) < 0) {
        fprintf(stderr, PROG ": --size: expected 1..64M bytes (K/M suffix), got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_area(void *u, const char *v)
{
    ((peer_ctx_t *)u)->area = v;
    return 0;
}

static int set_op(void *u, const char *v)
{
    peer_ctx_t *x = u;
    x->nops = 0;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        peer_op_t op;
        if ((n == 3 && strncmp(p, "get", 3) == 0) || (n == 4 && strncmp(p, "read", 4) == 0))
            op = OP_GET;
        else if ((n == 3 && strncmp(p, "set", 3) == 0) || (n == 5 && strncmp(p, "write", 5) == 0))
            op = OP_SET;
        else if (n == 3 && strncmp(p, "mix", 3) == 0)
            op = OP_MIX;
        else {
            fprintf(stderr, PROG ": --op: expected a list of get, set, mix; got '%s'\n", v);
            return -1;
        }
        if (x->nops == MAX_OPS) {
            fprintf(stderr, PROG ": --op: at most %d ops\n", MAX_OPS);
            return -1;
        }
        x->ops[x->nops++] = op;
        p += n;
        if (*p == ',')
            p++;
    }
    if (x->nops == 0) {
        fprintf(stderr, PROG ": --op: empty list\n");
        return -1;
    }
    return 0;
}

static const char *const op_names[] = {[OP_GET] = "get", [OP_SET] = "set", [OP_MIX] = "mix"};

static const char *peer_name(const peer_ctx_t *x)
{
    return x->peer == PEER_REDIS ? "redis" : "memcached";
}

/* Print what the server said instead of what we expected (first line). */
static void show_unexpected(const peer_ctx_t *x, const char *got, size_t n)
{
    size_t len = 0;
    while (len < n && len < 120 && got[len] != '\r' && got[len] != '\n')
        len++;
    fprintf(stderr, PROG ": %s answered unexpectedly: \"%.*s\"\n", peer_name(x), (int)len, got);
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Read a reply of exactly hdr_len + body_len + tail_len bytes into
 * x->reply; header and trailer must equal hdr / tail. -EPROTO on anything
 * else (reported), -ETIMEDOUT / -ECONNRESET / -errno on I/O trouble.
 */
static int read_reply(peer_ctx_t *x, const char *hdr, size_t hdr_len, size_t body_len,
                      const char *tail, size_t tail_len)
{
    const size_t total = hdr_len + body_len + tail_len;
    size_t n = 0;
    while (n < total) {
        ssize_t r = read(x->fd, x->reply + n, total - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
        }
        if (r == 0)
            return -ECONNRESET;
        n += (size_t)r;
        size_t h = n < hdr_len ? n : hdr_len;
        if (memcmp(x->reply, hdr, h) != 0) {
            show_unexpected(x, x->reply, n);
            return -EPROTO;
        }
    }
    if (tail_len && memcmp(x->reply + hdr_len + body_len, tail, tail_len) != 0) {
        show_unexpected(x, x->reply + hdr_len + body_len, tail_len);
        return -EPROTO;
    }
    return 0;
}

static int do_set(peer_ctx_t *x)
{
    int rc = send_all(x->fd, x->set_req, x->set_len);
    if (rc < 0)
        return rc;
    return read_reply(x, x->set_reply, strlen(x->set_reply), 0, NULL, 0);
}

static int do_get(peer_ctx_t *x)
{
    int rc = send_all(x->fd, x->get_req, x->get_len);
    if (rc < 0)
        return rc;
    return read_reply(x, x->get_hdr, x->get_hdr_len, x->size, x->get_tail, x->get_tail_len);
}

static void peer_teardown(void *p, unsigned client)
{
    peer_ctx_t *x = p;
    if (x->fd >= 0) {
        /* Leave nothing behind in the server: delete the key, ignore the reply. */
        char del[128];
        int n = x->peer == PEER_REDIS
                    ? snprintf(del, sizeof(del), "*2\r\n$3\r\nDEL\r\n$%zu\r\n%s\r\n",
                               strlen(x->key), x->key)
                    : snprintf(del, sizeof(del), "delete %s\r\n", x->key);
        if (send_all(x->fd, del, (size_t)n) == 0) {
            char buf[64];
            ssize_t r = read(x->fd, buf, sizeof(buf));
            (void)r;
        }
        close(x->fd);
        x->fd = -1;
    }
    free(x->set_req);
    free(x->get_req);
    free(x->get_hdr);
    free(x->get_tail);
    free(x->reply);
    x->set_req = x->get_req = x->get_hdr = x->get_tail = x->reply = NULL;
    (void)client;
}

/* Heap copy of a formatted string; *len gets its length. */
static char *fmt_alloc(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *fmt_alloc(size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    if (len)
        *len = (size_t)n;
    return s;
}

static int build_requests(peer_ctx_t *x)
{
    size_t klen = strlen(x->key), head_len;
    char *head;
    if (x->peer == PEER_REDIS) {
        head = fmt_alloc(&head_len, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%llu\r\n", klen, x->key,
                         (unsigned long long)x->size);
        x->get_req = fmt_alloc(&x->get_len, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", klen, x->key);
        x->get_hdr = fmt_alloc(&x->get_hdr_len, "$%llu\r\n", (unsigned long long)x->size);
        x->get_tail = fmt_alloc(&x->get_tail_len, "\r\n");
        x->set_reply = "+OK\r\n";
    } else {
        head = fmt_alloc(&head_len, "set %s 0 0 %llu\r\n", x->key, (unsigned long long)x->size);
        x->get_req = fmt_alloc(&x->get_len, "get %s\r\n", x->key);
        x->get_hdr =
            fmt_alloc(&x->get_hdr_len, "VALUE %s 0 %llu\r\n", x->key, (unsigned long long)x->size);
        x->get_tail = fmt_alloc(&x->get_tail_len, "\r\nEND\r\n");
        x->set_reply = "STORED\r\n";
    }
    if (!head || !x->get_req || !x->get_hdr || !x->get_tail) {
        free(head);
        return -ENOMEM;
    }
    /* set request: head, value, CRLF */
    x->set_len = head_len + x->size + 2;
    x->set_req = malloc(x->set_len);
    x->reply_cap = x->get_hdr_len + x->size + x->get_tail_len;
    x->reply = malloc(x->reply_cap);
    if (!x->set_req || !x->reply) {
        free(head);
        return -ENOMEM;
    }
    memcpy(x->set_req, head, head_len);
    free(head);
    x->set_value_off = head_len;
    memcpy(x->set_req + x->set_len - 2, "\r\n", 2);
    return 0;
}

static int peer_setup(void *p, unsigned client)
{
    peer_ctx_t *x = p;
    x->fd = dmce_unix_connect(x->socket);
    if (x->fd < 0) {
        int rc = x->fd;
        fprintf(stderr, PROG ": client %u: connect %s: %s\n", client, x->socket, strerror(-rc));
        x->fd = -1;
        return rc;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(x->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(x->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    snprintf(x->key, sizeof(x->key), "dmce-perf:%ld:%u", (long)getpid(), client);
    int rc = build_requests(x);
    if (rc < 0) {
        fprintf(stderr, PROG ": client %u: out of memory\n", client);
        goto fail;
    }
    unsigned char *value = (unsigned char *)x->set_req + x->set_value_off;
    for (uint64_t i = 0; i < x->size; i++)
        value[i] = (unsigned char)('a' + (i * 131u + client) % 26u);
    /* Sanity check: store, read back, compare the value bytes. */
    if ((rc = do_set(x)) < 0 || (rc = do_get(x)) < 0) {
        fprintf(stderr, PROG ": client %u: sanity check against %s: %s\n", client, peer_name(x),
                strerror(-rc));
        goto fail;
    }
    if (memcmp(x->reply + x->get_hdr_len, value, x->size) != 0) {
        fprintf(stderr, PROG ": client %u: %s returned other bytes than were stored\n", client,
                peer_name(x));
        rc = -EPROTO;
        goto fail;
    }
    return 0;
fail:
    peer_teardown(x, client);
    return rc;
}

static int peer_op(void *p, uint64_t i)
{
    peer_ctx_t *x = p;
    if (x->op == OP_SET || (x->op == OP_MIX && i % 10 == 9)) {
        x->set_req[x->set_value_off] = (char)('a' + i % 26u); /* not the same bytes every time */
        return do_set(x);
    }
    return do_get(x);
}

int main(int argc, char **argv)
{
    peer_ctx_t x = {.size = 64, .fd = -1, .area = "msmp", .ops = {OP_GET}, .nops = 1};
    static const dmce_bench_opt_t own[] = {
        {"target", "redis|memcached", "the server to measure (required)", set_target},
        {"socket", "PATH", "its Unix socket (required)", set_socket},
        {"size", "BYTES", "value size (default 64)", set_size},
        {"op", "get|set|mix[,...]", "operations, one result each (default get)", set_op},
        {"area", "NAME", "area of the results (default msmp)", set_area},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "Redis GET/SET or memcached get/set over a Unix socket, timed like dmce.",
        .opts = own,
        .nopts = sizeof(own) / sizeof(own[0]),
        .user = &x,
        .ops = 10000,
        .warmup = 1000,
        .reps = 5,
        .duration_s = 10.0,
    };
    dmce_bench_opts_t o;
    int rc = dmce_bench_parse(&prog, argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    if (!x.peer_set || !x.socket) {
        fprintf(stderr, PROG ": --target and --socket are required\n");
        return 2;
    }
    int failed = 0;
    for (unsigned k = 0; k < x.nops; k++) {
        dmce_bench_case_t c;
        x.op = x.ops[k];
        if (dmce_bench_case_init(&c, x.area, op_names[x.op], peer_name(&x)) < 0 ||
            dmce_perf_param_num(&c.res, "size", (double)x.size) < 0 ||
            dmce_perf_param_num(&c.res, "clients", o.clients) < 0) {
            fprintf(stderr, PROG ": bad --area name '%s'\n", x.area);
            return 2;
        }
        c.res.bytes_per_op = (double)x.size;
        snprintf(c.res.note, sizeof(c.res.note),
                 "%s over a Unix socket, our client, one key per client%s",
                 x.peer == PEER_REDIS ? "RESP" : "memcached text protocol",
                 x.op == OP_MIX ? "; every tenth op a set" : "");
        c.ctx = &x;
        c.setup = peer_setup;
        c.op = peer_op;
        c.teardown = peer_teardown;
        if (dmce_bench_run(&c, &o) < 0)
            failed = 1; /* the next op may still work: go on */
    }
    return failed;
}
