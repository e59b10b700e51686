#include "engine/format/model_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class ModelDirTest : public ::testing::Test {
 protected:
  // Writes TinyConfig's random model under dir_/name with `config_json`.
  std::string WriteModel(const std::string& name,
                         const std::string& config_json) {
    const std::string dir = dir_.File(name);
    EXPECT_THAT(testing::WriteModelDir(
                    dir, config_json,
                    testing::RandomModelTensors(testing::TinyConfig(), {})),
                IsOk());
    return dir;
  }

  std::string WriteModel(const std::string& name) {
    return WriteModel(name, testing::ConfigJson(testing::TinyConfig()));
  }

  testing::TempDir dir_{"model_dir_test"};
};

TEST_F(ModelDirTest, LoadsModelDirectory) {
  const std::string config_json = testing::ConfigJson(testing::TinyConfig());
  const std::string dir = WriteModel("tiny-model", config_json);
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->name, "tiny-model");
  EXPECT_EQ(loaded->config_json, config_json);
  EXPECT_EQ(testing::ConfigJson(loaded->config), config_json);
  EXPECT_THAT(loaded->warnings, IsEmpty());
  EXPECT_TRUE(loaded->weights.shared_embedding);
  EXPECT_EQ(loaded->weights.encoder_embed.shape(),
            (std::vector<int64_t>{23, 16}));
  EXPECT_EQ(loaded->weights.decoder_layers.size(), 2u);
}

TEST_F(ModelDirTest, AttnserveDirWithoutGenerationConfigDecodesAsBefore) {
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(WriteModel("plain"));
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->layout, "attnserve");
  const GenerationConfig& g = loaded->generation;
  EXPECT_EQ(g.decoder_start_id, 1);
  EXPECT_EQ(g.eos_ids, std::vector<int32_t>{2});
  EXPECT_EQ(g.pad_id, 0);
  EXPECT_EQ(g.max_length, 0);  // the server's own limits apply
  EXPECT_EQ(g.num_beams, 1);
  EXPECT_EQ(loaded->config.eos_id, 2);
}

TEST_F(ModelDirTest, AttnserveDirReadsGenerationConfig) {
  const std::string dir = WriteModel("with-generation");
  testing::WriteFile(dir + "/generation_config.json",
                     R"({"eos_token_id": [5, 2], "num_beams": 3,
                         "no_repeat_ngram_size": 2})");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->generation.eos_ids, (std::vector<int32_t>{5, 2}));
  EXPECT_EQ(loaded->generation.num_beams, 3);
  EXPECT_EQ(loaded->generation.no_repeat_ngram_size, 2);
  EXPECT_EQ(loaded->generation.decoder_start_id, 1);  // config's fallback
  EXPECT_EQ(loaded->config.eos_id, 5);                // agrees with eos_ids[0]
}

TEST_F(ModelDirTest, BadGenerationConfigNamesTheDirectoryFileAndKey) {
  const std::string dir = WriteModel("bad-generation");
  testing::WriteFile(dir + "/generation_config.json", R"({"top_k": 5,
                         "do_sample": true, "num_beams": 2})");
  EXPECT_THAT(
      LoadModelDir(dir),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(dir), HasSubstr("generation_config.json"),
                     HasSubstr("\"do_sample\""))));
}

TEST_F(ModelDirTest, ConfigWithArchitectureWinsOverModelType) {
  nlohmann::json j =
      nlohmann::json::parse(testing::ConfigJson(testing::TinyConfig()));
  j["model_type"] = "bart";
  absl::StatusOr<LoadedModelDir> loaded =
      LoadModelDir(WriteModel("both", j.dump()));
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->layout, "attnserve");
}

TEST_F(ModelDirTest, NameIgnoresTrailingSlashes) {
  const std::string dir = WriteModel("slashed");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir + "//");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->name, "slashed");
}

TEST_F(ModelDirTest, UnknownConfigKeysBecomeWarnings) {
  nlohmann::json config =
      nlohmann::json::parse(testing::ConfigJson(testing::TinyConfig()));
  config["dropout"] = 0.1;
  absl::StatusOr<LoadedModelDir> loaded =
      LoadModelDir(WriteModel("with-extras", config.dump()));
  ASSERT_THAT(loaded, IsOk());
  EXPECT_THAT(loaded->warnings, ElementsAre(HasSubstr("\"dropout\"")));
}

