"""The whole stack, checked the way an operator would, from the Prometheus host."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import curl, recap_changed  # noqa: E402

testinfra_hosts = ["ansible://stack-monitoring"]

PROMETHEUS = "http://127.0.0.1:9090/api/v1"
GRAFANA = ("http://127.0.0.1:3000", "admin:stack-grafana-password")
DASHBOARDS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "roles" / "grafana" / "files" / "dashboards"
SINK = "/var/lib/webhook-sink/received.jsonl"
# What the inventory holds: every host runs a node exporter; one of each service otherwise.
EXPECTED_TARGETS = {
    ("node", "stack-monitoring"), ("node", "stack-db"), ("node", "stack-cache"), ("node", "stack-app"),
    ("postgres", "stack-db"), ("redis", "stack-cache"), ("backend", "stack-app"),
    ("alertmanager", "stack-monitoring"), ("prometheus", "stack-monitoring"), ("grafana", "stack-monitoring"),
}
SHIPPED_ALERTS = {
    "APIDown", "DatabaseDown", "RedisDown", "HighCPUUsage", "HighMemoryUsage", "HighErrorRate",
    "SlowResponseTime", "PostgreSQLTooManyConnections", "RedisMemoryHigh",
    "TargetDown", "HostHighCPU", "HostHighMemory", "HostDiskAlmostFull", "HostFilesystemFullSoon",
}


def prom(host, path):
    status, body = curl(host, PROMETHEUS + path)
    assert status == "200", body
    return json.loads(body)["data"]


def targets(host):
    return {(t["labels"]["job"], t["labels"]["instance"]): t for t in prom(host, "/targets?state=active")["activeTargets"]}


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(2)
    pytest.fail(f"{what} within {seconds} s")


def run_site(*inventories, env=None, playbook=None, cwd=None):
    """ansible-playbook site on the scenario's inventory (plus others): (rc, output)."""
    args = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    for inventory in inventories:
        args += ["-i", str(inventory)]
    args.append(playbook or os.environ["MOLECULE_SCENARIO_DIRECTORY"] + "/converge.yml")
    run = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False,
                         env={**os.environ, **(env or {})}, cwd=cwd)
    return run.returncode, run.stdout + run.stderr


def test_every_target_up_with_inventory_names(host):
    def all_up():
        found = targets(host)
        return set(found) == EXPECTED_TARGETS and all(t["health"] == "up" for t in found.values()) and found
    found = wait_for(all_up, 60, "every inventory target up")
    assert found[("backend", "stack-app")]["scrapeUrl"] == "http://stack-app:3001/api/v1/metrics"


def test_every_shipped_alert_loaded_and_evaluating(host):
    rules = [r for g in prom(host, "/rules")["groups"] for r in g["rules"]]
    assert SHIPPED_ALERTS <= {r["name"] for r in rules if r["type"] == "alerting"}
    assert [r["name"] for r in rules if r["health"] != "ok"] == []


def test_prometheus_sends_to_the_inventory_alertmanager(host):
    assert [a["url"] for a in prom(host, "/alertmanagers")["activeAlertmanagers"]] == ["http://stack-monitoring:9093/api/v2/alerts"]


def test_grafana_datasource_points_at_this_prometheus(host):
    status, body = curl(host, GRAFANA[0] + "/api/datasources/uid/arq-prometheus", "-u", GRAFANA[1])
    assert status == "200", body
    assert json.loads(body)["url"] == "http://stack-monitoring:9090"
    status, body = curl(host, GRAFANA[0] + "/api/datasources/uid/arq-alertmanager", "-u", GRAFANA[1])
    assert json.loads(body)["url"] == "http://stack-monitoring:9093"


