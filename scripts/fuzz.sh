#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) into build-fuzz/, replays
# every regression input of tests/fuzz/regressions/<target>/, then fuzzes each target for
# FUZZ_SECONDS from a copy of its seed corpus tests/fuzz/corpus/<target>/
# (docs/hardening-tools.md). libFuzzer runs on one thread: the targets run $(nproc) at a time
# (FUZZ_JOBS), each on a core of its own for the whole FUZZ_SECONDS.
#   scripts/fuzz.sh                                 all targets, 30 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh model_dir      one target, longer
# A crash fails the script and leaves its input in build-fuzz/artifacts/ (FUZZ_ARTIFACTS):
# make it a regression case by copying it to tests/fuzz/regressions/<target>/ under a name
# that says what it was.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(nproc)}
artifacts=${FUZZ_ARTIFACTS:-$PWD/build-fuzz/artifacts}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=(model_dir safetensors generate_request sentencepiece torch_checkpoint tokenizer_files); fi

if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: needs clang and libFuzzer: apt-get install clang libclang-rt-14-dev" >&2
  exit 1
fi
# -O1 -gline-tables-only: sanitizer reports with readable stacks (file:line, inlined calls),
# at most of the speed of -O2, without the variables' debug info, which no report reads.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -gline-tables-only" \
  -DATTNSERVE_FUZZ=ON -DATTNSERVE_SANITIZE=address,undefined \
  -DATTNSERVE_BUILD_TESTS=OFF -DATTNSERVE_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"

# The targets write each input as files under $TMPDIR: keep them in memory when /dev/shm is
# there, and remove everything (corpus copies, logs) at the end.
work=$(mktemp -d "$( [[ -d /dev/shm ]] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/attnserve-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR=$work
export OMP_WAIT_POLICY=passive
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$artifacts"

# Prints the log's tail and the saved input, then fails.
fail() {
  echo "fuzz: $1: FAILED (log tail below; input saved under $artifacts/)" >&2
  tail -n 40 "$2" >&2
  exit 1
}

# One target, in a subshell of its own (run with &): its regression inputs, then
# $seconds of fuzzing; prints its summary line, or fails.
fuzz_target() {
  local target=$1
  local fuzzer=build-fuzz/tests/fuzz/${target}_fuzzer
  # -malloc_limit_mb: one allocation above 512 MB is a finding (a config key or a request
  # field that sizes memory unchecked), well before the process would reach -rss_limit_mb.
  local options=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512
                 "-artifact_prefix=$artifacts/$target-")
  if [[ $target == model_dir || $target == safetensors ]]; then
    options+=("-dict=tests/fuzz/model_format.dict")
  fi
  local log=$work/$target.log

  local regressions
  mapfile -t regressions < <(find "tests/fuzz/regressions/$target" -type f 2>/dev/null | sort)
  if [[ ${#regressions[@]} -gt 0 ]]; then
    "$fuzzer" "${options[@]}" "${regressions[@]}" >"$log" 2>&1 || fail "$target regressions" "$log"
  fi

  cp -r "tests/fuzz/corpus/$target" "$work/corpus-$target"
  "$fuzzer" "${options[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    "$work/corpus-$target" >"$log" 2>&1 || fail "$target" "$log"
  local runs cov
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  echo "fuzz: $target: ${#regressions[@]} regression inputs pass; $runs runs in ${seconds} s," \
    "$cov, no crash"
}

# $jobs targets at a time, in the order given; each one's output is printed when it ends,
# in that order. The targets take about the same time, so waiting for the oldest keeps
# the cores busy.
pids=()
failed=0
finish() { # index into targets
  local out=$work/${targets[$1]}.out
  if wait "${pids[$1]}"; then cat "$out"; else cat "$out" >&2; failed=1; fi
}
for i in "${!targets[@]}"; do
  if ((i >= jobs)); then finish $((i - jobs)); fi
  fuzz_target "${targets[$i]}" >"$work/${targets[$i]}.out" 2>&1 &
  pids[i]=$!
done
for ((i = ${#targets[@]} > jobs ? ${#targets[@]} - jobs : 0; i < ${#targets[@]}; i++)); do
  finish "$i"
done
exit "$failed"
