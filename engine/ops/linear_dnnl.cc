// Linear layer for the oneDNN backend. Two layouts (DnnlWeightLayoutInUse):
//
// Panels (AVX-512 hosts): the weights are copied once into oneDNN's blocked
// BA16a64b layout (op_bodies.h). Up to kMaxPanelKernelRows rows (decode steps)
// run our own kernel on them (linear_panels.cc); more rows run oneDNN's brgemm
// matmul on the same copy. Against plain weights, brgemm no longer transposes
// the weights on every call: measured in the model at batch 32, the decode
// step's products took 10-20% less time, greedy batch 32 gained about 10%.
//
// Plain (other hosts): the weights stay [N, K] as loaded. Up to
// kMaxSmallBatchRows rows run the dot-product kernel of linear_small_batch.cc
// (oneDNN's gemm:jit, the matmul these hosts get, repacks the weights on every
// call and measured 1.5-3x slower at 8 rows); more rows run gemm:jit.
//
// Either way the matmul primitives are made for the exact row count, with bias
// and epilogue fused as post-ops. Exact, not runtime, M: a runtime M pins
// oneDNN 2.6 to gemm:jit, while an exact one lets it pick brgemm on AVX-512
// hosts, 2-6x faster at M = 32 (see linear_benchmark.cc). Calls beyond
// kMaxPrimitiveRows rows are split into chunks of that many, so the number of
// primitives stays bounded.
//
// Per-call overhead matters in decoding (M = batch * beam, a few dozen rows):
// weights and bias memory objects are made once at pack time, activation ones
// are cached per shape and re-pointed, and the primitive runs through the C
// API with the arguments on the stack.

#include <algorithm>
#include <atomic>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"
#include "engine/status_macros.h"

namespace attnserve::engine::internal {
namespace {

// Crossover between LinearSmallBatch and gemm:jit on a 2-core AVX2 host
// (transformer shapes, K 512 or 2048): the kernel wins clearly up to 12-16
// rows, the two are even at 24-32 (see linear_benchmark.cc).
constexpr int64_t kMaxSmallBatchRows = 16;
static_assert(kMaxSmallBatchRows <= kSmallBatchMaxRows);

// Where LinearPanels hands over to brgemm on the same panels. The two measured
// even from 16 to 2048 rows with the weights in cache (linear_benchmark), and
// the kernel 1.2-1.5x faster at 1-8 rows; in the model at batch 32 the kernel
// was as fast or slightly faster. Up to 64 rows it needs no primitive per row
// count; beyond, brgemm's fused post-ops and cache blocking are safer bets.
constexpr int64_t kMaxPanelKernelRows = 64;

// Most rows of one primitive call (see the top of the file). Large enough that
// a chunk runs at the large-M rate, small enough that one primitive per row
// count up to it is a modest cache.
constexpr int64_t kMaxPrimitiveRows = 256;

using dnnl::memory;
using Tag = memory::format_tag;
using Type = memory::data_type;

// oneDNN's name for the panel layout of the matmul's K x N weights.
constexpr Tag kPanelsTag = Tag::BA16a64b;

class DnnlPackedLinear final : public PackedLinear {
 public:
  DnnlPackedLinear(PlainLinear plain, DnnlWeightLayout layout)
      : PackedLinear(Backend::kDnnl, ComputeType::kFloat32, plain.n, plain.k,
                     plain.bias != nullptr),
        plain_(std::move(plain)) {
    // oneDNN takes non-const handles; it never writes a matmul's weights/bias.
    if (layout == DnnlWeightLayout::kPanels) {
      panels_ = Tensor({PanelFloats(plain_.n, plain_.k)}, Tensor::kWeights);
      PackPanels(plain_.weight, plain_.n, plain_.k, panels_.data());
      plain_.owned_weight = Tensor();  // the panels replace it
      plain_.weight = nullptr;
      weights_ =
          memory(memory::desc({plain_.k, plain_.n}, Type::f32, kPanelsTag),
                 CpuEngine(), panels_.data());
    } else {
      weights_ = memory(memory::desc({plain_.k, plain_.n}, Type::f32, Tag::ba),
                        CpuEngine(), const_cast<float*>(plain_.weight));
    }
    if (plain_.bias != nullptr) {
      bias_ = memory(memory::desc({1, plain_.n}, Type::f32, Tag::ab),
                     CpuEngine(), const_cast<float*>(plain_.bias));
    }
  }

  size_t bytes() const override {
    return plain_.owned_bytes() + panels_.bytes();
  }
  bool borrows_weights() const override {
    return panels_.empty() && plain_.borrows_weight();
  }
  void CopyWeightRow(int64_t row, float* out) const override {
    if (panels_.empty()) {
      plain_.CopyRow(row, out);
    } else {
      PanelRow(panels_.data(), plain_.k, row, out);
    }
  }

