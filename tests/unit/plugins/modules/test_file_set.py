"""arq.monitoring.file_set, run as Ansible runs a module (its JSON arguments), on a temp dir."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "file_set.py"


def raw(tmp_path, check=False, diff=False, **args):
    """The module's stdout."""
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"_ansible_diff": diff, **args,
                                                             "_ansible_check_mode": check}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, check=False)
    assert proc.stdout, proc.stderr
    return proc.stdout


def run(tmp_path, check=False, diff=False, **args):
    return json.loads(raw(tmp_path, check, diff, **args))


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


# secrets, keep, notify, created, service


SECRET, OLD_SECRET, STRAY_SECRET = "s3cret-Pa55-9f2e41", "old-s3cret-77c1d0", "stray-s3cret-3b8a52"


@pytest.fixture
def service(tmp_path):
    """A service's directory holding a secret, its configuration and a generated key, and a rules directory."""
    etc, rules = tmp_path / "etc/svc", tmp_path / "etc/svc/rules"
    return etc, rules, {
        "service": "svc",
        "directories": [{"path": str(etc), "mode": "0750"}, {"path": str(rules), "mode": "0750"}],
        "secrets": [{"directory": str(etc), "content": {"token": SECRET}, "mode": "0600"}],
        "files": [{"directory": str(etc), "content": {"svc.yml": "token_file: token\n"}, "mode": "0640",
                   "exclusive": True, "notify": "restart"},
                  {"directory": str(etc), "content": {"key": "generated-1\n"}, "mode": "0600", "keep": True,
                   "notify": "restart"},
                  {"directory": str(rules), "content": {"a.yml": "a: 1\n"}, "mode": "0640", "exclusive": True,
                   "notify": "reload"}],
    }


def snapshot(root):
    return {str(p): (p.read_bytes() if p.is_file() else None, mode(p)) for p in sorted(root.rglob("*"))}


def test_secrets_are_written_first_and_never_shown(tmp_path, service):
    etc, _rules, args = service
    # The configuration's check needs the secret in place: secrets are written before files.
    args["files"][0]["validate"] = f"test -f {etc / 'token'} -a -f %s"
    stdout = raw(tmp_path, diff=True, **args)
    result = json.loads(stdout)
    assert result["changed_paths"].index(str(etc / "token")) < result["changed_paths"].index(str(etc / "svc.yml"))
    assert (etc / "token").read_text() == SECRET and mode(etc / "token") == 0o600
    # Not even masked by no_log: the module itself never puts the content in its answer.
    assert SECRET not in stdout and "********" not in stdout
    assert {"before_header": str(etc / "token"), "after_header": f"{etc / 'token'} (secret, not shown)",
            "before": "", "after": "(new secret content, not shown)\n"} in result["diff"]
    assert {"before_header": str(etc / "svc.yml"), "after_header": str(etc / "svc.yml"),
            "before": "", "after": "token_file: token\n"} in result["diff"]


def test_a_changed_or_removed_secret_is_not_shown_either(tmp_path, service):
    """The old content is not a module argument, so no_log could not hide it: the module must not show it."""
    etc, _rules, args = service
    args["secrets"][0]["exclusive"] = True
    run(tmp_path, **args)
    (etc / "token").write_text(OLD_SECRET)
    (etc / "stray.key").write_text(STRAY_SECRET)
    stdout = raw(tmp_path, diff=True, **args)
    result = json.loads(stdout)
    assert result["changed_paths"] == [str(etc / "token"), str(etc / "stray.key")]
    assert result["removed"] == [str(etc / "stray.key")] and not (etc / "stray.key").exists()
    assert (etc / "token").read_text() == SECRET
    for secret in (SECRET, OLD_SECRET, STRAY_SECRET):
        assert secret not in stdout
    assert [(d["after_header"], d["before"], d["after"]) for d in result["diff"]] == [
        (f"{etc / 'token'} (secret, not shown)", "(secret content, not shown)\n", "(new secret content, not shown)\n"),
        (f"{etc / 'stray.key'} (removed)", "(secret content, not shown)\n", "")]


def test_keep_writes_a_missing_file_and_leaves_an_existing_one(tmp_path, service):
    etc, _rules, args = service
    first = run(tmp_path, **args)
    assert (etc / "key").read_text() == "generated-1\n" and str(etc / "key") in first["created"]
    (etc / "key").write_text("generated-by-the-service\n")
    args["files"][1]["content"]["key"] = "generated-2\n"
    again = run(tmp_path, diff=True, **args)
    assert again["changed"] is False and "diff" not in again
    assert (etc / "key").read_text() == "generated-by-the-service\n"
    (etc / "key").unlink()
    rewritten = run(tmp_path, **args)
    assert rewritten["changed_paths"] == [str(etc / "key")] and rewritten["created"] == [str(etc / "key")]
    assert (etc / "key").read_text() == "generated-2\n" and mode(etc / "key") == 0o600


