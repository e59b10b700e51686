// End-to-end decoding on tiny random models: the oneDNN backend against the
// reference, batch invariance (alone == batched == admitted mid-flight), and
// the Generator contract.

#include "engine/decode/generator.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/network/transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/decode_test_util.h"
#include "tests/engine/dnnl_layouts.h"
#include "tests/engine/golden_models.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using testing::DecodeEach;
using testing::ExpectSameResults;
using ::testing::HasSubstr;
using testing::RandomSources;

std::unique_ptr<Model> LoadModel(const std::string& dir, Backend backend,
                                 int threads = 1) {
  auto model = Model::Load(dir, {backend, threads});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? std::move(model).value() : nullptr;
}

// A tiny random model (test_model_writer), written once per run; its outputs
// are dull but it exercises everything the Generator does.
const std::string& TinyModelDir() {
  static const testing::TempDir dir("generator_test");
  static const bool written = [] {
    const ModelConfig c = testing::TinyConfig();
    return testing::WriteModelDir(dir.path(), testing::ConfigJson(c),
                                  testing::RandomModelTensors(c, {}))
        .ok();
  }();
  EXPECT_TRUE(written);
  return dir.path();
}

// Over the PyTorch-built golden models, whose outputs depend on the source.
class GeneratorVariantTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GeneratorVariantTest, DnnlDecodesLikeReference) {
  auto ref = LoadModel(testing::GoldenDir(GetParam()), Backend::kReference);
  auto fast = LoadModel(testing::GoldenDir(GetParam()), Backend::kDnnl, 2);
  ASSERT_TRUE(ref && fast);
  const auto sources = RandomSources(10, ref->config().vocab_size, 1);
  for (int beam : {1, 4}) {
    SCOPED_TRACE(beam);
    DecodeOptions o;
    o.max_new_tokens = 24;
    o.beam_size = beam;
    auto a = GenerateBatch(*ref, sources, o);
    auto b = GenerateBatch(*fast, sources, o);
    ASSERT_TRUE(a.ok() && b.ok());
    ExpectSameResults(*a, *b, 1e-4f);
  }
}

TEST_P(GeneratorVariantTest, OutputsVaryWithTheSource) {
  auto model = LoadModel(testing::GoldenDir(GetParam()), Backend::kDnnl);
  ASSERT_TRUE(model);
  DecodeOptions o;
  o.max_new_tokens = 12;
  auto r = GenerateBatch(*model,
                         RandomSources(10, model->config().vocab_size, 2), o);
  ASSERT_TRUE(r.ok());
  std::set<std::vector<int32_t>> distinct;
  for (const auto& s : *r) distinct.insert(s.output_ids);
  EXPECT_GE(distinct.size(), 5u);
}

