"""Which tokenizer files a checkpoint ships, copied verbatim, and the attnserve "tokenizer"
family they make (FORMAT_SPEC's "tokenizer" row)."""

import json
import os

from .errors import ConvertError

FILES = ("source.spm", "target.spm", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
         "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")

# family -> the files its tokenizer cannot work without
REQUIRED = {
    "marian": ("source.spm", "target.spm", "vocab.json"),
    "sentencepiece": ("spiece.model",),
    "mbart": ("sentencepiece.bpe.model",),
    "nllb": ("sentencepiece.bpe.model",),
    "m2m100": ("sentencepiece.bpe.model", "vocab.json"),
    "bart": ("vocab.json", "merges.txt"),
}


def present(model_dir):
    return [f for f in FILES if os.path.isfile(os.path.join(model_dir, f))]


def _tokenizer_class(model_dir):
    path = os.path.join(model_dir, "tokenizer_config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cls = json.load(f).get("tokenizer_class")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
        raise ConvertError(f"{path}: cannot be read as a JSON object: {e}") from None
    return cls if isinstance(cls, str) else None


def config_keys(model_type, model_dir, files):
    """The "tokenizer" (and "vocab_file") config keys, {} when the checkpoint ships no
    tokenizer file. A family whose files are only partly there is an error: the server
    would otherwise fail at startup, or serve a model without its tokenizer."""
    if not files:
        return {}
    family = {"marian": "marian", "t5": "sentencepiece", "mbart": "mbart", "m2m100": "m2m100",
              "bart": "bart"}[model_type]
    if model_type == "m2m100" and (_tokenizer_class(model_dir) or "").startswith("Nllb"):
        family = "nllb"
    missing = [f for f in REQUIRED[family] if f not in files]
    if missing:
        raise ConvertError(f"{model_dir}: tokenizer \"{family}\" needs {', '.join(missing)}, "
                           f"which the checkpoint lacks (it has {', '.join(files)})")
    keys = {"tokenizer": family}
    if family == "sentencepiece":
        keys["vocab_file"] = "spiece.model"
    return keys
