// End-to-end decoding on tiny random models: the oneDNN backend against the
// reference, batch invariance (alone == batched == admitted mid-flight), and
// the Generator contract.

#include "engine/decode/generator.h"

#include <cmath>
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
#include "tests/engine/dnnl_layouts.h"
#include "tests/engine/golden_models.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::testing::HasSubstr;

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

std::vector<std::vector<int32_t>> RandomSources(int count, int vocab,
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

std::vector<SequenceResult> DecodeEach(
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

void ExpectSameResults(const std::vector<SequenceResult>& a,
                       const std::vector<SequenceResult>& b, float tolerance) {
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
