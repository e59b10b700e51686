// GenerateRequest's source_language, target_language and target_prefix
// (server/convert.h) with the Hugging Face tokenizer directories of
// tests/data/hf_tokenizers/, whose ids golden.json holds
// (scripts/make_hf_tokenizer_golden.py).

#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/convert.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<Tokenizer> Load(const std::string& family) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadTokenizer(std::string(ATTNSERVE_SOURCE_DIR) +
                    "/tests/data/hf_tokenizers/" + family);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_NE(tokenizer->get(), nullptr) << family;
  return tokenizer.ok() ? *std::move(tokenizer) : nullptr;
}

// Large enough for every family's tokenizer (config.json's vocab_size).
ModelInfo Model() {
  ModelInfo model;
  model.name = "hf";
  model.config.vocab_size = 604;
  model.config.max_positions = 64;
  model.config.eos_id = 2;
  model.generation.forced_bos_id = 404;  // the checkpoint's default language
  model.generation.eos_ids = {2};
  return model;
}

RequestLimits Limits() {
  RequestLimits limits;
  limits.max_input_tokens = 32;
  limits.max_new_tokens_limit = 20;
  limits.default_max_new_tokens = 10;
  limits.max_beam_size = 4;
  return limits;
}

v1::GenerateRequest Text(const std::string& text) {
  v1::GenerateRequest request;
  request.set_text(text);
  return request;
}

v1::GenerateRequest Ids(std::vector<int32_t> ids) {
  v1::GenerateRequest request;
  request.mutable_input_ids()->Add(ids.begin(), ids.end());
  return request;
}

struct SourceCase {
  std::string family;
  std::string code;
  std::vector<int32_t> golden;  // golden.json's encode_from entry
};

class SourceLanguageTest : public ::testing::TestWithParam<SourceCase> {};

TEST_P(SourceLanguageTest, TextIsEncodedFromTheLanguage) {
  const SourceCase& c = GetParam();
  std::unique_ptr<Tokenizer> tokenizer = Load(c.family);
  ASSERT_NE(tokenizer, nullptr);
  v1::GenerateRequest request = Text("hello world");
  request.set_source_language(c.code);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  absl::StatusOr<std::vector<int32_t>> expected =
      tokenizer->EncodeFrom("hello world", c.code);
  ASSERT_TRUE(expected.ok()) << expected.status();
  EXPECT_EQ(item->source, *expected);
  EXPECT_EQ(item->source, c.golden);
  // And not the default src_lang's encoding.
  absl::StatusOr<std::vector<int32_t>> by_default =
      tokenizer->Encode("hello world");
  ASSERT_TRUE(by_default.ok());
  EXPECT_NE(item->source, *by_default);
  // The source language leaves the decoder alone.
  EXPECT_TRUE(item->decode.target_prefix.empty());
  EXPECT_EQ(item->decode.forced_bos_id, 404);
}

INSTANTIATE_TEST_SUITE_P(
    Families, SourceLanguageTest,
    ::testing::Values(SourceCase{"nllb", "fra_Latn", {457, 256, 237, 2}},
                      SourceCase{"m2m100", "zu", {475, 95, 353, 2}},
                      SourceCase{"mbart", "ro_RO", {256, 237, 2, 420}}),
    [](const auto& info) { return info.param.family; });

TEST(SourceLanguageTest, EmptyIsTheTokenizersDefault) {
  std::unique_ptr<Tokenizer> tokenizer = Load("nllb");
  ASSERT_NE(tokenizer, nullptr);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(Text("hello world"), Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->source, *tokenizer->Encode("hello world"));
}

struct TargetCase {
  std::string family;
  std::string code;
  int32_t id;  // golden.json's language_ids entry
};

class TargetLanguageTest : public ::testing::TestWithParam<TargetCase> {};

TEST_P(TargetLanguageTest, IsTheFirstForcedTokenForTextAndIds) {
  const TargetCase& c = GetParam();
  std::unique_ptr<Tokenizer> tokenizer = Load(c.family);
  ASSERT_NE(tokenizer, nullptr);
  for (v1::GenerateRequest request : {Text("hello world"), Ids({5, 6, 2})}) {
    request.set_target_language(c.code);
    absl::StatusOr<WorkItem> item =
        ToWorkItem(request, Limits(), Model(), tokenizer.get());
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{c.id}));
    EXPECT_EQ(item->decode.target_prefix[0], *tokenizer->LanguageId(c.code));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TargetLanguageTest,
                         ::testing::Values(TargetCase{"nllb", "fra_Latn", 457},
                                           TargetCase{"nllb_legacy", "eng_Latn",
                                                      447},
                                           TargetCase{"m2m100", "de", 392},
                                           TargetCase{"m2m100", "__en__", 394},
                                           TargetCase{"mbart", "ro_RO", 420},
                                           TargetCase{"mbart50", "sl_SI", 452}),
                         [](const auto& info) {
                           std::string name =
                               info.param.family + "_" + info.param.code;
                           for (char& ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           }
                           return name;
                         });

