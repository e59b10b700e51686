#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into tests/fuzz/corpus/<target>/.

Seeds are small valid inputs (and a few near misses) from which libFuzzer
mutates; they are checked in, and this script regenerates them:

    tests/fuzz/make_seeds.py        # needs protoc (protobuf-compiler)

model_dir: config.json, the separator, model.safetensors, the separator,
vocab.txt (fuzz_util.h). safetensors: one file each. generate_request: 5
setup bytes, then a serialized GenerateRequest (generate_request_fuzzer.cc).
"""

import json
import os
import shutil
import struct
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SEPARATOR = b"\n--8<--\n"


def safetensors(tensors, dtype="F32", metadata=None):
    """tensors: [(name, shape)]; values are small distinct numbers."""
    header, data = {}, b""
    for name, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        values = [0.25 * (i % 7) - 0.5 for i in range(count)]
        if dtype == "F32":
            raw = struct.pack(f"<{count}f", *values)
        elif dtype == "F16":
            raw = struct.pack(f"<{count}e", *values)
        else:  # BF16: the top half of each float32
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        header[name] = {"dtype": dtype, "shape": shape,
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
    out = []
    if shared:
        out.append(("shared.embed.weight", [v, d]))
    else:
        out += [("encoder.embed.weight", [v, d]), ("decoder.embed.weight", [v, d])]

    def linear(prefix, o, i):
        out.extend([(prefix + ".weight", [o, i]), (prefix + ".bias", [o])])

    def norm(prefix):
        out.extend([(prefix + ".weight", [d]), (prefix + ".bias", [d])])

    def attention(prefix):
        for p in "qkvo":
            linear(f"{prefix}.{p}_proj", d, d)

    def ffn(prefix):
        linear(prefix + ".fc1", f, d)
        linear(prefix + ".fc2", d, f)

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
        "config_only": [TINY, None, None, None],
        # A key that sizes memory: nothing may be allocated for every
        # position at load (fuzz.sh caps a single allocation at 512 MB).
        "huge_max_positions": [dict(TINY, max_positions=1 << 20),
                               model_tensors(TINY), "F32", None],
    }


def write_model_dir_corpus(out):
    for name, (config, tensors, dtype, vocab) in model_dir_seeds().items():
        blob = json.dumps(config, indent=1).encode()
        if tensors is not None:
            metadata = {"format": "pt"} if "metadata" in name else None
            blob += SEPARATOR + safetensors(tensors, dtype, metadata)
        if vocab is not None:
            blob += SEPARATOR + vocab
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
