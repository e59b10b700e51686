#include "engine/ops/linear.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "engine/ops/op_bodies.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/dnnl_layouts.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/resident_memory.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using op_test::AllClose;
using op_test::MakeContext;
using op_test::MakeTensor;
using op_test::RandomFloats;
using ::testing::HasSubstr;

// y = act(x W^T + b) [+ y0] on `backend`.
std::vector<float> RunLinear(const OpContext& ctx, const std::vector<float>& w,
                             const std::vector<float>& b, int64_t n, int64_t k,
                             const std::vector<float>& x, int64_t m,
                             const std::vector<float>& y0,
                             LinearEpilogue epilogue) {
  absl::StatusOr<std::unique_ptr<PackedLinear>> packed = PackLinear(
      ctx, MakeTensor({n, k}, w), b.empty() ? Tensor() : MakeTensor({n}, b));
  EXPECT_THAT(packed, IsOk());
  if (!packed.ok()) return {};
  std::vector<float> y = y0;
  y.resize(m * n);
  EXPECT_THAT(Linear(ctx, **packed, x.data(), m, y.data(), epilogue), IsOk());
  return y;
}

// W = [[1, 2], [3, 4], [5, 6]], b = [0.5, -1, -20], x = [[1, 1], [2, -1]]:
// x W^T + b = [[3.5, 6, -9], [0.5, 1, -16]].
struct TinyCase {
  LinearActivation activation;
  bool accumulate;
  std::vector<float> expected;
};

TEST(LinearTest, ReferenceMatchesHandComputedValues) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {0.5f, -1, -20};
  const std::vector<float> x = {1, 1, 2, -1};
  const std::vector<float> y0 = {10, 20, 30, 40, 50, 60};
  // gelu(v) = v * Phi(v); swish(v) = v / (1 + e^-v); exp(-9) and exp(-16) by
  // hand.
  const float gelu_half = 0.5f * 0.691462461f;
  const float swish_half = 0.5f / (1.0f + std::exp(-0.5f));
  const std::vector<TinyCase> cases = {
      {LinearActivation::kNone, false, {3.5f, 6, -9, 0.5f, 1, -16}},
      {LinearActivation::kNone, true, {13.5f, 26, 21, 40.5f, 51, 44}},
      {LinearActivation::kRelu, false, {3.5f, 6, 0, 0.5f, 1, 0}},
      {LinearActivation::kRelu, true, {13.5f, 26, 30, 40.5f, 51, 60}},
      {LinearActivation::kGelu,
       false,
       {3.4991858f, 6, 0, gelu_half, 0.8413447f, 0}},
      {LinearActivation::kSwish,
       false,
       {3.5f / (1 + std::exp(-3.5f)), 6 / (1 + std::exp(-6.0f)),
        -9 * 1.2339458e-4f, swish_half, 0.7310586f, -16 * 1.1253517e-7f}},
  };
  auto ctx = MakeContext(Backend::kReference);
  for (const TinyCase& c : cases) {
    const std::vector<float> y =
        RunLinear(*ctx, w, b, 3, 2, x, 2, y0, {c.activation, c.accumulate});
    EXPECT_TRUE(AllClose(y, c.expected, 1e-6, 1e-6))
        << "activation " << static_cast<int>(c.activation) << " accumulate "
        << c.accumulate;
  }
  // Without bias: x W^T.
  EXPECT_TRUE(AllClose(RunLinear(*ctx, w, {}, 3, 2, x, 2, {}, {}),
                       {3, 7, 11, 0, 2, 4}, 0, 0));
}

// gelu's tanh form (HF's gelu_new), written out here in double.
double GeluTanhFormula(double v) {
  const double kPi = 3.14159265358979323846;
  return 0.5 * v *
         (1.0 + std::tanh(std::sqrt(2.0 / kPi) * (v + 0.044715 * v * v * v)));
}

