#!/usr/bin/env node
// Checks that rendered manifests agree with the binaries they run.
//
//   kubectl kustomize deploy/k8s/overlays/gpu | \
//     node deploy/validate/check_flags.js --overlay gpu --bin_dir bazel-bin
//
// 1. Every flag a container passes (command, args, and the lines of any
//    --flagfile it mounts from a rendered ConfigMap) is defined by the binary the
//    container runs, as that binary's --helpfull lists it.
// 2. S agrees everywhere: the parameter-server StatefulSet's replicas ==
//    its --num_shards == the number of entries in the controller's
//    --parameter_servers, and entry i is shard i's headless-Service DNS name
//    (<statefulset>-<i>.<service>.<namespace>.svc:<port>).
// 3. Ports agree: --metrics_port == the prometheus.io/port annotation == the
//    "metrics" container port; a gRPC probe probes --port; the workers'
//    --controller names a Service port that reaches the controller's --port.
// 4. Every container sets --host to an address other pods can reach: the
//    binaries bind 127.0.0.1 unless --host says otherwise.
// 5. A flag naming a file under a Secret volume names a key the volume mounts
//    (the tls overlay's certificates and tokens); an exec probe running
//    `nasctl health` asks 127.0.0.1 on the container's --port.
// 6. With NetworkPolicies: every port a policy names exists on the pods it
//    selects, and the policies let the workers reach the controller's --port
//    and the controller reach the parameter servers' --port (egress of the
//    caller and ingress of the callee both).
// 7. Every emptyDir has a sizeLimit (an unbounded /tmp can fill the node's disk).
// 8. A binary run from outside the image's /usr/local/bin (a worker in the
//    user's own image, overlays/user-image) is DEST/bin/<binary> of a bundle an
//    init container of the same pod writes with nas-bundle-worker DEST
//    (deploy/docker/bundle_worker.sh), from a volume both mount at DEST.
// Before the checks, $(VAR) in command and args is expanded as the kubelet does,
// from the container's env (plain values and the fieldRef metadata.namespace,
// which is the object's rendered namespace); a reference to an undefined
// variable is an error (the kubelet would pass it through literally).
// Every failure names the overlay, the object and the flag; exits 1 on any.
'use strict';

const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const YAML = require('yaml');

// Binary name (the basename of a container's command[0]) -> path under bazel-bin.
const BINARIES = {
  nas_parameter_server: 'parameter_server/nas_parameter_server',
  nas_controller: 'controller/nas_controller',
  nas_worker: 'worker/nas_worker',
  nasctl: 'client/nasctl',
};
// The init container command that copies nas_worker into a volume (rule 8).
const BUNDLER = 'nas-bundle-worker';
const DEFAULT_PORTS = { nas_parameter_server: 7080, nas_controller: 7070 };
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

let overlay = '';
const problems = [];
function fail(where, message) {
  problems.push(`check_flags (${overlay}): ${where}: ${message}`);
}

function parseArgs(argv) {
  const options = { overlay: '', binDir: '' };
  for (let i = 0; i < argv.length; ++i) {
    if (argv[i] === '--overlay' && i + 1 < argv.length) options.overlay = argv[++i];
    else if (argv[i] === '--bin_dir' && i + 1 < argv.length) options.binDir = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!options.overlay || !options.binDir) {
    throw new Error('usage: check_flags.js --overlay NAME --bin_dir BAZEL_BIN < manifests.yaml');
  }
  return options;
}

