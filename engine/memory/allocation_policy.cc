#include "engine/memory/allocation_policy.h"

#include <malloc.h>

#include <atomic>

namespace attnserve::engine {
namespace {

std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> peak_bytes{0};
std::atomic<int64_t> limit_bytes{-1};

}  // namespace

void UseServingAllocationPolicy() { mallopt(M_MMAP_THRESHOLD, 256 * 1024); }

int64_t TensorBytesLive() { return live_bytes.load(); }
int64_t TensorBytesPeak() { return peak_bytes.load(); }
void ResetTensorBytesPeak() { peak_bytes.store(live_bytes.load()); }
void SetTensorMemoryLimitForTesting(int64_t bytes) { limit_bytes.store(bytes); }

namespace internal {

bool TakeTensorBytes(size_t bytes) {
  const int64_t n = static_cast<int64_t>(bytes);
  const int64_t limit = limit_bytes.load(std::memory_order_relaxed);
  int64_t live = live_bytes.load(std::memory_order_relaxed);
  do {
    if (limit >= 0 && live + n > limit) return false;
  } while (!live_bytes.compare_exchange_weak(live, live + n));
  // Tensors are allocated outside the token loop's hot path (scratch grows
  // and stays), so two atomics per allocation cost nothing measurable.
  int64_t peak = peak_bytes.load(std::memory_order_relaxed);
  while (live + n > peak && !peak_bytes.compare_exchange_weak(peak, live + n)) {
  }
  return true;
}

void ReturnTensorBytes(size_t bytes) {
  live_bytes.fetch_sub(static_cast<int64_t>(bytes));
}

}  // namespace internal
}  // namespace attnserve::engine
