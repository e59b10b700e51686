// Engine speed on a model directory (normally the random "base" model of
// scripts/make_random_model.py), printing ratios against baselines measured in
// the same run:
//   - encoder sequences/s at batch 1 and 32 (source length 64), against the
//   FLOP rate
//     oneDNN's own matmul primitive reaches on the encoder's matrix shapes;
//   - greedy tokens/s for 32 new tokens (source length 32) at batch 1 and 32,
//     and beam search (beam 4) at batch 32;
//   - the batch-1 decode step against the time to read the step's weights once
//   from memory;
//   - peak resident memory against the weight bytes (the model plus a batch-32
//     greedy decode), and the peak of a beam-4 batch-32 decode.
// Each thread count runs in a process of its own (forked before any model is
// loaded), so that each peak is its own and not the previous count's model.
// Usage: generator_benchmark --model_dir=DIR [--threads=1,2] [--json=FILE]
//   [--compute_type=float32|int8|bfloat16] [--float32_embeddings]
//   [--kv_cache_dtype=float32|bfloat16]
// (plus any --benchmark_* flag). The JSON's keys are the same for every compute
// type, which its top-level "compute_type" names (and "kv_cache_dtype" the
// caches' element type). scripts/benchmark_engine.sh
// adds PyTorch's figures.
//
// Benchmarks are not engine code: this one includes dnnl.hpp itself because its
// baseline is oneDNN's own matmul, deliberately not the engine's wrapper of it.

#include <benchmark/benchmark.h>
#include <omp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "dnnl.hpp"
#include "engine/decode/generator.h"
#include "engine/memory/allocation_policy.h"
#include "engine/network/transformer.h"
#include "engine/openmp_waiting.h"

namespace attnserve::engine {
namespace {

constexpr int kEncoderLength = 64;
constexpr int kDecodeSourceLength = 32;
constexpr int kNewTokens = 32;
constexpr int kBeam = 4;

// Median real time (seconds per iteration) of every benchmark, by name.
class MedianCollector : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        // GetAdjustedRealTime is in the run's display unit; convert to seconds.
        medians_[run.run_name.function_name] =
            run.GetAdjustedRealTime() /
            benchmark::GetTimeUnitMultiplier(run.time_unit);
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
  double median(const std::string& name) const {
    auto it = medians_.find(name);
    return it == medians_.end() ? 0 : it->second;
  }

 private:
  std::map<std::string, double> medians_;
};

std::vector<int32_t> RandomIds(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> id(3, vocab - 1);
  std::vector<int32_t> out(n);
  for (auto& t : out) t = id(rng);
  return out;
}

// Restarts VmHWM at the current resident size, so the next PeakRssBytes is
// the peak of what follows.
void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

long PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6) * 1024;
  }
  return 0;
}

// oneDNN's own matmul on the encoder's four matrix shapes (M = batch * 64
// rows), run as many times as the encoder runs them: the rate an encoder built
// on oneDNN could reach.
class MatmulBaseline {
 public:
  MatmulBaseline(const ModelConfig& c, int64_t m)
      : engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    const int64_t d = c.d_model, f = c.ffn_dim;
    for (auto [n, k] : {std::pair{3 * d, d}, {d, d}, {f, d}, {d, f}})
      Add(m, n, k);
    layers_ = c.encoder_layers;
  }
  void Run() {
    for (int l = 0; l < layers_; ++l) {
      for (Problem& p : problems_) {
        p.primitive.execute(stream_, {{DNNL_ARG_SRC, p.src},
                                      {DNNL_ARG_WEIGHTS, p.weights},
                                      {DNNL_ARG_BIAS, p.bias},
                                      {DNNL_ARG_DST, p.dst}});
      }
    }
    stream_.wait();
  }
  double flops() const {
    double total = 0;
    for (const Problem& p : problems_) total += p.flops;
    return total * layers_;
  }

 private:
  struct Problem {
    dnnl::matmul primitive;
    dnnl::memory src, weights, bias, dst;
    double flops;
  };
  void Add(int64_t m, int64_t n, int64_t k) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    dnnl::memory::desc src({m, k}, dt::f32, tag::ab),
        wany({k, n}, dt::f32, tag::any), bias({1, n}, dt::f32, tag::ab),
        dst({m, n}, dt::f32, tag::ab);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wany, bias, dst),
                                    engine_);
    Problem p{dnnl::matmul(pd),
              dnnl::memory(src, engine_),
              dnnl::memory(pd.weights_desc(), engine_),
              dnnl::memory(bias, engine_),
              dnnl::memory(dst, engine_),
              2.0 * m * n * k};
    for (auto* mem : {&p.src, &p.weights, &p.bias}) {
      std::fill_n(static_cast<float*>(mem->get_data_handle()),
                  mem->get_desc().get_size() / sizeof(float), 0.01f);
    }
    problems_.push_back(std::move(p));
  }
  dnnl::engine engine_;
  dnnl::stream stream_;
  std::vector<Problem> problems_;
  int layers_ = 0;
};

