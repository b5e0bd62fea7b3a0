// Benchmark: the control plane at the paper's configuration. Starts S
// parameter-server processes and the controller (real binaries, 127.0.0.1),
// then W simulated workers (threads in this process) that acquire, "evaluate"
// in zero time with a synthetic reward, and report. A REINFORCE job with K
// replicas x m children keeps K*m children in flight. Prints sustained
// evaluations/s, report latency p50/p99, controller CPU seconds per
// evaluation, parameter-server pushes/s, and the resident memory of every
// process; and, in the same run (before and after), bare gRPC unary calls/s
// against a trivial service as the machine's limit.
//   bazel build //tests:control_plane_bench
//   TEST_SRCDIR=$PWD/bazel-bin/tests/control_plane_bench.runfiles TEST_TMPDIR=/tmp/cpb \
//     bazel-bin/tests/control_plane_bench --shards=20 --replicas=100 --children=8 --workers=800
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_server.h"
#include "common/http_client.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/parameter_server.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"
#include "tests/test_util.h"

ABSL_FLAG(int, shards, 20, "S");
ABSL_FLAG(int, replicas, 100, "K");
ABSL_FLAG(int, children, 8, "m");
ABSL_FLAG(int, workers, 800, "W simulated workers");
ABSL_FLAG(bool, acquire_next, true, "Reports ask for the next task (as nas_worker does).");
ABSL_FLAG(absl::Duration, measure, absl::Seconds(20), "Measurement window.");
ABSL_FLAG(std::string, runfiles, "", "Directory with the binaries (default: bazel run's runfiles).");

namespace {

double ProcessCpuSeconds(int pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t close = content.rfind(')');
  std::vector<std::string> fields = absl::StrSplit(content.substr(close + 2), ' ');
  return (std::stod(fields[11]) + std::stod(fields[12])) / sysconf(_SC_CLK_TCK);
}

double ResidentMiB(int pid) {
  std::ifstream statm(absl::StrCat("/proc/", pid, "/statm"));
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE) / 1048576.0;
}

class Echo final : public nas::v1::TaskService::Service {
  grpc::Status ReportResult(grpc::ServerContext*, const nas::v1::ReportResultRequest*,
                            nas::v1::ReportResultResponse*) override {
    return grpc::Status::OK;
  }
};

