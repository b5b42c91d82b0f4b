"""The catalog of the stack's services: sane, and in step with the roles and the documentation."""
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.arq.monitoring.plugins.filter import scrape_configs
from ansible_collections.arq.monitoring.plugins.plugin_utils.services import SERVICES

REPO = Path(__file__).resolve().parents[4]
# Roles that are not a service: they secure the hosts the services run on.
NOT_SERVICES = {"tls", "firewall"}
SERVICE_ROLES = sorted(p.name for p in (REPO / "roles").iterdir()
                       if p.is_dir() and not p.name.startswith("_") and p.name not in NOT_SERVICES)
FIELDS = {"job", "group", "role", "port", "listen_var", "metrics_path"}
EXTRA_FIELDS = {"alertmanager": {"cluster_port", "cluster_listen_var"},
                "prometheus": {"config_dir", "file_sd_dir", "ca_file"}}


def listeners():
    """(service, listen variable, default port) of every listener in the catalog."""
    for name, service in SERVICES.items():
        yield name, service["listen_var"], service["port"]
        if "cluster_listen_var" in service:
            yield name, service["cluster_listen_var"], service["cluster_port"]


def defaults(role):
    return yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text()) or {}


@pytest.mark.parametrize("name", SERVICES)
def test_an_entry_has_its_fields_and_no_other(name):
    service = SERVICES[name]
    assert set(service) == FIELDS | EXTRA_FIELDS.get(name, set())
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", service["job"])
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", service["group"])
    assert service["role"] is None or service["role"] == name
    assert service["metrics_path"].startswith("/")
    # The scrape_configs filter reads the job's host variables under the listen variable's prefix.
    assert service["listen_var"].endswith(scrape_configs.LISTEN_SUFFIX)


def test_no_two_listeners_share_a_port_or_a_variable():
    # Any host may run every service (the lab's monitoring host runs four), so no two may clash.
    found = list(listeners())
    ports = [port for _name, _var, port in found]
    assert all(isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535 for port in ports)
    assert len(set(ports)) == len(ports), found
    assert len({var for _name, var, _port in found}) == len(found), found


@pytest.mark.parametrize("key", ["job", "group"])
def test_jobs_and_groups_are_unique(key):
    values = [service[key] for service in SERVICES.values()]
    assert len(set(values)) == len(values)


def test_every_service_role_has_an_entry_and_every_entry_with_a_role_has_one():
    assert SERVICE_ROLES, "no role found"
    assert sorted(service["role"] for service in SERVICES.values() if service["role"]) == SERVICE_ROLES


@pytest.mark.parametrize("name, listen_var, port", [found for found in listeners() if SERVICES[found[0]]["role"]],
                         ids=str)
def test_the_role_listens_where_the_catalog_says(name, listen_var, port):
    role = SERVICES[name]["role"]
    assert listen_var in defaults(role), "%s is not a variable of roles/%s/defaults/main.yml" % (listen_var, role)
    assert int(str(defaults(role)[listen_var]).rsplit(":", 1)[1]) == port


def test_the_prometheus_paths_are_the_roles():
    service = SERVICES["prometheus"]
    role_vars = yaml.safe_load((REPO / "roles/prometheus/vars/main.yml").read_text())
    config_dir = role_vars["__prometheus_config_dir"]
    assert service["config_dir"] == config_dir
    assert service["file_sd_dir"] == role_vars["__prometheus_file_sd_dir"].replace("{{ __prometheus_config_dir }}", config_dir)
    assert service["ca_file"].rpartition("/")[0] == config_dir


def test_the_filter_documents_the_catalog():
    """scrape_configs's ansible-doc lists each built-in job as job - group, port, metrics path."""
    text = " ".join(yaml.safe_load(scrape_configs.DOCUMENTATION)["description"])
    documented = set(re.findall(r"C\(([^)]+)\) - C\(([^)]+)\), (\d+), C\(([^)]+)\)", text))
    assert documented == {(s["job"], s["group"], str(s["port"]), s["metrics_path"]) for s in SERVICES.values()}
    tls = yaml.safe_load(scrape_configs.DOCUMENTATION)["options"]["tls"]["description"]
    assert "C(%s)" % SERVICES["prometheus"]["ca_file"] in " ".join(tls)


def test_docs_scrape_configs_md_documents_the_catalog():
    table = (REPO / "docs/scrape_configs.md").read_text().split("## Built-in jobs", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| (\d+) \| `([^`]+)` \| `([^`]+)` \|$", table, re.M))
    assert rows == {(s["job"], s["group"], str(s["port"]), s["metrics_path"],
                     s["listen_var"][:-len(scrape_configs.LISTEN_SUFFIX)]) for s in SERVICES.values()}


def test_the_filter_builds_its_jobs_from_the_catalog():
    assert set(scrape_configs.BUILTIN_JOBS) == {s["job"] for s in SERVICES.values()}
    assert scrape_configs.SERVICE_JOBS == {s["job"] for s in SERVICES.values() if s["role"]}
    assert "backend" not in scrape_configs.SERVICE_JOBS
