/*
 * fault.c - fault injection for the memory daemon, for tests only.
 *
 * Linked into dmce-memd-faults (tests/CMakeLists.txt), never into the
 * installed daemons: the link wraps the C library calls below with
 * `-Wl,--wrap=NAME`, so every call that dmce's own code makes goes through
 * __wrap_NAME here (calls made inside the C library, liburcu, hwloc or
 * libnuma do not). Each call is counted under its fault point, and the
 * chosen call of the chosen point fails once, as the real call would.
 *
 *   DMCE_FAULT=POINT:N    the Nth call (from 1, counted from the start of
 *                         the process) of POINT fails once
 *   DMCE_FAULT=POINT:@K   the Kth call of POINT after the window opened
 *                         (below) fails once
 *   DMCE_FAULT_COUNTS=F   at exit, write "POINT CALLS FIRED START END"
 *                         lines to F (START, END: the calls when the window
 *                         opened and closed; 0 and CALLS without a window)
 *   DMCE_FAULT_BACKTRACE=1  print the stack of the failing call (addr2line)
 *
 * The window: the first SIGUSR2 the process gets opens it, the second
 * closes it. A test opens it when its scenario starts and closes it when
 * the scenario ends, so that it can aim at the calls made for its clients
 * rather than those of start-up, heartbeats or shutdown.
 *
 * Points, and how a call fails:
 *   alloc       malloc, calloc, realloc: NULL, ENOMEM
 *   shm_open    shm_open, memfd_create: -1, EMFILE
 *   ftruncate   ftruncate, fallocate: -1, ENOSPC
 *   mmap        mmap: MAP_FAILED, ENOMEM
 * (and the *64 names that _FILE_OFFSET_BITS=64 makes of mmap, ftruncate,
 * fallocate and pwrite)
 *   send        send, sendmsg, and write on a socket: -1, ECONNRESET
 *   recv        recv, recvmsg, and read on a socket: -1, ECONNRESET
 *   file_write  write and pwrite on a regular file other than stdout and
 *               stderr (the log): -1, ENOSPC; fsync: -1, EIO; rename:
 *               -1, ENOSPC
 * A firing is logged on stderr ("dmce-fault: ...") so that the daemon's
 * own error lines can be read against it.
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum { F_ALLOC, F_SHM_OPEN, F_FTRUNCATE, F_MMAP, F_SEND, F_RECV, F_FILE_WRITE, F_COUNT };
static const char *const point_name[F_COUNT] = {"alloc", "shm_open", "ftruncate", "mmap",
                                                "send",  "recv",     "file_write"};

ssize_t __real_write(int, const void *, size_t);

static atomic_uint_fast64_t calls[F_COUNT];
static atomic_int fired[F_COUNT];
static int armed = -1;               /* the point that fails, -1: none */
static atomic_uint_fast64_t armed_n; /* at its armed_n-th call (0: not known yet) */
static uint64_t armed_k;             /* POINT:@K: K, resolved when the window opens */
static atomic_uint_fast64_t win_start[F_COUNT], win_end[F_COUNT];
static atomic_int window; /* 0 not opened, 1 open, 2 closed */
static const char *counts_path;

/* SIGUSR2: open the window, then close it (lock-free atomics only: signal-safe). */
static void on_usr2(int sig)
{
    (void)sig;
    int w = atomic_load(&window);
    for (int p = 0; p < F_COUNT && w < 2; p++)
        atomic_store(w == 0 ? &win_start[p] : &win_end[p], atomic_load(&calls[p]));
    if (w == 0 && armed >= 0 && armed_k)
        atomic_store(&armed_n, atomic_load(&win_start[armed]) + armed_k);
    if (w < 2)
        atomic_store(&window, w + 1);
}

/* Count a call of point p; 1 when this call is the one to fail. */
static int hit(int p)
{
    uint64_t n = atomic_fetch_add(&calls[p], 1) + 1;
    if (p != armed || n != atomic_load(&armed_n))
        return 0;
    atomic_store(&fired[p], 1);
    char line[96];
    int len = snprintf(line, sizeof line, "dmce-fault: %s call %llu fails\n", point_name[p],
                       (unsigned long long)n);
    if (len > 0) {
        ssize_t w = __real_write(2, line, (size_t)len); /* --wrap rewrites this file's calls too */
        (void)w;
    }
    const char *bt = getenv("DMCE_FAULT_BACKTRACE");
    if (bt && *bt && strcmp(bt, "0") != 0) {
        void *pc[32];
        backtrace_symbols_fd(pc, backtrace(pc, 32), 2);
    }
    return 1;
}

