/*
 * fuzz_driver.h - main() of a fuzz target built as a plain program (no
 * libFuzzer): included at the end of each fuzz_*.c under
 * #ifndef DMCE_LIBFUZZER, after the target has defined
 *   FZ_NAME     "block", ... (names the crash file)
 *   FZ_MAX_LEN  the largest input the random generator makes
 *   FZ_REPORT   optional: a function printing how deep the inputs got
 *
 * Usage: test_fuzz_NAME ITERATIONS [FILE|DIR ...]
 *   1. every file named (every regular file of a directory, sorted) is run
 *      once: the checked-in corpus and the regression inputs
 *      (tests/fuzz/regress/NAME/, findings that must stay fixed);
 *   2. ITERATIONS generated inputs: mostly mutations of those files
 *      (bit flips, interesting values in aligned words, arithmetic on
 *      words, block copies, splices, resizes), some pure random bytes.
 * Seeded (DMCE_FUZZ_SEED overrides the fixed default), so a failure
 * repeats. When an input crashes (a failed check, a signal, a sanitizer
 * report), it is written to fuzz-NAME-crash.bin in the current directory
 * and the message says where to put it as a regression input.
 *
 * Global state: the current input, for the death hook only.
 */
#ifndef DMCE_TESTS_FUZZ_DRIVER_H
#define DMCE_TESTS_FUZZ_DRIVER_H

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FZ_HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FZ_HAVE_SANITIZER 1
#endif
#endif
#ifdef FZ_HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

static const uint8_t *fzd_cur;
static size_t fzd_cur_len;
static volatile sig_atomic_t fzd_dumped;

