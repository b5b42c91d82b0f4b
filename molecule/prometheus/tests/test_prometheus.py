"""prometheus, verified from inside each instance the way a user would check it."""
import json
import os
import re
import sys

import pytest
import yaml
from conftest import curl

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service  # noqa: E402

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
    if "upgrade" not in host.ansible.get_variables()["group_names"]:
        pytest.skip("installed fresh")
    before = json.loads(host.file("/var/tmp/prometheus-upgrade-before.json").content_string)
    assert before["version"] == "2.42.0"
    status, body = prom.get("/metrics")
    assert re.search(r'^prometheus_build_info\{[^}]*version="2\.53\.3', body, re.M), body[:300]
    assert before["series"] > 100
    assert prom.scalar('count({__name__=~".+"})', before["time"]) == before["series"]
    assert prom.scalar("sum(count_over_time(up[10m]))", before["time"]) == before["up_samples"]
