#pragma once
// Reading the files a Hugging Face tokenizer directory ships: vocab.json,
// SentencePiece models (source.spm, spiece.model, sentencepiece.bpe.model) and
// tokenizer_config.json. They come from third parties: every read is bounded,
// every value checked, and every error names the file.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/tokenizers/sentencepiece_model.h"

namespace attnserve::server {

// vocab.json of the largest supported checkpoints (M2M100: 128k entries, ~2.5
// MB) with ample room; tokenizer_config.json holds at most a few thousand
// added tokens.
inline constexpr int64_t kMaxVocabJsonBytes = int64_t{64} << 20;
inline constexpr int64_t kMaxTokenizerConfigBytes = int64_t{16} << 20;
// Ids of a vocab.json are below this (config.json allows at most 4M tokens).
inline constexpr int32_t kMaxVocabJsonId = 1 << 22;

// A vocab.json: token -> id, and back.
struct JsonVocab {
  absl::flat_hash_map<std::string, int32_t> ids;
  absl::flat_hash_map<int32_t, std::string> tokens;
  // One more than the largest id (0 when empty).
  int32_t end_id = 0;

  // The id of `token`, or -1.
  int32_t Find(absl::string_view token) const {
    auto it = ids.find(token);
    return it == ids.end() ? -1 : it->second;
  }
  // The token of `id`, or nullptr.
  const std::string* Token(int32_t id) const {
    auto it = tokens.find(id);
    return it == tokens.end() ? nullptr : &it->second;
  }
};

// Parses vocab.json text: a JSON object whose values are integers in [0,
// kMaxVocabJsonId), no id given to two tokens. Errors name `path` and the
// token.
absl::StatusOr<JsonVocab> ParseVocabJson(absl::string_view text,
                                         absl::string_view path);

// `name` inside `model_dir` (confined to it, engine::ResolveModelFile),
// read with at most `max_bytes`; NOT_FOUND naming the path when absent.
absl::StatusOr<std::string> ReadTokenizerFile(const std::string& model_dir,
                                              const std::string& name,
                                              int64_t max_bytes);

absl::StatusOr<JsonVocab> ReadVocabJson(const std::string& model_dir,
                                        const std::string& name);

// A SentencePiece model file; errors are prefixed with its path.
absl::StatusOr<std::unique_ptr<SentencePieceModel>> ReadSentencePieceFile(
    const std::string& model_dir, const std::string& name);

// The keys of tokenizer_config.json that change ids or text (all optional;
// the defaults are Hugging Face's).
struct TokenizerConfig {
  std::string path;               // for errors
  std::string tokenizer_class;    // "" when absent
  std::string src_lang;           // "" when absent: the family's default
  int extra_ids = 100;            // T5's sentinels <extra_id_N>
  bool legacy_behaviour = false;  // NLLB: [tokens, </s>, lang]
  bool clean_up_tokenization_spaces = false;  // " ." -> "." etc. on decode
  bool separate_vocabs = false;               // Marian: target_vocab.json
  std::string language_codes = "m2m100";      // M2M100: or "wmt21"
  bool add_prefix_space = false;              // BART: a space before the text
  // Strings, or AddedToken objects' "content".
  std::vector<std::string> additional_special_tokens;
  bool has_additional_special_tokens = false;
};

absl::StatusOr<TokenizerConfig> ParseTokenizerConfig(absl::string_view text,
                                                     absl::string_view path);

// tokenizer_config.json of `model_dir`; its defaults when the file is absent.
absl::StatusOr<TokenizerConfig> ReadTokenizerConfig(
    const std::string& model_dir);

}  // namespace attnserve::server
