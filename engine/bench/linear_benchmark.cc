// Linear (oneDNN backend) and our own kernels against a raw oneDNN matmul
// primitive on the same shapes. The baseline is created for the exact M, with
// weights in the layout it asks for (format_tag::any) and its memory objects
// made once: the best oneDNN itself does per call. A second baseline keeps the
// weights plain ([N, K], tag ba). BM_PanelKernel and BM_SmallBatchKernel call
// the two kernels of linear_dnnl.cc directly at every M (the dot-product one
// up to its 32 rows), so the table shows where each should hand over to
// oneDNN; BM_Linear is what the engine runs on this host (see
// DnnlWeightLayoutInUse), BM_LinearGeluTanh the same with the gelu_tanh
// epilogue on the FFN's first shape.
//
// Int8 (compute_type.h) beside them: BM_LinearInt8 is what the engine runs,
// BM_Int8Kernel and BM_Int8Matmul its two paths (linear_dnnl_int8.h) at every
// M, each with the quantization of x it does; a second table gives their
// speedups over float32's BM_Linear, BM_PanelKernel and BM_RawMatmulAny.
//
//   linear_benchmark [--threads=N] [--benchmark_filter=...]
//   (N OpenMP threads, 2 unless given)
//   --benchmark_repetitions=5 makes the ratios use medians: on a shared
//   2-core machine single runs of 2-thread calls have large outliers.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/ops/linear.h"
#include "engine/ops/linear_dnnl_bf16.h"
#include "engine/ops/linear_dnnl_int8.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/op_context.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace attnserve::engine {
namespace {

// The cores of the machines we serve on (--threads); both sides run on the
// same team size.
int team_threads = 2;  // set once by main, before any benchmark runs

std::vector<float> Filled(size_t n, float scale) {
  std::vector<float> v(n);
  // Cheap deterministic values in [-scale, scale); the data does not affect the
  // timing.
  for (size_t i = 0; i < n; ++i)
    v[i] = scale * (static_cast<float>((i * 7919) % 2000) / 1000.0f - 1.0f);
  return v;
}

void SetFlops(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * m * n * k / 1e9, benchmark::Counter::kIsIterationInvariantRate);
}

OpContext& Context() {
  static OpContext* ctx =
      OpContext::Create(Backend::kDnnl, team_threads)->release();
  return *ctx;
}

// Linear() or another function of its signature on weights packed in `type`.
using LinearFn = absl::Status (*)(const OpContext&, const PackedLinear&,
                                  const float*, int64_t, float*,
                                  LinearEpilogue);
// On `ctx` (entered); the process's --threads context when null.
void RunLinear(benchmark::State& state, LinearEpilogue epilogue,
               ComputeType type = ComputeType::kFloat32,
               LinearFn linear = Linear, OpContext* context = nullptr) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  OpContext& ctx = context != nullptr ? *context : Context();
  ctx.Enter();
  Tensor w({n, k});
  Tensor b({n});
  const std::vector<float> wv = Filled(n * k, 0.05f), bv = Filled(n, 1.0f);
  std::copy(wv.begin(), wv.end(), w.data());
  std::copy(bv.begin(), bv.end(), b.data());
  auto packed = PackLinear(ctx, std::move(w), std::move(b), type);
  if (!packed.ok())
    return state.SkipWithError(packed.status().ToString().c_str());
  const std::vector<float> x = Filled(m * k, 1.0f);
  std::vector<float> y(m * n);
  for (auto _ : state) {
    if (absl::Status s = linear(ctx, **packed, x.data(), m, y.data(), epilogue);
        !s.ok()) {
      return state.SkipWithError(s.ToString().c_str());
    }
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(state, m, n, k);
}

void BM_Linear(benchmark::State& state) { RunLinear(state, {}); }

void BM_LinearInt8(benchmark::State& state) {
  RunLinear(state, {}, ComputeType::kInt8);
}
void BM_Int8Kernel(benchmark::State& state) {
  RunLinear(state, {}, ComputeType::kInt8, internal::LinearDnnlInt8Kernel);
}
void BM_Int8Matmul(benchmark::State& state) {
  RunLinear(state, {}, ComputeType::kInt8, internal::LinearDnnlInt8Matmul);
}

// The first FFN linear of a gelu_new model (T5 v1.1 without the gate): what
// the tanh-form gelu epilogue costs over BM_Linear's none.
void BM_LinearGeluTanh(benchmark::State& state) {
  RunLinear(state, {LinearActivation::kGeluTanh, false});
}

