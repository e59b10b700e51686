// BPE segmentation: sentencepiece 0.1.97's bpe::Model::SampleEncode without
// dropout. Start from characters (user-defined symbols whole and frozen),
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring
// piece (leftmost on ties), then split any UNUSED result back into the pieces
// it was merged from.

#include <algorithm>
#include <functional>
#include <queue>

#include "server/tokenizers/sentencepiece_model.h"

namespace attnserve::server {

SentencePieceModel::Segments SentencePieceModel::EncodeBpe(
    absl::string_view normalized) const {
  struct SymbolPair {
    int left;
    int right;
    float score;
    size_t size;
  };
  struct Compare {
    bool operator()(const SymbolPair& a, const SymbolPair& b) const {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
  };
  struct Symbol {
    int prev;
    int next;
    bool freeze;
    absl::string_view piece;
  };
  std::priority_queue<SymbolPair, std::vector<SymbolPair>, Compare> agenda;
  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  // An UNUSED merged piece -> the two symbols it was made of.
  absl::flat_hash_map<absl::string_view,
                      std::pair<absl::string_view, absl::string_view>>
      rev_merge;

  const auto maybe_add_pair = [&](int left, int right) {
    if (left == -1 || right == -1 || symbols[left].freeze ||
        symbols[right].freeze)
      return;
    const absl::string_view piece(
        symbols[left].piece.data(),
        symbols[left].piece.size() + symbols[right].piece.size());
    const int id = FindNormalPiece(piece);
    if (id < 0) return;
    agenda.push({left, right, pieces_[id].score, piece.size()});
    if (pieces_[id].type == Piece::UNUSED) {
      rev_merge[piece] = {symbols[left].piece, symbols[right].piece};
    }
  };

  int index = 0;
  absl::string_view rest = normalized;
  while (!rest.empty()) {
    Symbol s;
    const size_t length = normalizer_->matcher().PrefixMatch(rest, &s.freeze);
    s.piece = rest.substr(0, length);
    s.prev = index == 0 ? -1 : index - 1;
    rest.remove_prefix(length);
    s.next = rest.empty() ? -1 : index + 1;
    ++index;
    symbols.push_back(s);
  }
  if (symbols.empty()) return {};
  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(i - 1, i);

  while (!agenda.empty()) {
    const SymbolPair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    // Stale: one side was merged away or grew since this pair was queued.
    if (left.piece.empty() || right.piece.empty() ||
        left.piece.size() + right.piece.size() != top.size) {
      continue;
    }
    left.piece = absl::string_view(left.piece.data(),
                                   left.piece.size() + right.piece.size());
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.piece = absl::string_view();
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  Segments out;
  // Recursion depth is bounded by the piece's length in characters.
  std::function<void(absl::string_view)> resegment = [&](absl::string_view w) {
    const int id = PieceToId(w);
    if (pieces_[id].type != Piece::UNUSED) {
      out.emplace_back(w, id);
      return;
    }
    auto it = rev_merge.find(w);
    if (it == rev_merge.end()) {
      out.emplace_back(w, id);
      return;
    }
    resegment(it->second.first);
    resegment(it->second.second);
  };
  for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i].piece);
  return out;
}

}  // namespace attnserve::server
