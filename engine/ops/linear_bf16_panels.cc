// Linear on bf16 weight panels (linear_dnnl_bf16.h), the bfloat16 body's own
// kernel for decode steps: linear_panels.cc's design with the depth taken in
// pairs.
//
// A tile is up to kMaxTileRows input rows x one panel (64 outputs), in
// kMaxTileRows x 4 float accumulators (24 of the 32 AVX-512 registers). Each
// pair of the depth loads four 64-byte weight vectors (32 bf16 each: 16
// outputs x the pair) and, per row, broadcasts the row's 32-bit pair of bf16
// inputs; vdpbf16ps adds both products to each output's float accumulator.
// Half the bytes of the float32 panels per multiply-add, and one instruction
// per two.
//
// vdpbf16ps (Intel SDM) computes acc += a[2j+1] * b[2j+1], then
// acc += a[2j] * b[2j], each a float32 multiply-add rounded to nearest even,
// with bf16 denormal inputs taken as zero and denormal results flushed to zero
// (MXCSR is neither read nor written). A product of two bf16 values is exact
// in float32 (8-bit by 8-bit significands), so the portable kernel, which
// widens each bf16 to float (a 16-bit shift) and multiply-adds in float in the
// same order, differs from it only where those denormals arise.

// See simd.h: lets GCC vectorise the epilogue loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

#include <immintrin.h>

#include <atomic>
#include <cstring>

