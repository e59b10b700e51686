// The reference linear's int8 and bfloat16 bodies: the definitions the fast
// bodies are tested against (linear_int8_test.cc, linear_bf16_test.cc), so
// they are pinned here against hand-computed values and against float32 within
// the error bounds of their roundings.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "engine/format/half_float.h"
#include "engine/ops/linear.h"
#include "engine/ops/quantize.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using op_test::MakeContext;
using op_test::MakeTensor;
using op_test::RandomFloats;

std::vector<float> RunRef(ComputeType type, const std::vector<float>& w,
                          const std::vector<float>& b, int64_t n, int64_t k,
                          const std::vector<float>& x, int64_t m,
                          LinearEpilogue epilogue = {}) {
  auto ctx = MakeContext(Backend::kReference);
  auto packed = PackLinear(*ctx, MakeTensor({n, k}, w),
                           b.empty() ? Tensor() : MakeTensor({n}, b), type);
  EXPECT_THAT(packed, IsOk());
  if (!packed.ok()) return {};
  EXPECT_EQ((*packed)->compute_type(), type);
  std::vector<float> y(m * n, 0.0f);
  EXPECT_THAT(Linear(*ctx, **packed, x.data(), m, y.data(), epilogue), IsOk());
  return y;
}

TEST(LinearRefComputeTypeTest, Int8MatchesHandComputedValues) {
  // W rows [127, -63.5] and [1, 2]: scales 1 and 2 / 127, q [127, -64] (ties
  // to even) and [64, 127] (63.5 -> 64). x = [2, 1]: scale 2 / 127, q [127,
  // 64]. y0 = (127 * 127 - 64 * 64) * (2 / 127) * 1 + 0.5
  //    y1 = (127 * 64 + 64 * 127) * (2 / 127) * (2 / 127) - 1.
  const std::vector<float> y =
      RunRef(ComputeType::kInt8, {127.0f, -63.5f, 1.0f, 2.0f}, {0.5f, -1.0f}, 2,
             2, {2.0f, 1.0f}, 1);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], (127.0 * 127 - 64 * 64) * (2.0 / 127) + 0.5, 1e-4);
  EXPECT_NEAR(y[1], (127.0 * 64 + 64 * 127) * (2.0 / 127) * (2.0 / 127) - 1,
              1e-5);
  // The float32 answers differ by the rounding: 190.5 and 3 - 1.
  EXPECT_GT(std::fabs(y[0] - 190.5f), 0.5f);
}

// |int8 - float32| per output is bounded by the two roundings: each x_i is
// off by at most sx / 2, each w_i by sw / 2, so the dot product is off by at
// most sum_i (|x_i| sw + |w_i| sx) / 2 + k sx sw / 4.
TEST(LinearRefComputeTypeTest, Int8IsWithinItsRoundingBoundOfFloat32) {
  for (auto [m, n, k] : {std::tuple{1, 7, 5}, {3, 64, 64}, {5, 33, 300}}) {
    const std::vector<float> w = RandomFloats(n * k, 1 + k, -2.0f, 2.0f);
    const std::vector<float> x = RandomFloats(m * k, 2 + k, -5.0f, 5.0f);
    const std::vector<float> b = RandomFloats(n, 3 + k);
    const std::vector<float> f =
        RunRef(ComputeType::kFloat32, w, b, n, k, x, m);
    const std::vector<float> q = RunRef(ComputeType::kInt8, w, b, n, k, x, m);
    ASSERT_EQ(q.size(), f.size());
    double largest_error = 0;
    for (int r = 0; r < m; ++r) {
      float sx = 0;
      for (int i = 0; i < k; ++i) sx = std::max(sx, std::fabs(x[r * k + i]));
      sx /= 127;
      for (int j = 0; j < n; ++j) {
        float sw = 0;
        for (int i = 0; i < k; ++i) sw = std::max(sw, std::fabs(w[j * k + i]));
        sw /= 127;
        double bound = k * sx * sw / 4;
        for (int i = 0; i < k; ++i) {
          bound +=
              (std::fabs(x[r * k + i]) * sw + std::fabs(w[j * k + i]) * sx) / 2;
        }
        const double error = std::fabs(q[r * n + j] - f[r * n + j]);
        EXPECT_LE(error, bound * 1.0001 + 1e-5) << m << "x" << n << "x" << k;
        largest_error = std::max(largest_error, error);
      }
    }
    // And it is a quantized product, not float32 under another name.
    EXPECT_GT(largest_error, 0.0);
  }
}

