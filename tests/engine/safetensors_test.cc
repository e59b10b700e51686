#include "engine/format/safetensors.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <ostream>
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
using ::testing::AllOfArray;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::NamedTensor;

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

// Little-endian bytes of 16-bit values, as F16/BF16 data.
std::string U16Bytes(const std::vector<uint16_t>& values) {
  std::string bytes;
  for (uint16_t v : values) {
    bytes.push_back(static_cast<char>(v & 0xff));
    bytes.push_back(static_cast<char>(v >> 8));
  }
  return bytes;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  // Writes `bytes` as the test file and opens it.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenBytes(
      const std::string& bytes) {
    testing::WriteFile(path_, bytes);
    return SafetensorsFile::Open(path_);
  }

  // Opens a file made of `header_json` and `data`; the test fails if it does
  // not open.
  std::unique_ptr<SafetensorsFile> OpenOk(const std::string& header_json,
                                          const std::string& data) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
        OpenBytes(testing::SafetensorsRawBytes(header_json, data));
    EXPECT_THAT(file, IsOk());
    return file.ok() ? std::move(*file) : nullptr;
  }

  // Reads a single-tensor file holding 16-bit `values` as `dtype`.
  std::vector<float> Widen(const std::string& dtype,
                           const std::vector<uint16_t>& values) {
    const std::string header =
        "{\"t\": {\"dtype\": \"" + dtype + "\", \"shape\": [" +
        std::to_string(values.size()) + "], \"data_offsets\": [0, " +
        std::to_string(2 * values.size()) + "]}}";
    std::unique_ptr<SafetensorsFile> file = OpenOk(header, U16Bytes(values));
    if (file == nullptr) return {};
    absl::StatusOr<Tensor> t = file->ReadF32(*file->Find("t"));
    EXPECT_THAT(t, IsOk());
    return t.ok() ? Values(*t) : std::vector<float>{};
  }

  const std::vector<NamedTensor> kTensors = {
      {"b", {2, 3}, {1, -2, 3.5f, 0, 1e-30f, -7}},
      {"a", {4}, {0.25f, 0.5f, 0.75f, 1}},
      {"scalar", {}, {42}},
  };

  testing::TempDir dir_{"safetensors_test"};
  const std::string path_ = dir_.File("model.safetensors");
};

TEST_F(SafetensorsTest, ReadsF32Tensors) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      OpenBytes(testing::SafetensorsBytes(kTensors));
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->path(), path_);
  EXPECT_THAT((*file)->Names(), ElementsAre("a", "b", "scalar"));
  for (const NamedTensor& expected : kTensors) {
    SCOPED_TRACE(expected.name);
    const TensorInfo* info = (*file)->Find(expected.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->name, expected.name);
    EXPECT_EQ(info->dtype, DType::kF32);
    EXPECT_EQ(info->dtype_name, "F32");
    EXPECT_EQ(info->shape, expected.shape);
    absl::StatusOr<Tensor> t = (*file)->ReadF32(expected.name, expected.shape);
    ASSERT_THAT(t, IsOk());
    EXPECT_EQ(t->shape(), expected.shape);
    EXPECT_THAT(Values(*t), ElementsAreArray(expected.values));
  }
  EXPECT_EQ((*file)->Find("c"), nullptr);
}

TEST_F(SafetensorsTest, WriterPadsHeaderToEightBytes) {
  const std::string bytes = testing::SafetensorsBytes(kTensors);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) {
    header_size = (header_size << 8) | static_cast<unsigned char>(bytes[i]);
  }
  EXPECT_EQ(header_size % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_size + (6 + 4 + 1) * sizeof(float));
}

TEST_F(SafetensorsTest, SkipsMetadata) {
  std::unique_ptr<SafetensorsFile> file = OpenOk(
      R"({"__metadata__": {"format": "pt"},
          "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
      std::string(4, '\0'));
  ASSERT_NE(file, nullptr);
  EXPECT_THAT(file->Names(), ElementsAre("x"));
}

