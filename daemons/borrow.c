/*
 * dmce-borrow - a 32-bit process borrows more memory than it can address
 * (seed 002 [0041], FIG. 2): it reserves and allocates --total bytes (6 GiB
 * by default) across the memory daemons of a local cluster, fills all of it
 * with a known pattern through mapped windows, reads it all back through
 * dmce_read and again through windows, verifies every byte, frees it, and
 * reports sizes, daemons used and GB/s.
 *
 * The pattern: one pseudo-random chunk-sized buffer, with the first 8
 * bytes of every 4 KiB page replaced by a stamp (chunk number, page
 * number), so that a page copied to the wrong place or a stale window is
 * caught, while the bandwidth measured stays that of memcpy/memcmp.
 *
 * Built for 64-bit and (in <build>/m32) for 32-bit; the README runs the
 * 32-bit one. It prints the facts that show it could not have mapped the
 * whole amount at once: its pointer width, its address space, and the most
 * bytes the Memory Cache ever had mapped.
 *
 * Exit status: 0 all verified, 1 a dmce call failed, 2 a byte differed,
 * 64 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <dmce/dmce.h>

#define PROG "dmce-borrow"
#define PAGE 4096u
#define GiB (1ull << 30)
#define MiB (1ull << 20)

typedef struct opts {
    const char *runtime_dir;
    uint64_t total, chunk, window_size;
    unsigned windows;
} opts_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    }
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [--runtime-dir DIR] [--total SIZE] [--chunk SIZE]\n"
            "                   [--window-size SIZE] [--windows N]\n"
            "  --runtime-dir DIR   the cluster's runtime directory (default $DMCE_RUNTIME_DIR)\n"
            "  --total SIZE        bytes to borrow (default 6G)\n"
            "  --chunk SIZE        bytes per allocation, a multiple of 4K (default 16M)\n"
            "  --window-size SIZE  Memory Cache window (default: libdmce's, 64M when 32-bit)\n"
            "  --windows N         windows kept mapped (default: libdmce's, 8 when 32-bit)\n");
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void stamp(uint8_t *p, uint64_t n, uint32_t chunk)
{
    for (uint64_t pg = 0; pg * PAGE < n; pg++) {
        uint32_t s[2] = {chunk, (uint32_t)pg};
        memcpy(p + pg * PAGE, s, sizeof(s));
    }
}

/* Compare a chunk's bytes (from offset `from`, n bytes) with the pattern. */
static int verify(const uint8_t *p, const uint8_t *pat, uint64_t from, uint64_t n, uint32_t chunk)
{
    for (uint64_t o = 0; o < n;) {
        uint64_t at = from + o;
        uint64_t pg_end = (at / PAGE + 1) * PAGE;
        uint64_t len = (pg_end - at < n - o) ? pg_end - at : n - o;
        if (at % PAGE < 8) { /* the stamp */
            uint32_t s[2] = {chunk, (uint32_t)(at / PAGE)};
            uint64_t k = 8 - at % PAGE < len ? 8 - at % PAGE : len;
            if (memcmp(p + o, (const uint8_t *)s + at % PAGE, (size_t)k) != 0)
                return -1;
            o += k;
            at += k;
            len -= k;
        }
        if (len && memcmp(p + o, pat + at, (size_t)len) != 0)
            return -1;
        o += len;
    }
    return 0;
}

static void track_peak(dmce_client_t *c, uint64_t *peak)
{
    dmce_client_stats_t cs;
    if (dmce_client_stats(c, &cs) == 0 && cs.bytes_mapped > *peak)
        *peak = cs.bytes_mapped;
}

