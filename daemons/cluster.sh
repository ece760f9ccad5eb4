# cluster.sh - start and stop a private local dmce cluster from a shell
# script. Sourced by demo.sh, test scripts and the perf harness:
#
#   . daemons/cluster.sh
#   cluster_private_mounts "$0" "$@"  # optional, first: re-run in a private mount namespace
#   cluster_init BUILD_DIR            # private runtime dir (0700), cluster name, EXIT trap
#   cluster_hugetmpfs 8G              # optional, root only: blocks on 2 MiB pages
#   cluster_start_memd ID [flags...]  # start dmce-memd --id ID, wait for its socket
#   ... use $DMCE_RUNTIME_DIR ...
#   cluster_stop                      # SIGTERM, wait, check no block object is left
#
# Every wait is bounded. The EXIT trap stops whatever is still running and
# removes what was left, so a failing script leaves nothing behind.

CLUSTER_PIDS=()
CLUSTER_SHM_DIR=""
CLUSTER_MOUNT=""

# Re-run the calling script ("$0" "$@") in a private mount namespace when
# root and unshare(1) can make one. The tmpfs of cluster_hugetmpfs then
# lives only in that namespace and goes away with its last process, even
# when the script is killed with SIGKILL and its EXIT trap never runs (a
# mount in the host's namespace would hold its blocks' memory, gigabytes,
# until someone unmounts it). Does nothing otherwise, or when already done.
cluster_private_mounts() {
    [ "$(id -u)" -eq 0 ] || return 0
    [ -z "${DMCE_PRIVATE_MOUNTS:-}" ] || return 0
    command -v unshare >/dev/null || return 0
    unshare --mount --propagation private true 2>/dev/null || return 0
    DMCE_PRIVATE_MOUNTS=1 exec unshare --mount --propagation private -- "${BASH:-bash}" "$@"
}

cluster_init() {
    CLUSTER_BUILD=$1
    DMCE_RUNTIME_DIR=$(mktemp -d /tmp/dmce-run.XXXXXX)
    chmod 700 "$DMCE_RUNTIME_DIR"
    export DMCE_RUNTIME_DIR
    CLUSTER_NAME="c$$x${RANDOM}"
    trap cluster_cleanup EXIT
}

# Blocks in a private tmpfs mounted with huge=within_size: 2 MiB pages make
# mapping windows ~10x cheaper. Needs root (mount); otherwise blocks stay in
# /dev/shm and this says so.
cluster_hugetmpfs() {
    local size=$1 dir="$DMCE_RUNTIME_DIR/blocks"
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o "huge=within_size,mode=0700,size=$size" \
        dmce-blocks "$dir" 2>/dev/null; then
        CLUSTER_MOUNT=$dir
        CLUSTER_SHM_DIR=$dir
        echo "blocks on a private tmpfs with 2 MiB pages: $dir"
    else
        rmdir "$dir"
        echo "blocks in /dev/shm (4 KiB pages; a tmpfs with huge=within_size needs root)"
    fi
}

# The daemons die with the script (setpriv --pdeathsig, util-linux) when it
# is killed with SIGKILL and its EXIT trap cannot stop them: they would
# otherwise run on, and in a private mount namespace keep its tmpfs (and
# their blocks' memory) alive where the host cannot see it.
CLUSTER_PDEATH=()
if command -v setpriv >/dev/null && setpriv --pdeathsig KILL true 2>/dev/null; then
    CLUSTER_PDEATH=(setpriv --pdeathsig KILL --)
fi

cluster_start_memd() {
    local id=$1
    shift
    local extra=()
    [ -n "$CLUSTER_SHM_DIR" ] && extra+=(--shm-dir "$CLUSTER_SHM_DIR")
    "${CLUSTER_PDEATH[@]}" "$CLUSTER_BUILD"/dmce-memd --runtime-dir "$DMCE_RUNTIME_DIR" \
        --cluster "$CLUSTER_NAME" --id "$id" "${extra[@]}" "$@" &
    CLUSTER_PIDS+=($!)
    local sock="$DMCE_RUNTIME_DIR/memd-$id.sock"
    for _ in $(seq 200); do
        [ -S "$sock" ] && return 0
        kill -0 "${CLUSTER_PIDS[-1]}" 2>/dev/null || break
        sleep 0.05
    done
    echo "error: dmce-memd $id did not start (see its messages above)" >&2
    return 1
}

# Block objects of this cluster still present (in /dev/shm or the tmpfs).
cluster_leftovers() {
    local pat="dmce.$(id -u).$CLUSTER_NAME."
    {
        ls /dev/shm 2>/dev/null
        [ -n "$CLUSTER_SHM_DIR" ] && [ -d "$CLUSTER_SHM_DIR" ] && ls "$CLUSTER_SHM_DIR"
    } | grep -c "^$pat" || true
}

# Stop every daemon (SIGTERM, then SIGKILL after 10 s) and check that no
# block object is left. Returns 1 if one was.
cluster_stop() {
    local p
    for p in "${CLUSTER_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${CLUSTER_PIDS[@]}"; do
        for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    CLUSTER_PIDS=()
    local left
    left=$(cluster_leftovers)
    if [ "$left" -ne 0 ]; then
        echo "error: $left block object(s) left behind" >&2
        return 1
    fi
    return 0
}

cluster_cleanup() {
    local rc=$?
    [ ${#CLUSTER_PIDS[@]} -gt 0 ] && { cluster_stop || rc=1; }
    rm -f /dev/shm/dmce."$(id -u)"."$CLUSTER_NAME".* 2>/dev/null
    [ -n "$CLUSTER_MOUNT" ] && umount "$CLUSTER_MOUNT" 2>/dev/null
    rm -rf "$DMCE_RUNTIME_DIR"
    exit $rc
}
