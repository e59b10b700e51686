#include "engine/format/torch_checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "engine/format/safetensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

std::string CaseFile(const std::string& name) {
  return std::string(ATTNSERVE_TEST_DATA_DIR) + "/torch_checkpoint/" + name;
}

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

// Bit patterns, so that -0.0 vs 0.0 or a NaN payload would show.
std::vector<uint32_t> Bits(const Tensor& t) {
  std::vector<uint32_t> bits(t.size());
  if (t.size() > 0) std::memcpy(bits.data(), t.data(), t.size() * 4);
  return bits;
}

std::vector<float> ReadValues(const TensorSource& source,
                              const std::string& name) {
  const TensorInfo* info = source.Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return {};
  absl::StatusOr<Tensor> t = source.ReadF32(*info);
  EXPECT_THAT(t, IsOk()) << name;
  return t.ok() ? Values(*t) : std::vector<float>{};
}

// ---- the real checkpoints: every tensor as its safetensors twin has it.

class HfTwinTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfTwinTest, EveryTensorEqualsItsSafetensorsTwin) {
  const std::string dir =
      std::string(ATTNSERVE_TEST_DATA_DIR) + "/hf/" + GetParam();
  auto bin = OpenTorchCheckpoint(dir + "/bin/pytorch_model.bin");
  ASSERT_THAT(bin, IsOk());
  auto st = SafetensorsFile::Open(dir + "/safetensors/model.safetensors");
  ASSERT_THAT(st, IsOk());
  const std::vector<std::string> st_names = (*st)->Names();
  const std::vector<std::string> bin_names = (*bin)->Names();
  ASSERT_FALSE(st_names.empty());
  EXPECT_THAT(bin_names, IsSupersetOf(st_names));
  for (const std::string& name : st_names) {
    const TensorInfo* a = (*bin)->Find(name);
    const TensorInfo* b = (*st)->Find(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_EQ(a->shape, b->shape) << name;
    EXPECT_EQ(a->dtype, b->dtype) << name;
    EXPECT_EQ(a->dtype_name, b->dtype_name) << name;
    absl::StatusOr<Tensor> ta = (*bin)->ReadF32(*a);
    absl::StatusOr<Tensor> tb = (*st)->ReadF32(*b);
    ASSERT_THAT(ta, IsOk());
    ASSERT_THAT(tb, IsOk());
    EXPECT_EQ(Bits(*ta), Bits(*tb)) << name;
  }
  // The .bin files add tied aliases (docs/hf-reference.md): each reads as the
  // shared embedding it aliases.
  const std::string shared = (*st)->Find("shared.weight") != nullptr
                                 ? "shared.weight"
                                 : "model.shared.weight";
  const std::vector<float> shared_values = ReadValues(**st, shared);
  ASSERT_FALSE(shared_values.empty());
  int aliases = 0;
  for (const std::string& name : bin_names) {
    if ((*st)->Find(name) != nullptr) continue;
    EXPECT_TRUE(absl::StrContains(name, "embed_tokens") ||
                name == "lm_head.weight")
        << name << ": an extra tensor that is not a documented alias";
    EXPECT_EQ(ReadValues(**bin, name), shared_values) << name;
    ++aliases;
  }
  EXPECT_GE(aliases, 2);  // encoder and decoder embed_tokens
}

INSTANTIATE_TEST_SUITE_P(Families, HfTwinTest,
                         ::testing::Values("bart", "mbart", "marian", "m2m100",
                                           "t5_v1_0", "t5_v1_1"));

TEST(TorchCheckpointTest, ReadsF16Storages) {
  auto bin = OpenTorchCheckpoint(std::string(ATTNSERVE_TEST_DATA_DIR) +
                                 "/hf/m2m100/bin/pytorch_model.bin");
  ASSERT_THAT(bin, IsOk());
  const TensorInfo* info = (*bin)->Find("model.shared.weight");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, DType::kF16);
  EXPECT_EQ(info->dtype_name, "F16");
}

// ---- valid.bin (scripts/make_torch_checkpoint_cases.py): the formulas
// there, recomputed here.