TEST_P(GeneratorVariantTest, BatchedEqualsAlone) {
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    auto model = LoadModel(testing::GoldenDir(GetParam()), backend, 2);
    ASSERT_TRUE(model);
    const auto sources = RandomSources(9, model->config().vocab_size, 3);
    for (int beam : {1, 3}) {
      SCOPED_TRACE(beam);
      DecodeOptions o;
      o.max_new_tokens = 20;
      o.beam_size = beam;
      auto batched = GenerateBatch(*model, sources, o);
      ASSERT_TRUE(batched.ok());
      ExpectSameResults(DecodeEach(*model, sources, o), *batched, 1e-4f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GeneratorVariantTest,
                         ::testing::ValuesIn(testing::GoldenVariants()),
                         [](const auto& info) { return info.param; });

class GeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = LoadModel(TinyModelDir(), Backend::kDnnl, 2);
    ASSERT_TRUE(model_);
    auto g = Generator::Create(model_.get());
    ASSERT_TRUE(g.ok());
    generator_ = std::move(g).value();
  }
  SequenceInput Input(SequenceId id, std::vector<int32_t> source,
                      int max_new = 10, int beam = 1) {
    SequenceInput in;
    in.id = id;
    in.source = std::move(source);
    in.options.max_new_tokens = max_new;
    in.options.beam_size = beam;
    return in;
  }
  // Steps until empty, collecting every event per id.
  std::map<SequenceId, std::vector<StepEvent>> Drain() {
    std::map<SequenceId, std::vector<StepEvent>> out;
    while (!generator_->empty()) {
      auto events = generator_->Step();
      EXPECT_TRUE(events.ok());
      if (!events.ok()) break;
      for (auto& e : *events) out[e.id].push_back(std::move(e));
    }
    return out;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Generator> generator_;
};

TEST_F(GeneratorTest, SequencesAdmittedMidFlightMatchAlone) {
  const auto sources = RandomSources(6, model_->config().vocab_size, 4);
  DecodeOptions o;
  o.max_new_tokens = 16;
  const auto alone = DecodeEach(*model_, sources, o);
  // Admit one new source every other step, each with its own options; the
  // results must not depend on who else is in the batch.
  std::vector<SequenceResult> results(sources.size());
  size_t next = 0;
  int step = 0;
  while (next < sources.size() || !generator_->empty()) {
    if (next < sources.size() && step % 2 == 0) {
      ASSERT_TRUE(generator_->Add({Input(next, sources[next], 16)}).ok());
      ++next;
    }
    auto events = generator_->Step();
    ASSERT_TRUE(events.ok());
    for (auto& e : *events) {
      if (e.finished) results[e.id] = e.result;
    }
    ++step;
  }
  ExpectSameResults(alone, results, 1e-4f);
}

TEST_F(GeneratorTest, GreedyEventsStreamTheResultTokenByToken) {
  ASSERT_TRUE(
      generator_->Add({Input(1, {5, 6, 7}, 12), Input(2, {9, 3}, 5)}).ok());
  for (auto& [id, events] : Drain()) {
    std::vector<int32_t> streamed;
    for (const auto& e : events) {
      EXPECT_LE(e.new_ids.size(), 1u);
      streamed.insert(streamed.end(), e.new_ids.begin(), e.new_ids.end());
    }
    ASSERT_TRUE(events.back().finished);
    const SequenceResult& r = events.back().result;
    EXPECT_EQ(streamed, r.output_ids);
    EXPECT_EQ(r.output_ids.size(), r.log_probs.size());
    float sum = 0;
    for (float lp : r.log_probs) {
      EXPECT_LE(lp, 0.0f);
      sum += lp;
    }
    EXPECT_NEAR(r.score, sum, 1e-4);
    if (r.finish_reason == FinishReason::kLength) {
      EXPECT_EQ(r.output_ids.size(), id == 1 ? 12u : 5u);
    } else {
      EXPECT_EQ(r.finish_reason, FinishReason::kEos);
    }
    for (int32_t t : r.output_ids) EXPECT_NE(t, model_->config().eos_id);
  }
}

TEST_F(GeneratorTest, MaxNewTokensOfOneFinishesAfterOneStep) {
  ASSERT_TRUE(generator_->Add({Input(1, {5, 6}, 1)}).ok());
  auto events = generator_->Step();
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_TRUE((*events)[0].finished);
  EXPECT_LE((*events)[0].result.output_ids.size(), 1u);
  EXPECT_TRUE(generator_->empty());
}

TEST_F(GeneratorTest, CancelRemovesOnlyThatSequence) {
  ASSERT_TRUE(
      generator_->Add({Input(1, {5, 6}, 30), Input(2, {7, 8}, 30, 3)}).ok());
  EXPECT_EQ(generator_->active_sequences(), 2);
  ASSERT_TRUE(generator_->Step().ok());
  EXPECT_EQ(generator_->active_rows(),
            1 + 3);  // beams fan out after the first step
  generator_->Cancel(2);
  generator_->Cancel(12345);  // unknown ids are ignored
  EXPECT_EQ(generator_->active_sequences(), 1);
  EXPECT_EQ(generator_->active_rows(), 1);
  auto drained = Drain();
  EXPECT_EQ(drained.count(2), 0u);
  EXPECT_EQ(drained.count(1), 1u);
}

TEST_F(GeneratorTest, StepOnEmptySetReturnsNoEvents) {
  auto events = generator_->Step();
  ASSERT_TRUE(events.ok());
  EXPECT_TRUE(events->empty());
}

TEST_F(GeneratorTest, RejectsBadInputsNamingTheField) {
  const int vocab = model_->config().vocab_size;
  const int max_pos = model_->config().max_positions;
  struct Case {
    SequenceInput input;
    std::string message;
  };
  std::vector<Case> cases = {
      {Input(1, {}), "source is empty"},
      {Input(1, std::vector<int32_t>(max_pos + 1, 5)), "max_positions"},
      {Input(1, {5, vocab}), "outside [0, " + std::to_string(vocab) + ")"},
      {Input(1, {5, -1}), "source id -1"},
      {Input(1, {5}, 0), "max_new_tokens 0"},
      {Input(1, {5}, max_pos + 1), "max_new_tokens"},
      {Input(1, {5}, 4, 0), "beam_size 0"},
      {Input(1, {5}, 4, kMaxBeamSize + 1), "beam_size"},
  };
  SequenceInput bad_penalty = Input(1, {5});
  bad_penalty.options.length_penalty = -1;
  cases.push_back({bad_penalty, "length_penalty"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    const absl::Status s = generator_->Add({c.input});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.message));
    EXPECT_TRUE(generator_->empty());  // nothing was added
  }
}

