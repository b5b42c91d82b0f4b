"""Bad settings, one per case, are refused with --check and for real before anything changes on
the host: promtool checks the whole new configuration (rules, prometheus.yml, web.yml) in a
private directory first, and the flags are checked by pattern. Each message names the variable;
a valid run afterwards changes nothing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_refused_before_any_change  # noqa: E402

HOST = "prometheus-d13"
PATHS = ["/etc/prometheus", "/etc/systemd/system/prometheus.service", "/usr/local/bin/prometheus", "/usr/local/bin/promtool"]


def rule(expr, duration="1m"):
    return {"prometheus_rule_files": {"bad.yml": {"groups": [{"name": "bad", "rules": [
        {"alert": "Bad", "expr": expr, "for": duration}]}]}}}


CASES = {
    "broken rule expression": (rule("rate(up[5m]"), "prometheus_rule_files"),
    "unknown function in a rule": (rule("nosuchfunction(up)"), "prometheus_rule_files"),
    "for: 1 minute": (rule("up == 0", "1 minute"), "prometheus_rule_files"),
    "scrape interval without a unit": ({"prometheus_scrape_interval": "15"}, "prometheus_scrape_interval"),
    "evaluation interval in words": ({"prometheus_evaluation_interval": "1 minute"}, "prometheus_evaluation_interval"),
    "scrape timeout above the interval": ({"prometheus_scrape_timeout": "10s"}, "prometheus_scrape_timeout"),
    "empty external label name": ({"prometheus_external_labels": {"": "x"}}, "prometheus_external_labels"),
    "alertmanagers given as a string": ({"prometheus_alertmanagers": "localhost:9093"}, "prometheus_alertmanagers"),
    "external URL without a scheme": ({"prometheus_web_external_url": "mon.example.com"}, "prometheus_web_external_url"),
    "retention in words": ({"prometheus_storage_retention_time": "five days"}, "prometheus_storage_retention_time"),
    "version with trailing text": ({"prometheus_version": "2.53.3garbage"}, "prometheus_version"),
    "basic-auth user with an empty password": ({"prometheus_web_basic_auth_users": {"admin": ""}}, "prometheus_web_basic_auth_users"),
    "CA that is not PEM": ({"prometheus_tls_ca_cert": "not a certificate"}, "prometheus_tls_ca_cert"),
}


def test_bad_settings_are_refused_before_any_change(host):
    if host.backend.host != HOST:
        pytest.skip("checked once, on " + HOST)
    # Both PEM, but not a pair: only promtool check web-config, loading them, can tell.
    cert = (Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "tls/cert.pem").read_text()
    other_key = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                               capture_output=True, text=True, check=True).stdout
    cases = dict(CASES, **{"certificate and key that are not a pair": (
        {"prometheus_web_tls_cert": cert, "prometheus_web_tls_key": other_key}, "prometheus_web_tls_cert")})
    assert_refused_before_any_change(host, "prometheus", cases, PATHS, "prometheus")