std::vector<std::vector<int32_t>> DecodeSources(const ModelConfig& c,
                                                int batch) {
  std::vector<std::vector<int32_t>> sources;
  for (int b = 0; b < batch; ++b)
    sources.push_back(RandomIds(kDecodeSourceLength, c.vocab_size, 100 + b));
  return sources;
}

DecodeOptions DecodeOptionsFor(int beam) {
  DecodeOptions o;
  o.max_new_tokens = kNewTokens;
  o.beam_size = beam;
  o.ignore_eos = true;
  return o;
}

struct Figures {
  double encoder_seconds[2] = {};  // batch 1, 32 (per call)
  double matmul_seconds[2] = {};
  double matmul_flops[2] = {};
  double greedy_seconds[2] = {};  // whole 32-token decode
  double step_seconds = 0;        // one batch-1 decode step
  double read_seconds = 0;        // reading the step's weights once
  double step_weight_bytes = 0;
};

void RegisterAll(const Model& model, int threads, Figures* f,
                 std::vector<std::unique_ptr<MatmulBaseline>>* baselines) {
  const ModelConfig& c = model.config();
  const std::string t = "/threads:" + std::to_string(threads);
  static constexpr int kBatches[2] = {1, 32};
  for (int i = 0; i < 2; ++i) {
    const int batch = kBatches[i];
    benchmark::RegisterBenchmark(
        ("Encoder/batch:" + std::to_string(batch) + t).c_str(),
        [&model, batch, c](benchmark::State& state) {
          TransformerScratch scratch;
          const auto ids = RandomIds(batch * kEncoderLength, c.vocab_size, 1);
          std::vector<int32_t> lengths(batch, kEncoderLength);
          for (auto _ : state) {
            auto s = model.network().Encode(model.context(), ids, batch,
                                            kEncoderLength, lengths, &scratch);
            if (!s.ok()) state.SkipWithError(s.ToString().c_str());
          }
          state.SetItemsProcessed(state.iterations() * batch);
        })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    baselines->push_back(
        std::make_unique<MatmulBaseline>(c, int64_t{batch} * kEncoderLength));
    MatmulBaseline* baseline = baselines->back().get();
    f->matmul_flops[i] = baseline->flops();
    benchmark::RegisterBenchmark(
        ("OneDnnMatmulOnEncoderShapes/batch:" + std::to_string(batch) + t)
            .c_str(),
        [baseline, threads](benchmark::State& state) {
          omp_set_num_threads(threads);
          for (auto _ : state) baseline->Run();
          state.counters["GFLOP/s"] =
              benchmark::Counter(baseline->flops() * state.iterations() / 1e9,
                                 benchmark::Counter::kIsRate);
        })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(
        ("Greedy32/batch:" + std::to_string(batch) + t).c_str(),
        [&model, batch, c](benchmark::State& state) {
          const auto sources = DecodeSources(c, batch);
          const DecodeOptions o = DecodeOptionsFor(1);
          for (auto _ : state) {
            auto r = GenerateBatch(model, sources, o);
            if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
          }
          state.counters["tokens/s"] = benchmark::Counter(
              double(batch) * kNewTokens * state.iterations(),
              benchmark::Counter::kIsRate);
        })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
  }
  // Beam search at batch 32: 128 decoder rows, whose caches children take
  // over from their parents at every step.
  benchmark::RegisterBenchmark(
      ("Beam4x32/batch:32" + t).c_str(),
      [&model, c](benchmark::State& state) {
        const auto sources = DecodeSources(c, 32);
        const DecodeOptions o = DecodeOptionsFor(kBeam);
        for (auto _ : state) {
          auto r = GenerateBatch(model, sources, o);
          if (!r.ok()) state.SkipWithError(r.status().ToString().c_str());
        }
        state.counters["tokens/s"] =
            benchmark::Counter(32.0 * kNewTokens * state.iterations(),
                               benchmark::Counter::kIsRate);
      })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(
      ("DecodeStep/batch:1" + t).c_str(),
      [&model, c](benchmark::State& state) {
        auto generator = Generator::Create(&model).value();
        SequenceInput in;
        in.source = RandomIds(kDecodeSourceLength, c.vocab_size, 7);
        in.options.max_new_tokens = c.max_positions;
        in.options.ignore_eos = true;
        if (!generator->Add({in}).ok()) state.SkipWithError("Add failed");
        int steps = 0;
        for (auto _ : state) {
          // Restart before the cache grows far past the 32-token decodes
          // measured above.
          if (++steps % 48 == 0) {
            state.PauseTiming();
            generator->Cancel(0);
            (void)generator->Add({in});
            state.ResumeTiming();
          }
          auto events = generator->Step();
          if (!events.ok())
            state.SkipWithError(events.status().ToString().c_str());
        }
      })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);

  // What a batch-1 step must read: the decoder's weights without the
  // cross-attention K/V projections (they run once per source), plus the output
  // projection, in the bytes of their compute types.
  const double d = c.d_model, ffn = c.ffn_dim;
  const Precision& precision = model.options().precision;
  f->step_weight_bytes =
      ComputeTypeBytes(precision.compute_type) * c.decoder_layers *
          (6 * d * d + 2 * d * ffn) +
      ComputeTypeBytes(precision.embeddings()) * double(c.vocab_size) * d;
  benchmark::RegisterBenchmark(
      ("ReadStepWeightsOnce" + t).c_str(),
      [f, threads](benchmark::State& state) {
        const size_t n =
            static_cast<size_t>(f->step_weight_bytes / sizeof(float));
        // A Tensor, as the weights are: the same pages (huge ones, see
        // tensor.cc).
        Tensor buffer({static_cast<int64_t>(n)}, Tensor::kWeights);
        std::fill(buffer.data(), buffer.data() + n, 1.0f);
        double sink = 0;
        for (auto _ : state) {
          // 64 independent partial sums (eight 8-wide vectors) per thread, so
          // that memory, not the latency of dependent adds, is the limit.
          float sum = 0;
          const size_t blocks = n / 64;
#pragma omp parallel num_threads(threads) reduction(+ : sum)
          {
            float partial[64] = {};
#pragma omp for schedule(static)
            for (size_t b = 0; b < blocks; ++b) {
              const float* p = buffer.data() + b * 64;
#pragma omp simd
              for (int j = 0; j < 64; ++j) partial[j] += p[j];
            }
            for (float v : partial) sum += v;
          }
          sink += sum;
        }
        benchmark::DoNotOptimize(sink);
        state.SetBytesProcessed(state.iterations() * n * sizeof(float));
      })
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

