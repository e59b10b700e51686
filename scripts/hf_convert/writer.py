"""Writes the attnserve model directory: config.json, model.safetensors (through
hf_reference.safetensors_io's writer: names sorted, header padded to 8 bytes),
generation_config.json and the tokenizer files, copied verbatim."""

import json
import os
import shutil

import torch

from hf_reference import safetensors_io

from .errors import ConvertError
from .tokenizer_files import FILES as TOKENIZER_FILES

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
OUTPUTS = ("config.json", "model.safetensors", "generation_config.json") + TOKENIZER_FILES


def cast(tensors, dtype_name):
    """Every tensor in the stored dtype; a value the dtype cannot hold (float16 overflows
    past 65504) is an error rather than an inf in the file."""
    dt = DTYPES[dtype_name]
    out = {}
    for name, t in tensors.items():
        c = t.detach().to(dt).contiguous()
        if not bool(torch.isfinite(c).all()):
            bad = "not finite in the checkpoint" if not bool(torch.isfinite(t).all()) else \
                f"out of {dtype_name}'s range"
            raise ConvertError(f"tensor {name}: values {bad}")
        out[name] = c
    return out


def check_output_dir(out_dir, model_dir, force):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConvertError(f"{out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir):
        if os.path.samefile(out_dir, model_dir):
            raise ConvertError(f"{out_dir}: the output directory is the checkpoint directory")
        if os.listdir(out_dir) and not force:
            raise ConvertError(f"{out_dir}: output directory is not empty (use --force to "
                               "write into it)")


def _json(path, d):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2)
        f.write("\n")


def write(out_dir, model_dir, config, tensors, generation, tokenizer_files):
    os.makedirs(out_dir, exist_ok=True)
    for name in OUTPUTS:  # --force: no stale file of an earlier conversion survives
        p = os.path.join(out_dir, name)
        if os.path.isfile(p) or os.path.islink(p):
            os.remove(p)
    safetensors_io.write(os.path.join(out_dir, "model.safetensors"), tensors,
                         {"format": "pt", "producer": "attnserve scripts/attnserve-convert"})
    if generation is not None:  # an attnserve directory without one stays without
        _json(os.path.join(out_dir, "generation_config.json"), generation)
    for f in tokenizer_files:
        shutil.copyfile(os.path.join(model_dir, f), os.path.join(out_dir, f))
    _json(os.path.join(out_dir, "config.json"), config)  # last: a complete dir has one
