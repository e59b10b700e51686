// The oneDNN backend's bfloat16 linear (linear_dnnl_bf16.cc) against the
// reference's bfloat16 body (linear_ref.cc), on each route this host runs: our
// vdpbf16ps kernel, its portable fallback and oneDNN's bf16 matmul, each
// forced for every row count.
//
// Tolerance. Both sides multiply the same bf16 values (the weights and x's
// rows rounded by FloatToBFloat16, which the tests below pin bit for bit), and
// a product of two bf16 values is exact in float32 and double. They differ in
// the sums: the reference adds in double and rounds once, the fast bodies add
// k products and the bias in float32, in their own order (vdpbf16ps is two
// round-to-nearest float32 multiply-adds per pair, Intel SDM; brgemm blocks
// the depth), which is off by at most k * 2^-24 * (sum_i |x_i w_i| + |b|).
// The activation then moves that by at most its steepest slope (1.13 for
// either gelu, 1.1 for swish, 1 for relu) and adds its own float32 error
// (ours within 2e-6 relative, see linear_test.cc's FastGeluTanhIsAccurate,
// and 1.5e-7 absolute in erf; oneDNN's of the same order), and the fused
// residual add one rounding: 4e-6 relative of |y| + |y0| and 1e-6 absolute
// cover those. vdpbf16ps also takes bf16 denormal inputs as zero and flushes
// denormal results, a change of less than 1e-37 here.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/format/half_float.h"
#include "engine/ops/linear.h"
#include "engine/ops/linear_dnnl_bf16.h"
#include "engine/ops/op_bodies.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/pack_any_host.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using internal::Bf16Kernel;
using internal::Bf16Route;
using op_test::MakeContext;
using op_test::MakeTensor;
using op_test::RandomFloats;

// A bf16 linear for ctx's backend, the reference's or the oneDNN body's on
// any host (its portable kernel where the CPU lacks AVX-512 BF16).
std::unique_ptr<PackedLinear> PackBf16(const OpContext& ctx,
                                       const std::vector<float>& w,
                                       const std::vector<float>& b, int64_t n,
                                       int64_t k) {
  return op_test::PackAnyHost(ctx, ComputeType::kBFloat16, w, b, n, k);
}

std::vector<float> RunLinear(const OpContext& ctx, const PackedLinear& w,
                             const std::vector<float>& x, int64_t m,
                             const std::vector<float>& y0,
                             LinearEpilogue epilogue) {
  std::vector<float> y = y0;
  y.resize(m * w.out_features());
  EXPECT_THAT(Linear(ctx, w, x.data(), m, y.data(), epilogue), IsOk());
  return y;
}

// A route of LinearDnnlBf16, forced for every row count.
struct Path {
  const char* name;
  Bf16Route route;
  bool portable;  // the portable kernel instead of vdpbf16ps
};

// The routes this host runs: the portable kernel everywhere, vdpbf16ps and
// oneDNN's bf16 matmul where the CPU has AVX-512 BF16.
std::vector<Path> HostPaths() {
  std::vector<Path> paths = {{"portable kernel", Bf16Route::kKernel, true}};
  if (internal::Bf16KernelInUse() == Bf16Kernel::kDpbf16) {
    paths.push_back({"vdpbf16ps kernel", Bf16Route::kKernel, false});
    paths.push_back({"oneDNN matmul", Bf16Route::kMatmul, false});
  }
  return paths;
}

// Forces `path` for the scope's lifetime.
class ScopedPath {
 public:
  explicit ScopedPath(const Path& path) {
    internal::ForceBf16RouteForTesting(path.route);
    internal::ForceBf16PortableKernelForTesting(path.portable);
  }
  ~ScopedPath() {
    internal::ForceBf16RouteForTesting(std::nullopt);
    internal::ForceBf16PortableKernelForTesting(false);
  }
};

float RoundedToBf16(float v) { return BFloat16ToFloat(FloatToBFloat16(v)); }

// The inputs of one comparison and the per-element bound of the file comment.
struct Case {
  int64_t m, n, k;
  std::vector<float> x, b, y0;
  LinearEpilogue epilogue;
};

