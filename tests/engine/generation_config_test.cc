#include "engine/format/generation_config.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr int kVocab = 100;

GenerationConfig Defaults() {
  GenerationConfig d;
  d.decoder_start_id = 3;
  d.eos_ids = {2};
  d.pad_id = 1;
  return d;
}

absl::StatusOr<GenerationConfig> Parse(const Json& generation,
                                       const Json& config = nullptr) {
  return ParseGenerationConfig(generation.is_null() ? "" : generation.dump(),
                               config.is_null() ? "" : config.dump(),
                               Defaults(), kVocab);
}

TEST(GenerationConfigTest, NoFilesGiveTheDefaults) {
  absl::StatusOr<GenerationConfig> g = Parse(nullptr);
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->decoder_start_id, 3);
  EXPECT_EQ(g->eos_ids, std::vector<int32_t>{2});
  EXPECT_EQ(g->pad_id, 1);
  EXPECT_EQ(g->forced_bos_id, -1);
  EXPECT_TRUE(g->forced_eos_ids.empty());
  EXPECT_EQ(g->max_length, 0);
  EXPECT_EQ(g->num_beams, 1);
  EXPECT_EQ(g->early_stopping, EarlyStopping::kHeuristic);
}

TEST(GenerationConfigTest, ReadsEveryKey) {
  absl::StatusOr<GenerationConfig> g = Parse({
      {"decoder_start_token_id", 5},
      {"eos_token_id", {7, 8}},
      {"pad_token_id", 0},
      {"forced_bos_token_id", 9},
      {"forced_eos_token_id", 7},
      {"bad_words_ids", {{10}, {11, 12}}},
      {"max_length", 30},
      {"min_length", 4},
      {"no_repeat_ngram_size", 3},
      {"num_beams", 5},
      {"length_penalty", 2.0},
      {"early_stopping", "never"},
      // Ignored: sampling only, and bookkeeping.
      {"temperature", 0.7},
      {"top_k", 50},
      {"transformers_version", "4.46.0"},
  });
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->decoder_start_id, 5);
  EXPECT_EQ(g->eos_ids, (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(g->pad_id, 0);
  EXPECT_EQ(g->forced_bos_id, 9);
  EXPECT_EQ(g->forced_eos_ids, std::vector<int32_t>{7});
  EXPECT_EQ(g->bad_words_ids,
            (std::vector<std::vector<int32_t>>{{10}, {11, 12}}));
  EXPECT_EQ(g->max_length, 30);
  EXPECT_EQ(g->min_length, 4);
  EXPECT_EQ(g->no_repeat_ngram_size, 3);
  EXPECT_EQ(g->num_beams, 5);
  EXPECT_EQ(g->length_penalty, 2.0f);
  EXPECT_EQ(g->early_stopping, EarlyStopping::kNever);
}

TEST(GenerationConfigTest, EarlyStoppingTrueAndFalse) {
  EXPECT_EQ(Parse({{"early_stopping", true}})->early_stopping,
            EarlyStopping::kTrue);
  EXPECT_EQ(Parse({{"early_stopping", false}})->early_stopping,
            EarlyStopping::kHeuristic);
}

TEST(GenerationConfigTest, MaxNewTokensSetsMaxLengthCountingTheStartToken) {
  absl::StatusOr<GenerationConfig> g =
      Parse({{"max_length", 50}, {"max_new_tokens", 10}});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->max_length, 11);
}

TEST(GenerationConfigTest, GenerationConfigWinsOverConfigJsonKeyByKey) {
  absl::StatusOr<GenerationConfig> g =
      Parse({{"num_beams", 4}}, {{"num_beams", 6},
                                 {"min_length", 3},
                                 {"eos_token_id", 9},
                                 {"d_model", 512}});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->num_beams, 4);
  EXPECT_EQ(g->min_length, 3);
  EXPECT_EQ(g->eos_ids, std::vector<int32_t>{9});
  EXPECT_EQ(g->pad_id, 1);  // neither file: the default
}

