#!/usr/bin/python3
"""How far int8 and bfloat16 greedy decodes stray from float32's, per model.

For each model (the PyTorch-built golden models of tests/data/golden, the dates model on
held-out dates, and /tmp/attnserve-base with random sources when it exists) the engine
decodes the same sources at float32, int8 and bfloat16 (build/engine/decode_tool), and
PyTorch decodes them at float32 and with its own int8 (quantize_dynamic on nn.Linear, the
onednn engine), the peer. Per model and type it prints:
  same      the share of decodes whose greedy tokens (EOS included) equal float32's;
  drift     the largest |log-prob difference| of a token over the common prefix;
  diverged  how many decodes differ, and how many of those are near-ties: at the first
            differing step, float32 forced through the other type's tokens up to there
            scores its own token and the other's; margin = its own minus the other's
            log-prob, a near-tie when below --tie_threshold (default 0.1 nats);
  max margin  the largest such margin (how far from a tie the worst divergence is).
The torch int8 row compares with torch float32 the same way (torch float32 scores both
tokens directly).
  scripts/compute_type_accuracy.py [--random 100] [--json] [--no_base] [--no_torch]
Needs a built tree (scripts/build.sh) for build/engine/decode_tool.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
TYPES = ("float32", "int8", "bfloat16")


def run_decode_tool(tool, model_dir, requests, compute_type, max_new_tokens, threads):
    with tempfile.TemporaryDirectory() as tmp:
        req, out = os.path.join(tmp, "requests.json"), os.path.join(tmp, "out.json")
        with open(req, "w") as f:
            json.dump(requests, f)
        p = subprocess.run([tool, f"--model_dir={model_dir}", f"--requests={req}",
                            f"--out={out}", f"--compute_type={compute_type}",
                            f"--max_new_tokens={max_new_tokens}", f"--threads={threads}"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip() or f"decode_tool exited {p.returncode}")
        with open(out) as f:
            return json.load(f)


def tokens(result, eos_id):
    """The decided tokens, EOS included when the decode ended with it, and their log-probs."""
    ids, lps = list(result["output_ids"]), list(result["log_probs"])
    if result["finish_reason"] == "eos":
        ids.append(eos_id)
        lps.append(result["eos_log_prob"])
    return ids, lps


def first_difference(a, b):
    k = 0
    while k < len(a) and k < len(b) and a[k] == b[k]:
        k += 1
    return k


def compare(reference, other, eos_id, score_other_token, tie_threshold):
    """reference, other: per source (ids, log_probs). score_other_token(i, k, token): the
    reference model's log-prob of `token` at step k of source i after the reference's own
    first k tokens. Returns the row's figures."""
    same, drift, margins = 0, 0.0, []
    for i, ((rid, rlp), (oid, olp)) in enumerate(zip(reference, other)):
        k = first_difference(rid, oid)
        for j in range(k):
            drift = max(drift, abs(rlp[j] - olp[j]))
        if rid == oid:
            same += 1
            continue
        if k >= len(rid) or k >= len(oid):
            margins.append(float("inf"))  # cannot happen with EOS counted; kept honest
            continue
        margins.append(rlp[k] - score_other_token(i, k, oid[k]))
    n = len(reference)
    return {"decodes": n, "same": same, "same_share": same / n if n else 0.0,
            "max_log_prob_drift": drift, "diverged": n - same,
            "near_ties": sum(1 for m in margins if m < tie_threshold),
            "max_margin": max(margins) if margins else 0.0,
            "margins": sorted(margins)}


def engine_rows(tool, model_dir, sources, max_new_tokens, eos_id, threads, tie_threshold):
    requests = [{"source": s} for s in sources]
    results = {}
    for t in TYPES:
        try:
            raw = run_decode_tool(tool, model_dir, requests, t, max_new_tokens, threads)
            results[t] = [tokens(r, eos_id) for r in raw]
        except RuntimeError as e:
            results[t] = str(e)
    ref = results["float32"]
    if isinstance(ref, str):
        raise RuntimeError(f"{model_dir}: float32 decode failed: {ref}")
    rows = []
    for t in TYPES[1:]:
        if isinstance(results[t], str):
            rows.append({"type": t, "error": results[t]})
            continue
        # Float32 forced through the other type's tokens: one request per divergence.
        probes, index = [], {}
        for i, ((rid, _), (oid, _)) in enumerate(zip(ref, results[t])):
            k = first_difference(rid, oid)
            if rid == oid or k >= len(oid) or k >= len(rid):
                continue
            index[(i, k)] = len(probes)
            if oid[k] == eos_id:
                probes.append({"source": sources[i], "prefix": oid[:k], "force_eos": True})
            else:
                probes.append({"source": sources[i], "prefix": oid[:k + 1]})
        scored = (run_decode_tool(tool, model_dir, probes, "float32", max_new_tokens, threads)
                  if probes else [])

        def score(i, k, token, scored=scored, index=index):
            r = scored[index[(i, k)]]
            return r["eos_log_prob"] if token == eos_id else r["log_probs"][k]

        rows.append({"type": t, **compare(ref, results[t], eos_id, score, tie_threshold)})
    return rows


