#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/nas-service.json, the nas-service dashboard.

    python3 deploy/grafana/make_dashboard.py > deploy/grafana/dashboards/nas-service.json

Conventions every panel follows (//tests:metrics_test runs every query
against a real Prometheus during a live job and fails on any that returns
nothing): counters only through rate()/increase() over $__rate_interval, a
unit and a legend on every panel, per-job panels filtered by the $job
variable (job_id=~"$job"), histograms as quantiles or as a heatmap of
increase() per bucket.
"""
import json
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
JOB = 'job_id=~"$job"'

panels = []
next_id = [1]
cursor = {"x": 0, "y": 0}


def row(title):
    if cursor["x"]:
        cursor["x"] = 0
        cursor["y"] += 8
    panels.append({"id": next_id[0], "type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": cursor["y"]}, "panels": []})
    next_id[0] += 1
    cursor["y"] += 1


def place(width):
    if cursor["x"] + width > 24:
        cursor["x"] = 0
        cursor["y"] += 8
    pos = {"h": 8, "w": width, "x": cursor["x"], "y": cursor["y"]}
    cursor["x"] += width
    return pos


def panel(title, description, unit, targets, width=8, kind="timeseries", minimum=0, maximum=None,
          stack=False):
    defaults = {"unit": unit, "min": minimum}
    if maximum is not None:
        defaults["max"] = maximum
    p = {
        "id": next_id[0],
        "title": title,
        "description": description,
        "type": kind,
        "datasource": DS,
        "gridPos": place(width),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom",
                       "calcs": ["lastNotNull"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                     "datasource": DS} for i, (expr, legend) in enumerate(targets)],
    }
    if stack:
        defaults["custom"] = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30}
    next_id[0] += 1
    panels.append(p)
    return p


def heatmap(title, description, unit, expr, width=8):
    p = {
        "id": next_id[0],
        "title": title,
        "description": description,
        "type": "heatmap",
        "datasource": DS,
        "gridPos": place(width),
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": unit, "axisPlacement": "left"},
            "rowsFrame": {"layout": "le"},
            "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark-orange"},
            "cellValues": {"unit": "short"},
            "legend": {"show": True},
            "tooltip": {"show": True, "yHistogram": True},
        },
        "targets": [{"refId": "A", "expr": expr, "legendFormat": "{{le}}", "format": "heatmap",
                     "datasource": DS}],
    }
    next_id[0] += 1
    panels.append(p)


row("Search ($job)")
panel("Best reward", "Best reward of each job's succeeded trials.", "none",
      [(f"max by (job_id) (nas_controller_job_best_reward{{{JOB}}})", "{{job_id}}")])
panel("Mean reward", "Mean reward of each job's succeeded trials.", "none",
      [(f"avg by (job_id) (nas_controller_job_mean_reward{{{JOB}}})", "{{job_id}}")])
panel("Baseline reward", "REINFORCE baseline (moving average of rewards) of each job's last round.",
      "none", [(f"avg by (job_id) (nas_controller_job_baseline_reward{{{JOB}}})", "{{job_id}}")])
panel("Policy entropy", "Entropy of each job's sampling policy in nats: falls as the controller "
      "converges.", "none",
      [(f"avg by (job_id) (nas_controller_job_policy_entropy{{{JOB}}})", "{{job_id}}")])
heatmap("Reward distribution", "Rewards of the trials that succeeded in each interval "
        "(all jobs), by histogram bucket.", "none",
        f"sum by (le) (increase(nas_controller_reward_bucket[{RI}]))")
panel("Budget used", "Fraction of each job's budget used: finished trials over max_trials, or "
      "elapsed over max_wall_seconds, the larger.", "percentunit",
      [(f"max by (job_id) (nas_controller_job_budget_used_ratio{{{JOB}}})", "{{job_id}}")], maximum=1)
panel("Trials finished by status", "Trials reaching a final state per minute.", "cpm",
      [(f"sum by (status) (rate(nas_controller_trials_total{{{JOB}}}[{RI}])) * 60", "{{status}}")],
      stack=True)
panel("Trial failure fraction", "Failed trials over all final trials, per job.", "percentunit",
      [(f'sum by (job_id) (rate(nas_controller_trials_total{{{JOB},status="failed"}}[{RI}])) / '
        f"sum by (job_id) (rate(nas_controller_trials_total{{{JOB}}}[{RI}]))", "{{job_id}}")],
      maximum=1)
panel("Trials in flight", "Trials queued for a worker and running on one, per job.", "short",
      [(f"sum by (job_id, state) (nas_controller_job_trials{{{JOB}}})", "{{job_id}} {{state}}")])
panel("Samples", "Architectures sampled per second, per job.", "ops",
      [(f"sum by (job_id) (rate(nas_controller_samples_total{{{JOB}}}[{RI}]))", "{{job_id}}")])
panel("Compute used", "Worker-seconds each job's evaluations took, per second (the compute "
      "ledger; cache hits and stopped epochs cost none).", "short",
      [(f"sum by (job_id) (rate(nas_controller_job_worker_seconds_total{{{JOB}}}[{RI}]))",
        "{{job_id}}")])
panel("Gradient pushes", "Gradients pushed to the parameter servers per second, by outcome.", "ops",
      [(f"sum by (outcome) (rate(nas_controller_gradient_pushes_total{{{JOB}}}[{RI}]))",
        "{{outcome}}")])
panel("Replica round time", "Duration of one replica round (pull, sample, evaluate, push).", "s",
      [(f"histogram_quantile(0.5, sum by (le) (rate(nas_controller_replica_round_seconds_bucket[{RI}])))",
        "p50"),
       (f"histogram_quantile(0.9, sum by (le) (rate(nas_controller_replica_round_seconds_bucket[{RI}])))",
        "p90")])

row("Workers and tasks")
panel("Queue", "Tasks waiting for a worker and tasks leased to one.", "short",
      [("sum(nas_controller_queue_depth)", "queued"), ("sum(nas_controller_tasks_leased)", "leased")])
panel("Connected workers", "Workers that polled or heartbeated in the last minute.", "short",
      [("sum(nas_controller_connected_workers)", "workers")])
panel("Worker busy fraction", "Fraction of time each worker spends evaluating tasks.",
      "percentunit",
      [(f"rate(nas_worker_busy_seconds_total[{RI}])", "{{instance}}"),
       (f"avg(rate(nas_worker_busy_seconds_total[{RI}]))", "mean")], maximum=1)
panel("Worker tasks by outcome", "Tasks finished per minute on the workers, by outcome.", "cpm",
      [(f"sum by (outcome) (rate(nas_worker_tasks_total[{RI}])) * 60", "{{outcome}}")], stack=True)
panel("Lease expiries", "Task leases that expired without a result (a worker vanished); the task "
      "goes back to the queue.", "short",
      [(f"sum(increase(nas_controller_leases_expired_total[{RI}]))", "expired leases")])
panel("Evaluation time", "Time to evaluate one task on a worker.", "s",
      [(f"histogram_quantile(0.5, sum by (le) (rate(nas_worker_evaluation_seconds_bucket[{RI}])))",
        "p50"),
       (f"histogram_quantile(0.9, sum by (le) (rate(nas_worker_evaluation_seconds_bucket[{RI}])))",
        "p90")])
panel("Training throughput", "Training images per second over all workers (train evaluator only).",
      "suffix: images/s", [(f"sum(rate(nas_worker_images_total[{RI}]))", "images/s")])
panel("Worker progress age", "Seconds since each worker's last progress (a poll or an epoch); the "
      "liveness probe restarts a worker at 30 minutes.", "s",
      [("time() - nas_worker_last_progress_timestamp_seconds", "{{instance}}")])

row("Parameter servers")
panel("Staleness", "Versions a pushed gradient lags behind the shard's weights.", "short",
      [(f"histogram_quantile(0.9, sum by (le) (rate(nas_ps_staleness_bucket[{RI}])))", "p90")])
panel("Apply latency", "Time to apply one gradient on a shard.", "s",
      [(f"histogram_quantile(0.99, sum by (le) (rate(nas_ps_apply_seconds_bucket[{RI}])))", "p99")])
panel("Shard pushes by outcome", "Gradients received per second, by outcome.", "ops",
      [(f"sum by (outcome) (rate(nas_ps_pushes_total[{RI}]))", "{{outcome}}")])
panel("Weights version", "Version of each job's weights (the highest over shards).", "short",
      [(f"max by (job_id) (nas_ps_version{{{JOB}}})", "{{job_id}}")])
panel("Checkpoints", "Checkpoints written and failed per minute, per shard.", "cpm",
      [(f"sum by (instance) (rate(nas_ps_checkpoint_seconds_count[{RI}])) * 60", "{{instance}} written"),
       (f"sum by (instance) (rate(nas_ps_checkpoint_failures_total[{RI}])) * 60",
        "{{instance}} failed")])
panel("Checkpoint time", "Time to write one checkpoint.", "s",
      [(f"histogram_quantile(0.9, sum by (le) (rate(nas_ps_checkpoint_seconds_bucket[{RI}])))", "p90")])
panel("Shard traffic", "Bytes received and sent per second by the shards.", "Bps",
      [(f"sum by (direction) (rate(nas_ps_bytes_total[{RI}]))", "{{direction}}")])

row("Processes")
panel("Resident memory", "Resident memory of each process.", "bytes",
      [("process_resident_memory_bytes", "{{instance}}")])
panel("CPU", "CPU time per second of each process (1 = one core).", "percentunit",
      [(f"rate(process_cpu_seconds_total[{RI}])", "{{instance}}")])
panel("Open file descriptors", "Open file descriptors of each process.", "short",
      [("process_open_fds", "{{instance}}")])

dashboard = {
    "title": "nas-service",
    "uid": "nas-service",
    "schemaVersion": 37,
    "version": 2,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "10s",
    "tags": ["nas-service"],
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "job", "label": "Job", "type": "query", "datasource": DS,
         "query": {"query": "label_values(nas_controller_job_best_reward, job_id)",
                   "refId": "jobs"},
         "definition": "label_values(nas_controller_job_best_reward, job_id)",
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
         "current": {"text": "All", "value": "$__all"}, "sort": 1},
    ]},
    "panels": panels,
}
json.dump(dashboard, sys.stdout, indent=2)
sys.stdout.write("\n")
