#include "engine/ops/layer_norm.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {
namespace {

// The checks both norms share; `name` starts every message.
absl::Status CheckNormArgs(const char* name, int64_t rows, int64_t cols,
                           float eps) {
  if (rows < 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": need rows >= 0 and cols > 0, got rows ", rows,
                     ", cols ", cols));
  }
  if (!(eps >= 0.0f) || std::isinf(eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": eps must be finite and >= 0, got ", eps));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LayerNorm(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, const float* gamma, const float* beta,
                       float eps, float* y) {
  if (absl::Status s = CheckNormArgs("layer norm", rows, cols, eps); !s.ok()) {
    return s;
  }
  if (rows == 0) return absl::OkStatus();
  if (x == nullptr || y == nullptr || gamma == nullptr || beta == nullptr) {
    return absl::InvalidArgumentError(
        "layer norm: null input, output, gamma or beta buffer");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::LayerNormRef(x, rows, cols, gamma, beta, eps, y);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::LayerNormDnnl(ctx, x, rows, cols, gamma, beta, eps, y);
  }
  return absl::InternalError("unknown backend");
}

absl::Status RmsNorm(const OpContext& ctx, const float* x, int64_t rows,
                     int64_t cols, const float* gamma, float eps, float* y) {
  if (absl::Status s = CheckNormArgs("rms norm", rows, cols, eps); !s.ok()) {
    return s;
  }
  if (rows == 0) return absl::OkStatus();
  if (x == nullptr || y == nullptr || gamma == nullptr) {
    return absl::InvalidArgumentError(
        "rms norm: null input, output or gamma buffer");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::RmsNormRef(x, rows, cols, gamma, eps, y);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::RmsNormDnnl(ctx, x, rows, cols, gamma, eps, y);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
