#!/usr/bin/env bash
# The engine issue's speed figures in one run: the C++ engine (generator_benchmark) and
# PyTorch on the same weights (scripts/torch_benchmark.py, with its sgemm routed to oneDNN
# through the preloaded shim, and stock Debian torch at batch 1), then the ratios.
#   scripts/benchmark_engine.sh [MODEL_DIR]     (default /tmp/attnserve-base, made if missing)
# The engine and torch take turns ROUNDS times (default 3): each round's ratio compares two
# runs minutes apart, and the figures printed are medians over the rounds, since a shared
# machine's speed drifts by 10-20% over minutes.
# Needs a built tree (scripts/build.sh). Takes about 5 minutes a round at THREADS=2, twice
# that with the default THREADS=1,2.
#
# Compute types: COMPUTE_TYPES=float32,int8,bfloat16 (default float32: the run above alone)
# runs the engine once per type in each round, the types in turn, and ends with a table of
# each type's greedy and beam tokens/s, step_vs_read and peak resident memory beside
# float32's, their ratios to it (medians of the per-round ratios) and the issue's targets.
# With int8 among them, PyTorch's own int8 (torch_benchmark.py --quantize_dynamic, sgemm
# shim loaded) runs each round too and its ratio to PyTorch float32 is printed beside.
# BEFORE_REV (below) measures float32 only.
#
# Before and after a change, in one run: BEFORE_REV=<commit> builds that commit's engine
# with this tree's engine/bench/generator_benchmark.cc (so both have the same cases; from
# `git archive`, under $OUT, with ccache) and runs the two binaries in turn ROUNDS times on
# the decode cases only (greedy at batch 1 and 32, beam-4 at batch 32, and their peak resident memory),
# then prints each figure's median and the after/before ratio of each round. No torch.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${1:-/tmp/attnserve-base}
OUT=${OUT:-/tmp/attnserve-bench}
THREADS=${THREADS:-1,2}   # thread counts to measure, both sides
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
rm -f "$OUT"/*.json
# Both sides wait alike, by the server's rule (engine/openmp_waiting.h): unless the caller
# sets OMP_WAIT_POLICY or GOMP_SPINCOUNT, a short spin, then sleep.
if [[ -z ${OMP_WAIT_POLICY:-} && -z ${GOMP_SPINCOUNT:-} ]]; then
  export OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000
fi

if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
  /usr/bin/python3 scripts/make_random_model.py --preset base --out "$MODEL_DIR"
fi

if [[ -n ${BEFORE_REV:-} ]]; then
  before_src="$OUT/before-src" before_build="$OUT/before-build"
  # Kept between runs of the same revision, so that its build is incremental.
  if [[ "$(cat "$before_src/.rev" 2>/dev/null)" != "$(git rev-parse "$BEFORE_REV")" ]]; then
    rm -rf "$before_src" && mkdir -p "$before_src"
    git archive "$BEFORE_REV" | tar -x -C "$before_src"
    git rev-parse "$BEFORE_REV" > "$before_src/.rev"
  fi
  # Revisions from before engine/bench/ (and the engine's folders) cannot build this tree's
  # benchmark (its includes moved); they run their own, whose JSON keys are the same.
  if [[ -d $before_src/engine/bench ]]; then
    cmp -s engine/bench/generator_benchmark.cc "$before_src/engine/bench/generator_benchmark.cc" ||
      cp engine/bench/generator_benchmark.cc "$before_src/engine/bench/"
  fi
  cmake -S "$before_src" -B "$before_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache >/dev/null
  cmake --build "$before_build" -j "$(nproc)" --target generator_benchmark >/dev/null
  filter='--benchmark_filter=Greedy32|Beam4x32'
  for round in $(seq "$ROUNDS"); do
    for side in before after; do
      bin=build/engine/generator_benchmark
      [[ $side == before ]] && bin="$before_build/engine/generator_benchmark"
      echo "== round $round of $ROUNDS: $side ($bin) =="
      "$bin" --model_dir="$MODEL_DIR" --threads="$THREADS" "$filter" \
        --json="$OUT/$side.$round.json" | tee "$OUT/$side.$round.txt"
    done
  done
  /usr/bin/python3 - "$OUT" "$ROUNDS" "$BEFORE_REV" <<'PY'
import json, statistics, sys
out, rounds, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
runs = {side: [json.load(open(f"{out}/{side}.{i}.json")) for i in range(1, rounds + 1)]
        for side in ("before", "after")}
print(f"\n== after (this tree) vs before ({rev}); medians over {rounds} alternating rounds ==")
print(f"{'figure':<26}{'thr':>4}{'before':>10}{'after':>10}{'ratio':>7}  ratio per round")
for threads in (1, 2):
    key = f"threads_{threads}"
    if key not in runs["after"][0]:
        continue
    for name in ("greedy_tokens_per_s_b1", "greedy_tokens_per_s_b32", "beam4_tokens_per_s_b32",
                 "peak_rss_mb",
                 "peak_rss_beam4_b32_mb"):
        b = [r[key].get(name, 0) for r in runs["before"]]
        a = [r[key].get(name, 0) for r in runs["after"]]
        ratios = [x / y if y else 0 for x, y in zip(a, b)]
        print(f"{name:<26}{threads:>4}{statistics.median(b):>10.1f}{statistics.median(a):>10.1f}"
              f"{statistics.median(ratios):>7.2f}  " + " ".join(f"{r:.2f}" for r in ratios))
PY
  exit 0
fi

scripts/build_sgemm_shim.sh build/sgemm_shim.so >/dev/null

COMPUTE_TYPES=${COMPUTE_TYPES:-float32}
IFS=, read -r -a compute_types <<< "$COMPUTE_TYPES"
if [[ ! ",$COMPUTE_TYPES," =~ ,float32, ]]; then
  echo "COMPUTE_TYPES=$COMPUTE_TYPES: float32 must be among them (the others are compared with it)" >&2
  exit 2
fi

for round in $(seq "$ROUNDS"); do
  for type in "${compute_types[@]}"; do
    # float32's files keep their names of before COMPUTE_TYPES (engine.ROUND.json).
    suffix=$round
    [[ $type == float32 ]] || suffix=$type.$round
    label=attnserve\ engine
    [[ $COMPUTE_TYPES == float32 ]] || label="attnserve engine, $type"
    echo "== round $round of $ROUNDS: $label =="
    build/engine/generator_benchmark --model_dir="$MODEL_DIR" --threads="$THREADS" \
      --compute_type="$type" --json="$OUT/engine.$suffix.json" | tee "$OUT/engine.$suffix.txt"
  done

  echo "== round $round of $ROUNDS: PyTorch, sgemm on oneDNN =="
  LD_PRELOAD="$PWD/build/sgemm_shim.so" /usr/bin/python3 scripts/torch_benchmark.py \
    --model_dir "$MODEL_DIR" --threads "$THREADS" --batch_sizes 1,32 --repeats 3 --json \
    --omp_wait_policy keep --gomp_spincount keep \
    | tee "$OUT/torch.$round.txt"
  tail -n 1 "$OUT/torch.$round.txt" > "$OUT/torch.$round.json"

  if [[ ",$COMPUTE_TYPES," =~ ,int8, ]]; then
    echo "== round $round of $ROUNDS: PyTorch int8 (quantize_dynamic), sgemm on oneDNN =="
    LD_PRELOAD="$PWD/build/sgemm_shim.so" /usr/bin/python3 scripts/torch_benchmark.py \
      --model_dir "$MODEL_DIR" --threads "$THREADS" --batch_sizes 1,32 --repeats 3 --json \
      --omp_wait_policy keep --gomp_spincount keep --skip encoder --quantize_dynamic \
      | tee "$OUT/torch_int8.$round.txt"
    tail -n 1 "$OUT/torch_int8.$round.txt" > "$OUT/torch_int8.$round.json"
  fi
done

# Stock torch is 40-60x slower than either: one run is plenty for its ratio.
echo "== PyTorch, stock Debian (reference BLAS), batch 1 =="
/usr/bin/python3 scripts/torch_benchmark.py --model_dir "$MODEL_DIR" --threads 1 \
  --batch_sizes 1 --repeats 1 --json --omp_wait_policy keep --gomp_spincount keep \
  | tee "$OUT/torch_stock.txt"
tail -n 1 "$OUT/torch_stock.txt" > "$OUT/torch_stock.json"

/usr/bin/python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def torch_rates(path):
    rates = {}
    for r in json.load(open(path))["results"]:
        key = "encoder_seq_per_s" if r["bench"] == "encoder" else "greedy_tokens_per_s"
        rates[(key, r["threads"], r["batch"])] = r.get("seq_per_s") or r.get("tokens_per_s")
    return rates
engines = [json.load(open(f"{out}/engine.{i}.json")) for i in range(1, rounds + 1)]
shims = [torch_rates(f"{out}/torch.{i}.json") for i in range(1, rounds + 1)]
stock = torch_rates(f"{out}/torch_stock.json")
median = statistics.median
targets = {("greedy_tokens_per_s", 1): 3.0, ("greedy_tokens_per_s", 32): 12.0,
           ("encoder_seq_per_s", 32): 1.25}
print(f"\n== ratios (attnserve / PyTorch on the same weights; medians over {rounds} rounds) ==")
print(f"{'figure':<24}{'thr':>4}{'batch':>6}{'attnserve':>11}{'torch+onednn':>14}{'ratio':>7}"
      f"{'target':>8}  {'ratio per round':<22}{'stock torch':>12}{'ratio':>7}")
for threads in (1, 2):
    es = [e.get(f"threads_{threads}", {}) for e in engines]
    if not any(es):
        continue
    for key in ("encoder_seq_per_s", "greedy_tokens_per_s"):
        for batch in (1, 32):
            ours = [e.get(f"{key}_b{batch}", 0) for e in es]
            theirs = [t.get((key, threads, batch), 0) for t in shims]
            per_round = [o / t if t else 0 for o, t in zip(ours, theirs)]
            s = stock.get((key, 1, batch))
            target = targets.get((key, batch)) if threads == 2 else None
            rounds_text = " ".join(f"{r:.2f}" for r in per_round)
            print(f"{key:<24}{threads:>4}{batch:>6}{median(ours):>11.1f}{median(theirs):>14.1f}"
                  f"{median(per_round):>7.2f}{(f'>={target}' if target else ''):>8}  "
                  f"{rounds_text:<22}{(f'{s:.1f}' if s else ''):>12}"
                  f"{(f'{median(ours) / s:.1f}' if s else ''):>7}")
    def fig(name):
        return median([e.get(name, 0) for e in es])
    print(f"threads {threads}: encoder vs oneDNN matmul (batch 32) "
          f"{fig('encoder_vs_matmul_b32'):.2f} (target >= 0.85); decode step vs weight read "
          f"{fig('step_vs_read'):.2f} (target <= 1.5); peak RSS vs weights "
          f"{fig('peak_rss_vs_weights'):.2f} (target <= 1.3)")
PY

[[ $COMPUTE_TYPES == float32 ]] && exit 0
/usr/bin/python3 - "$OUT" "$ROUNDS" "$COMPUTE_TYPES" <<'PY'
import json, os, statistics, sys
out, rounds, types = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
median = statistics.median
def engine(t, i):
    return json.load(open(f"{out}/engine.{i}.json" if t == "float32" else
                          f"{out}/engine.{t}.{i}.json"))
runs = {t: [engine(t, i) for i in range(1, rounds + 1)] for t in types}
def torch_greedy(path):
    if not os.path.exists(path):
        return {}
    return {(r["threads"], r["batch"]): r["tokens_per_s"]
            for r in json.load(open(path))["results"] if r["bench"] == "greedy"}
torch_fp32 = [torch_greedy(f"{out}/torch.{i}.json") for i in range(1, rounds + 1)]
torch_int8 = [torch_greedy(f"{out}/torch_int8.{i}.json") for i in range(1, rounds + 1)]
# The issue's targets for int8: (ratio to float32, absolute); peak RSS lower is better.
int8_targets = {"greedy_tokens_per_s_b1": (">=2.5", ">=300"),
                "greedy_tokens_per_s_b32": (">=2", ">=3000"),
                "beam4_tokens_per_s_b32": (">=2", ""), "peak_rss_mb": ("<=0.45", "")}
figures = ("greedy_tokens_per_s_b1", "greedy_tokens_per_s_b32", "beam4_tokens_per_s_b32",
           "step_vs_read", "peak_rss_mb")
others = [t for t in types if t != "float32"]
print(f"\n== compute types (medians over {rounds} rounds; ratio = median of per-round "
      f"type/float32) ==")
head = f"{'figure':<26}{'thr':>4}{'float32':>10}"
for t in others:
    head += f"{t:>10}{'ratio':>7}"
head += f"{'int8 target':>18}" if "int8" in others else ""
print(head)
for threads in (1, 2):
    key = f"threads_{threads}"
    if key not in runs["float32"][0]:
        continue
    for name in figures:
        ref = [r[key].get(name, 0) for r in runs["float32"]]
        digits = 2 if name == "step_vs_read" else 1
        line = f"{name:<26}{threads:>4}{median(ref):>10.{digits}f}"
        for t in others:
            vals = [r[key].get(name, 0) for r in runs[t]]
            ratios = [v / f if f else 0 for v, f in zip(vals, ref)]
            line += f"{median(vals):>10.{digits}f}{median(ratios):>7.2f}"
        if "int8" in others:
            ratio, absolute = int8_targets.get(name, ("", ""))
            line += f"{ratio + ('x' if ratio else ''):>10}{absolute:>8}"
        print(line)
    for batch in (1, 32):
        fp = [r.get((threads, batch), 0) for r in torch_fp32]
        q = [r.get((threads, batch), 0) for r in torch_int8]
        if any(q):
            ratios = [a / b if b else 0 for a, b in zip(q, fp)]
            print(f"{'torch greedy_b' + str(batch) + ' (peer)':<26}{threads:>4}{median(fp):>10.1f}"
                  f"{median(q):>10.1f}{median(ratios):>7.2f}"
                  f"  (PyTorch float32 and its quantize_dynamic int8, sgemm shim)")
PY
