// Whole-model decoding with bfloat16 KV caches (Precision::kv_cache, the
// server's --kv_cache_dtype): batch-invariant, close to float32 caches, half
// the cache bytes, and still bounded by SequenceMemoryBytes.

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/decode/generator.h"
#include "engine/memory/allocation_policy.h"
#include "engine/memory/memory_estimate.h"
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

class KvCacheBf16Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir("kv_cache_bf16_test");
    ASSERT_TRUE(testing::WriteMemoryTestModel(dir_->path(),
                                              testing::MemoryTestConfig()));
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::unique_ptr<Model> Load(ComputeType kv_cache) {
    ModelOptions options{Backend::kDnnl, 2, {}};
    options.precision.kv_cache = kv_cache;
    auto model = Model::Load(dir_->path(), options);
    EXPECT_TRUE(model.ok()) << model.status();
    return model.ok() ? std::move(model).value() : nullptr;
  }
  static SequenceInput Input(const Model& model, SequenceId id, int src_len,
                             int max_new, int beam) {
    SequenceInput in;
    in.id = id;
    in.source = testing::CountingSource(src_len, model.config().vocab_size,
                                        static_cast<int>(id));
    in.options.max_new_tokens = max_new;
    in.options.beam_size = beam;
    in.options.ignore_eos = true;
    return in;
  }
  // Decodes `inputs` together on a fresh generator; results by id.
  static std::map<SequenceId, SequenceResult> Decode(
      Model* model, const std::vector<SequenceInput>& inputs) {
    std::map<SequenceId, SequenceResult> results;
    auto g = Generator::Create(model);
    EXPECT_TRUE(g.ok());
    if (!g.ok()) return results;
    EXPECT_THAT((*g)->Add(inputs), IsOk());
    while (!(*g)->empty()) {
      auto events = (*g)->Step();
      EXPECT_TRUE(events.ok()) << events.status();
      if (!events.ok()) break;
      for (StepEvent& e : *events) {
        EXPECT_TRUE(e.status.ok()) << e.status;
        if (e.finished) results[e.id] = e.result;
      }
    }
    return results;
  }
  // Ragged sources (so batched rows have other lengths beside them), greedy
  // and beam; caches grow several times over 40 tokens.
  static std::vector<SequenceInput> Inputs(const Model& model) {
    return {Input(model, 1, 7, 40, 1), Input(model, 2, 23, 33, 1),
            Input(model, 3, 3, 40, 4), Input(model, 4, 15, 25, 1),
            Input(model, 5, 11, 30, 3)};
  }

  static testing::TempDir* dir_;
};

testing::TempDir* KvCacheBf16Test::dir_ = nullptr;

TEST_F(KvCacheBf16Test, LoadRefusesOtherTypes) {
  ModelOptions options{Backend::kDnnl, 1, {}};
  options.precision.kv_cache = ComputeType::kInt8;
  EXPECT_THAT(Model::Load(dir_->path(), options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("kv_cache_dtype must be float32 or "
                                 "bfloat16, got int8")));
}

TEST_F(KvCacheBf16Test, CacheBytesHalve) {
  auto f32 = Load(ComputeType::kFloat32);
  auto bf16 = Load(ComputeType::kBFloat16);
  ASSERT_NE(f32, nullptr);
  ASSERT_NE(bf16, nullptr);
  EXPECT_EQ(bf16->network().kv_cache_type(), ComputeType::kBFloat16);
  for (int64_t capacity : {1, 16, 300}) {
    EXPECT_EQ(2 * bf16->network().self_cache_size(capacity),
              f32->network().self_cache_size(capacity));
  }
  for (int64_t rows : {1, 7, 3000}) {
    EXPECT_EQ(2 * bf16->network().cross_kv_size(rows),
              f32->network().cross_kv_size(rows));
  }
}