/* Async-signal-safe: write the input that is running to the crash file. */
static void fzd_dump(void)
{
    static const char path[] = "fuzz-" FZ_NAME "-crash.bin";
    static const char msg1[] = "fuzz: input written to ";
    static const char msg2[] = " (in the test's working directory); if it is a real bug, "
                               "add it as tests/fuzz/regress/" FZ_NAME "/<name> after the fix\n";
    if (fzd_dumped || !fzd_cur)
        return;
    fzd_dumped = 1;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    size_t off = 0;
    while (off < fzd_cur_len) {
        ssize_t n = write(fd, fzd_cur + off, fzd_cur_len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    ssize_t w = write(2, msg1, sizeof msg1 - 1);
    w = write(2, path, sizeof path - 1);
    w = write(2, msg2, sizeof msg2 - 1);
    (void)w;
}

static void fzd_signal(int sig)
{
    fzd_dump();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void fzd_run(const uint8_t *p, size_t len)
{
    /* Exact-size heap copy: ASan catches a read one byte past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    if (len)
        memcpy(copy, p, len);
    fzd_cur = copy;
    fzd_cur_len = len;
    LLVMFuzzerTestOneInput(copy, len);
    fzd_cur = NULL;
    free(copy);
}

/* ---- seeds ------------------------------------------------------------------- */

typedef struct fzd_seed {
    uint8_t *p;
    size_t len;
} fzd_seed_t;

static fzd_seed_t *fzd_seeds;
static size_t fzd_nseeds, fzd_capseeds;

static void fzd_add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz: cannot open %s\n", path);
        exit(2);
    }
    size_t cap = 4096, len = 0;
    uint8_t *p = malloc(cap);
    for (size_t n; p && (n = fread(p + len, 1, cap - len, f)) > 0;) {
        len += n;
        if (len == cap)
            p = realloc(p, cap *= 2);
    }
    fclose(f);
    if (!p)
        abort();
    fzd_run(p, len);
    if (fzd_nseeds == fzd_capseeds) {
        fzd_capseeds = fzd_capseeds ? 2 * fzd_capseeds : 64;
        fzd_seeds = realloc(fzd_seeds, fzd_capseeds * sizeof *fzd_seeds);
        if (!fzd_seeds)
            abort();
    }
    fzd_seeds[fzd_nseeds++] = (fzd_seed_t){p, len};
}

static int fzd_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file, or every regular file of a directory in name order. */
static size_t fzd_add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz: %s does not exist\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        fzd_add_file(path);
        return 1;
    }
    DIR *d = opendir(path);
    if (!d)
        exit(2);
    char **names = NULL;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
        if (!names || !names[n])
            abort();
        sprintf(names[n], "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, fzd_cmp);
    size_t files = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            fzd_add_file(names[i]);
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

/* ---- generator ------------------------------------------------------------------ */

static uint64_t fzd_rng_state;

static uint64_t fzd_rand(void)
{
    /* xorshift64* */
    uint64_t x = fzd_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    fzd_rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static size_t fzd_below(size_t n)
{
    return n ? (size_t)(fzd_rand() % n) : 0;
}

/* Positions near the start (headers, tables) are picked far more often. */
static size_t fzd_pos(size_t len)
{
    if (fzd_rand() & 1)
        return fzd_below(len);
    size_t lim = (size_t)1 << fzd_below(17);
    return fzd_below(len < lim ? len : lim);
}

static uint64_t fzd_interesting(const uint8_t *buf, size_t len)
{
    static const uint64_t v[] = {0,
                                 1,
                                 2,
                                 3,
                                 4,
                                 7,
                                 8,
                                 15,
                                 16,
                                 31,
                                 32,
                                 63,
                                 64,
                                 127,
                                 128,
                                 255,
                                 256,
                                 4095,
                                 4096,
                                 65535,
                                 65536,
                                 0x7fffffff,
                                 0x80000000,
                                 0xffffffff,
                                 0x100000000ull,
                                 UINT64_MAX,
                                 INT64_MAX,
                                 (uint64_t)INT64_MIN};
    uint64_t r = fzd_rand();
    if (r % 4 == 0 && len >= 8) /* a word from elsewhere in the input, +-1 */
        return fz_le64(buf + (fzd_below(len - 7) & ~(size_t)3)) + (r >> 8) % 3 - 1;
    if (r % 4 == 1)
        return len;
    return v[(r >> 8) % (sizeof v / sizeof v[0])];
}

/* Mutate buf[0..*len) in place; cap is its allocated size. */
static void fzd_mutate(uint8_t *buf, size_t *len, size_t cap)
{
    int rounds = 1 + (int)fzd_below(4);
    for (int k = 0; k < rounds; k++) {
        size_t n = *len;
        unsigned what = (unsigned)fzd_below(10);
        if (n == 0)
            what = 7;
        switch (what) {
        case 0:
        case 1: { /* bit flip */
            size_t i = fzd_pos(n);
            buf[i] ^= (uint8_t)(1u << fzd_below(8));
            break;
        }
        case 2: /* random byte */ buf[fzd_pos(n)] = (uint8_t)fzd_rand(); break;
        case 3:
        case 4: {                                 /* interesting value in an aligned word */
            size_t w = (size_t)1 << fzd_below(4); /* 1, 2, 4, 8 bytes */
            if (n < w)
                break;
            size_t i = fzd_pos(n - w + 1) & ~(w - 1);
            uint64_t v = fzd_interesting(buf, n);
            for (size_t b = 0; b < w; b++)
                buf[i + b] = (uint8_t)(v >> (8 * b));
            break;
        }
        case 5: { /* arithmetic on an aligned word */
            size_t w = (size_t)4 << fzd_below(2);
            if (n < w)
                break;
            size_t i = fzd_pos(n - w + 1) & ~(w - 1);
            uint64_t v = 0;
            for (size_t b = 0; b < w; b++)
                v |= (uint64_t)buf[i + b] << (8 * b);
            v += (uint64_t)(int64_t)((int)fzd_below(33) - 16);
            for (size_t b = 0; b < w; b++)
                buf[i + b] = (uint8_t)(v >> (8 * b));
            break;
        }
        case 6: { /* copy a block within the input */
            size_t a = fzd_pos(n), b = fzd_pos(n);
            size_t m = 1 + fzd_below(64);
            if (a + m > n)
                m = n - a;
            if (b + m > n)
                m = n - b;
            memmove(buf + b, buf + a, m);
            break;
        }
        case 7: { /* grow with random bytes */
            size_t m = 1 + fzd_below(16);
            if (n + m > cap)
                m = cap - n;
            for (size_t i = 0; i < m; i++)
                buf[n + i] = (uint8_t)fzd_rand();
            *len = n + m;
            break;
        }
        case 8: /* shrink (rarely by much) */
            *len = n - (fzd_rand() % 8 ? fzd_below(n < 16 ? n : 16) : fzd_below(n));
            break;
        case 9: /* splice: a piece of another seed at the same offset */
            if (fzd_nseeds) {
                const fzd_seed_t *s = &fzd_seeds[fzd_below(fzd_nseeds)];
                size_t a = fzd_pos(n < s->len ? n : s->len);
                size_t m = 1 + fzd_below(256);
                if (a + m > n)
                    m = n - a;
                if (a + m > s->len)
                    m = s->len > a ? s->len - a : 0;
                memcpy(buf + a, s->p + a, m);
            }
            break;
        }
    }
}

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 10000;
    const char *seed_env = getenv("DMCE_FUZZ_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : 0x646d6365u;
    fzd_rng_state = seed ? seed : 1;
    signal(SIGABRT, fzd_signal); /* a failed check */
#ifdef FZ_HAVE_SANITIZER
    /* ASan reports faults itself (its handlers stay), then calls this. */
    __sanitizer_set_death_callback(fzd_dump);
#else
    signal(SIGSEGV, fzd_signal);
    signal(SIGBUS, fzd_signal);
    signal(SIGFPE, fzd_signal);
#endif

    size_t replayed = 0;
    for (int i = 2; i < argc; i++)
        replayed += fzd_add_path(argv[i]);

    size_t cap = FZ_MAX_LEN;
    for (size_t i = 0; i < fzd_nseeds; i++)
        if (fzd_seeds[i].len + 64 > cap)
            cap = fzd_seeds[i].len + 64;
    uint8_t *buf = malloc(cap);
    if (!buf)
        abort();
    for (unsigned long it = 0; it < iters; it++) {
        size_t len;
        if (fzd_nseeds && fzd_rand() % 8) {
            const fzd_seed_t *s = &fzd_seeds[fzd_below(fzd_nseeds)];
            memcpy(buf, s->p, s->len);
            len = s->len;
            fzd_mutate(buf, &len, cap);
        } else {
            len = fzd_below(FZ_MAX_LEN + 1);
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)fzd_rand();
        }
        fzd_run(buf, len);
    }
    free(buf);
    for (size_t i = 0; i < fzd_nseeds; i++)
        free(fzd_seeds[i].p);
    free(fzd_seeds);
    printf("fuzz_%s: %zu files replayed, %lu generated inputs (seed %#llx), no failure\n", FZ_NAME,
           replayed, iters, (unsigned long long)seed);
#ifdef FZ_REPORT
    FZ_REPORT();
#endif
    return 0;
}

#endif /* DMCE_TESTS_FUZZ_DRIVER_H */
