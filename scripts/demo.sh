#!/bin/sh
# make demo: the four-city network on one machine.
#
# `rdx network up` makes a network CA, one certificate per institution and six
# nodes, each its own `rdx node serve` process on 127.0.0.1: the hub in Nanjing
# (NJ-HUB, whose [dispatch] section runs the engines), community clinics in
# Ma'anshan, Zhenjiang and Yangzhou, the Zhenjiang central clinical lab and a
# radiology reading room in Nanjing. Three flows run over mutual TLS on the
# bundled fixtures, then the audit chains of all six nodes are checked and the
# network is brought down. Finally scripts/demo.d/*.sh show each engine close
# up (ECG scoring, character sets in the image index, a split lab order).
set -eu
: "${RDX_BIN:=build/rdx}"
case "$RDX_BIN" in /*) ;; *) RDX_BIN="$(pwd)/$RDX_BIN" ;; esac
export RDX_BIN
rdx() { "$RDX_BIN" "$@"; }

t0=$(date +%s%N)
net=$(mktemp -d "${TMPDIR:-/tmp}/rdx-demo.XXXXXX")
work="$net/demo"
cleanup() {
    "$RDX_BIN" network down --dir "$net" >/dev/null 2>&1 || true
    rm -rf "$net"
}
trap cleanup EXIT INT TERM
mkdir -p "$work"

ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }
fail() { echo "demo: $*" >&2; for l in "$net"/log/*.log; do echo "--- $l" >&2; tail -n 5 "$l" >&2; done; exit 1; }

# wait_journey CONFIG CASE_ID JOURNEY: until `rdx case status` shows the case there (20 s at most).
wait_journey() {
    i=0
    until rdx case status --config "$1" --json | grep -q "\"case_id\":\"$2\"[^}]*\"journey\":\"$3\""; do
        i=$((i + 1))
        [ "$i" -lt 400 ] || fail "case $2 did not become '$3' at $(basename "$1" .ini)"
        sleep 0.05
    done
}
# reply_of CONFIG CASE_ID: the ID of the answer to a case sent from CONFIG.
reply_of() {
    rdx case status --config "$1" --outbox --json | tr '{' '\n' |
        sed -n "s/.*\"case_id\":\"$2\".*\"reply\":\"\([0-9a-f]*\)\".*/\1/p"
}
# inbox_of CONFIG KIND: the newest complete inbox case of that kind.
inbox_of() {
    rdx case list --config "$1" --inbox --json | tr '{' '\n' |
        sed -n "s/.*\"case_id\":\"\([0-9a-f]*\)\".*\"kind\":\"$2\".*/\1/p" | tail -n 1
}

echo "rdx demo: $(rdx --version): the four-city network on one machine"
echo
echo "== The network: a CA, six institutions, six node processes on 127.0.0.1"
# --owner $$: should this script die (even by kill -9), its nodes stop by themselves.
rdx network up --dir "$net" --owner $$ | sed 's/^/   /'
hub="$net/NJ-HUB.ini"
mas="$net/MAS-EAST-CHC.ini"
zj="$net/ZJ-EAST-CHC.ini"
lab="$net/ZJ-CCL.ini"
rad="$net/NJ-RAD.ini"
yz="$net/YZ-EAST-CHC.ini"

echo
echo "== 1. ECG: the Ma'anshan East clinic uploads a trace and gets its report back"
echo "   (the first minute of MIT-BIH record 100, bundled in tests/fixtures/ecg)"
f1=$(ms)
ecg=$(rdx case send --config "$mas" --to NJ-HUB --kind ecg tests/fixtures/ecg/100s.hea tests/fixtures/ecg/100s.dat)
echo "   MAS-EAST-CHC -> NJ-HUB  ecg case $ecg"
wait_journey "$mas" "$ecg" replied
rep=$(reply_of "$mas" "$ecg")
mkdir "$work/ecg"
rdx case fetch --config "$mas" --from NJ-HUB -o "$work/ecg" "$rep" >/dev/null
sum="$work/ecg/100s.summary.json"
beats=$(sed -n 's/.*"beats":\([0-9]*\).*/\1/p' "$sum")
hr=$(sed -n 's/.*"hr_mean_bpm":\([0-9.]*\).*/\1/p' "$sum")
rr=$(sed -n 's/.*"rr_mean_ms":\([0-9.]*\).*/\1/p' "$sum")
echo "   NJ-HUB -> MAS-EAST-CHC  report $rep:"
for f in 100s.qrs 100s.summary.json 100s.strip.svg; do
    printf '     %-18s %7d bytes\n' "$f" "$(wc -c <"$work/ecg/$f")"
