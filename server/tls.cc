#include "server/tls.h"

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/format/small_file.h"
#include "grpcpp/security/server_credentials.h"

namespace attnserve::server {
namespace {

// A PEM file is a few kilobytes; a CA bundle a few hundred.
constexpr int64_t kMaxPemBytes = int64_t{16} << 20;

// The contents of `path`, which must hold a PEM block whose BEGIN line ends
// with `label` ("CERTIFICATE", "PRIVATE KEY": PKCS#8, RSA and EC keys all end
// so). gRPC would otherwise accept the bytes here and fail later, at listen
// time, with a message that names neither the flag nor the file. Read with
// engine::ReadSmallFile, so that a path naming a device or a FIFO fails at
// once instead of blocking startup.
absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    absl::string_view flag,
                                    absl::string_view label) {
  absl::StatusOr<std::string> pem = engine::ReadSmallFile(path, kMaxPemBytes);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", pem.status().message()));
  }
  if (!absl::StrContains(*pem, "-----BEGIN ") ||
      !absl::StrContains(*pem, absl::StrCat(label, "-----"))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", path, " holds no PEM ", label,
                     " (-----BEGIN ...", label, "-----)"));
  }
  return pem;
}

}  // namespace

const char* TlsModeName(const TlsFiles& files) {
  if (files.cert_file.empty()) return "plaintext";
  return files.client_ca_file.empty() ? "tls" : "mutual-tls";
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files) {
  if (files.cert_file.empty() != files.key_file.empty()) {
    return absl::InvalidArgumentError(
        files.cert_file.empty() ? "--tls_key needs --tls_cert (the server's "
                                  "certificate)"
                                : "--tls_cert needs --tls_key (its private "
                                  "key)");
  }
  if (files.cert_file.empty()) {
    if (!files.client_ca_file.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca (mutual TLS) needs --tls_cert and --tls_key");
    }
    return nullptr;
  }
  absl::StatusOr<std::string> cert =
      ReadPem(files.cert_file, "tls_cert", "CERTIFICATE");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPem(files.key_file, "tls_key", "PRIVATE KEY");
  if (!key.ok()) return key.status();

  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!files.client_ca_file.empty()) {
    absl::StatusOr<std::string> client_ca =
        ReadPem(files.client_ca_file, "tls_client_ca", "CERTIFICATE");
    if (!client_ca.ok()) return client_ca.status();
    options.pem_root_certs = *std::move(client_ca);
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  options.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  return grpc::SslServerCredentials(options);
}

}  // namespace attnserve::server
