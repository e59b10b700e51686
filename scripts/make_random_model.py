#!/usr/bin/python3
"""Writes a randomly initialised model directory in attnserve's format (config.json +
model.safetensors), for benchmarks and smoke tests.

    /usr/bin/python3 scripts/make_random_model.py --preset base --out /tmp/attnserve-base [--seed 0]
    /usr/bin/python3 scripts/make_random_model.py --preset tiny --out /tmp/attnserve-tiny

Presets:
  base  d_model 512, 8 heads, 6+6 layers, ffn 2048, vocab 32000, max_positions 1024, post-norm,
        ReLU, one shared embedding table tied to the output (the "Transformer base" shape;
        ~60M parameters, a ~240 MB file: do not commit it, write it outside the repo)
  tiny  d_model 64, 4 heads, 2+2 layers, ffn 256, vocab 1000, max_positions 256, otherwise
        like base (a ~1 MB file, seconds to write)

Weights come from attnserve_export.init_weights (seeded, every tensor non-trivial, attention
not uniform). The model is untrained: its outputs are arbitrary and it may emit EOS early or
never; benchmarks should force the output length (the engine's ignore_eos) or, through the
server, make EOS unreachable with --eos_embed_scale 0.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnserve_export as ax  # noqa: E402

COMMON = dict(norm_placement="post", activation="relu", positional_encoding="sinusoidal",
              scale_embedding=True, tie_output_embedding=True)
PRESETS = {
    "base": dict(d_model=512, num_heads=8, encoder_layers=6, decoder_layers=6, ffn_dim=2048,
                 vocab_size=32000, max_positions=1024, **COMMON),
    "tiny": dict(d_model=64, num_heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=256,
                 vocab_size=1000, max_positions=256, **COMMON),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--out", required=True, help="output model directory (created)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--final_norm", action="store_true",
                    help="add final_norm tensors after each stack (as torch.nn.Transformer has)")
    ap.add_argument("--eos_embed_scale", type=float, default=1.0,
                    help="scale of EOS's output row; 0 makes EOS's logit 0, never the largest of "
                         "32000, so every request runs to max_new_tokens (serving benchmarks)")
    args = ap.parse_args()

    t0 = time.time()
    cfg = ax.make_config(**PRESETS[args.preset])
    model = ax.EncoderDecoder(cfg, shared_embeddings=True, final_norm=args.final_norm)
    ax.init_weights(model, seed=args.seed, eos_embed_scale=args.eos_embed_scale)
    ax.export(model, cfg, args.out)
    params = sum(p.numel() for p in model.parameters())
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"wrote {args.out}: preset {args.preset}, seed {args.seed}, {params / 1e6:.1f}M "
          f"parameters, model.safetensors {size / 2**20:.1f} MiB, {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
