// BART, as transformers' BartTokenizer (GPT-2's byte-level BPE): the text is
// split by GPT-2's pre-tokenizer regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// each piece's UTF-8 bytes are mapped to printable characters (GPT-2's
// bytes_to_unicode), merged by merges.txt's ranks, and looked up in vocab.json
// (<unk>'s id when missing); the source is <s> tokens </s>, a target prefix
// the tokens alone. Decoding maps the characters back to bytes and reads them
// as UTF-8 with U+FFFD for each maximal invalid subsequence (Python's
// errors="replace").

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/status_macros.h"
#include "server/tokenizers/hf_tokenizer.h"
#include "server/tokenizers/unicode_categories.h"

namespace attnserve::server {
namespace {

// A pre-token longer than this is refused: BPE's merge loop is quadratic in
// it, and the text comes from clients.
constexpr size_t kMaxWordBytes = 1024;
constexpr int64_t kMaxMergesBytes = int64_t{64} << 20;

void AppendUtf8(int32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF), as Python
// decodes it. Returns the sequence's length at s[i] and sets *cp, or returns
// the length of the maximal invalid subpart (>= 1) and sets *cp = -1.
size_t DecodeStrict(absl::string_view s, size_t i, int32_t* cp) {
  const unsigned char c = s[i];
  *cp = -1;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  int n;
  unsigned char low = 0x80, high = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) low = 0xA0;
    if (c == 0xED) high = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) low = 0x90;
    if (c == 0xF4) high = 0x8F;
  } else {
    return 1;
  }
  int32_t value = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size()) return k;
    const unsigned char b = s[i + k];
    if (b < (k == 1 ? low : 0x80) || b > (k == 1 ? high : 0xBF)) return k;
    value = (value << 6) | (b & 0x3F);
  }
  *cp = value;
  return n;
}

struct CodePoint {
  int32_t cp;
  size_t begin;  // byte offset in the text
};

bool IsLetter(int32_t cp) { return IsUnicodeLetter(cp); }
bool IsNumber(int32_t cp) { return IsUnicodeNumber(cp); }
bool IsSpace(int32_t cp) { return IsUnicodeWhiteSpace(cp); }
bool IsOther(int32_t cp) {
  return !IsSpace(cp) && !IsLetter(cp) && !IsNumber(cp);
}

// The end (index into `cps`) of the regex's match at `i` (always > i).
size_t MatchAt(const std::vector<CodePoint>& cps, size_t i) {
  const size_t n = cps.size();
  auto at = [&](size_t k) { return k < n ? cps[k].cp : -1; };
  // 's|'t|'re|'ve|'m|'ll|'d
  if (at(i) == '\'') {
    const int32_t a = at(i + 1), b = at(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
        (a == 'l' && b == 'l')) {
      return i + 3;
    }
  }
  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+', in that order.
  for (bool (*cls)(int32_t) : {IsLetter, IsNumber, IsOther}) {
    size_t k = i;
    if (at(k) == ' ') ++k;
    if (k < n && cls(at(k))) {
      while (k < n && cls(at(k))) ++k;
      return k;
    }
  }
  // '\s+(?!\S)': the whitespace run, less its last character when a
  // non-space follows; then '\s+'.
  size_t end = i;
  while (end < n && IsSpace(at(end))) ++end;
  if (end == i) return i + 1;  // unreachable: every character is in a class
  if (end == n || end - i == 1) return end;
  return end - 1;
}

