# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Find the mistakes in an Alertmanager configuration before it reaches a host."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: alertmanager_config_errors
author: arq.monitoring developers (@arq-platform)
version_added: 0.1.0
short_description: List what is wrong in an Alertmanager configuration
description:
  - Walks an Alertmanager configuration (as data) and returns one message per mistake, naming
    the field. It finds receivers of an unknown type, routes that point at a missing receiver,
    malformed durations and duplicate receiver names.
  - The alertmanager role runs it in its preflight, so bad input fails before any host changes;
    C(amtool check-config) still checks the rendered file on the host.
options:
  _input:
    description: The configuration (global, route, receivers, inhibit_rules, time_intervals ...).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Refuse a configuration with mistakes
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ {'route': {'receiver': 'team'}, 'receivers': [{'name': 'ops'}]} | arq.monitoring.alertmanager_config_errors }}"
"""

RETURN = r"""
_value:
  description: Messages such as C(route.routes[0].receiver 'team' is not defined in receivers); empty when all is well.
  type: list
  elements: str
"""

RECEIVER_TYPES = frozenset(
    f"{kind}_configs"
    for kind in (
        "discord", "email", "jira", "msteams", "msteamsv2", "opsgenie", "pagerduty", "pushover",
        "rocketchat", "slack", "sns", "telegram", "victorops", "webex", "webhook", "wechat",
    )
)
DURATION = re.compile(r"^(0|(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?)$")
ROUTE_DURATIONS = ("group_wait", "group_interval", "repeat_interval")
GLOBAL_DURATIONS = ("resolve_timeout",)


def _duration_errors(section, keys, where):
    return [
        f"{where}.{key} {section[key]!r} is not a duration such as 10s, 5m or 1h"
        for key in keys
        if key in section and not (isinstance(section[key], str) and section[key] and DURATION.match(section[key]))
    ]


def _route_errors(route, where, receivers):
    if not isinstance(route, dict):
        return [f"{where} must be a mapping"]
    errors = _duration_errors(route, ROUTE_DURATIONS, where)
    if "receiver" in route and route["receiver"] not in receivers:
        errors.append(f"{where}.receiver {route['receiver']!r} is not defined in receivers")
    for index, child in enumerate(route.get("routes") or []):
        errors += _route_errors(child, f"{where}.routes[{index}]", receivers)
    return errors


def alertmanager_config_errors(config):
    if not isinstance(config, dict):
        raise AnsibleFilterError("alertmanager_config_errors: the configuration must be a mapping")
    errors = []
    names = []
    for index, receiver in enumerate(config.get("receivers") or []):
        if not isinstance(receiver, dict) or not receiver.get("name"):
            errors.append(f"receivers[{index}] needs a name")
            continue
        names.append(receiver["name"])
        unknown = sorted(set(receiver) - RECEIVER_TYPES - {"name"})
        if unknown:
            errors.append(
                f"receivers[{index}] ({receiver['name']}): unknown receiver type {', '.join(unknown)}"
                f" (known: {', '.join(sorted(RECEIVER_TYPES))})"
            )
    errors += [f"receivers: {name!r} is defined more than once" for name in sorted({n for n in names if names.count(n) > 1})]
    route = config.get("route")
    if not isinstance(route, dict) or not route.get("receiver"):
        errors.append("route.receiver is required (the default receiver)")
    errors += _route_errors(route or {}, "route", set(names))
    errors += _duration_errors(config.get("global") or {}, GLOBAL_DURATIONS, "global")
    return errors


class FilterModule:
    def filters(self):
        return {"alertmanager_config_errors": alertmanager_config_errors}
