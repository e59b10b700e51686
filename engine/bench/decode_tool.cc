// Greedy decodes of a JSON file of requests at one compute type, for
// scripts/compute_type_accuracy.py, which compares the types' tokens and
// log-probs on the same sources.
// Usage: decode_tool --model_dir=DIR --requests=FILE --out=FILE
//   [--compute_type=float32|int8|bfloat16] [--max_new_tokens=N] [--batch=32]
//   [--threads=1] [--backend=dnnl|reference]
// Requests: [{"source": [ids], "prefix": [ids], "force_eos": bool}, ...];
// "prefix" (optional) is forced as the first generated tokens
// (DecodeOptions::target_prefix) and "force_eos" (optional) forces EOS right
// after it, so that the decode reports the model's log-prob of EOS there (the
// accuracy script's probe of a divergence that is an EOS). Output, in request
// order: [{"output_ids": [...], "log_probs": [...], "finish_reason":
// "eos"|"length", "eos_log_prob": x}, ...] (eos_log_prob only when it ended by
// EOS). EOS is respected. Any error: a message on stderr naming it, exit 2.

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/decode/generator.h"
#include "engine/model.h"
#include "engine/ops/compute_type.h"
#include "nlohmann/json.hpp"

namespace attnserve::engine {
namespace {

struct Request {
  std::vector<int32_t> source;
  std::vector<int32_t> prefix;
  bool force_eos = false;
};

// A list of ids at `where`, INVALID_ARGUMENT naming it when it is not one.
absl::StatusOr<std::vector<int32_t>> Ids(const nlohmann::json& value,
                                         const std::string& where) {
  if (!value.is_array())
    return absl::InvalidArgumentError(where + " is not a list of token ids");
  std::vector<int32_t> ids;
  for (const nlohmann::json& id : value) {
    if (!id.is_number_integer())
      return absl::InvalidArgumentError(
          absl::StrCat(where, "[", ids.size(), "] is not an integer"));
    ids.push_back(id.get<int32_t>());
  }
  return ids;
}

absl::StatusOr<std::vector<Request>> ReadRequests(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError("cannot open requests file " + path);
  // Parsing without exceptions: a discarded value marks a syntax error.
  nlohmann::json doc = nlohmann::json::parse(in, nullptr, false);
  if (doc.is_discarded())
    return absl::InvalidArgumentError(path + " is not valid JSON");
  if (!doc.is_array())
    return absl::InvalidArgumentError(path + " is not a JSON list of requests");
  std::vector<Request> requests;
  for (size_t i = 0; i < doc.size(); ++i) {
    const std::string where = absl::StrCat(path, ": request ", i);
    const nlohmann::json& r = doc[i];
    if (!r.is_object() || !r.contains("source"))
      return absl::InvalidArgumentError(where + " has no \"source\"");
    Request request;
    absl::StatusOr<std::vector<int32_t>> source =
        Ids(r["source"], where + " source");
    if (!source.ok()) return source.status();
    request.source = *std::move(source);
    if (r.contains("prefix")) {
      absl::StatusOr<std::vector<int32_t>> prefix =
          Ids(r["prefix"], where + " prefix");
      if (!prefix.ok()) return prefix.status();
      request.prefix = *std::move(prefix);
    }
    if (r.contains("force_eos")) {
      if (!r["force_eos"].is_boolean())
        return absl::InvalidArgumentError(where +
                                          " force_eos is not true or false");
      request.force_eos = r["force_eos"].get<bool>();
    }
    requests.push_back(std::move(request));
  }
  return requests;
}

DecodeOptions OptionsFor(const Model& model, const Request& r,
                         int max_new_tokens) {
  DecodeOptions o;
  o.max_new_tokens = max_new_tokens;
  o.target_prefix = r.prefix;
  if (r.force_eos) {
    // EOS is forced at the last allowed token: the one after the prefix.
    o.max_new_tokens = static_cast<int>(r.prefix.size()) + 1;
    o.forced_eos_ids = {model.config().eos_id};
  }
  return o;
}

// Decodes `requests` `batch` at a time, each with its own options (a prefix
// per request is why this is not one GenerateBatch call).
absl::StatusOr<std::vector<SequenceResult>> DecodeAll(
    const Model& model, const std::vector<Request>& requests,
    int max_new_tokens, int batch) {
  absl::StatusOr<std::unique_ptr<Generator>> generator =
      Generator::Create(&model);
  if (!generator.ok()) return generator.status();
  std::vector<SequenceResult> results(requests.size());
  for (size_t start = 0; start < requests.size(); start += batch) {
    std::vector<SequenceInput> inputs;
    for (size_t i = start; i < requests.size() && i < start + batch; ++i) {
      SequenceInput in;
      in.id = i;
      in.source = requests[i].source;
      in.options = OptionsFor(model, requests[i], max_new_tokens);
      absl::Status valid = (*generator)->Validate(in);
      if (!valid.ok())
        return absl::InvalidArgumentError(
            absl::StrCat("request ", i, ": ", valid.message()));
      inputs.push_back(std::move(in));
    }
    absl::Status added = (*generator)->Add(std::move(inputs));
    if (!added.ok()) return added;
    while (!(*generator)->empty()) {
      absl::StatusOr<std::vector<StepEvent>> events = (*generator)->Step();
      if (!events.ok()) return events.status();
      for (StepEvent& e : *events) {
        if (!e.status.ok())
          return absl::Status(
              e.status.code(),
              absl::StrCat("request ", e.id, ": ", e.status.message()));
        if (e.finished) results[e.id] = std::move(e.result);
      }
    }
  }
  return results;
}

nlohmann::json ToJson(const std::vector<SequenceResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const SequenceResult& r : results) {
    nlohmann::json j = {
        {"output_ids", r.output_ids},
        {"log_probs", r.log_probs},
        {"finish_reason",
         r.finish_reason == FinishReason::kEos ? "eos" : "length"}};
    if (r.finish_reason == FinishReason::kEos)
      j["eos_log_prob"] = r.eos_log_prob;
    out.push_back(std::move(j));
  }
  return out;
}

struct Flags {
  std::string model_dir, requests, out;
  ModelOptions options;
  int max_new_tokens = 32;
  int batch = 32;
};

absl::Status ParseInt(const std::string& flag, const std::string& text,
                      int* value) {
  if (!absl::SimpleAtoi(text, value) || *value < 1)
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be a positive integer, not '", text, "'"));
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : a.substr(eq + 1);
    absl::Status s;
    if (name == "--model_dir") {
      f.model_dir = value;
    } else if (name == "--requests") {
      f.requests = value;
    } else if (name == "--out") {
      f.out = value;
    } else if (name == "--compute_type") {
      absl::StatusOr<ComputeType> type = ParseComputeType(value);
      if (!type.ok()) return type.status();
      f.options.precision.compute_type = *type;
    } else if (name == "--backend") {
      if (value != "dnnl" && value != "reference")
        return absl::InvalidArgumentError(
            "--backend must be dnnl or "
            "reference, not '" +
            value + "'");
      f.options.backend =
          value == "dnnl" ? Backend::kDnnl : Backend::kReference;
    } else if (name == "--max_new_tokens") {
      s = ParseInt(name, value, &f.max_new_tokens);
    } else if (name == "--batch") {
      s = ParseInt(name, value, &f.batch);
    } else if (name == "--threads") {
      s = ParseInt(name, value, &f.options.threads);
    } else {
      return absl::InvalidArgumentError("unknown flag " + a);
    }
    if (!s.ok()) return s;
  }
  if (f.model_dir.empty() || f.requests.empty() || f.out.empty())
    return absl::InvalidArgumentError(
        "--model_dir, --requests and --out are required");
  return f;
}

