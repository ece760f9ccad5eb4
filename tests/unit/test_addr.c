/*
 * test_addr.c - unit tests for the DMCE address codec (runtime/addr.c).
 *
 * Every test runs against both layouts through a small table of expected
 * widths, so an edge is checked on each side of every field boundary.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <dmce/addr.h>
#include <dmce/error.h>

struct lay {
    dmce_layout_t layout;
    unsigned sb, bb, cb; /* server, block, cell bits */
    uint32_t smax, bmax;
    uint64_t cmax;
};

static const struct lay LAYS[] = {
    {DMCE_LAYOUT_12_12_40, 12, 12, 40, 0xfffu, 0xfffu, UINT64_C(0xffffffffff)},
    {DMCE_LAYOUT_16_16_32, 16, 16, 32, 0xffffu, 0xffffu, UINT64_C(0xffffffff)},
};
#define NLAYS (sizeof(LAYS) / sizeof(LAYS[0]))

static const dmce_layout_t BAD_LAYOUTS[] = {(dmce_layout_t)2, (dmce_layout_t)3, (dmce_layout_t)100,
                                            (dmce_layout_t)-1, (dmce_layout_t)INT_MIN};
#define NBAD (sizeof(BAD_LAYOUTS) / sizeof(BAD_LAYOUTS[0]))

/* splitmix64: deterministic, state lives in the caller. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static dmce_addr_t raw(const struct lay *l, uint64_t s, uint64_t b, uint64_t c)
{
    return (s << (l->bb + l->cb)) | (b << l->cb) | c;
}

/* ---- layouts ---------------------------------------------------------- */

static void test_layout_info(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        dmce_layout_info_t li = {99, 99, 99};
        assert_int_equal(dmce_layout_info(LAYS[i].layout, &li), 0);
        assert_int_equal(li.server_bits, LAYS[i].sb);
        assert_int_equal(li.block_bits, LAYS[i].bb);
        assert_int_equal(li.cell_bits, LAYS[i].cb);
        assert_int_equal(li.server_bits + li.block_bits + li.cell_bits, 64);
        assert_int_equal(dmce_layout_info(LAYS[i].layout, NULL), -EINVAL);
    }
    for (size_t i = 0; i < NBAD; i++) {
        dmce_layout_info_t li = {7, 8, 9};
        assert_int_equal(dmce_layout_info(BAD_LAYOUTS[i], &li), -EINVAL);
        assert_int_equal(li.server_bits, 7); /* untouched */
        assert_int_equal(li.block_bits, 8);
        assert_int_equal(li.cell_bits, 9);
        assert_int_equal(dmce_layout_info(BAD_LAYOUTS[i], NULL), -EINVAL);
    }
    assert_int_equal(DMCE_LAYOUT_12_12_40, 0); /* the default is 0 */
}

static void test_layout_name(void **state)
{
    (void)state;
    assert_string_equal(dmce_layout_name(DMCE_LAYOUT_12_12_40), "12-12-40");
    assert_string_equal(dmce_layout_name(DMCE_LAYOUT_16_16_32), "16-16-32");
    for (size_t i = 0; i < NBAD; i++)
        assert_string_equal(dmce_layout_name(BAD_LAYOUTS[i]), "?");
}

static void test_layout_parse(void **state)
{
    (void)state;
    dmce_layout_t l = (dmce_layout_t)42;
    assert_int_equal(dmce_layout_parse("12-12-40", &l), 0);
    assert_int_equal(l, DMCE_LAYOUT_12_12_40);
    l = (dmce_layout_t)42;
    assert_int_equal(dmce_layout_parse("12|12|40", &l), 0);
    assert_int_equal(l, DMCE_LAYOUT_12_12_40);
    l = (dmce_layout_t)42;
    assert_int_equal(dmce_layout_parse("16-16-32", &l), 0);
    assert_int_equal(l, DMCE_LAYOUT_16_16_32);
    l = (dmce_layout_t)42;
    assert_int_equal(dmce_layout_parse("16|16|32", &l), 0);
    assert_int_equal(l, DMCE_LAYOUT_16_16_32);

    /* name -> parse round trip */
    for (size_t i = 0; i < NLAYS; i++) {
        l = (dmce_layout_t)42;
        assert_int_equal(dmce_layout_parse(dmce_layout_name(LAYS[i].layout), &l), 0);
        assert_int_equal(l, LAYS[i].layout);
    }

    static const char *const bad[] = {
        "",          "?",        "12",        "12-12",    "12-12-40-",  "12-12-40 ",
        " 12-12-40", "12-12-4",  "12-12-400", "12-16-32", "16-16-40",   "12|12-40",
        "12:12:40",  "12_12_40", "12/12/40",  "121240",   "16-16-32\n", "32-16-16",
        "12-12-40x", "0",        "1",         "DEFAULT",  "12-12-040",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        l = (dmce_layout_t)42;
        assert_int_equal(dmce_layout_parse(bad[i], &l), -EINVAL);
        assert_int_equal(l, 42); /* untouched */
    }
    assert_int_equal(dmce_layout_parse(NULL, &l), -EINVAL);
    assert_int_equal(dmce_layout_parse("12-12-40", NULL), -EINVAL);
    assert_int_equal(dmce_layout_parse(NULL, NULL), -EINVAL);
}

