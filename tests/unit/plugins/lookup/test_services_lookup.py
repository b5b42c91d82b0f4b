"""arq.monitoring.services, called as the playbooks call it (ansible-playbook on localhost), and directly."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.arq.monitoring.plugins.lookup.services import LookupModule
from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

REPO = Path(__file__).resolve().parents[4]
# What each probe of the playbook sets, as the playbooks and the firewall template read it.
PROBES = {
    "catalog": "{{ lookup('arq.monitoring.services') }}",
    "one": "{{ lookup('arq.monitoring.services', 'alertmanager') }}",
    "two": "{{ query('arq.monitoring.services', 'node_exporter', 'backend') }}",
    "attribute": "{{ lookup('arq.monitoring.services', 'alertmanager').cluster_port }}",
    "listen_default": ("{{ lookup('ansible.builtin.vars', lookup('arq.monitoring.services', 'prometheus').listen_var,"
                       " default='unset') }}"),
    "own_groups": "{{ lookup('arq.monitoring.services').values() | selectattr('role') | map(attribute='group') | join(':') }}",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """{probe: value} and the message of an unknown service, from one ansible-playbook run."""
    tmp = tmp_path_factory.mktemp("services")
    out = tmp / "out.json"
    tasks = [{"ansible.builtin.set_fact": {name: expression}} for name, expression in PROBES.items()]
    tasks.append({"block": [{"ansible.builtin.set_fact": {"unknown": "{{ lookup('arq.monitoring.services', 'nginx') }}"}}],
                  "rescue": [{"ansible.builtin.set_fact": {"error": "{{ ansible_failed_result.msg }}"}}]})
    names = list(PROBES) + ["unknown", "error"]
    tasks.append({"ansible.builtin.copy": {
        "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in names),
        "dest": str(out)}})
    book = tmp / "play.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks,
                                 "vars": {"prometheus_web_listen_address": "127.0.0.1:9190"}}]))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(book)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def test_no_term_gives_the_whole_catalog(run):
    assert run["catalog"] == SERVICES


def test_one_term_gives_its_entry(run):
    assert run["one"] == SERVICES["alertmanager"]
    assert run["attribute"] == 9094


def test_query_gives_a_list_of_entries(run):
    assert run["two"] == [SERVICES["node_exporter"], SERVICES["backend"]]


def test_a_listen_variable_names_the_hosts_variable(run):
    assert run["listen_default"] == "127.0.0.1:9190"


def test_the_groups_of_the_collections_own_services(run):
    # site.yml's first play: every host of the stack, in the order the later plays run.
    assert run["own_groups"] == "node_exporter:postgres_exporter:redis_exporter:victoriametrics:alertmanager:prometheus:grafana"


def test_an_unknown_service_is_a_clear_error(run):
    assert run["unknown"] is None
    assert "arq.monitoring.services: unknown service 'nginx' (known: node_exporter, " in run["error"]


def test_callers_get_a_copy():
    entry = LookupModule().run(["prometheus"])[0]
    catalog = LookupModule().run([])[0]
    entry["port"] = 1
    catalog["grafana"]["group"] = "elsewhere"
    assert SERVICES["prometheus"]["port"] == 9090 and SERVICES["grafana"]["group"] == "grafana"
