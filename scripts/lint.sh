#!/usr/bin/env bash
# Format and static checks with the project's own configs (.clang-format, .clang-tidy), run by
# `make test`. clang-tidy reads the clang build's compile commands (build/clang): one unit per
# module where modules build as one, so each header is parsed a few times, not once per file.
#   scripts/lint.sh            both checks
#   scripts/lint.sh --format   clang-format only (no build needed)
#   scripts/lint.sh --fix      rewrite the files in the project's format
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t sources < <(git ls-files 'src/*.cpp' 'src/*.h' 'fuzz/*.cpp' 'fuzz/*.h')
if [[ "${1:-}" == "--fix" ]]; then
  clang-format-14 -i "${sources[@]}"
  exit 0
fi
if ! clang-format-14 --dry-run -Werror "${sources[@]}"; then
  echo "lint: files above are not in the project's format (.clang-format); scripts/lint.sh --fix rewrites them" >&2
  exit 1
fi
[[ "${1:-}" == "--format" ]] && exit 0

if [[ ! -f build/clang/compile_commands.json ]]; then
  echo "lint: build/clang/compile_commands.json is missing: run make clang first" >&2
  exit 1
fi
# Our sources only (not the generated UI assets); headers under src/ are checked where included.
mapfile -t units < <(python3 - <<'PY'
import json
for e in json.load(open("build/clang/compile_commands.json")):
    f = e["file"]
    if "/generated/" not in f:
        print(f)
PY
)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! run-clang-tidy-14 -quiet -p build/clang -j "$(nproc)" -header-filter='/(src|modules)/' "${units[@]}" >"$out" 2>&1; then
  grep -E "(warning|error):" "$out" | sort -u >&2 || cat "$out" >&2
  echo "lint: clang-tidy found the problems above (.clang-tidy)" >&2
  exit 1
fi
echo "lint: format and clang-tidy clean (${#sources[@]} files, ${#units[@]} units)"
