#!/bin/sh
# Run each libFuzzer target for SECONDS seconds on a scratch copy of its seed
# corpus (tests/fuzz/corpus/<name>/), after replaying every input that once
# crashed it (tests/fuzz/crashes/<name>/). Fails on the first finding.
set -eu
secs=$1
shift
for bin in "$@"; do
    name=$(basename "$bin")
    short=${name#fuzz_}
    work=$(dirname "$bin")/work/$short
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "tests/fuzz/corpus/$short" ]; then
        cp -r "tests/fuzz/corpus/$short/." "$work/corpus/"
    fi
    if [ -d "tests/fuzz/crashes/$short" ] && [ -n "$(ls -A "tests/fuzz/crashes/$short")" ]; then
        echo "== $name: replaying tests/fuzz/crashes/$short"
        "$bin" -runs=1 "tests/fuzz/crashes/$short"/* >/dev/null 2>&1 || {
            echo "$name: a replayed crash input fails again" >&2
            "$bin" -runs=1 "tests/fuzz/crashes/$short"/*
            exit 1
        }
    fi
    echo "== $name: ${secs}s"
    "$bin" -max_total_time="$secs" -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log" || {
        tail -n 40 "$work/log" >&2
        echo "$name: finding saved under $work/artifacts/" >&2
        exit 1
    }
    grep -E 'stat::number_of_executed_units|cov:' "$work/log" | tail -n 2
done
echo "fuzz: $# targets ran clean"
