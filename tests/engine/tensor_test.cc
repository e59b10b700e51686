#include "engine/memory/tensor.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/engine/resident_memory.h"

namespace attnserve::engine {
namespace {

void Fill(Tensor& t, float v) {
  for (int64_t i = 0; i < t.size(); ++i) t.data()[i] = v;
}

// A large (mapped) table gives back the pages wholly inside the range: they
// leave the resident set and read as zeros, while the partial pages at its
// ends, and everything outside, keep their values.
TEST(TensorTest, DiscardRangeReturnsWholePagesOnly) {
  const int64_t n = 16 << 20 >> 2;  // 16 MB of floats
  Tensor t({n});
  Fill(t, 1.0f);
  const long before = testing::ResidentKilobytes();
  const int64_t begin = 100, end = n - 100;
  t.DiscardRange(begin, end);
  EXPECT_GT(before - testing::ResidentKilobytes(), 15 * 1024)
      << "KB given back";
  for (int64_t i : {int64_t{0}, begin - 1, begin, end - 1, end, n - 1}) {
    EXPECT_EQ(t.data()[i], 1.0f) << "element " << i;
  }
  EXPECT_EQ(t.data()[n / 2], 0.0f);
  // The table stays usable (the tensor still owns the mapping).
  t.data()[n / 2] = 2.0f;
  EXPECT_EQ(t.data()[n / 2], 2.0f);
}

// Large weights start on a huge-page boundary (so that the kernel can back
// them with huge pages); small ones and other tensors are ordinary blocks.
TEST(TensorTest, LargeWeightsAreHugePageAligned) {
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const int64_t n = int64_t{40} << 20 >> 2;  // 40 MB: a mapping of its own
  Tensor w({n}, Tensor::kWeights);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data()) % kHugePage, 0u);
  Fill(w, 4.0f);
  EXPECT_EQ(w.data()[n - 1], 4.0f);
  w.DiscardRange(0, n / 2);
  EXPECT_EQ(w.data()[n - 1], 4.0f);
  // Growing keeps the policy.
  w.Reset({2 * n});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data()) % kHugePage, 0u);
  Tensor small({1000}, Tensor::kWeights);
  Fill(small, 1.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
}

// Weights up to 32 MB are packed one after another into shared runs of huge
// pages (so that no block ends on small pages): each block follows the one
// before, or starts a new run; the runs go back once all their blocks are gone.
TEST(TensorTest, WeightsShareHugePageRuns) {
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const long before = testing::ResidentKilobytes();
  {
    std::vector<Tensor> blocks;
    std::vector<int64_t> sizes;
    for (int i = 0; i < 24; ++i) {
      sizes.push_back((i % 2 == 0 ? int64_t{1} : int64_t{3}) << 20 >> 2);
      blocks.emplace_back(std::vector<int64_t>{sizes.back()}, Tensor::kWeights);
      Fill(blocks.back(), static_cast<float>(i));
      if (i == 0) continue;
      const uintptr_t at = reinterpret_cast<uintptr_t>(blocks[i].data());
      const uintptr_t after_previous =
          reinterpret_cast<uintptr_t>(blocks[i - 1].data() + sizes[i - 1]);
      EXPECT_TRUE(at == after_previous || at % kHugePage == 0) << "block " << i;
    }
    for (int i = 0; i < 24; ++i) {
      ASSERT_EQ(blocks[i].data()[0], static_cast<float>(i));
      ASSERT_EQ(blocks[i].data()[sizes[i] - 1], static_cast<float>(i));
    }
    EXPECT_GT(testing::ResidentKilobytes() - before, 40 * 1024);
  }
  EXPECT_LT(testing::ResidentKilobytes() - before, 4 * 1024) << "KB still held";
}

TEST(TensorTest, DiscardRangeLeavesSmallTensorsAlone) {
  Tensor t({1000});
  Fill(t, 3.0f);
  t.DiscardRange(0, 1000);
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(t.data()[i], 3.0f) << i;
  Tensor empty;
  empty.DiscardRange(0, 0);  // no data: nothing to do
}

}  // namespace
}  // namespace attnserve::engine
