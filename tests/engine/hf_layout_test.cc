// Hugging Face checkpoints as downloaded (engine/format/hf_*_layout.cc): every
// family of tests/data/hf loads with the config and the tensors
// docs/hf-reference.md says, and broken checkpoints fail naming the problem.

#include "engine/format/hf_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/format/model_dir.h"
#include "engine/format/safetensors.h"
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
using ::testing::HasSubstr;
using Json = nlohmann::json;
using testing::NamedTensor;

std::string HfDir(const std::string& family, const std::string& format) {
  return absl::StrCat(ATTNSERVE_TEST_DATA_DIR, "/hf/", family, "/", format);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Json ReadJson(const std::string& path) { return Json::parse(ReadText(path)); }

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

// A stored tensor as float, read straight from the file (not via a layout).
std::vector<float> Stored(const std::string& dir, const std::string& name) {
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  EXPECT_THAT(file, IsOk());
  const TensorInfo* info = (*file)->Find(name);
  EXPECT_NE(info, nullptr) << name;
  if (info == nullptr) return {};
  absl::StatusOr<Tensor> t = (*file)->ReadF32(*info);
  EXPECT_THAT(t, IsOk());
  return Values(*t);
}

// Every tensor of a family's file, as F32, for rewriting it broken.
std::vector<NamedTensor> AllTensors(const std::string& dir) {
  auto file = SafetensorsFile::Open(dir + "/model.safetensors");
  EXPECT_THAT(file, IsOk());
  std::vector<NamedTensor> tensors;
  for (const std::string& name : (*file)->Names()) {
    const TensorInfo* info = (*file)->Find(name);
    absl::StatusOr<Tensor> t = (*file)->ReadF32(*info);
    EXPECT_THAT(t, IsOk());
    tensors.push_back({name, info->shape, Values(*t)});
  }
  return tensors;
}

NamedTensor* Mutable(std::vector<NamedTensor>& tensors,
                     const std::string& name) {
  for (NamedTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

void Erase(std::vector<NamedTensor>& tensors, const std::string& name) {
  const size_t before = tensors.size();
  tensors.erase(
      std::remove_if(tensors.begin(), tensors.end(),
                     [&](const NamedTensor& t) { return t.name == name; }),
      tensors.end());
  EXPECT_EQ(tensors.size(), before - 1) << name;
}

// A copy of tests/data/hf/<family>/safetensors in a temporary directory, with
// its config, generation config and tensors open to edits.
class HfCopy {
 public:
  explicit HfCopy(const std::string& family)
      : source_(HfDir(family, "safetensors")),
        dir_("hf_layout"),
        config_(ReadJson(source_ + "/config.json")),
        generation_(ReadJson(source_ + "/generation_config.json")),
        tensors_(AllTensors(source_)) {}

  Json& config() { return config_; }
  Json& generation() { return generation_; }
  std::vector<NamedTensor>& tensors() { return tensors_; }
  const std::string& path() const { return dir_.path(); }
  std::string File(const std::string& name) const { return dir_.File(name); }

  absl::StatusOr<LoadedModelDir> Load() {
    testing::WriteFile(dir_.File("config.json"), config_.dump());
    testing::WriteFile(dir_.File("generation_config.json"), generation_.dump());
    testing::WriteFile(dir_.File("model.safetensors"),
                       testing::SafetensorsBytes(tensors_));
    return LoadModelDir(dir_.path());
  }

 private:
  std::string source_;
  testing::TempDir dir_;
  Json config_;
  Json generation_;
  std::vector<NamedTensor> tensors_;
};

// --- Every family loads, with the config the mapping gives ------------------

struct Family {
  const char* dir;
  const char* layout;
};
constexpr Family kFamilies[] = {
    {"bart", "hf-bart"},     {"mbart", "hf-mbart"}, {"marian", "hf-marian"},
    {"m2m100", "hf-m2m100"}, {"t5_v1_0", "hf-t5"},  {"t5_v1_1", "hf-t5"},
};

void PrintTo(const Family& f, std::ostream* os) { *os << f.dir; }

class HfFamilyTest : public ::testing::TestWithParam<Family> {};

TEST_P(HfFamilyTest, LoadsWithTheGoldenGenerationSettings) {
  const std::string dir = HfDir(GetParam().dir, "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->layout, GetParam().layout);
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.d_model, 32);
  EXPECT_EQ(c.num_heads, 2);
  EXPECT_EQ(c.encoder_layers, 2);
  EXPECT_EQ(c.decoder_layers, 2);
  EXPECT_EQ(c.ffn_dim, 64);
  EXPECT_EQ(c.vocab_size, 96);
  ASSERT_EQ(loaded->weights.encoder_layers.size(), 2u);
  ASSERT_EQ(loaded->weights.decoder_layers.size(), 2u);

  // golden.json's "generation" is the resolved settings the reference used.
  const Json golden =
      ReadJson(absl::StrCat(ATTNSERVE_TEST_DATA_DIR, "/hf/", GetParam().dir,
                            "/golden.json"))["generation"];
  const GenerationConfig& g = loaded->generation;
  EXPECT_EQ(g.decoder_start_id, golden["decoder_start_token_id"].get<int>());
  EXPECT_EQ(g.eos_ids, golden["eos_token_id"].get<std::vector<int32_t>>());
  EXPECT_EQ(g.pad_id, golden["pad_token_id"].get<int>());
  EXPECT_EQ(g.forced_bos_id, golden["forced_bos_token_id"].is_null()
                                 ? -1
                                 : golden["forced_bos_token_id"].get<int>());
  EXPECT_EQ(g.forced_eos_ids,
            golden["forced_eos_token_id"].is_null()
                ? std::vector<int32_t>{}
                : golden["forced_eos_token_id"].get<std::vector<int32_t>>());
  EXPECT_EQ(
      g.bad_words_ids,
      golden["bad_words_ids"].is_null()
          ? std::vector<std::vector<int32_t>>{}
          : golden["bad_words_ids"].get<std::vector<std::vector<int32_t>>>());
  EXPECT_EQ(g.max_length, golden["max_length"].get<int>());
  EXPECT_EQ(g.min_length, golden["min_length"].get<int>());
  EXPECT_EQ(g.no_repeat_ngram_size, golden["no_repeat_ngram_size"].get<int>());
  EXPECT_EQ(g.num_beams, golden["num_beams"].get<int>());
  EXPECT_FLOAT_EQ(g.length_penalty, golden["length_penalty"].get<float>());
  const Json& early = golden["early_stopping"];
  EXPECT_EQ(g.early_stopping, early.is_string()   ? EarlyStopping::kNever
                              : early.get<bool>() ? EarlyStopping::kTrue
                                                  : EarlyStopping::kHeuristic);
  // The engine's own ids follow the decoding settings.
  EXPECT_EQ(c.eos_id, g.eos_ids[0]);
  EXPECT_EQ(c.decoder_start_id, g.decoder_start_id);
  EXPECT_EQ(c.pad_id, g.pad_id);
}

INSTANTIATE_TEST_SUITE_P(HfLayout, HfFamilyTest, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) {
                           return std::string(info.param.dir);
                         });

TEST(HfLayoutTest, BartMapsLearnedPositionsShiftedByTwoAndTheLogitsBias) {
  const std::string dir = HfDir("bart", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.positional_encoding, PositionalEncoding::kLearned);
  EXPECT_EQ(c.norm_placement, NormPlacement::kPost);
  EXPECT_EQ(c.activation, Activation::kGelu);
  EXPECT_TRUE(c.embedding_norm);
  EXPECT_FALSE(c.scale_embedding);
  EXPECT_TRUE(c.linear_bias);
  EXPECT_TRUE(c.scale_attention);
  EXPECT_EQ(c.max_positions, 32);
  const ModelWeights& w = loaded->weights;
  ASSERT_EQ(w.encoder_positions.shape(), (std::vector<int64_t>{32, 32}));
  const std::vector<float> stored =
      Stored(dir, "model.encoder.embed_positions.weight");  // [34, 32]
  EXPECT_EQ(Values(w.encoder_positions),
            std::vector<float>(stored.begin() + 2 * 32, stored.end()));
  const std::vector<float> dec_stored =
      Stored(dir, "model.decoder.embed_positions.weight");
  EXPECT_EQ(Values(w.decoder_positions),
            std::vector<float>(dec_stored.begin() + 2 * 32, dec_stored.end()));
  ASSERT_EQ(w.lm_head_bias.shape(), (std::vector<int64_t>{96}));
  EXPECT_EQ(Values(w.lm_head_bias), Stored(dir, "final_logits_bias"));
  EXPECT_TRUE(w.shared_embedding);
  EXPECT_EQ(Values(w.encoder_embed), Stored(dir, "model.shared.weight"));
  EXPECT_EQ(Values(w.encoder_embed_norm.beta),
            Stored(dir, "model.encoder.layernorm_embedding.bias"));
  EXPECT_EQ(Values(w.decoder_layers[1].cross_attn.o.weight),
            Stored(dir, "model.decoder.layers.1.encoder_attn.out_proj.weight"));
  EXPECT_EQ(Values(w.decoder_layers[1].ffn_norm.gamma),
            Stored(dir, "model.decoder.layers.1.final_layer_norm.weight"));
  EXPECT_TRUE(w.encoder_final_norm.gamma.empty());
}

TEST(HfLayoutTest, MbartIsPreNormWithFinalNorms) {
  const std::string dir = HfDir("mbart", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->config.norm_placement, NormPlacement::kPre);
  EXPECT_TRUE(loaded->config.scale_embedding);
  EXPECT_EQ(Values(loaded->weights.decoder_final_norm.gamma),
            Stored(dir, "model.decoder.layer_norm.weight"));
  EXPECT_EQ(Values(loaded->weights.encoder_final_norm.beta),
            Stored(dir, "model.encoder.layer_norm.bias"));
}

// Marian's sinusoid, computed as docs/hf-reference.md says, in float64.
std::vector<float> MarianSinusoid(int rows, int d) {
  std::vector<float> table(static_cast<size_t>(rows) * d);
  const int half = (d + 1) / 2;
  for (int p = 0; p < rows; ++p) {
    for (int j = 0; j < d; ++j) {
      const double angle =
          p / std::pow(10000.0, 2.0 * (j / 2) / static_cast<double>(d));
      const int column = j % 2 == 0 ? j / 2 : half + j / 2;
      table[static_cast<size_t>(p) * d + column] =
          static_cast<float>(j % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
  }
  return table;
}

TEST(HfLayoutTest, MarianUsesItsStoredSinusoidTable) {
  const std::string dir = HfDir("marian", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.positional_encoding, PositionalEncoding::kLearned);
  EXPECT_EQ(c.activation, Activation::kSwish);
  EXPECT_TRUE(c.scale_embedding);
  EXPECT_EQ(c.pad_id, 95);
  const std::vector<float> table = Values(loaded->weights.encoder_positions);
  EXPECT_EQ(table, Stored(dir, "model.encoder.embed_positions.weight"));
  // The stored table is the [sin | cos] sinusoid that sinusoidal_concat
  // computes when the table is absent.
  const std::vector<float> expected = MarianSinusoid(32, 32);
  ASSERT_EQ(table.size(), expected.size());
  for (size_t i = 0; i < table.size(); ++i) {
    ASSERT_NEAR(table[i], expected[i], 1e-6) << i;
  }
}

TEST(HfLayoutTest, MarianWithoutTablesComputesTheConcatSinusoid) {
  HfCopy copy("marian");
  Erase(copy.tensors(), "model.encoder.embed_positions.weight");
  Erase(copy.tensors(), "model.decoder.embed_positions.weight");
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->config.positional_encoding,
            PositionalEncoding::kSinusoidalConcat);
  EXPECT_TRUE(loaded->weights.encoder_positions.empty());
}

TEST(HfLayoutTest, MarianWithOneTableOnlyNamesTheMissingOne) {
  HfCopy copy("marian");
  Erase(copy.tensors(), "model.decoder.embed_positions.weight");
  EXPECT_THAT(copy.Load(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"model.decoder.embed_positions.weight\"")));
}

TEST(HfLayoutTest, MarianWithSeparateEmbeddings) {
  HfCopy copy("marian");
  copy.config()["share_encoder_decoder_embeddings"] = false;
  NamedTensor shared = *Mutable(copy.tensors(), "model.shared.weight");
  Erase(copy.tensors(), "model.shared.weight");
  NamedTensor encoder = shared;
  encoder.name = "model.encoder.embed_tokens.weight";
  for (float& v : encoder.values) v *= 2;
  shared.name = "model.decoder.embed_tokens.weight";
  copy.tensors().push_back(encoder);
  copy.tensors().push_back(shared);
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_FALSE(loaded->weights.shared_embedding);
  EXPECT_EQ(Values(loaded->weights.encoder_embed), encoder.values);
  EXPECT_EQ(Values(loaded->weights.decoder_embed), shared.values);
}

TEST(HfLayoutTest, M2m100IsFairseqSinusoidFromF16) {
  const std::string dir = HfDir("m2m100", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.positional_encoding, PositionalEncoding::kSinusoidalFairseq);
  EXPECT_EQ(c.position_offset, 2);  // pad 1 + 1
  EXPECT_EQ(c.activation, Activation::kRelu);
  EXPECT_EQ(c.norm_placement, NormPlacement::kPre);
  EXPECT_TRUE(c.scale_embedding);
  EXPECT_FALSE(c.embedding_norm);
  EXPECT_TRUE(loaded->weights.encoder_positions.empty());
  EXPECT_TRUE(loaded->weights.lm_head_bias.empty());
  // F16 widened exactly: the values of the file.
  EXPECT_EQ(Values(loaded->weights.encoder_layers[0].self_attn.q.weight),
            Stored(dir, "model.encoder.layers.0.self_attn.q_proj.weight"));
}

TEST(HfLayoutTest, M2m100IgnoresItsLegacyPositionBuffersOnly) {
  HfCopy copy("m2m100");
  copy.tensors().push_back(
      {"model.encoder.embed_positions._float_tensor", {1}, {0.0f}});
  copy.tensors().push_back({"model.decoder.embed_positions.weights",
                            {2, 32},
                            std::vector<float>(64)});
  EXPECT_THAT(copy.Load(), IsOk());
  copy.tensors().push_back(
      {"final_logits_bias", {1, 96}, std::vector<float>(96)});
  EXPECT_THAT(copy.Load(), StatusIs(absl::StatusCode::kInvalidArgument,
                                    HasSubstr("unknown tensor "
                                              "\"final_logits_bias\"")));
}

TEST(HfLayoutTest, T5V10IsTiedAndRescaled) {
  const std::string dir = HfDir("t5_v1_0", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  const ModelConfig& c = loaded->config;
  EXPECT_EQ(c.norm_kind, NormKind::kRmsNorm);
  EXPECT_EQ(c.norm_placement, NormPlacement::kPre);
  EXPECT_FALSE(c.linear_bias);
  EXPECT_FALSE(c.scale_attention);
  EXPECT_FALSE(c.scale_embedding);
  EXPECT_FALSE(c.gated_ffn);
  EXPECT_EQ(c.positional_encoding, PositionalEncoding::kNone);
  EXPECT_EQ(c.activation, Activation::kRelu);
  EXPECT_TRUE(c.tie_output_embedding);
  EXPECT_FLOAT_EQ(c.output_scale, 1.0f / std::sqrt(32.0f));
  EXPECT_EQ(c.attention_dim(), 32);
  EXPECT_EQ(c.relative_attention_num_buckets, 32);
  EXPECT_EQ(c.relative_attention_max_distance, 128);
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-6f);
  EXPECT_EQ(c.max_positions, 512);
  const ModelWeights& w = loaded->weights;
  EXPECT_EQ(Values(w.encoder_relative_bias),
            Stored(dir,
                   "encoder.block.0.layer.0.SelfAttention.relative_attention_"
                   "bias.weight"));
  EXPECT_EQ(Values(w.decoder_relative_bias),
            Stored(dir,
                   "decoder.block.0.layer.0.SelfAttention.relative_attention_"
                   "bias.weight"));
  EXPECT_EQ(w.decoder_relative_bias.shape(), (std::vector<int64_t>{32, 2}));
  EXPECT_TRUE(w.encoder_layers[0].self_attn.q.bias.empty());
  EXPECT_TRUE(w.encoder_layers[0].self_attn_norm.beta.empty());
  EXPECT_EQ(Values(w.decoder_layers[1].ffn.fc1.weight),
            Stored(dir, "decoder.block.1.layer.2.DenseReluDense.wi.weight"));
  EXPECT_EQ(Values(w.decoder_layers[1].cross_attn_norm.gamma),
            Stored(dir, "decoder.block.1.layer.1.layer_norm.weight"));
  EXPECT_EQ(Values(w.decoder_final_norm.gamma),
            Stored(dir, "decoder.final_layer_norm.weight"));
  EXPECT_TRUE(w.lm_head_weight.empty());
}

TEST(HfLayoutTest, T5V11IsGatedUntiedAndWiderThanDModel) {
  const std::string dir = HfDir("t5_v1_1", "safetensors");
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir);
  ASSERT_THAT(loaded, IsOk());
  const ModelConfig& c = loaded->config;
  EXPECT_TRUE(c.gated_ffn);
  EXPECT_EQ(c.activation, Activation::kGeluTanh);
  EXPECT_FALSE(c.tie_output_embedding);
  EXPECT_FLOAT_EQ(c.output_scale, 1.0f);
  EXPECT_EQ(c.head_dim(), 24);
  EXPECT_EQ(c.attention_dim(), 48);
  EXPECT_EQ(c.relative_attention_num_buckets, 16);
  EXPECT_EQ(c.relative_attention_max_distance, 12);
  const ModelWeights& w = loaded->weights;
  EXPECT_EQ(w.encoder_layers[0].self_attn.q.weight.shape(),
            (std::vector<int64_t>{48, 32}));
  EXPECT_EQ(w.decoder_layers[0].cross_attn.o.weight.shape(),
            (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(Values(w.encoder_layers[1].ffn.fc1_linear.weight),
            Stored(dir, "encoder.block.1.layer.1.DenseReluDense.wi_1.weight"));
  EXPECT_EQ(Values(w.encoder_layers[1].ffn.fc1.weight),
            Stored(dir, "encoder.block.1.layer.1.DenseReluDense.wi_0.weight"));
  EXPECT_EQ(Values(w.lm_head_weight), Stored(dir, "lm_head.weight"));
  EXPECT_EQ(loaded->generation.eos_ids, (std::vector<int32_t>{1, 7}));
  EXPECT_EQ(loaded->generation.early_stopping, EarlyStopping::kNever);
}

TEST(HfLayoutTest, T5IgnoresTheLegacyCrossAttentionBias) {
  HfCopy copy("t5_v1_0");
  copy.tensors().push_back(
      {"decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
       {32, 2},
       std::vector<float>(64)});
  EXPECT_THAT(copy.Load(), IsOk());
}

// --- Tied groups -------------------------------------------------------------

TEST(HfLayoutTest, TiedAliasesMayAppearInAnySubsetWhenEqual) {
  HfCopy copy("bart");
  NamedTensor alias = *Mutable(copy.tensors(), "model.shared.weight");
  alias.name = "model.decoder.embed_tokens.weight";
  copy.tensors().push_back(alias);
  alias.name = "lm_head.weight";
  copy.tensors().push_back(alias);
  ASSERT_THAT(copy.Load(), IsOk());
  // Only an alias, no model.shared.weight.
  Erase(copy.tensors(), "model.shared.weight");
  Erase(copy.tensors(), "model.decoder.embed_tokens.weight");
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(Values(loaded->weights.encoder_embed), alias.values);
}

TEST(HfLayoutTest, TiedAliasesThatDifferNameBoth) {
  HfCopy copy("t5_v1_0");
  NamedTensor alias = *Mutable(copy.tensors(), "shared.weight");
  alias.name = "encoder.embed_tokens.weight";
  alias.values[5] += 1.0f;
  copy.tensors().push_back(alias);
  EXPECT_THAT(
      copy.Load(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"encoder.embed_tokens.weight\""),
                     HasSubstr("\"shared.weight\""), HasSubstr("differ"))));
}

TEST(HfLayoutTest, UntiedHeadIsNotATiedAlias) {
  HfCopy copy("bart");
  copy.config()["tie_word_embeddings"] = false;
  EXPECT_THAT(copy.Load(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("missing tensor \"lm_head.weight\""),
                             HasSubstr("tie_word_embeddings"))));
  NamedTensor head = *Mutable(copy.tensors(), "model.shared.weight");
  head.name = "lm_head.weight";
  head.values[0] = 42.0f;  // a separate matrix may differ
  copy.tensors().push_back(head);
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->weights.lm_head_weight.data()[0], 42.0f);
}

