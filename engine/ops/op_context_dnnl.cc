// The oneDNN half of OpContext: the parts that need DnnlState's definition.

#include <new>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

const dnnl::engine& CpuEngine() {
  static const dnnl::engine* const engine = [] {
    // oneDNN's process-wide cache keeps primitives alive beyond ours (its
    // default holds 1024): the same bound as our own cache (DnnlState).
    dnnl::set_primitive_cache_capacity(DnnlState::kMaxMatmuls);
    return new dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return *engine;
}

OpContext::OpContext() = default;
OpContext::~OpContext() = default;

absl::Status OpContext::InitDnnl() {
  try {
    auto state = std::make_unique<DnnlState>();
    state->engine = CpuEngine();
    state->stream = dnnl::stream(state->engine);
    dnnl_ = std::move(state);
  } catch (const dnnl::error& e) {
    if (e.status == dnnl_out_of_memory) {
      return absl::ResourceExhaustedError(
          "out of memory creating oneDNN's CPU engine");
    }
    return absl::InternalError(absl::StrCat("oneDNN CPU engine: ", e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "out of memory creating oneDNN's state");
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine
