"""The alertmanager role's alertmanager.yml, rendered from the role's own data from receivers
whose values hold quotes, `#`, `:` and YAML's other special characters: amtool accepts it, reads
the receiver names exactly, and the file reads back exactly the values given."""
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.arq.monitoring.plugins.filter.alertmanager_config_errors import alertmanager_config_errors

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles/alertmanager"
PLAY = f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: ["{ROLE}/defaults/main.yml", "{ROLE}/vars/main.yml"]
  tasks:
    - ansible.builtin.copy:
        content: >-
          {{{{ (__alertmanager_files | selectattr('directory', '==', __alertmanager_config_dir)
               | first).content['alertmanager.yml'] }}}}
        dest: "{{{{ out }}}}"
        mode: "0600"
"""
# As a user writes them in group_vars: Alertmanager's own templates need !unsafe.
VALUES = r"""
alertmanager_route:
  receiver: 'ops: "night" #2'
  group_by: [alertname, severity]
  routes:
    - receiver: "slack #ops"
      matchers: ['severity="page"', 'team=~"db|cache"']
alertmanager_receivers:
  - name: 'ops: "night" #2'
    webhook_configs:
      - url: "http://127.0.0.1:5001/hook?team=ops&x=1#frag"
        send_resolved: false
  - name: "slack #ops"
    slack_configs:
      - api_url: "https://hooks.slack.invalid/services/T0/B0/x#y"
        channel: "#ops"
        username: "alert: bot"
        title: !unsafe '{{ template "arq.title" . }}'
        text: 'He said "down" at 10:30 # not a comment'
        pretext: "null"
        footer: "- dash: *no alias* &no anchor !no tag %pct @at `tick` {no: map} [no, list]"
        fallback: "  padded: 'single' and \"double\"  "
        color: "yes"
  - name: email
    email_configs:
      - to: '"Ops Team" <ops@example.com>'
        from: "alerts@example.com"
        smarthost: "smtp.example.com:587"
        auth_username: "user: one"
        auth_password_file: /etc/alertmanager/secrets/smtp
        headers:
          Subject: !unsafe '[ALERT] "{{ .CommonLabels.alertname }}": firing #1'
        text: "line one\nline two: 'quoted' # and a hash"
"""


class UnsafeAsText(yaml.SafeLoader):
    """Reads Ansible's !unsafe as the plain string it stands for."""


UnsafeAsText.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
GIVEN = yaml.load(VALUES, Loader=UnsafeAsText)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alertmanager")
    (tmp / "play.yml").write_text(PLAY)
    (tmp / "values.yml").write_text(VALUES)
    run = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(tmp / "play.yml"), "-e", "@" + str(tmp / "values.yml"),
         "-e", f"out={tmp}/alertmanager.yml", "-e", "ansible_python_interpreter={{ ansible_playbook_python }}"],
        cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")), capture_output=True, text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return tmp / "alertmanager.yml"


def test_amtool_accepts_it(rendered, amtool):
    run = subprocess.run([amtool, "check-config", str(rendered)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "3 receivers" in run.stdout


@pytest.mark.parametrize("labels, receiver", [
    (["severity=critical"], 'ops: "night" #2'),
    (["severity=page", "team=db"], "slack #ops"),
])
def test_amtool_reads_the_receiver_names_exactly(rendered, amtool, labels, receiver):
    run = subprocess.run([amtool, "config", "routes", "test", "--config.file", str(rendered),
                          "--verify.receivers", receiver, *labels], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == receiver


def test_values_read_back_exactly(rendered):
    config = yaml.safe_load(rendered.read_text())
    assert config["receivers"] == GIVEN["alertmanager_receivers"]
    assert config["route"] == GIVEN["alertmanager_route"]
    assert alertmanager_config_errors(config) == []
