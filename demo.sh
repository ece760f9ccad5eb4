#!/usr/bin/env bash
# The main job: install what is missing, build, start a local cluster of two
# memory daemons in a private runtime directory, run the demo client, stop
# the cluster and check that no shared-memory object is left behind.
set -euo pipefail
cd "$(dirname "$0")"
. .ci/deps.sh
dmce_install_deps

BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target dmce-memd dmce-demo >/dev/null

RT=$(mktemp -d /tmp/dmce-demo.XXXXXX)
chmod 700 "$RT"
CLUSTER="demo$$"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    local left
    left=$(ls /dev/shm 2>/dev/null | grep -c "^dmce\.$(id -u)\.$CLUSTER\." || true)
    if [ "$left" -ne 0 ]; then
        echo "error: $left shm object(s) left behind" >&2
        ls /dev/shm | grep "^dmce\.$(id -u)\.$CLUSTER\." | sed 's#^#/dev/shm/#; s/^/  /' >&2
        rm -f /dev/shm/dmce."$(id -u)"."$CLUSTER".*
        rm -rf "$RT"
        exit 1
    fi
    echo "cluster stopped; no shm object left behind"
    rm -rf "$RT"
}
trap cleanup EXIT

for id in 1 2; do
    "$BUILD"/dmce-memd --runtime-dir "$RT" --cluster "$CLUSTER" --id "$id" \
        --block-size 32M --max-blocks 8 --log-level warn &
    PIDS+=($!)
done
for id in 1 2; do
    for _ in $(seq 100); do [ -S "$RT/memd-$id.sock" ] && break; sleep 0.05; done
    [ -S "$RT/memd-$id.sock" ] || { echo "error: memd $id did not start" >&2; exit 1; }
done
echo "cluster up: 2 memory daemons in $RT"
"$BUILD"/dmce-demo --runtime-dir "$RT" --total $((64 << 20)) --chunks 8
