#include "engine/ops/log_softmax.h"

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {

absl::Status LogSoftmax(const OpContext& ctx, const float* x, int64_t rows,
                        int64_t cols, float* y) {
  if (rows < 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("log softmax: need rows >= 0 and cols > 0, got rows ",
                     rows, ", cols ", cols));
  }
  if (rows == 0) return absl::OkStatus();
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError(
        "log softmax: null input or output buffer");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::LogSoftmaxRef(x, rows, cols, y);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::LogSoftmaxDnnl(ctx, x, rows, cols, y);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
