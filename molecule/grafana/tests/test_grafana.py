"""Grafana over HTTP: secure defaults, provisioning, password convergence, backup and restore."""
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service, converge, curl, recap_changed  # noqa: E402

PASSWORD = "m0lecule #pass; word"
PLAIN = "grafana-d12"
TLS = "grafana-d13-tls"
FRESH = "grafana-d13-fresh"
DASHBOARDS = ["arq-overview", "arq-node", "arq-postgresql", "arq-redis", "team-latency"]
DATASOURCES = {"arq-prometheus": "prometheus", "arq-alertmanager": "alertmanager", "arq-loki": "loki"}
HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "ProtectProc": "invisible",
    "UMask": "0077",
    "MemoryDenyWriteExecute": "yes",
    "ReadWritePaths": "/var/lib/grafana",
    "CapabilityBoundingSet": "",
    "User": "grafana",
}


def base(host):
    return "https://127.0.0.1:3000" if host.backend.host == TLS else "http://127.0.0.1:3000"


def api(host, path, user="admin", password=PASSWORD, *args):
    auth = ("-u", f"{user}:{password}") if user else ()
    return curl(host, base(host) + path, "-k", *auth, *args)


def ok(host, path, *args):
    status, body = api(host, path, "admin", PASSWORD, *args)
    assert status == "200", (path, status, body)
    return json.loads(body)


@pytest.fixture(autouse=True)
def converged_only(host):
    if host.backend.host == FRESH:
        pytest.skip("the fresh instance is only restored onto (test_backup_then_restore_on_a_fresh_host)")


def test_enabled_running_and_hardened(host):
    assert_hardened_service(host, "grafana", HARDENING)


def test_health_reports_the_database_ok(host):
    status, body = curl(host, base(host) + "/api/health", "-k")
    assert status == "200" and json.loads(body)["database"] == "ok"


def test_anonymous_requests_are_refused(host):
    assert api(host, "/api/search", None)[0] == "401"
    assert api(host, "/api/datasources", None)[0] == "401"


def test_admin_logs_in_with_the_vaulted_password_only(host):
    assert ok(host, "/api/user")["login"] == "admin"
    assert api(host, "/api/user", "admin", "admin")[0] == "401"


def test_secure_settings_as_grafana_reads_them(host):
    settings = ok(host, "/api/admin/settings")
    assert settings["analytics"]["reporting_enabled"] == "false"
    assert settings["analytics"]["check_for_updates"] == "false"
    assert settings["analytics"]["check_for_plugin_updates"] == "false"
    assert settings["auth.anonymous"]["enabled"] == "false"
    assert settings["auth.basic"]["enabled"] == "true"
    assert settings["auth"]["disable_login_form"] == "false"
    # A value with "#" and ";" reaches Grafana whole (go-ini would cut it unquoted).
    assert settings["auth.anonymous"]["org_name"] == "arQ #ops; main"
    tls = host.backend.host == TLS
    assert settings["server"]["protocol"] == ("https" if tls else "http")
    assert settings["security"]["cookie_secure"] == ("true" if tls else "false")


def test_plain_http_is_refused_when_tls_is_on(host):
    if host.backend.host != TLS:
        pytest.skip("TLS instance only")
    assert curl(host, "http://127.0.0.1:3000/api/health")[0] != "200"


def test_secrets_stay_in_files_only_grafana_reads(host):
    for name in ("admin_password", "secret_key"):
        secret = host.file(f"/etc/grafana/secrets/{name}")
        assert (secret.mode, secret.user, secret.group) == (0o640, "root", "grafana")
    key = host.file("/etc/grafana/secrets/secret_key").content_string
    assert len(key) >= 32
    for path in ("/etc/grafana/grafana.ini", "/etc/systemd/system/grafana.service"):
        text = host.file(path).content_string
        assert PASSWORD not in text and key not in text
    assert PASSWORD not in host.check_output("ps -eo args")


def test_datasources_provisioned_with_fixed_uids(host):
    found = {d["uid"]: d for d in ok(host, "/api/datasources")}
    assert {uid: found[uid]["type"] for uid in DATASOURCES if uid in found} == DATASOURCES
    assert found["arq-prometheus"]["isDefault"] and found["arq-prometheus"]["url"] == "http://prometheus.example.internal:9090"
    assert ok(host, "/api/datasources/uid/arq-alertmanager")["url"] == "http://alertmanager.example.internal:9093"


