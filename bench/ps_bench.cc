// Benchmark: K clients pulling and pushing a controller-sized model (~100 KB)
// through S parameter-server shards on 127.0.0.1 (S = 1, 4, 20), against the
// same calls to "echo" shards that answer at once with responses of the same
// size (the bare gRPC cost). Prints pushes/s, p50/p99 push latency and the
// ratio to the echo (goal >= 0.70).
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "controller/ps_weights_client.h"
#include "parameter_server/service.h"
#include "parameter_server/shard.h"

namespace {

constexpr int kClients = 16;
constexpr absl::Duration kRun = absl::Seconds(3);

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

// Answers at once: Pull with tensors of the real size, Push with nothing.
class EchoService final : public nas::v1::ParameterServer::Service {
 public:
  explicit EchoService(nas::v1::PullResponse pull) : pull_(std::move(pull)) {}
  grpc::Status InitJob(grpc::ServerContext*, const nas::v1::InitJobRequest*,
                       nas::v1::InitJobResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status Pull(grpc::ServerContext*, const nas::v1::PullRequest*,
                    nas::v1::PullResponse* response) override {
    *response = pull_;
    return grpc::Status::OK;
  }
  grpc::Status Push(grpc::ServerContext*, const nas::v1::PushRequest*,
                    nas::v1::PushResponse* response) override {
    response->set_version(1);
    return grpc::Status::OK;
  }

 private:
  const nas::v1::PullResponse pull_;
};

struct Result {
  double pushes_per_second = 0;
  double p50_ms = 0, p99_ms = 0;
};

Result Drive(nas::controller::WeightsClient& client, const std::vector<nas::FlatTensor>& model) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      while (!stop) {
        auto pulled = client.Pull("bench");
        if (!pulled.ok()) {
          std::fprintf(stderr, "pull: %s\n", std::string(pulled.status().message()).c_str());
          return;
        }
        const absl::Time t0 = absl::Now();
        absl::Status pushed = client.Push("bench", c, pulled->versions, model);
        if (!pushed.ok()) {
          std::fprintf(stderr, "push: %s\n", std::string(pushed.message()).c_str());
          return;
        }
        latencies[c].push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  absl::SleepFor(kRun);
  stop = true;
  for (std::thread& t : threads) t.join();
  std::vector<double> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  Result r;
  if (all.empty()) return r;
  r.pushes_per_second = all.size() / absl::ToDoubleSeconds(kRun);
  r.p50_ms = all[all.size() / 2];
  r.p99_ms = all[std::min(all.size() - 1, all.size() * 99 / 100)];
  return r;
}

}  // namespace

int main() {
  const std::vector<nas::FlatTensor> model = Model();
  int64_t floats = 0;
  for (const auto& t : model) floats += t.NumElements();
  std::printf("model_bytes %lld bytes in %zu tensors\n", static_cast<long long>(floats * 4), model.size());
  for (int s : {1, 4, 20}) {
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
      nas::GrpcServerOptions server_options;
      server_options.host = "127.0.0.1";
      server_options.metrics_port = -1;
      servers.push_back(nas::GrpcServer::Create(server_options).value());
      if (!servers.back()->Start({services.back().get()}).ok()) return 1;
      addresses.push_back(absl::StrCat("127.0.0.1:", servers.back()->port()));
    }
    auto client = nas::controller::CreatePsWeightsClient(addresses, absl::Seconds(10), 64 << 20).value();
    nas::v1::OptimizerConfig adam;
    adam.set_kind(nas::v1::OptimizerConfig::ADAM);
    adam.set_learning_rate(6e-4);
    if (!client->InitJob("bench", model, adam).ok()) return 1;
    const Result ps = Drive(*client, model);

    // Echo shards answering Pull with each real shard's tensors.
    std::vector<std::unique_ptr<EchoService>> echoes;
    std::vector<std::unique_ptr<nas::GrpcServer>> echo_servers;
    std::vector<std::string> echo_addresses;
    for (int i = 0; i < s; ++i) {
      nas::v1::PullRequest pull;
      pull.set_job_id("bench");
      echoes.push_back(std::make_unique<EchoService>(shards[i]->Pull(pull).value()));
      nas::GrpcServerOptions server_options;
      server_options.host = "127.0.0.1";
      server_options.metrics_port = -1;
      echo_servers.push_back(nas::GrpcServer::Create(server_options).value());
      if (!echo_servers.back()->Start({echoes.back().get()}).ok()) return 1;
      echo_addresses.push_back(absl::StrCat("127.0.0.1:", echo_servers.back()->port()));
    }
    auto echo_client = nas::controller::CreatePsWeightsClient(echo_addresses, absl::Seconds(10), 64 << 20).value();
    const Result echo = Drive(*echo_client, model);
    std::printf("ps_pushes_per_second_S%d %.1f pushes/s (p50 %.2f ms, p99 %.2f ms)\n", s,
                ps.pushes_per_second, ps.p50_ms, ps.p99_ms);
    std::printf("echo_pushes_per_second_S%d %.1f pushes/s (p50 %.2f ms, p99 %.2f ms)\n", s,
                echo.pushes_per_second, echo.p50_ms, echo.p99_ms);
    std::printf("ps_to_echo_ratio_S%d %.3f (goal 0.70, ratio to goal %.2f)\n", s,
                ps.pushes_per_second / echo.pushes_per_second,
                ps.pushes_per_second / echo.pushes_per_second / 0.70);
  }
  return 0;
}
