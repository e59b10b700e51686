#include "engine/format/model_weights.h"

#include <memory>
#include <string>
#include <utility>

#include "engine/format/safetensors.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

absl::Status LinearWeights::Materialize() {
  if (!deferred_weight.read) return absl::OkStatus();
  ASSIGN_OR_RETURN(weight, deferred_weight.read());
  deferred_weight = DeferredTensor();
  return absl::OkStatus();
}

absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& path,
                                              const ModelConfig& config,
                                              ReadLinears read) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(path));
  if (read == ReadLinears::kNow) return LoadAttnserveWeights(*file, config);
  std::shared_ptr<const TensorSource> source = std::move(file);
  return LoadAttnserveWeights(*source, config, source);
}

}  // namespace attnserve::engine
