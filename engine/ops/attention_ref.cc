// Reference attention: for each sequence, head and query, scores over the
// visible keys (scaled, plus the position bias when there is one),
// max-subtracted softmax and the weighted sum of values, all in double. Keys
// that are not visible are never read, so padding may hold anything.
// bfloat16 keys and values are widened exactly, so the reference of bf16 K/V
// is the float32 reference on the same (rounded) values.

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/format/half_float.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {
namespace {

double Widen(float x) { return x; }
double Widen(uint16_t x) { return BFloat16ToFloat(x); }

// The body for keys and values of type T: `k` and `v` are a.k and a.v, or
// a.k_bf16 and a.v_bf16.
template <typename T>
void AttentionRefOf(const AttentionArgs& a, absl::Span<const T* const> ks,
                    absl::Span<const T* const> vs) {
  const double scale = a.scale.has_value()
                           ? double{*a.scale}
                           : 1.0 / std::sqrt(static_cast<double>(a.head_dim));
  std::vector<double> p;
  std::vector<double> acc(a.head_dim);
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t length = a.kv_lengths[b];
    const int64_t first_position = a.q_positions.empty() ? 0 : a.q_positions[b];
    for (int h = 0; h < a.num_heads; ++h) {
      const int64_t col = int64_t{h} * a.head_dim;
      for (int64_t i = 0; i < a.q_len; ++i) {
        // bias[j] is the bias of key j for this query (at first_position + i);
        // bias itself is inside the caller's buffer, since key 0 always counts.
        const float* bias =
            a.position_bias == nullptr
                ? nullptr
                : a.position_bias + h * a.position_bias_head_stride +
                      a.position_bias_center - (first_position + i);
        const float* q = a.q + b * a.q_seq_stride + i * a.q_row_stride + col;
        const int64_t visible =
            a.causal ? std::min(length, first_position + i + 1) : length;
        p.assign(visible, 0.0);
        double max = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const T* k = ks[b] + j * a.kv_row_stride + col;
          double dot = 0.0;
          for (int d = 0; d < a.head_dim; ++d)
            dot += static_cast<double>(q[d]) * Widen(k[d]);
          p[j] = dot * scale + (bias != nullptr ? double{bias[j]} : 0.0);
          max = std::max(max, p[j]);
        }
        double sum = 0.0;
        for (int64_t j = 0; j < visible; ++j) {
          p[j] = std::exp(p[j] - max);
          sum += p[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < visible; ++j) {
          const T* v = vs[b] + j * a.kv_row_stride + col;
          for (int d = 0; d < a.head_dim; ++d) acc[d] += p[j] * Widen(v[d]);
        }
        float* out = a.out + b * a.out_seq_stride + i * a.out_row_stride + col;
        for (int d = 0; d < a.head_dim; ++d)
          out[d] = static_cast<float>(acc[d] / sum);
      }
    }
  }
}

}  // namespace

void AttentionRef(const AttentionArgs& a) {
  if (a.kv_type == ComputeType::kBFloat16) {
    AttentionRefOf(a, a.k_bf16, a.v_bf16);
  } else {
    AttentionRefOf(a, a.k, a.v);
  }
}

}  // namespace attnserve::engine::internal
