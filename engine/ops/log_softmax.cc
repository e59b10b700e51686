#include "engine/ops/log_softmax.h"

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {

namespace {

absl::Status CheckRows(const char* op, const float* x, int64_t rows,
                       int64_t cols, const float* out) {
  if (rows < 0 || cols <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": need rows >= 0 and cols > 0, got rows ", rows, ", cols ", cols));
  }
  if (rows > 0 && (x == nullptr || out == nullptr)) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, ": null input or output buffer"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LogSoftmax(const OpContext& ctx, const float* x, int64_t rows,
                        int64_t cols, float* y) {
  if (absl::Status s = CheckRows("log softmax", x, rows, cols, y); !s.ok())
    return s;
  if (rows == 0) return absl::OkStatus();
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::LogSoftmaxRef(x, rows, cols, y);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::LogSoftmaxDnnl(ctx, x, rows, cols, y);
  }
  return absl::InternalError("unknown backend");
}

absl::Status LogSumExp(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, float* lse) {
  if (absl::Status s = CheckRows("log-sum-exp", x, rows, cols, lse); !s.ok())
    return s;
  if (rows == 0) return absl::OkStatus();
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
