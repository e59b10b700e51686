"""BART-family (bart, mbart, marian, m2m100) tensors -> attnserve names (FORMAT_SPEC)."""

from .tensor_plan import TensorPlan

P = "model."


def _norm(plan, ours, theirs, D):
    plan.copy(ours + ".weight", theirs + ".weight", (D,))
    plan.copy(ours + ".bias", theirs + ".bias", (D,))


def _attn(plan, ours, theirs, D):
    for a, b in (("q", "q"), ("k", "k"), ("v", "v"), ("o", "out")):
        plan.copy(f"{ours}.{a}_proj.weight", f"{theirs}.{b}_proj.weight", (D, D))
        plan.copy(f"{ours}.{a}_proj.bias", f"{theirs}.{b}_proj.bias", (D,))


def map_tensors(mt, sd, source, cfg, extra):
    """Fills cfg["positional_encoding"] for Marian (stored table -> learned, absent ->
    sinusoidal_concat) and returns {attnserve name: tensor}."""
    plan = TensorPlan(sd, source)
    D, V, F, Pn = cfg["d_model"], cfg["vocab_size"], cfg["ffn_dim"], cfg["max_positions"]
    tied = cfg["tie_output_embedding"]
    head = ["lm_head.weight"] if tied else []
    if extra["share"]:
        plan.put("shared.embed.weight", plan.tied(
            [P + "shared.weight", P + "encoder.embed_tokens.weight",
             P + "decoder.embed_tokens.weight"] + head, (V, D), "the shared embedding"))
    else:
        plan.put("encoder.embed.weight", plan.tied([P + "encoder.embed_tokens.weight"], (V, D),
                                                   "the encoder embedding"))
        plan.put("decoder.embed.weight", plan.tied([P + "decoder.embed_tokens.weight"] + head,
                                                   (V, D), "the decoder embedding"))
    if not tied:
        plan.copy("lm_head.weight", "lm_head.weight", (V, D))
    if "final_logits_bias" in sd and mt != "m2m100":  # m2m100 has none: unknown there
        plan.put("lm_head.bias", plan.get("final_logits_bias", (1, V))[0])

    for side in ("encoder", "decoder"):
        pos = f"{P}{side}.embed_positions.weight"
        if mt in ("bart", "mbart"):  # learned; rows 0, 1 are BART's offset, never used
            plan.put(f"{side}.embed_positions.weight", plan.get(pos, (Pn + 2, D))[2:])
        elif mt == "marian":
            if pos in sd:
                plan.copy(f"{side}.embed_positions.weight", pos, (Pn, D))
        else:  # m2m100: computed, never stored; old files carry non-persistent buffers
            plan.ignore(f"{P}{side}.embed_positions.weights",
                        f"{P}{side}.embed_positions._float_tensor")
        n = cfg[f"{side}_layers"]
        for i in range(n):
            o, t = f"{side}.layers.{i}", f"{P}{side}.layers.{i}"
            _attn(plan, o + ".self_attn", t + ".self_attn", D)
            _norm(plan, o + ".self_attn_norm", t + ".self_attn_layer_norm", D)
            if side == "decoder":
                _attn(plan, o + ".cross_attn", t + ".encoder_attn", D)
                _norm(plan, o + ".cross_attn_norm", t + ".encoder_attn_layer_norm", D)
            plan.copy(o + ".ffn.fc1.weight", t + ".fc1.weight", (F, D))
            plan.copy(o + ".ffn.fc1.bias", t + ".fc1.bias", (F,))
            plan.copy(o + ".ffn.fc2.weight", t + ".fc2.weight", (D, F))
            plan.copy(o + ".ffn.fc2.bias", t + ".fc2.bias", (D,))
            _norm(plan, o + ".ffn_norm", t + ".final_layer_norm", D)
        if cfg["embedding_norm"]:
            _norm(plan, f"{side}.embed_norm", f"{P}{side}.layernorm_embedding", D)
        if extra["final_norm"]:
            _norm(plan, f"{side}.final_norm", f"{P}{side}.layer_norm", D)
    if mt == "marian":
        enc = P + "encoder.embed_positions.weight" in sd
        if enc != (P + "decoder.embed_positions.weight" in sd):
            plan.get(P + ("decoder" if enc else "encoder") + ".embed_positions.weight", (Pn, D))
        cfg["positional_encoding"] = "learned" if enc else "sinusoidal_concat"
    return plan.finish()
