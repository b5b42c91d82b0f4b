# Copyright: arq.monitoring developers
# MIT License (see LICENSE)
"""YAML files' text from data, by file name (input for arq.monitoring.file_set)."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from ansible.plugins.filter.core import comment, to_nice_yaml
from ansible_collections.arq.monitoring.plugins.plugin_utils.plain import plain

DOCUMENTATION = r"""
name: yaml_files
author: arq.monitoring developers (@arq-platform)
version_added: 0.1.0
short_description: The text of YAML files from their data, by file name
description:
  - Turns a mapping of file names to data into a mapping of file names to text.
  - Each text is the optional header as a C(#) comment, then the data as block YAML (Ansible's
    C(to_nice_yaml), indent 2, no wrapping).
  - Vault-encrypted values, inline C(!vault) ones and values templated from them, are written as
    their plain text, since the files are read by services, which cannot decrypt (C(to_nice_yaml)
    writes them as C(!vault) ciphertext).
options:
  _input:
    description: 'C({file name: data}).'
    type: dict
    required: true
  header:
    description: Text written first as a C(#) comment (for example C(ansible_managed)).
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Rule files
  arq.monitoring.file_set:
    files:
      - directory: /etc/prometheus/rules
        content: "{{ {'arq.yml': {'groups': []}} | arq.monitoring.yaml_files('Ansible managed') }}"
"""

RETURN = r"""
_value:
  description: 'C({file name: text}).'
  type: dict
"""


def yaml_files(files, header=""):
    if not isinstance(files, Mapping):
        raise AnsibleFilterError(f"yaml_files: expected {{file name: data}}, got {type(files).__name__}")
    prefix = comment(header) + "\n" if header else ""
    return {name: prefix + to_nice_yaml(plain(data), indent=2, width=1000) for name, data in files.items()}


class FilterModule:
    def filters(self):
        return {"yaml_files": yaml_files}
