// Graceful shutdown on SIGTERM / SIGINT.
//
// Call BlockShutdownSignals() first thing in main(), before any thread starts,
// so every thread inherits the blocked mask; then WaitForShutdownSignal()
// (usually on the main thread) returns the signal number once one arrives.
// No async-signal handler runs: the signal is taken synchronously by sigwait,
// so the shutdown path may lock, log and call gRPC freely.
#ifndef NAS_COMMON_SIGNALS_H_
#define NAS_COMMON_SIGNALS_H_

namespace nas {

void BlockShutdownSignals();
// Blocks until SIGTERM or SIGINT; returns which.
int WaitForShutdownSignal();

}  // namespace nas

#endif  // NAS_COMMON_SIGNALS_H_
