/*
 * export.h - symbol visibility for the public dmce API.
 *
 * libdmce is built with -fvisibility=hidden; only functions marked DMCE_API
 * are exported from the shared library. Internal runtime functions stay
 * hidden so that the ABI is exactly what include/dmce/ documents.
 */
#ifndef DMCE_EXPORT_H
#define DMCE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define DMCE_API __attribute__((visibility("default")))
#else
#define DMCE_API
#endif

#endif /* DMCE_EXPORT_H */