/* ---- encode / decode ------------------------------------------------------ */

static void check_roundtrip(const struct lay *l, uint32_t s, uint32_t b, uint64_t c)
{
    dmce_addr_t a = 0xdeadbeef;
    assert_int_equal(dmce_addr_encode(l->layout, s, b, c, &a), 0);
    assert_true(a == raw(l, s, b, c));
    dmce_addr_parts_t p = {1, 1, 1};
    assert_int_equal(dmce_addr_decode(l->layout, a, &p), 0);
    assert_int_equal(p.server, s);
    assert_int_equal(p.block, b);
    assert_true(p.cell == c);
    assert_int_equal(dmce_addr_validate(l->layout, a), 0);
}

static void test_encode_edges(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        const uint32_t sv[] = {0, 1, 2, l->smax - 1, l->smax};
        const uint32_t bv[] = {1, 2, l->bmax - 1, l->bmax};
        const uint64_t cv[] = {0, 1, 2, l->cmax - 1, l->cmax};
        for (size_t a = 0; a < sizeof(sv) / sizeof(sv[0]); a++)
            for (size_t b = 0; b < sizeof(bv) / sizeof(bv[0]); b++)
                for (size_t c = 0; c < sizeof(cv) / sizeof(cv[0]); c++)
                    check_roundtrip(l, sv[a], bv[b], cv[c]);

        /* All-ones is a valid address: max server, max block, max cell. */
        dmce_addr_t a = 0;
        assert_int_equal(dmce_addr_encode(l->layout, l->smax, l->bmax, l->cmax, &a), 0);
        assert_true(a == UINT64_MAX);
        /* Smallest valid address: local server, block 1, cell 0. */
        assert_int_equal(dmce_addr_encode(l->layout, 0, 1, 0, &a), 0);
        assert_true(a == (UINT64_C(1) << l->cb));
    }
}

static void test_encode_range(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        const dmce_addr_t sentinel = UINT64_C(0x5555aaaa5555aaaa);
        dmce_addr_t a = sentinel;
        /* max + 1 in each field */
        assert_int_equal(dmce_addr_encode(l->layout, l->smax + 1, 1, 0, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, l->bmax + 1, 0, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, 1, l->cmax + 1, &a), -ERANGE);
        /* far beyond */
        assert_int_equal(dmce_addr_encode(l->layout, UINT32_MAX, 1, 0, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, UINT32_MAX, 0, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, 1, UINT64_MAX, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, 1, l->cmax << 1, &a), -ERANGE);
        /* block 0 is reserved */
        assert_int_equal(dmce_addr_encode(l->layout, 0, 0, 0, &a), DMCE_ENOBLOCK);
        assert_int_equal(dmce_addr_encode(l->layout, 5, 0, 77, &a), DMCE_ENOBLOCK);
        assert_int_equal(dmce_addr_encode(l->layout, l->smax, 0, l->cmax, &a), DMCE_ENOBLOCK);
        /* range is reported before block 0 */
        assert_int_equal(dmce_addr_encode(l->layout, l->smax + 1, 0, 0, &a), -ERANGE);
        assert_int_equal(dmce_addr_encode(l->layout, 0, 0, l->cmax + 1, &a), -ERANGE);
        /* NULL output */
        assert_int_equal(dmce_addr_encode(l->layout, 0, 1, 0, NULL), -EINVAL);
        assert_true(a == sentinel); /* never written on failure */
    }
    /* 16-bit servers do not fit 12-bit layouts, and 40-bit cells not 32. */
    dmce_addr_t a;
    assert_int_equal(dmce_addr_encode(DMCE_LAYOUT_12_12_40, 0xffff, 1, 0, &a), -ERANGE);
    assert_int_equal(dmce_addr_encode(DMCE_LAYOUT_16_16_32, 0xffff, 1, 0, &a), 0);
    assert_int_equal(dmce_addr_encode(DMCE_LAYOUT_16_16_32, 0, 1, UINT64_C(0xffffffffff), &a),
                     -ERANGE);
    assert_int_equal(dmce_addr_encode(DMCE_LAYOUT_12_12_40, 0, 1, UINT64_C(0xffffffffff), &a), 0);
}

