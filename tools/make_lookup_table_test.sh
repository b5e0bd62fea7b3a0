#!/usr/bin/env bash
# make_lookup_table --family: every family writes every architecture of the
# space once with its columns; the default table keeps its columns; the
# noisy family's searched accuracy is noisier than its test accuracy; an
# unknown family is refused naming the known ones.
set -euo pipefail
bin="$(dirname "$0")/make_lookup_table"
out=${TEST_TMPDIR:-$(mktemp -d)}
fail() { echo "FAIL: $*" >&2; exit 1; }
"$bin" --num_nodes=3 --out="$out/structured.csv" >/dev/null
[[ $(head -1 "$out/structured.csv") == "arch,accuracy,parameters,flops" ]] ||
  fail "structured header: $(head -1 "$out/structured.csv")"
for family in additive interacting noisy; do
  "$bin" --num_nodes=3 --family="$family" --out="$out/$family.csv" >/dev/null
  [[ $(head -1 "$out/$family.csv") == "arch,accuracy,test_accuracy,parameters,flops,train_seconds" ]] ||
    fail "$family header: $(head -1 "$out/$family.csv")"
  # 3 edges x 5 operations: 125 architectures, each once, accuracies in [0, 1].
  [[ $(tail -n +2 "$out/$family.csv" | wc -l) -eq 125 ]] || fail "$family: not 125 rows"
  [[ $(tail -n +2 "$out/$family.csv" | cut -d, -f1 | sort -u | wc -l) -eq 125 ]] ||
    fail "$family: repeated architectures"
  awk -F, -v f="$family" 'NR > 1 && !($2 >= 0 && $2 <= 1 && $3 >= 0 && $3 <= 1 && $6 >= 30) {
    print "FAIL: " f " line " NR ": " $0; bad = 1 } END { exit bad }' "$out/$family.csv"
done
# The families are different landscapes over the same architectures.
cmp -s <(cut -d, -f2 "$out/additive.csv") <(cut -d, -f2 "$out/interacting.csv") &&
  fail "additive and interacting tables have the same accuracies"
# Noise: accuracy - test_accuracy spreads ~0.03 on the noisy table, ~0.006 on the others.
spread() { awk -F, 'NR > 1 { d = $2 - $3; s += d * d; n++ } END { printf "%.4f", sqrt(s / n) }' "$1"; }
noisy=$(spread "$out/noisy.csv")
additive=$(spread "$out/additive.csv")
awk -v a="$noisy" -v b="$additive" 'BEGIN { exit !(a > 0.02 && b < 0.012) }' ||
  fail "noise spreads: noisy $noisy, additive $additive"
# --curve_epochs with a family: the same rows plus a curve ending at each row's accuracy.
"$bin" --num_nodes=3 --family=additive --curve_epochs=4 --out="$out/curves.csv" >/dev/null
[[ $(head -1 "$out/curves.csv") == "arch,accuracy,test_accuracy,parameters,flops,train_seconds,val_accuracy_e1,val_accuracy_e2,val_accuracy_e3,val_accuracy_e4,seconds_per_epoch" ]] ||
  fail "curve header: $(head -1 "$out/curves.csv")"
cmp -s <(cut -d, -f1-6 "$out/curves.csv" | tail -n +2) <(tail -n +2 "$out/additive.csv") ||
  fail "a curve changed the additive table's columns"
awk -F, 'NR > 1 && $10 != $2 { print "FAIL: curve line " NR " ends at " $10 ", accuracy " $2; bad = 1 }
  END { exit bad }' "$out/curves.csv"
if "$bin" --family=rugged --out="$out/x.csv" 2>"$out/err"; then fail "unknown family accepted"; fi
grep -q "unknown family 'rugged' (known: structured, additive, interacting, noisy)" "$out/err" ||
  fail "unknown family message: $(cat "$out/err")"
echo PASS
