#include "engine/decode/batching.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

TEST(OrderByLengthTest, ShortestFirstStable) {
  const std::vector<int32_t> lengths = {5, 2, 5, 1, 2};
  EXPECT_THAT(OrderByLength(lengths), ElementsAre(3, 1, 4, 0, 2));
}

TEST(PlanEncoderChunksTest, BoundsPaddedRows) {
  const std::vector<int32_t> sorted = {2, 3, 3, 4, 10, 10};
  // 4 * 4 = 16 rows fit; a fifth source (length 10) would pad to 50.
  EXPECT_THAT(PlanEncoderChunks(sorted, 20),
              ElementsAre(Pair(0, 4), Pair(4, 6)));
}

TEST(PlanEncoderChunksTest, OversizedSourceGetsItsOwnChunk) {
  const std::vector<int32_t> sorted = {3, 50, 60};
  EXPECT_THAT(PlanEncoderChunks(sorted, 40),
              ElementsAre(Pair(0, 1), Pair(1, 2), Pair(2, 3)));
}

TEST(PlanEncoderChunksTest, EmptyAndSingle) {
  EXPECT_TRUE(PlanEncoderChunks({}, 10).empty());
  const std::vector<int32_t> one = {7};
  EXPECT_THAT(PlanEncoderChunks(one, 1), ElementsAre(Pair(0, 1)));
}

}  // namespace
}  // namespace attnserve::engine
