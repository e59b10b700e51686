// Int8 linear on panels, the oneDNN backend's own kernel for decode steps
// (see linear_dnnl_int8.cc for when it runs), its input quantizer and the
// epilogue every int8 path shares.
//
// The kernel mirrors the float32 one (linear_panels.cc): a tile is up to
// kMaxTileRows input rows x one panel of 64 outputs, 24 int32 accumulator
// vectors in registers. Each group of 4 depths loads one 256-byte row of the
// panel (four vectors, one cache line each) and, per input row, broadcasts its
// 4 input bytes and multiply-adds them with vpdpbusd (u8 x s8, four products
// summed into each int32 lane). A panel is a quarter the bytes of a float32
// one, read front to back.
//
// Integer sums are exact, so only the float epilogue could tell the paths
// apart; they all call Int8Epilogue, one compiled copy (see its header).

// See simd.h: lets GCC vectorise the epilogue loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

// GCC 12 warns that the "undefined" source vectors of its own intrinsics
// (_mm512_undefined_ps and the like, in immintrin.h) are used uninitialized
// (GCC bug 105593, fixed in 13); they are don't-care operands by design.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "engine/ops/linear_dnnl_int8.h"
#include "engine/ops/linear_kernels.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/quantize.h"
#include "engine/ops/simd.h"

// The instructions of the VNNI code, which runs only where
// Int8KernelInUse() says so.
#define ATTNSERVE_TARGET_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace attnserve::engine::internal {
namespace {

constexpr int kMaxTileRows = 6;
constexpr int64_t kGroupBytes = 4 * kPanelCols;  // one group of 4 depths
constexpr uint8_t kZeroU8 = 128;                 // q = 0, shifted

// sums[r * kPanelCols + j] = sum over `groups` groups of 4 depths of u_r . w_j
// for `rows` input rows (stride bytes apart) and the 64 outputs of `panel`.
using TileFn = void (*)(const uint8_t* u, int64_t stride, int64_t groups,
                        const int8_t* panel, int rows, int32_t* sums);

template <int kRows>
ATTNSERVE_TARGET_VNNI ATTNSERVE_ALWAYS_INLINE void VnniTileRows(
    const uint8_t* u, int64_t stride, int64_t groups, const int8_t* panel,
    int32_t* sums) {
  __m512i acc[kRows][4];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* w = panel + g * kGroupBytes;
    const __m512i w0 = _mm512_loadu_si512(w);
    const __m512i w1 = _mm512_loadu_si512(w + 64);
    const __m512i w2 = _mm512_loadu_si512(w + 128);
    const __m512i w3 = _mm512_loadu_si512(w + 192);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      int32_t four;  // input bytes 4g .. 4g + 3 of row r
      std::memcpy(&four, u + r * stride + 4 * g, sizeof(four));
      const __m512i x = _mm512_set1_epi32(four);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], x, w0);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], x, w1);
      acc[r][2] = _mm512_dpbusd_epi32(acc[r][2], x, w2);
      acc[r][3] = _mm512_dpbusd_epi32(acc[r][3], x, w3);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      _mm512_storeu_si512(sums + r * kPanelCols + 16 * v, acc[r][v]);
    }
  }
}

// One row (a batch-1 decode step): VnniTileRows<1> has only 4 accumulators,
// each waiting on the previous vpdpbusd; two sets over alternate groups
// double the multiply-adds in flight.
ATTNSERVE_TARGET_VNNI ATTNSERVE_ALWAYS_INLINE void VnniTileOneRow(
    const uint8_t* u, int64_t groups, const int8_t* panel, int32_t* sums) {
  __m512i even[4], odd[4];
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) even[v] = odd[v] = _mm512_setzero_si512();
  int64_t g = 0;
  for (; g + 2 <= groups; g += 2) {
    const int8_t* w = panel + g * kGroupBytes;
    int32_t four[2];
    std::memcpy(four, u + 4 * g, sizeof(four));
    const __m512i x0 = _mm512_set1_epi32(four[0]);
    const __m512i x1 = _mm512_set1_epi32(four[1]);
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      even[v] =
          _mm512_dpbusd_epi32(even[v], x0, _mm512_loadu_si512(w + 64 * v));
      odd[v] = _mm512_dpbusd_epi32(
          odd[v], x1, _mm512_loadu_si512(w + kGroupBytes + 64 * v));
    }
  }
  if (g < groups) {
    const int8_t* w = panel + g * kGroupBytes;
    int32_t four;
    std::memcpy(&four, u + 4 * g, sizeof(four));
    const __m512i x = _mm512_set1_epi32(four);
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      even[v] = _mm512_dpbusd_epi32(even[v], x, _mm512_loadu_si512(w + 64 * v));
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < 4; ++v) {
    _mm512_storeu_si512(sums + 16 * v, _mm512_add_epi32(even[v], odd[v]));
  }
}

