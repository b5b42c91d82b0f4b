"""arq.monitoring.config_check, run as Ansible runs a module, with the real promtool and amtool:
the new files are checked together in a private directory, and nothing else is touched."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "config_check.py"
PROMTOOL = os.environ.get("PROMTOOL") or shutil.which("promtool")
AMTOOL = os.environ.get("AMTOOL") or shutil.which("amtool")
needs_promtool = pytest.mark.skipif(not PROMTOOL, reason="promtool not found (make test sets PROMTOOL)")
needs_amtool = pytest.mark.skipif(not AMTOOL, reason="amtool not found (make test sets AMTOOL)")

RULES = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n"
CONFIG = "rule_files: [rules/*.yml]\nscrape_configs:\n- job_name: x\n  static_configs: [{targets: ['a:1']}]\n"


def run(tmp_path, check=False, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "service": "prometheus", **args, "_ansible_check_mode": check, "_ansible_tmpdir": str(tmp_path / "tmp")}}))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, check=False)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def prometheus_files(rules=RULES, config=CONFIG, rule_name="a.yml"):
    return [
        {"directory": "/etc/prometheus/rules", "content": {rule_name: rules},
         "validate": PROMTOOL + " check rules %s", "source": "prometheus_rule_files"},
        {"directory": "/etc/prometheus", "content": {"prometheus.yml": config},
         "validate": PROMTOOL + " check config %s", "source": "prometheus_scrape_configs"},
    ]


@needs_promtool
@pytest.mark.parametrize("check", [False, True])
def test_a_good_set_passes_and_leaves_nothing_behind(tmp_path, check):
    result = run(tmp_path, check, checker={"path": PROMTOOL}, files=prometheus_files())
    assert not result.get("failed") and result["changed"] is False, result
    assert result["checked"] == ["/etc/prometheus/rules/a.yml", "/etc/prometheus/prometheus.yml"]
    assert os.listdir(tmp_path / "tmp") == []


@needs_promtool
@pytest.mark.parametrize("check", [False, True])
def test_the_config_is_checked_against_the_new_rules_not_the_hosts(tmp_path, check):
    # The broken rule exists only in the new set: prometheus.yml's check must see it, by its final path.
    result = run(tmp_path, check, checker={"path": PROMTOOL}, files=[
        {"directory": "/etc/prometheus/rules", "content": {"b.yml": "groups:\n- name: g\n  rules:\n  - alert: B\n    expr: rate(up[5m]\n"}},
        prometheus_files()[1]])
    assert result["failed"], result
    assert result["msg"].startswith("prometheus: /etc/prometheus/prometheus.yml (made from prometheus_scrape_configs) is refused by promtool")
    assert "/etc/prometheus/rules/b.yml" in result["msg"] and "unclosed left parenthesis" in result["msg"]
    assert "arq-check-" not in result["msg"]
    assert os.listdir(tmp_path / "tmp") == []


@needs_promtool
@pytest.mark.parametrize("bad,said", [
    ("global: {scrape_interval: 15}\n", "not a valid duration"),
    ("global: {evaluation_interval: 1 minute}\n", 'unknown unit " minute"'),
    ("global: {scrape_interval: 5s, scrape_timeout: 10s}\n", "scrape timeout greater than scrape interval"),
    ('global: {external_labels: {"": x}}\n', "is not a valid label name"),
    ("alerting: {alertmanagers: 'localhost:9093'}\n", "cannot unmarshal"),
])
def test_prometheus_yml_refusals_name_the_variables(tmp_path, bad, said):
    result = run(tmp_path, checker={"path": PROMTOOL}, files=prometheus_files(config=CONFIG + bad))
    assert result["failed"] and "made from prometheus_scrape_configs" in result["msg"] and said in result["msg"], result


@needs_promtool
def test_a_rule_refusal_names_its_file_and_variable(tmp_path):
    rules = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: nosuchfunction(up)\n    for: 1 minute\n"
    result = run(tmp_path, checker={"path": PROMTOOL}, files=prometheus_files(rules=rules))
    assert result["failed"], result
    assert "/etc/prometheus/rules/a.yml (made from prometheus_rule_files) is refused by promtool" in result["msg"]


@needs_promtool
def test_secrets_are_staged_but_never_shown(tmp_path):
    # web.yml names its pair by relative paths: the check loads the new pair, not the host's.
    web = "tls_server_config: {cert_file: tls.crt, key_file: tls.key}\n"
    result = run(tmp_path, checker={"path": PROMTOOL}, secrets=[
        {"directory": "/etc/prometheus", "content": {"tls.crt": "not a certificate TOPSECRET", "tls.key": "TOPSECRET"}},
        {"directory": "/etc/prometheus", "content": {"web.yml": web}, "validate": PROMTOOL + " check web-config %s",
         "source": "prometheus_web_tls_cert"}])
    assert result["failed"] and "web.yml (made from prometheus_web_tls_cert)" in result["msg"], result
    assert "TOPSECRET" not in json.dumps(result)


@needs_amtool
def test_alertmanager_config_is_checked_with_its_new_templates(tmp_path):
    config = "route: {receiver: x}\nreceivers: [{name: x}]\ntemplates: [templates/*.tmpl]\n"
    files = [{"directory": "/etc/alertmanager/templates", "content": {"a.tmpl": '{{ define "a" }}{{ .X \n'}},
             {"directory": "/etc/alertmanager", "content": {"alertmanager.yml": config},
              "validate": AMTOOL + " check-config %s", "source": "alertmanager_route"}]
    result = run(tmp_path, checker={"path": AMTOOL}, files=files)
    assert result["failed"] and "unclosed action" in result["msg"], result
    files[0]["content"] = {"a.tmpl": '{{ define "a" }}ok{{ end }}\n'}
    assert not run(tmp_path, checker={"path": AMTOOL}, files=files).get("failed")


@needs_promtool
def test_the_hosts_checker_is_used_only_when_it_is_the_releases(tmp_path):
    digest = hashlib.sha1(Path(PROMTOOL).read_bytes()).hexdigest()
    files = prometheus_files()
    answer = run(tmp_path, checker={"path": PROMTOOL, "sha1": "0" * 40}, files=files)
    assert answer["need_checker"] and "checked" not in answer and not answer.get("failed"), answer
    assert run(tmp_path, checker={"path": str(tmp_path / "missing"), "sha1": digest}, files=files)["need_checker"]
    # The transferred copy stands in for the host's path in the validate commands.
    copy = tmp_path / "promtool-copy"
    shutil.copy(PROMTOOL, copy)
    result = run(tmp_path, checker={"path": "/nonexistent/promtool", "sha1": digest, "source": str(copy)},
                 files=[dict(group, validate=group["validate"].replace(PROMTOOL, "/nonexistent/promtool")) for group in files])
    assert not result.get("failed") and result["checker"] == str(copy), result


def test_a_package_checker_not_installed_yet_warns_and_checks_at_write_time(tmp_path):
    result = run(tmp_path, checker={"path": str(tmp_path / "none")}, files=[
        {"directory": "/etc/x", "content": {"x.yml": "broken: ["}, "validate": str(tmp_path / "none") + " %s"}])
    assert not result.get("failed") and result["checked"] == [] and "not installed yet" in json.dumps(result["warnings"])


@pytest.mark.parametrize("installed, wanted, refused", [
    ("3.5.3", "2.53.3", True), ("3.0.0", "2.54.1", True), ("3.5.3", "2.55.0", False),
    ("2.53.3", "2.42.0", False), ("2.53.3", "3.5.3", False), ("3.5.3", "3.1.0", False)])
def test_a_version_too_old_for_the_data_is_refused_before_anything(tmp_path, installed, wanted, refused):
    program = tmp_path / "prometheus"
    program.write_text(f"#!/bin/sh\necho 'prometheus, version {installed}+ds1 (branch: debian/sid)'\n")
    program.chmod(0o755)
    data = {"program": str(program), "version": wanted, "variable": "prometheus_version",
            "path": "/var/lib/prometheus", "formats": [{"since": "3.0.0", "readable_from": "2.55.0"}]}
    result = run(tmp_path, True, data=data)
    assert bool(result.get("failed")) is refused, result
    if refused:
        assert result["msg"] == (
            f"prometheus: prometheus_version is {wanted}, but the data in /var/lib/prometheus was written by "
            f"{installed}, whose format versions before 2.55.0 cannot read: install 2.55.0 or newer, or move the data away first")


def test_no_installed_program_means_no_data_to_keep(tmp_path):
    data = {"program": str(tmp_path / "absent"), "version": "2.53.3", "variable": "prometheus_version",
            "formats": [{"since": "3.0.0", "readable_from": "2.55.0"}]}
    assert not run(tmp_path, False, data=data).get("failed")
