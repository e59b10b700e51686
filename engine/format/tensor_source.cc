#include "engine/format/tensor_source.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnserve::engine {

absl::StatusOr<Tensor> TensorSource::ReadF32(
    absl::string_view name, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(
        absl::StrCat(path(), ": no tensor named \"", name, "\""));
  }
  if (info->shape != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        path(), ": tensor \"", name, "\": has shape ", ShapeString(info->shape),
        ", expected ", ShapeString(expected_shape)));
  }
  return ReadF32(*info);
}

}  // namespace attnserve::engine
