#!/usr/bin/env bash
# loco's whole test suite, as CI runs it. Usage (as root on Debian 12):
#   bash tools/test.sh            all stages
#   bash tools/test.sh release    one stage: deps | release | asan | tsan | fuzz | install | conan
# Stages:
#   release  Release build of tests, examples and benchmarks; every CTest test
#   asan     ASan+UBSan build of the tests; all but compile-fail and slow tests
#   tsan     TSan build of the concurrency-labelled tests (communicators, drivers)
#   fuzz     clang-14 libFuzzer (+ASan+UBSan) build of fuzz/; every target runs
#            LOCO_FUZZ_SECONDS (20) s from its seed corpus (tools/fuzz.sh)
#   install  the README's "Using loco from CMake" commands: cmake --install into
#            a temporary prefix, then test_package/ built against it and run
#   conan    the README's "Using loco from Conan 2" commands: conan create with
#            the Debian profile (runs test_package/), then the consumer in
#            tests/conan/consumer; CONAN_HOME is a temporary folder. Uses conan
#            from PATH, else ../shared/tools/conan.sh; skipped (one line) if
#            neither exists
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
jobs="$(nproc 2>/dev/null || echo 2)"
# One BLAS thread: results are reproducible and ctest's parallel tests do not
# oversubscribe the cores.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
build="${LOCO_BUILD_ROOT:-$root/build/ci}"
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(deps release asan tsan fuzz install conan)

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

# The fenced block that follows the line "<!-- tools/test.sh NAME -->" in
# README.md: the stages run the commands and use the files the README shows.
readme_commands() {
  awk -v marker="<!-- tools/test.sh $1 -->" '
    index($0, marker) { found = 1; next }
    found && !inside && /^```/ { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }' "$root/README.md"
}
# Runs README commands (stdin) in a bash with `set -ex`, in directory $1.
run_commands() {
  local dir="$1" script; script="$(cat)"
  [ -n "$script" ] || { echo "tools/test.sh: no README commands found" >&2; return 1; }
  (cd "$dir" && bash -ec "set -x; $script")
}

# The ASan build: -O1 with line tables only. Instrumented -O2 -g took three
# times as long to compile as the Release build; -O1 -g1 keeps symbolized
# stack traces and is the optimization level ASan recommends. (TSan keeps
# -O2 -g: at -O1, GCC 12 reports -Wnull-dereference false positives there.)
asan_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

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
      configure "$build/asan" "${asan_flags[@]}" "-DLOCO_SANITIZE=address;undefined" \
        -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      run cmake --build "$build/asan" -j "$jobs"
      export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
      # One run per fault kind (the release stage runs three): the chaos
      # test's processes run several times slower instrumented.
      export LOCO_CHAOS_RUNS=1
      ctest_run --test-dir "$build/asan" --output-on-failure -j "$jobs" -LE "compile_fail|slow"
      end asan ;;
    tsan)
      begin tsan
      LOCO_BUILD_TYPE=RelWithDebInfo configure "$build/tsan" -DLOCO_SANITIZE=thread \
        -DLOCO_BUILD_BENCHMARKS=OFF -DLOCO_BUILD_EXAMPLES=OFF -DLOCO_BUILD_EXPERIMENTS=OFF
      # Only what the concurrency-labelled tests run is built.
      run cmake --build "$build/tsan" -j "$jobs" --target loco_tests_concurrency
      export LOCO_CHAOS_RUNS=1  # TSAN_OPTIONS: each test's, tests/CMakeLists.txt
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
      rm -rf "$prefix" "$build/my_app"
      mkdir -p "$build"
      cp -r "$root/test_package" "$build/my_app"
      rm -rf "$build/my_app/build" "$build/my_app/CMakeUserPresets.json"
      # The README installs into /opt/loco and builds my_app: here a temporary
      # prefix and a copy of test_package/.
      readme_commands install | sed -e "s|/opt/loco|$prefix|g" -e "s|my_app|$build/my_app|g" |
        run_commands "$root"
      run "$build/my_app/build/loco_consumer"
      passed=$((passed + 1))
      end install ;;
    conan)
      begin conan
      conan_home="$(mktemp -d)"
      if ! command -v conan >/dev/null 2>&1; then
        if [ ! -f "$root/../shared/tools/conan.sh" ]; then
          echo "loco: stage conan skipped: no conan on PATH and no ../shared/tools/conan.sh beside the clone"
          rm -rf "$conan_home"; end conan; continue
        fi
        # The README's commands say `conan`: put a conan on PATH for them.
        mkdir -p "$conan_home/bin"
        printf '#!/bin/sh\nexec bash "%s" "$@"\n' "$(cd "$root/../shared/tools" && pwd)/conan.sh" \
          >"$conan_home/bin/conan"
        chmod +x "$conan_home/bin/conan"
        export PATH="$conan_home/bin:$PATH"
      fi
      consumer="$build/conan-consumer"
      rm -rf "$consumer"
      mkdir -p "$build"
      cp -r "$root/tests/conan/consumer" "$consumer"
      export CONAN_HOME="$conan_home" LOCO="$root"
      # The README's conanfile.txt is the consumer's.
      readme_commands conan-conanfile | diff - "$consumer/conanfile.txt"
      readme_commands conan-package | run_commands "$root"
      readme_commands conan-consumer | run_commands "$consumer"
      # loco::loco alone links no SSL, BLAS or zlib.
      if ldd "$consumer/build/core_only" | grep -E "libssl|libcrypto|blas|lapack|libz\." ; then
        echo "loco: core_only links a library the core does not need" >&2
        exit 1
      fi
      echo "core_only links: $(ldd "$consumer/build/core_only" | awk '{print $1}' | tr '\n' ' ')"
      # An unknown component is refused through Conan as with plain CMake.
      nosuch_log="$consumer/nosuch.log"
      if cmake -S "$consumer" -B "$consumer/build-nosuch" -G Ninja -DLOCO_EXTRA_COMPONENTS=nosuch \
           -DCMAKE_TOOLCHAIN_FILE="$consumer/build/conan_toolchain.cmake" >"$nosuch_log" 2>&1 ||
         ! grep -q "without component 'nosuch'" "$nosuch_log"; then
        cat "$nosuch_log"; echo "loco: find_package(loco COMPONENTS nosuch) was not refused" >&2
        exit 1
      fi
      echo "find_package(loco COMPONENTS nosuch): refused, as it should be"
      # with_mpi=True: loco::mpi finds Debian's Open MPI on the consumer's side.
      run conan create "$root" -pr:a "$root/conan/profiles/debian12" -o "&:with_mpi=True" \
        -tf "" >/dev/null
      (cd "$consumer" &&
        run conan install . -pr:a "$root/conan/profiles/debian12" -o "loco/*:with_mpi=True" \
          --output-folder=build-mpi >/dev/null &&
        run cmake -S . -B build-mpi -G Ninja -DCMAKE_TOOLCHAIN_FILE=build-mpi/conan_toolchain.cmake \
          -DCMAKE_BUILD_TYPE=Release -DLOCO_CONSUMER_MPI=ON >/dev/null &&
        run cmake --build build-mpi --target mpi_app &&
        OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 run build-mpi/mpi_app)
      rm -rf "$conan_home"
      unset CONAN_HOME
      passed=$((passed + 4))
      end conan ;;
    *)
      echo "tools/test.sh: unknown stage '$stage' (deps, release, asan, tsan, fuzz, install, conan)" >&2
      exit 2 ;;
  esac
done

echo
echo "==== loco: all stages passed ===="
for line in "${summary[@]}"; do echo "  $line"; done
echo "loco: $passed passed, $failed failed"
