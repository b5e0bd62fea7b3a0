#!/usr/bin/env node
// Validates rendered Kubernetes manifests offline against the Kubernetes OpenAPI
// schema (kubernetes-models) and the prometheus-operator CRD schemas.
//
//   kubectl kustomize deploy/k8s/overlays/gpu | node deploy/validate/validate.js [--label NAME]
//
// Reads multi-document YAML on stdin. Every document must be an object with an
// apiVersion and kind this script knows: an unknown apiVersion/kind is an error,
// never skipped, because an object nothing checked is an object nothing checked.
// Prints one line per object and exits 1 naming each invalid object (kind/name)
// with its schema errors; prints "N objects valid" and exits 0 otherwise.
//
// Unknown fields are errors too (like `kubectl apply --validate=strict`): the
// Kubernetes schemas do not forbid them, so a misspelt optional field such as
// securityContext.readOnlyRootFilesytem would pass a plain schema check and
// silently drop the hardening it meant to add. The generated validators read
// every property their schema defines, so the object is validated through
// proxies that record the properties read: a property nothing read is unknown.
// Objects the validator enumerates (maps: labels, annotations, resources,
// ConfigMap data) accept any key, as their schemas do.
'use strict';

const fs = require('fs');
const YAML = require('yaml');

// apiVersion -> module prefix. Core ("v1") objects live under kubernetes-models/v1.
const PROVIDERS = [
  { group: 'monitoring.coreos.com', module: '@kubernetes-models/prometheus-operator' },
  { group: '', module: 'kubernetes-models' },
];

function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string' ||
      !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind)) {
    return null;
  }
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const provider = PROVIDERS.find((p) => p.group === group) ||
                   (group.includes('.') && !group.endsWith('.k8s.io') ? null : PROVIDERS[1]);
  if (!provider) return null;
  try {
    const module = require(`${provider.module}/${apiVersion}/${kind}`);
    const model = module[kind];
    return model && model.apiVersion === apiVersion && model.kind === kind ? model : null;
  } catch (e) {
    if (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') return null;
    throw e;
  }
}

function describe(object) {
  const kind = object && object.kind ? object.kind : '<no kind>';
  const name = object && object.metadata && object.metadata.name ? object.metadata.name : '<no name>';
  return `${kind}/${name}`;
}

function schemaErrors(error) {
  if (Array.isArray(error.errors) && error.errors.length) {
    return error.errors.map((e) => {
      const where = e.instancePath || '/';
      const extra = e.params && e.params.missingProperty ? ` (${e.params.missingProperty})` : '';
      return `${where}: ${e.message}${extra}`;
    });
  }
  return [error.message];
}

// A deep copy of `value` behind proxies that record, per object, the
// properties the validator reads and whether it enumerated the keys.
function watched(value, path, records) {
  if (value === null || typeof value !== 'object') return value;
  const record = { path, value, read: new Set(), enumerated: false };
  records.push(record);
  const copy = Array.isArray(value)
      ? value.map((v, i) => watched(v, `${path}/${i}`, records))
      : Object.fromEntries(Object.entries(value).map(([k, v]) => [k, watched(v, `${path}/${k}`, records)]));
  return new Proxy(copy, {
    get(target, key, receiver) {
      if (typeof key === 'string') record.read.add(key);
      return Reflect.get(target, key, receiver);
    },
    has(target, key) {
      if (typeof key === 'string') record.read.add(key);
      return Reflect.has(target, key);
    },
    ownKeys(target) {
      record.enumerated = true;
      return Reflect.ownKeys(target);
    },
  });
}

// The paths of the properties of `object` its schema does not define.
function unknownFields(Model, object) {
  const records = [];
  const proxy = watched(JSON.parse(JSON.stringify(object)), '', records);
  Model.prototype.validate.call(proxy);
  const unknown = [];
  for (const record of records) {
    if (Array.isArray(record.value) || record.enumerated) continue;
    for (const key of Object.keys(record.value)) {
      if (!record.read.has(key)) unknown.push(`${record.path}/${key}`);
    }
  }
  return unknown;
}

function main() {
  const args = process.argv.slice(2);
  let label = 'stdin';
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === '--label' && i + 1 < args.length) {
      label = args[++i];
    } else {
      console.error(`usage: validate.js [--label NAME] < manifests.yaml (unknown argument ${args[i]})`);
      return 2;
    }
  }
  const text = fs.readFileSync(0, 'utf8');
  const documents = YAML.parseAllDocuments(text);
  const problems = [];
  let valid = 0;
  let index = 0;
  for (const document of documents) {
    ++index;
    if (document.errors.length) {
      problems.push(`document ${index}: YAML: ${document.errors.map((e) => e.message).join('; ')}`);
      continue;
    }
    const object = document.toJS();
    if (object === null || object === undefined) continue;  // an empty document ("---" at the end)
    if (typeof object !== 'object' || Array.isArray(object)) {
      problems.push(`document ${index}: not a Kubernetes object`);
      continue;
    }
    const what = describe(object);
    if (!object.apiVersion || !object.kind) {
      problems.push(`${what} (document ${index}): no apiVersion or kind`);
      continue;
    }
    const Model = modelFor(object.apiVersion, object.kind);
    if (!Model) {
      problems.push(`${what}: unknown kind ${object.apiVersion} ${object.kind} (no schema to check it against)`);
      continue;
    }
    if (!object.metadata || !object.metadata.name) {
      problems.push(`${what}: metadata.name is missing`);
      continue;
    }
    try {
      new Model(object).validate();
    } catch (error) {
      for (const message of schemaErrors(error)) problems.push(`${what}: ${message}`);
      continue;
    }
    // Only after a clean schema check: a failing validator may stop reading early.
    const unknown = unknownFields(Model, object);
    if (unknown.length) {
      for (const field of unknown) problems.push(`${what}: ${field}: unknown field (not in the ${object.kind} schema)`);
      continue;
    }
    ++valid;
    console.log(`  ok ${object.apiVersion} ${what}`);
  }
  if (problems.length) {
    for (const problem of problems) console.error(`validate (${label}): ${problem}`);
    console.error(`validate (${label}): ${problems.length} problem(s), ${valid} objects valid`);
    return 1;
  }
  if (valid === 0) {
    console.error(`validate (${label}): no objects on stdin`);
    return 1;
  }
  console.log(`validate (${label}): ${valid} objects valid`);
  return 0;
}

process.exitCode = main();
