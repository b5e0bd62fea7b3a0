#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ with clang (ASan + UBSan + libFuzzer),
# outside Bazel, replays fuzz/regressions/<target>/* and fuzzes each target for
# a while. docs/fuzzing.md describes the targets.
#
# Usage: tools/fuzz.sh [seconds_per_target] [target ...]
#   seconds_per_target  default 60; 0 only builds and replays the regressions.
#   target              job_spec search_space idx cifar lookup_csv numpy image (default: all)
# Environment:
#   FUZZ_OUT   build and work directory (default /tmp/nas-fuzz); objects are
#              cached there, so a re-run only recompiles what changed.
#   FUZZ_JOBS  parallel compiles (default 2).
#   CXX        default clang++.
# Prints one line per target:
#   fuzz <target>: <runs> runs in <s> s (<execs>/s, cov <n>), no crash
# and exits non-zero if a regression input or the fuzzer finds a crash, a
# sanitizer report, a timeout or an out-of-memory; the line names the input.
# New corpus entries go to a temporary copy, never into the repository.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
all_targets=(job_spec search_space idx cifar lookup_csv numpy image)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")
out="${FUZZ_OUT:-/tmp/nas-fuzz}"
jobs="${FUZZ_JOBS:-2}"
cxx="${CXX:-clang++}"

die() { echo "fuzz: $*" >&2; exit 1; }
[[ "$seconds" =~ ^[0-9]+$ ]] || die "seconds_per_target must be a whole number, got '$seconds'"
command -v "$cxx" >/dev/null || die "$cxx not found: bash tools/setup.sh installs clang"

# Generated protos every target links (message code only, no gRPC stubs).
protos=(job search_space task_service parameter_server)
# Repository sources each target links, besides fuzz/<target>_fuzzer.cc and
# the generated protos. job_spec.cc checks strategy names with the strategy
# registry, which links the (torch-free) strategies it creates; it also sizes
# the largest child (child_size) and checks early_stopping's epochs.
strategy_sources="controller/strategy_registry.cc controller/random_strategy.cc controller/reinforce_strategy.cc controller/evolution_strategy.cc controller/darts_strategy.cc controller/fast_policy.cc common/flat_tensor.cc"
# dataset.cc reads image folders (image_decode: libpng, libjpeg) and NumPy files (npy).
dataset_sources="worker/dataset.cc worker/image_decode.cc worker/npy.cc common/file_util.cc"
declare -A sources=(
  [job_spec]="common/printable.cc common/proto_yaml.cc controller/job_spec.cc controller/early_stopping.cc search_space/search_space.cc search_space/defaults.cc search_space/child_size.cc $strategy_sources"
  [search_space]="search_space/search_space.cc search_space/defaults.cc"
  [idx]="$dataset_sources"
  [cifar]="$dataset_sources"
  [numpy]="$dataset_sources"
  [image]="worker/image_decode.cc"
  [lookup_csv]="worker/lookup_evaluator.cc worker/reward.cc common/file_util.cc search_space/search_space.cc search_space/defaults.cc"
)
# Largest input per target: the parsers see whole files, but bigger inputs
# only slow the search down. CIFAR needs room for a few 3073-byte records.
declare -A max_len=(
  [job_spec]=16384 [search_space]=8192 [idx]=65536 [cifar]=65536 [lookup_csv]=16384 [numpy]=65536
  [image]=65536
)
for t in "${targets[@]}"; do
  [[ -n "${sources[$t]:-}" ]] || die "unknown target '$t' (known: ${all_targets[*]})"
done

mkdir -p "$out/gen/proto" "$out/obj" "$out/bin"

