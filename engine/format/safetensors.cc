#include "engine/format/safetensors.h"

#include <algorithm>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/format/json_util.h"
#include "engine/status_macros.h"

// The format stores little-endian bytes and ReadF32 copies (or widens) them
// without swapping.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors reader assumes a little-endian host");

namespace attnserve::engine {
namespace {

using Json = nlohmann::json;

// The same cap as the reference (Rust) implementation: a real header is a few
// hundred bytes per tensor, and the header is held in memory and parsed into a
// DOM.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;
constexpr char kMetadataKey[] = "__metadata__";

struct DTypeInfo {
  DType dtype;
  const char* name;
  uint64_t size;  // bytes per element
};

constexpr DTypeInfo kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2},
    {DType::kBF16, "BF16", 2}, {DType::kI64, "I64", 8}, {DType::kI32, "I32", 4},
    {DType::kI16, "I16", 2},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

const DTypeInfo* FindDType(absl::string_view name) {
  for (const DTypeInfo& info : kDTypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const DTypeInfo& DTypeOf(DType dtype) {
  for (const DTypeInfo& info : kDTypes) {
    if (info.dtype == dtype) return info;
  }
  return kDTypes[0];  // unreachable: every enumerator is in the table
}

absl::Status TensorError(absl::string_view path, absl::string_view name,
                         absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": tensor \"", name, "\": ", problem));
}

// elements(shape) * element_size, or an error when it does not fit in 64 bits
// (a hostile shape must not wrap around to a small, plausible size). The
// element count is kept in int64_t, Tensor's type: every partial product must
// fit, or Tensor's own product overflows (UB) for shapes such as
// [2^32, 2^31, 0] whose total is 0.
absl::StatusOr<uint64_t> ByteSize(const std::vector<int64_t>& shape,
                                  uint64_t element_size) {
  int64_t elements = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "element count of shape ", ShapeString(shape), " overflows"));
    }
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(elements), element_size,
                             &bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size of shape ", ShapeString(shape), " overflows"));
  }
  return bytes;
}

absl::StatusOr<TensorInfo> ParseEntry(absl::string_view path,
                                      const std::string& name,
                                      const Json& entry, uint64_t data_size) {
  if (!entry.is_object()) {
    return TensorError(
        path, name,
        absl::StrCat("entry must be a JSON object, got ", JsonSnippet(entry)));
  }
  TensorInfo info;
  info.name = name;

  auto dtype = entry.find("dtype");
  if (dtype == entry.end()) return TensorError(path, name, "missing \"dtype\"");
  if (!dtype->is_string()) {
    return TensorError(
        path, name,
        absl::StrCat("\"dtype\" must be a string, got ", JsonSnippet(*dtype)));
  }
  info.dtype_name = dtype->get<std::string>();
  const DTypeInfo* dtype_info = FindDType(info.dtype_name);
  if (dtype_info == nullptr) {
    return TensorError(path, name,
                       absl::StrCat("unknown dtype \"", info.dtype_name, "\""));
  }
  info.dtype = dtype_info->dtype;

  auto shape = entry.find("shape");
  if (shape == entry.end()) return TensorError(path, name, "missing \"shape\"");
  if (!shape->is_array()) {
    return TensorError(
        path, name,
        absl::StrCat("\"shape\" must be an array, got ", JsonSnippet(*shape)));
  }
  for (const Json& dim : *shape) {
    int64_t d = 0;
    if (!JsonToInt64(dim, &d)) {
      return TensorError(path, name,
                         absl::StrCat("\"shape\" must hold integers, got ",
                                      JsonSnippet(*shape)));
    }
    if (d < 0) {
      return TensorError(path, name,
                         absl::StrCat("negative dimension in \"shape\" ",
                                      JsonSnippet(*shape)));
    }
    info.shape.push_back(d);
  }
  absl::StatusOr<uint64_t> bytes = ByteSize(info.shape, dtype_info->size);
  if (!bytes.ok()) return TensorError(path, name, bytes.status().message());

  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end()) {
    return TensorError(path, name, "missing \"data_offsets\"");
  }
  if (!offsets->is_array() || offsets->size() != 2 ||
      !JsonToUint64((*offsets)[0], &info.begin) ||
      !JsonToUint64((*offsets)[1], &info.end)) {
    return TensorError(
        path, name,
        absl::StrCat("\"data_offsets\" must be [begin, end] with "
                     "non-negative integers, got ",
                     JsonSnippet(*offsets)));
  }
  if (info.begin > info.end) {
    return TensorError(path, name,
                       absl::StrCat("\"data_offsets\" begin ", info.begin,
                                    " is greater than end ", info.end));
  }
  if (info.end > data_size) {
    return TensorError(
        path, name,
        absl::StrCat("\"data_offsets\" end ", info.end,
                     " points past the end of the data section (", data_size,
                     " bytes; is the file truncated?)"));
  }
  if (info.end - info.begin != *bytes) {
    return TensorError(
        path, name,
        absl::StrCat("\"data_offsets\" span ", info.end - info.begin,
                     " bytes but ", info.dtype_name, " ",
                     ShapeString(info.shape), " needs ", *bytes));
  }
  return info;
}

