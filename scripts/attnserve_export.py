"""attnserve's model architecture in PyTorch, its exporter/loader, and reference decoding.

Dev tool (Debian's /usr/bin/python3 with python3-torch 1.13 and numpy; no other packages).
The network is built from PyTorch's own modules (nn.TransformerEncoderLayer /
nn.TransformerDecoderLayer), so golden files and peer benchmarks measure PyTorch itself, not a
re-implementation. The model directory written by `export` and read by `load` follows
docs/model-format.md exactly (config.json + model.safetensors, tensor names below).

    import attnserve_export as ax
    cfg = ax.make_config(d_model=32, num_heads=4, encoder_layers=2, decoder_layers=2,
                         ffn_dim=64, vocab_size=50)
    model = ax.EncoderDecoder(cfg, shared_embeddings=True, final_norm=True)
    ax.init_weights(model, seed=0)
    ax.export(model, cfg, "/tmp/m")          # config.json + model.safetensors
    model2 = ax.load("/tmp/m")               # the same weights back in torch
    ax.greedy(model2, [[5, 6, 7]], max_new_tokens=8)
    ax.beam_search(model2, [5, 6, 7], beam_size=4, length_penalty=1.0, max_new_tokens=8)

Decoding recomputes the decoder over the whole prefix each step (nn.TransformerDecoder has no
KV cache); it is a reference, not a fast path.
"""

import collections
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "transformer-encoder-decoder"

# Every config.json key of model-format.md with its default (None = required).
CONFIG_DEFAULTS = collections.OrderedDict([
    ("architecture", ARCHITECTURE),
    ("d_model", None),
    ("num_heads", None),
    ("encoder_layers", None),
    ("decoder_layers", None),
    ("ffn_dim", None),
    ("vocab_size", None),
    ("max_positions", 1024),
    ("activation", "relu"),
    ("norm_placement", "post"),
    ("layer_norm_eps", 1e-5),
    ("scale_embedding", True),
    ("positional_encoding", "sinusoidal"),
    ("tie_output_embedding", True),
    ("pad_id", 0),
    ("bos_id", 1),
    ("eos_id", 2),
    ("decoder_start_id", None),  # defaults to bos_id
    ("add_eos_to_source", False),
])

# Keys added for the server's text path (not the network's); `load` accepts them silently.
TOKENIZER_CONFIG_KEYS = ("tokenizer", "vocab_file")

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "swish": F.silu}  # gelu: erf form
POSITIONAL_ENCODINGS = ("sinusoidal", "sinusoidal_concat")


