#pragma once
// The activations of the oneDNN backend's own loops, in float and written so
// that a loop calling them vectorises: the linear epilogue (linear_kernels.h)
// and the gated activation (gated_activation_dnnl.cc) both call Activate, so
// the two agree bit for bit. Internal to engine/ops; a .cc file that includes
// it must start with #pragma GCC optimize("no-trapping-math") (see simd.h).

#include "engine/ops/linear.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {

// erf(x) to 1.5e-7 absolute error (Abramowitz & Stegun 7.1.26), vectorisable.
ATTNSERVE_ALWAYS_INLINE float Erf(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float e = 1.0f - p * t * FastExp(-ax * ax);
  return x < 0.0f ? -e : e;
}

// exp(x) for the denominators 1 + exp(x) of sigmoid-like activations, with
// x clamped to [-87, 60] rather than FastExp's [-87, 88]. GCC if-converts the
// clamp into lane-wise selects whose clamped arm divides v by a constant
// 1 + exp(bound), evaluated for every lane; at 88 (1.7e38) that quotient is a
// denormal for |v| < 2, and each such division costs a microcode assist.
// Measured on this AVX-512 host (one thread, 128K values in [-3, 3]): swish's
// epilogue took 4.7 ns per value with FastExp, 0.5 ns with this clamp (and
// 0.6 ns with FastExp and denormals flushed to zero).
// At 60 the constant arm's quotient is denormal only for |v| < 1.3e-12, and
// v / (1 + exp(x)) changes by less than |v| e^-60 (1e-26 |v|).
ATTNSERVE_ALWAYS_INLINE float SigmoidExp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 60.0f ? 60.0f : x;
  return FastExpInRange(x);
}

// gelu's tanh form, 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715
// v^3), computed as v / (1 + exp(-2u)): the same function (1 + tanh(u) =
// 2 / (1 + exp(-2u))), but without tanh's cancellation near u = 0 or the
// 1 + tanh(u) one for negative u, so the relative error stays that of
// FastExp (~1e-7) plus a few roundings wherever the result is not
// vanishingly small.
ATTNSERVE_ALWAYS_INLINE float GeluTanh(float v) {
  constexpr float kTwoSqrtTwoOverPi = 1.5957691216057308f;  // 2 sqrt(2/pi)
  constexpr float kCubic = 0.044715f * kTwoSqrtTwoOverPi;
  return v / (1.0f + SigmoidExp(-v * (kTwoSqrtTwoOverPi + kCubic * v * v)));
}

template <LinearActivation kActivation>
ATTNSERVE_ALWAYS_INLINE float Activate(float v) {
  if constexpr (kActivation == LinearActivation::kRelu) {
    return v > 0.0f ? v : 0.0f;
  } else if constexpr (kActivation == LinearActivation::kGelu) {
    return 0.5f * v * (1.0f + Erf(v * 0.70710678118654752f));
  } else if constexpr (kActivation == LinearActivation::kGeluTanh) {
    return GeluTanh(v);
  } else if constexpr (kActivation == LinearActivation::kSwish) {
    return v / (1.0f + SigmoidExp(-v));
  } else {
    return v;
  }
}

}  // namespace attnserve::engine::internal
