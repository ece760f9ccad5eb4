/*
 * make_corpus.c - writes the seed corpus of every fuzz target:
 *
 *   make_corpus DIR      DIR/msmp, DIR/config, DIR/block, DIR/ring, DIR/store
 *
 * The checked-in corpus is tests/fuzz/corpus; regenerate it after a format
 * change with
 *   cmake --build build --target make_corpus &&
 *   rm -rf tests/fuzz/corpus && build/tests/fuzz/make_corpus tests/fuzz/corpus
 * Every file is a valid input: frames of every op (requests and
 * responses; the dispatcher's and the mirroring ops too), config files and command lines, freshly
 * formatted blocks with and without allocations, fresh and used ring segments, fresh store regions
 * and ones with entries (and limbo, expiry, eviction). The script prefixes (block, ring, store) are
 * fixed mixes of operations. The output is deterministic: store regions get a fixed hash seed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "fuzz_common.h"
#include "msmp.h"
#include "msmp_admin.h"
#include "msmp_dispatch.h"
#include "ring.h"
#include "store_table.h"

static const char *outdir;

static void need(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "make_corpus: %s failed\n", what);
        exit(1);
    }
}

static void put(const char *target, const char *name, const void *a, size_t alen, const void *b,
                size_t blen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, target);
    mkdir(outdir, 0755);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    need(f != NULL, path);
    need(fwrite(a, 1, alen, f) == alen, path);
    if (blen)
        need(fwrite(b, 1, blen, f) == blen, path);
    need(fclose(f) == 0, path);
}

/* A fixed mix of script operations: n bytes, op i's first byte is ops[i % nops]. */
static void script(uint8_t *s, size_t n, size_t oplen, const uint8_t *ops, size_t nops,
                   uint32_t salt)
{
    uint32_t x = salt * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        s[i] = (uint8_t)(x >> 16);
    }
    for (size_t i = 0; i * oplen < n; i++)
        s[i * oplen] = ops[i % nops];
}

/* ---- msmp ------------------------------------------------------------------------- */

static void frame(const char *name, unsigned op, int resp, int32_t status, const uint8_t *pl,
                  uint32_t len)
{
    uint8_t buf[DMCE_MSMP_HDR_SIZE];
    dmce_msmp_hdr_t h = {.magic = DMCE_MSMP_MAGIC,
                         .version = DMCE_MSMP_VERSION,
                         .flags = resp ? DMCE_MSMP_FLAG_RESPONSE : 0,
                         .op = (uint16_t)op,
                         .req_id = 0x1000 + op * 2 + (unsigned)resp,
                         .len = len,
                         .status = status};
    dmce_msmp_hdr_encode(&h, buf);
    put("msmp", name, buf, sizeof buf, pl, len);
}