TEST_F(GeneratorTest, RejectsDuplicateIdsAndAddsNothing) {
  ASSERT_TRUE(generator_->Add({Input(1, {5})}).ok());
  const absl::Status s = generator_->Add({Input(2, {6}), Input(1, {7})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(generator_->active_sequences(), 1);
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// The output projection runs in vocabulary slices of 4096 tokens
// (transformer.cc) and each row keeps only its best tokens and its
// log-sum-exp. With a vocabulary of three slices (untied, with a bias), the
// first step's logits are checked against a plain product with the weights as
// written, and greedy and beam search must pick that row's arg-max with its
// log-softmax, as whole rows would give them.
TEST(GeneratorSlicesTest, VocabularySlicesDecideLikeWholeRows) {
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 9000;
  c.tie_output_embedding = false;
  testing::RandomModelOptions o;
  o.lm_head_bias = true;
  const std::vector<testing::NamedTensor> tensors =
      testing::RandomModelTensors(c, o);
  testing::TempDir dir("generator_slices");
  ASSERT_TRUE(
      testing::WriteModelDir(dir.path(), testing::ConfigJson(c), tensors).ok());
  const std::vector<float>* weight = nullptr;
  const std::vector<float>* bias = nullptr;
  for (const testing::NamedTensor& t : tensors) {
    if (t.name == "lm_head.weight") weight = &t.values;
    if (t.name == "lm_head.bias") bias = &t.values;
  }
  ASSERT_TRUE(weight != nullptr && bias != nullptr);

  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    SCOPED_TRACE(BackendName(backend));
    std::unique_ptr<Model> model = LoadModel(dir.path(), backend);
    ASSERT_NE(model, nullptr);
    const Transformer& net = model->network();
    ASSERT_EQ(net.vocab_slices(), 3);

    // The first step by hand: encode, cross K/V, one row at position 0.
    const std::vector<int32_t> source = {5, 17, 42, 8};
    const int64_t len = static_cast<int64_t>(source.size());
    const OpContext& ctx = model->context();
    TransformerScratch s;
    const std::vector<int32_t> lengths = {static_cast<int32_t>(len)};
    ASSERT_TRUE(net.Encode(ctx, source, 1, len, lengths, &s).ok());
    Tensor cross({len, net.cross_kv_width()});
    ASSERT_TRUE(
        net.CrossKeyValues(ctx, s.memory.data(), len, cross.data()).ok());
    Tensor cache({net.self_cache_size(1)});
    DecoderRow row;
    row.token = c.decoder_start_id;
    row.position = 0;
    row.self_cache = cache.data();
    row.cache_capacity = 1;
    row.cross_kv = cross.data();
    row.src_len = static_cast<int32_t>(len);
    ASSERT_TRUE(net.DecodeStep(ctx, {row}, &s).ok());

    std::vector<float> logits(c.vocab_size);
    for (int i = 0; i < net.vocab_slices(); ++i) {
      ASSERT_TRUE(net.ProjectVocabSlice(
                         ctx, s, 1, i, logits.data() + net.vocab_slice_begin(i))
                      .ok());
    }
    ASSERT_EQ(net.vocab_slice_begin(net.vocab_slices()), c.vocab_size);
    double max = -1e30;
    int32_t arg_max = 0;
    for (int32_t t = 0; t < c.vocab_size; ++t) {
      double v = (*bias)[t];
      for (int64_t k = 0; k < c.d_model; ++k)
        v += double{s.x.data()[k]} * (*weight)[t * c.d_model + k];
      ASSERT_NEAR(logits[t], v, 1e-4) << "token " << t;
      if (v > max) max = v, arg_max = t;
    }
    double sum = 0;
    for (float v : logits) sum += std::exp(v - max);
    const double log_prob = logits[arg_max] - (max + std::log(sum));

    for (int beam : {1, 4}) {
      DecodeOptions options;
      options.max_new_tokens = 1;
      options.ignore_eos = true;
      options.beam_size = beam;
      auto results = GenerateBatch(*model, {source}, options);
      ASSERT_TRUE(results.ok()) << results.status();
      ASSERT_EQ((*results)[0].output_ids, std::vector<int32_t>{arg_max})
          << "beam " << beam;
      EXPECT_NEAR((*results)[0].log_probs[0], log_prob, 1e-5)
          << "beam " << beam;
    }
  }
}

// A table tied to the output projection is held once: where the oneDNN body
// copies the projection's slices onto panels, the model drops the table and
// embedding lookups read the slices (Transformer::Create, Embed). With three
// slices, shared or decoder-only tables, and sources whose ids reach every
// slice, both layouts must decode as the reference does.
TEST(GeneratorSlicesTest, TiedTableLookupsReadEverySlice) {
  for (bool shared : {true, false}) {
    SCOPED_TRACE(shared ? "shared table" : "decoder table");
    ModelConfig c = testing::TinyConfig();
    c.vocab_size = 9000;
    c.tie_output_embedding = true;
    testing::RandomModelOptions o;
    o.shared_embedding = shared;
    testing::TempDir dir("generator_tied_slices");
    ASSERT_TRUE(testing::WriteModelDir(dir.path(), testing::ConfigJson(c),
                                       testing::RandomModelTensors(c, o))
                    .ok());
    const std::vector<std::vector<int32_t>> sources = {
        {5, 4100, 8999, 42}, {8200, 3}, {4095, 4096, 8191, 8192, 7}};
    DecodeOptions options;
    options.max_new_tokens = 12;
    options.ignore_eos = true;
    std::unique_ptr<Model> ref = LoadModel(dir.path(), Backend::kReference);
    ASSERT_NE(ref, nullptr);
    auto expected = GenerateBatch(*ref, sources, options);
    ASSERT_TRUE(expected.ok()) << expected.status();
    testing::ForEachDnnlWeightLayout([&] {
      std::unique_ptr<Model> fast = LoadModel(dir.path(), Backend::kDnnl, 2);
      ASSERT_NE(fast, nullptr);
      // Held once: the panels' copy replaces the table (panels pad each
      // linear's depth to 16 here, so a little more than the reference).
      const size_t ref_bytes = ref->network().weight_bytes();
      EXPECT_GE(fast->network().weight_bytes(), ref_bytes);
      EXPECT_LT(fast->network().weight_bytes(), ref_bytes * 5 / 4);
      auto actual = GenerateBatch(*fast, sources, options);
      ASSERT_TRUE(actual.ok()) << actual.status();
      for (size_t i = 0; i < sources.size(); ++i) {
        EXPECT_EQ((*actual)[i].output_ids, (*expected)[i].output_ids)
            << "source " << i;
      }
    });
  }
}

}  // namespace
}  // namespace attnserve::engine

