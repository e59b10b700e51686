#pragma once
// The tensors of one checkpoint file, whatever its container: safetensors
// (safetensors.h) or PyTorch's zip archive (torch_checkpoint.h). A loader
// (one per checkpoint layout) asks for names and shapes and reads floats;
// it does not know which container holds them.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

struct TensorInfo {
  std::string name;
  DType dtype;
  std::string dtype_name;  // as the file names it, e.g. "F32"
  std::vector<int64_t> shape;
  // Container-specific location; only the container that made it reads it.
  // safetensors: byte offsets relative to the start of the data section.
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Thread-compatible; Read* are const and may be called concurrently.
class TensorSource {
 public:
  virtual ~TensorSource() = default;

  // nullptr when absent.
  virtual const TensorInfo* Find(absl::string_view name) const = 0;
  virtual std::vector<std::string> Names() const = 0;  // sorted
  virtual const std::string& path() const = 0;

  // Reads a tensor into a new float Tensor of the stored shape. F32 is
  // copied; F16 and BF16 are widened; any other dtype is an error naming the
  // tensor and dtype.
  virtual absl::StatusOr<Tensor> ReadF32(const TensorInfo& info) const = 0;
  // The raw values of an I8 tensor (docs/model-format.md, "Quantized
  // tensors"); another dtype is an error naming the tensor. Containers
  // without int8 weights (PyTorch checkpoints) keep this default, which
  // refuses.
  virtual absl::StatusOr<std::vector<int8_t>> ReadInt8(
      const TensorInfo& info) const;
  // As above, and checks that the stored shape equals `expected_shape` (the
  // error names the tensor, the expected and the actual shape).
  absl::StatusOr<Tensor> ReadF32(
      absl::string_view name, const std::vector<int64_t>& expected_shape) const;
};

// Reads `size` bytes at `offset`, counted from a tensor's first stored byte,
// into `out`; its errors name the file and the tensor.
using StoredBytesReader =
    absl::FunctionRef<absl::Status(uint64_t offset, uint64_t size, void* out)>;

// The part of ReadF32 that every container shares, once the container has
// checked the tensor and allocated `tensor` to its stored shape: fills
// `tensor` from its elements stored as `dtype` through `read`, little-endian
// bytes taken without swapping (each container asserts a little-endian
// host). F32 is read straight into the tensor; F16 and BF16 are widened through
// a bounded buffer rather than a second full-size copy. Returns `read`'s first
// error, or INTERNAL for any other dtype (the container refuses those first).
absl::Status ReadStoredFloats(DType dtype, StoredBytesReader read,
                              Tensor* tensor);

}  // namespace attnserve::engine
