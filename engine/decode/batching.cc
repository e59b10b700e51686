#include "engine/decode/batching.h"

#include <algorithm>
#include <numeric>

namespace attnserve::engine {

std::vector<size_t> OrderByLength(absl::Span<const int32_t> lengths) {
  std::vector<size_t> order(lengths.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return lengths[a] < lengths[b]; });
  return order;
}

std::vector<std::pair<size_t, size_t>> PlanEncoderChunks(
    absl::Span<const int32_t> sorted_lengths, int64_t max_rows) {
  std::vector<std::pair<size_t, size_t>> chunks;
  size_t begin = 0;
  for (size_t i = 0; i < sorted_lengths.size(); ++i) {
    // Lengths ascend, so the newest source sets the chunk's padded length.
    const int64_t padded =
        static_cast<int64_t>(i - begin + 1) * sorted_lengths[i];
    if (i > begin && padded > max_rows) {
      chunks.emplace_back(begin, i);
      begin = i;
    }
  }
  if (begin < sorted_lengths.size())
    chunks.emplace_back(begin, sorted_lengths.size());
  return chunks;
}

}  // namespace attnserve::engine