// --- Broken checkpoints ------------------------------------------------------

TEST(HfLayoutTest, MissingTensorIsNamed) {
  HfCopy copy("mbart");
  Erase(copy.tensors(), "model.decoder.layers.1.fc2.bias");
  EXPECT_THAT(
      copy.Load(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("model.safetensors"),
                     HasSubstr("missing tensor "
                               "\"model.decoder.layers.1.fc2.bias\""))));
}

TEST(HfLayoutTest, ExtraTensorIsNamed) {
  HfCopy copy("t5_v1_1");
  copy.tensors().push_back({"encoder.block.1.layer.1.DenseReluDense.wi.weight",
                            {64, 32},
                            std::vector<float>(64 * 32)});
  EXPECT_THAT(copy.Load(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown tensor "
                                 "\"encoder.block.1.layer.1.DenseReluDense.wi."
                                 "weight\"")));
}

TEST(HfLayoutTest, WrongShapeIsNamed) {
  HfCopy copy("bart");
  NamedTensor* t =
      Mutable(copy.tensors(), "model.encoder.embed_positions.weight");
  t->shape = {32, 32};  // without BART's offset rows
  t->values.resize(32 * 32);
  EXPECT_THAT(
      copy.Load(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"model.encoder.embed_positions.weight\""),
                     HasSubstr("[32, 32]"), HasSubstr("[34, 32]"))));
}

