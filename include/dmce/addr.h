/*
 * addr.h - the DMCE virtual address.
 *
 * A dmce_addr_t is 64 bits: server ID | block ID | cell (byte offset in the
 * block), most significant field first (seed 002, FIG. 8-10). The field
 * widths are a cluster-wide layout:
 *
 *   DMCE_LAYOUT_12_12_40   12-bit server, 12-bit block, 40-bit cell (1 TiB blocks)
 *   DMCE_LAYOUT_16_16_32   16-bit server, 16-bit block, 32-bit cell (4 GiB blocks)
 *
 * Server ID 0 always means "this host", so a program's addresses do not
 * change when memory is local. Block ID 0 is reserved and never names a
 * block, so the null address (0) and every address in block 0 are never
 * valid allocations. Because an address names a block and not a machine
 * location, a block can move by changing one table entry.
 *
 * Text form: "S:B:0xCELL" with S and B decimal, e.g. "0:17:0x1f40".
 * All functions here are pure, thread-safe and never block.
 */
#ifndef DMCE_ADDR_H
#define DMCE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#include <dmce/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t dmce_addr_t;

#define DMCE_ADDR_NULL ((dmce_addr_t)0)
#define DMCE_SERVER_LOCAL 0u

typedef enum dmce_layout {
    DMCE_LAYOUT_12_12_40 = 0, /* default */
    DMCE_LAYOUT_16_16_32 = 1,
} dmce_layout_t;

/* Field widths of a layout. */
typedef struct dmce_layout_info {
    unsigned server_bits;
    unsigned block_bits;
    unsigned cell_bits;
} dmce_layout_info_t;

/* A decoded address. */
typedef struct dmce_addr_parts {
    uint32_t server; /* 0 = this host */
    uint32_t block;  /* 0 is reserved */
    uint64_t cell;   /* byte offset in the block */
} dmce_addr_parts_t;

/* Longest text form, including the terminating NUL. */
#define DMCE_ADDR_STRLEN 32

/* Widths of `layout`. Returns 0, or -EINVAL for an unknown layout. */
DMCE_API int dmce_layout_info(dmce_layout_t layout, dmce_layout_info_t *out);

/* Layout by name: "12-12-40" or "16-16-32" (also "12|12|40"). 0 or -EINVAL. */
DMCE_API int dmce_layout_parse(const char *name, dmce_layout_t *out);

/* Name of a layout ("12-12-40"), or "?" when unknown. Static string. */
DMCE_API const char *dmce_layout_name(dmce_layout_t layout);

/*
 * Build an address. Fails with -EINVAL for an unknown layout, -ERANGE when
 * a field does not fit its width, DMCE_ENOBLOCK when block is 0.
 */
DMCE_API int dmce_addr_encode(dmce_layout_t layout, uint32_t server, uint32_t block,
                              uint64_t cell, dmce_addr_t *out);

/*
 * Split an address. Never fails for a known layout (every 64-bit value
 * splits); -EINVAL for an unknown layout. Does not check validity: see
 * dmce_addr_validate.
 */
DMCE_API int dmce_addr_decode(dmce_layout_t layout, dmce_addr_t addr, dmce_addr_parts_t *out);

/*
 * Check that an address could name memory: not null (DMCE_ENULLADDR), block
 * ID not 0 (DMCE_ENOBLOCK), -EINVAL for an unknown layout. 0 when valid.
 * Whether memory is actually allocated there is for the server to say.
 */
DMCE_API int dmce_addr_validate(dmce_layout_t layout, dmce_addr_t addr);

/*
 * Add a byte offset to an address, staying in the same block.
 * -ERANGE if the cell would overflow its width.
 */
DMCE_API int dmce_addr_add(dmce_layout_t layout, dmce_addr_t addr, uint64_t off,
                           dmce_addr_t *out);

/*
 * Format as "S:B:0xCELL" into buf (at least DMCE_ADDR_STRLEN bytes for any
 * address). Returns the length written (without NUL), -ENOSPC if buf is too
 * small (buf then holds a truncated, NUL-terminated string when len > 0),
 * -EINVAL for an unknown layout.
 */
DMCE_API int dmce_addr_format(dmce_layout_t layout, dmce_addr_t addr, char *buf, size_t len);

/*
 * Parse the text form back. Accepts decimal or 0x-hex in each field,
 * surrounding whitespace not allowed. Returns 0 or -EINVAL (syntax) or
 * -ERANGE (a field too wide for the layout) or DMCE_ENOBLOCK (block 0).
 */
DMCE_API int dmce_addr_parse(dmce_layout_t layout, const char *text, dmce_addr_t *out);

#ifdef __cplusplus
}
#endif

#endif /* DMCE_ADDR_H */
