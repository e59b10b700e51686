#pragma once
// The two bodies of every op, called only by the op's front (X.cc), which has
// already checked the arguments: "ref" bodies are plain single-threaded loops,
// the reference every fast body is tested against; "dnnl" bodies run on oneDNN
// and the context's OpenMP team. Internal to engine/ops; does not include
// dnnl.hpp.

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/ops/attention.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"
#include "engine/tensor.h"

namespace attnserve::engine::internal {

// ---- Linear
// Plain weights on their way to a backend: either owned (moved in by
// PackLinear) or borrowed (PackLinearBorrowed, owned_* empty). `weight` and
// `bias` always point at the data.
struct PlainLinear {
  int64_t n = 0;
  int64_t k = 0;
  const float* weight = nullptr;  // [n, k]
  const float* bias = nullptr;    // [n], or nullptr for no bias
  Tensor owned_weight;            // [n, k] or empty
  Tensor owned_bias;              // [n] or empty

  // Memory held by the owned tensors (borrowed memory belongs to someone else).
  size_t owned_bytes() const {
    return owned_weight.bytes() + owned_bias.bytes();
  }
};

std::unique_ptr<PackedLinear> PackLinearRef(PlainLinear plain);
void LinearRef(const PackedLinear& w, const float* x, int64_t m, float* y,
               LinearEpilogue epilogue);

// The oneDNN backend's own kernel for a few rows (linear_small_batch.cc): y =
// act(x W^T + b) [+ y] for x [m, k], m in [1, kSmallBatchMaxRows], plain
// weights w [n, k] and bias [n] (or nullptr), on up to `threads` threads.
constexpr int64_t kSmallBatchMaxRows = 32;
void LinearSmallBatch(int threads, const float* x, int64_t m, const float* w,
                      const float* bias, int64_t n, int64_t k,
                      LinearEpilogue epilogue, float* y);

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnl(
    const OpContext& ctx, PlainLinear plain);
absl::Status LinearDnnl(const OpContext& ctx, const PackedLinear& w,
                        const float* x, int64_t m, float* y,
                        LinearEpilogue epilogue);

// ---- LayerNorm
void LayerNormRef(const float* x, int64_t rows, int64_t cols,
                  const float* gamma, const float* beta, float eps, float* y);
absl::Status LayerNormDnnl(const OpContext& ctx, const float* x, int64_t rows,
                           int64_t cols, const float* gamma, const float* beta,
                           float eps, float* y);

// ---- LogSumExp
void LogSumExpRef(const float* x, int64_t rows, int64_t cols, float* lse);
absl::Status LogSumExpDnnl(const OpContext& ctx, const float* x, int64_t rows,
                           int64_t cols, float* lse);

// ---- Attention
void AttentionRef(const AttentionArgs& args);
absl::Status AttentionDnnl(const OpContext& ctx, const AttentionArgs& args);

}  // namespace attnserve::engine::internal
