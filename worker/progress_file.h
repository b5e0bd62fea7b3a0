// The worker's liveness signal for Kubernetes: a file holding the Unix time of
// the worker's last progress (WorkerLoopOptions::on_progress), which an exec
// liveness probe compares with the clock (deploy/k8s/base/worker.yaml). A
// trainer hung inside an epoch stops the updates, so the probe fails and the
// kubelet restarts the pod; an idle worker still updates it on every poll.
#ifndef NAS_WORKER_PROGRESS_FILE_H_
#define NAS_WORKER_PROGRESS_FILE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nas::worker {

class ProgressFile {
 public:
  // Rewrites `path` (atomically) at most once per `min_interval`.
  ProgressFile(std::string path, absl::Duration min_interval)
      : path_(std::move(path)), min_interval_(min_interval) {}

  // Records progress at `now`: writes "<unix seconds>\n" unless the file was
  // written less than min_interval before. Thread-safe.
  absl::Status Update(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const absl::Duration min_interval_;
  absl::Mutex mu_;
  absl::Time last_written_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace nas::worker

#endif  // NAS_WORKER_PROGRESS_FILE_H_