TEST(GenerationConfigTest, NullMeansNotSet) {
  absl::StatusOr<GenerationConfig> g =
      Parse({{"forced_bos_token_id", nullptr}, {"do_sample", nullptr}},
            {{"forced_bos_token_id", 4}});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->forced_bos_id, 4);
}

TEST(GenerationConfigTest, BadWordsThatAreOneEosAreDropped) {
  absl::StatusOr<GenerationConfig> g = Parse(
      {{"eos_token_id", {2, 6}}, {"bad_words_ids", {{2}, {6}, {2, 6}, {5}}}});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->bad_words_ids, (std::vector<std::vector<int32_t>>{{2, 6}, {5}}));
}

TEST(GenerationConfigTest, NeutralValuesOfUnimplementedSettingsAreAccepted) {
  EXPECT_THAT(Parse({{"num_beam_groups", 1},
                     {"diversity_penalty", 0.0},
                     {"begin_suppress_tokens", Json::array()},
                     {"forced_decoder_ids", nullptr},
                     {"guidance_scale", 1},
                     {"typical_p", 1.0},
                     {"epsilon_cutoff", 0.0},
                     {"min_p", nullptr},
                     {"renormalize_logits", false}}),
              IsOk());
}

TEST(GenerationConfigTest, ReadsTheGenerationControls) {
  absl::StatusOr<GenerationConfig> g = Parse({{"do_sample", true},
                                              {"temperature", 0.7},
                                              {"top_k", 0},
                                              {"top_p", 0.9},
                                              {"repetition_penalty", 1.2},
                                              {"min_new_tokens", 3},
                                              {"suppress_tokens", {4, 9}},
                                              {"num_return_sequences", 2}});
  ASSERT_THAT(g, IsOk());
  EXPECT_TRUE(g->do_sample);
  EXPECT_FLOAT_EQ(g->temperature, 0.7f);
  EXPECT_EQ(g->top_k, 0);
  EXPECT_FLOAT_EQ(g->top_p, 0.9f);
  EXPECT_FLOAT_EQ(g->repetition_penalty, 1.2f);
  EXPECT_EQ(g->min_new_tokens, 3);
  EXPECT_EQ(g->suppress_tokens, (std::vector<int32_t>{4, 9}));
  EXPECT_EQ(g->num_return_sequences, 2);
}

TEST(GenerationConfigTest, ControlsDefaultToTransformers) {
  absl::StatusOr<GenerationConfig> g = Parse(nullptr);
  ASSERT_THAT(g, IsOk());
  EXPECT_FALSE(g->do_sample);
  EXPECT_EQ(g->temperature, 1.0f);
  EXPECT_EQ(g->top_k, 50);  // GenerationConfig's default
  EXPECT_EQ(g->top_p, 1.0f);
  EXPECT_EQ(g->repetition_penalty, 1.0f);
  EXPECT_EQ(g->min_new_tokens, 0);
  EXPECT_TRUE(g->suppress_tokens.empty());
  EXPECT_EQ(g->num_return_sequences, 1);
  // config.json's keys count where generation_config.json is silent.
  g = Parse(Json{{"top_k", 7}}, Json{{"top_k", 9}, {"temperature", 2.0}});
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ(g->top_k, 7);
  EXPECT_EQ(g->temperature, 2.0f);
}

TEST(GenerationConfigTest, BeamSamplingIsRefusedNamingBothKeys) {
  EXPECT_THAT(
      Parse({{"do_sample", true}, {"num_beams", 4}}),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"do_sample\""), HasSubstr("\"num_beams\" = 4"),
                     HasSubstr("beam sampling"))));
  EXPECT_THAT(Parse({{"do_sample", false}, {"num_beams", 4}}), IsOk());
}

class GenerationConfigRefusedTest : public ::testing::TestWithParam<Json> {};

TEST_P(GenerationConfigRefusedTest, NamesTheFileAndKey) {
  const Json& patch = GetParam();
  const std::string key = patch.begin().key();
  EXPECT_THAT(Parse(patch), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr("generation_config.json"),
                                           HasSubstr("\"" + key + "\""),
                                           HasSubstr("not implement"))));
  // The same key in config.json is refused too, naming that file.
  EXPECT_THAT(
      Parse(nullptr, patch),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("config.json"), HasSubstr("\"" + key + "\""))));
}