// One of our kernels, called directly on weights in its layout.
template <typename Kernel>
void RunKernel(benchmark::State& state, const Tensor& weights, Kernel kernel) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Context().Enter();
  const std::vector<float> b = Filled(n, 1.0f), x = Filled(m * k, 1.0f);
  std::vector<float> y(m * n);
  for (auto _ : state) {
    kernel(x.data(), m, weights.data(), b.data(), n, k, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(state, m, n, k);
}

void BM_PanelKernel(benchmark::State& state) {
  const int64_t n = state.range(1), k = state.range(2);
  // On the pages the engine's weights get (see tensor.cc).
  Tensor panels({internal::PanelFloats(n, k)}, Tensor::kWeights);
  internal::PackPanels(Filled(n * k, 0.05f).data(), n, k, panels.data());
  RunKernel(state, panels,
            [](const float* x, int64_t m, const float* w, const float* b,
               int64_t n, int64_t k, float* y) {
              internal::LinearPanels(team_threads, x, m, w, b, n, k, {}, y);
            });
}

void BM_SmallBatchKernel(benchmark::State& state) {
  if (state.range(0) > internal::kSmallBatchMaxRows) {
    return state.SkipWithError("more rows than the kernel takes");
  }
  const int64_t n = state.range(1), k = state.range(2);
  Tensor w({n, k}, Tensor::kWeights);
  const std::vector<float> values = Filled(n * k, 0.05f);
  std::copy(values.begin(), values.end(), w.data());
  RunKernel(state, w,
            [](const float* x, int64_t m, const float* w, const float* b,
               int64_t n, int64_t k, float* y) {
              internal::LinearSmallBatch(team_threads, x, m, w, b, n, k, {}, y);
            });
}

void RawMatmul(benchmark::State& state, dnnl::memory::format_tag weights_tag) {
  using dnnl::memory;
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  Context().Enter();
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  const memory::desc src_md({m, k}, memory::data_type::f32,
                            memory::format_tag::ab);
  const memory::desc dst_md({m, n}, memory::data_type::f32,
                            memory::format_tag::ab);
  const memory::desc bias_md({1, n}, memory::data_type::f32,
                             memory::format_tag::ab);
  const memory::desc plain_md({k, n}, memory::data_type::f32,
                              memory::format_tag::ba);
  const dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(
          src_md, memory::desc({k, n}, memory::data_type::f32, weights_tag),
          bias_md, dst_md),
      eng);
  std::vector<float> wv = Filled(n * k, 0.05f), bv = Filled(n, 1.0f),
                     x = Filled(m * k, 1.0f);
  std::vector<float> y(m * n);
  memory plain_w(plain_md, eng, wv.data());
  memory w(pd.weights_desc(), eng);
  dnnl::reorder(plain_w, w).execute(stream, plain_w, w);
  dnnl::matmul matmul(pd);
  const std::unordered_map<int, memory> args = {
      {DNNL_ARG_SRC, memory(src_md, eng, x.data())},
      {DNNL_ARG_WEIGHTS, w},
      {DNNL_ARG_BIAS, memory(bias_md, eng, bv.data())},
      {DNNL_ARG_DST, memory(dst_md, eng, y.data())}};
  for (auto _ : state) {
    matmul.execute(stream, args);
    stream.wait();
  }
  state.SetLabel(pd.impl_info_str());
  SetFlops(state, m, n, k);
}

void BM_RawMatmulAny(benchmark::State& state) {
  RawMatmul(state, dnnl::memory::format_tag::any);
}
void BM_RawMatmulPlain(benchmark::State& state) {
  RawMatmul(state, dnnl::memory::format_tag::ba);
}

void Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"});
  for (int64_t m : {1, 8, 16, 32, 64, 128, 512, 2048}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{512, 512},
                        {1536, 512},
                        {2048, 512},
                        {512, 2048},
                        {32000, 512}}) {
      b->Args({m, n, k});
    }
  }
  b->UseRealTime();  // the work runs on the OpenMP team, not only the calling
                     // thread
}

BENCHMARK(BM_RawMatmulAny)->Apply(Shapes);
BENCHMARK(BM_RawMatmulPlain)->Apply(Shapes);
BENCHMARK(BM_Linear)->Apply(Shapes);
BENCHMARK(BM_LinearGeluTanh)->Apply([](benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"});
  for (int64_t m : {1, 8, 32, 64, 2048}) b->Args({m, 2048, 512});
  b->UseRealTime();
});
BENCHMARK(BM_PanelKernel)->Apply(Shapes);
BENCHMARK(BM_SmallBatchKernel)->Apply(Shapes);

