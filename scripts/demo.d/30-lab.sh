#!/bin/sh
# demo: Lab: route a clinic's order to a member lab
# Routes the Gulou community health service centre's order (five tests on a
# serum and an EDTA tube) and a Ma'anshan order that must be split, with the
# sample four-city catalogue, and prints each decision and its reason.
set -eu
: "${RDX_BIN:=build/rdx}"
db=$(mktemp -d)
trap 'rm -rf "$db"' EXIT
echo "catalogue: docs/examples/network.ini ($(grep -c '^\[lab ' docs/examples/network.ini) labs," \
    "$(grep -c '^\[clinic ' docs/examples/network.ini) clinics," \
    "$(grep -c '^\[courier ' docs/examples/network.ini) courier runs)"
"$RDX_BIN" lab route --catalogue docs/examples/network.ini --db "sqlite:$db/lab.db" \
    tests/fixtures/lab/nj_gulou_oml.hl7 tests/fixtures/lab/mas_split_oml.hl7
echo "routing the Gulou order again gives the stored decisions, counted once:"
"$RDX_BIN" lab route --catalogue docs/examples/network.ini --db "sqlite:$db/lab.db" --json \
    tests/fixtures/lab/nj_gulou_oml.hl7 | grep -o '"already_routed": [a-z]*' | sed 's/^/  /'
echo "the Ma'anshan tube for MAS-CCL is collected, then scanned at the lab too early:"
"$RDX_BIN" lab event --db "sqlite:$db/lab.db" --actor MAS-EAST-CHC --at 202612010705 \
    MAE0042.1 collect
"$RDX_BIN" lab event --db "sqlite:$db/lab.db" --actor MAS-CCL --at 202612010925 \
    MAE0042.1 receive || true
"$RDX_BIN" lab status --db "sqlite:$db/lab.db" MAE0042.1
