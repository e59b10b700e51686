#pragma once
// The batcher's source of time. Every "now" and every timed wait of the
// scheduler goes through a Clock, so tests can run it on simulated time and
// never sleep to observe a delay.

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace attnserve::server {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // Like absl::Mutex::AwaitWithDeadline, but on this clock's time: `mu` is held
  // on entry and on return; waits until `cond` holds or Now() >= deadline
  // (absl::InfiniteFuture() waits for `cond` only). Returns whether `cond`
  // held.
  virtual bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                                 absl::Time deadline) = 0;
};

// Wall time (absl::Now). Process-wide, thread-safe, never deleted.
Clock* RealClock();

}  // namespace attnserve::server
