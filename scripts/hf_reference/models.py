"""PyTorch reference forward passes for HF encoder-decoders, written from the published
architectures (see docs/hf-reference.md). No KV cache: the decoder is run over the whole
prefix each step, which gives the same numbers as HF's incremental decoding for every family
here (positions and relative buckets depend only on the absolute index).

A model exposes:
  encode(input_ids [N,S] long, attention_mask [N,S] long) -> enc [N,S,D]
  logits(decoder_ids [N,T], enc, attention_mask) -> [N,T,V] (dtype of the model)
"""

import math

import torch
import torch.nn.functional as F

from .checkpoint import CheckpointError, resolve_alias, take

# HF ACT2FN names we support. gelu = exact erf; gelu_new = tanh approximation.
ACTS = {
    "relu": F.relu,
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3)))),
    "gelu_pytorch_tanh": lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3)))),
    "swish": F.silu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def act_fn(name, where):
    if name not in ACTS:
        raise CheckpointError(f"{where}: activation {name!r} is not one of {sorted(ACTS)}")
    return ACTS[name]


def _int(cfg, key, default=None):
    v = cfg.get(key, default)
    if v is None or isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise CheckpointError(f"config.json: {key} must be a non-negative integer, got {v!r}")
    return v


def _mask_bias(keep, dtype):
    """[N, K] 1/0 keep mask -> additive [N,1,1,K] bias (0 or finfo.min), as HF builds it."""
    return (1.0 - keep[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _causal_bias(t, dtype):
    m = torch.full((t, t), torch.finfo(dtype).min, dtype=dtype)
    return torch.triu(m, diagonal=1)[None, None]


# ---------------------------------------------------------------- BART family
# bart, mbart, marian, m2m100 share a layer layout; they differ in positions, norm placement,
# embedding layer norm, final norms, activation defaults and the logits bias.
FAMILY = {
    #          pre_norm, layernorm_embedding, final_norms, logits_bias, positions
    "bart": dict(pre_norm=False, ln_emb=True, final_ln=False, bias=True, pos="learned"),
    "mbart": dict(pre_norm=True, ln_emb=True, final_ln=True, bias=True, pos="learned"),
    "marian": dict(pre_norm=False, ln_emb=False, final_ln=False, bias=True, pos="marian_sin"),
    "m2m100": dict(pre_norm=True, ln_emb=False, final_ln=True, bias=False, pos="fairseq_sin"),
}
DEFAULTS = {  # the HF config classes' defaults for keys a config.json may omit
    "bart": dict(activation_function="gelu", scale_embedding=False, pad_token_id=1, bos_token_id=0,
                 eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2),
    "mbart": dict(activation_function="gelu", scale_embedding=False, pad_token_id=1, bos_token_id=0,
                  eos_token_id=2, forced_eos_token_id=2),
    "marian": dict(activation_function="gelu", scale_embedding=False, pad_token_id=58100,
                   eos_token_id=0, decoder_start_token_id=58100, forced_eos_token_id=0,
                   share_encoder_decoder_embeddings=True),
    "m2m100": dict(activation_function="relu", scale_embedding=True, pad_token_id=1, bos_token_id=0,
                   eos_token_id=2, decoder_start_token_id=2),
    "t5": dict(d_kv=64, num_heads=8, relative_attention_num_buckets=32,
               relative_attention_max_distance=128, layer_norm_epsilon=1e-6, feed_forward_proj="relu",
               pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, tie_word_embeddings=True),
}


def marian_sinusoids(n_pos, dim):
    """Marian's table: angle[p, j] = p / 10000^(2*(j//2)/dim); columns [0, ceil(dim/2)) hold
    sin of the even-j angles, the rest cos of the odd-j angles. Computed in float64 numpy-style
    then rounded to float32, as HF does."""
    p = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    ang = p / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    sentinel = dim // 2 if dim % 2 == 0 else dim // 2 + 1
    out = torch.zeros(n_pos, dim, dtype=torch.float64)
    out[:, :sentinel] = torch.sin(ang[:, 0::2])
    out[:, sentinel:] = torch.cos(ang[:, 1::2])
    return out.to(torch.float32)


def fairseq_sinusoids(n_pos, dim, padding_idx):
    """M2M100's table (fairseq): freq_i = exp(-i * ln(10000) / (half - 1)), i < half = dim//2;
    row p = [sin(p*freq) | cos(p*freq)] (+ a zero column if dim is odd); row padding_idx = 0.
    Computed in float32, as HF does."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.int64).float() * -step)
    ang = torch.arange(n_pos, dtype=torch.int64).float()[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1).view(n_pos, -1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(n_pos, 1)], dim=1)
    emb[padding_idx, :] = 0
    return emb


def m2m100_position_ids(input_ids, padding_idx, past=0):
    """Non-pad tokens are numbered padding_idx+1, padding_idx+2, ... counting only non-pad
    tokens; pads get padding_idx (a zero row)."""
    mask = input_ids.ne(padding_idx).int()
    return ((torch.cumsum(mask, dim=1).type_as(mask) + past) * mask).long() + padding_idx


class BartLike:
    def __init__(self, cfg, sd, dtype=torch.float32):
        mt = cfg["model_type"]
        self.mt, self.f, self.dtype = mt, FAMILY[mt], dtype
        c = dict(DEFAULTS[mt])
        c.update({k: v for k, v in cfg.items() if v is not None})
        self.cfg = c
        D = self.D = _int(c, "d_model")
        self.V = _int(c, "vocab_size")
        if mt == "marian":
            dv = c.get("decoder_vocab_size") or self.V
            if dv != self.V:
                raise CheckpointError("config.json: decoder_vocab_size != vocab_size is not supported")
        self.pad = _int(c, "pad_token_id")
        self.max_pos = _int(c, "max_position_embeddings")
        self.eps = 1e-5
        self.scale = math.sqrt(D) if c.get("scale_embedding") else 1.0
        self.act = act_fn(c.get("activation_function"), "config.json activation_function")
        self.layers = {}
        used = set()
        g = lambda n, s: take(sd, n, s, used).to(dtype)
        p = "model."
        tied = c.get("tie_word_embeddings", True)
        share = c.get("share_encoder_decoder_embeddings", True) if mt == "marian" else True
        if share:
            names = [p + "shared.weight", p + "encoder.embed_tokens.weight", p + "decoder.embed_tokens.weight"]
            if tied:
                names.append("lm_head.weight")
            emb = resolve_alias(sd, names, "the shared embedding")
            self.enc_emb = self.dec_emb = emb
        else:
            self.enc_emb = resolve_alias(sd, [p + "encoder.embed_tokens.weight"], "encoder embedding")
            dn = [p + "decoder.embed_tokens.weight"] + (["lm_head.weight"] if tied else [])
            self.dec_emb = resolve_alias(sd, dn, "decoder embedding")
        for t in (self.enc_emb, self.dec_emb):
            if tuple(t.shape) != (self.V, D):
                raise CheckpointError(f"embedding shape {tuple(t.shape)}, expected {(self.V, D)}")
        used.update(n for n in sd if n.endswith("embed_tokens.weight") or n == p + "shared.weight")
        self.enc_emb, self.dec_emb = self.enc_emb.to(dtype), self.dec_emb.to(dtype)
        if tied:
            self.lm_head = self.dec_emb
            used.add("lm_head.weight")
        else:
            self.lm_head = g("lm_head.weight", (self.V, D))
        if self.f["bias"]:
            if "final_logits_bias" in sd:
                self.logits_bias = g("final_logits_bias", (1, self.V))[0]
            else:  # HF registers it as a zero buffer; old checkpoints omit it
                self.logits_bias = torch.zeros(self.V, dtype=dtype)
        else:
            self.logits_bias = None
        # positions
        if self.f["pos"] == "learned":
            self.enc_pos = g(p + "encoder.embed_positions.weight", (self.max_pos + 2, D))
            self.dec_pos = g(p + "decoder.embed_positions.weight", (self.max_pos + 2, D))
        elif self.f["pos"] == "marian_sin":
            table = marian_sinusoids(self.max_pos, D)
            # Checkpoints may carry the table; HF then loads it over the computed one.
            self.enc_pos = (g(p + "encoder.embed_positions.weight", (self.max_pos, D))
                            if p + "encoder.embed_positions.weight" in sd else table.to(dtype))
            self.dec_pos = (g(p + "decoder.embed_positions.weight", (self.max_pos, D))
                            if p + "decoder.embed_positions.weight" in sd else table.to(dtype))
        else:
            table = fairseq_sinusoids(self.max_pos + 2, D, self.pad).to(dtype)
            self.enc_pos = self.dec_pos = table
            for side in ("encoder", "decoder"):  # a non-persistent buffer; tolerate old files
                used.add(f"{p}{side}.embed_positions.weights")
                used.add(f"{p}{side}.embed_positions._float_tensor")

        def ln(name):
            return (g(name + ".weight", (D,)), g(name + ".bias", (D,)))

        def attn(name, heads):
            return dict(heads=heads, **{k: (g(f"{name}.{k}_proj.weight", (D, D)), g(f"{name}.{k}_proj.bias", (D,)))
                                       for k in "qkvo" if k != "o"},
                        o=(g(f"{name}.out_proj.weight", (D, D)), g(f"{name}.out_proj.bias", (D,))))

        self.enc_layers, self.dec_layers = [], []
        for side, n_layers, lst in (("encoder", "encoder_layers", self.enc_layers),
                                    ("decoder", "decoder_layers", self.dec_layers)):
            heads = _int(c, f"{side}_attention_heads")
            ffn = _int(c, f"{side}_ffn_dim")
            if heads == 0 or D % heads:
                raise CheckpointError(f"config.json: d_model {D} not divisible by {side}_attention_heads {heads}")
            for i in range(_int(c, n_layers)):
                q = f"{p}{side}.layers.{i}."
                L = dict(self_attn=attn(q + "self_attn", heads), self_ln=ln(q + "self_attn_layer_norm"),
                         fc1=(g(q + "fc1.weight", (ffn, D)), g(q + "fc1.bias", (ffn,))),
                         fc2=(g(q + "fc2.weight", (D, ffn)), g(q + "fc2.bias", (D,))),
                         final_ln=ln(q + "final_layer_norm"))
                if side == "decoder":
                    L["cross"] = attn(q + "encoder_attn", heads)
                    L["cross_ln"] = ln(q + "encoder_attn_layer_norm")
                lst.append(L)
        if self.f["ln_emb"]:
            self.enc_ln_emb = ln(p + "encoder.layernorm_embedding")
            self.dec_ln_emb = ln(p + "decoder.layernorm_embedding")
        if self.f["final_ln"]:
            self.enc_final = ln(p + "encoder.layer_norm")
            self.dec_final = ln(p + "decoder.layer_norm")
        unused = sorted(set(sd) - used)
        if unused:
            raise CheckpointError(f"{mt}: unexpected tensors in the checkpoint: {unused[:5]}")

    def _ln(self, x, w):
        return F.layer_norm(x, (self.D,), w[0], w[1], self.eps)

    def _attn(self, a, x, kv, bias):
        N, T, D = x.shape
        H = a["heads"]
        dh = D // H
        q = F.linear(x, *a["q"]) * (dh ** -0.5)  # BART scales q after the bias
        k = F.linear(kv, *a["k"])
        v = F.linear(kv, *a["v"])
        sp = lambda t: t.view(N, -1, H, dh).transpose(1, 2)
        s = sp(q) @ sp(k).transpose(-1, -2) + bias
        o = torch.softmax(s, dim=-1) @ sp(v)
        return F.linear(o.transpose(1, 2).reshape(N, T, D), *a["o"])

    def _positions(self, ids, table):
        N, T = ids.shape
        if self.f["pos"] == "fairseq_sin":
            pos = m2m100_position_ids(ids, self.pad)
            if int(pos.max()) >= table.shape[0]:  # HF regrows the table: any length works
                table = fairseq_sinusoids(int(pos.max()) + 1, self.D, self.pad).to(self.dtype)
        else:
            off = 2 if self.f["pos"] == "learned" else 0
            pos = (torch.arange(T) + off)[None].expand(N, T)
        if int(pos.max()) >= table.shape[0]:
            raise ValueError(f"sequence of {T} tokens exceeds max_position_embeddings {self.max_pos}")
        return table[pos]

    def _check_ids(self, ids):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.V):
            raise ValueError(f"token id outside [0, {self.V})")

    def _block(self, L, x, self_bias, enc=None, cross_bias=None):
        pre = self.f["pre_norm"]

        def sub(x, ln, f):
            return x + f(self._ln(x, ln)) if pre else self._ln(x + f(x), ln)

        x = sub(x, L["self_ln"], lambda h: self._attn(L["self_attn"], h, h, self_bias))
        if enc is not None:
            x = sub(x, L["cross_ln"], lambda h: self._attn(L["cross"], h, enc, cross_bias))
        return sub(x, L["final_ln"], lambda h: F.linear(self.act(F.linear(h, *L["fc1"])), *L["fc2"]))

    def encode(self, ids, mask):
        self._check_ids(ids)
        x = self.enc_emb[ids] * self.scale + self._positions(ids, self.enc_pos)
        if self.f["ln_emb"]:
            x = self._ln(x, self.enc_ln_emb)
        bias = _mask_bias(mask, self.dtype)
        for L in self.enc_layers:
            x = self._block(L, x, bias)
        if self.f["final_ln"]:
            x = self._ln(x, self.enc_final)
        return x

    def logits(self, dec_ids, enc, mask):
        self._check_ids(dec_ids)
        T = dec_ids.shape[1]
        x = self.dec_emb[dec_ids] * self.scale + self._positions(dec_ids, self.dec_pos)
        if self.f["ln_emb"]:
            x = self._ln(x, self.dec_ln_emb)
        sb, cb = _causal_bias(T, self.dtype), _mask_bias(mask, self.dtype)
        for L in self.dec_layers:
            x = self._block(L, x, sb, enc, cb)
        if self.f["final_ln"]:
            x = self._ln(x, self.dec_final)
        out = F.linear(x, self.lm_head)
        return out + self.logits_bias if self.logits_bias is not None else out


# ---------------------------------------------------------------- T5
def t5_relative_bucket(rel, bidirectional, num_buckets, max_distance):
    """rel = key_pos - query_pos. Bidirectional: half the buckets for rel > 0. Within a half,
    |rel| < max_exact = nb/2 map to themselves, larger ones logarithmically up to
    max_distance, clamped to nb-1."""
    buckets = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (rel > 0).long() * num_buckets
        rel = rel.abs()
    else:
        rel = -torch.clamp(rel, max=0)
    max_exact = num_buckets // 2
    small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(small, rel, large)


class T5:
    def __init__(self, cfg, sd, dtype=torch.float32):
        c = dict(DEFAULTS["t5"])
        c.update({k: v for k, v in cfg.items() if v is not None})
        self.cfg, self.dtype = c, dtype
        D = self.D = _int(c, "d_model")
        self.V = _int(c, "vocab_size")
        self.H, self.dkv, self.dff = _int(c, "num_heads"), _int(c, "d_kv"), _int(c, "d_ff")
        inner = self.H * self.dkv
        self.nb = _int(c, "relative_attention_num_buckets")
        self.maxd = _int(c, "relative_attention_max_distance")
        self.eps = float(c["layer_norm_epsilon"])
        proj = c["feed_forward_proj"]
        parts = proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise CheckpointError(f"config.json: feed_forward_proj {proj!r} is not 'ACT' or 'gated-ACT'")
        self.gated = len(parts) == 2
        act = "gelu_new" if proj == "gated-gelu" else parts[-1]  # HF's special case
        self.act = act_fn(act, "config.json feed_forward_proj")
        self.tied = bool(c["tie_word_embeddings"])
        n_enc = _int(c, "num_layers")
        n_dec = _int(c, "num_decoder_layers", n_enc) if c.get("num_decoder_layers") is not None else n_enc
        used = set()
        g = lambda n, s: take(sd, n, s, used).to(dtype)
        names = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
        if self.tied:
            names.append("lm_head.weight")
        self.emb = resolve_alias(sd, names, "the shared embedding").to(dtype)
        if tuple(self.emb.shape) != (self.V, D):
            raise CheckpointError(f"shared.weight shape {tuple(self.emb.shape)}, expected {(self.V, D)}")
        used.update(n for n in names if n in sd)
        self.lm_head = self.emb if self.tied else g("lm_head.weight", (self.V, D))

        def attn(name, rel):
            a = {k: g(f"{name}.{k}.weight", s) for k, s in
                 (("q", (inner, D)), ("k", (inner, D)), ("v", (inner, D)), ("o", (D, inner)))}
            if rel:
                a["rel"] = g(f"{name}.relative_attention_bias.weight", (self.nb, self.H))
            return a

        def ff(name):
            if self.gated:
                return dict(wi_0=g(name + ".wi_0.weight", (self.dff, D)), wi_1=g(name + ".wi_1.weight", (self.dff, D)),
                            wo=g(name + ".wo.weight", (D, self.dff)))
            return dict(wi=g(name + ".wi.weight", (self.dff, D)), wo=g(name + ".wo.weight", (D, self.dff)))

        self.enc, self.dec = [], []
        for i in range(n_enc):
            q = f"encoder.block.{i}.layer."
            self.enc.append(dict(sa=attn(q + "0.SelfAttention", i == 0), ln0=g(q + "0.layer_norm.weight", (D,)),
                                 ff=ff(q + "1.DenseReluDense"), ln1=g(q + "1.layer_norm.weight", (D,))))
        for i in range(n_dec):
            q = f"decoder.block.{i}.layer."
            self.dec.append(dict(sa=attn(q + "0.SelfAttention", i == 0), ln0=g(q + "0.layer_norm.weight", (D,)),
                                 ca=attn(q + "1.EncDecAttention", False), ln1=g(q + "1.layer_norm.weight", (D,)),
                                 ff=ff(q + "2.DenseReluDense"), ln2=g(q + "2.layer_norm.weight", (D,))))
        self.enc_final = g("encoder.final_layer_norm.weight", (D,))
        self.dec_final = g("decoder.final_layer_norm.weight", (D,))
        unused = sorted(set(sd) - used)
        if unused:
            raise CheckpointError(f"t5: unexpected tensors in the checkpoint: {unused[:5]}")

    def _rms(self, x, w):
        var = x.pow(2).mean(-1, keepdim=True)  # no mean subtraction, no bias
        return w * (x * torch.rsqrt(var + self.eps))

    def _bias(self, table, q_len, k_len, bidirectional):
        rel = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
        b = t5_relative_bucket(rel, bidirectional, self.nb, self.maxd)
        return table[b].permute(2, 0, 1)[None]  # [1, H, q, k]

    def _attn(self, a, x, kv, bias):
        N, T, _ = x.shape
        sp = lambda t: t.view(N, -1, self.H, self.dkv).transpose(1, 2)
        s = sp(F.linear(x, a["q"])) @ sp(F.linear(kv, a["k"])).transpose(-1, -2) + bias  # no 1/sqrt(d)
        o = torch.softmax(s, dim=-1) @ sp(F.linear(kv, a["v"]))
        return F.linear(o.transpose(1, 2).reshape(N, T, self.H * self.dkv), a["o"])

    def _ff(self, f, x):
        if self.gated:
            return F.linear(self.act(F.linear(x, f["wi_0"])) * F.linear(x, f["wi_1"]), f["wo"])
        return F.linear(self.act(F.linear(x, f["wi"])), f["wo"])

    def _check_ids(self, ids):
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.V):
            raise ValueError(f"token id outside [0, {self.V})")

    def encode(self, ids, mask):
        self._check_ids(ids)
        x = self.emb[ids]
        S = ids.shape[1]
        # the first layer's table, shared by every layer of the stack
        bias = self._bias(self.enc[0]["sa"]["rel"], S, S, True) + _mask_bias(mask, self.dtype)
        for L in self.enc:
            x = x + self._attn(L["sa"], self._rms(x, L["ln0"]), self._rms(x, L["ln0"]), bias)
            x = x + self._ff(L["ff"], self._rms(x, L["ln1"]))
        return self._rms(x, self.enc_final)

    def logits(self, dec_ids, enc, mask):
        self._check_ids(dec_ids)
        T = dec_ids.shape[1]
        x = self.emb[dec_ids]
        sb = self._bias(self.dec[0]["sa"]["rel"], T, T, False) + _causal_bias(T, self.dtype)
        cb = _mask_bias(mask, self.dtype)
        for L in self.dec:
            h = self._rms(x, L["ln0"])
            x = x + self._attn(L["sa"], h, h, sb)
            x = x + self._attn(L["ca"], self._rms(x, L["ln1"]), enc, cb)
            x = x + self._ff(L["ff"], self._rms(x, L["ln2"]))
        x = self._rms(x, self.dec_final)
        if self.tied:
            x = x * (self.D ** -0.5)
        return F.linear(x, self.lm_head)


def build(cfg, sd, dtype=torch.float32):
    return T5(cfg, sd, dtype) if cfg["model_type"] == "t5" else BartLike(cfg, sd, dtype)
