#!/bin/sh
# demo: Imaging: index a study and its report, then query it
# Indexes the bundled CT, CR and MR instances of two patients plus an SR
# report written for the CR study (it also answers the CT study's request),
# then finds the studies by pinyin and Chinese name, shows the report, and
# re-indexes to show that unchanged files are not read again.
set -eu
: "${RDX_BIN:=build/rdx}"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db="sqlite:$dir/index.db"
fx=tests/fixtures/imaging

echo "-- index a study folder and the character-set samples"
"$RDX_BIN" img index --db "$db" "$fx/study" "$fx/charset" 2>/dev/null || true
echo "-- studies of patient 77654033 (a report exists for both)"
"$RDX_BIN" img query --db "$db" --patient-id 77654033
echo "-- patients named 'wang*' (pinyin, any case) and '王*' (ideographic group)"
"$RDX_BIN" img query --db "$db" --level patient --patient-name 'wang*'
"$RDX_BIN" img query --db "$db" --level patient --patient-name '王*'
echo "-- the report of the CR study (first lines)"
"$RDX_BIN" img report show --db "$db" 1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1 | head -n 8
echo "-- a PNG thumbnail of the CR image (MONOCHROME1, stored window)"
"$RDX_BIN" img preview "$fx/study/77654033_CR1_6154" --size 64 -o "$dir/cr.png"
echo "wrote $(wc -c < "$dir/cr.png") bytes of PNG"
echo "-- re-index: nothing changed, nothing read again"
"$RDX_BIN" img index --db "$db" "$fx/study"
echo "-- a truncated file is refused with its reason (exit 1), the rest still indexed"
if "$RDX_BIN" img index --db "$db" "$fx/malformed"; then
    echo "expected a failure" >&2
    exit 1
fi