std::vector<double> Bounds(const Case& c, const PackedLinear& ref,
                           const std::vector<float>& expected) {
  std::vector<float> w_row(c.k);
  std::vector<double> x_rounded(c.x.size());
  for (size_t i = 0; i < c.x.size(); ++i) x_rounded[i] = RoundedToBf16(c.x[i]);
  std::vector<double> bound(c.m * c.n);
  for (int64_t j = 0; j < c.n; ++j) {
    ref.CopyWeightRow(j, w_row.data());
    for (int64_t r = 0; r < c.m; ++r) {
      double sum = c.b.empty() ? 0.0 : std::fabs(c.b[j]);
      for (int64_t i = 0; i < c.k; ++i) {
        sum += std::fabs(x_rounded[r * c.k + i] * w_row[i]);
      }
      const double y0 = c.epilogue.accumulate ? c.y0[r * c.n + j] : 0.0;
      bound[r * c.n + j] =
          1.13 * c.k * 0x1p-24 * sum +
          4e-6 * (std::fabs(expected[r * c.n + j]) + std::fabs(y0)) + 1e-6;
    }
  }
  return bound;
}

::testing::AssertionResult WithinBounds(const std::vector<float>& actual,
                                        const std::vector<float>& expected,
                                        const std::vector<double>& bound) {
  if (actual.size() != expected.size()) {
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  }
  size_t bad = 0, worst = 0;
  double worst_ratio = -1.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double ratio = std::fabs(double{actual[i]} - expected[i]) / bound[i];
    if (!(ratio <= 1.0)) {
      ++bad;
      if (std::isnan(ratio) || ratio > worst_ratio) {
        worst_ratio = std::isnan(ratio) ? INFINITY : ratio;
        worst = i;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << actual.size() << " elements beyond the bound;"
         << " worst at [" << worst << "]: " << actual[worst] << " vs "
         << expected[worst] << " (bound " << bound[worst] << ")";
}

const LinearActivation kActivations[] = {
    LinearActivation::kNone, LinearActivation::kRelu, LinearActivation::kGelu,
    LinearActivation::kSwish, LinearActivation::kGeluTanh};

std::string Describe(const Case& c, bool bias) {
  return absl::StrCat("m ", c.m, " n ", c.n, " k ", c.k, " activation ",
                      static_cast<int>(c.epilogue.activation), " accumulate ",
                      c.epilogue.accumulate, " bias ", bias);
}

// Every path against the reference on one case; the reference runs once.
void ExpectPathsMatch(const OpContext& ref_ctx, const PackedLinear& ref,
                      const OpContext& dnnl_ctx, const PackedLinear& dnnl,
                      const Case& c) {
  const std::vector<float> expected =
      RunLinear(ref_ctx, ref, c.x, c.m, c.y0, c.epilogue);
  const std::vector<double> bound = Bounds(c, ref, expected);
  for (const Path& path : HostPaths()) {
    ScopedPath scoped(path);
    EXPECT_TRUE(WithinBounds(
        RunLinear(dnnl_ctx, dnnl, c.x, c.m, c.y0, c.epilogue), expected, bound))
        << path.name << ": " << Describe(c, ref.has_bias());
  }
}

Case MakeCase(int64_t m, int64_t n, int64_t k, uint32_t seed,
              LinearEpilogue epilogue) {
  // Inputs to +-2 and weights to +-1/sqrt(k) keep outputs O(1) whatever k,
  // over the activations' bends.
  return {m,       n,
          k,       RandomFloats(m * k, seed, -2.0f, 2.0f),
          {},      RandomFloats(m * n, seed + 1),
          epilogue};
}

// n 1, 63, 64, 65, 130 (panel tails) by k 1, 3, 15, 16, 17, 512, 2048 (pair
// and depth-block tails), every row count from 1 to 70 (tile tails, the
// kernel's hand-over at 64) and 200, 300 (two chunks of oneDNN's 256 rows);
// k = 2048 at fewer row counts, for time. The epilogue and bias rotate, so
// every kind shows up on every shape. One thread: the split over a team is
// MatchesReferenceForEveryEpilogue's (and an idle team's spinning slows this
// many small calls on a shared machine several-fold).
TEST(LinearBf16Test, MatchesReferenceAcrossShapes) {
  auto ref_ctx = MakeContext(Backend::kReference);
  auto dnnl_ctx = MakeContext(Backend::kDnnl);
  std::vector<int64_t> all_ms,
      few_ms = {1, 2, 3, 5, 6, 7, 13, 31, 64, 65, 70, 200, 300};
  for (int64_t m = 1; m <= 70; ++m) all_ms.push_back(m);
  all_ms.push_back(200);
  all_ms.push_back(300);
  int variant = 0;
  for (const int64_t n : {1, 63, 64, 65, 130}) {
    for (const int64_t k : {1, 3, 15, 16, 17, 512, 2048}) {
      const float w_range = 1.0f / std::sqrt(static_cast<float>(k));
      const std::vector<float> w =
          RandomFloats(n * k, 100 + n * 7 + k, -w_range, w_range);
      const std::vector<float> b = RandomFloats(n, 200 + n);
      const auto ref_bias = PackBf16(*ref_ctx, w, b, n, k);
      const auto ref_plain = PackBf16(*ref_ctx, w, {}, n, k);
      const auto dnnl_bias = PackBf16(*dnnl_ctx, w, b, n, k);
      const auto dnnl_plain = PackBf16(*dnnl_ctx, w, {}, n, k);
      ASSERT_TRUE(ref_bias && ref_plain && dnnl_bias && dnnl_plain);
      for (const int64_t m : k == 2048 ? few_ms : all_ms) {
        const int e = variant++ % 20;
        const bool bias = e % 2 == 1;
        Case c = MakeCase(m, n, k, 300 + variant,
                          {kActivations[e / 4], (e / 2) % 2 == 1});
        if (bias) c.b = b;
        ExpectPathsMatch(*ref_ctx, bias ? *ref_bias : *ref_plain, *dnnl_ctx,
                         bias ? *dnnl_bias : *dnnl_plain, c);
      }
    }
  }
}

// Every epilogue with and without bias, on the default routing too (the
// kernel up to 64 rows, oneDNN beyond) and on 1 and 3 threads.
TEST(LinearBf16Test, MatchesReferenceForEveryEpilogue) {
  const int64_t n = 130, k = 77;
  const std::vector<float> w = RandomFloats(n * k, 1, -0.3f, 0.3f);
  const std::vector<float> b = RandomFloats(n, 2);
  auto ref_ctx = MakeContext(Backend::kReference);
  for (const int threads : {1, 3}) {
    auto dnnl_ctx = MakeContext(Backend::kDnnl, threads);
    for (const bool bias : {false, true}) {
      const auto ref =
          PackBf16(*ref_ctx, w, bias ? b : std::vector<float>{}, n, k);
      const auto dnnl =
          PackBf16(*dnnl_ctx, w, bias ? b : std::vector<float>{}, n, k);
      ASSERT_TRUE(ref && dnnl);
      for (const int64_t m : {9, 64, 65, 200}) {
        for (const LinearActivation activation : kActivations) {
          for (const bool accumulate : {false, true}) {
            Case c = MakeCase(m, n, k, 5 + m, {activation, accumulate});
            if (bias) c.b = b;
            ExpectPathsMatch(*ref_ctx, *ref, *dnnl_ctx, *dnnl, c);
            const std::vector<float> expected =
                RunLinear(*ref_ctx, *ref, c.x, m, c.y0, c.epilogue);
            EXPECT_TRUE(WithinBounds(
                RunLinear(*dnnl_ctx, *dnnl, c.x, m, c.y0, c.epilogue), expected,
                Bounds(c, *ref, expected)))
                << "default routing, threads " << threads << ": "
                << Describe(c, bias);
          }
        }
      }
    }
  }
}

// A row's result is the same bits alone, in a batch of 5 and in one of 64, on
// either kernel: the tiles do the same operations per row whatever their row
// count, and the team splits panels, not rows. And the two kernels give the
// same bits: vdpbf16ps is defined (Intel SDM) as the portable kernel's float32
// operations in the same order, but for denormals, which these values do not
// reach.
TEST(LinearBf16Test, KernelIsBatchInvariant) {
  const int64_t n = 130, k = 515;
  const float w_range = 1.0f / std::sqrt(static_cast<float>(k));
  const std::vector<float> w = RandomFloats(n * k, 7, -w_range, w_range);
  const std::vector<float> b = RandomFloats(n, 8);
  const std::vector<float> x = RandomFloats(64 * k, 9, -2.0f, 2.0f);
  const std::vector<float> y0 = RandomFloats(64 * n, 10);
  const LinearEpilogue epilogue{LinearActivation::kGelu, true};
  std::vector<float> first_kernel;  // the first kernel's 64 rows
  for (const int threads : {1, 2}) {
    auto ctx = MakeContext(Backend::kDnnl, threads);
    const auto packed = PackBf16(*ctx, w, b, n, k);
    ASSERT_TRUE(packed);
    for (const Path& path : HostPaths()) {
      if (path.route != Bf16Route::kKernel) continue;
      ScopedPath scoped(path);
      const std::vector<float> batch64 =
          RunLinear(*ctx, *packed, x, 64, y0, epilogue);
      if (first_kernel.empty()) first_kernel = batch64;
      ASSERT_EQ(batch64, first_kernel) << path.name << " threads " << threads;
      const std::vector<float> batch5 =
          RunLinear(*ctx, *packed, x, 5, y0, epilogue);
      for (const int64_t r : {0, 3, 4, 5, 37, 63}) {
        const std::vector<float> row(x.begin() + r * k,
                                     x.begin() + (r + 1) * k);
        const std::vector<float> row_y0(y0.begin() + r * n,
                                        y0.begin() + (r + 1) * n);
        const std::vector<float> alone =
            RunLinear(*ctx, *packed, row, 1, row_y0, epilogue);
        for (int64_t j = 0; j < n; ++j) {
          ASSERT_EQ(alone[j], batch64[r * n + j])
              << path.name << " threads " << threads << " row " << r
              << " column " << j << " (batch of 64)";
          if (r < 5) {
            ASSERT_EQ(alone[j], batch5[r * n + j])
                << path.name << " threads " << threads << " row " << r
                << " column " << j << " (batch of 5)";
          }
        }
      }
    }
  }
}

// Values whose rounding is easy to get wrong: ties either way, values just
// past a tie, subnormals (which vcvtneps2bf16 would flush), the largest
// finite values (rounding to infinity), infinities and NaNs of both signs.
std::vector<float> AwkwardFloats() {
  std::vector<float> v = {
      0.0f,
      -0.0f,
      1.0f + 0x1p-8f,      // tie, rounds down to even
      1.0f + 3 * 0x1p-8f,  // tie, rounds up to even
      1.0f + 0x1p-8f + 0x1p-20f,
      -(1.0f + 3 * 0x1p-8f),
      1e-39f,  // subnormal
      -3e-40f,
      std::numeric_limits<float>::denorm_min(),
      std::numeric_limits<float>::min(),
      std::numeric_limits<float>::max(),
      -std::numeric_limits<float>::max(),
      std::numeric_limits<float>::infinity(),
      -std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN(),
      -std::numeric_limits<float>::quiet_NaN(),
  };
  uint32_t low_nan_bits = 0x7f800001u;  // a NaN whose payload is below bit 16
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, sizeof(low_nan));
  v.push_back(low_nan);
  const std::vector<float> random = RandomFloats(83, 11, -100.0f, 100.0f);
  v.insert(v.end(), random.begin(), random.end());
  return v;
}

// The conversion of x's rows is FloatToBFloat16 bit for bit, the vector part
// and the tail, with the stride's padding zeroed.
TEST(LinearBf16Test, RoundRowsToBf16IsFloatToBFloat16) {
  const std::vector<float> values = AwkwardFloats();  // 100 values
  for (const int64_t k : {1, 15, 16, 17, 33, 50}) {
    const int64_t rows = static_cast<int64_t>(values.size()) / k;
    const int64_t stride = k + 3;
    std::vector<uint16_t> out(rows * stride, 0xffff);
    internal::RoundRowsToBf16(values.data(), rows, k, stride, out.data());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < stride; ++i) {
        const uint16_t want =
            i < k ? FloatToBFloat16(values[r * k + i]) : uint16_t{0};
        ASSERT_EQ(out[r * stride + i], want)
            << "k " << k << " row " << r << " element " << i << " value "
            << (i < k ? values[r * k + i] : 0.0f);
      }
    }
  }
}

