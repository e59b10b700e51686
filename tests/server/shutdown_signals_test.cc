#include "server/shutdown_signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnserve::server {
namespace {

// Each case runs in a child process of its own (a death test), since it
// blocks signals and leaves a thread waiting for them.
class ShutdownSignalsTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(ShutdownSignalsTest, SignalWhileStartingExitsAtOnce) {
  EXPECT_EXIT(
      {
        const auto signals = ShutdownSignals::Start();
        kill(getpid(), SIGTERM);
        // Startup would go on here (a slow model load); the signal must end
        // the process without it finishing.
        for (int i = 0; i < 600; ++i) usleep(100 * 1000);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(128 + SIGTERM), "SIGTERM while starting");
}

TEST_F(ShutdownSignalsTest, SignalWhileServingIsHandedToTheWaiter) {
  EXPECT_EXIT(
      {
        const auto signals = ShutdownSignals::Start();
        signals->Serving();
        kill(getpid(), SIGINT);
        std::_Exit(signals->WaitForSignal() == SIGINT ? 3 : 4);
      },
      ::testing::ExitedWithCode(3), "");
}

TEST_F(ShutdownSignalsTest, StartupHandlerSeesTheSignal) {
  EXPECT_EXIT(
      {
        const auto signals = ShutdownSignals::Start(
            [](int signal_number) { std::_Exit(signal_number + 10); });
        kill(getpid(), SIGINT);
        for (int i = 0; i < 600; ++i) usleep(100 * 1000);
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(SIGINT + 10), "");
}

}  // namespace
}  // namespace attnserve::server
