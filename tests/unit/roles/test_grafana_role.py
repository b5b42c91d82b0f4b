"""The grafana role: what it renders by default is known to Grafana; its dashboards are sound."""
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.arq.monitoring.plugins.filter.grafana_ini_errors import grafana_ini_errors

ROLE = Path(__file__).resolve().parents[3] / "roles" / "grafana"
KNOWN = yaml.safe_load((ROLE / "vars/known_settings.yml").read_text())["__grafana_known_settings"]
VARS = yaml.safe_load((ROLE / "vars/main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
DASHBOARDS = sorted((ROLE / "files/dashboards").glob("*.json"))
# Grafana's variables, replaced by something PromQL accepts before promtool parses the expression.
SUBSTITUTIONS = [(r"\$__(rate_interval|interval|range)\b", "5m"), (r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".+")]


def test_every_setting_the_role_renders_is_known():
    assert grafana_ini_errors(VARS["__grafana_ini_managed"], KNOWN) == []


def test_secure_defaults():
    ini = VARS["__grafana_ini_managed"]
    assert ini["auth.anonymous"]["enabled"] is False and ini["auth.basic"]["enabled"] is True
    assert ini["auth"]["disable_login_form"] is False
    assert ini["analytics"] == {"reporting_enabled": False, "check_for_updates": False, "check_for_plugin_updates": False}
    assert "$__file{" in ini["security"]["admin_password"] and "$__file{" in ini["security"]["secret_key"]
    assert DEFAULTS["grafana_admin_password"] == "" and DEFAULTS["grafana_web_listen_address"].endswith(":3000")
    assert DEFAULTS["grafana_version"] != "latest"


def test_shipped_dashboards_match_the_role():
    assert [p.stem for p in DASHBOARDS] == sorted(VARS["__grafana_shipped_dashboards"]) == sorted(DEFAULTS["grafana_dashboards"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_has_uid_title_and_uses_the_fixed_datasource(path):
    dash = json.loads(path.read_text())
    assert dash["uid"] == path.stem and dash["title"]
    assert "id" not in dash
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert panels and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "arq-prometheus"}, panel["title"]
        assert panel["targets"], panel["title"]


def exprs():
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield f"{path.stem}: {panel['title']} {target['refId']}", target["expr"]


def test_overview_has_the_seed_panels():
    overview = json.loads((ROLE / "files/dashboards/arq-overview.json").read_text())
    assert overview["title"] == "arQ Platform Overview"
    text = " ".join(e for name, e in exprs() if name.startswith("arq-overview"))
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket", "process_resident_memory_bytes",
                   "process_cpu_seconds_total", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes",
                   "nodejs_active_handles_total", "pg_stat_database_numbackends", "pg_stat_database_xact_commit",
                   "redis_memory_used_bytes", "redis_keyspace_hits_total", "redis_connected_clients",
                   "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
                   "node_network_receive_bytes_total", "up"):
        assert re.search(rf"\b{metric}\b", text), metric


def test_every_promql_expression_parses(promtool, tmp_path):
    rules = []
    for index, (name, expr) in enumerate(exprs()):
        for pattern, replacement in SUBSTITUTIONS:
            expr = re.sub(pattern, replacement, expr)
        rules.append({"record": f"dashboard:expr_{index}", "expr": expr, "labels": {"panel": name}})
    assert len(rules) > 40
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_expression_is_caught(promtool, tmp_path):
    rule_file = tmp_path / "broken.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum(rate(up[5m])"}]}]}))
    assert subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, check=False).returncode != 0
