/*
 * memd_store.c - the session store's MSMP operations in the memory daemon
 * (out-of-process mode of include/dmce/store.h). No operation is defined
 * yet: memd_store_dispatch declines every op, and the daemon answers them
 * with -EOPNOTSUPP.
 */
#include "memd_internal.h"

int memd_store_dispatch(struct dmce_memd *m, struct memd_conn *c, const uint8_t *p, uint32_t len)
{
    (void)m, (void)c, (void)p, (void)len;
    return 0;
}

void memd_store_worker_fini(struct memd_worker *w)
{
    (void)w;
}
