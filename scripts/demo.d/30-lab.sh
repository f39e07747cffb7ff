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
echo "what the Ma'anshan clinic gets back (ORL^O22): each test OK or UA, its lab in ORC-16:"
mkdir -p "$db/out"
"$RDX_BIN" lab route --catalogue docs/examples/network.ini --db "sqlite:$db/lab.db" \
    --out "$db/out" tests/fixtures/lab/mas_split_oml.hl7 >/dev/null
tr '\r' '\n' <"$db/out/MAS-E-0042.orl.hl7" | grep -E '^(MSH|MSA|ORC)' | cut -c1-120
echo "the Gulou serum tube reaches Jiangsu Province Hospital; its ORU has 2 of its 3 tests:"
for scan in "collect 202612010806" "dispatch 202612010900" "receive 202612010925"; do
    set -- $scan
    "$RDX_BIN" lab event --db "sqlite:$db/lab.db" --actor NJ-JSPH --at "$2" NJGL26120101 "$1" \
        >/dev/null
done
"$RDX_BIN" lab result --db "sqlite:$db/lab.db" --out "$db/out" tests/fixtures/lab/jsph_oru.hl7
"$RDX_BIN" lab status --db "sqlite:$db/lab.db" --order NJ-GULOU-CHC GULOU-20261201-0001 |
    tail -n 1
echo "Jiangsu Province Hospital goes down: its tubes still at the clinic move, and it stays down:"
"$RDX_BIN" lab lab-down --catalogue docs/examples/network.ini --db "sqlite:$db/lab.db" \
    --at 202612010830 --reason "analyser failure" --out "$db/out" NJ-JSPH | cut -c1-120
echo "the order Drum Tower now receives for the EDTA tube (it never had one):"
tr '\r' '\n' <"$db/out/NJGL26120102.NJ-DRUM.oml.hl7" | grep -E '^(MSH|OBR|SPM)' | cut -c1-120
"$RDX_BIN" lab labs --db "sqlite:$db/lab.db"
"$RDX_BIN" lab lab-up --db "sqlite:$db/lab.db" NJ-JSPH
echo "a Yangzhou dried blood spot collected on Friday after the 10:00 run: the run to"
echo "Nanjing Maternity and Child Health goes Monday to Friday, so it waits for Monday:"
printf '%s\r' 'MSH|^~\&|HIS|YZ-EAST-CHC|RDX|NJ-HUB|20261204113000+0800||OML^O21^OML_O21|YZ-E-0100|P|2.5.1' \
    'PID|1||YZ0100^^^YZ-EAST-CHC^MR||Zhao^Min||20261201|F' 'ORC|NW|YE-100' \
    'OBR|1|YE-100||54089-8^Newborn screening panel^LN|||20261204110000+0800' \
    'SPM|1|YZE0100&YZ-EAST-CHC||440500007^Dried blood spot^SCT|||||||||||||20261204110000+0800' \
    >"$db/friday.hl7"
"$RDX_BIN" lab route --catalogue docs/examples/network.ini --db "sqlite:$db/lab.db" \
    "$db/friday.hl7" | sed 's/.*; collected/  collected/'
