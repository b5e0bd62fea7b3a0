#!/usr/bin/env bash
# Checks the Kubernetes deployment (deploy/k8s, docs/deploy.md) offline:
#   a. `kubectl kustomize` renders every overlay and the optional ServiceMonitor;
#   b. every rendered object validates against the Kubernetes OpenAPI schema,
#      unknown fields included (deploy/validate/validate.js), and the validator
#      rejects a broken object and a misspelt field;
#   c. every flag a container passes exists in the binary it runs, S agrees:
#      parameter-server replicas == --num_shards == entries of the controller's
#      --parameter_servers, and every container sets a non-loopback --host (the
#      binaries bind 127.0.0.1 by default) (deploy/validate/check_flags.js); the
#      check rejects an unknown flag, an S mismatch and --host=127.0.0.1; every
#      emptyDir has a sizeLimit, $(POD_NAMESPACE) addresses resolve (the dev
#      overlay also renders and checks in another namespace), the tls
#      overlay's flags name files its Secret volumes mount, and the
#      NetworkPolicies name real ports and let workers reach the controller
#      and the controller reach the shards;
#      a worker run from a bundle (overlays/user-image) runs DEST/bin/nas_worker
#      from the volume its init container's nas-bundle-worker DEST writes;
#   d. the PrometheusRule's groups pass `promtool check rules`, and
#      `promtool test rules` with deploy/validate/alerts_test.yml proves every
#      alert fires when it should and not otherwise;
#   e. deploy/docker/bundle_worker.sh bundles the built nas_worker so that it
#      runs and loads every library from the bundle (none from the system),
#      and the check notices a library missing from a bundle.
#   bash tools/check_deploy.sh [BAZEL_BIN]     (default: bazel-bin, after a build)
# Needs kubectl, node, promtool and deploy/validate/node_modules (tools/setup.sh installs
# them). Ends with "check_deploy: all N checks passed", or exits 1 naming
# how many failed.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir="${1:-bazel-bin}"
validate_dir=deploy/validate

die() { echo "check_deploy: $*" >&2; exit 1; }
command -v kubectl >/dev/null || die "kubectl is missing (tools/setup.sh installs kubernetes-client)."
command -v node >/dev/null || die "node is missing (tools/setup.sh installs nodejs)."
command -v promtool >/dev/null || die "promtool is missing (tools/setup.sh installs prometheus)."
[[ -d "$validate_dir/node_modules/kubernetes-models" ]] ||
  die "$validate_dir/node_modules is missing: run tools/setup.sh (npm ci in $validate_dir)."
