// The oneDNN backend's int8 linear (compute_type.h), on the design of the
// float32 one (linear_dnnl.cc): the weights are quantized once
// (QuantizeRowsInt8, the reference's weights exactly) onto int8 panels, which
// are oneDNN's BA16a64b4a layout (linear_dnnl_int8.h). Up to
// kMaxInt8KernelRows rows (decode steps) run our own VNNI kernel on them
// (linear_panels_int8.cc); more rows run oneDNN's matmul on the same copy,
// u8 inputs x s8 weights into s32 sums (oneDNN 2.6 runs that as
// brg:avx512_core_vnni at every M; s8 inputs would fall to its reference
// int8 matmul), with exact-M primitives cached as the float32 ones are, then
// the shared epilogue. Only integer sums come out of oneDNN, so a row's result
// is the same bits on either path and in any batch.

#include "engine/ops/linear_dnnl_int8.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/quantize.h"
#include "engine/status_macros.h"

namespace attnserve::engine::internal {
namespace {

// Most rows of one primitive call, as in linear_dnnl.cc.
constexpr int64_t kMaxPrimitiveRows = 256;

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

memory::desc PanelsDesc(int64_t n, int64_t k) {
  return memory::desc({k, n}, Type::s8, Tag::BA16a64b4a);
}

class DnnlInt8PackedLinear final : public PackedLinear {
 public:
  // `weights_md` is PanelsDesc(n, k), whose size the caller has checked.
  DnnlInt8PackedLinear(PlainLinear plain, const memory::desc& weights_md)
      : PackedLinear(Backend::kDnnl, ComputeType::kInt8, plain.n, plain.k,
                     plain.bias != nullptr),
        plain_(std::move(plain)) {
    const int64_t n = plain_.n, k = plain_.k;
    scales_ = Tensor({n});
    compensation_ = Tensor({Tensor::FloatsFor<int32_t>(n)});
    panels_ = Tensor({Tensor::FloatsFor<int8_t>(Int8PanelBytes(n, k))},
                     Tensor::kWeights);
    {
      // [n, k], only while packing.
      Tensor quantized({Tensor::FloatsFor<int8_t>(n * k)});
      int8_t* q = quantized.as<int8_t>();
      QuantizeRowsInt8(plain_.weight, n, k, q, scales_.data());
      PackInt8Panels(q, n, k, panels_.as<int8_t>());
      int32_t* compensation = compensation_.as<int32_t>();
      for (int64_t j = 0; j < n; ++j) {
        int32_t sum = 0;
        for (int64_t i = 0; i < k; ++i) sum += q[j * k + i];
        compensation[j] = 128 * sum;
      }
    }
    plain_.owned_weight = Tensor();  // the panels replace it
    plain_.weight = nullptr;
    // oneDNN takes non-const handles; it never writes a matmul's weights.
    weights_ = memory(weights_md, CpuEngine(), panels_.as<int8_t>());
  }

  size_t bytes() const override {
    return plain_.owned_bytes() + panels_.bytes() + scales_.bytes() +
           compensation_.bytes();
  }
  bool borrows_weights() const override { return false; }
  void CopyWeightRow(int64_t row, float* out) const override {
    // Gathered from the panel a chunk at a time, then DequantizeRowInt8 as
    // the reference's.
    constexpr int64_t kChunk = 256;
    int8_t q[kChunk];
    const int64_t k = in_features();
    for (int64_t begin = 0; begin < k; begin += kChunk) {
      const int64_t count = std::min(kChunk, k - begin);
      Int8PanelRow(panels_.as<int8_t>(), k, row, begin, count, q);
      DequantizeRowInt8(q, count, scales_.data()[row], out + begin);
    }
  }

  Int8Weights views() const {
    return {out_features(),       in_features(),
            panels_.as<int8_t>(), compensation_.as<int32_t>(),
            scales_.data(),       plain_.bias};
  }
  const memory& weights() const { return weights_; }

 private:
  PlainLinear plain_;    // weight released; bias owned or borrowed
  Tensor panels_;        // Int8PanelBytes(n, k) bytes
  Tensor scales_;        // [n]
  Tensor compensation_;  // [n] int32
  memory weights_;       // panels_ as the matmul's K x N s8 weights
};

CachedMatmul CreateMatmul(const DnnlState& state, const MatmulKey& key,
                          const memory::desc& weights_md) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // see CachedMatmul
  const memory::desc src({key.m, key.k}, Type::u8, Tag::ab);
  const memory::desc dst({key.m, key.n}, Type::s32, Tag::ab);
  return MakeCachedMatmul(
      dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, weights_md, dst),
                                   attr, state.engine),
      state.engine);
}