namespace attnserve::engine {
namespace {

// The generation-config rules and target_prefix end to end, on a golden
// model (its outputs depend on the source, so rules visibly change them).
class GeneratorRulesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = LoadModel(testing::GoldenDir(testing::GoldenVariants()[0]),
                       Backend::kDnnl, 2);
    ASSERT_TRUE(model_);
    sources_ = RandomSources(8, model_->config().vocab_size, 21);
  }
  DecodeOptions Options(int beam = 1) const {
    DecodeOptions o;
    o.max_new_tokens = 12;
    o.beam_size = beam;
    return o;
  }
  SequenceResult Decode(const std::vector<int32_t>& source,
                        const DecodeOptions& o) const {
    return testing::DecodeAlone(*model_, source, o);
  }
  int32_t eos() const { return model_->config().eos_id; }
  std::unique_ptr<Model> model_;
  std::vector<std::vector<int32_t>> sources_;
};

// Forcing the first tokens of the free greedy output changes nothing, and
// the forced tokens keep their model log-probs.
TEST_F(GeneratorRulesTest, GreedyTargetPrefixOfTheFreeOutputChangesNothing) {
  int checked = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    if (free.output_ids.size() < 3) continue;
    DecodeOptions o = Options();
    o.target_prefix.assign(free.output_ids.begin(),
                           free.output_ids.begin() + 3);
    const SequenceResult forced = Decode(source, o);
    EXPECT_EQ(forced.output_ids, free.output_ids);
    ASSERT_EQ(forced.log_probs.size(), free.log_probs.size());
    for (size_t i = 0; i < free.log_probs.size(); ++i)
      EXPECT_NEAR(forced.log_probs[i], free.log_probs[i], 1e-5);
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

TEST_F(GeneratorRulesTest, TargetPrefixStartsTheOutputAndSteersTheRest) {
  int steered = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    // A prefix the model would not have chosen.
    const int32_t first =
        free.output_ids.empty() || free.output_ids[0] != 7 ? 7 : 8;
    for (int beam : {1, 3}) {
      DecodeOptions o = Options(beam);
      o.target_prefix = {first, 5};
      const SequenceResult r = Decode(source, o);
      ASSERT_GE(r.output_ids.size(), 2u);
      EXPECT_EQ(r.output_ids[0], first);
      EXPECT_EQ(r.output_ids[1], 5);
      if (beam == 1) {
        // The model's log-probs of tokens it did not want: below 0.
        EXPECT_LT(r.log_probs[0], 0.0f);
        steered += r.output_ids != free.output_ids;
      } else {
        // Beam search scores forced tokens 0, as HF scores forced_bos.
        EXPECT_EQ(r.log_probs[0], 0.0f);
        EXPECT_EQ(r.log_probs[1], 0.0f);
      }
    }
  }
  EXPECT_GE(steered, 4);
}

