// Fuzzes the model loader as the server meets a model directory: config.json,
// model.safetensors and vocab.txt, all written from one input.
//
// Input: config.json, kSeparator, model.safetensors, kSeparator, vocab.txt; a
// file whose part is missing (fewer separators) is absent from the directory.
//
// Beyond "no crash, no sanitizer report" it checks the loader's contract: a
// loaded model holds every tensor its config asks for with the config's shape,
// and an error is a status whose message names the file at fault.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/format/model_config.h"
#include "engine/format/model_dir.h"
#include "engine/format/model_weights.h"
#include "server/tokenizers/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace attnserve::fuzz {
namespace {

using engine::LoadedModelDir;
using engine::ModelConfig;
using engine::Tensor;

constexpr const char* kFiles[] = {"config.json", "model.safetensors",
                                  "vocab.txt"};

void CheckShape(const Tensor& tensor, const std::vector<int64_t>& shape,
                absl::string_view what) {
  FUZZ_CHECK(
      tensor.shape() == shape && tensor.data() != nullptr,
      absl::StrCat(what, " has shape ", engine::ShapeString(tensor.shape()),
                   ", expected ", engine::ShapeString(shape)));
}

// An optional tensor is either absent (empty) or of the expected shape.
void CheckOptionalShape(const Tensor& tensor, const std::vector<int64_t>& shape,
                        absl::string_view what) {
  if (!tensor.empty() || !tensor.shape().empty())
    CheckShape(tensor, shape, what);
}

void CheckLinear(const engine::LinearWeights& w, int64_t out, int64_t in,
                 absl::string_view what) {
  CheckShape(w.weight, {out, in}, absl::StrCat(what, ".weight"));
  CheckShape(w.bias, {out}, absl::StrCat(what, ".bias"));
}

void CheckNorm(const engine::NormWeights& w, int64_t d,
               absl::string_view what) {
  CheckShape(w.gamma, {d}, absl::StrCat(what, ".gamma"));
  CheckShape(w.beta, {d}, absl::StrCat(what, ".beta"));
}

void CheckAttention(const engine::AttentionWeights& w, int64_t d,
                    absl::string_view what) {
  for (const auto* linear : {&w.q, &w.k, &w.v, &w.o})
    CheckLinear(*linear, d, d, what);
}

void CheckFfn(const engine::FfnWeights& w, int64_t d, int64_t ffn,
              absl::string_view what) {
  CheckLinear(w.fc1, ffn, d, absl::StrCat(what, ".fc1"));
  CheckLinear(w.fc2, d, ffn, absl::StrCat(what, ".fc2"));
}

void CheckLoaded(const LoadedModelDir& loaded) {
  const ModelConfig& c = loaded.config;
  const engine::ModelWeights& w = loaded.weights;
  const int64_t d = c.d_model;
  const int64_t vocab = c.vocab_size;
  CheckShape(w.encoder_embed, {vocab, d}, "encoder_embed");
  if (w.shared_embedding) {
    FUZZ_CHECK(w.decoder_embed.empty(), "a shared table has no decoder_embed");
  } else {
    CheckShape(w.decoder_embed, {vocab, d}, "decoder_embed");
  }
  FUZZ_CHECK(static_cast<int>(w.encoder_layers.size()) == c.encoder_layers &&
                 static_cast<int>(w.decoder_layers.size()) == c.decoder_layers,
             "one weight set per layer");
  for (const engine::EncoderLayerWeights& layer : w.encoder_layers) {
    CheckAttention(layer.self_attn, d, "encoder self_attn");
    CheckNorm(layer.self_attn_norm, d, "encoder self_attn_norm");
    CheckFfn(layer.ffn, d, c.ffn_dim, "encoder ffn");
    CheckNorm(layer.ffn_norm, d, "encoder ffn_norm");
  }
  for (const engine::DecoderLayerWeights& layer : w.decoder_layers) {
    CheckAttention(layer.self_attn, d, "decoder self_attn");
    CheckNorm(layer.self_attn_norm, d, "decoder self_attn_norm");
    CheckAttention(layer.cross_attn, d, "decoder cross_attn");
    CheckNorm(layer.cross_attn_norm, d, "decoder cross_attn_norm");
    CheckFfn(layer.ffn, d, c.ffn_dim, "decoder ffn");
    CheckNorm(layer.ffn_norm, d, "decoder ffn_norm");
  }
  if (c.norm_placement == engine::NormPlacement::kPre) {
    CheckNorm(w.encoder_final_norm, d, "encoder final_norm");
    CheckNorm(w.decoder_final_norm, d, "decoder final_norm");
  } else {
    for (const auto* norm : {&w.encoder_final_norm, &w.decoder_final_norm}) {
      CheckOptionalShape(norm->gamma, {d}, "final_norm gamma");
      CheckOptionalShape(norm->beta, {d}, "final_norm beta");
      FUZZ_CHECK(norm->gamma.empty() == norm->beta.empty(),
                 "a final norm is whole or absent");
    }
  }
  if (c.tie_output_embedding) {
    FUZZ_CHECK(w.lm_head_weight.empty(), "a tied model has no lm_head.weight");
  } else {
    CheckShape(w.lm_head_weight, {vocab, d}, "lm_head.weight");
  }
  CheckOptionalShape(w.lm_head_bias, {vocab}, "lm_head.bias");
}

void CheckError(const absl::Status& status) {
  const std::string message(status.message());
  const bool names_file = absl::StrContains(message, "config.json") ||
                          absl::StrContains(message, "model.safetensors");
  FUZZ_CHECK(names_file, absl::StrCat("the error names no file: ", message));
  // Bad bytes are the caller's data at fault (INVALID_ARGUMENT), a file that
  // ends early is DATA_LOSS, a missing file NOT_FOUND, a tensor too large for
  // memory RESOURCE_EXHAUSTED; anything else would be mapped to the wrong
  // answer by the server.
  const absl::StatusCode code = status.code();
  FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument ||
                 code == absl::StatusCode::kDataLoss ||
                 code == absl::StatusCode::kNotFound ||
                 code == absl::StatusCode::kResourceExhausted,
             status.ToString());
}

