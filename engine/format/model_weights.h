#pragma once
// All tensors of a model directory, as stored (plain float, PyTorch layouts),
// checked against the config. The network (transformer.h) turns these into
// backend-ready weights and may release each plain tensor once it is packed, so
// the process never holds more than about one copy of the model.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/model_config.h"
#include "engine/format/tensor_source.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

struct LinearWeights {
  Tensor weight;  // [out_features, in_features]; y = x W^T + b
  Tensor bias;    // [out_features]
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
// config does not use are ignored.
absl::StatusOr<ModelWeights> LoadAttnserveWeights(const TensorSource& source,
                                                  const ModelConfig& config);

// LoadAttnserveWeights of the safetensors file at `path` (and anything
// SafetensorsFile::Open rejects).
absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& path,
                                              const ModelConfig& config);

}  // namespace attnserve::engine
