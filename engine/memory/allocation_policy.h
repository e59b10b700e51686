#pragma once
// How the engine takes memory from the system: the process-wide malloc policy
// of serving programs, and the accounting every Tensor allocation goes
// through (bytes live, their high-water mark, and a limit that tests set to
// make allocations fail on purpose).

#include <cstddef>
#include <cstdint>

namespace attnserve::engine {

// Process-wide malloc policy for programs that serve a model (the server, the
// engine benchmark): a fixed mmap threshold, so that large blocks freed by
// oneDNN and by finished requests go back to the OS instead of staying resident
// (glibc otherwise raises its threshold after large frees). Tensors of 1 MB or
// more are mapped directly anyway (tensor.cc); this covers oneDNN's scratch and
// other large heap blocks. Call once, early in main.
void UseServingAllocationPolicy();

// Bytes held by Tensors (weights, caches, scratch) right now, and the most
// held at once since the last ResetTensorBytesPeak(). Process-wide and
// thread-safe; a Tensor's capacity counts, rounded as allocated.
int64_t TensorBytesLive();
int64_t TensorBytesPeak();
void ResetTensorBytesPeak();  // to TensorBytesLive()

// Tests only: from now on a Tensor allocation that would take the live bytes
// beyond `bytes` fails as if the system had refused it (Tensor::Reset throws
// std::bad_alloc, TryReset returns RESOURCE_EXHAUSTED). A negative value
// removes the limit (the default).
void SetTensorMemoryLimitForTesting(int64_t bytes);

namespace internal {
// Called by tensor.cc around every allocation: TakeTensorBytes returns false
// (and counts nothing) when the limit above refuses `bytes`.
bool TakeTensorBytes(size_t bytes);
void ReturnTensorBytes(size_t bytes);
}  // namespace internal

}  // namespace attnserve::engine
