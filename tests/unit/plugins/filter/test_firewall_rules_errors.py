"""firewall_rules_errors: each mistake is named with its entry; a good allow-list passes."""
import pytest
from ansible_collections.arq.monitoring.plugins.filter.firewall_rules_errors import firewall_rules_errors

GOOD = [
    {"name": "node_exporter", "port": 9100, "sources": ["10.0.0.5", "2001:db8::/64", "172.18.0.0/16"]},
    {"name": "postgres_exporter", "port": 9187, "sources": []},
    {"name": "grafana", "port": 3000, "sources": ["0.0.0.0/0", "::/0", "::ffff:10.0.0.1", "10.1.2.3/24"]},
]


def with_(index, **fields):
    rules = [dict(rule) for rule in GOOD]
    rules[index].update(fields)
    return rules


def test_good_rules_have_no_errors():
    assert firewall_rules_errors(GOOD) == []
    assert firewall_rules_errors([]) == []


@pytest.mark.parametrize("rules, message", [
    (with_(0, sources=["10.0.0.300"]),
     "firewall_rules[0] (node_exporter): sources: '10.0.0.300' is not an IP address or a network in CIDR notation"),
    (with_(0, sources=["10.0.0.0/255.255.255.0"]), "'10.0.0.0/255.255.255.0' is not an IP address"),
    (with_(0, sources=["fe80::1%eth0"]), "'fe80::1%eth0' is not an IP address"),
    (with_(0, sources=["10.0.0.0/33"]), "'10.0.0.0/33' is not"),
    (with_(0, sources=["2001:db8::/129"]), "'2001:db8::/129' is not"),
    (with_(0, sources=["db.example.com"]), "'db.example.com' is not"),
    (with_(0, sources=[" 10.0.0.1"]), "' 10.0.0.1' is not"),
    (with_(0, sources=[10]), "sources: 10 is not"),
    (with_(0, sources="10.0.0.5"), "firewall_rules[0] (node_exporter): sources must be a list of addresses or networks, not str"),
    (with_(1, port=70000), "firewall_rules[1] (postgres_exporter): port 70000 must be an integer from 1 to 65535"),
    (with_(1, port=0), "port 0 must be"),
    (with_(1, port=True), "port True must be"),
    (with_(1, port="http"), "port 'http' must be"),
    (with_(1, port=9100), "firewall_rules[1] (postgres_exporter): port 9100 is already used by firewall_rules[0] (node_exporter)"),
    (with_(1, port="9187"), "firewall_rules[1] (postgres_exporter): port '9187' must be an integer from 1 to 65535"),
    (with_(2, name="node_exporter"), "firewall_rules[2] (node_exporter): name 'node_exporter' is already used by firewall_rules[0] (node_exporter)"),
    (with_(0, name='node "exporter"'), "name 'node \"exporter\"' must be letters, digits"),
    (with_(0, name="x" * 65), "must be letters, digits"),
    (with_(0, proto="udp"), "firewall_rules[0] (node_exporter): unknown field 'proto'"),
    ([{"name": "grafana", "port": 3000}], "firewall_rules[0] (grafana): sources is required"),
    ([{"port": 3000, "sources": []}], "firewall_rules[0]: name is required"),
    (["grafana"], "firewall_rules[0] must be a mapping"),
    ({"name": "grafana"}, "firewall_rules must be a list"),
])
def test_each_mistake_is_named(rules, message):
    errors = firewall_rules_errors(rules)
    assert len(errors) == 1 and message in errors[0], errors


def test_every_mistake_is_reported_at_once():
    rules = with_(0, port=70000, sources=["10.0.0.300", "10.0.0.5", "2001:db8::zz"])
    assert len(firewall_rules_errors(rules)) == 3
