#!/usr/bin/env bash
#
# run-msmp-bench.sh - dmce (MSMP over a Unix socket) beside Redis (RESP
# over a Unix socket), one client each, same value sizes, same machine.
#
#   perf/run-msmp-bench.sh [BUILD_DIR]          (default ./build)
#
# What it does:
#   1. makes a private runtime dir (mktemp -d, mode 0700);
#   2. starts one memory daemon there ($BUILD/dmce-memd, socket memd-1.sock)
#      and a redis-server listening only on $RT/redis.sock (--port 0: no TCP);
#   3. runs $BUILD/dmce-bench-msmp --json for read and write at 64 and 4096
#      bytes, and redis-benchmark -c 1 -t get,set --csv at the same sizes
#      (REPS times each; medians are reported). dmce read is compared with
#      Redis GET, dmce write with Redis SET;
#   4. prints a Markdown table and writes it to $OUT, and all raw figures
#      (every dmce JSON object, every redis-benchmark CSV row) to $JSON_OUT.
# An EXIT trap stops both servers (SIGTERM, then SIGKILL after 5 s) and
# removes the runtime dir, whatever happened.
#
# Environment:
#   QUICK=1      2000 ops x 3 reps: the whole run takes well under 60 s
#                (default: 20000 ops x 5 reps, a few tens of seconds; every
#                step is bounded by `timeout`, so never more than 5 minutes)
#   DMCE_SKIP=1  skip the dmce half (no daemon, no dmce-bench-msmp): measure
#                Redis alone, e.g. before dmce builds; dmce columns show "-"
#   OUT=FILE     Markdown output (default $BUILD/perf-msmp.md)
#   JSON_OUT=F   raw figures (default: $OUT with .md replaced by .json)
#
# Exit status: 0 ok, 1 a server or benchmark failed, 2 Redis is not
# installed or bad usage.
set -euo pipefail

PROG=run-msmp-bench.sh
die() {
    echo "$PROG: $*" >&2
    exit 1
}

BUILD_ARG=${1:-./build}
[[ -d $BUILD_ARG ]] || { echo "$PROG: build dir '$BUILD_ARG' does not exist" >&2; exit 2; }
BUILD=$(cd "$BUILD_ARG" && pwd)
OUT=${OUT:-$BUILD/perf-msmp.md}
JSON_OUT=${JSON_OUT:-${OUT%.md}.json}
QUICK=${QUICK:-0}
DMCE_SKIP=${DMCE_SKIP:-0}

if [[ $QUICK == 1 ]]; then
    OPS=2000 REPS=3 WARMUP=200 DURATION_S=5 STEP_TIMEOUT=20
else
    OPS=20000 REPS=5 WARMUP=2000 DURATION_S=10 STEP_TIMEOUT=60
fi
SIZES=(64 4096)
OPS_MAP=("read GET" "write SET")

# ---- prerequisites ------------------------------------------------------------
for tool in redis-server redis-benchmark; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "$PROG: $tool not found; install it with: sudo apt-get install redis-server" >&2
        exit 2
    fi
done
for tool in timeout mktemp awk sort; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (coreutils/awk needed)"
done
MEMD=$BUILD/dmce-memd
BENCH=$BUILD/dmce-bench-msmp
[[ -x $BENCH || ! -x $BUILD/perf/dmce-bench-msmp ]] || BENCH=$BUILD/perf/dmce-bench-msmp
if [[ $DMCE_SKIP != 1 ]]; then
    [[ -x $MEMD ]] || die "$MEMD not found: build first (cmake --build $BUILD), or DMCE_SKIP=1"
    [[ -x $BENCH ]] || die "$BENCH not found: build first (cmake --build $BUILD), or DMCE_SKIP=1"
fi

# ---- private runtime dir and the servers; always cleaned up -----------------
RT=$(mktemp -d "${TMPDIR:-/tmp}/dmce-perf.XXXXXX")
chmod 0700 "$RT"
MEMD_PID=
REDIS_PID=

