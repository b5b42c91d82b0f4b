"""arq.monitoring.scrape_configs: behaviour, validation, properties, and promtool on every config."""
from __future__ import annotations

import copy
import gc
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.vault import VaultLib, VaultSecret
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ansible_collections.arq.monitoring.plugins.filter import scrape_configs as plugin
from ansible_collections.arq.monitoring.plugins.filter.scrape_configs import BUILTIN_JOBS, FilterModule
from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

SECRET = "s3cr3t-Pa55word"


# --- promtool on every output -----------------------------------------------------------------


class Outputs:
    """Every distinct output the filter gives in this module's tests, for one promtool run at its end."""

    def __init__(self):
        self.made = {}  # the output as output='both', in canonical JSON -> (a copy of it, the tests that made it)
        self.closed = False

    def add(self, both):
        test = os.environ.get("PYTEST_CURRENT_TEST", "?::unknown (call)").split("::", 1)[1].rsplit(" ", 1)[0]
        assert not self.closed, f"{test} made a config after the promtool check: keep {test_every_output_passes_promtool.__name__} last"
        key = json.dumps(both, sort_keys=True)
        if key not in self.made:
            self.made[key] = (copy.deepcopy(both), [])  # deepcopy keeps shared objects shared (YAML aliases)
        self.made[key][1].append(test)

    def close(self):
        self.closed = True
        return list(self.made.values())


OUTPUTS = Outputs()


def scrape_configs(groups, hostvars, jobs=None, **options):
    """The filter, keeping each successful output for test_every_output_passes_promtool.

    An output without its other half (output='scrape_configs' with file_sd_dir, or
    output='file_sd') is completed by a second call with output='both', of which that half must
    be the very output the test got.
    """
    result = plugin.scrape_configs(groups, hostvars, jobs, **options)
    output = options.get("output", "scrape_configs")
    if output == "both":
        both = result
    elif output == "scrape_configs" and not options.get("file_sd_dir"):
        both = {"scrape_configs": result, "file_sd": {}}
    else:
        both = plugin.scrape_configs(groups, hostvars, jobs, **{**options, "output": "both"})
        assert both[output] == result
    OUTPUTS.add(both)
    return result


def dump(data):
    """yaml.safe_dump with libyaml (a tenth of the time on the few hundred configs checked)."""
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))


def write_config(directory: Path, result) -> Path:
    """Write prometheus.yml and every file it references (target files, password and TLS files).

    `result` is the filter's output with output='both'. The absolute paths in it move under
    `directory`/root, so that no check writes outside its directory (/etc/prometheus/file_sd ...)
    and each config reads its own target files. A target file is written where the scrape config
    says it is, under the name the config gives it, which must be one of result['file_sd'].
    """
    assert "&id" not in dump(result), "shared objects would print as YAML aliases"
    result = json.loads(json.dumps(result))  # a copy whose paths can move
    root = directory / "root"
    directory.mkdir(parents=True, exist_ok=True)

    def place(path, content):
        moved = root / path.lstrip("/")
        moved.parent.mkdir(parents=True, exist_ok=True)
        moved.write_text(content)
        return str(moved)

    for config in result["scrape_configs"]:
        for sd in config.get("file_sd_configs", []):
            sd["files"] = [place(path, dump(result["file_sd"][Path(path).name])) for path in sd["files"]]
        if "password_file" in config.get("basic_auth", {}):
            config["basic_auth"]["password_file"] = place(config["basic_auth"]["password_file"], "placeholder\n")
        for key in ("ca_file", "cert_file", "key_file"):
            if key in config.get("tls_config", {}):
                config["tls_config"][key] = place(config["tls_config"][key], "placeholder\n")
    config_file = directory / "prometheus.yml"
    config_file.write_text(dump({"global": {"scrape_interval": "15s"}, "scrape_configs": result["scrape_configs"]}))
    return config_file


