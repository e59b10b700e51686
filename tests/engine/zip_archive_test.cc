#include "engine/format/zip_archive.h"

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// ---- A small zip writer, with knobs for the malformations under test.

void Put16(std::string& s, uint64_t v) {
  for (int i = 0; i < 2; ++i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void Put32(std::string& s, uint64_t v) {
  for (int i = 0; i < 4; ++i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void Put64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct TestEntry {
  std::string name;
  std::string data;
  uint16_t method = 0;
  uint16_t flags = 0;
  std::string local_name;  // empty: the same as name
};

struct ZipOptions {
  // Every size and offset saturated in the 32-bit fields and given in ZIP64
  // extra fields, and a ZIP64 end record with its locator (torch >4 GB).
  bool zip64 = false;
  // A ZIP64 record and locator beside ordinary 32-bit fields (what torch
  // 1.13 writes for every file).
  bool zip64_record = false;
  // Added to the ZIP64 record's central directory offset (a disagreement
  // with the 32-bit field).
  uint64_t zip64_offset_skew = 0;
  std::string comment;
};

std::string MakeZip(const std::vector<TestEntry>& entries,
                    const ZipOptions& o = {}) {
  std::string out;
  std::vector<uint64_t> offsets;
  for (const TestEntry& e : entries) {
    offsets.push_back(out.size());
    const std::string& local_name =
        e.local_name.empty() ? e.name : e.local_name;
    Put32(out, 0x04034b50);
    Put16(out, 20);
    Put16(out, e.flags);
    Put16(out, e.method);
    Put32(out, 0);  // time, date
    Put32(out, 0);  // crc (not checked)
    Put32(out, e.data.size());
    Put32(out, e.data.size());
    Put16(out, local_name.size());
    Put16(out, 4);  // an extra field of padding, as torch aligns its data
    out += local_name;
    Put16(out, 0xcafe);
    Put16(out, 0);
    out += e.data;
  }
  const uint64_t cd_offset = out.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    const TestEntry& e = entries[i];
    std::string extra;
    if (o.zip64) {
      Put16(extra, 0x0001);
      Put16(extra, 24);
      Put64(extra, e.data.size());
      Put64(extra, e.data.size());
      Put64(extra, offsets[i]);
    }
    const uint64_t sat = 0xffffffff;
    Put32(out, 0x02014b50);
    Put16(out, 45);
    Put16(out, 45);
    Put16(out, e.flags);
    Put16(out, e.method);
    Put32(out, 0);
    Put32(out, 0);
    Put32(out, o.zip64 ? sat : e.data.size());
    Put32(out, o.zip64 ? sat : e.data.size());
    Put16(out, e.name.size());
    Put16(out, extra.size());
    Put16(out, 0);  // comment
    Put16(out, 0);  // disk
    Put16(out, 0);  // internal attributes
    Put32(out, 0);  // external attributes
    Put32(out, o.zip64 ? sat : offsets[i]);
    out += e.name;
    out += extra;
  }
  const uint64_t cd_size = out.size() - cd_offset;
  if (o.zip64 || o.zip64_record) {
    const uint64_t record_offset = out.size();
    Put32(out, 0x06064b50);
    Put64(out, 44);
    Put16(out, 45);
    Put16(out, 45);
    Put32(out, 0);
    Put32(out, 0);
    Put64(out, entries.size());
    Put64(out, entries.size());
    Put64(out, cd_size);
    Put64(out, cd_offset + o.zip64_offset_skew);
    Put32(out, 0x07064b50);
    Put32(out, 0);
    Put64(out, record_offset);
    Put32(out, 1);
  }
  Put32(out, 0x06054b50);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, o.zip64 ? 0xffff : entries.size());
  Put16(out, o.zip64 ? 0xffff : entries.size());
  Put32(out, o.zip64 ? 0xffffffff : cd_size);
  Put32(out, o.zip64 ? 0xffffffff : cd_offset);
  Put16(out, o.comment.size());
  out += o.comment;
  return out;
}

ZipOptions Zip64Record(uint64_t skew = 0) {
  ZipOptions o;
  o.zip64_record = true;
  o.zip64_offset_skew = skew;
  return o;
}

const std::vector<TestEntry> kEntries = {
    {"top/data.pkl", "pickle bytes", 0, 0, ""},
    {"top/data/0", std::string("\x00\x01\x02\x03\x04\x05\x06\x07", 8), 0, 0,
     ""},
    {"top/empty", "", 0, 0, ""},
};

class ZipArchiveTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<ZipArchive>> OpenBytes(
      const std::string& bytes) {
    testing::WriteFile(path_, bytes);
    return ZipArchive::Open(path_);
  }

  void ExpectEntries(const ZipArchive& zip) {
    ASSERT_EQ(zip.entries().size(), kEntries.size());
    for (const TestEntry& e : kEntries) {
      const ZipEntry* entry = zip.Find(e.name);
      ASSERT_NE(entry, nullptr) << e.name;
      EXPECT_EQ(entry->size, e.data.size());
      absl::StatusOr<std::string> data = zip.ReadAll(*entry, 1 << 20);
      ASSERT_THAT(data, IsOk());
      EXPECT_EQ(*data, e.data);
    }
  }

  testing::TempDir dir_{"zip_archive_test"};
  const std::string path_ = dir_.File("test.zip");
};

TEST_F(ZipArchiveTest, ReadsStoredEntries) {
  auto zip = OpenBytes(MakeZip(kEntries));
  ASSERT_THAT(zip, IsOk());
  ExpectEntries(**zip);
  EXPECT_EQ((*zip)->Find("top/missing"), nullptr);
  EXPECT_EQ((*zip)->path(), path_);

  const ZipEntry& entry = *(*zip)->Find("top/data/0");
  char part[3];
  ASSERT_THAT((*zip)->Read(entry, 5, 3, part, "part"), IsOk());
  EXPECT_EQ(std::string(part, 3), std::string("\x05\x06\x07", 3));
  EXPECT_THAT((*zip)->Read(entry, 6, 3, part, "past the end"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("past the end"),
                             HasSubstr("\"top/data/0\""))));
  // An offset near 2^64 must not wrap around into the entry.
  EXPECT_FALSE((*zip)->Read(entry, ~uint64_t{0} - 1, 3, part, "wrap").ok());
  EXPECT_THAT((*zip)->ReadAll(entry, 7),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("exceeds the limit of 7")));
}

