#include "parameter_server/shard.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flat_tensor.h"
#include "common/logging.h"
#include "common/sharding.h"
#include "common/status_macros.h"
#include "common/tsan.h"
#include "parameter_server/checkpoint.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nas::ps {
namespace {

int64_t Elements(const google::protobuf::RepeatedField<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeText(const google::protobuf::RepeatedField<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

// While a job's checkpoints fail, one log line per this long (plus one when
// they start and one when they stop failing), not one per push.
constexpr absl::Duration kFailingLogEvery = absl::Seconds(60);

prometheus::Histogram::BucketBoundaries LatencyBuckets() {
  return {1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1};
}

}  // namespace

absl::Status ValidateJobId(const std::string& job_id) {
  if (job_id.empty() || job_id.size() > 128 || job_id[0] == '.') {
    return absl::InvalidArgumentError("job_id: must be 1..128 characters, not starting with '.'");
  }
  for (char c : job_id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return absl::InvalidArgumentError("job_id: only letters, digits, '-', '_' and '.' allowed");
    }
  }
  return absl::OkStatus();
}

struct Shard::Metrics {
  explicit Metrics(prometheus::Registry& r)
      : pulls(prometheus::BuildCounter()
                  .Name("nas_ps_pulls_total")
                  .Help("Pulls by outcome.")
                  .Register(r)),
        pushes(prometheus::BuildCounter()
                   .Name("nas_ps_pushes_total")
                   .Help("Pushes by outcome.")
                   .Register(r)),
        apply_seconds(prometheus::BuildHistogram()
                          .Name("nas_ps_apply_seconds")
                          .Help("Time to validate and apply (or accumulate) one push.")
                          .Register(r)
                          .Add({}, LatencyBuckets())),
        staleness(prometheus::BuildHistogram()
                      .Name("nas_ps_staleness")
                      .Help("Version at arrival minus the version a gradient was computed from.")
                      .Register(r)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 4, 8, 16, 32, 64,
                                                                       128, 256})),
        version(
            prometheus::BuildGauge().Name("nas_ps_version").Help("Version per job.").Register(r)),
        checkpoint_seconds(prometheus::BuildHistogram()
                               .Name("nas_ps_checkpoint_seconds")
                               .Help("Time to write one job's checkpoint.")
                               .Register(r)
                               .Add({}, LatencyBuckets())),
        checkpoint_failures(prometheus::BuildCounter()
                                .Name("nas_ps_checkpoint_failures_total")
                                .Help("Checkpoints that could not be written.")
                                .Register(r)
                                .Add({})),
        checkpoint_failing(prometheus::BuildGauge()
                               .Name("nas_ps_jobs_checkpoint_failing")
                               .Help("Jobs whose last checkpoint failed; their pushes are refused.")
                               .Register(r)
                               .Add({})),
        bytes(prometheus::BuildCounter()
                  .Name("nas_ps_bytes_total")
                  .Help("Tensor payload bytes received (in) and sent (out).")
                  .Register(r)),
        // Every push and pull counts into one of these: looked up once, not
        // per call (a family lookup hashes the labels under a lock).
        pulls_ok(pulls.Add({{"outcome", "ok"}})),
        pushes_ok(pushes.Add({{"outcome", "ok"}})),
        bytes_in(bytes.Add({{"direction", "in"}})),
        bytes_out(bytes.Add({{"direction", "out"}})) {}

  prometheus::Family<prometheus::Counter>& pulls;
  prometheus::Family<prometheus::Counter>& pushes;
  prometheus::Histogram& apply_seconds;
  prometheus::Histogram& staleness;
  prometheus::Family<prometheus::Gauge>& version;
  prometheus::Histogram& checkpoint_seconds;
  prometheus::Counter& checkpoint_failures;
  prometheus::Gauge& checkpoint_failing;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& pulls_ok;
  prometheus::Counter& pushes_ok;
  prometheus::Counter& bytes_in;
  prometheus::Counter& bytes_out;
};