// A one-token target_prefix is forced_bos_id, score and all (the way a
// request picks NLLB's target language).
TEST_F(GeneratorRulesTest, OneTokenPrefixEqualsForcedBos) {
  for (int beam : {1, 4}) {
    for (const auto& source : sources_) {
      DecodeOptions bos = Options(beam);
      bos.forced_bos_id = 9;
      DecodeOptions prefix = Options(beam);
      prefix.target_prefix = {9};
      prefix.forced_bos_id = 11;  // replaced by the prefix
      const SequenceResult a = Decode(source, bos);
      const SequenceResult b = Decode(source, prefix);
      ASSERT_FALSE(a.output_ids.empty());
      EXPECT_EQ(a.output_ids[0], 9);
      EXPECT_EQ(a.output_ids, b.output_ids);
      EXPECT_EQ(a.log_probs, b.log_probs);
      EXPECT_EQ(a.score, b.score);
    }
  }
}

// forced_eos_ids at the last allowed token: outputs that ran to the limit
// now end on EOS one token earlier.
TEST_F(GeneratorRulesTest, ForcedEosEndsOutputsAtTheLimit) {
  int at_limit = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    DecodeOptions o = Options();
    o.forced_eos_ids = {eos()};
    const SequenceResult r = Decode(source, o);
    if (free.finish_reason == FinishReason::kLength) {
      ++at_limit;
      EXPECT_EQ(r.finish_reason, FinishReason::kEos);
      EXPECT_EQ(r.eos_id, eos());
      EXPECT_EQ(r.output_ids, std::vector<int32_t>(free.output_ids.begin(),
                                                   free.output_ids.end() - 1));
    } else {
      EXPECT_EQ(r.output_ids, free.output_ids);
    }
  }
  EXPECT_GE(at_limit, 1);
}

