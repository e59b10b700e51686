#pragma once
// The server's Prometheus metrics: every family is declared here (the .cc),
// fed through ServerObserver, and served as text on /metrics by
// prometheus-cpp's pull exposer. docs/metrics.md lists each metric, its labels
// and buckets.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/batch_engine.h"
#include "server/metrics.h"
#include "server/process_metrics.h"

namespace attnserve::server {

// Thread-safe, like every ServerObserver. An observer call is a few counter,
// gauge or histogram updates (prometheus-cpp's histograms take a short lock of
// their own); OnCallDone also looks its {method,code} series up under
// series_mu_.
class PrometheusMetrics final : public ServerObserver {
 public:
  // `model` fills attnserve_model_info's labels; `max_queue_size` is
  // attnserve_queue_capacity, what attnserve_queue_depth is compared with.
  PrometheusMetrics(const ModelInfo& model, int max_queue_size);
  ~PrometheusMetrics() override;

  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  // Serves Collect() in the Prometheus text format on
  // http://address:port/metrics (civetweb threads) until destroyed. `address`
  // is an IPv4 or IPv6 address ("0.0.0.0", "127.0.0.1", "::"); port 0 picks a
  // free port. Returns the port, or UNAVAILABLE when it cannot listen. Once.
  absl::StatusOr<int> Serve(const std::string& address, int port);

  // Everything a scrape returns, the process metrics included (tests read the
  // recorded values here, without HTTP).
  std::vector<prometheus::MetricFamily> Collect() const;

  // ServerObserver.
  void OnCallDone(Method method, absl::StatusCode code,
                  absl::Duration duration) override;
  void OnRejected(absl::StatusCode code) override;
  void OnCallCancelled() override {}  // counted when answered (OnFinished)
  void OnLoad(int queued, int running) override;
  void OnAdmitted(absl::Duration queue_time) override;
  void OnEncode(int sequences, int tokens, absl::Duration duration) override;
  void OnStep(int batch_size, absl::Duration duration) override;
  void OnTokens(int count, bool first, absl::Duration latency) override;
  void OnFinished(absl::StatusCode code, const RequestStats& stats) override;

 private:
  // One call outcome's series; the registry owns them.
  struct CallSeries {
    prometheus::Counter* requests = nullptr;
    prometheus::Histogram* duration = nullptr;
  };
  // Made on first use.
  CallSeries SeriesOf(Method method, absl::StatusCode code);
  void Reject(absl::StatusCode code, bool queued);

  // Shared with the exposer, which holds them weakly.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<ProcessCollector> process_;

  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_duration_;
  prometheus::Histogram& queue_duration_;
  prometheus::Histogram& time_to_first_token_;
  prometheus::Histogram& inter_token_latency_;
  prometheus::Histogram& encode_duration_;
  prometheus::Histogram& decode_step_duration_;
  prometheus::Histogram& batch_size_;
  prometheus::Histogram& request_input_tokens_;
  prometheus::Histogram& request_generated_tokens_;
  prometheus::Counter& input_tokens_;
  prometheus::Counter& generated_tokens_;
  // Indexed by RejectReason (kAllRejectReasons is in the enum's order).
  std::vector<prometheus::Counter*> rejected_;
  prometheus::Gauge& queue_depth_;
  prometheus::Gauge& active_sequences_;

  absl::Mutex series_mu_;
  absl::flat_hash_map<std::pair<Method, absl::StatusCode>, CallSeries> series_
      ABSL_GUARDED_BY(series_mu_);

  // Last: stops serving before the metrics it reads are destroyed.
  std::unique_ptr<prometheus::Exposer> exposer_;
};

}  // namespace attnserve::server