TEST_F(KvCacheBf16Test, BatchedEqualsAlone) {
  auto model = Load(ComputeType::kBFloat16);
  ASSERT_NE(model, nullptr);
  const std::vector<SequenceInput> inputs = Inputs(*model);
  const auto batched = Decode(model.get(), inputs);
  ASSERT_EQ(batched.size(), inputs.size());
  for (const SequenceInput& in : inputs) {
    const auto alone = Decode(model.get(), {in});
    ASSERT_EQ(alone.count(in.id), 1u);
    EXPECT_EQ(batched.at(in.id).output_ids, alone.at(in.id).output_ids)
        << "sequence " << in.id;
    // As generator_test's float32 BatchedEqualsAlone: a batch of 8 rows or
    // more takes the attention's by-row loops, whose softmax rounds in
    // another order; the bf16 values themselves are the same.
    const std::vector<float>& a = alone.at(in.id).log_probs;
    const std::vector<float>& b = batched.at(in.id).log_probs;
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(b[i], a[i], 1e-4f) << "sequence " << in.id << " token " << i;
  }
}

// Each cached key and value is rounded once to bfloat16 (2^-9 relative), so
// the logits move a little: tokens mostly agree with float32 caches, and
// until the first token that differs (after which the two decode different
// prefixes) the log-probs stay within 0.05 nats.
TEST_F(KvCacheBf16Test, CloseToFloat32Caches) {
  auto f32 = Load(ComputeType::kFloat32);
  auto bf16 = Load(ComputeType::kBFloat16);
  ASSERT_NE(f32, nullptr);
  ASSERT_NE(bf16, nullptr);
  const std::vector<SequenceInput> inputs = Inputs(*f32);
  const auto expected = Decode(f32.get(), inputs);
  const auto actual = Decode(bf16.get(), inputs);
  int agreeing = 0, total = 0;
  double worst = 0.0;
  for (const SequenceInput& in : inputs) {
    const SequenceResult& e = expected.at(in.id);
    const SequenceResult& a = actual.at(in.id);
    ASSERT_EQ(a.output_ids.size(), e.output_ids.size());
    size_t same = 0;
    while (same < e.output_ids.size() &&
           a.output_ids[same] == e.output_ids[same])
      ++same;
    for (size_t i = 0; i < same; ++i)
      worst =
          std::max(worst, double{std::fabs(a.log_probs[i] - e.log_probs[i])});
    agreeing += static_cast<int>(same);
    total += static_cast<int>(e.output_ids.size());
  }
  RecordProperty("agreeing_tokens", agreeing);
  RecordProperty("total_tokens", total);
  RecordProperty("worst_log_prob_difference", std::to_string(worst));
  EXPECT_GE(agreeing, total * 8 / 10);
  EXPECT_LE(worst, 0.05);
}

TEST_F(KvCacheBf16Test, EstimateStillBoundsAndPeakDrops) {
  const ModelConfig config = testing::MemoryTestConfig();
  std::map<ComputeType, int64_t> peaks;
  for (ComputeType type : {ComputeType::kFloat32, ComputeType::kBFloat16}) {
    auto model = Load(type);
    ASSERT_NE(model, nullptr);
    const SequenceInput in = Input(*model, 1, 40, 400, 4);
    const int64_t before = TensorBytesLive();
    ResetTensorBytesPeak();
    const auto results = Decode(model.get(), {in});
    ASSERT_EQ(results.size(), 1u);
    peaks[type] = TensorBytesPeak() - before;
    EXPECT_GE(SequenceMemoryBytes(config, 40, in.options, 2), peaks[type])
        << ComputeTypeName(type);
  }
  // The self-attention caches (4 hypotheses, and a fifth while they grow, of
  // 400 positions) dominate this sequence's bytes (a short source keeps the
  // encoder's attention scratch small); halving them takes off well over a
  // quarter of the peak.
  RecordProperty("peak_float32", std::to_string(peaks[ComputeType::kFloat32]));
  RecordProperty("peak_bfloat16",
                 std::to_string(peaks[ComputeType::kBFloat16]));
  EXPECT_LT(peaks[ComputeType::kBFloat16],
            peaks[ComputeType::kFloat32] * 3 / 4);
}

}  // namespace
}  // namespace attnserve::engine
