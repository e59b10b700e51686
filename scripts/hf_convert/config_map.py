"""Hugging Face config.json -> attnserve config.json keys (FORMAT_SPEC's mapping), and the
normalised generation_config.json. Every option that would change the model and has no
attnserve equivalent is refused, naming the key and its value."""

import collections
import math
import os

from hf_reference.generate import GenConfig
from hf_reference.models import DEFAULTS
from hf_reference.checkpoint import CheckpointError

from .errors import ConvertError

BART_FAMILY = ("bart", "mbart", "marian", "m2m100")
SUPPORTED = BART_FAMILY + ("t5",)

# HF ACT2FN names -> attnserve "activation". HF's "tanh" (and the rest) has no attnserve
# counterpart and is refused.
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "swish": "swish", "silu": "swish"}

# Per family: norm placement, embedding norm, final norms, positions (before the checkpoint
# is looked at: Marian's depend on whether the table is stored).
FAMILY = {
    "bart": dict(norm_placement="post", embedding_norm=True, final_norm=False),
    "mbart": dict(norm_placement="pre", embedding_norm=True, final_norm=True),
    "marian": dict(norm_placement="post", embedding_norm=False, final_norm=False),
    "m2m100": dict(norm_placement="pre", embedding_norm=False, final_norm=True),
}

# The order config.json is written in: today's keys, then the additions.
KEY_ORDER = ("architecture", "d_model", "num_heads", "attention_head_dim", "encoder_layers",
             "decoder_layers", "ffn_dim", "vocab_size", "max_positions", "activation",
             "gated_ffn", "norm_placement", "norm_kind", "layer_norm_eps", "linear_bias",
             "scale_attention", "scale_embedding", "embedding_norm", "positional_encoding",
             "position_offset", "relative_attention_num_buckets",
             "relative_attention_max_distance", "tie_output_embedding", "output_scale",
             "pad_id", "bos_id", "eos_id", "decoder_start_id", "add_eos_to_source")


def merged(cfg):
    """config.json over the HF config class's defaults (None counts as absent)."""
    c = dict(DEFAULTS[cfg["model_type"]])
    c.update({k: v for k, v in cfg.items() if v is not None})
    return c


def model_type(cfg, where):
    mt = cfg.get("model_type")
    if mt not in SUPPORTED:
        raise ConvertError(f"{where}: model_type {mt!r} is not supported "
                           f"(supported: {', '.join(SUPPORTED)})")
    return mt


def _int(c, key, where, lo=1):
    v = c.get(key)
    if v is None:
        raise ConvertError(f"{where}: missing required key {key!r}")
    if isinstance(v, bool) or not isinstance(v, int) or v < lo:
        raise ConvertError(f"{where}: {key} must be an integer >= {lo}, got {v!r}")
    return v


def _bool(c, key, where, default):
    v = c.get(key, default)
    if not isinstance(v, bool):
        raise ConvertError(f"{where}: {key} must be true or false, got {v!r}")
    return v


def activation(key, value, where):
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ConvertError(f"{where}: {key} {value!r} is not supported "
                           f"(supported: {', '.join(sorted(ACTIVATIONS))})")
    return ACTIVATIONS[value]


def _same(c, a, b, where):
    va, vb = _int(c, a, where), _int(c, b, where)
    if va != vb:
        raise ConvertError(f"{where}: {a} {va} != {b} {vb}; attnserve needs one value for "
                           "both stacks")
    return va