int Main(int argc, char** argv) {
  absl::StatusOr<Flags> flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr,
                 "decode_tool: %s\nusage: %s --model_dir=DIR --requests=FILE "
                 "--out=FILE [--compute_type=float32|int8|bfloat16] "
                 "[--max_new_tokens=32] [--batch=32] [--threads=1] "
                 "[--backend=dnnl|reference]\n",
                 std::string(flags.status().message()).c_str(), argv[0]);
    return 2;
  }
  auto fail = [](const absl::Status& s) {
    std::fprintf(stderr, "decode_tool: %s\n", s.ToString().c_str());
    return 2;
  };
  absl::StatusOr<std::vector<Request>> requests = ReadRequests(flags->requests);
  if (!requests.ok()) return fail(requests.status());
  absl::StatusOr<std::unique_ptr<Model>> model =
      Model::Load(flags->model_dir, flags->options);
  if (!model.ok()) return fail(model.status());
  absl::StatusOr<std::vector<SequenceResult>> results =
      DecodeAll(**model, *requests, flags->max_new_tokens, flags->batch);
  if (!results.ok()) return fail(results.status());
  std::ofstream out(flags->out);
  out << ToJson(*results).dump() << "\n";
  if (!out.good())
    return fail(absl::UnavailableError("cannot write " + flags->out));
  return 0;
}

}  // namespace
}  // namespace attnserve::engine

int main(int argc, char** argv) { return attnserve::engine::Main(argc, argv); }
