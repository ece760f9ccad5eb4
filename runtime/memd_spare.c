/*
 * memd_spare.c - spare block objects: a block's memory allocated before it
 * is needed (config spare_blocks; docs/config.md, docs/perf.md).
 *
 * Making a block costs the allocation of its object: fallocate() of
 * block_size bytes, in which the kernel allocates and charges every page
 * (3-8 ms per 16 MiB on the reference machine). A malloc that needs a new
 * block waits for it, and so does a re-mirror, which makes a copy on a peer
 * for every block that lost one (one fallocate per block, then the copy).
 * The spare thread makes up to spare_blocks such objects in the background:
 * unnamed (O_TMPFILE in the block directory), sized and fallocate()d, which
 * is all memd_block_create would do before mapping; a new block of
 * block_size takes one and gives it the block's name (linkat through
 * /proc/self/fd), which costs microseconds.
 *
 * Rules:
 *   - Spares fill free block slots only: blocks + spares <= max_blocks, so a
 *     daemon never holds more memory than its capacity. When a block takes
 *     a slot a spare held (a copy for a peer, a block moved in), the spare
 *     goes (memd_spare_blocks_changed).
 *   - Unnamed: nothing else can open one, and a daemon killed with spares
 *     leaves nothing behind (the kernel frees them with its descriptors).
 *     They do count in the filesystem's usage (df), not in its listing.
 *   - A block maker that finds no spare while one is being made waits for
 *     it rather than racing it for the last room of a nearly full tmpfs.
 *   - A spare that cannot be made (a full tmpfs) is not an error: block
 *     makers do the work themselves as before, and the thread tries again
 *     after SPARE_RETRY_MS or as soon as a block goes. A directory without
 *     O_TMPFILE or fallocate turns spares off (logged once).
 *
 * Locks: grow_lock > spare_lock. The spare thread takes spare_lock only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <dmce/error.h>

#include "log.h"
#include "memd_internal.h"
#include "util.h"

#define SPARE_RETRY_MS 1000 /* after a spare could not be made */

/* The directory block objects live in: shm_dir, or where glibc puts POSIX shm. */
static const char *obj_dir(const struct dmce_memd *m)
{
    return m->cfg.shm_dir[0] ? m->cfg.shm_dir : "/dev/shm";
}

int memd_obj_size(const struct dmce_memd *m, int fd, uint64_t size, const char *what)
{
    if (ftruncate(fd, (off_t)size) < 0) {
        int r = -errno;
        LOG_ERROR("%s: cannot size it to %llu bytes: %s", what, (unsigned long long)size,
                  strerror(errno));
        return r;
    }
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 0;
    if (errno == ENOSPC || errno == ENOMEM) {
        LOG_ERROR("%s: no memory for %llu more bytes in %s (tmpfs full?)", what,
                  (unsigned long long)size, obj_dir(m));
        return DMCE_ENOMEM;
    }
    if (errno == EOPNOTSUPP)
        return -EOPNOTSUPP; /* the caller decides whether a lazy object will do */
    int r = -errno;
    LOG_ERROR("%s: fallocate: %s", what, strerror(errno));
    return r;
}

/* Room for one more spare: under spare_lock. */
static int spare_wanted(const struct dmce_memd *m)
{
    unsigned have = m->nspares + (unsigned)m->spare_making;
    return have < (unsigned)m->cfg.spare_blocks &&
           atomic_load(&m->nblocks) + have < (unsigned)m->cfg.max_blocks;
}

/*
 * One spare: an unnamed object of block_size, allocated. Its descriptor,
 * or DMCE_ENOMEM (no room now), or another negative errno (never: spares
 * go off).
 */