static void test_decode(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        dmce_addr_parts_t p;
        /* every 64-bit value splits, even ones that are not valid */
        assert_int_equal(dmce_addr_decode(l->layout, 0, &p), 0);
        assert_int_equal(p.server, 0);
        assert_int_equal(p.block, 0);
        assert_true(p.cell == 0);
        assert_int_equal(dmce_addr_decode(l->layout, UINT64_MAX, &p), 0);
        assert_int_equal(p.server, l->smax);
        assert_int_equal(p.block, l->bmax);
        assert_true(p.cell == l->cmax);
        assert_int_equal(dmce_addr_decode(l->layout, l->cmax, &p), 0);
        assert_int_equal(p.server, 0);
        assert_int_equal(p.block, 0);
        assert_true(p.cell == l->cmax);
        assert_int_equal(dmce_addr_decode(l->layout, UINT64_C(1) << 63, &p), 0);
        assert_int_equal(p.server, 1u << (l->sb - 1));
        assert_int_equal(p.block, 0);
        assert_true(p.cell == 0);
        /* lowest block bit, lowest server bit */
        assert_int_equal(dmce_addr_decode(l->layout, UINT64_C(1) << l->cb, &p), 0);
        assert_int_equal(p.server, 0);
        assert_int_equal(p.block, 1);
        assert_int_equal(dmce_addr_decode(l->layout, UINT64_C(1) << (l->cb + l->bb), &p), 0);
        assert_int_equal(p.server, 1);
        assert_int_equal(p.block, 0);
        assert_int_equal(dmce_addr_decode(l->layout, 1, NULL), -EINVAL);
    }
}

/* The same bits mean different things in the two layouts. */
static void test_layouts_differ(void **state)
{
    (void)state;
    dmce_addr_parts_t p;
    const dmce_addr_t a = UINT64_C(0x0010020000000003);
    assert_int_equal(dmce_addr_decode(DMCE_LAYOUT_16_16_32, a, &p), 0);
    assert_int_equal(p.server, 0x0010);
    assert_int_equal(p.block, 0x0200);
    assert_true(p.cell == 3);
    assert_int_equal(dmce_addr_decode(DMCE_LAYOUT_12_12_40, a, &p), 0);
    assert_int_equal(p.server, 0x001);
    assert_int_equal(p.block, 0x002);
    assert_true(p.cell == UINT64_C(0x0000000003));
}