// The reference's gelu_tanh epilogue is the formula: one input feature and a
// unit weight make y = act(x + b) for each x.
TEST(LinearTest, ReferenceGeluTanhMatchesTheFormula) {
  auto ctx = MakeContext(Backend::kReference);
  std::vector<float> x;
  for (float v = -8.0f; v <= 8.0f; v += 0.125f) x.push_back(v);
  const int64_t m = static_cast<int64_t>(x.size());
  for (const bool accumulate : {false, true}) {
    const std::vector<float> y0 = RandomFloats(m, 9);
    std::vector<float> expected(m);
    for (int64_t r = 0; r < m; ++r) {
      const double v = GeluTanhFormula(double{x[r]} + 0.25);
      expected[r] = static_cast<float>(accumulate ? y0[r] + v : v);
    }
    EXPECT_TRUE(AllClose(RunLinear(*ctx, {1.0f}, {0.25f}, 1, 1, x, m, y0,
                                   {LinearActivation::kGeluTanh, accumulate}),
                         expected, 1e-7, 1e-7))
        << "accumulate " << accumulate;
  }
  // Values worked out by hand from the formula: gelu_tanh(1) =
  // 0.5 (1 + tanh(0.7978846 * 1.044715)), gelu_tanh(-1) = 1 - that; 0 at 0.
  EXPECT_TRUE(AllClose(RunLinear(*ctx, {1.0f}, {}, 1, 1, {1.0f, -1.0f, 0.0f}, 3,
                                 {}, {LinearActivation::kGeluTanh, false}),
                       {0.8411920f, -0.1588080f, 0.0f}, 1e-6, 1e-7));
}

// The oneDNN body's tests run under both of its weight layouts, whichever the
// host would choose (DnnlWeightLayoutInUse): panels with our kernel up to 64
// rows and oneDNN's matmul beyond, and plain weights with the dot-product
// kernel up to 16 rows.
class DnnlLayoutTest
    : public ::testing::TestWithParam<internal::DnnlWeightLayout> {
 protected:
  void SetUp() override {
    internal::ForceDnnlWeightLayoutForTesting(GetParam());
  }
  void TearDown() override {
    internal::ForceDnnlWeightLayoutForTesting(std::nullopt);
  }
};

INSTANTIATE_TEST_SUITE_P(
    Layouts, DnnlLayoutTest,
    ::testing::Values(internal::DnnlWeightLayout::kPlain,
                      internal::DnnlWeightLayout::kPanels),
    [](const ::testing::TestParamInfo<internal::DnnlWeightLayout>& info) {
      return testing::DnnlWeightLayoutName(info.param);
    });

// All epilogues, with and without bias: oneDNN body against the reference.
void ExpectEveryEpilogueMatches(int64_t m) {
  const int64_t n = 37, k = 53;
  const std::vector<float> w = RandomFloats(n * k, 1, -0.3f, 0.3f);
  const std::vector<float> b = RandomFloats(n, 2);
  const std::vector<float> x = RandomFloats(m * k, 3, -2.0f, 2.0f);
  const std::vector<float> y0 = RandomFloats(m * n, 4);
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  for (LinearActivation activation :
       {LinearActivation::kNone, LinearActivation::kRelu,
        LinearActivation::kGelu, LinearActivation::kSwish,
        LinearActivation::kGeluTanh}) {
    for (bool accumulate : {false, true}) {
      for (bool bias : {false, true}) {
        const LinearEpilogue epilogue{activation, accumulate};
        const std::vector<float>& bias_values = bias ? b : std::vector<float>{};
        EXPECT_TRUE(
            AllClose(RunLinear(*dnnl, w, bias_values, n, k, x, m, y0, epilogue),
                     RunLinear(*ref, w, bias_values, n, k, x, m, y0, epilogue),
                     1e-5, 1e-5))
            << "activation " << static_cast<int>(activation) << " accumulate "
            << accumulate << " bias " << bias;
      }
    }
  }
}

