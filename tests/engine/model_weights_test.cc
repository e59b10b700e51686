#include "engine/format/model_weights.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/status_matchers.h"
#include "tests/engine/test_model_writer.h"

namespace attnserve::engine {
namespace {

using ::attnserve::IsOk;
using ::attnserve::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::NamedTensor;
using testing::RandomModelOptions;
using Tensors = std::vector<NamedTensor>;

// Every non-empty tensor of `w` under its model-format.md name.
std::vector<std::pair<std::string, const Tensor*>> LoadedTensors(
    const ModelWeights& w) {
  std::vector<std::pair<std::string, const Tensor*>> out;
  auto add = [&out](std::string name, const Tensor& t) {
    if (!t.empty()) out.emplace_back(std::move(name), &t);
  };
  auto add_linear = [&add](const std::string& prefix, const LinearWeights& l) {
    add(prefix + ".weight", l.weight);
    add(prefix + ".bias", l.bias);
  };
  auto add_norm = [&add](const std::string& prefix, const NormWeights& n) {
    add(prefix + ".weight", n.gamma);
    add(prefix + ".bias", n.beta);
  };
  auto add_attention = [&add_linear](const std::string& prefix,
                                     const AttentionWeights& a) {
    add_linear(prefix + ".q_proj", a.q);
    add_linear(prefix + ".k_proj", a.k);
    add_linear(prefix + ".v_proj", a.v);
    add_linear(prefix + ".o_proj", a.o);
  };
  auto add_ffn = [&add_linear](const std::string& prefix, const FfnWeights& f) {
    add_linear(prefix + ".fc1", f.fc1);
    add_linear(prefix + ".fc1_linear", f.fc1_linear);
    add_linear(prefix + ".fc2", f.fc2);
  };
  add("encoder.embed_positions.weight", w.encoder_positions);
  add("decoder.embed_positions.weight", w.decoder_positions);
  add_norm("encoder.embed_norm", w.encoder_embed_norm);
  add_norm("decoder.embed_norm", w.decoder_embed_norm);
  add("encoder.relative_attention_bias.weight", w.encoder_relative_bias);
  add("decoder.relative_attention_bias.weight", w.decoder_relative_bias);
  if (w.shared_embedding) {
    add("shared.embed.weight", w.encoder_embed);
  } else {
    add("encoder.embed.weight", w.encoder_embed);
    add("decoder.embed.weight", w.decoder_embed);
  }
  for (size_t i = 0; i < w.encoder_layers.size(); ++i) {
    const std::string p = absl::StrCat("encoder.layers.", i);
    const EncoderLayerWeights& l = w.encoder_layers[i];
    add_attention(p + ".self_attn", l.self_attn);
    add_norm(p + ".self_attn_norm", l.self_attn_norm);
    add_ffn(p + ".ffn", l.ffn);
    add_norm(p + ".ffn_norm", l.ffn_norm);
  }
  add_norm("encoder.final_norm", w.encoder_final_norm);
  for (size_t i = 0; i < w.decoder_layers.size(); ++i) {
    const std::string p = absl::StrCat("decoder.layers.", i);
    const DecoderLayerWeights& l = w.decoder_layers[i];
    add_attention(p + ".self_attn", l.self_attn);
    add_norm(p + ".self_attn_norm", l.self_attn_norm);
    add_attention(p + ".cross_attn", l.cross_attn);
    add_norm(p + ".cross_attn_norm", l.cross_attn_norm);
    add_ffn(p + ".ffn", l.ffn);
    add_norm(p + ".ffn_norm", l.ffn_norm);
  }
  add_norm("decoder.final_norm", w.decoder_final_norm);
  add("lm_head.weight", w.lm_head_weight);
  add("lm_head.bias", w.lm_head_bias);
  return out;
}

// The loaded model holds exactly `expected` (names, shapes and values).
void ExpectHolds(const ModelWeights& w, const Tensors& expected) {
  const auto loaded = LoadedTensors(w);
  EXPECT_EQ(loaded.size(), expected.size());
  for (const auto& [name, tensor] : loaded) {
    SCOPED_TRACE(name);
    const NamedTensor* want = testing::FindTensor(expected, name);
    ASSERT_NE(want, nullptr) << "loaded but not written";
    EXPECT_EQ(tensor->shape(), want->shape);
    EXPECT_THAT(
        std::vector<float>(tensor->data(), tensor->data() + tensor->size()),
        ElementsAreArray(want->values));
  }
}

Tensors Without(Tensors tensors, const std::string& name) {
  const size_t before = tensors.size();
  tensors.erase(
      std::remove_if(tensors.begin(), tensors.end(),
                     [&](const NamedTensor& t) { return t.name == name; }),
      tensors.end());
  EXPECT_EQ(tensors.size() + 1, before) << name;
  return tensors;
}

Tensors With(Tensors tensors, NamedTensor extra) {
  tensors.push_back(std::move(extra));
  return tensors;
}

// Zero-filled tensor of the given shape.
NamedTensor Zeros(std::string name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return {std::move(name), std::move(shape), std::vector<float>(n)};
}

// `name` stored with `shape` instead of its own.
Tensors Reshaped(Tensors tensors, const std::string& name,
                 std::vector<int64_t> shape) {
  for (NamedTensor& t : tensors) {
    if (t.name == name) t = Zeros(name, std::move(shape));
  }
  return tensors;
}

// TinyConfig in the variant where every tensor is required: pre-norm (final
// norms), untied (lm_head.weight), with separate embeddings written.
ModelConfig AllRequiredConfig() {
  ModelConfig c = testing::TinyConfig();
  c.norm_placement = NormPlacement::kPre;
  c.tie_output_embedding = false;
  return c;
}

RandomModelOptions SeparateEmbeddings() {
  RandomModelOptions o;
  o.shared_embedding = false;
  return o;
}

class ModelWeightsTest : public ::testing::Test {
 protected:
  absl::StatusOr<ModelWeights> LoadBytes(const std::string& bytes,
                                         const ModelConfig& config) {
    testing::WriteFile(path_, bytes);
    return LoadModelWeights(path_, config);
  }