static void write_counts(void)
{
    if (!counts_path)
        return;
    FILE *f = fopen(counts_path, "w");
    if (!f)
        return;
    int w = atomic_load(&window);
    for (int p = 0; p < F_COUNT; p++) {
        uint64_t c = atomic_load(&calls[p]);
        fprintf(f, "%s %llu %d %llu %llu\n", point_name[p], (unsigned long long)c,
                atomic_load(&fired[p]), (unsigned long long)(w ? atomic_load(&win_start[p]) : 0),
                (unsigned long long)(w == 2 ? atomic_load(&win_end[p]) : c));
    }
    fclose(f);
}

/* First of the program's constructors (101: the first priority not reserved), so that
 * calls other constructors make can fail too. */
__attribute__((constructor(101))) static void fault_init(void)
{
    const char *spec = getenv("DMCE_FAULT");
    counts_path = getenv("DMCE_FAULT_COUNTS");
    struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
    if (counts_path && *counts_path)
        atexit(write_counts);
    else
        counts_path = NULL;
    if (!spec || !*spec)
        return;
    const char *colon = strchr(spec, ':');
    for (int p = 0; colon && p < F_COUNT; p++)
        if ((size_t)(colon - spec) == strlen(point_name[p]) &&
            !strncmp(spec, point_name[p], (size_t)(colon - spec))) {
            char *end;
            int rel = colon[1] == '@';
            unsigned long long n = strtoull(colon + 1 + rel, &end, 10);
            if (n > 0 && *end == '\0') {
                armed = p;
                if (rel)
                    armed_k = n;
                else
                    atomic_store(&armed_n, n);
                return;
            }
        }
    fprintf(stderr,
            "dmce-fault: bad DMCE_FAULT '%s' (want POINT:N or POINT:@K, POINT one of alloc "
            "shm_open ftruncate mmap send recv file_write)\n",
            spec);
    exit(64);
}

