// Reference gated activation: act(a) * b in double, act being the linear
// epilogue's reference (ActivateRef in linear_ref.cc).

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

void GatedActivationRef(LinearActivation activation, const float* in,
                        int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = in + r * 2 * cols;
    const float* b = a + cols;
    float* o = out + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      o[c] = static_cast<float>(ActivateRef(activation, a[c]) * b[c]);
    }
  }
}

}  // namespace attnserve::engine::internal