  absl::StatusOr<ModelWeights> Load(const Tensors& tensors,
                                    const ModelConfig& config) {
    return LoadBytes(testing::SafetensorsBytes(tensors), config);
  }

  // Loads RandomModelTensors(config, options) and checks every tensor arrived
  // intact.
  absl::StatusOr<ModelWeights> LoadRandom(const ModelConfig& config,
                                          const RandomModelOptions& options) {
    const Tensors tensors = testing::RandomModelTensors(config, options);
    absl::StatusOr<ModelWeights> w = Load(tensors, config);
    EXPECT_THAT(w, IsOk());
    if (w.ok()) ExpectHolds(*w, tensors);
    return w;
  }

  testing::TempDir dir_{"model_weights_test"};
  const std::string path_ = dir_.File("model.safetensors");
};

TEST_F(ModelWeightsTest, LoadsSharedEmbeddingModel) {
  const ModelConfig c = testing::TinyConfig();
  absl::StatusOr<ModelWeights> w = LoadRandom(c, {});
  ASSERT_THAT(w, IsOk());
  EXPECT_TRUE(w->shared_embedding);
  EXPECT_TRUE(w->decoder_embed.empty());
  EXPECT_EQ(&w->decoder_embedding(), &w->encoder_embed);
  EXPECT_EQ(w->encoder_embed.shape(), (std::vector<int64_t>{23, 16}));
  ASSERT_EQ(w->encoder_layers.size(), 2u);
  ASSERT_EQ(w->decoder_layers.size(), 2u);
  EXPECT_EQ(w->encoder_layers[1].ffn.fc1.weight.shape(),
            (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(w->decoder_layers[1].ffn.fc2.weight.shape(),
            (std::vector<int64_t>{16, 32}));
  EXPECT_EQ(w->decoder_layers[0].cross_attn.k.bias.shape(),
            (std::vector<int64_t>{16}));
  EXPECT_TRUE(w->encoder_final_norm.gamma.empty());
  EXPECT_TRUE(w->decoder_final_norm.beta.empty());
  EXPECT_TRUE(w->lm_head_weight.empty());
  EXPECT_TRUE(w->lm_head_bias.empty());
}

// T5's shape in the attnserve format: attention wider than d_model, no
// biases, RMS norms (weight only), a gated FFN, relative position tables.
ModelConfig T5LikeConfig() {
  ModelConfig c = testing::TinyConfig();
  c.attention_head_dim = 12;  // A = 24 != d_model 16
  c.norm_kind = NormKind::kRmsNorm;
  c.norm_placement = NormPlacement::kPre;
  c.linear_bias = false;
  c.gated_ffn = true;
  c.scale_attention = false;
  c.positional_encoding = PositionalEncoding::kNone;
  c.relative_attention_num_buckets = 8;
  c.relative_attention_max_distance = 20;
  return c;
}

// BART's: learned positions and an embedding norm.
ModelConfig BartLikeConfig() {
  ModelConfig c = testing::TinyConfig();
  c.positional_encoding = PositionalEncoding::kLearned;
  c.embedding_norm = true;
  return c;
}

TEST_F(ModelWeightsTest, LoadsT5LikeModel) {
  const ModelConfig c = T5LikeConfig();
  absl::StatusOr<ModelWeights> w = LoadRandom(c, {});
  ASSERT_THAT(w, IsOk());
  const AttentionWeights& att = w->decoder_layers[1].cross_attn;
  EXPECT_EQ(att.q.weight.shape(), (std::vector<int64_t>{24, 16}));
  EXPECT_EQ(att.o.weight.shape(), (std::vector<int64_t>{16, 24}));
  EXPECT_TRUE(att.q.bias.empty());
  EXPECT_TRUE(att.o.bias.empty());
  EXPECT_EQ(w->encoder_layers[0].ffn.fc1_linear.weight.shape(),
            (std::vector<int64_t>{32, 16}));
  EXPECT_TRUE(w->encoder_layers[0].ffn.fc1_linear.bias.empty());
  EXPECT_TRUE(w->encoder_layers[0].self_attn_norm.beta.empty());
  EXPECT_TRUE(w->decoder_final_norm.beta.empty());
  EXPECT_EQ(w->decoder_final_norm.gamma.shape(), (std::vector<int64_t>{16}));
  EXPECT_EQ(w->encoder_relative_bias.shape(), (std::vector<int64_t>{8, 2}));
  EXPECT_EQ(w->decoder_relative_bias.shape(), (std::vector<int64_t>{8, 2}));
  EXPECT_TRUE(w->encoder_positions.empty());
}

TEST_F(ModelWeightsTest, LoadsBartLikeModel) {
  const ModelConfig c = BartLikeConfig();
  absl::StatusOr<ModelWeights> w = LoadRandom(c, {});
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->encoder_positions.shape(), (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(w->decoder_positions.shape(), (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(w->encoder_embed_norm.beta.shape(), (std::vector<int64_t>{16}));
  EXPECT_EQ(w->decoder_embed_norm.gamma.shape(), (std::vector<int64_t>{16}));
  EXPECT_TRUE(w->encoder_relative_bias.empty());
}

TEST_F(ModelWeightsTest, NewTensorsTheConfigAsksForAreRequired) {
  struct Case {
    ModelConfig config;
    const char* tensor;
    const char* why;
  };
  const Case cases[] = {
      {BartLikeConfig(), "decoder.embed_positions.weight", "learned"},
      {BartLikeConfig(), "encoder.embed_norm.bias", "embedding_norm"},
      {T5LikeConfig(), "encoder.relative_attention_bias.weight",
       "relative_attention_num_buckets"},
      {T5LikeConfig(), "decoder.layers.1.ffn.fc1_linear.weight", ""},
      {T5LikeConfig(), "encoder.final_norm.weight", "pre"},
  };
  for (const Case& test : cases) {
    SCOPED_TRACE(test.tensor);
    const Tensors tensors = testing::RandomModelTensors(test.config, {});
    EXPECT_THAT(Load(Without(tensors, test.tensor), test.config),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(absl::StrCat("missing tensor \"",
                                                      test.tensor, "\"")),
                               HasSubstr(test.why))));
  }
}

TEST_F(ModelWeightsTest, AttentionWidthIsNumHeadsTimesHeadDim) {
  const ModelConfig c = T5LikeConfig();
  // A file written for A == d_model does not fit a config with A = 24.
  const Tensors tensors =
      Reshaped(testing::RandomModelTensors(c, {}),
               "encoder.layers.0.self_attn.k_proj.weight", {16, 16});
  EXPECT_THAT(
      Load(tensors, c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"encoder.layers.0.self_attn.k_proj.weight\""),
                     HasSubstr("[16, 16]"), HasSubstr("[24, 16]"))));
}

TEST_F(ModelWeightsTest, BiasesOfAModelWithoutLinearBiasAreIgnored) {
  ModelConfig c = T5LikeConfig();
  const Tensors tensors =
      With(testing::RandomModelTensors(c, {}),
           Zeros("encoder.layers.0.self_attn.q_proj.bias", {24}));
  absl::StatusOr<ModelWeights> w = Load(tensors, c);
  ASSERT_THAT(w, IsOk());
  EXPECT_TRUE(w->encoder_layers[0].self_attn.q.bias.empty());
}

TEST_F(ModelWeightsTest, LoadsSeparateEmbeddings) {
  absl::StatusOr<ModelWeights> w =
      LoadRandom(testing::TinyConfig(), SeparateEmbeddings());
  ASSERT_THAT(w, IsOk());
  EXPECT_FALSE(w->shared_embedding);
  EXPECT_EQ(&w->decoder_embedding(), &w->decoder_embed);
  EXPECT_EQ(w->decoder_embed.shape(), (std::vector<int64_t>{23, 16}));
}

TEST_F(ModelWeightsTest, LoadsPreNormModelWithFinalNorms) {
  ModelConfig c = testing::TinyConfig();
  c.norm_placement = NormPlacement::kPre;
  absl::StatusOr<ModelWeights> w = LoadRandom(c, {});
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->encoder_final_norm.gamma.shape(), (std::vector<int64_t>{16}));
  EXPECT_EQ(w->decoder_final_norm.beta.shape(), (std::vector<int64_t>{16}));
}

TEST_F(ModelWeightsTest, LoadsOptionalFinalNormsOfPostNormModel) {
  RandomModelOptions o;
  o.final_norms = true;
  absl::StatusOr<ModelWeights> w = LoadRandom(testing::TinyConfig(), o);
  ASSERT_THAT(w, IsOk());
  EXPECT_FALSE(w->encoder_final_norm.gamma.empty());
  EXPECT_FALSE(w->decoder_final_norm.beta.empty());
}

TEST_F(ModelWeightsTest, LoadsUntiedLmHeadAndBias) {
  ModelConfig c = testing::TinyConfig();
  c.tie_output_embedding = false;
  RandomModelOptions o;
  o.lm_head_bias = true;
  absl::StatusOr<ModelWeights> w = LoadRandom(c, o);
  ASSERT_THAT(w, IsOk());
  EXPECT_EQ(w->lm_head_weight.shape(), (std::vector<int64_t>{23, 16}));
  EXPECT_EQ(w->lm_head_bias.shape(), (std::vector<int64_t>{23}));
}

TEST_F(ModelWeightsTest, LoadsLmHeadBiasOfTiedModel) {
  RandomModelOptions o;
  o.lm_head_bias = true;
  absl::StatusOr<ModelWeights> w = LoadRandom(testing::TinyConfig(), o);
  ASSERT_THAT(w, IsOk());
  EXPECT_TRUE(w->lm_head_weight.empty());
  EXPECT_EQ(w->lm_head_bias.shape(), (std::vector<int64_t>{23}));
}

TEST_F(ModelWeightsTest, TiedModelIgnoresLmHeadWeight) {
  const ModelConfig c = testing::TinyConfig();
  // Even one of a nonsensical shape: the config says the embedding is used.
  absl::StatusOr<ModelWeights> w = Load(
      With(testing::RandomModelTensors(c, {}), Zeros("lm_head.weight", {3, 3})),
      c);
  ASSERT_THAT(w, IsOk());
  EXPECT_TRUE(w->lm_head_weight.empty());
}

TEST_F(ModelWeightsTest, IgnoresTensorsTheConfigDoesNotUse) {
  const ModelConfig c = testing::TinyConfig();
  Tensors tensors = testing::RandomModelTensors(c, {});
  tensors.push_back(Zeros("encoder.layers.2.ffn.fc1.weight", {32, 16}));
  tensors.push_back(Zeros("optimizer.step", {}));
  EXPECT_THAT(Load(tensors, c), IsOk());
}

TEST_F(ModelWeightsTest, RejectsPreNormWithoutFinalNorms) {
  ModelConfig c = testing::TinyConfig();
  c.norm_placement = NormPlacement::kPre;
  // A post-norm model's tensors: no final norms.
  EXPECT_THAT(Load(testing::RandomModelTensors(testing::TinyConfig(), {}), c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_),
                             HasSubstr("\"encoder.final_norm.weight\""),
                             HasSubstr("pre"))));
}

