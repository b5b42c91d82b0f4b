"""node_exporter, verified from inside each instance the way a user would check it."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service, assert_refuses_without_credentials, assert_upgraded_once, groups, scrape  # noqa: E402

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
    # PID 1's mount table stays readable (filesystem collector); a user namespace instead.
    "ProtectProc": "default",
    "PrivateUsers": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "MemoryDenyWriteExecute": "yes",
    "CapabilityBoundingSet": "",
    "User": "node-exporter",
}
AUTH = ("prometheus", "scrape: 'me' #1")


def metrics(host):
    return scrape(host, 9100, AUTH if "secure" in groups(host) else None)


def test_upgraded_in_place_with_one_restart(host):
    assert_upgraded_once(host, "node_exporter", "1.11.1", metrics(host))


def test_enabled_running_and_hardened(host):
    assert_hardened_service(host, "node_exporter", HARDENING)
    user = host.check_output("ps -o user= -C node_exporter -C prometheus-node-exporter")
    assert user.strip() == "node-exporter"


def test_metrics_served_with_expected_version(host):
    body = metrics(host)
    # Debian's own packages: 1.5.0 on Debian 12, 1.9.0 on 13; the release otherwise.
    if "package" in groups(host):
        expected = "1.5.0" if host.system_info.release.startswith("12") else "1.9.0"
    else:
        expected = "1.11.1"
    assert re.search(r'node_exporter_build_info\{[^}]*version="%s"' % re.escape(expected), body), body[:500]
    assert "node_textfile_scrape_error 0" in body


def test_package_service_stays_masked(host):
    if "package" not in groups(host):
        pytest.skip("archive install")
    assert host.service("prometheus-node-exporter").is_masked
    assert host.file("/usr/bin/prometheus-node-exporter").exists


def test_secure_instance_refuses_without_credentials(host):
    if "secure" not in groups(host):
        pytest.skip("plain instance")
    assert_refuses_without_credentials(host, 9100)
    web = host.file("/etc/node_exporter/web.yml")
    assert web.mode == 0o640 and web.group == "node-exporter"
    assert AUTH[1] not in web.content_string
    assert host.file("/etc/node_exporter/tls.key").mode == 0o640


def test_host_metrics_through_the_hardening(host):
    """Filesystem, network, textfile and (where on) systemd metrics, as the host sees them."""
    probe = "/var/lib/node_exporter/textfile/molecule_probe.prom"
    host.run("printf 'molecule_probe 42\\n' > %s", probe)
    try:
        body = metrics(host)
    finally:
        host.run("rm -f %s", probe)
    assert "\nmolecule_probe 42\n" in body
    assert re.search(r'^node_network_receive_bytes_total\{device="[^"]+"\} ', body, re.M)
    if "secure" not in groups(host):  # the secure instance turns every default-off collector off
        assert re.search(r'^node_systemd_unit_state\{name="node_exporter.service",state="active"[^}]*\} 1$', body, re.M)
    # Read-only as in PID 1's mount table, not as in the unit's own (ProtectSystem=strict).
    host_ro = {}
    for line in host.file("/proc/1/mounts").content_string.splitlines():
        mountpoint, options = line.split()[1], line.split()[3]
        host_ro[mountpoint] = float("ro" in options.split(","))
    reported = dict(re.findall(r'^node_filesystem_readonly\{[^}]*mountpoint="([^"]*)"[^}]*\} (\S+)$', body, re.M))
    assert reported and all(host_ro[m] == float(v) for m, v in reported.items() if m in host_ro), (reported, host_ro)
    assert any(float(v) == 0 for v in reported.values())
