"""The grafana role: what it renders by default is known to Grafana; its dashboards are sound."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.arq.monitoring.plugins.filter.grafana_ini_errors import grafana_ini_errors
from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "molecule" / "_shared"))
from dashboards import DASHBOARDS, MAY_BE_EMPTY, queries, sent  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "grafana"
KNOWN = yaml.safe_load((ROLE / "vars/known_settings.yml").read_text())["__grafana_known_settings"]
VARS = yaml.safe_load((ROLE / "vars/main.yml").read_text())
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
# A healthy stack's series (what the dashboard queries are evaluated on).
SERIES = yaml.safe_load(Path(__file__).with_name("dashboard_series.yml").read_text())


def test_every_setting_the_role_renders_is_known():
    assert grafana_ini_errors(VARS["__grafana_ini_managed"], KNOWN) == []


def test_known_settings_are_lists_of_distinct_key_names():
    assert len(KNOWN) > 90
    for section, keys in KNOWN.items():
        assert isinstance(keys, list) and len(set(keys)) == len(keys), section
        assert all(isinstance(key, str) and re.fullmatch(r"[A-Za-z0-9_]+|\*", key) for key in keys), section
        assert keys == ["*"] or "*" not in keys, section


# Sections of Grafana's defaults.ini the old hand-trimmed list refused, with keys of each.
REAL_SETTINGS = {
    "auth.github": {"enabled": True, "client_id": "arq", "client_secret": "$__file{/etc/grafana/github_secret}",
                    "scopes": ["user:email", "read:org"], "allowed_organizations": ["arq"], "use_refresh_token": False},
    "auth.jwt": {"enabled": True, "header_name": "X-JWT-Assertion", "jwk_set_url": "https://idp.example/jwks",
                 "role_attribute_path": "role"},
    "auth.google": {"enabled": False, "hosted_domain": "example.com"},
    "auth.azuread": {"allowed_groups": ["ops"], "use_pkce": True},
    "auth.okta": {"org_attribute_path": "org", "skip_org_role_sync": True},
    "aws": {"assume_role_enabled": False, "allowed_auth_providers": ["default"]},
    "rbac": {"permission_cache": True},
    "log.frontend": {"enabled": False},
    "feature_toggles": {"enable": ["publicDashboards"], "anyToggle": True},
    "server.custom_response_headers": {"X-Served-By": "grafana"},
    "security": {"csrf_trusted_origins": "sso.example.com"},
    "instance_name": "grafana1",
}


def test_real_grafana_sections_are_accepted():
    assert grafana_ini_errors(REAL_SETTINGS, KNOWN) == []


def test_typo_sections_and_keys_are_refused_by_name():
    assert grafana_ini_errors({**REAL_SETTINGS, "auth.githib": {"enabled": True},
                               "auth.github": {"client_secert": "x", "enabled": True}}, KNOWN) == [
        "grafana_ini: [auth.githib] is not a section Grafana knows",
        "grafana_ini.auth.github.client_secert is not a key Grafana knows in [auth.github]",
    ]


def refused(tmp_path, role, variables, facts=None):
    """Run a role on this machine (local connection) expecting its preflight to stop it before any
    change; the whitespace-folded output (the YAML callback folds long messages)."""
    (tmp_path / "hosts").write_text(f"host1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{"hosts": "host1", "gather_facts": False, "vars": variables,
                                                        "roles": [{"role": role}]}]))
    extra = ["-e", json.dumps({"ansible_facts": facts})] if facts else []  # stands for another kind of host
    result = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml"), *extra],
                            capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")})
    recap = result.stdout.split("PLAY RECAP")[-1]
    assert result.returncode != 0 and "changed=0" in recap and "failed=1" in recap, result.stdout[-3000:]
    return " ".join(result.stdout.split())


def test_the_role_refuses_a_typo_before_it_changes_anything(tmp_path):
    """The whole path: include_vars, the filter, preflight's assert, the message the user reads."""
    words = refused(tmp_path, "arq.monitoring.grafana", {
        "grafana_admin_password": "not-admin",
        "grafana_ini": {**REAL_SETTINGS, "auth.githib": {"enabled": True}, "auth.github": {"client_secert": "x"}}})
    assert "msg: 'grafana: grafana_ini: [auth.githib] is not a section Grafana knows; " \
           "grafana_ini.auth.github.client_secert is not a key Grafana knows in [auth.github]'" in words


HOST = {"os_family": "Suse", "architecture": "x86_64", "pkg_mgr": "zypper"}


