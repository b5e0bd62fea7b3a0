#include "worker/command_evaluator.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/export.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/printable.h"
#include "common/subprocess.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "search_space/defaults.h"

extern char** environ;

namespace nas::worker {
namespace {

// Lines longer than this are ordinary output, never metrics.
constexpr size_t kMaxLineBytes = 64 << 10;
// The end of stderr that a failed attempt's error quotes.
constexpr size_t kStderrTailBytes = 2048;

// Python's json.dumps writes NaN, Infinity and -Infinity, which are not JSON:
// outside strings they become null.
std::string NonFiniteToNull(absl::string_view line) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < line.size()) {
        out.push_back(line[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (absl::string_view token : {"-Infinity", "Infinity", "NaN"}) {
      if (absl::StartsWith(line.substr(i), token)) {
        out.append("null");
        i += token.size() - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out.push_back(c);
  }
  return out;
}

absl::Status Bad(absl::string_view key, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" ", problem));
}

// A non-negative integer (JSON numbers are doubles here).
absl::StatusOr<int64_t> Integer(const google::protobuf::Value& value, absl::string_view key, double low) {
  if (value.kind_case() != google::protobuf::Value::kNumberValue) return Bad(key, "must be a number");
  const double v = value.number_value();
  if (!std::isfinite(v) || v != std::floor(v) || v < low || v > 9e15) {
    return Bad(key, absl::StrCat("must be an integer >= ", low, ", got ", v));
  }
  return static_cast<int64_t>(v);
}

absl::StatusOr<double> Fraction(const google::protobuf::Value& value, absl::string_view key) {
  if (value.kind_case() == google::protobuf::Value::kNullValue) return Bad(key, "must not be NaN or infinite");
  if (value.kind_case() != google::protobuf::Value::kNumberValue) return Bad(key, "must be a number");
  const double v = value.number_value();
  if (!(v >= 0 && v <= 1)) return Bad(key, absl::StrCat("must be in [0, 1], got ", v));
  return v;
}

}  // namespace

absl::StatusOr<std::optional<MetricLine>> ParseMetricLine(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  if (!absl::StartsWith(line, "{") || line.size() > kMaxLineBytes) return std::nullopt;
  // JSON keys are double-quoted (protobuf's parser would also take Python's
  // single-quoted dict repr, which is ordinary output here).
  if (!absl::StartsWith(absl::StripLeadingAsciiWhitespace(line.substr(1)), "\"")) return std::nullopt;
  google::protobuf::Struct object;
  if (!google::protobuf::util::JsonStringToMessage(NonFiniteToNull(line), &object).ok()) {
    return std::nullopt;  // not JSON: ordinary output
  }
  const auto& fields = object.fields();
  if (!fields.contains("epoch") && !fields.contains("accuracy")) return std::nullopt;
  MetricLine out;
  for (const auto& [key, value] : fields) {
    if (key == "epoch") {
      absl::StatusOr<int64_t> epoch = Integer(value, key, 1);
      if (!epoch.ok()) return epoch.status();
      if (*epoch > 1'000'000) return Bad(key, absl::StrCat("must be at most 1000000, got ", *epoch));
      out.epoch = static_cast<int>(*epoch);
    } else if (key == "accuracy" || key == "train_accuracy") {
      absl::StatusOr<double> v = Fraction(value, key);
      if (!v.ok()) return v.status();
      (key == "accuracy" ? out.accuracy : out.train_accuracy) = *v;
    } else if (key == "loss") {
      if (value.kind_case() == google::protobuf::Value::kNullValue) continue;  // NaN: not reported
      if (value.kind_case() != google::protobuf::Value::kNumberValue) return Bad(key, "must be a number");
      out.loss = value.number_value();
    } else if (key == "parameters" || key == "flops") {
      absl::StatusOr<int64_t> v = Integer(value, key, 0);
      if (!v.ok()) return v.status();
      (key == "parameters" ? out.parameters : out.flops) = *v;
    } else if (key == "latency_seconds") {
      if (value.kind_case() != google::protobuf::Value::kNumberValue || !(value.number_value() >= 0) ||
          !std::isfinite(value.number_value())) {
        return Bad(key, "must be a finite number >= 0");
      }
      out.latency_seconds = value.number_value();
    }
    // Other keys are the script's own and ignored.
  }
  return out;
}

namespace {

// A file name made of the id's safe characters.
std::string SafeName(absl::string_view id) {
  std::string out;
  for (char c : id) out.push_back(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_');
  return out.empty() ? "_" : out;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = ::strsignal(WTERMSIG(status));
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (", name != nullptr ? name : "?", ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

class CommandEvaluator : public Evaluator {
 public:
  explicit CommandEvaluator(const EvaluatorOptions& options) : options_(options) {}

  absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task, const EvaluationContext& context) override {
    if (!options_.allow_command) {
      return absl::FailedPreconditionError(
          "this worker does not run command evaluators: start nas_worker with "
          "--allow_command_evaluator to let job specs run commands on it");
    }
    absl::StatusOr<std::string> dir = MakeWorkingDirectory(task);
    if (!dir.ok()) return dir.status();
    absl::StatusOr<v1::TrialMetrics> result = Run(task, context, *dir);
    if (!options_.keep_command_dirs) {
      std::error_code error;
      std::filesystem::remove_all(*dir, error);
      if (error) NAS_LOG(Warning) << "cannot remove " << *dir << ": " << error.message();
    }
    return result;
  }

 private:
  absl::StatusOr<std::string> MakeWorkingDirectory(const v1::Task& task) {
    std::string root = options_.command_work_dir;
    if (root.empty()) {
      const char* tmp = std::getenv("TMPDIR");
      root = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/nas-worker-trials");
    }
    if (absl::Status made = MakeDirectories(root); !made.ok()) return made;
    std::string pattern = absl::StrCat(root, "/", SafeName(task.job_id()), "-", SafeName(task.trial_id()), "-",
                                       task.attempt(), "-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create a working directory under ", root, ": ",
                                              std::strerror(errno)));
    }
    // What `nasctl export` writes for the trial (model.py where the space has one).
    v1::Job job;
    job.set_job_id(task.job_id());
    *job.mutable_spec()->mutable_search_space() = task.search_space();
    *job.mutable_spec()->mutable_evaluator() = task.evaluator();
    v1::Trial trial;
    trial.set_trial_id(task.trial_id());
    trial.set_job_id(task.job_id());
    *trial.mutable_architecture() = task.architecture();
    absl::StatusOr<std::vector<std::string>> written = client::ExportTrial(job, trial, pattern);
    if (!written.ok()) return written.status();
    if (absl::Status made = MakeDirectories(pattern + "/output"); !made.ok()) return made;
    return pattern;
  }

  std::vector<std::string> Environment(const v1::Task& task, const std::string& dir) const {
    const v1::CommandEvaluatorSpec& spec = task.evaluator().command();
    std::vector<std::string> env;
    auto overridden = [&](absl::string_view entry) {
      if (absl::StartsWith(entry, "NAS_")) return true;
      for (const v1::EnvVar& var : spec.env()) {
        if (absl::StartsWith(entry, var.name() + "=")) return true;
      }
      return false;
    };
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      if (!overridden(*e)) env.emplace_back(*e);
    }
    for (const v1::EnvVar& var : spec.env()) env.push_back(absl::StrCat(var.name(), "=", var.value()));
    const bool has_model = ::access((dir + "/model.py").c_str(), R_OK) == 0;
    env.push_back(absl::StrCat("NAS_JOB_ID=", task.job_id()));
    env.push_back(absl::StrCat("NAS_TRIAL_ID=", task.trial_id()));
    env.push_back(absl::StrCat("NAS_ATTEMPT=", task.attempt()));
    env.push_back(absl::StrCat("NAS_WORK_DIR=", dir));
    env.push_back(absl::StrCat("NAS_ARCHITECTURE_JSON=", dir, "/architecture.json"));
    env.push_back(absl::StrCat("NAS_MODEL_PY=", has_model ? dir + "/model.py" : ""));
    env.push_back(absl::StrCat("NAS_DEVICE=", options_.device));
    env.push_back(absl::StrCat("NAS_OUTPUT_DIR=", dir, "/output"));
    env.push_back(absl::StrCat("NAS_EPOCHS=", spec.epochs()));
    return env;
  }

