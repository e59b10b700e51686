#include "server/tokenizers/sentencepiece_model.h"

#include <cfloat>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "engine/quote_text.h"

namespace attnserve::server {
namespace {

using sentencepiece::ModelProto;
using sentencepiece::TrainerSpec;
using Piece = ModelProto::SentencePiece;

// Far above any real vocabulary (NLLB: 256206 pieces) and piece (16
// characters).
constexpr int kMaxPieces = 1 << 20;
constexpr size_t kMaxPieceBytes = 512;

std::string ByteToPiece(uint8_t byte) {
  return absl::StrFormat("<0x%02X>", byte);
}

// The byte of a "<0xNN>" piece (uppercase hex, as SentencePiece writes them),
// or -1.
int PieceToByte(absl::string_view piece) {
  if (piece.size() != 6 || !absl::StartsWith(piece, "<0x") || piece[5] != '>')
    return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    value <<= 4;
    if (c >= '0' && c <= '9') {
      value |= c - '0';
    } else if (c >= 'A' && c <= 'F') {
      value |= c - 'A' + 10;
    } else {
      return -1;
    }
  }
  return value;
}

bool IsValidUtf8(absl::string_view s) {
  while (!s.empty()) {
    size_t length = 0;
    if (!DecodeUtf8Char(s, &length)) return false;
    s.remove_prefix(length);
  }
  return true;
}

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("SentencePiece model: ", message));
}

std::string Describe(int id, absl::string_view piece) {
  return absl::StrCat("piece ", id, " (", engine::QuoteText(piece), ")");
}

}  // namespace

absl::StatusOr<std::unique_ptr<SentencePieceModel>> SentencePieceModel::Parse(
    absl::string_view bytes) {
  if (bytes.size() > kMaxModelBytes) {
    return Invalid(absl::StrCat("the file is ", bytes.size(),
                                " bytes, more than the limit of ",
                                kMaxModelBytes));
  }
  ModelProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid(
        absl::StrCat("the ", bytes.size(),
                     " bytes are not a serialized sentencepiece.ModelProto"));
  }
  auto model = std::unique_ptr<SentencePieceModel>(new SentencePieceModel());
  if (absl::Status s = model->Init(proto); !s.ok()) return s;
  return model;
}