stop_pid() { # pid name: SIGTERM, wait up to 5 s, then SIGKILL
    local pid=$1 name=$2 i
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$PROG: $name (pid $pid) ignored SIGTERM for 5 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    stop_pid "$MEMD_PID" dmce-memd
    stop_pid "$REDIS_PID" redis-server
    rm -rf -- "$RT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

show_log() { # file: last lines of a log, for error messages
    [[ -s $1 ]] && { echo "--- last lines of $(basename "$1"):" >&2; tail -n 20 "$1" >&2; }
    return 0
}

wait_socket() { # path pid name log: bounded wait, 100 x 0.05 s
    local path=$1 pid=$2 name=$3 log=$4 i
    for ((i = 0; i < 100; i++)); do
        [[ -S $path ]] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$log"
            die "$name exited before creating $path"
        fi
        sleep 0.05
    done
    show_log "$log"
    die "$name did not create $path within 5 s"
}

if [[ $DMCE_SKIP != 1 ]]; then
    "$MEMD" --runtime-dir "$RT" --id 1 --log-level warn >"$RT/memd.log" 2>&1 &
    MEMD_PID=$!
    wait_socket "$RT/memd-1.sock" "$MEMD_PID" dmce-memd "$RT/memd.log"
fi

redis-server --port 0 --unixsocket "$RT/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize no --dir "$RT" >"$RT/redis.log" 2>&1 &
REDIS_PID=$!
wait_socket "$RT/redis.sock" "$REDIS_PID" redis-server "$RT/redis.log"

REDIS_VERSION=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
echo "$PROG: runtime dir $RT; $OPS ops x $REPS reps per case$([[ $QUICK == 1 ]] && echo ' (quick)')" >&2

# ---- helpers -------------------------------------------------------------------
median() { # numbers on stdin -> median, or "-" if none
    sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
              else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

json_num() { # key file: the number after "key": in a one-line JSON object
    sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p" "$2" | head -n 1
}

csv_col() { # file test column: values of one column for one test, header-driven
    awk -F, -v test="$2" -v col="$3" '
        { gsub(/"/, "") }
        $1 == "test" { for (i = 1; i <= NF; i++) idx[$i] = i; next }
        $1 == test && (col in idx) { print $idx[col] }' "$1"
}

fmt() { # printf format, value ("-" passes through)
    if [[ $2 == - || -z $2 ]]; then echo -; else awk -v v="$2" -v f="$1" 'BEGIN { printf f, v }'; fi
}

# ---- dmce ------------------------------------------------------------------------
if [[ $DMCE_SKIP != 1 ]]; then
    for pair in "${OPS_MAP[@]}"; do
        op=${pair%% *}
        for size in "${SIZES[@]}"; do
            echo "$PROG: dmce $op $size B" >&2
            if ! timeout "$STEP_TIMEOUT" "$BENCH" --runtime-dir "$RT" --op "$op" --size "$size" \
                --ops "$OPS" --reps "$REPS" --warmup "$WARMUP" --duration-s "$DURATION_S" \
                --json >"$RT/dmce-$op-$size.json" 2>"$RT/dmce-$op-$size.log"; then
                show_log "$RT/dmce-$op-$size.log"
                show_log "$RT/memd.log"
                die "dmce-bench-msmp --op $op --size $size failed (or exceeded ${STEP_TIMEOUT}s)"
            fi
            [[ -n $(json_num ops_per_s "$RT/dmce-$op-$size.json") ]] ||
                die "dmce-bench-msmp --op $op --size $size printed no JSON"
        done
    done
fi

# ---- redis -----------------------------------------------------------------------
for size in "${SIZES[@]}"; do
    echo "$PROG: redis GET/SET $size B" >&2
    # Warmup, discarded.
    timeout "$STEP_TIMEOUT" redis-benchmark -s "$RT/redis.sock" -c 1 -n "$WARMUP" -d "$size" \
        -t get,set --csv >/dev/null 2>&1 || true
    for ((rep = 1; rep <= REPS; rep++)); do
        f=$RT/redis-$size-$rep.csv
        if ! timeout "$STEP_TIMEOUT" redis-benchmark -s "$RT/redis.sock" -c 1 -n "$OPS" \
            -d "$size" -t get,set --csv >"$f" 2>"$RT/redis-bench.log"; then
            show_log "$RT/redis-bench.log"
            show_log "$RT/redis.log"
            die "redis-benchmark -d $size failed (or exceeded ${STEP_TIMEOUT}s)"
        fi
        [[ -n $(csv_col "$f" SET rps) && -n $(csv_col "$f" GET rps) ]] ||
            { cat "$f" >&2; die "redis-benchmark printed no GET/SET rows"; }
    done
done

# ---- table -------------------------------------------------------------------------
TABLE=$RT/table.md
ROWS_JSON=()
{
    echo "dmce MSMP vs Redis $REDIS_VERSION, one client each over a Unix socket;" \
        "$OPS ops x $REPS reps, medians; $(uname -sr), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "| op | size | dmce ops/s | dmce p50 us | dmce p99 us | redis ops/s | redis p50 us | redis p99 us | ops/s ratio dmce/redis |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$TABLE"
for pair in "${OPS_MAP[@]}"; do
    op=${pair%% *} test=${pair##* }
    for size in "${SIZES[@]}"; do
        d_ops=- d_p50=- d_p99=-
        if [[ $DMCE_SKIP != 1 ]]; then
            j=$RT/dmce-$op-$size.json
            d_ops=$(json_num ops_per_s "$j") d_p50=$(json_num p50_us "$j") d_p99=$(json_num p99_us "$j")
        fi
        r_ops=$(for ((rep = 1; rep <= REPS; rep++)); do csv_col "$RT/redis-$size-$rep.csv" "$test" rps; done | median)
        r_p50=$(for ((rep = 1; rep <= REPS; rep++)); do csv_col "$RT/redis-$size-$rep.csv" "$test" p50_latency_ms; done | median)
        r_p99=$(for ((rep = 1; rep <= REPS; rep++)); do csv_col "$RT/redis-$size-$rep.csv" "$test" p99_latency_ms; done | median)
        [[ $r_p50 == - ]] || r_p50=$(awk -v v="$r_p50" 'BEGIN { printf "%.3f", v * 1000 }')
        [[ $r_p99 == - ]] || r_p99=$(awk -v v="$r_p99" 'BEGIN { printf "%.3f", v * 1000 }')
        ratio=-
        if [[ $d_ops != - && $r_ops != - ]]; then
            ratio=$(awk -v d="$d_ops" -v r="$r_ops" 'BEGIN { if (r > 0) printf "%.2f", d / r; else print "-" }')
        fi
        printf '| %s / %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$op" "$test" "$size" \
            "$(fmt %.0f "$d_ops")" "$(fmt %.1f "$d_p50")" "$(fmt %.1f "$d_p99")" \
            "$(fmt %.0f "$r_ops")" "$(fmt %.1f "$r_p50")" "$(fmt %.1f "$r_p99")" "$ratio" >>"$TABLE"
        q() { [[ $1 == - ]] && echo null || echo "$1"; }
        ROWS_JSON+=("{\"op\":\"$op\",\"redis_test\":\"$test\",\"size\":$size,\"dmce_ops_per_s\":$(q "$d_ops"),\"dmce_p50_us\":$(q "$d_p50"),\"dmce_p99_us\":$(q "$d_p99"),\"redis_ops_per_s\":$(q "$r_ops"),\"redis_p50_us\":$(q "$r_p50"),\"redis_p99_us\":$(q "$r_p99"),\"ratio\":$(q "$ratio")}")
    done
done
[[ $DMCE_SKIP == 1 ]] && printf '\n(DMCE_SKIP=1: dmce not measured)\n' >>"$TABLE"

# ---- outputs ------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")" "$(dirname "$JSON_OUT")"
cp "$TABLE" "$OUT"

join_lines() { # one JSON value per line on stdin -> comma-separated
    awk 'NF { printf "%s%s", (n++ ? ",\n    " : ""), $0 }'
}
{
    printf '{\n  "bench": "msmp-vs-redis",\n  "quick": %s,\n  "dmce_skipped": %s,\n' \
        "$([[ $QUICK == 1 ]] && echo true || echo false)" "$([[ $DMCE_SKIP == 1 ]] && echo true || echo false)"
    printf '  "ops": %s,\n  "reps": %s,\n  "warmup": %s,\n  "redis_version": "%s",\n' \
        "$OPS" "$REPS" "$WARMUP" "$REDIS_VERSION"
    printf '  "kernel": "%s",\n  "cpus": %s,\n  "date": "%s",\n' \
        "$(uname -sr)" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf '  "rows": [\n    '
    printf '%s\n' "${ROWS_JSON[@]}" | join_lines
    printf '\n  ],\n  "dmce": [\n    '
    if [[ $DMCE_SKIP != 1 ]]; then
        for pair in "${OPS_MAP[@]}"; do
            for size in "${SIZES[@]}"; do cat "$RT/dmce-${pair%% *}-$size.json"; done
        done | join_lines
    fi
    printf '\n  ],\n  "redis": [\n    '
    for size in "${SIZES[@]}"; do
        for ((rep = 1; rep <= REPS; rep++)); do
            awk -F, -v size="$size" -v rep="$rep" '
                { gsub(/"/, "") }
                $1 == "test" { for (i = 1; i <= NF; i++) h[i] = $i; next }
                NF > 1 {
                    printf "{\"size\":%s,\"rep\":%s,\"test\":\"%s\"", size, rep, $1
                    for (i = 2; i <= NF; i++) printf ",\"%s\":%s", h[i], $i
                    print "}"
                }' "$RT/redis-$size-$rep.csv"
        done
    done | join_lines
    printf '\n  ]\n}\n'
} >"$JSON_OUT"

cat "$TABLE"
echo >&2
echo "$PROG: wrote $OUT and $JSON_OUT" >&2
