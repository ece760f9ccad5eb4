/*
 * dmce.h - umbrella header for libdmce.
 *
 *   addr.h    the 64-bit DMCE address (server | block | cell)
 *   error.h   error codes and dmce_strerror
 *   client.h  connect, setup, malloc, read, write, free, stats, disconnect
 *   map.h     mapped access (dmce_map), the Memory Cache, dmce_flush
 */
#ifndef DMCE_DMCE_H
#define DMCE_DMCE_H

#include <dmce/addr.h>
#include <dmce/client.h>
#include <dmce/error.h>
#include <dmce/map.h>
#include <dmce/store.h>

#endif /* DMCE_DMCE_H */
