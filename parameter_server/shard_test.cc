#include "parameter_server/shard.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/sharding.h"
#include "gtest/gtest.h"
#include "parameter_server/checkpoint.h"
#include "prometheus/registry.h"

namespace nas::ps {
namespace {

struct Layout {
  std::vector<v1::TensorSpec> specs;
  std::map<std::string, std::vector<float>> initial;
};

Layout MakeLayout() {
  Layout layout;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-0.08f, 0.08f);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"lstm_0_w_ih", {8, 4}}, {"lstm_0_w_hh", {8, 4}}, {"lstm_0_bias", {8}},
      {"head_a_weight", {3, 4}}, {"head_a_bias", {3}}, {"embedding_start", {1, 4}}};
  for (const auto& [name, shape] : shapes) {
    v1::TensorSpec spec;
    spec.set_name(name);
    int64_t n = 1;
    for (int64_t d : shape) {
      spec.add_shape(d);
      n *= d;
    }
    layout.specs.push_back(spec);
    for (int64_t i = 0; i < n; ++i) layout.initial[name].push_back(u(rng));
  }
  return layout;
}

std::vector<int> Owners(const Layout& layout, int shards) {
  std::vector<TensorSize> sizes;
  for (const v1::TensorSpec& s : layout.specs) {
    int64_t n = 1;
    for (int64_t d : s.shape()) n *= d;
    sizes.push_back({s.name(), n});
  }
  return AssignShards(sizes, shards);
}

v1::InitJobRequest InitFor(const Layout& layout, int shards, int index, v1::OptimizerConfig opt,
                           const std::string& job = "job-1") {
  v1::InitJobRequest request;
  request.set_job_id(job);
  request.set_num_shards(shards);
  request.set_shard_index(index);
  *request.mutable_optimizer() = opt;
  std::vector<int> owners = Owners(layout, shards);
  for (size_t i = 0; i < layout.specs.size(); ++i) {
    *request.add_layout() = layout.specs[i];
    if (owners[i] != index) continue;
    v1::Tensor* t = request.add_tensors();
    t->set_name(layout.specs[i].name());
    *t->mutable_shape() = layout.specs[i].shape();
    const auto& values = layout.initial.at(layout.specs[i].name());
    t->mutable_values()->Assign(values.begin(), values.end());
  }
  return request;
}

v1::PushRequest PushFor(const Layout& layout, int shards, int index, int seed,
                        const std::string& job = "job-1") {
  v1::PushRequest request;
  request.set_job_id(job);
  std::vector<int> owners = Owners(layout, shards);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  for (size_t i = 0; i < layout.specs.size(); ++i) {
    // Draw for every tensor so each shard sees the same numbers for its own.
    std::vector<float> values;
    int64_t count = 1;
    for (int64_t d : layout.specs[i].shape()) count *= d;
    for (int64_t k = 0; k < count; ++k) values.push_back(n(rng));
    if (owners[i] != index) continue;
    v1::Tensor* t = request.add_gradients();
    t->set_name(layout.specs[i].name());
    *t->mutable_shape() = layout.specs[i].shape();
    t->mutable_values()->Assign(values.begin(), values.end());
  }
  return request;
}

v1::OptimizerConfig Adam(int accumulate = 1) {
  v1::OptimizerConfig opt;
  opt.set_kind(v1::OptimizerConfig::ADAM);
  opt.set_learning_rate(6e-4);
  opt.set_gradients_per_update(accumulate);
  return opt;
}

std::unique_ptr<Shard> NewShard(int shards, int index, const std::string& dir = "") {
  ShardOptions options;
  options.num_shards = shards;
  options.shard_index = index;
  options.data_dir = dir;
  auto shard = Shard::Create(options);
  EXPECT_TRUE(shard.ok()) << shard.status();
  return std::move(shard).value();
}

std::map<std::string, std::vector<float>> PullAll(std::vector<std::unique_ptr<Shard>>& shards) {
  std::map<std::string, std::vector<float>> out;
  for (auto& shard : shards) {
    v1::PullRequest request;
    request.set_job_id("job-1");
    auto response = shard->Pull(request);
    EXPECT_TRUE(response.ok());
    for (const v1::Tensor& t : response->tensors()) {
      out[t.name()].assign(t.values().begin(), t.values().end());
    }
  }
  return out;
}

TEST(ShardTest, SamePushSequenceThroughOneAndFourShardsIsBitIdentical) {
  const Layout layout = MakeLayout();
  std::map<int, std::map<std::string, std::vector<float>>> results;
  for (int s : {1, 4}) {
    std::vector<std::unique_ptr<Shard>> shards;
    for (int i = 0; i < s; ++i) {
      shards.push_back(NewShard(s, i));
      ASSERT_TRUE(shards.back()->InitJob(InitFor(layout, s, i, Adam())).ok());
    }
    for (int step = 0; step < 50; ++step) {
      for (int i = 0; i < s; ++i) {
        auto pushed = shards[i]->Push(PushFor(layout, s, i, step));
        ASSERT_TRUE(pushed.ok()) << pushed.status();
      }
    }
    results[s] = PullAll(shards);
  }
  ASSERT_EQ(results[1].size(), layout.specs.size());
  for (const auto& [name, values] : results[1]) {
    ASSERT_EQ(results[4][name].size(), values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(std::memcmp(&values[i], &results[4][name][i], sizeof(float)), 0) << name << i;
    }
    EXPECT_NE(values, layout.initial.at(name)) << "updates must have changed " << name;
  }
}

