// The generation controls end to end in the Generator, on a golden model
// (its outputs depend on the source): seeded sampling reproducible alone and
// in any batch (mixed with greedy, beam and other samples, admitted
// mid-flight), top_k = 1 equal to greedy, n samples and the n-best, top
// log-probs, batch invariance with mixed controls, row accounting, and every
// Validate error. Against transformers: generation_controls_golden_test.cc.

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/decode/generator.h"
#include "engine/model.h"
#include "engine/network/transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/decode_test_util.h"
#include "tests/engine/golden_models.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using testing::ExpectSameResults;
using testing::RandomSources;

class GenerationControlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto model = Model::Load(testing::GoldenDir(testing::GoldenVariants()[0]),
                             {Backend::kDnnl, 2});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(*model);
    sources_ = RandomSources(8, model_->config().vocab_size, 33);
  }
  DecodeOptions Options() const {
    DecodeOptions o;
    o.max_new_tokens = 12;
    return o;
  }
  DecodeOptions Sampled(uint64_t seed, int n = 1) const {
    DecodeOptions o = Options();
    o.do_sample = true;
    o.seed = seed;
    o.num_return_sequences = n;
    return o;
  }
  SequenceResult Decode(const std::vector<int32_t>& source,
                        const DecodeOptions& o) const {
    return testing::DecodeAlone(*model_, source, o);
  }
  std::unique_ptr<Model> model_;
  std::vector<std::vector<int32_t>> sources_;
};

void ExpectSameWithAlternatives(const std::vector<SequenceResult>& a,
                                const std::vector<SequenceResult>& b) {
  ExpectSameResults(a, b, 1e-4f);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    ExpectSameResults(a[i].alternatives, b[i].alternatives, 1e-4f);
  }
}

TEST_F(GenerationControlsTest, SameSeedSameTokensAloneAndInAnyBatch) {
  // Greedy, beam, sampled (plain, warped, n samples) side by side.
  std::vector<DecodeOptions> options;
  for (size_t i = 0; i < sources_.size(); ++i) {
    DecodeOptions o;
    switch (i % 4) {
      case 0:
        o = Sampled(7 + i);
        o.temperature = 1.5f;
        break;
      case 1:
        o = Options();
        o.beam_size = 3;
        break;
      case 2:
        o = Sampled(100 + i, 3);
        o.top_k = 8;
        o.top_p = 0.9f;
        break;
      case 3:
        o = Options();
        break;
    }
    options.push_back(o);
  }
  const std::vector<SequenceResult> alone = testing::CheckTogetherAgainstAlone(
      *model_, sources_, options, ExpectSameWithAlternatives);
  // The same seed twice gives the same draw; another seed, other draws.
  EXPECT_EQ(Decode(sources_[0], options[0]).output_ids, alone[0].output_ids);
  int differ = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    DecodeOptions o = options[0];
    o.seed = seed + 1000;
    differ += Decode(sources_[0], o).output_ids != alone[0].output_ids;
  }
  EXPECT_GE(differ, 4);
}

TEST_F(GenerationControlsTest, TopKOneIsGreedy) {
  for (const auto& source : sources_) {
    DecodeOptions greedy = Options();
    greedy.repetition_penalty = 1.2f;  // processors apply alike
    DecodeOptions sampled = greedy;
    sampled.do_sample = true;
    sampled.top_k = 1;
    sampled.temperature = 0.5f;
    sampled.seed = 99;
    const SequenceResult a = Decode(source, greedy);
    const SequenceResult b = Decode(source, sampled);
    EXPECT_EQ(a.output_ids, b.output_ids);
    EXPECT_EQ(a.log_probs, b.log_probs);  // model log-probs: bit-identical
    EXPECT_EQ(a.finish_reason, b.finish_reason);
  }
}

TEST_F(GenerationControlsTest, SampleZeroOfNIsTheSingleDrawAndEachStreams) {
  const DecodeOptions one = Sampled(5);
  const DecodeOptions four = Sampled(5, 4);
  auto g = Generator::Create(model_.get());
  ASSERT_TRUE(g.ok());
  SequenceInput in;
  in.id = 3;
  in.source = sources_[1];
  in.options = four;
  ASSERT_TRUE((*g)->Add({in}).ok());
  EXPECT_EQ((*g)->active_rows(), DecoderRows(four));
  EXPECT_EQ(DecoderRows(four), 4);
  std::vector<int32_t> streamed;
  SequenceResult result;
  while (!(*g)->empty()) {
    auto events = (*g)->Step();
    ASSERT_TRUE(events.ok());
    ASSERT_EQ(events->size(), 1u);
    EXPECT_LE((*g)->active_rows(), 4);
    StepEvent& e = (*events)[0];
    streamed.insert(streamed.end(), e.new_ids.begin(), e.new_ids.end());
    if (e.finished) result = e.result;
  }
  // The events stream draw 0, the result; the alternatives are draws 1..3.
  EXPECT_EQ(streamed, result.output_ids);
  ASSERT_EQ(result.alternatives.size(), 3u);
  ExpectSameResults({Decode(sources_[1], one)}, {result}, 1e-4f);
  std::set<std::vector<int32_t>> distinct = {result.output_ids};
  for (const SequenceResult& a : result.alternatives) {
    distinct.insert(a.output_ids);
    EXPECT_TRUE(a.alternatives.empty());
    float sum = 0;
    for (float lp : a.log_probs) sum += lp;
    EXPECT_NEAR(a.score, sum, 1e-4f);
  }
  EXPECT_GE(distinct.size(), 2u);
}