static int spare_make(struct dmce_memd *m)
{
    int fd = open(obj_dir(m), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == ENOSPC || errno == ENOMEM ? DMCE_ENOMEM : -errno;
    /* Quietly: a full tmpfs is logged by the block maker that meets it. */
    int r = 0;
    if (ftruncate(fd, (off_t)m->cfg.block_size) < 0)
        r = -errno;
    else if (fallocate(fd, 0, 0, (off_t)m->cfg.block_size) < 0)
        r = errno == ENOSPC || errno == ENOMEM ? DMCE_ENOMEM : -errno;
    if (r < 0) {
        close(fd); /* what fallocate took goes with it */
        return r;
    }
    return fd;
}

static void spare_wait(struct dmce_memd *m, uint64_t until_ms)
{
    if (!until_ms) {
        pthread_cond_wait(&m->spare_cond, &m->spare_lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(until_ms / 1000),
                          .tv_nsec = (long)(until_ms % 1000) * 1000000L};
    pthread_cond_timedwait(&m->spare_cond, &m->spare_lock, &ts); /* CLOCK_MONOTONIC */
}

static void *spare_main(void *arg)
{
    struct dmce_memd *m = arg; /* on the daemon's node: affinity inherited from start */
    uint64_t retry_ms = 0;     /* after a failure: not before then (0: now) */
    int warned = 0;
    pthread_mutex_lock(&m->spare_lock);
    for (;;) {
        while (!atomic_load(&m->stop) &&
               (!spare_wanted(m) || (retry_ms && dmce_now_ms() < retry_ms && !m->spare_kick)))
            spare_wait(m, spare_wanted(m) ? retry_ms : 0);
        if (atomic_load(&m->stop))
            break;
        m->spare_making = 1;
        m->spare_kick = 0;
        pthread_mutex_unlock(&m->spare_lock);
        uint64_t t0 = dmce_now_ns();
        int fd = spare_make(m);
        pthread_mutex_lock(&m->spare_lock);
        m->spare_making = 0;
        if (fd >= 0 && (m->nspares >= (unsigned)m->cfg.spare_blocks ||
                        atomic_load(&m->nblocks) + m->nspares >= (unsigned)m->cfg.max_blocks)) {
            close(fd); /* a block took the room meanwhile */
        } else if (fd >= 0) {
            m->spares[m->nspares++] = fd;
            STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
            LOG_DEBUG("spare block object made in %.1f ms (%u ready)",
                      (double)(dmce_now_ns() - t0) / 1e6, m->nspares);
            retry_ms = 0;
            warned = 0;
        } else if (fd == DMCE_ENOMEM) {
            if (!warned++)
                LOG_INFO("no room in %s for a spare block object; new blocks allocate their "
                         "own memory (retrying every %d ms)",
                         obj_dir(m), SPARE_RETRY_MS);
            retry_ms = dmce_now_ms() + SPARE_RETRY_MS;
        } else {
            LOG_WARN("spare block objects turned off: %s in %s: %s", obj_dir(m),
                     fd == -EOPNOTSUPP ? "no fallocate" : "cannot make an unnamed file",
                     strerror(-fd));
            m->spare_off = 1;
            pthread_cond_broadcast(&m->spare_cond);
            break;
        }
        pthread_cond_broadcast(&m->spare_cond); /* a block maker waiting for this one */
    }
    pthread_mutex_unlock(&m->spare_lock);
    return NULL;
}

void memd_spare_init(struct dmce_memd *m)
{
    pthread_mutex_init(&m->spare_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* dmce_now_ms() */
    pthread_cond_init(&m->spare_cond, &ca);
    pthread_condattr_destroy(&ca);
}

int memd_spare_start(struct dmce_memd *m)
{
    if (m->cfg.spare_blocks <= 0)
        return 0;
    int r = -pthread_create(&m->spare_thread, NULL, spare_main, m);
    if (r < 0) {
        LOG_ERROR("cannot start the spare thread: %s", strerror(-r));
        return r;
    }
    atomic_store(&m->spare_on, 1);
    return 0;
}

void memd_spare_stop(struct dmce_memd *m)
{
    pthread_mutex_lock(&m->spare_lock);
    pthread_cond_broadcast(&m->spare_cond); /* m->stop is set */
    pthread_mutex_unlock(&m->spare_lock);
    if (atomic_exchange(&m->spare_on, 0))
        pthread_join(m->spare_thread, NULL);
    while (m->nspares)
        close(m->spares[--m->nspares]);
    STAT_SET(m, DMCE_STAT_SPARES, 0);
}

void memd_spare_fini(struct dmce_memd *m)
{
    pthread_mutex_destroy(&m->spare_lock);
    pthread_cond_destroy(&m->spare_cond);
}

int memd_spare_take(struct dmce_memd *m, uint64_t size, const char *name)
{
    if (!atomic_load(&m->spare_on) || size != m->cfg.block_size)
        return -1;
    pthread_mutex_lock(&m->spare_lock);
    while (!m->nspares && m->spare_making && !m->spare_off && !atomic_load(&m->stop))
        pthread_cond_wait(&m->spare_cond, &m->spare_lock); /* cheaper than racing it */
    int fd = m->nspares ? m->spares[--m->nspares] : -1;
    STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
    pthread_cond_broadcast(&m->spare_cond); /* the thread makes the next */
    pthread_mutex_unlock(&m->spare_lock);
    if (fd < 0)
        return -1;
    char proc[48], path[sizeof(((struct memd_block *)0)->name) + 16];
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (m->cfg.shm_dir[0])
        snprintf(path, sizeof(path), "%s", name);
    else
        snprintf(path, sizeof(path), "/dev/shm%s", name); /* a POSIX shm name: "/..." */
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0) {
        LOG_WARN("cannot name a spare block object %s: %s; making the block anew", path,
                 strerror(errno));
        close(fd);
        return -1;
    }
    /*
     * The descriptor still names the unnamed file ("/dev/shm/#INODE
     * (deleted)" in /proc/PID/fd and lsof): one opened by the name reads
     * as the block it is, for operators and for the fault test's census.
     */
    int named = m->cfg.shm_dir[0] ? open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
                                  : shm_open(name, O_RDWR | O_CLOEXEC, 0);
    close(fd); /* the object lives on under its name, or goes with it below */
    if (named < 0) {
        LOG_WARN("cannot open %s again: %s; making the block anew", path, strerror(errno));
        memd_obj_unlink(m, name);
        return -1;
    }
    STAT_ADD(m, DMCE_STAT_SPARES_USED, 1);
    return named;
}

void memd_spare_blocks_changed(struct dmce_memd *m, uint32_t nblocks)
{
    pthread_mutex_lock(&m->spare_lock);
    uint32_t before = atomic_exchange(&m->nblocks, nblocks);
    while (m->nspares && nblocks + m->nspares > (uint32_t)m->cfg.max_blocks)
        close(m->spares[--m->nspares]); /* its slot is a block's now */
    STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
    if (nblocks < before) {
        m->spare_kick = 1; /* memory came back: try again now */
        pthread_cond_broadcast(&m->spare_cond);
    }
    pthread_mutex_unlock(&m->spare_lock);
}
