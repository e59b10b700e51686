// Fuzzes the model loader as the server meets a model directory: config.json,
// model.safetensors, vocab.txt and generation_config.json, all written from
// one input. config.json picks the layout: attnserve's ("architecture") or a
// Hugging Face one ("model_type"; the seeds hold tiny BART-family and T5
// checkpoints).
//
// Input: config.json, kSeparator, model.safetensors, kSeparator, vocab.txt,
// kSeparator, generation_config.json; a file whose part is missing (fewer
// separators) is absent from the directory.
//
// Beyond "no crash, no sanitizer report" it checks the loader's contract: a
// loaded model holds every tensor its config asks for with the config's shape,
// and an error is a status whose message names the file at fault.

#include <cmath>
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
                                  "vocab.txt", "generation_config.json"};
constexpr size_t kParts = 4;

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

void CheckAbsent(const Tensor& tensor, absl::string_view what) {
  FUZZ_CHECK(tensor.empty(), absl::StrCat(what, " must be absent"));
}

// The config the weights are checked against (set by CheckLoaded).
const ModelConfig* config = nullptr;

void CheckLinear(const engine::LinearWeights& w, int64_t out, int64_t in,
                 absl::string_view what) {
  CheckShape(w.weight, {out, in}, absl::StrCat(what, ".weight"));
  if (config->linear_bias) {
    CheckShape(w.bias, {out}, absl::StrCat(what, ".bias"));
  } else {
    CheckAbsent(w.bias, absl::StrCat(what, ".bias"));
  }
}

void CheckNorm(const engine::NormWeights& w, int64_t d,
               absl::string_view what) {
  CheckShape(w.gamma, {d}, absl::StrCat(what, ".gamma"));
  if (config->norm_kind == engine::NormKind::kLayerNorm) {
    CheckShape(w.beta, {d}, absl::StrCat(what, ".beta"));
  } else {
    CheckAbsent(w.beta, absl::StrCat(what, ".beta"));
  }
}

void CheckAttention(const engine::AttentionWeights& w, int64_t d,
                    absl::string_view what) {
  const int64_t a = config->attention_dim();
  for (const auto* linear : {&w.q, &w.k, &w.v})
    CheckLinear(*linear, a, d, what);
  CheckLinear(w.o, d, a, what);
}

void CheckFfn(const engine::FfnWeights& w, int64_t d, int64_t ffn,
              absl::string_view what) {
  CheckLinear(w.fc1, ffn, d, absl::StrCat(what, ".fc1"));
  if (config->gated_ffn) {
    CheckLinear(w.fc1_linear, ffn, d, absl::StrCat(what, ".fc1_linear"));
  } else {
    CheckAbsent(w.fc1_linear.weight, absl::StrCat(what, ".fc1_linear"));
  }
  CheckLinear(w.fc2, d, ffn, absl::StrCat(what, ".fc2"));
}

// Decoding settings are in range and the engine's ids agree with them.
void CheckGeneration(const LoadedModelDir& loaded) {
  const ModelConfig& c = loaded.config;
  const engine::GenerationConfig& g = loaded.generation;
  auto in_vocab = [&](int32_t id) { return id >= 0 && id < c.vocab_size; };
  FUZZ_CHECK(!g.eos_ids.empty() && g.eos_ids[0] == c.eos_id,
             "eos_ids[0] is the config's eos_id");
  FUZZ_CHECK(g.decoder_start_id == c.decoder_start_id && g.pad_id == c.pad_id,
             "decoder_start_id and pad_id agree");
  for (int32_t id : g.eos_ids) FUZZ_CHECK(in_vocab(id), "eos id in vocab");
  for (int32_t id : g.forced_eos_ids) {
    FUZZ_CHECK(in_vocab(id), "forced eos id in vocab");
  }
  FUZZ_CHECK(g.forced_bos_id == -1 || in_vocab(g.forced_bos_id),
             "forced bos id in vocab or none");
  for (const std::vector<int32_t>& word : g.bad_words_ids) {
    FUZZ_CHECK(!word.empty(), "a bad word has a token");
    for (int32_t id : word) FUZZ_CHECK(in_vocab(id), "bad word id in vocab");
  }
  FUZZ_CHECK(g.num_beams >= 1 && g.max_length >= 0 && g.min_length >= 0 &&
                 g.no_repeat_ngram_size >= 0 && std::isfinite(g.length_penalty),
             "generation settings in range");
}

void CheckStackExtras(const Tensor& positions, const engine::NormWeights& norm,
                      const Tensor& relative, absl::string_view stack) {
  const ModelConfig& c = *config;
  if (c.positional_encoding == engine::PositionalEncoding::kLearned) {
    CheckShape(positions, {c.max_positions, c.d_model},
               absl::StrCat(stack, " positions"));
  } else {
    CheckAbsent(positions, absl::StrCat(stack, " positions"));
  }
  if (c.embedding_norm) {
    CheckNorm(norm, c.d_model, absl::StrCat(stack, " embed_norm"));
  } else {
    CheckAbsent(norm.gamma, absl::StrCat(stack, " embed_norm"));
  }
  if (c.relative_attention_num_buckets > 0) {
    CheckShape(relative, {c.relative_attention_num_buckets, c.num_heads},
               absl::StrCat(stack, " relative_attention_bias"));
  } else {
    CheckAbsent(relative, absl::StrCat(stack, " relative_attention_bias"));
  }
}

const Tensor& PositionsOf(const LoadedModelDir& loaded, bool encoder) {
  return encoder ? loaded.weights.encoder_positions
                 : loaded.weights.decoder_positions;
}

void CheckLoaded(const LoadedModelDir& loaded) {
  const ModelConfig& c = loaded.config;
  config = &c;
  FUZZ_CHECK(
      loaded.layout == "attnserve" || absl::StartsWith(loaded.layout, "hf-"),
      absl::StrCat("unknown layout ", loaded.layout));
  CheckGeneration(loaded);
  CheckStackExtras(PositionsOf(loaded, true), loaded.weights.encoder_embed_norm,
                   loaded.weights.encoder_relative_bias, "encoder");
  CheckStackExtras(PositionsOf(loaded, false),
                   loaded.weights.decoder_embed_norm,
                   loaded.weights.decoder_relative_bias, "decoder");
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
      if (norm->gamma.empty()) {
        CheckAbsent(norm->beta, "a final norm's bias without its weight");
      } else {
        CheckNorm(*norm, d, "final_norm");
      }
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
                          absl::StrContains(message, "model.safetensors") ||
                          absl::StrContains(message, "generation_config.json");
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
  const std::vector<absl::string_view> parts = SplitInput(data, size, kParts);
  for (size_t i = 0; i < kParts; ++i) {
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
