// Reference linear layer: one double-precision (or, for int8, integer) dot
// product per output, no blocking, no threads. Slow and obviously right: the
// definition every fast body of each compute type is tested against.

#include <cmath>
#include <utility>
#include <vector>

#include "engine/ops/op_bodies.h"
#include "engine/ops/quantize.h"

namespace attnserve::engine::internal {
namespace {

// Float32 keeps `plain` as it is. Int8 keeps q [n, k] and scales [n]; bfloat16
// keeps the weights rounded to bfloat16 and widened back, [n, k] floats (every
// bfloat16 is a float, so the products below are those of the bfloat16 values).
class RefPackedLinear final : public PackedLinear {
 public:
  explicit RefPackedLinear(PlainLinear plain)
      : PackedLinear(Backend::kReference, plain.type, plain.n, plain.k,
                     plain.bias != nullptr),
        plain_(std::move(plain)) {
    const int64_t n = plain_.n, k = plain_.k;
    switch (plain_.type) {
      case ComputeType::kFloat32:
        return;
      case ComputeType::kInt8:
        quantized_ = Tensor({Tensor::FloatsFor<int8_t>(n * k)});
        scales_ = Tensor({n});
        QuantizeRowsInt8(plain_.weight, n, k, quantized_.as<int8_t>(),
                         scales_.data());
        break;
      case ComputeType::kBFloat16: {
        rounded_ = Tensor({n, k});
        std::vector<uint16_t> row(k);
        for (int64_t j = 0; j < n; ++j) {
          RoundRowToBFloat16(plain_.weight + j * k, k, row.data());
          WidenRowFromBFloat16(row.data(), k, rounded_.data() + j * k);
        }
        break;
      }
    }
    // The converted copy replaces the float32 weights.
    plain_.owned_weight = Tensor();
    plain_.weight = nullptr;
  }

  size_t bytes() const override {
    return plain_.owned_bytes() + quantized_.bytes() + scales_.bytes() +
           rounded_.bytes();
  }
  bool borrows_weights() const override {
    return plain_.type == ComputeType::kFloat32 && plain_.borrows_weight();
  }
  void CopyWeightRow(int64_t row, float* out) const override {
    const int64_t k = plain_.k;
    switch (plain_.type) {
      case ComputeType::kFloat32:
        return plain_.CopyRow(row, out);
      case ComputeType::kInt8:
        return DequantizeRowInt8(quantized_.as<int8_t>() + row * k, k,
                                 scales_.data()[row], out);
      case ComputeType::kBFloat16:
        for (int64_t i = 0; i < k; ++i) out[i] = rounded_.data()[row * k + i];
        return;
    }
  }

  const PlainLinear& plain() const { return plain_; }
  const int8_t* quantized() const { return quantized_.as<int8_t>(); }  // [n, k]
  const float* scales() const { return scales_.data(); }               // [n]
  const float* rounded() const { return rounded_.data(); }             // [n, k]

 private:
  PlainLinear plain_;  // its weight is null unless float32
  Tensor quantized_;   // int8 only
  Tensor scales_;      // int8 only
  Tensor rounded_;     // bfloat16 only
};

void Store(double v, LinearEpilogue epilogue, float* y) {
  v = ActivateRef(epilogue.activation, v);
  *y = static_cast<float>(epilogue.accumulate ? *y + v : v);
}

void LinearRefFloat(const RefPackedLinear& w, const float* weight,
                    const float* x, int64_t m, float* y,
                    LinearEpilogue epilogue) {
  const PlainLinear& p = w.plain();
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * p.k;
    for (int64_t j = 0; j < p.n; ++j) {
      const float* wj = weight + j * p.k;
      double acc = p.bias != nullptr ? p.bias[j] : 0.0;
      for (int64_t i = 0; i < p.k; ++i) {
        acc += static_cast<double>(xr[i]) * wj[i];
      }
      Store(acc, epilogue, y + r * p.n + j);
    }
  }
}

void LinearRefBf16(const RefPackedLinear& w, const float* x, int64_t m,
                   float* y, LinearEpilogue epilogue) {
  const int64_t k = w.in_features();
  std::vector<float> rounded(m * k);
  std::vector<uint16_t> row(k);
  for (int64_t r = 0; r < m; ++r) {
    RoundRowToBFloat16(x + r * k, k, row.data());
    WidenRowFromBFloat16(row.data(), k, rounded.data() + r * k);
  }
  LinearRefFloat(w, w.rounded(), rounded.data(), m, y, epilogue);
}

void LinearRefInt8(const RefPackedLinear& w, const float* x, int64_t m,
                   float* y, LinearEpilogue epilogue) {
  const PlainLinear& p = w.plain();
  std::vector<int8_t> xq(p.k);
  for (int64_t r = 0; r < m; ++r) {
    const double x_scale = QuantizeRowInt8(x + r * p.k, p.k, xq.data());
    for (int64_t j = 0; j < p.n; ++j) {
      const int8_t* wj = w.quantized() + j * p.k;
      int64_t acc = 0;
      for (int64_t i = 0; i < p.k; ++i) acc += int64_t{xq[i]} * wj[i];
      const double v = static_cast<double>(acc) * x_scale * w.scales()[j] +
                       (p.bias != nullptr ? p.bias[j] : 0.0);
      Store(v, epilogue, y + r * p.n + j);
    }
  }
}

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
  const auto& packed = static_cast<const RefPackedLinear&>(w);
  switch (w.compute_type()) {
    case ComputeType::kFloat32:
      return LinearRefFloat(packed, packed.plain().weight, x, m, y, epilogue);
    case ComputeType::kInt8:
      return LinearRefInt8(packed, x, m, y, epilogue);
    case ComputeType::kBFloat16:
      return LinearRefBf16(packed, x, m, y, epilogue);
  }
}

}  // namespace attnserve::engine::internal
