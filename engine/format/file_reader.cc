#include "engine/format/file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"

namespace attnserve::engine {

absl::StatusOr<std::unique_ptr<FileReader>> FileReader::Open(
    const std::string& path) {
  // O_NONBLOCK so that a FIFO is refused below instead of waited on here; it
  // changes nothing for the regular file that passes (pread).
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    // ENOENT maps to NotFound.
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  // Closed by the destructor on every return below.
  std::unique_ptr<FileReader> file(new FileReader(path, fd));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot stat"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a regular file"));
  }
  file->size_ = static_cast<uint64_t>(st.st_size);
  return file;
}

FileReader::~FileReader() {
  if (fd_ >= 0) close(fd_);
}

absl::Status FileReader::ReadAt(uint64_t offset, uint64_t size, void* out,
                                absl::string_view what) const {
  if (!FitsWithin(offset, size, size_)) {
    return absl::DataLossError(
        absl::StrCat(path_, ": ", what, " (", size, " bytes at offset ", offset,
                     ") lies past the end of the file (", size_, " bytes)"));
  }
  char* bytes = static_cast<char*>(out);
  uint64_t done = 0;
  while (done < size) {
    // pread transfers at most about 2 GB per call on Linux.
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>(size - done, 1u << 30));
    const ssize_t n =
        pread(fd_, bytes + done, chunk, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno,
                                 absl::StrCat(path_, ": reading ", what));
    }
    if (n == 0) {
      return absl::DataLossError(
          absl::StrCat(path_, ": unexpected end of file reading ", what,
                       " (got ", done, " of ", size, " bytes at offset ",
                       offset, "; was the file truncated?)"));
    }
    done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine
