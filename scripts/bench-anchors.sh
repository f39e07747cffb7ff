#!/bin/sh
# bench-anchors.sh BUILD - rdx against its anchors, Orthanc and DCMTK's dcmqrscp, on one
# synthetic corpus in one run (issue: Imaging engine, "Speed"), called by `make bench-anchors`.
#
#   ingest:  Orthanc through C-STORE (storescu, one association) and REST (POST /instances
#            over four keep-alive connections); dcmqrscp through storescu; rdx img index.
#   queries: the same study-level queries through findscu (to Orthanc and to dcmqrscp),
#            Orthanc's /tools/find and `rdx img query`, each as one client process per query
#            (what a user or a script pays), answers counted for every tool; the same in-process
#            (rdx's C API) and on one kept-alive HTTP connection (Orthanc).
#   names:   Chinese, Korean and Japanese Patient Names through rdx, /tools/find and C-FIND.
#
# Everything runs inside a private network namespace holding only the loopback interface,
# so no server can be reached from elsewhere whatever it binds to (Orthanc 1.10 and dcmqrscp
# cannot bind to 127.0.0.1 alone); ports are checked free; the work folder is thrown away;
# the whole run is bounded by `timeout`. Writes docs/imaging-anchors.md.
#
# Knobs: ANCHOR_INSTANCES (20000), ANCHOR_STUDIES (200), ANCHOR_QUERIES (15 per filter),
# ANCHOR_QR_SECONDS (120: dcmqrscp slows down as its index grows, so its ingest is cut off
# after this long and measured on what it stored; its queries then run on that part).
set -eu

build=${1:-build}
N=${ANCHOR_INSTANCES:-20000}
S=${ANCHOR_STUDIES:-200}
QR_SECONDS=${ANCHOR_QR_SECONDS:-120}
Q=${ANCHOR_QUERIES:-15}
REPORT=docs/imaging-anchors.md

if [ -z "${RDX_ANCHORS_INSIDE:-}" ]; then
    for t in Orthanc storescu findscu dcmqrscp curl sqlite3 unshare ss; do
        command -v "$t" >/dev/null 2>&1 || {
            echo "bench-anchors: $t not found (run scripts/anchors-deps.sh)" >&2
            exit 1
        }
    done
    ns="unshare -n"
    [ "$(id -u)" -eq 0 ] || ns="unshare -rn"
    RDX_ANCHORS_INSIDE=1 exec timeout -k 10 1200 $ns sh "$0" "$build"
fi

ip link set lo up 2>/dev/null || true
tmp=$(mktemp -d /tmp/rdx-anchors.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do
        kill "$p" 2>/dev/null || true
    done
    for p in $pids; do
        wait "$p" 2>/dev/null || true
    done
    if [ -n "${ANCHOR_KEEP:-}" ]; then echo "bench-anchors: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

now_ms() { echo $(($(date +%s%N) / 1000000)); }
# A TCP port nobody listens on, from $1 up.
free_port() {
    p=$1
    while ss -Htln "sport = :$p" | grep -q .; do p=$((p + 1)); done
    echo "$p"
}
# Server CPU time of a process and its waited-for children (dcmqrscp forks per association), ms.
cpu_ms() {
    tck=$(getconf CLK_TCK)
    awk -v t="$tck" '{ sub(/^.*\) /, ""); print int(($12 + $13 + $14 + $15) * 1000 / t) }' "/proc/$1/stat"
}
# Median and 90th percentile (ms) of the numbers in file $1.
stats() { sort -n "$1" | awk '{ a[NR] = $1 } END { m = a[int((NR + 1) / 2)]; p = a[int(NR * 0.9 + 0.999)]; printf "%d / %d", m, p }'; }
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
wait_http() {
    i=0
    until curl -sf -o /dev/null "http://127.0.0.1:$1/system"; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "bench-anchors: Orthanc did not start" >&2; exit 1; }
        sleep 0.1
    done
}
wait_port() {
    i=0
    until ss -Htln "sport = :$1" | grep -q .; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "bench-anchors: nothing listens on $1" >&2; exit 1; }
        sleep 0.1
    done
}
orthanc_config() { # dir http-port dicom-port
    mkdir -p "$1/db"
    cat >"$1/orthanc.json" <<EOF
{ "Name": "rdx-anchor", "StorageDirectory": "$1/db", "IndexDirectory": "$1/db",
  "StorageCompression": false, "Plugins": [], "HttpPort": $2, "DicomPort": $3,
  "DicomAet": "ORTHANC", "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
  "SslEnabled": false, "DicomServerEnabled": true, "DicomCheckCalledAet": false,
  "DicomAlwaysAllowStore": true, "DicomAlwaysAllowFind": true,
  "DicomModalities": { "findscu": [ "FINDSCU", "127.0.0.1", 104 ] },
  "LimitFindResults": 0, "LimitFindInstances": 0, "SaveJobs": false, "HttpTimeout": 60 }
EOF
}