TEST(ShardTest, AccumulatingTenPushesEqualsOneStepOnTheirMean) {
  const Layout layout = MakeLayout();
  auto accumulating = NewShard(1, 0);
  auto single = NewShard(1, 0);
  ASSERT_TRUE(accumulating->InitJob(InitFor(layout, 1, 0, Adam(10))).ok());
  ASSERT_TRUE(single->InitJob(InitFor(layout, 1, 0, Adam(1))).ok());
  v1::PushRequest mean = PushFor(layout, 1, 0, 0);
  for (v1::Tensor& t : *mean.mutable_gradients()) {
    for (float& x : *t.mutable_values()) x = 0;
  }
  for (int k = 0; k < 10; ++k) {
    v1::PushRequest push = PushFor(layout, 1, 0, 100 + k);
    auto response = accumulating->Push(push);
    ASSERT_TRUE(response.ok());
    EXPECT_EQ(response->applied(), k == 9);
    EXPECT_EQ(response->version(), k == 9 ? 1 : 0);
    for (int t = 0; t < push.gradients_size(); ++t) {
      for (int i = 0; i < push.gradients(t).values_size(); ++i) {
        mean.mutable_gradients(t)->set_values(i, mean.gradients(t).values(i) + push.gradients(t).values(i));
      }
    }
  }
  for (v1::Tensor& t : *mean.mutable_gradients()) {
    for (float& x : *t.mutable_values()) x /= 10;
  }
  ASSERT_TRUE(single->Push(mean).ok());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  auto a = accumulating->Pull(pull);
  auto b = single->Pull(pull);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int t = 0; t < a->tensors_size(); ++t) {
    for (int i = 0; i < a->tensors(t).values_size(); ++i) {
      EXPECT_NEAR(a->tensors(t).values(i), b->tensors(t).values(i), 1e-7);
    }
  }
}

TEST(ShardTest, HundredConcurrentPushersAreEachCountedOnce) {
  const Layout layout = MakeLayout();
  auto shard = NewShard(1, 0);
  v1::OptimizerConfig sgd;
  sgd.set_kind(v1::OptimizerConfig::SGD);
  sgd.set_learning_rate(1e-3);
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, sgd)).ok());
  const v1::PushRequest push = PushFor(layout, 1, 0, 1);
  std::vector<std::thread> pushers;
  std::atomic<int> failures{0};
  for (int p = 0; p < 100; ++p) {
    pushers.emplace_back([&] {
      for (int k = 0; k < 100; ++k) {
        if (!shard->Push(push).ok()) ++failures;
        v1::PullRequest pull;
        pull.set_job_id("job-1");
        if (k % 10 == 0 && !shard->Pull(pull).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : pushers) t.join();
  EXPECT_EQ(failures, 0);
  v1::GetShardInfoResponse info = shard->Info();
  ASSERT_EQ(info.jobs_size(), 1);
  EXPECT_EQ(info.jobs(0).version(), 10000);
  EXPECT_EQ(info.jobs(0).pushes(), 10000);
  // SGD with the same gradient 10,000 times: theta = theta0 - 10000 * lr * g, exactly
  // as a sequential loop in float computes it.
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  auto pulled = shard->Pull(pull);
  ASSERT_TRUE(pulled.ok());
  for (const v1::Tensor& t : pulled->tensors()) {
    const v1::Tensor* g = nullptr;
    for (const v1::Tensor& candidate : push.gradients()) {
      if (candidate.name() == t.name()) g = &candidate;
    }
    ASSERT_NE(g, nullptr);
    for (int i = 0; i < t.values_size(); ++i) {
      float expected = layout.initial.at(t.name())[i];
      for (int k = 0; k < 10000; ++k) expected -= 1e-3f * g->values(i);
      EXPECT_EQ(t.values(i), expected) << t.name();
    }
  }
}

TEST(ShardTest, PushCanReturnTheTensorsAsAPullRightAfterItWould) {
  const Layout layout = MakeLayout();
  std::unique_ptr<Shard> shard = NewShard(1, 0);
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, Adam())).ok());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  const v1::PullResponse before = shard->Pull(pull).value();
  v1::PushRequest push = PushFor(layout, 1, 0, 3);
  auto plain = shard->Push(push);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->tensors_size(), 0);  // only when asked
  push.set_return_parameters(true);
  auto returned = shard->Push(push);
  ASSERT_TRUE(returned.ok());
  const v1::PullResponse after = shard->Pull(pull).value();
  EXPECT_EQ(returned->version(), after.version());
  ASSERT_EQ(returned->tensors_size(), after.tensors_size());
  ASSERT_GT(after.tensors_size(), 0);
  for (int t = 0; t < after.tensors_size(); ++t) {
    EXPECT_EQ(returned->tensors(t).SerializeAsString(), after.tensors(t).SerializeAsString());
    EXPECT_NE(after.tensors(t).SerializeAsString(), before.tensors(t).SerializeAsString());
  }
}

