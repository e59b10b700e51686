// The Hugging Face families against their reference: tests/data/hf_tokenizers/
// <family>/golden.json holds the ids and texts that Hugging Face's slow
// tokenizers give (scripts/make_hf_tokenizer_golden.py, from a
// re-implementation of their logic around Debian's python3-sentencepiece).
// Every id and every decoded byte must match; LoadTokenizer picks the family
// from the directory as downloaded (config.json's model_type,
// tokenizer_config.json's class).

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/tokenizer.h"

namespace attnserve::server {
namespace {

std::string FamilyDir(const std::string& family) {
  return std::string(ATTNSERVE_SOURCE_DIR) + "/tests/data/hf_tokenizers/" +
         family;
}

nlohmann::json ReadGolden(const std::string& family) {
  std::ifstream in(FamilyDir(family) + "/golden.json", std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return nlohmann::json::parse(buffer.str(), nullptr,
                               /*allow_exceptions=*/false);
}

std::vector<int32_t> Ids(const nlohmann::json& value) {
  return value.get<std::vector<int32_t>>();
}

class HfGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    golden_ = ReadGolden(GetParam());
    ASSERT_TRUE(golden_.is_object()) << GetParam() << ": no golden.json";
    auto loaded = LoadTokenizer(FamilyDir(GetParam()));
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_NE(*loaded, nullptr);
    tokenizer_ = *std::move(loaded);
  }
  nlohmann::json golden_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_P(HfGoldenTest, EncodeGivesTheReferenceIdsAndDecodeItsText) {
  EXPECT_TRUE(tokenizer_->EncodesSpecialTokens());
  int exact_ids = 0, exact_text = 0, cases = 0;
  for (const auto& c : golden_["encode"]) {
    ++cases;
    const std::string text = c["text"];
    auto ids = tokenizer_->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, Ids(c["ids"])) << "text: " << c["text"].dump();
    exact_ids += *ids == Ids(c["ids"]);
    const std::string decoded = tokenizer_->Decode(Ids(c["ids"]), false);
    EXPECT_EQ(decoded, c["decoded"].get<std::string>())
        << "ids of " << c["text"].dump();
    exact_text += decoded == c["decoded"].get<std::string>();
  }
  EXPECT_GT(cases, 200);
  RecordProperty("encode_exact", exact_ids);
  RecordProperty("decode_exact", exact_text);
  RecordProperty("cases", cases);
}

TEST_P(HfGoldenTest, DecodeOfRandomIdsGivesTheReferenceText) {
  int cases = 0;
  for (const auto& c : golden_["decode"]) {
    ++cases;
    EXPECT_EQ(tokenizer_->Decode(Ids(c["ids"]), false),
              c["text"].get<std::string>())
        << "ids " << c["ids"].dump();
  }
  EXPECT_EQ(cases, 80);
}

TEST_P(HfGoldenTest, SourceLanguagesAndLanguageIdsAreTheReferences) {
  for (const auto& c : golden_["encode_from"]) {
    auto ids = tokenizer_->EncodeFrom(c["text"].get<std::string>(),
                                      c["src_lang"].get<std::string>());
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, Ids(c["ids"])) << c.dump();
  }
  for (const auto& [code, id] : golden_["language_ids"].items()) {
    auto found = tokenizer_->LanguageId(code);
    if (id.is_null()) {
      EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound) << code;
    } else {
      ASSERT_TRUE(found.ok()) << code << ": " << found.status();
      EXPECT_EQ(*found, id.get<int32_t>()) << code;
    }
  }
  EXPECT_EQ(tokenizer_->LanguageId("xx_NOPE").status().code(),
            absl::StatusCode::kNotFound);
}

