#pragma once
// T5's relative position bias: a learned scalar per head and bucket, added to
// the self-attention scores of a query and a key by their distance
// (key position - query position). Distances fall into log-spaced buckets
// (docs/hf-reference.md, "T5 relative bias"): exact up to half the bucket
// range, then logarithmic up to max_distance, beyond which every distance
// shares the last bucket. The encoder's buckets are bidirectional (half for
// keys after the query); the decoder's are causal.

#include <cstdint>
#include <vector>

#include "engine/memory/tensor.h"

namespace attnserve::engine {

// The bucket of `relative_position` (key - query), as T5 computes it (the
// logarithm in float32, then truncated).
int RelativePositionBucket(int64_t relative_position, bool bidirectional,
                           int num_buckets, int max_distance);

class RelativePositionBias {
 public:
  RelativePositionBias() = default;
  // table: [num_buckets, num_heads], as stored.
  RelativePositionBias(const Tensor& table, bool bidirectional,
                       int max_distance);

  bool present() const { return num_heads_ > 0; }
  int num_heads() const { return num_heads_; }
  size_t bytes() const { return by_distance_.size() * sizeof(float); }

  // out[h * width + (r - min_relative)] = bias of head h at distance r, for r
  // in [min_relative, max_relative], width = max_relative - min_relative + 1:
  // the layout AttentionArgs::position_bias reads, with
  // position_bias_head_stride = width and position_bias_center =
  // -min_relative.
  void Fill(int64_t min_relative, int64_t max_relative,
            std::vector<float>* out) const;

 private:
  int num_heads_ = 0;
  int max_distance_ = 0;
  // [num_heads, 2 * max_distance + 1]: the bias at distances
  // [-max_distance, max_distance]; farther ones equal the ends (their bucket
  // is the last one), so nothing longer is ever stored.
  std::vector<float> by_distance_;
};

}  // namespace attnserve::engine
