#pragma once
// All tensors of a model directory, as stored (plain float, PyTorch layouts),
// checked against the config. The network (transformer.h) turns these into
// backend-ready weights and may release each plain tensor once it is packed, so
// the process never holds more than about one copy of the model.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/format/model_config.h"
#include "engine/format/tensor_source.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

// A weight the plan (weight_plan.h) has checked (presence, shape, dtype) but
// not read yet: reading every matrix before the network packs them would hold
// the whole float32 model at once, where packing them as read holds about one.
struct DeferredTensor {
  std::vector<int64_t> shape;  // what `read` returns
  // Reads it from the still-open checkpoint; its errors name the file and
  // the tensor. Empty when nothing is deferred.
  std::function<absl::StatusOr<Tensor>()> read;
};

struct LinearWeights {
  Tensor weight;  // [out_features, in_features]; y = x W^T + b
  Tensor bias;    // [out_features]
  // Pending (read set) while `weight` is still in the file; see Materialize.
  DeferredTensor deferred_weight;

  // Reads a deferred `weight` (no-op when it is already read); the reader is
  // dropped, and with it its hold on the checkpoint.
  absl::Status Materialize();
  // `weight`'s shape, read or not.
  const std::vector<int64_t>& weight_shape() const {
    return deferred_weight.read ? deferred_weight.shape : weight.shape();
  }
};

// Biases are empty when the config has linear_bias false.
struct NormWeights {
  Tensor gamma;  // [d_model]
  Tensor beta;   // [d_model]; empty for NormKind::kRmsNorm
};

struct AttentionWeights {
  // q, k, v: [attention_dim, d_model] / [attention_dim];
  // o: [d_model, attention_dim] / [d_model].
  LinearWeights q, k, v, o;
};

struct FfnWeights {
  LinearWeights fc1;         // [ffn_dim, d_model] / [ffn_dim]
  LinearWeights fc1_linear;  // gated_ffn only: the multiplied, unactivated half
  LinearWeights fc2;         // [d_model, ffn_dim] / [d_model]
};

struct EncoderLayerWeights {
  AttentionWeights self_attn;
  NormWeights self_attn_norm;
  FfnWeights ffn;
  NormWeights ffn_norm;
};

struct DecoderLayerWeights {
  AttentionWeights self_attn;
  NormWeights self_attn_norm;
  AttentionWeights cross_attn;
  NormWeights cross_attn_norm;
  FfnWeights ffn;
  NormWeights ffn_norm;
};

struct ModelWeights {
  // When source and target share one table both point at the same data:
  // encoder_embed holds it and shared_embedding is true (decoder_embed is then
  // empty).
  bool shared_embedding = false;
  Tensor encoder_embed;  // [vocab, d_model]
  Tensor decoder_embed;  // [vocab, d_model]; empty when shared_embedding
  std::vector<EncoderLayerWeights> encoder_layers;
  std::vector<DecoderLayerWeights> decoder_layers;
  // positional_encoding kLearned: [max_positions, d_model] each; else empty.
  Tensor encoder_positions;
  Tensor decoder_positions;
  NormWeights encoder_embed_norm;  // embedding_norm only; else empty
  NormWeights decoder_embed_norm;
  // relative_attention_num_buckets > 0: [buckets, num_heads] each; else empty.
  Tensor encoder_relative_bias;
  Tensor decoder_relative_bias;
  NormWeights encoder_final_norm;  // empty tensors when absent (post-norm only)
  NormWeights decoder_final_norm;
  Tensor lm_head_weight;  // [vocab, d_model]; empty when tie_output_embedding
  Tensor lm_head_bias;    // [vocab]; empty when absent

  const Tensor& decoder_embedding() const {
    return shared_embedding ? encoder_embed : decoder_embed;
  }
};

// Reads the tensors of `source` following the attnserve tensor names of
// model-format.md (engine/format/attnserve_layout.cc). Errors (each naming the
// tensor): a required tensor missing, a shape that does not match the config,
// a dtype that is not F32/F16/BF16, pre-norm without final_norm tensors,
// untied output without lm_head.weight, a learned/embedding-norm/relative-bias
// table the config asks for and the file lacks. Tensors in the file that the
// config does not use are ignored. With `keep_open` (the same source, shared)
// the linear weights are checked but left deferred (LinearWeights::
// Materialize reads them from it); else everything is read.
absl::StatusOr<ModelWeights> LoadAttnserveWeights(
    const TensorSource& source, const ModelConfig& config,
    std::shared_ptr<const TensorSource> keep_open = nullptr);

// When a loader reads the linear weights.
enum class ReadLinears {
  kNow,        // all tensors are read before the loader returns
  kWhenPacked  // deferred (LinearWeights::deferred_weight)
};

// LoadAttnserveWeights of the safetensors file at `path` (and anything
// SafetensorsFile::Open rejects).
absl::StatusOr<ModelWeights> LoadModelWeights(
    const std::string& path, const ModelConfig& config,
    ReadLinears read = ReadLinears::kNow);

}  // namespace attnserve::engine