// A few rows run our kernels, more the oneDNN primitive.
TEST_P(DnnlLayoutTest, MatchesReferenceForEveryEpilogue) {
  for (const int64_t m : {9, 40, 70}) {
    SCOPED_TRACE(::testing::Message() << "m " << m);
    ExpectEveryEpilogueMatches(m);
  }
}

// Many shapes, including odd ones, with 1 and 2 threads; the epilogue rotates
// so every kind shows up across shapes.
TEST_P(DnnlLayoutTest, MatchesReferenceAcrossShapes) {
  const std::vector<std::pair<int64_t, int64_t>> nks = {
      {1, 1}, {3, 5}, {17, 33}, {64, 64}, {130, 257}, {512, 512}};
  const std::vector<int64_t> ms = {0, 1, 2, 3, 7, 16, 33, 64, 65, 100, 257};
  auto ref = MakeContext(Backend::kReference);
  int variant = 0;
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (auto [n, k] : nks) {
      // Weights scaled by 1/sqrt(k) keep outputs O(1) whatever k, as trained
      // layers do.
      const float w_range = 1.0f / std::sqrt(static_cast<float>(k));
      const std::vector<float> w =
          RandomFloats(n * k, 10 + n, -w_range, w_range);
      const std::vector<float> b = RandomFloats(n, 20 + n);
      for (int64_t m : ms) {
        if (m * n * k > 20'000'000)
          continue;  // keeps the double-precision reference quick
        const std::vector<float> x = RandomFloats(m * k, 30 + m);
        const std::vector<float> y0 = RandomFloats(m * n, 40 + m);
        // Five activations (kNone..kGeluTanh), then accumulate or not.
        const LinearEpilogue epilogue{
            static_cast<LinearActivation>(variant % 5), (variant / 5) % 2 == 1};
        const std::vector<float>& bias =
            variant % 3 == 0 ? std::vector<float>{} : b;
        ++variant;
        EXPECT_TRUE(AllClose(
            RunLinear(*dnnl, w, bias, n, k, x, m, y0, epilogue),
            RunLinear(*ref, w, bias, n, k, x, m, y0, epilogue), 1e-4, 1e-5))
            << "m " << m << " n " << n << " k " << k << " threads " << threads;
      }
    }
  }
}

// gelu_tanh at every row count from 1 to 70, so our kernels (up to 16 rows on
// plain weights, 64 on panels) and oneDNN's primitive with its
// eltwise_gelu_tanh post-op beyond, tails of the column blocks (n = 67) and of
// the depth (k = 37) included, with 1, 2 and 3 threads. Tolerance as
// MatchesReferenceAcrossShapes: the products are float sums of 37 terms
// (~1e-6 relative), our gelu_tanh is within ~1e-6 of the formula (see
// FastGeluTanhIsAccurate), and oneDNN's is of the same order.
TEST_P(DnnlLayoutTest, GeluTanhMatchesReferenceAtEveryRowCount) {
  const int64_t n = 67, k = 37;
  const float w_range = 1.0f / std::sqrt(static_cast<float>(k));
  const std::vector<float> w = RandomFloats(n * k, 11, -w_range, w_range);
  const std::vector<float> b = RandomFloats(n, 12);
  auto ref = MakeContext(Backend::kReference);
  for (int threads : {1, 2, 3}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t m = 1; m <= 70; ++m) {
      // Inputs to +-3 put act's argument over [-4, 4], gelu_tanh's bend.
      const std::vector<float> x = RandomFloats(m * k, 50 + m, -3.0f, 3.0f);
      const std::vector<float> y0 = RandomFloats(m * n, 60 + m);
      const LinearEpilogue epilogue{LinearActivation::kGeluTanh, m % 2 == 0};
      ASSERT_TRUE(AllClose(RunLinear(*dnnl, w, b, n, k, x, m, y0, epilogue),
                           RunLinear(*ref, w, b, n, k, x, m, y0, epilogue),
                           1e-5, 1e-5))
          << "m " << m << " threads " << threads;
    }
  }
}

