// Deferred reading of linear weights (issue 18): the loader checks every
// tensor up front but reads a linear's weight only when the network packs it,
// so a quantizing load never holds the whole float32 model.

#include <cstdint>
#include <string>
#include <vector>

#include "engine/format/model_dir.h"
#include "engine/memory/allocation_policy.h"
#include "engine/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Linears of ~4 MB of float32 weights in all, tables of a few KB: a load that
// read every matrix first would peak at that whole float32 model.
ModelConfig WideConfig() {
  ModelConfig c = testing::TinyConfig();
  c.d_model = 128;
  c.num_heads = 4;
  c.ffn_dim = 512;
  c.vocab_size = 48;
  return c;
}

void WriteWideModel(const std::string& dir) {
  const ModelConfig c = WideConfig();
  ASSERT_TRUE(testing::WriteModelDir(dir, testing::ConfigJson(c),
                                     testing::RandomModelTensors(c, {}))
                  .ok());
}

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data(), t.data() + t.size());
}

TEST(DeferredLoadTest, LinearsAreReadOnMaterializeAsTheEagerLoadReadsThem) {
  testing::TempDir dir("deferred_load_test");
  WriteWideModel(dir.path());
  absl::StatusOr<LoadedModelDir> eager = LoadModelDir(dir.path());
  ASSERT_TRUE(eager.ok()) << eager.status();
  absl::StatusOr<LoadedModelDir> deferred =
      LoadModelDir(dir.path(), ReadLinears::kWhenPacked);
  ASSERT_TRUE(deferred.ok()) << deferred.status();

  LinearWeights& fc1 = deferred->weights.decoder_layers[1].ffn.fc1;
  EXPECT_TRUE(fc1.weight.empty());
  EXPECT_THAT(fc1.weight_shape(), ElementsAre(512, 128));
  // Biases and norms are small: read at once.
  EXPECT_EQ(Values(fc1.bias),
            Values(eager->weights.decoder_layers[1].ffn.fc1.bias));
  ASSERT_TRUE(fc1.Materialize().ok());
  EXPECT_THAT(fc1.weight.shape(), ElementsAre(512, 128));
  EXPECT_EQ(Values(fc1.weight),
            Values(eager->weights.decoder_layers[1].ffn.fc1.weight));
  // Materialize again: the weight is kept, not read twice.
  ASSERT_TRUE(fc1.Materialize().ok());
  EXPECT_EQ(fc1.weight.size(), 512 * 128);
}

TEST(DeferredLoadTest, ADeferredReadThatFailsNamesTheFileAndTensor) {
  testing::TempDir dir("deferred_load_test");
  WriteWideModel(dir.path());
  absl::StatusOr<LoadedModelDir> deferred =
      LoadModelDir(dir.path(), ReadLinears::kWhenPacked);
  ASSERT_TRUE(deferred.ok()) << deferred.status();
  LinearWeights& q = deferred->weights.encoder_layers[0].self_attn.q;
  SetTensorMemoryLimitForTesting(TensorBytesLive());
  const absl::Status status = q.Materialize();
  SetTensorMemoryLimitForTesting(-1);
  EXPECT_THAT(
      status,
      StatusIs(absl::StatusCode::kResourceExhausted,
               AllOf(HasSubstr("model.safetensors"),
                     HasSubstr("\"encoder.layers.0.self_attn.q_proj.weight\""),
                     HasSubstr("65536 bytes"))));
  // Still deferred: a later attempt with memory to spare reads it.
  EXPECT_TRUE(q.weight.empty());
  ASSERT_TRUE(q.Materialize().ok());
  EXPECT_EQ(q.weight.size(), 128 * 128);
}

// Tensor bytes held at most while Model::Load runs at `type`.
int64_t LoadPeakBytes(const std::string& dir, ComputeType type) {
  const int64_t before = TensorBytesLive();
  ResetTensorBytesPeak();
  ModelOptions options;
  options.precision.compute_type = type;
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(dir, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return TensorBytesPeak() - before;
}

TEST(DeferredLoadTest, AnInt8LoadNeverHoldsAllFloat32Weights) {
  testing::TempDir dir("deferred_load_test");
  WriteWideModel(dir.path());
  const ModelConfig c = WideConfig();
  // Every linear's float32 weight: what an eager load holds before packing.
  const int64_t d = c.d_model, f = c.ffn_dim;
  const int64_t linear_floats = c.encoder_layers * (4 * d * d + 2 * d * f) +
                                c.decoder_layers * (8 * d * d + 2 * d * f);
  const int64_t linear_bytes = linear_floats * 4;
  const int64_t float32_peak = LoadPeakBytes(dir.path(), ComputeType::kFloat32);
  const int64_t int8_peak = LoadPeakBytes(dir.path(), ComputeType::kInt8);
  EXPECT_GE(float32_peak, linear_bytes);
  EXPECT_LT(int8_peak, linear_bytes / 2);
  EXPECT_LT(int8_peak, float32_peak / 2)
      << "int8 " << int8_peak << " vs float32 " << float32_peak << " bytes";
}

}  // namespace
}  // namespace attnserve::engine
