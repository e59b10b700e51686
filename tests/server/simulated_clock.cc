#include "tests/server/simulated_clock.h"

#include <algorithm>
#include <utility>

namespace attnserve::server::testing {

bool SimulatedClock::AwaitWithDeadline(absl::Mutex* mu,
                                       const absl::Condition& cond,
                                       absl::Time deadline) {
  const Waiter waiter{mu, &cond, deadline};
  if (Done(waiter)) return cond.Eval();
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.push_back(waiter);
    ++version_;
  }
  // absl::Mutex re-evaluates a waiter's condition whenever the mutex is
  // released; Advance locks and unlocks every waiter's mutex after moving the
  // time.
  std::pair<const SimulatedClock*, const Waiter*> args(this, &waiter);
  mu->Await(absl::Condition(
      +[](decltype(args)* a) { return a->first->Done(*a->second); }, &args));
  {
    absl::MutexLock lock(&waiters_mu_);
    waiters_.erase(
        std::find_if(waiters_.begin(), waiters_.end(),
                     [&](const Waiter& w) { return w.cond == &cond; }));
    ++version_;
  }
  return cond.Eval();
}

void SimulatedClock::Advance(absl::Duration d) {
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(d));
  std::vector<absl::Mutex*> mutexes;
  {
    absl::MutexLock lock(&waiters_mu_);
    for (const Waiter& w : waiters_) mutexes.push_back(w.mu);
  }
  for (absl::Mutex* mu : mutexes) {
    mu->Lock();
    mu->Unlock();
  }
}

void SimulatedClock::AwaitParked(int n) {
  int64_t seen = -1;
  while (true) {
    std::vector<absl::Mutex*> mutexes;
    {
      absl::MutexLock lock(&waiters_mu_);
      auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiters_mu_) {
        return version_ != seen;
      };
      waiters_mu_.Await(absl::Condition(&changed));
      seen = version_;
      for (const Waiter& w : waiters_) {
        if (std::find(mutexes.begin(), mutexes.end(), w.mu) == mutexes.end()) {
          mutexes.push_back(w.mu);
        }
      }
    }
    int parked = 0;
    for (absl::Mutex* mu : mutexes) {
      // Same lock order as a waiter (its mutex, then waiters_mu_). Holding
      // `mu`, every waiter registered on it is inside Await, so its condition
      // is alive to evaluate.
      absl::MutexLock outer(mu);
      absl::MutexLock lock(&waiters_mu_);
      for (const Waiter& w : waiters_) {
        if (w.mu == mu && !Done(w)) ++parked;
      }
    }
    if (parked >= n) return;
  }
}

}  // namespace attnserve::server::testing
