#!/usr/bin/env bash
# One fuzz target: its regression inputs (fuzz/regressions/NAME, crashes found earlier) once,
# then SECONDS of fuzzing (libFuzzer seed FUZZ_SEED, default 1 so a test run is repeatable; 0: random)
# from the corpus kept in the build tree and the seeds fuzz/seeds.py
# makes. Prints the executions per second and the coverage reached; a crash, a leak, a
# sanitizer report or a timeout fails, and the input is kept beside the corpus (artifact).
# Usage: fuzz/run.sh BINARY NAME [SECONDS | runs=N]
set -euo pipefail
bin=$1 name=$2 seconds=${3:-20}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# `association` talks to its receivers over loopback: in a private network namespace
# (in-netns.sh knows when it is already in one).
if [ "$name" = association ] && [ -z "${PB_FUZZ_IN_NETNS:-}" ]; then
  PB_FUZZ_IN_NETNS=1 exec "$here/../scripts/in-netns.sh" "$here/run.sh" "$@"
fi
work="$(dirname "$bin")/fuzz-work/$name"
mkdir -p "$work/corpus" "$work/seeds" "$work/tmp"
export TMPDIR="$work/tmp"  # files a target writes (split: its spill files), removed after the run
trap 'rm -rf "$work/tmp"' EXIT
python3 "$here/seeds.py" "$name" "$work/seeds"
# A length field may announce gigabytes: DCMTK asks for them with new(nothrow) and gets null
# (its "memory exhausted" path) rather than the time of mapping them (inputs are at most 64 KB:
# no honest allocation comes near 64 MB).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:max_allocation_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
shopt -s nullglob
regressions=("$here/regressions/$name"/*)
if ((${#regressions[@]})); then
  "$bin" -timeout=10 -rss_limit_mb=2048 "${regressions[@]}" >"$work/regressions.log" 2>&1 ||
    { cat "$work/regressions.log"; echo "fuzz $name: a regression input fails" >&2; exit 1; }
fi
status=0
# SECONDS, or runs=N: N inputs, the same ones on every machine however fast (make test: a fresh
# build tree with a fixed seed gives the same run, so CI's verdict does not hang on its speed).
if [[ "$seconds" == runs=* ]]; then limit=(-runs="${seconds#runs=}"); else limit=(-max_total_time="$seconds"); fi
start=$SECONDS
"$bin" -seed="${FUZZ_SEED:-1}" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$work/seeds" >"$work/log" 2>&1 || status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
echo "fuzz $name: ${runs:-0} runs in $((SECONDS - start)) s, ${rate:-0} exec/s, coverage ${cov:-0} edges (${ft:-0} features), ${#regressions[@]} regression inputs"
if [ "$status" -ne 0 ]; then
  tail -60 "$work/log"
  echo "fuzz $name: failed (exit $status); the input is in $work/ (keep it in fuzz/regressions/$name/ once fixed)" >&2
  exit 1
fi
