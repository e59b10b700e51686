#pragma once
// Bounds-checked reader of the safetensors format: an 8-byte little-endian header length N,
// N bytes of JSON header, then raw little-endian tensor bytes. Tensors are read on demand
// with pread, so loading never holds the whole file in memory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

struct TensorInfo {
  std::string name;
  DType dtype;
  std::string dtype_name;        // as written in the header, e.g. "F32"
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

// Thread-compatible; Read* are const and may be called concurrently (pread).
class SafetensorsFile {
 public:
  // Validates the whole header up front: header length within the file, valid JSON object,
  // every entry with a known dtype, a shape of non-negative dims, data_offsets [begin, end]
  // with begin <= end <= data section size and end - begin == elements * dtype size (no
  // integer overflow). Errors name the file and the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();

  // nullptr when absent.
  const TensorInfo* Find(absl::string_view name) const;
  std::vector<std::string> Names() const;  // sorted
  const std::string& path() const { return path_; }

  // Reads a tensor into a new float Tensor of the stored shape. F32 is copied; F16 and
  // BF16 are widened; any other dtype is an error naming the tensor and dtype.
  absl::StatusOr<Tensor> ReadF32(const TensorInfo& info) const;
  // As above, and checks that the stored shape equals `expected_shape` (error names the
  // tensor, the expected and the actual shape).
  absl::StatusOr<Tensor> ReadF32(absl::string_view name,
                                 const std::vector<int64_t>& expected_shape) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0;  // 8 + N
  uint64_t data_size_ = 0;   // file size - data_start_
  absl::flat_hash_map<std::string, TensorInfo> tensors_;
};

}  // namespace attnserve::engine