def promtool_check(promtool, files):
    """One promtool run for a batch of configs (about 50 ms, hardly more for hundreds of configs)."""
    if not files:
        return
    proc = subprocess.run([promtool, "check", "config", *map(str, files)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr  # e.g. a target file not found
    assert proc.stdout.count("SUCCESS") == len(files), proc.stdout


# --- inventories ------------------------------------------------------------------------------

GROUPS = {
    "all": ["prom1", "am1", "graf1", "db1", "cache1", "web1", "web2"],
    "ungrouped": [],
    "prometheus": ["prom1"],
    "alertmanager": ["am1"],
    "grafana": ["graf1"],
    "postgres_exporter": ["db1"],
    "redis_exporter": ["cache1"],
    "backend": ["web1", "web2"],
    "node_exporter": ["prom1", "am1", "graf1", "db1", "cache1", "web1", "web2"],
}
HOSTVARS = {
    "prom1": {"ansible_host": "10.0.0.1"},
    "am1": {"ansible_host": "10.0.0.2"},
    "graf1": {"ansible_host": "10.0.0.3"},
    "db1": {"ansible_host": "2001:db8::10", "prometheus_target_labels": {"env": "prod", "role": "db"}},
    "cache1": {"ansible_host": "[2001:db8::11]"},
    "web1": {"ansible_host": "web1.example.com"},
    "web2": {},
}


def inventory(**groups):
    """groups name -> hosts; `all` is the union, hostvars empty unless given later."""
    hosts = sorted({h for members in groups.values() for h in members})
    return {"all": hosts, "ungrouped": [], **groups}


def run(groups=None, hostvars=None, jobs=None, **options):
    return scrape_configs(
        copy.deepcopy(GROUPS if groups is None else groups),
        copy.deepcopy(HOSTVARS if hostvars is None else hostvars),
        jobs,
        **options,
    )


def job(configs, name):
    matches = [c for c in configs if c["job_name"] == name]
    assert len(matches) == 1, [c["job_name"] for c in configs]
    return matches[0]


def targets(config_or_groups):
    groups = config_or_groups["static_configs"] if isinstance(config_or_groups, dict) else config_or_groups
    return {g["labels"]["instance"]: (g["targets"], g["labels"]) for g in groups}


# --- behaviour --------------------------------------------------------------------------------


def test_registered_as_filter():
    assert FilterModule().filters() == {"scrape_configs": plugin.scrape_configs}


def test_builtin_jobs_for_a_full_inventory():
    configs = run()
    assert [c["job_name"] for c in configs] == ["alertmanager", "backend", "grafana", "node", "postgres", "prometheus", "redis"]
    expected = {
        "alertmanager": ("/metrics", ["10.0.0.2:9093"]),
        "backend": ("/api/v1/metrics", ["web1.example.com:3001", "web2:3001"]),
        "grafana": ("/metrics", ["10.0.0.3:3000"]),
        "postgres": ("/metrics", ["[2001:db8::10]:9187"]),
        "prometheus": ("/metrics", ["10.0.0.1:9090"]),
        "redis": ("/metrics", ["[2001:db8::11]:9121"]),
    }
    for name, (path, addresses) in expected.items():
        config = job(configs, name)
        assert config["metrics_path"] == path and config["scheme"] == "http"
        assert [a for t, _labels in targets(config).values() for a in t] == addresses
    node = targets(job(configs, "node"))
    assert sorted(node) == sorted(GROUPS["node_exporter"])
    assert node["db1"] == (["[2001:db8::10]:9100"], {"env": "prod", "instance": "db1", "role": "db"})


def test_backend_job_matches_the_seed_queries():
    """The seed's PromQL selects {job="backend"}; its metrics are at :3001/api/v1/metrics."""
    config = job(run(), "backend")
    assert config["job_name"] == "backend"
    assert config["metrics_path"] == "/api/v1/metrics"
    assert all(t.endswith(":3001") for g in config["static_configs"] for t in g["targets"])


def test_builtin_job_without_its_group_is_left_out():
    configs = run(groups=inventory(node_exporter=["a"]), hostvars={})
    assert [c["job_name"] for c in configs] == ["node"]


def test_empty_group_gives_a_job_without_targets():
    configs = run(groups=inventory(node_exporter=[], backend=["b"]), hostvars={})
    assert job(configs, "node")["static_configs"] == []


@pytest.mark.parametrize(
    ("hostvars", "address"),
    [
        ({}, "h1:9100"),
        ({"ansible_host": "192.0.2.7"}, "192.0.2.7:9100"),
        ({"ansible_host": "h1.example.org"}, "h1.example.org:9100"),
        ({"ansible_host": "2001:db8::7"}, "[2001:db8::7]:9100"),
        ({"ansible_host": "[2001:db8::7]"}, "[2001:db8::7]:9100"),
        ({"ansible_host": "fe80::1%eth0"}, "[fe80::1%eth0]:9100"),
        ({"node_exporter_web_listen_address": "10.0.0.5:9200"}, "10.0.0.5:9200"),
        ({"ansible_host": "192.0.2.7", "node_exporter_web_listen_address": ":9200"}, "192.0.2.7:9200"),
        ({"ansible_host": "192.0.2.7", "node_exporter_web_listen_address": "0.0.0.0:9200"}, "192.0.2.7:9200"),
        ({"ansible_host": "2001:db8::7", "node_exporter_web_listen_address": "[::]:9200"}, "[2001:db8::7]:9200"),
        ({"ansible_host": "192.0.2.7", "node_exporter_web_listen_address": "[2001:db8::8]:9200"}, "[2001:db8::8]:9200"),
        ({"node_exporter_web_listen_address": "localhost1:9101"}, "localhost1:9101"),  # a name, not loopback
        ({"node_exporter_web_listen_address": "128.0.0.1:9101"}, "128.0.0.1:9101"),
        ({"ansible_host": "2001:db8::7", "node_exporter_web_listen_address": "[::2]:9200"}, "[::2]:9200"),
        ({"node_exporter_web_listen_address": "[fe80::1%eth0]:9200"}, "[fe80::1%eth0]:9200"),
        ({"ansible_host": "web_1.Example.COM."}, "web_1.Example.COM.:9100"),
        ({"ansible_host": "1a.example"}, "1a.example:9100"),
        ({"node_exporter_web_listen_address": "10.0.0.5:9200", "ansible_host": "192.0.2.7"}, "10.0.0.5:9200"),
        ({"redis_exporter_web_listen_address": "10.0.0.5:9200"}, "h1:9100"),  # another role's variable
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_address_of_a_host(hostvars, address):
    config = job(run(groups=inventory(node_exporter=["h1"]), hostvars={"h1": hostvars}), "node")
    assert config["static_configs"] == [{"targets": [address], "labels": {"instance": "h1"}}]


def test_inventory_hostname_that_is_an_ipv6_address_is_bracketed():
    config = job(run(groups=inventory(node_exporter=["2001:db8::1"]), hostvars={}), "node")
    assert config["static_configs"] == [{"targets": ["[2001:db8::1]:9100"], "labels": {"instance": "2001:db8::1"}}]


def test_host_metrics_path_override_uses_the_metrics_path_label():
    hostvars = {"a": {"node_exporter_web_telemetry_path": "/node"}, "b": {"node_exporter_web_telemetry_path": "/metrics"}}
    config = job(run(groups=inventory(node_exporter=["a", "b", "c"]), hostvars=hostvars), "node")
    labels = {i: l for i, (_addresses, l) in targets(config).items()}
    assert labels == {"a": {"__metrics_path__": "/node", "instance": "a"}, "b": {"instance": "b"}, "c": {"instance": "c"}}


def test_labels_from_job_and_host_host_wins_numbers_become_strings():
    hostvars = {"a": {"prometheus_target_labels": {"env": "prod", "rack": 12}}, "b": {}}
    jobs = [{"name": "node", "labels": {"env": "staging", "team": "ops"}}]
    config = job(run(groups=inventory(node_exporter=["a", "b"]), hostvars=hostvars, jobs=jobs), "node")
    assert targets(config) == {
        "a": (["a:9100"], {"env": "prod", "instance": "a", "rack": "12", "team": "ops"}),
        "b": (["b:9100"], {"env": "staging", "instance": "b", "team": "ops"}),
    }


def test_labels_var_names_the_host_variable():
    hostvars = {"a": {"my_labels": {"dc": "fra1"}, "prometheus_target_labels": {"env": "x"}}}
    config = job(run(groups=inventory(node_exporter=["a"]), hostvars=hostvars, labels_var="my_labels"), "node")
    assert config["static_configs"][0]["labels"] == {"dc": "fra1", "instance": "a"}


def test_host_in_several_groups_of_a_job_is_scraped_once():
    groups = inventory(lb=["a", "b"], edge=["b", "c", "a"])
    jobs = [{"name": "haproxy", "group": ["lb", "edge", "lb"], "port": 8405}]
    config = job(run(groups=groups, hostvars={}, jobs=jobs), "haproxy")
    assert [g["labels"]["instance"] for g in config["static_configs"]] == ["a", "b", "c"]


def test_jobs_override_disable_add_and_no_builtins():
    groups = inventory(node_exporter=["a"], grafana=["g"], lb=["l"])
    jobs = [
        {"name": "node", "port": "9200", "scrape_interval": "30s", "scrape_timeout": "10s"},
        {"name": "grafana", "enabled": False},
        {"name": "haproxy", "group": "lb", "port": 8405, "metrics_path": "/stats/prometheus"},
    ]
    configs = run(groups=groups, hostvars={}, jobs=jobs)
    assert [c["job_name"] for c in configs] == ["haproxy", "node"]
    node = job(configs, "node")
    assert node["static_configs"][0]["targets"] == ["a:9200"]
    assert (node["scrape_interval"], node["scrape_timeout"]) == ("30s", "10s")
    assert job(configs, "haproxy")["metrics_path"] == "/stats/prometheus"
    only_custom = run(groups=groups, hostvars={}, jobs=jobs[2:], builtin_jobs=False)
    assert [c["job_name"] for c in only_custom] == ["haproxy"]


def test_custom_job_reads_its_own_listen_address_variable():
    groups = inventory(lb=["l"])
    hostvars = {"l": {"haproxy_web_listen_address": ":9999", "lb_web_listen_address": ":1"}}
    configs = run(groups=groups, hostvars=hostvars, jobs=[{"name": "haproxy", "group": "lb", "port": 8405}])
    assert job(configs, "haproxy")["static_configs"][0]["targets"] == ["l:9999"]
    configs = run(groups=groups, hostvars=hostvars, jobs=[{"name": "haproxy", "group": "lb", "port": 8405, "var_prefix": ""}])
    assert job(configs, "haproxy")["static_configs"][0]["targets"] == ["l:8405"]


def test_tls_and_basic_auth(tmp_path):
    jobs = [
        {
            "name": "node",
            "tls": {"ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem"),
                    "server_name": "exporters.internal", "insecure_skip_verify": False},
            "basic_auth": {"username": "prometheus", "password": SECRET},
        },
        {"name": "postgres", "scheme": "https", "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "pw")}},
    ]
    configs = run(jobs=jobs)
    node = job(configs, "node")
    assert node["scheme"] == "https"  # implied by tls
    assert node["tls_config"] == {**jobs[0]["tls"]}
    assert node["basic_auth"] == {"username": "prometheus", "password": SECRET}
    postgres = job(configs, "postgres")
    assert postgres["scheme"] == "https" and "tls_config" not in postgres
    assert postgres["basic_auth"] == {"username": "prometheus", "password_file": str(tmp_path / "pw")}
    assert "basic_auth" not in job(configs, "redis") and job(configs, "redis")["scheme"] == "http"


def test_stack_wide_tls_and_basic_auth_cover_the_services_not_the_backend():
    tls = {"ca_file": "/etc/prometheus/tls/ca.crt"}
    auth = {"username": "prometheus", "password": SECRET}
    own = {"name": "redis", "basic_auth": {"username": "redis-scraper", "password_file": "/pw"}}
    configs = run(jobs=[own, {"name": "haproxy", "group": "node_exporter", "port": 8405}], tls=tls, basic_auth=auth)
    services = [c for c in configs if c["job_name"] not in ("backend", "haproxy")]
    assert {c["job_name"] for c in services} >= {"node", "postgres", "redis", "prometheus", "alertmanager"}
    for config in services:
        assert config["scheme"] == "https" and config["tls_config"] == tls, config
        expected = own["basic_auth"] if config["job_name"] == "redis" else auth
        assert config["basic_auth"] == expected, config
    for name in ("backend", "haproxy"):  # the application's job and the user's own are theirs
        assert job(configs, name)["scheme"] == "http" and "tls_config" not in job(configs, name)
        assert "basic_auth" not in job(configs, name)


def test_file_sd_mode(tmp_path):
    sd_dir = str(tmp_path / "file_sd") + "/"
    both = run(file_sd_dir=sd_dir, output="both")
    static = run()
    assert set(both["file_sd"]) == {c["job_name"] + ".yml" for c in static}
    for config in both["scrape_configs"]:
        name = config["job_name"]
        assert "static_configs" not in config
        assert config["file_sd_configs"] == [{"files": [str(tmp_path / "file_sd" / (name + ".yml"))]}]
        assert both["file_sd"][name + ".yml"] == job(static, name)["static_configs"]
    assert run(file_sd_dir=sd_dir) == both["scrape_configs"]
    assert run(file_sd_dir=sd_dir, output="file_sd") == both["file_sd"]
    assert run(output="file_sd") == {} and run(output="both") == {"scrape_configs": static, "file_sd": {}}


def test_file_sd_adding_a_host_changes_only_the_target_files(tmp_path):
    groups = copy.deepcopy(GROUPS)
    before = run(groups=groups, file_sd_dir=str(tmp_path), output="both")
    groups["backend"].append("web3")
    groups["node_exporter"].append("web3")
    after = run(groups=groups, file_sd_dir=str(tmp_path), output="both")
    assert after["scrape_configs"] == before["scrape_configs"]  # prometheus.yml unchanged: no reload
    assert "web3" in targets(after["file_sd"]["backend.yml"]) and "web3" not in targets(before["file_sd"]["backend.yml"])


def test_sharding_relabel():
    assert all("relabel_configs" not in c for c in run(shard_count=1))
    configs = run(shard_count=3, shard_index=2)
    for config in configs:
        assert config["relabel_configs"] == [
            {"source_labels": ["instance"], "modulus": 3, "target_label": "__tmp_shard", "action": "hashmod"},
            {"source_labels": ["__tmp_shard"], "regex": "2", "action": "keep"},
        ]


def test_output_is_deterministic_and_sorted():
    shuffled_groups = {k: list(reversed(v)) for k, v in reversed(list(GROUPS.items()))}
    shuffled_hostvars = dict(reversed(list(HOSTVARS.items())))
    a, b = run(), run(groups=shuffled_groups, hostvars=shuffled_hostvars)
    assert yaml.safe_dump(a, sort_keys=False) == yaml.safe_dump(b, sort_keys=False)
    for config in a:
        instances = [g["labels"]["instance"] for g in config["static_configs"]]
        assert instances == sorted(instances)


def test_promtool_catches_a_broken_config(tmp_path, promtool):
    """The promtool check can fail: in a batch, a target file with a bad label name is rejected, and
    so is a config whose target file is missing. (An empty name: Prometheus 3 takes any UTF-8 name,
    "bad-name" too.)"""
    result = run(file_sd_dir=str(tmp_path / "sd"), output="both")
    good = write_config(tmp_path / "good", result)
    result["file_sd"]["node.yml"][0]["labels"][""] = "x"
    with pytest.raises(AssertionError, match="not a valid label name") as error:
        promtool_check(promtool, [good, write_config(tmp_path / "broken", result), good])
    assert f"{tmp_path}/broken/" in str(error.value)
    (tmp_path / "good/root" / str(tmp_path / "sd/node.yml").lstrip("/")).unlink()
    with pytest.raises(AssertionError, match="does not exist"):
        promtool_check(promtool, [good])


def test_garbage_collector_is_restored():
    """The filter pauses the cyclic garbage collector while it builds; it must turn it back on."""
    assert gc.isenabled()
    run()
    assert gc.isenabled()
    with pytest.raises(AnsibleFilterError):
        run(shard_count=0)
    assert gc.isenabled()
    gc.disable()
    try:
        run()
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


# --- bad input ---------------------------------------------------------------------------------

G = inventory(node_exporter=["web1"], lb=["l1"])
BAD_INPUTS = [
    # (id, arguments, pattern the message must match)
    ("group missing", {"jobs": [{"name": "haproxy", "group": "nope", "port": 1}]}, r"job 'haproxy': group: 'nope' is not in the inventory"),
    ("builtin group missing", {"jobs": [{"name": "redis", "port": 9121}]}, r"job 'redis': group: 'redis_exporter' is not in the inventory"),
    ("group not str", {"jobs": [{"name": "x", "group": ["lb", 3], "port": 1}]}, r"job 'x': group: 3 is not a group name"),
    ("group empty list", {"jobs": [{"name": "x", "group": [], "port": 1}]}, r"job 'x': group: needs"),
    ("custom job needs port", {"jobs": [{"name": "x", "group": "lb"}]}, r"job 'x': port: needed"),
    ("port not integer", {"jobs": [{"name": "node", "port": "91x0"}]}, r"job 'node': port: '91x0' is not an integer port"),
    ("port float", {"jobs": [{"name": "node", "port": 9100.0}]}, r"job 'node': port: 9100.0 is not an integer port"),
    ("port bool", {"jobs": [{"name": "node", "port": True}]}, r"job 'node': port: True is not an integer port"),
    ("port zero", {"jobs": [{"name": "node", "port": 0}]}, r"job 'node': port: port 0 is out of range \(1-65535\)"),
    ("port too big", {"jobs": [{"name": "node", "port": 65536}]}, r"job 'node': port: port 65536 is out of range"),
    ("host port too big", {"hostvars": {"web1": {"node_exporter_web_listen_address": ":70000"}}},
     r"host 'web1': node_exporter_web_listen_address: port 70000 is out of range"),
    ("host port missing", {"hostvars": {"web1": {"node_exporter_web_listen_address": "10.0.0.1"}}},
     r"host 'web1': node_exporter_web_listen_address: '10.0.0.1': expected host:port"),
    ("host port empty", {"hostvars": {"web1": {"node_exporter_web_listen_address": "10.0.0.1:"}}},
     r"host 'web1': node_exporter_web_listen_address: '' is not an integer port"),
    ("host v6 unbracketed", {"hostvars": {"web1": {"node_exporter_web_listen_address": "2001:db8::1:9100"}}},
     r"host 'web1': node_exporter_web_listen_address: .*needs brackets"),
    ("host v6 bad bracket", {"hostvars": {"web1": {"node_exporter_web_listen_address": "[2001:db8::1]9100"}}},
     r"host 'web1': node_exporter_web_listen_address: .*expected \[v6\]:port"),
    ("host listen not str", {"hostvars": {"web1": {"node_exporter_web_listen_address": 9100}}},
     r"host 'web1': node_exporter_web_listen_address: expected host:port"),
    ("host path", {"hostvars": {"web1": {"node_exporter_web_telemetry_path": "metrics"}}},
     r"host 'web1': node_exporter_web_telemetry_path: 'metrics' is not a path"),
    ("unknown job option", {"jobs": [{"name": "node", "prot": 1, "path": "/m"}]}, r"job 'node': unknown option 'path', 'prot' \(known: basic_auth, "),
    ("unknown tls option", {"jobs": [{"name": "node", "tls": {"ca": "/x"}}]}, r"job 'node': tls: unknown option 'ca'"),
    ("unknown basic_auth option", {"jobs": [{"name": "node", "basic_auth": {"username": "u", "password": SECRET, "pass": SECRET}}]},
     r"job 'node': basic_auth: 1 unknown option\(s\), not shown .*\(known: password, password_file, username\)"),
    ("basic_auth in the roles' user: password form", {"jobs": [{"name": "node", "basic_auth": {"prometheus": SECRET}}]},
     r"job 'node': basic_auth: 1 unknown option\(s\), not shown"),
    ("stack-wide tls", {"tls": {"ca": "/x"}}, r"scrape_configs: tls: unknown option 'ca'"),
    ("stack-wide basic_auth", {"basic_auth": {"prometheus": SECRET}}, r"scrape_configs: basic_auth: 1 unknown option\(s\), not shown"),
    ("duplicate job", {"jobs": [{"name": "node", "port": 1}, {"name": "node", "port": 2}]}, r"job 'node': duplicate job name"),
    ("empty address", {"hostvars": {"web1": {"ansible_host": ""}}}, r"host 'web1': ansible_host: empty address"),
    ("address not str", {"hostvars": {"web1": {"ansible_host": 10}}}, r"host 'web1': ansible_host: the address must be a string"),
    ("address with space", {"hostvars": {"web1": {"ansible_host": "web 1"}}}, r"host 'web1': ansible_host: 'web 1' is not a valid host name"),
    ("address bad v6", {"hostvars": {"web1": {"ansible_host": "2001:db8::zz"}}}, r"host 'web1': ansible_host: '2001:db8::zz' is neither"),
    ("address bad v6 zone", {"hostvars": {"web1": {"ansible_host": "fe80::1%"}}}, r"host 'web1': ansible_host: 'fe80::1%' has an invalid IPv6 zone"),
    ("address v4 in brackets", {"hostvars": {"web1": {"ansible_host": "[10.0.0.1]"}}}, r"host 'web1': ansible_host: '\[10.0.0.1\]' is neither"),
    ("address with port", {"hostvars": {"web1": {"ansible_host": "web1:22"}}}, r"host 'web1': ansible_host: 'web1:22' is neither"),
    ("shard index too big", {"shard_count": 2, "shard_index": 2}, r"shard_index: 2 is out of range for shard_count 2 \(0 to 1\)"),
    ("shard index negative", {"shard_count": 2, "shard_index": -1}, r"shard_index: -1 is out of range"),
    ("shard count zero", {"shard_count": 0}, r"shard_count: 0 must be at least 1"),
    ("shard index not int", {"shard_count": 2, "shard_index": "1"}, r"shard_index: '1' is not an integer"),
    ("label name", {"hostvars": {"web1": {"prometheus_target_labels": {"bad-name": "x"}}}},
     r"host 'web1': prometheus_target_labels: 'bad-name' is not a valid label name"),
    ("label reserved prefix", {"hostvars": {"web1": {"prometheus_target_labels": {"__address__": "x"}}}}, r"'__address__' is not a valid label name"),
    ("label instance", {"hostvars": {"web1": {"prometheus_target_labels": {"instance": "x"}}}},
     r"host 'web1': prometheus_target_labels: label 'instance' is set by the filter"),
    ("label job", {"jobs": [{"name": "node", "labels": {"job": "x"}}]}, r"job 'node': labels: label 'job' is set by the filter"),
    ("label value", {"hostvars": {"web1": {"prometheus_target_labels": {"env": ["prod"]}}}}, r"label 'env' must be a string or a number, not list"),
    ("label value bool", {"hostvars": {"web1": {"prometheus_target_labels": {"env": True}}}}, r"label 'env' must be a string or a number, not bool"),
    ("labels not dict", {"hostvars": {"web1": {"prometheus_target_labels": "env=prod"}}}, r"host 'web1': prometheus_target_labels: labels must be a dict"),
    ("job name", {"jobs": [{"name": "my job", "group": "lb", "port": 1}]}, r"jobs\[0\]: name: 'my job' is not a job name"),
    ("job name missing", {"jobs": [{"group": "lb", "port": 1}]}, r"jobs\[0\]: name: None is not a job name"),
    ("jobs not list", {"jobs": {"node": {"port": 1}}}, r"jobs: must be a list of job dicts, not dict"),
    ("job not dict", {"jobs": ["node"]}, r"jobs\[0\]: must be a dict, not str"),
    ("enabled not bool", {"jobs": [{"name": "node", "enabled": "no"}]}, r"job 'node': enabled must be true or false"),
    ("scheme", {"jobs": [{"name": "node", "scheme": "ftp"}]}, r"job 'node': scheme: 'ftp' is not http or https"),
    ("metrics path", {"jobs": [{"name": "node", "metrics_path": "metrics"}]}, r"job 'node': metrics_path: 'metrics' is not a path"),
    ("duration", {"jobs": [{"name": "node", "scrape_interval": "30 seconds"}]}, r"job 'node': scrape_interval: '30 seconds' is not a Prometheus duration"),
    ("duration empty", {"jobs": [{"name": "node", "scrape_timeout": ""}]}, r"job 'node': scrape_timeout: '' is not a Prometheus duration"),
    ("var_prefix", {"jobs": [{"name": "node", "var_prefix": "node-exporter"}]}, r"job 'node': var_prefix: 'node-exporter' is not"),
    ("tls cert without key", {"jobs": [{"name": "node", "tls": {"cert_file": "/c"}}]}, r"job 'node': tls: cert_file and key_file go together"),
    ("tls not dict", {"jobs": [{"name": "node", "tls": "/ca.pem"}]}, r"job 'node': tls: must be a dict, not str"),
    ("tls skip verify", {"jobs": [{"name": "node", "tls": {"insecure_skip_verify": "yes"}}]}, r"insecure_skip_verify must be true or false"),
    ("basic_auth no secret", {"jobs": [{"name": "node", "basic_auth": {"username": "u"}}]},
     r"job 'node': basic_auth: needs exactly one of password, password_file"),
    ("basic_auth two secrets", {"jobs": [{"name": "node", "basic_auth": {"username": "u", "password": SECRET, "password_file": "/p"}}]},
     r"job 'node': basic_auth: needs exactly one of password, password_file"),
    ("basic_auth no user", {"jobs": [{"name": "node", "basic_auth": {"password": SECRET}}]}, r"job 'node': basic_auth: username must be"),
    ("basic_auth password type", {"jobs": [{"name": "node", "basic_auth": {"username": "u", "password": 12345678}}]},
     r"job 'node': basic_auth: password must be a non-empty string"),
    ("output", {"output": "yaml"}, r"output: 'yaml' is not one of scrape_configs, file_sd, both"),
    ("file_sd_dir relative", {"file_sd_dir": "file_sd"}, r"file_sd_dir: 'file_sd' is not an absolute path"),
    ("labels_var", {"labels_var": "my-labels"}, r"labels_var: 'my-labels' is not a variable name"),
    ("builtin_jobs", {"builtin_jobs": "no"}, r"builtin_jobs: must be true or false"),
    ("groups not mapping", {"groups": ["web1"]}, r"input: must be the inventory's groups"),
    ("hostvars not mapping", {"hostvars": ["web1"]}, r"hostvars: must be the hostvars mapping"),
    ("hostvars entry", {"hostvars": {"web1": "x"}}, r"host 'web1': hostvars entry must be a dict"),
    ("group members", {"groups": {**G, "node_exporter": "web1"}}, r"group 'node_exporter': must be a list of host names"),
]


@pytest.mark.parametrize(("arguments", "pattern"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_names_the_field(arguments, pattern):
    arguments = {"groups": G, "hostvars": {}, **copy.deepcopy(arguments)}
    with pytest.raises(AnsibleFilterError) as error:
        run(**arguments)
    message = str(error.value)
    assert message.startswith("scrape_configs: "), message
    assert re.search(pattern, message), message
    assert SECRET not in message


@pytest.mark.parametrize(
    "basic_auth",
    [
        {"username": "u", "password": SECRET, "password_file": "/p"},
        {"username": "", "password": SECRET},
        {"username": ["u"], "password": SECRET},
        {"username": "u", "password": SECRET, SECRET: SECRET},
    ],
)
@pytest.mark.parametrize("other", [{}, {"port": "x"}, {"tls": {"bogus": 1}}, {"bogus": SECRET}])
def test_no_password_in_any_message(basic_auth, other):
    jobs = [{"name": "node", "basic_auth": basic_auth, **other}]
    with pytest.raises(AnsibleFilterError) as error:
        run(groups=G, hostvars={}, jobs=jobs)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize(
    "where",
    ["ansible_host", "listen_address", "telemetry_path", "labels_var", "label_value", "job_port", "job_password", "jobs", "hostvars",
     "external_url", "group_member", "scraper", "global_interval"],
)
def test_undefined_values_raise_jinja_undefined_errors(where):
    """Undefined values are not reported as bad input: they fail as (Ansible's) undefined errors."""
    undefined = jinja2.StrictUndefined(name="not_defined_anywhere")
    hostvars = {"web1": {}}
    jobs = [{"name": "node"}]
    arguments = {}
    groups = {**G, "prometheus": ["web1"]}
    options = {}
    if where == "ansible_host":
        hostvars["web1"]["ansible_host"] = undefined
    elif where == "listen_address":
        hostvars["web1"]["node_exporter_web_listen_address"] = undefined
    elif where == "telemetry_path":
        hostvars["web1"]["node_exporter_web_telemetry_path"] = undefined
    elif where == "labels_var":
        hostvars["web1"]["prometheus_target_labels"] = undefined
    elif where == "label_value":
        hostvars["web1"]["prometheus_target_labels"] = {"env": undefined}
    elif where == "job_port":
        jobs[0]["port"] = undefined
    elif where == "job_password":
        jobs[0]["basic_auth"] = {"username": "u", "password": undefined}
    elif where == "jobs":
        jobs = undefined
    elif where == "hostvars":
        arguments["hostvars_override"] = undefined
    elif where == "external_url":
        hostvars["web1"]["prometheus_web_external_url"] = undefined
    elif where == "group_member":
        groups["node_exporter"] = ["web1", undefined]
    elif where == "scraper":
        options["scraper"] = undefined
    elif where == "global_interval":
        hostvars["web1"]["prometheus_scrape_interval"] = undefined
        options["scraper"] = "web1"
    with pytest.raises(jinja2.UndefinedError, match="not_defined_anywhere"):
        scrape_configs(groups, arguments.get("hostvars_override", hostvars), jobs, **options)


# --- issue 15: loopback, wildcards, path prefixes, strict input --------------------------------

HOST_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WILDCARDS = ["", "0.0.0.0", "[::]", "[::0]", "[0:0:0:0:0:0:0:0]", "[0::0]", "[0000::]", "[::0:0]", "[::ffff:0.0.0.0]"]
LOOPBACKS = ["127.0.0.1", "127.0.1.1", "127.255.255.254", "localhost", "LocalHost.", "node.localhost", "[::1]",
             "[0:0:0:0:0:0:0:1]", "[::0:1]", "[0000::0001]", "[::ffff:127.0.0.1]"]
# Two Prometheus servers (an HA pair) and an exporter host, all scraped by the node job.
PAIR = inventory(prometheus=["prom1", "prom2"], node_exporter=["prom1", "prom2", "db1"], postgres_exporter=["db1"])


def node_target(hostvars, host="db1", **options):
    """The node job's targets of `host` in PAIR, whose variables are `hostvars`."""
    return targets(job(run(groups=PAIR, hostvars={host: hostvars}, **options), "node"))[host][0]


def refusal(**arguments):
    """The message of an AnsibleFilterError (and never another exception)."""
    arguments = {"groups": PAIR, "hostvars": {}, **arguments}
    with pytest.raises(AnsibleFilterError) as error:
        run(**arguments)
    message = str(error.value)
    assert message.startswith("scrape_configs: "), message
    assert SECRET not in message
    return message


@pytest.mark.parametrize("host", LOOPBACKS)
def test_loopback_listener_is_refused_without_a_scraper(host):
    listen = host + ":9100"
    message = refusal(hostvars={"db1": {"node_exporter_web_listen_address": listen}})
    assert message.startswith("scrape_configs: host 'db1': node_exporter_web_listen_address: %r listens on loopback only" % listen)
    assert "scraper='db1'" in message


@pytest.mark.parametrize("host", LOOPBACKS)
def test_loopback_listener_is_refused_for_the_prometheus_of_another_host(host):
    listen = host + ":9100"
    message = refusal(hostvars={"db1": {"node_exporter_web_listen_address": listen}}, scraper="prom1")
    assert "host 'db1': node_exporter_web_listen_address: %r listens on loopback only" % listen in message
    assert "which Prometheus on 'prom1' cannot scrape" in message


@pytest.mark.parametrize("host", LOOPBACKS)
def test_loopback_listener_is_the_target_of_the_prometheus_on_that_host(host):
    listen = host + ":9100"
    assert node_target({"ansible_host": "10.0.0.9", "node_exporter_web_listen_address": listen}, scraper="db1") == [listen]


def test_loopback_rule_per_job_and_per_host_of_an_ha_pair():
    """prom1's own Prometheus on loopback: prom1's config scrapes it there, prom2's cannot; other
    hosts and other jobs keep their addresses."""
    hostvars = {"prom1": {"ansible_host": "10.0.0.1", "prometheus_web_listen_address": "127.0.0.1:9090"},
                "prom2": {"ansible_host": "10.0.0.2"}, "db1": {"postgres_exporter_web_listen_address": "[::1]:9187"}}
    with pytest.raises(AnsibleFilterError, match="host 'db1': postgres_exporter_web_listen_address"):
        run(groups=PAIR, hostvars=hostvars, scraper="prom1")
    hostvars["db1"] = {}
    configs = run(groups=PAIR, hostvars=hostvars, scraper="prom1")
    assert targets(job(configs, "prometheus")) == {
        "prom1": (["127.0.0.1:9090"], {"instance": "prom1"}), "prom2": (["10.0.0.2:9090"], {"instance": "prom2"})}
    assert targets(job(configs, "node"))["prom1"][0] == ["10.0.0.1:9100"]
    message = refusal(hostvars=hostvars, scraper="prom2")
    assert "host 'prom1': prometheus_web_listen_address: '127.0.0.1:9090' listens on loopback only" in message


def test_loopback_target_of_another_shard_is_not_checked():
    """With shards, only the shard that keeps a host scrapes it: the others' configs are not refused."""
    hostvars = {"db1": {"node_exporter_web_listen_address": "127.0.0.1:9100"}}
    own = hashmod("db1", 3)
    for index in range(3):
        if index == own:
            refusal(hostvars=hostvars, shard_count=3, shard_index=index)
            continue
        config = job(run(groups=PAIR, hostvars=hostvars, shard_count=3, shard_index=index), "node")
        group = targets(config)["db1"]
        assert relabel({"__address__": group[0][0], **group[1]}, config["relabel_configs"]) is None  # dropped


@pytest.mark.parametrize("host", WILDCARDS)
def test_every_wildcard_spelling_keeps_the_host_address(host):
    assert node_target({"ansible_host": "2001:db8::9", "node_exporter_web_listen_address": host + ":9200"}) == ["[2001:db8::9]:9200"]


@st.composite
def ipv6_spellings(draw):
    """An IPv6 address (often :: or ::1) and one of its spellings: hextets with or without their
    leading zeros, in either case, a run of zero hextets as :: or not."""
    ip = draw(st.one_of(st.just(ipaddress.IPv6Address("::")), st.just(ipaddress.IPv6Address("::1")), st.ip_addresses(v=6)))
    hextets = [draw(st.sampled_from([h, h.lstrip("0") or "0", h.upper()])) for h in ip.exploded.split(":")]
    zero_runs = [(i, j) for i in range(8) for j in range(i + 1, 9) if all(int(h, 16) == 0 for h in hextets[i:j])]
    if zero_runs and draw(st.booleans()):
        i, j = draw(st.sampled_from(zero_runs))
        text = ":".join(hextets[:i]) + "::" + ":".join(hextets[j:])
    else:
        text = ":".join(hextets)
    assert ipaddress.IPv6Address(text) == ip
    return ip, text


def expected_target(ip, spelled, port):
    """What the filter scrapes for a listener on `ip` (spelled so, bracketed for IPv6) of db1, with
    ansible_host 192.0.2.9, in the config of Prometheus on another host; None when refused."""
    own = getattr(ip, "ipv4_mapped", None) or ip
    if own.is_unspecified:
        return "192.0.2.9:%d" % port
    return None if own.is_loopback else "%s:%d" % (spelled, port)


def check_listener(ip, spelled, port):
    hostvars = {"ansible_host": "192.0.2.9", "node_exporter_web_listen_address": "%s:%d" % (spelled, port)}
    wanted = expected_target(ip, spelled, port)
    if wanted is None:
        assert "listens on loopback only" in refusal(hostvars={"db1": hostvars}, scraper="prom1")
        assert node_target(hostvars, scraper="db1") == ["%s:%d" % (spelled, port)]
    else:
        assert node_target(hostvars, scraper="prom1") == [wanted]


@HOST_SETTINGS
@given(ipv6_spellings(), st.integers(1, 65535))
def test_property_ipv6_listener_wildcard_loopback_or_target(spelling, port):
    ip, text = spelling
    check_listener(ip, "[%s]" % text, port)


@HOST_SETTINGS
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(network="127.0.0.0/8"), st.just(ipaddress.IPv4Address("0.0.0.0"))),
       st.integers(1, 65535))
def test_property_ipv4_listener_wildcard_loopback_or_target(ip, port):
    check_listener(ip, str(ip), port)


# Path prefixes: Prometheus and Alertmanager serve under the path of their external URL.

ROUTED = [(SERVICES[name]["job"], BUILTIN_JOBS[SERVICES[name]["job"]]["var_prefix"] + "_web_external_url") for name in ("prometheus", "alertmanager")]


@pytest.mark.parametrize(("url", "path"), [
    ("https://mon.example/prometheus/", "/prometheus/metrics"),
    ("https://mon.example/prometheus", "/prometheus/metrics"),
    ("http://mon.example:9090/a/b/", "/a/b/metrics"),
    ("https://mon.example//a//", "/a/metrics"),
    ("https://mon.example/pr%6Fm/", "/prom/metrics"),  # served under the decoded path
    ("https://mon.example/p/?x=1#top", "/p/metrics"),
    ("https://mon.example/", None),
    ("https://mon.example", None),
    ("", None),
])
@pytest.mark.parametrize(("job_name", "url_var"), ROUTED, ids=[r[0] for r in ROUTED])
def test_prometheus_and_alertmanager_follow_their_external_url(job_name, url_var, url, path):
    groups = inventory(prometheus=["m1"], alertmanager=["m1"], node_exporter=["m1"])
    configs = run(groups=groups, hostvars={"m1": {url_var: url, "node_exporter_web_external_url": url}})
    config = job(configs, job_name)
    assert config["metrics_path"] == "/metrics"
    assert config["static_configs"][0]["labels"].get("__metrics_path__") == path
    for other in configs:  # only the routed jobs, and only their own host variable
        if other["job_name"] != job_name:
            assert "__metrics_path__" not in other["static_configs"][0]["labels"]


@pytest.mark.parametrize("file_sd", [False, True])
def test_hosts_of_one_job_with_different_path_prefixes(tmp_path, file_sd):
    groups = inventory(prometheus=["p1", "p2", "p3"])
    hostvars = {"p1": {"prometheus_web_external_url": "https://a.example/a/"}, "p2": {},
                "p3": {"prometheus_web_external_url": "https://b.example/b/c"}}
    result = run(groups=groups, hostvars=hostvars, output="both", file_sd_dir=str(tmp_path) if file_sd else "")
    config = job(result["scrape_configs"], "prometheus")
    assert config["metrics_path"] == "/metrics"
    groups_of_targets = result["file_sd"]["prometheus.yml"] if file_sd else config["static_configs"]
    assert {name: labels.get("__metrics_path__") for name, (_t, labels) in targets(groups_of_targets).items()} == {
        "p1": "/a/metrics", "p2": None, "p3": "/b/c/metrics"}


def test_path_prefix_goes_before_the_jobs_path_and_a_telemetry_path_wins():
    groups = inventory(prometheus=["p1", "p2"])
    hostvars = {"p1": {"prometheus_web_external_url": "https://x/p/"},
                "p2": {"prometheus_web_external_url": "https://x/p/", "prometheus_web_telemetry_path": "/own"}}
    config = job(run(groups=groups, hostvars=hostvars, jobs=[{"name": "prometheus", "metrics_path": "/federate"}]), "prometheus")
    assert {name: labels["__metrics_path__"] for name, (_t, labels) in targets(config).items()} == {"p1": "/p/federate", "p2": "/own"}


def test_path_prefix_only_for_the_builtin_jobs_and_their_variable_prefix():
    groups = inventory(prometheus=["p1"])
    hostvars = {"p1": {"prometheus_web_external_url": "https://x/p/"}}
    own = [{"name": "federate", "group": "prometheus", "port": 9090, "var_prefix": "prometheus"}]
    assert "__metrics_path__" not in job(run(groups=groups, hostvars=hostvars, jobs=own), "federate")["static_configs"][0]["labels"]
    no_vars = [{"name": "prometheus", "var_prefix": ""}]
    assert "__metrics_path__" not in job(run(groups=groups, hostvars=hostvars, jobs=no_vars), "prometheus")["static_configs"][0]["labels"]


@pytest.mark.parametrize(("url", "pattern"), [
    ("mon.example.com/prom/", r"is not an http:// or https:// URL"),
    ("ftp://mon.example/prom/", r"is not an http:// or https:// URL"),
    ("https:///prom/", r"is not an http:// or https:// URL"),
    ("https://mon.example/a b/", r"contains whitespace or a control character"),
    ("https://mon.example/a\n", r"contains whitespace or a control character"),
    ("https://[::1/prom", r"is not a valid URL"),
    ("https://mon.example/%ff/", r"is not a valid URL"),
    ("https://u:%s@mon.example/a b/" % SECRET, r"'https://\.\.\.@mon.example/a b/' contains whitespace"),  # refusal(): no SECRET
    ("ftp://u:%s@mon.example/" % SECRET, r"'ftp://\.\.\.@mon.example/' is not an http:// or https:// URL"),
    (9090, r"expected a URL, not int"),
    (["https://x/"], r"expected a URL, not list"),
])
@pytest.mark.parametrize(("job_name", "url_var"), ROUTED, ids=[r[0] for r in ROUTED])
def test_bad_external_url_is_refused(job_name, url_var, url, pattern):
    groups = inventory(prometheus=["m1"], alertmanager=["m1"])
    message = refusal(groups=groups, hostvars={"m1": {url_var: url}})
    assert re.match(r"scrape_configs: host 'm1': %s: " % url_var + ".*" + pattern, message), message


# Addresses

BAD_IPV4 = ["999.1.1.1", "1.2.3.4.5", "1.2.3", "256.0.0.1", "01.2.3.4", "1..2.3", "1.2.3.4.", "127.1", "0", "..."]
BAD_NAMES = ["web,1", "web*", "o'brien", "web 1", "web\t1", "web\n", "-web", "web-", "web-.example", "web..example", ".web",
             "a" * 64, ".".join(["a" * 63] * 4), "wéb", "web/1", "web@1", "web\\1", "web;1", "web\"1", "web\x00"]
ADDRESS_VARIABLES = ["ansible_host", "node_exporter_web_listen_address", "inventory_hostname"]


def address_refusal(address, variable):
    """The message for `address` as db1's ansible_host or listen host, or as an inventory name."""
    if variable == "inventory_hostname":
        groups = inventory(node_exporter=[address])
        return address, refusal(groups=groups)
    value = address + ":9100" if variable.endswith("_listen_address") else address
    return "db1", refusal(hostvars={"db1": {variable: value}})


@pytest.mark.parametrize("variable", ADDRESS_VARIABLES)
@pytest.mark.parametrize("address", BAD_IPV4)
def test_invalid_ipv4_is_refused(address, variable):
    host, message = address_refusal(address, variable)
    assert message == "scrape_configs: host %r: %s: %r is not a valid IPv4 address" % (host, variable, address)


@pytest.mark.parametrize("variable", ADDRESS_VARIABLES)
@pytest.mark.parametrize("address", BAD_NAMES)
def test_invalid_host_name_is_refused(address, variable):
    host, message = address_refusal(address, variable)
    assert message == "scrape_configs: host %r: %s: %r is not a valid host name or address" % (host, variable, address)


@pytest.mark.parametrize("variable", ADDRESS_VARIABLES)
@pytest.mark.parametrize(("address", "pattern"), [
    ("web1%eth0", r"'web1%eth0': a zone \(%\.\.\.\) is only valid on a link-local IPv6 address"),
    ("10.0.0.1%eth0", r"'10.0.0.1%eth0': a zone \(%\.\.\.\) is only valid on a link-local IPv6 address"),
    ("[2001:db8::1%eth0]", r"a zone \(%eth0\) is only valid on a link-local IPv6 address \(fe80::/10\)"),
    ("[::1%lo]", r"a zone \(%lo\) is only valid on a link-local IPv6 address"),
    ("[fe80::1%]", r"has an invalid IPv6 zone"),
    ("[fe80::1%a b]", r"has an invalid IPv6 zone"),
])
def test_zone_only_on_a_link_local_ipv6_literal(address, pattern, variable):
    if variable == "ansible_host" or variable == "inventory_hostname":
        address = address.strip("[]")
    host, message = address_refusal(address, variable)
    assert re.match(r"scrape_configs: host %s: %s: .*%s" % (re.escape(repr(host)), variable, pattern), message), message


@pytest.mark.parametrize("listen", ["[zz]:9100", "[10.0.0.2]:9100", "[]:9100", "[web1]:9100", "[[::1]]:9100", "[::1::2]:9100"])
def test_brackets_hold_only_ipv6_addresses(listen):
    message = refusal(hostvars={"db1": {"node_exporter_web_listen_address": listen}})
    assert message.startswith("scrape_configs: host 'db1': node_exporter_web_listen_address: %r: brackets hold an IPv6 address" % listen)


@HOST_SETTINGS
@given(st.text(min_size=1, max_size=20).filter(lambda t: re.search(r"[^A-Za-z0-9_.-]", t) and ":" not in t and not t.startswith("[")))
def test_property_a_name_with_other_characters_is_refused(name):
    message = refusal(hostvars={"db1": {"ansible_host": name}})
    assert message.startswith("scrape_configs: host 'db1': ansible_host: ")


@HOST_SETTINGS
@given(st.from_regex(r"[0-9.]{1,18}", fullmatch=True))
def test_property_digits_and_dots_are_an_ipv4_address_or_refused(address):
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        assert "is not a valid IPv4 address" in refusal(hostvars={"db1": {"ansible_host": address}})
    else:
        assert node_target({"ansible_host": address}) == [address + ":9100"]


@HOST_SETTINGS
@given(st.lists(st.from_regex(r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,20}[A-Za-z0-9_])?", fullmatch=True), min_size=1, max_size=4),
       st.booleans())
def test_property_dns_names_are_accepted(labels, final_dot):
    name = ".".join(labels) + ("." if final_dot else "")
    if re.fullmatch(r"[0-9.]+", name):
        return  # digits and dots: an IPv4 address (above)
    assert node_target({"ansible_host": name}) == [name + ":9100"]


# Metrics paths

BAD_PATHS = ["metrics", "", "\n/metrics", "/metrics?x=1", "/metrics#top", "/met rics", "/metrics\n", "/metrics\t", "/m\x00",
             "/m\x7f", "/m\u00a0", "/m\u2028", "/m\udc80", 5, b"/metrics", ["/metrics"]]


@pytest.mark.parametrize("path", BAD_PATHS, ids=repr)
def test_bad_metrics_path_is_refused(path):
    assert refusal(jobs=[{"name": "node", "metrics_path": path}]).startswith("scrape_configs: job 'node': metrics_path: ")
    message = refusal(hostvars={"db1": {"node_exporter_web_telemetry_path": path}})
    assert message.startswith("scrape_configs: host 'db1': node_exporter_web_telemetry_path: ")


@HOST_SETTINGS
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Z", "C"], exclude_characters="?#"), max_size=12))
def test_property_a_path_without_query_fragment_or_space_is_taken(rest):
    configs = run(groups=PAIR, hostvars={"db1": {"node_exporter_web_telemetry_path": "/m/" + rest}})
    assert targets(job(configs, "node"))["db1"][1]["__metrics_path__"] == "/m/" + rest
    assert job(run(groups=PAIR, jobs=[{"name": "node", "metrics_path": "/m/" + rest}]), "node")["metrics_path"] == "/m/" + rest


@HOST_SETTINGS
@given(st.text(max_size=6), st.sampled_from(["?", "#", " ", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "\u00a0", "\u3000"]),
       st.text(max_size=6))
def test_property_a_path_with_query_fragment_or_space_is_refused(before, bad, after):
    message = refusal(jobs=[{"name": "node", "metrics_path": "/" + before + bad + after}])
    assert message.startswith("scrape_configs: job 'node': metrics_path: ")


# Durations

GOOD_DURATIONS = {"15s": 15000, "1m30s": 90000, "1h": 3600000, "500ms": 500, "1d": 86400000, "1w": 604800000,
                  "1y": 31536000000, "1y2w3d4h5m6s7ms": 31536000000 + 2 * 604800000 + 3 * 86400000 + 4 * 3600000 + 5 * 60000 + 6007,
                  "90s": 90000, "01s": 1000, "1m1ms": 60001}
BAD_DURATIONS = ["", "0", "0s", "0m0s", "1.5s", "1 s", "s", "1S", "1m1h", "1s1s", "10", "-1s", "1ms1s", "\u0663s", "1\u00b5s",
                 "1ns", "1us", " 1s", "1s\n", "300y", 30, 1.5, None, ["1s"]]
UNITS = ("y", "w", "d", "h", "m", "s", "ms")
UNIT_MS = dict(zip(UNITS, (31536000000, 604800000, 86400000, 3600000, 60000, 1000, 1)))


@pytest.mark.parametrize("duration", BAD_DURATIONS, ids=repr)
@pytest.mark.parametrize("key", ["scrape_interval", "scrape_timeout"])
def test_bad_duration_is_refused(key, duration):
    if duration is None:
        return  # None: the option is not set
    message = refusal(jobs=[{"name": "node", key: duration}])
    assert message.startswith("scrape_configs: job 'node': %s: %r " % (key, duration)), message


@pytest.mark.parametrize("duration", sorted(GOOD_DURATIONS))
def test_good_duration_is_taken(duration):
    assert plugin._duration(duration, "here") == GOOD_DURATIONS[duration]
    config = job(run(groups=PAIR, jobs=[{"name": "node", "scrape_interval": duration, "scrape_timeout": duration}]), "node")
    assert (config["scrape_interval"], config["scrape_timeout"]) == (duration, duration)


durations = st.dictionaries(st.sampled_from(UNITS), st.integers(0, 99), min_size=1).filter(lambda parts: any(parts.values()))


def spelled(parts):
    return "".join("%d%s" % (parts[unit], unit) for unit in UNITS if unit in parts)


@HOST_SETTINGS
@given(durations, durations)
def test_property_timeout_at_most_the_interval(interval, timeout):
    jobs = [{"name": "node", "scrape_interval": spelled(interval), "scrape_timeout": spelled(timeout)}]
    if sum(n * UNIT_MS[u] for u, n in timeout.items()) > sum(n * UNIT_MS[u] for u, n in interval.items()):
        message = refusal(jobs=jobs)
        assert message == ("scrape_configs: job 'node': scrape_timeout: %s is longer than the job's scrape_interval %s"
                           % (spelled(timeout), spelled(interval)))
    else:
        assert job(run(groups=PAIR, jobs=jobs), "node")["scrape_timeout"] == spelled(timeout)


@HOST_SETTINGS
@given(st.lists(st.sampled_from(UNITS), min_size=2, max_size=4, unique=True).filter(lambda units: units != sorted(units, key=UNITS.index)))
def test_property_units_out_of_order_are_refused(units):
    duration = "".join("1" + unit for unit in units)
    assert "is not a Prometheus duration" in refusal(jobs=[{"name": "node", "scrape_interval": duration}])


def test_timeout_against_the_scrapers_global_interval():
    hostvars = {"prom1": {"prometheus_scrape_interval": "15s"}}
    jobs = [{"name": "node", "scrape_timeout": "20s"}]
    message = refusal(hostvars=hostvars, jobs=jobs, scraper="prom1")
    assert message == ("scrape_configs: job 'node': scrape_timeout: 20s is longer than the global scrape interval 15s "
                       "(host 'prom1': prometheus_scrape_interval)")
    # Unknown global interval (no scraper, or it sets none): taken. Not kept for promtool, whose
    # configs have a global interval of 15s.
    plugin.scrape_configs(PAIR, hostvars, jobs)
    plugin.scrape_configs(PAIR, {"prom1": {"prometheus_scrape_interval": ""}}, jobs, scraper="prom1")
    run(groups=PAIR, hostvars=hostvars, jobs=[{"name": "node", "scrape_timeout": "15s"}], scraper="prom1")
    run(groups=PAIR, hostvars=hostvars, jobs=[{"name": "node", "scrape_timeout": "20s", "scrape_interval": "1m"}], scraper="prom1")
    message = refusal(hostvars={"prom1": {"prometheus_scrape_interval": "15 s"}}, scraper="prom1")
    assert message == "scrape_configs: host 'prom1': prometheus_scrape_interval: '15 s' is not a Prometheus duration such as 30s or 1m30s"


# Labels, group members, job names, the scraper

@pytest.mark.parametrize(("labels", "pattern"), [
    ({3: "x"}, r"3 is not a valid label name"),
    ({None: "x"}, r"None is not a valid label name"),
    ({"env": "x", 3: "y"}, r"3 is not a valid label name"),
    ({(1, 2): "x"}, r"\(1, 2\) is not a valid label name"),
    ({"1a": "x"}, r"'1a' is not a valid label name"),
    ({"a-b": "x"}, r"'a-b' is not a valid label name"),
    ({"__x": "x"}, r"'__x' is not a valid label name"),
    ({"é": "x"}, r"'é' is not a valid label name"),
    ({"": "x"}, r"'' is not a valid label name"),
    ({"env": []}, r"label 'env' must be a string or a number, not list"),
    ({"env": {}}, r"label 'env' must be a string or a number, not dict"),
    ({"env": None}, r"label 'env' must be a string or a number, not NoneType"),
    ({"env": b"prod"}, r"label 'env' must be a string or a number, not bytes"),
    ({"env": bytearray(b"prod")}, r"label 'env' must be a string or a number, not bytearray"),
    ({"env": "pr\udc80d"}, r"label 'env': the value is not valid UTF-8 text"),
    ([], r"labels must be a dict, not list"),
    ("env=prod", r"labels must be a dict, not str"),
], ids=repr)
def test_bad_labels_are_refused(labels, pattern):
    message = refusal(hostvars={"db1": {"prometheus_target_labels": labels}})
    assert re.match(r"scrape_configs: host 'db1': prometheus_target_labels: " + pattern, message), message
    message = refusal(jobs=[{"name": "node", "labels": labels}])
    assert re.match(r"scrape_configs: job 'node': labels: " + pattern, message), message


LABEL_KEYS = st.one_of(st.text(max_size=6), st.integers(), st.none(), st.sampled_from(["env", "dc", "_x", "__x", "instance"]))
LABEL_VALUES = st.one_of(st.text(max_size=6), st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2), st.integers(),
                         st.floats(), st.booleans(), st.none(), st.binary(max_size=3), st.lists(st.integers(), max_size=2))


def valid_label(name, value):
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name.startswith("__"):
        return False
    if name in ("instance", "job") or isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False
    return not isinstance(value, str) or value == value.encode("utf-8", "replace").decode()  # no lone surrogate


@HOST_SETTINGS
@given(st.dictionaries(LABEL_KEYS, LABEL_VALUES, max_size=4))
def test_property_labels_are_taken_or_refused(labels):
    hostvars = {"db1": {"prometheus_target_labels": labels}}
    if all(valid_label(name, value) for name, value in labels.items()):
        got = targets(job(run(groups=PAIR, hostvars=hostvars), "node"))["db1"][1]
        assert got == {**{name: str(value) for name, value in labels.items()}, "instance": "db1"}
    else:
        refusal(hostvars=hostvars)


@pytest.mark.parametrize(("members", "shown"), [
    ([3], "3"), ([None], "None"), (["db1", 3], "3"), ([""], "''"), ([["x"]], r"\['x'\]"), (["web\udc80"], r"'web\\udc80'"),
    ([b"db1"], r"b'db1'"), ([{"db1": {}}], r"\{'db1': \{\}\}"),
], ids=repr)
def test_bad_group_members_are_refused(members, shown):
    message = refusal(groups={**PAIR, "node_exporter": members})
    assert re.fullmatch(r"scrape_configs: group 'node_exporter': %s is not a host name" % shown, message), message


@pytest.mark.parametrize(("name", "prefix"), [("my-app", "my_app"), ("my-app.v2", "my_app_v2"), ("9app", "_9app"), ("app_1", "app_1"),
                                              ("a.b-c_d", "a_b_c_d")])
def test_job_name_with_dash_or_dot_reads_a_derived_variable_prefix(name, prefix):
    hostvars = {"db1": {prefix + "_web_listen_address": ":9999", prefix + "_web_telemetry_path": "/m"}}
    files = run(groups=PAIR, hostvars=hostvars, jobs=[{"name": name, "group": "postgres_exporter", "port": 8000}],
                output="file_sd", file_sd_dir="/sd")
    assert files[name + ".yml"] == [{"targets": ["db1:9999"], "labels": {"__metrics_path__": "/m", "instance": "db1"}}]
    explicit = [{"name": name, "group": "postgres_exporter", "port": 8000, "var_prefix": "custom"}]
    config = job(run(groups=PAIR, hostvars={"db1": {"custom_web_listen_address": ":7777", **hostvars["db1"]}}, jobs=explicit), name)
    assert config["static_configs"][0]["targets"] == ["db1:7777"]


@HOST_SETTINGS
@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True))
def test_property_every_job_name_reads_a_valid_variable_prefix(name):
    assume(name not in BUILTIN_JOBS)
    prefix = plugin._var_prefix(name)
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix) and len(prefix) in (len(name), len(name) + 1)
    jobs = [{"name": name, "group": "postgres_exporter", "port": 8000}]
    config = job(run(groups=PAIR, hostvars={"db1": {prefix + "_web_listen_address": ":9999"}}, jobs=jobs), name)
    assert config["static_configs"][0]["targets"] == ["db1:9999"]