// The server loads the tokenizer once the model has loaded; its only input
// besides vocab.txt is config.json, so any valid config is enough to reach it.
void FuzzTokenizer(absl::string_view config_json) {
  if (!engine::ParseModelConfig(config_json, nullptr).ok()) return;
  absl::StatusOr<std::unique_ptr<server::Tokenizer>> tokenizer =
      server::LoadTokenizer(ProcessDir());
  if (!tokenizer.ok() || *tokenizer == nullptr) return;
  // Every id a model can produce decodes (unknown and special ones to
  // nothing), alone and as a continued stream piece.
  std::vector<int32_t> ids;
  for (int32_t id = -1; id < 64; ++id) ids.push_back(id);
  (*tokenizer)->Decode(ids);
  (*tokenizer)->Decode(ids, /*continues=*/true);
}

}  // namespace
}  // namespace attnserve::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace attnserve::fuzz;  // NOLINT: the entry point is global
  const std::vector<absl::string_view> parts = SplitInput(data, size, 3);
  for (size_t i = 0; i < 3; ++i) {
    if (i < parts.size()) {
      WriteProcessFile(kFiles[i], parts[i]);
    } else {
      RemoveProcessFile(kFiles[i]);
    }
  }
  absl::StatusOr<attnserve::engine::LoadedModelDir> loaded =
      attnserve::engine::LoadModelDir(ProcessDir());
  if (loaded.ok()) {
    CheckLoaded(*loaded);
  } else {
    CheckError(loaded.status());
  }
  FuzzTokenizer(parts[0]);
  return 0;
}