absl::Status SentencePieceModel::Init(const ModelProto& proto) {
  const TrainerSpec& trainer = proto.trainer_spec();
  switch (trainer.model_type()) {
    case TrainerSpec::UNIGRAM:
      break;
    case TrainerSpec::BPE:
      bpe_ = true;
      break;
    default:
      return Invalid(
          absl::StrCat("trainer_spec.model_type ",
                       TrainerSpec::ModelType_Name(trainer.model_type()),
                       " is not supported (only UNIGRAM and BPE)"));
  }
  // Unknown fields (options of newer trainers) are ignored, as SentencePiece
  // ignores them; an unknown model_type value reads as the default UNIGRAM
  // there and here.
  if (trainer.treat_whitespace_as_suffix()) {
    return Invalid("trainer_spec.treat_whitespace_as_suffix is not supported");
  }
  if (proto.has_denormalizer_spec() &&
      !proto.denormalizer_spec().precompiled_charsmap().empty()) {
    return Invalid("denormalizer_spec rules are not supported");
  }
  byte_fallback_ = trainer.byte_fallback();
  if (proto.pieces_size() == 0) return Invalid("it has no pieces");
  if (proto.pieces_size() > kMaxPieces) {
    return Invalid(absl::StrCat("it has ", proto.pieces_size(),
                                " pieces, more than the limit of ",
                                kMaxPieces));
  }

  pieces_.reserve(proto.pieces_size());
  for (int id = 0; id < proto.pieces_size(); ++id) {
    const Piece& p = proto.pieces(id);
    if (!p.unknown_fields().empty()) {
      return Invalid(absl::StrCat(Describe(id, p.piece()),
                                  " has unknown fields or an unknown type"));
    }
    if (p.piece().empty())
      return Invalid(absl::StrCat("piece ", id, " is empty"));
    if (p.piece().size() > kMaxPieceBytes) {
      return Invalid(absl::StrCat("piece ", id, " is ", p.piece().size(),
                                  " bytes, more than the limit of ",
                                  kMaxPieceBytes));
    }
    if (!IsValidUtf8(p.piece())) {
      return Invalid(
          absl::StrCat(Describe(id, p.piece()), " is not valid UTF-8"));
    }
    if (!std::isfinite(p.score())) {
      return Invalid(absl::StrCat(Describe(id, p.piece()),
                                  " has a score that is not finite"));
    }
    pieces_.push_back({p.piece(), p.score(), p.type()});
  }

  std::vector<std::string> user_defined;
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  min_score_ = FLT_MAX;
  max_score_ =
      FLT_MIN;  // sic: SentencePiece starts here, so max_score_ >= 0 always
  for (int id = 0; id < piece_size(); ++id) {
    const PieceInfo& p = pieces_[id];
    const bool normal = p.type == Piece::NORMAL ||
                        p.type == Piece::USER_DEFINED ||
                        p.type == Piece::UNUSED;
    auto& map = normal ? normal_pieces_ : reserved_pieces_;
    auto [it, inserted] = map.emplace(p.piece, id);
    if (!inserted) {
      return Invalid(absl::StrCat(Describe(id, p.piece), " duplicates piece ",
                                  it->second));
    }
    const auto& other = normal ? reserved_pieces_ : normal_pieces_;
    if (auto dup = other.find(p.piece); dup != other.end()) {
      return Invalid(absl::StrCat(Describe(id, p.piece), " duplicates piece ",
                                  dup->second));
    }
    if (normal) max_piece_bytes_ = std::max(max_piece_bytes_, p.piece.size());
    if (p.type == Piece::NORMAL) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
    if (p.type == Piece::USER_DEFINED) user_defined.push_back(p.piece);
    if (p.type == Piece::UNKNOWN) {
      if (unk_id_ >= 0) {
        return Invalid(absl::StrCat(Describe(id, p.piece),
                                    " is a second UNKNOWN piece (piece ",
                                    unk_id_, " is the first)"));
      }
      unk_id_ = id;
    }
    if (p.type == Piece::BYTE) {
      if (!byte_fallback_) {
        return Invalid(absl::StrCat(
            Describe(id, p.piece),
            " is a BYTE piece but trainer_spec.byte_fallback is false"));
      }
      const int byte = PieceToByte(p.piece);
      if (byte < 0) {
        return Invalid(absl::StrCat(Describe(id, p.piece),
                                    " is a BYTE piece not of the form <0xNN>"));
      }
      byte_ids_[byte] = id;
    }
  }
  if (unk_id_ < 0) return Invalid("it has no UNKNOWN piece");
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      if (byte_ids_[b] < 0) {
        return Invalid(absl::StrCat(
            "trainer_spec.byte_fallback is true but the BYTE piece ",
            ByteToPiece(b), " is missing"));
      }
    }
  }
  const auto check_id = [&](absl::string_view name, int id) -> absl::Status {
    if (id < -1 || id >= piece_size()) {
      return Invalid(absl::StrCat("trainer_spec.", name, " ", id,
                                  " is outside [-1, ", piece_size(), ")"));
    }
    return absl::OkStatus();
  };
  for (const auto& [name, id] :
       {std::pair<absl::string_view, int>{"unk_id", trainer.unk_id()},
        {"bos_id", trainer.bos_id()},
        {"eos_id", trainer.eos_id()},
        {"pad_id", trainer.pad_id()}}) {
    if (absl::Status s = check_id(name, id); !s.ok()) return s;
  }
  const auto control_id = [&](const std::string& piece) {
    const int id = PieceToId(piece);
    return IsControl(id) ? id : -1;
  };
  bos_id_ = control_id(trainer.bos_piece());
  eos_id_ = control_id(trainer.eos_piece());
  pad_id_ = control_id(trainer.pad_piece());
  unk_surface_ = trainer.unk_surface();
  strip_leading_space_ = proto.normalizer_spec().add_dummy_prefix() ||
                         proto.normalizer_spec().remove_extra_whitespaces();

  auto normalizer =
      SentencePieceNormalizer::Create(proto.normalizer_spec(), user_defined);
  if (!normalizer.ok()) return Invalid(normalizer.status().message());
  normalizer_ = *std::move(normalizer);
  return absl::OkStatus();
}

int SentencePieceModel::PieceToId(absl::string_view piece) const {
  if (auto it = reserved_pieces_.find(piece); it != reserved_pieces_.end())
    return it->second;
  const int id = FindNormalPiece(piece);
  return id < 0 ? unk_id_ : id;
}

