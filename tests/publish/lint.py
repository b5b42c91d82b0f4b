"""The Ansible ecosystem's own checks of the collection, offline, as `make lint` runs them.

    python tests/publish/lint.py importer sanity docs changelog

importer   the tarball `ansible-galaxy collection build` makes, through Galaxy's importer
           (galaxy-importer): no error, and no warning but the known ones below
sanity     ansible-test sanity on the checkout as ansible_collections/arq/monitoring (the
           .collections link), with tests/sanity/ignore-2.19.txt
docs       antsibull-docs lint-collection-docs --plugin-docs: no error but the known ones below
changelog  antsibull-changelog lint (the fragments and changelogs/changelog.yaml)

Galaxy's tools come from the venv of tests/publish/requirements.txt (`make deps`, .venv/publish);
ansible-test from the project's venv. Galaxy's importer and antsibull-docs see the collections
galaxy.yml declares as dependencies (the `ansible` package's copies in the project's venv), as
an ops repo that installed the collection has them; a module of an undeclared collection stays
unresolved and fails the importer's check. Each check prints how long it took.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHECKOUT = REPO / ".collections" / "ansible_collections" / "arq" / "monitoring"
PUBLISH = Path(os.environ.get("ARQ_PUBLISH_VENV", REPO / ".venv" / "publish"))
# The `ansible` package's collections, in the venv running this script (the project's).
VENV_COLLECTIONS = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"

# Warnings of Galaxy's importer left on purpose, by pattern, with the reason.
KNOWN_IMPORTER_WARNINGS = {
    r"^roles/_service:1: role-name: Role name _service does not match":
        "the leading underscore marks the service core internal (roles/_service/README.md); the name is "
        "its FQCN arq.monitoring._service in every service role's tasks",
}
# antsibull-docs errors left on purpose, by file, with the reason.
KNOWN_DOCS_ERRORS: dict[str, str] = {}


def clean_env(**extra):
    """The environment without the checkout's ansible.cfg (a Galaxy user has none of it)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "PYTHONPATH")}
    env["PATH"] = f"{PUBLISH / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def dependencies():
    """The collections galaxy.yml declares, {"namespace.name": version range}."""
    return yaml.safe_load((REPO / "galaxy.yml").read_text()).get("dependencies") or {}


def dependency_root(work, names):
    """A collection root (work/ansible_collections/...) linking the venv's copies of `names`."""
    for name in names:
        namespace, collection = name.split(".")
        source = VENV_COLLECTIONS / namespace / collection
        if not source.is_dir():
            sys.exit(f"{name} (a dependency in galaxy.yml) is not in the `ansible` package of {VENV_COLLECTIONS.parent}")
        target = work / "ansible_collections" / namespace / collection
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source)
    return work


def known(lines, patterns, what):
    """Lines not matched by a known pattern; each known pattern must still match (no stale entry)."""
    unknown = [line for line in lines if not any(re.search(p, line) for p in patterns)]
    stale = [p for p in patterns if not any(re.search(p, line) for line in lines)]
    for pattern in stale:
        print(f"{what}: known entry no longer seen, remove it from tests/publish/lint.py: {pattern}")
    for line in lines:
        reason = next((r for p, r in patterns.items() if re.search(p, line)), None)
        if reason:
            print(f"{what}: known, left on purpose ({reason}): {line}")
    return unknown, stale


