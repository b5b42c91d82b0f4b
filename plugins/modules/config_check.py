#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""A service's configuration checked by its own checker before anything on the host changes."""

from __future__ import annotations

DOCUMENTATION = r"""
module: config_check
short_description: Check a service's whole configuration with its own checker before any change
description:
  - Writes every file of O(files) and O(secrets) into a private temporary directory, laid out as
    the files will be on the host (C(/etc/prometheus/rules/x.yml) under C(<tmp>/etc/prometheus/rules/)),
    runs each group's O(files[].validate) command on each of its files there, and removes the
    directory. Nothing else on the host is touched, so it runs the same in check mode.
  - Files refer to each other by paths relative to their own directory (what Prometheus,
    Alertmanager and the exporters' web configuration resolve them against), so the checker sees
    the new set as a whole; absolute paths still reach the host's own files.
  - A refusal fails the task with the checker's message and O(files[].source), the variables the
    file is made from.
  - When the checker is the release's (O(checker.release) and O(checker.binary) set) and the
    host's copy differs (a fresh host, or a version change), the action part transfers the
    controller's verified copy into the task's temporary directory for the check, so the new
    version checks the new configuration.
  - "A package checker that is not installed yet (the package method on a fresh host) is a
    warning: the files are then checked as M(arq.monitoring.file_set) writes them."
  - With O(data), a version change the service's data on the host cannot survive is refused
    first, by the installed program's own C(--version).
version_added: 0.2.0
author: arq.monitoring developers (@arq-platform)
options:
  service:
    description: Name of the service, at the start of every message.
    type: str
    required: true
  files:
    description: Groups of files, as the O(arq.monitoring.file_set#module:files) option takes them.
    type: list
    elements: dict
    default: []
    suboptions: &group
      directory:
        description: Absolute path of the directory the files go to.
        type: path
        required: true
      content:
        description: "File name => whole content (text)."
        type: dict
        required: true
      validate:
        description: Command run on each file of the group; V(%s) is the file's path in the temporary tree.
        type: str
      source:
        description: What the files are made from (variable names), for the messages.
        type: str
        default: ""
      owner:
        description: Ignored (the same groups feed M(arq.monitoring.file_set)).
        type: str
      group:
        description: Ignored.
        type: str
      mode:
        description: Ignored (staged files are the check's own, mode 0600).
        type: str
      exclusive:
        description: Ignored.
        type: bool
      keep:
        description: Ignored.
        type: bool
      notify:
        description: Ignored.
        type: str
  secrets:
    description: Like O(files); the content never appears in the output or in the host's log.
    type: list
    elements: dict
    default: []
    suboptions: *group
  checker:
    description: The checker program.
    type: dict
    default: {}
    suboptions:
      path:
        description: Where the host has it; in O(files[].validate) it stands for the checker.
        type: str
        default: ""
      sha1:
        description: Internal, set by the action part, the SHA-1 of the release's copy; empty trusts O(checker.path).
        type: str
        default: ""
      source:
        description: Internal, set by the action part, where the release's copy was transferred.
        type: str
        default: ""
      release:
        description: The release the checker comes from (O(arq.monitoring.release#module:url), C(basename), C(arch), C(checksum), C(checksum_suffix)).
        type: dict
        default: {}
      binary:
        description: Its name in the release.
        type: str
        default: ""
  data:
    description: The version about to be installed, checked against the data the installed one wrote.
    type: dict
    suboptions:
      program:
        description: The installed program; its C(--version) names the version that wrote the data.
        type: str
        required: true
      version:
        description: The version about to be installed.
        type: str
        required: true
      variable:
        description: The variable that sets O(data.version), for the message.
        type: str
        required: true
      path:
        description: Where the data is, for the message.
        type: str
        default: ""
      formats:
        description: Data formats, each written by versions from C(since) on and readable by versions from C(readable_from) on.
        type: list
        elements: dict
        required: true
        suboptions:
          since:
            description: First version that writes the format.
            type: str
            required: true
          readable_from:
            description: Oldest version that reads it.
            type: str
            required: true
"""

EXAMPLES = r"""
- name: Check the rules and prometheus.yml with promtool before any change
  arq.monitoring.config_check:
    service: prometheus
    checker: {path: /usr/local/bin/promtool}
    files:
      - directory: /etc/prometheus/rules
        content: {arq.yml: "{{ rules | to_nice_yaml }}"}
        validate: /usr/local/bin/promtool check rules %s
        source: prometheus_rule_files
"""

RETURN = r"""
checked:
  description: The files checked, by their final path.
  returned: success
  type: list
  elements: str
checker:
  description: The checker used on the host (the installed one, or the release's transferred copy).
  returned: success
  type: str
need_checker:
  description: Internal, the host's checker differs from the release's (the action part then transfers it).
  returned: always
  type: bool
"""

