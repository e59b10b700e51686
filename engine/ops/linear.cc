#include "engine/ops/linear.h"

#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/ops/op_bodies.h"

namespace attnserve::engine {
namespace {

// Checks the shapes and fills everything but the owned tensors.
absl::StatusOr<internal::PlainLinear> DescribePlain(const Tensor& weight,
                                                    const Tensor* bias) {
  if (weight.rank() != 2 || weight.dim(0) <= 0 || weight.dim(1) <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "linear weight must be a non-empty [out_features, in_features] "
        "matrix, got shape ",
        ShapeString(weight.shape())));
  }
  internal::PlainLinear plain;
  plain.n = weight.dim(0);
  plain.k = weight.dim(1);
  plain.weight = weight.data();
  if (bias != nullptr && !bias->empty()) {
    if (bias->rank() != 1 || bias->dim(0) != plain.n) {
      return absl::InvalidArgumentError(absl::StrCat(
          "linear bias must have shape [", plain.n, "] to match weight ",
          ShapeString(weight.shape()), ", got ", ShapeString(bias->shape())));
    }
    plain.bias = bias->data();
  }
  return plain;
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackBody(
    const OpContext& ctx, internal::PlainLinear plain) {
  if (ctx.backend() == Backend::kDnnl) {
    const absl::Status runs = HostRunsComputeType(plain.type);
    if (!runs.ok()) return runs;
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      return internal::PackLinearRef(std::move(plain));
    case Backend::kDnnl:
      return internal::PackLinearDnnl(ctx, std::move(plain));
  }
  return absl::InternalError("unknown backend");
}

// Packing copies the weights (oneDNN's layouts, panels): a model too large
// for memory fails here with the matrix named, not with an exception.
absl::StatusOr<std::unique_ptr<PackedLinear>> Pack(
    const OpContext& ctx, internal::PlainLinear plain) {
  const int64_t n = plain.n, k = plain.k;
  const ComputeType type = plain.type;
  try {
    return PackBody(ctx, std::move(plain));
  } catch (const std::bad_alloc&) {
    const int64_t bytes = n * k * static_cast<int64_t>(sizeof(float));
    return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory packing a [", n, ", ", k, "] linear weight (", bytes,
        " bytes, ", bytes >> 20, " MiB) for the ", BackendName(ctx.backend()),
        " backend in ", ComputeTypeName(type)));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinear(const OpContext& ctx,
                                                         Tensor weight,
                                                         Tensor bias,
                                                         ComputeType type) {
  absl::StatusOr<internal::PlainLinear> plain = DescribePlain(weight, &bias);
  if (!plain.ok()) return plain.status();
  plain->type = type;
  plain->owned_weight = std::move(weight);
  plain->owned_bias = std::move(bias);
  return Pack(ctx, *std::move(plain));
}

absl::StatusOr<std::unique_ptr<PackedLinear>> PackLinearBorrowed(
    const OpContext& ctx, const Tensor& weight, const Tensor* bias,
    int64_t begin, int64_t end, ComputeType type) {
  absl::StatusOr<internal::PlainLinear> plain = DescribePlain(weight, bias);
  if (!plain.ok()) return plain.status();
  plain->type = type;
  if (begin < 0 || end > plain->n || begin >= end) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear rows [", begin, ", ", end,
                     ") are not a non-empty range of ", plain->n));
  }
  plain->weight += begin * plain->k;
  if (plain->bias != nullptr) plain->bias += begin;
  plain->n = end - begin;
  return Pack(ctx, *std::move(plain));
}

LinearActivation ToLinearActivation(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return LinearActivation::kRelu;
    case Activation::kGelu:
      return LinearActivation::kGelu;
    case Activation::kSwish:
      return LinearActivation::kSwish;
    case Activation::kGeluTanh:
      return LinearActivation::kGeluTanh;
  }
  return LinearActivation::kNone;
}

absl::Status Linear(const OpContext& ctx, const PackedLinear& w, const float* x,
                    int64_t m, float* y, LinearEpilogue epilogue) {
  if (w.backend() != ctx.backend()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "linear weights were packed for backend ", BackendName(w.backend()),
        " but the context runs ", BackendName(ctx.backend())));
  }
  if (m < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear: negative row count ", m));
  }
  if (m == 0) return absl::OkStatus();
  if (x == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("linear: null input or output buffer");
  }
  switch (ctx.backend()) {
    case Backend::kReference:
      internal::LinearRef(w, x, m, y, epilogue);
      return absl::OkStatus();
    case Backend::kDnnl:
      return internal::LinearDnnl(ctx, w, x, m, y, epilogue);
  }
  return absl::InternalError("unknown backend");
}

}  // namespace attnserve::engine
