#!/usr/bin/env bash
# compare.sh DUMP64 DUMP32: the 64-bit and the 32-bit build must encode
# every MSMP frame and lay out every shared-memory structure identically.
set -euo pipefail
a=$(mktemp) b=$(mktemp)
trap 'rm -f "$a" "$b"' EXIT
"$1" > "$a"
"$2" > "$b"
diff -u "$a" "$b"
echo "identical: $(wc -l < "$a") lines of wire bytes and layouts from both builds"
