// Minimal leveled logging to stderr. Level from CHORUS_LOG_LEVEL
// (error, warn, info, debug, trace); default warn.
#pragma once

#include <sstream>
#include <string>

namespace chorus {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3, kTrace = 4 };

LogLevel logLevel();
void setLogLevel(LogLevel level);
void logMessage(LogLevel level, const char* file, int line, const std::string& msg);
// Short label of this process for log lines ("peer 3", "coordinator").
void setLogTag(const std::string& tag);

}  // namespace chorus

#define CHORUS_LOG(level, expr)                                                                  \
  do {                                                                                           \
    if (static_cast<int>(::chorus::LogLevel::level) <= static_cast<int>(::chorus::logLevel())) { \
      std::ostringstream chorus_log_os_;                                                         \
      chorus_log_os_ << expr;                                                                    \
      ::chorus::logMessage(::chorus::LogLevel::level, __FILE__, __LINE__, chorus_log_os_.str()); \
    }                                                                                            \
  } while (0)

#define LOG_ERROR(expr) CHORUS_LOG(kError, expr)
#define LOG_WARN(expr) CHORUS_LOG(kWarn, expr)
#define LOG_INFO(expr) CHORUS_LOG(kInfo, expr)
#define LOG_DEBUG(expr) CHORUS_LOG(kDebug, expr)
#define LOG_TRACE(expr) CHORUS_LOG(kTrace, expr)
