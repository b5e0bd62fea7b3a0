// `nasctl logs JOB TRIAL [--attempt N] [--follow]`: a trial attempt's output
// (the command evaluator's stdout and stderr, docs/command_evaluator.md) as
// the controller stores it (JobService.GetTrialLogs), every line escaped
// (common/printable.h) so no byte of it drives the terminal.
#ifndef NAS_CLIENT_LOGS_COMMAND_H_
#define NAS_CLIENT_LOGS_COMMAND_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/job_service.grpc.pb.h"

namespace nas::client {

struct LogsOptions {
  std::string job_id;
  std::string trial_id;
  // 0: the latest attempt with output (followed as that attempt).
  int attempt = 0;
  // Keep polling until the attempt's output is complete.
  bool follow = false;
  absl::Duration poll_interval = absl::Seconds(1);
  // Deadline of each call.
  absl::Duration call_timeout = absl::Seconds(30);
};

// Writes the log to `out`: lines escaped, newlines kept; a line is written
// once its newline arrived (or the log is complete). Bytes the controller no
// longer keeps (over its 1 MiB per attempt) are noted in one line.
absl::Status RunLogs(const LogsOptions& options, v1::JobService::StubInterface* stub, std::ostream& out);

}  // namespace nas::client

#endif  // NAS_CLIENT_LOGS_COMMAND_H_
