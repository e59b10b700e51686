#pragma once
// Abseil 20220623 ships no status macros; these two are all we need.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ATTNSERVE_CONCAT_INNER(a, b) a##b
#define ATTNSERVE_CONCAT(a, b) ATTNSERVE_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    ::absl::Status _attnserve_status = (expr);             \
    if (!_attnserve_status.ok()) return _attnserve_status; \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` declares/assigns x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(ATTNSERVE_CONCAT(_attnserve_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