static void corpus_msmp(void)
{
    uint8_t p[DMCE_MSMP_STATS_SIZE + 64];
    dmce_msmp_setup_req_t sq = {.amount = 64 << 20, .flags = 1, .layout = UINT32_MAX};
    memset(sq.token, 0x5a, sizeof sq.token);
    dmce_msmp_setup_req_encode(&sq, p);
    frame("setup_req", DMCE_MSMP_OP_SETUP, 0, 0, p, DMCE_MSMP_SETUP_REQ_SIZE);
    put("msmp", "setup_req.payload", p, DMCE_MSMP_SETUP_REQ_SIZE, NULL, 0);
    dmce_msmp_setup_resp_t sr = {.granted = 64 << 20,
                                 .used = 4096,
                                 .session_id = 7,
                                 .daemon_id = 1,
                                 .layout = 0,
                                 .max_payload = 1 << 20,
                                 .block_first = 1,
                                 .block_last = 16};
    dmce_msmp_setup_resp_encode(&sr, p);
    frame("setup_resp", DMCE_MSMP_OP_SETUP, 1, 0, p, DMCE_MSMP_SETUP_RESP_SIZE);
    put("msmp", "setup_resp.payload", p, DMCE_MSMP_SETUP_RESP_SIZE, NULL, 0);

    dmce_msmp_u64_encode(4096, p);
    frame("malloc_req", DMCE_MSMP_OP_MALLOC, 0, 0, p, 8);
    dmce_msmp_u64_encode(0x0010010000001010ull, p);
    frame("malloc_resp", DMCE_MSMP_OP_MALLOC, 1, 0, p, 8);
    put("msmp", "u64.payload", p, 8, NULL, 0);

    dmce_msmp_rw_req_t rw = {.addr = 0x0010010000001010ull, .len = 16};
    dmce_msmp_rw_req_encode(&rw, p);
    frame("read_req", DMCE_MSMP_OP_READ, 0, 0, p, DMCE_MSMP_RW_REQ_SIZE);
    put("msmp", "read_req.payload", p, DMCE_MSMP_RW_REQ_SIZE, NULL, 0);
    memset(p, 0xab, 16);
    frame("read_resp", DMCE_MSMP_OP_READ, 1, 0, p, 16);
    dmce_msmp_rw_req_encode(&rw, p);
    memset(p + DMCE_MSMP_WRITE_HDR, 0xcd, 16);
    frame("write_req", DMCE_MSMP_OP_WRITE, 0, 0, p, DMCE_MSMP_WRITE_HDR + 16);
    put("msmp", "write_req.payload", p, DMCE_MSMP_WRITE_HDR + 16, NULL, 0);
    dmce_put_le32(p, 16);
    dmce_put_le32(p + 4, 0);
    frame("write_resp", DMCE_MSMP_OP_WRITE, 1, 0, p, DMCE_MSMP_WRITE_RESP_SIZE);

    dmce_msmp_u64_encode(0x0010010000001010ull, p);
    frame("free_req", DMCE_MSMP_OP_FREE, 0, 0, p, 8);
    frame("free_resp", DMCE_MSMP_OP_FREE, 1, 0, NULL, 0);
    frame("disconnect_req", DMCE_MSMP_OP_DISCONNECT, 0, 0, NULL, 0);
    frame("disconnect_resp", DMCE_MSMP_OP_DISCONNECT, 1, 0, NULL, 0);

    uint64_t st[DMCE_STAT_COUNT_];
    for (unsigned i = 0; i < DMCE_STAT_COUNT_; i++)
        st[i] = (uint64_t)i * 1000 + 1;
    frame("stats_req", DMCE_MSMP_OP_STATS, 0, 0, NULL, 0);
    dmce_msmp_stats_encode(st, p);
    frame("stats_resp", DMCE_MSMP_OP_STATS, 1, 0, p, DMCE_MSMP_STATS_SIZE);
    put("msmp", "stats_resp.payload", p, DMCE_MSMP_STATS_SIZE, NULL, 0);
    /* A newer peer: two more values. */
    dmce_put_le32(p, DMCE_STAT_COUNT_ + 2);
    memset(p + DMCE_MSMP_STATS_SIZE, 0x11, 16);
    frame("stats_resp_newer", DMCE_MSMP_OP_STATS, 1, 0, p, DMCE_MSMP_STATS_SIZE + 16);

    dmce_msmp_map_req_t mq = {
        .addr = 0x0010010000001010ull, .len = 4096, .flags = DMCE_MSMP_MAP_WANT_FD};
    dmce_msmp_map_req_encode(&mq, p);
    frame("map_req", DMCE_MSMP_OP_MAP, 0, 0, p, DMCE_MSMP_MAP_REQ_SIZE);
    put("msmp", "map_req.payload", p, DMCE_MSMP_MAP_REQ_SIZE, NULL, 0);
    dmce_msmp_map_resp_t mr = {.block = 3,
                               .flags = DMCE_MSMP_MAP_FD,
                               .block_size = 64 << 20,
                               .data_offset = 2 << 20,
                               .page_size = 4096,
                               .alloc_cell = (2 << 20) + 16,
                               .alloc_size = 4096};
    dmce_msmp_map_resp_encode(&mr, p);
    frame("map_resp", DMCE_MSMP_OP_MAP, 1, 0, p, DMCE_MSMP_MAP_RESP_SIZE);
    put("msmp", "map_resp.payload", p, DMCE_MSMP_MAP_RESP_SIZE, NULL, 0);

#ifdef DMCE_MSMP_RING_REQ_SIZE
    /* ring_open (op 9): sizes only in msmp.h so far; laid out as its comment says. */
    dmce_put_le32(p, 256 << 10);
    dmce_put_le32(p + 4, 0);
    frame("ring_open_req", 9, 0, 0, p, DMCE_MSMP_RING_REQ_SIZE);
    dmce_put_le32(p, 256 << 10);
    dmce_put_le32(p + 4, 0);
    dmce_put_le64(p + 8, 4096 + 2 * (256 << 10) + 4096);
    frame("ring_open_resp", 9, 1, 0, p, DMCE_MSMP_RING_RESP_SIZE);
#endif
    frame("error_resp", DMCE_MSMP_OP_MALLOC, 1, -4010, NULL, 0);
    frame("unknown_op", 0x7777, 0, 0, NULL, 0);
}

