#pragma once
// BatchEngine over the real engine: owns the loaded engine::Model and its
// engine::Generator.

#include <memory>
#include <string>

#include "engine/decode/generator.h"
#include "engine/model.h"
#include "server/batch_engine.h"

namespace attnserve::server {

class GeneratorEngine final : public BatchEngine {
 public:
  // Loads the model directory (docs/model-format.md). Call from any
  // thread; afterwards one thread at a time uses the engine (see BatchEngine).
  static absl::StatusOr<std::unique_ptr<GeneratorEngine>> Load(
      const std::string& model_dir, const engine::ModelOptions& options);

  const ModelInfo& model_info() const override { return info_; }
  int64_t EstimateBytes(int source_tokens,
                        const engine::DecodeOptions& options) const override;
  absl::Status Validate(const engine::SequenceInput& input) const override;
  absl::Status Add(std::vector<engine::SequenceInput> inputs) override;
  absl::StatusOr<std::vector<engine::StepEvent>> Step() override;
  void Cancel(engine::SequenceId id) override;
  int active_sequences() const override;

 private:
  GeneratorEngine(std::unique_ptr<engine::Model> model,
                  std::unique_ptr<engine::Generator> generator);

  // Declared first: the generator refers to the model and must be destroyed
  // before it.
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::Generator> generator_;
  ModelInfo info_;
};

}  // namespace attnserve::server
