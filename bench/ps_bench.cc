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
// Then one-shot ω (issue 21): a sparse tensor set shaped like a cell
// supernet's weights (200 conv-like tensors, 18.6 MB), W = 2, 4, 8, 16
// worker threads each looping PullSome(a random third of the tensors) +
// PushSparse(gradients of the same) through the controller's client, at
// S = 1 and 4 real shards (max_staleness 16, SGD with momentum), in
// --oneshot_rounds windows alternating between the S (the median window is
// reported). Prints steps/s, MB pulled and pushed per step, MB/s through the
// servers and staleness p50/max, and exits 1 when a call fails, a push is lost (a shard's
// version must equal the sparse pushes it applied, as the clients counted
// them) or S = 4 is slower than S = 1 at the largest W by more than the
// VM's noise (ratio < 0.75).
//   bazel run //bench:ps_bench
//   bazel run //bench:ps_bench -- --shards=1,4 --seconds=3s
//   bazel run //bench:ps_bench -- --shards= --large_shards=1,4 --large_mib=64
//   bazel run //bench:ps_bench -- --shards= --large_shards= --oneshot_workers=2,16
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <map>
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
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/sharding.h"
#include "controller/ps_weights_client.h"
#include "parameter_server/in_process_shards.h"
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
ABSL_FLAG(std::vector<std::string>, oneshot_shards, std::vector<std::string>({"1", "4"}),
          "Shard counts S for one-shot ω, comma-separated; empty skips it.");
ABSL_FLAG(std::vector<std::string>, oneshot_workers,
          std::vector<std::string>({"2", "4", "8", "16"}),
          "Worker threads W for one-shot ω, comma-separated.");
ABSL_FLAG(absl::Duration, oneshot_seconds, absl::Seconds(3), "Length of each one-shot window.");
ABSL_FLAG(int, oneshot_rounds, 3, "One-shot windows per S and W (alternating between the S).");

namespace {

constexpr int kClients = 16;
// S = 4 against S = 1 at the largest W, one-shot ω: not slower beyond noise.
constexpr double kOneShotShardRatioGoal = 0.75;
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


// ---- One-shot ω: sparse pulls and pushes of a supernet-sized set.

// 200 tensors shaped like a cell supernet's: 120 3x3 convolutions, 40 1x1
// and 40 depthwise 5x5, 64 channels (4.65 M floats, 18.6 MB).
std::vector<nas::FlatTensor> Omega() {
  std::vector<nas::FlatTensor> tensors;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    nas::FlatTensor t{name, shape, {}};
    t.values.resize(t.NumElements());
    for (float& v : t.values) v = u(rng);
    tensors.push_back(std::move(t));
  };
  for (int i = 0; i < 120; ++i) add(absl::StrCat("cell", i / 12, ".edge", i % 12, ".conv3x3.weight"), {64, 64, 3, 3});
  for (int i = 0; i < 40; ++i) add(absl::StrCat("cell", i / 4, ".edge", i % 4, ".conv1x1.weight"), {64, 64, 1, 1});
  for (int i = 0; i < 40; ++i) add(absl::StrCat("cell", i / 4, ".edge", i % 4, ".dw5x5.weight"), {64, 1, 5, 5});
  return tensors;
}

struct OneShotResult {
  double steps_per_second = 0;
  double mb_pulled_per_step = 0, mb_pushed_per_step = 0;
  double mb_per_second = 0;
  int64_t staleness_p50 = 0, staleness_max = 0;
  int64_t refused_stale = 0;
};

// S real shards holding ω and W worker clients that have each created it (a
// no-op after the first, as every worker does). Window() runs the W workers
// for a while; Lost() compares the shards' versions with the pushes the
// workers saw applied over all windows.
class OneShotRig {
 public:
  OneShotRig(int s, int w) : s_(s), w_(w), applied_(s, 0) {}

  absl::Status Start(const std::vector<nas::FlatTensor>& omega) {
    omega_ = &omega;
    absl::StatusOr<std::unique_ptr<nas::ps::InProcessShards>> shards = nas::ps::InProcessShards::Start(s_);
    if (!shards.ok()) return shards.status();
    shards_ = *std::move(shards);
    nas::v1::OptimizerConfig sgd;
    sgd.set_kind(nas::v1::OptimizerConfig::SGD);
    sgd.set_learning_rate(0.05);
    sgd.set_momentum(0.9);
    sgd.set_sparse(true);
    sgd.set_max_staleness(16);
    for (int k = 0; k < w_; ++k) {
      auto client = nas::controller::CreatePsWeightsClient(shards_->addresses, absl::Seconds(60), 64 << 20);
      if (!client.ok()) return client.status();
      clients_.push_back(*std::move(client));
      if (absl::Status init = clients_.back()->InitJob("omega", omega, sgd); !init.ok()) return init;
    }
    return absl::OkStatus();
  }

