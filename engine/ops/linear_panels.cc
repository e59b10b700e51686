// Linear on weight panels, the oneDNN backend's own kernel for decode steps on
// AVX-512 hosts (see linear_dnnl.cc for when it runs).
//
// The panels hold the weights as oneDNN's brgemm wants them (op_bodies.h), so
// one copy serves both this kernel (a few rows) and oneDNN's matmul (many):
// with the [N, K] rows that the dot-product kernel of linear_small_batch.cc
// reads, brgemm transposes the weights on every call, which cost 15-25% at
// 32 rows in the model.
//
// A tile is up to kMaxTileRows input rows x one panel (64 outputs): each step
// of the depth loads 64 weights (four 16-float vectors, one cache line each)
// and multiply-adds them with one broadcast input value per row into
// kMaxTileRows x 4 vector accumulators that stay in registers (24 of the 32
// AVX-512 registers). A panel is read front to back, so memory streams
// sequentially, and the tiles of a call's rows reuse it from L2.

// See simd.h: lets GCC vectorise the epilogue loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

#include <algorithm>
#include <cstring>

#include "engine/ops/linear_kernels.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {
namespace {

constexpr int kVectorsPerPanel = kPanelCols / 16;
// Rows per tile with 32 vector registers; hosts with 16 (AVX2) take 1 so that
// the accumulators and one panel row still fit.
constexpr int kMaxTileRows = 6;

// t[r * kPanelCols + j] = x_r . w_j over the depth k, for kRows input rows (k
// floats apart) and the 64 outputs of `panel`.
template <int kRows>
ATTNSERVE_ALWAYS_INLINE void PanelTile(const float* x, int64_t k,
                                       const float* panel, float* t) {
  V16 acc[kRows][kVectorsPerPanel] = {};
  for (int64_t i = 0; i < k; ++i) {
    const float* w = panel + i * kPanelCols;
    V16 wv[kVectorsPerPanel];
    for (int v = 0; v < kVectorsPerPanel; ++v) wv[v] = Load16(w + 16 * v);
    for (int r = 0; r < kRows; ++r) {
      const float xv = x[r * k + i];
      for (int v = 0; v < kVectorsPerPanel; ++v) acc[r][v] += xv * wv[v];
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVectorsPerPanel; ++v) {
      Store16(t + r * kPanelCols + 16 * v, acc[r][v]);
    }
  }
}

// Panels [p0, p1) of all m rows, tiles of up to `tile_rows` rows.
// x86-64-v4 (AVX-512) is the clone that serves: the layout is only chosen on
// hosts where oneDNN runs brgemm, which needs AVX-512. The others keep the
// kernel correct everywhere (tests force the layout on any host).
ATTNSERVE_SIMD_CLONES_AVX512
void LinearPanelRange(const float* x, int64_t m, const float* panels,
                      const float* bias, int64_t n, int64_t k, int64_t p0,
                      int64_t p1, int tile_rows, LinearEpilogue epilogue,
                      float* y) {
  const int64_t panel_floats = PanelDepth(k) * kPanelCols;
  float t[kMaxTileRows * kPanelCols];
  for (int64_t p = p0; p < p1; ++p) {
    const float* panel = panels + p * panel_floats;
    const int64_t c0 = p * kPanelCols;
    const int64_t count = n - c0 < kPanelCols ? n - c0 : kPanelCols;
    const float* b = bias != nullptr ? bias + c0 : nullptr;
    for (int64_t r0 = 0; r0 < m; r0 += tile_rows) {
      const int64_t rows = m - r0 < tile_rows ? m - r0 : tile_rows;
      const float* xr = x + r0 * k;
      switch (rows) {
        case 1:
          PanelTile<1>(xr, k, panel, t);
          break;
        case 2:
          PanelTile<2>(xr, k, panel, t);
          break;
        case 3:
          PanelTile<3>(xr, k, panel, t);
          break;
        case 4:
          PanelTile<4>(xr, k, panel, t);
          break;
        case 5:
          PanelTile<5>(xr, k, panel, t);
          break;
        default:
          PanelTile<kMaxTileRows>(xr, k, panel, t);
          break;
      }
      for (int64_t r = 0; r < rows; ++r) {
        Epilogue(t + r * kPanelCols, b, count, epilogue, y + (r0 + r) * n + c0);
      }
    }
  }
}

int TileRows() {
  static const int rows = __builtin_cpu_supports("avx512f") ? kMaxTileRows : 1;
  return rows;
}

}  // namespace

int64_t PanelDepth(int64_t k) {
  return (k + kPanelDepthAlign - 1) / kPanelDepthAlign * kPanelDepthAlign;
}

int64_t PanelFloats(int64_t n, int64_t k) {
  return (n + kPanelCols - 1) / kPanelCols * PanelDepth(k) * kPanelCols;
}

void PackPanels(const float* w, int64_t n, int64_t k, float* panels) {
  const int64_t depth = PanelDepth(k);
  std::memset(panels, 0, PanelFloats(n, k) * sizeof(float));
  for (int64_t row = 0; row < n; ++row) {
    float* out =
        panels + row / kPanelCols * depth * kPanelCols + row % kPanelCols;
    const float* in = w + row * k;
    for (int64_t i = 0; i < k; ++i) out[i * kPanelCols] = in[i];
  }
}

void PanelRow(const float* panels, int64_t k, int64_t row, float* out) {
  const float* in =
      panels + row / kPanelCols * PanelDepth(k) * kPanelCols + row % kPanelCols;
  for (int64_t i = 0; i < k; ++i) out[i] = in[i * kPanelCols];
}

void LinearPanels(int threads, const float* x, int64_t m, const float* panels,
                  const float* bias, int64_t n, int64_t k,
                  LinearEpilogue epilogue, float* y) {
  const int tile_rows = TileRows();
  ForBlockRuns(threads, (n + kPanelCols - 1) / kPanelCols, m * n * k,
               [&](int64_t p0, int64_t p1) {
                 LinearPanelRange(x, m, panels, bias, n, k, p0, p1, tile_rows,
                                  epilogue, y);
               });
}

}  // namespace attnserve::engine::internal
