#pragma once
// The encoder-decoder network with weights packed for one backend: the
// encoder over a padded batch, the cross-attention keys/values of its output,
// and one incremental decoder step over rows that each carry their own KV
// cache. The paper's layer and the Hugging Face families' variants are the
// same network put together from blocks the config chooses (norm.h,
// positions.h, relative_position.h, feed_forward.h). Decoding strategies
// (greedy, beam) live in engine/decode/; this file only computes.

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"
#include "engine/memory/tensor.h"
#include "engine/network/embedding_table.h"
#include "engine/network/feed_forward.h"
#include "engine/network/norm.h"
#include "engine/network/positions.h"
#include "engine/network/precision.h"
#include "engine/network/relative_position.h"
#include "engine/ops/attention.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// Buffers reused across calls so the token loop does not allocate. Owned by the
// caller (one per inference thread); contents are meaningless between calls.
// A = attention_dim() (d_model unless the config says otherwise).
struct TransformerScratch {
  Tensor x;       // [rows, d_model] the residual stream
  Tensor h;       // [rows, d_model] normalised input of a sub-layer (pre-norm)
  Tensor qkv;     // [rows, 3 * A]
  Tensor q;       // [rows, A]
  Tensor attn;    // [rows, A]
  Tensor ffn;     // [rows, ffn_dim], gated: [rows, 2 * ffn_dim]
  Tensor gated;   // [rows, ffn_dim] (gated FFN only)
  Tensor memory;  // [rows, d_model] encoder output
  std::vector<const float*> k_ptrs, v_ptrs;
  std::vector<const uint16_t*> k_bf16_ptrs, v_bf16_ptrs;  // bfloat16 caches
  std::vector<int32_t> lengths;
  std::vector<int32_t> positions;
  std::vector<float> position_bias;  // relative position bias, per head
};

// One decoder row (a greedy sequence or one beam hypothesis) in a step.
struct DecoderRow {
  int32_t token = 0;  // the input token of this step
  int32_t position =
      0;  // its position (0 for the start token); also the cache length
  // This row's self-attention cache, [decoder_layers, 2, capacity, A]
  // elements of the network's kv_cache_type() (float, or uint16_t bfloat16
  // bit patterns): layer l's keys at element l * 2 * capacity * A, its values
  // capacity * A further. The step writes the keys and values of `position`
  // and attends over [0, position].
  void* self_cache = nullptr;
  int64_t cache_capacity = 0;
  // Cross-attention keys/values of the row's source, [src_len, decoder_layers *
  // 2 * A] elements of kv_cache_type() as produced by CrossKeyValues.
  const void* cross_kv = nullptr;
  int32_t src_len = 0;
};

class Transformer {
 public:
  // Packs `weights` for ctx's backend in `precision`, releasing each plain
  // tensor once it is packed.
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(
      const ModelConfig& config, ModelWeights weights, const OpContext& ctx,
      const Precision& precision = {});
  ~Transformer();

  const ModelConfig& config() const { return config_; }
  size_t weight_bytes() const;
  // The element type of the KV caches and the cross-attention K/V
  // (Precision::kv_cache): float32 or bfloat16.
  ComputeType kv_cache_type() const { return kv_cache_; }
  // Elements per row of CrossKeyValues' output: decoder_layers * 2 * A.
  int64_t cross_kv_width() const;
  // Floats of the Tensor that holds CrossKeyValues' output for `rows` rows
  // (half as many elements' worth at bfloat16).
  int64_t cross_kv_size(int64_t rows) const;
  // Floats of the Tensor that holds one row's self-attention cache with room
  // for `capacity` positions.
  int64_t self_cache_size(int64_t capacity) const;

  // Runs the encoder over `batch` sources padded to `src_len`: tokens [batch,
  // src_len] (entries past lengths[b] are ignored), lengths[b] in [1, src_len].
  // Writes the encoder output to scratch->memory as [batch * src_len, d_model];
  // padded rows hold garbage.
  absl::Status Encode(const OpContext& ctx, absl::Span<const int32_t> tokens,
                      int64_t batch, int64_t src_len,
                      absl::Span<const int32_t> lengths,
                      TransformerScratch* scratch) const;

  // Projects encoder output rows [rows, d_model] to every decoder layer's
  // cross-attention keys and values at once: out [rows, cross_kv_width()]
  // elements of kv_cache_type(), in a buffer of cross_kv_size(rows) floats.
  absl::Status CrossKeyValues(const OpContext& ctx, const float* memory,
                              int64_t rows, float* out) const;

