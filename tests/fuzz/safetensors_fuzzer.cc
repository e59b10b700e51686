// Fuzzes the safetensors reader alone: the input is the whole file. Reaches
// header and offset checks faster than model_dir_fuzzer, which needs a valid
// config.json first and only reads the tensors a config asks for.
//
// Checks, besides "no crash, no sanitizer report": every tensor that Open
// accepts lies inside the data section as computed here from the raw bytes,
// and reads back (F32, F16, BF16) with as many elements as its shape says.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/format/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

using engine::DType;
using engine::SafetensorsFile;
using engine::TensorInfo;

// The data section's size as the format defines it, independently of the
// reader: the file minus the 8-byte length and the header it announces.
uint64_t DataSectionSize(const uint8_t* data, size_t size) {
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | data[i];
  return size - 8 - header;  // Open refused the file unless this fits
}

void CheckTensor(const SafetensorsFile& file, const TensorInfo& info,
                 uint64_t data_size) {
  FUZZ_CHECK(
      info.begin <= info.end && info.end <= data_size,
      absl::StrCat(info.name, ": [", info.begin, ", ", info.end,
                   ") is outside the data section of ", data_size, " bytes"));
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 &&
      info.dtype != DType::kBF16) {
    FUZZ_CHECK(!file.ReadF32(info).ok(), "only float dtypes read as float");
    return;
  }
  absl::StatusOr<engine::Tensor> tensor = file.ReadF32(info);
  FUZZ_CHECK(tensor.ok(), tensor.status().ToString());
  uint64_t elements = 1;  // unsigned: a hostile shape must not make this UB
  for (int64_t d : info.shape) elements *= static_cast<uint64_t>(d);
  FUZZ_CHECK(static_cast<uint64_t>(tensor->size()) == elements &&
                 tensor->shape() == info.shape,
             absl::StrCat(info.name, ": read ", tensor->size(), " elements"));
}

}  // namespace
}  // namespace attnserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnserve::fuzz;  // NOLINT: the entry point is global
  const std::string path = WriteProcessFile(
      "model.safetensors",
      absl::string_view(reinterpret_cast<const char*>(data), size));
  absl::StatusOr<std::unique_ptr<attnserve::engine::SafetensorsFile>> file =
      attnserve::engine::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  const uint64_t data_size = DataSectionSize(data, size);
  for (const std::string& name : (*file)->Names()) {
    CheckTensor(**file, *(*file)->Find(name), data_size);
  }
  return 0;
}
