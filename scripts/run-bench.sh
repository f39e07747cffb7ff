#!/bin/sh
# Run every benchmark binary; each prints its own figures and writes its
# report under docs/.
set -eu
build=$1
shift
if [ $# -eq 0 ]; then
    echo "bench: no benchmarks built"
    exit 0
fi
for b in "$@"; do
    echo "== $(basename "$b")"
    RDX_BIN="$build/rdx" "$b"
done
