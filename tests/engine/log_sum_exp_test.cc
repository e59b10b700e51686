#include "engine/ops/log_sum_exp.h"

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

std::vector<float> RunLogSumExp(const OpContext& ctx,
                                const std::vector<float>& x, int64_t rows,
                                int64_t cols) {
  std::vector<float> lse(rows, NAN);
  EXPECT_THAT(LogSumExp(ctx, x.data(), rows, cols, lse.data()), IsOk());
  return lse;
}

TEST(LogSumExpTest, ReferenceMatchesHandComputedValues) {
  auto ctx = MakeContext(Backend::kReference);
  // log(e + e^2 + e^3) = 3.40760596.
  EXPECT_TRUE(
      AllClose(RunLogSumExp(*ctx, {1, 2, 3}, 1, 3), {3.40760596f}, 1e-6, 1e-6));
  // Huge logits must not overflow: two equal ones give x + log(2).
  EXPECT_TRUE(AllClose(RunLogSumExp(*ctx, {1000, 1000, -1000, -1000}, 2, 2),
                       {1000.69314718f, -999.30685282f}, 1e-6, 1e-6));
  EXPECT_TRUE(AllClose(RunLogSumExp(*ctx, {7}, 1, 1), {7}, 0, 0));
}

TEST(LogSumExpTest, DnnlMatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t cols : {1, 2, 7, 64, 1000, 4096, 32000}) {
      for (int64_t rows : {0, 1, 2, 3, 7, 16, 33, 100, 257}) {
        if (rows * cols > 2'000'000) continue;
        const std::vector<float> x =
            RandomFloats(rows * cols, 3 + rows, -20.0f, 20.0f);
        EXPECT_TRUE(AllClose(RunLogSumExp(*dnnl, x, rows, cols),
                             RunLogSumExp(*ref, x, rows, cols), 1e-5, 1e-5))
            << "rows " << rows << " cols " << cols << " threads " << threads;
      }
    }
  }
}

// Masked (-inf) logits leave the normaliser finite, so their log-probs,
// x - lse, stay -inf and the others finite.
TEST(LogSumExpTest, MaskedLogitsStayMinusInfinity) {
  std::vector<float> x = RandomFloats(2 * 100, 9, -5.0f, 5.0f);
  x[3] = x[150] = -INFINITY;
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    const std::vector<float> lse = RunLogSumExp(*ctx, x, 2, 100);
    for (size_t i = 0; i < x.size(); ++i) {
      const float y = x[i] - lse[i / 100];
      if (i == 3 || i == 150) {
        EXPECT_EQ(y, -INFINITY) << BackendName(backend) << " " << i;
      } else {
        EXPECT_TRUE(std::isfinite(y)) << BackendName(backend) << " " << i;
      }
    }
  }
}

TEST(LogSumExpTest, RejectsBadArguments) {
  std::vector<float> x(8), lse(2);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(
        LogSumExp(*ctx, x.data(), 2, 0, lse.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cols")));
    EXPECT_THAT(
        LogSumExp(*ctx, x.data(), -2, 4, lse.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
    EXPECT_THAT(
        LogSumExp(*ctx, nullptr, 2, 4, lse.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        LogSumExp(*ctx, x.data(), 2, 4, nullptr),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(LogSumExp(*ctx, nullptr, 0, 4, nullptr), IsOk());
  }
}

}  // namespace
}  // namespace attnserve::engine
