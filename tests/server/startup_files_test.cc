// build/attnserve against files that would once have stopped its startup for
// good (a FIFO opened for reading waits for a writer, and SIGTERM was blocked
// while the files were read): now each is refused at once, naming the file.
#include <sys/stat.h>

#include <fstream>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_model_writer.h"
#include "tests/server/attnserve_binary.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::RunAttnserve;
using ::attnserve::server::testing::RunResult;
using ::attnserve::server::testing::TestServerFlags;
using ::attnserve::server::testing::TinyModelDir;
using ::testing::HasSubstr;

TEST(StartupFilesTest, AFifoAsTlsCertificateFailsAtOnce) {
  engine::testing::TempDir dir{"startup_fifo"};
  const std::string fifo = dir.File("cert.pem");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const RunResult result =
      RunAttnserve(TestServerFlags(TinyModelDir(),
                                   {"--tls_cert=" + fifo, "--tls_key=" + fifo}),
                   absl::Seconds(60));
  EXPECT_EQ(result.exit_code, std::optional<int>(2)) << result.output;
  EXPECT_THAT(result.output, HasSubstr(fifo + ": not a regular file"));
}

TEST(StartupFilesTest, AFifoAsConfigFailsAtOnce) {
  engine::testing::TempDir dir{"startup_fifo_model"};
  ASSERT_EQ(mkfifo(dir.File("config.json").c_str(), 0600), 0);
  const RunResult result =
      RunAttnserve(TestServerFlags(dir.path()), absl::Seconds(60));
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.output;
  EXPECT_THAT(result.output, HasSubstr("config.json: not a regular file"));
}

}  // namespace
}  // namespace attnserve::server
