#include "engine/network/relative_position.h"

#include <algorithm>
#include <cmath>

namespace attnserve::engine {

int RelativePositionBucket(int64_t relative_position, bool bidirectional,
                           int num_buckets, int max_distance) {
  int bucket = 0;
  int64_t distance = 0;
  if (bidirectional) {
    num_buckets /= 2;
    if (relative_position > 0) bucket += num_buckets;
    distance = relative_position < 0 ? -relative_position : relative_position;
  } else {
    distance = relative_position < 0 ? -relative_position : 0;
  }
  const int max_exact = num_buckets / 2;
  if (distance < max_exact) return bucket + static_cast<int>(distance);
  // In float32 as T5 computes it (torch.log on a float tensor, divided by a
  // Python float narrowed to the tensor's type), so a distance lands in the
  // same bucket as in the reference even next to a bucket boundary.
  const float log_ratio =
      std::log(static_cast<float>(distance) / static_cast<float>(max_exact));
  const float log_range = static_cast<float>(
      std::log(static_cast<double>(max_distance) / max_exact));
  const float scaled =
      log_ratio / log_range * static_cast<float>(num_buckets - max_exact);
  const int64_t large = max_exact + static_cast<int64_t>(scaled);
  return bucket + static_cast<int>(std::min<int64_t>(large, num_buckets - 1));
}

RelativePositionBias::RelativePositionBias(const Tensor& table,
                                           bool bidirectional, int max_distance)
    : num_heads_(static_cast<int>(table.dim(1))), max_distance_(max_distance) {
  const int num_buckets = static_cast<int>(table.dim(0));
  const int64_t width = 2 * int64_t{max_distance} + 1;
  by_distance_.resize(num_heads_ * width);
  for (int64_t r = -max_distance; r <= max_distance; ++r) {
    const int bucket =
        RelativePositionBucket(r, bidirectional, num_buckets, max_distance);
    for (int h = 0; h < num_heads_; ++h) {
      by_distance_[h * width + r + max_distance] =
          table.data()[int64_t{bucket} * num_heads_ + h];
    }
  }
}

void RelativePositionBias::Fill(int64_t min_relative, int64_t max_relative,
                                std::vector<float>* out) const {
  const int64_t width = max_relative - min_relative + 1;
  const int64_t stored = 2 * int64_t{max_distance_} + 1;
  out->resize(num_heads_ * width);
  for (int h = 0; h < num_heads_; ++h) {
    const float* near = by_distance_.data() + h * stored + max_distance_;
    float* row = out->data() + h * width;
    for (int64_t r = min_relative; r <= max_relative; ++r) {
      const int64_t clamped =
          std::clamp<int64_t>(r, -max_distance_, max_distance_);
      row[r - min_relative] = near[clamped];
    }
  }
}

}  // namespace attnserve::engine
