"""The prometheus role's shipped alerts, rendered with the default thresholds, pass promtool's
checks and the unit tests in tests/rules (each alert fires above its threshold after its `for:`
and stays quiet below it)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

ROOT = Path(__file__).resolve().parents[3]
TESTS = sorted((ROOT / "tests/rules").glob("*_test.yml"))
# A matcher on a whole-number bucket bound or quantile (le="1", quantile!="0"): Prometheus 3 stores
# them as floats (le="1.0", quantile="0.0"; migration guide, "le and quantile label values").
INTEGER_LE_OR_QUANTILE = re.compile(r'\b(?:le|quantile)\s*(?:=|!=|=~|!~)\s*"[+-]?[0-9]+"')


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rules")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(Path(__file__).with_name("render_rules.yml")),
         "-e", f"rules_dir={out}", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for test in TESTS:
        shutil.copy(test, out)
    return out


def shipped_alerts(rules_dir):
    return {
        rule["alert"]
        for path in rules_dir.glob("arq-*.yml")
        if not path.name.endswith("_test.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_rule_files_pass_promtool_check(rules_dir, promtool):
    files = sorted(str(p) for p in rules_dir.glob("*.yml") if not p.name.endswith("_test.yml"))
    assert files
    run = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("test", TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests(rules_dir, test, promtool):
    run = subprocess.run([promtool, "test", "rules", test.name], cwd=rules_dir, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_shipped_alert_is_tested_firing_and_quiet(rules_dir):
    fired, quiet = set(), set()
    for test in TESTS:
        for case in yaml.safe_load(test.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = shipped_alerts(rules_dir)
    assert {"APIDown", "DatabaseDown", "RedisDown", "HighCPUUsage", "HighMemoryUsage", "HighErrorRate",
            "SlowResponseTime", "PostgreSQLTooManyConnections", "RedisMemoryHigh"} <= alerts
    assert alerts - fired == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"


def test_the_rules_select_the_catalogs_jobs(rules_dir):
    """A job the shipped rules select (up{job="postgres"}) is a scrape job of the catalog."""
    named = {job for path in rules_dir.glob("arq-*.yml") if not path.name.endswith("_test.yml")
             for job in re.findall(r'job="([^"]+)"', path.read_text())}
    assert {"backend", "postgres", "redis"} <= named <= {service["job"] for service in SERVICES.values()}


def test_no_rule_matches_a_whole_number_le_or_quantile(rules_dir):
    exprs = [rule["expr"] for path in rules_dir.glob("arq-*.yml") if not path.name.endswith("_test.yml")
             for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]
    assert exprs and [e for e in exprs if INTEGER_LE_OR_QUANTILE.search(e)] == []
    assert INTEGER_LE_OR_QUANTILE.search('sum(rate(x_bucket{le="1"}[5m]))')
    assert not INTEGER_LE_OR_QUANTILE.search('rate(x_bucket{le="1.0"}[5m]) and y{quantile="0.99"}')
