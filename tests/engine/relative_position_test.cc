#include "engine/network/relative_position.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

// Values worked by hand from T5's formula (docs/hf-reference.md): with 32
// buckets and max_distance 128, the encoder's (bidirectional) buckets are 16
// per direction, exact below 8; the decoder's (causal) 32, exact below 16.
TEST(RelativePositionBucketTest, BidirectionalMatchesWorkedValues) {
  EXPECT_EQ(RelativePositionBucket(0, true, 32, 128), 0);
  EXPECT_EQ(RelativePositionBucket(-3, true, 32, 128), 3);
  EXPECT_EQ(RelativePositionBucket(3, true, 32, 128), 19);
  EXPECT_EQ(RelativePositionBucket(-8, true, 32, 128), 8);
  // 8 + floor(ln(20 / 8) / ln(128 / 8) * 8) = 8 + floor(2.64)
  EXPECT_EQ(RelativePositionBucket(-20, true, 32, 128), 10);
  EXPECT_EQ(RelativePositionBucket(20, true, 32, 128), 26);
  EXPECT_EQ(RelativePositionBucket(-200, true, 32, 128), 15);
  EXPECT_EQ(RelativePositionBucket(200, true, 32, 128), 31);
}

TEST(RelativePositionBucketTest, CausalMatchesWorkedValues) {
  EXPECT_EQ(RelativePositionBucket(0, false, 32, 128), 0);
  EXPECT_EQ(RelativePositionBucket(5, false, 32, 128), 0);  // a later key
  EXPECT_EQ(RelativePositionBucket(-3, false, 32, 128), 3);
  EXPECT_EQ(RelativePositionBucket(-15, false, 32, 128), 15);
  // 16 + floor(ln(20 / 16) / ln(128 / 16) * 16) = 16 + floor(1.72)
  EXPECT_EQ(RelativePositionBucket(-20, false, 32, 128), 17);
  // 16 + floor(ln(127 / 16) / ln(8) * 16) = 16 + floor(15.94)
  EXPECT_EQ(RelativePositionBucket(-127, false, 32, 128), 31);
  EXPECT_EQ(RelativePositionBucket(-100000, false, 32, 128), 31);
}

TEST(RelativePositionBucketTest, BucketsGrowMonotonicallyWithDistance) {
  for (bool bidirectional : {true, false}) {
    int previous = -1;
    for (int64_t distance = 0; distance < 1000; ++distance) {
      const int b = RelativePositionBucket(-distance, bidirectional, 32, 128);
      EXPECT_GE(b, previous) << distance;
      EXPECT_LT(b, bidirectional ? 16 : 32);
      previous = b;
    }
  }
}

TEST(RelativePositionBiasTest, FillLooksUpEveryDistanceIncludingFarOnes) {
  const int buckets = 8, heads = 3, max_distance = 10;
  Tensor table({buckets, heads});
  for (int b = 0; b < buckets; ++b) {
    for (int h = 0; h < heads; ++h) table.data()[b * heads + h] = b * 10 + h;
  }
  for (bool bidirectional : {true, false}) {
    SCOPED_TRACE(bidirectional);
    RelativePositionBias bias(table, bidirectional, max_distance);
    ASSERT_EQ(bias.num_heads(), heads);
    std::vector<float> out;
    const int64_t lo = -40, hi = 25, width = hi - lo + 1;
    bias.Fill(lo, hi, &out);
    ASSERT_EQ(out.size(), static_cast<size_t>(heads * width));
    for (int h = 0; h < heads; ++h) {
      for (int64_t r = lo; r <= hi; ++r) {
        const int bucket =
            RelativePositionBucket(r, bidirectional, buckets, max_distance);
        EXPECT_EQ(out[h * width + (r - lo)], bucket * 10 + h)
            << "head " << h << " distance " << r;
      }
    }
  }
}

}  // namespace
}  // namespace attnserve::engine
