#pragma once
// The roundings of the int8 and bfloat16 compute types (compute_type.h), one
// definition that every body follows: weights are converted by these functions
// at pack time for both backends, and the fast kernels that quantize their
// inputs on the fly compute exactly what QuantizeRowInt8 does (the same float
// operations, in the same order), so int8 products agree with the reference to
// the last integer.

#include <cstdint>

namespace attnserve::engine {

// Symmetric int8 with one scale per row: q = round(v * (127 / amax)) in
// [-127, 127] (-128 is never used, so that negation is exact and u8 + s8
// kernels can shift by 128 without overflow), scale = amax / 127, so v ~ q *
// scale. round is nearbyint under the default rounding (ties to even), what
// vcvtps2dq does. A row of zeros (or of subnormals only, which 127 / amax
// would overflow on) gets scale 0 and q 0.
inline constexpr float kInt8Levels = 127.0f;

// q[i] for i in [0, cols) and the row's scale (returned). A row holding an
// inf or a NaN gets scale NaN and q 0 here, so its products are NaN as in
// float32; fast kernels need only agree on finite rows.
float QuantizeRowInt8(const float* v, int64_t cols, int8_t* q);

// QuantizeRowInt8 on each row of [rows, cols]: q [rows, cols], scales [rows].
void QuantizeRowsInt8(const float* v, int64_t rows, int64_t cols, int8_t* q,
                      float* scales);

// out[i] = q[i] * scale, the float32 value an int8 row stands for.
void DequantizeRowInt8(const int8_t* q, int64_t cols, float scale, float* out);

// out[i] = FloatToBFloat16(v[i]) (half_float.h: nearest, ties to even).
void RoundRowToBFloat16(const float* v, int64_t cols, uint16_t* out);

// out[i] = BFloat16ToFloat(b[i]), the float32 value a bfloat16 row stands for.
void WidenRowFromBFloat16(const uint16_t* b, int64_t cols, float* out);

}  // namespace attnserve::engine
