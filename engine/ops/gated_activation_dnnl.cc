// Gated activation for the oneDNN backend, as a vectorised loop over rows on
// the context's team (oneDNN has no fused act(a) * b; an eltwise then a binary
// primitive would pass over the data twice and need primitives per row
// count). The activations are the linear epilogue's own (activations.h), so
// act(a) here is bit for bit what Linear's fused epilogue gives for the same
// value on our kernels.

// See simd.h: lets GCC vectorise the loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

#include <omp.h>

#include "engine/ops/activations.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {
namespace {

// Below this many outputs a parallel region costs more than it saves (as
// layer_norm_dnnl.cc; gelu's exp makes each element dearer than a norm's).
constexpr int64_t kMinParallelElements = 16 * 1024;

template <LinearActivation kActivation>
ATTNSERVE_ALWAYS_INLINE void GatedRow(const float* a, const float* b,
                                      int64_t cols, float* out) {
#pragma omp simd
  for (int64_t c = 0; c < cols; ++c)
    out[c] = Activate<kActivation>(a[c]) * b[c];
}

// Rows [r0, r1) of in [rows, 2 * cols] into out [rows, cols].
ATTNSERVE_SIMD_CLONES
void GatedRows(LinearActivation activation, const float* in, int64_t r0,
               int64_t r1, int64_t cols, float* out) {
  for (int64_t r = r0; r < r1; ++r) {
    const float* a = in + r * 2 * cols;
    const float* b = a + cols;
    float* o = out + r * cols;
    switch (activation) {
      case LinearActivation::kRelu:
        GatedRow<LinearActivation::kRelu>(a, b, cols, o);
        break;
      case LinearActivation::kGelu:
        GatedRow<LinearActivation::kGelu>(a, b, cols, o);
        break;
      case LinearActivation::kGeluTanh:
        GatedRow<LinearActivation::kGeluTanh>(a, b, cols, o);
        break;
      case LinearActivation::kSwish:
        GatedRow<LinearActivation::kSwish>(a, b, cols, o);
        break;
      case LinearActivation::kNone:  // refused by the front
        GatedRow<LinearActivation::kNone>(a, b, cols, o);
        break;
    }
  }
}

}  // namespace

absl::Status GatedActivationDnnl(const OpContext& ctx,
                                 LinearActivation activation, const float* in,
                                 int64_t rows, int64_t cols, float* out) {
  const bool parallel =
      ctx.threads() > 1 && rows > 1 && rows * cols >= kMinParallelElements;
  // Contiguous runs of rows per thread, so each streams its own part.
#pragma omp parallel num_threads(ctx.threads()) if (parallel)
  {
    const int64_t id = omp_get_thread_num();
    const int64_t team = omp_get_num_threads();
    GatedRows(activation, in, rows * id / team, rows * (id + 1) / team, cols,
              out);
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine::internal
