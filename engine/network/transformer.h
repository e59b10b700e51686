#pragma once
// The network of "Attention Is All You Need" with weights packed for one
// backend: the encoder over a padded batch, the cross-attention keys/values of
// its output, and one incremental decoder step over rows that each carry their
// own KV cache. Decoding strategies (greedy, beam) live in generator.cc; this
// file only computes.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

// Buffers reused across calls so the token loop does not allocate. Owned by the
// caller (one per inference thread); contents are meaningless between calls.
struct TransformerScratch {
  Tensor x;       // [rows, d_model] the residual stream
  Tensor h;       // [rows, d_model] normalised input of a sub-layer (pre-norm)
  Tensor qkv;     // [rows, 3 * d_model]
  Tensor q;       // [rows, d_model]
  Tensor attn;    // [rows, d_model]
  Tensor ffn;     // [rows, ffn_dim]
  Tensor memory;  // [rows, d_model] encoder output
  std::vector<const float*> k_ptrs, v_ptrs;
  std::vector<int32_t> lengths;
};

// One decoder row (a greedy sequence or one beam hypothesis) in a step.
struct DecoderRow {
  int32_t token = 0;  // the input token of this step
  int32_t position =
      0;  // its position (0 for the start token); also the cache length
  // This row's self-attention cache, [decoder_layers, 2, capacity, d_model]:
  // layer l's keys at l * 2 * capacity * d_model, its values capacity * d_model
  // further. The step writes the keys and values of `position` and attends over
  // [0, position].
  float* self_cache = nullptr;
  int64_t cache_capacity = 0;
  // Cross-attention keys/values of the row's source, [src_len, decoder_layers *
  // 2 * d_model] as produced by CrossKeyValues.
  const float* cross_kv = nullptr;
  int32_t src_len = 0;
};

class Transformer {
 public:
  // Packs `weights` for ctx's backend, releasing each plain tensor once it is
  // packed.
  static absl::StatusOr<std::unique_ptr<Transformer>> Create(
      const ModelConfig& config, ModelWeights weights, const OpContext& ctx);
  ~Transformer();

  const ModelConfig& config() const { return config_; }
  size_t weight_bytes() const;
  // Floats per row of CrossKeyValues' output: decoder_layers * 2 * d_model.
  int64_t cross_kv_width() const;
  // Floats of one row's self-attention cache with room for `capacity`
  // positions.
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
  // cross-attention keys and values at once: out [rows, cross_kv_width()].
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
  struct Norm {
    Tensor gamma, beta;  // [d_model]; empty when absent
    bool present() const { return !gamma.empty(); }
  };
  struct EncoderLayer {
    std::unique_ptr<PackedLinear>
        qkv;  // [3d, d]: q, k and v fused in one product
    std::unique_ptr<PackedLinear> o;
    Norm self_attn_norm;
    std::unique_ptr<PackedLinear> fc1, fc2;
    Norm ffn_norm;
  };
  // A decoder layer is an encoder layer (causal self-attention + FFN) plus
  // cross-attention.
  struct DecoderLayer : EncoderLayer {
    std::unique_ptr<PackedLinear> cross_q;
    std::unique_ptr<PackedLinear> cross_o;
    Norm cross_attn_norm;
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
  // x [rows, d] = embedding(token) * scale + PE(position).
  absl::Status Embed(const Tensor& table, absl::Span<const int32_t> tokens,
                     absl::Span<const int32_t> positions, float* x) const;
  // The residual sub-layer wrapper for both norm placements: `sublayer(in,
  // out)` reads the sub-layer input and accumulates its result into `out` (the
  // residual stream x).
  template <typename Sublayer>
  absl::Status Residual(const OpContext& ctx, const Norm& norm, int64_t rows,
                        TransformerScratch* s, Sublayer sublayer) const;
  absl::Status Ffn(const OpContext& ctx, const PackedLinear& fc1,
                   const PackedLinear& fc2, const float* in, int64_t rows,
                   TransformerScratch* s) const;
  absl::Status ApplyNorm(const OpContext& ctx, const Norm& norm, float* x,
                         int64_t rows) const;

  ModelConfig config_;
  LinearActivation activation_ = LinearActivation::kRelu;
  float embed_scale_ = 1.0f;
  // Makes rows [0, count) of the positional table ready (see there);
  // RESOURCE_EXHAUSTED when a block of it cannot be allocated.
  absl::Status EnsurePositions(int64_t count) const;
  // Row `position` of the table; only for position < positions_ready_.
  const float* PositionRow(int64_t position) const;
  // The sinusoidal table, [max_positions, d_model], in blocks of
  // kPositionBlockRows rows that are allocated and filled on first use, up to
  // the highest position asked for: a long max_positions costs nothing until
  // a sequence reaches it (not even address space, which `ulimit -v`
  // counts). Rows below positions_ready_ are immutable, and so are the
  // pointers to their blocks, so lookups take no lock.
  static constexpr int64_t kPositionBlockRows = 256;
  mutable std::vector<Tensor> position_blocks_;  // guarded by the mutex
  // [ceil(max_positions / kPositionBlockRows)]: block b's rows, set (under the
  // mutex) before positions_ready_ passes b's first row.
  std::unique_ptr<const float*[]> position_block_rows_;
  mutable std::atomic<int64_t> positions_ready_{0};
  mutable std::mutex positions_mutex_;
  // Embedding tables (plain rows for lookups). With a shared table
  // decoder_embed_ is empty. A table tied to the output projection is empty
  // too when the projection holds its own copy (see Create); lookups then
  // read lm_head_.
  Tensor encoder_embed_;
  Tensor decoder_embed_;
  bool shared_embedding_ = false;
  std::vector<EncoderLayer> encoder_;
  std::vector<DecoderLayer> decoder_;
  Norm encoder_final_norm_;
  Norm decoder_final_norm_;
  std::unique_ptr<PackedLinear>
      cross_kv_;  // [layers * 2d, d]: every layer's cross k, v
  // The output projection's table (the decoder's embedding when tied, else
  // lm_head.weight, held here unless the slices copied it) and bias;
  // lm_head_[i] borrows (or copied) vocabulary slice i of them.
  Tensor lm_head_weight_;
  Tensor lm_head_bias_;
  std::vector<std::unique_ptr<PackedLinear>> lm_head_;
};

// Rows [begin, end) of the sinusoidal table of model-format.md, in either
// layout, into rows [end - begin, d_model].
void SinusoidalPositionRows(int64_t begin, int64_t end, int d_model,
                            PositionalEncoding layout, float* rows);

}  // namespace attnserve::engine
