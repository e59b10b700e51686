// The oneDNN backend's int8 linear (linear_dnnl_int8.cc) against the
// reference's int8 body (linear_ref.cc), under both of its kernels (the VNNI
// one where the host has VNNI, and the portable one everywhere).
//
// Tolerance. Both follow quantize.h, so the weights, the quantized inputs and
// hence the integer sums S are the same; they differ only in the float
// epilogue. The reference computes v = S sx sw + b and act(v) in double; ours
// rounds four times in float before the activation (float(S), sx * sw, the
// product, + b), each within 2^-24 of |S sx sw| + |b|, and the activation's
// slope is at most 1.13 (gelu): 2.7e-7 (|S sx sw| + |b|). The fast
// activations (activations.h) add within 2e-6 of the output (gelu_tanh's
// bound, FastGeluTanhIsAccurate in linear_test.cc), plus erf's 1.5e-7
// absolute times |v| / 2 in gelu, and the accumulate add one rounding of the
// result. So per element
//   |y - y_ref| <= 1e-6 (|S sx sw| + |b|) + 2e-6 (|y_ref| + |y0|) + 1e-12,
// about four times the bound above; |S sx sw| is the reference's output
// without bias or epilogue.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops/linear.h"
#include "engine/ops/linear_dnnl_int8.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/quantize.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/pack_any_host.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using internal::Int8Kernel;
using op_test::MakeContext;
using op_test::MakeTensor;
using op_test::RandomFloats;

// int8 weights [n, k] (bias [n] or empty) for ctx's backend, on any host.
std::unique_ptr<PackedLinear> PackInt8(const OpContext& ctx,
                                       const std::vector<float>& w,
                                       const std::vector<float>& b, int64_t n,
                                       int64_t k) {
  return op_test::PackAnyHost(ctx, ComputeType::kInt8, w, b, n, k);
}

using LinearFn = absl::Status (*)(const OpContext&, const PackedLinear&,
                                  const float*, int64_t, float*,
                                  LinearEpilogue);

// y0 (resized to m * n) after y = act(x W^T + b) [+ y0].
std::vector<float> RunLinear(const OpContext& ctx, const PackedLinear& w,
                             const std::vector<float>& x, int64_t m,
                             std::vector<float> y0, LinearEpilogue epilogue,
                             LinearFn fn = Linear) {
  y0.resize(m * w.out_features());
  EXPECT_THAT(fn(ctx, w, x.data(), m, y0.data(), epilogue), IsOk());
  return y0;
}

