// Fast attention. Many queries per sequence (encoder, prefill): oneDNN's sgemm
// for Q K^T and P V of each (sequence, head), reading Q, K, V and writing the
// output in place through their row strides, with a vectorised masked softmax
// in between. A few queries (a decode step, the hot path: every layer, every
// token): tight loops over the keys, which GCC vectorises, instead of sgemm
// calls whose fixed cost would dominate such small products.
//
// Keys beyond a sequence's length are never read, so padding may hold anything.
// The position bias (T5) is added to the scaled scores of the visible keys,
// between the scores and the softmax, on every path.
//
// bfloat16 keys and values (the decoder's caches at --kv_cache_dtype=bfloat16)
// go through the per-query loops whatever the number of queries: those loops
// are templates on the element type and widen bf16 to float (a 16-bit shift)
// as they load, so float32 and bf16 share one source. Only decode steps, with
// one query per sequence, read bf16 caches.

// See simd.h: lets GCC vectorise the loops that use FastExp.
#pragma GCC optimize("no-trapping-math")

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/ops/dnnl_state.h"
#include "engine/ops/op_bodies.h"
#include "engine/ops/simd.h"
#include "oneapi/dnnl/dnnl.h"

namespace attnserve::engine::internal {
namespace {

ATTNSERVE_ALWAYS_INLINE float Widen(float x) { return x; }
ATTNSERVE_ALWAYS_INLINE float Widen(uint16_t x) {
  return __builtin_bit_cast(float, static_cast<uint32_t>(x) << 16);
}

// Eight keys or values from p, as floats.
ATTNSERVE_ALWAYS_INLINE V8 LoadWide8(const float* p) { return Load8(p); }
ATTNSERVE_ALWAYS_INLINE V8 LoadWide8(const uint16_t* p) {
  using U16x8 = uint16_t __attribute__((vector_size(16)));
  using U32x8 = uint32_t __attribute__((vector_size(32)));
  U16x8 h;
  std::memcpy(&h, p, sizeof(h));
  const U32x8 bits = __builtin_convertvector(h, U32x8) << 16;
  V8 v;
  std::memcpy(&v, &bits, sizeof(v));  // the same bits as floats
  return v;
}

// From this many queries per sequence on, sgemm beats the per-query loops.
constexpr int64_t kMinGemmQueries = 4;
// Below this many flops, waking the OpenMP team costs more than it saves.
constexpr int64_t kMinParallelFlops = 64 * 1024;
// A decode step shares out whole rows (AttendOneRow) from this many rows per
// thread on; with fewer, (row, head) pairs balance the team better.
constexpr int64_t kMinRowsPerThread = 4;
// Many queries (the encoder) go through sgemm this many at a time, so each
// thread's scores are [kQueryChunk, length] rather than [q_len, length]: a
// 4096-token source would otherwise need 64 MB per thread, held for good.
constexpr int64_t kQueryChunk = 128;

// s[j] = scale * q . k_j for keys j in [0, n), rows `stride` floats apart; d is
// a multiple of 8. Four keys per pass keep four independent accumulators in
// flight.
// T is float or uint16_t (bfloat16), here and in the loops below.
template <typename T>
ATTNSERVE_ALWAYS_INLINE void QueryKeyScores8(const float* q, const T* k,
                                             int64_t stride, int64_t n, int d,
                                             float scale, float* s) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T* k0 = k + j * stride;
    const T* k1 = k0 + stride;
    const T* k2 = k1 + stride;
    const T* k3 = k2 + stride;
    V8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int i = 0; i < d; i += 8) {
      const V8 qi = Load8(q + i);
      a0 += qi * LoadWide8(k0 + i);
      a1 += qi * LoadWide8(k1 + i);
      a2 += qi * LoadWide8(k2 + i);
      a3 += qi * LoadWide8(k3 + i);
    }
    const V4 sums = HorizontalSums(a0, a1, a2, a3) * scale;
    std::memcpy(s + j, &sums, sizeof(sums));
  }
  for (; j < n; ++j) {
    const T* kj = k + j * stride;
    V8 a = {};
    for (int i = 0; i < d; i += 8) a += Load8(q + i) * LoadWide8(kj + i);
    s[j] = HorizontalSum(a) * scale;
  }
}

