// Reference linear layer: one double-precision dot product per output, no
// blocking, no threads. Slow and obviously right.

#include <cmath>
#include <utility>

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {
namespace {

class RefPackedLinear final : public PackedLinear {
 public:
  explicit RefPackedLinear(PlainLinear plain)
      : PackedLinear(Backend::kReference, plain.n, plain.k,
                     plain.bias != nullptr),
        plain_(std::move(plain)) {}

  size_t bytes() const override { return plain_.owned_bytes(); }
  bool borrows_weights() const override { return plain_.borrows_weight(); }
  void CopyWeightRow(int64_t row, float* out) const override {
    plain_.CopyRow(row, out);
  }
  const PlainLinear& plain() const { return plain_; }

 private:
  PlainLinear plain_;
};

}  // namespace

double ActivateRef(LinearActivation activation, double v) {
  switch (activation) {
    case LinearActivation::kNone:
      return v;
    case LinearActivation::kRelu:
      return v > 0.0 ? v : 0.0;
    case LinearActivation::kGelu:  // the exact (erf) form, as torch's default
      return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    case LinearActivation::kGeluTanh:  // HF's gelu_new, torch's "tanh" gelu
      return 0.5 * v *
             (1.0 + std::tanh(0.79788456080286536 *  // sqrt(2 / pi)
                              (v + 0.044715 * v * v * v)));
    case LinearActivation::kSwish:
      return v / (1.0 + std::exp(-v));
  }
  return v;
}

std::unique_ptr<PackedLinear> PackLinearRef(PlainLinear plain) {
  return std::make_unique<RefPackedLinear>(std::move(plain));
}

void LinearRef(const PackedLinear& w, const float* x, int64_t m, float* y,
               LinearEpilogue epilogue) {
  const PlainLinear& p = static_cast<const RefPackedLinear&>(w).plain();
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * p.k;
    float* yr = y + r * p.n;
    for (int64_t j = 0; j < p.n; ++j) {
      const float* wj = p.weight + j * p.k;
      double acc = p.bias != nullptr ? p.bias[j] : 0.0;
      for (int64_t i = 0; i < p.k; ++i)
        acc += static_cast<double>(xr[i]) * wj[i];
      const double v = ActivateRef(epilogue.activation, acc);
      yr[j] = static_cast<float>(epilogue.accumulate ? yr[j] + v : v);
    }
  }
}

}  // namespace attnserve::engine::internal
