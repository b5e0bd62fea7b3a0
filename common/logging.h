// One log format for every nas-service process, on stderr:
//   I 2026-11-24T03:55:01.123Z controller/main.cc:42] message
// Levels: I(nfo), W(arning), E(rror). The minimum level is set once from
// main (SetMinLogLevel). Thread-safe: each line is written with one call.
#ifndef NAS_COMMON_LOGGING_H_
#define NAS_COMMON_LOGGING_H_

#include <sstream>

namespace nas {

enum class LogLevel { kInfo = 0, kWarning = 1, kError = 2 };

void SetMinLogLevel(LogLevel level);
// Parses "info", "warning" or "error"; false on anything else.
bool ParseLogLevel(const char* text, LogLevel* level);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

bool LogLevelEnabled(LogLevel level);

}  // namespace nas

// A for statement, not an if, so `if (x) NAS_LOG(Info) << y; else ...` nests
// as written.
#define NAS_LOG(severity)                                                          \
  for (bool nas_log_enabled_ = ::nas::LogLevelEnabled(::nas::LogLevel::k##severity); \
       nas_log_enabled_; nas_log_enabled_ = false)                                 \
  ::nas::LogMessage(::nas::LogLevel::k##severity, __FILE__, __LINE__).stream()

#endif  // NAS_COMMON_LOGGING_H_
