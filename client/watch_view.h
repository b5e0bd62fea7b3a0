// The live view of `nasctl watch`: progress bar of trials done / budget,
// trials per minute and ETA, the best reward and its architecture, running
// tasks and workers. On a terminal it redraws in place; piped, it prints one
// plain line per event.
#ifndef NAS_CLIENT_WATCH_VIEW_H_
#define NAS_CLIENT_WATCH_VIEW_H_

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/job.pb.h"

namespace nas::client {

class WatchView {
 public:
  WatchView(std::ostream& out, bool terminal) : out_(out), terminal_(terminal) {}

  void OnTrial(const v1::Trial& trial);
  void OnStatus(const v1::Job& job);
  // Prints the final summary line.
  void Finish();

  const v1::Job& last_status() const { return status_; }

  // The progress panel for `job` (exposed for tests). `now_ms` is the wall
  // clock used for rates; `best_quality` follows the best trial's id
  // ("perplexity 705.27" for a language model; empty: nothing).
  static std::vector<std::string> Panel(const v1::Job& job, const std::string& last_trial,
                                        int64_t now_ms, const std::string& best_quality = "");

 private:
  void Redraw();
  // "perplexity 705.27" when the job's best trial is a language model this
  // view has seen finish; empty otherwise.
  std::string BestQuality() const;

  std::ostream& out_;
  const bool terminal_;
  v1::Job status_;
  bool have_status_ = false;
  std::string last_trial_;
  // The perplexity of each language-model trial seen succeeding, by id.
  std::map<std::string, double> perplexities_;
  int lines_drawn_ = 0;
  // Piped output: what the last status line showed.
  int64_t last_done_ = -1;
  v1::JobState last_state_ = v1::JOB_STATE_UNSPECIFIED;
};

}  // namespace nas::client

#endif  // NAS_CLIENT_WATCH_VIEW_H_
