"""The stack with every security switch on, checked from the hosts: TLS and basic auth on every
endpoint, the firewall, no secret where others can read it, and password rotation."""
import calendar
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import curl, recap_changed, task_results  # noqa: E402

testinfra_hosts = ["ansible://secure-monitoring"]

# The inventory directory: Molecule's file and the scenario's inline-vaulted secrets.yml.
INVENTORY = os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"])
# What molecule.yml gives its own steps, for the playbooks the tests run too.
os.environ.setdefault("ANSIBLE_VAULT_PASSWORD_FILE", os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "vault.pass"))
CA = "/etc/prometheus/ca.crt"  # the internal CA, as Prometheus has it
# Every endpoint that must refuse a request without credentials: (host, port, path).
PROTECTED = [
    ("secure-monitoring", 9100, "/metrics"), ("secure-db", 9100, "/metrics"), ("secure-cache", 9100, "/metrics"),
    ("secure-db", 9187, "/metrics"), ("secure-cache", 9121, "/metrics"),
    ("secure-monitoring", 9090, "/api/v1/targets"), ("secure-monitoring", 9090, "/metrics"),
    ("secure-monitoring", 9093, "/api/v2/status"), ("secure-monitoring", 9093, "/metrics"),
    ("secure-monitoring", 3000, "/api/datasources"),
]
EXPECTED_TARGETS = {
    ("node", "secure-monitoring"), ("node", "secure-db"), ("node", "secure-cache"), ("postgres", "secure-db"),
    ("redis", "secure-cache"), ("backend", "secure-cache"), ("prometheus", "secure-monitoring"),
    ("alertmanager", "secure-monitoring"), ("grafana", "secure-monitoring"),
}


def group_vars(group):
    """The scenario's inline-vaulted variables of a group (inventory/secrets.yml), decrypted."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    with open(os.environ["ANSIBLE_VAULT_PASSWORD_FILE"], "rb") as stream:
        vault = VaultLib([("default", VaultSecret(stream.read().strip()))])

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!vault", lambda loader, node: vault.decrypt(loader.construct_scalar(node)).decode())
    with open(os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "inventory", "secrets.yml")) as stream:
        return yaml.load(stream, Loader=Loader)[group]["vars"]  # noqa: S506 (SafeLoader and !vault only)


def secrets():
    found = list(group_vars("all")["arq_monitoring_web_users"].values())
    found.append(group_vars("all")["alertmanager_secrets"]["webhook_url"])
    found.append(group_vars("postgres_exporter")["postgres_exporter_db_password"])
    found.append(group_vars("redis_exporter")["redis_exporter_redis_password"])
    found.append(group_vars("grafana")["grafana_admin_password"])
    return found


def users():
    return group_vars("all")["arq_monitoring_web_users"]


def instance(name):
    import testinfra
    return testinfra.get_host("ansible://" + name, ansible_inventory=INVENTORY)


def request(host, url, *args):
    """HTTPS against the internal CA (no -k: the certificate must verify) from `host`."""
    return curl(host, url, "--cacert", CA, "--max-time", "10", *args)


def targets(host, auth):
    status, body = request(host, "https://secure-monitoring:9090/api/v1/targets?state=active", "-u", auth)
    assert status == "200", body
    return json.loads(body)["data"]["activeTargets"]


def wait_all_up(host, auth, since=0.0, seconds=90):
    """Every target up, scraped after `since` (epoch seconds): the targets as last seen."""
    deadline = time.monotonic() + seconds
    while True:
        found = targets(host, auth)
        fresh = [t for t in found if t["health"] == "up"
                 and calendar.timegm(time.strptime(t["lastScrape"][:19], "%Y-%m-%dT%H:%M:%S")) >= since]
        if {(t["labels"]["job"], t["labels"]["instance"]) for t in found} == EXPECTED_TARGETS and len(fresh) == len(found):
            return found
        if time.monotonic() > deadline:
            pytest.fail("targets not all up after %d s: %s" % (seconds, [(t["scrapeUrl"], t["health"], t["lastError"]) for t in found]))
        time.sleep(3)


def test_every_target_up_over_tls_with_credentials(host):
    admin = "admin:" + users()["admin"]
    found = wait_all_up(host, admin)
    for target in found:
        https = target["labels"]["job"] != "backend"  # the application's own endpoint stays as it is
        assert target["scrapeUrl"].startswith("https://" if https else "http://"), target["scrapeUrl"]
    config = yaml.safe_load(json.loads(request(host, "https://secure-monitoring:9090/api/v1/status/config", "-u", admin)[1])["data"]["yaml"])
    for job in config["scrape_configs"]:
        if job["job_name"] != "backend":
            assert job["tls_config"] == {"ca_file": CA, "insecure_skip_verify": False}, job
    status, body = request(host, "https://secure-monitoring:9090/api/v1/alertmanagers", "-u", admin)
    assert [a["url"] for a in json.loads(body)["data"]["activeAlertmanagers"]] == ["https://secure-monitoring:9093/api/v2/alerts"]


def credentials(port, users, grafana_password):
    """Grafana has its own admin account; the rest take the stack's scrape user (redis_exporter only it)."""
    return "admin:" + grafana_password if port == 3000 else "prometheus:" + users["prometheus"]