@pytest.mark.parametrize(("scraper", "pattern"), [
    (3, r"scraper: 3 is not an inventory host name"),
    ("", r"scraper: '' is not an inventory host name"),
    (["prom1"], r"scraper: \['prom1'\] is not an inventory host name"),
    ("nope", r"scraper: 'nope' is not a host of the inventory"),
])
def test_bad_scraper_is_refused(scraper, pattern):
    assert re.fullmatch("scrape_configs: " + pattern, refusal(scraper=scraper))


@pytest.mark.parametrize(("arguments", "pattern"), [
    ({"jobs": [{"name": "node", "tls": {"ca_file": "/ca\udc80"}}]}, r"job 'node': tls: ca_file is not valid UTF-8 text"),
    ({"jobs": [{"name": "node", "basic_auth": {"username": "u", "password": SECRET + "\udc80"}}]},
     r"job 'node': basic_auth: password is not valid UTF-8 text"),
    ({"basic_auth": {"username": "u\udc80", "password": SECRET}}, r"basic_auth: username is not valid UTF-8 text"),
    ({"file_sd_dir": "/sd\udc80"}, r"file_sd_dir: '/sd\\udc80' is not valid UTF-8 text"),
])
def test_text_that_cannot_be_written_is_refused(arguments, pattern):
    assert re.fullmatch("scrape_configs: " + pattern, refusal(**arguments))


