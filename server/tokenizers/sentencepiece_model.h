#pragma once
// A SentencePiece tokenizer of our own (docs/tokenizers.md says why not
// libsentencepiece): parses a `.model` file (sentencepiece.ModelProto) with our
// libprotobuf, and encodes and decodes exactly as sentencepiece 0.1.97 does for
// unigram and BPE models (Marian's source.spm / target.spm, T5's spiece.model,
// mBART / M2M100 / NLLB's sentencepiece.bpe.model).
//
// Ids are the model's own piece ids (its index in ModelProto.pieces); mapping
// them to a checkpoint's vocabulary (Marian's vocab.json, fairseq's offsets) is
// the caller's job. Not implemented: sampling, n-best, WORD and CHAR models,
// treat_whitespace_as_suffix, denormalisation rules (such models are refused at
// Parse, naming the option).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "sentencepiece/sentencepiece_model.pb.h"
#include "server/tokenizers/sentencepiece_normalizer.h"

namespace attnserve::server {

class SentencePieceModel {
 public:
  // Model files larger than this are refused (NLLB's 256k-piece model is ~5
  // MB).
  static constexpr size_t kMaxModelBytes = 64 << 20;

  // Parses and validates a serialized ModelProto (untrusted bytes): every piece
  // non-empty, valid UTF-8, unique, with a finite score and a known type;
  // exactly one UNKNOWN piece; all 256 <0xNN> pieces iff byte_fallback; special
  // ids in range; a well-formed normaliser map. Errors are INVALID_ARGUMENT
  // naming the field and piece.
  static absl::StatusOr<std::unique_ptr<SentencePieceModel>> Parse(
      absl::string_view bytes);

  // The piece ids of `text` as SentencePieceProcessor::EncodeAsIds gives them
  // (no BOS/EOS). Any bytes are accepted (malformed UTF-8 is normalised to
  // U+FFFD). Thread-safe.
  std::vector<int32_t> Encode(absl::string_view text) const;

  // The pieces of `text` as EncodeAsPieces (encode(out_type=str)) gives them:
  // the vocabulary's piece, except that an unknown run is its normalised
  // surface text ("\u2581" + "龘", not "<unk>"). Thread-safe.
  std::vector<std::string> EncodeAsPieces(absl::string_view text) const;

  // The text of `ids` as SentencePieceProcessor::DecodeIds gives it: control
  // pieces vanish, <unk> becomes trainer_spec.unk_surface (" \u2047 " by
  // default), U+2581 becomes a space (and is dropped at the very start unless
  // the model has neither add_dummy_prefix nor remove_extra_whitespaces), runs
  // of byte pieces are reassembled into UTF-8 with U+FFFD for each invalid
  // byte. An id outside [0, piece_size()) is INVALID_ARGUMENT. Thread-safe.
  // `keep_leading_space`: the ids continue earlier text (a streamed piece), so
  // a leading U+2581 is a space like any other.
  absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids,
                                     bool keep_leading_space = false) const;

  // The text of `pieces` as SentencePieceProcessor::DecodePieces gives it
  // (what Hugging Face's tokenizers call sp_model.decode on token strings):
  // as Decode for the pieces of the vocabulary; a string that is not one of
  // them comes out verbatim (U+2581 included). Thread-safe.
  std::string DecodePieces(absl::Span<const std::string> pieces,
                           bool keep_leading_space = false) const;

  // The normalised text Encode segments (for tests and diagnostics).
  std::string Normalize(absl::string_view text) const {
    return normalizer_->Normalize(text);
  }

  int piece_size() const { return static_cast<int>(pieces_.size()); }
  // unk_id() if `piece` is not in the vocabulary.
  int PieceToId(absl::string_view piece) const;
  // `id` must be in [0, piece_size()).
  const std::string& IdToPiece(int id) const { return pieces_[id].piece; }
  float GetScore(int id) const { return pieces_[id].score; }
  sentencepiece::ModelProto::SentencePiece::Type GetType(int id) const {
    return pieces_[id].type;
  }
  bool IsControl(int id) const { return GetType(id) == Piece::CONTROL; }
  bool IsUnknown(int id) const { return GetType(id) == Piece::UNKNOWN; }
  bool IsByte(int id) const { return GetType(id) == Piece::BYTE; }

  // The special pieces, as SentencePieceProcessor reports them: unk is the
  // UNKNOWN piece; bos/eos/pad are the ids of trainer_spec.{bos,eos,pad}_piece
  // when that is a CONTROL piece, else -1.
  int unk_id() const { return unk_id_; }
  int bos_id() const { return bos_id_; }
  int eos_id() const { return eos_id_; }
  int pad_id() const { return pad_id_; }
  bool is_bpe() const { return bpe_; }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  using Piece = sentencepiece::ModelProto::SentencePiece;
  struct PieceInfo {
    std::string piece;
    float score;
    Piece::Type type;
  };
  // (piece, id) as the segmenters produce them; the views point into the
  // normalised text or the vocabulary.
  using Segments = std::vector<std::pair<absl::string_view, int>>;

  SentencePieceModel() = default;
  absl::Status Init(const sentencepiece::ModelProto& proto);

  // Encode's (piece, id) pairs, in order, to `emit`.
  void ForEachPiece(absl::string_view text,
                    absl::FunctionRef<void(absl::string_view, int)> emit) const;
  Segments EncodeUnigram(
      absl::string_view normalized) const;  // sentencepiece_unigram.cc
  // (piece text, id) with id -1 for text outside the vocabulary.
  std::string DecodeSegments(
      absl::Span<const std::pair<absl::string_view, int>> pieces,
      bool keep_leading_space) const;
  Segments EncodeBpe(
      absl::string_view normalized) const;  // sentencepiece_bpe.cc
  // The id of a NORMAL, USER_DEFINED or UNUSED piece, or -1.
  int FindNormalPiece(absl::string_view piece) const {
    auto it = normal_pieces_.find(piece);
    return it == normal_pieces_.end() ? -1 : it->second;
  }

  std::vector<PieceInfo> pieces_;
  // Views into pieces_[i].piece (pieces_ is never resized after Init).
  absl::flat_hash_map<absl::string_view, int>
      normal_pieces_;  // NORMAL, USER_DEFINED, UNUSED
  absl::flat_hash_map<absl::string_view, int>
      reserved_pieces_;         // CONTROL, UNKNOWN, BYTE
  size_t max_piece_bytes_ = 0;  // longest normal piece
  int byte_ids_[256] = {};      // <0xNN> piece ids, when byte_fallback_
  std::unique_ptr<SentencePieceNormalizer> normalizer_;
  std::string unk_surface_;
  float min_score_ = 0;  // over NORMAL pieces, as SentencePiece computes them
  float max_score_ = 0;
  int unk_id_ = -1;
  int bos_id_ = -1;
  int eos_id_ = -1;
  int pad_id_ = -1;
  bool bpe_ = false;
  bool byte_fallback_ = false;
  // Decode drops a leading U+2581 (add_dummy_prefix ||
  // remove_extra_whitespaces).
  bool strip_leading_space_ = true;
};

}  // namespace attnserve::server