TEST(HfLayoutTest, TruncatedSafetensorsNamesTheFile) {
  const std::string source = HfDir("marian", "safetensors");
  testing::TempDir dir("hf_layout");
  for (const char* name : {"config.json", "generation_config.json"}) {
    testing::WriteFile(dir.File(name), ReadText(source + "/" + name));
  }
  const std::string bytes = ReadText(source + "/model.safetensors");
  testing::WriteFile(dir.File("model.safetensors"),
                     bytes.substr(0, bytes.size() - 100));
  absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()),
              HasSubstr("model.safetensors"));
}

struct BadConfig {
  const char* name;
  const char* family;
  Json patch;
  std::string expected;  // in the message
};

void PrintTo(const BadConfig& bad, std::ostream* os) { *os << bad.name; }

class HfBadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(HfBadConfigTest, FailsNamingTheKey) {
  HfCopy copy(GetParam().family);
  for (auto it = GetParam().patch.begin(); it != GetParam().patch.end(); ++it) {
    if (it.value().is_null()) {
      copy.config().erase(it.key());
    } else {
      copy.config()[it.key()] = it.value();
    }
  }
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  EXPECT_THAT(loaded, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("config.json"),
                                     HasSubstr(GetParam().expected))));
}

INSTANTIATE_TEST_SUITE_P(
    HfLayout, HfBadConfigTest,
    ::testing::Values(
        BadConfig{"unknown_model_type",
                  "bart",
                  {{"model_type", "pegasus"}},
                  "\"model_type\" = \"pegasus\" is not supported"},
        BadConfig{"activation",
                  "bart",
                  {{"activation_function", "tanh"}},
                  "\"activation_function\" = \"tanh\""},
        BadConfig{"feed_forward_proj",
                  "t5_v1_0",
                  {{"feed_forward_proj", "gated-quick_gelu"}},
                  "\"feed_forward_proj\" = \"gated-quick_gelu\""},
        BadConfig{"feed_forward_proj_shape",
                  "t5_v1_0",
                  {{"feed_forward_proj", "very-gated-gelu"}},
                  "\"feed_forward_proj\" = \"very-gated-gelu\""},
        BadConfig{"heads_differ",
                  "mbart",
                  {{"decoder_attention_heads", 4}},
                  "\"decoder_attention_heads\" = 4 differs from "
                  "\"encoder_attention_heads\" = 2"},
        BadConfig{"ffn_differs",
                  "m2m100",
                  {{"decoder_ffn_dim", 128}},
                  "\"decoder_ffn_dim\" = 128 differs"},
        BadConfig{"decoder_vocab",
                  "marian",
                  {{"decoder_vocab_size", 90}},
                  "\"decoder_vocab_size\" = 90 differs"},
        BadConfig{"missing_d_model",
                  "bart",
                  {{"d_model", nullptr}},
                  "missing required key \"d_model\""},
        BadConfig{"missing_d_ff",
                  "t5_v1_1",
                  {{"d_ff", nullptr}},
                  "missing required key \"d_ff\""},
        BadConfig{
            "heads_do_not_divide",
            "bart",
            {{"encoder_attention_heads", 3}, {"decoder_attention_heads", 3}},
            "\"encoder_attention_heads\" must divide \"d_model\""},
        BadConfig{"pad_out_of_vocab",
                  "marian",
                  {{"pad_token_id", nullptr}},
                  "\"pad_token_id\" must be in [0, vocab_size)"},
        BadConfig{"buckets_too_few",
                  "t5_v1_0",
                  {{"relative_attention_num_buckets", 2}},
                  "\"relative_attention_num_buckets\" must be 0 (none) or at "
                  "least 4"},
        BadConfig{"max_distance_too_small",
                  "t5_v1_1",
                  {{"relative_attention_max_distance", 8}},
                  "\"relative_attention_max_distance\" must be greater"},
        BadConfig{"wrong_type",
                  "t5_v1_0",
                  {{"num_heads", "2"}},
                  "\"num_heads\" must be an integer"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HfLayoutTest, ShardedCheckpointIsRefusedNamingTheIndex) {
  const std::string source = HfDir("bart", "safetensors");
  testing::TempDir dir("hf_layout");
  testing::WriteFile(dir.File("config.json"),
                     ReadText(source + "/config.json"));
  testing::WriteFile(dir.File("model.safetensors.index.json"),
                     R"({"weight_map": {}})");
  EXPECT_THAT(LoadModelDir(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model.safetensors.index.json"),
                             HasSubstr("sharded"))));
}

TEST(HfLayoutTest, NoCheckpointFileIsNotFound) {
  const std::string source = HfDir("bart", "safetensors");
  testing::TempDir dir("hf_layout");
  testing::WriteFile(dir.File("config.json"),
                     ReadText(source + "/config.json"));
  EXPECT_THAT(
      LoadModelDir(dir.path()),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("model.safetensors")));
}

