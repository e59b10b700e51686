"""T5 (v1.0 and v1.1 / Flan) tensors -> attnserve names (FORMAT_SPEC)."""

from .tensor_plan import TensorPlan


def map_tensors(sd, source, cfg, extra):
    plan = TensorPlan(sd, source)
    D, V, F = cfg["d_model"], cfg["vocab_size"], cfg["ffn_dim"]
    H, A = cfg["num_heads"], cfg["num_heads"] * cfg["attention_head_dim"]
    NB = cfg["relative_attention_num_buckets"]
    tied = extra["tied"]
    names = ["shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
    plan.put("shared.embed.weight", plan.tied(names + (["lm_head.weight"] if tied else []),
                                              (V, D), "the shared embedding"))
    if not tied:
        plan.copy("lm_head.weight", "lm_head.weight", (V, D))

    def attn(ours, theirs):
        for k in "qkv":
            plan.copy(f"{ours}.{k}_proj.weight", f"{theirs}.{k}.weight", (A, D))
        plan.copy(f"{ours}.o_proj.weight", f"{theirs}.o.weight", (D, A))

    def ffn(ours, theirs):
        if cfg["gated_ffn"]:
            plan.copy(ours + ".fc1.weight", theirs + ".wi_0.weight", (F, D))
            plan.copy(ours + ".fc1_linear.weight", theirs + ".wi_1.weight", (F, D))
        else:
            plan.copy(ours + ".fc1.weight", theirs + ".wi.weight", (F, D))
        plan.copy(ours + ".fc2.weight", theirs + ".wo.weight", (D, F))

    for side in ("encoder", "decoder"):
        subs = ["SelfAttention"] + (["EncDecAttention"] if side == "decoder" else [])
        for i in range(cfg[f"{side}_layers"]):
            o, t = f"{side}.layers.{i}", f"{side}.block.{i}.layer"
            attn(o + ".self_attn", t + ".0.SelfAttention")
            plan.copy(o + ".self_attn_norm.weight", t + ".0.layer_norm.weight", (D,))
            if side == "decoder":
                attn(o + ".cross_attn", t + ".1.EncDecAttention")
                plan.copy(o + ".cross_attn_norm.weight", t + ".1.layer_norm.weight", (D,))
            f = len(subs)
            ffn(o + ".ffn", f"{t}.{f}.DenseReluDense")
            plan.copy(o + ".ffn_norm.weight", f"{t}.{f}.layer_norm.weight", (D,))
        plan.copy(f"{side}.relative_attention_bias.weight",
                  f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight", (NB, H))
        plan.copy(f"{side}.final_norm.weight", f"{side}.final_layer_norm.weight", (D,))
    # Some old checkpoints carry a cross-attention bias table T5 never uses; HF ignores it.
    plan.ignore("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight")
    return plan.finish()