// Our kernels' gelu_tanh (activations.h) against the formula in double, where
// the product is exact: identity weights make x W^T = x, so y = act(x). Up to
// 16 rows run our kernels in both layouts. Relative error within 2e-6
// wherever the output is not tiny: FastExp's ~1e-7 and a few roundings, and
// the exponent's own float rounding, which grows with its size (|-2u| near 17
// at x = -5, where outputs are ~1e-7). Absolute error within 1e-12 everywhere
// (outputs below ~1e-6 are noise to the network).
TEST_P(DnnlLayoutTest, FastGeluTanhIsAccurate) {
  const int64_t n = 64, m = 16;
  std::vector<float> identity(n * n, 0.0f);
  for (int64_t i = 0; i < n; ++i) identity[i * n + i] = 1.0f;
  std::vector<float> x(m * n);
  for (int64_t i = 0; i < m * n; ++i) {
    x[i] = -10.0f + 20.0f * static_cast<float>(i) / (m * n);  // [-10, 10)
  }
  x[0] = 0.0f;
  x[1] = -0.0f;
  x[2] = 1e-20f;
  x[3] = -1e-20f;
  x[4] = 100.0f;
  x[5] = -100.0f;
  x[6] = 1e-3f;
  auto dnnl = MakeContext(Backend::kDnnl);
  const std::vector<float> y = RunLinear(*dnnl, identity, {}, n, n, x, m, {},
                                         {LinearActivation::kGeluTanh, false});
  ASSERT_EQ(y.size(), x.size());
  double worst_relative = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double expected = GeluTanhFormula(x[i]);
    const double error = std::fabs(y[i] - expected);
    ASSERT_LE(error, 2e-6 * std::fabs(expected) + 1e-12)
        << "x " << x[i] << ": " << y[i] << " vs " << expected;
    if (std::fabs(expected) > 1e-6) {
      worst_relative = std::max(worst_relative, error / std::fabs(expected));
    }
  }
  RecordProperty("worst_relative_error",
                 (::testing::Message() << worst_relative).GetString());
}

// More row counts than the oneDNN body keeps memory objects for, twice over, so
// its cache fills, is dropped and refills mid-sequence.
TEST_P(DnnlLayoutTest, HandlesManyRowCounts) {
  const int64_t n = 8, k = 8;
  const std::vector<float> w = RandomFloats(n * k, 1);
  const std::vector<float> b = RandomFloats(n, 2);
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl);
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t m = 1; m <= 300; ++m) {
      const std::vector<float> x = RandomFloats(m * k, 3 + m);
      ASSERT_TRUE(AllClose(RunLinear(*dnnl, w, b, n, k, x, m, {}, {}),
                           RunLinear(*ref, w, b, n, k, x, m, {}, {}), 1e-5,
                           1e-6))
          << "m " << m;
    }
  }
}

// A server meets many row counts, and the oneDNN body keeps a primitive for
// each (beyond the 64 rows its panel kernel takes, in the host's layout). They
// must share one scratchpad: with oneDNN's library-managed scratchpads every
// primitive of this shape held about 300 KB of its own (64 row counts:
// ~19 MB); shared, the 64 take ~3 MB, mostly JIT code.
TEST(LinearTest, DnnlPrimitivesShareOneScratchpad) {
  const int64_t n = 2048, k = 512, max_m = 200;
  auto dnnl = MakeContext(Backend::kDnnl);
  absl::StatusOr<std::unique_ptr<PackedLinear>> packed =
      PackLinear(*dnnl, MakeTensor({n, k}, RandomFloats(n * k, 1)), Tensor());
  ASSERT_THAT(packed, IsOk());
  const std::vector<float> x = RandomFloats(max_m * k, 2);
  std::vector<float> y(max_m * n);
  // The first primitive and the scratchpad's largest size come before the
  // baseline.
  ASSERT_THAT(Linear(*dnnl, **packed, x.data(), max_m, y.data()), IsOk());
  const long before = testing::ResidentKilobytes();
  for (int64_t m = max_m - 64; m < max_m; ++m) {
    ASSERT_THAT(Linear(*dnnl, **packed, x.data(), m, y.data()), IsOk());
  }
  EXPECT_LT(testing::ResidentKilobytes() - before, 64 * 150)
      << "KB for 64 primitives";
}

