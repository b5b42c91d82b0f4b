# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""The AnsibleModule of modules that take file groups with secret contents (file_set, config_check)."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


class SecretGroupsModule(AnsibleModule):
    """Logs its invocation (the host's journal or syslog) without the contents of O(secrets).

    The invocation log masks no_log values in the text of a list parameter, where a secret that
    holds a newline (a key, an environment file) appears escaped and is not found: left as it is,
    every secret of O(secrets) would be written to the host's log in clear.
    """

    def _log_invocation(self):
        secrets = self.params.get("secrets")
        if secrets:
            self.params["secrets"] = [dict(group, content=dict.fromkeys(group["content"], "NOT_LOGGING_PARAMETER"))
                                      for group in secrets]
        try:
            super()._log_invocation()
        finally:
            self.params["secrets"] = secrets