struct Shard::Job {
  absl::Mutex mu;  // taken after Shard::mu_ when both are held
  // Constant after creation.
  std::string id;
  std::vector<v1::TensorSpec> layout;
  v1::OptimizerConfig optimizer_config;
  std::unique_ptr<Optimizer> optimizer;
  // This shard's tensors by name, with their shapes.
  std::map<std::string, std::vector<int64_t>> shapes;

  std::map<std::string, std::vector<float>> theta ABSL_GUARDED_BY(mu);
  std::map<std::string, std::vector<float>> m ABSL_GUARDED_BY(mu);
  std::map<std::string, std::vector<float>> v ABSL_GUARDED_BY(mu);
  std::map<std::string, std::vector<float>> accumulated ABSL_GUARDED_BY(mu);
  int accumulated_pushes ABSL_GUARDED_BY(mu) = 0;
  int64_t version ABSL_GUARDED_BY(mu) = 0;
  int64_t step ABSL_GUARDED_BY(mu) = 0;
  // Sparse sets: each tensor's own optimizer steps (Adam's t for it).
  std::map<std::string, int64_t> tensor_steps ABSL_GUARDED_BY(mu);
  int64_t pushes ABSL_GUARDED_BY(mu) = 0;
  // True from the InitJob that creates the job until its first checkpoint is
  // written (or fails, which drops it): a concurrent InitJob of the same job
  // waits for that before it answers.
  bool creating ABSL_GUARDED_BY(mu) = false;
  int64_t checkpointed_version ABSL_GUARDED_BY(mu) = -1;
  int64_t checkpointed_pushes ABSL_GUARDED_BY(mu) = -1;
  absl::Time last_checkpoint ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  bool dropped ABSL_GUARDED_BY(mu) = false;
  // Not OK while the job's last checkpoint failed: pushes are refused until a
  // retry (not before next_retry) succeeds.
  absl::Status checkpoint_error ABSL_GUARDED_BY(mu);
  absl::Time next_retry ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  absl::Duration retry_backoff ABSL_GUARDED_BY(mu) = absl::ZeroDuration();
  absl::Time last_failing_log ABSL_GUARDED_BY(mu) = absl::InfinitePast();
  int64_t refused_pushes ABSL_GUARDED_BY(mu) = 0;

  // The state a push changes, to undo a push whose checkpoint failed.
  struct State {
    std::map<std::string, std::vector<float>> theta, m, v, accumulated;
    int accumulated_pushes = 0;
    int64_t version = 0, step = 0, pushes = 0;
    std::map<std::string, int64_t> tensor_steps;
  };
  State Save() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return State{theta, m, v, accumulated, accumulated_pushes, version, step, pushes, tensor_steps};
  }
  void Restore(State state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    theta = std::move(state.theta);
    m = std::move(state.m);
    v = std::move(state.v);
    accumulated = std::move(state.accumulated);
    accumulated_pushes = state.accumulated_pushes;
    version = state.version;
    step = state.step;
    pushes = state.pushes;
    tensor_steps = std::move(state.tensor_steps);
  }

  // Zeroed state buffers for every tensor the optimizer needs them for
  // (where a checkpoint did not bring them).
  void AllocateBuffers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (const auto& [name, values] : theta) {
      if (optimizer->buffers() >= 1 && m[name].size() != values.size()) m[name].assign(values.size(), 0.f);
      if (optimizer->buffers() >= 2 && v[name].size() != values.size()) v[name].assign(values.size(), 0.f);
    }
  }

  // One optimizer update of tensor `name` by `gradient`, at the job's step
  // (a sparse set: the tensor's own step, advanced here).
  void Update(const std::string& name, const float* gradient) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::vector<float>& values = theta[name];
    auto first = m.find(name);
    auto second = v.find(name);
    const int64_t t = optimizer_config.sparse() ? ++tensor_steps[name] : step;
    optimizer->Apply(values.data(), gradient, first == m.end() ? nullptr : first->second.data(),
                     second == v.end() ? nullptr : second->second.data(), values.size(), t);
  }

  // What a refused push gets while checkpoint_error is set.
  absl::Status Refusal(const ShardOptions& options) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "job ", id, ": its checkpoint cannot be written to the data dir ", options.data_dir, " (",
        checkpoint_error.message(), "); pushes are refused until a checkpoint succeeds (free space "
        "there; retried every ", absl::FormatDuration(retry_backoff), ")"));
  }

  v1::ShardCheckpoint ToCheckpoint(int num_shards, int shard_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    v1::ShardCheckpoint c;
    c.set_job_id(id);
    c.set_num_shards(num_shards);
    c.set_shard_index(shard_index);
    for (const v1::TensorSpec& s : layout) *c.add_layout() = s;
    *c.mutable_optimizer() = optimizer_config;
    c.set_version(version);
    c.set_step(step);
    c.set_accumulated_pushes(accumulated_pushes);
    c.set_pushes(pushes);
    auto add = [&](auto* field, const std::map<std::string, std::vector<float>>& values) {
      for (const auto& [name, data] : values) {
        v1::Tensor* t = field->Add();
        t->set_name(name);
        t->mutable_shape()->Assign(shapes[name].begin(), shapes[name].end());
        t->mutable_values()->Assign(data.begin(), data.end());
      }
    };
    add(c.mutable_tensors(), theta);
    if (optimizer_config.sparse()) {
      for (v1::Tensor& t : *c.mutable_tensors()) t.set_optimizer_step(tensor_steps[t.name()]);
    }
    add(c.mutable_first_moments(), m);
    add(c.mutable_second_moments(), v);
    add(c.mutable_accumulated(), accumulated);
    return c;
  }

  // Writes this job's checkpoint to options.data_dir and records it. On
  // failure sets checkpoint_error (and the retry time) and returns Refusal().
  absl::Status Checkpoint(const ShardOptions& options, Metrics* metrics)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
};

