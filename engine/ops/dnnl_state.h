#pragma once
// The oneDNN half of an OpContext: engine, stream, primitive caches and scratch
// memory.
//
// This is the only header that includes dnnl.hpp. Include it only from
// *_dnnl.cc files, so that the rest of the engine (and everything that includes
// engine headers) never sees oneDNN.
//
// Not thread-safe, like the OpContext that owns it: every member is used by the
// one thread that runs that context's ops.

#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "engine/memory/tensor.h"
#include "engine/ops/linear.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace attnserve::engine {

// The process's one oneDNN CPU engine, created on first use. Every context
// shares it, so memory objects made at pack time (weights) serve any context's
// primitives. Throws dnnl::error if no CPU engine can be created.
const dnnl::engine& CpuEngine();

// One cached matmul primitive: an exact row count (see linear_dnnl.cc for why
// not a runtime one), the weight shape and layout and the fused epilogue.
struct MatmulKey {
  ComputeType type = ComputeType::kFloat32;  // the weights' (linear.h)
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool bias = false;
  LinearActivation activation = LinearActivation::kNone;
  bool accumulate = false;
  bool panels = false;  // weights on panels (BA16a64b), else plain

  friend bool operator==(const MatmulKey& a, const MatmulKey& b) {
    return a.type == b.type && a.m == b.m && a.n == b.n && a.k == b.k &&
           a.bias == b.bias && a.activation == b.activation &&
           a.accumulate == b.accumulate && a.panels == b.panels;
  }
  template <typename H>
  friend H AbslHashValue(H h, const MatmulKey& key) {
    return H::combine(std::move(h), key.type, key.m, key.n, key.k, key.bias,
                      key.activation, key.accumulate, key.panels);
  }
};

// A cached matmul primitive and a memory object for its scratchpad. Primitives
// are made with a user-managed scratchpad: with oneDNN's own (library) mode,
// Debian's oneDNN gives every primitive a scratchpad of its own, measured at
// about 300 KB each, and a server with varied row counts keeps hundreds of
// primitives. `scratchpad` is re-pointed at DnnlState::MatmulScratchpad before
// each call; it is empty when the primitive needs none.
struct CachedMatmul {
  dnnl::matmul primitive;
  dnnl::memory scratchpad;
};

// A CachedMatmul for `pd` (made with a user scratchpad), with the scratchpad
// memory object it needs.
inline CachedMatmul MakeCachedMatmul(const dnnl::matmul::primitive_desc& pd,
                                     const dnnl::engine& engine) {
  CachedMatmul cached{dnnl::matmul(pd), dnnl::memory()};
  const dnnl::memory::desc scratchpad = pd.scratchpad_desc();
  if (scratchpad.get_size() > 0) {
    cached.scratchpad = dnnl::memory(scratchpad, engine, nullptr);
  }
  return cached;
}

// Which argument of a call an activation memory object serves: a call's source
// and destination may have the same shape but need distinct objects.
enum class ArgRole { kSrc, kDst };

struct DnnlState {
  dnnl::engine engine;  // CpuEngine()
  dnnl::stream stream;

  // Created on first use of a shape and kept (a token step only looks them
  // up) until there are kMaxMatmuls, when the cache starts afresh. Each holds
  // about 50 KB (mostly JIT code), so the cap bounds that memory (~35 MB
  // measured with every row count from 17 to 512 on five shapes);
  // a decode needs a few dozen, and row counts recur, so refills are rare and
  // mostly hit oneDNN's own primitive cache (CpuEngine gives it the same
  // capacity).
  absl::flat_hash_map<MatmulKey, CachedMatmul> matmuls;
  static constexpr size_t kMaxMatmuls = 512;

  // The matmul cached for `key`, made by create() (a CachedMatmul) on first
  // use. Bounded: every row count up to a body's largest chunk is a key, for
  // each of a model's handful of shape classes.
  template <typename Create>
  CachedMatmul& Matmul(const MatmulKey& key, Create create) {
    auto it = matmuls.find(key);
    if (it == matmuls.end()) {
      if (matmuls.size() >= kMaxMatmuls) matmuls.clear();
      it = matmuls.emplace(key, create()).first;
    }
    return it->second;
  }