def make_config(**kwargs):
    """Returns a complete config dict (every key explicit) after validating it."""
    unknown = set(kwargs) - set(CONFIG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config keys: {sorted(unknown)}")
    cfg = collections.OrderedDict()
    for key, default in CONFIG_DEFAULTS.items():
        if key in kwargs:
            cfg[key] = kwargs[key]
        elif key == "decoder_start_id":
            cfg[key] = kwargs.get("bos_id", CONFIG_DEFAULTS["bos_id"])
        elif default is None:
            raise ValueError(f"config: missing required key '{key}'")
        else:
            cfg[key] = default
    validate_config(cfg)
    return cfg


def validate_config(cfg):
    if cfg["architecture"] != ARCHITECTURE:
        raise ValueError(f"config: architecture must be '{ARCHITECTURE}'")
    for key in ("d_model", "num_heads", "encoder_layers", "decoder_layers", "ffn_dim",
                "vocab_size", "max_positions"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"config: {key} must be a positive int, got {cfg[key]!r}")
    if cfg["d_model"] % cfg["num_heads"]:
        raise ValueError("config: d_model must be divisible by num_heads")
    if cfg["positional_encoding"] == "sinusoidal_concat" and cfg["d_model"] % 2:
        raise ValueError("config: positional_encoding sinusoidal_concat needs an even d_model")
    if cfg["activation"] not in ACTIVATIONS:
        raise ValueError(f"config: activation must be one of {sorted(ACTIVATIONS)}")
    if cfg["norm_placement"] not in ("post", "pre"):
        raise ValueError("config: norm_placement must be 'post' or 'pre'")
    if cfg["positional_encoding"] not in POSITIONAL_ENCODINGS:
        raise ValueError(f"config: positional_encoding must be one of {POSITIONAL_ENCODINGS}")
    for key in ("pad_id", "bos_id", "eos_id", "decoder_start_id"):
        if not 0 <= cfg[key] < cfg["vocab_size"]:
            raise ValueError(f"config: {key} must be in [0, vocab_size)")


def sinusoidal_table(max_positions, d_model, layout):
    """[max_positions, d_model] float64 table of model-format.md's positional encodings.

    Frequencies 1/10000^(2i/d) for i in [0, d/2). `sinusoidal`: sin at 2i, cos at 2i+1;
    `sinusoidal_concat`: sin in dims [0, d/2), cos in [d/2, d)."""
    pos = torch.arange(max_positions, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i, i in [0, ceil(d/2))
    angle = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), two_i / d_model)
    pe = torch.zeros(max_positions, d_model, dtype=torch.float64)
    if layout == "sinusoidal":
        pe[:, 0::2] = torch.sin(angle)
        pe[:, 1::2] = torch.cos(angle)[:, : d_model // 2]
    elif layout == "sinusoidal_concat":
        half = d_model // 2
        pe[:, :half] = torch.sin(angle)
        pe[:, half:] = torch.cos(angle)
    else:
        raise ValueError(f"unknown positional encoding {layout!r}")
    return pe


class EncoderDecoder(nn.Module):
    """The attnserve architecture from torch.nn Transformer layers (batch_first, eval mode).

    Structure that config.json does not describe is given here and shows in the tensor names:
      shared_embeddings: one `shared.embed` table for source and target, else
                         `encoder.embed` and `decoder.embed`;
      final_norm:        LayerNorm after each stack (`{encoder,decoder}.final_norm`); required
                         for pre-norm; torch.nn.Transformer has them in post-norm too;
      lm_head_bias:      a `lm_head.bias` added to the logits (tied or untied).
    """

    def __init__(self, cfg, shared_embeddings=True, final_norm=None, lm_head_bias=False):
        super().__init__()
        cfg = make_config(**cfg)
        self.cfg = cfg
        d, heads, eps = cfg["d_model"], cfg["num_heads"], cfg["layer_norm_eps"]
        pre = cfg["norm_placement"] == "pre"
        if final_norm is None:
            final_norm = pre
        if pre and not final_norm:
            raise ValueError("pre-norm models have final norms (model-format.md)")
        self.shared_embeddings = shared_embeddings
        self.has_final_norm = final_norm
        act = ACTIVATIONS[cfg["activation"]]
        common = dict(d_model=d, nhead=heads, dim_feedforward=cfg["ffn_dim"], dropout=0.0,
                      activation=act, layer_norm_eps=eps, batch_first=True, norm_first=pre)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(**common), cfg["encoder_layers"],
            norm=nn.LayerNorm(d, eps=eps) if final_norm else None, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(**common), cfg["decoder_layers"],
            norm=nn.LayerNorm(d, eps=eps) if final_norm else None)
        vocab = cfg["vocab_size"]
        if shared_embeddings:
            self.shared_embed = nn.Embedding(vocab, d)
        else:
            self.encoder_embed = nn.Embedding(vocab, d)
            self.decoder_embed = nn.Embedding(vocab, d)
        self.lm_head = None if cfg["tie_output_embedding"] else nn.Linear(d, vocab, bias=False)
        self.lm_head_bias = nn.Parameter(torch.zeros(vocab)) if lm_head_bias else None
        self.embed_scale = math.sqrt(d) if cfg["scale_embedding"] else 1.0
        # float64 master copy; cast to the activations' dtype when used (not a buffer, so
        # .float()/.double() cannot round it twice).
        self.pe = sinusoidal_table(cfg["max_positions"], d, cfg["positional_encoding"])
        self.eval()

    # --- pieces -------------------------------------------------------------------------
    def source_embedding(self):
        return self.shared_embed if self.shared_embeddings else self.encoder_embed

    def target_embedding(self):
        return self.shared_embed if self.shared_embeddings else self.decoder_embed

    def output_weight(self):  # [vocab, d]
        return self.target_embedding().weight if self.lm_head is None else self.lm_head.weight

    def _embed(self, table, ids):  # ids [batch, time] -> [batch, time, d]
        t = ids.shape[1]
        if t > self.cfg["max_positions"]:
            raise ValueError(f"sequence of {t} tokens exceeds max_positions")
        x = table(ids) * self.embed_scale
        return x + self.pe[:t].to(device=x.device, dtype=x.dtype)

    @staticmethod
    def padding_mask(lengths, max_len):
        """lengths [batch] -> bool [batch, max_len], True at padding (masked keys)."""
        return torch.arange(max_len)[None, :] >= torch.as_tensor(lengths)[:, None]

    # --- forward ------------------------------------------------------------------------
    def encode(self, src, src_lengths=None):
        """src [batch, src_len] ids (padded anyhow past src_lengths) -> (memory [batch,
        src_len, d], memory_key_padding_mask [batch, src_len] bool or None)."""
        mask = None if src_lengths is None else self.padding_mask(src_lengths, src.shape[1])
        memory = self.encoder(self._embed(self.source_embedding(), src),
                              src_key_padding_mask=mask)
        return memory, mask

    def decode(self, prefix, memory, memory_key_padding_mask=None):
        """prefix [batch, t] target ids starting with decoder_start_id (positions 0..t-1)
        -> final decoder states [batch, t, d]; causal self-attention."""
        t = prefix.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)  # True = masked
        return self.decoder(self._embed(self.target_embedding(), prefix), memory,
                            tgt_mask=causal, memory_key_padding_mask=memory_key_padding_mask)

    def logits(self, states):  # [..., d] -> [..., vocab]
        return F.linear(states, self.output_weight(), self.lm_head_bias)

    def forward(self, src, prefix, src_lengths=None):
        """Teacher-forced logits [batch, t, vocab]."""
        memory, mask = self.encode(src, src_lengths)
        return self.logits(self.decode(prefix, memory, mask))

    def next_log_probs(self, prefix, memory, memory_key_padding_mask=None):
        """log-softmax over the vocab of the token after each prefix: [batch, vocab]."""
        states = self.decode(prefix, memory, memory_key_padding_mask)[:, -1]
        return torch.log_softmax(self.logits(states), dim=-1)


