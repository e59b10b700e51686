#include "engine/openmp_waiting.h"

#include <unistd.h>

#include <cstdlib>

namespace attnserve::engine {
namespace {

const char* EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : fallback;
}

}  // namespace

void UseServingOpenMpWaiting(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr ||
      std::getenv("GOMP_SPINCOUNT") != nullptr) {
    return;
  }
  setenv("OMP_WAIT_POLICY", "passive", 1);
  setenv("GOMP_SPINCOUNT", kServingSpinCount, 1);
  // /proc/self/exe rather than argv[0]: the program may have been found in
  // PATH or started through a relative path from another directory.
  execv("/proc/self/exe", argv);
  // Only reached if exec failed: run on with libgomp's defaults, which the
  // startup log shows as unset.
  unsetenv("OMP_WAIT_POLICY");
  unsetenv("GOMP_SPINCOUNT");
}

std::string OpenMpWaitingDescription() {
  return std::string("OMP_WAIT_POLICY=") + EnvOr("OMP_WAIT_POLICY", "unset") +
         " GOMP_SPINCOUNT=" + EnvOr("GOMP_SPINCOUNT", "unset");
}

}  // namespace attnserve::engine
