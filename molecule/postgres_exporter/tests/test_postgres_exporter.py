"""postgres_exporter against a real PostgreSQL, verified from inside each instance over HTTP."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service, assert_not_leaked, assert_refuses_without_credentials, assert_upgraded_once, converge, groups, recap_changed, scrape, value  # noqa: E402

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectProc": "invisible",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
    "User": "postgres-exporter",
}
AUTH = ("prometheus", "scrape: 'me' #1")
SECURE_HOST = "postgres-exporter-d13-secure"
ENV_FILE = "/etc/postgres_exporter/postgres_exporter.env"
# The secure instance's database password (molecule.yml builds its "$" with Jinja).
PASSWORD = 's3cret"pg"$HOME`id`#1:@/?&%'


def metrics(host):
    return scrape(host, 9187, AUTH if "secure" in groups(host) else None)


def test_upgraded_in_place_with_one_restart(host):
    assert_upgraded_once(host, "postgres_exporter", "0.19.1", metrics(host))


def test_enabled_running_and_hardened(host):
    assert_hardened_service(host, "postgres_exporter", HARDENING)


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


def test_tls_to_postgresql(host):
    """The secure instance reaches PostgreSQL over TLS, verifying the server's certificate and
    name against the test CA; the server refuses the monitoring role any connection without TLS."""
    if "secure" not in groups(host):
        pytest.skip("the peer instance uses the local socket")
    env = host.check_output("cat %s", ENV_FILE)
    assert "sslmode=verify-full" in env and "sslrootcert=/etc/postgres_exporter/db-ca.crt" in env
    assert host.file("/etc/postgres_exporter/db-ca.crt").content_string.startswith("-----BEGIN CERTIFICATE-----")
    plain = host.run("psql -Xw %s -c 'SELECT 1'", "host=127.0.0.1 dbname=postgres user=metrics sslmode=disable")
    assert plain.rc != 0 and "no encryption" in plain.stderr, plain.stderr
    assert value(metrics(host), "pg_up") == 1


def test_connection_settings_stay_private(host):
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "postgres-exporter", 0o640)
    unit = host.file("/etc/systemd/system/postgres_exporter.service").content_string
    assert "DATA_SOURCE" not in unit and "Environment=" not in unit
    if "secure" in groups(host):
        assert PASSWORD in host.check_output("cat %s", ENV_FILE).replace("\\", "")
        assert_not_leaked(host, "postgres_exporter", [PASSWORD])


def test_secure_instance_refuses_without_credentials(host):
    if "secure" not in groups(host):
        pytest.skip("plain instance")
    assert_refuses_without_credentials(host, 9187)
    assert host.service("prometheus-postgres-exporter").is_masked


def test_wrong_password_shows_as_pg_up_0_without_leaking_it(host):
    """A password the server refuses does not fail the deployment: the exporter serves pg_up 0
    (DatabaseDown fires) and its journal tells the cause, never the password."""
    if "secure" not in groups(host):
        pytest.skip("only the secure instance uses a password")
    wrong = "Wr0ng#pass%word"
    try:
        rc, out = converge(SECURE_HOST, '{"postgres_exporter_db_password": "%s", "postgres_exporter_db_create_user": false}' % wrong)
        assert rc == 0, out[-2000:]
        assert wrong not in out
        assert value(metrics(host), "pg_up") == 0
        assert host.file(ENV_FILE).mode == 0o640
        assert_not_leaked(host, "postgres_exporter", [wrong])
        # The exporter says why (without the password).
        assert "password authentication failed" in host.run("journalctl --no-pager -o cat -u postgres_exporter").stdout
    finally:
        rc, out = converge(SECURE_HOST)
        assert rc == 0, out[-2000:]
    assert value(metrics(host), "pg_up") == 1


def test_login_role_broken_by_hand_is_repaired(host):
    """Someone drops the login role (peer instance) or changes its password (secure instance) and
    cuts the exporter's session: the exporter reports pg_up 0; the next run puts the role back
    (a change) and does not end before the exporter reports pg_up 1 again."""
    user = "metrics" if "secure" in groups(host) else "postgres-exporter"
    break_it = ('ALTER ROLE "%s" PASSWORD \'changed-by-hand\'' if "secure" in groups(host) else 'DROP ROLE "%s"') % user
    host.check_output(
        "runuser -u postgres -- psql -Xq -v ON_ERROR_STOP=1 -c %s -c %s",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'" % user, break_it)
    assert value(metrics(host), "pg_up") == 0
    rc, out = converge(host.backend.host)
    assert rc == 0, out[-2000:]
    assert recap_changed(out) > 0
    for _ in range(20):  # the exporter logs in again at its next scrape
        if value(metrics(host), "pg_up") == 1:
            break
        time.sleep(1)
    assert value(metrics(host), "pg_up") == 1
    test_monitoring_role_is_least_privilege(host)


def test_bad_input_fails_in_preflight_before_any_change(host):
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    before = host.file(ENV_FILE).content_string
    rc, out = converge(SECURE_HOST, '{"postgres_exporter_db_port": 70000}')
    assert rc != 0
    assert "postgres_exporter_db_port must be a port from 1 to 65535" in out
    assert recap_changed(out) == 0
    assert host.file(ENV_FILE).content_string == before
