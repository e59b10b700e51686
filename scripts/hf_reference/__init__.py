"""PyTorch reference for Hugging Face encoder-decoder checkpoints (marian, t5, bart, mbart,
m2m100): loading as save_pretrained writes them, forward passes and HF-semantics greedy and
beam search. See docs/hf-reference.md."""

from .checkpoint import CheckpointError, load  # noqa: F401
from .generate import GenConfig, beam_search, greedy  # noqa: F401
from .models import DEFAULTS, build  # noqa: F401


def load_model(model_dir, dtype=None, **gen_override):
    """(model, GenConfig, format) for a checkpoint directory."""
    import torch
    cfg, gen, sd, fmt = load(model_dir)
    model = build(cfg, sd, dtype or torch.float32)
    return model, GenConfig(cfg, gen, DEFAULTS[cfg["model_type"]], **gen_override), fmt
