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

}  // namespace
}  // namespace attnserve::engine
