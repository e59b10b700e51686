#include "engine/ops/gated_activation.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "engine/ops/linear.h"
#include "engine/ops/op_bodies.h"
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

constexpr LinearActivation kActivations[] = {
    LinearActivation::kRelu, LinearActivation::kGelu,
    LinearActivation::kGeluTanh, LinearActivation::kSwish};

// Each activation written out here in double, as torch defines it.
double Act(LinearActivation activation, double v) {
  const double kPi = 3.14159265358979323846;
  switch (activation) {
    case LinearActivation::kRelu:
      return std::max(v, 0.0);
    case LinearActivation::kGelu:
      return v * 0.5 * std::erfc(-v / std::sqrt(2.0));
    case LinearActivation::kGeluTanh:
      return 0.5 * v *
             (1.0 +
              std::tanh(std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v)));
    case LinearActivation::kSwish:
      return v * (1.0 / (1.0 + std::exp(-v)));
    case LinearActivation::kNone:
      break;
  }
  return v;
}

std::vector<float> RunGated(const OpContext& ctx, LinearActivation activation,
                            const std::vector<float>& in, int64_t rows,
                            int64_t cols) {
  std::vector<float> out(rows * cols, NAN);
  EXPECT_THAT(
      GatedActivation(ctx, activation, in.data(), rows, cols, out.data()),
      IsOk());
  return out;
}

// [rows, 2 * cols] with a in [-4, 4) (the activations' bends) and b in
// [-2, 2).
std::vector<float> RandomInput(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> in(rows * 2 * cols);
  const std::vector<float> a = RandomFloats(rows * cols, seed, -4.0f, 4.0f);
  const std::vector<float> b = RandomFloats(rows * cols, seed + 1, -2.0f, 2.0f);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(a.begin() + r * cols, cols, in.begin() + r * 2 * cols);
    std::copy_n(b.begin() + r * cols, cols, in.begin() + r * 2 * cols + cols);
  }
  return in;
}

TEST(GatedActivationTest, ReferenceMatchesTheFormulas) {
  auto ctx = MakeContext(Backend::kReference);
  const int64_t rows = 3, cols = 5;
  const std::vector<float> in = RandomInput(rows, cols, 1);
  for (LinearActivation activation : kActivations) {
    std::vector<float> expected(rows * cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        expected[r * cols + c] =
            static_cast<float>(Act(activation, in[r * 2 * cols + c]) *
                               in[r * 2 * cols + cols + c]);
      }
    }
    // Only the final rounding to float separates the two.
    EXPECT_TRUE(
        AllClose(RunGated(*ctx, activation, in, rows, cols), expected, 1e-7, 0))
        << "activation " << static_cast<int>(activation);
  }
  // By hand: relu(-1) * 3 = 0, relu(2) * -0.5 = -1; swish(0) * 7 = 0.
  EXPECT_TRUE(
      AllClose(RunGated(*ctx, LinearActivation::kRelu, {-1, 2, 3, -0.5f}, 1, 2),
               {0, -1}, 0, 0));
  EXPECT_TRUE(AllClose(RunGated(*ctx, LinearActivation::kSwish, {0, 7}, 1, 1),
                       {0}, 0, 0));
}

// The fast body against the reference over many shapes: odd widths and the
// vector loops' tails, one row to many, 1 to 3 threads (the team only runs
// from 16K outputs on, which the largest shapes pass). Tolerance: relu and the
// product are exact; FastExp is within ~1e-7 relative (swish, gelu_tanh), and
// the fast erf within 1.5e-7 absolute, which gelu scales by 0.5 |a| |b| <= 4:
// hence atol 1e-6 and rtol 1e-5 (erf's absolute error is a large relative one
// where gelu is small, near a = -4).
TEST(GatedActivationTest, DnnlMatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2, 3}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t cols : {1, 3, 7, 8, 15, 16, 17, 33, 64, 100, 2048}) {
      for (int64_t rows : {1, 2, 3, 5, 9, 16, 31, 64, 65, 70}) {
        const std::vector<float> in =
            RandomInput(rows, cols, static_cast<uint32_t>(cols * 100 + rows));
        for (LinearActivation activation : kActivations) {
          ASSERT_TRUE(AllClose(RunGated(*dnnl, activation, in, rows, cols),
                               RunGated(*ref, activation, in, rows, cols), 1e-5,
                               1e-6))
              << "activation " << static_cast<int>(activation) << " rows "
              << rows << " cols " << cols << " threads " << threads;
        }
      }
    }
  }
}

