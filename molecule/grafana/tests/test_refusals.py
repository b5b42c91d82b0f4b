"""Bad settings, one per case, are refused with --check and for real before anything changes on
the host, naming the variable; a valid run afterwards changes nothing."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_refused_before_any_change  # noqa: E402

HOST = "grafana-d12"
PATHS = ["/etc/grafana", "/etc/systemd/system/grafana.service"]


def test_bad_settings_are_refused_before_any_change(host, tmp_path):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)
    (tmp_path / "good.json").write_text('{"uid": "good", "title": "Good"}')
    (tmp_path / "broken.json").write_text('{"uid": "broken", "title": ')
    cases = {
        "dashboard file that is not JSON": ({"grafana_dashboards_dir": str(tmp_path)}, "grafana_dashboards_dir: broken.json is not JSON"),
        "http_port that is not a number": ({"grafana_ini": {"server": {"http_port": "abc"}}}, "grafana_ini.server.http_port"),
        "unknown setting": ({"grafana_ini": {"analytics": {"reporting_enable": False}}}, "grafana_ini.analytics.reporting_enable"),
        "port above 65535": ({"grafana_web_listen_address": "0.0.0.0:65536"}, "grafana_web_listen_address"),
        "version with trailing text": ({"grafana_version": "13.2.3garbage"}, "grafana_version"),
    }
    assert_refused_before_any_change(host, "grafana", cases, PATHS, "grafana")
