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
 *     goes (memd_spare_blocks_changed; the thread closes it, which frees
 *     its pages, outside grow_lock).
 *   - Made on demand: at start, and after a block was made (from a spare
 *     or not), until the pool is full or no slot is free. A slot that comes
 *     free (a block moved out, a copy dropped) does not by itself bring a
 *     spare back. Blocks moving in and out every 50 ms (live migration)
 *     would otherwise make and free a block-sized object over and over:
 *     CPU work beside the clients that stretched the writers' p99.9 from
 *     ~150 us to 3.8 ms in the migration benchmark (256 MiB blocks; and to
 *     0.4-1 ms when free slots were filled after 500 ms without a change).
 *   - A block maker that finds no spare while one is being made waits for
 *     it rather than racing it for the last room of a nearly full tmpfs.
 *   - A spare that cannot be made (a full tmpfs) is not an error: block
 *     makers do the work themselves as before, and the next block made
 *     asks again; nothing retries on a timer (a failing fallocate takes
 *     every free page of the filesystem for a moment). The thread does not
 *     even try when the filesystem has less free than a block. A directory
 *     without O_TMPFILE or fallocate, or a spare that cannot be named
 *     (linkat), turns spares off (logged).
 *
 * Locks: grow_lock > spare_lock. The spare thread takes spare_lock only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <dmce/error.h>

#include "log.h"
#include "memd_internal.h"
#include "util.h"

int memd_obj_size(const struct dmce_memd *m, int fd, uint64_t size, const char *what)
{
    int r = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
    const char *call = r < 0 ? "ftruncate" : "fallocate";
    if (r == 0 && fallocate(fd, 0, 0, (off_t)size) < 0)
        r = -errno;
    if (r == -ENOSPC || r == -ENOMEM)
        r = DMCE_ENOMEM;
    if (r == 0 || r == -EOPNOTSUPP || !what)
        return r; /* -EOPNOTSUPP: the caller decides whether a lazy object will do */
    if (r == DMCE_ENOMEM)
        LOG_ERROR("%s: no memory for %llu more bytes in %s (tmpfs full?)", what,
                  (unsigned long long)size, memd_obj_dir(m));
    else
        LOG_ERROR("%s: %s to %llu bytes: %s", what, call, (unsigned long long)size, strerror(-r));
    return r;
}

/* Slots taken: blocks in the table and blocks made but not yet in it. Under spare_lock. */
static unsigned slots_taken(const struct dmce_memd *m)
{
    return atomic_load(&m->nblocks) + m->unpublished;
}

/* Room for one more spare, and a reason to make it: under spare_lock. */
static int spare_wanted(const struct dmce_memd *m)
{
    unsigned have = m->nspares + (unsigned)m->spare_making;
    return m->spare_refill && !m->spare_off && have < (unsigned)m->spare_max &&
           slots_taken(m) + have < (unsigned)m->cfg.max_blocks;
}

/*
 * One spare: an unnamed object of block_size, allocated. Its descriptor;
 * DMCE_ENOMEM: no room now (not even tried when the filesystem has less
 * free than a block: a failing fallocate takes every free page before it
 * gives them back, and another process faulting a page of that filesystem
 * meanwhile gets SIGBUS); -EOPNOTSUPP: this directory cannot have spares;
 * another negative errno: this attempt failed. *what names the call.
 */
static int spare_make(struct dmce_memd *m, const char **what)
{
    struct statvfs v;
    *what = "statvfs";
    if (statvfs(memd_obj_dir(m), &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < m->cfg.block_size)
        return DMCE_ENOMEM;
    *what = "open(O_TMPFILE)";
    int fd = open(memd_obj_dir(m), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == ENOSPC || errno == ENOMEM)
            return DMCE_ENOMEM;
        return errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL ? -EOPNOTSUPP : -errno;
    }
    /* Quietly: a full tmpfs is logged by the block maker that meets it. */
    *what = "ftruncate/fallocate";
    int r = memd_obj_size(m, fd, m->cfg.block_size, NULL); /* -EOPNOTSUPP: spares go off */
    if (r == -EOPNOTSUPP)
        *what = "fallocate";
    if (r < 0) {
        close(fd); /* what fallocate took goes with it */
        return r;
    }
    return fd;
}

