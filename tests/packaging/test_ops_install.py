"""An ops repo's install: the tarball and the collections galaxy.yml declares, in a venv of ansible-core alone.

No Galaxy here, so each declared dependency is a tarball built from the `ansible` package's copy
in the project's venv (its own MANIFEST.json and FILES.json, as Galaxy serves it). They are
installed with `ansible-galaxy collection install` into an empty directory, from a fresh venv that
holds ansible-core and its requirements only (no `ansible` package, no checkout, no ansible.cfg of
ours), which must then resolve every module, action, filter, test and lookup the roles and
playbooks name. A collection used but not declared in galaxy.yml is not installed, so its plugins
do not resolve and the test fails; one declared but not used fails it too.
"""
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_COLLECTIONS = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"
FQCN = r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*"
# Where a Jinja expression names a plugin by its FQCN.
JINJA_NAMES = {
    "filter": [rf"\|[ \t]*({FQCN})", rf"\bmap\([ \t]*['\"]({FQCN})['\"]"],
    "test": [rf"\bis[ \t]+(?:not[ \t]+)?({FQCN})", rf"\b(?:select|reject|selectattr|rejectattr)\([^)\n]*['\"]({FQCN})['\"]"],
    "lookup": [rf"\b(?:lookup|query|q)\([ \t]*['\"]({FQCN})['\"]"],
}
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def artifact(source, work):
    """A collection tarball made by ansible-galaxy from the installed copy `source` (the `ansible`
    package leaves out some files its FILES.json lists): its MANIFEST.json's data as galaxy.yml."""
    info = json.loads((source / "MANIFEST.json").read_text())["collection_info"]
    tree = work / "src" / info["namespace"] / info["name"]
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "MANIFEST.json", "FILES.json"))
    galaxy = {key: value for key, value in info.items() if value not in (None, [], {}, "")}
    if galaxy.get("license"):
        galaxy.pop("license_file", None)
    (tree / "galaxy.yml").write_text(yaml.safe_dump(galaxy))
    built = run(["ansible-galaxy", "collection", "build", "--output-path", str(work), str(tree)])
    assert built.returncode == 0, built.stdout + built.stderr
    return work / f"{info['namespace']}-{info['name']}-{info['version']}.tar.gz"


def used_plugins(root):
    """{"module": {fqcn}, "filter": ..., "test": ..., "lookup": ...} named by the roles and playbooks under `root`."""
    used = {"module": set(), **{kind: set() for kind in JINJA_NAMES}}

    def tasks(items):
        for task in items or []:
            if not isinstance(task, dict):
                continue
            used["module"].update(key for key in task if re.fullmatch(FQCN, key))
            for key in TASK_LISTS:
                if isinstance(task.get(key), list):
                    tasks(task[key])

    for path in sorted(root.glob("roles/*/tasks/*.yml")) + sorted(root.glob("roles/*/handlers/*.yml")):
        tasks(yaml.safe_load(path.read_text()))
    for path in sorted(root.glob("playbooks/*.yml")):
        tasks(yaml.safe_load(path.read_text()))
    texts = [p.read_text() for top in ("roles", "playbooks") for p in sorted((root / top).rglob("*"))
             if p.is_file() and p.suffix in (".yml", ".j2")]
    for kind, patterns in JINJA_NAMES.items():
        for pattern in patterns:
            used[kind].update(m.group(1) for text in texts for m in re.finditer(pattern, text))
    return used


def unresolved(env, cwd, used):
    """The plugins of `used` that ansible-doc cannot find with `env`, sorted."""
    missing = []
    for kind, names in used.items():
        if names:
            answer = run(["ansible-doc", "-t", kind, "--json", *sorted(names)], env=env, cwd=cwd)
            if answer.returncode == 0:  # leaving out what it cannot find
                missing += [f"{kind} {name}" for name in sorted(names - set(json.loads(answer.stdout)))]
            else:  # a filter or test it cannot find fails the whole call: one at a time
                missing += [f"{kind} {name}" for name in sorted(names)
                            if run(["ansible-doc", "-t", kind, "--json", name], env=env, cwd=cwd).returncode != 0]
    return missing


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    """An ops repo with the collection and its declared dependencies installed, and its environment."""
    work = tmp_path_factory.mktemp("ops")
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    build = run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "build", "--output-path", str(work), str(REPO)],
                env={k: v for k, v in os.environ.items() if k != "ANSIBLE_CONFIG"})
    assert build.returncode == 0, build.stdout + build.stderr
    tarball = work / f"arq-monitoring-{version}.tar.gz"
    with tarfile.open(tarball) as tar:
        declared = json.load(io.TextIOWrapper(tar.extractfile("MANIFEST.json")))["collection_info"]["dependencies"]
    sources = {name: VENV_COLLECTIONS.joinpath(*name.split(".")) for name in declared}
    absent = [name for name, path in sources.items() if not (path / "MANIFEST.json").is_file()]
    assert not absent, f"declared in galaxy.yml, not in the `ansible` package of the venv: {absent}"
    deps = [artifact(path, work) for path in sources.values()]

    # A venv of ansible-core alone, at the version and with the requirements pinned in requirements.txt.
    venv = work / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    pinned = run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                  "--disable-pip-version-check", "-c", str(REPO / "requirements.txt"), "ansible-core"])
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    purelib = run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    assert not (Path(purelib) / "ansible_collections").exists(), "the fresh venv has collections of its own"

    (work / "ansible.cfg").write_text("[defaults]\n")
    (work / "hosts.yml").write_text("all:\n  hosts:\n    h1: {ansible_connection: local}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", ANSIBLE_CONFIG=str(work / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(work / "collections"), ANSIBLE_HOME=str(work / ".ansible"))
    installed = run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(work / "collections"), str(tarball),
                     *map(str, deps)], env=env, cwd=work)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return {"work": work, "env": env, "tarball": tarball, "declared": declared,
            "used": used_plugins(work / "collections" / "ansible_collections" / "arq" / "monitoring")}


def test_galaxy_yml_declares_exactly_the_collections_the_roles_use(ops):
    used = {name.rsplit(".", 1)[0] for names in ops["used"].values() for name in names}
    assert ops["used"]["module"] and ops["used"]["filter"], ops["used"]
    assert sorted(used - {"ansible.builtin", "arq.monitoring"}) == sorted(ops["declared"])


def test_every_plugin_the_roles_use_resolves_in_the_ops_repo(ops):
    assert unresolved(ops["env"], ops["work"], ops["used"]) == []


@pytest.mark.parametrize("playbook", sorted(p.stem for p in (REPO / "playbooks").glob("*.yml")))
def test_playbooks_pass_syntax_check_in_the_ops_repo(ops, playbook):
    check = run(["ansible-playbook", "--syntax-check", "-i", str(ops["work"] / "hosts.yml"), f"arq.monitoring.{playbook}"],
                env=ops["env"], cwd=ops["work"])
    assert check.returncode == 0, check.stdout + check.stderr


def test_without_its_dependencies_the_collection_does_not_resolve(ops, tmp_path):
    """What the test above relies on: with none of the declared collections, exactly their plugins fail."""
    env = dict(ops["env"], ANSIBLE_COLLECTIONS_PATH=str(tmp_path))
    installed = run(["ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(tmp_path), str(ops["tarball"])],
                    env=env, cwd=ops["work"])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    foreign = sorted(f"{kind} {name}" for kind, names in ops["used"].items() for name in names
                     if name.rsplit(".", 1)[0] in ops["declared"])
    assert foreign and sorted(unresolved(env, ops["work"], ops["used"])) == foreign
