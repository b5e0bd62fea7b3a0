#!/usr/bin/env bash
# README quick start (b): set up this machine and run every test.
#   bash tools/test.sh [extra bazel test flags]
# Ends with one summary line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh

log="$(mktemp -t nas-test.XXXXXX)"
trap 'rm -f "$log"' EXIT
set +e
bazel test //... --nocache_test_results "$@" 2>&1 | tee "$log" | grep -vE '^(\[[0-9,]+ / [0-9,]+\]|INFO: From |Loading:|Analyzing:)'
rc=${PIPESTATUS[0]}
# The Kubernetes manifests against the binaries just built (counts as one test).
echo "== deploy checks =="
bash tools/check_deploy.sh bazel-bin 2>&1 | tee -a "$log"
deploy_rc=${PIPESTATUS[0]}
# libFuzzer targets (clang, outside Bazel): regressions replayed, then each
# target fuzzed for NAS_FUZZ_SECONDS (counts as one test).
echo "== fuzzing =="
bash tools/fuzz.sh "${NAS_FUZZ_SECONDS:-60}" 2>&1 | tee -a "$log"
fuzz_rc=${PIPESTATUS[0]}
# The parameter server's concurrency test again under ThreadSanitizer.
echo "== ThreadSanitizer =="
bazel test --config=tsan //parameter_server:shard_test --nocache_test_results "$@" 2>&1 | tee -a "$log" | grep -E '^//|FAILED|ThreadSanitizer'
tsan_rc=${PIPESTATUS[0]}
if [[ $tsan_rc -ne 0 ]]; then rc=$tsan_rc; fi
# Locking checked by the compiler: every C++ target compiled (not linked:
# the check is the compiler's) with clang's thread-safety analysis as errors,
# .bazelrc's --config=clang (counts as one test).
echo "== clang thread-safety =="
bazel build --config=clang --output_groups=compilation_outputs //... 2>&1 |
  grep -E 'error:|^ERROR|Elapsed time|Build completed|FAILED'
clang_rc=${PIPESTATUS[0]}
set -e

passed=$(grep -cE '^//\S+\s+(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//\S+\s+(\(cached\) )?(FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE)|FAILED TO BUILD' "$log" || true)
if [[ $rc -ne 0 && $failed -eq 0 ]]; then failed=1; fi
for step_rc in "$deploy_rc" "$fuzz_rc" "$clang_rc"; do
  if [[ $step_rc -eq 0 ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    rc=$step_rc
  fi
done
echo
echo "${passed} passed, ${failed} failed"
exit "$rc"
