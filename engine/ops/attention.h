#pragma once
// Scaled dot-product attention over all heads of a batch of sequences:
//   out = softmax(Q K^T * scale + position_bias + mask) V  per sequence and
//   head,
// where head h uses columns [h*head_dim, (h+1)*head_dim) of Q, K and V, and the
// heads' outputs are written side by side (concatenated) into `out`.
//
// Each sequence has its own K/V pointers so that one call serves the encoder
// (all keys of a padded batch), cross-attention (encoder K/V of each source)
// and a decode step (each sequence's KV cache, of its own length).

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/ops/compute_type.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

struct AttentionArgs {
  int num_heads = 0;
  int head_dim = 0;
  int64_t batch = 0;
  int64_t q_len = 0;  // queries per sequence (1 for a decode step)

  // Query i of sequence b starts at q + b * q_seq_stride + i * q_row_stride.
  const float* q = nullptr;
  int64_t q_seq_stride = 0;
  int64_t q_row_stride = 0;

  // The element type of keys and values: kFloat32 reads k and v; kBFloat16
  // reads k_bf16 and v_bf16 (bfloat16 bit patterns, the decoder's KV caches
  // at --kv_cache_dtype=bfloat16), widened to float as they are read, and the
  // other pair must be empty. kInt8 is refused.
  ComputeType kv_type = ComputeType::kFloat32;
  // Key/value j of sequence b start at k[b] + j * kv_row_stride (same for v);
  // kv_row_stride counts elements of kv_type.
  absl::Span<const float* const> k;
  absl::Span<const float* const> v;
  absl::Span<const uint16_t* const> k_bf16;
  absl::Span<const uint16_t* const> v_bf16;
  int64_t kv_row_stride = 0;
  // Keys j >= kv_lengths[b] are masked (padding); every length must be >= 1.
  absl::Span<const int32_t> kv_lengths;
  // When causal, the query at position p (see q_positions below; p = i when
  // q_positions is empty) sees only keys j <= p (self-attention over a whole
  // prefix).
  bool causal = false;

  // Scores are (Q K^T) * scale; nullopt means 1 / sqrt(head_dim). T5 uses 1.
  std::optional<float> scale;
  // Optional additive bias by query-key distance (T5's relative position
  // bias), added to the scaled scores before the mask and softmax. Query i of
  // sequence b sits at position q_positions[b] + i (q_positions empty: at
  // position i); key j at position j. When position_bias is set, head h's
  // score of that query and key gets
  //   position_bias[h * position_bias_head_stride + position_bias_center
  //                 + (j - query position)]
  // added. The caller makes every such index fall inside its buffer, for all
  // i < q_len and j < kv_lengths[b].
  const float* position_bias = nullptr;
  int64_t position_bias_head_stride = 0;
  int64_t position_bias_center = 0;
  absl::Span<const int32_t> q_positions;

  // Output of query i of sequence b: out + b * out_seq_stride + i *
  // out_row_stride, num_heads * head_dim floats. Must not overlap the inputs.
  float* out = nullptr;
  int64_t out_seq_stride = 0;
  int64_t out_row_stride = 0;
};

// Errors: a kv_type other than float32 or bfloat16, or keys/values given in
// the other type's spans; non-positive heads/head_dim, span sizes != batch
// (q_positions: empty or batch), a length < 1, a negative q_positions entry,
// with position_bias a negative position_bias_head_stride or a
// position_bias_center below some query's position (key 0's index would fall
// before the buffer), null pointers, a non-finite scale.
absl::Status Attention(const OpContext& ctx, const AttentionArgs& args);

}  // namespace attnserve::engine
