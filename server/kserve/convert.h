#pragma once
// The one place where the KServe v2 / Triton messages (package inference) and
// attnserve's requests meet: a ModelInferRequest's tensors and parameters
// become one attnserve.v1.GenerateRequest per batch row (which then take the
// Seq2Seq path: server/convert.h's ToWorkItem and the batcher), and the rows'
// answers become output tensors. docs/kserve.md is the contract.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "attnserve/v1/attnserve.pb.h"
#include "inference/grpc_service.pb.h"
#include "server/batch_engine.h"

namespace attnserve::server::kserve {

// The only version of the model: ModelMetadata lists it, and an empty version
// means it.
inline constexpr char kModelVersion[] = "1";

// The tensors (docs/kserve.md, Tensors).
inline constexpr char kInputIds[] = "input_ids";          // INT32 [batch, len]
inline constexpr char kInputLengths[] = "input_lengths";  // INT32 [batch]
inline constexpr char kTextInput[] = "text_input";        // BYTES [batch]
inline constexpr char kOutputIds[] = "output_ids";  // INT32 [batch, longest]
inline constexpr char kOutputLengths[] = "output_lengths";  // INT32 [batch]
inline constexpr char kTextOutput[] = "text_output";        // BYTES [batch]

// Request parameters that are Triton's rather than GenerateRequest fields.
inline constexpr char kPriorityParameter[] = "priority";
inline constexpr char kTimeoutParameter[] = "timeout";
inline constexpr char kEmptyFinalResponseParameter[] =
    "triton_enable_empty_final_response";
// Response parameters of ModelStreamInfer.
inline constexpr char kFinalResponseParameter[] = "triton_final_response";
inline constexpr char kBatchIndexParameter[] = "batch_index";

enum class Output { kOutputIds, kOutputLengths, kTextOutput };

// What one ModelInferRequest asks for, in the Seq2Seq API's terms.
struct InferPlan {
  // One per batch row, in row order; request_id is the request's id.
  std::vector<v1::GenerateRequest> rows;
  // The outputs to answer with, in the order to answer them.
  std::vector<Output> outputs;
  // Triton's `timeout`: how long the rows may wait in the queue
  // (InfiniteDuration: no limit).
  absl::Duration queue_timeout = absl::InfiniteDuration();
};

// NOT_FOUND naming the model or the version unless `name` is the model's
// name and `version` is empty or kModelVersion.
absl::Status CheckModel(const std::string& name, const std::string& version,
                        const ModelInfo& model);

// Checks the request's tensors, outputs and parameters and makes its rows.
// INVALID_ARGUMENT naming the tensor, output or parameter at fault (NOT_FOUND
// for the model, as CheckModel). A row's own checks (token ids in the
// vocabulary, limits, the generation options) are ToWorkItem's, later.
// `max_batch_size` (>= 1) bounds the rows.
absl::StatusOr<InferPlan> ToInferPlan(
    const inference::ModelInferRequest& request, const ModelInfo& model,
    bool has_tokenizer, int max_batch_size);

// Sets parameter `name` = `value` on the GenerateRequest field of that name
// (protobuf reflection, so that every field the API gains is a parameter):
// int64 and uint64 values go to integer and floating fields (range-checked),
// double values to floating fields, bools to bool fields, strings to string and
// enum fields (by value name) and, as comma-separated numbers, to repeated
// numeric fields. INVALID_ARGUMENT naming the parameter for an unknown name, a
// field the tensors fill (input_ids, text, request_id) or a value of the wrong
// type.
absl::Status SetParameter(const std::string& name,
                          const inference::InferParameter& value,
                          v1::GenerateRequest* request);

// One row's answer, as Generate gives it.
struct RowAnswer {
  std::vector<int32_t> output_ids;
  std::string text;
};

// Appends `outputs` for `rows` to `response`, in raw_output_contents:
// output_ids INT32 [rows, longest] padded with `pad_id`, output_lengths INT32
// [rows], text_output BYTES [rows].
void AppendOutputs(absl::Span<const RowAnswer> rows,
                   absl::Span<const Output> outputs, int32_t pad_id,
                   inference::ModelInferResponse* response);

// The model's name and version and the request's `id`, which every response
// carries.
void SetResponseHeader(const std::string& id, const ModelInfo& model,
                       inference::ModelInferResponse* response);

inference::ServerMetadataResponse MakeServerMetadata();
inference::ModelMetadataResponse MakeModelMetadata(const ModelInfo& model,
                                                   bool has_tokenizer);

}  // namespace attnserve::server::kserve
