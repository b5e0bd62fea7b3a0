// RETURN_IF_ERROR and ASSIGN_OR_RETURN for absl::Status / absl::StatusOr.
// Debian's abseil (20220623) has no status macros of its own.
#ifndef NAS_COMMON_STATUS_MACROS_H_
#define NAS_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NAS_STATUS_CONCAT_INNER_(a, b) a##b
#define NAS_STATUS_CONCAT_(a, b) NAS_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// when it is not OK.
#define RETURN_IF_ERROR(expr)                         \
  do {                                                \
    ::absl::Status nas_status_ = (expr);              \
    if (!nas_status_.ok()) return nas_status_;        \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (an absl::StatusOr<T>); on
// error returns its status, otherwise moves the value into `lhs`, which may be
// a declaration (`auto x`) or an existing variable.
#define ASSIGN_OR_RETURN(lhs, expr) \
  NAS_ASSIGN_OR_RETURN_IMPL_(NAS_STATUS_CONCAT_(nas_statusor_, __LINE__), lhs, expr)

#define NAS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                               \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // NAS_COMMON_STATUS_MACROS_H_
