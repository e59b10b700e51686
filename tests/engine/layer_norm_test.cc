#include "engine/ops/layer_norm.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using op_test::AllClose;
using op_test::MakeContext;
using op_test::RandomFloats;
using ::testing::HasSubstr;

std::vector<float> RunLayerNorm(const OpContext& ctx,
                                const std::vector<float>& x, int64_t rows,
                                int64_t cols, const std::vector<float>& gamma,
                                const std::vector<float>& beta, float eps) {
  std::vector<float> y(x.size(), NAN);
  EXPECT_THAT(LayerNorm(ctx, x.data(), rows, cols, gamma.data(), beta.data(),
                        eps, y.data()),
              IsOk());
  return y;
}

TEST(LayerNormTest, ReferenceMatchesHandComputedValues) {
  const std::vector<float> gamma = {1, 2, 1, 1};
  const std::vector<float> beta = {0, 0, 1, -1};
  auto ctx = MakeContext(Backend::kReference);
  // [1, 2, 3, 4]: mean 2.5, biased variance 1.25, so y = (x - 2.5) / sqrt(1.25)
  // * g + b.
  const float a = 1.5f / std::sqrt(1.25f), c = 0.5f / std::sqrt(1.25f);
  EXPECT_TRUE(
      AllClose(RunLayerNorm(*ctx, {1, 2, 3, 4}, 1, 4, gamma, beta, 0.0f),
               {-a, -2 * c, 1 + c, -1 + a}, 1e-6, 1e-6));
  // A constant row has variance 0: eps keeps it finite and y = beta.
  EXPECT_TRUE(AllClose(
      RunLayerNorm(*ctx, {5, 5, 5, 5}, 1, 4, gamma, beta, 1e-5f), beta, 0, 0));
}

TEST(LayerNormTest, DnnlMatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t cols : {1, 3, 8, 17, 64, 512, 1000}) {
      const std::vector<float> gamma = RandomFloats(cols, 1, 0.5f, 1.5f);
      const std::vector<float> beta = RandomFloats(cols, 2);
      for (int64_t rows : {0, 1, 2, 3, 7, 16, 33, 100, 257}) {
        // An offset of 100 checks that the variance survives a large mean.
        const std::vector<float> x =
            RandomFloats(rows * cols, 3 + rows, 97.0f, 103.0f);
        EXPECT_TRUE(AllClose(
            RunLayerNorm(*dnnl, x, rows, cols, gamma, beta, 1e-5f),
            RunLayerNorm(*ref, x, rows, cols, gamma, beta, 1e-5f), 1e-4, 1e-4))
            << "rows " << rows << " cols " << cols << " threads " << threads;
      }
    }
  }
}

TEST(LayerNormTest, WorksInPlace) {
  const int64_t rows = 65, cols = 512;  // enough elements for the threaded path
  const std::vector<float> x = RandomFloats(rows * cols, 4, -3.0f, 3.0f);
  const std::vector<float> gamma = RandomFloats(cols, 5);
  const std::vector<float> beta = RandomFloats(cols, 6);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend, 2);
    std::vector<float> in_place = x;
    ASSERT_THAT(LayerNorm(*ctx, in_place.data(), rows, cols, gamma.data(),
                          beta.data(), 1e-5f, in_place.data()),
                IsOk());
    EXPECT_TRUE(AllClose(
        in_place, RunLayerNorm(*ctx, x, rows, cols, gamma, beta, 1e-5f), 0, 0))
        << BackendName(backend);
  }
}