/* The mirroring ops (msmp.h) and the dispatcher's (msmp_dispatch.h): every request and response. */
static void corpus_msmp_dispatch(void)
{
    static const char sock[] = "/run/dmce-1000/memd-2.sock";
    uint8_t p[1024];
    int n;

    /* mirroring: dispatcher <-> daemons, daemon <-> daemon */
    dmce_msmp_range_t rg = {.addr = 0x0010010000001010ull, .len = 4096};
    dmce_msmp_range_encode(&rg, p);
    frame("persist_req", DMCE_MSMP_OP_PERSIST, 0, 0, p, DMCE_MSMP_RANGE_SIZE);
    for (unsigned i = 1; i < 3; i++) {
        rg.addr += 8192 * i;
        rg.len = 64 * i;
        dmce_msmp_range_encode(&rg, p + i * DMCE_MSMP_RANGE_SIZE);
    }
    frame("persist_req3", DMCE_MSMP_OP_PERSIST, 0, 0, p, 3 * DMCE_MSMP_RANGE_SIZE);
    frame("persist_resp", DMCE_MSMP_OP_PERSIST, 1, 0, NULL, 0);
    dmce_msmp_mirror_create_t mc = {.block = 9, .primary = 1, .size = 64 << 20};
    dmce_msmp_mirror_create_encode(&mc, p);
    frame("mirror_create_req", DMCE_MSMP_OP_MIRROR_CREATE, 0, 0, p, DMCE_MSMP_MIRROR_CREATE_SIZE);
    frame("mirror_create_resp", DMCE_MSMP_OP_MIRROR_CREATE, 1, 0, p, DMCE_MSMP_MIRROR_CREATE_SIZE);
    dmce_msmp_mirror_start_t ms = {.block = 9, .peer = 2};
    memcpy(ms.path, sock, sizeof sock);
    n = dmce_msmp_mirror_start_encode(&ms, p, sizeof p);
    need(n > 0, "mirror_start encode");
    frame("mirror_start_req", DMCE_MSMP_OP_MIRROR_START, 0, 0, p, (uint32_t)n);
    put("msmp", "mirror_start_req.payload", p, (size_t)n, NULL, 0);
    dmce_msmp_mirror_adopt_t ma = {
        .block = 9, .primary = 1, .size = 4u << 20, .ino = 77, .holder = 2};
    snprintf(ma.name, sizeof(ma.name), "/dmce.0.c.m1.h9");
    n = dmce_msmp_mirror_adopt_encode(&ma, p, sizeof p);
    need(n > 0, "mirror_adopt encode");
    frame("mirror_adopt_req", DMCE_MSMP_OP_MIRROR_ADOPT, 0, 0, p, (uint32_t)n);
    put("msmp", "mirror_adopt_req.payload", p, (size_t)n, NULL, 0);
    dmce_msmp_block_req_encode(9, p);
    frame("promote_req", DMCE_MSMP_OP_PROMOTE, 0, 0, p, DMCE_MSMP_BLOCK_REQ_SIZE);
    dmce_put_le64(p, 12);
    dmce_put_le64(p + 8, 12 << 12);
    frame("promote_resp", DMCE_MSMP_OP_PROMOTE, 1, 0, p, DMCE_MSMP_PROMOTE_RESP_SIZE);
    dmce_msmp_block_req_encode(17, p);
    frame("drop_req", DMCE_MSMP_OP_DROP, 0, 0, p, DMCE_MSMP_BLOCK_REQ_SIZE);
    dmce_msmp_drop_req_encode(17, DMCE_MSMP_DROP_KEEP, p);
    frame("drop_keep_req", DMCE_MSMP_OP_DROP, 0, 0, p, DMCE_MSMP_BLOCK_REQ_SIZE);
    dmce_put_le32(p, DMCE_MSMP_DROP_KEPT);
    dmce_put_le32(p + 4, 0);
    frame("drop_kept_resp", DMCE_MSMP_OP_DROP, 1, 0, p, DMCE_MSMP_DROP_RESP_SIZE);
    frame("blocks_req", DMCE_MSMP_OP_BLOCKS, 0, 0, NULL, 0);
    dmce_put_le32(p, 2);
    dmce_put_le32(p + 4, 0);
    dmce_msmp_block_info_t bi[2] = {
        {.block = 9,
         .role = 0,
         .peer = 2,
         .mirror_state = 2,
         .size = 64 << 20,
         .used = 1 << 20,
         .nallocs = 12,
         .copied = 1 << 20},
        {.block = 17, .role = 1, .peer = 3, .mirror_state = 0, .size = 64 << 20}};
    for (unsigned i = 0; i < 2; i++)
        dmce_msmp_block_info_encode(&bi[i], p + 8 + i * DMCE_MSMP_BLOCK_INFO_SIZE);
    frame("blocks_resp", DMCE_MSMP_OP_BLOCKS, 1, 0, p, 8 + 2 * DMCE_MSMP_BLOCK_INFO_SIZE);
    put("msmp", "blocks_resp.payload", p, 8 + 2 * DMCE_MSMP_BLOCK_INFO_SIZE, NULL, 0);

    /* register: memory daemon -> dispatcher */
    dmce_disp_register_t rq = {.daemon_id = 2,
                               .pid = 4242,
                               .numa_node = 1,
                               .capacity = 1ull << 30,
                               .block_size = 64 << 20,
                               .max_blocks = 16,
                               .block_first = 17,
                               .layout = 0};
    memcpy(rq.path, sock, sizeof sock);
    n = dmce_disp_register_encode(&rq, p, sizeof p);
    need(n > 0, "register encode");
    frame("register_req", DMCE_MSMP_OP_REGISTER, 0, 0, p, (uint32_t)n);
    put("msmp", "register_req.payload", p, (size_t)n, NULL, 0);
    dmce_disp_register_resp_t rs = {.block_first = 17,
                                    .block_count = 16,
                                    .heartbeat_ms = 100,
                                    .flags = DMCE_DISP_MIRRORING,
                                    .epoch = 42};
    dmce_disp_register_resp_encode(&rs, p);
    frame("register_resp", DMCE_MSMP_OP_REGISTER, 1, 0, p, DMCE_DISP_REGISTER_RESP_SIZE);
    put("msmp", "register_resp.payload", p, DMCE_DISP_REGISTER_RESP_SIZE, NULL, 0);

    /* heartbeat: member pulse, monitor pulse */
    dmce_disp_pulse_t pl = {
        .daemon_id = 2, .seq = 77, .used = 1 << 20, .free = 900 << 20, .ops = 123456};
    dmce_disp_pulse_encode(&pl, p);
    frame("heartbeat_req", DMCE_MSMP_OP_HEARTBEAT, 0, 0, p, DMCE_DISP_PULSE_SIZE);
    put("msmp", "heartbeat_req.payload", p, DMCE_DISP_PULSE_SIZE, NULL, 0);
    dmce_disp_monitor_t mon = {.epoch = 42, .live = 0x7, .flags = DMCE_DISP_MIRRORING};
    dmce_disp_monitor_encode(&mon, p);
    frame("heartbeat_resp", DMCE_MSMP_OP_HEARTBEAT, 1, 0, p, DMCE_DISP_MONITOR_SIZE);
    put("msmp", "heartbeat_resp.payload", p, DMCE_DISP_MONITOR_SIZE, NULL, 0);

    /* directory: two daemons (one dead), three blocks (mirrored, single, re-mirroring) */
    dmce_put_le32(p, DMCE_DISP_WANT_BLOCKS);
    dmce_put_le32(p + 4, 0);
    frame("directory_req", DMCE_MSMP_OP_DIRECTORY, 0, 0, p, DMCE_DISP_DIR_REQ_SIZE);
    dmce_disp_dir_hdr_t dh = {
        .epoch = 42, .ndaemons = 2, .nblocks = 3, .flags = DMCE_DISP_MIRRORING};
    dmce_disp_dir_hdr_encode(&dh, p);
    dmce_disp_daemon_t dd[2] = {
        {.id = 1,
         .state = DMCE_DISP_ALIVE,
         .numa_node = 0,
         .pid = 4241,
         .capacity = 1ull << 30,
         .used = 3 << 20,
         .free = 1000 << 20,
         .ops = 99},
        {.id = 2, .state = DMCE_DISP_DEAD, .numa_node = -1, .pid = 4242, .capacity = 1ull << 30}};
    memcpy(dd[0].path, "/run/dmce-1000/memd-1.sock", sizeof "/run/dmce-1000/memd-1.sock");
    memcpy(dd[1].path, sock, sizeof sock);
    for (unsigned i = 0; i < 2; i++)
        need(dmce_disp_daemon_encode(&dd[i], p + DMCE_DISP_DIR_HDR + i * DMCE_DISP_DAEMON_SIZE) ==
                 0,
             "directory daemon encode");
    dmce_disp_block_t db[3] = {
        {.block = 1, .primary = 1, .mirror = 2, .state = DMCE_DISP_MIRRORED},
        {.block = 17, .primary = 1, .state = DMCE_DISP_SINGLE},
        {.block = 18, .primary = 1, .mirror = 3, .state = DMCE_DISP_REMIRRORING}};
    for (unsigned i = 0; i < 3; i++)
        dmce_disp_block_encode(&db[i], p + DMCE_DISP_DIR_HDR + 2 * DMCE_DISP_DAEMON_SIZE +
                                           i * DMCE_DISP_BLOCK_SIZE);
    size_t dn = dmce_disp_dir_size(2, 3);
    frame("directory_resp", DMCE_MSMP_OP_DIRECTORY, 1, 0, p, (uint32_t)dn);
    put("msmp", "directory_resp.payload", p, dn, NULL, 0);

    /* pick, session */
    dmce_disp_pick_t pk = {.size = 4096, .numa_node = 1, .exclude = 3};
    dmce_disp_pick_encode(&pk, p);
    frame("pick_req", DMCE_MSMP_OP_PICK, 0, 0, p, DMCE_DISP_PICK_SIZE);
    put("msmp", "pick_req.payload", p, DMCE_DISP_PICK_SIZE, NULL, 0);
    dmce_disp_u32_encode(2, p);
    frame("pick_resp", DMCE_MSMP_OP_PICK, 1, 0, p, DMCE_DISP_U32_RESP_SIZE);
    frame("session_req", DMCE_MSMP_OP_SESSION, 0, 0, NULL, 0);
    dmce_disp_u32_encode(0x80001234u, p);
    frame("session_resp", DMCE_MSMP_OP_SESSION, 1, 0, p, DMCE_DISP_U32_RESP_SIZE);
    put("msmp", "u32_resp.payload", p, DMCE_DISP_U32_RESP_SIZE, NULL, 0);

    /* block_event, mirror_peer */
    dmce_disp_event_msg_t ev = {
        .daemon_id = 1, .block = 17, .event = DMCE_DISP_EV_MIRRORED, .peer = 2, .bytes = 64 << 20};
    dmce_disp_event_encode(&ev, p);
    frame("block_event_req", DMCE_MSMP_OP_BLOCK_EVENT, 0, 0, p, DMCE_DISP_EVENT_SIZE);
    put("msmp", "block_event_req.payload", p, DMCE_DISP_EVENT_SIZE, NULL, 0);
    frame("block_event_resp", DMCE_MSMP_OP_BLOCK_EVENT, 1, 0, NULL, 0);
    dmce_disp_peer_req_encode(1, 17, p);
    frame("mirror_peer_req", DMCE_MSMP_OP_MIRROR_PEER, 0, 0, p, DMCE_DISP_PEER_REQ_SIZE);
    n = dmce_disp_peer_resp_encode(2, sock, p, sizeof p);
    need(n > 0, "mirror_peer encode");
    frame("mirror_peer_resp", DMCE_MSMP_OP_MIRROR_PEER, 1, 0, p, (uint32_t)n);
    put("msmp", "mirror_peer_resp.payload", p, (size_t)n, NULL, 0);
    frame("mirror_peer_error_resp", DMCE_MSMP_OP_MIRROR_PEER, 1, -4010, NULL, 0);

    /* disp_stats, and a newer dispatcher's (two more values) */
    uint64_t v[DMCE_DSTAT_COUNT_ + 2];
    for (unsigned i = 0; i < DMCE_DSTAT_COUNT_ + 2; i++)
        v[i] = (uint64_t)i * 100 + 3;
    frame("disp_stats_req", DMCE_MSMP_OP_DISP_STATS, 0, 0, NULL, 0);
    dmce_msmp_values_encode(v, DMCE_DSTAT_COUNT_, p);
    frame("disp_stats_resp", DMCE_MSMP_OP_DISP_STATS, 1, 0, p, 8 + 8 * DMCE_DSTAT_COUNT_);
    put("msmp", "disp_stats_resp.payload", p, 8 + 8 * DMCE_DSTAT_COUNT_, NULL, 0);
    dmce_msmp_values_encode(v, DMCE_DSTAT_COUNT_ + 2, p);
    frame("disp_stats_resp_newer", DMCE_MSMP_OP_DISP_STATS, 1, 0, p,
          8 + 8 * (DMCE_DSTAT_COUNT_ + 2));

    /* administration: moves, drains, jobs, daemons, sessions */
    dmce_adm_pair_encode(7, 2, p);
    frame("handoff_req", DMCE_MSMP_OP_HANDOFF, 0, 0, p, DMCE_ADM_PAIR_SIZE);
    frame("release_req", DMCE_MSMP_OP_RELEASE, 0, 0, p, DMCE_ADM_PAIR_SIZE);
    frame("drain_req", DMCE_MSMP_OP_DRAIN, 0, 0, p, DMCE_ADM_PAIR_SIZE);
    dmce_adm_handoff_t ho = {.block = 7, .mirror_daemon = 3, .size = 4u << 20};
    snprintf(ho.name, sizeof ho.name, "/dmce.1000.c.m1.b7");
    snprintf(ho.peer, sizeof ho.peer, "%s", sock);
    n = dmce_adm_handoff_encode(&ho, p, sizeof p);
    need(n > 0, "handoff encode");
    frame("handoff_resp", DMCE_MSMP_OP_HANDOFF, 1, 0, p, (uint32_t)n);
    const dmce_adm_owner_t owners[3] = {{5, 1u << 20, 1}, {9, 3u << 20, 12}, {77, 4096, 2}};
    ho.has_owners = 1;
    ho.nowners = 3;
    ho.owners = owners;
    n = dmce_adm_handoff_encode(&ho, p, sizeof p);
    need(n > 0, "handoff encode (owners)");
    frame("handoff_resp_owners", DMCE_MSMP_OP_HANDOFF, 1, 0, p, (uint32_t)n);
    dmce_adm_adopt_t ad = {.block = 7, .from = 1};
    snprintf(ad.path, sizeof ad.path, "%s", sock);
    n = dmce_adm_adopt_encode(&ad, p, sizeof p);
    need(n > 0, "adopt encode");
    frame("adopt_req", DMCE_MSMP_OP_ADOPT, 0, 0, p, (uint32_t)n);
    dmce_adm_migrate_encode(&(dmce_adm_migrate_t){.block = 7, .to = 2, .node = -1}, p);
    frame("migrate_req", DMCE_MSMP_OP_MIGRATE, 0, 0, p, DMCE_ADM_MIGRATE_SIZE);
    dmce_adm_jobs_hdr_encode(1, p);
    dmce_adm_job_encode(&(dmce_adm_job_t){.id = 1, .block = 7, .from = 1, .to = 2,
                                          .state = DMCE_ADM_JOB_DONE, .bytes = 4u << 20,
                                          .age_ms = 10, .took_us = 300},
                        p + DMCE_ADM_JOBS_HDR);
    frame("jobs_resp", DMCE_MSMP_OP_JOBS, 1, 0, p, (uint32_t)dmce_adm_jobs_size(1));
    dmce_adm_daemons_hdr_encode(1, p);
    dmce_adm_daemon_t ad1 = {.id = 1, .state = DMCE_DISP_ALIVE, .numa_node = 0, .pid = 42,
                            .primaries = 2, .capacity = 1u << 30, .block_size = 4u << 20};
    snprintf(ad1.path, sizeof ad1.path, "%s", sock);
    need(dmce_adm_daemon_encode(&ad1, p + DMCE_ADM_DAEMONS_HDR) == 0, "daemon encode");
    frame("daemons_resp", DMCE_MSMP_OP_DAEMONS, 1, 0, p, (uint32_t)dmce_adm_daemons_size(1));
    dmce_adm_sessions_hdr_encode(1, p);
    dmce_adm_session_encode(&(dmce_adm_session_t){.id = 9, .pid = 42, .uid = 1000,
                                                  .reserved = 1u << 20},
                            p + DMCE_ADM_SESSIONS_HDR);
    frame("sessions_resp", DMCE_MSMP_OP_SESSIONS, 1, 0, p, (uint32_t)dmce_adm_sessions_size(1));

    /* backups: request, restore, status with a table of two */
    dmce_adm_backup_t bq = {.block = 7, .flags = DMCE_ADM_BACKUP_FULL};
    snprintf(bq.dir, sizeof bq.dir, "/var/backups/dmce");
    n = dmce_adm_backup_encode(&bq, p, sizeof p);
    need(n > 0, "backup encode");
    frame("backup_req", DMCE_MSMP_OP_BACKUP, 0, 0, p, (uint32_t)n);
    bq.flags = 0;
    n = dmce_adm_backup_encode(&bq, p, sizeof p);
    need(n > 0, "restore encode");
    frame("restore_req", DMCE_MSMP_OP_RESTORE, 0, 0, p, (uint32_t)n);
    dmce_adm_bk_status_t bs = {.task = {.id = 3, .kind = DMCE_ADM_TASK_BACKUP,
                                        .state = DMCE_ADM_JOB_FAILED, .err = -ENOSPC,
                                        .blocks_total = 2, .blocks_done = 1,
                                        .bytes_total = 8u << 20, .bytes_done = 4u << 20,
                                        .bytes_written = 1u << 20, .pages_written = 256,
                                        .elapsed_us = 1234},
                               .interval_s = 60, .count = 2};
    snprintf(bs.task.detail, sizeof bs.task.detail, "block 8: cannot write: No space left");
    snprintf(bs.dir, sizeof bs.dir, "/var/backups/dmce/memd-1");
    n = dmce_adm_bk_status_encode(&bs, 2, p, sizeof p);
    need(n > 0, "backup status encode");
    for (uint32_t i = 0; i < 2; i++)
        dmce_adm_bk_entry_encode(&(dmce_adm_bk_entry_t){.block = 7 + i, .mirror_daemon = 2,
                                                        .page_size = 4096, .pages = 1024,
                                                        .size = 4u << 20, .generation = 3,
                                                        .files = 2, .disk_bytes = 1u << 20,
                                                        .age_ms = 500, .took_us = 900},
                                 p + n + i * DMCE_ADM_BK_ENTRY_SIZE);
    frame("backup_status_resp", DMCE_MSMP_OP_BACKUP_STATUS, 1, 0, p,
          (uint32_t)dmce_adm_bk_status_size(&bs, 2));
}

