#include "engine/format/torch_checkpoint.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/format/file_reader.h"
#include "engine/format/pickle_reader.h"
#include "engine/format/zip_archive.h"
#include "engine/quote_text.h"
#include "engine/status_macros.h"

// Storages hold little-endian bytes and ReadF32 copies (or widens) them
// without swapping.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "torch checkpoint reader assumes a little-endian host");

namespace attnserve::engine {
namespace {

using Kind = PickleValue::Kind;

constexpr char kRebuildTensor[] = "torch._utils._rebuild_tensor_v2";
// data.pkl is ~120 bytes per tensor; it is held in memory while unpickled.
constexpr uint64_t kMaxPickleBytes = uint64_t{64} << 20;

struct StorageType {
  const char* global;  // as data.pkl names it
  DType dtype;
  const char* dtype_name;  // safetensors' spelling
  uint64_t size;           // bytes per element
};

constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", DType::kF32, "F32", 4},
    {"torch.HalfStorage", DType::kF16, "F16", 2},
    {"torch.BFloat16Storage", DType::kBF16, "BF16", 2},
    {"torch.DoubleStorage", DType::kF64, "F64", 8},
    {"torch.LongStorage", DType::kI64, "I64", 8},
    {"torch.IntStorage", DType::kI32, "I32", 4},
    {"torch.ShortStorage", DType::kI16, "I16", 2},
    {"torch.CharStorage", DType::kI8, "I8", 1},
    {"torch.ByteStorage", DType::kU8, "U8", 1},
    {"torch.BoolStorage", DType::kBool, "BOOL", 1},
};

const StorageType* FindStorageType(absl::string_view global) {
  for (const StorageType& type : kStorageTypes) {
    if (global == type.global) return &type;
  }
  return nullptr;
}

uint64_t ElementSize(DType dtype) {
  for (const StorageType& type : kStorageTypes) {
    if (type.dtype == dtype) return type.size;
  }
  return 0;  // unreachable: every dtype is in the table
}

// The globals a state dict's pickle names; everything else is refused by the
// unpickler before it is ever looked at.
std::vector<std::string> AllowedGlobals() {
  std::vector<std::string> globals = {"collections.OrderedDict",
                                      kRebuildTensor};
  for (const StorageType& type : kStorageTypes) globals.push_back(type.global);
  return globals;
}

// Where a tensor's bytes are: `begin`/`end` of its TensorInfo are offsets in
// this storage entry.
struct Storage {
  const ZipEntry* entry = nullptr;
  const StorageType* type = nullptr;
  int64_t elements = 0;
};

class TorchCheckpoint : public TensorSource {
 public:
  static absl::StatusOr<std::unique_ptr<TorchCheckpoint>> Open(
      const std::string& path);

  const TensorInfo* Find(absl::string_view name) const override {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second.info;
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    names.reserve(tensors_.size());
    for (const auto& [name, tensor] : tensors_) names.push_back(name);
    std::sort(names.begin(), names.end());
    return names;
  }
  const std::string& path() const override { return path_; }

  using TensorSource::ReadF32;
  absl::StatusOr<Tensor> ReadF32(const TensorInfo& info) const override;

 private:
  struct Entry {
    TensorInfo info;
    const ZipEntry* storage = nullptr;
  };

  template <typename... Parts>
  absl::Status Error(const Parts&... parts) const {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", parts...));
  }
  absl::Status AddTensor(const std::string& name, const PickleValue& value);
  absl::StatusOr<Storage> ResolveStorage(const std::string& tensor,
                                         const PickleValue& pid);

