"""A second, independent forward pass in numpy float64, written straight from
docs/hf-reference.md (not from models.py), used by make_hf_checkpoints.py --check to catch
wiring slips in the torch reference. Batch 1, no padding, last-position logits only."""

import json
import math
import os

import numpy as np

from . import checkpoint


def _weights(model_dir):
    sd, _ = checkpoint.load_state_dict(model_dir)
    return {k: v.double().numpy() for k, v in sd.items()}


def _pick(w, *names):
    for n in names:
        if n in w:
            return w[n]
    raise KeyError(names)


def _ln(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _softmax(s):
    s = s - s.max(-1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(-1, keepdims=True)


ACT = {"relu": lambda x: np.maximum(x, 0), "swish": lambda x: x / (1 + np.exp(-x)),
       "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
       "gelu_new": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))}


def _mha(xq, xkv, wq, wk, wv, wo, heads, scale, bias=None, causal=False):
    """Per-head loop; weights are (W, b) pairs, b may be None; bias is [H, q, k] or None."""
    lin = lambda x, p: x @ p[0].T + (p[1] if p[1] is not None else 0)
    q, k, v = lin(xq, wq), lin(xkv, wk), lin(xkv, wv)
    dh = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        s = (q[:, sl] @ k[:, sl].T) * scale
        if bias is not None:
            s = s + bias[h]
        if causal:
            s = s + np.triu(np.full(s.shape, -np.inf), 1)
        outs.append(_softmax(s) @ v[:, sl])
    return lin(np.concatenate(outs, -1), wo)


