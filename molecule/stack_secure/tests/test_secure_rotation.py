"""Runs last (it changes every password): rotation and early renewal in one run of
ansible-playbook -v, whose output must carry no secret, old or new."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from test_secure import INVENTORY, PROTECTED, group_vars, request, secrets, users, wait_all_up  # noqa: E402

testinfra_hosts = ["ansible://secure-monitoring"]


def run_site(*extra):
    args = ["ansible-playbook", "-v", "-i", INVENTORY, *extra]
    run = subprocess.run(args + [os.environ["MOLECULE_SCENARIO_DIRECTORY"] + "/converge.yml"],
                         capture_output=True, text=True, timeout=900, check=False)
    return run.returncode, run.stdout + run.stderr


def test_rotating_every_password_and_renewing_certificates(host, tmp_path):
    """New passwords everywhere and certificates renewed early: all targets up, old passwords refused."""
    old_users, old_grafana = users(), group_vars("grafana")["grafana_admin_password"]
    new_users = {name: password + " rotated" for name, password in old_users.items()}
    rotated = {
        "arq_monitoring_web_users": new_users,
        "postgres_exporter_db_password": "pg:rotated#2",
        "redis_exporter_redis_password": "redis-rotated-3",
        "grafana_admin_password": "grafana rotated #4",
        # Renew every certificate now: "expiring within 400 days".
        "tls_cert_days": 500, "tls_renew_days": 400,
    }
    passwords = [*new_users.values(), *(v for k, v in rotated.items() if k.endswith("_password"))]
    extra = tmp_path / "rotated.yml"
    extra.write_text(json.dumps(rotated))
    serial = host.check_output("openssl x509 -noout -serial -in /etc/node_exporter/tls.crt")
    started = time.time()
    rc, out = run_site("-e", "@" + str(extra), os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "prepare.yml"))
    assert rc == 0, out[-3000:]
    leaked = [i for i, secret in enumerate(secrets() + passwords) if secret in out]
    assert leaked == [], "secret(s) %s in the ansible-playbook -v output" % leaked
    assert "$ANSIBLE_VAULT" not in out
    renewed = [line for line in out.splitlines() if "certificate" in line or line.startswith(("changed:", "ok:", "skipping:"))]
    assert host.check_output("openssl x509 -noout -serial -in /etc/node_exporter/tls.crt") != serial, "\n".join(renewed[:80])
    wait_all_up(host, "admin:" + new_users["admin"], since=started + 1)
    for target, port, path in PROTECTED:
        url = f"https://{target}:{port}{path}"
        for user in old_users:
            assert request(host, url, "-u", f"{user}:{old_users[user]}")[0] == "401", (url, user)
    grafana = "https://secure-monitoring:3000/api/user"
    assert request(host, grafana, "-u", "admin:" + old_grafana)[0] == "401"
    assert request(host, grafana, "-u", "admin:grafana rotated #4")[0] == "200"

