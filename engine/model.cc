#include "engine/model.h"

#include <exception>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/format/model_dir.h"
#include "engine/network/transformer.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

Model::~Model() = default;

absl::StatusOr<std::unique_ptr<Model>> Model::Load(
    const std::string& dir, const ModelOptions& options) {
  // Reading and packing name the tensor that did not fit (safetensors.cc,
  // linear.cc); this catches what remains (oneDNN's own allocations, small
  // containers), so that a model too large for memory is a startup error
  // rather than an abort.
  try {
    return LoadBody(dir, options);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(dir, ": out of memory loading the model"));
  } catch (const std::exception& e) {  // dnnl::error, which we may not name
    return absl::InternalError(
        absl::StrCat(dir, ": loading the model: ", e.what()));
  }
}

absl::StatusOr<std::unique_ptr<Model>> Model::LoadBody(
    const std::string& dir, const ModelOptions& options) {
  // Before reading anything: a host that cannot run the type says so at once.
  // bfloat16 caches need no special instructions (they widen by a shift).
  const ComputeType kv_cache = options.precision.kv_cache;
  if (kv_cache != ComputeType::kFloat32 && kv_cache != ComputeType::kBFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_cache_dtype must be float32 or bfloat16, got ",
                     ComputeTypeName(kv_cache)));
  }
  if (options.backend == Backend::kDnnl) {
    RETURN_IF_ERROR(HostRunsComputeType(options.precision.compute_type));
  }
  ASSIGN_OR_RETURN(LoadedModelDir loaded,
                   LoadModelDir(dir, ReadLinears::kWhenPacked));
  std::unique_ptr<Model> model(new Model());
  model->name_ = std::move(loaded.name);
  model->config_json_ = std::move(loaded.config_json);
  model->config_ = loaded.config;
  model->generation_ = std::move(loaded.generation);
  model->layout_ = std::move(loaded.layout);
  model->warnings_ = std::move(loaded.warnings);
  model->options_ = options;
  ASSIGN_OR_RETURN(model->context_,
                   OpContext::Create(options.backend, options.threads));
  ASSIGN_OR_RETURN(
      model->network_,
      Transformer::Create(model->config_, std::move(loaded.weights),
                          *model->context_, options.precision));
  return model;
}

size_t Model::weight_bytes() const { return network_->weight_bytes(); }

}  // namespace attnserve::engine