# Anything at all in the places the filter reads: a result that can be written out, or a clear refusal.

JUNK = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.binary(max_size=4),
              st.text(st.characters(categories=["Cs"]), min_size=1, max_size=2),
              st.sampled_from(["", ":9100", "127.0.0.1:1", "[::]:1", "/m", "https://x/p/", "15s", "db1", "env"])),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(), st.none()), children, max_size=3)),
    max_leaves=6,
)
HOST_READS = ["ansible_host", "node_exporter_web_listen_address", "node_exporter_web_telemetry_path", "prometheus_target_labels",
              "prometheus_web_external_url", "prometheus_web_listen_address", "prometheus_scrape_interval",
              "prometheus_version"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(HOST_READS), JUNK), st.lists(JUNK, max_size=2),
       st.dictionaries(st.sampled_from([o for o in plugin.JOB_OPTIONS if o != "name"]), JUNK, max_size=2),
       st.one_of(st.none(), st.just("db1"), JUNK))
def test_property_junk_is_taken_or_refused_never_a_crash(variables, members, job_options, scraper):
    groups = {"all": ["db1"], "prometheus": ["db1"], "node_exporter": ["db1", *members]}
    try:
        result = scrape_configs(groups, {"db1": variables}, [{"name": "node", **job_options}], scraper=scraper, output="both")
    except AnsibleFilterError as error:
        assert str(error).startswith("scrape_configs: ")
    else:
        yaml.safe_dump(result)  # writable as it is: no bytes, no lone surrogate