static void test_bad_layout_everywhere(void **state)
{
    (void)state;
    for (size_t i = 0; i < NBAD; i++) {
        dmce_layout_t L = BAD_LAYOUTS[i];
        dmce_addr_t a = 12345;
        dmce_addr_parts_t p = {9, 9, 9};
        char buf[DMCE_ADDR_STRLEN] = "untouched";
        assert_int_equal(dmce_addr_encode(L, 0, 1, 0, &a), -EINVAL);
        assert_int_equal(dmce_addr_decode(L, 1, &p), -EINVAL);
        assert_int_equal(dmce_addr_validate(L, UINT64_C(1) << 40), -EINVAL);
        assert_int_equal(dmce_addr_validate(L, 0), -EINVAL);
        assert_int_equal(dmce_addr_add(L, UINT64_C(1) << 40, 1, &a), -EINVAL);
        assert_int_equal(dmce_addr_format(L, UINT64_C(1) << 40, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(dmce_addr_parse(L, "0:1:0x0", &a), -EINVAL);
        /* unknown layout wins over NULL pointers too */
        assert_int_equal(dmce_addr_encode(L, 0, 1, 0, NULL), -EINVAL);
        assert_int_equal(dmce_addr_format(L, 0, NULL, 0), -EINVAL);
        assert_true(a == 12345);
        assert_int_equal(p.server, 9);
        assert_string_equal(buf, "untouched");
    }
}

/* ---- validate -------------------------------------------------------------- */

static void test_validate(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        assert_int_equal(dmce_addr_validate(l->layout, DMCE_ADDR_NULL), DMCE_ENULLADDR);
        assert_int_equal(dmce_addr_validate(l->layout, 0), DMCE_ENULLADDR);
        /* anything in block 0: any server, any cell */
        assert_int_equal(dmce_addr_validate(l->layout, 1), DMCE_ENOBLOCK);
        assert_int_equal(dmce_addr_validate(l->layout, l->cmax), DMCE_ENOBLOCK);
        assert_int_equal(dmce_addr_validate(l->layout, raw(l, 1, 0, 0)), DMCE_ENOBLOCK);
        assert_int_equal(dmce_addr_validate(l->layout, raw(l, l->smax, 0, l->cmax)), DMCE_ENOBLOCK);
        /* valid ones */
        assert_int_equal(dmce_addr_validate(l->layout, raw(l, 0, 1, 0)), 0);
        assert_int_equal(dmce_addr_validate(l->layout, raw(l, 0, l->bmax, 0)), 0);
        assert_int_equal(dmce_addr_validate(l->layout, raw(l, l->smax, 1, l->cmax)), 0);
        assert_int_equal(dmce_addr_validate(l->layout, UINT64_MAX), 0);
    }
    /* An address valid in one layout may be in block 0 of the other. */
    const dmce_addr_t a = UINT64_C(1) << 32; /* 16-16-32: block 1; 12-12-40: block 0 */
    assert_int_equal(dmce_addr_validate(DMCE_LAYOUT_16_16_32, a), 0);
    assert_int_equal(dmce_addr_validate(DMCE_LAYOUT_12_12_40, a), DMCE_ENOBLOCK);
}

/* ---- add ------------------------------------------------------------------- */

static void test_add(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        const dmce_addr_t base = raw(l, 3, 7, 0);
        const dmce_addr_t sentinel = UINT64_C(0x1234);
        dmce_addr_t out = sentinel;
        dmce_addr_parts_t p;

        assert_int_equal(dmce_addr_add(l->layout, base, 0, &out), 0);
        assert_true(out == base);
        assert_int_equal(dmce_addr_add(l->layout, base, 1, &out), 0);
        assert_true(out == base + 1);
        assert_int_equal(dmce_addr_add(l->layout, base, l->cmax, &out), 0);
        assert_int_equal(dmce_addr_decode(l->layout, out, &p), 0);
        assert_int_equal(p.server, 3);
        assert_int_equal(p.block, 7);
        assert_true(p.cell == l->cmax);

        /* one past the end of the cell field: no carry into the block */
        out = sentinel;
        assert_int_equal(dmce_addr_add(l->layout, base, l->cmax + 1, &out), -ERANGE);
        assert_true(out == sentinel);
        const dmce_addr_t top = raw(l, 3, 7, l->cmax);
        assert_int_equal(dmce_addr_add(l->layout, top, 0, &out), 0);
        assert_true(out == top);
        out = sentinel;
        assert_int_equal(dmce_addr_add(l->layout, top, 1, &out), -ERANGE);
        assert_int_equal(dmce_addr_add(l->layout, top, UINT64_MAX, &out), -ERANGE);
        assert_true(out == sentinel);
        const dmce_addr_t mid = raw(l, 3, 7, l->cmax / 2);
        assert_int_equal(dmce_addr_add(l->layout, mid, l->cmax - l->cmax / 2, &out), 0);
        assert_true(out == top);
        out = sentinel;
        assert_int_equal(dmce_addr_add(l->layout, mid, l->cmax - l->cmax / 2 + 1, &out), -ERANGE);
        /* offsets that would wrap a 64-bit sum */
        assert_int_equal(dmce_addr_add(l->layout, raw(l, 3, 7, 1), UINT64_MAX, &out), -ERANGE);
        assert_int_equal(dmce_addr_add(l->layout, base, UINT64_MAX, &out), -ERANGE);
        assert_true(out == sentinel);

        /* all-ones address: max server and block are kept */
        assert_int_equal(dmce_addr_add(l->layout, raw(l, l->smax, l->bmax, 0), l->cmax, &out), 0);
        assert_true(out == UINT64_MAX);
        assert_int_equal(dmce_addr_add(l->layout, UINT64_MAX, 1, &out), -ERANGE);

        /* add chained in steps equals one add */
        dmce_addr_t x = base, y;
        for (int k = 0; k < 10; k++) {
            assert_int_equal(dmce_addr_add(l->layout, x, 4096, &y), 0);
            x = y;
        }
        assert_int_equal(dmce_addr_add(l->layout, base, 40960, &y), 0);
        assert_true(x == y);

        assert_int_equal(dmce_addr_add(l->layout, base, 1, NULL), -EINVAL);
    }
}

