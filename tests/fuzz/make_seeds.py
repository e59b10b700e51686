#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/.

Seeds are small valid inputs (and a few near misses) from which libFuzzer
mutates; they are checked in, and this script regenerates them:

    tests/fuzz/make_seeds.py        # needs protoc (protobuf-compiler)

model_dir: config.json, the separator, model.safetensors, the separator,
vocab.txt, the separator, generation_config.json (fuzz_util.h). safetensors: one file each. generate_request: 5
setup bytes, then a serialized GenerateRequest (generate_request_fuzzer.cc).
"""

import json
import re
import os
import shutil
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEPARATOR = b"\n--8<--\n"


# The matrices docs/model-format.md ("Quantized tensors") lets a file store as I8.
INT8_MATRIX = re.compile(r"(_proj|\.fc1|\.fc1_linear|\.fc2)\.weight$|"
                         r"^(shared|encoder|decoder)\.embed\.weight$|^lm_head\.weight$")


def safetensors(tensors, dtype="F32", metadata=None):
    """tensors: [(name, shape)]; values are small distinct numbers. dtype "I8": the
    quantizable matrices as I8 with their F32 NAME_scale, the rest F32."""
    header, data = {}, b""
    if dtype == "I8":
        tensors = list(tensors) + [(n + "_scale", shape[:1]) for n, shape in tensors
                                   if INT8_MATRIX.search(n)]
    for name, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        values = [0.25 * (i % 7) - 0.5 for i in range(count)]
        if name.endswith("_scale"):  # int8 scales: finite and >= 0
            values = [0.01 * (1 + i % 5) for i in range(count)]
        stored = dtype
        if dtype == "I8" and not INT8_MATRIX.search(name):
            stored = "F32"
        if stored == "I8":
            raw = struct.pack(f"<{count}b", *[(i * 37) % 255 - 127 for i in range(count)])
        elif stored == "F32":
            raw = struct.pack(f"<{count}f", *values)
        elif stored == "F16":
            raw = struct.pack(f"<{count}e", *values)
        else:  # BF16: the top half of each float32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        header[name] = {"dtype": stored, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def model_tensors(c, shared=True, final_norms=False, lm_head=False,
                  lm_head_bias=False):
    d, f, v = c["d_model"], c["ffn_dim"], c["vocab_size"]
    a = c["num_heads"] * c.get("attention_head_dim", d // c["num_heads"])
    bias = c.get("linear_bias", True)
    rms = c.get("norm_kind") == "rms_norm"
    gated = c.get("gated_ffn", False)
    out = []
    if shared:
        out.append(("shared.embed.weight", [v, d]))
    else:
        out += [("encoder.embed.weight", [v, d]), ("decoder.embed.weight", [v, d])]

    def linear(prefix, o, i):
        out.append((prefix + ".weight", [o, i]))
        if bias:
            out.append((prefix + ".bias", [o]))

    def norm(prefix):
        out.append((prefix + ".weight", [d]))
        if not rms:
            out.append((prefix + ".bias", [d]))

    def attention(prefix):
        for p in "qkv":
            linear(f"{prefix}.{p}_proj", a, d)
        linear(f"{prefix}.o_proj", d, a)

    def ffn(prefix):
        linear(prefix + ".fc1", f, d)
        if gated:
            linear(prefix + ".fc1_linear", f, d)
        linear(prefix + ".fc2", d, f)

    for stack in ("encoder", "decoder"):
        if c.get("positional_encoding") == "learned":
            out.append((stack + ".embed_positions.weight",
                        [c["max_positions"], d]))
        if c.get("embedding_norm"):
            norm(stack + ".embed_norm")
        if c.get("relative_attention_num_buckets", 0) > 0:
            out.append((stack + ".relative_attention_bias.weight",
                        [c["relative_attention_num_buckets"], c["num_heads"]]))

    for i in range(c["encoder_layers"]):
        p = f"encoder.layers.{i}"
        attention(p + ".self_attn"), norm(p + ".self_attn_norm")
        ffn(p + ".ffn"), norm(p + ".ffn_norm")
    for i in range(c["decoder_layers"]):
        p = f"decoder.layers.{i}"
        attention(p + ".self_attn"), norm(p + ".self_attn_norm")
        attention(p + ".cross_attn"), norm(p + ".cross_attn_norm")
        ffn(p + ".ffn"), norm(p + ".ffn_norm")
    if final_norms:
        norm("encoder.final_norm"), norm("decoder.final_norm")
    if lm_head:
        out.append(("lm_head.weight", [v, d]))
    if lm_head_bias:
        out.append(("lm_head.bias", [v]))
    return out


TINY = {"architecture": "transformer-encoder-decoder", "d_model": 2,
        "num_heads": 1, "encoder_layers": 1, "decoder_layers": 1,
        "ffn_dim": 2, "vocab_size": 8, "max_positions": 16}


def hf_bart_tensors(c, model_type):
    """A BART-family checkpoint's names (docs/hf-reference.md)."""
    d, f, v = c["d_model"], c["encoder_ffn_dim"], c["vocab_size"]
    p = c["max_position_embeddings"]
    out = [("model.shared.weight", [v, d])]
    if model_type != "m2m100":
        out.append(("final_logits_bias", [1, v]))

    def linear(prefix, o, i):
        out.extend([(prefix + ".weight", [o, i]), (prefix + ".bias", [o])])

    def norm(prefix):
        out.extend([(prefix + ".weight", [d]), (prefix + ".bias", [d])])

    for stack, layers in (("encoder", c["encoder_layers"]),
                          ("decoder", c["decoder_layers"])):
        m = "model." + stack
        if model_type in ("bart", "mbart"):
            out.append((m + ".embed_positions.weight", [p + 2, d]))
            norm(m + ".layernorm_embedding")
        if model_type in ("mbart", "m2m100"):
            norm(m + ".layer_norm")
        for i in range(layers):
            lp = f"{m}.layers.{i}"
            attns = ["self_attn"] + (["encoder_attn"] if stack == "decoder"
                                     else [])
            for att in attns:
                for q in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    linear(f"{lp}.{att}.{q}", d, d)
                norm(f"{lp}.{att}_layer_norm")
            linear(lp + ".fc1", f, d)
            linear(lp + ".fc2", d, f)
            norm(lp + ".final_layer_norm")
    return out


