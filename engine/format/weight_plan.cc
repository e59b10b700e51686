#include "engine/format/weight_plan.h"

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/format/int8_weights.h"
#include "engine/status_macros.h"

namespace attnserve::engine {

WeightPlan::WeightPlan(const TensorSource& source, const ModelConfig& config)
    : source_(source), config_(config) {}

void WeightPlan::Require(std::string name, std::vector<int64_t> shape,
                         Tensor* dst, std::string why) {
  Slot slot;
  slot.aliases = {std::move(name)};
  slot.stored_shape = shape;
  slot.shape = std::move(shape);
  slot.dst = dst;
  slot.why = std::move(why);
  slots_.push_back(std::move(slot));
}

void WeightPlan::RequireTied(std::vector<std::string> aliases,
                             std::vector<int64_t> shape, Tensor* dst,
                             std::string why) {
  Require("", std::move(shape), dst, std::move(why));
  slots_.back().aliases = std::move(aliases);
}

void WeightPlan::RequireRows(std::string name, int64_t skip_rows,
                             std::vector<int64_t> shape, Tensor* dst) {
  Require(std::move(name), shape, dst);
  slots_.back().stored_shape[0] += skip_rows;
  slots_.back().skip_rows = skip_rows;
}

void WeightPlan::RequireReshaped(std::string name,
                                 std::vector<int64_t> stored_shape,
                                 std::vector<int64_t> shape, Tensor* dst) {
  Require(std::move(name), std::move(shape), dst);
  slots_.back().stored_shape = std::move(stored_shape);
}

void WeightPlan::Linear(const std::string& prefix, int64_t out, int64_t in,
                        LinearWeights* w) {
  Require(prefix + ".weight", {out, in}, &w->weight);
  slots_.back().linear = w;
  AllowInt8();
  if (config_.linear_bias) Require(prefix + ".bias", {out}, &w->bias);
}

void WeightPlan::Norm(const std::string& prefix, NormWeights* w,
                      const std::string& why) {
  const int64_t d = config_.d_model;
  Require(prefix + ".weight", {d}, &w->gamma, why);
  if (config_.norm_kind == NormKind::kLayerNorm) {
    Require(prefix + ".bias", {d}, &w->beta, why);
  }
}

bool WeightPlan::HasNorm(const std::string& prefix) const {
  return Has(prefix + ".weight") || Has(prefix + ".bias");
}

void WeightPlan::AllowInt8() { slots_.back().int8_ok = true; }

absl::Status WeightPlan::ValidateDType(const Slot& slot,
                                       const TensorInfo& info) const {
  if (info.dtype == DType::kI8 && slot.int8_ok) {
    return CheckInt8Weight(source_, info);
  }
  if (info.dtype != DType::kF32 && info.dtype != DType::kF16 &&
      info.dtype != DType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat(
        path(), ": tensor \"", info.name, "\" has dtype ", info.dtype_name,
        slot.int8_ok ? "; weights must be F32, F16, BF16 or I8 (with scales)"
                     : "; weights must be F32, F16 or BF16 (I8 only for "
                       "linear weights and token tables)"));
  }
  const std::string scale = Int8ScaleName(info.name);
  if (slot.int8_ok && Has(scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path(), ": tensor \"", scale, "\" holds int8 scales, but \"", info.name,
        "\" is ", info.dtype_name,
        ", not I8: which values does the model use?"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> WeightPlan::ReadStored(const TensorSource& source,
                                              const TensorInfo& info) {
  if (info.dtype == DType::kI8) return ReadInt8Weight(source, info);
  return source.ReadF32(info);
}

void WeightPlan::Ignore(std::string name) { ignored_.insert(std::move(name)); }

absl::Status WeightPlan::Validate() const {
  for (const Slot& slot : slots_) {
    bool any = false;
    for (const std::string& name : slot.aliases) {
      const TensorInfo* info = source_.Find(name);
      if (info == nullptr) continue;
      any = true;
      if (info->shape != slot.stored_shape) {
        return absl::InvalidArgumentError(
            absl::StrCat(path(), ": tensor \"", name, "\" has shape ",
                         ShapeString(info->shape), ", expected ",
                         ShapeString(slot.stored_shape)));
      }
      RETURN_IF_ERROR(ValidateDType(slot, *info));
    }
    if (!any) {
      std::string others;
      if (slot.aliases.size() > 1) {
        others = absl::StrCat(" or a tied alias \"",
                              absl::StrJoin(slot.aliases.begin() + 1,
                                            slot.aliases.end(), "\", \""),
                              "\"");
      }
      return absl::InvalidArgumentError(
          absl::StrCat(path(), ": missing tensor \"", slot.aliases[0], "\"",
                       others, " (shape ", ShapeString(slot.stored_shape),
                       slot.why.empty() ? "" : "; ", slot.why, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status WeightPlan::CheckNoUnknownTensors() const {
  absl::flat_hash_set<std::string> planned;
  for (const Slot& slot : slots_) {
    for (const std::string& name : slot.aliases) {
      planned.insert(name);
      const TensorInfo* info = source_.Find(name);
      if (info != nullptr && info->dtype == DType::kI8) {
        planned.insert(Int8ScaleName(name));
      }
    }
  }
  for (const std::string& name : source_.Names()) {
    if (!planned.contains(name) && !ignored_.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path(), ": unknown tensor \"", name,
          "\" (this layout does not use it, and ignoring a stored weight "
          "would serve a different model than the checkpoint's)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> WeightPlan::ReadSlot(const TensorSource& source,
                                            const Slot& slot) {
  const std::string& path = source.path();
  Tensor dst;
  const TensorInfo* first = nullptr;
  for (const std::string& name : slot.aliases) {
    const TensorInfo* info = source.Find(name);
    if (info == nullptr) continue;
    if (first == nullptr) {
      first = info;
      ASSIGN_OR_RETURN(dst, ReadStored(source, *info));
      continue;
    }
    // Another alias of the group: it must hold the same values.
    ASSIGN_OR_RETURN(Tensor other, ReadStored(source, *info));
    const float* a = dst.data();
    const float* b = other.data();
    for (int64_t i = 0; i < other.size(); ++i) {
      if (a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i])) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": tensors \"", first->name, "\" and \"", name,
            "\" are tied (one weight) but differ at element ", i, " (", a[i],
            " vs ", b[i], "); which one would the model use?"));
      }
    }
  }
  if (slot.skip_rows > 0) {
    int64_t row = 1;
    for (size_t i = 1; i < slot.shape.size(); ++i) row *= slot.shape[i];
    Tensor kept;
    RETURN_IF_ERROR(kept.TryReset(slot.shape));
    std::memcpy(kept.data(), dst.data() + slot.skip_rows * row,
                static_cast<size_t>(kept.size()) * sizeof(float));
    return kept;
  }
  if (slot.stored_shape != slot.shape) {
    // Same element count: only the shape changes, the data stays.
    RETURN_IF_ERROR(dst.TryReset(slot.shape));
  }
  return dst;
}

absl::Status WeightPlan::Read(std::shared_ptr<const TensorSource> keep_open) {
  for (const Slot& slot : slots_) {
    if (keep_open != nullptr && slot.linear != nullptr) {
      // The reader owns what it needs: the plan and its source reference are
      // gone by the time the network packs the weight.
      slot.linear->deferred_weight.shape = slot.shape;
      slot.linear->deferred_weight.read = [keep_open, slot] {
        return ReadSlot(*keep_open, slot);
      };
      continue;
    }
    ASSIGN_OR_RETURN(*slot.dst, ReadSlot(source_, slot));
  }
  return absl::OkStatus();
}

}  // namespace attnserve::engine