def test_notify_names_the_groups_that_changed_sorted_and_once(tmp_path, service):
    etc, rules, args = service
    args["secrets"][0]["notify"] = "restart"
    assert run(tmp_path, **args)["notify"] == ["reload", "restart"]
    assert run(tmp_path, **args)["notify"] == []
    (rules / "a.yml").write_text("drifted\n")
    assert run(tmp_path, **args)["notify"] == ["reload"]
    (etc / "token").chmod(0o644)  # an attribute alone is a change too
    assert run(tmp_path, **args)["notify"] == ["restart"]
    args["files"][2]["notify"] = ""
    (rules / "a.yml").write_text("drifted\n")
    result = run(tmp_path, **args)
    assert result["changed"] is True and result["notify"] == []


def test_notify_words_are_sorted_and_unique_whatever_the_order_of_the_groups(tmp_path):
    words = ["zeta", "alpha", "restart", "mid", "beta", "alpha", "omega", "reload", "gamma", "delta", "zeta"]
    args = {"directories": [{"path": str(tmp_path / "d")}],
            "files": [{"directory": str(tmp_path / "d"), "content": {f"{i}.yml": "x\n"}, "notify": word}
                      for i, word in enumerate(words)]}
    assert run(tmp_path, **args)["notify"] == sorted(set(words))


def test_a_removal_counts_for_the_exclusive_group_of_its_directory(tmp_path, service):
    etc, rules, args = service
    args["files"][0]["notify"], args["files"][1]["notify"] = "reload", "restart"
    run(tmp_path, **args)
    (etc / "stray.yml").write_text("x\n")
    result = run(tmp_path, **args)
    assert result["removed"] == [str(etc / "stray.yml")] and result["notify"] == ["reload"]


@pytest.mark.parametrize("exclusive", ["secrets", "files"])
def test_exclusive_keeps_every_group_of_the_directory_in_files_and_secrets(tmp_path, service, exclusive):
    etc, rules, args = service
    args["files"][0]["exclusive"] = exclusive == "files"
    args["secrets"][0]["exclusive"] = exclusive == "secrets"
    run(tmp_path, **args)
    (etc / "stray.yml").write_text("x\n")
    result = run(tmp_path, **args)
    assert result["removed"] == [str(etc / "stray.yml")] and result["changed_paths"] == [str(etc / "stray.yml")]
    assert sorted(p.name for p in etc.iterdir()) == ["key", "rules", "svc.yml", "token"]
    assert run(tmp_path, **args)["changed"] is False


def test_created_lists_the_files_that_did_not_exist(tmp_path, service):
    etc, rules, args = service
    first = run(tmp_path, **args)
    assert sorted(first["created"]) == sorted(str(p) for p in (etc / "token", etc / "svc.yml", etc / "key",
                                                               rules / "a.yml"))
    (etc / "svc.yml").write_text("drifted\n")
    (rules / "a.yml").unlink()
    result = run(tmp_path, **args)
    assert result["changed_paths"] == [str(etc / "svc.yml"), str(rules / "a.yml")]
    assert result["created"] == [str(rules / "a.yml")]
    assert run(tmp_path, **args)["created"] == []


def test_service_is_echoed(tmp_path, service):
    _etc, _rules, args = service
    assert run(tmp_path, **args)["service"] == "svc"
    assert run(tmp_path, **args)["service"] == "svc"
    del args["service"]
    assert run(tmp_path, **args)["service"] == ""


def test_check_mode_changes_nothing_and_reports_what_a_run_does(tmp_path, service):
    etc, rules, args = service
    run(tmp_path, **args)
    (etc / "token").write_text(OLD_SECRET)
    (etc / "key").unlink()
    (etc / "stray.yml").write_text("x\n")
    (rules / "a.yml").chmod(0o666)
    before = snapshot(tmp_path / "etc")
    checked = run(tmp_path, check=True, diff=True, **args)
    assert snapshot(tmp_path / "etc") == before
    done = run(tmp_path, diff=True, **args)
    assert checked == done
    assert done["changed_paths"] == [str(etc / "token"), str(etc / "stray.yml"), str(etc / "key"),
                                     str(rules / "a.yml")]
    assert done["created"] == [str(etc / "key")] and done["removed"] == [str(etc / "stray.yml")]
    assert done["notify"] == ["reload", "restart"] and done["service"] == "svc"
    assert run(tmp_path, check=True, **args)["changed"] is False


def test_the_invocation_log_names_the_secrets_without_their_content(tmp_path, service, monkeypatch, capsys):
    """The host's journal gets each module's arguments: a secret with newlines (a key, an
    environment file) must not reach it, though no_log masking misses it in a list's text."""
    from ansible.module_utils import basic
    from ansible_collections.arq.monitoring.plugins.modules import file_set

    etc, _rules, args = service
    args["secrets"].append({"directory": str(etc), "content": {"svc.env": "#\nPASS=\"%s\"\n" % OLD_SECRET}, "mode": "0640"})
    logged = []
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode())
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    monkeypatch.setattr(basic.AnsibleModule, "log", lambda self, msg, log_args=None: logged.append(msg))
    with pytest.raises(SystemExit):
        file_set.main()
    result = json.loads(capsys.readouterr().out)
    assert result["changed"] and (etc / "svc.env").read_text() == "#\nPASS=\"%s\"\n" % OLD_SECRET
    assert len(logged) == 1 and "'token': 'NOT_LOGGING_PARAMETER'" in logged[0] and "svc.env" in logged[0]
    assert SECRET not in logged[0] and OLD_SECRET not in logged[0]
    assert "token_file: token" in logged[0]  # the other files are logged as they were