std::vector<int> ParseThreads(const std::string& list) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    int t = 0;
    if (absl::SimpleAtoi(part, &t) && t > 0) out.push_back(t);
  }
  return out;
}

// One thread count's benchmarks and figures; returns its JSON entries (empty
// on error).
std::string RunThreadCount(const std::string& model_dir, int threads,
                           const Precision& precision, double file_bytes) {
  ModelOptions options;
  options.threads = threads;
  options.precision = precision;
  auto loaded = Model::Load(model_dir, options);
  if (!loaded.ok()) {
    std::fprintf(stderr, "cannot load %s: %s\n", model_dir.c_str(),
                 loaded.status().ToString().c_str());
    return "";
  }
  std::unique_ptr<Model> model = std::move(loaded).value();
  // Peak memory of serving: the model plus a batch-32 decode, before the
  // benchmarks' own buffers exist.
  {
    std::vector<std::vector<int32_t>> sources(
        32, RandomIds(kDecodeSourceLength, model->config().vocab_size, 3));
    (void)GenerateBatch(*model, sources, DecodeOptionsFor(1));
  }
  const double peak_rss = PeakRssBytes();
  // The same for beam search: the model plus a beam-4 batch-32 decode.
  ResetPeakRss();
  (void)GenerateBatch(*model, DecodeSources(model->config(), 32),
                      DecodeOptionsFor(kBeam));
  const double peak_rss_beam = PeakRssBytes();

  Figures f;
  std::vector<std::unique_ptr<MatmulBaseline>> baselines;
  RegisterAll(*model, threads, &f, &baselines);
  MedianCollector reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::ClearRegisteredBenchmarks();

  const std::string t = "/threads:" + std::to_string(threads);
  std::printf("\n== %d thread(s), model %s, %s ==\n", threads,
              model->name().c_str(), OpenMpWaitingDescription().c_str());
  std::string entries;
  for (int i = 0; i < 2; ++i) {
    const int batch = i == 0 ? 1 : 32;
    const std::string b = "/batch:" + std::to_string(batch) + t;
    const double enc = reporter.median("Encoder" + b);
    const double mm = reporter.median("OneDnnMatmulOnEncoderShapes" + b);
    const double greedy = reporter.median("Greedy32" + b);
    const double enc_rate = enc > 0 ? batch / enc : 0;
    const double tok_rate = greedy > 0 ? batch * kNewTokens / greedy : 0;
    // Same matrix products in both: the ratio of times is the ratio of FLOP
    // rates.
    const double flop_ratio = enc > 0 ? mm / enc : 0;
    std::printf(
        "batch %2d: encoder %8.1f seq/s  (%.1f GFLOP/s in matmuls; oneDNN "
        "matmul alone"
        " %.1f GFLOP/s; ratio %.2f, target >= 0.85)\n",
        batch, enc_rate, f.matmul_flops[i] / enc / 1e9,
        f.matmul_flops[i] / mm / 1e9, flop_ratio);
    std::printf(
        "batch %2d: greedy  %8.1f tokens/s (32 new tokens, source length "
        "32)\n",
        batch, tok_rate);
    entries += "\"encoder_seq_per_s_b" + std::to_string(batch) +
               "\":" + std::to_string(enc_rate) + ",\"encoder_vs_matmul_b" +
               std::to_string(batch) + "\":" + std::to_string(flop_ratio) +
               ",\"greedy_tokens_per_s_b" + std::to_string(batch) +
               "\":" + std::to_string(tok_rate) + ",";
  }
  const double beam = reporter.median("Beam4x32/batch:32" + t);
  const double beam_rate = beam > 0 ? 32.0 * kNewTokens / beam : 0;
  std::printf(
      "batch 32: beam 4  %8.1f tokens/s (32 new tokens each, source length "
      "32); peak resident memory %.0f MB\n",
      beam_rate, peak_rss_beam / 1e6);
  entries +=
      "\"beam4_tokens_per_s_b32\":" + std::to_string(beam_rate) +
      ",\"peak_rss_beam4_b32_mb\":" + std::to_string(peak_rss_beam / 1e6) + ",";
  const double step = reporter.median("DecodeStep/batch:1" + t);
  const double read = reporter.median("ReadStepWeightsOnce" + t);
  std::printf(
      "batch 1 decode step %.2f ms; reading its %.0f MB of weights once %.2f "
      "ms;"
      " ratio %.2f (target <= 1.5)\n",
      step * 1e3, f.step_weight_bytes / 1e6, read * 1e3,
      read > 0 ? step / read : 0);
  std::printf(
      "peak resident memory %.0f MB; weights %.0f MB; ratio %.2f (target <= "
      "1.3)\n",
      peak_rss / 1e6, file_bytes / 1e6,
      file_bytes > 0 ? peak_rss / file_bytes : 0);
  entries += "\"step_vs_read\":" + std::to_string(read > 0 ? step / read : 0) +
             ",\"peak_rss_vs_weights\":" +
             std::to_string(file_bytes > 0 ? peak_rss / file_bytes : 0) +
             ",\"peak_rss_mb\":" + std::to_string(peak_rss / 1e6);
  return entries;
}

