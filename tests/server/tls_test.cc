// TLS and mutual TLS on the gRPC port (server/tls.h, --tls_cert, --tls_key,
// --tls_client_ca) with certificates that openssl makes for the test: TLS
// clients are served, plaintext clients and clients the server cannot verify
// are refused during the handshake (UNAVAILABLE), and bad flag combinations
// stop startup with exit 2 and a message naming the flag or the file.

#include "server/tls.h"

#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/fake_engine.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/subprocess.h"
#include "tests/server/test_certs.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::CheckHealth;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::RunAttnserve;
using ::attnserve::server::testing::RunResult;
using ::attnserve::server::testing::StartAttnserve;
using ::attnserve::server::testing::StartedServer;
using ::attnserve::server::testing::TestServerFlags;
using ::attnserve::server::testing::TinyModelDir;
using ::attnserve::testing::ReadTextFile;
using ::attnserve::testing::SharedTestCerts;
using ::attnserve::testing::TestCerts;
using ::testing::EndsWith;
using ::testing::HasSubstr;

constexpr int kServing = 1;

// A client's view of TLS: whom it trusts and what it presents.
struct ClientTls {
  std::string ca_file;  // empty: a plaintext channel
  std::string cert_file;
  std::string key_file;
  std::string server_name;  // overrides the name checked in the certificate
};

std::shared_ptr<grpc::Channel> Channel(int port, const ClientTls& tls) {
  const std::string address = absl::StrCat("127.0.0.1:", port);
  if (tls.ca_file.empty()) return testing::Connect(port);
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadTextFile(tls.ca_file);
  if (!tls.cert_file.empty()) {
    ssl.pem_cert_chain = ReadTextFile(tls.cert_file);
    ssl.pem_private_key = ReadTextFile(tls.key_file);
  }
  grpc::ChannelArguments arguments;
  if (!tls.server_name.empty()) {
    arguments.SetSslTargetNameOverride(tls.server_name);
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(ssl),
                                   arguments);
}

// One Generate over `channel` (a request every model of these tests takes):
// its status.
grpc::Status CallGenerate(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Seq2Seq::NewStub(channel);
  v1::GenerateRequest request;
  for (int id : {5, 6, 7}) request.add_input_ids(id);
  request.set_max_new_tokens(4);
  v1::GenerateResponse response;
  return testing::Generate(*stub, request, &response, absl::Seconds(10));
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NE(certs_ = SharedTestCerts(), nullptr); }

  // An in-process server (fake engine) whose port uses `files`.
  void Start(const TlsFiles& files) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(files);
    ASSERT_TRUE(credentials.ok()) << credentials.status();
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.log_failures = false;
    options.credentials = *credentials;
    absl::StatusOr<std::unique_ptr<Server>> server =
        Server::Create(options, std::make_unique<FakeEngine>());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  TlsFiles ServerFiles(bool mutual) const {
    return {certs_->server_cert, certs_->server_key,
            mutual ? certs_->ca_cert : ""};
  }
  ClientTls TrustingClient() const { return {certs_->ca_cert, "", "", ""}; }

  const TestCerts* certs_ = nullptr;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsTest, ServesTlsClientsAndRefusesPlaintextOnes) {
  ASSERT_NO_FATAL_FAILURE(Start(ServerFiles(/*mutual=*/false)));
  const std::shared_ptr<grpc::Channel> tls =
      Channel(server_->port(), TrustingClient());
  EXPECT_TRUE(CallGenerate(tls).ok());
  EXPECT_EQ(CheckHealth(tls, "").value_or(-1), kServing);

  const grpc::Status plaintext =
      CallGenerate(Channel(server_->port(), ClientTls()));
  EXPECT_EQ(plaintext.error_code(), grpc::StatusCode::UNAVAILABLE)
      << plaintext.error_message();
  // A client that does not trust the server's CA refuses the server.
  const grpc::Status untrusted = CallGenerate(
      Channel(server_->port(), {certs_->other_ca_cert, "", "", ""}));
  EXPECT_EQ(untrusted.error_code(), grpc::StatusCode::UNAVAILABLE)
      << untrusted.error_message();
  // Still serving after the failed handshakes.
  EXPECT_TRUE(CallGenerate(tls).ok());
}

