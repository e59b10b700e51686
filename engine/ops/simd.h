#pragma once
// Helpers for the loops that the fast bodies leave to GCC's vectoriser
// (attention, layer norm, log-softmax). Internal to engine/ops.
//
// A .cc file that uses FastExp in a loop must start with
//   #pragma GCC optimize("no-trapping-math")
// Under the default -ftrapping-math GCC will not if-convert a float
// compare-and-select (FastExp's clamps), so the whole loop would stay scalar.
// The engine never reads floating-point exception flags, so nothing observable
// changes.

#include <cstdint>
#include <cstring>

// Compiles a kernel for AVX2+FMA (x86-64-v3) and for the baseline, and binds
// one at load time from the CPU's features. Not "arch=haswell": GCC dispatches
// that clone by CPU model (__builtin_cpu_is), so AMD CPUs with AVX2 would
// silently run the baseline.
//
// Only the annotated function is cloned: helpers it calls must be
// always_inline. A plain inline helper (std::min included) is not inlined
// across the target change and becomes a scalar call inside the loop.
//
// Define it empty (-DATTNSERVE_SIMD_CLONES=) to build the baseline alone, e.g.
// to test it on an AVX2 machine; ATTNSERVE_SIMD_CLONES_AVX512 follows.
#ifndef ATTNSERVE_SIMD_CLONES
#define ATTNSERVE_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v3", "default")))
// The same with an AVX-512 (x86-64-v4) clone first, for kernels written for
// 32 vector registers (linear_panels.cc).
#define ATTNSERVE_SIMD_CLONES_AVX512 \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATTNSERVE_SIMD_CLONES_AVX512 ATTNSERVE_SIMD_CLONES
#endif
#define ATTNSERVE_ALWAYS_INLINE inline __attribute__((always_inline))

namespace attnserve::engine::internal {

// exp(x) to ~1e-7 relative error (Cody-Waite reduction, degree-6 polynomial)
// for x already in [-87, 88]: FastExp's body, for callers that clamp
// otherwise (SigmoidExp in activations.h).
ATTNSERVE_ALWAYS_INLINE float FastExpInRange(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split so n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to int
  const float n = (x * kLog2e + kRound) - kRound;  // round(x / ln 2)
  const float r = x - n * kLn2Hi - n * kLn2Lo;     // |r| <= ln(2) / 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// exp(x) to ~1e-7 relative error, written so that a loop calling it
// vectorises. Inputs are clamped to [-87, 88]: exp(-inf) gives ~1.6e-38
// instead of 0 (never a denormal), exp(+inf) ~1.7e38; NaN stays NaN.
ATTNSERVE_ALWAYS_INLINE float FastExp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  return FastExpInRange(x);
}

// GCC vector types, for kernels the auto-vectoriser handles poorly: one source
// for both clones (AVX2 registers in the x86-64-v3 one, pairs of SSE registers
// in the baseline).
using V8 = float __attribute__((vector_size(32)));
using V4 = float __attribute__((vector_size(16)));
// One AVX-512 register in the x86-64-v4 clones (linear_panels.cc); two AVX2
// registers in x86-64-v3 ones.
using V16 = float __attribute__((vector_size(64)));

// -Wpsabi warns, wherever these helpers are defined or inlined, that passing
// V8 by value has no fixed ABI without AVX. They are always inlined, so no call
// ever crosses that ABI; the warning is off for every file including this one.
#pragma GCC diagnostic ignored "-Wpsabi"

ATTNSERVE_ALWAYS_INLINE V8 Load8(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof(v));  // an unaligned load
  return v;
}

ATTNSERVE_ALWAYS_INLINE void Store8(float* p, V8 v) {
  std::memcpy(p, &v, sizeof(v));
}

ATTNSERVE_ALWAYS_INLINE V16 Load16(const float* p) {
  V16 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

ATTNSERVE_ALWAYS_INLINE void Store16(float* p, V16 v) {
  std::memcpy(p, &v, sizeof(v));
}

// [sum(a), sum(b), sum(c), sum(d)] in a few shuffles. GCC's own horizontal sum
// for an omp simd reduction goes through the stack with eight serial adds,
// which costs as much as a short dot product itself.
ATTNSERVE_ALWAYS_INLINE V4 HorizontalSums(V8 a, V8 b, V8 c, V8 d) {
  const V4 a4 = __builtin_shufflevector(a, a, 0, 1, 2, 3) +
                __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const V4 b4 = __builtin_shufflevector(b, b, 0, 1, 2, 3) +
                __builtin_shufflevector(b, b, 4, 5, 6, 7);
  const V4 c4 = __builtin_shufflevector(c, c, 0, 1, 2, 3) +
                __builtin_shufflevector(c, c, 4, 5, 6, 7);
  const V4 d4 = __builtin_shufflevector(d, d, 0, 1, 2, 3) +
                __builtin_shufflevector(d, d, 4, 5, 6, 7);
  // ab = [a0+a2, b0+b2, a1+a3, b1+b3], cd likewise.
  const V4 ab = __builtin_shufflevector(a4, b4, 0, 4, 1, 5) +
                __builtin_shufflevector(a4, b4, 2, 6, 3, 7);
  const V4 cd = __builtin_shufflevector(c4, d4, 0, 4, 1, 5) +
                __builtin_shufflevector(c4, d4, 2, 6, 3, 7);
  return __builtin_shufflevector(ab, cd, 0, 1, 4, 5) +
         __builtin_shufflevector(ab, cd, 2, 3, 6, 7);
}

ATTNSERVE_ALWAYS_INLINE float HorizontalSum(V8 a) {
  const V4 a4 = __builtin_shufflevector(a, a, 0, 1, 2, 3) +
                __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const V4 a2 = a4 + __builtin_shufflevector(a4, a4, 2, 3, 0, 1);
  return a2[0] + a2[1];
}

}  // namespace attnserve::engine::internal