done
echo "   $beats beats, mean heart rate $hr bpm, mean RR $rr ms  ($(( $(ms) - f1 )) ms round trip)"

echo
echo "== 2. Imaging: the Zhenjiang East clinic sends a CR study with its SR report;"
echo "   the hub indexes it; the Nanjing reading room queries it and pulls it"
f2=$(ms)
st=tests/fixtures/imaging/study
uid=1.3.6.1.4.1.5962.1.1.0.0.0.1196527414.5534.0.1
dcm=$(rdx case send --config "$zj" --to NJ-HUB --kind dicom \
    "$st/77654033_CR1_6154" "$st/77654033_CR2_6247" "$st/77654033_SR_report.dcm")
echo "   ZJ-EAST-CHC -> NJ-HUB  dicom case $dcm (2 CR images, 1 SR report)"
wait_journey "$hub" "$dcm" processed
echo "   the hub's index now holds:"
rdx img query --db "sqlite:$net/hub/index.db" | sed 's/^/     /'
studies=$(rdx img query --db "sqlite:$net/hub/index.db" --json | grep -c '"study_uid"')
mkdir "$work/study"
rdx case request --config "$rad" --to NJ-HUB --study "$uid" --wait 20 -o "$work/study" >"$work/req.out"
req=$(head -n 1 "$work/req.out")
echo "   NJ-RAD -> NJ-HUB  request $req for study $uid"
echo "   NJ-HUB -> NJ-RAD  $(sed -n 2p "$work/req.out")"
for f in 77654033_CR1_6154 77654033_CR2_6247 77654033_SR_report.dcm; do
    cmp "$st/$f" "$work/study/$f" || fail "$f differs at the reading room"
done
echo "   the 3 instances are byte-identical at the reading room; its report begins:"
sed -n '1,6p' "$work/study/report.txt" | sed 's/^/     | /'
echo "   ($(( $(ms) - f2 )) ms)"

echo
echo "== 3. Lab: the Zhenjiang East clinic orders potassium and creatinine; the hub"
echo "   routes the order, the Zhenjiang lab results it, the clinic receives the result"
f3=$(ms)
mkdir "$work/order" "$work/result" "$work/at-lab" "$work/notice" "$work/oru"
printf 'ZJE0107 collect 202612010705\nZJE0107 dispatch 202612010900\n' >"$work/order/custody.tsv"
ord=$(rdx case send --config "$zj" --to NJ-HUB --kind lab-order tests/fixtures/e2e/zj_east_oml.hl7 "$work/order/custody.tsv")
echo "   ZJ-EAST-CHC -> NJ-HUB  lab-order case $ord (ORC ZE-107, tube ZJE0107, collected 07:05)"
wait_journey "$zj" "$ord" replied
rdx case fetch --config "$zj" --from NJ-HUB -o "$work/notice" "$(reply_of "$zj" "$ord")" >/dev/null
echo "   NJ-HUB -> ZJ-EAST-CHC  where each test went:"
cut -d' ' -f3- "$work/notice/routing.txt" | sed 's/^/     /'
i=0
until [ -n "$(inbox_of "$lab" lab-order)" ]; do
    i=$((i + 1)); [ "$i" -lt 400 ] || fail "the lab never got the order"; sleep 0.05