// ---- bfloat16 (compute_type.h) beside float32, at 1 and 2 threads: the
// engine's Linear in each type (bf16: our vdpbf16ps kernel up to 64 rows,
// oneDNN's bf16 brgemm beyond), each bf16 route forced at every row count,
// and the float32 panel kernel called directly. The table at the end gives
// bf16 / float32 times (medians with --benchmark_repetitions):
//   Linear   BM_Bf16Linear / BM_F32Linear (what a server's products become)
//   Kernel   BM_Bf16Kernel / BM_F32Kernel (the two decode-step kernels)
//   Matmul   BM_Bf16Matmul / BM_F32Linear (oneDNN bf16 vs what f32 runs)
// and KernelVsMatmul, BM_Bf16Kernel / BM_Bf16Matmul, for the hand-over row
// count (< 1: the kernel is faster). On a shared machine, interleave and run
// the team as the server does (docs/server.md), or 2-thread calls of a few
// hundred microseconds measure the scheduler:
//   OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000 linear_benchmark
//     --benchmark_filter='BM_(F32|Bf16)' --benchmark_repetitions=9
//     --benchmark_enable_random_interleaving=true
//     --benchmark_report_aggregates_only=true

OpContext& ContextWithThreads(int threads) {
  static OpContext* contexts[3] = {};
  if (contexts[threads] == nullptr) {
    contexts[threads] = OpContext::Create(Backend::kDnnl, threads)->release();
  }
  contexts[threads]->Enter();
  return *contexts[threads];
}

// Linear on `type` weights at range(3) threads, bf16 on `route` (nullopt: the
// default one).
void RunTypedLinear(benchmark::State& state, ComputeType type,
                    std::optional<internal::Bf16Route> route) {
  internal::ForceBf16RouteForTesting(route);
  RunLinear(state, {}, type, Linear,
            &ContextWithThreads(static_cast<int>(state.range(3))));
  internal::ForceBf16RouteForTesting(std::nullopt);
}

void BM_F32Linear(benchmark::State& state) {
  RunTypedLinear(state, ComputeType::kFloat32, std::nullopt);
}
void BM_Bf16Linear(benchmark::State& state) {
  RunTypedLinear(state, ComputeType::kBFloat16, std::nullopt);
}
void BM_Bf16Kernel(benchmark::State& state) {
  RunTypedLinear(state, ComputeType::kBFloat16, internal::Bf16Route::kKernel);
}
void BM_Bf16Matmul(benchmark::State& state) {
  RunTypedLinear(state, ComputeType::kBFloat16, internal::Bf16Route::kMatmul);
}

// The float32 panel kernel at every row count (BM_PanelKernel at range(3)
// threads).
void BM_F32Kernel(benchmark::State& state) {
  const int64_t n = state.range(1), k = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  Tensor panels({internal::PanelFloats(n, k)}, Tensor::kWeights);
  internal::PackPanels(Filled(n * k, 0.05f).data(), n, k, panels.data());
  ContextWithThreads(threads);
  const int64_t m = state.range(0);
  const std::vector<float> b = Filled(n, 1.0f), x = Filled(m * k, 1.0f);
  std::vector<float> y(m * n);
  for (auto _ : state) {
    internal::LinearPanels(threads, x.data(), m, panels.data(), b.data(), n, k,
                           {}, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  SetFlops(state, m, n, k);
}

void Bf16Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "threads"});
  for (int64_t threads : {1, 2}) {
    for (auto [n, k] :
         {std::pair<int64_t, int64_t>{2048, 512}, {512, 2048}, {32000, 512}}) {
      for (int64_t m : {1, 8, 32, 64, 128, 512}) b->Args({m, n, k, threads});
    }
  }
  b->UseRealTime();
}

BENCHMARK(BM_F32Linear)->Apply(Bf16Shapes);
BENCHMARK(BM_F32Kernel)->Apply(Bf16Shapes);
BENCHMARK(BM_Bf16Linear)->Apply(Bf16Shapes);
BENCHMARK(BM_Bf16Kernel)->Apply(Bf16Shapes);
BENCHMARK(BM_Bf16Matmul)->Apply(Bf16Shapes);

