/*
 * error.h - dmce error codes.
 *
 * Every dmce call that can fail returns a negative value: either a negative
 * errno (-ENOMEM, -EPROTO, ...) or one of the dmce-specific codes below,
 * which live above the errno range so they never collide. dmce_strerror()
 * turns any of them into a message and dmce_err_name() into its symbol.
 * The table in runtime/error.c is the single source of both.
 */
#ifndef DMCE_ERROR_H
#define DMCE_ERROR_H

#include <dmce/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: name, value, message. Values are negated when returned. */
#define DMCE_ERRNO_MAP(X)                                                                      \
    X(BADADDR, 4001, "address is not inside a live allocation")                               \
    X(NOBLOCK, 4002, "address names a block this server does not hold")                       \
    X(NOSERVER, 4003, "address names a server this client does not know")                     \
    X(CROSSEND, 4004, "range crosses the end of the allocation")                              \
    X(NULLADDR, 4005, "the null DMCE address")                                                 \
    X(BADMAGIC, 4006, "frame does not start with the MSMP magic")                              \
    X(VERSION, 4007, "unsupported MSMP protocol version")                                      \
    X(NOSETUP, 4008, "no session: send setup first")                                           \
    X(SETUPDONE, 4009, "session already set up")                                               \
    X(NOMEM, 4010, "not enough memory on the server")                                          \
    X(QUOTA, 4011, "allocation exceeds the session's reservation")                             \
    X(TOKEN, 4012, "no orphaned session with this token")                                      \
    X(CORRUPT, 4013, "block metadata is corrupt")                                              \
    X(LAYOUT, 4014, "address layout differs from the server's")                                \
    X(CLOSED, 4015, "connection to the server was closed")                                     \
    X(NOTMAPPED, 4016, "pointer is not inside a dmce mapping")                                 \
    X(CASFAIL, 4017, "compare-and-set failed: the entry has another version")                  \
    X(STOREFULL, 4018, "session store is full and nothing can be evicted")                     \
    X(STALE, 4019, "view is stale: the entry was overwritten, deleted, evicted or expired")    \
    X(NOTSTORE, 4020, "address is not the start of a session store")                            \
    X(STOREVERSION, 4021, "session store has a format this build does not understand")        \
    X(BADENTRY, 4022, "store entry is corrupt: it failed its checksum or link checks")        \
    X(NODAEMON, 4023, "no memory daemon is alive in the cluster")                              \
    X(LOST, 4024, "block was lost: its daemon died and it had no mirror")                     \
    X(MOVING, 4025, "block is moving to another daemon: retry shortly")                        \
    X(NOBACKUPDIR, 4026, "no backup directory: set backup_dir in the daemon's config or name one")

enum {
#define DMCE_ERR_ENUM_(name, val, msg) DMCE_E##name = -(val),
    DMCE_ERRNO_MAP(DMCE_ERR_ENUM_)
#undef DMCE_ERR_ENUM_
};

/*
 * Message for an error code (negative errno or DMCE_E*). Never NULL; the
 * string is static. Positive or zero values give "success" or
 * "unknown error". Thread-safe, never blocks.
 */
DMCE_API const char *dmce_strerror(int err);

/* Symbolic name ("DMCE_EBADADDR", "ENOMEM", ...). Static, never NULL. */
DMCE_API const char *dmce_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* DMCE_ERROR_H */