def test_every_dashboard_present_with_its_uid(host):
    found = {d["uid"]: d for d in ok(host, "/api/search")}
    assert set(DASHBOARDS) <= set(found)
    assert found["arq-overview"]["title"] == "arQ Platform Overview" and found["arq-overview"]["folderTitle"] == "arQ"
    assert found["team-latency"]["folderTitle"] == "Custom"
    overview = ok(host, "/api/dashboards/uid/arq-overview")
    assert overview["meta"]["provisioned"]
    titles = {p["title"] for p in overview["dashboard"]["panels"]}
    assert {"Request rate", "Error rate (5xx share)", "Latency p95", "Redis hit ratio", "Targets up"} <= titles


def test_removed_datasource_and_dashboard_are_deleted_then_come_back(host):
    if host.backend.host != PLAIN:
        pytest.skip("checked once, on " + PLAIN)
    rc, out = converge(PLAIN, {"grafana_alertmanager_url": "", "grafana_dashboards": ["arq-overview", "arq-node", "arq-postgresql"],
                               "grafana_admin_password": PASSWORD})
    assert rc == 0, out[-3000:]
    assert api(host, "/api/datasources/uid/arq-alertmanager")[0] == "404"
    assert "arq-redis" not in {d["uid"] for d in ok(host, "/api/search")}
    assert not host.file("/etc/grafana/dashboards/arq/arq-redis.json").exists
    rc, out = converge(PLAIN, {"grafana_admin_password": PASSWORD})
    assert rc == 0, out[-3000:]
    assert ok(host, "/api/datasources/uid/arq-alertmanager")["type"] == "alertmanager"
    assert "arq-redis" in {d["uid"] for d in ok(host, "/api/search")}


def started(host):
    """What a restart would change: the main PID and when the unit last became active."""
    return host.check_output("systemctl show grafana -p MainPID -p ActiveEnterTimestamp")


def test_provisioning_change_is_reloaded_without_a_restart(host):
    if host.backend.host != PLAIN:
        pytest.skip("checked once, on " + PLAIN)
    before = started(host)
    version = ok(host, "/api/dashboards/uid/team-latency")["dashboard"]["version"]
    with tempfile.TemporaryDirectory() as dashboards:
        with open(os.path.join(dashboards, "team-latency.json"), "w") as fh:
            json.dump({"uid": "team-latency", "title": "Team latency v2", "panels": [], "schemaVersion": 39}, fh)
        rc, out = converge(PLAIN, {"grafana_admin_password": PASSWORD, "grafana_dashboards_dir": dashboards,
                                   "grafana_prometheus_url": "http://prometheus2.example.internal:9090"})
    assert rc == 0, out[-3000:]
    assert recap_changed(out) > 0
    # Visible over the API at once (the stand-in does not poll files: only the reload API applies them) ...
    assert ok(host, "/api/datasources/uid/arq-prometheus")["url"] == "http://prometheus2.example.internal:9090"
    changed = ok(host, "/api/dashboards/uid/team-latency")["dashboard"]
    assert changed["title"] == "Team latency v2" and changed["version"] == version + 1
    # ... and Grafana was not restarted for it.
    assert started(host) == before
    rc, out = converge(PLAIN, {"grafana_admin_password": PASSWORD})
    assert rc == 0, out[-3000:]
    assert ok(host, "/api/datasources/uid/arq-prometheus")["url"] == "http://prometheus.example.internal:9090"
    assert ok(host, "/api/dashboards/uid/team-latency")["dashboard"]["title"] == "Team latency"
    assert started(host) == before


def test_changed_password_converges(host):
    if host.backend.host != TLS:
        pytest.skip("checked once, on " + TLS)
    new = "n3w; #rotated"
    before = started(host)
    # With a data source change: the provisioning reload logs in with the new password.
    rc, out = converge(TLS, {"grafana_admin_password": new, "grafana_prometheus_url": "http://prometheus2.example.internal:9090"})
    assert rc == 0, out[-3000:]
    assert api(host, "/api/user", "admin", new)[0] == "200"
    assert api(host, "/api/user", "admin", PASSWORD)[0] == "401"
    status, body = api(host, "/api/datasources/uid/arq-prometheus", "admin", new)
    assert status == "200" and json.loads(body)["url"] == "http://prometheus2.example.internal:9090", body
    assert started(host) == before
    assert new not in out
    rc, again = converge(TLS, {"grafana_admin_password": new, "grafana_prometheus_url": "http://prometheus2.example.internal:9090"})
    assert rc == 0 and recap_changed(again) == 0, again[-3000:]
    rc, back = converge(TLS, {"grafana_admin_password": PASSWORD})
    assert rc == 0, back[-3000:]
    assert api(host, "/api/user", "admin", PASSWORD)[0] == "200"
    assert ok(host, "/api/datasources/uid/arq-prometheus")["url"] == "http://prometheus.example.internal:9090"
    assert started(host) == before


