"""arq.monitoring.service_up, run as Ansible runs a module, against a fake systemctl and journalctl on
PATH (a state file holds the unit's enabled and active states) and a local HTTP server."""

import base64
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

MODULE = Path(__file__).parents[4] / "plugins" / "modules" / "service_up.py"

# The fake systemctl: is-enabled / is-active print the state file's value (exit 1 unless enabled or
# active); enable, start and daemon-reload record the call and update the state.
SYSTEMCTL = """#!/bin/sh
state="$FAKE_STATE"; echo "$*" >> "$state.calls"
case "$1" in
  is-enabled) v=$(sed -n 1p "$state"); echo "$v"; [ "$v" = enabled ] ;;
  is-active) v=$(sed -n 2p "$state"); echo "$v"; [ "$v" = active ] ;;
  enable) sed -i 1s/.*/enabled/ "$state" ;;
  start) sed -i 2s/.*/active/ "$state" ;;
  daemon-reload) ;;
  *) exit 2 ;;
esac
"""
JOURNALCTL = """#!/bin/sh
printf 'level=error msg="listen tcp: address already in use"\\n'
"""


class Handler(http.server.BaseHTTPRequestHandler):
    answers = []   # (status, body) served in turn, the last one for ever
    seen = []      # Authorization headers received

    def do_GET(self):  # noqa: N802 (http.server's name)
        Handler.seen.append(self.headers.get("Authorization"))
        status, body = Handler.answers.pop(0) if len(Handler.answers) > 1 else Handler.answers[0]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d/metrics" % httpd.server_address[1]
    httpd.shutdown()


@pytest.fixture
def unit(tmp_path):
    """Sets the unit's (enabled, active) state; returns the systemctl calls made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("systemctl", SYSTEMCTL), ("journalctl", JOURNALCTL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state"

    def set_state(enabled, active):
        state.write_text("%s\n%s\n" % (enabled, active))
        Path(str(state) + ".calls").write_text("")
        return lambda: [c for c in Path(str(state) + ".calls").read_text().splitlines() if not c.startswith("is-")]
    set_state.env = {**os.environ, "PATH": "%s:%s" % (bin_dir, os.environ["PATH"]), "FAKE_STATE": str(state)}
    return set_state


def run(unit, tmp_path, check=False, **args):
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"name": "node_exporter", "timeout": 2, **args,
                                                             "_ansible_check_mode": check}}))
    proc = subprocess.run([sys.executable, str(MODULE), str(args_file)], capture_output=True, text=True, env=unit.env, check=False)
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def test_running_and_healthy_changes_nothing(unit, tmp_path, server):
    Handler.answers = [(200, "up 1\n")]
    calls = unit("enabled", "active")
    result = run(unit, tmp_path, url=server)
    assert result["changed"] is False and result["status"] == 200 and not result.get("failed")
    assert calls() == []


def test_stopped_and_disabled_is_enabled_started_then_waited_for(unit, tmp_path, server):
    Handler.answers = [(503, "starting"), (503, "starting"), (200, "up 1\n")]
    calls = unit("disabled", "inactive")
    result = run(unit, tmp_path, url=server, daemon_reload=True)
    assert result["changed"] and result["started"] and result["enabled"] and result["status"] == 200, result
    assert calls() == ["daemon-reload", "enable node_exporter", "start node_exporter"]


def test_check_mode_starts_nothing_and_asks_only_a_running_service(unit, tmp_path, server):
    Handler.answers = [(200, "")]
    calls = unit("disabled", "failed")
    result = run(unit, tmp_path, check=True, url=server, daemon_reload=True)
    assert result["changed"] and result["started"] and result["enabled"] and result["status"] == 0
    assert calls() == []
    # Running: asked even in check mode (read-only), and a failed health check fails the dry run too.
    Handler.answers = [(500, "broken")]
    calls = unit("enabled", "active")
    result = run(unit, tmp_path, check=True, url=server)
    assert result["failed"] and "HTTP 500" in result["msg"] and calls() == []


def test_unhealthy_fails_with_the_journal(unit, tmp_path, server):
    Handler.answers = [(200, "pg_up 0\n")]
    unit("enabled", "active")
    result = run(unit, tmp_path, url=server, content="(?m)^pg_up 1$")
    assert result["failed"] and result["status"] == 200
    assert "body not matching (?m)^pg_up 1$" in result["msg"]
    assert "The end of its journal: level=error" in result["msg"]


def test_no_answer_is_reported_as_such(unit, tmp_path):
    unit("enabled", "active")
    result = run(unit, tmp_path, url="http://127.0.0.1:9/metrics", timeout=1)
    assert result["failed"] and result["status"] == -1 and "refused" in result["msg"].lower()


def test_basic_auth_is_sent_and_the_listed_statuses_count(unit, tmp_path, server):
    Handler.answers, Handler.seen = [(401, "")], []
    unit("enabled", "active")
    result = run(unit, tmp_path, url=server, url_username="admin", url_password="s3cr:et", status_code=[200, 401])
    assert result["status"] == 401 and not result.get("failed")
    assert Handler.seen[-1] == "Basic " + base64.b64encode(b"admin:s3cr:et").decode()
    assert "s3cr:et" not in json.dumps(result)


def test_a_masked_unit_is_refused_by_name(unit, tmp_path, server):
    unit("masked", "inactive")
    result = run(unit, tmp_path, url=server)
    assert result["failed"] and "node_exporter is masked" in result["msg"]