# --- Generated protos: Bazel's genrule (system protoc), copied out so later
# Bazel builds of other configurations cannot change them under us.
echo "fuzz: bazel build //proto:nas_cc_proto_gen"
(cd "$repo" && bazel build --noshow_progress //proto:nas_cc_proto_gen >"$out/bazel.log" 2>&1) ||
  { tail -n 30 "$out/bazel.log" >&2; die "bazel build //proto:nas_cc_proto_gen failed ($out/bazel.log)"; }
bazel_bin="$(cd "$repo" && bazel info bazel-bin 2>/dev/null)"
for f in "${protos[@]}"; do
  for ext in pb.h pb.cc; do
    src="$bazel_bin/proto/$f.$ext"
    [[ -f "$src" ]] || die "$src is missing after bazel build //proto:nas_cc_proto_gen"
    cmp -s "$src" "$out/gen/proto/$f.$ext" || cp -f "$src" "$out/gen/proto/$f.$ext"
    chmod u+w "$out/gen/proto/$f.$ext"
  done
done

# --- Compile (cached: an object is rebuilt when its flags or any file it
# includes changed; the compiler writes the include list to a .d file).
# System libraries are not instrumented; only our code and the generated
# protos get coverage feedback and sanitizer checks.
# shellcheck disable=SC2054  # the commas belong to -fsanitize=
cxxflags=(-std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -fno-omit-frame-pointer -I"$repo" -I"$out/gen" -w)
pkgs=(protobuf yaml-cpp zlib libpng libjpeg absl_status absl_statusor absl_strings absl_str_format absl_synchronization absl_hash absl_raw_hash_set)
# shellcheck disable=SC2207
ldlibs=($(pkg-config --libs "${pkgs[@]}")) || die "pkg-config cannot find ${pkgs[*]}: bash tools/setup.sh"
flags_sum="$(echo "$cxx ${cxxflags[*]}" | sha256sum | cut -c1-16)"

object_for() {  # source path (relative to repo or absolute) -> object path
  local name="${1#"$repo"/}"
  name="${name#"$out"/}"
  echo "$out/obj/${name//\//_}.$flags_sum.o"
}

stale() {  # object source: is object missing or older than anything it includes?
  local obj="$1" src="$2" dep="${1%.o}.d"
  [[ -f "$obj" && -f "$dep" ]] || return 0
  [[ "$src" -nt "$obj" ]] && return 0
  local f
  # shellcheck disable=SC2013  # a .d file lists words (paths), several per line
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
    [[ -e "$f" && "$f" -nt "$obj" ]] && return 0
  done
  return 1
}

compile() {  # source -> object, logs to object.log
  local src="$1" obj
  obj="$(object_for "$src")"
  if "$cxx" "${cxxflags[@]}" -MMD -MF "${obj%.o}.d" -c "$src" -o "$obj.tmp" >"$obj.log" 2>&1; then
    mv -f "$obj.tmp" "$obj"
  else
    cat "$obj.log" >&2
    return 1
  fi
}

needed=()
for p in "${protos[@]}"; do needed+=("$out/gen/proto/$p.pb.cc"); done
for t in "${targets[@]}"; do
  needed+=("$repo/fuzz/${t}_fuzzer.cc")
  for s in ${sources[$t]}; do needed+=("$repo/$s"); done
done
mapfile -t needed < <(printf '%s\n' "${needed[@]}" | sort -u)
todo=()
for src in "${needed[@]}"; do
  stale "$(object_for "$src")" "$src" && todo+=("$src")
done
if ((${#todo[@]})); then
  echo "fuzz: compiling ${#todo[@]} sources (${jobs} at a time)"
  pids=()
  failed=0
  for src in "${todo[@]}"; do
    compile "$src" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  ((failed == 0)) || die "compile failed (logs in $out/obj/*.log)"
fi

for t in "${targets[@]}"; do
  objs=("$(object_for "$repo/fuzz/${t}_fuzzer.cc")")
  for s in ${sources[$t]}; do objs+=("$(object_for "$repo/$s")"); done
  for p in "${protos[@]}"; do objs+=("$(object_for "$out/gen/proto/$p.pb.cc")"); done
  bin="$out/bin/${t}_fuzzer"
  relink=0
  [[ -f "$bin" ]] || relink=1
  for o in "${objs[@]}"; do [[ "$o" -nt "$bin" ]] && relink=1; done
  if ((relink)); then
    "$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" "${ldlibs[@]}" -o "$bin.tmp" ||
      die "link of ${t}_fuzzer failed"
    mv -f "$bin.tmp" "$bin"
  fi
done

# --- Run.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
common_flags=(-rss_limit_mb=2048 -timeout=20)
status=0
for t in "${targets[@]}"; do
  bin="$out/bin/${t}_fuzzer"
  work="$out/work/$t"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  # 1. Every committed regression input must pass, whole (no -max_len here:
  # libFuzzer would cut the input short).
  mapfile -t regressions < <(find "$repo/fuzz/regressions/$t" -type f ! -name '*.md' 2>/dev/null | sort)
  if ((${#regressions[@]})); then
    if ! "$bin" "${common_flags[@]}" "${regressions[@]}" >"$work/regressions.log" 2>&1; then
      crashed="$(grep -o 'Running: .*' "$work/regressions.log" | tail -n 1 | cut -c10-)"
      echo "fuzz $t: FAILED replaying regression ${crashed:-?} (log $work/regressions.log)"
      status=1
      continue
    fi
  fi
  ((seconds > 0)) || { echo "fuzz $t: ${#regressions[@]} regression inputs pass"; continue; }

  # 2. Fuzz from a copy of the seed corpus.
  flags=("${common_flags[@]}" -max_len="${max_len[$t]}" -artifact_prefix="$work/artifacts/")
  [[ -f "$repo/fuzz/dicts/$t.dict" ]] && flags+=(-dict="$repo/fuzz/dicts/$t.dict")
  cp -f "$repo/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
  if "$bin" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 \
      "$work/corpus" >"$work/fuzz.log" 2>&1; then
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/fuzz.log" | tail -n 1)"
    cov="$(grep -o 'cov: [0-9]*' "$work/fuzz.log" | tail -n 1 | cut -c6-)"
    echo "fuzz $t: ${runs:-?} runs in $seconds s (${rate:-?}/s, cov ${cov:-?}), no crash"
  else
    artifact="$(find "$work/artifacts" -type f | head -n 1)"
    echo "fuzz $t: CRASH ${artifact:-(no artifact)} (log $work/fuzz.log; copy the input to fuzz/regressions/$t/ once fixed)"
    grep -m 3 -E 'ERROR: |runtime error|SUMMARY|_fuzzer: ' "$work/fuzz.log" | sed 's/^/    /' || true
    status=1
  fi
done
exit "$status"
