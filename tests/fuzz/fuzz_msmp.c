/*
 * fuzz_msmp.c - fuzz target for every MSMP decoder.
 *
 * Built two ways:
 *   - with clang -fsanitize=fuzzer (cmake -DDMCE_FUZZ=ON, target
 *     dmce-fuzz-msmp): libFuzzer drives LLVMFuzzerTestOneInput;
 *   - as a plain program (ctest "msmp_fuzz"): a bounded, seeded random and
 *     mutation run over the same function, so every test run exercises the
 *     decoders on hostile input under the sanitizers.
 * Checks: no decoder reads outside its input (ASan), every accepted header
 * respects the limits, and encode(decode(x)) gives back x for every payload
 * a decoder accepts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_msmp: check failed: %s (line %d)\n", #cond, __LINE__);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= DMCE_MSMP_HDR_SIZE) {
        dmce_msmp_hdr_t h;
        if (dmce_msmp_hdr_decode(data, 1u << 20, &h) == 0) {
            CHECK(h.len <= (1u << 20));
            uint8_t back[DMCE_MSMP_HDR_SIZE];
            dmce_msmp_hdr_encode(&h, back);
            CHECK(memcmp(back, data, DMCE_MSMP_HDR_SIZE) == 0);
        }
    }
    /* Payload decoders see the input as a payload of every size. */
    dmce_msmp_setup_req_t sq;
    if (dmce_msmp_setup_req_decode(data, size, &sq) == 0) {
        uint8_t b[DMCE_MSMP_SETUP_REQ_SIZE];
        dmce_msmp_setup_req_encode(&sq, b);
        CHECK(memcmp(b, data, sizeof(b)) == 0);
    }
    dmce_msmp_setup_resp_t sr;
    if (dmce_msmp_setup_resp_decode(data, size, &sr) == 0) {
        uint8_t b[DMCE_MSMP_SETUP_RESP_SIZE];
        dmce_msmp_setup_resp_encode(&sr, b);
        CHECK(memcmp(b, data, sizeof(b)) == 0);
        CHECK(sr.block_first <= sr.block_last);
    }
    dmce_msmp_rw_req_t rw;
    if (dmce_msmp_read_req_decode(data, size, &rw) == 0)
        CHECK(size == DMCE_MSMP_RW_REQ_SIZE);
    if (dmce_msmp_write_req_decode(data, size, &rw) == 0)
        CHECK((uint64_t)rw.len + DMCE_MSMP_WRITE_HDR == size);
    uint64_t v;
    if (dmce_msmp_u64_decode(data, size, &v) == 0)
        CHECK(size == 8);
    uint64_t stats[DMCE_STAT_COUNT_];
    (void)dmce_msmp_stats_decode(data, size, stats);
    return 0;
}

#ifndef DMCE_LIBFUZZER
/* Standalone driver: seeded random inputs plus mutations of valid frames. */
int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 200000;
    srand(12345);
    uint8_t buf[512];
    uint8_t seeds[4][64];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC, .version = DMCE_MSMP_VERSION, .op = 3,
                         .req_id = 9, .len = 16};
    dmce_msmp_hdr_encode(&h, seeds[0]);
    dmce_msmp_setup_req_t sq = {.amount = 1 << 20, .flags = 1, .layout = 0};
    dmce_msmp_setup_req_encode(&sq, seeds[1]);
    dmce_msmp_setup_resp_t sr = {.max_payload = 1 << 20, .block_first = 1, .block_last = 16};
    dmce_msmp_setup_resp_encode(&sr, seeds[2]);
    dmce_msmp_rw_req_t rw = {.addr = 0x1000001000ull, .len = 8};
    dmce_msmp_rw_req_encode(&rw, seeds[3]);
    static const size_t seed_len[4] = {DMCE_MSMP_HDR_SIZE, DMCE_MSMP_SETUP_REQ_SIZE,
                                       DMCE_MSMP_SETUP_RESP_SIZE, DMCE_MSMP_RW_REQ_SIZE + 8};
    for (unsigned long i = 0; i < iters; i++) {
        size_t len;
        if (i % 2) {
            unsigned s = (unsigned)(i / 2) % 4;
            len = seed_len[s] + (size_t)(rand() % 3) - 1;
            memcpy(buf, seeds[s], sizeof(seeds[s]));
            for (int k = rand() % 4; k >= 0; k--)
                buf[(size_t)rand() % (len ? len : 1)] ^= (uint8_t)(1u << (rand() % 8));
        } else {
            len = (size_t)rand() % sizeof(buf);
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)rand();
        }
        /* Exact-size heap copy so ASan catches any read past the end. */
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, buf, len);
        LLVMFuzzerTestOneInput(p, len);
        free(p);
    }
    printf("fuzz_msmp: %lu inputs, no failure\n", iters);
    return 0;
}
#endif