# --- initialisation -----------------------------------------------------------------------
def init_weights(model, seed, emb_std=None, attn_qk_gain=2.0, sublayer_gain=1.0, cross_gain=1.0,
                 bias_std=0.1, norm_std=0.1, final_norm_gain=1.0, lm_head_std=None,
                 center_ffn=True, eos_embed_scale=1.0, eos_bias=0.0):
    """Seeded random init that makes a random model's output depend on its input.

    Every tensor is non-trivial (random biases, LayerNorm gains around 1 and random shifts) so
    a mix-up of any two tensors changes the output. Embeddings N(0, d^-0.5) when scaled by
    sqrt(d) (the paper's init; N(0,1) would swamp the positions), N(0, 1) when not scaled.
    Linear weights N(0, 1/fan_in) (x sqrt(2) before ReLU-like activations), q/k projections
    x attn_qk_gain so attention is not uniform; sublayer_gain scales the sublayers' output
    projections (o_proj, fc2) so the residual stream is not dominated by the input token's own
    embedding (a tied random model otherwise repeats it), cross_gain scales cross-attention's
    v/o projections (how much the source matters), final_norm_gain scales the final norms'
    gains (with a small tied embedding, the logits' scale). center_ffn makes each row of fc2
    sum to zero, so the FFN's non-zero mean activation does not push every position in one
    common direction (which makes a random model emit one token everywhere). eos_embed_scale / eos_bias make EOS more or
    less likely (the EOS row of the output matrix is scaled; eos_bias needs lm_head_bias)."""
    cfg = model.cfg
    d = cfg["d_model"]
    g = torch.Generator().manual_seed(seed)

    def normal_(t, std, mean=0.0):
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64) * std + mean)

    if emb_std is None:
        emb_std = d ** -0.5 if cfg["scale_embedding"] else 1.0
    for name, p in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if name.endswith("_embed.weight"):
            normal_(p, emb_std)
        elif name == "lm_head.weight":
            normal_(p, (lm_head_std if lm_head_std is not None else 1.0) / math.sqrt(d))
        elif name == "lm_head_bias":
            normal_(p, 0.5)
        elif name in ("encoder.norm.weight", "decoder.norm.weight"):  # final norms
            normal_(p, norm_std * final_norm_gain, mean=final_norm_gain)
        elif "norm" in name:
            normal_(p, norm_std, mean=1.0 if leaf == "weight" else 0.0)
        elif leaf == "in_proj_weight":  # [3d, d]: q, k, v
            normal_(p, 1.0 / math.sqrt(d))
            with torch.no_grad():
                p[: 2 * d] *= attn_qk_gain
        elif leaf == "weight":  # out_proj, linear1, linear2
            fan_in = p.shape[1]
            gain = math.sqrt(2.0) if name.endswith("linear1.weight") else 1.0
            if name.endswith(("out_proj.weight", "linear2.weight")):
                gain *= sublayer_gain
            if ".multihead_attn." in name:
                gain *= cross_gain
            normal_(p, gain / math.sqrt(fan_in))
        elif leaf.endswith("bias"):
            normal_(p, bias_std)
        else:
            raise AssertionError(f"init: unhandled parameter {name}")
    with torch.no_grad():
        if center_ffn:
            for name, p in model.named_parameters():
                if name.endswith("linear2.weight"):
                    p -= p.mean(dim=1, keepdim=True)
        eos = cfg["eos_id"]
        model.output_weight()[eos] *= eos_embed_scale
        if model.lm_head_bias is not None:
            model.lm_head_bias[eos] += eos_bias
    return model