/* ---- format ---------------------------------------------------------------- */

static void check_format(dmce_layout_t L, dmce_addr_t a, const char *want)
{
    char buf[DMCE_ADDR_STRLEN];
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(dmce_addr_format(L, a, buf, sizeof(buf)), (int)strlen(want));
    assert_string_equal(buf, want);
    dmce_addr_t back = 0;
    if (dmce_addr_validate(L, a) == 0) {
        assert_int_equal(dmce_addr_parse(L, buf, &back), 0);
        assert_true(back == a);
    }
}

static void test_format(void **state)
{
    (void)state;
    const dmce_layout_t A = DMCE_LAYOUT_12_12_40, B = DMCE_LAYOUT_16_16_32;
    check_format(A, 0, "0:0:0x0");
    check_format(B, 0, "0:0:0x0");
    check_format(A, UINT64_C(17) << 40 | 0x1f40, "0:17:0x1f40");
    check_format(B, UINT64_C(17) << 32 | 0x1f40, "0:17:0x1f40");
    check_format(A, UINT64_C(1) << 40, "0:1:0x0");
    check_format(A, UINT64_MAX, "4095:4095:0xffffffffff");
    check_format(B, UINT64_MAX, "65535:65535:0xffffffff");
    check_format(A, UINT64_C(0xabcdef) | UINT64_C(1) << 40 | UINT64_C(1) << 52, "1:1:0xabcdef");
    check_format(B, UINT64_C(0xABCDEF01) | UINT64_C(10) << 32 | UINT64_C(65534) << 48,
                 "65534:10:0xabcdef01");
    /* block 0 / null still format; validity is a separate question */
    check_format(A, 5, "0:0:0x5");

    /* longest forms fit DMCE_ADDR_STRLEN with room to spare */
    char buf[DMCE_ADDR_STRLEN];
    for (size_t i = 0; i < NLAYS; i++) {
        int n = dmce_addr_format(LAYS[i].layout, UINT64_MAX, buf, sizeof(buf));
        assert_true(n > 0 && n < DMCE_ADDR_STRLEN);
        assert_int_equal(n, (int)strlen(buf));
    }
    assert_int_equal(dmce_addr_format(A, 1, NULL, 32), -EINVAL);
    assert_int_equal(dmce_addr_format(A, 1, NULL, 0), -EINVAL);
}

static void test_format_nospc(void **state)
{
    (void)state;
    const dmce_layout_t L = DMCE_LAYOUT_12_12_40;
    const dmce_addr_t a = UINT64_C(17) << 40 | 0x1f40; /* "0:17:0x1f40", 11 chars */
    const char *full = "0:17:0x1f40";
    const size_t flen = strlen(full);
    char buf[DMCE_ADDR_STRLEN];

    /* len == 0: nothing may be written */
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(dmce_addr_format(L, a, buf, 0), -ENOSPC);
    assert_int_equal(buf[0], 'Z');

    /* every too-small size gives the truncated, NUL-terminated prefix */
    for (size_t len = 1; len <= flen; len++) {
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(dmce_addr_format(L, a, buf, len), -ENOSPC);
        assert_int_equal(buf[len - 1], '\0');
        assert_int_equal(strlen(buf), len - 1);
        assert_memory_equal(buf, full, len - 1);
        assert_int_equal(buf[len], 'Z'); /* no write past len */
    }
    /* exactly enough */
    memset(buf, 'Z', sizeof(buf));
    assert_int_equal(dmce_addr_format(L, a, buf, flen + 1), (int)flen);
    assert_string_equal(buf, full);

    /* a 4-byte buffer holds "0:1" */
    char small[4];
    assert_int_equal(dmce_addr_format(L, a, small, sizeof(small)), -ENOSPC);
    assert_string_equal(small, "0:1");
}

