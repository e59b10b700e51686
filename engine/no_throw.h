#pragma once
// The engine's one exception boundary: every public entry point that may
// allocate (Model::Load, Generator::Add/Step, the Transformer's passes) runs
// its body through NoThrow, so that no exception leaves the engine and an
// allocation that fails is a status for the caller to contain.

#include <exception>
#include <new>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace attnserve::engine {

// Runs `body` (returning absl::Status): std::bad_alloc becomes
// RESOURCE_EXHAUSTED "out of memory <what>", any other std::exception
// (dnnl::error, which only *_dnnl.cc may name) INTERNAL "<what>: <e.what()>".
// `what` is a string or a callable returning one; a callable is only called on
// failure, so that a decode step builds no message while it succeeds.
template <typename What, typename Body>
absl::Status NoThrow(const What& what, Body body) {
  auto describe = [&what]() -> std::string {
    if constexpr (std::is_invocable_v<const What&>) {
      return std::string(what());
    } else {
      return std::string(absl::string_view(what));
    }
  };
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory ", describe()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(describe(), ": ", e.what()));
  }
}

}  // namespace attnserve::engine
