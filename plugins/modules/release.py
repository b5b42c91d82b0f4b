#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""A service's system account and release files on the host, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: A service's system account and its upstream release, from the controller's verified cache
description:
  - The action part, on the controller, downloads the release archive once per version and
    architecture into a cache, checks it against the release's checksums (or a pinned one) and
    unpacks it with Python (no GNU tar).
  - The module part, on the host, makes sure the system group and user exist (no login shell, no
    home) and compares the installed binaries with the controller's by checksum. Only binaries that
    differ are transferred; a whole release tree (programs that ship more than binaries) is copied
    and unpacked under O(tree.dir) when its top directory is missing. A converged host costs one
    round trip.
  - Supports check mode and diff mode (the diff names what would change).
version_added: 0.1.0
author: arq.monitoring developers (@arq-platform)
options:
  name:
    description: The service the release belongs to (messages, and echoed back as RV(service)).
    type: str
    required: true
  user:
    description: System user the service runs as; created if missing, primary group O(group).
    type: str
    required: true
  group:
    description: System group of the service; created if missing.
    type: str
    required: true
  url:
    description: Release directory URL, holding the archive and C(sha256sums.txt). C(file://) works too.
    type: str
    default: ""
  basename:
    description: Archive name without C(.linux-<arch>.tar.gz), for example V(node_exporter-1.11.1).
    type: str
    default: ""
  arch:
    description: Go architecture of the host (V(amd64), V(arm64)).
    type: str
    default: amd64
  checksum:
    description: V(sha256:<hex>) pins the archive; empty checks it against the release's checksums.
    type: str
    default: ""
  checksum_suffix:
    description:
      - Non-empty means each archive has its own checksum file, the archive URL plus this suffix
        (V(.sha256) at dl.grafana.com), instead of the release's C(sha256sums.txt).
    type: str
    default: ""
  archive:
    description:
      - The archive's file name in O(url), C({arch}) standing for O(arch), when it is not
        C(<basename>.linux-<arch>.tar.gz) (V(victoria-metrics-linux-{arch}-v1.145.0.tar.gz)).
    type: str
    default: ""
  checksums_file:
    description: The release's checksum file in O(url) (C({arch}) for O(arch)) instead of C(sha256sums.txt).
    type: str
    default: ""
  also:
    description:
      - Further archives of the same release whose O(binaries) are installed too, each
        C({archive, checksums_file, checksum, binaries}) (VictoriaMetrics' vmutils).
    type: list
    elements: dict
    default: []
  binaries:
    description: Files of the archive's top directory installed as C(/usr/local/bin/<name>), root, 0755.
    type: list
    elements: str
    default: []
  tree:
    description:
      - Copy the whole archive and unpack it on the host as C(<dir>/<top>), root-owned, once per
        version (its top directory missing means not installed).
    type: dict
    suboptions:
      dir: {description: Directory the release trees live in., type: path, required: true}
      top: {description: Top directory of the archive., type: str, required: true}
  cache:
    description: Controller directory of verified archives (default C(~/.cache/arq.monitoring/releases)).
    type: path
  checksums:
    description: Internal, set by the action part, the SHA-1 of each binary in the controller's cache.
    type: dict
    default: {}
  sources:
    description: Internal, set by the action part, where each binary to install was transferred.
    type: dict
    default: {}
  tree_source:
    description: Internal, set by the action part, where the archive to unpack was transferred.
    type: str
    default: ""
notes:
  - With O(url) empty only the account is managed (the package method).
"""

EXAMPLES = r"""
- name: Install node_exporter
  arq.monitoring.release:
    name: node_exporter
    user: node-exporter
    group: node-exporter
    url: https://github.com/prometheus/node_exporter/releases/download/v1.11.1
    basename: node_exporter-1.11.1
    arch: amd64
    binaries: [node_exporter]
"""

RETURN = r"""
service:
  description: O(name), so a later task can tell this service's result from another's.
  returned: always
  type: str
outdated:
  description: Names of the binaries that differed from the controller's (and were installed unless in check mode).
  returned: always
  type: list
  elements: str
tree_missing:
  description: Whether the release tree was missing (and was unpacked unless in check mode).
  returned: always
  type: bool
changed_paths:
  description: Binaries and trees installed or replaced (C(user:) and C(group:) entries for accounts).
  returned: always
  type: list
  elements: str
"""

import grp
import os
import pwd
import shutil
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.arq.monitoring.plugins.module_utils.safe_tar import safe_extract

BIN_DIR = "/usr/local/bin"


def _accounts(module, user, group):
    """Create or fix the system group and user; returns what changed."""
    changed = []
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        changed.append("group:" + group)
        if not module.check_mode:
            module.run_command(["groupadd", "--system", group], check_rc=True)
            gid = grp.getgrnam(group).gr_gid
        else:
            gid = None
    wanted = ["--gid", group, "--home", "/nonexistent", "--shell", "/usr/sbin/nologin"]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        changed.append("user:" + user)
        if not module.check_mode:
            module.run_command(["useradd", "--system", "--no-create-home", *wanted, user], check_rc=True)
        return changed
    if (entry.pw_gid, entry.pw_dir, entry.pw_shell) != (gid, "/nonexistent", "/usr/sbin/nologin"):
        changed.append("user:" + user)
        if not module.check_mode:
            module.run_command(["usermod", *wanted, user], check_rc=True)
    return changed


def _install_binary(module, src, dest):
    directory = os.path.dirname(dest)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest) + ".")
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _unpack_tree(module, archive, directory, top):
    """Unpacked beside the target and moved into place: a half-unpacked tree is never taken for one."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=directory, prefix=".unpack.")
    try:
        with tarfile.open(archive) as tar:
            try:
                safe_extract(tar, tmp)
            except tarfile.TarError as err:
                module.fail_json(msg=f"{archive}: {err}")
        if not os.path.isdir(os.path.join(tmp, top)):
            module.fail_json(msg=f"the release archive has no top directory {top}")
        for root, dirs, files in os.walk(tmp):
            for name in dirs + files:
                path = os.path.join(root, name)
                os.lchown(path, 0, 0)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode & ~0o022)
        os.replace(os.path.join(tmp, top), os.path.join(directory, top))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "user": {"type": "str", "required": True},
            "group": {"type": "str", "required": True},
            "url": {"type": "str", "default": ""},
            "basename": {"type": "str", "default": ""},
            "arch": {"type": "str", "default": "amd64"},
            "checksum": {"type": "str", "default": ""},
            "checksum_suffix": {"type": "str", "default": ""},
            "archive": {"type": "str", "default": ""},
            "checksums_file": {"type": "str", "default": ""},
            "also": {"type": "list", "elements": "dict", "default": []},
            "binaries": {"type": "list", "elements": "str", "default": []},
            "tree": {"type": "dict", "options": {"dir": {"type": "path", "required": True},
                                                 "top": {"type": "str", "required": True}}},
            "cache": {"type": "path"},
            # Filled in by the action part.
            "checksums": {"type": "dict", "default": {}},
            "sources": {"type": "dict", "default": {}},
            "tree_source": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = module.params
    changed_paths = _accounts(module, params["user"], params["group"])
    outdated = []
    for binary in params["binaries"]:
        dest = os.path.join(BIN_DIR, binary)
        if not os.path.isfile(dest) or module.sha1(dest) != params["checksums"].get(binary):
            outdated.append(binary)
            if params["sources"].get(binary) and not module.check_mode:
                _install_binary(module, params["sources"][binary], dest)
    tree_missing = False
    tree = params["tree"]
    if tree and not os.path.isdir(os.path.join(tree["dir"], tree["top"])):
        tree_missing = True
        if params["tree_source"] and not module.check_mode:
            _unpack_tree(module, params["tree_source"], tree["dir"], tree["top"])
    changed_paths += [os.path.join(BIN_DIR, name) for name in outdated] + ([os.path.join(tree["dir"], tree["top"])] if tree_missing else [])
    result = {"changed": bool(changed_paths), "changed_paths": changed_paths, "service": params["name"],
              "outdated": outdated, "tree_missing": tree_missing}
    if module._diff and changed_paths:
        result["diff"] = {"before": "", "after": "".join(p + "\n" for p in changed_paths),
                          "after_header": params["name"] + " release"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
