#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Directories and small files of a service in one round trip (the roles' speed on re-runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: file_set
short_description: Directories and text files of a service, with pruning, in one round trip
description:
  - Makes sure directories exist and text files hold the given content, with the given owner,
    group and mode; removes the other files of directories marked O(files[].exclusive).
  - One module call replaces a loop of M(ansible.builtin.file), M(ansible.builtin.copy) and
    M(ansible.builtin.find) tasks, which cost a round trip to the host per item.
  - A new or changed file is written next to its destination, checked by its O(files[].validate)
    command and only then moved into place atomically, so a bad file never replaces a good one.
  - Supports check mode and diff mode.
version_added: 0.1.0
author: arq.monitoring developers (@arq-platform)
options:
  directories:
    description:
      - Directories to create or fix, in order. Missing parents not listed are created
        root-owned with mode 0755 (less the umask).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      owner: {description: Owner., type: str, default: root}
      group: {description: Group., type: str, default: root}
      mode: {description: "Mode in octal, as a string.", type: str, default: "0755"}
  files:
    description:
      - Files to write, by directory; the directory must exist or be in O(directories).
    type: list
    elements: dict
    default: []
    suboptions: &group
      directory: {description: Absolute path of the directory., type: path, required: true}
      content: {description: "File name => whole content (text).", type: dict, required: true}
      owner: {description: Owner of the files., type: str, default: root}
      group: {description: Group of the files., type: str, default: root}
      mode: {description: "Mode of the files in octal, as a string.", type: str, default: "0644"}
      validate:
        description: Command run on a new or changed file before it replaces the live one;
          V(%s) is the temporary file's path. A non-zero exit fails the task and shows the
          command's output.
        type: str
      source: {description: "What the files are made from (variable names), named when a check fails.", type: str, default: ""}
      exclusive:
        description:
          - Remove the directory's other regular files (not recursive); the files of every group
            of the same directory, in O(files) and O(secrets), are kept.
        type: bool
        default: false
      keep:
        description: Write a file only when it is missing (a generated key that must survive re-runs).
        type: bool
        default: false
      notify:
        description: A word returned in RV(notify) when the group changed (V(restart), V(reload)).
        type: str
        default: ""
  service:
    description: Name of the service the files belong to, returned as RV(service).
    type: str
    default: ""
  secrets:
    description:
      - Files of the same shape as O(files) whose content is secret, written before O(files).
        Their content never appears in the output, in diffs (the diff names the file only) or in
        the host's log of the module's invocation.
    type: list
    elements: dict
    default: []
    suboptions: *group
"""

EXAMPLES = r"""
- name: Rule files, each checked by promtool; files the role no longer manages are removed
  arq.monitoring.file_set:
    directories:
      - {path: /etc/prometheus/rules, group: prometheus, mode: "0750"}
    files:
      - directory: /etc/prometheus/rules
        content: "{{ {'arq.yml': {'groups': rule_groups}} | arq.monitoring.yaml_files('Ansible managed') }}"
        group: prometheus
        mode: "0640"
        validate: /usr/local/bin/promtool check rules %s
        exclusive: true
"""

RETURN = r"""
changed_paths:
  description: Directories and files created or changed, and files removed.
  returned: always
  type: list
  elements: str
  sample: [/etc/prometheus/rules/arq.yml]
removed:
  description: Files removed because their directory is O(files[].exclusive).
  returned: always
  type: list
  elements: str
service:
  description: O(service), so a later task can tell this call's result from another service's.
  returned: always
  type: str
created:
  description: Files that did not exist before (written, or to be written in check mode).
  returned: always
  type: list
  elements: str
notify:
  description: The O(files[].notify) words of the groups that changed, sorted, each once.
  returned: always
  type: list
  elements: str
