"""Faults injected at verify time: promtool refuses a broken rule or config in the preflight, the
role run fails with promtool's message, and the running Prometheus keeps its configuration and its
data; likewise a web.yml that promtool check web-config refuses. A new file_sd target arrives without any reload;
under an external URL's path, the role's health and reload checks use the prefix."""
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

PLAYBOOK = Path(__file__).resolve().parents[1] / "faults.yml"
# Each fault costs a role run: inject them on one instance (Debian 13, HTTPS with basic auth,
# so the role's own reload checks go through web.yml too), except where ONLY_ON names another.
FAULT_HOST = "prometheus-d13"
PLAIN_HOST = "prometheus-d12"
ONLY_ON = {"test_rejected_web_config_never_goes_live": PLAIN_HOST}


@pytest.fixture(autouse=True)
def one_instance(request, host):
    wanted = ONLY_ON.get(request.function.__name__, FAULT_HOST)
    if host.backend.host != wanted:
        pytest.skip("injected on " + wanted)


def apply(host, fault, extra_vars=None):
    inventory = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
    return subprocess.run(
        ["ansible-playbook", "-i", inventory, str(PLAYBOOK), "--limit", host.backend.host, "-e", "fault=" + fault,
         "-e", json.dumps(extra_vars or {})],
        capture_output=True, text=True,
    )


@pytest.fixture
def snapshot(prom):
    """What must not change: process, last good load, config, and the data of a minute ago
    (once there is some: the instance may have started less than a minute ago)."""
    def settled():
        at = int(time.time()) - 60
        assert prom.query("count(up)", at), "no data a minute ago yet"
        return at
    at = prom.wait(settled, timeout=120)

    def take():
        return {
            "started": prom.metric("process_start_time_seconds"),
            "loaded": prom.metric("prometheus_config_last_reload_success_timestamp_seconds"),
            "ok": prom.metric("prometheus_config_last_reload_successful"),
            "config": prom.api("/api/v1/status/config")["yaml"],
            "rules": sorted(r["name"] for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]),
            "series": prom.scalar('count({__name__=~".+"})', at),
            "samples": prom.scalar("sum(count_over_time(up[1m]))", at),
        }
    return take


@pytest.mark.parametrize("fault,message", [
    ("rule", "unclosed left parenthesis"),
    ("config", "scrape timeout greater than scrape interval"),
])
def test_rejected_change_keeps_prometheus_serving(host, prom, snapshot, fault, message):
    before = snapshot()
    run = apply(host, fault)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "is refused by promtool" in out and message in out, out
    assert not host.file("/etc/prometheus/rules/broken.yml").exists
    assert "broken" not in host.file("/etc/prometheus/prometheus.yml").content_string
    status, _ = prom.get("/-/ready")
    assert status == "200"
    assert snapshot() == before
    assert "BrokenRule" not in before["rules"] and "job_name: broken" not in before["config"]


def test_rejected_web_config_never_goes_live(host, prom, snapshot):
    """Turning HTTPS on with a certificate where the key belongs: the preflight refuses the key,
    naming the variable, and Prometheus keeps serving plain HTTP with nothing written."""
    cert = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "tls/cert.pem").read_text()
    before = snapshot()
    try:
        run = apply(host, "none", {"prometheus_web_tls_cert": cert, "prometheus_web_tls_key": cert})
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert "prometheus_web_tls_key must be a PEM private key" in out, out
        # Refused in the preflight: not even the certificate and key were written.
        assert not [f for f in ("web.yml", "tls.crt", "tls.key") if host.file("/etc/prometheus/" + f).exists]
        assert "--web.config.file" not in host.file("/etc/systemd/system/prometheus.service").content_string
        assert prom.get("/-/ready")[0] == "200"
        assert snapshot() == before
    finally:
        run = apply(host, "none")
        assert run.returncode == 0, run.stdout + run.stderr
    assert not host.file("/etc/prometheus/tls.key").exists and not host.file("/etc/prometheus/tls.crt").exists


