#include "controller/task_queue.h"

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

v1::Task MakeTask(const std::string& job, const std::string& trial, int attempt = 1) {
  v1::Task task;
  task.set_job_id(job);
  task.set_trial_id(trial);
  task.set_attempt(attempt);
  task.set_task_id(MakeTaskId(job, trial, attempt));
  task.set_lease_seconds(30);
  return task;
}

TEST(TaskIdTest, RoundTripsAndRejectsMalformedIds) {
  auto parts = ParseTaskId(MakeTaskId("job-1", "t00042", 3));
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->job_id, "job-1");
  EXPECT_EQ(parts->trial_id, "t00042");
  EXPECT_EQ(parts->attempt, 3);
  for (const char* bad : {"", "job", "job/t", "/t#1", "job/#1", "job/t#0", "job/t#x", "j#1/t"}) {
    EXPECT_EQ(ParseTaskId(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(TaskQueueTest, JobsAreServedRoundRobin) {
  FakeClock clock;
  TaskQueue queue(&clock);
  for (int i = 0; i < 3; ++i) queue.Enqueue(MakeTask("a", "a" + std::to_string(i)));
  queue.Enqueue(MakeTask("b", "b0"));
  queue.Enqueue(MakeTask("c", "c0"));
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    auto task = queue.TryAcquire("w");
    ASSERT_TRUE(task.has_value());
    order.push_back(task->trial_id());
  }
  EXPECT_EQ(order, (std::vector<std::string>{"a0", "b0", "c0", "a1", "a2"}));
  EXPECT_FALSE(queue.TryAcquire("w").has_value());
  EXPECT_EQ(queue.leased(), 5);
  EXPECT_EQ(queue.leased("a"), 3);
}

TEST(TaskQueueTest, LeaseExpiresWithoutHeartbeatAndHeartbeatExtendsIt) {
  FakeClock clock;
  TaskQueue queue(&clock);
  queue.Enqueue(MakeTask("j", "t1"));
  queue.Enqueue(MakeTask("j", "t2"));
  auto t1 = queue.TryAcquire("w1");
  auto t2 = queue.TryAcquire("w2");
  ASSERT_TRUE(t1 && t2);
  clock.Advance(absl::Seconds(20));
  ASSERT_TRUE(queue.Heartbeat(t1->task_id(), "w1").ok());
  EXPECT_EQ(queue.Heartbeat(t1->task_id(), "w2").status().code(), absl::StatusCode::kNotFound);
  clock.Advance(absl::Seconds(15));
  std::vector<Lease> expired = queue.ExpireLeases();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].task.trial_id(), "t2");
  EXPECT_EQ(expired[0].worker_id, "w2");
  EXPECT_EQ(queue.Heartbeat(t2->task_id(), "w2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(queue.leased(), 1);
}

TEST(TaskQueueTest, CompletingATrialDropsItsQueuedRetriesAndLease) {
  FakeClock clock;
  TaskQueue queue(&clock);
  queue.Enqueue(MakeTask("j", "t1", 1));
  auto leased = queue.TryAcquire("w");
  ASSERT_TRUE(leased);
  queue.Enqueue(MakeTask("j", "t1", 2));
  queue.Enqueue(MakeTask("j", "t2", 1));
  auto ended = queue.CompleteTrial("j", "t1");
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->worker_id, "w");
  EXPECT_EQ(queue.queued("j"), 1);
  EXPECT_EQ(queue.leased(), 0);
  EXPECT_FALSE(queue.CompleteTrial("j", "t1").has_value());
}

TEST(TaskQueueTest, CancelDropsQueuedTasksAndFlagsLeases) {
  FakeClock clock;
  TaskQueue queue(&clock);
  queue.Enqueue(MakeTask("j", "t1"));
  queue.Enqueue(MakeTask("j", "t2"));
  queue.Enqueue(MakeTask("k", "k1"));
  auto leased = queue.TryAcquire("w");
  ASSERT_TRUE(leased);
  ASSERT_EQ(leased->job_id(), "j");
  std::vector<v1::Task> dropped = queue.CancelJob("j");
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(dropped[0].trial_id(), "t2");
  auto heartbeat = queue.Heartbeat(leased->task_id(), "w");
  ASSERT_TRUE(heartbeat.ok());
  EXPECT_TRUE(heartbeat->cancelled);
  EXPECT_EQ(queue.queued(), 1);
}

// Records how an asynchronous acquire ended.
struct Outcome {
  absl::Notification done;
  std::optional<v1::Task> task;
  std::atomic<int> calls{0};
  TaskQueue::AcquireCallback Callback() {
    return [this](std::optional<v1::Task> t) {
      task = std::move(t);
      ++calls;
      done.Notify();
    };
  }
};

TEST(TaskQueueTest, AsyncWaitersGetTasksFirstComeFirstServedAndHoldTheirLease) {
  FakeClock clock;
  TaskQueue queue(&clock);
  // A queued task comes back at once and the callback is dropped.
  queue.Enqueue(MakeTask("a", "t0"));
  Outcome unused;
  int64_t id = -1;
  auto now = queue.AcquireOrWait("w0", absl::Now() + absl::Seconds(30), unused.Callback(), &id);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->trial_id(), "t0");
  EXPECT_EQ(unused.calls.load(), 0);
  // Two waiters, then two tasks: the older waiter gets the first.
  Outcome first, second;
  int64_t id1 = -1, id2 = -1;
  EXPECT_FALSE(queue.AcquireOrWait("w1", absl::Now() + absl::Seconds(30), first.Callback(), &id1));
  EXPECT_FALSE(queue.AcquireOrWait("w2", absl::Now() + absl::Seconds(30), second.Callback(), &id2));
  EXPECT_EQ(queue.waiting(), 2);
  queue.Enqueue(MakeTask("a", "t1"));
  ASSERT_TRUE(first.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(first.task.has_value());
  EXPECT_EQ(first.task->trial_id(), "t1");
  EXPECT_FALSE(second.done.HasBeenNotified());
  queue.Enqueue(MakeTask("a", "t2"));
  ASSERT_TRUE(second.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(second.task->trial_id(), "t2");
  // Each task is leased to the worker that waited for it.
  EXPECT_TRUE(queue.Heartbeat(first.task->task_id(), "w1").ok());
  EXPECT_FALSE(queue.Heartbeat(first.task->task_id(), "w2").ok());
  EXPECT_TRUE(queue.Heartbeat(second.task->task_id(), "w2").ok());
  EXPECT_EQ(queue.waiting(), 0);
  EXPECT_EQ(first.calls.load(), 1);
  EXPECT_EQ(second.calls.load(), 1);
}

TEST(TaskQueueTest, AsyncWaitsEndAtTheirDeadlineOnCancelAndAtShutdown) {
  FakeClock clock;
  TaskQueue queue(&clock);
  Outcome expires, cancelled, at_shutdown, late;
  int64_t cancel_id = -1;
  ASSERT_FALSE(queue.AcquireOrWait("w1", absl::Now() + absl::Milliseconds(50), expires.Callback(), nullptr));
  ASSERT_FALSE(queue.AcquireOrWait("w2", absl::Now() + absl::Seconds(30), cancelled.Callback(), &cancel_id));
  ASSERT_FALSE(queue.AcquireOrWait("w3", absl::Now() + absl::Seconds(30), at_shutdown.Callback(), nullptr));
  ASSERT_TRUE(expires.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(expires.task.has_value());
  queue.CancelWaiter(cancel_id);
  ASSERT_TRUE(cancelled.done.HasBeenNotified());
  EXPECT_FALSE(cancelled.task.has_value());
  queue.CancelWaiter(cancel_id);  // ended already: nothing
  EXPECT_EQ(cancelled.calls.load(), 1);
  EXPECT_FALSE(at_shutdown.done.HasBeenNotified());
  queue.Shutdown();
  ASSERT_TRUE(at_shutdown.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_FALSE(at_shutdown.task.has_value());
  // After shutdown a new wait ends at once.
  EXPECT_FALSE(queue.AcquireOrWait("w4", absl::Now() + absl::Seconds(30), late.Callback(), nullptr));
  EXPECT_TRUE(late.done.HasBeenNotified());
  EXPECT_EQ(expires.calls.load() + cancelled.calls.load() + at_shutdown.calls.load() + late.calls.load(), 4);
}

TEST(TaskQueueTest, LongPollWakesWhenATaskArrives) {
  FakeClock clock;
  TaskQueue queue(&clock);
  Outcome poll;
  ASSERT_FALSE(queue.AcquireOrWait("w", absl::Now() + absl::Seconds(30), poll.Callback(), nullptr));
  queue.Enqueue(MakeTask("j", "t1"));
  ASSERT_TRUE(poll.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_TRUE(poll.task.has_value());
  EXPECT_EQ(queue.ConnectedWorkers(absl::Minutes(1)), 1);
}

TEST(TaskQueueTest, ShutdownReleasesWaitingPollers) {
  FakeClock clock;
  TaskQueue queue(&clock);
  Outcome poll;
  ASSERT_FALSE(queue.AcquireOrWait("w", absl::Now() + absl::Hours(1), poll.Callback(), nullptr));
  queue.Shutdown();
  ASSERT_TRUE(poll.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_FALSE(poll.task.has_value());
}

}  // namespace
}  // namespace nas::controller