// The per-element bound of the top of the file; `product` is the reference's
// S sx sw, `b` the bias or empty, `y0` what y held (used when accumulating).
::testing::AssertionResult Int8Close(const std::vector<float>& got,
                                     const std::vector<float>& want,
                                     const std::vector<float>& product,
                                     const std::vector<float>& b,
                                     const std::vector<float>& y0,
                                     LinearEpilogue epilogue) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure() << "sizes differ";
  }
  const size_t n = b.empty() ? 1 : b.size();
  size_t bad = 0, worst = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double bias = b.empty() ? 0.0 : std::fabs(b[i % n]);
    const double before = epilogue.accumulate ? std::fabs(y0[i]) : 0.0;
    const double bound = 1e-6 * (std::fabs(product[i]) + bias) +
                         2e-6 * (std::fabs(want[i]) + before) + 1e-12;
    const double excess = std::fabs(double{got[i]} - want[i]) - bound;
    if (!(excess <= 0)) {
      if (bad++ == 0 || !(excess <= worst_excess)) {
        worst = i;
        worst_excess = excess;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " differ; worst [" << worst
         << "]: " << got[worst] << " vs " << want[worst] << " (product "
         << product[worst] << ")";
}

// Whether a and b hold the same bits (NaNs included).
::testing::AssertionResult SameBits(const float* a, const float* b,
                                    size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (std::memcmp(a + i, b + i, sizeof(float)) != 0) {
      return ::testing::AssertionFailure()
             << "[" << i << "]: " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

const LinearActivation kActivations[] = {
    LinearActivation::kNone, LinearActivation::kRelu, LinearActivation::kGelu,
    LinearActivation::kSwish, LinearActivation::kGeluTanh};

// The kernels this host runs: the portable one always, VNNI where present.
std::vector<Int8Kernel> HostKernels() {
  __builtin_cpu_init();  // may run before main (test registration)
  if (__builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512bw")) {
    return {Int8Kernel::kPortable, Int8Kernel::kVnni};
  }
  return {Int8Kernel::kPortable};
}

class Int8KernelTest : public ::testing::TestWithParam<Int8Kernel> {
 protected:
  void SetUp() override { internal::ForceInt8KernelForTesting(GetParam()); }
  void TearDown() override {
    internal::ForceInt8KernelForTesting(std::nullopt);
  }
};

INSTANTIATE_TEST_SUITE_P(Kernels, Int8KernelTest,
                         ::testing::ValuesIn(HostKernels()),
                         [](const ::testing::TestParamInfo<Int8Kernel>& info) {
                           return std::string(info.param == Int8Kernel::kVnni
                                                  ? "Vnni"
                                                  : "Portable");
                         });

// Reference and oneDNN int8 packs of one [n, k] weight, with its bias.
struct Packs {
  std::vector<float> b;
  std::unique_ptr<PackedLinear> ref, dnnl;
};
Packs MakePacks(const OpContext& ref, const OpContext& dnnl, int64_t n,
                int64_t k, bool bias, uint32_t seed) {
  // Weights scaled by 1/sqrt(k) keep outputs O(1) whatever k.
  const float range = 1.0f / std::sqrt(static_cast<float>(k));
  const std::vector<float> w = RandomFloats(n * k, seed, -range, range);
  Packs p;
  if (bias) p.b = RandomFloats(n, seed + 1);
  p.ref = PackInt8(ref, w, p.b, n, k);
  p.dnnl = PackInt8(dnnl, w, p.b, n, k);
  return p;
}

// oneDNN against the reference for x [m, k] under `epilogue`.
void ExpectMatchesReference(const OpContext& ref, const OpContext& dnnl,
                            const Packs& p, int64_t m, LinearEpilogue epilogue,
                            uint32_t seed, float x_range = 3.0f) {
  const int64_t n = p.ref->out_features(), k = p.ref->in_features();
  const std::vector<float> x = RandomFloats(m * k, seed, -x_range, x_range);
  const std::vector<float> y0 = RandomFloats(m * n, seed + 1);
  const std::vector<float> want = RunLinear(ref, *p.ref, x, m, y0, epilogue);
  const std::vector<float> got = RunLinear(dnnl, *p.dnnl, x, m, y0, epilogue);
  // S sx sw: the reference without bias or epilogue (bias subtracted in
  // double: it is what the reference added).
  std::vector<float> product = RunLinear(ref, *p.ref, x, m, {}, {});
  if (!p.b.empty()) {
    for (int64_t i = 0; i < m * n; ++i) product[i] -= p.b[i % n];
  }
  EXPECT_TRUE(Int8Close(got, want, product, p.b, y0, epilogue))
      << "m " << m << " n " << n << " k " << k << " activation "
      << static_cast<int>(epilogue.activation) << " accumulate "
      << epilogue.accumulate << " bias " << !p.b.empty();
}

// Row counts on both sides of the kernel's 64 and the primitive's 256 chunks,
// n and k off the panel's 64 columns and 16 (and 4) depths, 1 and 2 threads;
// the epilogue and bias rotate so each kind meets every shape class.
TEST_P(Int8KernelTest, MatchesReferenceAcrossShapes) {
  auto ref = MakeContext(Backend::kReference);
  int variant = 0;
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    for (int64_t n : {1, 63, 65, 130}) {
      for (int64_t k : {1, 3, 15, 16, 17, 512, 2048}) {
        const Packs p = MakePacks(*ref, *dnnl, n, k, variant % 3 != 0, n + k);
        std::vector<int64_t> ms = {200, 300};
        // Every row count up to 70 where the reference is quick, a spread
        // of them (each tile height, 64 and 65) where it is not.
        if (k <= 17) {
          for (int64_t m = 1; m <= 70; ++m) ms.push_back(m);
        } else {
          ms.insert(ms.end(), {1, 2, 3, 4, 5, 6, 7, 13, 64, 65, 70});
        }
        for (int64_t m : ms) {
          if (m * n * k > 12'000'000) continue;  // keeps the reference quick
          const LinearEpilogue epilogue{kActivations[variant % 5],
                                        (variant / 5) % 2 == 1};
          ++variant;
          ExpectMatchesReference(*ref, *dnnl, p, m, epilogue, variant);
        }
      }
    }
  }
}

// Every epilogue with and without bias, on the kernel (5, 64 rows) and on
// oneDNN's matmul (65, 200).
TEST_P(Int8KernelTest, MatchesReferenceForEveryEpilogue) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  for (bool bias : {false, true}) {
    const Packs p = MakePacks(*ref, *dnnl, 67, 100, bias, 7);
    for (LinearActivation activation : kActivations) {
      for (bool accumulate : {false, true}) {
        for (int64_t m : {5, 64, 65, 200}) {
          ExpectMatchesReference(*ref, *dnnl, p, m, {activation, accumulate},
                                 static_cast<uint32_t>(m));
        }
      }
    }
  }
}

// Integer sums are exact and every path calls one epilogue, so a row gives
// the same bits alone, in any batch, on the kernel or on oneDNN's matmul.
TEST_P(Int8KernelTest, RowsAreBitIdenticalInEveryBatchAndPath) {
  auto ref = MakeContext(Backend::kReference);
  const int64_t n = 130, k = 77;
  for (int threads : {1, 2}) {
    auto dnnl = MakeContext(Backend::kDnnl, threads);
    const Packs p = MakePacks(*ref, *dnnl, n, k, true, 3);
    for (LinearActivation activation : kActivations) {
      for (bool accumulate : {false, true}) {
        const LinearEpilogue epilogue{activation, accumulate};
        const std::vector<float> x = RandomFloats(200 * k, 4, -3.0f, 3.0f);
        const std::vector<float> y0 = RandomFloats(200 * n, 5);
        for (int64_t m : {5, 64, 65, 200}) {
          const std::vector<float> batch =
              RunLinear(*dnnl, *p.dnnl, x, m, y0, epilogue);
          for (int64_t r : {int64_t{0}, m / 2, m - 1}) {
            const std::vector<float> row(x.begin() + r * k,
                                         x.begin() + (r + 1) * k);
            const std::vector<float> row_y0(y0.begin() + r * n,
                                            y0.begin() + (r + 1) * n);
            const std::vector<float> alone =
                RunLinear(*dnnl, *p.dnnl, row, 1, row_y0, epilogue);
            const std::vector<float> alone_matmul =
                RunLinear(*dnnl, *p.dnnl, row, 1, row_y0, epilogue,
                          internal::LinearDnnlInt8Matmul);
            EXPECT_TRUE(SameBits(alone.data(), batch.data() + r * n, n))
                << "row " << r << " of " << m << " activation "
                << static_cast<int>(activation) << " threads " << threads;
            EXPECT_TRUE(SameBits(alone_matmul.data(), alone.data(), n))
                << "row " << r << " on oneDNN's matmul";
          }
          // The whole batch on the other path.
          const LinearFn other = m <= internal::kMaxInt8KernelRows
                                     ? internal::LinearDnnlInt8Matmul
                                     : internal::LinearDnnlInt8Kernel;
          EXPECT_TRUE(SameBits(
              RunLinear(*dnnl, *p.dnnl, x, m, y0, epilogue, other).data(),
              batch.data(), m * n))
              << m << " rows on the other path";
        }
      }
    }
  }
}

// The portable kernel and quantizer give the VNNI ones' bits.
TEST(LinearInt8Test, PortableKernelGivesTheVnniBits) {
  const std::vector<Int8Kernel> kernels = HostKernels();
  ASSERT_FALSE(kernels.empty());
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  const int64_t n = 100, k = 45;
  const std::vector<float> w = RandomFloats(n * k, 1);
  const std::vector<float> b = RandomFloats(n, 2);
  const std::vector<float> x = RandomFloats(70 * k, 3, -4.0f, 4.0f);
  std::vector<std::vector<float>> results;
  for (Int8Kernel kernel : kernels) {
    internal::ForceInt8KernelForTesting(kernel);
    auto packed = PackInt8(*dnnl, w, b, n, k);
    ASSERT_NE(packed, nullptr);
    results.push_back(RunLinear(*dnnl, *packed, x, 70, {},
                                {LinearActivation::kGelu, false},
                                internal::LinearDnnlInt8Kernel));
  }
  internal::ForceInt8KernelForTesting(std::nullopt);
  for (const std::vector<float>& r : results) {
    EXPECT_TRUE(SameBits(r.data(), results[0].data(), r.size()));
  }
}

// QuantizeRowsU8 gives QuantizeRowInt8's q + 128 and scale exactly, on rows
// with ties (x * 127 / amax a half-integer), zeros, subnormals, huge values
// and non-finite ones, and 128 (q = 0) in the padding.
TEST_P(Int8KernelTest, QuantizerIsQuantizeRowInt8) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::vector<float>> rows = {
      {0.0f},
      {-0.0f, 0.0f, 0.0f},
      {1e-40f, -2e-39f, 1e-45f},  // subnormal amax: scale 0
      {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 63.5f, -63.5f, 126.5f},
      {3e38f, -3e38f, 1.0f, 1e30f},
      {1.0f, inf, 2.0f},
      {1.0f, 2.0f, nan, 3.0f},
      {-inf},
  };
  for (int64_t k : {1, 5, 15, 16, 17, 31, 32, 33, 100, 2048}) {
    rows.push_back(RandomFloats(k, static_cast<uint32_t>(k), -5.0f, 5.0f));
    std::vector<float> ties(k);
    for (int64_t i = 0; i < k; ++i) ties[i] = static_cast<float>(i % 255) - 127;
    ties[0] = 127.0f;  // amax 127: inverse 1, so x.5 values are exact ties
    for (int64_t i = 1; i < k; i += 2) ties[i] += 0.5f;
    rows.push_back(ties);
  }
  for (const std::vector<float>& row : rows) {
    const int64_t k = static_cast<int64_t>(row.size());
    const int64_t stride = internal::Int8RowStride(k) + 8;
    std::vector<uint8_t> u(stride, 7);
    float scale = -1;
    internal::QuantizeRowsU8(row.data(), 1, k, stride, u.data(), &scale);
    std::vector<int8_t> q(k);
    const float want = QuantizeRowInt8(row.data(), k, q.data());
    EXPECT_TRUE(SameBits(&scale, &want, 1)) << "k " << k;
    for (int64_t i = 0; i < stride; ++i) {
      const int expected = i < k ? q[i] + 128 : 128;
      ASSERT_EQ(u[i], expected) << "k " << k << " depth " << i;
    }
  }
}