TEST_P(DnnlLayoutTest, BorrowedWeightsGiveTheSameResult) {
  const int64_t n = 19, k = 24, m = 5;
  Tensor w = MakeTensor({n, k}, RandomFloats(n * k, 5));
  Tensor b = MakeTensor({n}, RandomFloats(n, 6));
  const std::vector<float> x = RandomFloats(m * k, 7);
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    auto owned = PackLinear(
        *ctx,
        MakeTensor({n, k}, std::vector<float>(w.data(), w.data() + n * k)),
        MakeTensor({n}, std::vector<float>(b.data(), b.data() + n)));
    auto borrowed = PackLinearBorrowed(*ctx, w, &b, 0, n);
    auto borrowed_no_bias = PackLinearBorrowed(*ctx, w, nullptr, 0, n);
    ASSERT_THAT(owned, IsOk());
    ASSERT_THAT(borrowed, IsOk());
    ASSERT_THAT(borrowed_no_bias, IsOk());
    EXPECT_EQ((*borrowed)->out_features(), n);
    EXPECT_EQ((*borrowed)->in_features(), k);
    EXPECT_TRUE((*borrowed)->has_bias());
    EXPECT_FALSE((*borrowed_no_bias)->has_bias());
    EXPECT_EQ((*borrowed)->backend(), backend);
    std::vector<float> y_owned(m * n), y_borrowed(m * n);
    ASSERT_THAT(Linear(*ctx, **owned, x.data(), m, y_owned.data()), IsOk());
    ASSERT_THAT(Linear(*ctx, **borrowed, x.data(), m, y_borrowed.data()),
                IsOk());
    EXPECT_TRUE(AllClose(y_borrowed, y_owned, 0, 0)) << BackendName(backend);
    // Owned weights are held by the pack (as they are or reordered).
    EXPECT_GE((*owned)->bytes(), static_cast<size_t>(n * k) * sizeof(float));
  }
  // Rows [5, 12) give those outputs of the whole product.
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    auto whole = PackLinearBorrowed(*ctx, w, &b, 0, n);
    auto part = PackLinearBorrowed(*ctx, w, &b, 5, 12);
    ASSERT_THAT(whole, IsOk());
    ASSERT_THAT(part, IsOk());
    EXPECT_EQ((*part)->out_features(), 7);
    std::vector<float> y_whole(m * n), y_part(m * 7), expected;
    ASSERT_THAT(Linear(*ctx, **whole, x.data(), m, y_whole.data()), IsOk());
    ASSERT_THAT(Linear(*ctx, **part, x.data(), m, y_part.data()), IsOk());
    for (int64_t r = 0; r < m; ++r) {
      expected.insert(expected.end(), y_whole.begin() + r * n + 5,
                      y_whole.begin() + r * n + 12);
    }
    EXPECT_TRUE(AllClose(y_part, expected, 0, 0)) << BackendName(backend);
  }
  // The reference never copies borrowed weights; oneDNN copies them onto
  // panels.
  auto ref = MakeContext(Backend::kReference);
  auto ref_borrowed = PackLinearBorrowed(*ref, w, &b, 0, n);
  EXPECT_EQ((*ref_borrowed)->bytes(), 0u);
  EXPECT_TRUE((*ref_borrowed)->borrows_weights());
  auto dnnl = MakeContext(Backend::kDnnl);
  auto dnnl_borrowed = PackLinearBorrowed(*dnnl, w, &b, 0, n);
  const bool panels = GetParam() == internal::DnnlWeightLayout::kPanels;
  EXPECT_EQ((*dnnl_borrowed)->borrows_weights(), !panels);
  EXPECT_EQ((*dnnl_borrowed)->bytes() > 0, panels);
}