TEST_F(GenerationControlsTest, BeamReturnsTheNBestBestFirst) {
  DecodeOptions o = Options();
  o.beam_size = 4;
  const std::vector<SequenceResult> best1 = {Decode(sources_[2], o)};
  o.num_return_sequences = 3;
  const SequenceResult r = Decode(sources_[2], o);
  // The best is what n = 1 returns; the others follow in score order.
  ExpectSameResults(best1, {r}, 1e-4f);
  ASSERT_EQ(r.alternatives.size(), 2u);
  EXPECT_GE(r.score, r.alternatives[0].score);
  EXPECT_GE(r.alternatives[0].score, r.alternatives[1].score);
  EXPECT_NE(r.output_ids, r.alternatives[0].output_ids);
}

TEST_F(GenerationControlsTest, TopLogProbsAreTheModelsBestAtEachStep) {
  for (int beam : {1, 3}) {
    SCOPED_TRACE(beam);
    DecodeOptions o = Options();
    o.beam_size = beam;
    const SequenceResult plain = Decode(sources_[3], o);
    o.top_log_probs = 5;
    auto g = Generator::Create(model_.get());
    ASSERT_TRUE(g.ok());
    SequenceInput in;
    in.source = sources_[3];
    in.options = o;
    ASSERT_TRUE((*g)->Add({in}).ok());
    std::vector<std::vector<TokenLogProb>> streamed;
    SequenceResult r;
    while (!(*g)->empty()) {
      auto events = (*g)->Step();
      ASSERT_TRUE(events.ok());
      for (StepEvent& e : *events) {
        EXPECT_EQ(e.new_top_log_probs.size(), e.new_ids.size());
        streamed.insert(streamed.end(), e.new_top_log_probs.begin(),
                        e.new_top_log_probs.end());
        if (e.finished) r = e.result;
      }
    }
    // Asking for them changes nothing else.
    ExpectSameResults({plain}, {r}, 0.0f);
    ASSERT_EQ(r.top_log_probs.size(), r.output_ids.size());
    ASSERT_EQ(streamed.size(), r.output_ids.size());
    for (size_t t = 0; t < r.output_ids.size(); ++t) {
      const std::vector<TokenLogProb>& top = r.top_log_probs[t];
      ASSERT_EQ(top.size(), 5u);
      EXPECT_EQ(streamed[t].size(), 5u);
      for (size_t k = 1; k < top.size(); ++k)
        EXPECT_GE(top[k - 1].log_prob, top[k].log_prob);
      // Greedy without rules takes the best, whose log-prob it reports.
      if (beam == 1) {
        EXPECT_EQ(top[0].token, r.output_ids[t]);
        EXPECT_EQ(top[0].log_prob, r.log_probs[t]);
      } else {
        // The chosen token's model log-prob is at most the best one's, and
        // a log-softmax's best five sum to at most 1 in probability.
        EXPECT_LE(r.log_probs[t], top[0].log_prob + 1e-6f);
      }
      double mass = 0;
      for (const TokenLogProb& p : top) mass += std::exp(p.log_prob);
      EXPECT_LE(mass, 1.0 + 1e-5);
    }
  }
}

