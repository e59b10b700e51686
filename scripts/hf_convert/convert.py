"""convert(): a Hugging Face checkpoint directory -> an attnserve model directory."""

import os

from . import config_map, source, tensors_bart, tensors_t5, tokenizer_files, writer
from .errors import ConvertError


def plan(model_dir):
    """Reads and maps everything, writes nothing: (config, tensors, generation, files)."""
    cfg, gen = source.read_configs(model_dir)
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


def convert(model_dir, out_dir, dtype="float32", force=False):
    if dtype not in writer.DTYPES:
        raise ConvertError(f"--dtype {dtype!r} is not one of {', '.join(writer.DTYPES)}")
    writer.check_output_dir(out_dir, model_dir, force)
    config, tensors, generation, files = plan(model_dir)
    writer.write(out_dir, model_dir, config, writer.cast(tensors, dtype), generation, files)
    return config
