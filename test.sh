#!/usr/bin/env bash
# Every test, through ctest: a normal build and an ASan+UBSan build.
# DMCE_TEST_SANITIZE=0 skips the sanitizer build; extra args go to ctest.
set -euo pipefail
cd "$(dirname "$0")"
. .ci/deps.sh
dmce_install_deps
J=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$J"
ctest --test-dir build --output-on-failure -j"$J" "$@"

if [ "${DMCE_TEST_SANITIZE:-1}" != 0 ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DDMCE_SANITIZE=ON -DDMCE_BUILD_PERF=OFF >/dev/null
    cmake --build build-asan -j"$J"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j"$J" "$@"
fi
