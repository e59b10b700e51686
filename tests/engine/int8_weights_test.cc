// Weights stored already quantized to int8 (engine/format/int8_weights.h):
// they load as the values they stand for, decode exactly as the same weights
// quantized at load, and every malformed form is an error naming the tensor.

#include "engine/format/int8_weights.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "engine/decode/generator.h"
#include "engine/format/model_weights.h"
#include "engine/model.h"
#include "engine/ops/quantize.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/decode_test_util.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::NamedTensor;
using Tensors = std::vector<NamedTensor>;

// The matrices scripts/hf_convert/quantize.py stores as int8.
bool Quantizable(const std::string& name) {
  return absl::EndsWith(name, "_proj.weight") ||
         absl::EndsWith(name, ".fc1.weight") ||
         absl::EndsWith(name, ".fc2.weight") || name == "shared.embed.weight";
}

// `tensors` with every quantizable matrix stored as int8 plus its scales, as
// the converter writes them; `dequantized` (if not null) gets the float
// tensors of the values they stand for.
Tensors StoreInt8(const Tensors& tensors, Tensors* dequantized = nullptr) {
  Tensors out;
  for (const NamedTensor& t : tensors) {
    if (!Quantizable(t.name)) {
      out.push_back(t);
      if (dequantized != nullptr) dequantized->push_back(t);
      continue;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    NamedTensor q{t.name, t.shape, {}, std::vector<int8_t>(rows * cols)};
    NamedTensor scale{Int8ScaleName(t.name), {rows}, std::vector<float>(rows)};
    QuantizeRowsInt8(t.values.data(), rows, cols, q.int8_values.data(),
                     scale.values.data());
    if (dequantized != nullptr) {
      NamedTensor f{t.name, t.shape, std::vector<float>(rows * cols)};
      for (int64_t r = 0; r < rows; ++r) {
        DequantizeRowInt8(q.int8_values.data() + r * cols, cols,
                          scale.values[r], f.values.data() + r * cols);
      }
      dequantized->push_back(std::move(f));
    }
    out.push_back(std::move(q));
    out.push_back(std::move(scale));
  }
  return out;
}

NamedTensor* Find(Tensors& tensors, const std::string& name) {
  for (NamedTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

class Int8WeightsTest : public ::testing::Test {
 protected:
  Int8WeightsTest()
      : config_(testing::TinyConfig()),
        float_(testing::RandomModelTensors(config_, {})) {}

  absl::Status Load(const Tensors& tensors) {
    const testing::TempDir dir("int8_weights_test");
    const std::string path = dir.path() + "/model.safetensors";
    if (!testing::WriteModelDir(dir.path(), testing::ConfigJson(config_),
                                tensors)
             .ok()) {
      return absl::InternalError("cannot write the test model");
    }
    return LoadModelWeights(path, config_).status();
  }

  ModelConfig config_;
  Tensors float_;
};

constexpr char kWeight[] = "encoder.layers.0.self_attn.q_proj.weight";

TEST_F(Int8WeightsTest, LoadsTheValuesTheIntegersStandFor) {
  Tensors dequantized;
  const Tensors stored = StoreInt8(float_, &dequantized);
  const testing::TempDir dir("int8_weights_test");
  ASSERT_TRUE(
      testing::WriteModelDir(dir.path(), testing::ConfigJson(config_), stored)
          .ok());
  auto w = LoadModelWeights(dir.path() + "/model.safetensors", config_);
  ASSERT_TRUE(w.ok()) << w.status();
  const Tensor& q = w->encoder_layers[0].self_attn.q.weight;
  const NamedTensor* want = Find(dequantized, kWeight);
  ASSERT_EQ(q.size(), static_cast<int64_t>(want->values.size()));
  for (int64_t i = 0; i < q.size(); ++i) {
    ASSERT_EQ(q.data()[i], want->values[i]) << i;
  }
  // The table too (it is the output projection as well: tied).
  const NamedTensor* table = Find(dequantized, "shared.embed.weight");
  for (int64_t i = 0; i < w->encoder_embed.size(); ++i) {
    ASSERT_EQ(w->encoder_embed.data()[i], table->values[i]) << i;
  }
}

// Stored int8 decodes as the float file quantized at load (the pack step
// gets back the stored integers), on both backends; at float32 it decodes as
// the float file of the values the integers stand for.
TEST_F(Int8WeightsTest, DecodesAsTheSameWeightsQuantizedAtLoad) {
  Tensors dequantized;
  const Tensors stored = StoreInt8(float_, &dequantized);
  const testing::TempDir f32_dir("int8_weights_f32");
  const testing::TempDir int8_dir("int8_weights_int8");
  const testing::TempDir deq_dir("int8_weights_deq");
  const std::string config = testing::ConfigJson(config_);
  ASSERT_TRUE(testing::WriteModelDir(f32_dir.path(), config, float_).ok());
  ASSERT_TRUE(testing::WriteModelDir(int8_dir.path(), config, stored).ok());
  ASSERT_TRUE(testing::WriteModelDir(deq_dir.path(), config, dequantized).ok());
  const auto sources = testing::RandomSources(8, config_.vocab_size, 5);
  DecodeOptions o;
  o.max_new_tokens = 10;
  for (Backend backend : {Backend::kReference, Backend::kDnnl}) {
    if (backend == Backend::kDnnl &&
        !HostRunsComputeType(ComputeType::kInt8).ok()) {
      continue;  // the reference covers the format; dnnl needs VNNI
    }
    SCOPED_TRACE(BackendName(backend));
    auto decode = [&](const std::string& dir, ComputeType type) {
      ModelOptions options;
      options.backend = backend;
      options.precision.compute_type = type;
      auto model = Model::Load(dir, options);
      EXPECT_TRUE(model.ok()) << model.status();
      auto r = GenerateBatch(**model, sources, o);
      EXPECT_TRUE(r.ok()) << r.status();
      return *std::move(r);
    };
    testing::ExpectSameResults(decode(f32_dir.path(), ComputeType::kInt8),
                               decode(int8_dir.path(), ComputeType::kInt8),
                               1e-5f);
    testing::ExpectSameResults(decode(deq_dir.path(), ComputeType::kFloat32),
                               decode(int8_dir.path(), ComputeType::kFloat32),
                               0.0f);
  }
}

TEST_F(Int8WeightsTest, MissingScalesNameTheWeight) {
  Tensors stored = StoreInt8(float_);
  stored.erase(std::remove_if(stored.begin(), stored.end(),
                              [](const NamedTensor& t) {
                                return t.name == Int8ScaleName(kWeight);
                              }),
               stored.end());
  EXPECT_THAT(Load(stored),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("missing tensor \"" +
                                       Int8ScaleName(kWeight) + "\""),
                             HasSubstr("scales of the int8 weight \"" +
                                       std::string(kWeight)))));
}

TEST_F(Int8WeightsTest, ScalesOfTheWrongShapeOrDtype) {
  Tensors stored = StoreInt8(float_);
  NamedTensor* scale = Find(stored, Int8ScaleName(kWeight));
  scale->shape = {scale->shape[0] - 1};
  scale->values.pop_back();
  EXPECT_THAT(Load(stored), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr(Int8ScaleName(kWeight)),
                                           HasSubstr("one scale per row"))));
  stored = StoreInt8(float_);
  scale = Find(stored, Int8ScaleName(kWeight));
  scale->int8_values.assign(scale->values.size(), 1);
  scale->values.clear();
  EXPECT_THAT(Load(stored),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(Int8ScaleName(kWeight)),
                             HasSubstr("has dtype I8; the scales of an int8 "
                                       "weight are F32"))));
}

