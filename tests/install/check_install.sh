#!/usr/bin/env bash
# Install the build into a temporary prefix, then build a consumer program
# against it twice: with pkg-config (dmce.pc) and with find_package(dmce).
set -euo pipefail
BUILD=$1; SRC=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
LIBDIR=$(ls -d "$T"/prefix/lib* | head -1)
# pkg-config
PKG_CONFIG_PATH=$(find "$T/prefix" -name dmce.pc -printf '%h') 
export PKG_CONFIG_PATH
cc -std=c11 "$SRC/consumer.c" $(pkg-config --cflags --libs dmce) -o "$T/c1"
LD_LIBRARY_PATH=$(dirname "$(find "$T/prefix" -name 'libdmce.so' | head -1)") "$T/c1" | grep -q "0:1:0x40 address is not inside a live allocation"
# find_package
cmake -S "$SRC" -B "$T/b" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/b" >/dev/null
LD_LIBRARY_PATH=$(dirname "$(find "$T/prefix" -name 'libdmce.so' | head -1)") "$T/b/consumer" | grep -q "0:1:0x40"
# headers and binaries are where they should be
test -f "$T/prefix/include/dmce/dmce.h"
test -x "$T/prefix/bin/dmce-memd"
echo "install ok: pkg-config and find_package both build and run a consumer ($LIBDIR)"