TEST_F(ModelDirTest, MissingDirectoryIsNotFound) {
  EXPECT_THAT(
      LoadModelDir(dir_.File("absent")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent/config.json")));
}

TEST_F(ModelDirTest, MissingConfigIsNotFound) {
  const std::string dir = WriteModel("no-config");
  ASSERT_EQ(std::remove((dir + "/config.json").c_str()), 0);
  EXPECT_THAT(LoadModelDir(dir), StatusIs(absl::StatusCode::kNotFound,
                                          HasSubstr(dir + "/config.json")));
}

TEST_F(ModelDirTest, MissingWeightsAreNotFound) {
  const std::string dir = WriteModel("no-weights");
  ASSERT_EQ(std::remove((dir + "/model.safetensors").c_str()), 0);
  EXPECT_THAT(LoadModelDir(dir),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(dir + "/model.safetensors")));
}

TEST_F(ModelDirTest, BadConfigNamesTheFileAndKey) {
  nlohmann::json config =
      nlohmann::json::parse(testing::ConfigJson(testing::TinyConfig()));
  config.erase("num_heads");
  const std::string dir = WriteModel("bad-config", config.dump());
  EXPECT_THAT(LoadModelDir(dir), StatusIs(absl::StatusCode::kInvalidArgument,
                                          AllOf(HasSubstr(dir + "/config.json"),
                                                HasSubstr("\"num_heads\""))));
}

TEST_F(ModelDirTest, ConfigThatDisagreesWithWeightsNamesTheTensor) {
  ModelConfig config = testing::TinyConfig();
  config.ffn_dim = 64;
  const std::string dir = WriteModel("mismatch", testing::ConfigJson(config));
  EXPECT_THAT(LoadModelDir(dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(dir + "/model.safetensors"),
                             HasSubstr("\"encoder.layers.0.ffn.fc1.weight\""),
                             HasSubstr("expected [64, 16]"))));
}

// Files a model's config names (vocab_file, and more with third-party
// checkpoints) must stay inside the model directory, symlinks included.
class ResolveModelFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(mkdir(model_.File("sub").c_str(), 0700), 0);
    std::ofstream(model_.File("vocab.txt")) << "a\n";
    std::ofstream(model_.File("sub/vocab.txt")) << "a\n";
    std::ofstream(outside_.File("secret.txt")) << "secret\n";
  }
  absl::StatusOr<std::string> Resolve(const std::string& name) {
    return ResolveModelFile(model_.path(), "vocab_file", name);
  }
  testing::TempDir model_{"resolve_model"};
  testing::TempDir outside_{"resolve_outside"};
};

TEST_F(ResolveModelFileTest, NamesInsideTheDirectoryResolve) {
  EXPECT_THAT(Resolve("vocab.txt"), IsOk());
  EXPECT_THAT(Resolve("sub/vocab.txt"), IsOk());
  EXPECT_THAT(Resolve("sub/../vocab.txt"), IsOk());
  EXPECT_THAT(Resolve("./missing.txt"), IsOk());  // the read says NOT_FOUND
  ASSERT_EQ(symlink("sub/vocab.txt", model_.File("inner_link").c_str()), 0);
  EXPECT_THAT(Resolve("inner_link"), IsOk());
}

TEST_F(ResolveModelFileTest, NamesLeavingTheDirectoryAreRefusedNamingTheKey) {
  const std::string outside_name =
      outside_.path().substr(outside_.path().rfind('/') + 1);
  ASSERT_EQ(symlink(outside_.File("secret.txt").c_str(),
                    model_.File("out_link").c_str()),
            0);
  ASSERT_EQ(symlink(outside_.path().c_str(), model_.File("out_dir").c_str()),
            0);
  for (const std::string& name :
       {std::string("/etc/passwd"), outside_.File("secret.txt"),
        "../" + outside_name + "/secret.txt", std::string("sub/../../x"),
        std::string("out_link"), std::string("out_dir/secret.txt"),
        std::string(""), std::string("."), std::string("sub/.."),
        std::string("a\0b", 3)}) {
    EXPECT_THAT(Resolve(name), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("\"vocab_file\"")))
        << name;
  }
}

TEST_F(ResolveModelFileTest, LongNamesAreQuotedAndBounded) {
  const absl::Status s = Resolve("/" + std::string(100000, 'z')).status();
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("absolute path")));
  EXPECT_LT(s.message().size(), 400u);
}

}  // namespace
}  // namespace attnserve::engine
