#pragma once
// The checked list of tensors a layout takes: for each destination, the
// stored name (or a tied group of names), the stored shape and how the stored
// tensor becomes the destination. Every checkpoint layout (attnserve's names,
// Hugging Face's BART family and T5) maps its names onto one WeightPlan, so
// presence, shape, dtype and unknown-name checks are written once. Everything
// is checked before any tensor data is read, so a broken file fails in
// milliseconds instead of after reading most of a large model.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "engine/format/model_config.h"
#include "engine/format/model_weights.h"
#include "engine/format/tensor_source.h"
#include "engine/memory/tensor.h"

namespace attnserve::engine {

class WeightPlan {
 public:
  // `source` and `config` must outlive the plan.
  WeightPlan(const TensorSource& source, const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return source_.path(); }
  bool Has(const std::string& name) const {
    return source_.Find(name) != nullptr;
  }

  // `why` (may be empty) is added to the "missing tensor" message.
  void Require(std::string name, std::vector<int64_t> shape, Tensor* dst,
               std::string why = "");

  // A tied group (Hugging Face's _tied_weights_keys): which aliases a file
  // holds varies with the exporter, so any non-empty subset is accepted; when
  // several are present they must hold equal values (else the file is
  // ambiguous: an error naming two that differ).
  void RequireTied(std::vector<std::string> aliases, std::vector<int64_t> shape,
                   Tensor* dst, std::string why = "");

  // Stored as [skip_rows + shape[0], shape[1...]]; the first skip_rows rows
  // are dropped (BART's position table, whose rows start at offset 2).
  void RequireRows(std::string name, int64_t skip_rows,
                   std::vector<int64_t> shape, Tensor* dst);

  // Stored under `stored_shape`, the destination gets `shape`, of the same
  // element count (final_logits_bias [1, V] -> lm_head.bias [V]).
  void RequireReshaped(std::string name, std::vector<int64_t> stored_shape,
                       std::vector<int64_t> shape, Tensor* dst);

  // The tensor of the last Require*() may be stored as int8 with per-row
  // scales (int8_weights.h): token tables. Linear() weights always may.
  void AllowInt8();

  // `prefix`.weight [out, in] (F32, F16, BF16, or I8 with scales), and
  // `prefix`.bias [out] when the config has linear_bias (else the bias stays
  // empty).
  void Linear(const std::string& prefix, int64_t out, int64_t in,
              LinearWeights* w);

  // `prefix`.weight [d_model], and `prefix`.bias [d_model] for layer_norm.
  void Norm(const std::string& prefix, NormWeights* w,
            const std::string& why = "");
  // True when any tensor of the norm at `prefix` is stored.
  bool HasNorm(const std::string& prefix) const;

  // A stored name the layout knows and deliberately does not use (legacy
  // buffers); only matters for CheckNoUnknownTensors.
  void Ignore(std::string name);

  // Presence, shape and dtype (F32, F16, BF16; I8 where allowed, with its
  // scales: int8_weights.h) of every planned tensor.
  absl::Status Validate() const;
  // Every stored name is planned or ignored; else an error naming the first
  // unknown one. Hugging Face layouts call it: a tensor nobody reads would be a
  // weight silently dropped, i.e. a different model.
  absl::Status CheckNoUnknownTensors() const;
  // Reads every tensor into its destination (after Validate). With
  // `keep_open` (this plan's source, shared) the weights of Linear() are not
  // read but deferred: each LinearWeights gets a reader holding `keep_open`.
  absl::Status Read(std::shared_ptr<const TensorSource> keep_open = nullptr);

 private:
  struct Slot {
    std::vector<std::string> aliases;  // one, or a tied group
    std::vector<int64_t> stored_shape;
    std::vector<int64_t> shape;  // of the destination
    int64_t skip_rows = 0;
    Tensor* dst = nullptr;
    std::string why;
    // Linear(): the weight's owner, whose reading may be deferred.
    LinearWeights* linear = nullptr;
    bool int8_ok = false;  // may be stored I8 with scales (AllowInt8)
  };
  absl::Status ValidateDType(const Slot& slot, const TensorInfo& info) const;
  // A stored tensor as float32, whatever its (validated) dtype.
  static absl::StatusOr<Tensor> ReadStored(const TensorSource& source,
                                           const TensorInfo& info);
  // The slot's tensor, checked against the other aliases of a tied group.
  static absl::StatusOr<Tensor> ReadSlot(const TensorSource& source,
                                         const Slot& slot);

  const TensorSource& source_;
  const ModelConfig& config_;
  std::vector<Slot> slots_;
  absl::flat_hash_set<std::string> ignored_;
};

}  // namespace attnserve::engine