// Batch invariance with the controls mixed in one batch, greedy, beam and
// sampled, together and admitted mid-flight.
TEST_F(GenerationControlsTest, MixedControlsInOneBatchDecodeAsAlone) {
  std::vector<DecodeOptions> options;
  for (size_t i = 0; i < sources_.size(); ++i) {
    DecodeOptions o = Options();
    switch (i % 5) {
      case 0:
        o.repetition_penalty = 1.4f;
        break;
      case 1:
        o.beam_size = 3;
        o.num_return_sequences = 2;
        o.repetition_penalty = 1.3f;
        o.min_new_tokens = 5;
        o.top_log_probs = 2;
        break;
      case 2:
        o.suppress_token_ids = {4, 5, 6};
        o.no_repeat_ngram_size = 2;
        o.top_log_probs = 3;
        break;
      case 3:
        o = Sampled(42 + i, 2);
        o.repetition_penalty = 0.8f;
        o.min_new_tokens = 8;
        o.suppress_token_ids = {7};
        o.top_k = 10;
        break;
      case 4:
        o = Sampled(1 + i);
        o.top_p = 0.6f;
        o.bad_words = {{9}, {5, 5}};
        o.top_log_probs = 1;
        break;
    }
    options.push_back(o);
  }
  testing::CheckTogetherAgainstAlone(
      *model_, sources_, options,
      [](const std::vector<SequenceResult>& alone,
         const std::vector<SequenceResult>& together) {
        ExpectSameWithAlternatives(alone, together);
        for (size_t i = 0; i < alone.size(); ++i) {
          ASSERT_EQ(alone[i].top_log_probs.size(),
                    together[i].top_log_probs.size());
          for (size_t t = 0; t < alone[i].top_log_probs.size(); ++t) {
            ASSERT_EQ(alone[i].top_log_probs[t].size(),
                      together[i].top_log_probs[t].size());
            for (size_t k = 0; k < alone[i].top_log_probs[t].size(); ++k) {
              EXPECT_EQ(alone[i].top_log_probs[t][k].token,
                        together[i].top_log_probs[t][k].token);
            }
          }
        }
      });
}

TEST_F(GenerationControlsTest, ProcessorsVisiblyApply) {
  int changed = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    DecodeOptions o = Options();
    o.suppress_token_ids = free.output_ids;  // none of them again
    if (free.output_ids.empty()) continue;
    const SequenceResult suppressed = Decode(source, o);
    for (int32_t t : suppressed.output_ids) {
      EXPECT_EQ(std::count(free.output_ids.begin(), free.output_ids.end(), t),
                0);
    }
    DecodeOptions m = Options();
    m.min_new_tokens = 10;
    const SequenceResult longer = Decode(source, m);
    if (longer.finish_reason == FinishReason::kEos)
      EXPECT_GE(longer.output_ids.size(), 10u);
    DecodeOptions p = Options();
    p.repetition_penalty = 3.0f;
    changed += Decode(source, p).output_ids != free.output_ids;
  }
  EXPECT_GE(changed, 1);
}

TEST_F(GenerationControlsTest, ValidateNamesEveryControlAndItsBound) {
  auto g = Generator::Create(model_.get());
  ASSERT_TRUE(g.ok());
  const int vocab = model_->config().vocab_size;
  // The settings below that only apply when sampling.
  auto sampled = [](std::function<void(DecodeOptions&)> set) {
    return [set](DecodeOptions& o) {
      o.do_sample = true;
      set(o);
    };
  };
  const std::vector<testing::InvalidOptionsCase> cases = {
      {sampled([](DecodeOptions& o) { o.beam_size = 2; }),
       "do_sample with beam_size 2"},
      {sampled([](DecodeOptions& o) { o.temperature = 0; }),
       "temperature 0 must be finite and > 0"},
      {sampled([](DecodeOptions& o) { o.temperature = NAN; }),
       "temperature nan"},
      {sampled([](DecodeOptions& o) { o.temperature = INFINITY; }),
       "temperature inf"},
      {[](DecodeOptions& o) { o.top_k = -1; }, "top_k -1 must be >= 0"},
      {[](DecodeOptions& o) { o.top_p = 0; }, "top_p 0 is outside (0, 1]"},
      {[](DecodeOptions& o) { o.top_p = 1.5f; }, "top_p 1.5 is outside"},
      {[](DecodeOptions& o) { o.repetition_penalty = 0; },
       "repetition_penalty 0 must be finite and > 0"},
      {[](DecodeOptions& o) { o.repetition_penalty = -1; },
       "repetition_penalty -1"},
      {[](DecodeOptions& o) { o.min_new_tokens = -1; },
       "min_new_tokens -1 is outside [0, max_new_tokens = 12]"},
      {[](DecodeOptions& o) { o.min_new_tokens = 13; },
       "min_new_tokens 13 is outside"},
      {[&](DecodeOptions& o) {
         o.suppress_token_ids = {3, vocab};
       },
       "suppress_token_ids[1]"},
      {[](DecodeOptions& o) { o.suppress_token_ids = {-1}; },
       "suppress_token_ids[0] = -1"},
      {sampled([](DecodeOptions& o) { o.num_return_sequences = 0; }),
       "num_return_sequences 0 is outside [1, 64]"},
      {sampled([](DecodeOptions& o) { o.num_return_sequences = 65; }),
       "num_return_sequences 65 is outside [1, 64]"},
      {[](DecodeOptions& o) {
         o.beam_size = 3;
         o.num_return_sequences = 4;
       },
       "num_return_sequences 4 is above beam_size 3"},
      {[](DecodeOptions& o) { o.num_return_sequences = 2; },
       "num_return_sequences 2 needs do_sample or beam_size >= 2"},
      {[](DecodeOptions& o) { o.top_log_probs = -1; },
       "top_log_probs -1 is outside [0, 20]"},
      {[](DecodeOptions& o) { o.top_log_probs = 21; },
       "top_log_probs 21 is outside [0, 20]"},
  };
  testing::ExpectEachInvalid(**g, Options(), cases);
  // The bounds themselves are fine; temperature is only checked when
  // sampling (HF ignores it otherwise).
  SequenceInput in;
  in.source = {5, 6};
  in.options = Options();
  in.options.temperature = 0;
  in.options.top_p = 1;
  in.options.top_log_probs = 20;
  in.options.min_new_tokens = 12;
  EXPECT_TRUE((*g)->Validate(in).ok());
  in.options = Sampled(1, 64);
  EXPECT_TRUE((*g)->Validate(in).ok());
  in.options = Options();
  in.options.beam_size = 4;
  in.options.num_return_sequences = 4;
  EXPECT_TRUE((*g)->Validate(in).ok());
}

