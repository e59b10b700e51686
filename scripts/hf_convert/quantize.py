"""--quantization: the weights the engine's int8 and bfloat16 compute types convert at load,
stored already converted (docs/model-format.md, "Quantized tensors").

int8 follows engine/ops/quantize.cc's QuantizeRowInt8 operation for operation in float32,
so that the engine, quantizing the stored values again at pack time, gets back exactly the
stored integers: amax = max |v| of the row; a row whose amax is 0 or subnormal (or holds a
non-finite value: refused here, as cast() refuses it) is all zeros with scale 0; else
q = round_half_even(v * (127 / amax)) clamped to [-127, 127], scale = amax / 127."""

import re

import torch

from .errors import ConvertError

QUANTIZATIONS = ("none", "int8", "bfloat16")

# attnserve tensor names (docs/model-format.md) of the matrices the compute types convert:
# every linear weight, and the token tables (with the output projection) unless kept float.
_LINEAR = re.compile(r"^(encoder|decoder)\.layers\.\d+\."
                     r"(self_attn|cross_attn)\.[qkvo]_proj\.weight$|"
                     r"^(encoder|decoder)\.layers\.\d+\.ffn\.(fc1|fc1_linear|fc2)\.weight$")
_TABLES = ("shared.embed.weight", "encoder.embed.weight", "decoder.embed.weight",
           "lm_head.weight")
SCALE_SUFFIX = "_scale"


def quantized_names(names, float32_embeddings):
    return [n for n in names
            if _LINEAR.match(n) or (n in _TABLES and not float32_embeddings)]


def int8_rows(w):
    """(q int8 [rows, cols], scale float32 [rows]) of a float32 matrix."""
    w = w.to(torch.float32)
    amax = w.abs().amax(dim=1)
    tiny = torch.finfo(torch.float32).tiny
    live = amax >= tiny
    safe = torch.where(live, amax, torch.ones_like(amax))
    inverse = torch.full_like(safe, 127.0) / safe  # one float32 division, as 127.0f / amax
    q = torch.round(w * inverse[:, None]).clamp_(-127, 127)  # round: half to even
    q = torch.where(live[:, None], q, torch.zeros_like(q)).to(torch.int8)
    scale = torch.where(live, amax / torch.full_like(amax, 127.0), torch.zeros_like(amax))
    return q, scale


def check(quantization):
    if quantization not in QUANTIZATIONS:
        raise ConvertError(f"--quantization {quantization!r} is not one of "
                           f"{', '.join(QUANTIZATIONS)}")


def convert(tensors, quantization, float32_embeddings):
    """{name: tensor} of the converted matrices only (int8: NAME and NAME_scale each), to
    store in place of the originals. `quantization` is checked (check()) by the caller."""
    out = {}
    if quantization == "none":
        return out
    for name in quantized_names(tensors, float32_embeddings):
        w = tensors[name]
        if quantization == "bfloat16":
            out[name] = w.to(torch.float32).to(torch.bfloat16)
            continue
        if name + SCALE_SUFFIX in tensors:
            raise ConvertError(f"tensor {name + SCALE_SUFFIX}: already in the model, where "
                               f"the int8 scales of {name} would go")
        out[name], out[name + SCALE_SUFFIX] = int8_rows(w)
    return out