TEST(TargetLanguageTest, GoesBeforeTheRequestsPrefix) {
  std::unique_ptr<Tokenizer> tokenizer = Load("nllb");
  ASSERT_NE(tokenizer, nullptr);
  v1::GenerateRequest request = Ids({5, 6, 2});
  request.set_target_language("fra_Latn");
  request.add_target_prefix_ids(300);
  request.add_target_prefix_ids(301);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{457, 300, 301}));
}

// golden.json's target-side ids of `text` (no special tokens; Marian's
// target.spm), which scripts/make_hf_tokenizer_golden.py writes.
std::vector<int32_t> GoldenTargetPrefix(const std::string& family,
                                        const std::string& text) {
  std::ifstream in(std::string(ATTNSERVE_SOURCE_DIR) +
                       "/tests/data/hf_tokenizers/" + family + "/golden.json",
                   std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const nlohmann::json golden =
      nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (golden.is_object() && golden.contains("target_prefix")) {
    for (const nlohmann::json& c : golden["target_prefix"]) {
      if (c["text"] == text) return c["ids"].get<std::vector<int32_t>>();
    }
  }
  ADD_FAILURE() << family << "/golden.json has no target_prefix for " << text;
  return {};
}

class TargetPrefixTextTest : public ::testing::TestWithParam<std::string> {};

// The text's target side, no special token, after the model's forced BOS (a
// text cannot name it): exactly what the same request with those ids forces.
TEST_P(TargetPrefixTextTest, IsTheTargetSideAfterTheForcedBos) {
  std::unique_ptr<Tokenizer> tokenizer = Load(GetParam());
  ASSERT_NE(tokenizer, nullptr);
  for (const std::string text : {"hello world", "Größe für Mädchen"}) {
    SCOPED_TRACE(text);
    const std::vector<int32_t> golden = GoldenTargetPrefix(GetParam(), text);
    ASSERT_FALSE(golden.empty());
    v1::GenerateRequest request = Ids({5, 6, 7});
    request.set_target_prefix(text);
    absl::StatusOr<WorkItem> item =
        ToWorkItem(request, Limits(), Model(), tokenizer.get());
    ASSERT_TRUE(item.ok()) << item.status();
    std::vector<int32_t> expected = {404};  // Model()'s forced_bos_id
    expected.insert(expected.end(), golden.begin(), golden.end());
    EXPECT_EQ(item->decode.target_prefix, expected);

    v1::GenerateRequest by_ids = Ids({5, 6, 7});
    by_ids.mutable_target_prefix_ids()->Add(expected.begin(), expected.end());
    absl::StatusOr<WorkItem> ids_item =
        ToWorkItem(by_ids, Limits(), Model(), tokenizer.get());
    ASSERT_TRUE(ids_item.ok()) << ids_item.status();
    EXPECT_EQ(ids_item->decode.target_prefix, item->decode.target_prefix);

    // A model that forces no BOS: the text's tokens alone.
    ModelInfo plain = Model();
    plain.generation.forced_bos_id = -1;
    item = ToWorkItem(request, Limits(), plain, tokenizer.get());
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->decode.target_prefix, golden);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, TargetPrefixTextTest,
                         ::testing::Values("t5", "marian", "marian_separate",
                                           "mbart", "mbart50", "nllb",
                                           "nllb_legacy", "m2m100", "bart"));

// target_language's token comes first, in place of the forced BOS, for text
// as for ids.
TEST(TargetPrefixTextTest, FollowsTheTargetLanguage) {
  std::unique_ptr<Tokenizer> tokenizer = Load("nllb");
  ASSERT_NE(tokenizer, nullptr);
  v1::GenerateRequest request = Text("hello world");
  request.set_target_language("zul_Latn");
  request.set_target_prefix("hello world");
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{602, 256, 237}));
}

TEST(TargetLanguageTest, BothLanguagesTogether) {
  std::unique_ptr<Tokenizer> tokenizer = Load("nllb");
  ASSERT_NE(tokenizer, nullptr);
  v1::GenerateRequest request = Text("hello world");
  request.set_source_language("fra_Latn");
  request.set_target_language("zul_Latn");
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->source, (std::vector<int32_t>{457, 256, 237, 2}));
  EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{602}));
}

struct BadCase {
  std::string name;
  std::string family;  // "" = no tokenizer
  v1::GenerateRequest request;
  std::vector<std::string> message_parts;
};

