/*
 * bench_msmp.c - dmce-bench-msmp: latency and throughput of dmce_read /
 * dmce_write over MSMP, one or several client processes.
 *
 * Uses only the public client API (dmce/client.h); the timing, warm-up,
 * repetitions, client processes and output come from the common frame
 * (bench.h), the same as for the peers (bench_peers.c), so dmce and
 * Redis/memcached are measured by one loop into one kind of histogram.
 *
 * Each client process: connect (every memd-*.sock of --runtime-dir, or
 * one --socket) -> dmce_setup(max(16 MiB, 2 x size)) -> dmce_malloc(size)
 * -> write a pattern and read it back (sanity check) -> warm-up -> timed
 * repetitions -> dmce_free -> dmce_disconnect. dmce_malloc spreads the
 * clients' allocations round robin over the daemons.
 *
 * --access msmp (default) connects with DMCE_CONNECT_NO_MAP: every op is
 * an MSMP request and response (the out-of-process path), carried by the
 * shared-memory rings libdmce sets up by default (--transport ring; setup
 * checks that the daemon counts a ring client) or, with --transport
 * socket, by the Unix socket (DMCE_CONNECT_NO_RING). --access mapped
 * connects as an application does
 * by default: local blocks are mapped (fds passed over the socket) and
 * dmce_read / dmce_write copy through the mapping after checking the
 * block's allocation map, with no message (the in-process path).
 *
 * Result: area "msmp", bench "get" (--op read) or "set" (--op write), impl
 * "dmce" (msmp access over the rings), "dmce-socket" (over the socket) or
 * "dmce-mapped", params size and clients; with one client over msmp its
 * limit is the Unix socket round trip of the same size (limits area,
 * unix_rtt[size=N]): the bound of the socket path, and what the rings
 * are there to beat.
 *
 * Exit status: 0 ok, 1 a dmce call failed (message from dmce_strerror),
 * 2 bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dmce/client.h>
#include <dmce/error.h>

#include "bench.h"

#define PROG "dmce-bench-msmp"
#define MIN_SETUP_BYTES (UINT64_C(16) << 20)
#define MAX_SIZE (UINT64_C(64) << 20)

typedef struct msmp_ctx {
    /* options */
    const char *runtime_dir;
    const char *socket;
    uint64_t size;
    int write;
    int mapped;
    int socket_only; /* --transport socket: DMCE_CONNECT_NO_RING */
    /* per client process */
    dmce_client_t *client; /* owner: setup; released by teardown */
    dmce_addr_t addr;
    int allocated;
    unsigned char *buf, *back;
} msmp_ctx_t;

static int set_runtime_dir(void *u, const char *v)
{
    ((msmp_ctx_t *)u)->runtime_dir = v;
    return 0;
}

static int set_socket(void *u, const char *v)
{
    ((msmp_ctx_t *)u)->socket = v;
    return 0;
}

