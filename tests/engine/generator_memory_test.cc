// The Generator under memory pressure: allocations that fail (a test limit
// on the engine's Tensor memory, allocation_policy.h) come back as statuses
// pinned on the request at fault, the generator keeps working, and caches
// grow with what a sequence generates rather than what it may.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/decode/generator.h"
#include "engine/memory/allocation_policy.h"
#include "engine/model.h"
#include "engine/network/transformer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/memory_test_models.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::testing::HasSubstr;

// Removes the limit however a test ends.
struct MemoryLimit {
  explicit MemoryLimit(int64_t bytes) { SetTensorMemoryLimitForTesting(bytes); }
  ~MemoryLimit() { SetTensorMemoryLimitForTesting(-1); }
};

class GeneratorMemoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("generator_memory_test");
    ASSERT_TRUE(testing::WriteMemoryTestModel(dir_->path(),
                                              testing::MemoryTestConfig()));
  }
  static void TearDownTestSuite() { delete dir_; }

  void SetUp() override {
    auto model = Model::Load(dir_->path(), {Backend::kDnnl, 2});
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(model).value();
    generator_ = NewGenerator();
  }
  std::unique_ptr<Generator> NewGenerator() {
    auto g = Generator::Create(model_.get());
    EXPECT_TRUE(g.ok());
    return std::move(g).value();
  }
  SequenceInput Input(SequenceId id, int src_len, int max_new, int beam = 1,
                      bool ignore_eos = true) {
    SequenceInput in;
    in.id = id;
    in.source = testing::CountingSource(src_len, model_->config().vocab_size,
                                        static_cast<int>(id));
    in.options.max_new_tokens = max_new;
    in.options.beam_size = beam;
    in.options.ignore_eos = ignore_eos;
    return in;
  }
  // The result of `in` decoded alone, on a generator of its own.
  SequenceResult Alone(const SequenceInput& in) {
    auto g = NewGenerator();
    EXPECT_TRUE(g->Add({in}).ok());
    SequenceResult result;
    while (!g->empty()) {
      auto events = g->Step();
      EXPECT_TRUE(events.ok()) << events.status();
      if (!events.ok()) break;
      for (StepEvent& e : *events) {
        EXPECT_TRUE(e.status.ok()) << e.status;
        if (e.finished) result = e.result;
      }
    }
    return result;
  }
  // Steps until empty; finished events by id.
  std::map<SequenceId, StepEvent> Drain() {
    std::map<SequenceId, StepEvent> out;
    while (!generator_->empty()) {
      auto events = generator_->Step();
      EXPECT_TRUE(events.ok()) << events.status();
      if (!events.ok()) break;
      for (StepEvent& e : *events) {
        if (e.finished) out[e.id] = std::move(e);
      }
    }
    return out;
  }

  static testing::TempDir* dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Generator> generator_;
};
testing::TempDir* GeneratorMemoryTest::dir_ = nullptr;

// Same tokens; log-probs equal up to the rounding of a different batch
// size's kernels (as in generator_test).
void ExpectSameResult(const SequenceResult& a, const SequenceResult& b) {
  EXPECT_EQ(a.output_ids, b.output_ids);
  EXPECT_EQ(a.finish_reason, b.finish_reason);
  ASSERT_EQ(a.log_probs.size(), b.log_probs.size());
  for (size_t i = 0; i < a.log_probs.size(); ++i)
    EXPECT_NEAR(a.log_probs[i], b.log_probs[i], 1e-4f) << i;
}

TEST_F(GeneratorMemoryTest, AddOverTheLimitIsResourceExhaustedAndAddsNothing) {
  const SequenceInput a = Input(1, 30, 12);
  ASSERT_TRUE(generator_->Add({a}).ok());
  {
    // Room for nothing more: a 1000-token source's encoder scratch and
    // cross-attention keys and values (hundreds of KB) cannot be had.
    MemoryLimit limit(TensorBytesLive() + 1024);
    EXPECT_THAT(generator_->Add({Input(2, 1000, 8), Input(3, 20, 8)}),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("out of memory encoding 2 sources of up "
                                   "to 1000 tokens")));
    EXPECT_EQ(generator_->active_sequences(), 1);
    EXPECT_EQ(generator_->active_rows(), 1);
  }
  // Nothing of the failed call stayed: its ids are free, and the sequence
  // that was there decodes as it would have alone.
  ASSERT_TRUE(generator_->Add({Input(2, 1000, 8), Input(3, 20, 8)}).ok());
  auto done = Drain();
  ASSERT_EQ(done.size(), 3u);
  for (auto& [id, e] : done) EXPECT_TRUE(e.status.ok()) << id << e.status;
  ExpectSameResult(done[1].result, Alone(a));
  ExpectSameResult(done[2].result, Alone(Input(2, 1000, 8)));
}

