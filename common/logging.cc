#include "common/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace nas {
namespace {

std::atomic<int> min_level{static_cast<int>(LogLevel::kInfo)};

const char* Basename(const char* file) {
  // Keep "dir/file.cc" so lines are easy to find in the tree.
  const char* last = std::strrchr(file, '/');
  if (last == nullptr) return file;
  const char* p = last;
  while (p > file && *(p - 1) != '/') --p;
  return p;
}

}  // namespace

void SetMinLogLevel(LogLevel level) { min_level.store(static_cast<int>(level)); }

bool ParseLogLevel(const char* text, LogLevel* level) {
  std::string t(text);
  if (t == "info") *level = LogLevel::kInfo;
  else if (t == "warning") *level = LogLevel::kWarning;
  else if (t == "error") *level = LogLevel::kError;
  else return false;
  return true;
}

bool LogLevelEnabled(LogLevel level) {
  return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed);
}

LogMessage::LogMessage(LogLevel level, const char* file, int line) : level_(level) {
  static const char kLetters[] = {'I', 'W', 'E'};
  stream_ << kLetters[static_cast<int>(level_)] << ' '
          << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())
          << ' ' << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  const std::string line = stream_.str();
  // One write per line keeps lines from different threads whole.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace nas
