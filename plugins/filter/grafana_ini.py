# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""Render grafana.ini from data, the way Grafana's ini parser (go-ini) reads it back."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: grafana_ini
author: arq.monitoring developers (@arq-platform)
version_added: 0.1.0
short_description: Render grafana.ini from a mapping of sections
description:
  - 'Turns C({section: {key: value}}) into grafana.ini text. Keys whose value is not a mapping
    at the top level go before the first section (C(app_mode), C(instance_name)).'
  - Booleans are written C(true)/C(false), lists are joined with commas, C(None) is an empty
    value, and values containing C(#) or C(;) (which go-ini would cut as comments) or
    surrounding spaces are wrapped in triple quotes. Nested sections keep Grafana's dotted names
    (C(auth.anonymous)).
  - Sections and keys are sorted, so the output is deterministic.
  - Fails on values that cannot be written (mappings below a section, text containing C(\"\"\")
    or a line break).
options:
  _input:
    description: 'The settings, C({section: {key: value}}).'
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write grafana.ini
  ansible.builtin.copy:
    content: "{{ {'analytics': {'reporting_enabled': false}, 'auth.anonymous': {'enabled': false}} | arq.monitoring.grafana_ini }}"
    dest: /etc/grafana/grafana.ini
    mode: "0640"
"""

RETURN = r"""
_value:
  description: The text of grafana.ini (no trailing blank line).
  type: str
"""


def _value(value, where):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return _value(",".join(_value(item, where) for item in value), where)
    if isinstance(value, Mapping):
        raise AnsibleFilterError(f"grafana_ini: {where} is a mapping; grafana.ini has only sections of key = value")
    text = str(value)
    if "\n" in text or "\r" in text:
        raise AnsibleFilterError(f"grafana_ini: {where} contains a line break")
    if "#" in text or ";" in text or text != text.strip() or text.startswith(('"', "`")):
        if '"""' in text:
            raise AnsibleFilterError(f'grafana_ini: {where} contains """ and cannot be quoted')
        return f'"""{text}"""'
    return text


def grafana_ini(settings):
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError("grafana_ini: the settings must be a mapping of sections")
    top = {k: v for k, v in settings.items() if not isinstance(v, Mapping)}
    sections = {k: v for k, v in settings.items() if isinstance(v, Mapping)}
    blocks = []
    if top:
        blocks.append("\n".join(f"{key} = {_value(top[key], key)}".rstrip() for key in sorted(top)))
    for name in sorted(sections):
        lines = [f"[{name}]"]
        lines += [f"{key} = {_value(value, f'{name}.{key}')}".rstrip() for key, value in sorted(sections[name].items())]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class FilterModule:
    def filters(self):
        return {"grafana_ini": grafana_ini}
