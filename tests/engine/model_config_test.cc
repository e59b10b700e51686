#include "engine/format/model_config.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

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
using Json = nlohmann::json;

// TinyConfig() with every key written, as a JSON object tests can edit.
Json TinyJson() {
  return Json::parse(testing::ConfigJson(testing::TinyConfig()));
}

// Only the required keys.
Json MinimalJson() {
  return {{"architecture", "transformer-encoder-decoder"},
          {"d_model", 16},
          {"num_heads", 2},
          {"encoder_layers", 2},
          {"decoder_layers", 3},
          {"ffn_dim", 32},
          {"vocab_size", 23}};
}

absl::StatusOr<ModelConfig> Parse(
    const Json& j, std::vector<std::string>* warnings = nullptr) {
  return ParseModelConfig(j.dump(), warnings);
}

TEST(ModelConfigTest, AppliesDefaultsToMinimalConfig) {
  std::vector<std::string> warnings;
  absl::StatusOr<ModelConfig> c = Parse(MinimalJson(), &warnings);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(c->d_model, 16);
  EXPECT_EQ(c->num_heads, 2);
  EXPECT_EQ(c->head_dim(), 8);
  EXPECT_EQ(c->encoder_layers, 2);
  EXPECT_EQ(c->decoder_layers, 3);
  EXPECT_EQ(c->ffn_dim, 32);
  EXPECT_EQ(c->vocab_size, 23);
  EXPECT_EQ(c->max_positions, 1024);
  EXPECT_EQ(c->activation, Activation::kRelu);
  EXPECT_EQ(c->norm_placement, NormPlacement::kPost);
  EXPECT_EQ(c->layer_norm_eps, 1e-5f);
  EXPECT_TRUE(c->scale_embedding);
  EXPECT_EQ(c->positional_encoding, PositionalEncoding::kSinusoidal);
  EXPECT_TRUE(c->tie_output_embedding);
  EXPECT_EQ(c->pad_id, 0);
  EXPECT_EQ(c->bos_id, 1);
  EXPECT_EQ(c->eos_id, 2);
  EXPECT_EQ(c->decoder_start_id, 1);
  EXPECT_FALSE(c->add_eos_to_source);
}

TEST(ModelConfigTest, IssueSixteenKeysDefaultToThePapersLayer) {
  absl::StatusOr<ModelConfig> c = Parse(MinimalJson());
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->attention_head_dim, 0);
  EXPECT_EQ(c->attention_dim(), 16);
  EXPECT_EQ(c->norm_kind, NormKind::kLayerNorm);
  EXPECT_TRUE(c->linear_bias);
  EXPECT_FALSE(c->gated_ffn);
  EXPECT_TRUE(c->scale_attention);
  EXPECT_FALSE(c->embedding_norm);
  EXPECT_EQ(c->position_offset, 0);
  EXPECT_EQ(c->relative_attention_num_buckets, 0);
  EXPECT_EQ(c->relative_attention_max_distance, 128);
  EXPECT_EQ(c->output_scale, 1.0f);
}

TEST(ModelConfigTest, ParsesIssueSixteenKeys) {
  Json j = MinimalJson();
  j["d_model"] = 32;
  j["num_heads"] = 3;  // does not divide 32: fine with attention_head_dim
  j["attention_head_dim"] = 16;
  j["norm_kind"] = "rms_norm";
  j["linear_bias"] = false;
  j["gated_ffn"] = true;
  j["scale_attention"] = false;
  j["embedding_norm"] = true;
  j["positional_encoding"] = "none";
  j["relative_attention_num_buckets"] = 32;
  j["relative_attention_max_distance"] = 64;
  j["output_scale"] = 0.25;
  j["activation"] = "gelu_tanh";
  std::vector<std::string> warnings;
  absl::StatusOr<ModelConfig> c = Parse(j, &warnings);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(c->head_dim(), 16);
  EXPECT_EQ(c->attention_dim(), 48);
  EXPECT_EQ(c->norm_kind, NormKind::kRmsNorm);
  EXPECT_FALSE(c->linear_bias);
  EXPECT_TRUE(c->gated_ffn);
  EXPECT_FALSE(c->scale_attention);
  EXPECT_TRUE(c->embedding_norm);
  EXPECT_EQ(c->positional_encoding, PositionalEncoding::kNone);
  EXPECT_EQ(c->relative_attention_num_buckets, 32);
  EXPECT_EQ(c->relative_attention_max_distance, 64);
  EXPECT_EQ(c->output_scale, 0.25f);
  EXPECT_EQ(c->activation, Activation::kGeluTanh);
  EXPECT_STREQ(NormKindName(c->norm_kind), "rms_norm");
  EXPECT_STREQ(ActivationName(c->activation), "gelu_tanh");
}