def bart_config(cfg, where):
    mt = cfg["model_type"]
    c = merged(cfg)
    fam = FAMILY[mt]
    D = _int(c, "d_model", where)
    V = _int(c, "vocab_size", where)
    if mt == "marian" and c.get("decoder_vocab_size", V) != V:
        raise ConvertError(f"{where}: decoder_vocab_size {c['decoder_vocab_size']!r} != "
                           f"vocab_size {V} is not supported")
    heads = _same(c, "encoder_attention_heads", "decoder_attention_heads", where)
    if D % heads:
        raise ConvertError(f"{where}: d_model {D} is not divisible by encoder_attention_heads "
                           f"{heads}")
    out = dict(
        d_model=D, num_heads=heads, attention_head_dim=D // heads,
        encoder_layers=_int(c, "encoder_layers", where),
        decoder_layers=_int(c, "decoder_layers", where),
        ffn_dim=_same(c, "encoder_ffn_dim", "decoder_ffn_dim", where), vocab_size=V,
        max_positions=_int(c, "max_position_embeddings", where, lo=2),
        activation=activation("activation_function", c.get("activation_function"), where),
        gated_ffn=False, norm_placement=fam["norm_placement"], norm_kind="layer_norm",
        layer_norm_eps=1e-5, linear_bias=True, scale_attention=True,
        scale_embedding=_bool(c, "scale_embedding", where, False),
        embedding_norm=fam["embedding_norm"],
        positional_encoding=None,  # set by the tensor mapping (Marian: table stored or not)
        position_offset=0, relative_attention_num_buckets=0,
        relative_attention_max_distance=128,
        tie_output_embedding=_bool(c, "tie_word_embeddings", where, True), output_scale=1.0,
        # HF's Marian and BART-family tokenizers: Marian appends exactly </s>; the others
        # frame the source with more (bos, language codes), which their tokenizer adds.
        add_eos_to_source=mt == "marian")
    if mt == "m2m100":
        out["positional_encoding"] = "sinusoidal_fairseq"
        out["position_offset"] = _int(c, "pad_token_id", where, lo=0) + 1
    elif mt in ("bart", "mbart"):
        out["positional_encoding"] = "learned"
    share = _bool(c, "share_encoder_decoder_embeddings", where, True) if mt == "marian" else True
    if D % 2:
        raise ConvertError(f"{where}: d_model {D} is odd; attnserve's positions need it even")
    return out, dict(share=share, final_norm=fam["final_norm"])


def t5_config(cfg, where):
    c = merged(cfg)
    D = _int(c, "d_model", where)
    proj = c.get("feed_forward_proj", "relu")
    parts = proj.split("-") if isinstance(proj, str) else [None]
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
        raise ConvertError(f"{where}: feed_forward_proj {proj!r} is not 'ACT' or 'gated-ACT'")
    act = "gelu_new" if proj == "gated-gelu" else parts[-1]  # HF's special case
    if act not in ACTIVATIONS:
        raise ConvertError(f"{where}: feed_forward_proj {proj!r} is not supported "
                           f"(activation {act!r}; supported: {', '.join(sorted(ACTIVATIONS))})")
    n_enc = _int(c, "num_layers", where)
    tied = _bool(c, "tie_word_embeddings", where, True)
    eps = c.get("layer_norm_epsilon")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
        raise ConvertError(f"{where}: layer_norm_epsilon must be a positive number, got {eps!r}")
    out = dict(
        d_model=D, num_heads=_int(c, "num_heads", where),
        attention_head_dim=_int(c, "d_kv", where), encoder_layers=n_enc,
        decoder_layers=_int(c, "num_decoder_layers", where) if "num_decoder_layers" in c else n_enc,
        ffn_dim=_int(c, "d_ff", where), vocab_size=_int(c, "vocab_size", where),
        max_positions=_int(c, "n_positions", where, lo=2) if "n_positions" in c else 512,
        activation=ACTIVATIONS[act], gated_ffn=len(parts) == 2, norm_placement="pre",
        norm_kind="rms_norm", layer_norm_eps=float(eps), linear_bias=False,
        scale_attention=False, scale_embedding=False, embedding_norm=False,
        positional_encoding="none", position_offset=0,
        relative_attention_num_buckets=_int(c, "relative_attention_num_buckets", where),
        relative_attention_max_distance=_int(c, "relative_attention_max_distance", where),
        tie_output_embedding=tied, output_scale=D ** -0.5 if tied else 1.0,
        add_eos_to_source=True)  # HF's T5 tokenizer appends exactly </s>
    return out, dict(tied=tied)


_int_ok = lambda v: isinstance(v, int) and not isinstance(v, bool)
_ids_ok = lambda v: _int_ok(v) or (isinstance(v, list) and bool(v) and all(_int_ok(e) for e in v))
GEN_TYPES = dict(decoder_start_token_id=_int_ok, bos_token_id=_int_ok, pad_token_id=_int_ok,
                 forced_bos_token_id=_int_ok, max_length=_int_ok, max_new_tokens=_int_ok,
                 min_length=_int_ok, no_repeat_ngram_size=_int_ok, num_beams=_int_ok,
                 eos_token_id=_ids_ok, forced_eos_token_id=_ids_ok,
                 length_penalty=lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))


