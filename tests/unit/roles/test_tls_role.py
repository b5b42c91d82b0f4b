"""The tls role on the controller: the CA once, a certificate per host with its names, issued
again only when it must be (names changed, expiring), and nothing changed otherwise."""
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PLAY = """
- hosts: web1
  gather_facts: false
  roles:
    - role: arq.monitoring.tls
  post_tasks:
    - ansible.builtin.copy:
        content: "{{ arq_monitoring_tls_cert }}"
        dest: "{{ tls_ca_dir }}/handed.crt"
        mode: "0600"
      delegate_to: localhost
      when: arq_monitoring_tls_cert is defined
"""


@pytest.fixture
def run(tmp_path):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "hosts").write_text(
        f"web1 ansible_connection=local ansible_host=10.0.0.21 ansible_python_interpreter={sys.executable}\n")
    ca_dir = tmp_path / "ca"

    def play(*options, **extra):
        result = subprocess.run(
            ["ansible-playbook", *options, "-i", str(tmp_path / "hosts"), str(tmp_path / "play.yml"),
             "-e", json.dumps({"tls_ca_dir": str(ca_dir), **extra})],
            capture_output=True, text=True, check=False, cwd=ROOT,
            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        return int(re.search(r"changed=(\d+)", result.stdout.split("PLAY RECAP")[-1]).group(1)), ca_dir
    return play


def certificate(path):
    return subprocess.run(["openssl", "x509", "-noout", "-text", "-serial", "-in", str(path)],
                          capture_output=True, text=True, check=True).stdout


def test_ca_and_host_certificate_then_idempotent(run):
    changed, ca = run("--check")  # a first run in check mode changes nothing and does not fail
    assert changed > 0 and not ca.exists()
    changed, ca = run()
    assert changed > 0
    assert stat.S_IMODE(ca.stat().st_mode) == 0o700
    assert stat.S_IMODE((ca / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((ca / "hosts" / "web1.key").stat().st_mode) == 0o600
    text = certificate(ca / "hosts" / "web1.crt")
    for name in ("DNS:web1", "DNS:localhost", "IP Address:10.0.0.21", "IP Address:127.0.0.1"):
        assert name in text
    subprocess.run(["openssl", "verify", "-CAfile", str(ca / "ca.crt"), str(ca / "hosts" / "web1.crt")], check=True,
                   capture_output=True)
    assert (ca / "handed.crt").read_text().strip() == (ca / "hosts" / "web1.crt").read_text().strip()
    assert run()[0] == 0


def test_issued_again_for_new_names_and_before_expiry_only(run):
    run()
    _changed, ca = run()
    serial = certificate(ca / "hosts" / "web1.crt").split("serial=")[1]
    run(tls_extra_sans=["DNS:web1.example.net"])
    renamed = certificate(ca / "hosts" / "web1.crt")
    assert "DNS:web1.example.net" in renamed and renamed.split("serial=")[1] != serial
    assert run(tls_extra_sans=["DNS:web1.example.net"])[0] == 0
    # 365-day certificate, renewal window of 400 days: due now, issued for 500 days.
    run(tls_extra_sans=["DNS:web1.example.net"], tls_cert_days=500, tls_renew_days=400)
    assert certificate(ca / "hosts" / "web1.crt").split("serial=")[1] != renamed.split("serial=")[1]
    assert run(tls_extra_sans=["DNS:web1.example.net"], tls_cert_days=500, tls_renew_days=400)[0] == 0