ATTNSERVE_TARGET_VNNI void VnniTile(const uint8_t* u, int64_t stride,
                                    int64_t groups, const int8_t* panel,
                                    int rows, int32_t* sums) {
  switch (rows) {
    case 1:
      return VnniTileOneRow(u, groups, panel, sums);
    case 2:
      return VnniTileRows<2>(u, stride, groups, panel, sums);
    case 3:
      return VnniTileRows<3>(u, stride, groups, panel, sums);
    case 4:
      return VnniTileRows<4>(u, stride, groups, panel, sums);
    case 5:
      return VnniTileRows<5>(u, stride, groups, panel, sums);
    default:
      return VnniTileRows<kMaxTileRows>(u, stride, groups, panel, sums);
  }
}

// The same sums in plain int32 arithmetic on the same layout.
void PortableTile(const uint8_t* u, int64_t stride, int64_t groups,
                  const int8_t* panel, int rows, int32_t* sums) {
  for (int r = 0; r < rows; ++r) {
    int32_t* s = sums + r * kPanelCols;
    for (int64_t j = 0; j < kPanelCols; ++j) s[j] = 0;
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* x = u + r * stride + 4 * g;
      const int8_t* w = panel + g * kGroupBytes;
      for (int64_t j = 0; j < kPanelCols; ++j) {
        for (int a = 0; a < 4; ++a) s[j] += int32_t{x[a]} * w[j * 4 + a];
      }
    }
  }
}

// QuantizeRowInt8's float operations in the same order (see quantize.cc):
// amax over |v|, inverse = 127 / amax, q = nearbyint(v * inverse) (vcvtps2dq
// rounds as nearbyint does, by the current mode), clamped to +-127.
ATTNSERVE_TARGET_VNNI float VnniQuantizeRow(const float* v, int64_t k,
                                            int64_t stride, uint8_t* u) {
  const __m512 largest = _mm512_set1_ps(FLT_MAX);
  __m512 amax = _mm512_setzero_ps();
  __mmask16 not_finite = 0;  // |v| > FLT_MAX or NaN
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 lanes =
        k - i >= 16 ? __mmask16{0xffff} : __mmask16((1u << (k - i)) - 1);
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(lanes, v + i));
    not_finite |= _mm512_cmp_ps_mask(a, largest, _CMP_NLE_UQ);
    amax = _mm512_max_ps(amax, a);
  }
  const float row_amax = _mm512_reduce_max_ps(amax);
  if (not_finite != 0 || row_amax < std::numeric_limits<float>::min()) {
    std::memset(u, kZeroU8, stride);
    return not_finite != 0 ? std::numeric_limits<float>::quiet_NaN() : 0.0f;
  }
  const __m512 inverse = _mm512_set1_ps(kInt8Levels / row_amax);
  const __m512i lowest = _mm512_set1_epi32(-127),
                highest = _mm512_set1_epi32(127);
  const __m512i shift = _mm512_set1_epi32(kZeroU8);
  for (int64_t i = 0; i < k; i += 16) {
    const __mmask16 lanes =
        k - i >= 16 ? __mmask16{0xffff} : __mmask16((1u << (k - i)) - 1);
    __m512i q = _mm512_cvtps_epi32(
        _mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, v + i), inverse));
    q = _mm512_min_epi32(_mm512_max_epi32(q, lowest), highest);
    _mm512_mask_cvtepi32_storeu_epi8(u + i, lanes, _mm512_add_epi32(q, shift));
  }
  std::memset(u + k, kZeroU8, stride - k);
  return row_amax / kInt8Levels;
}

float PortableQuantizeRow(const float* v, int64_t k, int64_t stride,
                          uint8_t* u) {
  // int8 and uint8 share representation: q + 128 flips the top bit.
  const float scale = QuantizeRowInt8(v, k, reinterpret_cast<int8_t*>(u));
  for (int64_t i = 0; i < k; ++i) u[i] ^= 0x80;
  std::memset(u + k, kZeroU8, stride - k);
  return scale;
}

// Panels [p0, p1) of all m rows, tiles of up to kMaxTileRows rows.
void Int8PanelRange(TileFn tile, const uint8_t* u, const float* x_scales,
                    int64_t m, const Int8Weights& w, int64_t p0, int64_t p1,
                    LinearEpilogue epilogue, float* y) {
  const int64_t stride = Int8RowStride(w.k);
  const int64_t groups = stride / 4;
  const int64_t panel_bytes = Int8PanelDepth(w.k) * kPanelCols;
  alignas(64) int32_t sums[kMaxTileRows * kPanelCols];
  for (int64_t p = p0; p < p1; ++p) {
    const int8_t* panel = w.panels + p * panel_bytes;
    const int64_t c0 = p * kPanelCols;
    const int64_t count = w.n - c0 < kPanelCols ? w.n - c0 : kPanelCols;
    const float* bias = w.bias != nullptr ? w.bias + c0 : nullptr;
    for (int64_t r0 = 0; r0 < m; r0 += kMaxTileRows) {
      const int rows =
          static_cast<int>(m - r0 < kMaxTileRows ? m - r0 : kMaxTileRows);
      tile(u + r0 * stride, stride, groups, panel, rows, sums);
      for (int r = 0; r < rows; ++r) {
        Int8Epilogue(sums + r * kPanelCols, count, w.compensation + c0,
                     x_scales[r0 + r], w.scales + c0, bias, epilogue,
                     y + (r0 + r) * w.n + c0);
      }
    }
  }
}