  // Runs `matmul` on args [0, count), which has room for one more (its
  // scratchpad, pointed at MatmulScratchpad), and waits for it.
  dnnl_status_t RunMatmul(CachedMatmul& matmul, dnnl_exec_arg_t* args,
                          int count) {
    if (matmul.scratchpad) {
      matmul.scratchpad.set_data_handle(
          MatmulScratchpad(matmul.scratchpad.get_desc().get_size()));
      args[count++] = {DNNL_ARG_SCRATCHPAD, matmul.scratchpad.get()};
    }
    dnnl_status_t status = dnnl_primitive_execute(matmul.primitive.get(),
                                                  stream.get(), count, args);
    if (status == dnnl_success) status = dnnl_stream_wait(stream.get());
    return status;
  }

  // The scratchpad all of this context's matmuls share (one call runs at a
  // time): as large as the largest any of them asked for.
  Tensor matmul_scratchpad;

  // The shared scratchpad, grown to at least `bytes`.
  void* MatmulScratchpad(size_t bytes) {
    const int64_t floats = static_cast<int64_t>((bytes + 3) / 4);
    if (matmul_scratchpad.size() < floats) matmul_scratchpad.Reset({floats});
    return matmul_scratchpad.data();
  }

  // Row-major [rows, cols] memory objects for activations, re-pointed at each
  // call's buffer: creating them costs more than a small matmul's arithmetic.
  // Bounded, since encoder shapes vary with the source lengths.
  absl::flat_hash_map<std::tuple<ArgRole, int64_t, int64_t>, dnnl::memory>
      activations;
  static constexpr size_t kMaxActivations = 256;

  // Per-call temporary memory (attention scores, split epilogues). Grows, never
  // shrinks, so steady-state decoding does not allocate; a Tensor, so that
  // the engine's accounting and test limits (allocation_policy.h) see it.
  Tensor scratch;

  // At least `floats` floats; contents are not kept when it grows. Throws
  // std::bad_alloc (the network's entry points turn it into a status).
  float* Scratch(size_t floats) {
    if (scratch.size() < static_cast<int64_t>(floats)) {
      scratch.Reset({static_cast<int64_t>(floats)});
    }
    return scratch.data();
  }

  // Call before a call's Activation() lookups: drops the cache when full, so
  // that no lookup within the call invalidates an object an earlier one
  // returned.
  void TrimActivations() {
    if (activations.size() + 2 > kMaxActivations) activations.clear();
    if (typed_activations.size() + 2 > kMaxActivations) {
      typed_activations.clear();
    }
  }

  // A memory object for [rows, cols] pointing at `data`, as the C handle (the
  // C++ wrapper moves when the map grows). Throws dnnl::error.
  dnnl_memory_t Activation(ArgRole role, int64_t rows, int64_t cols,
                           const float* data) {
    const auto key = std::make_tuple(role, rows, cols);
    auto it = activations.find(key);
    if (it == activations.end()) {
      const dnnl::memory::desc desc({rows, cols}, dnnl::memory::data_type::f32,
                                    dnnl::memory::format_tag::ab);
      it = activations.emplace(key, dnnl::memory(desc, engine, nullptr)).first;
    }
    // oneDNN takes non-const handles; sources are only read.
    it->second.set_data_handle(const_cast<float*>(data));
    return it->second.get();
  }

  // As Activation for [rows, cols] of another data type (the int8 linear's
  // u8 inputs and s32 sums), kept in a cache of their own.
  absl::flat_hash_map<
      std::tuple<ArgRole, dnnl::memory::data_type, int64_t, int64_t>,
      dnnl::memory>
      typed_activations;
  dnnl_memory_t TypedActivation(ArgRole role, dnnl::memory::data_type type,
                                int64_t rows, int64_t cols, const void* data) {
    const auto key = std::make_tuple(role, type, rows, cols);
    auto it = typed_activations.find(key);
    if (it == typed_activations.end()) {
      const dnnl::memory::desc desc({rows, cols}, type,
                                    dnnl::memory::format_tag::ab);
      it = typed_activations.emplace(key, dnnl::memory(desc, engine, nullptr))
               .first;
    }
    it->second.set_data_handle(const_cast<void*>(data));
    return it->second.get();
  }
};

}  // namespace attnserve::engine