# --- properties (hypothesis) -----------------------------------------------------------------

HOST_NAMES = st.from_regex(r"[a-z]([a-z0-9-]{0,11}[a-z0-9])?(\.[a-z]{2,6})?", fullmatch=True)
GROUP_NAMES = sorted({spec["group"] for spec in BUILTIN_JOBS.values()} | {"lb", "edge"})
CUSTOM_JOBS = [{"name": "haproxy", "group": ["lb", "edge"], "port": 8405}]


SCRAPER = "prom0"  # the Prometheus host of inventories(): only it listens on loopback


@st.composite
def inventories(draw, max_hosts=25):
    """(groups, hostvars) for the calls with scraper=SCRAPER, a host of every inventory."""
    hosts = [SCRAPER] + draw(st.lists(HOST_NAMES.filter(lambda h: h != SCRAPER), min_size=0, max_size=max_hosts, unique=True))
    groups = {"all": list(hosts), "ungrouped": []}
    for group in GROUP_NAMES:
        groups[group] = draw(st.lists(st.sampled_from(hosts), unique=True)) if hosts else []
    hostvars = {}
    for host in hosts:
        variables = {}
        kind = draw(st.sampled_from(["none", "v4", "v6", "name"]))
        if kind == "v4":
            variables["ansible_host"] = str(draw(st.ip_addresses(v=4)))
        elif kind == "v6":
            variables["ansible_host"] = str(draw(st.ip_addresses(v=6)))
        elif kind == "name":
            variables["ansible_host"] = draw(HOST_NAMES)
        if draw(st.booleans()):
            listen_hosts = WILDCARDS + LOOPBACKS if host == SCRAPER else WILDCARDS
            variables["node_exporter_web_listen_address"] = draw(st.sampled_from(listen_hosts)) + ":" + str(draw(st.integers(1, 65535)))
        if draw(st.booleans()):
            variables["prometheus_target_labels"] = draw(
                st.dictionaries(st.sampled_from(["env", "dc", "role", "rack"]), st.text("abcxyz019-", min_size=0, max_size=8))
            )
        hostvars[host] = variables
    return groups, hostvars