// HF prefers model.safetensors: a .bin beside it is never opened (this one is
// not even a zip archive).
TEST(HfLayoutTest, SafetensorsIsPreferredOverPytorchModelBin) {
  HfCopy copy("t5_v1_0");
  testing::WriteFile(copy.File("pytorch_model.bin"), "not a checkpoint");
  EXPECT_THAT(copy.Load(), IsOk());
}

// M2M100's positions depend on the pad id, so decoding with another one would
// be another model.
TEST(HfLayoutTest, M2m100RefusesADifferentDecodingPad) {
  HfCopy copy("m2m100");
  copy.generation()["pad_token_id"] = 3;
  EXPECT_THAT(copy.Load(), StatusIs(absl::StatusCode::kInvalidArgument,
                                    AllOf(HasSubstr("generation_config.json"),
                                          HasSubstr("\"pad_token_id\" = 3"))));
}

TEST(HfLayoutTest, ConfigJsonGenerationKeysAreFallbacks) {
  HfCopy copy("t5_v1_0");
  copy.generation() = Json::object();  // an empty generation_config.json
  copy.config()["num_beams"] = 3;
  copy.config()["no_repeat_ngram_size"] = 2;
  absl::StatusOr<LoadedModelDir> loaded = copy.Load();
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->generation.num_beams, 3);
  EXPECT_EQ(loaded->generation.no_repeat_ngram_size, 2);
  EXPECT_EQ(loaded->generation.max_length, 20);  // transformers' default
  EXPECT_EQ(loaded->generation.eos_ids, std::vector<int32_t>{1});
  EXPECT_EQ(loaded->generation.decoder_start_id, 0);
}

