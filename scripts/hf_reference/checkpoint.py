"""Loads a Hugging Face checkpoint directory exactly as save_pretrained writes it:
config.json, generation_config.json (optional), and model.safetensors or pytorch_model.bin.
pytorch_model.bin is read with torch.load(weights_only=True): no pickled code runs."""

import json
import os

import torch

from . import safetensors_io

SUPPORTED = ("marian", "t5", "bart", "mbart", "m2m100")


class CheckpointError(ValueError):
    pass


def read_json(path):
    try:
        with open(path) as f:
            d = json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not JSON: {e}") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return d


def load_state_dict(model_dir):
    """{name: tensor} from model.safetensors if present, else pytorch_model.bin. Sharded
    checkpoints (*.index.json) are not handled."""
    st = os.path.join(model_dir, "model.safetensors")
    pt = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(st):
        try:
            sd, _ = safetensors_io.read(st)
        except safetensors_io.FormatError as e:
            raise CheckpointError(str(e)) from None
        return sd, "safetensors"
    if os.path.exists(pt):
        try:
            sd = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises a variety here (zip, unpickling refusal)
            raise CheckpointError(f"{pt}: cannot be read as a weights-only torch file: {e}")
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{pt}: not a flat {{name: tensor}} state dict")
        return dict(sd), "bin"
    for name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if os.path.exists(os.path.join(model_dir, name)):
            raise CheckpointError(f"{model_dir}: sharded checkpoints ({name}) are not supported")
    raise CheckpointError(f"{model_dir}: neither model.safetensors nor pytorch_model.bin")


def load(model_dir):
    """(config dict, generation_config dict ({} if absent), state dict, format)."""
    cfg_path = os.path.join(model_dir, "config.json")
    if not os.path.exists(cfg_path):
        raise CheckpointError(f"{model_dir}: no config.json")
    cfg = read_json(cfg_path)
    mt = cfg.get("model_type")
    if mt not in SUPPORTED:
        raise CheckpointError(f"{cfg_path}: model_type {mt!r} is not one of {SUPPORTED}")
    gpath = os.path.join(model_dir, "generation_config.json")
    gen = read_json(gpath) if os.path.exists(gpath) else {}
    sd, fmt = load_state_dict(model_dir)
    return cfg, gen, sd, fmt


def resolve_alias(sd, names, what):
    """The one tensor stored under any of `names` (tied weights are stored once, under any
    alias). Several present must be equal, else the checkpoint is ambiguous."""
    found = [(n, sd[n]) for n in names if n in sd]
    if not found:
        raise CheckpointError(f"missing {what}: none of {names} in the checkpoint")
    first_name, first = found[0]
    for n, t in found[1:]:
        if t.shape != first.shape or not torch.equal(t, first):
            raise CheckpointError(f"tied tensors {first_name} and {n} differ on disk")
    return first


def take(sd, name, shape, used):
    if name not in sd:
        raise CheckpointError(f"missing tensor {name}")
    t = sd[name]
    if tuple(t.shape) != tuple(shape):
        raise CheckpointError(f"tensor {name}: shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not t.is_floating_point():
        raise CheckpointError(f"tensor {name}: dtype {t.dtype} is not floating point")
    used.add(name)
    return t
