#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// lse[r] = logsumexp(x[r, :]) = log(sum_c exp(x[r, c])) for each of `rows` rows
// of `cols` floats, with the row maximum subtracted first so exp never
// overflows: the normaliser of a log-softmax, x[r, c] - lse[r].
absl::Status LogSumExp(const OpContext& ctx, const float* x, int64_t rows,
                       int64_t cols, float* lse);

}  // namespace attnserve::engine
