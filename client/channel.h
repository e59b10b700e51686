#pragma once
// The client tools' connection to a server: channel creation (plaintext or
// TLS), the reachability check that separates "no server there" from "the
// server said no", and gRPC status names for messages and reports.

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace attnserve::client {

struct ChannelOptions {
  std::string address = "127.0.0.1:50051";  // host:port, any gRPC target
  // TLS is used when `tls` is set or any file below is given. The files are
  // PEM: the CA that signed the server's certificate (empty: the system roots),
  // and a client certificate + key for mutual TLS (both or neither).
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // The name the server's certificate must carry, when it is not the host of
  // `address` (e.g. connecting by IP to a certificate for a DNS name).
  // Implies TLS.
  std::string tls_server_name;
};

struct Connection {
  std::string address;  // as given, for messages
  std::shared_ptr<grpc::Channel> channel;
};

// Creates the channel (lazily connecting, as gRPC channels do). An unreadable
// TLS file or a certificate without its key is INVALID_ARGUMENT.
absl::StatusOr<Connection> Connect(const ChannelOptions& options);

// Waits until the channel is connected, for at most `timeout`. Returns
// UNAVAILABLE "cannot reach ADDRESS: why" at the first failed connection
// attempt (so a refused port fails at once), DEADLINE_EXCEEDED "cannot reach
// ADDRESS: no connection within TIMEOUT" when the timeout passes (a
// black-holed address). Calls made afterwards that fail are the server's
// answers, not connection problems.
absl::Status CheckReachable(const Connection& connection,
                            absl::Duration timeout);
// The tools wait for a connection for their call timeout, but at most this: a
// server that takes longer to accept a connection is as good as unreachable.
inline constexpr absl::Duration kMaxConnectTimeout = absl::Seconds(10);

// CheckReachable for a call with deadline `call_timeout` (the tools'
// --timeout): waits min(call_timeout, kMaxConnectTimeout). When the call's own
// timeout ran out first, the message says so and names --timeout ("no
// connection to ADDRESS within --timeout=1us: ..."): a deadline too short to
// connect in is the user's to lengthen, not a server that cannot be reached.
absl::Status CheckReachableForCall(const Connection& connection,
                                   absl::Duration call_timeout);

// "OK", "INVALID_ARGUMENT", ... (gRPC and Abseil share the numbering).
std::string StatusCodeName(grpc::StatusCode code);
// "INVALID_ARGUMENT: the message".
std::string FormatStatus(const grpc::Status& status);

}  // namespace attnserve::client
