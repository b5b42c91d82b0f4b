# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""One YAML document's text, vaulted values as plain text (templates of files services read)."""

from __future__ import annotations

from ansible.plugins.filter.core import to_nice_yaml
from ansible_collections.arq.monitoring.plugins.plugin_utils.plain import plain

DOCUMENTATION = r"""
name: yaml_text
author: arq.monitoring developers (@arq-platform)
version_added: 0.2.0
short_description: Block YAML text of data, with vault-encrypted values in plain text
description:
  - "Ansible's C(to_nice_yaml) (indent 2, no wrapping), except that vault-encrypted values, inline
    C(!vault) ones and values templated from them, are written as their plain text instead of
    C(!vault) ciphertext, since the file is for a service, which cannot decrypt."
options:
  _input:
    description: The data.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: A web configuration file
  ansible.builtin.copy:
    content: "{{ {'basic_auth_users': users} | arq.monitoring.yaml_text }}"
    dest: /etc/x/web.yml
    mode: "0640"
"""

RETURN = r"""
_value:
  description: The YAML text.
  type: str
"""


def yaml_text(data):
    return to_nice_yaml(plain(data), indent=2, width=1000)


class FilterModule:
    def filters(self):
        return {"yaml_text": yaml_text}
