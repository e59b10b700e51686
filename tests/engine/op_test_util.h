#pragma once
// Helpers shared by the op tests: contexts per backend, seeded random data and
// an element-wise closeness check that reports the worst offenders.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "engine/memory/tensor.h"
#include "engine/ops/op_context.h"
#include "gtest/gtest.h"

namespace attnserve::engine::op_test {

// A context for `backend`, entered (OpenMP team size set) on the calling
// thread.
inline std::unique_ptr<OpContext> MakeContext(Backend backend,
                                              int threads = 1) {
  absl::StatusOr<std::unique_ptr<OpContext>> ctx =
      OpContext::Create(backend, threads);
  EXPECT_TRUE(ctx.ok()) << ctx.status();
  if (!ctx.ok()) return nullptr;
  (*ctx)->Enter();
  return *std::move(ctx);
}

// A tensor of `shape` holding `values` (row-major, product(shape) of them).
inline Tensor MakeTensor(std::vector<int64_t> shape,
                         const std::vector<float>& values) {
  Tensor t(std::move(shape));
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

// n floats uniform in [lo, hi), the same for the same seed on every run.
inline std::vector<float> RandomFloats(size_t n, uint32_t seed,
                                       float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

// Passes when |actual - expected| <= atol + rtol * |expected| everywhere (equal
// infinities match, a NaN never does); otherwise reports the mismatch count and
// the worst one.
inline ::testing::AssertionResult AllClose(absl::Span<const float> actual,
                                           absl::Span<const float> expected,
                                           double rtol, double atol) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  }
  size_t bad = 0;
  size_t worst = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double a = actual[i];
    const double e = expected[i];
    if (std::isinf(e) && a == e) continue;
    const double excess = std::fabs(a - e) - (atol + rtol * std::fabs(e));
    if (!(excess <= 0.0)) {
      ++bad;
      if (std::isnan(excess) || excess > worst_excess) {
        worst_excess = std::isnan(excess) ? INFINITY : excess;
        worst = i;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << actual.size() << " elements differ; worst at ["
         << worst << "]: " << actual[worst] << " vs expected "
         << expected[worst] << " (rtol " << rtol << ", atol " << atol << ")";
}

}  // namespace attnserve::engine::op_test
