"""arq.monitoring.file_set, run as Ansible runs a module (its JSON arguments), on a temp dir."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "file_set.py"


def run(tmp_path, check=False, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True)
    return json.loads(proc.stdout)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "etc"
    return root, {
        "directories": [{"path": str(root), "mode": "0750"}, {"path": str(root / "rules"), "mode": "0750"},
                        {"path": str(tmp_path / "var/lib/x/textfile"), "mode": "0700"}],
        "files": [{"directory": str(root / "rules"), "content": {"a.yml": "a: 1\n", "b.yml": "b: 2\n"},
                   "mode": "0640", "exclusive": True}],
    }


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_then_reports_nothing_to_do(tmp_path, tree):
    root, args = tree
    first = run(tmp_path, **args)
    assert first["changed"] and sorted(first["changed_paths"]) == sorted(
        [str(root), str(root / "rules"), str(tmp_path / "var/lib/x/textfile"), str(root / "rules/a.yml"),
         str(root / "rules/b.yml")])
    assert (root / "rules/a.yml").read_text() == "a: 1\n"
    assert mode(root) == 0o750 and mode(root / "rules/b.yml") == 0o640
    assert mode(tmp_path / "var/lib/x/textfile") == 0o700 and mode(tmp_path / "var/lib/x") == 0o755
    assert run(tmp_path, **args)["changed"] is False


def test_check_mode_reports_without_changing(tmp_path, tree):
    root, args = tree
    assert run(tmp_path, check=True, **args)["changed"] is True
    assert not root.exists()
    run(tmp_path, **args)
    (root / "rules/a.yml").write_text("drifted\n")
    (root / "rules/b.yml").chmod(0o666)
    result = run(tmp_path, check=True, **args)
    assert result["changed_paths"] == [str(root / "rules/a.yml"), str(root / "rules/b.yml")]
    assert (root / "rules/a.yml").read_text() == "drifted\n" and mode(root / "rules/b.yml") == 0o666


def test_fixes_drift_and_removes_unmanaged_files_of_exclusive_directories(tmp_path, tree):
    root, args = tree
    run(tmp_path, **args)
    (root / "rules/a.yml").write_text("drifted\n")
    (root / "rules/old.yml").write_text("old\n")
    (root / "rules/sub").mkdir()
    (root / "kept.yml").write_text("not exclusive\n")
    result = run(tmp_path, **args)
    assert result["removed"] == [str(root / "rules/old.yml")]
    assert (root / "rules/a.yml").read_text() == "a: 1\n"
    assert (root / "rules/sub").is_dir() and (root / "kept.yml").exists()


def test_a_file_failing_validation_never_replaces_the_live_one(tmp_path, tree):
    root, args = tree
    run(tmp_path, **args)
    args["files"][0]["content"]["a.yml"] = "broken\n"
    args["files"][0]["validate"] = "grep -q ': ' %s"
    result = run(tmp_path, **args)
    assert result.get("failed") and "a.yml failed to validate" in result["msg"] and "rc 1" in result["msg"]
    assert (root / "rules/a.yml").read_text() == "a: 1\n"
    assert sorted(p.name for p in (root / "rules").iterdir()) == ["a.yml", "b.yml"]


def test_file_names_are_names_not_paths(tmp_path, tree):
    root, args = tree
    args["files"][0]["content"] = {"../escape.yml": "x\n"}
    result = run(tmp_path, **args)
    assert result.get("failed") and "../escape.yml" in result["msg"]
    assert not (root / "escape.yml").exists()


def test_a_secret_diff_names_the_file_and_never_shows_the_content(tmp_path):
    secrets = tmp_path / "secrets"
    args = {"directories": [{"path": str(secrets), "mode": "0750"}], "_ansible_diff": True,
            "secrets": [{"directory": str(secrets), "content": {"key": "s3cret-1\n"}, "mode": "0640", "exclusive": True}]}
    diffs = run(tmp_path, **args)["diff"]
    assert [(d["before_header"], d["before"] == "", d["after"] != "") for d in diffs] == [(str(secrets / "key"), True, True)]
    args["secrets"][0]["content"] = {"key": "s3cret-2\n"}
    (secrets / "old").write_text("s3cret-0\n")
    result = run(tmp_path, check=True, **args)
    # Before and after differ, so Ansible's callback prints each header; no secret in the result.
    assert [(d["after_header"], d["before"] != d["after"]) for d in result["diff"]] == [
        (str(secrets / "key") + " (secret, not shown)", True), (str(secrets / "old") + " (removed)", True)]
    assert "s3cret" not in json.dumps(result)
