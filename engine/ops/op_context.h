#pragma once
// State shared by every op call made from one inference thread: which backend
// runs the ops, how many OpenMP threads they may use, and the oneDNN engine,
// stream and primitive caches.

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace attnserve::engine {

enum class Backend {
  kReference,  // plain loops, single-threaded; the reference every fast body is
               // tested against
  kDnnl,       // oneDNN primitives (and oneDNN's sgemm) on its OpenMP team
};
absl::StatusOr<Backend> ParseBackend(absl::string_view name);  // "ref" | "dnnl"
const char* BackendName(Backend backend);

struct DnnlState;  // defined in dnnl_state.h, which only *_dnnl.cc files
                   // include

// Not thread-safe: one OpContext per inference thread, and every op call that
// uses it is made from that thread (it owns the OpenMP team; see env-notes on
// spin-waiting).
class OpContext {
 public:
  static absl::StatusOr<std::unique_ptr<OpContext>> Create(Backend backend,
                                                           int threads);
  ~OpContext();

  Backend backend() const { return backend_; }
  int threads() const { return threads_; }
  // Sets the calling thread's OpenMP team size to threads(). Entry points of
  // the network call it first, so a context may be used from any one thread at
  // a time.
  void Enter() const;
  // Only for *_dnnl.cc bodies; nullptr for the reference backend.
  DnnlState* dnnl() const { return dnnl_.get(); }

 private:
  // The constructor, the destructor and InitDnnl (which creates dnnl_) are
  // defined in op_context_dnnl.cc: they need DnnlState's definition, which only
  // *_dnnl.cc files see.
  OpContext();
  absl::Status InitDnnl();
  Backend backend_ = Backend::kReference;
  int threads_ = 1;
  std::unique_ptr<DnnlState> dnnl_;
};

}  // namespace attnserve::engine
