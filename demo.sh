#!/usr/bin/env bash
# The main job: install what is missing, build (64-bit and the -m32 client
# side), start a local cluster of three memory daemons capped at 3 GiB
# each in a private runtime directory, and have a 32-bit process borrow
# 6 GiB from them: fill it through mapped windows, read it all back through
# dmce_read and through windows, verify, free. Then stop the cluster and
# check that no block object is left behind.
set -euo pipefail
cd "$(dirname "$0")"
. daemons/cluster.sh
cluster_private_mounts "$(pwd)/demo.sh" "$@" # its huge-page tmpfs never outlives it
. .ci/deps.sh
dmce_install_deps

BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target dmce-memd dmce32 >/dev/null

BORROW="$BUILD/m32/dmce-borrow"
if command -v file >/dev/null; then
    file "$BORROW" | sed 's/, BuildID.*//'
else
    echo "$BORROW: ELF class $(od -An -t u1 -j 4 -N 1 "$BORROW" | tr -d ' ') (1 = 32-bit)"
fi
echo "getconf LONG_BIT for this host: $(getconf LONG_BIT); the demo process is 32-bit: 4 GiB of address space"

cluster_init "$BUILD"
cluster_hugetmpfs 10G
for id in 1 2 3; do
    cluster_start_memd "$id" --block-size 256M --max-blocks 12 --log-level warn
done
echo "cluster up: 3 memory daemons of 3 GiB each in $DMCE_RUNTIME_DIR"
"$BORROW" --runtime-dir "$DMCE_RUNTIME_DIR" --total 6G
cluster_stop
echo "cluster stopped; no block object left behind"
