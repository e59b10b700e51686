#include "server/shutdown_signals.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/log.h"

namespace attnserve::server {
namespace {

sigset_t ShutdownSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

void ExitDuringStartup(int signal_number) {
  LogLine(absl::StrCat(signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
                       " while starting: exiting before serving (nothing was "
                       "accepted, nothing to drain)"));
  std::_Exit(128 + signal_number);
}

}  // namespace

std::unique_ptr<ShutdownSignals> ShutdownSignals::Start(
    StartupHandler during_startup) {
  const sigset_t set = ShutdownSet();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::unique_ptr<ShutdownSignals> signals(new ShutdownSignals(
      during_startup ? std::move(during_startup) : ExitDuringStartup));
  // The object outlives the thread's use of it: main keeps it until exit, and
  // the thread only touches it when a signal comes.
  std::thread([raw = signals.get()] { raw->Watch(); }).detach();
  return signals;
}

ShutdownSignals::ShutdownSignals(StartupHandler during_startup)
    : during_startup_(std::move(during_startup)) {}

void ShutdownSignals::Serving() {
  absl::MutexLock lock(&mu_);
  serving_ = true;
}

int ShutdownSignals::WaitForSignal() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* received) { return *received != 0; }, &received_));
  return received_;
}

void ShutdownSignals::Watch() {
  const sigset_t set = ShutdownSet();
  for (;;) {
    int signal_number = 0;
    if (sigwait(&set, &signal_number) != 0) continue;
    bool serving;
    {
      absl::MutexLock lock(&mu_);
      serving = serving_;
      if (serving && received_ == 0) received_ = signal_number;
    }
    // Outside the lock: the handler may exit the process.
    if (!serving) during_startup_(signal_number);
  }
}

}  // namespace attnserve::server
