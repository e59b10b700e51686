#pragma once
// Bounds-checked reader of the safetensors format: an 8-byte little-endian
// header length N, N bytes of JSON header, then raw little-endian tensor bytes.
// Tensors are read on demand with pread, so loading never holds the whole file
// in memory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/file_reader.h"
#include "engine/format/tensor_source.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

// Thread-compatible; Read* are const and may be called concurrently (pread).
class SafetensorsFile : public TensorSource {
 public:
  // Validates the whole header up front: header length within the file, valid
  // JSON object, every entry with a known dtype, a shape of non-negative dims,
  // data_offsets [begin, end] with begin <= end <= data section size and end -
  // begin == elements * dtype size (no integer overflow). Errors name the file
  // and the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path);

  const TensorInfo* Find(absl::string_view name) const override;
  std::vector<std::string> Names() const override;
  const std::string& path() const override { return path_; }

  using TensorSource::ReadF32;
  absl::StatusOr<Tensor> ReadF32(const TensorInfo& info) const override;
  absl::StatusOr<std::vector<int8_t>> ReadInt8(
      const TensorInfo& info) const override;

 private:
  SafetensorsFile() = default;
  // The stored byte count of `info`, checked to lie inside the data section.
  absl::StatusOr<uint64_t> CheckedBytes(const TensorInfo& info) const;
  absl::Status OutOfMemory(const TensorInfo& info, uint64_t bytes) const;
  std::string path_;
  std::unique_ptr<FileReader> file_;
  uint64_t data_start_ = 0;  // 8 + N
  uint64_t data_size_ = 0;   // file size - data_start_
  absl::flat_hash_map<std::string, TensorInfo> tensors_;
};

}  // namespace attnserve::engine