  std::string path_;
  std::unique_ptr<ZipArchive> zip_;
  std::string top_;  // the archive's top folder, e.g. "pytorch_model"
  absl::flat_hash_map<std::string, Storage> storages_;  // by key
  absl::flat_hash_map<std::string, Entry> tensors_;
};

// torch.save before 1.6 (and with _use_new_zipfile_serialization=False)
// wrote a bare pickle stream starting with PROTO 2 and a LONG1 magic number.
bool LooksLikeLegacyTorchFile(const std::string& path) {
  const absl::StatusOr<std::unique_ptr<FileReader>> file =
      FileReader::Open(path);
  unsigned char head[4] = {0, 0, 0, 0};
  return file.ok() &&
         (*file)->ReadAt(0, sizeof(head), head, "the magic number").ok() &&
         head[0] == 0x80 && head[1] == 0x02 && head[2] == 0x8a &&
         head[3] == 0x0a;
}

// Finds the single "<top>/data.pkl" entry; <top> is the saved file's stem
// with torch 1.13 and "archive" with newer torch, so only the shape of the
// name is relied on.
absl::StatusOr<std::string> FindTop(const ZipArchive& zip) {
  std::vector<std::string> tops;
  for (const ZipEntry& entry : zip.entries()) {
    const absl::string_view name = entry.name;
    if (!absl::EndsWith(name, "/data.pkl")) continue;
    const absl::string_view top = name.substr(0, name.size() - 9);
    if (top.empty() || absl::StrContains(top, '/')) continue;
    tops.emplace_back(top);
  }
  if (tops.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        zip.path(),
        ": a zip archive but not a torch checkpoint: no <top>/data.pkl entry"));
  }
  if (tops.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(zip.path(), ": ", tops.size(),
                     " data.pkl entries in different folders; ambiguous"));
  }
  return tops[0];
}

// elements(shape), or false when a partial product overflows int64.
bool ElementCount(const std::vector<int64_t>& shape, int64_t* elements) {
  *elements = 1;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(*elements, d, elements)) return false;
  }
  return true;
}

absl::StatusOr<std::vector<int64_t>> IntTuple(const PickleValue& value,
                                              absl::string_view what) {
  if (value.kind != Kind::kTuple) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is a ", PickleKindName(value.kind), ", not a tuple"));
  }
  std::vector<int64_t> ints;
  for (const PickleValuePtr& item : value.items) {
    if (item->kind != Kind::kInt) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " holds a ", PickleKindName(item->kind), ", not an int"));
    }
    ints.push_back(item->integer);
  }
  return ints;
}

std::string IntsString(const std::vector<int64_t>& ints) {
  return absl::StrCat("(", absl::StrJoin(ints, ", "), ")");
}

absl::StatusOr<std::unique_ptr<TorchCheckpoint>> TorchCheckpoint::Open(
    const std::string& path) {
  std::unique_ptr<TorchCheckpoint> checkpoint(new TorchCheckpoint());
  checkpoint->path_ = path;
  absl::StatusOr<std::unique_ptr<ZipArchive>> zip = ZipArchive::Open(path);
  if (!zip.ok()) {
    if (zip.status().code() == absl::StatusCode::kInvalidArgument &&
        LooksLikeLegacyTorchFile(path)) {
      return checkpoint->Error(
          "a legacy torch.save file (torch < 1.6, or "
          "_use_new_zipfile_serialization=False): a bare pickle stream, not "
          "the zip format that is read here; re-save it with a newer torch or "
          "convert it to model.safetensors");
    }
    return zip.status();
  }
  checkpoint->zip_ = std::move(*zip);
  const ZipArchive& archive = *checkpoint->zip_;
  ASSIGN_OR_RETURN(checkpoint->top_, FindTop(archive));
  const std::string& top = checkpoint->top_;

  // torch >= 2.1 records the storages' byte order; older files are
  // little-endian, like every machine that wrote them.
  if (const ZipEntry* order = archive.Find(absl::StrCat(top, "/byteorder"))) {
    ASSIGN_OR_RETURN(const std::string byteorder, archive.ReadAll(*order, 16));
    if (byteorder != "little") {
      return checkpoint->Error("storages are ", QuoteText(byteorder),
                               "-endian; only little-endian is read");
    }
  }

  const std::string pickle_name = absl::StrCat(top, "/data.pkl");
  ASSIGN_OR_RETURN(
      const std::string pickle,
      archive.ReadAll(*archive.Find(pickle_name), kMaxPickleBytes));
  const std::vector<std::string> allowed = AllowedGlobals();
  ASSIGN_OR_RETURN(
      const PickleValuePtr root,
      ReadPickle(pickle, allowed,
                 absl::StrCat(path, ": ", QuoteText(pickle_name))));
  if (root->kind != Kind::kDict) {
    return checkpoint->Error(QuoteText(pickle_name), " holds a ",
                             PickleKindName(root->kind),
                             ", not a dict of tensors (a state dict)");
  }
  for (const auto& [key, value] : root->entries) {
    if (key->kind != Kind::kString) {
      return checkpoint->Error("state dict key is a ",
                               PickleKindName(key->kind), ", not a string");
    }
    RETURN_IF_ERROR(checkpoint->AddTensor(key->text, *value));
  }
  return checkpoint;
}

