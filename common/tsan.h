// ThreadSanitizer and Debian's abseil: libabsl is not built with
// -fsanitize=thread, so TSAN cannot see the happens-before edges an
// absl::Mutex creates and reports false races under --config=tsan.
// LockedMutex is absl::MutexLock plus explicit TSAN acquire/release
// annotations on the mutex, so code that uses it is checked for real races
// (and the annotations compile to nothing outside TSAN builds).
#ifndef NAS_COMMON_TSAN_H_
#define NAS_COMMON_TSAN_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define NAS_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#define NAS_TSAN_RELEASE(addr) __tsan_release(addr)
#else
#define NAS_TSAN_ACQUIRE(addr) ((void)(addr))
#define NAS_TSAN_RELEASE(addr) ((void)(addr))
#endif

namespace nas {

class ABSL_SCOPED_LOCKABLE LockedMutex {
 public:
  explicit LockedMutex(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
    NAS_TSAN_ACQUIRE(mu_);
  }
  ~LockedMutex() ABSL_UNLOCK_FUNCTION() {
    NAS_TSAN_RELEASE(mu_);
    mu_->Unlock();
  }
  LockedMutex(const LockedMutex&) = delete;
  LockedMutex& operator=(const LockedMutex&) = delete;

 private:
  absl::Mutex* const mu_;
};

}  // namespace nas

#endif  // NAS_COMMON_TSAN_H_