TEST_F(ZipArchiveTest, ReadsZip64RecordsAndSaturatedFields) {
  auto with_record = OpenBytes(MakeZip(kEntries, Zip64Record()));
  ASSERT_THAT(with_record, IsOk());
  ExpectEntries(**with_record);
  ZipOptions saturate;
  saturate.zip64 = true;
  auto saturated = OpenBytes(MakeZip(kEntries, saturate));
  ASSERT_THAT(saturated, IsOk());
  ExpectEntries(**saturated);
}

TEST_F(ZipArchiveTest, FindsTheEndRecordBehindAComment) {
  // The comment holds a fake end record signature, which must not be taken
  // for the real one.
  const std::string comment =
      std::string("PK\x05\x06", 4) + std::string(40, 'c');
  ZipOptions with_comment;
  with_comment.comment = comment;
  auto zip = OpenBytes(MakeZip(kEntries, with_comment));
  ASSERT_THAT(zip, IsOk());
  ExpectEntries(**zip);
}

TEST_F(ZipArchiveTest, FindsTheZip64LocatorBeforeTheLongestComment) {
  // With a 64 KiB comment the end record is the first byte of the scanned
  // tail, and the ZIP64 locator lies before it, outside that tail.
  ZipOptions o = Zip64Record();
  o.comment = std::string(0xffff, 'c');
  auto zip = OpenBytes(MakeZip(kEntries, o));
  ASSERT_THAT(zip, IsOk());
  ExpectEntries(**zip);
  // The same with a disagreeing ZIP64 record shows the locator was read.
  o.zip64_offset_skew = 1;
  EXPECT_THAT(
      OpenBytes(MakeZip(kEntries, o)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
}

TEST_F(ZipArchiveTest, ReadsARealTorchFile) {
  auto zip = ZipArchive::Open(std::string(ATTNSERVE_TEST_DATA_DIR) +
                              "/hf/bart/bin/pytorch_model.bin");
  ASSERT_THAT(zip, IsOk());
  const ZipEntry* version = (*zip)->Find("pytorch_model/version");
  ASSERT_NE(version, nullptr);
  absl::StatusOr<std::string> version_text = (*zip)->ReadAll(*version, 16);
  ASSERT_THAT(version_text, IsOk());
  EXPECT_EQ(*version_text, "3\n");
  const ZipEntry* pickle = (*zip)->Find("pytorch_model/data.pkl");
  ASSERT_NE(pickle, nullptr);
  absl::StatusOr<std::string> bytes = (*zip)->ReadAll(*pickle, 1 << 20);
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(bytes->substr(0, 2), "\x80\x02");  // PROTO 2
  EXPECT_EQ(bytes->back(), '.');               // STOP
}

TEST_F(ZipArchiveTest, RefusesWhatIsNotAZip) {
  EXPECT_THAT(OpenBytes(""), StatusIs(absl::StatusCode::kInvalidArgument,
                                      AllOf(HasSubstr(path_),
                                            HasSubstr("not a zip archive"))));
  EXPECT_THAT(
      OpenBytes(std::string(1000, 'x')),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr("not a zip archive"))));
  EXPECT_THAT(ZipArchive::Open(dir_.File("missing.zip")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.zip")));
  EXPECT_THAT(ZipArchive::Open(dir_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
}

TEST_F(ZipArchiveTest, EveryTruncationIsAnError) {
  const std::string zip = MakeZip(kEntries, Zip64Record());
  for (size_t n = 0; n < zip.size(); ++n) {
    EXPECT_FALSE(OpenBytes(zip.substr(0, n)).ok()) << "prefix of " << n;
  }
}

TEST_F(ZipArchiveTest, RefusesACompressedEntryNamingIt) {
  std::vector<TestEntry> entries = kEntries;
  entries[1].method = 8;  // deflate
  EXPECT_THAT(OpenBytes(MakeZip(entries)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("\"top/data/0\""),
                             HasSubstr("compressed (method 8)"))));
}

TEST_F(ZipArchiveTest, RefusesAnEncryptedEntry) {
  std::vector<TestEntry> entries = kEntries;
  entries[0].flags = 1;
  EXPECT_THAT(
      OpenBytes(MakeZip(entries)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"top/data.pkl\""), HasSubstr("encrypted"))));
}

TEST_F(ZipArchiveTest, RefusesALocalHeaderThatDisagrees) {
  std::vector<TestEntry> entries = kEntries;
  entries[1].local_name = "top/data/9";
  EXPECT_THAT(OpenBytes(MakeZip(entries)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"top/data/0\""),
                             HasSubstr("local header's name"))));
}

