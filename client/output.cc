#include "client/output.h"

#include <algorithm>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/printable.h"
#include "common/proto_yaml.h"
#include "google/protobuf/util/json_util.h"

namespace nas::client {
namespace {

std::string Json(const google::protobuf::Message& message, bool pretty) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  while (!json.empty() && json.back() == '\n') json.pop_back();
  return json;
}

template <typename T>
std::string JsonArray(const std::vector<T>& items) {
  std::vector<std::string> parts;
  for (const T& item : items) parts.push_back(Json(item, /*pretty=*/true));
  return absl::StrCat("[", absl::StrJoin(parts, ",\n"), "]\n");
}

template <typename T>
std::string YamlList(const std::vector<T>& items) {
  if (items.empty()) return "[]\n";
  std::string out;
  for (const T& item : items) {
    std::string body = MessageToYaml(item);
    // Indent the item's lines under "- ".
    std::string indented;
    bool first = true;
    for (absl::string_view line : absl::StrSplit(body, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&indented, first ? "- " : "  ", line, "\n");
      first = false;
    }
    absl::StrAppend(&out, indented.empty() ? "- {}\n" : indented);
  }
  return out;
}

std::string CsvField(const std::string& raw) {
  const std::string text = EscapeForTerminal(raw);  // No newline or CR is left to quote.
  if (text.find_first_of(",\"") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

// Cells are escaped here, before their widths are measured.
std::string Table(const std::vector<std::string>& header,
                  std::vector<std::vector<std::string>> rows) {
  for (auto& row : rows) {
    for (std::string& cell : row) cell = EscapeForTerminal(cell);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i + 1 == cells.size()) {
        absl::StrAppend(&out, cells[i]);
      } else {
        absl::StrAppend(&out, cells[i], std::string(widths[i] - cells[i].size() + 2, ' '));
      }
    }
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string Reward(double reward) { return absl::StrFormat("%.4f", reward); }

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

std::vector<std::string> JobRow(const v1::Job& job) {
  return {job.job_id(),
          job.spec().name(),
          ShortState(job.state()),
          job.spec().strategy().name(),
          absl::StrCat(job.trials_succeeded()),
          absl::StrCat(job.trials_failed()),
          absl::StrCat(job.trials_running()),
          absl::StrCat(job.trials_queued()),
          Reward(job.best_reward()),
          job.best_trial_id(),
          Time(job.create_time_unix_ms())};
}

std::vector<std::string> CurveRow(const v1::EpochResult& e) {
  return {absl::StrCat(e.epoch()), absl::StrFormat("%.4f", e.train_loss()),
          absl::StrFormat("%.4f", e.train_accuracy()),
          absl::StrFormat("%.4f", e.validation_accuracy()), absl::StrFormat("%.2f", e.seconds())};
}

std::vector<std::string> TrialRow(const v1::Trial& t) {
  return {t.trial_id(),
          ShortState(t.state()),
          Reward(t.metrics().reward()),
          absl::StrFormat("%.4f", t.metrics().accuracy()),
          absl::StrCat(t.metrics().parameters()),
          absl::StrCat(t.metrics().flops()),
          absl::StrFormat("%.6f", t.metrics().latency_seconds()),
          absl::StrFormat("%.2f", t.metrics().train_seconds()),
          absl::StrCat(t.attempts()),
          t.worker_id(),
          t.architecture().canonical(),
          t.error(),
          t.cached_from()};
}

}  // namespace

const char* const kJobCsvColumns[] = {
    "job_id",         "name",          "state",          "strategy",
    "trials_succeeded", "trials_failed", "trials_running", "trials_queued",
    "best_reward",    "best_trial_id", "created",        nullptr};
const char* const kTrialCsvColumns[] = {
    "trial_id", "state",    "reward",    "accuracy",  "parameters", "flops",
    "latency_seconds", "train_seconds", "attempts", "worker_id", "canonical", "error", "cached_from", nullptr};
const char* const kCurveCsvColumns[] = {"epoch", "train_loss", "train_accuracy",
                                        "validation_accuracy", "seconds", nullptr};

std::string EscapeForTerminal(absl::string_view text) { return EscapeUnprintable(text); }

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "table") return OutputFormat::kTable;
  if (lower == "json") return OutputFormat::kJson;
  if (lower == "yaml") return OutputFormat::kYaml;
  if (lower == "csv") return OutputFormat::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat("-o must be table, json, yaml or csv, not '", text, "'"));
}

std::string ShortState(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("JOB_STATE_").size()));
}

std::string ShortState(v1::TrialState state) {
  std::string name = v1::TrialState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("TRIAL_STATE_").size()));
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "-";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string FormatJobs(const std::vector<v1::Job>& jobs, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return JsonArray(jobs);
    case OutputFormat::kYaml:
      return YamlList(jobs);
    case OutputFormat::kCsv: {
      std::vector<std::string> header;
      for (int i = 0; kJobCsvColumns[i] != nullptr; ++i) header.push_back(kJobCsvColumns[i]);
      std::string out = absl::StrJoin(header, ",") + "\n";
      for (const v1::Job& job : jobs) {
        std::vector<std::string> row = JobRow(job);
        for (std::string& cell : row) cell = CsvField(cell);
        out += absl::StrJoin(row, ",") + "\n";
      }
      return out;
    }
    case OutputFormat::kTable: {
      std::vector<std::vector<std::string>> rows;
      for (const v1::Job& job : jobs) rows.push_back(JobRow(job));
      return Table({"JOB", "NAME", "STATE", "STRATEGY", "OK", "FAILED", "RUNNING", "QUEUED",
                    "BEST", "BEST TRIAL", "CREATED"},
                   rows);
    }
  }
  return "";
}

