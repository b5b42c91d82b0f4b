#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see galaxy.yml)
"""Tell in one round trip whether a service is still as the last complete run left it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: converged
short_description: Record a service's converged state; tell whether the host still matches it
description:
  - With O(record=true), at the end of a complete run of a role, writes a record of the service, with
    the digest of the settings it was asked for (from the P(arq.monitoring.inputs_digest#lookup)
    lookup), the owner, group, mode, size and modification time of every file it manages, its
    system users and groups, and its systemd units.
  - Otherwise compares the host with that record in one round trip (the digest, every recorded
    file and directory, so a file edited, replaced, removed or added under a recorded tree, the
    users and groups, whether each unit is active, enabled and without a pending daemon-reload,
    and whether the service answers O(health) over HTTP). The roles skip their other tasks when
    RV(converged) is true, which makes an idempotent re-run one module call per role and host.
  - The record is root-only (mode 0600 in a 0700 directory) and holds no secret.
  - Supports check mode (nothing is recorded in check mode).
version_added: 0.1.0
author: arq.monitoring developers
options:
  name:
    description: The service; its record is O(state_dir)/O(name).json.
    type: str
    required: true
  digest:
    description: Digest of what the role is asked for on this host.
    type: str
    required: true
  record:
    description: Write the record instead of comparing with it.
    type: bool
    default: false
  compare:
    description: When not recording, V(false) reports RV(converged=false) without comparing (a
      full run asked for), still returning RV(digest) for the record at the end of that run.
    type: bool
    default: true
  paths:
    description: Files and directories to record; a directory is recorded with everything under it.
    type: list
    elements: path
    default: []
  directories:
    description: Directories recorded by their own owner, group and mode only (data directories,
      directories other programs write to).
    type: list
    elements: path
    default: []
  users:
    description: System users to record (UID, primary group, home, shell).
    type: list
    elements: str
    default: []
  groups:
    description: System groups to record (GID).
    type: list
    elements: str
    default: []
  units:
    description: Systemd units that must be active and enabled; their unit files are recorded
      wherever systemd loads them from.
    type: list
    elements: str
    default: []
  health:
    description: When comparing, a GET the service must answer with 200 (one try, a few seconds).
    type: dict
    suboptions:
      url: {description: URL (certificates are not checked; it is the host's own listener)., type: str, required: true}
      user: {description: Basic-auth user., type: str, default: ""}
      password: {description: Basic-auth password., type: str, default: ""}
      content: {description: Regular expression the body must match., type: str, default: ""}
  state_dir:
    description: Directory of the records.
    type: path
    default: /var/lib/arq-monitoring
"""

EXAMPLES = r"""
- name: Compare node_exporter with what the last complete run left
  arq.monitoring.converged:
    name: node_exporter
    digest: "{{ lookup('arq.monitoring.inputs_digest', 'node_exporter_') }}"
    health: {url: "http://127.0.0.1:9100/metrics"}
  register: node_exporter_converged

- name: Record it at the end of a complete run
  arq.monitoring.converged:
    name: node_exporter
    digest: "{{ lookup('arq.monitoring.inputs_digest', 'node_exporter_') }}"
    record: true
    paths: [/usr/local/bin/node_exporter, /etc/node_exporter]
    users: [node-exp]
    groups: [node-exp]
    units: [node_exporter.service]
"""

RETURN = r"""
converged:
  description: The host matches the record and the digest, and the service runs and answers.
  returned: always
  type: bool
differs:
  description: What differs (empty when converged); at most a few paths are named.
  returned: always
  type: list
  elements: str
  sample: [/etc/node_exporter/web.yml changed]
digest:
  description: The digest given, for the record at the end of the run.
  returned: when not recording
  type: str
"""

import base64
import grp
import json
import os
import pwd
import re
import ssl
import stat
import tempfile
import urllib.request

from ansible.module_utils.basic import AnsibleModule

MAX_NAMED = 5
# What a record holds, checked when it is read back: anything else is not a record of this module.
LISTS = ("paths", "directories", "users", "groups", "units")
RECORD = dict({"digest": str, "fragments": dict, "state": dict}, **{key: list for key in LISTS})


def entry(path):
    """Fingerprint of one path: kind and attributes, size and mtime for files, target for links."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    attrs = [stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    if stat.S_ISLNK(st.st_mode):
        return ["link", os.readlink(path)]
    if stat.S_ISDIR(st.st_mode):
        return ["dir", *attrs]
    return ["file" if stat.S_ISREG(st.st_mode) else "other", *attrs, st.st_size, st.st_mtime_ns]


def fingerprint(paths, directories):
    """{path: fingerprint} for the paths (trees walked) and the directories (alone)."""
    found = {}
    for top in paths:
        found[top] = entry(top)
        if found[top] and found[top][0] == "dir":
            for root, dirs, files in os.walk(top):
                dirs.sort()
                for name in sorted(dirs + files):
                    path = os.path.join(root, name)
                    found[path] = entry(path)
    for path in directories:
        found[path] = entry(path)
    return found


def accounts(users, groups):
    found = {}
    for name in users:
        try:
            user = pwd.getpwnam(name)
            found["user " + name] = [user.pw_uid, user.pw_gid, user.pw_dir, user.pw_shell]
        except KeyError:
            found["user " + name] = None
    for name in groups:
        try:
            found["group " + name] = grp.getgrnam(name).gr_gid
        except KeyError:
            found["group " + name] = None
    return found


def snapshot(paths, directories, users, groups):
    """What a record holds of the host and a comparison reads again: the same function for both."""
    found = fingerprint(paths, directories)
    found.update(accounts(users, groups))
    return found


def unit_properties(module, units):
    """{unit: {property: value}} from one systemctl call."""
    if not units:
        return {}
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=Id,ActiveState,UnitFileState,NeedDaemonReload,FragmentPath", "--", *units])
    if rc:
        module.fail_json(msg="systemctl show failed: " + (err or out).strip())
    blocks = out.strip().split("\n\n")
    if len(blocks) != len(units):
        module.fail_json(msg="systemctl show gave %d answers for %d units: %s" % (len(blocks), len(units), out))
    return {unit: dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            for unit, block in zip(units, blocks)}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer other than 200: never follow it (nor send the credentials on)."""

    def redirect_request(self, *args, **kwargs):
        return None