/* ---- parse ----------------------------------------------------------------- */

static void test_parse_good(void **state)
{
    (void)state;
    const dmce_layout_t A = DMCE_LAYOUT_12_12_40, B = DMCE_LAYOUT_16_16_32;
    struct {
        dmce_layout_t L;
        const char *text;
        uint64_t want;
    } cases[] = {
        {A, "0:17:0x1f40", UINT64_C(17) << 40 | 0x1f40},
        {A, "0:1:0x0", UINT64_C(1) << 40},
        {A, "0:1:0", UINT64_C(1) << 40},
        {A, "0:1:5", UINT64_C(1) << 40 | 5},
        {A, "0:1:10", UINT64_C(1) << 40 | 10}, /* decimal cell */
        {A, "0x0:0x1:0x0", UINT64_C(1) << 40},
        {A, "0X0:0X1:0X0", UINT64_C(1) << 40},
        {A, "0:1:0xABCDEF", UINT64_C(1) << 40 | 0xabcdef},
        {A, "0:1:0xAbCdEf", UINT64_C(1) << 40 | 0xabcdef},
        {A, "00:01:00", UINT64_C(1) << 40}, /* leading zeros, not octal */
        {A, "010:010:010", UINT64_C(10) << 52 | UINT64_C(10) << 40 | 10},
        {A, "0x00000000000000000000000001:1:0", UINT64_C(1) << 52 | UINT64_C(1) << 40},
        {A, "0000000000000000000000000000000:1:0", UINT64_C(1) << 40},
        {A, "4095:4095:0xffffffffff", UINT64_MAX},
        {A, "0xfff:0xfff:1099511627775", UINT64_MAX},
        {A, "1:2:3", UINT64_C(1) << 52 | UINT64_C(2) << 40 | 3},
        {B, "65535:65535:0xffffffff", UINT64_MAX},
        {B, "65535:65535:4294967295", UINT64_MAX},
        {B, "0xffff:0xFFFF:0xFFFFFFFF", UINT64_MAX},
        {B, "0:17:0x1f40", UINT64_C(17) << 32 | 0x1f40},
        {B, "4096:4096:0", UINT64_C(4096) << 48 | UINT64_C(4096) << 32},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dmce_addr_t a = 0;
        int rc = dmce_addr_parse(cases[i].L, cases[i].text, &a);
        if (rc != 0 || a != cases[i].want)
            print_error("case %zu \"%s\": rc %d addr 0x%" PRIx64 "\n", i, cases[i].text, rc, a);
        assert_int_equal(rc, 0);
        assert_true(a == cases[i].want);
    }
}

static void test_parse_bad_syntax(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ":",
        "::",
        ":1:0",
        "0::0",
        "0:1:",
        "0:1",
        "0",
        "1",
        "0:1:0:",
        "0:1:0:0",
        "0:1:0x",
        "0x:1:0",
        "0:0x:0",
        "0x",
        "x1:1:0",
        "0:1:x10",
        "0:1:0xx1",
        "0:1:0x0x1",
        "0:1:0y1",
        "0:1:0b1",
        "0:1:1h",
        "0:1:ff", /* hex without prefix */
        "0:1:0xg",
        "0:1:0x1g",
        "a:1:0",
        "0:1a:0",
        "+0:1:0",
        "0:+1:0",
        "0:1:+0",
        "-0:1:0",
        "0:-1:0",
        "0:1:-1",
        "0:1:0x-1",
        "0:1:0x+1",
        " 0:1:0",
        "0 :1:0",
        "0: 1:0",
        "0:1 :0",
        "0:1: 0",
        "0:1:0 ",
        "0:1:0x1f40 ",
        "\t0:1:0",
        "0:1:0\n",
        "0:1:0\t",
        "0:1:0\r\n",
        "0:1:0.",
        "0:1:0;",
        "0:1:0,",
        "0:1:0abc",
        "0.0:1:0",
        "0:1.0:0",
        "0:1:1e3",
        "0:1:1,000",
        "0;1;0",
        "0-1-0",
        "0,1,0",
        "0 1 0",
        "0/1/0",
        "0:1/0",
        "[0:1:0]",
        "(0:1:0)",
        "0:1:0x1f40:",
        "0:1:0x1f40junk",
        "0:1:08x",
        "0:17:0x1f40\xff",
        "\357\273\2770:1:0", /* UTF-8 BOM (octal: \x would eat the 0) */
        "\xd9\xa1:1:0",      /* Arabic-Indic digit one */
        "0\x00:1:0",         /* effectively "0" */
        /* syntax errors win over range errors */
        "99999999999999999999999:1:junk",
        "0:0:junk",
        "5000:1:0x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t j = 0; j < NLAYS; j++) {
            dmce_addr_t a = UINT64_C(0x7777);
            int rc = dmce_addr_parse(LAYS[j].layout, bad[i], &a);
            if (rc != -EINVAL)
                print_error("bad[%zu] \"%s\" gave %d\n", i, bad[i], rc);
            assert_int_equal(rc, -EINVAL);
            assert_true(a == UINT64_C(0x7777));
        }
    }
    dmce_addr_t a;
    assert_int_equal(dmce_addr_parse(DMCE_LAYOUT_12_12_40, NULL, &a), -EINVAL);
    assert_int_equal(dmce_addr_parse(DMCE_LAYOUT_12_12_40, "0:1:0", NULL), -EINVAL);
    assert_int_equal(dmce_addr_parse(DMCE_LAYOUT_16_16_32, NULL, NULL), -EINVAL);
}

