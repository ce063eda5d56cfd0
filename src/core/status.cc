#include "src/core/status.h"

#include <cstdio>
#include <cstring>

namespace chorus {

const char* codeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Code::kNotInitialized:
      return "NOT_INITIALIZED";
    case Code::kSystem:
      return "SYSTEM_ERROR";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kUnauthenticated:
      return "UNAUTHENTICATED";
    case Code::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case Code::kAborted:
      return "ABORTED";
    case Code::kRemoved:
      return "REMOVED";
    case Code::kProtocol:
      return "PROTOCOL_ERROR";
    case Code::kDataLoss:
      return "DATA_LOSS";
    case Code::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case Code::kUnimplemented:
      return "UNIMPLEMENTED";
    case Code::kInProgress:
      return "IN_PROGRESS";
  }
  return "UNKNOWN";
}

std::string Status::toString() const {
  if (isOk()) return "OK";
  return std::string(codeName(code_)) + ": " + message_;
}

Status Status::withContext(const std::string& context) const {
  if (isOk()) return *this;
  return Status(code_, context + ": " + message_);
}

Status systemError(const std::string& what, int err) {
  return Status(Code::kSystem, what + ": " + std::strerror(err));
}

void checkFailed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "chorus: CHECK failed at %s:%d: %s%s%s\n", file, line, cond,
               msg.empty() ? "" : " -- ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace chorus
