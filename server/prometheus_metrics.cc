#include "server/prometheus_metrics.h"

#include <exception>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace attnserve::server {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Registry;

// Seconds, 1-2-5 per decade from 100 µs (a fast decode step of a small model)
// to 20 s, then 60 s (a long generation on a loaded server). Written out, not
// computed: repeated float products would print as 0.0010000000000000002.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* const kBuckets = new Histogram::BucketBoundaries{
      0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
      0.1,    0.2,    0.5,    1,     2,     5,     10,   20,   60};
  return *kBuckets;
}

// Powers of two from 1 to `max` (a power of two), for counts.
Histogram::BucketBoundaries PowersOfTwo(int max) {
  Histogram::BucketBoundaries buckets;
  for (int bound = 1; bound <= max; bound *= 2) buckets.push_back(bound);
  return buckets;
}

Histogram& NewHistogram(Registry& registry, const std::string& name,
                        const std::string& help,
                        const Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({}, buckets);
}

Counter& NewCounter(Registry& registry, const std::string& name,
                    const std::string& help) {
  return prometheus::BuildCounter()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({});
}

Gauge& NewGauge(Registry& registry, const std::string& name,
                const std::string& help,
                const prometheus::Labels& labels = {}) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(
      labels);
}

prometheus::Labels ModelLabels(const ModelInfo& model) {
  const engine::ModelConfig& config = model.config;
  return {
      {"model", model.name},
      // How the directory was read: "attnserve" or "hf-<family>".
      {"layout", model.layout},
      // "float32", "int8", "bfloat16" (+ " (float32 embeddings)").
      {"compute_type", model.compute_type},
      {"d_model", absl::StrCat(config.d_model)},
      {"num_heads", absl::StrCat(config.num_heads)},
      // "encoder+decoder", as people write it ("6+6").
      {"layers",
       absl::StrCat(config.encoder_layers, "+", config.decoder_layers)},
      {"ffn_dim", absl::StrCat(config.ffn_dim)},
      {"vocab_size", absl::StrCat(config.vocab_size)},
      {"max_positions", absl::StrCat(config.max_positions)},
      {"activation", engine::ActivationName(config.activation)},
      {"norm_placement", engine::NormPlacementName(config.norm_placement)},
  };
}

}  // namespace

PrometheusMetrics::PrometheusMetrics(const ModelInfo& model, int max_queue_size)
    : registry_(std::make_shared<Registry>()),
      process_(std::make_shared<ProcessCollector>()),
      requests_(
          prometheus::BuildCounter()
              .Name("attnserve_requests_total")
              .Help("RPCs answered, by protocol, method and gRPC status code "
                    "(ModelStreamInfer: requests on its streams).")
              .Register(*registry_)),
      request_duration_(
          prometheus::BuildHistogram()
              .Name("attnserve_request_duration_seconds")
              .Help("Time from an RPC reaching the service to its answer, by "
                    "protocol, method and gRPC status code.")
              .Register(*registry_)),
      queue_duration_(NewHistogram(
          *registry_, "attnserve_queue_duration_seconds",
          "Time a request waited in the queue: accepted -> admitted into the "
          "running batch (Timing.queue_us).",
          LatencyBuckets())),
      time_to_first_token_(NewHistogram(
          *registry_, "attnserve_time_to_first_token_seconds",
          "Time from a request's acceptance to the engine producing its first "
          "tokens.",
          LatencyBuckets())),
      inter_token_latency_(NewHistogram(
          *registry_, "attnserve_inter_token_latency_seconds",
          "Time between successive tokens of one request (after the first).",
          LatencyBuckets())),
      encode_duration_(NewHistogram(
          *registry_, "attnserve_encode_duration_seconds",
          "Time of one encoder call over the sources admitted together.",
          LatencyBuckets())),
      decode_step_duration_(NewHistogram(
          *registry_, "attnserve_decode_step_duration_seconds",
          "Time of one decode step over the running batch.", LatencyBuckets())),
      batch_size_(NewHistogram(*registry_, "attnserve_batch_size",
                               "Active sequences (requests) per decode step.",
                               PowersOfTwo(512))),
      request_input_tokens_(NewHistogram(
          *registry_, "attnserve_request_input_tokens",
          "Source tokens per accepted request.", PowersOfTwo(16384))),
      request_generated_tokens_(
          NewHistogram(*registry_, "attnserve_request_generated_tokens",
                       "Tokens generated per accepted request, when answered.",
                       PowersOfTwo(16384))),
      input_tokens_(NewCounter(*registry_, "attnserve_input_tokens_total",
                               "Source tokens encoded.")),
      generated_tokens_(NewCounter(*registry_,
                                   "attnserve_generated_tokens_total",
                                   "Tokens generated by decode steps.")),
      queue_depth_(NewGauge(*registry_, "attnserve_queue_depth",
                            "Requests waiting for admission.")),
      active_sequences_(
          NewGauge(*registry_, "attnserve_active_sequences",
                   "Requests admitted into the running batch and not yet "
                   "answered.")) {
  auto& rejected = prometheus::BuildCounter()
                       .Name("attnserve_rejected_requests_total")
                       .Help(
                           "Requests answered without being served, by "
                           "reason.")
                       .Register(*registry_);
  // Every reason from the start, so that rate() sees the first rejection.
  for (RejectReason reason : kAllRejectReasons) {
    rejected_.push_back(&rejected.Add({{"reason", RejectReasonName(reason)}}));
  }
  for (Method method : kAllMethods) SeriesOf(method, absl::StatusCode::kOk);
  NewGauge(*registry_, "attnserve_queue_capacity",
           "Most requests that may wait for admission (--max_queue_size).")
      .Set(max_queue_size);
  NewGauge(*registry_, "attnserve_model_info",
           "The model being served, in the labels; always 1.",
           ModelLabels(model))
      .Set(1);
}

