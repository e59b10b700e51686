#pragma once
// A token table for embedding lookups, stored in a compute type's format
// (precision.h): float32 as loaded, int8 with one scale per token, or bfloat16.
// A lookup widens one row to float32, the values the output projection's
// CopyWeightRow gives for the same type (quantize.h's roundings), so a table
// read here or through a tied projection gives the same embedding.

#include <cstdint>

#include "absl/status/statusor.h"
#include "engine/memory/tensor.h"
#include "engine/ops/compute_type.h"

namespace attnserve::engine {

class EmbeddingTable {
 public:
  EmbeddingTable() = default;  // empty: no table
  // Takes `table` [vocab, d] and converts it to `type`, releasing the float32
  // tensor unless it is kept as it is. RESOURCE_EXHAUSTED when the converted
  // copy cannot be had.
  static absl::StatusOr<EmbeddingTable> Create(Tensor table, ComputeType type);

  bool empty() const { return rows_ == 0; }
  int64_t rows() const { return rows_; }
  size_t bytes() const;
  // out[i] = table[row][i] for i in [0, d), widened to float32.
  void CopyRow(int64_t row, float* out) const;

 private:
  ComputeType type_ = ComputeType::kFloat32;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
  Tensor values_;  // [rows, cols] as float, int8_t or uint16_t (bfloat16)
  Tensor scales_;  // [rows], int8 only
};

}  // namespace attnserve::engine
