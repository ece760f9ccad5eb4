/*
 * log.c - see log.h. One write(2) per line so lines from several threads
 * never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int dmce_log_threshold = DMCE_LOG_INFO;
static char log_prefix[64] = "dmce";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void dmce_log_init(const char *prefix, int level)
{
    snprintf(log_prefix, sizeof(log_prefix), "%s", prefix);
    dmce_log_threshold = level;
}

int dmce_log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(name, level_names[i]))
            return i;
    return -EINVAL;
}

const char *dmce_log_level_name(int level)
{
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

void dmce_log_write(int level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log_prefix, dmce_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof(line) - (size_t)n - 2 ? (size_t)m : sizeof(line) - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void dmce_log_limited(dmce_ratelimit_t *rl, int level, const char *fmt, ...)
{
    if (level > dmce_log_threshold)
        return;
    uint64_t now = dmce_now_ms();
    if (rl->last_ms && now - rl->last_ms < 1000) {
        rl->quiet++;
        return;
    }
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (rl->quiet)
        dmce_log_write(level, "%s (and %llu more in the last second, not logged)", what, rl->quiet);
    else
        dmce_log_write(level, "%s", what);
    rl->last_ms = now;
    rl->quiet = 0;
}