absl::Status Shard::Job::Checkpoint(const ShardOptions& options, Metrics* metrics) {
  const absl::Time start = absl::Now();
  v1::ShardCheckpoint c = ToCheckpoint(options.num_shards, options.shard_index);
  absl::Status status = options.write_checkpoint ? options.write_checkpoint(options.data_dir, c)
                                                 : WriteCheckpoint(options.data_dir, c);
  const absl::Time now = options.clock->Now();
  if (!status.ok()) {
    if (metrics) metrics->checkpoint_failures.Increment();
    if (checkpoint_error.ok()) {
      if (metrics) metrics->checkpoint_failing.Increment();
      retry_backoff = options.checkpoint_retry_initial;
      refused_pushes = 0;
      last_failing_log = now;
      NAS_LOG(Error) << "job " << id << ": checkpoint at version " << version << " failed: "
                     << status << "; pushes are refused until a checkpoint succeeds";
    } else {
      retry_backoff = std::min(retry_backoff * 2, options.checkpoint_retry_max);
      if (now - last_failing_log >= kFailingLogEvery) {
        last_failing_log = now;
        NAS_LOG(Error) << "job " << id << ": checkpoints still fail (" << status << "); "
                       << refused_pushes << " pushes refused so far";
      }
    }
    checkpoint_error = status;
    next_retry = now + retry_backoff;
    return Refusal(options);
  }
  if (!checkpoint_error.ok()) {
    if (metrics) metrics->checkpoint_failing.Decrement();
    checkpoint_error = absl::OkStatus();
    NAS_LOG(Info) << "job " << id << ": checkpoint written again at version " << version
                  << "; pushes accepted again (" << refused_pushes << " were refused)";
  }
  checkpointed_version = version;
  checkpointed_pushes = pushes;
  last_checkpoint = options.clock->Now();
  if (metrics) metrics->checkpoint_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  return absl::OkStatus();
}

Shard::Shard(const ShardOptions& options) : options_(options) {
  if (options.metrics != nullptr) metrics_ = std::make_unique<Metrics>(*options.metrics);
}

Shard::~Shard() = default;

