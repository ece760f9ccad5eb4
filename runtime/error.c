/*
 * error.c - error names and messages.
 *
 * One table (DMCE_ERRNO_MAP in include/dmce/error.h) gives the dmce-specific
 * codes; everything else is a negative errno and goes to strerror_r's
 * message. Messages are static so callers may keep the pointer.
 */
#include <errno.h>
#include <string.h>

#include <dmce/error.h>

const char *dmce_strerror(int err)
{
    if (err >= 0)
        return err == 0 ? "success" : "unknown error (positive code)";
    switch (err) {
#define DMCE_ERR_MSG_(name, val, msg)                                                             \
    case DMCE_E##name:                                                                             \
        return msg;
        DMCE_ERRNO_MAP(DMCE_ERR_MSG_)
#undef DMCE_ERR_MSG_
    default:
        break;
    }
    /* strerror() of glibc returns static strings for known errno values. */
    if (-err < 4000)
        return strerror(-err);
    return "unknown error";
}

const char *dmce_err_name(int err)
{
    if (err == 0)
        return "OK";
    switch (err) {
#define DMCE_ERR_NAME_(name, val, msg)                                                            \
    case DMCE_E##name:                                                                             \
        return "DMCE_E" #name;
        DMCE_ERRNO_MAP(DMCE_ERR_NAME_)
#undef DMCE_ERR_NAME_
    default:
        break;
    }
    if (err < 0 && -err < 4000) {
        const char *n = strerrorname_np(-err);
        if (n)
            return n;
    }
    return "EUNKNOWN";
}
