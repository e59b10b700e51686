#include "engine/format/tensor_source.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/half_float.h"
#include "engine/status_macros.h"

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

absl::StatusOr<std::vector<int8_t>> TensorSource::ReadInt8(
    const TensorInfo& info) const {
  return absl::InvalidArgumentError(absl::StrCat(
      path(), ": tensor \"", info.name, "\" has dtype ", info.dtype_name,
      "; int8 weights are read from safetensors files only"));
}

absl::Status ReadStoredFloats(DType dtype, StoredBytesReader read,
                              Tensor* tensor) {
  const uint64_t elements = static_cast<uint64_t>(tensor->size());
  float* out = tensor->data();
  if (dtype == DType::kF32) return read(0, elements * sizeof(float), out);
  if (dtype != DType::kF16 && dtype != DType::kBF16) {
    return absl::InternalError(
        "ReadStoredFloats: the stored dtype is not F32, F16 or BF16");
  }
  float (*widen)(uint16_t) =
      dtype == DType::kF16 ? HalfToFloat : BFloat16ToFloat;
  std::vector<uint16_t> buffer(std::min<uint64_t>(elements, 1 << 16));
  for (uint64_t done = 0; done < elements;) {
    const uint64_t n = std::min<uint64_t>(elements - done, buffer.size());
    RETURN_IF_ERROR(
        read(done * sizeof(uint16_t), n * sizeof(uint16_t), buffer.data()));
    for (uint64_t i = 0; i < n; ++i) out[done + i] = widen(buffer[i]);
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine
