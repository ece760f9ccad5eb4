#!/usr/bin/env bash
# borrow.sh BUILD_DIR BORROW_BINARY NDAEMONS BLOCK_SIZE MAX_BLOCKS [dmce-borrow args...]
#
# Start NDAEMONS memory daemons (each capped at BLOCK_SIZE x MAX_BLOCKS) in
# a private runtime directory, run dmce-borrow against them, stop them, and
# fail unless it verified every byte and no block object is left. When run
# as root, blocks live on a private tmpfs with 2 MiB pages.
set -euo pipefail
BUILD=$1 BIN=$2 N=$3 BS=$4 MB=$5
shift 5
. "$(dirname "$0")/../../daemons/cluster.sh"
cluster_private_mounts "$0" "$BUILD" "$BIN" "$N" "$BS" "$MB" "$@" # the tmpfs dies with the test
cluster_init "$BUILD"
if [ "${DMCE_TEST_HUGE:-1}" = 1 ]; then cluster_hugetmpfs "$(( N * 4 ))G"; fi
for id in $(seq "$N"); do
    cluster_start_memd "$id" --block-size "$BS" --max-blocks "$MB" --log-level warn
done
# The binary is what it claims: ELF class byte (offset 4) 1 = 32-bit, 2 = 64-bit.
class=$(od -An -t u1 -j 4 -N 1 "$BIN" | tr -d ' ')
echo "$(basename "$BIN"): ELF class $class ($([ "$class" = 1 ] && echo 32 || echo 64)-bit)"
"$BIN" --runtime-dir "$DMCE_RUNTIME_DIR" "$@"
cluster_stop
echo "cluster stopped; no block object left"