absl::StatusOr<Storage> TorchCheckpoint::ResolveStorage(
    const std::string& tensor, const PickleValue& pid) {
  const std::string named = absl::StrCat("tensor ", QuoteText(tensor));
  // ('storage', torch.<T>Storage, key, location, elements)
  const PickleValue& id = *pid.items[0];
  if (id.kind != Kind::kTuple || id.items.size() != 5 ||
      id.items[0]->kind != Kind::kString || id.items[0]->text != "storage" ||
      id.items[1]->kind != Kind::kGlobal ||
      id.items[2]->kind != Kind::kString ||
      id.items[3]->kind != Kind::kString || id.items[4]->kind != Kind::kInt) {
    return Error(named,
                 ": persistent id is not ('storage', torch.<T>Storage, key, "
                 "location, elements)");
  }
  const StorageType* type = FindStorageType(id.items[1]->text);
  if (type == nullptr) {
    return Error(named, ": ", QuoteText(id.items[1]->text),
                 " is not a storage type");
  }
  const std::string& key = id.items[2]->text;
  const int64_t elements = id.items[4]->integer;
  if (elements < 0) {
    return Error(named, ": storage ", QuoteText(key), " of ", elements,
                 " elements");
  }
  auto it = storages_.find(key);
  if (it != storages_.end()) {
    // A shared storage (tied weights, views) must be described alike.
    if (it->second.type != type || it->second.elements != elements) {
      return Error(named, ": storage ", QuoteText(key), " is ", type->global,
                   " of ", elements, " elements here but ",
                   it->second.type->global, " of ", it->second.elements,
                   " elements for another tensor");
    }
    return it->second;
  }
  const std::string entry_name = absl::StrCat(top_, "/data/", key);
  const ZipEntry* entry = zip_->Find(entry_name);
  if (entry == nullptr) {
    return Error(named, ": its storage entry ", QuoteText(entry_name),
                 " is missing from the archive");
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(elements), type->size,
                             &bytes) ||
      bytes != entry->size) {
    return Error(named, ": storage entry ", QuoteText(entry_name), " holds ",
                 entry->size, " bytes but the pickle says ", elements,
                 " elements of ", type->global, " (", type->size,
                 " bytes each)");
  }
  Storage storage{entry, type, elements};
  storages_.emplace(key, storage);
  return storage;
}