std::string FormatJob(const v1::Job& job, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return Json(job, /*pretty=*/true) + "\n";
    case OutputFormat::kYaml:
      return MessageToYaml(job);
    case OutputFormat::kCsv:
      return FormatJobs({job}, format);
    case OutputFormat::kTable:
      break;
  }
  const double end_ms = job.end_time_unix_ms() != 0
                            ? static_cast<double>(job.end_time_unix_ms())
                            : static_cast<double>(absl::ToUnixMillis(absl::Now()));
  const double elapsed =
      job.start_time_unix_ms() == 0 ? 0 : (end_ms - job.start_time_unix_ms()) / 1000.0;
  std::string out;
  auto row = [&](const std::string& key, const std::string& value) {
    absl::StrAppend(&out, absl::StrFormat("%-18s %s\n", key + ":", EscapeForTerminal(value)));
  };
  row("job", job.job_id());
  row("name", job.spec().name());
  row("state", ShortState(job.state()));
  if (!job.error().empty()) row("error", job.error());
  row("strategy", job.spec().strategy().name());
  row("parallelism",
      absl::StrCat("S=", job.spec().parallelism().num_shards(),
                   " K=", job.spec().parallelism().num_replicas(),
                   " m=", job.spec().parallelism().children_per_replica()));
  row("budget", absl::StrCat(job.spec().budget().max_trials(), " evaluations, ",
                             job.spec().budget().max_samples(), " samples",
                             job.spec().budget().max_wall_seconds() > 0
                                 ? absl::StrCat(", ", job.spec().budget().max_wall_seconds(), " s")
                                 : ""));
  row("trials", absl::StrCat(job.trials_succeeded(), " succeeded, ", job.trials_failed(),
                             " failed, ", job.trials_running(), " running, ",
                             job.trials_queued(), " queued"));
  row("samples", absl::StrCat(job.samples()));
  row("cache hits", absl::StrCat(job.cache_hits(), " (evaluations saved: samples answered from "
                                                    "the job's earlier evaluations)"));
  row("compute", absl::StrFormat("%.1f worker-seconds, %d epochs trained", job.worker_seconds(),
                                 job.epochs_trained()));
  row("stopped early", absl::StrCat(job.trials_stopped(), " trials (", job.epochs_saved(),
                                    " epochs saved)"));
  row("best reward", absl::StrCat(Reward(job.best_reward()), "  (", job.best_trial_id(), ")"));
  row("best architecture", job.best_canonical());
  row("mean reward", Reward(job.mean_reward()));
  row("baseline", Reward(job.baseline()));
  row("gradient pushes", absl::StrCat(job.gradient_pushes()));
  row("workers", absl::StrCat(job.connected_workers()));
  row("created", Time(job.create_time_unix_ms()));
  row("elapsed", FormatDuration(elapsed));
  return out;
}

std::string FormatTrials(const std::vector<v1::Trial>& trials, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return JsonArray(trials);
    case OutputFormat::kYaml:
      return YamlList(trials);
    case OutputFormat::kCsv: {
      std::vector<std::string> header;
      for (int i = 0; kTrialCsvColumns[i] != nullptr; ++i) header.push_back(kTrialCsvColumns[i]);
      std::string out = absl::StrJoin(header, ",") + "\n";
      for (const v1::Trial& t : trials) {
        std::vector<std::string> row = TrialRow(t);
        for (std::string& cell : row) cell = CsvField(cell);
        out += absl::StrJoin(row, ",") + "\n";
      }
      return out;
    }
    case OutputFormat::kTable: {
      std::vector<std::vector<std::string>> rows;
      for (const v1::Trial& t : trials) {
        std::vector<std::string> full = TrialRow(t);
        rows.push_back({full[0], full[1], full[2], full[3], full[4], full[7], full[8],
                        t.state() == v1::TRIAL_STATE_FAILED
                            ? EscapeForTerminal(t.error()).substr(0, 60)
                            : full[10]});
      }
      return Table({"TRIAL", "STATE", "REWARD", "ACCURACY", "PARAMS", "TRAIN S", "ATTEMPTS",
                    "ARCHITECTURE"},
                   rows);
    }
  }
  return "";
}

}  // namespace nas::client