TEST_F(SafetensorsTest, ReadsEmptyTensor) {
  std::unique_ptr<SafetensorsFile> file = OpenOk(
      R"({"e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}})",
      "");
  ASSERT_NE(file, nullptr);
  absl::StatusOr<Tensor> t = file->ReadF32("e", {0, 3});
  ASSERT_THAT(t, IsOk());
  EXPECT_TRUE(t->empty());
  EXPECT_EQ(t->shape(), (std::vector<int64_t>{0, 3}));
}

// Tensors may sit back to back, and empty ones anywhere, even together: only
// shared bytes are an overlap.
TEST_F(SafetensorsTest, AcceptsAdjacentAndEmptyTensors) {
  auto file = OpenBytes(testing::SafetensorsRawBytes(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
          "e1": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
          "e2": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
      std::string(12, '\0')));
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->Names().size(), 4u);
}

TEST_F(SafetensorsTest, WidensF16Exactly) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> v =
      Widen("F16", {
                       0x3c00,  // 1
                       0xc000,  // -2
                       0x3555,  // 0.333251953125
                       0x7bff,  // 65504, the largest finite
                       0x0400,  // 2^-14, the smallest normal
                       0x03ff,  // 1023 * 2^-24, largest subnormal
                       0x0001,  // 2^-24, smallest subnormal
                       0x8001,  // -2^-24
                       0x0000,  // +0
                       0x8000,  // -0
                       0x7c00,  // +inf
                       0xfc00,  // -inf
                       0x7e00,  // NaN
                       0xfd01,  // NaN with a payload
                   });
  ASSERT_EQ(v.size(), 14u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 0.333251953125f);
  EXPECT_EQ(v[3], 65504.0f);
  EXPECT_EQ(v[4], std::ldexp(1.0f, -14));
  EXPECT_EQ(v[5], 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(v[6], std::ldexp(1.0f, -24));
  EXPECT_EQ(v[7], -std::ldexp(1.0f, -24));
  EXPECT_EQ(v[8], 0.0f);
  EXPECT_FALSE(std::signbit(v[8]));
  EXPECT_EQ(v[9], 0.0f);
  EXPECT_TRUE(std::signbit(v[9]));
  EXPECT_EQ(v[10], inf);
  EXPECT_EQ(v[11], -inf);
  EXPECT_TRUE(std::isnan(v[12]));
  EXPECT_TRUE(std::isnan(v[13]));
}

TEST_F(SafetensorsTest, WidensBF16Exactly) {
  std::vector<float> v =
      Widen("BF16", {
                        0x3f80,  // 1
                        0xc040,  // -3
                        0x4049,  // 3.140625
                        0x7f7f,  // largest finite: 0x7f7f0000
                        0x0001,  // subnormal 2^-133
                        0x8000,  // -0
                        0xff80,  // -inf
                        0x7fc0,  // NaN
                    });
  ASSERT_EQ(v.size(), 8u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -3.0f);
  EXPECT_EQ(v[2], 3.140625f);
  EXPECT_EQ(v[3], 255 * std::ldexp(1.0f, 120));  // (2 - 2^-7) * 2^127
  EXPECT_EQ(v[4], std::ldexp(1.0f, -133));
  EXPECT_TRUE(std::signbit(v[5]) && v[5] == 0.0f);
  EXPECT_EQ(v[6], -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(v[7]));
}

// More elements than the widening buffer holds (64 Ki), so chunk boundaries are
// crossed.
TEST_F(SafetensorsTest, WidensLargeF16TensorAcrossChunks) {
  constexpr int kElements = 70000;
  std::vector<uint16_t> halves(kElements);
  for (int i = 0; i < kElements; ++i) {
    halves[i] =
        static_cast<uint16_t>(0x3c00 + (i % 1024));  // 1 + (i % 1024) / 1024
  }
  std::vector<float> v = Widen("F16", halves);
  ASSERT_EQ(v.size(), static_cast<size_t>(kElements));
  for (int i = 0; i < kElements; ++i) {
    ASSERT_EQ(v[i], 1.0f + (i % 1024) / 1024.0f) << "element " << i;
  }
}

