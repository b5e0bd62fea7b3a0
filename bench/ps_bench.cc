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
// Then a large tensor set (64 MiB, the size of a one-shot supernet's weights,
// 16 tensors of 4 MiB) through S = 1 and 4 real shards with the default
// 64 MiB message limit, on the streaming calls (PullStream, PushStream,
// parameter_server/stream_client.h): one client pulls the whole set from all
// shards at once, then pushes a gradient of it, --large_rounds times; prints
// MiB/s of each (the median round). Where a shard's part fits in one message
// (S = 4: 16 MiB), the same rounds on the unary Pull and Push are the
// reference, and the streamed figures' ratios to it must be >= 0.75; at S = 1
// the figures are reported (no unary call can carry the set: the unary Pull
// must be refused, RESOURCE_EXHAUSTED, else the bench fails). Exits 1 when a
// ratio misses its goal or a call fails.
//   bazel run //bench:ps_bench
//   bazel run //bench:ps_bench -- --shards=1,4 --seconds=3s
//   bazel run //bench:ps_bench -- --shards= --large_shards=1,4 --large_mib=64
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/sharding.h"
#include "controller/ps_weights_client.h"
#include "parameter_server/service.h"
#include "parameter_server/shard.h"
#include "parameter_server/stream_client.h"
#include "proto/parameter_server.grpc.pb.h"

ABSL_FLAG(std::vector<std::string>, shards, std::vector<std::string>({"1", "4", "20"}),
          "Shard counts S to measure, comma-separated.");
ABSL_FLAG(absl::Duration, seconds, absl::Seconds(3), "Length of each measurement.");
ABSL_FLAG(std::vector<std::string>, large_shards, std::vector<std::string>({"1", "4"}),
          "Shard counts S for the large tensor set, comma-separated; empty skips it.");
ABSL_FLAG(int, large_mib, 64, "Size of the large tensor set in MiB (a multiple of 4).");
ABSL_FLAG(int, large_rounds, 9, "Pull-and-push rounds of the large set per S.");

namespace {

constexpr int kClients = 16;
constexpr double kRatioGoal = 0.70;
constexpr double kLargeRatioGoal = 0.75;

// Median MiB/s of the large set's rounds; unary ones are 0 where a shard's
// part does not fit in one message.
struct LargeResult {
  double pull = 0, push = 0, unary_pull = 0, unary_push = 0;
};

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

// Parses a list of shard counts; false (and a message) when one is not 1..64.
bool ParseShardCounts(const char* flag, const std::vector<std::string>& values,
                      std::vector<int>* counts) {
  for (const std::string& s : values) {
    if (s.empty()) continue;
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1 || n > 64) {
      std::fprintf(stderr, "--%s: '%s' is not a shard count in 1..64\n", flag, s.c_str());
      return false;
    }
    counts->push_back(n);
  }
  return true;
}

