// Benchmark: 16 clients pulling and pushing a controller-sized model (~100 KB)
// through S parameter-server shards on 127.0.0.1 (S = 1, 4, 20 by default),
// through the controller's own client (controller/ps_weights_client.h, which
// coalesces concurrent pushes to a shard into PushBatch calls), against the
// same calls to "echo" shards that answer at once with responses of the same
// size (the bare gRPC cost). The echo is measured before and after the real
// shards and the mean taken (this VM's speed drifts). Prints pushes/s, p50/p99
// push latency and the ratio to the echo, and exits 1 naming the figure when
// a ratio misses its goal (>= 0.70) or a measurement, the echo reference
// included, records no successful push or any failed one.
//   bazel run //bench:ps_bench
//   bazel run //bench:ps_bench -- --shards=1,4 --seconds=3s
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "controller/ps_weights_client.h"
#include "parameter_server/service.h"
#include "parameter_server/shard.h"
#include "proto/parameter_server.grpc.pb.h"

ABSL_FLAG(std::vector<std::string>, shards, std::vector<std::string>({"1", "4", "20"}),
          "Shard counts S to measure, comma-separated.");
ABSL_FLAG(absl::Duration, seconds, absl::Seconds(3), "Length of each measurement.");

namespace {

constexpr int kClients = 16;
constexpr double kRatioGoal = 0.70;

std::vector<nas::FlatTensor> Model() {
  // About the paper's controller: LSTM 2 x 35 plus heads and embeddings.
  std::vector<nas::FlatTensor> tensors;
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-0.08f, 0.08f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    nas::FlatTensor t;
    t.name = name;
    t.shape = shape;
    for (int64_t i = 0; i < t.NumElements(); ++i) t.values.push_back(u(rng));
    tensors.push_back(t);
  };
  for (int l = 0; l < 2; ++l) {
    add(absl::StrCat("lstm_", l, "_w_ih"), {140, 35});
    add(absl::StrCat("lstm_", l, "_w_hh"), {140, 35});
    add(absl::StrCat("lstm_", l, "_bias"), {140});
  }
  for (const char* head : {"filter_height", "filter_width", "num_filters", "stride"}) {
    add(absl::StrCat("embedding_", head), {4, 35});
    add(absl::StrCat("head_", head, "_weight"), {4, 35});
    add(absl::StrCat("head_", head, "_bias"), {4});
  }
  add("anchor_w_prev", {35, 35});
  add("anchor_w_curr", {35, 35});
  add("anchor_v", {35});
  add("embedding_start", {1, 35});
  add("embedding_anchor", {1, 35});
  return tensors;
}

// A shard that does no work: Pull answers with a fixed copy of a real shard's
// tensors, Push and PushBatch accept every push (one OK outcome per push, the
// tensors again when the push asks for them). Pull, Push and PushBatch are on
// the callback API, as in ParameterServerServiceImpl, so both sides pay the
// same gRPC costs and the ratio isolates the shard's own work.
class EchoService final
    : public nas::v1::ParameterServer::WithCallbackMethod_Pull<
          nas::v1::ParameterServer::WithCallbackMethod_Push<
              nas::v1::ParameterServer::WithCallbackMethod_PushBatch<
                  nas::v1::ParameterServer::Service>>> {
 public:
  explicit EchoService(nas::v1::PullResponse pull) : pull_(std::move(pull)) {}

  grpc::Status InitJob(grpc::ServerContext*, const nas::v1::InitJobRequest*,
                       nas::v1::InitJobResponse* response) override {
    response->set_version(pull_.version());
    return grpc::Status::OK;
  }
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context, const nas::v1::PullRequest*,
                                 nas::v1::PullResponse* response) override {
    *response = pull_;
    return Finish(context);
  }
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const nas::v1::PushRequest* request,
                                 nas::v1::PushResponse* response) override {
    Answer(*request, response);
    return Finish(context);
  }
  grpc::ServerUnaryReactor* PushBatch(grpc::CallbackServerContext* context,
                                      const nas::v1::PushBatchRequest* request,
                                      nas::v1::PushBatchResponse* response) override {
    for (const nas::v1::PushRequest& push : request->pushes()) {
      nas::v1::PushOutcome* outcome = response->add_outcomes();
      outcome->set_code(0);
      Answer(push, outcome->mutable_response());
    }
    return Finish(context);
  }

  // Pushes answered so far (one per push, whichever method carried it).
  int64_t pushes() const { return pushes_.load(); }

 private:
  void Answer(const nas::v1::PushRequest& request, nas::v1::PushResponse* response) {
    pushes_.fetch_add(1, std::memory_order_relaxed);
    response->set_version(pull_.version());
    response->set_applied(true);
    if (request.return_parameters()) *response->mutable_tensors() = pull_.tensors();
  }
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  const nas::v1::PullResponse pull_;
  std::atomic<int64_t> pushes_{0};
};