TEST_F(ModelWeightsTest, RejectsHalfAFinalNorm) {
  const ModelConfig c = testing::TinyConfig();
  RandomModelOptions o;
  o.final_norms = true;
  EXPECT_THAT(Load(Without(testing::RandomModelTensors(c, o),
                           "decoder.final_norm.bias"),
                   c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_),
                             HasSubstr("\"decoder.final_norm.bias\""))));
}

TEST_F(ModelWeightsTest, RejectsUntiedModelWithoutLmHead) {
  ModelConfig c = testing::TinyConfig();
  c.tie_output_embedding = false;
  EXPECT_THAT(Load(testing::RandomModelTensors(testing::TinyConfig(), {}), c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("\"lm_head.weight\""),
                             HasSubstr("tie_output_embedding"))));
}

TEST_F(ModelWeightsTest, RejectsBothEmbeddingLayouts) {
  const ModelConfig c = testing::TinyConfig();
  EXPECT_THAT(
      Load(With(testing::RandomModelTensors(c, {}),
                Zeros("encoder.embed.weight", {23, 16})),
           c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr("\"shared.embed.weight\""),
                     HasSubstr("\"encoder.embed.weight\""))));
}

TEST_F(ModelWeightsTest, RejectsMissingSharedEmbedding) {
  const ModelConfig c = testing::TinyConfig();
  EXPECT_THAT(
      Load(Without(testing::RandomModelTensors(c, {}), "shared.embed.weight"),
           c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr("missing tensor"),
                     HasSubstr("\"shared.embed.weight\""))));
}

