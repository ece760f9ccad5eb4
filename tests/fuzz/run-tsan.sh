#!/usr/bin/env bash
# ThreadSanitizer pass over the multi-threaded tests.
#
#   tests/fuzz/run-tsan.sh [CTEST-REGEX]
#
# Configures build-tsan/ (DMCE_TSAN_BUILD overrides) with
# -fsanitize=thread (clang if present, else gcc), builds, and runs the
# tests whose code runs several threads or processes on shared memory:
# the memory daemon (worker threads, prefault thread, RCU), the client
# library's mapping and cache, the rings and the store table. Default
# regex: 'memd|map|cache|ring|store|turns', then (without the deadlock
# detector) 'mirror|failover|dispatcher|migrate'. Exits non-zero when a
# test fails or TSan reports a race; the reports are in
# build-tsan/tsan/ (one file per process, log_path) and summarized at
# the end.
set -euo pipefail

REGEX=${1:-'memd|map|cache|ring|store|turns'}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${DMCE_TSAN_BUILD:-$SRC/build-tsan}
J=$(nproc)
CC=gcc
command -v clang >/dev/null && CC=clang
if [ -f "$SRC/.ci/deps.sh" ]; then
    . "$SRC/.ci/deps.sh"
    dmce_install_deps
fi

cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS=-fsanitize=thread -fno-omit-frame-pointer" \
    -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    -DDMCE_BUILD_PERF=OFF -DDMCE_BUILD_32BIT=OFF >/dev/null
cmake --build "$BUILD" -j"$J"

LOGS="$BUILD/tsan"
rm -rf "$LOGS"
mkdir -p "$LOGS"
# Every process (tests and the daemons they start) writes its reports to
# $LOGS/<name>.<pid>; halt_on_error=0 so that one race does not hide the next.
# exitcode=0: a report must not change a daemon's exit status (the tests
# check it); the reports are counted from the logs instead.
export TSAN_OPTIONS="suppressions=$SRC/tests/fuzz/tsan.supp:log_path=$LOGS/tsan:halt_on_error=0:exitcode=0:second_deadlock_stack=1:history_size=4"
rc=0
# The fuzz programs are single-threaded: not here.
ctest --test-dir "$BUILD" --output-on-failure -j"$J" -R "$REGEX" -E '_fuzz$' --timeout 900 || rc=$?
# Second pass, the default run only: mirroring, failover and moves. Their
# daemons hold a block's allocator lock and all 64 chunk stripes at once
# (a mirror dropped, a block frozen), one lock more than the deadlock
# detector can follow (it stops the process), so that detector is off
# for these; races are reported as above. One at a time: each kills and
# restarts daemons, and with two of them side by side under ThreadSanitizer
# a restarted daemon once took longer to register than the tests wait.
if [ $# -eq 0 ]; then
    TSAN_OPTIONS="$TSAN_OPTIONS:detect_deadlocks=0" ctest --test-dir "$BUILD" \
        --output-on-failure -j1 -R 'mirror|failover|dispatcher|migrate' -E '_fuzz$' \
        --timeout 900 || rc=$?
fi

reports=$(cat "$LOGS"/tsan.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
echo "run-tsan: $reports ThreadSanitizer report(s) in $LOGS"
if [ "$reports" -gt 0 ]; then
    # One line per distinct report: kind, then the top frame of each of its stacks.
    cat "$LOGS"/tsan.* | awk '
        /^WARNING: ThreadSanitizer/ { kind = $3 " " $4; n = 0; next }
        /^    #0 / && kind != "" { f[n++] = $2 " " $3; if (n == 2) { print kind " | " f[0] " | " f[1]; kind = "" } }
        /^SUMMARY/ { if (kind != "" && n == 1) print kind " | " f[0]; kind = "" }
    ' | sed "s|$SRC/||g" | sort | uniq -c | sort -rn | head -40
    rc=1
fi
exit $rc
