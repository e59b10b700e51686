#pragma once
// Weights stored already quantized to int8 (docs/model-format.md, "Quantized
// tensors"; written by `scripts/attnserve-convert --quantization int8`): an
// I8 matrix `NAME` [rows, cols] with its F32 per-row scales `NAME_scale`
// [rows], standing for NAME[r][c] * NAME_scale[r]. Only the matrices the int8
// compute type quantizes may be stored so: the linear weights and the token
// tables.
//
// They are read as the float32 values they stand for, so every compute type
// and both backends take them as they take float weights. At the int8 compute
// type the pack step quantizes them again (quantize.h), which gives back the
// stored q exactly: a row's largest |q * scale| is 127 * scale, so each
// q * scale * (127 / amax) is within a few ulps of the integer q. The scale
// it computes, (127 * scale) / 127, may differ from the stored one in the
// last bits (float rounding), which moves a product by about 1e-7 of itself.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/format/tensor_source.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

// The name of the scales of the int8 weight `weight`: weight + "_scale".
std::string Int8ScaleName(absl::string_view weight);

// Checks an I8 `weight` and its scales before anything is read: the weight
// is a matrix, and `NAME_scale` is there, F32 and [rows]. Errors name the
// tensor: "missing tensor \"x_scale\" (F32 [16]: the per-row scales of the
// int8 weight \"x\")", a wrong dtype or shape of the scales.
absl::Status CheckInt8Weight(const TensorSource& source,
                             const TensorInfo& weight);

// Reads an I8 weight (checked by CheckInt8Weight) and its scales as the
// float32 matrix they stand for. Errors naming the tensor: a stored -128
// (int8 weights use [-127, 127], so that the kernels' u8 + s8 products
// cannot overflow), a scale that is negative or not finite.
absl::StatusOr<Tensor> ReadInt8Weight(const TensorSource& source,
                                      const TensorInfo& weight);

}  // namespace attnserve::engine