TEST(HfLayoutTest, GenerationConfigRefusalNamesTheKey) {
  HfCopy copy("bart");
  copy.generation()["do_sample"] = true;
  EXPECT_THAT(copy.Load(), StatusIs(absl::StatusCode::kInvalidArgument,
                                    AllOf(HasSubstr("generation_config.json"),
                                          HasSubstr("\"do_sample\""))));
}

// The model_dir fuzzer's seeds of the new layouts (tests/fuzz/make_seeds.py)
// are valid directories, so fuzzing starts from models that load.
TEST(HfLayoutTest, FuzzSeedsOfTheNewLayoutsLoad) {
  const std::string corpus =
      absl::StrCat(ATTNSERVE_TEST_DATA_DIR, "/../fuzz/corpus/model_dir/");
  const char* const kSeparator = "\n--8<--\n";  // tests/fuzz/fuzz_util.h
  const char* const kFiles[] = {"config.json", "model.safetensors", "vocab.txt",
                                "generation_config.json"};
  for (const char* seed :
       {"t5_like_generation", "bart_like", "hf_bart", "hf_marian_no_positions",
        "hf_m2m100_f16", "hf_mbart", "hf_t5_gated_untied", "hf_t5_relu"}) {
    SCOPED_TRACE(seed);
    const std::string blob = ReadText(corpus + seed);
    testing::TempDir dir("hf_seed");
    size_t begin = 0;
    for (size_t part = 0; part < 4 && begin <= blob.size(); ++part) {
      size_t end = blob.find(kSeparator, begin);
      if (part == 3 || end == std::string::npos) end = blob.size();
      testing::WriteFile(dir.File(kFiles[part]),
                         blob.substr(begin, end - begin));
      if (end == blob.size()) break;
      begin = end + std::strlen(kSeparator);
    }
    absl::StatusOr<LoadedModelDir> loaded = LoadModelDir(dir.path());
    EXPECT_THAT(loaded, IsOk());
  }
}

