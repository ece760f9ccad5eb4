/*
 * addr.c - the DMCE virtual address codec (include/dmce/addr.h).
 *
 * Design
 *
 *   An address is one uint64_t split, most significant first, into
 *   server | block | cell. The split is described by a constant table of
 *   layouts (struct layout_desc below) holding the three widths and the
 *   derived shifts and masks, so every function is "look the layout up, then
 *   shift and mask". There is no mutable state anywhere in this file: all
 *   functions are pure, reentrant and thread-safe.
 *
 *   Every function first resolves the layout (an unknown value gives
 *   -EINVAL), then checks its pointer arguments (NULL gives -EINVAL), and
 *   only then does its work. Output parameters are written only on success,
 *   so a caller's variable is never left half-updated. The one exception is
 *   dmce_addr_format's buffer, which on -ENOSPC holds a truncated,
 *   NUL-terminated string, as the header documents.
 *
 *   Field checks: a value wider than its field is -ERANGE; block 0 is
 *   reserved and is DMCE_ENOBLOCK (range is checked before the block-0
 *   rule); the all-zero address is DMCE_ENULLADDR in dmce_addr_validate.
 *   dmce_addr_add moves only the cell: if the sum does not fit in the cell
 *   field it fails with -ERANGE instead of carrying into the block ID.
 *
 *   Text form: "S:B:0xCELL", server and block in decimal, cell in lowercase
 *   hex with a 0x prefix. The parser is hand written rather than built on
 *   strtoull, which silently skips leading whitespace and accepts '+' and
 *   '-' (negating the result). Each of the three ':'-separated fields must
 *   be either one or more decimal digits, or "0x"/"0X" followed by one or
 *   more hex digits (either case). Leading zeros are allowed and decimal is
 *   never read as octal. Anything else - an empty field, a sign, whitespace
 *   anywhere, a fourth field, trailing characters - is -EINVAL. The whole
 *   string is checked for syntax first; only a well-formed string can give
 *   -ERANGE (a field beyond 64 bits or beyond its layout width) or
 *   DMCE_ENOBLOCK, so syntax errors always win.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <dmce/addr.h>
#include <dmce/error.h>

/* Widths plus the derived shifts and masks of one layout. */
struct layout_desc {
    const char *name;     /* canonical name, "12-12-40" */
    const char *alt_name; /* accepted alias, "12|12|40" */
    dmce_layout_info_t info;
    unsigned server_shift; /* = block_bits + cell_bits */
    unsigned block_shift;  /* = cell_bits */
    uint64_t server_max;
    uint64_t block_max;
    uint64_t cell_max;
};

#define FIELD_MAX_(bits) ((UINT64_C(1) << (bits)) - 1)
#define LAYOUT_DESC_(s, b, c)                                                                      \
    {                                                                                              \
        .name = #s "-" #b "-" #c, .alt_name = #s "|" #b "|" #c, .info = {(s), (b), (c)},           \
        .server_shift = (b) + (c), .block_shift = (c), .server_max = FIELD_MAX_(s),                \
        .block_max = FIELD_MAX_(b), .cell_max = FIELD_MAX_(c),                                     \
    }

/* Indexed by dmce_layout_t. Read-only. */
static const struct layout_desc layouts[] = {
    [DMCE_LAYOUT_12_12_40] = LAYOUT_DESC_(12, 12, 40),
    [DMCE_LAYOUT_16_16_32] = LAYOUT_DESC_(16, 16, 32),
};

#define NLAYOUTS (sizeof(layouts) / sizeof(layouts[0]))

_Static_assert(NLAYOUTS == 2, "one entry per dmce_layout_t value");

/* The descriptor of `layout`, or NULL when it is not a known layout. */
static const struct layout_desc *layout_get(dmce_layout_t layout)
{
    /* Compare as a wide signed value so that any stray enum value works. */
    long long v = (long long)layout;
    if (v < 0 || (unsigned long long)v >= NLAYOUTS)
        return NULL;
    return &layouts[v];
}

static dmce_addr_t pack(const struct layout_desc *d, uint64_t server, uint64_t block, uint64_t cell)
{
    return (server << d->server_shift) | (block << d->block_shift) | cell;
}

static void unpack(const struct layout_desc *d, dmce_addr_t addr, dmce_addr_parts_t *p)
{
    p->server = (uint32_t)((addr >> d->server_shift) & d->server_max);
    p->block = (uint32_t)((addr >> d->block_shift) & d->block_max);
    p->cell = addr & d->cell_max;
}

