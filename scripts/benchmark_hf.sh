#!/usr/bin/env bash
# Issue 16's speed proof in one run: greedy tokens/s of random checkpoints of Hugging Face
# shapes (scripts/make_random_hf_model.py: t5-small, t5-v1_1-small, opus-mt) beside the random
# "base" model of scripts/make_random_model.py, and each against the base model once the
# extra matrix products of its shape are accounted for.
#   scripts/benchmark_hf.sh [--via_convert] [--shapes t5-small,t5-v1_1-small,opus-mt]
#                           [--layers N] [--vocab V] [--base_preset base|tiny]
# --via_convert benchmarks each checkpoint after scripts/attnserve-convert (docs/convert.md)
# instead of the checkpoint directory itself (which needs the engine's Hugging Face loader).
# --layers / --vocab shrink the HF shapes and --base_preset tiny the base model, for a quick
# run of the pipeline (the ratios of such a run mean nothing).
# Environment: THREADS (default 1,2), ROUNDS (default 2), OUT (default /tmp/attnserve-hf-bench:
# results, and the generated models under OUT/models, reused while the scripts that made them
# are unchanged), BENCH (default build/engine/generator_benchmark; needs a built tree).
#
# Each round runs generator_benchmark's greedy cases (Greedy32: source length 32, 32 new
# tokens, batch 1 and 32; ignore_eos) on every model in turn; the figures printed are medians
# over the rounds, each ratio taken within a round (a shared machine drifts by 10-20% over
# minutes). Generating the three full-size shapes takes about a minute; each model's run
# about a minute per thread count per round.
#
# FLOPs per generated token (matrix products only, 2 per multiply-add), for d = d_model,
# a = heads * head dim (T5's d_kv * num_heads), f = FFN width, k = 2 FFN matrices (3 gated),
# V = vocabulary, Le / Ld = encoder / decoder layers, S = 32 source tokens, N = 32 new tokens:
#   step   = 2 * (Ld * (4*d*a + 2*d*a + k*d*f) + d*V)
#            decoder self-attention q, k, v, o; cross-attention q, o; the FFN; the vocabulary
#   source = 2 * S * (Le * (4*d*a + k*d*f) + Ld * 2*d*a)
#            the encoder and the cross-attention k, v, once per source
#   run    = step + source / N
# Greedy32 times the whole GenerateBatch, encoder included, so the adjustment uses run; step
# alone is printed beside it. Attention scores, norms, biases, T5's relative bias, softmax and
# the decoding rules (forced and banned tokens) are not counted: they are what must cost next
# to nothing. adjusted = (tokens/s / base tokens/s) * (run / base run); below 0.9 is flagged.
set -euo pipefail
cd "$(dirname "$0")/.."

via_convert=0 shapes=t5-small,t5-v1_1-small,opus-mt layers= vocab= base_preset=base
while [[ $# -gt 0 ]]; do
  case $1 in
    --via_convert) via_convert=1 ;;
    --shapes) shapes=$2; shift ;;
    --layers) layers=$2; shift ;;
    --vocab) vocab=$2; shift ;;
    --base_preset) base_preset=$2; shift ;;
    *) echo "benchmark_hf.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[[ $base_preset == base || $base_preset == tiny ]] ||
  { echo "benchmark_hf.sh: --base_preset must be base or tiny, got $base_preset" >&2; exit 2; }
