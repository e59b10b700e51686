#include "engine/format/int8_weights.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

absl::Status Int8Error(const TensorSource& source, absl::string_view name,
                       absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(source.path(), ": tensor \"", name, "\" ", what));
}

}  // namespace

std::string Int8ScaleName(absl::string_view weight) {
  return absl::StrCat(weight, "_scale");
}

absl::Status CheckInt8Weight(const TensorSource& source,
                             const TensorInfo& weight) {
  if (weight.shape.size() != 2) {
    return Int8Error(source, weight.name,
                     absl::StrCat("is I8 of shape ", ShapeString(weight.shape),
                                  "; an int8 weight is a matrix"));
  }
  const std::string scale_name = Int8ScaleName(weight.name);
  const std::vector<int64_t> scale_shape = {weight.shape[0]};
  const TensorInfo* scale = source.Find(scale_name);
  if (scale == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        source.path(), ": missing tensor \"", scale_name, "\" (F32 ",
        ShapeString(scale_shape), ": the per-row scales of the int8 weight \"",
        weight.name, "\")"));
  }
  if (scale->dtype != DType::kF32) {
    return Int8Error(source, scale_name,
                     absl::StrCat("has dtype ", scale->dtype_name,
                                  "; the scales of an int8 weight are F32"));
  }
  if (scale->shape != scale_shape) {
    return Int8Error(
        source, scale_name,
        absl::StrCat("has shape ", ShapeString(scale->shape), ", expected ",
                     ShapeString(scale_shape), " (one scale per row of \"",
                     weight.name, "\" ", ShapeString(weight.shape), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> ReadInt8Weight(const TensorSource& source,
                                      const TensorInfo& weight) {
  RETURN_IF_ERROR(CheckInt8Weight(source, weight));
  const std::string scale_name = Int8ScaleName(weight.name);
  ASSIGN_OR_RETURN(const std::vector<int8_t> q, source.ReadInt8(weight));
  ASSIGN_OR_RETURN(const Tensor scales,
                   source.ReadF32(*source.Find(scale_name)));
  const int64_t rows = weight.shape[0], cols = weight.shape[1];
  Tensor out;
  RETURN_IF_ERROR(out.TryReset(weight.shape));
  for (int64_t r = 0; r < rows; ++r) {
    const float scale = scales.data()[r];
    if (!std::isfinite(scale) || scale < 0) {
      return Int8Error(source, scale_name,
                       absl::StrCat("has scale ", scale, " at row ", r,
                                    "; scales must be finite and >= 0"));
    }
    const int8_t* row = q.data() + r * cols;
    float* dst = out.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      if (row[c] == -128) {
        return Int8Error(source, weight.name,
                         absl::StrCat("holds -128 at row ", r, ", column ", c,
                                      "; int8 weights use [-127, 127]"));
      }
      // DequantizeRowInt8's product (quantize.h), the value packing starts
      // from for every compute type.
      dst[c] = row[c] * scale;
    }
  }
  return out;
}

}  // namespace attnserve::engine
