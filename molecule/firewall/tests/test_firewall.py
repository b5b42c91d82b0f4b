"""The allow-list, tested over real TCP between the instances: the allowed peer gets through,
the client is reset at once, loopback always gets through, other ports and tables are untouched."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from firewall import CLIENT, PEER, TABLE, connect, live, other, rejected  # noqa: E402

testinfra_hosts = ["ansible://firewall-d12", "ansible://firewall-d13"]


@pytest.fixture
def me(host):
    return host.backend.host


@pytest.fixture
def client(host):
    return other(host, CLIENT)


def test_only_the_allowed_peer_connects(host, me):
    """The rules allow the first target's address: it reaches the other target, not the reverse."""
    if me == PEER:
        assert connect(other(host, "firewall-d13"), me, 9100)[0] == 7
    else:
        assert connect(other(host, PEER), me, 9100)[0] == 0


def test_client_is_reset_at_once_and_counted(host, me, client):
    before = rejected(host, "node_exporter")
    rc, seconds = connect(client, me, 9100)
    assert rc == 7 and seconds < 1, (rc, seconds)
    assert rejected(host, "node_exporter") == before + 1


def test_empty_sources_allow_only_loopback(host, me, client):
    peer = other(host, PEER if me != PEER else "firewall-d13")
    before = rejected(host, "postgres_exporter")
    assert connect(peer, me, 9187)[0] == 7
    assert connect(client, me, 9187)[0] == 7
    assert rejected(host, "postgres_exporter") == before + 2


@pytest.mark.parametrize("port", [9100, 9187])
def test_loopback_always_connects(host, me, port):
    # Docker turns IPv6 off in the instances: no ::1 to try.
    for address in ("127.0.0.1", me):
        assert connect(host, address, port)[0] == 0, address


def test_other_ports_untouched(host, me, client):
    """A port the rules do not name (an SSH-like 2222) answers everyone."""
    assert connect(client, me, 2222)[0] == 0
    assert connect(other(host, PEER), me, 2222)[0] == 0


def test_own_table_only(host):
    tables = host.check_output("nft list tables").splitlines()
    assert "table " + TABLE in tables
    # Docker's DNS table of the instance is still there: the role never flushes the ruleset.
    assert "table ip nat" in tables
    assert "policy accept" in live(host)


def test_ruleset_file_and_boot_unit(host):
    ruleset = host.file("/etc/arq-monitoring/firewall.nft")
    assert ruleset.user == "root" and ruleset.mode == 0o644
    assert host.run("nft -c -f /etc/arq-monitoring/firewall.nft").rc == 0
    unit = host.service("arq-monitoring-firewall")
    assert unit.is_enabled and unit.is_running
    # Debian's own unit would flush every table with the stock /etc/nftables.conf.
    assert not host.service("nftables").is_enabled