/* What an fd is: the socket and file points count only their own kind. */
static int fd_is(int fd, mode_t kind)
{
    if (kind == S_IFREG && fd <= 2)
        return 0; /* the log is not a data file */
    struct stat st;
    return fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

#define FAIL(e, ret)                                                                               \
    do {                                                                                           \
        errno = (e);                                                                               \
        return (ret);                                                                              \
    } while (0)

/* ---- the wrapped calls ---------------------------------------------------------------------- */

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
int __real_shm_open(const char *, int, mode_t);
int __real_memfd_create(const char *, unsigned);
int __real_ftruncate(int, off_t);
int __real_ftruncate64(int, off_t);
int __real_fallocate(int, int, off_t, off_t);
int __real_fallocate64(int, int, off_t, off_t);
void *__real_mmap(void *, size_t, int, int, int, off_t);
void *__real_mmap64(void *, size_t, int, int, int, off_t);
ssize_t __real_send(int, const void *, size_t, int);
ssize_t __real_sendmsg(int, const struct msghdr *, int);
ssize_t __real_recv(int, void *, size_t, int);
ssize_t __real_recvmsg(int, struct msghdr *, int);
ssize_t __real_write(int, const void *, size_t);
ssize_t __real_read(int, void *, size_t);
ssize_t __real_pwrite(int, const void *, size_t, off_t);
ssize_t __real_pwrite64(int, const void *, size_t, off_t);
int __real_fsync(int);
int __real_rename(const char *, const char *);

void *__wrap_malloc(size_t);
void *__wrap_calloc(size_t, size_t);
void *__wrap_realloc(void *, size_t);
int __wrap_shm_open(const char *, int, mode_t);
int __wrap_memfd_create(const char *, unsigned);
int __wrap_ftruncate(int, off_t);
int __wrap_ftruncate64(int, off_t);
int __wrap_fallocate(int, int, off_t, off_t);
int __wrap_fallocate64(int, int, off_t, off_t);
void *__wrap_mmap(void *, size_t, int, int, int, off_t);
void *__wrap_mmap64(void *, size_t, int, int, int, off_t);
ssize_t __wrap_send(int, const void *, size_t, int);
ssize_t __wrap_sendmsg(int, const struct msghdr *, int);
ssize_t __wrap_recv(int, void *, size_t, int);
ssize_t __wrap_recvmsg(int, struct msghdr *, int);
ssize_t __wrap_write(int, const void *, size_t);
ssize_t __wrap_read(int, void *, size_t);
ssize_t __wrap_pwrite(int, const void *, size_t, off_t);
ssize_t __wrap_pwrite64(int, const void *, size_t, off_t);
int __wrap_fsync(int);
int __wrap_rename(const char *, const char *);

void *__wrap_malloc(size_t n)
{
    if (hit(F_ALLOC))
        FAIL(ENOMEM, NULL);
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
    if (hit(F_ALLOC))
        FAIL(ENOMEM, NULL);
    return __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
    if (hit(F_ALLOC))
        FAIL(ENOMEM, NULL);
    return __real_realloc(p, n);
}

int __wrap_shm_open(const char *name, int flags, mode_t mode)
{
    if (hit(F_SHM_OPEN))
        FAIL(EMFILE, -1);
    return __real_shm_open(name, flags, mode);
}

int __wrap_memfd_create(const char *name, unsigned flags)
{
    if (hit(F_SHM_OPEN))
        FAIL(EMFILE, -1);
    return __real_memfd_create(name, flags);
}

int __wrap_ftruncate(int fd, off_t len)
{
    if (hit(F_FTRUNCATE))
        FAIL(ENOSPC, -1);
    return __real_ftruncate(fd, len);
}

int __wrap_ftruncate64(int fd, off_t len)
{
    if (hit(F_FTRUNCATE))
        FAIL(ENOSPC, -1);
    return __real_ftruncate64(fd, len);
}

int __wrap_fallocate(int fd, int mode, off_t off, off_t len)
{
    if (hit(F_FTRUNCATE))
        FAIL(ENOSPC, -1);
    return __real_fallocate(fd, mode, off, len);
}

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
    if (hit(F_FTRUNCATE))
        FAIL(ENOSPC, -1);
    return __real_fallocate64(fd, mode, off, len);
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (hit(F_MMAP))
        FAIL(ENOMEM, MAP_FAILED);
    return __real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (hit(F_MMAP))
        FAIL(ENOMEM, MAP_FAILED);
    return __real_mmap64(addr, len, prot, flags, fd, off);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
    if (hit(F_SEND))
        FAIL(ECONNRESET, -1);
    return __real_send(fd, buf, len, flags);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    if (hit(F_SEND))
        FAIL(ECONNRESET, -1);
    return __real_sendmsg(fd, msg, flags);
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
    if (hit(F_RECV))
        FAIL(ECONNRESET, -1);
    return __real_recv(fd, buf, len, flags);
}

ssize_t __wrap_recvmsg(int fd, struct msghdr *msg, int flags)
{
    if (hit(F_RECV))
        FAIL(ECONNRESET, -1);
    return __real_recvmsg(fd, msg, flags);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
    if (fd_is(fd, S_IFSOCK) ? hit(F_SEND) : fd_is(fd, S_IFREG) && hit(F_FILE_WRITE))
        FAIL(fd_is(fd, S_IFSOCK) ? ECONNRESET : ENOSPC, -1);
    return __real_write(fd, buf, len);
}

ssize_t __wrap_read(int fd, void *buf, size_t len)
{
    if (fd_is(fd, S_IFSOCK) && hit(F_RECV))
        FAIL(ECONNRESET, -1);
    return __real_read(fd, buf, len);
}

ssize_t __wrap_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (fd_is(fd, S_IFREG) && hit(F_FILE_WRITE))
        FAIL(ENOSPC, -1);
    return __real_pwrite(fd, buf, len, off);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    if (fd_is(fd, S_IFREG) && hit(F_FILE_WRITE))
        FAIL(ENOSPC, -1);
    return __real_pwrite64(fd, buf, len, off);
}

int __wrap_fsync(int fd)
{
    if (fd_is(fd, S_IFREG) && hit(F_FILE_WRITE))
        FAIL(EIO, -1);
    return __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to)
{
    if (hit(F_FILE_WRITE))
        FAIL(ENOSPC, -1);
    return __real_rename(from, to);
}
