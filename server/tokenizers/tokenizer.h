#pragma once
// Text <-> token ids for requests that send `text`.
//
// A model directory has a tokenizer when its config.json names one with the key
// "tokenizer" (an addition to the base format; docs/model-format.md):
//   "char"        one token per Unicode character (UTF-8 code point);
//   "whitespace"  one token per run of non-whitespace characters; output words
//                 are joined by single spaces;
// both read "vocab_file" (default "vocab.txt"): one token per line, line number
// (0-based) = id, taken verbatim (only the '\n' ends a line, so a line holding
// one space is the space token). Without the key, a directory with vocab.txt
// gets the whitespace tokenizer; without either, ids only. "sentencepiece" is
// recognised and refused with a clear error: this build does not include it
// (see env-notes: it must be isolated in its own module).
//
// A character or word missing from the vocabulary is an error naming it (the
// server answers INVALID_ARGUMENT); nothing is silently dropped. Decoding skips
// the pad, bos and eos ids.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace attnserve::server {

// Implementations must be thread-safe for concurrent const calls (gRPC threads
// encode, the inference thread decodes stream pieces).
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Source token ids for `text`, without the EOS that config.add_eos_to_source
  // asks for.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(
      absl::string_view text) const = 0;
  // Text of `ids`. `continues`: the ids follow earlier ids of the same output
  // whose text is not empty (a streamed piece), so concatenating the pieces of
  // a stream gives exactly the text of decoding all ids at once. (Pieces that
  // decode to nothing, e.g. only special ids, do not count: the whitespace
  // tokenizer would otherwise start the text with a space.)
  virtual std::string Decode(absl::Span<const int32_t> ids,
                             bool continues = false) const = 0;
};

// The tokenizer of a model directory, or nullptr when it has none. Errors name
// the file and line (unreadable vocab, duplicate tokens, more tokens than the
// model's vocab_size, an unknown tokenizer kind).
absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(
    const std::string& model_dir);

}  // namespace attnserve::server
