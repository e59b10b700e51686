#include "engine/ops/quantize.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/format/half_float.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"

namespace attnserve::engine {
namespace {

TEST(QuantizeTest, Int8RowUsesTheLargestMagnitudeAndRoundsToEven) {
  // amax 2.54 -> 127 / 2.54 = 50 levels per unit: 0.01 lands on 0.5 (ties to
  // even: 0), 0.03 on 1.5 (2), -1.27 on -63.5 (-64), -2.54 on -127.
  const std::vector<float> v = {0.01f, 0.03f, -1.27f, -2.54f, 1.0f, 0.0f};
  std::vector<int8_t> q(v.size());
  const float scale = QuantizeRowInt8(v.data(), v.size(), q.data());
  EXPECT_FLOAT_EQ(scale, 2.54f / 127.0f);
  const float inverse = 127.0f / 2.54f;
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(q[i], static_cast<int8_t>(std::nearbyint(v[i] * inverse)))
        << "at " << i;
  }
  EXPECT_EQ(q[3], -127);
  EXPECT_EQ(q[4], 50);
  EXPECT_EQ(q[5], 0);
}

TEST(QuantizeTest, Int8RoundTripIsWithinHalfAStep) {
  for (int64_t cols : {1, 3, 16, 63, 64, 65, 1000}) {
    const std::vector<float> v =
        op_test::RandomFloats(cols, 7 + cols, -30.0f, 30.0f);
    std::vector<int8_t> q(cols);
    const float scale = QuantizeRowInt8(v.data(), cols, q.data());
    std::vector<float> back(cols);
    DequantizeRowInt8(q.data(), cols, scale, back.data());
    int largest = 0;
    for (int64_t i = 0; i < cols; ++i) {
      EXPECT_LE(std::fabs(back[i] - v[i]), 0.5f * scale * (1 + 1e-5f))
          << cols << " cols, at " << i;
      largest = std::max(largest, std::abs(int{q[i]}));
    }
    EXPECT_EQ(largest, 127) << "the largest magnitude maps to 127";
  }
}

// What loading a stored int8 weight relies on (engine/format/int8_weights.h):
// quantizing the values q * scale again gives back q exactly, and the scale
// within a few ulps, over many rows and magnitudes.
TEST(QuantizeTest, Int8RequantizingDequantizedRowsGivesBackTheIntegers) {
  int scale_differs = 0;
  for (int row = 0; row < 2000; ++row) {
    const int64_t cols = 1 + row % 130;
    const float range = std::ldexp(1.0f, row % 40 - 20);
    const std::vector<float> v =
        op_test::RandomFloats(cols, 100 + row, -range, range);
    std::vector<int8_t> q(cols), again(cols);
    const float scale = QuantizeRowInt8(v.data(), cols, q.data());
    std::vector<float> back(cols);
    DequantizeRowInt8(q.data(), cols, scale, back.data());
    const float scale_again = QuantizeRowInt8(back.data(), cols, again.data());
    ASSERT_EQ(again, q) << "row " << row;
    EXPECT_NEAR(scale_again, scale,
                4 * std::numeric_limits<float>::epsilon() * scale)
        << "row " << row;
    scale_differs += scale_again != scale;
  }
  // Recorded, not required: how often the last bits move.
  RecordProperty("rows_whose_scale_moved", scale_differs);
}

TEST(QuantizeTest, Int8ZeroRowHasScaleZero) {
  const std::vector<float> v(17, 0.0f);
  std::vector<int8_t> q(v.size(), 5);
  EXPECT_EQ(QuantizeRowInt8(v.data(), v.size(), q.data()), 0.0f);
  for (int8_t x : q) EXPECT_EQ(x, 0);
}

TEST(QuantizeTest, Int8ExtremeMagnitudesStayInRange) {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  std::vector<int8_t> q(3);
  const std::vector<float> huge = {big, -big, big / 3};
  const float s = QuantizeRowInt8(huge.data(), 3, q.data());
  EXPECT_TRUE(std::isfinite(s));
  EXPECT_EQ(q[0], 127);
  EXPECT_EQ(q[1], -127);
  EXPECT_EQ(q[2], 42);
  // A subnormal amax: 127 / amax would overflow to inf (and 0 * inf is NaN),
  // so the row counts as zero.
  const std::vector<float> small = {tiny, -tiny, 0.0f};
  EXPECT_EQ(QuantizeRowInt8(small.data(), 3, q.data()), 0.0f);
  for (int8_t x : q) EXPECT_EQ(x, 0);
}

TEST(QuantizeTest, Int8NonFiniteRowGivesNaNScale) {
  const std::vector<float> v = {1.0f, std::numeric_limits<float>::infinity()};
  const std::vector<float> w = {std::nanf(""), 1.0f};
  std::vector<int8_t> q(2);
  EXPECT_TRUE(std::isnan(QuantizeRowInt8(v.data(), 2, q.data())));
  EXPECT_TRUE(std::isnan(QuantizeRowInt8(w.data(), 2, q.data())));
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(q[1], 0);
}

TEST(QuantizeTest, RowsQuantizeIndependently) {
  const std::vector<float> v = {1.0f, -0.5f, 0.0f, 0.0f, 4.0f, 2.0f};
  std::vector<int8_t> q(6);
  std::vector<float> scales(3);
  QuantizeRowsInt8(v.data(), 3, 2, q.data(), scales.data());
  EXPECT_FLOAT_EQ(scales[0], 1.0f / 127);
  EXPECT_EQ(scales[1], 0.0f);
  EXPECT_FLOAT_EQ(scales[2], 4.0f / 127);
  EXPECT_EQ(q[1], -64);  // -63.5 to even
  EXPECT_EQ(q[5], 64);   // 63.5 to even
}

TEST(QuantizeTest, BFloat16RoundsToNearestEven) {
  // 1 + 2^-8 is halfway between bfloat16's 1 and 1 + 2^-7: ties to even (1);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: to 1 + 2^-6.
  EXPECT_EQ(FloatToBFloat16(1.0f + 0x1p-8f), 0x3f80);
  EXPECT_EQ(FloatToBFloat16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(FloatToBFloat16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_EQ(FloatToBFloat16(-2.0f), 0xc000);
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::infinity()), 0x7f80);
  // The largest float rounds up past bfloat16's largest: infinity.
  EXPECT_EQ(FloatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);
  const uint16_t nan = FloatToBFloat16(-std::nanf(""));
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(nan)));
  EXPECT_EQ(nan & 0x8000, 0x8000);
  // A NaN whose payload is only in the low half stays a NaN, not infinity.
  uint32_t low_nan_bits = 0x7f800001u;
  float low_nan;
  std::memcpy(&low_nan, &low_nan_bits, sizeof(low_nan));
  EXPECT_TRUE(std::isnan(BFloat16ToFloat(FloatToBFloat16(low_nan))));
}

TEST(QuantizeTest, BFloat16RowRoundTripIsWithinTheUnitRoundoff) {
  const std::vector<float> v = op_test::RandomFloats(1000, 3, -100.0f, 100.0f);
  std::vector<uint16_t> b(v.size());
  RoundRowToBFloat16(v.data(), v.size(), b.data());
  for (size_t i = 0; i < v.size(); ++i) {
    // 8 significant bits: the unit roundoff is 2^-8 of the magnitude.
    EXPECT_LE(std::fabs(BFloat16ToFloat(b[i]) - v[i]),
              std::fabs(v[i]) * 0x1p-8f)
        << "at " << i;
  }
}

}  // namespace
}  // namespace attnserve::engine
