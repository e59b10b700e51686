#pragma once
// What the oneDNN backend's own linear kernels (linear_small_batch.cc,
// linear_panels.cc) share: how they split the output columns over the team,
// and the epilogue y (+)= act(t + bias) over a run of outputs that a kernel
// has just computed into t (the activations are in activations.h). Internal to
// engine/ops; a .cc file that includes it must start with #pragma GCC
// optimize("no-trapping-math") (see simd.h).

#include <omp.h>

#include <cstdint>

#include "engine/ops/activations.h"
#include "engine/ops/linear.h"
#include "engine/ops/simd.h"

namespace attnserve::engine::internal {

// Below this many multiply-adds, waking the OpenMP team costs more than it
// saves.
inline constexpr int64_t kMinParallelMacs = 128 * 1024;

// Calls body(b0, b1) for blocks [b0, b1) of `blocks` blocks of output
// columns: each thread of the team takes a contiguous run of whole blocks, so
// each reads its own part of the weights once. The team runs only with two
// blocks or more and `macs` multiply-adds enough to pay for waking it.
template <typename Body>
void ForBlockRuns(int threads, int64_t blocks, int64_t macs, Body body) {
  const bool parallel = threads > 1 && blocks >= 2 && macs >= kMinParallelMacs;
#pragma omp parallel num_threads(parallel ? threads : 1) if (parallel)
  {
    const int64_t id = omp_get_thread_num();
    const int64_t team = omp_get_num_threads();
    const int64_t b0 = blocks * id / team;
    const int64_t b1 = blocks * (id + 1) / team;
    if (b0 < b1) body(b0, b1);
  }
}

// y[c] (+)= act(t[c] + bias[c]) for c in [0, count); bias may be null.
template <LinearActivation kActivation, bool kAccumulate>
ATTNSERVE_ALWAYS_INLINE void Epilogue(const float* t, const float* bias,
                                      int64_t count, float* y) {
#pragma omp simd
  for (int64_t c = 0; c < count; ++c) {
    const float v =
        Activate<kActivation>(t[c] + (bias != nullptr ? bias[c] : 0.0f));
    y[c] = kAccumulate ? y[c] + v : v;
  }
}

template <LinearActivation kActivation>
ATTNSERVE_ALWAYS_INLINE void Epilogue(const float* t, const float* bias,
                                      int64_t count, bool accumulate,
                                      float* y) {
  if (accumulate) {
    Epilogue<kActivation, true>(t, bias, count, y);
  } else {
    Epilogue<kActivation, false>(t, bias, count, y);
  }
}

// y[c] (+)= act(t[c] + bias[c]) for c in [0, count), the epilogue chosen at
// run time; bias may be null.
ATTNSERVE_ALWAYS_INLINE void Epilogue(const float* t, const float* bias,
                                      int64_t count, LinearEpilogue epilogue,
                                      float* y) {
  switch (epilogue.activation) {
    case LinearActivation::kNone:
      return Epilogue<LinearActivation::kNone>(t, bias, count,
                                               epilogue.accumulate, y);
    case LinearActivation::kRelu:
      return Epilogue<LinearActivation::kRelu>(t, bias, count,
                                               epilogue.accumulate, y);
    case LinearActivation::kGelu:
      return Epilogue<LinearActivation::kGelu>(t, bias, count,
                                               epilogue.accumulate, y);
    case LinearActivation::kSwish:
      return Epilogue<LinearActivation::kSwish>(t, bias, count,
                                                epilogue.accumulate, y);
    case LinearActivation::kGeluTanh:
      return Epilogue<LinearActivation::kGeluTanh>(t, bias, count,
                                                   epilogue.accumulate, y);
  }
}

}  // namespace attnserve::engine::internal
