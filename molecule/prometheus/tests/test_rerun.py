"""Every run does the real tasks: --check --diff shows a new rule file and changes nothing,
--tags prometheus_configure writes it and the reload handler loads it without the other phases."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import converge, recap_changed, tasks_run  # noqa: E402

HOST = "prometheus-d13"
RULE = "/etc/prometheus/rules/recording.yml"
RECORDING = {"prometheus_rule_files": {"recording.yml": {"groups": [
    {"name": "recording", "rules": [{"record": "job:up:sum", "expr": "sum by (job) (up)"}]}]}}}


@pytest.fixture(autouse=True)
def only_once(host):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)


def rule_names(prom):
    return {r["name"] for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]}


def test_check_diff_then_configure_tag_reloads(host, prom):
    started = prom.metric("process_start_time_seconds")
    loaded = prom.metric("prometheus_config_last_reload_success_timestamp_seconds")
    try:
        rc, out = converge(HOST, RECORDING, "--check", "--diff")
        assert rc == 0 and recap_changed(out) > 0, out[-3000:]
        plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
        assert RULE in plain and re.search(r"^\+\s*record: job:up:sum$", plain, re.M), out[-3000:]
        # Nothing written, nothing reloaded, and no reload asked for in check mode.
        assert not host.file(RULE).exists
        assert prom.metric("prometheus_config_last_reload_success_timestamp_seconds") == loaded
        assert not [t for t in tasks_run(out, HOST) if t.startswith(("Send the reload signal", "Wait for the new configuration"))]

        rc, out = converge(HOST, RECORDING, "--tags", "prometheus_configure")
        assert rc == 0 and recap_changed(out) > 0, out[-3000:]
        ran = tasks_run(out, HOST)
        assert "Write the configuration of prometheus" in ran, ran
        assert "Wait for the new configuration to load in prometheus" in ran, ran
        assert not [t for t in ran if t.startswith(("Install the release", "Start prometheus"))], ran
        assert host.file(RULE).exists and "job:up:sum" in rule_names(prom)
        assert prom.metric("prometheus_config_last_reload_success_timestamp_seconds") > loaded
    finally:
        rc, out = converge(HOST)
        assert rc == 0, out[-3000:]
    assert not host.file(RULE).exists and "job:up:sum" not in rule_names(prom)
    assert prom.metric("process_start_time_seconds") == started
