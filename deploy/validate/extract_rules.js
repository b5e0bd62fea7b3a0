#!/usr/bin/env node
// Prints the rule groups of every PrometheusRule in the manifests on stdin as
// a Prometheus rule file, for `promtool check rules` and `promtool test rules`.
//   kubectl kustomize deploy/k8s/servicemonitor | node deploy/validate/extract_rules.js > rules.yml
'use strict';

const fs = require('fs');
const YAML = require('yaml');

const rules = YAML.parseAllDocuments(fs.readFileSync(0, 'utf8'))
    .map((d) => d.toJS())
    .filter((o) => o && o.kind === 'PrometheusRule');
if (!rules.length) {
  console.error('extract_rules: no PrometheusRule on stdin');
  process.exitCode = 1;
} else {
  process.stdout.write(YAML.stringify({ groups: rules.flatMap((r) => r.spec.groups) }));
}