def shuffled(groups, hostvars, rnd):
    groups = {k: rnd.sample(v, len(v)) for k, v in rnd.sample(list(groups.items()), len(groups))}
    hostvars = dict(rnd.sample(list(hostvars.items()), len(hostvars)))
    return groups, hostvars


def hashmod(value: str, modulus: int) -> int:
    """Prometheus' hashmod (model/relabel/relabel.go): md5, last 8 bytes as big-endian uint64, modulo."""
    return int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big") % modulus


def relabel(labels: dict, rules: list) -> dict | None:
    """The subset of Prometheus relabeling the filter emits (hashmod, keep); None when dropped."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        if rule["action"] == "hashmod":
            labels[rule["target_label"]] = str(hashmod(value, rule["modulus"]))
        elif rule["action"] == "keep":
            if not re.fullmatch(rule["regex"], value):
                return None
        else:
            raise AssertionError(rule)
    return labels


def test_hashmod_matches_prometheus_test_vectors():
    # From Prometheus' model/relabel/relabel_test.go: hashmod of "baz" and "foo\nbar", modulus 1000.
    assert hashmod("baz", 1000) == 976
    assert hashmod("foo\nbar", 1000) == 734


PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(inventories(), st.randoms(use_true_random=False), st.booleans())
def test_property_deterministic(inv, rnd, file_sd):
    groups, hostvars = inv
    options = {"jobs": CUSTOM_JOBS, "output": "both", "file_sd_dir": "/etc/prometheus/file_sd" if file_sd else "", "scraper": SCRAPER}
    first = scrape_configs(groups, hostvars, **options)
    again = scrape_configs(*shuffled(groups, hostvars, rnd), **options)
    assert yaml.safe_dump(first, sort_keys=False) == yaml.safe_dump(again, sort_keys=False)


@PROPERTY_SETTINGS
@given(inventories())
def test_property_every_host_of_a_group_once(inv):
    groups, hostvars = inv
    configs = scrape_configs(groups, hostvars, CUSTOM_JOBS, scraper=SCRAPER)
    wanted = {name: set(groups[spec["group"]]) for name, spec in BUILTIN_JOBS.items()}
    wanted["haproxy"] = set(groups["lb"]) | set(groups["edge"])
    assert {c["job_name"]: None for c in configs}.keys() == wanted.keys()
    for config in configs:
        instances = [g["labels"]["instance"] for g in config["static_configs"]]
        assert instances == sorted(wanted[config["job_name"]])  # each host once, sorted
        for group in config["static_configs"]:
            assert len(group["targets"]) == 1


def test_property_every_target_in_exactly_one_shard():
    @PROPERTY_SETTINGS
    @given(inventories(max_hosts=40), st.integers(1, 7))
    def check(inv, shard_count):
        groups, hostvars = inv
        seen = {}
        for index in range(shard_count):
            result = scrape_configs(groups, hostvars, CUSTOM_JOBS, shard_count=shard_count, shard_index=index, output="both",
                                    scraper=SCRAPER)
            for config in result["scrape_configs"]:
                for group in config["static_configs"]:
                    key = (config["job_name"], group["labels"]["instance"])
                    kept = relabel({"job": config["job_name"], "__address__": group["targets"][0], **group["labels"]},
                                   config.get("relabel_configs", []))
                    seen.setdefault(key, []).append(index if kept is not None else None)
        everything = {(c["job_name"], g["labels"]["instance"])
                      for c in scrape_configs(groups, hostvars, CUSTOM_JOBS, scraper=SCRAPER) for g in c["static_configs"]}
        assert set(seen) == everything
        for key, shards in seen.items():
            assert len(shards) == shard_count
            kept_by = [s for s in shards if s is not None]
            assert kept_by == [hashmod(key[1], shard_count)], key  # exactly one shard, the hashmod of the host
        # All jobs of a host land on the same shard.
        by_host = {}
        for (job_name, host), shards in seen.items():
            by_host.setdefault(host, set()).update(s for s in shards if s is not None)
        assert all(len(s) == 1 for s in by_host.values())

    check()


# --- through Ansible itself ---------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[4]
INVENTORY = """
all:
  children:
    node_exporter:
      hosts:
        web1: {ansible_host: 10.0.0.1, prometheus_target_labels: {env: prod}}
        db1: {ansible_host: "2001:db8::10", node_exporter_web_listen_address: "[::]:9200"}
    postgres_exporter:
      hosts:
        db1:
    backend:
      hosts:
        web1:
    undefined_address:
      hosts:
        bad1: {ansible_host: "{{ not_defined_anywhere }}"}
    bad_port:
      hosts:
        bad2: {node_exporter_web_listen_address: ":99999"}
    loopback:
      hosts:
        lo1: {node_exporter_web_listen_address: "127.0.0.1:9100", prometheus_scrape_interval: "{{ '1' ~ '0s' }}"}