#include "engine/format/half_float.h"
#include "engine/ops/linear_dnnl_bf16.h"
#include "engine/ops/linear_kernels.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {
namespace {

// vdpbf16ps and the AVX-512 it extends; only functions marked so use them, and
// only called where the CPU has them (Bf16KernelInUse).
#define ATTNSERVE_BF16_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

constexpr int kVectorsPerPanel = kPanelCols / 16;
constexpr int kMaxTileRows = 6;
// bf16 elements per pair of the depth in a panel: 64 outputs x 2.
constexpr int64_t kPairElements = 2 * kPanelCols;
// oneDNN's BA16a64b2a blocks the depth by 16 pairs.
constexpr int64_t kBf16DepthAlign = 32;

// 16 lanes of 32 bits: 16 outputs' pairs of bf16 weights, or their float
// accumulators.
using U32x16 = uint32_t __attribute__((vector_size(64)));
using U16x16 = uint16_t __attribute__((vector_size(32)));

// Tile<kRows>: t[r * kPanelCols + j] = x_r . w_j over `pairs` pairs of the
// depth, for kRows bf16 input rows (`stride` elements apart) and the 64
// outputs of `panel`, by either kernel.
//
// vdpbf16ps. Not inlined (it cannot be: its callers are not compiled for
// AVX-512 BF16); one call per tile costs nothing beside its depth loop.
struct Dpbf16Tiles {
  template <int kRows>
  ATTNSERVE_BF16_TARGET static void Tile(const uint16_t* x, int64_t stride,
                                         int64_t pairs, const uint16_t* panel,
                                         float* t) {
    __m512 acc[kRows][kVectorsPerPanel];
    for (int r = 0; r < kRows; ++r) {
      for (int v = 0; v < kVectorsPerPanel; ++v)
        acc[r][v] = _mm512_setzero_ps();
    }
    for (int64_t i = 0; i < pairs; ++i) {
      const uint16_t* w = panel + i * kPairElements;
      __m512bh wv[kVectorsPerPanel];
      for (int v = 0; v < kVectorsPerPanel; ++v) {
        wv[v] = reinterpret_cast<__m512bh>(_mm512_load_si512(w + 32 * v));
      }
      for (int r = 0; r < kRows; ++r) {
        int32_t pair;
        std::memcpy(&pair, x + r * stride + 2 * i, sizeof(pair));
        const __m512bh xv = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
        for (int v = 0; v < kVectorsPerPanel; ++v) {
          acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv, wv[v]);
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int v = 0; v < kVectorsPerPanel; ++v) {
        _mm512_storeu_ps(t + r * kPanelCols + 16 * v, acc[r][v]);
      }
    }
  }
};

// The floats of the low and high bf16 of each 32-bit lane.
ATTNSERVE_ALWAYS_INLINE V16 LowHalves(U32x16 pairs) {
  return reinterpret_cast<V16>(pairs << 16);
}
ATTNSERVE_ALWAYS_INLINE V16 HighHalves(U32x16 pairs) {
  return reinterpret_cast<V16>(pairs & 0xffff0000u);
}

// Dpbf16Tiles's result in portable code: the same products, added in the same
// order (the high element of each pair first).
struct PortableTiles {
  template <int kRows>
  ATTNSERVE_ALWAYS_INLINE static void Tile(const uint16_t* x, int64_t stride,
                                           int64_t pairs, const uint16_t* panel,
                                           float* t) {
    V16 acc[kRows][kVectorsPerPanel] = {};
    for (int64_t i = 0; i < pairs; ++i) {
      const uint16_t* w = panel + i * kPairElements;
      V16 low[kVectorsPerPanel], high[kVectorsPerPanel];
      for (int v = 0; v < kVectorsPerPanel; ++v) {
        U32x16 wv;
        std::memcpy(&wv, w + 32 * v, sizeof(wv));
        low[v] = LowHalves(wv);
        high[v] = HighHalves(wv);
      }
      for (int r = 0; r < kRows; ++r) {
        uint32_t pair;
        std::memcpy(&pair, x + r * stride + 2 * i, sizeof(pair));
        const float x_low = BFloat16ToFloat(static_cast<uint16_t>(pair));
        const float x_high = BFloat16ToFloat(static_cast<uint16_t>(pair >> 16));
        for (int v = 0; v < kVectorsPerPanel; ++v) {
          acc[r][v] += x_high * high[v];
          acc[r][v] += x_low * low[v];
        }
      }
    }
    for (int r = 0; r < kRows; ++r) {
      for (int v = 0; v < kVectorsPerPanel; ++v) {
        Store16(t + r * kPanelCols + 16 * v, acc[r][v]);
      }
    }
  }
};

// One call's arguments (see LinearBf16Panels).
struct PanelArgs {
  const uint16_t* x;  // [m, Bf16KernelStride(k)]
  int64_t m;
  const uint16_t* panels;
  const float* bias;  // [n] or nullptr
  int64_t n;
  int64_t k;
  LinearEpilogue epilogue;
  float* y;  // [m, n]
  int tile_rows;
};

// Panels [p0, p1) of all rows, tiles of up to a.tile_rows rows.
template <typename Tiles>
ATTNSERVE_ALWAYS_INLINE void PanelRange(const PanelArgs& a, int64_t p0,
                                        int64_t p1) {
  const int64_t panel_elements = Bf16PanelDepth(a.k) * kPanelCols;
  const int64_t stride = Bf16KernelStride(a.k);
  const int64_t pairs = stride / 2;
  float t[kMaxTileRows * kPanelCols];
  for (int64_t p = p0; p < p1; ++p) {
    const uint16_t* panel = a.panels + p * panel_elements;
    const int64_t c0 = p * kPanelCols;
    const int64_t count = a.n - c0 < kPanelCols ? a.n - c0 : kPanelCols;
    const float* b = a.bias != nullptr ? a.bias + c0 : nullptr;
    for (int64_t r0 = 0; r0 < a.m; r0 += a.tile_rows) {
      const int64_t rows = a.m - r0 < a.tile_rows ? a.m - r0 : a.tile_rows;
      const uint16_t* xr = a.x + r0 * stride;
      switch (rows) {
        case 1:
          Tiles::template Tile<1>(xr, stride, pairs, panel, t);
          break;
        case 2:
          Tiles::template Tile<2>(xr, stride, pairs, panel, t);
          break;
        case 3:
          Tiles::template Tile<3>(xr, stride, pairs, panel, t);
          break;
        case 4:
          Tiles::template Tile<4>(xr, stride, pairs, panel, t);
          break;
        case 5:
          Tiles::template Tile<5>(xr, stride, pairs, panel, t);
          break;
        default:
          Tiles::template Tile<kMaxTileRows>(xr, stride, pairs, panel, t);
          break;
      }
      for (int64_t r = 0; r < rows; ++r) {
        Epilogue(t + r * kPanelCols, b, count, a.epilogue,
                 a.y + (r0 + r) * a.n + c0);
      }
    }
  }
}

// The epilogue in the x86-64-v4 clone on AVX-512 hosts, like the float32
// kernel's; the tiles are Dpbf16Tile's calls.
ATTNSERVE_SIMD_CLONES_AVX512
void PanelRangeDpbf16(const PanelArgs& a, int64_t p0, int64_t p1) {
  PanelRange<Dpbf16Tiles>(a, p0, p1);
}

ATTNSERVE_SIMD_CLONES_AVX512
void PanelRangePortable(const PanelArgs& a, int64_t p0, int64_t p1) {
  PanelRange<PortableTiles>(a, p0, p1);
}

ATTNSERVE_SIMD_CLONES_AVX512
void RoundRowsToBf16Impl(const float* x, int64_t rows, int64_t k,
                         int64_t stride, uint16_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * k;
    uint16_t* o = out + r * stride;
    int64_t i = 0;
    // FloatToBFloat16 on 16 lanes, the same integer operations.
    for (; i + 16 <= k; i += 16) {
      U32x16 bits;
      std::memcpy(&bits, in + i, sizeof(bits));
      const U32x16 rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
      const U32x16 quiet_nan = (bits >> 16) | 0x0040u;
      const U32x16 v = (bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
      const U16x16 h = __builtin_convertvector(v, U16x16);
      std::memcpy(o + i, &h, sizeof(h));
    }
    for (; i < k; ++i) o[i] = FloatToBFloat16(in[i]);
    for (; i < stride; ++i) o[i] = 0;
  }
}

std::atomic<bool> force_portable{false};

int PortableTileRows() {
  // As linear_panels.cc: hosts with 16 vector registers take 1 row.
  static const int rows = __builtin_cpu_supports("avx512f") ? kMaxTileRows : 1;
  return rows;
}

}  // namespace

