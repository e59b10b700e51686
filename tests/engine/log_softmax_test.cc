#include "engine/ops/log_softmax.h"

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

std::vector<float> RunLogSoftmax(const OpContext& ctx,
                                 const std::vector<float>& x, int64_t rows,
                                 int64_t cols) {
  std::vector<float> y(x.size(), NAN);
  EXPECT_THAT(LogSoftmax(ctx, x.data(), rows, cols, y.data()), IsOk());
  return y;
}

TEST(LogSoftmaxTest, ReferenceMatchesHandComputedValues) {
  auto ctx = MakeContext(Backend::kReference);
  // log(e + e^2 + e^3) = 3.40760596.
  EXPECT_TRUE(AllClose(RunLogSoftmax(*ctx, {1, 2, 3}, 1, 3),
                       {-2.40760596f, -1.40760596f, -0.40760596f}, 1e-6, 1e-6));
  // Huge logits must not overflow: two equal ones get log(1/2) each.
  EXPECT_TRUE(AllClose(RunLogSoftmax(*ctx, {1000, 1000, -1000, -1000}, 2, 2),
                       {-0.69314718f, -0.69314718f, -0.69314718f, -0.69314718f},
                       1e-6, 1e-6));
  EXPECT_TRUE(AllClose(RunLogSoftmax(*ctx, {7}, 1, 1), {0}, 0, 0));
}

TEST(LogSoftmaxTest, DnnlMatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t cols : {1, 2, 7, 64, 1000, 32000}) {
      for (int64_t rows : {0, 1, 2, 3, 7, 16, 33, 100, 257}) {
        if (rows * cols > 2'000'000) continue;
        const std::vector<float> x =
            RandomFloats(rows * cols, 3 + rows, -20.0f, 20.0f);
        EXPECT_TRUE(AllClose(RunLogSoftmax(*dnnl, x, rows, cols),
                             RunLogSoftmax(*ref, x, rows, cols), 1e-5, 1e-5))
            << "rows " << rows << " cols " << cols << " threads " << threads;
      }
    }
  }
}

TEST(LogSoftmaxTest, MaskedLogitsStayMinusInfinity) {
  std::vector<float> x = RandomFloats(2 * 100, 9, -5.0f, 5.0f);
  x[3] = x[150] = -INFINITY;
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    const std::vector<float> y = RunLogSoftmax(*ctx, x, 2, 100);
    for (size_t i = 0; i < y.size(); ++i) {
      if (i == 3 || i == 150) {
        EXPECT_EQ(y[i], -INFINITY) << BackendName(backend) << " " << i;
      } else {
        EXPECT_TRUE(std::isfinite(y[i])) << BackendName(backend) << " " << i;
      }
    }
  }
}

TEST(LogSoftmaxTest, WorksInPlace) {
  const int64_t rows = 8, cols = 5000;  // enough elements for the threaded path
  const std::vector<float> x = RandomFloats(rows * cols, 4, -10.0f, 10.0f);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend, 2);
    std::vector<float> in_place = x;
    ASSERT_THAT(LogSoftmax(*ctx, in_place.data(), rows, cols, in_place.data()),
                IsOk());
    EXPECT_TRUE(AllClose(in_place, RunLogSoftmax(*ctx, x, rows, cols), 0, 0))
        << BackendName(backend);
  }
}

TEST(LogSoftmaxTest, RejectsBadArguments) {
  std::vector<float> x(8), y(8);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(
        LogSoftmax(*ctx, x.data(), 2, 0, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cols")));
    EXPECT_THAT(
        LogSoftmax(*ctx, x.data(), -2, 4, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
    EXPECT_THAT(
        LogSoftmax(*ctx, nullptr, 2, 4, y.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        LogSoftmax(*ctx, x.data(), 2, 4, nullptr),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(LogSoftmax(*ctx, nullptr, 0, 4, nullptr), IsOk());
  }
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// LogSumExp is LogSoftmax's normaliser: x - lse gives LogSoftmax's y, on both
// backends, for every row.
TEST(LogSumExpTest, IsLogSoftmaxsNormaliser) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = op_test::MakeContext(backend, 2);
    for (int64_t cols : {1, 7, 4096}) {
      for (int64_t rows : {1, 3, 33}) {
        const std::vector<float> x =
            op_test::RandomFloats(rows * cols, 5 + rows, -20.0f, 20.0f);
        std::vector<float> y(rows * cols), lse(rows);
        ASSERT_TRUE(LogSoftmax(*ctx, x.data(), rows, cols, y.data()).ok());
        ASSERT_TRUE(LogSumExp(*ctx, x.data(), rows, cols, lse.data()).ok());
        for (int64_t i = 0; i < rows * cols; ++i) {
          ASSERT_NEAR(x[i] - lse[i / cols], y[i], 1e-5)
              << BackendName(backend) << " rows " << rows << " cols " << cols;
        }
      }
    }
    float out = 0;
    EXPECT_FALSE(LogSumExp(*ctx, nullptr, 1, 3, &out).ok());
    EXPECT_FALSE(LogSumExp(*ctx, &out, 1, 0, &out).ok());
  }
}

}  // namespace
}  // namespace attnserve::engine
