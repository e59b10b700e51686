#pragma once
// Absolute position encodings (model-format.md's positional_encoding): the
// sinusoidal layouts, fairseq's pad-aware sinusoid, a learned table, or none
// (T5, whose positions are relative: relative_position.h).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/format/model_config.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

class Positions {
 public:
  // `learned`: [max_positions, d_model] for kLearned, else empty.
  static absl::StatusOr<std::unique_ptr<Positions>> Create(
      const ModelConfig& config, Tensor learned);

  size_t bytes() const { return learned_.bytes(); }

  // The index each token of one sequence takes in the table: its place in
  // the sequence, or for kSinusoidalFairseq the count of non-pad tokens
  // before it (fairseq's make_positions).
  void SequenceIndices(absl::Span<const int32_t> tokens,
                       absl::Span<int32_t> indices) const;
  // x[r, :] += PE(indices[r]) for every row (nothing for kNone; a pad token
  // gets nothing for kSinusoidalFairseq). Every index < max_positions.
  // RESOURCE_EXHAUSTED when the table cannot grow to reach an index.
  absl::Status AddTo(absl::Span<const int32_t> tokens,
                     absl::Span<const int32_t> indices, float* x) const;

 private:
  Positions() = default;
  // Makes sinusoidal rows [0, count) ready (see below).
  absl::Status EnsureRows(int64_t count) const;
  const float* Row(int64_t index) const;

  ModelConfig config_;
  Tensor learned_;
  // A sinusoidal table, [max_positions, d_model] (row i = the encoding at
  // position_offset + i), in blocks of kBlockRows rows that are allocated and
  // filled on first use, up to the highest index asked for: a long
  // max_positions costs nothing until a sequence reaches it (not even address
  // space, which `ulimit -v` counts). Rows below rows_ready_ are immutable,
  // and so are the pointers to their blocks, so lookups take no lock.
  static constexpr int64_t kBlockRows = 256;
  mutable std::vector<Tensor> blocks_;  // guarded by the mutex
  // [ceil(max_positions / kBlockRows)]: block b's rows, set (under the
  // mutex) before rows_ready_ passes b's first row.
  std::unique_ptr<const float*[]> block_rows_;
  mutable std::atomic<int64_t> rows_ready_{0};
  mutable std::mutex mutex_;
};

// Rows [begin, end) of a sinusoidal table (any of the three sinusoidal
// layouts), at positions begin + offset ..., into rows [end - begin, d_model].
void SinusoidalPositionRows(int64_t begin, int64_t end, int d_model,
                            PositionalEncoding layout, int offset, float* rows);

}  // namespace attnserve::engine
