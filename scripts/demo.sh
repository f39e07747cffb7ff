#!/bin/sh
# make demo: run each engine's demonstration in turn (scripts/demo.d/*.sh,
# in name order). Each part uses $RDX_BIN and the bundled fixtures, prints a
# short summary, and exits non-zero on failure. The end-to-end issue turns
# this into the four-city network run.
set -eu
: "${RDX_BIN:=build/rdx}"
export RDX_BIN
start=$(date +%s)
echo "rdx demo: $("$RDX_BIN" --version)"
ran=0
for part in scripts/demo.d/*.sh; do
    [ -e "$part" ] || continue
    echo
    echo "== $(sed -n 's/^# demo: //p' "$part" | head -n 1)"
    sh "$part"
    ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
    echo "no engine demonstrations yet; 'rdx --help' lists what works"
    "$RDX_BIN" --help
fi
echo
echo "rdx demo: $ran part(s) done in $(( $(date +%s) - start )) s"