/* Range checks shared by encode and parse: -ERANGE, DMCE_ENOBLOCK or 0. */
static int check_fields(const struct layout_desc *d, uint64_t server, uint64_t block, uint64_t cell)
{
    if (server > d->server_max || block > d->block_max || cell > d->cell_max)
        return -ERANGE;
    if (block == 0)
        return DMCE_ENOBLOCK;
    return 0;
}

int dmce_layout_info(dmce_layout_t layout, dmce_layout_info_t *out)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !out)
        return -EINVAL;
    *out = d->info;
    return 0;
}

int dmce_layout_parse(const char *name, dmce_layout_t *out)
{
    if (!name || !out)
        return -EINVAL;
    for (size_t i = 0; i < NLAYOUTS; i++) {
        if (strcmp(name, layouts[i].name) == 0 || strcmp(name, layouts[i].alt_name) == 0) {
            *out = (dmce_layout_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *dmce_layout_name(dmce_layout_t layout)
{
    const struct layout_desc *d = layout_get(layout);
    return d ? d->name : "?";
}

int dmce_addr_encode(dmce_layout_t layout, uint32_t server, uint32_t block, uint64_t cell,
                     dmce_addr_t *out)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !out)
        return -EINVAL;
    int rc = check_fields(d, server, block, cell);
    if (rc)
        return rc;
    *out = pack(d, server, block, cell);
    return 0;
}

int dmce_addr_decode(dmce_layout_t layout, dmce_addr_t addr, dmce_addr_parts_t *out)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !out)
        return -EINVAL;
    unpack(d, addr, out);
    return 0;
}

int dmce_addr_validate(dmce_layout_t layout, dmce_addr_t addr)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d)
        return -EINVAL;
    if (addr == DMCE_ADDR_NULL)
        return DMCE_ENULLADDR;
    dmce_addr_parts_t p;
    unpack(d, addr, &p);
    if (p.block == 0)
        return DMCE_ENOBLOCK;
    return 0;
}

int dmce_addr_add(dmce_layout_t layout, dmce_addr_t addr, uint64_t off, dmce_addr_t *out)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !out)
        return -EINVAL;
    dmce_addr_parts_t p;
    unpack(d, addr, &p);
    /* cell <= cell_max, so the subtraction cannot wrap. */
    if (off > d->cell_max - p.cell)
        return -ERANGE;
    *out = pack(d, p.server, p.block, p.cell + off);
    return 0;
}

int dmce_addr_format(dmce_layout_t layout, dmce_addr_t addr, char *buf, size_t len)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !buf)
        return -EINVAL;
    dmce_addr_parts_t p;
    unpack(d, addr, &p);
    /* snprintf truncates and NUL-terminates when len > 0, writes nothing at 0. */
    int n = snprintf(buf, len, "%" PRIu32 ":%" PRIu32 ":0x%" PRIx64, p.server, p.block, p.cell);
    if (n < 0)
        return -EINVAL; /* cannot happen with this format */
    if ((size_t)n >= len)
        return -ENOSPC;
    return n;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Parse one field starting at *pp, up to (not including) the next ':' or
 * the NUL. Returns false on a syntax error. On success *pp points at the
 * terminator, *val holds the value and *overflow is set when the value does
 * not fit in 64 bits (*val is then meaningless).
 */
static bool parse_field(const char **pp, uint64_t *val, bool *overflow)
{
    const char *s = *pp;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    uint64_t v = 0;
    bool ovf = false;
    const char *start = s;
    for (;; s++) {
        int dg = hex_digit(*s);
        if (dg < 0 || (unsigned)dg >= base)
            break;
        if (v > (UINT64_MAX - (uint64_t)dg) / base)
            ovf = true;
        else
            v = v * base + (uint64_t)dg;
    }
    if (s == start)
        return false; /* empty field, or "0x" with no digits */
    if (*s != ':' && *s != '\0')
        return false; /* sign, whitespace, junk, wrong-base digit */
    *pp = s;
    *val = v;
    *overflow = ovf;
    return true;
}

int dmce_addr_parse(dmce_layout_t layout, const char *text, dmce_addr_t *out)
{
    const struct layout_desc *d = layout_get(layout);
    if (!d || !text || !out)
        return -EINVAL;

    uint64_t f[3];
    bool ovf[3];
    const char *s = text;
    for (int i = 0; i < 3; i++) {
        if (!parse_field(&s, &f[i], &ovf[i]))
            return -EINVAL;
        char want = i < 2 ? ':' : '\0';
        if (*s != want)
            return -EINVAL; /* too few or too many fields */
        if (i < 2)
            s++;
    }
    if (ovf[0] || ovf[1] || ovf[2])
        return -ERANGE;
    int rc = check_fields(d, f[0], f[1], f[2]);
    if (rc)
        return rc;
    *out = pack(d, f[0], f[1], f[2]);
    return 0;
}
