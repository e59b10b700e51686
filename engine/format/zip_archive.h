#pragma once
// Bounds-checked reader of the zip archives that torch.save writes: stored
// (uncompressed) entries only, ZIP64 records understood (torch writes them
// for every file, and needs their 64-bit sizes and offsets past 4 GB). The
// central directory is read and checked whole at Open; entry bytes are read
// on demand with pread, so a multi-gigabyte archive is never held in memory.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/file_reader.h"

namespace attnserve::engine {

struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // absolute file offset of the entry's first byte
  uint64_t size = 0;         // bytes (stored: compressed == uncompressed)
};

// Thread-compatible; Read* are const and may be called concurrently (pread).
class ZipArchive {
 public:
  // Validates up front: an end-of-central-directory record that ends exactly
  // at the end of the file (ZIP64 locator and record when present, their
  // 32-bit twins saturated or equal), a single disk, a central directory
  // inside the file, and for every entry: no encryption, method 0 (stored;
  // anything else is an error naming the entry), compressed size equal to
  // uncompressed size, a local header that matches (signature, name, method)
  // and data that ends before the central directory. Duplicate names are
  // refused. Errors name the file and the entry.
  static absl::StatusOr<std::unique_ptr<ZipArchive>> Open(
      const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<ZipEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ZipEntry* Find(absl::string_view name) const;

  // Reads `size` bytes at `offset` inside `entry` (both checked against the
  // entry's size, without overflow). `what` names the read in errors.
  absl::Status Read(const ZipEntry& entry, uint64_t offset, uint64_t size,
                    void* out, absl::string_view what) const;
  // The whole entry, refused when larger than `max_bytes`.
  absl::StatusOr<std::string> ReadAll(const ZipEntry& entry,
                                      uint64_t max_bytes) const;

 private:
  ZipArchive() = default;
  absl::Status Parse();

  std::string path_;
  std::unique_ptr<FileReader> file_;
  std::vector<ZipEntry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // name -> entries_ index
};

}  // namespace attnserve::engine