for b in parameter_server/nas_parameter_server controller/nas_controller worker/nas_worker client/nasctl; do
  [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is missing: build first (bazel build //...)."
done

work="$(mktemp -d -t nas-check-deploy.XXXXXX)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# Renders a kustomization into $work/NAME.yaml. kustomize v5 warns about the
# v2-era fields the manifests keep for old kubectl (see deploy/k8s/base); those
# warnings are dropped, anything else on stderr is shown.
render() {
  local name="$1" dir="$2"
  if kubectl kustomize "$dir" >"$work/$name.yaml" 2>"$work/$name.err"; then
    grep -vE "^# Warning: '(bases|patchesStrategicMerge)' is deprecated" "$work/$name.err" >&2 || true
    if [[ -s "$work/$name.yaml" ]]; then
      pass "render $dir"
      return 0
    fi
    fail "render $dir: empty output"
  else
    cat "$work/$name.err" >&2
    fail "render $dir"
  fi
  return 1
}

overlays=()
for dir in deploy/k8s/overlays/*/; do
  [[ -f "$dir/kustomization.yaml" ]] && overlays+=("$(basename "$dir")")
done
((${#overlays[@]})) || die "no overlays with a kustomization.yaml under deploy/k8s/overlays"

for overlay in "${overlays[@]}"; do
  echo "== overlay $overlay"
  render "$overlay" "deploy/k8s/overlays/$overlay" || continue
  if node "$validate_dir/validate.js" --label "$overlay" <"$work/$overlay.yaml" >"$work/$overlay.validate" 2>&1; then
    pass "schema $overlay: $(tail -n 1 "$work/$overlay.validate" | sed 's/^validate ([^)]*): //')"
  else
    cat "$work/$overlay.validate"
    fail "schema $overlay"
  fi
  if node "$validate_dir/check_flags.js" --overlay "$overlay" --bin_dir "$bin_dir" \
      <"$work/$overlay.yaml" >"$work/$overlay.flags" 2>&1; then
    pass "flags $overlay: $(tail -n 1 "$work/$overlay.flags" | sed 's/^check_flags ([^)]*): //')"
  else
    cat "$work/$overlay.flags"
    fail "flags $overlay"
  fi
done

echo "== optional ServiceMonitor"
if render servicemonitor deploy/k8s/servicemonitor; then
  if node "$validate_dir/validate.js" --label servicemonitor <"$work/servicemonitor.yaml" >"$work/sm.validate" 2>&1; then
    pass "schema servicemonitor: $(tail -n 1 "$work/sm.validate" | sed 's/^validate ([^)]*): //')"
  else
    cat "$work/sm.validate"
    fail "schema servicemonitor"
  fi
fi

echo "== alerts (promtool)"
mkdir -p "$work/rules"
if node "$validate_dir/extract_rules.js" <"$work/servicemonitor.yaml" >"$work/rules/rules.yml" 2>"$work/rules.err" &&
    promtool check rules "$work/rules/rules.yml" >"$work/rules.check" 2>&1; then
  pass "promtool check rules: $(grep -o '[0-9]* rules found' "$work/rules.check")"
else
  cat "$work/rules.err" "$work/rules.check" 2>/dev/null
  fail "promtool check rules"
fi
cp "$validate_dir/alerts_test.yml" "$work/rules/"
if promtool test rules "$work/rules/alerts_test.yml" >"$work/rules.test" 2>&1; then
  pass "promtool test rules $validate_dir/alerts_test.yml"
else
  cat "$work/rules.test"
  fail "promtool test rules $validate_dir/alerts_test.yml"
fi

# e. The worker bundle for other images: the wrapper runs, and the loader
# takes every library of nas_worker from the bundle.
echo "== nas_worker bundled for the user's own image (deploy/docker/bundle_worker.sh)"
# Prints the libraries the bundled nas_worker loads from outside the bundle.
libraries_outside() {
  local bundle="$1" loader
  loader="$(basename "$(ls "$bundle"/lib/ld-linux*)")"
  LD_DEBUG=libs "$bundle/lib/$loader" --library-path "$bundle/lib" "$bundle/lib/nas_worker" --version 2>&1 >/dev/null |
    sed -n 's/^ *[0-9]*:[[:space:]]*calling init: //p' | grep -v "^$bundle/lib/" || true
}
if deploy/docker/bundle_worker.sh "$work/bundle" "$bin_dir/worker/nas_worker" >"$work/bundle.log" 2>&1 &&
    "$work/bundle/bin/nas_worker" --version 2>&1 | grep -q '^nas_worker'; then
  outside="$(libraries_outside "$work/bundle")"
  if [[ -z "$outside" ]]; then
    pass "bundle: $(tail -n 1 "$work/bundle.log" | sed 's/^nas-bundle-worker: //; s/; run .*//'), every library loaded from it"
  else
    fail "bundle: nas_worker loads libraries from outside the bundle: $outside"
  fi
  # A library missing from the bundle must show.
  victim="$(ls "$work/bundle/lib" | grep -v -e '^ld-linux' -e '^nas_worker$' | grep '^libc\.so' || ls "$work/bundle/lib" | grep '^lib' | head -n 1)"
  rm "$work/bundle/lib/$victim"
  if libraries_outside "$work/bundle" | grep -q "/$victim$"; then
    pass "bundle: a bundle without $victim is noticed"
  else
    fail "bundle: removing $victim from the bundle went unnoticed"
  fi
else
  cat "$work/bundle.log"
  fail "bundle: deploy/docker/bundle_worker.sh or the bundled nas_worker --version failed"
fi
rm -rf "$work/bundle"

echo "== the dev overlay in another namespace"
mkdir -p "$work/elsewhere"
printf 'namespace: nas-elsewhere\nbases:\n  - %s\n' "$(realpath --relative-to="$work/elsewhere" deploy/k8s/overlays/dev)" \
  >"$work/elsewhere/kustomization.yaml"
if render elsewhere "$work/elsewhere"; then
  if node "$validate_dir/check_flags.js" --overlay elsewhere --bin_dir "$bin_dir" \
      <"$work/elsewhere.yaml" >"$work/elsewhere.flags" 2>&1 &&
      grep -q '^  namespace: nas-elsewhere$' "$work/elsewhere.yaml"; then
    pass "flags elsewhere: the addresses follow the namespace"
  else
    cat "$work/elsewhere.flags"
    fail "flags elsewhere"
  fi
fi

# The checks must be able to fail: each broken input below must be rejected.
echo "== the checks reject broken manifests"
expect_rejected() {
  local what="$1" script="$2"; shift 2
  if node "$validate_dir/$script" "$@" >"$work/negative.out" 2>&1; then
    fail "$what was accepted"
  elif grep -qe "$expected_message" "$work/negative.out"; then
    pass "$what is rejected"
  else
    cat "$work/negative.out"
    fail "$what: rejected, but not with '$expected_message'"
  fi
}
expected_message='/spec/replicas: must be integer'
expect_rejected "a StatefulSet with replicas: \"three\"" validate.js --label negative <<'EOF'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: broken}
spec:
  replicas: "three"
  serviceName: broken
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec: {containers: [{name: broken, image: nas-service}]}
EOF
expected_message='unknown kind'
expect_rejected "an object of an unknown kind" validate.js --label negative <<'EOF'
apiVersion: v1
kind: Servic
metadata: {name: typo}
EOF
first="${overlays[0]}"
if [[ -s "$work/$first.yaml" ]]; then
  expected_message='readOnlyRootFilesytem: unknown field'
  sed 's/readOnlyRootFilesystem:/readOnlyRootFilesytem:/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "a misspelt readOnlyRootFilesytem ($first)" validate.js --label negative <"$work/broken.yaml"
  expected_message='emptyDir without a sizeLimit'
  sed '/sizeLimit:/d; s/^\( *\)emptyDir:$/\1emptyDir: {}/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "an emptyDir without a sizeLimit ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='which the container.s env does not define'
  sed 's/\$(POD_NAMESPACE)/$(POD_NAMESPAC)/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "an address naming an undefined variable ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='the NetworkPolicies block nas_controller from reaching nas_parameter_server'
  sed 's/^    - port: 7080$/    - port: 7081/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "a NetworkPolicy that blocks the controller from the shards ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='ingress port grpcx is not a container port'
  sed 's/^    - port: grpc$/    - port: grpcx/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "a NetworkPolicy naming a port the pods lack ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='expected nas-parameter-server-0.nas-parameter-server.nas.svc:7080'
  sed 's/\$(POD_NAMESPACE)/other/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "addresses in a namespace other than the objects' ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='--no_such_flag is not a flag of nas_controller'
  sed 's/^\( *\)- --parameter_servers=/\1- --no_such_flag=1\n\1- --parameter_servers=/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "an unknown controller flag ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='--num_shards=.* but the StatefulSet has replicas'
  sed 's/--num_shards=\([0-9]*\)/--num_shards=1\1/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "--num_shards disagreeing with replicas ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='--parameter_servers lists'
  sed 's/\(--parameter_servers=[^,]*\),.*/\1/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "a --parameter_servers list shorter than S ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='--host is 127.0.0.1: Services, probes and Prometheus cannot reach'
  sed 's/--host=0\.0\.0\.0/--host=127.0.0.1/' "$work/$first.yaml" >"$work/broken.yaml"
  expect_rejected "--host on loopback ($first)" check_flags.js --overlay "$first-broken" --bin_dir "$bin_dir" <"$work/broken.yaml"
else
  fail "negative flag checks: overlay $first did not render"
fi
if [[ -s "$work/tls.yaml" ]]; then
  expected_message='Secret nas-tokens is mounted at /etc/nas/tokens without worker-token'
  sed 's/path: worker-token$/path: worker-tokn/' "$work/tls.yaml" >"$work/broken.yaml"
  expect_rejected "a token flag naming a key the Secret volume lacks (tls)" check_flags.js --overlay tls-broken --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='livenessProbe runs nasctl health with --server=127.0.0.1:7070, expected --server=127.0.0.1:7080'
  sed 's/--server=127.0.0.1:7080/--server=127.0.0.1:7070/' "$work/tls.yaml" >"$work/broken.yaml"
  expect_rejected "a TLS probe asking the wrong port (tls)" check_flags.js --overlay tls-broken --bin_dir "$bin_dir" <"$work/broken.yaml"
else
  fail "negative tls checks: overlay tls did not render"
fi
if [[ -s "$work/user-image.yaml" ]]; then
  expected_message='command /opt/nasx/bin/nas_worker is neither /usr/local/bin/nas_worker nor DEST/bin/nas_worker'
  sed 's|- /opt/nas/bin/nas_worker$|- /opt/nasx/bin/nas_worker|' "$work/user-image.yaml" >"$work/broken.yaml"
  expect_rejected "a worker command outside its bundle (user-image)" check_flags.js --overlay user-image-broken --bin_dir "$bin_dir" <"$work/broken.yaml"
  expected_message='nas-bundle-worker writes /opt/other, which is not a writable volumeMount'
  sed 's|^        - /opt/nas$|        - /opt/other|' "$work/user-image.yaml" >"$work/broken.yaml"
  expect_rejected "a bundle written where no volume is mounted (user-image)" check_flags.js --overlay user-image-broken --bin_dir "$bin_dir" <"$work/broken.yaml"
else
  fail "negative bundle checks: overlay user-image did not render"
fi
if [[ -s "$work/rules/rules.yml" ]]; then
  sed 's/> 1800/> 999999/' "$work/rules/rules.yml" >"$work/rules/broken.yml"
  sed 's/rules.yml/broken.yml/' "$validate_dir/alerts_test.yml" >"$work/rules/broken_test.yml"
  if promtool test rules "$work/rules/broken_test.yml" >"$work/rules.broken" 2>&1; then
    fail "alerts_test.yml passes an alert that never fires"
  elif grep -q 'alertname: NasJobWithoutProgress' "$work/rules.broken"; then
    pass "alerts_test.yml rejects an alert that never fires"
  else
    cat "$work/rules.broken"
    fail "alerts_test.yml: failed, but not on NasJobWithoutProgress"
  fi
fi

echo
if ((failed)); then
  echo "check_deploy: ${failed} of $((passed + failed)) checks failed"
  exit 1
fi
echo "check_deploy: all ${passed} checks passed"
