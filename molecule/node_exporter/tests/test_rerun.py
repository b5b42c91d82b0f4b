"""A re-run is one comparison per host when nothing drifted; any drift makes the role run in full
and repair it (arq.monitoring.converged)."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import converge, recap_changed  # noqa: E402

HOST = "node-exporter-d13-secure"
UNIT = "/etc/systemd/system/node_exporter.service"
RECORD = "/var/lib/arq-monitoring/node_exporter.json"


@pytest.fixture(autouse=True)
def only_once(host):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)


def tasks_run(output):
    """Names of the tasks that ran (ok or changed) on the host."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    blocks = re.findall(r"^TASK \[(.*?)\] \**$(.*?)(?=^TASK \[|^PLAY )", output, re.M | re.S)
    return [name.split(" : ")[-1] for name, body in blocks if re.search(r"^(ok|changed): \[%s\]" % HOST, body, re.M)]


def test_rerun_is_one_comparison(host):
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) == 0, out[-2000:]
    ran = tasks_run(out)
    assert "Compare with what the last complete run left node_exporter" in ran
    assert not [name for name in ran if name.startswith(("Install", "Write", "Start", "Wait"))], ran


def test_record_is_private_and_holds_no_secret(host):
    record = host.file(RECORD)
    assert (record.user, record.mode, host.file(os.path.dirname(RECORD)).mode) == ("root", 0o600, 0o700)
    assert "scrape: 'me' #1" not in record.content_string


def test_drift_is_repaired_then_rerun_is_fast_again(host):
    unit = host.file(UNIT).content_string
    host.run_test("sed -i 's/^Restart=.*/Restart=no/' %s && systemctl stop node_exporter", UNIT)
    host.run_test("chmod 0644 /etc/node_exporter/web.yml")
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) > 0, out[-2000:]
    assert "Install node_exporter" in out
    assert host.file(UNIT).content_string == unit
    assert host.file("/etc/node_exporter/web.yml").mode == 0o640
    assert host.service("node_exporter").is_running
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) == 0
    assert "Wait until it answers node_exporter" not in tasks_run(out)


def test_switch_runs_every_task_without_changes(host):
    rc, out = converge(HOST, {"arq_monitoring_skip_converged": False})
    assert rc == 0 and recap_changed(out) == 0, out[-2000:]
    assert "Wait until it answers node_exporter" in tasks_run(out)