/* Close the pool (under spare_lock): its descriptors go to the thread's drop list. */
static void pool_drop_all(struct dmce_memd *m)
{
    while (m->nspares)
        m->spare_drop[m->ndrop++] = m->spares[--m->nspares];
    STAT_SET(m, DMCE_STAT_SPARES, 0);
    pthread_cond_broadcast(&m->spare_cond);
}

static void *spare_main(void *arg)
{
    struct dmce_memd *m = arg; /* on the daemon's node: affinity inherited from start */
    int warned = 0;
    pthread_mutex_lock(&m->spare_lock);
    for (;;) {
        while (!atomic_load(&m->stop) && !m->ndrop && !spare_wanted(m))
            pthread_cond_wait(&m->spare_cond, &m->spare_lock);
        if (atomic_load(&m->stop))
            break;
        if (m->ndrop) { /* given up: free their pages here, not under grow_lock */
            int fd = m->spare_drop[--m->ndrop];
            pthread_mutex_unlock(&m->spare_lock);
            close(fd);
            pthread_mutex_lock(&m->spare_lock);
            continue;
        }
        m->spare_making = 1;
        pthread_mutex_unlock(&m->spare_lock);
        uint64_t t0 = dmce_now_ns();
        const char *what;
        int fd = spare_make(m, &what);
        pthread_mutex_lock(&m->spare_lock);
        m->spare_making = 0;
        if (fd >= 0 && (m->spare_off || m->nspares >= (unsigned)m->spare_max ||
                        slots_taken(m) + m->nspares >= (unsigned)m->cfg.max_blocks)) {
            m->spare_drop[m->ndrop++] = fd; /* a block took the room meanwhile */
            m->spare_refill = 0;
        } else if (fd >= 0) {
            m->spares[m->nspares++] = fd;
            STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
            LOG_DEBUG("spare block object made in %.1f ms (%u ready)",
                      (double)(dmce_now_ns() - t0) / 1e6, m->nspares);
            warned = 0;
            if (m->nspares >= (unsigned)m->spare_max ||
                slots_taken(m) + m->nspares >= (unsigned)m->cfg.max_blocks)
                m->spare_refill = 0; /* full: until the next block is made */
        } else if (fd == -EOPNOTSUPP) {
            LOG_WARN("spare block objects turned off: %s has no %s", memd_obj_dir(m),
                     strcmp(what, "fallocate") ? "unnamed files (O_TMPFILE)" : "fallocate");
            m->spare_off = 1;
        } else {
            /* No retry on a timer: the next block made asks again, once it is made. */
            m->spare_refill = 0;
            if (!warned++) {
                if (fd == DMCE_ENOMEM)
                    LOG_INFO("no room in %s for a spare block object; the next new block "
                             "allocates its own memory",
                             memd_obj_dir(m));
                else
                    LOG_WARN("cannot make a spare block object in %s: %s: %s", memd_obj_dir(m),
                             what, strerror(-fd));
            }
        }
        pthread_cond_broadcast(&m->spare_cond); /* a block maker waiting for this one */
    }
    pthread_mutex_unlock(&m->spare_lock);
    return NULL;
}

void memd_spare_init(struct dmce_memd *m)
{
    pthread_mutex_init(&m->spare_lock, NULL);
    pthread_cond_init(&m->spare_cond, NULL);
}

int memd_spare_start(struct dmce_memd *m)
{
    m->spare_max = (int)DMCE_MIN(m->cfg.spare_blocks, (int64_t)MEMD_SPARES_MAX);
    if (m->spare_max <= 0)
        return 0;
    pthread_mutex_lock(&m->spare_lock); /* workers serve peers already (memd_spare_created) */
    m->spare_refill = 1;
    pthread_mutex_unlock(&m->spare_lock);
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
    while (m->ndrop)
        close(m->spare_drop[--m->ndrop]);
    STAT_SET(m, DMCE_STAT_SPARES, 0);
}

void memd_spare_fini(struct dmce_memd *m)
{
    pthread_mutex_destroy(&m->spare_lock);
    pthread_cond_destroy(&m->spare_cond);
}