  // One incremental decoder step for every row, up to the output projection:
  // leaves the final decoder states [rows.size(), d_model] in scratch->x.
  absl::Status DecodeStep(const OpContext& ctx,
                          absl::Span<const DecoderRow> rows,
                          TransformerScratch* scratch) const;

  // The output projection runs in vocabulary slices, so that a step never
  // holds [rows, vocab_size] logits: slice i covers tokens
  // [vocab_slice_begin(i), vocab_slice_begin(i + 1)).
  int vocab_slices() const { return static_cast<int>(lm_head_.size()); }
  int64_t vocab_slice_begin(int slice) const;
  // Logits (+ bias, not normalised) of slice `slice` for the `rows` states of
  // the last DecodeStep: out [rows, slice width].
  absl::Status ProjectVocabSlice(const OpContext& ctx,
                                 const TransformerScratch& scratch,
                                 int64_t rows, int slice, float* out) const;

 private:
  struct EncoderLayer {
    std::unique_ptr<PackedLinear> qkv;  // [3A, d]: q, k and v in one product
    std::unique_ptr<PackedLinear> o;    // [d, A]
    Norm self_attn_norm;
    FeedForward ffn;
    Norm ffn_norm;
  };
  // A decoder layer is an encoder layer (causal self-attention + FFN) plus
  // cross-attention.
  struct DecoderLayer : EncoderLayer {
    std::unique_ptr<PackedLinear> cross_q;  // [A, d]
    std::unique_ptr<PackedLinear> cross_o;  // [d, A]
    Norm cross_attn_norm;
  };
  // One stack's input side: its token table, positions, embedding norm and
  // relative position bias.
  struct Stack {
    EmbeddingTable embed;  // empty when shared (the encoder's) or held by
                           // lm_head_
    std::unique_ptr<Positions> positions;
    Norm embed_norm;
    RelativePositionBias relative_bias;
    Norm final_norm;
  };

  Transformer() = default;
  // The bodies of Encode and DecodeStep, which may throw std::bad_alloc.
  absl::Status EncodeBody(const OpContext& ctx,
                          absl::Span<const int32_t> tokens, int64_t batch,
                          int64_t src_len, absl::Span<const int32_t> lengths,
                          TransformerScratch* scratch) const;
  absl::Status DecodeStepBody(const OpContext& ctx,
                              absl::Span<const DecoderRow> rows,
                              TransformerScratch* scratch) const;
  // x [rows, d] = embed_norm(embedding(token) * scale + PE(index)).
  absl::Status Embed(const OpContext& ctx, const Stack& stack,
                     const EmbeddingTable& table,
                     absl::Span<const int32_t> tokens,
                     absl::Span<const int32_t> indices, float* x) const;
  // The residual sub-layer wrapper for both norm placements: `sublayer(in)`
  // reads the sub-layer input and accumulates its result into the residual
  // stream x.
  template <typename Sublayer>
  absl::Status Residual(const OpContext& ctx, const Norm& norm, int64_t rows,
                        TransformerScratch* s, Sublayer sublayer) const;
  // Attention arguments shared by every attention of the network (heads,
  // scale); the caller fills in the rest.
  AttentionArgs BaseAttention() const;

  ModelConfig config_;
  ComputeType kv_cache_ = ComputeType::kFloat32;
  LinearActivation activation_ = LinearActivation::kRelu;
  float embed_scale_ = 1.0f;
  // With a shared table the decoder's embed is empty and lookups read the
  // encoder's. A table tied to the output projection is empty too when the
  // projection holds its own copy (see Create); lookups then read lm_head_.
  bool shared_embedding_ = false;
  Stack encoder_stack_;
  Stack decoder_stack_;
  std::vector<EncoderLayer> encoder_;
  std::vector<DecoderLayer> decoder_;
  std::unique_ptr<PackedLinear>
      cross_kv_;  // [layers * 2A, d]: every layer's cross k, v
  // The output projection's table (the decoder's embedding when tied, else
  // lm_head.weight, held here unless the slices copied it) and bias;
  // lm_head_[i] borrows (or copied) vocabulary slice i of them.
  Tensor lm_head_weight_;
  Tensor lm_head_bias_;
  std::vector<std::unique_ptr<PackedLinear>> lm_head_;
};

}  // namespace attnserve::engine