# --- tensor names (model-format.md) -------------------------------------------------------
_ATTN = {"self_attn": "self_attn", "multihead_attn": "cross_attn"}
_ENC_NORMS = {"norm1": "self_attn_norm", "norm2": "ffn_norm"}
_DEC_NORMS = {"norm1": "self_attn_norm", "norm2": "cross_attn_norm", "norm3": "ffn_norm"}


def _layer_tensors(prefix, layer, norms, attns):
    out = collections.OrderedDict()
    d = layer.linear1.in_features
    for attr, name in attns.items():
        mha = getattr(layer, attr)
        w, b = mha.in_proj_weight.detach(), mha.in_proj_bias.detach()
        for j, proj in enumerate(("q", "k", "v")):
            out[f"{prefix}.{name}.{proj}_proj.weight"] = w[j * d:(j + 1) * d]
            out[f"{prefix}.{name}.{proj}_proj.bias"] = b[j * d:(j + 1) * d]
        out[f"{prefix}.{name}.o_proj.weight"] = mha.out_proj.weight.detach()
        out[f"{prefix}.{name}.o_proj.bias"] = mha.out_proj.bias.detach()
    for attr, name in norms.items():
        norm = getattr(layer, attr)
        out[f"{prefix}.{name}.weight"] = norm.weight.detach()
        out[f"{prefix}.{name}.bias"] = norm.bias.detach()
    for attr, name in (("linear1", "fc1"), ("linear2", "fc2")):
        lin = getattr(layer, attr)
        out[f"{prefix}.ffn.{name}.weight"] = lin.weight.detach()
        out[f"{prefix}.ffn.{name}.bias"] = lin.bias.detach()
    return out


def to_attnserve_tensors(model):
    """OrderedDict name -> float32 numpy array with model-format.md's names and shapes."""
    t = collections.OrderedDict()
    if model.shared_embeddings:
        t["shared.embed.weight"] = model.shared_embed.weight.detach()
    else:
        t["encoder.embed.weight"] = model.encoder_embed.weight.detach()
        t["decoder.embed.weight"] = model.decoder_embed.weight.detach()
    for i, layer in enumerate(model.encoder.layers):
        t.update(_layer_tensors(f"encoder.layers.{i}", layer, _ENC_NORMS, {"self_attn": "self_attn"}))
    if model.encoder.norm is not None:
        t["encoder.final_norm.weight"] = model.encoder.norm.weight.detach()
        t["encoder.final_norm.bias"] = model.encoder.norm.bias.detach()
    for i, layer in enumerate(model.decoder.layers):
        t.update(_layer_tensors(f"decoder.layers.{i}", layer, _DEC_NORMS, _ATTN))
    if model.decoder.norm is not None:
        t["decoder.final_norm.weight"] = model.decoder.norm.weight.detach()
        t["decoder.final_norm.bias"] = model.decoder.norm.bias.detach()
    if model.lm_head is not None:
        t["lm_head.weight"] = model.lm_head.weight.detach()
    if model.lm_head_bias is not None:
        t["lm_head.bias"] = model.lm_head_bias.detach()
    return collections.OrderedDict(
        (k, np.ascontiguousarray(v.to(torch.float32).cpu().numpy())) for k, v in t.items())