def generation(cfg, gen, where):
    """The generation settings resolved as hf-reference.md says (generation_config.json,
    else config.json, else the family default, else GenerationConfig's default), as the
    normalised dict to write. Settings that change the output but are not implemented are
    refused unless neutral."""
    # The generation controls the reference now decodes (do_sample, ...) are not yet carried
    # into the converted directory's settings: refused unless neutral, as before.
    controls = dict(do_sample=False, num_return_sequences=1, repetition_penalty=1.0,
                    min_new_tokens=None, suppress_tokens=None)
    for k, neutral in dict(GenConfig.NEUTRAL, **controls).items():
        v = gen.get(k, cfg.get(k))
        if v is not None and v != neutral and not (neutral is None and v in ([], {})):
            raise ConvertError(f"{where}: generation setting {k} {v!r} is not supported")
    for src_name, src in (("generation_config.json", gen), ("config.json", cfg)):
        for k, v in src.items():
            if v is not None and k in GEN_TYPES and not GEN_TYPES[k](v):
                path = os.path.join(os.path.dirname(where), src_name)
                raise ConvertError(f"{path}: {k} {v!r} has the wrong type")
    try:
        gc = GenConfig(cfg, gen, DEFAULTS[cfg["model_type"]])
    except CheckpointError as e:
        raise ConvertError(f"{where}: {e}") from None
    except (TypeError, ValueError, OverflowError) as e:  # e.g. "max_length": "20"
        raise ConvertError(f"{where}: a generation setting has the wrong type: {e}") from None
    _check_generation(gc, where)
    one = lambda ids: ids[0] if len(ids) == 1 else list(ids)
    out = collections.OrderedDict(decoder_start_token_id=gc.start, eos_token_id=one(gc.eos),
                                  pad_token_id=gc.pad)
    if gc.forced_bos is not None:
        out["forced_bos_token_id"] = gc.forced_bos
    if gc.forced_eos is not None:
        out["forced_eos_token_id"] = one(gc.forced_eos)
    if gc.bad_words:
        out["bad_words_ids"] = gc.bad_words
    out.update(max_length=gc.max_length, min_length=gc.min_length,
               no_repeat_ngram_size=gc.no_repeat_ngram, num_beams=gc.num_beams,
               length_penalty=gc.length_penalty, early_stopping=gc.early_stopping)
    return out, gc


def _is_id(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_generation(gc, where):
    """What GenConfig leaves unchecked: the forced ids' types and the counts' ranges."""
    if gc.forced_bos is not None and not _is_id(gc.forced_bos):
        raise ConvertError(f"{where}: forced_bos_token_id {gc.forced_bos!r} is not a token id")
    fe = gc.forced_eos
    if fe is not None and not (isinstance(fe, list) and fe and all(_is_id(e) for e in fe)):
        raise ConvertError(f"{where}: forced_eos_token_id {fe!r} is not a token id or a "
                           "non-empty list of them")
    for key, v, lo in (("min_length", gc.min_length, 0), ("no_repeat_ngram_size", gc.no_repeat_ngram, 0),
                       ("num_beams", gc.num_beams, 1)):
        if v < lo:
            raise ConvertError(f"{where}: {key} {v!r} must be >= {lo}")
    if not math.isfinite(gc.length_penalty):
        raise ConvertError(f"{where}: length_penalty {gc.length_penalty!r} is not finite")


def special_ids(cfg, gc, out, where):
    """pad/bos/eos/decoder_start ids, agreeing with the generation config (the engine's
    eos_id is eos_ids[0]). A model whose positions depend on the padding id (M2M100) must
    pad with the same id the configs name."""
    c = merged(cfg)
    model_pad = c.get("pad_token_id")
    if model_pad is not None and model_pad != gc.pad:
        raise ConvertError(f"{where}: pad_token_id {gc.pad!r} of the generation settings differs "
                           f"from config.json's {model_pad!r}")
    bos = c.get("bos_token_id")
    ids = dict(pad_id=gc.pad, bos_id=gc.start if bos is None else bos, eos_id=gc.eos[0],
               decoder_start_id=gc.start)
    V = out["vocab_size"]
    for key, v in ids.items():
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < V:
            raise ConvertError(f"{where}: {key} {v!r} is outside [0, vocab_size {V})")
    for e in gc.eos + (gc.forced_eos or []) + ([gc.forced_bos] if gc.forced_bos is not None else []):
        if not isinstance(e, int) or not 0 <= e < V:
            raise ConvertError(f"{where}: generation token id {e!r} is outside [0, vocab_size {V})")
    out.update(ids)


def ordered(out):
    missing = [k for k in KEY_ORDER if k not in out and k != "architecture"]
    assert not missing, missing
    d = collections.OrderedDict(architecture="transformer-encoder-decoder")
    for k in KEY_ORDER[1:]:
        d[k] = out[k]
    for k in out:
        if k not in d:
            d[k] = out[k]
    return d
