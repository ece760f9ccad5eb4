/*
 * fuzz_common.h - what every fuzz target in tests/fuzz shares: the check
 * macro, an input cursor and exact-size aligned copies of hostile images.
 * (The store target forges the table's geometry checksum with the table's
 * own dmce_stab_geom_csum, as a hostile process sharing the region could.)
 *
 * Each target is one file with LLVMFuzzerTestOneInput. Built with
 * -DDMCE_LIBFUZZER, libFuzzer drives it; otherwise the file ends with
 * #include "fuzz_driver.h", which adds a main() that replays corpus and
 * regression files and then runs a bounded, seeded random and mutation
 * loop over the same entry point (every ctest run).
 *
 * Header-only, static functions: every target includes it once.
 */
#ifndef DMCE_TESTS_FUZZ_COMMON_H
#define DMCE_TESTS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken property: print it and abort, so that libFuzzer (or the
 * driver's death hook) saves the input. */
#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Both operands printed (libuv task.h habit). */
#define FZ_CHECK_EQ(a, b)                                                                          \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: fuzz check failed: %s == %s (%lld != %lld)\n", __FILE__,       \
                    __LINE__, #a, #b, a_, b_);                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- reading an input ------------------------------------------------------- */

/* A cursor over the input: reads past the end give zeroes. */
typedef struct fz_in {
    const uint8_t *p;
    size_t len, pos;
} fz_in_t;

static inline uint8_t fz_u8(fz_in_t *in)
{
    return in->pos < in->len ? in->p[in->pos++] : 0;
}

static inline uint16_t fz_u16(fz_in_t *in)
{
    uint16_t v = fz_u8(in);
    return (uint16_t)(v | fz_u8(in) << 8);
}

static inline uint32_t fz_u32(fz_in_t *in)
{
    uint32_t v = fz_u16(in);
    return v | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(fz_in_t *in)
{
    uint64_t v = fz_u32(in);
    return v | (uint64_t)fz_u32(in) << 32;
}

static inline uint64_t fz_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/*
 * A hostile image: `size` bytes, `align`-aligned, heap-allocated with
 * exactly that size (ASan redzones start at the last byte), filled with
 * the first min(len, size) bytes of img and zeroes after them (a fresh
 * shm object is zero). Owner: the caller, free().
 */
static inline uint8_t *fz_image(const uint8_t *img, size_t len, size_t size, size_t align)
{
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 1) != 0)
        abort();
    size_t n = len < size ? len : size;
    if (n)
        memcpy(p, img, n);
    memset((uint8_t *)p + n, 0, size - n);
    return p;
}

static inline uint32_t fz_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#endif /* DMCE_TESTS_FUZZ_COMMON_H */