// CopyWeightRow gives back the rows that went in, whatever the layout: an
// embedding lookup reads a tied table through it.
TEST_P(DnnlLayoutTest, CopyWeightRowGivesTheRowsBack) {
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {70, 33}, {130, 64}}) {
    const std::vector<float> values = RandomFloats(n * k, 8);
    Tensor w = MakeTensor({n, k}, values);
    for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
      auto ctx = MakeContext(backend);
      auto owned = PackLinear(*ctx, MakeTensor({n, k}, values), Tensor());
      auto borrowed = PackLinearBorrowed(*ctx, w, nullptr, 1 % n, n);
      ASSERT_THAT(owned, IsOk());
      ASSERT_THAT(borrowed, IsOk());
      std::vector<float> row(k);
      for (int64_t r = 0; r < n; ++r) {
        (*owned)->CopyWeightRow(r, row.data());
        ASSERT_TRUE(AllClose(row, {values.data() + r * k, size_t(k)}, 0, 0))
            << BackendName(backend) << " [" << n << ", " << k << "] row " << r;
      }
      // The borrowed slice starts at row 1 (row 0 when n is 1).
      const int64_t first = 1 % n;
      for (int64_t r = 0; r < n - first; ++r) {
        (*borrowed)->CopyWeightRow(r, row.data());
        ASSERT_TRUE(
            AllClose(row, {values.data() + (first + r) * k, size_t(k)}, 0, 0))
            << BackendName(backend) << " borrowed row " << r;
      }
    }
  }
}

TEST(LinearTest, RejectsBadWeightsAndBias) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto ctx = MakeContext(backend);
    EXPECT_THAT(PackLinear(*ctx, Tensor({6}), Tensor()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[6]")));
    EXPECT_THAT(
        PackLinear(*ctx, Tensor({0, 4}), Tensor()),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weight")));
    EXPECT_THAT(
        PackLinear(*ctx, Tensor({3, 4}), Tensor({4})),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bias")));
    EXPECT_THAT(
        PackLinear(*ctx, Tensor({3, 4}), Tensor({3, 1})),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bias")));
    const Tensor w({3, 4});
    const Tensor bad_bias({2});
    EXPECT_THAT(
        PackLinearBorrowed(*ctx, w, &bad_bias, 0, 3),
        StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bias")));
    for (auto [begin, end] : {std::pair{-1, 2}, {2, 2}, {1, 4}}) {
      EXPECT_THAT(
          PackLinearBorrowed(*ctx, w, nullptr, begin, end),
          StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rows [")));
    }
  }
}

TEST(LinearTest, RejectsBadCalls) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl);
  Tensor w = MakeTensor({2, 2}, {1, 2, 3, 4});
  auto packed = PackLinearBorrowed(*ref, w, nullptr, 0, 2);
  ASSERT_THAT(packed, IsOk());
  std::vector<float> x = {1, 2}, y(2);
  EXPECT_THAT(
      Linear(*dnnl, **packed, x.data(), 1, y.data()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("backend")));
  EXPECT_THAT(
      Linear(*ref, **packed, x.data(), -1, y.data()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("negative")));
  EXPECT_THAT(Linear(*ref, **packed, nullptr, 1, y.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  EXPECT_THAT(Linear(*ref, **packed, x.data(), 1, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null")));
  // m = 0 touches nothing, so null buffers are fine.
  EXPECT_THAT(Linear(*ref, **packed, nullptr, 0, nullptr), IsOk());
}

TEST(LinearTest, MapsModelActivations) {
  EXPECT_EQ(ToLinearActivation(Activation::kRelu), LinearActivation::kRelu);
  EXPECT_EQ(ToLinearActivation(Activation::kGelu), LinearActivation::kGelu);
  EXPECT_EQ(ToLinearActivation(Activation::kSwish), LinearActivation::kSwish);
  EXPECT_EQ(ToLinearActivation(Activation::kGeluTanh),
            LinearActivation::kGeluTanh);
}

}  // namespace
}  // namespace attnserve::engine
