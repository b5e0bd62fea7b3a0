#include "client/logs_command.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/printable.h"

namespace nas::client {

absl::Status RunLogs(const LogsOptions& options, v1::JobService::StubInterface* stub, std::ostream& out) {
  v1::GetTrialLogsRequest request;
  request.set_job_id(options.job_id);
  request.set_trial_id(options.trial_id);
  request.set_attempt(options.attempt);
  std::string partial;  // the start of a line whose newline has not come yet
  bool first = true;
  while (true) {
    v1::GetTrialLogsResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options.call_timeout));
    absl::Status status = FromGrpcStatus(stub->GetTrialLogs(&context, request, &response), "GetTrialLogs");
    if (!status.ok()) return status;
    if (first && response.attempt() > 0) {
      // Followed as the attempt it is now, even when a retry starts.
      request.set_attempt(response.attempt());
      out << "# trial " << EscapeUnprintable(options.trial_id) << ", attempt " << response.attempt() << "\n";
    }
    first = false;
    if (response.offset() > request.offset()) {
      if (!partial.empty()) out << EscapeUnprintable(partial) << "\n";
      partial.clear();
      out << "[" << (response.offset() - request.offset()) << " earlier bytes are no longer kept]\n";
    }
    partial += response.data();
    size_t start = 0;
    for (size_t newline; (newline = partial.find('\n', start)) != std::string::npos; start = newline + 1) {
      out << EscapeUnprintable(absl::string_view(partial).substr(start, newline - start)) << "\n";
    }
    partial.erase(0, start);
    out.flush();
    request.set_offset(std::max(response.next_offset(), request.offset()));
    if (response.complete() || !options.follow) {
      if (!partial.empty()) out << EscapeUnprintable(partial) << "\n";
      out.flush();
      return absl::OkStatus();
    }
    absl::SleepFor(options.poll_interval);
  }
}

}  // namespace nas::client