echo "bench-anchors: corpus of $N instances in $S studies"
"$build/bench/imaging_bench" --corpus-only --dir "$tmp" --instances "$N" --studies "$S" >/dev/null
corpus=$tmp/corpus
bytes=$(du -sb "$corpus" | cut -f1)
export TCP_NODELAY=1 # honoured only by DCMTK builds with DISABLE_NAGLE_ALGORITHM

# ---- rdx ----------------------------------------------------------------------------------
db=$tmp/rdx.db
t0=$(now_ms)
"$build/rdx" img index --db "sqlite:$db" "$corpus" >/dev/null
t1=$(now_ms)
rdx_rate=$((N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
echo "  rdx img index (SQLite, one process): $rdx_rate instances/s"

# Query values from the corpus itself: patient IDs, accessions, dates, name prefixes.
sqlite3 -separator ' ' "$db" "SELECT p.patient_id, st.accession, st.study_date,
    substr(p.name_alpha, 1, 12) FROM studies st JOIN patients p ON p.id = st.patient_ref
    ORDER BY st.study_uid LIMIT $Q" >"$tmp/values"

# ---- Orthanc, C-STORE ---------------------------------------------------------------------
hp=$(free_port 18042)
dp=$(free_port 14242)
orthanc_config "$tmp/oa" "$hp" "$dp"
Orthanc "$tmp/oa/orthanc.json" >"$tmp/oa/log" 2>&1 &
opid=$!
pids="$pids $opid"
wait_http "$hp"
wait_port "$dp"
c0=$(cpu_ms "$opid")
t0=$(now_ms)
storescu -aet STORESCU -aec ORTHANC +sd +r 127.0.0.1 "$dp" "$corpus" >"$tmp/oa/storescu.log" 2>&1 ||
    echo "  (storescu to Orthanc reported errors: $(grep -c '^E:' "$tmp/oa/storescu.log"))"
t1=$(now_ms)
c1=$(cpu_ms "$opid")
o_cstore=$((N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
o_cstore_cpu=$(awk -v c=$((c1 - c0)) -v n="$N" 'BEGIN { printf "%.2f", c / n }')
o_count=$(curl -s "http://127.0.0.1:$hp/statistics" | tr -d ' \n' | sed 's/.*"CountInstances":\([0-9]*\).*/\1/')
echo "  Orthanc C-STORE: $o_cstore instances/s ($o_count stored), $o_cstore_cpu ms server CPU each"

# ---- queries ------------------------------------------------------------------------------
# run_q KIND TOOL: time each of the Q queries of KIND through TOOL; first answer count kept.
q_findscu() { # port aec keys...
    port=$1
    aec=$2
    shift 2
    findscu -v -aet FINDSCU -aec "$aec" -S 127.0.0.1 "$port" -k 0008,0052=STUDY \
        -k 0020,000D -k 0010,0010 -k 0008,0061 "$@" 2>&1 | grep -c 'Find Response:.*(Pending)' || true
}
q_rest() { # "key":"value"
    curl -s -X POST "http://127.0.0.1:$hp/tools/find" \
        -d "{\"Level\":\"Study\",\"Expand\":true,\"Query\":{$1}}" | grep -c '"ID"' || true
}
q_rdx() {
    "$build/rdx" img query --db "sqlite:$db" --level study --json "$@" | grep -c '"study_uid"' || true
}
# The Q query values of a kind, one a line.
vals() {
    while read -r pid acc date name; do
        case $1 in
        pid) echo "$pid" ;;
        name) echo "$name*" ;;
        date) echo "$date-$date" ;;
        modality) echo CT ;;
        acc) echo "$acc" ;;
        esac
    done <"$tmp/values"
}
# Each query of KIND through TOOL, one client process each: "median / p90 (answers to the first)".
run_kind() { # kind tool
    kind=$1
    tool=$2
    : >"$tmp/t.$kind.$tool"
    first=""
    vals "$kind" >"$tmp/v.$kind"
    while read -r v; do
        case $kind in
        pid) tag=0010,0020 key=PatientID opt=--patient-id ;;
        name) tag=0010,0010 key=PatientName opt=--patient-name ;;
        date) tag=0008,0020 key=StudyDate opt=--study-date ;;
        modality) tag=0008,0061 key=ModalitiesInStudy opt=--modality ;;
        acc) tag=0008,0050 key=AccessionNumber opt=--accession ;;
        esac
        t0=$(date +%s%N)
        case $tool in
        ofind) n=$(q_findscu "$dp" ORTHANC -k "$tag=$v") ;;
        orest) n=$(q_rest "\"$key\":\"$v\"") ;;
        qfind) n=$(q_findscu "$qp" RDXQR -k "$tag=$v") ;;
        rdx) n=$(q_rdx "$opt" "$v") ;;
        esac
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000)) >>"$tmp/t.$kind.$tool"
        [ -n "$first" ] || first=$n
    done <"$tmp/v.$kind"
    # microseconds -> ms, median / p90
    sort -n "$tmp/t.$kind.$tool" | awk -v first="$first" '{ a[NR] = $1 } END {
        printf "%.1f / %.1f (%s)", a[int((NR + 1) / 2)] / 1000, a[int(NR * 0.9 + 0.999)] / 1000, first }'
}
# rdx in-process (the C query API, as C-FIND and QIDO-RS will call it), same values.
run_inproc() { # kind
    # shellcheck disable=SC2046
    "$build/bench/imaging_bench" --query-only "sqlite:$db" "$1" $(vals "$1" | tr '\n' ' ') |
        awk '{ printf "%.2f / %.2f (%s)", $1, $2, $3 }'
}
# Orthanc /tools/find, every query on one kept-alive connection (no process start): per request.
run_keepalive() { # kind
    case $1 in
    pid) key=PatientID ;; name) key=PatientName ;; date) key=StudyDate ;;
    modality) key=ModalitiesInStudy ;; acc) key=AccessionNumber ;;
    esac
    : >"$tmp/k.$1"
    i=0
    for rep in 1 2 3 4 5; do
        while read -r v; do
            [ "$i" -eq 0 ] || echo next >>"$tmp/k.$1"
            printf 'url = "http://127.0.0.1:%s/tools/find"\ndata = "{\\"Level\\":\\"Study\\",\\"Expand\\":true,\\"Query\\":{\\"%s\\":\\"%s\\"}}"\noutput = /dev/null\nwrite-out = "%%{time_total}\\n"\n' \
                "$hp" "$key" "$v" >>"$tmp/k.$1"
            i=$((i + 1))
        done <"$tmp/v.$1"
        : "$rep"
    done
    curl -s -K "$tmp/k.$1" | sort -n | awk '{ a[NR] = $1 * 1000 } END {
        printf "%.2f / %.2f", a[int((NR + 1) / 2)], a[int(NR * 0.9 + 0.999)] }'
}
KINDS="pid name date modality acc"
for k in $KINDS; do
    eval "r_${k}_rdx=\$(run_kind $k rdx)"
    eval "i_${k}=\$(run_inproc $k)"
    eval "k_${k}=\$(run_keepalive $k)"
    eval "r_${k}_ofind=\$(run_kind $k ofind)"
    eval "r_${k}_orest=\$(run_kind $k orest)"