TEST_F(GeneratorMemoryTest, FailedCacheGrowthFailsOnlyThatSequence) {
  // Sequence 9 runs ahead; its cache (16 positions at first) must double at
  // its 17th token, which the limit below forbids. Sequences 1 (greedy) and
  // 2 (beam 2) join later with caches that never grow (12 positions).
  const SequenceInput ahead = Input(9, 30, 200);
  const SequenceInput greedy = Input(1, 30, 12);
  const SequenceInput beam = Input(2, 30, 12, /*beam=*/2);
  ASSERT_TRUE(generator_->Add({ahead}).ok());
  for (int i = 0; i < 10; ++i) {
    auto events = generator_->Step();
    ASSERT_TRUE(events.ok()) << events.status();
  }
  ASSERT_TRUE(generator_->Add({greedy, beam}).ok());
  ASSERT_TRUE(generator_->Step().ok());  // beam search takes its spare cache
  std::map<SequenceId, StepEvent> done;
  {
    // A few KB for scratch; sequence 9's grown cache needs 16 KB.
    MemoryLimit limit(TensorBytesLive() + 4096);
    while (!generator_->empty() && done.size() < 3) {
      auto events = generator_->Step();
      ASSERT_TRUE(events.ok()) << events.status();
      for (StepEvent& e : *events) {
        if (e.finished) done[e.id] = std::move(e);
      }
    }
  }
  ASSERT_EQ(done.size(), 3u);
  const StepEvent& failed = done[9];
  EXPECT_THAT(failed.status,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("growing the KV cache of sequence 9 to 32 "
                                 "positions")));
  EXPECT_TRUE(failed.new_ids.empty());
  EXPECT_TRUE(failed.result.output_ids.empty());
  EXPECT_TRUE(done[1].status.ok()) << done[1].status;
  EXPECT_TRUE(done[2].status.ok()) << done[2].status;
  ExpectSameResult(done[1].result, Alone(greedy));
  ExpectSameResult(done[2].result, Alone(beam));

  // The generator goes on: the same id again, to the end this time.
  ASSERT_TRUE(generator_->Add({ahead}).ok());
  auto after = Drain();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_TRUE(after[9].status.ok()) << after[9].status;
  EXPECT_EQ(after[9].result.output_ids.size(), 200u);
}

TEST_F(GeneratorMemoryTest, SharedScratchFailureFailsTheStepAndKeepsTheSet) {
  ASSERT_TRUE(generator_->Add({Input(100, 20, 6)}).ok());
  ASSERT_TRUE(generator_->Step().ok());
  std::vector<SequenceInput> many;
  for (SequenceId id = 0; id < 40; ++id) many.push_back(Input(id, 20, 6));
  ASSERT_TRUE(generator_->Add(many).ok());
  {
    // 41 rows now, scratch sized for 1: the step's activations cannot grow.
    MemoryLimit limit(TensorBytesLive());
    EXPECT_THAT(generator_->Step(),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("out of memory")));
    EXPECT_EQ(generator_->active_sequences(), 41);
  }
  // Nothing advanced: stepping on gives each sequence what it gets alone.
  for (SequenceId id = 20; id < 40; ++id) generator_->Cancel(id);
  EXPECT_EQ(generator_->active_sequences(), 21);
  auto done = Drain();
  ASSERT_EQ(done.size(), 21u);
  for (SequenceId id = 0; id < 20; ++id) {
    SCOPED_TRACE(id);
    ExpectSameResult(done[id].result, Alone(many[id]));
  }
  // Every sequence can also just be cancelled after a failed step.
  ASSERT_TRUE(generator_->Add(many).ok());
  {
    MemoryLimit limit(TensorBytesLive());
    EXPECT_FALSE(generator_->Step().ok());
  }
  for (SequenceId id = 0; id < 40; ++id) generator_->Cancel(id);
  EXPECT_TRUE(generator_->empty());
  ASSERT_TRUE(generator_->Add({Input(7, 20, 6)}).ok());
  EXPECT_EQ(Drain().size(), 1u);
}