"""

import os
import tempfile

from ansible_collections.arq.monitoring.plugins.module_utils.secret_groups import SecretGroupsModule

# What a secret's diff shows instead of its content (the callback prints no diff of two empty texts).
_SECRET_BEFORE = "(secret content, not shown)\n"
_SECRET_AFTER = "(new secret content, not shown)\n"

_ATTRS = {
    "owner": {"type": "str", "default": "root"},
    "group": {"type": "str", "default": "root"},
}


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _attributes(module, path, spec):
    """Whether owner, group or mode differed (fixed, or only reported in check mode)."""
    # SELinux context: kept as it is (a new file has its directory's default).
    args = {"path": path, "owner": spec["owner"], "group": spec["group"], "mode": spec["mode"],
            "secontext": [None] * 4, "attributes": None}
    return module.set_fs_attributes_if_different(args, False)


def _write(module, spec, new):
    directory = os.path.dirname(spec["path"])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".file_set.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new)
        if spec.get("validate"):
            command = spec["validate"] % tmp
            rc, out, err = module.run_command(command)
            if rc != 0:
                source = f" (made from {spec['source']})" if spec.get("source") else ""
                module.fail_json(msg=f"{spec['path']}{source} failed to validate ({command}, rc {rc}): {(out + err).strip()}")
        # Owner and mode are set before the file goes live: it is never readable by others.
        _attributes(module, tmp, spec)
        os.replace(tmp, spec["path"])
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _group_spec(secret):
    return {"type": "list", "elements": "dict", "default": [], "options": {
        "directory": {"type": "path", "required": True},
        "content": {"type": "dict", "required": True, "no_log": secret},
        **_ATTRS, "mode": {"type": "str", "default": "0644"}, "validate": {"type": "str"},
        "exclusive": {"type": "bool", "default": False}, "keep": {"type": "bool", "default": False},
        "notify": {"type": "str", "default": ""}, "source": {"type": "str", "default": ""}}}


def main():
    module = SecretGroupsModule(
        argument_spec={
            "directories": {"type": "list", "elements": "dict", "default": [], "options": {
                "path": {"type": "path", "required": True}, **_ATTRS, "mode": {"type": "str", "default": "0755"}}},
            "files": _group_spec(False),
            # Not no_log as a whole (that would mask owners, modes and paths in every result): the
            # content of each group is no_log, and SecretGroupsModule keeps it out of the invocation log.
            "secrets": {**_group_spec(True), "no_log": False},
            "service": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = module.params
    changed_paths, removed, created, diffs, notify = [], [], [], [], set()

    # set_fs_attributes_if_different reports without changing in check mode.
    for spec in params["directories"]:
        path = spec["path"]
        if not os.path.isdir(path):
            if not module.check_mode:
                os.makedirs(path, mode=0o755)
                _attributes(module, path, spec)
            changed_paths.append(path)
        elif _attributes(module, path, spec):
            changed_paths.append(path)

    groups = [dict(g, secret=True) for g in params["secrets"]] + [dict(g, secret=False) for g in params["files"]]
    managed = {}
    for group in groups:
        managed.setdefault(group["directory"], set()).update(group["content"])
    for group in groups:
        bad = [name for name in group["content"] if not name or os.sep in name or name in (".", "..")]
        if bad:
            module.fail_json(msg=f"{group['directory']}: content keys must be file names, not {', '.join(bad)}")
        before = len(changed_paths)
        for name, text in sorted(group["content"].items()):
            path, new = os.path.join(group["directory"], name), str(text).encode()
            old = _read(path)
            spec = dict(group, path=path)
            if old != new and not (group["keep"] and old is not None):
                if group["secret"]:
                    # Placeholder lines, so the diff names the file without its content.
                    diffs.append({"before_header": path, "after_header": path + " (secret, not shown)",
                                  "before": "" if old is None else _SECRET_BEFORE, "after": _SECRET_AFTER})
                else:
                    diffs.append({"before_header": path, "after_header": path,
                                  "before": (old or b"").decode(errors="replace"), "after": new.decode()})
                if not module.check_mode:
                    _write(module, spec, new)
                changed_paths.append(path)
                if old is None:
                    created.append(path)
            elif old is not None and _attributes(module, path, spec):
                changed_paths.append(path)
        if group["exclusive"] and os.path.isdir(group["directory"]):
            for name in sorted(set(os.listdir(group["directory"])) - managed[group["directory"]]):
                path = os.path.join(group["directory"], name)
                if os.path.isfile(path) and not os.path.islink(path) and path not in removed:
                    diffs.append({"before_header": path, "after_header": path + " (removed)",
                                  "before": _SECRET_BEFORE if group["secret"] else (_read(path) or b"").decode(errors="replace"),
                                  "after": ""})
                    if not module.check_mode:
                        os.unlink(path)
                    removed.append(path)
                    changed_paths.append(path)
        if len(changed_paths) > before and group["notify"]:
            notify.add(group["notify"])

    result = {"changed": bool(changed_paths), "changed_paths": changed_paths, "removed": removed, "created": created,
              "service": params["service"],
              "notify": sorted(notify)}
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