TEST_F(TlsTest, TheNameInTheCertificateMustMatch) {
  ASSERT_NO_FATAL_FAILURE(Start(
      {certs_->named_server_cert, certs_->named_server_key, /*client_ca=*/""}));
  // Its certificate is for attnserve.test, not 127.0.0.1.
  EXPECT_EQ(
      CallGenerate(Channel(server_->port(), TrustingClient())).error_code(),
      grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(CallGenerate(Channel(server_->port(),
                                   {certs_->ca_cert, "", "", "attnserve.test"}))
                  .ok());
}

TEST_F(TlsTest, MutualTlsServesOnlyClientsWithACertificateFromItsCa) {
  ASSERT_NO_FATAL_FAILURE(Start(ServerFiles(/*mutual=*/true)));
  const int port = server_->port();
  EXPECT_TRUE(CallGenerate(Channel(port, {certs_->ca_cert, certs_->client_cert,
                                          certs_->client_key, ""}))
                  .ok());

  const grpc::Status without_cert =
      CallGenerate(Channel(port, TrustingClient()));
  EXPECT_EQ(without_cert.error_code(), grpc::StatusCode::UNAVAILABLE)
      << without_cert.error_message();
  const grpc::Status stranger =
      CallGenerate(Channel(port, {certs_->ca_cert, certs_->other_client_cert,
                                  certs_->other_client_key, ""}));
  EXPECT_EQ(stranger.error_code(), grpc::StatusCode::UNAVAILABLE)
      << stranger.error_message();
  EXPECT_EQ(CallGenerate(Channel(port, ClientTls())).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, BadFilesAreInvalidArgumentsNamingTheFlagAndFile) {
  struct Case {
    TlsFiles files;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{certs_->server_cert, "", ""}, "--tls_cert needs --tls_key"},
      {{"", certs_->server_key, ""}, "--tls_key needs --tls_cert"},
      {{"", "", certs_->ca_cert}, "--tls_client_ca (mutual TLS) needs"},
      {{"/nonexistent/server.pem", certs_->server_key, ""},
       "--tls_cert: /nonexistent/server.pem: cannot open: No such file"},
      {{certs_->server_cert, "/nonexistent/server.key", ""},
       "--tls_key: /nonexistent/server.key: cannot open: No such file"},
      // A device would never finish reading: refused before a byte is read.
      {{"/dev/zero", certs_->server_key, ""},
       "--tls_cert: /dev/zero: not a regular file"},
      {{certs_->server_cert, certs_->server_key, "/nonexistent/ca.pem"},
       "--tls_client_ca: /nonexistent/ca.pem: cannot open: No such file"},
      // The key where the certificate belongs, and the other way round.
      {{certs_->server_key, certs_->server_key, ""},
       absl::StrCat("--tls_cert: ", certs_->server_key,
                    " holds no PEM CERTIFICATE")},
      {{certs_->server_cert, certs_->server_cert, ""},
       absl::StrCat("--tls_key: ", certs_->server_cert,
                    " holds no PEM PRIVATE KEY")},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(c.files);
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kInvalidArgument)
        << c.message;
    EXPECT_THAT(std::string(credentials.status().message()),
                HasSubstr(c.message));
  }
  EXPECT_EQ(*MakeServerCredentials({}), nullptr) << "plaintext";
}

// The flags of build/attnserve: checked before the model loads.
TEST_F(TlsTest, BinaryExits2OnBadTlsFlags) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--tls_cert=" + certs_->server_cert}, "--tls_cert needs --tls_key"},
      {{"--tls_client_ca=" + certs_->ca_cert}, "--tls_client_ca"},
      {{"--tls_cert=/nonexistent/server.pem",
        "--tls_key=" + certs_->server_key},
       "--tls_cert: /nonexistent/server.pem: cannot open"},
      {{"--tls_cert=" + certs_->server_cert,
        "--tls_key=" + certs_->server_cert},
       "--tls_key: " + certs_->server_cert},
  };
  for (const auto& [flags, message] : cases) {
    const RunResult result =
        RunAttnserve(TestServerFlags("/nonexistent/model", flags));
    EXPECT_EQ(result.exit_code, std::optional<int>(2)) << result.output;
    EXPECT_THAT(result.output, HasSubstr(message));
  }
}

TEST_F(TlsTest, BinaryRefusesAKeyThatIsNotTheCertificates) {
  const RunResult result = RunAttnserve(
      TestServerFlags(TinyModelDir(), {"--tls_cert=" + certs_->server_cert,
                                       "--tls_key=" + certs_->client_key}));
  EXPECT_EQ(result.exit_code, std::optional<int>(1)) << result.output;
  EXPECT_THAT(result.output, HasSubstr("TLS certificate and key"));
}

TEST_F(TlsTest, BinaryServesMutualTls) {
  absl::StatusOr<StartedServer> server = StartAttnserve(TestServerFlags(
      TinyModelDir(),
      {"--tls_cert=" + certs_->server_cert, "--tls_key=" + certs_->server_key,
       "--tls_client_ca=" + certs_->ca_cert}));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(server->startup_line, EndsWith(", mutual-tls"));
  const std::shared_ptr<grpc::Channel> client =
      Channel(server->port,
              {certs_->ca_cert, certs_->client_cert, certs_->client_key, ""});
  EXPECT_EQ(CheckHealth(client, "").value_or(-1), kServing);
  EXPECT_TRUE(CallGenerate(client).ok());
  EXPECT_EQ(
      CheckHealth(Channel(server->port, TrustingClient()), "").status().code(),
      absl::StatusCode::kUnavailable);
  server->process->Signal(SIGTERM);
  EXPECT_EQ(server->process->Wait(absl::Seconds(30)), std::optional<int>(0));
}

}  // namespace
}  // namespace attnserve::server
