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
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
