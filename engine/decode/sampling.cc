#include "engine/decode/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnserve::engine {
namespace {

constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// a ranks before b: the higher score (NaN below every number), then the
// lower id.
struct Better {
  absl::Span<const float> scores;
  bool operator()(int32_t a, int32_t b) const {
    const float sa = scores[a], sb = scores[b];
    const bool na = std::isnan(sa), nb = std::isnan(sb);
    if (na != nb) return nb;
    if (!na && sa != sb) return sa > sb;
    return a < b;
  }
};

}  // namespace

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double UniformDraw(uint64_t seed, uint64_t sample, uint64_t step) {
  const uint64_t h = SplitMix64(SplitMix64(SplitMix64(seed) ^ sample) ^ step);
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

void WarpScores(const WarpSettings& settings, absl::Span<float> scores,
                std::vector<int32_t>* order) {
  const int64_t vocab = static_cast<int64_t>(scores.size());
  if (vocab == 0) return;
  if (settings.temperature != 1.0f) {
    for (float& s : scores) s /= settings.temperature;
  }
  const bool top_k = settings.top_k > 0 && settings.top_k < vocab;
  const bool top_p = settings.top_p < 1.0f;
  if (!top_k && !top_p) return;
  order->resize(vocab);
  for (int64_t i = 0; i < vocab; ++i) (*order)[i] = static_cast<int32_t>(i);
  const Better better{scores};
  int64_t kept = vocab;  // (*order)[0, kept) ranked best first after top_k
  if (top_k) {
    kept = settings.top_k;
    std::nth_element(order->begin(), order->begin() + (kept - 1), order->end(),
                     better);
    for (int64_t i = kept; i < vocab; ++i) scores[(*order)[i]] = kMinusInf;
  }
  if (!top_p) return;
  // Only the kept ones can stay; rank them fully. (O(V log V) without
  // top_k: the price of an exact nucleus, paid by sampled rows only.)
  std::sort(order->begin(), order->begin() + kept, better);
  const float best = scores[(*order)[0]];
  if (!std::isfinite(best)) return;  // nothing finite to renormalise
  double total = 0.0;
  for (int64_t i = 0; i < kept; ++i)
    total += std::exp(static_cast<double>(scores[(*order)[i]]) - best);
  // Mass ranked before token i, as a fraction of `total`.
  double before = 0.0;
  const double limit = static_cast<double>(settings.top_p) * total;
  for (int64_t i = 0; i < kept; ++i) {
    float& s = scores[(*order)[i]];
    if (i > 0 && !(before < limit)) {
      s = kMinusInf;
      continue;
    }
    before += std::exp(static_cast<double>(s) - best);
  }
}

int32_t DrawToken(absl::Span<const float> scores, double u) {
  float best = kMinusInf;
  for (float s : scores) {
    if (s > best) best = s;  // NaN never wins
  }
  if (!(best > kMinusInf) || std::isinf(best)) {
    // No finite score (or +inf): the first maximal one, as the arg-max.
    for (size_t t = 0; t < scores.size(); ++t) {
      if (scores[t] == best) return static_cast<int32_t>(t);
    }
    return 0;
  }
  double total = 0.0;
  for (float s : scores) {
    if (s > kMinusInf) total += std::exp(static_cast<double>(s) - best);
  }
  const double target = u * total;
  double cum = 0.0;
  int32_t last = 0;
  for (size_t t = 0; t < scores.size(); ++t) {
    if (!(scores[t] > kMinusInf)) continue;
    cum += std::exp(static_cast<double>(scores[t]) - best);
    last = static_cast<int32_t>(t);
    if (cum > target) return last;
  }
  return last;  // rounding left target at the very top
}

}  // namespace attnserve::engine