// Rows of zeros in x give act(b) (+ y); zero rows of W give act(b_j) in
// their columns; huge and tiny magnitudes stay within the tolerance; a row
// with an inf gives NaN as the reference does.
TEST_P(Int8KernelTest, ZerosLargeMagnitudesAndNonFiniteRows) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl, 2);
  const int64_t n = 70, k = 40;
  std::vector<float> w = RandomFloats(n * k, 1);
  for (int64_t i = 0; i < k; ++i) w[5 * k + i] = w[66 * k + i] = 0.0f;
  const std::vector<float> b = RandomFloats(n, 2);
  auto ref_w = PackInt8(*ref, w, b, n, k);
  auto dnnl_w = PackInt8(*dnnl, w, b, n, k);
  for (int64_t m : {3, 70}) {
    std::vector<float> x = RandomFloats(m * k, 3);
    for (int64_t i = 0; i < k; ++i) x[1 * k + i] = 0.0f;
    const LinearEpilogue gelu{LinearActivation::kGelu, false};
    const std::vector<float> y = RunLinear(*dnnl, *dnnl_w, x, m, {}, gelu);
    const std::vector<float> b_only =
        RunLinear(*dnnl, *dnnl_w, std::vector<float>(k, 0.0f), 1, {}, gelu);
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_EQ(y[1 * n + j], b_only[j]) << "zero row, column " << j;
      EXPECT_NEAR(b_only[j], 0.5 * b[j] * (1 + std::erf(b[j] / std::sqrt(2.0))),
                  2e-6);
    }
    for (int64_t r = 0; r < m; ++r) {
      EXPECT_EQ(y[r * n + 5], b_only[5]) << "zero weight row, x row " << r;
      EXPECT_EQ(y[r * n + 66], b_only[66]) << "zero weight row, x row " << r;
    }
  }
  // Magnitudes far from 1: x ~ 1e18 and 1e-18 with W ~ 1e15, no bias.
  for (float scale : {1e18f, 1e-18f}) {
    std::vector<float> big_w = w;
    for (float& v : big_w) v *= 1e15f;
    auto ref_big = PackInt8(*ref, big_w, {}, n, k);
    auto dnnl_big = PackInt8(*dnnl, big_w, {}, n, k);
    for (int64_t m : {2, 65}) {
      std::vector<float> x = RandomFloats(m * k, 4, -scale, scale);
      const std::vector<float> want = RunLinear(*ref, *ref_big, x, m, {}, {});
      const std::vector<float> got = RunLinear(*dnnl, *dnnl_big, x, m, {}, {});
      EXPECT_TRUE(Int8Close(got, want, want, {}, {}, {}))
          << "scale " << scale << " m " << m;
    }
  }
  // A row holding an inf: NaN outputs in that row only, on both paths.
  for (int64_t m : {3, 65}) {
    std::vector<float> x = RandomFloats(m * k, 5);
    x[2 * k + 7] = std::numeric_limits<float>::infinity();
    const std::vector<float> want = RunLinear(*ref, *ref_w, x, m, {}, {});
    const std::vector<float> got = RunLinear(*dnnl, *dnnl_w, x, m, {}, {});
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_TRUE(std::isnan(want[2 * n + j]));
      EXPECT_TRUE(std::isnan(got[2 * n + j])) << "m " << m << " col " << j;
      EXPECT_FALSE(std::isnan(got[0 * n + j]));
    }
  }
}