/* ---- config ------------------------------------------------------------------------- */

static void cfg(const char *name, const char *file, const char *const *args)
{
    char buf[4096];
    size_t n = strlen(file);
    memcpy(buf, file, n);
    for (int i = 0; args && args[i]; i++) {
        buf[n++] = 0;
        size_t l = strlen(args[i]);
        memcpy(buf + n, args[i], l);
        n += l;
    }
    put("config", name, buf, n, NULL, 0);
}

static void corpus_config(void)
{
    cfg("file_all",
        "# every kind of setting\n"
        "id = 7\n"
        "runtime_dir = /run/dmce-1000\n"
        "block_size = 128M\n"
        "blocks_initial = 4\n"
        "numa_node = -1\n"
        "granule = 256\n"
        "max_payload = 0x100000\n"
        "layout = 16-16-32   # trailing comment\n"
        "prefault = off\n"
        "socket = /tmp/memd-7.sock\n"
        "log_level = DEBUG\n"
        "grace_ms = -9223372036854775808\n"
        "cache_max = 1T\n",
        NULL);
    cfg("file_spaces", "\t  id=4095\r\n\n   # only a comment\nblock-size\t=\t1G\nprefault = TRUE\n",
        NULL);
    cfg("file_bad_value", "id = 7\nblock_size = 12Q\n", NULL);
    cfg("file_bad_line", "id = 7\nthis line has no equals sign\n", NULL);
    cfg("file_unknown", "no_such_setting = 1\n", NULL);
    cfg("file_range", "granule = 8192\n", NULL);
    static const char *const a1[] = {"--id=3",          "--granule",        "512",
                                     "--prefault",      "--layout",         "12-12-40",
                                     "--socket=/tmp/s", "--log-level=warn", NULL};
    cfg("args_all", "", a1);
    static const char *const a2[] = {"--config", "x", "--block_size=2G", "--dump-config", NULL};
    cfg("args_config", "id = 9\nmax_payload = 64K\n", a2);
    static const char *const a3[] = {"--config=x", "--numa_node", "1023", NULL};
    cfg("args_config_eq", "blocks_initial = 4096\n", a3);
    static const char *const a4[] = {"--help", NULL};
    cfg("args_help", "", a4);
    static const char *const a5[] = {"--id", NULL};
    cfg("args_missing_value", "", a5);
    static const char *const a6[] = {"positional", NULL};
    cfg("args_positional", "", a6);
}