// As QueryKeyScores8 for any d.
template <typename T>
ATTNSERVE_ALWAYS_INLINE void QueryKeyScores(const float* q, const T* k,
                                            int64_t stride, int64_t n, int d,
                                            float scale, float* s) {
  if (d % 8 == 0) return QueryKeyScores8(q, k, stride, n, d, scale, s);
  for (int64_t j = 0; j < n; ++j) {
    const T* kj = k + j * stride;
    float a = 0.0f;
#pragma omp simd reduction(+ : a)
    for (int i = 0; i < d; ++i) a += q[i] * Widen(kj[i]);
    s[j] = a * scale;
  }
}

// Softmax numerators in place: s[j] = exp(s[j] - max s); returns 1 / their sum.
// The sum is at least 1 (the maximum contributes exp(0)) unless a score is NaN;
// then the result is 0, so a NaN stays a NaN instead of becoming inf.
ATTNSERVE_ALWAYS_INLINE float ExpInPlace(float* s, int64_t n) {
  float max = s[0];
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < n; ++j) max = s[j] > max ? s[j] : max;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    s[j] = FastExp(s[j] - max);
    sum += s[j];
  }
  return sum > 0.0f ? 1.0f / sum : 0.0f;
}

// out[i] += sum_j p[j] * v_j[i] over keys j in [0, n). Four keys per pass cut
// the loads and stores of `out` four-fold.
template <typename T>
ATTNSERVE_ALWAYS_INLINE void AddWeightedValues(const float* p, const T* v,
                                               int64_t stride, int64_t n, int d,
                                               float* out) {
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    const T* v0 = v + j * stride;
    const T* v1 = v0 + stride;
    const T* v2 = v1 + stride;
    const T* v3 = v2 + stride;
    const float p0 = p[j], p1 = p[j + 1], p2 = p[j + 2], p3 = p[j + 3];
#pragma omp simd
    for (int i = 0; i < d; ++i) {
      out[i] += p0 * Widen(v0[i]) + p1 * Widen(v1[i]) + p2 * Widen(v2[i]) +
                p3 * Widen(v3[i]);
    }
  }
  for (; j < n; ++j) {
    const T* vj = v + j * stride;
    const float pj = p[j];
#pragma omp simd
    for (int i = 0; i < d; ++i) out[i] += pj * Widen(vj[i]);
  }
}

// s[j] += bias[j] for j in [0, n); bias may be null (no position bias).
ATTNSERVE_ALWAYS_INLINE void AddBias(float* s, const float* bias, int64_t n) {
  if (bias == nullptr) return;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) s[j] += bias[j];
}

ATTNSERVE_ALWAYS_INLINE void Scale(float* x, int64_t n, float factor) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

ATTNSERVE_ALWAYS_INLINE void Zero(float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) x[i] = 0.0f;
}

// One query of one head against keys [0, n); bias: that query's bias of key
// j at bias[j], or null. `scores` holds n floats.
template <typename T>
ATTNSERVE_ALWAYS_INLINE void AttendOneQueryOf(const float* q, const T* k,
                                              const T* v, int64_t stride,
                                              int64_t n, int d, float scale,
                                              const float* bias, float* scores,
                                              float* out) {
  QueryKeyScores(q, k, stride, n, d, scale, scores);
  AddBias(scores, bias, n);
  const float inv_sum = ExpInPlace(scores, n);
  Zero(out, d);
  AddWeightedValues(scores, v, stride, n, d, out);
  Scale(out, d, inv_sum);
}