TEST(ModelConfigTest, OddDModelIsFineWithoutASinusoid) {
  for (const char* encoding : {"learned", "none"}) {
    SCOPED_TRACE(encoding);
    Json j = MinimalJson();
    j["d_model"] = 15;
    j["num_heads"] = 3;
    j["positional_encoding"] = encoding;
    absl::StatusOr<ModelConfig> c = Parse(j);
    ASSERT_THAT(c, IsOk());
    EXPECT_STREQ(PositionalEncodingName(c->positional_encoding), encoding);
  }
  Json j = MinimalJson();
  j["positional_encoding"] = "sinusoidal_fairseq";
  j["position_offset"] = 2;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->positional_encoding, PositionalEncoding::kSinusoidalFairseq);
  EXPECT_EQ(c->position_offset, 2);
}

TEST(ModelConfigTest, HeadsMustDivideDModelOnlyWithoutAttentionHeadDim) {
  Json j = MinimalJson();
  j["num_heads"] = 3;
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("\"num_heads\" must divide")));
  j["attention_head_dim"] = 5;
  EXPECT_THAT(Parse(j), IsOk());
}

TEST(ModelConfigTest, DecoderStartIdDefaultsToBosId) {
  Json j = MinimalJson();
  j["bos_id"] = 7;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->bos_id, 7);
  EXPECT_EQ(c->decoder_start_id, 7);
}

TEST(ModelConfigTest, ExplicitDecoderStartIdWins) {
  Json j = MinimalJson();
  j["bos_id"] = 7;
  j["decoder_start_id"] = 3;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->decoder_start_id, 3);
}

TEST(ModelConfigTest, ParsesEveryNonDefaultValue) {
  ModelConfig expected = testing::TinyConfig();
  expected.max_positions = 2;
  expected.activation = Activation::kSwish;
  expected.norm_placement = NormPlacement::kPre;
  expected.layer_norm_eps = 1e-6f;
  expected.scale_embedding = false;
  expected.positional_encoding = PositionalEncoding::kSinusoidalConcat;
  expected.tie_output_embedding = false;
  expected.pad_id = 22;
  expected.bos_id = 21;
  expected.eos_id = 20;
  expected.decoder_start_id = 0;
  expected.add_eos_to_source = true;
  std::vector<std::string> warnings;
  absl::StatusOr<ModelConfig> c =
      ParseModelConfig(testing::ConfigJson(expected), &warnings);
  ASSERT_THAT(c, IsOk());
  EXPECT_THAT(warnings, IsEmpty());
  EXPECT_EQ(testing::ConfigJson(*c), testing::ConfigJson(expected));
}

TEST(ModelConfigTest, ParsesGeluActivation) {
  Json j = MinimalJson();
  j["activation"] = "gelu";
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->activation, Activation::kGelu);
}

TEST(ModelConfigTest, AcceptsUpperBounds) {
  Json j = MinimalJson();
  j["d_model"] = 65536;
  j["num_heads"] = 65536;
  j["ffn_dim"] = 65536;
  j["encoder_layers"] = 256;
  j["decoder_layers"] = 256;
  j["vocab_size"] = 1 << 22;
  j["max_positions"] = 1 << 20;
  EXPECT_THAT(Parse(j), IsOk());
}

TEST(ModelConfigTest, IntegerLayerNormEpsIsANumber) {
  Json j = MinimalJson();
  j["layer_norm_eps"] = 1;
  absl::StatusOr<ModelConfig> c = Parse(j);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->layer_norm_eps, 1.0f);
}

TEST(ModelConfigTest, UnknownKeysAreWarningsNotErrors) {
  Json j = MinimalJson();
  j["dropout"] = 0.1;
  j["model_type"] = "marian";
  std::vector<std::string> warnings;
  ASSERT_THAT(Parse(j, &warnings), IsOk());
  // nlohmann::json objects iterate in key order.
  EXPECT_THAT(
      warnings,
      ElementsAre(
          AllOf(HasSubstr("config.json"), HasSubstr("\"dropout\"")),
          AllOf(HasSubstr("config.json"), HasSubstr("\"model_type\""))));
}