absl::Status TorchCheckpoint::AddTensor(const std::string& name,
                                        const PickleValue& value) {
  const std::string named = absl::StrCat("tensor ", QuoteText(name));
  if (tensors_.contains(name)) return Error(named, ": appears twice");
  if (value.kind != Kind::kCall || value.text != kRebuildTensor) {
    return Error(
        named, ": is a ", PickleKindName(value.kind),
        value.kind == Kind::kCall ? absl::StrCat(" of ", value.text) : "",
        ", not a tensor (", kRebuildTensor, ")");
  }
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
  //                    backward_hooks[, metadata])
  const std::vector<PickleValuePtr>& args = value.items;
  if (args.size() != 6 && args.size() != 7) {
    return Error(named, ": ", kRebuildTensor, " with ", args.size(),
                 " arguments (6 or 7 expected)");
  }
  if (args[0]->kind != Kind::kPersistentId) {
    return Error(named, ": storage argument is a ",
                 PickleKindName(args[0]->kind), ", not a persistent id");
  }
  ASSIGN_OR_RETURN(const Storage storage, ResolveStorage(name, *args[0]));
  if (args[1]->kind != Kind::kInt || args[1]->integer < 0) {
    return Error(named, ": storage offset is not a non-negative int");
  }
  const int64_t offset = args[1]->integer;
  absl::StatusOr<std::vector<int64_t>> size = IntTuple(*args[2], "size");
  if (!size.ok()) return Error(named, ": ", size.status().message());
  absl::StatusOr<std::vector<int64_t>> stride = IntTuple(*args[3], "stride");
  if (!stride.ok()) return Error(named, ": ", stride.status().message());
  if (size->size() != stride->size()) {
    return Error(named, ": size ", IntsString(*size), " and stride ",
                 IntsString(*stride), " differ in length");
  }
  for (int64_t d : *size) {
    if (d < 0) return Error(named, ": negative size ", IntsString(*size));
  }
  if (args[4]->kind != Kind::kBool) {
    return Error(named, ": requires_grad is not a bool");
  }
  // Hooks would be functions, which the unpickler refuses anyway; an
  // OrderedDict that is not empty is not something a state dict holds.
  if (args[5]->kind != Kind::kDict || !args[5]->entries.empty()) {
    return Error(named, ": backward_hooks is not an empty OrderedDict");
  }
  if (args.size() == 7 && args[6]->kind != Kind::kNone &&
      !(args[6]->kind == Kind::kDict && args[6]->entries.empty())) {
    return Error(named, ": has tensor metadata (a non-empty 7th argument)");
  }

  int64_t elements = 0;
  if (!ElementCount(*size, &elements)) {
    return Error(named, ": element count of size ", IntsString(*size),
                 " overflows");
  }
  // Contiguous as torch defines it: strides of size-1 dimensions do not
  // matter, nor do any of an empty tensor's.
  if (elements > 0) {
    int64_t expected = 1;
    for (size_t i = size->size(); i-- > 0;) {
      if ((*size)[i] == 1) continue;
      if ((*stride)[i] != expected) {
        return Error(named, ": size ", IntsString(*size), " with stride ",
                     IntsString(*stride),
                     " is not contiguous; only contiguous tensors are read "
                     "(save t.contiguous())");
      }
      expected *= (*size)[i];  // no overflow: a factor of `elements`
    }
  }
  int64_t end = 0;
  if (__builtin_add_overflow(offset, elements, &end) ||
      end > storage.elements) {
    return Error(named, ": needs elements [", offset, ", ", offset, " + ",
                 elements, ") of storage ", QuoteText(storage.entry->name),
                 ", which has ", storage.elements);
  }
  Entry entry;
  entry.info.name = name;
  entry.info.dtype = storage.type->dtype;
  entry.info.dtype_name = storage.type->dtype_name;
  entry.info.shape = std::move(*size);
  // end <= storage elements, whose byte size fits in 64 bits (checked).
  entry.info.begin = static_cast<uint64_t>(offset) * storage.type->size;
  entry.info.end = static_cast<uint64_t>(end) * storage.type->size;
  entry.storage = storage.entry;
  tensors_.emplace(name, std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<Tensor> TorchCheckpoint::ReadF32(const TensorInfo& info) const {
  const std::string named = absl::StrCat("tensor ", QuoteText(info.name));
  auto it = tensors_.find(info.name);
  // `info` normally comes from Find(); a hand-made or foreign one must not
  // read anything but what this file says that tensor is.
  if (it == tensors_.end() || it->second.info.begin != info.begin ||
      it->second.info.end != info.end || it->second.info.dtype != info.dtype ||
      it->second.info.shape != info.shape) {
    return Error(named,
                 ": tensor info does not describe a tensor of this file");
  }
  const ZipEntry& storage = *it->second.storage;
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 &&
      info.dtype != DType::kBF16) {
    return Error(named, ": dtype ", info.dtype_name,
                 " cannot be read as float (supported: F32, F16, BF16)");
  }
  const uint64_t bytes = info.end - info.begin;
  Tensor tensor;
  if (!tensor.TryReset(info.shape).ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path_, ": ", named, " ", ShapeString(info.shape),
        ": out of memory: cannot allocate ",
        bytes / ElementSize(info.dtype) * sizeof(float), " bytes"));
  }
  if (tensor.empty()) return tensor;
  RETURN_IF_ERROR(ReadStoredFloats(
      info.dtype,
      [&](uint64_t at, uint64_t size, void* out) {
        return zip_->Read(storage, info.begin + at, size, out, named);
      },
      &tensor));
  return tensor;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TensorSource>> OpenTorchCheckpoint(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<TorchCheckpoint> checkpoint,
                   TorchCheckpoint::Open(path));
  return std::unique_ptr<TensorSource>(std::move(checkpoint));
}

}  // namespace attnserve::engine
