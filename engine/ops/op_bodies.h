#pragma once
// The two bodies of every op, called only by the op's front (X.cc), which has
// already checked the arguments: "ref" bodies are plain single-threaded loops,
// the reference every fast body is tested against; "dnnl" bodies run on oneDNN
// and the context's OpenMP team. Internal to engine/ops; does not include
// dnnl.hpp.

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/memory/tensor.h"
#include "engine/ops/attention.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine::internal {

// ---- Linear
// Plain weights on their way to a backend: either owned (moved in by
// PackLinear) or borrowed (PackLinearBorrowed, owned_* empty). `weight` and
// `bias` always point at the data.
struct PlainLinear {
  ComputeType type = ComputeType::kFloat32;  // what the packed weights become
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
  bool borrows_weight() const { return owned_weight.empty(); }
  void CopyRow(int64_t row, float* out) const {
    std::memcpy(out, weight + row * k, k * sizeof(float));
  }
};

// Float32 keeps the weights as they are; int8 quantizes them per output row
// and bfloat16 rounds them (quantize.h). The reference of each type: x's rows
// converted the same way (QuantizeRowInt8 / FloatToBFloat16), products and sums
// in int64 (int8) or double (bfloat16), y = act(sum * x_scale * w_scale[j] +
// b[j]) (+ y) in double.
std::unique_ptr<PackedLinear> PackLinearRef(PlainLinear plain);
// act(v) in double, the reference of every activation (the linear epilogue's
// and the gated activation's).
double ActivateRef(LinearActivation activation, double v);
void LinearRef(const PackedLinear& w, const float* x, int64_t m, float* y,
               LinearEpilogue epilogue);

// The oneDNN backend's own kernel for a few rows (linear_small_batch.cc): y =
// act(x W^T + b) [+ y] for x [m, k], m in [1, kSmallBatchMaxRows], plain
// weights w [n, k] and bias [n] (or nullptr), on up to `threads` threads.
constexpr int64_t kSmallBatchMaxRows = 32;
void LinearSmallBatch(int threads, const float* x, int64_t m, const float* w,
                      const float* bias, int64_t n, int64_t k,
                      LinearEpilogue epilogue, float* y);

// Weights on panels (linear_panels.cc): [N, K] cut into panels of kPanelCols
// outputs, each stored depth-major: W[p * 64 + j][i] sits at
// p * PanelDepth(k) * 64 + i * 64 + j, zero-padded to whole panels and to a
// depth that is a multiple of kPanelDepthAlign. That is exactly oneDNN's
// BA16a64b layout of the matmul's K x N weights, so one copy serves oneDNN's
// brgemm and LinearPanels.
constexpr int64_t kPanelCols = 64;
constexpr int64_t kPanelDepthAlign = 16;
int64_t PanelDepth(int64_t k);              // k rounded up to kPanelDepthAlign
int64_t PanelFloats(int64_t n, int64_t k);  // floats of the panels of [n, k]
void PackPanels(const float* w, int64_t n, int64_t k, float* panels);
// out[i] = W[row][i] for i in [0, k).
void PanelRow(const float* panels, int64_t k, int64_t row, float* out);
// y = act(x W^T + b) [+ y] for x [m, k], any m >= 1, on up to `threads`
// threads; bias [n] or nullptr.
void LinearPanels(int threads, const float* x, int64_t m, const float* panels,
                  const float* bias, int64_t n, int64_t k,
                  LinearEpilogue epilogue, float* y);

// The layout the oneDNN body packs weights in: panels where oneDNN runs its
// brgemm matmul on them (AVX-512 hosts; asked of oneDNN once per process),
// plain [N, K] elsewhere, where its matmul wants plain weights. Tests may force
// either for weights packed afterwards (nullopt: the host's choice again).
enum class DnnlWeightLayout { kPlain, kPanels };
DnnlWeightLayout DnnlWeightLayoutInUse();
void ForceDnnlWeightLayoutForTesting(std::optional<DnnlWeightLayout> layout);

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnl(
    const OpContext& ctx, PlainLinear plain);
absl::Status LinearDnnl(const OpContext& ctx, const PackedLinear& w,
                        const float* x, int64_t m, float* y,
                        LinearEpilogue epilogue);

// The oneDNN backend's int8 and bfloat16 linears (linear_dnnl_int8.cc,
// linear_dnnl_bf16.cc), which PackLinearDnnl and LinearDnnl hand
// plain.type / w.compute_type() other than float32 to. Their results follow
// LinearRef's definition of the type (quantize.h) within the tolerances their
// tests state.
absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnlInt8(
    const OpContext& ctx, PlainLinear plain);
absl::Status LinearDnnlInt8(const OpContext& ctx, const PackedLinear& w,
                            const float* x, int64_t m, float* y,
                            LinearEpilogue epilogue);
absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnlBf16(
    const OpContext& ctx, PlainLinear plain);
absl::Status LinearDnnlBf16(const OpContext& ctx, const PackedLinear& w,
                            const float* x, int64_t m, float* y,
                            LinearEpilogue epilogue);

// ---- LayerNorm
void LayerNormRef(const float* x, int64_t rows, int64_t cols,
                  const float* gamma, const float* beta, float eps, float* y);
absl::Status LayerNormDnnl(const OpContext& ctx, const float* x, int64_t rows,
                           int64_t cols, const float* gamma, const float* beta,
                           float eps, float* y);

// ---- RmsNorm
void RmsNormRef(const float* x, int64_t rows, int64_t cols, const float* gamma,
                float eps, float* y);
absl::Status RmsNormDnnl(const OpContext& ctx, const float* x, int64_t rows,
                         int64_t cols, const float* gamma, float eps, float* y);

// ---- GatedActivation
void GatedActivationRef(LinearActivation activation, const float* in,
                        int64_t rows, int64_t cols, float* out);
absl::Status GatedActivationDnnl(const OpContext& ctx,
                                 LinearActivation activation, const float* in,
                                 int64_t rows, int64_t cols, float* out);

// ---- LogSumExp
void LogSumExpRef(const float* x, int64_t rows, int64_t cols, float* lse);
absl::Status LogSumExpDnnl(const OpContext& ctx, const float* x, int64_t rows,
                           int64_t cols, float* lse);

// ---- Attention
void AttentionRef(const AttentionArgs& args);
absl::Status AttentionDnnl(const OpContext& ctx, const AttentionArgs& args);

}  // namespace attnserve::engine::internal