TEST(ModelConfigTest, NullWarningsIsAllowed) {
  Json j = MinimalJson();
  j["dropout"] = 0.1;
  EXPECT_THAT(Parse(j, nullptr), IsOk());
}

TEST(ModelConfigTest, RejectsInvalidJson) {
  EXPECT_THAT(ParseModelConfig("{\"d_model\": 16,\n \"num_heads\": }", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("config.json"),
                             HasSubstr("invalid JSON"), HasSubstr("line 2"))));
}

TEST(ModelConfigTest, RejectsEmptyText) {
  EXPECT_THAT(
      ParseModelConfig("", nullptr),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("config.json")));
}

TEST(ModelConfigTest, RejectsNonObjectTopLevel) {
  EXPECT_THAT(
      ParseModelConfig("[1, 2]", nullptr),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("config.json"), HasSubstr("JSON object"))));
}

// nlohmann rejects numbers beyond double range while parsing; the message
// points at it.
TEST(ModelConfigTest, RejectsOverflowingNumber) {
  std::string text = MinimalJson().dump();
  text.back() = ',';
  text += "\"layer_norm_eps\": 1e400}";
  EXPECT_THAT(ParseModelConfig(text, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("config.json"), HasSubstr("1e400"))));
}

// MinimalJson() plus `key`: a million nested arrays. Parsing, quoting and
// freeing such a value must not recurse once per level (the stack would
// overflow).
std::string WithDeepArray(const std::string& key) {
  constexpr int kDepth = 200000;  // json::dump() overflows the stack at 100000
  std::string text = MinimalJson().dump();
  text.back() = ',';
  return text + "\"" + key + "\": " + std::string(kDepth, '[') +
         std::string(kDepth, ']') + "}";
}

TEST(ModelConfigTest, RejectsDeeplyNestedValue) {
  EXPECT_THAT(ParseModelConfig(WithDeepArray("max_positions"), nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"max_positions\"")));
}

TEST(ModelConfigTest, DeeplyNestedUnknownKeyIsAWarning) {
  std::vector<std::string> warnings;
  EXPECT_THAT(ParseModelConfig(WithDeepArray("extra"), &warnings), IsOk());
  EXPECT_THAT(warnings, ElementsAre(HasSubstr("\"extra\"")));
}

TEST(ModelConfigTest, EnumNames) {
  EXPECT_STREQ(ActivationName(Activation::kRelu), "relu");
  EXPECT_STREQ(ActivationName(Activation::kGelu), "gelu");
  EXPECT_STREQ(ActivationName(Activation::kSwish), "swish");
  EXPECT_STREQ(NormPlacementName(NormPlacement::kPost), "post");
  EXPECT_STREQ(NormPlacementName(NormPlacement::kPre), "pre");
  EXPECT_STREQ(PositionalEncodingName(PositionalEncoding::kSinusoidal),
               "sinusoidal");
  EXPECT_STREQ(PositionalEncodingName(PositionalEncoding::kSinusoidalConcat),
               "sinusoidal_concat");
}

// --- A test per missing required key.

class ModelConfigMissingKeyTest : public ::testing::TestWithParam<std::string> {
};

TEST_P(ModelConfigMissingKeyTest, FailsNamingTheKey) {
  Json j = TinyJson();
  ASSERT_EQ(j.erase(GetParam()), 1u);
  EXPECT_THAT(Parse(j),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("config.json"), HasSubstr("missing"),
                             HasSubstr("\"" + GetParam() + "\""))));
}

INSTANTIATE_TEST_SUITE_P(ModelConfig, ModelConfigMissingKeyTest,
                         ::testing::Values("architecture", "d_model",
                                           "num_heads", "encoder_layers",
                                           "decoder_layers", "ffn_dim",
                                           "vocab_size"),
                         [](const auto& info) { return info.param; });

// --- A test per bad or inconsistent value: `patch` is merged into TinyJson();
// the error must name `key` and contain `detail`.

struct BadValue {
  std::string name;
  Json patch;
  std::string key;
  std::string detail;
};

void PrintTo(const BadValue& bad, std::ostream* os) { *os << bad.name; }

class ModelConfigBadValueTest : public ::testing::TestWithParam<BadValue> {};

