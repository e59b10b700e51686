// Fuzzes the Hugging Face tokenizer files (server/tokenizers/tokenizer_files.h,
// hf_tokenizer.h): vocab.json and tokenizer_config.json parsing on arbitrary
// bytes, whole tokenizer directories with one file replaced, and text through
// the families' tokenizers.
//
// Input: byte 0 picks the mode (% 4) and the family (/ 4 % 6: t5, marian,
// mbart50, nllb, m2m100, bart); the rest is
//   mode 0  vocab.json text, parsed;
//   mode 1  tokenizer_config.json text, parsed;
//   mode 2  byte 1 picks a file of the family's directory (tokenizer_config,
//           vocab.json, the SentencePiece model or BART's merges.txt) which
//           the rest replaces; the
//           directory is loaded and, when it loads, used on a fixed text;
//   mode 3  text, encoded (also with a source language taken from its first
//           8 bytes) and decoded; and read as ids (two bytes each), decoded.
// Seeds: tests/fuzz/corpus/tokenizer_files/ (vocab and config files of
// tests/data/hf_tokenizers/).
//
// Checks, besides "no crash, no sanitizer report, no unbounded allocation":
// - a parsed vocab.json is a bijection of tokens and ids inside its bounds;
// - errors carry a message;
// - Encode's ids are non-negative and Decode takes any ids.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/tokenizer.h"
#include "server/tokenizers/tokenizer_files.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

constexpr const char* kFamilies[] = {"t5",   "marian", "mbart50",
                                     "nllb", "m2m100", "bart"};
constexpr int kFamilyCount = 6;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string FamilyDir(int family) {
  return absl::StrCat(ATTNSERVE_HF_TOKENIZERS_DIR, "/", kFamilies[family]);
}

const server::Tokenizer& FixedTokenizer(int family) {
  static const auto* tokenizers = [] {
    auto* list = new std::vector<std::unique_ptr<server::Tokenizer>>();
    for (int f = 0; f < kFamilyCount; ++f) {
      auto t = server::LoadTokenizer(FamilyDir(f));
      if (!t.ok() || *t == nullptr) {
        Fail("fixed tokenizer",
             absl::StrCat(kFamilies[f], ": ", t.status().ToString()));
      }
      list->push_back(*std::move(t));
    }
    return list;
  }();
  return *(*tokenizers)[family];
}

void Exercise(const server::Tokenizer& tokenizer, absl::string_view text,
              absl::string_view language) {
  for (absl::string_view source : {absl::string_view(), language}) {
    auto ids = tokenizer.EncodeFrom(text, source);
    if (!ids.ok()) {
      FUZZ_CHECK(!ids.status().message().empty(), "an error without a message");
      continue;
    }
    for (int32_t id : *ids) FUZZ_CHECK(id >= 0, absl::StrCat("id ", id));
    tokenizer.Decode(*ids, false);
    tokenizer.Decode(*ids, true);
  }
  (void)tokenizer.LanguageId(language);
}

}  // namespace
}  // namespace attnserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnserve::fuzz;  // NOLINT: the helpers above
  namespace server = attnserve::server;
  if (size == 0) return 0;
  const int mode = data[0] % 4;
  const int family = data[0] / 4 % kFamilyCount;
  absl::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (mode == 0) {
    auto vocab = server::ParseVocabJson(rest, "vocab.json");
    if (!vocab.ok()) {
      FUZZ_CHECK(!vocab.status().message().empty(),
                 "an error without a message");
      return 0;
    }
    FUZZ_CHECK(vocab->ids.size() == vocab->tokens.size(), "not a bijection");
    for (const auto& [token, id] : vocab->ids) {
      FUZZ_CHECK(id >= 0 && id < vocab->end_id && id < server::kMaxVocabJsonId,
                 absl::StrCat("id ", id));
      FUZZ_CHECK(*vocab->Token(id) == token, "ids and tokens disagree");
    }
  } else if (mode == 1) {
    auto config = server::ParseTokenizerConfig(rest, "tokenizer_config.json");
    if (!config.ok()) {
      FUZZ_CHECK(!config.status().message().empty(),
                 "an error without a message");
      return 0;
    }
    FUZZ_CHECK(config->extra_ids >= 0 && config->extra_ids <= 100000,
               "extra_ids out of range");
  } else if (mode == 2) {
    if (rest.empty()) return 0;
    const int which = static_cast<uint8_t>(rest[0]) % 3;
    rest.remove_prefix(1);
    // A copy of the family's directory with one file replaced.
    const std::string dir = absl::StrCat("dir_", kFamilies[family]);
    for (const auto& entry :
         std::filesystem::directory_iterator(FamilyDir(family))) {
      const std::string name = entry.path().filename().string();
      if (name == "golden.json") continue;
      WriteProcessFile(absl::StrCat(dir, "/", name),
                       ReadFile(entry.path().string()));
    }
    const std::string spm_file = family == 0   ? "spiece.model"
                                 : family == 1 ? "source.spm"
                                 : family == 5 ? "merges.txt"
                                               : "sentencepiece.bpe.model";
    const std::string replaced = which == 0   ? "tokenizer_config.json"
                                 : which == 1 ? "vocab.json"
                                              : spm_file;
    WriteProcessFile(absl::StrCat(dir, "/", replaced), rest);
    auto tokenizer =
        server::LoadTokenizer(absl::StrCat(ProcessDir(), "/", dir));
    if (!tokenizer.ok()) {
      FUZZ_CHECK(!tokenizer.status().message().empty(),
                 "an error without a message");
      return 0;
    }
    if (*tokenizer != nullptr) {
      Exercise(**tokenizer, "Hello world, Größe 123 \xe2\x96\x81 \xe9\xbe\x98",
               "fr");
    }
  } else {
    const server::Tokenizer& tokenizer = FixedTokenizer(family);
    Exercise(tokenizer, rest, rest.substr(0, 8));
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 1 < rest.size(); i += 2) {
      ids.push_back(
          static_cast<int16_t>(static_cast<uint8_t>(rest[i]) |
                               static_cast<uint8_t>(rest[i + 1]) << 8));
    }
    tokenizer.Decode(ids, false);
    tokenizer.Decode(ids, true);
  }
  return 0;
}