@pytest.mark.parametrize("target,port,path", PROTECTED)
def test_endpoint_refuses_without_credentials_and_plain_http(host, target, port, path):
    url = f"https://{target}:{port}{path}"
    assert request(host, url)[0] == "401"
    assert request(host, url, "-u", "admin:wrong")[0] == "401"
    assert request(host, url, "-u", credentials(port, users(), group_vars("grafana")["grafana_admin_password"]))[0] == "200"
    status, body = curl(host, f"http://{target}:{port}{path}", "--max-time", "10")
    assert status != "200" and "# TYPE" not in body and "activeTargets" not in body


def test_grafana_queries_prometheus_and_alertmanager_over_https_with_credentials(host):
    auth = "admin:" + group_vars("grafana")["grafana_admin_password"]
    for uid, url in (("arq-prometheus", "https://secure-monitoring:9090"), ("arq-alertmanager", "https://secure-monitoring:9093")):
        status, body = request(host, f"https://secure-monitoring:3000/api/datasources/uid/{uid}", "-u", auth)
        assert status == "200" and json.loads(body)["url"] == url, body
        status, body = request(host, f"https://secure-monitoring:3000/api/datasources/uid/{uid}/health", "-u", auth)
        assert status == "200" and json.loads(body)["status"] == "OK", body
        assert "basicAuthPassword" not in body


@pytest.mark.parametrize("source,exporters,allowed", [
    ("secure-monitoring", [("secure-db", 9100), ("secure-db", 9187), ("secure-cache", 9100), ("secure-cache", 9121)], True),
    ("secure-db", [("secure-cache", 9100), ("secure-cache", 9121), ("secure-monitoring", 9100)], False),
])
def test_firewall_lets_only_the_prometheus_host_reach_the_exporters(source, exporters, allowed):
    client = instance(source)
    for target, port in exporters:
        run = client.run("curl -sS -o /dev/null --max-time 5 -k https://%s:%s/metrics", target, str(port))
        if allowed:
            assert run.rc == 0, (target, port, run.stderr)
        else:
            assert run.rc == 7, (target, port, run.rc, run.stderr)  # connection reset at once
    # Prometheus, Alertmanager and Grafana: only from the monitoring hosts (and the admin networks).
    for port in (9090, 9093, 3000):
        run = client.run("curl -sS -o /dev/null --max-time 5 -k https://secure-monitoring:%s/", str(port))
        assert (run.rc == 0) == allowed, (port, run.rc, run.stderr)


@pytest.mark.parametrize("name", ["secure-monitoring", "secure-db", "secure-cache"])
def test_no_secret_where_others_can_read_it(name):
    """No world-readable file, unit file, or process command line holds an inventory secret."""
    target = instance(name)
    patterns = "/root/.secret-patterns"
    found = secrets()
    target.run_test("umask 077; printf '%%s\\n'" + " %s" * len(found) + " > " + patterns, *found)
    try:
        files = target.run(
            "find / /run /tmp -xdev \\( -path /proc -o -path /sys -o -path %s \\) -prune -o -type f -perm -o=r -print0"
            " | xargs -0 grep -l -F -f %s", patterns, patterns)
        assert files.stdout == "", files.stdout
        cmdlines = target.run("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done | grep -F -f %s", patterns)
        assert cmdlines.stdout == "", "a secret on a command line"
        units = target.run("grep -l -F -f %s /etc/systemd/system/*.service", patterns)
        assert units.stdout == "", units.stdout
    finally:
        target.run("rm -f %s", patterns)


