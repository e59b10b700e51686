#include "engine/ops/op_context.h"

#include <omp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"

namespace attnserve::engine {
namespace {

// More threads than any machine we target have cores; a larger value is a typo.
constexpr int kMaxThreads = 256;

}  // namespace

absl::StatusOr<Backend> ParseBackend(absl::string_view name) {
  if (name == "ref") return Backend::kReference;
  if (name == "dnnl") return Backend::kDnnl;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown backend \"", name, "\" (expected \"ref\" or \"dnnl\")"));
}

const char* BackendName(Backend backend) {
  switch (backend) {
    case Backend::kReference:
      return "ref";
    case Backend::kDnnl:
      return "dnnl";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<OpContext>> OpContext::Create(Backend backend,
                                                             int threads) {
  if (threads < 1 || threads > kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threads must be in [1, ", kMaxThreads, "], got ", threads));
  }
  std::unique_ptr<OpContext> ctx(new OpContext());
  ctx->backend_ = backend;
  ctx->threads_ = threads;
  if (backend == Backend::kDnnl) {
    RETURN_IF_ERROR(ctx->InitDnnl());
  }
  return ctx;
}

void OpContext::Enter() const { omp_set_num_threads(threads_); }

}  // namespace attnserve::engine