TEST_F(ModelWeightsTest, RejectsTransposedLinearWeight) {
  const ModelConfig c = testing::TinyConfig();
  const std::string name = "decoder.layers.1.ffn.fc1.weight";
  EXPECT_THAT(
      Load(Reshaped(testing::RandomModelTensors(c, {}), name, {16, 32}), c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr(name), HasSubstr("[16, 32]"),
                     HasSubstr("expected [32, 16]"))));
}

TEST_F(ModelWeightsTest, RejectsConfigWithMoreLayersThanTheFile) {
  ModelConfig c = testing::TinyConfig();
  c.encoder_layers = 3;
  EXPECT_THAT(
      Load(testing::RandomModelTensors(testing::TinyConfig(), {}), c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("\"encoder.layers.2.self_attn.q_proj.weight\"")));
}

TEST_F(ModelWeightsTest, RejectsConfigWithAnotherVocabulary) {
  ModelConfig c = testing::TinyConfig();
  c.vocab_size = 24;
  EXPECT_THAT(
      Load(testing::RandomModelTensors(testing::TinyConfig(), {}), c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("\"shared.embed.weight\""),
                     HasSubstr("[23, 16]"), HasSubstr("expected [24, 16]"))));
}

TEST_F(ModelWeightsTest, RejectsNonFloatDtype) {
  const ModelConfig c = testing::TinyConfig();
  const std::string name = "encoder.layers.0.ffn.fc1.bias";
  // I32 has F32's size, so only the header changes.
  const std::string bytes = absl::StrReplaceAll(
      testing::SafetensorsBytes(testing::RandomModelTensors(c, {})),
      {{"\"" + name + "\":{\"dtype\":\"F32\"",
        "\"" + name + "\":{\"dtype\":\"I32\""}});
  EXPECT_THAT(
      LoadBytes(bytes, c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr(name), HasSubstr("I32"))));
}

TEST_F(ModelWeightsTest, MissingFileIsNotFound) {
  EXPECT_THAT(
      LoadModelWeights(dir_.File("absent.safetensors"), testing::TinyConfig()),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("absent.safetensors")));
}

TEST_F(ModelWeightsTest, RejectsTruncatedFile) {
  const ModelConfig c = testing::TinyConfig();
  std::string bytes =
      testing::SafetensorsBytes(testing::RandomModelTensors(c, {}));
  bytes.resize(bytes.size() - 1);
  EXPECT_THAT(LoadBytes(bytes, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("past the end"))));
}

// --- A test per tensor of a model in which every tensor is required: without
// it, loading fails naming it; with a wrong shape, loading fails naming it and
// both shapes.

std::vector<std::string> AllRequiredNames() {
  std::vector<std::string> names;
  for (const NamedTensor& t :
       testing::RandomModelTensors(AllRequiredConfig(), SeparateEmbeddings())) {
    names.push_back(t.name);
  }
  return names;
}

std::string TestName(const ::testing::TestParamInfo<std::string>& info) {
  return absl::StrReplaceAll(info.param, {{".", "_"}});
}

class ModelWeightsMissingTensorTest
    : public ModelWeightsTest,
      public ::testing::WithParamInterface<std::string> {};

