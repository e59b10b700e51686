// Malformed Hugging Face tokenizer files: each is refused at load with an
// error naming the file (and the token or key), never a crash or a tokenizer
// that silently gives other ids. Also: how a directory's family is chosen.

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/tokenizer.h"
#include "server/tokenizers/tokenizer_files.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::server {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

std::string FamilyDir(const std::string& family) {
  return std::string(ATTNSERVE_SOURCE_DIR) + "/tests/data/hf_tokenizers/" +
         family;
}

class HfTokenizerFilesTest : public ::testing::Test {
 protected:
  // A copy of tests/data/hf_tokenizers/<family> to break.
  void CopyFamily(const std::string& family) {
    for (const auto& entry :
         std::filesystem::directory_iterator(FamilyDir(family))) {
      std::filesystem::copy_file(
          entry.path(), dir_.File(entry.path().filename().string()),
          std::filesystem::copy_options::overwrite_existing);
    }
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.File(name), std::ios::binary | std::ios::trunc) << text;
  }
  absl::Status Load() { return LoadTokenizer(dir_.path()).status(); }
  std::string LoadMessage() { return std::string(Load().message()); }

  engine::testing::TempDir dir_{"hf_tokenizer_files_test"};
};

TEST_F(HfTokenizerFilesTest, MissingVocabJsonNamesIt) {
  CopyFamily("marian");
  std::filesystem::remove(dir_.File("vocab.json"));
  EXPECT_EQ(Load().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(LoadMessage(), HasSubstr("vocab.json"));
  CopyFamily("m2m100");
  std::filesystem::remove(dir_.File("vocab.json"));
  EXPECT_THAT(LoadMessage(), HasSubstr("vocab.json"));
}

TEST_F(HfTokenizerFilesTest, VocabJsonThatIsNotAnObjectNamesIt) {
  CopyFamily("marian");
  for (const char* text : {"[1, 2]", "\"</s>\"", "{\"a\": 1", "", "\xff\xfe"}) {
    Write("vocab.json", text);
    EXPECT_EQ(Load().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(LoadMessage(), HasSubstr("vocab.json")) << text;
  }
  Write("vocab.json", "[1, 2]");
  EXPECT_THAT(LoadMessage(), HasSubstr("not a JSON object"));
}

TEST_F(HfTokenizerFilesTest, VocabJsonIdsOutOfRangeOrSharedNameTheToken) {
  CopyFamily("m2m100");
  for (const char* value : {"-1", "4194304", "99999999999999999999", "1.5",
                            "\"3\"", "null", "[]"}) {
    Write("vocab.json",
          absl::StrCat(R"({"<unk>": 0, "</s>": 1, "x": )", value, "}"));
    EXPECT_EQ(Load().code(), absl::StatusCode::kInvalidArgument) << value;
    EXPECT_THAT(LoadMessage(), AllOf(HasSubstr("vocab.json"),
                                     HasSubstr("\"x\""), HasSubstr("id")))
        << value;
  }
  Write("vocab.json", R"({"<unk>": 0, "</s>": 1, "a": 1})");
  EXPECT_THAT(LoadMessage(),
              AllOf(HasSubstr("vocab.json"), HasSubstr("id 1 is given to")));
  Write("vocab.json", R"({"</s>": 1, "a": 2})");
  EXPECT_THAT(LoadMessage(),
              AllOf(HasSubstr("vocab.json"), HasSubstr("\"<unk>\"")));
}

TEST_F(HfTokenizerFilesTest, SentencePieceModelThatDoesNotParseNamesIt) {
  for (const auto& [family, file] :
       std::vector<std::pair<std::string, std::string>>{
           {"t5", "spiece.model"},
           {"marian", "source.spm"},
           {"marian", "target.spm"},
           {"mbart", "sentencepiece.bpe.model"},
           {"m2m100", "sentencepiece.bpe.model"}}) {
    CopyFamily(family);
    Write(file, "this is not a sentencepiece model");
    EXPECT_EQ(Load().code(), absl::StatusCode::kInvalidArgument) << file;
    EXPECT_THAT(LoadMessage(), AllOf(HasSubstr(file), HasSubstr("ModelProto")))
        << family;
    std::filesystem::remove(dir_.File(file));
    EXPECT_EQ(Load().code(), absl::StatusCode::kNotFound) << file;
    EXPECT_THAT(LoadMessage(), HasSubstr(file)) << family;
  }
}

TEST_F(HfTokenizerFilesTest, BadTokenizerConfigNamesTheKey) {
  CopyFamily("nllb");
  Write("tokenizer_config.json",
        R"({"tokenizer_class": "NllbTokenizer", "src_lang": "xx_Nope"})");
  EXPECT_THAT(LoadMessage(),
              AllOf(HasSubstr("tokenizer_config.json"), HasSubstr("src_lang"),
                    HasSubstr("xx_Nope")));
  Write("tokenizer_config.json",
        R"({"tokenizer_class": "NllbTokenizer", "src_lang": 7})");
  EXPECT_THAT(LoadMessage(), HasSubstr("\"src_lang\" must be a string"));
  Write("tokenizer_config.json", R"({"tokenizer_class": "GPT2Tokenizer"})");
  EXPECT_THAT(LoadMessage(),
              AllOf(HasSubstr("tokenizer_class"), HasSubstr("GPT2Tokenizer")));
  Write(
      "tokenizer_config.json",
      R"({"tokenizer_class": "NllbTokenizer", "additional_special_tokens": ["<new>"]})");
  EXPECT_THAT(LoadMessage(), AllOf(HasSubstr("additional_special_tokens"),
                                   HasSubstr("<new>")));
  Write("tokenizer_config.json", "[]");
  EXPECT_THAT(LoadMessage(), AllOf(HasSubstr("tokenizer_config.json"),
                                   HasSubstr("not a JSON object")));
}

// Without tokenizer_class the model_type decides; without any tokenizer file
// (a checkpoint saved with its weights only) the model serves ids only.
TEST_F(HfTokenizerFilesTest, FamilyFromModelTypeAndNoFilesMeansIdsOnly) {
  TokenizerConfig none;
  EXPECT_EQ(*HfTokenizerFamily("t5", none), "sentencepiece");
  EXPECT_EQ(*HfTokenizerFamily("marian", none), "marian");
  EXPECT_EQ(*HfTokenizerFamily("m2m100", none), "m2m100");
  EXPECT_THAT(std::string(HfTokenizerFamily("gpt2", none).status().message()),
              HasSubstr("gpt2"));
  TokenizerConfig fast;
  fast.tokenizer_class = "NllbTokenizerFast";
  EXPECT_EQ(*HfTokenizerFamily("m2m100", fast), "nllb");

  Write("config.json", R"({"model_type": "marian", "vocab_size": 10})");
  auto tokenizer = LoadTokenizer(dir_.path());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(*tokenizer, nullptr);
  // The attnserve format's key wins over model_type.
  CopyFamily("t5");
  Write("config.json", R"({"model_type": "t5", "tokenizer": "char"})");
  EXPECT_THAT(LoadMessage(), HasSubstr("vocab.txt"));
}

// BART's byte-level BPE: malformed merges.txt lines never match (as in
// transformers), a missing merges.txt is named, and a pre-token over the
// limit is refused rather than merged in quadratic time.
TEST_F(HfTokenizerFilesTest, BartFilesAndWordLimit) {
  CopyFamily("bart");
  std::filesystem::remove(dir_.File("merges.txt"));
  EXPECT_EQ(Load().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(LoadMessage(), HasSubstr("merges.txt"));
  Write("merges.txt", "#version: 0.2\nnot three parts\n\n");
  auto plain = LoadTokenizer(dir_.path());
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto ids = (*plain)->Encode("ab");  // no merges: one id per byte
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 4u);
  EXPECT_EQ((*plain)->Decode(*ids, false), "ab");

  auto tokenizer = LoadTokenizer(FamilyDir("bart"));
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_TRUE((*tokenizer)->Encode(std::string(1024, 'a')).ok());
  auto long_word = (*tokenizer)->Encode("x " + std::string(1025, 'a'));
  EXPECT_EQ(long_word.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(long_word.status().message()),
              AllOf(HasSubstr("byte 1"), HasSubstr("1026 bytes")));
  EXPECT_THAT(std::string((*tokenizer)
                              ->Encode("a\xff"
                                       "b")
                              .status()
                              .message()),
              HasSubstr("not valid UTF-8 at byte 1"));
}

// The attnserve format names the family and (for sentencepiece) the model.
TEST_F(HfTokenizerFilesTest, AttnserveFormatNamesTheFamily) {
  CopyFamily("t5");
  std::filesystem::rename(dir_.File("spiece.model"), dir_.File("t5.model"));
  Write("config.json",
        R"({"tokenizer": "sentencepiece", "vocab_file": "t5.model"})");
  auto tokenizer = LoadTokenizer(dir_.path());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  auto ids = (*tokenizer)->Encode("hello world");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->back(), 1);  // </s>, T5's id 1
  EXPECT_EQ((*tokenizer)->Decode(*ids, false), "hello world");
  EXPECT_THAT(
      std::string((*tokenizer)->EncodeFrom("x", "de").status().message()),
      HasSubstr("no source languages"));
  Write("config.json",
        R"({"tokenizer": "sentencepiece", "vocab_file": "../t5.model"})");
  EXPECT_THAT(LoadMessage(), HasSubstr("vocab_file"));
}

TEST(HfTextTest, StripIsPythonsAndCleanUpIsTransformers) {
  EXPECT_EQ(PythonStrip(" \t\n a b \xe3\x80\x80\xc2\xa0"), "a b");
  EXPECT_EQ(PythonStrip("\xe2\x80\x8b"
                        "a"),
            "\xe2\x80\x8b"
            "a");  // ZWSP: no
  EXPECT_EQ(PythonRstrip(" a \x1f"), " a");
  EXPECT_EQ(CleanUpTokenization("Hello , world . do n't , it 's a ' b"),
            "Hello, world. don't, it's a'b");
}

}  // namespace
}  // namespace attnserve::server