/* ---- block --------------------------------------------------------------------------- */

#define BLOCK_SCRIPT 64u

static void block_file(const char *name, const void *blk, size_t size, uint32_t salt)
{
    static const uint8_t ops[] = {0, 2, 1, 4, 3, 7, 5, 6, 0, 2};
    uint8_t s[BLOCK_SCRIPT];
    script(s, sizeof s, 8, ops, sizeof ops, salt);
    put("block", name, s, sizeof s, blk, size);
}

static void corpus_block(void)
{
    size_t size = 16384;
    void *b = aligned_alloc(64, 32768);
    need(b != NULL, "alloc");
    memset(b, 0, 32768);
    need(dmce_block_format(b, size, 64, 4096, 1, 0) == 0, "block format");
    block_file("fresh_16k_g64", b, size, 1);

    memset(b, 0, 32768);
    need(dmce_block_format(b, size, 64, 4096, 2, DMCE_BLOCK_ZEROED) == 0, "block format");
    uint64_t off[8];
    for (unsigned i = 0; i < 8; i++) {
        need(dmce_alloc(b, 1 + i * 300, 1 + i % 3, &off[i]) == 0, "alloc");
        memset((uint8_t *)b + off[i], 0x40 + (int)i, 1 + i * 300);
    }
    need(dmce_alloc_free(b, off[2], NULL, NULL) == 0, "free");
    need(dmce_alloc_free(b, off[5], NULL, NULL) == 0, "free");
    need(dmce_block_verify(b) == 0, "verify");
    block_file("allocs_16k_g64_zeroed", b, size, 2);

    size = 32768;
    memset(b, 0, 32768);
    need(dmce_block_format(b, size, 128, 4096, 3, DMCE_BLOCK_ZEROED) == 0, "block format");
    for (unsigned i = 0; i < 40; i++) {
        uint64_t o;
        if (dmce_alloc(b, 16 + (i * 97) % 700, i % 4, &o) == 0 && i % 3 == 0)
            need(dmce_alloc_free(b, o, NULL, NULL) == 0, "free");
    }
    need(dmce_block_verify(b) == 0, "verify");
    block_file("many_32k_g128", b, size, 3);

    size = 8192;
    memset(b, 0, 32768);
    need(dmce_block_format(b, size, 4096, 4096, 4, 0) == 0, "block format");
    uint64_t o;
    need(dmce_alloc(b, 100, 9, &o) == 0, "alloc");
    block_file("one_8k_g4096", b, size, 4);
    free(b);
}