// Sums [rows, n] of u [rows, k] (u8) and the panels, on oneDNN.
dnnl_status_t RunMatmul(DnnlState& state, const DnnlInt8PackedLinear& w,
                        const uint8_t* u, int64_t rows, int32_t* sums) {
  const int64_t n = w.out_features(), k = w.in_features();
  // The sums are all the primitive computes: bias and activation are ours,
  // so one primitive per row count serves every epilogue.
  MatmulKey key;
  key.type = ComputeType::kInt8;
  key.m = rows;
  key.n = n;
  key.k = k;
  key.panels = true;
  try {
    CachedMatmul& matmul = state.Matmul(
        key, [&] { return CreateMatmul(state, key, w.weights().get_desc()); });
    state.TrimActivations();
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, state.Activation(ArgRole::kSrc, rows, k, u, Type::u8)},
        {DNNL_ARG_WEIGHTS, w.weights().get()},
        {DNNL_ARG_DST,
         state.Activation(ArgRole::kDst, rows, n, sums, Type::s32)},
    };
    return state.RunMatmul(matmul, args, 3);
  } catch (const dnnl::error& e) {
    return e.status;
  }
}

// Quantized rows in the context's scratch: u [rows, stride] after
// `extra_floats` floats of other use and scales [rows] (floats too).
struct QuantizedRows {
  float* extra;
  float* scales;
  uint8_t* u;
};
QuantizedRows QuantizeIntoScratch(DnnlState& state, const float* x,
                                  int64_t rows, int64_t k, int64_t stride,
                                  int64_t extra_floats) {
  float* scratch = state.Scratch(static_cast<size_t>(
      extra_floats + rows + Tensor::FloatsFor<uint8_t>(rows * stride)));
  QuantizedRows q{scratch, scratch + extra_floats,
                  reinterpret_cast<uint8_t*>(scratch + extra_floats + rows)};
  QuantizeRowsU8(x, rows, k, stride, q.u, q.scales);
  return q;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnlInt8(
    const OpContext& ctx, PlainLinear plain) {
  (void)ctx;  // the weights serve every context (CpuEngine)
  const int64_t n = plain.n, k = plain.k;
  if (k > kMaxInt8Depth) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 linear [", n, ", ", k, "]: in_features ", k,
        " exceeds the int8 kernels' ", kMaxInt8Depth,
        " (their int32 sums would overflow); use float32 or bfloat16"));
  }
  try {
    const memory::desc weights_md = PanelsDesc(n, k);
    if (weights_md.get_size() != static_cast<size_t>(Int8PanelBytes(n, k))) {
      return absl::InternalError(
          absl::StrCat("oneDNN's BA16a64b4a layout of [", k, ", ", n,
                       "] takes ", weights_md.get_size(),
                       " bytes, the int8 panels ", Int8PanelBytes(n, k)));
    }
    return std::make_unique<DnnlInt8PackedLinear>(std::move(plain), weights_md);
  } catch (const dnnl::error& e) {
    return absl::InternalError(
        absl::StrCat("oneDNN int8 linear pack [", n, ", ", k, "]: ", e.what()));
  }
}

absl::Status LinearDnnlInt8Kernel(const OpContext& ctx, const PackedLinear& w,
                                  const float* x, int64_t m, float* y,
                                  LinearEpilogue epilogue) {
  const auto& packed = static_cast<const DnnlInt8PackedLinear&>(w);
  const int64_t k = w.in_features();
  const int64_t stride = Int8RowStride(k);
  const QuantizedRows q =
      QuantizeIntoScratch(*ctx.dnnl(), x, m, k, stride, /*extra_floats=*/0);
  LinearInt8Panels(ctx.threads(), q.u, q.scales, m, packed.views(), epilogue,
                   y);
  return absl::OkStatus();
}

absl::Status LinearDnnlInt8Matmul(const OpContext& ctx, const PackedLinear& w,
                                  const float* x, int64_t m, float* y,
                                  LinearEpilogue epilogue) {
  const auto& packed = static_cast<const DnnlInt8PackedLinear&>(w);
  const int64_t n = w.out_features(), k = w.in_features();
  DnnlState& state = *ctx.dnnl();
  const Int8Weights views = packed.views();
  for (int64_t row = 0; row < m; row += kMaxPrimitiveRows) {
    const int64_t rows = std::min(kMaxPrimitiveRows, m - row);
    // Sums [rows, n] first in the scratch, then scales and u [rows, k].
    const QuantizedRows q = QuantizeIntoScratch(
        state, x + row * k, rows, k, k, Tensor::FloatsFor<int32_t>(rows * n));
    int32_t* sums = reinterpret_cast<int32_t*>(q.extra);
    const dnnl_status_t status = RunMatmul(state, packed, q.u, rows, sums);
    RETURN_IF_ERROR(LinearMatmulStatus(status, "int8 linear", m, n, k));
    Int8EpilogueRows(ctx.threads(), sums, q.scales, rows, views, epilogue,
                     y + row * n);
  }
  return absl::OkStatus();
}

absl::Status LinearDnnlInt8(const OpContext& ctx, const PackedLinear& w,
                            const float* x, int64_t m, float* y,
                            LinearEpilogue epilogue) {
  return m <= kMaxInt8KernelRows
             ? LinearDnnlInt8Kernel(ctx, w, x, m, y, epilogue)
             : LinearDnnlInt8Matmul(ctx, w, x, m, y, epilogue);
}

}  // namespace attnserve::engine::internal
