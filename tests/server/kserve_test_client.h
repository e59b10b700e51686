#pragma once
// Client-side helpers for the KServe v2 tests: requests built and responses
// read with the messages generated from proto/inference/grpc_service.proto,
// as any KServe or Triton client builds them.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "inference/grpc_service.grpc.pb.h"

namespace attnserve::server::testing {

// How a request carries its tensors' elements.
enum class Contents { kRaw, kTyped };

// input_ids [rows, longest] right-padded with `pad_id`, with input_lengths
// when `with_lengths`.
inference::ModelInferRequest IdsRequest(
    const std::string& model, const std::vector<std::vector<int32_t>>& rows,
    Contents contents, int32_t pad_id = 0, bool with_lengths = true);
// text_input [rows].
inference::ModelInferRequest TextRequest(const std::string& model,
                                         const std::vector<std::string>& rows,
                                         Contents contents);

void SetIntParameter(const std::string& name, int64_t value,
                     inference::ModelInferRequest* request);

// An output tensor, decoded from raw_output_contents.
struct OutputTensor {
  std::string datatype;
  std::vector<int64_t> shape;
  std::vector<int32_t> ints;         // INT32
  std::vector<std::string> strings;  // BYTES
};
// The response's outputs by name, in raw_output_contents (as Triton answers);
// an error when they are malformed or not raw.
absl::StatusOr<std::map<std::string, OutputTensor>> ReadOutputs(
    const inference::ModelInferResponse& response);
// The output names in the response's order.
std::vector<std::string> OutputNames(
    const inference::ModelInferResponse& response);
// Row `row` of output_ids, cut to output_lengths[row].
std::vector<int32_t> RowIds(const std::map<std::string, OutputTensor>& outputs,
                            int row);

grpc::Status ModelInfer(inference::GRPCInferenceService::Stub& stub,
                        const inference::ModelInferRequest& request,
                        inference::ModelInferResponse* response,
                        absl::Duration timeout = absl::Seconds(30));

}  // namespace attnserve::server::testing
