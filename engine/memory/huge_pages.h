#pragma once
// Memory on transparent huge pages, for model weights (Tensor::kWeights).
//
// A decode step streams its weights from memory. On 4 KB pages that misses
// the TLB and stops the hardware prefetcher at every page; on 2 MB pages a
// batch-1 step of the base model ran 15-25% faster (docs/engine.md). Hosts
// whose transparent huge pages are "madvise" (Debian's default) only give
// them to memory advised so, on 2 MB boundaries.
//
// A huge page is zeroed and resident whole once any byte of it is touched, so
// only long-lived memory that is read whole belongs here: caches and scratch,
// which touch their allocations in part, stay on small pages.

#include <cstddef>

namespace attnserve::engine {

// x86-64's transparent huge page.
inline constexpr size_t kHugePage = size_t{2} << 20;

// `bytes` (> 0) on memory advised as huge pages: blocks up to 32 MB packed
// one after another into shared 32 MB runs (a run goes back to the system
// when its last block is freed), larger ones on a mapping of their own that
// starts on a 2 MB boundary. Blocks start on cache lines. Null when the system
// refuses the memory. Thread-safe.
void* AllocateOnHugePages(size_t bytes);
void FreeOnHugePages(void* p, size_t bytes);

}  // namespace attnserve::engine