// Each bfloat16 rounding is within 2^-8 relative (8 significant bits), so
// each product within 2^-7 + 2^-16 of its float32 value.
TEST(LinearRefComputeTypeTest, BFloat16IsWithinItsRoundingBoundOfFloat32) {
  const int m = 4, n = 40, k = 129;
  const std::vector<float> w = RandomFloats(n * k, 11, -2.0f, 2.0f);
  const std::vector<float> x = RandomFloats(m * k, 12, -5.0f, 5.0f);
  const std::vector<float> f = RunRef(ComputeType::kFloat32, w, {}, n, k, x, m);
  const std::vector<float> h =
      RunRef(ComputeType::kBFloat16, w, {}, n, k, x, m);
  double largest_error = 0;
  for (int r = 0; r < m; ++r) {
    for (int j = 0; j < n; ++j) {
      double bound = 0;
      for (int i = 0; i < k; ++i) {
        bound += std::fabs(x[r * k + i] * w[j * k + i]) * (0x1p-7 + 0x1p-16);
      }
      const double error = std::fabs(h[r * n + j] - f[r * n + j]);
      EXPECT_LE(error, bound + 1e-5);
      largest_error = std::max(largest_error, error);
    }
  }
  EXPECT_GT(largest_error, 0.0);
}

TEST(LinearRefComputeTypeTest, BFloat16IsExactOnBFloat16Values) {
  // Values with few significant bits are bfloat16 already: same as float32.
  const std::vector<float> w = {0.5f, -1.25f, 3.0f, 0.125f};
  const std::vector<float> x = {2.0f, -0.75f};
  EXPECT_EQ(RunRef(ComputeType::kBFloat16, w, {}, 2, 2, x, 1),
            RunRef(ComputeType::kFloat32, w, {}, 2, 2, x, 1));
}

TEST(LinearRefComputeTypeTest, CopyWeightRowGivesTheConvertedValues) {
  auto ctx = MakeContext(Backend::kReference);
  const int n = 3, k = 70;
  const std::vector<float> w = RandomFloats(n * k, 5);
  for (ComputeType type : {ComputeType::kInt8, ComputeType::kBFloat16}) {
    auto packed = PackLinear(*ctx, MakeTensor({n, k}, w), Tensor(), type);
    ASSERT_THAT(packed, IsOk());
    EXPECT_FALSE((*packed)->borrows_weights());
    for (int row = 0; row < n; ++row) {
      std::vector<float> got(k), want(k);
      (*packed)->CopyWeightRow(row, got.data());
      if (type == ComputeType::kInt8) {
        std::vector<int8_t> q(k);
        const float s = QuantizeRowInt8(w.data() + row * k, k, q.data());
        DequantizeRowInt8(q.data(), k, s, want.data());
      } else {
        for (int i = 0; i < k; ++i) {
          want[i] = BFloat16ToFloat(FloatToBFloat16(w[row * k + i]));
        }
      }
      EXPECT_EQ(got, want) << ComputeTypeName(type) << " row " << row;
    }
  }
}

TEST(LinearRefComputeTypeTest, BorrowedSlicesAreConvertedCopies) {
  auto ctx = MakeContext(Backend::kReference);
  const int n = 6, k = 9;
  Tensor table = MakeTensor({n, k}, RandomFloats(n * k, 8));
  auto whole = PackLinear(
      *ctx,
      MakeTensor({n, k},
                 std::vector<float>(table.data(), table.data() + n * k)),
      Tensor(), ComputeType::kInt8);
  auto slice =
      PackLinearBorrowed(*ctx, table, nullptr, 2, 5, ComputeType::kInt8);
  ASSERT_THAT(whole, IsOk());
  ASSERT_THAT(slice, IsOk());
  EXPECT_FALSE((*slice)->borrows_weights());
  const std::vector<float> x = RandomFloats(k, 9);
  std::vector<float> y_whole(n), y_slice(3);
  ASSERT_THAT(Linear(*ctx, **whole, x.data(), 1, y_whole.data()), IsOk());
  // Changing the table after packing must not change the slice's answers.
  std::fill(table.data(), table.data() + n * k, 0.0f);
  ASSERT_THAT(Linear(*ctx, **slice, x.data(), 1, y_slice.data()), IsOk());
  EXPECT_EQ(std::vector<float>(y_whole.begin() + 2, y_whole.begin() + 5),
            y_slice);
}

TEST(LinearRefComputeTypeTest, ParsesAndNamesComputeTypes) {
  for (ComputeType t :
       {ComputeType::kFloat32, ComputeType::kInt8, ComputeType::kBFloat16}) {
    const auto parsed = ParseComputeType(ComputeTypeName(t));
    ASSERT_THAT(parsed, IsOk());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_EQ(ComputeTypeBytes(ComputeType::kFloat32), 4);
  EXPECT_EQ(ComputeTypeBytes(ComputeType::kInt8), 1);
  EXPECT_EQ(ComputeTypeBytes(ComputeType::kBFloat16), 2);
  const auto bad = ParseComputeType("fp16");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("\"fp16\""), std::string::npos);
}

}  // namespace
}  // namespace attnserve::engine
