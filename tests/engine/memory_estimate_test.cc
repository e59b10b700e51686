// SequenceMemoryBytes against what the generator really allocates for one
// sequence decoded alone to its full length (the engine's Tensor byte
// counter, allocation_policy.h): never less, and within 4x.

#include "engine/memory/memory_estimate.h"

#include <memory>
#include <string>

#include "engine/decode/generator.h"
#include "engine/memory/allocation_policy.h"
#include "engine/model.h"
#include "gtest/gtest.h"
#include "tests/engine/memory_test_models.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

struct Shape {
  const char* name;
  int source_tokens;
  int max_new_tokens;
  int beam;
  int threads;
  int samples = 0;  // > 0: do_sample with this many num_return_sequences
  ComputeType kv_cache = ComputeType::kFloat32;  // --kv_cache_dtype
};

class MemoryEstimateTest : public ::testing::TestWithParam<Shape> {};

TEST_P(MemoryEstimateTest, BoundsWhatOneSequenceAllocates) {
  const Shape& shape = GetParam();
  const ModelConfig config = testing::MemoryTestConfig();
  testing::TempDir dir("memory_estimate_test");
  ASSERT_TRUE(testing::WriteMemoryTestModel(dir.path(), config));
  // A model of its own: the positional table and oneDNN's scratch grow on
  // first use, and belong to this sequence's bill.
  ModelOptions options{Backend::kDnnl, shape.threads};
  options.precision.kv_cache = shape.kv_cache;
  auto model = Model::Load(dir.path(), options);
  ASSERT_TRUE(model.ok()) << model.status();
  auto g = Generator::Create(model->get());
  ASSERT_TRUE(g.ok());

  SequenceInput in;
  in.id = 1;
  in.source =
      testing::CountingSource(shape.source_tokens, config.vocab_size, 0);
  in.options.max_new_tokens = shape.max_new_tokens;
  in.options.beam_size = shape.beam;
  in.options.ignore_eos = true;  // the worst case: every token
  if (shape.samples > 0) {
    in.options.do_sample = true;
    in.options.num_return_sequences = shape.samples;
  }
  const int64_t before = TensorBytesLive();
  ResetTensorBytesPeak();
  ASSERT_TRUE((*g)->Add({in}).ok());
  int steps = 0;
  while (!(*g)->empty()) {
    auto events = (*g)->Step();
    ASSERT_TRUE(events.ok()) << events.status();
    for (const StepEvent& e : *events) ASSERT_TRUE(e.status.ok()) << e.status;
    ++steps;
  }
  EXPECT_EQ(steps, shape.max_new_tokens);
  const int64_t measured = TensorBytesPeak() - before;
  const int64_t estimate = SequenceMemoryBytes(
      config, shape.source_tokens, in.options, shape.threads, shape.kv_cache);
  RecordProperty("measured_bytes", std::to_string(measured));
  RecordProperty("estimate_bytes", std::to_string(estimate));
  EXPECT_GE(estimate, measured);
  EXPECT_LE(estimate, 4 * measured);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MemoryEstimateTest,
    ::testing::Values(Shape{"greedy", 40, 300, 1, 1},
                      Shape{"greedy_2_threads", 40, 300, 1, 2},
                      Shape{"beam_4", 40, 300, 4, 2},
                      Shape{"long_source", 3000, 50, 1, 2},
                      Shape{"long_source_beam_4", 2000, 50, 4, 2},
                      // n samples take n rows (DecoderRows).
                      Shape{"samples_4", 40, 300, 1, 2, 4},
                      // bfloat16 caches: half the bytes, still bounded.
                      Shape{"beam_4_bf16_kv", 40, 300, 4, 2, 0,
                            ComputeType::kBFloat16},
                      Shape{"long_source_bf16_kv", 3000, 50, 1, 2, 0,
                            ComputeType::kBFloat16}),
    [](const auto& info) { return std::string(info.param.name); });

// The caches' share of the estimate halves with bfloat16 caches, nothing else.
TEST(MemoryEstimateKvTest, BFloat16CachesHalveTheCacheBytes) {
  const ModelConfig config = testing::MemoryTestConfig();
  DecodeOptions o;
  o.max_new_tokens = 100;
  o.beam_size = 2;
  const int64_t f32 = SequenceMemoryBytes(config, 30, o, 1);
  const int64_t bf16 =
      SequenceMemoryBytes(config, 30, o, 1, ComputeType::kBFloat16);
  const int64_t a = config.attention_dim(), layers = config.decoder_layers;
  const int64_t cache_floats =
      30 * layers * 2 * a + (2 + 1) * layers * 2 * 100 * a;
  EXPECT_EQ(f32 - bf16, 2 * cache_floats);
}

}  // namespace
}  // namespace attnserve::engine
