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

echo "== engine offline (generator_benchmark Greedy32, $THREADS threads) =="
build/engine/generator_benchmark --model_dir="$MODEL_DIR" --threads="$THREADS" \
  --benchmark_filter='Greedy32' --json="$OUT/engine.json" | grep -E 'Greedy32.*median|greedy'

# start_server, stop_server and bench (one attnserve-bench run) are shared with overload.sh
# and soak.sh; they read SERVER, BENCH, MODEL_DIR, OUT and THREADS.
SERVER=build/attnserve
BENCH=build/attnserve-bench
# shellcheck source=scripts/load_common.sh
source scripts/load_common.sh
trap stop_server EXIT

measure() {  # name concurrency max_new_tokens: REPEATS runs, each report kept
  for r in $(seq "$REPEATS"); do
    bench "$OUT/$1-$r.json" --concurrency="$2" --src_len=32:32 --max_new_tokens="$3" \
      --warmup=5s --duration="$DURATION" --seed="$r"
    /usr/bin/python3 - "$OUT/$1-$r.json" "$1 run $r" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
lat = r["latency_ms"]
print(f"{sys.argv[2]:<24}{r['generated_tokens_per_s']:8.1f} tokens/s, p50 {lat['p50']:8.1f} ms, "
      f"p99 {lat['p99']:8.1f} ms, {r['ok']} OK of {r['count']}")
PY
  done
}

echo "== server, continuous batching =="
start_server --batching=continuous --max_batch_size=32
measure c1 1 32
measure c32 32 32
measure mix-continuous 32 4:64
stop_server
echo "== server, dynamic batching =="
start_server --batching=dynamic --max_batch_size=32
measure mix-dynamic 32 4:64
stop_server

/usr/bin/python3 - "$OUT" "$REPEATS" <<'PY'
import json, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
engine = json.load(open(f"{out}/engine.json"))
threads = next(iter(engine))
offline_b1 = engine[threads]["greedy_tokens_per_s_b1"]
offline_b32 = engine[threads]["greedy_tokens_per_s_b32"]
def runs(name):
    return [json.load(open(f"{out}/{name}-{r}.json")) for r in range(1, repeats + 1)]
def median(name, get):
    return statistics.median(get(r) for r in runs(name))
tps = lambda r: r["generated_tokens_per_s"]
p50 = lambda r: r["latency_ms"]["p50"]
p99 = lambda r: r["latency_ms"]["p99"]
errors = sum(r["count"] - r["ok"] for n in ("c1", "c32", "mix-continuous", "mix-dynamic")
             for r in runs(n))
engine_b1_ms = 32 / offline_b1 * 1000  # one 32-token request alone
rows = [
    ("batching gain: c32 / c1 tokens/s", median("c32", tps) / median("c1", tps), ">= 8"),
    ("serving overhead: c32 / engine batch 32", median("c32", tps) / offline_b32, ">= 0.8"),
    ("low-load latency: c1 p50 / engine batch 1", median("c1", p50) / engine_b1_ms, "<= 1.15"),
    ("continuous / dynamic tokens/s (4..64 mix)",
     median("mix-continuous", tps) / median("mix-dynamic", tps), ">= 1.5"),
    ("continuous / dynamic p99 (4..64 mix)",
     median("mix-continuous", p99) / median("mix-dynamic", p99), "<= 1"),
]
print(f"\n== serving ratios (medians of {repeats} runs; {threads}) ==")
print(f"engine offline: batch 1 {offline_b1:.1f} tokens/s ({engine_b1_ms:.0f} ms per request), "
      f"batch 32 {offline_b32:.1f} tokens/s")
for name in ("c1", "c32", "mix-continuous", "mix-dynamic"):
    print(f"served {name:<15} {median(name, tps):8.1f} tokens/s  p50 {median(name, p50):8.1f} ms"
          f"  p99 {median(name, p99):8.1f} ms")
for label, value, target in rows:
    print(f"{label:<44}{value:8.2f}   target {target}")
print(f"calls that failed: {errors}")
PY
