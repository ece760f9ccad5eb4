# Sourced by demo.sh, test.sh and .ci/run: install the Debian 12 packages
# dmce needs, only when one is missing. Needs root (or sudo) to install.
DMCE_PACKAGES="build-essential cmake pkg-config libhwloc-dev libnuma-dev liburcu-dev \
libcmocka-dev libxxhash-dev gcc-multilib redis-server procps"

dmce_install_deps() {
    local missing=()
    for p in $DMCE_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}"
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null; then SUDO=sudo; else
            echo "error: missing packages ${missing[*]} and not root; install them with apt-get" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
