#pragma once
// Linear layer y = act(x W^T + b) [+ y] with weights prepared once per backend.

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "engine/format/model_config.h"
#include "engine/memory/tensor.h"
#include "engine/ops/compute_type.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// Weights ready for a backend: the reference keeps [N, K] as stored; the oneDNN
// body keeps them plain or copies them once into the blocked layout its
// matmul runs fastest on (see linear_dnnl.cc), so no token step ever repacks
// weights. Immutable after packing; safe to share across threads.
class PackedLinear {
 public:
  virtual ~PackedLinear() = default;
  int64_t out_features() const { return out_features_; }  // N
  int64_t in_features() const { return in_features_; }    // K
  bool has_bias() const { return has_bias_; }
  Backend backend() const { return backend_; }
  ComputeType compute_type() const { return compute_type_; }
  // Memory held by the packed weights and bias (not what is borrowed).
  virtual size_t bytes() const = 0;
  // Whether the weights are still read from the caller's tensor (see
  // PackLinearBorrowed); false once the backend holds its own copy.
  virtual bool borrows_weights() const = 0;
  // out[i] = W[row][i] for i in [0, in_features()), in whatever layout the
  // weights are kept: an embedding lookup in a table that only a packed
  // output projection holds. The values the product uses: int8 weights give
  // q * scale, bfloat16 ones their bfloat16 values.
  virtual void CopyWeightRow(int64_t row, float* out) const = 0;

 protected:
  PackedLinear(Backend backend, ComputeType compute_type, int64_t n, int64_t k,
               bool has_bias)
      : backend_(backend),
        compute_type_(compute_type),
        out_features_(n),
        in_features_(k),
        has_bias_(has_bias) {}

 private:
  Backend backend_;
  ComputeType compute_type_;
  int64_t out_features_;
  int64_t in_features_;
  bool has_bias_;
};

// Takes ownership of weight [N, K] and bias [N] (bias may be empty = no bias).
// The plain tensors are released once packed (or kept, when the backend uses
// them as they are). `type` is the format the product runs in
// (compute_type.h): the weights are converted to it here (quantize.h), the
// bias stays float32. A type the host cannot run on the oneDNN backend is
// FAILED_PRECONDITION (HostRunsComputeType).
absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinear(
    const OpContext& ctx, Tensor weight, Tensor bias,
    ComputeType type = ComputeType::kFloat32);
// As PackLinear for output features [begin, end) only (rows [begin, end) of
// `weight` and of `bias`), which are borrowed and must outlive the result; a
// backend that needs another layout copies (borrows_weights() then says
// false, and the caller may release `weight`; `bias` stays borrowed). Used for
// the output projection in vocabulary slices, whose table (when tied) also
// serves embedding lookups. Types other than float32 always copy.
absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearBorrowed(
    const OpContext& ctx, const Tensor& weight, const Tensor* bias,
    int64_t begin, int64_t end, ComputeType type = ComputeType::kFloat32);

enum class LinearActivation { kNone, kRelu, kGelu, kSwish, kGeluTanh };
LinearActivation ToLinearActivation(Activation a);

struct LinearEpilogue {
  LinearActivation activation = LinearActivation::kNone;
  // false: y = act(x W^T + b). true: y = y + act(x W^T + b) (a fused residual
  // add; y holds the residual on entry).
  bool accumulate = false;
};

// x: [m, K] row-major, y: [m, N] row-major; x and y must not overlap. m may be
// any value >= 0 (0 is a no-op). Inputs and outputs are float32 whatever w's
// compute type: an int8 or bfloat16 product converts each row of x as it reads
// it (row by row, so a row's result never depends on the other rows). Errors:
// backend mismatch between ctx and w, negative m, null buffers.
absl::Status Linear(const OpContext& ctx, const PackedLinear& w, const float* x,
                    int64_t m, float* y, LinearEpilogue epilogue = {});

}  // namespace attnserve::engine
