/*
 * futex.h - thin wrappers around the Linux futex syscall, for words that
 * live in memory shared between processes.
 *
 * These are the shared (not FUTEX_PRIVATE_FLAG) variants: the kernel keys a
 * shared futex on the backing page (inode and offset for shm, page for
 * MAP_SHARED anonymous memory), so a waiter and a waker in two processes
 * that map the same word meet on the same queue even at different virtual
 * addresses. Private futexes are keyed by (mm, address) and would never
 * meet across processes.
 *
 * FUTEX_WAIT checks *addr == expected and queues the caller atomically with
 * respect to FUTEX_WAKE on the same word; that is the only guarantee an
 * eventcount protocol needs from it (see docs/ring.md).
 *
 * A 32-bit process built with 64-bit time_t (_TIME_BITS=64) must use
 * futex_time64: the plain futex syscall on a 32-bit kernel ABI takes a
 * 32-bit timespec. dmce_futex_wait picks the right one at compile time.
 *
 * Thread- and process-safe; no state.
 */
#ifndef DMCE_RUNTIME_FUTEX_H
#define DMCE_RUNTIME_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(_Atomic uint32_t) == 4, "a futex word is 32 bits");

/*
 * Sleep while *addr == expected, for at most timeout_ms milliseconds
 * (relative, CLOCK_MONOTONIC; UINT32_MAX = no timeout). Blocks.
 * Returns 0 when woken (or spuriously: always re-check the condition),
 * -EAGAIN when *addr != expected on entry, -ETIMEDOUT, -EINTR on a signal,
 * or another -errno (-EFAULT, -ENOSYS).
 */
static inline int dmce_futex_wait(_Atomic uint32_t *addr, uint32_t expected, uint32_t timeout_ms)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ms != UINT32_MAX) {
        ts.tv_sec = (time_t)(timeout_ms / 1000u);
        ts.tv_nsec = (long)(timeout_ms % 1000u) * 1000000L;
        tsp = &ts;
    }
#if defined(SYS_futex_time64) && !defined(__LP64__)
    long nr = sizeof(ts.tv_sec) == 8 ? SYS_futex_time64 : SYS_futex;
#else
    long nr = SYS_futex;
#endif
    long r = syscall(nr, (uint32_t *)addr, FUTEX_WAIT, expected, tsp, NULL, 0);
    if (r == 0)
        return 0;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

/*
 * Wake up to n waiters sleeping on addr (INT_MAX = all). Never blocks.
 * Returns the number woken (>= 0) or -errno.
 */
static inline int dmce_futex_wake(_Atomic uint32_t *addr, int n)
{
    long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

#endif /* DMCE_RUNTIME_FUTEX_H */
