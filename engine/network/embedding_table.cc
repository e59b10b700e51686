#include "engine/network/embedding_table.h"

#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/quantize.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

absl::StatusOr<EmbeddingTable> EmbeddingTable::Create(Tensor table,
                                                      ComputeType type) {
  EmbeddingTable t;
  if (table.empty()) return t;
  if (table.rank() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("an embedding table must be [vocab, d], got ",
                     ShapeString(table.shape())));
  }
  t.type_ = type;
  t.rows_ = table.dim(0);
  t.cols_ = table.dim(1);
  const int64_t count = t.rows_ * t.cols_;
  switch (type) {
    case ComputeType::kFloat32:
      t.values_ = std::move(table);
      return t;
    case ComputeType::kInt8:
      RETURN_IF_ERROR(t.values_.TryReset({Tensor::FloatsFor<int8_t>(count)}));
      RETURN_IF_ERROR(t.scales_.TryReset({t.rows_}));
      QuantizeRowsInt8(table.data(), t.rows_, t.cols_, t.values_.as<int8_t>(),
                       t.scales_.data());
      return t;
    case ComputeType::kBFloat16:
      RETURN_IF_ERROR(t.values_.TryReset({Tensor::FloatsFor<uint16_t>(count)}));
      RoundRowToBFloat16(table.data(), count, t.values_.as<uint16_t>());
      return t;
  }
  return absl::InvalidArgumentError("unknown compute type");
}

size_t EmbeddingTable::bytes() const {
  return values_.bytes() + scales_.bytes();
}

void EmbeddingTable::CopyRow(int64_t row, float* out) const {
  switch (type_) {
    case ComputeType::kFloat32:
      std::memcpy(out, values_.data() + row * cols_, cols_ * sizeof(float));
      return;
    case ComputeType::kInt8:
      return DequantizeRowInt8(values_.as<int8_t>() + row * cols_, cols_,
                               scales_.data()[row], out);
    case ComputeType::kBFloat16:
      return WidenRowFromBFloat16(values_.as<uint16_t>() + row * cols_, cols_,
                                  out);
  }
}

}  // namespace attnserve::engine
