#!/bin/sh
# Run each cmocka test binary given on the command line and print one closing
# line, "tests: N passed, N failed", counting individual test cases.
set -u
pass=0
fail=0
bad_bins=""
for t in "$@"; do
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    pass=$((pass + p))
    fail=$((fail + f))
    if [ "$rc" -ne 0 ]; then
        bad_bins="$bad_bins $(basename "$t")"
        # A crash or abort before cmocka's summary still counts as a failure.
        [ "$f" -eq 0 ] && fail=$((fail + 1))
    fi
done
echo
[ -n "$bad_bins" ] && echo "failing suites:$bad_bins"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
