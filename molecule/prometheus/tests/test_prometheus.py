"""prometheus, verified from inside each instance the way a user would check it."""
import json
import os
import re
import sys

import pytest
import yaml
from conftest import curl

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service, assert_upgraded_once, converge, groups, recap_changed  # noqa: E402

SHIPPED_ALERTS = {
    "APIDown", "DatabaseDown", "RedisDown", "HighCPUUsage", "HighMemoryUsage", "HighErrorRate",
    "SlowResponseTime", "PostgreSQLTooManyConnections", "RedisMemoryHigh",
    "TargetDown", "HostHighCPU", "HostHighMemory", "HostDiskAlmostFull", "HostFilesystemFullSoon",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectProc": "invisible",
    "UMask": "0077",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "User": "prometheus",
    "ReadWritePaths": "/var/lib/prometheus",
}


def test_service_is_enabled_and_running_hardened(host):
    assert_hardened_service(host, "prometheus", HARDENING)
    assert host.check_output("ps -o user= -C prometheus").strip() == "prometheus"
    assert host.file("/var/lib/prometheus").user == "prometheus"


def test_ready(prom):
    status, body = prom.get("/-/ready")
    assert status == "200", body


def test_every_configured_target_is_up(prom):
    def check():
        targets = prom.api("/api/v1/targets")["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        assert seen == {("prometheus", "localhost:9090"): "up", ("node", "localhost:9100"): "up"}, seen
        node = next(t for t in targets if t["labels"]["job"] == "node")
        assert node["labels"]["role"] == "monitoring"  # the file_sd target file's labels
    prom.wait(check)


def test_every_shipped_alert_is_loaded(prom):
    groups = prom.api("/api/v1/rules")["groups"]
    alerts = {r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting"}
    assert alerts == SHIPPED_ALERTS
    assert all(r["health"] != "err" for g in groups for r in g["rules"]), groups
    assert {g["file"] for g in groups} == {"/etc/prometheus/rules/arq-platform.yml", "/etc/prometheus/rules/arq-hosts.yml"}


def test_retention_flags(prom):
    flags = prom.api("/api/v1/status/flags")
    assert flags["storage.tsdb.retention.time"] == "20d"
    # Prometheus prints sizes in binary units: 1GB is 1GiB.
    assert flags["storage.tsdb.retention.size"] == "1GiB"
    assert flags["storage.tsdb.path"] == "/var/lib/prometheus"
    assert flags["web.enable-lifecycle"] == "false"


def test_config_has_external_labels_and_alertmanager(prom, host):
    config = yaml.safe_load(prom.api("/api/v1/status/config")["yaml"])
    assert config["global"]["external_labels"] == {"cluster": "molecule", "replica": host.backend.host}
    assert config["global"]["scrape_interval"] == "5s"
    assert config["global"]["evaluation_interval"] == "15s"
    ams = prom.api("/api/v1/alertmanagers")["activeAlertmanagers"]
    assert [a["url"] for a in ams] == ["http://localhost:9093/api/v2/alerts"]


def test_config_files_are_private_to_prometheus(host):
    for path in ["/etc/prometheus/prometheus.yml", "/etc/prometheus/rules/arq-hosts.yml", "/etc/prometheus/file_sd/node.yml"]:
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("root", "prometheus", 0o640), path
    assert host.file("/etc/prometheus/prometheus.yml").content_string.startswith("#")


def test_config_reloaded_successfully(prom):
    assert prom.metric("prometheus_config_last_reload_successful") == 1


def test_remote_write_reaches_victoriametrics(host, prom):
    """Series written to VictoriaMetrics (Debian's package, :8428) carry the external labels."""
    def check():
        status, body = curl(host, 'http://127.0.0.1:8428/api/v1/series?match[]=up{replica="%s"}' % host.backend.host, "-g")
        assert status == "200", body
        series = json.loads(body)["data"]
        assert {s["job"] for s in series} == {"prometheus", "node"}, series
        assert all(s["cluster"] == "molecule" for s in series)
    prom.wait(check, timeout=90)


def test_secure_instance_refuses_without_credentials(host, prom):
    if not prom.secure:
        pytest.skip("plain instance")
    assert curl(host, "https://127.0.0.1:9090/-/ready", "-k")[0] == "401"
    assert curl(host, "https://127.0.0.1:9090/-/ready", "-k", "-u", "admin:wrong")[0] == "401"
    assert curl(host, "http://127.0.0.1:9090/-/ready")[0] == "400"
    web = host.file("/etc/prometheus/web.yml")
    assert web.mode == 0o640 and web.group == "prometheus"
    assert "s3cret" not in web.content_string


def test_upgrade_kept_every_series(host, prom):
    """2.53.3 -> 3.x in place: every series and sample of the old server, one restart, and no
    failed scrape since (3.x negotiates the scrape protocol and is strict about Content-Type)."""
    assert_upgraded_once(host, "prometheus", "3.5.3")
    before = json.loads(host.file("/var/tmp/prometheus-upgrade-before.json").content_string)
    assert before["version"] == "2.53.3"
    status, body = prom.get("/metrics")
    assert re.search(r'^prometheus_build_info\{[^}]*version="3\.5\.3', body, re.M), body[:300]
    assert before["series"] > 100
    assert prom.scalar('count({__name__=~".+"})', before["time"]) == before["series"]
    assert prom.scalar("sum(count_over_time(up[10m]))", before["time"]) == before["up_samples"]
    since = int(prom.query("time() - process_start_time_seconds{job=\"prometheus\"}")[0]["value"][1].split(".")[0])
    scraped = prom.query(f"sum by (job) (count_over_time(up[{since}s])) - sum by (job) (sum_over_time(up[{since}s]))")
    assert {r["metric"]["job"] for r in scraped} == {"prometheus", "node"}, scraped
    assert all(float(r["value"][1]) == 0 for r in scraped), scraped


def test_a_downgrade_the_data_cannot_take_is_refused_and_keeps_the_data(host, prom):
    """3.x data is readable from 2.55 on only: the preflight refuses 2.53.3, with --check and for
    real, and the running 3.x server keeps serving the same data."""
    if "upgrade" not in groups(host):
        pytest.skip("checked on the upgraded instance")
    before = json.loads(host.file("/var/tmp/prometheus-upgrade-before.json").content_string)
    pid = host.check_output("systemctl show -p MainPID --value prometheus")
    for mode in (["--check", "--diff"], []):
        rc, out = converge(host.backend.host, {"prometheus_version": "2.53.3"}, "--tags", "prometheus_install", *mode)
        assert rc != 0 and recap_changed(out) == 0, out[-2000:]
        assert ("prometheus: prometheus_version is 2.53.3, but the data in /var/lib/prometheus was written by 3.5.3, "
                "whose format versions before 2.55.0 cannot read") in out, out[-2000:]
    assert host.check_output("systemctl show -p MainPID --value prometheus") == pid
    assert prom.scalar('count({__name__=~".+"})', before["time"]) == before["series"]
