#include "common/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/client_metric.h"
#include "prometheus/collectable.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/metric_family.h"

namespace nas {
namespace {

// Reads memory, CPU time and file descriptors from /proc/self at scrape time.
// process_start_time_seconds is the time the collector was made (the process
// starts it with its metrics server).
class ProcessCollector : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::string binary) : binary_(std::move(binary)) {
    start_time_seconds_ = static_cast<double>(time(nullptr));
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    const long page_size = sysconf(_SC_PAGESIZE);
    const long ticks = sysconf(_SC_CLK_TCK);

    double rss_bytes = 0;
    double virtual_bytes = 0;
    {
      std::ifstream statm("/proc/self/statm");
      long size = 0, resident = 0;
      if (statm >> size >> resident) {
        rss_bytes = static_cast<double>(resident) * page_size;
        virtual_bytes = static_cast<double>(size) * page_size;
      }
    }
    double open_fds = 0;
    std::error_code error;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
         !error && it != std::filesystem::directory_iterator(); it.increment(error)) {
      ++open_fds;
    }
    struct rlimit limit {};
    const double max_fds = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                               ? static_cast<double>(limit.rlim_cur)
                               : 0;
    double cpu_seconds = 0;
    {
      std::ifstream stat("/proc/self/stat");
      std::string content((std::istreambuf_iterator<char>(stat)),
                          std::istreambuf_iterator<char>());
      // Fields after the ")" that ends the command name; utime and stime are
      // fields 14 and 15 of the whole line (12 and 13 after the state field).
      const size_t close = content.rfind(')');
      if (close != std::string::npos) {
        std::istringstream rest(content.substr(close + 2));
        std::string field;
        std::vector<std::string> fields;
        while (rest >> field) fields.push_back(field);
        if (fields.size() > 12) {
          cpu_seconds = (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
        }
      }
    }

    families.push_back(Gauge("process_resident_memory_bytes",
                             "Resident memory size in bytes.", rss_bytes));
    families.push_back(Gauge("process_virtual_memory_bytes",
                             "Virtual memory size in bytes.", virtual_bytes));
    families.push_back(Gauge("process_open_fds", "Number of open file descriptors.", open_fds));
    families.push_back(Gauge("process_max_fds", "Maximum number of open file descriptors.",
                             max_fds));
    prometheus::MetricFamily cpu;
    cpu.name = "process_cpu_seconds_total";
    cpu.help = "Total user and system CPU time spent in seconds.";
    cpu.type = prometheus::MetricType::Counter;
    prometheus::ClientMetric cpu_metric;
    cpu_metric.counter.value = cpu_seconds;
    cpu.metric.push_back(cpu_metric);
    families.push_back(cpu);
    families.push_back(Gauge("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.",
                             start_time_seconds_));
    prometheus::MetricFamily info = Gauge(
        "nas_build_info", "Always 1; labels name the binary.", 1.0);
    info.metric[0].label.push_back({"binary", binary_});
    families.push_back(info);
    return families;
  }

 private:
  static prometheus::MetricFamily Gauge(const std::string& name, const std::string& help,
                                        double value) {
    prometheus::MetricFamily family;
    family.name = name;
    family.help = help;
    family.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric metric;
    metric.gauge.value = value;
    family.metric.push_back(metric);
    return family;
  }

  std::string binary_;
  double start_time_seconds_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    const MetricsServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", options.port, " is not in 0..65535"));
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->registry_ = std::make_shared<prometheus::Registry>();
  server->process_collector_ = std::make_shared<ProcessCollector>(options.binary);
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(
        absl::StrCat(options.host, ":", options.port), /*num_threads=*/1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve /metrics on ", options.host,
                                               ":", options.port, ": ", e.what()));
  }
  server->exposer_->RegisterCollectable(server->registry_);
  server->exposer_->RegisterCollectable(server->process_collector_);
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::InternalError("metrics exposer has no listening port");
  server->port_ = ports.front();
  return server;
}

MetricsServer::~MetricsServer() = default;

}  // namespace nas