// CopyWeightRow gives what the reference's does: the bf16 values, widened,
// awkward values included (NaN rows compared bit for bit).
TEST(LinearBf16Test, CopyWeightRowEqualsTheReferences) {
  const std::vector<float> awkward = AwkwardFloats();
  auto ref_ctx = MakeContext(Backend::kReference);
  auto dnnl_ctx = MakeContext(Backend::kDnnl);
  for (const auto& [n, k] :
       {std::pair<int64_t, int64_t>{130, 17}, {65, 2048}, {1, 1}, {3, 100}}) {
    std::vector<float> w = RandomFloats(n * k, 12 + k, -1.0f, 1.0f);
    for (size_t i = 0; i < awkward.size() && i < w.size(); ++i) {
      w[(i * 7919) % w.size()] = awkward[i];
    }
    const auto ref = PackBf16(*ref_ctx, w, {}, n, k);
    const auto dnnl = PackBf16(*dnnl_ctx, w, {}, n, k);
    ASSERT_TRUE(ref && dnnl);
    std::vector<float> want(k), got(k);
    for (int64_t row = 0; row < n; ++row) {
      ref->CopyWeightRow(row, want.data());
      dnnl->CopyWeightRow(row, got.data());
      ASSERT_EQ(std::memcmp(want.data(), got.data(), k * sizeof(float)), 0)
          << "n " << n << " k " << k << " row " << row;
    }
  }
}