def check_importer():
    with tempfile.TemporaryDirectory(prefix="arq-importer-") as tmp:
        work = Path(tmp)
        subprocess.run([str(PUBLISH / "bin" / "ansible-galaxy"), "collection", "build", "--output-path", str(work), str(REPO)],
                       check=True, env=clean_env(), stdout=subprocess.DEVNULL)
        tarball = next(work.glob("arq-monitoring-*.tar.gz"))
        deps = dependency_root(work / "deps", dependencies())
        run = subprocess.run([str(PUBLISH / "bin" / "python"), "-m", "galaxy_importer.main", str(tarball)],
                             cwd=work, capture_output=True, text=True, check=False,
                             env=clean_env(GALAXY_IMPORTER_CONFIG=str(REPO / "tests" / "publish" / "galaxy-importer.cfg"),
                                           PYTHONPATH=str(deps)))
    output = run.stdout + run.stderr
    print(output, end="")
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    warnings = [line[len("WARNING: "):] for line in output.splitlines() if line.startswith("WARNING: ")]
    unknown, stale = known(warnings, KNOWN_IMPORTER_WARNINGS, "galaxy-importer")
    for line in unknown:
        print(f"galaxy-importer: warning to fix: {line}")
    return run.returncode == 0 and not errors and not unknown and not stale and "completed successfully" in output


def check_sanity():
    python = "%d.%d" % sys.version_info[:2]
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-test"), "sanity", "--local", "--python", python, "--color", "no",
                          # No PowerShell and no .sh file in the collection: those tests have nothing to check.
                          "--skip-test", "pslint", "--skip-test", "shellcheck"],
                         cwd=CHECKOUT, check=False,
                         env=clean_env(ANSIBLE_TEST_CONTENT_ROOT=str(CHECKOUT), PATH=os.environ.get("PATH", "")))
    return run.returncode == 0


def check_docs():
    with tempfile.TemporaryDirectory(prefix="arq-docs-") as tmp:
        deps = dependency_root(Path(tmp), dependencies())
        run = subprocess.run([str(PUBLISH / "bin" / "antsibull-docs"), "lint-collection-docs", "--plugin-docs",
                              "--message-format", "json", str(CHECKOUT)],
                             capture_output=True, text=True, check=False, cwd=CHECKOUT,
                             env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(deps)))
    try:
        messages = json.loads(run.stdout or "{}").get("messages", [])
    except json.JSONDecodeError:
        print(run.stdout + run.stderr)
        return False
    files = sorted({m["path"] for m in messages})
    for message in messages:
        message["path"] = os.path.relpath(message["path"], CHECKOUT) if os.path.isabs(message["path"]) else message["path"]
        print(f"antsibull-docs: {message['path']}: {message['message']}")
    unknown, stale = known(files, {re.escape(path) + "$": reason for path, reason in KNOWN_DOCS_ERRORS.items()}, "antsibull-docs")
    for path in unknown:
        print(f"antsibull-docs: errors to fix in {path}")
    if run.returncode not in (0, 3) or (run.returncode == 3 and not messages):
        print(run.stdout + run.stderr)
        return False
    return not unknown and not stale


def check_changelog():
    changelog = str(PUBLISH / "bin" / "antsibull-changelog")
    if subprocess.run([changelog, "lint"], cwd=REPO, env=clean_env(), check=False).returncode != 0:
        return False
    with tempfile.TemporaryDirectory(prefix="arq-changelog-") as tmp:
        generated = Path(tmp) / "CHANGELOG.md"
        subprocess.run([changelog, "generate", "--output", str(generated), "--output-format", "md"],
                       cwd=REPO, env=clean_env(), check=True)
        if generated.read_text() != (REPO / "CHANGELOG.md").read_text():
            print("CHANGELOG.md is not what changelogs/changelog.yaml gives: run antsibull-changelog generate "
                  "(it is generated; changes go into changelogs/fragments/)")
            return False
    return True


CHECKS = {"importer": check_importer, "sanity": check_sanity, "docs": check_docs, "changelog": check_changelog}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("checks", nargs="+", choices=list(CHECKS))
    failed = []
    for name in parser.parse_args().checks:
        start = time.monotonic()
        print(f"==> {name}", flush=True)
        passed = CHECKS[name]()
        print(f"==> {name}: {'passed' if passed else 'FAILED'} in {time.monotonic() - start:.0f} s", flush=True)
        if not passed:
            failed.append(name)
    return f"failed: {', '.join(failed)}" if failed else 0


if __name__ == "__main__":
    sys.exit(main())