TEST(TorchCheckpointTest, ReadsEveryDtypeViewAndAlias) {
  const std::string path = CaseFile("valid.bin");
  auto file = OpenTorchCheckpoint(path);
  ASSERT_THAT(file, IsOk());
  const TensorSource& source = **file;
  EXPECT_EQ(source.path(), path);
  EXPECT_THAT(source.Names(),
              ElementsAre("bf16", "empty", "f16", "f32", "f32.alias",
                          "f32.row1", "i64", "scalar"));
  std::vector<float> base;
  for (int i = 0; i < 12; ++i) base.push_back((i - 5) * 0.25f);
  EXPECT_EQ(source.Find("f32")->shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(source.Find("f32")->dtype_name, "F32");
  EXPECT_EQ(ReadValues(source, "f32"), base);
  EXPECT_EQ(ReadValues(source, "f32.alias"), base);
  // base[1]: storage offset 4 in the shared storage.
  EXPECT_EQ(source.Find("f32.row1")->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(ReadValues(source, "f32.row1"),
            std::vector<float>(base.begin() + 4, base.begin() + 8));

  EXPECT_EQ(source.Find("f16")->dtype, DType::kF16);
  EXPECT_EQ(source.Find("f16")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_THAT(ReadValues(source, "f16"),
              ElementsAre(-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f));
  EXPECT_EQ(source.Find("bf16")->dtype, DType::kBF16);
  EXPECT_THAT(ReadValues(source, "bf16"),
              ElementsAre(0.0f, -1.5f, -3.0f, -4.5f));
  EXPECT_EQ(source.Find("scalar")->shape, std::vector<int64_t>{});
  EXPECT_THAT(ReadValues(source, "scalar"), ElementsAre(2.5f));
  EXPECT_EQ(source.Find("empty")->shape, (std::vector<int64_t>{0, 3}));
  EXPECT_THAT(ReadValues(source, "empty"), ElementsAre());

  const TensorInfo* i64 = source.Find("i64");
  ASSERT_NE(i64, nullptr);
  EXPECT_EQ(i64->dtype, DType::kI64);
  EXPECT_THAT(source.ReadF32(*i64),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("\"i64\""),
                             HasSubstr("dtype I64"))));
  // The shape-checked form of TensorSource.
  EXPECT_THAT(source.ReadF32("f32", {4, 3}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("expected [4, 3]")));
  EXPECT_THAT(source.ReadF32("f32", {3, 4}), IsOk());
}

TEST(TorchCheckpointTest, ReadsAModuleStateDictSavedToABuffer) {
  // nn.Linear(3, 2).state_dict(): an OrderedDict with `_metadata` (BUILD),
  // in an archive whose top folder is "archive" (torch.save to a buffer).
  auto file = OpenTorchCheckpoint(CaseFile("valid_state_dict.bin"));
  ASSERT_THAT(file, IsOk());
  EXPECT_THAT((*file)->Names(), ElementsAre("bias", "weight"));
  EXPECT_EQ((*file)->Find("weight")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_THAT(ReadValues(**file, "weight"),
              ElementsAreArray({0.f, 0.125f, 0.25f, 0.375f, 0.5f, 0.625f}));
  EXPECT_THAT(ReadValues(**file, "bias"), ElementsAre(0.5f, -0.5f));
}

TEST(TorchCheckpointTest, RefusesForeignTensorInfo) {
  auto file = OpenTorchCheckpoint(CaseFile("valid.bin"));
  ASSERT_THAT(file, IsOk());
  TensorInfo info = *(*file)->Find("f32");
  info.end += 4;  // one element past what the file says
  EXPECT_THAT((*file)->ReadF32(info),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("does not describe a tensor of this file")));
  info = *(*file)->Find("f32");
  info.name = "nonexistent";
  EXPECT_FALSE((*file)->ReadF32(info).ok());
}

TEST(TorchCheckpointTest, ReadAfterTruncationIsDataLoss) {
  testing::TempDir dir("torch_checkpoint_test");
  const std::string path = dir.File("pytorch_model.bin");
  std::ifstream in(CaseFile("valid.bin"), std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  testing::WriteFile(path, bytes.str());
  auto file = OpenTorchCheckpoint(path);
  ASSERT_THAT(file, IsOk());
  ASSERT_EQ(truncate(path.c_str(), 100), 0);
  EXPECT_THAT((*file)->ReadF32(*(*file)->Find("f16")),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(path), HasSubstr("\"f16\""))));
}

// ---- malformed files: each error names the file and the problem.

struct BadCase {
  std::string file;
  std::vector<std::string> messages;
};

class MalformedTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(MalformedTest, ErrorNamesTheFileAndTheProblem) {
  const BadCase& c = GetParam();
  const std::string path = CaseFile(c.file);
  auto file = OpenTorchCheckpoint(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument)
      << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
  for (const std::string& message : c.messages) {
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(message));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedTest,
    ::testing::Values(
        BadCase{"global_os_system.bin", {"\"os.system\"", "refused"}},
        BadCase{"global_posix_system.bin", {"\"posix.system\"", "refused"}},
        BadCase{"global_builtins_eval.bin", {"\"builtins.eval\"", "refused"}},
        BadCase{"legacy.bin", {"legacy torch.save file", "not the zip format"}},
        BadCase{"compressed.bin",
                {"\"compressed/data.pkl\"", "compressed (method 8)"}},
        BadCase{"truncated.bin", {"not a zip archive", "truncated"}},
        BadCase{"short_storage.bin",
                {"tensor \"w\"", "needs elements [0, 0 + 8)",
                 "\"short_storage/data/0\"", "which has 4"}},
        BadCase{"offset_past_storage.bin",
                {"tensor \"w\"", "needs elements [2, 2 + 3)", "which has 4"}},
        BadCase{"storage_entry_short.bin",
                {"tensor \"w\"", "holds 16 bytes", "says 8 elements"}},
        BadCase{"missing_storage.bin",
                {"tensor \"w\"", "\"missing_storage/data/7\"", "missing"}},
        BadCase{"non_contiguous.bin",
                {"tensor \"w\"", "size (3, 2) with stride (1, 3)",
                 "not contiguous"}}),
    [](const ::testing::TestParamInfo<BadCase>& info) {
      std::string name = info.param.file.substr(0, info.param.file.size() - 4);
      return name;
    });

TEST(TorchCheckpointTest, RefusesAZipThatIsNotACheckpoint) {
  testing::TempDir dir("torch_checkpoint_test");
  // The empty zip: an end of central directory record alone.
  const std::string empty_zip =
      std::string("PK\x05\x06", 4) + std::string(18, '\0');
  const std::string path = dir.File("empty.bin");
  testing::WriteFile(path, empty_zip);
  EXPECT_THAT(OpenTorchCheckpoint(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("no <top>/data.pkl"))));
  EXPECT_THAT(OpenTorchCheckpoint(dir.File("absent.bin")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.bin")));
}

}  // namespace
}  // namespace attnserve::engine