TEST_F(Int8WeightsTest, BadValuesNameTheTensor) {
  Tensors stored = StoreInt8(float_);
  Find(stored, kWeight)->int8_values[5] = -128;
  EXPECT_THAT(Load(stored),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(kWeight), HasSubstr("holds -128"))));
  for (float bad : {-1.0f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    stored = StoreInt8(float_);
    Find(stored, Int8ScaleName(kWeight))->values[2] = bad;
    EXPECT_THAT(Load(stored), StatusIs(absl::StatusCode::kInvalidArgument,
                                       AllOf(HasSubstr(Int8ScaleName(kWeight)),
                                             HasSubstr("at row 2"),
                                             HasSubstr("finite and >= 0"))));
  }
}

TEST_F(Int8WeightsTest, OnlyMatricesTheComputeTypesQuantizeMayBeInt8) {
  Tensors stored = StoreInt8(float_);
  NamedTensor* norm = Find(stored, "encoder.layers.0.self_attn_norm.weight");
  norm->int8_values.assign(norm->values.size(), 1);
  norm->values.clear();
  EXPECT_THAT(
      Load(stored),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("encoder.layers.0.self_attn_norm.weight"),
                     HasSubstr("I8 only for linear weights and token "
                               "tables"))));
}

TEST_F(Int8WeightsTest, ScalesBesideAFloatWeightAreRefused) {
  Tensors stored = float_;
  stored.push_back({Int8ScaleName(kWeight),
                    {config_.d_model},
                    std::vector<float>(config_.d_model, 0.01f)});
  EXPECT_THAT(Load(stored), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr(Int8ScaleName(kWeight)),
                                           HasSubstr("is F32, not I8"))));
}

}  // namespace
}  // namespace attnserve::engine
