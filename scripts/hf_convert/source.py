"""Reads a Hugging Face checkpoint directory: config.json, generation_config.json and the
weights (model.safetensors preferred, else pytorch_model.bin). A .bin is read only with
torch.load(weights_only=True), so no pickled code ever runs."""

import json
import os
import zipfile

import torch

from hf_reference import safetensors_io

from .errors import ConvertError

SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot be read as JSON: {e}") from None
    if not isinstance(d, dict):
        raise ConvertError(f"{path}: not a JSON object")
    return d


def read_configs(model_dir):
    """(config dict, generation_config dict or {})."""
    if not os.path.isdir(model_dir):
        raise ConvertError(f"{model_dir}: not a directory")
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        raise ConvertError(f"{model_dir}: no config.json")
    cfg = read_json(path)
    gpath = os.path.join(model_dir, "generation_config.json")
    gen = read_json(gpath) if os.path.exists(gpath) else {}
    return cfg, gen


def read_state_dict(model_dir):
    """({name: tensor}, file name). Sharded checkpoints are refused: an index means the
    weights are split over several files, and a model.safetensors beside one would be
    ambiguous."""
    for name in SHARD_INDEXES:
        if os.path.exists(os.path.join(model_dir, name)):
            raise ConvertError(f"{model_dir}: sharded checkpoints ({name}) are not supported; "
                               "merge the shards into one model.safetensors first")
    st = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(st):
        try:
            sd, _ = safetensors_io.read(st)
        except (safetensors_io.FormatError, OSError) as e:
            raise ConvertError(str(e)) from None
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            # a header whose entries have the wrong JSON types (e.g. "shape": 5)
            raise ConvertError(f"{st}: malformed safetensors header: {e}") from None
        return sd, "model.safetensors"
    pt = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(pt):
        return _read_torch(pt), "pytorch_model.bin"
    raise ConvertError(f"{model_dir}: neither model.safetensors nor pytorch_model.bin")


def _read_torch(path):
    # torch.load falls back to the legacy (pre-zip) pickle format for other files; refuse
    # those up front so the only reader that ever runs is the weights-only zip reader.
    if not zipfile.is_zipfile(path):
        raise ConvertError(f"{path}: not a torch zip archive (legacy or corrupt .bin files "
                           "are not supported)")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  torch raises many kinds (zip, unpickling refusal)
        msg = " ".join(str(e).split())[:300]
        raise ConvertError(f"{path}: cannot be read as a weights-only torch file: {msg}") from None
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in sd.items()):
        raise ConvertError(f"{path}: not a flat {{name: tensor}} state dict")
    return dict(sd)
