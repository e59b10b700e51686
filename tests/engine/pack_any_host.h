#pragma once
// Packing a linear in a compute type on any host, for the tests of the oneDNN
// int8 and bfloat16 bodies: the front refuses those types for oneDNN where the
// CPU lacks their instructions (HostRunsComputeType), so the oneDNN body is
// called under it and its portable kernels are tested there too.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "engine/ops/linear.h"
#include "engine/ops/op_bodies.h"
#include "gtest/gtest.h"
#include "tests/engine/op_test_util.h"
#include "tests/engine/status_matchers.h"

namespace attnserve::engine::op_test {

// w [n, k] and bias b [n] (or empty) packed in `type` for ctx's backend;
// null (with a test failure) when packing fails.
inline std::unique_ptr<PackedLinear> PackAnyHost(const OpContext& ctx,
                                                 ComputeType type,
                                                 const std::vector<float>& w,
                                                 const std::vector<float>& b,
                                                 int64_t n, int64_t k) {
  absl::StatusOr<std::unique_ptr<PackedLinear>> packed;
  if (ctx.backend() == Backend::kReference) {
    packed = PackLinear(ctx, MakeTensor({n, k}, w),
                        b.empty() ? Tensor() : MakeTensor({n}, b), type);
  } else {
    internal::PlainLinear plain;
    plain.type = type;
    plain.n = n;
    plain.k = k;
    plain.owned_weight = MakeTensor({n, k}, w);
    plain.weight = plain.owned_weight.data();
    if (!b.empty()) {
      plain.owned_bias = MakeTensor({n}, b);
      plain.bias = plain.owned_bias.data();
    }
    packed = internal::PackLinearDnnl(ctx, std::move(plain));
  }
  EXPECT_THAT(packed, IsOk());
  if (!packed.ok()) return nullptr;
  EXPECT_EQ((*packed)->compute_type(), type);
  return *std::move(packed);
}

}  // namespace attnserve::engine::op_test