absl::StatusOr<std::unique_ptr<Shard>> Shard::Create(const ShardOptions& options) {
  if (options.num_shards < 1 || options.num_shards > 64 || options.shard_index < 0 ||
      options.shard_index >= options.num_shards) {
    return absl::InvalidArgumentError("num_shards must be 1..64 and shard_index 0..num_shards-1");
  }
  std::unique_ptr<Shard> shard(new Shard(options));
  if (options.data_dir.empty()) return shard;
  ASSIGN_OR_RETURN(LoadedJobs loaded, LoadCheckpoints(options.data_dir));
  for (const std::string& removed : loaded.removed) {
    NAS_LOG(Warning) << "removed an unfinished checkpoint write: " << removed;
  }
  if (!loaded.broken.empty()) {
    return absl::DataLossError(absl::StrCat(
        "checkpoints exist but none of a job's verifies, so the shard will not start empty in "
        "their place (move the job's directory aside to start without it): ",
        absl::StrJoin(loaded.broken, "; ")));
  }
  for (LoadedCheckpoint& l : loaded.jobs) {
    for (const std::string& skipped : l.skipped) {
      NAS_LOG(Error) << "corrupt checkpoint skipped, using an older one: " << skipped;
    }
    const v1::ShardCheckpoint& c = l.checkpoint;
    if (c.num_shards() != options.num_shards || c.shard_index() != options.shard_index) {
      NAS_LOG(Error) << "checkpoint of job " << c.job_id() << " is for shard " << c.shard_index()
                     << "/" << c.num_shards() << ", not this shard; not restored";
      continue;
    }
    auto job = std::make_shared<Job>();
    job->id = c.job_id();
    job->layout.assign(c.layout().begin(), c.layout().end());
    job->optimizer_config = c.optimizer();
    absl::StatusOr<std::unique_ptr<Optimizer>> optimizer = CreateOptimizer(c.optimizer());
    if (!optimizer.ok()) {
      NAS_LOG(Error) << "checkpoint of job " << c.job_id() << ": " << optimizer.status();
      continue;
    }
    job->optimizer = std::move(optimizer).value();
    {
    LockedMutex lock(&job->mu);
    for (const v1::Tensor& t : c.tensors()) {
      job->shapes[t.name()].assign(t.shape().begin(), t.shape().end());
      job->theta[t.name()].assign(t.values().begin(), t.values().end());
    }
    for (const v1::Tensor& t : c.first_moments()) job->m[t.name()].assign(t.values().begin(), t.values().end());
    for (const v1::Tensor& t : c.second_moments()) job->v[t.name()].assign(t.values().begin(), t.values().end());
    for (const v1::Tensor& t : c.accumulated()) {
      job->accumulated[t.name()].assign(t.values().begin(), t.values().end());
    }
    job->AllocateBuffers();
    // Each tensor of a sparse set has its own step (sets saved before sparse
    // sets existed are not sparse and use `step`).
    if (c.optimizer().sparse()) {
      for (const v1::Tensor& t : c.tensors()) job->tensor_steps[t.name()] = t.optimizer_step();
    }
    job->accumulated_pushes = c.accumulated_pushes();
    job->version = c.version();
    job->step = c.step();
    job->pushes = c.pushes();
    job->checkpointed_version = c.version();
    job->checkpointed_pushes = c.pushes();
    job->last_checkpoint = options.clock->Now();
    }
    NAS_LOG(Info) << "restored job " << c.job_id() << " at version " << c.version();
    if (shard->metrics_) shard->metrics_->version.Add({{"job_id", c.job_id()}}).Set(c.version());
    LockedMutex shard_lock(&shard->mu_);
    shard->jobs_[c.job_id()] = std::move(job);
  }
  return shard;
}

std::shared_ptr<Shard::Job> Shard::FindJob(const std::string& job_id) {
  LockedMutex lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second;
}

