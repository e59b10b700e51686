#include "engine/ops/gated_activation.h"

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {

absl::Status GatedActivation(const OpContext& ctx, LinearActivation activation,
                             const float* in, int64_t rows, int64_t cols,
                             float* out) {
  switch (activation) {
    case LinearActivation::kRelu:
    case LinearActivation::kGelu:
    case LinearActivation::kGeluTanh:
    case LinearActivation::kSwish:
      break;
    case LinearActivation::kNone:
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("gated activation: needs an activation, got ",
                       static_cast<int>(activation), " (none is not one)"));
  }
  if (rows < 0 || cols < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "gated activation: need rows >= 0 and cols >= 1, got rows ", rows,
        ", cols ", cols));
  }
  if (rows == 0) return absl::OkStatus();
  if (in == nullptr || out == nullptr) {
    return absl::InvalidArgumentError(
        "gated activation: null input or output buffer");
  }
  // out must not overlap in (the declaration's contract): a body that reads
  // row r + 1 after writing row r would read what it wrote.
  const float* in_end = in + rows * 2 * cols;
  const float* out_end = out + rows * cols;
  if (out < in_end && in < out_end) {
    return absl::InvalidArgumentError(
        "gated activation: output overlaps the input");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::GatedActivationRef(activation, in, rows, cols, out);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::GatedActivationDnnl(ctx, activation, in, rows, cols,
                                           out);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
