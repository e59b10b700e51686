#pragma once
// The pieces of the oneDNN backend's int8 linear (linear_dnnl_int8.cc, kernels
// in linear_panels_int8.cc), exposed for its tests and benchmark. Internal to
// engine/ops; does not include dnnl.hpp.
//
// Weights: q [N, K] and scales [N] from QuantizeRowsInt8 (quantize.h, the
// reference's weights exactly), on int8 panels, plus compensation [N] = 128 *
// sum_i q[j][i]. Inputs: each row quantized as QuantizeRowInt8 does and
// shifted to u8 = q + 128 (vpdpbusd and oneDNN's fast int8 matmul multiply u8
// by s8), so sum_i u_i w_i - compensation[j] = sum_i q_i w_i, exactly.
// Output: y = act(float(sum) * (x_scale * w_scale[j]) + b[j]) (+ y), one
// function (Int8Epilogue) for every path, so that a row's result is the same
// bits whichever path and batch it ran in.

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "engine/ops/linear.h"
#include "engine/ops/op_context.h"

namespace attnserve::engine::internal {

// Int8 panels: oneDNN's BA16a64b4a layout of the matmul's K x N s8 weights,
// blocks of 64 depths (16 x 4: "16a...4a") x 64 outputs. As the float32
// panels (op_bodies.h), [N, K] is cut into panels of kPanelCols outputs,
// here Int8PanelDepth(k) deep and zero-padded; within a panel, depth i of
// output j is byte (i / 4) * 256 + j * 4 + i % 4: each group of 4 depths is
// one 256-byte row holding 4 consecutive weights of each of the 64 outputs,
// what one vpdpbusd multiplies with 4 input bytes.
inline constexpr int64_t kInt8PanelDepthAlign = 64;
int64_t Int8PanelDepth(int64_t k);  // k rounded up to kInt8PanelDepthAlign
int64_t Int8PanelBytes(int64_t n, int64_t k);
void PackInt8Panels(const int8_t* q, int64_t n, int64_t k, int8_t* panels);
// out[i] = q[row][begin + i] for i in [0, count), of panels of depth k.
void Int8PanelRow(const int8_t* panels, int64_t k, int64_t row, int64_t begin,
                  int64_t count, int8_t* out);

// The most depth the int32 sums hold: |u * w| <= 255 * 127, so k of 65536
// sums stay below 2^31.
inline constexpr int64_t kMaxInt8Depth = 65536;

// The row stride of the kernels' quantized inputs: k rounded up to a group of
// 4 depths.
int64_t Int8RowStride(int64_t k);

// u[r * stride + i] = q[r][i] + 128 and scales[r], where q[r] and scales[r]
// are QuantizeRowInt8's of row r of x [m, k]; u[r * stride + i] = 128 (q = 0)
// for i in [k, stride). stride >= k.
void QuantizeRowsU8(const float* x, int64_t m, int64_t k, int64_t stride,
                    uint8_t* u, float* scales);

// A packed int8 linear as the kernels read it.
struct Int8Weights {
  int64_t n = 0;
  int64_t k = 0;
  const int8_t* panels = nullptr;         // Int8PanelBytes(n, k)
  const int32_t* compensation = nullptr;  // [n]
  const float* scales = nullptr;          // [n]
  const float* bias = nullptr;            // [n] or nullptr
};

// y[c] (+)= act(float(sums[c] - compensation[c]) * (x_scale * w_scales[c]) +
// bias[c]) for c in [0, count), where sums are of u8 inputs; bias may be null.
// Not inlined: every path calls this one compiled copy, so their results agree
// to the bit.
void Int8Epilogue(const int32_t* sums, int64_t count,
                  const int32_t* compensation, float x_scale,
                  const float* w_scales, const float* bias,
                  LinearEpilogue epilogue, float* y);

// y = act(x W^T + b) [+ y] for m >= 1 rows already quantized by
// QuantizeRowsU8 (u [m, Int8RowStride(k)], scales [m]), on up to `threads`
// threads: a register-tiled VNNI kernel (or the portable one).
void LinearInt8Panels(int threads, const uint8_t* u, const float* x_scales,
                      int64_t m, const Int8Weights& w, LinearEpilogue epilogue,
                      float* y);

// The epilogue of oneDNN's sums [m, n] (u8 inputs), on up to `threads`
// threads.
void Int8EpilogueRows(int threads, const int32_t* sums, const float* x_scales,
                      int64_t m, const Int8Weights& w, LinearEpilogue epilogue,
                      float* y);

// The quantizer and kernel code that runs: AVX-512 VNNI intrinsics where the
// CPU has them, plain C++ loops elsewhere (correct, not fast: a server refuses
// int8 on such hosts, see HostRunsComputeType, but the engine's tests run
// anywhere). Tests force either (nullopt: the host's choice again).
enum class Int8Kernel { kPortable, kVnni };
Int8Kernel Int8KernelInUse();
void ForceInt8KernelForTesting(std::optional<Int8Kernel> kernel);

// Where LinearDnnlInt8 hands over from LinearDnnlInt8Kernel to
// LinearDnnlInt8Matmul.
inline constexpr int64_t kMaxInt8KernelRows = 64;

// The two paths of LinearDnnlInt8 for `w` packed by PackLinearDnnlInt8, each
// for any m >= 1: quantize x, then the kernel of LinearInt8Panels, or oneDNN's
// u8 x s8 matmul on the same panels (exact-M primitives, at most 256 rows a
// call) and Int8EpilogueRows.
absl::Status LinearDnnlInt8Kernel(const OpContext& ctx, const PackedLinear& w,
                                  const float* x, int64_t m, float* y,
                                  LinearEpilogue epilogue);
absl::Status LinearDnnlInt8Matmul(const OpContext& ctx, const PackedLinear& w,
                                  const float* x, int64_t m, float* y,
                                  LinearEpilogue epilogue);

}  // namespace attnserve::engine::internal
