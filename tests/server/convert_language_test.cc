// GenerateRequest's source_language and target_language (server/convert.h)
// with the Hugging Face tokenizer directories of tests/data/hf_tokenizers/,
// whose ids golden.json holds (scripts/make_hf_tokenizer_golden.py).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
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
  request.add_target_prefix(300);
  request.add_target_prefix(301);
  absl::StatusOr<WorkItem> item =
      ToWorkItem(request, Limits(), Model(), tokenizer.get());
  ASSERT_TRUE(item.ok()) << item.status();
  EXPECT_EQ(item->decode.target_prefix, (std::vector<int32_t>{457, 300, 301}));
}

// Their Encode frames a source (EOS, the source language), so a prefix text
// would force those tokens: refused, naming the field and the alternative.
TEST(TargetPrefixTextTest, IsRefusedForTheHuggingFaceTokenizers) {
  for (const char* family : {"nllb", "t5", "marian", "bart"}) {
    SCOPED_TRACE(family);
    std::unique_ptr<Tokenizer> tokenizer = Load(family);
    ASSERT_NE(tokenizer, nullptr);
    v1::GenerateRequest request = Ids({5, 6, 2});
    request.set_target_prefix_text("hello");
    absl::StatusOr<WorkItem> item =
        ToWorkItem(request, Limits(), Model(), tokenizer.get());
    EXPECT_EQ(item.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(item.status().message()),
                ::testing::HasSubstr("target_prefix_text is not supported"));
  }
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
  for (int i = 0; i < 10; ++i) r.add_target_prefix(300);
  add("TargetLanguageAndPrefixTooLong", "nllb", r,
      {"target_language and target_prefix make 11 tokens",
       "max_new_tokens is 10"});
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
