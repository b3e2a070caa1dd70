#!/usr/bin/env bash
# Applies .clang-format to loco's C++ sources; with --check, only reports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.h')
if [ "${1:-}" = "--check" ]; then
  clang-format --dry-run --Werror "${files[@]}" && echo "format: clean"
else
  clang-format -i "${files[@]}"
fi