// The flag names `binary --helpfull` lists ("    --name (help); default: ...").
const helpCache = new Map();
function flagsOf(binDir, binary) {
  if (helpCache.has(binary)) return helpCache.get(binary);
  const file = path.join(binDir, BINARIES[binary]);
  if (!fs.existsSync(file)) {
    throw new Error(`${file} is missing: build it first (bazel build //...)`);
  }
  let output;
  try {
    output = execFileSync(file, ['--helpfull'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    // absl exits non-zero after --helpfull on some versions; the text is what matters.
    output = `${e.stdout || ''}${e.stderr || ''}`;
  }
  const flags = new Map();
  for (const match of output.matchAll(/^\s+--([A-Za-z0-9_]+) \(/gm)) flags.set(match[1], true);
  if (flags.size < 5 || !flags.has('flagfile')) {
    throw new Error(`could not read the flags of ${file} from its --helpfull output`);
  }
  helpCache.set(binary, flags);
  return flags;
}

function nameOf(object) {
  return `${object.kind}/${object.metadata && object.metadata.name}`;
}

// Resolves a --flagfile path to the text of the ConfigMap key mounted there.
function flagfileText(file, container, podSpec, configMaps, where) {
  const mount = (container.volumeMounts || [])
      .filter((m) => file === m.mountPath || file.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return fail(where, `--flagfile=${file}: no volumeMount contains this path`);
  const volume = (podSpec.volumes || []).find((v) => v.name === mount.name);
  if (!volume || !volume.configMap) {
    return fail(where, `--flagfile=${file}: volume ${mount.name} is not a ConfigMap volume`);
  }
  // A subPath mount is the file itself; a directory mount holds one file per key.
  if (mount.subPath && file !== mount.mountPath) {
    return fail(where, `--flagfile=${file}: ${mount.mountPath} is a single file (subPath)`);
  }
  let key = mount.subPath ? mount.subPath : path.posix.relative(mount.mountPath, file);
  const item = (volume.configMap.items || []).find((i) => i.path === key);
  if (item) key = item.key;
  const configMap = configMaps.get(volume.configMap.name);
  if (!configMap) {
    return fail(where, `--flagfile=${file}: ConfigMap ${volume.configMap.name} is not in the rendered manifests`);
  }
  const text = configMap.data && configMap.data[key];
  if (typeof text !== 'string') {
    return fail(where, `--flagfile=${file}: ConfigMap ${volume.configMap.name} has no key ${key}`);
  }
  return text;
}

// The container's environment as the kubelet resolves it for $(VAR)
// expansion: plain values and the pod's namespace from the downward API.
function containerEnv(object, container, where) {
  const env = new Map();
  for (const variable of container.env || []) {
    if (typeof variable.value === 'string') {
      env.set(variable.name, expand(variable.value, env, where));
    } else if (variable.valueFrom && variable.valueFrom.fieldRef &&
               variable.valueFrom.fieldRef.fieldPath === 'metadata.namespace') {
      env.set(variable.name, object.metadata.namespace || 'default');
    }
  }
  return env;
}

// Kubernetes' $(VAR) expansion of command and args: $$ is a literal $.
function expand(word, env, where) {
  return word.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, name) => {
    if (match === '$$') return '$';
    if (!env.has(name)) {
      fail(where, `'${word}' refers to $(${name}), which the container's env does not define`);
      return match;
    }
    return env.get(name);
  });
}

// The container's flags in the order the binary sees them, flagfiles expanded:
// [{name, value, source}], checked against the binary's --helpfull.
function containerFlags(binDir, binary, object, container, podSpec, configMaps, where) {
  const known = flagsOf(binDir, binary);
  const flags = [];
  const visit = (words, source, depth) => {
    for (const word of words) {
      const match = /^--?([A-Za-z0-9_]+)(?:=([\s\S]*))?$/.exec(word);
      if (!match) {
        fail(where, `${source}: '${word}' is not a --flag (${binary} takes no positional arguments)`);
        continue;
      }
      let [, name, value] = match;
      if (!known.has(name) && name.startsWith('no') && known.has(name.slice(2)) && value === undefined) {
        name = name.slice(2);
        value = 'false';
      }
      if (!known.has(name)) {
        fail(where, `${source}: --${name} is not a flag of ${binary} (not in its --helpfull)`);
        continue;
      }
      if (name === 'flagfile') {
        if (depth > 3) {
          fail(where, `${source}: --flagfile nested too deeply`);
          continue;
        }
        for (const file of (value || '').split(',').filter(Boolean)) {
          const text = flagfileText(file, container, podSpec, configMaps, where);
          if (typeof text !== 'string') continue;
          const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
          visit(lines, `flagfile ${file}`, depth + 1);
        }
        continue;
      }
      flags.push({ name, value: value === undefined ? 'true' : value, source });
    }
  };
  const command = container.command || [];
  const env = containerEnv(object, container, where);
  visit([...command.slice(1), ...(container.args || [])].map((word) => expand(word, env, where)), 'args', 0);
  return flags;
}

function lastValue(flags, name) {
  const found = flags.filter((f) => f.name === name);
  return found.length ? found[found.length - 1].value : undefined;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  overlay = options.overlay;
  const objects = YAML.parseAllDocuments(fs.readFileSync(0, 'utf8'))
      .map((d) => d.toJS()).filter((o) => o && typeof o === 'object');
  if (!objects.length) throw new Error('no objects on stdin');
  const configMaps = new Map(objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata.name, o]));
  const services = objects.filter((o) => o.kind === 'Service');

  // Every container of every workload, with its binary and effective flags.
  const runs = [];
  const bundles = [];
  for (const object of objects.filter((o) => WORKLOAD_KINDS.has(o.kind))) {
    const template = object.spec && object.spec.template;
    const podSpec = template && template.spec;
    if (!podSpec) {
      fail(nameOf(object), 'no pod template');
      continue;
    }
    for (const container of [...(podSpec.initContainers || []), ...(podSpec.containers || [])]) {
      const where = `${nameOf(object)} container ${container.name}`;
      const command = container.command || [];
      if (!command.length) {
        fail(where, 'no command: name the binary (the image runs any of them)');
        continue;
      }
      const binary = path.posix.basename(command[0]);
      if (binary === BUNDLER && (podSpec.initContainers || []).includes(container)) {
        bundles.push({ object, podSpec, container, dest: command[1] || (container.args || [])[0] || '', where });
        continue;
      }
      if (!BINARIES[binary]) {
        fail(where, `command ${command[0]} is not one of ${Object.keys(BINARIES).join(', ')}`);
        continue;
      }
      const flags = containerFlags(options.binDir, binary, object, container, podSpec, configMaps, where);
      runs.push({ object, podSpec, template, container, binary, flags, where });
    }
  }
  const runsOf = (binary) => runs.filter((r) => r.binary === binary);

  // Bundles: written by an init container into a mounted volume, run from
  // the same volume at the same path.
  const mountAt = (container, dir) => (container.volumeMounts || []).find((m) => m.mountPath === dir);
  for (const bundle of bundles) {
    if (!bundle.dest.startsWith('/')) {
      fail(bundle.where, `${BUNDLER} needs an absolute DEST, got '${bundle.dest}'`);
    } else if (!mountAt(bundle.container, bundle.dest) || mountAt(bundle.container, bundle.dest).readOnly) {
      fail(bundle.where, `${BUNDLER} writes ${bundle.dest}, which is not a writable volumeMount of the container`);
    }
  }
  let bundled = 0;
  for (const run of runs) {
    const command = run.container.command[0];
    if (command === `/usr/local/bin/${run.binary}`) continue;
    const bundle = bundles.find((b) => b.object === run.object && command === `${b.dest}/bin/${run.binary}`);
    if (!bundle) {
      fail(run.where, `command ${command} is neither /usr/local/bin/${run.binary} nor DEST/bin/${run.binary} ` +
           `of a bundle an init container writes with ${BUNDLER} DEST`);
      continue;
    }
    const written = mountAt(bundle.container, bundle.dest);
    const read = mountAt(run.container, bundle.dest);
    if (!read || !written || read.name !== written.name) {
      fail(run.where, `runs ${command}, but does not mount volume ${written ? written.name : '?'} at ` +
           `${bundle.dest}, where init container ${bundle.container.name} writes the bundle`);
      continue;
    }
    ++bundled;
  }

  // Every emptyDir is bounded.
  let emptyDirs = 0;
  for (const object of objects.filter((o) => WORKLOAD_KINDS.has(o.kind))) {
    const podSpec = object.spec && object.spec.template && object.spec.template.spec;
    for (const volume of (podSpec && podSpec.volumes) || []) {
      if (!('emptyDir' in volume)) continue;
      ++emptyDirs;
      if (!volume.emptyDir || !volume.emptyDir.sizeLimit) {
        fail(`${nameOf(object)} volume ${volume.name}`, 'emptyDir without a sizeLimit: it may fill the node\'s disk');
      }
    }
  }
  let checkedFlags = 0;
  for (const run of runs) checkedFlags += run.flags.length;

  // Ports: --metrics_port, the scrape annotation, the container port; probes.
  for (const run of runs) {
    const metricsPort = lastValue(run.flags, 'metrics_port');
    const annotations = (run.template.metadata && run.template.metadata.annotations) || {};
    const metricsContainerPort = (run.container.ports || []).find((p) => p.name === 'metrics');
    if (annotations['prometheus.io/scrape'] !== 'true') {
      fail(run.where, 'pod template lacks the annotation prometheus.io/scrape: "true"');
    }
    if (metricsPort === undefined || Number(metricsPort) <= 0) {
      fail(run.where, `--metrics_port must be a fixed port for Prometheus (got ${metricsPort === undefined ? 'the default 0' : metricsPort})`);
    } else {
      if (annotations['prometheus.io/port'] !== String(Number(metricsPort))) {
        fail(run.where, `--metrics_port=${metricsPort} but the prometheus.io/port annotation is ${annotations['prometheus.io/port']}`);
      }
      if (!metricsContainerPort || metricsContainerPort.containerPort !== Number(metricsPort)) {
        fail(run.where, `--metrics_port=${metricsPort} but the container port named metrics is ${metricsContainerPort ? metricsContainerPort.containerPort : 'missing'}`);
      }
    }
    const host = lastValue(run.flags, 'host');
    if (host === undefined || ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(host)) {
      fail(run.where, `--host is ${host === undefined ? 'unset (the binaries bind 127.0.0.1)' : host}: Services, probes and Prometheus cannot reach a loopback address; set --host=0.0.0.0`);
    }
    const grpcPort = Number(lastValue(run.flags, 'port') || -1) > 0
        ? Number(lastValue(run.flags, 'port')) : DEFAULT_PORTS[run.binary];
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const spec = run.container[probe];
      if (!spec) {
        if (probe !== 'startupProbe') fail(run.where, `no ${probe}`);
        continue;
      }
      if (spec.grpc && spec.grpc.port !== grpcPort) {
        fail(run.where, `${probe} probes gRPC port ${spec.grpc.port} but --port is ${grpcPort}`);
      }
    }
  }

  // Files from Secrets: the mount exists and projects that key.
  for (const run of runs) {
    for (const flag of run.flags) {
      if (typeof flag.value !== 'string' || !flag.value.startsWith('/')) continue;
      const mount = (run.container.volumeMounts || [])
          .filter((m) => flag.value.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
          .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      const volume = mount && (run.podSpec.volumes || []).find((v) => v.name === mount.name);
      if (!volume || !volume.secret) continue;
      const key = path.posix.relative(mount.mountPath, flag.value);
      if (volume.secret.items && !volume.secret.items.some((i) => i.path === key)) {
        fail(run.where, `--${flag.name}=${flag.value}: Secret ${volume.secret.secretName} is mounted at ${mount.mountPath} without ${key}`);
      }
    }
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const command = (run.container[probe] && run.container[probe].exec && run.container[probe].exec.command) || [];
      if (path.posix.basename(command[0] || '') !== 'nasctl' || command[1] !== 'health') continue;
      const server = command.find((w) => w.startsWith('--server='));
      const grpcPort = Number(lastValue(run.flags, 'port') || -1) > 0
          ? Number(lastValue(run.flags, 'port')) : DEFAULT_PORTS[run.binary];
      if (server !== `--server=127.0.0.1:${grpcPort}`) {
        fail(run.where, `${probe} runs nasctl health with ${server || 'no --server'}, expected --server=127.0.0.1:${grpcPort}`);
      }
    }
  }

  // NetworkPolicies: ports exist, and the gRPC flows the processes need pass.
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  const selects = (selector, run) => {
    const labels = (run.template.metadata && run.template.metadata.labels) || {};
    return Object.entries((selector && selector.matchLabels) || {}).every(([k, v]) => labels[k] === v);
  };
  const portOf = (run, port) => (typeof port === 'number' ? port
      : ((run.container.ports || []).find((p) => p.name === port) || {}).containerPort);
  for (const policy of policies) {
    const selected = runs.filter((r) => selects(policy.spec.podSelector, r));
    for (const rule of policy.spec.ingress || []) {
      for (const port of rule.ports || []) {
        if (!selected.some((r) => portOf(r, port.port) !== undefined &&
                                  (r.container.ports || []).some((p) => p.containerPort === portOf(r, port.port)))) {
          fail(nameOf(policy), `ingress port ${port.port} is not a container port of the pods it selects`);
        }
      }
    }
  }
  // Whether `policies` let `from` open a connection to `to` on container port `port`.
  const allows = (from, to, port) => {
    const egress = policies.filter((p) => (p.spec.policyTypes || []).includes('Egress') && selects(p.spec.podSelector, from));
    const ingress = policies.filter((p) => (p.spec.policyTypes || ['Ingress']).includes('Ingress') && selects(p.spec.podSelector, to));
    const peerMatches = (peer, run) => !peer.namespaceSelector && !peer.ipBlock && selects(peer.podSelector, run);
    const portMatches = (ports, run) => !ports || ports.some((p) => portOf(run, p.port) === port);
    const out = !egress.length || egress.some((p) => (p.spec.egress || []).some((rule) =>
        (!rule.to || rule.to.some((peer) => peerMatches(peer, to))) && portMatches(rule.ports, to)));
    const into = !ingress.length || ingress.some((p) => (p.spec.ingress || []).some((rule) =>
        (!rule.from || rule.from.some((peer) => peerMatches(peer, from))) && portMatches(rule.ports, to)));
    return out && into;
  };
  if (policies.length) {
    const grpcPort = (run) => (Number(lastValue(run.flags, 'port') || -1) > 0
        ? Number(lastValue(run.flags, 'port')) : DEFAULT_PORTS[run.binary]);
    for (const [caller, callee] of [['nas_worker', 'nas_controller'], ['nas_controller', 'nas_parameter_server'], ['nas_worker', 'nas_parameter_server']]) {
      for (const from of runsOf(caller)) {
        for (const to of runsOf(callee)) {
          if (!allows(from, to, grpcPort(to))) {
            fail(`${nameOf(from.object)} -> ${nameOf(to.object)}`, `the NetworkPolicies block ${caller} from reaching ${callee}'s --port ${grpcPort(to)}`);
          }
        }
      }
    }
  }

  // S: the parameter-server StatefulSet, its --num_shards, the controller's list.
  const shardRuns = runsOf('nas_parameter_server');
  const controllerRuns = runsOf('nas_controller');
  if (shardRuns.length !== 1 || shardRuns[0].object.kind !== 'StatefulSet') {
    fail('nas_parameter_server', `expected exactly one StatefulSet running it, found ${shardRuns.map((r) => nameOf(r.object)).join(', ') || 'none'}`);
  }
  if (controllerRuns.length !== 1) {
    fail('nas_controller', `expected exactly one workload running it, found ${controllerRuns.length}`);
  }
  let shards;
  if (shardRuns.length === 1 && shardRuns[0].object.kind === 'StatefulSet') {
    const ps = shardRuns[0];
    const sts = ps.object;
    shards = sts.spec.replicas === undefined ? 1 : sts.spec.replicas;
    const numShards = lastValue(ps.flags, 'num_shards');
    if (String(numShards) !== String(shards)) {
      fail(ps.where, `--num_shards=${numShards === undefined ? '(unset, 1)' : numShards} but the StatefulSet has replicas: ${shards}`);
    }
    if (lastValue(ps.flags, 'shard_index_from_hostname') !== 'true' && shards > 1) {
      fail(ps.where, '--shard_index_from_hostname is missing: every pod of the StatefulSet would be the same shard');
    }
    const psPort = Number(lastValue(ps.flags, 'port') || -1) > 0 ? Number(lastValue(ps.flags, 'port')) : DEFAULT_PORTS.nas_parameter_server;
    const headless = services.find((s) => s.metadata.name === sts.spec.serviceName);
    if (!headless) {
      fail(nameOf(sts), `serviceName ${sts.spec.serviceName} is not a rendered Service`);
    } else {
      if (headless.spec.clusterIP !== 'None') fail(nameOf(headless), 'must be headless (clusterIP: None) to give each shard a DNS name');
      if (!(headless.spec.ports || []).some((p) => p.port === psPort)) {
        fail(nameOf(headless), `exposes no port ${psPort} (the parameter servers' --port)`);
      }
    }
    // The workers' list (one-shot search) is the controller's.
    for (const controller of [...controllerRuns, ...runsOf('nas_worker')]) {
      const list = lastValue(controller.flags, 'parameter_servers');
      const entries = (list || '').split(',').filter(Boolean);
      if (entries.length !== shards) {
        fail(controller.where, `--parameter_servers lists ${entries.length} shard(s) but ${nameOf(sts)} has replicas: ${shards}`);
      }
      const namespace = sts.metadata.namespace || 'default';
      entries.forEach((entry, i) => {
        const expected = `${sts.metadata.name}-${i}.${sts.spec.serviceName}.${namespace}.svc:${psPort}`;
        if (entry !== expected) {
          fail(controller.where, `--parameter_servers entry ${i} is ${entry}, expected ${expected}`);
        }
      });
    }
  }
  for (const controller of controllerRuns) {
    if (controller.object.kind === 'StatefulSet' && controller.object.spec.replicas !== 1) {
      fail(nameOf(controller.object), `replicas must be 1 (one trial store), got ${controller.object.spec.replicas}`);
    }
  }

  // Workers dial a Service that reaches the controller's gRPC port.
  const controllerPort = controllerRuns.length === 1
      ? (Number(lastValue(controllerRuns[0].flags, 'port') || -1) > 0 ? Number(lastValue(controllerRuns[0].flags, 'port')) : DEFAULT_PORTS.nas_controller)
      : undefined;
  for (const worker of runsOf('nas_worker')) {
    const address = lastValue(worker.flags, 'controller');
    const match = /^([a-z0-9-]+)(?:\.([a-z0-9-]+)(?:\.svc(?:\.[a-z0-9.-]+)?)?)?:(\d+)$/.exec(address || '');
    if (!match) {
      fail(worker.where, `--controller=${address} is not <service>[.<namespace>.svc]:<port>`);
      continue;
    }
    const [, serviceName, namespace, port] = match;
    const service = services.find((s) => s.metadata.name === serviceName &&
                                         (!namespace || (s.metadata.namespace || 'default') === namespace));
    const servicePort = service && (service.spec.ports || []).find((p) => p.port === Number(port));
    if (!servicePort) {
      fail(worker.where, `--controller=${address}: no rendered Service ${serviceName}${namespace ? ` in namespace ${namespace}` : ''} with port ${port}`);
      continue;
    }
    const controllerPodLabels = controllerRuns.length === 1 ? (controllerRuns[0].template.metadata.labels || {}) : {};
    const selects = Object.entries(service.spec.selector || {}).every(([k, v]) => controllerPodLabels[k] === v);
    if (!service.spec.selector || !selects) {
      fail(worker.where, `--controller=${address}: Service ${serviceName} does not select the controller's pods`);
    }
    const target = servicePort.targetPort === undefined ? servicePort.port : servicePort.targetPort;
    const namedPort = controllerRuns.length === 1 && (controllerRuns[0].container.ports || []).find((p) => p.name === target);
    const targetNumber = typeof target === 'number' ? target : (namedPort ? namedPort.containerPort : undefined);
    if (targetNumber !== controllerPort) {
      fail(worker.where, `--controller=${address}: Service port ${port} reaches ${targetNumber}, the controller's --port is ${controllerPort}`);
    }
  }
  if (!runsOf('nas_worker').length) fail('nas_worker', 'no workload runs it');

  if (problems.length) {
    for (const problem of problems) console.error(problem);
    return 1;
  }
  console.log(`check_flags (${overlay}): ${runs.length} containers, ${checkedFlags} flags known to their binaries; S = ${shards} agrees in replicas, --num_shards and --parameter_servers; ${emptyDirs} emptyDirs bounded; ${bundled ? `${bundled} containers run a bundle an init container writes; ` : ''}${policies.length} NetworkPolicies pass the gRPC flows`);
  return 0;
}

try {
  process.exitCode = main();
} catch (e) {
  console.error(`check_flags (${overlay || '?'}): ${e.message}`);
  process.exitCode = 1;
}