def health_problem(health):
    """None if the service answers health.url with 200 (and the body matches), else why not."""
    request = urllib.request.Request(health["url"])
    if health.get("user"):
        token = base64.b64encode(("%s:%s" % (health["user"], health.get("password") or "")).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=5) as answer:
            status, body = answer.status, answer.read(1 << 20).decode("utf-8", "replace")
    except Exception as error:  # any failure to answer means: run the role's tasks
        return "%s does not answer: %s" % (health["url"], error)
    if status != 200:
        return "%s answers %s, not 200" % (health["url"], status)
    if health.get("content") and not re.search(health["content"], body):
        return "%s answers without %s" % (health["url"], health["content"])
    return None


def compare(module, record):
    p = module.params
    if record is None:
        return ["no record of a complete run"]
    if record.get("digest") != p["digest"]:
        return ["the settings or the collection changed"]
    now = snapshot(record["paths"], record["directories"], record["users"], record["groups"])
    changed = [path for path in sorted(set(now) | set(record["state"])) if now.get(path) != record["state"].get(path)]
    differs = ["%s changed" % path for path in changed[:MAX_NAMED]]
    if len(changed) > MAX_NAMED:
        differs.append("and %d more" % (len(changed) - MAX_NAMED))
    for unit, props in unit_properties(module, record["units"]).items():
        if props.get("ActiveState") != "active" or props.get("UnitFileState") != "enabled":
            differs.append("%s is %s and %s" % (unit, props.get("ActiveState"), props.get("UnitFileState")))
        elif props.get("NeedDaemonReload") != "no":
            differs.append("%s needs a daemon-reload" % unit)
        elif props.get("FragmentPath") != record["fragments"].get(unit):
            differs.append("%s is loaded from %s" % (unit, props.get("FragmentPath")))
    if not differs and p["health"]:
        problem = health_problem(p["health"])
        differs += [problem] if problem else []
    return differs


def load(module, path):
    """The record at path; None, with a warning if it is there, when there is none this module wrote."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        problem = str(error)
    else:
        if (isinstance(record, dict) and all(isinstance(record.get(key), kind) for key, kind in RECORD.items())
                and all(isinstance(item, str) for key in LISTS for item in record[key])):
            return record
        problem = "not a record of this module"
    module.warn("the record %s is unreadable (%s); the role runs in full" % (path, problem))
    return None


def write(module, path, record):
    """Write the record atomically; True if it changed."""
    text = json.dumps(record, sort_keys=True, indent=1) + "\n"
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except (OSError, ValueError):
        pass
    if module.check_mode:
        return True
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            digest=dict(type="str", required=True),
            record=dict(type="bool", default=False),
            compare=dict(type="bool", default=True),
            paths=dict(type="list", elements="path", default=[]),
            directories=dict(type="list", elements="path", default=[]),
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            units=dict(type="list", elements="str", default=[]),
            health=dict(type="dict", options=dict(
                url=dict(type="str", required=True),
                user=dict(type="str", default=""),
                password=dict(type="str", default="", no_log=True),
                content=dict(type="str", default=""),
            )),
            state_dir=dict(type="path", default="/var/lib/arq-monitoring"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not re.fullmatch(r"[A-Za-z0-9_.@-]+", p["name"]):
        module.fail_json(msg="name must be a plain service name, not %r" % p["name"])
    path = os.path.join(p["state_dir"], p["name"] + ".json")

    if p["record"]:
        fragments = {unit: props.get("FragmentPath") for unit, props in unit_properties(module, p["units"]).items()}
        # The unit files count as managed files too, wherever systemd loads them from.
        paths = sorted(set(p["paths"]) | {fragment for fragment in fragments.values() if fragment})
        state = snapshot(paths, p["directories"], p["users"], p["groups"])
        record = {"digest": p["digest"], "paths": paths, "directories": p["directories"], "users": p["users"],
                  "groups": p["groups"], "units": p["units"], "fragments": fragments, "state": state}
        module.exit_json(changed=write(module, path, record), converged=True, differs=[])

    differs = compare(module, load(module, path)) if p["compare"] else ["not compared: a full run was asked for"]
    module.exit_json(changed=False, converged=not differs, differs=differs, digest=p["digest"])


if __name__ == "__main__":
    main()