INSTANTIATE_TEST_SUITE_P(
    GenerationConfig, GenerationConfigRefusedTest,
    ::testing::Values(
        Json{{"encoder_repetition_penalty", 0.9}},
        Json{{"encoder_no_repeat_ngram_size", 2}}, Json{{"num_beam_groups", 2}},
        Json{{"diversity_penalty", 0.5}},
        Json{{"sequence_bias", {{"[5]", -1.0}}}},
        Json{{"begin_suppress_tokens", {4}}}, Json{{"typical_p", 0.9}},
        Json{{"epsilon_cutoff", 3e-4}}, Json{{"eta_cutoff", 1e-3}},
        Json{{"min_p", 0.1}}, Json{{"penalty_alpha", 0.6}},
        Json{{"forced_decoder_ids", {{1, 5}}}},
        Json{{"force_words_ids", {{5}}}}, Json{{"constraints", {1}}},
        Json{{"renormalize_logits", true}},
        Json{{"exponential_decay_length_penalty", {5, 1.5}}},
        Json{{"max_time", 1.0}}, Json{{"stop_strings", {"x"}}},
        Json{{"guidance_scale", 3.0}}));

struct Bad {
  Json patch;
  std::string detail;
};

class GenerationConfigBadValueTest : public ::testing::TestWithParam<Bad> {};

TEST_P(GenerationConfigBadValueTest, NamesTheKey) {
  const std::string key = GetParam().patch.begin().key();
  EXPECT_THAT(
      Parse(GetParam().patch),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("generation_config.json: \"" + key + "\""),
                     HasSubstr(GetParam().detail))));
}

INSTANTIATE_TEST_SUITE_P(
    GenerationConfig, GenerationConfigBadValueTest,
    ::testing::Values(
        Bad{{{"eos_token_id", 100}}, "[0, vocab_size)"},
        Bad{{{"eos_token_id", Json::array()}}, "empty"},
        Bad{{{"eos_token_id", "2"}}, "integer"},
        Bad{{{"decoder_start_token_id", -1}}, "[0, vocab_size)"},
        Bad{{{"forced_bos_token_id", 1.5}}, "integer"},
        Bad{{{"bad_words_ids", {1, 2}}}, "non-empty lists"},
        Bad{{{"bad_words_ids", {Json::array()}}}, "non-empty lists"},
        Bad{{{"bad_words_ids", {{1, 200}}}}, "[0, vocab_size)"},
        Bad{{{"max_length", 0}}, "[1, "}, Bad{{{"max_new_tokens", 0}}, "[1, "},
        Bad{{{"num_beams", 0}}, "[1, 1024]"}, Bad{{{"min_length", -1}}, "[0, "},
        Bad{{{"length_penalty", "1"}}, "finite number"},
        Bad{{{"early_stopping", "always"}}, "\"never\""},
        Bad{{{"do_sample", 1}}, "true or false"},
        Bad{{{"temperature", 0}}, "(0, inf)"},
        Bad{{{"temperature", "hot"}}, "finite number"},
        Bad{{{"top_k", -1}}, "[0, "}, Bad{{{"top_p", 0}}, "(0, 1]"},
        Bad{{{"top_p", 1.1}}, "(0, 1]"},
        Bad{{{"repetition_penalty", -1}}, "(0, inf)"},
        Bad{{{"min_new_tokens", -2}}, "[0, "},
        Bad{{{"suppress_tokens", {3, 100}}}, "[0, vocab_size)"},
        Bad{{{"num_return_sequences", 0}}, "[1, "}));

TEST(GenerationConfigTest, MalformedJsonNamesTheFile) {
  EXPECT_THAT(ParseGenerationConfig("{", "", Defaults(), kVocab),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("generation_config.json")));
  EXPECT_THAT(
      ParseGenerationConfig("[1]", "", Defaults(), kVocab),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("JSON object")));
}

}  // namespace
}  // namespace attnserve::engine
