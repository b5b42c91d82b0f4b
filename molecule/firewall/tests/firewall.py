"""Helpers the firewall scenario's tests share: TCP connections between the instances, the live table."""
import os
import re

TABLE = "inet arq_monitoring"
PEER = "firewall-d12"  # the first target: the one address the rules allow in
CLIENT = "firewall-client-d13"


def other(host, name):
    """Another instance of the scenario, as a testinfra host."""
    return host.get_host("ansible://" + name, ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


def connect(source, address, port):
    """(curl's exit code, seconds) of an HTTP request from `source` to address:port, at most 5 s.
    0: answered; 7: refused (a TCP reset); 28: timed out."""
    cmd = source.run("curl -sS -o /dev/null -w %s --max-time 5 http://%s:%s/", "%{time_total}", address, str(port))
    return cmd.rc, float(cmd.stdout or 5)


def live(host):
    """The live table as nft prints it, or "" when it is not loaded."""
    cmd = host.run("nft list table %s", TABLE)
    return cmd.stdout if cmd.rc == 0 else ""


def rules(host):
    """The live table without its counters' values: what a role run must not change."""
    return re.sub(r"counter packets \d+ bytes \d+", "counter", live(host))


def rejected(host, name):
    """Packets the reject rule `name` has counted."""
    match = re.search(r'counter packets (\d+) bytes \d+ reject with tcp reset comment "%s"' % re.escape(name), live(host))
    assert match, live(host)
    return int(match.group(1))
