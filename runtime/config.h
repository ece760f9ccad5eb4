/*
 * config.h - one config table drives the config file, the command-line
 * flags and --dump-config (the Redis static_configs[] habit).
 *
 * A program describes its settings once, as an array of dmce_config_def_t
 * rows (name, type, offset into its config struct, default, bounds, help).
 * The same rows then:
 *   - set defaults                      dmce_config_defaults
 *   - read "name = value" files          dmce_config_load_file ('#' comments)
 *   - read --name=value / --name value   dmce_config_parse_args
 *   - print the effective config         dmce_config_dump
 *   - print --help                       dmce_config_usage
 * Names use '_' in files; flags accept '_' or '-'. Every error says which
 * setting, which file and line, and what was expected.
 */
#ifndef DMCE_RUNTIME_CONFIG_H
#define DMCE_RUNTIME_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum dmce_config_type {
    DMCE_CFG_INT,    /* int64_t, decimal or 0x hex, [min, max] */
    DMCE_CFG_SIZE,   /* uint64_t, with K/M/G/T suffix, [min, max] */
    DMCE_CFG_STRING, /* char[DMCE_CFG_STRMAX] */
    DMCE_CFG_BOOL,   /* int: yes/no/true/false/on/off/1/0 */
    DMCE_CFG_ENUM,   /* int: index into a NULL-terminated name list */
} dmce_config_type_t;

#define DMCE_CFG_STRMAX 256

typedef struct dmce_config_def {
    const char *name;
    dmce_config_type_t type;
    size_t offset;           /* offsetof(your struct, field) */
    const char *def;         /* default, as text */
    int64_t min, max;        /* INT and SIZE bounds (SIZE: uint64 as int64, max 0 = none) */
    const char *const *enum_names;
    const char *help;
} dmce_config_def_t;

/* Apply every default. Returns 0 or -EINVAL (a bad default: a bug). */
int dmce_config_defaults(const dmce_config_def_t *defs, size_t n, void *cfg);

/*
 * Set one setting from text. On error returns -EINVAL/-ERANGE/-ENOENT and
 * writes a message to err (may be NULL).
 */
int dmce_config_set(const dmce_config_def_t *defs, size_t n, void *cfg, const char *name,
                    const char *value, char *err, size_t errlen);

/* Read a config file. -errno for I/O, -EINVAL with a message for content. */
int dmce_config_load_file(const dmce_config_def_t *defs, size_t n, void *cfg, const char *path,
                          char *err, size_t errlen);

/*
 * Parse argv from index 1. Recognizes --config FILE (loaded first, wherever
 * it appears), --help (returns 1), --dump-config (returns 2), and every
 * setting as --name=value or --name value. Unknown flags are errors.
 * Returns 0, 1, 2 or a negative error with a message in err.
 */
int dmce_config_parse_args(const dmce_config_def_t *defs, size_t n, void *cfg, int argc,
                           char **argv, char *err, size_t errlen);

/* Print "name = value" for every setting. */
void dmce_config_dump(const dmce_config_def_t *defs, size_t n, const void *cfg, FILE *out);

/* Print the flags with defaults, bounds and help. */
void dmce_config_usage(const dmce_config_def_t *defs, size_t n, const char *prog,
                       const char *summary, FILE *out);

#endif /* DMCE_RUNTIME_CONFIG_H */
