// nasctl: the command-line client users live in. Submit jobs, watch them,
// list, inspect and export their trials, and run a whole cluster locally.
// Each command is one Add*Command function with its own options struct;
// client/cli.h has the flags every command takes and how to add one.
//
// Exit codes: 0 success, 1 failure (including a rejected job spec), 2 usage.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "client/cli.h"
#include "client/export.h"
#include "client/local_cluster.h"
#include "client/logs_command.h"
#include "client/output.h"
#include "client/watch_view.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/health_client.h"
#include "common/proto_yaml.h"
#include "common/status_macros.h"

namespace nas::client {
namespace {

constexpr char kVersion[] = "0.3.0";

// Largest job spec `nasctl submit` reads (the controller takes up to 4 MiB of
// YAML; a real spec is a few KiB).
constexpr size_t kMaxSpecFileBytes = 1 << 20;

// -o for a command that prints data.
CLI::Option* AddOutputFlag(Cli& cli, CLI::App* command, std::string* output) {
  CLI::Option* option =
      command
          ->add_option("-o,--output", *output,
                       "output format: " + absl::StrJoin(OutputFormatNames(), ", "))
          ->type_name("FORMAT")
          ->check(CLI::IsMember(OutputFormatNames(), CLI::ignore_case));
  cli.SetCompletions(option, OutputFormatNames());
  return option;
}

// What `list` and `trials` share: -o, --no-headers, --sort-by.
struct ListFlags {
  std::string output = "table";
  bool no_headers = false;
  std::string sort_by;