// The cloned entry points, one per element type (target_clones does not take
// templates).
ATTNSERVE_SIMD_CLONES
void AttendOneQuery(const float* q, const float* k, const float* v,
                    int64_t stride, int64_t n, int d, float scale,
                    const float* bias, float* scores, float* out) {
  AttendOneQueryOf(q, k, v, stride, n, d, scale, bias, scores, out);
}
ATTNSERVE_SIMD_CLONES
void AttendOneQuery(const float* q, const uint16_t* k, const uint16_t* v,
                    int64_t stride, int64_t n, int d, float scale,
                    const float* bias, float* scores, float* out) {
  AttendOneQueryOf(q, k, v, stride, n, d, scale, bias, scores, out);
}

// One query of every head against keys [0, n): a decode step's row. Key and
// value rows are read four at a time, each from front to back across the
// heads, so memory streams; a head at a time (AttendOneQuery) reads
// head_dim-float pieces of rows far apart. bias: head h's bias of key j at
// bias[h * bias_head_stride + j], or null. `scores` holds heads * n floats.
template <typename T>
ATTNSERVE_ALWAYS_INLINE void AttendOneRowOf(const float* q, const T* k,
                                            const T* v, int64_t stride,
                                            int64_t n, int heads, int d,
                                            float scale, const float* bias,
                                            int64_t bias_head_stride,
                                            float* scores, float* out) {
  for (int64_t j = 0; j < n; j += 4) {
    const int64_t keys = n - j < 4 ? n - j : 4;
    for (int h = 0; h < heads; ++h) {
      QueryKeyScores(q + h * d, k + j * stride + h * d, stride, keys, d, scale,
                     scores + h * n + j);
    }
  }
  for (int h = 0; h < heads; ++h) {
    if (bias != nullptr)
      AddBias(scores + h * n, bias + h * bias_head_stride, n);
    Scale(scores + h * n, n, ExpInPlace(scores + h * n, n));
  }
  Zero(out, int64_t{heads} * d);
  for (int64_t j = 0; j < n; j += 4) {
    const int64_t keys = n - j < 4 ? n - j : 4;
    for (int h = 0; h < heads; ++h) {
      AddWeightedValues(scores + h * n + j, v + j * stride + h * d, stride,
                        keys, d, out + h * d);
    }
  }
}

ATTNSERVE_SIMD_CLONES
void AttendOneRow(const float* q, const float* k, const float* v,
                  int64_t stride, int64_t n, int heads, int d, float scale,
                  const float* bias, int64_t bias_head_stride, float* scores,
                  float* out) {
  AttendOneRowOf(q, k, v, stride, n, heads, d, scale, bias, bias_head_stride,
                 scores, out);
}
ATTNSERVE_SIMD_CLONES
void AttendOneRow(const float* q, const uint16_t* k, const uint16_t* v,
                  int64_t stride, int64_t n, int heads, int d, float scale,
                  const float* bias, int64_t bias_head_stride, float* scores,
                  float* out) {
  AttendOneRowOf(q, k, v, stride, n, heads, d, scale, bias, bias_head_stride,
                 scores, out);
}

// Turns rows of scores [rows, cols] into probabilities: row i (the query at
// position first_position + i) over its first visible columns, zeros after
// them (so the following P V product may run over all cols keys). bias: row
// 0's bias of key j at bias[j], or null; row i's starts i floats earlier (its
// query sits i positions later).
ATTNSERVE_SIMD_CLONES
void MaskedSoftmaxRows(float* s, int64_t rows, int64_t cols, bool causal,
                       int64_t first_position, const float* bias) {
  for (int64_t i = 0; i < rows; ++i) {
    float* row = s + i * cols;
    const int64_t visible =
        causal ? std::min(cols, first_position + i + 1) : cols;
    if (bias != nullptr) AddBias(row, bias - i, visible);
    const float inv_sum = ExpInPlace(row, visible);
#pragma omp simd
    for (int64_t j = 0; j < visible; ++j) row[j] *= inv_sum;
#pragma omp simd
    for (int64_t j = visible; j < cols; ++j) row[j] = 0.0f;
  }
}

