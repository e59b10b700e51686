#include "engine/ops/compute_type.h"

#include "absl/strings/str_cat.h"

namespace attnserve::engine {

absl::StatusOr<ComputeType> ParseComputeType(absl::string_view name) {
  if (name == "float32") return ComputeType::kFloat32;
  if (name == "int8") return ComputeType::kInt8;
  if (name == "bfloat16") return ComputeType::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compute type \"", name,
                   "\" (expected \"float32\", \"int8\" or \"bfloat16\")"));
}

const char* ComputeTypeName(ComputeType type) {
  switch (type) {
    case ComputeType::kFloat32:
      return "float32";
    case ComputeType::kInt8:
      return "int8";
    case ComputeType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

int ComputeTypeBytes(ComputeType type) {
  switch (type) {
    case ComputeType::kFloat32:
      return 4;
    case ComputeType::kInt8:
      return 1;
    case ComputeType::kBFloat16:
      return 2;
  }
  return 4;
}

absl::Status HostRunsComputeType(ComputeType type) {
  switch (type) {
    case ComputeType::kFloat32:
      return absl::OkStatus();
    case ComputeType::kInt8:
      if (__builtin_cpu_supports("avx512vnni") &&
          __builtin_cpu_supports("avx512bw")) {
        return absl::OkStatus();
      }
      return absl::FailedPreconditionError(
          "compute type int8 needs a CPU with AVX-512 VNNI (vpdpbusd), which "
          "this one lacks; use --compute_type=float32");
    case ComputeType::kBFloat16:
      if (__builtin_cpu_supports("avx512bf16")) return absl::OkStatus();
      return absl::FailedPreconditionError(
          "compute type bfloat16 needs a CPU with AVX-512 BF16 (vdpbf16ps), "
          "which this one lacks; use --compute_type=float32");
  }
  return absl::InvalidArgumentError("unknown compute type");
}

}  // namespace attnserve::engine