// A target prefix (a request's target_prefix_text) is encoded as Hugging
// Face encodes tokenizer(text_target=text, add_special_tokens=False): the
// target side, no special token. For Marian that is target.spm (and
// target_vocab.json with separate_vocabs), so some texts must come out other
// than the source ids.
TEST_P(HfGoldenTest, TargetPrefixGivesTheReferenceIds) {
  std::map<std::string, std::vector<int32_t>> source;
  for (const auto& c : golden_["encode"]) {
    source[c["text"].get<std::string>()] = Ids(c["ids"]);
  }
  int cases = 0, unlike_source = 0;
  for (const auto& c : golden_["target_prefix"]) {
    ++cases;
    const std::string text = c["text"];
    auto ids = tokenizer_->EncodeTargetPrefix(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(*ids, Ids(c["ids"])) << "text: " << c["text"].dump();
    // No special token: the source is these ids framed by the family's own.
    auto it = source.find(text);
    if (it == source.end()) continue;
    const std::vector<int32_t>& framed = it->second;
    unlike_source += std::search(framed.begin(), framed.end(), ids->begin(),
                                 ids->end()) == framed.end();
  }
  EXPECT_GT(cases, 200);
  if (GetParam() == "marian") {
    EXPECT_GE(unlike_source, 10) << "target.spm segments as source.spm does";
  } else if (GetParam() == "marian_separate") {
    EXPECT_GE(unlike_source, 150) << "target_vocab.json's ids are not used";
  } else {
    EXPECT_EQ(unlike_source, 0) << "the source's tokens are the prefix's";
  }
  RecordProperty("target_prefix_cases", cases);
  RecordProperty("target_prefix_unlike_source", unlike_source);
}

// Text made of the training corpus's words comes back as it went in, from
// the target prefix ids and, where the decoder's vocabulary is the source's
// (all but marian_separate), from the source ids.
TEST_P(HfGoldenTest, PlainTextRoundTrips) {
  for (const std::string text : {"the quick brown fox jumps over the lazy dog",
                                 "hello world", "Größe für Mädchen"}) {
    if (GetParam() != "marian_separate") {
      auto ids = tokenizer_->Encode(text);
      ASSERT_TRUE(ids.ok()) << ids.status();
      EXPECT_EQ(tokenizer_->Decode(*ids, false), text);
    }
    auto target = tokenizer_->EncodeTargetPrefix(text);
    ASSERT_TRUE(target.ok()) << target.status();
    EXPECT_EQ(tokenizer_->Decode(*target, false), text);
  }
}

std::string WithoutSpaces(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') out += c;
  }
  return out;
}

// Streamed pieces (as StreamState asks for them: `continues` once earlier
// pieces gave text; one token per piece, as the engine streams, and two) join
// into the text of decoding all ids at once, but for whitespace at the end
// (the unary text strips it) and clean-up rules spanning two pieces: never
// another character.
TEST_P(HfGoldenTest, StreamedPiecesJoinIntoTheWholeText) {
  for (size_t step : {1, 2}) {
    int cases = 0, exact = 0;
    for (const auto& c : golden_["encode"]) {
      // BART's tokens are bytes: a piece that ends inside a character
      // decodes to U+FFFD (docs/tokenizers.md), so only ASCII text streams
      // exactly there.
      const std::string text = c["text"];
      if (GetParam() == "bart" &&
          std::any_of(text.begin(), text.end(),
                      [](char ch) { return (ch & 0x80) != 0; })) {
        continue;
      }
      const std::vector<int32_t> ids = Ids(c["ids"]);
      const std::string whole = tokenizer_->Decode(ids, false);
      std::string joined;
      bool continues = false;
      for (size_t i = 0; i < ids.size(); i += step) {
        const std::vector<int32_t> chunk(
            ids.begin() + i, ids.begin() + std::min(ids.size(), i + step));
        const std::string piece = tokenizer_->Decode(chunk, continues);
        joined += piece;
        continues = continues || !piece.empty();
      }
      ++cases;
      exact += PythonRstrip(joined) == PythonRstrip(whole);
      EXPECT_EQ(WithoutSpaces(joined), WithoutSpaces(whole))
          << "text " << c["text"].dump();
    }
    RecordProperty(step == 1 ? "stream_exact_1" : "stream_exact_2", exact);
    // One token per piece: exact, but where Marian's clean-up rules (" ." ->
    // ".") span two pieces. Two per piece: a first piece that ends in a lone
    // U+2581 is stripped as a whole text would be (counted, not asserted).
    if (step == 1) {
      EXPECT_GE(exact * 100,
                cases * (absl::StartsWith(GetParam(), "marian") ? 95 : 100))
          << exact << " of " << cases << " exact";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfGoldenTest,
                         ::testing::Values("t5", "marian", "marian_separate",
                                           "mbart", "mbart50", "nllb",
                                           "nllb_legacy", "m2m100", "bart"));

}  // namespace
}  // namespace attnserve::server