class BartTokenizer : public HfTokenizer {
 public:
  BartTokenizer(JsonVocab vocab, absl::flat_hash_map<std::string, int> ranks,
                absl::flat_hash_set<int32_t> special, bool add_prefix_space,
                bool clean)
      : HfTokenizer(std::move(special), clean, /*strip=*/false),
        vocab_(std::move(vocab)),
        ranks_(std::move(ranks)),
        add_prefix_space_(add_prefix_space) {
    // GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves,
    // the others to U+0100 upwards in byte order.
    int next = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const int32_t cp = printable ? b : 256 + next++;
      AppendUtf8(cp, &byte_chars_[b]);
      char_bytes_.emplace(cp, static_cast<uint8_t>(b));
    }
    unk_id_ = vocab_.Find("<unk>");
    bos_id_ = vocab_.Find("<s>");
    eos_id_ = vocab_.Find("</s>");
  }

  absl::StatusOr<std::vector<int32_t>> EncodeFrom(
      absl::string_view text,
      absl::string_view source_language) const override {
    if (!source_language.empty()) {
      return absl::InvalidArgumentError(
          "this model's tokenizer (BART) has no source languages");
    }
    ASSIGN_OR_RETURN(std::vector<int32_t> tokens, EncodeTargetPrefix(text));
    std::vector<int32_t> ids = {bos_id_};
    ids.insert(ids.end(), tokens.begin(), tokens.end());
    ids.push_back(eos_id_);
    return ids;
  }

  // One vocabulary for both sides: the source's tokens without <s> and </s>.
  absl::StatusOr<std::vector<int32_t>> EncodeTargetPrefix(
      absl::string_view raw) const override {
    const std::string text =
        add_prefix_space_ ? absl::StrCat(" ", raw) : std::string(raw);
    std::vector<CodePoint> cps;
    for (size_t i = 0; i < text.size();) {
      int32_t cp;
      const size_t length = DecodeStrict(text, i, &cp);
      if (cp < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("text is not valid UTF-8 at byte ", i));
      }
      cps.push_back({cp, i});
      i += length;
    }
    std::vector<int32_t> ids;
    for (size_t i = 0; i < cps.size();) {
      const size_t end = MatchAt(cps, i);
      const size_t begin_byte = cps[i].begin;
      const size_t end_byte = end < cps.size() ? cps[end].begin : text.size();
      if (end_byte - begin_byte > kMaxWordBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "text: the word at byte ", begin_byte, " is ",
            end_byte - begin_byte, " bytes, more than the limit of ",
            kMaxWordBytes, " for byte-level BPE"));
      }
      for (const std::string& token : Bpe(absl::string_view(text).substr(
               begin_byte, end_byte - begin_byte))) {
        const int32_t id = vocab_.Find(token);
        ids.push_back(id < 0 ? unk_id_ : id);
      }
      i = end;
    }
    return ids;
  }

 protected:
  std::string TokensToText(absl::Span<const int32_t> ids,
                           bool continues) const override {
    std::string bytes;
    for (int32_t id : ids) {
      const std::string* token = vocab_.Token(id);
      if (token == nullptr) continue;  // transformers would fail on None
      for (size_t i = 0; i < token->size();) {
        int32_t cp;
        const size_t length = DecodeStrict(*token, i, &cp);
        auto it = char_bytes_.find(cp);
        if (cp >= 0 && it != char_bytes_.end()) {
          bytes.push_back(static_cast<char>(it->second));
        } else {
          bytes.append(*token, i, length);  // an added token: its UTF-8
        }
        i += length;
      }
    }
    std::string text;
    for (size_t i = 0; i < bytes.size();) {
      int32_t cp;
      const size_t length = DecodeStrict(bytes, i, &cp);
      if (cp < 0) {
        text += "\xEF\xBF\xBD";
      } else {
        text.append(bytes, i, length);
      }
      i += length;
    }
    return text;
  }

 private:
  // GPT-2's bpe(): merge the lowest-ranked adjacent pair everywhere (left to
  // right), until no pair has a rank.
  std::vector<std::string> Bpe(absl::string_view word) const {
    std::vector<std::string> symbols;
    for (unsigned char b : word) symbols.push_back(byte_chars_[b]);
    std::string key;
    while (symbols.size() > 1) {
      int best = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        key.assign(symbols[i]).append("\n").append(symbols[i + 1]);
        auto it = ranks_.find(key);
        if (it != ranks_.end() && (best < 0 || it->second < best)) {
          best = it->second;
          best_i = i;
        }
      }
      if (best < 0) break;
      const std::string first = symbols[best_i], second = symbols[best_i + 1];
      std::vector<std::string> merged;
      merged.reserve(symbols.size());
      for (size_t i = 0; i < symbols.size();) {
        if (i + 1 < symbols.size() && symbols[i] == first &&
            symbols[i + 1] == second) {
          merged.push_back(first + second);
          i += 2;
        } else {
          merged.push_back(std::move(symbols[i]));
          i += 1;
        }
      }
      symbols = std::move(merged);
    }
    return symbols;
  }

  JsonVocab vocab_;
  absl::flat_hash_map<std::string, int> ranks_;  // "first\nsecond" -> rank
  std::string byte_chars_[256];
  absl::flat_hash_map<int32_t, uint8_t> char_bytes_;
  bool add_prefix_space_;
  int32_t unk_id_, bos_id_, eos_id_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadBartTokenizer(
    const std::string& model_dir, const TokenizerConfig& config) {
  absl::StatusOr<JsonVocab> vocab = ReadVocabJson(model_dir, "vocab.json");
  if (!vocab.ok()) return vocab.status();
  for (const char* required : {"<unk>", "<s>", "</s>"}) {
    if (vocab->Find(required) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          model_dir, "/vocab.json: has no \"", required, "\" token"));
    }
  }
  absl::StatusOr<std::string> merges =
      ReadTokenizerFile(model_dir, "merges.txt", kMaxMergesBytes);
  if (!merges.ok()) return merges.status();
  // As transformers reads it: the lines between the first (#version) and the
  // last (after the final newline); a later duplicate takes the later rank;
  // a line that is not two tokens can never match.
  std::vector<absl::string_view> lines = absl::StrSplit(*merges, '\n');
  absl::flat_hash_map<std::string, int> ranks;
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    std::vector<absl::string_view> parts = absl::StrSplit(
        lines[i], absl::ByAnyChar(" \t\r\v\f"), absl::SkipEmpty());
    if (parts.size() != 2) continue;
    ranks[absl::StrCat(parts[0], "\n", parts[1])] = static_cast<int>(i - 1);
  }
  absl::flat_hash_set<int32_t> special;
  const int32_t unk = vocab->Find("<unk>");
  for (const char* token : {"<s>", "</s>", "<unk>", "<pad>", "<mask>"}) {
    const int32_t id = vocab->Find(token);
    special.insert(id < 0 ? unk : id);
  }
  return std::unique_ptr<Tokenizer>(std::make_unique<BartTokenizer>(
      *std::move(vocab), std::move(ranks), std::move(special),
      config.add_prefix_space, config.clean_up_tokenization_spaces));
}

}  // namespace attnserve::server