TEST_F(GeneratorMemoryTest, GrowthFailedHalfwayThenRetriedDecodesAsAlone) {
  // Beam 2 at its 17th token: both caches must double. The limit lets one
  // grow, not the other; the 40 sequences just added make the step's shared
  // scratch fail too, so the whole step fails and the beam stays, half
  // grown. Stepping on without the limit must give what it gives alone.
  const SequenceInput beam = Input(5, 30, 40, /*beam=*/2);
  ASSERT_TRUE(generator_->Add({beam}).ok());
  for (int i = 0; i < 16; ++i) ASSERT_TRUE(generator_->Step().ok());
  std::vector<SequenceInput> many;
  for (SequenceId id = 100; id < 140; ++id) many.push_back(Input(id, 20, 6));
  ASSERT_TRUE(generator_->Add(many).ok());
  const int64_t grown_cache = model_->network().self_cache_size(32) *
                              static_cast<int64_t>(sizeof(float));
  {
    MemoryLimit limit(TensorBytesLive() + grown_cache + 1024);
    EXPECT_THAT(generator_->Step(),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("out of memory")));
  }
  EXPECT_EQ(generator_->active_sequences(), 41);
  for (const SequenceInput& in : many) generator_->Cancel(in.id);
  auto done = Drain();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[5].status.ok()) << done[5].status;
  ExpectSameResult(done[5].result, Alone(beam));
}

TEST_F(GeneratorMemoryTest, BeamSearchStepsReuseTheirCaches) {
  // Caches that never grow (max_new_tokens 16 = the first capacity): after
  // the first step, children take over their parents' caches and copy into
  // the spare ones, so no step allocates.
  ASSERT_TRUE(
      generator_
          ->Add({Input(1, 30, 16, /*beam=*/4), Input(2, 30, 16, /*beam=*/4)})
          .ok());
  ASSERT_TRUE(generator_->Step().ok());
  ASSERT_TRUE(generator_->Step().ok());  // scratch at 8 rows
  const int64_t live = TensorBytesLive();
  ResetTensorBytesPeak();
  int steps = 2;
  while (!generator_->empty()) {
    auto events = generator_->Step();
    ASSERT_TRUE(events.ok()) << events.status();
    ++steps;
  }
  EXPECT_EQ(steps, 16);
  EXPECT_EQ(TensorBytesPeak(), live);
}

TEST(GeneratorMemoryEosTest, HugeMaxNewTokensStoppingEarlyAllocatesLittle) {
  // max_positions of a million, and EOS likely from the first step.
  const ModelConfig config = testing::MemoryTestConfig(1 << 20);
  testing::TempDir dir("generator_memory_eos_test");
  ASSERT_TRUE(testing::WriteMemoryTestModel(dir.path(), config,
                                            /*eos_bias=*/8.0f));
  const int64_t before_load = TensorBytesLive();
  auto model = Model::Load(dir.path(), {Backend::kDnnl, 2});
  ASSERT_TRUE(model.ok()) << model.status();
  // The weights (about 150 KB); nothing sized by max_positions (a full
  // positional table would be 128 MB).
  EXPECT_LT(TensorBytesLive() - before_load, int64_t{1} << 20);

  auto g = Generator::Create(model->get());
  ASSERT_TRUE(g.ok());
  const int64_t before = TensorBytesLive();
  ResetTensorBytesPeak();
  SequenceInput in;
  in.id = 1;
  in.source = testing::CountingSource(20, config.vocab_size, 0);
  in.options.max_new_tokens =
      config.max_positions - 1;  // 512 MB at full length
  in.options.beam_size = 1;
  ASSERT_TRUE((*g)->Add({in}).ok());
  int steps = 0;
  SequenceResult result;
  while (!(*g)->empty()) {
    auto events = (*g)->Step();
    ASSERT_TRUE(events.ok()) << events.status();
    ++steps;
    for (StepEvent& e : *events) {
      ASSERT_TRUE(e.status.ok()) << e.status;
      if (e.finished) result = e.result;
    }
    ASSERT_LT(steps, 100) << "EOS bias too weak";
  }
  EXPECT_EQ(result.finish_reason, FinishReason::kEos);
  // Encoder output, a 16-position cache, scratch: well under 1 MB.
  EXPECT_LT(TensorBytesPeak() - before, int64_t{1} << 20)
      << "after " << steps << " steps";
}

}  // namespace
}  // namespace attnserve::engine
