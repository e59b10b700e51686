#pragma once
// SIGTERM and SIGINT for the server's main: one thread takes them from the very
// start, so that a signal is acted on however long startup takes (a model
// loading from a slow disk, a TLS file that reads slowly). While the server
// starts, a signal ends the process at once: nothing has been accepted, so
// there is nothing to drain, and Kubernetes expects a pod that is told to stop
// to stop. Once the server serves, a signal is handed to WaitForSignal() and
// main drains.

#include <functional>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace attnserve::server {

class ShutdownSignals {
 public:
  // What to do with a signal that arrives before Serving(); the default logs
  // one line and exits with status 128 + signal (as a shell reports a process
  // killed by it).
  using StartupHandler = std::function<void(int signal_number)>;

  // Blocks SIGTERM and SIGINT in the calling thread, so that every thread
  // started later inherits the mask, and starts the thread that waits for them.
  // Call first in main, before any other thread exists. One per process.
  static std::unique_ptr<ShutdownSignals> Start(
      StartupHandler during_startup = nullptr);

  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;
  // The waiting thread is detached and uses the object whenever a signal
  // comes: keep the object until the process ends.
  ~ShutdownSignals() = default;

  // The server is ready: from now on a signal goes to WaitForSignal(). A
  // signal that arrived before this was already handled.
  void Serving();

  // Blocks until SIGTERM or SIGINT arrives after Serving(); returns which.
  int WaitForSignal();

 private:
  explicit ShutdownSignals(StartupHandler during_startup);
  void Watch();

  const StartupHandler during_startup_;
  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  int received_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attnserve::server