absl::StatusOr<v1::InitJobResponse> Shard::InitJob(const v1::InitJobRequest& request) {
  RETURN_IF_ERROR(ValidateJobId(request.job_id()));
  if (request.num_shards() != options_.num_shards || request.shard_index() != options_.shard_index) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request is for shard ", request.shard_index(), " of ", request.num_shards(),
        "; this is shard ", options_.shard_index, " of ", options_.num_shards));
  }
  if (request.layout().empty()) return absl::InvalidArgumentError("layout: must not be empty");
  // Which tensors belong here, by the shared rule.
  std::vector<TensorSize> sizes;
  std::map<std::string, const v1::TensorSpec*> by_name;
  for (const v1::TensorSpec& spec : request.layout()) {
    if (spec.name().empty() || spec.name().size() > 256) {
      return absl::InvalidArgumentError("layout: tensor names must be 1..256 characters");
    }
    for (int64_t d : spec.shape()) {
      if (d <= 0 || d > (int64_t{1} << 31)) {
        return absl::InvalidArgumentError(absl::StrCat("layout: tensor '", spec.name(), "' has shape ",
                                                       ShapeText(spec.shape())));
      }
    }
    if (!by_name.emplace(spec.name(), &spec).second) {
      return absl::InvalidArgumentError(absl::StrCat("layout: tensor '", spec.name(), "' appears twice"));
    }
    sizes.push_back({spec.name(), Elements(spec.shape())});
  }
  const std::vector<int> owner = AssignShards(sizes, options_.num_shards);
  std::map<std::string, std::vector<int64_t>> mine;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (owner[i] == options_.shard_index) {
      const auto& shape = request.layout(static_cast<int>(i)).shape();
      mine[sizes[i].name].assign(shape.begin(), shape.end());
    }
  }
  std::map<std::string, const v1::Tensor*> given;
  for (const v1::Tensor& t : request.tensors()) {
    if (mine.count(t.name()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", t.name(), "' is not assigned to shard ", options_.shard_index,
          by_name.count(t.name()) ? "" : " (and not in the layout)"));
    }
    if (std::vector<int64_t>(t.shape().begin(), t.shape().end()) != mine[t.name()] ||
        t.values_size() != Elements(t.shape())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "': shape or value count ",
                                                     "does not match the layout"));
    }
    for (float x : t.values()) {
      if (!std::isfinite(x)) {
        return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name(), "' has a non-finite value"));
      }
    }
    given[t.name()] = &t;
  }
  for (const auto& [name, shape] : mine) {
    if (given.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' of this shard is missing"));
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> optimizer, CreateOptimizer(request.optimizer()));

  // Several workers may create the same set at once (one-shot ω): one of
  // them creates it, the others answer created=false once it is durable; if
  // its first checkpoint fails, the job is gone and a waiting call tries again.
  for (;;) {
    std::shared_ptr<Job> existing, job;
    {
      LockedMutex lock(&mu_);
      auto it = jobs_.find(request.job_id());
      if (it != jobs_.end()) {
        existing = it->second;
        bool same = existing->layout.size() == static_cast<size_t>(request.layout_size());
        for (size_t i = 0; same && i < existing->layout.size(); ++i) {
          same = existing->layout[i].name() == request.layout(static_cast<int>(i)).name() &&
                 std::equal(existing->layout[i].shape().begin(), existing->layout[i].shape().end(),
                            request.layout(static_cast<int>(i)).shape().begin(),
                            request.layout(static_cast<int>(i)).shape().end());
        }
        if (!same) {
          return absl::FailedPreconditionError(absl::StrCat(
              "job ", request.job_id(), " exists with another tensor layout; drop it first"));
        }
      } else {
        job = std::make_shared<Job>();
        job->id = request.job_id();
        job->layout.assign(request.layout().begin(), request.layout().end());
        job->optimizer_config = request.optimizer();
        job->optimizer = std::move(optimizer);
        job->shapes = mine;
        LockedMutex job_lock(&job->mu);
        for (const auto& [name, t] : given) {
          job->theta[name].assign(t->values().begin(), t->values().end());
          if (job->optimizer_config.sparse()) job->tensor_steps[name] = 0;
        }
        job->AllocateBuffers();
        job->creating = !options_.data_dir.empty();
        jobs_[job->id] = job;
      }
    }
    if (existing != nullptr) {
      {
        // The first InitJob's values (and optimizer config) stay.
        LockedMutex job_lock(&existing->mu);
        existing->mu.Await(absl::Condition(
            +[](bool* creating) { return !*creating; }, &existing->creating));
        if (!existing->dropped) {
          v1::InitJobResponse response;
          response.set_version(existing->version);
          response.set_created(false);
          return response;
        }
      }
      // Its creation failed (or it was dropped): forget it here too, if its
      // creator has not yet, and create it anew.
      LockedMutex lock(&mu_);
      auto it = jobs_.find(request.job_id());
      if (it != jobs_.end() && it->second == existing) jobs_.erase(it);
      continue;
    }
    if (!options_.data_dir.empty()) {
      // A new job is checkpointed at once, so a restart never forgets it; one
      // that cannot be is not created (a retry tries again).
      absl::Status written;
      {
        LockedMutex job_lock(&job->mu);
        written = job->Checkpoint(options_, metrics_.get());
        job->creating = false;
        if (!written.ok()) {
          job->dropped = true;
          if (metrics_) metrics_->checkpoint_failing.Decrement();
        }
      }
      if (!written.ok()) {
        LockedMutex lock(&mu_);
        auto it = jobs_.find(request.job_id());
        if (it != jobs_.end() && it->second == job) jobs_.erase(it);
        return written;
      }
    }
    break;
  }
  if (metrics_) metrics_->version.Add({{"job_id", request.job_id()}}).Set(0);
  NAS_LOG(Info) << "job " << request.job_id() << ": " << mine.size() << " of "
                << request.layout_size() << " tensors on this shard";
  v1::InitJobResponse response;
  response.set_version(0);
  response.set_created(true);
  return response;
}

