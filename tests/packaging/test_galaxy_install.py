"""The collection as an ops repo gets it: built, installed from the tarball, documented."""
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the tarball and install it into an empty directory, as from Galaxy (offline)."""
    work = tmp_path_factory.mktemp("galaxy")
    # An ops repo of its own: not this checkout's ansible.cfg and .collections link.
    (work / "ansible.cfg").write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"), "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
    subprocess.run(["ansible-galaxy", "collection", "build", "--output-path", str(work), str(REPO)],
                   check=True, capture_output=True, cwd=work, env=env)
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    tarball = work / f"arq-monitoring-{version}.tar.gz"
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(work / "collections"), str(tarball)],
                   check=True, capture_output=True, cwd=work, env=env)
    return tarball, env, work


def ansible_doc(installed, *args):
    _, env, work = installed
    return subprocess.run(["ansible-doc", *args], check=True, capture_output=True, text=True, env=env, cwd=work).stdout


def test_tarball_leaves_out_tests_and_ci(installed):
    names = tarfile.open(installed[0]).getnames()
    assert "roles/node_exporter/tasks/main.yml" in names and "playbooks/site.yml" in names
    assert not [n for n in names if n.split("/")[0] in {"tests", "molecule", ".ci", ".collections", ".venv", ".config"}]


def test_every_role_documented_from_the_install(installed):
    listing = ansible_doc(installed, "-t", "role", "-l", "arq.monitoring")
    for role in ROLES:
        assert f"arq.monitoring.{role}" in listing
        assert "Options" in ansible_doc(installed, "-t", "role", f"arq.monitoring.{role}")


def test_filters_documented_from_the_install(installed):
    for name in (p.stem for p in (REPO / "plugins/filter").glob("*.py") if not p.stem.startswith("_")):
        assert "EXAMPLES" in ansible_doc(installed, "-t", "filter", f"arq.monitoring.{name}")


def test_site_playbook_resolves_by_fqcn(installed):
    _, env, work = installed
    inventory = work / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    run = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(inventory), "arq.monitoring.site"],
                         capture_output=True, text=True, env=env, cwd=work)
    assert run.returncode == 0, run.stdout + run.stderr
