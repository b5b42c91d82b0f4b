"""The allow-list's life on one host: a reboot, a lost table, bad input, a ruleset nft refuses,
firewall_state: absent. Each test leaves the host converged again."""
import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import converge, recap_changed  # noqa: E402
from firewall import CLIENT, PEER, TABLE, connect, live, other, rules  # noqa: E402

# Restarted below: not the peer, whose address is in the rules and must not change.
HOST = "firewall-d13"
testinfra_hosts = ["ansible://" + HOST]
RULESET = "/etc/arq-monitoring/firewall.nft"
UNIT = "/etc/systemd/system/arq-monitoring-firewall.service"


@pytest.fixture
def client(host):
    return other(host, CLIENT)


def assert_protected(host, client):
    assert connect(client, HOST, 9100)[0] == 7
    assert connect(other(host, PEER), HOST, 9100)[0] == 0


def assert_converged():
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) == 0, out


def test_follows_debian_nftables_service(host, client):
    """Debian's nftables.service flushes every table (stock /etc/nftables.conf): our unit loads
    the table again after its reloads and restarts, and starts with it after a stop. The flush
    also drops Docker's DNS rules inside the instance: the reboot test below brings them back."""
    expected = rules(host)
    try:
        host.run_expect([0], "systemctl start nftables")
        host.run_expect([0], "systemctl restart arq-monitoring-firewall")
        for action in ("reload", "restart", "stop", "start"):
            host.run_expect([0], "systemctl %s nftables", action)
            if action == "stop":
                assert not host.service("arq-monitoring-firewall").is_running
                continue
            for _ in range(50):
                if rules(host) == expected:
                    break
                time.sleep(0.1)
            assert rules(host) == expected, action
            assert "table inet filter" in host.check_output("nft list tables"), action
            assert_protected(host, client)
    finally:
        host.run("systemctl stop nftables")
        host.run_expect([0], "systemctl start arq-monitoring-firewall")
    assert rules(host) == expected


def test_reboot_loads_the_table_before_the_network(host, client):
    expected = rules(host)
    subprocess.run(["docker", "restart", "--time", "0", HOST], check=True, capture_output=True, timeout=60)
    for _ in range(60):
        state = subprocess.run(["docker", "exec", HOST, "systemctl", "is-system-running", "--wait"],
                               capture_output=True, text=True, timeout=120).stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    assert state in ("running", "degraded"), state
    assert rules(host) == expected
    order = host.check_output("systemctl show -p Before,WantedBy arq-monitoring-firewall")
    assert "network-pre.target" in order and "sysinit.target" in order
    assert_protected(host, client)
    assert_converged()


def test_lost_table_is_loaded_again(host, client):
    """A table deleted by hand (the unit still active) is loaded again by the next run."""
    expected = rules(host)
    host.run_expect([0], "nft delete table %s", TABLE)
    assert connect(client, HOST, 9100)[0] == 0
    rc, out = converge(HOST)
    assert rc == 0 and recap_changed(out) == 1, out
    assert rules(host) == expected
    assert_protected(host, client)


CASES = {
    "invalid source": ({"name": "node_exporter", "port": 9100, "sources": ["10.0.0.300"]},
                       "firewall_rules[0] (node_exporter): sources: '10.0.0.300' is not an IP address"),
    "duplicate port": ({"name": "grafana", "port": 9187, "sources": []},
                       "firewall_rules[1] (postgres_exporter): port 9187 is already used by firewall_rules[0] (grafana)"),
    "port out of range": ({"name": "grafana", "port": 70000, "sources": []},
                          "firewall_rules[0] (grafana): port 70000 must be an integer from 1 to 65535"),
}


@pytest.mark.parametrize("rule, message", CASES.values(), ids=CASES.keys())
def test_bad_input_fails_before_any_change(host, client, rule, message):
    before, ruleset = rules(host), host.file(RULESET).content_string
    bad = [rule, {"name": "postgres_exporter", "port": 9187, "sources": []}]
    rc, out = converge(HOST, {"firewall_rules": bad})
    assert rc != 0 and message in out, out
    assert recap_changed(out) == 0
    assert rules(host) == before and host.file(RULESET).content_string == ruleset
    assert_protected(host, client)


def test_ruleset_nft_refuses_is_never_applied(host, client):
    """A ruleset that passes the settings check but not `nft -c` (forced here through the role's
    internal table name) is refused by nft in the preflight, with nft's own error, before any
    change, in check mode too; neither the file nor the live table is replaced."""
    before, ruleset = rules(host), host.file(RULESET).content_string
    rc, out = converge(HOST, {"__firewall_table": "arq monitoring"}, "--check")
    assert rc != 0 and "is refused by nft" in out and "Error: syntax error" in out, out
    rc, out = converge(HOST, {"__firewall_table": "arq monitoring"})
    assert rc != 0 and "(made from firewall_rules) is refused by nft" in out and "Error: syntax error" in out, out
    assert recap_changed(out) == 0
    assert rules(host) == before and host.file(RULESET).content_string == ruleset
    assert_protected(host, client)


def test_absent_removes_everything(host, client):
    try:
        rc, out = converge(HOST, {"firewall_state": "absent"})
        assert rc == 0 and recap_changed(out) > 0, out
        assert live(host) == ""
        assert not host.file(RULESET).exists and not host.file("/etc/arq-monitoring").exists
        assert not host.file(UNIT).exists
        assert host.run("systemctl is-failed arq-monitoring-firewall").stdout.strip() != "failed"
        assert connect(client, HOST, 9100)[0] == 0
        rc, out = converge(HOST, {"firewall_state": "absent"})
        assert rc == 0 and recap_changed(out) == 0, out
    finally:
        rc, out = converge(HOST)
        assert rc == 0, out
    assert_protected(host, client)
    assert_converged()
