#!/bin/sh
# demo: ECG: detect beats on a clinic upload
# A clinic uploads a one-minute trace (the first minute of MIT-BIH record 100,
# bundled in tests/fixtures/ecg). rdx finds its beats, summarises the rhythm,
# scores the beats against the cardiologists' reference annotations and draws
# the strip the hub's cardiologist looks at.
set -eu
: "${RDX_BIN:=build/rdx}"
rec=tests/fixtures/ecg/100s
out=$(mktemp -d "${TMPDIR:-/tmp}/rdx-demo-ecg.XXXXXX")
trap 'rm -rf "$out"' EXIT INT TERM
"$RDX_BIN" ecg detect -o "$out" "$rec"
"$RDX_BIN" ecg detect --json -o "$out" "$rec" |
    sed -n 's/.*"beats":\([0-9]*\),"hr_mean_bpm":\([0-9.]*\),"hr_min_bpm":\([0-9.]*\),"hr_max_bpm":\([0-9.]*\),"rr_mean_ms":\([0-9.]*\),"sdnn_ms":\([0-9.]*\),"rmssd_ms":\([0-9.]*\).*/summary: \1 beats, HR \2 bpm (\3-\4), RR \5 ms, SDNN \6 ms, RMSSD \7 ms/p'
"$RDX_BIN" ecg eval --test-dir "$out" "$rec" | tail -n 1 |
    awk '{ printf "score against the reference: TP %s FN %s FP %s, Se %s %%, +P %s %%\n", $3, $4, $5, $6, $7 }'
"$RDX_BIN" ecg plot "$rec" --from 0 --to 10 -o "$out/strip.svg"
echo "strip: $(wc -c <"$out/strip.svg") bytes of SVG (ECG paper, 2 leads, QRS marks, RR labels)"
