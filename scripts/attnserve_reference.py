"""A PyTorch implementation of the attnserve model format WITH the Hugging Face additions
(FORMAT_SPEC / docs/model-format.md): attention_head_dim, norm_kind, linear_bias, gated_ffn,
scale_attention, embedding_norm, positional_encoding sinusoidal / sinusoidal_concat /
sinusoidal_fairseq / learned / none, position_offset, T5's relative attention bias,
output_scale, lm_head.bias, activation gelu_tanh.

Written from the format's text, not from scripts/hf_reference (the thing it is compared
against), so a converted directory decoding like the Hugging Face reference shows that the
converter and the format say the same thing. Dev tool: Debian's python3-torch and numpy.

    import attnserve_reference as ar
    model = ar.load("OUT", torch.float64)        # model.encode / model.logits
    gc = ar.generation_config("OUT")             # hf_reference.GenConfig for decoding
    hf_reference.greedy(model, gc, [[5, 6, 2]])

No KV cache: the decoder runs over the whole prefix each step. Positions follow the format's
incremental rule (decoder token at index t: position_offset + t, or zero if it is pad_id,
for sinusoidal_fairseq), which is what a KV-cached engine computes.
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_reference import safetensors_io  # noqa: E402
from hf_reference.generate import GenConfig  # noqa: E402

ARCHITECTURE = "transformer-encoder-decoder"
# key -> default (None: required; "derived": computed from other keys)
DEFAULTS = dict(
    architecture=None, d_model=None, num_heads=None, encoder_layers=None, decoder_layers=None,
    ffn_dim=None, vocab_size=None, max_positions=1024, activation="relu", norm_placement="post",
    layer_norm_eps=1e-5, scale_embedding=True, positional_encoding="sinusoidal",
    tie_output_embedding=True, pad_id=0, bos_id=1, eos_id=2, decoder_start_id="derived",
    add_eos_to_source=False, attention_head_dim="derived", norm_kind="layer_norm",
    linear_bias=True, gated_ffn=False, scale_attention=True, embedding_norm=False,
    position_offset=0, relative_attention_num_buckets=0, relative_attention_max_distance=128,
    output_scale=1.0)
SERVER_KEYS = ("tokenizer", "vocab_file")
ENUMS = dict(activation=("relu", "gelu", "swish", "gelu_tanh"), norm_placement=("post", "pre"),
             norm_kind=("layer_norm", "rms_norm"),
             positional_encoding=("sinusoidal", "sinusoidal_concat", "sinusoidal_fairseq",
                                  "learned", "none"))
BOOLS = ("scale_embedding", "tie_output_embedding", "add_eos_to_source", "linear_bias",
         "gated_ffn", "scale_attention", "embedding_norm")
ACTS = {
    "relu": F.relu,
    "gelu": lambda x: 0.5 * x * (1 + torch.erf(x / math.sqrt(2.0))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "swish": lambda x: x * torch.sigmoid(x),
}


class FormatError(ValueError):
    pass


def parse_config(raw):
    """config.json dict -> complete config (every key), validated as the format says."""
    unknown = set(raw) - set(DEFAULTS) - set(SERVER_KEYS)
    if unknown:
        raise FormatError(f"config.json: unknown keys {sorted(unknown)}")
    c = {}
    for k, d in DEFAULTS.items():
        if k in raw:
            c[k] = raw[k]
        elif d is None:
            raise FormatError(f"config.json: missing required key {k!r}")
        else:
            c[k] = d
    if c["architecture"] != ARCHITECTURE:
        raise FormatError(f"config.json: architecture must be {ARCHITECTURE!r}")
    if c["decoder_start_id"] == "derived":
        c["decoder_start_id"] = c["bos_id"]
    if c["attention_head_dim"] == "derived":
        if c["d_model"] % c["num_heads"]:
            raise FormatError("config.json: num_heads must divide d_model")
        c["attention_head_dim"] = c["d_model"] // c["num_heads"]
    for k in ("d_model", "num_heads", "encoder_layers", "decoder_layers", "ffn_dim", "vocab_size",
              "max_positions", "attention_head_dim", "relative_attention_max_distance"):
        if isinstance(c[k], bool) or not isinstance(c[k], int) or c[k] < 1:
            raise FormatError(f"config.json: {k} must be a positive integer, got {c[k]!r}")
    for k in ("position_offset", "relative_attention_num_buckets"):
        if isinstance(c[k], bool) or not isinstance(c[k], int) or c[k] < 0:
            raise FormatError(f"config.json: {k} must be a non-negative integer, got {c[k]!r}")
    for k in BOOLS:
        if not isinstance(c[k], bool):
            raise FormatError(f"config.json: {k} must be true or false")
    for k, allowed in ENUMS.items():
        if c[k] not in allowed:
            raise FormatError(f"config.json: {k} {c[k]!r} is not one of {allowed}")
    if c["d_model"] % 2:
        raise FormatError("config.json: d_model must be even")
    if not (isinstance(c["output_scale"], (int, float)) and 0 < c["output_scale"] < math.inf):
        raise FormatError("config.json: output_scale must be finite and > 0")
    for k in ("pad_id", "bos_id", "eos_id", "decoder_start_id"):
        if not 0 <= c[k] < c["vocab_size"]:
            raise FormatError(f"config.json: {k} must be in [0, vocab_size)")
    return c


def sinusoid(positions, d, kind):
    """[..., d] float64 encodings of integer positions. sinusoidal (interleaved) and
    sinusoidal_concat: angles p / 10000^(2i/d); sinusoidal_fairseq: p * exp(-i ln(10000) /
    (d/2 - 1)), [sin | cos]."""
    p = positions.to(torch.float64)[..., None]
    i = torch.arange(d // 2, dtype=torch.float64)
    if kind == "sinusoidal_fairseq":
        freq = torch.exp(-i * math.log(10000.0) / (d // 2 - 1))
    else:
        freq = 1.0 / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * i / d)
    ang = p * freq
    if kind == "sinusoidal":
        return torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(-2)
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def relative_buckets(q_len, k_len, bidirectional, num_buckets, max_distance):
    """T5's buckets of rel = key - query: bidirectional halves the buckets and gives rel > 0
    the upper half; causal uses max(-rel, 0). Distances below half the (per-direction)
    buckets are exact, larger ones logarithmic up to max_distance (float32, truncated)."""
    rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
    nb = num_buckets
    base = torch.zeros_like(rel)
    if bidirectional:
        nb //= 2
        base = (rel > 0).long() * nb
        r = rel.abs()
    else:
        r = torch.clamp(-rel, min=0)
    exact = nb // 2
    rf = torch.clamp(r, min=1).to(torch.float32)  # r = 0 is exact; avoids log(0)
    large = exact + (torch.log(rf / exact) / math.log(max_distance / exact) * (nb - exact)).long()
    large = torch.clamp(large, max=nb - 1)
    return base + torch.where(r < exact, r, large)


class Model:
    def __init__(self, cfg, tensors, dtype=torch.float64, strict=False):
        self.c, self.dtype = cfg, dtype
        c = cfg
        D, V, F_, H = c["d_model"], c["vocab_size"], c["ffn_dim"], c["num_heads"]
        self.D, self.V, self.H, self.hd = D, V, H, c["attention_head_dim"]
        A = H * self.hd
        used = set()

        def get(name, shape, optional=False):
            if name not in tensors:
                if optional:
                    return None
                raise FormatError(f"missing tensor {name!r} (shape {list(shape)})")
            t = tensors[name]
            if tuple(t.shape) != tuple(shape):
                raise FormatError(f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)}")
            used.add(name)
            return t.to(dtype)

        rms = c["norm_kind"] == "rms_norm"

        def norm(name, optional=False):
            w = get(name + ".weight", (D,), optional)
            if w is None:
                return None
            return (w, None if rms else get(name + ".bias", (D,)))

        bias = c["linear_bias"]

        def lin(name, out, inp):
            return (get(name + ".weight", (out, inp)), get(name + ".bias", (out,)) if bias else None)

        def attn(name):
            return dict(q=lin(name + ".q_proj", A, D), k=lin(name + ".k_proj", A, D),
                        v=lin(name + ".v_proj", A, D), o=lin(name + ".o_proj", D, A))

        def ffn(name):
            f = dict(fc1=lin(name + ".fc1", F_, D), fc2=lin(name + ".fc2", D, F_))
            if c["gated_ffn"]:
                f["fc1_linear"] = lin(name + ".fc1_linear", F_, D)
            return f

        shared = "shared.embed.weight" in tensors
        if shared and ("encoder.embed.weight" in tensors or "decoder.embed.weight" in tensors):
            raise FormatError("both shared.embed.weight and encoder/decoder.embed.weight")
        if shared:
            self.enc_emb = self.dec_emb = get("shared.embed.weight", (V, D))
        else:
            self.enc_emb = get("encoder.embed.weight", (V, D))
            self.dec_emb = get("decoder.embed.weight", (V, D))
        self.out_w = self.dec_emb if c["tie_output_embedding"] else get("lm_head.weight", (V, D))
        self.out_b = get("lm_head.bias", (V,), optional=True)
        pre = c["norm_placement"] == "pre"
        self.stacks = {}
        for side in ("encoder", "decoder"):
            s = dict(layers=[])
            for i in range(c[f"{side}_layers"]):
                p = f"{side}.layers.{i}"
                L = dict(self_attn=attn(p + ".self_attn"), self_norm=norm(p + ".self_attn_norm"),
                         ffn=ffn(p + ".ffn"), ffn_norm=norm(p + ".ffn_norm"))
                if side == "decoder":
                    L["cross_attn"] = attn(p + ".cross_attn")
                    L["cross_norm"] = norm(p + ".cross_attn_norm")
                s["layers"].append(L)
            s["final_norm"] = norm(side + ".final_norm", optional=not pre)
            s["embed_norm"] = norm(side + ".embed_norm") if c["embedding_norm"] else None
            if c["positional_encoding"] == "learned":
                s["positions"] = get(side + ".embed_positions.weight", (c["max_positions"], D))
            nb = c["relative_attention_num_buckets"]
            s["rel"] = get(side + ".relative_attention_bias.weight", (nb, H)) if nb else None
            self.stacks[side] = s
        unused = sorted(set(tensors) - used)
        if strict and unused:
            raise FormatError(f"tensors the model does not use: {unused[:5]}")
        self.unused = unused
        self.act = ACTS[c["activation"]]

    # --- blocks ---------------------------------------------------------------------------
    def _norm(self, x, n):
        w, b = n
        if self.c["norm_kind"] == "rms_norm":
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["layer_norm_eps"]) * w
        return F.layer_norm(x, (self.D,), w, b, self.c["layer_norm_eps"])

    def _attn(self, a, x, kv, mask, rel_bias=None):
        N, T, _ = x.shape
        split = lambda t: t.view(N, t.shape[1], self.H, self.hd).transpose(1, 2)
        q, k, v = (split(F.linear(inp, *a[n])) for n, inp in (("q", x), ("k", kv), ("v", kv)))
        s = q @ k.transpose(-1, -2)
        if self.c["scale_attention"]:
            s = s / math.sqrt(self.hd)
        if rel_bias is not None:
            s = s + rel_bias
        s = s.masked_fill(~mask, -math.inf)
        o = torch.softmax(s, dim=-1) @ v
        return F.linear(o.transpose(1, 2).reshape(N, T, self.H * self.hd), *a["o"])

    def _ffn(self, f, x):
        h = self.act(F.linear(x, *f["fc1"]))
        if self.c["gated_ffn"]:
            h = h * F.linear(x, *f["fc1_linear"])
        return F.linear(h, *f["fc2"])

    def _sub(self, x, n, fn):
        if self.c["norm_placement"] == "pre":
            return x + fn(self._norm(x, n))
        return self._norm(x + fn(x), n)

    def _rel(self, side, T, S):
        table = self.stacks[side]["rel"]
        if table is None:
            return None
        b = relative_buckets(T, S, side == "encoder", self.c["relative_attention_num_buckets"],
                             self.c["relative_attention_max_distance"])
        return table[b].permute(2, 0, 1)[None]  # [1, H, T, S]

    def _embed(self, side, ids):
        c = self.c
        N, T = ids.shape
        if T > c["max_positions"]:
            raise ValueError(f"sequence of {T} tokens exceeds max_positions {c['max_positions']}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.V):
            raise ValueError(f"token id outside [0, {self.V})")
        table = self.enc_emb if side == "encoder" else self.dec_emb
        x = table[ids] * (math.sqrt(self.D) if c["scale_embedding"] else 1.0)
        kind = c["positional_encoding"]
        t = torch.arange(T)[None].expand(N, T)
        if kind == "learned":
            x = x + self.stacks[side]["positions"][t]
        elif kind == "sinusoidal_fairseq":
            keep = ids != c["pad_id"]
            # encoder: the k-th non-pad token (from 0); decoder: its index (incremental rule)
            k = torch.cumsum(keep.long(), 1) - 1 if side == "encoder" else t
            x = x + sinusoid(c["position_offset"] + k, self.D, kind).to(self.dtype) * keep[..., None]
        elif kind != "none":
            x = x + sinusoid(c["position_offset"] + t, self.D, kind).to(self.dtype)
        en = self.stacks[side]["embed_norm"]
        return self._norm(x, en) if en is not None else x

    # --- the interface hf_reference.generate decodes with -------------------------------
    def encode(self, ids, mask):
        """ids [N,S], mask [N,S] (1 = real token) -> encoder states [N,S,D]."""
        S = ids.shape[1]
        keys = mask.bool()[:, None, None, :]
        rel = self._rel("encoder", S, S)
        x = self._embed("encoder", ids)
        st = self.stacks["encoder"]
        for L in st["layers"]:
            x = self._sub(x, L["self_norm"], lambda h: self._attn(L["self_attn"], h, h, keys, rel))
            x = self._sub(x, L["ffn_norm"], lambda h: self._ffn(L["ffn"], h))
        return self._norm(x, st["final_norm"]) if st["final_norm"] is not None else x

    def logits(self, dec_ids, enc, mask):
        """dec_ids [N,T] (decoder start first) -> logits [N,T,V]."""
        T = dec_ids.shape[1]
        causal = torch.tril(torch.ones(T, T, dtype=torch.bool))[None, None]
        keys = mask.bool()[:, None, None, :]
        rel = self._rel("decoder", T, T)
        x = self._embed("decoder", dec_ids)
        st = self.stacks["decoder"]
        for L in st["layers"]:
            x = self._sub(x, L["self_norm"], lambda h: self._attn(L["self_attn"], h, h, causal, rel))
            x = self._sub(x, L["cross_norm"], lambda h: self._attn(L["cross_attn"], h, enc, keys))
            x = self._sub(x, L["ffn_norm"], lambda h: self._ffn(L["ffn"], h))
        if st["final_norm"] is not None:
            x = self._norm(x, st["final_norm"])
        return F.linear(x * self.c["output_scale"], self.out_w, self.out_b)


def read_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return parse_config(json.load(f))


def load(model_dir, dtype=torch.float64, strict=False):
    cfg = read_config(model_dir)
    tensors, _ = safetensors_io.read(os.path.join(model_dir, "model.safetensors"))
    return Model(cfg, tensors, dtype, strict)


def generation_config(model_dir, **override):
    """generation_config.json of an attnserve directory, falling back to config.json's
    decoder_start_id / eos_id / pad_id (FORMAT_SPEC), as hf_reference's GenConfig."""
    c = read_config(model_dir)
    path = os.path.join(model_dir, "generation_config.json")
    gen = {}
    if os.path.exists(path):
        with open(path) as f:
            gen = json.load(f)
    fallback = dict(decoder_start_token_id=c["decoder_start_id"], eos_token_id=c["eos_id"],
                    pad_token_id=c["pad_id"], bos_token_id=c["bos_id"])
    return GenConfig(fallback, gen, None, **override)