absl::Status Shard::DropJob(const std::string& job_id) {
  RETURN_IF_ERROR(ValidateJobId(job_id));
  std::shared_ptr<Job> job;
  {
    LockedMutex lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", job_id, "' on this shard"));
    job = it->second;
    jobs_.erase(it);
  }
  LockedMutex job_lock(&job->mu);
  job->dropped = true;
  if (metrics_ && !job->checkpoint_error.ok()) metrics_->checkpoint_failing.Decrement();
  if (metrics_) metrics_->version.Remove(&metrics_->version.Add({{"job_id", job_id}}));
  if (!options_.data_dir.empty()) return DeleteCheckpoints(options_.data_dir, job_id);
  return absl::OkStatus();
}

absl::StatusOr<v1::PullResponse> Shard::Pull(const v1::PullRequest& request) {
  std::shared_ptr<Job> job = FindJob(request.job_id());
  if (job == nullptr) {
    if (metrics_) metrics_->pulls.Add({{"outcome", "not_found"}}).Increment();
    return absl::NotFoundError(absl::StrCat("no job '", request.job_id().substr(0, 200), "' on this shard"));
  }
  // Only these tensors (shapes is constant after creation: no lock needed).
  const std::set<std::string> only(request.names().begin(), request.names().end());
  for (const std::string& name : only) {
    if (job->shapes.count(name) == 0) {
      if (metrics_) metrics_->pulls.Add({{"outcome", "invalid"}}).Increment();
      return absl::InvalidArgumentError(absl::StrCat(
          "names: tensor '", name.substr(0, 200), "' is not one of the ", job->shapes.size(),
          " tensors of job ", request.job_id(), " on shard ", options_.shard_index, " of ",
          options_.num_shards));
    }
  }
  v1::PullResponse response;
  size_t bytes = 0;
  {
    LockedMutex lock(&job->mu);
    response.set_version(job->version);
    if (request.if_newer_than_version() > 0 && job->version <= request.if_newer_than_version()) {
      response.set_not_modified(true);
    } else {
      for (const auto& [name, values] : job->theta) {
        if (!only.empty() && only.count(name) == 0) continue;
        v1::Tensor* t = response.add_tensors();
        t->set_name(name);
        t->mutable_shape()->Assign(job->shapes[name].begin(), job->shapes[name].end());
        t->mutable_values()->Assign(values.begin(), values.end());
        bytes += values.size() * sizeof(float);
      }
    }
  }
  if (metrics_) {
    metrics_->pulls_ok.Increment();
    metrics_->bytes_out.Increment(static_cast<double>(bytes));
  }
  return response;
}

