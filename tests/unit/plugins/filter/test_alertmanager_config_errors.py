"""alertmanager_config_errors: each mistake is named; a good configuration passes amtool too."""
import subprocess

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.arq.monitoring.plugins.filter.alertmanager_config_errors import alertmanager_config_errors

GOOD = {
    "global": {"resolve_timeout": "5m"},
    "route": {
        "receiver": "ops",
        "group_by": ["alertname", "severity"],
        "group_wait": "10s",
        "group_interval": "10s",
        "repeat_interval": "1h",
        "routes": [{"receiver": "pager", "matchers": ['severity="critical"'], "repeat_interval": "30m"}],
    },
    "receivers": [
        {"name": "ops", "webhook_configs": [{"url": "http://127.0.0.1:9999/"}]},
        {"name": "pager", "pagerduty_configs": [{"routing_key_file": "/etc/alertmanager/secrets/pagerduty"}]},
    ],
}


def with_(path, value):
    config = yaml.safe_load(yaml.safe_dump(GOOD))
    *parents, last = path
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def test_good_config_has_no_errors():
    assert alertmanager_config_errors(GOOD) == []


def test_good_config_passes_amtool(tmp_path, amtool):
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(GOOD))
    result = subprocess.run([amtool, "check-config", str(tmp_path / "alertmanager.yml")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("receivers", 1, "pigeon_configs"), [{}], "receivers[1] (pager): unknown receiver type pigeon_configs"),
        (("route", "routes", 0, "receiver"), "team", "route.routes[0].receiver 'team' is not defined in receivers"),
        (("route", "receiver"), "nobody", "route.receiver 'nobody' is not defined in receivers"),
        (("route", "group_wait"), "10 seconds", "route.group_wait '10 seconds' is not a duration"),
        (("route", "routes", 0, "repeat_interval"), "1hour", "route.routes[0].repeat_interval '1hour' is not a duration"),
        (("global", "resolve_timeout"), "", "global.resolve_timeout '' is not a duration"),
        (("receivers", 1, "name"), "ops", "receivers: 'ops' is defined more than once"),
        (("receivers", 0), {"webhook_configs": []}, "receivers[0] needs a name"),
    ],
)
def test_each_mistake_is_named(path, value, message):
    errors = alertmanager_config_errors(with_(path, value))
    assert any(e.startswith(message) for e in errors), errors


def test_missing_route_is_reported():
    assert "route.receiver is required (the default receiver)" in alertmanager_config_errors({"receivers": []})


def test_non_mapping_is_refused():
    with pytest.raises(AnsibleFilterError, match="alertmanager_config_errors: "):
        alertmanager_config_errors(["route"])
