#!/bin/sh
# Lint: the sources must match .clang-format, and must not call functions the
# house style bans on external data (docs/ARCHITECTURE.md, "Untrusted input").
set -u
status=0
files=$(git ls-files -co --exclude-standard '*.c' '*.h' '*.cpp' 2>/dev/null)
[ -n "$files" ] || files=$(find include common ecg imaging lab transport cli tests bench \
    -name '*.c' -o -name '*.h' -o -name '*.cpp' 2>/dev/null)

# shellcheck disable=SC2086
if ! clang-format --dry-run --Werror $files 2>/tmp/rdx-lint.$$; then
    head -n 40 /tmp/rdx-lint.$$ >&2
    echo "lint: clang-format differences (run 'make format')" >&2
    status=1
fi
rm -f /tmp/rdx-lint.$$

banned='(^|[^A-Za-z0-9_])(strtok|strtok_r|sscanf|atoi|atol|atoll|atof|strcpy|strcat|sprintf|vsprintf|gets)[[:space:]]*\('
# shellcheck disable=SC2086
hits=$(grep -nE "$banned" $files | grep -v 'lint: allow' || true)
if [ -n "$hits" ]; then
    printf '%s\n' "$hits" >&2
    echo "lint: banned functions used (see docs/ARCHITECTURE.md)" >&2
    status=1
fi
[ $status -eq 0 ] && echo "lint: clean ($(echo "$files" | wc -w) files)"
exit $status