  // Null with panels.
  const float* plain_weight() const { return plain_.weight; }
  const float* panels() const {
    return panels_.empty() ? nullptr : panels_.data();
  }
  const float* bias_data() const { return plain_.bias; }
  // Points at memory objects that are read-only once constructed, so calls
  // from several contexts may share them.
  LinearMatmulWeights matmul() const {
    return {ComputeType::kFloat32,
            Type::f32,
            &weights_,
            plain_.bias != nullptr ? &bias_ : nullptr,
            !panels_.empty(),
            plain_.n,
            plain_.k};
  }

 private:
  PlainLinear plain_;
  Tensor panels_;   // empty with plain weights
  memory weights_;  // the matmul's K x N weights: [N, K] as tag ba, or panels
  memory bias_;     // empty without bias
};

// Row-major [rows, cols].
memory::desc RowsDesc(memory::dim rows, memory::dim cols) {
  return memory::desc({rows, cols}, Type::f32, Tag::ab);
}

dnnl::algorithm EltwiseAlgorithm(LinearActivation activation) {
  switch (activation) {
    case LinearActivation::kRelu:
      return dnnl::algorithm::eltwise_relu;
    case LinearActivation::kGelu:
      return dnnl::algorithm::eltwise_gelu_erf;
    case LinearActivation::kSwish:
      return dnnl::algorithm::eltwise_swish;
    case LinearActivation::kGeluTanh:
      return dnnl::algorithm::eltwise_gelu_tanh;
    case LinearActivation::kNone:
      break;
  }
  return dnnl::algorithm::undef;
}

CachedMatmul CreateMatmul(const DnnlState& state, const MatmulKey& key,
                          const memory::desc& weights_md, Type src_type) {
  dnnl::post_ops post_ops;
  // The sum post-op adds the previous y. After an eltwise, oneDNN 2.6 falls
  // back to ref:any, so LinearDnnl never asks for both (see SplitEpilogue).
  if (key.accumulate) post_ops.append_sum(1.0f);
  if (key.activation != LinearActivation::kNone) {
    // alpha = 1 for swish: x * sigmoid(1 * x); relu's slope 0; unused by
    // either gelu.
    const float alpha =
        key.activation == LinearActivation::kSwish ? 1.0f : 0.0f;
    post_ops.append_eltwise(1.0f, EltwiseAlgorithm(key.activation), alpha,
                            0.0f);
  }
  dnnl::primitive_attr attr;
  attr.set_post_ops(post_ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // see CachedMatmul
  const memory::desc src({key.m, key.k}, src_type, Tag::ab);
  const memory::desc dst = RowsDesc(key.m, key.n);
  const dnnl::matmul::desc desc =
      key.bias ? dnnl::matmul::desc(src, weights_md, RowsDesc(1, key.n), dst)
               : dnnl::matmul::desc(src, weights_md, dst);
  return MakeCachedMatmul(
      dnnl::matmul::primitive_desc(desc, attr, state.engine), state.engine);
}

// y = y + act(x W^T + b) cannot be one fast primitive (see CreateMatmul):
// compute act(x W^T + b) into scratch, then add. No layer of ours needs this
// combination on the hot path; it exists so every epilogue works everywhere.
bool SplitEpilogue(LinearEpilogue epilogue) {
  return epilogue.accumulate && epilogue.activation != LinearActivation::kNone;
}

// -1: the host's choice; otherwise a forced DnnlWeightLayout.
std::atomic<int> forced_layout{-1};

// Whether oneDNN runs brgemm on panel weights: on hosts without it (AVX2),
// only its reference matmul accepts that layout.
bool BrgemmRunsOnPanels() {
  try {
    const memory::desc weights({64, 64}, Type::f32, kPanelsTag);
    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(RowsDesc(32, 64), weights, RowsDesc(32, 64)),
        CpuEngine());
    return std::string(pd.impl_info_str()).rfind("brg", 0) == 0;
  } catch (const dnnl::error&) {
    return false;
  }
}

}  // namespace

DnnlWeightLayout DnnlWeightLayoutInUse() {
  const int forced = forced_layout.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<DnnlWeightLayout>(forced);
  static const DnnlWeightLayout host_layout = BrgemmRunsOnPanels()
                                                  ? DnnlWeightLayout::kPanels
                                                  : DnnlWeightLayout::kPlain;
  return host_layout;
}

void ForceDnnlWeightLayoutForTesting(std::optional<DnnlWeightLayout> layout) {
  forced_layout.store(layout ? static_cast<int>(*layout) : -1,
                      std::memory_order_relaxed);
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearDnnl(
    const OpContext& ctx, PlainLinear plain) {
  switch (plain.type) {
    case ComputeType::kFloat32:
      break;
    case ComputeType::kInt8:
      return PackLinearDnnlInt8(ctx, std::move(plain));
    case ComputeType::kBFloat16:
      return PackLinearDnnlBf16(ctx, std::move(plain));
  }
  const int64_t n = plain.n, k = plain.k;
  try {
    return std::make_unique<DnnlPackedLinear>(std::move(plain),
                                              DnnlWeightLayoutInUse());
  } catch (const dnnl::error& e) {
    return absl::InternalError(
        absl::StrCat("oneDNN linear pack [", n, ", ", k, "]: ", e.what()));
  }
}

absl::Status LinearDnnl(const OpContext& ctx, const PackedLinear& w,
                        const float* x, int64_t m, float* y,
                        LinearEpilogue epilogue) {
  switch (w.compute_type()) {
    case ComputeType::kFloat32:
      break;
    case ComputeType::kInt8:
      return LinearDnnlInt8(ctx, w, x, m, y, epilogue);
    case ComputeType::kBFloat16:
      return LinearDnnlBf16(ctx, w, x, m, y, epilogue);
  }
  const auto& packed = static_cast<const DnnlPackedLinear&>(w);
  const int64_t n = w.out_features();
  const int64_t k = w.in_features();
  if (packed.panels() != nullptr && m <= kMaxPanelKernelRows) {
    LinearPanels(ctx.threads(), x, m, packed.panels(), packed.bias_data(), n, k,
                 epilogue, y);
    return absl::OkStatus();
  }
  if (packed.panels() == nullptr && m <= kMaxSmallBatchRows) {
    LinearSmallBatch(ctx.threads(), x, m, packed.plain_weight(),
                     packed.bias_data(), n, k, epilogue, y);
    return absl::OkStatus();
  }
  return RunLinearMatmul(
      *ctx.dnnl(), packed.matmul(), m,
      [x, k](int64_t row, int64_t) -> const void* { return x + row * k; }, y,
      epilogue);
}

absl::Status RunLinearMatmul(
    DnnlState& state, const LinearMatmulWeights& w, int64_t m,
    absl::FunctionRef<const void*(int64_t row, int64_t rows)> src, float* y,
    LinearEpilogue epilogue) {
  const int64_t n = w.n, k = w.k;
  const bool split = SplitEpilogue(epilogue);
  float* dst = split ? state.Scratch(static_cast<size_t>(m * n)) : y;
  dnnl_status_t status = dnnl_success;
  for (int64_t row = 0; row < m && status == dnnl_success;
       row += kMaxPrimitiveRows) {
    const int64_t rows = std::min(kMaxPrimitiveRows, m - row);
    const MatmulKey key{w.type,
                        rows,
                        n,
                        k,
                        w.bias != nullptr,
                        epilogue.activation,
                        epilogue.accumulate && !split,
                        w.panels};
    try {
      CachedMatmul& matmul = state.Matmul(key, [&] {
        return CreateMatmul(state, key, w.weights->get_desc(), w.src_type);
      });
      const void* src_rows = src(row, rows);
      state.TrimActivations();
      dnnl_exec_arg_t args[5] = {
          {DNNL_ARG_SRC,
           state.Activation(ArgRole::kSrc, rows, k, src_rows, w.src_type)},
          {DNNL_ARG_WEIGHTS, w.weights->get()},
          {DNNL_ARG_DST,
           state.Activation(ArgRole::kDst, rows, n, dst + row * n)},
      };
      int count = 3;
      if (w.bias != nullptr) args[count++] = {DNNL_ARG_BIAS, w.bias->get()};
      status = state.RunMatmul(matmul, args, count);
    } catch (const dnnl::error& e) {
      status = e.status;
    }
  }
  RETURN_IF_ERROR(LinearMatmulStatus(status, "linear", m, n, k));
  if (split) {
    const float* activated = state.Scratch(0);
    for (int64_t i = 0; i < m * n; ++i) y[i] += activated[i];
  }
  return absl::OkStatus();
}

absl::Status LinearMatmulStatus(dnnl_status_t status, const char* what,
                                int64_t m, int64_t n, int64_t k) {
  if (status == dnnl_success) return absl::OkStatus();
  if (status == dnnl_out_of_memory) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory in oneDNN's ", what, " [", m, ", ", k,
                     "] x [", n, ", ", k, "]^T"));
  }
  return absl::InternalError(
      absl::StrCat("oneDNN ", what, " [", m, ", ", k, "] x [", n, ", ", k,
                   "]^T failed with status ", static_cast<int>(status)));
}

}  // namespace attnserve::engine::internal
