#pragma once
// Just enough HTTP for tests on loopback (the metrics endpoint, Prometheus's
// API): one GET over a plain socket, HTTP/1.0 so the server closes the
// connection after the body and sends no chunked encoding.

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace attnserve::server::testing {

struct HttpResponse {
  int status = 0;  // 200, 404, ...
  std::string body;
};

// GET http://127.0.0.1:port/target. An error when nothing listens or the
// answer is not HTTP.
absl::StatusOr<HttpResponse> HttpGet(
    int port, const std::string& target,
    absl::Duration timeout = absl::Seconds(10));
// The same at another IPv4 address (e.g. 127.0.0.2, also loopback on Linux).
absl::StatusOr<HttpResponse> HttpGet(const std::string& ipv4, int port,
                                     const std::string& target,
                                     absl::Duration timeout);

// The value of one series in the Prometheus exposition at
// http://127.0.0.1:port/metrics, named as it appears there (e.g.
// `attnserve_queue_depth`,
// `attnserve_rejected_requests_total{reason="cancelled"}`). NOT_FOUND when the
// exposition has no such line.
absl::StatusOr<double> ScrapeValue(int port, const std::string& series);

// Percent-encodes everything but RFC 3986's unreserved characters, for query
// parameters (PromQL has spaces, braces, quotes, brackets).
std::string UrlEncode(const std::string& text);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then
// released), for programs that must be told their port.
int FreeLoopbackPort();

}  // namespace attnserve::server::testing
