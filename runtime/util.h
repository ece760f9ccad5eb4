/*
 * util.h - small helpers shared by the library and the daemons: clocks,
 * fd I/O with deadlines, Unix socket setup, random tokens, size parsing.
 * One place for each of these; search here before writing another.
 */
#ifndef DMCE_RUNTIME_UTIL_H
#define DMCE_RUNTIME_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define DMCE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DMCE_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DMCE_MAX(a, b) ((a) > (b) ? (a) : (b))

/* One step of a busy wait: a CPU pause (x86), yield hint (Arm), else a compiler barrier. */
static inline void dmce_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/*
 * Happens-before edges that ThreadSanitizer cannot see, because they pass
 * through another process (a client that got one reply and then sent the
 * next request). DMCE_TSAN_RELEASE(p) in one thread and a later
 * DMCE_TSAN_ACQUIRE(p) in another order what came before the first for
 * TSan only; they compile to nothing in every other build. Each use says
 * which cross-process edge it stands for.
 */
#if defined(__SANITIZE_THREAD__)
#define DMCE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DMCE_TSAN 1
#endif
#endif
#ifdef DMCE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define DMCE_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define DMCE_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define DMCE_TSAN_ACQUIRE(p) ((void)(p))
#define DMCE_TSAN_RELEASE(p) ((void)(p))
#endif

/* CLOCK_MONOTONIC in nanoseconds / milliseconds. */
uint64_t dmce_now_ns(void);
uint64_t dmce_now_ms(void);

/* O_NONBLOCK on or off. 0 or -errno. */
int dmce_fd_set_nonblock(int fd, int on);

/*
 * Write / read exactly len bytes on a blocking or non-blocking fd, waiting
 * with poll() until deadline_ms (CLOCK_MONOTONIC ms, 0 = no deadline).
 * 0, -ETIMEDOUT, DMCE_ECLOSED (peer closed while reading), or -errno.
 */
int dmce_write_full(int fd, const void *buf, size_t len, uint64_t deadline_ms);
int dmce_read_full(int fd, void *buf, size_t len, uint64_t deadline_ms);

/*
 * Unix stream socket bound to path (0600 via umask), listening, non-blocking,
 * close-on-exec. Removes a stale socket file first only if nobody answers
 * on it. Returns fd or -errno (-EADDRINUSE if a live server answers).
 */
int dmce_unix_listen(const char *path, int backlog);

/* Connected Unix stream socket (blocking, close-on-exec) or -errno. */
int dmce_unix_connect(const char *path);

/* Peer credentials of a Unix socket. 0 or -errno. */
int dmce_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/*
 * accept() on listen_fd failed with EMFILE or ENFILE: the connection stays
 * in the backlog and the socket stays readable, so a server left there
 * wakes again at once, forever. Give up *spare (a descriptor kept for
 * this, e.g. /dev/null; -1 = none), accept the connection with it and
 * close it (the client sees its connection closed), then take the spare
 * back. Returns 1 (shed; *pid the peer's, 0 if unknown), 0 (nothing
 * waiting), or -errno when even that failed (after a 1 ms pause, so that
 * the caller's loop is not a spin).
 */
int dmce_accept_shed(int listen_fd, int *spare, pid_t *pid);

/*
 * Read /proc/<pid>/stat. Returns the process's start time (clock ticks
 * since boot, low 32 bits, 0 mapped to 1): with the pid it names one
 * process for good (a reused pid has another); 0 if unknown. *dead = 1
 * when the process is gone or a zombie (a SIGKILLed process its parent
 * has not reaped yet); a zombie thread-group leader whose other threads
 * still run (the main thread called pthread_exit) is alive. Opens a file.
 */
uint32_t dmce_proc_start(uint32_t pid, int *dead);

/* A descriptor that becomes readable when process pid exits (pidfd_open), or
 * -1 with errno (ENOSYS where the kernel or libc lacks it). */
int dmce_pidfd_open(pid_t pid);

/* Fill buf with len random bytes from getrandom(). 0 or -errno. */
int dmce_random_bytes(void *buf, size_t len);

/* Constant-time comparison of two byte strings: 1 if equal. */
int dmce_ct_equal(const void *a, const void *b, size_t len);

/*
 * Parse a size: decimal digits with an optional K, M, G or T suffix
 * (powers of 1024; "KiB" etc. also accepted). 0 or -EINVAL / -ERANGE.
 */
int dmce_parse_size(const char *s, uint64_t *out);

/* Parse an unsigned/signed decimal (or 0x hex) integer strictly. */
int dmce_parse_u64(const char *s, uint64_t *out);
int dmce_parse_i64(const char *s, int64_t *out);

/* Human size ("1.5 GiB") into buf. Returns buf. */
const char *dmce_fmt_size(uint64_t bytes, char *buf, size_t len);

/* mkdir -p with mode for the last component. 0 or -errno. */
int dmce_mkdir_private(const char *path);

/*
 * snprintf for messages that may be cut short on purpose (a path in an
 * error text): always NUL-terminated; len 0 or buf NULL does nothing.
 */
void dmce_msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* FNV-1a 64-bit hash of a string. */
uint64_t dmce_hash_str(const char *s);

#endif /* DMCE_RUNTIME_UTIL_H */
