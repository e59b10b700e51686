#pragma once
// Positioned reads (pread) of a regular file, for the readers of large
// untrusted files (safetensors, the zip archives torch.save writes) that read
// parts on demand instead of holding the file in memory. Every read is
// checked against the file's size, and every error names the file and what
// was being read.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::engine {

// a + b <= limit, without overflow (for offsets and sizes a file gives).
inline bool FitsWithin(uint64_t a, uint64_t b, uint64_t limit) {
  return a <= limit && b <= limit - a;
}

// Owns the file descriptor. Thread-compatible; ReadAt is const and may be
// called concurrently (pread keeps no file position).
class FileReader {
 public:
  // Opens `path` read-only. Only a regular file passes; opening never blocks
  // (a FIFO without a writer is refused, not waited for). Errors name the
  // path: "<path>: cannot open: <why>" (NOT_FOUND when it does not exist),
  // "<path>: cannot stat: <why>", "<path>: not a regular file"
  // (INVALID_ARGUMENT).
  static absl::StatusOr<std::unique_ptr<FileReader>> Open(
      const std::string& path);
  ~FileReader();
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  const std::string& path() const { return path_; }
  // Bytes, as of Open.
  uint64_t size() const { return size_; }

  // Reads exactly `size` bytes at `offset` into `out`. `what` names the read
  // in errors ("the header", "tensor \"w\""). DATA_LOSS when the range lies
  // past size() (checked without overflow, before any read): "<path>: <what>
  // (N bytes at offset O) lies past the end of the file (S bytes)"; DATA_LOSS
  // too when the file ends early anyway (truncated since Open): "<path>:
  // unexpected end of file reading <what> (got G of N bytes at offset O; was
  // the file truncated?)"; a failed read is its errno's status, "<path>:
  // reading <what>: <why>".
  absl::Status ReadAt(uint64_t offset, uint64_t size, void* out,
                      absl::string_view what) const;

 private:
  FileReader(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace attnserve::engine
