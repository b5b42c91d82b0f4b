"""arq.monitoring.converged, run as Ansible runs a module (its JSON arguments), on a temp dir.

The records live in tmp_path/state, the recorded trees in tmp_path/tree; systemctl is a stub
first on PATH, and the health check talks to a small HTTP server on 127.0.0.1 only.
"""

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "converged.py"
MISSING_USER = "arq-no-such-user-7f3c"
MISSING_GROUP = "arq-no-such-group-7f3c"
PASSWORD = "s3cret-Pa55word-42"


def run(tmp_path, check=False, env=None, **args):
    """The module's result and its raw stdout."""
    args = {"name": "svc", "digest": "d1", "state_dir": str(tmp_path / "state"), **args}
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout), proc.stdout


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def tree(tmp_path):
    """A service's files: a config tree and a binary (paths), a data directory (directories)."""
    root = tmp_path / "tree"
    (root / "etc/svc/rules").mkdir(parents=True)
    (root / "etc/svc/svc.yml").write_text("listen: 9100\n")
    (root / "etc/svc/rules/a.yml").write_text("a: 1\n")
    (root / "bin").mkdir()
    (root / "bin/svc").write_text("#!/bin/sh\n")
    (root / "bin/svc").chmod(0o755)
    (root / "data").mkdir(mode=0o750)
    (root / "data/chunk").write_text("data\n")
    args = {"paths": [str(root / "etc/svc"), str(root / "bin/svc")], "directories": [str(root / "data")]}
    return root, args


def test_no_record_is_not_converged(tmp_path):
    result, _ = run(tmp_path)
    assert result["converged"] is False and result["changed"] is False
    assert result["differs"] == ["no record of a complete run"]
    assert result["digest"] == "d1"
    assert not (tmp_path / "state").exists()


def test_record_then_compare_is_converged_and_recording_again_changes_nothing(tmp_path, tree):
    _, args = tree
    recorded, _ = run(tmp_path, record=True, **args)
    assert recorded["changed"] is True and recorded["converged"] is True and recorded["differs"] == []
    compared, _ = run(tmp_path, **args)
    assert compared["converged"] is True and compared["differs"] == [] and compared["changed"] is False
    assert run(tmp_path, record=True, **args)[0]["changed"] is False


def test_the_record_holds_every_file_of_the_trees_and_the_directories_alone(tmp_path, tree):
    root, args = tree
    run(tmp_path, record=True, **args)
    record = json.loads((tmp_path / "state/svc.json").read_text())
    assert record["digest"] == "d1"
    assert sorted(record["state"]) == sorted(str(root / p) for p in (
        "etc/svc", "etc/svc/rules", "etc/svc/rules/a.yml", "etc/svc/svc.yml", "bin/svc", "data"))
    assert record["state"][str(root / "data")][0] == "dir"
    assert record["state"][str(root / "bin/svc")][:2] == ["file", 0o755]


def test_a_changed_digest_is_not_converged(tmp_path, tree):
    _, args = tree
    run(tmp_path, record=True, **args)
    result, _ = run(tmp_path, digest="d2")
    assert result["converged"] is False
    assert result["differs"] == ["the settings or the collection changed"]


def _edit_size(root):
    (root / "etc/svc/svc.yml").write_text("listen: 9101 # edited\n")
    return "etc/svc/svc.yml"


def _edit_same_size(root):
    path = root / "etc/svc/svc.yml"
    before = os.stat(path).st_mtime_ns
    path.write_text("listen: 9101\n")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))
    return "etc/svc/svc.yml"


def _chmod_file(root):
    (root / "bin/svc").chmod(0o777)
    return "bin/svc"


def _remove_file(root):
    (root / "etc/svc/rules/a.yml").unlink()
    return "etc/svc/rules/a.yml"


def _add_file(root):
    (root / "etc/svc/rules/b.yml").write_text("b: 2\n")
    return "etc/svc/rules/b.yml"


def _chmod_directories_entry(root):
    (root / "data").chmod(0o755)
    return "data"


def _replace_file_by_link(root):
    (root / "bin/svc").unlink()
    (root / "bin/svc").symlink_to("/bin/sh")
    return "bin/svc"