def torch_row(model_dir, sources, max_new_tokens, tie_threshold):
    import torch
    import attnserve_export as ax
    torch.set_num_threads(1)
    fp32 = ax.load(model_dir)
    cfg = fp32.cfg
    torch.backends.quantized.engine = ("onednn" if "onednn" in
                                       torch.backends.quantized.supported_engines else
                                       torch.backends.quantized.supported_engines[0])
    unquantized = ax.load(model_dir)
    int8 = torch.quantization.quantize_dynamic(unquantized, {torch.nn.Linear},
                                               dtype=torch.qint8)
    int8.cfg = cfg
    # An untied lm_head is read as a weight tensor (EncoderDecoder.logits), which a
    # quantized Linear does not have: it stays float32, as a tied output projection does.
    int8.lm_head = unquantized.lm_head
    # As scripts/torch_benchmark.py: torch 1.13's encoder-layer fast path reads
    # linear.weight as a tensor, a method on a quantized Linear; "training" with dropout 0
    # computes the same on the plain path.
    for m in int8.modules():
        if isinstance(m, torch.nn.TransformerEncoderLayer):
            m.train()
    eos = cfg["eos_id"]

    def log_prob(model, i, prefix, token):
        memory, mask = model.encode(torch.tensor([sources[i]]))
        ids = torch.tensor([[cfg["decoder_start_id"]] + prefix])
        return float(model.next_log_probs(ids, memory, mask)[0, token])

    def decode(model):
        out = []
        for b in range(0, len(sources), 32):
            out += ax.greedy(model, sources[b:b + 32], max_new_tokens)
        for i, r in enumerate(out):
            # ax.greedy does not report the EOS's log-prob; the engine does.
            if r["finish_reason"] == "eos":
                r["eos_log_prob"] = log_prob(model, i, r["output_ids"], eos)
        return [tokens(r, eos) for r in out]

    with torch.inference_mode():
        ref, other = decode(fp32), decode(int8)

        def score(i, k, token):
            return log_prob(fp32, i, ref[i][0][:k], token)

        return {"type": "torch int8", **compare(ref, other, eos, score, tie_threshold)}


def random_sources(n, vocab, max_len, seed):
    rng = random.Random(seed)
    return [[rng.randrange(3, vocab) for _ in range(rng.randint(1, max_len))] for _ in range(n)]


def models(args):
    """(name, dir, sources, max_new_tokens, what the sources are)."""
    out = []
    golden = os.path.join(ROOT, "tests/data/golden")
    for name in sorted(os.listdir(golden)):
        d = os.path.join(golden, name)
        with open(os.path.join(d, "golden.json")) as f:
            g = json.load(f)
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        sources = g["sources"] + random_sources(args.random, cfg["vocab_size"], 20, 1)
        out.append((name, d, sources, g["max_new_tokens"],
                    f"{len(g['sources'])} golden + {args.random} random"))
    import dates_data
    dates = os.path.join(ROOT, "models/dates")
    vocab = dates_data.read_vocab(os.path.join(dates, "vocab.txt"))
    with open(os.path.join(ROOT, "tests/data/dates_heldout.tsv"), encoding="utf-8") as f:
        lines = [line.rstrip("\n").split("\t")[0] for line in f][:args.dates]
    out.append(("dates", dates, [dates_data.encode_source(s, vocab) for s in lines], 16,
                f"{len(lines)} held-out dates"))
    base = "/tmp/attnserve-base"
    if not args.no_base and os.path.isfile(os.path.join(base, "model.safetensors")):
        with open(os.path.join(base, "config.json")) as f:
            cfg = json.load(f)
        out.append(("base (random weights)", base,
                    random_sources(args.base_sources, cfg["vocab_size"], 32, 2), 16,
                    f"{args.base_sources} random"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, default=100, help="random sources per golden model")
    ap.add_argument("--dates", type=int, default=300, help="held-out dates decoded")
    ap.add_argument("--base_sources", type=int, default=32)
    ap.add_argument("--no_base", action="store_true", help="skip /tmp/attnserve-base")
    ap.add_argument("--no_torch", action="store_true", help="skip the PyTorch int8 peer")
    ap.add_argument("--tie_threshold", type=float, default=0.1, help="nats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tool", default=os.path.join(ROOT, "build/engine/decode_tool"))
    ap.add_argument("--json", action="store_true", help="print one JSON document instead")
    args = ap.parse_args()
    if not os.access(args.tool, os.X_OK):
        sys.exit(f"{args.tool} not found: build first (scripts/build.sh)")

    report = []
    for name, d, sources, max_new, what in models(args):
        with open(os.path.join(d, "config.json")) as f:
            eos = json.load(f)["eos_id"]
        rows = engine_rows(args.tool, d, sources, max_new, eos, args.threads,
                           args.tie_threshold)
        if not args.no_torch:
            rows.append(torch_row(d, sources, max_new, args.tie_threshold))
        report.append({"model": name, "sources": what, "max_new_tokens": max_new,
                       "rows": rows})
        if not args.json:
            print(f"{name}: {what} sources, {max_new} new tokens", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"tie_threshold_nats": args.tie_threshold, "models": report}))
        return
    print(f"\nvs float32 of the same engine; near-tie: margin < {args.tie_threshold} nats")
    print(f"{'model':<32}{'type':<12}{'same':>12}{'drift':>9}{'diverged':>10}"
          f"{'near-ties':>11}{'max margin':>12}")
    for m in report:
        for r in m["rows"]:
            if "error" in r:
                print(f"{m['model']:<32}{r['type']:<12}  not run: {r['error']}")
                continue
            same = f"{r['same']}/{r['decodes']}"
            print(f"{m['model']:<32}{r['type']:<12}{same:>12}{r['max_log_prob_drift']:>9.4f}"
                  f"{r['diverged']:>10}{r['near_ties']:>11}{r['max_margin']:>12.4f}")


if __name__ == "__main__":
    main()
