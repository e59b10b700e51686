#include "engine/format/model_weights.h"

#include <memory>
#include <string>

#include "engine/format/safetensors.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

absl::StatusOr<ModelWeights> LoadModelWeights(const std::string& path,
                                              const ModelConfig& config) {
  ASSIGN_OR_RETURN(std::unique_ptr<SafetensorsFile> file,
                   SafetensorsFile::Open(path));
  return LoadAttnserveWeights(*file, config);
}

}  // namespace attnserve::engine
