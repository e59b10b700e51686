// The oneDNN backend's bfloat16 linear (compute_type.h): the float32 body's
// design (linear_dnnl.cc) on bf16 weights.
//
// The weights are rounded once (FloatToBFloat16, as the reference) into panels
// in oneDNN's BA16a64b2a layout (linear_dnnl_bf16.h), about half the bytes
// of the float32 panels. Up to kMaxKernelRows rows (decode steps) run our
// vdpbf16ps kernel on them (linear_bf16_panels.cc); more rows run oneDNN's bf16
// brgemm matmul (brg:avx512_core_bf16: bf16 source and weights, f32 bias and
// destination, the bias and epilogue fused as post-ops) on the same copy,
// through the float32 body's exact-M primitive cache (RunLinearMatmul,
// MatmulKey.type = kBFloat16). Either way each row of x is rounded to bf16
// into scratch as the call reads it, bit for bit FloatToBFloat16.
//
// The front only packs bfloat16 for the oneDNN backend where the CPU has
// AVX-512 BF16 (HostRunsComputeType). Elsewhere (tests pack the body
// directly) the portable kernel takes every row count and no bf16 primitive
// is made.

#include "engine/ops/linear_dnnl_bf16.h"

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine::internal {
namespace {

// Where the kernel hands over to brgemm, as the float32 body's panel kernel
// (see linear_benchmark.cc for the bf16 figures).
constexpr int64_t kMaxKernelRows = 64;

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

class DnnlBf16PackedLinear final : public PackedLinear {
 public:
  explicit DnnlBf16PackedLinear(PlainLinear plain)
      : PackedLinear(Backend::kDnnl, ComputeType::kBFloat16, plain.n, plain.k,
                     plain.bias != nullptr),
        plain_(std::move(plain)) {
    const int64_t n = plain_.n, k = plain_.k;
    panels_ = Tensor({Tensor::FloatsFor<uint16_t>(Bf16PanelElements(n, k))},
                     Tensor::kWeights);
    PackBf16Panels(plain_.weight, n, k, panels_.as<uint16_t>());
    plain_.owned_weight = Tensor();  // the panels replace it
    plain_.weight = nullptr;
    // oneDNN takes non-const handles; it never writes a matmul's weights/bias.
    weights_ = memory(memory::desc({k, n}, Type::bf16, Tag::BA16a64b2a),
                      CpuEngine(), panels_.data());
    if (plain_.bias != nullptr) {
      bias_ = memory(memory::desc({1, n}, Type::f32, Tag::ab), CpuEngine(),
                     const_cast<float*>(plain_.bias));
    }
  }

  size_t bytes() const override {
    return plain_.owned_bytes() + panels_.bytes();
  }
  bool borrows_weights() const override { return false; }
  void CopyWeightRow(int64_t row, float* out) const override {
    Bf16PanelRow(panels(), plain_.k, row, out);
  }

  const uint16_t* panels() const { return panels_.as<uint16_t>(); }
  const float* bias_data() const { return plain_.bias; }
  // Read-only once constructed, so calls from several contexts may share it.
  LinearMatmulWeights matmul() const {
    return {ComputeType::kBFloat16,
            Type::bf16,
            &weights_,
            plain_.bias != nullptr ? &bias_ : nullptr,
            /*panels=*/true,
            plain_.n,
            plain_.k};
  }

 private:
  PlainLinear plain_;  // its weight is null; its bias (owned or borrowed) kept
  Tensor panels_;      // Bf16PanelElements(n, k) bf16 values
  memory weights_;     // the panels as the matmul's K x N weights
  memory bias_;        // empty without bias
};

// -1: the default; otherwise a forced Bf16Route.
std::atomic<int> forced_route{-1};

Bf16Route RouteFor(int64_t m) {
  const int forced = forced_route.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Bf16Route>(forced);
  static const bool host_runs_matmul = __builtin_cpu_supports("avx512bf16");
  return m <= kMaxKernelRows || !host_runs_matmul ? Bf16Route::kKernel
                                                  : Bf16Route::kMatmul;
}

}  // namespace

void ForceBf16RouteForTesting(std::optional<Bf16Route> route) {
  forced_route.store(route ? static_cast<int>(*route) : -1,
                     std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnlBf16(
    const OpContext& ctx, PlainLinear plain) {
  (void)ctx;  // the weights serve every context (CpuEngine)
  const int64_t n = plain.n, k = plain.k;
  try {
    auto packed = std::make_unique<DnnlBf16PackedLinear>(std::move(plain));
    // The kernel and oneDNN must agree on the panels' padding, or oneDNN
    // would read past them.
    const size_t onednn_bytes = packed->matmul().weights->get_desc().get_size();
    const size_t ours = Bf16PanelElements(n, k) * sizeof(uint16_t);
    if (onednn_bytes != ours) {
      return absl::InternalError(absl::StrCat(
          "oneDNN's BA16a64b2a weights of [", n, ", ", k, "] take ",
          onednn_bytes, " bytes, the bf16 panels ", ours));
    }
    return packed;
  } catch (const dnnl::error& e) {
    return absl::InternalError(absl::StrCat("oneDNN bfloat16 linear pack [", n,
                                            ", ", k, "]: ", e.what()));
  }
}

absl::Status LinearDnnlBf16(const OpContext& ctx, const PackedLinear& w,
                            const float* x, int64_t m, float* y,
                            LinearEpilogue epilogue) {
  const auto& packed = static_cast<const DnnlBf16PackedLinear&>(w);
  const int64_t n = w.out_features();
  const int64_t k = w.in_features();
  DnnlState& state = *ctx.dnnl();
  if (RouteFor(m) == Bf16Route::kKernel) {
    const int64_t stride = Bf16KernelStride(k);
    auto* rows = static_cast<uint16_t*>(
        state.SrcScratch(static_cast<size_t>(m * stride) * sizeof(uint16_t)));
    RoundRowsToBf16(x, m, k, stride, rows);
    LinearBf16Panels(ctx.threads(), rows, m, packed.panels(),
                     packed.bias_data(), n, k, epilogue, y);
    return absl::OkStatus();
  }
  // One chunk's rows at a time, so the converted rows stay in cache for the
  // matmul that reads them.
  return RunLinearMatmul(
      state, packed.matmul(), m,
      [&state, x, k](int64_t row, int64_t count) -> const void* {
        auto* rows = static_cast<uint16_t*>(state.SrcScratch(
            static_cast<size_t>(count * k) * sizeof(uint16_t)));
        RoundRowsToBf16(x + row * k, count, k, k, rows);
        return rows;
      },
      y, epilogue);
}

}  // namespace attnserve::engine::internal
