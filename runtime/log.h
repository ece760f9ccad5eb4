/*
 * log.h - levelled logging for the daemons (the library never prints).
 *
 * DMCE_LOG(level, fmt, ...) checks the level before evaluating its
 * arguments, so filtered-out lines cost one comparison. Lines go to stderr
 * as "2026-11-24T10:00:00.123Z memd[1] warn: message". The level and the
 * prefix are process-wide, set once by main() before threads start.
 */
#ifndef DMCE_RUNTIME_LOG_H
#define DMCE_RUNTIME_LOG_H

enum dmce_log_level {
    DMCE_LOG_ERROR = 0,
    DMCE_LOG_WARN = 1,
    DMCE_LOG_INFO = 2,
    DMCE_LOG_DEBUG = 3,
};

extern int dmce_log_threshold;

void dmce_log_init(const char *prefix, int level);
/* "error", "warn", "info", "debug" -> level, or -EINVAL. */
int dmce_log_level_parse(const char *name);
const char *dmce_log_level_name(int level);
void dmce_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One line a second for a flood of the same event (refused connections):
 * the first of each second is written, with the number of those not
 * written since; the others are only counted. One per thread.
 */
typedef struct dmce_ratelimit {
    unsigned long long last_ms, quiet;
} dmce_ratelimit_t;
void dmce_log_limited(dmce_ratelimit_t *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define DMCE_LOG(level, ...)                                                                      \
    do {                                                                                           \
        if ((level) <= dmce_log_threshold)                                                         \
            dmce_log_write((level), __VA_ARGS__);                                                  \
    } while (0)

#define LOG_ERROR(...) DMCE_LOG(DMCE_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) DMCE_LOG(DMCE_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) DMCE_LOG(DMCE_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) DMCE_LOG(DMCE_LOG_DEBUG, __VA_ARGS__)

#endif /* DMCE_RUNTIME_LOG_H */