TEST_F(GeneratorRulesTest, BadWordsAreNeverGenerated) {
  int changed = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    if (free.output_ids.size() < 3) continue;
    const int32_t banned = free.output_ids[1];
    const std::vector<int32_t> bigram = {free.output_ids[1],
                                         free.output_ids[2]};
    for (int beam : {1, 3}) {
      DecodeOptions o = Options(beam);
      o.bad_words = {{banned}};
      const SequenceResult one = Decode(source, o);
      for (int32_t t : one.output_ids) EXPECT_NE(t, banned);
      o.bad_words = {bigram};
      const SequenceResult two = Decode(source, o);
      for (size_t i = 0; i + 1 < two.output_ids.size(); ++i) {
        EXPECT_FALSE(two.output_ids[i] == bigram[0] &&
                     two.output_ids[i + 1] == bigram[1]);
      }
      changed += beam == 1 && two.output_ids != free.output_ids;
    }
  }
  EXPECT_GE(changed, 3);
}

TEST_F(GeneratorRulesTest, NoRepeatNgramSizeRepeatsNoBigram) {
  int repeated_before = 0;
  for (const auto& source : sources_) {
    for (int beam : {1, 3}) {
      DecodeOptions o = Options(beam);
      const SequenceResult free = Decode(source, o);
      o.no_repeat_ngram_size = 2;
      const SequenceResult r = Decode(source, o);
      auto bigrams = [&](const std::vector<int32_t>& ids) {
        std::vector<int32_t> prefix = {model_->config().decoder_start_id};
        prefix.insert(prefix.end(), ids.begin(), ids.end());
        std::set<std::pair<int32_t, int32_t>> seen;
        int repeats = 0;
        for (size_t i = 0; i + 1 < prefix.size(); ++i)
          repeats += !seen.insert({prefix[i], prefix[i + 1]}).second;
        return repeats;
      };
      repeated_before += bigrams(free.output_ids) > 0;
      EXPECT_EQ(bigrams(r.output_ids), 0);
    }
  }
  EXPECT_GE(repeated_before, 2);  // tiny random models repeat themselves
}

TEST_F(GeneratorRulesTest, MinLengthHoldsEosBack) {
  int early = 0;
  for (const auto& source : sources_) {
    for (int beam : {1, 3}) {
      DecodeOptions o = Options(beam);
      const SequenceResult free = Decode(source, o);
      o.min_length = 8;  // with the start token: at least 7 tokens
      const SequenceResult r = Decode(source, o);
      early += free.finish_reason == FinishReason::kEos &&
               free.output_ids.size() + 1 < 7;
      EXPECT_GE(r.output_ids.size() + (r.finish_reason == FinishReason::kEos),
                7u);
    }
  }
  EXPECT_GE(early, 1);
}

// Any of several EOS ids ends the output; which one is reported.
TEST_F(GeneratorRulesTest, AnyEosIdEndsTheOutput) {
  int checked = 0;
  for (const auto& source : sources_) {
    const SequenceResult free = Decode(source, Options());
    if (free.output_ids.size() < 3) continue;
    const int32_t extra = free.output_ids[2];
    const size_t first =
        std::find(free.output_ids.begin(), free.output_ids.end(), extra) -
        free.output_ids.begin();
    DecodeOptions o = Options();
    o.eos_ids = {eos(), extra};
    const SequenceResult r = Decode(source, o);
    EXPECT_EQ(r.finish_reason, FinishReason::kEos);
    EXPECT_EQ(r.eos_id, extra);
    EXPECT_EQ(r.output_ids,
              std::vector<int32_t>(free.output_ids.begin(),
                                   free.output_ids.begin() + first));
    ++checked;
  }
  EXPECT_GE(checked, 3);
}

// Batch invariance with mixed rules: every sequence decodes as it does
// alone, whether added together or admitted mid-flight, greedy and beam.
TEST_F(GeneratorRulesTest, MixedRulesInOneBatchDecodeAsAlone) {
  std::vector<DecodeOptions> options;
  for (size_t i = 0; i < sources_.size(); ++i) {
    DecodeOptions o = Options(i % 3 == 0 ? 1 : 1 + i % 4);
    switch (i % 4) {
      case 0:
        o.target_prefix = {6, 7};
        o.no_repeat_ngram_size = 2;
        break;
      case 1:
        o.forced_bos_id = 9;
        o.forced_eos_ids = {eos()};
        o.early_stopping = EarlyStopping::kNever;
        break;
      case 2:
        o.bad_words = {{5}, {8, 8}};
        o.min_length = 6;
        o.early_stopping = EarlyStopping::kTrue;
        break;
      case 3:
        o.eos_ids = {eos(), 10};
        o.length_penalty = 2.0f;
        break;
    }
    options.push_back(o);
  }
  testing::CheckTogetherAgainstAlone(
      *model_, sources_, options,
      [](const std::vector<SequenceResult>& alone,
         const std::vector<SequenceResult>& together) {
        ExpectSameResults(alone, together, 1e-4f);
      });
}