OUT=${OUT:-/tmp/attnserve-hf-bench}
THREADS=${THREADS:-1,2}
ROUNDS=${ROUNDS:-2}
BENCH=${BENCH:-build/engine/generator_benchmark}
[[ -x $BENCH ]] || { echo "benchmark_hf.sh: $BENCH is not built (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$OUT/models"
rm -f "$OUT"/*.json "$OUT"/*.txt
if [[ -z ${OMP_WAIT_POLICY:-} && -z ${GOMP_SPINCOUNT:-} ]]; then
  export OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000
fi

# make_cached DIR STAMP COMMAND...: runs COMMAND (which writes DIR.tmp) unless DIR holds a
# model made with the same STAMP; then moves DIR.tmp to DIR, so an interrupted run leaves no
# half-written model behind.
make_cached() {
  local dir=$1 stamp=$2
  shift 2
  if [[ -f $dir/.stamp && "$(cat "$dir/.stamp")" == "$stamp" ]]; then
    echo "using $dir"
    return
  fi
  rm -rf "$dir" "$dir.tmp"
  "$@"
  echo "$stamp" > "$dir.tmp/.stamp"
  mv "$dir.tmp" "$dir"
}
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
generator_hash=$(hash_of scripts/make_random_hf_model.py scripts/make_hf_checkpoints.py \
  scripts/hf_reference/*.py)
converter_hash=$(hash_of scripts/attnserve-convert scripts/hf_convert/*.py)

# labels, the directories benchmarked, the config.json the FLOPs are counted from
labels=() dirs=() configs=()
base=$OUT/models/base-$base_preset
make_cached "$base" "$(hash_of scripts/make_random_model.py scripts/attnserve_export.py)" \
  /usr/bin/python3 scripts/make_random_model.py --preset "$base_preset" --out "$base.tmp"
labels+=("base") dirs+=("$base") configs+=("$base/config.json")
for shape in ${shapes//,/ }; do
  name=$shape${layers:+-L$layers}${vocab:+-V$vocab}
  hf=$OUT/models/$name
  make_cached "$hf" "$generator_hash $layers $vocab" \
    /usr/bin/python3 scripts/make_random_hf_model.py --shape "$shape" --out "$hf.tmp" \
    ${layers:+--layers "$layers"} ${vocab:+--vocab "$vocab"}
  dir=$hf
  if ((via_convert)); then
    dir=$hf-converted
    make_cached "$dir" "$(cat "$hf/.stamp") $converter_hash" \
      scripts/attnserve-convert --model "$hf" --output_dir "$dir.tmp"
  fi
  labels+=("$name") dirs+=("$dir") configs+=("$hf/config.json")
done

for round in $(seq "$ROUNDS"); do
  for i in "${!labels[@]}"; do
    echo "== round $round of $ROUNDS: ${labels[i]} (${dirs[i]}) =="
    # A model the engine cannot load is reported in the table, not fatal: the others still run.
    "$BENCH" --model_dir="${dirs[i]}" --threads="$THREADS" --benchmark_filter=Greedy32 \
      --json="$OUT/$i.$round.json" 2>&1 | tee "$OUT/$i.$round.txt" || rm -f "$OUT/$i.$round.json"
  done
done

models_json=$(for i in "${!labels[@]}"; do
  printf '%s\t%s\t%s\n' "${labels[i]}" "${dirs[i]}" "${configs[i]}"; done)
/usr/bin/python3 - "$OUT" "$ROUNDS" "$via_convert" "$models_json" <<'PY'
import json, os, statistics, sys
out, rounds, via_convert = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
models = [line.split("\t") for line in sys.argv[4].splitlines()]
S = N = 32  # generator_benchmark's kDecodeSourceLength and kNewTokens


def shape(cfg):
    """(d, a, f, k, V, Le, Ld) from a Hugging Face or an attnserve config.json."""
    mt = cfg.get("model_type")
    if mt == "t5":
        le = cfg["num_layers"]
        return (cfg["d_model"], cfg["d_kv"] * cfg["num_heads"], cfg["d_ff"],
                3 if cfg.get("feed_forward_proj", "relu").startswith("gated") else 2,
                cfg["vocab_size"], le, cfg.get("num_decoder_layers") or le)
    if mt is not None:  # marian, bart, mbart, m2m100
        if cfg["encoder_ffn_dim"] != cfg["decoder_ffn_dim"]:
            raise SystemExit(f"{mt}: encoder and decoder FFN widths differ; not counted here")
        return (cfg["d_model"], cfg["d_model"], cfg["decoder_ffn_dim"], 2, cfg["vocab_size"],
                cfg["encoder_layers"], cfg["decoder_layers"])
    d = cfg["d_model"]
    a = cfg.get("attention_head_dim", d // cfg["num_heads"]) * cfg["num_heads"]
    return (d, a, cfg["ffn_dim"], 3 if cfg.get("gated_ffn") else 2, cfg["vocab_size"],
            cfg["encoder_layers"], cfg["decoder_layers"])


def flops(cfg):
    """(step, run) FLOPs per generated token; the formula is in the script's header."""
    d, a, f, k, V, le, ld = shape(cfg)
    step = 2 * (ld * (4 * d * a + 2 * d * a + k * d * f) + d * V)
    source = 2 * S * (le * (4 * d * a + k * d * f) + ld * 2 * d * a)
    return step, step + source / N


def load(i, r):
    path = f"{out}/{i}.{r}.json"
    return json.load(open(path)) if os.path.exists(path) else None


runs = [[load(i, r) for r in range(1, rounds + 1)] for i in range(len(models))]
fl = [flops(json.load(open(cfg))) for _, _, cfg in models]
median = statistics.median
print(f"\n== greedy tokens/s (source 32, 32 new tokens), medians over {rounds} rounds; "
      f"{'converted with attnserve-convert' if via_convert else 'checkpoint directories as they are'} ==")
print(f"{'model':<22}{'thr':>4}{'batch':>6}{'tokens/s':>10}{'vs base':>9}{'FLOPs run':>11}"
      f"{'step':>7}{'adjusted':>10}  adjusted per round")
threads = sorted({int(k.split("_")[1]) for rs in runs for r in rs if r for k in r
                  if k.startswith("threads_")})
for t in threads:
    for batch in (1, 32):
        key = f"greedy_tokens_per_s_b{batch}"
        rate = lambda i, r: ((runs[i][r] or {}).get(f"threads_{t}") or {}).get(key)
        for i, (label, _, _) in enumerate(models):
            rates = [rate(i, r) for r in range(rounds)]
            if not all(rates):
                print(f"{label:<22}{t:>4}{batch:>6}  no figure (the run failed: see "
                      f"{out}/{i}.*.txt)")
                continue
            line = f"{label:<22}{t:>4}{batch:>6}{median(rates):>10.1f}"
            base = [rate(0, r) for r in range(rounds)]
            if i == 0 or not all(base):
                print(line)
                continue
            run_ratio, step_ratio = fl[i][1] / fl[0][1], fl[i][0] / fl[0][0]
            vs = [m / b for m, b in zip(rates, base)]
            adj = [v * run_ratio for v in vs]
            flag = "  << below 0.9" if median(adj) < 0.9 else ""
            print(f"{line}{median(vs):>9.2f}{run_ratio:>11.3f}{step_ratio:>7.3f}"
                  f"{median(adj):>10.2f}  " + " ".join(f"{x:.2f}" for x in adj) + flag)
print("\nFLOPs per generated token (matrix products; run = decode step + source share):")
for (label, d, _), (step, run) in zip(models, fl):
    print(f"  {label:<22} step {step / 1e6:8.1f} M  run {run / 1e6:8.1f} M  ({d})")
PY