// -1: the host's choice; otherwise a forced Int8Kernel.
std::atomic<int> forced_kernel{-1};

}  // namespace

int64_t Int8PanelDepth(int64_t k) {
  return (k + kInt8PanelDepthAlign - 1) / kInt8PanelDepthAlign *
         kInt8PanelDepthAlign;
}

int64_t Int8PanelBytes(int64_t n, int64_t k) {
  return (n + kPanelCols - 1) / kPanelCols * Int8PanelDepth(k) * kPanelCols;
}

void PackInt8Panels(const int8_t* q, int64_t n, int64_t k, int8_t* panels) {
  const int64_t panel_bytes = Int8PanelDepth(k) * kPanelCols;
  std::memset(panels, 0, Int8PanelBytes(n, k));
  for (int64_t row = 0; row < n; ++row) {
    int8_t* out =
        panels + row / kPanelCols * panel_bytes + row % kPanelCols * 4;
    const int8_t* in = q + row * k;
    for (int64_t i = 0; i < k; ++i) out[i / 4 * kGroupBytes + i % 4] = in[i];
  }
}

void Int8PanelRow(const int8_t* panels, int64_t k, int64_t row, int64_t begin,
                  int64_t count, int8_t* out) {
  const int8_t* in = panels +
                     row / kPanelCols * Int8PanelDepth(k) * kPanelCols +
                     row % kPanelCols * 4;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t d = begin + i;
    out[i] = in[d / 4 * kGroupBytes + d % 4];
  }
}

int64_t Int8RowStride(int64_t k) { return (k + 3) / 4 * 4; }

void QuantizeRowsU8(const float* x, int64_t m, int64_t k, int64_t stride,
                    uint8_t* u, float* scales) {
  const bool vnni = Int8KernelInUse() == Int8Kernel::kVnni;
  for (int64_t r = 0; r < m; ++r) {
    scales[r] = vnni
                    ? VnniQuantizeRow(x + r * k, k, stride, u + r * stride)
                    : PortableQuantizeRow(x + r * k, k, stride, u + r * stride);
  }
}

ATTNSERVE_SIMD_CLONES_AVX512
void Int8Epilogue(const int32_t* sums, int64_t count,
                  const int32_t* compensation, float x_scale,
                  const float* w_scales, const float* bias,
                  LinearEpilogue epilogue, float* y) {
  float t[kPanelCols];
  for (int64_t c0 = 0; c0 < count; c0 += kPanelCols) {
    const int64_t cols = count - c0 < kPanelCols ? count - c0 : kPanelCols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) {
      t[c] = static_cast<float>(sums[c0 + c] - compensation[c0 + c]) *
             (x_scale * w_scales[c0 + c]);
    }
    Epilogue(t, bias != nullptr ? bias + c0 : nullptr, cols, epilogue, y + c0);
  }
}

void LinearInt8Panels(int threads, const uint8_t* u, const float* x_scales,
                      int64_t m, const Int8Weights& w, LinearEpilogue epilogue,
                      float* y) {
  const TileFn tile =
      Int8KernelInUse() == Int8Kernel::kVnni ? VnniTile : PortableTile;
  ForBlockRuns(threads, (w.n + kPanelCols - 1) / kPanelCols, m * w.n * w.k,
               [&](int64_t p0, int64_t p1) {
                 Int8PanelRange(tile, u, x_scales, m, w, p0, p1, epilogue, y);
               });
}

void Int8EpilogueRows(int threads, const int32_t* sums, const float* x_scales,
                      int64_t m, const Int8Weights& w, LinearEpilogue epilogue,
                      float* y) {
  // In panel-wide runs, as the kernel calls it (the same bits either way; the
  // same runs make that plain).
  const int64_t panels = (w.n + kPanelCols - 1) / kPanelCols;
  ForBlockRuns(threads, panels, m * w.n * 16, [&](int64_t p0, int64_t p1) {
    const int64_t c0 = p0 * kPanelCols;
    const int64_t count = (p1 * kPanelCols < w.n ? p1 * kPanelCols : w.n) - c0;
    for (int64_t r = 0; r < m; ++r) {
      Int8Epilogue(sums + r * w.n + c0, count, w.compensation + c0, x_scales[r],
                   w.scales + c0, w.bias != nullptr ? w.bias + c0 : nullptr,
                   epilogue, y + r * w.n + c0);
    }
  });
}

Int8Kernel Int8KernelInUse() {
  const int forced = forced_kernel.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Int8Kernel>(forced);
  static const Int8Kernel host_kernel =
      __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")
          ? Int8Kernel::kVnni
          : Int8Kernel::kPortable;
  return host_kernel;
}

void ForceInt8KernelForTesting(std::optional<Int8Kernel> kernel) {
  forced_kernel.store(kernel ? static_cast<int>(*kernel) : -1,
                      std::memory_order_relaxed);
}

}  // namespace attnserve::engine::internal
