#!/usr/bin/env bash
# Builds test binaries with sanitizers into a build dir of their own and runs them
# (docs/hardening-tools.md).
#   scripts/sanitize.sh address   ASan + UBSan: engine_tests, server_tests, client_tests
#                                 (build-asan/)
#   scripts/sanitize.sh thread    TSan: the batcher, server and stream tests of server_tests
#                                 (build-tsan/)
# Extra arguments go to every test binary, e.g. --gtest_filter='Generator*' (the last filter
# wins) or --gtest_repeat=3 (what scripts/test.sh passes: races show only now and then).
# SANITIZE_BINARIES="server_tests" builds and runs only those of the mode's binaries.
# GCC, not clang: the engine's SIMD kernels use GCC's target_clones, and the tests then run on
# the same OpenMP runtime (libgomp) as the release build.
# Each binary runs directly (not through ctest, whose list also holds script tests), split into
# $(nproc) gtest shards that run in parallel. A sanitizer report fails its shard; the logs are in
# <build dir>/sanitize-logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
shift || true
case "$mode" in
  address)
    sanitizers=address,undefined
    dir=build-asan
    binaries=(engine_tests server_tests client_tests)
    filter='*'
    flags=
    ;;
  thread)
    sanitizers=thread
    dir=build-tsan
    binaries=(server_tests)
    # Every test that runs the batcher's inference thread or an in-process gRPC server; the
    # pure functions (policy table, convert, status mapping, metrics text) have no threads.
    filter='Batcher*:Modes/BatchingMode*:Server*:*Streaming*:StreamState*:RealModel*'
    filter+=':Fault*:Overload*:Limits*:Tls*:ReactorLifetime*:Readers/StreamReader*'
    # No target_clones (engine/ops/simd.h): their ifunc resolvers run while the dynamic
    # loader relocates, before the TSan runtime is up, and crash once instrumented.
    flags=-DATTNSERVE_SIMD_CLONES=
    ;;
  *)
    echo "usage: $0 address|thread [gtest arguments...]" >&2
    exit 2
    ;;
esac

if [[ -n ${SANITIZE_BINARIES:-} ]]; then
  read -r -a binaries <<<"$SANITIZE_BINARIES"
fi

# -O1: the sanitizers' own advice (readable stacks, still fast enough). -g1: line tables,
# which give every frame of a report its file:line and its inlined calls; the variables'
# debug info, which no report reads, would cost about a third more compile time.
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 $flags" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  -DATTNSERVE_SANITIZE="$sanitizers" -DATTNSERVE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target "${binaries[@]}"

# Passive OpenMP waiting, as in scripts/test.sh: the shards share the cores.
export OMP_WAIT_POLICY=passive
# Every report is fatal; the code is also built without recovery.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp"
if [[ $mode == thread ]]; then
  # Debian's Abseil is not built with TSan; this shim shows its mutexes to TSan
  # (scripts/tsan_absl_shim.cc).
  shim=$dir/libtsan_absl_shim.so
  g++ -std=c++17 -shared -fPIC -O1 -g -fsanitize=thread scripts/tsan_absl_shim.cc -o "$shim" -ldl
  export LD_PRELOAD=$PWD/$shim
fi

logs=$dir/sanitize-logs
rm -rf "$logs"
mkdir -p "$logs"
shards=$(nproc)
failed=0
for binary in "${binaries[@]}"; do
  pids=()
  for ((i = 0; i < shards; i++)); do
    GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i \
      "$dir/tests/$binary" --gtest_filter="$filter" "$@" >"$logs/$binary.$i.log" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < shards; i++)); do
    log=$logs/$binary.$i.log
    if wait "${pids[$i]}"; then
      echo "sanitize $mode: $binary shard $i: $(grep -h '^\[  PASSED  \]' "$log")"
    else
      failed=1
      echo "sanitize $mode: $binary shard $i: FAILED ($log):" >&2
      grep -h -E '^\[  FAILED  \]|ERROR: |WARNING: ThreadSanitizer|runtime error|SUMMARY' "$log" |
        head -n 20 >&2 || tail -n 20 "$log" >&2
    fi
  done
done
exit "$failed"