PrometheusMetrics::~PrometheusMetrics() = default;

absl::StatusOr<int> PrometheusMetrics::Serve(const std::string& address,
                                             int port) {
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("the metrics are already served");
  }
  // civetweb's listening_ports syntax: IPv6 addresses in brackets.
  const std::string host = absl::StrContains(address, ':')
                               ? absl::StrCat("[", address, "]")
                               : address;
  const std::string bind = absl::StrCat(host, ":", port);
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", bind, " (address in use?): ", e.what()));
  }
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(process_);
  const std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) {
    exposer_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", bind));
  }
  return ports.front();
}

std::vector<prometheus::MetricFamily> PrometheusMetrics::Collect() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  for (prometheus::MetricFamily& family : process_->Collect()) {
    families.push_back(std::move(family));
  }
  return families;
}

PrometheusMetrics::CallSeries PrometheusMetrics::SeriesOf(
    Method method, absl::StatusCode code) {
  absl::MutexLock lock(&series_mu_);
  auto [it, inserted] = series_.try_emplace({method, code});
  if (inserted) {
    // Made on first use: most {method,code} pairs never happen, and each
    // histogram is 20 series.
    const prometheus::Labels labels = {
        {"method", MethodName(method)},
        {"code", absl::StatusCodeToString(code)},
        {"protocol", ProtocolName(ProtocolOf(method))}};
    it->second = {&requests_.Add(labels),
                  &request_duration_.Add(labels, LatencyBuckets())};
  }
  return it->second;
}

void PrometheusMetrics::Reject(absl::StatusCode code, bool queued) {
  if (const std::optional<RejectReason> reason = RejectReasonOf(code, queued)) {
    rejected_[static_cast<int>(*reason)]->Increment();
  }
}

void PrometheusMetrics::OnCallDone(Method method, absl::StatusCode code,
                                   absl::Duration duration) {
  const CallSeries series = SeriesOf(method, code);
  series.requests->Increment();
  series.duration->Observe(absl::ToDoubleSeconds(duration));
}

void PrometheusMetrics::OnRejected(absl::StatusCode code) {
  Reject(code, /*queued=*/false);
}

void PrometheusMetrics::OnLoad(int queued, int running) {
  queue_depth_.Set(queued);
  active_sequences_.Set(running);
}

void PrometheusMetrics::OnAdmitted(absl::Duration queue_time) {
  queue_duration_.Observe(absl::ToDoubleSeconds(queue_time));
}

void PrometheusMetrics::OnEncode(int sequences, int tokens,
                                 absl::Duration duration) {
  encode_duration_.Observe(absl::ToDoubleSeconds(duration));
  input_tokens_.Increment(tokens);
}

void PrometheusMetrics::OnStep(int batch_size, absl::Duration duration) {
  decode_step_duration_.Observe(absl::ToDoubleSeconds(duration));
  batch_size_.Observe(batch_size);
}

void PrometheusMetrics::OnTokens(int count, bool first,
                                 absl::Duration latency) {
  (first ? time_to_first_token_ : inter_token_latency_)
      .Observe(absl::ToDoubleSeconds(latency));
  generated_tokens_.Increment(count);
}

void PrometheusMetrics::OnFinished(absl::StatusCode code,
                                   const RequestStats& stats) {
  Reject(code, /*queued=*/true);
  request_input_tokens_.Observe(stats.input_tokens);
  request_generated_tokens_.Observe(stats.generated_tokens);
}

}  // namespace attnserve::server
