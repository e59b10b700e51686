#include "engine/ops/log_sum_exp.h"

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {

absl::Status LogSumExp(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, float* lse) {
  if (rows < 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("log-sum-exp: need rows >= 0 and cols > 0, got rows ",
                     rows, ", cols ", cols));
  }
  if (rows == 0) return absl::OkStatus();
  if (x == nullptr || lse == nullptr) {
    return absl::InvalidArgumentError(
        "log-sum-exp: null input or output buffer");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::LogSumExpRef(x, rows, cols, lse);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::LogSumExpDnnl(ctx, x, rows, cols, lse);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
