"""Two Prometheus shards (the first an HA pair) writing to VictoriaMetrics, read by Grafana as one:
checked over HTTPS with credentials from the hosts, the way an operator would."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import curl, value  # noqa: E402
from dashboards import sent  # noqa: E402

testinfra_hosts = ["ansible://fleet-1"]

CA = "/etc/prometheus/ca.crt"
SCRAPE = "prometheus:fleet-scrape-password"  # VictoriaMetrics' one user
ADMIN = "admin:fleet-admin-password"
GRAFANA = "admin:fleet-grafana-password"
VM = "https://fleet-1:8428"
# Shard 0 is the HA pair fleet-1 + fleet-3, shard 1 is fleet-2 alone (inventory order); hashmod on
# the instance sends fleet-2's jobs to shard 0, fleet-1's and fleet-3's to shard 1.
SHARDS = {"fleet-1": "0", "fleet-3": "0", "fleet-2": "1"}
EXPECTED = {
    ("node", "fleet-2"): "0", ("prometheus", "fleet-2"): "0",
    ("node", "fleet-1"): "1", ("prometheus", "fleet-1"): "1", ("grafana", "fleet-1"): "1",
    ("victoriametrics", "fleet-1"): "1", ("node", "fleet-3"): "1", ("prometheus", "fleet-3"): "1",
}
INTERVAL = 5  # prometheus_scrape_interval of the scenario


def instance(name):
    import testinfra
    return testinfra.get_host("ansible://" + name, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def api(host, url, *args, auth=ADMIN):
    status, body = curl(host, url, "--cacert", CA, "--max-time", "10", "-u", auth, *args)
    assert status == "200", (url, status, body[:300])
    return json.loads(body)


def vm(host, path, *args):
    """VictoriaMetrics' Prometheus API, uncached and without its 30 s latency offset."""
    return api(host, VM + path, "-G", "--data-urlencode", "nocache=1", "--data-urlencode", "latency_offset=1ms", *args,
               auth=SCRAPE)["data"]


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            assert result, f"{what} within {seconds} s"
            return result
        time.sleep(3)


def active_targets(host, server):
    data = api(host, f"https://{server}:9090/api/v1/targets?state=active")["data"]["activeTargets"]
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in data}


def test_each_shard_scrapes_its_share_and_the_pair_the_same(host):
    def shared():
        found = {server: active_targets(host, server) for server in SHARDS}
        return all(health == "up" for f in found.values() for health in f.values()) and found
    found = wait_for(shared, 90, "every target up on its shard")
    for server, shard in SHARDS.items():
        assert set(found[server]) == {target for target, s in EXPECTED.items() if s == shard}, server


def test_every_target_is_in_victoriametrics_exactly_once(host):
    def complete():
        result = vm(host, "/api/v1/query", "--data-urlencode", "query=up")["result"]
        return len(result) >= len(EXPECTED) and result
    result = wait_for(complete, 60, "every target's up in VictoriaMetrics")
    series = sorted((r["metric"]["job"], r["metric"]["instance"], r["metric"]["shard"]) for r in result)
    assert series == sorted((job, name, shard) for (job, name), shard in EXPECTED.items())
    # The replica label was dropped on the way in: the pair writes the same series.
    assert all(set(r["metric"]) == {"__name__", "job", "instance", "shard"} for r in result), result


def test_the_ha_pair_writes_twice_and_is_stored_once(host):
    sent_by = {}
    for server in ("fleet-1", "fleet-3"):
        query = "prometheus_remote_storage_samples_total"
        result = api(host, f"https://{server}:9090/api/v1/query", "--data-urlencode", "query=" + query)["data"]["result"]
        sent_by[server] = sum(float(r["value"][1]) for r in result)
    assert all(count > 0 for count in sent_by.values()), sent_by
    # A minute of the pair's series: one sample per scrape interval, not one per replica.
    result = vm(host, "/api/v1/query", "--data-urlencode", 'query=count_over_time(up{shard="0"}[1m])')["result"]
    counts = {r["metric"]["instance"] + "/" + r["metric"]["job"]: float(r["value"][1]) for r in result}
    assert len(counts) == 2 and all(60 / INTERVAL - 2 <= c <= 60 / INTERVAL + 1 for c in counts.values()), counts


def test_grafana_reads_the_global_view_and_each_prometheus(host):
    sources = {s["uid"]: s for s in api(host, "https://fleet-1:3000/api/datasources", auth=GRAFANA)}
    assert {uid: (s["url"], s["isDefault"]) for uid, s in sources.items() if s["type"] == "prometheus"} == {
        "arq-victoriametrics": (VM, True), "arq-prometheus": ("https://fleet-1:9090", False),
        "arq-prometheus-fleet-2": ("https://fleet-2:9090", False), "arq-prometheus-fleet-3": ("https://fleet-3:9090", False)}
    for uid in sources:
        health = api(host, f"https://fleet-1:3000/api/datasources/uid/{uid}/health", auth=GRAFANA)
        assert health["status"] == "OK", (uid, health)
    # The dashboards read the global view.
    node = json.loads(host.file("/etc/grafana/dashboards/arq/arq-node.json").content_string)
    assert {p["datasource"]["uid"] for p in node["panels"] if "datasource" in p} == {"arq-victoriametrics"}


