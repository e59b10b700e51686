#pragma once
// Builds model directories (config.json + model.safetensors) for tests,
// following docs/model-format.md. Everything is deterministic: a seed
// fully fixes a random model, so tests can compare outputs across runs and
// backends.
//
// Typical use:
//   ModelConfig config = TinyConfig();
//   TempDir dir("my_test");
//   ASSERT_TRUE(WriteModelDir(dir.path(), ConfigJson(config),
//                             RandomModelTensors(config, {})).ok());
//   auto model = LoadModelDir(dir.path());

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/format/model_config.h"

namespace attnserve::engine::testing {

// One F32 tensor; values are row-major and must hold product(shape) elements.
// With int8_values set instead, an I8 tensor (docs/model-format.md,
// "Quantized tensors").
struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::vector<int8_t> int8_values;
};

// A valid safetensors file holding `tensors` as F32 (I8 for int8_values), in
// the given order, with
// the header padded with spaces to a multiple of 8 bytes (as the format
// recommends).
std::string SafetensorsBytes(const std::vector<NamedTensor>& tensors);

// The low-level form, for tests that need a malformed or non-F32 file: the
// 8-byte little-endian length of `header_json`, then `header_json` as is (no
// padding), then `data`.
std::string SafetensorsRawBytes(absl::string_view header_json,
                                absl::string_view data);

// config.json text for `c`, with every key written explicitly (no defaults
// relied upon).
std::string ConfigJson(const ModelConfig& c);

// d_model 16, 2 heads, 2 encoder + 2 decoder layers, ffn 32, vocab 23,
// max_positions 64; everything else at its default (post-norm, relu, tied,
// shared-style ids 0/1/2).
ModelConfig TinyConfig();

struct RandomModelOptions {
  bool shared_embedding =
      true;  // false: encoder.embed.weight + decoder.embed.weight
  bool final_norms =
      false;  // {encoder,decoder}.final_norm.*; forced for pre-norm
  bool lm_head_bias = false;  // lm_head.bias
  uint32_t seed = 1;
};

// Every tensor `c` needs (lm_head.weight when not tied; the issue-16 tensors
// its keys ask for: A-wide attention, no biases without linear_bias, no norm
// biases with rms_norm, fc1_linear when gated, embed_positions when learned,
// embed_norm, relative_attention_bias), drawn from a
// std::mt19937 seeded with `o.seed`: linear weights U(-1/sqrt(in), 1/sqrt(in))
// as torch initialises them, biases U(-0.1, 0.1), layer-norm gamma U(0.8, 1.2)
// and beta U(-0.1, 0.1), embeddings N(0, d_model^-0.5). Non-trivial biases and
// norms make decoded outputs depend on the source, so a broken network cannot
// pass by accident.
std::vector<NamedTensor> RandomModelTensors(const ModelConfig& c,
                                            const RandomModelOptions& o);

// The tensor named `name` in `tensors`, or nullptr.
const NamedTensor* FindTensor(const std::vector<NamedTensor>& tensors,
                              absl::string_view name);

// Creates `dir` (and missing parents) and writes config.json and
// model.safetensors.
absl::Status WriteModelDir(const std::string& dir,
                           const std::string& config_json,
                           const std::vector<NamedTensor>& tensors);

// A fresh directory "<$TMPDIR or /tmp>/<prefix>XXXXXX" (mkdtemp). Aborts the
// test binary if it cannot be created, since no test can run without it.
std::string MakeTempDir(const std::string& prefix);

// Writes (replaces) a file; a failure is reported as a test failure
// (ADD_FAILURE).
void WriteFile(const std::string& path, const std::string& bytes);

// A MakeTempDir directory that is removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) : path_(MakeTempDir(prefix)) {}
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace attnserve::engine::testing