TEST(ShardTest, BadPushesAreRejectedWithTheRightCodesAndChangeNothing) {
  const Layout layout = MakeLayout();
  auto shard = NewShard(2, 0);
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 2, 0, Adam())).ok());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  const std::string before = shard->Pull(pull)->SerializeAsString();

  v1::PushRequest nan = PushFor(layout, 2, 0, 1);
  nan.mutable_gradients(0)->set_values(0, std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(shard->Push(nan).status().code(), absl::StatusCode::kInvalidArgument);
  v1::PushRequest inf = PushFor(layout, 2, 0, 1);
  inf.mutable_gradients(1)->set_values(0, std::numeric_limits<float>::infinity());
  EXPECT_EQ(shard->Push(inf).status().code(), absl::StatusCode::kInvalidArgument);
  v1::PushRequest shape = PushFor(layout, 2, 0, 1);
  shape.mutable_gradients(0)->add_values(1);
  EXPECT_EQ(shape.gradients(0).values_size() > 0, true);
  EXPECT_EQ(shard->Push(shape).status().code(), absl::StatusCode::kInvalidArgument);
  v1::PushRequest foreign = PushFor(layout, 2, 1, 1);
  foreign.set_job_id("job-1");
  auto wrong_shard = shard->Push(foreign);
  EXPECT_EQ(wrong_shard.status().code(), absl::StatusCode::kInvalidArgument);
  v1::PushRequest unknown = PushFor(layout, 2, 0, 1, "no-such-job");
  EXPECT_EQ(shard->Push(unknown).status().code(), absl::StatusCode::kNotFound);
  pull.set_job_id("no-such-job");
  EXPECT_EQ(shard->Pull(pull).status().code(), absl::StatusCode::kNotFound);

  pull.set_job_id("job-1");
  EXPECT_EQ(shard->Pull(pull)->SerializeAsString(), before);
  EXPECT_EQ(shard->Info().jobs(0).pushes(), 0);
}

// The value of one series, or -1 when the registry has no such series.
double SeriesValue(prometheus::Registry& registry, const std::string& family,
                   const std::string& label, const std::string& value) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const prometheus::ClientMetric& m : f.metric) {
      for (const prometheus::ClientMetric::Label& l : m.label) {
        if (l.name == label && l.value == value) {
          return f.type == prometheus::MetricType::Gauge ? m.gauge.value : m.counter.value;
        }
      }
    }
  }
  return -1;
}