  absl::StatusOr<v1::TrialMetrics> Run(const v1::Task& task, const EvaluationContext& context,
                                       const std::string& dir) {
    const v1::CommandEvaluatorSpec& spec = task.evaluator().command();
    const int64_t max_output = spec.max_output_bytes() > 0 ? spec.max_output_bytes() : int64_t{64} << 20;
    const absl::Duration grace = absl::Seconds(spec.grace_seconds() > 0 ? spec.grace_seconds() : 10);
    const absl::Time start = absl::Now();
    const absl::Time deadline =
        spec.timeout_seconds() > 0 ? start + absl::Seconds(spec.timeout_seconds()) : absl::InfiniteFuture();

    SubprocessOptions options;
    options.argv.assign(spec.argv().begin(), spec.argv().end());
    options.env = Environment(task, dir);
    options.working_dir = dir;
    options.process_group = true;
    options.max_address_space = spec.max_memory_bytes();
    options.pipe_output = true;
    options.kill_with_parent_thread = true;
    absl::StatusOr<Subprocess> process = Subprocess::Start(options);
    // A program that is not there will not be there on a retry either.
    if (!process.ok()) return process.status();

    v1::TrialMetrics metrics;
    std::optional<MetricLine> final_line;
    absl::Status line_error;
    std::string stdout_partial, stderr_tail;
    int64_t output_bytes = 0, line_number = 0;
    absl::Time last_epoch_at = start;
    auto take_line = [&](absl::string_view line) {
      ++line_number;
      if (!line_error.ok()) return;
      absl::StatusOr<std::optional<MetricLine>> parsed = ParseMetricLine(line);
      if (!parsed.ok()) {
        line_error = absl::InvalidArgumentError(absl::StrCat(
            "the command's metric line ", line_number, " is invalid: ", parsed.status().message(), " in '",
            EscapeUnprintable(line.substr(0, 200)), "' (docs/command_evaluator.md)"));
        return;
      }
      if (!parsed->has_value()) return;
      const MetricLine& m = **parsed;
      if (!m.epoch.has_value()) {
        final_line = m;
        return;
      }
      if (!m.accuracy.has_value()) {
        line_error = absl::InvalidArgumentError(absl::StrCat("the command's metric line ", line_number,
                                                             " has \"epoch\" but no \"accuracy\""));
        return;
      }
      v1::EpochResult epoch;
      epoch.set_epoch(*m.epoch);
      epoch.set_validation_accuracy(*m.accuracy);
      if (m.loss.has_value()) epoch.set_train_loss(*m.loss);
      if (m.train_accuracy.has_value()) epoch.set_train_accuracy(*m.train_accuracy);
      const absl::Time now = absl::Now();
      epoch.set_seconds(absl::ToDoubleSeconds(now - last_epoch_at));
      last_epoch_at = now;
      // A re-sent epoch replaces the earlier one, as the controller's curve does.
      bool replaced = false;
      for (v1::EpochResult& e : *metrics.mutable_epochs()) {
        if (e.epoch() == epoch.epoch()) {
          e = epoch;
          replaced = true;
        }
      }
      if (!replaced) *metrics.add_epochs() = epoch;
      context.on_epoch(epoch);
    };
    // Reads what is there on one pipe; false at its end.
    auto drain = [&](int fd, bool is_stdout) {
      char buffer[16384];
      while (true) {
        const ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n == 0) return false;
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
        const absl::string_view chunk(buffer, n);
        output_bytes += n;
        context.on_output(chunk);
        if (!is_stdout) {
          stderr_tail.append(chunk.data(), chunk.size());
          if (stderr_tail.size() > 2 * kStderrTailBytes) stderr_tail.erase(0, stderr_tail.size() - kStderrTailBytes);
          continue;
        }
        for (char c : chunk) {
          if (c == '\n') {
            take_line(stdout_partial);
            stdout_partial.clear();
          } else if (stdout_partial.size() <= kMaxLineBytes) {
            stdout_partial.push_back(c);
          }
        }
      }
    };