TEST_P(ModelConfigBadValueTest, FailsNamingTheKey) {
  const BadValue& bad = GetParam();
  Json j = TinyJson();
  j.update(bad.patch);
  EXPECT_THAT(Parse(j), StatusIs(absl::StatusCode::kInvalidArgument,
                                 AllOf(HasSubstr("config.json"),
                                       HasSubstr("\"" + bad.key + "\""),
                                       HasSubstr(bad.detail))));
}

std::vector<BadValue> BadValues() {
  const std::string kInteger = "must be an integer";
  return {
      {"architecture_other",
       {{"architecture", "decoder-only"}},
       "architecture",
       "transformer-encoder-decoder"},
      {"architecture_not_string",
       {{"architecture", 1}},
       "architecture",
       "string"},
      {"d_model_string", {{"d_model", "16"}}, "d_model", kInteger},
      {"d_model_fraction", {{"d_model", 16.5}}, "d_model", kInteger},
      {"d_model_integral_float", {{"d_model", 16.0}}, "d_model", kInteger},
      {"d_model_null", {{"d_model", nullptr}}, "d_model", kInteger},
      {"d_model_bool", {{"d_model", true}}, "d_model", kInteger},
      {"d_model_zero", {{"d_model", 0}}, "d_model", "got 0"},
      {"d_model_negative", {{"d_model", -16}}, "d_model", "got -16"},
      {"d_model_too_large", {{"d_model", 131072}}, "d_model", "65536"},
      {"d_model_beyond_int64", {{"d_model", UINT64_MAX}}, "d_model", kInteger},
      {"d_model_odd", {{"d_model", 15}, {"num_heads", 3}}, "d_model", "even"},
      {"d_model_odd_concat",
       {{"d_model", 15},
        {"num_heads", 5},
        {"positional_encoding", "sinusoidal_concat"}},
       "d_model",
       "sinusoidal_concat"},
      {"num_heads_not_divisor",
       {{"num_heads", 3}},
       "num_heads",
       "(16 % 3 != 0)"},
      {"num_heads_zero", {{"num_heads", 0}}, "num_heads", "got 0"},
      {"num_heads_above_d_model", {{"num_heads", 32}}, "num_heads", "d_model"},
      {"encoder_layers_zero",
       {{"encoder_layers", 0}},
       "encoder_layers",
       "got 0"},
      {"encoder_layers_array",
       {{"encoder_layers", Json::array({2})}},
       "encoder_layers",
       kInteger},
      {"decoder_layers_too_many",
       {{"decoder_layers", 257}},
       "decoder_layers",
       "256"},
      {"ffn_dim_zero", {{"ffn_dim", 0}}, "ffn_dim", "got 0"},
      {"ffn_dim_too_large", {{"ffn_dim", 65537}}, "ffn_dim", "65536"},
      {"vocab_size_zero", {{"vocab_size", 0}}, "vocab_size", "got 0"},
      {"vocab_size_too_large",
       {{"vocab_size", 1 << 23}},
       "vocab_size",
       "4194304"},
      {"max_positions_one", {{"max_positions", 1}}, "max_positions", "got 1"},
      {"max_positions_too_large",
       {{"max_positions", 1 << 21}},
       "max_positions",
       "1048576"},
      {"max_positions_fraction",
       {{"max_positions", 64.5}},
       "max_positions",
       kInteger},
      {"activation_unknown",
       {{"activation", "tanh"}},
       "activation",
       "\"relu\", \"gelu\", \"swish\""},
      {"activation_wrong_case",
       {{"activation", "ReLU"}},
       "activation",
       "\"ReLU\""},
      {"activation_not_string", {{"activation", 1}}, "activation", "got 1"},
      {"norm_placement_unknown",
       {{"norm_placement", "sandwich"}},
       "norm_placement",
       "\"post\", \"pre\""},
      {"positional_encoding_unknown",
       {{"positional_encoding", "rotary"}},
       "positional_encoding",
       "\"sinusoidal\", \"sinusoidal_concat\", \"sinusoidal_fairseq\", "
       "\"learned\", \"none\""},
      {"layer_norm_eps_zero", {{"layer_norm_eps", 0}}, "layer_norm_eps", "> 0"},
      // The issue-16 keys.
      {"attention_head_dim_zero",
       {{"attention_head_dim", 0}},
       "attention_head_dim",
       "[1, 65536]"},
      {"attention_head_dim_too_wide",
       {{"attention_head_dim", 40000}, {"num_heads", 2}},
       "attention_head_dim",
       "<= 65536"},
      {"norm_kind_unknown",
       {{"norm_kind", "batch_norm"}},
       "norm_kind",
       "\"layer_norm\", \"rms_norm\""},
      {"linear_bias_not_bool",
       {{"linear_bias", 1}},
       "linear_bias",
       "true or false"},
      {"gated_ffn_not_bool",
       {{"gated_ffn", "yes"}},
       "gated_ffn",
       "true or false"},
      {"scale_attention_not_bool",
       {{"scale_attention", 0}},
       "scale_attention",
       "true or false"},
      {"embedding_norm_not_bool",
       {{"embedding_norm", nullptr}},
       "embedding_norm",
       "true or false"},
      {"position_offset_negative",
       {{"position_offset", -1}},
       "position_offset",
       "[0, 1048576]"},
      {"position_offset_without_sinusoid",
       {{"position_offset", 2}, {"positional_encoding", "learned"}},
       "position_offset",
       "sinusoidal encodings only"},
      {"buckets_too_many",
       {{"relative_attention_num_buckets", 4097}},
       "relative_attention_num_buckets",
       "[0, 4096]"},
      {"buckets_too_few",
       {{"relative_attention_num_buckets", 3}},
       "relative_attention_num_buckets",
       "at least 4"},
      {"max_distance_zero",
       {{"relative_attention_max_distance", 0}},
       "relative_attention_max_distance",
       "[1, 1048576]"},
      {"max_distance_within_exact_buckets",
       {{"relative_attention_num_buckets", 32},
        {"relative_attention_max_distance", 16}},
       "relative_attention_max_distance",
       "greater than"},
      {"output_scale_zero", {{"output_scale", 0}}, "output_scale", "> 0"},
      {"output_scale_not_number",
       {{"output_scale", "0.5"}},
       "output_scale",
       "number"},
      {"activation_unknown_tanh",
       {{"activation", "gelu_new"}},
       "activation",
       "\"gelu_tanh\""},
      {"d_model_odd_fairseq",
       {{"d_model", 15},
        {"num_heads", 3},
        {"positional_encoding", "sinusoidal_fairseq"}},
       "d_model",
       "even"},
      {"d_model_tiny_fairseq",
       {{"d_model", 2},
        {"num_heads", 1},
        {"positional_encoding", "sinusoidal_fairseq"}},
       "d_model",
       ">= 4"},
      {"layer_norm_eps_negative",
       {{"layer_norm_eps", -1e-5}},
       "layer_norm_eps",
       "> 0"},
      {"layer_norm_eps_underflows_float",
       {{"layer_norm_eps", 1e-60}},
       "layer_norm_eps",
       "> 0"},
      {"layer_norm_eps_overflows_float",
       {{"layer_norm_eps", 1e300}},
       "layer_norm_eps",
       "finite"},
      {"layer_norm_eps_string",
       {{"layer_norm_eps", "1e-5"}},
       "layer_norm_eps",
       "must be a number"},
      {"scale_embedding_string",
       {{"scale_embedding", "true"}},
       "scale_embedding",
       "true or false"},
      {"scale_embedding_integer",
       {{"scale_embedding", 1}},
       "scale_embedding",
       "true or false"},
      {"tie_output_embedding_null",
       {{"tie_output_embedding", nullptr}},
       "tie_output_embedding",
       "true or false"},
      {"add_eos_to_source_string",
       {{"add_eos_to_source", "no"}},
       "add_eos_to_source",
       "true or false"},
      {"pad_id_negative", {{"pad_id", -1}}, "pad_id", "got -1"},
      {"bos_id_equals_vocab",
       {{"bos_id", 23}},
       "bos_id",
       "[0, vocab_size) = [0, 23)"},
      {"eos_id_fraction", {{"eos_id", 2.5}}, "eos_id", kInteger},
      {"decoder_start_id_out_of_vocab",
       {{"decoder_start_id", 100}},
       "decoder_start_id",
       "got 100"},
  };
}

INSTANTIATE_TEST_SUITE_P(ModelConfig, ModelConfigBadValueTest,
                         ::testing::ValuesIn(BadValues()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace attnserve::engine