/* ---- ring ---------------------------------------------------------------------------- */

#define RING_SCRIPT 64u

static void ring_file(const char *name, const void *seg, size_t size, uint32_t salt)
{
    static const uint8_t ops[] = {0, 3, 6, 8, 10, 1, 4, 7, 9, 14, 11, 5, 2};
    uint8_t s[RING_SCRIPT];
    script(s, sizeof s, 4, ops, sizeof ops, salt);
    put("ring", name, s, sizeof s, seg, size);
}

static void corpus_ring(void)
{
    size_t size = dmce_ring_segment_size(4096);
    uint8_t *seg = aligned_alloc(64, dmce_ring_segment_size(16384));
    need(seg != NULL, "alloc");
    memset(seg, 0, dmce_ring_segment_size(16384));
    need(dmce_ring_segment_init(seg, size, 4096) == 0, "ring init");
    ring_file("fresh_4k", seg, size, 1);

    /* Positions just short of the 64-bit wrap, data pending in both rings. */
    for (unsigned i = 0; i < 2; i++) {
        dmce_ring_ctl_t *c =
            (dmce_ring_ctl_t *)(seg + sizeof(dmce_ring_seg_hdr_t) + i * sizeof(dmce_ring_ctl_t));
        atomic_store(&c->head, UINT64_MAX - 40);
        atomic_store(&c->tail, UINT64_MAX - 40);
    }
    dmce_ring_pair_t cl, sv;
    need(dmce_ring_segment_attach(seg, size, DMCE_RING_SIDE_CLIENT, &cl) == 0, "attach");
    need(dmce_ring_segment_attach(seg, size, DMCE_RING_SIDE_SERVER, &sv) == 0, "attach");
    uint8_t msg[300];
    for (unsigned i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)i;
    need(dmce_ring_write(&cl.tx, msg, 100) == 100, "write");
    need(dmce_ring_write(&sv.tx, msg, 300) == 300, "write");
    ring_file("wrap_pending_4k", seg, size, 2);

    size = dmce_ring_segment_size(8192);
    memset(seg, 0, size);
    need(dmce_ring_segment_init(seg, size, 8192) == 0, "ring init");
    need(dmce_ring_segment_attach(seg, size, DMCE_RING_SIDE_CLIENT, &cl) == 0, "attach");
    need(dmce_ring_segment_attach(seg, size, DMCE_RING_SIDE_SERVER, &sv) == 0, "attach");
    for (unsigned k = 0; k < 25; k++)
        need(dmce_ring_write(&cl.tx, msg, 300) == 300, "write");
    uint8_t sink[8192];
    need(dmce_ring_read(&sv.rx, sink, 7000) == 7000, "read");
    need(dmce_ring_write(&cl.tx, msg, 250) == 250, "write");
    ring_file("used_8k", seg, size, 3);

    size = dmce_ring_segment_size(16384);
    memset(seg, 0, size);
    need(dmce_ring_segment_init(seg, size, 16384) == 0, "ring init");
    need(dmce_ring_segment_attach(seg, size, DMCE_RING_SIDE_SERVER, &sv) == 0, "attach");
    dmce_ring_close(&sv.tx);
    ring_file("closed_16k", seg, size, 4);
    free(seg);
}