int memd_spare_take(struct dmce_memd *m, uint64_t size, const char *name)
{
    int want = atomic_load(&m->spare_on) && size == m->cfg.block_size;
    pthread_mutex_lock(&m->spare_lock);
    /*
     * The new block's slot is taken from now on (a spare's slot becomes
     * its), so the thread never makes a spare for it meanwhile. The next
     * spare is asked for once the block is made (memd_spare_created), not
     * now: a maker that found none allocates its own object meanwhile, and
     * the two must not race for the last room of a tmpfs.
     */
    m->unpublished++;
    while (want && !m->nspares && m->spare_making && !atomic_load(&m->stop))
        pthread_cond_wait(&m->spare_cond, &m->spare_lock); /* cheaper than racing it */
    int fd = want && m->nspares ? m->spares[--m->nspares] : -1;
    STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
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
        int err = errno;
        /* /proc missing, a filesystem that cannot link an unnamed file: no spare would do. */
        int off = err == ENOENT || err == EXDEV || err == EPERM || err == EOPNOTSUPP ||
                  err == ENOSYS || err == EACCES;
        pthread_mutex_lock(&m->spare_lock);
        if (off) {
            m->spare_off = 1;
            m->spare_drop[m->ndrop++] = fd;
            pool_drop_all(m);
        } else { /* this name (EEXIST: a stale object): the spare stays for the next block */
            m->spares[m->nspares++] = fd;
            STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
        }
        pthread_mutex_unlock(&m->spare_lock);
        if (off)
            LOG_WARN("spare block objects turned off: cannot name one %s: %s", path, strerror(err));
        else
            LOG_WARN("cannot name a spare block object %s: %s", path, strerror(err));
        return -1;
    }
    close(fd); /* named: the name keeps it */
    /*
     * Opened again by the name: a descriptor of the unnamed file would read
     * "/dev/shm/#INODE (deleted)" in /proc/PID/fd and lsof for the block's
     * whole life.
     */
    int named = m->cfg.shm_dir[0] ? open(name, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
                                  : shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (named < 0) {
        LOG_WARN("cannot open %s again: %s; making the block anew", path, strerror(errno));
        memd_obj_unlink(m, name);
        return -1;
    }
    STAT_ADD(m, DMCE_STAT_SPARES_USED, 1);
    return named;
}

void memd_spare_blocks_changed(struct dmce_memd *m, uint32_t nblocks, struct memd_block *added)
{
    pthread_mutex_lock(&m->spare_lock);
    atomic_store(&m->nblocks, nblocks);
    if (added && added->unpublished) { /* its slot was counted since it was made */
        added->unpublished = 0;
        m->unpublished--;
    }
    int dropped = 0;
    while (m->nspares && slots_taken(m) + m->nspares > (unsigned)m->cfg.max_blocks) {
        m->spare_drop[m->ndrop++] = m->spares[--m->nspares]; /* its slot is a block's now */
        dropped = 1;
    }
    STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
    if (dropped)
        pthread_cond_broadcast(&m->spare_cond); /* the thread closes them */
    pthread_mutex_unlock(&m->spare_lock);
}

void memd_spare_created(struct dmce_memd *m, struct memd_block *b)
{
    pthread_mutex_lock(&m->spare_lock);
    b->unpublished = 1; /* its slot, counted since memd_spare_take */
    while (m->nspares && slots_taken(m) + m->nspares > (unsigned)m->cfg.max_blocks)
        m->spare_drop[m->ndrop++] = m->spares[--m->nspares]; /* a block moved in meanwhile */
    STAT_SET(m, DMCE_STAT_SPARES, m->nspares);
    m->spare_refill = 1; /* a block was made: have the next one ready */
    pthread_cond_broadcast(&m->spare_cond);
    pthread_mutex_unlock(&m->spare_lock);
}

void memd_spare_unreserve(struct dmce_memd *m)
{
    pthread_mutex_lock(&m->spare_lock);
    m->unpublished--;
    pthread_mutex_unlock(&m->spare_lock);
}

void memd_spare_forget(struct dmce_memd *m, struct memd_block *b)
{
    if (!b->unpublished)
        return; /* published (or never counted): the table says */
    pthread_mutex_lock(&m->spare_lock);
    b->unpublished = 0;
    m->unpublished--;
    pthread_mutex_unlock(&m->spare_lock);
}