int Main(int argc, char** argv) {
  // The server's OpenMP waiting and allocation policy, so that step times and
  // peak memory are what serving sees.
  UseServingOpenMpWaiting(argv);
  UseServingAllocationPolicy();
  std::string model_dir, json_path, threads_list = "1,2";
  Precision precision;
  std::vector<char*> rest = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--model_dir=", 0) == 0) {
      model_dir = a.substr(12);
    } else if (a.rfind("--compute_type=", 0) == 0) {
      absl::StatusOr<ComputeType> type = ParseComputeType(a.substr(15));
      if (!type.ok()) {
        std::fprintf(stderr, "--compute_type: %s\n",
                     std::string(type.status().message()).c_str());
        return 2;
      }
      precision.compute_type = *type;
    } else if (a == "--float32_embeddings") {
      precision.float32_embeddings = true;
    } else if (a.rfind("--kv_cache_dtype=", 0) == 0) {
      absl::StatusOr<ComputeType> type = ParseComputeType(a.substr(17));
      if (type.ok() && *type == ComputeType::kInt8) {
        type =
            absl::InvalidArgumentError("must be float32 or bfloat16, got int8");
      }
      if (!type.ok()) {
        std::fprintf(stderr, "--kv_cache_dtype: %s\n",
                     std::string(type.status().message()).c_str());
        return 2;
      }
      precision.kv_cache = *type;
    } else if (a.rfind("--threads=", 0) == 0)
      threads_list = a.substr(10);
    else if (a.rfind("--json=", 0) == 0)
      json_path = a.substr(7);
    else
      rest.push_back(argv[i]);
  }
  std::printf("compute type %s%s, kv cache %s\n",
              ComputeTypeName(precision.compute_type),
              precision.float32_embeddings ? " (float32 embeddings)" : "",
              ComputeTypeName(precision.kv_cache));
  if (model_dir.empty()) {
    std::fprintf(stderr,
                 "usage: %s --model_dir=DIR [--threads=1,2] [--json=FILE] "
                 "[--compute_type=float32|int8|bfloat16] "
                 "[--float32_embeddings] "
                 "[--kv_cache_dtype=float32|bfloat16]\n",
                 argv[0]);
    return 2;
  }
  // Repetitions give medians, which the shared, noisy machines need.
  std::string reps = "--benchmark_repetitions=5";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  std::string min_time = "--benchmark_min_time=0.3";
  rest.insert(rest.begin() + 1,
              {reps.data(), aggregates.data(), min_time.data()});
  int bargc = static_cast<int>(rest.size());
  benchmark::Initialize(&bargc, rest.data());

  struct stat st;
  const std::string weights_file = model_dir + "/model.safetensors";
  const double file_bytes =
      stat(weights_file.c_str(), &st) == 0 ? st.st_size : 0;

  std::string json =
      std::string("{\"compute_type\":\"") +
      ComputeTypeName(precision.compute_type) + "\",\"float32_embeddings\":" +
      (precision.float32_embeddings ? "true" : "false") +
      ",\"kv_cache_dtype\":\"" + ComputeTypeName(precision.kv_cache) + "\"";
  for (int threads : ParseThreads(threads_list)) {
    // A child process per thread count: its peak resident memory is its own.
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return 1;
    std::fflush(stdout);
    const pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
      close(pipe_fds[0]);
      ResetPeakRss();
      const std::string entries =
          RunThreadCount(model_dir, threads, precision, file_bytes);
      const bool ok = !entries.empty() &&
                      write(pipe_fds[1], entries.data(), entries.size()) ==
                          static_cast<ssize_t>(entries.size());
      std::fflush(stdout);
      _exit(ok ? 0 : 1);
    }
    close(pipe_fds[1]);
    std::string entries;
    char buffer[4096];
    for (ssize_t n; (n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;)
      entries.append(buffer, n);
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    json += ",\"threads_" + std::to_string(threads) + "\":{" + entries + "}";
  }
  json += "}";
  if (!json_path.empty()) std::ofstream(json_path) << json << "\n";
  return 0;
}

}  // namespace
}  // namespace attnserve::engine

int main(int argc, char** argv) { return attnserve::engine::Main(argc, argv); }
