# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Controller half of arq.monitoring.release: the verified release cache, then one host call."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.arq.monitoring.plugins.plugin_utils.releases import archive_name, cached_release, sha1

MODULE = "arq.monitoring.release"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        module_args = dict(args)
        try:
            if args.get("url"):
                sources = {}
                # The release's own archive (the one a tree comes from), then the others of `also`.
                archive, unpacked = cached_release(args)
                further = [{**args, "checksum": "", "checksums_file": "", "checksum_suffix": "", **extra}
                           for extra in args.get("also") or []]
                parts = [(args, unpacked)] + [(more, cached_release(more)[1]) for more in further]
                for release, directory in parts:
                    for binary in release.get("binaries") or []:
                        path = os.path.join(directory, binary)
                        if not os.path.isfile(path):
                            raise AnsibleActionFail(f"{archive_name(release)} has no binary {binary}")
                        sources[binary] = path
                module_args["binaries"] = list(sources)
                module_args["checksums"] = {name: sha1(path) for name, path in sources.items()}
            answer = self._execute_module(MODULE, module_args=module_args, task_vars=task_vars)
            if answer.get("failed") or self._task.check_mode:
                return {**result, **answer}
            if answer.get("outdated") or answer.get("tree_missing"):
                # Transfer only what differs, then one more call installs it.
                remote_tmp = self._make_tmp_path()
                module_args["sources"] = {}
                for binary in answer.get("outdated", []):
                    remote = self._connection._shell.join_path(remote_tmp, binary)
                    self._transfer_file(sources[binary], remote)
                    module_args["sources"][binary] = remote
                if answer.get("tree_missing"):
                    module_args["tree_source"] = self._connection._shell.join_path(remote_tmp, os.path.basename(archive))
                    self._transfer_file(archive, module_args["tree_source"])
                self._fixup_perms2([remote_tmp] + list(module_args["sources"].values())
                                   + ([module_args["tree_source"]] if answer.get("tree_missing") else []))
                installed = self._execute_module(MODULE, module_args=module_args, task_vars=task_vars)
                if installed.get("failed"):
                    return {**result, **installed}
                answer["changed_paths"] = sorted(set(answer["changed_paths"]) | set(installed["changed_paths"]))
            return {**result, **answer}
        except AnsibleActionFail as err:
            return {**result, "failed": True, "msg": f"{args.get('name', 'release')}: {err}"}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
