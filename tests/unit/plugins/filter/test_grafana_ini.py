"""grafana_ini renders what go-ini reads back; grafana_ini_errors names unknown settings."""
import configparser

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.arq.monitoring.plugins.filter.grafana_ini import grafana_ini
from ansible_collections.arq.monitoring.plugins.filter.grafana_ini_errors import grafana_ini_errors


def test_booleans_are_lowercase():
    text = grafana_ini({"analytics": {"reporting_enabled": False, "check_for_updates": True}})
    assert "reporting_enabled = false" in text and "check_for_updates = true" in text
    assert "False" not in text and "True" not in text


def test_lists_are_comma_joined():
    assert "scopes = openid,email,profile" in grafana_ini({"auth.generic_oauth": {"scopes": ["openid", "email", "profile"]}})
    assert "[" not in grafana_ini({"auth.generic_oauth": {"scopes": ["a"]}}).split("]", 1)[1]


@pytest.mark.parametrize("value", ["pa#ss", "pa;ss", "#;", " padded ", '"quoted"'])
def test_comment_characters_and_edges_are_triple_quoted(value):
    assert f'password = """{value}"""' in grafana_ini({"database": {"password": value}})


def test_plain_values_stay_plain():
    text = grafana_ini({"server": {"http_port": 3002, "root_url": "https://grafana.example/", "cert_file": None}})
    assert "http_port = 3002" in text and "root_url = https://grafana.example/" in text
    assert "cert_file =" in text.splitlines()


def test_nested_sections_top_level_keys_and_order():
    text = grafana_ini({"users": {"allow_sign_up": False}, "app_mode": "production", "auth.anonymous": {"enabled": False}})
    assert text.splitlines()[0] == "app_mode = production"
    assert text.index("[auth.anonymous]") < text.index("[users]")
    # Deterministic: same data, same text.
    assert text == grafana_ini({"auth.anonymous": {"enabled": False}, "app_mode": "production", "users": {"allow_sign_up": False}})


def test_parsed_back_by_an_ini_parser():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(grafana_ini({"security": {"admin_user": "admin", "cookie_secure": True}, "auth.anonymous": {"enabled": False}}))
    assert parser["auth.anonymous"]["enabled"] == "false" and parser["security"]["cookie_secure"] == "true"


@pytest.mark.parametrize("bad", [{"server": {"x": {"nested": 1}}}, {"server": {"x": "two\nlines"}}, {"server": {"x": 'a"""#'}}, ["not", "a", "mapping"]])
def test_unwritable_values_fail(bad):
    with pytest.raises(AnsibleFilterError, match="grafana_ini"):
        grafana_ini(bad)


KNOWN = {"": ["app_mode"], "analytics": ["reporting_enabled"], "feature_toggles": ["*"]}


def test_known_settings_pass():
    assert grafana_ini_errors({"app_mode": "production", "analytics": {"reporting_enabled": False},
                               "feature_toggles": {"anyToggle": True}}, KNOWN) == []


def test_unknown_sections_and_keys_are_named():
    errors = grafana_ini_errors({"analytics": {"reporting_enable": False}, "analytic": {"x": 1}, "instance": "x"}, KNOWN)
    assert errors == [
        "grafana_ini: [analytic] is not a section Grafana knows",
        "grafana_ini.analytics.reporting_enable is not a key Grafana knows in [analytics]",
        "grafana_ini.instance is not a key Grafana knows in []",
    ]
