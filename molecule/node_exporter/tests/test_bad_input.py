"""Bad settings fail in preflight, naming the variable, before anything changes on the host."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import converge, recap_changed  # noqa: E402

HOST = "node-exporter-d12"
CASES = {
    "wrong type": ({"node_exporter_enabled_collectors": "systemd"}, "node_exporter_enabled_collectors"),
    "unknown install method": ({"node_exporter_install_method": "curl"}, "node_exporter_install_method"),
    "malformed listen address": ({"node_exporter_web_listen_address": "0.0.0.0:99999"}, "node_exporter_web_listen_address"),
    "TLS without key": ({"node_exporter_web_tls_cert": "-----BEGIN CERTIFICATE-----"}, "node_exporter_web_tls_key"),
}


@pytest.mark.parametrize("extra_vars, variable", CASES.values(), ids=CASES.keys())
def test_bad_input_fails_before_any_change(host, extra_vars, variable):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)
    unit_before = host.file("/etc/systemd/system/node_exporter.service").content_string
    rc, out = converge(HOST, extra_vars)
    assert rc != 0 and variable in out
    assert recap_changed(out) == 0
    assert host.file("/etc/systemd/system/node_exporter.service").content_string == unit_before
    assert host.service("node_exporter").is_running