absl::StatusOr<v1::PushResponse> Shard::Push(const v1::PushRequest& request) {
  const absl::Time start = absl::Now();
  auto reject = [&](const char* outcome, absl::Status status) {
    if (metrics_) metrics_->pushes.Add({{"outcome", outcome}}).Increment();
    return status;
  };
  std::shared_ptr<Job> job = FindJob(request.job_id());
  if (job == nullptr) {
    return reject("not_found", absl::NotFoundError(absl::StrCat(
                                   "no job '", request.job_id().substr(0, 200), "' on this shard")));
  }
  // Validate everything before touching any state. A base version above the
  // current one is allowed: a shard restored from its checkpoint may be
  // behind the version a replica pulled before the restart.
  if (request.base_version() < 0) {
    return reject("invalid", absl::InvalidArgumentError(absl::StrCat(
                                 "base_version: must be >= 0, got ", request.base_version())));
  }
  // optimizer_config is constant after creation.
  const bool sparse_set = job->optimizer_config.sparse();
  if (request.sparse() && !sparse_set) {
    return reject("invalid", absl::InvalidArgumentError(absl::StrCat(
                                 "sparse: job ", request.job_id(), "'s tensor set was not created ",
                                 "sparse (optimizer.sparse); push every tensor of the shard")));
  }
  if (request.sparse() ? request.gradients_size() == 0
                       : request.gradients_size() != static_cast<int>(job->shapes.size())) {
    return reject("invalid", absl::InvalidArgumentError(absl::StrCat(
                                 "push has ", request.gradients_size(), " gradients; this shard holds ",
                                 job->shapes.size(), " tensors of the job",
                                 request.sparse() ? " (a sparse push needs at least one)" : "")));
  }
  std::map<std::string, const v1::Tensor*> gradients;
  size_t bytes = 0;
  for (const v1::Tensor& g : request.gradients()) {
    auto shape = job->shapes.find(g.name());
    if (shape == job->shapes.end()) {
      return reject("invalid", absl::InvalidArgumentError(absl::StrCat(
                                   "gradient '", g.name().substr(0, 200), "' is not a tensor of this shard")));
    }
    if (std::vector<int64_t>(g.shape().begin(), g.shape().end()) != shape->second ||
        g.values_size() != Elements(g.shape())) {
      return reject("invalid", absl::InvalidArgumentError(absl::StrCat(
                                   "gradient '", g.name(), "' has shape ", ShapeText(g.shape()), " and ",
                                   g.values_size(), " values; the tensor is ",
                                   absl::StrCat("[", absl::StrJoin(shape->second, ","), "]"))));
    }
    if (!gradients.emplace(g.name(), &g).second) {
      return reject("invalid", absl::InvalidArgumentError(absl::StrCat("gradient '", g.name(), "' appears twice")));
    }
    for (float x : g.values()) {
      if (!std::isfinite(x)) {
        return reject("non_finite", absl::InvalidArgumentError(absl::StrCat(
                                        "gradient '", g.name(), "' has a NaN or infinite value; push rejected")));
      }
    }
    bytes += g.values_size() * sizeof(float);
  }
  v1::PushResponse response;
  {
    LockedMutex lock(&job->mu);
    if (job->dropped) return reject("not_found", absl::NotFoundError("job was dropped"));
    const bool durable = !options_.data_dir.empty();
    if (durable && !job->checkpoint_error.ok() &&
        (options_.clock->Now() < job->next_retry || !job->Checkpoint(options_, metrics_.get()).ok())) {
      ++job->refused_pushes;
      return reject("checkpoint_failing", job->Refusal(options_));
    }
    const int64_t staleness = job->version - request.base_version();
    const int64_t bound = job->optimizer_config.max_staleness();
    if (bound > 0 && staleness > bound) {
      return reject("stale", absl::AbortedError(absl::StrCat(
                                 "push is ", staleness, " versions stale (computed from version ",
                                 request.base_version(), ", shard ", options_.shard_index, " is at ",
                                 job->version, "); job ", request.job_id(), "'s max_staleness is ",
                                 bound, ": pull again")));
    }
    const int n = std::max(1, job->optimizer_config.gradients_per_update());
    // Whether this push makes a checkpoint due; if so its state before the
    // push is kept, to undo it when the checkpoint fails.
    const bool updates = n == 1 || job->accumulated_pushes + 1 >= n;
    const bool checkpoint_due =
        durable && ((options_.checkpoint_every_updates > 0 &&
                     job->version + (updates ? 1 : 0) - job->checkpointed_version >=
                         options_.checkpoint_every_updates) ||
                    options_.clock->Now() - job->last_checkpoint >= options_.checkpoint_interval);
    std::optional<Job::State> before;
    if (checkpoint_due) before = job->Save();
    response.set_staleness(staleness);
    if (metrics_) metrics_->staleness.Observe(static_cast<double>(std::max<int64_t>(0, staleness)));
    ++job->pushes;
    if (n == 1) {
      ++job->step;
      // Every tensor of the shard, or a sparse push's subset.
      for (const auto& [name, g] : gradients) job->Update(name, g->values().data());
      ++job->version;
      response.set_applied(true);
    } else {
      for (auto& [name, theta] : job->theta) {
        std::vector<float>& sum = job->accumulated[name];
        sum.resize(theta.size(), 0.f);
        const float* g = gradients[name]->values().data();
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += g[i];
      }
      if (++job->accumulated_pushes >= n) {
        ++job->step;
        for (auto& [name, theta] : job->theta) {
          std::vector<float>& sum = job->accumulated[name];
          for (float& x : sum) x /= static_cast<float>(job->accumulated_pushes);
          job->Update(name, sum.data());
          std::fill(sum.begin(), sum.end(), 0.f);
        }
        job->accumulated_pushes = 0;
        ++job->version;
        response.set_applied(true);
      }
    }
    if (checkpoint_due) {
      if (absl::Status written = job->Checkpoint(options_, metrics_.get()); !written.ok()) {
        job->Restore(*std::move(before));
        ++job->refused_pushes;
        return reject("checkpoint_failing", written);
      }
    }
    response.set_version(job->version);
    if (request.return_parameters()) {
      for (const auto& [name, values] : job->theta) {
        v1::Tensor* t = response.add_tensors();
        t->set_name(name);
        t->mutable_shape()->Assign(job->shapes[name].begin(), job->shapes[name].end());
        t->mutable_values()->Assign(values.begin(), values.end());
      }
    }
  }
  if (metrics_) {
    metrics_->pushes_ok.Increment();
    metrics_->bytes_in.Increment(static_cast<double>(bytes));
    metrics_->version.Add({{"job_id", request.job_id()}}).Set(static_cast<double>(response.version()));
    metrics_->apply_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return response;
}


absl::Status Shard::CheckpointAll() {
  if (options_.data_dir.empty()) return absl::OkStatus();
  std::vector<std::shared_ptr<Job>> jobs;
  {
    LockedMutex lock(&mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job);
  }
  absl::Status result;
  for (auto& job : jobs) {
    LockedMutex lock(&job->mu);
    if (job->dropped || job->pushes == job->checkpointed_pushes) continue;
    absl::Status s = job->Checkpoint(options_, metrics_.get());
    if (!s.ok()) result = s;
  }
  return result;
}

void Shard::CheckpointDue() {
  if (options_.data_dir.empty()) return;
  std::vector<std::shared_ptr<Job>> jobs;
  {
    LockedMutex lock(&mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job);
  }
  for (auto& job : jobs) {
    LockedMutex lock(&job->mu);
    if (job->dropped) continue;
    if (!job->checkpoint_error.ok()) {
      // A failed checkpoint is retried (it logs) when its backoff has passed.
      if (options_.clock->Now() >= job->next_retry) (void)job->Checkpoint(options_, metrics_.get());
      continue;
    }
    if (job->pushes == job->checkpointed_pushes) continue;
    if (options_.clock->Now() - job->last_checkpoint < options_.checkpoint_interval) continue;
    (void)job->Checkpoint(options_, metrics_.get());
  }
}

v1::GetShardInfoResponse Shard::Info() {
  v1::GetShardInfoResponse info;
  info.set_shard_index(options_.shard_index);
  info.set_num_shards(options_.num_shards);
  LockedMutex lock(&mu_);
  for (auto& [id, job] : jobs_) {
    LockedMutex job_lock(&job->mu);
    v1::ShardJobInfo* j = info.add_jobs();
    j->set_job_id(id);
    j->set_version(job->version);
    int64_t n = 0;
    for (const auto& [name, values] : job->theta) n += static_cast<int64_t>(values.size());
    j->set_parameters(n);
    j->set_pushes(job->pushes);
  }
  return info;
}

}  // namespace nas::ps
