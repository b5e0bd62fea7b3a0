// Benchmark: the control plane at the paper's configuration. Starts S
// parameter-server processes and the controller (real binaries, 127.0.0.1),
// then W simulated workers (threads in this process) that acquire, "evaluate"
// in zero time with a reward that is a deterministic function of the
// architecture (SyntheticReward below, which the policy can learn), and
// report. A REINFORCE job with K replicas x m children keeps K*m children in
// flight. Prints sustained evaluations/s, report latency p50/p99, controller
// CPU seconds per evaluation, parameter-server pushes/s, and the resident
// memory of every process; in the same run (before and after), bare gRPC
// unary calls/s against a trivial service as the machine's limit; and the
// proof that the controller's weights changed in the window and that it
// learned: every shard applied updates in the window, the weights pulled from
// the shards at its end differ from those at its start, and the window's mean
// reward is above that of the job's first K*m reports (sampled from the
// initial weights).
//
// Exits 1 naming the figure when evaluations/s misses
// --min_evaluations_per_second (default 2,000, the paper configuration's
// goal), the ratio to the echo bound misses --min_echo_bound_ratio (0.5),
// the weights did not change in the window, the controller did not learn, or
// the echo reference measured nothing.
//   bazel build //bench:control_plane_bench
//   bazel-bin/bench/control_plane_bench --shards=20 --replicas=100 --children=8 --workers=800 \
//     --measure=10s
// (bazel run //bench:control_plane_bench -- ... works too; tools/bench_control_plane.sh
// runs it with the scale curves.)
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_server.h"
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
ABSL_FLAG(std::string, runfiles, "",
          "Runfiles directory with the binaries (default: $TEST_SRCDIR, else this binary's "
          ".runfiles beside it).");
ABSL_FLAG(double, min_evaluations_per_second, 2000,
          "Goal for evaluations_per_second (the paper configuration's); 0 = none.");
ABSL_FLAG(double, min_echo_bound_ratio, 0.5, "Goal for evaluations_vs_echo_bound; 0 = none.");

