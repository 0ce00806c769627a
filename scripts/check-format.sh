#!/usr/bin/env bash
# Fails when any C source or header of the project differs from what
# clang-format makes of it with the tree's .clang-format. Build directories
# and git's own files are not the project's sources.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
clang_format=${CLANG_FORMAT:-clang-format}
command -v "$clang_format" >/dev/null || { echo "check-format.sh: $clang_format not found" >&2; exit 1; }

mapfile -d '' files < <(find . \( -path './build*' -o -path './.git' \) -prune -o \
    -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
if [ ${#files[@]} -eq 0 ]; then
    echo "check-format.sh: no C files found" >&2
    exit 1
fi
if "$clang_format" --dry-run --Werror "${files[@]}"; then
    echo "formatting: ${#files[@]} files checked, all formatted"
else
    echo "formatting: differences above; run clang-format -i on those files" >&2
    exit 1
fi