TEST(ShardTest, MetricsCountPushesPullsBytesAndRejections) {
  const Layout layout = MakeLayout();
  prometheus::Registry registry;
  ShardOptions options;
  options.num_shards = 1;
  options.shard_index = 0;
  options.metrics = &registry;
  auto shard = Shard::Create(options);
  ASSERT_TRUE(shard.ok()) << shard.status();
  ASSERT_TRUE((*shard)->InitJob(InitFor(layout, 1, 0, Adam())).ok());
  size_t floats = 0;
  for (const auto& [name, values] : layout.initial) floats += values.size();
  for (int seed = 1; seed <= 3; ++seed) ASSERT_TRUE((*shard)->Push(PushFor(layout, 1, 0, seed)).ok());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  ASSERT_TRUE((*shard)->Pull(pull).ok());
  EXPECT_EQ((*shard)->Push(PushFor(layout, 1, 0, 4, "no-such-job")).status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(SeriesValue(registry, "nas_ps_pushes_total", "outcome", "ok"), 3);
  EXPECT_EQ(SeriesValue(registry, "nas_ps_pushes_total", "outcome", "not_found"), 1);
  EXPECT_EQ(SeriesValue(registry, "nas_ps_pulls_total", "outcome", "ok"), 1);
  EXPECT_EQ(SeriesValue(registry, "nas_ps_bytes_total", "direction", "in"), 3.0 * floats * sizeof(float));
  EXPECT_EQ(SeriesValue(registry, "nas_ps_bytes_total", "direction", "out"), 1.0 * floats * sizeof(float));
  EXPECT_EQ(SeriesValue(registry, "nas_ps_version", "job_id", "job-1"), 3);
}

TEST(ShardTest, InitIsIdempotentAndAConflictingLayoutIsRefused) {
  const Layout layout = MakeLayout();
  auto shard = NewShard(2, 1);
  auto first = shard->InitJob(InitFor(layout, 2, 1, Adam()));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created());
  ASSERT_TRUE(shard->Push(PushFor(layout, 2, 1, 5)).ok());
  auto again = shard->InitJob(InitFor(layout, 2, 1, Adam()));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->created());
  EXPECT_EQ(again->version(), 1);
  Layout other = layout;
  other.specs[0].set_shape(0, 9);
  EXPECT_EQ(shard->InitJob(InitFor(other, 2, 1, Adam())).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A tensor that belongs to shard 0 is refused by name.
  v1::InitJobRequest foreign = InitFor(layout, 2, 0, Adam(), "job-2");
  foreign.set_shard_index(1);
  auto refused = shard->InitJob(foreign);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("is not assigned to shard 1"), absl::string_view::npos)
      << refused.status();
  EXPECT_EQ(shard->InitJob(InitFor(layout, 3, 1, Adam(), "job-3")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard->InitJob(InitFor(layout, 2, 1, Adam(), "../escape")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ShardTest, RestoresTheNewestGoodCheckpointAndSkipsACorruptOne) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/ckpt");
  const Layout layout = MakeLayout();
  std::string at_version_3;
  {
    auto shard = NewShard(1, 0, dir);
    ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, Adam())).ok());
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(shard->Push(PushFor(layout, 1, 0, k)).ok());
    ASSERT_TRUE(shard->CheckpointAll().ok());
    v1::PullRequest pull;
    pull.set_job_id("job-1");
    at_version_3 = shard->Pull(pull)->SerializeAsString();
    ASSERT_TRUE(shard->Push(PushFor(layout, 1, 0, 9)).ok());
    ASSERT_TRUE(shard->CheckpointAll().ok());
  }
  // Corrupt the newest (version 4) checkpoint.
  const std::string newest = absl::StrCat(dir, "/job-1/ckpt-00000000000000000004.bin");
  auto bytes = ReadFile(newest);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::string corrupt = *bytes;
  corrupt[corrupt.size() / 2] ^= 0x5a;
  ASSERT_TRUE(WriteFileAtomically(newest, corrupt).ok());
  EXPECT_EQ(DecodeCheckpoint(corrupt).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeCheckpoint(bytes->substr(0, bytes->size() - 3)).status().code(),
            absl::StatusCode::kDataLoss);

  auto restored = NewShard(1, 0, dir);
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  auto state = restored->Pull(pull);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->version(), 3);
  EXPECT_EQ(state->SerializeAsString(), at_version_3);
  // Training continues from there.
  ASSERT_TRUE(restored->Push(PushFor(layout, 1, 0, 10)).ok());
  EXPECT_EQ(restored->Info().jobs(0).version(), 4);
  // Dropping the job removes its checkpoints too.
  ASSERT_TRUE(restored->DropJob("job-1").ok());
  EXPECT_EQ(restored->DropJob("job-1").code(), absl::StatusCode::kNotFound);
  auto empty = NewShard(1, 0, dir);
  EXPECT_EQ(empty->Info().jobs_size(), 0);
}

// The value of a family's one unlabelled series (-1 if there is none).
double UnlabelledValue(prometheus::Registry& registry, const std::string& family) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name != family || f.metric.size() != 1 || !f.metric[0].label.empty()) continue;
    return f.type == prometheus::MetricType::Gauge ? f.metric[0].gauge.value
                                                   : f.metric[0].counter.value;
  }
  return -1;
}

// A data dir whose writes fail (ENOSPC, as from a full disk) while `full`.
struct FailingDisk {
  std::atomic<bool> full{false};
  std::atomic<int> attempts{0};
  ShardOptions Options(const std::string& dir, FakeClock* clock, prometheus::Registry* registry) {
    ShardOptions options;
    options.data_dir = dir;
    options.clock = clock;
    options.metrics = registry;
    options.write_checkpoint = [this](const std::string& d, const v1::ShardCheckpoint& c) {
      ++attempts;
      if (full) return absl::ResourceExhaustedError("cannot write " + d + ": No space left on device");
      return WriteCheckpoint(d, c);
    };
    return options;
  }
};

int64_t Version(Shard& shard) {
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  absl::StatusOr<v1::PullResponse> state = shard.Pull(pull);
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? state->version() : -1;
}