// The panels replace the float32 weights: half their bytes, padded to whole
// panels of 64 outputs and a depth of 32, plus the bias.
TEST(LinearBf16Test, HoldsItsPanelsAndBias) {
  const int64_t n = 65, k = 40;
  auto ctx = MakeContext(Backend::kDnnl);
  const auto packed =
      PackBf16(*ctx, RandomFloats(n * k, 13), RandomFloats(n, 14), n, k);
  ASSERT_TRUE(packed);
  EXPECT_EQ(packed->compute_type(), ComputeType::kBFloat16);
  EXPECT_EQ(packed->backend(), Backend::kDnnl);
  EXPECT_FALSE(packed->borrows_weights());
  // 2 panels x 64 depth x 64 outputs x 2 bytes, and 65 floats of bias.
  EXPECT_EQ(packed->bytes(), 2u * 64 * 64 * 2 + 65 * sizeof(float));
}

// Output features [begin, end) of a table: copied (the caller may release the
// table), the bias borrowed, and the same products as the reference's slice.
// The front packs bfloat16 for oneDNN only where the host runs it.
TEST(LinearBf16Test, PackLinearBorrowedSlices) {
  const int64_t n = 200, k = 33, begin = 63, end = 195;
  const std::vector<float> w = RandomFloats(n * k, 15, -0.5f, 0.5f);
  const std::vector<float> b = RandomFloats(n, 16);
  auto ref_ctx = MakeContext(Backend::kReference);
  auto dnnl_ctx = MakeContext(Backend::kDnnl, 2);
  Tensor table = MakeTensor({n, k}, w);
  const Tensor bias = MakeTensor({n}, b);
  auto dnnl = PackLinearBorrowed(*dnnl_ctx, table, &bias, begin, end,
                                 ComputeType::kBFloat16);
  if (!HostRunsComputeType(ComputeType::kBFloat16).ok()) {
    EXPECT_EQ(dnnl.status().code(), absl::StatusCode::kFailedPrecondition);
    return;
  }
  ASSERT_THAT(dnnl, IsOk());
  auto ref = PackLinearBorrowed(*ref_ctx, table, &bias, begin, end,
                                ComputeType::kBFloat16);
  ASSERT_THAT(ref, IsOk());
  EXPECT_FALSE((*dnnl)->borrows_weights());
  EXPECT_EQ((*dnnl)->out_features(), end - begin);
  EXPECT_TRUE((*dnnl)->has_bias());
  // The slice holds its own copy: the table's contents no longer matter.
  std::fill(table.data(), table.data() + n * k, std::nanf(""));
  std::vector<float> want(k), got(k);
  for (int64_t row = 0; row < end - begin; ++row) {
    (*ref)->CopyWeightRow(row, want.data());
    (*dnnl)->CopyWeightRow(row, got.data());
    ASSERT_EQ(want, got) << "row " << row;
    for (int64_t i = 0; i < k; ++i) {
      ASSERT_EQ(got[i], RoundedToBf16(w[(begin + row) * k + i]));
    }
  }
  for (const int64_t m : {1, 64, 100}) {
    Case c = MakeCase(m, end - begin, k, 17 + m, {});
    c.b.assign(b.begin() + begin, b.begin() + end);
    const std::vector<float> expected =
        RunLinear(*ref_ctx, **ref, c.x, m, {}, {});
    EXPECT_TRUE(WithinBounds(RunLinear(*dnnl_ctx, **dnnl, c.x, m, {}, {}),
                             expected, Bounds(c, **ref, expected)))
        << "m " << m;
  }
}

