#include "engine/format/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <string>

#include "engine/format/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::StatusIs;
using ::testing::HasSubstr;

class SmallFileTest : public ::testing::Test {
 protected:
  // Runs `read` on another thread; if it has not returned within a minute
  // (the old open() waited for a FIFO's writer forever), opens the FIFO for
  // writing so that the thread ends, and fails.
  absl::Status ReturnsWithoutWaiting(const std::string& fifo,
                                     std::function<absl::Status()> read) {
    auto result = std::async(std::launch::async, std::move(read));
    if (result.wait_for(std::chrono::seconds(60)) ==
        std::future_status::timeout) {
      const int writer = open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
      ADD_FAILURE() << "reading " << fifo << " blocked";
      absl::Status status = result.get();
      if (writer >= 0) close(writer);
      return status;
    }
    return result.get();
  }
  testing::TempDir dir_{"small_file_test"};
};

TEST_F(SmallFileTest, ReadsARegularFileWhole) {
  std::ofstream(dir_.File("a.txt")) << "hello\n";
  EXPECT_EQ(*ReadSmallFile(dir_.File("a.txt"), 100), "hello\n");
}

TEST_F(SmallFileTest, RefusesWhatIsNotASmallRegularFile) {
  std::ofstream(dir_.File("big.txt")) << std::string(101, 'x');
  EXPECT_THAT(ReadSmallFile(dir_.File("big.txt"), 100),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("101 bytes is too large (limit 100)")));
  EXPECT_THAT(ReadSmallFile("/dev/zero", 100),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
  EXPECT_THAT(ReadSmallFile(dir_.path(), 100),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
  EXPECT_THAT(ReadSmallFile(dir_.File("missing"), 100),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

// A FIFO without a writer: --tls_cert=<fifo>, a vocab_file or config.json
// that is one used to hang startup for good.
TEST_F(SmallFileTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  const std::string fifo = dir_.File("fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(ReturnsWithoutWaiting(
                  fifo, [&] { return ReadSmallFile(fifo, 100).status(); }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
}

TEST_F(SmallFileTest, AFifoAsSafetensorsIsRefusedWithoutWaiting) {
  const std::string fifo = dir_.File("model.safetensors");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(ReturnsWithoutWaiting(
                  fifo, [&] { return SafetensorsFile::Open(fifo).status(); }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
}

}  // namespace
}  // namespace attnserve::engine
