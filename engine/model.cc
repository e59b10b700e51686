#include "engine/model.h"

#include <utility>

#include "engine/model_dir.h"
#include "engine/status_macros.h"
#include "engine/transformer.h"

namespace attnserve::engine {

Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(
    const std::string& dir, const ModelOptions& options) {
  ASSIGN_OR_RETURN(LoadedModelDir loaded, LoadModelDir(dir));
  std::unique_ptr<Model> model(new Model());
  model->name_ = std::move(loaded.name);
  model->config_json_ = std::move(loaded.config_json);
  model->config_ = loaded.config;
  model->warnings_ = std::move(loaded.warnings);
  model->options_ = options;
  ASSIGN_OR_RETURN(model->context_,
                   OpContext::Create(options.backend, options.threads));
  ASSIGN_OR_RETURN(
      model->network_,
      Transformer::Create(model->config_, std::move(loaded.weights),
                          *model->context_));
  return model;
}

size_t Model::weight_bytes() const { return network_->weight_bytes(); }

}  // namespace attnserve::engine
