#pragma once
// The test process's resident memory, for tests that check what an allocation
// pattern keeps.

#include <cstdlib>
#include <fstream>
#include <string>

namespace attnserve::engine::testing {

// VmRSS of /proc/self/status in KB, or -1 when it cannot be read.
inline long ResidentKilobytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

}  // namespace attnserve::engine::testing
