#pragma once
// A loaded model: its directory's config, and the network with weights packed
// for one backend. This is what the rest of the product holds; decoding goes
// through Generator.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/generation_config.h"
#include "engine/format/model_config.h"
#include "engine/network/precision.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

class Transformer;

struct ModelOptions {
  Backend backend = Backend::kDnnl;
  int threads = 1;  // intra-op (OpenMP) threads
  // The linears' compute type and whether the token tables and the output
  // projection stay float32 (precision.h). A type the host cannot run on the
  // dnnl backend fails Load with FAILED_PRECONDITION (compute_type.h).
  Precision precision = {};
};

// Immutable after Load. Inference (Generator, GenerateBatch) uses the model's
// single OpContext, so all of it must run on one thread at a time (normally one
// inference thread for the process's lifetime).
class Model {
 public:
  // Loads `dir` as specified in shared/docs/model-format.md; errors name the
  // file and the key or tensor at fault. Out of memory is RESOURCE_EXHAUSTED,
  // naming the tensor and its bytes where one was being read or packed.
  static absl::StatusOr<std::unique_ptr<Model>> Load(
      const std::string& dir, const ModelOptions& options);
  ~Model();

  const std::string& name() const { return name_; }
  const std::string& config_json() const { return config_json_; }
  const ModelConfig& config() const { return config_; }
  // How the model decodes by default (decode_defaults.h turns it into
  // DecodeOptions). For now the ModelConfig's decoder_start_id, {eos_id} and
  // pad_id with GenerationConfig's other defaults (greedy, no rules).
  // How the model decodes by default (generation_config.json with its
  // fallbacks; for a directory without one, config.json's ids).
  const GenerationConfig& generation() const { return generation_; }
  // The checkpoint layout it was read from: "attnserve", "hf-bart", ...
  const std::string& layout() const { return layout_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  const ModelOptions& options() const { return options_; }
  size_t weight_bytes() const;  // bytes held by the packed weights

  const Transformer& network() const { return *network_; }
  const OpContext& context() const { return *context_; }

 private:
  Model() = default;
  static absl::StatusOr<std::unique_ptr<Model>> LoadBody(
      const std::string& dir, const ModelOptions& options);
  std::string name_;
  std::string config_json_;
  ModelConfig config_;
  GenerationConfig generation_;
  std::string layout_;
  std::vector<std::string> warnings_;
  ModelOptions options_;
  std::unique_ptr<OpContext> context_;
  std::unique_ptr<Transformer> network_;
};

}  // namespace attnserve::engine
