/*
 * transport_ring.c - segments of the ring transport; see transport_ring.h.
 */
#include "transport_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dmce/error.h>

size_t dmce_rt_segment_size(uint32_t capacity)
{
    size_t rs = dmce_ring_segment_size(capacity);
    return rs ? rs + DMCE_RT_CTL_SIZE : 0;
}

static dmce_rt_ctl_t *ctl_of(void *base, uint32_t capacity)
{
    return (dmce_rt_ctl_t *)((uint8_t *)base + dmce_ring_segment_size(capacity));
}

int dmce_rt_create(uint32_t capacity, int *fd_out, dmce_rt_t *rt)
{
    size_t size = dmce_rt_segment_size(capacity);
    if (!size || !fd_out || !rt)
        return -EINVAL;
    int fd = memfd_create("dmce-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int r = 0;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        r = -errno; /* sealed: the client cannot shrink it under our mapping */
        close(fd);
        return r;
    }
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED) {
        r = -errno;
        close(fd);
        return r;
    }
    r = dmce_ring_segment_init(base, size, capacity);
    if (r == 0) {
        dmce_rt_ctl_t *c = ctl_of(base, capacity);
        memset(c, 0, sizeof(*c));
        c->magic = DMCE_RT_MAGIC;
        c->version = DMCE_RT_VERSION;
        c->layout = DMCE_RT_LAYOUT_WORD;
        r = dmce_ring_segment_attach(base, size - DMCE_RT_CTL_SIZE, DMCE_RING_SIDE_SERVER,
                                     &rt->rp);
        rt->ctl = c;
    }
    if (r < 0) {
        munmap(base, size);
        close(fd);
        return r;
    }
    rt->base = base;
    rt->size = size;
    *fd_out = fd;
    return 0;
}

int dmce_rt_map(int fd, size_t size, uint32_t capacity, dmce_rt_t *rt)
{
    if (fd < 0 || !rt || size != dmce_rt_segment_size(capacity) || size == 0)
        return -EINVAL;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size < size)
        return DMCE_ECORRUPT;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED)
        return -errno;
    const dmce_rt_ctl_t *c = ctl_of(base, capacity);
    int r = 0;
    if (c->magic != DMCE_RT_MAGIC)
        r = DMCE_EBADMAGIC;
    else if (c->version != DMCE_RT_VERSION)
        r = DMCE_EVERSION;
    else if (c->layout != DMCE_RT_LAYOUT_WORD)
        r = DMCE_ELAYOUT;
    else
        r = dmce_ring_segment_attach(base, size - DMCE_RT_CTL_SIZE, DMCE_RING_SIDE_CLIENT,
                                     &rt->rp);
    if (r < 0) {
        munmap(base, size);
        return r;
    }
    rt->base = base;
    rt->size = size;
    rt->ctl = ctl_of(base, capacity);
    return 0;
}

void dmce_rt_unmap(dmce_rt_t *rt)
{
    if (!rt || !rt->base)
        return;
    dmce_ring_pair_close(&rt->rp);
    munmap(rt->base, rt->size);
    rt->base = NULL;
}

int dmce_rt_kick(dmce_rt_t *rt, int doorbell_fd)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&rt->ctl->server_parked, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&rt->ctl->server_parked, 0, memory_order_relaxed);
    uint64_t one = 1;
    if (write(doorbell_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        return 0; /* the counter is saturated: the worker is being woken anyway */
    return 1;
}
