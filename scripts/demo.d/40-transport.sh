#!/bin/sh
# demo: Transport: a clinic sends a case to the hub over mutual TLS
# A network CA, two institutions, two real nodes on 127.0.0.1 (ports picked
# by the kernel): the Gulou community health centre sends MIT-BIH record 100
# to Jiangsu Province Hospital, which verifies and stores it; a case kind the
# hub's policy does not allow is refused and dead-lettered. Nothing listens
# anywhere but 127.0.0.1, and everything lives in a temporary directory.
set -eu
: "${RDX_BIN:=build/rdx}"
: "${RDX_DATA:=../shared/data}"
case "$RDX_BIN" in /*) ;; *) RDX_BIN="$(pwd)/$RDX_BIN" ;; esac
case "$RDX_DATA" in /*) ;; *) RDX_DATA="$(pwd)/$RDX_DATA" ;; esac
rdx() { "$RDX_BIN" "$@"; }

work=$(mktemp -d /tmp/rdx-demo-transport.XXXXXX)
hub_pid=""
clinic_pid=""
cleanup() {
    for p in $clinic_pid $hub_pid; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work"

# Wait (at most ~20 s) until the command in "$@" succeeds.
wait_for() {
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 200 ] || { echo "demo: gave up waiting for: $*" >&2; exit 1; }
        sleep 0.1
    done
}

# Wait for a node (pid $1, data dir $2, log $3) to publish its port; show its log if it dies.
wait_node() {
    i=0
    until [ -s "$2/node.port" ]; do
        if ! kill -0 "$1" 2>/dev/null; then
            echo "demo: the node failed to start:" >&2
            cat "$3" >&2
            exit 1
        fi
        i=$((i + 1))
        [ "$i" -lt 200 ] || { echo "demo: node did not start" >&2; exit 1; }
        sleep 0.1
    done
}

mkdir data
echo "-- the network CA and two member institutions"
rdx pki init --dir pki --network "Nanjing Remote Diagnosis Network" | head -n 1
rdx pki issue --dir pki --institution jsph --name "Jiangsu Province Hospital" \
    --city Nanjing | head -n 1
rdx pki issue --dir pki --institution gulou-chc \
    --name "Gulou District Community Health Service Centre" --city Nanjing | head -n 1
rdx pki verify --dir pki pki/certs/jsph.crt pki/certs/gulou-chc.crt

cat > hub.ini <<INI
; Jiangsu Province Hospital: the hub. Receives ECGs and lab orders from Gulou.
[node]
id = jsph
listen = 127.0.0.1:0
cert = pki/certs/jsph.crt
key = pki/private/jsph.key
ca = pki/ca.crt
crl = pki/crl.pem
data = data/jsph

[allow.send]
gulou-chc = ecg, lab-order
INI
"$RDX_BIN" node serve --config hub.ini 2>hub.log &
hub_pid=$!
wait_node "$hub_pid" data/jsph hub.log
port=$(cat data/jsph/node.port)

cat > clinic.ini <<INI
; Gulou community health service centre: sends to the hub.
[node]
id = gulou-chc
listen = 127.0.0.1:0
cert = pki/certs/gulou-chc.crt
key = pki/private/gulou-chc.key
ca = pki/ca.crt
crl = pki/crl.pem
data = data/gulou-chc
chunk_size = 1048576

[peers]
jsph = 127.0.0.1:$port
INI
"$RDX_BIN" node serve --config clinic.ini 2>clinic.log &
clinic_pid=$!
wait_node "$clinic_pid" data/gulou-chc clinic.log
echo "-- nodes up: hub jsph on 127.0.0.1:$port, clinic gulou-chc on" \
    "127.0.0.1:$(cat data/gulou-chc/node.port)"

mkdir -p ecg
if [ -f "$RDX_DATA/ecg/mitdb/100.dat" ]; then
    cp "$RDX_DATA/ecg/mitdb/100.hea" "$RDX_DATA/ecg/mitdb/100.dat" "$RDX_DATA/ecg/mitdb/100.atr" ecg/
else
    echo "   ($RDX_DATA/ecg/mitdb absent: sending a generated 2 MB trace instead)"
    printf '100 2 360 650000\n100.dat 212 200 11 1024 995 -22131 0 MLII\n' > ecg/100.hea
    head -c 1950000 /dev/urandom > ecg/100.dat
    : > ecg/100.atr
fi

echo "-- the clinic sends record 100 (header, signal, annotations) as an ECG case"
id=$(rdx case send --config clinic.ini --to jsph --kind ecg ecg/100.hea ecg/100.dat ecg/100.atr)
echo "   case $id"
wait_for sh -c "'$RDX_BIN' case status --config clinic.ini --outbox --json | grep -q '\"case_id\":\"$id\",\"to\":\"jsph\",\"kind\":\"ecg\",\"state\":\"acked\"'"
rdx case status --config clinic.ini --outbox
rdx case list --config hub.ini --inbox
mkdir fetched
rdx case fetch --config hub.ini -o fetched "$id"
for f in 100.hea 100.dat 100.atr; do
    cmp "ecg/$f" "fetched/$f"
done
echo "   byte-identical at the hub: 100.hea 100.dat 100.atr"

echo "-- a DICOM study is not allowed from this clinic: refused, and dead-lettered at once"
id2=$(rdx case send --config clinic.ini --to jsph --kind dicom ecg/100.hea)
wait_for sh -c "'$RDX_BIN' case status --config clinic.ini --outbox --json | grep -q '\"case_id\":\"$id2\",\"to\":\"jsph\",\"kind\":\"dicom\",\"state\":\"dead\"'"
rdx case status --config clinic.ini --outbox | grep DEAD

echo "-- the hub's log and its hash-chained audit trail"
sed 's/^/   /' hub.log
rdx node audit --config hub.ini | cut -c1-150
rdx node audit --config hub.ini --verify