    // Why the command was ended early, if it was.
    enum class End { kExited, kCancelled, kStopped, kTimedOut, kOutput, kBadLine } end = End::kExited;
    bool out_open = true, err_open = true;
    while (true) {
      if (!process->Running()) break;
      pollfd fds[2] = {{out_open ? process->stdout_fd() : -1, POLLIN, 0},
                       {err_open ? process->stderr_fd() : -1, POLLIN, 0}};
      const int ready = ::poll(fds, 2, 100);
      const int64_t before = output_bytes;
      if (ready > 0) {
        if (out_open && fds[0].revents != 0) out_open = drain(process->stdout_fd(), true);
        if (err_open && fds[1].revents != 0) err_open = drain(process->stderr_fd(), false);
      }
      // Output is the command's sign of progress for the stall watchdog.
      if (output_bytes != before) context.Cancelled();
      if (context.cancelled != nullptr && context.cancelled->load()) {
        end = End::kCancelled;
      } else if (context.stop_early != nullptr && context.stop_early->load()) {
        end = End::kStopped;
      } else if (absl::Now() >= deadline) {
        end = End::kTimedOut;
      } else if (output_bytes > max_output) {
        end = End::kOutput;
      } else if (!line_error.ok()) {
        end = End::kBadLine;
      }
      if (end != End::kExited) break;
    }
    if (end != End::kExited) {
      // SIGTERM to the group, SIGKILL after the grace.
      (void)process->SignalGroup(SIGTERM);
      const absl::Time kill_at = absl::Now() + grace;
      while (process->Running() && absl::Now() < kill_at) {
        if (out_open) out_open = drain(process->stdout_fd(), true);
        if (err_open) err_open = drain(process->stderr_fd(), false);
        absl::SleepFor(absl::Milliseconds(20));
      }
    }
    // Whatever the command left running in its group ends with it.
    (void)process->SignalGroup(SIGKILL);
    absl::StatusOr<int> status = process->Wait(absl::Seconds(30));
    // What was written before the end is still read (the group is gone, so
    // the pipes reach their end).
    const absl::Time drain_until = absl::Now() + absl::Seconds(5);
    while ((out_open || err_open) && absl::Now() < drain_until) {
      if (out_open) out_open = drain(process->stdout_fd(), true);
      if (err_open) err_open = drain(process->stderr_fd(), false);
      if (out_open || err_open) absl::SleepFor(absl::Milliseconds(10));
    }
    if (!stdout_partial.empty() && end == End::kExited) take_line(stdout_partial);