TEST(ShardTest, APushWhoseCheckpointFailsIsUndoneAndRefusedUntilACheckpointSucceeds) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/full-every-push");
  const Layout layout = MakeLayout();
  FakeClock clock;
  prometheus::Registry registry;
  FailingDisk disk;
  ShardOptions options = disk.Options(dir, &clock, &registry);
  options.checkpoint_every_updates = 1;  // every acknowledged push is durable
  auto created = Shard::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  ASSERT_TRUE(shard.InitJob(InitFor(layout, 1, 0, Adam())).ok());
  for (int k = 0; k < 3; ++k) ASSERT_TRUE(shard.Push(PushFor(layout, 1, 0, k)).ok());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  const std::string acknowledged = shard.Pull(pull)->SerializeAsString();

  disk.full = true;
  absl::StatusOr<v1::PushResponse> refused = shard.Push(PushFor(layout, 1, 0, 3));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_NE(refused.status().message().find(dir), absl::string_view::npos) << refused.status();
  EXPECT_NE(refused.status().message().find("No space left"), absl::string_view::npos);
  // The push was undone: the shard still serves the last acknowledged state.
  EXPECT_EQ(shard.Pull(pull)->SerializeAsString(), acknowledged);
  // Until the retry backoff passes, pushes are refused without touching the disk.
  const int attempts = disk.attempts;
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(shard.Push(PushFor(layout, 1, 0, 4)).status().code(),
              absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(disk.attempts, attempts);
  clock.Advance(options.checkpoint_retry_initial);
  EXPECT_EQ(shard.Push(PushFor(layout, 1, 0, 4)).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(disk.attempts, attempts + 1);
  EXPECT_EQ(Version(shard), 3);
  EXPECT_EQ(UnlabelledValue(registry, "nas_ps_jobs_checkpoint_failing"), 1);
  EXPECT_EQ(UnlabelledValue(registry, "nas_ps_checkpoint_failures_total"), 2);
  EXPECT_EQ(SeriesValue(registry, "nas_ps_pushes_total", "outcome", "checkpoint_failing"), 7);

  // A crash now (no CheckpointAll): the restart has every acknowledged push.
  {
    auto restarted = NewShard(1, 0, dir);
    EXPECT_EQ(restarted->Pull(pull)->SerializeAsString(), acknowledged);
  }

  // Space returns: the background retry (CheckpointDue) clears the state and
  // pushes are acknowledged again, with no restart.
  disk.full = false;
  clock.Advance(options.checkpoint_retry_max);
  shard.CheckpointDue();
  EXPECT_EQ(UnlabelledValue(registry, "nas_ps_jobs_checkpoint_failing"), 0);
  absl::StatusOr<v1::PushResponse> accepted = shard.Push(PushFor(layout, 1, 0, 3));
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_EQ(accepted->version(), 4);
  EXPECT_EQ(Version(*NewShard(1, 0, dir)), 4);
}

TEST(ShardTest, OnAFullDiskTheLossIsBoundedByTheCheckpointCadence) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/full-every-5");
  const Layout layout = MakeLayout();
  FakeClock clock;
  FailingDisk disk;
  ShardOptions options = disk.Options(dir, &clock, nullptr);
  options.checkpoint_every_updates = 5;
  auto created = Shard::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  ASSERT_TRUE(shard.InitJob(InitFor(layout, 1, 0, Adam())).ok());
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(shard.Push(PushFor(layout, 1, 0, k)).ok());
  disk.full = true;
  // Pushes 6..9 need no checkpoint and are acknowledged; the 10th makes one
  // due, it fails, and that push and every later one are refused.
  for (int k = 5; k < 9; ++k) ASSERT_TRUE(shard.Push(PushFor(layout, 1, 0, k)).ok());
  for (int k = 9; k < 30; ++k) {
    clock.Advance(absl::Seconds(1));
    EXPECT_EQ(shard.Push(PushFor(layout, 1, 0, k)).status().code(),
              absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(Version(shard), 9);
  // A crash loses fewer than checkpoint_every_updates acknowledged updates.
  EXPECT_EQ(Version(*NewShard(1, 0, dir)), 5);
}

TEST(ShardTest, AJobWhoseFirstCheckpointFailsIsNotCreated) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/full-at-init");
  const Layout layout = MakeLayout();
  FakeClock clock;
  FailingDisk disk;
  disk.full = true;
  auto created = Shard::Create(disk.Options(dir, &clock, nullptr));
  ASSERT_TRUE(created.ok()) << created.status();
  Shard& shard = **created;
  EXPECT_EQ(shard.InitJob(InitFor(layout, 1, 0, Adam())).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(shard.Info().jobs_size(), 0);
  EXPECT_EQ(shard.Push(PushFor(layout, 1, 0, 1)).status().code(), absl::StatusCode::kNotFound);
  disk.full = false;
  absl::StatusOr<v1::InitJobResponse> init = shard.InitJob(InitFor(layout, 1, 0, Adam()));
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_TRUE(init->created());
  EXPECT_EQ(NewShard(1, 0, dir)->Info().jobs_size(), 1);
}

TEST(ShardTest, RefusesToStartEmptyWhenAJobsCheckpointsExistButNoneVerifies) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/unreadable");
  const Layout layout = MakeLayout();
  {
    auto shard = NewShard(1, 0, dir);
    ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, Adam())).ok());
  }
  const std::string only = absl::StrCat(dir, "/job-1/ckpt-00000000000000000000.bin");
  // A write a crash interrupted is removed, not taken for a checkpoint.
  const std::string leftover = only + ".tmp.12345";
  ASSERT_TRUE(WriteFileAtomically(leftover, "partial").ok());
  EXPECT_EQ(NewShard(1, 0, dir)->Info().jobs(0).version(), 0);
  EXPECT_FALSE(ReadFile(leftover).ok());

  ASSERT_TRUE(WriteFileAtomically(only, "").ok());
  ShardOptions options;
  options.data_dir = dir;
  absl::StatusOr<std::unique_ptr<Shard>> refused = Shard::Create(options);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kDataLoss) << refused.status();
  EXPECT_NE(refused.status().message().find(only), absl::string_view::npos) << refused.status();
}


