// How nasctl prints data: a table for people, or json / yaml / csv for
// programs (-o). CSV columns are documented in docs/cli.md.
#ifndef NAS_CLIENT_OUTPUT_H_
#define NAS_CLIENT_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/job.pb.h"

namespace nas::client {

enum class OutputFormat { kTable, kJson, kYaml, kCsv };

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text);

std::string FormatJobs(const std::vector<v1::Job>& jobs, OutputFormat format);
// One job in detail (table form is a key: value listing).
std::string FormatJob(const v1::Job& job, OutputFormat format);
std::string FormatTrials(const std::vector<v1::Trial>& trials, OutputFormat format);
// One trial in detail (`nasctl trial`): the table form is a key: value
// listing, the architecture in readable form and the learning curve
// (Trial.curve) as a table; json / yaml are the whole nas.v1.Trial; csv is the
// curve, one row per epoch (kCurveCsvColumns).
std::string FormatTrial(const v1::Trial& trial, OutputFormat format);
// An architecture for people, one line per layer, edge or tree node (empty
// for an architecture without a form): used by `nasctl trial` and export's
// summary.txt.
std::string FormatArchitecture(const v1::Architecture& architecture);

// Column names of the CSV forms.
extern const char* const kJobCsvColumns[];
extern const char* const kTrialCsvColumns[];
extern const char* const kCurveCsvColumns[];

// Every string nasctl shows that came from a server (names, ids, errors,
// architectures, worker ids) passes through this before it reaches a terminal
// or a CSV cell: control characters, DEL, C1 controls, malformed UTF-8 and
// line-separator / bidirectional controls come out escaped (\e, \r, \x07,
// \u009b, ... as common/printable.h describes), so no byte from a server can
// move the cursor, clear the screen or forge a row. Printable text, any
// script, is unchanged. JSON is escaped by its printer and YAML by
// MessageToYaml, both in their own syntax.
std::string EscapeForTerminal(absl::string_view text);

// Helpers shared by the live view.
std::string FormatDuration(double seconds);
std::string ShortState(v1::JobState state);
std::string ShortState(v1::TrialState state);

}  // namespace nas::client

#endif  // NAS_CLIENT_OUTPUT_H_
