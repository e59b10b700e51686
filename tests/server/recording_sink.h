#pragma once
// Test doubles for the batcher's collaborators: a sink that records what it is
// told and an observer that counts what the server reports.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/types/span.h"
#include "server/metrics.h"
#include "server/request.h"

namespace attnserve::server::testing {

// Thread-safe.
class RecordingSink final : public ResponseSink {
 public:
  bool cancelled() const override { return cancelled_.load(); }
  void Cancel() { cancelled_.store(true); }
  // OnTokens answers `status` from now on (a stream whose reader is too slow).
  void FailTokens(absl::Status status) {
    absl::MutexLock lock(&mu_);
    token_status_ = std::move(status);
  }

  absl::Status OnTokens(absl::Span<const int32_t> ids,
                        absl::Span<const float>) override {
    absl::MutexLock lock(&mu_);
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    ++token_calls_;
    return token_status_;
  }
  void OnFinished(const absl::Status& status, const Outcome& outcome) override {
    {
      absl::MutexLock lock(&mu_);
      ++finish_calls_;
      status_ = status;
      outcome_ = outcome;
    }
    done_.Notify();  // last: the sink may be destroyed once a waiter sees it
  }

  bool finished() const { return done_.HasBeenNotified(); }
  void Wait() const { done_.WaitForNotification(); }
  absl::Status status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  Outcome outcome() const {
    absl::MutexLock lock(&mu_);
    return outcome_;
  }
  std::vector<int32_t> tokens() const {
    absl::MutexLock lock(&mu_);
    return tokens_;
  }
  int token_calls() const {
    absl::MutexLock lock(&mu_);
    return token_calls_;
  }
  int finish_calls() const {
    absl::MutexLock lock(&mu_);
    return finish_calls_;
  }

 private:
  std::atomic<bool> cancelled_{false};
  mutable absl::Mutex mu_;
  absl::Status token_status_ ABSL_GUARDED_BY(mu_);
  std::vector<int32_t> tokens_ ABSL_GUARDED_BY(mu_);
  int token_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int finish_calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  Outcome outcome_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
};

// Thread-safe.
class CountingObserver final : public ServerObserver {
 public:
  void OnCallDone(Method, absl::StatusCode, absl::Duration) override {}
  void OnRejected(absl::StatusCode code) override {
    absl::MutexLock lock(&mu_);
    ++rejected_[code];
  }
  void OnCallCancelled() override {
    absl::MutexLock lock(&mu_);
    ++calls_cancelled_;
  }
  void OnLoad(int queued, int running) override {}
  void OnAdmitted(absl::Duration) override {
    absl::MutexLock lock(&mu_);
    ++admitted_;
  }
  void OnEncode(int sequences, int tokens, absl::Duration) override {}
  void OnStep(int batch_size, absl::Duration) override {
    absl::MutexLock lock(&mu_);
    max_step_batch_ = std::max(max_step_batch_, batch_size);
  }
  void OnTokens(int count, bool first, absl::Duration latency) override {}
  void OnFinished(absl::StatusCode code, const RequestStats&) override {
    absl::MutexLock lock(&mu_);
    ++finished_[code];
  }

  int admitted() const {
    absl::MutexLock lock(&mu_);
    return admitted_;
  }
  int rejected(absl::StatusCode code) const {
    absl::MutexLock lock(&mu_);
    auto it = rejected_.find(code);
    return it == rejected_.end() ? 0 : it->second;
  }
  int finished(absl::StatusCode code) const {
    absl::MutexLock lock(&mu_);
    auto it = finished_.find(code);
    return it == finished_.end() ? 0 : it->second;
  }
  int max_step_batch() const {
    absl::MutexLock lock(&mu_);
    return max_step_batch_;
  }
  // Waits (real time) until the server has seen `n` calls cancelled by their
  // clients.
  void AwaitCallsCancelled(int n) const {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return calls_cancelled_ >= n;
    };
    mu_.Await(absl::Condition(&enough));
  }
  // Waits (real time) until `n` accepted requests have been answered with one
  // of `codes`.
  void AwaitFinished(std::initializer_list<absl::StatusCode> codes,
                     int n) const {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int count = 0;
      for (absl::StatusCode code : codes) {
        auto it = finished_.find(code);
        if (it != finished_.end()) count += it->second;
      }
      return count >= n;
    };
    mu_.Await(absl::Condition(&enough));
  }

 private:
  mutable absl::Mutex mu_;
  int admitted_ ABSL_GUARDED_BY(mu_) = 0;
  int max_step_batch_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_cancelled_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<absl::StatusCode, int> rejected_ ABSL_GUARDED_BY(mu_);
  std::map<absl::StatusCode, int> finished_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attnserve::server::testing