TEST(LayerNormTest, RejectsBadArguments) {
  std::vector<float> x(8), g(4), b(4), y(8);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(
        LayerNorm(*ctx, x.data(), 2, 0, g.data(), b.data(), 1e-5f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cols")));
    EXPECT_THAT(
        LayerNorm(*ctx, x.data(), -1, 4, g.data(), b.data(), 1e-5f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
    for (float eps : {-1.0f, NAN, INFINITY}) {
      EXPECT_THAT(
          LayerNorm(*ctx, x.data(), 2, 4, g.data(), b.data(), eps, y.data()),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eps")));
    }
    EXPECT_THAT(
        LayerNorm(*ctx, x.data(), 2, 4, nullptr, b.data(), 1e-5f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        LayerNorm(*ctx, x.data(), 2, 4, g.data(), b.data(), 1e-5f, nullptr),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        LayerNorm(*ctx, nullptr, 0, 4, nullptr, nullptr, 1e-5f, nullptr),
        IsOk());
  }
}

std::vector<float> RunRmsNorm(const OpContext& ctx, const std::vector<float>& x,
                              int64_t rows, int64_t cols,
                              const std::vector<float>& gamma, float eps) {
  std::vector<float> y(x.size(), NAN);
  EXPECT_THAT(RmsNorm(ctx, x.data(), rows, cols, gamma.data(), eps, y.data()),
              IsOk());
  return y;
}

TEST(RmsNormTest, ReferenceMatchesHandComputedValues) {
  auto ctx = MakeContext(Backend::kReference);
  // [1, 2, 3, 4]: mean of squares 30 / 4 = 7.5, so y = x / sqrt(7.5) * g; no
  // mean is subtracted and there is no beta.
  const float s = 1.0f / std::sqrt(7.5f);
  EXPECT_TRUE(AllClose(RunRmsNorm(*ctx, {1, 2, 3, 4}, 1, 4, {1, 2, 1, -1}, 0),
                       {s, 4 * s, 3 * s, -4 * s}, 1e-6, 1e-7));
  // [3, 4] with eps 0.5: mean of squares 12.5, sqrt(13) in the denominator.
  const float t = 1.0f / std::sqrt(13.0f);
  EXPECT_TRUE(AllClose(RunRmsNorm(*ctx, {3, 4, -3, -4}, 2, 2, {1, 1}, 0.5f),
                       {3 * t, 4 * t, -3 * t, -4 * t}, 1e-6, 1e-7));
  // A zero row stays zero (eps keeps the scale finite).
  EXPECT_TRUE(AllClose(RunRmsNorm(*ctx, {0, 0, 0}, 1, 3, {1, 2, 3}, 1e-6f),
                       {0, 0, 0}, 0, 0));
}

// The reference against T5LayerNorm's formula written out here in double.
TEST(RmsNormTest, ReferenceMatchesTheFormula) {
  auto ctx = MakeContext(Backend::kReference);
  const int64_t rows = 5, cols = 37;
  const std::vector<float> x = RandomFloats(rows * cols, 1, -5.0f, 5.0f);
  const std::vector<float> gamma = RandomFloats(cols, 2, 0.5f, 1.5f);
  const float eps = 1e-6f;
  std::vector<float> expected(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    double mean_square = 0.0;
    for (int64_t c = 0; c < cols; ++c) {
      mean_square += double{x[r * cols + c]} * x[r * cols + c] / cols;
    }
    for (int64_t c = 0; c < cols; ++c) {
      expected[r * cols + c] = static_cast<float>(
          gamma[c] * (x[r * cols + c] / std::sqrt(mean_square + eps)));
    }
  }
  EXPECT_TRUE(AllClose(RunRmsNorm(*ctx, x, rows, cols, gamma, eps), expected,
                       1e-7, 1e-7));
}

// Odd widths and every tail of the 16-lane loop, rows 1 to 257 (the team
// runs from 32K elements on), 1 to 3 threads. Tolerance: the float sum of
// squares over up to 1000 terms in 16 lanes has a relative error of order
// cols / 16 * 6e-8 <= 4e-6, halved by the square root; then two roundings:
// rtol 1e-5. Outputs are O(1) (|x| <= 3 over its own RMS, gamma <= 1.5), so
// atol 1e-6 only covers values near zero.
TEST(RmsNormTest, DnnlMatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2, 3}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t cols : {1, 3, 8, 15, 16, 17, 31, 64, 512, 1000}) {
      const std::vector<float> gamma = RandomFloats(cols, 1, 0.5f, 1.5f);
      for (int64_t rows : {0, 1, 2, 3, 7, 16, 33, 64, 65, 70, 257}) {
        const std::vector<float> x =
            RandomFloats(rows * cols, 3 + rows, -3.0f, 3.0f);
        EXPECT_TRUE(AllClose(RunRmsNorm(*dnnl, x, rows, cols, gamma, 1e-6f),
                             RunRmsNorm(*ref, x, rows, cols, gamma, 1e-6f),
                             1e-5, 1e-6))
            << "rows " << rows << " cols " << cols << " threads " << threads;
      }
    }
  }
}

TEST(RmsNormTest, WorksInPlace) {
  const int64_t rows = 65, cols = 512;  // enough elements for the threaded path
  const std::vector<float> x = RandomFloats(rows * cols, 4, -3.0f, 3.0f);
  const std::vector<float> gamma = RandomFloats(cols, 5);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend, 2);
    std::vector<float> in_place = x;
    ASSERT_THAT(RmsNorm(*ctx, in_place.data(), rows, cols, gamma.data(), 1e-6f,
                        in_place.data()),
                IsOk());
    EXPECT_TRUE(
        AllClose(in_place, RunRmsNorm(*ctx, x, rows, cols, gamma, 1e-6f), 0, 0))
        << BackendName(backend);
  }
}

TEST(RmsNormTest, RejectsBadArguments) {
  std::vector<float> x(8), g(4), y(8);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(RmsNorm(*ctx, x.data(), 2, 0, g.data(), 1e-6f, y.data()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("rms norm: need rows >= 0 and cols > 0")));
    EXPECT_THAT(
        RmsNorm(*ctx, x.data(), -1, 4, g.data(), 1e-6f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
    for (float eps : {-1.0f, NAN, INFINITY}) {
      EXPECT_THAT(
          RmsNorm(*ctx, x.data(), 2, 4, g.data(), eps, y.data()),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("eps")));
    }
    EXPECT_THAT(
        RmsNorm(*ctx, nullptr, 2, 4, g.data(), 1e-6f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        RmsNorm(*ctx, x.data(), 2, 4, nullptr, 1e-6f, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        RmsNorm(*ctx, x.data(), 2, 4, g.data(), 1e-6f, nullptr),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(RmsNorm(*ctx, nullptr, 0, 4, nullptr, 1e-6f, nullptr), IsOk());
  }
}

}  // namespace
}  // namespace attnserve::engine