// --- pytorch_model.bin (needs engine/format/torch_checkpoint.cc's reader) ---
// Each family's .bin holds the same weights as its .safetensors (plus tied
// aliases, as older Hub files do), so both load to identical tensors.

void ExpectSame(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(Values(a), Values(b)) << what;
}

class HfBinCheckpointTest : public ::testing::TestWithParam<Family> {};

TEST_P(HfBinCheckpointTest, LoadsTheSameWeightsAsSafetensors) {
  absl::StatusOr<LoadedModelDir> bin =
      LoadModelDir(HfDir(GetParam().dir, "bin"));
  ASSERT_THAT(bin, IsOk());
  absl::StatusOr<LoadedModelDir> st =
      LoadModelDir(HfDir(GetParam().dir, "safetensors"));
  ASSERT_THAT(st, IsOk());
  EXPECT_EQ(bin->layout, st->layout);
  const ModelWeights& a = bin->weights;
  const ModelWeights& b = st->weights;
  EXPECT_EQ(a.shared_embedding, b.shared_embedding);
  ExpectSame(a.encoder_embed, b.encoder_embed, "encoder_embed");
  ExpectSame(a.encoder_positions, b.encoder_positions, "encoder_positions");
  ExpectSame(a.decoder_relative_bias, b.decoder_relative_bias,
             "decoder_relative_bias");
  ExpectSame(a.lm_head_weight, b.lm_head_weight, "lm_head_weight");
  ExpectSame(a.lm_head_bias, b.lm_head_bias, "lm_head_bias");
  ExpectSame(a.decoder_final_norm.gamma, b.decoder_final_norm.gamma,
             "decoder_final_norm");
  for (size_t i = 0; i < a.decoder_layers.size(); ++i) {
    ExpectSame(a.decoder_layers[i].cross_attn.v.weight,
               b.decoder_layers[i].cross_attn.v.weight, "cross_attn.v");
    ExpectSame(a.decoder_layers[i].ffn.fc2.weight,
               b.decoder_layers[i].ffn.fc2.weight, "ffn.fc2");
  }
}

INSTANTIATE_TEST_SUITE_P(HfLayout, HfBinCheckpointTest,
                         ::testing::ValuesIn(kFamilies), [](const auto& info) {
                           return std::string(info.param.dir);
                         });

}  // namespace
}  // namespace attnserve::engine