// ---- Sparse sets, momentum, the staleness bound, partial pulls (one-shot ω).

v1::OptimizerConfig SparseAdam(int64_t max_staleness = 0) {
  v1::OptimizerConfig opt = Adam();
  opt.set_sparse(true);
  opt.set_max_staleness(max_staleness);
  return opt;
}

// A sparse push of only `names` (gradients drawn as PushFor draws them).
v1::PushRequest SparsePush(const Layout& layout, const std::vector<std::string>& names, int seed,
                           int64_t base_version = 0) {
  v1::PushRequest all = PushFor(layout, 1, 0, seed);
  v1::PushRequest push;
  push.set_job_id("job-1");
  push.set_sparse(true);
  push.set_base_version(base_version);
  for (const std::string& name : names) {
    for (const v1::Tensor& g : all.gradients()) {
      if (g.name() == name) *push.add_gradients() = g;
    }
  }
  return push;
}

std::map<std::string, std::vector<float>> PullOne(Shard& shard) {
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  std::map<std::string, std::vector<float>> out;
  auto response = shard.Pull(pull);
  EXPECT_TRUE(response.ok()) << response.status();
  if (!response.ok()) return out;
  for (const v1::Tensor& t : response->tensors()) out[t.name()].assign(t.values().begin(), t.values().end());
  return out;
}

TEST(ShardTest, SgdMomentumIsTheHeavyBallAndItsBufferSurvivesARestart) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/momentum");
  const Layout layout = MakeLayout();
  v1::OptimizerConfig sgd;
  sgd.set_kind(v1::OptimizerConfig::SGD);
  sgd.set_learning_rate(0.1);
  sgd.set_momentum(0.9);
  auto continuing = NewShard(1, 0);
  ASSERT_TRUE(continuing->InitJob(InitFor(layout, 1, 0, sgd)).ok());
  {
    auto first = NewShard(1, 0, dir);
    ASSERT_TRUE(first->InitJob(InitFor(layout, 1, 0, sgd)).ok());
    for (int k = 0; k < 2; ++k) {
      ASSERT_TRUE(first->Push(PushFor(layout, 1, 0, k)).ok());
      ASSERT_TRUE(continuing->Push(PushFor(layout, 1, 0, k)).ok());
    }
    ASSERT_TRUE(first->CheckpointAll().ok());
  }
  // Two steps by hand: buf1 = g1, buf2 = 0.9 g1 + g2; theta -= 0.1 buf each.
  const v1::PushRequest g1 = PushFor(layout, 1, 0, 0), g2 = PushFor(layout, 1, 0, 1);
  const auto after_two = PullOne(*continuing);
  for (int t = 0; t < g1.gradients_size(); ++t) {
    const std::string& name = g1.gradients(t).name();
    for (int i = 0; i < g1.gradients(t).values_size(); ++i) {
      float theta = layout.initial.at(name)[i];
      float buf = g1.gradients(t).values(i);
      theta -= 0.1f * buf;
      buf = 0.9f * buf + g2.gradients(t).values(i);
      theta -= 0.1f * buf;
      EXPECT_NEAR(after_two.at(name)[i], theta, 1e-6) << name << i;  // FMA may round once less
    }
  }
  // The restored shard's next step uses the saved buffer: it matches the
  // shard that never stopped.
  auto restored = NewShard(1, 0, dir);
  ASSERT_TRUE(restored->Push(PushFor(layout, 1, 0, 2)).ok());
  ASSERT_TRUE(continuing->Push(PushFor(layout, 1, 0, 2)).ok());
  EXPECT_EQ(PullOne(*restored), PullOne(*continuing));
}

