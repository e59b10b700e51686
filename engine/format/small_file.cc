#include "engine/format/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnserve::engine {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          int64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer,
  // forever, before the regular-file check below could refuse it. (For a
  // regular file the flag changes nothing.)
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    // ENOENT maps to NotFound.
    return absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot open"));
  }
  std::string text;
  absl::Status status;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    status = absl::ErrnoToStatus(errno, absl::StrCat(path, ": cannot stat"));
  } else if (!S_ISREG(st.st_mode)) {
    status =
        absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  } else if (st.st_size > max_bytes) {
    status = absl::InvalidArgumentError(absl::StrCat(
        path, ": ", st.st_size, " bytes is too large (limit ", max_bytes, ")"));
  } else {
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status =
            absl::ErrnoToStatus(errno, absl::StrCat(path, ": read failed"));
        break;
      }
      if (n == 0) break;
      text.append(buffer, static_cast<size_t>(n));
      // The file may grow after fstat; keep the limit honest.
      if (static_cast<int64_t>(text.size()) > max_bytes) {
        status = absl::InvalidArgumentError(absl::StrCat(path, ": too large"));
        break;
      }
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return text;
}

}  // namespace attnserve::engine