// The large tensor set through S shards on the streaming calls. Appends to
// `missed` what fails or misses its goal.
LargeResult MeasureLarge(int s, int mib, int rounds, std::vector<std::string>* missed) {
  LargeResult result;
  constexpr int64_t kTensorValues = int64_t{1} << 20;  // 4 MiB each
  const int num_tensors = mib / 4;
  const std::string suffix = absl::StrCat("_", mib, "MiB_S", s);
  std::vector<nas::TensorSize> sizes;
  for (int i = 0; i < num_tensors; ++i) {
    sizes.push_back({absl::StrCat("omega_", i), kTensorValues});
  }
  const std::vector<int> owner = nas::AssignShards(sizes, s);

  std::vector<std::unique_ptr<nas::ps::Shard>> shards;
  std::vector<std::unique_ptr<nas::ps::ParameterServerServiceImpl>> services;
  std::vector<std::unique_ptr<nas::GrpcServer>> servers;
  std::vector<std::unique_ptr<nas::v1::ParameterServer::Stub>> stubs;
  std::vector<nas::v1::InitJobRequest> inits(s);
  std::vector<nas::v1::PushRequest> pushes(s);
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  for (int i = 0; i < s; ++i) {
    nas::ps::ShardOptions options;
    options.shard_index = i;
    options.num_shards = s;
    shards.push_back(nas::ps::Shard::Create(options).value());
    services.push_back(std::make_unique<nas::ps::ParameterServerServiceImpl>(shards.back().get()));
    auto server = Serve(services.back().get());  // the default 64 MiB message limit
    if (!server.ok()) {
      missed->push_back(absl::StrCat("large shard ", i, ": ", server.status().message()));
      return result;
    }
    servers.push_back(*std::move(server));
    grpc::ChannelArguments args;  // as the controller's client: 64 MiB
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    stubs.push_back(nas::v1::ParameterServer::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", servers.back()->port()), grpc::InsecureChannelCredentials(),
        args)));
    inits[i].set_job_id("large");
    inits[i].set_num_shards(s);
    inits[i].set_shard_index(i);
    inits[i].mutable_optimizer()->set_kind(nas::v1::OptimizerConfig::SGD);
    inits[i].mutable_optimizer()->set_learning_rate(0.01);
    pushes[i].set_job_id("large");
  }
  for (int t = 0; t < num_tensors; ++t) {
    for (int i = 0; i < s; ++i) {
      nas::v1::TensorSpec* spec = inits[i].add_layout();
      spec->set_name(sizes[t].name);
      spec->add_shape(kTensorValues);
    }
    nas::v1::Tensor* value = inits[owner[t]].add_tensors();
    value->set_name(sizes[t].name);
    value->add_shape(kTensorValues);
    nas::v1::Tensor* gradient = pushes[owner[t]].add_gradients();
    gradient->set_name(sizes[t].name);
    gradient->add_shape(kTensorValues);
    for (int64_t v = 0; v < kTensorValues; ++v) {
      value->add_values(u(rng));
      gradient->add_values(u(rng));
    }
  }
  const absl::Duration timeout = absl::Seconds(120);
  for (int i = 0; i < s; ++i) {
    auto init = nas::ps::InitJobStreamed(*stubs[i], inits[i], 0, timeout);
    if (!init.ok()) {
      missed->push_back(absl::StrCat("InitJobStream", suffix, ": ", init.status().message()));
      return result;
    }
  }
  nas::v1::PullRequest pull;
  pull.set_job_id("large");
  if (s == 1) {
    grpc::ClientContext context;
    nas::v1::PullResponse response;
    const grpc::Status unary = stubs[0]->Pull(&context, pull, &response);
    std::printf("unary_pull%s %s\n", suffix.c_str(),
                unary.ok() ? "OK" : unary.error_message().c_str());
    if (unary.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) {
      missed->push_back(absl::StrCat("unary_pull", suffix,
                                     " was not refused for its size: streaming is not needed?"));
    }
  }

  // One round: every shard at once, one thread per shard.
  auto round = [&](bool push, bool unary) -> absl::StatusOr<double> {
    std::vector<absl::Status> statuses(s);
    std::vector<std::thread> threads;
    // What a worker that computed gradients hands to PushStreamed.
    std::vector<nas::v1::PushRequest> fresh;
    if (push && !unary) fresh = pushes;
    const absl::Time t0 = absl::Now();
    for (int i = 0; i < s; ++i) {
      threads.emplace_back([&, i] {
        if (unary) {
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
          grpc::Status status;
          if (push) {
            nas::v1::PushResponse response;
            status = stubs[i]->Push(&context, pushes[i], &response);
          } else {
            nas::v1::PullResponse response;
            status = stubs[i]->Pull(&context, pull, &response);
            if (status.ok() && response.tensors_size() != inits[i].tensors_size()) {
              status = grpc::Status(grpc::StatusCode::INTERNAL, "pulled a different number");
            }
          }
          statuses[i] = absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                     status.error_message());
        } else if (push) {
          statuses[i] = nas::ps::PushStreamed(*stubs[i], std::move(fresh[i]), 0, timeout).status();
        } else {
          auto pulled = nas::ps::PullStreamed(*stubs[i], pull, 0, timeout);
          statuses[i] = pulled.status();
          if (pulled.ok() && pulled->tensors_size() != inits[i].tensors_size()) {
            statuses[i] = absl::InternalError("pulled a different number of tensors");
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    for (const absl::Status& st : statuses) {
      if (!st.ok()) return st;
    }
    return mib / seconds;
  };
  // A shard's part fits in one message (with room for the framing).
  const bool fits = static_cast<int64_t>(mib) * (1 << 20) / s < (int64_t{60} << 20);
  std::vector<double> rates[4];  // pull, push, unary pull, unary push
  for (int r = 0; r < rounds; ++r) {
    for (int kind = 0; kind < (fits ? 4 : 2); ++kind) {
      absl::StatusOr<double> rate = round(kind % 2 == 1, kind >= 2);
      if (!rate.ok()) {
        missed->push_back(absl::StrCat(kind >= 2 ? "unary_" : "", kind % 2 ? "push" : "pull",
                                       suffix, ": ", rate.status().message()));
        return result;
      }
      rates[kind].push_back(*rate);
    }
  }
  double* medians[4] = {&result.pull, &result.push, &result.unary_pull, &result.unary_push};
  const char* names[4] = {"large_pull_mib_per_second", "large_push_mib_per_second",
                          "large_unary_pull_mib_per_second", "large_unary_push_mib_per_second"};
  for (int kind = 0; kind < (fits ? 4 : 2); ++kind) {
    std::sort(rates[kind].begin(), rates[kind].end());
    *medians[kind] = rates[kind][rates[kind].size() / 2];
    std::printf("%s%s %.1f MiB/s (median of %zu rounds, min %.1f, max %.1f)\n", names[kind],
                suffix.c_str(), *medians[kind], rates[kind].size(), rates[kind].front(),
                rates[kind].back());
  }
  std::fflush(stdout);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Duration duration = absl::GetFlag(FLAGS_seconds);
  std::vector<int> shard_counts, large_shard_counts;
  if (!ParseShardCounts("shards", absl::GetFlag(FLAGS_shards), &shard_counts) ||
      !ParseShardCounts("large_shards", absl::GetFlag(FLAGS_large_shards), &large_shard_counts)) {
    return 2;
  }
  const int large_mib = absl::GetFlag(FLAGS_large_mib);
  const int large_rounds = absl::GetFlag(FLAGS_large_rounds);
  if (large_mib < 4 || large_mib % 4 != 0 || large_mib > 4096 || large_rounds < 1) {
    std::fprintf(stderr, "--large_mib must be a multiple of 4 in 4..4096, --large_rounds >= 1\n");
    return 2;
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
  std::vector<std::pair<int, LargeResult>> large;
  for (int s : large_shard_counts) {
    large.emplace_back(s, MeasureLarge(s, large_mib, large_rounds, &missed));
  }
  for (const auto& [s, r] : large) {
    if (r.unary_pull <= 0) continue;  // no unary reference: the set exceeds one message
    for (bool push : {false, true}) {
      const double ratio = push ? r.push / r.unary_push : r.pull / r.unary_pull;
      const std::string name =
          absl::StrCat("large_", push ? "push" : "pull", "_to_unary_", large_mib, "MiB_S", s);
      std::printf("%s %.3f (goal >= %.2f)\n", name.c_str(), ratio, kLargeRatioGoal);
      if (!(ratio >= kLargeRatioGoal)) {
        missed.push_back(
            absl::StrFormat("%s %.3f misses its goal >= %.2f", name, ratio, kLargeRatioGoal));
      }
    }
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