// The position of query i of sequence b.
int64_t QueryPosition(const AttentionArgs& a, int64_t b, int64_t i) {
  return (a.q_positions.empty() ? 0 : a.q_positions[b]) + i;
}

// How many keys of sequence b the query at `position` sees.
int64_t Visible(const AttentionArgs& a, int64_t b, int64_t position) {
  const int64_t length = a.kv_lengths[b];
  return a.causal ? std::min(length, position + 1) : length;
}

// Head h's bias of key j for the query at `position` is at result[j]; null
// without a position bias. The result itself lies inside the caller's buffer,
// since key 0 is always one the caller vouches for (attention.h).
const float* BiasRow(const AttentionArgs& a, int64_t h, int64_t position) {
  if (a.position_bias == nullptr) return nullptr;
  return a.position_bias + h * a.position_bias_head_stride +
         a.position_bias_center - position;
}

// Queries one at a time (a decode step, too few queries for sgemm to pay, or
// bfloat16 keys and values); ks and vs: a.k and a.v or their bf16 twins.
template <typename T>
void AttendByQuery(const AttentionArgs& a, absl::Span<const T* const> ks,
                   absl::Span<const T* const> vs, int threads, float* scratch,
                   int64_t max_length, bool parallel, float scale) {
  const int64_t pairs = a.batch * a.num_heads;
  // schedule(static, 1) deals (sequence, head) pairs round-robin, which
  // balances ragged lengths better than contiguous blocks.
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (parallel)
  for (int64_t pair = 0; pair < pairs; ++pair) {
    const int64_t b = pair / a.num_heads;
    const int64_t h = pair % a.num_heads;
    const int64_t col = h * a.head_dim;
    float* scores = scratch + omp_get_thread_num() * max_length;
    for (int64_t i = 0; i < a.q_len; ++i) {
      const int64_t position = QueryPosition(a, b, i);
      AttendOneQuery(a.q + b * a.q_seq_stride + i * a.q_row_stride + col,
                     ks[b] + col, vs[b] + col, a.kv_row_stride,
                     Visible(a, b, position), a.head_dim, scale,
                     BiasRow(a, h, position), scores,
                     a.out + b * a.out_seq_stride + i * a.out_row_stride + col);
    }
  }
}

// A decode step with rows enough to share out whole: one row (all heads) at
// a time.
template <typename T>
void AttendByRow(const AttentionArgs& a, absl::Span<const T* const> ks,
                 absl::Span<const T* const> vs, int threads, float* scratch,
                 int64_t max_length, bool parallel, float scale) {
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (parallel)
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t position = QueryPosition(a, b, 0);
    AttendOneRow(a.q + b * a.q_seq_stride, ks[b], vs[b], a.kv_row_stride,
                 Visible(a, b, position), a.num_heads, a.head_dim, scale,
                 BiasRow(a, 0, position), a.position_bias_head_stride,
                 scratch + omp_get_thread_num() * a.num_heads * max_length,
                 a.out + b * a.out_seq_stride);
  }
}

// S = scale Q K^T (+ bias), softmax, O = P V for queries [first, first +
// count) of one (sequence, head) with sgemm; `scores` holds count * length
// floats. sgemm runs single-threaded inside a parallel region.
dnnl_status_t AttendByGemm(const AttentionArgs& a, int64_t b, int64_t h,
                           int64_t first, int64_t count, float scale,
                           float* scores) {
  const int64_t col = h * a.head_dim;
  const int64_t length = a.kv_lengths[b];
  const float* q = a.q + b * a.q_seq_stride + first * a.q_row_stride + col;
  dnnl_status_t status =
      dnnl_sgemm('N', 'T', count, length, a.head_dim, scale, q, a.q_row_stride,
                 a.k[b] + col, a.kv_row_stride, 0.0f, scores, length);
  if (status != dnnl_success) return status;
  const int64_t position = QueryPosition(a, b, first);
  MaskedSoftmaxRows(scores, count, length, a.causal, position,
                    BiasRow(a, h, position));
  return dnnl_sgemm(
      'N', 'N', count, a.head_dim, length, 1.0f, scores, length, a.v[b] + col,
      a.kv_row_stride, 0.0f,
      a.out + b * a.out_seq_stride + first * a.out_row_stride + col,
      a.out_row_stride);
}

}  // namespace