"""
PLAYBOOK = """
- name: Scrape configs through Ansible
  hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [vault.yml]
  vars:
    jobs:
      - name: node
        basic_auth: {username: prometheus, password: "{{ vault_exporter_password }}"}
    scrape: "{{ groups | arq.monitoring.scrape_configs(hostvars, jobs, file_sd_dir=out + '/sd', output='both') }}"
    lo_jobs: [{name: lo, group: loopback, port: 1, var_prefix: node_exporter}]
  tasks:
    - name: Write prometheus.yml
      ansible.builtin.copy:
        dest: "{{ out }}/prometheus.yml"
        content: "{{ {'scrape_configs': scrape.scrape_configs} | to_nice_yaml }}"
        mode: "0640"
    - name: Write the target files
      ansible.builtin.copy:
        dest: "{{ out }}/sd/{{ item.key }}"
        content: "{{ item.value | to_nice_yaml }}"
        mode: "0644"
      loop: "{{ scrape.file_sd | dict2items }}"
    - name: An undefined ansible_host
      ansible.builtin.set_fact:
        broken: "{{ groups | arq.monitoring.scrape_configs(hostvars, [{'name': 'x', 'group': 'undefined_address', 'port': 1}]) }}"
      register: undefined_result
      ignore_errors: true
    - name: A bad port
      ansible.builtin.set_fact:
        broken: "{{ groups | arq.monitoring.scrape_configs(hostvars, [{'name': 'x', 'group': 'bad_port', 'port': 1, 'var_prefix': 'node_exporter'}]) }}"
      register: port_result
      ignore_errors: true
    - name: A bad basic_auth holding the vaulted password
      ansible.builtin.set_fact:
        broken: >-
          {{ groups | arq.monitoring.scrape_configs(hostvars, [{'name': 'node', 'basic_auth':
          {'username': 'p', 'password': vault_exporter_password, 'password_file': '/p'}}]) }}
      register: auth_result
      ignore_errors: true
    - name: An undefined jobs argument
      ansible.builtin.set_fact:
        broken: "{{ groups | arq.monitoring.scrape_configs(hostvars, jobs_not_defined) }}"
      register: jobs_result
      ignore_errors: true
    - name: A loopback listener, for the Prometheus on its host
      ansible.builtin.set_fact:
        own: "{{ groups | arq.monitoring.scrape_configs(hostvars, lo_jobs, builtin_jobs=false, scraper='lo1') }}"
    - name: A loopback listener, for the Prometheus on another host
      ansible.builtin.set_fact:
        broken: "{{ groups | arq.monitoring.scrape_configs(hostvars, lo_jobs, builtin_jobs=false, scraper='web1') }}"
      register: loopback_result
      ignore_errors: true
    - name: A timeout longer than the scraper's global interval
      ansible.builtin.set_fact:
        broken: >-
          {{ groups | arq.monitoring.scrape_configs(hostvars, [lo_jobs[0] | combine({'scrape_timeout': '20s'})],
             builtin_jobs=false, scraper='lo1') }}
      register: interval_result
      ignore_errors: true
    - name: Record the messages
      ansible.builtin.copy:
        dest: "{{ out }}/messages.json"
        content: >-
          {{ {'undefined': undefined_result.msg, 'port': port_result.msg, 'auth': auth_result.msg, 'jobs': jobs_result.msg,
              'own': own, 'loopback': loopback_result.msg, 'interval': interval_result.msg} | to_json }}
        mode: "0644"
