#!/usr/bin/env bash
# loco's whole test suite, as CI runs it. Usage (as root on Debian 12):
#   bash tools/test.sh            all stages
#   bash tools/test.sh release    one stage: deps | release | asan | tsan | fuzz | install
# Stages:
#   release  Release build of tests, examples and benchmarks; every CTest test
#   asan     ASan+UBSan build of the tests; all but compile-fail and slow tests
#   tsan     TSan build of the concurrency-labelled tests (communicators, drivers)
#   fuzz     clang-14 libFuzzer (+ASan+UBSan) build of fuzz/; every target runs
#            LOCO_FUZZ_SECONDS (20) s from its seed corpus (tools/fuzz.sh)
#   install  cmake --install into a temporary prefix, then build and run
#            test_package/ against it with find_package(loco CONFIG REQUIRED)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="$(nproc 2>/dev/null || echo 2)"
# One BLAS thread: results are reproducible and ctest's parallel tests do not
# oversubscribe the cores.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
build="${LOCO_BUILD_ROOT:-$root/build/ci}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(deps release asan tsan fuzz install)

declare -a summary=()
stage_start=0
begin() { echo; echo "==== loco: stage $1 ===="; stage_start=$(date +%s); }
end() { summary+=("$1: $(( $(date +%s) - stage_start )) s"); }
run() { echo "+ $*"; "$@"; }
passed=0; failed=0
# Runs ctest, echoing its output, and adds its counts to the totals.
ctest_run() {
  local log; log="$(mktemp)"
  echo "+ ctest $*"
  local status=0
  ctest "$@" 2>&1 | tee "$log" || status=$?
  local line; line="$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1 || true)"
  if [ -n "$line" ]; then
    local total bad
    total="$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')"
    bad="$(echo "$line" | sed -E 's/.*tests passed, ([0-9]+) tests? failed.*/\1/')"
    passed=$((passed + total - bad)); failed=$((failed + bad))
  fi
  rm -f "$log"
  if [ "$status" -ne 0 ]; then
    echo "loco: $passed passed, $failed failed"
    exit "$status"
  fi
}

configure() {  # dir, extra cmake args...
  local dir="$1"; shift
  run cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="${LOCO_BUILD_TYPE:-Release}" "$@" >/dev/null
}

for stage in "${stages[@]}"; do
  case "$stage" in
    deps)
      begin deps; run bash "$root/tools/deps.sh"; end deps ;;
    release)
      begin release
      configure "$build/release"
      run cmake --build "$build/release" -j "$jobs"
      ctest_run --test-dir "$build/release" --output-on-failure -j "$jobs"
      end release ;;
    asan)
      begin asan
      LOCO_BUILD_TYPE=RelWithDebInfo configure "$build/asan" "-DLOCO_SANITIZE=address;undefined" \
        -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      run cmake --build "$build/asan" -j "$jobs"
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
      ctest_run --test-dir "$build/asan" --output-on-failure -j "$jobs" -LE "compile_fail|slow"
      end asan ;;
    tsan)
      begin tsan
      LOCO_BUILD_TYPE=RelWithDebInfo configure "$build/tsan" -DLOCO_SANITIZE=thread \
        -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      run cmake --build "$build/tsan" -j "$jobs"
      export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
      ctest_run --test-dir "$build/tsan" --output-on-failure -j "$jobs" -L concurrency -LE slow
      end tsan ;;
    fuzz)
      begin fuzz
      CC=clang-14 CXX=clang++-14 LOCO_BUILD_TYPE=RelWithDebInfo configure "$build/fuzz" \
        -DLOCO_BUILD_FUZZERS=ON -DLOCO_BUILD_TESTS=OFF -DLOCO_BUILD_BENCHMARKS=OFF \
        -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      run cmake --build "$build/fuzz" --target fuzzers -j "$jobs"
      fuzz_log="$(mktemp)"
      fuzz_status=0
      bash "$root/tools/fuzz.sh" "$build/fuzz" "${LOCO_FUZZ_SECONDS:-20}" 2>&1 | tee "$fuzz_log" ||
        fuzz_status=$?
      fuzz_line="$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$fuzz_log" | tail -1 || true)"
      rm -f "$fuzz_log"
      if [ -n "$fuzz_line" ]; then
        passed=$((passed + $(echo "$fuzz_line" | sed -E 's/^fuzz: ([0-9]+) passed.*/\1/')))
        failed=$((failed + $(echo "$fuzz_line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
      fi
      if [ "$fuzz_status" -ne 0 ]; then
        echo "loco: $passed passed, $failed failed"
        exit "$fuzz_status"
      fi
      end fuzz ;;
    install)
      begin install
      prefix="$build/prefix"
      rm -rf "$prefix" "$build/consumer"
      configure "$build/install-src" -DLOCO_BUILD_TESTS=OFF -DLOCO_BUILD_BENCHMARKS=OFF \
        -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      run cmake --install "$build/install-src" --prefix "$prefix"
      run cmake -S "$root/test_package" -B "$build/consumer" -G Ninja \
        -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
      run cmake --build "$build/consumer" -j "$jobs"
      run "$build/consumer/loco_consumer"
      passed=$((passed + 1))
      end install ;;
    *)
      echo "tools/test.sh: unknown stage '$stage' (deps, release, asan, tsan, fuzz, install)" >&2
      exit 2 ;;
  esac
done

echo
echo "==== loco: all stages passed ===="
for line in "${summary[@]}"; do echo "  $line"; done
echo "loco: $passed passed, $failed failed"
