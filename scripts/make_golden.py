#!/usr/bin/python3
"""Writes the end-to-end golden files: tests/data/golden/<variant>/{config.json,
model.safetensors, golden.json}.

    /usr/bin/python3 scripts/make_golden.py [--out tests/data/golden] [--only VARIANT ...]

Each variant is a tiny seeded model (d_model 32, 4 heads, 2+2 layers, ffn 64, vocab 53,
max_positions 64) built from torch.nn Transformer layers (scripts/attnserve_export.py),
randomly initialised and then trained for a few hundred steps on a toy task (reverse the
source) so that its outputs are informative (see TRAIN_STEPS). Its greedy and beam-search
results on 10 sources are computed in PyTorch in float64 from the float32 weights that are
written, each source decoded alone (batch 1), with the model in eval mode (no dropout).

golden.json:
  {"variant": str, "max_new_tokens": N, "sources": [[ids...], ...],
   "greedy": [{"output_ids": [...], "log_probs": [...], "finish_reason": "eos"|"length",
               "score": sum(log_probs)}, ...],                      # one per source
   "beam": {"beam_size": 4, "length_penalty": 1.0, "results": [same fields; score =
            cum_logprob / len^lp with len and cum including EOS when finished by EOS]}}

The script checks that the outputs are informative (different sources give different
outputs, at most one output is a single repeated token, some greedy results stop at EOS and
some at the length limit, likewise for beam search, and beam search differs from greedy
somewhere) and tries another seed if not. It keeps only sources whose decisions are robust:
every greedy arg-max and every beam-search ranking decision (adjacent candidates among each
step's top 2B+1, the best finished score against the others) wins by at least MARGIN in
log-prob, so an engine computing in float32 (any summation order) must reproduce the tokens.

Training runs on one thread and takes a minute or two per variant (less with the sgemm shim);
the result depends on the machine's floating-point libraries, so a regeneration elsewhere may
produce different (equally valid) files.

Checks before writing: the safetensors file read back equals the model's tensors; an
independent numpy float64 implementation of model-format.md, reading only the written files,
reproduces torch's logits; float32 torch decodes to the same tokens; a padded batch of all
sources decodes like each source alone.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnserve_export as ax  # noqa: E402

MAX_NEW_TOKENS = 12
BEAM_SIZE = 4
LENGTH_PENALTY = 1.0
NUM_SOURCES = 10
MARGIN = 1e-3  # minimum log-prob gap of every decoding decision kept in the golden files

BASE = dict(d_model=32, num_heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=64,
            vocab_size=53, max_positions=64)

# name -> (config overrides, structure)
VARIANTS = {
    "post_relu_tied_interleaved": (
        dict(norm_placement="post", activation="relu", positional_encoding="sinusoidal",
             tie_output_embedding=True),
        dict(shared_embeddings=True, final_norm=True, lm_head_bias=False)),
    "post_gelu_untied_concat": (
        dict(norm_placement="post", activation="gelu", positional_encoding="sinusoidal_concat",
             tie_output_embedding=False),
        dict(shared_embeddings=False, final_norm=False, lm_head_bias=True)),
    "pre_swish_tied_interleaved": (
        dict(norm_placement="pre", activation="swish", positional_encoding="sinusoidal",
             tie_output_embedding=True),
        dict(shared_embeddings=True, final_norm=True, lm_head_bias=False)),
    "pre_relu_untied_concat_noscale": (
        dict(norm_placement="pre", activation="relu", positional_encoding="sinusoidal_concat",
             tie_output_embedding=False, scale_embedding=False),
        dict(shared_embeddings=True, final_norm=True, lm_head_bias=False)),
}

# Purely random weights make poor golden models: a random transformer tends to emit one
# token over and over (a tied model repeats its own input; post-norm ones fall into a global
# attractor), whatever the source. A few hundred steps of training on a toy task (output the
# source reversed, then EOS) give outputs that depend on the source and on position, EOS
# after short sources and the length limit on long ones, and enough remaining mistakes and
# uncertainty that beam search differs from greedy. The weights stay non-trivial (random
# LayerNorm gains and biases from init_weights).
TRAIN_STEPS = 400
TRAIN_BATCH = 32
TRAIN_LR = 5e-3
TRAIN_MAX_LEN = 20


def toy_batch(gen, cfg):
    """Reverse-the-source batch: (src [n, S], lengths [n], prefix [n, S+1], targets [n, S+1]
    with -100 where there is no target)."""
    n, vocab = TRAIN_BATCH, cfg["vocab_size"]
    lengths = torch.randint(1, TRAIN_MAX_LEN + 1, (n,), generator=gen)
    s_max = int(lengths.max())
    src = torch.full((n, s_max), cfg["pad_id"], dtype=torch.long)
    # Positions after EOS get random tokens, not pad_id: they never influence the loss (the
    # self-attention is causal), and a model that never sees pad_id learns nothing about it.
    prefix = torch.randint(3, vocab, (n, s_max + 1), generator=gen)
    target = torch.full((n, s_max + 1), -100, dtype=torch.long)
    for i, length in enumerate(lengths.tolist()):
        s = torch.randint(3, vocab, (length,), generator=gen)
        r = s.flip(0)
        src[i, :length] = s
        prefix[i, 0] = cfg["decoder_start_id"]
        prefix[i, 1:length + 1] = r
        target[i, :length] = r
        target[i, length] = cfg["eos_id"]
    return src, lengths, prefix, target


def train(model, seed, steps=TRAIN_STEPS):
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=TRAIN_LR, betas=(0.9, 0.98))
    model.train()
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = TRAIN_LR * min(1.0, step / 50)  # warm-up
        src, lengths, prefix, target = toy_batch(gen, cfg)
        logits = model(src, prefix, lengths)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg["vocab_size"]),
                                                 target.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return float(loss)


# --- an independent numpy float64 implementation of model-format.md ----------------------
def np_layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def np_attention(t, name, xq, xkv, heads, causal):
    d = xq.shape[-1]
    dh = d // heads
    q = xq @ t[f"{name}.q_proj.weight"].T + t[f"{name}.q_proj.bias"]
    k = xkv @ t[f"{name}.k_proj.weight"].T + t[f"{name}.k_proj.bias"]
    v = xkv @ t[f"{name}.v_proj.weight"].T + t[f"{name}.v_proj.bias"]
    out = np.zeros_like(q)
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        s = q[:, sl] @ k[:, sl].T / math.sqrt(dh)
        if causal:
            s = s + np.triu(np.full(s.shape, -np.inf), 1)
        s = np.exp(s - s.max(-1, keepdims=True))
        out[:, sl] = (s / s.sum(-1, keepdims=True)) @ v[:, sl]
    return out @ t[f"{name}.o_proj.weight"].T + t[f"{name}.o_proj.bias"]


def np_ffn(t, name, x, act):
    h = x @ t[f"{name}.fc1.weight"].T + t[f"{name}.fc1.bias"]
    if act == "relu":
        h = np.maximum(h, 0)
    elif act == "gelu":
        h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))
    elif act == "swish":
        h = h / (1 + np.exp(-h))
    return h @ t[f"{name}.fc2.weight"].T + t[f"{name}.fc2.bias"]


def np_logits(model_dir, src, prefix):
    """Teacher-forced logits [len(prefix), vocab] for one source, from the files alone."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    raw, _ = ax.read_safetensors(os.path.join(model_dir, "model.safetensors"))
    t = {k: v.astype(np.float64) for k, v in raw.items()}
    d, heads, eps = c["d_model"], c["num_heads"], c["layer_norm_eps"]
    pre = c["norm_placement"] == "pre"
    i = np.arange(d // 2)
    freq = 1.0 / 10000.0 ** (2 * i / d)
    pe = np.zeros((c["max_positions"], d))
    ang = np.arange(c["max_positions"])[:, None] * freq[None, :]
    if c["positional_encoding"] == "sinusoidal":
        pe[:, 0::2], pe[:, 1::2] = np.sin(ang), np.cos(ang)
    else:
        pe[:, : d // 2], pe[:, d // 2:] = np.sin(ang), np.cos(ang)
    scale = math.sqrt(d) if c["scale_embedding"] else 1.0
    shared = "shared.embed.weight" in t
    e_src = t["shared.embed.weight" if shared else "encoder.embed.weight"]
    e_tgt = t["shared.embed.weight" if shared else "decoder.embed.weight"]

    def ln(x, name):
        return np_layer_norm(x, t[f"{name}.weight"], t[f"{name}.bias"], eps)

    def sub(x, name, f):  # one residual sublayer in either placement
        return x + f(ln(x, name)) if pre else ln(x + f(x), name)

    x = e_src[src] * scale + pe[: len(src)]
    for L in range(c["encoder_layers"]):
        p = f"encoder.layers.{L}"
        x = sub(x, f"{p}.self_attn_norm", lambda y: np_attention(t, f"{p}.self_attn", y, y, heads, False))
        x = sub(x, f"{p}.ffn_norm", lambda y: np_ffn(t, f"{p}.ffn", y, c["activation"]))
    if "encoder.final_norm.weight" in t:
        x = ln(x, "encoder.final_norm")
    mem = x
    y = e_tgt[prefix] * scale + pe[: len(prefix)]
    for L in range(c["decoder_layers"]):
        p = f"decoder.layers.{L}"
        y = sub(y, f"{p}.self_attn_norm", lambda z: np_attention(t, f"{p}.self_attn", z, z, heads, True))
        y = sub(y, f"{p}.cross_attn_norm", lambda z: np_attention(t, f"{p}.cross_attn", z, mem, heads, False))
        y = sub(y, f"{p}.ffn_norm", lambda z: np_ffn(t, f"{p}.ffn", z, c["activation"]))
    if "decoder.final_norm.weight" in t:
        y = ln(y, "decoder.final_norm")
    w_out = t["lm_head.weight"] if not c["tie_output_embedding"] else e_tgt
    logits = y @ w_out.T
    if "lm_head.bias" in t:
        logits = logits + t["lm_head.bias"]
    return logits


# --- golden computation ------------------------------------------------------------------
def greedy_margin(model, src, result):
    """Smallest top-1 minus top-2 log-prob gap over the greedy steps actually taken."""
    cfg = model.cfg
    prefix = [cfg["decoder_start_id"]] + result["output_ids"]
    if result["finish_reason"] == "eos":
        prefix_len = len(prefix)  # the last step chose EOS
    else:
        prefix_len = len(prefix) - 1
    with torch.no_grad():
        memory, _ = model.encode(torch.as_tensor([src]))
        states = model.decode(torch.as_tensor([prefix[:prefix_len]]), memory)
        logp = torch.log_softmax(model.logits(states), -1)[0]
    top2 = torch.topk(logp, 2, dim=-1).values
    return float((top2[:, 0] - top2[:, 1]).min())


def beam_margin(trace):
    """Smallest gap between adjacent candidates among each step's top 2B+1, and between the
    best finished score and the others; inf when there is nothing to compare."""
    gaps = [math.inf]
    for step in trace[:-1]:
        s = step["top_scores"]
        gaps += [s[i] - s[i + 1] for i in range(len(s) - 1)]
    fin = sorted(trace[-1]["finished_scores"], reverse=True)
    if len(fin) > 1:
        gaps.append(fin[0] - fin[1])
    return min(gaps)


def beam_ambiguous(trace, result, max_new_tokens):
    """True when B hypotheses finished exactly at the last step while live hypotheses remained
    and one of them, finished by length, would have scored better: the one situation where
    "stop when B are finished" and "finish the live ones at max_new_tokens" could be read
    differently. Such sources are not used."""
    last = trace[-1]
    steps = len(trace) - 1
    if last["stop"] != "beam_full" or steps < max_new_tokens or not last["live_at_stop"]:
        return False
    best_live = max(c / float(len(toks)) ** LENGTH_PENALTY for toks, c in last["live_at_stop"])
    return best_live >= max(last["finished_scores"]) - MARGIN


SOURCE_LENGTHS = [1, 20, 7, 3, 13, 10, 5, 17, 2, 15, 8, 19, 4, 11, 6, 14, 9, 16, 12, 18]


def source_candidates(vocab, seed, length, draws=6):
    """Random sources of one length (ids >= 3), to try in order."""
    rng = np.random.default_rng([seed, length])
    return [[int(x) for x in rng.integers(3, vocab, size=length)] for _ in range(draws)]


def decode_all(model, sources):
    greedy = [ax.greedy(model, [s], MAX_NEW_TOKENS)[0] for s in sources]
    beams, traces = [], []
    for s in sources:
        tr = []
        beams.append(ax.beam_search(model, s, BEAM_SIZE, LENGTH_PENALTY, MAX_NEW_TOKENS, trace=tr))
        traces.append(tr)
    return greedy, beams, traces


def quality(sources, greedy, beams):
    outs = [tuple(r["output_ids"]) for r in greedy]
    single = sum(1 for o in outs if len(o) >= 3 and len(set(o)) == 1)
    g_eos = sum(r["finish_reason"] == "eos" for r in greedy)
    b_eos = sum(r["finish_reason"] == "eos" for r in beams)
    n = len(sources)
    stats = dict(distinct=len(set(outs)), single_token=single, greedy_eos=g_eos,
                 greedy_length=n - g_eos, beam_eos=b_eos, beam_length=n - b_eos,
                 beam_differs_from_greedy=sum(tuple(b["output_ids"]) != o
                                              for b, o in zip(beams, outs)))
    ok = (stats["distinct"] >= n - 1 and single <= 1 and 0.25 * n <= g_eos <= 0.75 * n
          and 1 <= b_eos <= n - 1 and stats["beam_differs_from_greedy"] >= 1)
    return ok, stats


def find_model(variant, max_seeds=4):
    cfg_over, structure = VARIANTS[variant]
    cfg = ax.make_config(**BASE, **cfg_over)
    for seed in range(max_seeds):
        model32 = ax.EncoderDecoder(cfg, **structure)
        ax.init_weights(model32, seed=seed)
        loss = train(model32, seed)
        for p in model32.parameters():
            p.requires_grad_(False)
        model = ax.EncoderDecoder(cfg, **structure)
        model.load_state_dict(model32.state_dict())
        model = model.double().eval()
        # One robust source per length, lengths in SOURCE_LENGTHS order (short and long
        # alternate, so about half reach the length limit), up to NUM_SOURCES.
        chosen, rejected = [], 0
        g_all, b_all, t_all = [], [], []
        for length in SOURCE_LENGTHS:
            if len(chosen) == NUM_SOURCES:
                break
            for src in source_candidates(cfg["vocab_size"], 1000 + seed, length):
                g, b, tr = decode_all(model, [src])
                if (greedy_margin(model, src, g[0]) < MARGIN or beam_margin(tr[0]) < MARGIN
                        or beam_ambiguous(tr[0], b[0], MAX_NEW_TOKENS)):
                    rejected += 1
                    continue
                chosen.append(src)
                g_all += g
                b_all += b
                t_all += tr
                break
        if len(chosen) < NUM_SOURCES:
            print(f"  seed {seed}: only {len(chosen)} robust sources")
            continue
        ok, stats = quality(chosen, g_all, b_all)
        print(f"  seed {seed}: final training loss {loss:.2f}; {rejected} sources rejected for a "
              f"decision margin < {MARGIN}; {stats}{'' if ok else '  -> not informative enough'}")
        if ok:
            return dict(cfg=cfg, model32=model32, model=model, seed=seed, sources=chosen,
                        greedy=g_all, beam=b_all, traces=t_all, stats=stats)
    raise RuntimeError(f"{variant}: no seed gave informative outputs; loosen the criteria")


def check_written(found, out_dir):
    model, model32, sources = found["model"], found["model32"], found["sources"]
    # 1. The safetensors file read back equals the model's tensors, names and shapes.
    tensors, meta = ax.read_safetensors(os.path.join(out_dir, "model.safetensors"))
    expect = ax.to_attnserve_tensors(model32)
    assert list(tensors) == list(expect), "tensor names differ after the round trip"
    for k in expect:
        assert tensors[k].dtype == np.float32 and tensors[k].shape == expect[k].shape, k
        assert np.array_equal(tensors[k], expect[k]), f"tensor {k} differs after the round trip"
    with open(os.path.join(out_dir, "model.safetensors"), "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    assert n % 8 == 0
    # 2. load() of the directory gives the same model (torch float64 logits).
    reloaded = ax.load(out_dir, dtype=torch.float64)
    # 3. Independent numpy implementation of the format agrees with torch.
    worst = 0.0
    for src, g in zip(sources, found["greedy"]):
        prefix = [found["cfg"]["decoder_start_id"]] + g["output_ids"]
        ref = np_logits(out_dir, src, prefix)
        with torch.no_grad():
            got = reloaded(torch.as_tensor([src]), torch.as_tensor([prefix]))[0].numpy()
            orig = model(torch.as_tensor([src]), torch.as_tensor([prefix]))[0].numpy()
        assert np.array_equal(got, orig), "load() does not reproduce the model"
        worst = max(worst, float(np.abs(ref - got).max()))
    assert worst < 1e-9, f"numpy reference differs from torch by {worst}"
    # 4. float32 torch decodes to the same tokens; log-probs close.
    g32, b32, _ = decode_all(ax.load(out_dir, dtype=torch.float32), sources)
    lp_diff = 0.0
    for a, b in list(zip(g32, found["greedy"])) + list(zip(b32, found["beam"])):
        assert a["output_ids"] == b["output_ids"] and a["finish_reason"] == b["finish_reason"]
        lp_diff = max([lp_diff] + [abs(x - y) for x, y in zip(a["log_probs"], b["log_probs"])])
    assert lp_diff < 1e-4, lp_diff
    # 5. Batch invariance of the torch reference: one padded batch == each source alone.
    batched = ax.greedy(model, sources, MAX_NEW_TOKENS)
    for a, b in zip(batched, found["greedy"]):
        assert a["output_ids"] == b["output_ids"] and a["finish_reason"] == b["finish_reason"]
        assert max([0.0] + [abs(x - y) for x, y in zip(a["log_probs"], b["log_probs"])]) < 1e-9
    print(f"  checks: safetensors round trip exact; numpy reference max |dlogit| {worst:.1e}; "
          f"float32 torch same tokens (max |dlogp| {lp_diff:.1e}); batched == alone")


def result_json(r):
    return {"output_ids": [int(x) for x in r["output_ids"]],
            "log_probs": [float(x) for x in r["log_probs"]],
            "finish_reason": r["finish_reason"], "score": float(r["score"])}


def golden_text(g):
    """golden.json with one source / one result per line (compact, diff-friendly)."""
    d = lambda x: json.dumps(x, separators=(", ", ": "))
    lines = ["{", f' "variant": {d(g["variant"])},', f' "max_new_tokens": {g["max_new_tokens"]},',
             ' "sources": [']
    lines += [f"  {d(s)}," for s in g["sources"]]
    lines[-1] = lines[-1].rstrip(",")
    lines += [" ],", ' "greedy": [']
    lines += [f"  {d(r)}," for r in g["greedy"]]
    lines[-1] = lines[-1].rstrip(",")
    b = g["beam"]
    lines += [" ],", f' "beam": {{"beam_size": {b["beam_size"]}, "length_penalty": '
              f'{d(b["length_penalty"])}, "results": [']
    lines += [f"  {d(r)}," for r in b["results"]]
    lines[-1] = lines[-1].rstrip(",")
    lines += [" ]}", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == g
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "tests/data/golden"))
    ap.add_argument("--only", nargs="*", default=None, help="variants to (re)generate")
    args = ap.parse_args()
    torch.set_num_threads(1)
    total = 0
    for variant in VARIANTS:
        if args.only and variant not in args.only:
            continue
        print(f"{variant}:")
        found = find_model(variant)
        out_dir = os.path.join(args.out, variant)
        ax.export(found["model32"], found["cfg"], out_dir)
        golden = {
            "variant": variant,
            "max_new_tokens": MAX_NEW_TOKENS,
            "sources": found["sources"],
            "greedy": [result_json(r) for r in found["greedy"]],
            "beam": {"beam_size": BEAM_SIZE, "length_penalty": LENGTH_PENALTY,
                     "results": [result_json(r) for r in found["beam"]]},
        }
        with open(os.path.join(out_dir, "golden.json"), "w") as f:
            f.write(golden_text(golden))
        check_written(found, out_dir)
        for s, g, b in zip(found["sources"], found["greedy"], found["beam"]):
            print(f"    src len {len(s):2d}: greedy {g['output_ids']} {g['finish_reason']:6s}"
                  f" | beam {b['output_ids']} {b['finish_reason']}")
        size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
        total += size
        print(f"  wrote {out_dir} ({size / 1024:.0f} KiB), seed {found['seed']}")
    print(f"total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
