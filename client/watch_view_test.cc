#include "client/watch_view.h"

#include <sstream>

#include "gtest/gtest.h"

namespace nas::client {
namespace {

v1::Job RunningJob(int64_t done, int64_t budget) {
  v1::Job job;
  job.set_job_id("j");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->mutable_budget()->set_max_trials(budget);
  job.mutable_spec()->mutable_budget()->set_max_wall_seconds(900);
  job.set_trials_succeeded(done);
  job.set_start_time_unix_ms(0);
  return job;
}

TEST(WatchViewTest, PanelShowsProgressRateAndEta) {
  const std::vector<std::string> panel = WatchView::Panel(RunningJob(5, 10), "", 60'000);
  ASSERT_GE(panel.size(), 4u);
  EXPECT_NE(panel[1].find("5/10 trials"), std::string::npos) << panel[1];
  EXPECT_NE(panel[1].find("5.0/min"), std::string::npos) << panel[1];
  EXPECT_NE(panel[1].find("ETA 1m00s"), std::string::npos) << panel[1];
}

TEST(WatchViewTest, ProgressCountsEvaluationsAndCacheHitsAreShown) {
  v1::Job job = RunningJob(8, 10);
  job.set_cache_hits(3);
  const std::vector<std::string> panel = WatchView::Panel(job, "", 60'000);
  ASSERT_GE(panel.size(), 4u);
  EXPECT_NE(panel[1].find("5/10 trials"), std::string::npos) << panel[1];
  EXPECT_NE(panel[3].find("cache hits 3"), std::string::npos) << panel[3];
  std::ostringstream out;
  WatchView view(out, /*terminal=*/false);
  v1::Trial hit;
  hit.set_trial_id("t000009");
  hit.set_state(v1::TRIAL_STATE_SUCCEEDED);
  hit.set_cached_from("t000002");
  view.OnTrial(hit);
  EXPECT_NE(out.str().find("trial t000009 succeeded"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("(cache hit of t000002)"), std::string::npos) << out.str();
  // Another job's shared result (evaluator.reuse_results) names that job too.
  hit.set_trial_id("t000010");
  hit.set_cached_from_job("job-a");
  view.OnTrial(hit);
  EXPECT_NE(out.str().find("(cache hit of job-a/t000002)"), std::string::npos) << out.str();
  // A one-shot job's final trial says so.
  v1::Trial final_trial;
  final_trial.set_trial_id("t000011");
  final_trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  final_trial.set_final_training(true);
  view.OnTrial(final_trial);
  EXPECT_NE(out.str().find("trial t000011 succeeded"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("(final: trained from scratch)"), std::string::npos) << out.str();
}

TEST(WatchViewTest, ALanguageModelTrialShowsItsPerplexityNotAccuracy) {
  std::ostringstream out;
  WatchView view(out, /*terminal=*/false);
  v1::Trial trial;
  trial.set_trial_id("t000003");
  trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  trial.mutable_architecture()->mutable_recurrent_cell()->add_nodes()->set_combination("add");
  trial.mutable_architecture()->set_canonical("n0:add/tanh|out:n0");
  trial.mutable_metrics()->set_reward(0.0149);
  trial.mutable_metrics()->set_perplexity(655.25);
  view.OnTrial(trial);
  EXPECT_NE(out.str().find(
                "trial t000003 succeeded  reward 0.0149  perplexity 655.25  n0:add/tanh|out:n0"),
            std::string::npos)
      << out.str();
  EXPECT_EQ(out.str().find("accuracy"), std::string::npos) << out.str();

  // The best trial's perplexity follows it in the status line, the panel and
  // the final summary.
  v1::Job job = RunningJob(1, 10);
  job.set_best_reward(0.0149);
  job.set_best_trial_id("t000003");
  job.set_best_canonical("n0:add/tanh|out:n0");
  view.OnStatus(job);
  EXPECT_NE(out.str().find("best 0.0149 (perplexity 655.25)  running"), std::string::npos)
      << out.str();
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  view.OnStatus(job);
  view.Finish();
  EXPECT_NE(out.str().find("1 succeeded, 0 failed, best 0.0149 (t000003, perplexity 655.25)"),
            std::string::npos)
      << out.str();
  std::ostringstream terminal_out;
  WatchView terminal(terminal_out, /*terminal=*/true);
  terminal.OnTrial(trial);
  terminal.OnStatus(job);
  EXPECT_NE(terminal_out.str().find("best 0.0149  t000003  perplexity 655.25  n0:add/tanh|out:n0"),
            std::string::npos)
      << terminal_out.str();
}

TEST(WatchViewTest, EndedJobHasNoEta) {
  v1::Job job = RunningJob(10, 10);
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.set_end_time_unix_ms(120'000);
  const std::vector<std::string> panel = WatchView::Panel(job, "", 500'000);
  EXPECT_NE(panel[1].find("ETA -"), std::string::npos) << panel[1];
  EXPECT_NE(panel[1].find("elapsed 2m00s"), std::string::npos) << panel[1];
}

TEST(WatchViewTest, PipedOutputPrintsStatusOnlyWhenSomethingChanged) {
  std::ostringstream out;
  WatchView view(out, /*terminal=*/false);
  view.OnStatus(RunningJob(1, 10));
  view.OnStatus(RunningJob(1, 10));
  view.OnStatus(RunningJob(2, 10));
  int lines = 0;
  for (char c : out.str()) lines += c == '\n';
  EXPECT_EQ(lines, 2) << out.str();
  EXPECT_EQ(out.str().find("\033["), std::string::npos) << "no terminal escapes when piped";
}

TEST(WatchViewTest, ServerTextCannotAddItsOwnControlSequences) {
  const std::string hostile = "\x1b[2J\x1b[31mPWNED\x1b[0m\r\nfake-job   running\xc2\x9b" "2J";
  v1::Job job = RunningJob(1, 10);
  job.set_job_id(hostile);
  job.mutable_spec()->set_name(hostile);
  job.set_best_canonical(hostile);
  job.set_error(hostile);
  v1::Trial trial;
  trial.set_trial_id(hostile);
  trial.set_state(v1::TRIAL_STATE_FAILED);
  trial.set_error(hostile);
  for (bool terminal : {true, false}) {
    std::ostringstream out;
    WatchView view(out, terminal);
    view.OnStatus(job);
    view.OnTrial(trial);
    job.set_trials_succeeded(2);
    view.OnStatus(job);
    view.Finish();
    // Remove the view's own redraw sequence (cursor up N lines, clear down):
    // nothing else may reach the terminal.
    std::string text = out.str();
    for (size_t at; (at = text.find("\033[")) != std::string::npos;) {
      const size_t end = text.find("A\033[J", at);
      ASSERT_NE(end, std::string::npos) << "an ESC that is not the view's redraw:\n" << text;
      ASSERT_EQ(text.find_first_not_of("0123456789", at + 2), end) << text;
      text.erase(at, end + 4 - at);
    }
    for (char c : text) {
      EXPECT_FALSE((static_cast<unsigned char>(c) < 0x20 && c != '\n') || c == 0x7f)
          << "raw byte " << int{c} << " (terminal=" << terminal << ") in\n" << text;
    }
    EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
    EXPECT_NE(text.find("\\e[2J\\e[31mPWNED"), std::string::npos) << text;
  }
}

}  // namespace
}  // namespace nas::client