// times: shape -> benchmark name -> time, as RatioReporter collects them.
void PrintBf16Ratios(
    const std::map<std::string, std::map<std::string, double>>& times) {
  struct Ratio {
    const char* label;
    const char* numerator;
    const char* denominator;
  };
  const Ratio ratios[] = {{"Linear", "BM_Bf16Linear", "BM_F32Linear"},
                          {"Kernel", "BM_Bf16Kernel", "BM_F32Kernel"},
                          {"Matmul", "BM_Bf16Matmul", "BM_F32Linear"},
                          {"KernelVsMatmul", "BM_Bf16Kernel", "BM_Bf16Matmul"}};
  std::printf("\nbfloat16 time relative to float32 (< 1 is faster)\n");
  std::printf("%-36s", "shape");
  for (const Ratio& r : ratios) std::printf(" %14s", r.label);
  std::printf("\n");
  for (const auto& [shape, by_name] : times) {
    if (by_name.find("BM_F32Linear") == by_name.end()) continue;
    std::printf("%-36s", shape.c_str());
    for (const Ratio& r : ratios) {
      auto num = by_name.find(r.numerator), den = by_name.find(r.denominator);
      if (num == by_name.end() || den == by_name.end()) {
        std::printf(" %14s", "-");
      } else {
        std::printf(" %14.2f", num->second / den->second);
      }
    }
    std::printf("\n");
  }
}

// The base model's FFN shapes and its vocabulary projection.
void Int8Shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k"});
  for (int64_t m : {1, 8, 32, 64, 128, 512}) {
    for (auto [n, k] :
         {std::pair<int64_t, int64_t>{2048, 512}, {512, 2048}, {32000, 512}}) {
      b->Args({m, n, k});
    }
  }
  b->UseRealTime();
}

BENCHMARK(BM_LinearInt8)->Apply(Int8Shapes);
BENCHMARK(BM_Int8Kernel)->Apply(Int8Shapes);
BENCHMARK(BM_Int8Matmul)->Apply(Int8Shapes);

// Console output plus, at the end, each shape's times relative to the exact-M
// primitive.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With --benchmark_repetitions, the median stands for the shape (this
      // shared machine has outliers); without, the single run does.
      const bool median =
          run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type != Run::RT_Iteration && !median) continue;
      const std::string name = run.run_name.str();
      const size_t slash = name.find('/');
      double& slot = times_[name.substr(slash)][name.substr(0, slash)];
      if (median || slot == 0.0) slot = run.GetAdjustedRealTime();
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf(
        "\ntime relative to BM_RawMatmulAny (exact-M primitive, < 1 is "
        "faster)\n");
    std::printf("%-32s %9s %9s %9s %9s %9s\n", "shape", "RawPlain", "Linear",
                "Panels", "DotRows", "GeluTanh");
    for (const auto& [shape, by_name] : times_) {
      auto base = by_name.find("BM_RawMatmulAny");
      if (base == by_name.end()) continue;
      std::printf("%-32s", shape.c_str());
      for (const char* name :
           {"BM_RawMatmulPlain", "BM_Linear", "BM_PanelKernel",
            "BM_SmallBatchKernel", "BM_LinearGeluTanh"}) {
        auto it = by_name.find(name);
        if (it == by_name.end()) {
          std::printf(" %9s", "-");
        } else {
          std::printf(" %9.2f", it->second / base->second);
        }
      }
      std::printf("\n");
    }
    PrintBf16Ratios(times_);
    std::printf(
        "\nint8 speedup over float32 (float32 time / int8 time, > 1 is "
        "faster)\n");
    std::printf("%-32s %9s %9s %9s\n", "shape", "Linear", "Kernel", "Matmul");
    const std::pair<const char*, const char*> pairs[] = {
        {"BM_Linear", "BM_LinearInt8"},
        {"BM_PanelKernel", "BM_Int8Kernel"},
        {"BM_RawMatmulAny", "BM_Int8Matmul"}};
    for (const auto& [shape, by_name] : times_) {
      if (by_name.find("BM_LinearInt8") == by_name.end() &&
          by_name.find("BM_Int8Kernel") == by_name.end() &&
          by_name.find("BM_Int8Matmul") == by_name.end()) {
        continue;
      }
      std::printf("%-32s", shape.c_str());
      for (const auto& [fp32, int8] : pairs) {
        auto f = by_name.find(fp32), q = by_name.find(int8);
        if (f == by_name.end() || q == by_name.end()) {
          std::printf(" %9s", "-");
        } else {
          std::printf(" %9.2f", f->second / q->second);
        }
      }
      std::printf("\n");
    }
  }

 private:
  std::map<std::string, std::map<std::string, double>>
      times_;  // shape -> name -> time
};

}  // namespace
}  // namespace attnserve::engine

int main(int argc, char** argv) {
  // --threads=N is ours; the rest are Google Benchmark's.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      attnserve::engine::team_threads =
          std::max(1, std::atoi(arg.c_str() + 10));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  attnserve::engine::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