def run_check():
    """playbooks/check.yml (arq.monitoring.check) on the scenario's inventory: (exit code, output)."""
    run = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "playbooks", "check.yml")],
        capture_output=True, text=True, timeout=300, check=False)
    return run.returncode, run.stdout + run.stderr


def test_check_playbook_passes_then_names_a_target_down(host):
    rc, out = run_check()
    assert rc == 0, out[-3000:]
    assert "9 targets up" in out and "Successfully queried the Prometheus API" in out, out[-3000:]
    db = instance("secure-db")
    db.run_test("systemctl stop node_exporter")
    try:
        admin = "prometheus:" + users()["prometheus"]
        deadline = time.monotonic() + 60
        while not [t for t in targets(host, admin) if t["labels"]["instance"] == "secure-db"
                   and t["labels"]["job"] == "node" and t["health"] == "down"]:
            assert time.monotonic() < deadline, "node/secure-db not down within 60 s"
            time.sleep(3)
        rc, out = run_check()
        assert rc != 0 and "node/secure-db is down" in out, out[-3000:]
    finally:
        db.run_test("systemctl start node_exporter")
    wait_all_up(host, "prometheus:" + users()["prometheus"], since=time.time())


def test_tags_select_prometheus_configuration_and_keep_tls(host):
    """--tags prometheus_configure on the converged secure stack: the TLS facts still reach every
    role (the tls role runs under any tag), Prometheus' files are checked, nothing else runs and
    nothing changes."""
    run = subprocess.run(
        ["ansible-playbook", "-i", INVENTORY, "--tags", "prometheus_configure",
         os.environ["MOLECULE_SCENARIO_DIRECTORY"] + "/converge.yml"],
        capture_output=True, text=True, timeout=600, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0 and recap_changed(out) == 0, out[-3000:]
    assert "$ANSIBLE_VAULT" not in out and not [s for s in secrets() if s in out]
    ran = task_results(out, "secure-monitoring")
    assert ran.get("Write the configuration of prometheus") == "ok", ran
    assert not [name for name in ran if name.endswith(("of node_exporter", "of grafana", "of alertmanager"))
                and name.startswith(("Write", "Install"))], ran


@pytest.mark.parametrize("name", ["secure-monitoring", "secure-db", "secure-cache"])
def test_no_vault_ciphertext_in_any_file(name):
    """Every secret is an inline !vault value: the services got plaintext, never the ciphertext."""
    found = instance(name).run("grep -rlI -F '$ANSIBLE_VAULT' /etc /var/lib /usr/local 2>/dev/null")
    assert found.stdout == "", found.stdout


def test_alertmanager_delivers_to_the_vaulted_webhook_url(host):
    """An alert posted to Alertmanager (with its vaulted admin password) reaches the sink at the
    vaulted URL's path: Alertmanager read the plaintext URL from its secret file."""
    url = group_vars("all")["alertmanager_secrets"]["webhook_url"]
    path = url.split("://", 1)[1].split("/", 1)[1].split("#")[0]
    alert = json.dumps([{"labels": {"alertname": "VaultedWebhook", "severity": "critical"}}])
    status, body = request(host, "https://secure-monitoring:9093/api/v2/alerts", "-u", "admin:" + users()["admin"],
                           "-H", "Content-Type: application/json", "-d", alert)
    assert status == "200", body
    deadline = time.monotonic() + 60
    while True:
        sink = host.file("/var/lib/webhook-sink/received.jsonl")
        lines = [json.loads(line) for line in sink.content_string.splitlines()] if sink.exists else []
        delivered = [n for n in lines if n["groupLabels"].get("alertname") == "VaultedWebhook"]
        if delivered:
            break
        assert time.monotonic() < deadline, "VaultedWebhook not delivered within 60 s"
        time.sleep(2)
    assert delivered[0]["_path"] == "/" + path
