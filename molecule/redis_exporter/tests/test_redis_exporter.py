"""redis_exporter against a real Redis, verified from inside each instance over HTTP."""
import os
import re
import subprocess

import pytest

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "User": "redis-exporter",
}
AUTH = ("prometheus", "scrape: 'me' #1")
SECURE_HOST = "redis-exporter-d13-secure"
ENV_FILE = "/etc/redis_exporter/redis_exporter.env"
# The Redis passwords of molecule.yml (which builds their "$" with Jinja).
PASSWORDS = {"plain": "scrape me 'r3dis' \"x\" $HOME `id` \\ #1", "secure": 'm3trics"acl"$PATH #2'}


def groups(host):
    return host.ansible.get_variables()["group_names"]


def curl(host, url, *args):
    """HTTP status and body of a request made inside the instance (arguments are quoted)."""
    cmd = host.run("curl -sS -o /tmp/body -w %s" + " %s" * (len(args) + 1), "%{http_code}", *args, url)
    return cmd.stdout.strip(), host.file("/tmp/body").content_string if cmd.rc == 0 else cmd.stderr


def metrics(host):
    if "secure" in groups(host):
        status, body = curl(host, "https://127.0.0.1:9121/metrics", "-k", "-u", ":".join(AUTH))
    else:
        status, body = curl(host, "http://127.0.0.1:9121/metrics")
    assert status == "200", body[:300]
    return body


def value(body, name, labels=""):
    """The first sample of a metric whose label set contains `labels`."""
    match = re.search(r"^%s(\{[^}]*%s[^}]*\})? (\S+)$" % (re.escape(name), re.escape(labels)), body, re.M)
    assert match, "%s{%s} missing" % (name, labels)
    return float(match.group(2))


def converge(*extra):
    """Run the scenario's converge on the secure instance only; returns (rc, all output)."""
    cmd = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "-l", SECURE_HOST,
         os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml"), *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )
    return cmd.returncode, cmd.stdout + cmd.stderr


def secrets(host):
    group = "secure" if "secure" in groups(host) else "plain"
    return [PASSWORDS[group]] + ([AUTH[1]] if group == "secure" else [])


def test_service_is_enabled_and_running(host):
    service = host.service("redis_exporter")
    assert service.is_enabled
    assert service.is_running


def test_runs_as_its_own_user_with_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show redis_exporter -p " + " -p ".join(HARDENING)).splitlines()
    )
    assert props == HARDENING
    assert host.user("redis-exporter").shell == "/usr/sbin/nologin"


def test_redis_metrics_the_seed_expects(host):
    body = metrics(host)
    assert value(body, "redis_up") == 1
    assert value(body, "redis_memory_used_bytes") > 0
    assert value(body, "redis_db_keys", 'db="db0"') >= 4
    assert value(body, "redis_keyspace_hits_total") >= 2
    assert value(body, "redis_keyspace_misses_total") >= 1
    assert value(body, "redis_evicted_keys_total") >= 0
    assert value(body, "redis_connected_clients") >= 1
    assert value(body, "redis_commands_total", 'cmd="get"') >= 3


def test_key_and_stream_checks(host):
    if "plain" not in groups(host):
        pytest.skip("key and stream checks only on the plain instance")
    body = metrics(host)
    assert value(body, "redis_key_size", 'key="orders:1"') > 0
    assert value(body, "redis_stream_length", 'stream="events:orders"') >= 1


def test_secrets_stay_private(host):
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "redis-exporter", 0o640)
    # What the running exporter got from systemd is exactly the password (quoting undone).
    pid = host.check_output("systemctl show -p MainPID --value redis_exporter")
    environ = host.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid).splitlines()
    assert "REDIS_PASSWORD=" + secrets(host)[0] in environ
    unit = host.file("/etc/systemd/system/redis_exporter.service").content_string
    processes = host.check_output("ps -eo args")
    journal = host.run("journalctl --no-pager -o cat").stdout
    for secret in secrets(host):
        assert secret not in unit
        assert secret not in processes
        assert secret not in journal
    assert "password" not in unit.lower()


def test_secure_instance_refuses_without_credentials(host):
    if "secure" not in groups(host):
        pytest.skip("plain instance")
    assert curl(host, "https://127.0.0.1:9121/metrics", "-k")[0] == "401"
    assert curl(host, "https://127.0.0.1:9121/metrics", "-k", "-u", "prometheus:wrong")[0] == "401"
    assert curl(host, "http://127.0.0.1:9121/metrics")[0] == "400"
    assert host.file("/etc/redis_exporter/tls.key").mode == 0o640
    assert not host.file("/etc/redis_exporter/web.yml").exists
    assert host.service("prometheus-redis-exporter").is_masked


def test_wrong_password_gives_redis_up_0_without_leaking_it(host):
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    wrong = "Wr0ng pass'word $x"
    try:
        rc, out = converge("-e", '{"redis_exporter_redis_password": "%s"}' % wrong)
        assert rc == 0, out[-2000:]
        assert wrong not in out
        assert value(metrics(host), "redis_up") == 0
        assert host.file(ENV_FILE).mode == 0o640
        assert wrong not in host.check_output("ps -eo args")
        assert wrong not in host.run("journalctl --no-pager -o cat").stdout
    finally:
        rc, out = converge()
        assert rc == 0, out[-2000:]
    assert value(metrics(host), "redis_up") == 1


def test_bad_input_fails_in_preflight_before_any_change(host):
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    before = host.file(ENV_FILE).content_string
    rc, out = converge("-e", '{"redis_exporter_redis_addr": "localhost:6379"}')
    assert rc != 0
    assert "redis_exporter_redis_addr must be redis://host:port" in out
    assert re.search(r"changed=0 .*failed=1", re.sub(r"\s+", " ", out))
    assert host.file(ENV_FILE).content_string == before
