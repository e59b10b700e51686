#pragma once
// The oneDNN backend's bfloat16 linear, the parts its tests and benchmark see:
// bf16 weights on panels and the decode-step kernel on them
// (linear_bf16_panels.cc), and which route a call takes
// (linear_dnnl_bf16.cc). Internal to engine/ops; does not include dnnl.hpp.
//
// bf16 panels are the float32 body's panels (op_bodies.h) with the depth taken
// in pairs and padded further: W[p * 64 + j][i] sits at
//   p * Bf16PanelDepth(k) * 64 + (i / 2) * 128 + j * 2 + i % 2
// (uint16_t elements), zero-padded to whole panels of 64 outputs and to a
// depth that is a multiple of 32. That is oneDNN's BA16a64b2a layout of the
// matmul's K x N bf16 weights (its blocks are 32 K, "16a" of pairs "2a", by
// 64 N), which its brgemm (brg:avx512_core_bf16) runs on, and what vdpbf16ps
// wants: one 64-byte load holds 16 outputs' pairs (W[j][i], W[j][i + 1]).

#include <cstdint>
#include <optional>

#include "engine/ops/linear.h"

namespace attnserve::engine::internal {

// k rounded up to a multiple of 32, the depth of a bf16 panel.
int64_t Bf16PanelDepth(int64_t k);
// uint16_t elements of the bf16 panels of [n, k].
int64_t Bf16PanelElements(int64_t n, int64_t k);
// panels[...] = FloatToBFloat16(w[j * k + i]) in the layout above; w [n, k].
void PackBf16Panels(const float* w, int64_t n, int64_t k, uint16_t* panels);
// out[i] = the bf16 value of W[row][i], widened, for i in [0, k).
void Bf16PanelRow(const uint16_t* panels, int64_t k, int64_t row, float* out);

// The row stride (in bf16 elements) of the kernel's input rows: k rounded up
// to whole pairs.
inline int64_t Bf16KernelStride(int64_t k) { return (k + 1) / 2 * 2; }

// out[r * stride + i] = FloatToBFloat16(x[r * k + i]) for i < k, and 0 for
// k <= i < stride (bit for bit FloatToBFloat16: subnormals are kept, not
// flushed as vcvtneps2bf16 would); x [rows, k], stride >= k.
void RoundRowsToBf16(const float* x, int64_t rows, int64_t k, int64_t stride,
                     uint16_t* out);

// y = act(x W^T + b) [+ y] for bf16 rows x [m, Bf16KernelStride(k)] (as
// RoundRowsToBf16 writes them), any m >= 1, bf16 panels of [n, k], bias [n] or
// nullptr, on up to `threads` threads. Sums in float32; a row's result does
// not depend on the other rows (nor on m).
void LinearBf16Panels(int threads, const uint16_t* x, int64_t m,
                      const uint16_t* panels, const float* bias, int64_t n,
                      int64_t k, LinearEpilogue epilogue, float* y);

// Which of LinearBf16Panels's two kernels runs: vdpbf16ps where the CPU has
// AVX-512 BF16, else the portable one (bf16 widened to float by a shift, float
// multiply-adds, on the same layout). Tests may force the portable one on any
// host (nullopt: the host's choice again); the other cannot be forced, as it
// faults without the instructions.
enum class Bf16Kernel { kDpbf16, kPortable };
Bf16Kernel Bf16KernelInUse();
void ForceBf16PortableKernelForTesting(bool portable);

// Which route LinearDnnlBf16 takes: the kernel up to 64 rows and oneDNN's
// matmul beyond (oneDNN's only where the CPU has AVX-512 BF16; elsewhere the
// kernel takes every row count). Tests and the benchmark may force either
// for any row count (nullopt: the default again).
enum class Bf16Route { kKernel, kMatmul };
void ForceBf16RouteForTesting(std::optional<Bf16Route> route);

}  // namespace attnserve::engine::internal