// A NaN in a row of x makes that row's outputs NaN, as in the reference, and
// leaves the other rows alone, on every path.
TEST(LinearBf16Test, NaNInputsStayInTheirRow) {
  const int64_t n = 70, k = 40, m = 70;
  const std::vector<float> w = RandomFloats(n * k, 18, -0.2f, 0.2f);
  auto ref_ctx = MakeContext(Backend::kReference);
  auto dnnl_ctx = MakeContext(Backend::kDnnl);
  const auto ref = PackBf16(*ref_ctx, w, {}, n, k);
  const auto dnnl = PackBf16(*dnnl_ctx, w, {}, n, k);
  ASSERT_TRUE(ref && dnnl);
  Case c = MakeCase(m, n, k, 19, {});
  c.x[3 * k + 5] = std::nanf("");
  const std::vector<float> expected = RunLinear(*ref_ctx, *ref, c.x, m, {}, {});
  std::vector<double> bound = Bounds(c, *ref, expected);
  std::vector<float> finite_expected = expected;
  for (int64_t j = 0; j < n; ++j) {
    ASSERT_TRUE(std::isnan(expected[3 * n + j])) << "reference, column " << j;
    finite_expected[3 * n + j] = 0.0f;
    bound[3 * n + j] = 1.0;  // the NaN row's is NaN
  }
  for (const Path& path : HostPaths()) {
    ScopedPath scoped(path);
    std::vector<float> y = RunLinear(*dnnl_ctx, *dnnl, c.x, m, {}, {});
    for (int64_t j = 0; j < n; ++j) {
      ASSERT_TRUE(std::isnan(y[3 * n + j])) << path.name << " column " << j;
      y[3 * n + j] = 0.0f;  // checked; the other rows are compared below
    }
    EXPECT_TRUE(WithinBounds(y, finite_expected, bound)) << path.name;
  }
}

