#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a bounded time.
#
#   tests/fuzz/run-fuzzers.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs default to all of
# msmp config block ring store. Builds in build-fuzz/ (DMCE_FUZZ_BUILD
# overrides) with -DDMCE_FUZZ=ON -DCMAKE_C_COMPILER=clang, installs clang
# and its runtime from Debian when missing. Each target starts from a copy
# of tests/fuzz/corpus/TARGET plus tests/fuzz/regress/TARGET (the
# checked-in files are never modified). Fails on any crash, failed check,
# leak, timeout, out-of-memory or sanitizer report; a crashing input is
# kept as build-fuzz/findings/TARGET/crash-* with the command that
# replays it.
set -euo pipefail

SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(msmp config block ring store)

SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${DMCE_FUZZ_BUILD:-$SRC/build-fuzz}
J=$(nproc)

# ---- toolchain --------------------------------------------------------------------------
need_pkgs=()
command -v clang >/dev/null || need_pkgs+=(clang)
# libFuzzer and the sanitizer runtimes of Debian's clang
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' |
    clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
    need_pkgs+=(clang libclang-rt-dev)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "run-fuzzers: installing ${need_pkgs[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
if [ -f "$SRC/.ci/deps.sh" ]; then
    . "$SRC/.ci/deps.sh"
    dmce_install_deps
fi

# ---- build ------------------------------------------------------------------------------
cmake -S "$SRC" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDMCE_FUZZ=ON -DDMCE_BUILD_PERF=OFF -DDMCE_BUILD_32BIT=OFF >/dev/null
bins=()
for t in "${TARGETS[@]}"; do bins+=(dmce-fuzz-"$t"); done
cmake --build "$BUILD" -j"$J" --target "${bins[@]}"

# ---- run --------------------------------------------------------------------------------
# Input size limits: each target's images (block 256 KiB, ring 36 KiB, store 256 KiB).
declare -A MAX_LEN=([msmp]=4096 [config]=8192 [block]=40000 [ring]=40000 [store]=70000)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dmce-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
status=0
summary=()
for t in "${TARGETS[@]}"; do
    bin="$BUILD/tests/fuzz/dmce-fuzz-$t"
    corpus="$WORK/$t"
    findings="$BUILD/findings/$t"
    mkdir -p "$corpus" "$findings"
    cp "$SRC/tests/fuzz/corpus/$t/"* "$corpus/"
    if [ -d "$SRC/tests/fuzz/regress/$t" ]; then
        cp "$SRC/tests/fuzz/regress/$t/"* "$corpus/" 2>/dev/null || true
    fi
    log="$BUILD/findings/$t.log"
    echo "run-fuzzers: $t for ${SECONDS_EACH}s"
    rc=0
    (cd "$findings" &&
        "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
            -max_len="${MAX_LEN[$t]}" -print_final_stats=1 -artifact_prefix="$findings/" \
            "$corpus") >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
    if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|fuzz check failed' "$log"; then
        status=1
        summary+=("$t: FAILED after ${execs:-?} execs (log: $log)")
        echo "run-fuzzers: $t FAILED; the report:" >&2
        grep -E 'ERROR:|SUMMARY:|fuzz check failed|runtime error:|#[0-9]+ .* in ' "$log" | head -30 >&2 || true
        for a in "$findings"/crash-* "$findings"/leak-* "$findings"/timeout-* "$findings"/oom-*; do
            [ -e "$a" ] || continue
            echo "run-fuzzers: input kept as $a" >&2
            echo "  replay:  $bin $a" >&2
            echo "  once fixed, add it as a regression test: cp $a $SRC/tests/fuzz/regress/$t/<what-it-was>" >&2
            echo "  (ctest ${t}_fuzz replays tests/fuzz/regress/$t/ in every test run)" >&2
        done
    else
        summary+=("$t: ok, ${execs:-?} execs in ${SECONDS_EACH}s, ${cov:-cov: ?}")
    fi
done
echo "run-fuzzers: summary"
for s in "${summary[@]}"; do echo "  $s"; done
exit $status
