"""Hugging Face encoder-decoder checkpoints (marian, t5, bart, mbart, m2m100) -> attnserve
model directories, as FORMAT_SPEC / docs/convert.md specify. Entry point:
scripts/attnserve-convert; library use: convert(model_dir, out_dir, dtype, force)."""

from .convert import convert, plan  # noqa: F401
from .errors import ConvertError  # noqa: F401
