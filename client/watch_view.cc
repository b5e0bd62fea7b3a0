#include "client/watch_view.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/output.h"

namespace nas::client {
namespace {

std::string Bar(double fraction, int width) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * width + 0.5);
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '-'), "]");
}

std::string TrialLine(const v1::Trial& trial) {
  std::string hit =
      trial.cached_from().empty() ? "" : absl::StrCat("  (cache hit of ", CacheSource(trial), ")");
  if (trial.final_training()) absl::StrAppend(&hit, "  (final: trained from scratch)");
  if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) {
    // A language model's quality is its validation perplexity.
    const std::string quality =
        IsLanguageModel(trial)
            ? absl::StrCat("perplexity ", FormatPerplexity(trial.metrics().perplexity()))
            : absl::StrFormat("accuracy %.4f", trial.metrics().accuracy());
    return absl::StrFormat("trial %s succeeded  reward %.4f  %s  %s%s", trial.trial_id(),
                           trial.metrics().reward(), quality, trial.architecture().canonical(),
                           hit);
  }
  return absl::StrFormat("trial %s %s  %s", trial.trial_id(), ShortState(trial.state()),
                         trial.error());
}

}  // namespace

std::vector<std::string> WatchView::Panel(const v1::Job& job, const std::string& last_trial,
                                          int64_t now_ms, const std::string& best_quality) {
  // Progress counts evaluations: budget.max_trials does not count cache hits.
  const int64_t done =
      std::max<int64_t>(0, job.trials_succeeded() + job.trials_failed() - job.cache_hits());
  const int64_t budget = job.spec().budget().max_trials();
  const int64_t end_ms = job.end_time_unix_ms() != 0 ? job.end_time_unix_ms() : now_ms;
  const double elapsed = std::max(0.0, (end_ms - job.start_time_unix_ms()) / 1000.0);
  const double per_minute = elapsed > 0 ? done * 60.0 / elapsed : 0;
  std::string eta = "-";
  const bool ended = job.state() == v1::JOB_STATE_SUCCEEDED ||
                     job.state() == v1::JOB_STATE_CANCELLED || job.state() == v1::JOB_STATE_FAILED;
  if (ended || (budget > 0 && done >= budget)) {
    eta = "-";
  } else if (budget > 0 && per_minute > 0) {
    eta = FormatDuration((budget - done) * 60.0 / per_minute);
  } else if (job.spec().budget().max_wall_seconds() > 0) {
    eta = FormatDuration(job.spec().budget().max_wall_seconds() - elapsed);
  }
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat("job %s (%s)  %s  %s  S=%d K=%d m=%d", job.job_id(),
                                  job.spec().name(), ShortState(job.state()),
                                  job.spec().strategy().name(),
                                  job.spec().parallelism().num_shards(),
                                  job.spec().parallelism().num_replicas(),
                                  job.spec().parallelism().children_per_replica()));
  const std::string progress =
      budget > 0 ? absl::StrCat(Bar(static_cast<double>(done) / budget, 30), " ", done, "/",
                                budget, " trials")
                 : absl::StrCat(done, " trials");
  lines.push_back(absl::StrFormat("%s  %.1f/min  elapsed %s  ETA %s", progress, per_minute,
                                  FormatDuration(elapsed), eta));
  lines.push_back(absl::StrFormat("best %.4f  %s  %s%s", job.best_reward(),
                                  job.best_trial_id().empty() ? "-" : job.best_trial_id(),
                                  best_quality.empty() ? "" : absl::StrCat(best_quality, "  "),
                                  job.best_canonical()));
  lines.push_back(absl::StrFormat("running %d  queued %d  failed %d  cache hits %d  workers %d  "
                                  "mean %.4f  baseline %.4f",
                                  job.trials_running(), job.trials_queued(), job.trials_failed(),
                                  job.cache_hits(), job.connected_workers(), job.mean_reward(),
                                  job.baseline()));
  if (!last_trial.empty()) lines.push_back(absl::StrCat("last: ", last_trial));
  return lines;
}

std::string WatchView::BestQuality() const {
  const auto it = perplexities_.find(status_.best_trial_id());
  return it == perplexities_.end() ? "" : absl::StrCat("perplexity ", FormatPerplexity(it->second));
}

void WatchView::OnTrial(const v1::Trial& trial) {
  if (trial.state() == v1::TRIAL_STATE_SUCCEEDED && IsLanguageModel(trial)) {
    perplexities_[trial.trial_id()] = trial.metrics().perplexity();
  }
  last_trial_ = EscapeForTerminal(TrialLine(trial));
  if (!terminal_) {
    out_ << last_trial_ << "\n";
    out_.flush();
    return;
  }
  if (have_status_) Redraw();
}

void WatchView::OnStatus(const v1::Job& job) {
  status_ = job;
  have_status_ = true;
  if (!terminal_) {
    // Piped: a status line only when something changed.
    const int64_t done = job.trials_succeeded() + job.trials_failed();
    if (done == last_done_ && job.state() == last_state_) return;
    last_done_ = done;
    last_state_ = job.state();
    const std::vector<std::string> panel = Panel(job, "", absl::ToUnixMillis(absl::Now()));
    const std::string quality = BestQuality();
    out_ << EscapeForTerminal(panel[1]) << "  best " << absl::StrFormat("%.4f", job.best_reward())
         << (quality.empty() ? "" : absl::StrCat(" (", quality, ")")) << "  "
         << ShortState(job.state()) << "\n";
    out_.flush();
    return;
  }
  Redraw();
}

void WatchView::Redraw() {
  const std::vector<std::string> panel =
      Panel(status_, last_trial_, absl::ToUnixMillis(absl::Now()), BestQuality());
  // Move up over the previous panel and clear it, then draw the new one.
  if (lines_drawn_ > 0) out_ << "\033[" << lines_drawn_ << "A\033[J";
  // Only this function writes control sequences; every line of server text
  // is escaped so it cannot add its own.
  for (const std::string& line : panel) out_ << EscapeForTerminal(line) << "\n";
  lines_drawn_ = static_cast<int>(panel.size());
  out_.flush();
}

void WatchView::Finish() {
  if (!have_status_) return;
  const std::string quality = BestQuality();
  out_ << EscapeForTerminal(absl::StrFormat("job %s %s: %d succeeded, %d failed, best %.4f (%s%s)",
                                            status_.job_id(), ShortState(status_.state()),
                                            status_.trials_succeeded(), status_.trials_failed(),
                                            status_.best_reward(), status_.best_trial_id(),
                                            quality.empty() ? "" : absl::StrCat(", ", quality)))
       << "\n";
  if (!status_.error().empty()) out_ << "error: " << EscapeForTerminal(status_.error()) << "\n";
  out_.flush();
}

}  // namespace nas::client
