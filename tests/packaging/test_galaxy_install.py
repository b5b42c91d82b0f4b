"""The collection as an ops repo gets it: built, installed from the tarball, documented."""
import fnmatch
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if not p.name.startswith("_"))


# The top level of a built collection; anything else there is a developer's or CI's file.
SHIPPED = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "LICENSE", "changelogs", "site.yml",
           "docs", "inventories", "meta", "playbooks", "plugins", "roles"}
# What tests, linters, builds and editors leave behind, at any depth: none of it may ship.
DEV_ONLY = ["__pycache__", "*.pyc", ".pytest_cache", ".hypothesis", ".ansible", ".cache", ".venv",
            ".tox", "*.log", "*.retry", "*.tar.gz", "_build", "tests", "molecule", ".plugin-cache.yaml"]
# A developer's tree after `make unit`, a lint run, a pytest run from a subdirectory and an old build.
DEBRIS = [".hypothesis/examples/0a1b2c/3d4e5f", ".hypothesis/unicode_data/14.0.0/charmap.json.gz",
          ".pytest_cache/v/cache/nodeids", ".ansible/roles/x.yml", ".venv/bin/python", ".cache/x",
          "plugins/filter/.pytest_cache/README.md", "docs/.hypothesis/examples/x", "docs/_build/index.html",
          "plugins/filter/__pycache__/scrape_configs.cpython-311.pyc", "roles/prometheus/files/x.pyc",
          "lab.log", "arq-monitoring-0.0.1.tar.gz", "changelogs/.plugin-cache.yaml", "tests/output/bot/x.json"]


def build(source, work, env):
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(work), str(source)],
                   check=True, capture_output=True, cwd=work, env=env)
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    return work / f"arq-monitoring-{version}.tar.gz"


def dirty_copy(destination):
    """The checkout's own files (tracked, or new and not ignored) with a test run's debris planted."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = REPO / name, destination / name
        if not os.path.lexists(source):  # deleted, not yet committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    for name in DEBRIS:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        (destination / name).write_text("debris\n")
    return destination


@pytest.fixture(scope="module")
def galaxy_env(tmp_path_factory):
    work = tmp_path_factory.mktemp("galaxy")
    # An ops repo of its own: not this checkout's ansible.cfg and .collections link.
    (work / "ansible.cfg").write_text("[defaults]\n")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(work / "collections"), "ANSIBLE_CONFIG": str(work / "ansible.cfg")}
    return work, env


@pytest.fixture(scope="module")
def tarballs(galaxy_env, tmp_path_factory):
    """Built from this checkout as it is, and from a copy of it after a developer's test run."""
    work, env = galaxy_env
    dirty = build(dirty_copy(tmp_path_factory.mktemp("dirty")), tmp_path_factory.mktemp("dirty-build"), env)
    return {"checkout": build(REPO, work, env), "dirty tree": dirty}


@pytest.fixture(scope="module")
def installed(galaxy_env, tarballs):
    """The checkout's tarball installed into an empty directory, as from Galaxy (offline)."""
    work, env = galaxy_env
    subprocess.run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(work / "collections"), str(tarballs["checkout"])],
                   check=True, capture_output=True, cwd=work, env=env)
    return tarballs["checkout"], env, work


def ansible_doc(installed, *args):
    _tarball, env, work = installed
    return subprocess.run(["ansible-doc", *args], check=True, capture_output=True, text=True, env=env, cwd=work).stdout


def dev_only_members(names):
    """Members outside the shipped top level, or with a path part that is a dev-only file."""
    return sorted(name for name in names
                  if name.split("/")[0] not in SHIPPED
                  or any(fnmatch.fnmatch(part, pattern) for part in name.split("/") for pattern in DEV_ONLY)
                  or name.split("/")[:2] == ["inventories", "lab"])


@pytest.mark.parametrize("tree", ["checkout", "dirty tree"])
def test_tarball_ships_the_collection_and_nothing_of_development(tarballs, tree):
    names = tarfile.open(tarballs[tree]).getnames()
    leaked = dev_only_members(names)
    assert not leaked, f"dev-only files in the tarball (add them to build_ignore in galaxy.yml): {leaked}"
    wanted = ["roles/node_exporter/tasks/main.yml", "playbooks/site.yml", "plugins/filter/scrape_configs.py",
              "inventories/prod/hosts.yml", "README.md", "CHANGELOG.md", "LICENSE", "changelogs/changelog.yaml",
              "changelogs/config.yaml", "meta/runtime.yml"]
    wanted += [str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")]
    wanted += [f"roles/{role}/README.md" for role in ROLES]
    missing = [name for name in wanted if name not in names]
    assert not missing, f"left out of the tarball: {missing}"


def test_the_tarball_check_sees_debris():
    """dev_only_members is what the test above relies on: each planted file counts as dev-only."""
    assert dev_only_members(DEBRIS) == sorted(DEBRIS)
    checkout_only = [".ansible-lint-ignore", "Makefile", "ansible.cfg", "inventories/lab/hosts.yml", "roles/x/tests/test.yml"]
    assert dev_only_members(checkout_only) == sorted(checkout_only)
    assert dev_only_members(["roles/grafana/README.md", "docs/security.md", "inventories/prod/hosts.yml"]) == []


def test_every_role_documented_from_the_install(installed):
    listing = ansible_doc(installed, "-t", "role", "-l", "arq.monitoring")
    for role in ROLES:
        assert f"arq.monitoring.{role}" in listing
        assert "Options" in ansible_doc(installed, "-t", "role", f"arq.monitoring.{role}")


@pytest.mark.parametrize("kind", ["filter", "lookup", "module"])
def test_plugins_documented_from_the_install(installed, kind):
    for name in (p.stem for p in (REPO / "plugins" / f"{kind}s").glob("*.py") if not p.stem.startswith("_")):
        assert "EXAMPLES" in ansible_doc(installed, "-t", kind, f"arq.monitoring.{name}")


def test_the_catalog_lookup_runs_from_the_install(installed):
    """The lookup imports the catalog from plugins/plugin_utils, which must ship with it."""
    _tarball, env, work = installed
    run = subprocess.run(["ansible", "localhost", "-m", "ansible.builtin.debug",
                          "-a", "msg={{ lookup('arq.monitoring.services', 'prometheus').port }}"],
                         capture_output=True, text=True, env=env, cwd=work, check=False)
    assert run.returncode == 0 and '"msg": 9090' in run.stdout, run.stdout + run.stderr


def test_site_playbook_resolves_by_fqcn(installed):
    _tarball, env, work = installed
    inventory = work / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    run = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(inventory), "arq.monitoring.site"],
                         capture_output=True, text=True, env=env, cwd=work, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