@pytest.mark.parametrize("role, variables, message", [
    ("arq.monitoring.grafana", {"grafana_admin_password": "not-admin", "grafana_install_method": "package"},
     "grafana_install_method: the package method needs apt or dnf (this host has zypper)"),
    ("arq.monitoring.node_exporter", {"node_exporter_install_method": "package"},
     "node_exporter_install_method: the package method needs apt (this host has dnf)"),
], ids=["grafana: apt or dnf", "exporters: apt only"])
def test_the_package_method_needs_a_package_manager_the_role_supports(tmp_path, role, variables, message):
    facts = HOST if role.endswith("grafana") else {**HOST, "os_family": "RedHat", "pkg_mgr": "dnf"}
    assert message in refused(tmp_path, role, variables, facts)


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


def test_overview_has_the_seed_panels():
    overview = json.loads((ROLE / "files/dashboards/arq-overview.json").read_text())
    assert overview["title"] == "arQ Platform Overview"
    text = " ".join(e for name, e, _variables in queries() if name.startswith("arq-overview"))
    for metric in ("http_requests_total", "http_request_duration_seconds_bucket", "process_resident_memory_bytes",
                   "process_cpu_seconds_total", "nodejs_eventloop_lag_seconds", "nodejs_heap_size_used_bytes",
                   "nodejs_active_handles_total", "pg_stat_database_numbackends", "pg_stat_database_xact_commit",
                   "redis_memory_used_bytes", "redis_keyspace_hits_total", "redis_connected_clients",
                   "node_cpu_seconds_total", "node_memory_MemAvailable_bytes", "node_filesystem_avail_bytes",
                   "node_network_receive_bytes_total", "up"):
        assert re.search(rf"\b{metric}\b", text), metric


def test_multi_value_variables_are_matched_as_regexes():
    """A variable that may stand for several values ("All" too) needs =~ or !~, never = or !=."""
    wrong = [name for name, expr, variables in queries() for v in variables if v.get("multi") or v.get("includeAll")
             if re.search(r'!?="[^"]*\$\{?' + v["name"] + r"\b", expr)]
    assert wrong == []


def healthy_stack_series():
    """SERIES as promtool input series: each target's, with its job and instance, and its up."""
    assert set(SERIES) == set(SERVICES)
    for service, exposed in SERIES.items():
        for host in exposed["hosts"]:
            target = f'job="{SERVICES[service]["job"]}", instance="{host}"'
            yield {"series": f"up{{{target}}}", "values": "1x40"}
            for series, values in exposed["series"].items():
                assert isinstance(values, str), f"{series}: quote its values (YAML reads 0x40 as 64)"
                metric, _brace, labels = series.rstrip("}").partition("{")
                yield {"series": f"{metric}{{{labels + ', ' if labels else ''}{target}}}", "values": values}


def check(name, query, empty=False):
    """A promql_expr_test, its name in a comment: query has (or, empty, has not) a sample that is a number."""
    numbers = f"({query}) > -Inf"
    return {"expr": f"# {name}\n" + (numbers if empty else f"absent({numbers})"), "eval_time": "10m", "exp_samples": []}


def promtool_test(promtool, tmp_path, checks):
    (tmp_path / "dashboards_test.yml").write_text(yaml.safe_dump({
        "rule_files": [], "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": list(healthy_stack_series()), "promql_expr_test": checks}]}))
    return subprocess.run([promtool, "test", "rules", "dashboards_test.yml"], cwd=tmp_path,
                          capture_output=True, text=True, check=False)


def test_every_dashboard_query_returns_data(promtool, tmp_path):
    """Every panel's and query variable's query, as Grafana sends it, parses and returns data on a
    healthy stack's series: an empty one is a panel that never shows anything (a label set that
    does not match, a metric the exporter does not have), but for those of MAY_BE_EMPTY."""
    found = sent()
    assert len(found) > 40 and set(MAY_BE_EMPTY) <= set(found)
    run = promtool_test(promtool, tmp_path, [check(name, query, name in MAY_BE_EMPTY) for name, query in found.items()])
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("query", [
    "sum(rate(up[1m])",
    'node_load1 / count by (instance) (node_cpu_seconds_total{mode="idle"})',
    "rate(pg_stat_database_deadlocks_total[1m])",
], ids=["does not parse", "job breaks the vector match", "no such metric"])
def test_a_broken_query_is_caught(promtool, tmp_path, query):
    assert promtool_test(promtool, tmp_path, [check("broken", query)]).returncode != 0


def test_no_dashboard_query_matches_a_whole_number_le_or_quantile():
    """Prometheus 3 stores le and quantile values as floats (le="1.0"): le="1" would select nothing."""
    found = sent()
    assert found and {name: q for name, q in found.items()
                      if re.search(r'\b(?:le|quantile)\s*(?:=|!=|=~|!~)\s*"[+-]?[0-9]+"', q)} == {}
