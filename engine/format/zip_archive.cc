#include "engine/format/zip_archive.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/quote_text.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

constexpr uint32_t kEocdSignature = 0x06054b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr uint32_t kZip64EocdSignature = 0x06064b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr uint16_t kZip64ExtraId = 0x0001;

constexpr uint64_t kEocdBytes = 22;
constexpr uint64_t kMaxCommentBytes = 0xffff;
constexpr uint64_t kZip64LocatorBytes = 20;
constexpr uint64_t kZip64EocdBytes = 56;
constexpr uint64_t kCentralBytes = 46;
constexpr uint64_t kLocalBytes = 30;
// The central directory is held in memory while it is checked. A torch
// checkpoint's entry is ~100 bytes per tensor, so this allows ~500k tensors.
constexpr uint64_t kMaxCentralDirectoryBytes = uint64_t{64} << 20;

// Little-endian fields of a record already read into memory; every caller
// checks the record's length first.
uint16_t U16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t U32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t U64(const unsigned char* p) {
  return static_cast<uint64_t>(U32(p)) |
         (static_cast<uint64_t>(U32(p + 4)) << 32);
}

struct CentralEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint64_t compressed_size = 0;
  uint64_t size = 0;
  uint64_t local_offset = 0;
  uint32_t disk = 0;
};