  ListOptions Options() const {
    ListOptions options;
    options.format = *ParseOutputFormat(output);  // Checked while parsing.
    options.no_headers = no_headers;
    return options;
  }
};

void AddListFlags(Cli& cli, CLI::App* command, const std::vector<std::string>& fields,
                  ListFlags* flags) {
  AddOutputFlag(cli, command, &flags->output);
  command->add_flag("--no-headers,--no_headers", flags->no_headers,
                    "table, wide, csv: leave out the header row");
  CLI::Option* sort =
      command
          ->add_option("--sort-by,--sort_by", flags->sort_by,
                       "sort by this field, ascending ('-reward': descending): " +
                           absl::StrJoin(fields, ", "))
          ->type_name("FIELD")
          ->check(CLI::Validator(
              [fields](std::string& text) -> std::string {
                const std::string name = text.rfind('-', 0) == 0 ? text.substr(1) : text;
                if (std::find(fields.begin(), fields.end(), name) != fields.end()) return "";
                return "unknown field '" + text + "'; one of " + absl::StrJoin(fields, ", ");
              },
              ""));
  cli.SetCompletions(sort, fields);
}

// --state S1,S2: the one spelling of each state, case-insensitive.
template <typename Parse>
CLI::Option* AddStateFlag(Cli& cli, CLI::App* command, std::vector<std::string> names, Parse parse,
                          std::string* states) {
  CLI::Option* option =
      command
          ->add_option("--state", *states,
                       "only these states, comma-separated: " + absl::StrJoin(names, ", "))
          ->type_name("STATE[,STATE]")
          ->check(CLI::Validator(
              [parse](std::string& text) -> std::string {
                auto parsed = parse(text);
                return parsed.ok() ? "" : std::string(parsed.status().message());
              },
              ""));
  cli.SetCompletions(option, std::move(names));
  return option;
}

absl::StatusOr<v1::Job> FetchJob(Client& client, const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::ClientContext context;
  client.Prepare(&context);
  RETURN_IF_ERROR(FromGrpcStatus(client.stub()->GetJob(&context, request, &job)));
  return job;
}

int WatchJob(Client& client, const std::string& job_id) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_status_interval_seconds(1);
  grpc::ClientContext context;  // No deadline: a watch lasts as long as the job.
  std::unique_ptr<grpc::ClientReader<v1::WatchJobEvent>> reader =
      client.stub()->WatchJob(&context, request);
  WatchView view(std::cout, ::isatty(STDOUT_FILENO) == 1);
  v1::WatchJobEvent event;
  while (reader->Read(&event)) {
    if (event.has_trial()) view.OnTrial(event.trial());
    if (event.has_status()) view.OnStatus(event.status());
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (!status.ok()) return client.FailCall(status);
  view.Finish();
  const v1::JobState final_state = view.last_status().state();
  return final_state == v1::JOB_STATE_FAILED ? kFailure : kOk;
}

// ---- submit ----------------------------------------------------------------

struct SubmitOptions {
  std::string file;
  bool watch = false;
  bool validate_only = false;
  std::string output = "table";
};

int RunSubmit(Client& client, const SubmitOptions& options) {
  // A regular file of at most kMaxSpecFileBytes: never blocks on a FIFO or
  // reads a device or a huge file into memory.
  absl::StatusOr<std::string> yaml = ReadRegularFile(options.file, kMaxSpecFileBytes);
  if (!yaml.ok()) return Fail(std::string(yaml.status().message()));
  v1::SubmitJobRequest request;
  absl::Status parsed = ParseYamlToMessage(*yaml, request.mutable_spec());
  if (!parsed.ok()) {
    return Fail(absl::StrCat(options.file, " is not a valid job spec:\n  ",
                             absl::StrReplaceAll(parsed.message(), {{"\n", "\n  "}})));
  }
  request.set_validate_only(options.validate_only);
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->SubmitJob(&context, request, &response));
  if (!status.ok()) return client.FailCall(status);
  if (request.validate_only()) {
    std::cout << options.file << ": valid\n";
    return kOk;
  }
  const OutputFormat format = *ParseOutputFormat(options.output);
  if (format == OutputFormat::kTable || format == OutputFormat::kWide) {
    std::cout << "submitted job " << EscapeForTerminal(response.job().job_id()) << "\n";
  } else {
    std::cout << FormatJob(response.job(), format);
  }
  if (options.watch) return WatchJob(client, response.job().job_id());
  return kOk;
}

void AddSubmitCommand(Cli& cli) {
  auto options = std::make_shared<SubmitOptions>();
  CLI::App* command =
      cli.AddCommand(cli.app(), "submit", "submit a job spec (docs/job_spec.md)", [&cli, options] {
        return cli.WithClient([&](Client& client) { return RunSubmit(client, *options); });
      });
  command->add_option("FILE", options->file, "the job spec, YAML (a regular file up to 1 MiB)")
      ->required();
  command->add_flag("--watch", options->watch, "then show the live view until the job ends");
  command->add_flag("--validate_only", options->validate_only,
                    "only check the spec; create nothing");
  AddOutputFlag(cli, command, &options->output);
}

// ---- list ------------------------------------------------------------------

struct ListJobsOptions {
  ListFlags list;
  std::string states;
};

int RunList(Client& client, const ListJobsOptions& options) {
  std::vector<v1::JobState> states;
  if (!options.states.empty()) states = *ParseJobStates(options.states);
  std::vector<v1::Job> jobs;
  std::string token;
  do {
    v1::ListJobsRequest request;
    request.set_page_token(token);
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    client.Prepare(&context);
    absl::Status status = FromGrpcStatus(client.stub()->ListJobs(&context, request, &response));
    if (!status.ok()) return client.FailCall(status);
    for (const v1::Job& job : response.jobs()) {
      if (states.empty() || std::count(states.begin(), states.end(), job.state()) > 0) {
        jobs.push_back(job);
      }
    }
    token = response.next_page_token();
  } while (!token.empty());
  if (!options.list.sort_by.empty()) {
    if (absl::Status sorted = SortJobs(options.list.sort_by, &jobs); !sorted.ok()) {
      return UsageFail(std::string(sorted.message()));
    }
  }
  std::cout << FormatJobs(jobs, options.list.Options());
  return kOk;
}

void AddListCommand(Cli& cli) {
  auto options = std::make_shared<ListJobsOptions>();
  CLI::App* command = cli.AddCommand(cli.app(), "list", "list jobs, newest first", [&cli, options] {
    return cli.WithClient([&](Client& client) { return RunList(client, *options); });
  });
  AddListFlags(cli, command, JobFields(), &options->list);
  AddStateFlag(cli, command, JobStateNames(), ParseJobStates, &options->states);
}

// ---- get -------------------------------------------------------------------

struct GetOptions {
  std::string job;
  std::string output = "table";
};

void AddGetCommand(Cli& cli) {
  auto options = std::make_shared<GetOptions>();
  CLI::App* command = cli.AddCommand(cli.app(), "get", "show one job", [&cli, options] {
    return cli.WithClient([&](Client& client) {
      absl::StatusOr<v1::Job> job = FetchJob(client, options->job);
      if (!job.ok()) return client.FailCall(job.status());
      std::cout << FormatJob(*job, *ParseOutputFormat(options->output));
      return kOk;
    });
  });
  command->add_option("JOB", options->job, "the job id")->required();
  AddOutputFlag(cli, command, &options->output);
}

// ---- watch -----------------------------------------------------------------

void AddWatchCommand(Cli& cli) {
  auto job = std::make_shared<std::string>();
  CLI::App* command =
      cli.AddCommand(cli.app(), "watch", "live view until the job ends", [&cli, job] {
        return cli.WithClient([&](Client& client) { return WatchJob(client, *job); });
      });
  command->add_option("JOB", *job, "the job id")->required();
}

// ---- trials ----------------------------------------------------------------

struct TrialsOptions {
  std::string job;
  ListFlags list;
  int top = 0;
  std::string states;
  std::string order = "reward";
};

int RunTrials(Client& client, const TrialsOptions& options) {
  v1::ListTrialsRequest base;
  base.set_job_id(options.job);
  base.set_order(options.order == "time" ? v1::ListTrialsRequest::ORDER_TIME
                                         : v1::ListTrialsRequest::ORDER_REWARD);
  std::vector<v1::TrialState> states;
  if (!options.states.empty()) states = *ParseTrialStates(options.states);
  // One state is filtered by the server; several here, over every page.
  if (states.size() == 1) base.set_state(states[0]);
  const bool filter_here = states.size() > 1;
  const int top = options.top;
  auto keep = [&](const v1::Trial& t) {
    return !filter_here || std::count(states.begin(), states.end(), t.state()) > 0;
  };
  std::vector<v1::Trial> trials;
  std::string token;
  do {
    v1::ListTrialsRequest request = base;
    request.set_page_token(token);
    request.set_page_size(top > 0 && !filter_here ? std::min(top, 1000) : 1000);
    v1::ListTrialsResponse response;
    grpc::ClientContext context;
    client.Prepare(&context);
    absl::Status status = FromGrpcStatus(client.stub()->ListTrials(&context, request, &response));
    if (!status.ok()) return client.FailCall(status);
    for (const v1::Trial& t : response.trials()) {
      if (keep(t)) trials.push_back(t);
    }
    token = response.next_page_token();
  } while (!token.empty() && (top == 0 || static_cast<int>(trials.size()) < top));
  if (top > 0 && static_cast<int>(trials.size()) > top) trials.resize(top);
  if (!options.list.sort_by.empty()) {
    if (absl::Status sorted = SortTrials(options.list.sort_by, &trials); !sorted.ok()) {
      return UsageFail(std::string(sorted.message()));
    }
  }
  std::cout << FormatTrials(trials, options.list.Options());
  return kOk;
}

void AddTrialsCommand(Cli& cli) {
  auto options = std::make_shared<TrialsOptions>();
  CLI::App* command =
      cli.AddCommand(cli.app(), "trials", "list a job's trials, best first", [&cli, options] {
        return cli.WithClient([&](Client& client) { return RunTrials(client, *options); });
      });
  command->add_option("JOB", options->job, "the job id")->required();
  AddListFlags(cli, command, TrialFields(), &options->list);
  command->add_option("--top", options->top, "only the N first (0 = all)")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  AddStateFlag(cli, command, TrialStateNames(), ParseTrialStates, &options->states);
  CLI::Option* order =
      command
          ->add_option("--order", options->order,
                       "reward (best first, the default) or time (order of completion)")
          ->type_name("ORDER")
          ->check(CLI::IsMember({"reward", "time"}));
  cli.SetCompletions(order, {"reward", "time"});
}

// ---- trial -----------------------------------------------------------------

struct TrialOptions {
  std::string job;
  std::string trial;
  std::string output = "table";
};

void AddTrialCommand(Cli& cli) {
  auto options = std::make_shared<TrialOptions>();
  CLI::App* command = cli.AddCommand(
      cli.app(), "trial", "one trial in detail, with its learning curve", [&cli, options] {
        if (options->trial.empty()) return UsageFail("trial: the TRIAL id is empty");
        return cli.WithClient([&](Client& client) {
          v1::GetTrialRequest request;
          request.set_job_id(options->job);
          request.set_trial_id(options->trial);
          v1::Trial trial;
          grpc::ClientContext context;
          client.Prepare(&context);
          absl::Status status = FromGrpcStatus(client.stub()->GetTrial(&context, request, &trial));
          if (!status.ok()) return client.FailCall(status);
          std::cout << FormatTrial(trial, *ParseOutputFormat(options->output));
          return kOk;
        });
      });
  command->add_option("JOB", options->job, "the job id")->required();
  command->add_option("TRIAL", options->trial, "the trial id")->required();
  AddOutputFlag(cli, command, &options->output);
}

// ---- logs (client/logs_command.h) -------------------------------------------

void AddLogsCommand(Cli& cli) {
  auto options = std::make_shared<LogsOptions>();
  CLI::App* command = cli.AddCommand(
      cli.app(), "logs", "a trial's output (the command evaluator's stdout and stderr)", [&cli, options] {
        if (options->trial_id.empty()) return UsageFail("logs: the TRIAL id is empty");
        if (options->attempt < 0) return UsageFail("logs: --attempt must be >= 1 (0 = the latest)");
        return cli.WithClient([&](Client& client) {
          LogsOptions run = *options;
          run.call_timeout = cli.globals().timeout;
          absl::Status status = RunLogs(run, client.stub(), std::cout);
          return status.ok() ? kOk : client.FailCall(status);
        });
      });
  command->add_option("JOB", options->job_id, "the job id")->required();
  command->add_option("TRIAL", options->trial_id, "the trial id")->required();
  command->add_option("--attempt", options->attempt, "the attempt (default: the latest)");
  command->add_flag("--follow,-f", options->follow, "keep printing until the attempt ends");
}

// ---- export ----------------------------------------------------------------

struct ExportOptions {
  std::string job;
  std::string trial;
  std::string out;
};

int RunExport(Client& client, const ExportOptions& options) {
  absl::StatusOr<v1::Job> job = FetchJob(client, options.job);
  if (!job.ok()) return client.FailCall(job.status());
  v1::GetTrialRequest request;
  request.set_job_id(options.job);
  request.set_trial_id(options.trial);
  v1::Trial trial;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->GetTrial(&context, request, &trial));
  if (!status.ok()) return client.FailCall(status);
  const std::string out =
      options.out.empty() ? absl::StrCat(options.job, "-", trial.trial_id()) : options.out;
  absl::StatusOr<std::vector<std::string>> written = ExportTrial(*job, trial, out);
  if (!written.ok()) return Fail(std::string(written.status().message()));
  std::cout << "exported trial " << EscapeForTerminal(trial.trial_id()) << " (reward "
            << absl::StrFormat("%.4f", trial.metrics().reward()) << ") of job "
            << EscapeForTerminal(options.job) << ":\n";
  for (const std::string& path : *written) std::cout << "  " << EscapeForTerminal(path) << "\n";
  return kOk;
}

