#!/usr/bin/env bash
# Runs loco's libFuzzer targets for a bounded time, each from a fresh copy of
# its committed seed corpus (fuzz/corpus/<target>/), and fails on any crash,
# leak, timeout or sanitizer report. Prints executions per target.
#   bash tools/fuzz.sh <build dir> [seconds per target (20)] [target...]
# The build dir is one configured with CC=clang-14 CXX=clang++-14
# -DLOCO_BUILD_FUZZERS=ON and built with --target fuzzers.
# Environment:
#   LOCO_FUZZ_JOBS   targets run at once (default: nproc)
#   LOCO_FUZZ_OUT    corpora, logs and crash artifacts (default: <build>/fuzz-run)
#   LOCO_FUZZ_ARGS   extra libFuzzer flags (e.g. -runs=1000000)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:?usage: tools/fuzz.sh <build dir> [seconds] [target...]}"
build="$(cd "$build" && pwd)"
seconds="${2:-20}"
shift $(( $# >= 2 ? 2 : 1 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(grep . "$build/fuzzers.txt")
fi
jobs="${LOCO_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}"
out="${LOCO_FUZZ_OUT:-$build/fuzz-run}"
mkdir -p "$out"

run_one() {  # target
  local t="$1" dir="$out/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  if [ -d "$root/fuzz/corpus/$t" ]; then cp "$root/fuzz/corpus/$t"/* "$dir/corpus/" 2>/dev/null; fi
  local dict=()
  [ -f "$root/fuzz/$t.dict" ] && dict=(-dict="$root/fuzz/$t.dict")
  # shellcheck disable=SC2086
  "$build/fuzz/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$dir/" "${dict[@]}" ${LOCO_FUZZ_ARGS:-} \
    "$dir/corpus" >"$dir/log" 2>&1
  echo $? >"$dir/status"
}

echo "fuzz: ${#targets[@]} targets, ${seconds} s each, $jobs at a time, output in $out"
running=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/fuzz/$t" ]; then
    echo "fuzz: $build/fuzz/$t is not built" >&2
    echo 1 >"$out/$t.missing"
    continue
  fi
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait

passed=0; failed=0
printf '%-26s %14s %10s %8s %8s  %s\n' target executions exec/s cov corpus result
for t in "${targets[@]}"; do
  dir="$out/$t"
  if [ ! -f "$dir/status" ]; then
    failed=$((failed + 1)); printf '%-26s %14s\n' "$t" "not built"; continue
  fi
  status="$(cat "$dir/status")"
  execs="$(grep -oE 'stat::number_of_executed_units:[[:space:]]+[0-9]+' "$dir/log" | awk '{print $2}' | tail -1)"
  speed="$(grep -oE 'stat::average_exec_per_sec:[[:space:]]+[0-9]+' "$dir/log" | awk '{print $2}' | tail -1)"
  cov="$(grep -oE ' cov: [0-9]+' "$dir/log" | awk '{print $2}' | tail -1)"
  files="$(find "$dir/corpus" -type f | wc -l)"
  if [ "$status" -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$dir/log"; then
    result=ok; passed=$((passed + 1))
  else
    result="FAILED (exit $status)"; failed=$((failed + 1))
  fi
  printf '%-26s %14s %10s %8s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "$files" "$result"
done
for t in "${targets[@]}"; do
  dir="$out/$t"
  [ -f "$dir/status" ] && [ "$(cat "$dir/status")" -eq 0 ] && continue
  echo
  echo "---- $t: last lines of $dir/log (crash inputs: $dir/crash-*, leak-*, timeout-*, oom-*)"
  tail -40 "$dir/log" 2>/dev/null
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