TEST_P(ModelWeightsMissingTensorTest, FailsNamingTheTensor) {
  const ModelConfig c = AllRequiredConfig();
  const Tensors tensors =
      Without(testing::RandomModelTensors(c, SeparateEmbeddings()), GetParam());
  EXPECT_THAT(Load(tensors, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("missing tensor"),
                             HasSubstr("\"" + GetParam() + "\""))));
}

INSTANTIATE_TEST_SUITE_P(ModelWeights, ModelWeightsMissingTensorTest,
                         ::testing::ValuesIn(AllRequiredNames()), TestName);

// Includes the optional lm_head.bias, which is checked when present.
std::vector<std::string> AllNamesWithBias() {
  std::vector<std::string> names = AllRequiredNames();
  names.push_back("lm_head.bias");
  return names;
}

class ModelWeightsWrongShapeTest
    : public ModelWeightsTest,
      public ::testing::WithParamInterface<std::string> {};

TEST_P(ModelWeightsWrongShapeTest, FailsNamingTheTensorAndShapes) {
  const ModelConfig c = AllRequiredConfig();
  RandomModelOptions o = SeparateEmbeddings();
  o.lm_head_bias = true;
  Tensors tensors = testing::RandomModelTensors(c, o);
  const NamedTensor* original = testing::FindTensor(tensors, GetParam());
  ASSERT_NE(original, nullptr);
  const std::vector<int64_t> expected = original->shape;
  std::vector<int64_t> wrong = expected;
  wrong.back() += 1;
  EXPECT_THAT(
      Load(Reshaped(std::move(tensors), GetParam(), wrong), c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(path_), HasSubstr("\"" + GetParam() + "\""),
                     HasSubstr(ShapeString(wrong)),
                     HasSubstr("expected " + ShapeString(expected)))));
}

INSTANTIATE_TEST_SUITE_P(ModelWeights, ModelWeightsWrongShapeTest,
                         ::testing::ValuesIn(AllNamesWithBias()), TestName);

}  // namespace
}  // namespace attnserve::engine