void SentencePieceModel::ForEachPiece(
    absl::string_view text,
    absl::FunctionRef<void(absl::string_view, int)> emit) const {
  const std::string normalized = normalizer_->Normalize(text);
  if (normalized.empty()) return;
  const Segments raw = bpe_ ? EncodeBpe(normalized) : EncodeUnigram(normalized);
  // Adjacent unknown pieces become one <unk>, as SentencePieceProcessor gives
  // them.
  Segments segments;
  segments.reserve(raw.size());
  for (const auto& [piece, id] : raw) {
    if (id == unk_id_ && !segments.empty() &&
        segments.back().second == unk_id_ &&
        segments.back().first.data() + segments.back().first.size() ==
            piece.data()) {
      segments.back().first =
          absl::string_view(segments.back().first.data(),
                            segments.back().first.size() + piece.size());
    } else {
      segments.emplace_back(piece, id);
    }
  }
  for (const auto& [piece, id] : segments) {
    if (byte_fallback_ && IsUnknown(id)) {
      // An unknown run becomes its UTF-8 bytes (SentencePieceProcessor's
      // PopulateSentencePieceText).
      for (char c : piece) {
        const int byte_id = byte_ids_[static_cast<uint8_t>(c)];
        emit(pieces_[byte_id].piece, byte_id);
      }
    } else {
      emit(piece, id);
    }
  }
}

std::vector<int32_t> SentencePieceModel::Encode(absl::string_view text) const {
  std::vector<int32_t> ids;
  ForEachPiece(text, [&](absl::string_view, int id) { ids.push_back(id); });
  return ids;
}

std::vector<std::string> SentencePieceModel::EncodeAsPieces(
    absl::string_view text) const {
  std::vector<std::string> pieces;
  ForEachPiece(
      text, [&](absl::string_view piece, int) { pieces.emplace_back(piece); });
  return pieces;
}

absl::StatusOr<std::string> SentencePieceModel::Decode(
    absl::Span<const int32_t> ids, bool keep_leading_space) const {
  std::vector<std::pair<absl::string_view, int>> pieces;
  pieces.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= piece_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", i, ": id ", ids[i],
                       " is outside the vocabulary [0, ", piece_size(), ")"));
    }
    pieces.emplace_back(pieces_[ids[i]].piece, ids[i]);
  }
  return DecodeSegments(pieces, keep_leading_space);
}

std::string SentencePieceModel::DecodePieces(
    absl::Span<const std::string> pieces, bool keep_leading_space) const {
  std::vector<std::pair<absl::string_view, int>> segments;
  segments.reserve(pieces.size());
  for (const std::string& piece : pieces) {
    int id = PieceToId(piece);
    // SentencePieceProcessor::Decode(pieces) gives a piece that is not in the
    // vocabulary (PieceToId says unknown, but it is not the unknown piece's
    // own text) back verbatim.
    if (IsUnknown(id) && piece != pieces_[id].piece) id = -1;
    segments.emplace_back(piece, id);
  }
  return DecodeSegments(segments, keep_leading_space);
}

std::string SentencePieceModel::DecodeSegments(
    absl::Span<const std::pair<absl::string_view, int>> pieces,
    bool keep_leading_space) const {
  std::string text;
  // A run of byte pieces decodes as UTF-8, one U+FFFD per byte that does not
  // start a valid character (SentencePieceProcessor::Decode's
  // ProcessBytePieces).
  std::string bytes;
  const auto flush_bytes = [&]() {
    absl::string_view rest = bytes;
    while (!rest.empty()) {
      size_t length = 0;
      if (DecodeUtf8Char(rest, &length)) {
        text.append(rest.data(), length);
      } else {
        text.append("\xEF\xBF\xBD");
      }
      rest.remove_prefix(length);
    }
    bytes.clear();
  };
  for (const auto& [text_of_piece, id] : pieces) {
    if (id < 0) {  // not in the vocabulary: verbatim
      flush_bytes();
      text.append(text_of_piece.data(), text_of_piece.size());
      continue;
    }
    if (IsByte(id)) {
      bytes.push_back(static_cast<char>(PieceToByte(pieces_[id].piece)));
      continue;
    }
    flush_bytes();
    if (IsControl(id)) continue;  // invisible: <s>, </s>, language tags
    if (IsUnknown(id)) {
      text += unk_surface_;
      continue;
    }
    absl::string_view piece = pieces_[id].piece;
    // The dummy prefix (or any leading space) goes when nothing has been
    // written yet.
    if (text.empty() && strip_leading_space_ && !keep_leading_space) {
      absl::ConsumePrefix(&piece, kSpaceSymbol);
    }
    text += absl::StrReplaceAll(piece, {{kSpaceSymbol, " "}});
  }
  flush_bytes();
  return text;
}

}  // namespace attnserve::server
