#pragma once
// The middle of a gated feed-forward network (T5 v1.1): with the first two
// linears fused into one product whose row r is [a | b] (2 * cols floats),
//   out[r, i] = act(a[r, i]) * b[r, i].

#include <cstdint>

#include "absl/status/status.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine {

// in: [rows, 2 * cols] row-major; out: [rows, cols]; they must not overlap.
// activation must not be kNone. Errors: negative rows, cols < 1, null
// buffers.
absl::Status GatedActivation(const OpContext& ctx, LinearActivation activation,
                             const float* in, int64_t rows, int64_t cols,
                             float* out);

}  // namespace attnserve::engine
