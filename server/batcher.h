#pragma once
// The scheduler: a bounded queue of accepted requests and the loop that runs
// the engine.
//
// Before every decode step the batcher answers requests whose caller is gone
// (deadline passed or call cancelled: queued ones without using the engine,
// running ones are dropped from the engine), admits what the batching policy
// (batching_policy.h) says, encoding the admitted sources together, and runs
// one engine step. Tokens go to each request's sink as they are decided and
// finished sequences are answered in the step that finishes them.
//
// Failures stay with the request that caused them where the engine can tell:
// a request the engine rejects (Validate) is answered with its error; when
// encoding a group fails with RESOURCE_EXHAUSTED the group is retried in
// halves, so only the request(s) that cannot be encoded fail (with the
// engine's status); a sequence that fails in a step (StepEvent::status) is
// answered with its status alone. Only a failure that cannot be pinned on one
// request (another Add error after valid input, a failed Step() as a whole)
// answers every request involved.
//
// Threads: Submit/Wake/StopAccepting/AwaitIdle/Stop and the accessors are
// thread-safe. Start() runs the loop on the inference thread, which then makes
// every engine call and every sink call. Tests may instead call Pump()
// themselves (then never Start()).

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/batch_engine.h"
#include "server/batching_policy.h"
#include "server/clock.h"
#include "server/metrics.h"
#include "server/request.h"

namespace attnserve::server {

struct BatcherOptions {
  BatchingOptions batching;
  // Most requests waiting for admission; more are answered RESOURCE_EXHAUSTED
  // at once. >= 1.
  int max_queue_size = 256;
};

class Batcher {
 public:
  // `engine`, `clock` and `observer` must outlive the batcher. No thread is
  // started here.
  static absl::StatusOr<std::unique_ptr<Batcher>> Create(
      const BatcherOptions& options, BatchEngine* engine, Clock* clock,
      ServerObserver* observer);
  // Stop().
  ~Batcher();

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Queues a request. OK: `sink` (which must stay valid until then) gets
  // OnFinished exactly once. Otherwise the sink is never used:
  // RESOURCE_EXHAUSTED when the queue is full or when the request's worst-case
  // cost exceeds a budget of the running batch even alone (CheckFitsAlone:
  // max_batch_tokens, max_batch_memory_bytes), UNAVAILABLE after
  // StopAccepting().
  absl::Status Submit(WorkItem item, ResponseSink* sink);

  // Something the batcher polls changed (a sink was cancelled): re-examine the
  // queue now rather than at the next timed wake-up.
  void Wake();

  // Starts the inference thread, which pumps until Stop(). At most once.
  void Start();

  // From now on Submit answers UNAVAILABLE; accepted requests still run.
  void StopAccepting();
  bool accepting() const;

  // Waits until no request is queued or running, or until `deadline` on the
  // batcher's clock. Returns whether it is idle. Needs the inference thread (or
  // someone pumping) to progress.
  bool AwaitIdle(absl::Time deadline);

  // Stops accepting, answers every request still queued or running UNAVAILABLE
  // (on the inference thread if it runs, else on the calling thread) and joins
  // the thread. Idempotent.
  void Stop();

  struct PumpResult {
    int answered_early =
        0;  // queued requests answered without the engine (expired, cancelled)
    int dropped = 0;  // running sequences removed before finishing
    // Admitted requests answered without running: the engine rejected or
    // could not encode them.
    int answered_at_admission = 0;
    int admitted = 0;      // added to the engine
    int finished = 0;      // sequences finished by this step
    int failed = 0;        // sequences that failed alone in this step
    bool stepped = false;  // the engine ran a decode step
    // When nothing was done: the latest time to pump again if no event comes
    // first.
    absl::Time wake_at = absl::InfiniteFuture();

    bool did_work() const {
      // Every answer counts: an answered request may have been the one that
      // blocked the queue (in --batching=none, or with max_batch_size 1).
      return answered_early > 0 || dropped > 0 || answered_at_admission > 0 ||
             admitted > 0 || finished > 0 || failed > 0 || stepped;
    }
  };
  // One iteration of the loop on the calling thread (tests drive the batcher
  // with this instead of Start()). Never blocks on the clock.
  PumpResult Pump();

  int queue_size() const;    // requests waiting for admission
  int running_size() const;  // requests admitted and not yet answered
  const BatcherOptions& options() const { return options_; }

 private:
  struct Queued {
    WorkItem item;
    ResponseSink* sink = nullptr;
    absl::Time accepted;
    int token_cost = 0;
    int64_t memory_bytes = 0;
  };
  struct Running {
    ResponseSink* sink = nullptr;
    std::string request_id;
    absl::Time accepted;
    absl::Time deadline;
    int input_tokens = 0;
    int token_cost = 0;
    int64_t memory_bytes = 0;
    int max_steps = 0;  // max_new_tokens
    int steps = 0;      // decode steps it took part in
    int generated_tokens = 0;
    absl::Time last_tokens;  // when the engine last produced tokens for it
    Outcome
        outcome;  // queue_time, compute_time and max_batch_size accumulate here
  };
  using RunningMap = absl::flat_hash_map<engine::SequenceId, Running>;

  Batcher(const BatcherOptions& options, BatchEngine* engine, Clock* clock,
          ServerObserver* observer);

  void Run();
  PumpResult PumpOnce(uint64_t* generation);
  void Admit(std::vector<Queued> admitting, PumpResult* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  // Adds `inputs` (their Running entries in `admitted`, in the same order) to
  // the engine; on RESOURCE_EXHAUSTED retries each half on its own.
  void AddGroup(std::vector<engine::SequenceInput> inputs,
                std::vector<std::pair<engine::SequenceId, Running>> admitted,
                PumpResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void StepEngine(PumpResult* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void AbortAll(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Tells the observer the queue's and the running batch's sizes; under mu_ so
  // that the reports arrive in the order of the changes.
  void ReportLoad() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Answers a request that never reached the engine.
  void AnswerQueued(Queued& queued, const absl::Status& status);
  // Answers a running request and removes it from running_ (the engine side is
  // the caller's).
  void AnswerRunning(RunningMap::iterator it, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pump_mu_);
  void Answer(ResponseSink* sink, const absl::Status& status, Outcome& outcome,
              absl::Time accepted, int input_tokens, int generated_tokens);
  // Non-OK when the caller no longer wants the answer.
  absl::Status Abandoned(const ResponseSink& sink, absl::Time deadline,
                         absl::Time now, bool running) const;

  const BatcherOptions options_;
  BatchEngine* const engine_;
  Clock* const clock_;
  ServerObserver* const observer_;

  mutable absl::Mutex mu_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  bool accepting_ ABSL_GUARDED_BY(mu_) = true;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped by every event that may change the next decision; the loop sleeps
  // only while it is unchanged since its last look, so no event is missed.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // running_.size(), readable under mu_; it also counts requests between queue
  // and engine.
  int running_count_ ABSL_GUARDED_BY(mu_) = 0;

  // Held by whichever thread pumps, so the engine is only ever used by one
  // thread at a time.
  absl::Mutex pump_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  RunningMap running_ ABSL_GUARDED_BY(pump_mu_);
  engine::SequenceId next_sequence_id_ ABSL_GUARDED_BY(pump_mu_) = 1;

  std::thread worker_;
  std::once_flag stop_once_;
};

}  // namespace attnserve::server
