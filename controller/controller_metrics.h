// The controller's Prometheus metrics, registered once and shared by the
// pieces that record them: the trial broker (trials, leases, queue), the
// replicas (samples, pushes, rounds) and the job owner (per-job gauges).
// Counters and families are thread-safe (prometheus-cpp).
#ifndef NAS_CONTROLLER_CONTROLLER_METRICS_H_
#define NAS_CONTROLLER_CONTROLLER_METRICS_H_

#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nas::controller {

struct ControllerMetrics {
  explicit ControllerMetrics(prometheus::Registry& registry);

  prometheus::Family<prometheus::Counter>& trials;
  prometheus::Family<prometheus::Counter>& samples;
  prometheus::Family<prometheus::Counter>& cache_hits;
  prometheus::Family<prometheus::Counter>& early_stops;
  prometheus::Counter& leases_expired;
  prometheus::Family<prometheus::Counter>& pushes;
  prometheus::Histogram& reward;
  prometheus::Family<prometheus::Gauge>& job_gauges;
  prometheus::Histogram& round_seconds;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& leased;
  prometheus::Gauge& workers;

  // nas_controller_job{job_id, value=name}.
  prometheus::Gauge& JobGauge(const std::string& job, const std::string& name) {
    return job_gauges.Add({{"job_id", job}, {"value", name}});
  }
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_CONTROLLER_METRICS_H_
