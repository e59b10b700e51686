// The tools' TLS flags (--tls_ca, --tls_cert, --tls_key, --tls_server_name)
// against the fake service behind TLS and mutual TLS, with certificates that
// openssl makes for the test (tests/server/test_certs.h): a server the tool
// cannot verify, or that wants a client certificate the tool does not have, is
// unreachable (exit 2), never a silent plaintext fallback.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/exit_codes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/client/cli_runner.h"
#include "tests/client/fake_seq2seq.h"
#include "tests/server/test_certs.h"

namespace attnserve::client {
namespace {

using ::attnserve::testing::ReadTextFile;
using ::attnserve::testing::SharedTestCerts;
using ::attnserve::testing::TestCerts;
using testing::Bench;
using testing::Cli;
using testing::FakeServer;
using ::testing::HasSubstr;
using testing::ToolOutcome;

class CliTlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(certs_ = SharedTestCerts(), nullptr); }

  // The fake behind TLS with `cert`/`key`; `client_ca` non-empty: mutual TLS.
  static std::unique_ptr<FakeServer> TlsServer(const std::string& cert,
                                               const std::string& key,
                                               const std::string& client_ca) {
    grpc::SslServerCredentialsOptions options(
        client_ca.empty()
            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
            : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_key_cert_pairs.push_back(
        {ReadTextFile(key), ReadTextFile(cert)});
    if (!client_ca.empty()) options.pem_root_certs = ReadTextFile(client_ca);
    return std::make_unique<FakeServer>(grpc::SslServerCredentials(options));
  }

  const TestCerts* certs_ = nullptr;
};

TEST_F(CliTlsTest, VerifiesTheServerAgainstTheGivenCa) {
  const std::unique_ptr<FakeServer> server =
      TlsServer(certs_->server_cert, certs_->server_key, "");
  const std::string addr = "--addr=" + server->address();
  const ToolOutcome trusted =
      Cli(addr + " --tls_ca=" + certs_->ca_cert + " health");
  EXPECT_EQ(trusted.exit_code, kExitOk) << trusted.err;
  EXPECT_EQ(trusted.out, "SERVING\n");
  const ToolOutcome generate =
      Cli(addr + " --tls_ca=" + certs_->ca_cert + " generate --ids=5,17,42");
  EXPECT_EQ(generate.exit_code, kExitOk) << generate.err;
  EXPECT_EQ(generate.out, "6,18,43,6\n");

  // Plaintext against TLS, and TLS that trusts another CA: unreachable.
  for (const std::string& flags :
       {std::string(""), "--tls_ca=" + certs_->other_ca_cert}) {
    const ToolOutcome refused = Cli(addr + " " + flags + " health");
    EXPECT_EQ(refused.exit_code, kExitUnreachable) << flags;
    // (gRPC's own log line about the handshake may come first.)
    EXPECT_THAT(refused.err, HasSubstr("cannot reach " + server->address()))
        << flags;
  }
}

TEST_F(CliTlsTest, ServerNameOverridesTheAddressHost) {
  // The certificate names attnserve.test; the tool connects to 127.0.0.1.
  const std::unique_ptr<FakeServer> server =
      TlsServer(certs_->named_server_cert, certs_->named_server_key, "");
  const std::string flags =
      absl::StrCat("--addr=", server->address(), " --tls_ca=", certs_->ca_cert);
  EXPECT_EQ(Cli(flags + " health").exit_code, kExitUnreachable);
  const ToolOutcome named =
      Cli(flags + " --tls_server_name=attnserve.test health");
  EXPECT_EQ(named.exit_code, kExitOk) << named.err;
}

TEST_F(CliTlsTest, PresentsAClientCertificateForMutualTls) {
  const std::unique_ptr<FakeServer> server = TlsServer(
      certs_->server_cert, certs_->server_key, /*client_ca=*/certs_->ca_cert);
  const std::string flags =
      absl::StrCat("--addr=", server->address(), " --tls_ca=", certs_->ca_cert);
  const ToolOutcome with_cert =
      Cli(absl::StrCat(flags, " --tls_cert=", certs_->client_cert,
                       " --tls_key=", certs_->client_key, " info --json"));
  EXPECT_EQ(with_cert.exit_code, kExitOk) << with_cert.err;
  EXPECT_EQ(nlohmann::json::parse(with_cert.out)["model_name"], "fake");
  EXPECT_EQ(Cli(flags + " health").exit_code, kExitUnreachable)
      << "no client certificate";
  EXPECT_EQ(
      Cli(absl::StrCat(flags, " --tls_cert=", certs_->other_client_cert,
                       " --tls_key=", certs_->other_client_key, " health"))
          .exit_code,
      kExitUnreachable)
      << "a certificate from another CA";

  const ToolOutcome bench = Bench(absl::StrCat(
      flags, " --tls_cert=", certs_->client_cert,
      " --tls_key=", certs_->client_key, " --requests=6 --src_len=2:4 --json"));
  ASSERT_EQ(bench.exit_code, kExitOk) << bench.err;
  EXPECT_EQ(nlohmann::json::parse(bench.out)["count"], 6);
}

TEST_F(CliTlsTest, BadTlsFlagsAreUsageErrors) {
  for (const std::string& flags :
       {"--tls_cert=" + certs_->client_cert,
        std::string("--tls_ca=/nonexistent/ca.pem")}) {
    const ToolOutcome outcome = Cli(flags + " health");
    EXPECT_EQ(outcome.exit_code, kExitUsage) << flags;
    EXPECT_THAT(outcome.err, HasSubstr("--tls_")) << flags;
  }
}

}  // namespace
}  // namespace attnserve::client