std::vector<BadCase> BadCases() {
  const std::string scope_src =
      "source_language applies only to text requests of a multilingual "
      "tokenizer";
  const std::string scope_tgt =
      "target_language applies only to a model with a multilingual tokenizer";
  std::vector<BadCase> cases;
  auto add = [&](std::string name, std::string family,
                 v1::GenerateRequest request, std::vector<std::string> parts) {
    cases.push_back({std::move(name), std::move(family), std::move(request),
                     std::move(parts)});
  };
  v1::GenerateRequest r = Ids({5, 6});
  r.set_source_language("fra_Latn");
  add("SourceLanguageWithIds", "nllb", r, {scope_src, "sends input_ids"});
  r = Text("hello");
  r.set_source_language("fr");
  add("SourceLanguageT5", "t5", r, {scope_src, "model hf's tokenizer"});
  add("SourceLanguageBart", "bart", r, {scope_src});
  add("SourceLanguageMarian", "marian", r, {scope_src});
  r.set_source_language("xx_YY");
  add("UnknownSourceLanguage", "nllb", r,
      {"source_language: ", "unknown language code \"xx_YY\""});
  add("UnknownSourceLanguageM2m100", "m2m100", r,
      {"source_language: ", "\"xx_YY\""});
  // A huge code is quoted within QuoteText's bound, not echoed whole.
  r.set_source_language(std::string(100000, 'q'));
  add("HugeSourceLanguage", "mbart", r, {"source_language: ", "\"qqqq"});

  r = Ids({5, 6});
  r.set_target_language("fra_Latn");
  add("TargetLanguageNoTokenizer", "", r, {scope_tgt, "has no tokenizer"});
  add("TargetLanguageT5", "t5", r, {scope_tgt});
  r.set_target_language("fr");
  add("TargetLanguageMarian", "marian", r, {scope_tgt, "at the start of text"});
  r.set_target_language("xx_YY");
  add("UnknownTargetLanguage", "nllb", r,
      {"target_language: ", "unknown language code \"xx_YY\""});
  r.set_target_language("fra_Latn");
  for (int i = 0; i < 10; ++i) r.add_target_prefix_ids(300);
  add("TargetLanguageAndPrefixTooLong", "nllb", r,
      {"target_language and target_prefix_ids make 11 tokens",
       "max_new_tokens is 10"});

  // Five times "hello world" is 10 tokens, and the forced BOS one more.
  r = Ids({5, 6});
  r.set_target_prefix(
      "hello world hello world hello world hello world hello world");
  add("ForcedBosAndPrefixTextTooLong", "nllb", r,
      {"the forced BOS (forced_bos_token_id) and target_prefix make 11 "
       "tokens",
       "max_new_tokens is 10"});
  r.set_target_prefix(" \t ");
  add("PrefixTextOfNoTokens", "nllb", r,
      {"target_prefix encodes to no tokens"});
  add("PrefixTextOfNoTokensT5", "t5", r,
      {"target_prefix encodes to no tokens"});
  return cases;
}

class BadLanguageTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadLanguageTest, IsInvalidArgumentNamingTheField) {
  const BadCase& c = GetParam();
  std::unique_ptr<Tokenizer> tokenizer;
  if (!c.family.empty()) {
    tokenizer = Load(c.family);
    ASSERT_NE(tokenizer, nullptr);
  }
  absl::StatusOr<WorkItem> item =
      ToWorkItem(c.request, Limits(), Model(), tokenizer.get());
  ASSERT_FALSE(item.ok());
  EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
  for (const std::string& part : c.message_parts) {
    EXPECT_THAT(item.status().message(), HasSubstr(part));
  }
  EXPECT_LT(item.status().message().size(), 1000u);
}

INSTANTIATE_TEST_SUITE_P(Convert, BadLanguageTest,
                         ::testing::ValuesIn(BadCases()),
                         [](const auto& info) { return info.param.name; });

// A tokenizer whose language ids the model does not have is refused before
// the engine sees them.
TEST(TargetLanguageTest, AnIdOutsideTheModelsVocabularyIsRefused) {
  std::unique_ptr<Tokenizer> tokenizer = Load("nllb");
  ASSERT_NE(tokenizer, nullptr);
  ModelInfo model = Model();
  model.config.vocab_size = 400;
  v1::GenerateRequest request = Ids({5, 6});
  request.set_target_language("fra_Latn");
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), model, tokenizer.get());
  ASSERT_FALSE(item.ok());
  EXPECT_THAT(item.status().message(),
              HasSubstr("target_language \"fra_Latn\"'s token id = 457 is "
                        "outside [0, 400)"));
}

}  // namespace
}  // namespace attnserve::server
