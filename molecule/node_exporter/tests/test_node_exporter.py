"""node_exporter, verified from inside each instance the way a user would check it."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import curl  # noqa: E402

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "read-only",
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


def groups(host):
    return host.ansible.get_variables()["group_names"]


def metrics(host):
    if "secure" in groups(host):
        return curl(host, "https://127.0.0.1:9100/metrics", "-k", "-u", ":".join(AUTH))
    return curl(host, "http://127.0.0.1:9100/metrics")


def test_service_is_enabled_and_running(host):
    service = host.service("node_exporter")
    assert service.is_enabled
    assert service.is_running


def test_runs_as_its_own_user_with_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show node_exporter -p " + " -p ".join(HARDENING)).splitlines()
    )
    assert props == HARDENING
    user = host.check_output("ps -o user= -C node_exporter -C prometheus-node-exporter")
    assert user.strip() == "node-exporter"
    assert host.user("node-exporter").shell == "/usr/sbin/nologin"


def test_metrics_served_with_expected_version(host):
    status, body = metrics(host)
    assert status == "200"
    expected = "1.5.0" if {"package"} <= set(groups(host)) and host.system_info.release.startswith("12") else "1.9.0"
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
    assert curl(host, "https://127.0.0.1:9100/metrics", "-k")[0] == "401"
    assert curl(host, "https://127.0.0.1:9100/metrics", "-k", "-u", "prometheus:wrong")[0] == "401"
    # Plain HTTP to the TLS listener gets no metrics.
    assert curl(host, "http://127.0.0.1:9100/metrics")[0] == "400"
    web = host.file("/etc/node_exporter/web.yml")
    assert web.mode == 0o640 and web.group == "node-exporter"
    assert AUTH[1] not in web.content_string
    assert host.file("/etc/node_exporter/tls.key").mode == 0o640
