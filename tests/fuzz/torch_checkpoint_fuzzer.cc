// Fuzzes the pytorch_model.bin reader: the zip reader, the restricted
// unpickler and the tensor checks on top (docs/torch-checkpoint.md).
//
// Two input forms, so that mutations reach the pickle as well as the zip
// structure (a mutated pickle inside a whole file would mostly break the
// zip's offsets first):
//   - an input starting with "PK" is the whole file;
//   - any other input is parts split by fuzz_util.h's separator: data.pkl,
//     then storages "0", "1", ..., which are packed here into a valid stored
//     zip with the top folder "archive".
//
// Checks, besides "no crash, no sanitizer report, no leak": Names() is sorted
// and every name is found; each float tensor reads back with as many elements
// as its shape says, each other dtype is refused.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/format/torch_checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

using engine::DType;
using engine::TensorInfo;
using engine::TensorSource;

void Put(std::string& s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

// A zip of stored entries, as torch.save writes (CRCs left 0: not checked).
std::string StoredZip(
    const std::vector<std::pair<std::string, absl::string_view>>& entries) {
  std::string out;
  std::vector<uint64_t> offsets;
  for (const auto& [name, data] : entries) {
    offsets.push_back(out.size());
    Put(out, 0x04034b50, 4);
    Put(out, 20, 2);
    Put(out, 0, 2);  // flags
    Put(out, 0, 2);  // stored
    Put(out, 0, 8);  // time, date, crc
    Put(out, data.size(), 4);
    Put(out, data.size(), 4);
    Put(out, name.size(), 2);
    Put(out, 0, 2);
    out += name;
    out.append(data.data(), data.size());
  }
  const uint64_t cd_offset = out.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, data] = entries[i];
    Put(out, 0x02014b50, 4);
    Put(out, 20, 2);
    Put(out, 20, 2);
    Put(out, 0, 2);
    Put(out, 0, 2);
    Put(out, 0, 8);
    Put(out, data.size(), 4);
    Put(out, data.size(), 4);
    Put(out, name.size(), 2);
    Put(out, 0, 2);  // extra
    Put(out, 0, 2);  // comment
    Put(out, 0, 2);  // disk
    Put(out, 0, 2);
    Put(out, 0, 4);
    Put(out, offsets[i], 4);
    out += name;
  }
  const uint64_t cd_size = out.size() - cd_offset;
  Put(out, 0x06054b50, 4);
  Put(out, 0, 4);
  Put(out, entries.size(), 2);
  Put(out, entries.size(), 2);
  Put(out, cd_size, 4);
  Put(out, cd_offset, 4);
  Put(out, 0, 2);
  return out;
}

void CheckTensor(const TensorSource& source, const TensorInfo& info) {
  const bool is_float = info.dtype == DType::kF32 ||
                        info.dtype == DType::kF16 || info.dtype == DType::kBF16;
  absl::StatusOr<engine::Tensor> tensor = source.ReadF32(info);
  if (!is_float) {
    FUZZ_CHECK(!tensor.ok(), "only float dtypes read as float");
    return;
  }
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
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  std::string file;
  if (input.substr(0, 2) == "PK") {
    file = std::string(input);
  } else {
    const std::vector<absl::string_view> parts = SplitInput(data, size, 8);
    std::vector<std::pair<std::string, absl::string_view>> entries;
    entries.emplace_back("archive/data.pkl", parts[0]);
    for (size_t i = 1; i < parts.size(); ++i) {
      entries.emplace_back(absl::StrCat("archive/data/", i - 1), parts[i]);
    }
    entries.emplace_back("archive/version", "3\n");
    file = StoredZip(entries);
  }
  const std::string path = WriteProcessFile("pytorch_model.bin", file);
  absl::StatusOr<std::unique_ptr<attnserve::engine::TensorSource>> source =
      attnserve::engine::OpenTorchCheckpoint(path);
  if (!source.ok()) return 0;
  const std::vector<std::string> names = (*source)->Names();
  for (size_t i = 0; i < names.size(); ++i) {
    FUZZ_CHECK(i == 0 || names[i - 1] < names[i], "Names() is not sorted");
    const TensorInfo* info = (*source)->Find(names[i]);
    FUZZ_CHECK(info != nullptr && info->name == names[i],
               absl::StrCat(names[i], ": listed but not found"));
    CheckTensor(**source, *info);
  }
  return 0;
}