"""


def test_through_ansible_playbook(tmp_path, promtool):
    """Real hostvars, a vaulted password, to_nice_yaml, and Ansible's own undefined errors."""
    (tmp_path / "out/sd").mkdir(parents=True)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "vault-pass").write_text("vault-pass\n")
    vault = VaultLib([("default", VaultSecret(b"vault-pass"))])
    (tmp_path / "vault.yml").write_bytes(vault.encrypt(f"vault_exporter_password: {SECRET}\n".encode()))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         "--vault-password-file", str(tmp_path / "vault-pass"), "-e", f"out={tmp_path / 'out'}", str(tmp_path / "site.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert SECRET not in proc.stdout + proc.stderr

    config = yaml.safe_load((tmp_path / "out/prometheus.yml").read_text())
    node = job(config["scrape_configs"], "node")
    assert node["basic_auth"] == {"username": "prometheus", "password": SECRET}  # the vault decrypted
    node_targets = yaml.safe_load((tmp_path / "out/sd/node.yml").read_text())
    assert targets(node_targets) == {
        "db1": (["[2001:db8::10]:9200"], {"instance": "db1"}),
        "web1": (["10.0.0.1:9100"], {"env": "prod", "instance": "web1"}),
    }
    assert [c["job_name"] for c in config["scrape_configs"]] == ["backend", "node", "postgres"]
    promtool_check(promtool, [tmp_path / "out/prometheus.yml"])

    messages = json.loads((tmp_path / "out/messages.json").read_text())
    assert "'not_defined_anywhere' is undefined" in messages["undefined"]
    assert "scrape_configs:" not in messages["undefined"]  # Ansible's own error, not ours
    assert "scrape_configs: host 'bad2': node_exporter_web_listen_address: port 99999 is out of range" in messages["port"]
    assert "scrape_configs: job 'node': basic_auth: needs exactly one of password, password_file" in messages["auth"]
    assert SECRET not in json.dumps(messages)
    assert "'jobs_not_defined' is undefined" in messages["jobs"]
    assert job(messages["own"], "lo")["static_configs"] == [{"targets": ["127.0.0.1:9100"], "labels": {"instance": "lo1"}}]
    assert ("scrape_configs: host 'lo1': node_exporter_web_listen_address: '127.0.0.1:9100' listens on loopback only, "
            "which Prometheus on 'web1' cannot scrape") in messages["loopback"]
    assert ("scrape_configs: job 'lo': scrape_timeout: 20s is longer than the global scrape interval 10s "
            "(host 'lo1': prometheus_scrape_interval)") in messages["interval"]


# Prometheus 3: fallback_scrape_protocol, opt-in per job

def test_no_fallback_scrape_protocol_unless_asked():
    """Every target the collection ships sends a Content-Type Prometheus 3 knows: no job gets a
    fallback by itself (a missing header stays a failed scrape, not a guess)."""
    assert all("fallback_scrape_protocol" not in config for config in run())
    on_3 = run(hostvars={"prom1": {"prometheus_version": "3.5.3"}}, scraper="prom1")
    assert all("fallback_scrape_protocol" not in config for config in on_3)


@pytest.mark.parametrize("protocol", plugin.SCRAPE_PROTOCOLS)
def test_fallback_scrape_protocol_of_a_job(protocol):
    configs = run(jobs=[{"name": "backend", "fallback_scrape_protocol": protocol}])
    assert job(configs, "backend")["fallback_scrape_protocol"] == protocol
    assert all("fallback_scrape_protocol" not in c for c in configs if c["job_name"] != "backend")
    assert list(job(configs, "backend"))[:4] == ["job_name", "scheme", "metrics_path", "fallback_scrape_protocol"]


@pytest.mark.parametrize("value", ["PrometheusText0.0.5", "prometheustext0.0.4", "", 4, ["PrometheusProto"]])
def test_fallback_scrape_protocol_must_be_a_protocol(value):
    message = refusal(jobs=[{"name": "node", "fallback_scrape_protocol": value}])
    assert message == ("scrape_configs: job 'node': fallback_scrape_protocol: %r is not one of PrometheusText0.0.4, "
                       "PrometheusText1.0.0, OpenMetricsText0.0.1, OpenMetricsText1.0.0, PrometheusProto" % (value,))


@pytest.mark.parametrize(("version", "refused"), [
    ("2.53.3", True), ("2.55.1", True), ("3.0.0", False), ("3.5.3", False), (None, False), ("", False), ("latest", False)])
def test_fallback_scrape_protocol_against_the_scrapers_version(version, refused):
    """Prometheus 2 refuses the key: known from the scraper's prometheus_version, refused here; an
    unknown version (no scraper, none set, not a version the role takes) leaves it to promtool."""
    hostvars = {"prom1": {} if version is None else {"prometheus_version": version}}
    jobs = [{"name": "node", "fallback_scrape_protocol": "PrometheusText0.0.4"}]
    if refused:
        assert refusal(hostvars=hostvars, jobs=jobs, scraper="prom1") == (
            "scrape_configs: job 'node': fallback_scrape_protocol: needs Prometheus 3, and host 'prom1': "
            "prometheus_version is %s (Prometheus 2 refuses the key and takes a target's missing Content-Type as "
            "text by itself)" % version)
    else:
        assert job(run(groups=PAIR, hostvars=hostvars, jobs=jobs, scraper="prom1"), "node")["fallback_scrape_protocol"]
    run(groups=PAIR, hostvars=hostvars, jobs=jobs)  # no scraper: no version known


# --- last: promtool on every output above -------------------------------------------------------


def test_every_output_passes_promtool(tmp_path, promtool):
    """Every distinct config the filter gave in this module's tests (addresses, IPv6 zones, TLS,
    basic auth, file_sd, shards, the property tests' inventories ...) and the combinations below,
    which no single test makes, each with its target, password and TLS files, in one promtool run.

    Last in the module, as pytest runs a module's tests in order: a config made after this check
    fails the test that makes it. Each config's directory is named after the first test that made it.
    """
    sd = str(tmp_path / "sd")
    hostvars = copy.deepcopy(HOSTVARS)
    hostvars["web1"].update(backend_web_telemetry_path="/api/v2/metrics", node_exporter_web_listen_address="[::]:9200")
    hostvars["web2"]["prometheus_target_labels"] = {"env": "prod", "rack": 3}
    jobs = [
        {"name": "node", "tls": {"ca_file": str(tmp_path / "ca.pem"), "server_name": "n"},
         "basic_auth": {"username": "u", "password": SECRET}, "labels": {"team": "ops"}},
        {"name": "postgres", "basic_auth": {"username": "u", "password_file": str(tmp_path / "pw")},
         "scrape_interval": "1m", "scrape_timeout": "30s"},
        {"name": "grafana", "enabled": False},
        {"name": "haproxy", "group": ["backend", "node_exporter"], "port": 8405, "scheme": "https",
         "tls": {"cert_file": str(tmp_path / "c.pem"), "key_file": str(tmp_path / "k.pem"), "insecure_skip_verify": True}},
        {"name": "backend", "fallback_scrape_protocol": "PrometheusText0.0.4"},  # Prometheus 3 only
    ]
    variants = [
        {},
        {"jobs": jobs, "hostvars": hostvars},
        {"jobs": jobs, "hostvars": hostvars, "file_sd_dir": sd},
        {"jobs": jobs, "hostvars": hostvars, "shard_count": 4, "shard_index": 3},
        {"file_sd_dir": sd + "2", "shard_count": 2, "shard_index": 0},
        {"groups": inventory(node_exporter=[], backend=["x"]), "hostvars": {}},
        {"groups": inventory(node_exporter=[], backend=["x"]), "hostvars": {}, "file_sd_dir": sd + "3"},
        {"jobs": jobs[2:4], "builtin_jobs": False, "hostvars": hostvars},
    ]
    for variant in variants:
        run(output="both", **variant)
    made = OUTPUTS.close()
    files = [write_config(tmp_path / ("%04d-%s" % (i, re.sub(r"[^\w.-]+", "_", tests[0])[:80])), result)
             for i, (result, tests) in enumerate(made)]
    promtool_check(promtool, files)