void AddExportCommand(Cli& cli) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* command = cli.AddCommand(
      cli.app(), "export", "architecture JSON, summary and PyTorch module of a trial",
      [&cli, options] {
        return cli.WithClient([&](Client& client) { return RunExport(client, *options); });
      });
  command->add_option("JOB", options->job, "the job id")->required();
  command->add_option("--trial", options->trial, "the trial to export (default: the best)")
      ->type_name("ID");
  command->add_option("--out", options->out, "output directory (default: ./JOB-TRIAL)")
      ->type_name("DIR");
}

// ---- cancel ----------------------------------------------------------------

void AddCancelCommand(Cli& cli) {
  auto job_id = std::make_shared<std::string>();
  CLI::App* command =
      cli.AddCommand(cli.app(), "cancel", "stop a job, keep its results", [&cli, job_id] {
        return cli.WithClient([&](Client& client) {
          v1::CancelJobRequest request;
          request.set_job_id(*job_id);
          v1::Job job;
          grpc::ClientContext context;
          client.Prepare(&context);
          absl::Status status = FromGrpcStatus(client.stub()->CancelJob(&context, request, &job));
          if (!status.ok()) return client.FailCall(status);
          std::cout << "cancelled job " << EscapeForTerminal(job.job_id()) << " ("
                    << job.trials_succeeded() << " trials succeeded; results kept)\n";
          return kOk;
        });
      });
  command->add_option("JOB", *job_id, "the job id")->required();
}

