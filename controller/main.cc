// nas_controller: the front door. Serves JobService (nasctl) and TaskService
// (workers) and runs each job's K replica loops.
#include <memory>

#include "absl/flags/flag.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/signals.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"

ABSL_FLAG(std::string, data_dir, "", "Directory of the trial store.");

namespace {
constexpr int kDefaultPort = 7070;
}  // namespace

int main(int argc, char** argv) {
  nas::InitProcess(argc, argv,
                   "nas_controller --data_dir=DIR --parameter_servers=HOST:PORT,... "
                   "[--port=7070] [--metrics_port=0]");
  nas::GrpcServerOptions options = nas::ServerOptionsFromFlags("nas_controller");
  if (options.port < 0) options.port = kDefaultPort;

  auto server = nas::GrpcServer::Create(options);
  if (!server.ok()) {
    NAS_LOG(Error) << server.status();
    return 1;
  }
  nas::v1::JobService::Service job_service;
  nas::v1::TaskService::Service task_service;
  if (absl::Status started = (*server)->Start({&job_service, &task_service}); !started.ok()) {
    NAS_LOG(Error) << started;
    return 1;
  }
  const int signal_number = nas::WaitForShutdownSignal();
  NAS_LOG(Info) << "signal " << signal_number << ": shutting down";
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
