#!/usr/bin/python3
"""Writes a random Hugging Face checkpoint directory (config.json, generation_config.json,
model.safetensors, F32) of a real model's shape, for benchmarks (scripts/benchmark_hf.sh).

    /usr/bin/python3 scripts/make_random_hf_model.py --shape opus-mt --out /tmp/opus-mt-random
    /usr/bin/python3 scripts/make_random_hf_model.py --shape t5-small --out DIR --layers 2 --vocab 1000

Shapes (all d_model 512, 8 heads of 64, 6+6 layers, FFN 2048, so that they differ from
make_random_model.py's "base" model only where the family does):
  t5-small       T5 v1.0 as google-t5/t5-small: relu FFN, relative position bias (32 buckets,
                 max distance 128), RMSNorm, no biases, tied head (rescaled by d_model^-0.5),
                 vocab 32128
  t5-v1_1-small  t5-small's shape with T5 v1.1's FFN and head: gated-gelu (a third FFN matrix)
                 and an untied lm_head. (google/t5-v1_1-small itself is narrower and deeper:
                 d_ff 1024, 6 heads, 8+8 layers; this shape keeps the base model's sizes so the
                 comparison isolates the gated FFN.)
  opus-mt        Marian as Helsinki-NLP/opus-mt-*: swish, scale_embedding, post-norm with
                 biases, sinusoidal positions stored in the file, final_logits_bias, one table
                 shared by encoder, decoder and head, vocab 58101, pad 58100

--layers / --vocab shrink a shape for quick runs (every stack gets --layers layers; ids in the
generation config that --vocab moves, opus-mt's pad, move with it).

Names, tying and the on-disk layout are make_hf_checkpoints.py's (random_weights and
write_hf_dir, shared with the test checkpoints), with its scaling: linears N(0, gain^2/fan_in),
norms' gains around 1, the sublayers' output projections amplified so that a random model's
output depends on its input rather than copying the input token. --check decodes a few
sources with scripts/hf_reference (float32) and fails unless the logits are finite and the
greedy outputs differ between sources.
"""

import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hr  # noqa: E402
import make_hf_checkpoints as mhc  # noqa: E402
from hf_reference import generate as G  # noqa: E402

T5_COMMON = dict(model_type="t5", architectures=["T5ForConditionalGeneration"], d_model=512,
                 d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
                 vocab_size=32128, relative_attention_num_buckets=32,
                 relative_attention_max_distance=128, layer_norm_epsilon=1e-6, dropout_rate=0.1,
                 initializer_factor=1.0, n_positions=512, pad_token_id=0, eos_token_id=1,
                 decoder_start_token_id=0, is_encoder_decoder=True, use_cache=True)
# {shape: (config.json, generation_config.json, random_weights' gains)}; "PAD" is replaced by
# vocab - 1 (Marian's pad is its last id). The gains are the tiny test families' except where
# d_model 512 needs others (tried with --check at 2 and 6 layers): T5's tied table at std 0.25,
# not 2.5 (a tied head dots the decoder's own input embedding with itself, a term that grows
# with d_model, and the model then repeats its start token), and cross-attention twice as
# strong (else one token wins for every source); Marian's sqrt(d_model)-scaled table at
# std 0.125, so that scaled it is as large as in the d_model-32 test model (0.5 * sqrt(32)),
# and its cross-attention 6x the sublayer gain: with 58101 tied rows a weaker source left one
# token the winner for most sources.
SHAPES = {
    "t5-small": (dict(T5_COMMON, feed_forward_proj="relu", tie_word_embeddings=True),
                 dict(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0),
                 dict(emb_std=0.25, cross_gain=2.0)),
    "t5-v1_1-small": (dict(T5_COMMON, feed_forward_proj="gated-gelu", tie_word_embeddings=False),
                      dict(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0), dict()),
    "opus-mt": (dict(model_type="marian", architectures=["MarianMTModel"], d_model=512,
                     encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                     decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048,
                     vocab_size=58101, decoder_vocab_size=58101, activation_function="swish",
                     scale_embedding=True, max_position_embeddings=512, pad_token_id="PAD",
                     eos_token_id=0, decoder_start_token_id="PAD", forced_eos_token_id=0,
                     share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
                     static_position_embeddings=True, normalize_embedding=False,
                     normalize_before=False, add_final_layer_norm=False, is_encoder_decoder=True,
                     dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, use_cache=True),
                dict(bad_words_ids=[["PAD"]], decoder_start_token_id="PAD", eos_token_id=0,
                     forced_eos_token_id=0, pad_token_id="PAD", max_length=512, num_beams=4),
                dict(emb_std=0.125, cross_gain=6.0)),
}
LAYER_KEYS = ("num_layers", "num_decoder_layers", "encoder_layers", "decoder_layers")
VOCAB_KEYS = ("vocab_size", "decoder_vocab_size")


