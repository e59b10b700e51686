#pragma once
// Sampling for DecodeOptions::do_sample: a counter-based random stream, HF's
// warpers (temperature, top_k, top_p, in that order) on a full row of
// processed scores, and the draw. Pure functions: a draw depends only on the
// row and on (seed, sample index, step), never on the batch or the thread, so
// a sequence samples the same tokens alone or among others, on either backend
// when their logits agree.

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace attnserve::engine {

// SplitMix64's finaliser (Steele, Lea and Flood 2014): a bijection of 64-bit
// words whose outputs pass BigCrush for consecutive inputs.
uint64_t SplitMix64(uint64_t x);

// The uniform variate in [0, 1) of draw (`sample`, `step`) of the stream
// `seed`: SplitMix64 chained over the three counters (53 random bits), so
// every (seed, sample, step) has its own value and none depends on another
// draw having been made.
double UniformDraw(uint64_t seed, uint64_t sample, uint64_t step);

struct WarpSettings {
  float temperature = 1.0f;  // > 0; 1 = off
  int top_k = 0;             // > 0: keep the top_k best; 0 = off
  float top_p = 1.0f;        // (0, 1]; 1 = off
};

// HF's warpers on one row of processed scores ([vocab]), in place, in HF's
// order: scores / temperature; then all but the top_k best become -inf
// (exactly top_k survive: a tie at the k-th score goes to the lower id, so
// top_k = 1 is the arg-max greedy takes); then, over softmax of what is left,
// ranked best first (lower id first on a tie), a token stays only while the
// probability of the tokens ranked before it is < top_p (the smallest set
// whose mass reaches top_p; the best token always stays). `order` is scratch
// (reused between calls so a step allocates nothing once it has grown).
void WarpScores(const WarpSettings& settings, absl::Span<float> scores,
                std::vector<int32_t>* order);

// The token whose interval of the cumulative softmax(scores), in ascending id
// order, holds u * total (u in [0, 1)): token t with probability
// exp(s_t) / sum exp(s), in double. -inf scores are never drawn; a row with
// no finite score gives the lowest id (as greedy's arg-max would).
int32_t DrawToken(absl::Span<const float> scores, double u);

}  // namespace attnserve::engine