namespace {

// The simulated workers' reward, as in controller/job_manager_test.cc: half
// for each layer with a 5x5 filter, half for each layer with 64 filters,
// averaged over the layers. In the job's search space below a uniform policy
// scores (1/16 + 1/4) / 2 = 0.156 on average and the best architecture 1, so
// a learning controller's mean reward rises.
double SyntheticReward(const nas::v1::Architecture& arch) {
  const auto& layers = arch.macro_cnn().layers();
  if (layers.empty()) return 0;
  int good = 0;
  for (const nas::v1::MacroCnnLayer& layer : layers) {
    good += (layer.filter_height() == 5 && layer.filter_width() == 5 ? 1 : 0) +
            (layer.num_filters() == 64 ? 1 : 0);
  }
  return static_cast<double>(good) / (2.0 * layers.size());
}

// Mean and standard error of the mean.
struct MeanAndError {
  double mean = 0;
  double error = 0;
  int64_t n = 0;
};

MeanAndError Summarize(const std::vector<double>& values) {
  MeanAndError r;
  r.n = static_cast<int64_t>(values.size());
  if (values.empty()) return r;
  for (double v : values) r.mean += v / values.size();
  double sq = 0;
  for (double v : values) sq += (v - r.mean) * (v - r.mean);
  r.error = values.size() > 1 ? std::sqrt(sq / (values.size() - 1) / values.size()) : 0;
  return r;
}

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
  // test_util starts the binaries from $TEST_SRCDIR (a runfiles tree).
  if (absl::Status s = nas::testing::UseRunfiles(argv[0], absl::GetFlag(FLAGS_runfiles)); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
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
  // Each simulated worker adds its report latencies and its (when, reward)
  // of every report, the warm-up's included, when it stops.
  struct Collected {
    absl::Mutex mu;
    std::vector<double> ms ABSL_GUARDED_BY(mu);
    std::vector<std::pair<absl::Time, double>> rewards ABSL_GUARDED_BY(mu);
  } collected;
  std::vector<std::thread> workers;
  for (int w = 0; w < W; ++w) {
    workers.emplace_back([&, w] {
      auto stub = nas::v1::TaskService::NewStub(channels[w % channels.size()]);
      const std::string id = absl::StrCat("sim-", w);
      std::vector<double> local;
      std::vector<std::pair<absl::Time, double>> local_rewards;
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
        const double reward = SyntheticReward(response.task().architecture());
        report.mutable_metrics()->set_reward(reward);
        report.mutable_metrics()->set_accuracy(reward);
        nas::v1::ReportResultResponse ack;
        grpc::ClientContext report_context;
        report_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
        const absl::Time t0 = absl::Now();
        const bool reported = stub->ReportResult(&report_context, report, &ack).ok();
        if (reported) local_rewards.emplace_back(absl::Now(), reward);
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
      collected.rewards.insert(collected.rewards.end(), local_rewards.begin(), local_rewards.end());
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
  // And each shard's version of the job's weights (the only job there): it
  // advances with every update the shard applies.
  struct ShardsInfo {
    int64_t push_calls = 0;
    std::vector<int64_t> versions;  // -1: the shard did not answer
  };
  auto shards_now = [&] {
    ShardsInfo r;
    for (const std::string& address : addresses) {
      auto stub = nas::v1::ParameterServer::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      nas::v1::GetShardInfoRequest request;
      nas::v1::GetShardInfoResponse info;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      int64_t version = -1;
      if (stub->GetShardInfo(&context, request, &info).ok()) {
        r.push_calls += info.push_calls();
        version = 0;
        for (const nas::v1::ShardJobInfo& job : info.jobs()) version += job.version();
      }
      r.versions.push_back(version);
    }
    return r;
  };
  // The job's weights, every shard's tensors by name (Pull, as a replica does).
  auto pull_weights = [&]() -> absl::StatusOr<std::map<std::string, std::vector<float>>> {
    std::map<std::string, std::vector<float>> weights;
    for (const std::string& address : addresses) {
      auto stub = nas::v1::ParameterServer::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      nas::v1::PullRequest request;
      request.set_job_id(submitted.job().job_id());
      nas::v1::PullResponse pulled;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
      grpc::Status status = stub->Pull(&context, request, &pulled);
      if (!status.ok()) {
        return absl::UnavailableError(
            absl::StrCat("Pull from ", address, ": ", status.error_message()));
      }
      for (const nas::v1::Tensor& t : pulled.tensors()) {
        weights[t.name()].assign(t.values().begin(), t.values().end());
      }
    }
    return weights;
  };
  const ShardsInfo shards0 = shards_now();
  const nas::v1::Job job0 = job_now();
  const double cpu0 = ProcessCpuSeconds(controller->ready.pid);
  std::vector<double> ps_cpu0;
  for (auto& ps : shards) ps_cpu0.push_back(ProcessCpuSeconds(ps.ready.pid));
  absl::StatusOr<std::map<std::string, std::vector<float>>> weights0 = pull_weights();
  const absl::Time start = absl::Now();
  measuring = true;
  absl::SleepFor(absl::GetFlag(FLAGS_measure));
  measuring = false;
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const int64_t evaluations = reports.load();
  const double controller_cpu = ProcessCpuSeconds(controller->ready.pid) - cpu0;
  double ps_cpu = 0;
  for (size_t i = 0; i < shards.size(); ++i) ps_cpu += ProcessCpuSeconds(shards[i].ready.pid) - ps_cpu0[i];
  const nas::v1::Job job1 = job_now();
  const ShardsInfo shards1 = shards_now();
  absl::StatusOr<std::map<std::string, std::vector<float>>> weights1 = pull_weights();
  const absl::Time end = start + absl::Seconds(seconds);
  // Root mean square of the change of every weight over the window (-1: a
  // pull failed or the tensors differ).
  double weights_change_rms = -1;
  std::string weights_error;
  if (!weights0.ok() || !weights1.ok()) {
    weights_error = std::string((weights0.ok() ? weights1 : weights0).status().message());
  } else if (weights0->size() != weights1->size() || weights0->empty()) {
    weights_error = absl::StrCat("pulled ", weights0->size(), " tensors, then ", weights1->size());
  } else {
    double sq = 0;
    int64_t n = 0;
    for (const auto& [name, before] : *weights0) {
      auto after = weights1->find(name);
      if (after == weights1->end() || after->second.size() != before.size()) {
        weights_error = absl::StrCat("tensor ", name, " changed shape or went missing");
        break;
      }
      for (size_t i = 0; i < before.size(); ++i) {
        sq += (after->second[i] - before[i]) * static_cast<double>(after->second[i] - before[i]);
      }
      n += static_cast<int64_t>(before.size());
    }
    if (weights_error.empty()) weights_change_rms = std::sqrt(sq / n);
  }
  const int64_t push_calls = shards1.push_calls - shards0.push_calls;
  // The fewest updates any shard applied in the window (-1: a shard did not answer).
  int64_t min_updates = std::numeric_limits<int64_t>::max();
  for (size_t i = 0; i < addresses.size(); ++i) {
    const int64_t updates = shards0.versions[i] < 0 || shards1.versions[i] < 0
                                ? -1
                                : shards1.versions[i] - shards0.versions[i];
    min_updates = std::min(min_updates, updates);
  }
  const int64_t pushes = job1.gradient_pushes() - job0.gradient_pushes();
  const int64_t stored = job1.trials_succeeded() - job0.trials_succeeded();
  double controller_rss = ResidentMiB(controller->ready.pid), ps_rss = 0;
  for (auto& ps : shards) ps_rss = std::max(ps_rss, ResidentMiB(ps.ready.pid));
  stop = true;
  for (std::thread& t : workers) t.join();
  std::vector<double> latencies_ms;
  std::vector<std::pair<absl::Time, double>> rewards;
  {
    absl::MutexLock lock(&collected.mu);
    latencies_ms.swap(collected.ms);
    rewards.swap(collected.rewards);
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  // Rewards of the job's first K*m reports (the first round of every
  // replica: the initial weights), and of the window, its first and last fifth.
  std::sort(rewards.begin(), rewards.end());
  std::vector<double> initial_rewards, window_rewards, first_rewards, last_rewards;
  for (const auto& [at, reward] : rewards) {
    if (static_cast<int64_t>(initial_rewards.size()) < static_cast<int64_t>(K) * M) {
      initial_rewards.push_back(reward);
    }
    if (at < start || at >= end) continue;
    window_rewards.push_back(reward);
    if (at < start + (end - start) / 5) first_rewards.push_back(reward);
    if (at >= end - (end - start) / 5) last_rewards.push_back(reward);
  }
  const MeanAndError initial = Summarize(initial_rewards), window = Summarize(window_rewards),
                     first = Summarize(first_rewards), last = Summarize(last_rewards);
  const double reward_gain = window.mean - initial.mean;
  // A rise of 3 standard errors of the difference is not chance.
  const double reward_gain_needed = 3 * std::hypot(initial.error, window.error);

  // The limit again, after the run (the machine's speed drifts: the bound
  // uses the mean of the calls/s measured before and after).
  const double echo_after = MeasureEcho(W);
  const double echo_per_second = (echo_before + echo_after) / 2;
  const double per_second = evaluations / seconds;
  const double min_per_second = absl::GetFlag(FLAGS_min_evaluations_per_second);
  const double min_bound_ratio = absl::GetFlag(FLAGS_min_echo_bound_ratio);
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
  if (min_per_second > 0) {
    std::printf("evaluations_per_second %.1f evaluations/s (goal >= %.0f, ratio %.2f)\n",
                per_second, min_per_second, per_second / min_per_second);
  } else {
    std::printf("evaluations_per_second %.1f evaluations/s\n", per_second);
  }
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
  const double bound_ratio = per_second / (echo_per_second / rpcs_per_evaluation);
  std::printf("evaluations_vs_echo_bound %.3f (goal >= %.2f; bound = echo / %.1f RPCs per evaluation)\n",
              bound_ratio, min_bound_ratio, rpcs_per_evaluation);
  std::printf("parameter_server_updates_min %lld (the fewest updates a shard applied in the window)\n",
              static_cast<long long>(min_updates));
  std::printf("weights_change_rms %.6f (root mean square change of the %s weights over the window)\n",
              weights_change_rms, "controller's");
  std::printf("reward_mean_initial %.4f (the job's first %lld reports; a uniform policy scores 0.156)\n",
              initial.mean, static_cast<long long>(initial.n));
  std::printf("reward_mean_window %.4f (%lld reports; first fifth %.4f, last fifth %.4f)\n",
              window.mean, static_cast<long long>(window.n), first.mean, last.mean);
  std::printf("reward_gain %.4f (window minus initial; goal > %.4f, 3 standard errors)\n",
              reward_gain, reward_gain_needed);
  std::fflush(stdout);

  std::vector<std::string> missed;
  if (!(echo_before > 0 && echo_after > 0)) {
    missed.push_back(absl::StrFormat(
        "echo_calls_per_second: the echo reference measured %.1f before and %.1f after",
        echo_before, echo_after));
  } else if (min_bound_ratio > 0 && !(bound_ratio >= min_bound_ratio)) {
    missed.push_back(absl::StrFormat("evaluations_vs_echo_bound %.3f misses its goal >= %.2f",
                                     bound_ratio, min_bound_ratio));
  }
  if (min_per_second > 0 && !(per_second >= min_per_second)) {
    missed.push_back(absl::StrFormat("evaluations_per_second %.1f misses its goal >= %.0f",
                                     per_second, min_per_second));
  }
  if (min_updates <= 0) {
    missed.push_back(absl::StrFormat(
        "parameter_server_updates_min %d: a shard's weights did not change in the window",
        min_updates));
  }
  if (!weights_error.empty()) {
    missed.push_back("weights_change_rms: pulling the weights failed: " + weights_error);
  } else if (!(weights_change_rms > 0)) {
    missed.push_back(absl::StrFormat(
        "weights_change_rms %g: the controller's weights did not change in the window",
        weights_change_rms));
  }
  if (initial.n == 0 || window.n == 0 || !(reward_gain > reward_gain_needed)) {
    missed.push_back(absl::StrFormat(
        "reward_gain %.4f (%.4f over %d initial reports -> %.4f over %d in the window) misses "
        "its goal > %.4f: the controller did not learn",
        reward_gain, initial.mean, initial.n, window.mean, window.n, reward_gain_needed));
  }
  (void)controller->process.Signal(SIGTERM);
  (void)controller->process.Wait(absl::Seconds(20));
  for (auto& ps : shards) {
    (void)ps.process.Signal(SIGTERM);
    (void)ps.process.Wait(absl::Seconds(20));
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
