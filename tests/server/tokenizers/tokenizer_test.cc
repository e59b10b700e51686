#include "server/tokenizers/tokenizer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class TokenizerTest : public ::testing::Test {
 protected:
  // A model directory holding just what the tokenizer reads.
  std::unique_ptr<Tokenizer> Load(const std::string& config,
                                  const std::string& vocab) {
    Write("config.json", config);
    if (!vocab.empty()) Write("vocab.txt", vocab);
    auto t = LoadTokenizer(dir_.path());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(t).value() : nullptr;
  }
  absl::Status LoadError(const std::string& config, const std::string& vocab) {
    Write("config.json", config);
    Write("vocab.txt", vocab);
    return LoadTokenizer(dir_.path()).status();
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.File(name), std::ios::binary) << text;
  }
  engine::testing::TempDir dir_{"tokenizer_test"};
};

// ids: 0 <pad>, 1 <s>, 2 </s>, 3 ' ', 4 a, 5 b, 6 é, 7 -
constexpr char kCharVocab[] = "<pad>\n<s>\n</s>\n \na\nb\n\xC3\xA9\n-\n";
constexpr char kCharConfig[] = R"({"vocab_size": 10, "tokenizer": "char"})";

TEST_F(TokenizerTest, CharEncodesCodePointsIncludingSpace) {
  auto t = Load(kCharConfig, kCharVocab);
  ASSERT_TRUE(t);
  auto ids = t->Encode("ab \xC3\xA9-a");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(4, 5, 3, 6, 7, 4));
}

TEST_F(TokenizerTest, CharDecodeSkipsSpecialIdsAndPiecesConcatenate) {
  auto t = Load(kCharConfig, kCharVocab);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->Decode({1, 4, 3, 6, 2}), "a \xC3\xA9");
  EXPECT_EQ(t->Decode({4}) + t->Decode({3, 5}, true), t->Decode({4, 3, 5}));
}

TEST_F(TokenizerTest, CharUnknownCharacterIsNamed) {
  auto t = Load(kCharConfig, kCharVocab);
  ASSERT_TRUE(t);
  const absl::Status s = t->Encode("abz").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("'z' (U+007A) at position 2"));
  const absl::Status tab = t->Encode("a\tb").status();
  EXPECT_THAT(std::string(tab.message()), HasSubstr("U+0009"));
}

TEST_F(TokenizerTest, CharRejectsInvalidUtf8) {
  auto t = Load(kCharConfig, kCharVocab);
  ASSERT_TRUE(t);
  const absl::Status s = t->Encode("a\xC3").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("UTF-8"));
}

TEST_F(TokenizerTest, WhitespaceByDefaultWhenVocabPresent) {
  auto t = Load(R"({"vocab_size": 6})", "<pad>\n<s>\n</s>\nhello\nworld\n");
  ASSERT_TRUE(t);
  auto ids = t->Encode("  hello\tworld  hello ");
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(3, 4, 3));
  EXPECT_EQ(t->Decode({3, 4, 2}), "hello world");
  // Streamed pieces join with the separating space.
  EXPECT_EQ(t->Decode({3}) + t->Decode({4, 3}, true), "hello world hello");
  const absl::Status s = t->Encode("hello there").status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("word \"there\""));
}

// Their Encode adds no special token, so a target prefix (a request's
// target_prefix_text) is encoded the same way, errors included.
TEST_F(TokenizerTest, TargetPrefixIsTheEncodingForCharAndWhitespace) {
  auto chars = Load(kCharConfig, kCharVocab);
  ASSERT_TRUE(chars);
  EXPECT_FALSE(chars->EncodesSpecialTokens());
  auto ids = chars->EncodeTargetPrefix("ab \xC3\xA9");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(4, 5, 3, 6));
  EXPECT_THAT(std::string(chars->EncodeTargetPrefix("az").status().message()),
              HasSubstr("'z' (U+007A) at position 1"));
  auto words = Load(R"({"vocab_size": 6})", "<pad>\n<s>\n</s>\nhello\nworld\n");
  ASSERT_TRUE(words);
  EXPECT_FALSE(words->EncodesSpecialTokens());
  ids = words->EncodeTargetPrefix(" world hello");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(4, 3));
}

TEST_F(TokenizerTest, NoVocabMeansNoTokenizer) {
  Write("config.json", R"({"vocab_size": 6})");
  auto t = LoadTokenizer(dir_.path());
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t, nullptr);
}

