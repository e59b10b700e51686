#!/usr/bin/python3
"""Writes tests/data/hf/: small random Hugging Face checkpoints, one per family, each as
safetensors and as pytorch_model.bin, plus golden decodes from scripts/hf_reference.

    /usr/bin/python3 scripts/make_hf_checkpoints.py [--out tests/data/hf]   # (re)generate
    /usr/bin/python3 scripts/make_hf_checkpoints.py --check [--out ...]      # verify

Layout (NAME in marian, t5_v1_0, t5_v1_1, bart, mbart, m2m100):
  NAME/safetensors/{config.json, generation_config.json, model.safetensors}
  NAME/bin/{config.json, generation_config.json, pytorch_model.bin}
  NAME/golden.json
The two directories hold the same weights; which aliases of tied tensors are on disk differs
(see docs/hf-reference.md). Everything is seeded: regenerating gives byte-identical files.

--check: both formats load and give identical logits and decodes; the golden files reproduce
(float64 exactly in tokens, scores to 1e-9; float32 same tokens, scores to 1e-4); a padded
batch of all sources decodes like each source alone; T5 relative buckets and M2M100
position ids on hand-computed values; bad input gives CheckpointError.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hr  # noqa: E402
from hf_reference import generate as G  # noqa: E402
from hf_reference import models as M  # noqa: E402
from hf_reference import numpy_check, safetensors_io  # noqa: E402

D, FFN, HEADS, LAYERS, VOCAB, MAX_POS, MAX_LEN, BEAMS = 32, 64, 2, 2, 96, 32, 16, 4
MARGIN = 1e-4   # every kept decision wins by at least this (log-prob units; f32 errors ~1e-6)
EMB_STD, OUT_GAIN, CROSS_GAIN = 0.5, 2.5, 0.7  # embeddings; gains on sublayer outputs (cross-attention weak, so the decoder state moves with its prefix)
LENGTHS = [1, 3, 5, 8, 11, 14]  # content tokens per golden source (specials added per family)
POOL = 5        # candidate sources tried per length

# Per family: config.json, generation_config.json and source framing.
SPECS = {
    "marian": dict(
        config=dict(model_type="marian", architectures=["MarianMTModel"], vocab_size=VOCAB,
                    decoder_vocab_size=VOCAB, d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS,
                    encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FFN,
                    decoder_ffn_dim=FFN, activation_function="swish", scale_embedding=True,
                    max_position_embeddings=MAX_POS, pad_token_id=VOCAB - 1, eos_token_id=0,
                    decoder_start_token_id=VOCAB - 1, forced_eos_token_id=0,
                    share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
                    is_encoder_decoder=True, static_position_embeddings=True),
        gen=dict(bad_words_ids=[[VOCAB - 1]], decoder_start_token_id=VOCAB - 1, eos_token_id=0,
                 forced_eos_token_id=0, pad_token_id=VOCAB - 1, max_length=MAX_LEN, num_beams=BEAMS),
        frame=lambda t: t + [0], lo=2, hi=VOCAB - 1, ban="token"),
    "t5_v1_0": dict(
        config=dict(model_type="t5", architectures=["T5ForConditionalGeneration"], vocab_size=VOCAB,
                    d_model=D, d_kv=16, d_ff=FFN, num_layers=LAYERS, num_heads=HEADS,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    layer_norm_epsilon=1e-6, feed_forward_proj="relu", tie_word_embeddings=True,
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=True),
        gen=dict(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, max_length=MAX_LEN,
                 num_beams=BEAMS),
        frame=lambda t: t + [1], lo=3, hi=VOCAB),
    "t5_v1_1": dict(
        config=dict(model_type="t5", architectures=["T5ForConditionalGeneration"], vocab_size=VOCAB,
                    d_model=D, d_kv=24, d_ff=FFN, num_layers=LAYERS, num_decoder_layers=LAYERS,
                    num_heads=HEADS, relative_attention_num_buckets=16, relative_attention_max_distance=12,
                    layer_norm_epsilon=1e-6, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=True),
        gen=dict(decoder_start_token_id=0, eos_token_id=[1, 7], pad_token_id=0, max_length=MAX_LEN,
                 num_beams=BEAMS, early_stopping="never"),
        frame=lambda t: t + [1], lo=3, hi=VOCAB),
    "bart": dict(
        config=dict(model_type="bart", architectures=["BartForConditionalGeneration"], vocab_size=VOCAB,
                    d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                    decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                    activation_function="gelu", scale_embedding=False, max_position_embeddings=MAX_POS,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                    forced_bos_token_id=0, forced_eos_token_id=2, is_encoder_decoder=True),
        gen=dict(bos_token_id=0, decoder_start_token_id=2, eos_token_id=2, forced_bos_token_id=0,
                 forced_eos_token_id=2, pad_token_id=1, max_length=MAX_LEN, num_beams=BEAMS,
                 length_penalty=2.0, early_stopping=True, no_repeat_ngram_size=3),
        frame=lambda t: [0] + t + [2], lo=3, hi=VOCAB, ban="bigram"),
    "mbart": dict(
        config=dict(model_type="mbart", architectures=["MBartForConditionalGeneration"], vocab_size=VOCAB,
                    d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                    decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                    activation_function="gelu", scale_embedding=True, max_position_embeddings=MAX_POS,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                    forced_eos_token_id=2, is_encoder_decoder=True),
        # language codes are ids 90..95; the source language is 90, the target 92
        gen=dict(bos_token_id=0, decoder_start_token_id=2, eos_token_id=2, forced_bos_token_id=92,
                 forced_eos_token_id=2, pad_token_id=1, max_length=MAX_LEN, num_beams=BEAMS,
                 early_stopping=True, min_length=6),
        frame=lambda t: t + [2, 90], lo=3, hi=90),
    "m2m100": dict(
        config=dict(model_type="m2m100", architectures=["M2M100ForConditionalGeneration"], vocab_size=VOCAB,
                    d_model=D, encoder_layers=LAYERS, decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                    decoder_attention_heads=HEADS, encoder_ffn_dim=FFN, decoder_ffn_dim=FFN,
                    activation_function="relu", scale_embedding=True, max_position_embeddings=MAX_POS,
                    pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                    is_encoder_decoder=True),
        # NLLB style: source = [src_lang] tokens [eos]; language codes 90..95, target 93
        gen=dict(bos_token_id=0, decoder_start_token_id=2, eos_token_id=2, forced_bos_token_id=93,
                 pad_token_id=1, max_length=MAX_LEN, num_beams=BEAMS, length_penalty=1.0),
        frame=lambda t: [91] + t + [2], lo=3, hi=90, dtype=torch.float16,
        out_gain=4 * OUT_GAIN, cross_gain=4 * OUT_GAIN),  # sqrt(d_model)-scaled embeddings, no embedding norm: copying
}
NAMES = list(SPECS)


def f16_grid(t):
    """Weights on the float16 grid, so a float16 file holds exactly the float32 values."""
    return t.half().float()


def make_weights(name, seed, eos_gain):
    """{HF name: tensor} for one family (every alias present; writers drop some)."""
    spec = SPECS[name]
    return random_weights(spec["config"], seed, eos_gain, out_gain=spec.get("out_gain", OUT_GAIN),
                          cross_gain=spec.get("cross_gain", CROSS_GAIN))


def random_weights(c, seed, eos_gain=1.0, out_gain=OUT_GAIN, cross_gain=CROSS_GAIN, emb_std=None):
    """{HF name: tensor}, every alias present, for any config.json `c` of the five families:
    the sizes come from `c`, so scripts/make_random_hf_model.py draws real-sized checkpoints
    with the same names and scaling. Seeded; the draws are in a fixed order, so the tiny
    families of SPECS stay byte-identical. out_gain scales the sublayers' output projections,
    cross_gain cross-attention's (T5: relative to out_gain), eos_gain EOS's output row, emb_std
    the embeddings' (default EMB_STD; T5's 2.5 tied, 1.0 untied)."""
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s, std: f16_grid(torch.randn(*s, generator=g) * std)
    lin = lambda o, i, gain=1.0: rn(o, i, std=gain / math.sqrt(i))
    D, V = c["d_model"], c["vocab_size"]
    sd = {}
    if c["model_type"] == "t5":
        heads = c["num_heads"]
        inner = c["d_kv"] * heads
        ffn = c["d_ff"]
        layers = dict(encoder=c["num_layers"], decoder=c.get("num_decoder_layers") or c["num_layers"])
        tied = c["tie_word_embeddings"]
        emb = rn(V, D, std=emb_std or (2.5 if tied else 1.0))
        og = 4 * out_gain if tied else out_gain  # the big tied embedding would otherwise be copied
        sd["shared.weight"] = emb
        for side, sub in (("encoder", ["SelfAttention"]), ("decoder", ["SelfAttention", "EncDecAttention"])):
            for i in range(layers[side]):
                for j, kind in enumerate(sub):
                    p = f"{side}.block.{i}.layer.{j}."
                    for k in "qkv":
                        sd[p + f"{kind}.{k}.weight"] = lin(inner, D, 0.5)
                    sd[p + f"{kind}.o.weight"] = lin(D, inner, cross_gain * og / out_gain if kind == "EncDecAttention" else og)
                    if kind == "SelfAttention" and i == 0:
                        sd[p + f"{kind}.relative_attention_bias.weight"] = rn(c["relative_attention_num_buckets"], heads, std=1.0)
                    sd[p + "layer_norm.weight"] = f16_grid(1 + 0.2 * torch.randn(D, generator=g))
                p = f"{side}.block.{i}.layer.{len(sub)}."
                if c["feed_forward_proj"].startswith("gated"):
                    sd[p + "DenseReluDense.wi_0.weight"] = lin(ffn, D)
                    sd[p + "DenseReluDense.wi_1.weight"] = lin(ffn, D)
                else:
                    sd[p + "DenseReluDense.wi.weight"] = lin(ffn, D)
                sd[p + "DenseReluDense.wo.weight"] = lin(D, ffn, og)
                sd[p + "layer_norm.weight"] = f16_grid(1 + 0.2 * torch.randn(D, generator=g))
            sd[f"{side}.final_layer_norm.weight"] = f16_grid(1 + 0.2 * torch.randn(D, generator=g))
        out = "shared.weight" if tied else "lm_head.weight"
        if not tied:
            sd["lm_head.weight"] = rn(V, D, std=0.4)
        sd[out] = sd[out].clone()
        sd[out][c["eos_token_id"]] = f16_grid(sd[out][c["eos_token_id"]] * eos_gain)
        return sd
    mt = c["model_type"]
    fam = M.FAMILY[mt]
    P = "model."
    og, cg = out_gain, cross_gain
    max_pos = c["max_position_embeddings"]
    layers = dict(encoder=c["encoder_layers"], decoder=c["decoder_layers"])
    ffn = dict(encoder=c["encoder_ffn_dim"], decoder=c["decoder_ffn_dim"])
    emb = rn(V, D, std=emb_std or EMB_STD)
    emb[c["eos_token_id"]] = f16_grid(emb[c["eos_token_id"]] * eos_gain)
    sd[P + "shared.weight"] = emb
    ln = lambda n: sd.update({n + ".weight": f16_grid(1 + 0.2 * torch.randn(D, generator=g)),
                              n + ".bias": rn(D, std=0.1)})
    for side in ("encoder", "decoder"):
        if fam["pos"] == "learned":
            sd[f"{P}{side}.embed_positions.weight"] = rn(max_pos + 2, D, std=0.5)
        elif fam["pos"] == "marian_sin":
            sd[f"{P}{side}.embed_positions.weight"] = M.marian_sinusoids(max_pos, D)
        for i in range(layers[side]):
            p = f"{P}{side}.layers.{i}."
            for a in ["self_attn"] + (["encoder_attn"] if side == "decoder" else []):
                for k in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    sd[f"{p}{a}.{k}.weight"] = lin(D, D, (cg if a == "encoder_attn" else og) if k == "out_proj" else 1.0)
                    sd[f"{p}{a}.{k}.bias"] = rn(D, std=0.1)
                ln(f"{p}{a}_layer_norm")
            f = ffn[side]
            sd[p + "fc1.weight"], sd[p + "fc1.bias"] = lin(f, D), rn(f, std=0.1)
            sd[p + "fc2.weight"], sd[p + "fc2.bias"] = lin(D, f, og), rn(D, std=0.1)
            ln(p + "final_layer_norm")
        if fam["ln_emb"]:
            ln(f"{P}{side}.layernorm_embedding")
        if fam["final_ln"]:
            ln(f"{P}{side}.layer_norm")
    if fam["bias"]:
        sd["final_logits_bias"] = rn(1, V, std=0.5)
    return sd


def on_disk(name, sd, fmt):
    """What save_pretrained leaves on disk for a family of SPECS (see stored_tensors)."""
    return stored_tensors(SPECS[name]["config"], sd, fmt, SPECS[name].get("dtype", torch.float32))


def stored_tensors(c, sd, fmt, dt=torch.float32):
    """What save_pretrained leaves on disk. safetensors refuses aliases, so each tied group is
    stored once (under shared.weight); the torch files carry the aliases sharing one storage,
    as older checkpoints on the Hub do."""
    out = dict(sd)
    t5 = c["model_type"] == "t5"
    shared = "shared.weight" if t5 else "model.shared.weight"
    pre = "" if t5 else "model."
    aliases = [pre + "encoder.embed_tokens.weight", pre + "decoder.embed_tokens.weight"]
    if c.get("tie_word_embeddings", True):
        aliases.append("lm_head.weight")
    if fmt == "bin":
        for a in aliases:
            if a == "lm_head.weight" and c["model_type"] in ("bart", "mbart", "m2m100"):
                continue  # these families' torch files often omit lm_head; test that path too
            out[a] = out[shared]  # the same tensor: torch.save writes one storage
    return {k: (v.to(dt) if v.is_floating_point() else v) for k, v in out.items()} if dt != torch.float32 else out


def write_json(path, d):
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def write_checkpoint(name, sd, gen, root):
    spec = SPECS[name]
    for fmt in ("safetensors", "bin"):
        write_hf_dir(os.path.join(root, name, fmt), spec["config"], gen, sd, fmt,
                     spec.get("dtype", torch.float32))


def write_hf_dir(d, config, gen, sd, fmt="safetensors", dtype=torch.float32):
    """One checkpoint directory as save_pretrained writes it: config.json,
    generation_config.json, and model.safetensors (fmt "safetensors") or pytorch_model.bin."""
    os.makedirs(d, exist_ok=True)
    cfg = dict(config, torch_dtype="float16" if dtype == torch.float16 else "float32",
               transformers_version="4.46.0")
    write_json(os.path.join(d, "config.json"), cfg)
    write_json(os.path.join(d, "generation_config.json"), dict(gen, _from_model_config=False,
                                                             transformers_version="4.46.0"))
    tensors = stored_tensors(config, sd, fmt, dtype)
    if fmt == "safetensors":
        safetensors_io.write(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    else:
        torch.save(tensors, os.path.join(d, "pytorch_model.bin"))


def candidate_sources(name):
    spec = SPECS[name]
    g = torch.Generator().manual_seed(1000 + NAMES.index(name))
    pool = []
    for n in LENGTHS:
        pool.append([spec["frame"]([int(x) for x in torch.randint(spec["lo"], spec["hi"], (n,), generator=g)])
                     for _ in range(POOL)])
    return pool


def load(root, name, fmt="safetensors", dtype=torch.float64, **over):
    return hr.load_model(os.path.join(root, name, fmt), dtype, **over)


def quality(greedy, beams, gc):
    outs = [tuple(r["tokens"]) for r in greedy]
    eos = sum(len(r["tokens"]) < MAX_LEN - 1 for r in greedy)  # stopped before the length limit
    n = len(outs)
    single = sum(1 for o in outs if len(o) >= 3 and len(set(o)) == 1)
    all_eos_first = sum(1 for r in greedy if r["tokens"][:1] and r["tokens"][0] in gc.eos)
    return (len(set(outs)) >= n - 1 and single <= 1 and 1 <= eos <= n - 1 and all_eos_first == 0
            and any(tuple(b["tokens"]) != o for b, o in zip(beams, outs))
            and any(len(b["tokens"]) < MAX_LEN - 1 for b in beams))  # a beam stopped on EOS early


# generation options whose effect the files must show, and their neutral values
OPTIONS = dict(bad_words_ids=[[10 ** 6]], no_repeat_ngram_size=0, min_length=0)


def options_matter(root, name, sources, greedy, beams):
    """Names of the active generation options that change no output when neutralised."""
    _, gc0, _ = load(root, name)
    active = dict(bad_words_ids=bool(gc0.bad_words), no_repeat_ngram_size=gc0.no_repeat_ngram > 0,
                  min_length=gc0.min_length > 0)
    idle = []
    for k, neutral in OPTIONS.items():
        if not active[k]:
            continue
        model, gc, _ = load(root, name, **{k: neutral})
        g = [r["tokens"] for r in G.greedy(model, gc, sources)]
        b = [r["tokens"] for r in G.beam_search(model, gc, sources, BEAMS)]
        if g == [r["tokens"] for r in greedy] and b == [r["tokens"] for r in beams]:
            idle.append(k)
    return idle


def pick_sources(model, gc, pool):
    """One source per length whose greedy and beam decisions all win by MARGIN."""
    chosen = []
    for cands in pool:
        for s in cands:
            gr = G.greedy(model, gc, [s])[0]
            bm = G.beam_search(model, gc, [s], BEAMS)[0]
            if gr["margin"] >= MARGIN and bm["margin"] >= MARGIN and gr["tokens"][0] not in gc.eos:
                chosen.append(s)
                break
        else:
            return None
    return chosen


def build_family(name, root):
    spec = SPECS[name]
    pool = candidate_sources(name)
    for seed in range(6):
        for gain in (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0):
            sd = make_weights(name, 100 * NAMES.index(name) + seed, gain)
            gen = copy.deepcopy(spec["gen"])
            write_checkpoint(name, sd, gen, root)
            model, gc, _ = load(root, name)
            if spec.get("ban"):
                free = G.greedy(model, gc, [p[0] for p in pool])
                toks = [r["tokens"][:-1] if r["finish_reason"] == "eos" else r["tokens"] for r in free]
                if spec["ban"] == "bigram":
                    counts = {}
                    for t in toks:
                        for a, b in zip(t[1:], t[2:]):  # t[0] is forced
                            counts[(a, b)] = counts.get((a, b), 0) + 1
                    if not counts:
                        continue
                    a, b = max(sorted(counts), key=lambda k: counts[k])
                    gen["bad_words_ids"] = [[1], [a, b]]
                else:
                    counts = {}
                    for t in toks:
                        for a in t:
                            counts[a] = counts.get(a, 0) + 1
                    if not counts:
                        continue
                    a = max(sorted(counts), key=lambda k: counts[k])
                    gen["bad_words_ids"] = [[VOCAB - 1], [a]]
                write_checkpoint(name, sd, gen, root)
                model, gc, _ = load(root, name)
            sources = pick_sources(model, gc, pool)
            if sources is None:
                continue
            greedy = G.greedy(model, gc, sources)
            beams = G.beam_search(model, gc, sources, BEAMS)
            if quality(greedy, beams, gc) and not options_matter(root, name, sources, greedy, beams):
                return sd, gen, model, gc, sources, greedy, beams, dict(seed=seed, eos_gain=gain)
    raise SystemExit(f"{name}: no seed/gain gave informative, robust outputs")


def golden(name, model, gc, sources, greedy, beams, how):
    probe_prefix = greedy[0]["sequence"][:3]
    enc, mask = G.encode_batch(model, [sources[0]], gc.pad)
    with torch.no_grad():
        probe = model.logits(torch.tensor([probe_prefix]), enc, mask)[0, -1].tolist()
    r = float  # full precision: repr round-trips, so the text is deterministic
    return {
        "family": name, "model_type": SPECS[name]["config"]["model_type"],
        "note": "computed in float64 from the stored weights; sources decoded one at a time",
        "generation": gc.as_dict(), "seed": how["seed"], "eos_gain": how["eos_gain"],
        "min_margin": MARGIN,
        "sources": sources,
        "greedy": [dict(sequence=g["sequence"], tokens=g["tokens"], logprobs=[r(x) for x in g["logprobs"]],
                        finish_reason=g["finish_reason"], margin=r(g["margin"])) for g in greedy],
        "beam": dict(num_beams=BEAMS, results=[
            dict(sequence=b["sequence"], tokens=b["tokens"], score=r(b["score"]),
                 sum_logprobs=r(b["sum_logprobs"]), token_logprobs=[r(x) for x in b["token_logprobs"]],
                 finish_reason=b["finish_reason"], margin=r(b["margin"])) for b in beams]),
        "probe": dict(source_index=0, decoder_input_ids=probe_prefix,
                      last_position_logits=[r(x) for x in probe]),
    }


def golden_text(g):
    lines = ["{"]
    items = list(g.items())
    for k, (key, v) in enumerate(items):
        end = "," if k < len(items) - 1 else ""
        if key in ("sources", "greedy"):
            body = ",\n".join("    " + json.dumps(x) for x in v)
            lines.append(f'  "{key}": [\n{body}\n  ]{end}')
        elif key == "beam":
            body = ",\n".join("      " + json.dumps(x) for x in v["results"])
            lines.append(f'  "beam": {{"num_beams": {v["num_beams"]}, "results": [\n{body}\n  ]}}{end}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(v)}{end}")
    text = "\n".join(lines) + "\n}\n"
    assert json.loads(text) == json.loads(json.dumps(g))
    return text


def generate(root):
    for name in NAMES:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        sd, gen, model, gc, sources, greedy, beams, how = build_family(name, root)
        with open(os.path.join(root, name, "golden.json"), "w") as f:
            f.write(golden_text(golden(name, model, gc, sources, greedy, beams, how)))
        print(f"{name}: seed {how['seed']} eos_gain {how['eos_gain']}; greedy eos "
              f"{sum(x['finish_reason'] == 'eos' for x in greedy)}/{len(greedy)} "
              f"({sum(len(x['tokens']) < MAX_LEN - 1 for x in greedy)} before the limit), beam eos "
              f"{sum(x['finish_reason'] == 'eos' for x in beams)}/{len(beams)} "
              f"({sum(len(x['tokens']) < MAX_LEN - 1 for x in beams)} before the limit)")


# ---------------------------------------------------------------- checks
class _Scripted:
    """A fake model whose next-token distribution is a table of the decoder prefix (vocab:
    0 start, 1 eos, 2 'a', 3 'b'), so beam-search outcomes can be worked out by hand."""
    def __init__(self, table):
        self.table = table

    def encode(self, ids, mask):
        return torch.zeros(ids.shape[0], ids.shape[1], 1, dtype=torch.float64)

    def logits(self, dec, enc, mask):
        out = torch.empty(dec.shape[0], dec.shape[1], 4, dtype=torch.float64)
        for r, row in enumerate(dec.tolist()):
            p = self.table.get(tuple(row), {1: 0.97, 2: 0.01, 3: 0.01, 0: 0.01})
            out[r, -1] = torch.log(torch.tensor([p.get(t, 1e-9) for t in range(4)], dtype=torch.float64))
        return out


def beam_semantics(expect):
    """Hand-worked beam searches (B = 2, K = 4) pinning early_stopping and length
    normalisation; see docs/hf-reference.md for the rules."""
    A, B_ = 2, 3
    first = {1: 0.5, 2: 0.3, 3: 0.2}
    base = dict(model_type="bart", eos_token_id=1, decoder_start_token_id=0, pad_token_id=0)

    def run(table, **gen):
        gc = G.GenConfig(base, gen)
        return G.beam_search(_Scripted(table), gc, [[5]], 2)[0]

    # 1) lp 2: after step 2 the finished are [a eos] -1.309/4, [b eos] -2.120/4 (eos alone,
    #    -0.693/1, drops out); the best running [b a] -2.526 can only win when L is
    #    max_length - 1 = 4 ("never"), and does: [b a eos] -2.536/9.
    t1 = {(0,): first, (0, A): {1: 0.9, A: 0.1}, (0, B_): {1: 0.6, A: 0.4}, (0, B_, A): {1: 0.99, A: 0.01}}
    for es, want, score in ((True, [A, 1], (math.log(0.3) + math.log(0.9)) / 4),
                            (False, [A, 1], (math.log(0.3) + math.log(0.9)) / 4),
                            ("never", [B_, A, 1], (math.log(0.2) + math.log(0.4) + math.log(0.99)) / 9)):
        r = run(t1, length_penalty=2.0, early_stopping=es, max_length=5)
        expect(r["tokens"] == want and abs(r["score"] - score) < 1e-5,
               f"beam semantics 1, early_stopping={es}: {r['tokens']} {r['score']} != {want} {score}")
    # 2) [b eos] ranks 3rd of K (>= B) so is not added: after step 2 the finished are
    #    [a eos] -0.327 and [eos] -0.693; True stops there, False continues since the
    #    running [b a] -1.966/2^2 > -0.693, and finds [b a eos] -1.976/9.
    t2 = {(0,): first, (0, A): {1: 0.9, A: 0.1}, (0, B_): {1: 0.3, A: 0.7}, (0, B_, A): {1: 0.99, A: 0.01}}
    for es, want, score in ((True, [A, 1], (math.log(0.3) + math.log(0.9)) / 4),
                            (False, [B_, A, 1], (math.log(0.2) + math.log(0.7) + math.log(0.99)) / 9),
                            ("never", [B_, A, 1], (math.log(0.2) + math.log(0.7) + math.log(0.99)) / 9)):
        r = run(t2, length_penalty=2.0, early_stopping=es, max_length=6)
        expect(r["tokens"] == want and abs(r["score"] - score) < 1e-5,
               f"beam semantics 2, early_stopping={es}: {r['tokens']} {r['score']} != {want} {score}")
    # 3) finished by max_length: generated_len = max_length - 1 = 2 (not 3)
    t3 = {(0,): {A: 0.6, B_: 0.4}, (0, A): {A: 0.7, B_: 0.3}, (0, B_): {A: 0.5, B_: 0.5}}
    r = run(t3, length_penalty=1.0, max_length=3)
    score = (math.log(0.6) + math.log(0.7)) / 2
    expect(r["tokens"] == [A, A] and r["finish_reason"] == "length" and abs(r["score"] - score) < 1e-5,
           f"beam semantics 3 (length-finished): {r['tokens']} {r['score']} != {[A, A]} {score}")


class _Gadget:
    """An arbitrary object: a weights-only load must refuse to unpickle it."""
    def __reduce__(self):
        return (print, ("unpickling ran code",))


def check(root):
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)
            print("FAIL:", what)

    # T5 buckets, hand-computed (bidirectional nb 32 -> 16 a side, max_exact 8, max_distance 128:
    # large = 8 + floor(ln(|r|/8) / ln(16) * 8); causal: max_exact 16, large = 16 + floor(ln(r/16)/ln(8)*16))
    rel = torch.tensor([0, -1, 1, -7, 7, -12, -20, 20, -50, -1000, 1000])
    want = [0, 1, 17, 7, 23, 9, 10, 26, 13, 15, 31]
    got = M.t5_relative_bucket(rel, True, 32, 128).tolist()
    expect(got == want, f"t5 bidirectional buckets {got} != {want}")
    rel = torch.tensor([5, 0, -3, -15, -20, -40, -100, -200])
    want = [0, 0, 3, 15, 17, 23, 30, 31]
    got = M.t5_relative_bucket(rel, False, 32, 128).tolist()
    expect(got == want, f"t5 causal buckets {got} != {want}")
    # M2M100 position ids: pads get padding_idx (1), tokens count from 2 over non-pads only
    ids = torch.tensor([[5, 6, 7, 2], [5, 2, 1, 1], [1, 1, 5, 2]])
    got = M.m2m100_position_ids(ids, 1).tolist()
    want = [[2, 3, 4, 5], [2, 3, 1, 1], [1, 1, 2, 3]]
    expect(got == want, f"m2m100 position ids {got} != {want}")
    tab = M.fairseq_sinusoids(6, 8, 1)
    expect(float(tab[1].abs().max()) == 0.0 and abs(float(tab[2, 0]) - math.sin(2.0)) < 1e-6 and
           abs(float(tab[2, 4]) - math.cos(2.0)) < 1e-6 and
           abs(float(tab[3, 1]) - math.sin(3 * math.exp(-math.log(10000) / 3))) < 1e-6,
           "m2m100 sinusoid table layout")
    mt = M.marian_sinusoids(4, 6)
    expect(abs(float(mt[3, 1]) - math.sin(3 / 10000 ** (2 / 6))) < 1e-6 and
           abs(float(mt[3, 3]) - math.cos(3.0)) < 1e-6 and float(mt[0, 3]) == 1.0,
           "marian sinusoid table layout [sin | cos]")

    # logits processors on hand-made prefixes (V = 10, start token 0, eos 2)
    base = dict(model_type="bart", eos_token_id=2, decoder_start_token_id=0, pad_token_id=1)

    def banned(gen, seqs):
        gc = G.GenConfig(base, gen)
        out = G.process(gc, seqs, torch.zeros(len(seqs), 10))
        return [sorted(int(t) for t in torch.nonzero(row == -math.inf)) for row in out]

    bw = dict(bad_words_ids=[[5], [2], [3, 4], [0, 7]])
    expect(banned(bw, [[0]]) == [[5]] and banned(bw, [[0, 3], [0, 4]]) == [[4, 5], [5]] and
           banned(bw, [[0, 0]]) == [[5, 7]],
           "bad_words_ids: single / multi-token / [eos] dropped / a word as long as the prefix is skipped")
    expect(banned(dict(bad_words_ids=[[0, 3, 4]]), [[0, 3]]) == [[]] and
           banned(dict(bad_words_ids=[[0, 3, 4]]), [[0, 0, 3]]) == [[4]],
           "bad_words_ids: the start token never takes part in a match")
    expect(banned(dict(no_repeat_ngram_size=2), [[0, 4, 5, 4], [0, 4, 5, 6]]) == [[5], []],
           "no_repeat_ngram_size 2")
    expect(banned(dict(no_repeat_ngram_size=3), [[0, 4, 5, 4, 4, 5], [0, 4]]) == [[4], []],
           "no_repeat_ngram_size 3 (and nothing before cur_len + 1 >= n)")
    expect(banned(dict(min_length=3, eos_token_id=[2, 6]), [[0, 4], [0, 4]]) == [[2, 6], [2, 6]] and
           banned(dict(min_length=3), [[0, 4, 4]]) == [[]], "min_length counts the start token")
    expect(banned(dict(forced_bos_token_id=7), [[0]]) == [[0, 1, 2, 3, 4, 5, 6, 8, 9]] and
           banned(dict(forced_bos_token_id=7), [[0, 7]]) == [[]], "forced_bos_token_id at cur_len 1 only")
    expect(banned(dict(forced_eos_token_id=2, max_length=4), [[0, 5, 5]]) == [[0, 1, 3, 4, 5, 6, 7, 8, 9]] and
           banned(dict(forced_eos_token_id=2, max_length=5), [[0, 5, 5]]) == [[]],
           "forced_eos_token_id at cur_len max_length - 1 only")
    expect(G.GenConfig(base, dict(max_new_tokens=5, max_length=99)).max_length == 6, "max_new_tokens")
    for bad in (dict(do_sample=True, num_beams=2), dict(typical_p=0.9), dict(num_beam_groups=2),
                dict(repetition_penalty=0.0), dict(top_p=1.5),
                dict(early_stopping="sometimes"), dict(eos_token_id=[]), dict(bad_words_ids=[[]])):
        try:
            G.GenConfig(base, bad)
            expect(False, f"generation setting {bad} accepted")
        except hr.CheckpointError:
            pass

    beam_semantics(expect)

    for name in NAMES:
        with open(os.path.join(root, name, "golden.json")) as f:
            gold = json.load(f)
        srcs = gold["sources"]
        m_st, gc, fmt1 = load(root, name, "safetensors")
        m_bin, gc2, fmt2 = load(root, name, "bin")
        expect(fmt1 == "safetensors" and fmt2 == "bin", f"{name}: formats {fmt1} {fmt2}")
        expect(gc.as_dict() == gc2.as_dict() == gold["generation"], f"{name}: generation settings differ")
        enc1, mask = G.encode_batch(m_st, srcs, gc.pad)
        enc2, _ = G.encode_batch(m_bin, srcs, gc.pad)
        prefix = torch.tensor([[gc.start] + g["tokens"][:4] + [gc.pad] * (4 - len(g["tokens"][:4]))
                               for g in gold["greedy"]])
        with torch.no_grad():
            l1, l2 = m_st.logits(prefix, enc1, mask), m_bin.logits(prefix, enc2, mask)
        expect(torch.equal(l1, l2), f"{name}: safetensors and bin logits differ")
        pr = gold["probe"]
        e0, k0 = G.encode_batch(m_st, [srcs[0]], gc.pad)
        with torch.no_grad():
            pl = m_st.logits(torch.tensor([pr["decoder_input_ids"]]), e0, k0)[0, -1]
        expect(float((pl - torch.tensor(pr["last_position_logits"], dtype=torch.float64)).abs().max()) < 1e-7,
               f"{name}: probe logits do not reproduce")
        for fmt in ("safetensors", "bin"):  # the independent numpy forward, from the files alone
            for i in (0, len(srcs) - 1):
                pre = gold["greedy"][i]["sequence"][:4]
                e, k = G.encode_batch(m_st, [srcs[i]], gc.pad)
                with torch.no_grad():
                    ref = m_st.logits(torch.tensor([pre]), e, k)[0, -1].numpy()
                alt = numpy_check.last_logits(os.path.join(root, name, fmt), srcs[i], pre)
                # m2m100's float32 sinusoid table: numpy's and torch's float32 sin differ by
                # an ulp, ~1e-7 in the logits; any wiring slip is orders of magnitude larger
                tol = 1e-6 if name == "m2m100" else 1e-9
                expect(float(abs(ref - alt).max()) < tol,
                       f"{name} {fmt}: numpy forward differs from torch by {float(abs(ref - alt).max()):.3g}")
        for label, model, dtype_tol in (("f64 safetensors", m_st, 1e-9), ("f64 bin", m_bin, 1e-9),
                                        ("f32 safetensors", load(root, name, "safetensors", torch.float32)[0], 1e-4)):
            alone_g = [G.greedy(model, gc, [s])[0] for s in srcs]
            alone_b = [G.beam_search(model, gc, [s], BEAMS)[0] for s in srcs]
            batch_g = G.greedy(model, gc, srcs)
            batch_b = G.beam_search(model, gc, srcs, BEAMS)
            for i, (gg, gb) in enumerate(zip(gold["greedy"], gold["beam"]["results"])):
                for how, rg, rb in (("alone", alone_g[i], alone_b[i]), ("batched", batch_g[i], batch_b[i])):
                    expect(rg["tokens"] == gg["tokens"] and rg["finish_reason"] == gg["finish_reason"],
                           f"{name} {label} {how}: greedy source {i} {rg['tokens']} != {gg['tokens']}")
                    expect(max(abs(a - b) for a, b in zip(rg["logprobs"], gg["logprobs"])) < dtype_tol + 1e-8,
                           f"{name} {label} {how}: greedy log-probs source {i}")
                    expect(rb["tokens"] == gb["tokens"], f"{name} {label} {how}: beam source {i} "
                           f"{rb['tokens']} != {gb['tokens']}")
                    expect(abs(rb["score"] - gb["score"]) < dtype_tol + 1e-8,
                           f"{name} {label} {how}: beam score source {i} {rb['score']} vs {gb['score']}")
        # the generation options must matter: without them some output changes
        idle = options_matter(root, name, srcs, gold["greedy"], gold["beam"]["results"])
        expect(not idle, f"{name}: generation options {idle} change no output")
        if gc.forced_bos is not None:
            expect(all(g["tokens"][0] == gc.forced_bos for g in gold["greedy"]), f"{name}: forced BOS missing")
        print(f"{name}: ok ({len(srcs)} sources; greedy+beam, both formats, f64+f32, alone+batched)")

    # bad input: clear errors, not crashes
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "m")
        shutil.copytree(os.path.join(root, "bart", "safetensors"), d)
        p = os.path.join(d, "model.safetensors")
        blob = open(p, "rb").read()
        for what, data in (("truncated", blob[:len(blob) // 2]), ("tiny", blob[:4]),
                           ("bad header", blob[:8] + b"x" * 16)):
            open(p, "wb").write(data)
            try:
                load(tmp, "m", "")
                expect(False, f"{what} safetensors accepted")
            except hr.CheckpointError as e:
                expect("model.safetensors" in str(e), f"{what}: error does not name the file: {e}")
        sd, _ = safetensors_io.read(os.path.join(root, "bart", "safetensors", "model.safetensors"))
        del sd["model.encoder.layers.1.fc2.bias"]
        safetensors_io.write(p, sd)
        try:
            load(tmp, "m", "")
            expect(False, "missing tensor accepted")
        except hr.CheckpointError as e:
            expect("model.encoder.layers.1.fc2.bias" in str(e), f"missing tensor error: {e}")
        # a torch file that would run code on unpickling, a foreign model_type, a missing key
        b = os.path.join(tmp, "b")
        shutil.copytree(os.path.join(root, "bart", "bin"), b)
        torch.save({"x": _Gadget()}, os.path.join(b, "pytorch_model.bin"))
        cfg_path = os.path.join(b, "config.json")
        cfg = json.load(open(cfg_path))
        for what, mutate, needle in (
                ("pickled object", lambda c: c, "weights-only"),
                ("model_type", lambda c: dict(c, model_type="gpt2"), "model_type"),
                ("missing d_model", lambda c: {k: v for k, v in c.items() if k != "d_model"}, "d_model")):
            write_json(cfg_path, mutate(cfg))
            if what != "pickled object":
                shutil.copy(os.path.join(root, "bart", "bin", "pytorch_model.bin"), b)
            try:
                load(tmp, "b", "")
                expect(False, f"{what} accepted")
            except hr.CheckpointError as e:
                expect(needle in str(e), f"{what}: error does not say {needle!r}: {e}")
    if fails:
        print(f"{len(fails)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(here, "tests", "data", "hf"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.check:
        return check(a.out)
    os.makedirs(a.out, exist_ok=True)
    generate(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
