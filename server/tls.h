#pragma once
// TLS for the gRPC port: the PEM files named by --tls_cert, --tls_key and
// --tls_client_ca turned into gRPC server credentials, with errors that name
// the flag and the file at fault, so that a bad setup stops startup with one
// clear line instead of gRPC's own log and a failed listen.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace attnserve::server {

struct TlsFiles {
  // PEM certificate chain of the server (leaf first) and its private key: both
  // or neither. Neither: the port speaks plaintext.
  std::string cert_file;
  std::string key_file;
  // PEM CA certificates that client certificates must chain to. Set: mutual
  // TLS, a client without a certificate signed by one of them is refused
  // during the handshake. Needs cert_file and key_file.
  std::string client_ca_file;
};

// "plaintext", "tls" or "mutual-tls" (for the startup line).
const char* TlsModeName(const TlsFiles& files);

// Reads the files and makes the credentials: null (plaintext, as
// ServerOptions::credentials takes it) when no file is named. INVALID_ARGUMENT
// naming the flag (and file) when only one of cert/key is given, a client CA
// comes without them, a file cannot be read or holds no PEM block of the
// expected kind. Whether the key belongs to the certificate is checked by gRPC
// when the server starts listening.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

}  // namespace attnserve::server
