#include "engine/format/file_reader.h"

#include <unistd.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

class FileReaderTest : public ::testing::Test {
 protected:
  // A reader of a file holding `bytes`.
  std::unique_ptr<FileReader> OpenBytes(const std::string& bytes) {
    testing::WriteFile(path_, bytes);
    absl::StatusOr<std::unique_ptr<FileReader>> file = FileReader::Open(path_);
    EXPECT_THAT(file, IsOk());
    return file.ok() ? std::move(*file) : nullptr;
  }

  testing::TempDir dir_{"file_reader_test"};
  const std::string path_ = dir_.File("data.bin");
};

TEST(FitsWithinTest, ChecksTheSumWithoutOverflow) {
  EXPECT_TRUE(FitsWithin(0, 0, 0));
  EXPECT_TRUE(FitsWithin(3, 7, 10));
  EXPECT_FALSE(FitsWithin(3, 8, 10));
  EXPECT_FALSE(FitsWithin(11, 0, 10));
  EXPECT_TRUE(FitsWithin(kMax, 0, kMax));
  // a + b wraps around to 1 in 64 bits.
  EXPECT_FALSE(FitsWithin(2, kMax, 10));
  EXPECT_FALSE(FitsWithin(kMax, 2, 10));
}

TEST_F(FileReaderTest, ReadsBytesAtAnOffset) {
  std::unique_ptr<FileReader> file = OpenBytes("0123456789");
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->path(), path_);
  EXPECT_EQ(file->size(), 10u);
  std::string out(4, '\0');
  ASSERT_THAT(file->ReadAt(3, 4, out.data(), "four bytes"), IsOk());
  EXPECT_EQ(out, "3456");
  ASSERT_THAT(file->ReadAt(6, 4, out.data(), "the last four"), IsOk());
  EXPECT_EQ(out, "6789");
  // An empty read at the very end is inside the file.
  EXPECT_THAT(file->ReadAt(10, 0, out.data(), "nothing"), IsOk());
}

TEST_F(FileReaderTest, ARangePastTheEndNamesTheFileAndTheRead) {
  std::unique_ptr<FileReader> file = OpenBytes("0123456789");
  ASSERT_NE(file, nullptr);
  char out[16];
  EXPECT_THAT(
      file->ReadAt(8, 3, out, "the trailer"),
      StatusIs(absl::StatusCode::kDataLoss,
               AllOf(HasSubstr(path_), HasSubstr("the trailer"),
                     HasSubstr("3 bytes at offset 8"),
                     HasSubstr("past the end of the file (10 bytes)"))));
  // offset + size wraps around in 64 bits; the check must not.
  EXPECT_THAT(file->ReadAt(kMax, 2, out, "the wrapped read"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("the wrapped read"),
                             HasSubstr("past the end of the file"))));
  EXPECT_THAT(file->ReadAt(2, kMax, out, "the huge read"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("past the end of the file")));
}

TEST_F(FileReaderTest, AFileTruncatedAfterOpenIsDataLoss) {
  std::unique_ptr<FileReader> file = OpenBytes("0123456789");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(truncate(path_.c_str(), 5), 0);
  char out[8];
  EXPECT_THAT(
      file->ReadAt(2, 6, out, "the body"),
      StatusIs(absl::StatusCode::kDataLoss,
               AllOf(HasSubstr(path_),
                     HasSubstr("unexpected end of file reading the body"),
                     HasSubstr("got 3 of 6 bytes at offset 2"))));
}

TEST_F(FileReaderTest, RefusesWhatIsNotAnExistingRegularFile) {
  EXPECT_THAT(
      FileReader::Open(dir_.File("missing.bin")),
      StatusIs(absl::StatusCode::kNotFound,
               AllOf(HasSubstr("missing.bin"), HasSubstr("cannot open"))));
  EXPECT_THAT(
      FileReader::Open(dir_.path()),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(dir_.path()), HasSubstr("not a regular file"))));
  EXPECT_THAT(FileReader::Open("/dev/zero"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
}

}  // namespace
}  // namespace attnserve::engine
