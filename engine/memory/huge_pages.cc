#include "engine/memory/huge_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

namespace attnserve::engine {
namespace {

// Blocks up to this size are packed one after another into shared runs of
// huge pages: a block whose size is not a multiple of 2 MB would otherwise end
// on small pages (a 3 MB q|k|v matrix read a third slower per byte), and a
// 1 MB one would have no huge page at all. Space a freed block leaves is not
// reused, but weights are freed together with their model, when their runs
// empty and go back; the unused end of a run is never touched, so it costs
// address space only.
constexpr size_t kRunBytes = 16 * kHugePage;
// Blocks start on cache lines.
constexpr size_t kBlockAlign = 64;

size_t PageSize() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }

// `bytes` (a multiple of the page size) mapped on a huge-page boundary and
// advised as huge pages; null when the system refuses.
void* MapAligned(size_t bytes) {
  void* raw = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  const size_t head = aligned - start;
  if (head > 0) munmap(raw, head);
  if (kHugePage > head) {
    munmap(reinterpret_cast<void*>(aligned + bytes), kHugePage - head);
  }
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, bytes, MADV_HUGEPAGE);  // advice: failure only costs speed
  return p;
}

class Runs {
 public:
  void* Allocate(size_t bytes) {
    bytes = (bytes + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
    std::lock_guard<std::mutex> lock(mu_);
    if (runs_.empty() || runs_.back().used + bytes > kRunBytes) {
      if (runs_.size() == runs_.capacity()) {
        // Growing the list may fail too; reserve before mapping, so that a
        // failure leaks nothing and throws nothing.
        try {
          runs_.reserve(runs_.size() * 2 + 4);
        } catch (const std::bad_alloc&) {
          return nullptr;
        }
      }
      void* run = MapAligned(kRunBytes);
      if (run == nullptr) return nullptr;
      runs_.push_back({reinterpret_cast<uintptr_t>(run), 0, 0});
    }
    Run& run = runs_.back();
    void* p = reinterpret_cast<void*>(run.base + run.used);
    run.used += bytes;
    ++run.live;
    return p;
  }

  void Free(void* p) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < runs_.size(); ++i) {
      Run& run = runs_[i];
      if (at < run.base || at >= run.base + kRunBytes) continue;
      if (--run.live == 0) {
        munmap(reinterpret_cast<void*>(run.base), kRunBytes);
        runs_.erase(runs_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      return;
    }
  }

 private:
  struct Run {
    uintptr_t base;
    size_t used;
    int live;  // blocks not yet freed
  };
  std::mutex mu_;
  std::vector<Run> runs_;  // the last one takes new blocks
};

Runs& SharedRuns() {
  static Runs* runs = new Runs();  // never destroyed: frees may come late
  return *runs;
}

}  // namespace

void* AllocateOnHugePages(size_t bytes) {
  if (bytes <= kRunBytes) return SharedRuns().Allocate(bytes);
  const size_t page = PageSize();
  return MapAligned((bytes + page - 1) / page * page);
}

void FreeOnHugePages(void* p, size_t bytes) {
  if (bytes <= kRunBytes) return SharedRuns().Free(p);
  const size_t page = PageSize();
  munmap(p, (bytes + page - 1) / page * page);
}

}  // namespace attnserve::engine
