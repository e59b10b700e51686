#pragma once
// Decoding decisions as pure functions over log-probabilities, separate from
// the network (as CTranslate2's decoding.h): arg-max, beam candidate selection,
// length penalty, one step of beam search. The rules that ban and force tokens
// are in logits_rules.h.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "engine/decode/generator.h"

namespace attnserve::engine {

// A token and its score (a logit or a log-probability).
struct TokenScore {
  int32_t token = 0;
  float score = 0;
};

// The best `keep` tokens of one row of scores that arrives in slices of
// ascending token ids: best first, the higher score, then the lower id
// (model-format.md's tie rule); NaN ranks below every number. One pass keeping
// a short sorted list, skipping blocks of scores that cannot enter it.
class TopTokens {
 public:
  explicit TopTokens(int keep) : keep_(keep) {}
  // scores[0, n) are those of tokens [first, first + n); `first` is past every
  // token added before.
  void Add(const float* scores, int32_t first, int64_t n);
  // Up to `keep` tokens, best first.
  const std::vector<TokenScore>& best() const { return best_; }

 private:
  void Insert(TokenScore t);

  int keep_;
  std::vector<TokenScore> best_;
};

// log(sum_i exp(log_sum_exps[i])): the log-sum-exp of a row from those of its
// slices.
float CombineLogSumExps(absl::Span<const float> log_sum_exps);

struct BeamCandidate {
  int hypothesis = 0;  // index of the parent among the live hypotheses
  int32_t token = 0;
  float log_prob = 0;       // log p(token | parent)
  double cum_log_prob = 0;  // parent's cumulative log-prob + log_prob
};

// The best `count` (parent, token) extensions by cumulative log-prob over every
// live hypothesis, from each hypothesis's best tokens with their log-probs
// (row_best[h], best first as TopTokens gives them: at least `count` of them,
// or the whole row). Order: higher cumulative log-prob first (NaN last); ties
// go to the lower hypothesis index, then the lower token id.
std::vector<BeamCandidate> TopBeamCandidates(
    absl::Span<const std::vector<TokenScore>> row_best,
    absl::Span<const double> cum_log_probs, int count);

// sum(log p) / length^penalty (length >= 1).
double LengthPenalisedScore(double cum_log_prob, size_t length, float penalty);

struct FinishedHypothesis {
  std::vector<int32_t> ids;      // without the EOS
  std::vector<float> log_probs;  // processed, one per id
  double score = 0;              // length-penalised
  FinishReason finish_reason = FinishReason::kNone;
  int32_t eos_id = -1;  // kEos: the EOS that ended it, and its log-prob
  float eos_log_prob = 0;
  // DecodeOptions::top_log_probs > 0: one list per id.
  std::vector<std::vector<TokenLogProb>> top_log_probs;
};

// Index of the best score; the earlier one wins a tie. `finished` must not be
// empty.
size_t BestFinished(const std::vector<FinishedHypothesis>& finished);

// A live beam hypothesis without its caches: tokens after the start token and
// their processed log-probs.
struct BeamPath {
  std::vector<int32_t> ids;
  std::vector<float> log_probs;
  double cum_log_prob = 0;
  // DecodeOptions::top_log_probs > 0: one list per id.
  std::vector<std::vector<TokenLogProb>> top_log_probs;
};

struct BeamSettings {
  int beam_size = 1;  // B
  int max_new_tokens = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::kHeuristic;
  // Sorted. Tokens that end a hypothesis; empty with ignore_eos. The candidate
  // count K = max(2, 1 + number of EOS ids) * B counts the model's EOS ids
  // either way.
  std::vector<int32_t> eos_ids;
  int candidates = 2;   // K
  bool legacy = false;  // DecodeOptions::legacy_beam_search
};

// Settings of one sequence's beam search from its options and resolved EOS ids.
BeamSettings MakeBeamSettings(const DecodeOptions& options,
                              const std::vector<int32_t>& eos_ids);

struct BeamStepOutcome {
  // The next running beams, best first: parents index the live paths; at most
  // B (fewer only when fewer candidates were finite and not finished).
  std::vector<BeamCandidate> children;
  bool done = false;  // the search is over; the answer is finished[0]
};

// One step of beam search for one source, as transformers >= 4.50 does it
// (docs/hf-reference.md, "Beam search"). `step`: tokens generated before this
// step; `live`: the running beams (their best first is not required);
// `row_best[h]`: live[h]'s best tokens with processed log-probs (forced
// tokens 0, banned ones absent), best first, at least K of them or the whole
// row. Candidates = the top K (parent, token) by cumulative log-prob; one
// *hits* when its token is an EOS or it is the max_new_tokens-th token; a hit
// ranked < B is a finished hypothesis scored cum / (step + 1)^length_penalty;
// `finished` keeps the best B, best first (an earlier one wins a tie). The
// children are the best B candidates that are not hits. A candidate of
// score -inf or NaN is neither (HF would finish one only among -inf ties).
// Done: at max_new_tokens, when no candidate survives, with
// early_stopping kTrue once B are finished, else (B finished) once
// best child / L^length_penalty <= the worst finished score, L = step + 1 or,
// for kNever with length_penalty > 0, max_new_tokens.
// `legacy`: DecodeOptions::legacy_beam_search instead (finished[0] is still
// the answer).
// If `done` leaves `finished` empty (every candidate -inf from the start),
// the live paths are finished by length. `row_top` (empty, or one per live
// path): the model's best tokens of each row this step, appended to the
// top_log_probs of a hypothesis that finishes by length here.
BeamStepOutcome BeamSearchStep(
    const BeamSettings& settings, int step, absl::Span<const BeamPath> live,
    absl::Span<const std::vector<TokenScore>> row_best,
    std::vector<FinishedHypothesis>* finished,
    absl::Span<const std::vector<TokenLogProb>> row_top = {});

}  // namespace attnserve::engine
