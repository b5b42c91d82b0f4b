# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Name the grafana.ini sections and keys Grafana does not know."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: grafana_ini_errors
author: arq.monitoring developers (@arq-platform)
version_added: 0.1.0
short_description: List grafana.ini sections and keys Grafana does not know
description:
  - 'Checks C({section: {key: value}}) against the sections and keys of Grafana
    C(conf/defaults.ini) (the grafana role ships the full list of them) and returns one message
    per unknown section or key; Grafana itself ignores them silently, so a typo such as
    C(reporting_enable) would leave a setting at its default.'
  - A section whose known keys include C(*) accepts any key (C(feature_toggles)).
options:
  _input:
    description: 'The settings, C({section: {key: value}}); top-level plain keys belong to section C("").'
    type: dict
    required: true
  known:
    description: 'C({section: [key, ...]}), C("") for the keys before the first section.'
    type: dict
    required: true
  name:
    description: Variable name the messages start with.
    type: str
    default: grafana_ini
"""

EXAMPLES = r"""
- name: Refuse unknown settings
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
  vars:
    errors: "{{ {'analytics': {'reporting_enable': false}} | arq.monitoring.grafana_ini_errors({'analytics': ['reporting_enabled']}) }}"
"""

RETURN = r"""
_value:
  description: 'Messages such as C(grafana_ini.analytics.reporting_enable is not a key Grafana knows); empty when all is known.'
  type: list
  elements: str
"""


def grafana_ini_errors(settings, known, name="grafana_ini"):
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(f"grafana_ini_errors: {name} must be a mapping of sections")
    errors = []
    for section, keys in sorted(settings.items()):
        if not isinstance(keys, Mapping):
            keys, section = {section: keys}, ""
        if section not in known:
            errors.append(f"{name}: [{section}] is not a section Grafana knows")
            continue
        allowed = set(known[section] or [])
        if "*" in allowed:
            continue
        errors += [
            f"{name}.{section + '.' if section else ''}{key} is not a key Grafana knows in [{section}]"
            for key in sorted(keys)
            if key not in allowed
        ]
    return errors


class FilterModule:
    def filters(self):
        return {"grafana_ini_errors": grafana_ini_errors}
