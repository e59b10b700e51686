#pragma once
// A tiny in-process attnserve.v1.Seq2Seq on a loopback port, for the client's
// tests: deterministic answers, chosen failures, and counts of what it
// answered, so that tests can compare what the tools report with what the
// server did.
//
// Generate/GenerateStream rules:
//   - neither or both of input_ids and text, or an id outside [0, kVocabSize):
//     INVALID_ARGUMENT;
//   - max_new_tokens == kRejectMaxNewTokens: RESOURCE_EXHAUSTED;
//   - input_ids[0] == kHoldId: held until the client gives up (deadline);
//   - otherwise max_new_tokens (kDefaultMaxNewTokens when 0) tokens, token i =
//     (input_ids[i % n] + 1) % kVocabSize, finish reason LENGTH; a text
//     request gets the text upper-cased and one token per character.
//     GenerateStream sends one message per token, then a last message with the
//     finish reason, score and timing and no tokens;
//   - controls: top_log_probs = t gives each token t entries (the token, then
//     the next ids, log-probs -0.5, -1.5, ...); num_return_sequences = n adds
//     n - 1 alternatives (hypothesis k: each token + k, text + "-k", score
//     -k); temperature > 0 or do_sample reports the request's seed, or 4242
//     when it is 0. A stream sends top log-probs with their tokens and the
//     alternatives and the seed in the last message.

#include <map>
#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "attnserve/v1/attnserve.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace attnserve::client::testing {

inline constexpr int kVocabSize = 100;
inline constexpr int kDefaultMaxNewTokens = 4;
inline constexpr int kRejectMaxNewTokens = 3;
inline constexpr int kHoldId = 99;

class FakeSeq2Seq final : public v1::Seq2Seq::Service {
 public:
  grpc::Status Generate(grpc::ServerContext* context,
                        const v1::GenerateRequest* request,
                        v1::GenerateResponse* response) override;
  grpc::Status GenerateStream(
      grpc::ServerContext* context, const v1::GenerateRequest* request,
      grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status GetModelInfo(grpc::ServerContext* context,
                            const v1::GetModelInfoRequest* request,
                            v1::GetModelInfoResponse* response) override;

  // Generate and GenerateStream calls answered, by status code.
  std::map<grpc::StatusCode, int> status_counts() const;
  // Tokens sent in calls that ended OK, the alternatives' included.
  int generated_tokens() const;

 private:
  static int Tokens(const v1::GenerateResponse& response);
  grpc::Status Answer(grpc::ServerContext* context,
                      const v1::GenerateRequest& request,
                      v1::GenerateResponse* response);
  grpc::Status Count(grpc::Status status, int tokens);

  mutable absl::Mutex mu_;
  std::map<grpc::StatusCode, int> status_counts_ ABSL_GUARDED_BY(mu_);
  int generated_tokens_ ABSL_GUARDED_BY(mu_) = 0;
};

// The fake plus gRPC's default health service on 127.0.0.1:<free port>.
class FakeServer {
 public:
  // `credentials`: of the port; null: plaintext.
  explicit FakeServer(
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~FakeServer();

  int port() const { return port_; }
  std::string address() const;
  FakeSeq2Seq& service() { return service_; }
  // Health of "" and "attnserve.v1.Seq2Seq" (SERVING after construction).
  void SetServing(bool serving);

 private:
  FakeSeq2Seq service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// A loopback address where nothing listens (a port that was free a moment
// ago).
std::string UnusedAddress();

}  // namespace attnserve::client::testing
