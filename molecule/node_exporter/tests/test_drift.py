"""Every run checks the real state: --check and --check --diff tell the truth on a converged and a
drifted host, the next run repairs the drift through the handlers, and --tags selects a phase."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import converge, recap_changed, tasks_run  # noqa: E402

HOST = "node-exporter-d13-secure"
UNIT = "/etc/systemd/system/node_exporter.service"
WEB = "/etc/node_exporter/web.yml"


@pytest.fixture(autouse=True)
def only_once(host):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)


def main_pid(host):
    return host.check_output("systemctl show -p MainPID --value node_exporter")


def test_check_mode_on_a_converged_host_changes_nothing(host):
    rc, out = converge(HOST, None, "--check", "--diff")
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
    # The real tasks ran: the release, the files and the health check, not a shortcut.
    ran = tasks_run(out, HOST)
    for task in ("Install the release and the system account of node_exporter",
                 "Write the configuration of node_exporter", "Start node_exporter and wait until it answers"):
        assert task in ran, ran


def test_check_diff_shows_drift_same_size_and_mtime_and_changes_nothing(host):
    """A unit edited to the same size with its time put back (cp -p, rsync -t) is still seen."""
    before = host.file(UNIT).content_string
    drifted = before.replace("RestartSec=5s", "RestartSec=9s")
    assert len(drifted) == len(before)
    host.run_test("stamp=$(stat -c %%y %s) && sed -i 's/^RestartSec=5s/RestartSec=9s/' %s && touch -d \"$stamp\" %s",
                  UNIT, UNIT, UNIT)
    pid = main_pid(host)
    rc, out = converge(HOST, None, "--check", "--diff")
    assert rc == 0 and recap_changed(out) > 0, out[-3000:]
    assert "-RestartSec=9s" in out and "+RestartSec=5s" in out
    assert host.file(UNIT).content_string == drifted and main_pid(host) == pid
    # The next normal run repairs it through the restart handler.
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) > 0, out[-3000:]
    assert "Restart node_exporter" in tasks_run(out, HOST)
    assert host.file(UNIT).content_string == before and main_pid(host) != pid
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]


def test_drift_of_secrets_modes_and_state_is_repaired(host):
    host.run_test("chmod 0644 %s && rm -f /usr/local/bin/node_exporter.bak && systemctl stop node_exporter", WEB)
    rc, out = converge(HOST, None, "--check", "--diff")
    assert rc == 0 and recap_changed(out) > 0
    assert "scrape: 'me' #1" not in out  # the diff of a secret names the file only
    assert host.file(WEB).mode == 0o644 and not host.service("node_exporter").is_running
    rc, out = converge(HOST)
    assert rc == 0, out[-3000:]
    assert host.file(WEB).mode == 0o640 and host.service("node_exporter").is_running


def test_a_replaced_binary_is_reinstalled_and_restarted(host):
    host.run_test("cp /bin/true /usr/local/bin/node_exporter.new && mv /usr/local/bin/node_exporter.new /usr/local/bin/node_exporter")
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) > 0, out[-3000:]
    assert "Restart node_exporter" in tasks_run(out, HOST)
    assert host.service("node_exporter").is_running
    assert "node_exporter" in host.check_output("/usr/local/bin/node_exporter --version 2>&1")


def test_tags_select_a_phase(host):
    """--tags node_exporter_configure writes the configuration (and restarts for a new flag), and
    installs or starts nothing; the install phase alone changes no file."""
    rc, out = converge(HOST, {"node_exporter_disabled_collectors": ["mdadm", "arp"]}, "--tags", "node_exporter_configure")
    assert rc == 0 and recap_changed(out) > 0, out[-3000:]
    ran = tasks_run(out, HOST)
    assert "Write the configuration of node_exporter" in ran and "Restart node_exporter" in ran
    assert not [t for t in ran if t.startswith(("Install the release", "Start node_exporter"))], ran
    assert "--no-collector.arp" in host.file(UNIT).content_string
    rc, out = converge(HOST, None, "--tags", "node_exporter_install")
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
    assert "--no-collector.arp" in host.file(UNIT).content_string
    rc, out = converge(HOST)
    assert rc == 0 and "--no-collector.arp" not in host.file(UNIT).content_string