int main(int argc, char **argv)
{
    opts_t o = {.runtime_dir = getenv("DMCE_RUNTIME_DIR"), .total = 6 * GiB, .chunk = 16 * MiB};
    static const struct option lo[] = {{"runtime-dir", required_argument, 0, 'd'},
                                       {"total", required_argument, 0, 't'},
                                       {"chunk", required_argument, 0, 'c'},
                                       {"window-size", required_argument, 0, 'w'},
                                       {"windows", required_argument, 0, 'n'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    int ch;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o.runtime_dir = optarg; break;
        case 't': if (parse_size(optarg, &o.total)) goto bad; break;
        case 'c': if (parse_size(optarg, &o.chunk)) goto bad; break;
        case 'w': if (parse_size(optarg, &o.window_size)) goto bad; break;
        case 'n': if (parse_size(optarg, &v) || v == 0 || v > 1u << 20) goto bad;
                  o.windows = (unsigned)v; break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || !o.runtime_dir || o.chunk == 0 || o.chunk % PAGE ||
        o.chunk > SIZE_MAX / 2 || o.total < o.chunk)
        goto bad;

    /* What this process can address. */
    unsigned bits = (unsigned)sizeof(void *) * 8;
    double space = bits == 32 ? 4.0 : 16.0 * 1024 * 1024 * 1024; /* GiB */
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    printf("%s: a %u-bit process: pointers of %u bits, address space %s GiB", PROG, bits, bits,
           bits == 32 ? "4" : "16 Gi");
    if (rl.rlim_cur != RLIM_INFINITY)
        printf(", RLIMIT_AS %.2f GiB", (double)rl.rlim_cur / (double)GiB);
    printf("; borrowing %.2f GiB\n", (double)o.total / (double)GiB);
    if (bits == 32 && (double)o.total / (double)GiB >= space)
        printf("%s: %.2f GiB cannot be mapped at once by this process: it goes through "
               "windows\n",
               PROG, (double)o.total / (double)GiB);

    dmce_connect_opts_t co = {.runtime_dir = o.runtime_dir, .window_size = o.window_size,
                              .max_windows = o.windows};
    dmce_client_t *c;
    int r = dmce_connect(&co, &c);
    if (r < 0) {
        fprintf(stderr, "%s: connect to %s: %s\n", PROG, o.runtime_dir, dmce_strerror(r));
        return 1;
    }
    unsigned nd = dmce_daemon_count(c);
    uint64_t granted = 0;
    r = dmce_setup(c, o.total, 0, NULL, &granted);
    if (r < 0) {
        fprintf(stderr, "%s: cannot reserve %.2f GiB over %u daemon(s): %s\n", PROG,
                (double)o.total / (double)GiB, nd, dmce_strerror(r));
        dmce_disconnect(c);
        return 1;
    }
    printf("%s: reserved %.2f GiB over %u memory daemon(s)\n", PROG, (double)granted / (double)GiB,
           nd);

    size_t nchunks = (size_t)(o.total / o.chunk);
    size_t csz = (size_t)o.chunk;
    dmce_addr_t *addr = calloc(nchunks, sizeof(*addr));
    uint8_t *pat = malloc(csz), *buf = malloc(4 * MiB);
    if (!addr || !pat || !buf) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i + 8 <= csz; i += 8) {
        uint64_t x = xorshift(&seed);
        memcpy(pat + i, &x, 8);
    }

    /* Allocate: libdmce spreads the chunks over the daemons. */
    unsigned per_daemon[DMCE_MAX_DAEMONS] = {0};
    double t0 = now_s();
    for (size_t k = 0; k < nchunks; k++) {
        r = dmce_malloc(c, o.chunk, &addr[k]);
        if (r < 0) {
            fprintf(stderr, "%s: malloc of chunk %zu (%.0f MiB): %s\n", PROG, k,
                    (double)o.chunk / (double)MiB, dmce_strerror(r));
            return 1;
        }
        int d = dmce_daemon_of(c, addr[k]);
        if (d >= 0)
            per_daemon[d]++;
    }
    double t_alloc = now_s() - t0;
    printf("%s: allocated %zu chunks of %.0f MiB in %.2f s:", PROG, nchunks,
           (double)o.chunk / (double)MiB, t_alloc);
    unsigned used = 0;
    for (unsigned d = 0; d < nd; d++) {
        dmce_stats_t st;
        if (dmce_daemon_stats(c, d, &st) == 0)
            printf(" memd[%u]=%.2f GiB", st.daemon_id,
                   (double)per_daemon[d] * (double)o.chunk / (double)GiB);
        used += per_daemon[d] > 0;
    }
    printf(" (%u daemons used)\n", used);

    /*
     * First touch. Fresh pages cost a fault and zeroing each (~0.4 GB/s on
     * the reference machine): the daemons' prefault threads pay it in the
     * background. Wait for them, bounded, and report it as its own figure
     * so that the bandwidths below are those of memory already in place.
     */
    t0 = now_s();
    uint64_t pending = 0, last_print = 0;
    for (;;) {
        dmce_stats_t ps;
        if (dmce_stats(c, &ps) < 0)
            break;
        pending = ps.prefault_pending;
        if (pending == 0 || now_s() - t0 > 600)
            break;
        if ((uint64_t)(now_s() - t0) >= last_print + 2) {
            last_print = (uint64_t)(now_s() - t0);
            printf("%s: daemons still faulting in fresh memory: %.2f GiB to go\n", PROG,
                   (double)pending / (double)GiB);
            fflush(stdout);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double t_touch = now_s() - t0 + t_alloc;
    if (pending)
        printf("%s: prefault not finished after 600 s (%.2f GiB left): first touches remain in "
               "the figures below\n",
               PROG, (double)pending / (double)GiB);
    else
        printf("%s: first touch of %.2f GiB paid by the daemons' prefault threads, done %.2f s "
               "after the first malloc (%.2f GB/s)\n",
               PROG, (double)o.total / (double)GiB, t_touch,
               (double)o.total / 1e9 / (t_touch > 0 ? t_touch : 1));

    uint64_t peak = 0;
    int bad = 0;
    /* 1. Fill through mapped windows. */
    t0 = now_s();
    for (size_t k = 0; k < nchunks && !bad; k++) {
        uint8_t *p;
        r = dmce_map(c, addr[k], csz, 0, (void **)&p);
        if (r < 0) {
            fprintf(stderr, "%s: map chunk %zu: %s\n", PROG, k, dmce_strerror(r));
            return 1;
        }
        memcpy(p, pat, csz);
        stamp(p, o.chunk, (uint32_t)k);
        track_peak(c, &peak);
        dmce_unmap(c, p);
    }
    double t_fill = now_s() - t0;

    /* 2. Read back through dmce_read. */
    t0 = now_s();
    for (size_t k = 0; k < nchunks && !bad; k++) {
        for (uint64_t off = 0; off < o.chunk; off += 4 * MiB) {
            uint64_t n = o.chunk - off < 4 * MiB ? o.chunk - off : 4 * MiB;
            r = dmce_read(c, addr[k] + off, buf, (size_t)n);
            if (r < 0) {
                fprintf(stderr, "%s: read chunk %zu: %s\n", PROG, k, dmce_strerror(r));
                return 1;
            }
            if (verify(buf, pat, off, n, (uint32_t)k) != 0) {
                fprintf(stderr, "%s: chunk %zu differs at offset %llu (dmce_read)\n", PROG, k,
                        (unsigned long long)off);
                bad = 1;
                break;
            }
        }
    }
    double t_read = now_s() - t0;
    track_peak(c, &peak);

    /* 3. Read back through mapped windows. */
    t0 = now_s();
    for (size_t k = 0; k < nchunks && !bad; k++) {
        uint8_t *p;
        r = dmce_map(c, addr[k], csz, 0, (void **)&p);
        if (r < 0) {
            fprintf(stderr, "%s: map chunk %zu: %s\n", PROG, k, dmce_strerror(r));
            return 1;
        }
        if (verify(p, pat, 0, o.chunk, (uint32_t)k) != 0) {
            fprintf(stderr, "%s: chunk %zu differs (window)\n", PROG, k);
            bad = 1;
        }
        track_peak(c, &peak);
        dmce_unmap(c, p);
    }
    double t_map = now_s() - t0;

    dmce_client_stats_t cs;
    dmce_client_stats(c, &cs);
    for (size_t k = 0; k < nchunks; k++) {
        r = dmce_free(c, addr[k]);
        if (r < 0) {
            fprintf(stderr, "%s: free chunk %zu: %s\n", PROG, k, dmce_strerror(r));
            return 1;
        }
    }
    dmce_stats_t st;
    dmce_stats(c, &st);
    double gb = (double)nchunks * (double)o.chunk / 1e9;
    printf("%s: fill through windows   %.2f GB/s (%.2f s)\n", PROG, gb / t_fill, t_fill);
    printf("%s: read with dmce_read    %.2f GB/s (%.2f s)\n", PROG, gb / t_read, t_read);
    printf("%s: read through windows   %.2f GB/s (%.2f s)\n", PROG, gb / t_map, t_map);
    printf("%s: Memory Cache: window %.0f MiB, at most %llu kept; %llu maps, %llu evictions; "
           "peak mapped %.0f MiB of %.2f GiB borrowed\n",
           PROG, cs.window_size ? (double)cs.window_size / (double)MiB : 0.0,
           (unsigned long long)cs.max_windows, (unsigned long long)cs.window_misses,
           (unsigned long long)cs.window_evictions, (double)peak / (double)MiB,
           (double)o.total / (double)GiB);
    printf("%s: freed %zu chunks; bytes in use on the daemons now: %llu\n", PROG, nchunks,
           (unsigned long long)st.bytes_used);
    r = dmce_disconnect(c);
    free(addr);
    free(pat);
    free(buf);
    if (bad)
        return 2;
    if (r < 0) {
        fprintf(stderr, "%s: disconnect: %s\n", PROG, dmce_strerror(r));
        return 1;
    }
    printf("%s: ok: %.2f GiB written, read back twice and verified\n", PROG,
           (double)o.total / (double)GiB);
    return 0;
bad:
    usage(stderr);
    return 64;
}