def test_every_dashboard_expression_runs_against_this_prometheus(host):
    exprs = sorted({
        re.sub(r"\$\{?[A-Za-z_]\w*\}?", ".+", re.sub(r"\$__(rate_interval|interval|range)\b", "1m", target["expr"]))
        for path in DASHBOARDS.glob("*.json")
        for top in json.loads(path.read_text())["panels"]
        for panel in [top, *top.get("panels", [])]  # rows carry their panels
        for target in panel.get("targets", []) if target.get("expr")
    })
    assert len(exprs) > 20
    failed = {}
    for expr in exprs:
        status, body = curl(host, PROMETHEUS + "/query", "--data-urlencode", "query=" + expr)
        if status != "200" or json.loads(body)["status"] != "success":
            failed[expr] = body[:200]
    assert failed == {}


def notifications(host, alertname, status):
    sink = host.file(SINK)
    lines = sink.content_string.splitlines() if sink.exists else []
    return [n for n in map(json.loads, lines)
            if n["status"] == status and n["groupLabels"].get("alertname") == alertname]


def test_redis_down_fires_reaches_the_webhook_and_resolves(host):
    cache = host.get_host("ansible://stack-cache", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    cache.run_test("systemctl stop redis-server")
    try:
        start = time.monotonic()
        wait_for(lambda: notifications(host, "RedisDown", "firing"), 120, "RedisDown delivered to the webhook")
        print(f"RedisDown delivered {time.monotonic() - start:.0f} s after Redis stopped")
        alert = notifications(host, "RedisDown", "firing")[0]["alerts"][0]
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["instance"] == "stack-cache"
    finally:
        cache.run_test("systemctl start redis-server")
    wait_for(lambda: notifications(host, "RedisDown", "resolved"), 120, "RedisDown resolved")


def prometheus_process(host):
    """Start time and last successful reload of the running Prometheus."""
    metrics = curl(host, "http://127.0.0.1:9090/metrics")[1].splitlines()
    pick = lambda name: next(l.split()[1] for l in metrics if l.startswith(name + " "))  # noqa: E731
    return pick("process_start_time_seconds"), pick("prometheus_config_last_reload_success_timestamp_seconds")


def test_adding_a_host_adds_exactly_its_targets_without_a_restart(host, tmp_path):
    before, process = set(targets(host)), prometheus_process(host)
    extra = tmp_path / "spare.yml"
    extra.write_text("node_exporter:\n  hosts:\n    stack-spare:\n")
    rc, out = run_site(extra)
    assert rc == 0, out[-3000:]
    wait_for(lambda: set(targets(host)) == before | {("node", "stack-spare")}, 60, "the spare host's target")
    wait_for(lambda: targets(host)[("node", "stack-spare")]["health"] == "up", 30, "the spare host's target up")
    rc, out = run_site()
    assert rc == 0, out[-3000:]
    wait_for(lambda: set(targets(host)) == before, 60, "the spare host's target gone")
    assert prometheus_process(host) == process, "Prometheus was restarted or reloaded"


def test_galaxy_installed_collection_converges_the_stack_unchanged(host, tmp_path):
    """As an ops repo: build the tarball, install it elsewhere, run arq.monitoring.site by FQCN."""
    ops = tmp_path / "ops-repo"
    ops.mkdir()
    (ops / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    env = {"ANSIBLE_CONFIG": str(ops / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(ops / "collections")}
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    build = subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(ops), project],
                           capture_output=True, text=True, check=True, env={**os.environ, **env}, cwd=ops)
    tarball = next(Path(ops).glob("arq-monitoring-*.tar.gz"))
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", "collections", str(tarball)],
                   capture_output=True, text=True, check=True, env={**os.environ, **env}, cwd=ops)
    rc, out = run_site(env=env, playbook="arq.monitoring.site", cwd=ops)
    assert rc == 0, build.stdout + out[-3000:]
    assert str(ops / "collections") in subprocess.run(
        ["ansible-doc", "-t", "role", "arq.monitoring.prometheus"], capture_output=True, text=True,
        env={**os.environ, **env}, cwd=ops).stdout
    assert recap_changed(out) == 0, out[-3000:]
