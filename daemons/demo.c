/*
 * dmce-demo - the README's main job until the 32-bit borrowing demo lands:
 * connect to every memory daemon of a local cluster, reserve memory across
 * them, allocate on each, write a known pattern, read it back, verify,
 * free, and print what happened. Uses only the public API (libdmce).
 *
 *   dmce-demo [--runtime-dir DIR] [--total BYTES] [--chunks N]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dmce/dmce.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t pattern(uint64_t chunk, uint64_t i)
{
    return (uint8_t)((chunk * 131u + i * 7u + (i >> 9)) & 0xff);
}

static int fail(const char *what, int err)
{
    fprintf(stderr, "dmce-demo: %s: %s (%s)\n", what, dmce_strerror(err), dmce_err_name(err));
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("DMCE_RUNTIME_DIR");
    uint64_t total = 64ull << 20;
    unsigned chunks = 8;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runtime-dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--total") && i + 1 < argc)
            total = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--chunks") && i + 1 < argc)
            chunks = (unsigned)strtoul(argv[++i], NULL, 0);
        else {
            fprintf(stderr, "usage: %s [--runtime-dir DIR] [--total BYTES] [--chunks N]\n",
                    argv[0]);
            return 64;
        }
    }
    if (!dir || chunks == 0 || total < chunks) {
        fprintf(stderr, "dmce-demo: need --runtime-dir (or DMCE_RUNTIME_DIR), chunks >= 1\n");
        return 64;
    }

    dmce_connect_opts_t opts = {.runtime_dir = dir};
    dmce_client_t *c;
    int r = dmce_connect(&opts, &c);
    if (r < 0)
        return fail("connect", r);
    unsigned nd = dmce_daemon_count(c);
    printf("connected to %u memory daemon(s) in %s\n", nd, dir);

    uint64_t granted = 0;
    r = dmce_setup(c, total, 0, NULL, &granted);
    if (r < 0)
        return fail("setup", r);
    printf("setup: reserved %" PRIu64 " MiB across %u daemon(s)\n", granted >> 20, nd);

    uint64_t size = total / chunks;
    dmce_addr_t *addrs = calloc(chunks, sizeof(*addrs));
    uint8_t *buf = malloc(size), *back = malloc(size);
    unsigned *per_daemon = calloc(nd, sizeof(unsigned));
    if (!addrs || !buf || !back || !per_daemon)
        return fail("memory", -12);

    double t0 = now_s();
    for (unsigned k = 0; k < chunks; k++) {
        r = dmce_malloc(c, size, &addrs[k]);
        if (r < 0)
            return fail("malloc", r);
        int d = dmce_daemon_of(c, addrs[k]);
        char txt[DMCE_ADDR_STRLEN];
        dmce_addr_format(dmce_client_layout(c), addrs[k], txt, sizeof(txt));
        dmce_stats_t st;
        dmce_daemon_stats(c, (unsigned)d, &st);
        per_daemon[d]++;
        printf("malloc %" PRIu64 " KiB -> %s on memd[%u] (pid %u)\n", size >> 10, txt,
               st.daemon_id, st.pid);
    }
    double t1 = now_s();
    for (unsigned k = 0; k < chunks; k++) {
        for (uint64_t i = 0; i < size; i++)
            buf[i] = pattern(k, i);
        r = dmce_write(c, addrs[k], buf, size);
        if (r < 0)
            return fail("write", r);
    }
    double t2 = now_s();
    uint64_t bad = 0;
    for (unsigned k = 0; k < chunks; k++) {
        r = dmce_read(c, addrs[k], back, size);
        if (r < 0)
            return fail("read", r);
        for (uint64_t i = 0; i < size; i++)
            bad += back[i] != pattern(k, i);
    }
    double t3 = now_s();
    double mib = (double)(size * chunks) / (1 << 20);
    printf("wrote %.0f MiB in %.3f s (%.0f MiB/s), read back and verified in %.3f s (%.0f MiB/s):"
           " %s\n",
           mib, t2 - t1, mib / (t2 - t1), t3 - t2, mib / (t3 - t2),
           bad ? "MISMATCH" : "all bytes match");
    for (unsigned d = 0; d < nd; d++) {
        dmce_stats_t st;
        if (dmce_daemon_stats(c, d, &st) == 0)
            printf("memd[%u]: %u allocation(s) from this run, %" PRIu64 " KiB used, %" PRIu64
                   " blocks, ops malloc=%" PRIu64 " write=%" PRIu64 " read=%" PRIu64 "\n",
                   st.daemon_id, per_daemon[d], st.bytes_used >> 10, st.blocks, st.ops_malloc,
                   st.ops_write, st.ops_read);
    }
    for (unsigned k = 0; k < chunks; k++) {
        r = dmce_free(c, addrs[k]);
        if (r < 0)
            return fail("free", r);
    }
    dmce_stats_t all;
    if (dmce_stats(c, &all) == 0)
        printf("freed %u allocation(s); bytes in use now: %" PRIu64 " (malloc took %.1f ms)\n",
               chunks, all.bytes_used, (t1 - t0) * 1e3);
    r = dmce_disconnect(c);
    if (r < 0)
        return fail("disconnect", r);
    unsigned used_daemons = 0;
    for (unsigned d = 0; d < nd; d++)
        used_daemons += per_daemon[d] > 0;
    free(addrs);
    free(buf);
    free(back);
    free(per_daemon);
    if (bad) {
        fprintf(stderr, "dmce-demo: %" PRIu64 " bytes differ\n", bad);
        return 1;
    }
    printf("ok: %u allocation(s) on %u daemon(s), data verified\n", chunks, used_daemons);
    return 0;
}
