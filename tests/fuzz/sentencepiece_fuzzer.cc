// Fuzzes our SentencePiece (server/tokenizers/sentencepiece_model.h): the model
// parser on arbitrary bytes, and Encode / Decode of arbitrary input with fixed
// models from tests/data/spm/.
//
// Input: byte 0 picks the mode (% 3) and, for modes 1 and 2, the fixed model
// (/ 3 % 3: unigram_bytes, bpe_bytes_identity, unigram_rules); the rest is
//   mode 0  a .model file: parsed; when accepted, its first 64 bytes are
//           encoded as text and decoded back;
//   mode 1  text: encoded and decoded;
//   mode 2  ids, two bytes each (little-endian, modulo the piece count),
//           decoded.
// Seeds: tests/fuzz/corpus/sentencepiece/, written by make_spm_golden.py.
//
// Checks, besides "no crash, no sanitizer report":
// - Encode gives ids inside the vocabulary, never a control piece, and Decode
//   accepts them;
// - for the byte-fallback models (no unknown loss) decode(encode(x)) is the
//   normalised x with U+2581 back to spaces, less its leading spaces (at least
//   the dummy prefix; more when the first pieces are only spaces, as in the
//   reference: regressions/sentencepiece/);
// - Decode's output is always valid UTF-8 (pieces are validated, byte runs
//   repaired).

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "server/tokenizers/sentencepiece_model.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

using server::SentencePieceModel;

const SentencePieceModel& FixedModel(int which) {
  static const auto* models = [] {
    auto* list = new std::vector<std::unique_ptr<SentencePieceModel>>();
    for (const char* name : {"unigram_bytes.model", "bpe_bytes_identity.model",
                             "unigram_rules.model"}) {
      std::ifstream in(absl::StrCat(ATTNSERVE_SPM_DATA_DIR, "/", name),
                       std::ios::binary);
      std::stringstream buffer;
      buffer << in.rdbuf();
      auto model = SentencePieceModel::Parse(buffer.str());
      if (!model.ok())
        Fail("fixed model",
             absl::StrCat(name, ": ", model.status().ToString()));
      list->push_back(*std::move(model));
    }
    return list;
  }();
  return *(*models)[which];
}

bool IsValidUtf8(absl::string_view s) {
  while (!s.empty()) {
    size_t length = 0;
    if (!server::DecodeUtf8Char(s, &length)) return false;
    s.remove_prefix(length);
  }
  return true;
}

std::string CheckedDecode(const SentencePieceModel& model,
                          const std::vector<int32_t>& ids) {
  auto text = model.Decode(ids);
  FUZZ_CHECK(text.ok(), text.status().ToString());
  FUZZ_CHECK(IsValidUtf8(*text), "Decode gave invalid UTF-8");
  return *text;
}

void CheckEncode(const SentencePieceModel& model, absl::string_view text) {
  const std::vector<int32_t> ids = model.Encode(text);
  for (int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && id < model.piece_size(),
               absl::StrCat("id ", id, " out of range"));
    FUZZ_CHECK(!model.IsControl(id),
               absl::StrCat("Encode produced control piece ", id));
  }
  const std::string decoded = CheckedDecode(model, ids);
  if (model.byte_fallback() &&
      model.PieceToId(server::kSpaceSymbol) != model.unk_id()) {
    // Decode drops the leading U+2581 of every piece while its output is still
    // empty (sentencepiece_processor.cc does too: "\u2581and" decodes to
    // "and"), so what may differ from the normalised text is only a run of
    // leading spaces, at least one.
    const std::string expected = absl::StrReplaceAll(
        model.Normalize(text), {{server::kSpaceSymbol, " "}});
    const bool suffix = absl::EndsWith(expected, decoded);
    const absl::string_view dropped = absl::string_view(expected).substr(
        0, expected.size() - (suffix ? decoded.size() : 0));
    FUZZ_CHECK(suffix &&
                   dropped.find_first_not_of(' ') == absl::string_view::npos &&
                   (dropped.empty() == !absl::StartsWith(expected, " ")),
               absl::StrCat("decode(encode(x)) is \"", decoded,
                            "\", the normalised x is \"", expected, "\""));
  }
}

}  // namespace
}  // namespace attnserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnserve::fuzz;  // NOLINT: the checks above
  using attnserve::server::SentencePieceModel;
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  const int which = data[0] / 3 % 3;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 1,
                               size - 1);
  if (mode == 0) {
    auto model = SentencePieceModel::Parse(rest);
    if (!model.ok()) {
      FUZZ_CHECK(!model.status().message().empty(),
                 "an error without a message");
      return 0;
    }
    CheckEncode(**model, rest.substr(0, 64));
    CheckEncode(**model, "Hello world, 123 \xe2\x96\x81 caf\xc3\xa9");
  } else if (mode == 1) {
    CheckEncode(FixedModel(which), rest);
  } else {
    const SentencePieceModel& model = FixedModel(which);
    std::vector<int32_t> ids;
    for (size_t i = 0; i + 1 < rest.size(); i += 2) {
      const int v = static_cast<uint8_t>(rest[i]) |
                    static_cast<uint8_t>(rest[i + 1]) << 8;
      ids.push_back(v % model.piece_size());
    }
    CheckedDecode(model, ids);
  }
  return 0;
}
