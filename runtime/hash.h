/*
 * hash.h - XXH3-64, the one hash of the runtime: store keys and record
 * checksums (store_table.c), backup page hashes (backup.c).
 *
 * XXH3 is compiled in from Debian's libxxhash-dev header (XXH_INLINE_ALL),
 * so libdmce, its -m32 build included, needs no libxxhash at run time. On
 * x86 an AVX2 build of the same code hashes inputs longer than 240 bytes
 * when the CPU has AVX2 (about 2.5x the SSE2 speed: a 4 KiB value in ~0.1
 * us instead of ~0.27 us); shorter inputs take XXH3's scalar paths, which
 * no vector width changes. The result never depends on the path taken.
 */
#ifndef DMCE_HASH_H
#define DMCE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* XXH3-64 of len bytes at p, seeded; seed 0 equals XXH3_64bits(p, len). */
uint64_t dmce_xxh3(const void *p, size_t len, uint64_t seed);

#endif