done
lord=$(inbox_of "$lab" lab-order)
rdx case fetch --config "$lab" --from NJ-HUB -o "$work/at-lab" "$lord" >/dev/null
echo "   NJ-HUB -> ZJ-CCL  lab-order case $lord: $(ls "$work/at-lab" | grep oml)"
printf 'ZJE0107 receive 202612010925\n' >"$work/result/custody.tsv"
res=$(rdx case send --config "$lab" --to NJ-HUB --kind lab-result tests/fixtures/e2e/zj_ccl_oru.hl7 "$work/result/custody.tsv")
echo "   ZJ-CCL -> NJ-HUB  lab-result case $res (ORU ZJCCL-R-0107, tube received 09:25)"
wait_journey "$lab" "$res" replied
i=0
until [ -n "$(inbox_of "$zj" lab-result)" ]; do
    i=$((i + 1)); [ "$i" -lt 400 ] || fail "the clinic never got the result"; sleep 0.05
done
rdx case fetch --config "$zj" --from NJ-HUB -o "$work/oru" "$(inbox_of "$zj" lab-result)" >/dev/null
echo "   NJ-HUB -> ZJ-EAST-CHC  lab-result: $(ls "$work/oru" | grep hl7)"
tr '\r' '\n' <"$work/oru/ZJCCL-R-0107.oru.hl7" | grep '^OBX' |
    awk -F'|' '{ split($4, t, "^"); printf "     %-45s %s %s (ref %s)\n", t[2], $6, substr($7, 1, index($7, "^") - 1), $8 }'
echo "   chain of custody of ZJE0107 at the hub:"
rdx lab status --db "sqlite:$net/hub/lab.db" ZJE0107 | sed 's/^/     /'
echo "   ($(( $(ms) - f3 )) ms)"

echo
echo "== 4. Policy: the Yangzhou clinic may not send a report to the hub: refused, dead-lettered"
bad=$(rdx case send --config "$yz" --to NJ-HUB --kind report tests/fixtures/e2e/zj_east_oml.hl7)
wait_journey "$yz" "$bad" dead-lettered
rdx case status --config "$yz" --outbox | grep -o 'last error: .*' | sed 's/^/   /'

echo
echo "== Audit: every node's hash-chained log"
rdx audit verify "$net" | sed 's/^/   /'
rdx audit show --config "$hub" | awk '{ print $4 }' | sort | uniq -c | sort -rn |
    awk '{ printf "%s %s", sep, $2 " " $1; sep = "," } END { print "" }' | sed 's/^/   hub events:/'

bytes=0
for cfg in "$net"/*.ini; do
    [ "$(basename "$cfg")" = catalogue.ini ] && continue
    [ "$(basename "$cfg")" = nodes.ini ] && continue
    b=$(rdx case status --config "$cfg" --outbox --json | grep -o '"state":"acked","items":[0-9]*,"bytes":[0-9]*' |
        sed 's/.*"bytes"://' | awk '{ s += $1 } END { print s + 0 }')
    bytes=$((bytes + b))
done
cases=$(for cfg in "$hub" "$mas" "$zj" "$lab" "$rad"; do rdx case status --config "$cfg" --outbox --json | grep -o '"state":"acked"'; done | wc -l)
route=$(head -n 1 "$work/notice/routing.txt" | sed 's/.*-> \([A-Z-]*\) ROUTED: [A-Z-]* (\([^)]*\)): \([^;]*\);.*/\1 (\2): \3/')

echo
echo "== Summary"
echo "   ECG:      $beats beats found in the 60 s trace (HR $hr bpm); report of 3 files back at the clinic"
echo "   Imaging:  $studies study indexed at the hub with its SR report linked; pulled by NJ-RAD, 3 instances + report"
echo "   Lab:      routed to $route"
echo "             result delivered to ZJ-EAST-CHC (2 observations), ACK back to ZJ-CCL"
echo "   Moved:    $cases cases, $bytes bytes, each acknowledged once, over TLS 1.3 with client certificates"
echo "   Time:     $(( $(ms) )) ms for network up and all flows"
rdx network down --dir "$net" | sed 's/^/   /'

echo
echo "== Engine close-ups"
for part in scripts/demo.d/*.sh; do
    [ -e "$part" ] || continue
    echo
    echo "-- $(sed -n 's/^# demo: //p' "$part" | head -n 1)"
    if ! sh "$part" >"$work/part.out" 2>&1; then
        cat "$work/part.out" >&2
        echo "demo: $part failed" >&2
        exit 1
    fi
    sed 's/^/   /' "$work/part.out"
done
echo
echo "rdx demo: done in $(( $(ms) / 1000 )) s"