def test_the_node_dashboard_queries_return_every_host_from_victoriametrics(host):
    queries = {name: query for name, query in sent().items() if name.startswith("arq-node: ")}
    assert len(queries) > 10
    empty = [name for name, query in queries.items()
             if not vm(host, "/api/v1/query", "--data-urlencode", "query=" + query)["result"]]
    assert empty == []
    result = vm(host, "/api/v1/query", "--data-urlencode", "query=count by (instance) (node_uname_info)")["result"]
    assert sorted(r["metric"]["instance"] for r in result) == sorted(SHARDS)


def test_only_prometheus_grafana_and_admin_networks_reach_victoriametrics(host):
    rules = [line for line in host.run("nft list ruleset").stdout.splitlines() if "dport 8428" in line]
    assert any("192.0.2.0/24" in rule and rule.endswith("accept") for rule in rules), rules
    # The shards reach it (and are refused without credentials); the controller, neither a
    # Prometheus nor Grafana host nor in an admin network, is turned away by the firewall.
    for name in ("fleet-2", "fleet-3"):
        status, _body = curl(instance(name), VM + "/api/v1/query?query=up", "--cacert", CA, "--max-time", "10")
        assert status == "401", name

    def refused():
        line = next(line for line in host.run("nft list ruleset").stdout.splitlines() if '"victoriametrics_web"' in line)
        return int(line.split("packets ")[1].split()[0])
    before = refused()
    address = host.run("getent ahostsv4 fleet-1").stdout.split()[0]
    with pytest.raises(OSError):
        socket.create_connection((address, 8428), timeout=3).close()
    assert refused() > before  # the firewall's reject rule, not something else, turned it away


def samples(host, url, query, at, *extra):
    """{(job, instance): [sample timestamps in ms]} of a range selector, evaluated at `at`."""
    result = api(host, url + "/api/v1/query", "-G", "--data-urlencode", "query=" + query, "--data-urlencode", f"time={at}",
                 *extra, auth=SCRAPE)["data"]["result"]
    return {(r["metric"]["job"], r["metric"]["instance"]): sorted(round(float(t) * 1000) for t, _v in r["values"])
            for r in result}


def retried(shard):
    status, body = curl(shard, "https://fleet-2:9090/metrics", "--cacert", CA, "-u", ADMIN)
    assert status == "200", body[:300]
    return value(body, "prometheus_remote_storage_samples_retried_total")


def test_a_shard_cut_off_for_a_minute_loses_no_samples(host):
    """fleet-2's writes to VictoriaMetrics are refused for 60 s; once they pass again, remote write's
    retries deliver every sample it took meanwhile, at the same timestamps."""
    shard = instance("fleet-2")
    retried_before = retried(shard)
    address = shard.run("getent ahostsv4 fleet-1").stdout.split()[0]
    cut = (f"add table inet arq_fleet_test; add chain inet arq_fleet_test out {{ type filter hook output priority 0; }}; "
           f"add rule inet arq_fleet_test out ip daddr {address} tcp dport 8428 reject with tcp reset")
    assert shard.run("nft %s", cut).rc == 0
    started = time.time()
    try:
        time.sleep(60)
    finally:
        assert shard.run("nft delete table inet arq_fleet_test").rc == 0
    ended = time.time()
    seconds = int(ended - started) - 5
    at = round(ended, 3)
    # The shard's own TSDB has them without the external labels it adds on the way out.
    local = samples(host, "https://fleet-2:9090", f"up[{seconds}s]", at)
    assert sorted(local) == sorted(t for t, s in EXPECTED.items() if s == "1")
    assert all(len(ts) >= 50 / INTERVAL for ts in local.values()), local

    def delivered():
        return samples(host, VM, f'up{{shard="1"}}[{seconds}s]', at, "--data-urlencode", "nocache=1") == local
    wait_for(delivered, 90, "every sample of the cut-off minute in VictoriaMetrics")
    assert retried(shard) > retried_before  # the writes were refused and sent again


def run_playbook(name):
    run = subprocess.run(["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"],
                          os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", name)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "fleet-scrape-password" not in run.stdout + run.stderr
    return run.stdout


def test_backup_then_restore_brings_back_what_was_deleted(host):
    marker = "arq_backup_marker"
    now = int(time.time())
    status, body = curl(host, VM + "/api/v1/import/prometheus", "--cacert", CA, "-u", SCRAPE,
                        "--data-binary", f'{marker}{{kind="test"}} 42 {now * 1000}')
    assert status == "204", body
    query = ("--data-urlencode", f"query={marker}", "--data-urlencode", f"time={now + 1}")

    def present():
        return vm(host, "/api/v1/query", *query)["result"]
    wait_for(present, 30, "the imported marker")
    run_playbook("victoriametrics_backup.yml")
    assert host.file("/var/backups/victoriametrics/latest").is_directory
    assert host.file("/var/backups/victoriametrics").mode == 0o700
    # No snapshot is left behind on the server.
    status, body = curl(host, VM + "/snapshot/list", "--cacert", CA, "-u", SCRAPE)
    assert status == "200" and json.loads(body)["snapshots"] == [], body
    status, body = curl(host, VM + "/api/v1/admin/tsdb/delete_series", "--cacert", CA, "-u", SCRAPE,
                        "--data-urlencode", f"match[]={marker}")
    assert status == "204", body
    assert vm(host, "/api/v1/query", *query)["result"] == []
    run_playbook("victoriametrics_restore.yml")
    result = wait_for(present, 60, "the marker back after the restore")
    assert result[0]["value"][1] == "42"
    # The service is back and Prometheus writes to it again.
    wait_for(lambda: vm(host, "/api/v1/query", "--data-urlencode", "query=up")["result"], 60, "fresh samples after the restore")
