"""convert(): a Hugging Face checkpoint directory -> an attnserve model directory."""

import os

from . import config_map, quantize, source, tensors_bart, tensors_t5, tokenizer_files, writer
from .errors import ConvertError


def plan_attnserve(model_dir, cfg, gen):
    """An attnserve model directory re-stored (e.g. quantized): config, tensors and
    generation config as they are, its tokenizer files (vocab_file and the Hugging Face
    ones) copied. Its tensors are checked by the engine when it loads the output."""
    sd, fname = source.read_state_dict(model_dir)
    for name, t in sd.items():
        if not t.is_floating_point():
            raise ConvertError(f"{os.path.join(model_dir, fname)}: tensor {name} has dtype "
                               f"{t.dtype}; convert from the floating-point model (an "
                               "attnserve directory already quantized cannot be again)")
    files = tokenizer_files.present(model_dir)
    vocab = cfg.get("vocab_file")
    if isinstance(vocab, str) and vocab not in files:
        if os.path.basename(vocab) != vocab or not os.path.isfile(os.path.join(model_dir, vocab)):
            raise ConvertError(f"{os.path.join(model_dir, 'config.json')}: vocab_file "
                               f"{vocab!r} is not a file in {model_dir}")
        files.append(vocab)
    return cfg, sd, (gen or None), files


def plan(model_dir):
    """Reads and maps everything, writes nothing: (config, tensors, generation, files)."""
    cfg, gen = source.read_configs(model_dir)
    if "architecture" in cfg and "model_type" not in cfg:
        return plan_attnserve(model_dir, cfg, gen)
    where = os.path.join(model_dir, "config.json")
    mt = config_map.model_type(cfg, where)
    if mt == "t5":
        out, extra = config_map.t5_config(cfg, where)
    else:
        out, extra = config_map.bart_config(cfg, where)
    generation, gc = config_map.generation(cfg, gen, os.path.join(model_dir, "generation_config.json")
                                           if gen else where)
    config_map.special_ids(cfg, gc, out, where)
    files = tokenizer_files.present(model_dir)
    out.update(tokenizer_files.config_keys(mt, model_dir, files))
    sd, fname = source.read_state_dict(model_dir)
    src = os.path.join(model_dir, fname)
    if mt == "t5":
        tensors = tensors_t5.map_tensors(sd, src, out, extra)
    else:
        tensors = tensors_bart.map_tensors(mt, sd, src, out, extra)
    return config_map.ordered(out), tensors, generation, files


def convert(model_dir, out_dir, dtype="float32", force=False, quantization="none",
            float32_embeddings=False):
    if dtype not in writer.DTYPES:
        raise ConvertError(f"--dtype {dtype!r} is not one of {', '.join(writer.DTYPES)}")
    quantize.check(quantization)
    writer.check_output_dir(out_dir, model_dir, force)
    config, tensors, generation, files = plan(model_dir)
    # Every value checked finite (and within --dtype) first; the quantized matrices are
    # then made from the checkpoint's own values, not from their --dtype rounding.
    stored = writer.cast(tensors, dtype)
    stored.update(quantize.convert(tensors, quantization, float32_embeddings))
    writer.write(out_dir, model_dir, config, stored, generation, files)
    return config