TEST_F(SafetensorsTest, ReadF32ChecksExpectedShape) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      OpenBytes(testing::SafetensorsBytes(kTensors));
  ASSERT_THAT(file, IsOk());
  EXPECT_THAT((*file)->ReadF32("b", {3, 2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("\"b\""),
                             HasSubstr("[2, 3]"), HasSubstr("[3, 2]"))));
}

TEST_F(SafetensorsTest, ReadF32OfMissingTensorIsNotFound) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      OpenBytes(testing::SafetensorsBytes(kTensors));
  ASSERT_THAT(file, IsOk());
  EXPECT_THAT((*file)->ReadF32("nope", {1}),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(path_), HasSubstr("\"nope\""))));
}

TEST_F(SafetensorsTest, ReadF32RejectsNonFloatDtype) {
  std::unique_ptr<SafetensorsFile> file = OpenOk(
      R"({"ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}})",
      std::string(16, '\0'));
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->Find("ids")->dtype, DType::kI64);
  EXPECT_THAT(file->ReadF32("ids", {2}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"ids\""), HasSubstr("I64"))));
}

TEST_F(SafetensorsTest, ReadF32RejectsTensorInfoOutsideTheFile) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      OpenBytes(testing::SafetensorsBytes(kTensors));
  ASSERT_THAT(file, IsOk());
  TensorInfo forged = *(*file)->Find("a");
  forged.begin += 1 << 20;
  forged.end += 1 << 20;
  EXPECT_THAT((*file)->ReadF32(forged),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"a\"")));
}

TEST_F(SafetensorsTest, FileTruncatedAfterOpenIsDataLoss) {
  const std::string bytes = testing::SafetensorsBytes(kTensors);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = OpenBytes(bytes);
  ASSERT_THAT(file, IsOk());
  ASSERT_EQ(truncate(path_.c_str(), static_cast<off_t>(bytes.size() - 2)), 0);
  // "scalar" is the last tensor in the data section.
  EXPECT_THAT((*file)->ReadF32("scalar", {}),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path_), HasSubstr("\"scalar\""))));
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  EXPECT_THAT(
      SafetensorsFile::Open(dir_.File("absent.safetensors")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.safetensors")));
}

TEST_F(SafetensorsTest, DirectoryIsRejected) {
  EXPECT_THAT(
      SafetensorsFile::Open(dir_.path()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(dir_.path())));
}

TEST_F(SafetensorsTest, EmptyFileIsRejected) {
  EXPECT_THAT(OpenBytes(""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("8-byte"))));
}

TEST_F(SafetensorsTest, FileShorterThanHeaderLengthIsRejected) {
  EXPECT_THAT(OpenBytes(std::string("\x02\0\0\0\0\0\0", 7)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("7 bytes"))));
}

TEST_F(SafetensorsTest, HeaderLengthLargerThanFileIsRejected) {
  std::string bytes = testing::SafetensorsBytes(kTensors);
  bytes[0] = static_cast<char>(0xff);
  bytes[1] = static_cast<char>(0xff);
  EXPECT_THAT(OpenBytes(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("header length 65535"),
                             HasSubstr("larger than the file"))));
}

TEST_F(SafetensorsTest, HeaderLengthWithHighBitsIsRejected) {
  EXPECT_THAT(OpenBytes(std::string(8, '\xff') + "{}"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("header length"))));
}

// A header length within the file but beyond the 100 MB cap is refused before
// anything is allocated. The file is sparse, so this costs no disk.
TEST_F(SafetensorsTest, AbsurdHeaderLengthIsRejected) {
  const uint64_t header_size = (uint64_t{100} << 20) + 1;
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i)
    length[i] = static_cast<char>((header_size >> (8 * i)) & 0xff);
  testing::WriteFile(path_, length);
  ASSERT_EQ(truncate(path_.c_str(), static_cast<off_t>(8 + header_size + 64)),
            0);
  EXPECT_THAT(
      SafetensorsFile::Open(path_),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr("exceeds the limit"))));
}