TEST(ShardTest, SparsePushesUpdateOnlyTheirTensorsEachWithItsOwnAdamStep) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/sparse");
  const Layout layout = MakeLayout();
  const std::string a = "lstm_0_w_ih", b = "head_a_bias";
  // `only_b` sees b's pushes alone; `mixed` sees a's as well. Each tensor
  // has its own step, so b ends the same in both (one step shared by the
  // set would give b a later bias correction in `mixed`).
  auto only_b = NewShard(1, 0);
  ASSERT_TRUE(only_b->InitJob(InitFor(layout, 1, 0, SparseAdam())).ok());
  {
    auto mixed = NewShard(1, 0, dir);
    ASSERT_TRUE(mixed->InitJob(InitFor(layout, 1, 0, SparseAdam())).ok());
    for (int k = 0; k < 3; ++k) {
      auto pushed = mixed->Push(SparsePush(layout, {a}, k));
      ASSERT_TRUE(pushed.ok()) << pushed.status();
      EXPECT_EQ(pushed->version(), k + 1);  // every applied sparse push is a version
    }
    auto pushed = mixed->Push(SparsePush(layout, {b}, 7));
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    EXPECT_EQ(pushed->version(), 4);
    ASSERT_TRUE(only_b->Push(SparsePush(layout, {b}, 7)).ok());
    const auto values = PullOne(*mixed);
    EXPECT_EQ(values.at(b), PullOne(*only_b).at(b));
    EXPECT_NE(values.at(a), layout.initial.at(a));
    for (const auto& [name, initial] : layout.initial) {
      if (name != a && name != b) {
        EXPECT_EQ(values.at(name), initial) << name << " was not pushed";
      }
    }
    ASSERT_TRUE(mixed->CheckpointAll().ok());
  }
  // The steps are in the checkpoint: b's second step after a restart is
  // still its own second step.
  auto restored = NewShard(1, 0, dir);
  EXPECT_EQ(restored->Info().jobs(0).version(), 4);
  ASSERT_TRUE(restored->Push(SparsePush(layout, {b}, 8)).ok());
  ASSERT_TRUE(only_b->Push(SparsePush(layout, {b}, 8)).ok());
  EXPECT_EQ(PullOne(*restored).at(b), PullOne(*only_b).at(b));
  // A full (non-sparse) push to a sparse set updates every tensor.
  auto full = restored->Push(PushFor(layout, 1, 0, 9));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->version(), 6);
}

TEST(ShardTest, BadSparsePushesAndSparseSetsThatAccumulateAreRefused) {
  const Layout layout = MakeLayout();
  auto dense = NewShard(1, 0);
  ASSERT_TRUE(dense->InitJob(InitFor(layout, 1, 0, Adam())).ok());
  absl::Status refused = dense->Push(SparsePush(layout, {"head_a_bias"}, 1)).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << refused;
  EXPECT_NE(refused.message().find("sparse"), absl::string_view::npos) << refused;

  auto shard = NewShard(1, 0);
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, SparseAdam())).ok());
  const auto before = PullOne(*shard);
  v1::PushRequest missing = SparsePush(layout, {"head_a_bias"}, 1);
  missing.set_sparse(false);  // not sparse: must carry every tensor, as before
  EXPECT_EQ(shard->Push(missing).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shard->Push(SparsePush(layout, {}, 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::PushRequest twice = SparsePush(layout, {"head_a_bias", "head_a_bias"}, 1);
  refused = shard->Push(twice).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("appears twice"), absl::string_view::npos) << refused;
  v1::PushRequest foreign = SparsePush(layout, {"head_a_bias"}, 1);
  foreign.mutable_gradients(0)->set_name("no_such_tensor");
  EXPECT_EQ(shard->Push(foreign).status().code(), absl::StatusCode::kInvalidArgument);
  v1::PushRequest nan = SparsePush(layout, {"head_a_bias", "lstm_0_bias"}, 1);
  nan.mutable_gradients(1)->set_values(0, std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(shard->Push(nan).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PullOne(*shard), before);
  EXPECT_EQ(shard->Info().jobs(0).version(), 0);

  v1::OptimizerConfig accumulating = SparseAdam();
  accumulating.set_gradients_per_update(4);
  refused = shard->InitJob(InitFor(layout, 1, 0, accumulating, "job-2")).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("gradients_per_update"), absl::string_view::npos) << refused;
}

TEST(ShardTest, APushStalerThanTheBoundIsAbortedCountedAndChangesNothing) {
  const Layout layout = MakeLayout();
  prometheus::Registry registry;
  ShardOptions options;
  options.metrics = &registry;
  auto shard = std::move(Shard::Create(options)).value();
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, SparseAdam(/*max_staleness=*/2))).ok());
  // From version 0: staleness 0, 1, 2 are within the bound.
  for (int k = 0; k < 3; ++k) {
    auto pushed = shard->Push(SparsePush(layout, {"lstm_0_bias"}, k, 0));
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    EXPECT_EQ(pushed->staleness(), k);
  }
  const auto before = PullOne(*shard);
  absl::Status stale = shard->Push(SparsePush(layout, {"lstm_0_bias"}, 3, 0)).status();
  ASSERT_EQ(stale.code(), absl::StatusCode::kAborted) << stale;
  EXPECT_NE(stale.message().find("3 versions stale"), absl::string_view::npos) << stale;
  EXPECT_NE(stale.message().find("max_staleness is 2"), absl::string_view::npos) << stale;
  EXPECT_EQ(PullOne(*shard), before);
  EXPECT_EQ(shard->Info().jobs(0).version(), 3);
  EXPECT_EQ(shard->Info().jobs(0).pushes(), 3);
  EXPECT_EQ(SeriesValue(registry, "nas_ps_pushes_total", "outcome", "stale"), 1);
  // Pulled again, the same gradient is accepted.
  EXPECT_TRUE(shard->Push(SparsePush(layout, {"lstm_0_bias"}, 3, 3)).ok());
  // No bound (0): any staleness goes.
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 1, 0, SparseAdam(0), "job-2")).ok());
  for (int k = 0; k < 5; ++k) {
    v1::PushRequest push = SparsePush(layout, {"lstm_0_bias"}, k, 0);
    push.set_job_id("job-2");
    EXPECT_TRUE(shard->Push(push).ok());
  }
}

