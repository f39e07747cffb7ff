#!/bin/sh
# Install the Debian packages `make bench-anchors` measures rdx against: Orthanc (the DICOM
# server) and DCMTK's command-line tools (storescu, findscu, dcmqrscp), plus curl for Orthanc's
# REST API. Not part of the default package list in scripts/deps.sh: nothing else needs them.
# Idempotent: prints nothing and exits 0 when every package is present.
#   scripts/anchors-deps.sh          install what is missing
#   scripts/anchors-deps.sh --check  exit 1 (silently) when something is missing
set -eu

PKGS="orthanc dcmtk curl"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
[ "${1:-}" = "--check" ] && exit 1

echo "rdx: installing the benchmark anchors:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "rdx: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/rdx-anchors-deps.XXXXXX)
# shellcheck disable=SC2086
if $SUDO apt-get install -y -q --no-install-recommends $missing >"$log" 2>&1 ||
    { $SUDO apt-get update -q >>"$log" 2>&1 &&
        $SUDO apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; }; then
    echo "rdx: installed; apt's log is $log" >&2
else
    tail -n 40 "$log" >&2
    echo "rdx: package installation failed; apt's full log is $log" >&2
    exit 1
fi
# The Debian package may have started its own Orthanc (listening on every interface) where an
# init system runs; the benchmark starts its own on 127.0.0.1 and never uses that one.
