#include "controller/controller_metrics.h"

namespace nas::controller {

ControllerMetrics::ControllerMetrics(prometheus::Registry& registry)
    : trials(prometheus::BuildCounter()
                 .Name("nas_controller_trials_total")
                 .Help("Trials that reached a final state, by job and status.")
                 .Register(registry)),
      samples(prometheus::BuildCounter()
                  .Name("nas_controller_samples_total")
                  .Help("Architectures sampled, by job.")
                  .Register(registry)),
      cache_hits(prometheus::BuildCounter()
                     .Name("nas_controller_cache_hits_total")
                     .Help("Samples answered by the job's result cache (succeeded without a "
                           "worker run: evaluations saved), by job.")
                     .Register(registry)),
      early_stops(prometheus::BuildCounter()
                      .Name("nas_controller_early_stops_total")
                      .Help("Trials the job's early-stopping rule stopped, by job.")
                      .Register(registry)),
      leases_expired(prometheus::BuildCounter()
                         .Name("nas_controller_leases_expired_total")
                         .Help("Task leases that expired without a result.")
                         .Register(registry)
                         .Add({})),
      pushes(prometheus::BuildCounter()
                 .Name("nas_controller_gradient_pushes_total")
                 .Help("Gradients pushed to the parameter servers, by job and outcome.")
                 .Register(registry)),
      reward(prometheus::BuildHistogram()
                 .Name("nas_controller_reward")
                 .Help("Rewards of succeeded trials.")
                 .Register(registry)
                 .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.2, 0.3, 0.4,
                                                                  0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
                                                                  1.0})),
      job_gauges(prometheus::BuildGauge()
                     .Name("nas_controller_job")
                     .Help("Per-job values: best_reward, mean_reward, baseline, entropy, "
                           "trials_running, trials_queued.")
                     .Register(registry)),
      round_seconds(prometheus::BuildHistogram()
                        .Name("nas_controller_replica_round_seconds")
                        .Help("Duration of one replica round (pull, sample, evaluate, push).")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 7200})),
      queue_depth(prometheus::BuildGauge()
                      .Name("nas_controller_queue_depth")
                      .Help("Tasks waiting for a worker.")
                      .Register(registry)
                      .Add({})),
      leased(prometheus::BuildGauge()
                 .Name("nas_controller_tasks_leased")
                 .Help("Tasks currently leased to workers.")
                 .Register(registry)
                 .Add({})),
      workers(prometheus::BuildGauge()
                  .Name("nas_controller_connected_workers")
                  .Help("Workers that polled or heartbeated in the last minute.")
                  .Register(registry)
                  .Add({})) {}

}  // namespace nas::controller
