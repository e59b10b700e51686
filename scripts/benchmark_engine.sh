#!/usr/bin/env bash
# The engine issue's speed figures in one run: the C++ engine (generator_benchmark) and
# PyTorch on the same weights (scripts/torch_benchmark.py, with its sgemm routed to oneDNN
# through the preloaded shim, and stock Debian torch at batch 1), then the ratios.
#   scripts/benchmark_engine.sh [MODEL_DIR]     (default /tmp/attnserve-base, made if missing)
# Needs a built tree (scripts/build.sh). Takes about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:-/tmp/attnserve-base}
OUT=${OUT:-/tmp/attnserve-bench}
THREADS=${THREADS:-1,2}   # thread counts to measure, both sides
mkdir -p "$OUT"
# Both sides wait as the server does (engine/openmp_waiting.h): spin briefly, then sleep.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-1000}

if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
  /usr/bin/python3 scripts/make_random_model.py --preset base --out "$MODEL_DIR"
fi
scripts/build_sgemm_shim.sh build/sgemm_shim.so >/dev/null

echo "== attnserve engine =="
build/engine/generator_benchmark --model_dir="$MODEL_DIR" --threads="$THREADS" \
  --json="$OUT/engine.json" | tee "$OUT/engine.txt"

echo "== PyTorch, sgemm on oneDNN =="
LD_PRELOAD="$PWD/build/sgemm_shim.so" /usr/bin/python3 scripts/torch_benchmark.py \
  --model_dir "$MODEL_DIR" --threads "$THREADS" --batch_sizes 1,32 --repeats 3 --json \
  --omp_wait_policy keep --gomp_spincount keep \
  | tee "$OUT/torch.txt"
tail -n 1 "$OUT/torch.txt" > "$OUT/torch.json"

echo "== PyTorch, stock Debian (reference BLAS), batch 1 =="
/usr/bin/python3 scripts/torch_benchmark.py --model_dir "$MODEL_DIR" --threads 1 \
  --batch_sizes 1 --repeats 1 --json --omp_wait_policy keep --gomp_spincount keep | tee "$OUT/torch_stock.txt"
tail -n 1 "$OUT/torch_stock.txt" > "$OUT/torch_stock.json"

/usr/bin/python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
engine = json.load(open(f"{out}/engine.json"))
def torch_rates(path):
    rates = {}
    for r in json.load(open(path))["results"]:
        key = "encoder_seq_per_s" if r["bench"] == "encoder" else "greedy_tokens_per_s"
        rates[(key, r["threads"], r["batch"])] = r.get("seq_per_s") or r.get("tokens_per_s")
    return rates
shim = torch_rates(f"{out}/torch.json")
stock = torch_rates(f"{out}/torch_stock.json")
targets = {("greedy_tokens_per_s", 1): 3.0, ("greedy_tokens_per_s", 32): 12.0,
           ("encoder_seq_per_s", 32): 1.25}
print("\n== ratios (attnserve / PyTorch on the same weights; medians) ==")
print(f"{'figure':<24}{'thr':>4}{'batch':>6}{'attnserve':>12}{'torch+onednn':>14}{'ratio':>8}"
      f"{'target':>8}{'stock torch':>13}{'ratio':>8}")
for threads in (1, 2):
    e = engine.get(f"threads_{threads}", {})
    for key in ("encoder_seq_per_s", "greedy_tokens_per_s"):
        for batch in (1, 32):
            ours = e.get(f"{key}_b{batch}", 0)
            t = shim.get((key, threads, batch), 0)
            s = stock.get((key, 1, batch))
            target = targets.get((key, batch)) if threads == 2 else None
            print(f"{key:<24}{threads:>4}{batch:>6}{ours:>12.1f}{t:>14.1f}"
                  f"{(ours / t if t else 0):>8.2f}{(f'>={target}' if target else ''):>8}"
                  f"{(f'{s:.1f}' if s else ''):>13}{(f'{ours / s:.1f}' if s else ''):>8}")
    print(f"threads {threads}: encoder vs oneDNN matmul (batch 32) "
          f"{e.get('encoder_vs_matmul_b32', 0):.2f} (target >= 0.85); decode step vs weight read "
          f"{e.get('step_vs_read', 0):.2f} (target <= 1.5); peak RSS vs weights "
          f"{e.get('peak_rss_vs_weights', 0):.2f} (target <= 1.3)")
PY