// The limit: bare gRPC unary calls/s on this machine, min(W, 64) client
// threads calling a trivial service for 5 s.
double MeasureEcho(int W) {
  Echo echo;
  nas::GrpcServerOptions echo_options;
  echo_options.host = "127.0.0.1";
  echo_options.metrics_port = -1;
  auto echo_server = nas::GrpcServer::Create(echo_options).value();
  (void)echo_server->Start({&echo});
  std::atomic<int64_t> echoes{0};
  std::atomic<bool> echo_stop{false};
  auto echo_channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", echo_server->port()),
                                          grpc::InsecureChannelCredentials());
  std::vector<std::thread> echo_threads;
  for (int t = 0; t < std::min(W, 64); ++t) {
    echo_threads.emplace_back([&] {
      auto stub = nas::v1::TaskService::NewStub(echo_channel);
      nas::v1::ReportResultRequest request;
      while (!echo_stop) {
        nas::v1::ReportResultResponse response;
        grpc::ClientContext context;
        if (stub->ReportResult(&context, request, &response).ok()) ++echoes;
      }
    });
  }
  absl::SleepFor(absl::Seconds(5));
  echo_stop = true;
  for (std::thread& t : echo_threads) t.join();
  echo_server->Shutdown(absl::Seconds(1));
  return echoes.load() / 5.0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int S = absl::GetFlag(FLAGS_shards), K = absl::GetFlag(FLAGS_replicas),
            M = absl::GetFlag(FLAGS_children), W = absl::GetFlag(FLAGS_workers);
  const double echo_before = MeasureEcho(W);
  const std::string dir = nas::testing::NewTempDir("control-plane");
  std::vector<nas::testing::RunningServer> shards;
  std::vector<std::string> addresses;
  for (int i = 0; i < S; ++i) {
    (void)nas::MakeDirectories(absl::StrCat(dir, "/ps", i));
    auto ps = nas::testing::StartServer(
        "parameter_server/nas_parameter_server",
        {absl::StrCat("--shard_index=", i), absl::StrCat("--num_shards=", S),
         absl::StrCat("--data_dir=", dir, "/ps", i), "--checkpoint_every_updates=0",
         "--checkpoint_interval=60s", "--log_level=warning"},
        absl::StrCat(dir, "/ps", i));
    if (!ps.ok()) {
      std::fprintf(stderr, "%s\n", std::string(ps.status().message()).c_str());
      return 1;
    }
    addresses.push_back(absl::StrCat("127.0.0.1:", ps->ready.grpc_port));
    shards.push_back(std::move(*ps));
  }
  auto controller = nas::testing::StartServer(
      "controller/nas_controller",
      {absl::StrCat("--data_dir=", dir, "/controller"),
       absl::StrCat("--parameter_servers=", absl::StrJoin(addresses, ",")), "--sync_every_commit=false",
       "--log_level=warning"},
      dir);
  if (!controller.ok()) {
    std::fprintf(stderr, "%s\n", std::string(controller.status().message()).c_str());
    return 1;
  }
  const std::string target = absl::StrCat("127.0.0.1:", controller->ready.grpc_port);
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 8; ++c) {
    args.SetInt("nas.channel", c);  // distinct channels spread the load
    channels.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }
  auto jobs = nas::v1::JobService::NewStub(channels[0]);
  nas::v1::SubmitJobRequest submit;
  submit.set_spec_yaml(absl::StrCat(R"(
name: control-plane
search_space:
  macro_cnn: {filter_heights: [1, 3, 5, 7], filter_widths: [1, 3, 5, 7], num_filters: [24, 36, 48, 64],
              strides: [1, 2, 3], skip_connections: true, depth: {initial_layers: 6, max_layers: 6}}
strategy: {name: reinforce}
parallelism: {num_replicas: )", K, ", children_per_replica: ", M, R"(}
budget: {max_trials: 10000000}
evaluator: {synthetic: {}, lease_seconds: 60}
)"));
  nas::v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext context;
    grpc::Status status = jobs->SubmitJob(&context, submit, &submitted);
    if (!status.ok()) {
      std::fprintf(stderr, "submit: %s\n", status.error_message().c_str());
      return 1;
    }
  }
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::atomic<int64_t> reports{0};
  std::atomic<int64_t> duplicates{0};
  std::atomic<int64_t> acquires{0};
  const bool acquire_next = absl::GetFlag(FLAGS_acquire_next);
  // Each simulated worker adds its report latencies when it stops.
  struct Latencies {
    absl::Mutex mu;
    std::vector<double> ms ABSL_GUARDED_BY(mu);
  } collected;
  std::vector<std::thread> workers;
  for (int w = 0; w < W; ++w) {
    workers.emplace_back([&, w] {
      auto stub = nas::v1::TaskService::NewStub(channels[w % channels.size()]);
      const std::string id = absl::StrCat("sim-", w);
      std::vector<double> local;
      nas::v1::AcquireTaskResponse response;
      while (!stop) {
        if (!response.has_task()) {
          nas::v1::AcquireTaskRequest request;
          request.set_worker_id(id);
          request.set_wait_seconds(1);
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
          if (!stub->AcquireTask(&context, request, &response).ok() || !response.has_task()) continue;
          if (measuring) ++acquires;
        }
        nas::v1::ReportResultRequest report;
        report.set_task_id(response.task().task_id());
        report.set_worker_id(id);
        report.set_acquire_next(acquire_next);
        report.mutable_metrics()->set_reward(0.5);
        report.mutable_metrics()->set_accuracy(0.5);
        nas::v1::ReportResultResponse ack;
        grpc::ClientContext report_context;
        report_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
        const absl::Time t0 = absl::Now();
        const bool reported = stub->ReportResult(&report_context, report, &ack).ok();
        response.Clear();
        if (reported && ack.has_next_task()) *response.mutable_task() = ack.next_task();
        if (reported && measuring) {
          if (ack.duplicate()) ++duplicates;
          local.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
          ++reports;
        }
      }
      absl::MutexLock lock(&collected.mu);
      collected.ms.insert(collected.ms.end(), local.begin(), local.end());
    });
  }
  absl::SleepFor(absl::Seconds(5));  // warm-up: replicas initialise and fill the queue
  auto job_now = [&] {
    nas::v1::GetJobRequest request;
    request.set_job_id(submitted.job().job_id());
    nas::v1::Job job;
    grpc::ClientContext context;
    (void)jobs->GetJob(&context, request, &job);
    return job;
  };
  // Calls that carried pushes, summed over the shards (the controller
  // coalesces concurrent pushes to a shard into PushBatch calls).
  auto push_calls_now = [&] {
    int64_t calls = 0;
    for (const std::string& address : addresses) {
      auto stub = nas::v1::ParameterServer::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      nas::v1::GetShardInfoRequest request;
      nas::v1::GetShardInfoResponse info;
      grpc::ClientContext context;
      if (stub->GetShardInfo(&context, request, &info).ok()) calls += info.push_calls();
    }
    return calls;
  };
  const int64_t push_calls0 = push_calls_now();
  const nas::v1::Job job0 = job_now();
  const double cpu0 = ProcessCpuSeconds(controller->ready.pid);
  std::vector<double> ps_cpu0;
  for (auto& ps : shards) ps_cpu0.push_back(ProcessCpuSeconds(ps.ready.pid));
  measuring = true;
  const absl::Time start = absl::Now();
  absl::SleepFor(absl::GetFlag(FLAGS_measure));
  measuring = false;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t evaluations = reports.load();
  const double controller_cpu = ProcessCpuSeconds(controller->ready.pid) - cpu0;
  double ps_cpu = 0;
  for (size_t i = 0; i < shards.size(); ++i) ps_cpu += ProcessCpuSeconds(shards[i].ready.pid) - ps_cpu0[i];
  const nas::v1::Job job1 = job_now();
  const int64_t push_calls = push_calls_now() - push_calls0;
  const int64_t pushes = job1.gradient_pushes() - job0.gradient_pushes();
  const int64_t stored = job1.trials_succeeded() - job0.trials_succeeded();
  double controller_rss = ResidentMiB(controller->ready.pid), ps_rss = 0;
  for (auto& ps : shards) ps_rss = std::max(ps_rss, ResidentMiB(ps.ready.pid));
  stop = true;
  for (std::thread& t : workers) t.join();
  std::vector<double> latencies_ms;
  {
    absl::MutexLock lock(&collected.mu);
    latencies_ms.swap(collected.ms);
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());

  // The limit again, after the run (the machine's speed drifts: the bound
  // uses the mean of the calls/s measured before and after).
  const double echo_after = MeasureEcho(W);
  const double echo_per_second = (echo_before + echo_after) / 2;
  const double per_second = evaluations / seconds;
  // An evaluation costs at most 2 worker RPCs (acquire, report; a report
  // that brings the next task saves the acquire) plus, per m children, one
  // replica round: 1 push to each of S shards (the push returns θ for the
  // next round, so only a replica's first round pulls). Pushes count as one
  // call each although the controller sends concurrent pushes to a shard
  // together in PushBatch calls (push_calls_per_shard_push): the bound stays
  // that of the protocol's calls, not of the fewer calls coalescing makes.
  const double rpcs_per_evaluation =
      (evaluations > 0 ? 1.0 + static_cast<double>(acquires.load()) / evaluations : 2.0) +
      1.0 * S / M;
  std::printf("config S=%d K=%d m=%d W=%d\n", S, K, M, W);
  std::printf("evaluations_per_second %.1f evaluations/s (goal 1000, ratio %.2f)\n", per_second, per_second / 1000);
  std::printf("report_latency_p50 %.2f ms\n", latencies_ms.empty() ? 0 : latencies_ms[latencies_ms.size() / 2]);
  std::printf("report_latency_p99 %.2f ms\n",
              latencies_ms.empty() ? 0 : latencies_ms[std::min(latencies_ms.size() - 1, latencies_ms.size() * 99 / 100)]);
  std::printf("controller_cpu_seconds_per_evaluation %.6f s\n", evaluations ? controller_cpu / evaluations : 0);
  std::printf("parameter_server_cpu_seconds_total %.2f s\n", ps_cpu);
  std::printf("gradient_pushes_per_second %.1f pushes/s (each to %d shards)\n",
              pushes / seconds, S);
  std::printf(
      "push_calls_per_shard_push %.3f (PushBatch calls / pushes those shards applied)\n",
      pushes > 0 ? static_cast<double>(push_calls) / (static_cast<double>(pushes) * S) : 0.0);
  std::printf("acquire_calls_per_evaluation %.2f (the rest came with the report)\n",
              evaluations > 0 ? static_cast<double>(acquires.load()) / evaluations : 0.0);
  std::printf("duplicate_reports %lld\n", static_cast<long long>(duplicates.load()));
  std::printf("trials_stored_per_second %.1f trials/s (succeeded in the trial store)\n",
              stored / seconds);
  std::printf("controller_resident_mib %.1f MiB\n", controller_rss);
  std::printf("parameter_server_max_resident_mib %.1f MiB\n", ps_rss);
  std::printf("echo_calls_per_second %.1f calls/s (mean of %.1f before and %.1f after the run)\n",
              echo_per_second, echo_before, echo_after);
  std::printf("evaluations_vs_echo_bound %.3f (goal 0.5; bound = echo / %.1f RPCs per evaluation)\n",
              per_second / (echo_per_second / rpcs_per_evaluation), rpcs_per_evaluation);
  (void)controller->process.Signal(SIGTERM);
  (void)controller->process.Wait(absl::Seconds(20));
  for (auto& ps : shards) {
    (void)ps.process.Signal(SIGTERM);
    (void)ps.process.Wait(absl::Seconds(20));
  }
  return 0;
}