done
# ---- names in other character sets: what each answer carries --------------------------------
# The fixtures' Patient Names (UTF-8, GB18030, Korean and Japanese ISO 2022), their expected
# UTF-8 from tests/fixtures/imaging/charset_names.tsv (checked against DCMTK).
# JSON \uXXXX escapes (Orthanc writes non-ASCII so) to UTF-8 bytes; no surrogate pairs here.
json_unescape() {
    LC_ALL=C awk '{
        out = ""
        s = $0
        while ((i = index(s, "\\u")) > 0) {
            out = out substr(s, 1, i - 1)
            cp = 0
            for (k = 3; k <= 6; k++)
                cp = cp * 16 + index("0123456789abcdef", tolower(substr(s, i + k - 1, 1))) - 1
            if (cp < 128) out = out sprintf("%c", cp)
            else if (cp < 2048) out = out sprintf("%c%c", 192 + int(cp / 64), 128 + cp % 64)
            else out = out sprintf("%c%c%c", 224 + int(cp / 4096), 128 + int(cp / 64) % 64, 128 + cp % 64)
            s = substr(s, i + 6)
        }
        print out s
    }'
}
csdir=tests/fixtures/imaging/charset
CSFILES="chrX1 chrX2 chrI2 chrH31"
cs_args=""
for c in $CSFILES; do cs_args="$cs_args $csdir/$c.dcm"; done
# shellcheck disable=SC2086
storescu -aet STORESCU -aec ORTHANC 127.0.0.1 "$dp" $cs_args >"$tmp/oa/cs-store.log" 2>&1 || true
# shellcheck disable=SC2086
"$build/rdx" img index --db "sqlite:$tmp/cs.db" $cs_args >/dev/null
: >"$tmp/cs.rows"
for c in $CSFILES; do
    pid=$(dcmdump +P 0010,0020 "$csdir/$c.dcm" | sed 's/^[^[]*\[\([^]]*\)\].*/\1/')
    want=$(awk -F '\t' -v f="$c.dcm" '$1 == f { print $2 }' tests/fixtures/imaging/charset_names.tsv)
    got_rdx=$("$build/rdx" img query --db "sqlite:$tmp/cs.db" --level patient --patient-id "$pid" \
        --json | sed -n 's/.*"patient_name":"\([^"]*\)".*/\1/p' | head -1)
    got_rest=$(curl -s -X POST "http://127.0.0.1:$hp/tools/find" \
        -d "{\"Level\":\"Patient\",\"Expand\":true,\"Query\":{\"PatientID\":\"$pid\"}}" |
        sed -n 's/.*"PatientName" *: *"\([^"]*\)".*/\1/p' | head -1 | json_unescape)
    rm -rf "$tmp/cf" && mkdir -p "$tmp/cf"
    findscu -aet FINDSCU -aec ORTHANC -P -X -od "$tmp/cf" 127.0.0.1 "$dp" -k 0008,0052=PATIENT \
        -k "0010,0020=$pid" -k 0010,0010 -k 0008,0005 >/dev/null 2>&1 || true
    got_cfind=""
    cset=""
    if [ -e "$tmp/cf/rsp0001.dcm" ]; then
        got_cfind=$(dcmdump +U8 +P 0010,0010 "$tmp/cf/rsp0001.dcm" 2>/dev/null | sed 's/^[^[]*\[\(.*\)\][^]]*$/\1/' | head -1)
        cset=$(dcmdump +P 0008,0005 "$tmp/cf/rsp0001.dcm" 2>/dev/null | sed 's/^[^[]*\[\([^]]*\)\].*/\1/' | head -1)
    fi
    mark() { if [ "$1" = "$want" ]; then echo "intact"; else echo "\`${1:-(none)}\`"; fi; }
    printf '| %s | `%s` | %s | %s | %s (%s) |\n' "$c.dcm" "$want" "$(mark "$got_rdx")" \
        "$(mark "$got_rest")" "$(mark "$got_cfind")" "${cset:-no charset}" >>"$tmp/cs.rows"
