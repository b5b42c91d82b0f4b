"""Helpers the scenarios' testinfra tests share: HTTP from inside an instance, failing runs."""
import json
import os
import re
import subprocess
import tempfile

import pytest
import yaml


def groups(host):
    """The instance's groups in the scenario's inventory."""
    return host.ansible.get_variables()["group_names"]


def curl(host, url, *args):
    """HTTP status and body of a request made inside the instance (arguments are quoted)."""
    cmd = host.run("curl -sS -o /tmp/body -w %s" + " %s" * (len(args) + 1), "%{http_code}", *args, url)
    return cmd.stdout.strip(), host.file("/tmp/body").content_string if cmd.rc == 0 else cmd.stderr


def scrape(host, port, auth=None, path="/metrics"):
    """The /metrics (or `path`) body of an exporter on the instance: HTTPS with basic auth when auth=(user, password)."""
    if auth:
        status, body = curl(host, f"https://127.0.0.1:{port}{path}", "-k", "-u", ":".join(auth))
    else:
        status, body = curl(host, f"http://127.0.0.1:{port}{path}")
    assert status == "200", body[:300]
    return body


def value(body, name, labels=""):
    """The first sample of a metric whose label set contains `labels`."""
    match = re.search(r"^%s(\{[^}]*%s[^}]*\})? (\S+)$" % (re.escape(name), re.escape(labels)), body, re.M)
    assert match, "%s{%s} missing" % (name, labels)
    return float(match.group(2))


# The highest `systemd-analyze security` exposure (0.0 safest to 10.0) any unit may reach. systemd
# rates up to 4.9 "OK"; the units are held to what their hardening reaches (docs/security.md), so a
# directive loosened by mistake fails every scenario that runs the unit.
MAX_EXPOSURE = 1.4


def assert_hardened_service(host, unit, expected):
    """The unit is enabled and running, its systemd properties are `expected`, its user has no login
    shell, and systemd-analyze rates it at most MAX_EXPOSURE."""
    service = host.service(unit)
    assert service.is_enabled and service.is_running
    props = dict(line.split("=", 1) for line in host.check_output("systemctl show %s -p %s", unit, ",".join(expected)).splitlines())
    assert props == expected
    assert host.user(expected["User"]).shell == "/usr/sbin/nologin"
    # --threshold (0-100, ten times the exposure shown) makes systemd-analyze itself exit 1 above it.
    run = host.run("systemd-analyze security --no-pager --threshold=%s %s.service", str(round(MAX_EXPOSURE * 10)), unit)
    overall = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", run.stdout)
    assert overall, run.stdout + run.stderr
    exposed = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("\u2717")]
    print("\n%s on %s: systemd-analyze security exposure %s %s" % (unit, host.backend.host, overall.group(1), overall.group(2)))
    assert run.rc == 0 and float(overall.group(1)) <= MAX_EXPOSURE and overall.group(2) in ("PERFECT", "SAFE", "OK"), (
        "%s: exposure %s %s above %s; exposed: %s" % (unit, overall.group(1), overall.group(2), MAX_EXPOSURE, " ".join(exposed)))


def converge(limit, extra_vars=None, *args):
    """Run the scenario's converge.yml on one host with extra vars: (exit code, all output).

    extra_vars is a dict, or YAML text (for values that need !unsafe); args go to
    ansible-playbook as they are (--check, --diff, --tags ...).
    """
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as extra:
        extra.write(extra_vars if isinstance(extra_vars, str) else json.dumps(extra_vars or {}))
        extra.flush()
        run = subprocess.run(
            ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--limit", limit,
             "-e", "@" + extra.name, *args, os.environ["MOLECULE_SCENARIO_DIRECTORY"] + "/converge.yml"],
            capture_output=True, text=True, timeout=300, check=False,
        )
    return run.returncode, run.stdout + run.stderr


def task_results(output, host):
    """{task or handler name: ok, changed, skipping, failed or fatal} of the host in a run's output."""
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    blocks = re.findall(r"^(?:TASK|RUNNING HANDLER) \[(.*?)\][ *]*$(.*?)(?=^TASK \[|^RUNNING HANDLER \[|^PLAY )",
                        output, re.M | re.S)
    found = {}
    for name, body in blocks:
        match = re.search(r"^(ok|changed|skipping|failed|fatal): \[%s\]" % re.escape(host), body, re.M)
        if match:
            found[name.split(" : ")[-1]] = match.group(1)
    return found


def tasks_run(output, host):
    """Names of the tasks (and handlers) that ran, ok or changed, on the host."""
    return [name for name, status in task_results(output, host).items() if status in ("ok", "changed")]


def recap_changed(output):
    """The changed= count of a run's recap, summed over its hosts (a failed preflight leaves it at 0)."""
    return sum(int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1]))


def assert_refuses_without_credentials(host, port):
    """HTTPS with basic auth: no or wrong credentials get 401, plain HTTP gets no metrics."""
    assert curl(host, f"https://127.0.0.1:{port}/metrics", "-k")[0] == "401"
    assert curl(host, f"https://127.0.0.1:{port}/metrics", "-k", "-u", "prometheus:wrong")[0] == "401"
    assert curl(host, f"http://127.0.0.1:{port}/metrics")[0] == "400"


def assert_not_leaked(host, unit, secrets):
    """None of the secrets is in the unit file, any process's command line or the journal."""
    unit_text = host.file(f"/etc/systemd/system/{unit}.service").content_string
    processes = host.check_output("ps -eo args")
    journal = host.run("journalctl --no-pager -o cat").stdout
    for secret in secrets:
        assert secret not in unit_text and secret not in processes and secret not in journal


