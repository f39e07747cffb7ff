#!/bin/sh
# Install the Debian packages rdx needs to build, test, fuzz and run its demo.
# Idempotent: prints nothing and exits 0 when every package is already present.
# Called by make only when its dependency check fails; safe to run by hand.
#   scripts/deps.sh          install what is missing
#   scripts/deps.sh --check  exit 1 (silently) when something is missing
set -eu

PKGS="build-essential pkg-config g++ clang clang-format libclang-rt-14-dev \
libfftw3-dev libdcmtk-dev dcmtk libgdcm-dev libssl-dev openssl libcmocka-dev \
libsqlite3-dev sqlite3 libpq-dev postgresql libinih-dev libevent-dev zlib1g-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
[ "${1:-}" = "--check" ] && exit 1

echo "rdx: installing missing Debian packages:$missing" >&2
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
log=$(mktemp /tmp/rdx-deps.XXXXXX)
# apt's progress goes to a log; it is shown only when something fails.
# shellcheck disable=SC2086
if $SUDO apt-get update -q >"$log" 2>&1 &&
    $SUDO apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
    echo "rdx: installed; apt's log is $log" >&2
else
    tail -n 40 "$log" >&2
    echo "rdx: package installation failed; apt's full log is $log" >&2
    exit 1
fi