def hf_t5_tensors(c, gated):
    d, f, v = c["d_model"], c["d_ff"], c["vocab_size"]
    a = c["num_heads"] * c["d_kv"]
    out = [("shared.weight", [v, d])]
    if not c.get("tie_word_embeddings", True):
        out.append(("lm_head.weight", [v, d]))
    for stack in ("encoder", "decoder"):
        out.append((stack + ".final_layer_norm.weight", [d]))
        out.append((f"{stack}.block.0.layer.0.SelfAttention."
                    "relative_attention_bias.weight",
                    [c["relative_attention_num_buckets"], c["num_heads"]]))
        for i in range(c["num_layers"]):
            b = f"{stack}.block.{i}.layer."
            atts = [("0", "SelfAttention")] + (
                [("1", "EncDecAttention")] if stack == "decoder" else [])
            for n, att in atts:
                for q in "qkv":
                    out.append((f"{b}{n}.{att}.{q}.weight", [a, d]))
                out.append((f"{b}{n}.{att}.o.weight", [d, a]))
                out.append((f"{b}{n}.layer_norm.weight", [d]))
            n = "2" if stack == "decoder" else "1"
            for wi in (["wi_0", "wi_1"] if gated else ["wi"]):
                out.append((f"{b}{n}.DenseReluDense.{wi}.weight", [f, d]))
            out.append((f"{b}{n}.DenseReluDense.wo.weight", [d, f]))
            out.append((f"{b}{n}.layer_norm.weight", [d]))
    return out