// act(a) here is Linear's fused epilogue act: with b = 1 the gated output is
// act(a), and identity weights make Linear's product exactly a, so the two
// agree bit for bit wherever Linear runs our kernels (up to 16 rows on plain
// weights, 64 on panels; both layouts are forced in turn). Beyond, oneDNN's
// eltwise post-op computes act: within the reference tolerance above of ours.
TEST(GatedActivationTest, DnnlAgreesWithTheLinearEpilogue) {
  const int64_t cols = 40;
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  for (internal::DnnlWeightLayout layout :
       {internal::DnnlWeightLayout::kPlain,
        internal::DnnlWeightLayout::kPanels}) {
    internal::ForceDnnlWeightLayoutForTesting(layout);
    Tensor identity({cols, cols});
    std::fill_n(identity.data(), cols * cols, 0.0f);
    for (int64_t i = 0; i < cols; ++i) identity.data()[i * cols + i] = 1.0f;
    absl::StatusOr<std::unique_ptr<PackedLinear>> packed =
        PackLinear(*dnnl, std::move(identity), Tensor());
    internal::ForceDnnlWeightLayoutForTesting(std::nullopt);
    ASSERT_THAT(packed, IsOk());
    const bool panels = layout == internal::DnnlWeightLayout::kPanels;
    for (int64_t rows : {1, 3, 16, 17, 64, 65, 100}) {
      const std::vector<float> a =
          RandomFloats(rows * cols, static_cast<uint32_t>(rows), -6.0f, 6.0f);
      std::vector<float> in(rows * 2 * cols, 1.0f);
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(a.begin() + r * cols, cols, in.begin() + r * 2 * cols);
      }
      const bool our_kernel = rows <= (panels ? 64 : 16);
      for (LinearActivation activation : kActivations) {
        std::vector<float> linear(rows * cols);
        ASSERT_THAT(Linear(*dnnl, **packed, a.data(), rows, linear.data(),
                           {activation, false}),
                    IsOk());
        const std::vector<float> gated =
            RunGated(*dnnl, activation, in, rows, cols);
        EXPECT_TRUE(our_kernel ? AllClose(gated, linear, 0, 0)
                               : AllClose(gated, linear, 1e-5, 1e-6))
            << "activation " << static_cast<int>(activation) << " rows " << rows
            << (panels ? " panels" : " plain");
      }
    }
  }
}

TEST(GatedActivationTest, RejectsBadArguments) {
  std::vector<float> in(16), out(8);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kNone, in.data(), 2, 4,
                        out.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("activation")));
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, in.data(), -1, 4,
                        out.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows")));
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, in.data(), 2, 0,
                        out.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cols")));
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, nullptr, 2, 4,
                        out.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, in.data(), 2, 4,
                        nullptr),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
    // In place (the output over the input's first half) and a partial
    // overlap.
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, in.data(), 2, 4,
                        in.data()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, in.data(), 2, 4,
                        in.data() + 15),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("overlaps")));
    // No rows: a no-op that reads nothing.
    EXPECT_THAT(
        GatedActivation(*ctx, LinearActivation::kGelu, nullptr, 0, 4, nullptr),
        IsOk());
    // Adjacent buffers do not overlap.
    std::vector<float> both(24);
    EXPECT_THAT(GatedActivation(*ctx, LinearActivation::kGelu, both.data(), 2,
                                4, both.data() + 16),
                IsOk());
  }
}

}  // namespace
}  // namespace attnserve::engine
