#!/usr/bin/env bash
# Builds glint and runs every test: the plain build, then the whole suite
# under ASan+UBSan, then the whole suite under TSan, then each libFuzzer
# target for GLINT_FUZZ_SECONDS (default 60) from its seed corpus.
# Usage: scripts/test.sh [--fast]   (--fast: the plain build only)
set -euo pipefail
cd "$(dirname "$0")/.."
fast=0
[ "${1:-}" = "--fast" ] && fast=1
bash scripts/deps.sh
jobs=$(nproc)

run_suite() {  # name, build dir, ctest args, cmake args...
  local name=$1 dir=$2 ctest_args=$3
  shift 3
  echo "=== glint: $name build ($dir)"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  ninja -C "$dir"
  echo "=== glint: $name tests"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" $ctest_args)
}

run_suite release build "" -DCMAKE_BUILD_TYPE=Release
if [ $fast -eq 0 ]; then
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_suite asan build-asan "" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGLINT_SANITIZE=address -DGLINT_BUILD_BENCH=OFF
  # TSan's shadow memory layout needs ASLR off on recent kernels.
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  echo "=== glint: tsan build (build-tsan)"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGLINT_SANITIZE=thread -DGLINT_BUILD_BENCH=OFF >/dev/null
  ninja -C build-tsan
  # Every test: each store test also runs the embedded monitor on a thread
  # beside its clients (about a minute on two cores).
  echo "=== glint: tsan tests"
  (cd build-tsan && setarch "$(uname -m)" -R ctest --output-on-failure -j"$jobs")

  # libFuzzer (clang, with ASan+UBSan). New inputs go to a scratch
  # directory; the seeds in fuzz/corpus are only read. A finding stops the
  # run and libFuzzer prints the input (also saved under $scratch).
  echo "=== glint: fuzz build (build-fuzz, clang)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGLINT_FUZZ=ON -DGLINT_BUILD_TESTS=OFF -DGLINT_BUILD_BENCH=OFF >/dev/null
  ninja -C build-fuzz
  scratch=$(mktemp -d /tmp/glint-fuzz.XXXXXX)
  for t in fuzz_ops fuzz_region fuzz_crash; do
    echo "=== glint: $t for ${GLINT_FUZZ_SECONDS:-60} s"
    mkdir -p "$scratch/$t"
    rc=0
    build-fuzz/fuzz/$t -max_total_time="${GLINT_FUZZ_SECONDS:-60}" -timeout=60 \
      -print_final_stats=1 -artifact_prefix="$scratch/$t-" "$scratch/$t" "fuzz/corpus/$t" \
      >"$scratch/$t.log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +(INITED|DONE)|Done|stat::)' "$scratch/$t.log" || true
    if [ $rc -ne 0 ]; then
      tail -n 60 "$scratch/$t.log"
      echo "glint: $t found a problem (exit $rc); its input is in $scratch" >&2
      exit 1
    fi
  done
  rm -rf "$scratch"
fi
echo "=== glint: all tests passed"
