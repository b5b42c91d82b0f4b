"""postgres_exporter against a real PostgreSQL, verified from inside each instance over HTTP."""
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
    "User": "postgres-exporter",
}
AUTH = ("prometheus", "scrape: 'me' #1")
SECURE_HOST = "postgres-exporter-d13-secure"
ENV_FILE = "/etc/postgres_exporter/postgres_exporter.env"
# The secure instance's database password (molecule.yml builds its "$" with Jinja).
PASSWORD = 's3cret"pg"$HOME`id`#1:@/?&%'


def groups(host):
    return host.ansible.get_variables()["group_names"]


def curl(host, url, *args):
    """HTTP status and body of a request made inside the instance (arguments are quoted)."""
    cmd = host.run("curl -sS -o /tmp/body -w %s" + " %s" * (len(args) + 1), "%{http_code}", *args, url)
    return cmd.stdout.strip(), host.file("/tmp/body").content_string if cmd.rc == 0 else cmd.stderr


def metrics(host):
    if "secure" in groups(host):
        status, body = curl(host, "https://127.0.0.1:9187/metrics", "-k", "-u", ":".join(AUTH))
    else:
        status, body = curl(host, "http://127.0.0.1:9187/metrics")
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


def test_service_is_enabled_and_running(host):
    service = host.service("postgres_exporter")
    assert service.is_enabled
    assert service.is_running


def test_runs_as_its_own_user_with_hardening(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output("systemctl show postgres_exporter -p " + " -p ".join(HARDENING)).splitlines()
    )
    assert props == HARDENING
    assert host.user("postgres-exporter").shell == "/usr/sbin/nologin"


def test_database_metrics_the_seed_expects(host):
    body = metrics(host)
    assert value(body, "pg_up") == 1
    # Connections, transaction rate, locks, per database.
    assert value(body, "pg_stat_database_numbackends", 'datname="postgres"') >= 1
    assert value(body, "pg_stat_database_xact_commit", 'datname="postgres"') > 0
    assert value(body, "pg_locks_count", 'datname="postgres",mode="accesssharelock"') >= 0
    # Replication: a primary reports that it is not a replica and no lag.
    assert value(body, "pg_replication_is_replica") == 0
    assert value(body, "pg_replication_lag_seconds") == 0


def test_query_performance_from_pg_stat_statements(host):
    if "peer" not in groups(host):
        pytest.skip("stat_statements collector only on the peer instance")
    body = metrics(host)
    assert value(body, "pg_stat_statements_calls_total", 'datname="postgres"') > 0
    assert value(body, "pg_stat_statements_seconds_total", 'datname="postgres"') >= 0


def test_monitoring_role_is_least_privilege(host):
    user = "metrics" if "secure" in groups(host) else "postgres-exporter"
    row = host.check_output(
        "runuser -u postgres -- psql -XAtc %s",
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, pg_has_role('%s', 'pg_monitor', 'MEMBER')"
        " FROM pg_roles WHERE rolname = '%s'" % (user, user),
    )
    assert row == "t|f|f|f|t"


def test_connection_settings_stay_private(host):
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "postgres-exporter", 0o640)
    unit = host.file("/etc/systemd/system/postgres_exporter.service").content_string
    assert "DATA_SOURCE" not in unit and "Environment=" not in unit
    if "secure" in groups(host):
        secret = PASSWORD
        assert secret in host.check_output("cat %s", ENV_FILE).replace("\\", "")
        assert secret not in unit
        assert secret not in host.check_output("ps -eo args")
        assert secret not in host.run("journalctl --no-pager -o cat").stdout


def test_secure_instance_refuses_without_credentials(host):
    if "secure" not in groups(host):
        pytest.skip("plain instance")
    assert curl(host, "https://127.0.0.1:9187/metrics", "-k")[0] == "401"
    assert curl(host, "https://127.0.0.1:9187/metrics", "-k", "-u", "prometheus:wrong")[0] == "401"
    assert host.service("prometheus-postgres-exporter").is_masked


def test_wrong_password_gives_pg_up_0_without_leaking_it(host):
    if "secure" not in groups(host):
        pytest.skip("only the secure instance uses a password")
    wrong = "Wr0ng#pass%word"
    try:
        rc, out = converge("-e", '{"postgres_exporter_db_password": "%s", "postgres_exporter_db_create_user": false}' % wrong)
        assert rc == 0, out[-2000:]
        assert wrong not in out
        assert value(metrics(host), "pg_up") == 0
        assert host.file(ENV_FILE).mode == 0o640
        assert wrong not in host.check_output("ps -eo args")
        assert wrong not in host.run("journalctl --no-pager -o cat").stdout
        # The exporter says why (without the password).
        assert "password authentication failed" in host.run("journalctl --no-pager -o cat -u postgres_exporter").stdout
    finally:
        rc, out = converge()
        assert rc == 0, out[-2000:]
    assert value(metrics(host), "pg_up") == 1


def test_bad_input_fails_in_preflight_before_any_change(host):
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    before = host.file(ENV_FILE).content_string
    rc, out = converge("-e", '{"postgres_exporter_db_port": 70000}')
    assert rc != 0
    assert "postgres_exporter_db_port must be a port from 1 to 65535" in out
    assert re.search(r"changed=0 .*failed=1", re.sub(r"\s+", " ", out))
    assert host.file(ENV_FILE).content_string == before
