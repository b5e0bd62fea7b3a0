// Prometheus /metrics for every nas-service process.
//
// A MetricsServer owns a prometheus::Registry and an HTTP exposer on the given
// port (0 picks a free one). It also exports the process metrics every process
// shares, under the standard names of Prometheus's client libraries
// (process_resident_memory_bytes, process_virtual_memory_bytes,
// process_cpu_seconds_total, process_start_time_seconds, process_open_fds,
// process_max_fds), read from /proc at scrape time, plus
// nas_build_info{binary="..."}.
#ifndef NAS_COMMON_METRICS_H_
#define NAS_COMMON_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace nas {

struct MetricsServerOptions {
  // Address to listen on: loopback unless told otherwise; "0.0.0.0" for
  // every interface.
  std::string host = "127.0.0.1";
  // 0 picks a free port; port() tells which.
  int port = 0;
  // Name of the binary, for nas_build_info.
  std::string binary;
};

class MetricsServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(
      const MetricsServerOptions& options);
  ~MetricsServer();

  // The registry every component of the process adds its metric families to.
  // Thread-safe (prometheus-cpp's own locking).
  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }
  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace nas

#endif  // NAS_COMMON_METRICS_H_
