# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Controller half of arq.monitoring.config_check: the release's checker when the host lacks it."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.arq.monitoring.plugins.plugin_utils.releases import cached_release, sha1

MODULE = "arq.monitoring.config_check"


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        checker = dict(args.get("checker") or {})
        try:
            local = ""
            if checker.get("release", {}).get("url") and checker.get("binary"):
                _archive, unpacked = cached_release(checker["release"])
                local = os.path.join(unpacked, checker["binary"])
                if not os.path.isfile(local):
                    raise AnsibleActionFail(f"{checker['release'].get('basename')} has no binary {checker['binary']}")
                checker["sha1"] = sha1(local)
            args["checker"] = checker
            answer = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
            if answer.get("need_checker"):
                # The host's checker is missing or another version: the release's, for this check only.
                remote = self._connection._shell.join_path(self._make_tmp_path(), checker["binary"])
                self._transfer_file(local, remote)
                self._fixup_perms2([os.path.dirname(remote), remote], execute=True)
                args["checker"] = dict(checker, source=remote)
                answer = self._execute_module(MODULE, module_args=args, task_vars=task_vars)
            return {**result, **answer}
        except AnsibleActionFail as err:
            return {**result, "failed": True, "msg": f"{args.get('service', 'config_check')}: {err}"}
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