static void test_parse_range(void **state)
{
    (void)state;
    const dmce_layout_t A = DMCE_LAYOUT_12_12_40, B = DMCE_LAYOUT_16_16_32;
    struct {
        dmce_layout_t L;
        const char *text;
        int want;
    } cases[] = {
        /* one past each field edge */
        {A, "4096:1:0", -ERANGE},
        {A, "0x1000:1:0", -ERANGE},
        {A, "0:4096:0", -ERANGE},
        {A, "0:1:0x10000000000", -ERANGE},
        {A, "0:1:1099511627776", -ERANGE},
        {B, "65536:1:0", -ERANGE},
        {B, "0:65536:0", -ERANGE},
        {B, "0:0x10000:0", -ERANGE},
        {B, "0:1:0x100000000", -ERANGE},
        {B, "0:1:4294967296", -ERANGE},
        /* valid in one layout, too wide for the other */
        {A, "65535:1:0", -ERANGE},
        {B, "0:1:0xffffffffff", -ERANGE},
        /* 64-bit limits and beyond */
        {A, "0:1:18446744073709551615", -ERANGE},
        {A, "0:1:18446744073709551616", -ERANGE},
        {A, "0:1:0xffffffffffffffff", -ERANGE},
        {A, "0:1:0x10000000000000000", -ERANGE},
        {A, "18446744073709551616:1:0", -ERANGE},
        {B, "0:99999999999999999999999999999999:0", -ERANGE},
        {B, "0:1:0x1ffffffffffffffffffffffffffff", -ERANGE},
        /* a wrap-around value must not be mistaken for a small one */
        {A, "0:1:18446744073709551617", -ERANGE}, /* 2^64 + 1 */
        {A, "0:1:0x10000000000000001", -ERANGE},
        {A, "18446744073709551617:1:0", -ERANGE},
        /* block 0 */
        {A, "0:0:0", DMCE_ENOBLOCK},
        {A, "0:0:0x1f40", DMCE_ENOBLOCK},
        {A, "4095:0:0xffffffffff", DMCE_ENOBLOCK},
        {A, "0:0x0:0", DMCE_ENOBLOCK},
        {A, "0:000:0", DMCE_ENOBLOCK},
        {B, "0:0:0", DMCE_ENOBLOCK},
        {B, "65535:0:0xffffffff", DMCE_ENOBLOCK},
        /* range before block 0 */
        {A, "4096:0:0", -ERANGE},
        {B, "0:0:0x100000000", -ERANGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dmce_addr_t a = UINT64_C(0x7777);
        int rc = dmce_addr_parse(cases[i].L, cases[i].text, &a);
        if (rc != cases[i].want)
            print_error("case %zu \"%s\": rc %d want %d\n", i, cases[i].text, rc, cases[i].want);
        assert_int_equal(rc, cases[i].want);
        assert_true(a == UINT64_C(0x7777));
    }
}

static void test_parse_long_input(void **state)
{
    (void)state;
    /* A long run of zeros is still a small number. */
    char big[4096];
    size_t n = 0;
    for (; n < 2000; n++)
        big[n] = '0';
    memcpy(big + n, "7:1:0x", 6);
    n += 6;
    for (size_t k = 0; k < 1000; k++)
        big[n++] = '0';
    memcpy(big + n, "ff", 3);
    dmce_addr_t a;
    assert_int_equal(dmce_addr_parse(DMCE_LAYOUT_12_12_40, big, &a), 0);
    assert_true(a == (UINT64_C(7) << 52 | UINT64_C(1) << 40 | 0xff));

    /* A long run of nonzero digits overflows. */
    memset(big, '9', 3000);
    memcpy(big + 3000, ":1:0", 5);
    assert_int_equal(dmce_addr_parse(DMCE_LAYOUT_12_12_40, big, &a), -ERANGE);
}

/* ---- randomized round trips ----------------------------------------------- */

#define NRANDOM 100000

static void test_random_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLAYS; i++) {
        const struct lay *l = &LAYS[i];
        uint64_t rng = UINT64_C(0x00d3ce5eed) + i; /* fixed seed per layout */
        char buf[DMCE_ADDR_STRLEN];
        for (int k = 0; k < NRANDOM; k++) {
            uint64_t r = rng_next(&rng);
            uint32_t s = (uint32_t)(r & l->smax);
            uint32_t b = (uint32_t)((r >> 20) & l->bmax);
            uint64_t c = rng_next(&rng);
            /* mix magnitudes so short and long cells both occur */
            c &= l->cmax >> (rng_next(&rng) % l->cb);
            if (b == 0)
                b = 1;

            dmce_addr_t a = 0;
            assert_int_equal(dmce_addr_encode(l->layout, s, b, c, &a), 0);
            assert_int_equal(dmce_addr_validate(l->layout, a), 0);

            dmce_addr_parts_t p;
            assert_int_equal(dmce_addr_decode(l->layout, a, &p), 0);
            assert_int_equal(p.server, s);
            assert_int_equal(p.block, b);
            assert_true(p.cell == c);

            int n = dmce_addr_format(l->layout, a, buf, sizeof(buf));
            assert_true(n > 0 && n < DMCE_ADDR_STRLEN);

            /* Independent rendering of the text form. */
            char want[64];
            snprintf(want, sizeof(want), "%" PRIu32 ":%" PRIu32 ":0x%" PRIx64, s, b, c);
            assert_string_equal(buf, want);

            dmce_addr_t back = 0;
            assert_int_equal(dmce_addr_parse(l->layout, buf, &back), 0);
            assert_true(back == a);

            /* all-hex and all-decimal forms parse to the same address */
            snprintf(want, sizeof(want), "0x%" PRIX32 ":0x%" PRIx32 ":%" PRIu64, s, b, c);
            back = 0;
            assert_int_equal(dmce_addr_parse(l->layout, want, &back), 0);
            assert_true(back == a);
        }

        /* random raw 64-bit values: decode/encode is the identity when valid */
        for (int k = 0; k < NRANDOM; k++) {
            dmce_addr_t a = rng_next(&rng);
            dmce_addr_parts_t p;
            assert_int_equal(dmce_addr_decode(l->layout, a, &p), 0);
            dmce_addr_t back = 0;
            int rc = dmce_addr_encode(l->layout, p.server, p.block, p.cell, &back);
            if (p.block == 0) {
                assert_int_equal(rc, DMCE_ENOBLOCK);
                assert_int_equal(dmce_addr_validate(l->layout, a),
                                 a == 0 ? DMCE_ENULLADDR : DMCE_ENOBLOCK);
            } else {
                assert_int_equal(rc, 0);
                assert_true(back == a);
                assert_int_equal(dmce_addr_validate(l->layout, a), 0);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_info),      cmocka_unit_test(test_layout_name),
        cmocka_unit_test(test_layout_parse),     cmocka_unit_test(test_encode_edges),
        cmocka_unit_test(test_encode_range),     cmocka_unit_test(test_decode),
        cmocka_unit_test(test_layouts_differ),   cmocka_unit_test(test_bad_layout_everywhere),
        cmocka_unit_test(test_validate),         cmocka_unit_test(test_add),
        cmocka_unit_test(test_format),           cmocka_unit_test(test_format_nospc),
        cmocka_unit_test(test_parse_good),       cmocka_unit_test(test_parse_bad_syntax),
        cmocka_unit_test(test_parse_range),      cmocka_unit_test(test_parse_long_input),
        cmocka_unit_test(test_random_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