def from_attnserve_tensors(model, tensors):
    """Copies model-format.md tensors (name -> array) into `model`; every tensor of the model
    must be present with the right shape and every given tensor must be used."""
    expected = to_attnserve_tensors(model)  # names and shapes the structure implies
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        raise ValueError(f"tensor names do not match the model: missing {missing}, "
                         f"unexpected {extra}")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != v.shape:
            raise ValueError(f"tensor {k}: shape {tuple(tensors[k].shape)}, expected {v.shape}")
    # Rebuild torch's state dict by inverting _layer_tensors' mapping.
    state = {}
    get = lambda k: torch.from_numpy(np.asarray(tensors[k], dtype=np.float32).copy())
    if model.shared_embeddings:
        state["shared_embed.weight"] = get("shared.embed.weight")
    else:
        state["encoder_embed.weight"] = get("encoder.embed.weight")
        state["decoder_embed.weight"] = get("decoder.embed.weight")
    for stack, norms, attns in (("encoder", _ENC_NORMS, {"self_attn": "self_attn"}),
                                ("decoder", _DEC_NORMS, _ATTN)):
        for i in range(len(getattr(model, stack).layers)):
            ours, theirs = f"{stack}.layers.{i}", f"{stack}.layers.{i}"
            for attr, name in attns.items():
                state[f"{theirs}.{attr}.in_proj_weight"] = torch.cat(
                    [get(f"{ours}.{name}.{p}_proj.weight") for p in "qkv"], 0)
                state[f"{theirs}.{attr}.in_proj_bias"] = torch.cat(
                    [get(f"{ours}.{name}.{p}_proj.bias") for p in "qkv"], 0)
                state[f"{theirs}.{attr}.out_proj.weight"] = get(f"{ours}.{name}.o_proj.weight")
                state[f"{theirs}.{attr}.out_proj.bias"] = get(f"{ours}.{name}.o_proj.bias")
            for attr, name in norms.items():
                for leaf in ("weight", "bias"):
                    state[f"{theirs}.{attr}.{leaf}"] = get(f"{ours}.{name}.{leaf}")
            for attr, name in (("linear1", "fc1"), ("linear2", "fc2")):
                for leaf in ("weight", "bias"):
                    state[f"{theirs}.{attr}.{leaf}"] = get(f"{ours}.ffn.{name}.{leaf}")
        if getattr(model, stack).norm is not None:
            for leaf in ("weight", "bias"):
                state[f"{stack}.norm.{leaf}"] = get(f"{stack}.final_norm.{leaf}")
    if model.lm_head is not None:
        state["lm_head.weight"] = get("lm_head.weight")
    if model.lm_head_bias is not None:
        state["lm_head_bias"] = get("lm_head.bias")
    model.load_state_dict(state, strict=True)
    return model