// Replaces the saturated 32-bit fields of `entry` from its ZIP64 extended
// information extra field, which holds them, in this order, only for the
// fields that are saturated.
absl::Status ApplyZip64Extra(const unsigned char* extra, uint64_t extra_size,
                             bool size_saturated, bool compressed_saturated,
                             bool offset_saturated, bool disk_saturated,
                             CentralEntry& entry, absl::string_view where) {
  bool found = false;
  uint64_t pos = 0;
  while (pos + 4 <= extra_size) {
    const uint16_t id = U16(extra + pos);
    const uint16_t length = U16(extra + pos + 2);
    pos += 4;
    if (length > extra_size - pos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": extra field 0x", absl::Hex(id), " of ", length,
                       " bytes runs past the end of the extra data"));
    }
    if (id == kZip64ExtraId) {
      if (found) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": two ZIP64 extra fields"));
      }
      found = true;
      const unsigned char* field = extra + pos;
      uint64_t left = length;
      auto take = [&](uint64_t bytes, uint64_t& value) -> bool {
        if (left < bytes) return false;
        value = bytes == 8 ? U64(field) : U32(field);
        field += bytes;
        left -= bytes;
        return true;
      };
      uint64_t disk = 0;
      if ((size_saturated && !take(8, entry.size)) ||
          (compressed_saturated && !take(8, entry.compressed_size)) ||
          (offset_saturated && !take(8, entry.local_offset)) ||
          (disk_saturated && !take(4, disk))) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": ZIP64 extra field of ", length,
            " bytes is too short for the fields the header defers to it"));
      }
      if (disk_saturated) entry.disk = static_cast<uint32_t>(disk);
    }
    pos += length;
  }
  if (!found && (size_saturated || compressed_saturated || offset_saturated ||
                 disk_saturated)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        ": a size or offset is 0xffffffff but there is no ZIP64 extra "
        "field"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ZipArchive>> ZipArchive::Open(
    const std::string& path) {
  std::unique_ptr<ZipArchive> archive(new ZipArchive());
  ASSIGN_OR_RETURN(archive->file_, FileReader::Open(path));
  archive->path_ = path;
  RETURN_IF_ERROR(archive->Parse());
  return archive;
}

absl::Status ZipArchive::Parse() {
  const uint64_t file_size = file_->size();
  auto error = [this](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": ", parts...));
  };
  if (file_size < kEocdBytes) {
    return error("not a zip archive: ", file_size,
                 " bytes, shorter than an end of central directory record");
  }

  // The end of central directory record is the last 22 bytes plus a comment
  // of up to 64 KiB. Scanning backwards, the first signature whose comment
  // length reaches exactly the end of the file is the record; a signature
  // inside a comment would not reach it.
  const uint64_t tail_size =
      std::min<uint64_t>(file_size, kEocdBytes + kMaxCommentBytes);
  std::string tail(tail_size, '\0');
  RETURN_IF_ERROR(file_->ReadAt(file_size - tail_size, tail_size, tail.data(),
                                "the end of central directory record"));
  const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
  uint64_t eocd_in_tail = tail_size;  // not found
  for (uint64_t pos = tail_size - kEocdBytes + 1; pos-- > 0;) {
    if (U32(t + pos) == kEocdSignature &&
        pos + kEocdBytes + U16(t + pos + 20) == tail_size) {
      eocd_in_tail = pos;
      break;
    }
  }
  if (eocd_in_tail == tail_size) {
    return error(
        "not a zip archive (no end of central directory record; truncated, "
        "or not a torch.save file of torch >= 1.6)");
  }
  const unsigned char* eocd = t + eocd_in_tail;
  const uint64_t eocd_offset = file_size - tail_size + eocd_in_tail;
  uint32_t disk = U16(eocd + 4);
  uint32_t cd_disk = U16(eocd + 6);
  uint64_t disk_entries = U16(eocd + 8);
  uint64_t total_entries = U16(eocd + 10);
  uint64_t cd_size = U32(eocd + 12);
  uint64_t cd_offset = U32(eocd + 16);
  // Where the central directory must end: at the ZIP64 record if there is
  // one, else at this record.
  uint64_t cd_limit = eocd_offset;

  // The ZIP64 locator, when there is one, sits right before the record (read
  // apart: a long comment can leave it outside `tail`).
  unsigned char locator[kZip64LocatorBytes];
  const bool has_locator =
      eocd_offset >= kZip64LocatorBytes &&
      file_
          ->ReadAt(eocd_offset - kZip64LocatorBytes, kZip64LocatorBytes,
                   locator, "the ZIP64 locator")
          .ok() &&
      U32(locator) == kZip64LocatorSignature;
  if (has_locator) {
    const uint32_t record_disk = U32(locator + 4);
    const uint64_t record_offset = U64(locator + 8);
    const uint32_t disks = U32(locator + 16);
    if (record_disk != 0 || disks > 1) {
      return error(
          "multi-disk zip archives are not supported (ZIP64 locator "
          "says disk ",
          record_disk, " of ", disks, ")");
    }
    const uint64_t locator_offset = eocd_offset - kZip64LocatorBytes;
    if (!FitsWithin(record_offset, kZip64EocdBytes, locator_offset)) {
      return error("ZIP64 end of central directory record at offset ",
                   record_offset, " does not fit before its locator at ",
                   locator_offset);
    }
    unsigned char record[kZip64EocdBytes];
    RETURN_IF_ERROR(file_->ReadAt(record_offset, kZip64EocdBytes, record,
                                  "the ZIP64 end of central directory record"));
    if (U32(record) != kZip64EocdSignature) {
      return error("no ZIP64 end of central directory record at offset ",
                   record_offset, " (where the locator points)");
    }
    // A 32-bit field is either saturated (deferring to the ZIP64 record) or
    // equal to it; two different answers make the archive ambiguous.
    bool consistent = true;
    auto widen = [&consistent](uint64_t narrow, uint64_t saturated,
                               uint64_t wide) {
      if (narrow != saturated && narrow != wide) consistent = false;
      return wide;
    };
    disk = static_cast<uint32_t>(widen(disk, 0xffff, U32(record + 16)));
    cd_disk = static_cast<uint32_t>(widen(cd_disk, 0xffff, U32(record + 20)));
    disk_entries = widen(disk_entries, 0xffff, U64(record + 24));
    total_entries = widen(total_entries, 0xffff, U64(record + 32));
    cd_size = widen(cd_size, 0xffffffff, U64(record + 40));
    cd_offset = widen(cd_offset, 0xffffffff, U64(record + 48));
    if (!consistent) {
      return error(
          "the end of central directory record and its ZIP64 "
          "record disagree");
    }
    cd_limit = record_offset;
  } else if (total_entries == 0xffff || cd_size == 0xffffffff ||
             cd_offset == 0xffffffff) {
    return error(
        "the end of central directory record defers to a ZIP64 "
        "record, but there is no ZIP64 locator");
  }
  if (disk != 0 || cd_disk != 0 || disk_entries != total_entries) {
    return error("multi-disk zip archives are not supported");
  }
  if (!FitsWithin(cd_offset, cd_size, cd_limit)) {
    return error("central directory (", cd_size, " bytes at offset ", cd_offset,
                 ") does not end before the end records at ", cd_limit,
                 " (truncated?)");
  }
  if (cd_size > kMaxCentralDirectoryBytes) {
    return error("central directory of ", cd_size,
                 " bytes exceeds the limit of ", kMaxCentralDirectoryBytes);
  }
  if (total_entries > cd_size / kCentralBytes) {
    return error("central directory of ", cd_size, " bytes cannot hold ",
                 total_entries, " entries");
  }

  std::string directory(cd_size, '\0');
  RETURN_IF_ERROR(file_->ReadAt(cd_offset, cd_size, directory.data(),
                                "the central directory"));
  const auto* d = reinterpret_cast<const unsigned char*>(directory.data());
  uint64_t pos = 0;
  entries_.reserve(total_entries);
  for (uint64_t i = 0; i < total_entries; ++i) {
    const std::string where =
        absl::StrCat(path_, ": central directory entry ", i);
    if (cd_size - pos < kCentralBytes || U32(d + pos) != kCentralSignature) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": no central directory header at offset ", cd_offset + pos));
    }
    const unsigned char* h = d + pos;
    CentralEntry entry;
    entry.flags = U16(h + 8);
    entry.method = U16(h + 10);
    entry.compressed_size = U32(h + 20);
    entry.size = U32(h + 24);
    const uint64_t name_size = U16(h + 28);
    const uint64_t extra_size = U16(h + 30);
    const uint64_t comment_size = U16(h + 32);
    entry.disk = U16(h + 34);
    entry.local_offset = U32(h + 42);
    const uint64_t record_size =
        kCentralBytes + name_size + extra_size + comment_size;
    if (record_size > cd_size - pos) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": name, extra field and comment run past the end of the "
          "central directory"));
    }
    entry.name.assign(reinterpret_cast<const char*>(h + kCentralBytes),
                      name_size);
    const std::string named =
        absl::StrCat(path_, ": entry ", QuoteText(entry.name));
    RETURN_IF_ERROR(ApplyZip64Extra(
        h + kCentralBytes + name_size, extra_size, entry.size == 0xffffffff,
        entry.compressed_size == 0xffffffff, entry.local_offset == 0xffffffff,
        entry.disk == 0xffff, entry, named));
    pos += record_size;

    if (entry.disk != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": on disk ", entry.disk,
                       " (multi-disk archives are not supported)"));
    }
    if (entry.flags & 0x1) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": encrypted entries are not supported"));
    }
    if (entry.method != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          named, ": compressed (method ", entry.method,
          "); torch.save stores entries uncompressed and only stored "
          "entries are read (re-save the checkpoint with torch.save)"));
    }
    if (entry.compressed_size != entry.size) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": stored entry with compressed size ",
                       entry.compressed_size, " != size ", entry.size));
    }

    unsigned char local[kLocalBytes];
    if (!FitsWithin(entry.local_offset, kLocalBytes, cd_offset)) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": local header offset ", entry.local_offset,
                       " is not before the central directory at ", cd_offset));
    }
    RETURN_IF_ERROR(file_->ReadAt(entry.local_offset, kLocalBytes, local,
                                  absl::StrCat("the local header of ", named)));
    if (U32(local) != kLocalSignature) {
      return absl::InvalidArgumentError(absl::StrCat(
          named, ": no local header at offset ", entry.local_offset));
    }
    if (U16(local + 8) != entry.method) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": local header says method ", U16(local + 8),
                       ", central directory says ", entry.method));
    }
    const uint64_t local_name_size = U16(local + 26);
    const uint64_t local_extra_size = U16(local + 28);
    const uint64_t name_offset = entry.local_offset + kLocalBytes;
    if (local_name_size != name_size ||
        !FitsWithin(name_offset, name_size, cd_offset)) {
      return absl::InvalidArgumentError(absl::StrCat(
          named, ": local header's name differs from the central directory's"));
    }
    std::string local_name(name_size, '\0');
    RETURN_IF_ERROR(file_->ReadAt(name_offset, name_size, local_name.data(),
                                  absl::StrCat("the local name of ", named)));
    if (local_name != entry.name) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": local header's name ", QuoteText(local_name),
                       " differs from the central directory's"));
    }
    // name_offset + name_size <= cd_offset was checked; the extra field
    // (at most 64 KiB) cannot overflow.
    const uint64_t data_offset = name_offset + name_size + local_extra_size;
    if (!FitsWithin(data_offset, entry.size, cd_offset)) {
      return absl::InvalidArgumentError(absl::StrCat(
          named, ": data (", entry.size, " bytes at offset ", data_offset,
          ") do not end before the central directory at ", cd_offset,
          " (truncated?)"));
    }
    if (index_.contains(entry.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(named, ": appears twice in the central directory"));
    }
    index_.emplace(entry.name, entries_.size());
    entries_.push_back(
        ZipEntry{std::move(entry.name), data_offset, entry.size});
  }
  return absl::OkStatus();
}

const ZipEntry* ZipArchive::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

absl::Status ZipArchive::Read(const ZipEntry& entry, uint64_t offset,
                              uint64_t size, void* out,
                              absl::string_view what) const {
  if (!FitsWithin(offset, size, entry.size)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": ", what, ": ", size, " bytes at offset ", offset,
                     " lie outside entry ", QuoteText(entry.name), " (",
                     entry.size, " bytes)"));
  }
  // entry.data_offset + entry.size <= file size was checked at Open.
  return file_->ReadAt(entry.data_offset + offset, size, out, what);
}

absl::StatusOr<std::string> ZipArchive::ReadAll(const ZipEntry& entry,
                                                uint64_t max_bytes) const {
  if (entry.size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": entry ", QuoteText(entry.name), " of ",
                     entry.size, " bytes exceeds the limit of ", max_bytes));
  }
  std::string bytes(entry.size, '\0');
  RETURN_IF_ERROR(Read(entry, 0, entry.size, bytes.data(),
                       absl::StrCat("entry ", QuoteText(entry.name))));
  return bytes;
}

}  // namespace attnserve::engine