// ---- local -----------------------------------------------------------------

struct LocalOptions {
  std::string data_dir;
  LocalClusterOptions up;
  std::string component;

  std::string DataDir() const { return data_dir.empty() ? DefaultLocalDataDir() : data_dir; }
};

int RunLocalUp(LocalOptions options) {
  options.up.data_dir = options.DataDir();
  if (options.up.bin_dir.empty()) options.up.bin_dir = DefaultBinDir();
  absl::StatusOr<std::vector<LocalProcess>> processes = LocalUp(options.up);
  if (!processes.ok()) return Fail(std::string(processes.status().message()));
  std::string controller;
  for (const LocalProcess& p : *processes) {
    if (p.name == "controller") controller = absl::StrCat("127.0.0.1:", p.grpc_port);
  }
  std::cout << "local cluster up: " << options.up.num_shards
            << " parameter server(s), controller at " << controller << ", "
            << options.up.num_workers << " worker(s)\n"
            << "  data and logs: " << options.up.data_dir << "\n";
  if (controller != "127.0.0.1:7070") std::cout << "  export NAS_SERVER=" << controller << "\n";
  return kOk;
}

int RunLocalStatus(const LocalOptions& options) {
  const std::string data_dir = options.DataDir();
  absl::StatusOr<std::vector<LocalProcess>> processes = LocalStatus(data_dir);
  if (!processes.ok()) return Fail(std::string(processes.status().message()));
  if (processes->empty()) {
    std::cout << "no local cluster runs from " << data_dir << "\n";
    return kOk;
  }
  bool all_ok = true;
  std::cout << absl::StrFormat("%-12s %-8s %-9s %-8s %-8s %s\n", "PROCESS", "PID", "STATE", "GRPC",
                               "METRICS", "LOG");
  for (const LocalProcess& p : *processes) {
    const std::string state = !p.alive ? "DEAD" : (p.healthy ? "healthy" : "unhealthy");
    all_ok = all_ok && p.alive && p.healthy;
    std::cout << absl::StrFormat("%-12s %-8d %-9s %-8s %-8d %s\n", p.name, p.pid, state,
                                 p.grpc_port > 0 ? absl::StrCat(p.grpc_port) : "-", p.metrics_port,
                                 p.log_path);
  }
  return all_ok ? kOk : kFailure;
}