struct Result {
  int64_t pushes = 0;    // successful replica-level pushes (S shard calls each)
  int64_t failures = 0;  // failed pulls or pushes
  std::string first_error;
  double pushes_per_second = 0;
  double p50_ms = 0, p99_ms = 0;
};

// kClients threads pull, then push the model back, until `duration` is over.
// A thread whose call fails stops; the failure is counted and kept.
Result Drive(nas::controller::WeightsClient& client, const std::vector<nas::FlatTensor>& model,
             absl::Duration duration) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(kClients);
  absl::Mutex mu;
  Result r;
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      auto fail = [&](const char* what, const absl::Status& status) {
        absl::MutexLock lock(&mu);
        if (r.failures++ == 0) r.first_error = absl::StrCat(what, ": ", status.message());
      };
      while (!stop) {
        auto pulled = client.Pull("bench");
        if (!pulled.ok()) return fail("Pull", pulled.status());
        const absl::Time t0 = absl::Now();
        absl::Status pushed = client.Push("bench", c, pulled->versions, model);
        if (!pushed.ok()) return fail("Push", pushed);
        latencies[c].push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  absl::SleepFor(duration);
  stop = true;
  for (std::thread& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  r.pushes = static_cast<int64_t>(all.size());
  if (all.empty()) return r;
  r.pushes_per_second = all.size() / absl::ToDoubleSeconds(duration);
  r.p50_ms = all[all.size() / 2];
  r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return r;
}

absl::StatusOr<std::unique_ptr<nas::GrpcServer>> Serve(grpc::Service* service) {
  nas::GrpcServerOptions options;
  options.host = "127.0.0.1";
  options.metrics_port = -1;
  auto server = nas::GrpcServer::Create(options);
  if (!server.ok()) return server.status();
  if (absl::Status started = (*server)->Start({service}); !started.ok()) return started;
  return server;
}

// Appends to `missed` why `r` cannot serve as a measurement, if it cannot.
void CheckMeasured(const std::string& name, const Result& r, std::vector<std::string>* missed) {
  if (r.failures > 0) {
    missed->push_back(absl::StrCat(name, ": ", r.failures, " failed calls, the first: ",
                                   r.first_error));
  }
  if (r.pushes == 0) missed->push_back(absl::StrCat(name, ": no successful push recorded"));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Duration duration = absl::GetFlag(FLAGS_seconds);
  std::vector<int> shard_counts;
  for (const std::string& s : absl::GetFlag(FLAGS_shards)) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1 || n > 64) {
      std::fprintf(stderr, "--shards: '%s' is not a shard count in 1..64\n", s.c_str());
      return 2;
    }
    shard_counts.push_back(n);
  }
  const std::vector<nas::FlatTensor> model = Model();
  int64_t floats = 0;
  for (const auto& t : model) floats += t.NumElements();
  std::printf("model_bytes %lld bytes in %zu tensors\n", static_cast<long long>(floats * 4),
              model.size());
  std::vector<std::string> missed;
  for (int s : shard_counts) {
    // Real shards.
    std::vector<std::unique_ptr<nas::ps::Shard>> shards;
    std::vector<std::unique_ptr<nas::ps::ParameterServerServiceImpl>> services;
    std::vector<std::unique_ptr<nas::GrpcServer>> servers;
    std::vector<std::string> addresses;
    for (int i = 0; i < s; ++i) {
      nas::ps::ShardOptions options;
      options.shard_index = i;
      options.num_shards = s;
      shards.push_back(nas::ps::Shard::Create(options).value());
      services.push_back(std::make_unique<nas::ps::ParameterServerServiceImpl>(shards.back().get()));
      auto server = Serve(services.back().get());
      if (!server.ok()) {
        std::fprintf(stderr, "shard %d: %s\n", i, std::string(server.status().message()).c_str());
        return 1;
      }
      servers.push_back(*std::move(server));
      addresses.push_back(absl::StrCat("127.0.0.1:", servers.back()->port()));
    }
    auto client =
        nas::controller::CreatePsWeightsClient(addresses, absl::Seconds(10), 64 << 20).value();
    nas::v1::OptimizerConfig adam;
    adam.set_kind(nas::v1::OptimizerConfig::ADAM);
    adam.set_learning_rate(6e-4);
    if (absl::Status init = client->InitJob("bench", model, adam); !init.ok()) {
      std::fprintf(stderr, "InitJob: %s\n", std::string(init.message()).c_str());
      return 1;
    }

    // Echo shards answering Pull with each real shard's tensors.
    std::vector<std::unique_ptr<EchoService>> echoes;
    std::vector<std::unique_ptr<nas::GrpcServer>> echo_servers;
    std::vector<std::string> echo_addresses;
    for (int i = 0; i < s; ++i) {
      nas::v1::PullRequest pull;
      pull.set_job_id("bench");
      echoes.push_back(std::make_unique<EchoService>(shards[i]->Pull(pull).value()));
      auto server = Serve(echoes.back().get());
      if (!server.ok()) {
        std::fprintf(stderr, "echo shard %d: %s\n", i,
                     std::string(server.status().message()).c_str());
        return 1;
      }
      echo_servers.push_back(*std::move(server));
      echo_addresses.push_back(absl::StrCat("127.0.0.1:", echo_servers.back()->port()));
    }
    auto echo_client =
        nas::controller::CreatePsWeightsClient(echo_addresses, absl::Seconds(10), 64 << 20).value();

    const Result echo_before = Drive(*echo_client, model, duration);
    const Result ps = Drive(*client, model, duration);
    const Result echo_after = Drive(*echo_client, model, duration);
    int64_t echo_shard_pushes = 0;
    for (const auto& e : echoes) echo_shard_pushes += e->pushes();

    const std::string suffix = absl::StrCat("_S", s);
    CheckMeasured("ps_pushes_per_second" + suffix, ps, &missed);
    CheckMeasured("echo_pushes_per_second" + suffix + " (before)", echo_before, &missed);
    CheckMeasured("echo_pushes_per_second" + suffix + " (after)", echo_after, &missed);
    if (echo_shard_pushes != (echo_before.pushes + echo_after.pushes) * s) {
      missed.push_back(absl::StrCat("echo shards at S=", s, " answered ", echo_shard_pushes,
                                    " shard pushes for ", echo_before.pushes + echo_after.pushes,
                                    " successful pushes to ", s, " shards"));
    }
    const double echo_per_second = (echo_before.pushes_per_second + echo_after.pushes_per_second) / 2;
    const double ratio = ps.pushes_per_second / echo_per_second;
    std::printf("ps_pushes_per_second%s %.1f pushes/s (p50 %.2f ms, p99 %.2f ms)\n",
                suffix.c_str(), ps.pushes_per_second, ps.p50_ms, ps.p99_ms);
    std::printf(
        "echo_pushes_per_second%s %.1f pushes/s (mean of %.1f before, p50 %.2f / p99 %.2f ms, "
        "and %.1f after, p50 %.2f / p99 %.2f ms)\n",
        suffix.c_str(), echo_per_second, echo_before.pushes_per_second, echo_before.p50_ms,
        echo_before.p99_ms, echo_after.pushes_per_second, echo_after.p50_ms, echo_after.p99_ms);
    std::printf("ps_to_echo_ratio%s %.3f (goal >= %.2f)\n", suffix.c_str(), ratio, kRatioGoal);
    std::fflush(stdout);
    if (!std::isfinite(ratio)) {
      missed.push_back(absl::StrCat("ps_to_echo_ratio", suffix, " is not a number (",
                                    ps.pushes_per_second, " / ", echo_per_second, ")"));
    } else if (ratio < kRatioGoal) {
      missed.push_back(absl::StrFormat("ps_to_echo_ratio%s %.3f misses its goal >= %.2f",
                                       suffix, ratio, kRatioGoal));
    }
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
