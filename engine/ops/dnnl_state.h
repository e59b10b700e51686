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
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
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
  // Bounded, since encoder shapes vary with the source lengths. Keyed by data
  // type too: the bfloat16 linear's sources are bf16, the int8 one's u8 with
  // s32 sums.
  absl::flat_hash_map<
      std::tuple<ArgRole, int64_t, int64_t, dnnl::memory::data_type>,
      dnnl::memory>
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

  // The rows of x converted to a compute type's input format for one call
  // (the bfloat16 linear's bf16 rows), apart from `scratch`, which the same
  // call may use for a split epilogue. Grows, never shrinks; throws
  // std::bad_alloc as Scratch does.
  Tensor src_scratch;
  void* SrcScratch(size_t bytes) {
    const int64_t floats = static_cast<int64_t>((bytes + 3) / 4);
    if (src_scratch.size() < floats) src_scratch.Reset({floats});
    return src_scratch.data();
  }

  // Call before a call's Activation() lookups: drops the cache when full, so
  // that no lookup within the call invalidates an object an earlier one
  // returned.
  void TrimActivations() {
    if (activations.size() + 2 > kMaxActivations) activations.clear();
  }

  // A memory object for [rows, cols] of `type` pointing at `data`, as the C
  // handle (the C++ wrapper moves when the map grows). Throws dnnl::error.
  dnnl_memory_t Activation(
      ArgRole role, int64_t rows, int64_t cols, const void* data,
      dnnl::memory::data_type type = dnnl::memory::data_type::f32) {
    const auto key = std::make_tuple(role, rows, cols, type);
    auto it = activations.find(key);
    if (it == activations.end()) {
      const dnnl::memory::desc desc({rows, cols}, type,
                                    dnnl::memory::format_tag::ab);
      it = activations.emplace(key, dnnl::memory(desc, engine, nullptr)).first;
    }
    // oneDNN takes non-const handles; sources are only read.
    it->second.set_data_handle(const_cast<void*>(data));
    return it->second.get();
  }
};

namespace internal {

// The weights side of a linear's oneDNN matmul, made at pack time: the K x N
// weights and [1, N] f32 bias (null without) as memory objects, what the
// matmul's source rows are, and the key fields they fix.
struct LinearMatmulWeights {
  ComputeType type = ComputeType::kFloat32;  // MatmulKey.type
  dnnl::memory::data_type src_type = dnnl::memory::data_type::f32;
  const dnnl::memory* weights = nullptr;
  const dnnl::memory* bias = nullptr;
  bool panels = false;  // MatmulKey.panels
  int64_t n = 0;
  int64_t k = 0;
};

// y = act(x W^T + b) [+ y] for m >= 1 rows on oneDNN's matmul (linear_dnnl.cc
// says how: exact-M primitives cached in `state`, chunks of at most 256 rows,
// fused post-ops). src(row, rows) gives rows [row, row + rows) of x as
// w.src_type, row-major [rows, k], valid until the next call of src: x itself
// for float32, rows converted into scratch for other types. Shared by the
// oneDNN linears of every compute type.
absl::Status RunLinearMatmul(
    DnnlState& state, const LinearMatmulWeights& w, int64_t m,
    absl::FunctionRef<const void*(int64_t row, int64_t rows)> src, float* y,
    LinearEpilogue epilogue);

// The status of a linear's oneDNN matmul [m, k] x [n, k]^T: OK,
// RESOURCE_EXHAUSTED when oneDNN ran out of memory, INTERNAL with oneDNN's
// status otherwise. `what` names the linear ("linear", "int8 linear").
absl::Status LinearMatmulStatus(dnnl_status_t status, const char* what,
                                int64_t m, int64_t n, int64_t k);

}  // namespace internal

}  // namespace attnserve::engine
