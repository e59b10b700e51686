// Linear for a few rows (a decode step: M = batch * beam) on the plain [N, K]
// weights, for the oneDNN backend. oneDNN's gemm:jit repacks the weights on
// every call, which dominates when M is small: measured on this AVX2 host
// (one thread, [2048, 512] weights) this kernel takes 0.3-0.4 ms at M = 8
// where gemm:jit takes 0.9 ms, and it needs no copy of the weights.
//
// Each output is a dot product of an input row with a weight row: tiles of up
// to 3 input rows x 4 weight rows keep 12 vector accumulators in registers,
// and each group of 4 weight rows (8 KB at K = 512) stays in L1 while every
// input row passes over it, so the weights are read from memory once.

// See simd.h: lets GCC vectorise the epilogue loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

#include <algorithm>
#include <cstring>

#include "engine/ops/linear_kernels.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {
namespace {

// Outputs per epilogue pass: a tile row of this many floats stays in L1.
constexpr int64_t kChunk = 64;

// t[r * kChunk + c] = x_r . w_c for kRows input rows (x, k floats apart) and
// kCols weight rows (w, k floats apart).
template <int kRows, int kCols>
ATTNSERVE_ALWAYS_INLINE void DotTile(const float* x, const float* w, int64_t k,
                                     float* t) {
  V8 acc[kRows][kCols] = {};
  const int64_t k8 = k - k % 8;
  for (int64_t i = 0; i < k8; i += 8) {
    V8 wv[kCols];
    for (int c = 0; c < kCols; ++c) wv[c] = Load8(w + c * k + i);
    for (int r = 0; r < kRows; ++r) {
      const V8 xv = Load8(x + r * k + i);
      for (int c = 0; c < kCols; ++c) acc[r][c] += xv * wv[c];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    float sums[4];
    if constexpr (kCols == 4) {
      const V4 s = HorizontalSums(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      std::memcpy(sums, &s, sizeof(s));
    } else {
      for (int c = 0; c < kCols; ++c) {
        sums[c] = HorizontalSum(acc[r][c]);
      }
    }
    for (int64_t i = k8; i < k; ++i) {
      for (int c = 0; c < kCols; ++c) sums[c] += x[r * k + i] * w[c * k + i];
    }
    for (int c = 0; c < kCols; ++c) t[r * kChunk + c] = sums[c];
  }
}

// DotTile over all m rows, three at a time.
template <int kCols>
ATTNSERVE_ALWAYS_INLINE void DotColumns(const float* x, int64_t m,
                                        const float* w, int64_t k, float* t) {
  int64_t r = 0;
  for (; r + 3 <= m; r += 3) DotTile<3, kCols>(x + r * k, w, k, t + r * kChunk);
  if (m - r == 2) DotTile<2, kCols>(x + r * k, w, k, t + r * kChunk);
  if (m - r == 1) DotTile<1, kCols>(x + r * k, w, k, t + r * kChunk);
}

// Outputs [n0, n1) of all m <= kSmallBatchMaxRows rows.
ATTNSERVE_SIMD_CLONES
void LinearColumns(const float* x, int64_t m, const float* w, const float* bias,
                   int64_t n, int64_t k, int64_t n0, int64_t n1,
                   LinearEpilogue epilogue, float* y) {
  float t[kSmallBatchMaxRows * kChunk];  // one chunk of every row, 8 KB
  for (int64_t c0 = n0; c0 < n1; c0 += kChunk) {
    const int64_t c1 = std::min(c0 + kChunk, n1);
    int64_t c = c0;
    for (; c + 4 <= c1; c += 4) DotColumns<4>(x, m, w + c * k, k, t + c - c0);
    for (; c < c1; ++c) DotColumns<1>(x, m, w + c * k, k, t + c - c0);
    const float* b = bias != nullptr ? bias + c0 : nullptr;
    for (int64_t r = 0; r < m; ++r) {
      const float* tr = t + r * kChunk;
      float* yr = y + r * n + c0;
      Epilogue(tr, b, c1 - c0, epilogue, yr);
    }
  }
}

}  // namespace

void LinearSmallBatch(int threads, const float* x, int64_t m, const float* w,
                      const float* bias, int64_t n, int64_t k,
                      LinearEpilogue epilogue, float* y) {
  ForBlockRuns(threads, (n + kChunk - 1) / kChunk, m * n * k,
               [&](int64_t b0, int64_t b1) {
                 LinearColumns(x, m, w, bias, n, k, b0 * kChunk,
                               std::min(n, b1 * kChunk), epilogue, y);
               });
}

}  // namespace attnserve::engine::internal
