// A second server on a taken gRPC port fails at start and names the address,
// instead of sharing the port through gRPC's default SO_REUSEPORT and saying
// it serves while the first one answers.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::FakeEngine;
using ::testing::HasSubstr;

ServerOptions OptionsOn(const std::string& address) {
  ServerOptions options;
  options.listen_address = address;
  options.log_failures = false;
  options.limits.max_input_tokens = 32;
  options.limits.max_new_tokens_limit = 40;
  return options;
}

TEST(ListenTest, SecondServerOnTheSamePortFailsNamingTheAddress) {
  absl::StatusOr<std::unique_ptr<Server>> first =
      Server::Create(OptionsOn("127.0.0.1:0"), std::make_unique<FakeEngine>());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string taken = absl::StrCat("127.0.0.1:", (*first)->port());

  absl::StatusOr<std::unique_ptr<Server>> second =
      Server::Create(OptionsOn(taken), std::make_unique<FakeEngine>());
  ASSERT_FALSE(second.ok()) << "a second server started on " << taken;
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr(absl::StrCat("cannot listen on ", taken)));
  EXPECT_THAT(second.status().message(), HasSubstr("already in use"));

  // The wildcard address covers loopback: taken as well.
  absl::StatusOr<std::unique_ptr<Server>> wildcard =
      Server::Create(OptionsOn(absl::StrCat("0.0.0.0:", (*first)->port())),
                     std::make_unique<FakeEngine>());
  EXPECT_FALSE(wildcard.ok());

  // Once the first has stopped, the port is free again.
  first->reset();
  absl::StatusOr<std::unique_ptr<Server>> again =
      Server::Create(OptionsOn(taken), std::make_unique<FakeEngine>());
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(ListenTest, UnusableAddressSaysWhy) {
  // 192.0.2.0/24 is TEST-NET-1: no interface of this host has it.
  absl::StatusOr<std::unique_ptr<Server>> server = Server::Create(
      OptionsOn("192.0.2.1:50999"), std::make_unique<FakeEngine>());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(),
              HasSubstr("cannot listen on 192.0.2.1:50999: "));
}

}  // namespace
}  // namespace attnserve::server
