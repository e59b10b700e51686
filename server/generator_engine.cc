#include "server/generator_engine.h"

#include <utility>

#include "engine/status_macros.h"
#include "server/convert.h"

namespace attnserve::server {

absl::StatusOr<std::unique_ptr<GeneratorEngine>> GeneratorEngine::Load(
    const std::string& model_dir, const engine::ModelOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Model> model,
                   engine::Model::Load(model_dir, options));
  ASSIGN_OR_RETURN(std::unique_ptr<engine::Generator> generator,
                   engine::Generator::Create(model.get()));
  return std::unique_ptr<GeneratorEngine>(
      new GeneratorEngine(std::move(model), std::move(generator)));
}

GeneratorEngine::GeneratorEngine(std::unique_ptr<engine::Model> model,
                                 std::unique_ptr<engine::Generator> generator)
    : model_(std::move(model)), generator_(std::move(generator)) {
  info_.name = model_->name();
  info_.config_json = model_->config_json();
  info_.layout = model_->layout();
  const engine::Precision& precision = model_->options().precision;
  info_.compute_type = engine::ComputeTypeName(precision.compute_type);
  if (precision.embeddings() != precision.compute_type) {
    info_.compute_type += " (float32 embeddings)";
  }
  info_.kv_cache_dtype = engine::ComputeTypeName(precision.kv_cache);
  info_.kv_cache = precision.kv_cache;
  info_.config = model_->config();
  info_.generation = model_->generation();
  info_.warnings = model_->warnings();
  info_.threads = model_->options().threads;
}

int64_t GeneratorEngine::EstimateBytes(
    int source_tokens, const engine::DecodeOptions& options) const {
  return EstimateRequestBytes(info_, source_tokens, options);
}

absl::Status GeneratorEngine::Validate(
    const engine::SequenceInput& input) const {
  return generator_->Validate(input);
}

absl::Status GeneratorEngine::Add(std::vector<engine::SequenceInput> inputs) {
  return generator_->Add(std::move(inputs));
}

absl::StatusOr<std::vector<engine::StepEvent>> GeneratorEngine::Step() {
  return generator_->Step();
}

void GeneratorEngine::Cancel(engine::SequenceId id) { generator_->Cancel(id); }

int GeneratorEngine::active_sequences() const {
  return generator_->active_sequences();
}

}  // namespace attnserve::server
