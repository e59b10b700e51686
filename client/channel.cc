#include "client/channel.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "engine/format/small_file.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace attnserve::client {
namespace {

// PEM files are a few KB; the bound (and ReadSmallFile's regular-files-only
// rule) makes a path naming /dev/zero, a FIFO or a huge file fail at once.
constexpr int64_t kMaxPemBytes = 1 << 20;

absl::StatusOr<std::string> ReadPemFile(const std::string& path,
                                        absl::string_view flag) {
  absl::StatusOr<std::string> pem = engine::ReadSmallFile(path, kMaxPemBytes);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", pem.status().message()));
  }
  if (pem->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " is empty"));
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const ChannelOptions& options) {
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_cert and --tls_key go together (mutual TLS)");
  }
  if (!options.tls && options.tls_ca_file.empty() &&
      options.tls_cert_file.empty() && options.tls_server_name.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile(options.tls_ca_file, "tls_ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPemFile(options.tls_cert_file, "tls_cert");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key =
        ReadPemFile(options.tls_key_file, "tls_key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::StatusOr<Connection> Connect(const ChannelOptions& options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("--addr is empty");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      Credentials(options);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments arguments;
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  return Connection{
      options.address,
      grpc::CreateCustomChannel(options.address, *credentials, arguments)};
}

absl::Status CheckReachable(const Connection& connection,
                            absl::Duration timeout) {
  grpc::Channel& channel = *connection.channel;
  const absl::Time deadline = absl::Now() + timeout;
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  // WaitForConnected would keep retrying a refused port until the deadline;
  // stopping at the first TRANSIENT_FAILURE reports it at once.
  while (state != GRPC_CHANNEL_READY &&
         state != GRPC_CHANNEL_TRANSIENT_FAILURE &&
         state != GRPC_CHANNEL_SHUTDOWN) {
    if (!channel.WaitForStateChange(state, absl::ToChronoTime(deadline))) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cannot reach ", connection.address, ": no connection within ",
          absl::FormatDuration(timeout)));
    }
    state = channel.GetState(/*try_to_connect=*/true);
  }
  if (state == GRPC_CHANNEL_READY) return absl::OkStatus();
  // gRPC's C++ API does not expose why the connection failed; a fail-fast call
  // on a channel in TRANSIENT_FAILURE fails at once with that reason (e.g.
  // "Connection refused", "DNS resolution failed"). Any method will do.
  grpc::health::v1::Health::Stub stub(connection.channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub.Check(&context, request, &response);
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
      status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::OkStatus();  // it connected in the meantime
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot reach ", connection.address, ": ", status.error_message()));
}

absl::Status CheckReachableForCall(const Connection& connection,
                                   absl::Duration call_timeout) {
  const absl::Duration wait = std::min(call_timeout, kMaxConnectTimeout);
  const absl::Time start = absl::Now();
  absl::Status status = CheckReachable(connection, wait);
  // A connection that came up only after the whole timeout (gRPC may report a
  // state change that happened before the deadline after it) leaves the call
  // no time either: the same deadline, the same message.
  const bool too_late = status.ok() && absl::Now() - start >= call_timeout;
  if (!too_late &&
      (!absl::IsDeadlineExceeded(status) || wait != call_timeout)) {
    return status;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "no connection to ", connection.address,
      " within --timeout=", absl::FormatDuration(call_timeout),
      ": the call's deadline ran out while connecting (a connection takes "
      "milliseconds; give a longer --timeout, or leave it unset)"));
}

std::string StatusCodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string FormatStatus(const grpc::Status& status) {
  return absl::StrCat(StatusCodeName(status.error_code()), ": ",
                      status.error_message());
}

}  // namespace attnserve::client
