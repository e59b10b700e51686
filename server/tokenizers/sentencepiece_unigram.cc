// Unigram segmentation: sentencepiece 0.1.97's unigram::Model::EncodeOptimized,
// the default encoder there. Ties and float rounding follow it exactly, since
// any deviation changes ids: best path per end byte, candidates in increasing
// start and length order, a candidate replaces the best only when strictly
// better.

#include <algorithm>

#include "server/tokenizers/sentencepiece_model.h"

namespace attnserve::server {

SentencePieceModel::Segments SentencePieceModel::EncodeUnigram(
    absl::string_view normalized) const {
  struct BestPath {
    int id = -1;
    float score = 0;     // of the best path ending here
    int starts_at = -1;  // byte where its last piece starts
  };
  constexpr float kUnkPenalty = 10.0;
  const float unk_score = min_score_ - kUnkPenalty;
  const int size = static_cast<int>(normalized.size());
  std::vector<BestPath> best(size + 1);
  int starts_at = 0;
  while (starts_at < size) {
    const float score_here = best[starts_at].score;
    const int char_len =
        static_cast<int>(OneCharLen(normalized.substr(starts_at)));
    bool has_single_char = false;
    const int max_end =
        static_cast<int>(std::min<size_t>(size, starts_at + max_piece_bytes_));
    // Candidates end on character boundaries only: the normalised text is valid
    // UTF-8 and so is every piece (Parse checks), so no piece can end inside a
    // character.
    for (int end = starts_at; end < max_end;) {
      end += static_cast<int>(OneCharLen(normalized.substr(end)));
      if (end > max_end) break;
      const int id =
          FindNormalPiece(normalized.substr(starts_at, end - starts_at));
      if (id < 0 || pieces_[id].type == Piece::UNUSED) continue;
      const size_t length = end - starts_at;
      // The types are SentencePiece's: a user-defined score is computed in
      // double (size_t * float - double), a normal one stays float.
      BestPath& target = best[end];
      if (pieces_[id].type == Piece::USER_DEFINED) {
        const auto score = length * max_score_ - 0.1;
        const auto candidate = score + score_here;
        if (target.starts_at == -1 || candidate > target.score) {
          target = {id, static_cast<float>(candidate), starts_at};
        }
      } else {
        const float candidate = pieces_[id].score + score_here;
        if (target.starts_at == -1 || candidate > target.score) {
          target = {id, candidate, starts_at};
        }
      }
      if (static_cast<int>(length) == char_len) has_single_char = true;
    }
    if (!has_single_char) {
      BestPath& target = best[starts_at + char_len];
      const float candidate = unk_score + score_here;
      if (target.starts_at == -1 || candidate > target.score) {
        target = {unk_id_, candidate, starts_at};
      }
    }
    starts_at += char_len;
  }
  Segments out;
  for (int end = size; end > 0; end = best[end].starts_at) {
    const BestPath& node = best[end];
    out.emplace_back(normalized.substr(node.starts_at, end - node.starts_at),
                     node.id);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace attnserve::server