import hashlib
import os
import re
import shutil
import tempfile

from ansible_collections.arq.monitoring.plugins.module_utils.secret_groups import SecretGroupsModule


def _sha1(path):
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return ""
    return digest.hexdigest()


def _version(text):
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(part) for part in found.groups()) if found else None


def check_data(module):
    """Refuse a version the installed one's data format is too new for (Prometheus 3 -> 2.53)."""
    data = module.params["data"]
    if not data or not os.access(data["program"], os.X_OK):
        return
    rc, out, err = module.run_command([data["program"], "--version"])
    installed, wanted = _version(out + err) if rc == 0 else None, _version(data["version"])
    if not installed or not wanted:
        return
    for fmt in data["formats"]:
        if installed >= _version(fmt["since"]) and wanted < _version(fmt["readable_from"]):
            where = f" in {data['path']}" if data["path"] else ""
            module.fail_json(msg=f"{module.params['service']}: {data['variable']} is {data['version']}, but the data{where} "
                                 f"was written by {'.'.join(map(str, installed))}, whose format versions before "
                                 f"{fmt['readable_from']} cannot read: install {fmt['readable_from']} or newer, "
                                 "or move the data away first")


def _group_spec(secret):
    return {"type": "list", "elements": "dict", "default": [], "no_log": False, "options": {
        "directory": {"type": "path", "required": True},
        "content": {"type": "dict", "required": True, "no_log": secret},
        "validate": {"type": "str"},
        "source": {"type": "str", "default": ""},
        # file_set's keys, accepted so that the same groups feed both modules.
        "owner": {"type": "str"}, "group": {"type": "str"}, "mode": {"type": "str"},
        "exclusive": {"type": "bool"}, "keep": {"type": "bool"}, "notify": {"type": "str"}}}


def check(module, stage):
    """Stage every file, then run the checks; the first refusal fails the module."""
    params = module.params
    checker = params["checker"]
    program = checker["source"] or checker["path"]
    groups = params["secrets"] + params["files"]
    for group in groups:
        if not os.path.isabs(group["directory"]):
            module.fail_json(msg=f"{params['service']}: {group['directory']} is not an absolute path")
        directory = stage + group["directory"]
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name, text in group["content"].items():
            if not name or os.sep in name or name in (".", ".."):
                module.fail_json(msg=f"{params['service']}: {name!r} in {group['directory']} is not a file name")
            fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(str(text))
    checked = []
    for group in groups:
        if not group.get("validate"):
            continue
        command = group["validate"]
        if checker["path"] and program != checker["path"]:
            command = command.replace(checker["path"], program)
        for name in sorted(group["content"]):
            final = os.path.join(group["directory"], name)
            rc, out, err = module.run_command(command % (stage + final), cwd=stage + group["directory"])
            if rc != 0:
                said = (out + err).replace(stage, "").strip()
                source = f" (made from {group['source']})" if group["source"] else ""
                module.fail_json(msg=f"{params['service']}: {final}{source} is refused by "
                                     f"{os.path.basename(command.split()[0])}: {said}", checked=checked)
            checked.append(final)
    return checked, program


def main():
    module = SecretGroupsModule(
        argument_spec={
            "service": {"type": "str", "required": True},
            "files": _group_spec(False),
            "secrets": _group_spec(True),
            "checker": {"type": "dict", "default": {}, "options": {
                "path": {"type": "str", "default": ""}, "sha1": {"type": "str", "default": ""},
                "source": {"type": "str", "default": ""}, "release": {"type": "dict", "default": {}},
                "binary": {"type": "str", "default": ""}}},
            "data": {"type": "dict", "options": {
                "program": {"type": "str", "required": True}, "version": {"type": "str", "required": True},
                "variable": {"type": "str", "required": True}, "path": {"type": "str", "default": ""},
                "formats": {"type": "list", "elements": "dict", "required": True, "options": {
                    "since": {"type": "str", "required": True}, "readable_from": {"type": "str", "required": True}}}}},
        },
        supports_check_mode=True,
    )
    check_data(module)
    checker = module.params["checker"]
    if checker["sha1"] and not checker["source"] and _sha1(checker["path"]) != checker["sha1"]:
        module.exit_json(changed=False, need_checker=True)
    if checker["path"] and not checker["source"] and not os.access(checker["path"], os.X_OK):
        # A package not installed yet: its files are still checked as they are written.
        module.warn(f"{module.params['service']}: {checker['path']} is not installed yet; "
                    "the configuration is checked as it is written")
        module.exit_json(changed=False, need_checker=False, checked=[], checker="")
    stage = tempfile.mkdtemp(prefix="arq-check-", dir=module.tmpdir)
    try:
        checked, program = check(module, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    module.exit_json(changed=False, need_checker=False, checked=checked, checker=program)


if __name__ == "__main__":
    main()