int64_t Bf16PanelDepth(int64_t k) {
  return (k + kBf16DepthAlign - 1) / kBf16DepthAlign * kBf16DepthAlign;
}

int64_t Bf16PanelElements(int64_t n, int64_t k) {
  return (n + kPanelCols - 1) / kPanelCols * Bf16PanelDepth(k) * kPanelCols;
}

void PackBf16Panels(const float* w, int64_t n, int64_t k, uint16_t* panels) {
  const int64_t depth = Bf16PanelDepth(k);
  std::memset(panels, 0, Bf16PanelElements(n, k) * sizeof(uint16_t));
  for (int64_t row = 0; row < n; ++row) {
    uint16_t* out =
        panels + row / kPanelCols * depth * kPanelCols + row % kPanelCols * 2;
    const float* in = w + row * k;
    for (int64_t i = 0; i < k; ++i) {
      out[i / 2 * kPairElements + i % 2] = FloatToBFloat16(in[i]);
    }
  }
}

void Bf16PanelRow(const uint16_t* panels, int64_t k, int64_t row, float* out) {
  const uint16_t* in = panels +
                       row / kPanelCols * Bf16PanelDepth(k) * kPanelCols +
                       row % kPanelCols * 2;
  for (int64_t i = 0; i < k; ++i) {
    out[i] = BFloat16ToFloat(in[i / 2 * kPairElements + i % 2]);
  }
}

void RoundRowsToBf16(const float* x, int64_t rows, int64_t k, int64_t stride,
                     uint16_t* out) {
  RoundRowsToBf16Impl(x, rows, k, stride, out);
}

Bf16Kernel Bf16KernelInUse() {
  static const bool host_has_dpbf16 = __builtin_cpu_supports("avx512bf16");
  return host_has_dpbf16 && !force_portable.load(std::memory_order_relaxed)
             ? Bf16Kernel::kDpbf16
             : Bf16Kernel::kPortable;
}

void ForceBf16PortableKernelForTesting(bool portable) {
  force_portable.store(portable, std::memory_order_relaxed);
}

void LinearBf16Panels(int threads, const uint16_t* x, int64_t m,
                      const uint16_t* panels, const float* bias, int64_t n,
                      int64_t k, LinearEpilogue epilogue, float* y) {
  const bool dpbf16 = Bf16KernelInUse() == Bf16Kernel::kDpbf16;
  const PanelArgs args{x,        m, panels,
                       bias,     n, k,
                       epilogue, y, dpbf16 ? kMaxTileRows : PortableTileRows()};
  ForBlockRuns(threads, (n + kPanelCols - 1) / kPanelCols, m * n * k,
               [&](int64_t p0, int64_t p1) {
                 if (dpbf16) {
                   PanelRangeDpbf16(args, p0, p1);
                 } else {
                   PanelRangePortable(args, p0, p1);
                 }
               });
}

}  // namespace attnserve::engine::internal