TEST_F(SafetensorsTest, HeaderThatIsNotJsonIsRejected) {
  EXPECT_THAT(OpenBytes(testing::SafetensorsRawBytes("{\"a\": {", "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("invalid JSON"))));
}

TEST_F(SafetensorsTest, HeaderThatIsNotAnObjectIsRejected) {
  EXPECT_THAT(OpenBytes(testing::SafetensorsRawBytes("[1, 2]", "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("JSON object"))));
}

// Neither parsing, describing nor freeing a hostile, deeply nested header may
// recurse once per level (the stack would overflow).
TEST_F(SafetensorsTest, DeeplyNestedHeaderIsRejected) {
  constexpr int kDepth = 200000;  // json::dump() overflows the stack at 100000
  const std::string header =
      "{\"w\": " + std::string(kDepth, '[') + std::string(kDepth, ']') + "}";
  EXPECT_THAT(OpenBytes(testing::SafetensorsRawBytes(header, "")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"w\""), HasSubstr("[[[[...]]]]"))));
}

// Truncating a valid file anywhere must be an error (the header points past the
// end or is cut short), never a crash or an out-of-bounds read (run under ASan
// to be sure).
TEST_F(SafetensorsTest, TruncationAtEveryLengthFailsCleanly) {
  const std::string bytes = testing::SafetensorsBytes(kTensors);
  for (size_t length = 0; length < bytes.size(); ++length) {
    SCOPED_TRACE(length);
    EXPECT_THAT(OpenBytes(bytes.substr(0, length)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path_)));
  }
}

// Corrupting any header byte may yield an error or (e.g. inside a name) a
// different valid file, but every tensor that opens must read within bounds.
TEST_F(SafetensorsTest, CorruptedHeaderBytesNeverCrash) {
  const std::string bytes = testing::SafetensorsBytes(kTensors);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (char replacement : {'\0', '"', '9', '-', '}', ']', '\xff'}) {
      std::string corrupt = bytes;
      corrupt[i] = replacement;
      absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
          OpenBytes(corrupt);
      if (!file.ok()) continue;
      for (const std::string& name : (*file)->Names()) {
        absl::StatusOr<Tensor> t = (*file)->ReadF32(*(*file)->Find(name));
        if (t.ok()) {
          EXPECT_EQ(t->shape(), (*file)->Find(name)->shape);
        }
      }
    }
  }
}

// --- A test per malformed header entry: the error names the file, the tensor
// and the problem.

struct BadHeader {
  std::string name;
  std::string header;
  size_t data_size;  // bytes of zeros after the header
  std::vector<std::string> details;
};

void PrintTo(const BadHeader& bad, std::ostream* os) { *os << bad.header; }

class SafetensorsBadHeaderTest
    : public SafetensorsTest,
      public ::testing::WithParamInterface<BadHeader> {};

TEST_P(SafetensorsBadHeaderTest, FailsNamingTheTensor) {
  const BadHeader& bad = GetParam();
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      OpenBytes(testing::SafetensorsRawBytes(bad.header,
                                             std::string(bad.data_size, '\0')));
  std::vector<::testing::Matcher<std::string>> parts = {HasSubstr(path_),
                                                        HasSubstr("\"w\"")};
  for (const std::string& detail : bad.details)
    parts.push_back(HasSubstr(detail));
  EXPECT_THAT(file,
              StatusIs(absl::StatusCode::kInvalidArgument, AllOfArray(parts)));
}

// `{"w": <entry>}` with `ok` (a valid F32 [2] entry) used before "w" to show
// that one bad entry fails the whole file.
std::string Header(const std::string& entry) {
  return R"({"ok": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "w": )" +
         entry + "}";
}

std::vector<BadHeader> BadHeaders() {
  return {
      {"entry_not_object", Header("[1]"), 8, {"JSON object"}},
      {"missing_dtype",
       Header(R"({"shape": [1], "data_offsets": [8, 12]})"),
       12,
       {"missing \"dtype\""}},
      {"dtype_not_string",
       Header(R"({"dtype": 4, "shape": [1], "data_offsets": [8, 12]})"),
       12,
       {"\"dtype\" must be a string"}},
      {"unknown_dtype",
       Header(R"({"dtype": "F8_E4M3", "shape": [1], "data_offsets": [8, 9]})"),
       9,
       {"unknown dtype", "F8_E4M3"}},
      {"lowercase_dtype",
       Header(R"({"dtype": "f32", "shape": [1], "data_offsets": [8, 12]})"),
       12,
       {"unknown dtype", "f32"}},
      {"missing_shape",
       Header(R"({"dtype": "F32", "data_offsets": [8, 12]})"),
       12,
       {"missing \"shape\""}},
      {"shape_not_array",
       Header(R"({"dtype": "F32", "shape": 1, "data_offsets": [8, 12]})"),
       12,
       {"\"shape\" must be an array"}},
      {"shape_fraction",
       Header(R"({"dtype": "F32", "shape": [1.5], "data_offsets": [8, 12]})"),
       12,
       {"\"shape\" must hold integers"}},
      {"shape_string",
       Header(R"({"dtype": "F32", "shape": ["1"], "data_offsets": [8, 12]})"),
       12,
       {"\"shape\" must hold integers"}},
      {"negative_dim",
       Header(R"({"dtype": "F32", "shape": [-1, 4], "data_offsets": [8, 12]})"),
       12,
       {"negative dimension"}},
      {"element_count_overflow",
       Header(R"({"dtype": "U8", "shape": [4294967296, 4294967296, 2],
                  "data_offsets": [8, 8]})"),
       8,
       {"element count", "overflows"}},
      {"byte_size_overflow",
       Header(R"({"dtype": "F64", "shape": [4611686018427387904],
                  "data_offsets": [8, 8]})"),
       8,
       {"byte size", "overflows"}},
      // Found while fuzzing the reader (regression input
      // tests/fuzz/regressions/safetensors/shape_partial_product_overflow): the
      // total is 0, but Tensor's int64 product overflowed (UB) on the way.
      {"element_count_partial_product_overflow",
       Header(R"({"dtype": "F32", "shape": [4294967296, 2147483648, 0],
                  "data_offsets": [8, 8]})"),
       8,
       {"element count", "overflows"}},
      {"missing_data_offsets",
       Header(R"({"dtype": "F32", "shape": [1]})"),
       12,
       {"missing \"data_offsets\""}},
      {"data_offsets_one_value",
       Header(R"({"dtype": "F32", "shape": [1], "data_offsets": [8]})"),
       12,
       {"\"data_offsets\" must be [begin, end]"}},
      {"data_offsets_negative",
       Header(R"({"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]})"),
       12,
       {"\"data_offsets\" must be [begin, end]"}},
      {"data_offsets_strings",
       Header(R"({"dtype": "F32", "shape": [1], "data_offsets": ["8", "12"]})"),
       12,
       {"\"data_offsets\" must be [begin, end]"}},
      {"data_offsets_past_end",
       Header(R"({"dtype": "F32", "shape": [4], "data_offsets": [8, 24]})"),
       20,
       {"end 24", "past the end", "20 bytes"}},
      {"data_offsets_far_past_end",
       Header(R"({"dtype": "F32", "shape": [1],
                  "data_offsets": [18446744073709551612, 18446744073709551615]})"),
       12,
       {"past the end"}},
      {"overlapping_ranges",
       Header(R"({"dtype": "F32", "shape": [2], "data_offsets": [4, 12]})"),
       12,
       {"\"ok\"", "overlap"}},
      {"same_range",
       Header(R"({"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})"),
       8,
       {"\"ok\"", "overlap"}},
      {"begin_after_end",
       Header(R"({"dtype": "F32", "shape": [1], "data_offsets": [12, 8]})"),
       12,
       {"begin 12 is greater than end 8"}},
      {"size_mismatch",
       Header(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 20]})"),
       20,
       {"span 12 bytes", "needs 24"}},
      {"size_mismatch_dtype",
       Header(R"({"dtype": "F16", "shape": [3], "data_offsets": [8, 20]})"),
       20,
       {"span 12 bytes", "needs 6"}},
  };
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsBadHeaderTest,
                         ::testing::ValuesIn(BadHeaders()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace attnserve::engine
