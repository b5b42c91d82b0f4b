"""The whole stack, checked the way an operator would, from the Prometheus host."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import curl, recap_changed  # noqa: E402
from dashboards import EMPTY_WITHOUT_ERRORS, MAY_BE_EMPTY, sent  # noqa: E402

testinfra_hosts = ["ansible://stack-monitoring"]

PROMETHEUS = "http://127.0.0.1:9090/api/v1"
GRAFANA = ("http://127.0.0.1:3000", "admin:stack-grafana-password")
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
    """ansible-playbook site on the scenario's inventory (plus others; "--..." items are options): (rc, output)."""
    args = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"]]
    for inventory in inventories:
        args += [inventory] if str(inventory).startswith("--") else ["-i", str(inventory)]
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


def test_every_dashboard_query_returns_data_from_this_prometheus(host):
    """Every panel's and query variable's query, as Grafana sends it, is accepted by the stack's
    Prometheus and returns data, but for those of MAY_BE_EMPTY and EMPTY_WITHOUT_ERRORS (named,
    with the reason)."""
    found = sent()
    assert len(found) > 40 and set(EMPTY_WITHOUT_ERRORS) <= set(found)
    failed, empty = {}, []
    for name, query in found.items():
        status, body = curl(host, PROMETHEUS + "/query", "--data-urlencode", "query=" + query)
        if status != "200" or json.loads(body)["status"] != "success":
            failed[name] = body[:200]
        elif not json.loads(body)["data"]["result"] and name not in MAY_BE_EMPTY | EMPTY_WITHOUT_ERRORS.keys():
            empty.append(name)
    assert failed == {} and empty == [], (failed, empty)


def host_of(name):
    import testinfra
    return testinfra.get_host("ansible://" + name, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def delivered(host, since, alertname, status):
    """The sink's notifications after its first `since` lines: (alert labels, summary and description)."""
    sink = host.file(SINK)
    lines = sink.content_string.splitlines()[since:] if sink.exists else []
    return [(a["labels"], a["annotations"].get("summary", "") + " " + a["annotations"].get("description", ""))
            for n in map(json.loads, lines)
            if n["status"] == status and n["groupLabels"].get("alertname") == alertname for a in n["alerts"]]


def sink_lines(host):
    sink = host.file(SINK)
    return len(sink.content_string.splitlines()) if sink.exists else 0


# The incident drill: what fails, on which host, how, and the critical alert that must page.
SERVICE_OUTAGES = [
    ("stack-db", "postgresql", "DatabaseDown", "pg_up"),
    ("stack-cache", "redis-server", "RedisDown", "redis_up"),
    ("stack-app", "arq-demo-backend", "APIDown", ""),
]
# Scrapes and evaluations every 5 s, for: 10s, group_wait 10s: paged within a minute, resolved
# within a minute of the recovery (the bound leaves room for a loaded machine).
BOUND = 90


def page_and_resolve(host, outages, break_, mend):
    """Break everything at once, wait until each outage's critical alert reaches the webhook
    through Alertmanager, mend, and wait for each one's resolved notification."""
    since, start = sink_lines(host), time.monotonic()
    for outage in outages:
        break_(outage)
    try:
        for instance, _what, alertname, cause in outages:
            fired = wait_for(lambda: [(labels, text) for labels, text in delivered(host, since, alertname, "firing")
                                      if labels["instance"] == instance], BOUND, f"{alertname} on {instance} paged")
            labels, text = fired[0]
            assert labels["severity"] == "critical", labels
            assert cause in text, text
            print(f"{alertname} on {instance} paged {time.monotonic() - start:.0f} s after the outage: {text}")
    finally:
        for outage in outages:
            mend(outage)
    mended = time.monotonic()
    for instance, _what, alertname, _cause in outages:
        wait_for(lambda: [labels for labels, _text in delivered(host, since, alertname, "resolved")
                          if labels["instance"] == instance], BOUND, f"{alertname} on {instance} resolved")
    print(f"all resolved {time.monotonic() - mended:.0f} s after the recovery")


def test_incident_drill_every_outage_pages_and_resolves(host):
    """PostgreSQL, Redis and the backend stopped at once, then the whole database host cut off
    (its container paused): each pages as its critical alert, with the seed's routing, and each
    resolves after the recovery. DatabaseDown says which of its two causes it is."""
    page_and_resolve(host, SERVICE_OUTAGES,
                     lambda outage: host_of(outage[0]).run_test("systemctl stop %s", outage[1]),
                     lambda outage: host_of(outage[0]).run_test("systemctl start %s", outage[1]))
    # The host itself unreachable: its exporters cannot be scraped at all.
    page_and_resolve(host, [("stack-db", "the host", "DatabaseDown", "cannot be scraped")],
                     lambda _outage: subprocess.run(["docker", "pause", "stack-db"], check=True),
                     lambda _outage: subprocess.run(["docker", "unpause", "stack-db"], check=True))


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


@pytest.mark.parametrize("mode", [["--check"], []], ids=["check mode", "normal mode"])
def test_a_loopback_exporter_on_another_host_stops_the_run_before_any_change(host, tmp_path, mode):
    """The database host's node exporter set to listen on loopback only: Prometheus, on another
    host, could never scrape it. The first play refuses it by host and variable, before any host
    (the database host included) changes."""
    extra = tmp_path / "loopback.yml"
    extra.write_text("node_exporter:\n  hosts:\n    stack-db:\n      node_exporter_web_listen_address: 127.0.0.1:9100\n")
    rc, out = run_site(extra, *mode)
    assert rc != 0 and "'stack-db'" in out and "node_exporter_web_listen_address" in out, out[-3000:]
    assert recap_changed(out) == 0, out[-3000:]


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
