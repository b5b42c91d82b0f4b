"""The service core refuses to be used directly: as a role, and through an entry point called
from a play instead of a service role. The message says what to use instead."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SPEC = """{name: node_exporter, description: x, version: 1.9.0, user: nobody, group: nogroup,
           exec: /bin/true, listen: ':9100'}"""
PLAYS = {
    "the role itself": "roles: [arq.monitoring._service]",
    "an entry point from a play": f"""tasks:
    - ansible.builtin.include_role:
        name: arq.monitoring._service
        tasks_from: preflight
      vars:
        _service: {SPEC}""",
}


@pytest.mark.parametrize("play", PLAYS.values(), ids=PLAYS.keys())
def test_direct_call_is_refused(tmp_path, play):
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"- hosts: localhost\n  connection: local\n  gather_facts: false\n  {play}\n")
    run = subprocess.run(["ansible-playbook", "-i", "localhost,", str(playbook),
                          "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")), timeout=300, check=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-2000:]
    assert "arq.monitoring._service is" in out and "internal" in out, out[-2000:]
    assert "changed=0" in out