    const std::string tail = EscapeUnprintable(
        absl::StripAsciiWhitespace(absl::string_view(stderr_tail).substr(
            stderr_tail.size() > kStderrTailBytes ? stderr_tail.size() - kStderrTailBytes : 0)));
    switch (end) {
      case End::kCancelled:
        return absl::CancelledError("cancelled; the command's process group was ended");
      case End::kTimedOut:
        return absl::ResourceExhaustedError(absl::StrCat("the command ran over evaluator.command.timeout_seconds (",
                                                         spec.timeout_seconds(), " s) and was killed"));
      case End::kOutput:
        return absl::ResourceExhaustedError(absl::StrCat("the command wrote over evaluator.command.max_output_bytes (",
                                                         max_output, " bytes) and was killed"));
      case End::kBadLine:
        return line_error;
      case End::kStopped:
      case End::kExited:
        break;
    }
    if (!status.ok()) return status.status();
    if (end == End::kExited) {
      if (!line_error.ok()) return line_error;
      if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
        std::string error = absl::StrCat("the command ", DescribeExit(*status));
        if (spec.max_memory_bytes() > 0 && WIFSIGNALED(*status)) {
          absl::StrAppend(&error, " (its address space is limited to evaluator.command.max_memory_bytes = ",
                          spec.max_memory_bytes(), ")");
        }
        absl::StrAppend(&error, tail.empty() ? "; its stderr was empty" : absl::StrCat("; the end of its stderr: ", tail));
        // A retry on another attempt may succeed (a flaky machine, memory).
        return absl::AbortedError(error);
      }
      if (!final_line.has_value() && metrics.epochs().empty()) {
        return absl::InvalidArgumentError(
            "the command exited 0 without printing a metric line (a JSON line with \"accuracy\", "
            "see docs/command_evaluator.md)");
      }
    }
    // Epochs in order (a script may print them out of order).
    std::sort(metrics.mutable_epochs()->begin(), metrics.mutable_epochs()->end(),
              [](const v1::EpochResult& a, const v1::EpochResult& b) { return a.epoch() < b.epoch(); });
    metrics.set_train_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    metrics.set_device(options_.device);
    const int last_epochs = search_space::WithRewardDefaults(task.reward()).last_epochs();
    metrics.set_accuracy(RecentAccuracy(metrics, last_epochs));
    if (final_line.has_value() && end == End::kExited) {
      if (final_line->accuracy.has_value()) metrics.set_accuracy(*final_line->accuracy);
      if (final_line->parameters.has_value()) metrics.set_parameters(*final_line->parameters);
      if (final_line->flops.has_value()) metrics.set_flops(*final_line->flops);
      if (final_line->latency_seconds.has_value()) metrics.set_latency_seconds(*final_line->latency_seconds);
    }
    metrics.set_reward(ComputeReward(task.reward(), metrics.accuracy(), metrics));
    return metrics;
  }

  const EvaluatorOptions options_;
};

}  // namespace

std::unique_ptr<Evaluator> NewCommandEvaluator(const EvaluatorOptions& options) {
  return std::make_unique<CommandEvaluator>(options);
}

}  // namespace nas::worker
