#pragma once
// A dense, row-major, owning float tensor. The engine's only tensor type:
// weights, activations and caches are all Tensors (or raw pointers into one).

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace attnserve::engine {

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised contents; 64-byte aligned so SIMD loads never split cache
  // lines.
  explicit Tensor(std::vector<int64_t> shape) { Reset(std::move(shape)); }
  // Model weights: long-lived, read whole at every step. Weights of 64 KB and
  // more sit on transparent huge pages (huge_pages.h says why and why other
  // tensors do not).
  struct WeightsTag {};
  static constexpr WeightsTag kWeights{};
  Tensor(std::vector<int64_t> shape, WeightsTag) : huge_pages_(true) {
    Reset(std::move(shape));
  }
  Tensor(std::initializer_list<int64_t> shape)
      : Tensor(std::vector<int64_t>(shape)) {}

  // A moved-from tensor is empty (not merely without data).
  Tensor(Tensor&& other) noexcept { *this = std::move(other); }
  Tensor& operator=(Tensor&& other) noexcept {
    if (this != &other) {
      shape_ = std::move(other.shape_);
      size_ = other.size_;
      capacity_ = other.capacity_;
      data_ = std::move(other.data_);
      huge_pages_ = other.huge_pages_;
      other.shape_.clear();
      other.size_ = other.capacity_ = 0;
    }
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // Changes the shape, reallocating only when the element count grows beyond
  // capacity (the contents are then lost). Throws std::bad_alloc when the
  // memory cannot be had; the tensor is then unchanged. For scratch inside an
  // engine call, whose public entry points turn that into a status.
  void Reset(std::vector<int64_t> shape) {
    if (!TryResetImpl(shape)) throw std::bad_alloc();
  }
  // As Reset, but RESOURCE_EXHAUSTED naming the shape and the bytes instead
  // of throwing; the tensor is then unchanged.
  absl::Status TryReset(std::vector<int64_t> shape);
  void Release() {
    data_.reset();
    shape_.clear();
    size_ = capacity_ = 0;
  }

  // Gives the memory pages wholly inside elements [begin, end) back to the
  // system; their contents become zeros. For a large table that is being
  // copied elsewhere piece by piece and released after, so that it is not held
  // twice meanwhile. A no-op for small (malloc'd) tensors.
  void DiscardRange(int64_t begin, int64_t end);

  bool empty() const { return size_ == 0; }
  int64_t size() const { return size_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  const std::vector<int64_t>& shape() const { return shape_; }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  size_t bytes() const {
    return static_cast<size_t>(capacity_) * sizeof(float);
  }

  // The buffer viewed as another element type. Tensor holds floats, but the
  // quantized weights of the int8 and bfloat16 compute types (int8_t,
  // uint16_t, int32_t) live in one too, so that the byte accounting, the
  // alignment and the huge pages apply to them: a tensor of
  // FloatsFor<T>(count) floats holds `count` values of T, only ever read and
  // written as T.
  template <typename T>
  T* as() {
    return reinterpret_cast<T*>(data_.get());
  }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data_.get());
  }
  template <typename T>
  static int64_t FloatsFor(int64_t count) {
    return (count * static_cast<int64_t>(sizeof(T)) + sizeof(float) - 1) /
           static_cast<int64_t>(sizeof(float));
  }

 private:
  // Frees with the call that matched the allocation. (Constructors rather
  // than member initialisers: a nested class's initialisers are not usable
  // until the enclosing class is complete, which unique_ptr's default
  // constructor needs.)
  struct Free {
    enum Kind { kMalloc, kMapped, kHugePages };
    Free() : bytes(0), kind(kMalloc) {}
    Free(size_t b, Kind k) : bytes(b), kind(k) {}
    size_t bytes;
    Kind kind;
    void operator()(float* p) const;
  };
  // Null when the memory cannot be had.
  static std::unique_ptr<float, Free> Allocate(size_t bytes, bool huge_pages);
  bool TryResetImpl(std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (n > capacity_) {
      auto data = Allocate(static_cast<size_t>(n) * sizeof(float), huge_pages_);
      if (data == nullptr) return false;
      data_ = std::move(data);
      capacity_ = n;
    }
    shape_ = std::move(shape);
    size_ = n;
    return true;
  }

  std::vector<int64_t> shape_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
  std::unique_ptr<float, Free> data_;
  bool huge_pages_ = false;
};

// "[2, 3, 4]", for error messages.
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace attnserve::engine