absl::Status AttentionDnnl(const OpContext& ctx, const AttentionArgs& a) {
  const float scale =
      a.scale.value_or(1.0f / std::sqrt(static_cast<float>(a.head_dim)));
  const int threads = ctx.threads();
  const int64_t pairs = a.batch * a.num_heads;
  int64_t max_length = 0;
  int64_t total_length = 0;
  for (int64_t b = 0; b < a.batch; ++b) {
    max_length = std::max<int64_t>(max_length, a.kv_lengths[b]);
    total_length += a.kv_lengths[b];
  }
  DnnlState& state = *ctx.dnnl();

  const bool bf16 = a.kv_type == ComputeType::kBFloat16;
  if (a.q_len < kMinGemmQueries || bf16) {
    // Q K^T and P V: 2 flops per multiply-add, each over head_dim per key.
    const int64_t flops = 4 * a.q_len * total_length * a.num_heads * a.head_dim;
    if (a.q_len == 1 && a.batch >= kMinRowsPerThread * threads) {
      const bool parallel = threads > 1 && flops >= kMinParallelFlops;
      float* scratch = state.Scratch(
          static_cast<size_t>(threads * a.num_heads * max_length));
      if (bf16) {
        AttendByRow(a, a.k_bf16, a.v_bf16, threads, scratch, max_length,
                    parallel, scale);
      } else {
        AttendByRow(a, a.k, a.v, threads, scratch, max_length, parallel, scale);
      }
      return absl::OkStatus();
    }
    const bool parallel =
        threads > 1 && pairs > 1 && flops >= kMinParallelFlops;
    float* scratch = state.Scratch(static_cast<size_t>(threads * max_length));
    if (bf16) {
      AttendByQuery(a, a.k_bf16, a.v_bf16, threads, scratch, max_length,
                    parallel, scale);
    } else {
      AttendByQuery(a, a.k, a.v, threads, scratch, max_length, parallel, scale);
    }
    return absl::OkStatus();
  }

  // Work items: (sequence, head, chunk of queries).
  const int64_t chunk = std::min(a.q_len, kQueryChunk);
  const int64_t chunks = (a.q_len + chunk - 1) / chunk;
  const int64_t items = pairs * chunks;
  const int64_t per_item = chunk * max_length;
  float* scratch = state.Scratch(static_cast<size_t>(threads * per_item));
  std::atomic<dnnl_status_t> failure{dnnl_success};
  // With fewer items than threads, run the items in turn and let sgemm use
  // the team. schedule(dynamic): item costs vary with the ragged lengths.
#pragma omp parallel for num_threads(threads) \
    schedule(dynamic) if (items >= threads)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t pair = item / chunks;
    const int64_t first = (item % chunks) * chunk;
    const dnnl_status_t status =
        AttendByGemm(a, pair / a.num_heads, pair % a.num_heads, first,
                     std::min(chunk, a.q_len - first), scale,
                     scratch + omp_get_thread_num() * per_item);
    if (status != dnnl_success) failure.store(status);
  }
  if (failure.load() == dnnl_out_of_memory) {
    return absl::ResourceExhaustedError(
        "out of memory in oneDNN's sgemm in attention");
  }
  if (failure.load() != dnnl_success) {
    return absl::InternalError(absl::StrCat(
        "oneDNN sgemm in attention failed with status ", failure.load()));
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine::internal