// Greedy streams forced tokens as it decodes them, like any other.
TEST_F(GeneratorRulesTest, StreamedTokensIncludeTheForcedOnes) {
  auto g = Generator::Create(model_.get());
  ASSERT_TRUE(g.ok());
  SequenceInput in;
  in.id = 1;
  in.source = sources_[0];
  in.options = Options();
  in.options.target_prefix = {6, 7, 6};
  in.options.forced_eos_ids = {eos()};
  ASSERT_TRUE((*g)->Add({in}).ok());
  std::vector<int32_t> streamed;
  std::vector<float> streamed_lps;
  SequenceResult result;
  while (!(*g)->empty()) {
    auto events = (*g)->Step();
    ASSERT_TRUE(events.ok());
    for (auto& e : *events) {
      EXPECT_LE(e.new_ids.size(), 1u);
      streamed.insert(streamed.end(), e.new_ids.begin(), e.new_ids.end());
      streamed_lps.insert(streamed_lps.end(), e.new_log_probs.begin(),
                          e.new_log_probs.end());
      if (e.finished) result = e.result;
    }
  }
  EXPECT_EQ(streamed, result.output_ids);
  EXPECT_EQ(streamed_lps, result.log_probs);
  EXPECT_EQ(std::vector<int32_t>(streamed.begin(), streamed.begin() + 3),
            std::vector<int32_t>({6, 7, 6}));
  EXPECT_EQ(result.finish_reason, FinishReason::kEos);
}

TEST_F(GeneratorRulesTest, ValidateNamesTheBadField) {
  auto g = Generator::Create(model_.get());
  ASSERT_TRUE(g.ok());
  const int vocab = model_->config().vocab_size;
  const std::vector<testing::InvalidOptionsCase> cases = {
      {[&](DecodeOptions& o) {
         o.eos_ids = {2, vocab};
       },
       "eos_ids[1]"},
      {[&](DecodeOptions& o) { o.forced_bos_id = -2; }, "forced_bos_id = -2"},
      {[&](DecodeOptions& o) { o.forced_eos_ids = {vocab + 3}; },
       "forced_eos_ids[0]"},
      {[&](DecodeOptions& o) { o.decoder_start_id = vocab; },
       "decoder_start_id"},
      {[&](DecodeOptions& o) {
         o.bad_words = {{4}, {}};
       },
       "bad_words[1] is empty"},
      {[&](DecodeOptions& o) {
         o.bad_words = {{4, -1}};
       },
       "bad_words[0][1]"},
      {[&](DecodeOptions& o) { o.min_length = -1; }, "min_length"},
      {[&](DecodeOptions& o) { o.no_repeat_ngram_size = -3; },
       "no_repeat_ngram_size"},
      {[&](DecodeOptions& o) { o.early_stopping = EarlyStopping(7); },
       "early_stopping"},
      {[&](DecodeOptions& o) { o.target_prefix.assign(13, 5); },
       "target_prefix has 13 tokens; at most max_new_tokens = 12"},
      {[&](DecodeOptions& o) {
         o.target_prefix = {5, vocab};
       },
       "target_prefix[1]"},
      {[&](DecodeOptions& o) {
         o.target_prefix = {5, eos()};
       },
       "is an EOS id"},
  };
  testing::ExpectEachInvalid(**g, Options(), cases);
  // A prefix of exactly max_new_tokens is the whole output.
  SequenceInput in;
  in.source = {5, 6};
  in.options = Options();
  in.options.target_prefix.assign(12, 5);
  EXPECT_TRUE((*g)->Validate(in).ok());
}

}  // namespace
}  // namespace attnserve::engine
