"""arq.monitoring.inputs_digest, called as the roles call it: from a playbook run by ansible-playbook.

One playbook computes the digest under several sets of variables (play vars, with task vars
changing one thing at a time) and writes them all to a JSON file; it runs twice, in two
processes with different hash seeds, and the tests compare the digests.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
LOOKUP = "lookup('arq.monitoring.inputs_digest', 'node_exporter_', 'arq_monitoring_'%s)"

# name: (task vars, extra= argument)
CASES = {
    "base": ({}, ""),
    "base_again": ({}, ""),
    "dict_reordered": ({"node_exporter_d": {"b": [2, 3], "a": 1}}, ""),
    "unrelated_changed": ({"unrelated": "u2", "nodeexporter_x": "no underscore", "exporter_port": 1}, ""),
    "prefixed_changed": ({"node_exporter_port": 9101}, ""),
    "prefixed_added": ({"node_exporter_new": ""}, ""),
    "nested_changed": ({"node_exporter_d": {"a": 1, "b": [2, 4]}}, ""),
    "second_prefix_changed": ({"arq_monitoring_tls": True}, ""),
    "template_source_changed": ({"other": "two"}, ""),
    "template_source_same": ({"other": "one"}, ""),
    "extra_a": ({}, ", extra={'files': ['a']}"),
    "extra_a_again": ({}, ", extra={'files': ['a']}"),
    "extra_b": ({}, ", extra={'files': ['b']}"),
    "switch_ignored": ({"arq_monitoring_skip_converged": False}, ", ignore=['arq_monitoring_skip_converged']"),
    "switch_counted": ({"arq_monitoring_skip_converged": False}, ""),
    # A variable the role may never use, whose template cannot resolve: hashed as its text.
    "unresolved": ({"node_exporter_unused": "{{ nowhere_defined }}"}, ""),
    "unresolved_again": ({"node_exporter_unused": "{{ nowhere_defined }}"}, ""),
    "unresolved_other": ({"node_exporter_unused": "{{ nowhere_defined_either }}"}, ""),
}


def playbook(out):
    tasks = [{"name": name, "ansible.builtin.set_fact": {"digest_" + name: "{{ %s }}" % (LOOKUP % extra)},
              "vars": task_vars} for name, (task_vars, extra) in CASES.items()]
    for name, terms in (("no_prefix", ""), ("empty_prefix", ", ''")):
        tasks.append({"block": [{"ansible.builtin.set_fact": {
            "digest_" + name: "{{ lookup('arq.monitoring.inputs_digest'%s) }}" % terms}}],
            "rescue": [{"ansible.builtin.set_fact": {"error_" + name: "{{ ansible_failed_result.msg }}"}}]})
    names = ["digest_" + name for name in CASES] + ["digest_no_prefix", "digest_empty_prefix", "error_no_prefix",
                                                     "error_empty_prefix"]
    tasks.append({"ansible.builtin.copy": {
        "content": "{{ {%s} | to_json }}" % ", ".join("'%s': %s | default(None)" % (n, n) for n in names),
        "dest": str(out)}})
    return [{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks, "vars": {
        "other": "one",
        "unrelated": "u1",
        "node_exporter_port": 9100,
        "node_exporter_x": "{{ other }}",
        "node_exporter_d": {"a": 1, "b": [2, 3]},
        "arq_monitoring_tls": False,
    }}]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The digests of two runs of the playbook: [{case: digest or error}, ...]."""
    tmp = tmp_path_factory.mktemp("inputs_digest")
    found = []
    for seed in ("1", "2"):
        out = tmp / ("out-%s.json" % seed)
        book = tmp / ("play-%s.yml" % seed)
        book.write_text(json.dumps(playbook(out)))
        env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        env.update(PYTHONHASHSEED=seed, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"))
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(book)],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        found.append(json.loads(out.read_text()))
    return found


def test_every_case_gives_a_sha256(runs):
    for run in runs:
        for name in CASES:
            assert re.fullmatch("[0-9a-f]{64}", run["digest_" + name]), (name, run["digest_" + name])


def test_same_inputs_give_the_same_digest_across_runs(runs):
    first, second = runs
    assert {name: first["digest_" + name] for name in CASES} == {name: second["digest_" + name] for name in CASES}
    assert first["digest_base"] == first["digest_base_again"]
    assert first["digest_extra_a"] == first["digest_extra_a_again"]


def test_the_order_of_a_dict_does_not_matter(runs):
    assert runs[0]["digest_dict_reordered"] == runs[0]["digest_base"]


def test_variables_without_the_prefixes_do_not_matter(runs):
    assert runs[0]["digest_unrelated_changed"] == runs[0]["digest_base"]


@pytest.mark.parametrize("case", ["prefixed_changed", "prefixed_added", "nested_changed", "second_prefix_changed"])
def test_a_variable_with_a_prefix_changes_the_digest(runs, case):
    assert runs[0]["digest_" + case] != runs[0]["digest_base"]


def test_resolved_values_are_hashed(runs):
    # node_exporter_x is "{{ other }}": other is not hashed itself, what node_exporter_x resolves to is.
    assert runs[0]["digest_template_source_changed"] != runs[0]["digest_base"]
    assert runs[0]["digest_template_source_same"] == runs[0]["digest_base"]


def test_extra_changes_the_digest(runs):
    digests = {runs[0]["digest_" + name] for name in ("base", "extra_a", "extra_b")}
    assert len(digests) == 3


@pytest.mark.parametrize("case", ["no_prefix", "empty_prefix"])
def test_no_prefix_is_a_clear_error(runs, case):
    assert runs[0]["digest_" + case] is None
    assert "inputs_digest: give one or more variable name prefixes" in runs[0]["error_" + case]


def test_a_variable_that_cannot_resolve_counts_as_its_text(runs):
    digests = [runs[0]["digest_" + name] for name in ("base", "unresolved", "unresolved_again", "unresolved_other")]
    assert digests[1] == digests[2] and len(set(digests)) == 3


def test_ignored_variables_do_not_matter(runs):
    assert runs[0]["digest_switch_ignored"] == runs[0]["digest_base"] != runs[0]["digest_switch_counted"]
