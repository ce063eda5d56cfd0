#include "src/core/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace chorus {
namespace {

LogLevel parseLevel(const char* s) {
  if (!s) return LogLevel::kWarn;
  if (!std::strcmp(s, "error")) return LogLevel::kError;
  if (!std::strcmp(s, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(s, "info")) return LogLevel::kInfo;
  if (!std::strcmp(s, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(s, "trace")) return LogLevel::kTrace;
  return LogLevel::kWarn;
}

std::atomic<int>& levelRef() {
  static std::atomic<int> level{static_cast<int>(parseLevel(std::getenv("CHORUS_LOG_LEVEL")))};
  return level;
}

std::mutex& tagMutex() {
  static std::mutex mu;
  return mu;
}
std::string& tagRef() {
  static std::string tag;
  return tag;
}

}  // namespace

LogLevel logLevel() {
  return static_cast<LogLevel>(levelRef().load(std::memory_order_relaxed));
}
void setLogLevel(LogLevel level) {
  levelRef().store(static_cast<int>(level));
}
void setLogTag(const std::string& tag) {
  std::lock_guard<std::mutex> lock(tagMutex());
  tagRef() = tag;
}

void logMessage(LogLevel level, const char* file, int line, const std::string& msg) {
  static const char* kNames[] = {"E", "W", "I", "D", "T"};
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  std::string tag;
  {
    std::lock_guard<std::mutex> lock(tagMutex());
    tag = tagRef();
  }
  std::fprintf(stderr, "[chorus %s %d%s%s %lld.%06lld %s:%d] %s\n", kNames[static_cast<int>(level)],
               static_cast<int>(getpid()), tag.empty() ? "" : " ", tag.c_str(),
               static_cast<long long>(now / 1000000), static_cast<long long>(now % 1000000), base,
               line, msg.c_str());
}

}  // namespace chorus
