#!/usr/bin/env bash
# gpu_check's own logic, on whatever machine runs the tests: the run that
# matches the machine (the CPU dry run where LibTorch sees no CUDA) passes and
# prints its figures; the run that expects the other answer, and a run that
# cannot learn (learning rate 1e-9), exit 1 naming the failed check.
set -euo pipefail

gpu_check="${TEST_SRCDIR}/${TEST_WORKSPACE}/tools/gpu_check"
work="${TEST_TMPDIR}/gpu_check"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
# 96 steps of 16 images: enough for the loss to fall below 0.7x, not for the
# default accuracy bar, so the test asks for 0.3 (chance is 0.1).
small=(--train_images=256 --batch_size=16 --epochs=6 --min_accuracy=0.3 --threads=2)

# The run that matches this machine.
"$gpu_check" --expect_cuda=false "${small[@]}" >"$work/dry.out" 2>"$work/dry.err" && dry=0 || dry=$?
cuda="$(awk '$1 == "cuda_available" { print $2 }' "$work/dry.out")"
[[ "$cuda" == 0 || "$cuda" == 1 ]] || fail "no cuda_available figure: $(cat "$work/dry.out" "$work/dry.err")"
if [[ "$cuda" == 0 ]]; then
  matching=(--expect_cuda=false)
  other=(--expect_cuda=true)
  [[ "$dry" == 0 ]] || fail "the CPU dry run failed (exit $dry): $(cat "$work/dry.err")"
  cp "$work/dry.out" "$work/match.out"
else
  matching=(--expect_cuda=true)
  other=(--expect_cuda=false)
  "$gpu_check" "${matching[@]}" "${small[@]}" >"$work/match.out" 2>"$work/match.err" ||
    fail "the CUDA run failed on a machine with CUDA: $(cat "$work/match.err")"
fi
grep -q "^gpu_check: all [0-9]* checks passed$" "$work/match.out" || fail "no pass line: $(cat "$work/match.out")"
for figure in cpu_steps cpu_epoch1_train_loss cpu_epoch6_train_loss cpu_validation_accuracy \
              cpu_images_per_second; do
  value="$(awk -v f="$figure" '$1 == f { print $2 }' "$work/match.out")"
  [[ -n "$value" ]] || fail "figure $figure missing: $(cat "$work/match.out")"
done
[[ "$(awk '$1 == "cpu_steps" { print $2 }' "$work/match.out")" == 96 ]] ||
  fail "256 images in batches of 16 for 6 epochs are 96 steps: $(grep cpu_steps "$work/match.out")"

# Expecting the other answer about CUDA fails, naming the check.
if "$gpu_check" "${other[@]}" --epochs=1 --train_images=128 --threads=2 >"$work/other.out" 2>"$work/other.err"; then
  fail "gpu_check ${other[*]} passed on a machine where cuda_available is $cuda"
fi
grep -q "^FAIL cuda_available: " "$work/other.err" || fail "no cuda_available failure: $(cat "$work/other.err")"

# A network that cannot learn fails the loss check (and the accuracy check).
if "$gpu_check" --expect_cuda=false --train_images=128 --batch_size=16 --epochs=2 --threads=2 --learning_rate=1e-9 >"$work/lr0.out" 2>"$work/lr0.err"; then
  [[ "$cuda" == 1 ]] || fail "gpu_check passed with learning rate 1e-9"
fi
grep -q "^FAIL cpu_loss_falls: " "$work/lr0.err" || fail "no cpu_loss_falls failure: $(cat "$work/lr0.err")"
grep -q "^gpu_check: [0-9]* of [0-9]* checks failed$" "$work/lr0.err" || fail "no summary: $(cat "$work/lr0.err")"
echo "PASS"
