// Calls that end in every way at random moments, against the in-process
// server: the reactors' lifetime under the races between gRPC's threads and the
// batcher's inference thread (finding 10 of issue 15: a stream's reactor read
// by the batcher after gRPC's OnDone had deleted it). Meant to run under ASan
// and TSan (scripts/sanitize.sh), where a use after free or a race fails it,
// and repeatedly (--gtest_repeat); on its own it checks that every call gets a
// right answer or the status of how it ended, and that the server still serves.

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/fake_engine_server.h"
#include "tests/server/grpc_test_client.h"
#include "tests/server/loopback_server_options.h"
#include "tests/server/recording_sink.h"

namespace attnserve::server {
namespace {

using ::attnserve::server::testing::Connect;
using ::attnserve::server::testing::CountingObserver;
using ::attnserve::server::testing::FakeEngine;
using ::attnserve::server::testing::PendingCall;
using ::testing::ElementsAreArray;

// How a call ends.
enum class Ending {
  kComplete,         // read to its end: must be the right answer
  kDeadline,         // a deadline that passes at a random point
  kCancel,           // the client cancels at a random point
  kVanishMidStream,  // reads some messages, then goes (writes fail)
  kNeverRead,        // a stream nobody reads, cancelled when its context goes
};
constexpr int kEndings = 5;

std::chrono::system_clock::time_point After(absl::Duration d) {
  return absl::ToChronoTime(absl::Now() + d);
}

class ReactorLifetimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = testing::LoopbackServerOptions();
    options.limits.max_beam_size = 3;
    options.batcher.batching.max_batch_size = 8;
    options.batcher.max_queue_size = 256;
    // Small: tokens wait behind the writes of the slow reads below.
    options.stream_buffer_tokens = 2;
    absl::StatusOr<std::unique_ptr<Server>> server =
        testing::CreateFakeEngineServer(options, &engine_, &observer_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = Connect(server_->port());
    stub_ = v1::Seq2Seq::NewStub(channel_);
  }

  v1::GenerateRequest RandomRequest(absl::BitGen& bits) {
    v1::GenerateRequest request;
    const int length = absl::Uniform(bits, 1, 25);
    for (int i = 0; i < length; ++i)
      request.add_input_ids(absl::Uniform(bits, 3, 100));
    request.set_max_new_tokens(absl::Uniform(bits, 1, 40));
    request.set_beam_size(absl::Uniform(bits, 1, 4));
    request.set_return_log_probs(absl::Bernoulli(bits, 0.5));
    return request;
  }

  std::vector<int32_t> Expected(const v1::GenerateRequest& request) const {
    engine::DecodeOptions options;
    options.max_new_tokens = static_cast<int>(request.max_new_tokens());
    options.beam_size = static_cast<int>(request.beam_size());
    return engine_
        ->Expected({request.input_ids().begin(), request.input_ids().end()},
                   options)
        .output_ids;
  }

  // One unary call that ends as `ending` says; returns its status.
  grpc::Status Unary(Ending ending, const v1::GenerateRequest& request,
                     absl::BitGen& bits) {
    const absl::Duration when = absl::Microseconds(absl::Uniform(bits, 0, 800));
    if (ending == Ending::kDeadline) {
      v1::GenerateResponse response;
      grpc::ClientContext context;
      context.set_deadline(After(when));
      return stub_->Generate(&context, request, &response);
    }
    PendingCall call(*stub_, request);
    if (ending != Ending::kComplete) {
      absl::SleepFor(when);
      call.Cancel();
    }
    const grpc::Status status = call.Wait();
    if (status.ok()) {
      EXPECT_THAT(call.response().output_ids(),
                  ElementsAreArray(Expected(request)));
    }
    return status;
  }