TEST(ShardTest, APullOfSomeNamesReturnsOnlyThoseAndRefusesOnesTheShardDoesNotHold) {
  const Layout layout = MakeLayout();
  auto shard = NewShard(2, 0);
  ASSERT_TRUE(shard->InitJob(InitFor(layout, 2, 0, SparseAdam())).ok());
  const std::vector<int> owners = Owners(layout, 2);
  std::vector<std::string> mine, theirs;
  for (size_t i = 0; i < layout.specs.size(); ++i) {
    (owners[i] == 0 ? mine : theirs).push_back(layout.specs[i].name());
  }
  ASSERT_GE(mine.size(), 2u);
  ASSERT_FALSE(theirs.empty());
  v1::PullRequest pull;
  pull.set_job_id("job-1");
  pull.add_names(mine[1]);
  auto some = shard->Pull(pull);
  ASSERT_TRUE(some.ok()) << some.status();
  ASSERT_EQ(some->tensors_size(), 1);
  EXPECT_EQ(some->tensors(0).name(), mine[1]);
  const auto& initial = layout.initial.at(mine[1]);
  EXPECT_EQ(std::vector<float>(some->tensors(0).values().begin(), some->tensors(0).values().end()),
            initial);
  // if_newer_than_version as before.
  pull.set_if_newer_than_version(1);
  EXPECT_TRUE(shard->Pull(pull)->not_modified());
  ASSERT_TRUE(shard->Push(SparsePush(layout, {mine[0]}, 1)).ok());
  ASSERT_TRUE(shard->Push(SparsePush(layout, {mine[0]}, 2)).ok());
  some = shard->Pull(pull);
  ASSERT_TRUE(some.ok());
  EXPECT_FALSE(some->not_modified());
  EXPECT_EQ(some->tensors_size(), 1);
  pull.set_if_newer_than_version(0);
  pull.add_names(theirs[0]);
  absl::Status refused = shard->Pull(pull).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find(theirs[0]), absl::string_view::npos) << refused;
}

TEST(ShardTest, WorkersCreatingTheSameSetAtOnceGetOneCreationAndTheFirstValues) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/concurrent-init");
  const Layout layout = MakeLayout();
  auto shard = NewShard(1, 0, dir);
  constexpr int kWorkers = 8;
  std::atomic<int> created{0}, failed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      auto init = shard->InitJob(InitFor(layout, 1, 0, SparseAdam()));
      if (!init.ok()) ++failed;
      if (init.ok() && init->created()) ++created;
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(created, 1);
  ASSERT_TRUE(shard->Push(SparsePush(layout, {"lstm_0_bias"}, 1)).ok());
  const auto pushed = PullOne(*shard);
  // A late worker with other initial values changes nothing.
  Layout other = layout;
  for (auto& [name, values] : other.initial) std::fill(values.begin(), values.end(), 0.5f);
  auto late = shard->InitJob(InitFor(other, 1, 0, SparseAdam()));
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_FALSE(late->created());
  EXPECT_EQ(late->version(), 1);
  EXPECT_EQ(PullOne(*shard), pushed);
}

TEST(ShardTest, AnInitJobWaitingOnACreationThatFailsCreatesTheJobItself) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/init-race");
  const Layout layout = MakeLayout();
  absl::Notification writing, release;
  std::atomic<int> writes{0};
  ShardOptions options;
  options.data_dir = dir;
  options.write_checkpoint = [&](const std::string& d, const v1::ShardCheckpoint& c) {
    if (++writes == 1) {  // the first creation's checkpoint: held, then fails
      writing.Notify();
      release.WaitForNotification();
      return absl::ResourceExhaustedError("No space left on device");
    }
    return WriteCheckpoint(d, c);
  };
  auto shard = std::move(Shard::Create(options)).value();
  absl::StatusOr<v1::InitJobResponse> first, second;
  absl::Notification second_done;
  std::thread a([&] { first = shard->InitJob(InitFor(layout, 1, 0, SparseAdam())); });
  writing.WaitForNotification();
  std::thread b([&] {
    second = shard->InitJob(InitFor(layout, 1, 0, SparseAdam()));
    second_done.Notify();
  });
  // The second call must not answer before the first creation is durable;
  // give it the time to do so wrongly, then let the first fail.
  EXPECT_FALSE(second_done.WaitForNotificationWithTimeout(absl::Milliseconds(300)));
  release.Notify();
  a.join();
  b.join();
  EXPECT_EQ(first.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->created());
  ASSERT_EQ(shard->Info().jobs_size(), 1);
  EXPECT_EQ(NewShard(1, 0, dir)->Info().jobs_size(), 1);
}

}  // namespace
}  // namespace nas::ps