done

kill "$opid"
wait "$opid" 2>/dev/null || true

# ---- Orthanc, REST over four connections ---------------------------------------------------
hp2=$(free_port $((hp + 1)))
dp2=$(free_port $((dp + 1)))
orthanc_config "$tmp/ob" "$hp2" "$dp2"
Orthanc "$tmp/ob/orthanc.json" >"$tmp/ob/log" 2>&1 &
opid2=$!
pids="$pids $opid2"
wait_http "$hp2"
find "$corpus" -type f | sort >"$tmp/files"
i=0
for w in 0 1 2 3; do : >"$tmp/curl.$w"; done
while read -r f; do
    w=$((i % 4))
    [ "$i" -lt 4 ] || echo next >>"$tmp/curl.$w"
    printf 'url = "http://127.0.0.1:%s/instances"\ndata-binary = "@%s"\noutput = /dev/null\n' \
        "$hp2" "$f" >>"$tmp/curl.$w"
    i=$((i + 1))
done <"$tmp/files"
c0=$(cpu_ms "$opid2")
t0=$(now_ms)
cp=""
for w in 0 1 2 3; do
    curl -s -f -H 'Expect:' -K "$tmp/curl.$w" >/dev/null &
    cp="$cp $!"
done
for p in $cp; do wait "$p" || echo "  (a REST upload worker failed)"; done
t1=$(now_ms)
c1=$(cpu_ms "$opid2")
o_rest=$((N * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
o_rest_cpu=$(awk -v c=$((c1 - c0)) -v n="$N" 'BEGIN { printf "%.2f", c / n }')
o_count2=$(curl -s "http://127.0.0.1:$hp2/statistics" | tr -d ' \n' | sed 's/.*"CountInstances":\([0-9]*\).*/\1/')
echo "  Orthanc REST (4 connections): $o_rest instances/s ($o_count2 stored), $o_rest_cpu ms server CPU each"
kill "$opid2"
wait "$opid2" 2>/dev/null || true

# ---- dcmqrscp ------------------------------------------------------------------------------
qp=$(free_port 11112)
mkdir -p "$tmp/qr/db"
cat >"$tmp/qr/dcmqrscp.cfg" <<EOF
NetworkTCPPort  = $qp
MaxPDUSize      = 16384
MaxAssociations = 4
HostTable BEGIN
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
RDXQR   $tmp/qr/db   RW   ($((S * 2)), 1024mb)   ANY
AETable END
EOF
dcmqrscp -c "$tmp/qr/dcmqrscp.cfg" >"$tmp/qr/log" 2>&1 &
qpid=$!
pids="$pids $qpid"
wait_port "$qp"
c0=$(cpu_ms "$qpid")
t0=$(now_ms)
storescu -aet STORESCU -aec RDXQR +sd +r 127.0.0.1 "$qp" "$corpus" >"$tmp/qr/storescu.log" 2>&1 &
spid=$!
pids="$pids $spid"
# The stored count every 10 s: the rate in each window shows how dcmqrscp slows down.
(
    prev=0
    el=0
    while :; do
        sleep 10
        el=$((el + 10))
        cur=$(find "$tmp/qr/db" -type f ! -name index.dat | wc -l)
        echo "$el $cur $(((cur - prev) / 10))" >>"$tmp/qr/windows"
        prev=$cur
    done
) &
sampler=$!
# Cut the ingest off after QR_SECONDS.
(sleep "$QR_SECONDS" && kill "$spid" 2>/dev/null && : >"$tmp/qr/cut") &
watcher=$!
pids="$pids $sampler $watcher"
wait "$spid" 2>/dev/null || true
t1=$(now_ms)
kill "$sampler" "$watcher" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
cut_off=no
[ ! -e "$tmp/qr/cut" ] || cut_off=yes
[ -s "$tmp/qr/windows" ] || echo "0 0 0" >"$tmp/qr/windows"
sleep 1 # the association's last store lands
c1=$(cpu_ms "$qpid")
q_count=$(find "$tmp/qr/db" -type f ! -name index.dat | wc -l)
q_cstore=$((q_count * 1000 / (t1 - t0 > 0 ? t1 - t0 : 1)))
q_cstore_cpu=$(awk -v c=$((c1 - c0)) -v n="$q_count" 'BEGIN { if (n > 0) printf "%.2f", c / n; else print "-" }')
q_first=$(head -1 "$tmp/qr/windows" | awk '{ print $3 }')
q_last=$(tail -1 "$tmp/qr/windows" | awk '{ print $3 }')
q_windows=$(awk '{ printf "%s%d s: %d (%d/s)", (NR > 1 ? "; " : ""), $1, $2, $3 }' "$tmp/qr/windows")
echo "  dcmqrscp C-STORE: $q_cstore instances/s ($q_count stored, cut off: $cut_off), first 10 s $q_first/s, last 10 s $q_last/s"
# Its queries see what it stored; rdx and Orthanc answered on all N.
for k in $KINDS; do
    eval "r_${k}_qfind=\$(run_kind $k qfind)"
done
kill "$qpid"
wait "$qpid" 2>/dev/null || true

# ---- report --------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }'; }
med() { echo "$1" | awk '{ print $1 }'; }
label() {
    case $1 in
    pid) echo "patient ID (exact)" ;;
    name) echo "patient name (prefix*)" ;;
    date) echo "study date (one-day range)" ;;
    modality) echo "modality in study (CT)" ;;
    acc) echo "accession" ;;
    esac
}
{
    echo "# Imaging anchors (make bench-anchors)"
    echo
    echo "rdx against Orthanc $(Orthanc --version 2>/dev/null | head -1 | awk '{ print $2 }') and DCMTK $(dcmqrscp --version 2>/dev/null | head -1 | sed 's/.*v\([0-9.]*\).*/\1/') dcmqrscp (Debian packages), in one run of"
    echo "\`scripts/bench-anchors.sh\` on $(date -u +%Y-%m-%d), on the shared 2-core build machine."
    echo "Corpus: $N synthetic instances in $S studies ($((bytes / 1024)) KiB), made by"
    echo "\`imaging_bench --corpus-only\` from the CT, CR and MR fixtures. Every server ran on"
    echo "127.0.0.1 inside a private network namespace (loopback only), from a throwaway folder."
    echo
    echo "## Ingest"
    echo
    echo "| path | instances/s | server CPU per instance | rdx is |"
    echo "| --- | --- | --- | --- |"
    echo "| \`rdx img index\` from files into SQLite (one process) | $rdx_rate | (in-process) | - |"
    echo "| Orthanc, C-STORE (\`storescu\`, one association) | $o_cstore | $o_cstore_cpu ms | $(ratio "$rdx_rate" "$o_cstore")x faster |"
    echo "| Orthanc, REST \`POST /instances\` (4 keep-alive connections) | $o_rest | $o_rest_cpu ms | $(ratio "$rdx_rate" "$o_rest")x faster |"
    echo "| DCMTK \`dcmqrscp\`, C-STORE (\`storescu\`), whole run | $q_cstore | $q_cstore_cpu ms | $(ratio "$rdx_rate" "$q_cstore")x faster |"
    echo "| DCMTK \`dcmqrscp\`, last 10 s of its run | $q_last | | $(ratio "$rdx_rate" "$q_last")x faster |"
    echo
    echo "Stored: Orthanc $o_count (C-STORE) and $o_count2 (REST) of $N; dcmqrscp $q_count of $N"
    echo "(cut off after ${QR_SECONDS} s: $cut_off). dcmqrscp's stored count every 10 s (instances, rate in"
    echo "that window), which shows it slowing as its flat index.dat grows: $q_windows."
    echo
    echo "## Study-level queries"
    echo
    echo "Wall time of one client process per query, ms, median / p90 over $Q queries, and"
    echo "(in brackets) the answers to the first query. rdx in-process figures are in"
    echo "docs/imaging-bench.md; here every tool pays its process start and, for the servers,"
    echo "the association or HTTP round trip, as a user or a script does."
    echo
    echo "| filter | \`rdx img query\` | Orthanc, \`findscu\` | Orthanc, \`/tools/find\` | dcmqrscp, \`findscu\` | Orthanc findscu / rdx | Orthanc REST / rdx |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for k in $KINDS; do
        eval "a=\$r_${k}_rdx b=\$r_${k}_ofind c=\$r_${k}_orest d=\$r_${k}_qfind"
        echo "| $(label "$k") | $a | $b | $c | $d | $(ratio "$(med "$b")" "$(med "$a")") | $(ratio "$(med "$c")" "$(med "$a")") |"
    done
    echo
    echo "Without process starts: rdx through its C query API in-process (the path C-FIND and"
    echo "QIDO-RS will take), and Orthanc's \`/tools/find\` with every request on one kept-alive"
    echo "HTTP connection (curl's time per request); ms, median / p90 over 5 x $Q queries."
    echo
    echo "| filter | rdx in-process | Orthanc \`/tools/find\`, kept-alive | Orthanc / rdx |"
    echo "| --- | --- | --- | --- |"
    for k in $KINDS; do
        eval "a=\$i_${k} c=\$k_${k}"
        echo "| $(label "$k") | $a | $c | $(ratio "$(med "$c")" "$(med "$a")") |"
    done
    echo
    echo "\`rdx img query\` as a process costs about 30 ms before it queries anything: the one"
    echo "rdx binary loads every engine's shared libraries (DCMTK, GDCM, libpq, OpenSSL, libevent,"
    echo "FFTW: $(ldd "$build/rdx" | wc -l) objects), so the per-process rows measure that start; the in-process"
    echo "table measures the engine."
    echo
    echo "Load average when the run ended: $(cut -d' ' -f1-3 /proc/loadavg) (other engineers' jobs share the two cores)."
    echo
    echo "dcmqrscp answered on the $q_count instances it had stored, the others on all $N."
    echo "dcmqrscp runs in its default mode, a process per association: with \`--single-process\`"
    echo "Debian's build crashes (SIGSEGV) when the first association ends."
    echo
    echo "## Names in other character sets"
    echo
    echo "The Patient Name of each charset fixture as each answer carries it, against the UTF-8"
    echo "that DCMTK decodes (tests/fixtures/imaging/charset_names.tsv). Orthanc's C-FIND answer is"
    echo "read with \`dcmdump +U8\` under the Specific Character Set it declares (in brackets);"
    echo "Orthanc's JSON escapes non-ASCII as \\uXXXX, decoded before comparing."
    echo
    echo "| file | expected | \`rdx img query --json\` | Orthanc \`/tools/find\` | Orthanc C-FIND (\`findscu\`) |"
    echo "| --- | --- | --- | --- | --- |"
    cat "$tmp/cs.rows"
    echo
    echo "Reading the answer counts: every tool should agree on each row. dcmqrscp ignores"
    echo "ModalitiesInStudy as a matching key (it answers every study), which is why rdx"
    echo "matches modality against the series of each study itself."
} >"$REPORT"
echo "  report: $REPORT"
cat "$REPORT"