def _bart_like(cfg, w, src, prefix):
    mt = cfg["model_type"]
    D = cfg["d_model"]
    pre = mt in ("mbart", "m2m100")
    scale = math.sqrt(D) if cfg.get("scale_embedding", mt == "m2m100") else 1.0
    act = ACT[cfg.get("activation_function", "relu" if mt == "m2m100" else "gelu")]
    E = _pick(w, "model.shared.weight", "model.encoder.embed_tokens.weight")
    pad = cfg["pad_token_id"]

    def pos(side, n):
        if mt in ("bart", "mbart"):
            return w[f"model.{side}.embed_positions.weight"][np.arange(n) + 2]
        if mt == "marian":
            key = f"model.{side}.embed_positions.weight"
            if key in w:
                return w[key][:n]
            p = np.arange(n)[:, None]
            j = np.arange(D)[None, :]
            ang = p / np.power(10000, 2 * (j // 2) / D)
            return np.concatenate([np.sin(ang[:, 0::2]), np.cos(ang[:, 1::2])], 1)
        half = D // 2  # in float32, as HF builds the table
        f32 = np.float32
        freq = np.exp(np.arange(half, dtype=f32) * f32(-(math.log(10000) / (half - 1))))
        p = (np.arange(n) + 1 + pad).astype(f32)[:, None] * freq[None, :]  # no pads in a batch of 1
        return np.concatenate([np.sin(p), np.cos(p)], 1).astype(np.float64)

    def P(name):
        return (w[name + ".weight"], w.get(name + ".bias"))

    def block(x, name, kv=None, causal=False):
        heads = cfg["decoder_attention_heads" if kv is not None or causal else "encoder_attention_heads"]
        sc = (D // heads) ** -0.5

        def sub(x, ln, f):
            g, b = w[ln + ".weight"], w[ln + ".bias"]
            return x + f(_ln(x, g, b)) if pre else _ln(x + f(x), g, b)

        a = name + ".self_attn"
        x = sub(x, name + ".self_attn_layer_norm",
                lambda h: _mha(h, h, P(a + ".q_proj"), P(a + ".k_proj"), P(a + ".v_proj"), P(a + ".out_proj"),
                               heads, sc, causal=causal))
        if kv is not None:
            c = name + ".encoder_attn"
            x = sub(x, name + ".encoder_attn_layer_norm",
                    lambda h: _mha(h, kv, P(c + ".q_proj"), P(c + ".k_proj"), P(c + ".v_proj"), P(c + ".out_proj"),
                                   heads, sc))
        return sub(x, name + ".final_layer_norm",
                   lambda h: act(h @ w[name + ".fc1.weight"].T + w[name + ".fc1.bias"]) @ w[name + ".fc2.weight"].T
                   + w[name + ".fc2.bias"])

    def stack(side, ids, kv=None):
        x = E[ids] * scale + pos(side, len(ids))
        if mt in ("bart", "mbart"):
            x = _ln(x, w[f"model.{side}.layernorm_embedding.weight"], w[f"model.{side}.layernorm_embedding.bias"])
        for i in range(cfg[f"{side}_layers"]):
            x = block(x, f"model.{side}.layers.{i}", kv, causal=side == "decoder")
        if pre:
            x = _ln(x, w[f"model.{side}.layer_norm.weight"], w[f"model.{side}.layer_norm.bias"])
        return x

    enc = stack("encoder", np.array(src))
    h = stack("decoder", np.array(prefix), enc)[-1]
    out = h @ E.T
    if mt != "m2m100":
        out = out + w.get("final_logits_bias", np.zeros((1, len(E))))[0]
    return out


def _t5(cfg, w, src, prefix):
    D, H = cfg["d_model"], cfg["num_heads"]
    nb, md = cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"]
    eps = cfg["layer_norm_epsilon"]
    gated = cfg["feed_forward_proj"].startswith("gated")
    act = ACT["gelu_new" if cfg["feed_forward_proj"] == "gated-gelu" else cfg["feed_forward_proj"].split("-")[-1]]
    E = w["shared.weight"]
    rms = lambda x, g: g * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)

    def bucket(r, bidir):
        n, out = nb, 0
        if bidir:
            n //= 2
            out = n if r > 0 else 0
            r = abs(r)
        else:
            r = max(-r, 0)
        e = n // 2
        if r < e:
            return out + r
        # float32 as HF computes it
        v = np.float32(np.log(np.float32(r) / np.float32(e))) / np.float32(math.log(md / e)) * np.float32(n - e)
        return out + min(n - 1, e + int(np.float32(v)))

    def rel(table, q, k, bidir):
        b = np.array([[bucket(j - i, bidir) for j in range(k)] for i in range(q)])
        return np.transpose(table[b], (2, 0, 1))

    def ff(x, p):
        if gated:
            return (act(x @ w[p + "wi_0.weight"].T) * (x @ w[p + "wi_1.weight"].T)) @ w[p + "wo.weight"].T
        return act(x @ w[p + "wi.weight"].T) @ w[p + "wo.weight"].T

    def att(p, xq, xkv, bias, causal=False):
        g = lambda n: (w[p + n + ".weight"], None)
        return _mha(xq, xkv, g("q"), g("k"), g("v"), g("o"), H, 1.0, bias, causal)

    x = E[np.array(src)]
    bias = rel(w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], len(src), len(src), True)
    for i in range(cfg["num_layers"]):
        p = f"encoder.block.{i}.layer."
        h = rms(x, w[p + "0.layer_norm.weight"])
        x = x + att(p + "0.SelfAttention.", h, h, bias)
        x = x + ff(rms(x, w[p + "1.layer_norm.weight"]), p + "1.DenseReluDense.")
    enc = rms(x, w["encoder.final_layer_norm.weight"])
    x = E[np.array(prefix)]
    bias = rel(w["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], len(prefix), len(prefix),
               False)
    for i in range(cfg.get("num_decoder_layers") or cfg["num_layers"]):
        p = f"decoder.block.{i}.layer."
        h = rms(x, w[p + "0.layer_norm.weight"])
        x = x + att(p + "0.SelfAttention.", h, h, bias, causal=True)
        x = x + att(p + "1.EncDecAttention.", rms(x, w[p + "1.layer_norm.weight"]), enc, None)
        x = x + ff(rms(x, w[p + "2.layer_norm.weight"]), p + "2.DenseReluDense.")
    h = rms(x, w["decoder.final_layer_norm.weight"])[-1]
    if cfg.get("tie_word_embeddings", True):
        return (h * D ** -0.5) @ E.T
    return h @ w["lm_head.weight"].T


def last_logits(model_dir, src, prefix):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = _weights(model_dir)
    return (_t5 if cfg["model_type"] == "t5" else _bart_like)(cfg, w, src, prefix)