def test_password_changed_in_grafana_converges_back(host):
    """Grafana's database drifts from the inventory (changed in the UI, a restored database): its
    health check answers 401, and the role resets the password with Grafana's CLI."""
    if host.backend.host != TLS:
        pytest.skip("checked once, on " + TLS)
    home = host.check_output("systemctl show grafana -p WorkingDirectory --value")
    host.run_expect([0], "setpriv --reuid=grafana --regid=grafana --init-groups %s/bin/grafana cli --homepath=%s "
                    "--config=/etc/grafana/grafana.ini admin reset-admin-password %s", home, home, "drifted-pass")
    assert api(host, "/api/user", "admin", PASSWORD)[0] == "401"
    rc, out = converge(TLS, {"grafana_admin_password": PASSWORD})
    assert rc == 0, out[-3000:]
    out = re.sub(r"\x1b\[[0-9;]*m", "", out)
    # The health check's 401 led to the reset (the only change of the run).
    reset = re.search(r"Reset the admin password with Grafana's CLI\] \**\n(\S+): \[" + TLS + r"\]", out)
    assert reset and reset.group(1) == "changed", out[-3000:]
    assert api(host, "/api/user", "admin", PASSWORD)[0] == "200"
    assert api(host, "/api/user", "admin", "drifted-pass")[0] == "401"
    assert recap_changed(out) == 1
    assert PASSWORD not in out


BAD_INPUT = {
    "default password": ({"grafana_admin_password": "admin"}, "grafana_admin_password"),
    "no password": ({"grafana_admin_password": ""}, "grafana_admin_password"),
    "unknown key": ({"grafana_ini": {"analytics": {"reporting_enable": False}}}, "grafana_ini.analytics.reporting_enable"),
    "unknown section": ({"grafana_ini": {"analytic": {"enabled": False}}}, "[analytic]"),
    "duplicate datasource uid": ({"grafana_datasources": [{"name": "X", "type": "loki", "uid": "arq-prometheus"}]}, "uids must be unique"),
    "unknown dashboard": ({"grafana_dashboards": ["arq-kafka"]}, "arq-kafka"),
}


@pytest.mark.parametrize("extra_vars, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_fails_before_any_change(host, extra_vars, message):
    if host.backend.host != PLAIN:
        pytest.skip("checked once, on " + PLAIN)
    ini = host.file("/etc/grafana/grafana.ini").content_string
    rc, out = converge(PLAIN, {"grafana_admin_password": PASSWORD, **extra_vars})
    assert rc != 0 and message in out, out[-3000:]
    assert recap_changed(out) == 0
    assert host.file("/etc/grafana/grafana.ini").content_string == ini


def test_backup_then_restore_on_a_fresh_host(host):
    if host.backend.host != PLAIN:
        pytest.skip("backed up from " + PLAIN)
    hand_made = {"dashboard": {"uid": "hand-made", "title": "Made by hand", "panels": [], "schemaVersion": 39}, "overwrite": True}
    saved = ok(host, "/api/dashboards/db", "-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(hand_made))
    assert saved["uid"] == "hand-made"
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    with tempfile.TemporaryDirectory() as backups:
        backup = subprocess.run(["ansible-playbook", "-i", inventory, "--limit", PLAIN, "-e", f"grafana_backup_dir={backups}",
                                 f"{project}/playbooks/grafana_backup.yml"], capture_output=True, text=True, timeout=300, check=False)
        assert backup.returncode == 0, backup.stdout[-3000:]
        archives = glob.glob(f"{backups}/{PLAIN}/grafana-{PLAIN}-*.tar.gz")
        assert len(archives) == 1 and os.stat(archives[0]).st_mode & 0o777 == 0o600
        restore = subprocess.run(["ansible-playbook", "-i", inventory, "--limit", FRESH, "-e", f"grafana_backup_dir={backups}",
                                  "-e", f"grafana_restore_from={PLAIN}", f"{project}/playbooks/grafana_restore.yml"],
                                 capture_output=True, text=True, timeout=300, check=False)
        assert restore.returncode == 0, restore.stdout[-3000:]
    fresh = host.get_host(f"ansible://{FRESH}", ansible_inventory=inventory)
    status, body = curl(fresh, "http://127.0.0.1:3000/api/dashboards/uid/hand-made", "-u", f"admin:{PASSWORD}")
    assert status == "200" and json.loads(body)["dashboard"]["title"] == "Made by hand"
    assert fresh.file("/etc/grafana/secrets/secret_key").content_string == host.file("/etc/grafana/secrets/secret_key").content_string
    status, body = curl(fresh, "http://127.0.0.1:3000/api/search", "-u", f"admin:{PASSWORD}")
    assert set(DASHBOARDS) <= {d["uid"] for d in json.loads(body)}