// No two tensors may share bytes (the format's rule; a file that maps two
// names onto one range is corrupt or crafted). Empty tensors take no bytes.
absl::Status CheckNoOverlap(
    const std::string& path,
    const absl::flat_hash_map<std::string, TensorInfo>& tensors) {
  std::vector<const TensorInfo*> ranges;
  for (const auto& [name, info] : tensors) {
    if (info.end > info.begin) ranges.push_back(&info);
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const TensorInfo* a, const TensorInfo* b) {
              return a->begin != b->begin ? a->begin < b->begin
                                          : a->name < b->name;
            });
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& a = *ranges[i - 1];
    const TensorInfo& b = *ranges[i];
    if (b.begin < a.end) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensors \"", a.name, "\" (\"data_offsets\" [",
                       a.begin, ", ", a.end, "]) and \"", b.name, "\" ([",
                       b.begin, ", ", b.end, "]) overlap"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  ASSIGN_OR_RETURN(file->file_, FileReader::Open(path));
  file->path_ = path;
  const uint64_t file_size = file->file_->size();
  if (file_size < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": file is ", file_size,
                     " bytes, shorter than the 8-byte header length"));
  }

  unsigned char length_bytes[8];
  RETURN_IF_ERROR(file->file_->ReadAt(0, 8, length_bytes, "the header length"));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i)
    header_size = (header_size << 8) | length_bytes[i];
  if (header_size > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header length ", header_size,
                     " exceeds the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (header_size > file_size - 8) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header length ", header_size, " is larger than the file (",
        file_size, " bytes, so at most ", file_size - 8, " header bytes)"));
  }

  std::string header(header_size, '\0');
  RETURN_IF_ERROR(
      file->file_->ReadAt(8, header_size, header.data(), "the header"));
  ASSIGN_OR_RETURN(const Json root,
                   ParseJson(header, absl::StrCat(path, ": header")));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header must be a JSON object, got ", JsonSnippet(root)));
  }

  file->data_start_ = 8 + header_size;
  file->data_size_ = file_size - file->data_start_;
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == kMetadataKey)
      continue;  // free-form strings; nothing we use
    ASSIGN_OR_RETURN(TensorInfo info,
                     ParseEntry(path, it.key(), it.value(), file->data_size_));
    file->tensors_.emplace(it.key(), std::move(info));
  }
  RETURN_IF_ERROR(CheckNoOverlap(path, file->tensors_));
  return file;
}

const TensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, info] : tensors_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<uint64_t> SafetensorsFile::CheckedBytes(
    const TensorInfo& info) const {
  // `info` normally comes from Find(), but re-checking its bounds is cheap and
  // keeps a hand-made or foreign TensorInfo from reading outside this file's
  // data section.
  absl::StatusOr<uint64_t> bytes =
      ByteSize(info.shape, DTypeOf(info.dtype).size);
  if (!bytes.ok() || info.begin > info.end || info.end > data_size_ ||
      info.end - info.begin != *bytes) {
    return TensorError(path_, info.name,
                       "tensor info does not describe data inside this file");
  }
  return *bytes;
}

absl::Status SafetensorsFile::OutOfMemory(const TensorInfo& info,
                                          uint64_t bytes) const {
  return absl::ResourceExhaustedError(
      absl::StrCat(path_, ": tensor \"", info.name, "\" ",
                   ShapeString(info.shape), ": out of memory: cannot allocate ",
                   bytes, " bytes (", bytes >> 20, " MiB)"));
}

absl::StatusOr<Tensor> SafetensorsFile::ReadF32(const TensorInfo& info) const {
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 &&
      info.dtype != DType::kBF16) {
    return TensorError(path_, info.name,
                       absl::StrCat("dtype ", info.dtype_name,
                                    " cannot be read as float (supported: F32, "
                                    "F16, BF16)"));
  }
  ASSIGN_OR_RETURN(const uint64_t bytes, CheckedBytes(info));
  Tensor tensor;
  if (!tensor.TryReset(info.shape).ok()) return OutOfMemory(info, bytes);
  if (tensor.empty()) return tensor;
  const uint64_t offset = data_start_ + info.begin;
  const std::string what = absl::StrCat("tensor \"", info.name, "\"");
  RETURN_IF_ERROR(ReadStoredFloats(
      info.dtype,
      [&](uint64_t at, uint64_t size, void* out) {
        return file_->ReadAt(offset + at, size, out, what);
      },
      &tensor));
  return tensor;
}

absl::StatusOr<std::vector<int8_t>> SafetensorsFile::ReadInt8(
    const TensorInfo& info) const {
  if (info.dtype != DType::kI8) {
    return TensorError(
        path_, info.name,
        absl::StrCat("dtype ", info.dtype_name, " cannot be read as I8"));
  }
  ASSIGN_OR_RETURN(const uint64_t bytes, CheckedBytes(info));
  std::vector<int8_t> values;
  try {
    values.resize(bytes);
  } catch (const std::bad_alloc&) {
    return OutOfMemory(info, bytes);
  }
  if (bytes == 0) return values;
  RETURN_IF_ERROR(file_->ReadAt(data_start_ + info.begin, bytes, values.data(),
                                absl::StrCat("tensor \"", info.name, "\"")));
  return values;
}

}  // namespace attnserve::engine