/* ---- store ---------------------------------------------------------------------------- */

#define STORE_SCRIPT 128u

static uint64_t fixed_now(void *arg)
{
    return *(uint64_t *)arg;
}

static void store_file(const char *name, const void *reg, size_t size, uint32_t salt, int forge)
{
    static const uint8_t ops[] = {0, 5, 3, 6, 8, 1, 9, 10, 7, 12, 4, 11, 2, 14, 13, 15, 5, 0};
    uint8_t s[STORE_SCRIPT];
    script(s, sizeof s, 4, ops, sizeof ops, salt);
    s[0] = (uint8_t)((s[0] & ~1u) | (forge ? 1u : 0u)); /* op 0 is a get either way */
    s[1] = 0;                                           /* the clock the entries were made at */
    put("store", name, s, sizeof s, reg, size);
}

/* Format, then a fixed hash seed and table id (so that the file is the same every time). */
static void store_format(uint8_t *b, uint64_t size, const dmce_stab_params_t *p)
{
    memset(b, 0, size);
    need(dmce_stab_format(b, size, p) == 0, "store format");
    dmce_stab_hdr_t *h = (dmce_stab_hdr_t *)b;
    h->seed = 0x5eed1234u;
    h->table_id = 0x7ab1e1d0c0ffee01ull; /* format draws it at random, like the seed */
    h->geom_csum = dmce_stab_geom_csum(h);
    need(dmce_stab_attach(b, size) == 0, "store attach");
}

