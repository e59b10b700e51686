#include "engine/memory/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/memory/allocation_policy.h"
#include "engine/memory/huge_pages.h"

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
  using Block = std::unique_ptr<float, Free>;
  Free::Kind kind = Free::kMalloc;
  if (huge_pages && bytes >= kMinHugePageBytes) {
    kind = Free::kHugePages;
  } else if (bytes >= kMapThreshold) {
    kind = Free::kMapped;
  } else {
    // aligned_alloc needs a size that is a multiple of the alignment.
    bytes = (bytes + 63) / 64 * 64;
  }
  if (!internal::TakeTensorBytes(bytes)) return Block(nullptr, Free{});
  void* p = nullptr;
  switch (kind) {
    case Free::kHugePages:
      p = AllocateOnHugePages(bytes);
      break;
    case Free::kMapped:
      p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) p = nullptr;
      break;
    case Free::kMalloc:
      p = std::aligned_alloc(64, bytes);
      break;
  }
  if (p == nullptr) {
    internal::ReturnTensorBytes(bytes);
    return Block(nullptr, Free{});
  }
  return Block(static_cast<float*>(p), Free{bytes, kind});
}

void Tensor::Free::operator()(float* p) const {
  internal::ReturnTensorBytes(bytes);
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

absl::Status Tensor::TryReset(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::string what = ShapeString(shape);
  if (TryResetImpl(shape)) return absl::OkStatus();
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  return absl::ResourceExhaustedError(
      absl::StrCat("out of memory: cannot allocate ", bytes, " bytes (",
                   bytes >> 20, " MiB) for a tensor of shape ", what));
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
