// Status and Result<T>: error values used everywhere inside Chorus. No
// exception crosses a module boundary; the C API maps Status to
// chorusResult_t (src/api/chorus_api.cc).
#pragma once

#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace chorus {

// Codes follow abseil's meaning where one exists:
//   kUnavailable       retry the same call later (coordinator unreachable)
//   kAborted           retry at a higher level: a peer was lost, new epoch
//   kFailedPrecondition fix the state first (wrong call order, peers disagree)
//   kDeadlineExceeded  a deadline passed
//   kDataLoss          data failed verification
// plus three Chorus-specific ones: kRemoved (this peer is no longer a member),
// kProtocol (malformed message) and kSystem (an OS call failed).
enum class Code : int {
  kOk = 0,
  kInvalidArgument,
  kFailedPrecondition,
  kNotInitialized,
  kSystem,
  kInternal,
  kUnavailable,
  kUnauthenticated,
  kDeadlineExceeded,
  kAborted,
  kRemoved,
  kProtocol,
  kDataLoss,
  kResourceExhausted,
  kUnimplemented,
  kInProgress,
};

const char* codeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool isOk() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message"
  std::string toString() const;
  // Same code, message prefixed with context ("while X: ...").
  Status withContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) {
  return Status(Code::kInvalidArgument, std::move(m));
}
inline Status failedPrecondition(std::string m) {
  return Status(Code::kFailedPrecondition, std::move(m));
}
inline Status internalError(std::string m) {
  return Status(Code::kInternal, std::move(m));
}
inline Status unavailable(std::string m) {
  return Status(Code::kUnavailable, std::move(m));
}
inline Status deadlineExceeded(std::string m) {
  return Status(Code::kDeadlineExceeded, std::move(m));
}
inline Status aborted(std::string m) {
  return Status(Code::kAborted, std::move(m));
}
inline Status protocolError(std::string m) {
  return Status(Code::kProtocol, std::move(m));
}
inline Status unauthenticated(std::string m) {
  return Status(Code::kUnauthenticated, std::move(m));
}
inline Status removedError(std::string m) {
  return Status(Code::kRemoved, std::move(m));
}
inline Status dataLoss(std::string m) {
  return Status(Code::kDataLoss, std::move(m));
}
inline Status unimplemented(std::string m) {
  return Status(Code::kUnimplemented, std::move(m));
}
inline Status resourceExhausted(std::string m) {
  return Status(Code::kResourceExhausted, std::move(m));
}
// errno-based system error: "what: strerror(err)".
Status systemError(const std::string& what, int err);

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(implicit)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
    if (std::get<Status>(v_).isOk()) v_ = Status(Code::kInternal, "Result built from OK status");
  }
  bool isOk() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOkStatus;
    return isOk() ? kOkStatus : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  T& operator*() { return value(); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void checkFailed(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace chorus

#define CHORUS_CONCAT_INNER(a, b) a##b
#define CHORUS_CONCAT(a, b) CHORUS_CONCAT_INNER(a, b)

#define CHORUS_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    ::chorus::Status chorus_status_ = (expr);          \
    if (!chorus_status_.isOk()) return chorus_status_; \
  } while (0)

#define CHORUS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.isOk()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define CHORUS_ASSIGN_OR_RETURN(lhs, expr) \
  CHORUS_ASSIGN_OR_RETURN_IMPL(CHORUS_CONCAT(chorus_result_, __LINE__), lhs, expr)

// Invariant checks: always on (also in release builds); abort loudly.
#define CHORUS_CHECK(cond)                                             \
  do {                                                                 \
    if (__builtin_expect(!(cond), 0))                                  \
      ::chorus::checkFailed(__FILE__, __LINE__, #cond, std::string()); \
  } while (0)
#define CHORUS_CHECK_MSG(cond, msg)                                                            \
  do {                                                                                         \
    if (__builtin_expect(!(cond), 0)) ::chorus::checkFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (0)