  // The W workers, each looping PullSome(a random third) + PushSparse.
  absl::StatusOr<OneShotResult> Window(absl::Duration duration) {
    std::atomic<bool> stop{false};
    absl::Mutex mu;
    int64_t steps = 0, pulled_bytes = 0, pushed_bytes = 0, refused = 0;
    std::vector<int64_t> staleness;
    absl::Status failed;
    std::vector<std::thread> workers;
    const absl::Time t0 = absl::Now();
    for (int k = 0; k < w_; ++k) {
      workers.emplace_back([&, k] {
        std::mt19937 rng(static_cast<uint32_t>(100 * windows_ + k));
        std::vector<int64_t> my_applied(s_, 0), my_staleness;
        int64_t my_steps = 0, my_pulled = 0, my_pushed = 0, my_refused = 0;
        absl::Status status;
        while (status.ok() && !stop) {
          std::vector<std::string> names;
          for (const nas::FlatTensor& t : *omega_) {
            if (rng() % 3 == 0) names.push_back(t.name);
          }
          if (names.empty()) continue;
          absl::StatusOr<nas::controller::PulledWeights> pulled = clients_[k]->PullSome("omega", names);
          if (!pulled.ok()) {
            status = pulled.status();
            break;
          }
          std::vector<nas::FlatTensor> gradients = std::move(pulled->tensors);
          for (nas::FlatTensor& g : gradients) {
            my_pulled += static_cast<int64_t>(g.values.size() * sizeof(float));
            for (float& v : g.values) v *= 1e-3f;  // stands in for a backward pass
          }
          std::vector<int64_t> base = pulled->versions;
          for (int64_t& v : base) v = std::max<int64_t>(v, 0);  // shards not asked get nothing
          absl::StatusOr<nas::controller::SparsePushResult> pushed =
              clients_[k]->PushSparse("omega", base, gradients);
          if (!pushed.ok()) {
            status = pushed.status();
            break;
          }
          ++my_steps;
          my_pushed += pushed->bytes;
          my_refused += pushed->shards_refused_stale;
          for (int i = 0; i < s_; ++i) my_applied[i] += pushed->versions[i] >= 0 ? 1 : 0;
          if (pushed->shards_applied > 0) my_staleness.push_back(pushed->max_staleness);
        }
        absl::MutexLock lock(&mu);
        if (!status.ok() && failed.ok()) failed = status;
        steps += my_steps;
        pulled_bytes += my_pulled;
        pushed_bytes += my_pushed;
        refused += my_refused;
        for (int i = 0; i < s_; ++i) applied_[i] += my_applied[i];
        staleness.insert(staleness.end(), my_staleness.begin(), my_staleness.end());
      });
    }
    absl::SleepFor(duration);
    stop = true;
    for (std::thread& t : workers) t.join();
    ++windows_;
    const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
    if (!failed.ok()) return failed;
    if (steps == 0) return absl::DeadlineExceededError("no step completed");
    OneShotResult result;
    std::sort(staleness.begin(), staleness.end());
    result.steps_per_second = steps / seconds;
    result.mb_pulled_per_step = pulled_bytes / 1e6 / steps;
    result.mb_pushed_per_step = pushed_bytes / 1e6 / steps;
    result.mb_per_second = (pulled_bytes + pushed_bytes) / 1e6 / seconds;
    result.refused_stale = refused;
    if (!staleness.empty()) {
      result.staleness_p50 = staleness[staleness.size() / 2];
      result.staleness_max = staleness.back();
    }
    return result;
  }

  // Shards whose version is not the number of sparse pushes they applied.
  std::vector<std::string> Lost() {
    std::vector<std::string> lost;
    for (int i = 0; i < s_; ++i) {
      const nas::v1::GetShardInfoResponse info = shards_->shards[i]->Info();
      const int64_t version = info.jobs_size() == 1 ? info.jobs(0).version() : -1;
      if (version != applied_[i]) {
        lost.push_back(absl::StrCat("shard ", i, " is at version ", version, " after ", applied_[i],
                                    " applied sparse pushes"));
      }
    }
    return lost;
  }

 private:
  const int s_, w_;
  const std::vector<nas::FlatTensor>* omega_ = nullptr;
  std::unique_ptr<nas::ps::InProcessShards> shards_;
  // After the servers: destroyed first.
  std::vector<std::unique_ptr<nas::controller::WeightsClient>> clients_;
  std::vector<int64_t> applied_;  // only touched between windows and under Window's lock
  int windows_ = 0;
};