  // One streaming call that ends as `ending` says; returns its status.
  grpc::Status Stream(Ending ending, const v1::GenerateRequest& request,
                      absl::BitGen& bits) {
    const absl::Duration when = absl::Microseconds(absl::Uniform(bits, 0, 800));
    grpc::ClientContext context;
    context.set_deadline(
        ending == Ending::kDeadline ? After(when) : After(absl::Seconds(30)));
    auto reader = stub_->GenerateStream(&context, request);
    if (ending == Ending::kNeverRead) {
      absl::SleepFor(when);
      context.TryCancel();
      return reader->Finish();
    }
    const int stop_after = ending == Ending::kVanishMidStream
                               ? absl::Uniform(bits, 0, 4)
                               : std::numeric_limits<int>::max();
    std::vector<int32_t> received;
    v1::GenerateResponse message;
    int read = 0;
    std::thread canceller;
    if (ending == Ending::kCancel) {
      canceller = std::thread([&context, when] {
        absl::SleepFor(when);
        context.TryCancel();
      });
    }
    while (read < stop_after && reader->Read(&message)) {
      ++read;
      received.insert(received.end(), message.output_ids().begin(),
                      message.output_ids().end());
      // A slow reader now and then, so that tokens wait behind writes.
      if (absl::Bernoulli(bits, 0.1)) absl::SleepFor(absl::Microseconds(200));
    }
    if (read == stop_after) context.TryCancel();  // gone mid-stream
    const grpc::Status status = reader->Finish();
    if (canceller.joinable()) canceller.join();
    if (status.ok()) {
      EXPECT_THAT(received, ElementsAreArray(Expected(request)));
    }
    return status;
  }

  // Declared first: it outlives the server that reports to it.
  CountingObserver observer_;
  FakeEngine* engine_ = nullptr;
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Seq2Seq::Stub> stub_;
};

TEST_F(ReactorLifetimeTest, CallsEndingAtRandomMomentsAreAllAnswered) {
  constexpr int kClients = 16;
  constexpr int kCallsPerClient = 80;
  std::atomic<int> complete{0};
  std::atomic<int> ended_early{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      absl::BitGen bits;
      for (int k = 0; k < kCallsPerClient; ++k) {
        const auto ending =
            static_cast<Ending>(absl::Uniform(bits, 0, kEndings));
        const v1::GenerateRequest request = RandomRequest(bits);
        const bool stream = ending == Ending::kVanishMidStream ||
                            ending == Ending::kNeverRead ||
                            absl::Bernoulli(bits, 0.5);
        const grpc::Status status = stream ? Stream(ending, request, bits)
                                           : Unary(ending, request, bits);
        switch (status.error_code()) {
          case grpc::StatusCode::OK:
            ++complete;
            break;
          case grpc::StatusCode::CANCELLED:
          case grpc::StatusCode::DEADLINE_EXCEEDED:
            EXPECT_NE(ending, Ending::kComplete) << status.error_message();
            ++ended_early;
            break;
          case grpc::StatusCode::RESOURCE_EXHAUSTED:
            // Only a stream whose write stalled for a second (a machine
            // starved by the sanitizers), never a unary call.
            EXPECT_TRUE(stream) << status.error_message();
            ++ended_early;
            break;
          default:
            ADD_FAILURE() << "unexpected " << status.error_code() << ": "
                          << status.error_message();
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_GT(complete.load(), 0);
  EXPECT_GT(ended_early.load(), 0);
  EXPECT_EQ(complete + ended_early, kClients * kCallsPerClient);

  // The server still serves, and had answered every accepted request (a
  // reactor never deleted would also show as a leak under ASan).
  v1::GenerateRequest last;
  last.add_input_ids(5);
  last.set_max_new_tokens(4);
  last.set_beam_size(1);
  v1::GenerateResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->Generate(&context, last, &response).ok());
  EXPECT_THAT(response.output_ids(), ElementsAreArray(Expected(last)));
  EXPECT_TRUE(server_->Shutdown(absl::Seconds(20)));
}

}  // namespace
}  // namespace attnserve::server