void AddLocalCommand(Cli& cli) {
  auto options = std::make_shared<LocalOptions>();
  CLI::App* local = cli.AddCommand(cli.app(), "local", "a whole cluster on this machine");
  local
      ->add_option("--data_dir", options->data_dir,
                   "data directory (default: $NAS_LOCAL_DIR, else ~/.nas-service/local)")
      ->type_name("DIR");

  CLI::App* up = cli.AddCommand(*local, "up", "start parameter servers, controller and workers",
                                [options] { return RunLocalUp(*options); });
  up->add_option("--bin_dir", options->up.bin_dir,
                 "directory of the nas_* binaries (default: beside nasctl)")
      ->type_name("DIR");
  up->add_option("--shards", options->up.num_shards, "parameter-server shards S")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  up->add_option("--workers", options->up.num_workers, "workers W")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  up->add_option("--controller_port", options->up.controller_port,
                 "the controller's port (0 = any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  up->add_option("--worker_threads", options->up.worker_threads,
                 "LibTorch threads per worker (0 = LibTorch's default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  CLI::Option* device = up->add_option("--device", options->up.device, "worker device")
                            ->capture_default_str()
                            ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cli.SetCompletions(device, {"auto", "cpu", "cuda"});
  up->add_option("--data_roots", options->up.data_roots,
                 "the workers' --data_roots: comma-separated directories job specs may name "
                 "tables and datasets in (empty: the worker's default)")
      ->type_name("DIRS");

  cli.AddCommand(*local, "down", "stop every process of the local cluster", [options] {
    absl::Status status = LocalDown(options->DataDir(), absl::Seconds(30));
    if (!status.ok()) return Fail(std::string(status.message()));
    std::cout << "local cluster down\n";
    return kOk;
  });
  cli.AddCommand(*local, "status", "each process, its health, ports and log",
                 [options] { return RunLocalStatus(*options); });
  cli.AddCommand(*local, "address", "the controller's host:port", [options] {
    absl::StatusOr<std::string> address = LocalControllerAddress(options->DataDir());
    if (!address.ok()) return Fail(std::string(address.status().message()));
    std::cout << *address << "\n";
    return kOk;
  });
  cli.AddCommand(*local, "prometheus-config", "a Prometheus scrape config for every process",
                 [options] {
                   absl::StatusOr<std::string> config = PrometheusScrapeConfig(options->DataDir());
                   if (!config.ok()) return Fail(std::string(config.status().message()));
                   std::cout << *config;
                   return kOk;
                 });
  CLI::App* restart = cli.AddCommand(
      *local, "restart", "restart one process with its previous command line", [options] {
        absl::StatusOr<LocalProcess> p = LocalRestart(options->DataDir(), options->component,
                                                      absl::Seconds(30), absl::Seconds(120));
        if (!p.ok()) return Fail(std::string(p.status().message()));
        std::cout << "restarted " << p->name << " (pid " << p->pid << ")";
        if (p->grpc_port > 0) std::cout << " on 127.0.0.1:" << p->grpc_port;
        std::cout << "\n";
        return kOk;
      });
  restart
      ->add_option("COMPONENT", options->component,
                   "a name 'nasctl local status' shows: controller, ps-0, worker-1, ...")
      ->required();
}

// ---- health, version, completion -------------------------------------------

void AddHealthCommand(Cli& cli) {
  cli.AddCommand(cli.app(), "health", "is the controller serving?", [&cli] {
    absl::StatusOr<ChannelOptions> channel = cli.ControllerChannelOptions();
    if (!channel.ok()) return UsageFail(std::string(channel.status().message()));
    absl::Status status = CheckHealth(cli.ServerAddress(), *channel, cli.globals().timeout);
    if (!status.ok()) return cli.FailCall(status, channel->tls());
    std::cout << "controller at " << cli.ServerAddress() << " is serving\n";
    return kOk;
  });
}

void AddVersionCommand(Cli& cli) {
  cli.AddCommand(cli.app(), "version", "nasctl's version", [] {
    std::cout << "nasctl " << kVersion << "\n";
    return kOk;
  });
}

void AddCompletionCommand(Cli& cli) {
  auto shell = std::make_shared<std::string>();
  CLI::App* command =
      cli.AddCommand(cli.app(), "completion",
                     "print a shell completion script: source <(nasctl completion bash)", [&cli] {
                       std::cout << cli.BashCompletion();
                       return kOk;
                     });
  CLI::Option* option = command->add_option("SHELL", *shell, "the shell: bash")
                            ->required()
                            ->check(CLI::IsMember({"bash"}));
  cli.SetCompletions(option, {"bash"});
}

}  // namespace
}  // namespace nas::client

int main(int argc, char** argv) {
  nas::client::Cli cli;
  nas::client::AddSubmitCommand(cli);
  nas::client::AddListCommand(cli);
  nas::client::AddGetCommand(cli);
  nas::client::AddWatchCommand(cli);
  nas::client::AddTrialsCommand(cli);
  nas::client::AddTrialCommand(cli);
  nas::client::AddExportCommand(cli);
  nas::client::AddLogsCommand(cli);
  nas::client::AddCancelCommand(cli);
  nas::client::AddLocalCommand(cli);
  nas::client::AddHealthCommand(cli);
  nas::client::AddVersionCommand(cli);
  nas::client::AddCompletionCommand(cli);
  return cli.Main(argc, argv);
}