// For each W: one rig per S, measured in `rounds` windows alternating
// between the S (this VM's speed drifts by several times within a minute),
// each S's median window reported. Returns S = 4 over S = 1 at the largest W
// (0 when either was not measured); appends failures and lost pushes.
double MeasureOneShot(const std::vector<int>& shard_counts, const std::vector<int>& worker_counts,
                      absl::Duration window, int rounds, std::vector<std::string>* missed) {
  const std::vector<nas::FlatTensor> omega = Omega();
  int64_t floats = 0;
  for (const auto& t : omega) floats += t.NumElements();
  std::printf("oneshot_omega %.1f MB in %zu tensors\n", floats * 4 / 1e6, omega.size());
  double ratio = 0;
  for (int w : worker_counts) {
    std::map<int, std::unique_ptr<OneShotRig>> rigs;
    std::map<int, std::vector<OneShotResult>> windows;
    for (int s : shard_counts) {
      auto rig = std::make_unique<OneShotRig>(s, w);
      if (absl::Status started = rig->Start(omega); !started.ok()) {
        missed->push_back(absl::StrCat("oneshot_S", s, "_W", w, ": ", started.message()));
        continue;
      }
      rigs[s] = std::move(rig);
    }
    for (int r = 0; r < rounds; ++r) {
      for (auto& [s, rig] : rigs) {
        absl::StatusOr<OneShotResult> result = rig->Window(window);
        if (!result.ok()) {
          missed->push_back(absl::StrCat("oneshot_S", s, "_W", w, ": ", result.status().message()));
          continue;
        }
        windows[s].push_back(*result);
      }
    }
    std::map<int, double> median;
    for (auto& [s, results] : windows) {
      std::sort(results.begin(), results.end(), [](const OneShotResult& a, const OneShotResult& b) {
        return a.steps_per_second < b.steps_per_second;
      });
      const OneShotResult& m = results[results.size() / 2];
      median[s] = m.steps_per_second;
      int64_t max_staleness = 0, refused = 0;
      for (const OneShotResult& r : results) {
        max_staleness = std::max(max_staleness, r.staleness_max);
        refused += r.refused_stale;
      }
      std::printf(
          "oneshot_S%d_W%d %.1f steps/s (median of %zu windows, min %.1f, max %.1f), %.2f MB pulled "
          "+ %.2f MB pushed per step, %.0f MB/s through the servers, staleness p50 %lld max %lld, "
          "%lld shard pushes refused as stale\n",
          s, w, m.steps_per_second, results.size(), results.front().steps_per_second,
          results.back().steps_per_second, m.mb_pulled_per_step, m.mb_pushed_per_step,
          m.mb_per_second, static_cast<long long>(m.staleness_p50),
          static_cast<long long>(max_staleness), static_cast<long long>(refused));
    }
    for (auto& [s, rig] : rigs) {
      for (const std::string& lost : rig->Lost()) {
        missed->push_back(absl::StrCat("oneshot_S", s, "_W", w, ": ", lost, " (lost pushes)"));
      }
    }
    std::fflush(stdout);
    if (w == worker_counts.back() && median.count(1) && median.count(4)) {
      ratio = median[4] / median[1];
    }
  }
  return ratio;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Duration duration = absl::GetFlag(FLAGS_seconds);
  std::vector<int> shard_counts, large_shard_counts, oneshot_shard_counts, oneshot_workers;
  if (!ParseShardCounts("shards", absl::GetFlag(FLAGS_shards), &shard_counts) ||
      !ParseShardCounts("large_shards", absl::GetFlag(FLAGS_large_shards), &large_shard_counts) ||
      !ParseShardCounts("oneshot_shards", absl::GetFlag(FLAGS_oneshot_shards),
                        &oneshot_shard_counts) ||
      !ParseShardCounts("oneshot_workers", absl::GetFlag(FLAGS_oneshot_workers), &oneshot_workers)) {
    return 2;
  }
  const int large_mib = absl::GetFlag(FLAGS_large_mib);
  const int large_rounds = absl::GetFlag(FLAGS_large_rounds);
  if (absl::GetFlag(FLAGS_oneshot_rounds) < 1) {
    std::fprintf(stderr, "--oneshot_rounds must be >= 1\n");
    return 2;
  }
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
  if (!oneshot_shard_counts.empty() && !oneshot_workers.empty()) {
    const double ratio =
        MeasureOneShot(oneshot_shard_counts, oneshot_workers, absl::GetFlag(FLAGS_oneshot_seconds),
                       absl::GetFlag(FLAGS_oneshot_rounds), &missed);
    const int w = oneshot_workers.back();
    const bool compared = std::count(oneshot_shard_counts.begin(), oneshot_shard_counts.end(), 1) &&
                          std::count(oneshot_shard_counts.begin(), oneshot_shard_counts.end(), 4);
    if (compared) {
      std::printf("oneshot_S4_to_S1_W%d %.3f (goal >= %.2f)\n", w, ratio, kOneShotShardRatioGoal);
      if (!(ratio >= kOneShotShardRatioGoal)) {
        missed.push_back(absl::StrFormat("oneshot_S4_to_S1_W%d %.3f misses its goal >= %.2f", w,
                                         ratio, kOneShotShardRatioGoal));
      }
    }
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
