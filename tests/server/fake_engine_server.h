#pragma once
// Starting an in-process server over a FakeEngine, as the in-process server
// tests do, and waiting (real time) for what such a server does in the
// background.

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "tests/server/fake_engine.h"
#include "tests/server/loopback_server_options.h"

namespace attnserve::server::testing {

// The loopback options most fake-engine tests share: up to 8 new tokens by
// default, beams up to 4, batches of up to 4 and a queue of 64.
inline ServerOptions FakeEngineServerOptions() {
  ServerOptions options = LoopbackServerOptions();
  options.limits.default_max_new_tokens = 8;
  options.limits.max_beam_size = 4;
  options.batcher.batching.max_batch_size = 4;
  options.batcher.max_queue_size = 64;
  return options;
}

// Creates a server on `options` over a new FakeEngine; *engine is set to the
// fake, which the server owns. `observer` must outlive the server.
inline absl::StatusOr<std::unique_ptr<Server>> CreateFakeEngineServer(
    const ServerOptions& options, FakeEngine** engine, ServerObserver* observer,
    FakeEngineOptions engine_options = {}) {
  auto fake = std::make_unique<FakeEngine>(engine_options);
  *engine = fake.get();
  return Server::Create(options, std::move(fake), nullptr, observer);
}

// Waits (polling, real time) for a condition that must become true.
template <typename Predicate>
void AwaitTrue(Predicate predicate) {
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!predicate()) {
    ASSERT_LT(absl::Now(), give_up) << "condition never became true";
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace attnserve::server::testing
