"""Bad settings, one per case, are refused in preflight with --check and for real, naming the
variable, before anything changes on the host; a valid run afterwards changes nothing."""
import os
import sys

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import refusal_test  # noqa: E402

HOST = "node-exporter-d12"
PATHS = ["/etc/node_exporter", "/etc/systemd/system/node_exporter.service", "/usr/local/bin/node_exporter"]
CASES = {
    "a list given as a string": ({"node_exporter_enabled_collectors": "systemd"}, "node_exporter_enabled_collectors"),
    "unknown install method": ({"node_exporter_install_method": "curl"}, "node_exporter_install_method"),
    "port above 65535": ({"node_exporter_web_listen_address": "0.0.0.0:99999"}, "node_exporter_web_listen_address"),
    "bracketed non-IPv6 address": ({"node_exporter_web_listen_address": "[zz]:9100"}, "node_exporter_web_listen_address"),
    "TLS certificate without key": ({"node_exporter_web_tls_cert": "-----BEGIN CERTIFICATE-----"}, "node_exporter_web_tls_key"),
    "certificate and key that are not PEM": (
        {"node_exporter_web_tls_cert": "junk", "node_exporter_web_tls_key": "junk"}, "node_exporter_web_tls_cert"),
    "version with trailing text": ({"node_exporter_version": "1.9.0garbage"}, "node_exporter_version"),
    "checksum not sha256": ({"node_exporter_checksum": "md5:0123"}, "node_exporter_checksum"),
    "empty system user": ({"node_exporter_system_user": ""}, "node_exporter_system_user"),
    "relative textfile directory": ({"node_exporter_textfile_dir": "textfile"}, "node_exporter_textfile_dir"),
}


test_bad_settings_are_refused_before_any_change = refusal_test(HOST, "node_exporter", CASES, PATHS)
