#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// y[r, :] = x[r, :] - logsumexp(x[r, :]) for each of `rows` rows of `cols`
// floats. y may equal x (in place).
absl::Status LogSoftmax(const OpContext& ctx, const float* x, int64_t rows,
                        int64_t cols, float* y);

// lse[r] = logsumexp(x[r, :]) = log(sum_c exp(x[r, c])), computed as LogSoftmax
// does (the row maximum subtracted first), so that x[r, c] - lse[r] is
// LogSoftmax's y[r, c].
absl::Status LogSumExp(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, float* lse);

}  // namespace attnserve::engine
