"""redis_exporter against a real Redis, verified from inside each instance over HTTP."""
import os
import sys

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
    "User": "redis-exporter",
}
AUTH = ("prometheus", "scrape: 'me' #1")
SECURE_HOST = "redis-exporter-d13-secure"
ENV_FILE = "/etc/redis_exporter/redis_exporter.env"
# The Redis passwords of molecule.yml (which builds their "$" with Jinja).
PASSWORDS = {"plain": "scrape me 'r3dis' \"x\" $HOME `id` \\ #1", "secure": 'm3trics"acl"$PATH #2'}


def secrets(host):
    group = "secure" if "secure" in groups(host) else "plain"
    return [PASSWORDS[group]] + ([AUTH[1]] if group == "secure" else [])


def metrics(host):
    return scrape(host, 9121, AUTH if "secure" in groups(host) else None)


def test_upgraded_in_place_with_one_restart(host):
    assert_upgraded_once(host, "redis_exporter", "1.86.0", metrics(host))


def test_enabled_running_and_hardened(host):
    assert_hardened_service(host, "redis_exporter", HARDENING)


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


def test_tls_to_redis(host):
    """The plain instance reaches Redis only over TLS: rediss:// on a port that speaks nothing
    else and wants a client certificate; the exporter checks the server's certificate and name."""
    if "plain" not in groups(host):
        pytest.skip("TLS to Redis on the plain instance")
    assert host.check_output("REDISCLI_AUTH=%s redis-cli CONFIG GET tls-auth-clients", PASSWORDS["plain"]).split() == [
        "tls-auth-clients", "yes"]
    unit = host.file("/etc/systemd/system/redis_exporter.service").content_string
    assert "-redis.addr=rediss://localhost:6380" in unit and "-skip-tls-verification" not in unit
    for flag in ("-tls-ca-cert-file=", "-tls-client-cert-file=", "-tls-client-key-file="):
        assert flag + "/etc/redis_exporter/redis-" in unit, flag
    assert host.file("/etc/redis_exporter/redis-client.key").mode == 0o640
    assert value(metrics(host), "redis_up") == 1
    # The exporter's /scrape endpoint dials other addresses with the same TLS settings.
    for target, up in [("rediss://localhost:6380", 1),   # the role's settings, again
                       ("redis://localhost:6380", 0),    # no TLS: the TLS port refuses it
                       ("rediss://127.0.0.1:6380", 0),   # a name the certificate does not carry
                       ("redis://localhost:6379", 1)]:   # Redis' plain port still answers
        assert value(scrape(host, 9121, path="/scrape?target=" + target), "redis_up") == up, target


def test_secrets_stay_private(host):
    env = host.file(ENV_FILE)
    assert (env.user, env.group, env.mode) == ("root", "redis-exporter", 0o640)
    # What the running exporter got from systemd is exactly the password (quoting undone).
    pid = host.check_output("systemctl show -p MainPID --value redis_exporter")
    environ = host.check_output("tr '\\0' '\\n' < /proc/%s/environ", pid).splitlines()
    assert "REDIS_PASSWORD=" + secrets(host)[0] in environ
    assert_not_leaked(host, "redis_exporter", secrets(host))
    assert "password" not in host.file("/etc/systemd/system/redis_exporter.service").content_string.lower()


def test_secure_instance_refuses_without_credentials(host):
    if "secure" not in groups(host):
        pytest.skip("plain instance")
    assert_refuses_without_credentials(host, 9121)
    assert host.file("/etc/redis_exporter/tls.key").mode == 0o640
    assert not host.file("/etc/redis_exporter/web.yml").exists
    assert host.service("prometheus-redis-exporter").is_masked


def test_wrong_password_shows_as_redis_up_0_without_leaking_it(host):
    """A password Redis refuses does not fail the deployment: the exporter serves redis_up 0
    (RedisDown fires), and the password is nowhere in the output, unit, processes or journal."""
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    wrong = "Wr0ng pass'word $x"
    try:
        rc, out = converge(SECURE_HOST, '{"redis_exporter_redis_password": "%s"}' % wrong)
        assert rc == 0, out[-2000:]
        assert wrong not in out
        assert value(metrics(host), "redis_up") == 0
        assert host.file(ENV_FILE).mode == 0o640
        assert_not_leaked(host, "redis_exporter", [wrong])
    finally:
        rc, out = converge(SECURE_HOST)
        assert rc == 0, out[-2000:]
    assert value(metrics(host), "redis_up") == 1


def test_a_tls_file_put_back_restarts_the_exporter(host):
    """The exporter reads its TLS files at start: one changed by hand (the listener's certificate
    on the secure instance, the client certificate for Redis on the plain one) is written back
    and the exporter restarted, and the run ends with redis_up 1."""
    path = "/etc/redis_exporter/" + ("tls.crt" if "secure" in groups(host) else "redis-client.crt")
    before = host.file(path).content_string
    pid = host.check_output("systemctl show -p MainPID --value redis_exporter")
    host.check_output("echo '# changed by hand' >> %s", path)
    rc, out = converge(host.backend.host)
    assert rc == 0, out[-2000:]
    assert recap_changed(out) > 0
    assert host.file(path).content_string == before
    assert host.check_output("systemctl show -p MainPID --value redis_exporter") != pid
    assert value(metrics(host), "redis_up") == 1


def test_bad_input_fails_in_preflight_before_any_change(host):
    if "secure" not in groups(host):
        pytest.skip("run once, on the secure instance")
    before = host.file(ENV_FILE).content_string
    rc, out = converge(SECURE_HOST, '{"redis_exporter_redis_addr": "localhost:6379"}')
    assert rc != 0
    assert "redis_exporter_redis_addr must be redis://host:port" in out
    assert recap_changed(out) == 0
    assert host.file(ENV_FILE).content_string == before