// Unsampled rows see the vocabulary in slices of 4096 tokens and settle the
// repetition penalty's tokens after the stream (generator.cc, BestTokens);
// sampled rows apply the same rules to the whole row (ApplyRowRule). With
// top_k = 1 a draw is the arg-max, so on a vocabulary of three slices, with
// rules whose tokens sit in every slice, the two must decide alike, token
// for token and bit for bit in the log-probs.
TEST(GenerationControlsSlicesTest, SlicedAndWholeRowsDecideAlike) {
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 9000;
  c.tie_output_embedding = false;
  testing::RandomModelOptions mo;
  mo.lm_head_bias = true;
  testing::TempDir dir("generation_controls_slices");
  ASSERT_TRUE(testing::WriteModelDir(dir.path(), testing::ConfigJson(c),
                                     testing::RandomModelTensors(c, mo))
                  .ok());
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    SCOPED_TRACE(BackendName(backend));
    auto model = Model::Load(dir.path(), {backend, 1});
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_EQ((*model)->network().vocab_slices(), 3);
    const auto sources = RandomSources(4, c.vocab_size, 17);
    std::vector<DecodeOptions> cases(5);
    for (DecodeOptions& o : cases) {
      o.max_new_tokens = 10;
      o.target_prefix = {4100, 8200, 30};
    }
    cases[0].repetition_penalty = 1.5f;
    cases[1].repetition_penalty = 0.7f;
    cases[2].repetition_penalty = 2.0f;
    cases[2].suppress_token_ids = {10, 4500, 8999};
    cases[2].bad_words = {{4097}, {30, 31}};
    cases[3].no_repeat_ngram_size = 2;
    cases[3].min_new_tokens = 6;
    cases[3].repetition_penalty = 1.2f;
    cases[4].top_log_probs = 4;
    cases[4].repetition_penalty = 3.0f;
    int differ_from_free = 0;
    DecodeOptions free_options;
    free_options.max_new_tokens = 10;
    free_options.target_prefix = cases[0].target_prefix;
    for (const DecodeOptions& greedy : cases) {
      DecodeOptions sampled = greedy;
      sampled.do_sample = true;
      sampled.top_k = 1;
      sampled.seed = 3;
      auto a = GenerateBatch(**model, sources, greedy);
      auto b = GenerateBatch(**model, sources, sampled);
      auto f = GenerateBatch(**model, sources, free_options);
      ASSERT_TRUE(a.ok() && b.ok() && f.ok());
      for (size_t i = 0; i < sources.size(); ++i) {
        EXPECT_EQ((*a)[i].output_ids, (*b)[i].output_ids);
        EXPECT_EQ((*a)[i].log_probs, (*b)[i].log_probs);
        EXPECT_EQ((*a)[i].finish_reason, (*b)[i].finish_reason);
        ASSERT_EQ((*a)[i].top_log_probs.size(), (*b)[i].top_log_probs.size());
        differ_from_free += (*a)[i].output_ids != (*f)[i].output_ids;
      }
    }
    // The rules did steer some outputs of this dull random model.
    EXPECT_GE(differ_from_free, 1);
  }
}

TEST(DecoderRowsTest, CountsTheRowsASequenceTakes) {
  DecodeOptions o;
  EXPECT_EQ(DecoderRows(o), 1);
  o.beam_size = 4;
  o.num_return_sequences = 2;
  EXPECT_EQ(DecoderRows(o), 4);
  o.beam_size = 1;
  o.do_sample = true;
  o.num_return_sequences = 6;
  EXPECT_EQ(DecoderRows(o), 6);
}

}  // namespace
}  // namespace attnserve::engine