def shape_config(shape, layers=None, vocab=None):
    """(config.json, generation_config.json) of a shape, with the overrides applied."""
    cfg, gen, _ = copy.deepcopy(SHAPES[shape])
    for k in LAYER_KEYS:
        if layers is not None and k in cfg:
            cfg[k] = layers
    for k in VOCAB_KEYS:
        if vocab is not None and k in cfg:
            cfg[k] = vocab
    pad = cfg["vocab_size"] - 1

    def fill(v):
        if isinstance(v, list):
            return [fill(x) for x in v]
        return pad if v == "PAD" else v
    cfg = {k: fill(v) for k, v in cfg.items()}
    gen = {k: fill(v) for k, v in gen.items()}
    return cfg, gen


def check(out, seed):
    """Finite logits and greedy outputs that depend on the source (hf_reference, float32)."""
    model, gc, _ = hr.load_model(out, torch.float32, max_new_tokens=8)
    vocab = model.cfg["vocab_size"]
    g = torch.Generator().manual_seed(seed + 1)
    sources = [[int(x) for x in torch.randint(3, vocab - 1, (12,), generator=g)] + [gc.eos[0]]
               for _ in range(4)]
    enc, mask = G.encode_batch(model, sources, gc.pad)
    with torch.no_grad():
        logits = model.logits(torch.full((len(sources), 1), gc.start), enc, mask)
    if not torch.isfinite(logits).all():
        raise SystemExit(f"{out}: non-finite logits")
    outs = [tuple(r["tokens"]) for r in G.greedy(model, gc, sources)]
    distinct_first = len({o[:1] for o in outs})
    print(f"check: {len(set(outs))}/{len(outs)} distinct greedy outputs, {distinct_first} distinct "
          f"first tokens, logits std {float(logits.std()):.2f}; e.g. {list(outs[0])}")
    if len(set(outs)) < len(outs) - 1 or all(len(set(o)) == 1 for o in outs):
        raise SystemExit(f"{out}: outputs do not vary with the source: {outs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", required=True, help="output checkpoint directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", type=int, help="layers of every stack (default: the shape's 6)")
    ap.add_argument("--vocab", type=int, help="vocabulary size (default: the shape's)")
    ap.add_argument("--check", action="store_true",
                    help="decode a few sources with hf_reference: finite, varying outputs")
    args = ap.parse_args()
    if args.layers is not None and not 1 <= args.layers <= 256:
        ap.error(f"--layers {args.layers}: must be in [1, 256]")
    if args.vocab is not None and not 8 <= args.vocab <= 1 << 22:
        ap.error(f"--vocab {args.vocab}: must be in [8, 4194304]")

    t0 = time.time()
    torch.set_num_threads(1)
    cfg, gen = shape_config(args.shape, args.layers, args.vocab)
    sd = mhc.random_weights(cfg, args.seed, **SHAPES[args.shape][2])
    mhc.write_hf_dir(args.out, cfg, gen, sd, "safetensors")
    params = sum(t.numel() for t in mhc.stored_tensors(cfg, sd, "safetensors").values())
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"wrote {args.out}: shape {args.shape}, seed {args.seed}, {params / 1e6:.1f}M parameters "
          f"stored, model.safetensors {size / 2**20:.1f} MiB, {time.time() - t0:.1f} s")
    if args.check:
        check(args.out, args.seed)


if __name__ == "__main__":
    main()
