#pragma once
// A test suite that shares one build/attnserve serving the bundled dates model
// (started once for the suite, with `Suite::ExtraFlags()` after the test
// flags), and gives each test its own Seq2Seq stub on it.

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server/attnserve_binary.h"
#include "tests/server/grpc_test_client.h"

namespace attnserve::server::testing {

template <typename Suite>
class DatesServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<StartedServer> server =
        StartAttnserve(TestServerFlags(DatesModelDir(), Suite::ExtraFlags()));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = new StartedServer(*std::move(server));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    stub_ = v1::Seq2Seq::NewStub(Connect(server_->port));
  }

  static inline StartedServer* server_ = nullptr;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

}  // namespace attnserve::server::testing
