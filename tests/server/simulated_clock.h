#pragma once
// A Clock whose time moves only when a test says so, for batcher tests on
// simulated time.

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/clock.h"

namespace attnserve::server::testing {

// Thread-safe. Waiters in AwaitWithDeadline wake when their condition holds (as
// with absl::Mutex) or when Advance() moves the time to their deadline.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::FromUnixSeconds(1'000'000))
      : now_ns_(absl::ToUnixNanos(start)) {}

  absl::Time Now() const override {
    return absl::FromUnixNanos(now_ns_.load());
  }
  bool AwaitWithDeadline(absl::Mutex* mu, const absl::Condition& cond,
                         absl::Time deadline) override;

  void Advance(absl::Duration d);

  // Blocks (in real time) until at least `n` threads are parked in
  // AwaitWithDeadline: each is waiting and, checked under its own mutex, its
  // condition is false and its deadline not reached, so it stays put until the
  // time moves or someone changes what it waits for. This is how tests observe
  // "not yet" without sleeping.
  void AwaitParked(int n);

 private:
  struct Waiter {
    absl::Mutex* mu;
    const absl::Condition* cond;
    absl::Time deadline;
  };
  bool Done(const Waiter& waiter) const {
    return waiter.cond->Eval() || Now() >= waiter.deadline;
  }

  std::atomic<int64_t> now_ns_;
  mutable absl::Mutex waiters_mu_;
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(waiters_mu_);
  int64_t version_ ABSL_GUARDED_BY(waiters_mu_) =
      0;  // bumped when waiters_ changes
};

}  // namespace attnserve::server::testing