HF_BART = {"d_model": 4, "vocab_size": 8, "max_position_embeddings": 4,
           "encoder_layers": 1, "decoder_layers": 1,
           "encoder_attention_heads": 2, "decoder_attention_heads": 2,
           "encoder_ffn_dim": 2, "decoder_ffn_dim": 2, "pad_token_id": 1,
           "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 2}
HF_T5 = {"model_type": "t5", "d_model": 4, "vocab_size": 8, "num_layers": 1,
         "num_heads": 2, "d_kv": 3, "d_ff": 2,
         "relative_attention_num_buckets": 4,
         "relative_attention_max_distance": 8, "pad_token_id": 0,
         "eos_token_id": 1, "decoder_start_token_id": 0}
GENERATION = {"decoder_start_token_id": 2, "eos_token_id": [2, 3],
              "forced_bos_token_id": 0, "bad_words_ids": [[1], [4, 5]],
              "max_new_tokens": 6, "min_length": 2, "num_beams": 2,
              "no_repeat_ngram_size": 2, "length_penalty": 1.5,
              "early_stopping": "never", "do_sample": False,
              "temperature": 0.5}


def model_dir_seeds():
    full = dict(TINY, activation="gelu", norm_placement="pre",
                layer_norm_eps=1e-6, scale_embedding=False,
                positional_encoding="sinusoidal_concat",
                tie_output_embedding=False, pad_id=0, bos_id=1, eos_id=2,
                decoder_start_id=2, add_eos_to_source=True,
                tokenizer="char", vocab_file="vocab.txt")
    words = dict(TINY, activation="swish", tokenizer="whitespace",
                 some_future_key=[1, {"a": None}])
    two_layers = dict(TINY, d_model=4, num_heads=2, encoder_layers=2,
                      decoder_layers=2)
    t5_like = dict(TINY, d_model=4, num_heads=2, attention_head_dim=3,
                   norm_kind="rms_norm", norm_placement="pre",
                   linear_bias=False, gated_ffn=True, scale_attention=False,
                   positional_encoding="none",
                   relative_attention_num_buckets=4,
                   relative_attention_max_distance=8, output_scale=0.5,
                   activation="gelu_tanh")
    bart_like = dict(TINY, positional_encoding="learned", max_positions=4,
                     embedding_norm=True)
    return {
        "post_tied_f32": [TINY, model_tensors(TINY), "F32", None],
        "pre_untied_f16_char": [
            full, model_tensors(full, shared=False, final_norms=True,
                                lm_head=True, lm_head_bias=True),
            "F16", b"<pad>\n<s>\n</s>\na\nb\n \n\xc3\xa9"],
        "post_final_norm_bf16_words": [
            words, model_tensors(words, final_norms=True), "BF16",
            b"<pad>\n<s>\n</s>\nthe\nof\njuly"],
        "two_layers_metadata": [
            two_layers, model_tensors(two_layers, lm_head_bias=True), "F32",
            None],
        "post_tied_int8": [TINY, model_tensors(TINY), "I8", None],
        "config_only": [TINY, None, None, None],
        # A key that sizes memory: nothing may be allocated for every
        # position at load (fuzz.sh caps a single allocation at 512 MB).
        "huge_max_positions": [dict(TINY, max_positions=1 << 20),
                               model_tensors(TINY), "F32", None],
        # The issue-16 keys in this format, with a generation_config.json.
        "t5_like_generation": [t5_like, model_tensors(t5_like, final_norms=True),
                               "F32", b"",
                               GENERATION],
        "bart_like": [bart_like, model_tensors(bart_like), "BF16", None],
        # Hugging Face checkpoints as downloaded.
        "hf_bart": [dict(HF_BART, model_type="bart"),
                    hf_bart_tensors(HF_BART, "bart"), "F32", b"",
                    GENERATION],
        "hf_marian_no_positions": [
            dict(HF_BART, model_type="marian", activation_function="swish"),
            hf_bart_tensors(HF_BART, "marian"), "F32", None],
        "hf_m2m100_f16": [dict(HF_BART, model_type="m2m100"),
                          hf_bart_tensors(HF_BART, "m2m100"), "F16", None],
        "hf_mbart": [dict(HF_BART, model_type="mbart"),
                     hf_bart_tensors(HF_BART, "mbart"), "F32", None],
        "hf_t5_gated_untied": [
            dict(HF_T5, feed_forward_proj="gated-gelu",
                 tie_word_embeddings=False),
            hf_t5_tensors(dict(HF_T5, tie_word_embeddings=False), True),
            "F32", b"", {"eos_token_id": 1, "num_beams": 3}],
        "hf_t5_relu": [HF_T5, hf_t5_tensors(HF_T5, False), "F32", None],
    }


def write_model_dir_corpus(out):
    for name, seed in model_dir_seeds().items():
        config, tensors, dtype, vocab = seed[:4]
        generation = seed[4] if len(seed) > 4 else None
        blob = json.dumps(config, indent=1).encode()
        if tensors is not None:
            metadata = {"format": "pt"} if "metadata" in name else None
            blob += SEPARATOR + safetensors(tensors, dtype, metadata)
        if vocab is not None:
            blob += SEPARATOR + vocab
        if generation is not None:
            blob += SEPARATOR + json.dumps(generation).encode()
        write(out, name, blob)


def write_safetensors_corpus(out):
    for dtype in ("F32", "F16", "BF16"):
        write(out, "tiny_model_" + dtype.lower(),
              safetensors(model_tensors(TINY), dtype))
    write(out, "empty_header", safetensors([]))
    write(out, "metadata_only", safetensors([], metadata={"format": "pt"}))
    write(out, "scalar_and_empty",
          safetensors([("scalar", []), ("empty", [0, 3]), ("row", [1, 4])]))
    # Other dtypes parse but do not read as float.
    header = {name: {"dtype": name, "shape": [2], "data_offsets": [0, 16]}
              for name in ("F64", "I64")}
    header.update({name: {"dtype": name, "shape": [2], "data_offsets": [0, 2]}
                   for name in ("I8", "U8", "BOOL")})
    text = json.dumps(header).encode()
    write(out, "other_dtypes", struct.pack("<Q", len(text)) + text + bytes(16))


# (name, setup bytes, GenerateRequest in protobuf text format). Setup byte 0:
# tokenizer = b % 3 (none, char, whitespace), add_eos_to_source = b // 3 % 2,
# max_positions 1048576 = b // 6 % 2, budgets = b // 12 % 4;
# bytes 1-4: max_input_tokens, max_new_tokens_limit, default_max_new_tokens,
# max_beam_size as int8.
REQUESTS = [
    ("ids_greedy", [0, 0, 0, 64, 4], "input_ids: [5, 17, 9] max_new_tokens: 16"),
    ("ids_beam", [0, 32, 32, 16, 8],
     'input_ids: [3, 4, 5, 6] beam_size: 4 length_penalty: 0.6 '
     'return_log_probs: true request_id: "req-seed"'),
    ("char_text", [1, 0, 0, 64, 4], 'text: "monday, 23 november 2026"'),
    ("char_text_eos", [4, 10, 5, 3, 2],
     'text: "the 4th of july, 1976 é€" max_new_tokens: 5'),
    ("words_text_eos", [5, 0, 0, 64, 1],
     'text: "  the  4th of\\tjuly  1976 " beam_size: 1'),
    ("words_special_tokens", [5, 0, 0, 64, 1], 'text: "</s> the <pad> july"'),
    ("both_sources", [2, 0, 0, 64, 4], 'input_ids: [5] text: "the"'),
    ("neither_source", [0, 0, 0, 64, 4], "max_new_tokens: 3"),
    ("huge_positions_tight_budgets", [6 + 12, 0, 0, 64, 8],
     "input_ids: [5, 17, 9] max_new_tokens: 1000000 beam_size: 8"),
    ("huge_positions_default_length", [6 + 36, 0, 0, 127, 4],
     "input_ids: [5, 17, 9, 11] beam_size: 4"),
    ("over_limits", [0, 2, 2, 1, 1],
     "input_ids: [1, 2, 3] max_new_tokens: 9 beam_size: 3 "
     "length_penalty: -1"),
]


def write_generate_request_corpus(out):
    proto = os.path.join(ROOT, "proto")
    for name, setup, text in REQUESTS:
        encoded = subprocess.run(
            ["protoc", "-I", proto, "--encode=attnserve.v1.GenerateRequest",
             "attnserve/v1/attnserve.proto"],
            input=text.encode(), check=True, capture_output=True).stdout
        write(out, name, bytes(b & 0xFF for b in setup) + encoded)


def write(directory, name, blob):
    with open(os.path.join(directory, name), "wb") as f:
        f.write(blob)


def main():
    for target, writer in (("model_dir", write_model_dir_corpus),
                           ("safetensors", write_safetensors_corpus),
                           ("generate_request", write_generate_request_corpus)):
        out = os.path.join(HERE, "corpus", target)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        writer(out)
        print(f"{out}: {len(os.listdir(out))} seeds")


if __name__ == "__main__":
    main()