TEST_F(TokenizerTest, BadVocabFilesAreErrorsNamingTheLine) {
  EXPECT_THAT(std::string(LoadError(kCharConfig, "a\nb\na\n").message()),
              HasSubstr("line 3 repeats the token \"a\""));
  EXPECT_THAT(std::string(LoadError(kCharConfig, "a\n\nb\n").message()),
              HasSubstr("line 2 is empty"));
  EXPECT_THAT(std::string(LoadError(R"({"vocab_size": 2, "tokenizer": "char"})",
                                    "a\nb\nc\n")
                              .message()),
              HasSubstr("vocab_size is 2"));
  EXPECT_THAT(
      std::string(LoadError(R"({"vocab_size": 2, "tokenizer": "bpe"})", "a\n")
                      .message()),
      HasSubstr("\"tokenizer\" must be"));
  // A SentencePiece tokenizer without its model file names the file.
  const absl::Status no_model =
      LoadError(R"({"vocab_size": 2, "tokenizer": "sentencepiece"})", "a\n");
  EXPECT_EQ(no_model.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(no_model.message()), HasSubstr("spiece.model"));
}

// Found while fuzzing the model loader (regression input
// tests/fuzz/regressions/model_dir/vocab_file_dev_zero): "vocab_file" naming a
// device made the server read until it ran out of memory. Inside the
// directory, what is not a regular file (a FIFO, a directory) is refused
// without blocking; outside it, nothing is read at all (below).
TEST_F(TokenizerTest, VocabFileThatIsNotARegularFileIsAnError) {
  ASSERT_EQ(mkfifo(dir_.File("fifo").c_str(), 0600), 0);
  ASSERT_EQ(mkdir(dir_.File("sub").c_str(), 0700), 0);
  for (const char* vocab_file : {"fifo", "sub"}) {
    Write("config.json", absl::StrCat(R"({"vocab_size": 6, "vocab_file": ")",
                                      vocab_file, R"("})"));
    const absl::Status s = LoadTokenizer(dir_.path()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << vocab_file;
    EXPECT_THAT(std::string(s.message()), HasSubstr("not a regular file"));
  }
}

// A model directory comes from a third party: "vocab_file" must not serve
// lines of a host file as text.
TEST_F(TokenizerTest, VocabFileOutsideTheModelDirectoryIsRefused) {
  engine::testing::TempDir outside{"tokenizer_outside"};
  std::ofstream(outside.File("secret.txt")) << "<pad>\n<s>\n</s>\nsecret\n";
  ASSERT_EQ(symlink(outside.File("secret.txt").c_str(),
                    dir_.File("link.txt").c_str()),
            0);
  for (const std::string& vocab_file :
       {std::string("/etc/passwd"), outside.File("secret.txt"),
        std::string("../") +
            outside.path().substr(outside.path().rfind('/') + 1) +
            "/secret.txt",
        std::string("link.txt")}) {
    Write("config.json", absl::StrCat(R"({"vocab_size": 6, "vocab_file": ")",
                                      vocab_file, R"("})"));
    const absl::Status s = LoadTokenizer(dir_.path()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << vocab_file;
    EXPECT_THAT(std::string(s.message()), HasSubstr("\"vocab_file\""))
        << vocab_file;
  }
}

// The client's word goes into the status trailer and the failure log:
// quoted and bounded, whatever its length or content.
TEST_F(TokenizerTest, UnknownWordInErrorsIsQuotedAndBounded) {
  auto t = Load(R"({"vocab_size": 10})", "<pad>\n<s>\n</s>\nhello\n");
  ASSERT_NE(t, nullptr);
  const std::string word(1 << 20, 'x');
  const absl::Status s = t->Encode(absl::StrCat("hello ", word)).status();
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 300u) << s.message().substr(0, 300);
  EXPECT_THAT(std::string(s.message()), HasSubstr("at byte 6"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("of 1048576 bytes"));
  const std::string control = "bad\x1b[31mword";
  const std::string message(t->Encode(control).status().message());
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
}

TEST_F(TokenizerTest, RepeatedVocabLineInErrorsIsBounded) {
  const std::string line(100000, 'y');
  const absl::Status s =
      LoadError(kCharConfig, absl::StrCat(line, "\n", line, "\n"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 2 repeats the token"));
  EXPECT_LT(s.message().size(), 400u);
}

}  // namespace
}  // namespace attnserve::server
