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
# Each round runs the engine offline, then c1, c32 and the mix against two servers that stay
# up (continuous and dynamic batching); every ratio is taken within a round and the median
# over rounds is printed, with each round's value.
# Needs a built tree (scripts/build.sh). Takes about 12 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${MODEL_DIR:-/tmp/attnserve-base-noeos}
OUT=${OUT:-/tmp/attnserve-serving-bench}
THREADS=${THREADS:-2}
DURATION=${DURATION:-30s}  # of each loaded run, after a 5 s warmup
REPEATS=${REPEATS:-3}      # each figure is the median of this many runs
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
declare -A PORT PID
for mode in continuous dynamic; do
  start_server --batching="$mode" --max_batch_size=32
  PORT[$mode]=$SERVER_PORT
  PID[$mode]=$SERVER_PID
  cp "$OUT/server.err" "$OUT/server-$mode.log"
done
stop_servers() {
  for mode in "${!PID[@]}"; do
    SERVER_PID=${PID[$mode]}
    stop_server
  done
}
trap stop_servers EXIT

served() {  # name mode concurrency max_new_tokens round: one run, its report kept
  SERVER_PORT=${PORT[$2]}
  bench "$OUT/$1-$5.json" --concurrency="$3" --src_len=32:32 --max_new_tokens="$4" \
    --warmup=5s --duration="$DURATION" --seed="$5"
  jq -r --arg name "$1" '"\($name | . + " " * (16 - length)) \(.generated_tokens_per_s * 10
    | round / 10) tokens/s, p50 \(.latency_ms.p50 | round) ms, p99 \(.latency_ms.p99 | round)
    ms, \(.ok) OK of \(.count)"' "$OUT/$1-$5.json" | tr -s ' \n' ' '
  echo
}

for r in $(seq "$REPEATS"); do
  echo "== round $r of $REPEATS =="
  build/engine/generator_benchmark --model_dir="$MODEL_DIR" --threads="$THREADS" \
    --benchmark_filter='Greedy32' --json="$OUT/engine-$r.json" | grep -E '^batch.*greedy'
  served c1 continuous 1 32 "$r"
  served c32 continuous 32 32 "$r"
  served mix-continuous continuous 32 4:64 "$r"
  served mix-dynamic dynamic 32 4:64 "$r"
done

/usr/bin/python3 - "$OUT" "$REPEATS" <<'PY'
import json, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
load = lambda name, r: json.load(open(f"{out}/{name}-{r}.json"))
rounds = []
for r in range(1, repeats + 1):
    engine = load("engine", r)
    threads = next(iter(engine))
    rounds.append({"threads": threads,
                   "b1": engine[threads]["greedy_tokens_per_s_b1"],
                   "b32": engine[threads]["greedy_tokens_per_s_b32"],
                   **{n: load(n, r) for n in ("c1", "c32", "mix-continuous", "mix-dynamic")}})
tps = lambda name: lambda x: x[name]["generated_tokens_per_s"]
p50 = lambda name: lambda x: x[name]["latency_ms"]["p50"]
p99 = lambda name: lambda x: x[name]["latency_ms"]["p99"]
engine_b1_ms = lambda x: 32 / x["b1"] * 1000  # one 32-token request alone
# Each ratio is taken within a round, then the median over rounds is quoted.
ratios = [
    ("batching gain: c32 / c1 tokens/s", lambda x: tps("c32")(x) / tps("c1")(x), ">= 8"),
    ("serving overhead: c32 / engine batch 32", lambda x: tps("c32")(x) / x["b32"], ">= 0.8"),
    ("low-load latency: c1 p50 / engine batch 1", lambda x: p50("c1")(x) / engine_b1_ms(x),
     "<= 1.15"),
    ("continuous / dynamic tokens/s (4..64 mix)",
     lambda x: tps("mix-continuous")(x) / tps("mix-dynamic")(x), ">= 1.5"),
    ("continuous / dynamic p99 (4..64 mix)",
     lambda x: p99("mix-continuous")(x) / p99("mix-dynamic")(x), "<= 1"),
    ("engine ceiling: batch 32 / batch 1 tokens/s", lambda x: x["b32"] / x["b1"], "(bounds the gain)"),
]
errors = sum(x[n]["count"] - x[n]["ok"] for x in rounds
             for n in ("c1", "c32", "mix-continuous", "mix-dynamic"))
med = lambda get: statistics.median(get(x) for x in rounds)
print(f"\n== serving figures (medians of {repeats} rounds; {rounds[0]['threads']}) ==")
print(f"engine offline: batch 1 {med(lambda x: x['b1']):.1f} tokens/s "
      f"({med(engine_b1_ms):.0f} ms per request), batch 32 {med(lambda x: x['b32']):.1f} tokens/s")
for name in ("c1", "c32", "mix-continuous", "mix-dynamic"):
    print(f"served {name:<15} {med(tps(name)):8.1f} tokens/s  p50 {med(p50(name)):8.1f} ms"
          f"  p99 {med(p99(name)):8.1f} ms")
print(f"\n== serving ratios (each taken within a round; median, then every round) ==")
for label, get, target in ratios:
    each = " ".join(f"{get(x):.2f}" for x in rounds)
    print(f"{label:<44}{med(get):8.2f}   target {target:<18} rounds: {each}")
print(f"calls that failed: {errors}")
PY
