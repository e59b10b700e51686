#include "tests/client/fake_seq2seq.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace attnserve::client::testing {

grpc::Status FakeSeq2Seq::Answer(grpc::ServerContext* context,
                                 const v1::GenerateRequest& request,
                                 v1::GenerateResponse* response) {
  if (request.input_ids().empty() == request.text().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "exactly one of input_ids and text must be set");
  }
  for (int id : request.input_ids()) {
    if (id < 0 || id >= kVocabSize) {
      return grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("input_ids: ", id, " is outside [0, ", kVocabSize, ")"));
    }
  }
  if (request.max_new_tokens() == kRejectMaxNewTokens) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "queue full (fake)");
  }
  if (!request.input_ids().empty() && request.input_ids(0) == kHoldId) {
    while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status(grpc::StatusCode::CANCELLED, "client gave up");
  }
  if (!request.text().empty()) {
    std::string upper = request.text();
    for (char& c : upper) c = static_cast<char>(std::toupper(c));
    response->set_text(upper);
    for (char c : upper) response->add_output_ids(c % kVocabSize);
  } else {
    const int n = request.max_new_tokens() == 0 ? kDefaultMaxNewTokens
                                                : request.max_new_tokens();
    for (int i = 0; i < n; ++i) {
      response->add_output_ids(
          (request.input_ids(i % request.input_ids_size()) + 1) % kVocabSize);
      if (request.return_log_probs()) response->add_log_probs(-0.5f);
    }
  }
  // The controls' answers: top log-probs (the token, then the next ids),
  // other hypotheses (each token + k), the seed of a sampled request.
  for (int i = 0; i < response->output_ids_size(); ++i) {
    if (request.top_log_probs() == 0) break;
    v1::TopLogProbs* top = response->add_top_log_probs();
    for (uint32_t j = 0; j < request.top_log_probs(); ++j) {
      v1::TokenLogProb* entry = top->add_tokens();
      entry->set_token_id((response->output_ids(i) + j) % kVocabSize);
      entry->set_log_prob(-0.5f - j);
    }
  }
  for (uint32_t k = 1; k < request.num_return_sequences(); ++k) {
    v1::Hypothesis* other = response->add_alternatives();
    for (int id : response->output_ids()) {
      other->add_output_ids((id + k) % kVocabSize);
    }
    if (!response->text().empty()) {
      other->set_text(absl::StrCat(response->text(), "-", k));
    }
    other->set_score(-1.0f * k);
    other->set_finish_reason(v1::FINISH_REASON_LENGTH);
  }
  if (request.temperature() > 0 || request.do_sample()) {
    response->set_seed(request.seed() != 0 ? request.seed() : 4242);
  }
  response->set_finish_reason(v1::FINISH_REASON_LENGTH);
  response->set_score(-0.5f * response->output_ids_size());
  response->mutable_timing()->set_total_us(1500);
  response->mutable_timing()->set_batch_size(1);
  response->set_request_id(request.request_id().empty() ? "fake-1"
                                                        : request.request_id());
  return grpc::Status::OK;
}

int FakeSeq2Seq::Tokens(const v1::GenerateResponse& response) {
  int tokens = response.output_ids_size();
  for (const v1::Hypothesis& other : response.alternatives()) {
    tokens += other.output_ids_size();
  }
  return tokens;
}

grpc::Status FakeSeq2Seq::Count(grpc::Status status, int tokens) {
  absl::MutexLock lock(&mu_);
  ++status_counts_[status.error_code()];
  if (status.ok()) generated_tokens_ += tokens;
  return status;
}

grpc::Status FakeSeq2Seq::Generate(grpc::ServerContext* context,
                                   const v1::GenerateRequest* request,
                                   v1::GenerateResponse* response) {
  grpc::Status status = Answer(context, *request, response);
  return Count(status, Tokens(*response));
}

grpc::Status FakeSeq2Seq::GenerateStream(
    grpc::ServerContext* context, const v1::GenerateRequest* request,
    grpc::ServerWriter<v1::GenerateResponse>* writer) {
  v1::GenerateResponse whole;
  grpc::Status status = Answer(context, *request, &whole);
  if (!status.ok()) return Count(status, 0);
  for (int i = 0; i < whole.output_ids_size(); ++i) {
    v1::GenerateResponse piece;
    piece.add_output_ids(whole.output_ids(i));
    if (!whole.text().empty()) piece.set_text(whole.text().substr(i, 1));
    if (i < whole.log_probs_size()) piece.add_log_probs(whole.log_probs(i));
    if (i < whole.top_log_probs_size()) {
      *piece.add_top_log_probs() = whole.top_log_probs(i);
    }
    piece.set_request_id(whole.request_id());
    writer->Write(piece);
  }
  v1::GenerateResponse last;
  last.set_finish_reason(whole.finish_reason());
  last.set_score(whole.score());
  *last.mutable_timing() = whole.timing();
  last.set_request_id(whole.request_id());
  *last.mutable_alternatives() = whole.alternatives();
  last.set_seed(whole.seed());
  writer->Write(last);
  return Count(grpc::Status::OK, Tokens(whole));
}

grpc::Status FakeSeq2Seq::GetModelInfo(grpc::ServerContext* context,
                                       const v1::GetModelInfoRequest* request,
                                       v1::GetModelInfoResponse* response) {
  response->set_model_name("fake");
  response->set_config_json(absl::StrCat(
      R"({"vocab_size": )", kVocabSize,
      R"(, "pad_id": 0, "bos_id": 1, "eos_id": 2, "d_model": 8})"));
  response->set_max_batch_size(8);
  response->set_max_input_tokens(64);
  response->set_max_new_tokens_limit(32);
  response->set_has_tokenizer(true);
  return grpc::Status::OK;
}

std::map<grpc::StatusCode, int> FakeSeq2Seq::status_counts() const {
  absl::MutexLock lock(&mu_);
  return status_counts_;
}

int FakeSeq2Seq::generated_tokens() const {
  absl::MutexLock lock(&mu_);
  return generated_tokens_;
}

FakeServer::FakeServer(std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      "127.0.0.1:0",
      credentials != nullptr ? credentials : grpc::InsecureServerCredentials(),
      &port_);
  builder.RegisterService(&service_);
  server_ = builder.BuildAndStart();
  SetServing(true);
}

FakeServer::~FakeServer() {
  // Held calls end when their clients' deadlines pass; do not wait longer.
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

std::string FakeServer::address() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus("", serving);
  health->SetServingStatus("attnserve.v1.Seq2Seq", serving);
}

std::string UnusedAddress() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
}

}  // namespace attnserve::client::testing