// The float32 and bfloat16 linears of one shape share a context's primitive
// cache (MatmulKey.type tells them apart): each keeps its own answer when
// interleaved.
TEST(LinearBf16Test, SharesTheMatmulCacheWithFloat32) {
  const int64_t n = 96, k = 200, m = 100;
  const std::vector<float> w = RandomFloats(n * k, 20, -0.1f, 0.1f);
  const std::vector<float> b = RandomFloats(n, 21);
  const std::vector<float> x = RandomFloats(m * k, 22);
  auto ref_ctx = MakeContext(Backend::kReference);
  auto dnnl_ctx = MakeContext(Backend::kDnnl);
  const auto bf16 = PackBf16(*dnnl_ctx, w, b, n, k);
  auto f32 = PackLinear(*dnnl_ctx, MakeTensor({n, k}, w), MakeTensor({n}, b));
  auto f32_ref =
      PackLinear(*ref_ctx, MakeTensor({n, k}, w), MakeTensor({n}, b));
  ASSERT_TRUE(bf16);
  ASSERT_THAT(f32, IsOk());
  ASSERT_THAT(f32_ref, IsOk());
  const auto bf16_ref = PackBf16(*ref_ctx, w, b, n, k);
  Case c = MakeCase(m, n, k, 22, {});
  c.x = x;
  c.b = b;
  const std::vector<float> want_bf16 =
      RunLinear(*ref_ctx, *bf16_ref, x, m, {}, {});
  const std::vector<float> want_f32 =
      RunLinear(*ref_ctx, **f32_ref, x, m, {}, {});
  // The two answers differ by far more than either's tolerance.
  ASSERT_FALSE(op_test::AllClose(want_bf16, want_f32, 1e-4, 1e-4));
  for (int pass = 0; pass < 2; ++pass) {
    EXPECT_TRUE(op_test::AllClose(RunLinear(*dnnl_ctx, **f32, x, m, {}, {}),
                                  want_f32, 1e-5, 1e-5));
    EXPECT_TRUE(WithinBounds(RunLinear(*dnnl_ctx, *bf16, x, m, {}, {}),
                             want_bf16, Bounds(c, *bf16_ref, want_bf16)));
  }
}

}  // namespace
}  // namespace attnserve::engine
