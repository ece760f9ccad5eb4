/*
 * topology.c - see topology.h.
 */
#include "topology.h"

#include <errno.h>
#include <hwloc.h>
#include <numa.h>
#include <numaif.h>

int dmce_topology_numa_nodes(const char *synthetic, unsigned *count)
{
    hwloc_topology_t topo;
    if (hwloc_topology_init(&topo) < 0)
        return -ENOMEM;
    if (synthetic && *synthetic && hwloc_topology_set_synthetic(topo, synthetic) < 0) {
        hwloc_topology_destroy(topo);
        return -EINVAL;
    }
    if (hwloc_topology_load(topo) < 0) {
        hwloc_topology_destroy(topo);
        return -EIO;
    }
    int n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    hwloc_topology_destroy(topo);
    *count = n > 0 ? (unsigned)n : 1u;
    return 0;
}

static int node_present(int node)
{
    return numa_available() >= 0 && node >= 0 && node <= numa_max_node() &&
           numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node);
}

int dmce_numa_bind_memory(void *addr, size_t len, int node, int move)
{
    if (!node_present(node))
        return 0;
    unsigned long mask[16] = {0};
    if ((unsigned)node >= sizeof(mask) * 8)
        return 0;
    mask[node / (8 * sizeof(long))] |= 1ul << (node % (8 * sizeof(long)));
    /*
     * move: MPOL_MF_MOVE_ALL moves every page, also those other processes
     * map (their mappings stay valid); it needs CAP_SYS_NICE. Without it,
     * MPOL_MF_MOVE moves the pages only this process maps; others stay.
     */
    unsigned flags = move ? MPOL_MF_MOVE_ALL : 0;
    int r = mbind(addr, len, MPOL_BIND, mask, sizeof(mask) * 8, flags);
    if (r < 0 && errno == EPERM && move)
        r = mbind(addr, len, MPOL_BIND, mask, sizeof(mask) * 8, MPOL_MF_MOVE);
    if (r < 0)
        return -errno;
    return 1;
}

int dmce_numa_bind_thread(int node)
{
    if (!node_present(node))
        return 0;
    return numa_run_on_node(node) < 0 ? -errno : 1;
}