def assert_upgraded_once(host, unit, version, metrics=None):
    """On a host of group "upgrade" (molecule/_shared/upgrade.yml), the unit runs the new version
    (its *_build_info in `metrics`, when given), started exactly once since the older release ran,
    and never failed or restarted on its own."""
    if "upgrade" not in groups(host):
        pytest.skip("installed fresh")
    if metrics is not None:
        assert re.search(r'_build_info\{[^}]*version="v?%s' % re.escape(version), metrics), metrics[:500]
    older = host.file("/var/tmp/arq-upgrade-from").content_string.strip()
    assert older and older != version
    cursor = host.file("/var/tmp/arq-upgrade-cursor").content_string.strip()
    log = host.check_output("journalctl --no-pager -o cat -u %s --after-cursor=%s", unit, cursor)
    assert len(re.findall(r"^Started ", log, re.M)) == 1, log
    assert not re.search(r"^(Failed|.*failed with result)", log, re.M), log
    assert host.check_output("systemctl show -p NRestarts --value %s", unit) == "0"


# The tasks that may refuse a setting: the role's argument spec, then the core's preflight.
PREFLIGHT = ("Validating arguments against arg spec", "Check the ")


class _Unsafe(str):
    """A value Ansible must not template (a notification template, for instance)."""


yaml.SafeDumper.add_representer(_Unsafe, lambda dumper, text: dumper.represent_scalar("!unsafe", str(text)))


def _unsafe(value):
    if isinstance(value, str):
        return _Unsafe(value) if "{{" in value or "{%" in value else value
    if isinstance(value, dict):
        return {key: _unsafe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unsafe(item) for item in value]
    return value


def snapshot(host, paths, unit):
    """Content, owner and mode of every file under the paths, the accounts, and the unit's start."""
    listing = host.run("find %s -xdev -printf '%%p %%m %%u %%g\\n' | sort; find %s -xdev -type f -print0 | sort -z"
                       " | xargs -0 -r sha256sum; sha256sum /etc/passwd /etc/group" % (" ".join(paths), " ".join(paths)))
    started = host.check_output("systemctl show -p ActiveEnterTimestampMonotonic,MainPID,NRestarts %s" % unit)
    return listing.stdout + started


def refusal_test(instance, role, cases, paths):
    """The scenario's test of a fixed table of cases, run once, on the named instance."""
    def test_bad_settings_are_refused_before_any_change(host):
        if host.backend.host != instance:
            pytest.skip("checked once, on " + instance)
        assert_refused_before_any_change(host, role, cases, paths, role)
    return test_bad_settings_are_refused_before_any_change


def assert_refused_before_any_change(host, role, cases, paths, unit):
    """Each case {name: (settings, variable)} is refused, in check mode and for real, before anything
    changes on the host, naming the variable; a valid run of the role afterwards changes nothing.

    The cases run in one ansible-playbook call per mode, each as an alias of the instance (its
    connection and groups) with its settings as facts; the instance itself then runs the role.
    """
    real = host.backend.host
    with open(os.environ["MOLECULE_INVENTORY_FILE"]) as handle:
        inventory = yaml.safe_load(handle)
    groups = [name for name, group in inventory.items()
              if name not in ("all", "ungrouped") and real in ((group or {}).get("hosts") or {})]
    hostvars = dict(inventory["all"]["hosts"][real] or {}, ansible_host=real)
    aliases = {f"{real}-refused-{index}": dict(hostvars, refusal=_unsafe(settings))
               for index, (settings, _variable) in enumerate(cases.values())}
    extra = {"all": {"hosts": aliases}, **{name: {"hosts": dict.fromkeys(aliases)} for name in groups}}
    before = snapshot(host, paths, unit)
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as handle:
        yaml.safe_dump(extra, handle)
        handle.flush()
        for mode in (["--check", "--diff"], []):
            run = subprocess.run(
                ["ansible-playbook", "-i", os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]), "-i", handle.name,
                 "--limit", ",".join([real, *aliases]), "-e", "refusal_role=" + role, *mode,
                 os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "_shared", "refusals.yml")],
                capture_output=True, text=True, timeout=600, check=False,
                env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
            assert "{" in run.stdout, run.stderr[-3000:]
            report = json.loads(run.stdout[run.stdout.index("{"):])
            results = [(task["task"]["name"], task["hosts"]) for play in report["plays"] for task in play["tasks"]]
            for alias, (name, (_settings, variable)) in zip(aliases, cases.items()):
                seen = [(task, answer[alias]) for task, answer in results if alias in answer]
                failed = [(task, answer) for task, answer in seen if answer.get("failed")]
                assert failed, f"{name} {mode}: not refused"
                task, answer = failed[0]
                assert task.split(" : ")[-1].startswith(PREFLIGHT), f"{name} {mode}: failed at {task!r}, not in preflight: {answer.get('msg')}"
                assert variable in answer.get("msg", ""), f"{name} {mode}: {variable} not named: {answer.get('msg')}"
                assert not any(result.get("changed") for _task, result in seen), f"{name} {mode}: something changed"
            stats = report["stats"]
            changed = [task for task, answer in results if answer.get(real, {}).get("changed")]
            assert stats[real]["failures"] == 0 and stats[real]["changed"] == 0, (mode, stats[real], changed, run.stderr[-2000:])
            assert snapshot(host, paths, unit) == before, f"the host changed ({mode or 'normal mode'})"
    return len(cases)
