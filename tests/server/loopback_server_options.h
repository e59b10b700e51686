#pragma once
// The options the in-process server tests start from: loopback on a free port,
// no failure log, and request limits that suit the fake engine (sources of up
// to 32 tokens, up to 40 new tokens), batches formed within 1 ms.

#include "absl/time/time.h"
#include "server/server.h"

namespace attnserve::server::testing {

inline ServerOptions LoopbackServerOptions() {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.log_failures = false;
  options.limits.max_input_tokens = 32;
  options.limits.max_new_tokens_limit = 40;
  options.batcher.batching.max_queue_delay = absl::Milliseconds(1);
  return options;
}

}  // namespace attnserve::server::testing
