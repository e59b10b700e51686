#!/usr/bin/env bash
# The serving benchmark (issue 5): the engine offline and the server under load from
# attnserve-bench, on the same random "base" model, in one run, printing ratios:
#   batching gain      tokens/s at concurrency 32 vs concurrency 1           (target >= 8)
#   serving overhead   served tokens/s at c32 vs the engine's offline batch 32 (target >= 0.8)
#   low-load latency   p50 at c1 vs the engine's own batch-1 latency          (target <= 1.15)
#   continuous/dynamic tokens/s on a 4..64 max_new_tokens mix at c32, with p99 no worse
#                                                                            (target >= 1.5)
# Every request is source length 32 and, but for the mix, 32 new tokens: the engine benchmark's
# Greedy32 shape. The model's EOS is made unreachable (make_random_model.py --eos_embed_scale 0)
# so that every request really generates max_new_tokens, as the engine's ignore_eos does.
#   scripts/benchmark_serving.sh            (THREADS=2 DURATION=30s REPEATS=3 by default)
#   COMPUTE_TYPE=int8 scripts/benchmark_serving.sh   the servers and the engine benchmark at
#                                           that compute type (default float32; docs/engine.md)
# Each round runs the engine offline, then c1, c32 and the mix against two servers that stay
# up (continuous and dynamic batching); every ratio is taken within a round and the median
# over rounds is printed, with each round's value.
# Then an open loop (Poisson arrivals) at rising rates against both servers, from which the
# throughput each batching mode sustains within the same p99 is read off.
# Needs a built tree (scripts/build.sh). Takes about 22 minutes on 2 cores.
# scripts/serving_report.py prints the figures again from the reports kept in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${MODEL_DIR:-/tmp/attnserve-base-noeos}
OUT=${OUT:-/tmp/attnserve-serving-bench}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30s}  # of each loaded run, after a 5 s warmup
REPEATS=${REPEATS:-3}      # each figure is the median of this many runs
COMPUTE_TYPE=${COMPUTE_TYPE:-float32}  # of both servers and the offline engine
# Open-loop rates, as fractions of dynamic batching's closed-loop capacity on the mix.
OPEN_LOOP_FRACTIONS=${OPEN_LOOP_FRACTIONS:-0.2 0.4 0.6 0.75 0.9 1.0}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
# OpenMP waiting: generator_benchmark and the server each apply the server's rule
# (engine/openmp_waiting.h) to the environment this script is given.

if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
  /usr/bin/python3 scripts/make_random_model.py --preset base --out "$MODEL_DIR" \
    --eos_embed_scale 0
fi

# start_server, stop_server and bench (one attnserve-bench run) are shared with overload.sh
# and soak.sh; they read SERVER, BENCH, MODEL_DIR, OUT and THREADS.
SERVER=build/attnserve
BENCH=build/attnserve-bench
# shellcheck source=scripts/load_common.sh
source scripts/load_common.sh

# Both servers stay up, idle between their runs, so that every round measures the engine
# offline and then each served figure within a few minutes: batch 1 follows the machine's
# memory speed, which swings by up to 1.5x within minutes here, and a ratio of figures taken
# ten minutes apart measured that swing rather than the server (README, Performance).
# Each logs to $OUT/server-MODE.out and .err.
declare -A PORT PID
stop_servers() {
  for mode in "${!PID[@]}"; do
    SERVER_PID=${PID[$mode]}
    stop_server
  done
}
trap stop_servers EXIT  # set first: the second server's failure to start stops the first
for mode in continuous dynamic; do
  SERVER_LOG=server-$mode start_server --batching="$mode" --max_batch_size=32 \
    --compute_type="$COMPUTE_TYPE"
  PORT[$mode]=$SERVER_PORT
  PID[$mode]=$SERVER_PID
done

served() {  # name mode tag attnserve-bench-load-flags...: one run, its report kept
  local name=$1 mode=$2 tag=$3
  shift 3
  SERVER_PORT=${PORT[$mode]}
  bench "$OUT/$name-$tag.json" --src_len=32:32 --warmup=5s --duration="$DURATION" "$@"
  jq -r --arg name "$name $tag" '"\($name | . + " " * (22 - length)) \(.generated_tokens_per_s
    * 10 | round / 10) tokens/s, p50 \(.latency_ms.p50 | round) ms, p99 \(.latency_ms.p99
    | round) ms, \(.ok) OK of \(.count)"' "$OUT/$name-$tag.json" | tr -s ' \n' ' '
  echo
}

for r in $(seq "$REPEATS"); do
  echo "== round $r of $REPEATS =="
  # 5 repetitions of 6 s: as long as a served run, so that both span the same phases of the
  # machine (its default 0.3 s repetitions can all fall in a fast phase of a few seconds).
  build/engine/generator_benchmark --model_dir="$MODEL_DIR" --threads="$THREADS" \
    --compute_type="$COMPUTE_TYPE" --benchmark_filter='Greedy32' --benchmark_min_time=6 \
    --json="$OUT/engine-$r.json" |
    grep -E '^batch.*greedy'
  served c1 continuous "$r" --concurrency=1 --max_new_tokens=32 --seed="$r"
  served c32 continuous "$r" --concurrency=32 --max_new_tokens=32 --seed="$r"
  served mix-continuous continuous "$r" --concurrency=32 --max_new_tokens=4:64 --seed="$r"
  served mix-dynamic dynamic "$r" --concurrency=32 --max_new_tokens=4:64 --seed="$r"
done

# Open loop: Poisson arrivals of the same mix at fixed rates, both batching modes at each
# rate one after the other. The closed loop above compares the two at saturation, where
# dynamic batching's p99 is as long as continuous batching's; here each mode's p99 is known
# at every rate, so the throughput each sustains within the same p99 can be read off.
# Rates are fractions of dynamic batching's closed-loop capacity (median requests/s).
capacity=$(jq -s 'map(.requests_per_s) | sort | .[length / 2 | floor]' "$OUT"/mix-dynamic-*.json)
echo "== open loop, Poisson arrivals; dynamic batching's closed-loop capacity $capacity requests/s =="
for fraction in $OPEN_LOOP_FRACTIONS; do
  rps=$(jq -n "$capacity * $fraction")
  for mode in continuous dynamic; do
    served "open-$mode" "$mode" "$fraction" --rps="$rps" --max_new_tokens=4:64 --seed=1
  done
done

/usr/bin/python3 scripts/serving_report.py "$OUT" "$REPEATS" "$OPEN_LOOP_FRACTIONS"
