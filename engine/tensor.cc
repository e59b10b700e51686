#include "engine/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <new>

#include "absl/strings/str_join.h"

namespace attnserve::engine {
namespace {

// Blocks this large bypass malloc: glibc keeps freed heap blocks and raises its
// mmap threshold after large frees, so memory freed by one batch (encoder
// activations, finished sequences' caches) would stay resident. Mapped blocks
// go back to the OS when freed.
constexpr size_t kMapThreshold = size_t{1} << 20;

}  // namespace

std::unique_ptr<float, Tensor::Free> Tensor::Allocate(size_t bytes) {
  if (bytes >= kMapThreshold) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return std::unique_ptr<float, Free>(static_cast<float*>(p), Free{bytes});
  }
  // aligned_alloc needs a size that is a multiple of the alignment.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<float, Free>(static_cast<float*>(p), Free{0});
}

void Tensor::Free::operator()(float* p) const {
  if (mapped_bytes > 0) {
    munmap(p, mapped_bytes);
  } else {
    std::free(p);
  }
}

void Tensor::DiscardRange(int64_t begin, int64_t end) {
  if (data_ == nullptr || data_.get_deleter().mapped_bytes == 0) return;
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
