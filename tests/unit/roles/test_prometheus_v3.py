"""The prometheus role's preflight refusals of what Prometheus 3 removed or changed from 2.x
(flags, feature flags, Alertmanager API v1, renamed scrape settings, $ in external labels),
rendered from the role's own data: each names its variable and what to do instead, and none of
them applies to a 2.x that a user pins, or to the package method (Debian's 2.x)."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles/prometheus"
PLAY = f"""
- hosts: all
  connection: local
  gather_facts: false
  vars_files: ["{ROLE}/vars/main.yml"]
  tasks:
    - ansible.builtin.set_fact:
        found:
          refusals: "{{{{ __prometheus_service.preflight.checks | rejectattr('ok') | map(attribute='msg') | list }}}}"
          config: "{{{{ __prometheus_config }}}}"
    - ansible.builtin.copy:
        content: "{{{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'found'))) | to_json }}}}"
        dest: "{{{{ out }}}}/found.json"
        mode: "0600"
      run_once: true
"""
V2 = {"prometheus_version": "2.53.3"}
PACKAGE = {"prometheus_install_method": "package"}
REMOVED_FLAGS = {"prometheus_extra_flags": ["--storage.tsdb.retention=30d", "--alertmanager.timeout=10s",
                                            "--no-storage.tsdb.allow-overlapping-blocks", "--query.max-samples=1000"]}
REMOVED_FEATURES = {"prometheus_extra_flags": ["--enable-feature=agent,promql-at-modifier,exemplar-storage",
                                               "--enable-feature", "remote-write-receiver"]}
API_V1 = {"prometheus_alertmanagers": ["am1:9093"], "prometheus_alertmanager_config": {"api_version": "v1"}}
CLASSIC = {"prometheus_scrape_configs": [{"job_name": "app", "scrape_classic_histograms": True,
                                          "static_configs": [{"targets": ["app1:8080"]}]}]}
DOLLAR = {"prometheus_external_labels": {"cluster": "prod", "note": "cost $HOME"}}
# name: (host variables, the messages' expected parts; [] is no refusal)
CASES = {
    "defaults": ({}, []),
    "removed flags": (REMOVED_FLAGS, [
        "prometheus_extra_flags: Prometheus 3 has no --storage.tsdb.retention (use prometheus_storage_retention_time), "
        "--alertmanager.timeout (set timeout in prometheus_alertmanager_config), "
        "--storage.tsdb.allow-overlapping-blocks (overlapping blocks are always accepted; remove it)"]),
    "flags 3.x keeps": ({"prometheus_extra_flags": ["--storage.tsdb.retention.time=30d", "--web.enable-remote-write-receiver",
                                                    "--enable-feature=exemplar-storage,promql-experimental-functions",
                                                    "--agent=false"]}, []),
    "removed feature flags": (REMOVED_FEATURES, [
        "prometheus_extra_flags: Prometheus 3 has no --enable-feature=agent (agent mode is the --agent flag), "
        "--enable-feature=promql-at-modifier (always on; remove it), "
        "--enable-feature=remote-write-receiver (use --web.enable-remote-write-receiver)"]),
    "alertmanager api v1": (API_V1, ["prometheus_alertmanager_config: api_version v1 is refused by Prometheus 3"]),
    "alertmanager api v2": ({"prometheus_alertmanager_config": {"api_version": "v2"}}, []),
    "scrape_classic_histograms": (CLASSIC, [
        "prometheus_scrape_configs: scrape_classic_histograms is always_scrape_classic_histograms in Prometheus 3 (jobs app)"]),
    "$ in an external label": (DOLLAR, ["prometheus_external_labels and prometheus_replica: Prometheus 3 replaces $NAME"]),
    "$ in the replica": ({"prometheus_replica": "${HOSTNAME}"}, ["prometheus_external_labels and prometheus_replica"]),
    "$$ in an external label": ({"prometheus_external_labels": {"note": "cost $$5"}}, []),
    "extra flags a string": ({"prometheus_extra_flags": "--enable-feature=agent"}, []),  # the core's list check
    "not a version": ({"prometheus_version": "latest", **REMOVED_FLAGS}, []),  # the core's version check
}
# On 3.5.3 unless a case says otherwise, whatever the role's default is.
CASES = {name: ({"prometheus_version": "3.5.3", **given}, expected) for name, (given, expected) in CASES.items()}
for name, (given, expected) in list(CASES.items()):
    if expected:
        CASES[name + ", 2.x"] = ({**given, **V2}, [])
        CASES[name + ", package"] = ({**given, **PACKAGE}, [])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{case: {refusals: the preflight checks' messages, config: prometheus.yml}} of every case, in
    one ansible-playbook run (a host each)."""
    tmp = tmp_path_factory.mktemp("prometheus_v3")
    hosts = {f"case{i}": dict(case[0], ansible_python_interpreter="{{ ansible_playbook_python }}")
             for i, case in enumerate(CASES.values())}
    # The role's defaults as group variables, below each case's host variables (as role defaults are).
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    (tmp / "inventory.yml").write_text(yaml.safe_dump({"all": {"vars": defaults, "hosts": hosts}}))
    (tmp / "play.yml").write_text(PLAY)
    run = subprocess.run(
        ["ansible-playbook", "-i", str(tmp / "inventory.yml"), str(tmp / "play.yml"), "-e", f"out={tmp}", "--forks", "20"],
        cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")), capture_output=True, text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    found = json.loads((tmp / "found.json").read_text())
    return {name: found[f"case{i}"] for i, name in enumerate(CASES)}


@pytest.fixture(scope="module")
def refusals(rendered):
    return {case: found["refusals"] for case, found in rendered.items()}


@pytest.mark.parametrize("case", CASES)
def test_refusal(refusals, case):
    expected = CASES[case][1]
    messages = refusals[case]
    assert len(messages) == len(expected), messages
    for message, part in zip(messages, expected):
        assert part in message, message


def test_the_tables_are_what_3_0_removed():
    """The removed flags and feature flags the checks know: the migration guide's and the 3.0.0
    CHANGELOG's lists (cmd/prometheus/main.go of v2.53.3 against v3.5.3)."""
    variables = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert set(variables["__prometheus_v3_removed_flags"]) == {
        "--storage.tsdb.retention", "--alertmanager.timeout", "--storage.tsdb.allow-overlapping-blocks"}
    assert set(variables["__prometheus_v3_removed_features"]) == {
        "agent", "remote-write-receiver", "otlp-write-receiver", "promql-at-modifier", "promql-negative-offset",
        "new-service-discovery-manager", "no-default-scrape-port", "expand-external-labels", "auto-gomaxprocs",
        "auto-gomemlimit"}


@pytest.mark.parametrize(("case", "error"), [
    ("defaults", None), ("alertmanager api v2", None), ("$$ in an external label", None),
    ("alertmanager api v1", 'expected Alertmanager api version to be one of [v2] but got v1'),
    ("scrape_classic_histograms", "field scrape_classic_histograms not found"),
])
def test_promtool_3_agrees(rendered, case, error, tmp_path, promtool):
    """prometheus.yml as the role writes it: promtool 3.5.3 takes what the checks take, and refuses
    (in the preflight's last step, in its own words) the settings they refuse by name."""
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(rendered[case]["config"]))
    run = subprocess.run([promtool, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
                         capture_output=True, text=True, check=False)
    if error is None:
        assert run.returncode == 0, run.stdout + run.stderr
    else:
        assert run.returncode != 0 and error in run.stdout + run.stderr, run.stdout + run.stderr
