#include "engine/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#include "absl/strings/str_join.h"
#include "engine/huge_pages.h"

namespace attnserve::engine {
namespace {

// Blocks this large bypass malloc: glibc keeps freed heap blocks and raises its
// mmap threshold after large frees, so memory freed by one batch (encoder
// activations, finished sequences' caches) would stay resident. Mapped blocks
// go back to the OS when freed.
constexpr size_t kMapThreshold = size_t{1} << 20;
// Weights this large go on huge pages (huge_pages.h); smaller ones (biases,
// norms) are not worth a shared run's space.
constexpr size_t kMinHugePageBytes = size_t{64} << 10;

}  // namespace

std::unique_ptr<float, Tensor::Free> Tensor::Allocate(size_t bytes,
                                                      bool huge_pages) {
  if (huge_pages && bytes >= kMinHugePageBytes) {
    return std::unique_ptr<float, Free>(
        static_cast<float*>(AllocateOnHugePages(bytes)),
        Free{bytes, Free::kHugePages});
  }
  if (bytes >= kMapThreshold) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return std::unique_ptr<float, Free>(static_cast<float*>(p),
                                        Free{bytes, Free::kMapped});
  }
  // aligned_alloc needs a size that is a multiple of the alignment.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<float, Free>(static_cast<float*>(p), Free{});
}

void Tensor::Free::operator()(float* p) const {
  switch (kind) {
    case kMalloc:
      return std::free(p);
    case kMapped:
      munmap(p, bytes);
      return;
    case kHugePages:
      return FreeOnHugePages(p, bytes);
  }
}

void Tensor::DiscardRange(int64_t begin, int64_t end) {
  if (data_ == nullptr || data_.get_deleter().kind == Free::kMalloc) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(data_.get() + begin);
  const uintptr_t last = reinterpret_cast<uintptr_t>(data_.get() + end);
  const uintptr_t start = (first + page - 1) / page * page;
  const uintptr_t stop = last / page * page;
  if (start < stop) {
    madvise(reinterpret_cast<void*>(start), stop - start, MADV_DONTNEED);
  }
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace attnserve::engine
