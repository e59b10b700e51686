#pragma once
// Certificates for the TLS tests, made at test time with the `openssl` command
// (never checked in, so none can expire in the repository): a CA, a server
// certificate for localhost / 127.0.0.1 and a client certificate signed by it,
// and a second, unrelated CA with a client certificate of its own. Shared by
// server_tests and client_tests.

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace attnserve::testing {

struct TestCerts {
  std::string dir;  // holds every file below; removed with the object
  std::string ca_cert;
  // For DNS localhost and IP 127.0.0.1, signed by ca_cert.
  std::string server_cert, server_key;
  // For DNS attnserve.test only (a client connecting to 127.0.0.1 must name
  // it), signed by ca_cert.
  std::string named_server_cert, named_server_key;
  // Client authentication, signed by ca_cert.
  std::string client_cert, client_key;
  // Another CA and a client certificate it signed: not trusted by a server
  // that trusts ca_cert.
  std::string other_ca_cert;
  std::string other_client_cert, other_client_key;

  TestCerts() = default;
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;
  ~TestCerts();
};

// Makes the certificates (P-256 keys, valid for two days) in a new directory
// under `parent`. An error with openssl's output when it fails or is missing.
absl::StatusOr<std::unique_ptr<TestCerts>> MakeTestCerts(
    const std::string& parent);

// The certificates of this test process: made on first use under
// ::testing::TempDir() and kept until the process exits. Null (and the error
// printed) when they cannot be made; callers ASSERT on it.
const TestCerts* SharedTestCerts();

// The whole file (PEM contents for gRPC's credential options); empty when it
// cannot be read.
std::string ReadTextFile(const std::string& path);

}  // namespace attnserve::testing
