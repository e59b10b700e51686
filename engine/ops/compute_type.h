#pragma once
// The number formats a linear layer's product can run in. float32 is the
// default and the reference of the others; the weights of every other type are
// made from float32 weights at pack time (quantize.h), whatever the file
// stored.
//
//   float32   fp32 weights and inputs, fp32 accumulation.
//   int8      int8 weights with one scale per output row, inputs quantized
//             per row on the fly, int32 accumulation (quantize.h gives the
//             exact rounding every body follows).
//   bfloat16  bf16 weights and inputs (rounded to nearest even), fp32
//             accumulation.
// Norms, softmax, attention and residuals stay float32 in every type.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::engine {

enum class ComputeType { kFloat32, kInt8, kBFloat16 };

// "float32" | "int8" | "bfloat16"; anything else is INVALID_ARGUMENT naming it.
absl::StatusOr<ComputeType> ParseComputeType(absl::string_view name);
const char* ComputeTypeName(ComputeType type);
// Bytes of one stored value of `type`: 4, 1 (int8, scales apart) or 2.
int ComputeTypeBytes(ComputeType type);

// Whether this CPU has the instructions the oneDNN backend's kernels for
// `type` need: int8 AVX-512 VNNI, bfloat16 AVX-512 BF16 (float32 runs
// anywhere). FAILED_PRECONDITION naming the missing instruction set otherwise,
// so that a server refuses such a type at start instead of running it on a
// slow path or faulting. The reference backend runs every type anywhere.
absl::Status HostRunsComputeType(ComputeType type);

}  // namespace attnserve::engine
