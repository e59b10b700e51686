"""attnserve-convert's command line. Failures are one line on stderr and exit status 2."""

import argparse
import sys

from .convert import convert
from .quantize import QUANTIZATIONS
from .errors import ConvertError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage too; keep the one-line contract
        sys.stderr.write(f"attnserve-convert: error: {message}\n")
        sys.exit(2)


def main(argv=None):
    p = _Parser(prog="attnserve-convert",
                description="Write an attnserve model directory from a Hugging Face "
                            "checkpoint directory (docs/convert.md).")
    p.add_argument("--model", required=True, help="the Hugging Face checkpoint directory")
    p.add_argument("--output_dir", required=True, help="the attnserve model directory to write")
    p.add_argument("--dtype", default="float32", choices=("float32", "float16", "bfloat16"),
                   help="stored dtype of model.safetensors (default float32)")
    p.add_argument("--quantization", default="none", choices=QUANTIZATIONS,
                   help="store the linear weights and token tables as the int8 / bfloat16 "
                        "compute types use them (default none)")
    p.add_argument("--float32_embeddings", action="store_true",
                   help="with --quantization: keep the token tables and the output "
                        "projection in --dtype")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty output directory")
    a = p.parse_args(argv)
    try:
        cfg = convert(a.model, a.output_dir, a.dtype, a.force, a.quantization,
                      a.float32_embeddings)
    except ConvertError as e:
        sys.stderr.write(f"attnserve-convert: error: {e}\n")
        return 2
    except OSError as e:
        sys.stderr.write(f"attnserve-convert: error: {e}\n")
        return 2
    print(f"wrote {a.output_dir} ({cfg['encoder_layers']}+{cfg['decoder_layers']} layers, "
          f"d_model {cfg['d_model']}, vocab {cfg['vocab_size']}, {a.dtype}"
          + (f", {a.quantization} weights" if a.quantization != "none" else "") + ")")
    return 0