def test_failed_reload_fails_the_run_loudly_and_recovers(host, prom):
    """promtool accepts the config, Prometheus cannot apply it: the role's reload check fails with
    Prometheus' own reason; the server keeps running, and the next good run loads cleanly."""
    started = prom.metric("prometheus_config_last_reload_success_timestamp_seconds")
    try:
        run = apply(host, "reload")
        out = run.stdout + run.stderr
        assert run.returncode != 0, out
        assert "did not load the new configuration" in out and "unable to read CA cert" in out, out
        assert prom.metric("prometheus_config_last_reload_successful") == 0
        assert prom.get("/-/ready")[0] == "200"
    finally:
        run = apply(host, "none")
        assert run.returncode == 0, run.stdout + run.stderr
    # Prometheus 2.53 panics ("duplicate metrics collector registration") on the reload after a
    # failed remote-storage apply and systemd restarts it: the role must still end healthy.
    assert prom.get("/-/ready")[0] == "200"
    assert prom.metric("prometheus_config_last_reload_successful") == 1
    assert prom.metric("prometheus_config_last_reload_success_timestamp_seconds") > started
    config = yaml.safe_load(prom.api("/api/v1/status/config")["yaml"])
    assert [w["url"] for w in config["remote_write"]] == ["http://127.0.0.1:8428/api/v1/write"]


def test_changes_apply_without_restart(host, prom):
    """A new file_sd target arrives without a reload; a new rule file is loaded by a reload the
    role confirms; a rule file the role no longer manages is removed (another reload)."""
    started = prom.metric("process_start_time_seconds")
    loaded = prom.metric("prometheus_config_last_reload_success_timestamp_seconds")
    try:
        run = apply(host, "file_sd")
        assert run.returncode == 0, run.stdout + run.stderr

        def target_added():
            targets = prom.api("/api/v1/targets")["activeTargets"]
            added = [t for t in targets if t["labels"]["instance"] == "127.0.0.1:9100"]
            assert added and added[0]["labels"]["role"] == "added" and added[0]["health"] == "up", targets
        prom.wait(target_added)
        assert prom.metric("prometheus_config_last_reload_success_timestamp_seconds") == loaded

        run = apply(host, "rule_added")
        assert run.returncode == 0, run.stdout + run.stderr
        rules = {r["name"] for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]}
        assert "job:up:sum" in rules
        assert prom.metric("prometheus_config_last_reload_success_timestamp_seconds") > loaded
        assert prom.metric("prometheus_config_last_reload_successful") == 1
    finally:
        run = apply(host, "none")
        assert run.returncode == 0, run.stdout + run.stderr
    assert not host.file("/etc/prometheus/rules/recording.yml").exists
    rules = {r["name"] for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]}
    assert "job:up:sum" not in rules
    assert prom.metric("process_start_time_seconds") == started
    config = yaml.safe_load(prom.api("/api/v1/status/config")["yaml"])
    assert [c["job_name"] for c in config["scrape_configs"]] == ["prometheus", "node"]


def test_external_url_path_prefixes_health_and_reload(host, prom):
    """Behind a proxy path (prometheus_web_external_url with a path) Prometheus serves under that
    prefix only: the role's health check after the restart and its reload confirmation must use it."""
    prefixed = type(prom)(host)
    prefixed.base += "/prom"
    url = {"prometheus_web_external_url": "https://prometheus.example.internal/prom/"}
    try:
        run = apply(host, "none", url)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        assert prefixed.get("/-/ready")[0] == "200"
        assert prom.get("/-/ready")[0] != "200"
        started = prefixed.metric("process_start_time_seconds")
        loaded = prefixed.metric("prometheus_config_last_reload_success_timestamp_seconds")

        run = apply(host, "rule_added", url)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out
        # The reload handler's confirmation ran, against the prefixed /metrics.
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
        assert re.search(r"^RUNNING HANDLER \[[^]]*Wait for [^]]*configuration[^]]*prometheus\] \**\n(?:(?!TASK|RUNNING HANDLER).*\n)*?ok: \[%s\]" % host.backend.host,
                         plain, re.M), out
        assert prefixed.metric("prometheus_config_last_reload_success_timestamp_seconds") > loaded
        assert prefixed.metric("process_start_time_seconds") == started
        rules = {r["name"] for g in prefixed.api("/api/v1/rules")["groups"] for r in g["rules"]}
        assert "job:up:sum" in rules
    finally:
        run = apply(host, "none")
        assert run.returncode == 0, run.stdout + run.stderr
    assert prom.get("/-/ready")[0] == "200"
    assert not host.file("/etc/prometheus/rules/recording.yml").exists
