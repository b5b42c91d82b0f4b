#!/usr/bin/python
# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
# pylint: disable=disallowed-name  # `_` names the values this module discards (no gettext here)
"""A systemd service enabled, running and answering over HTTP, in one round trip."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_up
short_description: A systemd service enabled, running and answering its health check over HTTP
description:
  - Makes sure the unit is enabled and active (starting it when it is not), then asks its health
    URL until the answer has one of the expected statuses (and a body matching O(content)), or
    O(timeout) seconds have passed. One round trip on a converged host.
  - On failure, the message ends with the last lines of the unit's journal.
  - The request goes straight to the URL, never through a proxy; the certificate is not checked
    (the URL is the service's own listener, usually on loopback).
  - Check mode starts and enables nothing, and asks the health URL only of a service already running.
version_added: 0.1.0
author: arq.monitoring developers (@arq-platform)
options:
  name:
    description: The systemd unit, without C(.service).
    type: str
    required: true
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (the unit file changed).
    type: bool
    default: false
  url:
    description: The health URL.
    type: str
    required: true
  url_username:
    description: Basic-auth user sent with every request (none when empty).
    type: str
    default: ""
  url_password:
    description: Basic-auth password.
    type: str
    default: ""
  status_code:
    description: HTTP statuses that count as healthy.
    type: list
    elements: int
    default: [200]
  content:
    description: A regular expression the body must match as well (not checked when empty).
    type: str
    default: ""
  timeout:
    description: Seconds to wait for a healthy answer, one request a second.
    type: int
    default: 60
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Starts and enables nothing; asks the health URL only of a service already running.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Start node_exporter and wait until it answers
  arq.monitoring.service_up:
    name: node_exporter
    url: http://127.0.0.1:9100/metrics
"""

RETURN = r"""
service:
  description: The unit, as given in O(name).
  returned: always
  type: str
started:
  description: The unit was not active and was started (or would be, in check mode).
  returned: always
  type: bool
enabled:
  description: The unit was not enabled and was enabled (or would be, in check mode).
  returned: always
  type: bool
status:
  description: HTTP status of the last answer (-1 when none came, 0 when not asked).
  returned: always
  type: int
"""

import base64
import re
import ssl
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule

BODY_LIMIT = 16 * 1024 * 1024


def ask(url, user, password):
    """(status, body) of one GET; status -1 and the reason when no HTTP answer came."""
    request = urllib.request.Request(url)
    if user:
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl._create_unverified_context()))
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, answer.read(BODY_LIMIT).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(BODY_LIMIT).decode("utf-8", "replace")
    except (OSError, ValueError) as error:  # refused, reset, timed out, TLS, bad URL
        return -1, str(getattr(error, "reason", error))


def wait_healthy(params, clock=time.monotonic, sleep=time.sleep):
    """(healthy, status, detail) after asking until healthy or the timeout passes."""
    deadline = clock() + params["timeout"]
    pattern = re.compile(params["content"]) if params["content"] else None
    while True:
        status, body = ask(params["url"], params["url_username"], params["url_password"])
        if status in params["status_code"] and (pattern is None or pattern.search(body)):
            return True, status, ""
        if clock() >= deadline:
            detail = body[:200] if status == -1 else "HTTP %s" % status + (
                ", body not matching %s" % params["content"] if status in params["status_code"] else "")
            return False, status, detail
        sleep(1)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            daemon_reload=dict(type="bool", default=False),
            url=dict(type="str", required=True),
            url_username=dict(type="str", default=""),
            url_password=dict(type="str", default="", no_log=True),
            status_code=dict(type="list", elements="int", default=[200]),
            content=dict(type="str", default=""),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params, name = module.params, module.params["name"]
    systemctl = module.get_bin_path("systemctl", required=True)
    result = dict(changed=False, service=name, started=False, enabled=False, status=0)

    def run(*args, check=True):
        rc, out, err = module.run_command([systemctl] + list(args))
        if check and rc != 0:
            module.fail_json(msg="systemctl %s failed: %s" % (" ".join(args), (err or out).strip()), **result)
        return rc, out.strip()

    if params["daemon_reload"] and not module.check_mode:
        run("daemon-reload")
    _, state = run("is-enabled", name, check=False)
    if state == "masked":
        module.fail_json(msg="%s is masked; unmask it (systemctl unmask %s) to let the role run it" % (name, name), **result)
    if state not in ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated"):
        result["enabled"] = result["changed"] = True
        if not module.check_mode:
            run("enable", name)
    _, active = run("is-active", name, check=False)
    # "activating" and "reloading": already on its way, only wait.
    if active not in ("active", "activating", "reloading"):
        result["started"] = result["changed"] = True
        if module.check_mode:
            module.exit_json(**result)
        run("start", name)

    healthy, result["status"], detail = wait_healthy(params)
    if not healthy:
        _, journal, _ = module.run_command(["journalctl", "-u", name, "-n", "8", "--no-pager", "-o", "cat"])
        module.fail_json(
            msg="%s did not answer %s with %s within %s s (%s). The end of its journal: %s" % (
                name, params["url"], " or ".join(map(str, params["status_code"])), params["timeout"], detail,
                " | ".join(journal.strip().splitlines())),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
