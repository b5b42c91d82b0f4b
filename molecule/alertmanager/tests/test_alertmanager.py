"""Alertmanager cluster: routing, silences across peers, delivery to a webhook, safe changes."""
import json
import os
import re
import sys
import tempfile
import time
import uuid

import pytest
import yaml

sys.path.insert(0, os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared"))
from checks import assert_hardened_service, assert_upgraded_once, converge, curl, recap_changed, scrape, task_results, value  # noqa: E402

API = "http://127.0.0.1:9093/api/v2"
SINK = "/var/lib/webhook-sink/received.jsonl"
SINK_HOST = "alertmanager-d12"
# The service core's tasks and handlers (roles/_service) that the tests look for in a run's output.
RELEASE = "Install the release and the system account of alertmanager"
WRITE = "Write the configuration of alertmanager"
UP = "Start alertmanager and wait until it answers"
RESTART = "Restart alertmanager"
RELOAD_REQUEST = "Ask over HTTP for a reload of alertmanager"
RELOAD_WAIT = "Wait for the new configuration to load in alertmanager"
HARDENING = {
    "ProtectSystem": "strict",
    "ProtectProc": "invisible",
    "UMask": "0077",
    "ReadWritePaths": "/var/lib/alertmanager",
    # The cluster's gossip picks its advertise address from the interfaces (netlink).
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_NETLINK AF_UNIX",
    "CapabilityBoundingSet": "",
    "User": "alertmanager",
}


def api(host, path, payload=None):
    args = ("-X", "POST", "-H", "Content-Type: application/json", "-d", json.dumps(payload)) if payload else ()
    status, body = curl(host, API + path, *args)
    assert status == "200", body
    return json.loads(body) if body.strip() else None


def notifications(host, alertname):
    sink = host.file(SINK)
    lines = sink.content_string.splitlines() if sink.exists else []
    return [n for n in map(json.loads, lines) if n["groupLabels"].get("alertname") == alertname]


def post_alerts(host, *alerts):
    api(host, "/alerts", [{"labels": labels, "annotations": {"summary": "molecule"}} for labels in alerts])


def test_upgrade_kept_silences_and_notification_log(host):
    """0.28.1 -> 0.33.1 in place on both peers: one restart each, the silence made before is still
    active, and the alert notified before is not notified again (its notification log entry)."""
    assert_upgraded_once(host, "alertmanager", "0.33.1", scrape(host, 9093))
    if host.backend.host != SINK_HOST:
        pytest.skip("state checked once, on " + SINK_HOST)
    kept = json.loads(host.file("/var/tmp/alertmanager-upgrade.json").content_string)["silence"]
    other = host.get_host("ansible://alertmanager-d13", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    for peer in (host, other):
        assert [s["status"]["state"] for s in api(peer, "/silences") if s["id"] == kept] == ["active"]
    assert len(notifications(host, "UpgradeNotified")) == 1
    # Group wait (10s) and the second peer's wait (15s) have passed well before 35 s.
    deadline = time.monotonic() + 35
    while time.monotonic() < deadline:
        post_alerts(host, {"alertname": "UpgradeNotified", "severity": "warning"})
        time.sleep(3)
    assert len(notifications(host, "UpgradeNotified")) == 1, "notified again: the notification log was lost"


def test_enabled_running_and_hardened(host):
    assert_hardened_service(host, "alertmanager", HARDENING)


def test_ready_and_clustered(host):
    assert curl(host, "http://127.0.0.1:9093/-/ready")[0] == "200"
    for _ in range(60):  # the gossip settles within a minute of a start
        status = api(host, "/status")
        if status["cluster"]["status"] == "ready":
            break
        time.sleep(1)
    assert status["cluster"]["status"] == "ready"
    assert len(status["cluster"]["peers"]) == 2
    route = yaml.safe_load(status["config"]["original"])["route"]
    assert route["group_by"] == ["alertname", "severity"] and route["receiver"] == "default"
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("10s", "10s", "1h")
    assert "s3cret" not in status["config"]["original"]


def test_secret_only_in_a_file_alertmanager_reads(host):
    secret = host.file("/etc/alertmanager/secrets/webhook_url")
    assert (secret.mode, secret.user, secret.group) == (0o640, "root", "alertmanager")
    assert "s3cret" not in host.file("/etc/alertmanager/alertmanager.yml").content_string
    assert "s3cret" not in host.file("/etc/systemd/system/alertmanager.service").content_string
    assert "s3cret" not in host.check_output("ps -eo args")


def test_silence_created_on_one_peer_shows_on_the_other(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("created once")
    comment = "molecule-" + uuid.uuid4().hex
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    api(host, "/silences", {"matchers": [{"name": "alertname", "value": "Silenced", "isRegex": False}],
                            "startsAt": now, "endsAt": end, "createdBy": "molecule", "comment": comment})
    other = host.get_host("ansible://alertmanager-d13", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])
    for _ in range(30):
        if any(s["comment"] == comment for s in api(other, "/silences")):
            return
        time.sleep(1)
    pytest.fail("the silence did not reach the other peer within 30 s")


def test_delivery_grouped_once_and_inhibition(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("delivered once")
    run = uuid.uuid4().hex[:8]
    delivered, inhibited = f"Delivered{run}", f"Inhibited{run}"
    start = time.monotonic()
    deadline = start + 60
    first = None
    while time.monotonic() < deadline:
        # Keep the alerts firing, as Prometheus would.
        post_alerts(host, {"alertname": delivered, "severity": "warning", "instance": "a"},
                    {"alertname": delivered, "severity": "warning", "instance": "b"},
                    {"alertname": inhibited, "severity": "critical", "instance": "a"},
                    {"alertname": inhibited, "severity": "warning", "instance": "a"})
        got = notifications(host, delivered)
        if got and first is None:
            first = time.monotonic() - start
            print(f"delivery latency: {first:.1f} s")
        if first is not None and time.monotonic() - start > first + 25:
            break
        time.sleep(2)
    assert first is not None, "no notification reached the webhook within 60 s"
    got = notifications(host, delivered)
    # One group (alertname + severity) with both instances, sent once: the repeat interval is 1h
    # and nothing changed after the first notification.
    assert len(got) == 1, got
    assert got[0]["groupLabels"] == {"alertname": delivered, "severity": "warning"}
    assert sorted(a["labels"]["instance"] for a in got[0]["alerts"]) == ["a", "b"]
    severities = [n["groupLabels"]["severity"] for n in notifications(host, inhibited)]
    assert severities == ["critical"], "the warning twin of a critical alert must be inhibited"


BAD_INPUT = {
    "unknown receiver type": ({"alertmanager_receivers": [{"name": "default", "pigeon_configs": [{}]}]}, "pigeon_configs"),
    "route to a missing receiver": ({"alertmanager_route": {"receiver": "nobody"}}, "alertmanager_route.receiver 'nobody'"),
    "malformed duration": ({"alertmanager_route": {"receiver": "default", "group_wait": "ten seconds"}}, "alertmanager_route.group_wait"),
}


@pytest.mark.parametrize("extra_vars, message", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_fails_before_any_change(host, extra_vars, message):
    if host.backend.host != SINK_HOST:
        pytest.skip("checked once")
    config = host.file("/etc/alertmanager/alertmanager.yml").content_string
    rc, out = converge(SINK_HOST, extra_vars)
    assert rc != 0 and message in out
    assert recap_changed(out) == 0
    assert host.file("/etc/alertmanager/alertmanager.yml").content_string == config


def test_invalid_template_is_refused_and_the_live_config_keeps_serving(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("checked once")
    template = host.file("/etc/alertmanager/templates/arq.tmpl").content_string
    rc, out = converge(SINK_HOST, "alertmanager_notification_templates:\n  arq.tmpl: !unsafe '{{ define \"x\" }}{{ .Status }{{ end }}'\n")
    assert rc != 0 and "unexpected" in out  # amtool's own message
    assert host.file("/etc/alertmanager/templates/arq.tmpl").content_string == template
    assert curl(host, "http://127.0.0.1:9093/-/ready")[0] == "200"
    assert api(host, "/status")["cluster"]["status"] == "ready"


def running(host):
    """Alertmanager's main PID, its start time and its last successful config load."""
    body = scrape(host, 9093)
    return {
        "pid": host.check_output("systemctl show -p MainPID --value alertmanager"),
        "started": value(body, "process_start_time_seconds"),
        "reload_ok": value(body, "alertmanager_config_last_reload_successful"),
        "loaded": value(body, "alertmanager_config_last_reload_success_timestamp_seconds"),
    }


# A route and a Slack receiver whose values hold quotes, "#" and ":", its webhook URL (with a
# fragment) in a secret file; the rest as converge.yml has it.
PAGER = 'ops: "night" #2'
SLACK = {"api_url_file": "/etc/alertmanager/secrets/slack_url", "channel": "#ops",
         "text": 'He said "down" at 10:30 # not a comment', "title": "alert: 'page'"}
SLACK_URL = "http://127.0.0.1:5001/slack?team=ops&x=1#frag"
CHANGED = {
    "alertmanager_secrets": {"webhook_url": "http://alertmanager-d12:5001/hook?token=s3cret", "slack_url": SLACK_URL},
    "alertmanager_receivers": [
        {"name": "default", "webhook_configs": [{"url_file": "/etc/alertmanager/secrets/webhook_url", "send_resolved": False}]},
        {"name": PAGER, "slack_configs": [SLACK]},
    ],
    "alertmanager_route": {"receiver": "default", "group_by": ["alertname", "severity"], "group_wait": "10s",
                           "group_interval": "10s", "repeat_interval": "1h",
                           "routes": [{"receiver": PAGER, "matchers": ['severity="page"']}]},
}


def test_config_change_is_applied_by_reload_not_restart(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("changed once")
    before = running(host)
    try:
        rc, out = converge(SINK_HOST, CHANGED)
        assert rc == 0, out[-3000:]
        after = running(host)
        assert (after["pid"], after["started"]) == (before["pid"], before["started"]), "restarted, not reloaded"
        # Through the core's reload handler: POST /-/reload, then a newer successful load awaited.
        ran = task_results(out, SINK_HOST)
        assert ran.get(RESTART) == "skipping", ran
        assert ran.get(RELOAD_REQUEST) == "changed", ran
        assert ran.get(RELOAD_WAIT) == "ok", ran
        assert after["reload_ok"] == 1 and after["loaded"] > before["loaded"]
        # What Alertmanager itself parsed (it prints secrets as <secret>): the values exactly.
        config = yaml.safe_load(api(host, "/status")["config"]["original"])
        assert config["route"]["routes"][0]["receiver"] == PAGER
        assert config["route"]["routes"][0]["matchers"] == ['severity="page"']
        slack = next(r for r in config["receivers"] if r["name"] == PAGER)["slack_configs"][0]
        assert {k: slack[k] for k in SLACK} == SLACK
        assert host.file("/etc/alertmanager/secrets/slack_url").content_string == SLACK_URL
    finally:
        rc, out = converge(SINK_HOST)
        assert rc == 0, out[-3000:]
    restored = running(host)
    assert (restored["pid"], restored["started"]) == (before["pid"], before["started"])
    assert restored["reload_ok"] == 1 and restored["loaded"] > after["loaded"]
    assert "routes" not in yaml.safe_load(api(host, "/status")["config"]["original"])["route"]
    assert not host.file("/etc/alertmanager/secrets/slack_url").exists


def test_a_stopped_service_gets_the_new_files_by_its_start_not_a_reload(host):
    """A configuration change for a service that is down: no reload is sent to it (it would fail);
    the run phase starts it, and it runs the new files."""
    if host.backend.host != SINK_HOST:
        pytest.skip("changed once")
    host.run("systemctl stop alertmanager")
    try:
        rc, out = converge(SINK_HOST, CHANGED)
        assert rc == 0, out[-3000:]
        ran = task_results(out, SINK_HOST)
        assert (ran.get(WRITE), ran.get(RELOAD_REQUEST), ran.get(UP)) == ("changed", "skipping", "changed"), ran
        config = yaml.safe_load(api(host, "/status")["config"]["original"])
        assert config["route"]["routes"][0]["receiver"] == PAGER
    finally:
        rc, out = converge(SINK_HOST)
        assert rc == 0, out[-3000:]
    assert "routes" not in yaml.safe_load(api(host, "/status")["config"]["original"])["route"]


def test_check_diff_shows_the_change_hides_the_secret_and_changes_nothing(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("checked once")
    before = running(host)
    config = host.file("/etc/alertmanager/alertmanager.yml").content_string
    rc, out = converge(SINK_HOST, CHANGED, "--check", "--diff")
    assert rc == 0 and recap_changed(out) > 0, out[-3000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    # The real tasks ran and the diff tells what a run would change: the new route and receiver,
    # and the new secret file by name only.
    assert re.search(r"^\+\s+(- )?receiver: 'ops: \"night\" #2'$", plain, re.M), plain[-3000:]
    assert re.search(r"^\+\s+slack_configs:$", plain, re.M), plain[-3000:]
    assert "/etc/alertmanager/secrets/slack_url (secret, not shown)" in plain
    assert SLACK_URL not in out and "team=ops" not in out
    ran = task_results(out, SINK_HOST)
    assert (ran.get(RELEASE), ran.get(WRITE), ran.get(UP)) == ("ok", "changed", "ok"), ran
    # Nothing changed on the host, nothing reloaded.
    assert host.file("/etc/alertmanager/alertmanager.yml").content_string == config
    assert not host.file("/etc/alertmanager/secrets/slack_url").exists
    assert running(host) == before


def test_configure_tag_writes_a_template_and_reloads_without_the_other_phases(host):
    if host.backend.host != SINK_HOST:
        pytest.skip("changed once")
    before = running(host)
    template = '{{ define "arq.title" }}[{{ .Status }}] {{ .CommonLabels.alertname }} (tagged){{ end }}'
    templates = write_unsafe_templates({"arq.tmpl": template})
    try:
        rc, out = converge(SINK_HOST, None, "-e", "@" + templates, "--tags", "alertmanager_configure")
        assert rc == 0, out[-3000:]
        ran = task_results(out, SINK_HOST)
        assert ran.get(WRITE) == "changed", ran
        assert ran.get(RELOAD_REQUEST) == "changed", ran
        # The install and run phases are left out.
        for task in (RELEASE, UP):
            assert task not in ran, ran
        after = running(host)
        assert after["pid"] == before["pid"] and after["reload_ok"] == 1 and after["loaded"] > before["loaded"]
        assert host.file("/etc/alertmanager/templates/arq.tmpl").content_string == template
    finally:
        os.unlink(templates)
        rc, out = converge(SINK_HOST)
        assert rc == 0, out[-3000:]
    assert "(tagged)" not in host.file("/etc/alertmanager/templates/arq.tmpl").content_string
    assert running(host)["pid"] == before["pid"]


def write_unsafe_templates(templates):
    """A vars file setting alertmanager_notification_templates as !unsafe strings (they hold {{ }})."""
    handle = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    with handle:
        handle.write("alertmanager_notification_templates:\n")
        for name, text in templates.items():
            handle.write("  %s: !unsafe %s\n" % (name, json.dumps(text)))
    return handle.name