// The weights the product uses, as the reference gives them.
TEST(LinearInt8Test, CopyWeightRowIsTheReferences) {
  auto ref = MakeContext(Backend::kReference);
  auto dnnl = MakeContext(Backend::kDnnl);
  for (auto [n, k] :
       {std::pair<int64_t, int64_t>{1, 1}, {70, 33}, {130, 600}}) {
    const std::vector<float> w = RandomFloats(n * k, 8);
    auto ref_w = PackInt8(*ref, w, {}, n, k);
    auto dnnl_w = PackInt8(*dnnl, w, {}, n, k);
    EXPECT_FALSE(dnnl_w->borrows_weights());
    // Panels (one byte a weight, padded), scales and compensation.
    EXPECT_GE(dnnl_w->bytes(), static_cast<size_t>(n * k + 8 * n));
    if (n * k >= 64 * 64) {  // beyond the padding of one 64 x 64 block
      EXPECT_LT(dnnl_w->bytes(), static_cast<size_t>(n * k) * sizeof(float));
    }
    std::vector<float> got(k), want(k);
    for (int64_t row = 0; row < n; ++row) {
      dnnl_w->CopyWeightRow(row, got.data());
      ref_w->CopyWeightRow(row, want.data());
      ASSERT_TRUE(SameBits(got.data(), want.data(), k))
          << "[" << n << ", " << k << "] row " << row;
    }
  }
}

