#pragma once
// Helpers shared by the tests that decode whole models: seeded random
// sources, decoding each source alone, and comparing two sets of results.

#include <cstdint>
#include <random>
#include <vector>

#include "engine/decode/generator.h"
#include "engine/model.h"
#include "gtest/gtest.h"

namespace attnserve::engine::testing {

inline std::vector<std::vector<int32_t>> RandomSources(int count, int vocab,
                                                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len(1, 20), id(3, vocab - 1);
  std::vector<std::vector<int32_t>> out(count);
  for (auto& s : out) {
    s.resize(len(rng));
    for (auto& t : s) t = id(rng);
  }
  return out;
}

inline std::vector<SequenceResult> DecodeEach(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const DecodeOptions& options) {
  std::vector<SequenceResult> out;
  for (const auto& s : sources) {
    auto r = GenerateBatch(model, {s}, options);
    EXPECT_TRUE(r.ok()) << r.status();
    out.push_back(r.ok() ? (*r)[0] : SequenceResult{});
  }
  return out;
}

inline void ExpectSameResults(const std::vector<SequenceResult>& a,
                              const std::vector<SequenceResult>& b,
                              float tolerance) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(a[i].output_ids, b[i].output_ids);
    EXPECT_EQ(a[i].finish_reason, b[i].finish_reason);
    ASSERT_EQ(a[i].log_probs.size(), b[i].log_probs.size());
    for (size_t t = 0; t < a[i].log_probs.size(); ++t) {
      EXPECT_NEAR(a[i].log_probs[t], b[i].log_probs[t], tolerance);
    }
    EXPECT_NEAR(a[i].score, b[i].score,
                tolerance * (1 + a[i].log_probs.size()));
  }
}

}  // namespace attnserve::engine::testing