static void corpus_store(void)
{
    uint64_t size = 16384;
    uint8_t *b = aligned_alloc(64, 65536);
    need(b != NULL, "alloc");
    dmce_stab_params_t p;
    memset(&p, 0, sizeof p);
    p.max_key = 32;
    p.max_value = 200;
    p.nslots = 4;
    p.nstripes = 1;
    p.nbuckets = 8;
    store_format(b, size, &p);
    store_file("fresh_16k", b, size, 1, 0);

    uint64_t now = 1700000000000ull; /* the fuzzer's clock starts here */
    dmce_stab_opts_t o;
    memset(&o, 0, sizeof o);
    o.now_ms = fixed_now;
    o.now_arg = &now;
    dmce_stab_t *t;
    need(dmce_stab_open(b, size, &o, &t) == 0, "store open");
    char key[32], val[200];
    for (unsigned i = 0; i < 12; i++) {
        int kn = snprintf(key, sizeof key, i < 8 ? "key-%u" : "other-%u", i);
        memset(val, 'a' + (int)i, sizeof val);
        need(dmce_stab_set(t, key, (uint32_t)kn, val, 20 + i * 13, i == 5 ? 60000 : 0, 0, 0,
                           NULL) == 0,
             "store set");
    }
    need(dmce_stab_set(t, "key-1", 5, "new", 3, 0, 0, 0, NULL) == 0, "store set");
    need(dmce_stab_del(t, "key-6", 5, 0) == 0, "store del");
    need(dmce_stab_verify(t) == 0, "store verify");
    dmce_stab_close(t);
    store_file("entries_16k", b, size, 2, 0);
    store_file("entries_16k_forged", b, size, 3, 1);

    size = 65536;
    memset(&p, 0, sizeof p);
    p.max_key = 64;
    p.max_value = 1000;
    p.nslots = 8;
    p.nstripes = 2;
    p.nbuckets = 16;
    p.flags = DMCE_STAB_EVICT;
    p.default_ttl_ms = 5000;
    store_format(b, size, &p);
    need(dmce_stab_open(b, size, &o, &t) == 0, "store open");
    char big[1000];
    memset(big, 'z', sizeof big);
    for (unsigned i = 0; i < 200; i++) {
        int kn = snprintf(key, sizeof key, "key-%u", i % 8 + (i / 8) * 100);
        int r = dmce_stab_set(t, key, (uint32_t)kn, big, 100 + (i * 37) % 900, 0, 0, 0, NULL);
        need(r == 0 || r == -ENOSPC, "store set");
    }
    need(dmce_stab_verify(t) == 0, "store verify");
    dmce_stab_close(t);
    ((dmce_stab_hdr_t *)b)->reap_ms = 0; /* a monotonic clock reading: keep the file stable */
    store_file("evict_64k", b, size, 4, 0);
    free(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR\n");
        return 2;
    }
    outdir = argv[1];
    corpus_msmp();
    corpus_msmp_dispatch();
    corpus_config();
    corpus_block();
    corpus_ring();
    corpus_store();
    printf("make_corpus: corpus written to %s\n", outdir);
    return 0;
}
