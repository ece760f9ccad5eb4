#!/usr/bin/env bash
# run-prefork.sh - the session store demo in a private local cluster: one
# memory daemon, then dmce-prefork (a master and N worker processes sharing
# one session store) with the arguments given here, then a clean stop that
# checks no block object is left behind.
#
#   daemons/run-prefork.sh [BUILD_DIR] [dmce-prefork options]
#   daemons/run-prefork.sh build --workers 4 --out-of-process 1 --seconds 10
#
# BUILD_DIR defaults to $BUILD or build; it is configured and built if
# dmce-prefork is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    BUILD=$1
    shift
fi
if [ ! -x "$BUILD/dmce-prefork" ] || [ ! -x "$BUILD/dmce-memd" ]; then
    cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$BUILD" -j"$(nproc)" --target dmce-memd dmce-prefork >/dev/null
fi

. daemons/cluster.sh
cluster_init "$BUILD"
cluster_start_memd 1 --block-size 256M --max-blocks 2 --log-level warn
echo "cluster up: one memory daemon in $DMCE_RUNTIME_DIR"
"$BUILD"/dmce-prefork --runtime-dir "$DMCE_RUNTIME_DIR" "$@"
cluster_stop
echo "cluster stopped; no block object left behind"
