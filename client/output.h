// How nasctl prints data: a table for people (`table`, `wide`), ids alone
// (`name`), or json / yaml / csv for programs (-o). Columns, sort fields and
// state spellings are documented in docs/cli.md.
//
// One spelling of every state everywhere: the enum value's name without its
// type prefix, in lower case ("succeeded" for TRIAL_STATE_SUCCEEDED), in
// tables, CSV, JSON, YAML, the live view and the --state filters.
#ifndef NAS_CLIENT_OUTPUT_H_
#define NAS_CLIENT_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "proto/job.pb.h"

namespace nas::client {

enum class OutputFormat { kTable, kWide, kName, kJson, kYaml, kCsv };

// "table", "wide", "name", "json", "yaml", "csv": what -o accepts.
const std::vector<std::string>& OutputFormatNames();
// Case-insensitive; INVALID_ARGUMENT naming -o and the choices otherwise.
absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text);

// How a list (`nasctl list`, `nasctl trials`) is printed.
struct ListOptions {
  OutputFormat format = OutputFormat::kTable;
  // table, wide and csv: leave out the header row.
  bool no_headers = false;
};

std::string FormatJobs(const std::vector<v1::Job>& jobs, const ListOptions& options);
// One job in detail (table and wide: a key: value listing; name: its id).
std::string FormatJob(const v1::Job& job, OutputFormat format);
std::string FormatTrials(const std::vector<v1::Trial>& trials, const ListOptions& options);
// One trial in detail (`nasctl trial`): the table form is a key: value
// listing, the architecture in readable form and the learning curve
// (Trial.curve) as a table; json / yaml are the whole nas.v1.Trial; csv is the
// curve, one row per epoch (kCurveCsvColumns, or kLanguageModelCurveCsvColumns
// for a language model); name is its id.
std::string FormatTrial(const v1::Trial& trial, OutputFormat format);
// An architecture for people, one line per layer, edge or tree node (empty
// for an architecture without a form): used by `nasctl trial` and export's
// summary.txt.
std::string FormatArchitecture(const v1::Architecture& architecture);

// The fields --sort-by accepts: the CSV column names of jobs and of trials.
const std::vector<std::string>& JobFields();
const std::vector<std::string>& TrialFields();
// Stable sort by `field` (one of JobFields() / TrialFields()), ascending, or
// descending with a leading '-' ("-reward"). Numeric fields (counts, rewards,
// times, durations) compare as numbers, the others as text; a time or
// duration not known yet (a running trial's end) sorts first. INVALID_ARGUMENT
// naming the choices for an unknown field.
absl::Status SortJobs(const std::string& field, std::vector<v1::Job>* jobs);
absl::Status SortTrials(const std::string& field, std::vector<v1::Trial>* trials);

// Column names of the CSV forms: a trial's curve; a language model's curve
// (perplexities in place of accuracies).
extern const char* const kCurveCsvColumns[];
extern const char* const kLanguageModelCurveCsvColumns[];

// A language model's trial (a recurrent cell trained on text): nasctl shows
// its validation perplexity where a classifier's shows accuracy (the trials
// table, `nasctl trial` and its curve, the live view, export's summary.txt).
bool IsLanguageModel(const v1::Trial& trial);
// "655.20"; "inf" for a diverged child; "-" when not measured (0 or NaN).
std::string FormatPerplexity(double perplexity);

// A message as JSON (proto field names, every scalar field, 64-bit integers
// as numbers, enums in their one spelling, NaN and infinities as the strings
// "NaN", "Infinity", "-Infinity") or YAML (written by yaml-cpp's emitter; a
// string that a YAML reader would take for something else — "~", "yes",
// ".inf", "0x10", " leading space", several lines — is double-quoted, so it
// reads back as the same string). Both escape, in their own syntax, every
// character EscapeForTerminal would, so neither carries a control character.
std::string MessageJson(const google::protobuf::Message& message);
std::string MessageYaml(const google::protobuf::Message& message);

// Every string nasctl shows that came from a server (names, ids, errors,
// architectures, worker ids) passes through this before it reaches a terminal
// or a CSV cell: control characters, DEL, C1 controls, malformed UTF-8 and
// line-separator / bidirectional controls come out escaped (\e, \r, \x07,
// \u009b, ... as common/printable.h describes), so no byte from a server can
// move the cursor, clear the screen or forge a row. Printable text, any
// script, is unchanged. JSON and YAML escape in their own syntax.
std::string EscapeForTerminal(absl::string_view text);

// The one spelling of a state ("succeeded"), and its parse for --state
// filters: a comma-separated list of those spellings, case-insensitive.
// INVALID_ARGUMENT naming the bad word and the choices.
// The evaluation a cache hit reused: "t000002" within the job, "JOB/t000002" when
// another job's shared result answered it (evaluator.reuse_results); "" for a worker run.
std::string CacheSource(const v1::Trial& trial);

std::string ShortState(v1::JobState state);
std::string ShortState(v1::TrialState state);
std::vector<std::string> JobStateNames();
std::vector<std::string> TrialStateNames();
absl::StatusOr<std::vector<v1::JobState>> ParseJobStates(absl::string_view list);
absl::StatusOr<std::vector<v1::TrialState>> ParseTrialStates(absl::string_view list);

// "5s", "1m05s", "2h03m"; "-" for a negative or unknown duration.
std::string FormatDuration(double seconds);

}  // namespace nas::client

#endif  // NAS_CLIENT_OUTPUT_H_
