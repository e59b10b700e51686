// The oneDNN backend's bf16 linear: not yet written (see op_bodies.h).

#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnlBf16(
    const OpContext& ctx, PlainLinear plain) {
  (void)ctx;
  (void)plain;
  return absl::UnimplementedError(
      "the dnnl backend has no bf16 linear yet; use the ref backend");
}

absl::Status LinearDnnlBf16(const OpContext& ctx, const PackedLinear& w,
                            const float* x, int64_t m, float* y,
                            LinearEpilogue epilogue) {
  (void)ctx, (void)w, (void)x, (void)m, (void)y, (void)epilogue;
  return absl::UnimplementedError("the dnnl backend has no bf16 linear yet");
}

}  // namespace attnserve::engine::internal
