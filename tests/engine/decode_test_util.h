#pragma once
// Helpers shared by the tests that decode whole models: seeded random
// sources, decoding each source alone or all in one generator, comparing two
// sets of results, and checking that Validate refuses bad options.

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/decode/generator.h"
#include "engine/model.h"
#include "gmock/gmock.h"
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

inline SequenceResult DecodeAlone(const Model& model,
                                  const std::vector<int32_t>& source,
                                  const DecodeOptions& options) {
  auto r = GenerateBatch(model, {source}, options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? (*r)[0] : SequenceResult{};
}

inline std::vector<SequenceResult> DecodeEach(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const DecodeOptions& options) {
  std::vector<SequenceResult> out;
  for (const auto& s : sources) out.push_back(DecodeAlone(model, s, options));
  return out;
}

// Decodes each source alone with its own options (options[i] for sources[i]).
inline std::vector<SequenceResult> DecodeEach(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const std::vector<DecodeOptions>& options) {
  std::vector<SequenceResult> out;
  for (size_t i = 0; i < sources.size(); ++i)
    out.push_back(DecodeAlone(model, sources[i], options[i]));
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

// Decodes every (source, options) pair in one generator, all added at once or
// one every other step (admitted mid-flight); results by index.
inline std::vector<SequenceResult> DecodeTogether(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const std::vector<DecodeOptions>& options, bool mid_flight) {
  auto g = Generator::Create(&model);
  EXPECT_TRUE(g.ok());
  std::vector<SequenceResult> results(sources.size());
  if (!g.ok()) return results;
  size_t next = 0;
  auto add = [&](size_t i) {
    SequenceInput in;
    in.id = i;
    in.source = sources[i];
    in.options = options[i];
    EXPECT_TRUE((*g)->Add({in}).ok());
  };
  if (!mid_flight) {
    for (; next < sources.size(); ++next) add(next);
  }
  for (int step = 0; next < sources.size() || !(*g)->empty(); ++step) {
    if (next < sources.size() && step % 2 == 0) add(next++);
    auto events = (*g)->Step();
    EXPECT_TRUE(events.ok());
    if (!events.ok()) break;
    for (auto& e : *events) {
      EXPECT_TRUE(e.status.ok()) << e.status;
      if (e.finished) results[e.id] = e.result;
    }
  }
  return results;
}

// Decodes each (source, options) pair alone, then all in one generator, added
// at once and admitted mid-flight, and calls check(alone, together) for each
// of the two; returns the alone results, for further checks.
inline std::vector<SequenceResult> CheckTogetherAgainstAlone(
    const Model& model, const std::vector<std::vector<int32_t>>& sources,
    const std::vector<DecodeOptions>& options,
    const std::function<void(const std::vector<SequenceResult>& alone,
                             const std::vector<SequenceResult>& together)>&
        check) {
  const std::vector<SequenceResult> alone = DecodeEach(model, sources, options);
  for (bool mid_flight : {false, true}) {
    SCOPED_TRACE(mid_flight);
    check(alone, DecodeTogether(model, sources, options, mid_flight));
  }
  return alone;
}

// One bad setting of the options and the words its error must hold.
struct InvalidOptionsCase {
  std::function<void(DecodeOptions&)> set;
  std::string message;
};

// Each case, applied to `base` on a short source, is refused by Validate and
// by Add with kInvalidArgument naming the problem, and admits nothing.
inline void ExpectEachInvalid(Generator& g, const DecodeOptions& base,
                              const std::vector<InvalidOptionsCase>& cases) {
  for (const InvalidOptionsCase& c : cases) {
    SCOPED_TRACE(c.message);
    SequenceInput in;
    in.source = {5, 6};
    in.options = base;
    c.set(in.options);
    const absl::Status s = g.Validate(in);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(c.message));
    EXPECT_FALSE(g.Add({in}).ok());
    EXPECT_TRUE(g.empty());
  }
}

}  // namespace attnserve::engine::testing
