#include "engine/format/model_weights.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/safetensors.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// The list of tensors the config asks for, each with its expected shape and
// destination. Everything is checked (presence, shape, dtype) before any tensor
// data is read, so a broken file fails in milliseconds instead of after reading
// most of a large model.
class WeightPlan {
 public:
  WeightPlan(const SafetensorsFile& file, const ModelConfig& config)
      : file_(file), d_(config.d_model), ffn_(config.ffn_dim) {}

  bool Has(const std::string& name) const {
    return file_.Find(name) != nullptr;
  }

  // `why` (may be empty) is added to the "missing tensor" message.
  void Require(std::string name, std::vector<int64_t> shape, Tensor* dst,
               std::string why = "") {
    slots_.push_back({std::move(name), std::move(shape), dst, std::move(why)});
  }

  void Linear(const std::string& prefix, int64_t out, int64_t in,
              LinearWeights* w) {
    Require(prefix + ".weight", {out, in}, &w->weight);
    Require(prefix + ".bias", {out}, &w->bias);
  }

  void Norm(const std::string& prefix, NormWeights* w,
            const std::string& why = "") {
    Require(prefix + ".weight", {d_}, &w->gamma, why);
    Require(prefix + ".bias", {d_}, &w->beta, why);
  }

  void Attention(const std::string& prefix, AttentionWeights* w) {
    Linear(prefix + ".q_proj", d_, d_, &w->q);
    Linear(prefix + ".k_proj", d_, d_, &w->k);
    Linear(prefix + ".v_proj", d_, d_, &w->v);
    Linear(prefix + ".o_proj", d_, d_, &w->o);
  }

  void Ffn(const std::string& prefix, FfnWeights* w) {
    Linear(prefix + ".fc1", ffn_, d_, &w->fc1);
    Linear(prefix + ".fc2", d_, ffn_, &w->fc2);
  }

  absl::Status Validate() const {
    for (const Slot& slot : slots_) {
      const TensorInfo* info = file_.Find(slot.name);
      if (info == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(file_.path(), ": missing tensor \"", slot.name,
                         "\" (shape ", ShapeString(slot.shape),
                         slot.why.empty() ? "" : "; ", slot.why, ")"));
      }
      if (info->shape != slot.shape) {
        return absl::InvalidArgumentError(absl::StrCat(
            file_.path(), ": tensor \"", slot.name, "\" has shape ",
            ShapeString(info->shape), ", expected ", ShapeString(slot.shape)));
      }
      if (info->dtype != DType::kF32 && info->dtype != DType::kF16 &&
          info->dtype != DType::kBF16) {
        return absl::InvalidArgumentError(absl::StrCat(
            file_.path(), ": tensor \"", slot.name, "\" has dtype ",
            info->dtype_name, "; weights must be F32, F16 or BF16"));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Read() const {
    for (const Slot& slot : slots_) {
      ASSIGN_OR_RETURN(*slot.dst, file_.ReadF32(*file_.Find(slot.name)));
    }
    return absl::OkStatus();
  }

 private:
  struct Slot {
    std::string name;
    std::vector<int64_t> shape;
    Tensor* dst;
    std::string why;
  };

  const SafetensorsFile& file_;
  const int64_t d_;
  const int64_t ffn_;
  std::vector<Slot> slots_;
};

absl::Status PlanEmbeddings(const ModelConfig& c, const std::string& path,
                            WeightPlan* plan, ModelWeights* w) {
  const std::vector<int64_t> shape = {c.vocab_size, c.d_model};
  const bool shared = plan->Has("shared.embed.weight");
  const bool separate =
      plan->Has("encoder.embed.weight") || plan->Has("decoder.embed.weight");
  if (shared && separate) {
    // Which table would the model use? Refuse rather than guess.
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": tensor \"shared.embed.weight\" and \"encoder.embed.weight\"/"
        "\"decoder.embed.weight\" are both present; a model has either one "
        "shared table or two separate ones"));
  }
  if (!shared && !separate) {
    return absl::InvalidArgumentError(absl::StrCat(
        path,
        ": missing tensor \"shared.embed.weight\" (or \"encoder.embed.weight\" "
        "and \"decoder.embed.weight\")"));
  }
  w->shared_embedding = shared;
  if (shared) {
    plan->Require("shared.embed.weight", shape, &w->encoder_embed);
  } else {
    plan->Require("encoder.embed.weight", shape, &w->encoder_embed);
    plan->Require("decoder.embed.weight", shape, &w->decoder_embed);
  }
  return absl::OkStatus();
}

// Pre-norm needs the final LN; post-norm applies it only when present, and then
// both tensors must be there (a lone weight or bias is a broken export, not
// "absent").
void PlanFinalNorm(const ModelConfig& c, const std::string& stack,
                   WeightPlan* plan, NormWeights* norm) {
  const std::string prefix = stack + ".final_norm";
  if (c.norm_placement == NormPlacement::kPre) {
    plan->Norm(prefix, norm, "required for norm_placement \"pre\"");
  } else if (plan->Has(prefix + ".weight") || plan->Has(prefix + ".bias")) {
    plan->Norm(prefix, norm, "final_norm needs both weight and bias");
  }
}

}  // namespace

absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& path,
                                              const ModelConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(path));
  const ModelConfig& c = config;
  WeightPlan plan(*file, c);
  ModelWeights w;

  RETURN_IF_ERROR(PlanEmbeddings(c, path, &plan, &w));

  // Sized once, before the plan takes pointers into them.
  w.encoder_layers.resize(c.encoder_layers);
  w.decoder_layers.resize(c.decoder_layers);
  for (int i = 0; i < c.encoder_layers; ++i) {
    const std::string prefix = absl::StrCat("encoder.layers.", i);
    EncoderLayerWeights& layer = w.encoder_layers[i];
    plan.Attention(prefix + ".self_attn", &layer.self_attn);
    plan.Norm(prefix + ".self_attn_norm", &layer.self_attn_norm);
    plan.Ffn(prefix + ".ffn", &layer.ffn);
    plan.Norm(prefix + ".ffn_norm", &layer.ffn_norm);
  }
  PlanFinalNorm(c, "encoder", &plan, &w.encoder_final_norm);
  for (int i = 0; i < c.decoder_layers; ++i) {
    const std::string prefix = absl::StrCat("decoder.layers.", i);
    DecoderLayerWeights& layer = w.decoder_layers[i];
    plan.Attention(prefix + ".self_attn", &layer.self_attn);
    plan.Norm(prefix + ".self_attn_norm", &layer.self_attn_norm);
    plan.Attention(prefix + ".cross_attn", &layer.cross_attn);
    plan.Norm(prefix + ".cross_attn_norm", &layer.cross_attn_norm);
    plan.Ffn(prefix + ".ffn", &layer.ffn);
    plan.Norm(prefix + ".ffn_norm", &layer.ffn_norm);
  }
  PlanFinalNorm(c, "decoder", &plan, &w.decoder_final_norm);

  // A tied model ignores any lm_head.weight in the file (some exporters write
  // the tied matrix twice).
  if (!c.tie_output_embedding) {
    plan.Require("lm_head.weight", {c.vocab_size, c.d_model}, &w.lm_head_weight,
                 "required because tie_output_embedding is false");
  }
  if (plan.Has("lm_head.bias")) {
    plan.Require("lm_head.bias", {c.vocab_size}, &w.lm_head_bias);
  }

  RETURN_IF_ERROR(plan.Validate());
  RETURN_IF_ERROR(plan.Read());
  return w;
}

}  // namespace attnserve::engine
