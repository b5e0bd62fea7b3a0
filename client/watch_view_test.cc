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

}  // namespace
}  // namespace nas::client