static int set_size(void *u, const char *v)
{
    if (dmce_bench_parse_size(v, 1, MAX_SIZE, &((msmp_ctx_t *)u)->size) < 0) {
        fprintf(stderr, PROG ": --size: expected 1..64M bytes (K/M suffix), got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_op(void *u, const char *v)
{
    msmp_ctx_t *x = u;
    if (strcmp(v, "read") == 0 || strcmp(v, "get") == 0) {
        x->write = 0;
    } else if (strcmp(v, "write") == 0 || strcmp(v, "set") == 0) {
        x->write = 1;
    } else {
        fprintf(stderr, PROG ": --op: expected read or write, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_access(void *u, const char *v)
{
    msmp_ctx_t *x = u;
    if (strcmp(v, "msmp") == 0) {
        x->mapped = 0;
    } else if (strcmp(v, "mapped") == 0) {
        x->mapped = 1;
    } else {
        fprintf(stderr, PROG ": --access: expected msmp or mapped, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static int set_transport(void *u, const char *v)
{
    msmp_ctx_t *x = u;
    if (strcmp(v, "ring") == 0) {
        x->socket_only = 0;
    } else if (strcmp(v, "socket") == 0) {
        x->socket_only = 1;
    } else {
        fprintf(stderr, PROG ": --transport: expected ring or socket, got '%s'\n", v);
        return -1;
    }
    return 0;
}

static const char *msmp_strerror(int err)
{
    return dmce_strerror(err);
}

static void msmp_teardown(void *p, unsigned client)
{
    msmp_ctx_t *x = p;
    if (x->allocated) {
        int rc = dmce_free(x->client, x->addr);
        if (rc < 0)
            fprintf(stderr, PROG ": client %u: dmce_free: %s\n", client, dmce_strerror(rc));
        x->allocated = 0;
    }
    if (x->client) {
        int rc = dmce_disconnect(x->client);
        if (rc < 0)
            fprintf(stderr, PROG ": client %u: dmce_disconnect: %s\n", client, dmce_strerror(rc));
        x->client = NULL;
    }
    free(x->buf);
    free(x->back);
    x->buf = x->back = NULL;
}

static int msmp_setup(void *p, unsigned client)
{
    msmp_ctx_t *x = p;
    dmce_connect_opts_t copts;
    memset(&copts, 0, sizeof(copts));
    copts.flags = x->mapped ? 0 : DMCE_CONNECT_NO_MAP;
    if (x->socket_only)
        copts.flags |= DMCE_CONNECT_NO_RING;
    const char *socks[1] = {x->socket};
    if (x->socket) {
        copts.sockets = socks;
        copts.nsockets = 1;
    } else {
        copts.runtime_dir = x->runtime_dir;
    }
    int rc = dmce_connect(&copts, &x->client);
    if (rc < 0) {
        const char *dir = x->runtime_dir ? x->runtime_dir : getenv("DMCE_RUNTIME_DIR");
        fprintf(stderr, PROG ": client %u: dmce_connect %s: %s\n", client,
                x->socket ? x->socket
                : dir     ? dir
                          : "$DMCE_RUNTIME_DIR (unset)",
                dmce_strerror(rc));
        x->client = NULL;
        return rc;
    }
    uint64_t amount = x->size * 2 > MIN_SETUP_BYTES ? x->size * 2 : MIN_SETUP_BYTES;
    const char *what = "dmce_setup";
    if ((rc = dmce_setup(x->client, amount, 0, NULL, NULL)) < 0)
        goto fail;
    what = "dmce_malloc";
    if ((rc = dmce_malloc(x->client, x->size, &x->addr)) < 0)
        goto fail;
    x->allocated = 1;
    x->buf = malloc(x->size);
    x->back = malloc(x->size);
    what = "out of memory";
    if (!x->buf || !x->back) {
        rc = -ENOMEM;
        goto fail;
    }
    /* Sanity check: the benchmark measures ops that work. */
    for (uint64_t i = 0; i < x->size; i++)
        x->buf[i] = (unsigned char)(i * 131u + 7u + client);
    what = "dmce_write (sanity check)";
    if ((rc = dmce_write(x->client, x->addr, x->buf, x->size)) < 0)
        goto fail;
    memset(x->back, 0, x->size);
    what = "dmce_read (sanity check)";
    if ((rc = dmce_read(x->client, x->addr, x->back, x->size)) < 0)
        goto fail;
    if (memcmp(x->buf, x->back, x->size) != 0) {
        fprintf(stderr, PROG ": client %u: sanity check: read back differs from what was written\n",
                client);
        rc = -EIO;
        goto fail_quiet;
    }
    if (!x->mapped && !x->socket_only) {
        /* The "dmce" rows claim the rings: a daemon that did not offer them
         * would have left this client on the socket without a word. */
        dmce_stats_t st;
        what = "dmce_daemon_stats";
        if ((rc = dmce_daemon_of(x->client, x->addr)) < 0 ||
            (rc = dmce_daemon_stats(x->client, (unsigned)rc, &st)) < 0)
            goto fail;
        if (st.ring_clients == 0) {
            fprintf(stderr, PROG ": client %u: the daemon has no ring client: not on the rings\n",
                    client);
            rc = -EPROTO;
            goto fail_quiet;
        }
    }
    return 0;
fail:
    fprintf(stderr, PROG ": client %u: %s: %s\n", client, what, dmce_strerror(rc));
fail_quiet:
    msmp_teardown(x, client);
    return rc;
}

static int msmp_op(void *p, uint64_t i)
{
    msmp_ctx_t *x = p;
    if (x->write) {
        x->buf[0] = (unsigned char)i; /* not the same bytes every time */
        return dmce_write(x->client, x->addr, x->buf, x->size);
    }
    return dmce_read(x->client, x->addr, x->buf, x->size);
}

int main(int argc, char **argv)
{
    msmp_ctx_t x = {.size = 64};
    static const dmce_bench_opt_t own[] = {
        {"runtime-dir", "DIR", "connect to every memd-*.sock in DIR (default $DMCE_RUNTIME_DIR)",
         set_runtime_dir},
        {"socket", "PATH", "or to this one daemon socket", set_socket},
        {"size", "BYTES", "bytes per op and size of the allocation (default 64)", set_size},
        {"op", "read|write", "operation (default read)", set_op},
        {"access", "msmp|mapped", "every op a message (default), or through mapped blocks",
         set_access},
        {"transport", "ring|socket",
         "messages over the shared-memory rings (default) or the Unix socket", set_transport},
    };
    dmce_bench_prog_t prog = {
        .name = PROG,
        .summary = "dmce_read / dmce_write latency and throughput over MSMP (rings or socket).",
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
    if (x.mapped && x.socket_only) {
        fprintf(stderr, PROG ": --transport is for --access msmp\n");
        return 2;
    }
    if (x.runtime_dir && x.socket) {
        fprintf(stderr, PROG ": give --runtime-dir or --socket, not both\n");
        return 2;
    }

    dmce_bench_case_t c;
    if (dmce_bench_case_init(&c, "msmp", x.write ? "set" : "get",
                             x.mapped        ? "dmce-mapped"
                             : x.socket_only ? "dmce-socket"
                                             : "dmce") < 0 ||
        dmce_perf_param_num(&c.res, "size", (double)x.size) < 0 ||
        dmce_perf_param_num(&c.res, "clients", o.clients) < 0)
        return 2;
    c.res.bytes_per_op = (double)x.size;
    if (o.clients == 1 && !x.mapped)
        snprintf(c.res.limit, sizeof(c.res.limit), "unix_rtt[size=%llu]",
                 (unsigned long long)x.size);
    snprintf(c.res.note, sizeof(c.res.note), "dmce_%s of one allocation, %s",
             x.write ? "write" : "read",
             x.mapped        ? "through the mapped block"
             : x.socket_only ? "every op a message on the Unix socket (NO_MAP, NO_RING)"
                             : "every op a message on the shared-memory rings (NO_MAP)");
    c.ctx = &x;
    c.setup = msmp_setup;
    c.op = msmp_op;
    c.teardown = msmp_teardown;
    c.strerror = msmp_strerror;
    return dmce_bench_run(&c, &o) < 0 ? 1 : 0;
}