@pytest.mark.parametrize("drift", [_edit_size, _edit_same_size, _chmod_file, _remove_file, _add_file,
                                   _chmod_directories_entry, _replace_file_by_link])
def test_drift_on_a_recorded_tree_is_named(tmp_path, tree, drift):
    root, args = tree
    run(tmp_path, record=True, **args)
    path = drift(root)
    result, _ = run(tmp_path)
    assert result["converged"] is False
    assert result["differs"] == ["%s changed" % (root / path)]


def test_files_written_inside_a_directories_entry_do_not_differ(tmp_path, tree):
    root, args = tree
    run(tmp_path, record=True, **args)
    (root / "data/chunk").write_text("more data than before\n")
    (root / "data/new-chunk").write_text("new\n")
    (root / "data/sub").mkdir()
    result, _ = run(tmp_path)
    assert result["converged"] is True and result["differs"] == []


def test_many_changes_name_a_few_paths_and_count_the_rest(tmp_path, tree):
    root, args = tree
    run(tmp_path, record=True, **args)
    for n in range(8):
        (root / ("etc/svc/rules/new-%d.yml" % n)).write_text("x\n")
    result, _ = run(tmp_path)
    assert result["converged"] is False
    assert result["differs"][:5] == ["%s changed" % (root / ("etc/svc/rules/new-%d.yml" % n)) for n in range(5)]
    assert result["differs"][5:] == ["and 3 more"]


def test_missing_accounts_are_recorded_as_missing_and_compare_equal(tmp_path):
    args = {"users": ["root", MISSING_USER], "groups": ["root", MISSING_GROUP]}
    run(tmp_path, record=True, **args)
    state = json.loads((tmp_path / "state/svc.json").read_text())["state"]
    assert state["user " + MISSING_USER] is None and state["group " + MISSING_GROUP] is None
    assert state["user root"][:3] == [0, 0, "/root"] and state["group root"] == 0
    result, _ = run(tmp_path)
    assert result["converged"] is True and result["differs"] == []


def test_an_account_that_changed_differs(tmp_path):
    run(tmp_path, record=True, users=["root"], groups=["root"])
    record_path = tmp_path / "state/svc.json"
    record = json.loads(record_path.read_text())
    record["state"]["user root"][0] = 4242  # as if root had another UID when recorded
    record_path.write_text(json.dumps(record))
    assert run(tmp_path)[0]["differs"] == ["user root changed"]


def test_check_mode_record_reports_changed_and_writes_nothing(tmp_path, tree):
    _, args = tree
    result, _ = run(tmp_path, check=True, record=True, **args)
    assert result["changed"] is True
    assert not (tmp_path / "state").exists()
    run(tmp_path, record=True, **args)
    before = (tmp_path / "state/svc.json").read_text()
    assert run(tmp_path, check=True, record=True, **args)[0]["changed"] is False
    (tmp_path / "tree/etc/svc/svc.yml").write_text("edited in between\n")
    assert run(tmp_path, check=True, record=True, **args)[0]["changed"] is True
    assert (tmp_path / "state/svc.json").read_text() == before
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["svc.json"]


@pytest.mark.parametrize("text", ["{not json", "", "\xff\xfe", "[]", "null", '"a string"', '{"digest": "d1"}',
                                  '{"digest": "d1", "paths": [], "directories": [], "users": [], "groups": [],'
                                  ' "units": [], "fragments": {}, "state": []}'])
def test_an_unreadable_or_corrupt_record_warns_and_is_not_converged(tmp_path, text):
    (tmp_path / "state").mkdir()
    (tmp_path / "state/svc.json").write_bytes(text.encode("latin-1"))
    result, _ = run(tmp_path)
    assert not result.get("failed"), result
    assert result["converged"] is False and result["differs"]
    assert "is unreadable" in json.dumps(result.get("warnings")), result


def test_a_corrupt_record_is_replaced_by_the_next_record(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state/svc.json").write_text("{not json")
    assert run(tmp_path, record=True)[0]["changed"] is True
    assert run(tmp_path)[0]["converged"] is True


@pytest.mark.parametrize("name", ["../x", "a/b", "", "svc\n", "svc x"])
def test_a_name_that_is_not_a_plain_service_name_fails(tmp_path, name):
    result, _ = run(tmp_path, name=name, record=True)
    assert result.get("failed") and "plain service name" in result["msg"]
    assert not (tmp_path / "state").exists() and not (tmp_path / "x.json").exists()


def test_the_record_is_root_only(tmp_path):
    run(tmp_path, record=True, state_dir=str(tmp_path / "var/lib/arq"))
    assert mode(tmp_path / "var/lib/arq") == 0o700
    assert mode(tmp_path / "var/lib/arq/svc.json") == 0o600


# --- health ---------------------------------------------------------------------------------


@pytest.fixture
def http_server():
    """http://127.0.0.1:<port>/metrics answers 200 with a body to basic auth prom:PASSWORD, else 401."""
    token = base64.b64encode(("prom:" + PASSWORD).encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path in ("/moved", "/empty"):
                moved = self.path == "/moved"
                self.send_response(302 if moved else 204)
                if moved:
                    self.send_header("Location", "/metrics")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path != "/metrics":
                self.send_error(404)
            elif self.headers.get("Authorization") != "Basic " + token:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                body = b"# TYPE arq_up gauge\narq_up 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d/metrics" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def health_run(tmp_path, **health):
    run(tmp_path, record=True)
    result, stdout = run(tmp_path, health=health)
    assert PASSWORD not in stdout
    return result


def test_health_answering_with_the_right_credentials_is_converged(tmp_path, http_server):
    result = health_run(tmp_path, url=http_server, user="prom", password=PASSWORD, content=r"(?m)^arq_up 1$")
    assert result["converged"] is True and result["differs"] == []


def test_health_with_a_wrong_password_is_not_converged(tmp_path, http_server):
    result = health_run(tmp_path, url=http_server, user="prom", password=PASSWORD + "-wrong")
    assert result["converged"] is False
    assert len(result["differs"]) == 1 and result["differs"][0].startswith(http_server + " does not answer")
    assert "401" in result["differs"][0]


def test_health_without_credentials_is_not_converged(tmp_path, http_server):
    result = health_run(tmp_path, url=http_server)
    assert result["converged"] is False and http_server in result["differs"][0]


def test_health_with_a_body_not_matching_is_not_converged(tmp_path, http_server):
    result = health_run(tmp_path, url=http_server, user="prom", password=PASSWORD, content="^arq_up 0$")
    assert result["converged"] is False
    assert result["differs"] == ["%s answers without ^arq_up 0$" % http_server]


def test_health_with_nothing_listening_is_not_converged(tmp_path):
    with socket.socket() as sock:  # bound, not listening: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d/metrics" % sock.getsockname()[1]
        result = health_run(tmp_path, url=url, user="prom", password=PASSWORD)
    assert result["converged"] is False
    assert len(result["differs"]) == 1 and result["differs"][0].startswith(url + " does not answer")


def test_health_is_not_asked_when_something_else_differs(tmp_path, http_server):
    result, _ = run(tmp_path, health={"url": http_server})
    assert result["differs"] == ["no record of a complete run"]


# --- units ----------------------------------------------------------------------------------

STUB = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SYSTEMCTL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
with open(os.environ["FAKE_SYSTEMCTL_UNITS"]) as handle:
    units = json.load(handle)
blocks = []
for unit in args[args.index("--") + 1:]:
    props = {{"Id": unit, **units[unit]}}
    blocks.append("\\n".join("%s=%s" % item for item in props.items() if item[1] != ""))
print("\\n\\n".join(blocks))
"""


@pytest.fixture
def systemctl(tmp_path):
    """A fake systemctl first on PATH; set(unit=props) sets what `systemctl show` reports."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(STUB.format(python=sys.executable))
    (bin_dir / "systemctl").chmod(0o755)
    units_file, log = tmp_path / "units.json", tmp_path / "systemctl.log"
    env = {"PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", "")), "FAKE_SYSTEMCTL_UNITS": str(units_file),
           "FAKE_SYSTEMCTL_LOG": str(log)}

    class Systemctl:
        def __init__(self):
            self.env = env
            (tmp_path / "lib").mkdir()
            self.fragment = tmp_path / "lib/svc.service"
            self.fragment.write_text("[Service]\nExecStart=/bin/true\n")

        def set(self, **units):
            base = {"ActiveState": "active", "UnitFileState": "enabled", "NeedDaemonReload": "no",
                    "FragmentPath": str(self.fragment)}
            units_file.write_text(json.dumps({unit.replace("_", "-") + ".service": {**base, **props}
                                              for unit, props in units.items()}))

        def calls(self):
            return [json.loads(line) for line in log.read_text().splitlines()]

    return Systemctl()


UNITS = ["svc.service", "other.service"]


def test_active_and_enabled_units_are_converged(tmp_path, systemctl):
    systemctl.set(svc={}, other={"FragmentPath": ""})
    recorded, _ = run(tmp_path, env=systemctl.env, record=True, units=UNITS)
    assert recorded["changed"] is True
    record = json.loads((tmp_path / "state/svc.json").read_text())
    assert record["fragments"] == {"svc.service": str(systemctl.fragment), "other.service": None}
    assert str(systemctl.fragment) in record["paths"] and str(systemctl.fragment) in record["state"]
    result, _ = run(tmp_path, env=systemctl.env)
    assert result["converged"] is True and result["differs"] == []
    assert systemctl.calls()[-1] == [
        "show", "--property=Id,ActiveState,UnitFileState,NeedDaemonReload,FragmentPath", "--", *UNITS]


@pytest.mark.parametrize("props, differs", [
    ({"ActiveState": "inactive"}, "svc.service is inactive and enabled"),
    ({"ActiveState": "failed"}, "svc.service is failed and enabled"),
    ({"UnitFileState": "disabled"}, "svc.service is active and disabled"),
    ({"NeedDaemonReload": "yes"}, "svc.service needs a daemon-reload"),
    ({"FragmentPath": "/etc/systemd/system/svc.service"}, "svc.service is loaded from /etc/systemd/system/svc.service"),
])
def test_a_unit_not_as_recorded_differs(tmp_path, systemctl, props, differs):
    systemctl.set(svc={}, other={})
    run(tmp_path, env=systemctl.env, record=True, units=UNITS)
    systemctl.set(svc=props, other={})
    result, _ = run(tmp_path, env=systemctl.env)
    assert result["converged"] is False and result["differs"] == [differs]


def test_the_unit_file_is_recorded_as_a_managed_file(tmp_path, systemctl):
    systemctl.set(svc={})
    run(tmp_path, env=systemctl.env, record=True, units=["svc.service"])
    systemctl.fragment.write_text("[Service]\nExecStart=/bin/false # edited by hand\n")
    result, _ = run(tmp_path, env=systemctl.env)
    assert result["differs"] == ["%s changed" % systemctl.fragment]


def test_systemctl_failing_fails_the_module(tmp_path, systemctl):
    systemctl.set()  # the stub knows no unit: it fails
    result, _ = run(tmp_path, env=systemctl.env, record=True, units=["svc.service"])
    assert result.get("failed") and "systemctl show failed" in result["msg"]


@pytest.mark.parametrize("path, status", [("/moved", 302), ("/empty", 204)])
def test_health_answering_other_than_200_is_not_converged(tmp_path, http_server, path, status):
    # Not followed: a redirect is not the service answering (and would carry the credentials on).
    url = http_server.replace("/metrics", path)
    result = health_run(tmp_path, url=url, user="prom", password=PASSWORD)
    assert result["converged"] is False and url in result["differs"][0] and str(status) in result["differs"][0]


def test_compare_false_asks_for_a_full_run_and_still_returns_the_digest(tmp_path, tree):
    _, args = tree
    run(tmp_path, record=True, **args)
    result, _ = run(tmp_path, compare=False)
    assert result["converged"] is False and result["changed"] is False
    assert result["differs"] == ["not compared: a full run was asked for"] and result["digest"] == "d1"
