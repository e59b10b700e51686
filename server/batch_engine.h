#pragma once
// The scheduler's view of the engine: engine::Generator's step interface (Add /
// Step / Cancel) plus what the server needs to know about the loaded model.
// GeneratorEngine is the real one; tests drive the batcher with a deterministic
// fake.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/decode/generator.h"
#include "engine/format/generation_config.h"
#include "engine/format/model_config.h"
#include "engine/ops/compute_type.h"

namespace attnserve::server {

struct ModelInfo {
  std::string name;         // the model directory's base name
  std::string config_json;  // config.json as loaded
  // The checkpoint layout the directory was read in (engine::Model::layout()):
  // "attnserve", or a Hugging Face one ("hf-marian", "hf-t5", ...).
  std::string layout;
  // The linears' number format (engine::ComputeTypeName): "float32", "int8",
  // "bfloat16"; with " (float32 embeddings)" when the token tables and the
  // output projection were kept in float32.
  std::string compute_type = "float32";
  // The KV caches' element type (--kv_cache_dtype): "float32" or "bfloat16".
  std::string kv_cache_dtype = "float32";
  engine::ComputeType kv_cache = engine::ComputeType::kFloat32;  // the same
  engine::ModelConfig config;
  // The model's decoding defaults (engine::Model::generation()): what
  // requests that leave a setting unset decode with.
  engine::GenerationConfig generation;
  // Intra-op threads the engine runs with: its scratch grows with them, so the
  // memory estimate (engine::SequenceMemoryBytes) takes them.
  int threads = 1;
  std::vector<std::string> warnings;  // from loading (unknown config keys, ...)
};

// Not thread-safe, like engine::Generator: one thread (the batcher's inference
// thread) makes every call, except model_info() and EstimateBytes(), which
// depend only on the immutable model and may be called from any thread.
class BatchEngine {
 public:
  virtual ~BatchEngine() = default;

  virtual const ModelInfo& model_info() const = 0;

  // The most bytes of engine memory a request of `source_tokens` tokens decoded
  // with `options` can hold while it runs (engine::SequenceMemoryBytes): what
  // the batcher's memory budget counts.
  virtual int64_t EstimateBytes(int source_tokens,
                                const engine::DecodeOptions& options) const = 0;

  // Checks one input without touching the active set
  // (engine::Generator::Validate).
  virtual absl::Status Validate(const engine::SequenceInput& input) const = 0;
  // Encodes the inputs together and adds them to the active set; on error
  // nothing is added. RESOURCE_EXHAUSTED: the group did not fit in memory (a
  // smaller group may).
  virtual absl::Status Add(std::vector<engine::SequenceInput> inputs) = 0;
  // Advances every active sequence by one token; finished ones leave the set,
  // and so do ones that failed alone (StepEvent::status). An error: the step
  // failed as a whole, with no sequence to blame.
  virtual absl::StatusOr<std::vector<engine::StepEvent>> Step() = 0;
  // Drops a sequence from the active set; unknown ids are ignored.
  virtual void Cancel(engine::SequenceId id) = 0;
  virtual int active_sequences() const = 0;
};

}  // namespace attnserve::server
