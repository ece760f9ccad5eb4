#!/usr/bin/env bash
#
# run-msmp-bench.sh - dmce (MSMP over the rings and over the Unix socket, and
# mapped) beside Redis and memcached: the msmp area of the perf harness, on
# binaries already built.
#
#   perf/run-msmp-bench.sh [BUILD_DIR]      (default ./build; QUICK=1 for quick mode)
#
# The same as
#   perf/run --only msmp [--quick|--full] --build-dir BUILD_DIR --no-build --out OUT
# with OUT=$OUT or BUILD_DIR/perf-msmp. Build first (cmake --build BUILD_DIR):
# it needs dmce-memd, dmce-bench-msmp, dmce-bench-peers and dmce-perf-report at
# the top of BUILD_DIR. perf/run (docs/perf.md) does the
# rest: private runtime dir, cluster and peers on Unix sockets only, report.
set -euo pipefail
BUILD=${1:-./build}
[[ -d $BUILD ]] || { echo "run-msmp-bench.sh: build dir '$BUILD' does not exist" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)
MODE=--full
[[ ${QUICK:-0} == 1 ]] && MODE=--quick
exec "$(dirname "${BASH_SOURCE[0]}")/run" --only msmp "$MODE" --build-dir "$BUILD" --no-build \
    --out "${OUT:-$BUILD/perf-msmp}"