namespace nas::client {

std::string FormatArchitecture(const v1::Architecture& arch) {
  std::string out;
  if (arch.has_macro_cnn()) {
    absl::StrAppend(&out, "layer  filter  filters  stride  inputs\n");
    for (int i = 0; i < arch.macro_cnn().layers_size(); ++i) {
      const v1::MacroCnnLayer& layer = arch.macro_cnn().layers(i);
      std::string inputs = layer.inputs().empty() ? "image" : absl::StrJoin(layer.inputs(), ",");
      absl::StrAppend(&out, absl::StrFormat("%5d  %dx%-4d  %7d  %6d  %s\n", i,
                                            layer.filter_height(), layer.filter_width(),
                                            layer.num_filters(), layer.stride(), inputs));
    }
  } else if (arch.has_cell()) {
    absl::StrAppend(&out, "edge    operation\n");
    int edge = 0;
    for (int i = 1; i < arch.cell().num_nodes(); ++i) {
      for (int j = 0; j < i && edge < arch.cell().edge_operations_size(); ++j, ++edge) {
        absl::StrAppend(&out, absl::StrFormat("%d <- %d  %s\n", i, j,
                                              EscapeForTerminal(arch.cell().edge_operations(edge))));
      }
    }
  } else if (arch.has_recurrent_cell()) {
    const v1::RecurrentCellArchitecture& cell = arch.recurrent_cell();
    absl::StrAppend(&out, "node  combination  activation\n");
    for (int i = 0; i < cell.nodes_size(); ++i) {
      absl::StrAppend(&out, absl::StrFormat("%4d  %-11s  %s\n", i,
                                            EscapeForTerminal(cell.nodes(i).combination()),
                                            EscapeForTerminal(cell.nodes(i).activation())));
    }
    if (cell.cell_inject_node() >= 0) {
      absl::StrAppend(&out, absl::StrFormat("c_{t-1} joins node %d (%s, %s); c_t is node %d\n",
                                            cell.cell_inject_node(),
                                            EscapeForTerminal(cell.cell_inject_combination()),
                                            EscapeForTerminal(cell.cell_inject_activation()),
                                            cell.cell_output_node()));
    }
  }
  return out;
}

std::string FormatTrial(const v1::Trial& trial, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return Json(trial, /*pretty=*/true) + "\n";
    case OutputFormat::kYaml:
      return MessageToYaml(trial);
    case OutputFormat::kCsv: {
      std::vector<std::string> header;
      for (int i = 0; kCurveCsvColumns[i] != nullptr; ++i) header.push_back(kCurveCsvColumns[i]);
      std::string out = absl::StrJoin(header, ",") + "\n";
      for (const v1::EpochResult& e : trial.curve()) out += absl::StrJoin(CurveRow(e), ",") + "\n";
      return out;
    }
    case OutputFormat::kTable:
      break;
  }
  const bool ended = trial.end_time_unix_ms() != 0;
  const int64_t end_ms = ended ? trial.end_time_unix_ms() : absl::ToUnixMillis(absl::Now());
  const double duration =
      trial.create_time_unix_ms() == 0 ? -1 : (end_ms - trial.create_time_unix_ms()) / 1000.0;
  const bool succeeded = trial.state() == v1::TRIAL_STATE_SUCCEEDED;
  const v1::TrialMetrics& m = trial.metrics();
  std::string out;
  auto row = [&](const std::string& key, const std::string& value) {
    absl::StrAppend(&out, absl::StrFormat("%-18s %s\n", key + ":", EscapeForTerminal(value)));
  };
  row("trial", trial.trial_id());
  row("job", trial.job_id());
  row("state", ShortState(trial.state()));
  if (!trial.error().empty()) row("error", trial.error());
  row("attempts", absl::StrCat(trial.attempts()));
  row("worker", trial.worker_id().empty() ? "-" : trial.worker_id());
  if (!trial.cached_from().empty()) row("cache hit of", trial.cached_from());
  row("replica", trial.replica() < 0 ? "-" : absl::StrCat(trial.replica()));
  row("reward", succeeded ? Reward(m.reward()) : "-");
  row("accuracy", succeeded ? absl::StrFormat("%.4f", m.accuracy()) : "-");
  if (succeeded) {
    row("parameters", absl::StrCat(m.parameters()));
    row("flops", absl::StrCat(m.flops()));
    row("latency", absl::StrFormat("%.6f s", m.latency_seconds()));
    row("training",
        absl::StrFormat("%.1f s on %s", m.train_seconds(), m.device().empty() ? "?" : m.device()));
  }
  row("created", Time(trial.create_time_unix_ms()));
  row("ended", Time(trial.end_time_unix_ms()));
  row("duration", absl::StrCat(FormatDuration(duration), ended || duration < 0 ? "" : " so far"));
  row("architecture", trial.architecture().canonical());
  if (std::string readable = FormatArchitecture(trial.architecture()); !readable.empty()) {
    absl::StrAppend(&out, "\n", readable);
  }
  absl::StrAppend(&out, "\n");
  if (trial.curve().empty()) {
    absl::StrAppend(&out, "no learning curve stored (no epoch reported yet)\n");
    return out;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::EpochResult& e : trial.curve()) rows.push_back(CurveRow(e));
  absl::StrAppend(&out,
                  Table({"EPOCH", "TRAIN LOSS", "TRAIN ACC", "VAL ACC", "SECONDS"}, rows));
  return out;
}

}  // namespace nas::client
