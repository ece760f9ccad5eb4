/*
 * topology.h - NUMA topology (hwloc) and placement (libnuma).
 *
 * hwloc says how many NUMA nodes the machine has (or a synthetic topology
 * string such as "pack:2 numa:1 core:2 pu:1" for tests, since CI machines
 * have one node); libnuma binds memory and threads. On a one-node machine
 * the same calls run and bind to node 0. A node that the topology names
 * but the kernel does not have (synthetic topologies) is reported and the
 * memory is left unbound: placement is an optimization, never a failure.
 */
#ifndef DMCE_RUNTIME_TOPOLOGY_H
#define DMCE_RUNTIME_TOPOLOGY_H

#include <stddef.h>

/* NUMA nodes in the topology (>= 1). synthetic may be NULL or "". -errno on failure. */
int dmce_topology_numa_nodes(const char *synthetic, unsigned *count);

/*
 * Bind [addr, addr+len) to NUMA node `node` before first touch; with
 * move, also move the pages it has now: all of them with CAP_SYS_NICE
 * (MPOL_MF_MOVE_ALL; other processes' mappings stay valid), else those
 * only this process maps (the others stay; new ones come from `node`).
 * Returns 1 if bound, 0 if binding is not possible here (no NUMA
 * support, or the node does not exist in the kernel), -errno on a real
 * failure.
 */
int dmce_numa_bind_memory(void *addr, size_t len, int node, int move);

/* Run the calling thread on `node`'s CPUs. Same return convention. */
int dmce_numa_bind_thread(int node);

#endif /* DMCE_RUNTIME_TOPOLOGY_H */