TEST_F(ZipArchiveTest, RefusesDuplicateNames) {
  std::vector<TestEntry> entries = kEntries;
  entries.push_back(entries[0]);
  EXPECT_THAT(OpenBytes(MakeZip(entries)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"top/data.pkl\""),
                             HasSubstr("appears twice"))));
}

TEST_F(ZipArchiveTest, RefusesDataThatOverrunTheCentralDirectory) {
  std::string zip = MakeZip(kEntries);
  // Grow entry 1's size in the central directory (both size fields).
  const size_t cd = zip.find(std::string("PK\x01\x02", 4));
  const size_t second = zip.find(std::string("PK\x01\x02", 4), cd + 4);
  zip[second + 20] = zip[second + 24] = 100;
  EXPECT_THAT(OpenBytes(zip),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"top/data/0\""),
                             HasSubstr("do not end before the central"))));
}

TEST_F(ZipArchiveTest, RefusesDisagreeingZip64Records) {
  EXPECT_THAT(
      OpenBytes(MakeZip(kEntries, Zip64Record(1))),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("disagree")));
}

TEST_F(ZipArchiveTest, RefusesSaturatedFieldsWithoutZip64) {
  std::string zip = MakeZip(kEntries);
  // Saturate the end record's central directory offset.
  const size_t eocd = zip.rfind(std::string("PK\x05\x06", 4));
  for (int i = 16; i < 20; ++i) zip[eocd + i] = '\xff';
  EXPECT_THAT(OpenBytes(zip), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("no ZIP64 locator")));
}

TEST_F(ZipArchiveTest, RefusesAnEntryCountTheDirectoryCannotHold) {
  std::string zip = MakeZip(kEntries);
  const size_t eocd = zip.rfind(std::string("PK\x05\x06", 4));
  zip[eocd + 8] = zip[eocd + 10] = '\x7f';
  EXPECT_THAT(OpenBytes(zip), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("cannot hold 127 entries")));
}

TEST_F(ZipArchiveTest, ReadAfterTruncationIsDataLoss) {
  auto zip = OpenBytes(MakeZip(kEntries));
  ASSERT_THAT(zip, IsOk());
  ASSERT_EQ(truncate(path_.c_str(), 40), 0);
  EXPECT_THAT((*zip)->ReadAll(*(*zip)->Find("top/data/0"), 1 << 20),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path_), HasSubstr("truncated"))));
}

}  // namespace
}  // namespace attnserve::engine