# --- safetensors, by hand -----------------------------------------------------------------
_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> numpy array (written as little-endian F32). Header padded with spaces
    to a multiple of 8 bytes; data in the given order, back to back."""
    header, offset, blobs = collections.OrderedDict(), 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """-> (OrderedDict name -> numpy array (F32/F16/F64 as stored, BF16 widened to float32),
    metadata dict). Checks that every tensor lies inside the file and matches its shape."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: truncated (no header length)")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} past the end of the file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n:]
    out = collections.OrderedDict()
    for name, info in header.items():
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if not 0 <= begin <= end <= len(data):
            raise ValueError(f"{path}: tensor {name} points past the end of the file")
        if info["dtype"] == "BF16":
            u16 = np.frombuffer(data[begin:end], dtype="<u2")
            arr = (u16.astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _DTYPES:
            arr = np.frombuffer(data[begin:end], dtype=_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {info['dtype']}")
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: tensor {name}: {arr.size} values for shape {shape}")
        out[name] = arr.reshape(shape)
    return out, metadata


# --- model directories --------------------------------------------------------------------
def export(model, config_dict, out_dir, vocab=None, extra_config=None):
    """Writes out_dir/config.json (every key explicit), out_dir/model.safetensors and, when
    `vocab` (a list of token strings, index = id) is given, out_dir/vocab.txt (one token per
    line, written verbatim: a token may be a space). `extra_config` (a dict) adds keys that
    model-format.md does not define (e.g. the server's "tokenizer", "vocab_file") after the
    standard ones; they may not redefine a standard key."""
    cfg = make_config(**(config_dict if config_dict is not None else model.cfg))
    for key in (extra_config or {}):
        if key in CONFIG_DEFAULTS:
            raise ValueError(f"extra_config may not redefine the standard key {key!r}")
    for key in ("d_model", "num_heads", "encoder_layers", "decoder_layers", "ffn_dim",
                "vocab_size", "max_positions", "activation", "norm_placement", "layer_norm_eps",
                "scale_embedding", "positional_encoding", "tie_output_embedding"):
        if cfg[key] != model.cfg[key]:
            raise ValueError(f"config {key}={cfg[key]!r} does not match the model's "
                             f"{model.cfg[key]!r}")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(collections.OrderedDict(list(cfg.items()) + list((extra_config or {}).items())),
                  f, indent=2)
        f.write("\n")
    write_safetensors(os.path.join(out_dir, "model.safetensors"), to_attnserve_tensors(model),
                      metadata={"format": "pt", "producer": "attnserve scripts/attnserve_export.py"})
    if vocab is not None:
        if len(vocab) != cfg["vocab_size"]:
            raise ValueError(f"vocab has {len(vocab)} tokens, vocab_size is {cfg['vocab_size']}")
        with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
            for tok in vocab:
                if "\n" in tok:
                    raise ValueError(f"token {tok!r} contains a newline")
                f.write(tok + "\n")


def load(model_dir, dtype=torch.float32):
    """Reads one of our model directories into an EncoderDecoder (eval mode). The structure
    (shared embeddings, final norms, lm_head bias) follows from the tensor names."""
    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    known = {k: v for k, v in raw.items() if k in CONFIG_DEFAULTS}
    for k in raw:
        if k not in CONFIG_DEFAULTS and k not in TOKENIZER_CONFIG_KEYS:
            print(f"warning: {model_dir}/config.json: unknown key '{k}' ignored")
    cfg = make_config(**known)
    tensors, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = EncoderDecoder(cfg,
                           shared_embeddings="shared.embed.weight" in tensors,
                           final_norm="encoder.final_norm.weight" in tensors,
                           lm_head_bias="lm_head.bias" in tensors)
    if model.has_final_norm != ("decoder.final_norm.weight" in tensors):
        raise ValueError("encoder.final_norm and decoder.final_norm must both be present or "
                         "both absent (this tool builds both stacks alike)")
    from_attnserve_tensors(model, tensors)
    return model.to(dtype).eval()


# --- decoding (model-format.md semantics) -------------------------------------------------
def _pad(sources, pad_id):
    lengths = [len(s) for s in sources]
    if min(lengths) < 1:
        raise ValueError("empty source")
    src = torch.full((len(sources), max(lengths)), pad_id, dtype=torch.long)
    for i, s in enumerate(sources):
        src[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return src, lengths


@torch.no_grad()
def greedy(model, sources, max_new_tokens, ignore_eos=False):
    """Greedy decoding of a batch of sources (lists of ids, used as given).

    Returns one dict per source: output_ids (no start token, no EOS), log_probs (log-softmax
    of each returned token), finish_reason "eos" | "length", score = sum(log_probs).
    Arg-max ties go to the lowest id (torch.argmax returns the first maximum). ignore_eos
    (benchmarks) never stops early: EOS is emitted like any token."""
    cfg = model.cfg
    src, lengths = _pad(sources, cfg["pad_id"])
    memory, mask = model.encode(src, lengths if len(set(lengths)) > 1 else None)
    batch = len(sources)
    prefix = torch.full((batch, 1), cfg["decoder_start_id"], dtype=torch.long)
    out = [{"output_ids": [], "log_probs": [], "finish_reason": None} for _ in sources]
    live = list(range(batch))
    for _ in range(max_new_tokens):
        logp = model.next_log_probs(prefix, memory, mask)  # [batch, vocab]
        tok = torch.argmax(logp, dim=-1)
        for i in live:
            t = int(tok[i])
            if t == cfg["eos_id"] and not ignore_eos:
                out[i]["finish_reason"] = "eos"
            else:
                out[i]["output_ids"].append(t)
                out[i]["log_probs"].append(float(logp[i, t]))
        live = [i for i in live if out[i]["finish_reason"] is None]
        if not live:
            break
        prefix = torch.cat([prefix, tok[:, None]], dim=1)  # finished rows keep computing
    for r in out:
        if r["finish_reason"] is None:
            r["finish_reason"] = "length"
        r["score"] = float(sum(r["log_probs"]))
    return out


@torch.no_grad()
def beam_search(model, source, beam_size, length_penalty, max_new_tokens, trace=None):
    """Beam search for one source, our defined algorithm (see the module's doc and
    docs/dev-tools.md):

    Start with one live hypothesis (cumulative log-prob 0). Each step adds every live
    hypothesis's log-softmax to its cumulative log-prob, takes the top 2*B (hypothesis, token)
    candidates (ties: lower hypothesis index, then lower token id) and walks them in order: an
    EOS candidate becomes a finished hypothesis with score cum / len^lp (len counts the
    generated tokens including EOS) unless B are already finished; any other candidate becomes
    a live hypothesis until B are live (live order = walk order). Stop when B are finished;
    otherwise, after max_new_tokens steps, every live hypothesis is finished ("length",
    normalised by its length). The result is the finished hypothesis with the best score
    (ties: the earliest finished).

    Returns a dict like greedy's, with score = the normalised score. If `trace` is a list,
    per-step diagnostics are appended (used by make_golden.py to check tie margins)."""
    cfg = model.cfg
    eos, B = cfg["eos_id"], beam_size
    src = torch.as_tensor([source], dtype=torch.long)
    memory, _ = model.encode(src)
    # live hypothesis: (tokens, token log-probs, cumulative log-prob)
    live = [([], [], 0.0)]
    stopped_full = False
    finished = []  # dicts: output_ids, log_probs, finish_reason, score, (cum)
    for step in range(1, max_new_tokens + 1):
        prefix = torch.as_tensor([[cfg["decoder_start_id"]] + h[0] for h in live],
                                 dtype=torch.long)
        logp = model.next_log_probs(prefix, memory.expand(len(live), -1, -1).contiguous())
        logp64 = logp.double()
        cum = torch.as_tensor([h[2] for h in live], dtype=torch.float64)[:, None] + logp64
        flat = cum.reshape(-1)
        # Stable descending sort keeps (hypothesis, token) order among equal scores.
        order = torch.sort(flat, descending=True, stable=True).indices[: 2 * B]
        vocab = logp.shape[1]
        new_live = []
        for j in order.tolist():
            h, t = divmod(j, vocab)
            toks, lps, _ = live[h]
            score = float(flat[j])
            if t == eos:
                if len(finished) < B:
                    finished.append({"output_ids": list(toks), "log_probs": list(lps),
                                     "finish_reason": "eos", "cum": score,
                                     "score": score / float(len(toks) + 1) ** length_penalty})
            elif len(new_live) < B:
                new_live.append((toks + [t], lps + [float(logp64[h, t])], score))
        if trace is not None:
            top = flat[torch.sort(flat, descending=True, stable=True).indices[: 2 * B + 1]]
            trace.append({"step": step, "top_scores": top.tolist()})
        live = new_live
        if len(finished) >= B:
            stopped_full = True
            break
        if step == max_new_tokens:
            for toks, lps, c in live:
                finished.append({"output_ids": toks, "log_probs": lps, "finish_reason": "length",
                                 "cum": c, "score": c / float(len(toks)) ** length_penalty})
    best = 0
    for i, f in enumerate(finished):
        if f["score"] > finished[best]["score"]:  # strict: ties keep the earlier one
            best = i
    if trace is not None:
        trace.append({"finished_scores": [f["score"] for f in finished], "best": best,
                      "stop": "beam_full" if len(finished) >= B and stopped_full else "length",
                      "live_at_stop": [(h[0], h[2]) for h in live]})
    r = dict(finished[best])
    r.pop("cum")
    return r