// Slices of a borrowed table are converted copies: the slice's outputs are
// those columns of the whole product, and later changes to the table do not
// reach them.
TEST_P(Int8KernelTest, BorrowedSlicesAreCopies) {
  auto dnnl = MakeContext(Backend::kDnnl);
  const int64_t n = 150, k = 24, m = 3;
  Tensor table = MakeTensor({n, k}, RandomFloats(n * k, 9));
  Tensor bias = MakeTensor({n}, RandomFloats(n, 10));
  if (!HostRunsComputeType(ComputeType::kInt8).ok()) {
    EXPECT_FALSE(
        PackLinearBorrowed(*dnnl, table, &bias, 0, n, ComputeType::kInt8).ok());
    return;
  }
  auto whole =
      PackLinearBorrowed(*dnnl, table, &bias, 0, n, ComputeType::kInt8);
  auto slice =
      PackLinearBorrowed(*dnnl, table, &bias, 60, 131, ComputeType::kInt8);
  ASSERT_THAT(whole, IsOk());
  ASSERT_THAT(slice, IsOk());
  EXPECT_FALSE((*slice)->borrows_weights());
  EXPECT_EQ((*slice)->out_features(), 71);
  const std::vector<float> x = RandomFloats(m * k, 11);
  const std::vector<float> y_whole = RunLinear(*dnnl, **whole, x, m, {}, {});
  std::fill(table.data(), table.data() + n * k, 0.0f);
  const std::vector<float> y_slice = RunLinear(*dnnl, **slice, x, m, {}, {});
  for (int64_t r = 0; r < m; ++r) {
    EXPECT_TRUE(
        SameBits(y_slice.data() + r * 71, y_whole.data() + r * n + 60, 71))
        << "row " << r;
  }
}

TEST(LinearInt8Test, RejectsDepthBeyondTheInt32Sums) {
  auto dnnl = MakeContext(Backend::kDnnl);
  const int64_t k = internal::kMaxInt8Depth + 1;
  internal::PlainLinear plain;
  plain.type = ComputeType::kInt8;
  plain.n = 1;
  plain.k = k;
  plain.owned_weight = MakeTensor({1, k}, std::vector<float>(k, 1.0f));
  plain.weight = plain.owned_weight.data();
  const auto packed = internal::PackLinearDnnlInt8(*dnnl, std::move(plain));
  EXPECT_THAT(packed, StatusIs(absl::StatusCode::kInvalidArgument,
                               ::testing::HasSubstr("65537")));
}

}  // namespace
}  // namespace attnserve::engine
